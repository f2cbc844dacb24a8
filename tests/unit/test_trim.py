"""Plain-text trimming: table-driven client/language cases plus hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp.trim import Reply, trim_quoted_reply

CASES: list[tuple[str, str, str]] = [
    (
        "gmail-en",
        "Works for me, ship it.\n\nOn Tue, Mar 5, 2024 at 9:12 AM Dana Ruiz <dana@acme.io> wrote:\n"
        "> Can we release on Friday?\n> Dana\n",
        "Works for me, ship it.",
    ),
    (
        "gmail-wrapped-attribution",
        "Yes, booked.\n\nOn Wed, Jun 12, 2024 at 4:40 PM Priya N <\n"
        "priya.natarajan@example.org> wrote:\n\n> Did you book the room?\n",
        "Yes, booked.",
    ),
    (
        "gmail-iso-date",
        "Merci !\n\n2023-11-02 18:05 GMT+01:00 Luc Martin <luc@example.fr>:\n\n> Voici le doc.\n",
        "Merci !",
    ),
    (
        "apple-mail-de",
        "Passt, bis morgen.\n\nVon meinem iPhone gesendet\n\n"
        "Am 04.03.2024 um 08:15 schrieb Jonas Weber <jonas@example.de>:\n\n> Treffen um 10?\n",
        "Passt, bis morgen.",
    ),
    (
        "gmail-de-name-first",
        "Klingt gut.\n\nJonas Weber <jonas@example.de> schrieb am Mo., 4. März 2024\n"
        "um 08:15 Uhr:\n\n"
        "> Treffen um 10?\n",
        "Klingt gut.",
    ),
    (
        "thunderbird-fr",
        "C'est noté.\n\nLe 12/02/2024 à 14:03, Claire Dubois a écrit :\n> On décale ?\n",
        "C'est noté.",
    ),
    (
        "gmail-es",
        "Perfecto.\n\nEl lun, 8 ene 2024 a las 10:30, Ana Gil (<ana@example.es>) escribió:\n\n"
        "> ¿Vale?\n",
        "Perfecto.",
    ),
    (
        "apple-nl",
        "Top, dank je.\n\n> Op 3 feb. 2024 om 11:02 heeft Sem Bakker <sem@example.nl> het volgende"
        " geschreven:\n>\n> Zie bijlage.\n",
        "Top, dank je.",
    ),
    (
        "gmail-it",
        "Va bene.\n\nIl giorno ven 9 feb 2024 alle ore 17:20 Marco <marco@example.it> ha "
        "scritto:\n\n> Confermi?\n",
        "Va bene.",
    ),
    (
        "gmail-ru",
        "Да, спасибо.\n\nпт, 9 февр. 2024 г. в 12:00, Иван Петров <ivan@example.ru>:\n\n"
        "> Готово?\n",
        "Да, спасибо.",
    ),
    (
        "android-pl",
        "Jasne.\n\nDnia 9 lutego 2024 12:00 Jan Kowalski <jan@example.pl> napisał(a):\n\n> Ok?\n",
        "Jasne.",
    ),
    (
        "gmail-ca",
        "D'acord.\n\nEl dv., 9 de febr. 2024, a les 12:00, Pau Vila <pau@example.cat> va escriure:"
        "\n\n> Et va bé?\n",
        "D'acord.",
    ),
    (
        "gmail-ko",
        "좋아요.\n\n2024년 2월 9일 (금) 오후 12:00, 김민수 <minsu@example.kr>님이 작성:\n\n"
        "> 괜찮아요?\n",
        "좋아요.",
    ),
    (
        "gmail-zh",
        "好的。\n\n王伟 <wei@example.cn> 于2024年2月9日周五 12:00写道：\n\n> 可以吗？\n",
        "好的。",
    ),
    (
        "gmail-ja",
        "了解です。\n\n2024年2月9日(金) 12:00 Taro Yamada <taro@example.jp>:\n\n> いかがですか？\n",
        "了解です。",
    ),
    (
        "outlook-en",
        "Approved.\n\n________________________________\nFrom: Sam Lee <sam@example.com>\n"
        "Sent: Monday, March 4, 2024 9:00 AM\nTo: Team <team@example.com>\nSubject: Budget\n\n"
        "Please approve.\n",
        "Approved.",
    ),
    (
        "outlook-de",
        "Erledigt.\n\nVon: Sam Lee <sam@example.com>\nGesendet: Montag, 4. März 2024 09:00\n"
        "An: Team\nBetreff: Budget\n\nBitte freigeben.\n",
        "Erledigt.",
    ),
    (
        "outlook-fr",
        "Fait.\n\nDe : Sam Lee <sam@example.com>\nEnvoyé : lundi 4 mars 2024 09:00\nÀ : Équipe\n"
        "Objet : Budget\n\nMerci de valider.\n",
        "Fait.",
    ),
    (
        "outlook-it",
        "Fatto.\n\nDa: Sam Lee\nInviato: lunedì 4 marzo 2024 09:00\nA: Team\nOggetto: Budget\n\n"
        "Approva per favore.\n",
        "Fatto.",
    ),
    (
        "original-message",
        "See below.\n\n-----Original Message-----\nFrom: Sam\nSent: today\n\nOld text\n",
        "See below.",
    ),
    (
        "signature",
        "Thanks,\nMarcus\n\n-- \nMarcus Hale | Ops\n+1 555 0100\n",
        "Thanks,\nMarcus",
    ),
    ("iphone-footer", "Sounds good!\n\nSent from my iPhone\n", "Sounds good!"),
    ("outlook-ios-footer", "On it.\n\nSent from Outlook for iOS\n", "On it."),
    ("fr-footer", "D'accord.\n\nEnvoyé de mon iPhone\n", "D'accord."),
    ("windows-mail-footer", "Noted.\n\nSent from Mail for Windows\n", "Noted."),
    (
        "forward-note",
        "FYI, see the thread.\n\n---------- Forwarded message ---------\nFrom: A <a@example.com>\n"
        "Date: Mon, Mar 4, 2024\nSubject: Plans\nTo: B <b@example.com>\n\nThe plans.\n",
        "FYI, see the thread.",
    ),
    (
        "inline-reply",
        "Hi Ana,\n\nOn Mon, Mar 4, 2024 at 9:00 AM Ana <ana@example.com> wrote:\n"
        "> Intro line.\n> Can you do Tuesday?\n\nYes, Tuesday works.\n\n> And the budget?\n\n"
        "Approved.\n",
        "Hi Ana,\n\n> Can you do Tuesday?\n\nYes, Tuesday works.\n\n> And the budget?\n\nApproved.",
    ),
    (
        "bottom-post",
        "On Mon, Mar 4, 2024 at 9:00 AM Ana <ana@example.com> wrote:\n> Status?\n\nAll green.\n",
        "All green.",
    ),
    (
        "no-quote",
        "Plain update: shipped the importer.\nNext: exporter.\n",
        "Plain update: shipped the importer.\nNext: exporter.",
    ),
    (
        "body-line-starting-like-attribution",
        "Export is done.\nOn Friday I'm out, back on Monday.\n"
        "On Mon, Mar 4, 2024 at 8:15 AM Jonas Weber <jonas@example.de> wrote:\n> Status?\n",
        "Export is done.\nOn Friday I'm out, back on Monday.",
    ),
    (
        "body-line-starting-like-attribution-with-a-time",
        "Le point est fait.\nLe 5 mars à 10:00 je suis absente.\n\n"
        "Le lun. 4 mars 2024 à 08:15, Jean Dupont <jean@example.fr> a écrit :\n> Le point ?\n",
        "Le point est fait.\nLe 5 mars à 10:00 je suis absente.",
    ),
    (
        "gmail-attribution-wrapped-before-the-time",
        "Yes.\n\nOn Wed, Jun 12, 2024 at\n4:40 PM Priya N <priya@example.org> wrote:\n\n> Ok?\n",
        "Yes.",
    ),
    (
        "gmail-he-bidi-controls",
        "מעולה.\n\n\u202bבתאריך יום ב׳, 4 במרץ 2024 ב-8:15 מאת \u202aדנה לוי\u202c\u200f "
        "<\u202adana@example.co.il\u202c\u200f>:\u202c\n\n> שאלה?\n",
        "מעולה.",
    ),
    (
        "thunderbird-ko",
        "네.\n\n2024-03-04 오전 8:15에 김민수 이(가) 쓴 글:\n> 괜찮아요?\n",
        "네.",
    ),
    (
        "qq-mail-literal-nbsp",
        "收到。\n\n------------------&nbsp;原始邮件&nbsp;------------------\n"
        '发件人: "张伟"<zhangwei@example.cn&gt;;\n发送时间:&nbsp;2024年3月4日\n\n可以吗？\n',
        "收到。",
    ),
    (
        "outlook-ca",
        "Fet.\n\nDe: Sam Lee <sam@example.com>\nEnviat el: dilluns, 4 de març de 2024 9:00\n"
        "Per a: Equip\nAssumpte: Pressupost\n\nSi us plau, aprova-ho.\n",
        "Fet.",
    ),
    (
        "outlook-ar",
        "تم.\n\nمن: سام <sam@example.com>\nتم الإرسال: الاثنين، 4 مارس، 2024 09:00 ص\n"
        "إلى: الفريق\nالموضوع: الميزانية\n\nيرجى الموافقة.\n",
        "تم.",
    ),
    ("ca-footer", "D'acord.\n\nEnviat des del meu iPhone\n", "D'acord."),
    ("he-footer", "מעולה.\n\nנשלח מה-iPhone שלי\n", "מעולה."),
    (
        "outlook-mobile-de-footer",
        "Passt.\n\nOutlook für iOS<https://aka.ms/o0ukef> herunterladen\n",
        "Passt.",
    ),
    ("outlook-mobile-fr-footer", "Validé.\n\nTélécharger Outlook pour Android\n", "Validé."),
    ("outlook-mobile-es-footer", "Hecho.\n\nObtener Outlook para iOS\n", "Hecho."),
    (
        "outlook-mobile-it-footer",
        "Fatto.\n\nScarica Outlook per iOS<https://aka.ms/o0ukef>\n",
        "Fatto.",
    ),
    (
        "outlook-mobile-nl-footer",
        "Klaar.\n\nOutlook voor Android downloaden<https://aka.ms/AAb9ysg>\n",
        "Klaar.",
    ),
    (
        "windows-mail-footer-glued-link",
        "Noted.\n\nSent from Mail<https://go.microsoft.com/fwlink/?LinkId=550986> for Windows\n",
        "Noted.",
    ),
    (
        "legal-notice",
        "Will do.\n\nThis email and any attachments are confidential and intended solely for the"
        " addressee.\n",
        "Will do.",
    ),
]


@pytest.mark.parametrize(("name", "body", "expected"), CASES, ids=[c[0] for c in CASES])
def test_trim_cases(name: str, body: str, expected: str) -> None:
    reply = trim_quoted_reply(body)
    assert reply.text == expected


def test_quoted_part_is_kept_and_confident() -> None:
    body = "Yes, the migration finished overnight and the dashboards look right.\n\n"
    reply = trim_quoted_reply(body + "On Mon, 4 Mar 2024, Ana <a@example.com> wrote:\n> Ok?\n")
    assert isinstance(reply, Reply)
    assert "> Ok?" in reply.quoted
    assert reply.confident


def test_nothing_removed_is_empty_quoted() -> None:
    reply = trim_quoted_reply("Just text.")
    assert reply.quoted == ""
    assert reply.confident


_LONG_QUOTE = "".join(f"> An earlier message, line {k}, quoted in full.\n" for k in range(20))
_LONG_TEXT = "".join(f"Line {k} of a long message that was sent earlier.\n" for k in range(20))
_SIGNATURE = "".join(f"Position {k} | Example Corp | +1 555 01{k:02d}\n" for k in range(20))

CONFIDENCE: list[tuple[str, str, bool]] = [
    (
        "yes-above-gmail-quote",
        "Yes.\n\nOn Mon, 4 Mar 2024 at 09:00, Ana <a@example.com> wrote:\n" + _LONG_QUOTE,
        True,
    ),
    ("yes-above-bare-quote", "Yes.\n\n" + _LONG_QUOTE, True),
    (
        "yes-above-outlook-block",
        "Yes.\n\nFrom: Ana <a@example.com>\nSent: Monday\nTo: Team\n"
        "Subject: Plans\n\n" + _LONG_TEXT,
        True,
    ),
    ("yes-above-original-message", "Yes.\n\n-----Original Message-----\n" + _LONG_TEXT, True),
    (
        "bottom-post",
        "On Mon, 4 Mar 2024, Ana <a@example.com> wrote:\n" + _LONG_QUOTE + "\nYes.",
        True,
    ),
    ("no-quote-at-all", "Shipped the importer; next is the exporter.", True),
    ("long-answer-short-quote", _LONG_TEXT + "\n> Status?\n", True),
    ("empty-new-text", _LONG_QUOTE, False),
    ("empty-input", "", False),
    ("only-a-signature-cut", "Ok\n\n-- \n" + _SIGNATURE, False),
    ("only-a-legal-notice-cut", "Ok\n\nCONFIDENTIALITY NOTICE: " + _LONG_TEXT, False),
    ("short-text-above-footer", "Thanks, see you then.\n\nSent from my iPhone\n", True),
    (
        "quote-below-scanned-region",
        "A long update line.\n" * 1_100
        + "\nOn Mon, 4 Mar 2024, Ana <a@example.com> wrote:\n> Ok?\n",
        False,
    ),
]


@pytest.mark.parametrize(("name", "body", "confident"), CONFIDENCE, ids=[c[0] for c in CONFIDENCE])
def test_confidence(name: str, body: str, confident: bool) -> None:
    assert trim_quoted_reply(body).confident is confident


def test_region_rule_keeps_the_rest() -> None:
    # Below the scanned region nothing is trimmed, and nothing is lost either.
    body = (
        "A long update line.\n" * 1_100 + "\nOn Mon, 4 Mar 2024, Ana <a@example.com> wrote:\n> Ok?"
    )
    reply = trim_quoted_reply(body)
    assert reply.text == body.strip()
    assert reply.quoted == ""


def test_cut_near_the_top_moves_a_huge_quote_to_quoted() -> None:
    body = "Yes.\n\nOn Mon, 4 Mar 2024, Ana <a@example.com> wrote:\n" + "> old line\n" * 100_000
    reply = trim_quoted_reply(body)
    assert reply.text == "Yes."
    assert reply.quoted.count("> old line") == 100_000
    assert reply.confident


@pytest.mark.parametrize(
    "body",
    [
        "Plain prose that goes on and on without any quote at all.\n" * 20_000,
        "word " * 200_000,
        "On 1 2 3 4 5\n" * 80_000,
        "On 1 Mar 2024 12:00 a@b.co x:\n" * 30_000,
        "a: b: c: d: e: f: g: h:\n" * 40_000,
        "ok\n\n\n" * 100_000,
    ],
    ids=["prose", "one-line", "on-digits", "date-email-colon", "colons", "short-lines"],
)
def test_adversarial_text_is_kept_whole(body: str) -> None:
    # None of these has a quote, so all of it is the new text, however large.
    reply = trim_quoted_reply(body)
    assert reply.text.split() == body.split()
    assert reply.quoted == ""


def _appears(line: str, source: str) -> bool:
    body = line.strip()
    return body in source or (body.startswith(">") and body.lstrip("> ").strip() in source)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_property_never_raises_and_lines_come_from_input(text: str) -> None:
    reply = trim_quoted_reply(text)
    assert "\x00" not in reply.text
    source = text.replace("\x00", "")
    for line in reply.text.split("\n"):
        if line.strip():
            assert _appears(line, source)


_LINES = st.sampled_from(
    [
        "Hello team,",
        "> quoted",
        ">> deeper",
        "On Mon, 4 Mar 2024, A <a@b.co> wrote:",
        "-- ",
        "Sent from my iPhone",
        "From: A",
        "Sent: today",
        "To: B",
        "",
        "Thanks,",
        "Marcus",
        "-----Original Message-----",
        "2024-01-01 10:00 GMT+01:00 A <a@b.co>:",
        "plain words",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_LINES, max_size=30))
def test_property_structured_mail(lines: list[str]) -> None:
    text = "\n".join(lines)
    reply = trim_quoted_reply(text)
    for line in reply.text.split("\n"):
        if line.strip():
            assert _appears(line, text)


def test_marker_normalisation_keeps_the_text_as_sent() -> None:
    # Bidi controls and a literal "&nbsp;" are ignored when matching, not removed from the text.
    reply = trim_quoted_reply("\u202bשלום&nbsp;לכם\u202c\n\u200f> q\nb\n")
    assert reply.text == "\u202bשלום&nbsp;לכם\u202c\n> q\nb"

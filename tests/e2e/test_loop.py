"""The whole loop over real sockets: mail in -> thread -> digest out -> archive and API.

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import smtplib
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.tokens import FIX_LINK_PURPOSE, parse_recipient, sign_link, verify_reply_token
from tests.conftest import free_port
from tests.e2e.sink import running_sink
from tests.e2e.stack import (
    BIN,
    DOMAIN,
    Stack,
    digests_for,
    far_hour,
    journal_settled,
    mail,
    make_stack,
    quarantine_reasons,
    quarantined,
    reply_address_of,
    thread_titled,
    threads,
    updates_of,
    wait_for,
)

ALICE, BOB, CAROL = "alice@example.com", "bob@example.org", "carol@example.net"
TEAM = f"eng@{DOMAIN}"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        # Public: these tests read archive pages signed out; test_access covers privacy.
        stack.cli("team", "create", "eng", "--name", "Engineering", "--public")
        for who, name, tz in [(ALICE, "Alice", "Europe/Berlin"), (BOB, "Bob", "America/New_York")]:
            stack.cli(
                "member", "add", "eng", who, "--name", name, "--tz", tz, "--hour", far_hour(tz)
            )
        stack.token = stack.cli("token", "create", "--team", "eng").stdout.strip().splitlines()[-1]
        yield stack
    finally:
        stack.stop()


def post(stack: Stack, subject: str, body: str, title: str = "") -> dict:
    """Alice mails the team; returns the new thread (titled `title` or the subject)."""
    stack.send(mail(ALICE, TEAM, subject, body), ALICE, TEAM)
    title = title or subject
    return wait_for(lambda: thread_titled(stack, title), what=f"thread {title!r}")


def test_plain_mail_becomes_a_thread(stack: Stack) -> None:
    thread = post(
        stack, "Shipped the importer", "The CSV importer is live.\n\nHappy to pair on it."
    )
    updates = updates_of(stack, thread["id"])
    assert len(updates) == 1
    assert updates[0]["author"]["name"] == "Alice" and updates[0]["author"]["email"] == ALICE
    assert updates[0]["body"] == "The CSV importer is live.\n\nHappy to pair on it."
    assert updates[0]["placed_by"] == "new-thread"


def test_reply_subject_prefix_is_not_part_of_the_title(stack: Stack) -> None:
    thread = post(stack, "Re: AW: Roadmap notes", "Notes follow.", title="Roadmap notes")
    assert updates_of(stack, thread["id"])[0]["body"] == "Notes follow."


def test_non_member_is_refused_at_end_of_data_and_nothing_is_stored(stack: Stack) -> None:
    before = len(threads(stack))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        stack.send(mail(CAROL, TEAM, "Hello from outside", "Hi!"), CAROL, TEAM)
    assert refused.value.smtp_code == 550
    assert (
        b"5.7.1" in refused.value.smtp_error and b"not a member of eng" in refused.value.smtp_error
    )
    assert len(threads(stack)) == before
    assert stack.cli("quarantine", "list", "--json").stdout.count(CAROL) == 0


@pytest.mark.parametrize(
    "rcpt, text",
    [
        (f"nobody@{DOMAIN}", b"no such team"),
        ("eng@elsewhere.example", b"relaying denied"),
        (f"unsubscribe+abc@{DOMAIN}", b"unsubscribe address is not valid"),
    ],
)
def test_unknown_recipients_are_refused_at_rcpt(stack: Stack, rcpt: str, text: bytes) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        stack.send(mail(ALICE, rcpt, "Hi", "Hi"), ALICE, rcpt)
    code, message = refused.value.recipients[rcpt]
    assert code == 550 and text in message


def test_redelivery_with_same_message_id_makes_one_update(stack: Stack) -> None:
    msg = mail(ALICE, TEAM, "Sent twice by a flaky server", "Only once, please.")
    stack.send(msg, ALICE, TEAM)
    stack.send(msg, ALICE, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "Sent twice by a flaky server"))
    url = stack.env["TIDINGS_DATABASE_URL"]
    wait_for(lambda: journal_settled(url), what="the second copy to be processed")
    titles = [t["title"] for t in threads(stack)]
    assert titles.count("Sent twice by a flaky server") == 1
    assert len(updates_of(stack, thread["id"])) == 1


def test_redelivery_without_message_id_makes_one_update(stack: Stack) -> None:
    msg = mail(ALICE, TEAM, "No id at all", "Sent by a client that sets no Message-ID.")
    del msg["Message-ID"]
    for _ in range(2):  # the sender's server retries after a lost 250
        stack.send(msg, ALICE, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "No id at all"))
    wait_for(
        lambda: journal_settled(stack.env["TIDINGS_DATABASE_URL"]),
        what="both copies to be processed",
    )
    assert [t["title"] for t in threads(stack)].count("No id at all") == 1
    assert len(updates_of(stack, thread["id"])) == 1
    # New words under the same subject are a new post, not a redelivery.
    other = mail(ALICE, TEAM, "No id at all", "A second, different note.")
    del other["Message-ID"]
    stack.send(other, ALICE, TEAM)
    wait_for(lambda: [t["title"] for t in threads(stack)].count("No id at all") == 2)


def test_html_only_mail_is_stored_as_readable_text(stack: Stack) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ALICE, TEAM, "HTML only"
    msg.set_content(
        "<html><body><p>Finished the <b>billing</b> migration.</p>"
        "<ul><li>step one</li><li>step two</li></ul><script>alert(1)</script></body></html>",
        subtype="html",
    )
    stack.send(msg, ALICE, TEAM)
    body = updates_of(stack, wait_for(lambda: thread_titled(stack, "HTML only"))["id"])[0]["body"]
    assert "billing" in body and "step one" in body and "step two" in body
    assert "<" not in body and "alert" not in body


def test_attachment_is_stored_and_downloadable(stack: Stack) -> None:
    msg = mail(ALICE, TEAM, "Report attached", "See the numbers.")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="q3.pdf")
    stack.send(msg, ALICE, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "Report attached"))
    update = updates_of(stack, thread["id"])[0]
    assert update["body"] == "See the numbers."
    [attachment] = update["attachments"]
    assert attachment["filename"] == "q3.pdf" and attachment["size"] == len(b"%PDF-1.4 fake")
    download = stack.get(f"/attachments/{attachment['id']}")
    assert download.content == b"%PDF-1.4 fake"
    assert download.headers["content-disposition"].startswith("attachment;")


def test_tampered_reply_token_is_refused_at_rcpt(stack: Stack) -> None:
    stack.cli("checkin", "send", "eng")
    prompt = next(m for m in stack.outbox() if m["To"].addresses[0].addr_spec == BOB)
    good = reply_address_of(prompt)
    local, _, domain = good.partition("@")
    bad = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        stack.send(mail(BOB, bad, "Re: check-in", "Done."), BOB, bad)
    code, message = refused.value.recipients[bad]
    assert code == 550 and b"5.1.1" in message and b"not valid" in message


def test_checkin_prompt_and_reply_land_in_the_checkin_thread(stack: Stack) -> None:
    result = stack.cli("checkin", "send", "eng")  # a second time today: asks nobody again
    assert "0 to send, 2 already asked today" in result.stderr
    prompts = [m for m in stack.outbox() if "What did you get done today?" in str(m["Subject"])]
    assert sorted(m["To"].addresses[0].addr_spec for m in prompts) == [ALICE, BOB]
    to_bob = next(m for m in prompts if m["To"].addresses[0].addr_spec == BOB)
    assert to_bob.get_content_type() == "multipart/alternative"
    assert to_bob["Auto-Submitted"] == "auto-generated"
    address = reply_address_of(to_bob)
    claim = verify_reply_token(parse_recipient(address, DOMAIN).token, stack.reply_keys())
    reply = mail(
        BOB,
        address,
        f"Re: {to_bob['Subject']}",
        "Wrote the migration guide.\n\n-- \nBob\nStaff engineer",
    )
    stack.send(reply, BOB, address.upper())  # some servers upper-case local parts
    thread_id = claim.thread_id
    [update] = wait_for(lambda: updates_of(stack, thread_id), what="the check-in answer")
    assert update["body"] == "Wrote the migration guide."
    assert update["author"]["email"] == BOB and update["placed_by"] == "checkin"
    bobs_today = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    assert stack.api(f"/threads/{thread_id}").json()["checkin_date"] == bobs_today


def test_digest_then_reply_to_an_item_lands_in_that_thread(stack: Stack) -> None:
    thread = post(stack, "Cache invalidation plan", "Proposal: TTL of 5 minutes on the edge cache.")
    result = stack.cli("digest", "run", "--now")
    assert "planned" in result.stderr
    [digest] = digests_for(stack, BOB)
    assert digest.get_content_type() == "multipart/alternative"
    text = digest.get_body(("plain",)).get_content()
    html = digest.get_body(("html",)).get_content()
    for part in (text, html):
        assert "Proposal: TTL of 5 minutes on the edge cache." in part
        assert "Cache invalidation plan" in part and "Alice" in part
        assert "Wrote the migration guide." not in part  # Bob's own answer
    assert digest["Message-ID"] and digest["Auto-Submitted"] == "auto-generated"
    # Every reply address in the digest verifies, names Bob, and points at a real thread.
    addresses = {a for a in text.split() if a.startswith("eng+r.")}
    claims = [
        verify_reply_token(parse_recipient(a, DOMAIN).token, stack.reply_keys()) for a in addresses
    ]
    assert claims and all(c.person_id == claims[0].person_id for c in claims)
    item_address = next(
        a
        for a in addresses
        if verify_reply_token(parse_recipient(a, DOMAIN).token, stack.reply_keys()).thread_id
        == thread["id"]
    )

    # A second run sends nothing new to Bob: the same update is never sent twice.
    stack.cli("digest", "run", "--now")
    assert len(digests_for(stack, BOB)) == 1

    reply = mail(
        BOB,
        item_address,
        "Re: Cache invalidation plan",
        "Five minutes is fine by me.\n\nOn Tue, Alice <alice@example.com> wrote:\n"
        "> Proposal: TTL of 5 minutes on the edge cache.\n\n-- \nBob\n",
    )
    stack.send(reply, BOB, item_address)
    updates = wait_for(
        lambda: (u := updates_of(stack, thread["id"])) and len(u) == 2 and u, what="Bob's reply"
    )
    assert updates[1]["body"] == "Five minutes is fine by me."
    assert updates[1]["parent_id"] == updates[0]["id"]
    assert "Proposal" in updates[1]["quoted"]


def test_single_thread_digest_can_be_answered_with_plain_reply(stack: Stack) -> None:
    thread = post(stack, "Release train", "Cutting 2.3 on Thursday.")
    stack.cli("digest", "run", "--now")
    digest = digests_for(stack, BOB)[-1]
    assert "Release train" in str(digest["Subject"])
    address = reply_address_of(digest)  # the digest's own Reply-To: one thread, unambiguous
    claim = verify_reply_token(parse_recipient(address, DOMAIN).token, stack.reply_keys())
    assert claim.thread_id == thread["id"]
    quoted = "\n".join(
        "> " + line for line in digest.get_body(("plain",)).get_content().splitlines()
    )
    stack.send(
        mail(
            BOB,
            address,
            f"Re: {digest['Subject']}",
            f"Thursday works.\n\nSent from my iPhone\n\nOn Wed, Tidings wrote:\n{quoted}",
        ),
        BOB,
        address,
    )
    updates = wait_for(
        lambda: (u := updates_of(stack, thread["id"])) and len(u) == 2 and u,
        what="Bob's reply via Reply-To",
    )
    assert updates[1]["body"] == "Thursday works."


def test_digest_excludes_own_posts(stack: Stack) -> None:
    for msg in digests_for(stack, ALICE):
        assert "Proposal: TTL of 5 minutes" not in msg.get_body(("plain",)).get_content()


def test_auto_reply_is_kept_in_quarantine_not_posted(stack: Stack) -> None:
    msg = mail(
        ALICE,
        TEAM,
        "Out of office: back Monday",
        "I am away until Monday.",
        Auto_Submitted="auto-replied",
    )
    stack.send(msg, ALICE, TEAM)
    entries = wait_for(
        lambda: [
            e
            for e in json.loads(stack.cli("quarantine", "list", "--json").stdout)
            if e["reason"] == "auto-reply"
        ],
        what="the auto-reply in quarantine",
    )
    assert entries[0]["mail_from"] == ALICE
    assert thread_titled(stack, "Out of office: back Monday") is None
    assert stack.cli("quarantine", "list").stdout.count("auto-reply") >= 1


def test_an_out_of_office_reply_marks_its_member_away_until_they_are_back(
    stack: Stack,
) -> None:
    """Bob's auto-reply says when he is back: it is not posted, he is marked away until the
    day before (digests and check-ins wait for him), and the quarantine record says why."""
    today = datetime.now(ZoneInfo("America/New_York")).date()
    back = today + timedelta(days=10)
    msg = mail(
        BOB,
        TEAM,
        "Automatic reply: Weekly update",
        f"I am out of the office and back on {back.strftime('%d %B %Y')}.\n"
        "For urgent matters, ask Alice.",
        Auto_Submitted="auto-replied",
    )
    stack.send(msg, BOB, TEAM)
    [entry] = wait_for(
        lambda: [e for e in quarantined(stack) if e["message_id"] == msg["Message-ID"]],
        what="the out-of-office reply in quarantine",
    )
    last_day = back - timedelta(days=1)
    assert entry["reason"] == "auto-reply"
    assert f"marked away {today} to {last_day} (back {back})" in entry["detail"]
    members = json.loads(stack.cli("member", "list", "eng", "--json").stdout)
    [bob] = [m for m in members if m["email"] == BOB]
    assert f"away {today}..{last_day}" in bob["schedule"]
    assert thread_titled(stack, "Automatic reply: Weekly update") is None


def test_api_requires_a_token(stack: Stack) -> None:
    import httpx

    response = httpx.get(f"{stack.base_url}/api/teams", timeout=10)
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]
    bad = httpx.get(f"{stack.base_url}/api/teams", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_api_lists_teams_members_and_searches(stack: Stack) -> None:
    assert stack.api("/teams").json() == [
        {
            "slug": "eng",
            "name": "Engineering",
            "address": TEAM,
            "checkin_question": "What did you get done today?",
        }
    ]
    members = {m["email"]: m for m in stack.api("/teams/eng/members").json()}
    assert members[ALICE]["timezone"] == "Europe/Berlin" and members[BOB]["name"] == "Bob"
    post(stack, "Search me", "The flux capacitor needs recalibration.")
    hits = stack.api("/search", q="capacitor recalibration", team="eng").json()
    assert [h["thread_title"] for h in hits] == ["Search me"]
    assert "capacitor" in hits[0]["snippet"]
    assert stack.api("/search", q="capacitor zebra").json() == []
    assert stack.api("/quarantine").status_code == 403  # a team token cannot see all mail


def test_web_archive_lists_threads_shows_updates_and_searches(stack: Stack) -> None:
    thread = post(stack, "Archive check", "Line one <script>alert('x')</script>\nLine **two**")
    index = stack.get("/")
    assert (
        index.status_code == 200 and "Archive check" in index.text and "Engineering" in index.text
    )
    page = stack.get(f"/threads/{thread['id']}")
    assert "<strong>two</strong>" in page.text
    assert "<script>alert" not in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none'
    found = stack.get("/search", q="archive check")
    assert f"/threads/{thread['id']}" in found.text
    # Signed out, a thread that may not exist sends you to sign in, like a private one.
    missing = stack.get("/threads/999999")
    assert missing.status_code == 303
    assert missing.headers["location"] == "/signin?next=/threads/999999"


def test_readyz_reports_each_dependency(stack: Stack) -> None:
    ready = stack.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "smtp": "ok"}}
    # A web process whose configured listener is not running is up but not ready.
    port = free_port()
    web = subprocess.Popen(
        [str(BIN / "tidings"), "web"],
        env={**stack.env, "TIDINGS_HTTP_PORT": str(port), "TIDINGS_SMTP_PORT": str(free_port())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answer() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx.HTTPError:
                return None

        response = wait_for(answer, 30, "tidings web to answer")
        assert response.status_code == 503
        body = response.json()
        assert body["ready"] is False and body["checks"]["database"] == "ok"
        assert body["checks"]["smtp"].startswith("not accepting")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        web.terminate()
        web.wait(20)


def test_openapi_docs_are_served(stack: Stack) -> None:
    paths = stack.get("/openapi.json").json()["paths"]
    for path in [
        "/api/teams",
        "/api/teams/{slug}/members",
        "/api/teams/{slug}/threads",
        "/api/threads/{thread_id}",
        "/api/search",
        "/api/quarantine",
    ]:
        assert path in paths
    assert stack.get("/docs").status_code == 200


def test_digest_through_the_smtp_transport_reaches_a_real_server(tmp_path: Path) -> None:
    """A stack of its own, sending through a real SMTP server: the running worker and the
    CLI both deliver there, so whichever sends first, the relay sees it once."""
    with running_sink() as (sink, port):
        relay = make_stack(tmp_path, f"sqlite:///{tmp_path / 'relay.db'}", free_port(), free_port())
        relay.env["TIDINGS_OUTBOUND_URL"] = f"smtp://127.0.0.1:{port}"
        relay.start()
        try:
            relay.cli("team", "create", "eng", "--name", "Engineering")
            for who in (ALICE, BOB):
                relay.cli("member", "add", "eng", who, "--hour", far_hour("UTC"))
            relay.send(mail(ALICE, TEAM, "Relay check", "Sent through a relay."), ALICE, TEAM)
            wait_for(lambda: journal_settled(relay.env["TIDINGS_DATABASE_URL"]), what="the post")
            result = relay.cli("digest", "run", "--now")
            assert f"SMTP relay 127.0.0.1:{port}" in result.stderr
            [envelope] = wait_for(lambda: [e for e in sink.received if e.rcpt_tos == [BOB]])
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert "Sent through a relay." in msg.get_body(("plain",)).get_content()
            assert not (tmp_path / "outbox").exists()  # nothing went to the default Maildir
            # VERP: the envelope sender names Bob, so the bounce says whose address failed
            # even though it quotes nothing of the digest.
            return_path = envelope.mail_from
            assert return_path.startswith("bounce+") and return_path.endswith(f"@{DOMAIN}")
            relay.send(dsn_to(return_path), "", return_path)
            entry = wait_for(
                lambda: next(
                    (e for e in quarantined(relay) if "Returned mail" in (e["detail"] or "")),
                    None,
                ),
                what="the bounce",
            )
            assert entry["reason"] == "bounce" and BOB in entry["detail"]
            forged = f"bounce+{return_path[7:20]}@{DOMAIN}"
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                relay.send(dsn_to(forged), "", forged)
        finally:
            relay.stop()


def dsn_to(address: str) -> bytes:
    """A delivery status notification that names no recipient of its own."""
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: {address}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        "Final-Recipient: rfc822; mailbox-42@mx.example.org\r\nAction: failed\r\n"
        "Status: 5.1.1\r\n--R--\r\n"
    ).encode()


def test_bounce_from_mailer_daemon_is_kept_not_posted(stack: Stack) -> None:
    dsn = (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: {TEAM}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        "Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n--R--\r\n"
    ).encode()
    before = quarantine_reasons(stack).count("bounce")
    stack.send(dsn, "", TEAM)  # bounces come with a null envelope sender
    wait_for(lambda: quarantine_reasons(stack).count("bounce") == before + 1, what="the bounce")
    assert thread_titled(stack, "Undelivered Mail Returned to Sender") is None


def test_reply_token_used_by_another_member_is_held(stack: Stack) -> None:
    stack.cli("checkin", "send", "eng")  # once a day: a no-op if an earlier test sent it
    to_bob = next(
        m
        for m in stack.outbox()
        if m["To"].addresses[0].addr_spec == BOB and "What did you get done" in str(m["Subject"])
    )
    bobs_address = reply_address_of(to_bob)
    thread_id = verify_reply_token(
        parse_recipient(bobs_address, DOMAIN).token, stack.reply_keys()
    ).thread_id
    before = len(updates_of(stack, thread_id))
    stack.send(mail(ALICE, bobs_address, "Re: check-in", "Posting as Bob?"), ALICE, bobs_address)
    wait_for(lambda: "unverified-sender" in quarantine_reasons(stack), what="the hold")
    assert len(updates_of(stack, thread_id)) == before


def fix_link(stack: Stack, update_id: int) -> str:
    """The link a 'posted as' receipt carries (signed with the server's own secret)."""
    token = sign_link(
        FIX_LINK_PURPOSE, update_id, datetime.now(UTC) + timedelta(days=14), stack.secret()
    )
    return f"/updates/{update_id}/fix?t={token}"


def test_author_can_fix_what_was_posted_through_the_signed_link(stack: Stack) -> None:
    thread = post(stack, "Fix me", "Text that was cut wrong.")
    [update] = updates_of(stack, thread["id"])
    link = fix_link(stack, update["id"])
    form = stack.get(link)
    assert form.status_code == 200 and "Text that was cut wrong." in form.text
    token = link.split("t=", 1)[1]
    empty = httpx.post(
        f"{stack.base_url}/updates/{update['id']}/fix", data={"t": token, "body": " "}
    )
    assert empty.status_code == 400 and "cannot be empty" in empty.text
    saved = httpx.post(
        f"{stack.base_url}/updates/{update['id']}/fix",
        data={"t": token, "body": "The text I meant."},
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/threads/{thread['id']}#u{update['id']}"
    [fixed] = updates_of(stack, thread["id"])
    assert fixed["body"] == "The text I meant." and fixed["edited_at"]
    assert "corrected by the author" in stack.get(f"/threads/{thread['id']}").text


def test_fix_link_only_works_for_its_own_update(stack: Stack) -> None:
    mine, theirs = post(stack, "Mine", "Mine."), post(stack, "Not mine", "Not mine.")
    [first], [other] = updates_of(stack, mine["id"]), updates_of(stack, theirs["id"])
    token = fix_link(stack, first["id"]).split("t=", 1)[1]
    altered = token[:30] + ("A" if token[30] != "A" else "B") + token[31:]  # inside the MAC
    for update_id, t in [(other["id"], token), (first["id"], altered), (first["id"], "")]:
        page = stack.get(f"/updates/{update_id}/fix", t=t)
        assert page.status_code == 403 and "does not work" in page.text
        posted = httpx.post(f"{stack.base_url}/updates/{update_id}/fix", data={"t": t, "body": "x"})
        assert posted.status_code == 403
    assert [u["body"] for u in updates_of(stack, mine["id"])] == ["Mine."]
    assert [u["body"] for u in updates_of(stack, theirs["id"])] == ["Not mine."]


def test_too_many_recipients_are_deferred_with_a_reason(stack: Stack) -> None:
    recipients = [TEAM] * 51
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail(ALICE)
        codes = [client.rcpt(r) for r in recipients]
    assert [c for c, _ in codes[:50]] == [250] * 50
    assert codes[50][0] == 452 and b"4.5.3" in codes[50][1]


def test_unsure_extraction_sends_a_receipt_whose_link_fixes_the_post(stack: Stack) -> None:
    stack.cli("checkin", "send", "eng")  # once a day: a no-op if an earlier test sent it
    prompt = next(
        m
        for m in stack.outbox()
        if m["To"].addresses[0].addr_spec == ALICE and "What did you get done" in str(m["Subject"])
    )
    address = reply_address_of(prompt)
    original = " ".join(["The quarterly planning notes follow in full."] * 120)
    body = f"Agreed with everything.\n\nSent from my iPhone\n\n{original}\n"  # no > markers
    stack.send(mail(ALICE, address, f"Re: {prompt['Subject']}", body), ALICE, address)

    def receipt() -> EmailMessage | None:
        return next((m for m in stack.outbox() if "please check" in str(m["Subject"])), None)

    msg = wait_for(receipt, what="the 'posted as' receipt")
    assert msg["To"].addresses[0].addr_spec == ALICE
    assert msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_body(("plain",)).get_content()
    assert "Agreed with everything." in text
    link = next(w for w in text.split() if "/fix?t=" in w)
    path, token = link.removeprefix(stack.base_url).split("?t=")
    form = stack.get(path, t=token)
    assert form.status_code == 200 and "quarterly planning notes" in form.text
    saved = httpx.post(
        f"{stack.base_url}{path}",
        data={"t": token, "body": "Agreed with everything, and the planning notes look right."},
    )
    assert saved.status_code == 303
    thread_id = int(saved.headers["location"].split("/threads/")[1].split("#")[0])
    [fixed] = [u for u in updates_of(stack, thread_id) if u["author"]["email"] == ALICE]
    assert fixed["body"] == "Agreed with everything, and the planning notes look right."
    # Answering the receipt (it comes from the team address) adds to the same thread.
    answer = mail(
        ALICE, TEAM, f"Re: {msg['Subject']}", "Thanks, fixed.", In_Reply_To=str(msg["Message-ID"])
    )
    stack.send(answer, ALICE, TEAM)
    updates = wait_for(
        lambda: (u := updates_of(stack, thread_id)) and u[-1]["body"] == "Thanks, fixed." and u,
        what="the answer to the receipt",
    )
    assert updates[-1]["placed_by"] == "in-reply-to"
    # A confident extraction sends no receipt: only this one is in the outbox.
    assert sum("please check" in str(m["Subject"]) for m in stack.outbox()) == 1


def test_reply_to_team_address_with_in_reply_to_joins_that_post(stack: Stack) -> None:
    original = mail(ALICE, TEAM, "Migration window", "Saturday 06:00 UTC works for me.")
    stack.send(original, ALICE, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "Migration window"))
    # Bob's client answered Alice's message to the list address, keeping only In-Reply-To.
    reply = mail(
        BOB, TEAM, "Migration window", "Saturday works.", In_Reply_To=str(original["Message-ID"])
    )
    stack.send(reply, BOB, TEAM)
    updates = wait_for(lambda: (u := updates_of(stack, thread["id"])) and len(u) == 2 and u)
    assert updates[1]["placed_by"] == "in-reply-to"
    assert updates[1]["parent_id"] == updates[0]["id"]
    assert thread_titled(stack, "Migration window")["id"] == thread["id"]


def test_answer_to_checkin_sent_to_team_address_finds_the_checkin_thread(stack: Stack) -> None:
    stack.cli("checkin", "send", "eng")  # once a day: a no-op if an earlier test sent it
    prompt = next(
        m
        for m in stack.outbox()
        if m["To"].addresses[0].addr_spec == ALICE and "What did you get done" in str(m["Subject"])
    )
    thread_id = verify_reply_token(
        parse_recipient(reply_address_of(prompt), DOMAIN).token, stack.reply_keys()
    ).thread_id
    before = len(updates_of(stack, thread_id))
    # Replying to the From address (the team) instead of Reply-To, References kept.
    reply = mail(
        ALICE,
        TEAM,
        f"Re: {prompt['Subject']}",
        "Reviewed three pull requests.",
        References=str(prompt["Message-ID"]),
    )
    stack.send(reply, ALICE, TEAM)
    updates = wait_for(lambda: (u := updates_of(stack, thread_id)) and len(u) > before and u)
    assert updates[-1]["body"] == "Reviewed three pull requests."
    assert updates[-1]["placed_by"] == "in-reply-to"


def test_reply_without_references_is_placed_by_its_subject(stack: Stack) -> None:
    thread = post(stack, "Hiring loop", "Two onsite interviews next week.")
    # A Gmail-style reply that dropped References: only "Re:" + the subject connect it.
    stack.send(mail(BOB, TEAM, "RE: Hiring loop", "I can take one."), BOB, TEAM)
    updates = wait_for(lambda: (u := updates_of(stack, thread["id"])) and len(u) == 2 and u)
    assert updates[1]["placed_by"] == "subject" and updates[1]["parent_id"] == updates[0]["id"]


@pytest.mark.parametrize("subject", ["Fwd: Hiring loop", "Hiring loop"])
def test_forwards_and_unprefixed_subjects_start_new_threads(stack: Stack, subject: str) -> None:
    before = [t["id"] for t in threads(stack) if t["title"] == "Hiring loop"]
    stack.send(mail(ALICE, TEAM, subject, f"A new post titled {subject}."), ALICE, TEAM)
    wait_for(lambda: len([t for t in threads(stack) if t["title"] == "Hiring loop"]) > len(before))
    [new] = [t for t in threads(stack) if t["title"] == "Hiring loop" and t["id"] not in before]
    assert updates_of(stack, new["id"])[0]["placed_by"] == "new-thread"


def test_digest_list_headers_wrapping_and_one_click_unsubscribe(stack: Stack) -> None:
    """Last in this module: it turns Bob's digests off."""
    long_line = " ".join(["The rollout continues region by region with careful monitoring."] * 6)
    post(stack, "Rollout", f"{long_line}\n\n- short item\n- {long_line}")
    stack.cli("digest", "run", "--now")
    digest = digests_for(stack, BOB)[-1]
    assert digest["List-Id"] == f"Engineering <eng.{DOMAIN}>"  # one team: that team's list
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    mailto, url = re.findall(r"<([^>]+)>", str(digest["List-Unsubscribe"]))
    assert mailto.startswith("mailto:unsubscribe+") and mailto.endswith(
        f"@{DOMAIN}?subject=unsubscribe"
    )
    assert url.startswith(f"{stack.base_url}/unsubscribe?t=")
    text = digest.get_body(("plain",)).get_content()
    assert all(
        len(line) <= 72 for line in text.splitlines() if "://" not in line and "@" not in line
    )
    assert "- short item" in text and "region by region" in text
    assert url in text and url.replace("&", "&amp;") in digest.get_body(("html",)).get_content()

    def bob_cadence() -> str:
        return {m["email"]: m for m in stack.api("/teams/eng/members").json()}[BOB][
            "digest_cadence"
        ]

    page = httpx.get(url, timeout=10)  # what a link scanner or a preview does
    assert page.status_code == 200 and "Stop my digests" in page.text
    assert bob_cadence() == "daily"
    # RFC 8058 one-click: a POST to the URL as given, no cookies, a fixed body.
    done = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert done.status_code == 200 and "Digests stopped" in done.text
    assert bob_cadence() == "off"
    alice = {m["email"]: m for m in stack.api("/teams/eng/members").json()}[ALICE]
    assert alice["digest_cadence"] == "daily"
    token = url.split("t=")[1]
    # A character well inside the token: the last one may only carry padding bits.
    altered = token[:-5] + ("B" if token[-5] == "A" else "A") + token[-4:]
    forged = httpx.post(
        f"{stack.base_url}/unsubscribe?t={altered}",
        data={"List-Unsubscribe": "One-Click"},
        timeout=10,
    )
    assert forged.status_code == 403

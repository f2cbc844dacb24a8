"""Threads and identity over real SMTP: where each reply lands, who it is posted as, and
what happens to mail that claims to be someone it is not.

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

import base64
import re
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import update as sql_update

from app.db import make_engine, session_scope
from app.models import Thread, Update
from app.tokens import parse_recipient, verify_reply_token
from tests.conftest import free_port
from tests.e2e.stack import (
    DOMAIN,
    Stack,
    digests_for,
    far_hour,
    mail,
    make_stack,
    quarantined,
    reply_address_of,
    thread_titled,
    threads,
    updates_of,
    wait_for,
)

ALICE, BOB, CAROL = "alice@example.com", "bob@example.org", "carol@example.net"
TEAM = f"eng@{DOMAIN}"
TRUSTED_MTA = "mx.tidings.test"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.env["TIDINGS_TRUSTED_AUTHSERV_IDS"] = TRUSTED_MTA
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


def in_db(stack: Stack, statement: object) -> None:
    """Change stored data the way time would have (backdating); never our own code paths."""
    engine = make_engine(stack.env["TIDINGS_DATABASE_URL"])
    try:
        with session_scope(engine) as session:
            session.exec(statement)  # type: ignore[call-overload]
    finally:
        engine.dispose()


def post(stack: Stack, subject: str, body: str, sender: str = ALICE) -> dict:
    stack.send(mail(sender, TEAM, subject, body), sender, TEAM)
    return wait_for(lambda: thread_titled(stack, subject), what=f"thread {subject!r}")


def address_for(stack: Stack, person: str, thread_id: int) -> str:
    """`person`'s reply address for `thread_id`, from the digest the stack mailed them."""
    stack.cli("digest", "run", "--now")
    for digest in reversed(digests_for(stack, person)):
        text = digest.get_body(("plain",)).get_content()
        for address in re.findall(r"eng\+r\.[a-z2-7]+@" + re.escape(DOMAIN), text):
            token = parse_recipient(address, DOMAIN).token
            if verify_reply_token(token, stack.reply_keys()).thread_id == thread_id:
                return address
    raise AssertionError(f"no reply address for thread {thread_id} in {person}'s digests")


def refusal(stack: Stack, msg: EmailMessage, sender: str, rcpt: str) -> tuple[int, str]:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        stack.send(msg, sender, rcpt)
    code, text = refused.value.recipients[rcpt]
    return code, text.decode()


def held(stack: Stack, sender: str) -> list[dict]:
    return [
        e
        for e in quarantined(stack)
        if e["reason"] == "unverified-sender" and e["mail_from"] == sender
    ]


# Where a message belongs ----------------------------------------------------------------


@pytest.mark.parametrize("mangle", [str.upper, str.lower, str.swapcase])
def test_reply_addresses_survive_servers_that_change_their_case(stack: Stack, mangle) -> None:
    thread = post(stack, f"Case test {mangle.__name__}", "Does case matter?")
    address = address_for(stack, BOB, thread["id"])
    local, _, domain = address.partition("@")
    mangled = f"{mangle(local)}@{domain}"
    stack.send(mail(BOB, mangled, "Re: case", "It does not."), BOB, mangled)
    updates = wait_for(lambda: (u := updates_of(stack, thread["id"])) and len(u) == 2 and u)
    assert updates[1]["body"] == "It does not." and updates[1]["placed_by"] == "reply-token"


def test_outlook_reply_with_only_thread_index_finds_its_thread(stack: Stack) -> None:
    conversation = base64.b64decode("AdtCmZ8hL0bWuv5MTZ2nXf6tLc2Z4A==")[:22]
    first = mail(ALICE, TEAM, "Office move", "We move floors on Friday.")
    first["Thread-Index"] = base64.b64encode(conversation).decode()
    stack.send(first, ALICE, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "Office move"))
    # Outlook appends five bytes per reply; this one also changed the subject and kept no
    # In-Reply-To or References, so only Thread-Index connects it.
    reply = mail(BOB, TEAM, "Desk plan for the move", "I'll bring boxes.")
    reply["Thread-Index"] = base64.b64encode(conversation + b"\x00\x01\x02\x03\x04").decode()
    stack.send(reply, BOB, TEAM)
    updates = wait_for(lambda: (u := updates_of(stack, thread["id"])) and len(u) == 2 and u)
    assert updates[1]["placed_by"] == "thread-index"
    assert updates[1]["body"] == "I'll bring boxes."


def test_reply_through_a_mailing_list_that_tags_subjects_finds_its_thread(stack: Stack) -> None:
    thread = post(stack, "Standup notes", "Notes are in the wiki.")
    stack.send(mail(BOB, TEAM, "[eng-list] RE : Standup notes", "Added mine."), BOB, TEAM)
    updates = wait_for(lambda: (u := updates_of(stack, thread["id"])) and len(u) == 2 and u)
    assert updates[1]["placed_by"] == "subject" and updates[1]["body"] == "Added mine."


def test_reply_to_a_two_week_old_digest_finds_its_thread(stack: Stack) -> None:
    stack.cli("digest", "run", "--now")  # earlier posts go out first: this digest has one thread
    thread = post(stack, "Quarterly goals", "Draft goals are in the doc.")
    stack.cli("digest", "run", "--now")
    digest = digests_for(stack, BOB)[-1]
    assert "Quarterly goals" in str(digest["Subject"])
    weeks_ago = datetime.now(UTC) - timedelta(days=15)
    in_db(
        stack,
        sql_update(Thread).where(Thread.id == thread["id"]).values(last_activity_at=weeks_ago),
    )
    in_db(
        stack,
        sql_update(Update).where(Update.thread_id == thread["id"]).values(created_at=weeks_ago),
    )
    # Without In-Reply-To, a subject this old is not trusted: a new thread starts.
    stack.send(mail(BOB, TEAM, "Re: Quarterly goals", "Another thought."), BOB, TEAM)
    wait_for(
        lambda: len([t for t in threads(stack) if t["title"] == "Quarterly goals"]) == 2,
        what="a second thread",
    )
    # Two weeks later Bob answers the digest to the team address; only In-Reply-To is left.
    late = mail(
        BOB, TEAM, "Re: Quarterly goals", "Late, but: +1.", In_Reply_To=str(digest["Message-ID"])
    )
    stack.send(late, BOB, TEAM)
    updates = wait_for(lambda: (u := updates_of(stack, thread["id"])) and len(u) == 2 and u)
    assert updates[1]["placed_by"] == "in-reply-to" and updates[1]["body"] == "Late, but: +1."


def test_late_checkin_answer_lands_on_its_day_and_says_when(stack: Stack) -> None:
    stack.cli("checkin", "send", "eng")
    prompt = next(
        m
        for m in stack.outbox()
        if m["To"].addresses[0].addr_spec == BOB and "What did you get done" in str(m["Subject"])
    )
    address = reply_address_of(prompt)
    thread_id = verify_reply_token(
        parse_recipient(address, DOMAIN).token, stack.reply_keys()
    ).thread_id
    asked = datetime.now(ZoneInfo("America/New_York")).date() - timedelta(days=3)
    in_db(stack, sql_update(Thread).where(Thread.id == thread_id).values(checkin_date=asked))
    stack.send(mail(BOB, address, f"Re: {prompt['Subject']}", "Finished the audit."), BOB, address)
    [update] = wait_for(lambda: updates_of(stack, thread_id), what="the late answer")
    today = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    assert update["placed_by"] == "checkin" and update["answered_on"] == today
    page = stack.get(f"/threads/{thread_id}").text
    assert f"answered on {today}" in page


def test_replies_to_replies_keep_the_tree_in_api_and_archive(stack: Stack) -> None:
    first = mail(ALICE, TEAM, "Tree test", "Root post.")
    stack.send(first, ALICE, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "Tree test"))
    second = mail(BOB, TEAM, "Re: Tree test", "Bob answers.", In_Reply_To=str(first["Message-ID"]))
    stack.send(second, BOB, TEAM)
    wait_for(lambda: len(updates_of(stack, thread["id"])) == 2)
    third = mail(
        ALICE, TEAM, "Re: Tree test", "Alice answers Bob.", In_Reply_To=str(second["Message-ID"])
    )
    stack.send(third, ALICE, TEAM)
    fourth = mail(
        ALICE,
        TEAM,
        "Re: Tree test",
        "Alice adds to her root.",
        In_Reply_To=str(first["Message-ID"]),
    )
    stack.send(fourth, ALICE, TEAM)
    updates = wait_for(lambda: (u := updates_of(stack, thread["id"])) and len(u) == 4 and u)
    shown = [(u["body"], u["depth"]) for u in updates]
    assert shown == [
        ("Root post.", 0),
        ("Bob answers.", 1),
        ("Alice answers Bob.", 2),
        ("Alice adds to her root.", 1),
    ]
    html = stack.get(f"/threads/{thread['id']}").text
    assert html.index("Alice answers Bob.") < html.index("Alice adds to her root.")
    assert f'class="update reply depth-2" id="u{updates[2]["id"]}"' in html


def test_forwarded_message_becomes_a_new_thread_marked_as_forwarded(stack: Stack) -> None:
    existing = post(stack, "Vendor contract", "Existing thread with the same title.")
    inner = EmailMessage()
    inner["From"] = "Vendor Sales <sales@vendor.example>"
    inner["To"] = ALICE
    inner["Subject"] = "Vendor contract"
    inner["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    inner.set_content("The renewal price goes up 4% in January.")
    outer = mail(ALICE, TEAM, "Fwd: Vendor contract", "FYI, see below.")
    outer.add_attachment(inner)
    stack.send(outer, ALICE, TEAM)
    forwarded = wait_for(
        lambda: next(
            (
                t
                for t in threads(stack)
                if t["title"] == "Vendor contract" and t["id"] != existing["id"]
            ),
            None,
        ),
        what="the forward's own thread",
    )
    [update] = updates_of(stack, forwarded["id"])
    assert update["placed_by"] == "new-thread"
    assert "FYI, see below." in update["body"]
    assert "Forwarded message" in update["body"]
    assert "The renewal price goes up 4% in January." in update["body"]
    assert "sales@vendor.example" in update["body"]


def test_inline_gmail_forward_keeps_the_forwarded_text(stack: Stack) -> None:
    body = (
        "Worth reading before Thursday.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Dana Ops <dana@ops.example>\n"
        "Date: Mon, Nov 23, 2026 at 9:12 AM\n"
        "Subject: Incident review\n"
        "To: <alice@example.com>\n\n"
        "Root cause was an expired certificate on the edge proxy.\n"
    )
    stack.send(mail(ALICE, TEAM, "Fwd: Incident review", body), ALICE, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "Incident review"), what="the forward")
    [update] = updates_of(stack, thread["id"])
    assert update["body"].startswith("Worth reading before Thursday.")
    assert "Forwarded message" in update["body"] and "dana@ops.example" in update["body"]
    assert "Root cause was an expired certificate on the edge proxy." in update["body"]
    page = stack.get(f"/threads/{thread['id']}").text
    assert "<blockquote>" in page and "expired certificate" in page


# Who sent it ----------------------------------------------------------------------------


def test_forged_from_with_a_valid_token_is_held_until_the_member_approves(stack: Stack) -> None:
    thread = post(stack, "Budget", "Q1 budget is due.")
    bobs_address = address_for(stack, BOB, thread["id"])
    # Carol, who is not a member, answers a digest Bob forwarded to her.
    stack.send(
        mail(CAROL, bobs_address, "Re: Budget", "I can cover the travel line."), CAROL, bobs_address
    )
    [entry] = wait_for(lambda: held(stack, CAROL), what="the hold")
    assert BOB in entry["detail"] and CAROL in entry["detail"]
    assert len(updates_of(stack, thread["id"])) == 1  # never shown under Bob's name

    outbox = stack.outbox()
    [request] = [
        m
        for m in outbox
        if m["To"].addresses[0].addr_spec == BOB and "Approve" in str(m["Subject"])
    ]
    [notice] = [m for m in outbox if m["To"].addresses[0].addr_spec == CAROL]
    assert "waiting for approval" in str(notice["Subject"])
    assert notice["Auto-Submitted"] == "auto-generated"
    text = request.get_body(("plain",)).get_content()
    assert "I can cover the travel line." in text and CAROL in text
    link = re.search(r"http://\S+/held/\d+\?\S+", text).group(0)

    review = httpx.get(link, timeout=10)
    assert review.status_code == 200 and "I can cover the travel line." in review.text
    # The link works only for Bob: the same token with Alice's id is refused.
    form = dict(re.findall(r'name="(p|t)" value="([^"]*)"', review.text))
    entry_id = re.search(r"/held/(\d+)", link).group(1)
    forged = httpx.post(
        f"{stack.base_url}/held/{entry_id}/approve", data={**form, "p": "1"}, timeout=10
    )
    assert forged.status_code == 403
    assert len(updates_of(stack, thread["id"])) == 1

    approved = httpx.post(f"{stack.base_url}/held/{entry_id}/approve", data=form, timeout=10)
    assert approved.status_code == 200 and "Approved" in approved.text
    updates = wait_for(lambda: (u := updates_of(stack, thread["id"])) and len(u) == 2 and u)
    assert updates[1]["author"]["email"] == BOB
    assert updates[1]["body"] == "I can cover the travel line."
    again = httpx.post(f"{stack.base_url}/held/{entry_id}/approve", data=form, timeout=10)
    assert "Already decided" in again.text
    assert len(updates_of(stack, thread["id"])) == 2


def test_held_reply_can_be_discarded_and_notices_are_rationed(stack: Stack) -> None:
    thread = post(stack, "Offsite", "Offsite venue ideas?")
    bobs_address = address_for(stack, BOB, thread["id"])
    notices_before = len([m for m in stack.outbox() if m["To"].addresses[0].addr_spec == CAROL])
    stack.send(mail(CAROL, bobs_address, "Re: Offsite", "Lisbon!"), CAROL, bobs_address)
    wait_for(
        lambda: any(
            "Lisbon" in m.get_body(("plain",)).get_content()
            for m in stack.outbox()
            if m["To"].addresses[0].addr_spec == BOB
        ),
        what="the approval request",
    )
    request = [
        m
        for m in stack.outbox()
        if m["To"].addresses[0].addr_spec == BOB
        and "Lisbon" in m.get_body(("plain",)).get_content()
    ][-1]
    link = re.search(r"http://\S+/held/\d+\?\S+", request.get_body(("plain",)).get_content()).group(
        0
    )
    form = dict(re.findall(r'name="(p|t)" value="([^"]*)"', httpx.get(link, timeout=10).text))
    entry_id = re.search(r"/held/(\d+)", link).group(1)
    discarded = httpx.post(f"{stack.base_url}/held/{entry_id}/discard", data=form, timeout=10)
    assert discarded.status_code == 200 and "Discarded" in discarded.text
    assert len(updates_of(stack, thread["id"])) == 1
    # Carol was told about her first held reply today already: no second notice (loop guard).
    notices = [m for m in stack.outbox() if m["To"].addresses[0].addr_spec == CAROL]
    assert len(notices) == notices_before


def test_approving_a_reply_whose_thread_was_deleted_keeps_it_with_the_reason(
    stack: Stack,
) -> None:
    thread = post(stack, "Soon deleted", "This thread will go.")
    bobs_address = address_for(stack, BOB, thread["id"])
    stack.send(mail(CAROL, bobs_address, "Re: Soon deleted", "Too late?"), CAROL, bobs_address)

    def request() -> EmailMessage | None:
        return next(
            (
                m
                for m in stack.outbox()
                if m["To"].addresses[0].addr_spec == BOB
                and "Too late?" in m.get_body(("plain",)).get_content()
            ),
            None,
        )

    text = wait_for(request, what="the approval request").get_body(("plain",)).get_content()
    link = re.search(r"http://\S+/held/\d+\?\S+", text).group(0)
    stack.cli("thread", "delete", str(thread["id"]))
    review = httpx.get(link, timeout=10)
    assert review.status_code == 200 and "Too late?" in review.text
    form = dict(re.findall(r'name="(p|t)" value="([^"]*)"', review.text))
    entry_id = re.search(r"/held/(\d+)", link).group(1)
    httpx.post(f"{stack.base_url}/held/{entry_id}/approve", data=form, timeout=10)
    entry = wait_for(
        lambda: next(
            (
                e
                for e in quarantined(stack)
                if e["id"] == int(entry_id) and e["reason"] != "unverified-sender"
            ),
            None,
        ),
        what="the re-processed entry",
    )
    assert entry["reason"] == "thread-deleted" and "deleted" in entry["detail"]


def test_forged_from_to_the_team_address_is_refused(stack: Stack) -> None:
    forged = mail("Alice <alice@example.com.evil.example>", TEAM, "Hi", "Pay this invoice.")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        stack.send(forged, "alice@example.com.evil.example", TEAM)
    assert refused.value.smtp_code == 550
    assert b"not a member of eng" in refused.value.smtp_error


def test_authentication_results_count_only_from_the_trusted_mta(stack: Stack) -> None:
    untrusted = mail(ALICE, TEAM, "Auth untrusted", "Posted despite a stranger's verdict.")
    untrusted["Authentication-Results"] = "mx.evil.example; dmarc=fail header.from=example.com"
    stack.send(untrusted, ALICE, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "Auth untrusted"))
    assert updates_of(stack, thread["id"])[0]["body"] == "Posted despite a stranger's verdict."

    spoofed = mail(ALICE, TEAM, "Auth trusted", "A spoofed Alice.")
    spoofed["Authentication-Results"] = (
        f"{TRUSTED_MTA}; dmarc=fail (p=reject) header.from=example.com"
    )
    stack.send(spoofed, ALICE, TEAM)
    entry = wait_for(
        lambda: next(
            (e for e in quarantined(stack) if e["reason"] == "failed-sender-authentication"), None
        ),
        what="the quarantine",
    )
    assert TRUSTED_MTA in entry["detail"] and "example.com" in entry["detail"]
    assert thread_titled(stack, "Auth trusted") is None


# Removed members, deleted threads, rotated keys ----------------------------------------


def test_reply_address_of_a_removed_member_is_refused_with_the_reason(stack: Stack) -> None:
    thread = post(stack, "Removal test", "Who is still here?")
    bobs_address = address_for(stack, BOB, thread["id"])
    stack.cli("member", "remove", "eng", BOB)
    try:
        code, text = refusal(
            stack, mail(BOB, bobs_address, "Re: x", "Still me."), BOB, bobs_address
        )
        assert code == 550 and "no longer a member of eng" in text
    finally:
        stack.cli("member", "add", "eng", BOB, "--name", "Bob", "--tz", "America/New_York")


def test_reply_address_of_a_deleted_thread_is_refused_with_the_reason(stack: Stack) -> None:
    thread = post(stack, "Deletion test", "Posted by mistake.")
    bobs_address = address_for(stack, BOB, thread["id"])
    result = stack.cli("thread", "delete", str(thread["id"]))
    assert "deleted" in result.stderr
    assert stack.api(f"/threads/{thread['id']}").status_code == 404
    assert stack.get(f"/threads/{thread['id']}").status_code == 303  # signed out: sign in
    code, text = refusal(stack, mail(BOB, bobs_address, "Re: x", "Hm?"), BOB, bobs_address)
    assert code == 550 and "was deleted" in text and TEAM in text


def test_alias_counts_only_after_its_confirmation_link(stack: Stack) -> None:
    alias = "bob@home.example"
    stack.cli("member", "alias", "add", BOB, alias)
    too_soon = mail(alias, TEAM, "From home", "Posting from my other address.")
    with pytest.raises(smtplib.SMTPDataError):
        stack.send(too_soon, alias, TEAM)
    [confirmation] = [m for m in stack.outbox() if m["To"].addresses[0].addr_spec == alias]
    link = re.search(
        r"http://\S+/aliases/\d+/confirm\?t=\S+", confirmation.get_body(("plain",)).get_content()
    ).group(0)
    page = httpx.get(link, timeout=10)
    assert page.status_code == 200 and alias in page.text
    token = re.search(r'name="t" value="([^"]*)"', page.text).group(1)
    confirmed = httpx.post(link.split("?")[0], data={"t": token}, timeout=10)
    assert confirmed.status_code == 200 and "confirmed" in confirmed.text
    listed = stack.cli("member", "alias", "list", BOB).stdout
    assert alias in listed and "confirmed" in listed
    stack.send(mail(alias, TEAM, "From home", "Posting from my other address."), alias, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "From home"))
    [update] = updates_of(stack, thread["id"])
    assert update["author"]["email"] == BOB


def test_reply_to_a_whole_digest_is_kept_and_answered_with_item_addresses(stack: Stack) -> None:
    stack.cli("digest", "run", "--now")  # earlier posts go out first
    first = post(stack, "Digest reply A", "First of two.")
    second = post(stack, "Digest reply B", "Second of two.")
    stack.cli("digest", "run", "--now")
    digest = digests_for(stack, BOB)[-1]
    assert digest["Reply-To"] is None  # two threads: no single place to reply to
    sender = digest["From"].addresses[0].addr_spec
    reply = mail(
        BOB,
        sender,
        f"Re: {digest['Subject']}",
        "Agree with both.",
        In_Reply_To=str(digest["Message-ID"]),
    )
    stack.send(reply, BOB, sender)  # accepted: 250, not a bounce
    entry = wait_for(
        lambda: next((e for e in quarantined(stack) if e["reason"] == "digest-reply"), None),
        what="the kept reply",
    )
    assert "kept" in entry["detail"]
    answer = wait_for(
        lambda: next((m for m in stack.outbox() if "answer one item" in str(m["Subject"])), None),
        what="the answer",
    )
    assert answer["To"].addresses[0].addr_spec == BOB
    text = answer.get_body(("plain",)).get_content()
    assert "Digest reply A" in text and "Digest reply B" in text
    addresses = re.findall(r"eng\+r\.[a-z2-7]+@" + re.escape(DOMAIN), text)
    keys = stack.reply_keys()
    threads_named = {
        verify_reply_token(parse_recipient(a, DOMAIN).token, keys).thread_id for a in addresses
    }
    assert threads_named == {first["id"], second["id"]}
    assert len(updates_of(stack, first["id"])) == 1  # nothing was posted


def test_list_unsubscribe_by_mail_stops_only_that_members_digests(stack: Stack) -> None:
    post(stack, "Unsubscribe by mail", "For Alice's digest.", sender=BOB)
    stack.cli("digest", "run", "--now")
    digest = digests_for(stack, ALICE)[-1]
    mailto = re.findall(r"<(mailto:[^>]+)>", str(digest["List-Unsubscribe"]))[0]
    address = mailto.removeprefix("mailto:").split("?")[0]
    local, _, domain = address.partition("@")
    mangled = f"{local.upper()}@{domain}"  # some servers change the case of local parts
    stack.send(
        mail(ALICE, mangled, "unsubscribe", "This message was sent by my mail app."), ALICE, mangled
    )

    def cadence(who: str) -> str:
        return {m["email"]: m for m in stack.api("/teams/eng/members").json()}[who][
            "digest_cadence"
        ]

    wait_for(lambda: cadence(ALICE) == "off", what="Alice's digests off")
    assert cadence(BOB) != "off"
    token = local.split("+")[1]
    altered = token[:-5] + ("b" if token[-5] == "a" else "a") + token[-4:]  # always another
    forged = f"unsubscribe+{altered}@{domain}"
    code, text = refusal(stack, mail(ALICE, forged, "unsubscribe", "x"), ALICE, forged)
    assert code == 550 and "not valid" in text
    stack.cli("member", "set", ALICE, "--digest", "daily")


def test_key_rotation_keeps_old_addresses_working_until_retired(stack: Stack) -> None:
    """Last in this module: it retires the key the other tests' addresses use."""
    thread = post(stack, "Rotation", "Before the rotation.")
    old_address = address_for(stack, BOB, thread["id"])
    rotated = stack.cli("secret", "rotate")
    assert "key version 2" in rotated.stderr and "tidings secret retire 1" in rotated.stderr
    later = post(stack, "Rotation 2", "After the rotation.")
    new_address = address_for(stack, BOB, later["id"])
    new_token = parse_recipient(new_address, DOMAIN).token
    assert verify_reply_token(new_token, stack.reply_keys()).key_version == 2
    stack.send(mail(BOB, old_address, "Re: Rotation", "Old address still works."), BOB, old_address)
    wait_for(lambda: len(updates_of(stack, thread["id"])) == 2, what="the reply via v1")

    refused = stack.cli("secret", "retire", "2", check=False)
    assert refused.returncode == 1 and "secret rotate" in refused.stderr
    stack.cli("secret", "retire", "1")
    listing = stack.cli("secret", "list").stdout
    assert re.search(r"v1\s+retired", listing) and re.search(r"v2\s+signing", listing)
    code, text = refusal(stack, mail(BOB, old_address, "Re: x", "Too late."), BOB, old_address)
    assert code == 550 and "retired" in text and TEAM in text
    stack.send(mail(BOB, new_address, "Re: Rotation 2", "New one works."), BOB, new_address)
    wait_for(lambda: len(updates_of(stack, later["id"])) == 2, what="the reply via v2")

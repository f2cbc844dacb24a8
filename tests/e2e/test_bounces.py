"""Bounces, end to end: Tidings mails a member through a real SMTP relay (a sink) with a VERP
return path naming them; real bounces from the shared corpus come back to that path over
SMTP; each is recorded as hard or soft against the member, and the third hard one within
14 days pauses their mail. A paused member gets nothing (digests, check-ins), sees a
banner in the archive, and `tidings member resume` ends it all.

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest

from tests.conftest import IN_CI, SHARED, free_port
from tests.e2e.sink import Sink, running_sink
from tests.e2e.stack import (
    DOMAIN,
    Stack,
    far_hour,
    mail,
    make_stack,
    quarantined,
    thread_titled,
    wait_for,
)

ALICE, BOB, CAROL = "alice@example.com", "bob@example.org", "carol@example.net"
TEAM = f"eng@{DOMAIN}"
BOUNCES = SHARED / "corpus" / "hostile" / "bounces"
BANNER = "Tidings has paused all mail to"


@pytest.fixture(scope="module")
def world(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Sink]]:
    if not BOUNCES.is_dir():
        if IN_CI:
            pytest.fail(f"{BOUNCES} is missing; CI must run the bounce tests")
        pytest.skip(f"{BOUNCES} is missing (the shared corpus)")
    with running_sink() as (sink, port):
        stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
        stack.env["TIDINGS_OUTBOUND_URL"] = f"smtp://127.0.0.1:{port}"
        stack.start()
        try:
            stack.cli("team", "create", "eng", "--name", "Engineering")
            for who in (ALICE, BOB, CAROL):
                stack.cli("member", "add", "eng", who, "--hour", far_hour("UTC"))
            for admin in (ALICE, CAROL):  # told in their digests when a member is paused
                stack.cli("member", "role", "eng", admin, "admin")
            stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
            yield stack, sink
        finally:
            stack.stop()


def delivered_to(sink: Sink, address: str) -> list[EmailMessage]:
    return [
        email.message_from_bytes(e.content, policy=email.policy.default)  # type: ignore[misc]
        for e in sink.received
        if e.rcpt_tos == [address]
    ]


def text_of(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def return_path_of(sink: Sink, address: str) -> str:
    [path] = {e.mail_from for e in sink.received if e.rcpt_tos == [address]}
    return path


def bounce_back(stack: Stack, sample: str, return_path: str) -> dict:
    """Send a corpus bounce to `return_path` as a mail server would (null sender, CRLF);
    returns its quarantine entry once processed."""
    raw = (BOUNCES / sample).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    known = {e["id"] for e in quarantined(stack)}
    stack.send(raw, "", return_path)
    return wait_for(
        lambda: next((e for e in quarantined(stack) if e["id"] not in known), None),
        what=f"the bounce {sample}",
    )


def bounces(stack: Stack, address: str) -> list[dict]:
    return json.loads(stack.cli("member", "bounces", address, "--json").stdout)


def paused_reason(stack: Stack, address: str) -> str | None:
    rows = json.loads(stack.cli("member", "list", "eng", "--json").stdout)
    return next(r.get("paused") for r in rows if r["email"] == address)


def signed_in(stack: Stack, sink: Sink, address: str) -> httpx.Client:
    """A browser signed in as `address` by the emailed link (from the relay)."""
    before = len(delivered_to(sink, address))
    client = httpx.Client(base_url=stack.base_url, timeout=10)
    asked = client.post("/signin", data={"email": address, "next": "/"})
    assert asked.status_code == 200 and "Check your email" in asked.text

    def link() -> str | None:
        mails = delivered_to(sink, address)[before:]
        texts = [text_of(m) for m in mails]
        found = [re.search(r"http://\S+/signin/\S+", t) for t in texts]
        return next((f.group(0) for f in found if f), None)

    url = wait_for(link, what=f"the sign-in link for {address}")
    done = client.post(url)
    assert done.status_code == 303, done.text
    return client


def test_hard_bounces_pause_the_member_until_resumed(world: tuple[Stack, Sink]) -> None:
    stack, sink = world
    rows = json.loads(stack.cli("member", "list", "eng", "--json").stdout)
    assert {r["email"]: r.get("role") for r in rows} == {ALICE: "admin", BOB: None, CAROL: "admin"}
    lines = {
        line.split()[0]: line for line in stack.cli("member", "list", "eng").stdout.splitlines()
    }
    assert "(admin)" in lines[CAROL] and "(admin)" not in lines[BOB]
    stack.cli("checkin", "send", "eng")
    wait_for(lambda: delivered_to(sink, BOB), what="Bob's check-in prompt")
    path = return_path_of(sink, BOB)
    assert path.startswith("bounce+") and path.endswith(f"@{DOMAIN}")

    # A delay notice (RFC 3464, 4.0.0): a soft bounce, recorded with the server's words.
    entry = bounce_back(stack, "flanker/delayed.eml", path)
    assert entry["reason"] == "bounce" and "Recorded as a soft bounce" in entry["detail"]
    [soft] = bounces(stack, BOB)
    assert (soft["hard"], soft["status"], soft["diagnostic"]) == (
        False,
        "4.0.0",
        "426 connection timed out",
    )
    # "Other or undefined network or routing status" (4.4.0): soft as well.
    bounce_back(stack, "sisimai/bsd/rfc3464-07.eml", path)
    assert len(bounces(stack, BOB)) == 2 and paused_reason(stack, BOB) is None

    # Three hard bounces of three kinds: Postfix's DSN, qmail's plain text (flufl.bounce
    # reads it), and a DSN whose MIME broke (its fields are read from the text).
    first = bounce_back(stack, "sisimai/bsd/lhost-postfix-04.eml", path)
    assert "Recorded as a hard bounce (5.1.1 550 5.1.1 Address rejected" in first["detail"]
    assert "1 of 3 within 14 days" in first["detail"]
    second = bounce_back(stack, "flufl-bounce/qmail_04.eml", path)
    assert "2 of 3" in second["detail"] and "No such user" in second["detail"]
    assert paused_reason(stack, BOB) is None
    third = bounce_back(stack, "sisimai/bsd/rfc3464-06.eml", path)
    assert f"mail to {BOB} is now paused" in third["detail"]
    assert f"tidings member resume {BOB}" in third["detail"]
    recorded = bounces(stack, BOB)
    assert [(b["hard"], b["status"]) for b in recorded] == [
        (True, "5.5.0"),
        (True, ""),
        (True, "5.1.1"),
        (False, "4.4.0"),
        (False, "4.0.0"),
    ]
    reason = paused_reason(stack, BOB)
    assert reason is not None and reason.startswith("3 hard bounces in 14 days; the last: 5.5.0")
    assert "Service unavailable" in reason

    # Processing a bounce again (released from the quarantine) does not count it twice.
    again = stack.cli("quarantine", "release", str(third["id"]), check=False)
    assert again.returncode == 1 and "quarantined again: bounce" in again.stderr
    assert len(bounces(stack, BOB)) == 5

    # Paused: nothing reaches Bob, while Carol gets her digest as usual. Both admins are
    # told in it, Alice (who has nothing new: the post is hers) in a digest of just that.
    sent_to_bob = len(delivered_to(sink, BOB))
    stack.send(mail(ALICE, TEAM, "Kiln report", "The kiln is hot."), ALICE, TEAM)
    wait_for(lambda: thread_titled(stack, "Kiln report"), what="the post")
    stack.cli("digest", "run", "--now")
    [digest] = wait_for(
        lambda: [m for m in delivered_to(sink, CAROL) if "The kiln is hot." in text_of(m)],
        what="Carol's digest",
    )
    notice = f"Mail to bob <{BOB}> in Engineering is paused since"
    for text in (text_of(digest), digest.get_body(("html",)).get_content()):  # type: ignore[union-attr]
        assert "For you as a team admin" in text and "Service unavailable" in text
        assert f"tidings member resume {BOB}" in text
    assert notice in text_of(digest)
    [told] = wait_for(
        lambda: [m for m in delivered_to(sink, ALICE) if "team admin" in text_of(m)],
        what="Alice's notice",
    )
    assert told["Subject"] == "Mail to bob is paused" and notice in text_of(told)
    assert "Nothing new was posted since your last digest" in text_of(told)
    assert len(delivered_to(sink, BOB)) == sent_to_bob

    # The archive tells Bob why (he can still sign in: he asked for that link himself).
    bob = signed_in(stack, sink, BOB)
    home = bob.get("/")
    assert BANNER in home.text and "3 hard bounces in 14 days" in home.text
    assert BANNER in bob.get("/search", params={"q": "kiln"}).text
    carol = signed_in(stack, sink, CAROL)
    assert BANNER not in carol.get("/").text

    resumed = stack.cli("member", "resume", BOB)
    assert "is resumed" in resumed.stderr and "5 bounce(s) no longer count" in resumed.stderr
    assert "1 held message(s) were dropped" in resumed.stderr  # the digest planned meanwhile
    assert paused_reason(stack, BOB) is None
    assert all(b["cleared"] for b in bounces(stack, BOB))
    assert BANNER not in bob.get("/").text
    stack.cli("digest", "run", "--now")
    wait_for(
        lambda: any("The kiln is hot." in text_of(m) for m in delivered_to(sink, BOB)),
        what="Bob's first digest back",
    )
    # The admins were told once: that run had nothing for them.
    assert sum("team admin" in text_of(m) for m in delivered_to(sink, ALICE)) == 1
    assert sum("team admin" in text_of(m) for m in delivered_to(sink, CAROL)) == 1

    # Cleared bounces no longer count: one new hard bounce does not pause him again.
    later = bounce_back(stack, "flanker/zed.eml", return_path_of_latest(sink, BOB))
    assert "1 of 3 within 14 days" in later["detail"] and paused_reason(stack, BOB) is None


def return_path_of_latest(sink: Sink, address: str) -> str:
    return [e.mail_from for e in sink.received if e.rcpt_tos == [address]][-1]


def test_bounces_to_a_forged_return_path_are_refused(world: tuple[Stack, Sink]) -> None:
    stack, sink = world
    path = return_path_of_latest(sink, CAROL)
    forged = f"bounce+{path[7:20]}@{DOMAIN}"
    raw = (BOUNCES / "flanker/zed.eml").read_bytes().replace(b"\n", b"\r\n")
    with pytest.raises(smtplib.SMTPRecipientsRefused, match="not a return path"):
        stack.send(raw, "", forged)
    assert bounces(stack, CAROL) == []


def test_dsn_reader_agrees_with_flufl_bounce_on_its_own_samples() -> None:
    """flufl.bounce's test messages say which recipients failed for good; our reading
    agrees, except where a full mailbox makes a bounce soft on purpose."""
    from smtp.dsn import read_failure

    if not BOUNCES.is_dir():
        pytest.skip(f"{BOUNCES} is missing (the shared corpus)")
    manifest = BOUNCES.parent / "manifest.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    checked = disagree = 0
    for entry in entries:
        if entry.get("source") != "flufl.bounce" or "expected_permanent" not in entry:
            continue
        failure = read_failure((BOUNCES.parent / entry["path"]).read_bytes())
        if failure is None:
            continue
        checked += 1
        if failure.hard != bool(entry["expected_permanent"]) and failure.how != "mailbox full":
            disagree += 1
    assert checked >= 100 and disagree <= 2, (checked, disagree)


def test_success_notices_report_no_failure() -> None:
    from smtp.dsn import read_failure

    success = (
        b"From: MAILER-DAEMON@mx.example.org\r\nTo: x@example.org\r\nSubject: Delivered\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b' boundary="R"\r\n\r\n--R\r\nContent-Type: text/plain\r\n\r\nDelivered.\r\n'
        b"--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; x@example.org\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
        b"--R--\r\n"
    )
    assert read_failure(success) is None

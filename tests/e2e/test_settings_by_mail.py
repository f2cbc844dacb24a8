"""Members change their settings by replying to a check-in or a digest with one line, and
get a confirmation; anything else they reply is posted as usual.

Over real sockets, on SQLite and on the live PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from app.tokens import parse_recipient, verify_reply_token
from tests.conftest import free_port
from tests.e2e.stack import (
    DOMAIN,
    Stack,
    far_hour,
    mail,
    make_stack,
    quarantined,
    reply_address_of,
    updates_of,
    wait_for,
)

ALICE, BOB = "alice@example.com", "bob@example.org"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering")
        for who, tz in [(ALICE, "Europe/Berlin"), (BOB, "America/New_York")]:
            stack.cli("member", "add", "eng", who, "--tz", tz, "--hour", far_hour(tz))
        stack.token = stack.cli("token", "create", "--team", "eng").stdout.strip().splitlines()[-1]
        stack.cli("checkin", "send", "eng")
        yield stack
    finally:
        stack.stop()


def schedule_of(stack: Stack, address: str) -> str:
    members = json.loads(stack.cli("member", "list", "eng", "--json").stdout)
    return next(m["schedule"] for m in members if m["email"] == address)


def answers_to(stack: Stack, address: str) -> list[EmailMessage]:
    return [
        m
        for m in stack.outbox()
        if "Tidings settings" in str(m["Subject"]) and m["To"].addresses[0].addr_spec == address
    ]


def reply_to_checkin(stack: Stack, who: str, text: str) -> int:
    """Reply to `who`'s check-in prompt with `text`; the check-in thread's id."""
    prompt = next(
        m
        for m in stack.outbox()
        if "What did you get done" in str(m["Subject"]) and m["To"].addresses[0].addr_spec == who
    )
    address = reply_address_of(prompt)
    stack.send(mail(who, address, f"Re: {prompt['Subject']}", text), who, address)
    return verify_reply_token(parse_recipient(address, DOMAIN).token, stack.reply_keys()).thread_id  # type: ignore[union-attr,arg-type]


def test_a_one_line_reply_changes_the_setting_and_is_confirmed(stack: Stack) -> None:
    thread = reply_to_checkin(stack, BOB, "digest weekly friday\n\n-- \nBob")
    [answer] = wait_for(lambda: answers_to(stack, BOB), what="the confirmation")
    assert answer["Subject"] == "Your Tidings settings: digests are weekly, on Fri"
    text = answer.get_body(("plain",)).get_content()
    assert "Your settings now: weekly on fri" in text and "away until 2026-12-03" in text
    assert schedule_of(stack, BOB).startswith("weekly on fri")
    assert updates_of(stack, thread) == []  # the command is not posted


def test_a_line_that_cannot_be_used_changes_nothing_and_says_what_would(stack: Stack) -> None:
    before = schedule_of(stack, BOB)
    reply_to_checkin(stack, BOB, "digest 08:30")
    answer = wait_for(lambda: answers_to(stack, BOB)[1:], what="the answer")[0]
    assert answer["Subject"] == "Your Tidings settings are unchanged"
    assert "Digests come on the hour: say digest 08:00" in answer.get_body(("plain",)).get_content()
    assert schedule_of(stack, BOB) == before


def test_away_until_a_date_in_words(stack: Stack) -> None:
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    until = today + timedelta(days=9)
    reply_to_checkin(stack, ALICE, f"Away until {until.day} {until:%B}.")
    [answer] = wait_for(lambda: answers_to(stack, ALICE), what="the confirmation")
    assert f"no digests or check-ins until {until + timedelta(days=1):%a %d %b}" in str(
        answer["Subject"]
    )
    assert f"away {today}..{until}" in schedule_of(stack, ALICE)


def test_an_ordinary_one_line_answer_is_still_posted(stack: Stack) -> None:
    thread = reply_to_checkin(stack, BOB, "Digest service refactor is done")
    [update] = wait_for(lambda: updates_of(stack, thread), what="the answer")
    assert update["body"] == "Digest service refactor is done"
    assert len(answers_to(stack, BOB)) == 2  # no new confirmation


def test_mute_sent_to_the_digest_address_turns_digests_off(stack: Stack) -> None:
    stack.send(
        mail(ALICE, f"digest@{DOMAIN}", "Re: 3 new updates", "mute"), ALICE, f"digest@{DOMAIN}"
    )
    answers = wait_for(lambda: answers_to(stack, ALICE)[1:], what="the confirmation")
    assert answers[0]["Subject"] == "Your Tidings settings: digests are off"
    assert schedule_of(stack, ALICE).startswith("off")
    assert not [e for e in quarantined(stack) if e["reason"] == "digest-reply"]

"""What an admin does, through the real `tidings` command against a running `tidings serve`:
rename and archive teams, import members from CSV, pause and resume a member's mail,
release and discard quarantined mail, resend a digest. Mail goes in over SMTP and is read
back from the Maildir outbox and the API, as a user would.

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

import json
import re
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from app.db import make_engine, session_scope
from app.models import OutboundMessage, Team
from app.settings import Settings
from app.tokens import reply_address_for
from digest.checkin import run_checkins
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
    updates_of,
    wait_for,
)

ALICE, BOB, CAROL = "alice@example.com", "bob@example.org", "carol@example.net"
DAN, ERIN = "dan@example.org", "erin@example.com"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        stack.cli("team", "create", "launch", "--name", "Launch", "--public")
        for who in (ALICE, BOB, CAROL):
            stack.cli("member", "add", "launch", who, "--hour", far_hour("UTC"))
        stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
        yield stack
    finally:
        stack.stop()


def address(slug: str) -> str:
    return f"{slug}@{DOMAIN}"


def post(stack: Stack, sender: str, to: str, subject: str, body: str, team: str) -> dict:
    stack.send(mail(sender, to, subject, body), sender, to)
    return wait_for(lambda: thread_titled(stack, subject, team), what=f"thread {subject!r}")


def refused(stack: Stack, sender: str, to: str) -> tuple[int, str]:
    """The code and text the listener refuses `to` with (fails if it takes it): at RCPT,
    or at DATA for a team address it found open moments before (RCPT trusts that look
    for a few seconds; DATA looks again)."""
    try:
        stack.send(mail(sender, to, "Anyone there?", "Hello."), sender, to)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = exc.recipients[to]
        return code, text.decode()
    except smtplib.SMTPDataError as exc:
        return exc.smtp_code, exc.smtp_error.decode()
    pytest.fail(f"the listener took a message to {to}")


def outbox_to(stack: Stack, recipient: str) -> list:
    return [m for m in stack.outbox() if m["To"].addresses[0].addr_spec == recipient]


def person_id(stack: Stack, thread_id: int, email: str) -> int:
    return next(
        u["author"]["id"] for u in updates_of(stack, thread_id) if u["author"]["email"] == email
    )


def test_renamed_team_keeps_its_old_address_and_reply_addresses(stack: Stack) -> None:
    stack.cli("checkin", "send", "launch")
    prompt = wait_for(lambda: outbox_to(stack, ALICE), what="Alice's check-in prompt")[-1]
    old_reply = reply_address_of(prompt)
    assert old_reply.startswith("launch+")

    renamed = stack.cli("team", "rename", "launch", "rocket", "--name", "Rocket")
    assert f"Members post by writing to {address('rocket')}" in renamed.stderr
    assert f"Mail to {address('launch')}" in renamed.stderr and "still" in renamed.stderr
    [team] = [
        t for t in json.loads(stack.cli("team", "list", "--json").stdout) if t["name"] == "Rocket"
    ]
    assert team["slug"] == "rocket" and team["former_slugs"] == ["launch"]

    # The old team address and an old reply address still reach the team; so does the new.
    post(stack, ALICE, address("launch"), "Sent to the old address", "Still here.", "rocket")
    post(stack, BOB, address("rocket"), "Sent to the new address", "Also here.", "rocket")
    stack.send(mail(ALICE, old_reply, "Re: check-in", "Answered the old prompt."), ALICE, old_reply)
    checkin = wait_for(
        lambda: next(
            (t for t in stack.api("/teams/rocket/threads").json() if t["checkin_date"]), None
        ),
        what="the check-in thread",
    )
    [answer] = wait_for(lambda: updates_of(stack, checkin["id"]), what="the answer")
    assert answer["body"] == "Answered the old prompt." and answer["placed_by"] == "checkin"

    taken = stack.cli("team", "create", "launch", check=False)
    assert taken.returncode == 1 and "was the slug of team rocket" in taken.stderr
    nothing = stack.cli("team", "rename", "rocket", check=False)
    assert nothing.returncode == 1 and "--name" in nothing.stderr


def test_archived_team_refuses_mail_and_stays_readable(stack: Stack) -> None:
    stack.cli("team", "create", "ops", "--name", "Operations", "--public")
    stack.cli("member", "add", "ops", ALICE, "--hour", far_hour("UTC"))
    stack.cli("team", "checkin", "ops", "--hour", "16")
    thread = post(stack, ALICE, address("ops"), "Before the archive", "Last words.", "ops")
    reply = reply_address_for(
        person_id(stack, thread["id"], ALICE), thread["id"], "ops", DOMAIN, stack.reply_keys()
    )

    archived = stack.cli("team", "archive", "ops")
    assert "takes no new posts" in archived.stderr and "--undo" in archived.stderr
    for to in (address("ops"), reply):
        code, text = refused(stack, ALICE, to)
        assert code == 550 and text.startswith("5.2.1") and "archived" in text, text
        assert "takes no new posts" in text and "archive stays readable" in text

    # Still readable: the API, and the archive page (which says so, and offers no address).
    assert [t["title"] for t in stack.api("/teams/ops/threads").json()] == ["Before the archive"]
    page = stack.get("/teams/ops")
    assert page.status_code == 200 and "Archived on" in page.text
    assert f"mailto:{address('ops')}" not in page.text
    listed = stack.cli("team", "list").stdout
    assert re.search(r"^ops .*\(archived \d{4}-\d\d-\d\d\)$", listed, re.M), listed

    # No check-ins: asked for now, or at the scheduled hour (a weekday at 16:00 UTC).
    asked = stack.cli("checkin", "send", "ops", check=False)
    assert asked.returncode == 1 and "archived" in asked.stderr and "--undo" in asked.stderr
    assert scheduled_prompts(stack, "ops") == 0

    reopened = stack.cli("team", "archive", "ops", "--undo")
    assert "open again" in reopened.stderr
    post(stack, ALICE, address("ops"), "After the archive", "Back again.", "ops")
    assert scheduled_prompts(stack, "ops") == 1  # the control: the schedule works when open


def scheduled_prompts(stack: Stack, slug: str) -> int:
    """Run the worker's check-in pass at next Monday 16:05 UTC (the hour `ops` asks at);
    how many prompts it queued for the team."""
    today = datetime.now(UTC).replace(hour=16, minute=5, second=0, microsecond=0)
    monday = today + timedelta(days=7 - today.weekday())
    settings = Settings(
        data_dir=stack.data_dir,
        database_url=stack.env["TIDINGS_DATABASE_URL"],
        mail_domain=DOMAIN,
        secret_key=stack.secret(),
    )
    engine = make_engine(settings.database_url)
    try:
        run_checkins(engine, settings, monday)
        with session_scope(engine) as session:
            team = session.exec(select(Team).where(Team.slug == slug)).one()
            rows = session.exec(
                select(OutboundMessage).where(
                    OutboundMessage.kind == "checkin",
                    OutboundMessage.idempotency_key.startswith(  # type: ignore[attr-defined]
                        f"checkin:{team.id}:{monday.date().isoformat()}:"
                    ),
                )
            ).all()
            return len(rows)
    finally:
        engine.dispose()


def test_member_import_checks_every_row_first_and_dry_run_changes_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    stack.cli("team", "create", "guild", "--name", "Guild")
    stack.cli("member", "add", "guild", ERIN, "--name", "Erin", "--tz", "Europe/Paris")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "name,email,timezone,cadence,hour\n"
        "Dan,dan@example.org,Europe/Berlin,daily,8\n"
        "Fay,fay@example,America/NewYork,hourly,7\n"
        "Gus,gus@example.com,UTC,weekly,24\n"
        "Dan again,DAN@example.org,,,\n"
    )
    result = stack.cli("member", "import", "guild", str(bad), check=False)
    assert result.returncode == 1
    assert "nothing was imported" in result.stderr
    for expected in [
        "row 3: 'fay@example' is not an email address",
        "row 3: Unknown time zone 'America/NewYork'. Did you mean America/New_York",
        "row 3: unknown cadence 'hourly'",
        "row 4: hour '24' is not 0 to 23",
        "row 5: dan@example.org is already on row 2",
    ]:
        assert expected in result.stderr, result.stderr
    assert "row 2:" not in result.stderr
    assert members(stack, "guild") == {ERIN: ("Erin", "Europe/Paris", "daily", 9)}

    good = tmp_path / "good.csv"
    good.write_text(
        "\ufeffemail,name,timezone,cadence,hour\n"  # any column order; Excel's BOM
        "dan@example.org,Dan,Europe/Berlin,weekly,8\n"
        f"{ERIN},Erin,America/New_York,,\n"
        f"{ALICE},,,,\n"
        "\n",
        encoding="utf-8",
    )
    dry = stack.cli("member", "import", "guild", str(good), "--dry-run")
    lines = dry.stdout.splitlines()
    assert re.match(
        r"row 2 +add +dan@example.org +Dan, Europe/Berlin, weekly digest at 08:00", lines[0]
    )
    assert re.match(rf"row 3 +change +{ERIN} +timezone Europe/Paris -> America/New_York$", lines[1])
    assert re.match(rf"row 4 +join +{ALICE} ", lines[2])
    assert "Dry run, nothing changed" in dry.stderr
    assert members(stack, "guild") == {ERIN: ("Erin", "Europe/Paris", "daily", 9)}

    done = stack.cli("member", "import", "guild", str(good))
    assert "Imported into guild: 1 new, 1 joining from other teams, 1 changed" in done.stderr
    found = members(stack, "guild")
    assert found[DAN] == ("Dan", "Europe/Berlin", "weekly", 8)
    assert found[ERIN] == ("Erin", "America/New_York", "daily", 9)
    assert ALICE in found
    again = stack.cli("member", "import", "guild", str(good), "--dry-run")
    assert [line.split()[2] for line in again.stdout.splitlines()] == ["same"] * 3


def members(stack: Stack, slug: str) -> dict[str, tuple[str, str, str, int]]:
    rows = json.loads(stack.cli("member", "list", slug, "--json").stdout)
    return {r["email"]: (r["name"], r["timezone"], r["digest"], r["hour"]) for r in rows}


def test_paused_member_gets_no_mail_at_all_until_resumed(stack: Stack) -> None:
    stack.cli("team", "create", "quiet", "--name", "Quiet")
    for who in (DAN, ERIN):
        stack.cli("member", "add", "quiet", who, "--hour", far_hour("UTC"))
    stack.cli("digest", "run", "--now")  # whatever was waiting goes out first
    before = len(outbox_to(stack, DAN))

    paused = stack.cli("member", "pause", DAN, "--reason", "on leave until March")
    assert "paused (on leave until March)" in paused.stderr
    listed = stack.cli("member", "list", "quiet").stdout
    assert re.search(rf"^{DAN} .*PAUSED: on leave until March$", listed, re.M), listed
    assert json.loads(stack.cli("member", "list", "quiet", "--json").stdout)[0]["paused"] == (
        "on leave until March"
    )

    post(stack, ERIN, address("quiet"), "While Dan is away", "The quokka shipped.", "quiet")
    post(stack, DAN, address("quiet"), "Dan still posts", "Posting works when paused.", "quiet")
    stack.cli("digest", "run", "--now")
    asked = stack.cli("checkin", "send", "quiet")
    assert f"Held, not sent: mail to {DAN} is paused" in asked.stderr
    wait_for(lambda: [m for m in outbox_to(stack, ERIN) if "quiet" in str(m["From"])])
    wait_for(
        lambda: any(
            "Posting works when paused." in m.get_body(("plain",)).get_content()
            for m in digests_for(stack, ERIN)
        ),
        what="Erin's digest with Dan's post",
    )
    assert len(outbox_to(stack, DAN)) == before
    resend = stack.cli("digest", "resend", DAN, check=False)
    assert resend.returncode == 1 and "tidings member resume" in resend.stderr

    resumed = stack.cli("member", "resume", DAN)
    assert "is resumed" in resumed.stderr and "held message(s) were dropped" in resumed.stderr
    stack.cli("digest", "run", "--now")
    digest = wait_for(lambda: digests_for(stack, DAN), what="Dan's digest after resuming")[-1]
    assert "The quokka shipped." in digest.get_body(("plain",)).get_content()
    assert len([m for m in outbox_to(stack, DAN) if "quiet" in str(m["From"])]) == 0


def test_quarantine_release_reruns_processing_and_discard_keeps_the_mail(stack: Stack) -> None:
    stack.cli("team", "create", "desk", "--name", "Desk")
    stack.cli("member", "add", "desk", CAROL, "--name", "Carol")
    # An auto-reply is kept, not posted; released, processing keeps it out again.
    away = mail(
        CAROL, address("desk"), "Out of office", "Back Monday.", Auto_Submitted="auto-replied"
    )
    stack.send(away, CAROL, address("desk"))
    entry = wait_for(lambda: next((e for e in quarantined(stack) if e["mail_from"] == CAROL), None))
    assert entry["reason"] == "auto-reply"

    discarded = stack.cli("quarantine", "discard", str(entry["id"]))
    assert "kept, not deleted" in discarded.stderr
    assert entry["id"] not in [e["id"] for e in quarantined(stack)]
    kept = json.loads(stack.cli("quarantine", "list", "--discarded", "--json").stdout)
    assert [(e["id"], e["reason"]) for e in kept if e["id"] == entry["id"]] == [
        (entry["id"], "auto-reply")
    ]
    again = stack.cli("quarantine", "release", str(entry["id"]), check=False)
    assert again.returncode == 1 and "quarantined again: auto-reply" in again.stderr
    assert entry["id"] in [e["id"] for e in quarantined(stack)]
    posted = stack.cli("quarantine", "release", "999999", check=False)
    assert posted.returncode == 1 and "No message #999999" in posted.stderr

    # Carol answers her reply address from home: held, as it is not her address. Once the
    # admin adds that address as her alias (she confirms it), releasing the message posts it.
    thread = post(stack, CAROL, address("desk"), "Desk rota", "Who takes Friday?", "desk")
    reply = reply_address_for(
        person_id(stack, thread["id"], CAROL), thread["id"], "desk", DOMAIN, stack.reply_keys()
    )
    home = "carol@home.example"
    stack.send(mail(home, reply, "Re: Desk rota", "I take Friday."), home, reply)
    held = wait_for(
        lambda: next((e for e in quarantined(stack) if e["mail_from"] == home), None),
        what="the held reply",
    )
    assert held["reason"] == "unverified-sender"
    stack.cli("member", "alias", "add", CAROL, home)
    confirm_alias(stack, home)
    released = stack.cli("quarantine", "release", str(held["id"]))
    assert f"Posted to desk: Desk rota ({stack.base_url}/threads/{thread['id']})" in released.stderr
    replies = [u for u in updates_of(stack, thread["id"]) if u["body"] == "I take Friday."]
    assert [u["author"]["email"] for u in replies] == [CAROL]
    assert held["id"] not in [e["id"] for e in quarantined(stack)]
    not_held = stack.cli("quarantine", "discard", str(held["id"]), check=False)
    assert not_held.returncode == 1 and "not in the quarantine (it is processed)" in not_held.stderr


def confirm_alias(stack: Stack, alias: str) -> None:
    """Follow the confirmation link mailed to `alias` (it may have had a hold notice too)."""

    def find_link() -> str | None:
        for msg in outbox_to(stack, alias):
            found = re.search(
                r"http://\S+/aliases/\d+/confirm\?t=\S+", msg.get_body(("plain",)).get_content()
            )
            if found:
                return found.group(0)
        return None

    link = wait_for(find_link, what="the alias link")
    page = httpx.get(link, timeout=10)
    token = re.search(r'name="t" value="([^"]*)"', page.text).group(1)  # type: ignore[union-attr]
    done = httpx.post(link.split("?")[0], data={"t": token}, timeout=10)
    assert done.status_code == 200 and "confirmed" in done.text


def test_digest_resend_sends_the_same_digest_again(stack: Stack) -> None:
    gina, hank = "gina@example.com", "hank@example.org"
    stack.cli("team", "create", "loom", "--name", "Loom")
    for who in (gina, hank):
        stack.cli("member", "add", "loom", who, "--hour", far_hour("UTC"))
    never = stack.cli("digest", "resend", hank, check=False)
    assert never.returncode == 1 and "has not had a digest yet" in never.stderr
    post(stack, gina, address("loom"), "Loom news", "The shuttle is threaded.", "loom")
    stack.cli("digest", "run", "--now")
    [first] = wait_for(lambda: digests_for(stack, hank), what="Hank's digest")

    # The first is in the Maildir; its row is marked sent a moment later.
    resent = wait_for(
        lambda: (r := stack.cli("digest", "resend", hank, check=False)).returncode == 0 and r,
        what="the resend",
    )
    assert "Queued the latest digest again" in resent.stderr
    second = wait_for(lambda: digests_for(stack, hank)[1:], what="the resent digest")[0]
    assert second["Subject"] == first["Subject"] and second["Message-ID"] != first["Message-ID"]
    for msg in (first, second):
        assert "The shuttle is threaded." in msg.get_body(("plain",)).get_content()
    # It moved nothing: the next run has nothing new for Hank.
    stack.cli("digest", "run", "--now")
    assert len(digests_for(stack, hank)) == 2

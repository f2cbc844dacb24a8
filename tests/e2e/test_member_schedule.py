"""Each member's own schedule, end to end: set with the CLI, honoured by the worker's
digest and check-in runs on a real database (SQLite and PostgreSQL).

The runs are called with a chosen `now`, the way the worker calls them on each tick.
"""

from __future__ import annotations

import email
import email.policy
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.digest_plan import DigestPlan
from app.models import OutboundMessage, Thread, Update
from app.settings import Settings
from digest.build import run_digests
from digest.checkin import run_checkins
from tests.e2e.stack import BIN

# Monday 2026-11-23 .. Sunday 2026-11-29, all in UTC.
MONDAY = date(2026, 11, 23)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant in the week of 2026-11-23 (day 0 is Monday), UTC."""
    return datetime(2026, 11, 23 + day, hour, minute, second, tzinfo=UTC)


@dataclass(frozen=True)
class World:
    """A team of its own for one test (Alice and Bob, members since the week before), the
    database and settings the worker's runs use, and the environment for the CLI."""

    engine: Engine
    settings: Settings
    env: dict[str, str]
    slug: str
    alice: str
    bob: str


@pytest.fixture
def setup(database_url: str, tmp_path: Path) -> Iterator[World]:
    upgrade(database_url)
    engine = make_engine(database_url)
    settings = Settings(data_dir=tmp_path, database_url=database_url, mail_domain="tidings.test")
    env = {"TIDINGS_DATA_DIR": str(tmp_path), "TIDINGS_DATABASE_URL": database_url, "PATH": ""}
    with session_scope(engine) as session:
        slug = f"t{len(store.list_teams(session))}"  # one database per module: a team per test
        store.create_team(session, slug, "Team")
        for who in ("alice", "bob"):
            person = store.add_member(session, slug, f"{who}.{slug}@example.com", who.title())
            person.created_at = at(0, 0)  # signed up on Monday at midnight
        for _, membership in store.memberships_of(session, store.get_team(session, slug).id):  # type: ignore[arg-type]
            membership.joined_at = at(-7, 0)
    yield World(engine, settings, env, slug, f"alice.{slug}@example.com", f"bob.{slug}@example.com")
    engine.dispose()


def tidings(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "tidings"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def post(engine: Engine, slug: str, author: str, text: str, when: datetime) -> None:
    with session_scope(engine) as session:
        team = store.get_team(session, slug)
        thread = Thread(team_id=team.id, title=text, created_at=when, last_activity_at=when)  # type: ignore[arg-type]
        session.add(thread)
        session.flush()
        update = store.add_update(
            session,
            thread=thread,
            author=store.find_person(session, author),  # type: ignore[arg-type]
            body=text,
            placed_by="new-thread",
        )
        update.created_at = when


def digests_to(engine: Engine, address: str) -> list[list[str]]:
    """The update texts in each digest planned for `address`, oldest digest first."""
    with session_scope(engine) as session:
        person = store.find_person(session, address)
        rows = session.exec(
            select(OutboundMessage)
            .where(OutboundMessage.person_id == person.id, OutboundMessage.kind == "digest")  # type: ignore[union-attr]
            .order_by(OutboundMessage.id)  # type: ignore[arg-type]
        ).all()
        found = []
        for row in rows:
            plan = DigestPlan.from_json(row.plan)  # type: ignore[arg-type]
            updates = [session.get(Update, i) for i in plan.updates]
            found.append(sorted(u.body for u in updates if u is not None))
        return found


def test_member_set_explains_bad_values_and_says_what_changed(setup: World) -> None:
    env, alice = setup.env, setup.alice
    for args, hint in [
        (["--quiet", "late"], "20:00-08:00"),
        (["--away", "2026-12-24"], "2026-12-20..2027-01-03"),
        (["--away", "2026-12-24..2026-12-01"], "end before they start"),
        (["--weekday", "someday"], "mon, tue"),
        (["--tz", "Europe/Berlinn"], "Europe/Berlin"),
    ]:
        result = tidings(env, "member", "set", alice, *args)
        assert result.returncode == 1 and hint in result.stderr, result.stderr
    done = tidings(env, "member", "set", alice, "--digest", "weekly", "--weekday", "Friday")
    assert done.returncode == 0
    assert "weekly on fri at 09:00 UTC; quiet 20:00-08:00" in done.stderr
    away = tidings(env, "member", "set", alice, "--away", "2026-12-20..", "--quiet", "off")
    assert "away 2026-12-20.." in away.stderr and "quiet" not in away.stderr
    listed = tidings(env, "member", "list", setup.slug).stdout
    assert "weekly on fri at 09:00 UTC; away 2026-12-20.." in listed


def test_weekly_and_weekday_only_digests_come_on_their_days(setup: World) -> None:
    engine, settings, slug, alice, bob = (
        setup.engine,
        setup.settings,
        setup.slug,
        setup.alice,
        setup.bob,
    )
    with session_scope(engine) as session:
        store.change_member_settings(
            session, alice, store.MemberSettings(cadence="weekly", weekday="fri", hour=9)
        )
        store.change_member_settings(session, bob, store.MemberSettings(weekdays_only=True))
    post(engine, slug, bob, "Bob on Wednesday", at(2, 8))
    post(engine, slug, alice, "Alice on Friday", at(4, 8))
    for day in range(4):  # Monday .. Thursday at 09:30: Alice's weekly digest is not due
        run_digests(engine, settings, at(day, 9, 30))
    assert digests_to(engine, alice) == []
    run_digests(engine, settings, at(4, 9, 30))
    assert digests_to(engine, alice) == [["Bob on Wednesday"]]
    assert digests_to(engine, bob)[-1] == ["Alice on Friday"]  # Friday is a weekday
    saturday_post = "Alice on Saturday"
    post(engine, slug, alice, saturday_post, at(5, 10))
    run_digests(engine, settings, at(6, 9, 30))  # Sunday
    assert all(saturday_post not in d for d in digests_to(engine, bob))
    run_digests(engine, settings, at(7, 9, 30))  # Monday
    assert [saturday_post] in digests_to(engine, bob)


def test_nothing_while_away_then_one_digest_covers_the_absence(setup: World) -> None:
    engine, settings, slug, alice, bob = (
        setup.engine,
        setup.settings,
        setup.slug,
        setup.alice,
        setup.bob,
    )
    with session_scope(engine) as session:
        store.change_member_settings(
            session, bob, store.MemberSettings(away="2026-11-24..2026-11-26")
        )
    for day in range(1, 4):
        post(engine, slug, alice, f"News of day {day}", at(day, 8))
        run_digests(engine, settings, at(day, 9, 30))
    assert digests_to(engine, bob) == []
    run_digests(engine, settings, at(4, 9, 30))  # Friday: back
    assert digests_to(engine, bob) == [["News of day 1", "News of day 2", "News of day 3"]]


def test_checkin_prompt_skips_away_members_and_waits_out_quiet_hours(setup: World) -> None:
    engine, settings, slug, alice, bob = (
        setup.engine,
        setup.settings,
        setup.slug,
        setup.alice,
        setup.bob,
    )
    with session_scope(engine) as session:
        store.set_checkin(session, slug, 21)  # 21:00 local: inside the default quiet hours
        store.change_member_settings(session, alice, store.MemberSettings(quiet="off"))
        store.change_member_settings(
            session, bob, store.MemberSettings(away="2026-11-23..2026-11-23")
        )

    def prompted(address: str) -> int:
        with session_scope(engine) as session:
            person = store.find_person(session, address)
            query = select(OutboundMessage).where(
                OutboundMessage.person_id == person.id,  # type: ignore[union-attr]
                OutboundMessage.kind == "checkin",
            )
            return len(session.exec(query).all())

    run_checkins(engine, settings, at(0, 21, 5))  # Monday 21:05
    assert prompted(alice) == 1 and prompted(bob) == 0  # Bob is away on Monday
    run_checkins(engine, settings, at(1, 21, 5))  # Tuesday 21:05: Bob is back, but it's quiet
    assert prompted(bob) == 0
    run_checkins(engine, settings, at(2, 7, 55))
    assert prompted(bob) == 0
    run_checkins(engine, settings, at(2, 8, 0))  # quiet hours over: Tuesday's prompt goes
    assert prompted(bob) == 1 and prompted(alice) == 2


def test_immediate_digests_batch_what_arrives_within_a_minute(setup: World) -> None:
    engine, settings, slug, alice, bob = (
        setup.engine,
        setup.settings,
        setup.slug,
        setup.alice,
        setup.bob,
    )
    with session_scope(engine) as session:
        store.change_member_settings(
            session, bob, store.MemberSettings(cadence="immediate", quiet="off")
        )
    post(engine, slug, alice, "First news", at(1, 10, 0))
    run_digests(engine, settings, at(1, 10, 0, 5))
    assert digests_to(engine, bob) == [["First news"]]
    post(engine, slug, alice, "Second news", at(1, 10, 0, 20))
    post(engine, slug, alice, "Third news", at(1, 10, 0, 40))
    run_digests(engine, settings, at(1, 10, 0, 45))  # under a minute since the last one
    assert len(digests_to(engine, bob)) == 1
    run_digests(engine, settings, at(1, 10, 1, 10))
    assert digests_to(engine, bob)[-1] == ["Second news", "Third news"]


def test_immediate_digests_wait_out_quiet_hours(setup: World) -> None:
    engine, settings, slug, alice, bob = (
        setup.engine,
        setup.settings,
        setup.slug,
        setup.alice,
        setup.bob,
    )
    with session_scope(engine) as session:
        store.change_member_settings(
            session, bob, store.MemberSettings(cadence="immediate", quiet="22:00-07:00")
        )
    post(engine, slug, alice, "Late news", at(1, 23, 0))
    run_digests(engine, settings, at(1, 23, 5))
    run_digests(engine, settings, at(2, 6, 59))
    assert digests_to(engine, bob) == []
    run_digests(engine, settings, at(2, 7, 0))
    assert digests_to(engine, bob) == [["Late news"]]


def test_a_checkin_can_ask_several_questions_and_name_the_blocker_one(setup: World) -> None:
    engine, settings, env, slug = setup.engine, setup.settings, setup.env, setup.slug
    asked = ["What did you get done?", "What's next?", "Anything blocking you?"]
    args = [arg for q in asked for arg in ("--question", q)]
    wrong = tidings(env, "team", "checkin", slug, "--hour", "9", *args, "--blocker-question", "4")
    assert wrong.returncode == 1 and "no question 4: the check-in asks 3" in wrong.stderr
    done = tidings(env, "team", "checkin", slug, "--hour", "9", *args, "--blocker-question", "3")
    assert done.returncode == 0, done.stderr
    assert '"Anything blocking you?" (question 3 asks about blockers)' in done.stderr
    with session_scope(engine) as session:
        store.change_member_settings(
            session, f"alice.{slug}@example.com", store.MemberSettings(quiet="off")
        )
    run_checkins(engine, settings, at(1, 9, 5))
    with session_scope(engine) as session:
        person = store.find_person(session, f"alice.{slug}@example.com")
        row = session.exec(
            select(OutboundMessage).where(
                OutboundMessage.person_id == person.id,  # type: ignore[union-attr]
                OutboundMessage.kind == "checkin",
            )
        ).one()
    prompt = email.message_from_bytes(row.raw, policy=email.policy.default)
    assert str(prompt["Subject"]) == "Team: Team check-in"
    text = prompt.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "1. What did you get done?" in text and "3. Anything blocking you?" in text
    html = prompt.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert html.count("<li") == 3


def test_addresses_with_markup_are_refused_cleanly(setup: World) -> None:
    env, alice = setup.env, setup.alice
    for bad in ("<svg/onload=alert(1)>@evil.example", 'a"b@example.com', "x@y"):
        result = tidings(env, "member", "alias", "add", alice, bad)
        assert result.returncode == 1 and "is not an email address" in result.stderr
        assert "Traceback" not in result.stderr
    added = tidings(env, "member", "add", setup.slug, "<i>@example.com")
    assert added.returncode == 1 and "is not an email address" in added.stderr

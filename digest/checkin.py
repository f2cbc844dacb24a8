"""Check-in prompts: each member of a team is asked the team's question by email.

The prompt's Reply-To carries a reply token naming the member and the day's
check-in thread, so the answer lands there whichever mail client sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app import store
from app.db import session_scope
from app.models import Person, Team
from app.render import render_email
from app.settings import Settings
from app.tokens import reply_address_for
from digest.schedule import checkin_due, end_of_quiet_hours, schedule_of


@dataclass
class CheckinRun:
    planned: int = 0
    already_sent: int = 0


def plan_checkin(session: Session, slug: str, settings: Settings, now: datetime) -> CheckinRun:
    """Put today's check-in prompt for every member of the team in the outbox.

    "Today" is each member's own local date, so everyone's Tuesday answers share the
    Tuesday thread. The idempotency key is (team, day, person): running it twice on one
    day asks nobody twice.
    """
    team = store.get_team(session, slug)
    run = CheckinRun()
    for person in store.list_members(session, slug):
        if plan_checkin_prompt(session, team, person, settings, now):
            run.planned += 1
        else:
            run.already_sent += 1
    return run


def plan_checkin_prompt(
    session: Session, team: Team, person: Person, settings: Settings, now: datetime
) -> bool:
    """Queue one member's prompt for their local today; False if they were asked already."""
    day = now.astimezone(ZoneInfo(person.timezone)).date()
    key = f"checkin:{team.id}:{day.isoformat()}:{person.id}"
    if store.outbox_key_exists(session, key):
        return False
    thread = store.checkin_thread(session, team, day)
    address = reply_address_for(
        person.id,
        thread.id,
        team.slug,
        settings.mail_domain,
        store.load_reply_keys(session, settings.ensure_secret_key()),
    )
    message_id = f"<checkin.{team.id}.{day.isoformat()}.{person.id}@{settings.mail_domain}>"
    msg = render_email(
        settings.templates_dir,
        "checkin",
        {
            "person": person,
            "team": team,
            "questions": team.checkin_questions,
            "title": store.checkin_title(team),
            "day": day,
            "thread_url": f"{settings.base_url}/threads/{thread.id}",
        },
        sender=Address(team.name, team.slug, settings.mail_domain),
        to=Address(person.name, addr_spec=person.email),
        message_id=message_id,
        now=now,
        reply_to=address,
    )
    try:
        with session.begin_nested():
            store.enqueue_mail(
                session,
                kind="checkin",
                idempotency_key=key,
                person=person,
                message=msg,
                created_at=now,
            )
            store.remember_sent(session, message_id, thread, person)
    except IntegrityError:  # another process planned the same prompt just now
        return False
    return True


def run_checkins(engine: Engine, settings: Settings, now: datetime) -> int:
    """Queue the prompts that are due: for each team with a check-in hour, each member
    on weekdays at that hour in the member's own zone (DST-safe, see schedule.py).

    The worker calls this on every tick, so finding who is due costs one query per team;
    only members who are due get a transaction of their own.
    """
    with session_scope(engine) as session:
        due = []
        for team in store.scheduled_checkin_teams(session):
            asked = store.last_checkin_prompts(session, team.id)  # type: ignore[arg-type]
            for person, membership in store.memberships_of(session, team.id):  # type: ignore[arg-type]
                last, joined = asked.get(person.id), membership.joined_at  # type: ignore[arg-type]
                if not checkin_due(
                    person.timezone,
                    team.checkin_hour,  # type: ignore[arg-type]
                    0,
                    last,
                    joined,
                    now,
                    person.away_from,
                    person.away_until,
                ):
                    continue
                # The hour is the team's, not the member's choice: it waits out their quiet hours.
                if end_of_quiet_hours(schedule_of(person), now) == now:
                    due.append((team, person))
    planned = 0
    for team, person in due:
        with session_scope(engine) as session:
            planned += plan_checkin_prompt(session, team, person, settings, now)
    return planned

"""Check-in prompts: each member of a team is asked the team's question by email.

The prompt's Reply-To carries a reply token naming the member and the day's
check-in thread, so the answer lands there whichever mail client sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app import store
from app.render import render_email
from app.settings import Settings
from app.tokens import reply_address_for


@dataclass
class CheckinRun:
    planned: int = 0
    already_sent: int = 0


def plan_checkin(session: Session, slug: str, settings: Settings, now: datetime) -> CheckinRun:
    """Put today's check-in prompt for every member of the team in the outbox.

    The idempotency key is (team, day, person): running it twice on one day asks
    nobody twice. "Today" is the UTC date of `now`.
    """
    team = store.get_team(session, slug)
    day = now.date()
    thread = store.checkin_thread(session, team, day)
    secret = settings.ensure_secret_key()
    run = CheckinRun()
    for person in store.list_members(session, slug):
        key = f"checkin:{team.id}:{day.isoformat()}:{person.id}"
        if store.outbox_key_exists(session, key):
            run.already_sent += 1
            continue
        address = reply_address_for(
            person.id,
            thread.id,
            team.slug,
            settings.mail_domain,
            secret,  # type: ignore[arg-type]
        )
        message_id = f"<checkin.{team.id}.{day.isoformat()}.{person.id}@{settings.mail_domain}>"
        msg = render_email(
            settings.templates_dir,
            "checkin",
            {
                "person": person,
                "team": team,
                "question": team.checkin_question,
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
                    session, kind="checkin", idempotency_key=key, person=person, message=msg
                )
                store.remember_sent(session, message_id, thread, person)
        except IntegrityError:  # another process planned the same prompt just now
            run.already_sent += 1
            continue
        run.planned += 1
    return run

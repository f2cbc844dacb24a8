"""A member's one-line reply that changes their settings (`smtp/commands.py`): applied,
and answered with a confirmation that says what their settings are now, or with what
would work when the line could not be used. The reply itself is never posted."""

from __future__ import annotations

from email.headerregistry import Address
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app import store
from app.errors import TidingsError
from app.models import InboundMessage, Person
from app.render import render_email
from app.settings import Settings
from app.views import describe_schedule
from smtp.commands import NotACommand, parse_command
from smtp.parse import ParsedMessage


def answer_command(
    session: Session,
    entry: InboundMessage,
    parsed: ParsedMessage,
    person: Person,
    settings: Settings,
) -> str | None:
    """Apply the command `parsed` is from `person` and queue the answer; what happened,
    for the journal. None when the reply is not a command (it is an update)."""
    today = entry.received_at.astimezone(ZoneInfo(person.timezone)).date()
    try:
        command = parse_command(parsed.text, today)
        if command is None:
            return None
        store.change_member_settings(session, person.email, command.settings)
    except (NotACommand, TidingsError) as exc:
        problem = exc.message if isinstance(exc, TidingsError) else str(exc)
        _answer(session, entry, person, settings, problem=problem)
        return f"Settings command from {person.email} not used: {problem}"
    _answer(session, entry, person, settings, done=command.says)
    return f"Settings changed by mail for {person.email}: {command.says}."


def _answer(
    session: Session,
    entry: InboundMessage,
    person: Person,
    settings: Settings,
    done: str = "",
    problem: str = "",
) -> None:
    key = f"settings:{entry.id}"
    if store.outbox_key_exists(session, key):  # processing this entry again
        return
    message = render_email(
        settings.templates_dir,
        "settings",
        {
            "person": person,
            "done": done,
            "problem": problem,
            "schedule": describe_schedule(person),
            "base_url": settings.base_url,
        },
        sender=Address("Tidings", store.DIGEST_LOCAL_PART, settings.mail_domain),
        to=Address(person.name, addr_spec=person.email),
        message_id=f"<settings.{entry.id}@{settings.mail_domain}>",
        now=entry.received_at,
    )
    store.enqueue_mail(session, kind="notice", idempotency_key=key, person=person, message=message)

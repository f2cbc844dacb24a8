"""What a reply address (`slug+r.<token>@domain`) proves, checked the same way at RCPT time
and when the message is processed, with a reason code and a sentence for each refusal."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from app import store
from app.errors import NotFound
from app.models import Person, Team, Thread
from app.tokens import InvalidToken, RetiredKey, verify_reply_token


@dataclass(frozen=True)
class Refusal:
    """Why a message, or one of its recipients, did not become an update."""

    reason: str
    detail: str


@dataclass(frozen=True)
class ReplyClaim:
    """A genuine reply address: it was issued to `person` for answering in `thread`."""

    person: Person
    thread: Thread


def check_reply_token(
    session: Session, team: Team, token: str, secret: str, team_address: str
) -> ReplyClaim | Refusal:
    try:
        claim = verify_reply_token(token, store.load_reply_keys(session, secret))
    except RetiredKey:
        return Refusal(
            "retired-token",
            "This reply address comes from old mail whose signing key has been retired;"
            f" write to {team_address} instead.",
        )
    except InvalidToken:
        return Refusal(
            "bad-token",
            "This reply address is not valid (it was altered or mistyped); reply from the"
            f" original email, or write to {team_address}.",
        )
    try:
        thread = store.get_thread(session, claim.thread_id, [team.id], include_deleted=True)  # type: ignore[list-item]
    except NotFound:
        return Refusal(
            "bad-token", f"This reply address is for a thread that does not exist in {team.slug}."
        )
    if thread.deleted_at is not None:
        return Refusal(
            "thread-deleted",
            f"The thread this reply address answers was deleted; write to {team_address}"
            " to start a new one.",
        )
    person = session.get(Person, claim.person_id)
    if person is None or not store.is_member(session, team.id, person.id):  # type: ignore[arg-type]
        return Refusal(
            "member-removed",
            f"This reply address was issued to someone who is no longer a member of {team.slug}.",
        )
    return ReplyClaim(person, thread)

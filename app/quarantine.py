"""Releasing quarantined mail: back in the journal as pending, processed again, and what
came of it. `tidings quarantine release` and the API's release share it; processing itself
lives in smtp/, which app/ never imports, so the caller hands it in."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session

from app import store
from app.errors import TidingsError

RELEASE_WAIT_SECONDS = 30  # a released message another process is processing


@dataclass(frozen=True)
class PostedTo:
    thread_id: int
    title: str
    team: str  # the team's slug


@dataclass(frozen=True)
class Released:
    """The journal entry's state once processing has run on it again (or given up
    waiting: still pending, left to the worker)."""

    entry_id: int
    status: str  # processed | quarantined | duplicate | discarded | pending
    reason: str | None
    detail: str | None
    posted: list[PostedTo]

    def problem(self) -> TidingsError | None:
        """Why it was not posted after all, and what to do, when it was kept out again."""
        if self.status != "quarantined":
            return None
        return TidingsError(
            f"#{self.entry_id} was quarantined again: {self.reason}: {self.detail}",
            "Fix that first, then release it again (or discard it).",
        )

    def notes(self, base_url: str) -> list[str]:
        """What happened, a sentence a line (for anything but `problem()`)."""
        if self.posted:
            return [
                f"Posted to {p.team}: {p.title} ({base_url}/threads/{p.thread_id})."
                for p in self.posted
            ]
        if self.status == "pending":
            return [
                f"#{self.entry_id} is waiting for the worker; see `tidings quarantine list` later."
            ]
        return [f"#{self.entry_id} is {self.status}" + (f": {self.detail}" if self.detail else ".")]


def release(
    session: Session,
    entry_id: int,
    process: Callable[[int], object] | None,
    wait_seconds: float = RELEASE_WAIT_SECONDS,
) -> Released:
    """Put a quarantined (or discarded) message back as pending, commit, run `process` on
    it (smtp/ingest's `process_journal_entry`, bound to an engine), and report the outcome.

    Without `process`, or when a running worker took the entry first, it waits up to
    `wait_seconds` for someone else's processing to finish. Commits `session`: processing
    runs in its own transaction and must see the release."""
    store.release_quarantined(session, entry_id)
    session.commit()
    if process is not None:
        process(entry_id)
    deadline = time.monotonic() + wait_seconds
    while True:
        session.expire_all()  # read what processing committed, not what this session saw
        entry = store.journal_entry(session, entry_id)
        posted = [
            PostedTo(thread.id, thread.title, team.slug)  # type: ignore[arg-type]
            for _, thread, team in store.posted_from(session, entry_id)
        ]
        outcome = Released(entry_id, entry.status, entry.reason, entry.detail, posted)
        session.commit()  # ends this read, so the next one sees newer commits (SQLite)
        if outcome.status != "pending" or time.monotonic() > deadline:
            return outcome
        time.sleep(0.2)

"""Chat webhooks: what each team's channel is posted, and posting it.

Each webhook (`TeamWebhook`) gets two kinds of post, planned by the worker on every tick
(`run_webhooks`) and queued in the outbox like mail, so `digest/send.py` delivers them
with the same claiming, retries and failure handling:

* **the day's section**, once a day at the webhook's local hour, when anything is new:
  the team's updates after its `cursor`, blockers first, then by thread
  (`digest/chat.py` builds the JSON);
* **an urgent update** on its own, on the first tick after it is stored: a blocker (as
  digests see blockers: a `Blocker:` line, or an answer to the team's blocker question)
  or a text starting `Urgent:` or `URGENT`. Every update after the webhook's
  `urgent_cursor` is looked at once.

An urgent update posted on its own is in that day's section too: the section is the
whole day's record, and someone reading only the sections misses nothing. The two
cursors move independently, each in the same transaction that queues its posts, and only
from the value this worker read (a compare-and-set on the webhook's row), so when two
workers plan at once, one of them queues the posts and the other queues nothing; the
outbox's unique idempotency keys catch anything that slips through. Like digests, both
cursors stop at `store.committed_update_ceiling`, so an update that commits late is
never skipped.

A post that fails for good (the channel's URL was revoked: a 4xx) is recorded in the
outbox and shown by `tidings team webhook list`; its updates are not posted again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app import store
from app import webhooks as hooks
from app.db import session_scope
from app.models import OutboundMessage, TeamWebhook
from app.settings import Settings
from digest.chat import (
    ChatItem,
    ChatSection,
    encode,
    is_urgent,
    section_payload,
    urgent_payload,
)
from digest.schedule import Schedule, digest_due
from digest.updates import CachedUpdate, UpdateCache

log = logging.getLogger(__name__)

POST_TIMEOUT = 15.0  # seconds to connect, and to wait for the answer


@dataclass
class WebhookRun:
    """What one pass queued."""

    urgent: int = 0
    sections: int = 0


def section_due(webhook: TeamWebhook, now: datetime) -> bool:
    """Whether the webhook's day's section is due: its hour has come in its zone since the
    last section (or since it was added). Digests' schedule, without quiet hours."""
    schedule = Schedule(
        cadence="daily",
        timezone=webhook.timezone,
        hour=webhook.hour,
        quiet_start=time(0),
        quiet_end=time(0),
    )
    return digest_due(schedule, webhook.last_section_at, webhook.created_at, now)


def run_webhooks(engine: Engine, settings: Settings, now: datetime) -> WebhookRun:
    """Queue what is due for every webhook: urgent updates, then the sections whose hour
    has come. One transaction per webhook and kind of post; a webhook another worker is
    planning at the same moment is left to it."""
    run = WebhookRun()
    with session_scope(engine) as session:
        watched = hooks.watched_webhooks(session)
    urgent = [hook for hook, news in watched if news]
    due = [hook for hook, _ in watched if section_due(hook, now)]
    if not urgent and not due:
        return run
    with session_scope(engine) as session:
        ceiling = store.committed_update_ceiling(session)
    planner = _Planner(settings, now, ceiling)
    for hook in urgent:
        run.urgent += planner.plan(engine, hook, planner.urgent)
    for hook in due:
        run.sections += planner.plan(engine, hook, planner.section)
    if run.urgent or run.sections:
        log.info("queued %s urgent and %s daily chat posts", run.urgent, run.sections)
    return run


_Plan = Callable[[Session, TeamWebhook], int]


class _Planner:
    """One pass's plans: one ceiling, one clock, one cache of updates for every webhook."""

    def __init__(self, settings: Settings, now: datetime, ceiling: int) -> None:
        self.settings, self.now, self.ceiling = settings, now, ceiling
        self.updates = UpdateCache()

    def plan(self, engine: Engine, hook: TeamWebhook, how: _Plan) -> int:
        try:
            with session_scope(engine) as session:
                return how(session, hook)
        except IntegrityError:
            log.info("webhook %s was planned by another worker", hook.id)
        except Exception:
            log.exception("could not plan the posts of webhook %s", hook.id)
        return 0

    def urgent(self, session: Session, hook: TeamWebhook) -> int:
        """Queue each urgent update after the webhook's urgent cursor, one post each."""
        if self.ceiling <= hook.urgent_cursor or not hooks.take_urgent_range(
            session, hook, self.ceiling
        ):
            return 0
        queued = 0
        for update in self._live(session, hook.team_id, hook.urgent_cursor):
            if not (update.blocker or is_urgent(update.body)):
                continue
            payload = urgent_payload(hook.kind, update.team_name, self._item(update))
            label = "Blocker" if update.blocker else "Urgent"
            self._queue(
                session, hook, f"urgent:{update.id}", f"{label}: {update.thread_title}", payload
            )
            queued += 1
        return queued

    def section(self, session: Session, hook: TeamWebhook) -> int:
        """Queue the day's section: everything after the webhook's cursor, if anything."""
        up_to = max(hook.cursor, self.ceiling)
        if not hooks.take_section(session, hook, up_to, self.now) or up_to == hook.cursor:
            return 0
        new = self._live(session, hook.team_id, hook.cursor)
        if not new:
            return 0
        first = new[0]
        team_url = f"{self.settings.base_url}/teams/{first.team_slug}"
        section = ChatSection(first.team_name, team_url, [self._item(u) for u in new])
        count = f"{len(new)} new update{'' if len(new) == 1 else 's'}"
        subject = f"{first.team_name}: {count}"
        key = f"section:{hook.cursor}-{up_to}"
        self._queue(session, hook, key, subject, section_payload(hook.kind, section))
        return 1

    def _live(self, session: Session, team_id: int, after: int) -> list[CachedUpdate]:
        """The team's updates after `after` up to the ceiling, in live threads, in order of
        posting."""
        found = self.updates.team_between(session, team_id, after, self.ceiling)
        return [u for u in found if not u.thread_deleted]

    def _item(self, update: CachedUpdate) -> ChatItem:
        base = self.settings.base_url
        return ChatItem(
            update_id=update.id,
            thread_id=update.thread_id,
            thread_title=update.thread_title,
            author=update.author_name,
            body=update.body,
            # The permalink, as digests link it: it survives a detour through sign-in.
            url=f"{base}/updates/{update.id}",
            thread_url=f"{base}/threads/{update.thread_id}",
            blocker=update.blocker,
        )

    def _queue(
        self, session: Session, hook: TeamWebhook, key: str, subject: str, payload: dict[str, Any]
    ) -> None:
        digest = hashlib.sha256(f"{hook.id}:{key}".encode()).hexdigest()[:24]
        hooks.enqueue_post(
            session,
            hook,
            key=key,
            subject=subject[:200],
            body=encode(payload),
            message_id=f"<{digest}.webhook@{self.settings.mail_domain}>",
            created_at=self.now,
        )


# Posting ---------------------------------------------------------------------------------


_WHITESPACE = re.compile(r"\s+")


def response_outcome(status: int, reason: str, text: str) -> tuple[str | None, bool]:
    """(None, False) for a post the receiver took, else (error, whether it is permanent).
    A 2xx is taken; a 429, a 408 and a 5xx are worth trying again; any other answer (a
    404 for a revoked webhook, a 400 for a body it refuses, a redirect) will not change."""
    if 200 <= status < 300:
        return None, False
    said = _WHITESPACE.sub(" ", text).strip()[:200]
    error = f"{status} {reason}" + (f": {said}" if said else "")
    return error, not (status >= 500 or status in (408, 429))


def recipient_in_logs(row: OutboundMessage) -> str:
    """Who a row goes to, as logs may say it: a webhook's URL is its secret (anyone who
    has it can post to the channel), so only its host is named."""
    if row.kind != hooks.WEBHOOK_KIND:
        return row.recipient
    return f"the chat webhook at {urlsplit(row.recipient).hostname}"


class WebhookPoster:
    """Posts the outbox's chat posts: one HTTP client for a delivery pass, opened when the
    first post needs it."""

    def __init__(self, timeout: float = POST_TIMEOUT) -> None:
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> WebhookPoster:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def post(self, row: OutboundMessage) -> tuple[str | None, bool]:
        """POST one row's JSON to its webhook: (None, False) when it was taken, else
        (error, whether it is permanent). A network error is temporary."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        try:
            response = await self._client.post(
                row.recipient,
                content=row.raw,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}", False
        except Exception as exc:  # one post's trouble never stops the pass
            log.exception("unexpected error posting outbox row %s", row.id)
            return f"{type(exc).__name__}: {exc}", False
        return response_outcome(response.status_code, response.reason_phrase, response.text)

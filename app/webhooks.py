"""A team's chat webhooks (`TeamWebhook` rows): adding, listing and removing them, and the
writes that planning their posts makes (`digest/webhooks.py` decides what to post).

A post is an outbox row of kind `webhook`: `recipient` is the webhook's URL and `raw` the
JSON body, sent by `digest/send.py` like any other outbox row. Its idempotency key starts
`webhook:ID:` (the webhook's id), which is how a webhook finds its posts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, update
from sqlmodel import Session, select

from app import store
from app.errors import NotFound, TidingsError
from app.models import OutboundMessage, TeamWebhook, Update

WEBHOOK_KIND = "webhook"  # the outbox kind of a chat post
WEBHOOK_KINDS = ("slack", "teams")
MAX_URL_CHARS = 1_000


def check_webhook_url(url: str) -> str:
    """The URL, if it is an http(s) address with a host; else a TidingsError saying what
    to give instead."""
    url = url.strip()
    parts = urlsplit(url)
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or any(c.isspace() for c in url)
        or len(url) > MAX_URL_CHARS
    ):
        raise TidingsError(
            f"'{url}' is not an http(s) webhook URL.",
            "Copy the channel's incoming-webhook URL as Slack or Teams shows it, for"
            " example https://hooks.slack.com/services/T000/B000/XXXX.",
        )
    return url


def _check_kind(kind: str) -> str:
    if kind not in WEBHOOK_KINDS:
        raise TidingsError(
            f"Unknown webhook kind '{kind}'.",
            "Use --kind slack (a Slack incoming webhook) or --kind teams (Microsoft Teams:"
            " a Workflows or connector webhook).",
        )
    return kind


def add_webhook(
    session: Session, slug: str, url: str, kind: str, hour: int = 9, timezone: str = "UTC"
) -> TeamWebhook:
    """Post the team's news to `url` from now on: what is posted starts after the newest
    update stored now. Adding the same URL again changes its kind and hour, and keeps
    what was already posted."""
    team = store.get_team(session, slug)
    url, kind = check_webhook_url(url), _check_kind(kind)
    if not 0 <= hour <= 23:
        raise TidingsError(f"Hour {hour} is not 0-23.", "Give --hour 9 for 09:00.")
    store.check_timezone(timezone)
    webhook = session.exec(
        select(TeamWebhook).where(TeamWebhook.team_id == team.id, TeamWebhook.url == url)
    ).first()
    if webhook is None:
        # Only what comes next is posted, not the team's history.
        newest = store.committed_update_ceiling(session)
        webhook = TeamWebhook(
            team_id=team.id,  # type: ignore[arg-type]
            kind=kind,
            url=url,
            cursor=newest,
            urgent_cursor=newest,
        )
    webhook.kind, webhook.hour, webhook.timezone = kind, hour, timezone
    session.add(webhook)
    session.flush()
    return webhook


@dataclass(frozen=True)
class WebhookState:
    webhook: TeamWebhook
    last_post: OutboundMessage | None  # the newest post queued for it, sent or not


def team_webhooks(session: Session, slug: str) -> list[WebhookState]:
    """The team's webhooks, oldest first, each with its newest post."""
    team = store.get_team(session, slug)
    hooks = session.exec(
        select(TeamWebhook).where(TeamWebhook.team_id == team.id).order_by(TeamWebhook.id)  # type: ignore[arg-type]
    ).all()
    return [WebhookState(hook, _last_post(session, hook)) for hook in hooks]


def _posts_of(webhook: TeamWebhook) -> ColumnElement[bool]:
    key = OutboundMessage.idempotency_key
    # SQLite may give a removed webhook's number to the next one: its posts are older.
    return key.startswith(f"{WEBHOOK_KIND}:{webhook.id}:") & (  # type: ignore[attr-defined,no-any-return]
        OutboundMessage.created_at >= webhook.created_at  # type: ignore[operator]
    )


def _last_post(session: Session, webhook: TeamWebhook) -> OutboundMessage | None:
    query = (
        select(OutboundMessage).where(_posts_of(webhook)).order_by(OutboundMessage.id.desc())  # type: ignore[union-attr]
    )
    return session.exec(query).first()


def remove_webhook(session: Session, slug: str, url: str) -> int:
    """Stop posting to `url`; posts queued for it and not sent yet are cancelled (they
    stay in the outbox as failed). Returns how many were cancelled."""
    team = store.get_team(session, slug)
    webhook = session.exec(
        select(TeamWebhook).where(TeamWebhook.team_id == team.id, TeamWebhook.url == url.strip())
    ).first()
    if webhook is None:
        raise NotFound(
            f"Team {team.slug} has no webhook {url.strip()}.",
            f"See its webhooks with `tidings team webhook list {team.slug}`.",
        )
    queued = list(
        session.exec(
            select(OutboundMessage).where(
                _posts_of(webhook),
                OutboundMessage.status == "pending",
            )
        )
    )
    for row in queued:
        row.status = "failed"
        row.last_error = "Not posted: the webhook was removed."
        row.idempotency_key = f"{row.idempotency_key[:180]}:failed:{row.id}"
        session.add(row)
    session.delete(webhook)
    session.flush()
    return len(queued)


# What planning writes (digest/webhooks.py) ------------------------------------------------


def watched_webhooks(session: Session) -> list[tuple[TeamWebhook, bool]]:
    """Every webhook, and whether its team has updates after its urgent cursor (a range
    scan of the newest ids: cheap on every tick)."""
    news = (
        select(Update.id)
        .where(
            Update.team_id == TeamWebhook.team_id,
            Update.id > TeamWebhook.urgent_cursor,  # type: ignore[operator]
        )
        .exists()
    )
    query = select(TeamWebhook, news).order_by(TeamWebhook.id)  # type: ignore[arg-type]
    return [(hook, bool(new)) for hook, new in session.exec(query)]  # type: ignore[misc]


def take_urgent_range(session: Session, webhook: TeamWebhook, up_to: int) -> bool:
    """Move the webhook's urgent cursor from where `webhook` saw it to `up_to`: the caller
    then posts the urgent updates in between. False when another worker moved it first
    (or the webhook was removed): then the caller posts nothing."""
    moved = session.execute(
        update(TeamWebhook)
        .where(
            TeamWebhook.id == webhook.id,  # type: ignore[arg-type]
            TeamWebhook.urgent_cursor == webhook.urgent_cursor,  # type: ignore[arg-type]
        )
        .values(urgent_cursor=up_to)
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def take_section(session: Session, webhook: TeamWebhook, up_to: int, now: datetime) -> bool:
    """Move the webhook's cursor from where `webhook` saw it to `up_to` and record `now` as
    its day's section: the caller then posts the updates in between. False when another
    worker planned it first (or the webhook was removed)."""
    seen = webhook.last_section_at
    moved = session.execute(
        update(TeamWebhook)
        .where(
            TeamWebhook.id == webhook.id,  # type: ignore[arg-type]
            TeamWebhook.cursor == webhook.cursor,  # type: ignore[arg-type]
            TeamWebhook.last_section_at.is_(None)  # type: ignore[union-attr]
            if seen is None
            else TeamWebhook.last_section_at == seen,
        )
        .values(cursor=up_to, last_section_at=now)
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def enqueue_post(
    session: Session,
    webhook: TeamWebhook,
    *,
    key: str,
    subject: str,
    body: bytes,
    message_id: str,
    created_at: datetime,
) -> OutboundMessage:
    """Queue one post to the webhook. `key` (after `webhook:ID:`) names what it posts; the
    same key twice raises IntegrityError, so a post is queued once."""
    row = OutboundMessage(
        kind=WEBHOOK_KIND,
        idempotency_key=f"{WEBHOOK_KIND}:{webhook.id}:{key}",
        recipient=webhook.url,
        subject=subject,
        message_id=message_id,
        raw=body,
        created_at=created_at,
    )
    session.add(row)
    session.flush()
    return row

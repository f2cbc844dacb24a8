"""The Prometheus metrics: every metric object Tidings has, defined once, here.

smtp/ and digest/ increment these; the web app serves them at `/metrics`, and
`tidings smtp` / `tidings worker` on `TIDINGS_METRICS_PORT` when they run on their own
(`tidings serve` is one process, so its `/metrics` has all of them). Counters count what
happened in this process since it started; the outbox gauges are read from the database
at scrape time, so every process that reports them reports the same numbers.

Inbound mail:
  tidings_messages_received_total            messages whose data reached the listener (DATA)
  tidings_messages_accepted_total            journaled and answered 250
  tidings_messages_rejected_total{reason}    refused over SMTP, by reason (one per refused
                                             recipient at RCPT; one per message at DATA)
  tidings_messages_processed_total{status}   processing outcomes: processed, quarantined,
                                             duplicate
  tidings_messages_quarantined_total{reason} quarantined, by reason code (as in
                                             `tidings quarantine list`)
  tidings_bounces_total                      bounces that came back (quarantined as bounce)
  tidings_processing_seconds                 time to process one journaled message
Outbound mail:
  tidings_digests_planned_total              digests planned into the outbox
  tidings_checkins_planned_total             check-in prompts queued
  tidings_outbox_sent_total{kind}            outbox messages sent (kind: digest, checkin,
                                             receipt, ...)
  tidings_outbox_failed_total{kind}          outbox messages failed for good
  tidings_outbox_retried_total{kind}         temporary failures, to be retried
  tidings_outbox_depth{status}               rows not sent yet (pending, sending)
  tidings_outbox_oldest_age_seconds          age of the oldest of them (0 when none)
Web:
  tidings_http_request_seconds{route,method,status}  by route template (`/threads/{id}`)
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app import store
from app.db import session_scope
from app.logs import journal_context
from app.models import utcnow

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., str])

# No `*_created` series beside every counter: Prometheus does not need them.
disable_created_metrics()

# Inbound ---------------------------------------------------------------------------------

MESSAGES_RECEIVED = Counter(
    "tidings_messages_received", "Messages whose data reached the SMTP listener (DATA)."
)
MESSAGES_ACCEPTED = Counter(
    "tidings_messages_accepted", "Messages journaled and answered 250 by the SMTP listener."
)
MESSAGES_REJECTED = Counter(
    "tidings_messages_rejected",
    "Messages or recipients refused over SMTP, by reason.",
    ["reason"],
)
MESSAGES_PROCESSED = Counter(
    "tidings_messages_processed",
    "Journaled messages processed, by outcome (processed, quarantined, duplicate).",
    ["status"],
)
MESSAGES_QUARANTINED = Counter(
    "tidings_messages_quarantined",
    "Journaled messages kept in the quarantine, by reason code.",
    ["reason"],
)
BOUNCES = Counter("tidings_bounces", "Bounces received (quarantined with reason bounce).")
PROCESSING_SECONDS = Histogram(
    "tidings_processing_seconds",
    "Time to process one journaled message into updates (or the quarantine).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Outbound --------------------------------------------------------------------------------

DIGESTS_PLANNED = Counter("tidings_digests_planned", "Digests planned into the outbox.")
CHECKINS_PLANNED = Counter("tidings_checkins_planned", "Check-in prompts queued in the outbox.")
OUTBOX_SENT = Counter("tidings_outbox_sent", "Outbox messages sent, by kind.", ["kind"])
OUTBOX_FAILED = Counter(
    "tidings_outbox_failed", "Outbox messages that failed for good, by kind.", ["kind"]
)
OUTBOX_RETRIED = Counter(
    "tidings_outbox_retried", "Temporary sending failures (retried later), by kind.", ["kind"]
)

# Web -------------------------------------------------------------------------------------

HTTP_REQUEST_SECONDS = Histogram(
    "tidings_http_request_seconds",
    "HTTP request latency by route template, method and status code.",
    ["route", "method", "status"],
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Processing outcomes a message can end in (anything else: nothing was decided here).
_FINAL = frozenset({"processed", "quarantined", "duplicate"})


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    """Record one request; unknown methods are lumped together so labels stay few."""
    method = method if method in HTTP_METHODS else "OTHER"
    HTTP_REQUEST_SECONDS.labels(route, method, str(status)).observe(seconds)


def message_rejected(reason: str) -> None:
    MESSAGES_REJECTED.labels(reason).inc()


def message_processed(status: str, reason: str | None, seconds: float) -> None:
    MESSAGES_PROCESSED.labels(status).inc()
    PROCESSING_SECONDS.observe(seconds)
    if status == "quarantined":
        MESSAGES_QUARANTINED.labels(reason or "unknown").inc()
        if reason == "bounce":
            BOUNCES.inc()


def observe_processing(process: F) -> F:
    """For `process(engine, entry_id, ...) -> final status` (smtp/ingest.py): everything it
    logs carries the entry's journal id, and when this call is the one that decided the
    entry (it was pending before and is not now), its outcome and time are counted."""

    @functools.wraps(process)
    def observed(engine: Engine, entry_id: int, *args: Any, **kwargs: Any) -> str:
        with journal_context(entry_id):
            before = _outcome(engine, entry_id)
            started = time.perf_counter()
            status = process(engine, entry_id, *args, **kwargs)
            seconds = time.perf_counter() - started
            if before is not None and before[0] == "pending" and status in _FINAL:
                after = _outcome(engine, entry_id)
                reason = after[1] if after is not None else None
                message_processed(status, reason, seconds)
            return status

    return observed  # type: ignore[return-value]


def _outcome(engine: Engine, entry_id: int) -> tuple[str, str | None] | None:
    try:
        with session_scope(engine) as session:
            return store.inbound_outcome(session, entry_id)
    except SQLAlchemyError:
        return None  # metrics never stand in the way of processing


# The outbox, read at scrape time ---------------------------------------------------------


def outbox_metrics(engine: Engine) -> Iterable[Metric]:
    """tidings_outbox_depth{status} and tidings_outbox_oldest_age_seconds, from the
    database now; nothing when the database cannot be read (the scrape still answers)."""
    try:
        with session_scope(engine) as session:
            depth, oldest = store.outbox_backlog(session)
    except SQLAlchemyError as exc:
        log.warning("outbox metrics unavailable: %s", type(exc).__name__)
        return []
    gauge = GaugeMetricFamily(
        "tidings_outbox_depth", "Outbox rows not sent yet, by status.", labels=["status"]
    )
    for status, count in sorted(depth.items()):
        gauge.add_metric([status], count)
    age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    oldest_age = GaugeMetricFamily(
        "tidings_outbox_oldest_age_seconds",
        "Seconds since the oldest outbox row not sent yet was queued (0 when none).",
        value=max(age, 0.0),
    )
    return [gauge, oldest_age]


class _Scrape(Collector):
    """This process's metrics (the default registry: ours, plus process and Python
    metrics), and the outbox gauges of `engine` when given."""

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        return []  # never collected at registration: that would query the database

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        if self.engine is not None:
            yield from outbox_metrics(self.engine)


def scrape_registry(engine: Engine | None) -> CollectorRegistry:
    """What one `/metrics` serves: every metric of this process, and the outbox gauges
    read from `engine` (None: without them)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(engine))
    return registry

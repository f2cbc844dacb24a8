"""The composition root: wires the listener (smtp/), the web app (app/) and the worker
(smtp/ processing, digest/ planning and sending) into running services.

This is the one module of app/ that imports smtp/ and digest/.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn
from prometheus_client import start_http_server
from sqlalchemy import Engine

from app import metrics
from app.errors import TidingsError
from app.main import create_app
from app.models import utcnow
from app.settings import Settings
from digest.build import run_digests
from digest.checkin import run_checkins
from digest.layout import DigestLayout
from digest.outbound import outbound_transport, verp_return_path
from digest.send import Transport, deliver_pending
from digest.webhooks import run_webhooks
from smtp.authcheck import dns_txt_lookup
from smtp.handler import TidingsHandler, make_smtp_server, tls_context_from_settings
from smtp.ingest import process_journal_entry, process_pending
from smtp.journal import ProcessingLane

log = logging.getLogger("tidings")


@dataclass(frozen=True)
class Parts:
    smtp: bool = True
    web: bool = True
    worker: bool = True


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: we stop every part together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Worker:
    """Processes the inbound journal, plans due check-ins, digests and chat posts (urgent
    updates at once, each webhook's day's section at its hour), delivers the outbox.

    It wakes every `worker_poll_seconds`, or at once when `poke()` is called (the
    listener pokes it when it has journaled a message, so replies show up quickly).
    """

    def __init__(self, engine: Engine, settings: Settings, transport: Transport) -> None:
        self.engine, self.settings, self.transport = engine, settings, transport
        self.return_path = verp_return_path(settings)
        self.wake = asyncio.Event()

    def poke(self) -> None:
        self.wake.set()

    async def tick(self) -> None:
        await asyncio.to_thread(process_pending, self.engine, self.settings)
        prompts = await asyncio.to_thread(run_checkins, self.engine, self.settings, utcnow())
        metrics.CHECKINS_PLANNED.inc(prompts)
        run = await asyncio.to_thread(run_digests, self.engine, self.settings, utcnow())
        metrics.DIGESTS_PLANNED.inc(run.planned)
        await asyncio.to_thread(run_webhooks, self.engine, self.settings, utcnow())
        await deliver_pending(
            self.engine,
            self.transport,
            return_path=self.return_path,
            layout=DigestLayout(self.settings),
        )

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("worker tick failed; retrying on the next one")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.worker_poll_seconds)
            self.wake.clear()


async def run_services(
    settings: Settings, engine: Engine, parts: Parts, announce: Callable[[str], None]
) -> None:
    """Run the chosen parts until SIGINT/SIGTERM; `announce` prints where each one is."""
    try:
        dns_txt_lookup(settings.dns_resolver)
    except ValueError as exc:
        raise TidingsError(
            str(exc), "Set TIDINGS_DNS_RESOLVER to an IP such as 127.0.0.1:53, or leave it empty."
        ) from exc
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    worker = Worker(engine, settings, outbound_transport(settings))

    metrics_server = None
    if settings.metrics_port:
        # Counters of this process; the outbox gauges where the worker runs (every
        # process would report the same database numbers).
        registry = metrics.scrape_registry(engine if parts.worker else None)
        try:
            metrics_server, _thread = start_http_server(
                settings.metrics_port, settings.metrics_host, registry
            )
        except OSError as exc:
            raise TidingsError(
                f"Could not serve metrics on {settings.metrics_host}:{settings.metrics_port}:"
                f" {exc}",
                "Change TIDINGS_METRICS_PORT, or set it to 0 to turn the metrics port off.",
            ) from exc
        announce(f"Metrics:   http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    smtp_server, handler = None, None
    processing = ProcessingLane(
        lambda entry_id: process_journal_entry(engine, entry_id, settings),
        after_each_run=worker.poke,
        listener_busy=lambda: handler is not None and handler.journal.busy,
    )
    if parts.smtp:
        handler = TidingsHandler(engine, settings, on_journaled=processing.add)
        tls = tls_context_from_settings(settings)
        smtp_server = await loop.create_server(
            lambda: make_smtp_server(
                handler, settings.mail_domain, settings.max_message_mb, tls, settings.smtp_lmtp
            ),
            settings.smtp_host,
            settings.smtp_port,
        )
        announce(
            f"Mail in:   {'lmtp' if settings.smtp_lmtp else 'smtp'}://"
            f"{settings.smtp_host}:{settings.smtp_port}"
            f"  (team addresses: SLUG@{settings.mail_domain}"
            f"{'; STARTTLS offered' if tls else ''})"
        )
    web_server = None
    if parts.web:
        config = uvicorn.Config(
            # Released quarantined mail is processed at once, as the CLI's release does.
            create_app(settings, engine, lambda e: process_journal_entry(engine, e, settings)),
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            log_config=None,  # uvicorn's records go through our handler (JSON or text)
            lifespan="off",
        )
        web_server = _Server(config)
        tasks.append(asyncio.create_task(web_server.serve()))
        announce(f"Archive:   {settings.base_url}/   API: {settings.base_url}/docs")
    worker_task = None
    if parts.worker:
        worker_task = asyncio.create_task(worker.run())
        tasks.append(worker_task)
        announce(f"Mail out:  {worker.transport.description}")
        announce(f"Database:  {engine.url.render_as_string(hide_password=True)}")
    announce("Stop with Ctrl-C.")

    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if smtp_server is not None:
        smtp_server.close()
        await smtp_server.wait_closed()
    if handler is not None:
        await handler.journal.drain()  # messages mid-commit still get their 250
    if web_server is not None:
        web_server.should_exit = True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(processing.drain(), timeout=30)
    if worker_task is not None:
        worker_task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if metrics_server is not None:
        metrics_server.shutdown()
        metrics_server.server_close()
    waiter.cancel()
    for task in done:
        if task is not waiter and task.exception():
            raise task.exception()  # type: ignore[misc]

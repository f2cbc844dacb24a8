"""`create_app(settings)`: the FastAPI application (JSON API, web archive, health)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app import account, actions, api, api_admin, feed, metrics, signin, web
from app.db import make_engine, schema_is_current
from app.settings import Settings

SECURITY_HEADERS = {
    # No inline script or style anywhere: mailed-in content can never run here.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _database_check(engine: Engine) -> str:
    try:
        return (
            "ok" if schema_is_current(engine) else "schema is not current: run tidings db upgrade"
        )
    except SQLAlchemyError as exc:
        return f"unreachable: {type(exc).__name__}"


async def _listener_check(host: str, port: int) -> str:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError) as exc:
        return f"not accepting on {host}:{port}: {type(exc).__name__}"
    writer.close()
    return "ok"


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    process_entry: Callable[[int], object] | None = None,
) -> FastAPI:
    """The web app. `process_entry` runs processing on a journal entry now (the
    composition root hands in smtp/'s); without it, released quarantined mail waits for
    the worker."""
    app = FastAPI(
        title="Tidings",
        summary="Email-first async check-ins: threads of updates, digests, archive.",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.state.process_entry = process_entry
    app.include_router(api.router)
    app.include_router(api_admin.router)
    app.include_router(web.router)
    app.include_router(actions.router)
    app.include_router(signin.router)
    app.include_router(feed.router)
    app.include_router(account.router)
    app.add_exception_handler(web.SignInFirst, web.sign_in_first)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, web.not_understood)  # type: ignore[arg-type]

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Ready for traffic: the database answers, its schema is current, and the SMTP
        listener accepts connections. 503 names what is not ready."""
        checks = {
            "database": await asyncio.to_thread(_database_check, app.state.engine),
            "smtp": await _listener_check(settings.smtp_host, settings.smtp_port),
        }
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    scrape = metrics.scrape_registry(app.state.engine)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics of this process (of every part, under `tidings serve`), and
        the outbox depth and age read from the database now."""
        body = await asyncio.to_thread(generate_latest, scrape)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def request_metrics(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        status = 500
        try:
            response: Response = await call_next(request)
            status = response.status_code
            return response
        finally:
            # The route's template (`/threads/{thread_id}`), never the path itself, so
            # the labels stay few; anything no route matched is one label.
            route = getattr(request.scope.get("route"), "path", None) or "unmatched"
            metrics.observe_http(route, request.method, status, time.perf_counter() - started)

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        if not request.url.path.startswith(("/docs", "/openapi.json", "/redoc")):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    return app

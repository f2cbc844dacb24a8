"""`create_app(settings)`: the FastAPI application (JSON API, web archive, health)."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from sqlalchemy import Engine

from app import api, web
from app.db import make_engine
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


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    app = FastAPI(
        title="Tidings",
        summary="Email-first async check-ins: threads of updates, digests, archive.",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.include_router(api.router)
    app.include_router(web.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        if not request.url.path.startswith(("/docs", "/openapi.json", "/redoc")):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    return app

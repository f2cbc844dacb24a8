"""The one settings object. Read once by the composition root (the CLI) and passed in."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"


class Settings(BaseSettings):
    """Everything configurable, from `TIDINGS_*` environment variables or `.env`."""

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("var"), description="SQLite file, default Maildir and secret.")
    database_url: str = Field("", description="SQLAlchemy URL; default: SQLite in data_dir.")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    mail_domain: str = Field("localhost", description="Team addresses are SLUG@mail_domain.")
    base_url: str = Field("", description="Public archive URL; default from HTTP host and port.")
    outbound_url: str = Field("", description="maildir:PATH (default data_dir/outbox), smtp://h:p")
    secret_key: str = Field("", description="Signs tokens; generated into data_dir when unset.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["text", "json"] = Field(
        "text", description="text (readable lines) or json (one JSON object a line)."
    )
    metrics_host: str = Field("127.0.0.1", description="Where TIDINGS_METRICS_PORT binds.")
    metrics_port: int = Field(
        0,
        description="Serve /metrics on this port too (for `tidings smtp` and `tidings"
        " worker`, which have no web app); 0: off. The web app always has /metrics.",
    )
    max_message_mb: int = Field(
        25, description="Largest message the listener takes (SIZE); bigger gets 552 5.3.4."
    )
    smtp_max_sessions_per_ip: int = Field(
        20, description="Concurrent SMTP sessions from one address; more get 421 4.7.0."
    )
    smtp_max_messages_per_minute: int = Field(
        120, description="Messages a minute from one address; more get 421 4.7.0."
    )
    smtp_unlimited: str = Field(
        "127.0.0.1,::1",
        description="Comma-separated client addresses never limited (the MTA in front).",
    )
    worker_poll_seconds: float = Field(5.0, description="How often the worker looks for work.")
    bounce_pause_after: int = Field(
        3, description="Hard bounces within 14 days that pause a member's mail; 0: never."
    )
    trusted_authserv_ids: str = Field(
        "",
        description="Comma-separated authserv-ids (your MTA's host name) whose"
        " Authentication-Results headers are believed.",
    )
    dkim_verify: bool = Field(
        True, description="Check DKIM signatures ourselves when no trusted MTA vouched."
    )
    dns_resolver: str = Field(
        "", description="IP[:PORT] of the DNS server for DKIM key lookups; default: system's."
    )
    dkim_selector: str = Field("", description="DKIM selector for signing outgoing mail.")
    dkim_key_file: str = Field(
        "", description="PEM RSA private key for DKIM signing; unset: mail is not signed."
    )
    smtp_lmtp: bool = Field(
        False, description="Speak LMTP instead of SMTP (an MTA in front delivers over LMTP)."
    )
    tls_cert_file: str = Field(
        "", description="PEM certificate (chain) for STARTTLS on the listener; unset: no TLS."
    )
    tls_key_file: str = Field("", description="PEM private key of TIDINGS_TLS_CERT_FILE.")
    templates_dir: Path = Field(
        Path(__file__).resolve().parent.parent / "templates", description="Jinja2 templates."
    )

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def model_post_init(self, __context: object) -> None:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'tidings.db'}"
        if not self.base_url:
            self.base_url = f"http://{self.http_host}:{self.http_port}"
        self.base_url = self.base_url.rstrip("/")
        if not self.outbound_url:
            self.outbound_url = f"maildir:{self.data_dir / 'outbox'}"
        self.mail_domain = self.mail_domain.lower()

    @property
    def trusted_authserv_id_set(self) -> frozenset[str]:
        return frozenset(
            part.strip().lower() for part in self.trusted_authserv_ids.split(",") if part.strip()
        )

    @property
    def smtp_unlimited_set(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.smtp_unlimited.split(",") if p.strip())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def team_address(self, slug: str) -> str:
        return f"{slug}@{self.mail_domain}"

    def ensure_secret_key(self) -> str:
        """The signing secret: from the environment, else the one kept in data_dir.

        Generated on first use and stored with mode 0600, so tokens signed before a
        restart still verify after it, and no key is ever a constant in the code.
        """
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first; read theirs
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(48))
        self.secret_key = path.read_text().strip()
        return self.secret_key

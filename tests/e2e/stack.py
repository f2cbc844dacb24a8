"""A running `tidings serve` in a subprocess, and ways to talk to it like a user would."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
import re
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope
from app.models import InboundMessage
from app.tokens import ReplyKeys

T = TypeVar("T")
BIN = Path(sys.executable).parent
DOMAIN = "tidings.test"


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.1)


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    smtp_port: int
    http_port: int
    process: subprocess.Popen[bytes] | None = None
    token: str = ""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data_dir / "serve.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "tidings"), *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tidings {' '.join(args)} failed:\n{result.stderr}")
        return result

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "tidings"), "serve"],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._up, 60, f"tidings serve to start (log: {self.log})")

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"tidings serve exited:\n{self.log.read_text()}")
        try:
            httpx.get(f"{self.base_url}/healthz", timeout=1).raise_for_status()
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=2) as smtp:
                smtp.noop()
            return True
        except (httpx.HTTPError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    # Talking to it ---------------------------------------------------------------------

    def send(self, msg: EmailMessage | bytes, sender: str, to: list[str] | str) -> dict:
        recipients = [to] if isinstance(to, str) else to
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            return smtp.sendmail(
                sender, recipients, msg if isinstance(msg, bytes) else msg.as_bytes()
            )

    def api(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(
            f"{self.base_url}/api{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def get(self, path: str, **params: str) -> httpx.Response:
        # httpx replaces a URL's own query string with `params`, even an empty one.
        return httpx.get(f"{self.base_url}{path}", params=params or None, timeout=10)

    def secret(self) -> str:
        """The secret key the stack generated into its data directory."""
        return (self.data_dir / "secret_key").read_text().strip()

    def reply_keys(self) -> ReplyKeys:
        """The keys the running stack signs and verifies reply addresses with."""
        secret = self.secret()
        engine = make_engine(self.env["TIDINGS_DATABASE_URL"])
        try:
            with session_scope(engine) as session:
                return store.load_reply_keys(session, secret)
        finally:
            engine.dispose()

    def outbox(self) -> list[EmailMessage]:
        """Everything the stack sent to its Maildir, in the order it was delivered."""
        return [
            email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[misc]
            for raw in self.outbox_bytes()
        ]

    def outbox_bytes(self) -> list[bytes]:
        """The same, as the bytes that were delivered (what a DKIM verifier checks)."""
        box = mailbox.Maildir(self.data_dir / "outbox", create=True)
        return [box.get_bytes(key) for key in sorted(box.keys(), key=delivery_order)]


def delivery_order(key: str) -> tuple[int, ...]:
    """Maildir names are SECONDS.M<microseconds>P<pid>Q<count>...: compared as text, M99
    would sort after M123 within one second, so the numbers are compared as numbers."""
    found = re.match(r"(\d+)\.M(\d+)P(\d+)Q(\d+)", key)
    return tuple(int(n) for n in found.groups()) if found else (0,)


def far_hour(tz: str) -> str:
    """A digest hour twelve hours from now, so the scheduler never fires during the test."""
    return str((datetime.now(ZoneInfo(tz)) + timedelta(hours=12)).hour)


def journal_settled(database_url: str) -> bool:
    """True when every message the listeners accepted has been processed."""
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            query = select(func.count()).where(InboundMessage.status == "pending")
            return session.exec(query).one() == 0
    finally:
        engine.dispose()


def make_stack(data_dir: Path, database_url: str, smtp_port: int, http_port: int) -> Stack:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")},
        "TIDINGS_DATA_DIR": str(data_dir),
        "TIDINGS_DATABASE_URL": database_url,
        "TIDINGS_SMTP_PORT": str(smtp_port),
        "TIDINGS_HTTP_PORT": str(http_port),
        "TIDINGS_MAIL_DOMAIN": DOMAIN,
        "TIDINGS_WORKER_POLL_SECONDS": "0.5",
    }
    return Stack(data_dir, env, smtp_port, http_port)


def mail(sender: str, to: str, subject: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="client.example")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


# What a user sees ----------------------------------------------------------------------


def threads(stack: Stack, team: str = "eng") -> list[dict]:
    response = stack.api(f"/teams/{team}/threads")
    response.raise_for_status()
    return response.json()


def thread_titled(stack: Stack, title: str, team: str = "eng") -> dict | None:
    return next((t for t in threads(stack, team) if t["title"] == title), None)


def updates_of(stack: Stack, thread_id: int) -> list[dict]:
    return stack.api(f"/threads/{thread_id}").json()["updates"]


def reply_address_of(msg: EmailMessage) -> str:
    return getaddresses([str(msg["Reply-To"])])[0][1]


def digests_for(stack: Stack, address: str) -> list[EmailMessage]:
    return [
        m
        for m in stack.outbox()
        if m["From"].addresses[0].username == "digest" and m["To"].addresses[0].addr_spec == address
    ]


def quarantine_reasons(stack: Stack) -> list[str]:
    return [e["reason"] for e in quarantined(stack)]


def quarantined(stack: Stack) -> list[dict]:
    return json.loads(stack.cli("quarantine", "list", "--json").stdout)

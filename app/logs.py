"""Logging for the services: JSON lines or readable text, a message's journal id on every
line about it, and nothing secret on any line.

`configure_logging(level, fmt)` installs one stderr handler on the root logger. With
`TIDINGS_LOG_FORMAT=json` each record is one JSON object: `time`, `level`, `logger`,
`message`, then any extra fields (`journal_id`, `exc` for a traceback, and whatever a
caller passed as `extra=`). Text is `TIME LEVEL LOGGER: MESSAGE key=value ...`.

While one inbound message is journaled or processed, `journal_context(entry_id)` puts its
journal id on every record logged in that context (in this thread or task), whichever
module logs it, so `jq 'select(.journal_id == 42)'` finds everything about message 42.

Every line is scrubbed before it is written (`redact`): the token part of an address
(`eng+r.TOKEN@...`, `unsubscribe+TOKEN@...`, the VERP return path), signed link tokens in
URLs (`?t=`, `/signin/TOKEN`), bearer tokens, and the bound parameters SQLAlchemy puts in
its error messages (they can hold a message's raw bytes or an update's text). No code
logs a message body; this keeps the lines clean even when a library or a relay's error
reply echoes one of these.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

_journal_id: ContextVar[int | None] = ContextVar("tidings_journal_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}

_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    # SQLAlchemy's "[parameters: (...)]" line in an error: bound values are content.
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: hidden]"),
    # The token in an address's local part: SLUG+r.TOKEN@, unsubscribe+TOKEN@, bounce+TOKEN@.
    (re.compile(r"(?<=\+)[^\s@<>\"'+]+(?=@)"), "[token]"),
    # Signed links: ?t=TOKEN (fix, unsubscribe, held, alias links), /signin/TOKEN.
    (re.compile(r"([?&](?:t|token|key)=)[^\s&#\"'<>]+"), r"\1[token]"),
    (re.compile(r"(/signin/)[A-Za-z0-9_\-.=]{8,}"), r"\1[token]"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.=~+/]+"), r"\1[token]"),
]

_NOISY = {
    # mail-parser warns about every MIME type it has no special handling for.
    "mailparser": logging.ERROR,
    # dkimpy logs a failed key lookup as an ERROR; the quarantine's verdict says what
    # it means for the message.
    "dkimpy": logging.CRITICAL,
    # Some of flufl.bounce's detectors log a traceback on an odd From header and carry on;
    # the bounce's classification is what matters, and it is recorded.
    "flufl.bounce": logging.CRITICAL,
}
# aiosmtpd logs every SMTP command (addresses with reply tokens), Alembic every step, and
# httpx every request's URL (a chat webhook's URL is its secret: see digest/webhooks.py).
_CHATTY = ("mail.log", "alembic", "httpx")

NOTES = "tidings.cli"
"""The logger of the CLI's progress notes when they are JSON lines too (always INFO)."""

_json_enabled = False


def redact(text: str) -> str:
    """`text` without tokens or SQL parameters (see the module docstring)."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


@contextlib.contextmanager
def journal_context(entry_id: int | None) -> Iterator[None]:
    """Every record logged inside the block carries `journal_id=entry_id`."""
    token = _journal_id.set(entry_id)
    try:
        yield
    finally:
        _journal_id.reset(token)


def current_journal_id() -> int | None:
    return _journal_id.get()


class JournalIdFilter(logging.Filter):
    """Adds the journal id of the message being handled, unless the call gave one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "journal_id", None) is None:
            entry_id = _journal_id.get()
            if entry_id is not None:
                record.journal_id = entry_id
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_") and value is not None
    }


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in _extras(record).items():
            if isinstance(value, str):
                value = redact(value)
            elif not isinstance(value, int | float | bool):
                value = redact(str(value))
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER: MESSAGE key=value ...`, with any traceback below."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        if extras:
            head, sep, rest = text.partition("\n")
            text = f"{head} {extras}{sep}{rest}"
        return redact(text)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Send every log record to stderr, as JSON lines (`fmt="json"`) or text, at `level`."""
    global _json_enabled
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(JournalIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, noisy_level in _NOISY.items():
        logging.getLogger(name).setLevel(noisy_level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # The CLI's notes ("Mail in: ...") are shown whatever the level, as before.
    logging.getLogger(NOTES).setLevel(logging.INFO)
    # Python's warnings become log records, so a JSON log stays all JSON.
    logging.captureWarnings(fmt == "json")
    _json_enabled = fmt == "json"


def json_enabled() -> bool:
    """Whether `configure_logging` chose JSON lines (then the CLI's notes are JSON too)."""
    return _json_enabled


def note(text: str) -> None:
    """A CLI progress note as a log record (used instead of plain stderr in JSON mode)."""
    logging.getLogger(NOTES).info(text)

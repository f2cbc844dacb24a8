"""app/logs.py: JSON or text lines, the journal id on every line about a message, and no
token or SQL parameter in any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from app.logs import JournalIdFilter, JsonFormatter, TextFormatter, journal_context


@pytest.fixture(params=["json", "text"])
def logged(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing through the real formatter and filter into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter() if request.param == "json" else TextFormatter())
    handler.addFilter(JournalIdFilter())
    logger = logging.getLogger(f"tests.logs.{request.param}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(handler)


def test_json_lines_carry_the_journal_id_only_inside_its_context() -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(JournalIdFilter())
    logger = logging.getLogger("tests.logs.context")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        with journal_context(42):
            logger.info("message %s processed", 42)
        logger.info("outside", extra={"count": 3})
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    inside, outside, failed = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert inside["message"] == "message 42 processed" and inside["journal_id"] == 42
    assert inside["level"] == "INFO" and inside["logger"] == "tests.logs.context"
    assert inside["time"].endswith("+00:00")
    assert "journal_id" not in outside and outside["count"] == 3
    assert failed["level"] == "ERROR" and "ValueError: bad" in failed["exc"]


def test_text_lines_name_the_journal_id(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = logged
    with journal_context(7):
        logger.warning("message 7 quarantined (auto-reply)")
    assert "message 7 quarantined (auto-reply)" in buffer.getvalue()
    assert "journal_id" in buffer.getvalue() and "7" in buffer.getvalue()


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("RCPT <eng+r.AbCdEf0123_-xyz@tidings.test> refused", "AbCdEf0123_-xyz"),
        ("550 5.1.0 <bounce+Zm9vYmFyYmF6@tidings.test>: sender rejected", "Zm9vYmFyYmF6"),
        ("mailto:unsubscribe+q1w2e3r4t5@tidings.test", "q1w2e3r4t5"),
        ("GET /updates/3/fix?t=c2VjcmV0LXRva2Vu&x=1", "c2VjcmV0LXRva2Vu"),
        ("GET /signin/s3cr3tS1gnInT0ken HTTP/1.1", "s3cr3tS1gnInT0ken"),
        ("Authorization: Bearer tdg_abcdef123456", "tdg_abcdef123456"),
    ],
)
def test_tokens_never_reach_a_line(
    logged: tuple[logging.Logger, io.StringIO], line: str, secret: str
) -> None:
    logger, buffer = logged
    logger.info(line)
    logger.info("relay said: %s", line)
    assert secret not in buffer.getvalue()
    assert "[token]" in buffer.getvalue()


def test_sql_parameters_never_reach_a_line(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """SQLAlchemy puts a failed statement's bound values in its error message: they can be
    a message's raw bytes or an update's text."""
    logger, buffer = logged
    body = " ".join(["Dear", "Bob"])  # not in the source line the traceback quotes
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            conn.execute(text("INSERT INTO nowhere (body) VALUES (:body)"), {"body": body})
    except SQLAlchemyError:
        logger.exception("storing failed")
    finally:
        engine.dispose()
    output = buffer.getvalue()
    assert "no such table: nowhere" in output  # the error itself is kept
    assert body not in output and "[parameters: hidden]" in output

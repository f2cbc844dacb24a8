"""Every message of the shared hostile corpus through the real listener: the server stays
up, and each message ends with a defined outcome — an SMTP refusal with its reason, or a
journal entry that processing finished (an update, or quarantine with a reason code).

In CI this must run; elsewhere it skips when ../shared is absent.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import secrets
import smtplib
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.utils import getaddresses

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.errors import TidingsError
from app.models import InboundMessage, Update
from app.settings import Settings
from smtp.handler import TidingsHandler
from smtp.ingest import process_pending
from smtp.mime_limits import MAX_DECODED_BYTES, MAX_DEPTH, MAX_HEADERS, MAX_LINE_CHARS, MAX_PARTS
from smtp.parse import header_message
from tests.conftest import IN_CI, SHARED, free_port
from tests.e2e.listener import ListenerController

CORPUS = SHARED / "corpus" / "hostile"
TEAM = "eng@tidings.test"
FINISHED = {"processed", "quarantined", "duplicate"}


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    if not (CORPUS / "manifest.jsonl").exists():
        if IN_CI:
            pytest.fail(f"{CORPUS} is missing; CI must run the hostile corpus")
        pytest.skip(f"{CORPUS} is absent")
    return [json.loads(line) for line in (CORPUS / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Settings, int]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("var"), mail_domain="tidings.test")
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with session_scope(engine) as session:
        store.create_team(session, "eng", "Engineering")
    port = free_port()
    controller = ListenerController(
        TidingsHandler(engine, settings), hostname="127.0.0.1", port=port
    )
    controller.start()
    yield engine, settings, port
    controller.stop()
    engine.dispose()


def sender_of(raw: bytes) -> str:
    addresses = getaddresses([str(header_message(raw).get("From", "") or "")])
    found = [addr for _, addr in addresses if "@" in addr and addr.isascii()]
    return found[0].lower() if found else ""


def test_every_hostile_message_gets_a_defined_outcome(
    corpus: list[dict], listener: tuple[Engine, Settings, int]
) -> None:
    engine, settings, port = listener
    refused: dict[str, tuple[int, bytes]] = {}
    accepted = 0
    with session_scope(engine) as session:  # make senders members, to exercise processing
        for sender in {sender_of((CORPUS / e["path"]).read_bytes()) for e in corpus} - {""}:
            with contextlib.suppress(TidingsError):  # addresses too broken to be members
                store.add_member(session, "eng", sender, "")
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for entry in corpus:
            # The corpus is stored with LF line ends; on the wire, SMTP is CRLF.
            raw = re.sub(rb"\r?\n", b"\r\n", (CORPUS / entry["path"]).read_bytes())
            try:
                client.sendmail("sender@example.com", [TEAM], raw)
                accepted += 1
            except smtplib.SMTPResponseException as exc:
                refused[entry["path"]] = (exc.smtp_code, exc.smtp_error)
                client.rset()
        assert client.noop()[0] == 250  # still up and answering
    while process_pending(engine, settings, grace=timedelta(0)):
        pass
    with session_scope(engine) as session:
        entries = list(session.exec(select(InboundMessage)))
    outcomes = collections.Counter((e.status, e.reason) for e in entries)
    print("\n".join(f"{n:5} {status} {reason or ''}" for (status, reason), n in outcomes.items()))
    print(f"{len(refused)} refused:", collections.Counter(refused.values()).most_common(8))
    assert len(entries) == accepted, "every message answered 250 is in the journal"
    assert accepted + len(refused) == len(corpus)
    assert {e.status for e in entries} <= FINISHED
    assert all(e.reason and e.detail for e in entries if e.status == "quarantined")
    assert all(code >= 500 and text for code, text in refused.values())
    assert not [e for e in entries if e.reason == "processing-error"], "a bug, not an outcome"


def test_mail_over_the_size_limit_is_refused_before_anything_is_stored(
    listener: tuple[Engine, Settings, int],
) -> None:
    engine, settings, _ = listener
    with session_scope(engine) as session:
        store.add_member(session, "eng", "big@example.com", "Big")
        before = len(session.exec(select(InboundMessage)).all())
    port = free_port()
    small = ListenerController(TidingsHandler(engine, settings), hostname="127.0.0.1", port=port)
    small.max_message_mb = 1
    small.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == str(1024 * 1024)  # advertised
            # A client that declares the size is refused at MAIL, before sending a byte.
            code, text = client.mail("big@example.com", options=[f"SIZE={2 * 1024 * 1024}"])
            assert code == 552 and text.startswith(b"5.3.4") and b"1 MB" in text
            client.rset()
            body = b"x" * 100 + b"\r\n"
            raw = b"From: big@example.com\r\nSubject: Big\r\n\r\n" + body * 12_000
            # One that does not (smtplib's sendmail would) is refused at the end of DATA.
            assert client.mail("big@example.com")[0] == 250
            assert client.rcpt(TEAM)[0] == 250
            code, text = client.data(raw)
            assert code == 552 and text.startswith(b"5.3.4 Message too big")
    finally:
        small.stop()
    with session_scope(engine) as session:
        assert len(session.exec(select(InboundMessage)).all()) == before  # nothing journaled


def test_one_client_address_cannot_hog_the_listener(
    listener: tuple[Engine, Settings, int],
) -> None:
    engine, settings, _ = listener
    strict = settings.model_copy(
        update={"smtp_max_sessions_per_ip": 2, "smtp_max_messages_per_minute": 2}
    )
    port = free_port()
    controller = ListenerController(TidingsHandler(engine, strict), hostname="127.0.0.1", port=port)
    controller.start()
    client_address = ("127.0.0.2", 0)  # not loopback's 127.0.0.1, which is exempt
    try:
        with (
            smtplib.SMTP("127.0.0.1", port, source_address=client_address) as first,
            smtplib.SMTP("127.0.0.1", port, source_address=client_address) as second,
        ):
            with pytest.raises(smtplib.SMTPConnectError) as third:
                smtplib.SMTP("127.0.0.1", port, source_address=client_address, timeout=10)
            assert third.value.smtp_code == 421 and b"4.7.0" in third.value.smtp_error
            # The MTA in front (loopback) is never limited.
            with smtplib.SMTP("127.0.0.1", port) as relay:
                assert relay.noop()[0] == 250
            first.ehlo()
            replies = []
            for _ in range(3):
                replies.append(first.mail("big@example.com"))
                first.rset()
            assert [code for code, _ in replies] == [250, 250, 421]
            assert b"4.7.0" in replies[2][1] and b"try again in a minute" in replies[2][1]
            second.quit()
        # Sessions that ended free their places.
        with smtplib.SMTP("127.0.0.1", port, source_address=client_address) as again:
            assert again.noop()[0] == 250
    finally:
        controller.stop()


# Limits on what one message may cost (smtp/mime_limits.py) ------------------------------

COSTLY_SENDER = "costly@example.com"


def _costly(entity: bytes) -> bytes:
    """A message from a member: our top-level fields, then `entity` (its own header lines,
    if any, a blank line and its body)."""
    return (
        f"From: {COSTLY_SENDER}\r\nTo: {TEAM}\r\nSubject: What it costs\r\n"
        f"Message-ID: <{secrets.token_hex(8)}@client.example>\r\nMIME-Version: 1.0\r\n"
    ).encode() + entity


def _multipart(boundary: bytes, parts: list[bytes]) -> bytes:
    inner = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    head = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
    return head + inner + b"--" + boundary + b"--\r\n"


def _text(text: bytes) -> bytes:
    return b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text


def too_many_parts() -> bytes:
    return _costly(_multipart(b"many", [_text(b"part %d" % i) for i in range(MAX_PARTS + 1)]))


def too_deeply_nested() -> bytes:
    entity = _text(b"at the bottom")
    for level in range(MAX_DEPTH + 1):  # the text part ends up MAX_DEPTH + 1 levels down
        entity = _multipart(b"level%d" % level, [entity])
    return _costly(entity)


def too_many_headers() -> bytes:
    filler = b"".join(b"X-Filler-%d: yes\r\n" % i for i in range(MAX_HEADERS))
    return _costly(filler + b"\r\nHello\r\n")


def long_folded_header() -> bytes:
    # Each physical line is short (SMTP takes up to 64 KB a line); unfolded it is one line.
    folded = b"\r\n ".join([b"word " * 200] * (MAX_LINE_CHARS // 1000 + 1))
    return _costly(b"X-Long: " + folded + b"\r\n\r\nHello\r\n")


def long_decoded_line() -> bytes:
    # Quoted-printable soft line breaks join 2,000 short lines into one of 150,000.
    soft = b"=\r\n".join([b"a" * 75] * 2000)
    head = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    return _costly(head + soft + b"\r\n")


def too_large_decoded() -> bytes:
    # Under the listener's size limit (raised for this test), over the decoded one.
    line = b"x" * 60_000 + b"\r\n"
    body = line * (MAX_DECODED_BYTES // len(line) + 1)
    return _costly(b"Content-Type: application/octet-stream\r\n\r\n" + body)


def _accepted(port: int, raw: bytes) -> int:
    """Send `raw` as a member, see 250, and return the id of its journal entry."""
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo()
        assert client.mail(COSTLY_SENDER)[0] == 250
        assert client.rcpt(TEAM)[0] == 250
        code, text = client.data(raw)
    assert code == 250, text
    return int(text.rsplit(b" ", 1)[1])


def _processed(engine: Engine, settings: Settings, entry_id: int) -> InboundMessage:
    while process_pending(engine, settings, grace=timedelta(0)):
        pass
    with session_scope(engine) as session:
        entry = session.get(InboundMessage, entry_id)
        assert entry is not None
        session.expunge(entry)
    return entry


@pytest.fixture(scope="module")
def costly_member(listener: tuple[Engine, Settings, int]) -> None:
    with session_scope(listener[0]) as session:
        store.add_member(session, "eng", COSTLY_SENDER, "Costly")


@pytest.mark.parametrize(
    "build, reason",
    [
        (too_many_parts, "too-many-parts"),
        (too_deeply_nested, "too-deeply-nested"),
        (too_many_headers, "too-many-headers"),
        (long_folded_header, "line-too-long"),
        (long_decoded_line, "line-too-long"),
    ],
)
def test_a_message_over_a_limit_is_taken_and_quarantined_with_its_reason(
    listener: tuple[Engine, Settings, int],
    costly_member: None,
    build: Callable[[], bytes],
    reason: str,
) -> None:
    engine, settings, port = listener
    raw = build()
    entry = _processed(engine, settings, _accepted(port, raw))
    assert (entry.status, entry.reason) == ("quarantined", reason)
    assert entry.detail
    assert entry.raw == raw  # kept whole in the journal: nothing is lost


def test_a_message_just_under_every_limit_is_posted(
    listener: tuple[Engine, Settings, int], costly_member: None
) -> None:
    engine, settings, port = listener
    long_line = b"=\r\n".join([b"b" * 75] * (MAX_LINE_CHARS // 75))  # QP: one decoded line
    entity = (
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Deep, wide and long, but within limits.\r\n" + long_line
    )
    for level in range(MAX_DEPTH - 1):
        entity = _multipart(b"level%d" % level, [entity])
    parts = [entity] + [_text(b"part %d" % i) for i in range(MAX_PARTS - MAX_DEPTH)]
    filler = b"".join(b"X-Filler-%d: yes\r\n" % i for i in range(MAX_HEADERS - 10))
    folded = b"X-Long: " + b"\r\n ".join([b"word " * 200] * (MAX_LINE_CHARS // 1000 - 1))
    raw = _costly(filler + folded + b"\r\n" + _multipart(b"top", parts))
    entry = _processed(engine, settings, _accepted(port, raw))
    assert (entry.status, entry.reason) == ("processed", None), entry.detail
    with session_scope(engine) as session:
        update = session.exec(select(Update).where(Update.inbound_id == entry.id)).one()
        # All of it is read: the text at the deepest level and the last part.
        assert update.body.startswith("Deep, wide and long, but within limits.\n")
        assert update.body.endswith(f"part {MAX_PARTS - MAX_DEPTH - 1}")


def test_a_message_too_large_once_decoded_is_quarantined(
    listener: tuple[Engine, Settings, int], costly_member: None
) -> None:
    engine, settings, _ = listener
    port = free_port()
    big = ListenerController(TidingsHandler(engine, settings), hostname="127.0.0.1", port=port)
    big.max_message_mb = MAX_DECODED_BYTES // (1024 * 1024) + 10
    big.start()
    try:
        raw = too_large_decoded()
        entry_id = _accepted(port, raw)
    finally:
        big.stop()
    entry = _processed(engine, settings, entry_id)
    assert (entry.status, entry.reason) == ("quarantined", "too-large-decoded")
    assert entry.detail and len(entry.raw) == len(raw)

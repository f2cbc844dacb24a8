"""Kill -9 while mail is arriving: every message that got 250 is stored exactly once.

Senders behave like real MTAs: a message that did not get 250 (refused connection,
dropped session) is retried until it does. The server is killed with SIGKILL at random
moments and restarted. Afterwards each message is in the archive exactly once, and
nothing is left half-processed in the journal.
"""

from __future__ import annotations

import collections
import random
import signal
import smtplib
import threading
import time
from collections.abc import Iterator

import pytest
from sqlmodel import select

from app.db import make_engine, session_scope
from app.models import InboundMessage, Update
from tests.conftest import free_port
from tests.e2e.stack import DOMAIN, Stack, journal_settled, mail, make_stack, wait_for

SESSIONS = 20
PER_SESSION = 100  # 20 sessions x 100: the 2,000 messages
KILLS = 3
ALICE = "alice@example.com"
TEAM = f"eng@{DOMAIN}"


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("crash")
    stack = make_stack(data_dir, f"sqlite:///{data_dir / 'tidings.db'}", free_port(), free_port())
    stack.start()
    stack.cli("team", "create", "eng")
    stack.cli("member", "add", "eng", ALICE, "--name", "Alice", "--digest", "off")
    yield stack
    stack.stop()


def sender(stack: Stack, worker: int, acked: set[str], lock: threading.Lock, stop: float) -> None:
    for n in range(PER_SESSION):
        msg = mail(ALICE, TEAM, f"Crash test {worker}-{n}", f"Message {worker}-{n}.")
        del msg["Message-ID"]
        msg["Message-ID"] = f"<crash-{worker}-{n}@client.example>"
        while time.monotonic() < stop:
            try:
                with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=10) as client:
                    client.sendmail(ALICE, [TEAM], msg.as_bytes())
                with lock:
                    acked.add(str(msg["Message-ID"]))
                break
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the server is down or went down mid-session: retry


def test_sigkill_during_ingest_loses_and_doubles_nothing(stack: Stack) -> None:
    acked: set[str] = set()
    lock = threading.Lock()
    stop = time.monotonic() + 240
    threads = [
        threading.Thread(target=sender, args=(stack, w, acked, lock, stop), daemon=True)
        for w in range(SESSIONS)
    ]
    for thread in threads:
        thread.start()
    rng = random.Random(20261124)
    total = SESSIONS * PER_SESSION
    accepted_at_kill = []
    for k in range(1, KILLS + 1):
        # Kill at points in the stream (about a quarter, half, three quarters), not at
        # clock times: on a loaded machine a clock schedule can miss the stream entirely.
        threshold = total * k // (KILLS + 1) + rng.randint(-10, 10)
        wait_for(lambda t=threshold: len(acked) >= t, 120, f"{threshold} messages accepted")
        assert stack.process is not None
        accepted_at_kill.append(len(acked))
        stack.process.send_signal(signal.SIGKILL)
        stack.process.wait()
        stack.start()
    for thread in threads:
        thread.join(timeout=max(1.0, stop - time.monotonic()))
    assert len(acked) == total, "every message is eventually accepted"
    # The kills must have landed while mail was flowing, or this test proves nothing.
    assert accepted_at_kill[0] > 0 and accepted_at_kill[-1] < total

    url = stack.env["TIDINGS_DATABASE_URL"]
    wait_for(lambda: journal_settled(url), 60, "the journal to be processed after the last restart")
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            stored = [u.message_id for u in session.exec(select(Update))]
            journal = list(session.exec(select(InboundMessage)))
    finally:
        engine.dispose()
    statuses = collections.Counter(e.status for e in journal)
    print(f"\naccepted at each kill: {accepted_at_kill}; journal: {dict(statuses)}")
    assert sorted(stored) == sorted(acked), "each accepted message stored exactly once"
    assert set(statuses) <= {"processed", "duplicate"}

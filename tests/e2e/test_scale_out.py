"""Several processes on one PostgreSQL: no mail lost or doubled, no digest sent twice.

Two `tidings serve` processes (each a listener, web server and worker) share one
database; mail goes to both listeners, and two `tidings digest run --now` race each
other and the two workers. Afterwards every message is stored exactly once and every
member has exactly one digest.
"""

from __future__ import annotations

import collections
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.models import OutboundMessage, Update
from tests.conftest import free_port
from tests.e2e.stack import BIN, DOMAIN, Stack, journal_settled, mail, make_stack, wait_for

MEMBERS = 40
MESSAGES = 2_000  # issue #8: 2,000 messages through both processes
TEAM = f"eng@{DOMAIN}"


def member(n: int) -> str:
    return f"m{n}@example.com"


@pytest.fixture
def two_stacks(postgres_url: str, tmp_path: Path) -> Iterator[list[Stack]]:
    database_url = postgres_url
    upgrade(database_url)
    engine = make_engine(database_url)
    far_hour = (datetime.now(ZoneInfo("UTC")) + timedelta(hours=12)).hour
    with session_scope(engine) as session:
        store.create_team(session, "eng", "Engineering")
        for n in range(MEMBERS):
            store.add_member(session, "eng", member(n), f"Member {n}", "UTC", "daily", far_hour)
    engine.dispose()
    stacks = [make_stack(tmp_path, database_url, free_port(), free_port()) for _ in range(2)]
    for stack in stacks:
        stack.log = tmp_path / f"serve-{stack.smtp_port}.log"
        stack.start()
    yield stacks
    for stack in stacks:
        stack.stop()


def test_two_full_processes_store_once_and_digest_once(two_stacks: list[Stack]) -> None:
    first = two_stacks[0]

    def send(n: int) -> None:
        sender = member(n % MEMBERS)
        msg = mail(sender, TEAM, f"Scale {n}", f"Update number {n}.")
        del msg["Message-ID"]
        msg["Message-ID"] = f"<scale-{n}@client.example>"
        two_stacks[n % 2].send(msg, sender, TEAM)
        if n % 10 == 0:  # the sender's server retries through the other MX
            two_stacks[(n + 1) % 2].send(msg, sender, TEAM)

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(send, range(MESSAGES)))
    engine = make_engine(first.env["TIDINGS_DATABASE_URL"])
    try:
        url = first.env["TIDINGS_DATABASE_URL"]
        wait_for(lambda: journal_settled(url), 300, "both listeners to process mail")
        runs = [
            subprocess.Popen(
                [str(BIN / "tidings"), "digest", "run", "--now"],
                env=s.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for s in two_stacks
        ]
        reports = [run.communicate(timeout=120)[1].decode() for run in runs]
        assert [run.returncode for run in runs] == [0, 0], reports
        print("\n".join(line for r in reports for line in r.splitlines() if "Digests:" in line))

        def drained() -> bool:
            with session_scope(engine) as session:
                query = select(func.count()).where(OutboundMessage.status != "sent")
                return session.exec(query).one() == 0

        wait_for(drained, 60, "the outbox to be sent")
        with session_scope(engine) as session:
            bodies = collections.Counter(u.body for u in session.exec(select(Update)))
    finally:
        engine.dispose()
    assert len(bodies) == MESSAGES and set(bodies.values()) == {1}
    digests = collections.Counter(
        m["To"].addresses[0].addr_spec
        for m in first.outbox()
        if m["From"].addresses[0].username == "digest"
    )
    assert digests == {member(n): 1 for n in range(MEMBERS)}

"""The journal's group commit through the real listener: many sessions at once each get
their own answer, and a message the journal cannot store is never answered 250.

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from email.message import EmailMessage

import aiosmtplib
import pytest
from sqlalchemy import Engine, text
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.models import InboundMessage
from app.settings import Settings
from smtp.handler import TidingsHandler
from tests.conftest import free_port
from tests.e2e.listener import ListenerController

TEAM = "eng@tidings.test"
MEMBERS = [f"m{n}@example.com" for n in range(30)]


@pytest.fixture(scope="module")
def listener(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, int]]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("var"),
        database_url=database_url,
        mail_domain="tidings.test",
    )
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with session_scope(engine) as session:
        store.create_team(session, "eng", "Engineering")
        for address in MEMBERS:
            store.add_member(session, "eng", address, "")
    port = free_port()
    controller = ListenerController(
        TidingsHandler(engine, settings), hostname="127.0.0.1", port=port
    )
    controller.start()
    yield engine, port
    controller.stop()
    engine.dispose()


def message(sender: str, n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, TEAM, f"Update {n}"
    msg["Message-ID"] = f"<batch-{n}@example.com>"
    msg.set_content(f"Progress number {n}.")
    return msg


async def send(port: int, sender: str, n: int) -> tuple[int, str]:
    """One session, one message; the code and text of the answer to its DATA."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30) as client:
        try:
            _refused, answer = await client.send_message(
                message(sender, n), sender=sender, recipients=[TEAM]
            )
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
    return 250, answer


def journaled_ids(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        rows = session.exec(select(InboundMessage.message_id, InboundMessage.id)).all()
    return {message_id: entry_id for message_id, entry_id in rows if message_id}


async def test_sessions_at_once_each_get_their_own_answer(listener: tuple[Engine, int]) -> None:
    engine, port = listener
    senders = [*MEMBERS, "stranger@example.com"]
    answers = await asyncio.gather(*(send(port, s, n) for n, s in enumerate(senders)))

    # The stranger's refusal, decided in the same batch, touches no one else's message.
    assert answers[-1][0] == 550 and "not a member of eng" in answers[-1][1]
    accepted = answers[:-1]
    assert all(code == 250 for code, _ in accepted), accepted
    ids = [int(re.search(r"accepted as (\d+)", answer).group(1)) for _, answer in accepted]  # type: ignore[union-attr]
    # Each 250 names the journal entry holding that very message.
    journal = journaled_ids(engine)
    assert {
        f"<batch-{n}@example.com>": journal.get(f"<batch-{n}@example.com>") for n in range(30)
    } == {f"<batch-{n}@example.com>": ids[n] for n in range(30)}
    assert "<batch-30@example.com>" not in journal


async def test_a_message_the_journal_cannot_store_is_told_to_try_later(
    listener: tuple[Engine, int],
) -> None:
    engine, port = listener
    with engine.begin() as conn:  # the journal table is gone: every insert fails
        conn.execute(text("ALTER TABLE inboundmessage RENAME TO inboundmessage_away"))
    try:
        code, answer = await send(port, MEMBERS[0], 101)
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE inboundmessage_away RENAME TO inboundmessage"))
    assert code == 451 and "try again later" in answer  # a temporary failure: the sender retries
    assert "<batch-101@example.com>" not in journaled_ids(engine)
    assert (await send(port, MEMBERS[0], 101))[0] == 250  # and the retry is taken
    assert "<batch-101@example.com>" in journaled_ids(engine)


async def test_automatic_mail_from_a_stranger_is_kept_not_bounced(
    listener: tuple[Engine, int],
) -> None:
    """Refusing an auto-reply or a bounce would only make its server bounce it back."""
    engine, port = listener
    auto_reply = message("stranger@example.com", 301)
    auto_reply["Auto-Submitted"] = "auto-replied"
    bounce = message("mailer-daemon@example.com", 302)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30) as client:
        await client.send_message(auto_reply, sender="stranger@example.com", recipients=[TEAM])
        await client.sendmail("", [TEAM], bytes(bounce))  # MAIL FROM:<>, as bounces come
    journal = journaled_ids(engine)
    assert "<batch-301@example.com>" in journal and "<batch-302@example.com>" in journal


async def test_a_team_archived_since_its_last_message_refuses_the_next(
    listener: tuple[Engine, int],
) -> None:
    engine, port = listener
    assert (await send(port, MEMBERS[0], 201))[0] == 250  # the listener has seen eng open
    with session_scope(engine) as session:
        store.archive_team(session, "eng")
    code, answer = await send(port, MEMBERS[0], 202)
    assert code == 550 and "was archived" in answer
    journal = journaled_ids(engine)
    assert "<batch-201@example.com>" in journal and "<batch-202@example.com>" not in journal

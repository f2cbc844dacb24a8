"""A real SMTP server (aiosmtpd) that records what it receives: the far end in tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import free_port


class Sink:
    """An aiosmtpd handler that keeps what it receives, or refuses recipients it is told to."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.received: list[Envelope] = []
        self.refuse = refuse or set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 OK"


@contextmanager
def running_sink(refuse: set[str] | None = None) -> Iterator[tuple[Sink, int]]:
    handler, port = Sink(refuse), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()

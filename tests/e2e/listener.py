"""The real listener in the test's own process, on a loopback port (aiosmtpd's Controller)."""

from __future__ import annotations

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from smtp.handler import make_smtp_server


class ListenerController(Controller):
    """aiosmtpd's test controller, serving our SMTP server class with our limits."""

    max_message_mb = 25

    def factory(self) -> SMTP:
        return make_smtp_server(self.handler, "tidings.test", self.max_message_mb)

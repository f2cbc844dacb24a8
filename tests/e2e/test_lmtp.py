"""LMTP (RFC 2033) for an MTA in front that delivers over LMTP: `tidings smtp --lmtp` (or
TIDINGS_SMTP_LMTP=true) answers LHLO, not EHLO, and after DATA gives one reply per
accepted recipient, which is what an LMTP client reads."""

from __future__ import annotations

import smtplib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.stack import BIN, DOMAIN, Stack, mail, make_stack, thread_titled, wait_for

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def lmtp_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("var")
    stack = make_stack(var, f"sqlite:///{var / 'tidings.db'}", free_port(), free_port())
    stack.env["TIDINGS_SMTP_LMTP"] = "true"
    stack.start()
    try:
        for slug in ("eng", "ops"):
            stack.cli("team", "create", slug, "--name", slug.title(), "--public")
            stack.cli("member", "add", slug, ALICE, "--name", "Alice")
        stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
        yield stack
    finally:
        stack.stop()


def converse(port: int, lines: list[bytes], replies: int) -> list[str]:
    """Send `lines`, then read until `replies` final replies (not continuation lines)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        stream = sock.makefile("rb")
        stream.readline()  # the greeting
        sock.sendall(b"".join(lines))
        got: list[str] = []
        while len(got) < replies:
            line = stream.readline().decode().rstrip()
            assert line, f"connection closed after {got}"
            if line[3:4] == " ":
                got.append(line)
        return got


def test_one_reply_per_recipient_after_data(lmtp_stack: Stack) -> None:
    msg = mail(ALICE, f"eng@{DOMAIN}", "Both teams", "For eng and ops.").as_bytes()
    replies = converse(
        lmtp_stack.smtp_port,
        [
            b"LHLO mta.example\r\n",
            f"MAIL FROM:<{ALICE}>\r\n".encode(),
            f"RCPT TO:<eng@{DOMAIN}>\r\n".encode(),
            f"RCPT TO:<ops@{DOMAIN}>\r\n".encode(),
            b"DATA\r\n",
            msg.replace(b"\n", b"\r\n") + b"\r\n.\r\n",
            b"QUIT\r\n",
        ],
        replies=8,
    )
    lhlo, mail_from, rcpt1, rcpt2, go, first, second, bye = replies
    assert lhlo.startswith("250 ") and mail_from.startswith("250")
    assert rcpt1.startswith("250") and rcpt2.startswith("250") and go.startswith("354")
    assert first.startswith("250") and second.startswith("250") and bye.startswith("221")
    for team in ("eng", "ops"):
        assert wait_for(lambda team=team: thread_titled(lmtp_stack, "Both teams", team))


def test_ehlo_is_not_lmtp(lmtp_stack: Stack) -> None:
    [reply] = converse(lmtp_stack.smtp_port, [b"EHLO mta.example\r\n"], replies=1)
    assert reply.startswith("500")
    with smtplib.LMTP("127.0.0.1", lmtp_stack.smtp_port) as client:  # Python's LMTP client
        assert client.ehlo("mta.example")[0] == 250  # smtplib.LMTP sends LHLO


def test_the_smtp_command_takes_lmtp(lmtp_stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    env = lmtp_stack.env | {"TIDINGS_SMTP_PORT": str(port), "TIDINGS_SMTP_LMTP": "false"}
    process = subprocess.Popen(
        [str(BIN / "tidings"), "smtp", "--lmtp"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def answers() -> list[str] | None:
            try:
                return converse(port, [b"LHLO mta.example\r\n"], replies=1)
            except OSError:
                return None

        [reply] = wait_for(answers, what="tidings smtp --lmtp")
        assert reply.startswith("250 ")
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert f"lmtp://127.0.0.1:{port}" in output

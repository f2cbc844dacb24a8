"""STARTTLS on the listener when a certificate is configured: offered (not required, as
RFC 3207 asks of a public MX), working with a real TLS client, and a half-configured
certificate stops the start with the reason."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.stack import DOMAIN, Stack, mail, make_stack, thread_titled, wait_for

ALICE = "alice@example.com"
TEAM = f"eng@{DOMAIN}"


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={DOMAIN}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    var = tmp_path_factory.mktemp("var")
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    stack = make_stack(var, f"sqlite:///{var / 'tidings.db'}", free_port(), free_port())
    stack.env |= {"TIDINGS_TLS_CERT_FILE": str(cert), "TIDINGS_TLS_KEY_FILE": str(key)}
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering", "--public")
        stack.cli("member", "add", "eng", ALICE, "--name", "Alice")
        stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
        yield stack, cert
    finally:
        stack.stop()


def test_mail_arrives_over_starttls_with_our_certificate(tls_stack: tuple[Stack, Path]) -> None:
    stack, cert = tls_stack
    assert "STARTTLS offered" in stack.log.read_text()
    trust = ssl.create_default_context(cafile=str(cert))  # only our certificate verifies
    trust.check_hostname = False  # it names tidings.test; we connect to 127.0.0.1
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        smtp.ehlo("client.example")
        assert smtp.has_extn("starttls")
        code, _ = smtp.starttls(context=trust)
        assert code == 220
        smtp.ehlo("client.example")
        assert not smtp.has_extn("starttls")  # once is enough
        assert smtp.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[union-attr]
        smtp.sendmail(ALICE, [TEAM], mail(ALICE, TEAM, "Over TLS", "Encrypted.").as_bytes())
    assert wait_for(lambda: thread_titled(stack, "Over TLS"), what="the post")


def test_servers_without_tls_can_still_deliver(tls_stack: tuple[Stack, Path]) -> None:
    stack, _ = tls_stack
    stack.send(mail(ALICE, TEAM, "In the clear", "Plain."), ALICE, TEAM)
    assert wait_for(lambda: thread_titled(stack, "In the clear"), what="the post")


def test_a_certificate_without_its_key_stops_the_start(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    stack = make_stack(tmp_path, f"sqlite:///{tmp_path / 't.db'}", free_port(), free_port())
    stack.env["TIDINGS_TLS_CERT_FILE"] = str(cert)
    with pytest.raises(AssertionError, match="needs both TIDINGS_TLS_CERT_FILE"):
        stack.start()
    stack.stop()

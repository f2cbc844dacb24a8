"""Outgoing mail is DKIM-signed when a key is configured, and a receiver that looks the key
up in DNS finds the signature good; a key that cannot be used stops the start."""

from __future__ import annotations

import subprocess
from pathlib import Path

from smtp.authcheck import dns_txt_lookup, verify_dkim
from tests.conftest import free_port
from tests.dkimkeys import generate_keypair
from tests.dnsserver import serve_dns
from tests.e2e.stack import (
    BIN,
    DOMAIN,
    digests_for,
    journal_settled,
    mail,
    make_stack,
    wait_for,
)

ALICE, BOB = "alice@example.com", "bob@example.org"


def test_digests_carry_a_signature_receivers_can_verify(tmp_path: Path) -> None:
    private, record = generate_keypair(tmp_path)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(private)
    (tmp_path / "var").mkdir()
    stack = make_stack(tmp_path / "var", f"sqlite:///{tmp_path / 't.db'}", free_port(), free_port())
    stack.env |= {"TIDINGS_DKIM_SELECTOR": "tidings", "TIDINGS_DKIM_KEY_FILE": str(key_file)}
    stack.start()
    try:
        assert "DKIM-signed as tidings._domainkey.tidings.test" in stack.log.read_text()
        stack.cli("team", "create", "eng", "--name", "Engineering")
        for who in (ALICE, BOB):
            stack.cli("member", "add", "eng", who, "--hour", "3")
        stack.send(
            mail(ALICE, f"eng@{DOMAIN}", "Signed digest", "Check my signature."),
            ALICE,
            f"eng@{DOMAIN}",
        )
        wait_for(lambda: journal_settled(stack.env["TIDINGS_DATABASE_URL"]), what="the post")
        stack.cli("digest", "run", "--now")
        [digest] = digests_for(stack, BOB)
        [raw] = [m for m in stack.outbox_bytes() if f"<{BOB}>".encode() in m.split(b"\n\n")[0]]
    finally:
        stack.stop()
    assert digest["Subject"] == "1 new update: Signed digest"
    assert raw.startswith(b"DKIM-Signature:")
    with serve_dns({f"tidings._domainkey.{DOMAIN}": record}) as dns:
        lookup = dns_txt_lookup(dns.address)
        assert not verify_dkim(raw, DOMAIN, lookup).failed
        assert "verified" in verify_dkim(raw, DOMAIN, lookup).detail
        altered = raw.replace(b"Check my signature.", b"Check my signaturE.")
        assert verify_dkim(altered, DOMAIN, lookup).failed


def test_a_key_that_cannot_sign_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("-----BEGIN RSA PRIVATE KEY-----\nnonsense\n-----END RSA PRIVATE KEY-----\n")
    env = make_stack(tmp_path, f"sqlite:///{tmp_path / 't.db'}", free_port(), free_port()).env
    for extra, expected in [
        ({"TIDINGS_DKIM_SELECTOR": "tidings", "TIDINGS_DKIM_KEY_FILE": str(bad)}, "cannot sign"),
        ({"TIDINGS_DKIM_SELECTOR": "tidings"}, "needs both"),
        (
            {"TIDINGS_DKIM_SELECTOR": "s", "TIDINGS_DKIM_KEY_FILE": str(tmp_path / "none")},
            "Cannot read the DKIM key",
        ),
    ]:
        result = subprocess.run(
            [str(BIN / "tidings"), "serve"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1 and expected in result.stderr, result.stderr

"""Tidings as the first hop (no MTA in front): it checks DKIM itself, against a real DNS
server that publishes the sender domain's key.

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.dkimkeys import dkim_sign, generate_keypair
from tests.dnsserver import serve_dns
from tests.e2e.stack import (
    DOMAIN,
    Stack,
    mail,
    make_stack,
    quarantined,
    thread_titled,
    updates_of,
    wait_for,
)

ALICE = "alice@example.com"
TEAM = f"eng@{DOMAIN}"


@pytest.fixture(scope="module")
def first_hop(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, bytes]]:
    """A stack with no MTA in front: it checks DKIM itself, against a real DNS server that
    publishes example.com's key. Yields the stack and the private key."""
    private, record = generate_keypair(tmp_path_factory.mktemp("dkim"))
    with serve_dns({"sel._domainkey.example.com": record}) as dns:
        stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
        stack.env["TIDINGS_DNS_RESOLVER"] = dns.address
        stack.start()
        try:
            stack.cli("team", "create", "eng", "--name", "Engineering")
            stack.cli("member", "add", "eng", ALICE, "--name", "Alice")
            stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
            yield stack, private
        finally:
            stack.stop()


def test_first_hop_checks_dkim_itself(first_hop: tuple[Stack, bytes]) -> None:
    stack, private = first_hop
    genuine = dkim_sign(
        mail(ALICE, TEAM, "Signed", "Signed by example.com.").as_bytes(), private, "example.com"
    )
    stack.send(genuine, ALICE, TEAM)
    thread = wait_for(lambda: thread_titled(stack, "Signed"), what="the signed post")
    assert updates_of(stack, thread["id"])[0]["body"] == "Signed by example.com."

    signed = dkim_sign(
        mail(ALICE, TEAM, "Altered", "Pay invoice 1.").as_bytes(), private, "example.com"
    )
    altered = signed.replace(b"Pay invoice 1.", b"Pay invoice 9.")
    stack.send(altered, ALICE, TEAM)
    entry = wait_for(
        lambda: next(
            (e for e in quarantined(stack) if e["reason"] == "failed-sender-authentication"), None
        ),
        what="the quarantine",
    )
    assert "example.com" in entry["detail"] and "dkim=fail" in entry["detail"]
    assert thread_titled(stack, "Altered") is None

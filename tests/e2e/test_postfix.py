"""Behind a real mail server: Debian's Postfix in front of a running Tidings, configured
with the settings docs/deploy.md gives ("Behind Postfix"; see tests/e2e/postfix.py).

Mail from the internet reaches Tidings through Postfix, over SMTP or LMTP, and becomes
updates. Digests leave through the same Postfix to the member's server (a capture sink)
still DKIM-signed, and their VERP return path brings Postfix's own bounce back to Tidings,
recorded against the member it was about. Skipped where Postfix is not installed
(.ci/run installs it); in CI it must run.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.smtp import Envelope

from smtp.authcheck import dns_txt_lookup, verify_dkim
from tests.conftest import free_port
from tests.dkimkeys import generate_keypair
from tests.dnsserver import serve_dns
from tests.e2e.postfix import MTA_HOSTNAME, require_postfix, running_postfix
from tests.e2e.sink import Sink, running_sink
from tests.e2e.stack import (
    DOMAIN,
    Stack,
    far_hour,
    mail,
    make_stack,
    reply_address_of,
    thread_titled,
    updates_of,
)

ALICE, BOB, CAROL = "alice@example.com", "bob@example.org", "carol@example.net"
TEAM = f"eng@{DOMAIN}"


@pytest.fixture(autouse=True)
def postfix_installed() -> None:
    require_postfix()  # before starting Tidings for a test that cannot run


@contextmanager
def running_tidings(
    data_dir: Path, env: dict[str, str], teams: tuple[str, ...], members: tuple[str, ...]
) -> Iterator[Stack]:
    """`tidings serve` with `env`, and `members` in each of `teams`."""
    stack = make_stack(data_dir, f"sqlite:///{data_dir / 'tidings.db'}", free_port(), free_port())
    stack.env |= env
    stack.start()
    try:
        for slug in teams:
            stack.cli("team", "create", slug, "--name", slug.title())
            for who in members:
                stack.cli("member", "add", slug, who, "--hour", far_hour("UTC"))
        stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
        yield stack
    finally:
        stack.stop()


def parsed(envelope: Envelope) -> EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type, return-value]


def digest_to(sink: Sink, address: str) -> Envelope | None:
    """The digest that reached `address` at its server: sent from a VERP return path."""
    found = [
        e for e in sink.received if e.rcpt_tos == [address] and e.mail_from.startswith("bounce+")
    ]
    return found[-1] if found else None


def bounce_to(sink: Sink, address: str) -> Envelope | None:
    """A bounce that reached `address`: sent from the null return path (aiosmtpd keeps
    it as "<>")."""
    return next((e for e in sink.received if e.rcpt_tos == [address] and e.mail_from == "<>"), None)


def bounces(stack: Stack, address: str) -> list[dict]:
    return json.loads(stack.cli("member", "bounces", address, "--json").stdout)


def flat(raw: bytes) -> str:
    """A message's text with its lines and folded headers joined, as one line of words."""
    return " ".join(raw.decode(errors="replace").split())


def test_mail_in_and_out_through_postfix(tmp_path: Path) -> None:
    private, record = generate_keypair(tmp_path)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(private)
    postfix_port = free_port()
    signing = {
        "TIDINGS_OUTBOUND_URL": f"smtp://127.0.0.1:{postfix_port}",  # as docs/deploy.md says
        "TIDINGS_DKIM_SELECTOR": "tidings",
        "TIDINGS_DKIM_KEY_FILE": str(key_file),
    }
    (tmp_path / "var").mkdir()
    with (
        running_sink(refuse={CAROL}) as (sink, sink_port),
        running_tidings(tmp_path / "var", signing, ("eng",), (ALICE, BOB, CAROL)) as stack,
        running_postfix(postfix_port, "smtp", stack.smtp_port, sink_port) as postfix,
    ):
        # A new post from the internet arrives through Postfix.
        post = mail(ALICE, TEAM, "Kiln fired", "The first firing went well.")
        postfix.send(post, ALICE, TEAM)
        thread = postfix.wait_for(lambda: thread_titled(stack, "Kiln fired"), "Alice's post")

        # The digest leaves through Postfix, signed, with Bob's VERP return path.
        stack.cli("digest", "run", "--now")
        envelope = postfix.wait_for(lambda: digest_to(sink, BOB), "Bob's digest")
        digest = parsed(envelope)
        assert digest["Subject"] == "1 new update: Kiln fired"
        assert f"by {MTA_HOSTNAME} (Postfix)" in str(digest["Received"])
        assert envelope.mail_from.endswith(f"@{DOMAIN}")
        with serve_dns({f"tidings._domainkey.{DOMAIN}": record}) as dns:
            verdict = verify_dkim(envelope.content, DOMAIN, dns_txt_lookup(dns.address))  # type: ignore[arg-type]
        assert not verdict.failed and "verified" in verdict.detail, verdict.detail

        # Carol's server refuses her digest; Postfix's bounce goes back to the return path
        # and through Postfix again to Tidings, which records it against Carol.
        [bounce] = postfix.wait_for(lambda: bounces(stack, CAROL), "Postfix's bounce about Carol")
        assert (bounce["hard"], bounce["status"]) == (True, "5.1.1")
        assert "mailbox unavailable" in bounce["diagnostic"]
        assert bounces(stack, BOB) == []

        # Bob answers the digest from his mail client; the answer comes in through Postfix.
        address = reply_address_of(digest)
        postfix.send(mail(BOB, address, f"Re: {digest['Subject']}", "Which glaze?"), BOB, address)
        answer = postfix.wait_for(
            lambda: [u for u in updates_of(stack, thread["id"]) if u["body"] == "Which glaze?"],
            "Bob's answer",
        )
        assert answer[0]["author"]["email"] == BOB


def test_lmtp_through_postfix_answers_each_team_and_bounces_the_rest(tmp_path: Path) -> None:
    postfix_port = free_port()
    (tmp_path / "var").mkdir()
    lmtp = {"TIDINGS_SMTP_LMTP": "true"}
    with (
        running_sink() as (sink, sink_port),
        running_tidings(tmp_path / "var", lmtp, ("eng", "ops"), (ALICE,)) as stack,
        running_postfix(postfix_port, "lmtp", stack.smtp_port, sink_port) as postfix,
    ):
        both = [TEAM, f"ops@{DOMAIN}"]
        postfix.send(mail(ALICE, ", ".join(both), "Both teams", "For eng and ops."), ALICE, both)
        for team in ("eng", "ops"):
            postfix.wait_for(
                lambda team=team: thread_titled(stack, "Both teams", team), f"the post in {team}"
            )

        # Postfix takes any address of the domain; one Tidings refuses over LMTP goes back
        # to its sender as Postfix's bounce, with Tidings' reason in it.
        nobody = f"nobody@{DOMAIN}"
        postfix.send(mail(ALICE, nobody, "Anyone?", "Is this a team?"), ALICE, nobody)
        returned = postfix.wait_for(lambda: bounce_to(sink, ALICE), "the bounce to Alice")
        assert f"<{nobody}>: no such team" in flat(returned.content)  # type: ignore[arg-type]

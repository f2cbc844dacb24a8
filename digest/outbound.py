"""How mail leaves: the transport from `TIDINGS_OUTBOUND_URL`, DKIM signatures when a key
is configured (`TIDINGS_DKIM_SELECTOR`, `TIDINGS_DKIM_KEY_FILE`), and a VERP return path.

Receivers use the signature to tell our digests from forgeries, and DMARC needs it to
align with the From domain; docs/deploy.md lists the DNS records. The return path
`bounce+TOKEN@domain` names the member a message was for, so a bounce says whose
address failed even when it quotes nothing useful.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dkim

from app import store
from app.errors import TidingsError
from app.models import OutboundMessage, utcnow
from app.settings import Settings
from app.tokens import BOUNCE_PURPOSE, sign_address_link
from digest.send import Connection, ReturnPath, Transport, envelope_sender, transport_from_url

RETURN_PATH_LIFETIME = timedelta(days=90)  # bounces come within days; late ones within weeks

# What a reader would notice if it were changed in transit. List headers matter: a forged
# List-Unsubscribe would send unsubscribes elsewhere.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"in-reply-to",
    b"references",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


@dataclass(frozen=True)
class DkimSigner:
    selector: str
    domain: str
    private_key: bytes

    def sign(self, raw: bytes) -> bytes:
        """`raw` with a DKIM-Signature header in front (relaxed/relaxed, rsa-sha256)."""
        header = dkim.sign(
            raw,
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
        )
        return header + raw


def signer_from_settings(settings: Settings) -> DkimSigner | None:
    """The configured signer; None when DKIM signing is off. A key that cannot be read
    or used is an error at startup, not a silently unsigned digest later."""
    if not settings.dkim_selector and not settings.dkim_key_file:
        return None
    if not (settings.dkim_selector and settings.dkim_key_file):
        raise TidingsError(
            "DKIM signing needs both TIDINGS_DKIM_SELECTOR and TIDINGS_DKIM_KEY_FILE.",
            "Set both, or neither to send unsigned mail.",
        )
    path = Path(settings.dkim_key_file).expanduser()
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise TidingsError(
            f"Cannot read the DKIM key {path}: {exc.strerror}.",
            "Point TIDINGS_DKIM_KEY_FILE at a PEM RSA private key readable by Tidings.",
        ) from exc
    signer = DkimSigner(settings.dkim_selector, settings.mail_domain, key)
    try:
        signer.sign(b"From: check@" + settings.mail_domain.encode() + b"\r\n\r\nkey check\r\n")
    except dkim.DKIMException as exc:
        raise TidingsError(
            f"The DKIM key {path} cannot sign: {exc}.",
            "Use an RSA key in PEM (PKCS#1): openssl genrsa -traditional -out dkim.pem 2048",
        ) from exc
    return signer


class SigningTransport:
    """A transport whose every message is DKIM-signed just before it leaves: signing at
    send time means a rotated key applies to mail already waiting in the outbox."""

    def __init__(self, inner: Transport, signer: DkimSigner) -> None:
        self.inner, self.signer = inner, signer
        self.description = (
            f"{inner.description}, DKIM-signed as {signer.selector}._domainkey.{signer.domain}"
        )

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[_SigningConnection]:
        async with self.inner.connect() as connection:
            yield _SigningConnection(connection, self.signer)


class _SigningConnection:
    def __init__(self, inner: Connection, signer: DkimSigner) -> None:
        self.inner, self.signer = inner, signer

    async def send(self, raw: bytes, sender: str, recipient: str) -> None:
        signed = await asyncio.to_thread(self.signer.sign, raw)  # RSA: keep the loop free
        await self.inner.send(signed, sender, recipient)


def outbound_transport(settings: Settings) -> Transport:
    """How mail leaves, from the settings: TIDINGS_OUTBOUND_URL, signed when DKIM is set."""
    transport = transport_from_url(settings.outbound_url)
    signer = signer_from_settings(settings)
    return SigningTransport(transport, signer) if signer else transport


def verp_return_path(settings: Settings) -> ReturnPath:
    """`bounce+TOKEN@domain` for mail to a member (the token names them and is signed, so
    a forged bounce cannot blame someone else); mail to anyone else keeps its From."""
    secret = settings.ensure_secret_key()

    def return_path(row: OutboundMessage) -> str:
        if row.person_id is None:
            return envelope_sender(row.raw)
        token = sign_address_link(
            BOUNCE_PURPOSE, row.person_id, utcnow() + RETURN_PATH_LIFETIME, secret
        )
        return f"{store.BOUNCE_LOCAL_PART}+{token}@{settings.mail_domain}"

    return return_path

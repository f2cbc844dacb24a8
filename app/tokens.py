"""The one token signer: reply tokens that name a person and a thread, and signed links.

A reply address looks like `eng+r.<token>@mail.example.com`. The token is
base32 of (key version, person id, thread id, truncated HMAC-SHA256), written
in lower case, so it survives servers that change the case of local parts and
fits comfortably in the 64-character limit of a local part.

Reply tokens live for as long as people keep old mail, so their key can be rotated:
`ReplyKeys` holds every unretired key version; the newest signs, all of them verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

_PAYLOAD = struct.Struct(">BII")  # key version, person id, thread id
_MAC_BYTES = 10  # 80 bits: forging needs ~2^80 tries, far beyond what SMTP allows
REPLY_PREFIX = "r."
MAX_KEY_VERSION = 255  # the version is one byte of the token


class InvalidToken(ValueError):
    """The token is malformed, tampered with, or signed by a key we do not hold."""


class RetiredKey(InvalidToken):
    """The token is genuine but its key version has been retired (`tidings secret retire`)."""


@dataclass(frozen=True)
class ReplyToken:
    person_id: int
    thread_id: int
    key_version: int


@dataclass(frozen=True)
class ReplyKeys:
    """The reply-token keys in service: `current` signs, every version in `keys` verifies.

    Retired keys are kept only to tell a genuine old token ("retired") from an altered one.
    """

    current: int
    keys: Mapping[int, bytes]
    retired: Mapping[int, bytes] = field(default_factory=dict)


@lru_cache(maxsize=64)  # a digest pass signs two links per reader with the same keys
def _key(secret: str, label: str) -> bytes:
    """A key per use, derived from the one secret, so a token for one use is useless for
    any other."""
    return hmac.new(secret.encode(), f"tidings {label}".encode(), hashlib.sha256).digest()


def _derive(secret: str, version: int, salt: str) -> bytes:
    return _key(secret, f"reply token v{version}" + (f" {salt}" if salt else ""))


def reply_keys(
    secret: str, versions: Iterable[tuple[int, str]], retired: Iterable[tuple[int, str]] = ()
) -> ReplyKeys:
    """The keys for the unretired (version, salt) pairs; the highest version signs.

    Each key is derived from the secret and its version's salt: the salt lives in the
    database, the secret outside it, and neither alone can sign. Version 1 has no salt,
    so tokens issued before rotation existed keep verifying until it is retired.
    """
    keys = {version: _derive(secret, version, salt) for version, salt in versions}
    if not keys:
        raise ValueError("every reply-token key version is retired")
    return ReplyKeys(max(keys), keys, {v: _derive(secret, v, salt) for v, salt in retired})


def _mac(payload: bytes, key: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


# Base32 digits in lower case, by pairs: a token is written ten bits at a time.
_B32_PAIRS = [
    a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567"
]


def _b32(blob: bytes) -> str:
    """`blob` in lower-case base32 without padding: what `base64.b32encode` gives, cased
    and stripped, in a third of the time (a digest pass writes ten tokens per reader)."""
    bits = len(blob) * 8
    pad = -bits % 10
    number = int.from_bytes(blob, "big") << pad
    pairs = [_B32_PAIRS[(number >> shift) & 1023] for shift in range(bits + pad - 10, -1, -10)]
    return "".join(pairs)[: -(-bits // 5)]


def _encode(payload: bytes, key: bytes) -> str:
    return _b32(payload + _mac(payload, key))


def sign_reply_token(token: ReplyToken, keys: ReplyKeys) -> str:
    return _reply_token(token.key_version, token.person_id, token.thread_id, keys)


def _reply_token(version: int, person_id: int, thread_id: int, keys: ReplyKeys) -> str:
    return _encode(_PAYLOAD.pack(version, person_id, thread_id), keys.keys[version])


def verify_reply_token(text: str, keys: ReplyKeys) -> ReplyToken:
    """The token's contents, or `InvalidToken`. Comparison is constant-time."""
    raw = text.strip().upper()
    try:
        blob = base64.b32decode(raw + "=" * (-len(raw) % 8))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("not a reply token") from exc
    if len(blob) != _PAYLOAD.size + _MAC_BYTES:
        raise InvalidToken("reply token has the wrong length")
    payload, mac = blob[: _PAYLOAD.size], blob[_PAYLOAD.size :]
    version, person_id, thread_id = _PAYLOAD.unpack(payload)
    key = keys.keys.get(version) or keys.retired.get(version)
    if key is None or not hmac.compare_digest(mac, _mac(payload, key)):
        raise InvalidToken("reply token signature does not match")
    claim = ReplyToken(person_id, thread_id, version)
    # Re-encoding must give back the same text: base32 has spare bits that would
    # otherwise let several spellings of one token verify.
    if _encode(payload, key) != text.strip().lower():
        raise InvalidToken("reply token is not in canonical form")
    if version not in keys.keys:
        raise RetiredKey(f"reply token signed with key version {version}, which is retired")
    return claim


@dataclass(frozen=True)
class Recipient:
    """What an address at our mail domain means: a team, and maybe a reply token."""

    team_slug: str
    token: str | None = None


def reply_address(slug: str, token: str, domain: str) -> str:
    return f"{slug}+{REPLY_PREFIX}{token}@{domain}"


def reply_address_for(
    person_id: int, thread_id: int, slug: str, domain: str, keys: ReplyKeys
) -> str:
    """The address at which `person` answers in `thread`: what Reply-To and mailto use."""
    return reply_addresses_for(person_id, {thread_id: slug}, domain, keys)[thread_id]


def reply_addresses_for(
    person_id: int, threads: Mapping[int, str], domain: str, keys: ReplyKeys
) -> dict[int, str]:
    """`reply_address_for` each of `threads` (thread id -> team slug): a digest gives its
    reader one for each thread it shows."""
    version = keys.current
    return {
        thread: reply_address(slug, _reply_token(version, person_id, thread, keys), domain)
        for thread, slug in threads.items()
    }


def parse_recipient(address: str, domain: str) -> Recipient | None:
    """Split `slug[+r.token]@domain`; None when the address is not at our domain."""
    local, _, addr_domain = address.strip().strip("<>").rpartition("@")
    if not local or addr_domain.lower() != domain.lower():
        return None
    local = local.lower()
    slug, plus, tag = local.partition("+")
    if not plus:
        return Recipient(slug)
    if tag.startswith(REPLY_PREFIX):
        return Recipient(slug, tag[len(REPLY_PREFIX) :])
    return Recipient(slug, tag)  # an unknown tag: the caller refuses it as a bad token


# Signed links ----------------------------------------------------------------------------

_LINK = struct.Struct(">QQ")  # subject id, expiry (Unix seconds)
FIX_LINK_PURPOSE = "fix-update"  # lets an update's author correct what was posted
UNSUBSCRIBE_PURPOSE = "unsubscribe"  # turns one person's digest off
CONFIRM_ALIAS_PURPOSE = "confirm-alias"  # proves the alias's owner reads mail sent to it
BOUNCE_PURPOSE = "bounce"  # a VERP return path: bounces say which member they are about
FEED_PURPOSE = "feed"  # a member's Atom feed URLs: feed readers cannot sign in


def approve_held_purpose(person_id: int) -> str:
    """Approving a held message is bound to the member its reply address named: the link
    sent to them does nothing in anyone else's hands."""
    return f"approve-held {person_id}"


def sign_link(purpose: str, subject_id: int, expires: datetime, secret: str) -> str:
    """A URL-safe token granting `purpose` on one object until `expires`."""
    payload = _LINK.pack(subject_id, int(expires.timestamp()))
    mac = hmac.new(_key(secret, f"link {purpose}"), payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def verify_link(token: str, purpose: str, now: datetime, secret: str) -> int:
    """The subject id a valid, unexpired link token for `purpose` names; else InvalidToken."""
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("not a link token") from exc
    if len(blob) != _LINK.size + 16:
        raise InvalidToken("link token has the wrong length")
    payload, mac = blob[: _LINK.size], blob[_LINK.size :]
    expected = hmac.new(_key(secret, f"link {purpose}"), payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise InvalidToken("link token signature does not match")
    # Base64's spare bits would otherwise let several spellings of one token verify.
    if base64.urlsafe_b64encode(blob).decode().rstrip("=") != token:
        raise InvalidToken("link token is not in canonical form")
    subject_id, expires = _LINK.unpack(payload)
    if now.timestamp() > expires:
        raise InvalidToken("this link has expired")
    return int(subject_id)


def _address_token(purpose: str, payload: bytes, secret: str) -> str:
    mac = hmac.new(_key(secret, f"address {purpose}"), payload, hashlib.sha256).digest()
    return _b32(payload + mac[:_MAC_BYTES])


def sign_address_link(purpose: str, subject_id: int, expires: datetime, secret: str) -> str:
    """Like `sign_link`, for the local part of an address (`unsubscribe+TOKEN@domain`):
    lower-case base32, because mail servers may change the case of local parts."""
    return _address_token(purpose, _LINK.pack(subject_id, int(expires.timestamp())), secret)


def verify_address_link(token: str, purpose: str, now: datetime, secret: str) -> int:
    """The subject id of a valid, unexpired `sign_address_link` token, in any case."""
    raw = token.strip().upper()
    try:
        blob = base64.b32decode(raw + "=" * (-len(raw) % 8))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("not an address token") from exc
    if len(blob) != _LINK.size + _MAC_BYTES:
        raise InvalidToken("address token has the wrong length")
    payload = blob[: _LINK.size]
    # Comparing whole re-encodings also refuses other spellings of base32's spare bits.
    if not hmac.compare_digest(_address_token(purpose, payload, secret), token.strip().lower()):
        raise InvalidToken("address token signature does not match")
    subject_id, expires = _LINK.unpack(payload)
    if now.timestamp() > expires:
        raise InvalidToken("this address has expired")
    return int(subject_id)

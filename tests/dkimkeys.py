"""Real DKIM keys and signatures for tests: keys from the openssl command line (there is
no `cryptography` package here), signatures from dkimpy, published by tests/dnsserver.py."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import dkim

SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


def _openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], capture_output=True, check=True).stdout


def generate_keypair(directory: Path) -> tuple[bytes, str]:
    """(PEM private key, DNS TXT record). `-traditional`: dkimpy reads PKCS#1 PEM only, and
    OpenSSL 3 writes PKCS#8 by default."""
    path = directory / "key.pem"
    _openssl("genrsa", "-traditional", "-out", str(path), "1024")
    der = _openssl("rsa", "-in", str(path), "-pubout", "-outform", "DER")
    return path.read_bytes(), f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def dkim_sign(
    message: bytes, private: bytes, domain: str = "example.org", selector: str = "sel"
) -> bytes:
    """`message` with a DKIM-Signature header prepended."""
    header = dkim.sign(
        message, selector.encode(), domain.encode(), private, include_headers=SIGNED_HEADERS
    )
    return header + message

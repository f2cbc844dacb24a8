"""Tests for smtp.authcheck: real DKIM signatures checked against a real DNS server,
Authentication-Results trust rules, and the hostile corpus.

Keys are generated with the openssl command line (no `cryptography` package here) and served
from tests/dnsserver.py over UDP, so every DKIM test goes through dnspython, dkimpy and the
wire exactly as production does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import dkim
import pytest

from smtp.authcheck import (
    MAX_DKIM_SIGNATURES,
    AuthVerdict,
    DnsTemporaryError,
    dns_txt_lookup,
    results_from_trusted_mta,
    sender_authentication,
    verify_dkim,
)
from smtp.parse import header_message, sender_address
from tests.conftest import IN_CI, SHARED
from tests.dkimkeys import dkim_sign, generate_keypair
from tests.dnsserver import DnsServer, serve_dns, unused_udp_port

CORPUS = SHARED / "corpus" / "hostile"
KEY_NAME = "sel._domainkey.example.org"
TRUSTED = {"mx.example.com"}

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: team@tidings.test\r\n"
    b"Subject: Weekly check-in\r\n"
    b"Date: Mon, 01 Jan 2024 09:00:00 +0000\r\n"
    b"Message-ID: <checkin-1@example.org>\r\n"
    b"\r\n"
    b"Shipped the importer; next up is the digest.\r\n"
)


# --- keys, signing and DNS --------------------------------------------------------------------


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    return generate_keypair(tmp_path_factory.mktemp("dkim"))


@pytest.fixture
def dns_with_key(keypair: tuple[bytes, str]) -> Iterator[DnsServer]:
    with serve_dns({KEY_NAME: keypair[1]}) as server:
        yield server


def check(raw: bytes, server: DnsServer, from_domain: str = "example.org") -> AuthVerdict:
    return verify_dkim(raw, from_domain, dns_txt_lookup(server.address, timeout=2))


def raises_temporary(name: bytes, timeout: float = 5) -> bytes | None:
    raise DnsTemporaryError("no DNS in this test")


# --- DKIM, verified ourselves -----------------------------------------------------------------


def test_correctly_signed_message_passes(
    keypair: tuple[bytes, str], dns_with_key: DnsServer
) -> None:
    verdict = check(dkim_sign(MESSAGE, keypair[0]), dns_with_key)
    assert not verdict.failed
    assert verdict.method == "dkim"
    assert verdict.detail == "DKIM signature by example.org verified (dkim=pass)."
    # The key really came over the wire from the test server.
    assert (KEY_NAME + ".", "TXT") in dns_with_key.queries


def test_altered_body_fails(keypair: tuple[bytes, str], dns_with_key: DnsServer) -> None:
    raw = dkim_sign(MESSAGE, keypair[0]).replace(b"next up is", b"then I quit")
    verdict = check(raw, dns_with_key)
    assert verdict.failed
    assert "body hash mismatch" in verdict.detail
    assert verdict.detail.startswith("DKIM signature by example.org failed")


def test_altered_signed_header_fails(keypair: tuple[bytes, str], dns_with_key: DnsServer) -> None:
    raw = dkim_sign(MESSAGE, keypair[0]).replace(b"Weekly check-in", b"Wire the money")
    verdict = check(raw, dns_with_key)
    assert verdict.failed
    assert "does not match the message" in verdict.detail


def test_key_record_absent_fails(keypair: tuple[bytes, str]) -> None:
    with serve_dns({}) as server:
        verdict = check(dkim_sign(MESSAGE, keypair[0]), server)
    assert verdict.failed
    assert "no key is published at sel._domainkey.example.org" in verdict.detail


def test_revoked_key_fails(keypair: tuple[bytes, str]) -> None:
    with serve_dns({KEY_NAME: "v=DKIM1; k=rsa; p="}) as server:
        verdict = check(dkim_sign(MESSAGE, keypair[0]), server)
    assert verdict.failed
    assert "revoked" in verdict.detail


def test_unreachable_dns_server_is_temporary_not_a_failure(keypair: tuple[bytes, str]) -> None:
    lookup = dns_txt_lookup(f"127.0.0.1:{unused_udp_port()}", timeout=0.5)
    verdict = verify_dkim(dkim_sign(MESSAGE, keypair[0]), "example.org", lookup)
    assert not verdict.failed
    assert "temporary" in verdict.detail
    assert "dkim=temperror" in verdict.detail


def test_servfail_is_temporary_not_a_failure(keypair: tuple[bytes, str]) -> None:
    with serve_dns({}, servfail=[KEY_NAME]) as server:
        verdict = check(dkim_sign(MESSAGE, keypair[0]), server)
    assert not verdict.failed
    assert "temporary" in verdict.detail


def test_resolver_answering_nxdomain_for_everything_is_not_believed(
    keypair: tuple[bytes, str],
) -> None:
    # Sandboxed resolvers (this machine's included) say NXDOMAIN even for the root zone;
    # taking that as "no key published" would quarantine every signed message.
    with serve_dns({}, broken=True) as server:
        verdict = check(dkim_sign(MESSAGE, keypair[0]), server)
    assert not verdict.failed
    assert "temporary" in verdict.detail
    assert (".", "SOA") in server.queries  # the sanity probe was made, and failed


def test_dkimpy_style_timeout_from_an_injected_lookup_is_not_a_failure(
    keypair: tuple[bytes, str],
) -> None:
    # dkimpy's own DnsTimeoutError is swallowed by dkim.DKIM.verify() into a plain False,
    # which must not be mistaken for a bad signature.
    def dkimpy_style(name: bytes, timeout: float = 5) -> bytes | None:
        raise dkim.DnsTimeoutError("timed out")

    verdict = verify_dkim(dkim_sign(MESSAGE, keypair[0]), "example.org", dkimpy_style)
    assert not verdict.failed
    assert "temporary" in verdict.detail


def test_signature_for_another_domain_never_fails_the_message(keypair: tuple[bytes, str]) -> None:
    # A mailing list re-signs with its own domain; its key is not even published here.
    with serve_dns({}) as server:
        raw = dkim_sign(MESSAGE, keypair[0], domain="lists.example.net")
        verdict = check(raw, server)
        assert server.queries == []  # an unaligned signature costs no lookup
    assert not verdict.failed
    assert verdict.detail.startswith("No DKIM signature for example.org")
    assert "only for lists.example.net" in verdict.detail
    assert "SPF and DMARC need a receiving MTA" in verdict.detail


def test_unsigned_message_is_not_a_failure(dns_with_key: DnsServer) -> None:
    verdict = check(MESSAGE, dns_with_key)
    assert not verdict.failed
    assert verdict.detail == (
        "No DKIM signature for example.org; SPF and DMARC need a receiving MTA in front of Tidings."
    )


@pytest.mark.parametrize(
    ("signed_by", "from_domain", "aligned"),
    [
        ("example.org", "mail.example.org", True),
        ("mail.example.org", "example.org", True),
        ("example.org", "EXAMPLE.ORG", True),
        ("example.org", "example.org.evil.test", False),
        ("org", "example.org", False),  # a bare TLD never aligns
    ],
)
def test_relaxed_alignment(
    keypair: tuple[bytes, str], signed_by: str, from_domain: str, aligned: bool
) -> None:
    with serve_dns({}) as server:  # key absent: an aligned signature fails, others don't count
        raw = dkim_sign(MESSAGE, keypair[0], domain=signed_by)
        verdict = check(raw, server, from_domain=from_domain)
    assert verdict.failed is aligned


def test_one_good_signature_outweighs_a_stale_one(
    keypair: tuple[bytes, str], dns_with_key: DnsServer
) -> None:
    # Key rotation: the old selector's key is gone, the new one verifies.
    raw = dkim_sign(dkim_sign(MESSAGE, keypair[0], selector="old"), keypair[0])
    assert raw.count(b"DKIM-Signature") == 2
    verdict = check(raw, dns_with_key)
    assert not verdict.failed
    assert "verified" in verdict.detail


@pytest.mark.parametrize(
    "signature",
    [
        b"v=1; d=example.org; s=sel; b=!!!; bh=???",  # bad base64
        b"v=1; d=example.org; d=example.org; s=sel",  # duplicated tag
        b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; i=example.org",
    ],
)
def test_malformed_aligned_signature_is_unchecked_not_failed(
    dns_with_key: DnsServer, signature: bytes
) -> None:
    verdict = check(b"DKIM-Signature: " + signature + b"\r\n" + MESSAGE, dns_with_key)
    assert not verdict.failed
    assert verdict.detail.startswith("DKIM signature by example.org could not be checked")
    assert "dkim=permerror" in verdict.detail


def test_signature_not_covering_from_is_ignored(
    keypair: tuple[bytes, str], dns_with_key: DnsServer
) -> None:
    header = dkim.dkim_sign(MESSAGE, b"sel", b"example.org", keypair[0], include_headers=[b"from"])
    raw = header.replace(b"h=from", b"h=subject") + MESSAGE
    verdict = check(raw, dns_with_key)
    assert not verdict.failed
    assert "does not cover the From header" in verdict.detail


def test_hundreds_of_signatures_cost_at_most_the_cap(keypair: tuple[bytes, str]) -> None:
    signature = dkim.dkim_sign(MESSAGE, b"sel", b"example.org", keypair[0])
    raw = b"".join(signature.replace(b"s=sel", f"s=s{i}".encode()) for i in range(300)) + MESSAGE
    asked: list[bytes] = []

    def counting(name: bytes, timeout: float = 5) -> bytes | None:
        asked.append(name)
        return None

    verdict = verify_dkim(raw, "example.org", counting)
    assert len(asked) == MAX_DKIM_SIGNATURES
    assert verdict.failed  # every examined key is absent


# --- dns_txt_lookup ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [600, 3000])  # several 255-byte strings; beyond UDP's size
def test_lookup_reads_long_records_and_reports_absence(size: int) -> None:
    long_record = "v=DKIM1; k=rsa; p=" + "A" * size
    with serve_dns({KEY_NAME: long_record}) as server:
        lookup = dns_txt_lookup(server.address, timeout=2)
        assert lookup(KEY_NAME.encode() + b".") == long_record.encode()
        assert lookup(b"other._domainkey.example.org.") is None
        assert lookup(b"example.org.") is None  # exists (empty non-terminal), no TXT


@pytest.mark.parametrize("address", ["dns.example.com", "127.0.0.1:99999", "127.0.0.1:x", "[::1"])
def test_lookup_rejects_bad_resolver_addresses(address: str) -> None:
    with pytest.raises(ValueError, match="DNS resolver"):
        dns_txt_lookup(address)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353"])
def test_lookup_accepts_ip_addresses_with_optional_port(address: str) -> None:
    assert callable(dns_txt_lookup(address))


# --- Authentication-Results from the MTA in front ---------------------------------------------


def headers(*auth_results: str, from_: str = "Alice <alice@example.org>") -> Message:
    lines = [f"Authentication-Results: {value}" for value in auth_results]
    raw = "\r\n".join([*lines, f"From: {from_}", "Subject: hi", "", "body", ""])
    return header_message(raw.encode())


def test_untrusted_host_cannot_fail_a_message() -> None:
    msg = headers("evil.example; dmarc=fail header.from=example.org")
    assert results_from_trusted_mta(msg, "example.org", TRUSTED) is None
    verdict = sender_authentication(MESSAGE, msg, "alice@example.org", TRUSTED, False)
    assert not verdict.failed
    assert verdict.method == "none"


def test_trusted_dmarc_fail_fails() -> None:
    msg = headers("mx.example.com; dmarc=fail (p=reject) header.from=example.org")
    verdict = results_from_trusted_mta(msg, "example.org", TRUSTED)
    assert verdict is not None and verdict.failed
    assert verdict.method == "authentication-results"
    assert verdict.detail == "mx.example.com reported dmarc=fail for example.org."


def test_dmarc_fail_about_another_domain_does_not_count() -> None:
    msg = headers("mx.example.com; dmarc=fail header.from=other.example")
    verdict = results_from_trusted_mta(msg, "example.org", TRUSTED)
    assert verdict is not None and not verdict.failed


def test_trusted_aligned_dkim_pass_is_not_a_failure() -> None:
    msg = headers("mx.example.com; dkim=pass header.d=example.org header.s=sel")
    verdict = results_from_trusted_mta(msg, "example.org", TRUSTED)
    assert verdict is not None and not verdict.failed
    assert verdict.detail == "mx.example.com reported dkim=pass for example.org."


def test_trusted_aligned_dkim_fail_fails_unless_something_aligned_passed() -> None:
    fail = "mx.example.com; dkim=fail header.d=example.org"
    verdict = results_from_trusted_mta(headers(fail), "example.org", TRUSTED)
    assert verdict is not None and verdict.failed
    assert "dkim=fail for example.org" in verdict.detail

    # As DMARC does: an aligned SPF pass authenticates the domain despite a broken signature.
    both = headers(fail + "; spf=pass smtp.mailfrom=bounce@example.org")
    verdict = results_from_trusted_mta(both, "example.org", TRUSTED)
    assert verdict is not None and not verdict.failed


def test_trusted_aligned_spf_fail_fails_and_unaligned_does_not() -> None:
    aligned = headers("mx.example.com; spf=fail smtp.mailfrom=alice@mail.example.org")
    verdict = results_from_trusted_mta(aligned, "example.org", TRUSTED)
    assert verdict is not None and verdict.failed
    assert "envelope sender domain mail.example.org" in verdict.detail

    esp = headers("mx.example.com; spf=fail smtp.mailfrom=bounces@esp.example.net")
    verdict = results_from_trusted_mta(esp, "example.org", TRUSTED)
    assert verdict is not None and not verdict.failed


def test_temporary_error_next_to_a_failure_is_not_a_failure() -> None:
    msg = headers(
        "mx.example.com; dkim=temperror header.d=example.org; spf=fail smtp.mailfrom=example.org"
    )
    verdict = results_from_trusted_mta(msg, "example.org", TRUSTED)
    assert verdict is not None and not verdict.failed
    assert "temporary error" in verdict.detail


@pytest.mark.parametrize("result", ["softfail", "neutral", "none", "temperror", "permerror"])
def test_inconclusive_results_are_not_failures_and_say_so(result: str) -> None:
    msg = headers(f"mx.example.com; spf={result} smtp.mailfrom=example.org")
    verdict = results_from_trusted_mta(msg, "example.org", TRUSTED)
    assert verdict is not None and not verdict.failed
    assert verdict.detail == (
        f"mx.example.com reported spf={result} for example.org, none of which is a failure."
    )


def test_trusted_header_without_results_says_nothing_was_checked() -> None:
    verdict = results_from_trusted_mta(headers("mx.example.com; none"), "example.org", TRUSTED)
    assert verdict == AuthVerdict(
        False,
        "authentication-results",
        "mx.example.com reported no DMARC, DKIM or SPF result for example.org.",
    )


@pytest.mark.parametrize(
    ("configured", "in_header"),
    [({"MX.Example.COM"}, "mx.example.com"), (TRUSTED, "MX.EXAMPLE.COM")],
)
def test_authserv_id_is_case_insensitive(configured: set[str], in_header: str) -> None:
    msg = headers(f"{in_header}; dmarc=fail header.from=example.org")
    verdict = results_from_trusted_mta(msg, "example.org", configured)
    assert verdict is not None and verdict.failed


@pytest.mark.parametrize(
    "garbage",
    [
        "mx.example.com; ;;; = dkim",
        "mx.example.com",
        "mx.example.com; spf=fail smtp.mailfrom=<alice@example.org>",  # authres rejects <>
        "mx.example.com; dkim=fail " + "(" * 5000,  # authres recurses per nested comment
        "mx.example.com; dkim=fail header.d=" + "a" * 20_000,
    ],
)
def test_unreadable_trusted_header_is_ignored(garbage: str) -> None:
    assert results_from_trusted_mta(headers(garbage), "example.org", TRUSTED) is None


def test_forged_header_below_the_trusted_one_is_ignored() -> None:
    # The sender wrote the lower header; only the top one came from our MTA.
    msg = headers(
        "mx.example.com; spf=fail smtp.mailfrom=example.org",
        "evil.example; dkim=pass header.d=example.org; dmarc=pass header.from=example.org",
    )
    verdict = results_from_trusted_mta(msg, "example.org", TRUSTED)
    assert verdict is not None and verdict.failed

    msg = headers("mx.example.com; dmarc=pass header.from=example.org", "evil.example; dmarc=fail")
    verdict = results_from_trusted_mta(msg, "example.org", TRUSTED)
    assert verdict is not None and not verdict.failed


def test_folded_trusted_header_is_read() -> None:
    msg = headers("mx.example.com;\r\n\tdmarc=fail\r\n\theader.from=example.org")
    verdict = results_from_trusted_mta(msg, "example.org", TRUSTED)
    assert verdict is not None and verdict.failed


# --- the entry point --------------------------------------------------------------------------


def test_trusted_mta_is_believed_over_our_own_dkim_check(keypair: tuple[bytes, str]) -> None:
    # The MTA saw the message before a (local) footer broke the signature.
    raw = dkim_sign(MESSAGE, keypair[0]).replace(b"digest.", b"digest. --Sent from my phone")
    msg = header_message(b"Authentication-Results: mx.example.com; dmarc=pass\r\n" + raw)
    with serve_dns({}) as server:
        lookup = dns_txt_lookup(server.address, timeout=2)
        trusted = sender_authentication(raw, msg, "alice@example.org", TRUSTED, True, lookup)
        first_hop = sender_authentication(raw, msg, "alice@example.org", (), True, lookup)
    assert (trusted.failed, trusted.method) == (False, "authentication-results")
    assert (first_hop.failed, first_hop.method) == (True, "dkim")


def test_dkim_checking_can_be_turned_off(keypair: tuple[bytes, str]) -> None:
    raw = dkim_sign(MESSAGE, keypair[0]).replace(b"Shipped", b"Deleted")
    verdict = sender_authentication(raw, header_message(raw), "alice@example.org", (), False)
    assert (verdict.failed, verdict.method) == (False, "none")


def test_message_without_a_from_domain_is_not_failed(keypair: tuple[bytes, str]) -> None:
    raw = dkim_sign(MESSAGE, keypair[0])
    verdict = sender_authentication(raw, header_message(raw), "", (), True, raises_temporary)
    assert not verdict.failed


def test_discourse_dmarc_fail_fixture() -> None:
    path = CORPUS / "discourse" / "dmarc_fail.eml"
    if not path.exists():
        _corpus_missing()
    raw = path.read_bytes()
    msg = header_message(raw)
    sender = sender_address(msg)
    assert sender_authentication(raw, msg, sender, {"example.com"}, False).failed
    assert not sender_authentication(raw, msg, sender, {"mx.tidings.test"}, False).failed


# --- hostile corpus ---------------------------------------------------------------------------


def _corpus_missing() -> None:
    if IN_CI:
        pytest.fail(f"{CORPUS} is missing; CI must run the hostile corpus")
    pytest.skip(f"hostile corpus not found at {CORPUS}")


@pytest.fixture(scope="module")
def hostile() -> list[Path]:
    if not CORPUS.is_dir():
        _corpus_missing()
    return sorted(CORPUS.rglob("*.eml"))


_SIGNING_DOMAIN = re.compile(rb"\bd=([A-Za-z0-9.-]+)")
_AUTHSERV = re.compile(r"^\s*([^\s;()]+)")


def _signing_domains(raw: bytes) -> set[str]:
    found: set[str] = set()
    for line in re.findall(rb"(?im)^DKIM-Signature:.*(?:\r?\n[ \t].*)*", raw):
        found.update(d.decode().lower() for d in _SIGNING_DOMAIN.findall(line))
    return found


def test_hostile_corpus_never_raises_and_never_fails_on_temporary_dns(
    hostile: list[Path],
) -> None:
    assert len(hostile) > 1000
    wrongly_failed: list[str] = []
    for path in hostile:
        raw = path.read_bytes()
        msg = header_message(raw)
        sender = sender_address(msg)
        verdict = sender_authentication(raw, msg, sender, (), True, raises_temporary)
        # Also check against each signing domain the message carries, so the signatures
        # are treated as aligned and walked all the way to the (failing) key lookup.
        for domain in {sender.rpartition("@")[2], *_signing_domains(raw)}:
            if verify_dkim(raw, domain, raises_temporary).failed:
                wrongly_failed.append(f"{path.relative_to(CORPUS)} ({domain})")
        if verdict.failed:
            wrongly_failed.append(str(path.relative_to(CORPUS)))
    assert wrongly_failed == []


def test_hostile_corpus_never_raises_when_keys_and_headers_are_trusted(
    hostile: list[Path], keypair: tuple[bytes, str]
) -> None:
    # A key for every name pushes hostile signatures through dkimpy's hashing and crypto;
    # trusting every authserv-id pushes every Authentication-Results header through authres.
    def any_key(name: bytes, timeout: float = 5) -> bytes | None:
        return keypair[1].encode()

    checked = 0
    for path in hostile:
        raw = path.read_bytes()
        msg = header_message(raw)
        ids = {
            m.group(1)
            for name, value in msg.raw_items()
            if name.lower() == "authentication-results" and (m := _AUTHSERV.match(str(value)))
        }
        for domain in _signing_domains(raw):
            verdict = verify_dkim(raw, domain, any_key)
            assert verdict.method == "dkim"
            checked += 1
        sender_authentication(raw, msg, sender_address(msg), ids, True, any_key)
    assert checked > 100

"""Decide whether an inbound message failed sender authentication.

Anyone can put any address in ``From:``. When the mail server in front of Tidings checked
SPF, DKIM and DMARC it says so in an ``Authentication-Results`` header, and we believe that
header only when its authserv-id is one the operator listed (``TIDINGS_TRUSTED_AUTHSERV_IDS``):
a sender can write the same header with any host name in it. When nothing trusted vouched for
the message we are the first hop, so we check DKIM signatures ourselves with dkimpy; SPF and
DMARC need the connecting IP address and envelope as seen by the MTA in front, so we don't
attempt them.

Only a *failure* has consequences (the caller quarantines with :data:`QUARANTINE_REASON`),
and an attacker can always strip a signature, which leaves an unsigned message that is
accepted. So the rules lean towards acceptance whenever the evidence is not definite:

* a temporary DNS problem is never a failure (the key may well be there; DMARC agrees: that
  is ``temperror``, not ``fail``);
* a malformed signature, or one we cannot check (ed25519 needs PyNaCl, which we do not ship),
  counts as absent (``permerror``), the same as a missing signature;
* signatures for other domains (a mailing list's) never count against the From domain.

Pure apart from DNS: no database, no clock of our own, no global state. DNS goes through an
injectable ``dnsfunc`` with dkimpy's calling convention, built by :func:`dns_txt_lookup`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Literal

import authres
import authres.dmarc
import dkim
import dkim.util
import dns.exception
import dns.name
import dns.resolver

#: The quarantine reason the caller records when ``AuthVerdict.failed`` is true.
QUARANTINE_REASON = "failed-sender-authentication"

#: Hostile mail may carry hundreds of DKIM-Signature headers; each one we check costs a DNS
#: query and a pass over the body. Senders and lists add one or two, so five is plenty.
MAX_DKIM_SIGNATURES = 5
#: Likewise for Authentication-Results headers claiming a trusted authserv-id.
MAX_TRUSTED_HEADERS = 10
#: Real Authentication-Results headers are under 2 KB; far longer ones are junk, not parsed.
MAX_HEADER_CHARS = 16_000
#: Seconds one DNS question may take (dnspython's lifetime, retries included).
DEFAULT_DNS_TIMEOUT = 3.0
#: Messages in verdict details quote library errors; keep a hostile header from making them huge.
_MAX_WHY = 120

Method = Literal["authentication-results", "dkim", "none"]
#: dkimpy calls ``dnsfunc(name: bytes, timeout=seconds)`` and expects the TXT record as
#: bytes, or None when there is none.
DnsFunc = Callable[..., bytes | None]


class DnsTemporaryError(Exception):
    """A DNS lookup gave no definite answer (timeout, SERVFAIL, unreachable or unreliable
    resolver). Deliberately *not* a ``dkim.DKIMException``: dkimpy catches its own
    ``DnsTimeoutError`` inside ``verify()`` and reports a plain False, which would be
    indistinguishable from a bad signature; this one propagates out of ``verify()``."""


@dataclass(frozen=True)
class AuthVerdict:
    """The outcome of sender authentication for one message."""

    failed: bool  # True -> the caller quarantines with reason QUARANTINE_REASON
    method: Method  # what decided: a trusted MTA's header, our own DKIM check, or nothing
    detail: str  # one human sentence for the quarantine listing and the logs


# Domains and alignment ------------------------------------------------------------------------


def _domain_of(value: str | bytes | None) -> str:
    """The domain in a d=, header.d, header.from or smtp.mailfrom value (an address or a
    bare domain), lower-cased and without a trailing dot."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    value = value.strip().strip("<>").strip('"')
    return value.rpartition("@")[2].strip().rstrip(".").lower()


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: equal, or one is a subdomain of the other.

    DMARC proper compares organizational domains, which needs the Public Suffix List; we
    approximate it, refusing only a bare top-level domain (``com``) as the shorter side so a
    ``d=com`` signature cannot align with every .com sender. Over-eager alignment can only
    turn "no signature for the domain" into a checked one, and since an attacker can always
    strip signatures, that never lets through anything stripping would not.
    """
    if not domain or not from_domain:
        return False
    if domain == from_domain:
        return True
    shorter, longer = sorted((domain, from_domain), key=len)
    return "." in shorter and longer.endswith("." + shorter)


def _short(error: object) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= _MAX_WHY else text[: _MAX_WHY - 1] + "…"


# Authentication-Results from a trusted MTA ----------------------------------------------------

_AR_PARSER = authres.FeatureContext(authres.dmarc)  # a constant parser configuration
# The authserv-id is the first token of the header value; comparing it before parsing means
# we never feed untrusted hosts' headers (the attacker-controlled ones) to the parser at all.
_AUTHSERV_ID = re.compile(r"\s*([^\s;()]+)")
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_FAIL = frozenset({"fail", "hardfail"})  # RFC 5451 called SPF's fail "hardfail"


@dataclass(frozen=True)
class _Reported:
    """One ``method=result`` clause from a trusted header."""

    host: str
    method: str
    result: str
    domain: str  # the domain the clause is about (header.from, header.d, smtp.mailfrom)

    @property
    def text(self) -> str:
        return f"{self.method}={self.result}"


def _property(result: authres.core.AuthenticationResult, ptype: str, name: str) -> str | None:
    for prop in getattr(result, "properties", None) or ():
        if str(prop.type).lower() == ptype and str(prop.name).lower() == name:
            return str(prop.value) if prop.value is not None else None
    return None


def _clause(host: str, result: authres.core.AuthenticationResult) -> _Reported | None:
    method = str(getattr(result, "method", "") or "").lower()
    outcome = str(getattr(result, "result", "") or "").lower()
    if method == "dmarc":
        domain = _domain_of(_property(result, "header", "from"))
    elif method == "dkim":
        # header.d names the signing domain; older MTAs report only header.i (an identity).
        domain = _domain_of(_property(result, "header", "d") or _property(result, "header", "i"))
    elif method == "spf":
        domain = _domain_of(_property(result, "smtp", "mailfrom"))
    else:
        return None  # arc, iprev, auth...: not about the From domain
    return _Reported(host, method, outcome, domain)


def _trusted_clauses(
    headers: Message, trusted: frozenset[str]
) -> Iterator[tuple[str, list[_Reported]]]:
    """``(authserv-id, clauses)`` for each readable Authentication-Results header from a
    trusted host, topmost first.

    Headers from any other authserv-id are skipped without even being parsed: anyone can
    write one. We rely on the trusted MTA removing inbound headers that claim its own
    authserv-id, as RFC 8601 section 5 asks (and MTAs with DMARC support do or can be told
    to); a header starting with a comment before the id is skipped, it is never an MTA's.
    """
    parsed = 0
    for name, value in headers.raw_items():  # raw strings: never raises, whatever the policy
        if parsed >= MAX_TRUSTED_HEADERS:
            return
        if str(name).strip().lower() != "authentication-results":
            continue
        text = _UNFOLD.sub("", str(value))
        if len(text) > MAX_HEADER_CHARS:
            continue
        first = _AUTHSERV_ID.match(text)
        if first is None or first.group(1).lower().rstrip(".") not in trusted:
            continue
        parsed += 1
        try:
            header = _AR_PARSER.parse_value(text)
        except Exception:
            # authres raises its own SyntaxError on garbage, and RecursionError on deeply
            # nested comments; an unreadable header says nothing, so it is ignored.
            continue
        host = str(header.authserv_id or "").lower().rstrip(".")
        if host in trusted:
            yield host, [c for c in (_clause(host, r) for r in header.results) if c is not None]


def results_from_trusted_mta(
    headers: Message, from_domain: str, trusted_ids: Collection[str]
) -> AuthVerdict | None:
    """What the trusted MTA in front of us concluded about ``from_domain``; None when no
    Authentication-Results header from a trusted authserv-id (compared case-insensitively)
    could be read, so the caller knows nobody vouched either way.

    The decision follows DMARC's logic, so we never fail mail a DMARC-checking MTA passes:

    * ``dmarc=fail`` for the From domain -> failed; ``dmarc=pass`` -> not failed.
    * Otherwise (no DMARC result, or none/temperror/permerror): an aligned ``dkim=pass`` or
      ``spf=pass`` -> not failed; else an aligned ``dkim=fail`` or ``spf=fail`` -> failed,
      unless an aligned ``temperror`` might be hiding a pass.
    * softfail, neutral, none, policy, temperror, permerror never fail a message by themselves.
    """
    trusted = frozenset(t.strip().lower().rstrip(".") for t in trusted_ids if t.strip())
    if not trusted:
        return None
    domain = _domain_of(from_domain)
    found = list(_trusted_clauses(headers, trusted))
    if not found:
        return None
    clauses = [clause for _, header_clauses in found for clause in header_clauses]
    about = domain or "a message without a From domain"

    def verdict(failed: bool, detail: str) -> AuthVerdict:
        return AuthVerdict(failed=failed, method="authentication-results", detail=detail)

    # header.from is the domain DMARC evaluated; a result about another domain is not ours.
    dmarc = [c for c in clauses if c.method == "dmarc" and c.domain in ("", domain)]
    for wanted in ("fail", "pass"):  # a fail anywhere outweighs a pass
        hit = next((c for c in dmarc if c.result == wanted), None)
        if hit is not None:
            return verdict(wanted == "fail", f"{hit.host} reported dmarc={wanted} for {about}.")

    aligned = [c for c in clauses if c.method in ("dkim", "spf") and _aligned(c.domain, domain)]
    passed = next((c for c in aligned if c.result == "pass"), None)
    if passed is not None:
        return verdict(False, f"{passed.host} reported {passed.text} for {passed.domain}.")
    failure = next((c for c in aligned if c.result in _FAIL), None)
    unsure = next((c for c in aligned if c.result == "temperror"), None)
    if failure is not None and unsure is None:
        kind = "envelope sender domain" if failure.method == "spf" else "signing domain"
        return verdict(
            True,
            f"{failure.host} reported {failure.method}=fail for {domain}"
            f" ({kind} {failure.domain}) and no aligned pass.",
        )
    if failure is not None and unsure is not None:
        return verdict(
            False,
            f"{failure.host} reported {failure.text} but also {unsure.text} for {domain};"
            " a temporary error could be hiding a pass, so it is not treated as a failure.",
        )
    relevant = dmarc + aligned
    if not relevant:
        return verdict(False, f"{found[0][0]} reported no DMARC, DKIM or SPF result for {about}.")
    seen = ", ".join(dict.fromkeys(c.text for c in relevant))
    return verdict(
        False, f"{relevant[0].host} reported {seen} for {about}, none of which is a failure."
    )


# DNS ------------------------------------------------------------------------------------------


def _resolver_for(resolver_address: str) -> dns.resolver.Resolver:
    """A resolver for "" (the system's), "HOST", "HOST:PORT", "[V6]:PORT" or a bare IPv6
    address. HOST must be an IP address: a resolver we would first have to resolve is a
    configuration error best reported at startup (ValueError), not per message."""
    text = resolver_address.strip()
    if not text:
        return _with_edns(dns.resolver.Resolver())  # may raise NoResolverConfiguration
    host, port = text, 53
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"DNS resolver {resolver_address!r}: expected [IPv6]:PORT")
        if rest:
            port = _port(rest[1:], resolver_address)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, resolver_address)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"DNS resolver {resolver_address!r}: give an IP address, optionally with :PORT"
        ) from None
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    return _with_edns(resolver)


def _with_edns(resolver: dns.resolver.Resolver) -> dns.resolver.Resolver:
    """dnspython sends plain 512-byte DNS unless resolv.conf says ``options edns0``; a 2048-bit
    key barely fits that, so answers would come back truncated and be retried over TCP.
    1232 bytes is the DNS Flag Day 2020 size that avoids IP fragmentation."""
    resolver.use_edns(0, 0, 1232)
    return resolver


def _port(text: str, original: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"DNS resolver {original!r}: bad port {text!r}")
    return int(text)


def dns_txt_lookup(resolver_address: str = "", timeout: float = DEFAULT_DNS_TIMEOUT) -> DnsFunc:
    """The ``dnsfunc`` dkimpy expects, using dnspython: ``lookup(name, timeout=...)`` returns
    the TXT record at ``name`` as bytes, or None when the name or record definitely does
    not exist; it raises :class:`DnsTemporaryError` when DNS gave no definite answer.

    ``resolver_address``: "" for the system resolver, or "HOST[:PORT]" for that server only.
    Raises ValueError at once for an address that is not an IP (with an optional port).

    We do not use dkimpy's own default (``dkim.dnsplug.get_txt``): it returns None ("no
    key", a definite failure) for SERVFAIL and unreachable servers, and its timeout error is
    swallowed by ``verify()``. We also distrust a bare "does not exist": some resolvers
    (sandboxes without an upstream, captive portals) answer NXDOMAIN for *every* name. So a
    negative answer counts only once the same resolver shows it can see the root zone.
    """
    configured = timeout
    try:
        resolver: dns.resolver.Resolver | None = _resolver_for(resolver_address)
        setup_error = ""
    except dns.exception.DNSException as exc:  # e.g. no nameserver in /etc/resolv.conf
        resolver, setup_error = None, _short(exc)

    def sees_root(resolver: dns.resolver.Resolver, seconds: float) -> bool:
        try:
            answer = resolver.resolve(dns.name.root, "SOA", lifetime=seconds, search=False)
        except (dns.exception.DNSException, OSError):
            return False
        return answer.rrset is not None

    def lookup(name: bytes | str, timeout: float | None = None) -> bytes | None:
        if resolver is None:
            raise DnsTemporaryError(f"no usable DNS resolver ({setup_error})")
        # dkimpy passes its own timeout (5 s by default); ours is the upper bound we promised.
        seconds = min(timeout, configured) if timeout else configured
        try:
            text = name.decode() if isinstance(name, bytes) else name
            qname = dns.name.from_text(text)
        except (UnicodeError, dns.exception.DNSException):
            return None  # not a valid DNS name, so no key can be published there
        try:
            answer = resolver.resolve(
                qname, "TXT", lifetime=seconds, search=False, raise_on_no_answer=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
            answer = None
        except (dns.exception.DNSException, OSError) as exc:
            # Timeout, NoNameservers (SERVFAIL, REFUSED, unreachable), malformed replies...
            raise DnsTemporaryError(f"{type(exc).__name__}: {_short(exc)}") from exc
        if answer is None or answer.rrset is None:
            if not sees_root(resolver, seconds):
                raise DnsTemporaryError(
                    f"{qname} reported missing, but the resolver cannot see the root zone"
                    " either, so its negative answers are not trusted"
                )
            return None
        records = [b"".join(rdata.strings) for rdata in answer.rrset]
        # Several TXT records at a key name is a publishing mistake; prefer the DKIM one.
        return next((r for r in records if r.lstrip().startswith(b"v=DKIM1")), records[0])

    return lookup


# DKIM ourselves -------------------------------------------------------------------------------

Status = Literal["pass", "fail", "temperror", "permerror", "unaligned"]
_CLAIMED_DOMAIN = re.compile(rb"(?:^|;)\s*d\s*=\s*([^;\s]+)")


@dataclass(frozen=True)
class _Signature:
    status: Status
    domain: str
    why: str = ""


class _KeyLookups:
    """Wraps the caller's dnsfunc for one message: remembers each answer (several
    signatures often share a key, and a black-holed domain should cost one timeout, not
    five) and turns any lookup trouble into DnsTemporaryError, so nothing dkimpy might
    swallow into a plain False can look like a definite failure."""

    def __init__(self, dnsfunc: DnsFunc) -> None:
        self._dnsfunc = dnsfunc
        self.answers: dict[bytes, bytes | None] = {}
        self.temporary: dict[bytes, str] = {}

    def __call__(self, name: bytes, timeout: float = DEFAULT_DNS_TIMEOUT) -> bytes | None:
        if name in self.temporary:
            raise DnsTemporaryError(self.temporary[name])
        if name in self.answers:
            return self.answers[name]
        try:
            answer = self._dnsfunc(name, timeout=timeout)
        except DnsTemporaryError as exc:
            self.temporary[name] = str(exc)
            raise
        except Exception as exc:
            # dkim.DnsTimeoutError from dkimpy-style functions, socket errors, a dnspython
            # surprise: none of them is evidence that the key is absent.
            self.temporary[name] = f"{type(exc).__name__}: {_short(exc)}"
            raise DnsTemporaryError(self.temporary[name]) from exc
        if isinstance(answer, str):
            answer = answer.encode()
        self.answers[name] = answer
        return answer


def _why_not_verified(key_name: bytes, record: bytes | None) -> str:
    """Why a signature whose key lookup succeeded still did not verify."""
    shown = key_name.decode("ascii", errors="replace").rstrip(".")
    if record is None:
        return f"no key is published at {shown}"
    try:
        tags = dkim.util.parse_tag_value(record)
        if not tags.get(b"p", b"").strip():
            return f"the key at {shown} has been revoked"
        dkim.evaluate_pk(key_name, record)
    except Exception as exc:
        return f"the key record at {shown} is unusable ({_short(exc)})"
    return "the signature does not match the message (altered in transit or forged)"


def _check_signature(
    verifier: dkim.DKIM, idx: int, value: bytes, from_domain: str, lookups: _KeyLookups
) -> _Signature:
    """Classify one DKIM-Signature header. Only aligned signatures are verified: an
    unaligned one cannot change the verdict, so it costs no DNS query."""
    try:
        tags = dkim.util.parse_tag_value(value)
    except Exception as exc:  # e.g. a duplicated tag, or text that is no tag=value list
        # Still say whose signature it claims to be, so the verdict can name it.
        claimed = _CLAIMED_DOMAIN.search(value)
        domain = _domain_of(claimed.group(1)) if claimed else ""
        if not _aligned(domain, from_domain):
            return _Signature("unaligned", domain)
        return _Signature("permerror", domain, f"malformed signature: {_short(exc)}")
    domain = _domain_of(tags.get(b"d"))
    if not _aligned(domain, from_domain):
        return _Signature("unaligned", domain)
    try:
        # The same checks dkimpy runs before its DNS lookup, done here so that a malformed
        # header is told apart from a signature that is well-formed but wrong.
        dkim.validate_signature_fields(tags)
        signed = {h.strip().lower() for h in re.split(rb"\s*:\s*", tags[b"h"])}
    except Exception as exc:  # dkimpy itself can raise IndexError here on odd i= values
        return _Signature("permerror", domain, f"malformed signature: {_short(exc)}")
    if b"from" not in signed:
        # RFC 6376 6.1.1: a signature that does not cover From must be ignored.
        return _Signature("permerror", domain, "the signature does not cover the From header")
    key_name = tags[b"s"] + b"._domainkey." + tags[b"d"] + b"."
    try:
        ok = verifier.verify(idx=idx, dnsfunc=lookups)
    except DnsTemporaryError as exc:
        return _Signature("temperror", domain, str(exc))
    except (dkim.ValidationError, dkim.KeyFormatError) as exc:
        if key_name in lookups.answers:  # e.g. body hash mismatch, key too small
            return _Signature("fail", domain, _short(exc))
        return _Signature("permerror", domain, _short(exc))
    except (dkim.NaClNotFoundError, dkim.UnknownKeyTypeError):
        return _Signature("permerror", domain, "an ed25519 signature, which we cannot check")
    except Exception as exc:
        # dkimpy on hostile input can raise MessageFormatError, ValueError, binascii.Error...
        # A signature we cannot evaluate is no evidence either way.
        return _Signature("permerror", domain, f"could not be evaluated: {_short(exc)}")
    if key_name in lookups.temporary:  # belt and braces: dkimpy swallowed our error
        return _Signature("temperror", domain, lookups.temporary[key_name])
    if ok:
        return _Signature("pass", domain)
    if key_name not in lookups.answers:  # False without a lookup: dkimpy rejected it early
        return _Signature("permerror", domain, "dkimpy rejected the signature before lookup")
    return _Signature("fail", domain, _why_not_verified(key_name, lookups.answers[key_name]))


_NEED_MTA = "SPF and DMARC need a receiving MTA in front of Tidings"


def verify_dkim(raw: bytes, from_domain: str, dnsfunc: DnsFunc | None = None) -> AuthVerdict:
    """Check the message's DKIM signatures for ``from_domain`` ourselves (we are the first
    hop). Never raises.

    * an aligned signature verifies -> not failed;
    * an aligned signature's key lookup failed temporarily -> not failed (temperror);
    * otherwise an aligned signature failed definitely (bad signature or body hash, no key
      published, key revoked) -> failed;
    * aligned signatures that are all malformed or uncheckable -> not failed (permerror);
    * no aligned signature (none, or only e.g. a mailing list's) -> not failed.

    ``dnsfunc`` defaults to :func:`dns_txt_lookup` on the system resolver.
    """

    def verdict(failed: bool, detail: str) -> AuthVerdict:
        return AuthVerdict(failed=failed, method="dkim", detail=detail)

    domain = _domain_of(from_domain)
    if not domain:
        return verdict(False, "The message has no From domain, so there is nothing to verify.")
    try:
        verifier = dkim.DKIM(raw)
        values = [v for n, v in verifier.headers if n.lower() == b"dkim-signature"]
    except Exception as exc:  # dkimpy refuses header lines it cannot split
        return verdict(
            False, f"The headers could not be read for a DKIM check ({_short(exc)}); {_NEED_MTA}."
        )
    lookups = _KeyLookups(dnsfunc if dnsfunc is not None else dns_txt_lookup())
    results = [
        _check_signature(verifier, idx, value, domain, lookups)
        for idx, value in enumerate(values[:MAX_DKIM_SIGNATURES])
    ]

    def first(status: Status) -> _Signature | None:
        return next((r for r in results if r.status == status), None)

    if (hit := first("pass")) is not None:
        return verdict(False, f"DKIM signature by {hit.domain} verified (dkim=pass).")
    if (hit := first("temperror")) is not None:
        return verdict(
            False,
            f"DKIM key for {hit.domain} could not be fetched because of a temporary DNS"
            f" failure ({hit.why}); dkim=temperror, so the message is accepted.",
        )
    if (hit := first("fail")) is not None:
        return verdict(True, f"DKIM signature by {hit.domain} failed: {hit.why} (dkim=fail).")
    if (hit := first("permerror")) is not None:
        return verdict(
            False,
            f"DKIM signature by {hit.domain} could not be checked ({hit.why}); dkim=permerror,"
            f" treated as unsigned; {_NEED_MTA}.",
        )
    others = sorted({r.domain for r in results if r.domain})
    also = f" (only for {', '.join(others)})" if others else ""
    return verdict(False, f"No DKIM signature for {domain}{also}; {_NEED_MTA}.")


# The one entry point --------------------------------------------------------------------------


def sender_authentication(
    raw: bytes,
    headers: Message,
    from_address: str,
    trusted_ids: Collection[str],
    dkim_verify: bool,
    dnsfunc: DnsFunc | None = None,
) -> AuthVerdict:
    """Did this message fail sender authentication? Never raises.

    A trusted MTA's Authentication-Results come first: it saw the connecting IP and the
    envelope, so it could check SPF and DMARC, which we cannot. Only when none vouched are
    we the first hop, and then we verify DKIM ourselves if ``dkim_verify`` is on.
    """
    from_domain = _domain_of(from_address) if "@" in from_address else ""
    reported = results_from_trusted_mta(headers, from_domain, trusted_ids)
    if reported is not None:
        return reported
    if dkim_verify:
        return verify_dkim(raw, from_domain, dnsfunc)
    return AuthVerdict(
        failed=False,
        method="none",
        detail="Sender authentication was not checked: no trusted MTA reported results"
        " and DKIM checking is off.",
    )

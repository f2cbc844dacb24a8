"""A tiny but real UDP DNS server for tests: TXT records from a dict, on 127.0.0.1.

Why a real server and not a mocked resolver: the code under test talks to DNS through
dnspython's resolver, and the interesting behaviour (NXDOMAIN versus SERVFAIL versus no
answer at all versus a refused port) only exists on the wire. End-to-end tests also point a
*subprocess* of the app at this server (``TIDINGS_DNS_RESOLVER=127.0.0.1:PORT``), which no
in-process mock could serve.

Usage::

    with serve_dns({"sel._domainkey.example.org": "v=DKIM1; k=rsa; p=..."}) as server:
        lookup = dns_txt_lookup(server.address)       # "127.0.0.1:PORT"
        host, port = server                           # also unpacks like a (host, port) pair

What it answers (like an authoritative server for every name it knows):

* a name in ``records`` asked for TXT -> that TXT record (split into 255-byte strings);
* ``.`` asked for SOA -> a synthetic root SOA, so resolvers (and ``smtp.authcheck``'s sanity
  probe) can tell this server apart from one that answers NXDOMAIN for everything;
* a name in ``records`` asked for another type, or any ancestor of a known name (empty
  non-terminal, e.g. ``example.org`` when ``sel._domainkey.example.org`` exists) -> NOERROR
  with no answer;
* a name in ``servfail`` -> SERVFAIL; a name in ``silent`` -> no reply at all (a timeout);
* anything else -> NXDOMAIN.

``broken=True`` answers NXDOMAIN to every query, even for the root zone: that is what a
sandboxed resolver with no upstream does, and the code under test must not mistake it for
"this key does not exist".

``records`` is read on every query, so a test may add or remove names while the server runs.
Every question received is appended to ``server.queries`` as ``(name, type)``, e.g.
``("sel._domainkey.example.org.", "TXT")``. It listens on UDP and on TCP (same port):
answers too big for the client's UDP buffer come back truncated (TC) and resolvers retry over
TCP, as with any real server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

HOST = "127.0.0.1"
TTL = 60
_ROOT_SOA = "localhost. hostmaster.localhost. 1 3600 600 86400 60"
_POLL_SECONDS = 0.05  # how quickly stop() is noticed by the serving threads


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)  # relative text is made absolute; comparison ignores case


def _txt_rrset(name: dns.name.Name, text: str) -> dns.rrset.RRset:
    """One TXT record; DNS caps each character-string at 255 bytes, so longer values (a
    2048-bit DKIM key) are split into several strings, which readers concatenate."""
    data = text.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
    return dns.rrset.from_rdata(name, TTL, rdata)


class DnsServer:
    """The running server: ``host``, ``port``, ``address`` ("host:port") and ``queries``."""

    def __init__(
        self,
        records: Mapping[str, str],
        *,
        servfail: Collection[str] = (),
        silent: Collection[str] = (),
        broken: bool = False,
    ) -> None:
        self.records = records
        self.servfail = {_name(n) for n in servfail}
        self.silent = {_name(n) for n in silent}
        self.broken = broken
        self.queries: list[tuple[str, str]] = []
        self._udp, self._tcp = _bound_pair()
        self.host: str = HOST
        self.port: int = int(self._udp.getsockname()[1])
        self._stop = threading.Event()
        # Daemons: a test that forgets to stop the server must not hang the whole pytest run.
        self._threads = [
            threading.Thread(target=self._serve_udp, name="test-dns-udp", daemon=True),
            threading.Thread(target=self._serve_tcp, name="test-dns-tcp", daemon=True),
        ]

    @property
    def address(self) -> str:
        """The form ``dns_txt_lookup`` and ``TIDINGS_DNS_RESOLVER`` take."""
        return f"{self.host}:{self.port}"

    def __iter__(self) -> Iterator[str | int]:
        # Lets callers write ``host, port = server``.
        return iter((self.host, self.port))

    def start(self) -> DnsServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._udp.close()
        self._tcp.close()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                packet, client = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:  # socket closed under us: we are shutting down
                return
            reply = self._answer(packet, tcp=False)
            if reply is not None:
                with contextlib.suppress(OSError):  # the client went away
                    self._udp.sendto(reply, client)

    def _serve_tcp(self) -> None:
        # One connection at a time is plenty for tests; each carries length-prefixed messages.
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                while (size := _recv_exactly(conn, 2)) is not None:
                    packet = _recv_exactly(conn, int.from_bytes(size, "big"))
                    if packet is None:
                        break
                    reply = self._answer(packet, tcp=True)
                    if reply is None:
                        break
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)

    def _answer(self, packet: bytes, *, tcp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(packet)
        except dns.exception.DNSException:
            return None  # garbage: real servers drop it too
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        self.queries.append((qname.to_text(), dns.rdatatype.to_text(qtype)))

        known = {_name(text): value for text, value in self.records.items()}
        if self.broken:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif qname in self.silent:
            return None
        elif qname in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif qname in known:
            if qtype == dns.rdatatype.TXT:
                response.answer.append(_txt_rrset(qname, known[qname]))
        elif qname == dns.name.root:
            if qtype == dns.rdatatype.SOA:
                response.answer.append(
                    dns.rrset.from_text(dns.name.root, TTL, "IN", "SOA", _ROOT_SOA)
                )
        elif not any(name.is_subdomain(qname) for name in known):
            response.set_rcode(dns.rcode.NXDOMAIN)
        # else: an empty non-terminal, NOERROR with no answer.

        limit = 65535 if tcp else max(query.payload if query.edns >= 0 else 512, 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()


def _bound_pair() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same free 127.0.0.1 port. Port 0 lets the kernel pick a
    free UDP port atomically; the TCP bind on the same number can lose a race, so retry."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((HOST, 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((HOST, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(8)
        udp.settimeout(_POLL_SECONDS)
        tcp.settimeout(_POLL_SECONDS)
        return udp, tcp
    raise RuntimeError("no free port for both UDP and TCP on 127.0.0.1")


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@contextmanager
def serve_dns(
    records: Mapping[str, str],
    *,
    servfail: Collection[str] = (),
    silent: Collection[str] = (),
    broken: bool = False,
) -> Iterator[DnsServer]:
    """Run a :class:`DnsServer` in a background thread for the ``with`` block."""
    server = DnsServer(records, servfail=servfail, silent=silent, broken=broken).start()
    try:
        yield server
    finally:
        server.stop()


def unused_udp_port() -> int:
    """A 127.0.0.1 UDP port with nothing listening: queries sent there are refused (ICMP
    port unreachable), which is how a resolver that is down looks to the client."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])

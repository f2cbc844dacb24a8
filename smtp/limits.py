"""How much one client address may ask of the listener at once: concurrent sessions and
messages a minute. Over either, it hears 421 4.7.0 and when to come back (a well-behaved
MTA retries later), instead of the listener slowing down for everyone.

Addresses in the exempt set (by default loopback: an MTA in front of us, which does its
own limiting and funnels every sender through one address) are never limited. Pure
bookkeeping for one listener process; nothing here touches the network or the database.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection


class ClientLimits:
    def __init__(
        self,
        max_sessions: int,
        max_messages_per_minute: int,
        exempt: Collection[str] = ("127.0.0.1", "::1"),
    ) -> None:
        self.max_sessions = max_sessions
        self.max_messages = max_messages_per_minute
        self.exempt = frozenset(exempt)
        self.sessions: Counter[str] = Counter()
        self.recent: dict[str, deque[float]] = {}

    def open_session(self, ip: str) -> bool:
        """Count a new session from `ip`; False (and not counted) when it has too many."""
        if ip not in self.exempt and self.sessions[ip] >= self.max_sessions:
            return False
        self.sessions[ip] += 1
        return True

    def close_session(self, ip: str) -> None:
        self.sessions[ip] -= 1
        if self.sessions[ip] <= 0:
            del self.sessions[ip]

    def allow_message(self, ip: str, now: float) -> bool:
        """Record a message starting now from `ip`; False when it is over its rate."""
        if ip in self.exempt:
            return True
        window = self.recent.setdefault(ip, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.max_messages:
            return False
        window.append(now)
        return True

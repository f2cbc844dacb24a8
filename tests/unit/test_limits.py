"""Per-address limits of the SMTP listener: sessions at once, messages a minute."""

from __future__ import annotations

from smtp.limits import ClientLimits


def test_sessions_are_limited_per_address_and_freed_when_closed() -> None:
    limits = ClientLimits(max_sessions=2, max_messages_per_minute=10)
    assert limits.open_session("192.0.2.1") and limits.open_session("192.0.2.1")
    assert not limits.open_session("192.0.2.1")  # a third at once
    assert limits.open_session("192.0.2.2")  # others are not affected
    limits.close_session("192.0.2.1")
    assert limits.open_session("192.0.2.1")


def test_messages_are_limited_per_address_per_minute() -> None:
    limits = ClientLimits(max_sessions=5, max_messages_per_minute=3)
    assert all(limits.allow_message("192.0.2.1", t) for t in (0.0, 1.0, 2.0))
    assert not limits.allow_message("192.0.2.1", 30.0)
    assert limits.allow_message("192.0.2.9", 30.0)
    assert limits.allow_message("192.0.2.1", 60.5)  # the first one left the window


def test_the_mta_in_front_is_never_limited() -> None:
    limits = ClientLimits(max_sessions=1, max_messages_per_minute=1, exempt={"127.0.0.1"})
    assert all(limits.open_session("127.0.0.1") for _ in range(50))
    assert all(limits.allow_message("127.0.0.1", 0.0) for _ in range(50))

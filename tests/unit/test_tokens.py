"""Reply tokens: round trip, case-insensitivity, and that any alteration fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.tokens import (
    InvalidToken,
    Recipient,
    ReplyToken,
    parse_recipient,
    reply_address,
    sign_link,
    sign_reply_token,
    verify_link,
    verify_reply_token,
)

SECRET = "unit-test-secret"
ids = st.integers(min_value=1, max_value=2**32 - 1)


@given(ids, ids)
def test_round_trip_in_any_case(person_id: int, thread_id: int) -> None:
    token = sign_reply_token(ReplyToken(person_id, thread_id), SECRET)
    assert len(f"eng+r.{token}") <= 64  # fits an address local part
    for spelling in (token, token.upper(), token.swapcase()):
        assert verify_reply_token(spelling, SECRET) == ReplyToken(person_id, thread_id)


@given(ids, ids, st.data())
def test_any_changed_character_fails(person_id: int, thread_id: int, data: st.DataObject) -> None:
    token = sign_reply_token(ReplyToken(person_id, thread_id), SECRET)
    index = data.draw(st.integers(0, len(token) - 1))
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != token[index]]))
    tampered = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(InvalidToken):
        verify_reply_token(tampered, SECRET)


def test_other_secret_or_garbage_fails() -> None:
    token = sign_reply_token(ReplyToken(1, 2), SECRET)
    with pytest.raises(InvalidToken):
        verify_reply_token(token, "another-secret")
    for garbage in ["", "abc", "!!!!", token + "a", token[:-1]]:
        with pytest.raises(InvalidToken):
            verify_reply_token(garbage, SECRET)


def test_reply_address_round_trips_through_recipient_parsing() -> None:
    address = reply_address("eng", "tok123", "Mail.Example.com")
    assert address == "eng+r.tok123@Mail.Example.com"
    assert parse_recipient(address.upper(), "mail.example.com") == Recipient("eng", "tok123")
    assert parse_recipient("<eng@mail.example.com>", "mail.example.com") == Recipient("eng")
    assert parse_recipient("eng@other.example", "mail.example.com") is None
    assert parse_recipient("not-an-address", "mail.example.com") is None


NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_link_token_names_its_subject_until_it_expires() -> None:
    token = sign_link("fix-update", 42, NOW + timedelta(days=14), SECRET)
    assert verify_link(token, "fix-update", NOW, SECRET) == 42
    assert verify_link(token, "fix-update", NOW + timedelta(days=13), SECRET) == 42
    with pytest.raises(InvalidToken, match="expired"):
        verify_link(token, "fix-update", NOW + timedelta(days=15), SECRET)


def test_link_token_is_bound_to_purpose_secret_and_content() -> None:
    token = sign_link("fix-update", 42, NOW + timedelta(days=1), SECRET)
    for purpose, secret in [("approve-post", SECRET), ("fix-update", "other-secret")]:
        with pytest.raises(InvalidToken):
            verify_link(token, purpose, NOW, secret)
    for garbage in ["", "x", token[:-2], token + "AA", "!" + token[1:]]:
        with pytest.raises(InvalidToken):
            verify_link(garbage, "fix-update", NOW, SECRET)


@given(st.integers(1, 2**40), st.data())
def test_any_changed_character_of_a_link_token_fails(subject: int, data: st.DataObject) -> None:
    token = sign_link("unsubscribe", subject, NOW + timedelta(days=400), SECRET)
    index = data.draw(st.integers(0, len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != token[index]]))
    with pytest.raises(InvalidToken):
        verify_link(token[:index] + replacement + token[index + 1 :], "unsubscribe", NOW, SECRET)

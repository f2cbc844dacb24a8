"""Reply tokens: round trip, case-insensitivity, and that any alteration fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.tokens import (
    InvalidToken,
    Recipient,
    ReplyKeys,
    ReplyToken,
    RetiredKey,
    parse_recipient,
    reply_address,
    reply_address_for,
    reply_keys,
    sign_address_link,
    sign_link,
    sign_reply_token,
    verify_address_link,
    verify_link,
    verify_reply_token,
)

SECRET = "unit-test-secret"
KEYS = reply_keys(SECRET, [(1, "")])
ids = st.integers(min_value=1, max_value=2**32 - 1)
salts = st.text("0123456789abcdef", min_size=32, max_size=32)


def token_for(person_id: int, thread_id: int, keys: ReplyKeys = KEYS) -> str:
    return sign_reply_token(ReplyToken(person_id, thread_id, keys.current), keys)


@given(ids, ids)
def test_round_trip_in_any_case(person_id: int, thread_id: int) -> None:
    token = token_for(person_id, thread_id)
    assert len(f"eng+r.{token}") <= 64  # fits an address local part
    for spelling in (token, token.upper(), token.swapcase()):
        assert verify_reply_token(spelling, KEYS) == ReplyToken(person_id, thread_id, 1)


@given(ids, ids, st.data())
def test_any_changed_character_fails(person_id: int, thread_id: int, data: st.DataObject) -> None:
    token = token_for(person_id, thread_id)
    index = data.draw(st.integers(0, len(token) - 1))
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    replacement = data.draw(
        st.sampled_from([c for c in alphabet + alphabet.upper() if c.lower() != token[index]])
    )
    tampered = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(InvalidToken):
        verify_reply_token(tampered, KEYS)


def test_other_secret_or_garbage_fails() -> None:
    token = token_for(1, 2)
    with pytest.raises(InvalidToken):
        verify_reply_token(token, reply_keys("another-secret", [(1, "")]))
    for garbage in ["", "abc", "!!!!", token + "a", token[:-1]]:
        with pytest.raises(InvalidToken):
            verify_reply_token(garbage, KEYS)


@given(ids, ids, salts)
def test_tokens_verify_across_a_rotation_until_their_version_is_retired(
    person_id: int, thread_id: int, salt: str
) -> None:
    old = token_for(person_id, thread_id)
    rotated = reply_keys(SECRET, [(1, ""), (2, salt)])
    new = token_for(person_id, thread_id, rotated)
    assert rotated.current == 2 and new != old
    assert verify_reply_token(old, rotated) == ReplyToken(person_id, thread_id, 1)
    assert verify_reply_token(new.upper(), rotated) == ReplyToken(person_id, thread_id, 2)
    retired = reply_keys(SECRET, [(2, salt)], retired=[(1, "")])
    assert verify_reply_token(new, retired).key_version == 2
    with pytest.raises(RetiredKey):
        verify_reply_token(old, retired)
    altered = old[:-1] + ("a" if old[-1] != "a" else "b")
    with pytest.raises(InvalidToken) as refused:  # an altered old token is not "retired"
        verify_reply_token(altered, retired)
    assert not isinstance(refused.value, RetiredKey)
    with pytest.raises(InvalidToken):  # a new version never verifies before it exists
        verify_reply_token(new, KEYS)


@given(ids, ids, salts, salts)
def test_a_version_is_bound_to_its_salt(
    person_id: int, thread_id: int, salt: str, other: str
) -> None:
    """Two deployments (or a restored backup) that rotated separately do not accept each
    other's new tokens even with the same secret and version number."""
    ours = reply_keys(SECRET, [(2, salt)])
    theirs = reply_keys(SECRET, [(2, other)])
    token = token_for(person_id, thread_id, ours)
    if salt == other:
        assert verify_reply_token(token, theirs).person_id == person_id
    else:
        with pytest.raises(InvalidToken):
            verify_reply_token(token, theirs)


def test_reply_address_names_the_current_version() -> None:
    rotated = reply_keys(SECRET, [(1, ""), (3, "ab" * 16)])
    address = reply_address_for(7, 9, "eng", "mail.example.com", rotated)
    token = parse_recipient(address, "mail.example.com").token  # type: ignore[union-attr]
    assert verify_reply_token(token, rotated) == ReplyToken(7, 9, 3)  # type: ignore[arg-type]


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


@given(st.integers(min_value=1, max_value=2**40), st.data())
def test_address_links_survive_case_changes_and_refuse_any_other_change(
    subject: int, data: st.DataObject
) -> None:
    expires = datetime(2027, 1, 1, tzinfo=UTC)
    token = sign_address_link("unsubscribe", subject, expires, SECRET)
    assert len(f"unsubscribe+{token}") <= 64  # fits an address local part
    now = expires - timedelta(days=1)
    assert verify_address_link(token.upper(), "unsubscribe", now, SECRET) == subject
    index = data.draw(st.integers(0, len(token) - 1))
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != token[index]]))
    with pytest.raises(InvalidToken):
        verify_address_link(
            token[:index] + replacement + token[index + 1 :], "unsubscribe", now, SECRET
        )
    with pytest.raises(InvalidToken):
        verify_address_link(token, "other-purpose", now, SECRET)
    with pytest.raises(InvalidToken, match="expired"):
        verify_address_link(token, "unsubscribe", expires + timedelta(seconds=1), SECRET)

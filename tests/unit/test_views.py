"""Reading order of a thread's reply tree, and when a check-in answer counts as late."""

from __future__ import annotations

from datetime import UTC, date, datetime

from app.models import Thread
from app.views import answered_on, tree_order


def test_replies_follow_what_they_answer_oldest_first() -> None:
    # 1 root; 2 answers 1; 3 another root-level reply to 1; 4 answers 2; 5 a new top post.
    updates = [(1, None), (2, 1), (3, 1), (4, 2), (5, None)]
    order = [(updates[pos][0], depth) for pos, depth in tree_order(updates)]
    assert order == [(1, 0), (2, 1), (4, 2), (3, 1), (5, 0)]


def test_a_reply_to_an_update_not_shown_becomes_top_level() -> None:
    order = tree_order([(7, 99), (8, 7)])
    assert order == [(0, 0), (1, 1)]


def test_every_update_is_shown_once_even_in_deep_trees() -> None:
    chain = [(1, None)] + [(i, i - 1) for i in range(2, 2000)]
    order = tree_order(chain)
    assert [pos for pos, _ in order] == list(range(1999))
    assert order[-1][1] == 1998


def test_a_late_checkin_answer_says_when_it_was_answered() -> None:
    thread = Thread(
        team_id=1, title="What did you get done? (2026-11-20)", checkin_date=date(2026, 11, 20)
    )
    late = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert answered_on(thread.checkin_date, late, "Europe/Berlin") == date(2026, 11, 23)
    # 23:30 on the 20th in New York is already the 21st in UTC, but still the same day locally.
    same_day = datetime(2026, 11, 21, 4, 30, tzinfo=UTC)
    assert answered_on(thread.checkin_date, same_day, "America/New_York") is None
    assert answered_on(None, late, "UTC") is None

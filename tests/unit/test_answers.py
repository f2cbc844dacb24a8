"""Which part of a multi-question check-in reply answers which question, and whether the
blocker question's answer names a blocker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.answers import answers, reports_blocker

QUESTIONS = ["What did you get done?", "What's next?", "Anything blocking you?"]


def test_numbered_answers_are_split_by_their_numbers() -> None:
    body = "1. Shipped the importer.\n2) Start on exports\nwith CSV first.\n3: Waiting on legal."
    assert answers(body, QUESTIONS) == {
        1: "Shipped the importer.",
        2: "Start on exports\nwith CSV first.",
        3: "Waiting on legal.",
    }


def test_questions_repeated_as_headings_are_split_by_them() -> None:
    body = (
        "What did you get done?\nReviews.\n\nWhat's next?\nPlanning.\n\n"
        "**Anything blocking you?**\nThe VPN."
    )
    found = answers(body, QUESTIONS)
    assert found[1] == "Reviews." and found[2] == "Planning." and found[3] == "The VPN."


def test_one_paragraph_per_question_is_read_in_order() -> None:
    found = answers("Reviews.\n\nPlanning.\n\nNothing.", QUESTIONS)
    assert found == {1: "Reviews.", 2: "Planning.", 3: "Nothing."}


def test_a_reply_that_does_not_say_what_answers_what_is_not_split() -> None:
    assert answers("Did reviews, next planning, all fine.", QUESTIONS) == {}
    assert answers("Only this.", ["One question?"]) == {1: "Only this."}


def test_numbers_beyond_the_questions_are_just_text() -> None:
    found = answers("1. Done: 4 tickets.\n7. no such question\n3. none", QUESTIONS)
    assert found[1] == "Done: 4 tickets.\n7. no such question" and found[3] == "none"


@pytest.mark.parametrize(
    "answer",
    ["No", "none", "Nothing.", "Nope!", "N/A", "-", "No blockers", "nothing blocking me",
     "None so far.", "All good, thanks!", "Not blocked", "None. Waiting on X is fine."],
)  # fmt: skip
def test_saying_no_is_not_a_blocker(answer: str) -> None:
    assert not reports_blocker(answer)


@pytest.mark.parametrize(
    "answer",
    ["The staging DB is down", "Need credentials from ops", "Nothing works on staging",
     "No access to the vendor portal yet"],
)  # fmt: skip
def test_naming_something_is_a_blocker(answer: str) -> None:
    assert reports_blocker(answer)


@given(st.text(max_size=2000))
def test_any_reply_splits_into_parts_of_itself(body: str) -> None:
    for number, answer in answers(body, QUESTIONS).items():
        assert 1 <= number <= len(QUESTIONS)
        assert all(line.strip() in body for line in answer.splitlines())

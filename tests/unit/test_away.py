"""Reading when an out-of-office reply says its author is back."""

from __future__ import annotations

from datetime import date

import pytest

from smtp.away import return_date
from smtp.parse import parse_message
from tests.conftest import IN_CI, SHARED

RECEIVED = date(2026, 11, 25)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("I am currently away returning to the office on May 5th.", date(2027, 5, 5)),
        ("I will be traveling for work on December 10-31. During that time", date(2027, 1, 1)),
        ("Out of the office until 3 December. Urgent: call 030 1234567.", date(2026, 12, 3)),
        ("Out of the office through 3 December.", date(2026, 12, 4)),
        ("Back on Monday 30 November.", date(2026, 11, 30)),
        ("I am away until Monday.", date(2026, 11, 30)),
        ("I am back on 12/03/2026.", date(2026, 12, 3)),
        ("Ich bin bis zum 4. Dezember nicht erreichbar.", date(2026, 12, 4)),
        ("Ich bin bis einschließlich 4. Dezember im Urlaub.", date(2026, 12, 5)),
        ("Ich bin zurück am 7.12.2026.", date(2026, 12, 7)),
        ("Je serai de retour le 3 décembre.", date(2026, 12, 3)),
        ("Estoy de vacaciones hasta el 3 de diciembre.", date(2026, 12, 3)),
        ("Ik ben terug op 3 december.", date(2026, 12, 3)),
        ("Ik ben tot en met 3 december weg.", date(2026, 12, 4)),
    ],
)
def test_the_day_they_are_back(text: str, back: date) -> None:
    assert return_date(text, RECEIVED) == back


@pytest.mark.parametrize(
    "text",
    [
        "I'm out of the office Friday. For pressing news matters, Nyaan.",  # no "back" date
        "Please send the report by December 1.",  # a deadline, not a return
        "I am away. Call me on 030 1234567.",
        "Back on 3 December 2025.",  # in the past
        "Back on 3 December 2031.",  # too far ahead to be a holiday
        "",
    ],
)
def test_no_day_is_read_into_text_that_does_not_give_one(text: str) -> None:
    assert return_date(text, RECEIVED) is None


def test_a_real_out_of_office_reply() -> None:
    path = SHARED / "corpus/hostile/autoreplies/sisimai/bsd/rfc3834-01.eml"
    if not path.exists() and not IN_CI:
        pytest.skip(f"{path} is not here (../shared is beside the project in CI)")
    raw = path.read_bytes()
    parsed = parse_message(raw)
    assert parsed.classification.kind == "auto_reply"
    assert return_date(parsed.text, RECEIVED) == date(2027, 5, 5)

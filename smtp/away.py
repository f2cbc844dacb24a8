"""When an out-of-office reply says its author is back. Pure: no database, no clock.

An auto-reply never becomes an update; when a member's says when they are back, the
member is marked away until then, so digests and check-in prompts wait for them. Only
a date that a phrase ties to being back or away counts ("back on May 5th", "returning
to the office on 5 May", "until 3 December", "zurück am 5. Mai", "de retour le 3
décembre", "hasta el 3 de diciembre", "terug op 3 december"); any other date in the
text (a deadline, a phone number) is never read as one. dateparser reads the dates.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import dateparser

# How far ahead a return date may be: a further one is more likely a misreading.
MAX_AWAY = timedelta(days=180)
_WORDS_TRIED = 5  # a date is at most this many words ("Monday, 3 December 2026")

# language -> (phrases followed by the day someone is back ("back on", and "until",
#              which people use the same way), phrases followed by their last day away)
_PHRASES: dict[str, tuple[str, str | None]] = {
    "en": (
        r"\b(?:back|return(?:ing)?(?: to (?:the )?(?:office|work))?|in the office|"
        r"available again)\s+(?:on|from|by|after)?|\b(?:until|till)",
        r"\b(?:through|thru|up to and including)",
    ),
    "de": (
        r"\b(?:zurück|wieder (?:im büro|erreichbar|da))\s+(?:am|ab)?|\bbis (?:zum|)",
        r"\bbis (?:einschließlich|einschliesslich|inklusive)",
    ),
    "fr": (r"\b(?:de retour|retour)\s+(?:le|à partir du)?|\bjusqu'(?:au|à)", None),
    "es": (r"\b(?:de vuelta|regreso|regresaré)\s+(?:el)?|\bhasta (?:el)?", None),
    "nl": (r"\b(?:terug|weer aanwezig)\s+(?:op|vanaf)?|\btot\b(?! en met)", r"\btot en met"),
}
_COMPILED = [
    (lang, re.compile(pattern, re.I), after)
    for lang, phrases in _PHRASES.items()
    for pattern, after in zip(phrases, (0, 1), strict=True)
    if pattern is not None
]
# "on July 10-31", "from 10 to 31 July": a range's last day is the last one away.
_RANGE = re.compile(
    r"\b(?P<month>[A-Za-z]{3,9})\s+(?P<first>\d{1,2})(?:st|nd|rd|th)?\s*(?:-|–|to)\s*"
    r"(?P<last>\d{1,2})(?:st|nd|rd|th)?\b"
)
# Where the sentence with the date ends ("4. Dezember" is a German date, not an end).
_STOP = re.compile(r"[\n;()]|(?<!\d)\.\s+(?=[A-Z])")


def return_date(text: str, received: date) -> date | None:
    """The first day the author of out-of-office `text`, received on `received`, says
    they are back; None when the text does not say."""
    text = " ".join(text.split()[:400])  # the opening says it; a long reply is not read
    found: list[tuple[int, date]] = []
    for lang, pattern, after in _COMPILED:
        for match in pattern.finditer(text):
            day = _date_after(text[match.end() :], lang, received)
            if day is not None:
                found.append((match.start(), day + timedelta(days=after)))
    for match in _RANGE.finditer(text):
        last = _parse(f"{match['month']} {match['last']}", "en", received)
        if last is not None:
            found.append((match.start(), last + timedelta(days=1)))
    found = [(at, day) for at, day in found if received < day <= received + MAX_AWAY]
    return min(found)[1] if found else None


def read_date(text: str, today: date) -> date | None:
    """A date a member typed ("2026-12-03", "3 December", "Friday"), today or later."""
    text = text.strip().rstrip(".!")
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    for lang in _PHRASES:
        day = _parse(text, lang, today)
        if day is not None and day >= today:
            return day
    return None


def _date_after(rest: str, lang: str, received: date) -> date | None:
    """The date that starts `rest` (after a phrase), trying its longest reading first."""
    rest = _STOP.split(rest.strip(), 1)[0]
    words = rest.split()[:_WORDS_TRIED]
    if not words or (not any(ch.isdigit() for ch in " ".join(words[:3])) and lang != "en"):
        return None
    for size in range(len(words), 0, -1):
        day = _parse(" ".join(words[:size]).rstrip(".,:;!"), lang, received)
        if day is not None:
            return day
    return None


def _parse(text: str, lang: str, received: date) -> date | None:
    if not text or not any(ch.isdigit() or ch.isalpha() for ch in text):
        return None
    settings: dict[str, Any] = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": datetime(received.year, received.month, received.day),
        "DATE_ORDER": "MDY" if lang == "en" and "/" in text else "DMY",
    }
    parsed = dateparser.parse(text, languages=[lang], settings=settings)
    if parsed is None or (parsed.date() == received and not any(c.isdigit() for c in text)):
        return None
    return parsed.date()

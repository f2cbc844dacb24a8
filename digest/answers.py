"""Reading a reply to a check-in that asked several questions: which part answers which,
and whether the answer to the blocker question reports a blocker. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

_NUMBERED = re.compile(r"^\s*(?:[*_]{1,2})?\s*(\d{1,2})\s*[.):]\s*(?:[*_]{1,2})?\s*(.*)$")
_WORDS = re.compile(r"[^\w]+")
# Short answers that mean "nothing is blocking me", in the ways people write it.
_NOTHING = re.compile(
    r"^(?:no(?:pe|ne)?|nothing|n/?a|-+|not really|all good|all clear|nada|"
    r"none (?:so far|yet|today|right now|at the moment)|"
    r"no(?:thing)? (?:blockers?|blocking(?: me)?|issues|problems)(?: (?:so far|yet|today))?|"
    r"not (?:blocked|at the moment|yet|today))(?!\w)[\s.!,:;)-]*(?:thanks?[.!]*)?$",
    re.I,
)


def _plain(text: str) -> str:
    return _WORDS.sub(" ", text).strip().lower()


def answers(body: str, questions: Sequence[str]) -> dict[int, str]:
    """{question number (1-based): answer}, as far as the reply makes it clear.

    A reply may number its answers (`1.`, `2)`, `3:`), repeat each question as a heading,
    or give exactly one paragraph per question in order; anything else is not split.
    One question: the whole reply answers it.
    """
    if len(questions) == 1:
        return {1: body.strip()} if body.strip() else {}
    headings = {_plain(q): n for n, q in enumerate(questions, 1) if _plain(q)}
    found: dict[int, list[str]] = {}
    current: int | None = None
    for line in body.splitlines():
        numbered = _NUMBERED.match(line)
        if numbered and 1 <= int(numbered.group(1)) <= len(questions):
            current = int(numbered.group(1))
            rest = numbered.group(2)
            if _plain(rest) in headings:  # "3. Anything blocking you?" then the answer
                rest = ""
            found.setdefault(current, []).append(rest)
        elif _plain(line) in headings:
            current = headings[_plain(line)]
            found.setdefault(current, [])
        elif current is not None:
            found[current].append(line)
    if found:
        return {n: "\n".join(lines).strip() for n, lines in found.items()}
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    if len(paragraphs) == len(questions):
        return dict(enumerate(paragraphs, 1))
    return {}


def reports_blocker(answer: str) -> bool:
    """Whether an answer to "Anything blocking you?" names something (not "No", "None").
    Only the first line decides: "None. (Waiting on X is fine.)" is still a no."""
    first = next((line.strip() for line in answer.splitlines() if line.strip()), "")
    return bool(first) and not _NOTHING.match(first.split(". ")[0].strip())

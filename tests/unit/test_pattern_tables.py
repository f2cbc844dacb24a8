"""Every entry of the pattern tables works end to end.

The tables in smtp/reply_patterns.py claim languages and clients; each entry here goes
through the real extractor inside a small, realistic reply, and only the new text may
come back. A new table entry is tested the moment it is added.
"""

from __future__ import annotations

import pytest

from smtp import extract_reply
from smtp import reply_patterns as rp

NEW = "Thanks, the numbers look right to me.\n\nAna"
QUOTE = "> Can you check the Q3 numbers before Friday?\n> They are in the shared sheet."
WHO = "Jonas Weber <jonas@example.com>"


def literal(entries: tuple) -> list[str]:
    return [e if isinstance(e, str) else e[0] for e in entries]


@pytest.mark.parametrize("verb", literal(rp.ATTRIBUTION_VERBS))
def test_attribution_verbs(verb: str) -> None:
    body = f"{NEW}\n\n2024-03-04 08:15, {WHO} {verb}:\n{QUOTE}\n"
    assert extract_reply(body) == NEW


def header_block_reply(from_field: str = "From", sent_field: str = "Sent") -> str:
    block = (
        f"{from_field}: {WHO}\n{sent_field}: Monday, March 4, 2024 8:15 AM\nTo: Ana\nSubject: Q3"
    )
    return f"{NEW}\n\n{block}\n\nCan you check the Q3 numbers before Friday?\n"


@pytest.mark.parametrize("field", literal(rp.HEADER_FROM_FIELDS))
def test_header_blocks_start_at_each_from_field(field: str) -> None:
    assert extract_reply(header_block_reply(from_field=field)) == NEW


@pytest.mark.parametrize("field", literal(rp.HEADER_OTHER_FIELDS))
def test_header_blocks_accept_each_other_field(field: str) -> None:
    assert extract_reply(header_block_reply(sent_field=field)) == NEW


@pytest.mark.parametrize("phrase", literal(rp.ORIGINAL_MESSAGE_PHRASES))
def test_original_message_separators(phrase: str) -> None:
    body = f"{NEW}\n\n-----{phrase}-----\nFrom: {WHO}\nSubject: Q3\n\nCan you check?\n"
    assert extract_reply(body) == NEW


@pytest.mark.parametrize("intro", literal(rp.FORWARD_INTROS))
def test_forward_intros_keep_the_note_above(intro: str) -> None:
    body = f"{NEW}\n\n{intro}:\n\nFrom: {WHO}\nSubject: Q3\n\nThe Q3 numbers are attached.\n"
    assert extract_reply(body) == NEW


@pytest.mark.parametrize("start", literal(rp.LEGAL_NOTICE_STARTS))
def test_legal_notices(start: str) -> None:
    notice = f"{start} is intended only for the addressee and may be privileged."
    assert extract_reply(f"{NEW}\n\n{notice}\n") == NEW


def shortest_example(pattern: str) -> str:
    """The shortest text a footer pattern matches: first alternatives, fewest repeats."""
    from re import _parser as parser  # the stdlib's own regex parser

    def walk(items: object) -> str:
        out = []
        for op, arg in items:  # type: ignore[attr-defined]
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "SUBPATTERN":
                out.append(walk(arg[-1]))
            elif name == "BRANCH":
                out.append(walk(arg[1][0]))
            elif name in ("MAX_REPEAT", "MIN_REPEAT") and arg[0] > 0:
                out.append(walk(arg[2]) * arg[0])
            elif name == "IN":  # a class: its first literal, or a space for \s and the like
                out.append(next((chr(a) for o, a in arg if str(o) == "LITERAL"), " "))
            elif name == "ANY":
                out.append("x")
        return "".join(out)

    return walk(parser.parse(pattern))


@pytest.mark.parametrize("pattern", literal(rp.MOBILE_FOOTERS))
def test_mobile_and_app_footers(pattern: str) -> None:
    footer = shortest_example(pattern.replace("{device}", "iPhone"))
    assert footer.strip(), pattern
    assert extract_reply(f"{NEW}\n\n{footer}\n") == NEW, footer

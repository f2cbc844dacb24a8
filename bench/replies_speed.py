"""Worst-case speed of reply extraction on adversarial 1 MB bodies.

Run from anywhere: ``python bench/replies_speed.py [--runs N] [--only SUBSTRING]``.

Each input is timed through ``smtp.extract_reply`` twice: as a ``str`` body and as the same
content inside a raw RFC 822 message (``bytes``). Every time is the best of several runs
(``time.perf_counter``) and is reported beside a baseline measured in the same run on the same
input: the work no extractor can avoid (decoding the bytes, one ``str.splitlines()`` and one
``str.lower()`` pass). The budget is 50 ms per input; the table is a report and the script
always exits 0.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smtp import extract_reply

SIZE = 1_000_000
BUDGET_MS = 50.0
HEAD = "From: a@example.com\r\nTo: b@example.com\r\nSubject: Re: x\r\nMIME-Version: 1.0\r\n"


def _fill(unit: str, prefix: str = "") -> str:
    """`prefix` followed by `unit` repeated up to SIZE characters."""
    return prefix + unit * max(1, (SIZE - len(prefix)) // len(unit))


def _prose() -> str:
    sentence = "The importer finished overnight and the dashboards look right to me. "
    paragraph = (sentence * 4).strip()
    return _fill(paragraph + "\n" + paragraph + "\n\n")


def _nested_divs() -> str:
    return "<html><body>" + _fill("<div>x ") + "</body></html>"


def _deep_blockquotes() -> str:
    return "<div>Yes.</div>" + "<blockquote>q " * (SIZE // 15)


def _html_reply() -> str:
    quoted = "<p>" + "An earlier message line. " * 20 + "</p>"
    return (
        '<div dir="ltr">Sounds good.</div><div class="gmail_quote"><blockquote>'
        + _fill(quoted)
        + "</blockquote></div>"
    )


def _long_quote_reply() -> str:
    return _fill(
        "> an earlier message line that was quoted in full\n",
        "Yes.\n\nOn Mon, 4 Mar 2024 at 09:00, Ana <ana@example.com> wrote:\n",
    )


CASES: dict[str, Callable[[], str]] = {
    "plain prose": _prose,
    "alternating > q / answer": lambda: _fill("> q\nanswer\n"),
    "lines of dashes": lambda: _fill("-" * 79 + "\n"),
    "'On 1 2 3' lines, no wrote": lambda: _fill("On 1 2 3 4 5\n"),
    "'date email x:' lines": lambda: _fill("On 1 Mar 2024 12:00 a@b.co x:\n"),
    "'-- ' lines": lambda: _fill("-- \n"),
    "100k short lines": lambda: _fill("ok\n\n\n", "Yes.\n")[: SIZE // 3],
    "single line, no newline": lambda: _fill("word "),
    "single line of '>'": lambda: ">" * SIZE,
    "single line of digits": lambda: _fill("1 2:30 "),
    "'wrote:' every line": lambda: _fill("a@b.c 10:00 wrote:\n", "Reply\n"),
    "header fields": lambda: _fill("From: a\nTo: b\n"),
    "colons everywhere": lambda: _fill("a: b: c: d: e: f: g: h:\n"),
    "underscores then fields": lambda: _fill("____\nFrom: x\n"),
    "short answer, long quote": _long_quote_reply,
    "nested <div> html": _nested_divs,
    "deep <blockquote> html": _deep_blockquotes,
    "gmail html reply": _html_reply,
}


def _raw(body: str) -> bytes:
    html = body.lstrip().startswith("<")
    ctype = "text/html" if html else "text/plain"
    encoded = base64.encodebytes(body.encode("utf-8")).decode("ascii")
    return (
        HEAD
        + f"Content-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded.replace("\n", "\r\n")
    ).encode("ascii")


def _many_parts() -> bytes:
    part = "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nA line of text in a part.\r\n"
    parts = part * (SIZE // len(part))
    return (
        HEAD + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + "--b--\r\n"
    ).encode("ascii")


def _best(func: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _baseline(message: str | bytes) -> None:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    text.splitlines()
    text.lower()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="best of N runs (default 5)")
    parser.add_argument("--only", default="", help="only cases whose name contains this")
    args = parser.parse_args(argv)

    inputs: list[tuple[str, str | bytes]] = []
    for name, build in CASES.items():
        body = build()
        inputs.append((f"{name} (str)", body))
        inputs.append((f"{name} (raw base64)", _raw(body)))
    inputs.append(("many MIME parts (raw)", _many_parts()))

    print(f"{'input':<40} {'KiB':>6} {'base ms':>8} {'ms':>8} {'ratio':>7}  result")
    worst = 0.0
    for name, message in inputs:
        if args.only not in name:
            continue
        base = _best(lambda m=message: _baseline(m), args.runs)
        took = _best(lambda m=message: extract_reply(m), args.runs)
        worst = max(worst, took)
        verdict = "PASS" if took < BUDGET_MS else "FAIL"
        ratio = took / base if base else float("inf")
        size = len(message) // 1024
        print(f"{name:<40} {size:>6} {base:>8.1f} {took:>8.1f} {ratio:>6.1f}x  {verdict}")
    print(f"worst {worst:.1f} ms (budget {BUDGET_MS:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

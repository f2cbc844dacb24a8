"""Plain-text reply trimming: keep only what the member newly wrote.

The text is scanned line by line for the first *boundary* after some new text: an attribution
("On <date>, <name> wrote:"), an Outlook header block, an "-----Original Message-----" or
forward separator, a `-- ` signature, an app footer or a legal notice. Everything from there on
is quoted history. `>`-quoted runs before that point are removed, except in an inline reply,
where each answer keeps the one quoted line it answers.

Every pattern is applied to a single line (or a window of at most a few short lines), and
long lines are skipped. The work is also bounded outright (see `_SCAN_CHARS`, `_SCAN_LINES` and
`_CANDIDATE_BUDGET`): only the top of a body is scanned, because the new text and the first quote
boundary are always near the top, and whatever lies below the scanned region is kept verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from smtp import reply_patterns as rp


@dataclass(frozen=True)
class Reply:
    text: str
    quoted: str
    confident: bool


class _Anchor(IntEnum):
    """What a removal relied on; a cut that is only a GUESS deserves a person's check."""

    NONE = 0
    GUESS = 1  # signature delimiter, app footer, legal notice, list footer
    QUOTE = 2  # attribution, `>` block, header block, separator, forward marker


# Lines longer than this are never attribution, header or footer lines; skipping them keeps
# pathological input cheap.
_MAX_MARKER_LINE = 400
_ATTRIBUTION_WINDOW = 6
# The scanned region: at most this many characters (rounded down to a whole line, but never less
# than the first line) and this many lines. Everything below it is kept verbatim in the text.
_SCAN_CHARS = 100_000
_SCAN_LINES = 1_000
# Lines that pass the cheap pre-filter and get the full set of checks. Real replies have a few
# dozen; once the budget is spent the scan stops and the rest is kept, like text below the region.
_CANDIDATE_BUDGET = 300
# Non-blank lines below a guessed cut (signature, footer) searched for a quote structure.
_LOOKAHEAD = 8


def _alternation(words: tuple[str, ...]) -> str:
    unique = sorted(set(words), key=len, reverse=True)
    return "|".join(re.escape(w) for w in unique)


def _is_cjk(word: str) -> bool:
    return any(ord(ch) >= 0x2E80 for ch in word)


_LATIN_VERBS = _alternation(tuple(v for v in rp.ATTRIBUTION_VERBS if not _is_cjk(v)))
_CJK_VERBS = _alternation(tuple(v for v in rp.ATTRIBUTION_VERBS if _is_cjk(v)))

# The verb, then optionally a name/date/address of bounded length, then the closing colon.
# Matched against lower-cased text: a case-sensitive alternation is several times faster than
# an IGNORECASE one.
_ATTR_END = re.compile(
    rf"(?:(?:^|(?<=[\s,.)>\"'»]))(?:{_LATIN_VERBS.lower()})|(?:{_CJK_VERBS}))"
    r"(?:\s.{0,160})?\s*[:：]$"
)
# Only the end of a window can hold the verb and what follows it.
_ATTR_END_REACH = 170 + max(len(v) for v in rp.ATTRIBUTION_VERBS)
_VERB = re.compile(f"{_LATIN_VERBS.lower()}|{_CJK_VERBS}")


def _attr_end(text: str) -> bool:
    lower = text.lower()
    return _ATTR_END.search(lower, max(0, len(lower) - _ATTR_END_REACH)) is not None


# "---- John Smith wrote ----": dash-decorated attributions carry no colon.
_ATTR_DASHED = re.compile(rf"(?:^|\s|,)(?:{_LATIN_VERBS})\s*[:：]?$", re.IGNORECASE)
_ATTR_START = re.compile(rf"^(?:{_alternation(rp.ATTRIBUTION_STARTS)})\s", re.IGNORECASE)
# Gmail's "2014-03-20 8:48 GMT+01:00 Name <addr>:" and "2013/7/20 Name <addr>".
_ISO_DATE_START = re.compile(r"^\d{4}\s?[-/.年]\s?\d{1,2}\s?[-/.月]\s?\d{1,2}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_GMT = re.compile(r"GMT\s?[+-]\d")
_ADDRESS_COLON = re.compile(r"@[\w-]+(?:\.[\w-]+)+[)\]>]{0,3}\s*[:：]$")
_TIME = re.compile(r"\d:\d\d")
_DIGIT = re.compile(r"\d")


def _no_colon_on(window: str) -> bool:
    # "On Wed, 14 Nov 2018 08:14:43 -0200 John Doe <john@doe.com> wrote" (colon lost).
    return (
        window.startswith("On ")
        and window.endswith(" wrote")
        and "@" in window
        and _TIME.search(window) is not None
    )


# "reply On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:" on one line.
_SHARED_LINE = re.compile(r"^(?P<pre>.*?\S)\s*(?:-{2,}\s*)?(?<!\w)On\s[^\n]{0,300}$")
# Decoration around a dashed attribution ("---- John Smith wrote ----"); runs of at least two.
_DECORATION = "-–—=_* \t\u00a0"

_FIELD_END = r"\s*[*_]*\s*[:：]"
_FROM_FIELD = re.compile(
    rf"^\s*[*_]*\s*(?:{_alternation(rp.HEADER_FROM_FIELDS)}){_FIELD_END}", re.IGNORECASE
)
_DATE_FIELD = re.compile(
    r"^\s*[*_]*\s*(?:Date|Sent|Datum|Gesendet|Envoyé|Data|Inviato|Fecha|Enviado|Verzonden"
    r"|Skickat|Sendt|Lähetetty|Wysłano|Отправлено|Дата)" + _FIELD_END,
    re.IGNORECASE,
)
_ANY_FIELD = re.compile(
    rf"^\s*[*_]*\s*(?:{_alternation(rp.HEADER_FROM_FIELDS + rp.HEADER_OTHER_FIELDS)}){_FIELD_END}",
    re.IGNORECASE,
)
# Outlook's HTML-to-text conversion can put a whole header block on one line.
_INLINE_FIELDS = re.compile(
    r"\s[*_]*(?:Sent|Date|To|Subject|Gesendet|An|Betreff|Envoyé|Objet|Inviato|Oggetto"
    r"|Enviado|Asunto|Para|Verzonden|Onderwerp)[*_]*\s?:",
    re.IGNORECASE,
)

_SEPARATOR = re.compile(
    rf"^\s*[-_=*]{{2,}}\s*(?:{_alternation(rp.ORIGINAL_MESSAGE_PHRASES)})\s*[:：]?\s*[-_=*]{{2,}}\s*$",
    re.IGNORECASE,
)
_FORWARD_INTRO = re.compile(
    rf"^\s*(?:{_alternation(rp.FORWARD_INTROS)})\s*[:：]?\s*$", re.IGNORECASE
)
_DEVICE = r"[^\s,;:]+(?: [^\s,;:]+){0,5}?"
_FOOTER = re.compile(
    r"^\s*(?:"
    + "|".join(p.replace("{device}", _DEVICE) for p in rp.MOBILE_FOOTERS)
    + r")\s*[.!]?\s*(?:<[^<>\s]*>)?\s*$",
    re.IGNORECASE,
)
# A link that Outlook's and Mail's HTML-to-text conversion glues to a word inside a footer
# ("Sent from Mail<https://go.microsoft.com/fwlink/?LinkId=550986> for Windows").
_GLUED_LINK = re.compile(r"<[a-z][a-z0-9+.-]*:[^<>\s]*>", re.IGNORECASE)


def _is_footer(stripped: str) -> bool:
    """Whether a stripped line is a whole app/mobile footer, links inside it ignored."""
    if len(stripped) > _MAX_MARKER_LINE:
        return False
    if "<" in stripped:
        stripped = _GLUED_LINK.sub("", stripped)
    return _FOOTER.match(stripped) is not None


_LEGAL = re.compile(rf"^\s*(?:{_alternation(rp.LEGAL_NOTICE_STARTS)})", re.IGNORECASE)
_LIST_FOOTER = re.compile(_alternation(rp.LIST_FOOTER_WORDS), re.IGNORECASE)
_UNDERSCORES = re.compile(r"^\s*_{2,}\s*$")
_LONG_RULE = re.compile(r"^\s*_{10,}\s*$")
_SIG_DELIMITER = re.compile(r"^(?:--|---|-- )\s*$")
# Invisible characters some clients leave on their own line (zero-width, BOM, Gmail's "ᐧ").
_INVISIBLE = re.compile(r"^[\s\u200b\u200c\u200d\u2060\ufeff\u1427]*$")
# Bidirectional formatting characters (LRM/RLM, embeddings, overrides, isolates, ALM).
_BIDI = re.compile("[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


_LETTER = re.compile(r"[^\W\d_]")
_FOOTER_FIRST_WORDS = frozenset(
    p.split(" ", 1)[0].split("(", 1)[0].lower() for p in rp.MOBILE_FOOTERS if p[0].isalpha()
)
_LEGAL_FIRST_WORDS = frozenset(
    p.split(" ", 1)[0].rstrip(":").lower() for p in rp.LEGAL_NOTICE_STARTS
)


def _could_close(line: str) -> bool:
    tail = line[-8:].rstrip()
    return tail.endswith((":", "：", "-", "wrote", "ote ----")) or (
        line[:1].isdigit() and len(line) <= _MAX_MARKER_LINE
    )


def _maybe_marker(stripped: str) -> bool:
    """Cheap test: could this line be a boundary of any kind? False for ordinary prose."""
    if len(stripped) > _MAX_MARKER_LINE:
        return False
    first = stripped[0]
    if first in "-_=*<>—–" or first.isdigit() or ":" in stripped or "：" in stripped:
        return True
    if _INVISIBLE.match(stripped):
        return True
    word = stripped.split(" ", 1)[0].rstrip(":,.").lower()
    if word in _FOOTER_FIRST_WORDS or word in _LEGAL_FIRST_WORDS:
        return True
    return any(ord(ch) >= 0x2E80 for ch in stripped[-12:]) or stripped.endswith("wrote")


def _strip_decoration(line: str) -> str:
    # str.strip instead of a regex: a regex anchored at the end retries at every position of
    # a long run of dashes, which made lines of dashes quadratic.
    text = line.strip()
    left = text.lstrip(_DECORATION)
    if len(text) - len(left) >= 2:
        text = left
    right = text.rstrip(_DECORATION)
    if len(text) - len(right) >= 2:
        text = right
    return text.strip()


def _attribution_end(lines: list[str], verbs: list[bool], i: int) -> int:
    """Index of the last line of an attribution starting at line `i`, or -1.

    `verbs[k]` says whether line k contains an attribution verb; a window without one can
    only be a verb-less (address-before-colon) attribution, which is much cheaper to test.
    """
    end = _attribution_window_end(lines, verbs, i)
    if end <= i:
        return end
    # A window may swallow the end of the paragraph above a wrapped attribution (or body lines
    # that merely begin like one: "On Friday I'm out."); the attribution then really starts
    # on a later line. The scan reaches that line next, so the latest plausible start wins.
    first = lines[i].strip()
    start_like = _start_like(first)
    for k in range(i + 1, end + 1):
        if start_like and not _plausible_restart(lines, i, k):
            continue
        if _attribution_window_end(lines, verbs, k) == end:
            return -1
    return end


def _start_like(line: str) -> bool:
    return bool(
        _ATTR_START.match(line) or _DIGIT.search(line, 0, 12) is not None or line.startswith("-")
    )


def _plausible_restart(lines: list[str], i: int, k: int) -> bool:
    """Whether line `k` can start an attribution that a window from line `i` swallowed.

    Lines i..k-1 belong to the attribution only if they read as its wrapped beginning: one
    paragraph with it, and not a sentence of prose ("On Friday I'm out, back on Monday.").
    """
    before = lines[k - 1].strip().lstrip("> ")
    if not before:
        return True  # a paragraph start: the lines above are not wrapped into this one
    line = lines[k].strip().lstrip("> ")
    if not _start_like(line):
        return False
    if before.endswith((".", "!", "?", "…")) and _ABBREVIATION_END.search(before) is None:
        return True
    head = " ".join(lines[j].strip() for j in range(i, k))
    # The wrapped start of an attribution carries its date or address.
    return "@" not in head and _DIGIT.search(head) is None


# A wrapped attribution line can end in a day number or an initial ("4.", "J."): no sentence end.
_ABBREVIATION_END = re.compile(r"(?:^|\s)(?:\w|\d{1,2})\.$")


def _attribution_window_end(lines: list[str], verbs: list[bool], i: int) -> int:
    first = lines[i].strip()
    if not first or first.startswith(">") or len(first) > _MAX_MARKER_LINE:
        return -1
    dashed = first.startswith("--") or first.endswith("--")
    starts_like = bool(_ATTR_START.match(first))
    if not (dashed or starts_like or "@" in first or _DIGIT.search(first) is not None):
        return -1
    parts: list[str] = []
    for j in range(i, min(len(lines), i + _ATTRIBUTION_WINDOW)):
        raw = lines[j].strip()
        if len(raw) > _MAX_MARKER_LINE:
            return -1
        if not raw:
            if not starts_like:
                return -1
            continue
        if j > i:
            raw = raw.lstrip("> ")
        parts.append(raw)
        window = _strip_decoration(" ".join(parts))
        if dashed and j == i and verbs[i] and _ATTR_DASHED.search(window):
            return j
        if raw.endswith((":", "：")) and _is_attribution(window, first, any(verbs[i : j + 1])):
            return j
        if j == i and _ISO_DATE_START.match(window) and ("@" in window or _GMT.search(window)):
            return j
        if j == i and starts_like and _no_colon_on(window):
            return j
    return -1


def _is_attribution(window: str, first: str, verb: bool) -> bool:
    if len(window) > 2 * _MAX_MARKER_LINE:
        return False
    has_anchor = "@" in window or _DIGIT.search(window) is not None or _ATTR_START.match(first)
    if not has_anchor:
        return False
    if verb and _attr_end(window):
        return True
    # Gmail in CJK locales ("2014年3月20日 8:48 Name <addr>:"), Yandex, mail.ru and others
    # have no verb at all: a date, a name and an address right before the colon.
    return bool(_ADDRESS_COLON.search(window)) and _DIGIT.search(window) is not None


def _header_block(lines: list[str], i: int) -> bool:
    line = lines[i]
    if len(line) > 4 * _MAX_MARKER_LINE:
        return False
    if not (_FROM_FIELD.match(line) or _DATE_FIELD.match(line)):
        return False
    if _FROM_FIELD.match(line) and len(_INLINE_FIELDS.findall(line)) >= 2:
        return True
    fields = 1
    blanks = 0
    for j in range(i + 1, min(len(lines), i + 10)):
        nxt = lines[j]
        if not nxt.strip():
            blanks += 1
            if blanks > 2:
                break
            continue
        if _ANY_FIELD.match(nxt) and len(nxt) <= _MAX_MARKER_LINE:
            fields += 1
            if fields >= 2:
                return True
    return False


def _next_nonblank(lines: list[str], start: int) -> int:
    for j in range(start, len(lines)):
        if lines[j].strip():
            return j
    return -1


_SUPERCITE = re.compile(r"^\s*[A-Za-z]{1,10}>")


def _is_quote(line: str) -> bool:
    stripped = line.lstrip()
    if stripped.startswith(">"):
        return True
    return ">" in stripped[:11] and bool(_SUPERCITE.match(stripped))


def _quote_flags(lines: list[str]) -> list[bool]:
    flags = [_is_quote(line) for line in lines]
    # A quoted line that the sender's client re-wrapped leaves an unquoted fragment between
    # two quoted lines; it belongs to the quote.
    for i in range(1, len(lines) - 1):
        if not flags[i] and lines[i].strip() and flags[i - 1] and _is_quote(lines[i + 1]):
            flags[i] = True
    return flags


def _is_boundary_line(line: str) -> bool:
    stripped = line.strip()
    return bool(
        _SIG_DELIMITER.match(stripped)
        or _is_footer(stripped)
        or (len(stripped) <= _MAX_MARKER_LINE and _LEGAL.match(line))
        or _SEPARATOR.match(line)
        or _UNDERSCORES.match(line)
    )


def _quote_run_end(lines: list[str], flags: list[bool], start: int) -> int:
    """Index just past the run of quoted (and blank) lines beginning at `start`."""
    end = start
    j = start
    while j < len(lines):
        if flags[j]:
            end = j + 1
        elif lines[j].strip():
            break
        j += 1
    return end


def _hard_boundary(lines: list[str], i: int) -> _Anchor:
    """Whether line `i` starts quoted history, and how sure that is (NONE: it does not)."""
    line = lines[i]
    stripped = line.strip()
    has_letter = _LETTER.search(stripped) is not None
    if has_letter and (_SEPARATOR.match(line) or _FORWARD_INTRO.match(line)):
        return _Anchor.QUOTE
    if _LONG_RULE.match(line):
        return _Anchor.QUOTE
    if _UNDERSCORES.match(line):
        k = _next_nonblank(lines, i + 1)
        if k >= 0 and _ANY_FIELD.match(lines[k]):
            return _Anchor.QUOTE
        return _Anchor.GUESS if k >= 0 and _LIST_FOOTER.search(lines[k]) else _Anchor.NONE
    if len(stripped) <= _MAX_MARKER_LINE and _LEGAL.match(line):
        return _Anchor.GUESS
    if _RULE.match(line) or (has_letter and _DASHED_TITLE.match(line)):
        # "======" or "-------- Oprindelig besked --------" followed by a header block.
        k = _next_nonblank(lines, i + 1)
        found = k >= 0 and (_header_block(lines, k) or _dated_header(lines, k))
        return _Anchor.QUOTE if found else _Anchor.NONE
    if _header_block(lines, i) or (
        i > 0 and _RULE.match(lines[i - 1]) is not None and _dated_header(lines, i)
    ):
        return _Anchor.QUOTE
    return _Anchor.NONE


_DATED_FIELD = re.compile(r"^\s*[\w ]{2,20}\s?:\s*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")


def _dated_header(lines: list[str], k: int) -> bool:
    # "Message du : 12/12/2016 13:20" followed by localised fields.
    return bool(_DATED_FIELD.match(lines[k])) and _next_field(lines, k + 1)


def _next_field(lines: list[str], start: int) -> bool:
    k = _next_nonblank(lines, start)
    return k >= 0 and bool(_ANY_FIELD.match(lines[k]))


_RULE = re.compile(r"^\s*(?:[-=_*]\s*){4,}$")
_DASHED_TITLE = re.compile(r"^\s*[-=]{3,}\s*\w[\w' ]{0,40}\s*[-=]{3,}\s*$")


def _forward_header_end(lines: list[str], i: int) -> int:
    """Index just past a forward separator and the header block under it."""
    k = _next_nonblank(lines, i + 1)
    if k < 0 or not _ANY_FIELD.match(lines[k]):
        return i + 1
    j = k
    while j < len(lines) and lines[j].strip():
        j += 1
    return j


def _include_rules_above(lines: list[str], i: int) -> int:
    """Move a cut up over blank lines and horizontal rules that introduce the quoted part."""
    j = i
    while j > 0 and (not lines[j - 1].strip() or _RULE.match(lines[j - 1])):
        j -= 1
    while j < i and not lines[j].strip():
        j += 1
    return j


def _quoted_line(line: str) -> str:
    stripped = line.strip()
    if stripped.startswith(("> ", ">>")):
        return stripped
    return "> " + stripped[1:].lstrip()


def split_scan_region(text: str) -> tuple[str, str]:
    """The scanned head of a body and the rest below it, which starts at a line start."""
    if len(text) <= _SCAN_CHARS and text.count("\n") < _SCAN_LINES:
        return text, ""
    end = text.rfind("\n", 0, _SCAN_CHARS) + 1 or text.find("\n") + 1 or len(text)
    newline = -1
    for _ in range(_SCAN_LINES):
        newline = text.find("\n", newline + 1, end)
        if newline < 0:
            break
    else:
        end = newline + 1
    return text[:end], text[end:]


@dataclass
class _Scan:
    flags: list[bool]
    dropped: list[bool]
    cut: int  # first line of the quoted history; `end` when there is none
    end: int  # lines from here on were not scanned: the candidate budget ran out
    anchor: _Anchor  # the strongest structure a cut or drop relied on
    verbs: list[bool]  # per line: contains an attribution verb


def _guess_cut(
    lines: list[str], verbs: list[bool], flags: list[bool], i: int, anchor: _Anchor
) -> _Anchor:
    """The anchor of a cut at a signature, footer or notice on line `i`: still QUOTE when a
    quote structure follows within a few lines (a footer right above an attribution)."""
    if anchor == _Anchor.QUOTE:
        return anchor
    seen = 0
    for k in range(i + 1, len(lines)):
        if not lines[k].strip():
            continue
        if (
            flags[k]
            or _attribution_end(lines, verbs, k) >= 0
            or _hard_boundary(lines, k) == _Anchor.QUOTE
        ):
            return _Anchor.QUOTE
        seen += 1
        if seen >= _LOOKAHEAD:
            break
    return _Anchor.GUESS


def _scan(lines: list[str]) -> _Scan:
    """Find the quote boundary and the lines above it that are not part of the new text."""
    n = len(lines)
    flags = _quote_flags(lines)
    dropped = [False] * n
    verbs = [
        len(line) <= _MAX_MARKER_LINE and _VERB.search(line.lower()) is not None for line in lines
    ]
    # Lines that could close an attribution window; most prose lines cannot, which lets the
    # scan skip the window checks for them.
    closers = [_could_close(line) for line in lines]
    anchor = _Anchor.NONE
    budget = _CANDIDATE_BUDGET
    has_text = False
    i = 0
    while i < n:
        line = lines[i]
        stripped = line.strip()
        if not stripped or flags[i]:
            i += 1
            continue
        if not _maybe_marker(stripped) and not any(closers[i : i + _ATTRIBUTION_WINDOW]):
            has_text = True
            i += 1
            continue
        budget -= 1
        if budget < 0:
            return _Scan(flags, dropped, i, i, anchor, verbs)
        if _INVISIBLE.match(line):
            dropped[i] = True
            i += 1
            continue
        if _SIG_DELIMITER.match(stripped) and has_text:
            return _Scan(flags, dropped, i, n, _guess_cut(lines, verbs, flags, i, anchor), verbs)
        if _is_footer(stripped):
            if has_text:
                anchor = _guess_cut(lines, verbs, flags, i, anchor)
                return _Scan(flags, dropped, i, n, anchor, verbs)
            anchor = max(anchor, _Anchor.GUESS)
            dropped[i] = True
            i += 1
            continue
        if (
            not has_text
            and _LETTER.search(stripped)
            and (_SEPARATOR.match(line) or _FORWARD_INTRO.match(line))
        ):
            # A forward with no note: the forwarded message itself is what was sent.
            end = _forward_header_end(lines, i)
            for j in range(i, end):
                dropped[j] = True
            anchor = _Anchor.QUOTE
            i = end
            continue
        boundary = _hard_boundary(lines, i)
        if boundary == _Anchor.GUESS:
            boundary = _guess_cut(lines, verbs, flags, i, anchor)
        if boundary and (has_text or not _LEGAL.match(line)):
            return _Scan(
                flags, dropped, _include_rules_above(lines, i), n, max(anchor, boundary), verbs
            )
        if len(stripped) <= _MAX_MARKER_LINE and stripped.endswith(("wrote:", "sent:")):
            shared = _SHARED_LINE.match(stripped)
            if shared and _attr_end(stripped):
                lines[i] = shared.group("pre").rstrip(" -")
                return _Scan(flags, dropped, i + 1, n, _Anchor.QUOTE, verbs)
        end = _attribution_end(lines, verbs, i)
        if end >= 0:
            anchor = _Anchor.QUOTE
            if not has_text:
                for j in range(i, end + 1):
                    dropped[j] = True
                i = end + 1
                continue
            k = _next_nonblank(lines, end + 1)
            if k >= 0 and flags[k] and lines[k].lstrip().startswith(">"):
                after = _next_nonblank(lines, _quote_run_end(lines, flags, k))
                answered = after >= 0 and not _is_boundary_line(lines[after])
                if answered and _attribution_end(lines, verbs, after) < 0:
                    for j in range(i, end + 1):
                        dropped[j] = True
                    i = end + 1
                    continue
            return _Scan(flags, dropped, i, n, anchor, verbs)
        has_text = True
        i += 1
    return _Scan(flags, dropped, n, n, anchor, verbs)


def for_matching(line: str) -> str:
    return _BIDI.sub("", line).replace("&nbsp;", " ").rstrip()


def trim_quoted_reply(text: str) -> Reply:
    """Split a plain-text reply into the newly written text and everything quoted around it."""
    normalised = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    head, tail = split_scan_region(normalised)
    lines = [line.rstrip() for line in head.split("\n")]
    # Markers are matched without bidi controls (Gmail wraps an RTL attribution in U+202B ...
    # U+202C) and with a literal "&nbsp;" read as a space (QQ Mail's text part); the kept
    # text keeps them as sent.
    match = lines
    if "&nbsp;" in head or _BIDI.search(head) is not None:
        match = [for_matching(line) for line in lines]
    scan = _scan(match)
    if match is not lines:
        for j in range(scan.cut):
            if match[j] != for_matching(lines[j]):
                lines[j] = match[j]  # the text before an attribution sharing its line
    kept = _resolve_quotes(
        match[: scan.cut], scan.flags[: scan.cut], scan.dropped[: scan.cut], lines[: scan.cut]
    )
    return _build_reply(normalised, lines, kept, scan, tail)


def _resolve_quotes(
    lines: list[str], flags: list[bool], dropped: list[bool], shown: list[str]
) -> list[str | None]:
    """Per line: the text to keep (possibly a rewritten quote line) or None to drop it.

    `lines` are the lines as matched, `shown` the same lines as sent (kept as they are)."""
    n = len(lines)
    runs: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if flags[i] and not dropped[i]:
            end = _quote_run_end(lines, flags, i)
            runs.append((i, end))
            i = end
        else:
            i += 1

    text_at = [j for j in range(n) if lines[j].strip() and not dropped[j] and not flags[j]]
    first_text = text_at[0] if text_at else n
    last_text = text_at[-1] if text_at else -1
    answered = [end <= last_text for _, end in runs]
    inline = sum(answered) >= 2
    if sum(answered) == 1:
        start = runs[answered.index(True)][0]
        prev = next((j for j in range(start - 1, -1, -1) if lines[j].strip()), -1)
        inline = prev >= 0 and not dropped[prev] and first_text < start

    out: list[str | None] = [None if dropped[j] else shown[j] for j in range(n)]
    for (start, end), is_answered in zip(runs, answered, strict=True):
        for j in range(start, end):
            out[j] = None
        if inline and is_answered:
            last = max(j for j in range(start, end) if flags[j] and _is_quote(lines[j]))
            out[last] = _quoted_line(lines[last])
    # Blank lines that only separated a removed attribution or quote from the next text go
    # with it, so the surrounding paragraphs keep their original spacing.
    removing = False
    for j in range(n):
        if out[j] is None:
            removing = True
        elif not lines[j].strip() and removing:
            out[j] = None
        else:
            removing = False
    return out


def _visible(text: str) -> int:
    # Characters that are not layout; str.count keeps this a few C-level passes on any size.
    return len(text) - sum(text.count(ch) for ch in " \t\n")


def _seen_quote_marker(lines: list[str], verbs: list[bool], rest: str) -> bool:
    """Whether the text has a quote marker (a `>` line, an attribution-like line, an
    "Original Message" separator) that could have been acted on."""
    for line, verb in zip(lines, verbs, strict=True):
        stripped = line.strip()
        if stripped.startswith(">") or "original message" in stripped.lower():
            return True
        if verb and stripped.endswith((":", "：")) and ("@" in line or _DIGIT.search(line)):
            return True
    # The unscanned rest can be a megabyte: only C-level substring checks here.
    lower = rest.lower()
    return (
        lower.startswith(">") or "\n>" in lower or "wrote:" in lower or "original message" in lower
    )


def _build_reply(
    normalised: str, lines: list[str], kept: list[str | None], scan: _Scan, tail: str
) -> Reply:
    text_lines = [line for line in kept if line is not None]
    while text_lines and _INVISIBLE.match(text_lines[-1]):
        text_lines.pop()
    new_text = "\n".join(text_lines).strip("\n")
    new_text = "\n".join(line.rstrip() for line in new_text.split("\n")).strip()
    removed = [lines[j] for j, line in enumerate(kept) if line is None or line != lines[j]]
    # Below the cut (or below the scanned region when there is no cut) nothing was examined.
    rest = "\n".join(lines[scan.cut :]) + tail
    if scan.cut < scan.end:
        removed.append(rest)
    elif rest.strip():
        new_text = (new_text + "\n" + rest).strip()
    quoted = "\n".join(removed).strip()

    anchor = scan.anchor
    if any(scan.flags[: scan.cut]):
        anchor = _Anchor.QUOTE
    total = _visible(normalised)
    removed_chars = total - _visible(new_text)
    if not new_text:
        confident = False
    elif removed_chars > 0.9 * total:
        confident = anchor == _Anchor.QUOTE
    elif not quoted:
        scanned = lines[: scan.end]
        confident = not _seen_quote_marker(scanned, scan.verbs[: scan.end], rest)
    else:
        confident = True
    return Reply(text=new_text, quoted=quoted, confident=confident)

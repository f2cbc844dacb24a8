"""Render a planned digest into the message its reader gets.

The sender renders a digest from its plan (`app/digest_plan.py`) when it sends it. One
`DigestLayout` serves a whole sending pass (or a benchmark), and shares what readers
have in common, at three levels:

* each update's Markdown is rendered once, and each part of the templates
  (`templates/email/digest.*`: an item, a heading, the frame) is rendered, CSS-inlined
  and quoted-printable encoded once (`app.render.QPPiece`), with slots for one reader's
  values;
* a run of the body that many digests show alike (`_Part`: a thread's section, an item
  "for you", a team's heading) is put together once, with slots for the times it shows
  and for its link numbers, which count from the top of the digest it is in: a thread's
  section is the same in a digest with one more item "for you" above it, only numbered
  further on;
* members of a team mostly get the same digest: the same items, in the same order. A
  digest is composed once and kept as one %-format of the whole message
  (`app.render.alternative_format`), with a `%s` wherever a reader's values go (their
  headers, their name, a time in their zone, their signed reply address in a thread),
  so the next reader with the same digest signs their addresses and gets their message
  from one format.

`%` in the templates' output is escaped as `%%` for each format it goes through.
"""

from __future__ import annotations

import hashlib
import html
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import format_datetime
from operator import itemgetter
from typing import Any

from markupsafe import Markup
from sqlmodel import Session, select

from app import store
from app.digest_plan import DigestPlan, PausedMember
from app.links import LinkRule
from app.models import OutboundMessage, Person
from app.render import (
    INLINER,
    QPPiece,
    address_header,
    alternative_format,
    header_value,
    message_head,
    qp_value,
    render_markdown,
    slot,
    template_env,
)
from app.settings import Settings
from app.tokens import (
    UNSUBSCRIBE_PURPOSE,
    ReplyKeys,
    reply_addresses_for,
    sign_address_link,
    sign_link,
)
from digest.compose import Digest, DigestEntry, ThreadSection, compose, cut_long, local_time
from digest.updates import UpdateCache

UNSUBSCRIBE_LINK_LIFETIME = timedelta(days=400)
_BLOCKER = "Blocker"
# The slots the templates' pieces leave for one reader's values.
_TIME, _REPLY, _ARCHIVE, _COUNT, _LINK, _NUMBER, _URL = (
    slot(n) for n in ("time", "reply", "archive", "count", "link", "number", "url")
)
# Composed bodies kept per pass, each a digest's size (about 100 KB): those more than one
# reader asked for, and (so that the second reader finds it) the newest ones only one did.
KEPT_BODIES = 256
KEPT_NEW_BODIES = 128
# Encoded parts kept per pass, in bytes: a thread's section is a few KB.
KEPT_PART_BYTES = 16 * 2**20

# In a part or body being put together: encoded text; a thread whose reply address goes
# there (int); an instant shown in the reader's zone (datetime); in a part's text, a link
# number (`_Link`).
Segment = bytes | int | datetime


class _Link(int):
    """In a part's text: the index of the link target whose number goes there."""


@dataclass(frozen=True)
class _Part:
    """A run of a digest body, the same in every digest that shows it.

    Its text is a %-format with a `%s` for each link number (`pick` takes the values
    from the numbers of `targets`) and a `%%s` for each time (`times`), so that what a
    body makes of it is a %-format for the times. Its HTML is a %-format with a `%s`
    for each of `slots`: a time, or a thread whose reply address goes there."""

    text: bytes
    links: tuple[int, ...]  # for each `%s` in `text`, the index of its target
    pick: Callable[[Sequence[bytes]], Any]  # the numbers of `targets` -> `text`'s values
    times: tuple[datetime, ...]
    html: bytes
    slots: tuple[datetime | int, ...]
    targets: tuple[str | int, ...]  # URLs and thread ids, in the order the text shows them
    threads: tuple[tuple[int, str], ...]  # (thread id, team slug) of the reply addresses
    size: int  # bytes, for `KEPT_PART_BYTES`

    @classmethod
    def joined(cls, parts: Sequence[_Part]) -> _Part:
        """`parts` one after the other, as one part; no two of them link to the same
        target."""
        links: list[int] = []
        targets: list[str | int] = []
        for part in parts:
            links += (len(targets) + link for link in part.links)
            targets += part.targets
        return cls(
            text=b"".join(part.text for part in parts),
            links=tuple(links),
            pick=_picker(links),
            times=tuple(t for part in parts for t in part.times),
            html=b"".join(part.html for part in parts),
            slots=tuple(s for part in parts for s in part.slots),
            targets=tuple(targets),
            threads=tuple(dict(t for part in parts for t in part.threads).items()),
            size=sum(part.size for part in parts),
        )


@dataclass
class _PartBuilder:
    """Collects a part's segments: in its text a `_Link` is the index of a link target
    (`ref`)."""

    text: list[Segment] = field(default_factory=list)
    html: list[Segment] = field(default_factory=list)
    targets: dict[str | int, int] = field(default_factory=dict)
    threads: dict[int, str] = field(default_factory=dict)

    def ref(self, target: str | int) -> _Link:
        return _Link(self.targets.setdefault(target, len(self.targets)))

    def part(self) -> _Part:
        text, markup = _merged(self.text), _merged(self.html)
        text_slots = text[1::2]
        text_format = text[0].replace(b"%", b"%%%%")  # type: ignore[union-attr]
        for at, literal in zip(text_slots, text[2::2], strict=True):
            text_format += b"%s" if isinstance(at, _Link) else b"%%s"
            text_format += literal.replace(b"%", b"%%%%")  # type: ignore[union-attr]
        html_format = b"%s".join(s.replace(b"%", b"%%") for s in markup[0::2])  # type: ignore[union-attr]
        links: list[int] = [at for at in text_slots if isinstance(at, _Link)]  # type: ignore[misc]
        return _Part(
            text=text_format,
            links=tuple(links),
            pick=_picker(links),
            times=tuple(at for at in text_slots if not isinstance(at, _Link)),  # type: ignore[misc]
            html=html_format,
            slots=tuple(markup[1::2]),  # type: ignore[arg-type]
            targets=tuple(self.targets),
            threads=tuple(self.threads.items()),
            size=len(text_format) + len(html_format),
        )


def _picker(indices: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function picking `indices` out of a sequence, as a tuple (what `%` takes)."""
    if not indices:
        return lambda _: ()
    if len(indices) == 1:  # itemgetter gives the item itself, not a tuple of one
        [index] = indices
        return lambda values: (values[index],)
    return itemgetter(*indices)


class _Numbers:
    """Link numbers and counts, encoded once."""

    def __init__(self) -> None:
        self._encoded: list[bytes] = []

    def get(self, number: int) -> bytes:
        return self.run(number, 1)[0]

    def run(self, first: int, count: int) -> list[bytes]:
        """The encoded numbers `first`, `first` + 1, ... (`count` of them)."""
        encoded = self._encoded
        while len(encoded) < first + count:
            encoded.append(qp_value(str(len(encoded))))
        return encoded[first : first + count]


@dataclass
class _Composer:
    """Joins parts into a body; link numbers count in the order the text shows them."""

    numbers: _Numbers
    text: list[bytes] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    html: list[bytes] = field(default_factory=list)
    slots: list[datetime | int] = field(default_factory=list)
    threads: dict[int, str] = field(default_factory=dict)
    links: dict[str | int, int] = field(default_factory=dict)  # URL or thread id -> number

    def add(self, part: _Part) -> None:
        links, targets = self.links, part.targets
        if links.keys().isdisjoint(targets):  # the usual case: numbered on from here
            first = len(links) + 1
            links.update(zip(targets, range(first, first + len(targets)), strict=True))
            numbers = self.numbers.run(first, len(targets))
        else:  # a thread whose reply link an item above (for you, a blocker) numbered
            number = self.numbers.get
            numbers = [number(links.setdefault(t, len(links) + 1)) for t in targets]
        self.text.append(part.text % part.pick(numbers))
        self.times.extend(part.times)
        self.html.append(part.html)
        self.slots.extend(part.slots)
        self.threads.update(part.threads)


@dataclass
class _Body:
    """A composed digest, the same for every reader with the same items: the whole
    message as an `alternative_format`, and `pick`, which takes its values from a
    reader's values (`_READER`, then the times it shows in their zone, then their reply
    addresses in `threads`)."""

    message: bytes
    pick: Callable[[Sequence[bytes]], tuple[bytes, ...]]
    times: list[datetime]
    threads: dict[int, str]  # thread id -> team slug, for signing its reply address
    list_id: str
    single_thread: int | None  # the one thread a digest of one thread is about
    zones: dict[str, list[bytes]] = field(default_factory=dict)  # zone -> `times` there


# A reader's values, before the times and reply addresses: the message's header lines and
# boundary (`message_head`), their name and unsubscribe link in the text, then in HTML.
_HEAD, _BOUNDARY, _NAME, _UNSUBSCRIBE, _HTML_NAME, _HTML_UNSUBSCRIBE = range(6)
_READER = 6


class DigestLayout:
    """Renders planned digests for one sending pass; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.updates = UpdateCache()
        self._html = template_env(settings.templates_dir, "email").get_template("digest.html")
        self._text = template_env(settings.templates_dir, "email").get_template("digest.txt")
        self._css = (settings.templates_dir / "email" / "digest.css").read_text()
        self._pieces: dict[tuple[Any, ...], QPPiece] = {}
        self._entries: dict[int, DigestEntry] = {}
        self._labelled: dict[tuple[int, str], DigestEntry] = {}
        self._markdown: dict[int, Markup] = {}
        self._team_links: dict[int, list[LinkRule]] = {}
        self._links_of: dict[int, list[LinkRule]] = {}  # update id -> its team's patterns
        self._fixed: dict[Any, _Part] = {}
        self._items: dict[tuple[int, str], tuple[QPPiece, QPPiece]] = {}
        self._parts: OrderedDict[tuple[Any, ...], _Part] = OrderedDict()
        self._part_bytes = 0
        self._times: dict[tuple[datetime, str], bytes] = {}
        self._numbers = _Numbers()
        self._link_heads: dict[int, bytes] = {}
        self._url_lines: dict[str, bytes] = {}
        self._bodies: OrderedDict[tuple[Any, ...], _Body] = OrderedDict()
        self._new_bodies: OrderedDict[tuple[Any, ...], _Body] = OrderedDict()
        self._keys: ReplyKeys | None = None
        self._signing_secret: str | None = None
        self._sender = address_header("Tidings", f"digest@{settings.mail_domain}")
        self._dates: dict[datetime, str] = {}

    def render(self, session: Session, row: OutboundMessage) -> bytes:
        """The message for the planned digest `row`, as it goes out."""
        if row.plan is None or row.person_id is None:
            raise ValueError(f"outbox row {row.id} is not a planned digest of a member")
        plan = DigestPlan.from_json(row.plan)
        name, address, zone = plan.reader, row.recipient, plan.timezone
        if name is None or zone is None:  # planned before plans kept them
            found = session.exec(
                select(Person.name, Person.timezone).where(Person.id == row.person_id)
            ).first()
            if found is None:
                raise ValueError(f"outbox row {row.id}: its member is gone")
            name, zone = found
        body = self._body(session, plan)
        domain = self.settings.mail_domain
        replies = reply_addresses_for(row.person_id, body.threads, domain, self.reply_keys(session))
        secret = self._secret()
        expires = row.created_at + UNSUBSCRIBE_LINK_LIFETIME
        web_token = sign_link(UNSUBSCRIBE_PURPOSE, row.person_id, expires, secret)
        unsubscribe = f"{self.settings.base_url}/unsubscribe?t={web_token}"
        mail_token = sign_address_link(UNSUBSCRIBE_PURPOSE, row.person_id, expires, secret)
        mailto = f"mailto:{store.UNSUBSCRIBE_LOCAL_PART}+{mail_token}@{domain}?subject=unsubscribe"
        date = self._dates.get(row.created_at)
        if date is None:  # one run plans its digests at one time
            date = self._dates[row.created_at] = format_datetime(row.created_at)
        headers = [
            ("Subject", header_value(row.subject, "Subject")),
            ("From", self._sender),
            ("To", address_header(name, address)),
            ("Date", date),
            ("Message-ID", row.message_id),
            # RFC 3834: tells well-behaved auto-responders not to answer us (no loops).
            ("Auto-Submitted", "auto-generated"),
            ("List-Id", body.list_id),
            # RFC 2369; RFC 8058 one-click. Folded after the comma: each URI on one line,
            # because a folder that encodes a long one breaks it for every mail client.
            ("List-Unsubscribe", f"<{mailto}>,\n <{unsubscribe}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        if body.single_thread is not None:  # only then is a reply to the whole unambiguous
            headers.insert(3, ("Reply-To", replies[body.single_thread]))
        boundary = "=_tidings_" + hashlib.sha256(row.message_id.encode()).hexdigest()[:24]
        values = [
            *message_head(headers, boundary),
            qp_value(name),
            qp_value(unsubscribe),
            qp_value(html.escape(name)),
            qp_value(html.escape(unsubscribe)),
            *self._zone_times(body, zone),
            *map(qp_value, replies.values()),
        ]
        return body.message % body.pick(values)

    def reply_keys(self, session: Session) -> ReplyKeys:
        if self._keys is None:
            self._keys = store.load_reply_keys(session, self._secret())
        return self._keys

    def _secret(self) -> str:
        """The signing secret, read once a pass (it may live in a file in data_dir)."""
        if self._signing_secret is None:
            self._signing_secret = self.settings.ensure_secret_key()
        return self._signing_secret

    # A digest's body, shared by readers ------------------------------------------------

    def _body(self, session: Session, plan: DigestPlan) -> _Body:
        """The composed digest for `plan`: kept once a second reader asks for it, so that
        digests only one reader gets do not push shared ones out."""
        key = (
            tuple(plan.updates),
            tuple(sorted(plan.for_you.items())),
            tuple(plan.paused),
            *plan.blockers,
        )
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
            return body
        body = self._new_bodies.pop(key, None)
        if body is not None:
            self._bodies[key] = body
            if len(self._bodies) > KEPT_BODIES:
                self._bodies.popitem(last=False)
            return body
        body = self._new_body(session, plan)
        self._new_bodies[key] = body
        if len(self._new_bodies) > KEPT_NEW_BODIES:
            self._new_bodies.popitem(last=False)
        return body

    def _new_body(self, session: Session, plan: DigestPlan) -> _Body:
        """`plan`'s digest, composed from parts, numbered, and framed as a message."""
        entries = self._entries_of(session, plan.updates, plan.for_you)
        if not entries and not plan.paused:
            raise ValueError("the updates this digest covers are gone")
        digest = compose(entries, self._entries_of(session, plan.blockers, {}))
        composer = _Composer(self._numbers)
        self._compose(composer, digest, plan.paused)
        single = None
        if entries and len({e.thread_id for e in entries}) == 1:
            # Replying to the digest as a whole posts in its one thread.
            single = entries[0].thread_id
            composer.threads[single] = entries[0].team_slug
        # A reader's values: theirs (`_READER`), the times, then the reply addresses.
        slots = [s for s in composer.slots if isinstance(s, datetime)]
        times = list(dict.fromkeys([*composer.times, *slots]))
        at: dict[datetime | int, int] = {t: _READER + n for n, t in enumerate(times)}
        at.update((thread, _READER + len(times) + n) for n, thread in enumerate(composer.threads))
        links = self._link_list(composer.links)
        text_frame, html_frame = self._frames(digest.count, single is not None)
        count = self.number(digest.count).replace(b"%", b"%%"), []
        text, text_picks = _framed(
            text_frame,
            {
                "name": (b"%s", [_NAME]),
                "count": count,
                "unsubscribe": (b"%s", [_UNSUBSCRIBE]),
                "body": (b"".join(composer.text), [at[t] for t in composer.times]),
                "links": (
                    b"%s".join(s.replace(b"%", b"%%") for s in links[0::2]),  # type: ignore[union-attr]
                    [at[t] for t in links[1::2]],  # type: ignore[index]
                ),
            },
        )
        markup, html_picks = _framed(
            html_frame,
            {
                "name": (b"%s", [_HTML_NAME]),
                "count": count,
                "unsubscribe": (b"%s", [_HTML_UNSUBSCRIBE]),
                "body": (b"".join(composer.html), [at[s] for s in composer.slots]),
            },
        )
        return _Body(
            message=alternative_format(text, markup),
            pick=_picker(
                [_HEAD, _BOUNDARY, _BOUNDARY, *text_picks, _BOUNDARY, *html_picks, _BOUNDARY]
            ),
            times=times,
            threads=composer.threads,
            list_id=list_id(digest, self.settings.mail_domain),
            single_thread=single,
        )

    def _compose(self, composer: _Composer, digest: Digest, paused: list[PausedMember]) -> None:
        if paused:
            composer.add(self._fixed_part("paused", "paused_heading"))
            for notice in paused:
                composer.add(self._fixed_part(("paused", notice), "paused_member", notice))
        if digest.for_you:
            composer.add(self._fixed_part("for-you", "for_you_heading"))
            for entry in digest.for_you:
                composer.add(self._item_part(entry, entry.for_you))
        for team in digest.teams:
            composer.add(self._fixed_part(("team", team.slug), "team_heading", team))
            for entry in team.blockers:
                composer.add(self._item_part(entry, _BLOCKER))
            counted: list[ThreadSection] = []  # a run of threads only counted, not shown
            for section in team.threads:
                if section.entries:
                    if counted:
                        composer.add(self._counted_part(counted))
                        counted = []
                    composer.add(self._thread_part(section))
                else:
                    counted.append(section)
            if counted:
                composer.add(self._counted_part(counted))

    def _zone_times(self, body: _Body, zone: str) -> list[bytes]:
        """The times `body` shows, in `zone`, encoded."""
        found = body.zones.get(zone)
        if found is None:
            found = body.zones[zone] = [self.time(t, zone) for t in body.times]
        return found

    def _frames(self, count: int, single: bool) -> tuple[QPPiece, QPPiece]:
        """The (text, HTML) document around a body of `count` new items (maybe none, when
        it only has notices), one thread's or not."""
        plural, nothing_new = count != 1, count == 0
        text = self.text_piece(
            ("document", plural, single, nothing_new),
            "document",
            slot("name"),
            _COUNT,
            plural,
            single,
            nothing_new,
            self.settings.base_url,
            slot("unsubscribe"),
            slot("body"),
            slot("links"),
        )
        return text, self.html_document(plural, nothing_new)

    # Parts, put together once per pass -------------------------------------------------

    def _kept_part(self, key: tuple[Any, ...], make: Callable[[], _Part]) -> _Part:
        """The part `key`, made the first time it is asked for and kept while it is among
        the most recently used `KEPT_PART_BYTES`."""
        parts = self._parts
        part = parts.get(key)
        if part is not None:
            parts.move_to_end(key)
            return part
        part = parts[key] = make()
        self._part_bytes += part.size
        while self._part_bytes > KEPT_PART_BYTES and len(parts) > 1:
            self._part_bytes -= parts.popitem(last=False)[1].size
        return part

    def _fixed_part(self, key: Any, macro: str, *args: Any) -> _Part:
        """A part without slots: a heading, a notice."""
        found = self._fixed.get(key)
        if found is None:
            builder = _PartBuilder()
            self.text_piece(("fixed", key), macro, *args).fill(builder.text, {})  # type: ignore[arg-type]
            self.html_piece(("fixed", key), macro, *args).fill(builder.html, {})  # type: ignore[arg-type]
            found = self._fixed[key] = builder.part()
        return found

    def _item_part(self, entry: DigestEntry, label: str) -> _Part:
        """An update shown on its own, with `label`: "for you", or a blocker."""

        def make() -> _Part:
            builder = _PartBuilder()
            self._item(builder, entry, label)
            return builder.part()

        return self._kept_part(("item", entry.update_id, label), make)

    def _thread_part(self, section: ThreadSection) -> _Part:
        """A thread's section: its heading, how many new items it leaves out, its items."""

        def make() -> _Part:
            builder = _PartBuilder()
            self._thread(builder, section)
            return builder.part()

        key = (section.first.thread_id, section.earlier, *[e.update_id for e in section.entries])
        return self._kept_part(key, make)

    def _counted_part(self, sections: list[ThreadSection]) -> _Part:
        """A run of threads a digest only counts, once it shows all it has room for: the
        digests of a team mostly end with the same run."""
        if len(sections) == 1:
            return self._thread_part(sections[0])
        key = tuple((s.first.thread_id, s.earlier) for s in sections)
        # Each links only to its own thread, so the parts join as they are.
        return self._kept_part(key, lambda: _Part.joined([self._thread_part(s) for s in sections]))

    def _thread(self, builder: _PartBuilder, section: ThreadSection) -> None:
        thread = section.first.thread_id
        heading = ("thread", thread), "thread_heading", section
        builder.text.extend(self.text_piece(*heading).literals)
        builder.html.extend(self.html_piece(*heading).literals)
        if section.earlier:
            shows, plural = bool(section.entries), section.earlier != 1
            count = self.number(section.earlier)
            link = builder.ref(section.archive_url)
            self.text_piece(
                ("not-shown", shows, plural), "not_shown", section, _COUNT, plural, _LINK
            ).fill(builder.text, {"count": count, "link": link})  # type: ignore[arg-type,dict-item]
            self.html_piece(
                ("not-shown", thread, shows, plural), "not_shown", section, _COUNT, plural
            ).fill(builder.html, {"count": count})  # type: ignore[arg-type]
        for entry in section.entries:
            self._item(builder, entry, "")

    def _item(self, builder: _PartBuilder, entry: DigestEntry, label: str) -> None:
        text, markup = self.item(entry, label)
        thread = entry.thread_id
        builder.threads[thread] = entry.team_slug
        # Numbered in the order the text part shows them.
        if entry.cut:
            archive, reply = builder.ref(entry.archive_url), builder.ref(thread)
        else:
            reply, archive = builder.ref(thread), builder.ref(entry.archive_url)
        time = entry.created_at
        text.fill(builder.text, {"time": time, "archive": archive, "reply": reply})  # type: ignore[arg-type,dict-item]
        markup.fill(builder.html, {"time": time, "reply": thread})  # type: ignore[arg-type,dict-item]

    def _link_list(self, links: Mapping[str | int, int]) -> list[Segment]:
        """The text part's link list: each target (a URL, or a thread whose reply address
        goes there) after its number; encoded text, then alternately a thread and text."""
        piece = self.text_piece(("link",), "link", _NUMBER, _URL)
        if piece.names != ["number", "url"]:
            raise ValueError("digest.txt: the link macro must show the number, then the URL")
        start, between, end = piece.literals
        heads, url_lines = self._link_heads, self._url_lines
        out: list[Segment] = []
        run: list[bytes] = []
        for target, number in links.items():
            head = heads.get(number)
            if head is None:
                head = heads[number] = start + self.number(number) + between
            run.append(head)
            if isinstance(target, int):
                out.append(b"".join(run))
                out.append(target)
                run = [end]
            else:
                line = url_lines.get(target)
                if line is None:
                    line = url_lines[target] = qp_value(target) + end
                run.append(line)
        out.append(b"".join(run))
        return out

    # Pieces, rendered once per pass ----------------------------------------------------

    def _entries_of(
        self, session: Session, ids: list[int], for_you: Mapping[int, str]
    ) -> list[DigestEntry]:
        """The updates `ids` as digests show them (those that still exist), each with why
        it is for the reader when `for_you` says."""
        plain = self._entries
        try:
            return [
                plain[i] if i not in for_you else self._for_you(plain[i], for_you[i]) for i in ids
            ]
        except KeyError:
            self._load(session, ids)
            return [
                plain[i] if i not in for_you else self._for_you(plain[i], for_you[i])
                for i in ids
                if i in plain
            ]

    def _load(self, session: Session, ids: list[int]) -> None:
        """Keeps the entries of those of `ids` not seen yet, with their teams' link patterns
        for when their Markdown is rendered."""
        updates = [u for u in self.updates.get(session, ids) if u.id not in self._entries]
        teams = {u.team_id for u in updates} - self._team_links.keys()
        if teams:
            self._team_links.update(store.team_links(session, sorted(teams)))
        base = self.settings.base_url
        for update in updates:
            body, cut = cut_long(update.body)
            self._entries[update.id] = DigestEntry(
                update_id=update.id,
                thread_id=update.thread_id,
                thread_title=update.thread_title,
                team_slug=update.team_slug,
                team_name=update.team_name,
                author_name=update.author_name,
                created_at=update.created_at,
                body=body,
                reply_address=slot("reply"),
                # The permalink, not /threads/N#uM: it survives a detour through sign-in.
                archive_url=f"{base}/updates/{update.id}",
                thread_url=f"{base}/threads/{update.thread_id}",
                cut=cut,
                answered_on=update.answered_on,
            )
            self._links_of[update.id] = self._team_links.get(update.team_id, [])

    def _for_you(self, entry: DigestEntry, reason: str) -> DigestEntry:
        key = (entry.update_id, reason)
        found = self._labelled.get(key)
        if found is None:
            found = self._labelled[key] = replace(entry, for_you=reason)
        return found

    def _rendered(self, entry: DigestEntry) -> Markup:
        """The update's Markdown as HTML, with its team's link patterns: rendered once,
        however many readers get it, and only if a digest shows it."""
        found = self._markdown.get(entry.update_id)
        if found is None:
            links = self._links_of[entry.update_id]
            found = self._markdown[entry.update_id] = render_markdown(entry.body, links)
        return found

    def piece(self, key: tuple[Any, ...], make: Callable[[], str]) -> QPPiece:
        """The piece `key`, rendered by `make` the first time it is asked for."""
        piece = self._pieces.get(key)
        if piece is None:
            piece = self._pieces[key] = QPPiece(make())
        return piece

    def html_piece(self, key: tuple[Any, ...], macro: str, *args: Any) -> QPPiece:
        def make() -> str:
            fragment = str(getattr(self._html.module, macro)(*args))
            return INLINER.inline_fragment(fragment, self._css)

        return self.piece(("html", *key), make)

    def text_piece(self, key: tuple[Any, ...], macro: str, *args: Any) -> QPPiece:
        return self.piece(("text", *key), lambda: str(getattr(self._text.module, macro)(*args)))

    def html_document(self, plural: bool, nothing_new: bool) -> QPPiece:
        def make() -> str:
            document = self._html.module.document(
                Markup(self._css),
                slot("name"),
                _COUNT,
                plural,
                nothing_new,
                self.settings.base_url,
                slot("unsubscribe"),
                slot("body"),
            )
            return INLINER.inline(str(document))

        return self.piece(("html", "document", plural, nothing_new), make)

    def item(self, entry: DigestEntry, label: str) -> tuple[QPPiece, QPPiece]:
        """(text, HTML) pieces of an update shown with `label` ("", a for-you reason or
        "Blocker"), with slots for the reader's time, reply address and link numbers."""
        key = (entry.update_id, label)
        found = self._items.get(key)
        if found is None:
            text = self.text_piece(
                ("item", *key), "item", entry, label, _TIME, _ARCHIVE, _REPLY, _ARCHIVE
            )
            markup = self.html_piece(
                ("item", *key), "item", entry, self._rendered(entry), label.capitalize(), _TIME
            )
            found = self._items[key] = (text, markup)
        return found

    def time(self, instant: datetime, zone: str) -> bytes:
        """`instant` in `zone`, as digests show it, encoded."""
        key = (instant, zone)
        encoded = self._times.get(key)
        if encoded is None:
            encoded = self._times[key] = qp_value(local_time(instant, zone))
        return encoded

    def number(self, number: int) -> bytes:
        return self._numbers.get(number)


def _merged(segments: Iterable[Segment]) -> list[Segment]:
    """`segments` with each run of encoded text joined into one: text, then alternately
    a slot (anything but text) and the text after it (maybe empty)."""
    merged: list[Segment] = []
    run: list[bytes] = []
    for segment in segments:
        if isinstance(segment, bytes):
            run.append(segment)
        else:
            merged.append(b"".join(run))
            merged.append(segment)
            run = []
    merged.append(b"".join(run))
    return merged


def _framed(
    piece: QPPiece, fills: Mapping[str, tuple[bytes, list[int]]]
) -> tuple[bytes, list[int]]:
    """`piece` as a %-format, each slot filled with a %-format from `fills`; and, from
    `fills` too, which values its `%s`s take, in order."""
    out = [piece.literals[0].replace(b"%", b"%%")]
    picks: list[int] = []
    for name, literal in zip(piece.names, piece.literals[1:], strict=True):
        fill, values = fills[name]
        out.append(fill)
        out.append(literal.replace(b"%", b"%%"))
        picks += values
    return b"".join(out), picks


def list_id(digest: Digest, domain: str) -> str:
    """RFC 2919: a digest from one team is that team's list, so a mail filter can sort it;
    one that spans teams is the member's own digest list."""
    teams = {e.team_slug: e.team_name for e in digest.for_you}
    teams.update((t.slug, t.name) for t in digest.teams)
    if len(teams) == 1:
        [(slug, name)] = teams.items()
        return address_header(name, f"{slug}.{domain}")
    return f"Tidings digest <digest.{domain}>"

"""Render a planned digest into the message its reader gets.

The sender renders a digest from its plan (`app/digest_plan.py`) when it sends it. One
`DigestLayout` serves a whole sending pass (or a benchmark), and shares what readers
have in common:

* each update's Markdown is rendered once, and each part of the templates
  (`templates/email/digest.*`: an item, a heading, the frame) is rendered, CSS-inlined
  and quoted-printable encoded once (`app.render.QPPiece`), with slots for one reader's
  values;
* members of a team mostly get the same digest: the same items, in the same order, in
  one of a few time zones. A digest's body is composed once per (zone, items) and kept
  with markers where each reader's signed reply addresses go, so the next reader with
  the same digest only signs their addresses and joins.
"""

from __future__ import annotations

import hashlib
import html
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
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
    assemble_alternative,
    header_value,
    qp_value,
    render_markdown,
    slot,
    template_env,
)
from app.settings import Settings
from app.tokens import (
    UNSUBSCRIBE_PURPOSE,
    ReplyKeys,
    reply_address_for,
    sign_address_link,
    sign_link,
)
from digest.compose import Digest, DigestEntry, ThreadSection, compose, cut_long, local_time
from digest.updates import CachedUpdate, UpdateCache

UNSUBSCRIBE_LINK_LIFETIME = timedelta(days=400)
_BLOCKER = "Blocker"
# The slots the templates' pieces leave for one reader's values.
_TIME, _REPLY, _ARCHIVE, _COUNT, _LINK, _NUMBER, _URL = (
    slot(n) for n in ("time", "reply", "archive", "count", "link", "number", "url")
)
# Composed bodies kept per pass: each is a digest's size (about 100 KB).
KEPT_BODIES = 256

Segment = bytes | int  # encoded text, or the id of a thread whose reply address goes there


@dataclass
class _Body:
    """A composed digest body, the same for every reader with the same items and zone;
    each int in `text` and `html` stands for the reader's reply address in that thread."""

    text: list[Segment]
    html: list[Segment]
    threads: dict[int, str]  # thread id -> team slug, for signing its reply address
    count: int
    list_id: str
    single_thread: int | None  # the one thread a digest of one thread is about


@dataclass
class _Composer:
    """Collects a body's segments; link numbers count in the order the text shows them."""

    text: list[Segment] = field(default_factory=list)
    html: list[Segment] = field(default_factory=list)
    threads: dict[int, str] = field(default_factory=dict)
    links: dict[str | int, int] = field(default_factory=dict)  # URL or thread id -> number

    def ref(self, target: str | int) -> int:
        return self.links.setdefault(target, len(self.links) + 1)


class DigestLayout:
    """Renders planned digests for one sending pass; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.updates = UpdateCache()
        self._html = template_env(settings.templates_dir, "email").get_template("digest.html")
        self._text = template_env(settings.templates_dir, "email").get_template("digest.txt")
        self._css = (settings.templates_dir / "email" / "digest.css").read_text()
        self._pieces: dict[tuple[Any, ...], QPPiece] = {}
        self._entries: dict[tuple[int, str], DigestEntry] = {}
        self._markdown: dict[int, Markup] = {}
        self._team_links: dict[int, list[LinkRule]] = {}
        self._fixed: dict[Any, tuple[bytes, bytes]] = {}
        self._items: dict[tuple[int, str], tuple[QPPiece, QPPiece]] = {}
        self._times: dict[tuple[datetime, str], bytes] = {}
        self._numbers: dict[int, bytes] = {}
        self._bodies: OrderedDict[tuple[Any, ...], _Body] = OrderedDict()
        self._seen: set[int] = set()
        self._keys: ReplyKeys | None = None

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
        body = self._body(session, plan, zone)
        domain = self.settings.mail_domain
        keys = self.reply_keys(session)
        replies = {
            thread: reply_address_for(row.person_id, thread, slug, domain, keys)
            for thread, slug in body.threads.items()
        }
        encoded = {thread: qp_value(reply) for thread, reply in replies.items()}
        secret = self.settings.ensure_secret_key()
        expires = row.created_at + UNSUBSCRIBE_LINK_LIFETIME
        web_token = sign_link(UNSUBSCRIBE_PURPOSE, row.person_id, expires, secret)
        unsubscribe = f"{self.settings.base_url}/unsubscribe?t={web_token}"
        mail_token = sign_address_link(UNSUBSCRIBE_PURPOSE, row.person_id, expires, secret)
        mailto = f"mailto:{store.UNSUBSCRIBE_LOCAL_PART}+{mail_token}@{domain}?subject=unsubscribe"
        text, markup = self._document(body, encoded, name, unsubscribe)
        headers = [
            ("Subject", header_value(row.subject, "Subject")),
            ("From", address_header("Tidings", f"digest@{domain}")),
            ("To", address_header(name, address)),
            ("Date", format_datetime(row.created_at)),
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
        return assemble_alternative(headers, text, markup, boundary)

    def reply_keys(self, session: Session) -> ReplyKeys:
        if self._keys is None:
            self._keys = store.load_reply_keys(session, self.settings.ensure_secret_key())
        return self._keys

    # A digest's body, shared by readers ------------------------------------------------

    def _body(self, session: Session, plan: DigestPlan, zone: str) -> _Body:
        """The composed body for `plan` in `zone`: kept once a second reader asks for the
        same one, so digests that only one reader gets do not push shared ones out."""
        key = (
            zone,
            tuple(plan.updates),
            tuple(sorted(plan.for_you.items())),
            tuple(plan.paused),
            *plan.blockers,
        )
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
            return body
        updates = self.updates.get(session, plan.updates)
        pinned = self.updates.get(session, plan.blockers)
        self._load_links(session, {u.team_id for u in (*updates, *pinned)})
        entries = [self._entry(u, plan.for_you.get(u.id, "")) for u in updates]
        if not entries and not plan.paused:
            raise ValueError("the updates this digest covers are gone")
        blockers = [self._entry(u) for u in pinned]
        body = self._compose(compose(entries, blockers), zone, plan.paused)
        threads = {e.thread_id: e.team_slug for e in entries}
        if len(threads) == 1:  # replying to the digest as a whole posts there
            [(body.single_thread, slug)] = threads.items()
            body.threads[body.single_thread] = slug
        fingerprint = hash(key)
        if fingerprint in self._seen:
            body.text, body.html = _merged(body.text), _merged(body.html)
            self._bodies[key] = body
            if len(self._bodies) > KEPT_BODIES:
                self._bodies.popitem(last=False)
        else:
            self._seen.add(fingerprint)
        return body

    def _compose(self, digest: Digest, zone: str, paused: list[PausedMember]) -> _Body:
        composer = _Composer()
        if paused:
            self._fixed_piece(composer, "paused", "paused_heading")
            for notice in paused:
                self._fixed_piece(composer, ("paused", notice), "paused_member", notice)
        if digest.for_you:
            self._fixed_piece(composer, "for-you", "for_you_heading")
            for entry in digest.for_you:
                self._item(composer, entry, entry.for_you, zone)
        for team in digest.teams:
            self._fixed_piece(composer, ("team", team.slug), "team_heading", team)
            for entry in team.blockers:
                self._item(composer, entry, _BLOCKER, zone)
            for section in team.threads:
                self._thread(composer, section, zone)
        links: list[Segment] = []
        link = self.text_piece(("link",), "link", _NUMBER, _URL)
        for target, number in composer.links.items():
            url = target if isinstance(target, int) else qp_value(target)
            link.fill(links, {"number": self.number(number), "url": url})  # type: ignore[dict-item]
        return _Body(
            text=[*composer.text, _LINKS_MARK, *links],
            html=composer.html,
            threads=composer.threads,
            count=digest.count,
            list_id=list_id(digest, self.settings.mail_domain),
            single_thread=None,
        )

    def _fixed_piece(self, composer: _Composer, key: Any, macro: str, *args: Any) -> None:
        found = self._fixed.get(key)
        if found is None:
            text = self.text_piece(("fixed", key), macro, *args)
            markup = self.html_piece(("fixed", key), macro, *args)
            found = self._fixed[key] = (b"".join(text.literals), b"".join(markup.literals))
        composer.text.append(found[0])
        composer.html.append(found[1])

    def _thread(self, composer: _Composer, section: ThreadSection, zone: str) -> None:
        thread = section.first.thread_id
        self._fixed_piece(composer, ("thread", thread), "thread_heading", section)
        if section.earlier:
            shows, plural = bool(section.entries), section.earlier != 1
            count = self.number(section.earlier)
            link = self.number(composer.ref(section.archive_url))
            self.text_piece(
                ("not-shown", shows, plural), "not_shown", section, _COUNT, plural, _LINK
            ).fill(composer.text, {"count": count, "link": link})  # type: ignore[arg-type]
            self.html_piece(
                ("not-shown", thread, shows, plural), "not_shown", section, _COUNT, plural
            ).fill(composer.html, {"count": count})  # type: ignore[arg-type]
        for entry in section.entries:
            self._item(composer, entry, "", zone)

    def _item(self, composer: _Composer, entry: DigestEntry, label: str, zone: str) -> None:
        text, markup = self.item(entry, label)
        time = self.time(entry.created_at, zone)
        thread = entry.thread_id
        composer.threads[thread] = entry.team_slug
        # Numbered in the order the text part shows them.
        if entry.cut:
            archive, reply = composer.ref(entry.archive_url), composer.ref(thread)
        else:
            reply, archive = composer.ref(thread), composer.ref(entry.archive_url)
        text.fill(
            composer.text,  # type: ignore[arg-type]
            {"time": time, "archive": self.number(archive), "reply": self.number(reply)},
        )
        markup.fill(composer.html, {"time": time, "reply": thread})  # type: ignore[arg-type,dict-item]

    def _document(
        self, body: _Body, replies: dict[int, bytes], name: str, unsubscribe: str
    ) -> tuple[bytes, bytes]:
        """(text part, HTML part) for one reader: the frame around the shared body, with
        their name, their unsubscribe link and their reply addresses."""
        plural = body.count != 1
        count = self.number(body.count)
        single = body.single_thread is not None
        nothing_new = body.count == 0
        text_body = _joined(body.text, replies).split(_LINKS_MARK, 1)
        text_out: list[bytes] = []
        self.text_piece(
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
        ).fill(
            text_out,
            {
                "name": qp_value(name),
                "count": count,
                "unsubscribe": qp_value(unsubscribe),
                "body": text_body[0],
                "links": text_body[1],
            },
        )
        html_out: list[bytes] = []
        self.html_document(plural, nothing_new).fill(
            html_out,
            {
                "name": qp_value(html.escape(name)),
                "count": count,
                "unsubscribe": qp_value(html.escape(unsubscribe)),
                "body": _joined(body.html, replies),
            },
        )
        return b"".join(text_out), b"".join(html_out)

    # Pieces, rendered once per pass ----------------------------------------------------

    def _entry(self, update: CachedUpdate, for_you: str = "") -> DigestEntry:
        """The update as digests show it, with a slot for the reader's reply address."""
        key = (update.id, for_you)
        if key not in self._entries:
            body, cut = cut_long(update.body)
            base = self.settings.base_url
            self._entries[key] = DigestEntry(
                update_id=update.id,
                thread_id=update.thread_id,
                thread_title=update.thread_title,
                team_slug=update.team_slug,
                team_name=update.team_name,
                author_name=update.author_name,
                created_at=update.created_at,
                body=body,
                body_html=self._rendered(update, body),
                reply_address=slot("reply"),
                # The permalink, not /threads/N#uM: it survives a detour through sign-in.
                archive_url=f"{base}/updates/{update.id}",
                thread_url=f"{base}/threads/{update.thread_id}",
                cut=cut,
                for_you=for_you,
                answered_on=update.answered_on,
            )
        return self._entries[key]

    def _rendered(self, update: CachedUpdate, body: str) -> Markup:
        """The update's Markdown as HTML, with its team's link patterns: rendered once,
        however many readers get it."""
        if update.id not in self._markdown:
            links = self._team_links.get(update.team_id, [])
            self._markdown[update.id] = render_markdown(body, links)
        return self._markdown[update.id]

    def _load_links(self, session: Session, team_ids: set[int]) -> None:
        missing = sorted(team_ids - self._team_links.keys())
        if missing:
            self._team_links.update(store.team_links(session, missing))

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
            markup = self.html_piece(("item", *key), "item", entry, label.capitalize(), _TIME)
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
        encoded = self._numbers.get(number)
        if encoded is None:
            encoded = self._numbers[number] = qp_value(str(number))
        return encoded


# Where the text part's body ends and its link list begins, in a composed body: a byte
# that quoted-printable output never contains.
_LINKS_MARK = b"\x00"


def _merged(segments: list[Segment]) -> list[Segment]:
    """`segments` with each run of encoded text joined into one."""
    merged: list[Segment] = []
    run: list[bytes] = []
    for segment in segments:
        if isinstance(segment, int):
            merged.append(b"".join(run))
            merged.append(segment)
            run = []
        else:
            run.append(segment)
    merged.append(b"".join(run))
    return merged


def _joined(segments: list[Segment], replies: dict[int, bytes]) -> bytes:
    return b"".join(replies[s] if isinstance(s, int) else s for s in segments)


def list_id(digest: Digest, domain: str) -> str:
    """RFC 2919: a digest from one team is that team's list, so a mail filter can sort it;
    one that spans teams is the member's own digest list."""
    teams = {e.team_slug: e.team_name for e in digest.for_you}
    teams.update((t.slug, t.name) for t in digest.teams)
    if len(teams) == 1:
        [(slug, name)] = teams.items()
        return address_header(name, f"{slug}.{domain}")
    return f"Tidings digest <digest.{domain}>"

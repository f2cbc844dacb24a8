"""Render a planned digest into the message its reader gets.

The sender renders a digest from its plan (`app/digest_plan.py`) when it sends it. One
`DigestLayout` serves a whole sending pass (or a benchmark): each update's Markdown is
rendered once, and each part of the templates (`templates/email/digest.*`) is rendered,
CSS-inlined and quoted-printable encoded once (`app.render.QPPiece`); a reader's message
is those pieces joined with their own values in the slots: times in their zone, their
signed reply addresses, the numbers of their text part's links.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

from markupsafe import Markup
from sqlmodel import Session

from app import store
from app.digest_plan import DigestPlan
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
        self._values: dict[tuple[str, Any], bytes] = {}
        self._keys: ReplyKeys | None = None

    def render(self, session: Session, row: OutboundMessage) -> bytes:
        """The message for the planned digest `row`, as it goes out."""
        person = session.get(Person, row.person_id)
        if person is None or row.plan is None:
            raise ValueError(f"outbox row {row.id} is not a planned digest of a member")
        plan = DigestPlan.from_json(row.plan)
        entries = [
            self._entry(u, plan.for_you.get(u.id, ""))
            for u in self.updates.get(session, plan.updates)
        ]
        if not entries:
            raise ValueError(f"outbox row {row.id}: the updates it covers are gone")
        blockers = [self._entry(u) for u in self.updates.get(session, plan.blockers)]
        digest = compose(entries, blockers)
        reader = _Reader(self, session, person, row.created_at)
        single_thread = len({e.thread_id for e in entries}) == 1
        text, html_part = reader.bodies(digest, single_thread)
        domain = self.settings.mail_domain
        headers = [
            ("Subject", header_value(row.subject, "Subject")),
            ("From", address_header("Tidings", f"digest@{domain}")),
            ("To", address_header(person.name, person.email)),
            ("Date", format_datetime(row.created_at)),
            ("Message-ID", row.message_id),
            # RFC 3834: tells well-behaved auto-responders not to answer us (no loops).
            ("Auto-Submitted", "auto-generated"),
            ("List-Id", list_id(digest, domain)),
            # RFC 2369; RFC 8058 one-click. Folded after the comma: each URI on one line,
            # because a folder that encodes a long one breaks it for every mail client.
            (
                "List-Unsubscribe",
                f"<{reader.unsubscribe_mailto()}>,\n <{reader.unsubscribe_url}>",
            ),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        if single_thread:  # replying to the digest as a whole is unambiguous only then
            headers.insert(3, ("Reply-To", reader.reply_address(entries[0])))
        boundary = "=_tidings_" + hashlib.sha256(row.message_id.encode()).hexdigest()[:24]
        return assemble_alternative(headers, text, html_part, boundary)

    # Shared by every reader --------------------------------------------------------------

    def reply_keys(self, session: Session) -> ReplyKeys:
        if self._keys is None:
            self._keys = store.load_reply_keys(session, self.settings.ensure_secret_key())
        return self._keys

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
                body_html=self._rendered(update.id, body),
                reply_address=slot("reply"),
                # The permalink, not /threads/N#uM: it survives a detour through sign-in.
                archive_url=f"{base}/updates/{update.id}",
                thread_url=f"{base}/threads/{update.thread_id}",
                cut=cut,
                for_you=for_you,
            )
        return self._entries[key]

    def _rendered(self, update_id: int, body: str) -> Markup:
        """The update's Markdown as HTML: rendered once, however many readers get it."""
        if update_id not in self._markdown:
            self._markdown[update_id] = render_markdown(body)
        return self._markdown[update_id]

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

    def html_document(self, plural: bool) -> QPPiece:
        def make() -> str:
            document = self._html.module.document(
                Markup(self._css),
                slot("name"),
                slot("count"),
                plural,
                self.settings.base_url,
                slot("unsubscribe"),
                slot("body"),
            )
            return INLINER.inline(str(document))

        return self.piece(("html", "document", plural), make)

    def value(self, kind: str, value: Any, make: Callable[[], str]) -> bytes:
        """A slot value shared by readers (a time in one zone, a link number), encoded."""
        key = (kind, value)
        encoded = self._values.get(key)
        if encoded is None:
            encoded = self._values[key] = qp_value(make())
        return encoded


class _Reader:
    """One reader's values: their zone, their reply addresses, their link numbers."""

    def __init__(
        self, layout: DigestLayout, session: Session, person: Person, planned_at: datetime
    ) -> None:
        self.layout = layout
        self.session = session
        self.person = person
        self.planned_at = planned_at
        secret = layout.settings.ensure_secret_key()
        expires = planned_at + UNSUBSCRIBE_LINK_LIFETIME
        token = sign_link(UNSUBSCRIBE_PURPOSE, person.id, expires, secret)  # type: ignore[arg-type]
        self.unsubscribe_url = f"{layout.settings.base_url}/unsubscribe?t={token}"
        self._addresses: dict[int, str] = {}
        self._links: dict[str, int] = {}

    def unsubscribe_mailto(self) -> str:
        settings = self.layout.settings
        token = sign_address_link(
            UNSUBSCRIBE_PURPOSE,
            self.person.id,  # type: ignore[arg-type]
            self.planned_at + UNSUBSCRIBE_LINK_LIFETIME,
            settings.ensure_secret_key(),
        )
        local = f"{store.UNSUBSCRIBE_LOCAL_PART}+{token}"
        return f"mailto:{local}@{settings.mail_domain}?subject=unsubscribe"

    def reply_address(self, entry: DigestEntry) -> str:
        if entry.thread_id not in self._addresses:
            self._addresses[entry.thread_id] = reply_address_for(
                self.person.id,  # type: ignore[arg-type]
                entry.thread_id,
                entry.team_slug,
                self.layout.settings.mail_domain,
                self.layout.reply_keys(self.session),
            )
        return self._addresses[entry.thread_id]

    def ref(self, target: str) -> bytes:
        """The encoded number of `target` in the text part's link list."""
        number = self._links.setdefault(target, len(self._links) + 1)
        return self.layout.value("number", number, lambda: str(number))

    def bodies(self, digest: Digest, single_thread: bool) -> tuple[bytes, bytes]:
        """(text part, HTML part), quoted-printable."""
        layout = self.layout
        text: list[bytes] = []
        markup: list[bytes] = []
        if digest.for_you:
            layout.text_piece(("for-you",), "for_you_heading").fill(text, {})
            layout.html_piece(("for-you",), "for_you_heading").fill(markup, {})
            for entry in digest.for_you:
                self._item(entry, entry.for_you, text, markup)
        for team in digest.teams:
            layout.text_piece(("team", team.slug), "team_heading", team).fill(text, {})
            layout.html_piece(("team", team.slug), "team_heading", team).fill(markup, {})
            for entry in team.blockers:
                self._item(entry, _BLOCKER, text, markup)
            for section in team.threads:
                self._thread(section, text, markup)
        count = self.layout.value("number", digest.count, lambda: str(digest.count))
        plural = digest.count != 1
        name = self.person.name
        links: list[bytes] = []
        link = layout.text_piece(("link",), "link", slot("number"), slot("url"))
        for target in self._links:
            link.fill(links, {"number": self.ref(target), "url": qp_value(target)})
        text_document = layout.text_piece(
            ("document", plural, single_thread),
            "document",
            slot("name"),
            slot("count"),
            plural,
            single_thread,
            layout.settings.base_url,
            slot("unsubscribe"),
            slot("body"),
            slot("links"),
        )
        text_out: list[bytes] = []
        text_document.fill(
            text_out,
            {
                "name": qp_value(name),
                "count": count,
                "unsubscribe": qp_value(self.unsubscribe_url),
                "body": b"".join(text),
                "links": b"".join(links),
            },
        )
        html_out: list[bytes] = []
        layout.html_document(plural).fill(
            html_out,
            {
                "name": qp_value(html.escape(name)),
                "count": count,
                "unsubscribe": qp_value(html.escape(self.unsubscribe_url)),
                "body": b"".join(markup),
            },
        )
        return b"".join(text_out), b"".join(html_out)

    def _thread(self, section: ThreadSection, text: list[bytes], markup: list[bytes]) -> None:
        layout = self.layout
        thread = section.first.thread_id
        layout.text_piece(("thread", thread), "thread_heading", section).fill(text, {})
        layout.html_piece(("thread", thread), "thread_heading", section).fill(markup, {})
        if section.earlier:
            shows, plural = bool(section.entries), section.earlier != 1
            count = self.layout.value("number", section.earlier, lambda: str(section.earlier))
            layout.text_piece(
                ("not-shown", shows, plural),
                "not_shown",
                section,
                slot("count"),
                plural,
                slot("link"),
            ).fill(text, {"count": count, "link": self.ref(section.archive_url)})
            layout.html_piece(
                ("not-shown", thread, shows, plural), "not_shown", section, slot("count"), plural
            ).fill(markup, {"count": count})
        for entry in section.entries:
            self._item(entry, "", text, markup)

    def _item(self, entry: DigestEntry, label: str, text: list[bytes], markup: list[bytes]) -> None:
        layout = self.layout
        zone = self.person.timezone
        time = layout.value(
            "time", (entry.created_at, zone), lambda: local_time(entry.created_at, zone)
        )
        address = self.reply_address(entry)
        # Numbered in the order the text part shows them.
        if entry.cut:
            archive, reply = self.ref(entry.archive_url), self.ref(address)
        else:
            reply, archive = self.ref(address), self.ref(entry.archive_url)
        layout.text_piece(
            ("item", entry.update_id, label),
            "item",
            entry,
            label,
            slot("time"),
            slot("archive"),
            slot("reply"),
            slot("archive"),
        ).fill(text, {"time": time, "archive": archive, "reply": reply})
        layout.html_piece(
            ("item", entry.update_id, label), "item", entry, label.capitalize(), slot("time")
        ).fill(markup, {"time": time, "reply": qp_value(address)})


def list_id(digest: Digest, domain: str) -> str:
    """RFC 2919: a digest from one team is that team's list, so a mail filter can sort it;
    one that spans teams is the member's own digest list."""
    teams = {e.team_slug: e.team_name for e in digest.for_you}
    teams.update((t.slug, t.name) for t in digest.teams)
    if len(teams) == 1:
        [(slug, name)] = teams.items()
        return address_header(name, f"{slug}.{domain}")
    return f"Tidings digest <digest.{domain}>"

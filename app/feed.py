"""Atom feeds of a team's updates (RFC 4287). Feed readers cannot sign in, so a private
team's feed URL carries a token that stands for one member: it shows what that member
may read, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response
from sqlmodel import Session, select

from app import store
from app.deps import SessionDep, SettingsDep, ViewerDep
from app.errors import NotFound
from app.models import Person, Team, Thread, Update, utcnow
from app.render import render_markdown
from app.settings import Settings
from app.tokens import FEED_PURPOSE, InvalidToken, sign_link, verify_link

router = APIRouter(include_in_schema=False)
ATOM = "http://www.w3.org/2005/Atom"
FEED_ENTRIES = 50
# Feed URLs live in feed readers for years; the member's membership still decides.
_FEED_LINK_EXPIRES = datetime(2100, 1, 1, tzinfo=UTC)


def feed_url(settings: Settings, team: Team, person: Person | None) -> str:
    """The team's feed URL; for a member, with their token (private teams need it)."""
    url = f"{settings.base_url}/teams/{team.slug}/feed.atom"
    if person is None:
        return url
    token = sign_link(FEED_PURPOSE, person.id, _FEED_LINK_EXPIRES, settings.ensure_secret_key())  # type: ignore[arg-type]
    return f"{url}?t={token}"


def _reader(session: Session, settings: Settings, token: str) -> Person | None:
    try:
        person_id = verify_link(token, FEED_PURPOSE, utcnow(), settings.ensure_secret_key())
    except InvalidToken:
        return None
    return session.get(Person, person_id)


def atom_feed(session: Session, team: Team, base_url: str) -> bytes:
    query = (
        select(Update, Thread, Person)
        .join(Thread, Thread.id == Update.thread_id)
        .join(Person, Person.id == Update.author_id)
        .where(Update.team_id == team.id, Thread.deleted_at.is_(None))  # type: ignore[union-attr]
        .order_by(Update.created_at.desc(), Update.id.desc())  # type: ignore[attr-defined]
        .limit(FEED_ENTRIES)
    )
    rows = session.exec(query).all()
    links = store.team_links(session, [team.id])[team.id]  # type: ignore[list-item,index]
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}title").text = f"{team.name} · Tidings"
    ET.SubElement(feed, f"{{{ATOM}}}id").text = f"{base_url}/teams/{team.slug}"
    ET.SubElement(feed, f"{{{ATOM}}}link", href=f"{base_url}/teams/{team.slug}")
    newest = rows[0][0].created_at if rows else team.created_at
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = newest.isoformat()
    for update, thread, author in rows:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}title").text = thread.title
        ET.SubElement(entry, f"{{{ATOM}}}id").text = f"{base_url}/updates/{update.id}"
        ET.SubElement(entry, f"{{{ATOM}}}link", href=f"{base_url}/updates/{update.id}")
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = (
            update.edited_at or update.created_at
        ).isoformat()
        ET.SubElement(
            ET.SubElement(entry, f"{{{ATOM}}}author"), f"{{{ATOM}}}name"
        ).text = author.name
        # The same sanitised HTML as the archive; the XML library escapes it once more.
        content = ET.SubElement(entry, f"{{{ATOM}}}content", type="html")
        content.text = str(render_markdown(update.body, links))
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")


@router.get("/teams/{slug}/feed.atom")
def team_feed(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: ViewerDep,
    slug: str,
    t: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    reader = _reader(session, settings, t) if t else viewer
    try:
        team = store.get_team(session, slug)
    except NotFound:
        team = None
    if team is None or team.id not in store.viewable_team_ids(session, reader):
        return Response(
            "No feed here: use the feed link from the team's page while signed in.",
            status_code=status.HTTP_404_NOT_FOUND,
            media_type="text/plain",
        )
    return Response(atom_feed(session, team, settings.base_url), media_type="application/atom+xml")

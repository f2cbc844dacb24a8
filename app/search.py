"""`search_updates()`: full-text search over updates, one query language, two engines.

Each update is indexed with its thread's title. SQLite uses an FTS5 table (porter
stemming, accents ignored) and PostgreSQL a trigger-kept `tsvector` column with a GIN
index (`websearch_to_tsquery`, English stemming; accents are not folded there without
the `unaccent` extension); both come from migration 0004. The query language, on both:

    words              every word must match (stemmed: "shipping" finds "shipped")
    "a phrase"         the words in this order
    -word              leave out updates with this word
    from:alice         by a member whose name or address starts with "alice"
    in:word            in a thread whose title contains "word"
    before:2026-12-01  posted before that day (UTC); after: likewise, from that day on
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine, column, func, literal_column, or_, table, text
from sqlmodel import Session, select

from app.models import Person, Thread, Update

# Engine-specific search objects that live only in migration 0004, not in the models.
SEARCH_OBJECTS = ("update_fts", "search_vector", "ix_update_search_vector")
MARK_START, MARK_END = "\x02", "\x03"  # snippet highlight markers, never in stored text
# The engine-specific objects, as lightweight table constructs (not mapped models).
_FTS = table("update_fts", column("rowid"), column("update_fts"))
_VECTOR = literal_column('"update".search_vector')  # a column of the mapped table, unmapped
_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')
_WORD = re.compile(r"\w+")


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    """For Alembic: leave the search objects out of schema comparisons."""
    return not (name or "").startswith(SEARCH_OBJECTS)


@dataclass
class SearchQuery:
    """A parsed query: text terms for the engine, and filters for plain SQL."""

    terms: list[str] = field(default_factory=list)  # words and "phrases"
    excluded: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    in_title: list[str] = field(default_factory=list)
    before: date | None = None
    after: date | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.terms or self.authors or self.in_title or self.before or self.after)


def parse_query(query: str) -> SearchQuery:
    """Split a search box's text into terms and filters; unknown syntax is just words."""
    parsed = SearchQuery()
    for match in _TOKEN.finditer(query):
        negated, phrase, token = match.group(1), match.group(2), match.group(3)
        if phrase is not None:
            words = " ".join(_WORD.findall(phrase))
            if words:
                (parsed.excluded if negated else parsed.terms).append(words)
            continue
        key, _, value = token.partition(":")
        if value and key.lower() in ("from", "in", "before", "after"):
            _add_filter(parsed, key.lower(), value)
        elif token.startswith("-") and len(token) > 1:
            parsed.excluded.extend(_WORD.findall(token[1:]))
        else:
            parsed.terms.extend(_WORD.findall(token))
    return parsed


def _add_filter(parsed: SearchQuery, key: str, value: str) -> None:
    if key == "from":
        parsed.authors.append(value.lower())
    elif key == "in":
        parsed.in_title.append(value.lower())
    else:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            parsed.terms.extend(_WORD.findall(value))  # not a date: search it as words
            return
        if key == "before":
            parsed.before = day
        else:
            parsed.after = day


@dataclass(frozen=True)
class SearchHit:
    update: Update
    author: Person
    thread: Thread
    snippet: str  # highlights between MARK_START and MARK_END

    @property
    def plain_snippet(self) -> str:
        return self.snippet.replace(MARK_START, "").replace(MARK_END, "")


def _fts5_match(parsed: SearchQuery) -> str:
    """An FTS5 MATCH expression: every term quoted (so no user text is FTS5 syntax)."""
    positive = " AND ".join(f'"{term}"' for term in parsed.terms)
    negative = "".join(f' NOT "{term}"' for term in parsed.excluded)
    return positive + negative


def _websearch_text(parsed: SearchQuery) -> str:
    terms = [f'"{t}"' if " " in t else t for t in parsed.terms]
    return " ".join(terms + [f'-"{t}"' for t in parsed.excluded])


def search_updates(
    session: Session, query: str, team_ids: Sequence[int], limit: int = 50, offset: int = 0
) -> list[SearchHit]:
    """Updates in `team_ids` matching `query` (see the module docstring), best first.

    Only updates in the given teams are ever looked at: callers pass the teams the
    viewer may see.
    """
    parsed = parse_query(query)
    if parsed.is_empty or not team_ids:
        return []
    engine: Engine = session.get_bind()  # type: ignore[assignment]
    stmt = (
        select(Update, Person, Thread)
        .join(Person, Person.id == Update.author_id)
        .join(Thread, Thread.id == Update.thread_id)
        .where(Update.team_id.in_(team_ids))  # type: ignore[attr-defined]
        .where(Thread.deleted_at.is_(None))  # type: ignore[union-attr]
    )
    for author in parsed.authors:
        stmt = stmt.where(
            or_(func.lower(Person.name).startswith(author), Person.email.startswith(author))  # type: ignore[attr-defined]
        )
    for word in parsed.in_title:
        stmt = stmt.where(func.lower(Thread.title).contains(word, autoescape=True))
    if parsed.before:
        stmt = stmt.where(Update.created_at < datetime.combine(parsed.before, time(), UTC))
    if parsed.after:
        stmt = stmt.where(Update.created_at >= datetime.combine(parsed.after, time(), UTC))
    rank: Any = Update.created_at.desc()  # type: ignore[attr-defined]
    snippet: Any = None
    if parsed.terms:
        if engine.dialect.name == "sqlite":
            fts = literal_column("update_fts")
            stmt = stmt.join(_FTS, _FTS.c.rowid == Update.id).where(
                _FTS.c.update_fts.op("MATCH")(_fts5_match(parsed))
            )
            rank = func.bm25(fts, 2.0, 1.0)  # a title match weighs twice a body match
            snippet = func.snippet(fts, 1, MARK_START, MARK_END, "…", 16)
        else:
            tsquery = func.websearch_to_tsquery("english", _websearch_text(parsed))
            vector = _VECTOR
            stmt = stmt.where(vector.op("@@")(tsquery))
            rank = func.ts_rank(vector, tsquery).desc()
            snippet = func.ts_headline(
                "english",
                Update.body,
                tsquery,
                f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=30, MinWords=12",
            )
    elif parsed.excluded:
        return []  # "everything except …" is not a search
    if snippet is not None:
        stmt = stmt.add_columns(snippet)
    stmt = stmt.order_by(rank, Update.id.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
    hits = []
    for row in session.exec(stmt).all():  # type: ignore[call-overload]
        update, author, thread = row[0], row[1], row[2]
        excerpt = row[3] if snippet is not None else " ".join(update.body.split()[:30])
        hits.append(SearchHit(update, author, thread, excerpt))
    return hits


SQLITE_REINDEX = (
    "DELETE FROM update_fts",
    """INSERT INTO update_fts(rowid, title, body)
        SELECT u.id, t.title, u.body FROM "update" u JOIN thread t ON t.id = u.thread_id""",
)
POSTGRES_REINDEX = (
    """UPDATE "update" u SET search_vector =
        setweight(to_tsvector('english', t.title), 'A')
        || setweight(to_tsvector('english', u.body), 'B')
        FROM thread t WHERE t.id = u.thread_id""",
    "REINDEX INDEX ix_update_search_vector",
)


def reindex(session: Session) -> str:
    """Rebuild the search index from the stored text; returns what was done."""
    if session.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_REINDEX:
            session.exec(text(statement))  # type: ignore[call-overload]
        return "Rebuilt the SQLite FTS5 index."
    for statement in POSTGRES_REINDEX:
        session.exec(text(statement))  # type: ignore[call-overload]
    return "Rebuilt the PostgreSQL search vectors and their GIN index."

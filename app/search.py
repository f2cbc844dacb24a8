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

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Float, Integer, bindparam, column, func, literal_column, or_, table, text
from sqlmodel import Session, select

from app.models import Person, Team, Thread, Update

# Engine-specific search objects that live only in migration 0004, not in the models.
SEARCH_OBJECTS = ("update_fts", "search_vector", "ix_update_search_vector")
MARK_START, MARK_END = "\x02", "\x03"  # snippet highlight markers, never in stored text
# The PostgreSQL search column, which is not in the mapped model.
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
    if parsed.is_empty or not team_ids or limit <= 0:
        return []
    if not parsed.terms and parsed.excluded:
        return []  # "everything except …" is not a search
    if not parsed.terms:
        return _in_one_statement(session, parsed, team_ids, limit, offset)
    if session.get_bind().dialect.name == "sqlite":
        best = _sqlite_ranked_first(session, parsed, team_ids, offset + limit)
        if best is None:
            return _in_one_statement(session, parsed, team_ids, limit, offset)
        page = best[offset:]
        snippets = _sqlite_snippets(session, parsed, page)
    else:
        page, snippets = _postgres_page(session, parsed, team_ids, limit, offset)
    if not page:
        return []
    # The page's rows, read in a statement of their own (so filtered once more).
    stmt = _visible(select(Update, Person, Thread), parsed, team_ids, person=True)
    rows = session.exec(stmt.where(Update.id.in_(page)))  # type: ignore[union-attr]
    found = {update.id: (update, author, thread) for update, author, thread in rows}
    return [
        SearchHit(*found[update_id], snippets.get(update_id, ""))
        for update_id in page
        if update_id in found
    ]


def _visible(
    stmt: Any,
    parsed: SearchQuery,
    team_ids: Sequence[int],
    person: bool = False,
    team_index: bool = True,
) -> Any:
    """`stmt` (a SELECT from updates) joined to threads, and to authors if `person` or the
    query needs them, and kept to the updates in `team_ids` that pass the query's filters.

    `team_index=False` writes the team condition so that PostgreSQL does not use the
    team_id index for it (for when it keeps every row).
    """
    stmt = stmt.join(Thread, Thread.id == Update.thread_id)
    if person or parsed.authors:
        stmt = stmt.join(Person, Person.id == Update.author_id)
    team: Any = Update.team_id if team_index else Update.team_id + 0
    stmt = stmt.where(team.in_(team_ids)).where(Thread.deleted_at.is_(None))  # type: ignore[union-attr]
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
    return stmt


def _in_one_statement(
    session: Session, parsed: SearchQuery, team_ids: Sequence[int], limit: int, offset: int
) -> list[SearchHit]:
    """One statement: filters alone (newest first, the opening words as the snippet), or
    on SQLite each FTS5 match's row read and filtered, and the visible ones ranked."""
    stmt = _visible(select(Update, Person, Thread), parsed, team_ids, person=True)
    rank: Any = Update.created_at.desc()  # type: ignore[attr-defined]
    if parsed.terms:
        fts = literal_column("update_fts")
        stmt = stmt.join(_FTS, _FTS.c.rowid == Update.id).where(
            _FTS.c.update_fts.op("MATCH")(_fts5_match(parsed))
        )
        rank = func.bm25(fts, 2.0, 1.0)  # a title match weighs twice a body match
        stmt = stmt.add_columns(func.snippet(fts, 1, MARK_START, MARK_END, "…", 16))
    stmt = stmt.order_by(rank, Update.id.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
    return [
        SearchHit(row[0], row[1], row[2], row[3] if parsed.terms else _opening(row[0].body))
        for row in session.exec(stmt)
    ]


def _opening(body: str) -> str:
    return " ".join(body.split()[:30])


# SQLite can find a page of matches in two ways. Filtered first (one statement): each
# FTS5 match's row is read and filtered, and the visible ones ranked. Ranked first: FTS5
# ranks every match by itself and keeps the best few, and only those rows are read and
# filtered. Ranking a match costs about half of reading its row, so ranked first wins
# when most matches are visible (a viewer of every team: by far, for a common word), and
# filtered first when few are and the matches are not many.
# Relative costs per row, measured with bench/search.py on SQLite 3.40:
_READ_ROW, _RANK, _JOIN_RANKED = 1.3, 0.7, 2.7
_FTS = table("update_fts", column("rowid"), column("update_fts"))
_FTS5_RANKED = (  # best first, as in _in_one_statement
    "SELECT rowid AS id, bm25(update_fts, 2.0, 1.0) AS score FROM update_fts"
    " WHERE update_fts MATCH :match ORDER BY score, rowid DESC LIMIT :take"
)
_FTS5_COUNT = text("SELECT count(*) FROM update_fts WHERE update_fts MATCH :match")
# "+rowid": FTS5 goes through the matches once and makes snippets for the page only; with a
# plain "rowid IN" it would look each one up, which for several words costs ten times as much.
_FTS5_SNIPPETS = text(
    "SELECT rowid, snippet(update_fts, 1, :start, :end, '…', 16) FROM update_fts"
    " WHERE update_fts MATCH :match AND +rowid IN :ids"
).bindparams(bindparam("ids", expanding=True))


def _sqlite_ranked_first(
    session: Session, parsed: SearchQuery, team_ids: Sequence[int], wanted: int
) -> list[int] | None:
    """The ids of the best `wanted` visible matches, best first, found ranked first; None
    where filtering first is the cheaper way (or the only sure one: see above)."""
    if parsed.authors or parsed.in_title or parsed.before or parsed.after:
        return None  # how many pass is anyone's guess
    match = _fts5_match(parsed)
    teams = session.exec(select(func.count()).select_from(Team)).one()  # type: ignore[call-overload]
    share = min(1.0, len(set(team_ids)) / max(teams, 1))  # of the updates, roughly
    matches: int | None = None
    take = wanted
    if share < 1:
        take = math.ceil(wanted / share * 1.5)  # enough to fill the page, most likely
        matches = session.exec(_FTS5_COUNT, params={"match": match}).one()[0]  # type: ignore[call-overload]
        ranked_first = matches * _RANK + min(take, matches) * _JOIN_RANKED
        if matches * (_READ_ROW + share * _RANK) <= ranked_first:
            return None
    ranked = (
        text(_FTS5_RANKED)
        .bindparams(match=match, take=take)
        .columns(column("id", Integer), column("score", Float))
        .subquery("ranked")
    )
    stmt = select(ranked.c.id).select_from(ranked).join(Update, Update.id == ranked.c.id)
    stmt = _visible(stmt, parsed, team_ids).order_by(ranked.c.score, ranked.c.id.desc())
    found = list(session.exec(stmt))  # type: ignore[call-overload]
    if len(found) >= wanted:
        return found[:wanted]
    if matches is None:
        matches = session.exec(_FTS5_COUNT, params={"match": match}).one()[0]  # type: ignore[call-overload]
    return found if take >= matches else None  # all matches seen, or the page is not full


def _sqlite_snippets(session: Session, parsed: SearchQuery, page: list[int]) -> dict[int, str]:
    if not page:
        return {}
    rows = session.connection().execute(
        _FTS5_SNIPPETS,
        {"start": MARK_START, "end": MARK_END, "match": _fts5_match(parsed), "ids": page},
    )
    return {row[0]: row[1] for row in rows}


def _postgres_page(
    session: Session, parsed: SearchQuery, team_ids: Sequence[int], limit: int, offset: int
) -> tuple[list[int], dict[int, str]]:
    """The page's ids, best first, and their snippets (ts_headline, for the page only)."""
    tsquery = func.websearch_to_tsquery("english", _websearch_text(parsed))
    # For a viewer of every team (an organisation-wide token), the team condition keeps
    # every row; written plainly, the planner would AND in a bitmap of the whole table.
    others = select(func.count()).select_from(Team).where(Team.id.not_in(team_ids))  # type: ignore[union-attr]
    every_team = session.exec(others).one() == 0  # type: ignore[call-overload]
    stmt = (
        _visible(select(Update.id), parsed, team_ids, team_index=not every_team)
        .where(_VECTOR.op("@@")(tsquery))
        .order_by(func.ts_rank(_VECTOR, tsquery).desc(), Update.id.desc())  # type: ignore[attr-defined]
        .limit(limit)
        .offset(offset)
    )
    page = list(session.exec(stmt))  # type: ignore[call-overload]
    if not page:
        return [], {}
    headline = func.ts_headline(
        "english",
        Update.body,
        tsquery,
        f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=30, MinWords=12",
    )
    rows = session.exec(select(Update.id, headline).where(Update.id.in_(page)))  # type: ignore[call-overload,union-attr]
    return page, {update_id: snippet for update_id, snippet in rows}


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


# FTS5 writes its index in merge after merge. Past SQLite's page cache (2 MB unless set),
# each page it reads back is looked for in the write-ahead log, which grows with the one
# big transaction: a million updates took 15 minutes (bench/search.py). With a cache about
# the size of the database, up to this, they take about 3.
REINDEX_CACHE_MAX = 2 * 2**30


def reindex(session: Session) -> str:
    """Rebuild the search index from the stored text; returns what was done."""
    if session.get_bind().dialect.name == "sqlite":
        connection = session.connection()
        pragma = connection.exec_driver_sql
        page_size = pragma("PRAGMA page_size").scalar_one()
        cache = pragma("PRAGMA cache_size").scalar_one()  # pages, or KiB when negative
        size = pragma("PRAGMA page_count").scalar_one() * page_size
        kib = min(size, REINDEX_CACHE_MAX) // 1024
        if kib > (-cache if cache < 0 else cache * page_size // 1024):
            pragma(f"PRAGMA cache_size = {-kib}")
        try:
            for statement in SQLITE_REINDEX:
                session.exec(text(statement))  # type: ignore[call-overload]
        finally:
            pragma(f"PRAGMA cache_size = {int(cache)}")
        return "Rebuilt the SQLite FTS5 index."
    for statement in POSTGRES_REINDEX:
        session.exec(text(statement))  # type: ignore[call-overload]
    return "Rebuilt the PostgreSQL search vectors and their GIN index."

"""Search: index build time, database size and query latency over a million updates, as a
ratio to the engine's bare full-text query, on SQLite and on PostgreSQL.

    .venv/bin/python bench/search.py [--updates 1000000] [--engine both]
    .venv/bin/python bench/search.py --quick                    # 50,000 updates, a fast check
    .venv/bin/python bench/search.py --engine postgresql \\
        --database-url postgresql://postgres@127.0.0.1:5432/test

The archive is generated from a fixed seed: 50 teams of 20 people, a thread per ten of a
team's updates (titled from the same words), and updates of 50-300 words in sentences and
paragraphs, posted evenly over three years. Words follow Zipf's law (the word of rank r
is used in proportion to 1/r) over a vocabulary of about 5,300: 93 English function
words first, then about 250 common words of office life, then 5,000 pronounceable
pseudo-words made from the seed. The schema is the real one (`app.db.upgrade`); updates
are bulk-loaded (generated in two child processes, inserted with executemany on SQLite and
COPY on PostgreSQL) with the search triggers off, which is set-up and not counted.

Index build is then `app.search.reindex`, exactly what `tidings search reindex` runs:
on SQLite it fills the FTS5 table (then the WAL is checkpointed, counted), on PostgreSQL it
computes every update's tsvector and rebuilds the GIN index. After it PostgreSQL gets
`VACUUM FULL ANALYZE` (timed, not counted), so the size is that of a database whose
updates were indexed as they arrived rather than one carrying a million dead row versions.

Queries, 200 of each kind from a fixed seed (a separate warm-up set runs first):

* 1, 2 and 3 words: drawn uniformly from the vocabulary less its function words (nobody
  searches for "the"; PostgreSQL drops such stop words anyway), as a viewer who may see all
  50 teams (an organisation-wide API token): the most matches a query can have.
* a phrase with a team filter: two or three consecutive words (not function words) of a
  random stored update, in quotes, as a viewer who may see only that update's team.

Each query runs through `search_updates(session, query, team_ids)` in a new session, as a
request does (ranking, snippets, authors and threads, 50 per page), and as the baseline
through the engine's bare full-text query on an open connection, without ranking,
snippets or joins, with the same page size and, for the phrase, the same team filter:

    SQLite      SELECT rowid FROM update_fts WHERE update_fts MATCH ? LIMIT 50
    PostgreSQL  SELECT id FROM "update"
                WHERE search_vector @@ websearch_to_tsquery('english', ?) LIMIT 50

The two alternate which goes first. Latencies are wall-clock milliseconds in this process;
the target is p95 under 50 ms for `search_updates` on both engines.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, insert
from sqlalchemy.engine import make_url
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from throwaway import throwaway_database  # bench/, next to this file

from app.db import make_engine, session_scope, upgrade
from app.models import Membership, Person, Team, Thread
from app.models import Update as UpdateRow
from app.search import _fts5_match, _websearch_text, parse_query, reindex, search_updates

DEFAULT_PG = os.environ.get("TIDINGS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)
TEAMS = 50
PEOPLE_PER_TEAM = 20
UPDATES_PER_THREAD = 10
CHUNK = 5_000  # updates generated per task; the data depend on it, so it is fixed
PAGE = 50  # search_updates' default page size, used for the baseline too
TARGET_MS = 50.0
PSEUDO_WORDS = 5_000
FUNCTION = (
    "the", "of", "and", "to", "a", "in", "is", "it", "that", "for", "on", "was", "with", "as",
    "at", "be", "this", "have", "from", "or", "by", "not", "but", "are", "we", "they", "you",
    "i", "he", "she", "his", "her", "an", "will", "my", "all", "there", "so", "if", "about",
    "up", "out", "what", "which", "when", "one", "their", "can", "has", "would", "our", "more",
    "no", "been", "just", "then", "also", "into", "some", "than", "its", "them", "do", "only",
    "any", "could", "these", "other", "like", "new", "over", "after", "did", "how", "where",
    "before", "two", "because", "through", "now", "me", "who", "each", "most", "very", "both",
    "too", "even", "still", "while", "your", "those", "should"
)  # fmt: skip
COMMON = (
    "work", "team", "project", "release", "deploy", "migration", "review", "customer",
    "meeting", "plan", "week", "today", "tomorrow", "yesterday", "report", "budget", "design",
    "draft", "spec", "feedback", "test", "tests", "bug", "fix", "issue", "ticket", "support",
    "server", "database", "query", "index", "cache", "queue", "retry", "worker", "cluster",
    "region", "alert", "incident", "outage", "latency", "error", "errors", "logs", "metrics",
    "dashboard", "api", "endpoint", "client", "service", "schema", "table", "column", "backup",
    "restore", "import", "export", "billing", "invoice", "payment", "account", "login", "user",
    "users", "email", "message", "notification", "mobile", "android", "browser", "page",
    "search", "results", "data", "pipeline", "job", "jobs", "task", "tasks", "sprint",
    "roadmap", "quarter", "goal", "goals", "hiring", "interview", "candidate", "onboarding",
    "training", "docs", "documentation", "wiki", "notes", "decision", "proposal", "estimate",
    "timeline", "deadline", "launch", "rollout", "rollback", "staging", "production", "config",
    "settings", "flag", "feature", "features", "branch", "merge", "commit", "build", "builds",
    "ci", "checks", "lint", "refactor", "cleanup", "performance", "memory", "cpu", "disk",
    "network", "security", "audit", "access", "permissions", "token", "password", "certificate",
    "vendor", "contract", "legal", "finance", "sales", "marketing", "campaign", "design",
    "mockup", "prototype", "research", "survey", "analysis", "experiment", "metric", "growth",
    "revenue", "cost", "costs", "savings", "risk", "risks", "blocker", "blocked", "unblocked",
    "done", "started", "finished", "shipped", "merged", "fixed", "tested", "deployed",
    "reviewed", "paired", "measured", "investigated", "discussed", "agreed", "scheduled",
    "moved", "updated", "wrote", "read", "call", "calls", "sync", "standup", "retro", "demo",
    "presentation", "slides", "workshop", "offsite", "travel", "vacation", "holiday", "leave",
    "sick", "office", "remote", "home", "laptop", "monitor", "keyboard", "coffee", "lunch",
    "team", "lead", "manager", "engineer", "designer", "analyst", "product", "owner",
    "stakeholder", "partner", "contractor", "intern", "morning", "afternoon", "evening",
    "monday", "tuesday", "wednesday", "thursday", "friday", "weekend", "month", "year",
    "progress", "status", "update", "updates", "summary", "question", "answer", "help",
    "thanks", "problem", "solution", "idea", "ideas", "change", "changes", "version", "upgrade",
    "install", "setup", "script", "tool", "tools", "library", "package", "dependency",
    "dependencies", "container", "image", "cloud", "storage", "bucket", "file", "files",
    "folder"
)  # fmt: skip
ONSETS = "b bl br c ch cl cr d dr f fl fr g gl gr h j k l m n p pl pr qu r s sh sl st t th tr v w z"
VOWELS = "a e i o u a e i o ai ea ee io ou oo"
CODAS = ("", "", "", "", "n", "r", "l", "s", "t", "m", "nd", "rk", "st", "ck", "ll", "nt", "ng")
WORD = re.compile(r"[A-Za-z]+")


def vocabulary(seed: int) -> list[str]:
    """The words in rank order: function words, common words, then pseudo-words."""
    rng = random.Random(f"vocabulary-{seed}")
    onsets, vowels = ONSETS.split(), VOWELS.split()
    words = list(dict.fromkeys(FUNCTION + COMMON))
    seen = set(words)
    pseudo: list[str] = []
    while len(pseudo) < PSEUDO_WORDS:
        syllables = rng.choice((2, 2, 2, 3, 3, 1))
        word = "".join(
            rng.choice(onsets) + rng.choice(vowels) + rng.choice(CODAS) for _ in range(syllables)
        )
        if 3 <= len(word) <= 12 and word not in seen:
            seen.add(word)
            pseudo.append(word)
    common = words[len(FUNCTION) :]
    rng.shuffle(common)
    return words[: len(FUNCTION)] + common + pseudo


def zipf_weights(size: int) -> list[float]:
    return list(itertools.accumulate(1.0 / rank for rank in range(1, size + 1)))


_VOCAB: list[str] = []
_CUM: list[float] = []


def _init_generator(seed: int) -> None:
    global _VOCAB, _CUM
    _VOCAB = vocabulary(seed)
    _CUM = zipf_weights(len(_VOCAB))


def update_text(rng: random.Random) -> str:
    """50-300 words in sentences of 4-18 words and paragraphs of 1-5 sentences."""
    words = rng.choices(_VOCAB, cum_weights=_CUM, k=rng.randint(50, 300))
    paragraphs: list[str] = []
    sentences: list[str] = []
    at = 0
    while at < len(words):
        part = words[at : at + rng.randint(4, 18)]
        at += len(part)
        sentences.append(part[0].capitalize() + " " + " ".join(part[1:]) + ".")
        if rng.random() < 0.3 or at >= len(words):
            paragraphs.append(" ".join(sentences))
            sentences = []
    return "\n\n".join(paragraphs)


def generate_chunk(task: tuple[int, int, int]) -> list[tuple[int, int, str]]:
    """Updates start..start+count-1 of the archive: (number, author pick, body)."""
    seed, start, count = task
    rng = random.Random(f"updates-{seed}-{start}")
    return [
        (n, rng.randrange(PEOPLE_PER_TEAM), update_text(rng)) for n in range(start, start + count)
    ]


@dataclass(frozen=True)
class Scale:
    updates: int
    seed: int


@dataclass
class Loaded:
    team_ids: list[int]
    threads: int
    people: int
    seconds: float


def _insert(conn: Any, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Bulk insert (executemany); the new ids, in the order of `rows`."""
    query = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in conn.execute(query, rows)]


def generated(scale: Scale) -> Iterator[list[tuple[int, int, str]]]:
    """The updates in order, chunk by chunk, from two child processes (a few chunks ahead)."""
    tasks = [
        (scale.seed, start, min(CHUNK, scale.updates - start))
        for start in range(0, scale.updates, CHUNK)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(2, initializer=_init_generator, initargs=(scale.seed,)) as pool:
        pending = [pool.apply_async(generate_chunk, (task,)) for task in tasks[:4]]
        for task in tasks[4:]:
            yield pending.pop(0).get()
            pending.append(pool.apply_async(generate_chunk, (task,)))
        for result in pending:
            yield result.get()


def progress_printer(what: str, total: int) -> Callable[[int], None]:
    start = time.perf_counter()

    def show(done: int) -> None:
        rate = done / max(time.perf_counter() - start, 1e-9)
        print(f"\r  {what} {done:,}/{total:,} ({rate:,.0f}/s)", end="", file=sys.stderr)
        if done >= total:
            print(file=sys.stderr)

    return show


def populate(url: str, scale: Scale) -> Loaded:
    """The schema, then teams, people, threads and updates, with the search triggers off."""
    start = time.perf_counter()
    upgrade(url)
    rng = random.Random(f"archive-{scale.seed}")
    vocab = vocabulary(scale.seed)
    cum = zipf_weights(len(vocab))
    sqlite = make_url(url).get_backend_name() == "sqlite"
    engine = make_engine(url)
    per_team = -(-scale.updates // TEAMS // UPDATES_PER_THREAD) or 1
    with engine.begin() as conn:
        team_ids = _insert(
            conn,
            Team.__table__,  # type: ignore[arg-type]
            [
                Team(slug=f"team-{n:02d}", name=f"Team {n}", created_at=NOW - SPAN).model_dump(
                    exclude={"id"}
                )
                for n in range(TEAMS)
            ],
        )
        person_ids = _insert(
            conn,
            Person.__table__,  # type: ignore[arg-type]
            [
                Person(
                    email=f"person{n}@example.com", name=f"Person {n}", created_at=NOW - SPAN
                ).model_dump(exclude={"id"})
                for n in range(TEAMS * PEOPLE_PER_TEAM)
            ],
        )
        members = [
            person_ids[t * PEOPLE_PER_TEAM : (t + 1) * PEOPLE_PER_TEAM] for t in range(TEAMS)
        ]
        _insert(
            conn,
            Membership.__table__,  # type: ignore[arg-type]
            [
                {"team_id": team_ids[t], "person_id": p, "joined_at": NOW - SPAN}
                for t in range(TEAMS)
                for p in members[t]
            ],
        )
        step = SPAN / max(1, scale.updates)
        thread_rows = []
        for t in range(TEAMS):
            for j in range(per_team):
                # Thread j of team t holds that team's updates j*10 .. j*10+9.
                first = NOW - SPAN + (j * UPDATES_PER_THREAD * TEAMS + t) * step
                words = rng.choices(vocab, cum_weights=cum, k=rng.randint(2, 6))
                thread_rows.append(
                    {
                        "team_id": team_ids[t],
                        "title": " ".join(words).capitalize(),
                        "created_at": first,
                        "last_activity_at": first + UPDATES_PER_THREAD * TEAMS * step,
                    }
                )
        thread_ids = _insert(conn, Thread.__table__, thread_rows)  # type: ignore[arg-type]
        if sqlite:
            triggers = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'update'"
            ).all()
            for name, _ in triggers:
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
        else:
            conn.exec_driver_sql('ALTER TABLE "update" DISABLE TRIGGER update_search_vector')

    def row(n: int, pick: int, body: str) -> tuple[Any, ...]:
        t, j = n % TEAMS, n // TEAMS // UPDATES_PER_THREAD
        return (
            team_ids[t],
            thread_ids[t * per_team + j],
            members[t][pick],
            body,
            "",
            True,
            "bench",
            NOW - SPAN + n * step,
        )

    columns = (
        "team_id, thread_id, author_id, body, quoted, extraction_confident, placed_by, created_at"
    )
    show = progress_printer("loading updates", scale.updates)
    done = 0
    if sqlite:
        table = UpdateRow.__table__  # type: ignore[attr-defined]
        names = [c.strip() for c in columns.split(",")]
        for chunk in generated(scale):
            with engine.begin() as conn:
                conn.execute(insert(table), [dict(zip(names, row(*u), strict=True)) for u in chunk])
            done += len(chunk)
            show(done)
        with engine.begin() as conn:
            for _, sql in triggers:
                conn.exec_driver_sql(sql)
    else:
        import psycopg

        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain) as pg, pg.cursor() as cur:
            with cur.copy(f'COPY "update" ({columns}) FROM STDIN') as copy:
                for chunk in generated(scale):
                    for u in chunk:
                        copy.write_row(row(*u))
                    done += len(chunk)
                    show(done)
            cur.execute('ALTER TABLE "update" ENABLE TRIGGER update_search_vector')
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")  # planner statistics, as a live database has them
    engine.dispose()
    return Loaded(team_ids, len(thread_ids), len(person_ids), time.perf_counter() - start)


@contextmanager
def database(engine_name: str, pg_url: str) -> Iterator[str]:
    """A new, empty database: a SQLite file in a temporary folder, or one created on the
    PostgreSQL server `pg_url` names (and dropped afterwards), so nothing there is touched."""
    with throwaway_database(None if engine_name == "sqlite" else pg_url) as fresh:
        yield fresh


def postgres_reachable(pg_url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        parsed = make_url(pg_url)
    except Exception as exc:  # reported, not raised
        return str(exc)
    if parsed.get_backend_name() != "postgresql":
        return "not a PostgreSQL URL"
    import psycopg

    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        psycopg.connect(admin, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


@dataclass
class Built:
    seconds: float
    size_before: int  # bytes, the loaded database without the search index
    size_after: int
    vacuum_seconds: float = 0.0
    detail: str = ""


def build_index(engine: Engine) -> Built:
    """`reindex()` as `tidings search reindex` runs it, timed; sizes before and after."""
    backend = engine.dialect.name
    size_before = database_size(engine)
    start = time.perf_counter()
    with session_scope(engine) as session:
        detail = reindex(session)
    if backend == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    seconds = time.perf_counter() - start
    vacuum = 0.0
    if backend != "sqlite":
        print("  VACUUM FULL ANALYZE (not counted) ...", file=sys.stderr)
        start = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (FULL, ANALYZE)")
        vacuum = time.perf_counter() - start
    return Built(seconds, size_before, database_size(engine), vacuum, detail)


def database_size(engine: Engine) -> int:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            return int(pages * page_size)
        return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())


def search_index_size(engine: Engine) -> int:
    """Bytes of the search index alone: the FTS5 tables, or the tsvectors and GIN index."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            try:
                return int(
                    conn.exec_driver_sql(
                        "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'update_fts%'"
                    ).scalar_one()
                )
            except Exception:  # dbstat is an optional module
                return -1
        return int(
            conn.exec_driver_sql(
                "SELECT pg_relation_size('ix_update_search_vector')"
                ' + (SELECT sum(pg_column_size(search_vector)) FROM "update")'
            ).scalar_one()
        )


@dataclass
class Query:
    text: str
    team_ids: list[int]


@dataclass
class Kind:
    name: str
    queries: list[Query]
    ours: list[float] = field(default_factory=list)  # milliseconds
    bare: list[float] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)  # results on the first page


def make_queries(engine: Engine, seed: int, per_kind: int, team_ids: list[int]) -> list[Kind]:
    """The query kinds, each with `per_kind` queries from the seed."""
    rng = random.Random(f"queries-{seed}")
    content = vocabulary(seed)[len(FUNCTION) :]
    function = set(FUNCTION)
    kinds = [
        Kind(
            f"{n} word{'s' if n > 1 else ''}",
            [Query(" ".join(rng.sample(content, n)), team_ids) for _ in range(per_kind)],
        )
        for n in (1, 2, 3)
    ]
    with engine.connect() as conn:
        low, high = conn.exec_driver_sql('SELECT min(id), max(id) FROM "update"').one()
        phrases: list[Query] = []
        while len(phrases) < per_kind:
            body, team_id = conn.exec_driver_sql(
                'SELECT body, team_id FROM "update" WHERE id = ?'
                if engine.dialect.name == "sqlite"
                else 'SELECT body, team_id FROM "update" WHERE id = %s',
                (rng.randint(low, high),),
            ).one()
            length = rng.choice((2, 3))
            sentences = [WORD.findall(s) for s in body.split(".")]
            runs = [
                words[i : i + length]
                for words in sentences
                for i in range(len(words) - length + 1)
                if not function.intersection(w.lower() for w in words[i : i + length])
            ]
            if runs:
                phrases.append(Query('"' + " ".join(rng.choice(runs)).lower() + '"', [team_id]))
    kinds.append(Kind("phrase, 1 team", phrases))
    return kinds


def bare_sql(engine: Engine, query: Query, all_teams: int, count: bool = False) -> tuple[str, Any]:
    """The engine's bare full-text query for `query` (a team filter only if it has one)."""
    parsed = parse_query(query.text)
    filtered = len(query.team_ids) < all_teams
    what = "count(*)" if count else "{id}"
    limit = "" if count else f" LIMIT {PAGE}"
    if engine.dialect.name == "sqlite":
        if filtered:
            teams = ",".join("?" * len(query.team_ids))
            sql = (
                f"SELECT {what.format(id='f.rowid')} FROM update_fts f"
                ' JOIN "update" u ON u.id = f.rowid'
                f" WHERE update_fts MATCH ? AND u.team_id IN ({teams})" + limit
            )
            return sql, (_fts5_match(parsed), *query.team_ids)
        sql = f"SELECT {what.format(id='rowid')} FROM update_fts WHERE update_fts MATCH ?" + limit
        return sql, (_fts5_match(parsed),)
    sql = (
        f'SELECT {what.format(id="id")} FROM "update"'
        " WHERE search_vector @@ websearch_to_tsquery('english', %s)"
    )
    if filtered:
        sql += " AND team_id = ANY(%s)"
        return sql + limit, (_websearch_text(parsed), query.team_ids)
    return sql + limit, (_websearch_text(parsed),)


def measure(engine: Engine, kinds: list[Kind], all_teams: int, record: bool) -> None:
    """Each query through search_updates() and bare, alternating which goes first."""
    with engine.connect() as conn:
        flip = False
        for kind in kinds:
            for query in kind.queries:
                sql, params = bare_sql(engine, query, all_teams)

                def ours(query: Query = query) -> tuple[float, int]:
                    start = time.perf_counter()
                    with Session(engine) as session:
                        found = len(search_updates(session, query.text, query.team_ids))
                    return (time.perf_counter() - start) * 1000, found

                def bare(sql: str = sql, params: Any = params) -> float:
                    start = time.perf_counter()
                    conn.exec_driver_sql(sql, params).all()
                    seconds = time.perf_counter() - start
                    conn.rollback()  # no transaction (or snapshot) lives across queries
                    return seconds * 1000

                if flip:
                    ms, found = ours()
                    bare_ms = bare()
                else:
                    bare_ms = bare()
                    ms, found = ours()
                flip = not flip
                if record:
                    kind.ours.append(ms)
                    kind.bare.append(bare_ms)
                    kind.hits.append(found)


def count_matches(engine: Engine, kinds: list[Kind], all_teams: int) -> None:
    with engine.connect() as conn:
        for kind in kinds:
            for query in kind.queries:
                sql, params = bare_sql(engine, query, all_teams, count=True)
                kind.matches.append(int(conn.exec_driver_sql(sql, params).scalar_one()))


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def run_engine(engine_name: str, pg_url: str, scale: Scale, per_kind: int) -> None:
    with database(engine_name, pg_url) as url:
        print(f"{engine_name}: loading {scale.updates:,} updates ...", file=sys.stderr)
        loaded = populate(url, scale)
        engine = make_engine(url)
        with engine.connect() as conn:
            version = conn.exec_driver_sql(
                "SELECT sqlite_version()" if engine_name == "sqlite" else "SHOW server_version"
            ).scalar_one()
        print(f"{engine_name}: index build (reindex) ...", file=sys.stderr)
        built = build_index(engine)
        index_bytes = search_index_size(engine)
        kinds = make_queries(engine, scale.seed, per_kind, loaded.team_ids)
        warm = make_queries(engine, scale.seed + 1, max(10, per_kind // 10), loaded.team_ids)
        print(f"{engine_name}: warm-up ...", file=sys.stderr)
        measure(engine, warm, TEAMS, record=False)
        print(f"{engine_name}: {per_kind} queries of each kind ...", file=sys.stderr)
        measure(engine, kinds, TEAMS, record=True)
        count_matches(engine, kinds, TEAMS)
        engine.dispose()
    report(engine_name, str(version), scale, loaded, built, index_bytes, kinds)


def report(
    engine_name: str,
    version: str,
    scale: Scale,
    loaded: Loaded,
    built: Built,
    index_bytes: int,
    kinds: list[Kind],
) -> None:
    mb = 2**20
    label = "SQLite" if engine_name == "sqlite" else "PostgreSQL"
    index = f"{index_bytes / mb:,.0f} MB" if index_bytes >= 0 else "n/a (no dbstat)"
    print(
        f"\n{label} {version}: {scale.updates:,} updates in {TEAMS} teams, {loaded.threads:,}"
        f" threads, {loaded.people:,} people; load {loaded.seconds:.0f} s (not counted)"
        f"\nindex build (reindex): {built.seconds:.1f} s"
        + (
            f"; then VACUUM FULL ANALYZE {built.vacuum_seconds:.0f} s"
            if built.vacuum_seconds
            else ""
        )
        + f"\ndatabase size: {built.size_after / mb:,.0f} MB"
        f" ({built.size_before / mb:,.0f} MB before the index build; search index {index})\n"
    )
    print(
        f"{'query kind':<16} {'matches':>9} {'ours p50':>9} {'p95':>7} {'p99':>7}"
        f" {'bare p50':>9} {'p95':>7} {'p99':>7} {'p95 ratio':>9}  p95 < {TARGET_MS:.0f} ms"
    )
    for kind in kinds:
        ours = [percentile(kind.ours, p) for p in (50, 95, 99)]
        bare = [percentile(kind.bare, p) for p in (50, 95, 99)]
        print(
            f"{kind.name:<16} {statistics.median(kind.matches):>9,.0f}"
            f" {ours[0]:>9.1f} {ours[1]:>7.1f} {ours[2]:>7.1f}"
            f" {bare[0]:>9.1f} {bare[1]:>7.1f} {bare[2]:>7.1f}"
            f" {ours[1] / max(bare[1], 1e-3):>9.1f}  {'yes' if ours[1] < TARGET_MS else 'NO'}"
        )
    every = [m for kind in kinds for m in kind.matches]
    print(
        f"\nmilliseconds per query, {len(kinds[0].queries)} queries of each kind; matches is"
        f" the median count of matching updates (max {max(every):,});"
        f" ours is search_updates() with {PAGE} per page, bare the engine's full-text query"
    )
    print(f"\n{'all queries by matches':<42} {'ours p50':>9} {'p95':>7} {'bare p50':>9}")
    timed = [
        (m, ours, bare)
        for kind in kinds
        for m, ours, bare in zip(kind.matches, kind.ours, kind.bare, strict=True)
    ]
    for low, high in ((0, 1_000), (1_000, 10_000), (10_000, 100_000), (100_000, None)):
        group = [t for t in timed if t[0] >= low and (high is None or t[0] < high)]
        if group:
            span = f"{low:,}-{high - 1:,}" if high else f"{low:,} or more"
            print(
                f"  {span:<18} {len(group):>5} queries{'':<9}"
                f" {percentile([t[1] for t in group], 50):>9.1f}"
                f" {percentile([t[1] for t in group], 95):>7.1f}"
                f" {percentile([t[2] for t in group], 50):>9.1f}"
            )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] + " " + __doc__.splitlines()[1],
        epilog="Defaults: the issue's 1,000,000 updates in 50 teams, on SQLite and, when"
        " its server answers, PostgreSQL.",
    )
    parser.add_argument("--updates", type=int, default=1_000_000, help="updates (default 1000000)")
    parser.add_argument("--quick", action="store_true", help="50,000 updates: a fast check")
    parser.add_argument(
        "--engine",
        choices=("sqlite", "postgresql", "both"),
        help="which database to run on (default: both, or SQLite alone when the PostgreSQL"
        " server does not answer)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=DEFAULT_PG,
        help=f"the PostgreSQL server (default {DEFAULT_PG}, or $TIDINGS_TEST_PG); a throwaway"
        " database is created there and dropped afterwards",
    )
    parser.add_argument(
        "--queries", type=int, default=200, help="queries of each kind (default 200)"
    )
    parser.add_argument("--seed", type=int, default=1, help="for the archive and the queries")
    args = parser.parse_args()
    scale = Scale(50_000 if args.quick else args.updates, args.seed)
    if scale.updates < TEAMS * UPDATES_PER_THREAD:
        parser.error(f"--updates must be at least {TEAMS * UPDATES_PER_THREAD}")
    if args.queries < 1:
        parser.error("--queries must be at least 1")
    engines = ["sqlite", "postgresql"] if args.engine in (None, "both") else [args.engine]
    if "postgresql" in engines:
        why = postgres_reachable(args.database_url)
        if why and args.engine is None:
            print(f"PostgreSQL skipped ({args.database_url}: {why})", file=sys.stderr)
            engines.remove("postgresql")
        elif why:
            parser.error(f"--database-url {args.database_url}: {why}")
    for engine_name in engines:
        run_engine(engine_name, args.database_url, scale, args.queries)


if __name__ == "__main__":
    main()

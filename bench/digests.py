"""Digest planning: digests per second for a whole organisation, as a ratio to rendering
each update's Markdown once.

    .venv/bin/python bench/digests.py [--members 10000] [--teams 20] [--updates 2000]
    .venv/bin/python bench/digests.py --quick                  # 1,000 members, a fast check
    .venv/bin/python bench/digests.py --database-url postgresql://postgres@127.0.0.1/test

The organisation is generated from a fixed seed: every member is in one team (one in ten
in a second one), each team has a thread per five updates, and the updates (50-300 words
of mail-wrapped Markdown: lists, links, inline and fenced code, some @-mentions, some
blockers and resolutions) were posted over the last day. Setting it up goes through bulk
inserts in a child process and is timed but not counted.

Then, in this process and in the same run (these machines are noisy):

* baseline: `render_markdown` once for each update, the work no digest planner can avoid.
  It runs before and after the digest run; the faster of the two counts.
* plan: `run_digests(..., force=True)`, a digest for every member, planned into the
  outbox exactly as `tidings digest run --now` plans them;
* render: every planned digest rendered into the message its reader gets, with one
  `DigestLayout`, exactly as one delivery pass renders them before sending. (A digest
  shows at most 30 items in full, so an update no digest shows is never rendered: here
  about one in eight.)

The full run (plan + render) is what counts against the baseline. SQLite runs with the
service's own settings (WAL, synchronous=FULL).
Peak memory is this process's max RSS (`resource.getrusage`); the set-up ran elsewhere, so
it is what the imports, the baseline and the digest run needed. The target is a full run
that costs at most 3x the baseline. `--profile` prints where the time of the digest run goes
(cProfile; it slows the run down, so its timings are not comparable).
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import pstats
import random
import re
import resource
import sys
import tempfile
import textwrap
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from throwaway import throwaway_database  # bench/, next to this file

from app.db import make_engine, session_scope, upgrade
from app.models import Membership, MessageRef, OutboundMessage, Person, Team, Thread
from app.models import Update as UpdateRow
from app.render import render_markdown
from app.settings import Settings
from digest.build import run_digests
from digest.layout import DigestLayout

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday: every daily digest is due
TARGET_RATIO = 3.0
SECOND_TEAM_SHARE = 0.1
UPDATES_PER_THREAD = 5
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "America/Sao_Paulo")
FIRST = (
    "Ada", "Ana", "Bo", "Carla", "Chen", "Dario", "Elif", "Emma", "Femi", "Grace", "Hana",
    "Ivan", "Jonas", "José", "Kai", "Lena", "Li", "Maya", "Mei", "Nadia", "Noor", "Omar",
    "Priya", "Raj", "Rosa", "Sam", "Sofia", "Tariq", "Uma", "Vera", "Wei", "Yara", "Yusuf",
    "Zoe",
)  # fmt: skip
LAST = (
    "Okafor", "Lima", "Novak", "Schmidt", "Tanaka", "Rossi", "Haddad", "Kowalski", "Martínez",
    "Nguyen", "Silva", "Andersen", "Dubois", "Ivanova", "Patel", "Kim", "Müller", "O'Brien",
    "Costa", "Sato",
)  # fmt: skip
TEAMS = (
    "Platform", "Payments", "Search", "Mobile", "Growth", "Data", "Security", "Design",
    "Support", "Infra", "Billing", "Identity", "Messaging", "Reliability", "Research", "Docs",
    "Sales", "Ops", "Finance", "Legal",
)  # fmt: skip
WORDS = (
    "the", "migration", "importer", "dashboard", "rollout", "staging", "deploy", "review",
    "queue", "retry", "cache", "index", "latency", "customer", "release", "schema", "billing",
    "test", "flaky", "fix", "api", "endpoint", "worker", "cluster", "region", "alert", "rota",
    "incident", "budget", "design", "draft", "spec", "feedback", "meeting", "plan", "week",
    "today", "tomorrow", "finished", "started", "paired", "shipped", "checked", "measured",
    "looked", "slow", "fast", "again", "still", "with", "for", "on", "after", "before", "and",
    "but", "so", "because", "we", "I", "they", "it", "this", "that", "some", "more", "less",
)  # fmt: skip
TOPICS = (
    "Retry queue", "Orders migration", "Q3 roadmap", "On-call rota", "Search relevance",
    "Login latency", "Billing export", "Release 4.2", "Flaky tests", "Hiring loop",
    "Customer escalations", "Design review", "Cost report", "Data retention", "API paging",
)  # fmt: skip


def sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def update_body(rng: random.Random, mention: str | None, blocker: bool, resolves: bool) -> str:
    """50-300 words of what people mail in: wrapped paragraphs, and sometimes a list, a link,
    code, a mention, a blocker or its resolution."""
    target = rng.randint(50, 300)
    blocks: list[str] = []
    if blocker:
        blocks.append(f"Blocker: {sentence(rng, 8)}")
    if resolves:
        blocks.append(f"Resolved: {sentence(rng, 6)}")
    if mention:
        blocks.append(f"@{mention} can you look at this? {sentence(rng, 6)}")
    count = sum(len(b.split()) for b in blocks)
    while count < target:
        kind = rng.random()
        if kind < 0.2:
            items = [f"- {sentence(rng, rng.randint(3, 9))}" for _ in range(rng.randint(2, 5))]
            block = "\n".join(items)
        elif kind < 0.3:
            block = "```\n" + "\n".join(sentence(rng, 5) for _ in range(3)) + "\n```"
        else:
            text = " ".join(sentence(rng, rng.randint(6, 16)) for _ in range(rng.randint(1, 4)))
            if rng.random() < 0.3:
                text += f" See [the notes](https://wiki.example.com/notes/{rng.randint(1, 999)})."
            if rng.random() < 0.3:
                text += f" The flag is `{rng.choice(WORDS)}_{rng.choice(WORDS)}`."
            block = textwrap.fill(text, 72)  # mail clients wrap at about 72
        blocks.append(block)
        count += len(block.split())
    return "\n\n".join(blocks)


@dataclass(frozen=True)
class Scale:
    members: int
    teams: int
    updates: int
    seed: int


def _insert(conn: Any, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Bulk insert (executemany); the new ids, in the order of `rows`."""
    if not rows:
        return []
    query = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in conn.execute(query, rows)]


def populate(url: str, scale: Scale) -> dict[str, float]:
    """Create the schema and the organisation; what was made, and how long it took."""
    start = time.perf_counter()
    upgrade(url)
    rng = random.Random(scale.seed)
    engine = make_engine(url)
    with engine.begin() as conn:
        team_ids = _insert(
            conn,
            Team.__table__,  # type: ignore[arg-type]
            [
                Team(
                    slug=f"team-{n:02d}",
                    name=TEAMS[n % len(TEAMS)]
                    + (f" {n // len(TEAMS) + 1}" if n >= len(TEAMS) else ""),
                    created_at=NOW - timedelta(days=90),
                ).model_dump(exclude={"id"})
                for n in range(scale.teams)
            ],
        )
        people = []
        for n in range(scale.members):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            ascii_name = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore")
            local = re.sub(r"[^a-z.]", "", ascii_name.decode().lower())
            people.append(
                Person(
                    email=f"{local}.{n}@example.com",
                    name=f"{first} {last}",
                    timezone=rng.choice(ZONES),
                    created_at=NOW - timedelta(days=60),
                ).model_dump(exclude={"id"})
            )
        person_ids = _insert(conn, Person.__table__, people)  # type: ignore[arg-type]
        members: dict[int, list[int]] = {t: [] for t in team_ids}
        for n, person_id in enumerate(person_ids):
            teams = [team_ids[n % len(team_ids)]]
            if len(team_ids) > 1 and rng.random() < SECOND_TEAM_SHARE:
                teams.append(rng.choice([t for t in team_ids if t != teams[0]]))
            for team_id in teams:
                members[team_id].append(person_id)
        first_names = {pid: p["name"].split()[0] for pid, p in zip(person_ids, people, strict=True)}
        _insert(
            conn,
            Membership.__table__,  # type: ignore[arg-type]
            [
                Membership(
                    team_id=team_id, person_id=person_id, joined_at=NOW - timedelta(days=30)
                ).model_dump(exclude={"id"})
                for team_id, ids in members.items()
                for person_id in ids
            ],
        )
        per_team = max(1, scale.updates // len(team_ids) // UPDATES_PER_THREAD)
        thread_rows = [
            (team_id, f"{TOPICS[n % len(TOPICS)]} #{n + 1}")
            for team_id in team_ids
            for n in range(per_team)
        ]
        thread_ids = _insert(
            conn,
            Thread.__table__,  # type: ignore[arg-type]
            [
                Thread(
                    team_id=team_id,
                    title=title,
                    created_at=NOW - timedelta(days=2),
                    last_activity_at=NOW - timedelta(hours=2),
                ).model_dump(exclude={"id"})
                for team_id, title in thread_rows
            ],
        )
        threads: dict[int, list[int]] = {t: [] for t in team_ids}
        for (team_id, _), thread_id in zip(thread_rows, thread_ids, strict=True):
            threads[team_id].append(thread_id)
        blocked: set[int] = set()
        updates = []
        step = timedelta(days=1) / max(1, scale.updates)
        for n in range(scale.updates):
            team_id = team_ids[n % len(team_ids)]
            thread_id = rng.choice(threads[team_id])
            mention = first_names[rng.choice(members[team_id])] if rng.random() < 0.1 else None
            blocker = rng.random() < 0.03
            resolves = thread_id in blocked and rng.random() < 0.3
            if blocker:  # the thread's next update may say it is resolved
                blocked.add(thread_id)
            else:
                blocked.discard(thread_id)
            updates.append(
                UpdateRow(
                    team_id=team_id,
                    thread_id=thread_id,
                    author_id=rng.choice(members[team_id]),
                    body=update_body(rng, mention, blocker, resolves),
                    placed_by="bench",
                    created_at=NOW - timedelta(days=1) + n * step,
                ).model_dump(exclude={"id"})
            )
        _insert(conn, UpdateRow.__table__, updates)  # type: ignore[arg-type]
    with engine.begin() as conn:
        # Planner statistics, as a live database has them: PostgreSQL's planner, left to
        # guess right after a bulk load, scans every update for each member's blockers.
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return {
        "memberships": sum(len(ids) for ids in members.values()),
        "threads": len(thread_ids),
        "seconds": time.perf_counter() - start,
    }


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """A new, empty database: a SQLite file in a temporary folder, or one created on the
    PostgreSQL server `url` names (and dropped afterwards), so nothing there is touched."""
    if url is not None and make_url(url).get_backend_name() != "postgresql":
        raise SystemExit("--database-url: give a PostgreSQL server (SQLite is the default)")
    with throwaway_database(url) as fresh:
        yield fresh


def baseline(bodies: list[str]) -> float:
    """Seconds to render every update's Markdown once."""
    start = time.perf_counter()
    for body in bodies:
        render_markdown(body)
    return time.perf_counter() - start


def render_all(engine: Any, settings: Settings, progress: Callable[[int, int], None]) -> list[int]:
    """Render every planned digest in the outbox with one layout; the size of each."""
    layout = DigestLayout(settings)
    with session_scope(engine) as session:
        rows = list(
            session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "digest"))
        )
        sizes = []
        for done, row in enumerate(rows, 1):
            sizes.append(len(layout.render(session, row)))
            progress(done, len(rows))
    return sizes


def max_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def progress_printer(every: int) -> Callable[[int, int], None]:
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            rate = done / max(time.perf_counter() - start, 1e-9)
            print(f"\r  {done:,}/{total:,} ({rate:,.0f}/s)", end="", file=sys.stderr)
            if done == total:
                print(file=sys.stderr)

    return show


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] + " " + __doc__.splitlines()[1],
        epilog="Defaults: the issue's 10,000 members, 20 teams, 2,000 updates, on SQLite.",
    )
    parser.add_argument("--members", type=int, default=10_000, help="people (default 10000)")
    parser.add_argument("--teams", type=int, default=20, help="teams (default 20)")
    parser.add_argument("--updates", type=int, default=2_000, help="new updates (default 2000)")
    parser.add_argument(
        "--quick", action="store_true", help="1,000 members (other sizes as given): a fast check"
    )
    parser.add_argument("--seed", type=int, default=1, help="for the generated organisation")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="a PostgreSQL server to run on, e.g. postgresql://postgres@127.0.0.1:5432/test;"
        " a throwaway database is created there and dropped afterwards",
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        default=0,
        help="profile the digest run and print its N costliest functions (slows it down)",
    )
    args = parser.parse_args()
    scale = Scale(1_000 if args.quick else args.members, args.teams, args.updates, args.seed)
    if min(scale.members, scale.teams, scale.updates) < 1:
        parser.error("--members, --teams and --updates must be at least 1")

    with database(args.database_url) as url, tempfile.TemporaryDirectory() as data_dir:
        backend = make_url(url).get_backend_name()
        print(
            f"setting up {scale.members:,} members, {scale.teams} teams,"
            f" {scale.updates:,} updates on {backend} ...",
            file=sys.stderr,
        )
        # In a child process, so the generated data does not count in this one's peak RSS.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            made = pool.apply(populate, (url, scale))
        settings = Settings(
            data_dir=Path(data_dir),
            database_url=url,
            mail_domain="bench.test",
            secret_key="bench-only-secret",
            base_url="https://tidings.example.com",
        )
        engine = make_engine(url)
        with engine.connect() as conn:
            bodies = list(conn.scalars(select(UpdateRow.body)))
        render_markdown(bodies[0])  # imports Markdown's extensions, which is not rendering
        print("baseline: rendering each update's Markdown once ...", file=sys.stderr)
        before = baseline(bodies)
        rss_before = max_rss_mb()
        print("plan: run_digests for every member ...", file=sys.stderr)
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        start = time.perf_counter()
        run = run_digests(
            engine,
            settings,
            NOW,
            force=True,
            progress=progress_printer(max(1, scale.members // 50)),
        )
        planned = time.perf_counter() - start
        print("render: every planned digest, as a delivery pass does ...", file=sys.stderr)
        start = time.perf_counter()
        sizes = render_all(engine, settings, progress_printer(max(1, scale.members // 50)))
        rendered = time.perf_counter() - start
        if profiler:
            profiler.disable()
        rss_peak = max_rss_mb()
        after = baseline(bodies)
        base = min(before, after)
        with engine.connect() as conn:
            outbox, plans = conn.execute(
                select(func.count(), func.coalesce(func.sum(func.length(OutboundMessage.plan)), 0))
            ).one()
            refs = conn.scalar(select(func.count()).select_from(MessageRef))
        engine.dispose()

    seconds = planned + rendered
    print(
        f"\n{scale.members:,} members ({made['memberships']:,} memberships), {scale.teams} teams,"
        f" {made['threads']:,} threads, {scale.updates:,} updates on {backend};"
        f" set-up {made['seconds']:.1f} s (not counted)\n"
    )
    print(f"{'measurement':<36} {'seconds':>9} {'per second':>16} {'ratio':>7}")
    for label, taken, count, unit in (
        ("baseline: Markdown, once per update", base, scale.updates, "upd/s"),
        ("plan: run_digests, every member", planned, run.planned, "dig/s"),
        ("render: every planned digest", rendered, len(sizes), "dig/s"),
        ("full run: plan + render", seconds, run.planned, "dig/s"),
    ):
        print(f"{label:<36} {taken:>9.2f} {count / taken:>10,.0f} {unit} {taken / base:>7.2f}")
    print(f"{'target for the full run':<36} {'':>9} {'':>16} {TARGET_RATIO:>7.2f}")
    print(
        f"\nbaseline before / after the run: {before:.2f} s / {after:.2f} s (the faster counts)"
        f"\ndigests: {run.planned:,} planned, {run.nothing_new:,} with nothing new,"
        f" {run.skipped:,} skipped"
        f"\nmessages: {sum(sizes) / 2**20:,.0f} MB rendered,"
        f" {sum(sizes) / max(len(sizes), 1) / 1024:,.0f} KB each on average,"
        f" {max(sizes, default=0) / 1024:,.0f} KB the largest"
        f"\npeak memory: {rss_peak:,.0f} MB max RSS of this process"
        f" ({rss_before:,.0f} MB before the digest run)"
        f"\nrows written: {outbox:,} outbox ({plans / 2**20:,.1f} MB of plans),"
        f" {refs:,} message refs"
    )
    if profiler:
        print(f"\nprofile of the digest run, {args.profile} costliest by own time:")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()

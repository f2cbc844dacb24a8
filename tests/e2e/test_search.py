"""search_updates() behaves the same on SQLite (FTS5) and PostgreSQL (tsvector)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.models import Update
from app.search import MARK_END, MARK_START, parse_query, reindex, search_updates

POSTS = [
    ("alice@example.com", "Alice", "Importer", "We shipped the CSV importer today."),
    ("alice@example.com", "Alice", "Billing", "Shipping the billing migration next week."),
    ("bob@example.org", "Bob", "Billing", "The billing migration needs a rollback plan."),
    # The better "lunch" match is the older post: ranking, not recency, must put it first.
    ("alice@example.com", "Alice", "Lunch", "Lunch is salad: the lunch place closed."),
    ("bob@example.org", "Bob", "Lunch", "Pizza on Friday? Pizza pizza pizza."),
]


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        team = store.create_team(session, "eng", "Engineering")
        other = store.create_team(session, "ops", "Operations")
        store.add_member(session, "ops", "olga@example.net", "Olga")
        threads = {}
        for email, name, title, body in POSTS:
            author = store.add_member(session, "eng", email, name)
            if title not in threads:
                threads[title] = store.checkin_thread(
                    session, team, date(2026, 1, len(threads) + 1)
                )
                threads[title].title = title
            store.add_update(
                session, thread=threads[title], author=author, body=body, placed_by="new-thread"
            )
        olga = store.find_person(session, "olga@example.net")
        secret = store.checkin_thread(session, other, date(2026, 1, 1))
        store.add_update(
            session,
            thread=secret,
            author=olga,
            body="Secret importer plans.",  # type: ignore[arg-type]
            placed_by="new-thread",
        )
    yield engine
    engine.dispose()


def bodies(engine: Engine, query: str, team: str = "eng") -> list[str]:
    with session_scope(engine) as session:
        team_id = store.get_team(session, team).id
        return [hit.update.body for hit in search_updates(session, query, [team_id])]  # type: ignore[list-item]


def test_words_are_stemmed_and_all_must_match(engine: Engine) -> None:
    assert sorted(bodies(engine, "ship")) == [
        "Shipping the billing migration next week.",
        "We shipped the CSV importer today.",
    ]
    assert bodies(engine, "shipped billing") == ["Shipping the billing migration next week."]
    assert bodies(engine, "zebra") == []


def test_a_thread_is_found_by_its_title_and_better_matches_rank_first(engine: Engine) -> None:
    # Both are in the "Lunch" thread; the second also says "lunch" twice in its text.
    assert bodies(engine, "lunch") == [
        "Lunch is salad: the lunch place closed.",
        "Pizza on Friday? Pizza pizza pizza.",
    ]
    # Both billing posts match on the body; the one in the "Billing" thread on the title too.
    assert len(bodies(engine, "billing")) == 2


def test_phrases_and_exclusions(engine: Engine) -> None:
    assert sorted(bodies(engine, '"billing migration"')) == [
        "Shipping the billing migration next week.",
        "The billing migration needs a rollback plan.",
    ]
    assert bodies(engine, '"migration billing"') == []
    assert bodies(engine, "billing -rollback") == ["Shipping the billing migration next week."]
    assert bodies(engine, '-"billing migration"') == []  # nothing but an exclusion


def test_filters_by_author_title_and_date(engine: Engine) -> None:
    assert bodies(engine, "billing from:bob") == ["The billing migration needs a rollback plan."]
    assert bodies(engine, "from:Alice in:import") == ["We shipped the CSV importer today."]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert len(bodies(engine, f"billing before:{tomorrow}")) == 2
    assert bodies(engine, f"billing after:{tomorrow}") == []


def test_results_stay_inside_the_teams_given(engine: Engine) -> None:
    assert bodies(engine, "importer") == ["We shipped the CSV importer today."]
    assert bodies(engine, "importer", team="ops") == ["Secret importer plans."]


def test_snippets_mark_the_matches(engine: Engine) -> None:
    with session_scope(engine) as session:
        team_id = store.get_team(session, "eng").id
        [hit] = search_updates(session, "pizza", [team_id])  # type: ignore[list-item]
    assert "pizza" in hit.plain_snippet.lower()
    marked = hit.snippet.replace(MARK_START, "<").replace(MARK_END, ">")
    assert "<Pizza>" in marked or "<pizza>" in marked


def test_edits_are_indexed_and_reindex_keeps_results(engine: Engine) -> None:
    with session_scope(engine) as session:
        [update] = [u for u in session.exec(select(Update)) if u.body.startswith("Pizza")]
        store.correct_update(session, update.id, "Tacos on Friday.")  # type: ignore[arg-type]
    assert bodies(engine, "pizza") == []
    assert bodies(engine, "tacos") == ["Tacos on Friday."]
    with session_scope(engine) as session:
        assert "Rebuilt" in reindex(session)
    assert bodies(engine, "tacos") == ["Tacos on Friday."]


@pytest.mark.parametrize(
    "query, terms, excluded",
    [
        ('ship "rollback plan" -pizza', ["ship", "rollback plan"], ["pizza"]),
        ("from:bob before:not-a-date", ["not", "a", "date"], []),
        ('weird "unclosed', ["weird", "unclosed"], []),
        ("a AND b OR NEAR(c)", ["a", "AND", "b", "OR", "NEAR", "c"], []),
    ],
)
def test_query_syntax_never_reaches_the_engine_raw(
    query: str, terms: list[str], excluded: list[str]
) -> None:
    parsed = parse_query(query)
    assert (parsed.terms, parsed.excluded) == (terms, excluded)

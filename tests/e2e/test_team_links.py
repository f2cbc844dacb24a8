"""A team's link patterns, end to end: set with the CLI, then `PROJ-12` in a mailed post
is a link to the tracker in the archive, the Atom feed and the digest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.e2e.stack import (
    DOMAIN,
    Stack,
    digests_for,
    far_hour,
    mail,
    make_stack,
    thread_titled,
    wait_for,
)

ALICE, BOB = "alice@example.com", "bob@example.org"
JIRA = "https://jira.example.com/browse/PROJ-{id}"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering", "--public")
        for who in (ALICE, BOB):
            stack.cli("member", "add", "eng", who, "--hour", far_hour("UTC"))
        stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
        yield stack
    finally:
        stack.stop()


def test_patterns_are_explained_listed_and_removed(stack: Stack) -> None:
    bad = stack.cli("team", "link", "add", "eng", "PROJ-", JIRA, check=False)
    assert bad.returncode == 1 and "Give it like PROJ-{id}" in bad.stderr
    bad_url = stack.cli(
        "team", "link", "add", "eng", "#{id}", "javascript:alert({id})", check=False
    )
    assert bad_url.returncode == 1 and "http(s)" in bad_url.stderr
    stack.cli("team", "link", "add", "eng", "#{id}", "https://github.com/acme/app/issues/{id}")
    assert "#{id}" in stack.cli("team", "link", "list", "eng").stdout
    stack.cli("team", "link", "remove", "eng", "#{id}")
    assert "No link patterns" in stack.cli("team", "link", "list", "eng").stderr


def test_a_reference_links_in_the_archive_the_feed_and_the_digest(stack: Stack) -> None:
    added = stack.cli("team", "link", "add", "eng", "PROJ-{id}", JIRA)
    assert "PROJ-{id} now links to" in added.stderr
    stack.send(
        mail(ALICE, f"eng@{DOMAIN}", "Release", "Fixed PROJ-12 today."), ALICE, f"eng@{DOMAIN}"
    )
    thread = wait_for(lambda: thread_titled(stack, "Release"), what="the post")
    page = stack.get(f"/threads/{thread['id']}").text
    assert 'href="https://jira.example.com/browse/PROJ-12"' in page
    assert (
        'href="https://jira.example.com/browse/PROJ-12"' in stack.get("/teams/eng/feed.atom").text
    )
    stack.cli("digest", "run", "--now")
    [digest] = wait_for(lambda: digests_for(stack, BOB), what="Bob's digest")
    assert (
        'href="https://jira.example.com/browse/PROJ-12"' in digest.get_body(("html",)).get_content()
    )

"""Chat webhooks, end to end: set with the real CLI, replies mailed to the real listener,
and a real HTTP server in the test standing in for Slack and Teams, recording what it is
posted. Urgent updates arrive on their own at once, the day's section at its hour; a
500 is retried and then taken once; a 404 fails for good; a removed webhook gets
nothing more. On PostgreSQL, two workers racing post everything exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app import store
from app import webhooks as hooks
from app.db import make_engine, session_scope, upgrade
from app.models import OutboundMessage, Team, TeamWebhook, Thread
from digest.send import retry_delay
from tests.conftest import free_port
from tests.e2e.stack import BIN, DOMAIN, Stack, far_hour, mail, make_stack, wait_for

ALICE, BOB = "alice@example.com", "bob@example.org"


@dataclass
class Post:
    path: str
    content_type: str
    body: dict[str, Any]
    status: int  # what the receiver answered


@dataclass
class Receiver:
    """An HTTP server that records every POST and answers each path with the statuses it
    was told to, in turn (200 once they run out)."""

    port: int = 0
    posts: list[Post] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Post]:
        with self.lock:
            return [p for p in self.posts if p.path == path]

    def take(self, path: str, body: bytes, content_type: str) -> int:
        with self.lock:
            queued = self.answers.get(path, [])
            status = queued.pop(0) if queued else 200
            self.posts.append(Post(path, content_type, json.loads(body), status))
            return status


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = found.take(self.path, body, self.headers["Content-Type"])
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"no_service")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads what was posted, not the server's log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def new_team(stack: Stack, slug: str, *webhooks: tuple[str, str]) -> None:
    """A team with Alice and Bob, and webhooks (kind, URL) posting twelve hours from now."""
    stack.cli("team", "create", slug, "--name", slug.title())
    for who in (ALICE, BOB):
        stack.cli("member", "add", slug, who, "--hour", far_hour("UTC"))
    for kind, url in webhooks:
        stack.cli("team", "webhook", "add", slug, url, "--kind", kind, "--hour", far_hour("UTC"))


def post_mail(stack: Stack, slug: str, sender: str, subject: str, body: str) -> None:
    stack.send(mail(sender, f"{slug}@{DOMAIN}", subject, body), sender, f"{slug}@{DOMAIN}")


def engine_of(stack: Stack) -> Engine:
    return make_engine(stack.env["TIDINGS_DATABASE_URL"])


def in_database(stack: Stack, change: Callable[[Any], Any]) -> Any:
    engine = engine_of(stack)
    try:
        with session_scope(engine) as session:
            return change(session)
    finally:
        engine.dispose()


def a_day_later(stack: Stack, slug: str) -> None:
    """Move the team's webhooks' "added" and "last posted the day" a day back: their hour
    has come since."""

    def age(session: Any) -> None:
        team = store.get_team(session, slug)
        for hook in session.exec(select(TeamWebhook).where(TeamWebhook.team_id == team.id)):
            hook.created_at -= timedelta(days=1)
            if hook.last_section_at is not None:
                hook.last_section_at -= timedelta(days=1)

    in_database(stack, age)


def posts_queued_for(stack: Stack, url: str) -> list[OutboundMessage]:
    def rows(session: Any) -> list[OutboundMessage]:
        query = select(OutboundMessage).where(
            OutboundMessage.kind == "webhook", OutboundMessage.recipient == url
        )
        return sorted(session.exec(query), key=lambda r: r.id)

    return in_database(stack, rows)  # type: ignore[no-any-return]


def retry_is_due(stack: Stack, row: OutboundMessage) -> None:
    """Move the failed attempt back by its retry delay, as if that time had passed."""

    def age(session: Any) -> None:
        found = session.get(OutboundMessage, row.id)
        found.claimed_at -= retry_delay(row.attempts)

    in_database(stack, age)


def slack_text(post: Post) -> str:
    return "\n".join(
        obj["text"]
        for block in post.body["blocks"]
        for obj in ([block["text"]] if "text" in block else block.get("elements", []))
    )


def teams_runs(post: Post) -> list[str]:
    [attachment] = post.body["attachments"]
    return [run["text"] for block in attachment["content"]["body"] for run in block["inlines"]]


def webhook_list(stack: Stack, slug: str) -> list[dict[str, Any]]:
    return json.loads(stack.cli("team", "webhook", "list", slug, "--json").stdout)  # type: ignore[no-any-return]


def test_webhooks_are_checked_explained_listed_and_removed(
    stack: Stack, receiver: Receiver
) -> None:
    stack.cli("team", "create", "cli")
    bad = stack.cli("team", "webhook", "add", "cli", "ftp://hooks.example.com/x", check=False)
    assert bad.returncode == 1 and "is not an http(s) webhook URL" in bad.stderr
    assert "https://hooks.slack.com/services/" in bad.stderr  # what to give instead
    kind = stack.cli(
        "team", "webhook", "add", "cli", receiver.url("/cli"), "--kind", "discord", check=False
    )
    assert kind.returncode == 1 and "--kind slack" in kind.stderr
    zone = stack.cli(
        "team", "webhook", "add", "cli", receiver.url("/cli"), "--tz", "Berlin", check=False
    )
    assert zone.returncode == 1 and "Europe/Berlin" in zone.stderr

    added = stack.cli(
        "team",
        "webhook",
        "add",
        "cli",
        receiver.url("/cli"),
        "--hour",
        "10",
        "--tz",
        "Europe/Berlin",
    )
    assert "every day at 10:00 (Europe/Berlin)" in added.stderr
    assert "each urgent update" in added.stderr and "Urgent:" in added.stderr
    assert webhook_list(stack, "cli") == [
        {
            "url": receiver.url("/cli"),
            "kind": "slack",
            "hour": 10,
            "timezone": "Europe/Berlin",
            "last_post": None,
        }
    ]
    stack.cli("team", "webhook", "add", "cli", receiver.url("/cli"), "--kind", "teams")
    [again] = webhook_list(stack, "cli")
    assert (again["kind"], again["hour"], again["timezone"]) == ("teams", 9, "UTC")
    assert "nothing posted yet" in stack.cli("team", "webhook", "list", "cli").stdout

    stack.cli("team", "webhook", "remove", "cli", receiver.url("/cli"))
    assert webhook_list(stack, "cli") == []
    gone = stack.cli("team", "webhook", "remove", "cli", receiver.url("/cli"), check=False)
    assert gone.returncode == 1 and "tidings team webhook list cli" in gone.stderr


def test_urgent_updates_come_at_once_and_the_day_comes_at_its_hour(
    stack: Stack, receiver: Receiver
) -> None:
    slack, teams = receiver.url("/eng/slack"), receiver.url("/eng/teams")
    new_team(stack, "eng", ("slack", slack), ("teams", teams))
    post_mail(stack, "eng", ALICE, "Release", "Shipped <!channel> & [docs](https://evil.example)")
    wait_for(lambda: any(t["title"] == "Release" for t in store_threads(stack, "eng")))
    post_mail(stack, "eng", BOB, "VPN", "Blocker: the VPN certificate expired.")

    # The blocker is posted on its own, to both channels; Alice's news waits for the day.
    [urgent] = wait_for(lambda: receiver.to("/eng/slack"), what="the urgent Slack post")
    [urgent_card] = wait_for(lambda: receiver.to("/eng/teams"), what="the urgent Teams post")
    assert urgent.content_type.startswith("application/json")
    assert urgent.body["text"] == "Blocker in Eng from bob"
    assert "the VPN certificate expired." in slack_text(urgent)
    assert "Shipped" not in json.dumps(urgent.body)
    assert "Blocker: the VPN certificate expired. " in teams_runs(urgent_card)

    a_day_later(stack, "eng")
    day = wait_for(lambda: receiver.to("/eng/slack")[1:], what="the day's Slack post")[0]
    day_card = wait_for(lambda: receiver.to("/eng/teams")[1:], what="the day's Teams post")[0]
    release, vpn = (store_thread(stack, "eng", title) for title in ("Release", "VPN"))
    text = slack_text(day)
    assert day.body["text"] == "Eng: 2 new updates in 2 threads"
    assert text.index("*Blocker* in") < text.index("Release")  # blockers first
    assert f"<{stack.base_url}/threads/{release}|Release>" in text
    assert f"<{stack.base_url}/threads/{vpn}|VPN>" in text
    assert "Shipped &lt;!channel&gt; &amp; [docs](https://evil.example)" in text
    assert "<!channel>" not in json.dumps(day.body)
    assert day_card.body["attachments"][0]["content"]["type"] == "AdaptiveCard"
    runs = teams_runs(day_card)
    assert "Shipped <!channel> & [docs](https://evil.example) " in runs  # as text, not markup
    assert runs.index("Blocker") < runs.index("Release")

    # Later the same day: one more urgent post, and no second day's post.
    post_mail(stack, "eng", ALICE, "Deploy", "URGENT the deploy is stuck")
    third = wait_for(lambda: receiver.to("/eng/slack")[2:], what="the second urgent post")[0]
    assert third.body["text"] == "Urgent in Eng from alice"
    wait_for(lambda: receiver.to("/eng/teams")[2:], what="the second urgent Teams post")
    assert len(receiver.to("/eng/slack")) == len(receiver.to("/eng/teams")) == 3
    [listed, _] = webhook_list(stack, "eng")
    assert listed["last_post"]["status"] == "sent" and listed["last_post"]["error"] is None

    # The next day's post has only what came since the last one.
    a_day_later(stack, "eng")
    next_day = wait_for(lambda: receiver.to("/eng/slack")[3:], what="the next day's post")[0]
    assert next_day.body["text"] == "Eng: 1 new update in 1 thread"
    assert "the deploy is stuck" in slack_text(next_day) and "Release" not in slack_text(next_day)


def test_a_failing_channel_is_retried_and_then_posted_once(
    stack: Stack, receiver: Receiver
) -> None:
    url = receiver.url("/ops")
    receiver.answers["/ops"] = [500]
    new_team(stack, "ops", ("slack", url))
    post_mail(stack, "ops", BOB, "Build", "Urgent: the build is red")

    wait_for(lambda: receiver.to("/ops"), what="the first attempt")
    [row] = wait_for(
        lambda: [r for r in posts_queued_for(stack, url) if r.status == "pending" and r.attempts],
        what="the post to wait for its retry",
    )
    assert row.last_error == "500 Internal Server Error: no_service"
    assert webhook_list(stack, "ops")[0]["last_post"]["status"] == "pending"
    retry_is_due(stack, row)
    wait_for(lambda: posts_queued_for(stack, url)[0].status == "sent", what="the retry")

    refused, taken = receiver.to("/ops")
    assert (refused.status, taken.status) == (500, 200) and refused.body == taken.body
    post_mail(stack, "ops", ALICE, "Build", "Urgent: and the tests too")
    wait_for(lambda: receiver.to("/ops")[2:], what="the next urgent post")
    bodies = [p.body for p in receiver.to("/ops") if p.status == 200]
    assert len(bodies) == 2 and bodies[0] != bodies[1]  # the first one posted once


def test_a_revoked_channel_fails_for_good(stack: Stack, receiver: Receiver) -> None:
    url = receiver.url("/qa")
    receiver.answers["/qa"] = [404]
    new_team(stack, "qa", ("teams", url))
    post_mail(stack, "qa", BOB, "Outage", "Urgent: the staging database is gone")

    [row] = wait_for(
        lambda: [r for r in posts_queued_for(stack, url) if r.status == "failed"],
        what="the post to fail",
    )
    assert row.last_error == "404 Not Found: no_service"
    listed = stack.cli("team", "webhook", "list", "qa").stdout
    assert "last post failed: 404 Not Found" in listed
    retry_is_due(stack, row)  # even when its retry would have come, it is not tried again
    post_mail(stack, "qa", ALICE, "Outage", "Urgent: restoring from backup")
    wait_for(lambda: receiver.to("/qa")[1:], what="the next urgent post")
    assert [p.status for p in receiver.to("/qa")] == [404, 200]


def test_a_removed_channel_is_posted_nothing_more(stack: Stack, receiver: Receiver) -> None:
    gone, kept = receiver.url("/design/gone"), receiver.url("/design/kept")
    receiver.answers["/design/gone"] = [503]
    new_team(stack, "design", ("slack", gone), ("slack", kept))
    post_mail(stack, "design", BOB, "Fonts", "Urgent: the font licence ran out")
    wait_for(lambda: receiver.to("/design/kept"), what="the urgent post")
    [waiting] = wait_for(
        lambda: [r for r in posts_queued_for(stack, gone) if r.attempts],
        what="the refused post to wait for its retry",
    )

    removed = stack.cli("team", "webhook", "remove", "design", gone)
    assert "1 queued post(s) were dropped" in removed.stderr
    retry_is_due(stack, waiting)
    post_mail(stack, "design", ALICE, "Fonts", "Urgent: bought a new one")
    wait_for(lambda: receiver.to("/design/kept")[1:], what="the next urgent post")
    assert [p.status for p in receiver.to("/design/gone")] == [503]
    [row] = posts_queued_for(stack, gone)
    assert row.status == "failed" and row.last_error == "Not posted: the webhook was removed."


def store_threads(stack: Stack, slug: str) -> list[dict[str, Any]]:
    def rows(session: Any) -> list[dict[str, Any]]:
        team = store.get_team(session, slug)
        return [{"id": t.id, "title": t.title} for t in store.team_threads(session, team.id)]

    return in_database(stack, rows)  # type: ignore[no-any-return]


def store_thread(stack: Stack, slug: str, title: str) -> int:
    return next(t["id"] for t in store_threads(stack, slug) if t["title"] == title)


# Two workers on one PostgreSQL -------------------------------------------------------------


RACERS = 2
CHANNELS = [("slack", "/race/slack-1"), ("slack", "/race/slack-2"), ("teams", "/race/teams-1")]


def test_two_workers_racing_post_everything_once(
    postgres_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    with session_scope(engine) as session:
        store.create_team(session, "race", "Race")
        store.add_member(session, "race", ALICE, "Alice", "UTC", "off", 9)
        for kind, path in CHANNELS:
            hooks.add_webhook(session, "race", receiver.url(path), kind, 9, "UTC")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")},
        "TIDINGS_DATABASE_URL": postgres_url,
        "TIDINGS_SECRET_KEY": "race-secret",
        "TIDINGS_WORKER_POLL_SECONDS": "0.1",
        "TIDINGS_MAIL_DOMAIN": DOMAIN,
    }
    logs = [tmp_path / f"worker-{n}.log" for n in range(RACERS)]
    workers = [
        subprocess.Popen(
            [str(BIN / "tidings"), "worker"],
            env={**env, "TIDINGS_DATA_DIR": str(tmp_path / f"var-{n}")},
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        for n, log in enumerate(logs)
    ]
    try:
        for log in logs:  # both are polling before there is anything to post
            wait_for(lambda log=log: "Stop with Ctrl-C" in log.read_text(), 60, "a worker")
        with session_scope(engine) as session:
            team = session.exec(select(Team).where(Team.slug == "race")).one()
            thread = Thread(team_id=team.id, title="Launch")  # type: ignore[arg-type]
            session.add(thread)
            session.flush()
            alice = store.find_person(session, ALICE)
            assert alice is not None
            for body in ("Landing page is live.", "Blocker: the CDN rejects our cert."):
                store.add_update(
                    session, thread=thread, author=alice, body=body, placed_by="new-thread"
                )
            for hook in session.exec(select(TeamWebhook)):
                hook.created_at -= timedelta(days=1)
        paths = [path for _, path in CHANNELS]
        # Each channel: the blocker on its own, and the day's section.
        wait_for(lambda: all(len(receiver.to(p)) >= 2 for p in paths), 60, "the posts")
        with session_scope(engine) as session:  # one more, so both keep racing after
            thread = session.exec(select(Thread).where(Thread.title == "Launch")).one()
            alice = store.find_person(session, ALICE)
            assert alice is not None
            store.add_update(
                session, thread=thread, author=alice, body="URGENT: rollback", placed_by="subject"
            )
        wait_for(lambda: all(len(receiver.to(p)) >= 3 for p in paths), 60, "the last posts")
        assert all(w.poll() is None for w in workers), "a worker died"
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(20)
        engine.dispose()
    for path in paths:
        posted = [json.dumps(p.body) for p in receiver.to(path)]
        assert len(posted) == len(set(posted)) == 3, path
        assert sum("Landing page is live." in body for body in posted) == 1  # the section
        assert sum("the CDN rejects our cert." in body for body in posted) == 2  # + on its own
        assert sum("rollback" in body for body in posted) == 1

"""`tidings export`: a team's history as JSON and as an mbox a mail client can open, with
the same threads (replies point at what they answer)."""

from __future__ import annotations

import base64
import json
import mailbox
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import markdown
import pytest
from sqlmodel import select

from app.db import make_engine, session_scope
from app.models import Update, utcnow
from tests.conftest import free_port
from tests.e2e.stack import DOMAIN, Stack, mail, make_stack, thread_titled, updates_of, wait_for

ALICE, BOB = "alice@example.com", "bob@example.org"
TEAM = f"eng@{DOMAIN}"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering")
        stack.cli("member", "add", "eng", ALICE, "--name", "Alice")
        stack.cli("member", "add", "eng", BOB, "--name", "Bob")
        stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
        first = mail(ALICE, TEAM, "Launch plan", "From the first line:\nwe launch Monday.")
        first.add_attachment(b"%PDF-1.4 plan", maintype="application", subtype="pdf",
                             filename="plan.pdf")  # fmt: skip
        stack.send(first, ALICE, TEAM)
        thread = wait_for(lambda: thread_titled(stack, "Launch plan"))
        reply = mail(BOB, TEAM, "Re: Launch plan", "Monday works.", In_Reply_To=first["Message-ID"])
        stack.send(reply, BOB, TEAM)
        wait_for(lambda: len(updates_of(stack, thread["id"])) == 2, what="Bob's reply")
        yield stack
    finally:
        stack.stop()


def test_json_export_has_members_threads_tree_and_attachments(stack: Stack) -> None:
    data = json.loads(stack.cli("export", "eng").stdout)
    assert data["team"]["slug"] == "eng"
    assert sorted(m["email"] for m in data["members"]) == [ALICE, BOB]
    [thread] = data["threads"]
    first, reply = thread["updates"]
    assert first["body"] == "From the first line:\nwe launch Monday."
    assert reply["parent_id"] == first["id"] and reply["author"] == BOB
    [pdf] = first["attachments"]
    assert pdf["filename"] == "plan.pdf"
    assert base64.b64decode(pdf["data_base64"]) == b"%PDF-1.4 plan"


def test_mbox_export_opens_as_threaded_mail(stack: Stack, tmp_path: Path) -> None:
    result = stack.cli("export", "eng", "--format", "mbox")
    assert "Wrote 2 messages." in result.stderr
    path = tmp_path / "eng.mbox"
    path.write_text(result.stdout)
    first, reply = list(mailbox.mbox(path))
    assert first["Subject"] == "Launch plan" and reply["Subject"] == "Re: Launch plan"
    assert reply["In-Reply-To"] == first["Message-ID"]
    assert ALICE in first["From"] and BOB in reply["From"]
    parts = {p.get_content_type(): p for p in first.walk()}
    assert parts["application/pdf"].get_payload(decode=True) == b"%PDF-1.4 plan"
    text = parts["text/plain"].get_payload(decode=True).decode()
    # A body line starting "From " is quoted, or it would have split the message in two.
    assert "From the first line:" in text and "we launch Monday." in text


def test_unknown_format_or_team_is_explained(stack: Stack) -> None:
    wrong = stack.cli("export", "eng", "--format", "csv", check=False)
    assert (
        wrong.returncode == 1
        and "--format json, --format mbox or --format markdown" in wrong.stderr
    )
    since = stack.cli("export", "eng", "--format", "markdown", "--since", "last week", check=False)
    assert since.returncode == 1 and "like 12h, 7d or 2w" in since.stderr
    missing = stack.cli("export", "nope", check=False)
    assert missing.returncode == 1 and "No team 'nope'" in missing.stderr


def test_markdown_summary_of_the_last_week_pastes_as_a_document(stack: Stack) -> None:
    """`--since 7d` keeps only the week's updates; each thread is a heading with its
    updates quoted under author and time, so Markdown inside a post (a heading, a list)
    cannot break the document's structure."""
    stack.send(
        mail(ALICE, TEAM, "Q4 *roadmap*", "# Goals\n\n- ship search\n- fix digests"), ALICE, TEAM
    )
    roadmap = wait_for(lambda: thread_titled(stack, "Q4 *roadmap*"), what="the roadmap")
    engine = make_engine(stack.env["TIDINGS_DATABASE_URL"])
    try:
        with session_scope(engine) as session:  # the launch plan was three weeks ago
            for update in session.exec(select(Update).where(Update.thread_id != roadmap["id"])):
                update.created_at = utcnow() - timedelta(days=21)
                session.add(update)
    finally:
        engine.dispose()
    week = stack.cli("export", "eng", "--format", "markdown", "--since", "7d").stdout
    assert week.startswith("# Engineering: updates since ")
    assert "1 update in 1 thread by 1 person." in week
    assert "## Q4 \\*roadmap\\*" in week and "Launch plan" not in week
    assert f"({stack.base_url}/threads/{roadmap['id']})" in week
    assert "> # Goals" in week and "> - ship search" in week
    html = markdown.markdown(week)
    outline = re.sub(r"<blockquote>.*?</blockquote>", "", html, flags=re.S)
    assert outline.count("<h1>") == 1 and outline.count("<h2>") == 1
    assert "<blockquote>\n<h1>Goals</h1>" in html  # the post's own heading stays in its quote
    everything = stack.cli("export", "eng", "--format", "markdown").stdout
    assert "3 updates in 2 threads by 2 people." in everything
    assert everything.index("Q4") < everything.index("Launch plan")  # newest activity first

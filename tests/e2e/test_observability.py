"""Observable (issue #9): Prometheus metrics at /metrics, JSON logs with a message's journal
id on every line about it, and no message body or token in any line.

Real processes over real sockets: `tidings serve` with TIDINGS_LOG_FORMAT=json, mail sent
with smtplib, /metrics scraped with httpx; then `tidings smtp` and `tidings worker` run as
separate processes, each with its own TIDINGS_METRICS_PORT. SQLite only, to stay quick
(the metrics read the database through the same store queries on PostgreSQL).
"""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.e2e.stack import (
    BIN,
    DOMAIN,
    Stack,
    far_hour,
    journal_settled,
    mail,
    make_stack,
    quarantine_reasons,
    reply_address_of,
    thread_titled,
    wait_for,
)

ALICE, MALLORY = "alice@example.com", "mallory@example.net"
TEAM = f"eng@{DOMAIN}"
POST_BODY = "Zebra-kumquat milestone reached: the importer handles 9431 rows."
REPLY_BODY = "Quietly-periwinkle answer: finished the 7319 migration."
AWAY_BODY = "Marmalade-hippo: I am away until Monday."
STRANGER_BODY = "Stranger-danger-ocelot text that is refused."
DIGEST_BODY = "Aubergine-walrus thanks for the digest."


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: {(name, sorted labels): value}."""
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_until(url: str, name: str, least: float, **labels: str) -> dict:
    """Scrape `url` until the sample `name{labels}` is at least `least`; the last scrape."""

    def reached() -> dict | None:
        samples = scrape(url)
        return samples if value(samples, name, **labels) >= least else None

    return wait_for(reached, what=f"{name}{labels or ''} >= {least} at {url}")


def send_for_id(port: int, msg: EmailMessage | bytes, sender: str, to: str) -> int:
    """Send one message and return the journal id the listener's 250 reply names."""
    raw = msg if isinstance(msg, bytes) else msg.as_bytes()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail(sender)
        code, _ = smtp.rcpt(to)
        assert code == 250
        code, reply = smtp.data(raw)
    assert code == 250, reply
    found = re.search(rb"accepted as (\d+)", reply)
    assert found, reply
    return int(found.group(1))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("var")
    stack = make_stack(data_dir, f"sqlite:///{data_dir / 'tidings.db'}", free_port(), free_port())
    stack.env["TIDINGS_LOG_FORMAT"] = "json"
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering")
        tz = "Europe/Berlin"  # a digest hour far from now: no digest during the test
        stack.cli(
            "member", "add", "eng", ALICE, "--name", "Alice", "--tz", tz, "--hour", far_hour(tz)
        )
        stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> dict:
    """Mail the stack sees once for the whole module: a post, a reply through a reply
    address, an auto-reply and a bounce and a reply to a digest as a whole (all three
    quarantined; the last is answered through the outbox), a stranger (refused at DATA)
    and an unknown team (refused at RCPT). Returns the journal ids and the reply token."""
    before = scrape(f"{stack.base_url}/metrics")
    post_id = send_for_id(stack.smtp_port, mail(ALICE, TEAM, "Importer", POST_BODY), ALICE, TEAM)
    wait_for(lambda: thread_titled(stack, "Importer"), what="the post's thread")

    stack.cli("checkin", "send", "eng")
    prompt = wait_for(
        lambda: next((m for m in stack.outbox() if "What did you" in str(m["Subject"])), None),
        what="the check-in prompt",
    )
    reply_to = reply_address_of(prompt)
    token = reply_to.split("@")[0].split("+", 1)[1]
    reply_id = send_for_id(
        stack.smtp_port, mail(ALICE, reply_to, "Re: check-in", REPLY_BODY), ALICE, reply_to
    )

    away = mail(ALICE, TEAM, "Out of office", AWAY_BODY, Auto_Submitted="auto-replied")
    away_id = send_for_id(stack.smtp_port, away, ALICE, TEAM)
    bounce_id = send_for_id(stack.smtp_port, dsn(TEAM), "", TEAM)  # null envelope sender
    digest = f"digest@{DOMAIN}"
    digest_id = send_for_id(
        stack.smtp_port, mail(ALICE, digest, "Re: your digest", DIGEST_BODY), ALICE, digest
    )

    with pytest.raises(smtplib.SMTPDataError):
        stack.send(mail(MALLORY, TEAM, "Hello", STRANGER_BODY), MALLORY, TEAM)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        stack.send(mail(ALICE, f"ops@{DOMAIN}", "Hi", "x"), ALICE, f"ops@{DOMAIN}")

    wait_for(lambda: journal_settled(stack.env["TIDINGS_DATABASE_URL"]), what="processing")
    wait_for(
        lambda: {"auto-reply", "bounce", "digest-reply"} <= set(quarantine_reasons(stack)),
        what="the quarantine",
    )
    return {
        "before": before,
        "ids": {
            "post": post_id,
            "reply": reply_id,
            "away": away_id,
            "bounce": bounce_id,
            "digest reply": digest_id,
        },
        "token": token,
    }


def dsn(to: str) -> bytes:
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        "Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n--R--\r\n"
    ).encode()


def test_metrics_count_what_the_stack_did(stack: Stack, traffic: dict) -> None:
    before = traffic["before"]
    # The answer to the digest reply is sent by the stack's worker.
    url = f"{stack.base_url}/metrics"
    samples = scrape_until(url, "tidings_outbox_sent_total", 1, kind="notice")

    def moved(name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    assert moved("tidings_messages_received_total") == 6  # five accepted, the stranger's
    assert moved("tidings_messages_accepted_total") == 5
    assert moved("tidings_messages_rejected_total", reason="not-a-member") == 1
    assert moved("tidings_messages_rejected_total", reason="no-such-team") == 1
    assert moved("tidings_messages_processed_total", status="processed") == 2
    assert moved("tidings_messages_processed_total", status="quarantined") == 3
    for reason in ("auto-reply", "bounce", "digest-reply"):
        assert moved("tidings_messages_quarantined_total", reason=reason) == 1
    assert moved("tidings_bounces_total") == 1
    assert moved("tidings_processing_seconds_count") == 5
    assert moved("tidings_outbox_sent_total", kind="notice") == 1

    # The outbox gauges are read from the database at scrape time.
    assert ("tidings_outbox_depth", (("status", "pending"),)) in samples
    assert ("tidings_outbox_depth", (("status", "sending"),)) in samples
    assert value(samples, "tidings_outbox_oldest_age_seconds") >= 0
    assert ("tidings_outbox_oldest_age_seconds", ()) in samples
    assert ("tidings_digests_planned_total", ()) in samples

    # HTTP latency by route template, not by path.
    stack.get("/threads/999999")
    after = scrape(f"{stack.base_url}/metrics")
    routes = {dict(labels).get("route") for (name, labels) in after if "http_request" in name}
    assert {"/healthz", "/metrics", "/threads/{thread_id}"} <= routes
    assert not any(r and r.startswith("/threads/9") for r in routes)


def test_readyz_checks_database_schema_and_listener(stack: Stack) -> None:
    response = stack.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "smtp": "ok"}


def test_log_is_json_with_journal_ids_and_no_bodies_or_tokens(stack: Stack, traffic: dict) -> None:
    stack.stop()  # the log is complete, shutdown lines included
    text = stack.log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()

    for name, entry_id in traffic["ids"].items():
        about = [line for line in lines if re.search(rf"\bmessage {entry_id}\b", line["message"])]
        assert len(about) >= 2, f"journaling and processing of the {name} should be logged"
        assert all(line.get("journal_id") == entry_id for line in about), about
        assert sum(line.get("journal_id") == entry_id for line in lines) >= 2

    bodies = (POST_BODY, REPLY_BODY, AWAY_BODY, STRANGER_BODY, DIGEST_BODY)
    for secret in (*bodies, traffic["token"]):
        assert secret not in text
    for body in bodies:
        assert body.split()[0] not in text  # not even a piece of one
    assert stack.token not in text


# Separate processes ----------------------------------------------------------------------


def test_separate_smtp_and_worker_expose_their_metrics(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'tidings.db'}"
    stack = make_stack(tmp_path, database_url, free_port(), free_port())
    stack.cli("db", "upgrade")
    stack.cli("team", "create", "eng", "--name", "Engineering")
    stack.cli("member", "add", "eng", ALICE, "--name", "Alice")
    smtp_metrics, worker_metrics = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def run(command: str, port: int) -> str:
        log = (tmp_path / f"{command}.log").open("ab")
        env = {**stack.env, "TIDINGS_METRICS_PORT": str(port), "TIDINGS_LOG_FORMAT": "json"}
        processes.append(
            subprocess.Popen([str(BIN / "tidings"), command], env=env, stdout=log, stderr=log)
        )
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: _answers(url), 60, f"tidings {command} metrics on {port}")
        return url

    try:
        smtp_url = run("smtp", smtp_metrics)
        entry_id = send_for_id(stack.smtp_port, mail(ALICE, TEAM, "Split", POST_BODY), ALICE, TEAM)
        # A reply to a digest as a whole: its answer goes into the outbox, for the worker.
        digest = f"digest@{DOMAIN}"
        send_for_id(stack.smtp_port, mail(ALICE, digest, "Re: digest", "Thanks"), ALICE, digest)
        # The listener processes what it journaled itself, right after the 250.
        samples = scrape_until(smtp_url, "tidings_processing_seconds_count", 2)
        assert value(samples, "tidings_messages_received_total") == 2
        assert value(samples, "tidings_messages_accepted_total") == 2
        assert value(samples, "tidings_messages_processed_total", status="processed") == 1
        assert value(samples, "tidings_messages_quarantined_total", reason="digest-reply") == 1
        # The listener does not report the outbox: the worker's process does.
        assert not any(name.startswith("tidings_outbox") for name, _ in samples)

        worker_url = run("worker", worker_metrics)
        done = scrape_until(worker_url, "tidings_outbox_sent_total", 1, kind="notice")
        assert value(done, "tidings_outbox_depth", status="pending") == 0
        assert ("tidings_outbox_oldest_age_seconds", ()) in done
        assert value(done, "tidings_messages_received_total") == 0  # not its part
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    smtp_log = (tmp_path / "smtp.log").read_text()
    about = [json.loads(line) for line in smtp_log.splitlines() if f"message {entry_id}" in line]
    assert len(about) >= 2 and all(line["journal_id"] == entry_id for line in about)
    assert POST_BODY not in smtp_log


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False

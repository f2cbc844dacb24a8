"""Ingest throughput: messages per second accepted over SMTP, as a ratio to a bare server.

    .venv/bin/python bench/ingest.py [--messages 400] [--sessions 1,10,50] [--rounds 3]

Both servers run as their own processes on loopback and are measured in the same run,
because these machines are noisy: the baseline is a bare aiosmtpd server that answers
250 and discards the message; the subject is `tidings smtp` on a fresh SQLite database
(journal committed with synchronous=FULL before each 250, processing after it). The
client sends 4 KB messages from a member over N concurrent sessions (aiosmtplib).
Each level runs both servers `--rounds` times, alternating, and reports the medians.

The subject also processes what it journals (parses, trims and stores each update), but
steps aside while mail is arriving (smtp/journal.py), for up to 5 s a message: "processed
after" is how long after a run's last 250 its last message became an update or was
quarantined. A run of 400 messages at 50 sessions lasts well under those 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BARE_SERVER = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
Controller(Discard(), hostname="127.0.0.1", port=int(sys.argv[1])).start()
asyncio.get_event_loop().run_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(n: int) -> bytes:
    words = ("Progress today on the importer and the billing migration. " * 70)[:4000]
    body = "\r\n".join(textwrap.wrap(words, 76))
    return (
        f"From: Alice <alice@example.com>\r\nTo: eng@bench.test\r\nSubject: Update {n}\r\n"
        f"Message-ID: <bench-{n}-{time.time_ns()}@client>\r\n\r\n{body}\r\n"
    ).encode()


async def blast(port: int, messages: int, sessions: int) -> float:
    """Send `messages` over `sessions` concurrent connections; return messages/second."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(messages):
        queue.put_nowait(n)

    async def session() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
        await client.connect()
        while not queue.empty():
            n = queue.get_nowait()
            await client.sendmail("alice@example.com", ["eng@bench.test"], message(n))
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(sessions)))
    return messages / (time.perf_counter() - start)


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("server did not start")


def start_tidings(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_DATA_DIR=str(data_dir),
        TIDINGS_SMTP_PORT=str(port),
        TIDINGS_MAIL_DOMAIN="bench.test",
        TIDINGS_LOG_LEVEL="WARNING",
    )
    tidings = str(BIN / "tidings")
    for args in (
        ["db", "upgrade"],
        ["team", "create", "eng"],
        ["member", "add", "eng", "alice@example.com", "--digest", "off"],
    ):
        subprocess.run([tidings, *args], env=env, check=True, capture_output=True)
    return subprocess.Popen(
        [tidings, "smtp"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def pending(data_dir: Path) -> int:
    """Journal entries not processed yet, read straight from the subject's database."""
    with sqlite3.connect(data_dir / "tidings.db", timeout=30) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM inboundmessage WHERE status = 'pending'"
        ).fetchone()
    return int(count)


def processing_lag(data_dir: Path) -> float:
    """Seconds from now (the last 250 of a run) until every message is processed."""
    start = time.perf_counter()
    while pending(data_dir):
        time.sleep(0.05)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400, help="messages per measurement")
    parser.add_argument("--sessions", default="1,10,50", help="concurrent sessions to try")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating runs of each server per level"
    )
    args = parser.parse_args()
    levels = [int(s) for s in args.sessions.split(",")]

    bare_port, tidings_port = free_port(), free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)])
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        tidings = start_tidings(data_dir, tidings_port)
        try:
            wait_listening(bare_port, bare)
            wait_listening(tidings_port, tidings)
            print(
                f"{'sessions':>8} {'bare msg/s':>11} {'tidings msg/s':>14} {'ratio':>7}"
                f" {'processed after':>16}"
            )
            for sessions in levels:
                # Alternate the two, so drift in machine load hits both alike; medians,
                # so one disturbed run does not decide the ratio.
                base, ours, lags = [], [], []
                for _ in range(args.rounds):
                    base.append(asyncio.run(blast(bare_port, args.messages, sessions)))
                    ours.append(asyncio.run(blast(tidings_port, args.messages, sessions)))
                    lags.append(processing_lag(data_dir))
                b, o = statistics.median(base), statistics.median(ours)
                lag = statistics.median(lags)
                print(f"{sessions:>8} {b:>11.0f} {o:>14.0f} {o / b:>7.2f} {lag:>14.1f} s")
        finally:
            for proc in (bare, tidings):
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()

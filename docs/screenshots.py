"""Screenshots of a real digest email and of the web archive, as headless Chromium shows
them, into docs/img/.

    make screenshots        # or: .venv/bin/python docs/screenshots.py [digest] [archive]

The digest is built through the code that mails it (a throwaway SQLite database, teams,
members and updates through `app.store`, then `digest.build.plan_digest`), so the
pictures show what members get. The same sample is what tests/browser checks, which is
why it is deliberately awkward: names outside ASCII, a URL with no place to break, a code
line wider than a phone, a Markdown table and image, a very long update.

The archive pictures (archive-thread-*.png, archive-search-*.png) are of the same database,
with a reply and an attached image added, served by the real app (`create_app`, under
uvicorn on a local port) to the digest's reader, signed in.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright; Playwright's own
browser downloads are never used.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.main import create_app
from app.models import Membership, OutboundMessage, Person, Thread, utcnow
from app.settings import Settings
from digest.build import plan_digest
from digest.layout import DigestLayout

if TYPE_CHECKING:  # playwright is imported when the pictures are taken
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
OUT = Path(__file__).resolve().parent / "img"
WIDTHS = (375, 800)
SCHEMES = ("light", "dark")
ARCHIVE_WIDTHS = (375, 1280)
# Fixed instants, so the timestamps (and the PNGs) only change when the rendering does.
NOW = datetime(2025, 3, 14, 17, 0, tzinfo=UTC)
JOINED = NOW - timedelta(days=30)

LONG_URL = "https://wiki.example.com/platform/runbooks/" + "-".join(
    f"step{n:02d}-rollback-the-orders-database-migration" for n in range(1, 8)
)
LONG_TOKEN = "final_final_v7_REALLY_final_export_2025-03-14_highres_" + "x" * 60 + ".pdf"
LOG_LINE = (
    "ERROR 2025-03-14T09:12:44Z worker-7 orders.migrate: could not apply 0042_split_addresses"
    ' (relation "orders_address" already exists) retry=3/3 trace_id='
    "7f3a9c2e4b1d8f6a0c5e7b9d2f4a6c8e1b3d5f7a9c0e2b4d6f8a1c3e5b7d9f0a"
)


@dataclass(frozen=True)
class SampleDigest:
    """The digest's HTML part, and one distinctive phrase from every piece of it a reader
    must be able to read (each update's words, who wrote it, which thread and team)."""

    html: str
    phrases: list[str]


def _post(session: Session, thread: Thread, author: Person, body: str, minutes: int) -> None:
    update = store.add_update(session, thread=thread, author=author, body=body, placed_by="sample")
    # add_update stamps "now"; a fixed time keeps the screenshots reproducible.
    update.created_at = NOW - timedelta(hours=8) + timedelta(minutes=minutes)
    session.add(update)


def _very_long_update() -> str:
    paragraphs = [
        f"{hour:02d}:{minute:02d} — checked replica {n}: lag {n * 7} s, connections"
        f" {120 + n}, nothing unusual in the slow-query log for this window."
        for n, (hour, minute) in enumerate((h, m) for h in range(9, 19) for m in (0, 20, 40))
    ]
    return (
        "Incident timeline for the orders outage, as promised.\n\n"
        + "\n\n".join(paragraphs)
        + "\n\n> Customers saw failed checkouts for 8 minutes; no orders were lost.\n\n"
        + "End of the incident timeline; the write-up follows on Monday."
    )


def sample_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        mail_domain="tidings.test",
        secret_key="screenshots-only",
        base_url="https://tidings.example.com",
    )


def seed_sample(session: Session, *, very_long: bool = True) -> Person:
    """The sample's teams, members and updates (see `build_sample`); returns the reader,
    Ana, who is in all three teams."""
    platform = store.create_team(session, "platform", "Platform")
    design = store.create_team(session, "design", "Design & Research")
    ops = store.create_team(session, "ops", "Ops 東京")
    reader = store.add_member(
        session, "platform", "ana@example.com", "Ana Lima", "America/Sao_Paulo"
    )
    jose = store.add_member(session, "platform", "jose@example.com", "José Martínez")
    lilei = store.add_member(session, "platform", "lilei@example.com", "李雷", "Asia/Shanghai")
    ngozi = store.add_member(session, "platform", "ngozi@example.com", "Ngozi Okonkwo")
    # A real surname, and a long unbreakable word in the byline.
    hubert = store.add_member(
        session,
        "design",
        "hubert@example.com",
        "Hubert Wolfeschlegelsteinhausenbergerdorff",
    )
    for slug in ("design", "ops"):
        store.add_member(session, slug, "ana@example.com", "Ana Lima", "America/Sao_Paulo")
    store.add_member(session, "ops", "jose@example.com", "José Martínez")
    store.add_member(session, "ops", "lilei@example.com", "李雷", "Asia/Shanghai")
    for membership in session.exec(select(Membership)).all():
        membership.joined_at = JOINED  # before every update, so all of them are new
        session.add(membership)

    checkin = store.checkin_thread(session, platform, date(2025, 3, 14))
    _post(
        session,
        checkin,
        jose,
        "Shipped the **retry queue** to staging.\n\n"
        "- fixed the flaky login test\n"
        "- paired with 李雷 on the migration\n"
        "- reviewed three pull requests\n\n"
        "Nothing blocking me.",
        0,
    )
    _post(
        session,
        checkin,
        lilei,
        "今天完成了数据库迁移脚本，明天开始压力测试。\n"
        f"The rollback plan is written up at {LONG_URL}\n"
        f"and as a [link]({LONG_URL}).",
        15,
    )
    deploy = Thread(
        team_id=platform.id,  # type: ignore[arg-type]
        title="Deploy failed: https://ci.example.com/pipelines/orders-service/"
        "builds/20250314-0912-7f3a9c2e4b1d8f6a0c5e7b9d2f4a6c8e",
    )
    session.add(deploy)
    session.flush()
    _post(
        session,
        deploy,
        ngozi,
        f"Rolled back at 09:20; the log line that matters:\n\n```\n{LOG_LINE}\n```\n\n"
        "I will re-run the migration behind a flag tomorrow.\n\n"
        "Blocked: need the staging DB credentials from ops before the retry.",
        30,
    )
    survey = Thread(team_id=design.id, title="Onboarding survey results")  # type: ignore[arg-type]
    session.add(survey)
    session.flush()
    _post(
        session,
        survey,
        hubert,
        "Response rate was 62% this round.\n\n"
        "| question | yes | no |\n|---|---|---|\n"
        "| Found the invite email | 41 | 3 |\n| Replied by email | 37 | 7 |\n\n"
        "![Chart of the answers](https://cdn.example.com/survey/chart.png)\n"
        '<img src="https://tracker.example.com/pixel.gif" width="1" height="1">\n'
        f"Full export attached to DESIGN-4821 as {LONG_TOKEN}",
        45,
    )
    rota = Thread(team_id=ops.id, title="On-call rota")  # type: ignore[arg-type]
    session.add(rota)
    session.flush()
    # An @-mention of the reader: the digest puts it first, "for you".
    _post(session, rota, lilei, "@ana 能帮我看一下 the on-call rota for next week?", 50)
    if very_long:
        incident = Thread(team_id=ops.id, title="Orders outage, 14 March")  # type: ignore[arg-type]
        session.add(incident)
        session.flush()
        _post(session, incident, jose, _very_long_update(), 60)
    return reader


def build_sample(data_dir: Path, *, very_long: bool = True) -> SampleDigest:
    """A digest for one member of three teams, planned by `plan_digest` and rendered from
    its outbox row as the bytes that would be mailed. `very_long` adds a 32-paragraph
    update (the tests want it; a screenshot for the README does not)."""
    settings = sample_settings(data_dir)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            reader = seed_sample(session, very_long=very_long)
            planned = plan_digest(session, reader, settings, NOW)
            assert planned, "the sample has updates, so a digest is planned"
            # Planned digests are rendered when they are sent: this is that rendering.
            row = session.exec(
                select(OutboundMessage).where(
                    OutboundMessage.person_id == reader.id, OutboundMessage.kind == "digest"
                )
            ).one()
            raw = DigestLayout(settings).render(session, row)
    finally:
        engine.dispose()

    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("html",))
    assert part is not None, "a digest has an HTML part"
    phrases = [
        "Shipped the retry queue to staging",
        "paired with 李雷 on the migration",
        "Nothing blocking me",
        "今天完成了数据库迁移脚本",
        "The rollback plan is written up at",
        "Rolled back at 09:20",
        "could not apply 0042_split_addresses",
        "re-run the migration behind a flag",
        "need the staging DB credentials",
        "the on-call rota for next week",
        "Response rate was 62% this round",
        "Found the invite email",
        "Full export attached to DESIGN-4821",
        # Bylines, thread titles and team names: whose words, where they belong.
        "José Martínez",
        "李雷",
        "Ngozi Okonkwo",
        "Wolfeschlegelsteinhausenbergerdorff",
        "Deploy failed:",
        "Onboarding survey results",
        "Design & Research",
        "On-call rota",
    ]
    if very_long:
        phrases += [
            "Incident timeline for the orders outage",
            # Not its last words: the digest may shorten a long update and link to the rest.
            "Orders outage, 14 March",
            "Ops 東京",  # the team has nothing else outside "for you"
        ]
    return SampleDigest(html=part.get_content(), phrases=phrases)


def _has_cjk_font() -> bool:
    """Whether Chromium can draw 李雷; without a CJK font the names show as boxes."""
    if shutil.which("fc-list") is None:
        return True  # cannot tell; do not nag
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    return bool(found.stdout.strip())


def sample_png(width: int, height: int) -> bytes:
    """A small bar chart as a PNG, without an imaging library: what a member attaches."""
    bars = [0.35, 0.6, 0.45, 0.9, 0.7, 0.8]
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter type: none
        for x in range(width):
            bar, within = divmod(x * len(bars), width)
            inside = within > width * 0.2 and height - y < bars[bar] * height * 0.9
            row += bytes((11, 87, 208) if inside else (246, 248, 250))
        rows.append(bytes(row))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class SampleArchive:
    thread_path: str
    search_path: str
    cookie: str  # the reader's session


def build_archive_sample(data_dir: Path) -> SampleArchive:
    """The digest's sample (without the very long update) with replies in the check-in
    thread, one with an attached chart and a PDF, and a signed-in session for the digest's
    reader, Ana."""
    settings = sample_settings(data_dir)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            ana = seed_sample(session, very_long=False)
            jose = store.find_person(session, "jose@example.com")
            assert jose is not None
            platform = store.get_team(session, "platform")
            checkin = store.checkin_thread(session, platform, date(2025, 3, 14))
            first = store.thread_updates(session, checkin.id)[0][0]  # type: ignore[arg-type]
            reply = store.add_update(
                session,
                thread=checkin,
                author=ana,
                body="Nice work on the retry queue! Error rate on staging since it went in:",
                parent=first,
                placed_by="sample",
                attachments=[
                    store.NewAttachment("error-rate.png", "image/png", sample_png(480, 160)),
                    store.NewAttachment("retry-queue-notes.pdf", "application/pdf", b"%PDF-1.4"),
                ],
            )
            reply.created_at = NOW - timedelta(hours=7, minutes=10)
            session.add(reply)
            thanks = store.add_update(
                session,
                thread=checkin,
                author=jose,
                body="Thanks! The spike on Tuesday was the flaky login test.",
                parent=reply,
                placed_by="sample",
            )
            thanks.created_at = NOW - timedelta(hours=6, minutes=55)
            session.add(thanks)
            found = store.request_sign_in(session, ana.email, "127.0.0.1", "/", utcnow())
            assert found is not None
            done = store.complete_sign_in(session, found[1], utcnow())
            assert done is not None
            return SampleArchive(f"/threads/{checkin.id}", "/search?q=migration", done[0])
    finally:
        engine.dispose()


class Archive:
    """The real app on a local port, in this process, for as long as the `with` lasts."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Archive:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the archive did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def archive_screenshots(browser: Browser, data_dir: Path) -> None:
    """The thread page and search results, as the sample's reader sees them, signed in."""
    sample = build_archive_sample(data_dir)
    with Archive(sample_settings(data_dir)) as archive:
        for width in ARCHIVE_WIDTHS:
            context = browser.new_context(viewport={"width": width, "height": 720})
            context.add_cookies(
                [{"name": "tidings_session", "value": sample.cookie, "url": archive.base_url}]
            )
            page = context.new_page()
            for name, path in (("thread", sample.thread_path), ("search", sample.search_path)):
                page.goto(archive.base_url + path, wait_until="networkidle")
                # Lazy images below the fold load once scrolled to; the picture wants them.
                page.evaluate(
                    "document.querySelectorAll('img').forEach((i) => (i.loading = 'eager'))"
                )
                page.wait_for_function("[...document.images].every((i) => i.complete)")
                out = OUT / f"archive-{name}-{width}.png"
                page.screenshot(path=str(out), full_page=True)
                print(f"wrote {out}")
            context.close()


def digest_screenshots(browser: Browser, data_dir: Path) -> None:
    # No 12-paragraph update: the picture is for the README, not a stress test.
    sample = build_sample(data_dir, very_long=False)
    for width, scheme in ((w, s) for s in SCHEMES for w in WIDTHS):
        page = browser.new_page(viewport={"width": width, "height": 640}, color_scheme=scheme)
        # A digest loads nothing from the network; the picture must not either.
        page.route("**/*", lambda route: route.abort())
        page.set_content(sample.html)
        path = OUT / f"digest-{width}{'' if scheme == 'light' else '-dark'}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"wrote {path}")
        page.close()


KINDS = {"digest": digest_screenshots, "archive": archive_screenshots}


def main(argv: list[str]) -> int:
    """`screenshots.py [digest] [archive]`: the pictures of those (all of them by default)."""
    kinds = argv or list(KINDS)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        print(f"unknown: {', '.join(unknown)}; choose from {', '.join(KINDS)}")
        return 2
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium: apt-get install chromium")
        return 1
    if not _has_cjk_font():
        print(
            "warning: no Chinese font, so 李雷 shows as boxes: apt-get install fonts-wqy-microhei"
        )
    from playwright.sync_api import sync_playwright

    OUT.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            for kind in kinds:
                with TemporaryDirectory() as tmp:
                    KINDS[kind](browser, Path(tmp))
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

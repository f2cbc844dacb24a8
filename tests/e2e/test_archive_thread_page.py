"""The thread page of the web archive, end to end against a running `tidings serve`:
the member's own "Reply by email" link, and attachments shown inline only when they are
raster images on the allow-list (everything else, SVG included, stays a download).

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from app.tokens import parse_recipient, verify_reply_token
from tests.conftest import free_port
from tests.e2e.stack import DOMAIN, Stack, mail, make_stack, thread_titled, updates_of, wait_for
from tests.e2e.test_access import signed_in

ALICE, BOB, CAROL = "alice@example.com", "bob@example.org", "carol@example.net"
PLAN = "Rollout plan: «phase 2» & friends?"
NEWS = "Public news"
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
    b"<script>alert(2)</script><rect width='10' height='10'/></svg>"
)


def png(width: int, height: int, rgb: tuple[int, int, int] = (11, 87, 208)) -> bytes:
    """A real PNG of one colour, without an imaging library."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# Each attachment: (file name, MIME type as mailed, bytes, shown inline?)
FILES = [
    ("chart.png", "image/png", png(40, 20), True),
    ("photo.jpg", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32, True),
    ("spinner.gif", "image/gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", True),
    ("logo.svg", "image/svg+xml", SVG, False),
    # Declared a PNG, but it is a web page: the bytes decide, not the sender's label.
    ("not-really.png", "image/png", b"<html><script>alert(3)</script></html>", False),
    ("notes.txt", "text/plain", b"plain notes", False),
]


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering")
        stack.cli("team", "create", "news", "--name", "Newsroom", "--public")
        stack.cli("member", "add", "eng", ALICE, "--name", "Alice")
        stack.cli("member", "add", "eng", BOB, "--name", "Bob")
        stack.cli("member", "add", "news", BOB, "--name", "Bob")
        stack.cli("team", "create", "ops", "--name", "Operations")
        stack.cli("member", "add", "ops", CAROL, "--name", "Carol")
        stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
        msg = mail(BOB, f"eng@{DOMAIN}", PLAN, "Phase 2 starts Monday.")
        for name, mime, data, _ in FILES:
            maintype, subtype = mime.split("/")
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        stack.send(msg, BOB, f"eng@{DOMAIN}")
        stack.send(mail(BOB, f"news@{DOMAIN}", NEWS, "The narwhal launch."), BOB, f"news@{DOMAIN}")
        wait_for(lambda: thread_titled(stack, PLAN) and thread_titled(stack, NEWS, "news"))
        yield stack
    finally:
        stack.stop()


class Tags(HTMLParser):
    """The attributes of every start tag, and the text of each link, as a browser reads them."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.link_text: dict[int, str] = {}
        self._open_link: int | None = None
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag == "a":
            self._open_link = len(self.tags) - 1
            self.link_text[self._open_link] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open_link = None

    def handle_data(self, data: str) -> None:
        if self._open_link is not None:
            self.link_text[self._open_link] += data

    def links(self, text: str) -> list[str]:
        return [
            self.tags[i][1]["href"] for i, shown in self.link_text.items() if shown.strip() == text
        ]

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]


def test_a_member_replies_by_email_from_the_thread_page(stack: Stack) -> None:
    thread = thread_titled(stack, PLAN)
    assert thread is not None
    alice = signed_in(stack, ALICE)
    page = alice.get(f"/threads/{thread['id']}")
    assert page.status_code == 200
    [link] = Tags(page.text).links("Reply by email")
    parts = urlsplit(link)
    assert parts.scheme == "mailto"
    address = parts.path
    assert parts.query.startswith("subject=")
    assert unquote(parts.query.removeprefix("subject=")) == f"Re: {PLAN}"
    assert not re.search(r"[ «»&?]", parts.query.removeprefix("subject="))  # URL-quoted

    # The address is Alice's own, for this thread, signed with the server's keys.
    recipient = parse_recipient(address, DOMAIN)
    assert recipient is not None and recipient.team_slug == "eng" and recipient.token
    token = verify_reply_token(recipient.token, stack.reply_keys())
    assert token.thread_id == thread["id"]
    [bobs_post] = updates_of(stack, thread["id"])
    assert token.person_id != bobs_post["author"]["id"]  # Alice's, not the author's

    # Mailed from Alice's address, it becomes her reply in that thread.
    reply = mail(ALICE, address, unquote(parts.query.removeprefix("subject=")), "Count me in.")
    stack.send(reply, ALICE, address)

    def two_updates() -> list[dict] | None:
        found = updates_of(stack, thread["id"])
        return found if len(found) == 2 else None

    updates = wait_for(two_updates, what="Alice's reply in the thread")
    answer = updates[-1]
    assert answer["author"]["email"] == ALICE
    assert answer["body"].strip() == "Count me in."
    assert answer["placed_by"] == "reply-token"
    assert answer["author"]["id"] == token.person_id
    assert "Count me in." in alice.get(f"/threads/{thread['id']}").text

    # Bob's page carries Bob's own address: each member replies as themselves.
    bob = signed_in(stack, BOB)
    [bobs] = Tags(bob.get(f"/threads/{thread['id']}").text).links("Reply by email")
    assert bobs != link
    bobs_recipient = parse_recipient(urlsplit(bobs).path, DOMAIN)
    assert bobs_recipient is not None and bobs_recipient.token
    bobs_token = verify_reply_token(bobs_recipient.token, stack.reply_keys())
    assert bobs_token.person_id == bobs_post["author"]["id"]


def test_no_reply_link_for_visitors_who_are_not_members(stack: Stack) -> None:
    news = thread_titled(stack, NEWS, "news")
    assert news is not None
    signed_out = stack.get(f"/threads/{news['id']}")
    assert signed_out.status_code == 200 and "narwhal" in signed_out.text
    assert "Reply by email" not in signed_out.text and "+r." not in signed_out.text
    # Carol is signed in but not in the public team: she may read it, not post to it.
    carol = signed_in(stack, CAROL)
    as_carol = carol.get(f"/threads/{news['id']}")
    assert as_carol.status_code == 200 and "narwhal" in as_carol.text
    assert "Reply by email" not in as_carol.text and "+r." not in as_carol.text
    # Bob is in it: the link is there for him.
    bob = signed_in(stack, BOB)
    assert Tags(bob.get(f"/threads/{news['id']}").text).links("Reply by email")


def attachments_by_name(stack: Stack) -> dict[str, dict]:
    thread = thread_titled(stack, PLAN)
    assert thread is not None
    [first, *_] = updates_of(stack, thread["id"])
    return {a["filename"]: a for a in first["attachments"]}


def test_only_allow_listed_images_show_inline_with_alt_text(stack: Stack) -> None:
    thread = thread_titled(stack, PLAN)
    assert thread is not None
    files = attachments_by_name(stack)
    assert set(files) == {name for name, *_ in FILES}
    page = Tags(signed_in(stack, ALICE).get(f"/threads/{thread['id']}").text)
    images = {img["src"]: img for img in page.all("img")}
    for name, _, _, inline in FILES:
        src = f"/attachments/{files[name]['id']}"
        if inline:
            assert src in images, name
            assert images[src]["alt"] == name  # the file name, for who cannot see it
        else:
            assert src not in images, name
            assert page.links(name) == [src], name  # a download link, named as the file
    assert not any(i["src"].endswith(str(files["logo.svg"]["id"])) for i in page.all("img"))
    assert not page.all("svg") and not page.all("object") and not page.all("embed")


def test_the_attachment_route_serves_images_inline_and_the_rest_as_downloads(
    stack: Stack,
) -> None:
    files = attachments_by_name(stack)
    alice = signed_in(stack, ALICE)
    for name, mime, data, inline in FILES:
        response = alice.get(f"/attachments/{files[name]['id']}")
        assert response.status_code == 200, name
        assert response.content == data, name
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", name
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "img-src 'self'" in csp, name
        if inline:
            assert headers["content-type"] == mime, name
            assert headers["content-disposition"].startswith("inline;"), name
        else:
            assert headers["content-type"] == "application/octet-stream", name
            assert headers["content-disposition"].startswith("attachment;"), name
        assert f'filename="{name}"' in headers["content-disposition"], name


def test_inline_images_stay_private_to_the_team(stack: Stack) -> None:
    files = attachments_by_name(stack)
    path = f"/attachments/{files['chart.png']['id']}"
    signed_out = httpx.get(f"{stack.base_url}{path}", timeout=10)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == f"/signin?next={path}"
    assert signed_in(stack, CAROL).get(path).status_code == 404

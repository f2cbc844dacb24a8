"""Hostile mail through the real pipeline, read in a real browser: nothing it carries runs.

One `tidings serve` (SQLite) gets a corpus of classic XSS vectors over real SMTP, in every
place mail carries text: subject lines (thread titles), plain-text and Markdown bodies,
HTML-only bodies, From display names (shown on the page where a held reply is approved),
attachment file names, and member names (they head every post). Headless Chromium, signed
in through the emailed link like a person, then opens every page that shows any of it: the
team pages, each thread, the member pages, search results, the Atom feed, each thread's fix
page, the held-reply, alias and unsubscribe pages, and the search box and sign-in form with
the vectors fed back in through the URL.

A page passes when no dialog opened and no script ran: an init script replaces
alert/confirm/prompt/print with recorders (the vectors call them), and dialogs, CSP
violation reports and requests to other sites are recorded too. Each page's DOM is also
searched for markup that could run if the CSP were gone (event-handler attributes,
javascript: URLs, script/iframe/object/meta refresh), and the pages showing rendered
Markdown are opened a second time with the CSP switched off: feed readers, mail clients and
a future template change do not have it, so escaping and the nh3 allow-list must hold on
their own. The mail Tidings sends about these posts (digests, approval requests, receipts)
and the feed's entries are rendered the same way, with no CSP at all.

Cross-site request forgery: pages on another site (127.0.0.2: another site for cookies than
the archive's 127.0.0.1) submit forms at every state-changing route as soon as they load,
in a Chromium context holding a member's session cookie.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright without its own
browser downloads. Without it these tests skip with that instruction, and fail in CI.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import http.server
import json
import mailbox
import re
import smtplib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode
from xml.etree import ElementTree as ET

import httpx
import pytest

from app import store
from app.db import make_engine, session_scope
from app.tokens import FIX_LINK_PURPOSE, UNSUBSCRIBE_PURPOSE, reply_address_for, sign_link
from tests.browser.conftest import CHROMIUM
from tests.conftest import free_port
from tests.e2e.stack import DOMAIN, Stack, journal_settled, make_stack, wait_for

if TYPE_CHECKING:  # only for hints: without playwright the tests skip instead
    from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Route

ALICE, BOB, MALLORY = "alice@example.com", "bob@example.org", "mallory@example.net"
TEAM = "lab"
TEAM_ADDRESS = f"{TEAM}@{DOMAIN}"
# The team's own name is hostile too: it heads every page of the team.
TEAM_NAME = 'Lab <img src=x onerror=alert("team")>'
ATTACHMENT_BODY = b"<html><script>alert('attachment')</script></html>"
TABS = 8  # pages open at once per sweep: one tab at a time would take a minute a sweep
# Requests to anything but the archive (127.0.0.1) are stopped and recorded.
OFFSITE = re.compile(r"^https?://(?!127\.0\.0\.1:\d+/)")

# The corpus -------------------------------------------------------------------------------
# Breaking out of the attributes, elements and text containers of our own templates: in
# every channel, and fed back in URLs too.
BREAKOUTS: list[str] = [
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    '" onmouseover="alert(1)" autofocus onfocus="alert(1)" x="',
    "' autofocus onfocus='alert(1)",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "</pre><img src=x onerror=alert(1)>",
    "</summary></details><img src=x onerror=alert(1)>",
]
# Classic payloads from the usual cheat sheets (OWASP, PortSwigger, html5sec). Each calls
# alert/confirm/prompt/print, which the init script records, or tries to load something
# from another site, which the request log records.
VECTORS: list[str] = [
    # Script elements, plain and disguised.
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//xss.example/x.js></SCRIPT>",
    "<script>alert(String.fromCharCode(88,83,83))</script>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<<script>alert(1);//<</script>",
    "<script/x>alert(1)</script>",
    "</script><script>alert(1)</script>",
    # Event handlers.
    "<img src=x onerror=alert(1)>",
    '<img src="x" onerror="alert(1)">',
    "<img src=x:alert(alt) onerror=eval(src) alt=0>",
    "<img src=`x`onerror=alert(1)>",
    '<IMG SRC="javascript:alert(1);">',
    "<img srcset=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg/onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<body onload=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<select autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)>",
    "<audio src=x onerror=alert(1)>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<xss id=x tabindex=1 autofocus onfocusin=alert(1)></xss>",
    "<x onclick=alert(1)>click me</x>",
    # Dangerous URLs.
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="javascript&colon;alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<svg><a xlink:href="javascript:alert(1)"><text x=20 y=20>x</text></a></svg>',
    '<math href="javascript:alert(1)">x</math>',
    '<form action="javascript:alert(1)"><button>go</button></form>',
    '<button formaction="javascript:alert(1)">x</button>',
    "<isindex action=javascript:alert(1) type=image>",
    # Frames, objects, and what changes the page's own rules.
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<iframe srcdoc="&lt;img src=x onerror=alert(1)&gt;"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    '<object data="data:text/html,<script>alert(1)</script>"></object>',
    '<embed src="javascript:alert(1)">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<base href="javascript:alert(1)//">',
    '<link rel=stylesheet href="https://evil.example/x.css">',
    # Styles.
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<div style="width: expression(alert(1))">x</div>',
    '<style>@import "https://evil.example/x.css";</style>',
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    # Parser differentials (mXSS).
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    '<!--<img src="--><img src=x onerror=alert(1)//">',
    "<![CDATA[<script>alert(1)</script>]]>",
    "<template><script>alert(1)</script></template><img src=x onerror=alert(1)>",
    # Breaking out of attributes, elements and text containers of our own templates.
    *BREAKOUTS,
    # Template injection: must show as typed, never evaluated.
    '{{7*7}} {{constructor.constructor("alert(1)")()}}',
    "${alert(1)} #{7*7} <%= 7*7 %> {% print(7*7) %}",
    # Encodings and Unicode tricks.
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
    '<a href="java\u200bscript:alert(1)">zero width</a>',
    "<img src=x onerror=\\u0061lert(1)>",  # a JavaScript escape, for the browser to undo
    "\u202e<img src=x onerror=alert(1)>",
]
# Markdown's own ways to make links, images and raw HTML.
MARKDOWN_VECTORS: list[str] = [
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](javascript&#58;alert(1))",
    "[x](  javascript:alert(1)  )",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "![x](javascript:alert(1))",
    '![x" onerror="alert(1)](https://example.com/a.png)',
    '![a](x" onerror="alert(1))',
    "![a](https://evil.example/pixel.png)",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "<javascript:alert(1)>",
    '[x](https://example.com "t\\" onmouseover=\\"alert(1)")',
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | <script>alert(1)</script> |",
    "> <svg onload=alert(1)>",
    "- [x](javascript:alert(1))\n- <img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">*emph*</a>',
    "[<img src=x onerror=alert(1)>](https://example.com)",
    '[x](https://example.com/"onmouseover="alert(1))',
    "# <script>alert(1)</script>",
    "<img src='x\" onmouseover=\"alert(1)' alt='<script>alert(1)</script>'>",
]
# Names people choose: the From display name of held replies, and member names given to
# `tidings member add --name` (they head every post of that member).
NAME_VECTORS: list[str] = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "' autofocus onfocus='alert(1)",
    "</textarea><script>alert(1)</script>",
    "{{7*7}}",
    "&lt;b&gt;Ann&lt;/b&gt;",
    "\u202eAnn <svg/onload=alert(1)>",
]
# Search terms that find the posts, and queries that are vectors themselves (reflected).
SEARCH_WORDS = ["alert", "script", "onerror", "javascript", "svg", "iframe", "noscript", "7"]
REFLECTED = [*VECTORS[:8], *BREAKOUTS, *MARKDOWN_VECTORS[:2]]

# The page's eyes --------------------------------------------------------------------------

# Runs before any script of every document and frame: records calls of the functions the
# vectors call (in the top window, where the report reads them), and what the CSP blocked.
_WATCH = """(() => {
  window.__xss = [];
  window.__csp = [];
  const record = (what) => {
    try { window.top.__xss.push(what); } catch (e) { window.__xss.push(what); }
  };
  for (const name of ["alert", "confirm", "prompt", "print"]) {
    window[name] = (...args) => { record(`${name}(${args.join(", ")}) in ${location.href}`); };
  }
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__csp.push(`${e.violatedDirective}: ${e.sample || e.blockedURI}`);
  });
})();"""

# After a rendering step (autofocus handlers fire in it): what ran, what the CSP blocked,
# and, in HTML, markup that must never reach a page whether or not it managed to run.
_REPORT = """async () => {
  await new Promise((done) => requestAnimationFrame(done));
  const dangerous = [];
  // As the browser resolves it: a scheme it would run, not text that looks like one.
  const unsafeUrl = (value) => {
    try {
      return ["javascript:", "data:", "vbscript:"].includes(new URL(value, location.href).protocol);
    } catch (e) {
      return false;
    }
  };
  if (document.contentType === "text/html") {
    for (const el of document.querySelectorAll("*")) {
      const tag = el.localName;
      const stylesheet = tag === "link" && el.getAttribute("href") === "/style.css";
      if (["script", "iframe", "frame", "object", "embed", "base", "applet", "style",
           "link", "svg", "math", "template", "noscript"].includes(tag) && !stylesheet) {
        dangerous.push(`<${tag}>`);
      }
      if (tag === "meta" && el.hasAttribute("http-equiv")) dangerous.push("<meta http-equiv>");
      for (const attr of el.attributes) {
        const name = attr.name.toLowerCase();
        if (name.startsWith("on") || ["style", "srcdoc", "formaction"].includes(name)) {
          dangerous.push(`<${tag} ${name}>`);
        }
        if (["href", "src", "action", "xlink:href", "data", "background"].includes(name)
            && unsafeUrl(attr.value)) {
          dangerous.push(`<${tag} ${name}="${attr.value}">`);
        }
      }
    }
    for (const form of document.forms) {
      if (new URL(form.action).origin !== location.origin) dangerous.push(`form to ${form.action}`);
    }
  }
  return {executed: window.__xss, blocked: window.__csp, dangerous, url: location.href,
          title: (document.querySelector("main h1") || {}).textContent || null};
}"""


def squash(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Visit:
    """One page as the browser got it, and everything that tried to happen on it."""

    url: str
    status: int
    headers: dict[str, str]
    executed: list[str]
    blocked: list[str]
    dangerous: list[str]
    dialogs: list[str]
    offsite: list[str]
    final_url: str
    title: str | None

    def problems(self) -> list[str]:
        found = [f"script ran: {what}" for what in self.executed]
        found += [f"dialog opened: {what}" for what in self.dialogs]
        found += [f"fetched from another site: {url}" for url in self.offsite]
        if self.final_url.split("#")[0] != self.url.split("#")[0]:
            found.append(f"navigated away to {self.final_url}")
        return found


async def _sweep(
    base_url: str, cookies: list[Any], paths: list[str], bypass_csp: bool
) -> list[Visit]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM))
        context = await browser.new_context(bypass_csp=bypass_csp)
        await context.add_cookies(cookies)
        await context.add_init_script(_WATCH)
        queue = list(enumerate(paths))
        visits: list[Visit | None] = [None] * len(paths)

        async def tab() -> None:
            page = await context.new_page()
            offsite: list[str] = []
            dialogs: list[str] = []
            console: list[str] = []  # Chromium's own CSP messages, besides the DOM events

            async def stop(route: Any) -> None:
                offsite.append(route.request.url)
                await route.abort()

            async def dismiss(dialog: Any) -> None:
                dialogs.append(f"{dialog.type}: {dialog.message}")
                await dialog.dismiss()

            def csp_message(message: Any) -> None:
                if message.type == "error" and "Content Security Policy" in message.text:
                    console.append(message.text)

            await page.route(OFFSITE, stop)
            page.on("dialog", dismiss)
            page.on("console", csp_message)
            while queue:
                index, path = queue.pop(0)
                offsite.clear()
                dialogs.clear()
                console.clear()
                url = f"{base_url}{path}"
                response = await page.goto(url, wait_until="load")
                assert response is not None, url
                report = await page.evaluate(_REPORT)
                for frame in page.frames[1:]:  # a frame that got in reports on its own
                    report["executed"] += await frame.evaluate("window.__xss || []")
                visits[index] = Visit(
                    url=url,
                    status=response.status,
                    headers=await response.all_headers(),
                    executed=report["executed"],
                    blocked=report["blocked"] + console,
                    dangerous=report["dangerous"],
                    dialogs=list(dialogs),
                    offsite=list(offsite),
                    final_url=report["url"],
                    title=report["title"],
                )
            await page.close()

        await asyncio.gather(*(tab() for _ in range(TABS)))
        await browser.close()
    return [visit for visit in visits if visit is not None]


def sweep(base_url: str, cookies: list[Any], paths: list[str], bypass_csp: bool) -> list[Visit]:
    """Open every page in a browser holding `cookies`, several tabs at once. Playwright's
    sync API (used by the rest of this module) has no concurrent tabs, so this is its async
    API with a Chromium of its own, on a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _sweep(base_url, cookies, paths, bypass_csp)).result()


class Reader:
    """Markup shown the way a mail client or feed reader shows it: no CSP at all, nothing
    fetched from anywhere, the same watchers as the sweeps."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.offsite: list[str] = []
        self.dialogs: list[str] = []
        context.add_init_script(_WATCH)
        context.route(OFFSITE, self._stop)
        self.page = context.new_page()
        self.page.on("dialog", self._dismiss)

    def _stop(self, route: Route) -> None:
        self.offsite.append(route.request.url)
        route.abort()

    def _dismiss(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def render(self, markup: str) -> list[str]:
        """What ran, opened, fetched, or must not be there, when `markup` is shown."""
        self.offsite.clear()
        self.dialogs.clear()
        self.page.goto("about:blank")  # a fresh window: the watchers start empty
        self.page.set_content(markup, wait_until="load")
        report = self.page.evaluate(_REPORT)
        return [
            *(f"script ran: {what}" for what in report["executed"]),
            *(f"dialog opened: {what}" for what in self.dialogs),
            *(f"fetched from another site: {url}" for url in self.offsite),
            *report["dangerous"],
        ]


# Mail -------------------------------------------------------------------------------------

SIGN_IN_LINK = r"http://\S+/signin/\S+"


class Outbox:
    """The stack's sent mail (a Maildir), each message parsed once: digests and receipts
    make it large, and sign-in links are polled for."""

    def __init__(self, stack: Stack) -> None:
        self.box = mailbox.Maildir(stack.data_dir / "outbox", create=True)
        self.parsed: dict[str, EmailMessage] = {}

    def messages(self) -> list[EmailMessage]:
        for key in self.box.iterkeys():  # keys only: iterating a Maildir parses it
            if key not in self.parsed:
                raw = self.box.get_bytes(key)
                self.parsed[key] = email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[assignment]
        return [self.parsed[key] for key in sorted(self.parsed)]  # named by delivery time

    def to(self, address: str, subject: str = "") -> list[EmailMessage]:
        return [
            m
            for m in self.messages()
            if m["To"].addresses[0].addr_spec == address and subject in str(m["Subject"])
        ]

    def links(self, address: str, pattern: str, subject: str = "") -> list[str]:
        """Links in the plain-text part of mail to `address`, as paths on the archive."""
        found = []
        for message in self.to(address, subject):
            text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            found += ["/" + link.split("/", 3)[3] for link in re.findall(pattern, text)]
        return list(dict.fromkeys(found))


def sign_in_link(outbox: Outbox, address: str, before: int) -> str:
    def newest() -> str | None:
        links = outbox.links(address, SIGN_IN_LINK, "sign-in link")
        return links[-1] if len(links) > before else None

    return wait_for(newest, what=f"the sign-in link for {address}")


def session_cookie(stack: Stack, outbox: Outbox, address: str) -> dict[str, Any]:
    """A session of its own (signed in by the emailed link, over HTTP), as the cookie the
    server set, for a browser that must not share its session with the others."""
    before = len(outbox.links(address, SIGN_IN_LINK, "sign-in link"))
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        assert client.post("/signin", data={"email": address}).status_code == 200
        done = client.post(sign_in_link(outbox, address, before))
        assert done.status_code == 303, done.text
        # The attributes matter here: SameSite decides what cross-site requests carry.
        assert "httponly" in done.headers["set-cookie"].lower()
        assert "samesite=lax" in done.headers["set-cookie"].lower()
        value = client.cookies["tidings_session"]
    return {
        "name": "tidings_session",
        "value": value,
        "url": stack.base_url,
        "httpOnly": True,
        "sameSite": "Lax",
    }


def send(stack: Stack, msg: EmailMessage | bytes, sender: str, to: str) -> str:
    """Send over SMTP; '' when accepted, else the refusal (hostile mail may be refused)."""
    try:
        stack.send(msg, sender, to)
    except smtplib.SMTPResponseException as exc:
        return f"{exc.smtp_code} {exc.smtp_error!r}"
    except smtplib.SMTPRecipientsRefused as exc:
        return str(exc.recipients)
    return ""


def message(sender: str | Address, subject: str, body: str, to: str = TEAM_ADDRESS) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="client.example")
    msg.set_content(body)
    return msg


def raw_reply(display_name: str, to: str, subject: str, body: str) -> bytes:
    """A reply with the display name written into From as is, unquoted: what a hostile
    client sends (non-ASCII names as an RFC 2047 encoded word, as any client would)."""
    name = display_name if display_name.isascii() else Header(display_name, "utf-8").encode()
    return (
        f"From: {name} <{ALICE}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: {make_msgid(domain='client.example')}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    ).encode()


def far_hour() -> int:
    """A digest hour twelve hours away (UTC): no digest goes out unless a test asks."""
    return (datetime.now(UTC) + timedelta(hours=12)).hour


# The stack, seeded ------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the corpus became: the pages showing it, and what the pipeline did with it."""

    stack: Stack
    outbox: Outbox
    threads: list[dict] = field(default_factory=list)  # API thread details
    refused: dict[str, str] = field(default_factory=dict)
    held_pages: list[str] = field(default_factory=list)
    alias_pages: list[str] = field(default_factory=list)
    unsubscribe_pages: list[str] = field(default_factory=list)

    @property
    def updates(self) -> list[dict]:
        return [u for thread in self.threads for u in thread["updates"]]

    def thread(self, title: str) -> dict:
        return next(t for t in self.threads if t["title"] == title)

    def fix_page(self, update_id: int) -> str:
        """The link a receipt carries, signed with the server's own secret."""
        expires = datetime.now(UTC) + timedelta(days=14)
        token = sign_link(FIX_LINK_PURPOSE, update_id, expires, self.stack.secret())
        return f"/updates/{update_id}/fix?t={token}"

    def rendered_pages(self) -> list[str]:
        """The pages that show Markdown rendered and sanitised (the rest escape text)."""
        pages = ["/", *(f"/teams/{TEAM}?page={n}" for n in range(1, len(self.threads) // 50 + 2))]
        pages += [f"/threads/{thread['id']}" for thread in self.threads]
        pages += [f"/members/{mid}" for mid in sorted({u["author"]["id"] for u in self.updates})]
        pages += [f"/search?{urlencode({'q': word})}" for word in SEARCH_WORDS]
        return pages

    def pages(self) -> list[str]:
        """Every page that shows something from the corpus."""
        pages = [*self.rendered_pages(), f"/teams/{TEAM}/feed.atom"]
        # Each thread's first post: its text in a <textarea>, its thread's title in <title>.
        pages += [self.fix_page(thread["updates"][0]["id"]) for thread in self.threads]
        pages += self.held_pages + self.alias_pages + self.unsubscribe_pages
        # Reflected: the vectors typed into the search box, and as a sign-in's next page.
        pages += [f"/search?{urlencode({'q': vector})}" for vector in REFLECTED]
        pages += [f"/signin?{urlencode({'next': '/' + vector})}" for vector in REFLECTED]
        return pages


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("var")
    stack = make_stack(data_dir, f"sqlite:///{data_dir / 'tidings.db'}", free_port(), free_port())
    stack.start()
    try:
        # What `tidings team create` / `member add` / `token create` do, in one transaction:
        # a dozen CLI runs would cost ten seconds (test_cli covers the commands).
        engine = make_engine(stack.env["TIDINGS_DATABASE_URL"])
        with session_scope(engine) as session:
            store.create_team(session, TEAM, TEAM_NAME)
            store.create_team(session, "ops", "Operations")
            for address, name in [(ALICE, "Alice"), (BOB, "Bob")]:
                store.add_member(session, TEAM, address, name, hour=far_hour())
            for i, name in enumerate(NAME_VECTORS):
                store.add_member(session, TEAM, f"named{i}@example.com", name, hour=far_hour())
            store.add_member(session, "ops", MALLORY, "Mallory", hour=far_hour())
            stack.token = store.create_api_token(session, None)
        engine.dispose()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Seeded:
    """The corpus mailed in through every channel and processed; then held replies with
    hostile display names, and alias links for the hostile-named members."""
    seeded = Seeded(stack, Outbox(stack))
    outgoing: list[tuple[EmailMessage, str]] = []
    for i, vector in enumerate(VECTORS):
        # Subject -> thread title; text/plain body -> update; file name -> attachment link.
        msg = message(ALICE, f"s{i:02d} {vector}", f"Plain {i:02d} marker.\n\n{vector}\n")
        msg.add_attachment(
            ATTACHMENT_BODY, maintype="text", subtype="html", filename=f"{vector}.html"
        )
        outgoing.append((msg, ALICE))
    for i, vector in enumerate(MARKDOWN_VECTORS):
        outgoing.append((message(ALICE, f"m{i:02d} markdown", vector), ALICE))
    for i in range(len(NAME_VECTORS)):
        address = f"named{i}@example.com"
        outgoing.append((message(address, f"n{i:02d} by a name", f"Named {i:02d}."), address))
    outgoing.append((message(BOB, "Bob's note", "Bob was here."), BOB))
    send_all(seeded, outgoing)
    # HTML-only mail, answering the subject's post (so both are on one page, and the sweeps
    # open half as many): the vector as markup, and as text that becomes markup once the
    # HTML is turned into Markdown, which passes raw HTML through to the sanitiser.
    replies = []
    for i, vector in enumerate(VECTORS):
        parent = outgoing[i][0]
        reply = message(ALICE, f"Re: {parent['Subject']}", "")
        reply["In-Reply-To"] = reply["References"] = parent["Message-ID"]
        reply.set_content(
            f"<html><body><p>Html {i:02d} marker.</p>{vector}<p>{html.escape(vector)}</p>"
            "</body></html>",
            subtype="html",
        )
        replies.append((reply, ALICE))
    send_all(seeded, replies)
    seeded.threads = fetch_threads(stack)

    # Display names: Alice answers with Bob's reply address, so the reply is held and Bob
    # is mailed a link to a page showing who sent it: the From header, display name and all.
    note = seeded.thread("Bob's note")
    bob_id = note["updates"][0]["author"]["id"]
    bobs_address = reply_address_for(bob_id, note["id"], TEAM, DOMAIN, stack.reply_keys())
    for i, name in enumerate(NAME_VECTORS):
        body = f"Held {i:02d}.\n\n{name}"
        quoted = message(Address(name, addr_spec=ALICE), f"Re: Bob's note {i}", body, bobs_address)
        for msg in (quoted, raw_reply(name, bobs_address, f"Re: Bob's note {i}", body)):
            refusal = send(stack, msg, ALICE, bobs_address)
            if refusal:
                seeded.refused[f"From display name {name!r}"] = refusal
    # Alias confirmation pages name the member, so two hostile-named members get one.
    for i in range(2):
        stack.cli("member", "alias", "add", f"named{i}@example.com", f"alias{i}@example.com")
    url = stack.env["TIDINGS_DATABASE_URL"]
    wait_for(lambda: journal_settled(url), 60, "the held replies to be processed")

    def links() -> bool:
        seeded.held_pages = seeded.outbox.links(BOB, r"http://\S+/held/\S+")
        seeded.alias_pages = [
            link
            for i in range(2)
            for link in seeded.outbox.links(f"alias{i}@example.com", r"http://\S+/aliases/\S+")
        ]
        return len(seeded.alias_pages) == 2 and len(seeded.held_pages) >= len(NAME_VECTORS)

    wait_for(links, 30, "the approval and alias-confirmation mails")
    expires = datetime.now(UTC) + timedelta(days=30)
    for i in range(len(NAME_VECTORS)):
        person = next(
            u["author"]["id"]
            for u in seeded.updates
            if u["author"]["email"] == f"named{i}@example.com"
        )
        token = sign_link(UNSUBSCRIBE_PURPOSE, person, expires, stack.secret())
        seeded.unsubscribe_pages.append(f"/unsubscribe?t={token}")
    return seeded


def send_all(seeded: Seeded, outgoing: list[tuple[EmailMessage, str]]) -> None:
    """Mail each message to the team and wait until all are processed; refusals noted."""
    for msg, sender in outgoing:
        refusal = send(seeded.stack, msg, sender, TEAM_ADDRESS)
        if refusal:
            seeded.refused[str(msg["Subject"])] = refusal
    url = seeded.stack.env["TIDINGS_DATABASE_URL"]
    wait_for(lambda: journal_settled(url), 90, "the corpus to be processed")


def fetch_threads(stack: Stack) -> list[dict]:
    listed = stack.api(f"/teams/{TEAM}/threads", limit="200").json()
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda t: stack.api(f"/threads/{t['id']}").json(), listed))


def held_and_failed(stack: Stack) -> list[dict]:
    return json.loads(stack.cli("quarantine", "list", "--json").stdout)  # type: ignore[no-any-return]


def held_entries(stack: Stack) -> list[int]:
    return sorted(e["id"] for e in held_and_failed(stack) if e["reason"] == "unverified-sender")


# The browser ------------------------------------------------------------------------------


def sign_in_with_the_browser(page: Page, stack: Stack, outbox: Outbox, next_path: str) -> None:
    """What a member does: the form, the link from their mail, the button on its page."""
    before = len(outbox.links(ALICE, SIGN_IN_LINK, "sign-in link"))
    page.goto(f"{stack.base_url}/signin?next={quote(next_path)}")
    page.fill("#email", ALICE)
    page.click("button:has-text('Email me a sign-in link')")
    assert page.locator("main h1").inner_text() == "Check your email"
    page.goto(stack.base_url + sign_in_link(outbox, ALICE, before))
    assert page.locator("main h1").inner_text() == "Sign in to Tidings"
    page.click("main button:has-text('Sign in')")
    page.wait_for_url(f"{stack.base_url}{next_path}")
    assert page.locator("header.site .account button").inner_text() == "Sign out"


@pytest.fixture(scope="module")
def alices_cookies(browser: Browser, seeded: Seeded) -> list[Any]:
    """Alice's session, as her browser got it by signing in through the emailed link."""
    context = browser.new_context()
    try:
        sign_in_with_the_browser(context.new_page(), seeded.stack, seeded.outbox, f"/teams/{TEAM}")
        return context.cookies()  # type: ignore[return-value]
    finally:
        context.close()


@pytest.fixture(scope="module")
def served(alices_cookies: list[Any], seeded: Seeded) -> list[Visit]:
    """Every page as served, with our CSP."""
    return sweep(seeded.stack.base_url, alices_cookies, seeded.pages(), bypass_csp=False)


@pytest.fixture(scope="module")
def bare(alices_cookies: list[Any], seeded: Seeded) -> list[Visit]:
    """The pages showing rendered Markdown again, with the CSP ignored. (Every page's DOM
    is checked for markup that could run in the first sweep already; the other pages only
    escape text, which that check covers.)"""
    pages = seeded.rendered_pages()
    return sweep(seeded.stack.base_url, alices_cookies, pages, bypass_csp=True)


@pytest.fixture(scope="module")
def reader(browser: Browser) -> Iterator[Reader]:
    context = browser.new_context()
    yield Reader(context)
    context.close()


# The corpus in the archive ----------------------------------------------------------------


def test_the_corpus_reaches_the_archive_through_every_channel(seeded: Seeded) -> None:
    """Not a vacuous pass: the hostile mail was accepted and became posts people see."""
    assert len(set(VECTORS)) >= 50
    by_channel = {
        "subject": len(VECTORS),
        "text/plain body": len(VECTORS),
        "html-only body (as markup and as text)": len(VECTORS),
        "attachment file name": len(VECTORS),
        "markdown body": len(MARKDOWN_VECTORS),
        "member name": len(NAME_VECTORS),
        "From display name (quoted and raw)": len(NAME_VECTORS),
        "reflected in URLs (search, sign-in next)": len(REFLECTED),
    }
    print(f"\nvectors by channel: {by_channel}; refused: {seeded.refused}")
    titles = [thread["title"] for thread in seeded.threads]
    assert sum(t[:1] == "s" and t[3:4] == " " for t in titles) >= 0.9 * len(VECTORS)
    bodies = [u["body"] for u in seeded.updates]
    assert sum(b.startswith("Html ") for b in bodies) >= 0.9 * len(VECTORS)
    assert sum(t.endswith(" markdown") for t in titles) >= 0.9 * len(MARKDOWN_VECTORS)
    assert set(NAME_VECTORS) <= {u["author"]["name"] for u in seeded.updates}
    filenames = {a["filename"] for u in seeded.updates for a in u["attachments"]}
    assert len(filenames) >= 0.9 * len(VECTORS)
    assert len(seeded.held_pages) >= len(NAME_VECTORS), "each held reply gets a review link"


def test_every_held_reply_reaches_the_member_it_names(seeded: Seeded) -> None:
    errors = [e for e in held_and_failed(seeded.stack) if e["reason"] == "processing-error"]
    assert errors == []
    assert len(seeded.held_pages) == 2 * len(NAME_VECTORS)


def test_no_page_runs_anything_from_the_corpus(served: list[Visit]) -> None:
    problems = {v.url: v.problems() for v in served if v.problems()}
    assert not problems, problems
    assert [(v.url, v.status) for v in served if v.status != 200] == []
    # Blocked attempts are no failure (the CSP did its job), but they would mean markup
    # that tries to run got into a page; the sweep without the CSP then names it.
    blocked = {v.url: v.blocked for v in served if v.blocked}
    print(f"\n{len(served)} pages; the CSP blocked something on {len(blocked)}: {blocked}")


def test_every_page_is_served_with_the_content_security_policy(served: list[Visit]) -> None:
    missing = [
        v.url
        for v in served
        if "default-src 'none'" not in v.headers.get("content-security-policy", "")
    ]
    assert not missing, f"served without the CSP: {missing}"
    kinds = {v.headers.get("content-type", "").split(";")[0] for v in served}
    assert kinds == {"text/html", "application/atom+xml"}
    assert all(v.headers.get("x-content-type-options") == "nosniff" for v in served)


def test_no_page_carries_markup_that_could_run(served: list[Visit]) -> None:
    """Whether or not the CSP would stop it: no event handler, script, frame, javascript:
    URL or meta refresh in any page's DOM. Escaping and sanitising alone must hold."""
    dangerous = {v.url: v.dangerous for v in served if v.dangerous}
    assert not dangerous, f"markup that must never reach a page: {dangerous}"


def test_without_the_csp_nothing_runs_either(bare: list[Visit]) -> None:
    problems = {v.url: v.problems() for v in bare if v.problems()}
    assert not problems, problems
    assert len(bare) > 100 and all(v.status == 200 for v in bare)


def test_hostile_titles_show_as_the_text_that_was_typed(
    served: list[Visit], seeded: Seeded
) -> None:
    """Escaped, not eaten: a reader sees `<script>alert(1)</script>` as those characters,
    and `{{7*7}}` as typed, not 49."""
    shown = {v.url: v.title or "" for v in served}
    base = seeded.stack.base_url
    wrong = {
        thread["title"]: shown[f"{base}/threads/{thread['id']}"]
        for thread in seeded.threads
        if squash(shown[f"{base}/threads/{thread['id']}"]) != squash(thread["title"])
    }
    assert not wrong, wrong
    assert any(title.startswith("s") and "{{7*7}}" in title for title in shown.values())


def _latin1(text: str) -> bool:
    return all(ord(char) < 256 for char in text)


def _downloads(cookies: list[Any], seeded: Seeded, latin1: bool) -> dict[str, str]:
    """What went wrong downloading each attachment whose file name is (or is not) Latin-1:
    anything but a 200 that saves a file, as bytes no browser may sniff into a page."""
    failures = {}
    jar = {c["name"]: c["value"] for c in cookies}
    with httpx.Client(base_url=seeded.stack.base_url, cookies=jar, timeout=10) as client:
        for update in seeded.updates:
            for attachment in update["attachments"]:
                if _latin1(attachment["filename"]) != latin1:
                    continue
                try:
                    response = client.get(f"/attachments/{attachment['id']}")
                except httpx.HTTPError as exc:  # the server may drop the connection
                    failures[attachment["filename"]] = repr(exc)
                    continue
                headers = response.headers
                if (
                    response.status_code != 200
                    or not headers.get("content-disposition", "").startswith("attachment;")
                    or headers.get("content-type") != "application/octet-stream"
                    or headers.get("x-content-type-options") != "nosniff"
                ):
                    failures[attachment["filename"]] = f"{response.status_code} {headers}"
    return failures


def test_attachments_always_download_and_never_render(
    alices_cookies: list[Any], seeded: Seeded
) -> None:
    """A mailed-in .html file with a script in it must never open as a page of ours."""
    assert _downloads(alices_cookies, seeded, latin1=True) == {}


def test_attachments_with_names_beyond_latin1_download_too(
    alices_cookies: list[Any], seeded: Seeded
) -> None:
    failures = _downloads(alices_cookies, seeded, latin1=False)
    assert failures == {}, f"downloads that fail: {failures}"


def test_the_atom_feed_is_safe_in_a_feed_reader(
    reader: Reader, alices_cookies: list[Any], seeded: Seeded
) -> None:
    """Feed readers show each entry's HTML without our CSP: the sanitiser alone holds."""
    feed = httpx.get(
        f"{seeded.stack.base_url}/teams/{TEAM}/feed.atom",
        cookies={c["name"]: c["value"] for c in alices_cookies},
        timeout=10,
    )
    assert feed.status_code == 200
    atom = "{http://www.w3.org/2005/Atom}"
    entries = list(ET.fromstring(feed.content).iter(f"{atom}entry"))
    assert len(entries) == 50  # a full feed of hostile posts
    problems = {}
    for entry in entries:
        title = entry.findtext(f"{atom}title") or ""
        found = reader.render(f"<h1>{html.escape(title)}</h1>{entry.findtext(f'{atom}content')}")
        if found:
            problems[title] = found
    assert not problems, problems


def test_mail_about_hostile_posts_runs_nothing_in_a_mail_client(
    reader: Reader, seeded: Seeded
) -> None:
    """Digests, approval requests and receipts quote what people wrote; mail clients show
    their HTML without any CSP. (Inline styles are how mail is styled: not a finding.)"""

    def digests() -> int:
        return sum(m["From"].addresses[0].username == "digest" for m in seeded.outbox.to(BOB))

    before = digests()
    seeded.stack.cli("digest", "run", "--now")
    wait_for(lambda: digests() > before, what="Bob's digest")
    problems = {}
    kinds = set()
    for sent in seeded.outbox.messages():
        part = sent.get_body(("html",))
        if part is None:
            continue
        kinds.add(sent["From"].addresses[0].username + ": " + str(sent["Subject"])[:12])
        found = reader.render(part.get_content())  # type: ignore[attr-defined]
        found = [f for f in found if not re.fullmatch(r"<\w+ style>|<style>", f)]
        if found:
            problems[f"{sent['Subject']} to {sent['To']}"] = found
    assert not problems, problems
    assert any(kind.startswith("digest") for kind in kinds), kinds


def test_the_watchers_see_a_script_that_runs(reader: Reader) -> None:
    """The control: the same watchers do catch a payload that runs."""
    found = reader.render("<img src=x onerror=alert(1)><p onclick=x>hi</p>")
    assert any(f.startswith("script ran: alert(1)") for f in found)
    assert "<p onclick>" in found


# A member's visit -------------------------------------------------------------------------


def test_a_member_signs_in_browses_searches_downloads_and_signs_out(
    browser: Browser, seeded: Seeded
) -> None:
    stack = seeded.stack
    context = browser.new_context()
    page = context.new_page()
    try:
        note = seeded.thread("Bob's note")
        sign_in_with_the_browser(page, stack, seeded.outbox, f"/threads/{note['id']}")
        assert "Bob was here." in page.locator("main").inner_text()  # back where she was

        page.click("main .crumbs a")  # the team's page, then a thread from its list
        assert squash(page.locator("main h1").inner_text()) == squash(TEAM_NAME)
        page.click("main ul.threads a >> nth=0")
        assert page.url.startswith(f"{stack.base_url}/threads/")

        page.fill("header.site input[name=q]", "marker")
        page.press("header.site input[name=q]", "Enter")
        page.wait_for_url("**/search?q=marker")
        assert page.locator("main ol.hits li").count() >= 10

        with_file = next(t for t in seeded.threads if t["title"].startswith("s07 "))
        page.goto(f"{stack.base_url}/threads/{with_file['id']}")
        with page.expect_download() as download_info:
            page.click("main ul.attachments a")
        download = download_info.value
        assert Path(download.path()).read_bytes() == ATTACHMENT_BODY
        assert download.suggested_filename.endswith(".html")
        assert page.url == f"{stack.base_url}/threads/{with_file['id']}"  # not opened as a page

        page.click("header.site .account button")  # Sign out
        page.wait_for_url(f"{stack.base_url}/")
        assert page.locator("header.site a.account").inner_text() == "Sign in"
        page.goto(f"{stack.base_url}/teams/{TEAM}")
        assert page.url == f"{stack.base_url}/signin?next=/teams/{TEAM}"
    finally:
        context.close()


# Cross-site request forgery ---------------------------------------------------------------


class OtherSite:
    """http://127.0.0.2:PORT, another site for cookies than the archive's 127.0.0.1. Each
    page is a form that submits itself as soon as it loads, as a phishing page's would."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.base_url = f"http://127.0.0.2:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forging(self, action: str, fields: dict[str, str]) -> str:
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in fields.items()
        )
        path = f"/{len(self.pages)}"
        self.pages[path] = (
            f'<form method="post" action="{html.escape(action)}">{inputs}</form>'
            "<script>document.forms[0].submit()</script>"
        )
        return self.base_url + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def other_site() -> Iterator[OtherSite]:
    site = OtherSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def alices_second_session(seeded: Seeded) -> dict[str, Any]:
    """One more session for the forgery tests: sign-in links are rate-limited per address."""
    return session_cookie(seeded.stack, seeded.outbox, ALICE)


@pytest.fixture
def victim(browser: Browser, alices_second_session: dict[str, Any]) -> Iterator[Page]:
    """Alice's browser, signed in, on the page she opens from a phishing mail."""
    context = browser.new_context()
    context.add_cookies([alices_second_session])  # type: ignore[list-item]
    yield context.new_page()
    context.close()


def forged_post(page: Page, site: OtherSite, base_url: str, action: str, fields: dict) -> str:
    """Open the other site's page, which posts to `action`; returns what Alice then sees."""
    target = action if action.startswith("http") else f"{base_url}{action}"
    page.goto(site.forging(target, fields))
    page.wait_for_url(f"{base_url}/**")
    page.wait_for_load_state()
    return page.locator("main").inner_text()


def signed_in_as(page: Page, base_url: str) -> str | None:
    page.goto(f"{base_url}/")
    account = page.locator("header.site form.account .meta")
    return account.inner_text() if account.count() else None


def test_a_cross_site_sign_out_leaves_the_member_signed_in(
    victim: Page, other_site: OtherSite, seeded: Seeded
) -> None:
    base = seeded.stack.base_url
    assert signed_in_as(victim, base) == "Alice"
    forged_post(victim, other_site, base, "/signout", {})
    assert signed_in_as(victim, base) == "Alice"


def test_a_cross_site_post_of_someone_elses_sign_in_link_does_not_switch_accounts(
    victim: Page, other_site: OtherSite, seeded: Seeded
) -> None:
    """Mallory asks for her own link and makes Alice's browser use it: Alice must not end
    up browsing, unknowingly, as Mallory."""
    stack, outbox = seeded.stack, seeded.outbox
    before = len(outbox.links(MALLORY, SIGN_IN_LINK, "sign-in link"))
    httpx.post(f"{stack.base_url}/signin", data={"email": MALLORY}, timeout=10)
    link = sign_in_link(outbox, MALLORY, before)
    assert signed_in_as(victim, stack.base_url) == "Alice"
    forged_post(victim, other_site, stack.base_url, link, {})
    assert signed_in_as(victim, stack.base_url) == "Alice"


def test_a_cross_site_sign_in_request_signs_nobody_in_or_out(
    victim: Page, other_site: OtherSite, seeded: Seeded
) -> None:
    """Anyone may ask for a link to be mailed to a member (that is the form's job, and it
    is rate-limited); forged from another site it does that and nothing more."""
    base = seeded.stack.base_url
    shown = forged_post(victim, other_site, base, "/signin", {"email": BOB, "next": "/"})
    assert "Check your email" in shown
    assert signed_in_as(victim, base) == "Alice"


def test_cross_site_posts_to_token_forms_do_nothing_without_a_valid_token(
    victim: Page, other_site: OtherSite, seeded: Seeded
) -> None:
    """The fix, unsubscribe, approval and alias forms are authorised by the signed token in
    the form, never by the cookie: Alice's session lends a forged post nothing."""
    stack = seeded.stack
    base = stack.base_url
    note = seeded.thread("Bob's note")["updates"][0]
    bob_id = str(note["author"]["id"])
    elsewhere = next(t for t in seeded.threads if t["title"].startswith("s00 "))["updates"][0]
    other_token = seeded.fix_page(elsewhere["id"]).split("t=")[1]  # valid, for another post
    held = held_entries(stack)
    alias_id = seeded.alias_pages[0].split("/")[2]
    assert signed_in_as(victim, base) == "Alice"
    for action, fields in [
        (f"/updates/{note['id']}/fix", {"t": "", "body": "Defaced."}),
        (f"/updates/{note['id']}/fix", {"t": other_token, "body": "Defaced."}),
        ("/unsubscribe", {"t": ""}),
        ("/unsubscribe", {"t": other_token}),
        (f"/held/{held[0]}/approve", {"p": bob_id, "t": ""}),
        (f"/held/{held[0]}/discard", {"p": bob_id, "t": other_token}),
        (f"/aliases/{alias_id}/confirm", {"t": ""}),
    ]:
        shown = forged_post(victim, other_site, base, action, fields)
        assert "This link does not work any more" in shown, (action, fields, shown)
    thread_id = seeded.thread("Bob's note")["id"]
    updates = stack.api(f"/threads/{thread_id}").json()["updates"]
    assert updates[0]["body"] == "Bob was here."
    members = {m["email"]: m for m in stack.api(f"/teams/{TEAM}/members").json()}
    assert {members[a]["digest_cadence"] for a in (ALICE, BOB)} == {"daily"}
    assert held_entries(stack) == held  # nothing approved, nothing discarded
    aliases = stack.cli("member", "alias", "list", "named0@example.com").stdout
    assert "waiting for the link" in aliases
    assert signed_in_as(victim, base) == "Alice"

"""WCAG basics of the web archive, measured in headless Chromium on every archive page a
member opens: the teams, a team, a thread (with replies, headings typed in posts, a wide
table, a long code line, an inline image and an SVG download), search results, an update's
permalink, a member's page and the sign-in form.

Each page, as a signed-in member sees it, must have: a label for every form field, exactly
one <h1> and no heading level skipped, a <title>, <main> and a skip link to it, text at
least 4.5:1 against its background in light and in dark mode (WCAG's relative luminance,
computed from getComputedStyle), a visible outline on whatever the Tab key reaches, and no
sideways scrolling at 320 px.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright without its own
browser downloads. Without it these tests skip with that instruction, and fail in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pytest

from app import store
from app.db import make_engine, session_scope
from app.models import Thread, utcnow
from app.store import NewAttachment
from tests.conftest import free_port
from tests.e2e.stack import Stack, make_stack
from tests.e2e.test_access import signed_in
from tests.e2e.test_archive_thread_page import SVG, png

if TYPE_CHECKING:  # only for hints: without playwright the tests skip instead
    from playwright.sync_api import Browser, BrowserContext, Page

ALICE, BOB = "alice@example.com", "bob@example.org"
MIN_CONTRAST = 4.5  # WCAG 2 AA for body text
LONG_TITLE = "Deploy failed: https://ci.example.com/pipelines/orders-service/builds/" + "7f3a" * 12
WIDE_TABLE = "| " + " | ".join(f"column{n}" for n in range(12)) + " |\n|" + "---|" * 12 + "\n"
WIDE_TABLE += "| " + " | ".join(f"value-{n}-{'x' * 12}" for n in range(12)) + " |"
CODE_LINE = "ERROR worker-7 orders.migrate: could not apply 0042_split_addresses " + "x" * 120


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running `tidings serve` with one team's worth of awkward content; the paths of
    the pages to check, and Alice's session cookie."""
    data_dir = tmp_path_factory.mktemp("var")
    stack = make_stack(data_dir, f"sqlite:///{data_dir / 'tidings.db'}", free_port(), free_port())
    stack.start()
    try:
        yield seed(stack)
    finally:
        stack.stop()


def seed(stack: Stack) -> dict[str, Any]:
    engine = make_engine(stack.env["TIDINGS_DATABASE_URL"])
    try:
        with session_scope(engine) as session:
            team = store.create_team(session, "eng", "Engineering")
            alice = store.add_member(session, "eng", ALICE, "Alice Lima")
            bob = store.add_member(session, "eng", BOB, "Bob Wolfeschlegelsteinhausenberger")
            thread = Thread(team_id=team.id, title=LONG_TITLE)  # type: ignore[arg-type]
            session.add(thread)
            session.flush()
            first = store.add_update(
                session,
                thread=thread,
                author=bob,
                body="# Rollback\n\nRolled back at 09:20.\n\n### Details\n\n"
                f"```\n{CODE_LINE}\n```\n\n{WIDE_TABLE}\n\n## Next\n\nRe-run tomorrow.",
                quoted="> earlier mail\n-- \nBob",
                placed_by="sample",
                attachments=[
                    NewAttachment("dashboard.png", "image/png", png(1200, 300)),
                    NewAttachment("diagram.svg", "image/svg+xml", SVG),
                ],
            )
            reply = store.add_update(
                session,
                thread=thread,
                author=alice,
                body="Thanks! I will watch the **rollback** dashboards.",
                parent=first,
                placed_by="sample",
            )
            for n in range(3):
                other = Thread(team_id=thread.team_id, title=f"Weekly check-in {n}")
                session.add(other)
                session.flush()
                store.add_update(
                    session,
                    thread=other,
                    author=alice,
                    body=f"Week {n}: rollback drill done.",
                    placed_by="sample",
                )
            thread.last_activity_at = utcnow() + timedelta(minutes=1)
            session.add(thread)
            ids = {"thread": thread.id, "reply": reply.id, "bob": bob.id}
    finally:
        engine.dispose()
    client = signed_in(stack, ALICE)
    cookie = {
        "name": "tidings_session",
        "value": client.cookies["tidings_session"],
        "url": stack.base_url,
        "httpOnly": True,
        "sameSite": "Lax",
    }
    client.close()
    return {
        "base": stack.base_url,
        "cookie": cookie,
        "pages": {
            "teams": "/",
            "team": "/teams/eng",
            "thread": f"/threads/{ids['thread']}",
            "search": "/search?q=rollback",
            "permalink": f"/updates/{ids['reply']}",
            "member": f"/members/{ids['bob']}",
            "sign-in": "/signin",
            "settings": "/settings",
        },
    }


@pytest.fixture(scope="module")
def member(browser: Browser, archive: dict[str, Any]) -> Iterator[BrowserContext]:
    """Alice's browser, signed in."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([archive["cookie"]])
    yield context
    context.close()


def visit(context: BrowserContext, archive: dict[str, Any], name: str) -> Page:
    page = context.new_page()
    response = page.goto(archive["base"] + archive["pages"][name], wait_until="load")
    assert response is not None and response.status == 200, name
    assert "Sign out" in page.locator("header.site").inner_text(), f"{name}: not signed in"
    return page


def each_page(context: BrowserContext, archive: dict[str, Any], script: str) -> dict[str, Any]:
    """`script`'s answer on every page, by page name."""
    found = {}
    for name in archive["pages"]:
        page = visit(context, archive, name)
        found[name] = page.evaluate(script)
        page.close()
    return found


_UNLABELLED = """() => [...document.querySelectorAll(
    "input:not([type=hidden]), select, textarea")].filter((el) => {
  const byLabel = [...(el.labels || [])].some((label) => label.textContent.trim());
  const byAria = (el.getAttribute("aria-label") || "").trim()
    || (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean)
      .some((id) => (document.getElementById(id)?.textContent || "").trim());
  return !byLabel && !byAria && !(el.getAttribute("title") || "").trim();
}).map((el) => el.outerHTML.slice(0, 80))"""


def test_every_form_field_has_a_label(member: BrowserContext, archive: dict[str, Any]) -> None:
    found = each_page(member, archive, _UNLABELLED)
    assert not any(found.values()), {name: bad for name, bad in found.items() if bad}


_HEADINGS = """() => [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")]
  .map((h) => [Number(h.localName[1]), h.textContent.trim().slice(0, 40)])"""


def test_one_h1_and_no_heading_level_skipped(
    member: BrowserContext, archive: dict[str, Any]
) -> None:
    problems = {}
    for name, headings in each_page(member, archive, _HEADINGS).items():
        levels = [level for level, _ in headings]
        found = []
        if levels.count(1) != 1:
            found.append(f"{levels.count(1)} <h1>")
        if levels and levels[0] != 1:
            found.append(f"starts at <h{levels[0]}>")
        found += [
            f"<h{before}> then <h{after}> ({text!r})"
            for (before, _), (after, text) in pairwise(headings)
            if after > before + 1
        ]
        if found:
            problems[name] = found
    assert not problems, problems


def test_posts_keep_their_headings_under_the_page_s_own(
    member: BrowserContext, archive: dict[str, Any]
) -> None:
    """Bob typed `# Rollback`, `### Details` and `## Next`: they stay headings (in order),
    under his byline's <h2>, and none becomes a second <h1>."""
    page = visit(member, archive, "thread")
    headings = page.evaluate(_HEADINGS)
    page.close()
    assert headings[0][0] == 1
    by_text = {text: level for level, text in headings}
    assert by_text["Rollback"] == 3 and by_text["Details"] == 4 and by_text["Next"] == 4


_LANDMARKS = """() => ({
  title: document.title.trim(),
  main: document.querySelectorAll("main").length,
  skip: (() => {
    const link = document.querySelector("body > a[href^='#']");
    return link && document.getElementById(link.getAttribute("href").slice(1))?.localName;
  })(),
  nav: document.querySelectorAll("nav").length,
  lang: document.documentElement.lang,
})"""


def test_each_page_has_a_title_landmarks_and_a_skip_link(
    member: BrowserContext, archive: dict[str, Any]
) -> None:
    found = each_page(member, archive, _LANDMARKS)
    for name, page in found.items():
        assert page["title"].endswith("Tidings") and page["title"] != "Tidings", (name, page)
        assert page["main"] == 1 and page["nav"] >= 1 and page["lang"] == "en", (name, page)
        assert page["skip"] == "main", (name, page)  # the first link jumps to the content
    titles = [page["title"] for page in found.values()]
    assert len(set(titles)) >= len(titles) - 1  # the permalink shows its thread's page


# WCAG 2's contrast ratio of every piece of text shown (each element that has text of its
# own), against the backgrounds painted under it, composited up to the canvas.
_CONTRAST = """() => {
  const parse = (css) => {
    const parts = (css.match(/[\\d.]+/g) || []).map(Number);
    return parts.length >= 3 ? [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1]
                             : null;
  };
  const over = (top, bottom) => [0, 1, 2].map(
    (i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const luminance = ([r, g, b]) => {
    const lin = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  const canvas = dark ? [18, 18, 18, 1] : [255, 255, 255, 1];
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const color = parse(getComputedStyle(node).backgroundColor);
      if (color && color[3] > 0) {
        layers.push(color);
        if (color[3] >= 1) break;
      }
    }
    return layers.reverse().reduce((under, layer) => over(layer, under), canvas);
  };
  const seen = new Set();
  const measured = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const el = text.parentElement;
    if (!text.data.trim() || seen.has(el) || el.closest("option, script, style")) continue;
    seen.add(el);
    const box = el.getBoundingClientRect();
    if (box.width <= 1 || box.height <= 1 || !el.checkVisibility({checkVisibilityCSS: true})) {
      continue;  // not shown: a visually hidden label, a closed <details>
    }
    const bg = background(el);
    const fg = over(parse(getComputedStyle(el).color), bg);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    measured.push({
      element: el.localName + (el.className ? "." + el.className : ""),
      text: text.data.trim().slice(0, 30),
      color: getComputedStyle(el).color,
      background: `rgb(${bg.slice(0, 3).map(Math.round).join(", ")})`,
      ratio: (hi + 0.05) / (lo + 0.05),
    });
  }
  return measured;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_is_at_least_4_5_to_1(
    browser: Browser, archive: dict[str, Any], scheme: str
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    context.add_cookies([archive["cookie"]])
    try:
        found = each_page(context, archive, _CONTRAST)
    finally:
        context.close()
    kinds = {m["element"].split(".")[0] for measured in found.values() for m in measured}
    assert {"p", "a", "h1", "time"} <= kinds  # the check saw the page's text
    faint = [
        f"{name}: {m['element']} {m['text']!r}: {m['color']} on {m['background']}"
        f" is {m['ratio']:.2f}:1"
        for name, measured in found.items()
        for m in measured
        if m["ratio"] < MIN_CONTRAST
    ]
    assert not faint, f"hard to read in {scheme} mode:\n" + "\n".join(faint)


_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    element: el.localName + (el.className ? "." + el.className : ""),
    text: (el.textContent || el.value || "").trim().slice(0, 30),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    shadow: style.boxShadow !== "none",
    shown: box.width > 1 && box.height > 1,
  };
}"""


def test_keyboard_focus_is_always_visible(member: BrowserContext, archive: dict[str, Any]) -> None:
    """Tab through the first stops of every page: each, links above all, shows where the
    focus is; the first is the skip link, which appears when focused. (The permalink's
    page starts from the update it names.)"""
    problems = []
    for name in archive["pages"]:
        page = visit(member, archive, name)
        # A permalink lands on /threads/N#uM: Tab starts from that update, as it should.
        from_the_top = "#" not in page.url
        stops = []
        for _ in range(25):
            page.keyboard.press("Tab")
            focused = page.evaluate(_FOCUSED)
            if focused is None or (stops and focused == stops[0]):
                break
            stops.append(focused)
        page.close()
        assert stops, name
        if from_the_top:
            assert stops[0]["text"] == "Skip to content", (name, stops[:1])
        assert any(stop["element"].startswith("a") for stop in stops[1:]), name
        problems += [
            f"{name}: {stop['element']} {stop['text']!r}"
            for stop in stops
            if not (stop["outline"] or stop["shadow"]) or not stop["shown"]
        ]
    assert not problems, "focus not visible on:\n" + "\n".join(problems)


_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.body.querySelectorAll("*")]
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .map((el) => `${el.localName}.${el.className}`);
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5)};
}"""


def test_nothing_scrolls_sideways_at_320_px(browser: Browser, archive: dict[str, Any]) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 640})
    context.add_cookies([archive["cookie"]])
    try:
        found = each_page(context, archive, _OVERFLOW)
    finally:
        context.close()
    wide = {name: page for name, page in found.items() if page["scroll"] > page["width"]}
    assert not wide, wide


def test_an_inline_image_shows_under_the_csp_and_svg_stays_a_link(
    member: BrowserContext, archive: dict[str, Any]
) -> None:
    page = visit(member, archive, "thread")
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text))
    image = page.locator("main ul.attachments img")
    assert image.count() == 1
    assert image.get_attribute("alt") == "dashboard.png"
    image.scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('main ul.attachments img').complete")
    assert image.evaluate("(img) => img.naturalWidth") == 1200
    assert image.evaluate("(img) => img.getBoundingClientRect().width") <= 46 * 16
    svg = page.locator("main ul.attachments a", has_text="diagram.svg")
    assert svg.count() == 1 and svg.locator("img").count() == 0
    page.close()
    assert not [text for text in blocked if "Content Security Policy" in text]

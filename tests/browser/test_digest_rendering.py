"""The digest email as a person sees it: rendered by headless Chromium at phone and desktop
widths, every update readable, nothing wider than the screen, nothing fetched from the net.

The digest is the one docs/screenshots.py builds (through `plan_digest`, read back from the
outbox), full of what breaks mail layouts: unbreakable URLs and tokens, a code line wider
than a phone, a table and images in Markdown, non-ASCII names, a very long update. The
checks are about what a reader notices, not markup, so new digest sections keep passing as
long as they read well.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright without its own
browser downloads. Without it these tests skip with that instruction, and fail in CI.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # only for hints: without playwright the tests skip instead
    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parents[2]
# One sample for the screenshots and the tests; a script, not a package, hence runpy (and
# `Any` for its SampleDigest below).
SAMPLE = runpy.run_path(str(ROOT / "docs" / "screenshots.py"))
WIDTHS = (320, 375, 800)
# WCAG AA for body text; any less and grey-on-grey is hard to read on a phone in the sun.
MIN_CONTRAST = 4.5


@pytest.fixture(scope="module")
def digest(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The sample digest: its HTML part and the phrases a reader must be able to read."""
    return SAMPLE["build_sample"](tmp_path_factory.mktemp("digest"))


class Rendered:
    """The digest open in a page, and every network request the page tried to make."""

    def __init__(self, browser: Browser, html: str, width: int, scheme: str) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
        self.requests: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        # Nothing may load: a mail client with images off (or a tracker blocker) shows
        # exactly what a page with no network shows.
        self.page.route("**/*", lambda route: route.abort())
        self.page.set_content(html, wait_until="load")

    def external_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith("data:")]


@pytest.fixture
def open_digest(browser: Browser, digest: Any) -> Iterator[Callable[..., Rendered]]:
    pages: list[Rendered] = []

    def _open(width: int, scheme: str = "light") -> Rendered:
        pages.append(Rendered(browser, digest.html, width, scheme))
        return pages[-1]

    yield _open
    for rendered in pages:
        rendered.page.close()


# What a reader gets of each phrase, measured in the page in one round trip (a few hundred
# Playwright calls would make this file slow). For every innermost element holding the
# phrase: whether it is shown at all, its line boxes that fall outside the screen, any
# ancestor that clips it (overflow hidden/auto with content wider than the box: the reader
# would have to scroll sideways inside it, if their client even lets them), and the worst
# WCAG 2 contrast of its text against the nearest painted background (else the canvas).
_READING = """(phrases) => {
  const squash = (text) => text.replace(/\\s+/g, " ");
  const width = window.innerWidth;
  const rgb = (css) => {
    const [r, g, b, a = 1] = css.match(/[\\d.]+/g).map(Number);
    return {r, g, b, a};
  };
  const luminance = ({r, g, b}) => {
    const lin = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const canvasIsDark = getComputedStyle(document.documentElement).colorScheme.includes("dark")
    && matchMedia("(prefers-color-scheme: dark)").matches;
  const background = (node) => {
    for (; node; node = node.parentElement) {
      const color = rgb(getComputedStyle(node).backgroundColor);
      if (color.a > 0) return color;
    }
    return canvasIsDark ? {r: 18, g: 18, b: 18} : {r: 255, g: 255, b: 255};
  };
  const contrast = (el) => {
    let worst = {ratio: Infinity};
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
      if (!text.data.trim()) continue;
      const color = getComputedStyle(text.parentElement).color;
      const bg = background(text.parentElement);
      const [hi, lo] = [luminance(rgb(color)), luminance(bg)].sort((x, y) => y - x);
      const ratio = (hi + 0.05) / (lo + 0.05);
      if (ratio < worst.ratio) {
        worst = {ratio, text: text.data.trim().slice(0, 40), color,
                 background: `rgb(${bg.r}, ${bg.g}, ${bg.b})`};
      }
    }
    return worst;
  };
  const report = (el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const boxes = [...range.getClientRects()].filter((r) => r.width > 0 && r.height > 0);
    const clipped = [];
    for (let node = el; node && node !== document.documentElement; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.overflowX !== "visible" && node.scrollWidth > node.clientWidth + 1) {
        clipped.push(node.tagName.toLowerCase());
      }
    }
    return {
      shown: boxes.length > 0
        && el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true}),
      outside: boxes
        .filter((r) => r.left < -0.5 || r.right > width + 0.5)
        .map((r) => `${Math.round(r.left)}..${Math.round(r.right)} px`),
      clipped,
      contrast: contrast(el),
    };
  };
  const elements = [document.body, ...document.body.querySelectorAll("*")];
  return Object.fromEntries(phrases.map((phrase) => {
    const holds = (el) => squash(el.textContent).includes(phrase);
    const innermost = elements.filter((el) => holds(el) && ![...el.children].some(holds));
    return [phrase, innermost.map(report)];
  }));
}"""


def _read(rendered: Rendered, phrases: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = rendered.page.evaluate(_READING, phrases)
    missing = [phrase for phrase, places in found.items() if not places]
    assert not missing, f"not in the rendered digest at all: {missing}"
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_nothing_is_wider_than_the_screen(open_digest: Callable[..., Rendered], width: int) -> None:
    rendered = open_digest(width)
    scroll_width, inner_width = rendered.page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert scroll_width <= inner_width, (
        f"at {width} px the digest is {scroll_width} px wide: the reader scrolls sideways"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_every_item_can_be_read_without_scrolling_sideways(
    open_digest: Callable[..., Rendered], digest: Any, width: int
) -> None:
    problems = []
    for phrase, places in _read(open_digest(width), digest.phrases).items():
        for place in places:
            if not place["shown"]:
                problems.append(f"{phrase!r} is not shown")
            if place["outside"]:
                problems.append(f"{phrase!r} runs off the screen at {place['outside']}")
            if place["clipped"]:
                problems.append(f"{phrase!r} is cut off inside {place['clipped']}")
    assert not problems, f"at {width} px:\n" + "\n".join(problems)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_stands_out_from_its_background(
    open_digest: Callable[..., Rendered], digest: Any, scheme: str
) -> None:
    """Dark mode included: the client asks for dark; whatever the email then does (stay
    light, or switch), the text must not end up dark on dark or grey on grey."""
    faint = []
    for places in _read(open_digest(375, scheme), digest.phrases).values():
        for worst in (place["contrast"] for place in places):
            if worst["ratio"] < MIN_CONTRAST:
                faint.append(
                    f"{worst['text']!r}: {worst['color']} on {worst['background']}"
                    f" is {worst['ratio']:.1f}:1"
                )
    assert not faint, f"hard to read in {scheme} mode (need {MIN_CONTRAST}:1):\n" + "\n".join(faint)


def test_loads_nothing_and_reads_fine_with_images_off(open_digest: Callable[..., Rendered]) -> None:
    """No remote images, fonts or stylesheets: nothing to block, track or miss. Images
    pasted into updates (Markdown or HTML) must not turn into requests either."""
    rendered = open_digest(375)
    assert rendered.external_requests() == []
    unlabelled = rendered.page.evaluate(
        "[...document.images].filter((img) => !img.alt.trim()).map((img) => img.src)"
    )
    assert unlabelled == [], "an image without alt text is a blank box with images off"
    backgrounds = rendered.page.evaluate(
        "[...document.querySelectorAll('*')].map((el) => getComputedStyle(el).backgroundImage)"
        ".filter((image) => image !== 'none')"
    )
    assert backgrounds == [], "text over a background image is unreadable when it is blocked"

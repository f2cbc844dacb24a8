"""The one renderer: Markdown in, sanitised HTML out."""

from __future__ import annotations

import pytest

from app.render import render_markdown


def test_markdown_and_line_breaks_survive() -> None:
    html = render_markdown("Shipped **v2**.\nNext: docs\n\n- one\n- two")
    assert "<strong>v2</strong>" in html
    assert "<br" in html  # mail line breaks are kept
    assert "<li>one</li>" in html


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="data:text/html,<script>alert(1)</script>">x</a>',
        '<p style="background:url(javascript:alert(1))">x</p>',
        '<iframe src="https://evil.example"></iframe>',
        "<svg onload=alert(1)>",
    ],
)
def test_hostile_html_is_neutralised(hostile: str) -> None:
    html = str(render_markdown(hostile)).lower()
    for marker in (
        "<script",
        "onerror",
        "onload",
        "javascript:",
        "data:",
        "style=",
        "<iframe",
        "<svg",
    ):
        assert marker not in html


def test_links_get_nofollow_noopener() -> None:
    html = render_markdown("[docs](https://example.com/docs)")
    assert 'href="https://example.com/docs"' in html
    assert 'rel="nofollow noopener"' in html


def test_images_become_links_labelled_with_their_alt_text() -> None:
    html = render_markdown("Results: ![Chart of the answers](https://x.example/c.png)")
    assert "<img" not in html  # nothing is fetched when the message or page is shown
    assert '<a href="https://x.example/c.png"' in html and "[image: Chart of the answers]" in html
    raw = render_markdown('<img src="javascript:alert(1)" alt="<b>x</b>">')
    assert "javascript:" not in raw and "<b>" not in raw


def test_markdown_tables_render_as_tables() -> None:
    html = render_markdown("| question | yes |\n|---|---|\n| Found it | 41 |")
    assert "<table>" in html and "<td>Found it</td>" in html

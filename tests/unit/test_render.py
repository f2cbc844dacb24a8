"""The one renderer: Markdown in, sanitised HTML out; messages assembled from pieces."""

from __future__ import annotations

import binascii
import email
import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.links import LinkRule
from app.render import (
    QPPiece,
    address_header,
    alternative_format,
    header_value,
    message_head,
    qp_encode,
    qp_value,
    render_markdown,
    slot,
)


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


# Messages assembled from pieces ---------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\ue000\r"))


@given(
    literals=st.lists(_text, min_size=1, max_size=5),
    values=st.lists(_text.map(lambda v: v.replace("\n", " ")), min_size=4, max_size=4),
)
def test_a_filled_piece_decodes_to_the_text_it_stands_for(
    literals: list[str], values: list[str]
) -> None:
    """Whatever the template text and the values: the joined quoted-printable decodes to
    the literal text with the values in place, and no encoded line is over 76."""
    names = ["a", "b", "c", "d"][: len(literals) - 1]
    rendered = literals[0] + "".join(
        slot(name) + literal for name, literal in zip(names, literals[1:], strict=True)
    )
    out: list[bytes] = []
    QPPiece(rendered).fill(out, {n: qp_value(v) for n, v in zip(names, values, strict=False)})
    encoded = b"".join(out)
    expected = literals[0] + "".join(
        v + literal for v, literal in zip(values, literals[1:], strict=False)
    )
    assert binascii.a2b_qp(encoded).decode("utf-8") == expected
    assert all(len(line) <= 76 for line in encoded.split(b"\n"))
    assert encoded.isascii()


def test_an_assembled_message_reads_back_as_sent() -> None:
    """A message formatted from `alternative_format` with a reader's values (here a
    name in both parts, with a `%` in the text around it) reads back as meant."""
    text, html = "Grüße, José, 100%\n" + "x" * 200 + "\n", '<p>Café <a href="x">y</a></p>\n'
    subject = " ".join(["3 new updates in Café plans and more words"] * 3)
    unsubscribe = (
        f"<mailto:unsubscribe+{'a' * 60}@t.test?subject=unsubscribe>,"
        f"\n <https://t.test/u?t={'b' * 60}>"
    )
    head, boundary = message_head(
        [
            ("Subject", header_value(subject, "Subject")),
            ("From", address_header("Tidings", "digest@t.test")),
            ("To", address_header("José O'Brien", "jose@example.com")),
            ("List-Unsubscribe", unsubscribe),
        ],
        "=_tidings_test",
    )
    message = alternative_format(
        qp_encode(text).replace(b"%", b"%%").replace(b"Jos=C3=A9", b"%s"),
        qp_encode(html).replace(b"%", b"%%").replace(b"Caf=C3=A9", b"%s"),
    )
    raw = message % (head, boundary, boundary, qp_value("José"), boundary, b"Caf=C3=A9", boundary)
    assert raw.isascii() and max(len(line) for line in raw.split(b"\n")) <= 998
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == subject
    assert msg["To"].addresses[0].display_name == "José O'Brien"
    assert msg.get_body(("plain",)).get_content() == text
    assert msg.get_body(("html",)).get_content() == html
    # Mail clients read List-Unsubscribe as it is: encoded words would hide its URLs.
    assert f"List-Unsubscribe: {unsubscribe}\n".encode() in raw


def test_a_boundary_quoted_printable_could_contain_is_refused() -> None:
    with pytest.raises(ValueError, match="=_"):
        message_head([], "boundary")


# A team's link patterns --------------------------------------------------------------------

JIRA = LinkRule("PROJ-{id}", "https://jira.example.com/browse/PROJ-{id}")
ISSUES = LinkRule("#{id}", "https://github.com/acme/app/issues/{id}")


def test_references_become_links_to_the_tracker() -> None:
    html = str(render_markdown("Fixed PROJ-123 and #45; **PROJ-7** too.", [JIRA, ISSUES]))
    assert (
        '<a href="https://jira.example.com/browse/PROJ-123" rel="nofollow noopener">PROJ-123</a>'
        in html
    )
    assert 'href="https://github.com/acme/app/issues/45"' in html
    assert '<strong><a href="https://jira.example.com/browse/PROJ-7"' in html


@pytest.mark.parametrize(
    "text",
    [
        "`PROJ-1` in code",
        "```\nPROJ-2\n```",
        "xPROJ-3 is another project",
        "see https://example.com/#4 and ##5",
        "PROJ-6a is not a number",
    ],
)
def test_references_are_left_alone_where_they_are_not_references(text: str) -> None:
    assert "jira.example.com" not in str(render_markdown(text, [JIRA, ISSUES]))
    assert "github.com/acme" not in str(render_markdown(text, [JIRA, ISSUES]))


def test_a_reference_inside_the_authors_own_link_stays_their_link() -> None:
    html = str(render_markdown("[about PROJ-2](https://wiki.example.com/x)", [JIRA]))
    assert html.count("<a ") == 1 and 'href="https://wiki.example.com/x"' in html
    assert ">about PROJ-2</a>" in html

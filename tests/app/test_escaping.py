"""User text on every page is shown as typed: no Markdown image in it is ever rendered (and so fetched).

The helpers in app_pages/ui.py are checked against a CommonMark renderer (markdown-it-py, installed with
rich, which chromadb uses): `plain` text renders back to exactly what was typed, and nothing
`safe_markdown` returns renders an image. Then each page runs through AppTest on the sample entries plus
two hostile ones whose every short field holds a Markdown image, and every string the page hands to a
Markdown surface (bodies, captions, alerts, toasts, headings, labels, tooltips, radio and segmented
control options) is rendered the same way: none may hold an image.

Which surfaces are Markdown comes from Streamlit 1.67's own frontend: select box and multiselect options
and chips are plain text (so they are passed unescaped); radio, segmented control and pills options,
labels and `help=` tooltips are Markdown.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from app_pages.ui import plain, safe_markdown, search_href
from kb.browse import SearchRequest
from kb.insights import failures_search
from kb.vocabulary import Vocabulary
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
TIMEOUT = 60
MARKDOWN = MarkdownIt("commonmark", {"html": False})  # Streamlit renders user text without raw HTML

ELSEWHERE = "http://198.51.100.7"  # a documentation address
HOSTILE_ID = "quokka-image-register"
IN_REVIEW_ID = "quokka-image-register-in-review"


def image(name: str) -> str:
    return f"![{name}]({ELSEWHERE}/{name}.png)"


TITLE = f"Quokka image register {image('title')}"
ORGANISATION = f"Quokka Office {image('organisation')}"
THEME = f"Quokka theme {image('theme')}"  # not in the vocabulary: kept as written, shown as its label


def rendered(markdown: str) -> str:
    return MARKDOWN.render(markdown)


# --------------------------------------------------------------------------- the helpers


@pytest.mark.parametrize(
    "text",
    [
        TITLE,
        "Costs &amp; benefits: <b>bold</b> *not* _em_ `code` [link](javascript:x) $5 ~~gone~~ | a | b |",
        "# not a heading",
        "1. not a list",
        "> not a quote",
        "--- not a rule",
        ":red[not red] :material/warning: \\![x](y)",
        "line one\n\nline two    with   spaces",
    ],
)
def test_plain_text_renders_as_typed_on_one_line(text):
    out = rendered(plain(text))
    assert out.startswith("<p>") and out.endswith("</p>\n") and "<" not in out[3:-5], out
    assert html.unescape(out[3:-5]) == " ".join(text.split())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), max_size=80))
def test_plain_text_of_anything_renders_as_typed(text):
    normalised = " ".join(text.split())
    out = rendered(plain(text))
    if not normalised:
        assert out == ""
        return
    assert out.startswith("<p>") and out.endswith("</p>\n") and "<" not in out[3:-5], out
    assert html.unescape(out[3:-5]) == normalised


@pytest.mark.parametrize(
    "text",
    [
        image("inline"),
        f"\\{image('escaped-once')}",  # a typed backslash must not pair with the one safe_markdown adds
        f"\\\\{image('escaped-twice')}",
        f"[{image('in-a-link')}]({ELSEWHERE}/)",
        f"![ref][r]\n\n[r]: {ELSEWHERE}/ref.png",
        f"> quoted {image('quote')}\n\n- listed {image('list')}",
    ],
)
def test_safe_markdown_shows_images_as_links(text):
    out = rendered(safe_markdown(text))
    assert "<img" not in out and ELSEWHERE in out, out


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="![]()\\$`*_<> \nax:/.&#;", max_size=40))
def test_safe_markdown_never_renders_an_image(text):
    assert "<img" not in rendered(safe_markdown(text))


def test_safe_markdown_keeps_dollars_as_money():
    assert rendered(safe_markdown("from $5 to $6, or \\$7")) == "<p>from $5 to $6, or $7</p>\n"


# --------------------------------------------------------------------------- every page, with hostile entries


def hostile_fields(entry_id: str, **fields) -> dict:
    return {
        "id": entry_id,
        "title": TITLE,
        "summary": f"Quokka image register summary. {image('summary')} \\{image('summary-escaped')}",
        "kind": "project",
        "outcome": "stopped",
        "organisation": ORGANISATION,
        "partners": [f"Quokka Partner {image('partner')}"],
        "team": f"Quokka team {image('team')}",
        "contact": f"quokka@example.gov {image('contact')}",
        "themes": [THEME, "data-quality"],
        "tags": [f"quokka {image('tag')}"],
        "data_sources": [f"Quokka register {image('data-source')}"],
        "phase": f"pilot {image('phase')}",
        "started": "2022-01",
        "evidence": "observed",
        "visibility": "public",
        "status": "published",
        "created": "2026-11-01",  # the newest, so the home page lists it
        "author": "Priya Natarajan",
        "reviewer": f"Tom {image('reviewer')}",
        "review_comment": f"Check it. {image('review-comment')}",
        "related": ["flood-response-data-cell"],
        "lighthouse": {
            "stage": "pilot",
            "impact": f"Quokka impact {image('impact')}",
            "benefits": [f"Quokka benefit {image('benefit')}"],
            "reused_by": ["flood-response-data-cell"],
        },
        **fields,
    }


def write_entry(folder: Path, fields: dict) -> None:
    sections = {
        f"Lessons {image('section-name')}": f"Quokka image register lessons. \\{image('section-text')}",
        "Context": f"Quokka image register context {image('context')}.",
    }
    body = "\n\n".join(f"## {name}\n\n{text}" for name, text in sections.items())
    front = yaml.safe_dump(fields, sort_keys=False, allow_unicode=True, width=1000)
    (folder / f"{fields['id']}.md").write_text(f"---\n{front}---\n\n{body}\n", encoding="utf-8")


@pytest.fixture
def hostile(entries_dir, monkeypatch) -> Path:
    """The sample entries plus a published hostile entry and one in review (the oldest in the queue)."""
    write_entry(entries_dir, hostile_fields(HOSTILE_ID))
    write_entry(entries_dir, hostile_fields(IN_REVIEW_ID, status="in-review", created="2001-01-01"))
    monkeypatch.setenv("KB_USER_ROLES", f"contributor,curator,{image('role')}")
    return entries_dir


def open_app(name: str = "search", **query: str | list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if name != "search":
        at.switch_page(f"app_pages/{name}.py").run()
    if query:
        at.query_params.update(query)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


MARKDOWN_BODIES = {"Markdown", "Heading", "Alert", "Toast"}


def markdown_surfaces(at: AppTest) -> list[tuple[str, str]]:
    """(element, source) for every string the page gives Streamlit to render as Markdown."""
    found = []
    for node in [*at.main, *at.sidebar, *at.toast]:
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        kind = proto.DESCRIPTOR.name
        texts = [getattr(proto, name, "") for name in ("label", "help")]
        if kind in MARKDOWN_BODIES:
            texts.append(proto.body)
        if kind == "Radio":
            texts.extend(proto.options)
        if kind == "ButtonGroup":
            texts.extend(option.content for option in proto.options)
        found.extend((kind, text) for text in texts if isinstance(text, str) and text)
    return found


def assert_no_image(at: AppTest) -> None:
    for kind, text in markdown_surfaces(at):
        assert "<img" not in rendered(text), f"a {kind} would render an image: {text!r}"
    for element in at.get("html"):  # the passage, the one HTML the app renders
        assert "<img" not in element.value, element.value


PAGES = {
    "search results and facets": ("search", {"q": "quokka image register", "theme": THEME}),
    "search plan": ("search", {"q": f"Quokka image register {image('plan')}", "mode": "plan"}),
    "newest entries": ("search", {}),
    "entry": ("entry", {"id": HOSTILE_ID}),
    "editing": ("submit", {"edit": HOSTILE_ID}),
    "showcase": ("showcase", {}),
    "showcase filtered": ("showcase", {"theme": THEME}),
    "review queue": ("review", {}),
    "insights": ("insights", {}),
    "insights list": ("insights", {"view": "List"}),
    "whom to ask": ("people", {"q": "quokka"}),
    "organisation": ("organisation", {"org": ORGANISATION}),
    "a partner organisation": ("organisation", {"org": f"Quokka Partner {image('partner')}"}),
}


@pytest.mark.parametrize("where", PAGES)
def test_no_page_renders_an_image_from_user_text(hostile, where):
    name, query = PAGES[where]
    at = open_app(name, **query)
    if where != "insights":  # there the hostile values are in the charts' data (and the legend's HTML)
        assert any("Quokka" in text for _, text in markdown_surfaces(at)), "the hostile entry is on the page"
    assert_no_image(at)


@pytest.mark.parametrize(
    ("name", "query", "echoed"),
    [
        ("search", {"q": f"Quokka {image('query')}", "organisation": "Nobody"}, f"Quokka {image('query')}"),
        ("entry", {"id": f"quokka-{image('entry-id')}"}, f"quokka-{image('entry-id')}"),
        ("organisation", {"org": f"Quokka {image('org')}"}, f"Quokka {image('org')}"),
        ("people", {"q": f"Quokka {image('who')}"}, f"Quokka {image('who')}"),
    ],
)
def test_text_from_the_address_is_echoed_escaped(hostile, name, query, echoed):
    at = open_app(name, **query)
    assert any(plain(echoed) in text for _, text in markdown_surfaces(at)), "the text is quoted back"
    assert_no_image(at)


def test_entry_links_show_the_escaped_title_as_label_and_tooltip(hostile):
    at = open_app(q="quokka image register")
    links = [p for p in at.get("page_link") if f"id={HOSTILE_ID}" in p.proto.query_string]
    assert links, "the hostile entry is a result"
    assert links[0].proto.label == f"**{plain(TITLE)}**"
    assert links[0].proto.help == plain(TITLE), "the full title on hover, escaped like the label"


def test_option_lists_show_user_text_unescaped(hostile):
    """Select box and multiselect options are plain text in the browser: escaping them would show the
    backslashes, so they get the value as typed."""
    at = open_app(q="quokka image register")
    assert any(o.startswith(f"{ORGANISATION} (") for o in at.multiselect(key="facet_organisation").options)
    assert any(o.startswith(f"{THEME} (") for o in at.multiselect(key="facet_theme").options)


def approve_button(at: AppTest, entry_id: str):
    return next(b for b in at.button if b.proto.form_id == f"review_{entry_id}" and b.label.startswith("Approve"))


def test_flash_and_toast_escape_the_title(hostile):
    at = open_app("review")
    approve_button(at, IN_REVIEW_ID).click().run()
    assert not at.exception
    expected = plain(f"Published: {TITLE}")
    assert expected in [s.value for s in at.success]
    assert expected in [t.value for t in at.toast]


def test_a_review_error_quoting_the_title_is_escaped(hostile, monkeypatch):
    from kb import KBError, review

    def refuse(kb, entry_id, *args, **kwargs):
        raise KBError(f"'{TITLE}' is no longer in review")

    monkeypatch.setattr(review, "approve", refuse)
    at = open_app("review")
    approve_button(at, IN_REVIEW_ID).click().run()
    assert plain(f"'{TITLE}' is no longer in review") in [e.value for e in at.error]
    assert_no_image(at)


def test_charts_name_no_tooltip_field_that_would_be_fetched(hostile):
    """Vega's tooltip handler escapes values itself, but fetches a field named `image`; an `href`
    channel makes marks links. Titles go into the charts as data, unescaped. The one chart whose marks
    are links is "where do we keep failing", and each of its links is one the app built to its own
    search page: relative, every character of the theme percent-encoded, reading back as that theme's
    failed or stopped entries."""
    import pyarrow as pa

    at = open_app("insights")
    charts = at.get("vega_lite_chart")
    specs = [json.loads(chart.proto.spec) for chart in charts]
    assert len(specs) == 6
    linked = []
    for chart, spec in zip(charts, specs, strict=True):
        encoding = spec.get("encoding", {})
        names = [t.get("title") or t.get("field") for t in encoding.get("tooltip", [])]
        assert names and "image" not in names, names
        if "href" in encoding:
            assert encoding["href"] == {"field": "href", "type": "nominal"}
            (dataset,) = chart.proto.datasets
            linked.append(pa.ipc.open_stream(dataset.data.data).read_all().to_pydict())
    assert len(linked) == 1, "only the failing bars are links"
    (bars,) = linked
    label = Vocabulary.load(hostile).label  # a theme not in the vocabulary is its own label
    assert len(bars["href"]) >= 10
    hostile_bar = search_href(failures_search(THEME))  # one entry is too few for a bar: built here
    for theme, href in [*zip(bars["label"], bars["href"], strict=True), (THEME, hostile_bar)]:
        assert re.fullmatch(r"\./\?[A-Za-z0-9_.~%+=&-]+", href), href
        request = SearchRequest.from_params(parse_qs(href[len("./?") :]))
        assert request.facets.outcome == ("failed", "stopped") and request.facets.theme, href
        assert not request.query and request.facets.to_params().keys() == {"outcome", "theme"}
        assert label(request.facets.theme[0]) == theme, (theme, href)

"""The glossary page through AppTest: every theme with its definition, synonyms, counts of what the
visitor may see, and a link to its search."""

from __future__ import annotations

from urllib.parse import parse_qs

from kb import KnowledgeBase, Settings
from kb.embedder import HashingEmbedder
from kb.glossary import glossary
from kb.identity import local_user
from tests.app.test_app import assert_clean, open_app


def shown(at) -> dict[str, str]:
    """Each theme's heading, and the counts under it."""
    headings = [h.value for h in at.header]
    counts = [c.value for c in at.caption if " entr" in c.value and "organisation" in c.value]
    assert len(headings) == len(counts)
    return dict(zip(headings, counts, strict=True))


def expected(entries_dir, tmp_path) -> dict[str, str]:
    kb = KnowledgeBase(
        Settings(entries_dir=entries_dir, index_dir=tmp_path / "index", model="hashing-bow"), embedder=HashingEmbedder()
    )
    words = lambda n, one, many: f"{n} {one if n == 1 else many}"  # noqa: E731
    return {
        t.label: f"{words(t.entries, 'entry', 'entries')} · {words(t.organisations, 'organisation', 'organisations')}"
        for t in glossary(kb, local_user())
    }


def test_every_theme_is_shown_with_its_counts_synonyms_and_search(entries_dir, tmp_path):
    at = open_app("glossary")
    assert_clean(at)
    assert at.title[0].value == "Glossary"
    assert shown(at) == expected(entries_dir, tmp_path)
    assert len(shown(at)) == 20
    text = "\n".join(m.value for m in at.markdown)
    assert "**Also called:** data sharing agreement, DSA, MoU" in text
    assert "Joining records about the same person" in text
    links = {link.proto.label: parse_qs(link.proto.query_string) for link in at.get("page_link")}
    assert links["Search entries on Record linkage and matching"] == {"theme": ["record-linkage"]}


def test_counts_change_with_what_the_visitor_may_see(entries_dir, tmp_path, monkeypatch):
    outside = shown(open_app("glossary"))["Machine learning and AI"]
    monkeypatch.setenv("KB_USER_ORGANISATION", "Home Affairs Department")
    inside = shown(open_app("glossary"))["Machine learning and AI"]
    assert inside == expected(entries_dir, tmp_path)["Machine learning and AI"]
    assert int(inside.split()[0]) == int(outside.split()[0]) + 1, "its organisation-only entry is counted inside"


def test_a_theme_s_words_never_render_an_image(entries_dir):
    """A vocabulary's label, definition and synonyms are shown as text on the glossary and in the form's
    suggestions: an image in them is never fetched."""
    from tests.app.test_escaping import assert_no_image, image, markdown_surfaces

    path = entries_dir / "vocabulary.yaml"
    text = path.read_text(encoding="utf-8")
    end_of_themes = text.index("\ndata_sources:") + 1  # the new theme goes last in the themes list
    path.write_text(
        text[:end_of_themes]
        + f'  - id: quokka-matching\n    label: "Quokka record matching {image("label")}"\n'
        + f'    definition: "Matching quokka records {image("definition")}"\n'
        + f'    synonyms: ["quokka linkage {image("synonym")}"]\n'
        + text[end_of_themes:],
        encoding="utf-8",
    )
    at = open_app("glossary")
    assert_clean(at)
    assert any("Quokka record matching" in text for _, text in markdown_surfaces(at))
    assert any("quokka linkage" in text for _, text in markdown_surfaces(at))
    assert_no_image(at)

    at = open_app("submit")
    at.text_input(key="draft_title").input("Quokka record matching").run()
    at.text_area(key="draft_summary").input("Matching quokka records, quokka linkage and record matching.").run()
    assert any(b.label.startswith("Add theme: Quokka record matching") for b in at.button), [b.label for b in at.button]
    assert_no_image(at)

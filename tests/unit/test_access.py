"""Nothing leaks: what a viewer may not see never appears in results, similar lists, counts or exports."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb import Entry, Filters, KnowledgeBase, NotFound, Settings
from kb.access import ANONYMOUS, can_edit, can_see, entry_meta, member_of, redact, visible_where
from kb.cli import cli
from kb.identity import User, author_key

SECRET = "zanzibar-secret-pilot"
SECRET_WORDS = "quetzal lagoon reconciliation of zanzibar ledgers"


@pytest.fixture
def with_secret(entries_dir):
    """The sample entries plus one organisation-only entry that is the best match for SECRET_WORDS."""
    (entries_dir / f"{SECRET}.md").write_text(
        f"---\nid: {SECRET}\ntitle: Zanzibar ledger reconciliation\nsummary: The {SECRET_WORDS} failed.\n"
        "kind: experiment\noutcome: failed\norganisation: Revenue and Customs Office\n"
        "partners: [Border and Trade Agency]\nstatus: published\nvisibility: organisation\nanonymous: true\n"
        "team: Ledger Team\ncontact: ledgers@rco.example.gov\nauthor: Sam Adeyemi\nthemes: [data-quality]\n"
        f"---\n## Lessons\n\nThe {SECRET_WORDS} needed a shared key.\n"
    )
    return entries_dir


@pytest.fixture
def secret_kb(settings, fake_embedder, with_secret):
    base = KnowledgeBase(settings, embedder=fake_embedder)
    base.sync()
    return base


OUTSIDER = member_of("Home Affairs Department")
OWNER = member_of("Revenue and Customs Office")
PARTNER = member_of("Border and Trade Agency")


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_restricted_best_match_never_reaches_outsiders(secret_kb, mode):
    for viewer in (OWNER, PARTNER, None):
        assert secret_kb.search(SECRET_WORDS, mode=mode, viewer=viewer)[0].id == SECRET
    for viewer in (OUTSIDER, ANONYMOUS):
        hits = secret_kb.search(SECRET_WORDS, mode=mode, limit=50, viewer=viewer)
        assert SECRET not in {h.id for h in hits}
        assert len(hits) == len({h.id for h in hits})  # the top k is filled from what they may see


def test_restricted_entry_is_hidden_on_every_library_surface(secret_kb):
    from kb.plan import plan_search

    with pytest.raises(NotFound):
        secret_kb.get(SECRET, viewer=OUTSIDER)
    with pytest.raises(NotFound):
        secret_kb.similar(SECRET, viewer=OUTSIDER)
    for other in ("data-quality-grading-for-shared-datasets", "address-data-quality-scorecard-abandoned"):
        assert SECRET not in {h.id for h in secret_kb.similar(other, limit=50, viewer=OUTSIDER)}
    plan = plan_search(secret_kb, f"We will try {SECRET_WORDS} again.\n\nThen publish it.", viewer=OUTSIDER)
    assert SECRET not in {h.id for h in plan.hits}
    everyone, outsider = secret_kb.stats(), secret_kb.stats(viewer=OUTSIDER)
    assert outsider["entries"] < everyone["entries"]
    assert (
        outsider["by"]["organisation"].get("Revenue and Customs Office", 0)
        < everyone["by"]["organisation"]["Revenue and Customs Office"]
    )
    assert (
        secret_kb.stats(viewer=OWNER)["by"]["organisation"]["Revenue and Customs Office"]
        == everyone["by"]["organisation"]["Revenue and Customs Office"]
    )


def test_anonymous_entries_hide_team_contact_and_author_from_readers(secret_kb):
    seen = secret_kb.get(SECRET, viewer=OWNER)
    assert (seen.team, seen.contact, seen.author) == ("", "", "")
    author = User(name="Sam Adeyemi", organisation="Revenue and Customs Office", roles=())
    assert secret_kb.get(SECRET, viewer=author).team == "Ledger Team"
    assert secret_kb.get(SECRET).contact == "ledgers@rco.example.gov"  # the operator


def test_drafts_are_for_their_author_and_reviewers():
    meta = {
        "visibility": "public",
        "status": "draft",
        "author": "Ada",
        "author_key": author_key("Ada"),
        "organisation": "X",
    }
    assert not can_see(ANONYMOUS, meta) and not can_see(member_of("X"), meta)
    assert can_see(User(name="Ada", roles=()), meta) and can_see(User(name="Rev", roles=("reviewer",)), meta)
    assert can_see(None, meta)


def with_a_draft_by(author: User, settings, fake_embedder, entries_dir) -> KnowledgeBase:
    """The sample entries and "ada-draft", a public draft written by `author`, synced."""
    (entries_dir / "ada-draft.md").write_text(
        "---\nid: ada-draft\ntitle: Okapi census draft\nsummary: Okapi census figures reconciled by hand.\n"
        "kind: project\noutcome: partial\norganisation: Ministry of Justice Services\nstatus: draft\n"
        f"visibility: public\nauthor: {author.as_author}\nthemes: [data-quality]\n---\n## Lessons\n\nOkapi.\n"
    )
    kb = KnowledgeBase(settings, embedder=fake_embedder)
    kb.sync()
    return kb


def test_a_namesake_never_sees_or_edits_another_s_draft(settings, fake_embedder, entries_dir):
    """A display name is the person's own to choose at the sign-in provider: a draft is its author's by
    their address, so someone who shares (or copies) the name finds it exactly as if it did not exist."""
    ada = User("Ada Lovelace", "Home Affairs Department", ("contributor",), local=False, email="ada@had.example.gov")
    copy = User("Ada Lovelace", "Home Affairs Department", ("contributor",), local=False, email="eve@had.example.gov")
    kb = with_a_draft_by(ada, settings, fake_embedder, entries_dir)
    assert kb.get("ada-draft", viewer=ada).title == "Okapi census draft"
    assert "ada-draft" in {h.id for h in kb.search("okapi census", viewer=ada)}
    assert can_edit(ada, kb.get("ada-draft", viewer=ada))
    with pytest.raises(NotFound) as hidden:
        kb.get("ada-draft", viewer=copy)
    with pytest.raises(NotFound) as missing:
        kb.get("no-such-draft", viewer=copy)
    assert str(hidden.value).replace("ada-draft", "X") == str(missing.value).replace("no-such-draft", "X")
    assert "ada-draft" not in {h.id for h in kb.search("okapi census", viewer=copy)}
    assert not can_edit(copy, kb.get("ada-draft"))


def test_a_display_name_changed_at_the_provider_keeps_the_author_s_drafts_and_rights(
    settings, fake_embedder, entries_dir
):
    """What a signed-in person wrote is theirs by their address: renamed at the provider (a marriage, a
    typo mended) they still find, open and edit their drafts, as the index's clause and the rules agree."""
    before = User("Ada Byron", "Home Affairs Department", ("contributor",), local=False, email="ada@had.example.gov")
    after = User("Ada Lovelace", "Home Affairs Department", ("contributor",), local=False, email="ada@had.example.gov")
    by_id = User("Ada Lovelace", "Home Affairs Department", ("contributor",), local=False, subject="ada")
    kb = with_a_draft_by(before, settings, fake_embedder, entries_dir)
    assert after.wrote(before.as_author) and not by_id.wrote(before.as_author)
    assert kb.get("ada-draft", viewer=after).title == "Okapi census draft"
    assert "ada-draft" in {h.id for h in kb.search("okapi census", viewer=after)}
    assert can_edit(after, kb.get("ada-draft", viewer=after))
    # the provider's id for someone is not an address, and a bare name spells neither
    assert "ada-draft" not in {h.id for h in kb.search("okapi census", viewer=by_id)}
    assert author_key("Ada Byron <ada@had.example.gov>") == author_key("Ada <ada@had.example.gov>")
    assert len({author_key("<ada@had.example.gov>"), author_key("X <ada@had.example.gov>"), author_key("")}) == 3
    assert author_key("") == "" and not after.wrote("")
    # a signed-in person the provider gives no id at all is nobody's author, and sees no author-less draft
    nameless = User("", "Home Affairs Department", ("contributor",), local=False)
    assert nameless.author_key == "" and not nameless.wrote("")
    assert "author_key" not in str(visible_where(nameless))


def test_a_signed_in_author_s_address_is_theirs_and_reviewers_to_see_and_an_edit_keeps_it(kb):
    """Readers see the name alone; an edit made on that view (a colleague's, through the app or the API)
    keeps the author as stored; and a reviewer who may have written an entry never approves it."""
    from dataclasses import replace

    from kb.access import can_review
    from kb.editing import open_edit, save_edit

    org = "Ministry of Justice Services"
    ada = User("Ada Lovelace", org, ("contributor",), local=False, email="ada@mjs.example.gov")
    colleague = User("Cy Colleague", org, ("contributor",), local=False, email="cy@mjs.example.gov")
    reviewer = User("Rev Iewer", "Home Affairs Department", ("reviewer",), local=False, email="rev@had.example.gov")
    stored = kb.stored("benefits-and-housing-data-sharing-pilot")
    entry = kb.save(replace(stored, id="", title="Okapi ledgers", organisation=org, author=ada.as_author), new=True)

    assert kb.show(entry.id, viewer=colleague).entry.author == "Ada Lovelace"
    assert kb.show(entry.id, viewer=ANONYMOUS).entry.author == "Ada Lovelace"
    assert kb.show(entry.id, viewer=ada).entry.author == ada.as_author
    assert kb.show(entry.id, viewer=reviewer).entry.author == ada.as_author

    target = open_edit(kb, entry.id, colleague)
    edited = replace(target.entry, summary="Okapi ledgers, reconciled.")
    save_edit(kb, target, edited, colleague, status="in-review")  # waits for review as a revision
    revision, _ = kb.store.revision(entry.id)
    assert revision.author == ada.as_author  # not the name alone the colleague was shown
    assert revision.revised_by == colleague.as_author

    from kb import evidence

    evidence.add_note(kb, entry.id, text="We hit this with okapi ledgers too.", year=2024, viewer=ada)
    assert [n.author for n in evidence.notes(kb, entry.id, viewer=colleague)] == ["Ada Lovelace"]
    assert [n.author for n in evidence.notes(kb, entry.id, viewer=ada)] == [ada.as_author]

    legacy = replace(kb.stored(entry.id), author="Rev Iewer", status="in-review")  # written before sign-in
    assert not can_review(reviewer, legacy)
    assert can_review(reviewer, replace(legacy, author=ada.as_author))


def test_cli_as_organisation(secret_kb):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    assert SECRET in run("search", SECRET_WORDS, "--json").output
    outsider = json.loads(run("search", SECRET_WORDS, "--as", "Home Affairs Department", "--json").output)
    assert SECRET not in {h["id"] for h in outsider}
    assert SECRET in run("search", SECRET_WORDS, "--as", "Border and Trade Agency", "--json").output
    hidden = run("show", SECRET, "--as", "anonymous")
    assert hidden.exit_code == 1 and f"no entry with id '{SECRET}'" in hidden.output
    exported = run("export", "--format", "jsonl", "--as", "Home Affairs Department").output
    assert SECRET not in exported and "benefits-and-housing-data-sharing-pilot" in exported
    assert SECRET in run("export", "--format", "jsonl").output
    stats = json.loads(run("stats", "--as", "anonymous", "--json").output)
    assert stats["files"] is None and stats["entries"] < json.loads(run("stats", "--json").output)["entries"]
    similar = json.loads(
        run(
            "similar", "data-quality-grading-for-shared-datasets", "--limit", "50", "--as", "anonymous", "--json"
        ).output
    )
    assert SECRET not in {h["id"] for h in similar}


# ----------------------------------------------------------------------------- property test

ORGS = ["Alpha Office", "Beta Agency", "Gamma Council"]
PEOPLE = ["Ada", "Bo", "Cy"]
# Authors as signed-in people are named: the same address under two display names, a provider id, and
# a namesake with another address.
SIGNED_IN_AUTHORS = ["Ada <ada@alpha.example>", "Ada King <ada@alpha.example>", "Ada <sub:a1>", "Bo <eve@beta.example>"]
WORDS = [
    "ledger",
    "pilot",
    "council",
    "dashboard",
    "mainframe",
    "agreement",
    "skills",
    "forecast",
    "platform",
    "quality",
]


def random_collection(seed: int = 7, size: int = 60) -> list[Entry]:
    rng = random.Random(seed)
    entries = []
    for n in range(size):
        org = rng.choice(ORGS)
        entries.append(
            Entry(
                id=f"e{n}",
                title=" ".join(rng.sample(WORDS, 3)),
                summary=" ".join(rng.sample(WORDS, 5)),
                kind=rng.choice(["project", "experiment"]),
                outcome=rng.choice(["failed", "succeeded", "stopped"]),
                organisation=org,
                partners=rng.sample([o for o in ORGS if o != org], rng.randint(0, 2)),
                status=rng.choice(["draft", "in-review", "published", "archived"]),
                visibility=rng.choice(["public", "internal", "organisation"]),
                author=rng.choice(PEOPLE + SIGNED_IN_AUTHORS),
                anonymous=rng.random() < 0.3,
                sections={"Lessons": " ".join(rng.choices(WORDS, k=12))},
            )
        )
    return entries


@pytest.fixture(scope="module")
def random_kb(tmp_path_factory):
    from kb.embedder import HashingEmbedder

    folder = tmp_path_factory.mktemp("access")
    settings = Settings(entries_dir=folder / "entries", index_dir=folder / "index", chroma_url=None, model="x")
    base = KnowledgeBase(settings, embedder=HashingEmbedder())
    entries = random_collection()
    base.sync_entries(entries)
    return base, {e.id: e for e in entries}


viewers = st.one_of(
    st.just(ANONYMOUS),
    st.builds(
        User,
        name=st.sampled_from(PEOPLE + ["Zed"]),
        organisation=st.sampled_from(ORGS + [""]),
        roles=st.sampled_from([(), ("contributor",), ("reviewer",)]),
        local=st.booleans(),
    ),
    st.builds(  # signed in: known by address or provider id, whatever their display name
        User,
        name=st.sampled_from(["Ada", "Ada King", "Bo"]),
        organisation=st.sampled_from(ORGS + [""]),
        roles=st.sampled_from([(), ("contributor",)]),
        local=st.just(False),
        email=st.sampled_from(["", "ada@alpha.example", "eve@beta.example"]),
        subject=st.sampled_from(["", "a1"]),
    ),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    viewer=viewers,
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    mode=st.sampled_from(["hybrid", "dense", "bm25"]),
    outcome=st.sampled_from([None, "failed", "succeeded"]),
)
def test_no_leak_for_any_viewer_query_or_filter(random_kb, viewer, query, mode, outcome):
    base, entries = random_kb
    allowed = {i for i, e in entries.items() if can_see(viewer, entry_meta(e))}
    assert base.index.entry_ids(visible_where(viewer)) == allowed  # the where clause and the predicate agree
    hits = base.search(query, limit=100, mode=mode, filters=Filters.of(outcome=outcome), viewer=viewer)
    assert {h.id for h in hits} <= allowed
    if hits:
        for similar in base.similar(hits[0].id, limit=60, viewer=viewer):
            assert similar.id in allowed
    stats = base.stats(viewer=viewer)
    assert stats["entries"] == len(allowed)
    for entry_id in allowed:
        entry = entries[entry_id]
        # the author, under any display name: the same address or id in brackets, or the same bare name
        by_viewer = entry.author == viewer.as_author or (
            bool(viewer.identity) and entry.author.endswith(f" <{viewer.identity}>")
        )
        if entry.anonymous and not viewer.is_reviewer and not by_viewer:
            shown = redact(entry, viewer)
            assert shown.team == shown.contact == shown.author == ""


def test_the_roles_a_page_checks_are_the_librarys_rules():
    from kb.access import can_contribute, looks_after_the_index, reviews
    from kb.browse import SearchRequest
    from kb.identity import User

    reader = User("Reader", "Office", (), local=False)
    contributor = User("Con", "Office", ("contributor",), local=False)
    reviewer = User("Rev", "Office", ("reviewer",), local=False)
    admin = User("Ada", "Office", ("admin",), local=False)
    assert [can_contribute(u) for u in (None, reader, contributor, reviewer)] == [False, False, True, True]
    assert [reviews(u) for u in (None, reader, contributor, reviewer)] == [False, False, False, True]
    drafts = SearchRequest.from_params({"status": "draft"})
    assert [bool(drafts.for_user(u).facets.status) for u in (None, contributor, reviewer)] == [False, False, True]
    assert looks_after_the_index(admin, local=False) and looks_after_the_index(reviewer, local=True)
    assert not looks_after_the_index(reviewer, local=False) and not looks_after_the_index(contributor, local=True)

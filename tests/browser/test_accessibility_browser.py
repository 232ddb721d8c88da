"""Accessibility: axe-core checks every page of the app, in the states people see it, at 1400 px and at
390 px (a phone's user agent, as the app lays pages out for a phone by it).

No critical, serious or moderate violation may be found, except the rules in FRAMEWORK: violations in
Streamlit's own markup that the app cannot change, listed by rule in docs/app.md ("Accessibility").

One app server (and one more, with sign-in configured, for the signed-out pages) and one Chromium serve the
whole module. axe-core comes from the npm registry: `npm ci --prefix tests/browser/axe`. Skips when it,
/usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.browser.conftest import chromium, running_app
from tests.browser.harness import PHONE, settle
from tests.conftest import ROOT, require

pytestmark = pytest.mark.browser

AXE = ROOT / "tests" / "browser" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
IMPACTS = ("critical", "serious", "moderate")
# Rules whose violations come from Streamlit's own markup and that the app cannot change. Mirrored in
# docs/app.md, "Accessibility": a test keeps the two the same.
FRAMEWORK: tuple[str, ...] = ()
WIDTHS = {  # the browser context for each width
    "1400 px": {"viewport": {"width": 1400, "height": 1000}},
    "390 px": {"viewport": {"width": 390, "height": 844}, "user_agent": PHONE},
}
ENTRY_ID = "benefits-and-housing-data-sharing-pilot"


@dataclass(frozen=True)
class State:
    path: str  # the URL's path and query
    ready: str  # text on the page once it is drawn
    act: Callable | None = None  # what a person does before the check
    signed_out: bool = False  # on the app with sign-in configured, before signing in


def open_the_filters(tab) -> None:
    """On a phone the filters wait behind one control; open it (elsewhere they are always shown)."""
    control = tab.get_by_text(re.compile(r"^Filters \(\d+\)$"))
    if control.count():
        control.first.click()
        tab.get_by_text("Organisation").first.wait_for()


def open_what_people_look_for(tab) -> None:
    """The curators' tab of Insights (the local user curates), after a search with no match was counted."""
    tab.get_by_role("tab", name="What people look for").click()
    tab.get_by_text("Searches with no close match", exact=True).wait_for()


def refuse_a_synonym(tab) -> None:
    """Send the synonym form empty: the page says what is wrong under the form."""
    tab.get_by_role("button", name="Add the synonym").click()
    tab.get_by_text("Give the synonym").first.wait_for()


def candidate_terms(tab) -> None:
    """A search that finds nothing makes a candidate term: its card, with its form, is checked too."""
    base = tab.url.split("/vocabulary")[0]
    tab.goto(f"{base}/?q=zzqx+wibbleton&mode=keyword")
    tab.get_by_text("No entries matched").first.wait_for()
    tab.goto(f"{base}/vocabulary")
    tab.get_by_role("tab", name="Candidate terms").click()
    tab.get_by_text("zzqx wibbleton", exact=True).wait_for()


def vocabulary_history(tab) -> None:
    tab.get_by_role("tab", name="History").click()


def write_a_title_and_summary(tab) -> None:
    """Enough of a draft for the form to suggest its themes."""
    tab.get_by_role("textbox", name="Title", exact=True).fill("Matching records across councils")
    tab.get_by_role("textbox", name="Title", exact=True).press("Tab")
    summary = tab.get_by_placeholder("One to three sentences")
    summary.fill("Record linkage and matching of the same person across datasets.")
    summary.press("Tab")
    tab.get_by_text("Suggested themes:").wait_for()


def send_empty_form(tab) -> None:
    tab.get_by_role("button", name="Send for review").click()
    tab.get_by_text("There is a problem").first.wait_for()


STATES = {
    "search": State("/", "Newest entries"),
    "search results": State("/?q=data+sharing", "Matched in:"),
    "search results, a filter chosen and shown": State(
        "/?q=data+sharing&outcome=failed", "Matched in:", act=open_the_filters
    ),
    "search, other names of a theme": State("/?q=mainframe&mode=keyword", "Exact words only"),
    "search, project plan": State(
        "/?q=Share+housing+records+with+councils%0A%0ABuild+a+dashboard+of+arrears&mode=plan", "Part 1 of"
    ),
    "search, filters only": State("/?outcome=failed", "match these filters"),
    "entry": State(f"/entry?id={ENTRY_ID}", "Similar projects"),
    "entry not found": State("/entry?id=no-such-entry", "Entry not found"),
    "showcase": State("/showcase", "Lighthouse showcase"),
    "insights": State("/insights", "Map of the collection"),
    "insights, what people look for": State("/insights", "Map of the collection", act=open_what_people_look_for),
    "submit": State("/submit", "About the work"),
    "submit, with errors": State("/submit", "About the work", act=send_empty_form),
    "submit, suggested themes": State("/submit", "About the work", act=write_a_title_and_summary),
    "edit an entry": State(f"/submit?edit={ENTRY_ID}", "About the work"),
    "review queue": State("/review", "Review queue"),
    "following": State("/following", "What you follow"),
    "vocabulary": State("/vocabulary", "Add a synonym"),
    "vocabulary, a change refused": State("/vocabulary", "Add a synonym", act=refuse_a_synonym),
    "vocabulary, candidate terms": State("/vocabulary", "Add a synonym", act=candidate_terms),
    "vocabulary, history": State("/vocabulary", "Add a synonym", act=vocabulary_history),
    "whom to ask": State("/people", "Failed experiments"),
    "whom to ask, searched": State("/people?q=record+linkage", "Record linkage"),
    "organisation": State("/organisation?org=Cabinet+Digital+Office", "Worked with"),
    "organisation not found": State("/organisation?org=Nowhere+Office", "Organisation not found"),
    "data sources": State("/sources", "data sources"),
    "data source": State("/sources?source=school-census", "Grades side by side"),
    "data source not found": State("/sources?source=no-such-register", "Data source not found"),
    "glossary": State("/glossary", "Record linkage and matching"),
    "search, signed out": State("/", "Not signed in", signed_out=True),
    "submit, signed out": State("/submit", "Sign in to submit", signed_out=True),
    "following, signed out": State("/following", "Sign in to start", signed_out=True),
}


@pytest.fixture(scope="module")
def axe_script() -> str:
    require(AXE.is_file(), f"axe-core is not installed; run `npm ci --prefix {AXE.parents[2].relative_to(ROOT)}`")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser(axe_script) -> Iterator:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def contexts(browser) -> Iterator[Callable[[str, str], object]]:
    """One browser context for each app and width, made when first asked for: each check opens its own
    tab (a new session of the app) in it, and the app's scripts and styles load from the context's cache
    after the first."""
    made: dict[tuple[str, str], object] = {}

    def context(url: str, width: str):
        if (url, width) not in made:
            made[url, width] = browser.new_context(**WIDTHS[width])
        return made[url, width]

    yield context
    for each in made.values():
        each.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory, sample_index) -> Iterator[str]:
    """The app in local mode, as a contributor and curator (a curator reviews too, and keeps the vocabulary)."""
    with running_app(tmp_path_factory.mktemp("app"), index=sample_index, KB_USER_ROLES="contributor,curator") as url:
        yield url


@pytest.fixture(scope="module")
def signed_out_app(tmp_path_factory, sample_index) -> Iterator[str]:
    """The app with sign-in configured, seen by a visitor who has not signed in. Nothing here signs in, so
    the provider it names is never asked."""
    folder = tmp_path_factory.mktemp("signed-out")
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:9/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "lighthouse"\n'
        'client_secret = "not-a-secret"\n'
        'server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    with running_app(folder, "--secrets.files", str(secrets_file), index=sample_index) as url:
        yield url


def violations(context, axe_script: str, url: str, state: State) -> list[dict]:
    """axe-core's critical, serious and moderate violations on the page at `url`, in a new tab of `context`."""
    tab = context.new_page()
    try:
        tab.set_default_timeout(30_000)
        tab.goto(url + state.path)
        tab.get_by_text(state.ready).first.wait_for()
        settle(tab)
        if state.act:
            state.act(tab)
            settle(tab)
        tab.add_script_tag(content=axe_script)
        found = tab.evaluate(
            """async impacts => {
                const results = await axe.run(document, {resultTypes: ['violations']});
                return results.violations.filter(v => impacts.includes(v.impact)).map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    targets: v.nodes.map(n => `${n.target.join(' ')} ${n.html.slice(0, 120)}`)}));
            }""",
            list(IMPACTS),
        )
    finally:
        tab.close()
    return found


@pytest.mark.parametrize("name", STATES)
def test_no_serious_or_moderate_violation(request, contexts, axe_script, name):
    state = STATES[name]
    url = request.getfixturevalue("signed_out_app" if state.signed_out else "app")
    problems = []
    for width in WIDTHS:
        for found in violations(contexts(url, width), axe_script, url, state):
            if found["id"] in FRAMEWORK:
                continue
            targets = "\n    ".join(found["targets"][:8]) + ("\n    ..." if len(found["targets"]) > 8 else "")
            problems.append(
                f"{found['id']} ({found['impact']}: {found['help']}) on {name} ({state.path}) at {width}:\n    {targets}"
            )
    assert not problems, "axe-core found:\n" + "\n".join(problems)


def test_the_framework_rules_are_the_ones_docs_app_md_lists():
    text = (ROOT / "docs" / "app.md").read_text(encoding="utf-8")
    section = text.split("## Accessibility", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- `([a-z0-9-]+)`", section, flags=re.MULTILINE)
    assert sorted(listed) == sorted(FRAMEWORK), "docs/app.md's list of Streamlit's violations is out of date"

"""The command line's vocabulary commands: `vocabulary add-theme`, `add-synonym`, `merge`, `retire`, `history`
and `candidates`. They register on `kb.cli.cli`, which imports this module last; each reads its input, calls
kb.vocabulary_edits (the candidates kb.vocabulary_candidates) and prints. The operator at the command line keeps the vocabulary; `--by` names who
made the change in its history."""

from __future__ import annotations

import click

from kb import vocabulary_edits as edits
from kb.cli import Context, cli, echo_json, handle_errors, pass_ctx
from kb.vocabulary import LISTS
from kb.vocabulary_candidates import candidate_terms

by_option = click.option("--by", default="", help="Who makes the change, kept in the history [the operator].")
list_option = click.option(
    "--list",
    "list_name",
    type=click.Choice(list(LISTS)),
    default=edits.THEMES,
    show_default=True,
    help="The list changed: the themes, or the data sources entries name.",
)


@cli.group()
def vocabulary() -> None:
    """Keep the shared vocabulary: add a theme or a synonym, merge two themes, retire one, read its history,
    list the terms nobody recognises. Each change is written to entries/vocabulary.yaml with its history.

    \b
    Example:
      python -m kb vocabulary add-theme "Open data" --definition "Publishing data for anyone to use."
      python -m kb vocabulary add-synonym data-quality "data grading"
      python -m kb vocabulary merge dashboards-and-reporting data-quality
      python -m kb vocabulary add-synonym onspd "ONS Postcode Directory" --list data_sources
      python -m kb vocabulary retire legacy-infrastructure --reason "split into narrower themes"
      python -m kb vocabulary history
      python -m kb vocabulary candidates
    """


@vocabulary.command(name="add-theme")
@click.argument("label")
@click.option("--id", "theme_id", default="", help="The theme's id [made from the label].")
@click.option("--definition", default="", help="What the theme covers, in a sentence.")
@list_option
@by_option
@pass_ctx
@handle_errors
def add_theme(ctx: Context, label: str, theme_id: str, definition: str, list_name: str, by: str) -> None:
    """Add a theme to the vocabulary (or, with --list data_sources, a data source).

    \b
    Example:
      python -m kb vocabulary add-theme "Open data" --definition "Publishing data for anyone to use."
      python -m kb vocabulary add-theme "ONS Postcode Directory" --id onspd --list data_sources
    """
    theme = edits.add_theme(ctx.kb, theme_id, label, definition, viewer=None, by=by, list_name=list_name)
    click.echo(f"added the {LISTS[list_name]} {theme.id} ({theme.label})")


@vocabulary.command(name="add-synonym")
@click.argument("theme")
@click.argument("synonym")
@list_option
@by_option
@pass_ctx
@handle_errors
def add_synonym(ctx: Context, theme: str, synonym: str, list_name: str, by: str) -> None:
    """Add another name of a theme (given by its id, label or a synonym); search uses it at once. With
    --list data_sources, another name of a data source: the catalogue counts both names as one source.

    \b
    Example:
      python -m kb vocabulary add-synonym data-quality "data grading"
      python -m kb vocabulary add-synonym onspd "ONS Postcode Directory" --list data_sources
    """
    found = edits.add_synonym(ctx.kb, theme, synonym, viewer=None, by=by, list_name=list_name)
    click.echo(f"'{synonym}' now names {found.id} ({found.label})")


@vocabulary.command()
@click.argument("source")
@click.argument("target")
@list_option
@by_option
@pass_ctx
@handle_errors
def merge(ctx: Context, source: str, target: str, list_name: str, by: str) -> None:
    """Merge the theme SOURCE into TARGET: its names become TARGET's synonyms, and each published entry tagged
    with it gets a retag proposed in the review queue (drafts and entries in review are left to their
    authors, and listed). With --list data_sources, merge two data sources: entries are left as they are.

    \b
    Example:
      python -m kb vocabulary merge dashboards-and-reporting data-quality --by "Ana Curator"
      python -m kb vocabulary merge nspl onspd --list data_sources
    """
    result = edits.merge(ctx.kb, source, target, viewer=None, by=by, list_name=list_name)
    click.echo(f"merged {result.source} into {result.target}")
    if result.proposed:
        click.echo(f"retag proposed for review on {len(result.proposed)} entries: {', '.join(result.proposed)}")
    for entry_id, why in result.skipped_because:
        click.echo(f"not retagged: {entry_id} ({why})")


@vocabulary.command()
@click.argument("theme")
@click.option("--reason", required=True, help="Why it is retired, and what to use instead.")
@by_option
@pass_ctx
@handle_errors
def retire(ctx: Context, theme: str, reason: str, by: str) -> None:
    """Retire a theme: it stays in the file so entries still resolve, but forms and facets stop offering it.

    \b
    Example:
      python -m kb vocabulary retire legacy-infrastructure --reason "split into narrower themes"
    """
    found = edits.retire(ctx.kb, theme, reason, viewer=None, by=by)
    click.echo(f"retired {found.id} ({found.label}); `python -m kb check` lists the entries still naming it")


@vocabulary.command()
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON (with the file before each).")
@pass_ctx
@handle_errors
def history(ctx: Context, as_json: bool) -> None:
    """The vocabulary's changes, newest first: when, who and what.

    \b
    Example:
      python -m kb vocabulary history
    """
    changes = edits.vocabulary_history(ctx.kb, None)
    if as_json:
        echo_json([c.__dict__ for c in changes])
        return
    if not changes:
        click.echo("no changes made with Lighthouse yet")
    for change in changes:
        click.echo(f"{change.when}  {change.who or '(unknown)'}: {change.what}")


@vocabulary.command()
@click.option(
    "--days", type=click.IntRange(1, 36_500), default=30, show_default=True, help="Searches of this many days."
)
@click.option("--json", "as_json", is_flag=True, help="Print the candidates as JSON.")
@pass_ctx
@handle_errors
def candidates(ctx: Context, days: int, as_json: bool) -> None:
    """Terms nobody recognises: themes written in entries that the vocabulary does not know, and searches that
    named no theme and found no close result; each with the entries and searches it came from.

    \b
    Example:
      python -m kb vocabulary candidates --days 90
    """
    found = candidate_terms(ctx.kb, None, days=days)
    if found.searches_problem:
        click.echo(f"warning: searches left out: {found.searches_problem}", err=True)
    if as_json:
        echo_json(
            [
                {
                    "term": c.term,
                    "entries": [entry_id for entry_id, _ in c.entries],
                    "searches": [{"query": s.query, "searches": s.searches} for s in c.searches],
                }
                for c in found.items
            ]
        )
        return
    if not found.items:
        click.echo("no candidate terms: every theme written in entries and every search is recognised")
    for candidate in found.items:
        click.secho(candidate.term, bold=True)
        for entry_id, title in candidate.entries:
            click.echo(f"    entry {entry_id}: {title}")
        for search in candidate.searches:
            click.echo(f"    searched {search.searches} times, last {search.last_day.isoformat()}")

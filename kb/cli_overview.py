"""The command line's overview: `stats` (counts of the indexed entries by facet), `glossary` (every theme
and how much it is used) and `themes` (the shared vocabulary). `stats` and `glossary` count only what a
reader may see with `--as`. It registers on `kb.cli.cli`, which imports this module last."""

from __future__ import annotations

import click

from kb.cli import Context, as_option, cli, echo_json, handle_errors, pass_ctx, viewer_for


@cli.command()
@as_option
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_ctx
@handle_errors
def stats(ctx: Context, as_viewer: str | None, as_json: bool) -> None:
    """Counts of indexed entries by organisation, theme, outcome, kind, year and stage.

    \b
    Example:
      python -m kb stats --json
    """
    figures = ctx.kb.stats(viewer=viewer_for(as_viewer))
    if as_json:
        echo_json(figures)
        return
    files = f" from {figures['files']} files" if figures["files"] is not None else ""
    click.echo(
        f"{figures['entries']} entries indexed ({figures['passages']} passages){files}; "
        f"{figures['lighthouses']} lighthouse projects; model {figures['model']}"
    )
    for facet, counts in figures["by"].items():
        if counts:
            top = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8])
            click.echo(f"  {facet}: {top}")


@cli.command()
@as_option
@click.option("--json", "as_json", is_flag=True, help="Print the glossary as JSON.")
@pass_ctx
@handle_errors
def glossary(ctx: Context, as_viewer: str | None, as_json: bool) -> None:
    """Every theme with its definition, synonyms, and how many published entries and organisations use it.

    \b
    Example:
      python -m kb glossary --as "Home Affairs Department"
    """
    from dataclasses import asdict

    from kb.glossary import glossary as terms_of

    terms = terms_of(ctx.kb, viewer_for(as_viewer))
    if as_json:
        echo_json([asdict(t) for t in terms])
        return
    for term in terms:
        click.secho(term.label, bold=True, nl=False)
        click.echo(f"  ({term.theme_id}) {term.entries} entries, {term.organisations} organisations")
        if term.definition:
            click.echo(f"    {term.definition}")
        if term.synonyms:
            click.echo(f"    also called: {', '.join(term.synonyms)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the vocabulary as JSON.")
@pass_ctx
@handle_errors
def themes(ctx: Context, as_json: bool) -> None:
    """List the shared vocabulary of themes, with their synonyms.

    \b
    Example:
      python -m kb themes
    """
    vocabulary = ctx.kb.vocabulary
    if as_json:
        echo_json([t.__dict__ for t in vocabulary.themes])
        return
    for theme in vocabulary.themes:
        click.secho(f"{theme.id}", bold=True, nl=False)
        click.echo(f"  {theme.label}: {theme.definition}")
        if theme.retired:
            click.echo(f"    retired {theme.retired_on}: {theme.retired_reason}".rstrip(": "))
        if theme.synonyms:
            click.echo(f"    synonyms: {', '.join(theme.synonyms)}")

"""The command line's whom to ask: `people` (the directory of teams, searchable) and `organisation` (one
organisation's entries, lighthouses, partners and reuse). Both read kb.directory under the same rules as the
app (`--as` to see them as a reader would). It registers on `kb.cli.cli`, which imports this module last."""

from __future__ import annotations

from dataclasses import asdict

import click

from kb.cli import Context, as_option, cli, echo_json, handle_errors, pass_ctx, viewer_for


def _when(work) -> str:
    return f" ({work.when})" if work.when else ""


@cli.command()
@click.argument("query", required=False, default="")
@as_option
@click.option("--json", "as_json", is_flag=True, help="Print the teams as JSON.")
@pass_ctx
@handle_errors
def people(ctx: Context, query: str, as_viewer: str | None, as_json: bool) -> None:
    """Whom to ask: the teams and contacts behind the entries, by organisation, with their themes, projects
    and failed experiments. QUERY keeps those whose name, contact, organisation or themes hold every word.
    An anonymous entry never names its team here.

    \b
    Example:
      python -m kb people "data sharing" --as "Home Affairs Department"
    """
    from kb.directory import by_organisation, directory

    kb = ctx.kb
    teams = directory(kb, viewer_for(as_viewer), query=query)
    if as_json:
        echo_json([asdict(t) for t in teams])
        return
    if not teams:
        click.echo("No team matches." if query.strip() else "No entry names its team or contact yet.")
        return
    for organisation, members in by_organisation(teams).items():
        click.secho(organisation, bold=True)
        for team in members:
            contacts = f" <{', '.join(team.contacts)}>" if team.contacts else ""
            click.echo(f"  {team.name}{contacts}")
            if team.themes:
                click.echo(f"    themes: {', '.join(kb.vocabulary.label(t) for t in team.themes)}")
            for work in team.projects:
                click.echo(f"    project: {work.title}{_when(work)} [{work.entry_id}]")
            for work in team.failed:
                click.echo(f"    failed experiment: {work.title}{_when(work)} [{work.entry_id}]")


@cli.command()
@click.argument("name")
@as_option
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON.")
@pass_ctx
@handle_errors
def organisation(ctx: Context, name: str, as_viewer: str | None, as_json: bool) -> None:
    """One organisation: its entries, lighthouses and teams, the organisations it worked with (partners on an
    entry, either way, and reuse) and what it reused. Exits 1 for an organisation no entry you can see names.

    \b
    Example:
      python -m kb organisation "Cabinet Digital Office"
    """
    from kb.directory import organisation as organisation_page

    page = organisation_page(ctx.kb, name, viewer_for(as_viewer))
    if as_json:
        echo_json(asdict(page))
        return
    click.secho(page.name, bold=True)
    sections = [
        ("Entries", [f"{w.title}{_when(w)} [{w.entry_id}]" for w in page.entries]),
        ("Lighthouse projects", [f"{w.title} [{w.entry_id}]" for w in page.lighthouses]),
        ("Took part as a partner", [f"{w.title} ({w.organisation}) [{w.entry_id}]" for w in page.partnered]),
        ("Teams", [t.name for t in page.teams]),
        (
            "Worked with",
            [
                f"{p.name}: partners on {len(p.partnered)}, reused {len(p.reused)} of its lighthouses, "
                f"reused {len(p.reused_by)} from here"
                for p in page.worked_with
            ],
        ),
        (
            "What it reused",
            [f"{r.lighthouse.title} ({r.lighthouse.organisation}) in {r.by.title}" for r in page.reused],
        ),
        (
            "Its lighthouses reused",
            [f"{r.lighthouse.title} by {r.by.organisation} in {r.by.title}" for r in page.reused_by],
        ),
    ]
    for heading, lines in sections:
        if lines:
            click.echo(f"{heading}:")
            for line in lines:
                click.echo(f"  {line}")

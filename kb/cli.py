"""The command line: `python -m kb COMMAND`. Each command reads its input, calls the library, prints.

Domain errors become one line on stderr and exit status 1; `--json` prints machine-readable output.
"""

from __future__ import annotations

import functools
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import click

from kb.config import Settings
from kb.entries import KINDS, OUTCOMES, STATUSES
from kb.errors import KBError, Problem
from kb.filters import Filters
from kb.search import MODES


class Context:
    """Settings from the environment and global flags; the knowledge base is opened on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._kb = None

    @property
    def kb(self):
        if self._kb is None:
            from kb.knowledge import KnowledgeBase  # imported late: `--help` stays instant

            self._kb = KnowledgeBase(self.settings)
        return self._kb


def handle_errors(func):
    """Turn the project's errors (and a few everyday ones) into one clear line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KBError as exc:  # the operator is told where, too
            raise click.ClickException(f"{exc} ({exc.where})" if exc.where else str(exc)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; run the command again to finish") from None
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None

    return wrapper


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_problems(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(f"{problem.severity}: {problem}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--entries", "entries_dir", type=click.Path(path_type=Path), help="Entry folder [KB_ENTRIES_DIR].")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder [KB_INDEX_DIR].")
@click.option("--chroma-url", help="Chroma server URL, e.g. http://127.0.0.1:8000 [KB_CHROMA_URL].")
@click.option("--model", help="sentence-transformers model name or path [KB_MODEL].")
@click.version_option(package_name=None, version=__import__("kb").__version__, prog_name="lighthouse")
@click.pass_context
def cli(ctx: click.Context, entries_dir, index_dir, chroma_url, model) -> None:
    """Lighthouse: search lessons learned and lighthouse projects by meaning.

    \b
    Example:
      python -m kb sync
      python -m kb search "data sharing agreement took too long" --outcome failed
    """
    settings = Settings().override(entries_dir=entries_dir, index_dir=index_dir, chroma_url=chroma_url, model=model)
    ctx.obj = Context(settings)


pass_ctx = click.pass_obj


# ----------------------------------------------------------------------------- indexing


@cli.command()
@click.option("--rebuild", is_flag=True, help="Drop the index and embed every entry again.")
@click.option(
    "--verify", is_flag=True, help="Read every file of the index, even those unchanged since a sync checked them."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
@handle_errors
def sync(ctx: Context, rebuild: bool, verify: bool, as_json: bool) -> None:
    """Index new and changed entries; remove deleted ones from the index.

    \b
    Example:
      python -m kb sync            # only what changed
      python -m kb sync --verify   # and read every index file again (after a disk scare)
      python -m kb sync --rebuild  # everything, from scratch
    """
    from tqdm import tqdm

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="entry", desc="embedding", file=sys.stderr, disable=as_json or total < 20)
        bar.update(done - bar.n)

    report = ctx.kb.sync(rebuild=rebuild, verify=verify, progress=progress)
    if bar is not None:
        bar.close()
    if as_json:
        echo_json(
            {
                "added": report.added,
                "updated": report.updated,
                "removed": report.removed,
                "unchanged": report.unchanged,
                "passages": report.passages,
                "rebuilt": report.rebuilt,
                "seconds": round(report.seconds, 3),
                "problems": [str(p) for p in report.problems],
            }
        )
    else:
        echo_problems(report.problems)
        click.echo(report.summary())


# ----------------------------------------------------------------------------- finding


def as_option(func):
    """`--as ORGANISATION|anonymous`: see the knowledge base as that reader would."""
    return click.option(
        "--as",
        "as_viewer",
        metavar="ORGANISATION",
        help="See only what a signed-in member of this organisation may see ('anonymous': a visitor). "
        "Without it the operator sees everything.",
    )(func)


def viewer_for(as_viewer: str | None):
    """The reader `--as` names (None: the operator). A blank name is refused, never taken as someone
    signed in with no organisation."""
    from kb.access import ANONYMOUS, member_of

    if as_viewer is None:
        return None
    return ANONYMOUS if as_viewer.strip().lower() == "anonymous" else member_of(as_viewer)


def filter_options(func):
    """The facet filters shared by `search` (and anything else that filters)."""
    options = [
        click.option("--organisation", multiple=True, help="Only this organisation (repeatable)."),
        click.option("--theme", multiple=True, help="Only this theme id (repeatable)."),
        click.option("--kind", multiple=True, type=click.Choice(KINDS)),
        click.option("--outcome", multiple=True, type=click.Choice(OUTCOMES)),
        click.option("--status", multiple=True, type=click.Choice(STATUSES)),
        click.option("--lighthouse", is_flag=True, default=None, help="Only lighthouse projects."),
        click.option("--year-from", type=int, help="Started in or after this year."),
        click.option("--year-to", type=int, help="Started in or before this year."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def api_options(func):
    """`--api URL` and `--token`: ask a running Lighthouse API instead of opening the index here."""
    func = click.option(
        "--token", envvar="KB_API_TOKEN", help="With --api: a personal token, to search as its person (KB_API_TOKEN)."
    )(func)
    return click.option(
        "--api",
        "api_url",
        envvar="KB_CLI_API_URL",
        metavar="URL",
        help="Ask the Lighthouse API at URL (KB_CLI_API_URL): answers in a fraction of a second, as the model and the "
        "index are loaded there already.",
    )(func)


def remote(api_url: str, token: str | None, as_viewer: str | None):
    from kb.remote import RemoteKnowledgeBase

    if as_viewer is not None:
        raise click.UsageError("--as reads a local index; through --api the token says who is asking")
    return RemoteKnowledgeBase(api_url, token)


def echo_passage(label: str, text: str, limit: int, indent: str) -> None:
    """A labelled passage, shortened to `limit` characters and wrapped to the terminal's width."""
    body = textwrap.shorten(" ".join(text.split()), limit, placeholder=" …")
    click.echo(textwrap.indent(textwrap.fill(f"{label} {body}", 96), indent))


def print_hits(hits, query: str) -> None:
    if not hits:
        click.echo("No entries found. Try fewer words, another phrasing, or fewer filters.")
        return
    for n, hit in enumerate(hits, start=1):
        year = f", {hit.year}" if hit.year else ""
        click.secho(f"{n}. {hit.title}", bold=True)
        click.echo(f"   {hit.id} · {hit.kind} · {hit.outcome} · {hit.organisation}{year} · score {hit.score:.3f}")
        echo_passage(f"[{hit.section}]", hit.passage, 300, "   ")


@cli.command()
@click.argument("query", required=False)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A project plan (text or Markdown): find prior lessons for each part of it.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    help="How many entries: 10 for a query; with --plan, lessons for each part of the plan (3).",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="hybrid",
    show_default=True,
    help="Keyword (bm25), meaning (dense) or both fused (hybrid).",
)
@filter_options
@as_option
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of hits.")
@pass_ctx
@handle_errors
def search(
    ctx: Context,
    query: str | None,
    plan_file: Path | None,
    limit: int | None,
    mode: str,
    as_viewer: str | None,
    api_url: str | None,
    token: str | None,
    as_json: bool,
    **facets,
) -> None:
    """Find entries by meaning and keywords; quote a phrase to require it.

    \b
    Example:
      python -m kb search "legacy system blocked the data share" --limit 5
      python -m kb search DSA --outcome failed --outcome stopped --json
      python -m kb search --plan our-project-plan.md
      python -m kb search "data sharing" --api http://127.0.0.1:8080
    """
    if (query is None) == (plan_file is None):
        raise click.UsageError("give either a QUERY or --plan FILE")
    if plan_file is not None:
        if api_url:
            raise click.UsageError("--plan searches the local index; leave out --api (or unset KB_CLI_API_URL)")
        print_plan(ctx, plan_file, limit, mode, as_json, Filters.of(**facets), viewer_for(as_viewer))
        return
    assert query is not None
    if api_url:
        hits = remote(api_url, token, as_viewer).search(
            query, limit=limit or 10, mode=mode, filters=Filters.of(**facets)
        )
    else:
        hits = ctx.kb.search(
            query, limit=limit or 10, mode=mode, filters=Filters.of(**facets), viewer=viewer_for(as_viewer)
        )
    if as_json:
        echo_json([h.to_dict() for h in hits])
    else:
        print_hits(hits, query or "")


@handle_errors
def print_plan(
    ctx: Context, plan_file: Path, per_part: int | None, mode: str, as_json: bool, filters: Filters, viewer=None
) -> None:
    from kb.plan import PER_PART, plan_search, plan_summary

    try:
        text = plan_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KBError(f"{plan_file} is not UTF-8 text; save the plan as plain text or Markdown") from None
    result = plan_search(ctx.kb, text, per_part=per_part or PER_PART, mode=mode, filters=filters, viewer=viewer)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(plan_summary(len(result.parts), result.count))
    for part in result.parts:
        click.secho(f"\nPart {part.number}: {part.text}", bold=True, underline=True)
        if not part.matches:
            click.echo("  No prior lessons found for this part.")
        for match in part.matches:
            hit = match.hit
            click.secho(f"- {hit.title}", bold=True)
            click.echo(f"  {hit.id} · {hit.outcome} · {hit.organisation}")
            echo_passage(f"their [{hit.section}]:", hit.passage, 220, "  ")


@cli.command()
@click.argument("entry_id")
@click.option("--limit", default=5, show_default=True, type=click.IntRange(1, 100))
@as_option
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of similar entries.")
@pass_ctx
@handle_errors
def similar(
    ctx: Context,
    entry_id: str,
    limit: int,
    as_viewer: str | None,
    api_url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Entries most like this one, with the passages that link them.

    \b
    Example:
      python -m kb similar benefits-and-housing-data-sharing-pilot --limit 3
      python -m kb similar benefits-and-housing-data-sharing-pilot --api http://127.0.0.1:8080
    """
    if api_url:
        hits = remote(api_url, token, as_viewer).similar(entry_id, limit=limit)
    else:
        hits = ctx.kb.similar(entry_id, limit=limit, viewer=viewer_for(as_viewer))
    if as_json:
        echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        click.echo("No similar entries yet.")
    for n, hit in enumerate(hits, start=1):
        click.secho(f"{n}. {hit.title}", bold=True)
        themes = f" · shared themes: {', '.join(hit.shared_themes)}" if hit.shared_themes else ""
        click.echo(f"   {hit.id} · {hit.outcome} · {hit.organisation} · similarity {hit.score:.2f}{themes}")
        echo_passage(f"this [{hit.source_section}]:", hit.source_passage, 160, "   ")
        echo_passage(f"that [{hit.section}]:", hit.passage, 160, "   ")


@cli.command()
@click.argument("entry_id")
@as_option
@click.option("--json", "as_json", is_flag=True, help="Print the entry's fields and sections as JSON.")
@pass_ctx
@handle_errors
def show(ctx: Context, entry_id: str, as_viewer: str | None, as_json: bool) -> None:
    """Print one entry.

    \b
    Example:
      python -m kb show benefits-and-housing-data-sharing-pilot --json
    """
    from kb.entry_files import render_entry

    viewer = viewer_for(as_viewer)
    shown = ctx.kb.show(entry_id, viewer=viewer)
    if as_json:
        echo_json(shown.entry.to_dict() | ({"withheld": list(shown.withheld)} if viewer is not None else {}))
    else:
        click.echo(render_entry(shown.entry))


# ----------------------------------------------------------------------------- writing


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
@handle_errors
def add(ctx: Context, file: Path) -> None:
    """Validate a Markdown entry file, copy it in under a safe id and index it.

    \b
    Example:
      python -m kb add ~/drafts/our-pilot.md
    """
    entry = ctx.kb.add_file(file)
    click.echo(f"added {entry.id} ({ctx.kb.store.path_for(entry.id)})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@pass_ctx
@handle_errors
def check(ctx: Context, as_json: bool) -> None:
    """Validate every entry file; exit 1 and name each problem if there is any.

    \b
    Example:
      python -m kb check
    """
    problems = ctx.kb.check()
    files = len(ctx.kb.store.files())
    if as_json:
        echo_json({"files": files, "problems": [p.__dict__ for p in problems]})
    else:
        echo_problems(problems)
        click.echo(f"{files} entry files checked, {len(problems)} problem(s).")
    if problems:
        sys.exit(1)


from kb import cli_exchange, cli_notes, cli_overview, cli_people, cli_searches, cli_vocabulary, cli_web  # noqa: E402, F401  (register import and export, note, stats, glossary and themes, people and organisation, searches, vocabulary; app, serve, token and digest on `cli`)


def main(prog_name: str = "lighthouse") -> None:
    """The `lighthouse` command (`python -m kb` runs the same commands)."""
    cli(prog_name=prog_name)

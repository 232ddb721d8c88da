"""The command line's exchange with registers: `import` (a spreadsheet or JSONL register, through a
column mapping, then indexed) and `export` (every valid entry, as a reader would see them with `--as`,
to CSV, Excel or JSONL, which imports back to the same entries). It registers on `kb.cli.cli`, which
imports this module last."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from kb.cli import Context, as_option, cli, echo_problems, handle_errors, pass_ctx, sync, viewer_for


@cli.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML column mapping (default: Lighthouse's own export columns).",
)
@click.option("--dry-run", is_flag=True, help="Validate every row and report; write nothing.")
@click.option("--no-index", is_flag=True, help="Write the entry files but do not embed them now.")
@pass_ctx
@handle_errors
def import_(ctx: Context, file: Path, mapping: Path | None, dry_run: bool, no_index: bool) -> None:
    """Import a spreadsheet register (CSV, Excel .xlsx or JSONL) through a column mapping.

    Prints each problem by row, then a summary line. Exits with status 1 when any row is refused
    (dry run or not), and 0 when every row was created, updated or unchanged, warnings or not.

    \b
    Example:
      python -m kb import llis.xlsx --mapping mappings/nasa-llis.yaml --dry-run
      python -m kb import export.csv
    """
    from kb.importer import import_table, load_mapping

    report = import_table(ctx.kb.store, file, load_mapping(mapping), vocabulary=ctx.kb.vocabulary, dry_run=dry_run)
    not_indexed = ""
    if not dry_run and not no_index and (report.created or report.updated):
        try:  # indexed before the report is printed, so that the summary ends the output
            click.get_current_context().invoke(sync, rebuild=False, as_json=False)
        except click.ClickException as exc:
            not_indexed = f"the entries are written but not indexed ({exc.format_message()}); run `python -m kb sync`"
        except Exception as exc:  # the rows are written: the report must still be printed
            logging.getLogger("lighthouse.cli").warning("indexing after an import failed", exc_info=True)
            not_indexed = f"the entries are written but not indexed ({exc.__class__.__name__}); run `python -m kb sync`"
    echo_problems(report.problems)
    if not_indexed:
        click.echo(f"error: {not_indexed}", err=True)
    click.echo(("dry run: " if dry_run else "") + report.summary())
    if report.errors or not_indexed:
        sys.exit(1)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "jsonl"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Output file (default: stdout).")
@as_option
@pass_ctx
@handle_errors
def export(ctx: Context, fmt: str, out: Path | None, as_viewer: str | None) -> None:
    """Export every valid entry to CSV, Excel or JSONL (imports back to the same entries).

    \b
    Example:
      python -m kb export --format jsonl --out lessons.jsonl
      python -m kb export --format xlsx --out lessons.xlsx --as "Home Affairs Department"
    """
    from kb.exporter import export_entries

    viewer = viewer_for(as_viewer)
    shown, problems = ctx.kb.readable(viewer)
    if viewer is None:
        echo_problems([p for p in problems if p.severity == "error"])
    entries = [s.entry for s in shown]
    # A reader's export says what it withheld, so importing it back never blanks a stored value.
    withheld = {s.entry.id: s.withheld for s in shown} if viewer is not None else None
    if out is None:
        export_entries(entries, fmt, sys.stdout, withheld=withheld)
    else:
        count = export_entries(entries, fmt, out, withheld=withheld)
        view = " (as that reader sees them: withheld fields are named in the withheld column)" if withheld else ""
        click.echo(f"exported {count} entries to {out}{view}", err=True)

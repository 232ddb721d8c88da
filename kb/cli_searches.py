"""The command line's view of what people look for: `searches` (the search log's top searches, or those
that found nothing close). It registers on `kb.cli.cli`, which imports this module last."""

from __future__ import annotations

import click

from kb.cli import Context, cli, echo_json, handle_errors, pass_ctx


@cli.command()
@click.option("--days", type=click.IntRange(1, 36_500), default=30, show_default=True, help="Look back this many days.")
@click.option("--no-match", is_flag=True, help="Only searches that found no close match: write-ups people need.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="At most this many.")
@click.option("--prune", is_flag=True, help="Only delete the counts older than KB_SEARCH_LOG_DAYS (0: all of them).")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@pass_ctx
@handle_errors
def searches(ctx: Context, days: int, no_match: bool, limit: int, prune: bool, as_json: bool) -> None:
    """What people searched for, most searched first: anonymous counts, kept KB_SEARCH_LOG_DAYS days.

    \b
    Example:
      python -m kb searches --days 7
      python -m kb searches --no-match          # searches that found nothing close
      KB_SEARCH_LOG_DAYS=0 python -m kb searches --prune   # delete every count
    """
    from kb.searchlog import search_log

    log = search_log(ctx.settings)
    if prune:
        removed = log.prune()
        kept = f"kept {log.days} days" if log.days else "the search log is off"
        click.echo(f"deleted {removed} day counts ({kept})")
        return
    found = log.searches(days=days, unmatched=no_match, limit=limit)
    if as_json:
        echo_json(
            [
                {
                    "query": s.query,
                    "searches": s.searches,
                    "results": s.results,
                    "close_match": s.close_match,
                    "last_day": s.last_day.isoformat(),
                }
                for s in found
            ]
        )
        return
    if not found:
        off = " (the search log is off: KB_SEARCH_LOG_DAYS=0)" if log.days == 0 else ""
        click.echo(f"no searches in the last {days} days{off}")
        return
    for s in found:
        close = "close match" if s.close_match else "no close match"
        click.echo(f"{s.searches:6d}  {s.query}  ({s.results} results, {close}, last {s.last_day.isoformat()})")

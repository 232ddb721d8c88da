"""The command line's evidence-note commands: `note add`, `note list`, `note edit`, `note history` and
`note withdraw`. They register on
`kb.cli.cli`, which imports this module last; each reads its input, calls the library and prints."""

from __future__ import annotations

import click

from kb import evidence
from kb.cli import Context, as_option, cli, echo_json, handle_errors, pass_ctx, viewer_for


@cli.group()
def note() -> None:
    """Evidence notes ("we hit this too") on an entry: add, list, edit, see its history, withdraw.

    \b
    Example:
      python -m kb note add flood-response-data-cell --organisation "Northfield City Council" --year 2021 \\
        --text "Our flood cell had the same late data from councils."
      python -m kb note list flood-response-data-cell
      python -m kb note edit flood-response-data-cell 20261203-4fa91c --year 2022
      python -m kb note history flood-response-data-cell 20261203-4fa91c
      python -m kb note withdraw flood-response-data-cell 20261203-4fa91c
    """


@note.command(name="add")
@click.argument("entry_id")
@click.option("--text", required=True, help="What happened to you, in a sentence or two.")
@click.option("--organisation", required=True, help="Your organisation.")
@click.option("--year", required=True, help="The year it happened, e.g. 2021.")
@click.option("--link", default="", help="An optional http(s) link to more.")
@click.option("--anonymous", is_flag=True, help="Hide your organisation and name from readers.")
@click.option("--author", default="", help="Your name, kept with the note (never shown to readers if anonymous).")
@pass_ctx
@handle_errors
def note_add(
    ctx: Context, entry_id: str, text: str, organisation: str, year: str, link: str, anonymous: bool, author: str
) -> None:
    """Add an evidence note to an entry (the entry's own file is not changed) and index it.

    \b
    Example:
      python -m kb note add flood-response-data-cell --organisation "Northfield City Council" --year 2021 \\
        --text "Our flood cell had the same late data from councils." --anonymous
    """
    from kb.identity import CONTRIBUTOR, User

    viewer = User(author, organisation, (CONTRIBUTOR,), local=True) if author.strip() else None
    added = evidence.add_note(
        ctx.kb, entry_id, text=text, year=year, organisation=organisation, link=link, anonymous=anonymous, viewer=viewer
    )
    if viewer is not None:  # written in the author's name: the operator still sees everything
        added = ctx.kb.note_store.get(entry_id, added.id)
    click.echo(f"added note {added.id} to {entry_id}")


@note.command(name="list")
@click.argument("entry_id")
@as_option
@click.option("--json", "as_json", is_flag=True, help="Print the notes and the recurrence as JSON.")
@pass_ctx
@handle_errors
def note_list(ctx: Context, entry_id: str, as_viewer: str | None, as_json: bool) -> None:
    """List an entry's evidence notes, oldest first, and how often its lesson was met.

    \b
    Example:
      python -m kb note list flood-response-data-cell --as anonymous --json
    """
    viewer = viewer_for(as_viewer)
    notes = evidence.notes(ctx.kb, entry_id, viewer=viewer)
    seen = evidence.recurrence(ctx.kb, entry_id, viewer=viewer)
    if as_json:
        echo_json(
            {
                "recurrence": {"organisations": seen.organisations, "since": seen.since, "text": str(seen)},
                "notes": [n.to_dict() for n in notes],
            }
        )
        return
    click.echo(f"{entry_id}: {seen} ({len(notes)} {'note' if len(notes) == 1 else 'notes'})")
    for n in notes:
        who = "anonymous" if n.anonymous and not n.organisation else n.organisation
        who += " (anonymous)" if n.anonymous and n.organisation else ""
        click.echo(f"\n{n.id} · {who}, {n.year}" + (f" · {n.link}" if n.link else ""))
        click.echo(f"  {n.text}")


@note.command(name="withdraw")
@click.argument("entry_id")
@click.argument("note_id")
@pass_ctx
@handle_errors
def note_withdraw(ctx: Context, entry_id: str, note_id: str) -> None:
    """Withdraw a note: it is no longer shown nor searched; its last version stays in its history.

    \b
    Example:
      python -m kb note withdraw flood-response-data-cell 20261203-4fa91c
    """
    evidence.withdraw_note(ctx.kb, entry_id, note_id)
    click.echo(f"withdrew note {note_id} from {entry_id}")


@note.command(name="edit")
@click.argument("entry_id")
@click.argument("note_id")
@click.option("--text", default=None, help="What happened, in place of the note's text.")
@click.option("--year", default=None, help="The year it happened, e.g. 2021.")
@click.option("--link", default=None, help="An http(s) link to more; an empty value removes it.")
@click.option("--anonymous/--named", default=None, help="Hide (or show) the organisation and name to readers.")
@pass_ctx
@handle_errors
def note_edit(
    ctx: Context,
    entry_id: str,
    note_id: str,
    text: str | None,
    year: str | None,
    link: str | None,
    anonymous: bool | None,
) -> None:
    """Change a note: only the options given change; the version it replaces stays in its history.

    \b
    Example:
      python -m kb note edit flood-response-data-cell 20261203-4fa91c --year 2022 --link ""
    """
    if text is None and year is None and link is None and anonymous is None:
        raise click.UsageError("say what to change: --text, --year, --link, --anonymous or --named")
    evidence.edit_note(ctx.kb, entry_id, note_id, text=text, year=year, link=link, anonymous=anonymous)
    click.echo(f"changed note {note_id} on {entry_id}")


@note.command(name="history")
@click.argument("entry_id")
@click.argument("note_id")
@as_option
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@pass_ctx
@handle_errors
def note_history(ctx: Context, entry_id: str, note_id: str, as_viewer: str | None, as_json: bool) -> None:
    """A note's earlier versions, newest first (a withdrawn note's last version among them).

    \b
    Example:
      python -m kb note history flood-response-data-cell 20261203-4fa91c --as anonymous
    """
    versions = evidence.note_history(ctx.kb, entry_id, note_id, viewer=viewer_for(as_viewer))
    if as_json:
        echo_json([{"replaced": v.replaced, "note": v.note.to_dict()} for v in versions])
        return
    if not versions:
        click.echo(f"note {note_id} has not been changed")
    for v in versions:
        who = v.note.organisation or "anonymous"
        click.echo(f"replaced {v.replaced} · {who}, {v.note.year}" + (f" · {v.note.link}" if v.note.link else ""))
        click.echo(f"  {v.note.text}")

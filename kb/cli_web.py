"""The command line's web commands: `app` (the Streamlit app), `serve` (the HTTP API) and `token` (the
API's personal tokens). They register on `kb.cli.cli`, which imports this module last; like every
other command, each reads its input, calls the library and prints."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from kb.cli import Context, cli, echo_json, handle_errors, pass_ctx

# ----------------------------------------------------------------------------- the web app and the HTTP API

CHECKOUT_APP = Path(__file__).resolve().parent.parent / "app.py"  # the web app, beside kb/ in a checkout
PACKAGED_APP = Path(__file__).resolve().parent / "webapp" / "app.py"  # the copy a wheel carries (setup.py)


def streamlit_flags(config: Path, *, own: tuple[Path, ...] = ()) -> list[str]:
    """The app's own Streamlit settings (its .streamlit/config.toml) as `streamlit run` flags, for a run
    whose working folder is the user's own, where Streamlit would not find that file. A setting the
    user's own config files (`own`) make is left to them: flags would outrank their files."""
    import tomllib

    def read(path: Path) -> dict:
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            return {}

    theirs = {(section, name) for path in own for section, values in read(path).items() for name in values}
    flags: list[str] = []
    for section, values in read(config).items():
        for name, value in values.items():
            if (section, name) in theirs:
                continue
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{name}", shown]
    return flags


@cli.command(name="app", context_settings={"ignore_unknown_options": True})
@click.argument("streamlit_options", nargs=-1, type=click.UNPROCESSED)
def app_command(streamlit_options: tuple[str, ...]) -> None:
    """Start the web app on http://127.0.0.1:8501 (Streamlit); other options go to `streamlit run`.

    From a checkout it runs there, with the checkout's entries; installed from a wheel it runs in the
    current folder (./entries, ./.lighthouse-index, or KB_ENTRIES_DIR and KB_INDEX_DIR).

    \b
    Example:
      lighthouse app
      lighthouse app --server.port 8600
    """
    if CHECKOUT_APP.is_file() and (CHECKOUT_APP.parent / "app_pages" / "ui.py").is_file():
        # From the checkout, so that its .streamlit/config.toml (local address, theme) applies.
        os.chdir(CHECKOUT_APP.parent)
        _run_in_place([sys.executable, "-m", "streamlit", "run", str(CHECKOUT_APP), *streamlit_options])
    if not PACKAGED_APP.is_file():
        raise click.ClickException("this installation holds no web app; reinstall Lighthouse from its wheel")
    users_own = (Path(".streamlit/config.toml"), Path("~/.streamlit/config.toml").expanduser())
    flags = streamlit_flags(PACKAGED_APP.parent / ".streamlit" / "config.toml", own=users_own)
    _run_in_place([sys.executable, "-m", "streamlit", "run", str(PACKAGED_APP), *flags, *streamlit_options])


def _run_in_place(command: list[str]) -> NoReturn:
    """Become the command where the system can (POSIX): a stop meant for `lighthouse app` (a service
    manager's, `kill`) then reaches the app itself, where a child would be left running, serving its
    port. Elsewhere, run it and exit with its code."""
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(command[0], command)
    import subprocess

    sys.exit(subprocess.run(command).returncode)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@pass_ctx
@handle_errors
def serve(ctx: Context, host: str, port: int) -> None:
    """Serve the HTTP API (OpenAPI at /docs); callers send a personal token, or are anonymous visitors.

    Where the app signs people in (the [auth] section of .streamlit/secrets.toml, or KB_OIDC_METADATA_URL
    and KB_OIDC_AUDIENCE), callers may also send a token from that provider.

    \b
    Example:
      python -m kb serve --port 8080
      curl -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:8080/search?q=data+sharing"
    """
    import uvicorn  # imported here: the other commands start without the web stack

    from kb.api import create_app
    from kb.api.feeds import HideFeedSecrets
    from kb.oidc import BearerVerifier, ProviderSettings
    from kb.signin import load_access
    from kb.tokens import TokenStore

    provider = ProviderSettings.from_environment()
    verifier = BearerVerifier(provider, load_access) if provider else None  # access.yaml read as it is now
    if provider:
        click.echo(f"Tokens from the sign-in provider at {provider.metadata_url} are accepted.", err=True)
    app = create_app(ctx.kb, TokenStore(ctx.settings.tokens_path), provider=verifier)
    config = uvicorn.Config(app, host=host, port=port, log_level="info")  # sets up uvicorn's logging
    logging.getLogger("uvicorn.access").addFilter(HideFeedSecrets())  # feed addresses carry a secret
    uvicorn.Server(config).run()


@cli.group()
def token() -> None:
    """Create, list and revoke the personal tokens that callers of the HTTP API send.

    \b
    Example:
      python -m kb token create --name "Rita Reviewer" --organisation "Beta Agency" --roles contributor,reviewer
      python -m kb token list
      python -m kb token revoke "Rita Reviewer"
    """


def token_store(ctx: Context):
    from kb.tokens import TokenStore

    return TokenStore(ctx.settings.tokens_path)


@token.command(name="create")
@click.option("--name", required=True, help="The person's name: saved as the author of what they write.")
@click.option("--organisation", default="", help="The organisation they belong to.")
@click.option(
    "--roles", default="contributor", show_default=True, help="Comma-separated: contributor, reviewer, curator, admin."
)
@pass_ctx
@handle_errors
def token_create(ctx: Context, name: str, organisation: str, roles: str) -> None:
    """Make a token for one person and print it once (only its hash is kept).

    \b
    Example:
      python -m kb token create --name "Rita Reviewer" --organisation "Beta Agency" --roles contributor,reviewer
    """
    secret, record = token_store(ctx).create(name, organisation=organisation, roles=roles)
    click.echo(secret)
    roles_text = ", ".join(record.roles) or "no roles"
    click.echo(
        f"token for {record.name} ({record.organisation or 'no organisation'}; {roles_text}): "
        "shown once, keep it secret",
        err=True,
    )


@token.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the tokens' owners as JSON.")
@pass_ctx
@handle_errors
def token_list(ctx: Context, as_json: bool) -> None:
    """List who has a token, with their organisation and roles (never the tokens).

    \b
    Example:
      python -m kb token list
    """
    records = token_store(ctx).records()
    if as_json:
        echo_json(
            [
                {"name": r.name, "organisation": r.organisation, "roles": list(r.roles), "created": r.created}
                for r in records
            ]
        )
        return
    if not records:
        click.echo("No tokens yet: `python -m kb token create --name NAME` makes one.")
    for r in records:
        click.echo(
            f"{r.name} · {r.organisation or '(no organisation)'} · {', '.join(r.roles) or '(no roles)'} · "
            f"created {r.created}"
        )


@token.command(name="revoke")
@click.argument("name")
@pass_ctx
@handle_errors
def token_revoke(ctx: Context, name: str) -> None:
    """Revoke a person's token: it is refused from its next use.

    \b
    Example:
      python -m kb token revoke "Rita Reviewer"
    """
    record = token_store(ctx).revoke(name)
    click.echo(f"revoked the token of {record.name}")


# ----------------------------------------------------------------------------- digests


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print what would be sent to whom; send and record nothing.")
@click.option(
    "--now",
    "now_text",
    metavar="TIME",
    help="Run as if it were this time (ISO 8601, UTC unless it says), e.g. 2026-01-05T07:00. With --dry-run to try "
    "things out: a real run at a later time starts each person's next period there.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@pass_ctx
@handle_errors
def digest(ctx: Context, dry_run: bool, now_text: str | None, as_json: bool) -> None:
    """E-mail each person whose digest is due (daily or weekly) what is new in what they follow.

    Mail goes through the SMTP server KB_SMTP_HOST names (docs in the README); a digest that fails is
    tried again at the next run, and a digest that was sent is never sent again. Run it from cron.

    \b
    Example:
      python -m kb digest --dry-run
      python -m kb digest
    """
    import datetime as dt

    from kb.config import MailSettings
    from kb.database import open_database
    from kb.digest import send_digests
    from kb.errors import KBError

    now = None
    if now_text:
        try:
            now = dt.datetime.fromisoformat(now_text)
        except ValueError:
            raise KBError(f"--now: '{now_text}' is not a time; write it as 2026-01-05T07:00") from None
        now = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
    results = send_digests(ctx.kb, open_database(ctx.settings), MailSettings(), now=now, dry_run=dry_run)
    if as_json:
        echo_json(
            [
                {
                    "email": r.email,
                    "status": r.status,
                    "items": [{"kind": i.kind, "entry": i.entry_id, "title": i.title} for i in r.items],
                    "attempts": r.attempts,
                    "error": r.error,
                    "message_id": r.message_id,
                }
                for r in results
            ]
        )
    else:
        for r in results:
            line = f"{r.email}: {r.status}"
            if r.items:
                line += f" ({len(r.items)} new)"
            if r.error:
                line += f"; {r.error}"
            click.echo(line)
            if dry_run:
                for item in r.items:
                    click.echo(
                        f"  {item.kind}: {item.title} ({item.entry_id}){' ' + item.detail if item.detail else ''}"
                    )
        if not results:
            click.echo("Nobody follows anything yet, or nobody wants a digest.")
    if any(r.status == "failed" for r in results):
        sys.exit(1)

"""Run several CLI commands in one process and print what each gave: its stdout, exit code and stderr.

    python -m tests.damage_driver '[["search", "data sharing agreement", "--json"], ["stats", "--json"]]'

One process for several commands, as an app serves several requests: what the first leaves behind
(a rebuilt keyword index, Chroma's cached client) is what the next one meets. A command that raises
something other than a ClickException gets its traceback printed in its stderr and the next command
still runs, so one run shows how every command fared.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import traceback
from dataclasses import dataclass

import click

from kb.cli import cli

MARK = "=== damage-driver {} ==="
FIELDS = ("command", "stdout", "exit", "stderr")


@dataclass(frozen=True)
class Outcome:
    command: list[str]
    stdout: str
    exit_code: int
    stderr: str


def run(args: list[str]) -> Outcome:
    """One command as `python -m kb` runs it: a ClickException becomes "Error: message" on stderr and its
    exit code, exactly as click's standalone mode does."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            returned = cli.main(args, prog_name="python -m kb", standalone_mode=False)
            code = returned if isinstance(returned, int) else 0
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except KeyboardInterrupt:
            raise
        except BaseException:  # a Rust panic surfaces as a BaseException: shown like any traceback
            traceback.print_exc()
            code = 1
    return Outcome(args, out.getvalue(), code, err.getvalue())


def render(outcome: Outcome) -> str:
    values = (json.dumps(outcome.command), outcome.stdout, str(outcome.exit_code), outcome.stderr)
    return "".join(
        f"{MARK.format(name)}\n{value.rstrip(chr(10))}\n" for name, value in zip(FIELDS, values, strict=True)
    )


def parse(output: str) -> list[Outcome]:
    """The outcomes in a driver's output, as many as it finished (a process killed half way prints fewer)."""
    pattern = re.compile("^" + re.escape(MARK).replace(r"\{\}", "(\\w+)") + "$\n?", re.M)
    parts = pattern.split(output)[1:]  # name, value, name, value, ...
    outcomes, fields = [], {}
    for name, value in zip(parts[::2], parts[1::2], strict=True):
        fields[name] = value.removesuffix("\n")
        if name == "stderr" and set(fields) == set(FIELDS):
            outcomes.append(
                Outcome(json.loads(fields["command"]), fields["stdout"], int(fields["exit"]), fields["stderr"])
            )
            fields = {}
    return outcomes


def main() -> None:
    for args in json.loads(sys.argv[1]):
        print(render(run(args)), end="", flush=True)  # flushed: a process killed later keeps what it printed


if __name__ == "__main__":
    main()

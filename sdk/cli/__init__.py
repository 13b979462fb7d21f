"""The ``shelfwise`` command line: the Python API's nouns and verbs, for operators (click).

One root group holds every command; each module here holds one group of them (shopper,
catalog, scan, offers, orders, notifications, recommender experiments, sync, model). Every
command has ``--help`` with an example and a
``--json`` flag; every failure is one ``error: ...`` line on stderr and an exit code from
the one table in ``shelfwise.cli.exit_codes``.

Example:
    >>> from shelfwise.cli import main
    >>> main(["inspect", "/no/such/bundle"])
    2
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

import click

from .. import ShelfwiseError, __version__
from . import catalog, experiments, model, notifications, offers, orders, scan, shopper, sync
from .exit_codes import HELP_TABLE, ExitCode
from .output import command_logging, one_line, report_error, show_log_lines, silence_stdout

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ShelfwiseGroup(click.Group):
    """The root group: turns every failure into one line and a code from the exit table."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order registered (runtime first, back office last)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:  # ``shelfwise --help | head -1``: the help is printed while parsing
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:
            silence_stdout()
            raise click.exceptions.Exit(ExitCode.OK) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # click's own: main() reports them
        except BrokenPipeError:
            # The reader went away (``| head``): what it read is all it wanted.
            silence_stdout()
            raise click.exceptions.Exit(ExitCode.OK) from None
        except Exception as exc:
            if os.environ.get("SHELFWISE_DEBUG"):
                raise
            internal = not _expected(exc)
            raise click.exceptions.Exit(report_error(exc, ctx.meta, internal=internal)) from exc

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; returns its exit code (``standalone_mode=False``) or exits."""
        try:
            with command_logging():
                result = super().main(
                    args, prog_name or "shelfwise", complete_var, standalone_mode=False, **extra
                )
            code = result if isinstance(result, int) else ExitCode.OK
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
            code = exc.exit_code
        except click.ClickException as exc:
            click.echo(f"error: {one_line(exc.format_message())}", err=True)
            code = exc.exit_code
        except click.Abort:
            click.echo("error: aborted", err=True)
            code = ExitCode.ERROR
        if standalone_mode:
            sys.exit(int(code))
        return int(code)


def _expected(exc: BaseException) -> bool:
    """Errors a command may meet on bad input or a bad day (anything else is a bug)."""
    return isinstance(exc, ShelfwiseError | OSError | UnicodeError | sqlite3.Error)


@click.group(cls=ShelfwiseGroup, context_settings=CONTEXT, epilog=HELP_TABLE)
@click.version_option(__version__, "--version", prog_name="shelfwise")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda _ctx, _param, on: show_log_lines() if on else None,
    help="Also print shelfwise's log lines (warnings, progress) on stderr.",
)
def cli() -> None:
    """Private, offline personalization for retail edge devices.

    The commands mirror the Python API (import shelfwise) with the same nouns and verbs.
    Every command has --help with an example, and --json to print JSON on stdout.

    \b
    Example:
      shelfwise recommend --db store.db --bundle bundle/ --history 12,40,7 --limit 5 --json
    """


for _module in (shopper, catalog, scan, offers, orders, notifications, experiments, sync, model):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shelfwise`` command; returns the exit code (see ``--help``).

    Example:
        >>> main(["purge", "--db", "store.db", "--days", "soon"])
        2
    """
    code: int = cli.main(args=argv, prog_name="shelfwise", standalone_mode=False)
    return code


__all__ = ["cli", "main"]

"""The one output helper of the ``shelfwise`` command: ``--json`` for machines, text for people.

Every command takes ``--json`` (a flag: JSON on stdout, nothing else there) and otherwise
prints a short line or a plain table. Errors go to stderr as one line (``error: ...``); with
``--json`` the same error is also printed on stdout as ``{"error": {...}}``.

Example:
    >>> print(dumps({"b": (1, 2), "a": None}))
    {
      "a": null,
      "b": [
        1,
        2
      ]
    }
    >>> print(table([("milk", 1.5)], ["item", "score"]))
    item      score
    ------  -------
    milk        1.5
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from tabulate import tabulate

from .exit_codes import ExitCode, exit_code_for, not_a_store

F = TypeVar("F", bound=Callable[..., Any])

# Keys in click's ``ctx.meta`` (shared by every context of one invocation).
JSON_MODE = "shelfwise.json"
DB_PATH = "shelfwise.db"
INPUT_FILES = "shelfwise.inputs"


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[JSON_MODE] = bool(value)
    return value


def json_flag(help_text: str = "Print JSON on stdout instead of text.") -> Callable[[F], F]:
    """The ``--json`` flag (its value arrives as ``as_json``), with its own help text."""
    return click.option("--json", "as_json", is_flag=True, callback=_remember_json, help=help_text)


json_option = json_flag()  # the ``--json`` flag every command has


def _default(value: Any) -> Any:
    if hasattr(value, "to_dict"):  # the documented JSON shape of our result types
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "dtype") and hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot print {type(value).__name__} as JSON")


def dumps(data: Any) -> str:
    """``data`` as the indented, key-sorted JSON every command prints."""
    return json.dumps(data, indent=2, sort_keys=True, default=_default)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain text table (``tabulate``'s "simple" layout)."""
    return tabulate(list(rows), headers=list(headers), tablefmt="simple", floatfmt="g")


def emit(as_json: bool, data: Any, text: str | Callable[[], str]) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text`` (a string or a function making it)."""
    if as_json:
        click.echo(dumps(data))
    else:
        click.echo(text() if callable(text) else text)


def key_values(data: Mapping[str, Any]) -> str:
    """``key: value`` lines, keys sorted (for small records such as a barcode layout)."""

    def shown(value: Any) -> str:
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return str(value)

    return "\n".join(f"{key}: {shown(value)}" for key, value in sorted(data.items()))


# -- log lines -------------------------------------------------------------------------------


class _StderrLines(logging.Handler):
    """shelfwise's log records as lines on the current stderr (``warning: ...`` above INFO)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            click.echo(one_line(text) if record.levelno >= logging.WARNING else text, err=True)
        except Exception:  # a log line must never break the command
            self.handleError(record)


@contextlib.contextmanager
def command_logging(level: int = logging.ERROR) -> Iterator[None]:
    """While one command runs, shelfwise's log lines at ``level`` and above go to stderr.

    By default only errors: a failure is reported once, as the command's ``error:`` line.
    Everything is put back afterwards (the command may run inside a larger program).
    """
    logger = logging.getLogger("shelfwise")
    saved = logger.level, logger.propagate
    handler = _StderrLines()
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def show_log_lines(level: int = logging.INFO) -> None:
    """Show shelfwise's log lines from ``level`` up for the rest of this command (``-v``; the
    back office's epochs and parity checks are the progress its user watches)."""
    logger = logging.getLogger("shelfwise")
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)


# -- errors ----------------------------------------------------------------------------------


def one_line(text: str) -> str:
    """Collapse a message to one line (YAML and SQLite messages can span several).

    Example:
        >>> one_line("bad offer:\\n  line 3\\n")
        'bad offer: line 3'
    """
    return " ".join(text.split())


def describe(exc: BaseException, meta: Mapping[str, Any]) -> str:
    """The one-line message a user sees for ``exc`` (what was wrong, what to do)."""
    if not_a_store(exc):
        db = meta.get(DB_PATH, "the --db file")
        return f"{db} is not a shelfwise store (not a readable SQLite file): {exc}"
    if isinstance(exc, UnicodeDecodeError):
        inputs = ", ".join(str(p) for p in meta.get(INPUT_FILES, ())) or "an input file"
        return (
            f"{inputs}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "save the file as UTF-8 and try again"
        )
    if isinstance(exc, UnicodeEncodeError):
        return f"an argument is not valid text ({exc.reason}); use UTF-8 characters only"
    if isinstance(exc, OSError) and exc.filename is None:
        return str(exc)  # raised by our code with a message of its own
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {exc.filename}"
    if isinstance(exc, FileExistsError):
        return f"{exc.filename} already exists and is not a folder"
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename} is a folder; give a file"
    if isinstance(exc, NotADirectoryError):
        return f"{exc.filename}: a part of this path is a file, not a folder"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def report_error(exc: BaseException, meta: Mapping[str, Any], *, internal: bool = False) -> int:
    """Print ``exc`` as one line on stderr (and as JSON on stdout with ``--json``); its code."""
    code = ExitCode.ERROR if internal else exit_code_for(exc)
    message = one_line(describe(exc, meta))
    if internal:
        message = (
            f"internal error ({type(exc).__name__}: {message}); please report it "
            "(set SHELFWISE_DEBUG=1 to see the traceback)"
        )
    click.echo(f"error: {message}", err=True)
    if meta.get(JSON_MODE):
        error = {"type": type(exc).__name__, "message": message, "exit_code": int(code)}
        try:
            click.echo(dumps({"error": error}))
        except BrokenPipeError:
            silence_stdout()
    return int(code)


def silence_stdout() -> None:
    """After the reader closed our stdout (``| head``): send the rest nowhere, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file descriptor (tests capture stdout)
        pass


__all__ = [
    "DB_PATH",
    "command_logging",
    "show_log_lines",
    "INPUT_FILES",
    "JSON_MODE",
    "describe",
    "dumps",
    "emit",
    "json_flag",
    "json_option",
    "key_values",
    "one_line",
    "report_error",
    "silence_stdout",
    "table",
]

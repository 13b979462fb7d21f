"""Argument types shared by the ``shelfwise`` commands: checked before anything is opened.

A bad ``--db``, a missing file or an impossible number is refused by click as a usage error
(exit 2, one line) before a command touches the store, so bad input changes nothing.

Example:
    >>> import click
    >>> FINITE.convert("1.5", None, None)
    1.5
    >>> try:
    ...     FINITE.convert("nan", None, None)
    ... except click.BadParameter as exc:
    ...     print(exc.message)
    'nan' is not a finite number.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .._errors import InvalidInput
from ..sync.transport import HttpTransport
from ..webhooks import check_webhook_url
from .output import DB_PATH, INPUT_FILES

F = TypeVar("F", bound=Callable[..., Any])

SQLITE_HEADER = b"SQLite format 3\x00"


class FiniteFloat(click.ParamType):
    """A float that is a real number (``nan`` and ``inf`` are refused), optionally bounded.

    (``click.FloatRange`` lets ``nan`` through: every comparison with it is false.)
    """

    name = "NUMBER"

    def __init__(
        self,
        *,
        min: float | None = None,
        max: float | None = None,
        min_open: bool = False,
        max_open: bool = False,
    ) -> None:
        self.min, self.max = min, max
        self.min_open, self.max_open = min_open, max_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number.", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        if self.min is not None and (number <= self.min if self.min_open else number < self.min):
            bound = "above" if self.min_open else "at least"
            self.fail(f"{value!r} must be {bound} {self.min:g}.", param, ctx)
        if self.max is not None and (number >= self.max if self.max_open else number > self.max):
            bound = "below" if self.max_open else "at most"
            self.fail(f"{value!r} must be {bound} {self.max:g}.", param, ctx)
        return number


FINITE = FiniteFloat()
POSITIVE = FiniteFloat(min=0, min_open=True)
NON_NEGATIVE = FiniteFloat(min=0)
COUNT = click.IntRange(1, 1_000_000)
# Milliseconds since 1970 (UTC) that SQLite and every clock in shelfwise can hold.
EPOCH_MS = click.IntRange(0, 2**53)


def check_store_file(path: str, *, must_exist: bool) -> str | None:
    """Why ``path`` cannot be a shelfwise store, or None when it can (read-only check).

    Example:
        >>> check_store_file("/no/such/folder/store.db", must_exist=False)
        'folder /no/such/folder does not exist'
    """
    if path == ":memory:":
        return None
    file = Path(path)
    if file.is_dir():
        return f"{path} is a folder; give the store file (e.g. {file / 'store.db'})"
    if not file.exists():
        if must_exist:
            return (
                f"no store at {path} (create one with: shelfwise import-catalog --db {path} FILE)"
            )
        if not file.parent.is_dir():
            return f"folder {file.parent} does not exist"
        return None
    try:
        with file.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if not header:
        return None  # an empty file is a new store
    if header != SQLITE_HEADER:
        return f"{path} is not a shelfwise store (not an SQLite file)"
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            ours = "_sqlite_migrations" in tables and bool(
                conn.execute(
                    "SELECT 1 FROM _sqlite_migrations WHERE migration_set = 'shelfwise' LIMIT 1"
                ).fetchall()
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"{path} is not a readable SQLite store: {exc}"
    if tables and not ours:
        return f"{path} is an SQLite database of something else, not a shelfwise store"
    return None


class StorePath(click.ParamType):
    """``--db``: a shelfwise store file (``must_exist=False``: created when missing)."""

    name = "STORE"

    def __init__(self, *, must_exist: bool) -> None:
        self.must_exist = must_exist

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if ctx is not None:
            ctx.meta[DB_PATH] = text
        problem = check_store_file(text, must_exist=self.must_exist)
        if problem:
            self.fail(problem, param, ctx)
        return text


def db_option(*, create: bool = False) -> Callable[[F], F]:
    """The ``--db`` option; ``create=True`` for commands that may start a new store."""
    help_text = "Store file (created when missing)." if create else "Store file (must exist)."
    return click.option(
        "--db", required=True, type=StorePath(must_exist=not create), help=help_text
    )


class PublicKey(click.ParamType):
    """An ed25519 public key written as 64 hex digits (converted to its 32 bytes)."""

    name = "HEX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, bytes):
            return value
        try:
            key = bytes.fromhex(str(value))
        except ValueError:
            self.fail("must be hex digits (an ed25519 public key is 64 of them).", param, ctx)
        if len(key) != 32:
            self.fail(f"must be 32 bytes (64 hex digits), not {len(key)}.", param, ctx)
        return key


class _CheckedUrl(click.ParamType):
    """A URL refused with the words of ``check`` (our ``InvalidInput``, never quoting a
    password), as a one-line usage error."""

    name = "URL"

    def check(self, text: str) -> None:
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        try:
            self.check(text)
        except InvalidInput as exc:
            self.fail(str(exc), param, ctx)
        return text


class CollectorUrl(_CheckedUrl):
    """``http(s)://host[:port][/prefix]`` of a collector, refused exactly as ``HttpTransport``
    refuses it (user info, a query or a fragment too), in words that never quote a password.

    Example:
        >>> CollectorUrl().convert("http://127.0.0.1:8421", None, None)
        'http://127.0.0.1:8421'
    """

    def check(self, text: str) -> None:
        HttpTransport(text)  # only checks the url: nothing connects before a request


class WebhookUrl(_CheckedUrl):
    """``http(s)://host[:port][/path][?query]`` of an app backend, checked as ``WebhookSender``
    checks it, in words that never quote a password.

    Example:
        >>> WebhookUrl().convert("http://127.0.0.1:8080/hooks?tenant=7", None, None)
        'http://127.0.0.1:8080/hooks?tenant=7'
    """

    def check(self, text: str) -> None:
        check_webhook_url(text)


class InputFile(click.Path):
    """A file the command reads: it must exist and be readable (remembered for error lines)."""

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False, readable=True, path_type=str)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        checked = super().convert(value, param, ctx)
        if ctx is not None:
            ctx.meta.setdefault(INPUT_FILES, []).append(checked)
        return checked


class Folder(click.Path):
    """A folder the command reads (a bundle, a training run): it must exist."""

    def __init__(self) -> None:
        super().__init__(exists=True, file_okay=False, path_type=str)


__all__ = [
    "COUNT",
    "CollectorUrl",
    "EPOCH_MS",
    "FINITE",
    "NON_NEGATIVE",
    "POSITIVE",
    "FiniteFloat",
    "Folder",
    "InputFile",
    "PublicKey",
    "StorePath",
    "WebhookUrl",
    "check_store_file",
    "db_option",
]

"""The one exit-code table every ``shelfwise`` command uses, and the error -> code mapping.

==  =================================================================================
0   ok (also: the output was cut short because the reader closed the pipe, as ``head`` does)
1   runtime or store error (a corrupt bundle, a failed store operation, an internal error)
2   bad input: bad arguments, a missing or unreadable file, a file that is not UTF-8,
    a ``--db`` that is not a shelfwise store, an unknown item or shopper, invalid data,
    a command whose extra (``shelfwise[train]``) is not installed
3   refused: an offer or code rejected, consent missing, a signed update refused,
    the collector rejected what this device sent
4   upstream unavailable: the collector could not be reached (retry later; nothing lost)
==  =================================================================================

Example:
    >>> from shelfwise import OfferRejected, UnknownItem
    >>> int(exit_code_for(OfferRejected("no offer 'x'", reason="unknown_offer")))
    3
    >>> int(exit_code_for(UnknownItem("no item 'x'")))
    2
    >>> int(exit_code_for(FileNotFoundError(2, "No such file or directory", "offers.yaml")))
    2
"""

from __future__ import annotations

import errno
import sqlite3
from enum import IntEnum

from .._errors import (
    ConsentRequired,
    InvalidInput,
    OfferRejected,
    ShelfwiseError,
    SyncRejected,
    SyncRetryable,
    UnknownItem,
    UnknownShopper,
    UpdateRefused,
)


class ExitCode(IntEnum):
    """What a ``shelfwise`` command's exit status means."""

    OK = 0
    ERROR = 1
    BAD_INPUT = 2
    REFUSED = 3
    UNAVAILABLE = 4


# Shown by ``shelfwise --help`` (click keeps the lines as they are after "\b").
HELP_TABLE = """\b
Exit codes (every command):
  0  ok
  1  runtime or store error
  2  bad input: arguments, missing/unreadable/non-UTF-8 file, not a store, unknown id
  3  refused: offer/code rejected, consent missing, signed update or sync refused
  4  upstream unavailable: retry later, nothing is lost"""

# errno values that mean "the path the user gave is wrong", not "the machine is in trouble".
_BAD_PATH_ERRNOS = {
    errno.ENOENT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EACCES,
    errno.EPERM,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.EEXIST,
}
_BAD_PATH_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
# sqlite3 messages that mean "--db is not a store file", whatever the command.
_NOT_A_STORE = ("file is not a database", "unable to open database file", "malformed")


def not_a_store(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is SQLite saying the file is not a usable database.

    Example:
        >>> import sqlite3
        >>> not_a_store(sqlite3.DatabaseError("file is not a database"))
        True
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlite3.DatabaseError) and any(
            text in str(seen) for text in _NOT_A_STORE
        ):
            return True
        seen = seen.__cause__
    return False


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code of a command that failed with ``exc`` (see the module's table)."""
    if isinstance(exc, InvalidInput | UnknownItem | UnknownShopper | UnicodeError):
        return ExitCode.BAD_INPUT
    if isinstance(exc, OfferRejected | ConsentRequired | UpdateRefused | SyncRejected):
        return ExitCode.REFUSED
    if isinstance(exc, SyncRetryable):
        return ExitCode.UNAVAILABLE
    if not_a_store(exc):
        return ExitCode.BAD_INPUT
    if isinstance(exc, ShelfwiseError | sqlite3.Error):
        return ExitCode.ERROR
    if isinstance(exc, _BAD_PATH_ERRORS) or (
        isinstance(exc, OSError) and exc.errno in _BAD_PATH_ERRNOS
    ):
        return ExitCode.BAD_INPUT
    return ExitCode.ERROR


__all__ = ["HELP_TABLE", "ExitCode", "exit_code_for", "not_a_store"]

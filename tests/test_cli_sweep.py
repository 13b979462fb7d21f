"""Every command, fed bad arguments, fails with one ``error:`` line and a code from the table.

The sweep walks the click command tree (the back-office commands too when the ``train`` extra
is installed), runs each command with one bad argument at a time (missing files, folders,
non-UTF-8 files, files that are not SQLite or not ours as ``--db``, bad numbers, unknown ids,
unknown options) and fails on any traceback, any exit code outside the table and any
"internal error" (an exception the CLI did not expect). Real processes check the installed
entry point and a reader that closes the pipe early (``| head``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from cli_fixtures import MEMBER, OFFER, bad_files, build_workdir
from click.testing import CliRunner

from shelfwise.cli import cli
from shelfwise.cli.exit_codes import ExitCode
from shelfwise.cli.model import BackOfficeCommand, MissingExtra
from shelfwise.cli.params import FiniteFloat, Folder, InputFile, PublicKey, StorePath

TABLE = {int(code) for code in ExitCode}
HUGE = "99999999999999999999999"


def bad_numbers(kind: click.ParamType) -> list[str]:
    """Not numbers, not finite, and just outside the type's range."""
    low, low_open = getattr(kind, "min", None), getattr(kind, "min_open", False)
    if isinstance(kind, click.types.IntParamType):
        values = ["abc", "1.5", HUGE]
        if low is not None:
            values.append(str(int(low) - (0 if low_open else 1)))
        return values
    values = ["abc", "nan", "inf", "-inf"]
    if low is not None:
        values.append(f"{low:g}" if low_open else str(low - 1))
    return values


BAD_TEXT = {
    "code": ["036000291453", "abc", "", "4006381333931", "9" * 40],
    "history": ["milk,unicorn", ",,,", "x" * 5000],
    "cart": ["unicorn", "coffee:0", "coffee:x", ",,"],
    "order_id": ["", "has space", "x" * 100],
    "item": ["unicorn", "", "x" * 5000],
    "query": ["", "*", '"unbalanced', "NEAR(a b)"],
    "offer_id": ["unicorn", ""],
    "experiment_id": ["unicorn", ""],
    "shopper": ["unicorn", "", "x" * 5000, "bad\x01id"],
    "url": ["not a url", "ftp://example.com", "http://[::1", "http://host:99999", "http://:80"],
    "wanted": ["not json", "[1]", '{"value_start": 5}', '{"bogus": 1}', '{"weight_prefixes": 5}'],
    "store": ["x" * 5000],
    "columns": ["garbage", "user="],
    "symbology": ["bogus"],
    "surface": ["bogus"],
    "device_id": [""],
    "name": ["\x00"],
}


def leaf_commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """(path, command) of every runnable command, back-office ones loaded when installed."""
    ctx = click.Context(group, info_name="shelfwise")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, BackOfficeCommand):
            try:
                command = command.load()
            except MissingExtra:
                continue
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_workdir(tmp_path_factory.mktemp("sweep") / "work")
    (folder / "empty-run").mkdir()
    return folder


@pytest.fixture(scope="module")
def bad(work: Path) -> dict[str, Path]:
    return bad_files(work / "bad")


def good_values(path: tuple[str, ...], work: Path) -> dict[str, str]:
    """A usable value per parameter name (the sweep spoils one parameter at a time)."""
    files = {
        "import-catalog": "catalog.jsonl",
        "catalog import": "catalog.csv",
        "offers load": "offers.yaml",
    }
    return {
        "db": str(work / "store.db"),
        "bundle": str(work / "bundle"),
        "file": str(work / files.get(" ".join(path), "catalog.jsonl")),
        "key_file": str(work / "device.key"),
        "url": "http://127.0.0.1:9",
        "timeout": "0",
        "code": "036000291452",
        "item": "milk",
        "query": "milk",
        "history": "milk",
        "offer_id": OFFER,
        "order_id": "till-1",
        "cart": "coffee",
        "experiment_id": "exp-1",
        "shopper": MEMBER,
        "days": "90",
        "run": str(work / "empty-run"),
        "data": str(work / "chains.txt"),
        "out": str(work / "sweep-out"),
        "epochs": "1",
        "dim": "8",
        "heads": "1",
        "layers": "1",
        "max_len": "8",
    }


def bad_values(param: click.Parameter, bad: dict[str, Path], work: Path) -> list[str]:
    kind = param.type
    if isinstance(kind, StorePath):
        names = ["missing-folder", "folder", "latin1", "binary", "text", "other-sqlite"]
        if kind.must_exist:  # else a missing file is a new store
            names.append("missing")
        return [str(bad[n]) for n in names]
    if isinstance(kind, InputFile):
        return [str(bad[n]) for n in ["missing", "folder", "latin1", "binary", "garbage"]]
    if isinstance(kind, Folder):
        return [str(bad[n]) for n in ["missing", "text", "folder"]]
    if isinstance(kind, PublicKey):
        return ["zz", "abcd", "00" * 33]
    if isinstance(kind, click.Choice):
        return ["bogus"]
    if isinstance(kind, click.types.IntParamType | FiniteFloat | click.types.FloatParamType):
        return bad_numbers(kind)
    if isinstance(kind, click.Path):
        return [str(bad["folder"]), str(bad["text"] / "below-a-file")]
    if getattr(param, "is_flag", False):
        return []
    if param.name in {"out", "bundles"}:
        return [str(bad["text"]), str(bad["text"] / "below-a-file")]
    return BAD_TEXT.get(param.name or "", ["", "\x00"])


Case = tuple[tuple[str, ...], list[str], int | None]


def _words(param: click.Parameter, value: str | None) -> list[str]:
    if not isinstance(param, click.Option):
        return [str(value)]
    return [param.opts[0]] if param.is_flag else [param.opts[0], str(value)]


def cases(work: Path, bad: dict[str, Path]) -> list[Case]:
    """(command path, argv, the exit code it must give or None for any in the table)."""
    found: list[Case] = []
    for path, command in leaf_commands():
        good = good_values(path, work)
        base: dict[str, list[str]] = {}
        for param in command.params:
            name = param.name or ""
            if name == "no_progress":
                base[name] = _words(param, None)
            elif name in good and (param.required or isinstance(param, click.Option)):
                base[name] = _words(param, good[name])
        for param in command.params:
            # A spoiled path or number is refused before the command runs: always exit 2.
            typed = not isinstance(param.type, click.types.StringParamType | click.Choice)
            for value in bad_values(param, bad, work):
                spoiled = {**base, param.name or "": _words(param, value)}
                argv = [*path, *(word for words in spoiled.values() for word in words)]
                # An existing folder that is not a bundle or run is a runtime error (1).
                refused = typed and not (
                    isinstance(param.type, Folder) and value == str(bad["folder"])
                )
                found.append((path, argv, 2 if refused else None))
        every = [*path, *(word for words in base.values() for word in words)]
        found.append((path, [*every, "--no-such-option"], 2))
        found.append((path, [*every, "an-extra-argument"], 2))
        if any(param.required for param in command.params):
            found.append((path, [*path], 2))  # required parameters missing
    return found


def _check(argv: list[str], code: int, stdout: str, stderr: str) -> None:
    shown = f"shelfwise {' '.join(argv)!r} -> {code}\nstdout: {stdout[-500:]}\nstderr: {stderr}"
    assert code in TABLE, shown
    assert "Traceback" not in stderr and "Traceback" not in stdout, shown
    assert "internal error" not in stderr, shown
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    if code == 0:
        assert not errors, shown
    elif argv[0] in {"train", "evaluate", "export"}:  # their progress lines come first
        assert lines and lines[-1].startswith("error: ") and len(errors) == 1, shown
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), shown
    if "--json" in argv and stdout.strip():
        json.loads(stdout)


def test_every_command_survives_every_bad_input(work: Path, bad: dict[str, Path]) -> None:
    runner = CliRunner()
    tried = cases(work, bad)
    assert len(tried) >= 400
    assert {("offers", "load"), ("catalog", "get"), ("sync",), ("scan",), ("inspect",)} <= {
        path for path, _, _ in tried
    }
    for _path, argv, expected in tried:
        result = runner.invoke(cli, argv, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"shelfwise {argv!r} raised") from result.exception
        _check(argv, result.exit_code, result.stdout, result.stderr)
        if expected is not None:
            assert result.exit_code == expected, f"{argv!r}: {result.stderr}"


def _shelfwise() -> str:
    exe = Path(sys.executable).with_name("shelfwise")
    return str(exe) if exe.exists() else shutil.which("shelfwise") or "shelfwise"


def _real_process_sweep(work: Path, bad: dict[str, Path], only: set[tuple[str, ...]] | None) -> int:
    """One bad path per command through the installed entry point (a real process each)."""
    seen: set[tuple[str, ...]] = set()
    for path, argv, _ in cases(work, bad):
        if path in seen or (only is not None and path not in only):
            continue
        if str(bad["folder"]) not in argv and str(bad["missing"]) not in argv:
            continue
        seen.add(path)
        done = subprocess.run([_shelfwise(), *argv], capture_output=True, text=True, timeout=120)
        _check(argv, done.returncode, done.stdout, done.stderr)
        assert done.returncode == 2, (argv, done.stderr)
    return len(seen)


def test_the_real_command_fails_cleanly(work: Path, bad: dict[str, Path]) -> None:
    # One command of each module here (a process costs ~1 s); every command: the slow test.
    some = {("recommend",), ("catalog", "import"), ("offers", "load"), ("sync",), ("inspect",)}
    assert _real_process_sweep(work, bad, some) == len(some)


@pytest.mark.slow
def test_the_real_command_fails_cleanly_for_every_command(work: Path, bad: dict[str, Path]) -> None:
    assert _real_process_sweep(work, bad, None) >= 20


@pytest.mark.parametrize(
    "argv",
    [
        ["offers", "codes", "--db", "{db}", OFFER, "--count", "5000"],
        ["catalog", "list", "--db", "{db}", "--json"],
        ["recommend", "--db", "{db}", "--bundle", "{bundle}", "--history", "milk"],
        ["--help"],
    ],
)
def test_a_reader_that_closes_the_pipe_early_gets_no_traceback(work: Path, argv: list[str]) -> None:
    args = [a.format(db=work / "store.db", bundle=work / "bundle") for a in argv]
    with subprocess.Popen(
        [_shelfwise(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first write: EPIPE
        stderr = proc.stderr.read()
        code = proc.wait(timeout=120)
    assert (code, stderr) == (0, "")


def test_piping_into_head_exits_quietly(work: Path) -> None:
    command = (
        f"{_shelfwise()} offers codes --db {work / 'store.db'} {OFFER} --count 20000 | head -2"
    )
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == ""
    assert len(done.stdout.splitlines()) == 2


def test_non_utf8_arguments_are_bad_input(work: Path) -> None:
    done = subprocess.run(
        [_shelfwise(), "catalog", "get", "--db", str(work / "store.db"), b"caf\xe9".decode(
            "utf-8", "surrogateescape"
        )],
        capture_output=True,
        text=True,
    )  # fmt: skip
    _check(["catalog", "get"], done.returncode, done.stdout, done.stderr)
    assert done.returncode == 2

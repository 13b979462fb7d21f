"""Every ``shelfwise ...`` command the README shows runs exactly as written, and every command
line in the docs names commands and options that exist."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from cli_fixtures import build_workdir, chain_file

from shelfwise.cli import cli
from shelfwise.cli.model import BackOfficeCommand

ROOT = Path(__file__).resolve().parents[1]
BACK_OFFICE = {"train", "evaluate", "export"}


def shell_lines(markdown: str) -> list[str]:
    """Lines of the ```bash blocks, continuations joined and trailing comments dropped."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                lines.append(line)
    return lines


def readme_commands() -> list[str]:
    lines = shell_lines((ROOT / "README.md").read_text())
    return [line for line in lines if line.startswith("shelfwise ")]


def _env() -> dict[str, str]:
    # ``shelfwise`` on PATH is this checkout's installed entry point.
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def _namespace_prefix() -> list[str] | None:
    """``unshare`` into a private network namespace (own loopback) when the machine allows it."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if not unshare or not Path(ip).exists():
        return None
    prefix = [unshare, "-rn", "sh", "-c", f'{ip} link set lo up && exec "$0" "$@"']
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_readme_shows_the_runtime_and_back_office_commands() -> None:
    commands = readme_commands()
    verbs = {line.split()[1] for line in commands}
    assert {"recommend", "inspect", "forget", "scan", "offers", "sync", "sync-status"} <= verbs
    assert verbs >= BACK_OFFICE


def test_every_readme_runtime_command_runs_as_written(tmp_path: Path) -> None:
    work = build_workdir(tmp_path / "work")
    commands = [c for c in readme_commands() if c.split()[1] not in BACK_OFFICE]
    runner = [sys.executable, str(Path(__file__).with_name("readme_runner.py"))]
    prefix = _namespace_prefix()
    if prefix is None and not _port_free(8421):
        pytest.skip("port 8421 (the README's collector) is busy and no private network namespace")
    out = subprocess.run(
        [*(prefix or []), *runner, str(work), json.dumps(commands)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert [r["command"] for r in results] == commands
    for result in results:
        assert result["returncode"] == 0, f"{result['command']}\n{result['stderr']}"
        assert "Traceback" not in result["stderr"], result["stderr"]
        if " --json" in result["command"]:
            json.loads(result["stdout"])
    out_of = {" ".join(r["command"].split()[1:3]): r["stdout"] for r in results}
    assert json.loads(out_of["scan --db"])["item"]["item_id"] == "milk"
    assert json.loads(out_of["sync-status --db"])["last_error"] is None
    assert "loaded 1 offers" in out_of["offers load"]
    assert "coffee10" in out_of["offers list"] and "Corn flakes" in out_of["catalog search"]


@pytest.mark.slow
def test_every_readme_back_office_command_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    work = tmp_path / "work"
    work.mkdir()
    # ``../shared/data/amazon-beauty/Beauty.txt`` from the working folder: a small chain file.
    beauty = tmp_path / "shared" / "data" / "amazon-beauty" / "Beauty.txt"
    beauty.parent.mkdir(parents=True)
    chain_file(beauty, users=120, items=30)
    # and its attributes file (item -> attribute ids), as Beauty_item2attributes.json is shaped
    attributes = {str(item): [item % 4, 10 + item % 3] for item in range(1, 31)}
    (beauty.parent / "Beauty_item2attributes.json").write_text(json.dumps(attributes))
    commands = [c for c in readme_commands() if c.split()[1] in BACK_OFFICE]
    assert [c.split()[1] for c in commands] == ["train", "evaluate", "export"]
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=work, capture_output=True, text=True, env=_env()
        )
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr
    assert (work / "quality.json").is_file()
    assert (work / "runs" / "bundle_beauty_int8" / "manifest.json").is_file()


# -- every command line in the docs names real commands and options ----------------------------


def documented_lines() -> list[tuple[str, str]]:
    """(file, command line) for each ``shelfwise ...`` in a code span or block of the docs
    (README.md, benchmarks/README.md, docs/*.md)."""
    found: list[tuple[str, str]] = []
    for path in [
        ROOT / "README.md",
        ROOT / "benchmarks" / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
    ]:
        text = path.read_text().replace("\\\n", " ")
        fenced = [
            body
            for language, body in re.findall(r"^```([a-z]*)\n(.*?)^```", text, flags=re.S | re.M)
            if language not in {"python", "pycon"}
        ]
        text = re.sub(r"^```[a-z]*\n(.*?)^```", "", text, flags=re.S | re.M)
        # Code spans, indented code blocks (after a blank line) and fenced blocks; not prose.
        spans = re.findall(r"`([^`\n]+)`", text)
        for block in re.findall(r"(?<=\n\n)((?: {4}.+\n?)+)", text):
            spans += block.splitlines()
        spans += [line for block in fenced for line in block.splitlines()]
        for span in spans:
            for match in re.finditer(r"(?:^|\s|\|\s)(shelfwise [a-z][^|#\n]*)", span):
                line = match.group(1).strip()
                words = line.split()
                if len(words) > 1 and re.fullmatch(r"[a-z][a-z-]*", words[1]):
                    found.append((path.name, line))
    return sorted(set(found))


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = cli
    ctx = click.Context(cli, info_name="shelfwise")
    rest = words[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"no command {rest[0]!r} in {' '.join(words)!r}"
        command, rest = sub, rest[1:]
    if isinstance(command, BackOfficeCommand):
        pytest.importorskip("torch")
        command = command.load()
    return command, rest


def test_every_documented_command_line_names_real_commands_and_options() -> None:
    lines = documented_lines()
    assert len(lines) >= 15
    for source, line in lines:
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        command, rest = _resolve(words)
        known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        known |= {"--help", "-h"}
        for word in rest:
            option = word.split("=")[0].strip("[]|")
            if option.startswith("--"):
                assert option in known, f"{source}: {line!r}: {option} is not an option"

"""The fleet demo: one collector and two kiosks of the chain, started by one command.

    python -m shelfwise.kiosk_demo --fleet [--port 8420] [--staff-pin ...] [--fleet-dir DIR]
    bash scripts/demo.sh --fleet

- **kiosk A** on ``--port``: the demo store with its members' baskets (as the plain demo);
- **kiosk B** on ``--port + 1``: the sister store ``demo-milano-02``, seeded without the
  members' baskets and without the demo cards' PINs: a member proves their PIN there with
  their own sealed profile, which then follows them;
- **the collector** on ``--port + 2`` (SQLite in the fleet folder), each kiosk registered as
  a device with its own key file; one chain secret shared by both kiosks (0600 files).

Everything lives in ``--fleet-dir`` (default ``$XDG_DATA_HOME/shelfwise-kiosk/fleet``) and
survives a restart; delete the folder to start over. Ctrl-C stops all three.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

SISTER_STORE = ("demo-milano-02", "Shelfwise Demo Market, Milano Porta Romana")
STORE_ID = "demo-milano-01"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def provision(folder: Path) -> dict[str, Path]:
    """The fleet's files, made once: the chain secret and a registered key per kiosk."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "collector": folder / "collector.db",
        "secret": folder / "chain.secret",
        "kiosk-a": folder / "kiosk-a.key",
        "kiosk-b": folder / "kiosk-b.key",
    }
    if not files["secret"].exists():
        _write_private(files["secret"], secrets.token_hex(32) + "\n")
    for device, store in (("kiosk-a", STORE_ID), ("kiosk-b", SISTER_STORE[0])):
        if files[device].exists():
            continue
        subprocess.run(
            [sys.executable, "-m", "shelfwise.upstream", "add-device", "--db", str(files["collector"]),
             "--device", device, "--region", "milano", "--store", store,
             "--key-file", str(files[device])],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return files


def _wait(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def commands(args: argparse.Namespace, files: dict[str, Path], pin: str) -> dict[str, list[str]]:
    """The three processes' command lines."""
    folder = files["collector"].parent
    host, port = args.host, args.port
    upstream = f"http://{host}:{port + 2}"
    common = [
        "--host", host, "--staff-pin", pin, "--idle-seconds", str(args.idle_seconds),
        "--upstream", upstream, "--chain-secret-file", str(files["secret"]),
        "--sync-every", str(min(args.sync_every, 15.0)), "--log-level", args.log_level,
        *(f"--allow-host={name}" for name in args.allow_host),
        *(["--bundle", str(args.bundle)] if args.bundle else []),
    ]  # fmt: skip
    kiosk = [sys.executable, "-m", "shelfwise.kiosk_demo"]
    return {
        "collector": [
            sys.executable, "-m", "shelfwise.upstream", "serve", "--db", str(files["collector"]),
            "--host", host, "--port", str(port + 2),
        ],
        "kiosk-a": [
            *kiosk, "--port", str(port), "--db", str(folder / "kiosk-a.db"),
            "--key-file", str(files["kiosk-a"]), *common,
        ],
        "kiosk-b": [
            *kiosk, "--port", str(port + 1), "--db", str(folder / "kiosk-b.db"),
            "--key-file", str(files["kiosk-b"]), "--store-id", SISTER_STORE[0],
            "--store-name", SISTER_STORE[1], "--no-history", "--no-demo-pins", *common,
        ],
    }  # fmt: skip


def run_fleet(
    args: argparse.Namespace, default_folder: Path, *, staff_pin: str, member_pin: str
) -> int:
    """Start the collector and both kiosks, print where they are, stop them all on exit."""
    folder = args.fleet_dir or default_folder
    files = provision(folder)
    pin = staff_pin
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = args.host, args.port
    urls = {
        "collector": f"http://{host}:{port + 2}/v1/health",
        "kiosk-a": f"http://{host}:{port}/api/state",
        "kiosk-b": f"http://{host}:{port + 1}/api/state",
    }
    try:
        for name, command in commands(args, files, pin).items():
            processes[name] = subprocess.Popen(command)
            _wait(urls[name], processes[name])
        print("shelfwise fleet demo:", flush=True)
        print(f"  kiosk A (the demo store):     http://{host}:{port}/", flush=True)
        print(f"  kiosk B ({SISTER_STORE[1]}): http://{host}:{port + 1}/", flush=True)
        print(f"  phone app (my profile):       http://{host}:{port}/phone", flush=True)
        print(f"  collector:                    http://{host}:{port + 2}/  ({folder})", flush=True)
        print(f"  staff screen PIN: {pin}; demo loyalty cards' PIN: {member_pin}", flush=True)
        print(json.dumps({"fleet": str(folder), "ports": [port, port + 1, port + 2]}), flush=True)
        while not stopping and all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"python -m shelfwise.kiosk_demo --fleet: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


__all__ = ["commands", "provision", "run_fleet"]

"""Run shell lines in a folder beside a collector on 127.0.0.1:8421, as the README's sync assumes.

Usage: python readme_runner.py WORKDIR COMMANDS_JSON; prints one JSON list of results
(command, returncode, stdout, stderr). test_cli_readme.py runs it in a private network
namespace when the machine allows one, so port 8421 is always free.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sync_helpers import upstream_cmd, wait_healthy

PORT = 8421


def main() -> None:
    work, commands = Path(sys.argv[1]), json.loads(sys.argv[2])
    subprocess.run(
        upstream_cmd(
            "add-device", "--db", "collector.db", "--device", "kiosk-7", "--region", "north",
            "--key-file", "kiosk-7.key",
        ),
        cwd=work, check=True, capture_output=True,
    )  # fmt: skip
    collector = subprocess.Popen(
        upstream_cmd("serve", "--db", "collector.db", "--port", str(PORT)),
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    results = []
    try:
        wait_healthy(PORT, collector)
        for line in commands:
            done = subprocess.run(
                ["bash", "-c", line], cwd=work, capture_output=True, text=True, timeout=300
            )
            results.append(
                {
                    "command": line,
                    "returncode": done.returncode,
                    "stdout": done.stdout,
                    "stderr": done.stderr,
                }
            )
    finally:
        collector.terminate()
        collector.wait(timeout=30)
    print(json.dumps(results))


if __name__ == "__main__":
    main()

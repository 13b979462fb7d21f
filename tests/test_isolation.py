"""The kiosk runtime installs and runs without torch, training or export."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_runtime_loads_no_torch_onnx_or_back_office() -> None:
    code = (
        "import sys, shelfwise, shelfwise.cli\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in {'torch', 'onnx', 'onnxscript'}"
        " or m.startswith(('shelfwise.training', 'shelfwise.export'))]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

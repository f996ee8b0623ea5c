"""`make demo`, the README's first command: `hack/demo.py up` brings up a control plane, the
S3 server and the operator, and shows three Destinations telling the truth; `down` stops
everything `up` started. Run in a folder of its own, since the demo keeps its state in the
current folder (.cluster/, .demo/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from controlplane import alive, find_binaries

ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, str(ROOT / "hack" / "demo.py")]
# kubectl get dst: NAME TYPE TARGET VERIFIED REASON ARCHIVED ...
EXPECTED = {
    "reports": ("True", "ProbeSucceeded", "false"),
    "wrong-key": ("False", "AuthenticationFailed", "false"),
    "old": ("Unknown", "Archived", "true"),
}


def test_demo_up_shows_the_truth_and_down_stops_everything(tmp_path: Path) -> None:
    env = {**os.environ, "DESTINATION_OPERATOR_BIN_DIR": str(find_binaries())}

    def demo(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*DEMO, command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    pids: list[int] = []
    try:
        up = demo("up")
        assert up.returncode == 0, up.stdout + up.stderr
        pids = [
            int((tmp_path / ".demo" / f"{name}.pid").read_text())
            for name in ("operator", "s3server")
        ]
        assert all(alive(pid) for pid in pids)
        rows = {
            words[0]: (words[3], words[4], words[5])
            for words in map(str.split, up.stdout.splitlines())
            if words and words[0] in EXPECTED
        }
        assert rows == EXPECTED, up.stdout
        assert "make demo-down" in up.stdout
    finally:
        down = demo("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert pids and not any(alive(pid) for pid in pids)
    assert not (tmp_path / ".demo").exists() and not (tmp_path / ".cluster").exists()

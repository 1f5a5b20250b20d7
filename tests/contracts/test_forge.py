"""Forge unit and fuzz tests of SolvencyRegistry (verifier_contract/test/*.t.sol), over mock
verifiers. Fully offline: foundry.toml points forge at the npm solc-js wrapper and the tests
carry their own cheatcode interface instead of forge-std.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORGE = REPO / "node_modules" / ".bin" / "forge"
SUMMARY = re.compile(r"^Ran \d+ test suites? .*$", re.MULTILINE)


@pytest.mark.skipif(
    not FORGE.exists(), reason="forge is not installed (node_modules/.bin/forge): run npm install"
)
def test_forge_suite() -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    started = time.monotonic()
    proc = subprocess.run(
        [str(FORGE), "test", "--offline", "--color", "never"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"forge test failed (exit {proc.returncode}):\n{output}"
    summary = SUMMARY.search(proc.stdout)
    assert summary, f"no forge summary line in:\n{output}"
    assert "0 failed" in summary.group(0), summary.group(0)
    print(f"{summary.group(0)} [{elapsed:.1f}s]")

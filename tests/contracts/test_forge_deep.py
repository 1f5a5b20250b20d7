"""The forge fuzz and invariant tests with the long `deep` profile of foundry.toml (thousands of
fuzz runs, 256 invariant runs of depth 128) instead of the short default that
test_forge.py runs. Marked slow: run with ``pytest -m slow`` (``make fuzz``).
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from .test_forge import FORGE, REPO, SUMMARY


@pytest.mark.slow
@pytest.mark.skipif(
    not FORGE.exists(), reason="forge is not installed (node_modules/.bin/forge): run npm install"
)
def test_forge_fuzz_and_invariants_deep() -> None:
    env = {**os.environ, "NO_COLOR": "1", "FOUNDRY_PROFILE": "deep"}
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(FORGE),
            "test",
            "--offline",
            "--color",
            "never",
            "--match-test",
            "^(testFuzz|invariant)_",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"forge test failed (exit {proc.returncode}):\n{output}"
    summary = SUMMARY.search(proc.stdout)
    assert summary, f"no forge summary line in:\n{output}"
    assert "0 failed" in summary.group(0), summary.group(0)
    print(f"{summary.group(0)} [{elapsed:.1f}s]")

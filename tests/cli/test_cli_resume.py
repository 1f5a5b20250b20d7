"""A prove run killed mid-way (SIGKILL) resumes where it stopped and yields a bundle that
verifies, with no proof redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _zksolvency(*args: str) -> list[str]:
    return [sys.executable, "-m", "zksolvency.cli.main", *args]


def test_killed_prove_resumes_without_redoing_proofs(tiny_epoch: Any, tmp_path: Path) -> None:
    # tiny_epoch first: circuits and keys are then cached, so the run below only proves.
    out = tmp_path / "epoch"
    args = list(tiny_epoch.prove_args)
    args[args.index("--out") + 1] = str(out)
    proc = subprocess.Popen(
        _zksolvency(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    first_meta = out / "proofs" / "batch_000000.meta.json"
    deadline = time.monotonic() + 120
    while not first_meta.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first_meta.exists(), "the first proof never finished"
    os.killpg(proc.pid, signal.SIGKILL)  # the Node prover dies with it
    proc.wait()
    done_before = {p.name: p.read_bytes() for p in (out / "proofs").glob("*.meta.json")}
    assert "solvency.meta.json" not in done_before, "the run finished before it was killed"
    assert not (out / "manifest.json").exists()

    resumed = subprocess.run(_zksolvency(*args), capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(done_before)} of 4 proofs already done" in resumed.stderr
    for name, data in done_before.items():  # finished proofs were kept, not redone
        assert (out / "proofs" / name).read_bytes() == data
    assert not list(out.rglob("*.tmp")), "temporary files of the killed run were left behind"

    check = subprocess.run(
        _zksolvency("verify-bundle", str(out)), capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["batches"] == 3 and len(manifest["state_chain"]) == 4


def test_a_second_prove_on_the_same_directory_is_refused(tiny_epoch: Any, tmp_path: Path) -> None:
    import fcntl

    from click.testing import CliRunner
    from zksolvency.cli.main import main

    out = tmp_path / "epoch"
    (out / "private").mkdir(parents=True)
    args = list(tiny_epoch.prove_args)
    args[args.index("--out") + 1] = str(out)
    with open(out / "private" / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running prove would hold it
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "another prove is already running" in result.stderr

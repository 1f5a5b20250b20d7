"""epoch.NodeDriver: the long-lived snarkjs driver a native run feeds one job at a time."""

from __future__ import annotations

import errno
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from zksolvency.prover import epoch, native
from zksolvency.prover.epoch import NodeDriver
from zksolvency.prover.toolchain import ToolError


def test_failed_jobs_raise_and_the_driver_goes_on(tmp_path: Path) -> None:
    """A failed job raises for that job only: a file error as the OSError naming the file, any
    other failure as a ToolError; the same process then takes the next job."""
    missing = tmp_path / "absent.json"
    with NodeDriver(tmpdir=tmp_path) as d:
        pid = d.proc.pid
        with pytest.raises(ToolError, match="unknown job kind teleport"):
            d.run({"kind": "teleport"})
        job = {"kind": "witness", "input": str(missing), "wasm": "x.wasm", "wtns_out": "w"}
        with pytest.raises(OSError) as err:
            d.run(job)
        assert err.value.errno == errno.ENOENT and err.value.filename == str(missing)
        with pytest.raises(ToolError, match="unknown job kind"):
            d.run({"kind": "again"})
        assert d.proc.pid == pid and d.proc.poll() is None
    assert d.proc.returncode == 0, "a healthy driver ends on EOF"


def test_a_dead_driver_is_a_tool_error(tmp_path: Path) -> None:
    with NodeDriver(tmpdir=tmp_path) as d:
        d.proc.kill()
        d.proc.wait()
        with pytest.raises(ToolError, match=r"groth16\.mjs"):
            d.run({"kind": "verify", "vkey": "v", "proof": "p", "public": "q"})


SPINNER = """
// snarkjs after a failed write: it logs the error on stdout, then never answers
process.stdin.once("data", () => {
  process.stdout.write("ERROR Writing: Error: ENOSPC: no space left on device, write\\n");
  setInterval(() => {}, 1000);
});
"""


def test_a_logged_file_error_kills_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file error snarkjs only logs (then spins) is the OSError, and the driver is killed:
    nothing waits on it again, and later jobs raise at once."""
    script = tmp_path / "spin.mjs"
    script.write_text(SPINNER)
    monkeypatch.setattr(epoch, "js_script", lambda name: script)
    with NodeDriver(tmpdir=tmp_path) as d:
        with pytest.raises(OSError) as err:
            d.run({"kind": "witness", "proof_out": "/epoch/proofs/batch_000001.proof.json"})
        assert err.value.errno == errno.ENOSPC
        assert d.broken and d.proc.wait(timeout=5) != 0
        with pytest.raises(ToolError, match="stopped after an earlier failure"):
            d.run({"kind": "verify"})


class StuckDriver:
    """A driver whose job `bad` fails at once and whose other jobs never finish until killed."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.killed = threading.Event()

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(job["name"])
        if job["name"] == "bad":
            time.sleep(0.5)  # the other thread is stuck in its job by then
            raise OSError(errno.ENOSPC, "No space left on device", job["proof_out"])
        self.killed.wait()
        raise ToolError(["node"], -9, "killed")

    def kill(self) -> None:
        self.killed.set()

    def close(self) -> None:
        self.killed.set()


def test_a_failed_native_job_stops_the_run_without_waiting(tmp_path: Path) -> None:
    """The first failure stops the run: the drivers are killed (one was stuck mid-job), no
    further job starts, and the failure is what the caller sees."""
    vkey = tmp_path / "vkey.json"
    vkey.write_text(json.dumps({"nPublic": 3}))
    jobs = [
        {"name": n, "input": "i", "wasm": "w", "vkey": str(vkey), "proof_out": f"/p/{n}"}
        for n in ("bad", "slow1", "slow2", "slow3")
    ]
    calls: list[str] = []
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            native.run_jobs_native(
                jobs, lambda r: None, lambda: StuckDriver(calls), tmpdir=tmp_path, workers=2
            )
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=20)
    assert not t.is_alive(), "the run hung on a stuck driver"
    assert len(outcome) == 1 and isinstance(outcome[0], OSError)
    assert outcome[0].errno == errno.ENOSPC
    assert sorted(calls) == ["bad", "slow1"], "a job started after the failure"


def test_a_dask_worker_thread_keeps_its_driver_until_it_fails(tmp_path: Path) -> None:
    """cluster._thread_driver: tasks on one worker thread share one Node process, as a local
    run's core does; closing after a task keeps it, killing after a failure replaces it, and
    another thread gets its own."""
    from zksolvency.prover import cluster

    try:
        first = cluster._thread_driver(tmp_path)
        first.close()
        again = cluster._thread_driver(tmp_path)
        assert again.driver is first.driver and first.driver.proc.poll() is None
        with pytest.raises(ToolError, match="unknown job kind"):
            again.run({"kind": "teleport"})  # a failed job with its result line: still usable
        assert cluster._thread_driver(tmp_path).driver is first.driver
        again.kill()
        fresh = cluster._thread_driver(tmp_path)
        assert fresh.driver is not first.driver and fresh.driver.proc.poll() is None
        other: list[Any] = []
        t = threading.Thread(target=lambda: other.append(cluster._thread_driver(tmp_path)))
        t.start()
        t.join()
        assert other[0].driver is not fresh.driver
        # the end of a run stops them all (the other thread's died with its thread already)
        kept = list(cluster._DRIVERS.values())
        assert cluster.close_thread_drivers() == 2 and not cluster._DRIVERS
        assert all(d.proc.wait(timeout=10) is not None for d in kept)
    finally:
        for d in cluster._DRIVERS.values():
            d.kill()
            d.close()
        cluster._DRIVERS.clear()

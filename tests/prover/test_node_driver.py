"""epoch.NodeDriver: the long-lived snarkjs driver a native run feeds one job at a time."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
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

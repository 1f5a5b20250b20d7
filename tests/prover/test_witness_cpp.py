"""prover/witness_cpp.py: the C++ witness program's failures are caught, whatever it does.

The generated program neither checks its writes nor reports a failed assertion other than by
aborting, so the wrapper judges it by its exit status and by the witness file's own sizes. The
real program is built and compared with wasm in tests/cli/test_cli_native.py.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from zksolvency.prover import native, witness_cpp
from zksolvency.prover.field import P
from zksolvency.prover.toolchain import ToolError


def _wtns(values: list[int]) -> bytes:
    """A .wtns v2 file: section 1 (n8, prime, count), section 2 (the values)."""
    head = struct.pack("<I", 32) + P.to_bytes(32, "little") + struct.pack("<I", len(values))
    body = b"".join(v.to_bytes(32, "little") for v in values)
    return (
        b"wtns"
        + struct.pack("<II", 2, 2)
        + struct.pack("<IQ", 1, len(head))
        + head
        + struct.pack("<IQ", 2, len(body))
        + body
    )


def test_check_wtns_accepts_whole_files_and_refuses_cut_or_padded_ones(tmp_path: Path) -> None:
    f = tmp_path / "w.wtns"
    whole = _wtns([1, 7, P - 1])
    f.write_bytes(whole)
    witness_cpp.check_wtns(f)
    for bad in (whole[:-1], whole[:-32], whole[:40], whole + b"\0", b"wtnx" + whole[4:], b""):
        f.write_bytes(bad)
        with pytest.raises(ValueError, match="witness file"):
            witness_cpp.check_wtns(f)
    # a count that disagrees with the values written (a program cut short before its last write)
    f.write_bytes(whole.replace(struct.pack("<I", 3), struct.pack("<I", 4), 1))
    with pytest.raises(ValueError, match="truncated or malformed"):
        witness_cpp.check_wtns(f)


def _program(tmp_path: Path, body: str) -> Path:
    prog = tmp_path / "calc"
    prog.write_text("#!/bin/sh\n" + body + "\n")
    prog.chmod(0o755)
    return prog


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        # a failed constraint assertion: the generated code calls assert(false)
        ('echo "Assertion failed" >&2; kill -ABRT $$', "Assertion failed\\nkilled by signal 6"),
        ("echo 'Not all inputs have been set. Only 3 out of 9' >&2; exit 1", "Not all inputs"),
        ('head -c 100 /dev/zero > "$2"', "not a witness file"),
    ],
)
def test_a_failing_program_is_a_tool_error(tmp_path: Path, body: str, expect: str) -> None:
    with pytest.raises(ToolError, match=expect):
        witness_cpp.compute_witness(_program(tmp_path, body), tmp_path / "in.json", tmp_path / "w")


def test_a_program_that_cannot_run_is_a_tool_error(tmp_path: Path) -> None:
    not_executable = tmp_path / "calc"
    not_executable.write_text("#!/bin/sh\n")
    for prog in (not_executable, tmp_path / "absent"):
        with pytest.raises(ToolError, match="cannot run the C\\+\\+ witness program"):
            witness_cpp.compute_witness(prog, tmp_path / "in.json", tmp_path / "w")


def test_a_hung_program_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(witness_cpp, "WITNESS_TIMEOUT", 0.5)
    with pytest.raises(ToolError, match=r"no witness after 0\.5 s"):
        witness_cpp.compute_witness(_program(tmp_path, "sleep 30"), tmp_path / "i", tmp_path / "w")


def test_a_truncated_witness_stops_a_native_run_before_proving(tmp_path: Path) -> None:
    """A job's `witness_bin` replaces the driver's witness step; its cut-short output stops the
    run with nothing kept, and the driver is never asked for a witness."""
    good = _wtns([1, 2, 3, 4])
    prog = _program(tmp_path, f'head -c {len(good) - 5} "{tmp_path / "good.wtns"}" > "$2"')
    (tmp_path / "good.wtns").write_bytes(good)
    vkey = tmp_path / "vkey.json"
    vkey.write_text(json.dumps({"nPublic": 3}))
    out = tmp_path / "proofs"
    out.mkdir()
    job = {
        "name": "batch_000000",
        "input": str(tmp_path / "in.json"),
        "wasm": "w.wasm",
        "zkey": "k.zkey",
        "vkey": str(vkey),
        "proof_out": str(out / "p.json"),
        "public_out": str(out / "q.json"),
        "witness_bin": str(prog),
    }
    asked: list[dict[str, Any]] = []

    class Driver:
        def run(self, j: dict[str, Any]) -> dict[str, Any]:
            asked.append(j)
            raise AssertionError("the driver was asked for a witness")

        def kill(self) -> None: ...

        def close(self) -> None: ...

    work = tmp_path / "work"
    with pytest.raises(ToolError, match="truncated or malformed"):
        native.run_jobs_native([job], lambda r: None, Driver, tmpdir=work, workers=1)
    assert not asked
    assert not list(out.iterdir()) and not list(work.iterdir())


def test_missing_tools_names_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(witness_cpp.shutil, "which", lambda tool: None)
    assert witness_cpp.missing_tools() == [
        "g++",
        "make",
        "nasm",
        "libgmp-dev",
        "nlohmann-json3-dev",
    ]

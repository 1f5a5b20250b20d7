"""The harness itself: its witnesses are circom's, its checker agrees with snarkjs, and its
failure helpers cannot pass vacuously."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from harness import BIN, ROOT, Circuit, WitnessError, compile_source
from zksolvency.prover.r1cs import R1CS, read_wtns, write_wtns


def _run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_server_witness_equals_generate_witness_js(account2: Circuit, tmp_path: Path) -> None:
    inputs: dict[str, int | list[int]] = {
        "idCommit": 5,
        "equity": [10, 20],
        "debt": [3, 4],
        "qty": [5, (1 << 63) + 6],  # a long and a short position
        "weights": [7, 9],
    }
    (tmp_path / "in.json").write_text(json.dumps({k: _str(v) for k, v in inputs.items()}))
    js = account2.wasm_path.parent / "generate_witness.js"
    proc = _run("node", js, account2.wasm_path, tmp_path / "in.json", tmp_path / "w.wtns")
    assert proc.returncode == 0, proc.stderr
    assert read_wtns(tmp_path / "w.wtns") == account2.witness(inputs)


def _str(v: int | list[int]) -> str | list[str]:
    return [str(x) for x in v] if isinstance(v, list) else str(v)


def test_checker_agrees_with_snarkjs(range64: Circuit, tmp_path: Path) -> None:
    """A valid witness passes and a tampered one fails both here and in `snarkjs wtns check`."""
    w = range64.expect_pass({"in": 1234})
    bad = range64.tamper(w, "bits.out[1]", 0)
    assert range64.check(bad)
    for witness, ok in ((w, True), (bad, False)):
        path = tmp_path / f"{ok}.wtns"
        write_wtns(path, witness, range64.r1cs.prime)
        proc = _run(BIN / "snarkjs", "wtns", "check", range64.r1cs_path, path)
        assert "WITNESS" in proc.stdout + proc.stderr
        assert (proc.returncode == 0) == ok


def test_witness_error_names_the_failing_template(range64: Circuit) -> None:
    with pytest.raises(WitnessError, match=r"Assert Failed.*Num2Bits.*RangeCheck"):
        range64.witness({"in": 1 << 64})


def test_expect_fail_is_not_vacuous(range64: Circuit) -> None:
    with pytest.raises(AssertionError, match="accepted inputs it must refuse"):
        range64.expect_fail({"in": 5})
    with pytest.raises(AssertionError, match="not with"):
        range64.expect_fail({"in": 1 << 64}, match="AccountLeaf")
    with pytest.raises(AssertionError, match="not on an assert"):
        range64.expect_fail({"wrong": 1})  # malformed inputs are a broken test, not a refusal


def test_tamper_checks(range64: Circuit) -> None:
    w = range64.expect_pass({"in": 6})
    with pytest.raises(AssertionError, match="its own value"):
        range64.tamper(w, "in", 6)
    with pytest.raises(KeyError, match="no wire"):
        range64.tamper(w, "bits.out[64]", 1)
    with pytest.raises(AssertionError, match="still satisfies"):
        range64.expect_constraint_fail(w)
    assert range64.tamper(w, "in", -1)[range64.wire("in")] == range64.r1cs.prime - 1
    assert range64.get(w, "in") == 6  # the original is untouched


def test_r1cs_loads_input_merged_into_output(tmp_path: Path) -> None:
    source = (
        "pragma circom 2.1.0;\n"
        "template Echo() { signal input a; signal input b; signal output c; signal output d;"
        " c <== a; d <== a * b; }\n"
        "component main = Echo();\n"
    )
    echo = compile_source("echo", source, tmp_path)
    proc = _run(BIN / "snarkjs", "r1cs", "info", echo.r1cs_path)
    assert proc.returncode == 0 and "# of Wires: 4" in proc.stdout  # 1 + 2 outputs + 1 input
    r = R1CS.load(echo.r1cs_path)
    assert r.n_wires == 4 and echo.public(echo.expect_pass({"a": 3, "b": 5})) == [3, 15]

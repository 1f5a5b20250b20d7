"""Tests for the circom R1CS / witness / symbol readers and the constraint checker.

The `built` fixture compiles tests/fixtures/groth16/tiny.circom (c = a·b with a range-checked
to 8 bits) once per session and cross-checks every reader against snarkjs; the hand-encoded
files below cover parsing and the checker without a node toolchain.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from zksolvency.prover.field import P
from zksolvency.prover.r1cs import (
    R1CS,
    LinearCombination,
    failing_constraints,
    read_sym,
    read_wtns,
    write_wtns,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "groth16"
BIN = ROOT / "node_modules" / ".bin"


# --- hand-encoded files ---------------------------------------------------------------------


def _lc_bytes(lc: LinearCombination) -> bytes:
    return struct.pack("<I", len(lc)) + b"".join(
        struct.pack("<I", w) + c.to_bytes(32, "little") for w, c in lc.items()
    )


def _r1cs_bytes(
    n_wires: int,
    counts: tuple[int, int, int],
    constraints: Sequence[Sequence[LinearCombination]],
    *,
    wire_map: list[int] | None = None,
    constraints_first: bool = False,
) -> bytes:
    header = (
        struct.pack("<I", 32)
        + P.to_bytes(32, "little")
        + struct.pack("<IIIIQI", n_wires, *counts, n_wires + 1, len(constraints))
    )
    body = b"".join(_lc_bytes(lc) for c in constraints for lc in c)
    sections = [(1, header), (2, body)]
    if constraints_first:
        sections.reverse()
    if wire_map is not None:
        sections.append((3, struct.pack(f"<{len(wire_map)}Q", *wire_map)))
    out = b"r1cs" + struct.pack("<II", 1, len(sections))
    for kind, data in sections:
        out += struct.pack("<IQ", kind, len(data)) + data
    return out


# wires: 0 = one, 1 = out (public), 2 = x (private), 3 = x²; constraints x·x = x², x²·x = out - 5
_SMALL = [({2: 1}, {2: 1}, {3: 1}), ({3: 1}, {2: 1}, {1: 1, 0: P - 5})]


def _small_witness(x: int) -> list[int]:
    return [1, (x**3 + 5) % P, x, x * x % P]


@pytest.mark.parametrize("constraints_first", [False, True])
def test_parse_hand_encoded(tmp_path: Path, constraints_first: bool) -> None:
    path = tmp_path / "small.r1cs"
    path.write_bytes(
        _r1cs_bytes(
            4, (1, 0, 1), _SMALL, wire_map=[0, 1, 2, 4], constraints_first=constraints_first
        )
    )
    r = R1CS.load(path)
    assert (r.prime, r.n8, r.n_wires, r.n_pub_out, r.n_pub_in, r.n_prv_in) == (P, 32, 4, 1, 0, 1)
    assert (r.n_labels, r.n_constraints, r.n_public) == (5, 2, 1)
    assert [list(c) for c in r.constraints] == [list(c) for c in _SMALL]
    assert r.wire_to_label == (0, 1, 2, 4)


def test_check_hand_encoded() -> None:
    r = R1CS.from_bytes(_r1cs_bytes(4, (1, 0, 1), _SMALL))
    assert r.wire_to_label is None
    w = _small_witness(3)
    assert failing_constraints(r, w) == []
    assert failing_constraints(r, [1, 32, 3, 9]) == []
    assert failing_constraints(r, [1, 33, 3, 9]) == [1]
    assert failing_constraints(r, [1, 32, 3, 10]) == [0, 1]
    assert failing_constraints(r, [1, 32, 3, 10], limit=1) == [0]
    # Negative x: its square root of out - 5 wraps through the field like circom's arithmetic.
    assert failing_constraints(r, _small_witness(P - 2)) == []


@pytest.mark.parametrize(
    ("witness", "match"),
    [
        ([1, 32, 3], "3 values"),
        ([2, 32, 3, 9], r"witness\[0\]"),
        ([1, 32, 3, 9 + P], "canonical"),
        ([1, -1, 3, 9], "canonical"),
    ],
)
def test_check_rejects_malformed_witness(witness: list[int], match: str) -> None:
    r = R1CS.from_bytes(_r1cs_bytes(4, (1, 0, 1), _SMALL))
    with pytest.raises(ValueError, match=match):
        failing_constraints(r, witness)


def test_parse_rejects_damaged_files() -> None:
    good = _r1cs_bytes(4, (1, 0, 1), _SMALL)
    for bad, match in [
        (b"wtns" + good[4:], "magic"),
        (good[:4] + struct.pack("<I", 2) + good[8:], "version"),
        (good[:-1], "past the end"),
        (good + b"\0", "trailing"),
        (_r1cs_bytes(3, (0, 0, 1), _SMALL), "wire 3"),
        (_r1cs_bytes(4, (1, 0, 1), [({2: P}, {}, {})]), "wire 2"),
        (_r1cs_bytes(4, (1, 0, 1), _SMALL, wire_map=[0, 1]), "wire2label"),
    ]:
        with pytest.raises(ValueError, match=match):
            R1CS.from_bytes(bad)


def test_wtns_write_read(tmp_path: Path) -> None:
    w = _small_witness(12345)
    write_wtns(tmp_path / "w.wtns", w, P)
    data = (tmp_path / "w.wtns").read_bytes()
    assert data[:12] == b"wtns" + struct.pack("<II", 2, 2)
    assert len(data) == 12 + 12 + 40 + 12 + 32 * len(w)
    assert read_wtns(tmp_path / "w.wtns") == w
    with pytest.raises(ValueError, match="canonical"):
        write_wtns(tmp_path / "bad.wtns", [1, P], P)


def test_read_sym(tmp_path: Path) -> None:
    (tmp_path / "x.sym").write_text("1,1,0,main.out\n2,-1,0,main.gone\n3,2,1,main.c.in[0]\n\n")
    assert read_sym(tmp_path / "x.sym") == {"main.out": 1, "main.c.in[0]": 2}
    (tmp_path / "bad.sym").write_text("1,1,main.out\n")
    with pytest.raises(ValueError, match="4 comma-separated"):
        read_sym(tmp_path / "bad.sym")


# --- a real circom circuit, cross-checked against snarkjs -----------------------------------


@dataclass(frozen=True)
class Built:
    dir: Path
    r1cs_path: Path
    wtns_path: Path
    sym_path: Path


def _run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def _must(*cmd: str | Path) -> str:
    proc = _run(*cmd)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if shutil.which("node") is None or not (BIN / "circom2").exists():
        pytest.skip("node toolchain not installed (run `make install`)")
    out = tmp_path_factory.mktemp("r1cs_built")
    # circom2 (a WASI build) finds -l include dirs only below its working directory, so it runs
    # from the repo root with a relative library path.
    flags = ["--r1cs", "--wasm", "--sym", "-l", "node_modules", "-o"]
    _must(BIN / "circom2", FIXTURES / "tiny.circom", *flags, out)
    (out / "input.json").write_text(json.dumps({"a": "5", "b": "7"}))
    _must(
        "node",
        out / "tiny_js" / "generate_witness.js",
        out / "tiny_js" / "tiny.wasm",
        out / "input.json",
        out / "tiny.wtns",
    )
    return Built(out, out / "tiny.r1cs", out / "tiny.wtns", out / "tiny.sym")


def _snarkjs_wtns_ok(built: Built, wtns: Path) -> bool:
    proc = _run(BIN / "snarkjs", "wtns", "check", built.r1cs_path, wtns)
    assert "WITNESS" in proc.stdout + proc.stderr, proc.stderr  # it ran, rather than crashed
    return proc.returncode == 0


def test_r1cs_matches_snarkjs_export(built: Built) -> None:
    r = R1CS.load(built.r1cs_path)
    _must(BIN / "snarkjs", "r1cs", "export", "json", built.r1cs_path, built.dir / "r1cs.json")
    js = json.loads((built.dir / "r1cs.json").read_text())
    assert r.prime == int(js["prime"]) == P
    assert (r.n8, r.n_wires, r.n_pub_out, r.n_pub_in, r.n_prv_in, r.n_labels) == (
        js["n8"],
        js["nVars"],
        js["nOutputs"],
        js["nPubInputs"],
        js["nPrvInputs"],
        js["nLabels"],
    )
    assert r.n_constraints == js["nConstraints"] == 10  # 1 product + 8 bits + 1 bit sum
    assert [[{str(w): str(c) for w, c in lc.items()} for lc in con] for con in r.constraints] == (
        js["constraints"]
    )
    assert r.wire_to_label is not None and list(r.wire_to_label) == js["map"]


def test_sym_matches_r1cs_labels(built: Built) -> None:
    sym = read_sym(built.sym_path)
    assert sym["main.c"] == 1 and sym["main.b"] == 2 and sym["main.a"] == 3  # outputs first
    assert "main.bits.in" not in sym  # optimised into main.a (witness index -1)
    r = R1CS.load(built.r1cs_path)
    assert r.wire_to_label is not None
    labels = {
        line.split(",")[3]: int(line.split(",")[0])
        for line in built.sym_path.read_text().splitlines()
    }
    for name, wire in sym.items():
        assert r.wire_to_label[wire] == labels[name]


def test_valid_witness_passes(built: Built) -> None:
    r = R1CS.load(built.r1cs_path)
    w = read_wtns(built.wtns_path)
    sym = read_sym(built.sym_path)
    assert len(w) == r.n_wires and w[0] == 1
    assert (w[sym["main.c"]], w[sym["main.b"]], w[sym["main.a"]]) == (35, 7, 5)
    assert [w[sym[f"main.bits.out[{i}]"]] for i in range(8)] == [1, 0, 1, 0, 0, 0, 0, 0]
    assert failing_constraints(r, w) == []
    assert _snarkjs_wtns_ok(built, built.wtns_path)


def test_wtns_roundtrip_is_byte_exact(built: Built, tmp_path: Path) -> None:
    w = read_wtns(built.wtns_path)
    write_wtns(tmp_path / "copy.wtns", w, R1CS.load(built.r1cs_path).prime)
    assert (tmp_path / "copy.wtns").read_bytes() == built.wtns_path.read_bytes()


@pytest.mark.parametrize(
    ("signal", "new_value", "expect"),
    [
        ("main.c", 36, None),  # output no longer a·b
        ("main.bits.out[3]", 1, None),  # still a bit, but the bits no longer sum to a
        ("main.bits.out[0]", 2, None),  # not a bit at all
        ("main.a", 5, []),  # unchanged value: control
        ("main.a", 5 + 256, None),  # a out of range: bits and product both break
    ],
)
def test_tampered_witness_is_rejected(
    built: Built, tmp_path: Path, signal: str, new_value: int, expect: list[int] | None
) -> None:
    r = R1CS.load(built.r1cs_path)
    w = read_wtns(built.wtns_path)
    w[read_sym(built.sym_path)[signal]] = new_value
    path = tmp_path / "tampered.wtns"
    write_wtns(path, w, r.prime)
    bad = failing_constraints(r, read_wtns(path))
    if expect is not None:
        assert bad == expect
        assert _snarkjs_wtns_ok(built, path)
    else:
        assert bad, f"tampering {signal} went unnoticed"
        assert not _snarkjs_wtns_ok(built, path)
        assert failing_constraints(r, w, limit=1) == bad[:1]


def test_tampering_product_breaks_exactly_that_constraint(built: Built) -> None:
    r = R1CS.load(built.r1cs_path)
    w = read_wtns(built.wtns_path)
    sym = read_sym(built.sym_path)
    w[sym["main.c"]] = 36
    bad = failing_constraints(r, w)
    assert len(bad) == 1
    a, b, c = r.constraints[bad[0]]
    assert sym["main.c"] in c and sym["main.a"] in a | b and sym["main.b"] in a | b


# --- speed ----------------------------------------------------------------------------------


def _chain_r1cs(n: int) -> tuple[R1CS, list[int]]:
    """x_{i+1} = x_i·(x_i + i) + 3·x_{i-1}: one 3-term and one 2-term LC per constraint."""
    rng = random.Random(1)
    w = [1, rng.randrange(P), rng.randrange(P)]
    constraints = []
    for i in range(n):
        cur, prev = len(w) - 1, len(w) - 2
        constraints.append(({cur: 1}, {cur: 1, 0: i}, {cur + 1: 1, prev: P - 3}))
        w.append((w[cur] * (w[cur] + i) + 3 * w[prev]) % P)
    r = R1CS(
        prime=P,
        n8=32,
        n_wires=len(w),
        n_pub_out=0,
        n_pub_in=0,
        n_prv_in=2,
        n_labels=len(w),
        constraints=tuple(constraints),
        wire_to_label=None,
    )
    return r, w


def test_check_speed_50k_constraints() -> None:
    r, w = _chain_r1cs(50_000)
    start = time.perf_counter()
    assert failing_constraints(r, w) == []
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"failing_constraints took {elapsed:.2f} s for 50k constraints"
    w[1000] = (w[1000] + 1) % P
    assert failing_constraints(r, w) == [997, 998, 999]


@pytest.mark.bench
def test_bench_check() -> None:
    r, w = _chain_r1cs(50_000)
    start = time.perf_counter()
    failing_constraints(r, w)
    print(f"\nfailing_constraints: {time.perf_counter() - start:.3f} s for 50,000 constraints")

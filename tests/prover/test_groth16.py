"""Tests for the pure-Python Groth16 verifier.

Static tests use the committed snarkjs outputs in tests/fixtures/groth16 (see its README), so
they need no node toolchain. The `live` fixture compiles the same circuit and runs a fresh
(insecure, dev-ptau) setup once per session, to check agreement with snarkjs itself.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.fields import optimized_bn128_FQ12 as FQ12
from py_ecc.optimized_bn128.optimized_curve import (
    G1,
    G2,
    b2,
    is_inf,
    is_on_curve,
    multiply,
    normalize,
)
from py_ecc.optimized_bn128.optimized_pairing import final_exponentiate, pairing
from zksolvency.prover.field import P
from zksolvency.prover.groth16 import (
    G1Point,
    G2Point,
    Proof,
    Q,
    VerificationKey,
    _final_exponentiation,
    pairing_product,
    proof_calldata,
    verify,
    vkey_hash,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "groth16"
BIN = ROOT / "node_modules" / ".bin"
PTAU = Path("/work/shared/ptau/dev_pot12.ptau")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def vk_dict() -> dict[str, Any]:
    d: dict[str, Any] = load("verification_key.json")
    return d


@pytest.fixture(scope="module")
def vk(vk_dict: dict[str, Any]) -> VerificationKey:
    return VerificationKey.from_snarkjs(vk_dict)


@pytest.fixture(scope="module")
def proof_dict() -> dict[str, Any]:
    d: dict[str, Any] = load("proof.json")
    return d


@pytest.fixture(scope="module")
def proof(proof_dict: dict[str, Any]) -> Proof:
    return Proof.from_snarkjs(proof_dict)


@pytest.fixture(scope="module")
def public() -> list[str]:
    values: list[str] = load("public.json")
    return values


# --- the pairing itself -------------------------------------------------------------------------


def _affine1(p: Any) -> G1Point:
    x, y = normalize(p)
    return (int(x), int(y))


def _affine2(p: Any) -> G2Point:
    x, y = normalize(p)
    return ((int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1])))


def test_pairing_matches_py_ecc() -> None:
    rng = random.Random(7)
    a, b = rng.randrange(1, P), rng.randrange(1, P)
    p1, q2 = multiply(G1, a), multiply(G2, b)
    assert pairing_product([(_affine1(p1), _affine2(q2))]) == pairing(q2, p1)


def test_pairing_is_bilinear_and_nondegenerate() -> None:
    g1, g2 = _affine1(G1), _affine2(G2)
    e = pairing_product([(g1, g2)])
    assert e != FQ12.one()
    assert pairing_product([(_affine1(multiply(G1, 6)), g2)]) == pairing_product(
        [(_affine1(multiply(G1, 2)), _affine2(multiply(G2, 3)))]
    )
    # e(P, Q)·e(-P, Q) = 1, with infinity contributing 1.
    neg_g1 = (g1[0], -g1[1] % Q)
    assert pairing_product([(g1, g2), (neg_g1, g2), (None, g2)]) == FQ12.one()


def test_final_exponentiation_matches_py_ecc() -> None:
    rng = random.Random(11)
    f = FQ12([rng.randrange(Q) for _ in range(12)])
    assert _final_exponentiation(f) == final_exponentiate(f)


# --- verify on the committed fixtures -----------------------------------------------------------


def test_fixture_proof_verifies(vk: VerificationKey, proof: Proof, public: list[str]) -> None:
    assert vk.n_public == 2
    assert verify(vk, proof, public)
    assert verify(vk, proof, [int(x) for x in public])  # ints and decimal strings alike


def test_other_proof_verifies_only_for_its_own_inputs(
    vk: VerificationKey, proof: Proof, public: list[str]
) -> None:
    other = Proof.from_snarkjs(load("proof_other.json"))
    other_public = load("public_other.json")
    assert verify(vk, other, other_public)
    assert not verify(vk, other, public)
    assert not verify(vk, proof, other_public)


@pytest.mark.parametrize("index", [0, 1])
def test_tampered_public_input_is_rejected(
    vk: VerificationKey, proof: Proof, public: list[str], index: int
) -> None:
    tampered: list[int | str] = list(public)
    tampered[index] = int(public[index]) + 1
    assert verify(vk, proof, tampered) is False


def test_swapped_a_and_c_is_rejected(vk: VerificationKey, proof: Proof, public: list[str]) -> None:
    assert not verify(vk, Proof(proof.c, proof.b, proof.a), public)


def test_negated_a_is_rejected(vk: VerificationKey, proof: Proof, public: list[str]) -> None:
    assert proof.a is not None
    assert not verify(vk, Proof((proof.a[0], Q - proof.a[1]), proof.b, proof.c), public)


def test_identity_points_are_rejected_not_raised(
    vk: VerificationKey, proof: Proof, public: list[str]
) -> None:
    assert not verify(vk, Proof(None, proof.b, proof.c), public)
    assert not verify(vk, Proof(proof.a, None, None), public)


@pytest.mark.parametrize("as_str", [False, True])
def test_aliased_public_inputs_raise(
    vk: VerificationKey, proof: Proof, public: list[str], as_str: bool
) -> None:
    # c = 35 and c + r are the same field element; a verifier that reduced mod r would accept
    # both, so inputs at or above r must be refused before any arithmetic.
    for bad in (P, P + int(public[0]), 2**256 - 1):
        with pytest.raises(ValueError, match="canonical"):
            verify(vk, proof, [str(bad) if as_str else bad, public[1]])


@pytest.mark.parametrize("bad", [-1, "-1", "0x23", " 35", "3.5", True, None, 35.0])
def test_malformed_public_inputs_raise(
    vk: VerificationKey, proof: Proof, public: list[str], bad: Any
) -> None:
    with pytest.raises(ValueError):
        verify(vk, proof, [bad, public[1]])


@pytest.mark.parametrize("count", [0, 1, 3])
def test_wrong_public_count_raises(
    vk: VerificationKey, proof: Proof, public: list[str], count: int
) -> None:
    with pytest.raises(ValueError, match="public inputs"):
        verify(vk, proof, (public * 2)[:count])


def test_string_as_public_sequence_raises(vk: VerificationKey, proof: Proof) -> None:
    with pytest.raises(ValueError, match="public inputs"):
        verify(vk, proof, "35")


# --- parsing and point validation ---------------------------------------------------------------


def _edit(d: dict[str, Any], path: Sequence[str | int], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(d)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("path", "delta"),
    [
        (("pi_a", 1), 1),
        (("pi_c", 0), 1),
        (("pi_b", 0, 0), 1),
        (("pi_b", 1, 1), 1),
    ],
)
def test_off_curve_proof_point_raises(
    proof_dict: dict[str, Any], path: tuple[str | int, ...], delta: int
) -> None:
    target: Any = proof_dict
    for key in path:
        target = target[key]
    bad = _edit(proof_dict, path, str((int(target) + delta) % Q))
    with pytest.raises(ValueError, match=r"not (on|in) the BN254"):
        Proof.from_snarkjs(bad)
    with pytest.raises(ValueError):
        proof_calldata(bad)


def _fq2_sqrt(a: FQ2) -> FQ2 | None:
    """Square root in Fp2 for q ≡ 3 (mod 4) (Adj and Rodríguez-Henríquez, algorithm 9)."""
    a1 = a ** ((Q - 3) // 4)
    alpha = a1 * a1 * a
    x0 = a1 * a
    if alpha == FQ2([-1, 0]):  # a = -(square): the root is i·x0
        return FQ2([0, 1]) * x0
    root = (alpha + FQ2.one()) ** ((Q - 1) // 2) * x0
    return root if root * root == a else None


def _twist_point_outside_g2() -> G2Point:
    for k in range(1, 100):
        x = FQ2([k, 1])
        y = _fq2_sqrt(x * x * x + b2)
        if y is None:
            continue
        pt = (x, y, FQ2.one())
        assert is_on_curve(pt, b2)
        if not is_inf(multiply(pt, P)):
            return _affine2(pt)
    raise AssertionError("no point found")


def test_twist_point_outside_subgroup_raises(proof_dict: dict[str, Any]) -> None:
    (x0, x1), (y0, y1) = _twist_point_outside_g2()
    bad = _edit(proof_dict, ("pi_b",), [[str(x0), str(x1)], [str(y0), str(y1)], ["1", "0"]])
    with pytest.raises(ValueError, match="G2 subgroup"):
        Proof.from_snarkjs(bad)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("pi_a", 2), "2"),  # projective, not normalised: snarkjs never writes this
        (("pi_a", 0), str(Q)),  # non-canonical coordinate
        (("pi_a", 0), "-5"),
        (("pi_a",), ["1", "2"]),
        (("pi_b", 2), ["1", "1"]),
        (("protocol",), "plonk"),
        (("curve",), "bls12381"),
    ],
)
def test_malformed_proof_raises(
    proof_dict: dict[str, Any], path: tuple[str | int, ...], value: Any
) -> None:
    with pytest.raises(ValueError):
        Proof.from_snarkjs(_edit(proof_dict, path, value))


def test_proof_missing_key_raises(proof_dict: dict[str, Any]) -> None:
    bad = dict(proof_dict)
    del bad["pi_c"]
    with pytest.raises(ValueError, match="pi_c"):
        Proof.from_snarkjs(bad)


def test_proof_infinity_encoding_parses(proof_dict: dict[str, Any]) -> None:
    p = Proof.from_snarkjs(_edit(proof_dict, ("pi_a",), ["0", "1", "0"]))
    assert p.a is None
    a, _, _ = proof_calldata(_edit(proof_dict, ("pi_a",), ["0", "1", "0"]))
    assert a == [0, 0]  # EIP-197 encodes infinity as (0, 0)


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("protocol",), "plonk", "protocol"),
        (("curve",), "bls12381", "curve"),
        (("nPublic",), 3, "nPublic"),
        (("IC",), [], "IC"),
        (("IC", 1, 1), "1", "IC\\[1\\]"),
        (("vk_alpha_1", 0), "1", "vk_alpha_1"),
        (("vk_delta_2", 0, 0), "1", "vk_delta_2"),
        (("vk_beta_2",), [["0", "0"], ["1", "0"], ["0", "0"]], "infinity"),
        (("vk_gamma_2",), [["1", "0"]], "vk_gamma_2"),
    ],
)
def test_malformed_vkey_raises(
    vk_dict: dict[str, Any], path: tuple[str | int, ...], value: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        VerificationKey.from_snarkjs(_edit(vk_dict, path, value))


def test_vkey_missing_key_raises(vk_dict: dict[str, Any]) -> None:
    bad = dict(vk_dict)
    del bad["vk_delta_2"]
    with pytest.raises(ValueError, match="vk_delta_2"):
        VerificationKey.from_snarkjs(bad)


# --- key pinning and calldata -------------------------------------------------------------------


def test_vkey_hash_is_canonical(vk_dict: dict[str, Any]) -> None:
    h = vkey_hash(vk_dict)
    assert len(h) == 64 and int(h, 16) >= 0
    reordered = json.loads(json.dumps(dict(reversed(list(vk_dict.items()))), indent=4))
    assert vkey_hash(reordered) == h
    assert vkey_hash(_edit(vk_dict, ("nPublic",), 3)) != h


def _hex_tree(v: Any) -> Any:
    """snarkjs prints calldata as comma-separated JSON arrays of 0x-hex strings."""
    return [_hex_tree(x) for x in v] if isinstance(v, list) else int(v, 16)


def test_proof_calldata_matches_snarkjs_fixture(
    proof_dict: dict[str, Any], public: list[str]
) -> None:
    expected = _hex_tree(json.loads(f"[{(FIXTURES / 'calldata.txt').read_text()}]"))
    a, b, c = proof_calldata(proof_dict)
    assert [a, b, c, [int(x) for x in public]] == expected


# --- agreement with snarkjs on a fresh setup ----------------------------------------------------


@dataclass(frozen=True)
class Live:
    dir: Path
    vk_path: Path
    proofs: dict[str, tuple[Path, Path]]  # name -> (proof.json, public.json)


def _run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def _must(*cmd: str | Path) -> None:
    proc = _run(*cmd)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Live:
    if not PTAU.exists():
        pytest.skip(f"dev ptau {PTAU} is missing; it is needed for a fresh Groth16 setup")
    if shutil.which("node") is None or not (BIN / "circom2").exists():
        pytest.skip("node toolchain not installed (run `make install`)")
    out = tmp_path_factory.mktemp("groth16_live")
    snarkjs = BIN / "snarkjs"
    # circom2 (a WASI build) finds -l include dirs only below its working directory, so it runs
    # from the repo root with a relative library path.
    flags = ["--r1cs", "--wasm", "-l", "node_modules", "-o"]
    _must(BIN / "circom2", FIXTURES / "tiny.circom", *flags, out)
    _must(snarkjs, "groth16", "setup", out / "tiny.r1cs", PTAU, out / "t0.zkey")
    _must(snarkjs, "zkey", "contribute", out / "t0.zkey", out / "t1.zkey", "-e=test", "-n=test")
    vk_path = out / "verification_key.json"
    _must(snarkjs, "zkey", "export", "verificationkey", out / "t1.zkey", vk_path)
    proofs = {}
    for name, inputs in {"one": {"a": "5", "b": "7"}, "two": {"a": "255", "b": "0"}}.items():
        (out / f"{name}.input.json").write_text(json.dumps(inputs))
        wasm_dir = out / "tiny_js"
        _must(
            "node",
            wasm_dir / "generate_witness.js",
            wasm_dir / "tiny.wasm",
            out / f"{name}.input.json",
            out / f"{name}.wtns",
        )
        pf, pub = out / f"{name}.proof.json", out / f"{name}.public.json"
        _must(snarkjs, "groth16", "prove", out / "t1.zkey", out / f"{name}.wtns", pf, pub)
        proofs[name] = (pf, pub)
    return Live(out, vk_path, proofs)


def _snarkjs_verify(live: Live, public: Sequence[int | str], proof_path: Path) -> bool:
    pub_path = live.dir / "candidate.public.json"
    pub_path.write_text(json.dumps([str(x) for x in public]))
    proc = _run(BIN / "snarkjs", "groth16", "verify", live.vk_path, pub_path, proof_path)
    return proc.returncode == 0


def test_live_agrees_with_snarkjs(live: Live) -> None:
    vk = VerificationKey.from_snarkjs(json.loads(live.vk_path.read_text()))
    (p1, pub1), (p2, pub2) = live.proofs["one"], live.proofs["two"]
    proof1 = Proof.from_snarkjs(json.loads(p1.read_text()))
    public1: list[str] = json.loads(pub1.read_text())
    public2: list[str] = json.loads(pub2.read_text())
    assert public1 == ["35", "7"] and public2 == ["0", "0"]
    cases: list[tuple[list[int | str], Path, bool]] = [
        (list(public1), p1, True),
        (list(public2), p2, True),
        ([36, 7], p1, False),  # tampered output
        (list(public2), p1, False),  # proof for other inputs
        (list(public1), p2, False),
    ]
    for pub, proof_path, expected in cases:
        ours = verify(vk, Proof.from_snarkjs(json.loads(proof_path.read_text())), pub)
        assert ours is expected, (pub, proof_path.name)
        assert _snarkjs_verify(live, pub, proof_path) is expected, (pub, proof_path.name)
    swapped = Proof(proof1.c, proof1.b, proof1.a)
    assert not verify(vk, swapped, public1)
    # snarkjs 0.7.6 `groth16 verify` does not check the count: it accepts ["0"] or [] for this
    # proof, treating missing trailing inputs as zero. We refuse a short list outright.
    with pytest.raises(ValueError, match="public inputs"):
        verify(vk, Proof.from_snarkjs(json.loads(p2.read_text())), ["0"])


def test_live_aliased_input_rejected_by_both(live: Live) -> None:
    vk = VerificationKey.from_snarkjs(json.loads(live.vk_path.read_text()))
    p1, _ = live.proofs["one"]
    proof = Proof.from_snarkjs(json.loads(p1.read_text()))
    aliased = [P + 35, 7]
    with pytest.raises(ValueError, match="canonical"):
        verify(vk, proof, aliased)
    # snarkjs >= 0.7 also refuses (it returns false rather than raising).
    assert not _snarkjs_verify(live, aliased, p1)


def test_live_calldata_matches_snarkjs(live: Live) -> None:
    p1, pub1 = live.proofs["one"]
    proc = _run(BIN / "snarkjs", "zkey", "export", "soliditycalldata", pub1, p1)
    assert proc.returncode == 0, proc.stderr
    expected = _hex_tree(json.loads(f"[{proc.stdout.strip()}]"))
    a, b, c = proof_calldata(json.loads(p1.read_text()))
    assert [a, b, c, [int(x) for x in json.loads(pub1.read_text())]] == expected


@pytest.mark.bench
def test_bench_verify(vk: VerificationKey, proof: Proof, public: list[str]) -> None:
    runs = 5
    start = time.perf_counter()
    for _ in range(runs):
        assert verify(vk, proof, public)
    per = (time.perf_counter() - start) / runs
    start = time.perf_counter()
    Proof.from_snarkjs(load("proof.json"))
    parse = time.perf_counter() - start
    print(f"\ngroth16 verify: {per:.3f} s per proof (2 public inputs); proof parse {parse:.3f} s")


def _jac1(p: G1Point) -> Any:
    return (FQ(p[0]), FQ(p[1]), FQ.one())


def _jac2(p: G2Point) -> Any:
    return (FQ2(list(p[0])), FQ2(list(p[1])), FQ2.one())


def malleate(proof: Proof, r: int) -> Proof:
    """(A/r, r·B, C): a different valid proof of the same statement, made without any secret.
    Groth16 proofs are malleable, so nothing in zksolvency may use proof bytes as identifiers
    (ANCHORS attack 11)."""
    assert proof.a is not None and proof.b is not None
    inv = pow(r, -1, P)
    return Proof(
        _affine1(multiply(_jac1(proof.a), inv)), _affine2(multiply(_jac2(proof.b), r)), proof.c
    )


def test_malleated_proof_verifies_but_is_a_different_proof(
    vk: VerificationKey, proof: Proof, public: list[str]
) -> None:
    """The statement, not the proof bytes, is what is verified: a re-randomised proof passes.
    The registry therefore keys everything on public inputs (epoch, batch index, state chain;
    tests/contracts show a replayed batch is refused by its index) and bundles pin proof files
    by the hash recorded in the manifest (tests/prover/test_bundle.py)."""
    other = malleate(proof, 0x1234567)
    assert other != proof
    assert verify(vk, other, public)
    assert not verify(vk, other, [*public[:-1], str((int(public[-1]) + 1) % P)])

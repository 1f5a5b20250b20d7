"""Offline bundle verification refuses every edit to a proven epoch's bundle."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from zksolvency.prover.bundle import (
    BundleError,
    BundleFormatError,
    TrustAnchors,
    load_bundle,
    verify_bundle,
)
from zksolvency.prover.commitments import registry_domain
from zksolvency.prover.witness import covered_by


@pytest.fixture
def bundle_copy(tiny_epoch: Any, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(tiny_epoch.dir, out, ignore=shutil.ignore_patterns("private"))
    return out


def _edit(bundle: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = bundle / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m, indent=2))


def test_an_untouched_bundle_verifies(bundle_copy: Path) -> None:
    report = verify_bundle(load_bundle(bundle_copy))
    assert report.proofs_verified == report.batches + 1
    assert any("taken from the bundle" in w for w in report.warnings)


def _set_total(m: dict[str, Any]) -> None:
    m["totals"]["BTC"]["net"] = "0"


def _set_reserve(m: dict[str, Any]) -> None:
    m["reserves"]["declared"]["BTC"] = "1000000"


def _set_verified_reserve(m: dict[str, Any]) -> None:
    m["reserves"]["verified"]["BTC"] = "1000000"


def _set_raw_reserve(m: dict[str, Any]) -> None:
    raw = m["reserves_raw"]["declared"]
    raw[0] = str(int(raw[0]) + 1)


def _raise_reserve_consistently(m: dict[str, Any]) -> None:
    # readable and raw agree, so only the solvency proof's public signals can catch it
    from zksolvency.prover.snapshot import format_amount

    raw = int(m["reserves_raw"]["declared"][0]) + 1
    m["reserves_raw"]["declared"][0] = str(raw)
    dec = int(m["context"]["assets"][0]["decimals"])
    m["reserves"]["declared"]["BTC"] = format_amount(raw, dec)


def _move_reserve_to_verified(m: dict[str, Any]) -> None:
    # declared BTC relabelled as verified, readable and raw agreeing: the total is unchanged,
    # but verified reserves need the custody list they were read from (and the solvency proof
    # says which reserves the registry read)
    from zksolvency.prover.snapshot import format_amount

    dec = int(m["context"]["assets"][0]["decimals"])
    raw = m["reserves_raw"]
    raw["verified"][0], raw["declared"][0] = raw["declared"][0], raw["verified"][0]
    for kind in ("verified", "declared"):
        m["reserves"][kind]["BTC"] = format_amount(int(raw[kind][0]), dec)
    totals = [int(t) for t in m["totals_raw"]]
    m["reserves"]["verified_only"] = covered_by(totals, [int(v) for v in raw["verified"]])


def _flip_verified_only(m: dict[str, Any]) -> None:
    m["reserves"]["verified_only"] = not m["reserves"]["verified_only"]


def _verified_without_custody(m: dict[str, Any]) -> None:
    m["reserves_raw"]["verified"][0] = "1"


def _custody_for_another_registry(m: dict[str, Any]) -> None:
    # the tiny bundle is bound to no registry, so no custody list can be for it
    m["custody"] = {"chain_id": 1, "registry": "0x" + "11" * 20, "epoch": 1, "custody": []}


def _unsplit_reserves(m: dict[str, Any]) -> None:
    m["reserves"] = m["reserves"]["declared"]


def _set_raw_total(m: dict[str, Any]) -> None:
    m["totals_raw"][0] = str(int(m["totals_raw"][0]) + 1)


def _swap_states(m: dict[str, Any]) -> None:
    m["state_chain"][1], m["state_chain"][2] = m["state_chain"][2], m["state_chain"][1]


def _drop_batch(m: dict[str, Any]) -> None:
    del m["proofs"]["batches"][1]
    del m["state_chain"][2]
    m["batches"] -= 1
    m["accounts"] = 4  # so that two batches could hold them


def _fewer_accounts(m: dict[str, Any]) -> None:
    m["accounts"] = 2  # 3 batches of 2 cannot hold just 2 accounts


def _not_development(m: dict[str, Any]) -> None:
    m["development_setup"] = False  # while the keys say otherwise


def _other_shape(m: dict[str, Any]) -> None:
    m["circuits"]["solvency"]["params"][2] = 4  # described as a 4-asset circuit


def _claim_a_registry(m: dict[str, Any]) -> None:
    m["registry"] = {"chain_id": 1, "address": "0x" + "11" * 20}  # the proof says unbound


def _bind_without_proof(m: dict[str, Any]) -> None:
    m["domain"] = str(registry_domain(1, "0x" + "11" * 20))
    m["registry"] = {"chain_id": 1, "address": "0x" + "11" * 20}


def _reprice(m: dict[str, Any]) -> None:
    m["context"]["assets"][0]["price_e8"] = str(int(m["context"]["assets"][0]["price_e8"]) + 1)


def _root(m: dict[str, Any]) -> None:
    m["root"] = str(int(m["root"]) + 1)


def _vkey(m: dict[str, Any]) -> None:
    m["circuits"]["batch"]["vkey_json"]["IC"][0][0] = "1"


def _public(m: dict[str, Any]) -> None:
    m["proofs"]["batches"][0]["public_signals"][1] = "5"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_total, "readable totals or reserves differ"),
        (_set_reserve, "readable totals or reserves differ"),
        (_set_verified_reserve, "readable totals or reserves differ"),
        (_set_raw_reserve, "readable totals or reserves differ"),
        (_raise_reserve_consistently, "solvency proof: public signals differ"),
        (_move_reserve_to_verified, "verified reserves without the custody list"),
        (_flip_verified_only, "verified_only disagrees"),
        (_unsplit_reserves, "not split into verified and declared"),
        (_verified_without_custody, "verified reserves without the custody list"),
        (_custody_for_another_registry, "signed for another registry, chain or epoch"),
        (_set_raw_total, "do not match the totals commitment"),
        (_swap_states, "do not continue the state chain"),
        (_drop_batch, "do not continue the state chain"),
        (_reprice, "published weight disagrees with its price"),
        (_root, "solvency proof: public signals differ"),
        (_vkey, "does not match its recorded hash"),
        (_public, "batch 0: public signals do not continue the state chain"),
        (_fewer_accounts, "cannot fill exactly 3 batches"),
        (_not_development, "development_setup flag disagrees"),
        (_other_shape, "solvency circuit is described with shape"),
        (_claim_a_registry, "does not match its domain"),
        (_bind_without_proof, "solvency proof: public signals differ"),
    ],
)
def test_edited_manifest_is_refused(
    bundle_copy: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    _edit(bundle_copy, change)
    with pytest.raises(BundleError, match=message):
        verify_bundle(load_bundle(bundle_copy))


def test_missing_public_signals_file_is_refused(bundle_copy: Path) -> None:
    """The manifest lists each proof's public-signals file: a bundle without it is incomplete."""
    (bundle_copy / "proofs" / "batch_000001.public.json").unlink()
    with pytest.raises(BundleError, match="missing public-signals file"):
        verify_bundle(load_bundle(bundle_copy))


def test_unbound_bundle_verifies_with_a_warning(bundle_copy: Path) -> None:
    report = verify_bundle(load_bundle(bundle_copy))
    assert any("bound to no registry" in w for w in report.warnings)


def test_bundle_bound_elsewhere_than_the_anchors_is_refused(bundle_copy: Path) -> None:
    """Anchors naming a registry (a deployment record) accept only a bundle bound to it."""
    m = load_bundle(bundle_copy).manifest
    anchors = TrustAnchors(
        m["circuits"]["batch"]["vkey_sha256"],
        m["circuits"]["solvency"]["vkey_sha256"],
        chain_id=31337,
        registry="0x" + "22" * 20,
    )
    with pytest.raises(BundleError, match=r"bound to no registry .*, not to the trusted chain 3"):
        verify_bundle(load_bundle(bundle_copy), anchors)


def test_edited_proof_file_is_refused(bundle_copy: Path) -> None:
    proof = bundle_copy / "proofs" / "batch_000001.proof.json"
    data = json.loads(proof.read_text())
    data["pi_a"][0], data["pi_c"][0] = data["pi_c"][0], data["pi_a"][0]
    proof.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="does not match the hash recorded"):
        verify_bundle(load_bundle(bundle_copy))


def test_keys_must_match_the_trust_anchors(bundle_copy: Path) -> None:
    m = load_bundle(bundle_copy).manifest
    good = TrustAnchors(
        m["circuits"]["batch"]["vkey_sha256"], m["circuits"]["solvency"]["vkey_sha256"]
    )
    assert verify_bundle(load_bundle(bundle_copy), good).anchored
    bad = TrustAnchors(good.batch_vkey_sha256, "ab" * 32)
    with pytest.raises(BundleError, match=r"solvency verification key .* is not the trusted one"):
        verify_bundle(load_bundle(bundle_copy), bad)
    # The margin key single-account proofs must use is pinned the same way.
    margin = replace(good, margin_vkey_sha256=m["circuits"]["margin"]["vkey_sha256"])
    assert verify_bundle(load_bundle(bundle_copy), margin).anchored
    with pytest.raises(BundleError, match="margin verification key is not the pinned one"):
        verify_bundle(load_bundle(bundle_copy), replace(good, margin_vkey_sha256="cd" * 32))
    # And the circuits: an r1cs hash other than the pinned one is refused.
    circuits = {k: m["circuits"][k]["r1cs_sha256"] for k in ("batch", "solvency", "margin")}
    assert verify_bundle(load_bundle(bundle_copy), replace(good, r1cs_sha256=circuits)).anchored
    for kind in circuits:
        pinned = {**circuits, kind: "ef" * 32}
        with pytest.raises(BundleError, match=f"{kind} circuit \\(r1cs\\) is not the pinned"):
            verify_bundle(load_bundle(bundle_copy), replace(good, r1cs_sha256=pinned))


def test_missing_or_foreign_manifest_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BundleFormatError, match=r"no manifest\.json"):
        load_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(BundleFormatError, match="not a zksolvency-epoch/4 manifest"):
        load_bundle(tmp_path)


def test_a_malleated_proof_file_is_refused_by_its_recorded_hash(bundle_copy: Path) -> None:
    """ANCHORS attack 11: a re-randomised proof still verifies, so bundles never trust proof
    bytes without the manifest's hash of them, and the manifest's own hash is what the registry
    records. Swapping in a malleated batch proof is caught by the hash; re-recording the hash
    changes the bundle hash, which then no longer matches the registry's."""
    from zksolvency.prover.groth16 import Proof as G16Proof

    m = load_bundle(bundle_copy).manifest
    entry = m["proofs"]["batches"][0]
    path = bundle_copy / entry["proof"]
    original = json.loads(path.read_text())
    p = G16Proof.from_snarkjs(original)
    # (A/r, r·B, C), computed as in tests/prover/test_groth16.py
    from py_ecc.fields import optimized_bn128_FQ as FQ
    from py_ecc.fields import optimized_bn128_FQ2 as FQ2
    from py_ecc.optimized_bn128.optimized_curve import multiply, normalize
    from zksolvency.prover.field import P

    assert p.a is not None and p.b is not None
    r = 7
    a = normalize(multiply((FQ(p.a[0]), FQ(p.a[1]), FQ.one()), pow(r, -1, P)))
    b = normalize(multiply((FQ2(list(p.b[0])), FQ2(list(p.b[1])), FQ2.one()), r))
    forged = dict(original)
    forged["pi_a"] = [str(int(a[0])), str(int(a[1])), "1"]
    forged["pi_b"] = [
        [str(int(b[0].coeffs[0])), str(int(b[0].coeffs[1]))],
        [str(int(b[1].coeffs[0])), str(int(b[1].coeffs[1]))],
        ["1", "0"],
    ]
    before = load_bundle(bundle_copy).sha256
    path.write_text(json.dumps(forged))
    with pytest.raises(BundleError, match="does not match the hash recorded"):
        verify_bundle(load_bundle(bundle_copy))
    # Re-recording the hash makes a bundle that verifies, but it is another bundle.
    from zksolvency.prover.atomic import sha256_file

    _edit(bundle_copy, lambda m: m["proofs"]["batches"][0].update(proof_sha256=sha256_file(path)))
    assert (
        verify_bundle(load_bundle(bundle_copy)).proofs_verified == len(m["proofs"]["batches"]) + 1
    )
    assert load_bundle(bundle_copy).sha256 != before


@pytest.mark.parametrize("parallel", [False, True], ids=["in-process", "worker-processes"])
def test_batch_proofs_fail_by_index_in_process_or_in_workers(
    bundle_copy: Path, parallel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many batches are verified in spawned worker processes: the outcome, and which batch it
    names, are those of the in-process loop (the first failing batch is the one raised)."""
    import hashlib

    from zksolvency.prover import bundle as bundle_mod
    from zksolvency.prover.bundle import batch_failures, check_context, check_header
    from zksolvency.prover.bundle import check_state_chain as chain_of

    monkeypatch.setattr(bundle_mod, "PARALLEL_FROM", 1 if parallel else 10**9)
    b = load_bundle(bundle_copy)
    keys, ctx = check_header(b, None), check_context(b)
    chain = chain_of(b, ctx)
    steps: list[int] = []
    assert batch_failures(b, range(3), keys.batch, chain, ctx, steps.append, workers=2) == {}
    assert steps == [1, 1, 1]
    assert verify_bundle(b, workers=2).proofs_verified == 4

    # batches 1 and 2 carry batch 0's proof: well-formed, of another statement
    def swap(m: dict[str, Any]) -> None:
        entries = m["proofs"]["batches"]
        for k in (1, 2):
            shutil.copyfile(bundle_copy / entries[0]["proof"], bundle_copy / entries[k]["proof"])
            data = (bundle_copy / entries[k]["proof"]).read_bytes()
            entries[k]["proof_sha256"] = hashlib.sha256(data).hexdigest()

    _edit(bundle_copy, swap)
    b = load_bundle(bundle_copy)
    failures = batch_failures(b, range(3), keys.batch, chain, ctx, workers=2)
    assert sorted(failures) == [1, 2]
    assert all(isinstance(e, BundleError) for e in failures.values())
    assert str(failures[1]) == "batch 1: the Groth16 proof does not verify"
    with pytest.raises(BundleError, match=r"^batch 1: the Groth16 proof does not verify$"):
        verify_bundle(b, workers=2)

"""A tiny real epoch through the CLI: prove, verify-bundle, export, verify, resume, and every
proof checked by plain `snarkjs groth16 verify` against the manifest's verification keys."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from zksolvency.prover.paths import node_bin


def test_prove_reports_the_epoch(tiny_epoch: Any) -> None:
    out = tiny_epoch.prove_result.stdout
    assert "epoch 1: 5 accounts in 3 batches" in out
    # net liabilities, verified reserves (none read on-chain), declared reserves
    assert f"{'BTC':8s} {'4.65000001':>24s} {'0':>24s} {'5':>24s}" in out
    assert "solvent on verified reserves alone: no" in out
    m = tiny_epoch.manifest
    assert (m["epoch"], m["accounts"], m["batches"]) == (1, 5, 3)
    assert m["params"] == {
        "batch_levels": 1,
        "tree_depth": 4,
        "n_assets": 2,
        "n_instruments": 2,
        "n_scenarios": 8,
        "n_tiers": 2,
    }
    assert m["reserves"] == {
        "verified": {"BTC": "0", "USDT": "0"},  # no custody addresses: nothing read on-chain
        "declared": {"BTC": "5", "USDT": "20000"},
        "verified_only": False,
    }
    assert m["custody"] is None
    assert len(m["state_chain"]) == 4
    assert m["state_chain"][0] == m["context"]["ctx_hash"]


def test_verify_bundle(cli: Callable[..., Result], tiny_epoch: Any) -> None:
    result = cli("verify-bundle", tiny_epoch.dir)
    assert result.exit_code == 0, result.output
    assert f"OK: epoch 1, 4 proofs verified, root {tiny_epoch.manifest['root']}" in result.stdout


def _snarkjs_verify(
    tmp: Path, vkey: dict[str, Any], public: Path, proof: Path
) -> subprocess.CompletedProcess[str]:
    vkey_file = tmp / "vkey.json"
    vkey_file.write_text(json.dumps(vkey))
    return subprocess.run(
        [str(node_bin("snarkjs")), "groth16", "verify", str(vkey_file), str(public), str(proof)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_proof_verifies_with_plain_snarkjs(tiny_epoch: Any, tmp_path: Path) -> None:
    """Acceptance: snarkjs alone, with the vkeys recorded in the manifest, accepts each proof."""
    m = tiny_epoch.manifest
    entries = [("batch", e) for e in m["proofs"]["batches"]]
    entries.append(("solvency", m["proofs"]["solvency"]))
    assert len(entries) == 4
    for kind, entry in entries:
        proc = _snarkjs_verify(
            tmp_path,
            m["circuits"][kind]["vkey_json"],
            tiny_epoch.dir / entry["public"],
            tiny_epoch.dir / entry["proof"],
        )
        assert proc.returncode == 0 and "OK!" in proc.stdout, (entry["name"], proc.stdout)

    # The same command refuses a proof whose public signals were changed: the check has teeth.
    first = m["proofs"]["batches"][0]
    public = json.loads((tiny_epoch.dir / first["public"]).read_text())
    public[1] = str(int(public[1]) + 1)
    forged = tmp_path / "forged_public.json"
    forged.write_text(json.dumps(public))
    proc = _snarkjs_verify(
        tmp_path, m["circuits"]["batch"]["vkey_json"], forged, tiny_epoch.dir / first["proof"]
    )
    assert proc.returncode != 0 and "OK!" not in proc.stdout


def test_export_and_verify_offline(
    cli: Callable[..., Result], tiny_epoch: Any, packages: Any, tmp_path: Path
) -> None:
    pkg = packages.load()
    assert pkg["account"]["id"] == "bob" and pkg["epoch"] == 1
    assert pkg["root"] == tiny_epoch.manifest["root"]
    assert pkg["bundle"]["manifest_sha256"] == tiny_epoch.sha256()
    report = tmp_path / "report.json"
    result = cli("verify-inclusion", packages.good, "--bundle", tiny_epoch.dir, "--json", report)
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[0] == "account bob, epoch 1"
    assert [line.split() for line in out[1:5]] == [
        ["BTC", "equity", "0.25", "debt", "0"],
        ["USDT", "equity", "0", "debt", "50.5"],
        ["BTC-PERP", "position", "-10"],
        ["BTC-C70K", "position", "5"],
    ]
    # bob's own margin, recomputed from his package: his worst scenario is a fall with vol down
    assert out[5] == (
        "  margin headroom 15,238.48 USD in the worst scenario (price -1×range, vol down)"
    )
    statuses = {line.split("]")[1].split(":")[0].strip(): line.split("]")[0] for line in out[6:16]}
    assert all("PASS" in v for k, v in statuses.items() if k != "The registry attests this epoch")
    assert "SKIP" in statuses["The registry attests this epoch"]
    assert "VERIFIED: account bob is included in epoch 1" in result.stdout
    assert "It does not prove:" in result.stdout
    doc = json.loads(report.read_text())
    assert doc["ok"] is True and [c["status"] for c in doc["checks"]].count("pass") == 9


def test_verify_refuses_an_edited_balance(
    cli: Callable[..., Result], tiny_epoch: Any, packages: Any
) -> None:
    result = cli("verify-inclusion", packages.tampered, "--bundle", tiny_epoch.dir)
    assert result.exit_code == 1, result.output
    assert "[FAIL] Your data makes your leaf: your id, salt, balances and positions do not" in (
        result.stdout
    )
    assert "NOT VERIFIED: the check 'Your data makes your leaf' failed" in result.stdout
    assert "VERIFIED: account" not in result.stdout


def test_verify_refuses_a_bundle_with_edited_prices(
    cli: Callable[..., Result], tiny_epoch: Any, packages: Any, tmp_path: Path
) -> None:
    """The prices come from the bundle, and an edited price contradicts its derived numbers; the
    package's own checks still pass, and the report says which one failed."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_epoch.dir, bundle, ignore=shutil.ignore_patterns("private"))
    m = json.loads((bundle / "manifest.json").read_text())
    asset = m["context"]["assets"][0]
    asset["price_e8"] = str(int(asset["price_e8"]) * 2)
    (bundle / "manifest.json").write_text(json.dumps(m))
    result = cli("verify-inclusion", packages.good, "--bundle", bundle)
    assert result.exit_code == 1, result.output
    assert "[PASS] Your leaf is in the epoch's tree" in result.stdout
    # a re-written manifest is another bundle than the one the package names
    assert "[FAIL] The package belongs to this epoch bundle: the package was exported from" in (
        result.stdout
    )


def test_verify_refuses_a_non_json_package(
    cli: Callable[..., Result], tiny_epoch: Any, packages: Any
) -> None:
    result = cli("verify-inclusion", packages.not_json, "--bundle", tiny_epoch.dir)
    assert result.exit_code == 2, result.output
    assert f"{packages.not_json}:1: invalid JSON" in result.stderr


def test_export_of_an_unknown_account_is_bad_input(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path: Path
) -> None:
    out = tmp_path / "pkg.json"
    result = cli("export", tiny_epoch.dir, "--account", "nobody", "--out", out)
    assert result.exit_code == 2
    assert "no account 'nobody' in epoch 1" in result.stderr
    assert not out.exists()


@pytest.fixture
def epoch_copy(tiny_epoch: Any, tmp_path: Path) -> Path:
    """A private copy of the tiny epoch directory, for commands that write into it."""
    copy = tmp_path / "epoch"
    shutil.copytree(tiny_epoch.dir, copy)
    return copy


def test_prove_again_resumes_with_an_identical_manifest(
    cli: Callable[..., Result], tiny_epoch: Any, epoch_copy: Path
) -> None:
    before = (epoch_copy / "manifest.json").read_bytes()
    args = [a if a != str(tiny_epoch.dir) else str(epoch_copy) for a in tiny_epoch.prove_args]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "resuming: 4 of 4 proofs already done" in result.stderr
    assert "proving" not in result.stderr
    after = json.loads((epoch_copy / "manifest.json").read_bytes())
    first = json.loads(before)
    assert (after["root"], after["state_chain"]) == (first["root"], first["state_chain"])
    # The whole manifest, and so the bundle hash registered on chain, is unchanged.
    assert (epoch_copy / "manifest.json").read_bytes() == before


def test_prove_into_a_directory_of_another_run_is_refused(
    cli: Callable[..., Result], tiny_epoch: Any, epoch_copy: Path, tmp_path: Path
) -> None:
    snapshot = json.loads(tiny_epoch.snapshot.read_text())
    snapshot["accounts"][0]["equity"]["BTC"] = "1.4"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(snapshot))
    before = {p: p.read_bytes() for p in epoch_copy.rglob("*") if p.is_file()}
    args = list(tiny_epoch.prove_args)
    args[1] = str(other)
    args[args.index("--out") + 1] = str(epoch_copy)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert f"{epoch_copy} holds a run with other inputs or keys" in result.stderr
    after = {p: p.read_bytes() for p in epoch_copy.rglob("*") if p.is_file()}
    assert after == before

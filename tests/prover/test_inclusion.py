"""verify_inclusion on the tiny epoch: every check passes on an exported package, and an edit to
any one field of the package is rejected by a named check, whose message says what was wrong."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from zksolvency.prover.inclusion import (
    CHECKS,
    FORMAT,
    export_package,
    parse_package,
    verify_inclusion,
)
from zksolvency.prover.package_store import PackageStore, build_store, export_files


@pytest.fixture(scope="module")
def bob(tiny_epoch: Any) -> dict[str, Any]:
    return export_package(tiny_epoch.dir, "bob")


def test_an_exported_package_passes_every_offline_check(
    tiny_epoch: Any, bob: dict[str, Any]
) -> None:
    t0 = time.perf_counter()
    report = verify_inclusion(bob, tiny_epoch.dir)
    elapsed = time.perf_counter() - t0
    print(f"\nverify_inclusion offline: {elapsed:.2f} s")
    assert [c.key for c in report.checks] == list(CHECKS)
    assert {c.key: c.status for c in report.checks} == {
        **{k: "pass" for k in CHECKS},
        "onchain": "skip",
    }
    assert report.ok and report.summary()[0].startswith("VERIFIED: account bob")
    assert report.balances == {"BTC": ("0.25", "0"), "USDT": ("0", "50.5")}
    # The package is small and names nothing but bob's own data and shared references.
    text = json.dumps(bob)
    assert len(text) < 4000
    assert set(bob) == {
        "format", "epoch", "account", "layout", "leaf_index", "leaf", "siblings", "root",
        "batch", "bundle", "registry",
    }  # fmt: skip
    for other in ("alice", "carol", "dave", "erin"):
        assert other not in text


def test_offline_every_batch_proof_is_verified(tiny_epoch: Any, bob: dict[str, Any]) -> None:
    report = verify_inclusion(bob, tiny_epoch.dir)
    assert report.ok and report.details["batches_verified_here"] == 3
    assert "all 3 batch proofs verified" in next(
        c.detail for c in report.checks if c.key == "state_chain"
    )
    # No trust anchors: the verdict says the keys are the exchange's own word, beside it.
    assert report.summary()[0].endswith("under keys nothing here pinned (see below).")
    assert report.summary()[1].startswith("Caution: no trust anchors were given")
    assert report.as_json()["unpinned"] == [report.summary()[1].removeprefix("Caution: ")]


def test_an_unverifiable_batch_after_the_users_fails_offline(
    tiny_epoch: Any, tmp_path: Path
) -> None:
    """The solvency proof opens the final state; only the batch proofs carry a user's batch to
    it. A bundle whose later batch proof does not verify (as when the final state was forged
    and the last batch's proof left stale) must not read as verified for a user of an earlier
    batch, although their own batch proof and the solvency proof both hold."""
    epoch = tmp_path / "epoch"
    shutil.copytree(tiny_epoch.dir, epoch)
    pkg = export_package(epoch, "bob")
    user_batch = int(pkg["batch"]["index"])
    k = next(j for j in (2, 1, 0) if j != user_batch)
    manifest = json.loads((epoch / "manifest.json").read_text())
    entry = manifest["proofs"]["batches"][k]
    other = manifest["proofs"]["batches"][next(j for j in (0, 1, 2) if j not in (k,))]
    # a well-formed Groth16 proof, of another batch's statement
    shutil.copyfile(epoch / other["proof"], epoch / entry["proof"])
    entry["proof_sha256"] = hashlib.sha256((epoch / entry["proof"]).read_bytes()).hexdigest()
    (epoch / "manifest.json").write_text(json.dumps(manifest, indent=2))
    pkg = export_package(epoch, "bob")  # the package names the edited bundle

    report = verify_inclusion(pkg, epoch)
    assert not report.ok
    failed = [c.key for c in report.failed]
    assert failed == ["state_chain"], report.checks
    assert f"batch {k}" in report.failed[0].detail
    assert report.status("batch_proof") == "pass"  # the user's own batch is sound
    assert report.summary()[0].startswith("NOT VERIFIED")
    # all_batches=False does not skip them offline: only the registry's record can stand in.
    assert not verify_inclusion(pkg, epoch, all_batches=False).ok


def test_without_the_bundle_nothing_is_verified(bob: dict[str, Any]) -> None:
    """The bundle fixes the package's layout (a package could restate its decimals so that
    the user's own figures parse to smaller committed amounts): without it no verdict."""
    report = verify_inclusion(bob, None)
    assert not report.ok and not report.failed
    assert report.status("bundle") == "skip"
    assert report.summary()[0].startswith("NOT VERIFIED: the epoch's bundle is needed")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def edit(pkg: dict[str, Any]) -> None:
        node = pkg
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value

    return edit


def _bump(x: Any) -> str:
    return str(int(x) + 1)


#: (field edited, how, the check that must fail, words its message must hold)
TAMPERS = [
    ("format", _set("format", "zksolvency-inclusion/2"), "package", "not a"),
    ("epoch", _set("epoch", 2), "bundle", "epoch or root"),
    ("account.id", _set("account.id", "mallory"), "leaf", "do not hash to the leaf"),
    ("account.salt", _set("account.salt", _bump), "leaf", "do not hash to the leaf"),
    ("equity", _set("account.equity.BTC", "0.26"), "leaf", "do not hash to the leaf"),
    ("debt", _set("account.debt.USDT", "50"), "leaf", "do not hash to the leaf"),
    ("position", _set("account.positions.BTC-PERP", "-9"), "leaf", "do not hash to the leaf"),
    ("new position", _set("account.positions.ETH-PERP", "1"), "package", "outside the epoch"),
    ("new asset", _set("account.equity.DOGE", "1"), "package", "outside the epoch"),
    ("layout.params", _set("layout.params.tree_depth", 5), "path", "depth"),
    ("layout.decimals", _set("layout.assets.0.decimals", 7), "leaf", "do not hash to the leaf"),
    ("layout.symbol", _set("layout.assets.0.symbol", "WBTC"), "package", "outside the epoch"),
    ("layout.instruments", _set("layout.instruments", lambda v: v[::-1]), "leaf", "hash"),
    ("leaf", _set("leaf", _bump), "leaf", "do not hash to the leaf"),
    ("leaf_index", _set("leaf_index", lambda i: i ^ 1), "path", "does not climb"),
    ("sibling", _set("siblings.1", _bump), "path", "does not climb"),
    ("root", _set("root", _bump), "path", "does not climb"),
    ("batch.index", _set("batch.index", lambda k: k ^ 1), "batch_proof", "lies in batch"),
    ("batch.proof", _set("batch.proof", "proofs/x.json"), "batch_proof", "not the bundle's"),
    ("batch.sha256", _set("batch.proof_sha256", "00" * 32), "batch_proof", "not the bundle's"),
    ("batch.signals", _set("batch.public_signals.1", _bump), "batch_proof", "not the bundle's"),
    ("bundle.sha256", _set("bundle.manifest_sha256", "ab" * 32), "bundle", "exported from"),
    ("bundle.ctx", _set("bundle.ctx_hash", _bump), "bundle", "context hash"),
    ("bundle.final", _set("bundle.final_state", _bump), "state_chain", "ends at another"),
    (
        "registry",
        _set("registry", {"chain_id": 1, "address": "0x" + "11" * 20}),
        "bundle",
        "another registry",
    ),
]


@pytest.mark.parametrize(("field", "edit", "check", "words"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_an_edit_to_any_field_is_rejected_by_name(
    tiny_epoch: Any,
    bob: dict[str, Any],
    field: str,
    edit: Callable[[dict[str, Any]], None],
    check: str,
    words: str,
) -> None:
    bad = copy.deepcopy(bob)
    edit(bad)
    report = verify_inclusion(bad, tiny_epoch.dir)
    assert not report.ok
    failed = report.failed[0]
    assert failed.key == check, [(c.key, c.status, c.detail) for c in report.checks]
    assert words in failed.detail
    assert report.summary()[0].startswith(f"NOT VERIFIED: the check '{CHECKS[check][0]}' failed")


def test_a_malformed_package_is_a_failed_package_check(tiny_epoch: Any) -> None:
    report = verify_inclusion(b"{not json", tiny_epoch.dir)
    assert report.failed[0].key == "package" and "invalid JSON" in report.failed[0].detail
    assert all(c.status == "skip" for c in report.checks[1:] if c.key != "bundle")
    with pytest.raises(ValueError, match=f"not a {FORMAT} package"):
        parse_package(b"[1, 2]", "p.json")


def test_the_store_holds_every_account_and_resumes(tiny_epoch: Any, tmp_path: Path) -> None:
    import shutil
    import sqlite3

    epoch = tmp_path / "epoch"
    shutil.copytree(tiny_epoch.dir, epoch)
    (epoch / "private" / "packages.sqlite").unlink(missing_ok=True)
    from_rows = export_package(epoch, "bob")  # no store yet: made from the private rows
    # An interrupted build: a partial store with the first two packages.
    stats = build_store(epoch, chunk=2)
    assert stats.packages == 5 and stats.resumed == 0
    partial = epoch / "private" / "packages.sqlite.partial"
    shutil.copy(stats.path, partial)
    db = sqlite3.connect(partial)
    with db:
        db.execute("DELETE FROM packages WHERE leaf_index >= 2")
        db.execute("UPDATE meta SET value = '0' WHERE key = 'complete'")
    db.close()
    stats.path.unlink()
    resumed = build_store(epoch, chunk=2)
    assert (resumed.packages, resumed.resumed) == (5, 2)
    assert not partial.exists()
    with PackageStore.open(epoch) as store:
        assert len(store) == 5
        pkg = store.get("bob")
    assert pkg == from_rows == export_package(epoch, "bob")
    assert verify_inclusion(pkg, epoch).ok
    files = tmp_path / "files"
    assert export_files(epoch, files) == 5
    assert json.loads((files / "bob.json").read_text()) == pkg


def test_a_deeply_nested_file_is_refused_before_parsing() -> None:
    # json.loads would recurse 200,000 levels, past what the C stack holds.
    with pytest.raises(ValueError, match="nested deeper than 32 levels"):
        parse_package(b"[" * 200_000, "deep.json")
    assert parse_package(json.dumps({"format": FORMAT, "s": "[[[[" * 20}))["s"].startswith("[[")


@pytest.mark.bench
def test_bench_package_generation(tmp_path: Path) -> None:
    """Packages per second into the store for 20,000 planned accounts (printed, not asserted:
    benchmarks/bench_packages.py runs the sizes of the README's table)."""
    import importlib.util

    from zksolvency.prover.params import EpochParams

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_packages.py"
    spec = importlib.util.spec_from_file_location("bench_packages", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    d = EpochParams.default()
    bench.run(
        20_000, EpochParams(3, 20, 4, d.n_instruments, d.n_scenarios, d.n_tiers), tmp_path, False
    )


@pytest.mark.bench
def test_bench_verify_inclusion(tiny_epoch: Any, bob: dict[str, Any]) -> None:
    """Wall time of the one-command check offline, five runs (printed, not asserted)."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        assert verify_inclusion(bob, tiny_epoch.dir).ok
        times.append(time.perf_counter() - t0)
    print(f"\nverify_inclusion offline: best {min(times):.3f} s, worst {max(times):.3f} s")


def test_the_verdict_says_what_the_trust_anchors_leave_open() -> None:
    from zksolvency.prover.bundle import TrustAnchors
    from zksolvency.prover.inclusion import _unpinned

    keys_only = TrustAnchors("aa" * 32, "bb" * 32)
    assert _unpinned(keys_only, onchain=False) == []  # offline, the keys are all there is
    (line,) = _unpinned(keys_only, onchain=True)
    assert line.startswith(
        "the trust anchors pin no chain id, registry address, batch verifier code, solvency "
        "verifier code: the registry read is the one the package names"
    )
    full = TrustAnchors("aa" * 32, "bb" * 32, 1, "0x" + "11" * 20, "cc" * 32, "dd" * 32)
    assert _unpinned(full, onchain=True) == []
    (none,) = _unpinned(None, onchain=False)
    assert "no trust anchors were given" in none

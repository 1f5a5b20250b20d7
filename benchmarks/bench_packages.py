"""Inclusion-package throughput: every account's package into the store. Prints what it measures.

    python benchmarks/bench_packages.py [--accounts 10000 100000] [--files]

For each size an epoch is planned in Python (not timed; no proof is made: packages reference the
batch proofs by name and hash, which placeholders stand in for here), its private rows and a
manifest are written as `prove` writes them, then timed separately
  tree    the tree rebuilt from the private rows (leaf hashing, native Poseidon when built)
  store   every package made and written into private/packages.sqlite, a chunk a transaction
  export  one package read back by account id (`zksolvency export`), averaged over 1,000
  files   with --files, one JSON file per account, into a folder synced once and renamed
with packages per second and the process's peak RSS. The issue's target is 5,000 packages/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path

from zksolvency.prover import epoch as epoch_mod
from zksolvency.prover import poseidon
from zksolvency.prover.context import context_json
from zksolvency.prover.haircuts import sample_haircuts
from zksolvency.prover.inclusion import export_package
from zksolvency.prover.instruments import sample_derivatives
from zksolvency.prover.package_store import build_store, export_files
from zksolvency.prover.params import EpochParams
from zksolvency.prover.snapshot import sample_snapshot
from zksolvency.prover.witness import MarginInputs, plan_epoch


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def planned_epoch(n: int, params: EpochParams, out: Path) -> None:
    """An epoch directory as `prove` leaves it, minus the proofs: manifest and private rows."""
    from zksolvency.prover.commitments import SHORTFALL, fund_bits

    snap = sample_snapshot(n, seed=7)
    reserves = tuple(
        2 * max(1, sum(a.equity[i] for a in snap.accounts)) for i in range(len(snap.assets))
    )
    fund = (1 << fund_bits(params.tree_depth, params.n_assets, params.n_instruments)) - 1
    margin = MarginInputs(
        sample_derivatives(snap, params.n_instruments, seed=7),
        sample_haircuts(snap.assets),
        mode=SHORTFALL,
        insurance_fund=fund,
    )
    plan = plan_epoch(snap, params, 1, reserves, b"packages" * 4, margin)
    epoch_mod._write_private(out, plan)
    manifest = {
        "format": epoch_mod.FORMAT,
        "epoch": 1,
        "params": params.as_dict(),
        "context": context_json(plan),
        "accounts": n,
        "batches": plan.n_batches,
        "root": str(plan.tree.root),
        "state_chain": [str(s) for s in plan.states],
        "domain": "0",
        "proofs": {
            "batches": [
                {
                    "name": f"batch_{k:06d}",
                    "proof": f"proofs/batch_{k:06d}.proof.json",
                    "proof_sha256": f"{k:064x}",
                    "public_signals": [str(plan.states[k]), str(plan.states[k + 1]), "0"],
                }
                for k in range(plan.n_batches)
            ]
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest))


def run(n: int, params: EpochParams, tmp: Path, files: bool) -> None:
    out = tmp / f"epoch_{n}"
    out.mkdir()
    planned_epoch(n, params, out)
    st = build_store(out)
    ids = [json.loads(line)["id"] for line in (out / "private" / "accounts.jsonl").open()]
    sample = random.Random(1).sample(ids, min(1000, len(ids)))
    t0 = time.perf_counter()
    for account_id in sample:
        export_package(out, account_id)
    export_ms = (time.perf_counter() - t0) / len(sample) * 1e3
    line = (
        f"{n:>9,} accounts: tree {st.tree_seconds:6.2f} s | store {st.write_seconds:6.2f} s "
        f"({st.rate:>8,.0f} packages/s, {st.bytes / n:,.0f} B each) | tree + store "
        f"{n / (st.tree_seconds + st.write_seconds):>8,.0f}/s | export one {export_ms:.2f} ms"
    )
    if files:
        t0 = time.perf_counter()
        export_files(out, tmp / f"files_{n}")
        f_s = time.perf_counter() - t0
        line += f" | files {f_s:6.2f} s ({n / f_s:,.0f}/s)"
    print(f"{line} | peak RSS {peak_rss_mb():,.0f} MB", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--tree-depth", type=int, default=20)
    ap.add_argument("--batch-levels", type=int, default=3)
    ap.add_argument("--files", action="store_true", help="also one JSON file per account")
    args = ap.parse_args()
    d = EpochParams.default()
    params = EpochParams(
        args.batch_levels, args.tree_depth, 4, d.n_instruments, d.n_scenarios, d.n_tiers
    )
    print(f"# zksolvency inclusion-package benchmark ({os.cpu_count()} cores)")
    print(
        f"Poseidon: {poseidon.backend()}; tree depth {params.tree_depth}, "
        f"{params.batch_size} accounts a batch, 4 assets, {params.n_instruments} instrument slots"
    )
    with tempfile.TemporaryDirectory(prefix="zks-pkg-") as tmp:
        for n in sorted(args.accounts):
            run(n, params, Path(tmp), args.files)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

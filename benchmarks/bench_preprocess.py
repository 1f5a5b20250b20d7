"""Pre-processing throughput: everything before the first proof. Prints what it measures.

    python benchmarks/bench_preprocess.py [--accounts 10000 100000] [--derivatives | --spot]
                                          [--tree-depth 20] [--batch-levels 3]

For each size: a sample accounts CSV is written (not timed), then timed separately
  parse   snapshot.load_snapshot (streaming reader, checks every field, duplicate ids)
  plan    witness.plan_epoch: context, coverage and margin of every account, salts, id
          commitments, leaves, the tree, totals and the state chain
  inputs  every batch proof's input JSON built and serialised
  writes  the same written to disk atomically (one fsync each), as `prove` does before its
          first proof; reported apart because it measures the disk, and not part of the total
with accounts per second for each and overall, and the process's peak RSS after each size
(sizes run smallest first, so the peak belongs to the largest so far). The Poseidon backend
(native C or Python) and its thread count are printed: set ZKSOLVENCY_POSEIDON=python to
measure the pure-Python mirror.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zksolvency.prover import poseidon
from zksolvency.prover.atomic import write_json
from zksolvency.prover.commitments import SHORTFALL, fund_bits
from zksolvency.prover.haircuts import sample_haircuts
from zksolvency.prover.instruments import sample_derivatives
from zksolvency.prover.params import EpochParams
from zksolvency.prover.snapshot import load_snapshot
from zksolvency.prover.witness import MarginInputs, plan_epoch


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n: int, params: EpochParams, derivatives: bool, tmp: Path, writes: bool = True) -> None:
    accounts, assets = tmp / f"accounts_{n}.csv", tmp / f"accounts_{n}_assets.csv"
    # Written by a child process, so that the sample's Account objects never count in this
    # process's peak RSS.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from zksolvency.prover.snapshot import sample_snapshot, "
            "write_snapshot_csv as w; w(sample_snapshot(int(sys.argv[1]), seed=7), *sys.argv[2:])",
            str(n),
            str(accounts),
            str(assets),
        ],
        check=True,
    )

    t0 = time.perf_counter()
    snap = load_snapshot(accounts, assets)
    parse_s = time.perf_counter() - t0

    reserves = tuple(
        2 * max(1, sum(a.equity[i] for a in snap.accounts)) for i in range(len(snap.assets))
    )
    # The sample's borrowers may fall short under the haircuts: shortfall mode, covered by an
    # insurance fund as large as the circuits allow, proves them all.
    fund = (1 << fund_bits(params.tree_depth, params.n_assets, params.n_instruments)) - 1
    margin = MarginInputs(
        sample_derivatives(snap, params.n_instruments, seed=7) if derivatives else None,
        sample_haircuts(snap.assets),
        mode=SHORTFALL,
        insurance_fund=fund,
    )
    t0 = time.perf_counter()
    plan = plan_epoch(snap, params, 1, reserves, b"preprocess" * 4, margin)
    plan_s = time.perf_counter() - t0

    out = tmp / f"inputs_{n}"
    out.mkdir()
    t0 = time.perf_counter()
    for k in range(plan.n_batches):
        json.dumps(plan.batch_input(k))
    inputs_s = time.perf_counter() - t0
    write_s, size = 0.0, 0
    if writes:
        t0 = time.perf_counter()
        for k in range(plan.n_batches):
            write_json(out / f"batch_{k:06d}.json", plan.batch_input(k))
        write_s = time.perf_counter() - t0 - inputs_s  # the build again, subtracted
        size = sum(f.stat().st_size for f in out.iterdir())
        for f in out.iterdir():
            f.unlink()

    total = parse_s + plan_s + inputs_s
    print(
        f"{n:>9,} accounts ({plan.n_batches:,} batches): parse {parse_s:6.2f} s "
        f"({n / parse_s:>9,.0f}/s) | plan {plan_s:7.2f} s ({n / plan_s:>8,.0f}/s) | "
        f"inputs {inputs_s:6.2f} s ({n / inputs_s:>8,.0f}/s) | atomic writes "
        f"{max(write_s, 0):6.2f} s ({size / 2**20:,.0f} MB, one fsync per batch) | "
        f"total {total:7.2f} s: {n / total:,.0f} accounts/s | peak RSS {peak_rss_mb():,.0f} MB",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--tree-depth", type=int, default=20)
    ap.add_argument("--batch-levels", type=int, default=3)
    ap.add_argument(
        "--derivatives",
        action="store_true",
        help="sample positions on 8 instruments, margined in 16 scenarios (default: none)",
    )
    ap.add_argument(
        "--spot",
        action="store_true",
        help="the spot-margin shape: 1 instrument slot, 1 scenario (no derivatives)",
    )
    ap.add_argument(
        "--no-writes", action="store_true", help="skip the atomic writes of the inputs (disk)"
    )
    args = ap.parse_args()
    if args.spot and args.derivatives:
        ap.error("--spot has no derivatives")
    d = EpochParams.default()
    slots, scenarios = (1, 1) if args.spot else (d.n_instruments, d.n_scenarios)
    params = EpochParams(args.batch_levels, args.tree_depth, 4, slots, scenarios, d.n_tiers)
    print(f"# zksolvency pre-processing benchmark ({os.cpu_count()} cores)")
    print(
        f"Poseidon: {poseidon.backend()} ({poseidon._THREADS} threads); shape: "
        f"{params.batch_size} accounts a batch, tree depth {params.tree_depth}, 4 assets, "
        f"{params.n_instruments} instrument slot(s), {params.n_scenarios} scenario(s), "
        f"{'sample derivatives' if args.derivatives else 'no derivatives'}, sample haircuts"
    )
    with tempfile.TemporaryDirectory(prefix="zks-pre-") as tmp:
        for n in sorted(args.accounts):
            run(n, params, args.derivatives, Path(tmp), not args.no_writes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

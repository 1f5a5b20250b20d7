"""Distributed proving benchmark: one epoch on 1, 2 and 4 Dask workers. Prints what it measures.

    python benchmarks/bench_dask.py [--accounts 64] [--workers 1 2 4] [--backend snarkjs]
                                    [--witness cpp] [--no-derivatives] [--no-local]
                                    [--batch-levels 3 --tree-depth 10 --assets 4
                                    --instruments 8 --scenarios 16 --tiers 3]

The same epoch (snapshot, derivatives, haircuts and seed, so the same statements) is proven
into a fresh directory once per worker count, on a LocalCluster of that many worker processes
with one thread each (as `prove --scheduler local:N` starts), and once without Dask for
reference. Measures, per run: wall seconds of `prove_epoch` (planning, inputs, every proof, the
manifest; the cluster is started before the clock and its start-up time is printed apart),
batch proofs per second, accounts per second, accounts per core-second of this machine, and the
speed-up against one worker. Checks that every run's public signals are identical. Keys come
from the development setup cached under build/; their setup time is not part of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_epoch import add_proving_args, add_shape_args, snapshot_for
from distributed import LocalCluster
from zksolvency.prover import witness_cpp
from zksolvency.prover.epoch import margin_summary, prove_epoch
from zksolvency.prover.haircuts import sample_haircuts
from zksolvency.prover.instruments import sample_derivatives
from zksolvency.prover.keys import build_keys, build_margin_keys
from zksolvency.prover.params import EpochParams
from zksolvency.prover.progress import NullReporter, StderrReporter
from zksolvency.prover.witness import MarginInputs, plan_epoch

SEED = b"dask" * 8


def _publics(out: Path) -> list[list[str]]:
    m = json.loads((out / "manifest.json").read_text())
    return [e["public_signals"] for e in [*m["proofs"]["batches"], m["proofs"]["solvency"]]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--no-local", action="store_true", help="skip the run without Dask")
    add_proving_args(ap)
    add_shape_args(ap)
    args = ap.parse_args()
    shape = (args.instruments, args.scenarios, args.tiers)
    params = EpochParams(args.batch_levels, args.tree_depth, args.assets, *shape)
    cores = os.cpu_count() or 1

    print(
        f"# zksolvency distributed proving benchmark ({cores} cores, backend {args.backend}, "
        f"witness {args.witness})"
    )
    print(
        f"params: batch_levels={params.batch_levels} tree_depth={params.tree_depth} "
        f"n_assets={params.n_assets} n_instruments={params.n_instruments} "
        f"n_scenarios={params.n_scenarios} n_tiers={params.n_tiers} accounts={args.accounts}"
    )
    if max(args.workers) > cores:
        print(
            f"note: this machine has {cores} cores, so {max(args.workers)} workers "
            "oversubscribe it (and snarkjs runs several threads per proof)"
        )
    keys = build_keys(params, None, StderrReporter())
    build_margin_keys(params, None, StderrReporter())  # prove_epoch needs it: not timed
    if args.witness == witness_cpp.NAME:  # a one-off build per instance: not timed
        witness_cpp.build_witness_binary(keys.batch.build, StderrReporter())
    print(
        f"batch circuit {keys.batch.build.spec.name}: {keys.batch.build.n_constraints} constraints"
    )

    snap = snapshot_for(args.accounts, params.n_assets)
    reserves = tuple(
        2 * max(1, sum(a.equity[i] for a in snap.accounts)) for i in range(len(snap.assets))
    )
    derivatives = (
        None if args.no_derivatives else sample_derivatives(snap, params.n_instruments, seed=11)
    )
    margin = MarginInputs(derivatives, sample_haircuts(snap.assets))
    plan = plan_epoch(snap, params, 1, reserves, SEED, margin)
    print(margin_summary(plan))
    batches, accounts = plan.n_batches, len(snap.accounts)
    print(f"{accounts} accounts in {batches} batch proofs + 1 solvency proof per run")

    runs: list[tuple[str, int | None]] = [] if args.no_local else [("no Dask", None)]
    runs += [(f"{n} worker{'s' if n > 1 else ''}", n) for n in args.workers]
    rows: list[dict[str, Any]] = []
    reference: list[list[str]] | None = None
    with tempfile.TemporaryDirectory(prefix="zks-bench-dask-") as tmp:
        for label, n in runs:
            out = Path(tmp) / label.replace(" ", "-")
            (out / "private").mkdir(parents=True)
            (out / "private" / "seed").write_text(SEED.hex())  # the same epoch every run
            stats: list[dict[str, Any]] = []
            startup = 0.0
            cluster = None
            if n is not None:
                t0 = time.monotonic()
                cluster = LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
                startup = time.monotonic() - t0
            try:
                print(f"[{label}] proving ...", file=sys.stderr, flush=True)
                t0 = time.monotonic()
                prove_epoch(
                    snap,
                    reserves,
                    out,
                    epoch=1,
                    params=params,
                    reporter=NullReporter(),
                    stats=stats,
                    margin=margin,
                    backend=args.backend,
                    scheduler=None if cluster is None else cluster.scheduler_address,
                    witness=args.witness,
                )
                wall = time.monotonic() - t0
            finally:
                if cluster is not None:
                    cluster.close()
            publics = _publics(out)
            reference = reference or publics
            if publics != reference:
                sys.exit(f"[{label}] public signals differ from the first run's")
            prove = statistics.median(s["prove_s"] for s in stats if s["name"] != "solvency")
            rows.append({"label": label, "n": n, "wall": wall, "startup": startup, "prove": prove})
            print(f"[{label}] {wall:.1f} s", file=sys.stderr, flush=True)

    base = next((r["wall"] for r in rows if r["n"] == 1), None)
    print()
    print(
        f"{'run':>10s} {'start s':>8s} {'wall s':>8s} {'batches/s':>10s} {'accounts/s':>11s} "
        f"{'acc/core-s':>11s} {'prove s':>8s} {'vs 1 worker':>12s}"
    )
    for r in rows:
        speedup = f"{base / r['wall']:.2f}x" if base else "-"
        print(
            f"{r['label']:>10s} {r['startup']:>8.1f} {r['wall']:>8.1f} "
            f"{batches / r['wall']:>10.3f} {accounts / r['wall']:>11.2f} "
            f"{accounts / r['wall'] / cores:>11.2f} {r['prove']:>8.2f} {speedup:>12s}"
        )
    print(
        "\nwall: prove_epoch from planning to manifest (the batch proofs and the solvency proof); "
        "start: LocalCluster start-up, not in wall; prove s: median prove seconds of a batch "
        f"inside its task; acc/core-s: accounts / wall / {cores} cores"
    )
    print("public signals identical in every run: yes")


if __name__ == "__main__":
    sys.exit(main())

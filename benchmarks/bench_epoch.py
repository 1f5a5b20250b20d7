"""Epoch benchmark at the default (or given) circuit parameters. Prints what it measures.

    python benchmarks/bench_epoch.py [--accounts 64] [--batch-levels 3 --tree-depth 10 --assets 4
                                     --instruments 8 --scenarios 16 --tiers 3]
                                     [--backend native [--witness cpp]] [--no-derivatives]
                                     [--verify-sample 8]
                                     [--no-margin-proof]

Every account carries sample derivatives (perpetuals, futures and options on BTC and ETH) and
the sample haircut table applies, so the margin rule is exercised in every scenario; with
--no-derivatives only the haircut tiers and coverage are (balances-only epochs). Beyond the
sample's four assets, synthetic assets fill every circuit slot and every account holds some of
each, so that no slot is a free zero for the prover's multi-exponentiations.
Large runs: --verify-sample checks that many random batch proofs (and the solvency proof) in
pure Python instead of all of them (snarkjs has verified every proof before it was kept).
Measures: constraints per batch and per account (marginal, from two compiled batch sizes),
witness and prove seconds per batch, accounts proven per second, offline verification time,
and gas for deploy, batch submission and finalize on a local anvil. Keys come from the
development setup (cached under build/); their setup time is not part of the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from zksolvency.prover import witness_cpp
from zksolvency.prover.account_proof import prove_account_margin, verify_margin_proof
from zksolvency.prover.bundle import load_bundle, verify_bundle
from zksolvency.prover.chain import Anvil, publish_epoch, registry_at
from zksolvency.prover.deployment import deploy_registry, deployment_domain, registry_abi
from zksolvency.prover.epoch import BACKENDS, margin_summary, prove_epoch
from zksolvency.prover.groth16 import Proof as G16Proof
from zksolvency.prover.groth16 import VerificationKey, verify
from zksolvency.prover.haircuts import sample_haircuts
from zksolvency.prover.inclusion import export_package, resolve
from zksolvency.prover.instruments import sample_derivatives
from zksolvency.prover.keys import build_keys, compile_circuit
from zksolvency.prover.params import EpochParams
from zksolvency.prover.progress import NullReporter, StderrReporter
from zksolvency.prover.snapshot import Account, Asset, Snapshot, sample_snapshot
from zksolvency.prover.witness import MarginInputs, plan_epoch

#: Binance's published proving rate per core (700 users per 62 s batch on 32 vCPU).
BINANCE_PER_CORE_S = 700 / 62 / 32


def snapshot_for(n_accounts: int, n_assets: int) -> Snapshot:
    """The sample snapshot cut or extended to the circuit's asset count, all accounts solvent.

    Extra assets (X005, X006, ...: 8 decimals, $0.50-$500) are held by every account, a few
    hundred dollars' worth each, with no debt in them: the sample's debt stays covered."""
    s = sample_snapshot(n_accounts, seed=11)
    if len(s.assets) >= n_assets:
        keep = s.assets[:n_assets]
        accounts = tuple(
            Account(a.id, a.equity[:n_assets], tuple(0 for _ in keep), a.line) for a in s.accounts
        )
        return Snapshot(keep, accounts, s.source)
    rng = random.Random(11)
    extra = [
        Asset(f"X{i + 1:03d}", 8, rng.randint(5 * 10**7, 5 * 10**10))
        for i in range(len(s.assets), n_assets)
    ]
    accounts = tuple(
        Account(
            a.id,
            (*a.equity, *(rng.randint(10**8, 10**11) for _ in extra)),
            (*a.debt, *(0 for _ in extra)),
            a.line,
        )
        for a in s.accounts
    )
    return Snapshot((*s.assets, *extra), accounts, s.source)


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child (Node, ...)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def add_shape_args(ap: argparse.ArgumentParser) -> None:
    """--batch-levels ... --tiers, defaulting to the circuits' default shape."""
    d = EpochParams.default()
    ap.add_argument("--batch-levels", type=int, default=d.batch_levels)
    ap.add_argument("--tree-depth", type=int, default=d.tree_depth)
    ap.add_argument("--assets", type=int, default=d.n_assets)
    ap.add_argument("--instruments", type=int, default=d.n_instruments)
    ap.add_argument("--scenarios", type=int, default=d.n_scenarios)
    ap.add_argument("--tiers", type=int, default=d.n_tiers)


def add_proving_args(ap: argparse.ArgumentParser) -> None:
    """--backend, --witness and --no-derivatives."""
    ap.add_argument("--backend", choices=BACKENDS, default="snarkjs")
    ap.add_argument(
        "--witness",
        choices=witness_cpp.WITNESS_MODES,
        default="wasm",
        help="batch witnesses from circom's C++ program (native backend; built before timing)",
    )
    ap.add_argument(
        "--no-derivatives", action="store_true", help="no positions: haircuts and coverage only"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=64)
    add_shape_args(ap)
    add_proving_args(ap)
    ap.add_argument(
        "--verify-sample",
        type=int,
        default=None,
        help="verify this many random batch proofs in pure Python (default: all)",
    )
    ap.add_argument("--no-margin-proof", action="store_true", help="skip the single-account proof")
    args = ap.parse_args()
    shape = (args.instruments, args.scenarios, args.tiers)
    params = EpochParams(args.batch_levels, args.tree_depth, args.assets, *shape)
    rep = StderrReporter()

    print(f"# zksolvency epoch benchmark ({os.cpu_count()} cores)")
    print(
        f"params: batch_levels={params.batch_levels} tree_depth={params.tree_depth} "
        f"n_assets={params.n_assets} n_instruments={params.n_instruments} "
        f"n_scenarios={params.n_scenarios} n_tiers={params.n_tiers} accounts={args.accounts}"
    )
    keys = build_keys(params, None, rep)
    if args.witness == witness_cpp.NAME:  # a one-off build per instance: not part of the figures
        witness_cpp.build_witness_binary(keys.batch.build, rep)
    big = keys.batch.build.n_constraints
    marginal = None
    if params.batch_levels >= 1:
        # Same upper-path length (tree_depth - batch_levels), half the accounts: the difference
        # is the accounts' own cost (plus one bit of total range checks per total).
        smaller = EpochParams(
            params.batch_levels - 1, params.tree_depth - 1, params.n_assets, *shape
        )
        small = compile_circuit(smaller.batch_spec(), rep).n_constraints
        marginal = (big - small) / (params.batch_size - smaller.batch_size)
    print(
        f"batch circuit {keys.batch.build.spec.name}: {big} constraints, "
        f"{big / params.batch_size:.0f} per account in a full batch"
    )
    if marginal is not None:
        print(
            f"marginal constraints per account: {marginal:.0f} "
            f"({marginal / params.n_assets:.0f} per asset-account); "
            f"fixed per batch: {big - marginal * params.batch_size:.0f}"
        )
    print(
        f"solvency circuit {keys.solvency.build.spec.name}: "
        f"{keys.solvency.build.n_constraints} constraints"
    )

    snap = snapshot_for(args.accounts, params.n_assets)
    reserves = tuple(
        2 * max(1, sum(a.equity[i] for a in snap.accounts)) for i in range(len(snap.assets))
    )
    derivatives = (
        None if args.no_derivatives else sample_derivatives(snap, params.n_instruments, seed=11)
    )
    margin = MarginInputs(derivatives, sample_haircuts(snap.assets))
    t0 = time.monotonic()
    plan = plan_epoch(snap, params, 1, reserves, b"bench" * 8, margin)
    plan_s = time.monotonic() - t0
    print(
        f"planning (mirror, risk arrays, margin, leaves, tree, states): {plan_s:.2f} s "
        f"({len(snap.accounts) / plan_s:,.0f} accounts/s)"
    )
    print(margin_summary(plan))
    with tempfile.TemporaryDirectory(prefix="zks-bench-") as tmp, Anvil() as node:
        # The registry first: the epoch's solvency proof is bound to it.
        dep = deploy_registry(node.w3, node.accounts[0], keys, params)
        out = Path(tmp) / "epoch"
        stats: list[dict[str, float]] = []
        t0 = time.monotonic()
        manifest = prove_epoch(
            snap,
            reserves,
            out,
            epoch=1,
            params=params,
            reporter=rep,
            stats=stats,  # type: ignore[arg-type]
            margin=margin,
            domain=deployment_domain(dep),
            backend=args.backend,
            witness=args.witness,
        )
        wall = time.monotonic() - t0
        print(f"backend: {args.backend}, witness: {args.witness}")
        batch = [s for s in stats if str(s["name"]).startswith("batch")]
        wit = statistics.median(s["witness_s"] for s in batch)
        prv = statistics.median(s["prove_s"] for s in batch)
        print(
            f"proved {manifest['accounts']} accounts in {manifest['batches']} batches: "
            f"{wall:.1f} s wall (planning, witnesses, proofs, checks)"
        )
        print(
            f"per batch (median): witness {wit:.2f} s, prove {prv:.2f} s "
            f"({big / prv:.0f} constraints/s)"
        )
        per_core = manifest["accounts"] / wall / (os.cpu_count() or 1)
        print(
            f"accounts proven per second: {manifest['accounts'] / wall:.2f} "
            f"(per core-second: {per_core:.2f})"
        )
        print(
            f"against Binance's published rate ({BINANCE_PER_CORE_S:.3f} accounts per "
            f"core-second: 700 users per 62 s batch on 32 vCPU, its 50-asset tier): "
            f"{per_core / BINANCE_PER_CORE_S:.2f}x at {params.n_assets} assets"
        )

        own, child = peak_rss_mb()
        print(f"peak memory: {own:.0f} MB (this process), {child:.0f} MB (largest child)")

        if not args.no_margin_proof:
            # One owner's single-account margin proof (keys built by prove_epoch above).
            positions = derivatives.positions if derivatives is not None else {}
            trader = next((a.id for a in snap.accounts if positions.get(a.id)), snap.accounts[0].id)
            pkg = resolve(export_package(out, trader), load_bundle(out))
            mstats: dict[str, float] = {}
            t0 = time.monotonic()
            doc = prove_account_margin(pkg, 0, Path(tmp) / "margin.json", None, rep, stats=mstats)
            m_wall = time.monotonic() - t0
            t0 = time.monotonic()
            verify_margin_proof(doc, None, doc["vkey_sha256"])
            print(
                f"single-account margin proof ({doc['circuit']}): {m_wall:.1f} s wall, prove "
                f"{mstats.get('prove_s', 0):.2f} s, witness {mstats.get('witness_s', 0):.2f} s; "
                f"pure-Python verify {time.monotonic() - t0:.2f} s"
            )

        t0 = time.monotonic()
        if args.verify_sample is None:
            report = verify_bundle(load_bundle(out), None, NullReporter())
            print(
                f"offline verification (pure Python, {report.proofs_verified} proofs): "
                f"{time.monotonic() - t0:.1f} s"
            )
        else:
            n = verify_sample(out, args.verify_sample)
            print(
                f"offline verification (pure Python) of {n} sampled proofs: "
                f"{time.monotonic() - t0:.1f} s (every proof was verified by snarkjs when made)"
            )

        b = load_bundle(out)
        m = b.manifest
        pub = publish_epoch(
            node.w3,
            node.accounts[0],
            registry_at(node.w3, dep["registry"], registry_abi()),
            1,
            b.ctx_hash,
            bytes.fromhex(b.sha256),
            [b.proof(e) for e in m["proofs"]["batches"]],
            b.proof(m["proofs"]["solvency"]),
        )
        print(
            f"gas: deploy {sum(dep['gas_used'].values())}, open {pub.open_gas}, "
            f"batch submission {statistics.median(pub.batch_gas):.0f}, "
            f"finalize {pub.finalize_gas}; per account "
            f"{pub.total_gas / manifest['accounts']:.0f}"
        )


def verify_sample(out: Path, k: int) -> int:
    """Verify k random batch proofs and the solvency proof in pure Python; returns how many."""
    b = load_bundle(out)
    proofs = b.manifest["proofs"]
    batches = list(proofs["batches"])
    picked = [("batch", e) for e in random.Random(5).sample(batches, min(k, len(batches)))]
    for kind, entry in [*picked, ("solvency", proofs["solvency"])]:
        vk = VerificationKey.from_snarkjs(b.manifest["circuits"][kind]["vkey_json"])
        proof, public = b.proof(entry)
        if not verify(vk, G16Proof.from_snarkjs(proof), public):
            raise SystemExit(f"{entry['proof']} does not verify")
    return len(picked) + 1


if __name__ == "__main__":
    sys.exit(main())

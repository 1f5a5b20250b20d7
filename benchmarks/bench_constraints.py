"""Constraints per asset-account of the batch circuit. Prints what it measures.

    python benchmarks/bench_constraints.py [--assets 4 16 50] [--jobs 2] [--json out.json]

For each asset count N and two margin shapes, "balances only" (1 instrument, 1 scenario,
2 tiers: the smallest that AccountLeaf and Margin accept) and "default margin" (8 instruments,
16 scenarios, 3 tiers), BatchSolvency is compiled at 2 and 4 accounts a batch (tree depth 10)
through the project's own compile path (--O2, cached under build/circuits/). The difference
of the two, halved, is the marginal cost of an account, free of the per-batch overhead
(context hash, totals, states, Merkle path); divided by N it is the cost per asset-account.
The cost model of tests/circuits/test_constraint_counts.py splits it into its parts.

Constraint counts are deterministic; compile times go to stderr as progress only.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zksolvency.prover.commitments import (
    AMOUNT_BITS,
    QTY_CODE_BITS,
    margin_bits,
    tier_compare_bits,
    value_bits,
)
from zksolvency.prover.field import per_element
from zksolvency.prover.keys import compile_circuit
from zksolvency.prover.params import EpochParams
from zksolvency.prover.poseidon import MAX_INPUTS, N_ROUNDS_F, N_ROUNDS_P
from zksolvency.prover.progress import StderrReporter

TREE_DEPTH = 10
LEVELS = (1, 2)  # 2 and 4 accounts a batch: same circuit otherwise
# (instruments, scenarios, tiers). Balances only is the smallest shape the asserts allow:
# AccountLeaf needs N_INSTR >= 1, Margin N_SCEN >= 1 and N_TIERS >= 2.
CONFIGS = {
    "balances only": (1, 1, 2),
    "default margin": (8, 16, 3),
}
# Binance's circuit at its 50-asset tier spends about 42.3k constraints per user.
BINANCE_PER_USER = 42_300
BINANCE_ASSETS = 50
TARGET_PER_ASSET_ACCOUNT = 250


# --- the cost model ------------------------------------------------------------------------
# Replicated from tests/circuits/test_constraint_counts.py (poseidon_cost, hash_list_cost,
# account_cost, margin_cost and the per-account and tree terms of batch_cost), split into
# parts; that test pins the same formulas to the compiled counts. The model counts --O1
# constraints: --O2 also folds the first S-box of each Poseidon's zero capacity lane
# (3 constraints), so the measured marginal sits 3 below the model per leaf-hash Poseidon.


def poseidon_cost(n_inputs: int) -> int:
    """circomlib Poseidon(n): 3 constraints per x^5, t per full round, 1 per partial round."""
    t = n_inputs + 1
    return 3 * (N_ROUNDS_F * t + N_ROUNDS_P[t - 2])


def hash_list_cost(n: int) -> int:
    cost = poseidon_cost(min(n, MAX_INPUTS))
    for start in range(MAX_INPUTS, n, MAX_INPUTS - 1):
        cost += poseidon_cost(1 + min(MAX_INPUTS - 1, n - start))
    return cost


def packed(n: int, bits: int) -> int:
    return -(-n // per_element(bits))


def account_parts(p: EpochParams) -> dict[str, dict[str, int]]:
    """Model constraints of one account in the batch circuit, by part (leaf, then margin)."""
    n, i, s, k = p.n_assets, p.n_instruments, p.n_scenarios, p.n_tiers
    mb = margin_bits(n, i)
    leaf_len = 1 + packed(2 * n, AMOUNT_BITS) + packed(i, QTY_CODE_BITS)
    return {
        "leaf": {
            f"amount range checks (2N x {AMOUNT_BITS})": 2 * n * AMOUNT_BITS,
            "value products (2N)": 2 * n,
            f"coverage check ({value_bits(n)} bits)": value_bits(n),
            f"position codes (P x {QTY_CODE_BITS + 4})": i * (QTY_CODE_BITS + 4),
            f"leaf hash (HashList({leaf_len}))": hash_list_cost(leaf_len),
        },
        "margin": {
            f"tier fill (N x (1 + {k - 1} x ({tier_compare_bits(k) + 1} + 2)))": n
            * (1 + (k - 1) * (tier_compare_bits(k) + 3)),
            "P&L products (P x S)": i * s,
            f"scenario checks (S x {mb})": s * mb,
            f"shortfall check ({mb} + 1)": mb + 1,
        },
    }


def tree_share(lo: int, hi: int) -> float:
    """What the tree adds to (c(hi) - c(lo)) per extra account: the subtree gains
    2^hi - 2^lo Poseidon(2), the upper path (depth fixed) loses hi - lo levels of two
    Poseidon(2), a boolean and two selections, and as many bits of Num2Bits(batchIndex)."""
    extra = (1 << hi) - (1 << lo)
    delta = extra * poseidon_cost(2) - (hi - lo) * (2 * poseidon_cost(2) + 3 + 1)
    return delta / extra


# --- measurement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    config: str
    params: EpochParams  # at LEVELS[0]
    counts: tuple[int, int]  # at LEVELS

    @property
    def marginal(self) -> float:
        return (self.counts[1] - self.counts[0]) / ((1 << LEVELS[1]) - (1 << LEVELS[0]))

    @property
    def per_asset_account(self) -> float:
        return self.marginal / self.params.n_assets

    @property
    def fixed(self) -> float:
        return self.counts[0] - self.marginal * (1 << LEVELS[0])

    def model(self) -> dict[str, Any]:
        parts = account_parts(self.params)
        tree = tree_share(*LEVELS)
        leaf = sum(parts["leaf"].values())
        margin = sum(parts["margin"].values())
        return {
            "parts": parts,
            "leaf": leaf,
            "margin": margin,
            "tree_in_difference": tree,
            "marginal": leaf + margin + tree,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "n_assets": self.params.n_assets,
            "n_instruments": self.params.n_instruments,
            "n_scenarios": self.params.n_scenarios,
            "n_tiers": self.params.n_tiers,
            "tree_depth": TREE_DEPTH,
            "constraints": dict(
                zip((f"batch_levels_{lv}" for lv in LEVELS), self.counts, strict=True)
            ),
            "marginal_per_account": self.marginal,
            "per_asset_account": self.per_asset_account,
            "fixed_per_batch": self.fixed,
            "model": self.model(),
        }


def compile_all(assets: list[int], jobs: int) -> list[Row]:
    """Compile every instance, smallest first, printing progress to stderr."""
    rep = StderrReporter()
    shapes = [
        (name, EpochParams(lv, TREE_DEPTH, n, *shape))
        for n in assets
        for name, shape in CONFIGS.items()
        for lv in LEVELS
    ]
    start = time.monotonic()
    done = 0
    lock = threading.Lock()

    def build(item: tuple[str, EpochParams]) -> int:
        nonlocal done
        spec = item[1].batch_spec()
        rep.info(f"[start] {spec.name} ({item[0]})")
        count = compile_circuit(spec, rep).n_constraints
        with lock:
            done += 1
            rep.info(
                f"[{done}/{len(shapes)}] {spec.name}: {count} constraints "
                f"({time.monotonic() - start:.0f} s elapsed)"
            )
        return count

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        counts = list(pool.map(build, shapes))
    rows = []
    for j in range(0, len(shapes), len(LEVELS)):
        rows.append(Row(shapes[j][0], shapes[j][1], (counts[j], counts[j + 1])))
    return rows


# --- report --------------------------------------------------------------------------------


def report(rows: list[Row]) -> None:
    a, b = (1 << lv for lv in LEVELS)
    print(f"# BatchSolvency constraints (--O2), tree depth {TREE_DEPTH}")
    print(f"# marginal per account = (c({b} accounts) - c({a} accounts)) / {b - a}")
    for name, (i, s, k) in CONFIGS.items():
        print(f"#   {name}: {i} instruments, {s} scenarios, {k} tiers")
    print()
    print(
        f"{'config':<15} {'N':>3} {f'c({a} acc)':>10} {f'c({b} acc)':>10} "
        f"{'marginal/acct':>13} {'/asset-acct':>11} {'fixed/batch':>11}"
    )
    for r in rows:
        print(
            f"{r.config:<15} {r.params.n_assets:>3} {r.counts[0]:>10} {r.counts[1]:>10} "
            f"{r.marginal:>13.0f} {r.per_asset_account:>11.1f} {r.fixed:>11.0f}"
        )

    print()
    print("# model split of the marginal account (per account, and per asset-account)")
    for r in rows:
        m = r.model()
        n = r.params.n_assets
        print(
            f"{r.config}, N={n}: model {m['marginal']:.0f} vs measured {r.marginal:.0f} "
            f"(measured - model {r.marginal - m['marginal']:+.0f})"
        )
        for group in ("leaf", "margin"):
            total = m[group]
            print(
                f"  {group + ' part':<44} {total:>7} {total / n:>7.1f}  "
                f"({100 * total / m['marginal']:.0f}%)"
            )
            for label, cost in m["parts"][group].items():
                print(f"    {label:<42} {cost:>7} {cost / n:>7.1f}")
        tree = m["tree_in_difference"]
        print(f"  {'tree (subtree hashes - one upper level)':<44} {tree:>7.0f} {tree / n:>7.1f}")

    binance = BINANCE_PER_USER / BINANCE_ASSETS
    print()
    at = [r for r in rows if r.params.n_assets == BINANCE_ASSETS]
    if not at:
        print(f"# no {BINANCE_ASSETS}-asset run: no comparison with Binance's tier")
    # The marginal leaves out the per-batch overhead; shared by a default-size batch it adds
    # fixed / (B * N) per asset-account, which a per-user figure would include.
    full = EpochParams.default().batch_size
    for r in at:
        x = r.per_asset_account
        over = x - TARGET_PER_ASSET_ACCOUNT
        verdict = "met" if over <= 0 else f"over by {over:.0f}"
        shared = x + r.fixed / (full * r.params.n_assets)
        print(
            f"{BINANCE_ASSETS} assets, {r.config}: {x:.0f} per asset-account "
            f"({r.marginal:.0f} per user) vs Binance ~{binance:.0f} "
            f"({BINANCE_PER_USER} per user): {binance / x:.2f}x fewer; "
            f"target <= {TARGET_PER_ASSET_ACCOUNT}: {verdict}; "
            f"{shared:.0f} with the fixed cost shared by {full} accounts a batch"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, nargs="+", default=[4, 16, 50])
    ap.add_argument("--jobs", type=int, default=1, help="compiles at once (default 1)")
    ap.add_argument("--json", type=Path, help="also write the table here as JSON")
    args = ap.parse_args()
    rows = compile_all(sorted(set(args.assets)), max(1, args.jobs))
    report(rows)
    if args.json:
        doc = {
            "tree_depth": TREE_DEPTH,
            "batch_levels": list(LEVELS),
            "binance_per_user": BINANCE_PER_USER,
            "binance_assets": BINANCE_ASSETS,
            "target_per_asset_account": TARGET_PER_ASSET_ACCOUNT,
            "rows": [r.as_json() for r in rows],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())

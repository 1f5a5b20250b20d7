"""Poseidon per hash, pure Python against the native extension. Prints what it measures.

    python benchmarks/bench_poseidon.py [--arities 1 2 4 8 16] [--leaves 100000] [--threads 2]

For each arity, microseconds per hash of: poseidon_py (the pure-Python reference); poseidon
with the native extension, one call per hash; poseidon_many, 1000 rows a call. Both native
figures include the int <-> bytes conversion; "core" is the extension alone (hash_many on the
same 1000 rows already encoded), the floor under the batched figure. Times are CPU seconds of
the measuring thread, best of five runs, so that other work on a shared machine does not
inflate them. The header names the extension's arithmetic (portable C or x86-64 BMI2+ADX).

Then the account tree: BatchedTree.build (every level through poseidon_many) over --leaves
leaves at the default batch size, in leaves per second of wall time, and poseidon_many over the
same number of pairs split across --threads threads (the C code releases the GIL), also wall.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from zksolvency.prover import poseidon as poseidon_module
from zksolvency.prover.field import P
from zksolvency.prover.params import EpochParams
from zksolvency.prover.poseidon import backend, poseidon, poseidon_many, poseidon_py
from zksolvency.prover.tree import BatchedTree

BATCH_ROWS = 1000


def cpu_seconds(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best


def per_hash(arities: list[int]) -> None:
    rng = random.Random(1)
    native = poseidon_module._native
    assert native is not None
    print(
        f"{'arity':>5} {'python':>10} {'native':>10} {'batched':>10} {'core':>10}"
        f" {'python/batched':>15}"
    )
    for n in arities:
        rows = [[rng.randrange(P) for _ in range(n)] for _ in range(BATCH_ROWS)]
        few = rows[:20]
        py = cpu_seconds(lambda few=few: [poseidon_py(r) for r in few], 3) / len(few)
        one = cpu_seconds(lambda rows=rows: [poseidon(r) for r in rows]) / len(rows)
        many = cpu_seconds(lambda rows=rows: poseidon_many(rows)) / len(rows)
        data = b"".join(x.to_bytes(32, "little") for r in rows for x in r)
        core = cpu_seconds(lambda data=data, n=n: native.hash_many(n + 1, data)) / len(rows)
        print(
            f"{n:>5} {py * 1e6:>8.1f}us {one * 1e6:>8.2f}us {many * 1e6:>8.2f}us "
            f"{core * 1e6:>8.2f}us {py / many:>14.0f}x"
        )


def tree(n_leaves: int, threads: int) -> None:
    d = EpochParams.default()
    depth = max(d.batch_levels + 1, (n_leaves - 1).bit_length())
    params = EpochParams(
        d.batch_levels, depth, d.n_assets, d.n_instruments, d.n_scenarios, d.n_tiers
    )
    rng = random.Random(2)
    leaves = [rng.randrange(P) for _ in range(n_leaves)]
    t0 = time.perf_counter()
    built = BatchedTree.build(params, leaves)
    wall = time.perf_counter() - t0
    print(
        f"BatchedTree.build: {n_leaves} leaves, {built.n_batches} batches of "
        f"{params.batch_size}, depth {depth}: {wall:.2f} s wall, {n_leaves / wall:,.0f} leaves/s"
    )

    pairs = [leaves[i : i + 2] for i in range(0, n_leaves - 1, 2)] * 2  # ~n_leaves hashes
    for k in sorted({1, threads}):
        parts = [pairs[i::k] for i in range(k)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(k) as pool:
            list(pool.map(poseidon_many, parts))
        wall = time.perf_counter() - t0
        print(
            f"poseidon_many, {len(pairs)} pairs on {k} thread(s): {wall:.2f} s wall, "
            f"{len(pairs) / wall:,.0f} hashes/s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arities", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--leaves", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if backend() != "native":
        sys.exit("the native Poseidon is not in use (not built, or ZKSOLVENCY_POSEIDON=python)")
    load = os.getloadavg()[0]
    impl = getattr(poseidon_module._native, "IMPL", "?")
    print(
        f"# Poseidon per hash, CPU time ({os.cpu_count()} cores, load average {load:.1f}; "
        f"native arithmetic: {impl})"
    )
    per_hash(args.arities)
    print()
    tree(args.leaves, args.threads)


if __name__ == "__main__":
    main()

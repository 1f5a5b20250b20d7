"""The compact stores that keep large epochs in bounded memory agree with plain Python lists."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from zksolvency.prover import poseidon as pos
from zksolvency.prover.commitments import derive_secret, leaf_hashes, leaf_hashes_of
from zksolvency.prover.epoch import margin_stats
from zksolvency.prover.field import FieldArray, P, pack, pack_rows64
from zksolvency.prover.params import EpochParams
from zksolvency.prover.poseidon import hash_pairs, poseidon_many, poseidon_py
from zksolvency.prover.snapshot import (
    AccountTable,
    Snapshot,
    account_ids,
    amount_matrix,
    exact_sums,
    load_snapshot,
    sample_snapshot,
    write_snapshot_csv,
)
from zksolvency.prover.witness import Headrooms, format_value, leaf_order, plan_epoch


def test_field_array_round_trips_and_refuses_non_canonical_values() -> None:
    values = [0, 1, P - 1, 2**200 + 7, 12345]
    fa = FieldArray.of(values)
    assert len(fa) == 5 and list(fa) == values and fa[-1] == 12345 and fa[1:3] == [1, P - 1]
    assert fa + FieldArray.of([9]) == FieldArray.of([*values, 9])
    with pytest.raises(IndexError):
        fa[5]
    for bad in (P, -1):
        with pytest.raises(ValueError, match="canonical"):
            FieldArray.of([bad])
    with pytest.raises(ValueError, match="whole 32-byte"):
        FieldArray(b"\x00" * 33)


@pytest.mark.parametrize("threads", [1, 2])
def test_hash_pairs_equals_pairwise_poseidon(monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    """Straight from the level's bytes, in chunks on the pool, in order."""
    monkeypatch.setattr(pos, "_THREADS", threads)
    rng = random.Random(threads)
    level = [rng.randrange(P) for _ in range(2 * (2 * pos._CHUNK + 3))]
    parents = hash_pairs(FieldArray.of(level))
    assert list(parents) == poseidon_many([level[i : i + 2] for i in range(0, len(level), 2)])
    assert parents[0] == poseidon_py(level[:2])
    with pytest.raises(ValueError, match="even"):
        hash_pairs(FieldArray.of([1, 2, 3]))


def test_account_table_reads_back_the_accounts() -> None:
    snap = sample_snapshot(300, seed=4)
    table = AccountTable.of(snap.accounts, len(snap.assets))
    assert len(table) == 300 and table == snap.accounts and snap.accounts == table
    assert table[-1] == snap.accounts[-1] and table[10:13] == list(snap.accounts[10:13])
    assert [a.line for a in table] == [a.line for a in snap.accounts]
    assert Snapshot(snap.assets, table, "t") == snap
    with pytest.raises(ValueError, match="exactly 3 equity"):
        Snapshot(snap.assets[:3], table, "t")


def test_table_ids_and_amounts_without_building_accounts() -> None:
    snap = sample_snapshot(50, seed=8)
    table = AccountTable.of(snap.accounts, 4)
    assert list(table.ids()) == list(account_ids(snap.accounts)) == [a.id for a in snap.accounts]
    m = table.amount_matrix()
    assert m.tolist() == amount_matrix(snap.accounts).tolist()
    assert m.tolist() == [[*a.equity, *a.debt] for a in snap.accounts]
    with pytest.raises(ValueError, match="read-only"):
        m[0, 0] = 1


def test_exact_sums_do_not_wrap_at_2_64() -> None:
    """Sums of amounts near 2^64 (uint64 would wrap) come out exact, over rows or in groups."""
    rng = random.Random(9)
    rows = [[2**64 - 1 - rng.randrange(3), rng.randrange(2**64), 0] for _ in range(1000)]
    m = np.array(rows, dtype=np.uint64)
    assert exact_sums(m).tolist() == [sum(col) for col in zip(*rows, strict=True)]
    groups = exact_sums(m.reshape(-1, 8, 3), axis=1).tolist()
    assert groups == [
        [sum(r[j] for r in rows[g * 8 : g * 8 + 8]) for j in range(3)] for g in range(125)
    ]
    assert exact_sums(m)[0] > 2**73


def test_loaded_snapshots_are_tables_and_plan_like_tuples(tmp_path: Path) -> None:
    """A file read into an AccountTable plans to exactly the plan of the same accounts held
    as a tuple: same leaf order, leaves, root, states and headrooms."""
    d = tmp_path
    snap = sample_snapshot(200, seed=5)
    write_snapshot_csv(snap, d / "a.csv", d / "a_assets.csv")
    loaded = load_snapshot(d / "a.csv", d / "a_assets.csv")
    assert isinstance(loaded.accounts, AccountTable) and loaded == snap
    params = EpochParams(2, 9, 4, 8, 16, 3)
    reserves = tuple(2 * sum(a.equity[i] for a in snap.accounts) + 1 for i in range(4))
    a = plan_epoch(snap, params, 1, reserves, b"s" * 32)
    b = plan_epoch(loaded, params, 1, reserves, b"s" * 32)
    assert [x.id for x in a.accounts] == [x.id for x in b.accounts]
    assert list(a.leaves) == list(b.leaves) and a.tree.root == b.tree.root
    assert a.states == b.states and list(a.headrooms) == list(b.headrooms)
    assert list(a.salts) == [derive_secret(b"s" * 32, "salt", x.id) or 1 for x in a.accounts]


def test_leaf_order_is_the_keyed_sort() -> None:
    snap = sample_snapshot(500, seed=6)
    seed = b"order" * 8
    expected = sorted(
        range(500), key=lambda i: derive_secret(seed, "position", snap.accounts[i].id)
    )
    assert leaf_order(snap.accounts, seed).tolist() == expected


def test_headrooms_keep_signed_values_exactly() -> None:
    h = Headrooms()
    values = [(0, 0), (-1, 3), (2**200, 15), (-(2**199) + 5, 65535), (10**30, 7)]
    for v, w in values:
        h.append(v, w)
    assert list(h) == values and h[-2] == values[-2] and h[1:3] == values[1:3]


def test_margin_stats_quantiles_are_the_exact_ones() -> None:
    """Ranked through float64, but each quantile is read back exactly: the same strings as a
    sort of the exact values."""
    snap = sample_snapshot(400, seed=8)
    params = EpochParams(3, 10, 4, 8, 16, 3)
    reserves = tuple(2 * sum(a.equity[i] for a in snap.accounts) + 1 for i in range(4))
    plan = plan_epoch(snap, params, 1, reserves, b"q" * 32)
    exact = sorted(v for v, _ in plan.headrooms)
    st = margin_stats(plan)
    n = len(exact)
    for key, f in (("p1", 0.01), ("p10", 0.10), ("p50", 0.50), ("p90", 0.90)):
        assert st["headroom_usd"][key] == format_value(exact[min(n - 1, int(f * n))])
    assert st["failing"] == sum(1 for v in exact if v < 0)


def test_account_table_memory_per_account() -> None:
    """The point of the table: ~100 bytes an account at 4 assets (ids of 11 characters), where
    the same accounts as Account objects in a tuple take several hundred."""
    snap = sample_snapshot(20_000, seed=9)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table = AccountTable.of(snap.accounts, 4)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(table) == 20_000
    per_account = used / 20_000
    assert per_account < 120, f"{per_account:.0f} bytes per account"


@pytest.mark.parametrize("cols", [1, 2, 3, 4, 7, 8, 100])
def test_packing_rows_through_bytes_is_pack(cols: int) -> None:
    rng = random.Random(cols)
    rows = [
        [rng.choice([0, 1, 2**64 - 1, rng.randrange(2**64)]) for _ in range(cols)]
        for _ in range(20)
    ]
    assert pack_rows64(np.array(rows, dtype=np.uint64)) == [pack(r, 64) for r in rows]


def test_leaf_hashes_of_a_matrix_are_the_leaf_hashes() -> None:
    rng = random.Random(10)
    rows = [[rng.randrange(2**64) for _ in range(8)] for _ in range(30)]
    commits = [rng.randrange(1, P) for _ in rows]
    codes = [[0, 0] if k % 3 else [rng.randrange(2**64), 5] for k in range(30)]
    want = leaf_hashes(
        (c, r[0::2], r[1::2], q) for c, r, q in zip(commits, rows, codes, strict=True)
    )
    assert leaf_hashes_of(commits, np.array(rows, dtype=np.uint64), codes) == want
    with pytest.raises(ValueError, match="uint64 rows"):
        leaf_hashes_of(commits, np.zeros((30, 8), dtype=np.int64), codes)

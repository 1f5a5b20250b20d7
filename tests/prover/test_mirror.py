"""The mirror's building blocks: commitments, packing, the batched tree and the epoch plan."""

from __future__ import annotations

import random

import pytest
from zksolvency.prover import witness
from zksolvency.prover.commitments import (
    ID_HASH_BITS,
    SHORTFALL,
    STRICT,
    context_hash,
    context_preimage,
    derive_secret,
    empty_nodes,
    id_commitment,
    id_hash,
    leaf_hash,
    qty_code,
    qty_from_code,
    secret_deriver,
    state_hash,
    totals_hash,
    value_bits,
)
from zksolvency.prover.field import P, pack
from zksolvency.prover.gen_constants import render
from zksolvency.prover.params import EpochParams
from zksolvency.prover.paths import circuits_dir
from zksolvency.prover.poseidon import hash_list, poseidon
from zksolvency.prover.snapshot import Account, Asset, Snapshot
from zksolvency.prover.tree import BatchedTree, climb, padding_leaf
from zksolvency.prover.witness import PlanError, covered_by, plan_epoch, salt_for, salts_for


def test_generated_circuit_constants_are_current() -> None:
    # circuits/lib/constants.circom is generated from the mirror; a stale copy would make the
    # circuit and the mirror disagree about the empty tree.
    assert (circuits_dir() / "lib" / "constants.circom").read_text() == render()


def test_empty_nodes() -> None:
    z = empty_nodes(4)
    assert z[0] == 0
    assert z[1] == poseidon([0, 0])
    assert all(z[i + 1] == poseidon([z[i], z[i]]) for i in range(4))


def test_id_hash_below_2_248_so_ids_never_alias_mod_p() -> None:
    # ANCHORS attack 6 (Summa #289): ids read as field elements alias mod p.
    for i in range(200):
        assert id_hash(f"user-{i}") < 2**ID_HASH_BITS < P
    assert id_hash("alice") != id_hash("alice ")


def test_id_commitment_needs_a_salt_and_hides_the_id() -> None:
    with pytest.raises(ValueError):
        id_commitment("alice", 0)
    assert id_commitment("alice", 1) != id_commitment("alice", 2)


def test_derive_secret_is_deterministic_and_separated() -> None:
    seed = b"\x01" * 32
    assert derive_secret(seed, "salt", "a") == derive_secret(seed, "salt", "a")
    assert derive_secret(seed, "salt", "a") != derive_secret(seed, "blind", "a")
    assert derive_secret(seed, "salt", "a") < 2**248


def test_secret_deriver_equals_derive_secret_call_after_call() -> None:
    seed = b"\x07" * 32
    parts: list[str | int] = ["a", "", "é-ü 用户", "user-000001", 0, 12345, "a\x1fb", "a"]
    # HMAC hashes keys longer than a SHA-256 block first: both sides of that edge
    for s in (seed, b"", b"k" * 64, b"k" * 65, bytes(range(200))):
        for label in ("salt", "position", "blind"):
            derive = secret_deriver(s, label)
            # one deriver serves many parts: no call may leave state behind for the next
            assert [derive(x) for x in parts] == [derive_secret(s, label, x) for x in parts]
    salts = salts_for(seed, ["a", "b", "用户"])
    assert salts == [salt_for(seed, x) for x in ["a", "b", "用户"]]


def test_pack_is_little_end_first_and_refuses_oversized_values() -> None:
    assert pack([1, 2, 3, 4], 64) == [1 + (2 << 64) + (3 << 128), 4]
    with pytest.raises(ValueError):
        pack([2**64], 64)


def test_leaf_binds_every_balance() -> None:
    # ANCHORS attack 5 (Summa #119): balances not bound to the leaf hash.
    c = id_commitment("alice", 5)
    base = leaf_hash(c, [1, 2], [3, 4], [7, 2**63 | 9])
    assert leaf_hash(c, [1, 2], [3, 5], [7, 2**63 | 9]) != base
    assert leaf_hash(c, [2, 1], [3, 4], [7, 2**63 | 9]) != base
    assert leaf_hash(c, [1, 2], [4, 3], [7, 2**63 | 9]) != base
    # positions too, sign included
    assert leaf_hash(c, [1, 2], [3, 4], [7, 9]) != base
    assert leaf_hash(c, [1, 2], [3, 4], [2**63 | 9, 7]) != base
    assert base == hash_list([c, *pack([1, 3, 2, 4], 64), *pack([7, 2**63 | 9], 64)])


def test_quantity_codes_are_sign_and_magnitude() -> None:
    assert [qty_code(q) for q in (0, 5, -5, 2**63 - 1, -(2**63 - 1))] == [
        0,
        5,
        2**63 + 5,
        2**63 - 1,
        2**64 - 1,
    ]
    for q in (0, 1, -1, 12345, -(2**62)):
        assert qty_from_code(qty_code(q)) == q
    for bad in (2**63, -(2**63)):
        with pytest.raises(ValueError):
            qty_code(bad)
    with pytest.raises(ValueError, match="canonical"):
        qty_from_code(2**63)  # negative zero has no place: zero is always positive


_CTX = ([5, 6], [[5, 4], [6, 3]], [[10], [20]], [7, 8], [[1, -2], [-3, 4]])


def test_context_binds_epoch_shape_mode_prices_haircuts_and_risk() -> None:
    h = context_hash(1, 10, 3, STRICT, *_CTX)
    assert context_hash(2, 10, 3, STRICT, *_CTX) != h
    assert context_hash(1, 11, 3, STRICT, *_CTX) != h
    assert context_hash(1, 10, 2, STRICT, *_CTX) != h
    assert context_hash(1, 10, 3, SHORTFALL, *_CTX) != h
    w, tw, width, cap, risk = _CTX
    assert context_hash(1, 10, 3, STRICT, [5, 7], tw, width, cap, risk) != h
    assert context_hash(1, 10, 3, STRICT, w, [[5, 3], [6, 3]], width, cap, risk) != h
    assert context_hash(1, 10, 3, STRICT, w, tw, [[11], [20]], cap, risk) != h
    assert context_hash(1, 10, 3, STRICT, w, tw, width, [7, 9], risk) != h
    assert context_hash(1, 10, 3, STRICT, w, tw, width, cap, [[1, -2], [-3, 5]]) != h
    # A negative risk entry is the field element p - |L|.
    pre = context_preimage(1, 10, 3, STRICT, *_CTX)
    assert pre[-3:] == [P - 2, P - 3, 4]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({0: [2**128, 6]}, "weight"),
        ({1: [[6, 4], [6, 3]]}, "tier weights"),
        ({2: [[2**64], [20]]}, "tier widths"),
        ({3: [2**74, 8]}, "cap limit"),
        ({4: [[2**128, 0], [0, 0]]}, "risk"),
        ({4: [[-(2**128) - 1, 0], [0, 0]]}, "risk"),
    ],
)
def test_context_refuses_what_the_solvency_circuit_would(
    change: dict[int, object], match: str
) -> None:
    args = list(_CTX)
    for i, v in change.items():
        args[i] = v  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=match):
        context_hash(1, 10, 3, STRICT, *args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        context_hash(1, 10, 3, 2, *_CTX)


def test_value_bits_fit_the_field() -> None:
    assert value_bits(1) == 64 + 128 + 1
    assert value_bits(64) <= 252


def _leaves(n: int) -> list[int]:
    rng = random.Random(n)
    return [rng.randrange(1, P) for _ in range(n)]


@pytest.mark.parametrize(("n", "levels", "depth"), [(1, 1, 4), (5, 1, 4), (8, 2, 5), (13, 0, 4)])
def test_tree_paths_and_intermediate_roots(n: int, levels: int, depth: int) -> None:
    params = EpochParams(levels, depth, 2, 2, 8, 2)
    tree = BatchedTree.build(params, _leaves(n))
    assert len(tree.leaves) % params.batch_size == 0
    assert all(x == padding_leaf(2, 2) for x in tree.leaves[n:])
    for i in range(len(tree.leaves)):
        assert climb(tree.leaves[i], i, tree.inclusion_path(i)) == tree.root
    assert tree.root_after(0) == empty_nodes(depth)[depth]
    assert tree.root_after(tree.n_batches) == tree.root
    for k in range(tree.n_batches):
        sib = tree.insertion_siblings(k)
        # the slot was empty before, and holds the batch after
        assert climb(empty_nodes(depth)[levels], k, sib) == tree.root_after(k)
        assert climb(tree.batch_root(k), k, sib) == tree.root_after(k + 1)


def test_tree_refuses_too_many_accounts() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        BatchedTree.build(EpochParams(1, 2, 1, 2, 8, 2), _leaves(5))


def _snapshot(balances: list[tuple[list[int], list[int]]]) -> Snapshot:
    assets = (Asset("BTC", 8, 6_500_000_000_000), Asset("USDT", 6, 100_000_000))
    accounts = tuple(
        Account(f"u{i}", tuple(eq), tuple(debt), i + 1) for i, (eq, debt) in enumerate(balances)
    )
    return Snapshot(assets, accounts, "test")


def test_plan_chains_states_from_the_context() -> None:
    snap = _snapshot([([10**8, 0], [0, 1000]), ([0, 5 * 10**6], [0, 0]), ([1, 0], [0, 0])])
    plan = plan_epoch(snap, EpochParams(1, 4, 2, 2, 8, 2), 3, (2 * 10**8, 10**7), b"s" * 32)
    assert plan.n_batches == 2
    assert plan.states[0] == plan.context.ctx_hash
    assert plan.final_totals == [10**8 + 1, 0, 5 * 10**6, 1000]
    for k in range(plan.n_batches):
        assert plan.batch_public(k) == [plan.states[k], plan.states[k + 1], plan.context.ctx_hash]
        expect = state_hash(
            plan.context.ctx_hash,
            k + 1,
            plan.tree.root_after(k + 1),
            totals_hash(plan.totals_after[k + 1], 4),
            plan.shortfall_after[k + 1],
            plan.blinds[k + 1],
        )
        assert plan.states[k + 1] == expect
        assert plan.blinds[k + 1] == derive_secret(b"s" * 32, "blind", k + 1)
    pub = plan.solvency_public()
    assert pub == [
        plan.states[-1],
        plan.context.ctx_hash,
        plan.tree.root,
        plan.totals_commit(),
        2,
        0,  # no shortfall
        0,  # no insurance fund
        3,  # the epoch
        0,  # bound to no registry
        *plan.context.margin.weights,  # the prices, per smallest unit
        0,  # verified reserves: none read on-chain
        0,
        2 * 10**8,  # declared
        10**7,
        0,  # not solvent on verified reserves alone
    ]
    split = plan_epoch(
        snap, EpochParams(1, 4, 2, 2, 8, 2), 3, (0, 10**7), b"s" * 32, verified=(2 * 10**8, 0)
    )
    assert split.solvency_public()[-5:] == [2 * 10**8, 0, 0, 10**7, 0]
    assert covered_by(split.final_totals, [2 * 10**8, 0]) is False  # USDT needs the declared
    enough = plan_epoch(
        snap, EpochParams(1, 4, 2, 2, 8, 2), 3, (0, 0), b"s" * 32, verified=(2 * 10**8, 10**7)
    )
    assert enough.solvency_public()[-1] == 1 and enough.verified_only


@pytest.mark.parametrize("chunk", [None, 64])
def test_plan_chain_hashed_in_batches_equals_one_state_at_a_time(
    chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 700 batches: the batched hashes of the chain (and of the roots after each batch) are
    # split over the thread pool, and every state must still be the one-at-a-time definition;
    # with chunks of 64 the plan's chunk edges fall inside the epoch
    if chunk is not None:
        monkeypatch.setattr(witness, "_HASH_CHUNK", chunk)
    rng = random.Random(5)
    snap = _snapshot(
        [
            ([rng.randrange(10**9), rng.randrange(10**6)], [0, rng.randrange(10**3)])
            for _ in range(1400)
        ]
    )
    params = EpochParams(1, 11, 2, 2, 8, 2)
    plan = plan_epoch(snap, params, 1, (10**13, 10**10), b"c" * 32)
    assert plan.n_batches == 700
    totals = [0] * 4
    for k in range(plan.n_batches):
        rows = [plan.accounts[j] for j in range(2 * k, 2 * k + 2)]
        for a in rows:
            for i in range(2):
                totals[2 * i] += a.equity[i]
                totals[2 * i + 1] += a.debt[i]
        assert plan.totals_after[k + 1] == totals
        assert plan.blinds[k + 1] == derive_secret(b"c" * 32, "blind", k + 1)
        assert plan.roots[k + 1] == plan.tree.root_after(k + 1)
        assert plan.states[k + 1] == state_hash(
            plan.context.ctx_hash,
            k + 1,
            plan.roots[k + 1],
            totals_hash(totals, params.tree_depth),
            0,
            plan.blinds[k + 1],
        )


def test_plan_refuses_reserves_short_with_the_verified_part_named() -> None:
    snap = _snapshot([([10**8, 0], [0, 0])])
    with pytest.raises(PlanError, match=r"reserves 0\.9 \(verified 0\.5\)"):
        plan_epoch(
            snap,
            EpochParams(1, 4, 2, 2, 8, 2),
            1,
            (4 * 10**7, 0),
            b"s" * 32,
            verified=(5 * 10**7, 0),
        )


def test_plan_lists_insolvent_accounts_before_proving() -> None:
    snap = _snapshot([([1, 0], [0, 10**9]), ([10**8, 0], [0, 0])])
    with pytest.raises(PlanError, match=r"u0 \(line 1\)"):
        plan_epoch(snap, EpochParams(1, 4, 2, 2, 8, 2), 1, (10**9, 10**9), b"s" * 32)


def test_plan_refuses_reserves_below_net_liabilities() -> None:
    snap = _snapshot([([10**8, 0], [0, 0])])
    with pytest.raises(PlanError, match="BTC: liabilities"):
        plan_epoch(snap, EpochParams(1, 4, 2, 2, 8, 2), 1, (10**8 - 1, 0), b"s" * 32)
    plan_epoch(snap, EpochParams(1, 4, 2, 2, 8, 2), 1, (10**8, 0), b"s" * 32)


def test_plan_refuses_more_assets_than_circuit_slots() -> None:
    snap = _snapshot([([1, 0], [0, 0])])
    with pytest.raises(PlanError, match="circuits take 1"):
        plan_epoch(snap, EpochParams(1, 4, 1, 2, 8, 2), 1, (1, 0), b"s" * 32)


def test_leaf_order_is_a_keyed_shuffle_not_the_snapshot_order() -> None:
    rows = [([10**6 * (i + 1), 0], [0, 0]) for i in range(8)]
    snap = _snapshot(rows)
    reordered = Snapshot(snap.assets, tuple(reversed(snap.accounts)), "test")
    params = EpochParams(1, 4, 2, 2, 8, 2)
    reserves = (10**9, 0)
    a = plan_epoch(snap, params, 1, reserves, b"a" * 32)
    # the same seed places accounts identically whatever order the snapshot lists them in
    assert plan_epoch(reordered, params, 1, reserves, b"a" * 32).tree.root == a.tree.root
    # another seed (another epoch) moves them
    b = plan_epoch(snap, params, 1, reserves, b"b" * 32)
    assert [x.id for x in a.accounts] != [x.id for x in b.accounts]
    assert sorted(x.id for x in a.accounts) == sorted(x.id for x in snap.accounts)

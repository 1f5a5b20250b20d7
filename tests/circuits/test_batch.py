"""BatchSolvency (circuits/batch.circom) at batch_1_4_2: 2 accounts per batch, 8 slots, 2 assets.

Mirror agreement runs the production build (--O2, as `setup` compiles it) on epochs planned by
witness.plan_epoch. Each attack starts from a planned batch, changes one thing and re-derives
every other public value with the unguarded mirror (harness.BatchCase), so the witness
calculator fails at exactly the constraint the test names; it is refused by both the production
build and the --O1 build. Tampering edits one wire of a valid --O1 witness.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from harness import (
    BatchCase,
    Circuit,
    assert_at,
    empty_root,
    fired_in,
    random_snapshot,
    raw_context_hash,
    raw_state,
)
from zksolvency.prover.commitments import empty_nodes
from zksolvency.prover.field import P
from zksolvency.prover.params import EpochParams
from zksolvency.prover.tree import climb, subtree_levels
from zksolvency.prover.witness import EpochPlan, plan_epoch

PARAMS = EpochParams(1, 4, 2)
LEVELS, DEPTH, N = PARAMS.batch_levels, PARAMS.tree_depth, PARAMS.n_assets
UPPER = DEPTH - LEVELS
TOTAL_BITS = 64 + DEPTH
FILE = "batch.circom"


def at(snippet: str) -> str:
    """The first failing assert is BatchSolvency's own line holding `snippet`."""
    return assert_at("BatchSolvency", FILE, snippet)


CTX_CHECK = at("ctx.out === ctxHash;")
PREV_CHECK = at("prevState - opened.out === isFirst.out * (ctxHash - opened.out);")
FIRST_ROOT_CHECK = at("isFirst.out * (oldRoot - EMPTY_NODE(TREE_DEPTH)) === 0;")
FIRST_TOTALS_CHECK = at("isFirst.out * oldTotals[i] === 0;")
SLOT_EMPTY_CHECK = at("path.oldRoot === oldRoot;")
NEXT_CHECK = at("next.out === nextState;")


def make_plan(seed: int, n_accounts: int, used: int | None = None) -> EpochPlan:
    snapshot, reserves = random_snapshot(seed, N, n_accounts, used)
    return plan_epoch(snapshot, PARAMS, 1 + seed % 1000, reserves, f"seed-{seed}".encode())


@pytest.fixture(scope="module")
def plan() -> EpochPlan:
    """Seven accounts in two assets: four batches, the last with one padding slot."""
    p = make_plan(7, 7, used=2)
    assert p.n_batches == 4 and all(p.context.weights)
    return p


def case(plan: EpochPlan, k: int) -> BatchCase:
    return BatchCase.from_plan_input(LEVELS, DEPTH, plan.batch_inputs[k])


@pytest.fixture(scope="module")
def builds(batch_o1: Circuit, batch_1_4_2: Circuit) -> list[Circuit]:
    return [batch_o1, batch_1_4_2]


def refused(builds: list[Circuit], inputs: dict[str, Any], match: str) -> None:
    for c in builds:
        c.expect_fail(inputs, match=match)


def accepted(builds: list[Circuit], bc: BatchCase) -> None:
    """Control: the derived inputs prove, with the public signals the mirror derived."""
    for c in builds:
        assert c.public(c.expect_pass(bc.inputs())) == bc.public()


# --- mirror agreement ------------------------------------------------------------------------


def check_plan(c: Circuit, p: EpochPlan) -> None:
    for k in range(p.n_batches):
        w = c.witness(p.batch_inputs[k])
        assert c.public(w) == p.batch_public(k), f"batch {k}"
        assert c.check(w) == [], f"batch {k}"
        shape = p.context.params
        bc = BatchCase.from_plan_input(shape.batch_levels, shape.tree_depth, p.batch_inputs[k])
        assert bc.public() == p.batch_public(k)  # the forging helper agrees with the mirror


@pytest.mark.parametrize(("seed", "n_accounts", "used"), [(1, 1, 1), (2, 5, 2), (3, 6, None)])
def test_plan_batches_match_mirror(
    batch_1_4_2: Circuit, seed: int, n_accounts: int, used: int | None
) -> None:
    """Roots, totals and states of random epochs (one asset leaves a zero-weight slot; odd
    account counts leave padding slots): circuit and mirror agree batch by batch."""
    check_plan(batch_1_4_2, make_plan(seed, n_accounts, used))


def test_o1_build_matches_mirror(batch_o1: Circuit, plan: EpochPlan) -> None:
    check_plan(batch_o1, plan)


def test_full_tree_fills_last_slot(batch_1_4_2: Circuit) -> None:
    """16 accounts fill all 8 slots: batchIndex 2^UPPER - 1 = 7 is provable."""
    p = make_plan(11, 1 << DEPTH)
    assert p.n_batches == 1 << UPPER
    check_plan(batch_1_4_2, p)


def test_production_batch_matches_mirror(batch_3_10_4: Circuit) -> None:
    """batch_3_10_4 (the default instance): 8 accounts per batch, 4 assets."""
    snapshot, reserves = random_snapshot(21, 4, 11, used=4)
    check_plan(batch_3_10_4, plan_epoch(snapshot, EpochParams(3, 10, 4), 5, reserves, b"prod"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_random_epochs_match_mirror(batch_1_4_2: Circuit, seed: int) -> None:
    check_plan(batch_1_4_2, make_plan(seed, random.Random(seed).randint(1, 1 << DEPTH)))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(200, 205))
def test_random_production_epochs_match_mirror(batch_3_10_4: Circuit, seed: int) -> None:
    snapshot, reserves = random_snapshot(seed, 4, random.Random(seed).randint(1, 40))
    check_plan(batch_3_10_4, plan_epoch(snapshot, EpochParams(3, 10, 4), 9, reserves, b"s"))


# --- accounts --------------------------------------------------------------------------------


def test_account_equity_below_debt_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """An account whose debt exceeds its equity by one unit of an asset cannot be batched;
    with equal equity and debt it can."""
    bc = case(plan, 1)
    bc.equity[0] = [1000, 20]
    bc.debt[0] = [1000, 20]
    accepted(builds, bc)
    bc.debt[0] = [1001, 20]
    refused(builds, bc.inputs(), fired_in("Num2Bits", "NonNegativeDifference", "AccountLeaf"))


@pytest.mark.parametrize("bad", [1 << 64, P - 1])
def test_batch_amount_out_of_range_rejected(
    builds: list[Circuit], plan: EpochPlan, bad: int
) -> None:
    """ANCHORS attack 1 in a whole batch: 2^64 or a negative (p - 1) amount."""
    bc = case(plan, 2)
    bc.equity[1] = [bad, (1 << 64) - 1]
    refused(builds, bc.inputs(), fired_in("Num2Bits", "RangeCheck", "AccountLeaf"))


@pytest.mark.parametrize("bad", [1 << 128, P - 1])
def test_weight_out_of_range_rejected(builds: list[Circuit], plan: EpochPlan, bad: int) -> None:
    """A weight >= 2^128 could wrap the value sums; p - 1 ("-1") would turn debt into credit.
    The context hash is recomputed over the bad weight, so only the range check stands."""
    bc = case(plan, 0)
    bc.equity = [[10, 10], [10, 10]]
    bc.debt = [[0, 0], [0, 0]]
    bc.weights = [(1 << 128) - 1, bc.weights[1]]
    accepted(builds, bc)
    bc.weights = [bad, bc.weights[1]]
    refused(builds, bc.inputs(), fired_in("Num2Bits", "RangeCheck", "ContextHash"))


def test_ctx_hash_with_other_weight_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """The weights used in the coverage checks are the published ones: a batch priced with
    a doubled weight (or another epoch) does not open the public ctxHash."""
    published = plan.context.ctx_hash
    bc = case(plan, 1)
    bc.weights = [2 * bc.weights[0], bc.weights[1]]
    bc.ctx_hash = published
    refused(builds, bc.inputs(), CTX_CHECK)
    bc = case(plan, 1)
    bc.epoch += 1
    bc.ctx_hash = published
    refused(builds, bc.inputs(), CTX_CHECK)
    # And the published ctxHash is the mirror's.
    assert raw_context_hash(plan.context.epoch, DEPTH, LEVELS, plan.context.weights) == published


# --- the first batch -------------------------------------------------------------------------


def test_first_batch_nonempty_old_root_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """Batch 0 must start from the empty tree. Here slot 0 really is empty (the path opens),
    but slot 1 already holds made-up accounts: only the empty-tree check can refuse it."""
    bc = case(plan, 0)
    ghost = subtree_levels([123, 456])[-1][0]
    zeros = empty_nodes(DEPTH)
    bc.siblings = [ghost, *zeros[LEVELS + 1 : DEPTH]]
    bc.old_root = climb(ghost, 1, [zeros[LEVELS], *zeros[LEVELS + 1 : DEPTH]])
    assert climb(zeros[LEVELS], 0, bc.siblings) == bc.old_root != empty_root(DEPTH)
    refused(builds, bc.inputs(), FIRST_ROOT_CHECK)


@pytest.mark.parametrize("start", [P - 1000, 5])
def test_first_batch_nonzero_old_totals_rejected(
    builds: list[Circuit], plan: EpochPlan, start: int
) -> None:
    """Batch 0 starts from zero totals: a head start of -1000 (p - 1000) would hide 1000 units
    of liabilities, and the new totals would still be in range."""
    bc = case(plan, 0)
    bc.equity[0] = [5000, 0]
    bc.debt[0] = [0, 0]
    accepted(builds, bc)
    bc.old_totals = [start, 0, 0, 0]
    assert all(t < 1 << TOTAL_BITS for t in bc.new_totals())
    refused(builds, bc.inputs(), FIRST_TOTALS_CHECK)


def test_first_batch_prev_state_must_be_ctx(builds: list[Circuit], plan: EpochPlan) -> None:
    """For batch 0 prevState is ctxHash itself, not some state that opens correctly."""
    bc = case(plan, 0)
    bc.prev_state = raw_state(bc.ctx(), 0, empty_root(DEPTH), [0] * 4, bc.prev_blind, DEPTH)
    refused(builds, bc.inputs(), PREV_CHECK)
    bc.prev_state = 12345
    refused(builds, bc.inputs(), PREV_CHECK)


def test_later_batch_prev_state_must_open(builds: list[Circuit], plan: EpochPlan) -> None:
    """For batch k > 0, prevState must open to (ctx, k, oldRoot, oldTotals, prevBlind): not to
    ctxHash, nor with other totals or another blind."""
    for change in (
        {"prev_state": plan.context.ctx_hash},
        {"prev_blind": 99},
        {"old_totals": [0, 0, 0, 0]},
    ):
        bc = replace(case(plan, 2), **change)
        if "prev_state" not in change:
            bc.prev_state = plan.states[2]
        refused(builds, bc.inputs(), PREV_CHECK)


# --- slots -----------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [1 << UPPER, (1 << UPPER) + 1, P - 1])
def test_batch_index_out_of_range_rejected(
    builds: list[Circuit], plan: EpochPlan, index: int
) -> None:
    """batchIndex >= 2^(DEPTH - BATCH_LEVELS) has no slot; p - 1 would even wrap the next
    batchCount to 0. prevState opens consistently, so only the slot's Num2Bits refuses."""
    bc = case(plan, 1)
    bc.batch_index = index
    refused(builds, bc.inputs(), fired_in("Num2Bits", "BatchSolvency"))


def test_occupied_slot_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """Overwriting batch 1's accounts: prove into slot 1 of the tree after batch 2, with the
    true siblings of slot 1. The opening is consistent, but slot 1 is not empty."""
    bc = case(plan, 2)
    bc.batch_index = 1
    bc.siblings = [plan.tree.batch_root(0), *empty_nodes(DEPTH)[LEVELS + 1 : DEPTH]]
    assert climb(plan.tree.batch_root(1), 1, bc.siblings) == bc.old_root  # a true path
    refused(builds, bc.inputs(), SLOT_EMPTY_CHECK)


def test_batch_moved_to_slot_0_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """Batch 1's inputs proven into slot 0's position: batch 0's rules (ctx, empty tree) bind."""
    raw = dict(plan.batch_inputs[1], batchIndex="0")
    refused(builds, raw, FIRST_TOTALS_CHECK)  # the first of them to be checked
    bc = case(plan, 1)
    bc.batch_index = 0
    bc.old_totals = [0, 0, 0, 0]
    refused(builds, bc.inputs(), FIRST_ROOT_CHECK)


@pytest.mark.parametrize(("k", "index"), [(1, 2), (2, 3), (2, 1), (3, 1), (3, 0)])
def test_batch_reused_with_other_index_rejected(
    builds: list[Circuit], plan: EpochPlan, k: int, index: int
) -> None:
    """Batch k's inputs replayed with batchIndex changed: prevState (a real state of the
    chain) binds batchCount = k, so the opening fails (for index 0, batch 0's rules do)."""
    raw = dict(plan.batch_inputs[k], batchIndex=str(index))
    refused(builds, raw, PREV_CHECK if index else FIRST_TOTALS_CHECK)
    if 0 < index < k:
        # Even a state forged to open with count `index` cannot reuse an occupied slot.
        bc = case(plan, k)
        bc.batch_index = index
        refused(builds, bc.inputs(), SLOT_EMPTY_CHECK)


def test_forged_prev_state_is_not_on_the_chain(builds: list[Circuit], plan: EpochPlan) -> None:
    """What the circuit cannot know: a made-up previous state (here: batchCount 3 over a tree
    of 2 batches, so slot 3 is empty) proves. Continuity is the registry's part: it takes
    prevState from its stored state, and this prevState is none of the chain's states."""
    bc = case(plan, 2)
    bc.batch_index = 3
    accepted(builds, bc)
    assert bc.public()[0] not in plan.states


# --- totals and the next state ---------------------------------------------------------------


def test_total_overflow_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """A total that would reach 2^(64 + DEPTH) cannot be committed (its packing would carry)."""
    bc = case(plan, 1)
    bc.equity = [[1, 0], [0, 5]]
    bc.debt = [[0, 0], [0, 0]]
    bc.old_totals = [(1 << TOTAL_BITS) - 2, *bc.old_totals[1:]]
    accepted(builds, bc)
    bc.equity = [[2, 0], [0, 5]]
    refused(builds, bc.inputs(), fired_in("Num2Bits", "RangeCheck", "BatchSolvency"))


@pytest.mark.parametrize(
    "change",
    [
        "plus_one",
        "hide_equity",
        "drop_debt",
        "same_count",
        "skip_count",
        "old_root",
        "other_blind_ok",
    ],
)
def test_next_state_wrong_rejected(builds: list[Circuit], plan: EpochPlan, change: str) -> None:
    """nextState commits to exactly batchIndex + 1, the updated root and old + batch totals."""
    bc = case(plan, 2)
    honest = bc.new_totals()
    if change == "plus_one":
        bc.next_state = (bc.inputs()["nextState"] + 1) % P
    elif change == "hide_equity":
        bc.next_totals = [(honest[0] - 1) % P, *honest[1:]]  # one unit of liability hidden
    elif change == "drop_debt":
        bc.next_totals = [honest[0], honest[1] + 1, *honest[2:]]
    elif change == "same_count":
        bc.next_count = bc.batch_index
    elif change == "skip_count":
        bc.next_count = bc.batch_index + 2
    elif change == "old_root":
        bc.next_root = bc.old_root
    else:
        bc.next_blind += 1  # any blind is fine: it only hides the totals
        accepted(builds, bc)
        return
    refused(builds, bc.inputs(), NEXT_CHECK)


# --- tampering one wire of a valid witness ---------------------------------------------------


def _changed(value: int) -> int:
    """A different value: the other bit for a bit, else value + 1."""
    return 1 - value if value in (0, 1) else value + 1


TAMPER = {
    # range checks
    "amount bit": (1, "acct[0].eqRange[0].bits.out[0]"),
    "debt bit": (2, "acct[1].debtRange[1].bits.out[63]"),
    "coverage bit": (1, "acct[1].covered.bits.out[5]"),
    "weight bit": (1, "ctx.wRange[0].bits.out[0]"),
    "new total bit": (1, "newRange[2].bits.out[1]"),
    # leaf hashing
    "leaf": (1, "acct[0].leaf"),
    "equity amount": (1, "equity[1][0]"),
    "eqValue product": (1, "acct[0].eqValue[1]"),
    "debtValue product": (2, "acct[1].debtValue[0]"),
    "id commitment": (1, "idCommit[1]"),
    "packed element": (2, "acct[1].h.in[1]"),  # Pack64(eq_0, debt_0, eq_1) as hashed
    # tree path
    "path bit": (1, "path.pathBits[0]"),
    "left node": (2, "path.newLeft[1]"),
    "new node": (1, "path.newNode[2]"),
    "batch subtree root": (1, "path.newLeaf"),
    "sibling": (3, "siblings[0]"),
    # empty-slot check
    "old left node": (3, "path.oldLeft[0]"),
    "old node": (3, "path.oldNode[1]"),
    "old root (batch 0)": (0, "oldRoot"),
    "old root": (2, "oldRoot"),
    # totals
    "new total": (1, "newTotals[0]"),
    "new debt total": (3, "newTotals[3]"),
    "old total": (2, "oldTotals[1]"),
    "old total (batch 0)": (0, "oldTotals[2]"),
    "new totals hash": (1, "newTotalsHash.out"),
    "old totals hash": (2, "oldTotalsHash.out"),
    # state chain
    "isFirst output (k > 0)": (2, "isFirst.out"),
    "isFirst output (k = 0)": (0, "isFirst.out"),
    "isFirst inverse": (3, "isFirst.inv"),
    "opened state": (1, "opened.out"),
    "next count": (1, "next.batchCount"),
    "next root": (1, "next.root"),
    "prevState": (1, "prevState"),
    "nextState": (0, "nextState"),
    "ctxHash": (1, "ctxHash"),
    "batchIndex": (2, "batchIndex"),
    "blind": (3, "nextBlind"),
}


@pytest.fixture(scope="module")
def valid_witnesses(batch_o1: Circuit, plan: EpochPlan) -> list[list[int]]:
    return [batch_o1.expect_pass(plan.batch_inputs[k]) for k in range(plan.n_batches)]


@pytest.mark.parametrize("what", TAMPER)
def test_tampered_wire_rejected(
    batch_o1: Circuit, valid_witnesses: list[list[int]], what: str
) -> None:
    k, signal = TAMPER[what]
    w = valid_witnesses[k]
    batch_o1.expect_constraint_fail(batch_o1.tamper(w, signal, _changed(batch_o1.get(w, signal))))

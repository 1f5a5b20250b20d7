"""BatchSolvency (circuits/batch.circom) at batch_1_4_2_2_8_2: 2 accounts per batch, 8 slots,
2 assets, 2 instruments, 8 scenarios, 2 haircut tiers.

Mirror agreement runs the production build (--O2, as `setup` compiles it) on epochs planned by
witness.plan_epoch. Each attack starts from a planned batch, changes one thing and re-derives
every other public value with the unguarded mirror (harness.BatchCase), so the witness
calculator fails at exactly the constraint the test names; it is refused by both the production
build and the --O1 build. Tampering edits one wire of a valid --O1 witness.

This file covers the batch chain (context, states, tree, totals, the shortfall total); the margin
rule inside a batch (positions, tiers, scenarios, shortfalls) is tested in test_margin.py.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from harness import (
    DEFAULT,
    SMALL,
    SPOT,
    BatchCase,
    Circuit,
    RawContext,
    SolvencyCase,
    assert_at,
    empty_root,
    fired_in,
    margin_inputs,
    random_snapshot,
    raw_state,
    tiered_haircuts,
)
from zksolvency.prover.commitments import SHORTFALL, empty_nodes, fund_bits
from zksolvency.prover.field import P
from zksolvency.prover.params import EpochParams
from zksolvency.prover.tree import climb, subtree_levels
from zksolvency.prover.witness import EpochPlan, MarginInputs, PlanError, plan_epoch

PARAMS = SMALL
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
FIRST_SHORTFALL_CHECK = at("isFirst.out * oldShortfall === 0;")
SLOT_EMPTY_CHECK = at("path.oldRoot === oldRoot;")
NEXT_CHECK = at("next.out === nextState;")


def plan_for(
    params: EpochParams,
    seed: int,
    n_accounts: int,
    used: int | None = None,
    *,
    positions: bool = True,
    shortfall: bool = False,
) -> EpochPlan:
    """An epoch of a random snapshot with sample derivatives (perpetuals first, held by some
    accounts) unless `positions` is False; strict mode without haircuts, or shortfall mode with
    tiered haircuts and the largest insurance fund the circuits take."""
    snapshot, reserves = random_snapshot(seed, params.n_assets, n_accounts, used)
    margin = None
    if shortfall:
        fund = (1 << fund_bits(params.tree_depth, params.n_assets, params.n_instruments)) - 1
        margin = margin_inputs(snapshot, params, seed, haircuts=True, mode=SHORTFALL, fund=fund)
    elif positions:
        margin = margin_inputs(snapshot, params, seed)
    return plan_epoch(snapshot, params, 1 + seed % 1000, reserves, f"seed-{seed}".encode(), margin)


def make_plan(
    seed: int, n_accounts: int, used: int | None = None, positions: bool = True
) -> EpochPlan:
    return plan_for(PARAMS, seed, n_accounts, used, positions=positions)


@pytest.fixture(scope="module")
def plan() -> EpochPlan:
    """Seven accounts in two assets, some (four) with positions: four batches, the last with
    one padding slot."""
    p = make_plan(7, 7, used=2)
    assert p.n_batches == 4 and all(p.context.weights)
    assert sum(1 for q in p.qty if any(q)) >= 2
    return p


def case(plan: EpochPlan, k: int) -> BatchCase:
    return BatchCase.from_plan_input(LEVELS, DEPTH, plan.batch_inputs[k])


@pytest.fixture(scope="module")
def builds(batch_o1: Circuit, batch_1_4_2_2_8_2: Circuit) -> list[Circuit]:
    return [batch_o1, batch_1_4_2_2_8_2]


def refused(builds: list[Circuit], inputs: dict[str, Any], match: str) -> None:
    for c in builds:
        c.expect_fail(inputs, match=match)


def accepted(builds: list[Circuit], bc: BatchCase) -> None:
    """Control: the derived inputs prove, with the public signals the mirror derived."""
    for c in builds:
        assert c.public(c.expect_pass(bc.inputs())) == bc.public()


# --- mirror agreement ------------------------------------------------------------------------


def check_plan(c: Circuit, p: EpochPlan) -> None:
    shape = p.context.params
    for k in range(p.n_batches):
        w = c.witness(p.batch_inputs[k])
        assert c.public(w) == p.batch_public(k), f"batch {k}"
        assert c.check(w) == [], f"batch {k}"
        bc = BatchCase.from_plan_input(shape.batch_levels, shape.tree_depth, p.batch_inputs[k])
        # The forging helper agrees with the mirror: the states, and every input.
        assert bc.public() == p.batch_public(k)
        assert bc.inputs().keys() == p.batch_inputs[k].keys()


@pytest.mark.parametrize(
    ("seed", "n_accounts", "used", "positions"),
    [(1, 1, 1, False), (2, 5, 2, True), (3, 6, None, True), (8, 9, None, True)],
)
def test_plan_batches_match_mirror(
    batch_1_4_2_2_8_2: Circuit, seed: int, n_accounts: int, used: int | None, positions: bool
) -> None:
    """Roots, totals and states of random epochs (one asset leaves a zero-weight slot; odd
    account counts leave padding slots; some accounts hold positions): circuit and mirror agree
    batch by batch."""
    check_plan(batch_1_4_2_2_8_2, make_plan(seed, n_accounts, used, positions))


def test_shortfall_plan_batches_match_mirror(batch_1_4_2_2_8_2: Circuit) -> None:
    """Shortfall mode with tiered haircuts: some accounts fail the margin rule and declare
    their shortfall, which the state chain sums."""
    p = plan_for(PARAMS, 7, 9, shortfall=True)
    assert sum(1 for s in p.shortfalls if s) >= 2 and p.shortfall == sum(p.shortfalls)
    check_plan(batch_1_4_2_2_8_2, p)


def test_o1_build_matches_mirror(batch_o1: Circuit, plan: EpochPlan) -> None:
    check_plan(batch_o1, plan)


def test_full_tree_fills_last_slot(batch_1_4_2_2_8_2: Circuit) -> None:
    """16 accounts fill all 8 slots: batchIndex 2^UPPER - 1 = 7 is provable."""
    p = make_plan(3, 1 << DEPTH)
    assert p.n_batches == 1 << UPPER
    check_plan(batch_1_4_2_2_8_2, p)


def test_production_batch_matches_mirror(batch_3_10_4_8_16_3: Circuit) -> None:
    """batch_3_10_4_8_16_3 (the default instance): 8 accounts per batch, 4 assets, 8
    instruments, 16 scenarios, 3 tiers, in shortfall mode; a full batch and a padded one."""
    p = plan_for(DEFAULT, 21, 11, used=4, shortfall=True)
    assert any(any(q) for q in p.qty) and p.n_batches == 2
    check_plan(batch_3_10_4_8_16_3, p)


def test_spot_batch_matches_mirror(batch_1_4_2_1_1_2: Circuit) -> None:
    """Without derivatives a one-scenario shape proves spot margin (tiered haircuts, shortfall
    mode): the plan publishes no grid and its batches agree with the circuit."""
    snapshot, reserves = random_snapshot(41, SPOT.n_assets, 7, None)
    table = tiered_haircuts(snapshot, SPOT.n_tiers)
    p = plan_epoch(snapshot, SPOT, 3, reserves, b"spot", MarginInputs(None, table))
    assert p.context.grid is None and p.n_batches == 4
    check_plan(batch_1_4_2_1_1_2, p)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_random_epochs_match_mirror(batch_1_4_2_2_8_2: Circuit, seed: int) -> None:
    n_accounts = random.Random(seed).randint(1, 1 << DEPTH)
    try:
        p = make_plan(seed, n_accounts)
    except PlanError:  # a sample position fails strict margin: the same epoch in shortfall mode
        p = plan_for(PARAMS, seed, n_accounts, shortfall=True)
    check_plan(batch_1_4_2_2_8_2, p)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(200, 205))
def test_random_production_epochs_match_mirror(batch_3_10_4_8_16_3: Circuit, seed: int) -> None:
    n_accounts = random.Random(seed).randint(1, 40)
    check_plan(batch_3_10_4_8_16_3, plan_for(DEFAULT, seed, n_accounts, shortfall=True))


# --- accounts and the context ----------------------------------------------------------------


def test_account_equity_below_debt_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """An account whose debt exceeds its equity by one unit of an asset cannot be batched;
    with equal equity and debt it can (no haircut, no position: margin value exactly 0)."""
    bc = case(plan, 1)
    bc.set_account(0, [1000, 20], [1000, 20])
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


@pytest.mark.parametrize("bad", [-(-P // 5), P - 1])  # 5 * ceil(p / 5) = p + (0..4); "-1"
def test_weight_out_of_range_rejected(
    builds: list[Circuit],
    solvency_o1: Circuit,
    solvency_1_4_2_2_8_2: Circuit,
    plan: EpochPlan,
    bad: int,
) -> None:
    """A weight >= 2^128 could wrap the value sums (5 units of debt at ceil(p / 5) are worth at
    most 4 value units mod p); p - 1 ("-1") turns debt into credit: either way an account
    holding nothing but 5 units of debt in that asset counts as covered.

    The batch circuit only hashes the context (docs/margin-design.md, "Context"), so it proves
    this batch; but the epoch can never close, because the solvency circuit opens the same
    context and range-checks it. The context hash is recomputed over the bad weight, so only
    that range check stands."""
    bc = case(plan, 0)
    bc.set_account(0, [0, 10], [5, 0])
    bc.set_account(1, [10, 10], [0, 0])
    bc.context.weights[0] = (1 << 128) - 1
    refused(builds, bc.inputs(), fired_in("Num2Bits", "NonNegativeDifference", "AccountLeaf"))
    bc.context.weights[0] = bad
    accepted(builds, bc)  # the batch alone cannot tell
    sc = SolvencyCase.from_plan_input(DEPTH, LEVELS, plan.solvency_input())
    sc.context = bc.context.copy()
    sc.context.weights[0] = (1 << 128) - 1
    for c in (solvency_o1, solvency_1_4_2_2_8_2):
        c.expect_pass(sc.inputs())
    sc.context.weights[0] = bad
    for c in (solvency_o1, solvency_1_4_2_2_8_2):
        c.expect_fail(sc.inputs(), match=fired_in("Num2Bits", "RangeCheck", "ContextBounds"))


@pytest.mark.parametrize("change", ["weight", "epoch", "tier weight", "risk", "mode", "shape"])
def test_ctx_hash_with_other_context_rejected(
    builds: list[Circuit], plan: EpochPlan, change: str
) -> None:
    """The weights, haircuts and risk arrays used in the coverage and margin checks are the
    published ones: a batch priced with a doubled weight, a better tier, a milder risk entry,
    in another epoch or mode, or for circuits of another shape does not open the public
    ctxHash."""
    published = plan.context.ctx_hash
    bc = case(plan, 1)
    ctx = bc.context
    if change == "weight":
        ctx.weights[0] *= 2
    elif change == "epoch":
        ctx.epoch += 1
    elif change == "tier weight":
        ctx.tier_weights[0][1] += 1
    elif change == "risk":
        ctx.risk[0][3] += 1
    elif change == "mode":
        ctx.mode = SHORTFALL
    if change == "shape":
        # The same numbers published for batches of 4: the circuit hashes its own shape.
        bc.ctx_hash = replace(ctx, batch_levels=LEVELS + 1).hash()
    else:
        bc.ctx_hash = published
    refused(builds, bc.inputs(), CTX_CHECK)
    # And the published ctxHash is the mirror's.
    assert RawContext.of(plan.context.margin, plan.context.epoch, DEPTH, LEVELS).hash() == published


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
    bc.set_account(0, [5000, 0], [0, 0])
    accepted(builds, bc)
    bc.old_totals = [start, 0, 0, 0]
    assert all(t < 1 << TOTAL_BITS for t in bc.new_totals())
    refused(builds, bc.inputs(), FIRST_TOTALS_CHECK)


@pytest.mark.parametrize("start", [P - 1000, 5])
def test_first_batch_nonzero_old_shortfall_rejected(
    builds: list[Circuit], plan: EpochPlan, start: int
) -> None:
    """Batch 0 starts from a zero shortfall total: a head start of -1000 (p - 1000) would hide
    1000 value units of shortfall from the insurance fund check at the end of the epoch."""
    bc = case(plan, 0)
    bc.context.mode = SHORTFALL
    bc.shortfall = [1000, 0]
    accepted(builds, bc)
    bc.old_shortfall = start
    refused(builds, bc.inputs(), FIRST_SHORTFALL_CHECK)


def test_first_batch_prev_state_must_be_ctx(builds: list[Circuit], plan: EpochPlan) -> None:
    """For batch 0 prevState is ctxHash itself, not some state that opens correctly."""
    bc = case(plan, 0)
    bc.prev_state = raw_state(bc.ctx(), 0, empty_root(DEPTH), [0] * 4, 0, bc.prev_blind, DEPTH)
    refused(builds, bc.inputs(), PREV_CHECK)
    bc.prev_state = 12345
    refused(builds, bc.inputs(), PREV_CHECK)


def test_later_batch_prev_state_must_open(builds: list[Circuit], plan: EpochPlan) -> None:
    """For batch k > 0, prevState must open to (ctx, k, oldRoot, oldTotals, oldShortfall,
    prevBlind): not to ctxHash, nor with other totals, another shortfall total (a lower one
    would hide shortfall) or another blind."""
    for change in (
        {"prev_state": plan.context.ctx_hash},
        {"prev_blind": 99},
        {"old_totals": [0, 0, 0, 0]},
        {"old_shortfall": P - 1},
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


def test_leaf_moved_from_another_batch_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """Batch 1's first account proven in batch 0 in place of batch 0's first: under the chain's
    nextState the new tree does not open. Proven consistently (its own nextState), it is a state
    off the chain: batch 1 as planned (and as the registry would next expect) no longer
    continues from it."""
    bc, donor = case(plan, 0), case(plan, 1)
    assert donor.id_commit[0] not in (0, bc.id_commit[0])
    bc.id_commit[0] = donor.id_commit[0]
    bc.equity[0], bc.debt[0] = list(donor.equity[0]), list(donor.debt[0])
    bc.qty[0], bc.shortfall[0] = list(donor.qty[0]), donor.shortfall[0]
    bc.next_state = plan.states[1]
    refused(builds, bc.inputs(), NEXT_CHECK)
    bc.next_state = None
    accepted(builds, bc)
    assert bc.public()[1] != plan.states[1] == plan.batch_public(1)[0]


def test_forged_prev_state_is_not_on_the_chain(builds: list[Circuit], plan: EpochPlan) -> None:
    """What the circuit cannot know: a made-up previous state (here: batchCount 3 over a tree
    of 2 batches, so slot 3 is empty) proves. Continuity is the registry's part: it takes
    prevState from its stored state, and this prevState is none of the chain's states."""
    bc = case(plan, 2)
    bc.batch_index = 3
    accepted(builds, bc)
    assert bc.public()[0] not in plan.states


# --- totals, shortfall total and the next state ----------------------------------------------


def test_total_overflow_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """A total that would reach 2^(64 + DEPTH) cannot be committed (its packing would carry)."""
    bc = case(plan, 1)
    bc.set_account(0, [1, 0], [0, 0])
    bc.set_account(1, [0, 5], [0, 0])
    bc.old_totals = [(1 << TOTAL_BITS) - 2, *bc.old_totals[1:]]
    accepted(builds, bc)
    bc.equity[0] = [2, 0]
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
        "hide_shortfall",
        "extra_shortfall",
        "other_blind_ok",
    ],
)
def test_next_state_wrong_rejected(builds: list[Circuit], plan: EpochPlan, change: str) -> None:
    """nextState commits to exactly batchIndex + 1, the updated root, old + batch totals and
    old + batch shortfall (here in shortfall mode, an account declaring 10^30 of shortfall on
    top of 5 * 10^29 carried over)."""
    bc = case(plan, 2)
    bc.context.mode = SHORTFALL
    bc.shortfall = [10**30, 0]
    bc.old_shortfall = 5 * 10**29
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
    elif change == "hide_shortfall":
        bc.next_shortfall = bc.old_shortfall  # the batch's shortfall left out of the total
    elif change == "extra_shortfall":
        bc.next_shortfall = bc.new_shortfall() + 1
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
    "new total bit": (1, "newRange[2].bits.out[1]"),
    "shortfall bit": (1, "shortRange[0].bits.out[3]"),
    # the context
    "weight": (1, "weights[0]"),
    "cap limit": (2, "capLimit[1]"),
    "mode": (3, "mode"),
    "context hash chain": (0, "ctx.h.digest[1]"),
    # leaf hashing
    "leaf": (1, "acct[0].leaf"),
    "equity amount": (1, "equity[1][0]"),
    "eqValue product": (1, "acct[0].eqValue[1]"),
    "debtValue product": (2, "acct[1].debtValues[0]"),
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
    # totals and the shortfall total
    "new total": (1, "newTotals[0]"),
    "new debt total": (3, "newTotals[3]"),
    "old total": (2, "oldTotals[1]"),
    "old total (batch 0)": (0, "oldTotals[2]"),
    "new totals hash": (1, "newTotalsHash.out"),
    "old totals hash": (2, "oldTotalsHash.out"),
    "old shortfall (batch 0)": (0, "oldShortfall"),
    "old shortfall": (2, "oldShortfall"),
    "next shortfall": (1, "next.shortfall"),
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

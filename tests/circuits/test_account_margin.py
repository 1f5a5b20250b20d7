"""AccountMarginProof (circuits/account_margin.circom) at margin_1_4_2_2_8_2: one account of a
published epoch meets the strict margin rule with `headroom` to spare.

Public [ctxHash, root, idCommit, headroom]; the account, its leaf index and path are
private. Accounts come from epochs planned by witness.plan_epoch (harness.AccountCase.from_plan
takes leaf j with its inclusion path) or are random, under random contexts. Attacks change one
thing and re-derive the rest, in both the --O2 and the --O1 build.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from harness import (
    DEFAULT,
    SMALL,
    AccountCase,
    Circuit,
    assert_at,
    codes,
    margin_inputs,
    nested,
    random_context,
    random_margin_account,
    random_snapshot,
)
from zksolvency.prover import margin as mirror
from zksolvency.prover.commitments import SHORTFALL, SIGN_BIT, fund_bits, margin_bits
from zksolvency.prover.field import P
from zksolvency.prover.params import EpochParams
from zksolvency.prover.witness import EpochPlan, plan_epoch

DEPTH, N, N_INSTR = SMALL.tree_depth, SMALL.n_assets, SMALL.n_instruments
MARGIN_BITS = margin_bits(N, N_INSTR)
FILE = "account_margin.circom"

ROOT_CHECK = assert_at("AccountMarginProof", FILE, "path.root === root;")
CTX_CHECK = assert_at("AccountMarginProof", FILE, "ctx.out === ctxHash;")
MARGIN_CHECK = nested(
    "Num2Bits", "RangeCheck", ("Margin", "lib/margin.circom", "ok[s].in <=="), "AccountMarginProof"
)
HEADROOM_RANGE = nested(
    "Num2Bits", "RangeCheck", ("AccountMarginProof", FILE, "headroomRange.in <== headroom;")
)
INDEX_RANGE = nested("Num2Bits", ("AccountMarginProof", FILE, "index.in <== leafIndex;"))


def plan_for(
    params: EpochParams, seed: int, n_accounts: int, *, shortfall: bool = False
) -> EpochPlan:
    snapshot, reserves = random_snapshot(seed, params.n_assets, n_accounts, used=params.n_assets)
    if shortfall:
        fund = (1 << fund_bits(params.tree_depth, params.n_assets, params.n_instruments)) - 1
        inputs = margin_inputs(snapshot, params, seed, haircuts=True, mode=SHORTFALL, fund=fund)
    else:
        inputs = margin_inputs(snapshot, params, seed)
    return plan_epoch(snapshot, params, 4, reserves, f"single-{seed}".encode(), inputs)


@pytest.fixture(scope="module")
def plan() -> EpochPlan:
    """A strict epoch: seven accounts, some of them (four) with positions, all passing."""
    p = plan_for(SMALL, 7, 7)
    assert sum(1 for q in p.qty if any(q)) >= 2
    return p


@pytest.fixture(scope="module")
def short_plan() -> EpochPlan:
    """A shortfall-mode epoch with tiered haircuts: some accounts (two of seven) fail the rule."""
    p = plan_for(SMALL, 2, 7, shortfall=True)
    assert sum(1 for s in p.shortfalls if s) >= 1
    return p


@pytest.fixture(scope="module")
def builds(account_margin_o1: Circuit, margin_1_4_2_2_8_2: Circuit) -> list[Circuit]:
    return [account_margin_o1, margin_1_4_2_2_8_2]


def refused(builds: list[Circuit], inputs: dict[str, Any], match: str) -> None:
    for c in builds:
        c.expect_fail(inputs, match=match)


def accepted(builds: list[Circuit], case: AccountCase) -> None:
    for c in builds:
        assert c.public(c.expect_pass(case.inputs())) == case.public()


def with_position(plan: EpochPlan) -> int:
    """The first leaf holding a position."""
    return next(j for j, q in enumerate(plan.qty) if any(q))


# --- mirror agreement ------------------------------------------------------------------------


def check_leaf(c: Circuit, plan: EpochPlan, j: int) -> None:
    """Leaf j proves its true headroom (prover.margin's, as plan_epoch recorded it) and 0, with
    the epoch's public ctxHash and root; one unit more than its headroom does not prove."""
    case = AccountCase.from_plan(plan, j)
    h = plan.headrooms[j][0]
    assert case.true_headroom() == h >= 0
    for claim in (h, 0):
        case.headroom = claim
        w = c.witness(case.inputs())
        assert c.public(w) == [plan.context.ctx_hash, plan.tree.root, plan.id_commits[j], claim]
    case.headroom = h + 1
    c.expect_fail(case.inputs(), match=MARGIN_CHECK)


def test_every_leaf_matches_mirror(margin_1_4_2_2_8_2: Circuit, plan: EpochPlan) -> None:
    for j in range(len(plan.accounts)):
        check_leaf(margin_1_4_2_2_8_2, plan, j)


def test_o1_build_matches_mirror(account_margin_o1: Circuit, plan: EpochPlan) -> None:
    j = with_position(plan)
    check_leaf(account_margin_o1, plan, j)
    assert (
        account_margin_o1.check(account_margin_o1.witness(AccountCase.from_plan(plan, j).inputs()))
        == []
    )


def test_production_margin_matches_mirror(margin_3_10_4_8_16_3: Circuit) -> None:
    """The default instance (depth 10, 4 assets, 8 instruments, 16 scenarios, 3 tiers), on a
    shortfall-mode epoch: its passing accounts prove their headroom."""
    p = plan_for(DEFAULT, 21, 11, shortfall=True)
    passing = [j for j, (h, _) in enumerate(p.headrooms) if h >= 0]
    for j in [with_position(p), passing[-1]]:
        if p.headrooms[j][0] >= 0:
            check_leaf(margin_3_10_4_8_16_3, p, j)
    w = margin_3_10_4_8_16_3.witness(AccountCase.from_plan(p, passing[-1]).inputs())
    assert margin_3_10_4_8_16_3.check(w) == []


def test_random_accounts_match_mirror(margin_1_4_2_2_8_2: Circuit) -> None:
    """Random contexts and accounts at random leaves: a headroom proves exactly when it is at
    most prover.margin's headroom (so a failing account proves nothing, not even 0)."""
    rng = random.Random(99)
    outcomes = set()
    for _ in range(12):
        ctx = random_context(rng, SMALL)
        equity, debt, qty = random_margin_account(rng, ctx)
        h, _ = mirror.headroom(equity, debt, qty, ctx.margin())
        case = AccountCase(
            context=ctx,
            id_commit=rng.randrange(1, P),
            equity=equity,
            debt=debt,
            qty=codes(qty),
            headroom=0,
            leaf_index=rng.randrange(1 << DEPTH),
            siblings=[rng.randrange(P) for _ in range(DEPTH)],
        )
        assert case.true_headroom() == h
        outcomes.add(h >= 0)
        for claim in sorted({0, h, h + 1, h - 1}):
            if claim < 0:
                continue  # a negative claim is p - x: test_headroom_out_of_range_rejected
            case.headroom = claim
            if claim <= h:
                margin_1_4_2_2_8_2.witness(case.inputs())
            else:
                margin_1_4_2_2_8_2.expect_fail(case.inputs(), match=MARGIN_CHECK)
    assert outcomes == {True, False}


# --- attacks ---------------------------------------------------------------------------------


def test_headroom_above_true_headroom_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """The exact headroom proves, one value unit more does not."""
    case = AccountCase.from_plan(plan, with_position(plan))
    accepted(builds, case)
    case.headroom += 1
    refused(builds, case.inputs(), MARGIN_CHECK)


def test_failing_account_cannot_prove(builds: list[Circuit], short_plan: EpochPlan) -> None:
    """In a shortfall-mode epoch a failing account sits in the tree (with its shortfall), but
    the single-account proof is always strict: it proves no headroom, not even 0."""
    j = next(j for j, s in enumerate(short_plan.shortfalls) if s)
    case = AccountCase.from_plan(short_plan, j, headroom=0)
    assert case.true_headroom() == -short_plan.shortfalls[j]
    refused(builds, case.inputs(), MARGIN_CHECK)


@pytest.mark.parametrize("claim", ["p - deficit", "p - 2 deficit", "2^MARGIN_BITS"])
def test_headroom_out_of_range_rejected(
    builds: list[Circuit], short_plan: EpochPlan, claim: str
) -> None:
    """A "negative" headroom p - x lets a failing account short by d <= x pass every scenario
    check: value - (p - x) = value + x mod p, which is in range. The headroom range check
    stops it, as it stops 2^MARGIN_BITS, which could wrap the scenario checks."""
    j = next(j for j, s in enumerate(short_plan.shortfalls) if s)
    deficit = short_plan.shortfalls[j]
    bad = {
        "p - deficit": P - deficit,
        "p - 2 deficit": P - 2 * deficit,
        "2^MARGIN_BITS": 1 << MARGIN_BITS,
    }[claim]
    case = AccountCase.from_plan(short_plan, j, headroom=bad)
    assert case.true_headroom() == -deficit
    if claim.startswith("p"):  # every scenario check alone would pass
        values = case.context.margin_values(case.equity, case.debt, case.signed_qty())
        assert all(0 <= (v - bad) % P < 1 << MARGIN_BITS for v in values)
    refused(builds, case.inputs(), HEADROOM_RANGE)


@pytest.mark.parametrize("change", ["root + 1", "old root", "other epoch's root"])
def test_wrong_root_rejected(builds: list[Circuit], plan: EpochPlan, change: str) -> None:
    """The root must be the epoch's: a made-up root, the tree before the last batch (a state
    the registry never finalized), or another epoch's root do not hold the leaf."""
    case = AccountCase.from_plan(plan, with_position(plan))
    if change == "root + 1":
        case.root = (plan.tree.root + 1) % P
    elif change == "old root":
        case.root = plan.tree.root_after(plan.n_batches - 1)
    else:
        case.root = plan_for(SMALL, 8, 5).tree.root
    refused(builds, case.inputs(), ROOT_CHECK)


def test_wrong_id_commit_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """idCommit is part of the leaf: an account cannot be proven under another account's id
    commitment (lending someone else's margin), nor under a made-up one."""
    j = with_position(plan)
    other = (j + 1) % len(plan.accounts)
    case = AccountCase.from_plan(plan, j, headroom=0)
    root = plan.tree.root
    for id_commit in (plan.id_commits[other], plan.id_commits[j] + 1):
        case.id_commit = id_commit
        case.root = root
        refused(builds, case.inputs(), ROOT_CHECK)


def test_other_leaf_position_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """The account at another index, with the path of its true index, is not in the tree."""
    j = with_position(plan)
    case = AccountCase.from_plan(plan, j, headroom=0)
    case.root = plan.tree.root
    case.leaf_index = j ^ 1
    refused(builds, case.inputs(), ROOT_CHECK)


@pytest.mark.parametrize("offset", [1 << DEPTH, 1 << 32, P - (1 << DEPTH)])
def test_leaf_index_out_of_range_rejected(
    builds: list[Circuit], plan: EpochPlan, offset: int
) -> None:
    """leafIndex >= 2^depth: the low bits give the right path (the root opens), but the index
    is not a leaf position. Only the index's Num2Bits refuses."""
    j = with_position(plan)
    case = AccountCase.from_plan(plan, j, headroom=0)
    case.root = plan.tree.root
    case.leaf_index = j + offset
    refused(builds, case.inputs(), INDEX_RANGE)


def test_balances_or_positions_changed_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """More equity, less debt, or a position with its sign flipped (the leaf has the true
    one): none is in the published tree."""
    j = with_position(plan)
    i = next(i for i, q in enumerate(plan.qty[j]) if q)
    for change in ("equity", "debt", "sign"):
        case = AccountCase.from_plan(plan, j, headroom=0)
        case.root = plan.tree.root
        if change == "equity":
            case.equity[0] += 1
        elif change == "debt":
            case.debt = [0] * N
        else:
            case.qty[i] ^= SIGN_BIT
        refused(builds, case.inputs(), ROOT_CHECK)


def test_context_mismatch_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """The context must open the epoch's ctxHash: a milder risk entry, a better tier weight or
    the strict copy of another epoch's context are refused."""
    for change in ("risk", "tier weight", "epoch"):
        case = AccountCase.from_plan(plan, with_position(plan), headroom=0)
        case.ctx_hash = plan.context.ctx_hash
        if change == "risk":
            case.context.risk[0][0] += 1
        elif change == "tier weight":
            case.context.tier_weights[0][0] += 1
        else:
            case.context.epoch += 1
        refused(builds, case.inputs(), CTX_CHECK)


def test_failing_account_beyond_its_first_tier_rejected(
    builds: list[Circuit], short_plan: EpochPlan
) -> None:
    """The circuit fills the tiers itself, as the batch does: a failing account whose equity
    reaches past its first tier cannot claim headroom 0, and has no split to choose."""
    j = next(
        j
        for j, s in enumerate(short_plan.shortfalls)
        if s
        and AccountCase.from_plan(short_plan, j).context.split(short_plan.accounts[j].equity)[0][1]
    )
    case = AccountCase.from_plan(short_plan, j, headroom=0)
    assert case.true_headroom() < 0 and "split" not in case.inputs()
    refused(builds, case.inputs(), MARGIN_CHECK)


def test_headroom_is_public(builds: list[Circuit], plan: EpochPlan) -> None:
    """The proof's public signals name the headroom: the same witness cannot serve another."""
    case = AccountCase.from_plan(plan, with_position(plan))
    for c in builds:
        w = c.expect_pass(case.inputs())
        assert c.public(w)[3] == case.headroom > 0


# --- tampering -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signal",
    [
        "headroom",
        "headroomRange.bits.out[0]",
        "idCommit",
        "root",
        "ctxHash",
        "leafIndex",
        "index.out[0]",  # a path bit
        "path.left[1]",
        "path.node[2]",
        "siblings[3]",
        "acct.leaf",
        "acct.code[{i}].out[63]",  # the position's sign bit
        "acct.code[{i}].out[0]",
        "acct.q[{i}]",
        "acct.magSum",
        "margin.pnl[{i}][4]",
        "margin.excess[0][0]",
        "margin.step[1][0]",
        "margin.above[0][0].out[0]",
        "margin.ok[2].bits.out[1]",
        "risk[{i}][1]",
        "equity[0]",
    ],
)
def test_tampered_wire_rejected(account_margin_o1: Circuit, plan: EpochPlan, signal: str) -> None:
    j = with_position(plan)
    i = next(i for i, q in enumerate(plan.qty[j]) if q)
    c = account_margin_o1
    w = c.expect_pass(AccountCase.from_plan(plan, j).inputs())
    name = signal.format(i=i)
    v = c.get(w, name)
    c.expect_constraint_fail(c.tamper(w, name, 1 - v if v in (0, 1) else v + 1))

"""The margin rule (circuits/lib/margin.circom), alone and inside BatchSolvency, against the
Python mirror (prover/margin.py) and docs/margin-design.md.

Per account and scenario s the circuits range-check
    credit - debtValue + sum_i q_i * L[i][s] - sum_i |q_i| + shortfall - floor
to [0, 2^MARGIN_BITS),
with credit = sum over assets and tiers of fill * tierWeight, the equity filled into the tiers
in order by the circuit itself. The unit tests drive Margin directly
(margin_unit = Margin(2, 2, 8, 2), margin_tiers3 = Margin(1, 1, 2, 3)); the batch tests put
accounts into a batch of batch_1_4_2_2_8_2 (and its --O1 build) with harness.BatchCase, so that
each attack fails at the check it names while every hash and state stays consistent.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from harness import (
    SMALL,
    TIERS3,
    TIERS16,
    BatchCase,
    Circuit,
    RawContext,
    SolvencyCase,
    assert_at,
    fired_in,
    first_batch,
    nested,
    random_context,
    random_margin_account,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from zksolvency.prover import margin as mirror
from zksolvency.prover.commitments import (
    RISK_BITS,
    SHORTFALL,
    SIGN_BIT,
    STRICT,
    margin_bits,
)
from zksolvency.prover.field import P
from zksolvency.prover.params import EpochParams

LEVELS, DEPTH, N = SMALL.batch_levels, SMALL.tree_depth, SMALL.n_assets
N_INSTR, N_SCEN = SMALL.n_instruments, SMALL.n_scenarios
MARGIN_BITS = margin_bits(N, N_INSTR)
MAX64 = (1 << 64) - 1
MAX_W = (1 << 128) - 1
MAX_MAG = SIGN_BIT - 1
F = "lib/margin.circom"
E18 = 10**18

MARGIN_CHECK = nested("Num2Bits", "RangeCheck", ("Margin", F, "ok[s].in <=="))
STRICT_SHORTFALL = assert_at("BatchSolvency", "batch.circom", "(1 - mode) * shortfall[a] === 0;")
SHORTFALL_RANGE = nested(
    "Num2Bits", "RangeCheck", ("BatchSolvency", "batch.circom", "shortRange[a].in <==")
)
NEXT_CHECK = assert_at("BatchSolvency", "batch.circom", "next.out === nextState;")
NEGATIVE_ZERO = assert_at("AccountLeaf", "lib/account.circom", "code[i].out[63] * zero[i].out")
CODE_RANGE = fired_in("Num2Bits", "AccountLeaf", "BatchSolvency")


# --- the unit --------------------------------------------------------------------------------


def unit_inputs(
    ctx: RawContext,
    equity: list[int],
    debt: list[int],
    qty: list[int],
    shortfall: int = 0,
    floor: int = 0,
) -> dict[str, Any]:
    """Margin's inputs for an account (signed quantities) under `ctx`, as AccountLeaf would
    hand them over: debtValue = sum debt * weight, q as field elements, magSum."""
    return {
        "equity": [e % P for e in equity],
        "debtValue": sum(d * w for d, w in zip(debt, ctx.weights, strict=True)) % P,
        "q": [q % P for q in qty],
        "magSum": sum(abs(q) for q in qty),
        "tierWeights": [[w % P for w in row] for row in ctx.tier_weights],
        "tierWidths": [[d % P for d in row] for row in ctx.tier_widths],
        "risk": [[v % P for v in row] for row in ctx.risk],
        "shortfall": shortfall % P,
        "floor": floor % P,
    }


def hand_context(mode: int = STRICT, params: EpochParams = SMALL) -> RawContext:
    """Round numbers: asset 0 worth 10^18 a unit, the first 1000 units at 100% and the rest at
    80%; asset 1 worth 3 * 10^17, 10^6 units at 50%, the rest at 25% (every further asset like
    asset 1); no risk (tests set the entries they need)."""
    n, k = params.n_assets, params.n_tiers
    weights = [E18] + [3 * 10**17] * (n - 1)
    rates = [[100, 80], [50, 25]]
    tier_weights = [
        [weights[a] * rates[min(a, 1)][min(t, 1)] // 100 for t in range(k)] for a in range(n)
    ]
    widths = [[1000 if a == 0 else 10**6] * (k - 1) for a in range(n)]
    risk = [[0] * params.n_scenarios for _ in range(params.n_instruments)]
    caps = [(1 << (64 + params.tree_depth)) - 1] * n
    return RawContext(
        1, params.tree_depth, params.batch_levels, mode, weights, tier_weights, widths, caps, risk
    )


def expect_unit(c: Circuit, inputs: dict[str, Any], ok: bool, match: str = MARGIN_CHECK) -> None:
    if ok:
        c.expect_pass(inputs)
    else:
        c.expect_fail(inputs, match=match)


def check_account(
    c: Circuit, ctx: RawContext, equity: list[int], debt: list[int], qty: list[int]
) -> int:
    """The unit accepts exactly when prover.margin says the worst scenario is >= 0, and the
    boundary is exact both ways: a floor of the headroom passes and one more fails; a
    shortfall of the deficit passes and one less fails. Returns the headroom."""
    values = mirror.margin_values(equity, debt, qty, ctx.margin())
    assert values == ctx.margin_values(equity, debt, qty)  # the unguarded twin agrees
    h, _ = mirror.headroom(equity, debt, qty, ctx.margin())
    assert h == min(values)
    expect_unit(c, unit_inputs(ctx, equity, debt, qty), h >= 0)
    if h >= 0:
        expect_unit(c, unit_inputs(ctx, equity, debt, qty, floor=h), True)
        expect_unit(c, unit_inputs(ctx, equity, debt, qty, floor=h + 1), False)
    else:
        assert mirror.shortfall(equity, debt, qty, ctx.margin()) == -h
        expect_unit(c, unit_inputs(ctx, equity, debt, qty, shortfall=-h), True)
        expect_unit(c, unit_inputs(ctx, equity, debt, qty, shortfall=-h - 1), False)
    return h


@settings(max_examples=30)
@given(st.integers(0, 2**32))
def test_unit_matches_mirror(margin_unit: Circuit, seed: int) -> None:
    rng = random.Random(seed)
    ctx = random_context(rng, SMALL)
    check_account(margin_unit, ctx, *random_margin_account(rng, ctx))


def test_unit_random_accounts_go_both_ways(margin_unit: Circuit) -> None:
    """Fixed seeds that cover both outcomes (the hypothesis test above may not)."""
    rng = random.Random(2024)
    outcomes = set()
    for _ in range(12):
        ctx = random_context(rng, SMALL)
        outcomes.add(check_account(margin_unit, ctx, *random_margin_account(rng, ctx)) >= 0)
    assert outcomes == {True, False}


@pytest.mark.parametrize("seed", range(6))
def test_unit_three_tiers_matches_mirror(margin_tiers3: Circuit, seed: int) -> None:
    rng = random.Random(300 + seed)
    ctx = random_context(rng, TIERS3)
    check_account(margin_tiers3, ctx, *random_margin_account(rng, ctx))


@pytest.mark.parametrize("s", range(N_SCEN))
@pytest.mark.parametrize("side", [1, -1])
def test_unit_one_failing_scenario_rejected(margin_unit: Circuit, s: int, side: int) -> None:
    """An account that is fine in seven scenarios and short by one value unit in scenario s
    (a loss of credit + 1 on one 10^-8 contract, long or short) fails; with the loss one unit
    smaller it passes at exactly 0."""
    ctx = hand_context()
    equity, debt, qty = [1500, 0], [0, 0], [side, 0]
    credit = 1000 * E18 + 500 * 8 * 10**17
    rng = random.Random(s)
    ctx.risk[0] = [side * rng.randrange(-(credit - 1), credit) for _ in range(N_SCEN)]
    ctx.risk[1] = [rng.randrange(-(1 << 100), 1 << 100) for _ in range(N_SCEN)]  # q_1 = 0
    ctx.risk[0][s] = -side * credit  # q * L = -credit, and -|q| = -1 on top
    values = ctx.margin_values(equity, debt, qty)
    assert values[s] == -1 and all(v >= 0 for i, v in enumerate(values) if i != s)
    expect_unit(margin_unit, unit_inputs(ctx, equity, debt, qty), False)
    ctx.risk[0][s] = -side * (credit - 1)
    assert ctx.headroom(equity, debt, qty) == 0
    expect_unit(margin_unit, unit_inputs(ctx, equity, debt, qty), True)


def test_unit_full_width_values_do_not_wrap(margin_unit: Circuit) -> None:
    """The extremes every bound allows: amounts 2^64 - 1 at weights 2^128 - 1, magnitudes
    2^63 - 1 against risk entries of -2^128 (the most negative value, about -2^193) or
    2^128 - 1 (the most positive one). Each value compares exactly: the shortfall (or floor)
    that brings it to 0 passes, one unit less (more) fails; nothing wraps mod p."""
    ctx = hand_context()
    ctx.weights = [MAX_W, MAX_W]
    ctx.tier_weights = [[MAX_W, MAX_W], [MAX_W, MAX_W]]
    ctx.tier_widths = [[MAX64], [0]]
    for equity, debt, risk, q in [
        ([0, 0], [MAX64, MAX64], -(1 << RISK_BITS), MAX_MAG),  # long, every price falls
        ([0, 0], [MAX64, MAX64], (1 << RISK_BITS) - 1, -MAX_MAG),  # short, prices rise
        ([MAX64, MAX64], [0, 0], (1 << RISK_BITS) - 1, MAX_MAG),  # the best account
    ]:
        ctx.risk = [[risk] * N_SCEN, [risk] * N_SCEN]
        qty = [q, q]
        v = ctx.headroom(equity, debt, qty)
        assert abs(v) < 1 << (MARGIN_BITS - 1)
        if v < 0:
            expect_unit(margin_unit, unit_inputs(ctx, equity, debt, qty, shortfall=-v), True)
            expect_unit(margin_unit, unit_inputs(ctx, equity, debt, qty, shortfall=-v - 1), False)
        else:
            expect_unit(margin_unit, unit_inputs(ctx, equity, debt, qty, floor=v), True)
            expect_unit(margin_unit, unit_inputs(ctx, equity, debt, qty, floor=v + 1), False)


# --- tiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("units", [0, 1, 999, 1000, 1001, 1500, MAX64])
def test_unit_tier_fill_at_the_bound(margin_unit: Circuit, units: int) -> None:
    """The circuit fills asset 0's tiers in order (1000 units at 100 %, the rest at 80 %):
    around the bound, and at both ends of the amount range, its margin value is the mirror's
    to the unit (a floor of the headroom passes, one more fails)."""
    ctx = hand_context()
    assert ctx.split([units, 0])[0] == [min(units, 1000), max(units - 1000, 0)]
    check_account(margin_unit, ctx, [units, 0], [min(units, 1200), 0], [0, 0])


def test_unit_middle_tier_bounded(margin_tiers3: Circuit) -> None:
    """With three tiers (100 % / 80 % / 50 %, widths 1000 and 1000) the middle tier ends at the
    cumulative bound 2000, not at its own width: 3000 units credit 1000 + 800 + 500."""
    ctx = hand_context(params=TIERS3)
    ctx.tier_weights = [[E18, 8 * 10**17, 5 * 10**17]]
    equity, qty = [3000], [0]
    assert ctx.split(equity) == [[1000, 1000, 1000]]
    assert ctx.headroom(equity, [2300], qty) == 0
    for debt, ok in (([2300], True), ([2301], False)):
        expect_unit(margin_tiers3, unit_inputs(ctx, equity, debt, qty), ok)


def test_unit_tier_bounds_at_their_limits(margin_tiers3: Circuit) -> None:
    """Widths of 2^64 - 1 each put the second bound at 2^65 - 2, above every amount: the
    comparison has 64 + bitlen(K - 1) bits, so the largest context still proves."""
    ctx = hand_context(params=TIERS3)
    ctx.tier_weights = [[E18, 8 * 10**17, 5 * 10**17]]
    ctx.tier_widths = [[MAX64, MAX64]]
    for units in (MAX64, MAX64 - 1, 0):
        assert ctx.split([units])[0] == [units, 0, 0]
        check_account(margin_tiers3, ctx, [units], [units], [0])


@pytest.mark.parametrize("width", [1000, MAX64])
def test_unit_sixteen_tiers(margin_tiers16: Circuit, width: int) -> None:
    """The most tiers a shape may have (16: 15 bounds, comparisons of tierCompareBits(16) = 68
    bits): at every bound, one unit either side, at zero and at 2^64 - 1, the margin value is
    the mirror's to the unit, also with every width 2^64 - 1 (the last bound near 2^67.9)."""
    ctx = hand_context(params=TIERS16)
    ctx.tier_weights = [[E18 * (100 - 5 * t) // 100 for t in range(16)]]
    ctx.tier_widths = [[width] * 15]
    amounts = {0, 1, MAX64, MAX64 - 1}
    for t in range(1, 16):
        bound = min(t * width, MAX64)
        amounts |= {bound - 1, bound, min(bound + 1, MAX64)}
    for units in sorted(amounts):
        fill = ctx.split([units])[0]
        assert sum(fill) == units and len(fill) == 16
        check_account(margin_tiers16, ctx, [units], [units * 3 // 4], [0])


@pytest.mark.parametrize("x", [1, 5, 400])
def test_unit_negative_equity_earns_no_credit(margin_unit: Circuit, x: int) -> None:
    """Margin alone (AccountLeaf range-checks equity first): equity p - x compares as below
    the bound (equity + 2^65 - bound wraps to a 65-bit number), so the whole of it counts at
    the first tier's weight: a credit of -x * W_0, which fails the margin check, not a
    haircut dodged."""
    ctx = hand_context()
    margin_unit.expect_fail(unit_inputs(ctx, [-x, 0], [0, 0], [0, 0]), match=MARGIN_CHECK)


@pytest.mark.parametrize(
    ("signal", "value"),
    [
        ("excess[0][0]", 499),  # less above the bound: more of 1500 units at 100 %
        ("excess[0][0]", 0),
        ("excess[0][0]", P - 500),  # the excess as a negative
        ("above[0][0].out[65]", 0),  # the comparison's sign bit
        ("above[0][0].out[2]", 0),  # 2^65 + 500: bit 2 is set
        ("above[0][0].out[0]", 2),
        ("step[0][0]", 0),  # the haircut on the part above the bound
        ("base[0]", E18 * 1501),
    ],
)
def test_unit_tier_fill_tamper_rejected(margin_unit: Circuit, signal: str, value: int) -> None:
    """The fill is computed: an account with 1500 units credits exactly 1000 + 500 * 80 % =
    1400, and no single edit of the tier signals of its witness keeps the constraints."""
    ctx = hand_context()
    equity, debt, qty = [1500, 0], [1400, 0], [0, 0]
    assert ctx.headroom(equity, debt, qty) == 0
    w = margin_unit.expect_pass(unit_inputs(ctx, equity, debt, qty))
    margin_unit.expect_constraint_fail(margin_unit.tamper(w, signal, value))


def test_rising_tier_weights_are_refused_by_the_context_bounds(
    margin_unit: Circuit, context_bounds: Circuit
) -> None:
    """A haircut schedule whose later tier is worth more (10 %, then 100 %) would reward
    the large holdings it should discount. Margin computes the fill whatever the weights, so
    ContextBounds, which the solvency proof of every finalized epoch runs, refuses such a
    context, and so do the mirror and the published context's recomputation."""
    ctx = hand_context()
    ctx.tier_weights[0] = [E18 // 10, E18]
    equity, debt, qty = [1500, 0], [600, 0], [0, 0]
    assert ctx.headroom(equity, debt, qty) == 0  # in order: 1000 at 10 %, 500 at 100 %
    margin_unit.expect_pass(unit_inputs(ctx, equity, debt, qty))
    bounds = ctx.inputs()
    del bounds["epoch"]
    context_bounds.expect_fail(bounds, match=fired_in("Num2Bits", "NonNegativeDifference"))
    ctx.tier_weights[0] = [E18, E18]  # equal tiers are fine
    bounds = ctx.inputs()
    del bounds["epoch"]
    context_bounds.expect_pass(bounds)


# --- unit tampering --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "value"),
    [
        ("excess[0][0]", 499),  # the part above the tier bound
        ("step[0][0]", 0),  # the haircut on it
        ("pnl[0][3]", 0),  # one position's P&L in one scenario
        ("pnl[0][5]", 12345),
        ("ok[3].bits.out[0]", 2),  # a scenario's range-check bit
        (f"ok[0].bits.out[{MARGIN_BITS - 1}]", 1),  # the top bit
        ("above[0][0].out[65]", 0),
        ("above[1][0].out[0]", 1),  # 2^65 + 10 - 10^6 is even
        ("q[0]", 7),
        ("magSum", 0),
        ("shortfall", 1),
        ("floor", P - 1),
        ("risk[0][3]", 5),
        ("debtValue", 0),
        ("tierWeights[0][0]", 0),
    ],
)
def test_unit_tamper_rejected(margin_unit: Circuit, signal: str, value: int) -> None:
    ctx = hand_context()
    ctx.risk[0] = [-(10**18) * (s + 1) for s in range(N_SCEN)]
    w = margin_unit.expect_pass(unit_inputs(ctx, [1500, 10], [100, 0], [3, 0]))
    margin_unit.expect_constraint_fail(margin_unit.tamper(w, signal, value))


# --- inside a batch --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builds(batch_o1: Circuit, batch_1_4_2_2_8_2: Circuit) -> list[Circuit]:
    return [batch_o1, batch_1_4_2_2_8_2]


def refused(builds: list[Circuit], inputs: dict[str, Any], match: str) -> None:
    for c in builds:
        c.expect_fail(inputs, match=match)


def accepted(builds: list[Circuit], bc: BatchCase) -> None:
    for c in builds:
        assert c.public(c.expect_pass(bc.inputs())) == bc.public()


def test_batch_matches_mirror_on_random_accounts(batch_1_4_2_2_8_2: Circuit) -> None:
    """Random contexts and accounts (equity covering debt, random positions): a batch proves
    exactly when prover.margin gives both accounts a headroom >= 0. In shortfall mode, the
    declared shortfall max(0, -headroom) always proves, and one unit less does not."""
    rng = random.Random(77)
    outcomes = set()
    for _ in range(10):
        ctx = random_context(rng, SMALL)
        bc = first_batch(ctx, LEVELS)
        heads = []
        for slot in range(2):
            equity, debt, qty = random_margin_account(rng, ctx)
            bc.set_account(slot, equity, debt, qty)
            heads.append(mirror.headroom(equity, debt, qty, ctx.margin())[0])
        ok = min(heads) >= 0
        outcomes.add(ok)
        if ok:
            assert batch_1_4_2_2_8_2.public(batch_1_4_2_2_8_2.witness(bc.inputs())) == bc.public()
        else:
            batch_1_4_2_2_8_2.expect_fail(bc.inputs(), match=MARGIN_CHECK)
        ctx.mode = SHORTFALL
        bc.shortfall = [max(0, -h) for h in heads]
        assert batch_1_4_2_2_8_2.public(batch_1_4_2_2_8_2.witness(bc.inputs())) == bc.public()
        if not ok:
            slot = heads.index(min(heads))
            bc.shortfall[slot] -= 1
            batch_1_4_2_2_8_2.expect_fail(bc.inputs(), match=MARGIN_CHECK)
    assert outcomes == {True, False}


@pytest.mark.parametrize("s", [0, 5, 7])
@pytest.mark.parametrize("side", [1, -1])
def test_batch_one_failing_scenario_rejected(builds: list[Circuit], s: int, side: int) -> None:
    """A long (or short) position of 0.5 contracts that gains in every scenario but s, where
    it loses a little more than the account's value: refused; with the loss one step (0.5
    value units) smaller the account passes. The other account of the batch is fine."""
    ctx = hand_context()
    bc = first_batch(ctx, LEVELS)
    q = side * 5 * 10**7
    bc.set_account(0, [1500, 0], [0, 0], [q, 0])
    bc.set_account(1, [10, 10], [0, 0])
    ctx.risk[1] = [-(10**15)] * N_SCEN  # the other instrument loses, but nobody holds it
    ctx.risk[0] = [side * 10**12 * (t + 1) for t in range(N_SCEN)]
    ctx.risk[0][s] = 0
    v0 = bc.margin_values(0)[s]  # the account's value in scenario s before any P&L
    ctx.risk[0][s] = -side * (v0 // abs(q) + 1)
    values = bc.margin_values(0)
    assert -abs(q) <= values[s] < 0 and all(v > 0 for t, v in enumerate(values) if t != s)
    refused(builds, bc.inputs(), MARGIN_CHECK)
    ctx.risk[0][s] += side
    assert min(bc.margin_values(0)) == v0 % abs(q) >= 0
    accepted(builds, bc)


def test_batch_flipped_sign_rejected(builds: list[Circuit], batch_o1: Circuit) -> None:
    """A short perpetual that loses badly when the price rises fails the account. The same
    position as a long (its code with bit 63 toggled) loses little when the price falls and
    would pass. But the sign is part of the leaf: under the published next state (the tree
    holding the true, short position) the flipped batch does not open. Recomputing the state
    commits the long position instead, which is what the user's inclusion check shows."""
    ctx = hand_context()
    ctx.risk[0] = [10**13 if s % 2 == 0 else -(10**10) for s in range(N_SCEN)]  # up / down
    bc = first_batch(ctx, LEVELS)
    bc.set_account(0, [1000, 0], [0, 0], [-(10**9), 0])  # 10 contracts short
    assert min(bc.margin_values(0)) < 0
    refused(builds, bc.inputs(), MARGIN_CHECK)
    published = bc.inputs()["nextState"]

    bc.qty[0][0] ^= SIGN_BIT  # the flipped code: 10 contracts long
    assert bc.signed_qty(0) == [10**9, 0] and min(bc.margin_values(0)) > 0
    bc.next_state = published
    refused(builds, bc.inputs(), NEXT_CHECK)
    bc.next_state = None
    accepted(builds, bc)  # a batch of the long position is a different tree

    # In a witness, the sign bit cannot be flipped under a fixed code (and so a fixed leaf).
    w = batch_o1.expect_pass(bc.inputs())
    batch_o1.expect_constraint_fail(batch_o1.tamper(w, "acct[0].code[0].out[63]", 1))


@pytest.mark.parametrize(
    "code",
    [
        1 << 64,  # 0 mod 2^64
        (1 << 64) + 1,  # "1" mod 2^64
        (1 << 64) + SIGN_BIT + 10**9,  # "short 10 contracts" with a carry into bit 64
        P - 1,  # -1 as a raw field element
        P - 10**9,  # "short 10 contracts" as a raw field element
        P - SIGN_BIT,
    ],
)
def test_batch_quantity_code_out_of_range_rejected(builds: list[Circuit], code: int) -> None:
    """Codes of 65 bits or more, or negatives p - x, never decode: only the 64-bit
    decomposition gives a quantity. p - 10^9 is what a prover would try to pass a short of 10
    contracts as, to earn the long's P&L from the same field element."""
    ctx = hand_context()
    ctx.risk[0] = [10**13] * N_SCEN
    bc = first_batch(ctx, LEVELS)
    bc.set_account(1, [1000, 0], [0, 0])
    bc.qty[1] = [code, 0]
    refused(builds, bc.inputs(), CODE_RANGE)


def test_batch_negative_zero_rejected(builds: list[Circuit]) -> None:
    """Code 2^63 (a short of magnitude 0) would be a second encoding of "no position", so a
    leaf could be recommitted with another code for the same account."""
    bc = first_batch(hand_context(), LEVELS)
    bc.set_account(0, [5, 0], [0, 0])
    accepted(builds, bc)
    bc.qty[0] = [0, SIGN_BIT]
    refused(builds, bc.inputs(), NEGATIVE_ZERO)


def test_batch_tier_fill_cannot_be_dodged(builds: list[Circuit]) -> None:
    """1500 units of asset 0 credit 1000 at 100 % and 500 at 80 % = 1400 inside a batch as
    in the unit: debt worth 1400 units passes, 1401 fails; there is no split input that an
    account could fill differently, and tampering the batch's fill signals breaks it."""
    ctx = hand_context()
    bc = first_batch(ctx, LEVELS)
    bc.set_account(0, [1500, 0], [1400, 0])
    assert min(bc.margin_values(0)) == 0
    accepted(builds, bc)
    assert "split" not in bc.inputs()
    bc.set_account(0, [1500, 0], [1401, 0])
    refused(builds, bc.inputs(), MARGIN_CHECK)


def test_splitting_across_accounts_stopped_by_cap(
    builds: list[Circuit], solvency_o1: Circuit, solvency_1_4_2_2_8_2: Circuit
) -> None:
    """Per-account tiers are bypassed by splitting: 2000 units of asset 0 (tier 0 is 1000
    units at 100%, then 80%) with debt worth 1900 units fail as one account but pass as two
    accounts of 1000. The exchange-wide bracket stops it: up to 1000 units in the whole
    exchange no cap applies, above it the rate is capped at 80%.

    An exchange that publishes the uncapped tiers with the small bracket's bound C_0 = 1000
    proves the batch, but its epoch cannot close (2000 > C_0). With the honest context for its
    2000 units (capped at 80%, C_0 unbounded) the split accounts fail the margin rule."""
    cheat = hand_context()
    cheat.cap_limits[0] = 1000
    bc = first_batch(cheat, LEVELS)
    bc.set_account(0, [2000, 0], [1900, 0])
    assert min(bc.margin_values(0)) < 0
    refused(builds, bc.inputs(), MARGIN_CHECK)
    bc.set_account(0, [1000, 0], [950, 0])
    bc.set_account(1, [1000, 0], [950, 0])
    accepted(builds, bc)

    sc = SolvencyCase(
        context=cheat,
        batch_count=1,
        root=bc.new_root(),
        totals=bc.new_totals(),
        shortfall=0,
        insurance_fund=0,
        blind=bc.next_blind,
        verified=[2000, 0],
        declared=[0, 0],
    )
    assert sc.inputs()["finalState"] == bc.public()[1]  # the batch's state closes the chain
    cap_check = nested(
        "Num2Bits",
        "NonNegativeDifference",
        ("Solvency", "solvency.circom", "capped[i].b <== totals[2 * i];"),
    )
    for c in (solvency_o1, solvency_1_4_2_2_8_2):
        c.expect_fail(sc.inputs(), match=cap_check)

    honest = hand_context()
    honest.tier_weights[0] = [8 * 10**17, 8 * 10**17]
    bc.context = honest
    refused(builds, bc.inputs(), MARGIN_CHECK)


# --- shortfall -------------------------------------------------------------------------------


def failing_batch(mode: int) -> tuple[BatchCase, int]:
    """A batch whose account 0 is short of `deficit` value units in its worst scenario."""
    ctx = hand_context(mode)
    ctx.risk[0] = [-(3 * 10**12)] * N_SCEN
    bc = first_batch(ctx, LEVELS)
    bc.set_account(0, [1200, 0], [0, 0], [5 * 10**8, 0])  # 5 contracts long
    bc.set_account(1, [7, 7], [0, 0])
    deficit = -min(bc.margin_values(0))
    assert deficit > 0
    return bc, deficit


def test_shortfall_declared_in_strict_mode_rejected(builds: list[Circuit]) -> None:
    """In strict mode every account meets the rule on its own: declaring the deficit as a
    shortfall (which would make the scenario check pass) is refused."""
    bc, deficit = failing_batch(STRICT)
    refused(builds, bc.inputs(), MARGIN_CHECK)
    bc.shortfall[0] = deficit
    refused(builds, bc.inputs(), STRICT_SHORTFALL)
    bc.set_account(0, [1200, 0], [0, 0])  # without the position it passes
    accepted(builds, bc)
    bc.shortfall = [0, 1]  # and no account may declare a shortfall
    refused(builds, bc.inputs(), STRICT_SHORTFALL)


def test_shortfall_mode_accepts_declared_deficit(builds: list[Circuit]) -> None:
    """In shortfall mode a failing account passes with a shortfall of at least its deficit
    (one unit less is refused), and the state chain adds it to the epoch's total."""
    bc, deficit = failing_batch(SHORTFALL)
    refused(builds, bc.inputs(), MARGIN_CHECK)
    bc.shortfall[0] = deficit - 1
    refused(builds, bc.inputs(), MARGIN_CHECK)
    bc.shortfall[0] = deficit
    accepted(builds, bc)
    assert bc.new_shortfall() == deficit
    bc.shortfall[0] = deficit + 10**20  # over-declaring is allowed: it only costs the fund
    accepted(builds, bc)


@pytest.mark.parametrize("bad", [1 << MARGIN_BITS, P - 1, P - 10**30])
def test_shortfall_out_of_range_rejected(builds: list[Circuit], bad: int) -> None:
    """A shortfall is range-checked: a negative one (p - x) on a passing account would lower
    the epoch's total and hide another account's shortfall from the insurance fund, and one of
    2^MARGIN_BITS or more could wrap the scenario check."""
    bc, deficit = failing_batch(SHORTFALL)
    bc.set_account(1, [0, 0], [0, 0])  # margin value 0: room for the largest shortfall
    bc.shortfall = [deficit, (1 << MARGIN_BITS) - 1]
    accepted(builds, bc)
    bc.shortfall[1] = bad
    refused(builds, bc.inputs(), SHORTFALL_RANGE)


def test_shortfall_above_fund_rejected_at_solvency(
    builds: list[Circuit], solvency_o1: Circuit, solvency_1_4_2_2_8_2: Circuit
) -> None:
    """The chain end to end: the batch carries the account's shortfall into its state; the
    solvency proof of that state closes with a fund of exactly the shortfall, not one unit
    less, and not as a strict-mode epoch."""
    bc, deficit = failing_batch(SHORTFALL)
    bc.shortfall[0] = deficit
    accepted(builds, bc)
    sc = SolvencyCase(
        context=bc.context,
        batch_count=1,
        root=bc.new_root(),
        totals=bc.new_totals(),
        shortfall=deficit,
        insurance_fund=deficit,
        blind=bc.next_blind,
        verified=[1200, 0],
        declared=[7, 7],
    )
    assert sc.inputs()["finalState"] == bc.public()[1]
    insured = nested(
        "Num2Bits", "NonNegativeDifference", ("Solvency", "solvency.circom", "insured.b <==")
    )
    for c in (solvency_o1, solvency_1_4_2_2_8_2):
        assert c.public(c.expect_pass(sc.inputs())) == sc.public()
    sc.insurance_fund = deficit - 1
    for c in (solvency_o1, solvency_1_4_2_2_8_2):
        c.expect_fail(sc.inputs(), match=insured)
    sc.shortfall = 0  # hiding the shortfall: the final state does not open
    sc.insurance_fund = deficit
    sc.final_state = bc.public()[1]
    state_check = assert_at("Solvency", "solvency.circom", "st.out === finalState;")
    for c in (solvency_o1, solvency_1_4_2_2_8_2):
        c.expect_fail(sc.inputs(), match=state_check)


# --- tampering a valid witness ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tamper_target(batch_o1: Circuit) -> tuple[list[int], int]:
    """A valid --O1 witness of a shortfall-mode batch whose account 1 holds a long and a short
    position, spans both tiers of asset 0 and declares its exact shortfall; and that slot."""
    bc, _ = failing_batch(SHORTFALL)
    bc.context.risk[1] = [7 * 10**12 * (s % 3 - 1) for s in range(N_SCEN)]
    bc.set_account(0, [7, 7], [0, 0])
    bc.set_account(1, [1200, 50], [0, 10], [5 * 10**8, -3 * 10**8])
    bc.shortfall[1] = -min(bc.margin_values(1))
    assert bc.shortfall[1] > 0 and bc.context.split(bc.equity[1])[0] == [1000, 200]
    return batch_o1.expect_pass(bc.inputs()), 1


MARGIN_TAMPER = [
    "margin[{a}].excess[0][0]",  # the part above a tier bound
    "margin[{a}].step[0][0]",  # the haircut on it
    "margin[{a}].base[1]",  # an asset's value at its first tier's weight
    "margin[{a}].pnl[0][2]",  # a P&L product
    "margin[{a}].pnl[1][7]",
    "margin[{a}].ok[4].bits.out[0]",  # a scenario's range-check bit
    "margin[{a}].above[0][0].out[65]",  # the comparison's sign bit
    "margin[{a}].above[1][0].out[0]",
    "qty[{a}][0]",  # a code under a fixed leaf
    "acct[{a}].code[0].out[0]",  # a quantity bit
    "acct[{a}].code[1].out[63]",  # a sign bit
    "acct[{a}].q[0]",  # the signed quantity
    "acct[{a}].negMag[0]",
    "acct[{a}].magSum",
    "acct[{a}].zero[0].out",
    "shortfall[{a}]",  # the declared shortfall
    "shortRange[{a}].bits.out[0]",
    "risk[0][3]",  # a context risk entry under a fixed ctxHash
    "tierWeights[1][0]",
    "tierWidths[0][0]",
]


@pytest.mark.parametrize("signal", MARGIN_TAMPER)
def test_margin_wire_tamper_rejected(
    batch_o1: Circuit, tamper_target: tuple[list[int], int], signal: str
) -> None:
    w, slot = tamper_target
    name = signal.format(a=slot)
    v = batch_o1.get(w, name)
    batch_o1.expect_constraint_fail(batch_o1.tamper(w, name, 1 - v if v in (0, 1) else v + 1))

"""Solvency (circuits/solvency.circom) at solvency_1_4_2_2_8_2: the closing proof of an epoch.

Mirror agreement runs the production build on epochs planned by witness.plan_epoch; attacks
change one input and re-derive ctxHash, finalState and totalsCommit (harness.SolvencyCase) so
the calculator fails at the named constraint, in both the --O2 and the --O1 build.

Besides coverage (equity <= reserves + debt) the circuit closes the margin design: it opens the
context with ContextBounds (every bound the batch and single-account circuits rely on), caps each
asset's total equity at the context's cap limit (so splitting collateral over accounts cannot
earn a better haircut bracket), and covers the epoch's shortfall with the insurance fund.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from harness import (
    DEFAULT,
    SMALL,
    SPOT,
    Circuit,
    RawContext,
    SolvencyCase,
    assert_at,
    fired_in,
    margin_inputs,
    nested,
    random_snapshot,
    raw_totals_hash,
    tiered_haircuts,
)
from zksolvency.prover.commitments import (
    RISK_BITS,
    SHORTFALL,
    STRICT,
    WEIGHT_BITS,
    fund_bits,
    margin_bits,
    registry_domain,
)
from zksolvency.prover.field import P
from zksolvency.prover.params import EpochParams
from zksolvency.prover.witness import EpochPlan, MarginInputs, plan_epoch

PARAMS = SMALL
LEVELS, DEPTH, N = PARAMS.batch_levels, PARAMS.tree_depth, PARAMS.n_assets
TOTAL_BITS = 64 + DEPTH
MAX_RESERVE = (1 << 128) - 1
FUND_BITS = fund_bits(DEPTH, N, PARAMS.n_instruments)
FILE = "solvency.circom"

COMMIT_CHECK = assert_at("Solvency", FILE, "th.out === totalsCommit;")
STATE_CHECK = assert_at("Solvency", FILE, "st.out === finalState;")
COUNT_CHECK = assert_at("Solvency", FILE, "none.out === 0;")
STRICT_CHECK = assert_at("Solvency", FILE, "(1 - mode) * shortfall === 0;")
CTX_CHECK = assert_at("Solvency", FILE, "ctx.out === ctxHash;")
MODE_CHECK = nested(("ContextBounds", "lib/state.circom", "mode * (mode - 1) === 0;"), "Solvency")
COVERAGE_CHECK = nested(
    "Num2Bits", "NonNegativeDifference", ("Solvency", FILE, "covered[i].b <== totals[2 * i];")
)
VERIFIED_ONLY_CHECK = assert_at("Solvency", FILE, "verifiedOnly === allVerified[N_ASSETS];")
CAP_CHECK = nested(
    "Num2Bits", "NonNegativeDifference", ("Solvency", FILE, "capped[i].b <== totals[2 * i];")
)
FUND_RANGE_CHECK = nested("Num2Bits", "RangeCheck", ("Solvency", FILE, "fundRange.in <=="))
INSURED_CHECK = nested("Num2Bits", "NonNegativeDifference", ("Solvency", FILE, "insured.b <=="))
BOUNDS_CHECK = fired_in("Num2Bits", "RangeCheck", "ContextBounds", "Solvency")
TIER_LE_CHECK = fired_in("Num2Bits", "NonNegativeDifference", "ContextBounds", "Solvency")


def plan_for(
    params: EpochParams,
    seed: int,
    n_accounts: int,
    used: int | None = None,
    *,
    shortfall: bool = False,
    fund: int | None = None,
) -> EpochPlan:
    """A strict epoch with sample derivatives, or a shortfall-mode one with tiered haircuts
    (the bracket bound of each asset is its total, so equity == cap limit) and an insurance
    fund of `fund` (default: the epoch's exact shortfall)."""
    snapshot, held = random_snapshot(seed, params.n_assets, n_accounts, used)
    # The reserves split between verified and declared at random: the mirror covers both.
    rng = random.Random(seed)
    verified = tuple(rng.choice([0, r, r // 3]) for r in held)
    reserves = tuple(r - v for r, v in zip(held, verified, strict=True))
    epoch, blind_seed = 1 + seed, f"solvency-{seed}".encode()

    if not shortfall:
        inputs = margin_inputs(snapshot, params, seed)
        return plan_epoch(snapshot, params, epoch, reserves, blind_seed, inputs, verified=verified)
    top = (1 << fund_bits(params.tree_depth, params.n_assets, params.n_instruments)) - 1
    inputs = margin_inputs(snapshot, params, seed, haircuts=True, mode=SHORTFALL, fund=top)
    if fund is None:
        fund = plan_epoch(
            snapshot, params, epoch, reserves, blind_seed, inputs, verified=verified
        ).shortfall
    inputs = margin_inputs(snapshot, params, seed, haircuts=True, mode=SHORTFALL, fund=fund)
    return plan_epoch(snapshot, params, epoch, reserves, blind_seed, inputs, verified=verified)


def make_plan(seed: int, n_accounts: int, used: int | None = None) -> EpochPlan:
    return plan_for(PARAMS, seed, n_accounts, used)


@pytest.fixture(scope="module")
def plan() -> EpochPlan:
    return make_plan(8, 5, used=2)


@pytest.fixture(scope="module")
def short_plan() -> EpochPlan:
    """Shortfall mode: some accounts (two of seven) fail the margin rule; the insurance fund is
    exactly their shortfall, and asset 0's equity total is exactly its cap limit."""
    p = plan_for(PARAMS, 2, 7, used=2, shortfall=True)
    assert any(p.shortfalls) and all(p.context.weights)
    assert p.shortfall > 0 and p.context.inputs.insurance_fund == p.shortfall
    assert p.final_totals[0] == p.context.margin.cap_limits[0]
    return p


@pytest.fixture(scope="module")
def builds(solvency_o1: Circuit, solvency_1_4_2_2_8_2: Circuit) -> list[Circuit]:
    return [solvency_o1, solvency_1_4_2_2_8_2]


def base(plan: EpochPlan) -> SolvencyCase:
    return SolvencyCase.from_plan_input(DEPTH, LEVELS, plan.solvency_input())


def refused(builds: list[Circuit], inputs: dict[str, Any], match: str) -> None:
    for c in builds:
        c.expect_fail(inputs, match=match)


def accepted(builds: list[Circuit], sc: SolvencyCase) -> None:
    for c in builds:
        assert c.public(c.expect_pass(sc.inputs())) == sc.public()


# --- mirror agreement ------------------------------------------------------------------------


def check_plan(c: Circuit, p: EpochPlan) -> None:
    w = c.witness(p.solvency_input())
    assert c.public(w) == p.solvency_public()
    assert c.check(w) == []
    shape = p.context.params
    sc = SolvencyCase.from_plan_input(shape.tree_depth, shape.batch_levels, p.solvency_input())
    assert sc.public() == p.solvency_public()


@pytest.mark.parametrize(("seed", "n_accounts", "used"), [(1, 1, 1), (2, 4, 2), (3, 9, None)])
def test_plan_solvency_matches_mirror(
    solvency_1_4_2_2_8_2: Circuit, seed: int, n_accounts: int, used: int | None
) -> None:
    """Final state, root, totals commitment, shortfall and reserves of random epochs agree."""
    check_plan(solvency_1_4_2_2_8_2, make_plan(seed, n_accounts, used))


def test_shortfall_plan_matches_mirror(builds: list[Circuit], short_plan: EpochPlan) -> None:
    for c in builds:
        check_plan(c, short_plan)


def test_o1_build_matches_mirror(solvency_o1: Circuit, plan: EpochPlan) -> None:
    check_plan(solvency_o1, plan)


def test_production_solvency_matches_mirror(solvency_3_10_4_8_16_3: Circuit) -> None:
    """The default instance, in shortfall mode with three tiers and 16 scenarios."""
    check_plan(solvency_3_10_4_8_16_3, plan_for(DEFAULT, 31, 13, used=3, shortfall=True))


def test_spot_solvency_matches_mirror(solvency_1_4_2_1_1_2: Circuit) -> None:
    """The one-scenario shape of an epoch without derivatives closes like any other, here in
    shortfall mode (the haircuts leave some accounts short)."""
    snapshot, reserves = random_snapshot(43, SPOT.n_assets, 9, None)
    table = tiered_haircuts(snapshot, SPOT.n_tiers)
    fund = (1 << fund_bits(SPOT.tree_depth, SPOT.n_assets, SPOT.n_instruments)) - 1
    margin = MarginInputs(None, table, mode=SHORTFALL, insurance_fund=fund)
    p = plan_epoch(snapshot, SPOT, 5, reserves, b"spot", margin)
    assert p.context.grid is None and p.shortfall > 0
    check_plan(solvency_1_4_2_1_1_2, p)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_random_epochs_match_mirror(solvency_1_4_2_2_8_2: Circuit, seed: int) -> None:
    n_accounts = random.Random(seed).randint(1, 1 << DEPTH)
    check_plan(solvency_1_4_2_2_8_2, plan_for(PARAMS, seed, n_accounts, shortfall=True))


# --- coverage --------------------------------------------------------------------------------


@pytest.mark.parametrize("asset", [0, 1])
@pytest.mark.parametrize("split", [(1000, 0), (0, 1000), (400, 600)])
def test_liabilities_above_reserves_rejected(
    builds: list[Circuit], plan: EpochPlan, asset: int, split: tuple[int, int]
) -> None:
    """equity total = verified + declared + debt total passes; one unit more does not, however
    the reserves split between verified and declared."""
    sc = base(plan)
    sc.verified[asset], sc.declared[asset] = split
    sc.totals[2 * asset] = sum(split) + sc.totals[2 * asset + 1]
    assert sc.totals[2 * asset] < 1 << TOTAL_BITS
    accepted(builds, sc)
    sc.totals[2 * asset] += 1
    refused(builds, sc.inputs(), COVERAGE_CHECK)


def test_full_width_coverage_does_not_wrap(builds: list[Circuit], plan: EpochPlan) -> None:
    """Largest reserves and totals: verified + declared + debt stays below 2^130, the
    comparisons exact."""
    top = (1 << TOTAL_BITS) - 1
    sc = base(plan)
    sc.context.cap_limits = [top, top]
    sc.verified, sc.declared = [MAX_RESERVE, MAX_RESERVE], [MAX_RESERVE, MAX_RESERVE]
    sc.totals = [top, top, top, top]
    accepted(builds, sc)
    sc.verified, sc.declared = [MAX_RESERVE, 0], [0, 0]
    sc.totals = [top, top - 1, 0, 0]
    accepted(builds, sc)
    sc.verified, sc.declared = [0, 0], [MAX_RESERVE, 0]
    accepted(builds, sc)
    sc.declared = [0, 0]
    refused(builds, sc.inputs(), COVERAGE_CHECK)


@pytest.mark.parametrize("which", ["verified", "declared"])
@pytest.mark.parametrize("bad", [1 << 128, (1 << 129) - 1, P - 1, P - (1 << 70)])
def test_reserves_out_of_range_rejected(
    builds: list[Circuit], plan: EpochPlan, which: str, bad: int
) -> None:
    """Reserves >= 2^128 (or negative, p - x) could wrap the sums past the comparisons."""
    sc = base(plan)
    getattr(sc, which)[0] = MAX_RESERVE
    accepted(builds, sc)
    getattr(sc, which)[0] = bad
    refused(builds, sc.inputs(), fired_in("Num2Bits", "RangeCheck", "Solvency"))


# --- verifiedOnly: solvent on the reserves the chain read ------------------------------------


@pytest.mark.parametrize("asset", [0, 1])
def test_verified_only_at_its_edge(builds: list[Circuit], plan: EpochPlan, asset: int) -> None:
    """equity = verified + debt gives verifiedOnly 1; one unit more of equity, still covered by
    declared reserves, gives 0; either claim the other way is refused."""
    sc = base(plan)
    other = 1 - asset
    sc.verified[other], sc.declared[other] = MAX_RESERVE, 0  # the other asset never decides
    sc.verified[asset], sc.declared[asset] = 1000, 1
    sc.totals[2 * asset] = 1000 + sc.totals[2 * asset + 1]
    assert sc.true_verified_only() == 1
    accepted(builds, sc)
    sc.verified_only = 0
    refused(builds, sc.inputs(), VERIFIED_ONLY_CHECK)
    sc.verified_only = None
    sc.totals[2 * asset] += 1
    assert sc.true_verified_only() == 0
    accepted(builds, sc)
    sc.verified_only = 1
    refused(builds, sc.inputs(), VERIFIED_ONLY_CHECK)


@pytest.mark.parametrize("bad", [2, P - 1, 1 << 64])
def test_verified_only_must_be_a_bit(builds: list[Circuit], plan: EpochPlan, bad: int) -> None:
    sc = base(plan)
    sc.verified_only = bad
    refused(builds, sc.inputs(), VERIFIED_ONLY_CHECK)


def test_verified_only_at_full_width(builds: list[Circuit], plan: EpochPlan) -> None:
    """The widest verified reserve and debt: the LessThan operand stays below 2^129."""
    top = (1 << TOTAL_BITS) - 1
    sc = base(plan)
    sc.context.cap_limits = [top, top]
    sc.verified, sc.declared = [MAX_RESERVE, MAX_RESERVE], [0, 0]
    sc.totals = [top, top, top, top]
    assert sc.true_verified_only() == 1
    accepted(builds, sc)
    sc.verified = [0, MAX_RESERVE]
    sc.declared = [1, 0]
    sc.totals = [top, top - 1, top, 0]
    assert sc.true_verified_only() == 0
    accepted(builds, sc)


def test_plan_reports_verified_only(solvency_1_4_2_2_8_2: Circuit) -> None:
    """A plan whose reserves are all verified proves verifiedOnly 1; moving one asset's
    reserves to declared proves 0, with the same coverage."""
    snapshot, reserves = random_snapshot(11, N, 5, N)
    margin = margin_inputs(snapshot, PARAMS, 11)
    p = plan_epoch(snapshot, PARAMS, 3, (0,) * N, b"v" * 32, margin, verified=reserves)
    assert p.verified_only and p.solvency_public()[-1] == 1
    check_plan(solvency_1_4_2_2_8_2, p)
    q = plan_epoch(
        snapshot, PARAMS, 3, (reserves[0], 0), b"v" * 32, margin, verified=(0, reserves[1])
    )
    assert not q.verified_only and q.solvency_public()[-1] == 0
    check_plan(solvency_1_4_2_2_8_2, q)


@pytest.mark.parametrize(("index", "bad"), [(0, 1 << TOTAL_BITS), (0, P - 1), (1, P - 5)])
def test_totals_out_of_range_rejected(
    builds: list[Circuit], plan: EpochPlan, index: int, bad: int
) -> None:
    """Totals are range-checked before they are packed and compared: a negative equity total
    (p - 1) would always look covered; 2^(64 + DEPTH) would carry into its neighbour."""
    sc = base(plan)
    sc.totals[index] = bad
    refused(builds, sc.inputs(), fired_in("Num2Bits", "RangeCheck", "Solvency"))


# --- the cap limit: splitting collateral over accounts ---------------------------------------


def test_equity_at_cap_limit_accepted_one_more_rejected(
    builds: list[Circuit], short_plan: EpochPlan
) -> None:
    """The plan's bracket bound for asset 0 is its exact equity total (the cap check at its
    edge); one more unit anywhere in the exchange is above the bracket."""
    sc = base(short_plan)
    accepted(builds, sc)
    sc.totals[0] += 1
    sc.declared[0] += 1  # still covered: only the cap can refuse
    refused(builds, sc.inputs(), CAP_CHECK)


@pytest.mark.parametrize("n_split", [2, 16])
def test_splitting_cannot_lift_the_exchange_cap(
    builds: list[Circuit], short_plan: EpochPlan, n_split: int
) -> None:
    """Splitting a holding over many accounts puts each part in the best account tier, which
    is what the exchange-wide cap is for (docs/margin-design.md): the context's tier weights
    carry the cap of the bracket the exchange's total falls in, with the bracket's bound as
    C_a. An exchange that claims the better bracket (bound 10^6, no cap) while it holds more
    publishes C_0 = 10^6, and its real total, however split, is above it."""
    held = 10**6 * n_split  # n_split accounts of 10^6 units each, every one in tier 0
    sc = base(short_plan)
    sc.context.cap_limits[0] = 10**6
    sc.totals[0] = 10**6
    sc.declared[0] = held
    accepted(builds, sc)  # a holding that really is within the better bracket
    sc.totals[0] = held
    refused(builds, sc.inputs(), CAP_CHECK)
    # The honest context for that holding: the worse bracket, whose bound covers the total.
    sc.context.cap_limits[0] = (1 << TOTAL_BITS) - 1
    sc.context.tier_weights[0] = [w // 2 for w in sc.context.tier_weights[0]]
    accepted(builds, sc)


# --- shortfall and the insurance fund --------------------------------------------------------


def test_shortfall_above_insurance_fund_rejected(
    builds: list[Circuit], short_plan: EpochPlan
) -> None:
    """The plan's fund is exactly its shortfall; one value unit less does not cover it."""
    sc = base(short_plan)
    assert sc.insurance_fund == sc.shortfall > 0
    accepted(builds, sc)
    sc.insurance_fund -= 1
    refused(builds, sc.inputs(), INSURED_CHECK)


@pytest.mark.parametrize("fund", [1 << FUND_BITS, P - 1, P - (1 << 100)])
def test_insurance_fund_out_of_range_rejected(
    builds: list[Circuit], short_plan: EpochPlan, fund: int
) -> None:
    """The fund is range-checked to FUND_BITS, so fund - shortfall cannot wrap: a "negative"
    fund p - x minus a shortfall would otherwise look like a large covered margin."""
    sc = base(short_plan)
    sc.insurance_fund = (1 << FUND_BITS) - 1
    accepted(builds, sc)
    sc.insurance_fund = fund
    refused(builds, sc.inputs(), FUND_RANGE_CHECK)


def test_widest_shortfall_compares_exactly(builds: list[Circuit], short_plan: EpochPlan) -> None:
    """The largest shortfall total the batch chain can reach, 2^depth accounts of
    2^MARGIN_BITS - 1, against the largest fund: equal passes, one unit short fails."""
    widest = (1 << DEPTH) * ((1 << margin_bits(N, PARAMS.n_instruments)) - 1)
    assert widest < 1 << FUND_BITS
    sc = base(short_plan)
    sc.shortfall = widest
    sc.insurance_fund = widest
    accepted(builds, sc)
    sc.insurance_fund = widest - 1
    refused(builds, sc.inputs(), INSURED_CHECK)


@pytest.mark.parametrize("shortfall", [1, 10**30])
def test_shortfall_in_strict_mode_rejected(
    builds: list[Circuit], plan: EpochPlan, shortfall: int
) -> None:
    """A strict epoch closes with no shortfall, however large the fund."""
    sc = base(plan)
    assert sc.context.mode == STRICT
    sc.insurance_fund = shortfall
    accepted(builds, sc)  # a fund alone is harmless
    sc.shortfall = shortfall
    refused(builds, sc.inputs(), STRICT_CHECK)
    sc.context.mode = SHORTFALL  # the same numbers in a shortfall-mode context close
    accepted(builds, sc)


# --- the context's bounds --------------------------------------------------------------------


def _break_context(ctx: RawContext, what: str) -> str:
    """Put one context entry just outside its bound; return the check that must refuse it."""
    if what == "risk 2^128":
        ctx.risk[1][3] = 1 << RISK_BITS
    elif what == "risk -2^128 - 1":
        ctx.risk[0][6] = -(1 << RISK_BITS) - 1
    elif what == "risk p / 2":
        ctx.risk[0][0] = P // 2
    elif what == "tier weight above weight":
        ctx.tier_weights[0][1] = ctx.weights[0] + 1
        return TIER_LE_CHECK
    elif what == "tier weight p - 1":
        ctx.tier_weights[1][0] = P - 1
    elif what == "weight 2^128":
        ctx.weights[1] = 1 << WEIGHT_BITS
    elif what == "width 2^64":
        ctx.tier_widths[0][0] = 1 << 64
    elif what == "width p - 1":
        ctx.tier_widths[1][0] = P - 1
    elif what == "cap 2^(64 + depth)":
        ctx.cap_limits[0] = 1 << TOTAL_BITS
    elif what == "mode 2":
        ctx.mode = 2
        return MODE_CHECK
    elif what == "mode p - 1":
        ctx.mode = P - 1
        return MODE_CHECK
    else:
        raise AssertionError(what)
    return BOUNDS_CHECK


CONTEXT_CASES = [
    "risk 2^128",
    "risk -2^128 - 1",
    "risk p / 2",
    "tier weight above weight",
    "tier weight p - 1",
    "weight 2^128",
    "width 2^64",
    "width p - 1",
    "cap 2^(64 + depth)",
    "mode 2",
    "mode p - 1",
]


@pytest.mark.parametrize("what", CONTEXT_CASES)
def test_context_out_of_range_rejected(
    builds: list[Circuit], short_plan: EpochPlan, what: str
) -> None:
    """Every bound of docs/margin-design.md ("Units"), one entry just outside it. ctxHash is
    recomputed over the bad context (as an exchange publishing it would), so only
    ContextBounds stands between it and a finalized epoch. Why each matters: a risk entry of
    2^128 or more could wrap a scenario's margin value mod p; a tier weight above the weight
    would credit collateral above its price; a width of 2^64 or more could lift a tier bound
    past the comparison's bits; mode 2 turns (1 - mode) * shortfall into -shortfall."""
    sc = base(short_plan)
    match = _break_context(sc.context, what)
    refused(builds, sc.inputs(), match)


def test_context_at_its_bounds_accepted(builds: list[Circuit], short_plan: EpochPlan) -> None:
    """The same entries just inside their bounds close the epoch."""
    sc = base(short_plan)
    ctx = sc.context
    ctx.risk[1][3] = (1 << RISK_BITS) - 1
    ctx.risk[0][6] = -(1 << RISK_BITS)
    ctx.weights[1] = (1 << WEIGHT_BITS) - 1
    ctx.tier_weights[0][0] = ctx.tier_weights[0][1] = ctx.weights[0]
    ctx.tier_widths[0][0] = (1 << 64) - 1
    ctx.cap_limits[0] = (1 << TOTAL_BITS) - 1
    accepted(builds, sc)


def test_context_hash_mismatch_rejected(builds: list[Circuit], short_plan: EpochPlan) -> None:
    """The context opened and bounded is the one the batches hashed: another risk entry under
    the published ctxHash does not open."""
    sc = base(short_plan)
    sc.ctx_hash = sc.ctx()
    sc.context.risk[0][0] -= 1
    refused(builds, sc.inputs(), CTX_CHECK)


# --- binding to the registry: epoch number and domain ----------------------------------------

# The registry that publishes the epoch (any chain id below 2^64, any address).
DOMAIN = registry_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


def test_epoch_and_domain_are_public(builds: list[Circuit], short_plan: EpochPlan) -> None:
    """The registry supplies signals 7 and 8 itself: its epoch number (the one inside the
    context) and its domain (chainId << 160 | address). A proof only verifies with them."""
    sc = base(short_plan)
    sc.domain = DOMAIN
    pub = sc.public()
    assert pub[7] == short_plan.context.epoch and pub[8] == DOMAIN
    accepted(builds, sc)
    for c in builds:
        assert c.public(c.expect_pass(sc.inputs()))[7:9] == [short_plan.context.epoch, DOMAIN]


def test_top_domain_accepted(builds: list[Circuit], plan: EpochPlan) -> None:
    """The largest domain a registry can have (chain id 2^64 - 1, address 2^160 - 1)."""
    sc = base(plan)
    sc.domain = registry_domain((1 << 64) - 1, (1 << 160) - 1)
    accepted(builds, sc)


def test_ctx_reopened_under_another_epoch_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """A registry could open an old ctxHash as a new epoch; the proof it then needs claims
    the new epoch number, and the old ctxHash opens to the old one only."""
    sc = base(plan)
    sc.ctx_hash = sc.ctx()
    sc.context.epoch += 1
    refused(builds, sc.inputs(), CTX_CHECK)


# --- the final state -------------------------------------------------------------------------


def test_batch_count_zero_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """The chain's start (no batch yet) is no closing state, even if it opens consistently."""
    sc = base(plan)
    sc.batch_count = 0
    refused(builds, sc.inputs(), COUNT_CHECK)


def test_totals_commit_mismatch_rejected(builds: list[Circuit], plan: EpochPlan) -> None:
    """totalsCommit must be the TotalsHash of the totals that finalState opens to."""
    sc = base(plan)
    fewer = [max(0, sc.totals[0] - 1), *sc.totals[1:]]
    sc.totals_commit = raw_totals_hash(fewer, DEPTH)
    refused(builds, sc.inputs(), COMMIT_CHECK)


@pytest.mark.parametrize(
    "field", ["totals", "root", "batch_count", "blind", "ctx", "shortfall", "shortfall_zero"]
)
def test_final_state_opening_rejected(
    builds: list[Circuit], short_plan: EpochPlan, field: str
) -> None:
    """finalState (the registry's) opens to these totals, root, count, ctx and shortfall only:
    in particular the shortfall compared with the fund is the one the batches summed."""
    true_state = base(short_plan).inputs()["finalState"]
    sc = base(short_plan)
    sc.final_state = true_state
    if field == "totals":
        sc.totals = [max(0, sc.totals[0] - 1), sc.totals[1] + 1, *sc.totals[2:]]
    elif field == "root":
        sc.root += 1
    elif field == "batch_count":
        sc.batch_count += 1
    elif field == "blind":
        sc.blind += 1
    elif field == "ctx":
        sc.context.epoch += 1  # another valid context, opened consistently
    elif field == "shortfall":
        sc.shortfall -= 1
    else:
        sc.shortfall = 0
    refused(builds, sc.inputs(), STATE_CHECK)


# --- tampering -------------------------------------------------------------------------------


def _changed(value: int) -> int:
    return 1 - value if value in (0, 1) else value + 1


@pytest.mark.parametrize(
    "signal",
    [
        "totals[0]",  # a total under a fixed commitment
        "totals[3]",
        "blind",
        "finalState",
        "totalsCommit",
        "domain",  # the registry binding, under its square
        "domainSquared",
        "epoch",  # the public epoch number, under a fixed ctxHash
        "weights[1]",  # a public price under a fixed ctxHash
        "verified[1]",
        "declared[0]",
        "verifiedOnly",
        "allVerified[1]",  # the running AND
        "coveredVerified[0].out",  # one asset's verified-only comparison
        "verRange[0].bits.out[127]",
        "decRange[1].bits.out[0]",
        "batchCount",
        "none.inv",  # batchCount != 0
        "covered[0].a",  # verified + declared + debt
        "covered[1].bits.out[0]",  # the coverage comparison
        "totRange[2].bits.out[5]",  # a total's range check
        "capped[0].bits.out[0]",  # the cap comparison
        "capLimit[1]",
        "shortfall",  # the shortfall under a fixed final state
        "insuranceFund",
        "insured.bits.out[3]",
        "fundRange.bits.out[0]",
        "mode",
        "risk[1][2]",  # a context entry under a fixed ctxHash
        "tierWeights[0][1]",
        "bounds.r[0][5].bits.out[128]",  # a risk entry's sign bit
        "bounds.tierLe[1][0].bits.out[0]",
        "bounds.width[0][0].bits.out[1]",
        "bounds.cap[0].bits.out[2]",
        "bounds.w[1].bits.out[0]",
    ],
)
def test_tampered_wire_rejected(solvency_o1: Circuit, short_plan: EpochPlan, signal: str) -> None:
    sc = base(short_plan)
    sc.domain = DOMAIN
    w = solvency_o1.expect_pass(sc.inputs())
    solvency_o1.expect_constraint_fail(
        solvency_o1.tamper(w, signal, _changed(solvency_o1.get(w, signal)))
    )

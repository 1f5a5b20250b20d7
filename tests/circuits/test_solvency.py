"""Solvency (circuits/solvency.circom) at solvency_4_2: the closing proof of an epoch.

Mirror agreement runs the production build on epochs planned by witness.plan_epoch; attacks
change one input and re-derive finalState and totalsCommit (harness.SolvencyCase) so the
calculator fails at the named constraint, in both the --O2 and the --O1 build.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from harness import Circuit, SolvencyCase, assert_at, fired_in, random_snapshot, raw_totals_hash
from zksolvency.prover.field import P
from zksolvency.prover.params import EpochParams
from zksolvency.prover.witness import EpochPlan, plan_epoch

PARAMS = EpochParams(1, 4, 2)
DEPTH, N = PARAMS.tree_depth, PARAMS.n_assets
TOTAL_BITS = 64 + DEPTH
MAX_RESERVE = (1 << 128) - 1
FILE = "solvency.circom"

COMMIT_CHECK = assert_at("Solvency", FILE, "th.out === totalsCommit;")
STATE_CHECK = assert_at("Solvency", FILE, "st.out === finalState;")
COUNT_CHECK = assert_at("Solvency", FILE, "none.out === 0;")


def make_plan(seed: int, n_accounts: int, used: int | None = None) -> EpochPlan:
    snapshot, reserves = random_snapshot(seed, N, n_accounts, used)
    return plan_epoch(snapshot, PARAMS, 1 + seed, reserves, f"solvency-{seed}".encode())


@pytest.fixture(scope="module")
def plan() -> EpochPlan:
    return make_plan(8, 5, used=2)


@pytest.fixture(scope="module")
def builds(solvency_o1: Circuit, solvency_4_2: Circuit) -> list[Circuit]:
    return [solvency_o1, solvency_4_2]


def base(plan: EpochPlan) -> SolvencyCase:
    return SolvencyCase.from_plan_input(DEPTH, plan.solvency_input())


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
    assert SolvencyCase.from_plan_input(
        p.context.params.tree_depth, p.solvency_input()
    ).public() == (p.solvency_public())


@pytest.mark.parametrize(("seed", "n_accounts", "used"), [(1, 1, 1), (2, 4, 2), (3, 9, None)])
def test_plan_solvency_matches_mirror(
    solvency_4_2: Circuit, seed: int, n_accounts: int, used: int | None
) -> None:
    """Final state, root, totals commitment and reserves of random epochs agree."""
    check_plan(solvency_4_2, make_plan(seed, n_accounts, used))


def test_o1_build_matches_mirror(solvency_o1: Circuit, plan: EpochPlan) -> None:
    check_plan(solvency_o1, plan)


def test_production_solvency_matches_mirror(solvency_10_4: Circuit) -> None:
    snapshot, reserves = random_snapshot(31, 4, 13, used=3)
    check_plan(solvency_10_4, plan_epoch(snapshot, EpochParams(3, 10, 4), 2, reserves, b"prod"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_random_epochs_match_mirror(solvency_4_2: Circuit, seed: int) -> None:
    check_plan(solvency_4_2, make_plan(seed, random.Random(seed).randint(1, 1 << DEPTH)))


# --- coverage --------------------------------------------------------------------------------


@pytest.mark.parametrize("asset", [0, 1])
def test_liabilities_above_reserves_rejected(
    builds: list[Circuit], plan: EpochPlan, asset: int
) -> None:
    """equity total = reserves + debt total passes; one unit more does not."""
    sc = base(plan)
    sc.totals[2 * asset] = sc.reserves[asset] + sc.totals[2 * asset + 1]
    assert sc.totals[2 * asset] < 1 << TOTAL_BITS
    accepted(builds, sc)
    sc.totals[2 * asset] += 1
    refused(builds, sc.inputs(), fired_in("Num2Bits", "NonNegativeDifference", "Solvency"))


def test_full_width_coverage_does_not_wrap(builds: list[Circuit], plan: EpochPlan) -> None:
    """Largest reserve and totals: reserve + debt stays below 2^129, the comparison exact."""
    top = (1 << TOTAL_BITS) - 1
    sc = base(plan)
    sc.reserves = [MAX_RESERVE, 0]
    sc.totals = [top, top, top, top]
    accepted(builds, sc)
    sc.reserves = [MAX_RESERVE, 0]
    sc.totals = [top, top - 1, 0, 0]
    accepted(builds, sc)
    sc.reserves = [0, 0]
    sc.totals = [top, top - 1, 0, 0]
    refused(builds, sc.inputs(), fired_in("Num2Bits", "NonNegativeDifference", "Solvency"))


@pytest.mark.parametrize("bad", [1 << 128, (1 << 129) - 1, P - 1, P - (1 << 70)])
def test_reserves_out_of_range_rejected(builds: list[Circuit], plan: EpochPlan, bad: int) -> None:
    """Reserves >= 2^128 (or negative, p - x) could wrap reserve + debt past the comparison."""
    sc = base(plan)
    sc.reserves = [MAX_RESERVE, sc.reserves[1]]
    accepted(builds, sc)
    sc.reserves = [bad, sc.reserves[1]]
    refused(builds, sc.inputs(), fired_in("Num2Bits", "RangeCheck", "Solvency"))


@pytest.mark.parametrize(("index", "bad"), [(0, 1 << TOTAL_BITS), (0, P - 1), (1, P - 5)])
def test_totals_out_of_range_rejected(
    builds: list[Circuit], plan: EpochPlan, index: int, bad: int
) -> None:
    """Totals are range-checked before they are packed and compared: a negative equity total
    (p - 1) would always look covered; 2^(64 + DEPTH) would carry into its neighbour."""
    sc = base(plan)
    sc.totals[index] = bad
    refused(builds, sc.inputs(), fired_in("Num2Bits", "RangeCheck", "Solvency"))


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


@pytest.mark.parametrize("field", ["totals", "root", "batch_count", "blind", "ctx"])
def test_final_state_opening_rejected(builds: list[Circuit], plan: EpochPlan, field: str) -> None:
    """finalState (the registry's) opens to these totals, root, count and ctx only."""
    true_state = base(plan).inputs()["finalState"]
    sc = base(plan)
    sc.final_state = true_state
    if field == "totals":
        sc.totals = [max(0, sc.totals[0] - 1), sc.totals[1] + 1, *sc.totals[2:]]
    elif field == "root":
        sc.root += 1
    elif field == "batch_count":
        sc.batch_count += 1
    elif field == "blind":
        sc.blind += 1
    else:
        sc.ctx_hash += 1
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
        "reserves[1]",
        "batchCount",
        "none.inv",  # batchCount != 0
        "covered[0].a",  # reserve + debt
        "covered[1].bits.out[0]",  # the coverage comparison
        "totRange[2].bits.out[5]",  # a total's range check
        "resRange[0].bits.out[127]",  # a reserve's range check
    ],
)
def test_tampered_wire_rejected(solvency_o1: Circuit, plan: EpochPlan, signal: str) -> None:
    w = solvency_o1.expect_pass(plan.solvency_input())
    solvency_o1.expect_constraint_fail(
        solvency_o1.tamper(w, signal, _changed(solvency_o1.get(w, signal)))
    )

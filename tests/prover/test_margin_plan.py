"""The margin mirror (prover/margin.py), the epoch's margin plan (strict and shortfall modes,
haircut tiers and exchange-wide caps) and the published context (prover/context.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zksolvency.prover.commitments import RISK_SCALE, SHORTFALL, STRICT, VALUE_DECIMALS, weight
from zksolvency.prover.context import (
    ContextError,
    context_json,
    margin_context,
    published_scenarios,
    recompute_context,
    risk_problems,
)
from zksolvency.prover.haircuts import AssetHaircuts, HaircutTable, tier_split
from zksolvency.prover.instruments import Derivatives, Instrument, MarketData
from zksolvency.prover.margin import (
    MarginContext,
    credit,
    headroom,
    headroom_fn,
    margin_values,
)
from zksolvency.prover.params import EpochParams
from zksolvency.prover.risk import NO_GRID_LABEL, ScenarioGrid, pricing_inputs, risk_arrays
from zksolvency.prover.snapshot import Account, Asset, Snapshot
from zksolvency.prover.witness import EpochPlan, MarginInputs, PlanError, plan_epoch

PARAMS = EpochParams(1, 4, 2, 2, 8, 2)
USD = 10**VALUE_DECIMALS
AS_OF = datetime(2026, 11, 20, 8, tzinfo=UTC)
PARAMS_GRID = ScenarioGrid(price_steps=1)
BTC = Asset("BTC", 8, 65_000 * 10**8)
USDT = Asset("USDT", 6, 10**8)


def snapshot(*rows: tuple[str, list[int], list[int]]) -> Snapshot:
    accounts = tuple(
        Account(i, tuple(eq), tuple(debt), line) for line, (i, eq, debt) in enumerate(rows, 1)
    )
    return Snapshot((BTC, USDT), accounts, "snap.json")


def derivatives(positions: dict[str, tuple[int, ...]]) -> Derivatives:
    """A BTC perpetual (0.001 BTC a contract) and a BTC call; quantities at 10^8."""
    return Derivatives(
        (
            Instrument("BTC-PERP", "perpetual", "BTC", None, None, 10**5),
            Instrument(
                "BTC-C70K", "call", "BTC", 70_000 * 10**8, datetime(2027, 3, 26, tzinfo=UTC), 10**6
            ),
        ),
        (MarketData("BTC", 65_000 * 10**8, 55 * 10**6, 4 * 10**6),),
        AS_OF,
        positions,
    )


def plan(snap: Snapshot, margin: MarginInputs | None = None, **kw: Any) -> EpochPlan:
    reserves = kw.pop("reserves", (10**12, 10**14))
    return plan_epoch(snap, PARAMS, 1, reserves, b"seed" * 8, margin)


# --- the rule ---------------------------------------------------------------------------------


def ctx(risk: list[list[int]], mode: int = STRICT) -> MarginContext:
    w = [weight(BTC.price_e8, 8), weight(USDT.price_e8, 6)]
    return MarginContext(
        mode,
        w,
        [[w[0] * 95 // 100, w[0] * 90 // 100], [w[1], w[1]]],
        [[10**8], [10**12]],
        [2**70, 2**70],
        risk,
    )


def test_tier_split_fills_in_order_and_credit_uses_it() -> None:
    assert tier_split(250, [100]) == [100, 150]
    assert tier_split(40, [100]) == [40, 0]
    c = ctx([[0] * 8, [0] * 8])
    # 1.5 BTC: the first BTC at 95 %, the rest at 90 %
    want = 10**8 * c.tier_weights[0][0] + 5 * 10**7 * c.tier_weights[0][1]
    assert credit([15 * 10**7, 0], c) == want


def test_margin_values_follow_the_published_formula() -> None:
    risk = [[3, -4, 0, 0, 0, 0, 0, 7], [0] * 8]
    c = ctx(risk)
    eq, debt, qty = [10**8, 5 * 10**6], [0, 10**6], [-1000, 0]
    base = credit(eq, c) - 10**6 * c.weights[1] - 1000
    assert margin_values(eq, debt, qty, c) == [base - 1000 * r for r in risk[0]]
    value, worst = headroom(eq, debt, qty, c)
    assert (value, worst) == (base - 7000, 7)


AMOUNT = st.integers(0, 2**64 - 1)


@given(
    st.lists(AMOUNT, min_size=2, max_size=2),
    st.lists(AMOUNT, min_size=2, max_size=2),
    st.lists(st.integers(-(10**12), 10**12), min_size=2, max_size=2),
    st.lists(st.integers(-(10**20), 10**20), min_size=16, max_size=16),
    st.integers(0, 10**13),
)
def test_headroom_fn_is_headroom(
    equity: list[int], debt: list[int], qty: list[int], risk: list[int], width: int
) -> None:
    """The epoch loop's headroom (constants folded, credit from the tier excesses) is the
    mirror's, at any amounts up to 2^64, tier widths and positions (none, or some)."""
    c = replace(ctx([risk[:8], risk[8:]]), tier_widths=[[width], [10**12]])
    for q in (qty, [0, 0]):
        assert headroom_fn(c)(equity, debt, q) == headroom(equity, debt, q, c)
    # padding slots may be left out: their amounts are zero
    assert headroom_fn(c)(equity[:1], debt[:1], [0, 0]) == headroom(
        [equity[0], 0], [debt[0], 0], [0, 0], c
    )


@given(
    st.lists(st.integers(-(10**12), 10**12), min_size=2, max_size=2),
    st.sampled_from([0, 30, 40 * 86400]),
)
def test_circuit_pnl_never_exceeds_the_exact_pnl(qty: list[int], age: int) -> None:
    """floor(R) for both signs, minus one unit per 10^-8 contract, is never above q·R."""
    d = derivatives({})
    instruments, market, as_of = pricing_inputs(d)
    r = risk_arrays(instruments, market, replace(PARAMS_GRID, look_ahead_days=age / 86400), as_of)
    risk = [[int(Fraction(x) * 10**RISK_SCALE // 1) for x in row] for row in r.tolist()]
    c = ctx(risk)
    values = margin_values([0, 0], [0, 0], qty, c)
    for s, v in enumerate(values):
        exact = sum(
            Fraction(q) * Fraction(float(r[i][s])) * 10**RISK_SCALE for i, q in enumerate(qty)
        )
        assert v <= exact


# --- strict and shortfall modes -----------------------------------------------------------------


# carol is short 100 BTC-PERP contracts (0.1 BTC) against 5,000 USDT: fine. dan is short 10 BTC
# (10,000 contracts) against 6,000 USDT: a 15 % rally costs him ~97,500 USD.
SNAP = snapshot(
    ("carol", [0, 5_000 * 10**6], [0, 0]),
    ("dan", [0, 6_000 * 10**6], [0, 0]),
    ("erin", [10**8, 0], [0, 0]),
)
POSITIONS = {"carol": (-100 * 10**8, 0), "dan": (-10_000 * 10**8, 0)}


def test_strict_mode_names_the_failing_accounts_and_their_worst_scenario() -> None:
    with pytest.raises(PlanError) as err:
        plan(SNAP, MarginInputs(derivatives(POSITIONS)))
    msg = str(err.value)
    assert "1 account(s) fail the margin rule (strict mode)" in msg
    assert "dan (line 2) in snap.json: short by" in msg
    assert "price +3×range" in msg  # the extreme up move hurts a short perpetual most
    assert "carol" not in msg and "erin" not in msg


def test_shortfall_mode_publishes_the_total_and_needs_the_fund() -> None:
    probe = plan(
        SNAP, MarginInputs(derivatives(POSITIONS), mode=SHORTFALL, insurance_fund=10**6 * USD)
    )
    short = probe.shortfall
    dan = [a.id for a in probe.accounts].index("dan")
    assert short == -probe.headrooms[dan][0] > 0
    assert probe.shortfalls[dan] == short and sum(probe.shortfalls) == short
    assert probe.solvency_public()[5:7] == [short, 10**6 * USD]
    # exactly covered is fine, one unit less is not
    plan(SNAP, MarginInputs(derivatives(POSITIONS), mode=SHORTFALL, insurance_fund=short))
    with pytest.raises(PlanError, match="exceeds the insurance fund"):
        plan(SNAP, MarginInputs(derivatives(POSITIONS), mode=SHORTFALL, insurance_fund=short - 1))
    with pytest.raises(PlanError, match="only used in shortfall mode"):
        plan(SNAP, MarginInputs(derivatives(POSITIONS), insurance_fund=short))


def test_batch_inputs_carry_positions_and_shortfalls() -> None:
    p = plan(SNAP, MarginInputs(derivatives(POSITIONS), mode=SHORTFALL, insurance_fund=10**6 * USD))
    seen = {}
    for inp in p.batch_inputs:
        for slot, code in enumerate(inp["qty"]):
            seen[int(inp["idCommit"][slot])] = (code, inp["shortfall"][slot], inp["equity"][slot])
    for acc, commit, qty, short in zip(p.accounts, p.id_commits, p.qty, p.shortfalls, strict=True):
        code, s, equity = seen[commit]
        assert [int(x) for x in code] == [(-q | 2**63) if q < 0 else q for q in qty]
        assert int(s) == short
        assert [int(x) for x in equity] == [*acc.equity, *[0] * (len(equity) - len(acc.equity))]
    assert int(p.batch_inputs[-1]["oldShortfall"]) == p.shortfall_after[-2]


# --- haircuts and the exchange-wide cap ---------------------------------------------------------

TABLE = HaircutTable(
    {"BTC": AssetHaircuts((2 * 10**8, None), (9500, 9000), (3 * 10**8, None), (10000, 8000))}
)


def test_exchange_cap_follows_the_total_not_the_accounts() -> None:
    """Splitting 4 BTC over four accounts dodges the per-account tier but not the cap."""
    one = plan(snapshot(("whale", [4 * 10**8, 0], [0, 0])), MarginInputs(haircuts=TABLE))
    four = plan(
        snapshot(*((f"w{i}", [10**8, 0], [0, 0]) for i in range(4))), MarginInputs(haircuts=TABLE)
    )
    w = weight(BTC.price_e8, 8)
    for p in (one, four):  # 4 BTC in total is above the 3 BTC bracket: every rate capped at 80 %
        assert p.context.margin.tier_weights[0] == (w * 8000 // 10000,) * 2
        assert p.context.margin.cap_limits[0] == 2**68 - 1
    credited = [sum(v for v, _ in p.headrooms) for p in (one, four)]
    assert credited[0] == credited[1] == 4 * 10**8 * (w * 8000 // 10000)
    # 2 BTC in total: the 100 % bracket, so the per-account tiers apply (95 % then 90 %)
    small = plan(snapshot(("a", [2 * 10**8, 0], [0, 0])), MarginInputs(haircuts=TABLE))
    assert small.context.margin.tier_weights[0] == (w * 9500 // 10000, w * 9000 // 10000)
    assert small.context.margin.cap_limits[0] == 3 * 10**8


def test_haircuts_can_make_an_account_fail() -> None:
    # 1 BTC (65,000 USD) against 64,000 USDT of debt: covered at full price, short by 2,250
    # USD at 95 %.
    snap = snapshot(("lev", [10**8, 0], [0, 64_000 * 10**6]))
    plan(snap)
    with pytest.raises(PlanError, match=r"lev \(line 1\).*short by 2,250\.00 USD in scenario 0"):
        plan(snap, MarginInputs(haircuts=TABLE))


def test_plan_refuses_shapes_the_circuits_cannot_take() -> None:
    with pytest.raises(PlanError, match="scenario grid has 16 scenarios"):
        plan(SNAP, MarginInputs(grid=ScenarioGrid()))
    three = HaircutTable({"BTC": AssetHaircuts((1, 2, None), (9, 8, 7))})
    with pytest.raises(PlanError, match="N_TIERS = 2"):
        plan(SNAP, MarginInputs(haircuts=three))
    with pytest.raises(PlanError, match="not in the snapshot"):
        plan(SNAP, MarginInputs(derivatives({"mallory": (1, 0)})))


# --- the published context ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def published() -> tuple[dict[str, Any], int]:
    p = plan(
        SNAP,
        MarginInputs(derivatives(POSITIONS), TABLE, mode=SHORTFALL, insurance_fund=10**6 * USD),
    )
    return json.loads(json.dumps(context_json(p))), p.context.ctx_hash


def test_context_round_trips_and_recomputes(published: tuple[dict[str, Any], int]) -> None:
    c, h = published
    assert recompute_context(c, PARAMS.as_dict()) == h
    assert risk_problems(c) == []
    m = margin_context(c, PARAMS.as_dict())
    assert m.mode == SHORTFALL and m.n_instruments == 2 and m.n_scenarios == 8
    assert len(c["risk"]["grid"]["scenarios"]) == 8


SPOT = EpochParams(1, 4, 2, 1, 1, 2)


def test_spot_epoch_publishes_no_grid() -> None:
    """Without derivatives a circuit of any scenario count serves (here one): the context
    publishes no grid, recomputes, and names the scenario as today's market."""
    snap = snapshot(("a", [10**8, 0], [0, 10**6]), ("b", [0, 5 * 10**6], [0, 0]))
    p = plan_epoch(snap, SPOT, 1, (10**12, 10**14), b"seed" * 8, MarginInputs(None, TABLE))
    assert p.context.grid is None
    c = json.loads(json.dumps(context_json(p)))
    assert c["risk"]["grid"] is None and c["risk"]["arrays"] == [["0"]]
    assert recompute_context(c, SPOT.as_dict()) == p.context.ctx_hash
    assert risk_problems(c) == []
    assert published_scenarios(c) == [NO_GRID_LABEL]


def test_spot_shape_refuses_derivatives() -> None:
    """Derivatives need a grid: no default grid has one scenario."""
    snap = snapshot(("a", [10**8, 0], [0, 0]))
    with pytest.raises(PlanError, match="no default grid"):
        plan_epoch(snap, SPOT, 1, (10**12, 10**14), b"seed" * 8, MarginInputs(derivatives({})))


def test_instruments_without_grid_are_a_problem(published: tuple[dict[str, Any], int]) -> None:
    c = _edit(published[0], "risk.grid", None)
    assert risk_problems(c) == ["instruments are published without a scenario grid to price them"]


def _edit(c: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(c))
    *head, last = path.split(".")
    node: Any = out
    for k in head:
        node = node[int(k)] if k.isdigit() else node[k]
    node[int(last) if last.isdigit() else last] = value
    return out


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("assets.0.price_e8", "6500000000001", "weight disagrees"),
        ("weights.0", "1", "weight disagrees"),
        ("tier_weights.0.0", "1", "tier weights disagree"),
        ("assets.0.tier_rates_bps", [9000, 9500], "non-increasing"),
        ("assets.0.cap_bps", 8000, "tier weights disagree"),
        ("cap_limits.0", "5", "not one of its brackets"),
        ("mode", "lenient", "unknown mode"),
        # rising caps would let the exchange pick a later, more generous bracket
        (
            "assets.0.exchange_brackets",
            [{"up_to": "300000000", "cap_bps": 8000}, {"up_to": None, "cap_bps": 10000}],
            "cap less as they grow",
        ),
        ("assets.0.exchange_brackets", [{"up_to": "300000000", "cap_bps": 10000}], "unbounded"),
        ("risk.arrays.0.0", str(2**128), "risk"),
    ],
)
def test_inconsistent_context_is_refused(
    published: tuple[dict[str, Any], int], path: str, value: Any, match: str
) -> None:
    with pytest.raises(ContextError, match=match):
        recompute_context(_edit(published[0], path, value), PARAMS.as_dict())


def test_generous_risk_arrays_are_caught_by_recomputation(
    published: tuple[dict[str, Any], int],
) -> None:
    c = published[0]
    worst = min(range(8), key=lambda s: int(c["risk"]["arrays"][0][s]))
    # Halving the perpetual's worst loss would flatter every long: recomputation refuses it.
    generous = _edit(c, f"risk.arrays.0.{worst}", str(int(c["risk"]["arrays"][0][worst]) // 2))
    assert any("instrument 0" in p for p in risk_problems(generous))
    # One array serves both signs: a harsher loss for longs is a windfall for shorts.
    harsh = _edit(c, f"risk.arrays.0.{worst}", str(int(c["risk"]["arrays"][0][worst]) * 2))
    assert any("instrument 0" in p and "short" in p for p in risk_problems(harsh))
    # Within a unit it is float noise, and the hash still tells the arrays apart.
    nudged = _edit(c, f"risk.arrays.0.{worst}", str(int(c["risk"]["arrays"][0][worst]) - 1))
    assert risk_problems(nudged) == []
    assert recompute_context(nudged, PARAMS.as_dict()) != published[1]

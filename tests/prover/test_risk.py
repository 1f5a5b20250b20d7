"""The risk engine: Black-Scholes values, the SPAN grid, greeks, and conservative integer arrays."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zksolvency.prover.risk import (
    FixedRiskArrays,
    Instrument,
    MarketData,
    ScenarioGrid,
    account_greeks,
    check_published,
    fixed_risk_arrays,
    greeks,
    position_pnl,
    position_pnl_float,
    position_pnl_upper,
    published_violations,
    recompute_tolerance,
    risk_arrays,
    to_fixed,
    values,
    worst_case_pnl,
    year_fraction,
)

GRID = ScenarioGrid()
BTC = {"BTC": MarketData(60_000.0, 0.6, 0.05)}

# CME's 16 scenarios: (price move in scan ranges, vol move in scan ranges, fraction counted).
CME_16 = [
    (0.0, 1, 1.0),
    (0.0, -1, 1.0),
    (1 / 3, 1, 1.0),
    (1 / 3, -1, 1.0),
    (-1 / 3, 1, 1.0),
    (-1 / 3, -1, 1.0),
    (2 / 3, 1, 1.0),
    (2 / 3, -1, 1.0),
    (-2 / 3, 1, 1.0),
    (-2 / 3, -1, 1.0),
    (1.0, 1, 1.0),
    (1.0, -1, 1.0),
    (-1.0, 1, 1.0),
    (-1.0, -1, 1.0),
    (3.0, 0, 0.35),
    (-3.0, 0, 0.35),
]


def opt(kind: str, strike: float, expiry: float, mult: float = 1.0, und: str = "X") -> Instrument:
    return Instrument(f"{und}-{kind}-{strike}-{expiry}-{mult}", kind, und, strike, expiry, mult)  # type: ignore[arg-type]


# ---- independent scalar reference (math.erf, plain loops) ------------------------------------


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def ref_value(kind: str, s: float, k: float, t: float, vol: float, r: float) -> float:
    if kind == "perpetual":
        return s
    if kind == "future":
        return s * math.exp(r * max(t, 0.0))
    sign = 1.0 if kind == "call" else -1.0
    if t <= 0:
        return max(sign * (s - k), 0.0)
    kd = k * math.exp(-r * t)
    if vol == 0 or s == 0:
        return max(sign * (s - kd), 0.0)
    d1 = (math.log(s / k) + (r + vol * vol / 2) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if kind == "call":
        return s * _ncdf(d1) - kd * _ncdf(d2)
    return kd * _ncdf(-d2) - s * _ncdf(-d1)


def ref_risk(
    instruments: list[Instrument], market: dict[str, MarketData], grid: ScenarioGrid, as_of: float
) -> list[list[float]]:
    out = []
    for ins in instruments:
        m = market[ins.underlying]
        s0, v0, r = float(m.spot), float(m.vol), float(m.rate)
        k = float(ins.strike or 0.0)
        t0 = math.inf if ins.expiry is None else float(ins.expiry) - as_of  # type: ignore[arg-type]
        base = ref_value(ins.kind, s0, k, t0, v0, r)
        row = []
        for sc in grid.scenarios():
            s1 = max(s0 * (1 + sc.price_move * grid.price_range(ins.underlying)), 0.0)
            v1 = max(v0 + sc.vol_move * grid.vol_range(ins.underlying), 0.0)
            t1 = t0 - grid.look_ahead_days / 365
            moved = ref_value(ins.kind, s1, k, t1, v1, r)
            row.append((moved - base) * float(ins.multiplier) * sc.weight)
        out.append(row)
    return out


# ---- valuation ---------------------------------------------------------------------------------


def test_hull_textbook_values() -> None:
    # Hull, Options, Futures and Other Derivatives, example 15.6: c = 4.76, p = 0.81.
    market = {"X": MarketData(42.0, 0.2, 0.1)}
    c, p = values([opt("call", 40, 0.5), opt("put", 40, 0.5)], market, 0.0)
    assert round(float(c), 2) == 4.76
    assert round(float(p), 2) == 0.81
    assert c == pytest.approx(4.759422, abs=1e-6)
    assert p == pytest.approx(0.808599, abs=1e-6)


@given(
    s=st.floats(1.0, 1e5),
    moneyness=st.floats(0.2, 5.0),
    t=st.floats(-1.0, 3.0),
    vol=st.one_of(st.just(0.0), st.floats(0.01, 3.0)),
    r=st.floats(-0.05, 0.2),
)
def test_put_call_parity(s: float, moneyness: float, t: float, vol: float, r: float) -> None:
    k = s * moneyness
    c, p = values([opt("call", k, t), opt("put", k, t)], {"X": MarketData(s, vol, r)}, 0.0)
    forward_pv = s - k * math.exp(-r * max(t, 0.0))  # expired: discount factor 1
    assert c - p == pytest.approx(forward_pv, abs=1e-9 * max(s, k))
    # no-arbitrage lower bounds, up to float rounding of the bound itself
    eps = 1e-12 * max(s, k)
    assert c >= max(forward_pv, 0.0) - eps and p >= max(-forward_pv, 0.0) - eps


def test_parity_holds_scenario_by_scenario() -> None:
    # call − put = spot − discounted strike, so (without look-ahead) its scenario P&L is a perp's.
    ins = [opt("call", 55_000, 0.25, 0.01, "BTC"), opt("put", 55_000, 0.25, 0.01, "BTC")]
    perp = Instrument("BTC-PERP", "perpetual", "BTC", multiplier=0.01)
    r = risk_arrays([*ins, perp], BTC, GRID, 0.0)
    np.testing.assert_allclose(r[0] - r[1], r[2], rtol=0, atol=1e-9)


def test_perpetual_and_future_pnl_is_linear() -> None:
    spot, rate, t, mult = 60_000.0, 0.05, 0.5, 0.001
    ins = [
        Instrument("BTC-PERP", "perpetual", "BTC", multiplier=mult),
        Instrument("BTC-FUT", "future", "BTC", expiry=t, multiplier=mult),
    ]
    r = risk_arrays(ins, BTC, GRID, 0.0)
    moves = np.array([sc.price_move * sc.weight for sc in GRID.scenarios()])
    np.testing.assert_allclose(r[0], spot * 0.15 * moves * mult, rtol=1e-12, atol=1e-12)
    carry = math.exp(rate * t)  # F = S·e^{rT}
    np.testing.assert_allclose(r[1], spot * carry * 0.15 * moves * mult, rtol=1e-12, atol=1e-12)
    # Vol moves change nothing for linear instruments.
    assert np.array_equal(r[:, 0::2][:, :7], r[:, 1::2][:, :7])
    assert values(ins, BTC, 0.0)[1] == pytest.approx(spot * carry * mult)


@given(as_of=st.floats(0.0, 0.5))
def test_vectorised_equals_scalar_reference_loop(as_of: float) -> None:
    rng = random.Random(7)
    market = {
        "BTC": MarketData(60_000.0, 0.55, 0.04),
        "ETH": MarketData(3_000.0, 0.75, 0.04),
        "SOL": MarketData(150.0, 0.0, 0.0),  # zero vol
    }
    grid = ScenarioGrid(
        price_scan_range={"BTC": 0.15, "ETH": 0.2, "SOL": 0.4},  # SOL's extremes hit zero
        vol_scan_range={"BTC": 0.1, "ETH": 0.1, "SOL": 0.2},
        look_ahead_days=1.0,
    )
    instruments = []
    for i in range(40):
        und = rng.choice(sorted(market))
        kind = rng.choice(["perpetual", "future", "call", "put"])
        spot = float(market[und].spot)
        expiry = None if kind == "perpetual" else rng.choice([0.0, 0.002, 0.1, 0.4, 1.5])
        strike = spot * rng.uniform(0.5, 1.5) if kind in ("call", "put") else None
        instruments.append(Instrument(f"i{i}", kind, und, strike, expiry, rng.choice([1.0, 0.1])))  # type: ignore[arg-type]
    got = risk_arrays(instruments, market, grid, as_of)
    want = np.array(ref_risk(instruments, market, grid, as_of))
    assert got.shape == (40, 16)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-7)


def test_expired_options_are_worth_intrinsic_value() -> None:
    expiry = datetime(2025, 3, 28, 8, tzinfo=UTC)
    as_of = expiry + timedelta(hours=1)  # T < 0
    ins = [
        Instrument("C", "call", "BTC", 50_000.0, expiry, 1.0),
        Instrument("P", "put", "BTC", 70_000.0, expiry, 1.0),
        Instrument("OTM", "call", "BTC", 80_000.0, expiry, 1.0),
    ]
    assert values(ins, BTC, as_of).tolist() == [10_000.0, 10_000.0, 0.0]
    assert values(ins, BTC, expiry).tolist() == [10_000.0, 10_000.0, 0.0]  # T = 0
    r = risk_arrays(ins, BTC, GRID, as_of)
    s1 = [max(60_000 * (1 + sc.price_move * 0.15), 0) for sc in GRID.scenarios()]
    w = [sc.weight for sc in GRID.scenarios()]
    np.testing.assert_allclose(
        r[0], [(max(s - 50_000, 0) - 10_000) * x for s, x in zip(s1, w, strict=True)]
    )
    np.testing.assert_allclose(
        r[1], [(max(70_000 - s, 0) - 10_000) * x for s, x in zip(s1, w, strict=True)]
    )
    np.testing.assert_allclose(r[2], [max(s - 80_000, 0) * x for s, x in zip(s1, w, strict=True)])
    g = greeks(ins, BTC, as_of)
    assert g.delta.tolist() == [1.0, -1.0, 0.0]
    assert not g.gamma.any() and not g.vega.any() and not g.theta.any()


def test_zero_vol_is_the_discounted_forward_payoff() -> None:
    market = {"X": MarketData(100.0, 0.0, 0.05)}
    ins = [opt("call", 100, 1.0), opt("put", 100, 1.0), opt("put", 110, 1.0)]
    kd100, kd110 = 100 * math.exp(-0.05), 110 * math.exp(-0.05)
    np.testing.assert_allclose(values(ins, market, 0.0), [100 - kd100, 0.0, kd110 - 100])
    r = risk_arrays(ins, market, GRID, 0.0)
    assert np.isfinite(r).all()
    # Vol down from 0 is floored at 0, so vol-down equals unchanged at every price.
    assert r[0][1] == 0.0 and r[0][0] > 0.0
    g = greeks(ins, market, 0.0)
    assert np.isfinite([g.delta, g.gamma, g.vega, g.theta]).all()
    assert g.delta.tolist() == [1.0, 0.0, -1.0]
    assert g.theta[0] == pytest.approx(-0.05 * kd100)


def test_vol_floor_in_vol_down_scenarios() -> None:
    market = {"X": MarketData(100.0, 0.05, 0.0)}  # vol 0.05, scan 0.10: vol down → 0
    (r,) = risk_arrays([opt("call", 100, 0.5)], market, GRID, 0.0)
    base = ref_value("call", 100, 100, 0.5, 0.05, 0.0)
    assert r[1] == pytest.approx(0.0 - base)  # ATM at zero vol and zero rate: worth 0
    assert r[3] == pytest.approx(100 * 0.05 - base)  # price +1/3·15 %: intrinsic 5


def test_scenario_prices_are_floored_at_zero() -> None:
    grid = ScenarioGrid(price_scan_range=0.5)  # extreme down: 1 − 3·0.5 < 0
    market = {"X": MarketData(10.0, 0.8, 0.02)}
    perp = Instrument("PERP", "perpetual", "X", multiplier=2.0)
    put = opt("put", 8.0, 0.25)
    r = risk_arrays([perp, put], market, grid, 0.0)
    assert r[0][15] == pytest.approx(-10.0 * 2.0 * 0.35)  # the whole notional, at 35 %
    p0 = values([put], market, 0.0)[0]
    assert r[1][15] == pytest.approx((8.0 * math.exp(-0.02 * 0.25) - p0) * 0.35)


def test_decimal_inputs_give_the_same_floats() -> None:
    a = Instrument("C", "call", "X", Decimal("40.1"), 0.5, Decimal("0.01"))
    b = Instrument("C", "call", "X", 40.1, 0.5, 0.01)
    md = {"X": MarketData(Decimal("42.3"), Decimal("0.2"), Decimal("0.1"))}
    mf = {"X": MarketData(42.3, 0.2, 0.1)}
    assert np.array_equal(risk_arrays([a], md, GRID, 0.0), risk_arrays([b], mf, GRID, 0.0))


def test_year_fraction_is_act_365() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    assert year_fraction(t0, datetime(2024, 12, 31, tzinfo=UTC)) == 1.0
    assert year_fraction(t0, datetime(2025, 1, 1, tzinfo=UTC)) == 366 / 365  # leap year
    assert year_fraction(0.25, 1.0) == 0.75
    with pytest.raises(TypeError):
        year_fraction(t0, 1.0)


# ---- grid -------------------------------------------------------------------------------------


def test_default_grid_is_cme_16_in_order() -> None:
    sc = GRID.scenarios()
    assert GRID.n_scenarios == len(sc) == 16
    assert [s.index for s in sc] == list(range(16))
    assert [(s.price_move, s.vol_move, s.weight) for s in sc] == CME_16
    assert sc[0].label == "price unchanged, vol up"
    assert sc[14].label == "price +3×range, vol unchanged, 35% of P&L"
    r = risk_arrays([Instrument("P", "perpetual", "BTC")], BTC, GRID, 0.0)
    assert r.shape == (1, 16)
    # Coverage: ±1/3, ±2/3, ±3/3 of the range, each with vol up and down; extremes at ±3.
    full = {round(s.price_move * 3) for s in sc if s.weight == 1.0}
    assert full == {-3, -2, -1, 0, 1, 2, 3}
    assert all(
        {1, -1} == {s.vol_move for s in sc[:14] if round(s.price_move * 3) == p} for p in full
    )


def test_grid_is_configurable() -> None:
    g = ScenarioGrid(price_steps=2, extreme_multiple=2.0, extreme_coverage=0.3)
    moves = [(s.price_move, s.vol_move, s.weight) for s in g.scenarios()]
    assert g.n_scenarios == len(moves) == 12
    assert moves[-2:] == [(2.0, 0, 0.3), (-2.0, 0, 0.3)]
    g2 = ScenarioGrid(price_scan_range={"BTC": 0.1, "ETH": 0.2})
    assert g2.price_range("ETH") == 0.2 and g2.vol_range("ETH") == 0.1
    with pytest.raises(ValueError, match="no entry"):
        risk_arrays([Instrument("S", "perpetual", "SOL")], {"SOL": BTC["BTC"]}, g2, 0.0)
    for bad in (
        {"extreme_coverage": 1.5},
        {"extreme_multiple": 0.5},
        {"price_steps": 0},
        {"price_scan_range": -0.1},
        {"vol_scan_range": {"BTC": math.nan}},
    ):
        with pytest.raises(ValueError):
            ScenarioGrid(**bad)


def test_extreme_coverage_is_applied() -> None:
    ins = [Instrument("P", "perpetual", "BTC"), opt("put", 40_000, 0.1, 1.0, "BTC")]
    r = risk_arrays(ins, BTC, GRID, 0.0)
    uncovered = risk_arrays(ins, BTC, ScenarioGrid(extreme_coverage=1.0), 0.0)
    assert r[0][14] == pytest.approx(0.35 * 3 * 0.15 * 60_000)
    assert r[0][15] == pytest.approx(-0.35 * 3 * 0.15 * 60_000)
    np.testing.assert_allclose(r[:, 14:], 0.35 * uncovered[:, 14:], rtol=1e-15)
    assert np.array_equal(r[:, :14], uncovered[:, :14])
    # A short deep-OTM put: its worst loss is in the extreme down move, counted at 35 %.
    short_put = -r[1]
    assert short_put[15] < short_put[:14].min()


# ---- greeks -----------------------------------------------------------------------------------

GREEK_CASES = [
    ("call", 42.0, 40.0, 0.5, 0.2, 0.1),
    ("put", 42.0, 40.0, 0.5, 0.2, 0.1),
    ("call", 60_000.0, 75_000.0, 0.05, 0.8, 0.03),
    ("put", 3_000.0, 2_500.0, 1.5, 0.6, -0.01),
    ("future", 60_000.0, 0.0, 0.75, 0.6, 0.05),
    ("perpetual", 60_000.0, 0.0, 0.0, 0.6, 0.05),
]


@pytest.mark.parametrize(("kind", "s", "k", "t", "vol", "r"), GREEK_CASES)
def test_greeks_match_finite_differences(
    kind: str, s: float, k: float, t: float, vol: float, r: float
) -> None:
    mult = 0.1
    if kind == "perpetual":
        ins = Instrument("I", "perpetual", "X", multiplier=mult)
    elif kind == "future":
        ins = Instrument("I", "future", "X", expiry=t, multiplier=mult)
    else:
        ins = opt(kind, k, t, mult)

    def v(spot: float = s, sigma: float = vol, as_of: float = 0.0) -> float:
        return float(values([ins], {"X": MarketData(spot, sigma, r)}, as_of)[0])

    g = greeks([ins], {"X": MarketData(s, vol, r)}, 0.0)
    # Steps trade truncation (h²) against rounding (ε/h, ε/h² for gamma).
    hd, hg, hv, ht = s * 1e-5, s * 1e-3, 1e-4, 1e-5
    delta = (v(s + hd) - v(s - hd)) / (2 * hd)
    gamma = (v(s + hg) - 2 * v() + v(s - hg)) / hg**2
    vega = (v(sigma=vol + hv) - v(sigma=vol - hv)) / (2 * hv)
    theta = (v(as_of=ht) - v(as_of=-ht)) / (2 * ht)
    scale = mult * s  # compare on the contract's notional scale
    assert g.delta[0] == pytest.approx(delta, rel=1e-6, abs=1e-9 * mult)
    assert g.gamma[0] == pytest.approx(gamma, rel=1e-4, abs=1e-9 * mult / s)
    assert g.vega[0] == pytest.approx(vega, rel=1e-6, abs=1e-9 * scale)
    assert g.theta[0] == pytest.approx(theta, rel=1e-5, abs=1e-9 * scale)


def test_account_greeks_sum_per_underlying() -> None:
    market = {**BTC, "ETH": MarketData(3_000.0, 0.7, 0.05)}
    ins = [
        opt("call", 65_000, 0.2, 0.01, "BTC"),
        Instrument("BTC-PERP", "perpetual", "BTC", multiplier=0.01),
        opt("put", 2_800, 0.2, 0.1, "ETH"),
    ]
    g = greeks(ins, market, 0.0)
    acct = account_greeks([3, -2, -5], g)
    assert sorted(acct) == ["BTC", "ETH"]
    assert acct["BTC"].delta == pytest.approx(3 * g.delta[0] - 2 * 0.01)
    assert acct["BTC"].vega == pytest.approx(3 * g.vega[0])
    assert acct["ETH"].theta == pytest.approx(-5 * g.theta[2])
    with pytest.raises(ValueError):
        account_greeks([1, 2], g)


# ---- integer arrays and conservative rounding --------------------------------------------------


def test_to_fixed_rounds_toward_minus_infinity_exactly() -> None:
    assert to_fixed(np.array([[1.5, -1.5, 2.0, -0.0]]), 0) == [[1, -2, 2, 0]]
    f = fixed_risk_arrays(np.array([[1.5, -1.5, 2.0]]), 0)
    assert f.long == ((1, -2, 2),) and f.short == ((2, -1, 2),)
    # Exact at any scale: the float's binary value, not a float product, is rounded.
    assert to_fixed([[0.1]], 30) == [[math.floor(Fraction(0.1) * 10**30)]]
    assert to_fixed([[0.1]], 30)[0][0] == 100000000000000005551115123125
    with pytest.raises(ValueError):
        to_fixed([[math.inf]], 2)
    with pytest.raises(ValueError):
        to_fixed([[1.0]], -1)


def _exact_pnl(q: list[int], risk: list[list[float]], scale: int) -> list[Fraction]:
    m = len(risk[0])
    return [
        sum((qi * Fraction(row[s]) for qi, row in zip(q, risk, strict=True)), Fraction(0))
        * 10**scale
        for s in range(m)
    ]


@settings(max_examples=300)
@given(
    data=st.data(),
    n=st.integers(1, 5),
    scale=st.integers(0, 18),
)
def test_integer_pnl_never_exceeds_float_pnl(data: st.DataObject, n: int, scale: int) -> None:
    entry = st.floats(-1e7, 1e7, allow_nan=False, allow_infinity=False)
    risk = data.draw(st.lists(st.lists(entry, min_size=3, max_size=3), min_size=n, max_size=n))
    q = data.draw(st.lists(st.integers(-(10**9), 10**9), min_size=n, max_size=n))
    fixed = fixed_risk_arrays(np.array(risk), scale)
    got = position_pnl(q, fixed)
    exact = _exact_pnl(q, risk, scale)
    slack = sum(abs(x) for x in q)  # each entry is off by less than one unit
    for g, e in zip(got, exact, strict=True):
        assert g <= e  # never overstates the P&L, whatever the signs
        assert g >= e - slack
    # And against the float reference (itself rounded, hence the relative slop).
    ref = position_pnl_float(q, np.array(risk)) * 10**scale
    mag = (
        float(sum(abs(qi) * max(abs(x) for x in row) for qi, row in zip(q, risk, strict=True)))
        * 10**scale
    )
    assert all(g <= f + 1e-12 * mag + 1 for g, f in zip(got, ref, strict=True))


@given(q=st.lists(st.integers(-1000, 1000), min_size=4, max_size=4), scale=st.integers(0, 26))
def test_real_arrays_are_conservative_for_both_signs(q: list[int], scale: int) -> None:
    ins = [
        opt("call", 65_000, 0.1, 0.01, "BTC"),
        opt("put", 50_000, 0.1, 0.01, "BTC"),
        Instrument("BTC-PERP", "perpetual", "BTC", multiplier=0.001),
        Instrument("BTC-FUT", "future", "BTC", expiry=0.3, multiplier=0.001),
    ]
    r = risk_arrays(ins, BTC, GRID, 0.0)
    fixed = fixed_risk_arrays(r, scale)
    lower, upper = position_pnl(q, fixed), position_pnl_upper(q, fixed)
    exact = _exact_pnl(q, r.tolist(), scale)
    slack = sum(map(abs, q))
    for lo, e, hi in zip(lower, exact, upper, strict=True):
        assert e - slack <= lo <= e <= hi <= e + slack


def test_one_array_cannot_serve_both_signs() -> None:
    # Why two arrays: with floor alone, a short's loss would be understated.
    fixed = fixed_risk_arrays(np.array([[0.4]]), 0)  # long 0, short 1
    assert position_pnl([1], fixed) == [0]  # 0 ≤ 0.4
    assert position_pnl([-1], fixed) == [-1]  # −1 ≤ −0.4; floor would have given 0 > −0.4
    with pytest.raises(ValueError):
        position_pnl([1.0], fixed)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        position_pnl([1, 1], fixed)


def test_grouped_scan_gives_no_cross_underlying_credit() -> None:
    # Long BTC, short ETH, same notional: the joint scan nets them, the grouped scan does not.
    market = {"BTC": MarketData(60_000.0, 0.6, 0.0), "ETH": MarketData(3_000.0, 0.7, 0.0)}
    ins = [
        Instrument("BTC-PERP", "perpetual", "BTC", multiplier=0.001),
        Instrument("ETH-PERP", "perpetual", "ETH", multiplier=0.02),
    ]
    fixed = fixed_risk_arrays(risk_arrays(ins, market, GRID, 0.0), 2)
    q = [10, -10]
    assert worst_case_pnl(q, fixed) == min(position_pnl(q, fixed))
    assert abs(worst_case_pnl(q, fixed)) <= 20  # only rounding: the two legs offset
    grouped = worst_case_pnl(q, fixed, ["BTC", "ETH"])
    # Each leg's own worst case: 10 contracts × 60 USD notional × 0.35 × 3 × 15 % = 94.50 USD.
    assert -2 * 9450 - 20 <= grouped <= -2 * 9450
    with pytest.raises(ValueError):
        worst_case_pnl(q, fixed, ["BTC"])


@given(q=st.lists(st.integers(-50, 50), min_size=5, max_size=5))
def test_grouped_scan_is_never_above_joint_scan(q: list[int]) -> None:
    ins, market = _book()
    fixed = fixed_risk_arrays(risk_arrays(ins, market, GRID, 0.0), 4)
    groups = [i.underlying for i in ins]
    assert worst_case_pnl(q, fixed, groups) <= worst_case_pnl(q, fixed)


# ---- publication and recomputation ------------------------------------------------------------


def _book() -> tuple[list[Instrument], dict[str, MarketData]]:
    market = {**BTC, "ETH": MarketData(3_000.0, 0.7, 0.05)}
    ins = [
        opt("call", 65_000, 0.1, 0.01, "BTC"),
        opt("put", 55_000, 0.5, 0.01, "BTC"),
        opt("call", 3_000, 0.02, 0.1, "ETH"),
        Instrument("ETH-PERP", "perpetual", "ETH", multiplier=0.01),
        Instrument("BTC-FUT", "future", "BTC", expiry=0.25, multiplier=0.001),
    ]
    return ins, market


def test_fixed_arrays_round_trip_json() -> None:
    ins, market = _book()
    f = fixed_risk_arrays(risk_arrays(ins, market, GRID, 0.0), 12)
    assert FixedRiskArrays.from_json(f.to_json()) == f
    assert f.shape == (5, 16)
    with pytest.raises(ValueError):
        FixedRiskArrays(2, [[1, 2]], [[1]])
    with pytest.raises(ValueError):
        FixedRiskArrays(2, [[1.5]], [[2]])  # type: ignore[list-item]


@pytest.mark.parametrize("scale", [6, 18, 26])
def test_check_published_tolerates_ulp_level_recomputation(scale: int) -> None:
    ins, market = _book()
    published = fixed_risk_arrays(risk_arrays(ins, market, GRID, 0.0), scale)
    # Another platform: every input one ulp off, as a different libm might produce.
    nudged = {
        u: MarketData(
            float(np.nextafter(float(m.spot), math.inf)),
            float(np.nextafter(float(m.vol), 0.0)),
            float(np.nextafter(float(m.rate), math.inf)),
        )
        for u, m in market.items()
    }
    recomputed = fixed_risk_arrays(risk_arrays(ins, nudged, GRID, 0.0), scale)
    tol = recompute_tolerance(ins, market, GRID, 0.0, scale)
    assert check_published(published, recomputed, tol)
    assert check_published(recomputed, published, tol)
    assert Fraction(tol, 10**scale) < Fraction(1, 10**5)  # below 0.001 cent at every scale


def test_check_published_accepts_only_conservative_arrays() -> None:
    ins, market = _book()
    rec = fixed_risk_arrays(risk_arrays(ins, market, GRID, 0.0), 8)
    tol = 3

    def edit(which: str, delta: int) -> FixedRiskArrays:
        rows = [list(r) for r in getattr(rec, which)]
        rows[2][5] += delta
        other = "short" if which == "long" else "long"
        return FixedRiskArrays(rec.scale, **{which: rows, other: getattr(rec, other)})

    assert check_published(rec, rec, 0)
    assert check_published(edit("long", -1000), rec, 0)  # lower long entries: more conservative
    assert check_published(edit("short", +1000), rec, 0)  # higher short entries: likewise
    assert check_published(edit("long", tol), rec, tol)
    assert not check_published(edit("long", tol + 1), rec, tol)
    assert check_published(edit("short", -tol), rec, tol)
    assert not check_published(edit("short", -tol - 1), rec, tol)
    assert published_violations(edit("long", tol + 1), rec, tol) == [
        f"instrument 2 scenario 5: long {rec.long[2][5] + tol + 1} > {rec.long[2][5]} + {tol}"
    ]
    other_scale = fixed_risk_arrays(risk_arrays(ins, market, GRID, 0.0), 9)
    assert not check_published(other_scale, rec, tol)
    assert not check_published(FixedRiskArrays(8, rec.long[:4], rec.short[:4]), rec, tol)


def test_instrument_and_market_validation() -> None:
    with pytest.raises(ValueError):
        Instrument("A", "swap", "X")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Instrument("A", "call", "X", None, 1.0)
    with pytest.raises(ValueError):
        Instrument("A", "call", "X", 100.0, None)
    with pytest.raises(ValueError):
        Instrument("A", "perpetual", "X", expiry=1.0)
    with pytest.raises(ValueError):
        Instrument("A", "future", "X", strike=1.0, expiry=1.0)
    with pytest.raises(ValueError):
        Instrument("A", "perpetual", "X", multiplier=0.0)
    with pytest.raises(ValueError):
        MarketData(0.0, 0.5)
    with pytest.raises(ValueError):
        MarketData(1.0, -0.1)
    with pytest.raises(ValueError, match="no market data"):
        risk_arrays([Instrument("A", "perpetual", "Y")], BTC, GRID, 0.0)
    with pytest.raises(ValueError, match="unique"):
        p = Instrument("A", "perpetual", "BTC")
        risk_arrays([p, p], BTC, GRID, 0.0)


def test_sample_derivatives_price_through_the_adapter() -> None:
    # The parsed input model (exact 1e8 integers) feeds the engine without loss.
    from zksolvency.prover.instruments import sample_derivatives
    from zksolvency.prover.risk import pricing_inputs
    from zksolvency.prover.snapshot import sample_snapshot

    derivs = sample_derivatives(sample_snapshot(20, seed=3))
    instruments, market, as_of = pricing_inputs(derivs)
    arrays = risk_arrays(instruments, market, ScenarioGrid(), as_of)
    assert arrays.shape == (len(derivs.instruments), 16)
    assert np.isfinite(arrays).all()
    perp = [k for k, i in enumerate(instruments) if i.kind == "perpetual"]
    assert perp and all(arrays[k].min() < 0 < arrays[k].max() for k in perp)

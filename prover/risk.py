"""Risk engine for private portfolio margin: SPAN-style scenario P&L per derivative instrument.

For every instrument `i` and scenario `s` the engine computes `R[i][s]`, the USD P&L of a long
position of one contract when the market jumps from today's marks to scenario `s`. An account
holding `q_i` contracts of each instrument is margin-solvent when, for every scenario,
`collateral − debt + Σ_i q_i · R[i][s] ≥ 0`. The circuit checks that inequality on integers, so
the float arrays are published as two integer arrays, rounded down for long holders and up for
short holders, which never understates any position's loss (`fixed_risk_arrays`).

Model, scenario grid, units, rounding and recomputation rules: docs/risk.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .instruments import Derivatives

__all__ = [
    "DEFAULT_RECOMPUTE_REL_TOL",
    "KINDS",
    "FixedRiskArrays",
    "Greeks",
    "Instrument",
    "Kind",
    "MarketData",
    "PortfolioGreeks",
    "Scenario",
    "ScenarioGrid",
    "account_greeks",
    "check_published",
    "fixed_risk_arrays",
    "greeks",
    "position_pnl",
    "position_pnl_float",
    "position_pnl_upper",
    "pricing_inputs",
    "published_violations",
    "recompute_tolerance",
    "risk_arrays",
    "to_fixed",
    "values",
    "worst_case_pnl",
    "year_fraction",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
#: Prices, strikes, multipliers: a float, or a Decimal parsed from a published decimal string.
Number: TypeAlias = float | Decimal
#: A point in time: an aware-or-naive datetime, or a year fraction on any fixed origin.
Time: TypeAlias = datetime | float

Kind = Literal["perpetual", "future", "call", "put"]
KINDS: tuple[str, ...] = get_args(Kind)

SECONDS_PER_YEAR = 365 * 86_400  # ACT/365 fixed
#: Relative error allowed between two float64 recomputations; see `recompute_tolerance`.
DEFAULT_RECOMPUTE_REL_TOL = 1e-12

_PERP, _FUTURE, _CALL, _PUT = 0, 1, 2, 3
_KIND_CODE = {"perpetual": _PERP, "future": _FUTURE, "call": _CALL, "put": _PUT}
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# numpy has no erf and scipy is not a dependency. The platform libm's erfc is accurate to about
# one ulp; erfc (not 1 + erf) keeps full relative precision in the lower tail.
_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _finite(value: Number, what: str) -> float:
    """float(value), refusing NaN and infinities (Decimal converts with correct rounding)."""
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return x


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instrument:
    """A listed derivative; one contract is `multiplier` units of `underlying`.

    Perpetuals have no strike and no expiry, futures an expiry only, calls and puts (European,
    cash-settled) both. `strike` and `multiplier` may be floats or Decimals.
    """

    id: str
    kind: Kind
    underlying: str
    strike: Number | None = None
    expiry: Time | None = None
    multiplier: Number = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if not self.id or not self.underlying:
            raise ValueError("an instrument needs a non-empty id and underlying")
        if _finite(self.multiplier, f"{self.id}: multiplier") <= 0:
            raise ValueError(f"{self.id}: multiplier must be positive")
        option = self.kind in ("call", "put")
        if option:
            if self.strike is None or _finite(self.strike, f"{self.id}: strike") <= 0:
                raise ValueError(f"{self.id}: an option needs a positive strike")
        elif self.strike is not None:
            raise ValueError(f"{self.id}: a {self.kind} has no strike")
        if (self.expiry is None) != (self.kind == "perpetual"):
            need = "has no" if self.expiry is not None else "needs an"
            raise ValueError(f"{self.id}: a {self.kind} {need} expiry")
        if isinstance(self.expiry, float | int):
            _finite(self.expiry, f"{self.id}: expiry")


@dataclass(frozen=True)
class MarketData:
    """Marks for one underlying: spot (USD), flat implied vol (annualised, 0.6 = 60 %), and the
    continuously compounded USD rate used for discounting and futures carry."""

    spot: Number
    vol: Number
    rate: Number = 0.0

    def __post_init__(self) -> None:
        if _finite(self.spot, "spot") <= 0:
            raise ValueError("spot must be positive")
        if _finite(self.vol, "vol") < 0:
            raise ValueError("vol must be non-negative")
        _finite(self.rate, "rate")


def year_fraction(as_of: Time, expiry: Time) -> float:
    """ACT/365 years from `as_of` to `expiry` (negative once expired).

    Both must be datetimes (both naive or both aware) or both year fractions.
    """
    if isinstance(as_of, datetime) and isinstance(expiry, datetime):
        return (expiry - as_of).total_seconds() / SECONDS_PER_YEAR
    if isinstance(as_of, datetime) or isinstance(expiry, datetime):
        raise TypeError("as_of and expiry must both be datetimes or both be year fractions")
    return _finite(expiry, "expiry") - _finite(as_of, "as_of")


# --------------------------------------------------------------------------------------------
# Scenario grid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One market move: price × `price_move` scan ranges, vol × `vol_move` scan ranges, and the
    fraction `weight` of the resulting P&L that counts."""

    index: int
    price_move: float
    vol_move: int
    weight: float

    @property
    def label(self) -> str:
        move = Fraction(self.price_move).limit_denominator(1000)
        sign = "+" if move > 0 else ""
        price = "price unchanged" if move == 0 else f"price {sign}{move}×range"
        vol = {1: "vol up", -1: "vol down", 0: "vol unchanged"}[self.vol_move]
        cover = "" if self.weight == 1.0 else f", {self.weight:.0%} of P&L"
        return f"{price}, {vol}{cover}"


def _frozen_range(value: float | Mapping[str, float], what: str) -> float | Mapping[str, float]:
    items = value.items() if isinstance(value, Mapping) else [("*", value)]
    for key, v in items:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{what} for {key} must be finite and non-negative, got {v!r}")
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else float(value)


@dataclass(frozen=True)
class ScenarioGrid:
    """SPAN-style scenario grid.

    `price_scan_range` is a fraction of spot (0.15 = ±15 %) and `vol_scan_range` absolute vol
    points (0.10 = ±10 vol points), each global or per underlying. The default is CME's 16
    scenarios: for k = 0..price_steps the price moves ±k/price_steps of the range with vol up,
    then vol down, and two extreme moves of ±extreme_multiple ranges with vol unchanged, of which
    only `extreme_coverage` of the P&L counts. `look_ahead_days` ages options and futures by
    that many days in every scenario (SPAN's one-day look-ahead); 0 proves "if the market jumped
    now", which never credits option sellers with time decay.
    """

    price_scan_range: float | Mapping[str, float] = 0.15
    vol_scan_range: float | Mapping[str, float] = 0.10
    extreme_multiple: float = 3.0
    extreme_coverage: float = 0.35
    price_steps: int = 3
    look_ahead_days: float = 0.0

    def __post_init__(self) -> None:
        # Freeze mappings so that a grid cannot change after the arrays were computed from it.
        object.__setattr__(
            self, "price_scan_range", _frozen_range(self.price_scan_range, "price_scan_range")
        )
        object.__setattr__(
            self, "vol_scan_range", _frozen_range(self.vol_scan_range, "vol_scan_range")
        )
        if not (math.isfinite(self.extreme_multiple) and self.extreme_multiple >= 1):
            raise ValueError("extreme_multiple must be at least 1")
        if not 0 <= self.extreme_coverage <= 1:
            raise ValueError("extreme_coverage must be within [0, 1]")
        if self.price_steps < 1:
            raise ValueError("price_steps must be at least 1")
        if not (math.isfinite(self.look_ahead_days) and self.look_ahead_days >= 0):
            raise ValueError("look_ahead_days must be finite and non-negative")

    @property
    def n_scenarios(self) -> int:
        return 4 * self.price_steps + 4

    def scenarios(self) -> tuple[Scenario, ...]:
        """The scenarios in their published order (CME's numbering, from 0)."""
        moves: list[tuple[float, int, float]] = [(0.0, 1, 1.0), (0.0, -1, 1.0)]
        for k in range(1, self.price_steps + 1):
            frac = k / self.price_steps
            moves += [(frac, 1, 1.0), (frac, -1, 1.0), (-frac, 1, 1.0), (-frac, -1, 1.0)]
        e, c = float(self.extreme_multiple), float(self.extreme_coverage)
        moves += [(e, 0, c), (-e, 0, c)]
        return tuple(Scenario(i, p, v, w) for i, (p, v, w) in enumerate(moves))

    def price_range(self, underlying: str) -> float:
        return _lookup(self.price_scan_range, underlying, "price_scan_range")

    def vol_range(self, underlying: str) -> float:
        return _lookup(self.vol_scan_range, underlying, "vol_scan_range")


NO_GRID_LABEL = "no derivatives: every scenario is today's market"


def scenario_labels(grid: ScenarioGrid | None, n_scenarios: int) -> list[str]:
    """The labels of a circuit's scenarios. An epoch without derivatives may have no grid: its
    risk arrays are zero, so each scenario charges nothing beyond the haircuts."""
    if grid is None:
        return [NO_GRID_LABEL] * n_scenarios
    return [sc.label for sc in grid.scenarios()]


def _lookup(value: float | Mapping[str, float], underlying: str, what: str) -> float:
    if not isinstance(value, Mapping):
        return value
    if underlying not in value:
        raise ValueError(f"{what} has no entry for underlying {underlying!r}")
    return float(value[underlying])


# --------------------------------------------------------------------------------------------
# Valuation
# --------------------------------------------------------------------------------------------


def _norm_cdf(x: FloatArray) -> FloatArray:
    return 0.5 * np.asarray(_ERFC(-x / _SQRT2), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class _Book:
    """The instruments as parallel float64 arrays, marked at `as_of`."""

    kind: npt.NDArray[np.int64]
    spot: FloatArray
    vol: FloatArray
    rate: FloatArray
    strike: FloatArray  # 0 for linear instruments (unused)
    tte: FloatArray  # years to expiry; +inf for perpetuals (unused)
    mult: FloatArray
    underlying: tuple[str, ...]

    @classmethod
    def build(
        cls, instruments: Sequence[Instrument], market: Mapping[str, MarketData], as_of: Time
    ) -> _Book:
        ids = [ins.id for ins in instruments]
        if len(set(ids)) != len(ids):
            raise ValueError("instrument ids must be unique")
        rows: list[tuple[int, float, float, float, float, float, float]] = []
        for ins in instruments:
            if ins.underlying not in market:
                raise ValueError(f"{ins.id}: no market data for {ins.underlying!r}")
            m = market[ins.underlying]
            tte = math.inf if ins.expiry is None else year_fraction(as_of, ins.expiry)
            strike = 0.0 if ins.strike is None else float(ins.strike)
            rows.append(
                (
                    _KIND_CODE[ins.kind],
                    float(m.spot),
                    float(m.vol),
                    float(m.rate),
                    strike,
                    tte,
                    float(ins.multiplier),
                )
            )
        cols = np.array(rows, dtype=np.float64).reshape(len(rows), 7).T
        return cls(
            kind=cols[0].astype(np.int64),
            spot=cols[1],
            vol=cols[2],
            rate=cols[3],
            strike=cols[4],
            tte=cols[5],
            mult=cols[6],
            underlying=tuple(ins.underlying for ins in instruments),
        )


def _bs_value(
    call: BoolArray, s: FloatArray, k: FloatArray, t: FloatArray, vol: FloatArray, r: FloatArray
) -> FloatArray:
    """Black-Scholes value per unit of underlying (1-D arrays of one length).

    t ≤ 0 gives intrinsic value; vol·√t = 0 or s = 0 give the deterministic limit
    max(±(s − k·e^{−rt}), 0), which is also the no-arbitrage lower bound of every option.
    """
    sign = np.where(call, 1.0, -1.0)
    tp = np.maximum(t, 0.0)
    kd = k * np.exp(-r * tp)
    sd = vol * np.sqrt(tp)
    value: FloatArray = np.maximum(sign * (s - kd), 0.0)
    smooth = (sd > 0) & (s > 0)
    if smooth.any():
        ss, ks, sds, sg = s[smooth], k[smooth], sd[smooth], sign[smooth]
        d1 = (np.log(ss / ks) + r[smooth] * tp[smooth]) / sds + 0.5 * sds
        d2 = d1 - sds
        # call: S·Φ(d1) − K'·Φ(d2), put: K'·Φ(−d2) − S·Φ(−d1); both are
        # sg·(S·Φ(sg·d1) − K'·Φ(sg·d2)), which needs two erfc calls instead of four.
        bs = sg * (ss * _norm_cdf(sg * d1) - kd[smooth] * _norm_cdf(sg * d2))
        # Clamping to the lower bound only removes rounding noise (BS ≥ it exactly).
        value[smooth] = np.maximum(bs, value[smooth])
    return value


def _unit_values(
    kind: npt.NDArray[np.int64],
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    vol: FloatArray,
    r: FloatArray,
) -> FloatArray:
    """Value per unit of underlying, elementwise over arrays of one shape."""
    out = np.empty(s.shape, dtype=np.float64)
    perp = kind == _PERP
    out[perp] = s[perp]
    fut = kind == _FUTURE
    # Cost of carry, no dividends: F = S·e^{rT}. Futures are marked to market, so the P&L of a
    # move is the undiscounted change in F. Past expiry F = S (awaiting settlement on the index).
    out[fut] = s[fut] * np.exp(r[fut] * np.maximum(t[fut], 0.0))
    opt = (kind == _CALL) | (kind == _PUT)
    out[opt] = _bs_value(kind[opt] == _CALL, s[opt], k[opt], t[opt], vol[opt], r[opt])
    return out


def values(
    instruments: Sequence[Instrument], market: Mapping[str, MarketData], as_of: Time
) -> FloatArray:
    """Model value per contract in USD (futures and perpetuals: the contract's notional)."""
    b = _Book.build(instruments, market, as_of)
    return _unit_values(b.kind, b.spot, b.strike, b.tte, b.vol, b.rate) * b.mult


def risk_arrays(
    instruments: Sequence[Instrument],
    market: Mapping[str, MarketData],
    grid: ScenarioGrid,
    as_of: Time,
) -> FloatArray:
    """R[i][s]: USD P&L of one long contract of instrument i under scenario s, weighted.

    Shape (len(instruments), grid.n_scenarios), rows in the order given, columns in
    `grid.scenarios()` order. Scenario prices are floored at 0; vols at 0.
    """
    b = _Book.build(instruments, market, as_of)
    sc = grid.scenarios()
    n, m = len(instruments), len(sc)
    price_move = np.array([x.price_move for x in sc], dtype=np.float64)
    vol_move = np.array([x.vol_move for x in sc], dtype=np.float64)
    weight = np.array([x.weight for x in sc], dtype=np.float64)
    prange = np.array([grid.price_range(u) for u in b.underlying], dtype=np.float64)
    vrange = np.array([grid.vol_range(u) for u in b.underlying], dtype=np.float64)

    s1 = np.maximum(b.spot[:, None] * (1.0 + price_move[None, :] * prange[:, None]), 0.0)
    v1 = np.maximum(b.vol[:, None] + vol_move[None, :] * vrange[:, None], 0.0)
    t1 = np.broadcast_to(b.tte[:, None] - grid.look_ahead_days / 365.0, (n, m))

    def wide(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.broadcast_to(a[:, None], (n, m))

    base = _unit_values(b.kind, b.spot, b.strike, b.tte, b.vol, b.rate)
    moved = _unit_values(wide(b.kind), s1, wide(b.strike), t1, v1, wide(b.rate))
    # Weighting each instrument is exact for SPAN's "count 35 % of the portfolio's loss": the
    # portfolio P&L is linear in the instruments' P&L.
    risk: FloatArray = (moved - base[:, None]) * b.mult[:, None] * weight[None, :]
    return risk


# --------------------------------------------------------------------------------------------
# Greeks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Greeks:
    """Sensitivities per contract (USD), arrays aligned with the instruments.

    delta: per 1 USD of underlying; gamma: delta per 1 USD; vega: per 1.00 of vol (divide by
    100 for one vol point); theta: per year of calendar time (divide by 365 for one day).
    """

    underlying: tuple[str, ...]
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray


@dataclass(frozen=True)
class PortfolioGreeks:
    """Σ q_i · greek_i over one underlying's instruments, in the units of `Greeks`."""

    delta: float
    gamma: float
    vega: float
    theta: float


def greeks(
    instruments: Sequence[Instrument], market: Mapping[str, MarketData], as_of: Time
) -> Greeks:
    """Analytic greeks at today's marks. At expiry or zero vol, those of the deterministic
    payoff (the one-sided derivatives at its kink are reported as 0)."""
    b = _Book.build(instruments, market, as_of)
    n = len(instruments)
    delta, gamma, vega, theta = (np.zeros(n) for _ in range(4))

    delta[b.kind == _PERP] = 1.0
    fut = b.kind == _FUTURE
    tf = np.maximum(b.tte[fut], 0.0)
    carry = np.exp(b.rate[fut] * tf)
    delta[fut] = carry
    theta[fut] = np.where(b.tte[fut] > 0, -b.rate[fut] * b.spot[fut] * carry, 0.0)

    opt = (b.kind == _CALL) | (b.kind == _PUT)
    s, k, vol, r = b.spot[opt], b.strike[opt], b.vol[opt], b.rate[opt]
    t = np.maximum(b.tte[opt], 0.0)
    sign = np.where(b.kind[opt] == _CALL, 1.0, -1.0)
    kd = k * np.exp(-r * t)
    sd = vol * np.sqrt(t)
    itm = sign * (s - kd) > 0
    d_o = np.where(itm, sign, 0.0)
    g_o, v_o = np.zeros(s.shape), np.zeros(s.shape)
    th_o = np.where(itm & (t > 0), -sign * r * kd, 0.0)
    smooth = (sd > 0) & (s > 0)
    if smooth.any():
        ss, ts, sds, sg, vs = s[smooth], t[smooth], sd[smooth], sign[smooth], vol[smooth]
        kds = kd[smooth]
        d1 = (np.log(ss / k[smooth]) + r[smooth] * ts) / sds + 0.5 * sds
        d2 = d1 - sds
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
        d_o[smooth] = sg * _norm_cdf(sg * d1)
        g_o[smooth] = pdf / (ss * sds)
        v_o[smooth] = ss * pdf * np.sqrt(ts)
        th_o[smooth] = -ss * pdf * vs / (2.0 * np.sqrt(ts)) - sg * r[smooth] * kds * _norm_cdf(
            sg * d2
        )
    delta[opt], gamma[opt], vega[opt], theta[opt] = d_o, g_o, v_o, th_o
    return Greeks(b.underlying, delta * b.mult, gamma * b.mult, vega * b.mult, theta * b.mult)


def account_greeks(quantities: Sequence[float], g: Greeks) -> dict[str, PortfolioGreeks]:
    """Σ q_i · greek_i per underlying (deltas of different coins do not add up)."""
    q = np.asarray(quantities, dtype=np.float64)
    if q.shape != g.delta.shape:
        raise ValueError(f"expected {g.delta.shape[0]} quantities, got {q.shape}")
    out: dict[str, PortfolioGreeks] = {}
    under = np.array(g.underlying, dtype=object)
    for u in sorted(set(g.underlying)):
        sel = under == u
        out[u] = PortfolioGreeks(
            *(float(np.dot(q[sel], a[sel])) for a in (g.delta, g.gamma, g.vega, g.theta))
        )
    return out


# --------------------------------------------------------------------------------------------
# Integer arrays for the circuit
# --------------------------------------------------------------------------------------------


def _to_int(x: float, unit: int, up: bool) -> int:
    """floor (or ceil) of x·unit, exactly: the float's exact binary value, integer arithmetic."""
    if not math.isfinite(x):
        raise ValueError(f"risk array entry {x!r} is not finite")
    num, den = x.as_integer_ratio()
    num *= unit
    return -(-num // den) if up else num // den


def _fixed(risk: npt.ArrayLike, scale: int, up: bool) -> list[list[int]]:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
        raise ValueError("scale must be a non-negative int")
    arr = np.asarray(risk, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"risk arrays must be 2-D, got shape {arr.shape}")
    unit = 10**scale
    return [[_to_int(x, unit, up) for x in row] for row in arr.tolist()]


def to_fixed(risk: npt.ArrayLike, scale: int) -> list[list[int]]:
    """floor(R·10^scale) entry by entry: the array long holders (q ≥ 0) are charged with."""
    return _fixed(risk, scale, up=False)


@dataclass(frozen=True)
class FixedRiskArrays:
    """The published integer risk arrays at 10^scale units per USD.

    `long[i][s] = floor(R·10^scale)` applies to long positions, `short[i][s] = ceil(R·10^scale)`
    to short ones, so q·R is rounded down for either sign. Published arrays may be more
    conservative (long lower, short higher); `check_published` accepts exactly that.
    """

    scale: int
    long: Sequence[Sequence[int]]  # stored as tuples of tuples
    short: Sequence[Sequence[int]]

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale < 0:
            raise ValueError("scale must be a non-negative int")
        object.__setattr__(self, "long", _int_matrix(self.long, "long"))
        object.__setattr__(self, "short", _int_matrix(self.short, "short"))
        if self.shape != (len(self.short), len(self.short[0]) if self.short else 0):
            raise ValueError("long and short arrays must have the same shape")

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.long), len(self.long[0]) if self.long else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "long": [list(r) for r in self.long],
            "short": [list(r) for r in self.short],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FixedRiskArrays:
        return cls(scale=data["scale"], long=data["long"], short=data["short"])


def _int_matrix(rows: Iterable[Iterable[int]], what: str) -> tuple[tuple[int, ...], ...]:
    out = tuple(tuple(row) for row in rows)
    width = {len(r) for r in out}
    if len(width) > 1:
        raise ValueError(f"{what}: rows of different lengths")
    for row in out:
        for v in row:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{what}: entries must be ints, got {v!r}")
    return out


def fixed_risk_arrays(risk: npt.ArrayLike, scale: int) -> FixedRiskArrays:
    """Both integer arrays: floor for long holders, ceil for short holders."""
    return FixedRiskArrays(scale, _fixed(risk, scale, up=False), _fixed(risk, scale, up=True))


def _signed_pnl(q: Sequence[int], fixed: FixedRiskArrays, upper: bool) -> list[int]:
    n, m = fixed.shape
    if len(q) != n:
        raise ValueError(f"expected {n} quantities, got {len(q)}")
    total = [0] * m
    for qi, lo, hi in zip(q, fixed.long, fixed.short, strict=True):
        if isinstance(qi, bool) or not isinstance(qi, int):
            raise ValueError(f"quantities are whole contracts, got {qi!r}")
        row = lo if (qi >= 0) != upper else hi
        for s in range(m):
            total[s] += qi * row[s]
    return total


def position_pnl(q: Sequence[int], fixed: FixedRiskArrays) -> list[int]:
    """Conservative integer P&L per scenario of a portfolio: Σ_i q_i⁺·long[i] − q_i⁻·short[i].

    This is what the circuit computes with each quantity split into a non-negative long part
    q⁺ and short part q⁻ (q = q⁺ − q⁻). It is ≤ Σ q_i·R[i][s]·10^scale for every scenario.
    """
    return _signed_pnl(q, fixed, upper=False)


def position_pnl_upper(q: Sequence[int], fixed: FixedRiskArrays) -> list[int]:
    """The opposite bound, Σ_i q_i⁺·short[i] − q_i⁻·long[i] ≥ Σ q_i·R[i][s]·10^scale: for sums
    that must never be understated, such as what the exchange could owe its users."""
    return _signed_pnl(q, fixed, upper=True)


def worst_case_pnl(
    q: Sequence[int], fixed: FixedRiskArrays, groups: Sequence[str] | None = None
) -> int:
    """The conservative integer P&L the margin check uses (≥ 0 after collateral − debt).

    Without `groups`: min_s Σ_i, all underlyings moving together in each scenario, which
    implicitly nets them as perfectly correlated. With `groups` (the row's underlying, say):
    Σ_g min_s Σ_{i∈g}, each group scanned on its own as SPAN does before any inter-commodity
    credit. The grouped value is never larger, since a sum of minima ≤ the minimum of sums.
    """
    if groups is None:
        return min(position_pnl(q, fixed), default=0)
    if len(groups) != len(q):
        raise ValueError(f"expected {len(q)} group labels, got {len(groups)}")
    total = 0
    for g in sorted(set(groups)):
        rows = [i for i, x in enumerate(groups) if x == g]
        sub = FixedRiskArrays(
            fixed.scale, [fixed.long[i] for i in rows], [fixed.short[i] for i in rows]
        )
        total += min(position_pnl([q[i] for i in rows], sub), default=0)
    return total


def position_pnl_float(q: npt.ArrayLike, risk: FloatArray) -> FloatArray:
    """Float reference: Σ_i q_i·R[i][s] in USD, per scenario."""
    qa = np.asarray(q, dtype=np.float64)
    if qa.shape != (risk.shape[0],):
        raise ValueError(f"expected {risk.shape[0]} quantities, got shape {qa.shape}")
    out: FloatArray = qa @ risk
    return out


# --------------------------------------------------------------------------------------------
# Third-party recomputation
# --------------------------------------------------------------------------------------------


def recompute_tolerance(
    instruments: Sequence[Instrument],
    market: Mapping[str, MarketData],
    grid: ScenarioGrid,
    as_of: Time,
    scale: int,
    rel: float = DEFAULT_RECOMPUTE_REL_TOL,
) -> int:
    """Integer units by which an honest recomputation on another platform may differ.

    Every value entering a P&L is at most M_i = multiplier·(top scenario spot·e^{max(r,0)·T} +
    strike). libm and SIMD exp/log/erfc differ by a few ulps (~1e-15 relative), so two float64
    runs agree to well within rel·M_i USD; one more unit covers floor/ceil landing on either
    side of an integer boundary.
    """
    if not instruments:
        return 1
    b = _Book.build(instruments, market, as_of)
    prange = np.array([grid.price_range(u) for u in b.underlying], dtype=np.float64)
    top = b.spot * (1.0 + grid.extreme_multiple * prange)
    t = np.where(b.kind == _FUTURE, np.maximum(b.tte, 0.0), 0.0)
    bound = b.mult * (top * np.exp(np.maximum(b.rate, 0.0) * t) + b.strike)
    unit: int = 10**scale
    return math.ceil(rel * float(bound.max()) * unit) + 1


def published_violations(
    published: FixedRiskArrays, recomputed: FixedRiskArrays, tolerance: int
) -> list[str]:
    """Why `published` is not at least as conservative as `recomputed` (empty when it is).

    A published long entry may exceed the recomputed one by at most `tolerance` units, a
    published short entry may fall below it by at most `tolerance`; anything more conservative
    is accepted.
    """
    if tolerance < 0:
        raise ValueError("tolerance must be non-negative")
    if published.scale != recomputed.scale:
        return [f"scale {published.scale} != recomputed scale {recomputed.scale}"]
    if published.shape != recomputed.shape:
        return [f"shape {published.shape} != recomputed shape {recomputed.shape}"]
    problems: list[str] = []
    for i, (pl, ps, rl, rs) in enumerate(
        zip(published.long, published.short, recomputed.long, recomputed.short, strict=True)
    ):
        for s in range(len(pl)):
            if pl[s] > rl[s] + tolerance:
                problems.append(
                    f"instrument {i} scenario {s}: long {pl[s]} > {rl[s]} + {tolerance}"
                )
            if ps[s] < rs[s] - tolerance:
                problems.append(
                    f"instrument {i} scenario {s}: short {ps[s]} < {rs[s]} - {tolerance}"
                )
    return problems


def check_published(
    published: FixedRiskArrays, recomputed: FixedRiskArrays, tolerance: int
) -> bool:
    """True when the published arrays are at least as conservative as a recomputation, up to
    `tolerance` integer units (see `recompute_tolerance`)."""
    return not published_violations(published, recomputed, tolerance)


def pricing_inputs(
    derivatives: Derivatives,
) -> tuple[list[Instrument], dict[str, MarketData], Time]:
    """The engine's inputs from parsed derivatives files (exact 1e8 integers → Decimals).

    prover/instruments.py owns the input format; this module prices. Decimal conversion keeps
    every party's float64 inputs identical for the same published strings.
    """
    e8 = Decimal(10**8)
    instruments = [
        Instrument(
            id=i.id,
            kind=i.kind,
            underlying=i.underlying,
            strike=None if i.strike_e8 is None else Decimal(i.strike_e8) / e8,
            expiry=i.expiry,
            multiplier=Decimal(i.multiplier_e8) / e8,
        )
        for i in derivatives.instruments
    ]
    market = {
        m.underlying: MarketData(
            spot=Decimal(m.spot_e8) / e8, vol=Decimal(m.vol_e8) / e8, rate=Decimal(m.rate_e8) / e8
        )
        for m in derivatives.market
    }
    return instruments, market, derivatives.as_of

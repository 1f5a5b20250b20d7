"""The epoch's public context as published in the bundle, and its independent recomputation.

The manifest carries everything the context hash commits to (prices, haircut tiers and caps, the
risk arrays) together with the inputs they derive from (the haircut rates, the instruments, the
market data and the scenario grid). `recompute_context` rebuilds the hash from the published
numbers, checking every derived integer exactly; `risk_problems` reprices the instruments and
reports risk entries less conservative than the recomputation allows.
"""

from __future__ import annotations

import itertools
from typing import Any

from .commitments import RISK_SCALE, SHORTFALL, STRICT, VALUE_DECIMALS, weight
from .haircuts import tier_weights
from .instruments import Derivatives, Instrument, MarketData, format_utc, parse_utc
from .margin import MarginContext
from .risk import (
    ScenarioGrid,
    fixed_risk_arrays,
    pricing_inputs,
    published_violations,
    recompute_tolerance,
    risk_arrays,
    scenario_labels,
)
from .snapshot import format_amount
from .witness import EpochPlan

MODES = {STRICT: "strict", SHORTFALL: "shortfall"}


class ContextError(ValueError):
    """The published context is inconsistent with itself or with its inputs."""


def grid_json(grid: ScenarioGrid | None) -> dict[str, Any] | None:
    if grid is None:
        return None

    def rng(v: Any) -> Any:
        return dict(v) if not isinstance(v, float) else v

    return {
        "price_scan_range": rng(grid.price_scan_range),
        "vol_scan_range": rng(grid.vol_scan_range),
        "extreme_multiple": grid.extreme_multiple,
        "extreme_coverage": grid.extreme_coverage,
        "price_steps": grid.price_steps,
        "look_ahead_days": grid.look_ahead_days,
        "scenarios": [sc.label for sc in grid.scenarios()],
    }


def grid_from_json(g: dict[str, Any] | None) -> ScenarioGrid | None:
    if g is None:
        return None
    return ScenarioGrid(
        price_scan_range=g["price_scan_range"],
        vol_scan_range=g["vol_scan_range"],
        extreme_multiple=float(g["extreme_multiple"]),
        extreme_coverage=float(g["extreme_coverage"]),
        price_steps=int(g["price_steps"]),
        look_ahead_days=float(g["look_ahead_days"]),
    )


def published_scenarios(context: dict[str, Any]) -> list[str]:
    """The scenario labels of a published context; a context without derivatives may publish no
    grid, and then every scenario is today's market."""
    r = context["risk"]
    if r.get("grid") is not None:
        return [str(x) for x in r["grid"]["scenarios"]]
    arrays = r.get("arrays") or [[]]
    return scenario_labels(None, len(arrays[0]))


def _instrument_json(i: Instrument) -> dict[str, Any]:
    return {
        "id": i.id,
        "kind": i.kind,
        "underlying": i.underlying,
        "strike_e8": None if i.strike_e8 is None else str(i.strike_e8),
        "expiry": None if i.expiry is None else format_utc(i.expiry),
        "multiplier_e8": str(i.multiplier_e8),
    }


def _market_json(m: MarketData) -> dict[str, Any]:
    return {
        "underlying": m.underlying,
        "spot_e8": str(m.spot_e8),
        "vol_e8": str(m.vol_e8),
        "rate_e8": str(m.rate_e8),
    }


def context_json(plan: EpochPlan) -> dict[str, Any]:
    """The manifest's "context": every committed number, and what it was computed from."""
    c = plan.context
    m = c.margin
    d = c.inputs.derivatives
    assets = []
    for i, a in enumerate(c.assets):
        assets.append(
            {
                "symbol": a.symbol,
                "decimals": a.decimals,
                "price_usd": format_amount(a.price_e8, 8),
                "price_e8": str(a.price_e8),
                "weight": str(m.weights[i]),
                "tier_rates_bps": list(c.tier_rates[i]),
                "cap_bps": c.cap_bps[i],
                "cap_limit": str(m.cap_limits[i]),
                "exchange_brackets": [
                    {"up_to": None if b is None else str(b), "cap_bps": cap}
                    for b, cap in c.brackets[i]
                ],
            }
        )
    return {
        "epoch": c.epoch,
        "ctx_hash": str(c.ctx_hash),
        "value_decimals": VALUE_DECIMALS,
        "mode": MODES[m.mode],
        "insurance_fund": str(c.inputs.insurance_fund),
        "assets": assets,
        "weights": [str(w) for w in m.weights],
        "tier_weights": [[str(w) for w in row] for row in m.tier_weights],
        "tier_widths": [[str(w) for w in row] for row in m.tier_widths],
        "cap_limits": [str(x) for x in m.cap_limits],
        "risk": {
            "scale": RISK_SCALE,
            "grid": grid_json(c.grid),
            "as_of": None if d is None else format_utc(d.as_of),
            "instruments": [] if d is None else [_instrument_json(i) for i in d.instruments],
            "market": [] if d is None else [_market_json(x) for x in d.market],
            "arrays": [[str(v) for v in row] for row in m.risk],
        },
    }


def _ints(xs: Any, what: str) -> list[int]:
    try:
        return [int(x) for x in xs]
    except (TypeError, ValueError) as exc:
        raise ContextError(f"context {what}: not a list of integers") from exc


def margin_context(context: dict[str, Any], params: dict[str, Any]) -> MarginContext:
    """The committed arrays, after checking every derived integer against its inputs: weights
    from prices, tier weights from weights, rates and the cap, the cap from the brackets."""
    n, k = int(params["n_assets"]), int(params["n_tiers"])
    assets = context["assets"]
    weights = _ints(context["weights"], "weights")
    tws = [_ints(r, "tier_weights") for r in context["tier_weights"]]
    widths = [_ints(r, "tier_widths") for r in context["tier_widths"]]
    caps = _ints(context["cap_limits"], "cap_limits")
    if not len(assets) <= n == len(weights) == len(tws) == len(widths) == len(caps):
        raise ContextError("the context's per-asset lists do not match the circuit's asset count")
    for i, a in enumerate(assets):
        sym = a["symbol"]
        w = weight(int(a["price_e8"]), int(a["decimals"]))
        if int(a["weight"]) != w or weights[i] != w:
            raise ContextError(f"asset {sym}: published weight disagrees with its price")
        rates = _ints(a["tier_rates_bps"], f"{sym} tier rates")
        cap = int(a["cap_bps"])
        if len(rates) != k or any(x < y for x, y in itertools.pairwise(rates)):
            raise ContextError(f"asset {sym}: tier rates must be {k} non-increasing rates")
        if tws[i] != tier_weights(w, rates, cap):
            raise ContextError(f"asset {sym}: tier weights disagree with the weight and rates")
        brackets = [
            (None if b["up_to"] is None else int(b["up_to"]), int(b["cap_bps"]))
            for b in a["exchange_brackets"]
        ]
        # Caps must fall as brackets grow: then the cap of any bracket the total fits under
        # (all the circuit checks) is at most the cap of the first one, the right one.
        bounds = [b for b, _ in brackets]
        if (
            not brackets
            or bounds[-1] is not None
            or any(b is None for b in bounds[:-1])
            or any(x >= y for x, y in itertools.pairwise(bounds[:-1]))  # type: ignore[operator]
            or any(x < y for (_, x), (_, y) in itertools.pairwise(brackets))
        ):
            raise ContextError(
                f"asset {sym}: exchange brackets must grow, end unbounded, and cap less as "
                "they grow"
            )
        limit = 2 ** (64 + int(params["tree_depth"])) - 1
        if not any(cap == c and caps[i] == (limit if b is None else b) for b, c in brackets):
            raise ContextError(f"asset {sym}: cap and cap limit are not one of its brackets")
    for i in range(len(assets), n):
        if weights[i] or any(tws[i]) or any(widths[i]) or caps[i]:
            raise ContextError(f"asset slot {i} is unused but not zero")
    mode = {v: key for key, v in MODES.items()}.get(context["mode"])
    if mode is None:
        raise ContextError(f"unknown mode {context['mode']!r}")
    risk = [_ints(r, "risk arrays") for r in context["risk"]["arrays"]]
    try:
        return MarginContext(mode, weights, tws, widths, caps, risk)
    except ValueError as exc:
        raise ContextError(str(exc)) from exc


def recompute_context(context: dict[str, Any], params: dict[str, Any]) -> int:
    """The context hash from the published numbers, as the circuits compute it."""
    m = margin_context(context, params)
    try:
        return m.hash(int(context["epoch"]), int(params["tree_depth"]), int(params["batch_levels"]))
    except ValueError as exc:
        raise ContextError(str(exc)) from exc


def published_derivatives(context: dict[str, Any]) -> Derivatives | None:
    r = context["risk"]
    if not r["instruments"]:
        return None
    instruments = tuple(
        Instrument(
            id=i["id"],
            kind=i["kind"],
            underlying=i["underlying"],
            strike_e8=None if i["strike_e8"] is None else int(i["strike_e8"]),
            expiry=None if i["expiry"] is None else parse_utc(i["expiry"]),
            multiplier_e8=int(i["multiplier_e8"]),
        )
        for i in r["instruments"]
    )
    market = tuple(
        MarketData(x["underlying"], int(x["spot_e8"]), int(x["vol_e8"]), int(x["rate_e8"]))
        for x in r["market"]
    )
    return Derivatives(instruments, market, parse_utc(r["as_of"]), {})


def risk_problems(context: dict[str, Any], limit: int = 10) -> list[str]:
    """Reprice the published instruments under the published grid. One array serves both signs,
    so an entry must match floor(R) up to float tolerance: higher flatters longs, lower
    flatters shorts."""
    r = context["risk"]
    if int(r["scale"]) != RISK_SCALE:
        return [f"risk scale {r['scale']} is not {RISK_SCALE}"]
    arrays = [_ints(row, "risk arrays") for row in r["arrays"]]
    d = published_derivatives(context)
    grid = grid_from_json(r["grid"])
    used = 0 if d is None else len(d.instruments)
    if d is not None and grid is None:
        return ["instruments are published without a scenario grid to price them"]
    problems = [
        f"instrument slot {i} is unused but its risk array is not zero"
        for i in range(used, len(arrays))
        if any(arrays[i])
    ]
    if d is not None and grid is not None:
        instruments, market, as_of = pricing_inputs(d)
        fixed = fixed_risk_arrays(risk_arrays(instruments, market, grid, as_of), RISK_SCALE)
        tol = recompute_tolerance(instruments, market, grid, as_of, RISK_SCALE)
        # The circuit charges a long at L and a short at L + 1 (the "- sum |q|" term), so a
        # published L may be neither higher than floor(R) nor lower than ceil(R) - 1.
        rows = arrays[:used]
        published = type(fixed)(RISK_SCALE, rows, [[v + 1 for v in row] for row in rows])
        problems += published_violations(published, fixed, tol)
    return problems[:limit]

"""Python mirror of the margin rule (circuits/lib/margin.circom) and the epoch's margin context.

Every number here is an exact integer in the circuit's units (docs/margin-design.md): values in
USD * 10^26, quantities in 10^-8 contracts, risk entries L[i][s] = floor(R[i][s] * 10^18).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .commitments import SHORTFALL, STRICT, context_preimage
from .haircuts import tier_split
from .poseidon import hash_list


@dataclass(frozen=True)
class MarginContext:
    """The margin half of an epoch's public context, padded to the circuit's shape."""

    mode: int
    # Any sequences are accepted and stored as tuples.
    weights: Sequence[int]  # one per asset slot
    tier_weights: Sequence[Sequence[int]]  # [asset][tier]
    tier_widths: Sequence[Sequence[int]]  # [asset][tier], every tier but the last
    cap_limits: Sequence[int]  # [asset], smallest units
    risk: Sequence[Sequence[int]]  # [instrument][scenario], signed

    def __post_init__(self) -> None:
        if self.mode not in (STRICT, SHORTFALL):
            raise ValueError("mode must be STRICT or SHORTFALL")
        for name in ("weights", "cap_limits"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("tier_weights", "tier_widths", "risk"):
            object.__setattr__(self, name, tuple(tuple(r) for r in getattr(self, name)))

    @property
    def n_assets(self) -> int:
        return len(self.weights)

    @property
    def n_tiers(self) -> int:
        return len(self.tier_weights[0])

    @property
    def n_instruments(self) -> int:
        return len(self.risk)

    @property
    def n_scenarios(self) -> int:
        return len(self.risk[0])

    def preimage(self, epoch: int, tree_depth: int, batch_levels: int) -> list[int]:
        return context_preimage(
            epoch,
            tree_depth,
            batch_levels,
            self.mode,
            self.weights,
            self.tier_weights,
            self.tier_widths,
            self.cap_limits,
            self.risk,
        )

    def hash(self, epoch: int, tree_depth: int, batch_levels: int) -> int:
        return hash_list(self.preimage(epoch, tree_depth, batch_levels))

    def circuit_inputs(self, epoch: int) -> dict[str, object]:
        """The context's named circuit inputs (as ints; negative risk entries stay negative,
        which the witness calculators read as p - |L|)."""
        return {
            "epoch": epoch,
            "mode": self.mode,
            "weights": list(self.weights),
            "tierWeights": [list(r) for r in self.tier_weights],
            "tierWidths": [list(r) for r in self.tier_widths],
            "capLimit": list(self.cap_limits),
            "risk": [list(r) for r in self.risk],
        }


def credit(equity: Sequence[int], ctx: MarginContext) -> int:
    """Haircut-weighted collateral value: Σ_a Σ_t split[a][t] · W[a][t] at the best split (the
    tiers filled in order: haircuts.tier_split)."""
    return sum(
        x * w
        for a, amount in enumerate(equity)
        for x, w in zip(tier_split(amount, ctx.tier_widths[a]), ctx.tier_weights[a], strict=True)
    )


def debt_value(debt: Sequence[int], ctx: MarginContext) -> int:
    return sum(d * w for d, w in zip(debt, ctx.weights, strict=True))


def margin_values(
    equity: Sequence[int], debt: Sequence[int], qty: Sequence[int], ctx: MarginContext
) -> list[int]:
    """credit − debt value + Σ_i q_i·L[i][s] − Σ_i |q_i| for every scenario s (value units).

    The `− Σ|q_i|` term lets floor-rounded L serve shorts too (ceil − floor ≤ 1), so this is
    never above the exact P&L of the positions.
    """
    if len(qty) != ctx.n_instruments:
        raise ValueError(f"expected {ctx.n_instruments} quantities, got {len(qty)}")
    base = credit(equity, ctx) - debt_value(debt, ctx) - sum(abs(q) for q in qty)
    held = [(q, ctx.risk[i]) for i, q in enumerate(qty) if q]
    if not held:  # most accounts: no positions, the same value in every scenario
        return [base] * ctx.n_scenarios
    return [base + sum(q * row[s] for q, row in held) for s in range(ctx.n_scenarios)]


def headroom(
    equity: Sequence[int], debt: Sequence[int], qty: Sequence[int], ctx: MarginContext
) -> tuple[int, int]:
    """(worst margin value, index of the scenario giving it): the account passes strictly
    when the value is ≥ 0; otherwise its shortfall is minus the value."""
    values = margin_values(equity, debt, qty, ctx)
    worst = min(range(len(values)), key=values.__getitem__)
    return values[worst], worst


def headroom_fn(
    ctx: MarginContext,
) -> Callable[[Sequence[int], Sequence[int], Sequence[int]], tuple[int, int]]:
    """`headroom` with the context's constants folded in, for a loop over every account of an
    epoch. The credit is taken as W_0·e + Σ_t (W_t − W_{t−1})·max(e − B_t, 0) over the tier
    bounds B_t, which equals the tier fill's Σ split·W (haircuts.tier_excess) and is what the
    circuit computes. Amounts are not checked again (the snapshot did), and equity and debt may
    leave out the padding slots, whose amounts are zero."""
    rows = []
    for a in range(len(ctx.weights)):
        w, bound, steps = ctx.tier_weights[a], 0, []
        for t, width in enumerate(ctx.tier_widths[a]):
            bound += width
            if w[t + 1] != w[t]:
                steps.append((bound, w[t + 1] - w[t]))
        rows.append((w[0], tuple(steps), ctx.weights[a]))
    risk, n_scenarios, n_instruments = ctx.risk, ctx.n_scenarios, ctx.n_instruments

    def fn(equity: Sequence[int], debt: Sequence[int], qty: Sequence[int]) -> tuple[int, int]:
        base = 0
        for (w0, steps, wd), e, d in zip(rows, equity, debt, strict=False):
            base += w0 * e - wd * d
            for bound, dw in steps:
                if e > bound:
                    base += dw * (e - bound)
        if not any(qty):
            return base, 0
        if len(qty) != n_instruments:
            raise ValueError(f"expected {n_instruments} quantities, got {len(qty)}")
        base -= sum(abs(q) for q in qty)
        held = [(q, risk[i]) for i, q in enumerate(qty) if q]
        values = [base + sum(q * row[s] for q, row in held) for s in range(n_scenarios)]
        worst = min(range(n_scenarios), key=values.__getitem__)
        return values[worst], worst

    return fn


def shortfall(
    equity: Sequence[int], debt: Sequence[int], qty: Sequence[int], ctx: MarginContext
) -> int:
    value, _ = headroom(equity, debt, qty, ctx)
    return max(0, -value)

"""ContextHash, ContextBounds, TotalsHash and StateHash (circuits/lib/state.circom) against
prover/commitments.py context_hash, totals_hash and state_hash and the bounds of
docs/margin-design.md ("Units")."""

from __future__ import annotations

import random
from typing import Any

import pytest
from harness import (
    SMALL,
    Circuit,
    RawContext,
    assert_at,
    fired_in,
    random_context,
    raw_totals_hash,
)
from zksolvency.prover.commitments import (
    CTX_TAG,
    RISK_BITS,
    SHORTFALL,
    WEIGHT_BITS,
    context_hash,
    context_preimage,
    state_hash,
    totals_hash,
)
from zksolvency.prover.field import P

# The unit instances' parameters (harness.CIRCUITS): ContextHash(4, 1, 2, 2, 8, 2),
# ContextBounds(2, 2, 8, 2, 128, 128, 68), TotalsHash(4, 68).
DEPTH, LEVELS, N_ASSETS = SMALL.tree_depth, SMALL.batch_levels, SMALL.n_assets
N_INSTR, N_SCEN, N_TIERS = SMALL.n_instruments, SMALL.n_scenarios, SMALL.n_tiers
TOTAL_BITS = 64 + DEPTH
MAX_WEIGHT = (1 << WEIGHT_BITS) - 1
RISK_MAX = (1 << RISK_BITS) - 1
RISK_MIN = -(1 << RISK_BITS)
MODE_CHECK = assert_at("ContextBounds", "lib/state.circom", "mode * (mode - 1) === 0;")


def ctx_of(seed: int, mode: int = 0) -> RawContext:
    return random_context(random.Random(seed), SMALL, epoch=seed, mode=mode)


def hash_inputs(ctx: RawContext) -> dict[str, Any]:
    return ctx.inputs()


def bounds_inputs(ctx: RawContext) -> dict[str, Any]:
    i = ctx.inputs()
    del i["epoch"]
    return i


def mirror_hash(ctx: RawContext) -> int:
    return context_hash(
        ctx.epoch,
        ctx.tree_depth,
        ctx.batch_levels,
        ctx.mode,
        ctx.weights,
        ctx.tier_weights,
        ctx.tier_widths,
        ctx.cap_limits,
        ctx.risk,
    )


# --- ContextHash -----------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "mode"), [(1, 0), (2, 1), (3, 0)])
def test_context_hash_matches_mirror(context: Circuit, seed: int, mode: int) -> None:
    """Random in-range contexts, negative risk entries included (hashed as p - |L|)."""
    ctx = ctx_of(seed, mode)
    assert any(v < 0 for row in ctx.risk for v in row)
    w = context.expect_pass(hash_inputs(ctx))
    assert context.get(w, "out") == mirror_hash(ctx) == ctx.hash()


def test_context_preimage_layout() -> None:
    """The unguarded twin lays the context out like commitments.context_preimage: tag, epoch,
    shape (depth, levels, N, P, S, K), mode, then the arrays row by row."""
    ctx = ctx_of(4)
    expected = context_preimage(
        ctx.epoch,
        DEPTH,
        LEVELS,
        ctx.mode,
        ctx.weights,
        ctx.tier_weights,
        ctx.tier_widths,
        ctx.cap_limits,
        ctx.risk,
    )
    assert ctx.preimage() == expected
    assert expected[:9] == [
        CTX_TAG,
        ctx.epoch,
        DEPTH,
        LEVELS,
        N_ASSETS,
        N_INSTR,
        N_SCEN,
        N_TIERS,
        0,
    ]
    assert len(expected) == 9 + N_ASSETS * (2 * N_TIERS + 1) + N_INSTR * N_SCEN


def _bumped(ctx: RawContext, where: str) -> RawContext:
    out = ctx.copy()
    if where == "epoch":
        out.epoch += 1
    elif where == "mode":
        out.mode = 1 - out.mode
    elif where == "weight":
        out.weights[1] += 1
    elif where == "tier weight":
        out.tier_weights[0][1] += 1
    elif where == "tier width":
        out.tier_widths[1][0] += 1
    elif where == "cap limit":
        out.cap_limits[0] -= 1
    elif where == "risk sign":
        out.risk[1][5] = -out.risk[1][5] or 1
    elif where == "risk entry":
        out.risk[0][7] += 1
    elif where == "risk swap":
        out.risk[0], out.risk[1] = out.risk[1], out.risk[0]
    else:  # "scenario order"
        out.risk[0] = [*out.risk[0][1:], out.risk[0][0]]
    return out


CHANGES = [
    "epoch",
    "mode",
    "weight",
    "tier weight",
    "tier width",
    "cap limit",
    "risk sign",
    "risk entry",
    "risk swap",
    "scenario order",
]


@pytest.mark.parametrize("where", CHANGES)
def test_context_binds_every_entry(context: Circuit, where: str) -> None:
    """Every entry of the context is hashed, in place: a batch priced with any other number
    (another risk entry, its sign, two instruments or scenarios swapped) opens another hash."""
    ctx = ctx_of(5)
    ctx.risk[0][0], ctx.risk[1][1] = 11, 22  # the rotations and swaps below change something
    base = context.get(context.expect_pass(hash_inputs(ctx)), "out")
    other = _bumped(ctx, where)
    got = context.get(context.expect_pass(hash_inputs(other)), "out")
    assert got != base and got == other.hash()


def test_context_hash_only_hashes(context: Circuit) -> None:
    """ContextHash checks no range: out-of-range entries hash like any field element. The
    solvency circuit (ContextBounds) refuses them; see test_context_bounds_* below."""
    ctx = ctx_of(6)
    ctx.weights[0] = 1 << 200
    ctx.risk[0][0] = 1 << 130
    ctx.mode = 2
    w = context.expect_pass(hash_inputs(ctx))
    assert context.get(w, "out") == ctx.hash()
    with pytest.raises(ValueError):
        mirror_hash(ctx)


@pytest.mark.parametrize("signal", ["out", "epoch", "mode", "risk[1][3]", "h.digest[1]"])
def test_context_tamper_rejected(context: Circuit, signal: str) -> None:
    w = context.expect_pass(hash_inputs(ctx_of(7)))
    context.expect_constraint_fail(context.tamper(w, signal, context.get(w, signal) + 1))


# --- ContextBounds ---------------------------------------------------------------------------


def test_context_bounds_accept_the_extremes(context_bounds: Circuit) -> None:
    """Every entry at the edge of its range passes: weights 2^128 - 1 with tier weights equal
    to them, widths 2^64 - 1, cap 2^(64 + depth) - 1, risk -2^128 and 2^128 - 1, mode 1."""
    ctx = ctx_of(8, SHORTFALL)
    ctx.weights = [MAX_WEIGHT, 0]
    ctx.tier_weights = [[MAX_WEIGHT, MAX_WEIGHT], [0, 0]]
    ctx.tier_widths = [[(1 << 64) - 1], [0]]
    ctx.cap_limits = [(1 << TOTAL_BITS) - 1, 0]
    ctx.risk[0] = [RISK_MIN, RISK_MAX] * (N_SCEN // 2)
    context_bounds.expect_pass(bounds_inputs(ctx))
    mirror_hash(ctx)  # and the mirror's guards agree


def _out_of_range(ctx: RawContext, what: str) -> None:
    if what == "weight 2^128":
        ctx.weights[0] = 1 << WEIGHT_BITS
    elif what == "weight p - 1":
        ctx.weights[1] = P - 1
    elif what == "tier weight above weight":
        ctx.tier_weights[1][0] = ctx.weights[1] + 1
    elif what == "tier weight p - 1":
        ctx.tier_weights[0][1] = P - 1
    elif what == "width 2^64":
        ctx.tier_widths[0][0] = 1 << 64
    elif what == "width p - 1":
        ctx.tier_widths[1][0] = P - 1
    elif what == "cap 2^(64 + depth)":
        ctx.cap_limits[1] = 1 << TOTAL_BITS
    elif what == "cap p - 1":
        ctx.cap_limits[0] = P - 1
    elif what == "risk 2^128":
        ctx.risk[1][4] = 1 << RISK_BITS
    elif what == "risk -2^128 - 1":
        ctx.risk[0][2] = RISK_MIN - 1
    elif what == "risk p / 2":
        ctx.risk[0][0] = P // 2
    else:
        raise AssertionError(what)


RANGE_CASES = {
    "weight 2^128": "w",
    "weight p - 1": "w",
    "tier weight above weight": "tierLe",
    "tier weight p - 1": "tw",
    "width 2^64": "width",
    "width p - 1": "width",
    "cap 2^(64 + depth)": "cap",
    "cap p - 1": "cap",
    "risk 2^128": "r",
    "risk -2^128 - 1": "r",
    "risk p / 2": "r",
}


@pytest.mark.parametrize("what", RANGE_CASES)
def test_context_bounds_reject_out_of_range(context_bounds: Circuit, what: str) -> None:
    """Each bound of docs/margin-design.md, one entry just outside it. The failing template
    is a range check (or, for a tier weight above its weight, the comparison)."""
    ctx = ctx_of(9)
    ctx.weights[1] = max(ctx.weights[1], 5)
    context_bounds.expect_pass(bounds_inputs(ctx))
    _out_of_range(ctx, what)
    inner = "NonNegativeDifference" if RANGE_CASES[what] == "tierLe" else "RangeCheck"
    context_bounds.expect_fail(bounds_inputs(ctx), match=fired_in("Num2Bits", inner))
    with pytest.raises(ValueError):
        mirror_hash(ctx)


@pytest.mark.parametrize("bad", [1 << 128, (1 << 128) + 1, P - 1, P - (1 << 64)])
@pytest.mark.parametrize("slot", [0, 1])
def test_weight_out_of_range_rejected(context_bounds: Circuit, bad: int, slot: int) -> None:
    """Weights >= 2^128 (or negative, p - x) would let AccountLeaf's value sums wrap. The
    tier weights stay below the good weight, so only the weight's own range check refuses."""
    ctx = ctx_of(12)
    ctx.weights = [7, 7]
    ctx.tier_weights = [[7, 3], [7, 3]]
    context_bounds.expect_pass(bounds_inputs(ctx))
    ctx.weights[slot] = bad
    context_bounds.expect_fail(
        bounds_inputs(ctx), match=fired_in("Num2Bits", "RangeCheck", "ContextBounds")
    )


@pytest.mark.parametrize("mode", [2, P - 1, 1 << 64])
def test_context_bounds_reject_mode_not_a_bit(context_bounds: Circuit, mode: int) -> None:
    """mode is 0 (strict) or 1 (shortfall): 2 would flip the sign of (1 - mode) * shortfall."""
    ctx = ctx_of(10)
    ctx.mode = mode
    context_bounds.expect_fail(bounds_inputs(ctx), match=MODE_CHECK)


@pytest.mark.parametrize(
    "signal",
    [
        "w[0].bits.out[0]",
        "tw[1][1].bits.out[3]",
        "tierLe[0][0].bits.out[0]",
        "width[0][0].bits.out[63]",
        "cap[1].bits.out[2]",
        "r[1][7].bits.out[128]",  # the top bit: the sign of the risk entry
        "r[0][0].bits.out[0]",
        "risk[0][3]",
        "mode",  # 0 -> 2 (1 would be a valid mode: the unit alone binds no hash)
    ],
)
def test_context_bounds_tamper_rejected(context_bounds: Circuit, signal: str) -> None:
    w = context_bounds.expect_pass(bounds_inputs(ctx_of(11)))
    v = context_bounds.get(w, signal)
    new = 2 if signal == "mode" else 1 - v if v in (0, 1) else v + 1
    context_bounds.expect_constraint_fail(context_bounds.tamper(w, signal, new))


# --- TotalsHash ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_totals_hash_matches_mirror(totals: Circuit, seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.randrange(1 << TOTAL_BITS) for _ in range(2 * N_ASSETS)]
    w = totals.expect_pass({"totals": values})
    assert totals.get(w, "out") == totals_hash(values, DEPTH)


def test_totals_hash_extremes(totals: Circuit) -> None:
    for values in ([0, 0, 0, 0], [(1 << TOTAL_BITS) - 1] * 4):
        w = totals.expect_pass({"totals": values})
        assert totals.get(w, "out") == totals_hash(values, DEPTH)


def test_totals_hash_packing_needs_range_checked_totals(totals: Circuit) -> None:
    """TotalsHash leaves range checks to its callers: an equity total shifted down by 2^68
    with one more unit of debt hashes like the honest totals. BatchSolvency and Solvency
    range-check every total they hash (see test_batch.py / test_solvency.py)."""
    honest = [5000, 10, 0, 0]
    forged = [(5000 - (1 << TOTAL_BITS)) % P, 11, 0, 0]
    a = totals.get(totals.expect_pass({"totals": honest}), "out")
    b = totals.get(totals.expect_pass({"totals": forged}), "out")
    assert a == b == raw_totals_hash(forged, DEPTH) == totals_hash(honest, DEPTH)


def test_totals_tamper_rejected(totals: Circuit) -> None:
    w = totals.expect_pass({"totals": [1, 2, 3, 4]})
    totals.expect_constraint_fail(totals.tamper(w, "out", 0))
    totals.expect_constraint_fail(totals.tamper(w, "totals[3]", 5))


# --- StateHash -------------------------------------------------------------------------------

STATE_FIELDS = ("ctx", "batchCount", "root", "totalsHash", "shortfall", "blind")


@pytest.mark.parametrize("seed", [1, 2])
def test_state_hash_matches_mirror(state: Circuit, seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.randrange(P) for _ in STATE_FIELDS]
    w = state.expect_pass(dict(zip(STATE_FIELDS, values, strict=True)))
    assert state.get(w, "out") == state_hash(*values)


def test_state_binds_every_field(state: Circuit) -> None:
    """Ctx, count, root, totals, shortfall and blind: each one changes the state."""
    base = {k: i + 1 for i, k in enumerate(STATE_FIELDS)}
    outs = {state.get(state.expect_pass(base), "out")}
    for key in base:
        outs.add(state.get(state.expect_pass({**base, key: base[key] + 10}), "out"))
    assert len(outs) == 1 + len(base)


def test_state_tamper_rejected(state: Circuit) -> None:
    w = state.expect_pass({k: i + 1 for i, k in enumerate(STATE_FIELDS)})
    state.expect_constraint_fail(state.tamper(w, "out", 0))
    state.expect_constraint_fail(state.tamper(w, "batchCount", 3))
    state.expect_constraint_fail(state.tamper(w, "shortfall", 0))

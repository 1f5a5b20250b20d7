"""ContextHash, TotalsHash and StateHash (circuits/lib/state.circom) against
prover/commitments.py context_hash, totals_hash and state_hash."""

from __future__ import annotations

import random

import pytest
from harness import Circuit, raw_context_hash, raw_totals_hash
from zksolvency.prover.commitments import context_hash, state_hash, totals_hash
from zksolvency.prover.field import P

# The unit instances' parameters (conftest.CIRCUITS): ContextHash(4, 1, 2, 128), TotalsHash(4, 68).
DEPTH, LEVELS, N_ASSETS = 4, 1, 2
TOTAL_BITS = 64 + DEPTH


# --- ContextHash -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_context_hash_matches_mirror(context: Circuit, seed: int) -> None:
    rng = random.Random(seed)
    epoch = rng.randrange(1, 1 << 32)
    weights = [rng.randrange(1 << 128) for _ in range(N_ASSETS)]
    w = context.expect_pass({"epoch": epoch, "weights": weights})
    assert context.get(w, "out") == context_hash(epoch, DEPTH, LEVELS, weights)


def test_context_binds_epoch_and_weights(context: Circuit) -> None:
    outs = {
        context.get(context.expect_pass({"epoch": e, "weights": ws}), "out")
        for e, ws in [(1, [5, 6]), (2, [5, 6]), (1, [6, 5]), (1, [5, 7]), (1, [0, 6])]
    }
    assert len(outs) == 5


def test_weight_2_pow_128_minus_1_accepted(context: Circuit) -> None:
    weights = [(1 << 128) - 1, 0]
    w = context.expect_pass({"epoch": 1, "weights": weights})
    assert context.get(w, "out") == context_hash(1, DEPTH, LEVELS, weights)


@pytest.mark.parametrize("bad", [1 << 128, (1 << 128) + 1, P - 1, P - (1 << 64)])
@pytest.mark.parametrize("slot", [0, 1])
def test_weight_out_of_range_rejected(context: Circuit, bad: int, slot: int) -> None:
    """Weights >= 2^128 (or negative, p - x) would let AccountLeaf's value sums wrap."""
    weights = [7, 7]
    weights[slot] = bad
    context.expect_fail({"epoch": 1, "weights": weights}, match="RangeCheck")


@pytest.mark.parametrize(
    "signal", ["out", "wRange[0].bits.out[0]", "wRange[1].bits.out[127]", "epoch"]
)
def test_context_tamper_rejected(context: Circuit, signal: str) -> None:
    w = context.expect_pass({"epoch": 9, "weights": [12345, 678]})
    context.expect_constraint_fail(context.tamper(w, signal, 3))


def test_context_hash_mirror_guard_matches_circuit() -> None:
    """The mirror refuses the weights the circuit refuses; the unguarded mirror agrees below."""
    with pytest.raises(ValueError):
        context_hash(1, DEPTH, LEVELS, [1 << 128, 0])
    assert raw_context_hash(1, DEPTH, LEVELS, [3, 4]) == context_hash(1, DEPTH, LEVELS, [3, 4])


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


@pytest.mark.parametrize("seed", [1, 2])
def test_state_hash_matches_mirror(state: Circuit, seed: int) -> None:
    rng = random.Random(seed)
    ctx, count, root, th, blind = (rng.randrange(P) for _ in range(5))
    w = state.expect_pass(
        {"ctx": ctx, "batchCount": count, "root": root, "totalsHash": th, "blind": blind}
    )
    assert state.get(w, "out") == state_hash(ctx, count, root, th, blind)


def test_state_binds_every_field(state: Circuit) -> None:
    base = {"ctx": 1, "batchCount": 2, "root": 3, "totalsHash": 4, "blind": 5}
    outs = {state.get(state.expect_pass(base), "out")}
    for key in base:
        outs.add(state.get(state.expect_pass({**base, key: base[key] + 10}), "out"))
    assert len(outs) == 1 + len(base)


def test_state_tamper_rejected(state: Circuit) -> None:
    w = state.expect_pass({"ctx": 1, "batchCount": 2, "root": 3, "totalsHash": 4, "blind": 5})
    state.expect_constraint_fail(state.tamper(w, "out", 0))
    state.expect_constraint_fail(state.tamper(w, "batchCount", 3))

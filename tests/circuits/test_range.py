"""RangeCheck and NonNegativeDifference (circuits/lib/range.circom).

Every amount, weight, total and reserve in the protocol is bounded by these two templates, so
they decide whether a negative balance can hide as p - x (ANCHORS attack 1).
"""

from __future__ import annotations

import random

import pytest
from harness import Circuit
from zksolvency.prover.field import P

SEED = 20240601


def _bits(c: Circuit, w: list[int], n: int) -> list[int]:
    return c.get_list(w, "bits.out", n)


# --- RangeCheck ------------------------------------------------------------------------------


@pytest.mark.parametrize(("circuit", "n"), [("range64", 64), ("range252", 252)])
def test_values_below_2_pow_n_accepted(
    request: pytest.FixtureRequest, circuit: str, n: int
) -> None:
    c: Circuit = request.getfixturevalue(circuit)
    rng = random.Random(SEED + n)
    for v in [0, 1, (1 << n) - 1, 1 << (n - 1), *(rng.randrange(1 << n) for _ in range(4))]:
        w = c.expect_pass({"in": v})
        assert _bits(c, w, n) == [(v >> i) & 1 for i in range(n)]


@pytest.mark.parametrize(("circuit", "n"), [("range64", 64), ("range252", 252)])
def test_2_pow_n_rejected(request: pytest.FixtureRequest, circuit: str, n: int) -> None:
    c: Circuit = request.getfixturevalue(circuit)
    for v in [1 << n, (1 << n) + 1, (1 << (n + 1)) - 1]:
        c.expect_fail({"in": v}, match="Num2Bits")


@pytest.mark.parametrize(("circuit", "n"), [("range64", 64), ("range252", 252)])
def test_negative_as_p_minus_x_rejected(
    request: pytest.FixtureRequest, circuit: str, n: int
) -> None:
    """A negative amount -x is the field element p - x: it must never look small."""
    c: Circuit = request.getfixturevalue(circuit)
    rng = random.Random(SEED - n)
    for x in [1, 2, 1000, (1 << 64) - 1, 1 << n, *(rng.randrange(1, 1 << 200) for _ in range(3))]:
        c.expect_fail({"in": P - x}, match="Num2Bits")


@pytest.mark.parametrize("bit", [0, 17, 63])
def test_range_bit_flip_rejected(range64: Circuit, bit: int) -> None:
    """A flipped bit is still boolean, but the bits no longer sum to `in`."""
    w = range64.expect_pass({"in": 0x0123456789ABCDEF})
    flipped = 1 - range64.get(w, f"bits.out[{bit}]")
    range64.expect_constraint_fail(range64.tamper(w, f"bits.out[{bit}]", flipped))


@pytest.mark.parametrize("value", [2, -1, 1 << 64])
def test_range_bit_not_boolean_rejected(range64: Circuit, value: int) -> None:
    w = range64.expect_pass({"in": 12345})
    range64.expect_constraint_fail(range64.tamper(w, "bits.out[5]", value))


@pytest.mark.parametrize(
    ("value", "bit", "weight"),
    [(1 << 64, 63, 2), (P - 1, 0, P - 1), (3 << 63, 63, 3)],
)
def test_out_of_range_needs_a_non_boolean_bit(
    range64: Circuit, value: int, bit: int, weight: int
) -> None:
    """Hand-built witnesses for 2^64, p - 1 and 3 * 2^63: every bit but one is boolean and the
    bits do sum to `in` (mod p). Exactly one constraint fails: that bit's boolean check."""
    w = range64.expect_pass({"in": 0})
    w = range64.tamper(w, "in", value)
    w = range64.tamper(w, f"bits.out[{bit}]", weight)
    bad = range64.expect_constraint_fail(w)
    assert len(bad) == 1
    a, b, _ = range64.r1cs.constraints[bad[0]]
    assert set(a) - {0} == set(b) - {0} == {range64.wire(f"bits.out[{bit}]")}


def test_range_input_tamper_rejected(range64: Circuit) -> None:
    w = range64.expect_pass({"in": 12345})
    for v in [12346, 12345 + (1 << 64), -12345]:
        range64.expect_constraint_fail(range64.tamper(w, "in", v))


# --- NonNegativeDifference ------------------------------------------------------------------


@pytest.mark.parametrize(("circuit", "n"), [("nnd64", 64), ("nnd129", 129)])
def test_a_at_least_b_accepted(request: pytest.FixtureRequest, circuit: str, n: int) -> None:
    c: Circuit = request.getfixturevalue(circuit)
    rng = random.Random(SEED * 3 + n)
    top = (1 << n) - 1
    cases = [(0, 0), (top, top), (top, 0), (1, 0), (top, top - 1)]
    for _ in range(4):
        b = rng.randrange(1 << n)
        cases.append((rng.randrange(b, 1 << n), b))
    for a, b in cases:
        w = c.expect_pass({"a": a, "b": b})
        assert sum(bit << i for i, bit in enumerate(c.get_list(w, "bits.out", n))) == a - b


@pytest.mark.parametrize(("circuit", "n"), [("nnd64", 64), ("nnd129", 129)])
def test_a_below_b_rejected(request: pytest.FixtureRequest, circuit: str, n: int) -> None:
    """a - b wraps to p - (b - a), far above 2^n, whenever a < b <= 2^n - 1."""
    c: Circuit = request.getfixturevalue(circuit)
    rng = random.Random(SEED * 5 + n)
    top = (1 << n) - 1
    cases = [(0, 1), (top - 1, top), (0, top), (12345, 12346)]
    for _ in range(4):
        b = rng.randrange(1, 1 << n)
        cases.append((rng.randrange(b), b))
    for a, b in cases:
        c.expect_fail({"a": a, "b": b}, match="Num2Bits")


def test_difference_of_2_pow_n_rejected(nnd64: Circuit) -> None:
    nnd64.expect_fail({"a": 1 << 64, "b": 0}, match="Num2Bits")
    nnd64.expect_fail({"a": (1 << 65) + 7, "b": 7}, match="Num2Bits")


def test_sums_near_p_compare_mod_p(nnd129: Circuit) -> None:
    """The template compares a - b mod p: operands near p pass or fail by their difference.

    This is its documented precondition (callers range-check a and b first), shown here so a
    caller cannot mistake it for an integer comparison: p - 1 >= p - 2 passes, and so does
    a = 5 >= b = p - 1 ("b = -1"); while p - 2 >= p - 1 fails.
    """
    nnd129.expect_pass({"a": P - 1, "b": P - 2})
    nnd129.expect_pass({"a": 5, "b": P - 1})
    nnd129.expect_fail({"a": P - 2, "b": P - 1}, match="Num2Bits")
    nnd129.expect_fail({"a": P - 1, "b": 5}, match="Num2Bits")


def test_difference_bit_tamper_rejected(nnd64: Circuit) -> None:
    w = nnd64.expect_pass({"a": 1000, "b": 1})
    nnd64.expect_constraint_fail(nnd64.tamper(w, "bits.out[0]", 1 - nnd64.get(w, "bits.out[0]")))
    nnd64.expect_constraint_fail(nnd64.tamper(w, "b", 1002))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_random_comparisons_match_integers(nnd129: Circuit, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        a, b = rng.randrange(1 << 129), rng.randrange(1 << 129)
        if a >= b:
            nnd129.expect_pass({"a": a, "b": b})
        else:
            nnd129.expect_fail({"a": a, "b": b}, match="Num2Bits")

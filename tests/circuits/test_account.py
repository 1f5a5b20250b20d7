"""AccountLeaf (circuits/lib/account.circom) against commitments.leaf_hash: the per-account range
checks, the equity-covers-debt comparison, the position codes and the leaf commitment.

The unit instances are AccountLeaf(2, 2, 128) (account2) and AccountLeaf(4, 4, 128) (account4,
whose four codes take two packed elements).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from harness import Circuit, assert_at, codes, fired_in, raw_leaf
from zksolvency.prover.commitments import SIGN_BIT, leaf_hash, qty_code, qty_from_code
from zksolvency.prover.field import P

MAX64 = (1 << 64) - 1
MAX128 = (1 << 128) - 1
MAX_MAG = SIGN_BIT - 1  # the largest magnitude a code carries: 2^63 - 1
# (fixture, N_ASSETS, N_INSTR): both instances have as many instruments as assets.
ACCOUNTS = [("account2", 2, 2), ("account4", 4, 4)]
NEGATIVE_ZERO = assert_at(
    "AccountLeaf", "lib/account.circom", "code[i].out[63] * zero[i].out === 0;"
)


def _inputs(
    equity: Sequence[int],
    debt: Sequence[int],
    weights: Sequence[int],
    id_commit: int = 777,
    qty: Sequence[int] | None = None,
) -> dict[str, Any]:
    """AccountLeaf inputs; `qty` are raw codes (default: no positions, two instruments)."""
    return {
        "idCommit": id_commit,
        "equity": [v % P for v in equity],
        "debt": [v % P for v in debt],
        "qty": [v % P for v in (qty if qty is not None else [0, 0])],
        "weights": list(weights),
    }


def _random_account(rng: random.Random, n: int) -> tuple[list[int], list[int], list[int]]:
    """Amounts and weights with equity value >= debt value."""
    weights = [rng.randrange(1 << rng.randint(1, 128)) for _ in range(n)]
    equity = [rng.randrange(1 << rng.randint(1, 64)) for _ in range(n)]
    debt = [rng.randrange(1 << rng.randint(1, 64)) for _ in range(n)]
    eq_value = sum(e * w for e, w in zip(equity, weights, strict=True))
    debt_value = sum(d * w for d, w in zip(debt, weights, strict=True))
    if debt_value > eq_value:
        debt = [d * eq_value // debt_value for d in debt]
    return equity, debt, weights


def _random_qty(rng: random.Random, p: int) -> list[int]:
    """Signed quantities: zero, the extremes +-(2^63 - 1), +-1, or of random size."""
    out = []
    for _ in range(p):
        r = rng.random()
        if r < 0.2:
            out.append(0)
        elif r < 0.35:
            out.append(rng.choice([MAX_MAG, -MAX_MAG, 1, -1]))
        else:
            out.append(rng.choice([1, -1]) * rng.randrange(1, 1 << rng.randint(1, 63)))
    return out


def _check_leaf(
    c: Circuit,
    equity: list[int],
    debt: list[int],
    weights: list[int],
    qty: Sequence[int] | None = None,
) -> list[int]:
    """A valid account: leaf, value products, signed quantities and magnitudes as the mirror
    computes them. `qty` are signed quantities (default: none)."""
    n = len(weights)
    signed_qty = list(qty) if qty is not None else [0] * n
    qty_codes = codes(signed_qty)
    w = c.expect_pass(_inputs(equity, debt, weights, id_commit=4242, qty=qty_codes))
    assert c.get(w, "leaf") == leaf_hash(4242, equity, debt, qty_codes)
    assert c.get(w, "leaf") == raw_leaf(4242, equity, debt, qty_codes)
    assert c.get_list(w, "eqValue", n) == [e * x % P for e, x in zip(equity, weights, strict=True)]
    assert c.get_list(w, "debtValues", n) == [d * x % P for d, x in zip(debt, weights, strict=True)]
    assert c.get(w, "debtValue") == sum(d * x for d, x in zip(debt, weights, strict=True)) % P
    assert c.get_list(w, "q", n) == [q % P for q in signed_qty]
    assert c.get(w, "magSum") == sum(abs(q) for q in signed_qty)
    return w


@pytest.mark.parametrize(("circuit", "n", "p"), ACCOUNTS)
@pytest.mark.parametrize("seed", [1, 2])
def test_leaf_matches_mirror(
    request: pytest.FixtureRequest, circuit: str, n: int, p: int, seed: int
) -> None:
    c: Circuit = request.getfixturevalue(circuit)
    rng = random.Random(seed * 100 + n)
    _check_leaf(c, *_random_account(rng, n), qty=_random_qty(rng, p))


@pytest.mark.parametrize(("circuit", "n", "p"), ACCOUNTS)
def test_extreme_values_do_not_wrap(
    request: pytest.FixtureRequest, circuit: str, n: int, p: int
) -> None:
    """Every amount 2^64 - 1 at every weight 2^128 - 1: the sums fit VALUE_BITS, no wrap mod p.
    Equal values pass; one unit less equity in any asset fails."""
    c: Circuit = request.getfixturevalue(circuit)
    _check_leaf(c, [MAX64] * n, [MAX64] * n, [MAX128] * n, qty=[-MAX_MAG] * p)
    for i in range(n):
        equity = [MAX64] * n
        equity[i] -= 1
        inputs = _inputs(equity, [MAX64] * n, [MAX128] * n, qty=[0] * p)
        c.expect_fail(inputs, match=fired_in("Num2Bits", "NonNegativeDifference", "AccountLeaf"))


@pytest.mark.parametrize("where", ["equity", "debt"])
@pytest.mark.parametrize("asset", [0, 1])
def test_amount_2_pow_64_rejected(account2: Circuit, where: str, asset: int) -> None:
    """ANCHORS attack 1: every amount is range-checked to 64 bits, whatever the coverage."""
    equity, debt = [MAX64, MAX64], [0, 0]
    weights = [3, 3]
    if where == "equity":
        equity[asset] = 1 << 64
    else:
        debt[asset] = 1 << 64
    account2.expect_fail(_inputs(equity, debt, weights), match="RangeCheck")


def test_amount_2_pow_64_minus_1_accepted(account2: Circuit) -> None:
    _check_leaf(account2, [MAX64, MAX64], [MAX64, 0], [5, 5])
    _check_leaf(account2, [MAX64, 0], [0, MAX64], [7, 7])


@pytest.mark.parametrize("x", [1, 2, 1 << 32, MAX64])
def test_debt_as_p_minus_x_rejected(account2: Circuit, x: int) -> None:
    """A negative debt -x would add x * weight to the coverage; it is p - x, not < 2^64."""
    account2.expect_fail(_inputs([0, 0], [P - x, 0], [1, 1]), match="RangeCheck")
    account2.expect_fail(_inputs([10, 0], [0, P - x], [1, 1]), match="RangeCheck")


@pytest.mark.parametrize("x", [1, 1 << 40])
def test_equity_as_p_minus_x_rejected(account2: Circuit, x: int) -> None:
    """A negative equity -x would shrink the exchange's liabilities."""
    account2.expect_fail(_inputs([P - x, MAX64], [0, 0], [1, 1]), match="RangeCheck")


def test_equity_below_debt_by_one_rejected(account2: Circuit) -> None:
    """Coverage is across assets at the weights: 7 x 5 = 35 covers 5 x 7, not 6 x 6 = 36."""
    _check_leaf(account2, [7, 0], [0, 5], [5, 7])  # 35 == 35
    account2.expect_fail(_inputs([7, 0], [0, 6], [5, 6]), match="NonNegativeDifference")
    account2.expect_fail(_inputs([7, 0], [0, 6], [5, 6]), match="AccountLeaf")


def test_equity_equal_debt_accepted_at_full_width(account2: Circuit) -> None:
    """One unit of value short at 2^192 scale still fails: the comparison is exact."""
    _check_leaf(account2, [MAX64, 1], [MAX64, 1], [MAX128, 1])
    account2.expect_fail(_inputs([MAX64, 0], [MAX64, 1], [MAX128, 1]), match="NonNegative")


def test_packed_limbs_range_checked(account2: Circuit) -> None:
    """Binance #4/#5: (e - 2^64, d + 1) packs like (e, d), so it would commit to the very same
    leaf while reporting a negative equity (liabilities shrink by 2^64 units). Only the range
    checks stop it, for the carry in either direction."""
    e, d = 1000, 7
    _check_leaf(account2, [e, 0], [d, 0], [1, 1])
    for eq0, debt0 in [(e - (1 << 64), d + 1), (e + (1 << 64), d - 1)]:
        assert raw_leaf(777, [eq0 % P, 0], [debt0 % P, 0], [0, 0]) == raw_leaf(
            777, [e, 0], [d, 0], [0, 0]
        )
        account2.expect_fail(_inputs([eq0, 0], [debt0, 0], [1, 1]), match="RangeCheck")


def test_leaf_binds_balances(account2: Circuit) -> None:
    """Summa #119: the leaf commits to every balance, in place, and to the id commitment."""
    base_eq, base_debt, weights = [500, 900], [100, 300], [3, 2]
    leaf = account2.get(account2.expect_pass(_inputs(base_eq, base_debt, weights)), "leaf")
    variants = [
        ([501, 900], [100, 300], 777),  # one more unit of equity
        ([500, 900], [100, 301], 777),  # one more unit of debt
        ([900, 500], [300, 100], 777),  # assets swapped
        ([100, 900], [500, 300], 777),  # equity and debt of asset 0 swapped (still covered)
        ([500, 900], [100, 300], 778),  # another id
    ]
    for eq, debt, id_commit in variants:
        w = account2.expect_pass(_inputs(eq, debt, weights, id_commit))
        assert account2.get(w, "leaf") not in (leaf, 0)
        assert account2.get(w, "leaf") == leaf_hash(id_commit, eq, debt, [0, 0])


# --- positions -------------------------------------------------------------------------------


def test_leaf_binds_positions(account2: Circuit) -> None:
    """The leaf commits to every position, its sign and its slot: a user's inclusion check
    sees the positions that were margined."""
    eq, debt, weights = [500, 900], [100, 300], [3, 2]
    leaves = set()
    for qty in ([0, 0], [7, 0], [-7, 0], [0, 7], [0, -7], [7, -7], [-7, 7], [8, 0]):
        w = _check_leaf(account2, eq, debt, weights, qty=qty)
        leaves.add(account2.get(w, "leaf"))
    assert len(leaves) == 8


@pytest.mark.parametrize(
    ("qty", "q", "mag"),
    [
        ([0, 0], [0, 0], 0),
        ([1, SIGN_BIT + 1], [1, -1], 2),  # a long and a short of one unit
        ([MAX_MAG, (1 << 64) - 1], [MAX_MAG, -MAX_MAG], 2 * MAX_MAG),  # the extreme codes
        ([SIGN_BIT + 5, 5], [-5, 5], 10),
    ],
)
def test_codes_decode_to_signed_quantities(
    account2: Circuit, qty: list[int], q: list[int], mag: int
) -> None:
    """q_i = m_i - 2 b_i m_i and magSum = sum m_i, for codes m + 2^63 b (commitments.qty_code)."""
    assert [qty_from_code(c) for c in qty] == q and codes(q) == qty
    w = account2.expect_pass(_inputs([1, 0], [0, 0], [1, 1], qty=qty))
    assert account2.get_list(w, "q", 2) == [v % P for v in q]
    assert account2.get(w, "magSum") == mag


@pytest.mark.parametrize("slot", [0, 1])
def test_negative_zero_rejected(account2: Circuit, slot: int) -> None:
    """2^63 would be a second code for 0 (sign bit set, magnitude 0): zero has one encoding,
    so a leaf cannot be re-committed with another code for the same position."""
    qty = [0, 0]
    qty[slot] = SIGN_BIT
    account2.expect_fail(_inputs([1, 0], [0, 0], [1, 1], qty=qty), match=NEGATIVE_ZERO)
    qty[slot] = SIGN_BIT + 1  # -1 is fine
    account2.expect_pass(_inputs([1, 0], [0, 0], [1, 1], qty=qty))


@pytest.mark.parametrize(
    "code",
    [
        1 << 64,  # one past the largest code
        (1 << 64) + 1,  # a long of 1 with a carry into bit 64
        (1 << 64) + SIGN_BIT + 1,
        P - 1,  # "-1" as a raw field element
        P - 10**8,  # "-1 contract" as a raw field element
        P - MAX_MAG,
        P - SIGN_BIT,
    ],
)
def test_code_out_of_range_rejected(account2: Circuit, code: int) -> None:
    """A quantity is only ever read from a 64-bit decomposition: p - x cannot pass for -x, and
    no code of 65 bits or more packs into the leaf."""
    account2.expect_fail(
        _inputs([1, 0], [0, 0], [1, 1], qty=[0, code]), match=fired_in("Num2Bits", "AccountLeaf")
    )


def test_codes_packed_three_per_element(account4: Circuit) -> None:
    """Four 64-bit codes take two packed elements (three per element); all four are bound."""
    eq, debt, weights = [5, 6, 7, 8], [1, 2, 3, 4], [1, 1, 1, 1]
    base = [3, -4, 5, -6]
    leaf = account4.get(_check_leaf(account4, eq, debt, weights, qty=base), "leaf")
    for i in range(4):
        qty = list(base)
        qty[i] = -qty[i]
        w = _check_leaf(account4, eq, debt, weights, qty=qty)
        assert account4.get(w, "leaf") != leaf
    assert leaf == leaf_hash(4242, eq, debt, [qty_code(q) for q in base])


# --- tampering -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "value"),
    [
        ("equity[0]", 501),  # the leaf's balance changes under a fixed leaf
        ("debt[1]", 299),
        ("leaf", 1),
        ("h.in[1]", 1),  # the first packed element (packer.out[0], as --O1 names it)
        ("eqValue[1]", 0),  # a value product
        ("debtValues[0]", 0),
        ("debtValue", 1),  # the debt value handed to Margin
        ("eqRange[0].bits.out[2]", 0),  # an amount's range-check bit
        ("debtRange[1].bits.out[0]", 2),
        ("covered.bits.out[0]", 1),  # the coverage comparison's bit
        ("qty[0]", 7),  # a code under a fixed leaf
        ("code[0].out[63]", 1),  # the sign bit of a long position
        ("code[1].out[63]", 0),  # the sign bit of a short position
        ("code[1].out[0]", 0),  # a magnitude bit
        ("q[0]", P - 5),  # the signed quantity: +5 read as -5
        ("q[1]", 9),  # -9 read as +9
        ("negMag[1]", 0),
        ("magSum", 13),
        ("zero[1].out", 1),  # "the magnitude is zero" for a non-zero short
        ("zero[0].inv", 1),
    ],
)
def test_account_tamper_rejected(account2: Circuit, signal: str, value: int) -> None:
    w = account2.expect_pass(_inputs([500, 901], [100, 300], [3, 2], qty=[5, SIGN_BIT + 9]))
    assert account2.get_list(w, "q", 2) == [5, P - 9]
    account2.expect_constraint_fail(account2.tamper(w, signal, value))


@pytest.mark.slow
@pytest.mark.parametrize(("circuit", "n", "p"), ACCOUNTS)
@pytest.mark.parametrize("seed", range(10))
def test_random_accounts(
    request: pytest.FixtureRequest, circuit: str, n: int, p: int, seed: int
) -> None:
    c: Circuit = request.getfixturevalue(circuit)
    rng = random.Random(5000 + seed)
    for _ in range(5):
        equity, debt, weights = _random_account(rng, n)
        _check_leaf(c, equity, debt, weights, qty=_random_qty(rng, p))
        # Just enough extra debt in one asset to exceed the equity value by less than a unit.
        i = max(range(n), key=lambda k: weights[k])
        surplus = sum((e - d) * x for e, d, x in zip(equity, debt, weights, strict=True))
        extra = surplus // weights[i] + 1
        if weights[i] and debt[i] + extra <= MAX64:
            debt[i] += extra
            c.expect_fail(
                _inputs(equity, debt, weights, qty=[0] * p), match="NonNegativeDifference"
            )

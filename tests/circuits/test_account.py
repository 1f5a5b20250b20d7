"""AccountLeaf (circuits/lib/account.circom) against commitments.leaf_hash: the per-account range
checks, the equity-covers-debt comparison and the leaf commitment."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from harness import Circuit, raw_leaf
from zksolvency.prover.commitments import leaf_hash
from zksolvency.prover.field import P

MAX64 = (1 << 64) - 1
MAX128 = (1 << 128) - 1
ACCOUNTS = [("account2", 2), ("account4", 4)]


def _inputs(
    equity: Sequence[int], debt: Sequence[int], weights: Sequence[int], id_commit: int = 777
) -> dict[str, Any]:
    return {
        "idCommit": id_commit,
        "equity": [v % P for v in equity],
        "debt": [v % P for v in debt],
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


def _check_leaf(c: Circuit, equity: list[int], debt: list[int], weights: list[int]) -> list[int]:
    w = c.expect_pass(_inputs(equity, debt, weights, id_commit=4242))
    assert c.get(w, "leaf") == leaf_hash(4242, equity, debt)
    n = len(weights)
    assert c.get_list(w, "eqValue", n) == [e * x % P for e, x in zip(equity, weights, strict=True)]
    assert c.get_list(w, "debtValue", n) == [d * x % P for d, x in zip(debt, weights, strict=True)]
    return w


@pytest.mark.parametrize(("circuit", "n"), ACCOUNTS)
@pytest.mark.parametrize("seed", [1, 2])
def test_leaf_matches_mirror(
    request: pytest.FixtureRequest, circuit: str, n: int, seed: int
) -> None:
    c: Circuit = request.getfixturevalue(circuit)
    _check_leaf(c, *_random_account(random.Random(seed * 100 + n), n))


@pytest.mark.parametrize(("circuit", "n"), ACCOUNTS)
def test_extreme_values_do_not_wrap(request: pytest.FixtureRequest, circuit: str, n: int) -> None:
    """Every amount 2^64 - 1 at every weight 2^128 - 1: the sums fit VALUE_BITS, no wrap mod p.
    Equal values pass; one unit less equity in any asset fails."""
    c: Circuit = request.getfixturevalue(circuit)
    _check_leaf(c, [MAX64] * n, [MAX64] * n, [MAX128] * n)
    for i in range(n):
        equity = [MAX64] * n
        equity[i] -= 1
        c.expect_fail(_inputs(equity, [MAX64] * n, [MAX128] * n), match="NonNegativeDifference")


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
        assert raw_leaf(777, [eq0 % P, 0], [debt0 % P, 0]) == raw_leaf(777, [e, 0], [d, 0])
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
        assert account2.get(w, "leaf") == leaf_hash(id_commit, eq, debt)


@pytest.mark.parametrize(
    ("signal", "value"),
    [
        ("equity[0]", 501),  # the leaf's balance changes under a fixed leaf
        ("debt[1]", 299),
        ("leaf", 1),
        ("h.in[1]", 1),  # the first packed element (packer.out[0], as --O1 names it)
        ("eqValue[1]", 0),  # a value product
        ("debtValue[0]", 0),
        ("eqRange[0].bits.out[2]", 0),  # an amount's range-check bit
        ("debtRange[1].bits.out[0]", 2),
        ("covered.bits.out[0]", 1),  # the coverage comparison's bit
    ],
)
def test_account_tamper_rejected(account2: Circuit, signal: str, value: int) -> None:
    w = account2.expect_pass(_inputs([500, 901], [100, 300], [3, 2]))
    account2.expect_constraint_fail(account2.tamper(w, signal, value))


@pytest.mark.slow
@pytest.mark.parametrize(("circuit", "n"), ACCOUNTS)
@pytest.mark.parametrize("seed", range(10))
def test_random_accounts(request: pytest.FixtureRequest, circuit: str, n: int, seed: int) -> None:
    c: Circuit = request.getfixturevalue(circuit)
    rng = random.Random(5000 + seed)
    for _ in range(5):
        equity, debt, weights = _random_account(rng, n)
        _check_leaf(c, equity, debt, weights)
        # Just enough extra debt in one asset to exceed the equity value by less than a unit.
        i = max(range(n), key=lambda k: weights[k])
        surplus = sum((e - d) * x for e, d, x in zip(equity, debt, weights, strict=True))
        extra = surplus // weights[i] + 1
        if weights[i] and debt[i] + extra <= MAX64:
            debt[i] += extra
            c.expect_fail(_inputs(equity, debt, weights), match="NonNegativeDifference")

"""Pinned constraint counts of every compiled circuit.

A count that moves means the constraint system changed. A drop can be a constraint that went
missing (a soundness bug the other tests may not catch); a rise costs proving time and may need
a bigger ptau. Changing a number in PINNED must be deliberate: update it only together with the
circuit change that explains it, and say why in that change.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from harness import CIRCUITS, DEFAULT, HASH_LENGTHS, SMALL, TIERS3, TIERS16, Circuit, Production
from zksolvency.prover.commitments import (
    AMOUNT_BITS,
    QTY_CODE_BITS,
    RESERVE_BITS,
    RISK_BITS,
    WEIGHT_BITS,
    fund_bits,
    margin_bits,
    tier_compare_bits,
    total_bits,
    value_bits,
)
from zksolvency.prover.field import pack
from zksolvency.prover.keys import r1cs_header
from zksolvency.prover.params import EpochParams
from zksolvency.prover.poseidon import MAX_INPUTS, N_ROUNDS_F, N_ROUNDS_P

# Non-linear constraints (a product of two non-constant terms), as circom reports them.
PINNED: dict[str, int] = {
    # Production instances (circuits.json), compiled with --O2 as `setup` does: every
    # remaining constraint is non-linear.
    #
    # The default shape (8 accounts a batch, depth 10, 4 assets, 8 instruments, 16 scenarios,
    # 3 tiers; MARGIN_BITS = 198). The batch is dominated by the margin rule: per account 16
    # scenario range checks of 198 bits (3168), the tier fill (per asset the first tier's
    # product and, per tier bound, a 67-bit comparison with two products: 556) and 128 P&L
    # products, 3852 in all; over 8 accounts 30.8k of 59k.
    # Each account's leaf adds 1642 (amounts, 8 position codes of 64 bits, the 194-bit
    # coverage, the leaf hash) and its shortfall's range check 198; the context hash 6.7k
    # (HashList of 165 elements: 11 Poseidon(16)); the tree, totals and states the rest.
    "batch_3_10_4_8_16_3": 59065,
    # Solvency: dominated by ContextBounds (20.9k): 128 risk entries of 129 bits (16.5k) and
    # 12 tier weights range-checked and compared with their weight (3k), 8 neighbouring tier
    # weights compared (1k); then the context hash (6.7k), the totals, coverage, cap and
    # insurance comparisons (~3k), and per asset 260 for the split reserves and verifiedOnly.
    "solvency_3_10_4_8_16_3": 32560,
    # Single account: the context hash (6.7k), one Margin (3.9k) and AccountLeaf (1.6k), a
    # depth-10 Merkle path (10 Poseidon(2) and selections, 2.5k), the headroom's range check.
    "margin_3_10_4_8_16_3": 14761,
    # The small test shape (2 a batch, depth 4, 2 assets, 2 instruments, 8 scenarios, 2 tiers;
    # MARGIN_BITS = 197): per account the margin rule is 1730 (8 x 197 bits of scenario checks
    # dominate), the leaf 889; the context hash is 1548 (HashList of 35); the solvency's
    # ContextBounds 3865 (16 risk entries of 129 bits are 2064 of it).
    "batch_1_4_2_2_8_2": 10307,
    "solvency_1_4_2_2_8_2": 7823,
    "margin_1_4_2_2_8_2": 5303,
    # The spot shape (no derivatives: 1 instrument slot, 1 scenario) of the same size: one
    # 197-bit scenario check instead of eight per account, one position code instead of two,
    # and a shorter context.
    "batch_1_4_2_1_1_2": 6770,
    "solvency_1_4_2_1_1_2": 5277,
    # The same templates at --O1 (the tampering builds), linear constraints kept. --O2 folds a
    # few dozen products by constants (mostly the Poseidon round constants' first S-boxes).
    "batch_o1": 10376,  # BatchSolvency(1, 4, 2, 2, 8, 2)
    "solvency_o1": 7859,  # Solvency(1, 4, 2, 2, 8, 2)
    "account_margin_o1": 5348,  # AccountMarginProof(1, 4, 2, 2, 8, 2)
    # Unit templates at their test parameters, --O1.
    "range64": 64,  # RangeCheck(64): one boolean constraint per bit
    "range252": 252,  # RangeCheck(252)
    "nnd64": 64,  # NonNegativeDifference(64)
    "nnd129": 129,  # NonNegativeDifference(129), Solvency's comparison
    "hash_lists": 6303,  # HashList at lengths 1, 2, 16, 17, 31, 32 and 40, together
    "packs": 12,  # Pack is linear: only the wrapper's 12 `out * one` products
    "constants": 0,
    "subtree3": 1701,  # SubtreeRoot(3): 7 Poseidon(2)
    "merkle3": 1467,  # MerkleUpdate(3): 6 Poseidon(2), 3 booleans, 6 selections
    "merkle3_relaxed": 1464,  # the same without the 3 boolean constraints
    "merkle_root3": 735,  # MerkleRoot(3): 3 Poseidon(2), 3 booleans, 3 selections
    # AccountLeaf(2, 2, 128): 4 amounts x 64 bits, 4 value products, the 193-bit coverage, two
    # 64-bit codes with their zero test, sign check and signed product, Poseidon(4) for the leaf.
    "account2": 889,
    "account4": 1343,  # AccountLeaf(4, 4, 128): the same for 4 assets and 4 codes, Poseidon(6)
    # Margin(2, 2, 8, 2): 8 scenario checks of 197 bits (1576) dominate; per asset the tier
    # fill is 69 (the first tier's product, a 66-bit comparison, the excess and step products),
    # then 16 P&L products.
    "margin_unit": 1730,
    "margin_tiers3": 533,  # Margin(1, 1, 2, 3): 2 x 196 bits, two 67-bit tier comparisons
    # Margin(1, 1, 1, 16): fifteen 69-bit comparisons (tierCompareBits(16) = 68), one scenario.
    "margin_tiers16": 1263,
    "context": 1548,  # ContextHash(4, 1, 2, 2, 8, 2): HashList(35) = 2 Poseidon(16) + Poseidon(5)
    # ContextBounds(2, 2, 8, 2, 128, 128, 68): 16 risk entries x 129 bits (2064), 4 tier weights
    # range-checked and compared with the weight (1024), 2 neighbouring tier weights compared
    # (256), 2 weights (256), 2 widths (128), 2 caps (136), the mode's boolean.
    "context_bounds": 3865,
    "totals": 243,  # TotalsHash(4, 68)
    "state": 357,  # StateHash: Poseidon(6)
}


def test_every_circuit_is_pinned() -> None:
    assert set(PINNED) == set(CIRCUITS)


@pytest.mark.parametrize("circuit", sorted(PINNED))
def test_constraint_count_pinned(request: pytest.FixtureRequest, circuit: str) -> None:
    c: Circuit = request.getfixturevalue(circuit)
    assert c.nonlinear_count() == PINNED[circuit], f"{circuit}: the constraint count changed"


@pytest.mark.parametrize(
    "circuit", sorted(n for n, s in CIRCUITS.items() if isinstance(s, Production))
)
def test_production_builds_are_fully_reduced(request: pytest.FixtureRequest, circuit: str) -> None:
    """--O2 leaves no linear constraint, and the header's count (what keys.py sizes the ptau
    by) is the constraints section's."""
    c: Circuit = request.getfixturevalue(circuit)
    assert c.constraint_count() == c.nonlinear_count() == r1cs_header(c.r1cs_path)[0]


def test_relaxed_merkle_drops_only_the_booleans(merkle3: Circuit, merkle3_relaxed: Circuit) -> None:
    """The relaxed copy used to forge non-boolean path bits lacks one constraint a level."""
    assert merkle3.nonlinear_count() - merkle3_relaxed.nonlinear_count() == 3


@pytest.mark.parametrize(
    ("o1", "o2"),
    [
        ("batch_o1", "batch_1_4_2_2_8_2"),
        ("solvency_o1", "solvency_1_4_2_2_8_2"),
        ("account_margin_o1", "margin_1_4_2_2_8_2"),
    ],
)
def test_o2_only_folds_linear_work(o1: str, o2: str) -> None:
    """--O2 folds linear constraints (and a few products by constants) but keeps every range
    check and hash: the production counts stay within 2% below the --O1 ones."""
    assert 0 <= PINNED[o1] - PINNED[o2] <= 0.02 * PINNED[o1]


# --- where the counts come from --------------------------------------------------------------
#
# Each --O1 count rebuilt from the mirror's widths (prover/commitments.py) and circomlib's costs.
# A mismatch means the circuit's widths or structure drifted from the mirror's: a range check of
# another width, a product or a hash too many or too few.


def poseidon_cost(n_inputs: int) -> int:
    """circomlib Poseidon(n): 3 constraints per x^5, t per full round, 1 per partial round."""
    t = n_inputs + 1
    return 3 * (N_ROUNDS_F * t + N_ROUNDS_P[t - 2])


def hash_list_cost(n: int) -> int:
    cost = poseidon_cost(min(n, MAX_INPUTS))
    for start in range(MAX_INPUTS, n, MAX_INPUTS - 1):
        cost += poseidon_cost(1 + min(MAX_INPUTS - 1, n - start))
    return cost


def packed(n: int, bits: int) -> int:
    return len(pack([0] * n, bits))


def account_cost(n: int, p: int) -> int:
    """2n amount range checks, 2n value products, one comparison; per position code a 64-bit
    decomposition, IsZero (2), the no-negative-zero product and the signed product; the leaf
    hash over the id, the packed amounts and the packed codes."""
    return (
        2 * n * AMOUNT_BITS
        + 2 * n
        + value_bits(n)
        + p * (QTY_CODE_BITS + 2 + 1 + 1)
        + hash_list_cost(1 + packed(2 * n, AMOUNT_BITS) + packed(p, QTY_CODE_BITS))
    )


def margin_cost(shape: EpochParams) -> int:
    """Per asset the first tier's product, then per tier bound a comparison of
    tier_compare_bits(K) + 1 bits, the excess and the step products; P * S P&L products;
    S scenario checks of MARGIN_BITS."""
    n, p, s, k = shape.n_assets, shape.n_instruments, shape.n_scenarios, shape.n_tiers
    return (
        n * (1 + (k - 1) * (tier_compare_bits(k) + 3)) + p * s + s * margin_bits(n, p)
    )  # fmt: skip


def context_length(shape: EpochParams) -> int:
    n, p, s, k = shape.n_assets, shape.n_instruments, shape.n_scenarios, shape.n_tiers
    return 9 + n * (2 * k + 1) + p * s


def context_cost(shape: EpochParams) -> int:
    return hash_list_cost(context_length(shape))


def bounds_cost(shape: EpochParams, cap_bits: int) -> int:
    """The mode's boolean; per asset its weight, K tier weights (range and comparison with the
    weight), K - 1 comparisons of neighbouring tier weights, K - 1 widths and the cap; per risk
    entry RISK_BITS + 1 bits."""
    n, p, s, k = shape.n_assets, shape.n_instruments, shape.n_scenarios, shape.n_tiers
    return (
        1
        + n * WEIGHT_BITS
        + 2 * n * k * WEIGHT_BITS
        + n * (k - 1) * WEIGHT_BITS
        + n * (k - 1) * AMOUNT_BITS
        + n * cap_bits
        + p * s * (RISK_BITS + 1)
    )


def totals_cost(n_totals: int, depth: int) -> int:
    return hash_list_cost(packed(n_totals, total_bits(depth)))


def merkle_cost(levels: int) -> int:
    """Per level: two Poseidon(2), one boolean, two left-child selections."""
    return levels * (2 * poseidon_cost(2) + 3)


def merkle_root_cost(levels: int) -> int:
    """Per level: one Poseidon(2), one boolean, one left-child selection."""
    return levels * (poseidon_cost(2) + 2)


def batch_cost(shape: EpochParams) -> int:
    levels, depth, n, p = shape.batch_levels, shape.tree_depth, shape.n_assets, shape.n_instruments
    b, upper, n_totals = 1 << levels, depth - levels, 2 * n
    per_account = (
        account_cost(n, p)
        + margin_bits(n, p)  # the shortfall's range check
        + 1  # (1 - mode) * shortfall === 0
        + margin_cost(shape)
    )
    return (
        context_cost(shape)
        + 2  # IsZero(batchIndex)
        + n_totals  # isFirst * oldTotals[i] === 0
        + 1  # isFirst * oldShortfall === 0
        + 2 * totals_cost(n_totals, depth)  # old and new TotalsHash
        + 2 * poseidon_cost(6)  # opened and next StateHash
        + 2  # the prevState selection and the empty-tree check for batch 0
        + b * per_account
        + (b - 1) * poseidon_cost(2)  # SubtreeRoot
        + upper  # Num2Bits(batchIndex)
        + merkle_cost(upper)
        + n_totals * total_bits(depth)  # new totals' range checks
    )


def solvency_cost(shape: EpochParams) -> int:
    depth, n, p = shape.tree_depth, shape.n_assets, shape.n_instruments
    fund = fund_bits(depth, n, p)
    return (
        1  # IsZero(batchCount), its output fixed to 0
        + context_cost(shape)
        + bounds_cost(shape, total_bits(depth))
        + 2 * n * total_bits(depth)  # the totals' range checks
        + totals_cost(2 * n, depth)
        + poseidon_cost(6)
        + 2 * n * RESERVE_BITS  # verified and declared reserves' range checks
        + n * (RESERVE_BITS + 2)  # coverage: equity <= verified + declared + debt
        + n * (RESERVE_BITS + 2)  # LessThan(129) per asset: its Num2Bits(130), for verifiedOnly
        + (n - 1)  # the AND of those bits (the first product is by the constant 1)
        + n * total_bits(depth)  # equity <= cap limit
        + 2 * fund  # the fund's range check and shortfall <= fund
        + 1  # (1 - mode) * shortfall === 0
        + 1  # domain * domain: the registry binding takes part in a constraint
    )


def account_margin_cost(shape: EpochParams) -> int:
    depth, n, p = shape.tree_depth, shape.n_assets, shape.n_instruments
    return (
        context_cost(shape)
        + account_cost(n, p)
        + margin_bits(n, p)  # the headroom's range check
        + margin_cost(shape)
        + depth  # Num2Bits(leafIndex)
        + merkle_root_cost(depth)
    )


MODEL: dict[str, int] = {
    "range64": 64,
    "range252": 252,
    "nnd64": 64,
    "nnd129": RESERVE_BITS + 1,
    "hash_lists": sum(hash_list_cost(n) for n in HASH_LENGTHS),
    "subtree3": 7 * poseidon_cost(2),
    "merkle3": merkle_cost(3),
    "merkle3_relaxed": merkle_cost(3) - 3,
    "merkle_root3": merkle_root_cost(3),
    "account2": account_cost(2, 2),
    "account4": account_cost(4, 4),
    "margin_unit": margin_cost(SMALL),
    "margin_tiers3": margin_cost(TIERS3),
    "margin_tiers16": margin_cost(TIERS16),
    "context": context_cost(SMALL),
    "context_bounds": bounds_cost(SMALL, total_bits(SMALL.tree_depth)),
    "totals": totals_cost(4, 4),
    "state": poseidon_cost(6),
    "batch_o1": batch_cost(SMALL),
    "solvency_o1": solvency_cost(SMALL),
    "account_margin_o1": account_margin_cost(SMALL),
}


@pytest.mark.parametrize("name", sorted(MODEL))
def test_count_follows_from_mirror_widths(name: str) -> None:
    assert MODEL[name] == PINNED[name]


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("batch_3_10_4_8_16_3", batch_cost),
        ("solvency_3_10_4_8_16_3", solvency_cost),
        ("margin_3_10_4_8_16_3", account_margin_cost),
    ],
)
def test_default_counts_follow_the_model(name: str, model: Callable[[EpochParams], int]) -> None:
    """The default instances are only compiled with --O2; their counts are within 2% below
    the --O1 model at the default shape, like the small instances'."""
    o1 = model(DEFAULT)
    assert 0 <= o1 - PINNED[name] <= 0.02 * o1

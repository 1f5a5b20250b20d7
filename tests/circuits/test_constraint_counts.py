"""Pinned constraint counts of every compiled circuit.

A count that moves means the constraint system changed. A drop can be a constraint that went
missing (a soundness bug the other tests may not catch); a rise costs proving time and may need
a bigger ptau. Changing a number in PINNED must be deliberate: update it only together with the
circuit change that explains it, and say why in that change.
"""

from __future__ import annotations

import pytest
from harness import CIRCUITS, HASH_LENGTHS, Circuit, Production
from zksolvency.prover.commitments import (
    AMOUNT_BITS,
    RESERVE_BITS,
    WEIGHT_BITS,
    total_bits,
    value_bits,
)
from zksolvency.prover.field import pack
from zksolvency.prover.keys import r1cs_header
from zksolvency.prover.poseidon import MAX_INPUTS, N_ROUNDS_F, N_ROUNDS_P

# Non-linear constraints (a product of two non-constant terms), as circom reports them.
PINNED: dict[str, int] = {
    # Production instances (circuits.json), compiled with --O2 as `setup` does: every
    # remaining constraint is non-linear.
    "batch_3_10_4": 15841,
    "solvency_10_4": 2203,
    "batch_1_4_2": 5147,
    "solvency_4_2": 1348,
    # The same templates at --O1 (the tampering builds), linear constraints kept.
    "batch_o1": 5201,  # BatchSolvency(1, 4, 2)
    "solvency_o1": 1354,  # Solvency(4, 2)
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
    "account2": 717,  # AccountLeaf(2, 128)
    "account4": 1014,  # AccountLeaf(4, 128)
    "context": 640,  # ContextHash(4, 1, 2, 128)
    "totals": 243,  # TotalsHash(4, 68)
    "state": 324,  # StateHash
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


def test_o2_only_folds_linear_work(
    batch_o1: Circuit, batch_1_4_2: Circuit, solvency_o1: Circuit, solvency_4_2: Circuit
) -> None:
    """--O2 folds linear constraints (and a few products by constants) but keeps every range
    check and hash: the production counts stay within 2% below the --O1 ones."""
    for o1, o2 in ((batch_o1, batch_1_4_2), (solvency_o1, solvency_4_2)):
        assert 0 <= o1.nonlinear_count() - o2.nonlinear_count() <= 0.02 * o1.nonlinear_count()


# --- where the unit counts come from ---------------------------------------------------------
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


def account_cost(n: int) -> int:
    """2n amount range checks, 2n value products, one comparison, the leaf hash."""
    return 2 * n * AMOUNT_BITS + 2 * n + value_bits(n) + hash_list_cost(1 + packed(2 * n, 64))


def context_cost(n: int) -> int:
    return n * WEIGHT_BITS + hash_list_cost(5 + n)


def totals_cost(n_totals: int, depth: int) -> int:
    return hash_list_cost(packed(n_totals, total_bits(depth)))


def merkle_cost(levels: int) -> int:
    """Per level: two Poseidon(2), one boolean, two left-child selections."""
    return levels * (2 * poseidon_cost(2) + 3)


def batch_cost(levels: int, depth: int, n: int) -> int:
    b, upper, n_totals = 1 << levels, depth - levels, 2 * n
    return (
        context_cost(n)
        + 2  # IsZero(batchIndex)
        + n_totals  # isFirst * oldTotals[i] === 0
        + 2 * totals_cost(n_totals, depth)  # old and new TotalsHash
        + 2 * poseidon_cost(5)  # opened and next StateHash
        + 2  # the prevState selection and the empty-tree check for batch 0
        + b * account_cost(n)
        + (b - 1) * poseidon_cost(2)  # SubtreeRoot
        + upper  # Num2Bits(batchIndex)
        + merkle_cost(upper)
        + n_totals * total_bits(depth)  # new totals' range checks
    )


def solvency_cost(depth: int, n: int) -> int:
    return (
        1  # IsZero(batchCount), its output fixed to 0
        + 2 * n * total_bits(depth)
        + totals_cost(2 * n, depth)
        + poseidon_cost(5)
        + n * RESERVE_BITS
        + n * (RESERVE_BITS + 1)
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
    "account2": account_cost(2),
    "account4": account_cost(4),
    "context": context_cost(2),
    "totals": totals_cost(4, 4),
    "state": poseidon_cost(5),
    "batch_o1": batch_cost(1, 4, 2),
    "solvency_o1": solvency_cost(4, 2),
}


@pytest.mark.parametrize("name", sorted(MODEL))
def test_count_follows_from_mirror_widths(name: str) -> None:
    assert MODEL[name] == PINNED[name]

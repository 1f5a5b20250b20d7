"""SubtreeRoot, MerkleUpdate and MerkleRoot (circuits/lib/merkle.circom) against prover/tree.py."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest
from harness import Circuit, assert_at, transplant
from zksolvency.prover.field import P
from zksolvency.prover.poseidon import poseidon
from zksolvency.prover.tree import climb, subtree_levels

LEVELS = 3


# --- SubtreeRoot -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_subtree_root_matches_mirror(subtree3: Circuit, seed: int) -> None:
    rng = random.Random(seed)
    leaves = [rng.randrange(P) for _ in range(1 << LEVELS)]
    w = subtree3.expect_pass({"leaves": leaves})
    levels = subtree_levels(leaves)
    assert subtree3.get(w, "root") == levels[-1][0]
    # nodes[] is level order: the leaves, then each level's parents. --O1 folds the leaves into
    # leaves[] and the last node into root, so compare the inner nodes.
    n = 1 << LEVELS
    inner = [x for level in levels[1:-1] for x in level]
    assert [subtree3.get(w, f"nodes[{n + i}]") for i in range(n - 2)] == inner


def test_subtree_root_binds_order(subtree3: Circuit) -> None:
    """Swapping two leaves (two accounts' positions) changes the root."""
    leaves = list(range(1, 9))
    swapped = [leaves[1], leaves[0], *leaves[2:]]
    a = subtree3.get(subtree3.expect_pass({"leaves": leaves}), "root")
    b = subtree3.get(subtree3.expect_pass({"leaves": swapped}), "root")
    assert a != b == subtree_levels(swapped)[-1][0]


@pytest.mark.parametrize("signal", ["leaves[5]", "nodes[9]", "nodes[12]", "root"])
def test_subtree_node_tamper_rejected(subtree3: Circuit, signal: str) -> None:
    w = subtree3.expect_pass({"leaves": list(range(1, 9))})
    subtree3.expect_constraint_fail(subtree3.tamper(w, signal, 424242))


# --- MerkleUpdate ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Update:
    old_leaf: int
    new_leaf: int
    index: int
    siblings: list[int]

    @classmethod
    def random(cls, rng: random.Random, index: int) -> Update:
        sib = [rng.randrange(P) for _ in range(LEVELS)]
        return cls(rng.randrange(P), rng.randrange(P), index, sib)

    def inputs(self) -> dict[str, Any]:
        return {
            "oldLeaf": self.old_leaf,
            "newLeaf": self.new_leaf,
            "pathBits": [(self.index >> i) & 1 for i in range(LEVELS)],
            "siblings": self.siblings,
        }

    def check(self, c: Circuit, w: list[int]) -> None:
        assert c.get(w, "oldRoot") == climb(self.old_leaf, self.index, self.siblings)
        assert c.get(w, "newRoot") == climb(self.new_leaf, self.index, self.siblings)


@pytest.mark.parametrize("index", [0, 1, 5, 7])
def test_merkle_update_matches_mirror(merkle3: Circuit, index: int) -> None:
    u = Update.random(random.Random(index), index)
    u.check(merkle3, merkle3.expect_pass(u.inputs()))


def _blend(node: int, sibling: int, bit: int) -> int:
    """One level with a non-boolean bit, computed as the circuit's formulas would."""
    left = (node + bit * (sibling - node)) % P
    return poseidon([left, (node + sibling - left) % P])


@pytest.mark.parametrize("bad", [2, P - 1])
def test_path_bit_not_boolean_rejected(
    merkle3: Circuit, merkle3_relaxed: Circuit, bad: int
) -> None:
    """ANCHORS attack 9: a path bit outside {0, 1} blends the two children.

    The calculator refuses it outright; and the witness that a circuit without the boolean
    constraint computes (every hash honest, roots of the blended nodes) satisfies every other
    constraint of the real circuit and fails exactly the boolean one.
    """
    inp = {"oldLeaf": 11, "newLeaf": 22, "pathBits": [1, bad, 0], "siblings": [33, 44, 55]}
    merkle3.expect_fail(inp, match="MerkleUpdate")

    relaxed = merkle3_relaxed.expect_pass(inp)
    for leaf, out in ((11, "oldRoot"), (22, "newRoot")):
        node = leaf
        for bit, sib in zip([1, bad, 0], [33, 44, 55], strict=True):
            node = _blend(node, sib, bit)
        assert merkle3_relaxed.get(relaxed, out) == node  # the hashes "work"

    forged = transplant(merkle3_relaxed, relaxed, merkle3)
    bad_constraints = merkle3.expect_constraint_fail(forged)
    bit_wire = merkle3.wire("pathBits[1]")
    assert len(bad_constraints) == 1
    a, b, _ = merkle3.r1cs.constraints[bad_constraints[0]]
    assert set(a) - {0} == set(b) - {0} == {bit_wire}  # bit * (bit - 1) = 0


def test_path_bit_flip_rejected(merkle3: Circuit) -> None:
    """Flipping a (still boolean) bit without recomputing the path breaks the left/right
    selection constraints."""
    w = merkle3.expect_pass(Update.random(random.Random(3), 3).inputs())
    merkle3.expect_constraint_fail(merkle3.tamper(w, "pathBits[0]", 0))


@pytest.mark.parametrize(
    "signal",
    ["oldLeft[0]", "newLeft[2]", "oldNode[1]", "newNode[2]", "siblings[1]", "oldLeaf", "newRoot"],
)
def test_merkle_node_tamper_rejected(merkle3: Circuit, signal: str) -> None:
    w = merkle3.expect_pass(Update.random(random.Random(6), 6).inputs())
    merkle3.expect_constraint_fail(merkle3.tamper(w, signal, 98765))


# --- MerkleRoot (the single-account proof's inclusion path) ----------------------------------

ROOT_BOOLEAN_CHECK = assert_at(
    "MerkleRoot",
    "lib/merkle.circom",
    "pathBits[i] * (pathBits[i] - 1)",
    after="template MerkleRoot(",
)


def _root_inputs(leaf: int, index: int, siblings: list[int]) -> dict[str, Any]:
    return {
        "leaf": leaf,
        "pathBits": [(index >> i) & 1 for i in range(LEVELS)],
        "siblings": siblings,
    }


@pytest.mark.parametrize("index", [0, 1, 2, 5, 7])
def test_merkle_root_matches_mirror(merkle_root3: Circuit, index: int) -> None:
    """The same path convention as MerkleUpdate and tree.climb / BatchedTree.inclusion_path."""
    rng = random.Random(50 + index)
    leaves = [rng.randrange(P) for _ in range(1 << LEVELS)]
    levels = subtree_levels(leaves)
    siblings = [levels[lv][(index >> lv) ^ 1] for lv in range(LEVELS)]
    w = merkle_root3.expect_pass(_root_inputs(leaves[index], index, siblings))
    assert merkle_root3.get(w, "root") == levels[-1][0] == climb(leaves[index], index, siblings)


def test_merkle_root_binds_position(merkle_root3: Circuit) -> None:
    """The same leaf and siblings at another index give another root: a leaf cannot be proven
    at a position it does not hold."""
    sib = [5, 6, 7]
    roots = {
        merkle_root3.get(merkle_root3.expect_pass(_root_inputs(9, i, sib)), "root")
        for i in range(1 << LEVELS)
    }
    assert len(roots) == 1 << LEVELS


@pytest.mark.parametrize("bad", [2, P - 1])
def test_merkle_root_bit_not_boolean_rejected(merkle_root3: Circuit, bad: int) -> None:
    inp = _root_inputs(11, 0, [33, 44, 55])
    inp["pathBits"][2] = bad
    merkle_root3.expect_fail(inp, match=ROOT_BOOLEAN_CHECK)


@pytest.mark.parametrize(
    ("signal", "value"),
    [
        ("left[1]", 3),
        ("node[2]", 3),
        ("pathBits[0]", 0),
        ("pathBits[1]", 2),
        ("siblings[2]", 1),
        ("root", 0),
    ],
)
def test_merkle_root_tamper_rejected(merkle_root3: Circuit, signal: str, value: int) -> None:
    w = merkle_root3.expect_pass(_root_inputs(1234, 5, [8, 9, 10]))
    merkle_root3.expect_constraint_fail(merkle_root3.tamper(w, signal, value))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20))
def test_merkle_update_random(merkle3: Circuit, seed: int) -> None:
    rng = random.Random(1000 + seed)
    u = Update.random(rng, rng.randrange(1 << LEVELS))
    u.check(merkle3, merkle3.expect_pass(u.inputs()))

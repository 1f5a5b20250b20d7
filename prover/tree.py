"""The account tree: a binary Poseidon Merkle tree filled one batch (subtree) at a time.

Batch k occupies the k-th subtree of height batch_levels. Batches are inserted left to right,
so when batch k goes in, every sibling on its upper path is either a finished left subtree or
an empty right one; `insertion_siblings` gives exactly the path the batch circuit sees.
Mirror of circuits/lib/merkle.circom and the tree part of circuits/batch.circom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .commitments import empty_nodes, leaf_hash
from .field import FieldArray
from .params import EpochParams
from .poseidon import hash_pairs, poseidon, poseidon_many


def padding_leaf(n_assets: int, n_instruments: int) -> int:
    """Leaf of an unused slot in the last batch: id commitment 0, zero balances and positions.

    No real account can have id commitment 0 (it would be a Poseidon preimage of 0).
    """
    return leaf_hash(0, [0] * n_assets, [0] * n_assets, [0] * n_instruments)


def _parents(nodes: Sequence[int]) -> list[int]:
    """The level above an even-length level: Poseidon of each (left, right) pair, batched."""
    return poseidon_many([nodes[i : i + 2] for i in range(0, len(nodes), 2)])


def subtree_levels(leaves: Sequence[int]) -> list[list[int]]:
    """All levels of a complete tree, leaves first, root last."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        levels.append(_parents(levels[-1]))
    return levels


@dataclass
class BatchedTree:
    """Levels are FieldArrays (32 bytes a node): a tree of 10^7 leaves takes about 640 MB."""

    params: EpochParams
    levels: list[FieldArray]  # levels[h]: every node at height h, leaves (padded) first
    upper: list[FieldArray]  # upper[l][j]: node over batches, empty nodes implied past the end

    @classmethod
    def build(cls, params: EpochParams, leaves: Sequence[int]) -> BatchedTree:
        if not leaves:
            raise ValueError("an epoch needs at least one account")
        if len(leaves) > params.max_accounts:
            raise ValueError(
                f"{len(leaves)} accounts do not fit a tree of depth {params.tree_depth} "
                f"({params.max_accounts} leaves)"
            )
        b = params.batch_size
        base = leaves if isinstance(leaves, FieldArray) else FieldArray.of(leaves)
        pad = padding_leaf(params.n_assets, params.n_instruments)
        padded = base + FieldArray.of([pad] * (-len(base) % b))
        # Every batch subtree at once, a level at a time: batches are aligned runs of b
        # leaves, so no pair straddles two of them, and each level is one batched hash.
        levels = [padded]
        for _ in range(params.batch_levels):
            levels.append(hash_pairs(levels[-1]))
        zeros = empty_nodes(params.tree_depth)
        upper = [levels[-1]]  # the batch roots
        for level in range(params.tree_depth - params.batch_levels):
            cur = upper[-1]
            # Past the last batch the tree is empty: an odd level pairs with the empty node.
            if len(cur) % 2:
                cur = cur + FieldArray.of([zeros[params.batch_levels + level]])
            upper.append(hash_pairs(cur))
        return cls(params, levels, upper)

    @property
    def leaves(self) -> FieldArray:
        """Every leaf, padding included (whole batches)."""
        return self.levels[0]

    @property
    def n_batches(self) -> int:
        return len(self.levels[0]) // self.params.batch_size

    @property
    def batch_levels_nodes(self) -> list[list[list[int]]]:
        """Per batch, its subtree's levels as lists (leaves first): for tests and small trees."""
        b = self.params.batch_size
        return [
            [lv[k * (b >> h) : (k + 1) * (b >> h)] for h, lv in enumerate(self.levels)]
            for k in range(self.n_batches)
        ]

    @property
    def root(self) -> int:
        return self.upper[-1][0]

    def batch_root(self, k: int) -> int:
        return self.levels[-1][k]

    def batch_leaves(self, k: int) -> list[int]:
        b = self.params.batch_size
        return self.levels[0][k * b : (k + 1) * b]

    def _upper_node(self, level: int, index: int) -> int:
        row = self.upper[level]
        if index < len(row):
            return row[index]
        return empty_nodes(self.params.tree_depth)[self.params.batch_levels + level]

    def insertion_siblings(self, k: int) -> list[int]:
        """Upper-path siblings of batch k at the moment it is inserted (right side still empty)."""
        zeros = empty_nodes(self.params.tree_depth)
        out = []
        for level in range(self.params.tree_depth - self.params.batch_levels):
            idx = k >> level
            if idx & 1:
                out.append(self._upper_node(level, idx - 1))
            else:
                out.append(zeros[self.params.batch_levels + level])
        return out

    def root_after(self, k: int) -> int:
        """Tree root once batches 0..k-1 are in (k = 0: the empty tree)."""
        if k == 0:
            return empty_nodes(self.params.tree_depth)[self.params.tree_depth]
        return climb(self.batch_root(k - 1), k - 1, self.insertion_siblings(k - 1))

    def roots_after(self) -> list[int]:
        """[root_after(k) for k in 0..n_batches], every climb advanced a level at a time.

        One batched hash per level instead of one hash per batch and level: the state chain of
        an epoch needs the root after every batch."""
        zeros = empty_nodes(self.params.tree_depth)
        # Nodes as rows of 32 bytes: each level's pairs are put together by numpy and hashed
        # from their bytes, with no int made per node until the roots.
        nodes = _rows(self.levels[-1])  # the batch roots, each climbing from its batch
        k = np.arange(len(nodes))
        for level in range(self.params.tree_depth - self.params.batch_levels):
            idx = k >> level
            right = (idx & 1).astype(bool)  # this node is a right child: its sibling is final
            empty = _rows(FieldArray.of([zeros[self.params.batch_levels + level]]))
            pairs = np.empty((len(nodes), 2, 32), dtype=np.uint8)
            pairs[:, 0] = np.where(right[:, None], 0, nodes)
            pairs[:, 1] = np.where(right[:, None], nodes, empty)
            # A right child's left sibling lies inside the filled tree: the final upper node.
            pairs[right, 0] = _rows(self.upper[level])[idx[right] - 1]
            nodes = _rows(hash_pairs(FieldArray(pairs.tobytes())))
        return [zeros[self.params.tree_depth], *FieldArray(nodes.tobytes())]

    def inclusion_path(self, leaf_index: int) -> list[int]:
        """Siblings from the leaf to the final root (bits are the leaf index, LSB first)."""
        k = leaf_index // self.params.batch_size
        if not 0 <= k < self.n_batches:
            raise IndexError(f"leaf {leaf_index} is outside the tree")
        path = [self.levels[h][(leaf_index >> h) ^ 1] for h in range(self.params.batch_levels)]
        for level in range(self.params.tree_depth - self.params.batch_levels):
            path.append(self._upper_node(level, (k >> level) ^ 1))
        return path


def _rows(a: FieldArray) -> np.ndarray:
    """A FieldArray's elements as an (n, 32) uint8 view of its bytes."""
    return np.frombuffer(a.tobytes(), dtype=np.uint8).reshape(-1, 32)


def climb(node: int, index: int, siblings: Sequence[int]) -> int:
    """Hash a node up to the root along `siblings`; bit i of `index` = node is a right child."""
    for level, sib in enumerate(siblings):
        node = poseidon([sib, node]) if (index >> level) & 1 else poseidon([node, sib])
    return node

"""Python mirror of every hash the circuits compute: ids, leaves, context, totals and states.

Each function here has a circuit twin (named in its docstring). Tests compare the two on random
inputs, and the prover uses these to build witnesses and inclusion packages.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from functools import cache

from .field import P, pack
from .poseidon import hash_list, poseidon

AMOUNT_BITS = 64  # every equity and debt is range-checked to 64 bits in-circuit
WEIGHT_BITS = 128  # price_e8 * 10^(maxdec - dec) < 2^64 * 10^18 < 2^124
RESERVE_BITS = 128
ID_HASH_BITS = 248  # ids hash below 2^248 so distinct ids can never alias mod p
MAX_TREE_DEPTH = 32

# "zksolvency-v1" as a big-endian integer: a domain tag so that a context hash can never be
# mistaken for any other Poseidon output the protocol produces.
CTX_TAG = int.from_bytes(b"zksolvency-v1", "big")


def total_bits(tree_depth: int) -> int:
    """Bits a per-asset total can need: 2^depth accounts of at most 2^64 - 1 each."""
    return AMOUNT_BITS + tree_depth


def value_bits(n_assets: int) -> int:
    """Bits of sum_i amount_i * weight_i over n assets (AccountLeaf's range check)."""
    return AMOUNT_BITS + WEIGHT_BITS + max(1, (n_assets - 1).bit_length())


def id_hash(account_id: str) -> int:
    """sha256 of the UTF-8 id, truncated to 248 bits: an integer that cannot wrap mod p."""
    digest = hashlib.sha256(account_id.encode("utf-8")).digest()
    return int.from_bytes(digest, "big") >> (256 - ID_HASH_BITS)


def derive_secret(seed: bytes, label: str, *parts: str | int) -> int:
    """A per-epoch pseudorandom field element (salts, blinds), reproducible from the epoch seed
    so that an interrupted run resumes with the same values."""
    msg = "\x1f".join([label, *map(str, parts)]).encode("utf-8")
    return int.from_bytes(hmac.new(seed, msg, hashlib.sha256).digest(), "big") >> 8


def id_commitment(account_id: str, salt: int) -> int:
    """Poseidon(idHash, salt). The salt hides the id inside siblings shared with other users."""
    if not 0 < salt < P:
        raise ValueError("salt must be a non-zero field element")
    return poseidon([id_hash(account_id), salt])


def leaf_hash(id_commit: int, equity: Sequence[int], debt: Sequence[int]) -> int:
    """AccountLeaf: HashList(idCommit, pack64(eq_0, debt_0, eq_1, debt_1, ...))."""
    if len(equity) != len(debt):
        raise ValueError("equity and debt must have one entry per asset")
    interleaved = [v for pair in zip(equity, debt, strict=True) for v in pair]
    return hash_list([id_commit, *pack(interleaved, AMOUNT_BITS)])


def context_hash(epoch: int, tree_depth: int, batch_levels: int, weights: Sequence[int]) -> int:
    """ContextHash: binds the epoch, the circuit shape and every asset's price weight."""
    for w in weights:
        if not 0 <= w < (1 << WEIGHT_BITS):
            raise ValueError(f"weight {w} does not fit in {WEIGHT_BITS} bits")
    return hash_list([CTX_TAG, epoch, tree_depth, batch_levels, len(weights), *weights])


def totals_hash(totals: Sequence[int], tree_depth: int) -> int:
    """TotalsHash over interleaved per-asset totals (eq_0, debt_0, ...), packed."""
    return hash_list(pack(list(totals), total_bits(tree_depth)))


def state_hash(ctx: int, batch_count: int, root: int, totals_h: int, blind: int) -> int:
    """State after `batch_count` batches. The blind keeps partial totals private."""
    return poseidon([ctx, batch_count, root, totals_h, blind])


@cache
def empty_nodes(depth: int = MAX_TREE_DEPTH) -> tuple[int, ...]:
    """empty_nodes()[l] is the root of an all-empty subtree of height l (empty leaf = 0)."""
    nodes = [0]
    for _ in range(depth):
        nodes.append(poseidon([nodes[-1], nodes[-1]]))
    return tuple(nodes)


def weight(price_e8: int, decimals: int, max_decimals: int) -> int:
    """Integer price per smallest unit, scaled so every asset shares one value unit."""
    scale: int = 10 ** (max_decimals - decimals)
    return price_e8 * scale

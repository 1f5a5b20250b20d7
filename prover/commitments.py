"""Python mirror of every hash the circuits compute: ids, leaves, context, totals and states.

Each function here has a circuit twin (named in its docstring). Tests compare the two on random
inputs, and the prover uses these to build witnesses and inclusion packages.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from functools import cache

import numpy as np

from .field import P, pack, pack_rows64
from .poseidon import hash_list, hash_list_many, poseidon, poseidon_many

AMOUNT_BITS = 64  # every equity and debt is range-checked to 64 bits in-circuit
WEIGHT_BITS = 128  # price_e8 * 10^(18 - dec) < 2^64 * 10^18 < 2^124
RISK_BITS = 128  # |L[i][s]| < 2^128: a risk entry is value units per 10^-8 contract
QTY_CODE_BITS = 64  # a position is m + 2^63 * b: 63-bit magnitude, sign bit on top
SIGN_BIT = 1 << 63
# Every value in the circuits is USD * 10^VALUE_DECIMALS whatever the snapshot's decimals, so
# that risk arrays can be published before the snapshot is known.
VALUE_DECIMALS = 26
MAX_ASSET_DECIMALS = 18
# L[i][s] = floor(R[i][s] * 10^RISK_SCALE) for R in USD per contract: with quantities in
# 10^-8 contracts, q * L is in value units (8 + 18 = 26).
RISK_SCALE = VALUE_DECIMALS - 8
RATE_ONE = 10_000  # haircut rates are basis points
RESERVE_BITS = 128
ID_HASH_BITS = 248  # ids hash below 2^248 so distinct ids can never alias mod p
MAX_TREE_DEPTH = 32

# "zksolvency-v2" as a big-endian integer: a domain tag so that a context hash can never be
# mistaken for any other Poseidon output the protocol produces. v2 added margin to the context.
CTX_TAG = int.from_bytes(b"zksolvency-v2", "big")

# Solvency public signals before the per-asset ones: [finalState, ctxHash, root, totalsCommit,
# batchCount, shortfall, insuranceFund, epoch, domain]. Then weights[N], verified[N],
# declared[N] and verifiedOnly.
SOLVENCY_FIXED_INPUTS = 9


def solvency_public_count(n_assets: int) -> int:
    """Public signals of the solvency circuit for `n_assets` asset slots."""
    return SOLVENCY_FIXED_INPUTS + 3 * n_assets + 1


UNBOUND_DOMAIN = 0  # a solvency proof made before any registry exists; no registry accepts it
CHAIN_ID_BITS = 64

STRICT = 0  # every account must meet the margin rule
SHORTFALL = 1  # failing accounts declare a shortfall that an insurance fund must cover


def total_bits(tree_depth: int) -> int:
    """Bits a per-asset total can need: 2^depth accounts of at most 2^64 - 1 each."""
    return AMOUNT_BITS + tree_depth


def value_bits(n_assets: int) -> int:
    """Bits of sum_i amount_i * weight_i over n assets (AccountLeaf's range check)."""
    return AMOUNT_BITS + WEIGHT_BITS + max(1, (n_assets - 1).bit_length())


def margin_bits(n_assets: int, n_instruments: int) -> int:
    """Bits of a scenario's margin value (circuit twin: margin.circom marginBits): 2N + P + 2
    terms, each below 2^192, plus a bit so that a negative value can never pass."""
    return 192 + (2 * n_assets + n_instruments + 2).bit_length() + 1


def tier_compare_bits(n_tiers: int) -> int:
    """Bits of Margin's tier comparison (circuit twin: margin.circom tierCompareBits): a bound
    is a sum of n_tiers - 1 widths below 2^64, so it and every amount are below 2^this."""
    return 64 + (n_tiers - 1).bit_length()


def fund_bits(tree_depth: int, n_assets: int, n_instruments: int) -> int:
    """Bits of the epoch's shortfall total and of the insurance fund it is compared with."""
    return margin_bits(n_assets, n_instruments) + tree_depth


def qty_code(q: int) -> int:
    """A signed quantity (10^-8 contracts) as the circuit's 64-bit code m + 2^63 * b."""
    if not -SIGN_BIT < q < SIGN_BIT:
        raise ValueError(f"quantity {q} does not fit in 63 bits and a sign")
    return -q | SIGN_BIT if q < 0 else q


def qty_from_code(code: int) -> int:
    if not 0 <= code < (1 << QTY_CODE_BITS) or code == SIGN_BIT:
        raise ValueError(f"{code} is not a canonical quantity code")
    return -(code ^ SIGN_BIT) if code & SIGN_BIT else code


def registry_domain(chain_id: int, registry: str | int) -> int:
    """(chainId << 160) | address: the registry's `domain()`, the solvency proof's public
    `domain`. Injective because chain ids are kept below 2^64 (the registry's constructor
    refuses larger ones) and an address is 160 bits; the result stays below 2^224 < p."""
    if isinstance(registry, str):
        text = registry.removeprefix("0x").removeprefix("0X")
        if len(text) != 40:
            raise ValueError(f"registry address {registry!r} is not 20 bytes of hex")
        try:
            address = int(text, 16)
        except ValueError:
            raise ValueError(f"registry address {registry!r} is not hex") from None
    else:
        address = registry
    if not 0 < address < 1 << 160:
        raise ValueError("registry address must be a non-zero 160-bit value")
    if not 0 < chain_id < 1 << CHAIN_ID_BITS:
        raise ValueError(f"chain id {chain_id} must be in 1..2^{CHAIN_ID_BITS} - 1")
    return chain_id << 160 | address


def split_domain(domain: int) -> tuple[int, str] | None:
    """(chain id, checksum-free 0x address) of a domain, or None for UNBOUND_DOMAIN."""
    check_domain(domain)
    if domain == UNBOUND_DOMAIN:
        return None
    return domain >> 160, f"0x{domain & ((1 << 160) - 1):040x}"


def registry_of(domain: int) -> dict[str, int | str] | None:
    """The manifest's `registry` field for a domain: {chain_id, address}, or None if unbound."""
    parts = split_domain(domain)
    return None if parts is None else {"chain_id": parts[0], "address": parts[1]}


def describe_domain(domain: int) -> str:
    parts = split_domain(domain)
    if parts is None:
        return "no registry (proved before deployment)"
    return f"chain {parts[0]}, registry {parts[1]}"


def check_domain(domain: int) -> None:
    if domain == UNBOUND_DOMAIN:
        return
    chain_id, address = domain >> 160, domain & ((1 << 160) - 1)
    if not (0 < chain_id < 1 << CHAIN_ID_BITS and address):
        raise ValueError(f"{domain} is not a registry domain (chainId << 160 | address)")


def id_hash(account_id: str) -> int:
    """sha256 of the UTF-8 id, truncated to 248 bits: an integer that cannot wrap mod p."""
    digest = hashlib.sha256(account_id.encode("utf-8")).digest()
    return int.from_bytes(digest, "big") >> (256 - ID_HASH_BITS)


def derive_secret(seed: bytes, label: str, *parts: str | int) -> int:
    """A per-epoch pseudorandom field element (salts, blinds), reproducible from the epoch seed
    so that an interrupted run resumes with the same values."""
    msg = "\x1f".join([label, *map(str, parts)]).encode("utf-8")
    return int.from_bytes(hmac.digest(seed, msg, "sha256"), "big") >> 8  # HMAC-SHA256


def secret_deriver(seed: bytes, label: str) -> Callable[[str | int], int]:
    """derive_secret(seed, label, part) for one part at a time, for many parts: HMAC-SHA256
    (RFC 2104) written out over two SHA-256 states that absorb the key and the label once, so
    a call costs two state copies instead of a key schedule (2.2x faster at 10^5 ids)."""
    key = hashlib.sha256(seed).digest() if len(seed) > 64 else seed
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(f"{label}\x1f".encode())
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def derive(part: str | int) -> int:
        h = inner.copy()
        h.update(str(part).encode("utf-8"))
        o = outer.copy()
        o.update(h.digest())
        return int.from_bytes(o.digest(), "big") >> 8

    return derive


def id_commitment(account_id: str, salt: int) -> int:
    """Poseidon(idHash, salt). The salt hides the id inside siblings shared with other users."""
    if not 0 < salt < P:
        raise ValueError("salt must be a non-zero field element")
    return poseidon([id_hash(account_id), salt])


def id_commitments(account_ids: Sequence[str], salts: Sequence[int]) -> list[int]:
    """[id_commitment(i, s) for i, s in zip(account_ids, salts)], hashed as one batch."""
    rows = []
    for account_id, salt in zip(account_ids, salts, strict=True):
        if not 0 < salt < P:
            raise ValueError("salt must be a non-zero field element")
        rows.append([id_hash(account_id), salt])
    return poseidon_many(rows)


def _leaf_preimage(
    id_commit: int, equity: Sequence[int], debt: Sequence[int], qty_codes: Sequence[int]
) -> list[int]:
    if len(equity) != len(debt):
        raise ValueError("equity and debt must have one entry per asset")
    interleaved = [v for pair in zip(equity, debt, strict=True) for v in pair]
    return [id_commit, *pack(interleaved, AMOUNT_BITS), *pack(list(qty_codes), QTY_CODE_BITS)]


def leaf_hash(
    id_commit: int, equity: Sequence[int], debt: Sequence[int], qty_codes: Sequence[int]
) -> int:
    """AccountLeaf: HashList(idCommit, pack64(eq_0, debt_0, eq_1, ...), pack64(qty codes))."""
    return hash_list(_leaf_preimage(id_commit, equity, debt, qty_codes))


def leaf_hashes(
    rows: Iterable[tuple[int, Sequence[int], Sequence[int], Sequence[int]]],
) -> list[int]:
    """[leaf_hash(*r) for r in rows], (id_commit, equity, debt, qty_codes) each, batched."""
    return hash_list_many([_leaf_preimage(*r) for r in rows])


def leaf_hashes_of(
    id_commits: Sequence[int], amounts: np.ndarray, qty_codes: Sequence[Sequence[int]]
) -> list[int]:
    """leaf_hashes with the amounts as a uint64 matrix, one row (eq_0, debt_0, eq_1, ...) per
    leaf: packed through their bytes (field.pack_rows64), which a uint64 cannot overflow."""
    if amounts.dtype != np.uint64 or amounts.shape[1] % 2:
        raise ValueError("amounts must be uint64 rows of equity and debt pairs")
    flat: dict[int, list[int]] = {}  # per length: most accounts hold no position
    pre = []
    for c, packed, q in zip(id_commits, pack_rows64(amounts), qty_codes, strict=True):
        if any(q):
            codes = pack(list(q), QTY_CODE_BITS)
        else:
            if len(q) not in flat:
                flat[len(q)] = pack([0] * len(q), QTY_CODE_BITS)
            codes = flat[len(q)]
        pre.append([c, *packed, *codes])
    return hash_list_many(pre)


def context_preimage(
    epoch: int,
    tree_depth: int,
    batch_levels: int,
    mode: int,
    weights: Sequence[int],
    tier_weights: Sequence[Sequence[int]],
    tier_widths: Sequence[Sequence[int]],
    cap_limits: Sequence[int],
    risk: Sequence[Sequence[int]],
) -> list[int]:
    """The field elements ContextHash hashes, checked against ContextBounds' ranges (the
    solvency circuit would refuse anything else). Risk entries are signed."""
    n = len(weights)
    k = len(tier_weights[0]) if tier_weights else 0
    p = len(risk)
    s = len(risk[0]) if risk else 0
    if mode not in (STRICT, SHORTFALL):
        raise ValueError(f"mode must be {STRICT} (strict) or {SHORTFALL} (shortfall)")
    if k < 2 or p < 1 or s < 1:
        raise ValueError("the circuits need at least 2 tiers, 1 instrument and 1 scenario")
    if len(tier_weights) != n or len(tier_widths) != n or len(cap_limits) != n:
        raise ValueError("tier weights, tier widths and cap limits need one row per asset")
    cap_max = 1 << (AMOUNT_BITS + tree_depth)
    for a in range(n):
        if not 0 <= weights[a] < (1 << WEIGHT_BITS):
            raise ValueError(f"weight {weights[a]} does not fit in {WEIGHT_BITS} bits")
        if len(tier_weights[a]) != k or len(tier_widths[a]) != k - 1:
            raise ValueError(f"asset {a}: need {k} tier weights and {k - 1} tier widths")
        if not all(0 <= w <= weights[a] for w in tier_weights[a]):
            raise ValueError(f"asset {a}: tier weights must lie in [0, weight]")
        if any(x < y for x, y in zip(tier_weights[a], tier_weights[a][1:], strict=False)):
            raise ValueError(f"asset {a}: tier weights must not rise from tier to tier")
        if not all(0 <= d < (1 << AMOUNT_BITS) for d in tier_widths[a]):
            raise ValueError(f"asset {a}: tier widths must fit in {AMOUNT_BITS} bits")
        if not 0 <= cap_limits[a] < cap_max:
            raise ValueError(f"asset {a}: cap limit must be below 2^{AMOUNT_BITS + tree_depth}")
    for row in risk:
        if len(row) != s or not all(-(1 << RISK_BITS) <= v < (1 << RISK_BITS) for v in row):
            raise ValueError(f"risk rows need {s} entries in [-2^{RISK_BITS}, 2^{RISK_BITS})")
    return [
        CTX_TAG,
        epoch,
        tree_depth,
        batch_levels,
        n,
        p,
        s,
        k,
        mode,
        *weights,
        *(w for row in tier_weights for w in row),
        *(d for row in tier_widths for d in row),
        *cap_limits,
        *(v % P for row in risk for v in row),
    ]


def context_hash(
    epoch: int,
    tree_depth: int,
    batch_levels: int,
    mode: int,
    weights: Sequence[int],
    tier_weights: Sequence[Sequence[int]],
    tier_widths: Sequence[Sequence[int]],
    cap_limits: Sequence[int],
    risk: Sequence[Sequence[int]],
) -> int:
    """ContextHash: binds the epoch, the circuit shape, the mode, prices, haircuts and risk."""
    return hash_list(
        context_preimage(
            epoch,
            tree_depth,
            batch_levels,
            mode,
            weights,
            tier_weights,
            tier_widths,
            cap_limits,
            risk,
        )
    )


def totals_hash(totals: Sequence[int], tree_depth: int) -> int:
    """TotalsHash over interleaved per-asset totals (eq_0, debt_0, ...), packed."""
    return hash_list(pack(list(totals), total_bits(tree_depth)))


def state_hash(
    ctx: int, batch_count: int, root: int, totals_h: int, shortfall: int, blind: int
) -> int:
    """State after `batch_count` batches. The blind keeps partial totals private."""
    return poseidon([ctx, batch_count, root, totals_h, shortfall, blind])


@cache
def empty_nodes(depth: int = MAX_TREE_DEPTH) -> tuple[int, ...]:
    """empty_nodes()[l] is the root of an all-empty subtree of height l (empty leaf = 0)."""
    nodes = [0]
    for _ in range(depth):
        nodes.append(poseidon([nodes[-1], nodes[-1]]))
    return tuple(nodes)


def weight(price_e8: int, decimals: int) -> int:
    """Integer price per smallest unit in value units (USD * 10^VALUE_DECIMALS)."""
    if not 0 <= decimals <= MAX_ASSET_DECIMALS:
        raise ValueError(f"decimals must be 0..{MAX_ASSET_DECIMALS}")
    scale: int = 10 ** (MAX_ASSET_DECIMALS - decimals)
    return price_e8 * scale

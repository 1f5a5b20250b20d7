"""HashList and Pack (circuits/lib/hash.circom) and the generated constants, against the mirror
(prover/poseidon.py hash_list, prover/field.py pack, prover/commitments.py)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from harness import HASH_LENGTHS, PACK_CASES, Circuit, raw_pack
from zksolvency.prover.commitments import CTX_TAG, empty_nodes
from zksolvency.prover.field import P, pack
from zksolvency.prover.poseidon import hash_list

N_IN = max(HASH_LENGTHS)


def _hash_outputs(c: Circuit, values: list[int]) -> list[int]:
    w = c.expect_pass({"in": values})
    return c.get_list(w, "out", len(HASH_LENGTHS))


def _check_hash_lists(c: Circuit, values: list[int]) -> None:
    got = _hash_outputs(c, values)
    assert got == [hash_list(values[:n]) for n in HASH_LENGTHS]


# --- HashList --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_hash_list_matches_mirror(hash_lists: Circuit, seed: int) -> None:
    """Lengths 1, 2, 16 (one Poseidon), 17, 31 (one chain step, full at 31), 32, 40."""
    rng = random.Random(seed)
    _check_hash_lists(hash_lists, [rng.randrange(P) for _ in range(N_IN)])


def test_hash_list_edge_values(hash_lists: Circuit) -> None:
    _check_hash_lists(hash_lists, [0] * N_IN)
    _check_hash_lists(hash_lists, [P - 1] * N_IN)


def test_hash_list_binds_every_position(hash_lists: Circuit) -> None:
    """Changing any one input changes every digest whose length covers it."""
    base = list(range(1, N_IN + 1))
    before = _hash_outputs(hash_lists, base)
    for pos in [0, 1, 15, 16, 30, 31, 39]:
        after = _hash_outputs(hash_lists, [*base[:pos], base[pos] + 1, *base[pos + 1 :]])
        for k, n in enumerate(HASH_LENGTHS):
            assert (after[k] != before[k]) == (pos < n), (pos, n)


@pytest.mark.parametrize("signal", ["h[3].digest[0]", "h[5].digest[1]", "h[6].digest[1]"])
def test_hash_chain_tamper_rejected(hash_lists: Circuit, signal: str) -> None:
    w = hash_lists.expect_pass({"in": list(range(N_IN))})
    hash_lists.expect_constraint_fail(hash_lists.tamper(w, signal, 7))


def test_hash_output_tamper_rejected(hash_lists: Circuit) -> None:
    w = hash_lists.expect_pass({"in": list(range(N_IN))})
    for k in range(len(HASH_LENGTHS)):
        hash_lists.expect_constraint_fail(hash_lists.tamper(w, f"out[{k}]", 0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 30))
def test_hash_list_random(hash_lists: Circuit, seed: int) -> None:
    rng = random.Random(seed)
    _check_hash_lists(hash_lists, [rng.randrange(P) for _ in range(N_IN)])


# --- Pack ------------------------------------------------------------------------------------


def _pack_inputs(values: list[list[int]]) -> dict[str, Any]:
    return {"one": 1, **{f"in{k}": v for k, v in enumerate(values)}}


def _pack_outputs(c: Circuit, w: list[int]) -> list[list[int]]:
    return [
        c.get_list(w, f"o{k}", len(pack([0] * length, bits)))
        for k, (length, bits) in enumerate(PACK_CASES)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pack_matches_mirror(packs: Circuit, seed: int) -> None:
    rng = random.Random(seed)
    values = [[rng.randrange(1 << bits) for _ in range(n)] for n, bits in PACK_CASES]
    w = packs.expect_pass(_pack_inputs(values))
    assert _pack_outputs(packs, w) == [
        pack(v, bits) for v, (_, bits) in zip(values, PACK_CASES, strict=True)
    ]


def test_pack_extremes_match_mirror(packs: Circuit) -> None:
    for fill in (0, -1):
        values = [[(1 << bits) - 1 if fill else 0] * n for n, bits in PACK_CASES]
        w = packs.expect_pass(_pack_inputs(values))
        got = _pack_outputs(packs, w)
        assert got == [pack(v, bits) for v, (_, bits) in zip(values, PACK_CASES, strict=True)]
        assert all(x < P for row in got for x in row)


def test_pack_alone_is_not_injective(packs: Circuit) -> None:
    """Binance #4/#5: without range checks a limb can carry into its neighbour.

    (e - 2^64, d + 1) packs exactly like (e, d), i.e. a "negative" equity p - (2^64 - e) with one
    more unit of debt is indistinguishable after packing. Pack itself cannot see this; every
    caller (AccountLeaf, TotalsHash's users) must range-check first, which
    test_account.py::test_packed_limbs_range_checked and the batch tests hold them to.
    """
    e, d = 1000, 7
    honest = [[e, d, 0, 0], [0] * 8, [0] * 4, [0] * 8, [0] * 3]
    forged = [[(e - (1 << 64)) % P, d + 1, 0, 0], [0] * 8, [0] * 4, [0] * 8, [0] * 3]
    out_honest = _pack_outputs(packs, packs.expect_pass(_pack_inputs(honest)))
    out_forged = _pack_outputs(packs, packs.expect_pass(_pack_inputs(forged)))
    assert (
        out_forged
        == out_honest
        == [raw_pack(v, b) for v, (_, b) in zip(honest, PACK_CASES, strict=True)]
    )


def test_pack_output_tamper_rejected(packs: Circuit) -> None:
    values = [[n + i for i in range(n)] for n, _ in PACK_CASES]
    w = packs.expect_pass(_pack_inputs(values))
    packs.expect_constraint_fail(packs.tamper(w, "o0[0]", 1))
    packs.expect_constraint_fail(packs.tamper(w, "o4[1]", 1))
    packs.expect_constraint_fail(packs.tamper(w, "in2[3]", 0))


# --- constants.circom ------------------------------------------------------------------------


def test_constants_match_mirror(constants: Circuit) -> None:
    """EMPTY_NODE(l) and CTX_TAG() are generated from the mirror; they must still agree."""
    w = constants.expect_pass({})
    assert constants.get_list(w, "empty", 33) == list(empty_nodes(32))
    assert constants.get(w, "tag") == CTX_TAG

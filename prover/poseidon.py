"""Poseidon over BN254, bit-for-bit compatible with circomlib's `Poseidon(nInputs)` template.

The round constants and matrices are circomlibjs's optimised set (`poseidon_constants_opt.json`),
vendored in `data/` because users verify inclusion offline, without Node. The permutation follows
the optimised schedule (sparse partial rounds) that circomlib's `poseidon.circom` also uses.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from functools import cache
from importlib import resources

from .field import P

N_ROUNDS_F = 8
N_ROUNDS_P = (56, 57, 56, 60, 60, 63, 64, 63, 60, 66, 60, 65, 70, 60, 64, 68)
MAX_INPUTS = len(N_ROUNDS_P)  # circomlib supports 1..16 inputs (state width t = 2..17)


class _Params:
    __slots__ = ("C", "M", "P", "S", "rounds_p", "t")

    def __init__(self, t: int, raw: dict[str, list]) -> None:  # type: ignore[type-arg]
        i = t - 2
        self.t = t
        self.rounds_p = N_ROUNDS_P[i]
        self.C = [int(x, 16) for x in raw["C"][i]]
        self.S = [int(x, 16) for x in raw["S"][i]]
        self.M = [[int(x, 16) for x in row] for row in raw["M"][i]]
        self.P = [[int(x, 16) for x in row] for row in raw["P"][i]]


@cache
def _raw() -> dict[str, list]:  # type: ignore[type-arg]
    blob = resources.files(__package__).joinpath("data/poseidon_constants_opt.json.gz").read_bytes()
    data: dict[str, list] = json.loads(gzip.decompress(blob))  # type: ignore[type-arg]
    return data


@cache
def _params(t: int) -> _Params:
    return _Params(t, _raw())


def _mix(state: list[int], m: list[list[int]]) -> list[int]:
    t = len(state)
    return [sum(m[j][i] * state[j] for j in range(t)) % P for i in range(t)]


def poseidon(inputs: Sequence[int]) -> int:
    """Hash 1..16 field elements; equals circomlib `Poseidon(len(inputs))` output."""
    n = len(inputs)
    if not 1 <= n <= MAX_INPUTS:
        raise ValueError(f"Poseidon takes 1..{MAX_INPUTS} inputs, got {n}")
    t = n + 1
    prm = _params(t)
    C, S, M, Pm = prm.C, prm.S, prm.M, prm.P
    half = N_ROUNDS_F // 2

    state = [0, *(x % P for x in inputs)]
    state = [(a + C[i]) % P for i, a in enumerate(state)]
    for r in range(half - 1):
        state = [pow(a, 5, P) for a in state]
        state = [(a + C[(r + 1) * t + i]) % P for i, a in enumerate(state)]
        state = _mix(state, M)
    state = [pow(a, 5, P) for a in state]
    state = [(a + C[half * t + i]) % P for i, a in enumerate(state)]
    state = _mix(state, Pm)

    base = (half + 1) * t
    width = 2 * t - 1
    for r in range(prm.rounds_p):
        s0 = (pow(state[0], 5, P) + C[base + r]) % P
        row = S[width * r : width * (r + 1)]
        new0 = row[0] * s0
        for j in range(1, t):
            new0 += row[j] * state[j]
        for k in range(1, t):
            state[k] = (state[k] + s0 * row[t + k - 1]) % P
        state[0] = new0 % P

    base2 = base + prm.rounds_p
    for r in range(half - 1):
        state = [pow(a, 5, P) for a in state]
        state = [(a + C[base2 + r * t + i]) % P for i, a in enumerate(state)]
        state = _mix(state, M)
    state = [pow(a, 5, P) for a in state]
    return sum(M[j][0] * state[j] for j in range(t)) % P


def hash_list(values: Sequence[int]) -> int:
    """Hash any number of field elements: one Poseidon up to 16, else a chain.

    The chain absorbs 16 elements, then 15 more per step with the running digest first:
    h = Poseidon(v[0:16]); h = Poseidon(h, v[16:31]); ...
    Mirrors circuits/lib/hash.circom HashList.
    """
    n = len(values)
    if n == 0:
        raise ValueError("hash_list needs at least one value")
    h = poseidon(values[:MAX_INPUTS])
    for start in range(MAX_INPUTS, n, MAX_INPUTS - 1):
        h = poseidon([h, *values[start : start + MAX_INPUTS - 1]])
    return h

"""Poseidon over BN254, bit-for-bit compatible with circomlib's `Poseidon(nInputs)` template.

The round constants and matrices are circomlibjs's optimised set (`poseidon_constants_opt.json`),
vendored in `data/` because users verify inclusion offline, without Node. The permutation follows
the optimised schedule (sparse partial rounds) that circomlib's `poseidon.circom` also uses.

`poseidon_py` is that schedule in Python, the reference. `poseidon` and the batch functions run
the compiled `_poseidon` extension instead when it is built and, at first use, reproduces
circomlib's published vectors and `poseidon_py` at every arity; otherwise they run Python.
ZKSOLVENCY_POSEIDON=python forces Python; =native makes a missing or failing extension an error.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources
from typing import Protocol, TypeVar, cast

from .field import FieldArray, P

N_ROUNDS_F = 8
N_ROUNDS_P = (56, 57, 56, 60, 60, 63, 64, 63, 60, 66, 60, 65, 70, 60, 64, 68)
MAX_INPUTS = len(N_ROUNDS_P)  # circomlib supports 1..16 inputs (state width t = 2..17)

ENV_VAR = "ZKSOLVENCY_POSEIDON"  # "python", "native", or unset / "auto"
# circomlib's published vectors (test/poseidoncircuit.js): the native self-check's anchor.
CIRCOMLIB_VECTORS = (
    ([1, 2], 0x115CC0F5E7D690413DF64C6B9662E9CF2A3617F2743245519E19607A4417189A),
    ([1, 2, 3, 4], 0x299C867DB6C1FDD79DCEFA40E4510B9837E60EBB1CE0663DBAA525DF65250465),
)
_CHUNK = 1 << 12  # rows per native call: bounds the byte buffers of a large batch
# Chunks of one batch run on this many threads: the extension releases the GIL while it hashes.
_THREADS = max(1, os.cpu_count() or 1)
_pool: ThreadPoolExecutor | None = None
R = TypeVar("R")


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


def _width(n_inputs: int) -> int:
    if not 1 <= n_inputs <= MAX_INPUTS:
        raise ValueError(f"Poseidon takes 1..{MAX_INPUTS} inputs, got {n_inputs}")
    return n_inputs + 1


def poseidon_py(inputs: Sequence[int]) -> int:
    """The pure-Python Poseidon: the reference that the native module is checked against."""
    t = _width(len(inputs))
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


class _Native(Protocol):
    """The compiled `_poseidon` module (prover/_poseidon.c)."""

    def set_params(
        self, t: int, rounds_p: int, c: bytes, s: bytes, m: bytes, p: bytes, /
    ) -> None: ...

    def hash_many(self, t: int, data: bytes, /) -> bytes: ...


_lock = threading.Lock()
_resolved = False  # set once _native is final; read without the lock on the hot path
_native: _Native | None = None


def _fe_bytes(values: Iterable[int]) -> bytes:
    """32-byte little-endian canonical encodings, as the native module reads them."""
    return b"".join((x % P).to_bytes(32, "little") for x in values)


def _load_native() -> _Native:
    """Import the extension, hand it every width's constants and check it against Python."""
    mod = cast(_Native, importlib.import_module(f"{__package__}._poseidon"))
    for t in range(2, MAX_INPUTS + 2):
        prm = _params(t)
        mod.set_params(
            t,
            prm.rounds_p,
            _fe_bytes(prm.C),
            _fe_bytes(prm.S),
            _fe_bytes(x for row in prm.M for x in row),
            _fe_bytes(x for row in prm.P for x in row),
        )
    # Plus one case per arity, values near p among full-width ones, valued by the reference.
    cases = list(CIRCOMLIB_VECTORS)
    for n in range(1, MAX_INPUTS + 1):
        xs = [P - 1 - k if k % 2 else pow(5, 17 * n + k, P) for k in range(n)]
        cases.append((xs, poseidon_py(xs)))
    for inputs, expected in cases:
        got = int.from_bytes(mod.hash_many(len(inputs) + 1, _fe_bytes(inputs)), "little")
        if got != expected:
            raise RuntimeError(
                f"self-check: Poseidon of {len(inputs)} inputs gave {got:#x}, not {expected:#x}"
            )
    return mod


def _resolve() -> _Native | None:
    """Pick the backend once per process (ENV_VAR), loading and checking the extension."""
    global _native, _resolved
    with _lock:
        if _resolved:
            return _native
        mode = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
        if mode not in ("auto", "python", "native"):
            raise ValueError(f"{ENV_VAR} must be python, native or auto, not {mode!r}")
        if mode != "python":
            try:
                _native = _load_native()
            except ImportError as e:
                if mode == "native":
                    raise RuntimeError(f"{ENV_VAR}=native: the extension is not built ({e})") from e
            except (RuntimeError, ValueError) as e:
                # Built but wrong: never hash with it, and say so even when falling back.
                if mode == "native":
                    raise RuntimeError(f"{ENV_VAR}=native: the extension fails ({e})") from e
                warnings.warn(f"native Poseidon disabled: {e}", RuntimeWarning, stacklevel=3)
        _resolved = True
        return _native


def backend() -> str:
    """What `poseidon` and the batch functions run on: "native" or "python"."""
    return "python" if _resolve() is None else "native"


def poseidon(inputs: Sequence[int]) -> int:
    """Hash 1..16 field elements (reduced mod p); equals circomlib `Poseidon(len(inputs))`."""
    native = _native if _resolved else _resolve()
    if native is None:
        return poseidon_py(inputs)
    t = _width(len(inputs))
    return int.from_bytes(native.hash_many(t, _fe_bytes(inputs)), "little")


def poseidon_many(rows: Sequence[Sequence[int]]) -> list[int]:
    """[poseidon(r) for r in rows], all rows of one arity, in few native calls."""
    if not rows:
        return []
    n = len(rows[0])
    t = _width(n)
    if any(len(r) != n for r in rows):
        raise ValueError("poseidon_many needs rows of one arity")
    native = _native if _resolved else _resolve()
    if native is None:
        return [poseidon_py(r) for r in rows]

    step = _step(len(rows))

    def run(start: int) -> list[int]:
        chunk = rows[start : start + step]
        digests = memoryview(native.hash_many(t, _fe_bytes(x for r in chunk for x in r)))
        return [int.from_bytes(digests[i : i + 32], "little") for i in range(0, len(digests), 32)]

    return [d for part in _chunks(run, range(0, len(rows), step)) for d in part]


def _step(n: int) -> int:
    """Rows per native call for n rows: at most _CHUNK, and few enough that every thread of
    the pool gets an equal share (6,250 rows in chunks of 4,096 and 2,154 kept one thread
    busy for two thirds of the time); at least 256, below which a thread costs more than it
    saves."""
    return max(256, min(_CHUNK, -(-n // _THREADS)))


def hash_pairs(level: FieldArray) -> FieldArray:
    """The level above an even-length level of a binary tree: Poseidon(left, right) of each
    pair. Natively the level's bytes are already the rows, so no int is made per node."""
    n = len(level)
    if n % 2:
        raise ValueError("hash_pairs needs an even number of nodes")
    native = _native if _resolved else _resolve()
    if native is None:
        return FieldArray.of(poseidon_many([level[i : i + 2] for i in range(0, n, 2)]))
    buf = level.tobytes()
    step = 64 * _step(n // 2)  # rows of two elements

    def run(start: int) -> bytes:
        return native.hash_many(3, buf[start : start + step])

    return FieldArray(b"".join(_chunks(run, range(0, len(buf), step))))


def _chunks(run: Callable[[int], R], starts: range) -> list[R]:
    """run(start) for every chunk, in order: on the thread pool when there is more than one."""
    if len(starts) <= 1 or _THREADS == 1:
        return [run(start) for start in starts]
    return list(_executor().map(run, starts))


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="poseidon")
        return _pool


def hash_list_many(rows: Sequence[Sequence[int]]) -> list[int]:
    """[hash_list(r) for r in rows]: rows of one length share each step of the chain."""
    out = [0] * len(rows)
    by_length: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_length.setdefault(len(r), []).append(i)
    for n, idx in by_length.items():
        if n == 0:
            raise ValueError("hash_list needs at least one value")
        group = [rows[i] for i in idx]
        h = poseidon_many([r[:MAX_INPUTS] for r in group])
        for start in range(MAX_INPUTS, n, MAX_INPUTS - 1):
            step = [[d, *r[start : start + MAX_INPUTS - 1]] for d, r in zip(h, group, strict=True)]
            h = poseidon_many(step)
        for i, d in zip(idx, h, strict=True):
            out[i] = d
    return out


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

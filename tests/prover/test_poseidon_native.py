"""The native Poseidon (prover/_poseidon.c) must equal the pure-Python reference everywhere."""

from __future__ import annotations

import importlib
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from zksolvency.prover import poseidon as pos
from zksolvency.prover.commitments import (
    empty_nodes,
    id_commitment,
    id_commitments,
    leaf_hash,
    leaf_hashes,
)
from zksolvency.prover.field import P
from zksolvency.prover.params import EpochParams
from zksolvency.prover.poseidon import (
    MAX_INPUTS,
    hash_list,
    hash_list_many,
    poseidon,
    poseidon_many,
    poseidon_py,
)
from zksolvency.prover.tree import BatchedTree, padding_leaf

# circomlib's published vectors (test/poseidoncircuit.js, circomlibjs test/poseidon.js).
VECTORS = [
    *pos.CIRCOMLIB_VECTORS,
    ([1], 18586133768512220936620570745912940619677854269274689475585506675881198879027),
    ([3, 4], 14763215145315200506921711489642608356394854266165572616578112107564877678998),
    ([1, 2, 3, 4, 5], 6183221330272524995739186171720101788151706631170188140075976616310159254464),
]
# Inputs are reduced mod p, negatives included: these sit on every edge of that reduction.
EDGES = [0, 1, 2, P - 2, P - 1, P, P + 1, 2 * P - 1, 2**253, 2**254 - 1, 2**254, 2**256 - 1]
EDGES += [-1, -2, -P + 1, -P, -(2**254), -(2**256)]


def _le(values: Sequence[int]) -> bytes:
    return b"".join(x.to_bytes(32, "little") for x in values)


@pytest.fixture(scope="module")
def native() -> Any:
    """The extension with its parameters set and self-checked (setting them again is a no-op)."""
    return pos._load_native()


def _native_hash(native: Any, inputs: Sequence[int]) -> int:
    data = _le([x % P for x in inputs])
    return int.from_bytes(native.hash_many(len(inputs) + 1, data), "little")


def test_native_module_is_built_in_this_install() -> None:
    # The extension is optional in pyproject so that installs without a compiler work; a dev
    # install must have it, or a broken build would go unnoticed behind the fallback.
    importlib.import_module("zksolvency.prover._poseidon")
    if os.environ.get(pos.ENV_VAR, "").lower() != "python":
        assert pos.backend() == "native"


@pytest.mark.parametrize(("inputs", "expected"), VECTORS)
def test_circomlib_vectors_on_both_backends(native: Any, inputs: list[int], expected: int) -> None:
    assert poseidon_py(inputs) == expected
    assert _native_hash(native, inputs) == expected
    assert poseidon(inputs) == expected


def _random_rows(n: int, count: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    rows = [[EDGES[(i + k) % len(EDGES)] for k in range(n)] for i in range(len(EDGES))]
    while len(rows) < count:
        kind = rng.randrange(3)
        if kind == 0:
            rows.append([rng.randrange(P) for _ in range(n)])
        elif kind == 1:
            rows.append([rng.randrange(-(2**300), 2**300) for _ in range(n)])
        else:
            rows.append([rng.choice(EDGES) + rng.randrange(-3, 4) for _ in range(n)])
    return rows


@pytest.mark.parametrize("n", range(1, MAX_INPUTS + 1))
def test_native_equals_python_at_every_arity(native: Any, n: int) -> None:
    rows = _random_rows(n, 200, seed=n)
    expected = [poseidon_py(r) for r in rows]
    data = _le([x % P for r in rows for x in r])
    out = native.hash_many(n + 1, data)
    assert [int.from_bytes(out[i : i + 32], "little") for i in range(0, len(out), 32)] == expected
    assert poseidon_many(rows) == expected
    assert [poseidon(r) for r in rows[:20]] == expected[:20]


def test_hash_many_validates_its_input(native: Any) -> None:
    assert native.hash_many(3, b"") == b""
    with pytest.raises(ValueError, match="multiple"):
        native.hash_many(3, b"\0" * 63)
    with pytest.raises(ValueError, match="multiple"):
        native.hash_many(3, b"\0" * 65)
    for bad in (P, P + 1, 2**256 - 1):
        with pytest.raises(ValueError, match="row 1"):
            native.hash_many(3, _le([1, 2, 3, bad]))
    for t in (0, 1, MAX_INPUTS + 2):
        with pytest.raises(ValueError, match="width"):
            native.hash_many(t, b"")
    with pytest.raises(TypeError):
        native.hash_many(3, "not bytes")


def test_set_params_is_idempotent_and_refuses_changes(native: Any) -> None:
    prm = pos._params(3)
    m = _le([x for row in prm.M for x in row])
    p = _le([x for row in prm.P for x in row])
    native.set_params(3, prm.rounds_p, _le(prm.C), _le(prm.S), m, p)
    with pytest.raises(ValueError, match="already set"):
        native.set_params(3, prm.rounds_p, _le([1, *prm.C[1:]]), _le(prm.S), m, p)
    with pytest.raises(ValueError, match="bytes"):
        native.set_params(3, prm.rounds_p, _le(prm.C[1:]), _le(prm.S), m, p)
    with pytest.raises(ValueError, match="not below p"):
        native.set_params(3, prm.rounds_p, _le([P, *prm.C[1:]]), _le(prm.S), m, p)
    assert _native_hash(native, [1, 2]) == VECTORS[0][1]


def test_batch_functions_equal_the_per_item_ones() -> None:
    rng = random.Random(7)
    rows = [[rng.randrange(-(2**256), 2**256) for _ in range(5)] for _ in range(50)]
    assert poseidon_many(rows) == [poseidon_py(r) for r in rows]
    assert poseidon_many([]) == []
    with pytest.raises(ValueError, match="one arity"):
        poseidon_many([[1, 2], [1, 2, 3]])
    with pytest.raises(ValueError, match="Poseidon takes"):
        poseidon_many([[1] * (MAX_INPUTS + 1)])
    # hash_list chains past 16 inputs; rows of different lengths may share one call.
    lists = [[rng.randrange(P) for _ in range(n)] for n in (1, 2, 16, 17, 31, 32, 40, 2, 17)]
    assert hash_list_many(lists) == [hash_list(r) for r in lists]
    assert hash_list_many([]) == []
    with pytest.raises(ValueError, match="at least one"):
        hash_list_many([[1], []])


def test_poseidon_many_past_one_native_call() -> None:
    rows = [[i, -i] for i in range(2 * pos._CHUNK + 3)]
    assert poseidon_many(rows) == [poseidon(r) for r in rows]


def test_threads_hash_concurrently_to_the_same_results() -> None:
    # The C code releases the GIL: threads really overlap, over shared parameters.
    rng = random.Random(3)
    jobs = [[[rng.randrange(P) for _ in range(1 + j % 4)] for _ in range(300)] for j in range(8)]
    expected = [poseidon_many(rows) for rows in jobs]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(poseidon_many, jobs)) == expected


def test_commitment_batches_equal_the_per_item_ones() -> None:
    rng = random.Random(5)
    ids = [f"user-{i}" for i in range(30)]
    salts = [rng.randrange(1, P) for _ in ids]
    assert id_commitments(ids, salts) == [
        id_commitment(i, s) for i, s in zip(ids, salts, strict=True)
    ]
    with pytest.raises(ValueError, match="salt"):
        id_commitments(["a", "b"], [1, 0])
    with pytest.raises(ValueError):
        id_commitments(["a", "b"], [1])
    for n_assets, n_instr in ((2, 2), (4, 8), (30, 20)):  # the last chains past 16 inputs
        rows = [
            (
                rng.randrange(P),
                [rng.randrange(2**64) for _ in range(n_assets)],
                [rng.randrange(2**64) for _ in range(n_assets)],
                [rng.randrange(2**64) for _ in range(n_instr)],
            )
            for _ in range(10)
        ]
        assert leaf_hashes(rows) == [leaf_hash(*r) for r in rows]
    with pytest.raises(ValueError, match="one entry per asset"):
        leaf_hashes([(1, [1, 2], [1], [0])])


def _tree_reference(params: EpochParams, leaves: list[int]) -> tuple[list[list[int]], int]:
    """Every batch subtree and the root, one poseidon_py at a time (the pre-batch algorithm)."""
    b = params.batch_size
    padded = leaves + [padding_leaf(params.n_assets, params.n_instruments)] * (-len(leaves) % b)
    roots, batch_levels = [], []
    for k in range(0, len(padded), b):
        levels = [padded[k : k + b]]
        while len(levels[-1]) > 1:
            cur = levels[-1]
            levels.append([poseidon_py(cur[i : i + 2]) for i in range(0, len(cur), 2)])
        batch_levels.append(levels)
        roots.append(levels[-1][0])
    zeros = empty_nodes(params.tree_depth)
    level = roots
    for h in range(params.batch_levels, params.tree_depth):
        if len(level) % 2:
            level = [*level, zeros[h]]
        level = [poseidon_py(level[i : i + 2]) for i in range(0, len(level), 2)]
    return [lv for levels in batch_levels for lv in levels], level[0]


@pytest.mark.parametrize(
    ("batch_levels", "tree_depth", "n_leaves"), [(0, 3, 5), (1, 4, 3), (2, 5, 13), (3, 5, 8)]
)
def test_batched_tree_equals_the_per_hash_build(
    batch_levels: int, tree_depth: int, n_leaves: int
) -> None:
    params = EpochParams(batch_levels, tree_depth, 2, 2, 8, 2)
    leaves = [random.Random(n_leaves).randrange(P) for _ in range(n_leaves)]
    tree = BatchedTree.build(params, leaves)
    levels, root = _tree_reference(params, leaves)
    assert [lv for per in tree.batch_levels_nodes for lv in per] == levels
    assert tree.root == root


@pytest.mark.parametrize(
    ("batch_levels", "tree_depth", "n_leaves"), [(0, 3, 5), (1, 4, 3), (2, 6, 13), (1, 7, 64)]
)
def test_roots_after_every_batch_equal_the_climbs(
    batch_levels: int, tree_depth: int, n_leaves: int
) -> None:
    """The state chain's roots, advanced a level at a time for every batch at once, equal one
    climb per batch along its insertion path, and end at the tree's root."""
    params = EpochParams(batch_levels, tree_depth, 2, 2, 8, 2)
    leaves = [random.Random(n_leaves).randrange(P) for _ in range(n_leaves)]
    tree = BatchedTree.build(params, leaves)
    roots = tree.roots_after()
    assert roots == [tree.root_after(k) for k in range(tree.n_batches + 1)]
    assert roots[-1] == tree.root and len(roots) == tree.n_batches + 1


def test_poseidon_many_on_one_thread_equals_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [[i, i * i] for i in range(3 * pos._CHUNK + 1)]
    """Chunks hashed on the thread pool come back in order: the same list as on one thread,
    and the first row of every chunk as the reference computes it."""
    pooled = poseidon_many(rows)
    monkeypatch.setattr(pos, "_THREADS", 1)
    assert poseidon_many(rows) == pooled
    assert pooled[:: pos._CHUNK] == [poseidon_py(r) for r in rows[:: pos._CHUNK]]


PORTABLE_CHECK = """
import random
from zksolvency.prover import _poseidon, poseidon as p
from zksolvency.prover.field import P
rng = random.Random(11)
assert p.backend() == "native"
for n in range(1, 17):
    pick = [0, 1, P - 1, P - 2]
    rows = [[rng.choice([*pick, rng.randrange(P)]) for _ in range(n)] for _ in range(40)]
    assert p.poseidon_many(rows) == [p.poseidon_py(r) for r in rows], n
print(_poseidon.IMPL)
"""


def test_portable_arithmetic_equals_python_at_every_arity() -> None:
    """Where the CPU has BMI2 and ADX the assembly runs by default; the portable C is what
    every other machine runs, so the suite checks it too (ZKSOLVENCY_POSEIDON_PORTABLE)."""
    env = {**os.environ, "ZKSOLVENCY_POSEIDON_PORTABLE": "1"}
    env.pop(pos.ENV_VAR, None)
    res = subprocess.run(
        [sys.executable, "-c", PORTABLE_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "portable C"


def _run(code: str, env_value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != pos.ENV_VAR}
    if env_value is not None:
        env[pos.ENV_VAR] = env_value
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


SHOW = "from zksolvency.prover import poseidon as p; print(p.backend(), p.poseidon([1, 2]))"
NO_EXTENSION = "import sys; sys.modules['zksolvency.prover._poseidon'] = None\n"
BROKEN = (
    "from zksolvency.prover import poseidon as p; p.CIRCOMLIB_VECTORS = (([1, 2], 0),)\n"
    "print(p.backend(), p.poseidon([1, 2]))"
)


@pytest.mark.parametrize(
    ("env_value", "code", "backend"),
    [
        (None, SHOW, "native"),
        ("", SHOW, "native"),
        ("auto", SHOW, "native"),
        ("python", SHOW, "python"),
        ("native", SHOW, "native"),
        ("python", NO_EXTENSION + SHOW, "python"),
        (None, NO_EXTENSION + SHOW, "python"),  # no compiler at install: Python, silently
        (None, BROKEN, "python"),  # a failing self-check: Python, with a warning
    ],
)
def test_env_switch_selects_the_backend(env_value: str | None, code: str, backend: str) -> None:
    proc = _run(code, env_value)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [backend, str(VECTORS[0][1])]
    assert ("native Poseidon disabled" in proc.stderr) == (code == BROKEN)


@pytest.mark.parametrize(
    ("env_value", "code", "message"),
    [
        ("native", NO_EXTENSION + SHOW, "not built"),
        ("native", BROKEN, "self-check"),
        ("rust", SHOW, "must be python, native or auto"),
    ],
)
def test_env_switch_errors(env_value: str, code: str, message: str) -> None:
    proc = _run(code, env_value)
    assert proc.returncode != 0
    assert message in proc.stderr

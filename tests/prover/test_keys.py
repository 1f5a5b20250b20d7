"""Phase-2 key ceremony: contribute, verify the transcript, install; never replace ceremony keys.

Runs on the smallest solvency circuit in a private build folder, so it cannot disturb the
keys other tests share.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zksolvency.prover.keys import (
    CircuitBuild,
    KeySet,
    KeySetupError,
    cached_keys,
    compile_circuit,
    contribute_zkey,
    import_zkey,
    refuse_replacing_ceremony_keys,
    setup_keys,
)
from zksolvency.prover.params import EpochParams
from zksolvency.prover.ptau import PtauInfo, required_power, resolve_ptau


@pytest.fixture(scope="module")
def foreign_zkey(tiny_epoch: Any) -> Path:
    """A real zkey of another circuit (the tiny epoch's batch circuit, in the shared build)."""
    keys = cached_keys(compile_circuit(EpochParams(1, 4, 2, 2, 8, 2).batch_spec()))
    assert keys is not None
    return keys.zkey


@pytest.fixture(scope="module")
def ceremony(
    tmp_path_factory: pytest.TempPathFactory, foreign_zkey: Path
) -> Iterator[tuple[CircuitBuild, KeySet, PtauInfo]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("ZKSOLVENCY_BUILD", str(tmp_path_factory.mktemp("build")))
    build = compile_circuit(EpochParams(1, 4, 2, 2, 8, 2).solvency_spec())
    dev = resolve_ptau(required_power(build.n_constraints, build.n_public))
    # Treat the file as the ceremony's: what matters here is the transcript, not its origin.
    info = PtauInfo(dev.path, dev.power, dev.sha256, development=False)
    first = setup_keys(build, info)
    yield build, first, info
    mp.undo()


def test_outside_contribution_is_verified_and_installed(
    ceremony: tuple[CircuitBuild, KeySet, PtauInfo], tmp_path: Path
) -> None:
    build, first, info = ceremony
    assert first.contributions == 1
    out = tmp_path / "auditor.zkey"
    digest = contribute_zkey(first.zkey, out, "Auditor A")
    assert len(digest) == 128  # blake2b-512, printed for the contributor to publish
    installed = import_zkey(build, out, info)
    assert installed.contributions == 2
    assert installed.vkey_hash != first.vkey_hash  # delta moved with the contribution
    assert cached_keys(build) == installed
    assert not installed.development


def test_a_key_for_another_circuit_is_refused(
    ceremony: tuple[CircuitBuild, KeySet, PtauInfo], foreign_zkey: Path
) -> None:
    build, _, info = ceremony
    before = cached_keys(build)
    with pytest.raises(KeySetupError, match="did not accept"):
        import_zkey(build, foreign_zkey, info)
    assert cached_keys(build) == before  # nothing was installed


def test_ceremony_keys_that_no_longer_match_are_not_replaced(
    ceremony: tuple[CircuitBuild, KeySet, PtauInfo], tmp_path: Path
) -> None:
    build, _, _ = ceremony
    zkey = build.dir / "keys" / f"{build.spec.name}.zkey"
    backup = tmp_path / "backup.zkey"
    shutil.copy(zkey, backup)
    try:
        with open(zkey, "ab") as fh:
            fh.write(b"\0")  # the file no longer matches its stamp
        assert cached_keys(build) is None
        with pytest.raises(KeySetupError, match="holds ceremony keys"):
            refuse_replacing_ceremony_keys([build])
    finally:
        shutil.copy(backup, zkey)
    assert cached_keys(build) is not None

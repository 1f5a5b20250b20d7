"""Phase-2 key ceremony: contribute, verify the transcript, install; never replace ceremony keys.

Runs on the smallest solvency circuit in a private build folder, so it cannot disturb the
keys other tests share.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
    instance_lock,
    refuse_replacing_ceremony_keys,
    setup_keys,
)
from zksolvency.prover.params import EpochParams
from zksolvency.prover.progress import NullReporter
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


class _Messages(NullReporter):
    """A reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(message)


def test_a_build_waits_for_another_process_on_the_same_instance(tiny_epoch: Any) -> None:
    """Two processes building one instance would run circom or snarkjs into the same files:
    the second waits for the first's lock (held here), says so, then uses the finished build."""
    spec = EpochParams(1, 4, 2, 2, 8, 2).solvency_spec()
    expected = compile_circuit(spec)  # cached (by the tiny epoch, or this module's build)
    messages = _Messages()
    with ThreadPoolExecutor(1) as pool:
        with instance_lock(spec.name):
            waiting = pool.submit(compile_circuit, spec, messages)
            for _ in range(500):
                if messages.lines:
                    break
                time.sleep(0.01)
            assert messages.lines == [f"waiting for another process that is building {spec.name}"]
            time.sleep(0.2)
            assert not waiting.done()
        assert waiting.result(timeout=60) == expected

"""Powers of Tau: sizing, header checks, seeding the cache, and generating a dev file."""

from __future__ import annotations

import fcntl
import shutil
import threading
import time
from pathlib import Path

import pytest
from zksolvency.prover.progress import Reporter
from zksolvency.prover.ptau import (
    DEV_BANNER,
    PtauError,
    check_ptau,
    generate_dev_ptau,
    read_header,
    required_power,
    resolve_ptau,
)


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warn(self, msg: str) -> None:
        self.lines.append("WARN " + msg)

    def task(self, label: str, total: int):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_required_power() -> None:
    assert required_power(100, 3) == 8  # floor of MIN_POWER
    assert required_power(15841, 3) == 14
    assert required_power(16380, 3) == 14  # 16380 + 3 + 1 = 2^14 exactly
    assert required_power(16381, 3) == 15
    with pytest.raises(PtauError):
        required_power(2**28, 1)


def test_rejects_non_ptau(tmp_path: Path) -> None:
    bogus = tmp_path / "x.ptau"
    bogus.write_bytes(b"nope" + b"\0" * 64)
    with pytest.raises(PtauError, match=r"not a \.ptau"):
        read_header(bogus)
    with pytest.raises(PtauError, match="cannot read"):
        read_header(tmp_path / "missing.ptau")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A real single-contributor ceremony at 2^8 (a few seconds), into a private cache."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("ZKSOLVENCY_CACHE", str(cache))
    rec = Recorder()
    try:
        path = generate_dev_ptau(8, rec)
    finally:
        mp.undo()
    return path, rec.lines


def test_generated_dev_ptau_is_prepared_and_says_it_is_insecure(
    generated: tuple[Path, list[str]],
) -> None:
    path, lines = generated
    info = check_ptau(path, 8, development=True)
    assert info.power == 8 and info.development
    assert any(DEV_BANNER in line for line in lines)
    assert not list(path.parent.glob(".gen-*")), "temporary ceremony files left behind"
    with pytest.raises(PtauError, match="needs 2\\^9"):
        check_ptau(path, 9, development=True)


def test_ceremony_file_is_used_as_given(generated: tuple[Path, list[str]]) -> None:
    path, _ = generated
    info = resolve_ptau(8, ceremony=path)
    assert info.path == path and not info.development


def test_unprepared_ptau_is_refused(tmp_path: Path) -> None:
    from zksolvency.prover.paths import node_bin
    from zksolvency.prover.toolchain import run

    raw = tmp_path / "raw.ptau"
    run([node_bin("snarkjs"), "powersoftau", "new", "bn128", "8", raw])
    with pytest.raises(PtauError, match="not prepared for phase 2"):
        check_ptau(raw, 8, development=False)


def test_cache_is_seeded_from_a_folder_with_checksums(
    generated: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = generated
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(path, seeds / "dev_pot8.ptau")
    from zksolvency.prover.atomic import sha256_file

    (seeds / "SHA256SUMS").write_text(f"{sha256_file(path)}  dev_pot8.ptau\n")
    monkeypatch.setenv("ZKSOLVENCY_DEV_PTAU_DIR", str(seeds))
    monkeypatch.setenv("ZKSOLVENCY_CACHE", str(tmp_path / "cache"))
    rec: Reporter = Recorder()
    info = resolve_ptau(8, reporter=rec, allow_generate=False)
    assert info.development and info.path.parent == tmp_path / "cache" / "ptau"

    # a seed that does not match its checksum is ignored, not trusted
    monkeypatch.setenv("ZKSOLVENCY_CACHE", str(tmp_path / "cache2"))
    (seeds / "SHA256SUMS").write_text(f"{'0' * 64}  dev_pot8.ptau\n")
    rec2 = Recorder()
    try:
        other = resolve_ptau(8, reporter=rec2, allow_generate=False).path
        assert sha256_file(other) != sha256_file(path)  # came from another seed folder
    except PtauError as exc:
        assert "no development ptau" in str(exc)
    assert any("does not match its SHA256SUMS" in line for line in rec2.lines)


def test_a_development_file_passed_as_ceremony_stays_development(
    generated: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # --ptau with the machine's own dev file must not relabel its keys as ceremony keys.
    path, _ = generated
    monkeypatch.setenv("ZKSOLVENCY_CACHE", str(path.parent.parent))
    rec = Recorder()
    info = resolve_ptau(8, ceremony=path, reporter=rec)
    assert info.development
    assert any("is a development ptau" in line for line in rec.lines)


def test_a_second_generation_waits_and_stale_folders_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes short of the same file: the second waits on the power's lock instead of
    generating a second one, and a working folder of that power left by a killed run is
    removed (one of another power, maybe in use, is not)."""
    monkeypatch.setenv("ZKSOLVENCY_CACHE", str(tmp_path))
    folder = tmp_path / "ptau"
    folder.mkdir()
    stale = folder / ".gen-8-killed"
    stale.mkdir()
    (stale / "0.ptau").write_bytes(b"half")
    other = folder / ".gen-9-running"
    other.mkdir()
    rec = Recorder()
    made: list[Path] = []
    worker = threading.Thread(target=lambda: made.append(generate_dev_ptau(8, rec)))
    with open(folder / ".lock-8", "w") as holder:  # another process, mid-generation
        fcntl.flock(holder, fcntl.LOCK_EX)
        worker.start()
        deadline = time.monotonic() + 30
        while not any("waiting for another process" in line for line in rec.lines):
            assert time.monotonic() < deadline, rec.lines
            time.sleep(0.05)
        assert worker.is_alive() and stale.exists()
    # the other process finished (or died): the lock is released
    worker.join(300)
    assert made == [folder / "dev_pot8.ptau"]
    assert not stale.exists() and other.exists()
    check_ptau(made[0], 8, development=True)

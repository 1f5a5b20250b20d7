"""Powers of Tau: accept a ceremony file for production, or make an insecure one for development.

A development ptau has one contributor whose entropy is thrown away on a machine we do not
control; anyone who kept it could forge proofs. It exists only to run the pipeline end to end.
Production operators pass a file from a public multi-party ceremony with `--ptau`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .atomic import sha256_file
from .field import P
from .paths import cache_dir, node_bin, repo_root
from .progress import NullReporter, Reporter
from .toolchain import run

MIN_POWER = 8
MAX_POWER = 28
DEV_BANNER = (
    "INSECURE development Powers of Tau (single contributor): proofs made with keys from it "
    "can be forged by whoever knows its entropy. Never use it for a published epoch; pass a "
    "ceremony file with --ptau."
)


class PtauError(ValueError):
    """A .ptau file is unusable: wrong format, curve, size or not prepared for phase 2."""


@dataclass(frozen=True)
class PtauInfo:
    path: Path
    power: int
    sha256: str
    development: bool


def required_power(n_constraints: int, n_public: int) -> int:
    """Smallest power whose domain fits the constraints plus one row per public input + 1."""
    need = n_constraints + n_public + 1
    power = max(MIN_POWER, (need - 1).bit_length())
    if power > MAX_POWER:
        raise PtauError(f"{n_constraints} constraints need 2^{power} powers; the limit is 2^28")
    return power


def read_header(path: Path) -> tuple[int, set[int]]:
    """Return (power, section ids) of a snarkjs .ptau file, validating curve and layout."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
            if magic != b"ptau":
                raise PtauError(f"{path}: not a .ptau file (magic {magic!r})")
            _version, n_sections = struct.unpack("<II", fh.read(8))
            sections: set[int] = set()
            power = -1
            for _ in range(n_sections):
                head = fh.read(12)
                if len(head) < 12:
                    raise PtauError(f"{path}: truncated section table")
                sid, size = struct.unpack("<IQ", head)
                sections.add(sid)
                if sid == 1:
                    n8 = struct.unpack("<I", fh.read(4))[0]
                    q = int.from_bytes(fh.read(n8), "little")
                    power = struct.unpack("<I", fh.read(4))[0]
                    fh.seek(size - 8 - n8, os.SEEK_CUR)
                    # q is the base field of BN254; its scalar field is P.
                    if q != 0x30644E72E131A029B85045B68181585D97816A916871CA8D3C208C16D87CFD47:
                        raise PtauError(f"{path}: not a bn128 ptau (scalar field {P:#x})")
                else:
                    fh.seek(size, os.SEEK_CUR)
    except OSError as exc:
        raise PtauError(f"{path}: cannot read ({exc.strerror})") from exc
    if power < 0:
        raise PtauError(f"{path}: no header section")
    return power, sections


def check_ptau(path: Path, power_needed: int, development: bool) -> PtauInfo:
    power, sections = read_header(path)
    if 12 not in sections:
        raise PtauError(
            f"{path}: not prepared for phase 2; run `snarkjs powersoftau prepare phase2` first"
        )
    if power < power_needed:
        raise PtauError(f"{path}: holds 2^{power} powers, the circuit needs 2^{power_needed}")
    return PtauInfo(path, power, sha256_file(path), development)


def _seed_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("ZKSOLVENCY_DEV_PTAU_DIR")
    if env:
        dirs.append(Path(env))
    dirs.append(repo_root().parent / "shared" / "ptau")
    return dirs


def _sums(folder: Path) -> dict[str, str]:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return {}
    out = {}
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1]] = parts[0]
    return out


def _cached(power_needed: int) -> Path | None:
    best: tuple[int, Path] | None = None
    folder = cache_dir() / "ptau"
    if folder.is_dir():
        for f in folder.glob("dev_pot*.ptau"):
            try:
                p = int(f.stem.removeprefix("dev_pot"))
            except ValueError:
                continue
            if p >= power_needed and (best is None or p < best[0]):
                best = (p, f)
    return best[1] if best else None


def _seed_from_shared(power_needed: int, reporter: Reporter) -> Path | None:
    """Copy the smallest sufficient file from a seed folder into the cache, checking its hash."""
    for folder in _seed_dirs():
        if not folder.is_dir():
            continue
        sums = _sums(folder)
        for p in range(power_needed, MAX_POWER + 1):
            src = folder / f"dev_pot{p}.ptau"
            if not src.is_file():
                continue
            expected = sums.get(src.name)
            if expected and sha256_file(src) != expected:
                reporter.warn(f"{src} does not match its SHA256SUMS entry; ignoring it")
                continue
            dst = cache_dir() / "ptau" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=dst.parent, delete=False) as tmp:
                pass
            shutil.copyfile(src, tmp.name)
            os.replace(tmp.name, dst)
            reporter.info(f"development ptau 2^{p} seeded into the cache from {folder}")
            return dst
    return None


@contextlib.contextmanager
def _power_lock(power: int, reporter: Reporter) -> Iterator[None]:
    """One process at a time seeds or generates the cache's 2^power file; others wait for it
    rather than make a second one. The OS drops the lock of a process that dies."""
    folder = cache_dir() / "ptau"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".lock-{power}", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            reporter.info(f"waiting for another process making the 2^{power} development ptau")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def generate_dev_ptau(power: int, reporter: Reporter) -> Path:
    """Run a single-contributor ceremony with snarkjs (slow: prepare phase2 is O(n log n))."""
    with _power_lock(power, reporter):
        return _generate(power, reporter)


def _generate(power: int, reporter: Reporter) -> Path:
    """generate_dev_ptau under its power's lock: any working folder of that power left by a
    killed run is removed first (nobody else can be using it)."""
    reporter.warn(DEV_BANNER)
    # about doubling per power: the phase-2 preparation alone took 74 s at 2^12 and 21 min at
    # 2^16 here, and the contributions before it add as much again
    minutes = 2 if power <= 12 else 40 * 2 ** (power - 16) if power > 16 else 5 * 2 ** (power - 13)
    reporter.info(
        f"generating a development ptau of 2^{power}; on 2 cores this takes about "
        f"{minutes} min, once per machine"
    )
    folder = cache_dir() / "ptau"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f".gen-{power}-*"):
        reporter.info(f"removing {stale}, left by an interrupted ptau generation")
        shutil.rmtree(stale, ignore_errors=True)
    snarkjs = node_bin("snarkjs")
    last = [0.0]

    def show(line: str) -> None:
        now = time.monotonic()
        if now - last[0] > 10:
            last[0] = now
            reporter.info(f"  ptau: {line.strip()[:120]}")

    with tempfile.TemporaryDirectory(dir=folder, prefix=f".gen-{power}-") as tmp:
        t = Path(tmp)
        run([snarkjs, "powersoftau", "new", "bn128", str(power), t / "0.ptau", "-v"], on_line=show)
        entropy = secrets.token_hex(32)
        run(
            [
                snarkjs,
                "powersoftau",
                "contribute",
                t / "0.ptau",
                t / "1.ptau",
                "--name=zksolvency development (insecure)",
                f"-e={entropy}",
                "-v",
            ],
            on_line=show,
        )
        reporter.info("  ptau: prepare phase2 (the slow part)")
        run(
            [snarkjs, "powersoftau", "prepare", "phase2", t / "1.ptau", t / "2.ptau", "-v"],
            on_line=show,
        )
        dst = folder / f"dev_pot{power}.ptau"
        os.replace(t / "2.ptau", dst)
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    reporter.info(f"development ptau written to {dst} (sha256 {digest[:16]}...)")
    return dst


def _known_development(info: PtauInfo) -> bool:
    """A file this tool made or seeded, or one listed by a development seed folder."""
    cache = (cache_dir() / "ptau").resolve()
    if info.path.resolve().parent == cache:
        return True
    return any(info.sha256 in _sums(folder).values() for folder in _seed_dirs())


def resolve_ptau(
    power_needed: int,
    ceremony: Path | None = None,
    reporter: Reporter | None = None,
    allow_generate: bool = True,
) -> PtauInfo:
    """The ptau to set keys up with: a ceremony file if given, else the machine's dev cache."""
    rep = reporter or NullReporter()
    if ceremony is not None:
        info = check_ptau(ceremony, power_needed, development=False)
        if _known_development(info):
            rep.warn(f"{ceremony} is a development ptau, not a ceremony file: {DEV_BANNER}")
            return PtauInfo(info.path, info.power, info.sha256, development=True)
        return info
    rep.warn(DEV_BANNER)
    path = _cached(power_needed)
    if path is None:
        with _power_lock(power_needed, rep):
            # Again under the lock: the process that held it may have just made the file.
            path = _cached(power_needed) or _seed_from_shared(power_needed, rep)
            if path is None:
                if not allow_generate:
                    raise PtauError(
                        f"no development ptau of at least 2^{power_needed} in the cache"
                    )
                path = _generate(power_needed, rep)
    return check_ptau(path, power_needed, development=True)

"""Atomic file writes: a reader sees the old file or the whole new one, never half of either."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@functools.cache
def _new_file_mode() -> int:
    """The mode open() would give a new file under this process's umask (read once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success fsync and rename it into place.

    On any failure the temporary file is removed. An OSError naming no file (write() or fsync()
    on a full disk) or naming the temporary file is raised again naming `target`: the error
    must say which file could not be written, not a name that no longer exists.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path: Path | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        tmp_path = Path(tmp)
        try:
            # mkstemp makes 0600 files; outputs such as a bundle's manifest are meant to be
            # shared.
            os.fchmod(fd, _new_file_mode())
        finally:
            os.close(fd)
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except OSError as exc:
        if exc.filename is None or _is_temporary(Path(exc.filename), target):
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
    finally:
        if tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()


def _is_temporary(path: Path, target: Path) -> bool:
    """Whether `path` is (or was) one of atomic_path's temporary names for `target`."""
    return (
        path.parent == target.parent
        and path.name.startswith(f".{target.name}.")
        and path.name.endswith(".tmp")
    )


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: Path, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a canonical JSON encoding (sorted keys, no spaces), for pinning keys and inputs."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()

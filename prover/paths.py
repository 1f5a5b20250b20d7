"""Where things live: the repository (circuits, node toolchain), build artefacts and caches.

One module owns these answers so that every stage agrees. Environment overrides:
ZKSOLVENCY_ROOT (checkout with circuits/ and node_modules/), ZKSOLVENCY_BUILD (artefacts),
ZKSOLVENCY_CACHE (per-machine cache: development ptau files).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


class ToolchainMissing(RuntimeError):
    """The checkout or its node toolchain cannot be found."""


def _env_path(name: str) -> Path | None:
    """An environment override, made absolute: the node tools run with the checkout as their
    working directory, where a relative path would name another place than it does here."""
    env = os.environ.get(name)
    return Path(env).absolute() if env else None


@cache
def repo_root() -> Path:
    """The checkout holding circuits/ and package.json (the prover needs its toolchain)."""
    env = _env_path("ZKSOLVENCY_ROOT")
    candidates = [env] if env else []
    candidates.append(Path(__file__).resolve().parents[1])
    candidates.extend([Path.cwd(), *Path.cwd().parents])
    for c in candidates:
        if (c / "circuits" / "batch.circom").is_file() and (c / "package.json").is_file():
            return c
    raise ToolchainMissing(
        "cannot find the zksolvency checkout (circuits/ and package.json); "
        "run from the repository or set ZKSOLVENCY_ROOT"
    )


def circuits_dir() -> Path:
    return repo_root() / "circuits"


def build_dir() -> Path:
    return _env_path("ZKSOLVENCY_BUILD") or repo_root() / "build"


def cache_dir() -> Path:
    env = _env_path("ZKSOLVENCY_CACHE")
    if env:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "zksolvency"


def node_bin(name: str) -> Path:
    """A binary installed by `npm install` from package.json (circom2, snarkjs, anvil, ...)."""
    path = repo_root() / "node_modules" / ".bin" / name
    if not path.exists():
        raise ToolchainMissing(f"{name} is not installed: run `make install` (npm) first")
    return path


def node_module(name: str) -> Path:
    path = repo_root() / "node_modules" / name
    if not path.exists():
        raise ToolchainMissing(f"node module {name} is missing: run `make install` first")
    return path


def js_script(name: str) -> Path:
    """Node helper scripts shipped with the prover (prover/js/)."""
    return Path(__file__).resolve().parent / "js" / name

"""CLI test fixtures: an in-process runner and the tiny epoch's exported inclusion packages.

These tests drive `zksolvency` through click's CliRunner, end to end; the library's unit tests
live in tests/prover and tests/contracts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result


def _run(*args: object, input: str | None = None) -> Result:
    from zksolvency.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args], input=input)


@pytest.fixture(scope="session")
def cli() -> Callable[..., Result]:
    """Run `zksolvency` in-process; the Result holds exit_code, stdout, stderr and output."""
    return _run


@dataclass(frozen=True)
class Packages:
    """bob's inclusion package, a copy with one balance edited, and a file that is not JSON."""

    good: Path
    tampered: Path
    not_json: Path

    def load(self) -> dict[str, Any]:
        pkg: dict[str, Any] = json.loads(self.good.read_text())
        return pkg


@pytest.fixture(scope="session")
def packages(tiny_epoch: Any, tmp_path_factory: pytest.TempPathFactory) -> Packages:
    folder = tmp_path_factory.mktemp("packages")
    good = folder / "pkg.json"
    result = _run("export", tiny_epoch.dir, "--account", "bob", "--out", good)
    assert result.exit_code == 0, result.output
    assert f"wrote {good}: account bob, epoch 1" in result.stdout

    pkg = json.loads(good.read_text())
    assert pkg["account"]["equity"]["BTC"] == "0.25"
    pkg["account"]["equity"]["BTC"] = "0.26"
    tampered = folder / "tampered.json"
    tampered.write_text(json.dumps(pkg))

    not_json = folder / "not_json.json"
    not_json.write_text("this is not a package\n")
    return Packages(good, tampered, not_json)

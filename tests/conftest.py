"""Fixtures shared across test folders: one tiny real epoch, proven once per session.

The epoch is proven through the CLI (`zksolvency prove`) with the smallest real circuits
(2 accounts per batch, 16 leaves, 2 assets, 2 instruments, 8 scenarios, 2 haircut tiers), with
a BTC perpetual and a BTC call: the CLI tests check that run, and the contract tests publish
its proofs. Circuits and keys are cached under build/ after the first run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

# CI runs the same examples every time (a red build must be reproducible); local runs explore.
# No deadlines: this machine's two cores are shared with Node provers during the suite.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SNAPSHOTS = FIXTURES / "snapshots"
TINY_SNAPSHOT = SNAPSHOTS / "small_2assets.json"
TINY_RESERVES = SNAPSHOTS / "small_2assets_reserves.json"
#: Circuit options of the tiny epoch, as given to prove and deploy.
TINY_PARAMS = (
    "--batch-levels", "1", "--tree-depth", "4", "--assets", "2",
    "--instrument-slots", "2", "--scenarios", "8", "--tiers", "2",
)  # fmt: skip
MARGIN = FIXTURES / "margin"
#: The tiny epoch's derivatives and haircuts (a BTC perpetual and a BTC call).
TINY_MARGIN = (
    "--instruments", str(MARGIN / "tiny_instruments.csv"),
    "--market", str(MARGIN / "tiny_market.csv"),
    "--positions", str(MARGIN / "tiny_positions.csv"),
    "--haircuts", str(MARGIN / "tiny_haircuts.csv"),
)  # fmt: skip


@dataclass(frozen=True)
class TinyEpoch:
    """A proven epoch directory and how it was made."""

    dir: Path
    snapshot: Path
    reserves: Path
    prove_args: tuple[str, ...]
    prove_result: Result

    @property
    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.dir / "manifest.json").read_text())
        return manifest

    def sha256(self) -> str:
        """The bundle hash: sha256 of manifest.json's bytes."""
        return hashlib.sha256((self.dir / "manifest.json").read_bytes()).hexdigest()

    def bound_to(self, deployment: Path, dest: Path) -> TinyEpoch:
        """A copy of this epoch in `dest`, proven again for the registry of `deployment` (a
        deployment record): only the solvency proof is redone, the batches resume as done."""
        from zksolvency.cli.main import main

        shutil.copytree(self.dir, dest)
        args = [*prove_args(self.snapshot, self.reserves, dest), "--deployment", str(deployment)]
        result = CliRunner().invoke(main, args)
        if result.exit_code != 0:
            pytest.fail(f"zksolvency prove --deployment failed:\n{result.output}")
        assert "resuming: 3 of 4 proofs already done" in result.output
        return TinyEpoch(dest, self.snapshot, self.reserves, tuple(args), result)

    def proofs(self) -> list[tuple[dict[str, Any], list[str]]]:
        """(proof, public signals) of every batch in order, then the solvency proof."""
        m = self.manifest
        entries = [*m["proofs"]["batches"], m["proofs"]["solvency"]]
        return [
            (
                json.loads((self.dir / e["proof"]).read_text()),
                json.loads((self.dir / e["public"]).read_text()),
            )
            for e in entries
        ]


def require_toolchain() -> None:
    """Skip unless node and the pinned JS tools (circom2, snarkjs, anvil) are installed."""
    from zksolvency.prover.paths import ToolchainMissing, node_bin

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    try:
        for tool in ("circom2", "snarkjs", "anvil"):
            node_bin(tool)
    except ToolchainMissing as exc:
        pytest.skip(str(exc))


def prove_args(snapshot: Path, reserves: Path, out: Path, epoch: int = 1) -> list[str]:
    """`zksolvency prove` arguments for the tiny circuits."""
    return [
        "prove", str(snapshot), "--reserves", str(reserves), "--epoch", str(epoch),
        "--out", str(out), *TINY_PARAMS, *TINY_MARGIN,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_epoch(tmp_path_factory: pytest.TempPathFactory) -> TinyEpoch:
    """The tiny epoch (5 accounts, 3 batch proofs + 1 solvency proof), proven via the CLI."""
    from zksolvency.cli.main import main

    require_toolchain()
    out = tmp_path_factory.mktemp("tiny") / "epoch"
    args = prove_args(TINY_SNAPSHOT, TINY_RESERVES, out)
    result = CliRunner().invoke(main, args)
    if result.exit_code != 0:
        pytest.fail(f"zksolvency prove failed ({result.exit_code}):\n{result.output}")
    return TinyEpoch(out, TINY_SNAPSHOT, TINY_RESERVES, tuple(args), result)


@dataclass(frozen=True)
class TinyInputs:
    """The tiny epoch's input files and circuit options, for tests that prove variants of it."""

    snapshot: Path = TINY_SNAPSHOT
    reserves: Path = TINY_RESERVES
    params: tuple[str, ...] = TINY_PARAMS
    margin_dir: Path = MARGIN


@pytest.fixture(scope="session")
def tiny_inputs() -> TinyInputs:
    return TinyInputs()


@pytest.fixture(scope="session")
def toolchain() -> None:
    """Skip the test unless node and the pinned JS tools are installed."""
    require_toolchain()

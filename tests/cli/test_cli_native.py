"""The native backend (groth16py) proves the tiny epoch: the same public signals as snarkjs
for the same seed, every proof accepted by snarkjs' verifier, by the pure-Python verifier and
on-chain by the registry."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from zksolvency.prover import chain, native, witness_cpp
from zksolvency.prover.deployment import registry_abi
from zksolvency.prover.paths import node_bin

pytestmark = pytest.mark.skipif(not native.available(), reason="groth16py is not installed")


def _publics(epoch_dir: Path) -> list[list[str]]:
    m = json.loads((epoch_dir / "manifest.json").read_text())
    return [e["public_signals"] for e in [*m["proofs"]["batches"], m["proofs"]["solvency"]]]


def test_native_backend_proves_publishes_and_verifies(
    cli: Callable[..., Result], tiny_epoch: Any, tiny_inputs: Any, tmp_path: Path
) -> None:
    with chain.Anvil() as node:
        record = tmp_path / "deployment.json"
        deployed = cli("deploy", "--rpc", node.url, "--out", record, *tiny_inputs.params)
        assert deployed.exit_code == 0, deployed.output
        # The snarkjs run's seed: the same salts, leaves and states, so the same signals.
        out = tmp_path / "epoch"
        (out / "private").mkdir(parents=True)
        shutil.copyfile(tiny_epoch.dir / "private" / "seed", out / "private" / "seed")
        args = list(tiny_epoch.prove_args)
        args[args.index("--out") + 1] = str(out)
        proved = cli(*args, "--backend", "native", "--deployment", record)
        assert proved.exit_code == 0, proved.output

        reference, ours = _publics(tiny_epoch.dir), _publics(out)
        assert ours[:-1] == reference[:-1]  # batches: identical statements
        assert ours[-1][:8] == reference[-1][:8] and ours[-1][9:] == reference[-1][9:]
        assert ours[-1][8] != reference[-1][8] == "0"  # only the domain: bound to the registry
        m = json.loads((out / "manifest.json").read_text())
        assert (
            m["proofs"]["batches"][0]["proof_sha256"]
            != (tiny_epoch.manifest["proofs"]["batches"][0]["proof_sha256"])
        )
        assert not list((out / "private" / "inputs").iterdir()), "a witness was left behind"

        checked = cli("verify-bundle", out, "--trusted-keys", record)  # pure-Python Groth16
        assert checked.exit_code == 0, checked.output
        registry = json.loads(record.read_text())["registry"]
        published = cli("publish", out, "--rpc", node.url, "--registry", registry)
        assert published.exit_code == 0, published.output
        rec = chain.read_epoch(node.w3, chain.registry_at(node.w3, registry, registry_abi()), 1)
        assert rec.status is chain.EpochStatus.FINALIZED and rec.root == int(m["root"])


def test_unknown_backend_is_a_usage_error(cli: Callable[..., Result], tiny_epoch: Any) -> None:
    result = cli(*tiny_epoch.prove_args, "--backend", "gpu")
    assert result.exit_code == 2
    assert "'gpu' is not one of 'snarkjs', 'native'" in result.output


def test_a_native_proof_snarkjs_rejects_is_never_kept(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong proof from the native prover (here: A and C swapped) fails snarkjs' verification:
    the run stops (exit 1), and no proof, meta file or witness is left behind."""
    convert = native._snarkjs_proof

    def broken(blob: bytes) -> dict[str, Any]:
        proof = convert(blob)
        proof["pi_a"], proof["pi_c"] = proof["pi_c"], proof["pi_a"]
        return proof

    monkeypatch.setattr(native, "_snarkjs_proof", broken)
    out = tmp_path / "epoch"
    args = list(tiny_epoch.prove_args)
    args[args.index("--out") + 1] = str(out)
    result = cli(*args, "--backend", "native")
    assert result.exit_code == 1, result.output
    assert "verification failed" in result.stderr
    assert not list(out.glob("proofs/*")), "an unverified proof was kept"
    assert not list((out / "private" / "inputs").iterdir())
    assert not (out / "manifest.json").exists()


def test_native_run_killed_mid_proof_resumes(tiny_epoch: Any, tmp_path: Path) -> None:
    """SIGKILL while the native prover holds witnesses: nothing half-made counts, the witnesses
    (private data) are cleared by the rerun, and the rerun's bundle verifies."""
    out = tmp_path / "epoch"
    args = list(tiny_epoch.prove_args)
    args[args.index("--out") + 1] = str(out)
    cmd = [sys.executable, "-m", "zksolvency.cli.main", *args, "--backend", "native"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    inputs = out / "private" / "inputs"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if inputs.is_dir() and any(p.suffix == ".wtns" for p in inputs.iterdir()):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before a witness was seen"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(out.glob("proofs/*.meta.json")), "a proof counted before snarkjs checked it"

    resumed = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(inputs.iterdir()), "witnesses of the killed run were left behind"
    check = subprocess.run(
        [sys.executable, "-m", "zksolvency.cli.main", "verify-bundle", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.skipif(bool(witness_cpp.missing_tools()), reason="no C++ toolchain for circom --c")
def test_cpp_witnesses_equal_wasm_and_prove_the_same_statements(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--witness cpp: circom's C++ program computes each batch witness byte for byte as the wasm
    calculator does (checked here on every batch), and the run's public signals equal the
    snarkjs run's for the same seed."""
    cpp_witness = native.compute_witness
    compared: list[str] = []

    def both(binary: Path, input_json: Path, wtns: Path) -> float:
        seconds = cpp_witness(binary, input_json, wtns)
        # build/circuits/<name>/cpp/<stamp>/<name>_cpp/<name>; the wasm in <name>/<name>_js/
        wasm = witness_cpp.instance_dir(binary) / f"{binary.name}_js" / f"{binary.name}.wasm"
        ref = wtns.with_suffix(".wasm.wtns")
        subprocess.run(
            [node_bin("snarkjs"), "wtns", "calculate", wasm, input_json, ref], check=True
        )
        assert ref.read_bytes() == wtns.read_bytes(), f"{input_json.name}: witnesses differ"
        ref.unlink()
        compared.append(input_json.name)
        return seconds

    monkeypatch.setattr(native, "compute_witness", both)
    out = tmp_path / "epoch"
    (out / "private").mkdir(parents=True)
    shutil.copyfile(tiny_epoch.dir / "private" / "seed", out / "private" / "seed")
    args = list(tiny_epoch.prove_args)
    args[args.index("--out") + 1] = str(out)
    proved = cli(*args, "--backend", "native", "--witness", "cpp")
    assert proved.exit_code == 0, proved.output
    n_batches = len(tiny_epoch.manifest["proofs"]["batches"])
    assert sorted(compared) == [f"batch_{k:06d}.json" for k in range(n_batches)]
    assert _publics(out) == _publics(tiny_epoch.dir)
    assert not list((out / "private" / "inputs").iterdir()), "a witness was left behind"


def test_cpp_witness_needs_the_native_backend(cli: Callable[..., Result], tiny_epoch: Any) -> None:
    result = cli(*tiny_epoch.prove_args, "--witness", "cpp")
    assert result.exit_code == 2
    assert "cpp serves --backend native only" in result.output

"""Contracts stage: generated verifiers for the epoch's keys, the registry, and a record of
where they were deployed (which doubles as the verifiers' trust anchors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from web3 import Web3

from .atomic import read_json, write_json
from .chain import (
    BATCH_VERIFIER_NAME,
    REGISTRY_NAME,
    SOLVENCY_VERIFIER_NAME,
    ContractArtifact,
    Deployment,
    compile_contracts,
    deploy,
    render_verifier,
)
from .epoch import Keys
from .params import EpochParams
from .paths import build_dir, repo_root

FORMAT = "zksolvency-deployment/1"


def registry_source() -> Path:
    return repo_root() / "verifier_contract" / "src" / "SolvencyRegistry.sol"


def build_contracts(keys: Keys) -> dict[str, ContractArtifact]:
    """Render both snarkjs verifiers under build/contracts/generated and compile everything."""
    params_name = keys.batch.build.spec.name
    gen = build_dir() / "contracts" / params_name / "generated"
    sources: dict[str, Path] = {}
    for ks, name in ((keys.batch, BATCH_VERIFIER_NAME), (keys.solvency, SOLVENCY_VERIFIER_NAME)):
        target = gen / f"{name}.sol"
        text = render_verifier(ks.verifier_sol.read_text(), name, f"zkey sha256:{ks.zkey_sha256}")
        if not target.is_file() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        sources[f"generated/{name}.sol"] = target
    sources["SolvencyRegistry.sol"] = registry_source()
    return compile_contracts(sources, build_dir() / "contracts" / params_name / "out")


def registry_abi() -> list[dict[str, Any]]:
    """The registry's ABI, shipped with the package so users need no build to read the chain."""
    abi: list[dict[str, Any]] = json.loads(
        (Path(__file__).parent / "data" / "SolvencyRegistry.abi.json").read_text()
    )
    return abi


def deploy_registry(
    w3: Web3, sender: str, keys: Keys, params: EpochParams, out: Path | None = None
) -> dict[str, Any]:
    artifacts = build_contracts(keys)
    dep: Deployment = deploy(w3, sender, artifacts, params.n_assets)
    record = {
        "format": FORMAT,
        "chain_id": dep.chain_id,
        "registry": dep.registry,
        "batch_verifier": dep.batch_verifier,
        "solvency_verifier": dep.solvency_verifier,
        "publisher": dep.publisher,
        "n_assets": dep.n_assets,
        "params": params.as_dict(),
        "batch_vkey_sha256": keys.batch.vkey_hash,
        "solvency_vkey_sha256": keys.solvency.vkey_hash,
        "development_setup": keys.batch.development or keys.solvency.development,
        "gas_used": dep.gas_used,
    }
    if out is not None:
        write_json(out, record)
    return record


def load_deployment(path: Path) -> dict[str, Any]:
    record: dict[str, Any] = read_json(path)
    if record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    return record


def write_registry_abi(artifacts: dict[str, ContractArtifact]) -> Path:
    """Refresh the shipped ABI (a test keeps it equal to the compiled one)."""
    target = Path(__file__).parent / "data" / "SolvencyRegistry.abi.json"
    target.write_text(json.dumps(artifacts[REGISTRY_NAME].abi, indent=1) + "\n")
    return target

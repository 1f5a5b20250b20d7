"""Contracts stage: generated verifiers for the epoch's keys, the registry, and a record of
where they were deployed (which doubles as the verifiers' trust anchors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from web3 import Web3

from .atomic import read_json, sha256_file, sha256_json, write_json, write_text
from .chain import (
    BATCH_VERIFIER_NAME,
    DEFAULT_EVM_VERSION,
    REGISTRY_NAME,
    SOLVENCY_VERIFIER_NAME,
    ContractArtifact,
    Deployment,
    compile_contracts,
    deploy,
    render_verifier,
)
from .keys import Keys
from .params import EpochParams
from .paths import build_dir, node_module, repo_root

FORMAT = "zksolvency-deployment/1"


def registry_source() -> Path:
    """The hand-written registry contract."""
    return repo_root() / "verifier_contract" / "src" / "SolvencyRegistry.sol"


def build_contracts(
    keys: Keys, out_dir: Path | None = None, *, evm_version: str = DEFAULT_EVM_VERSION
) -> dict[str, ContractArtifact]:
    """Render both snarkjs verifiers of ``keys`` and compile them with the registry.

    Sources go to ``out_dir/generated``, artefacts to ``out_dir/out``; ``out_dir`` defaults to
    ``build/contracts/<batch circuit>``. An unchanged source is not rewritten.
    """
    out_dir = out_dir or build_dir() / "contracts" / keys.batch.build.spec.name
    sources: dict[str, Path] = {}
    for ks, name in ((keys.batch, BATCH_VERIFIER_NAME), (keys.solvency, SOLVENCY_VERIFIER_NAME)):
        target = out_dir / "generated" / f"{name}.sol"
        text = render_verifier(
            ks.verifier_sol.read_text(encoding="utf-8"), name, f"zkey sha256:{ks.zkey_sha256}"
        )
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            write_text(target, text)
        sources[f"generated/{name}.sol"] = target
    sources[f"{REGISTRY_NAME}.sol"] = registry_source()
    # Compiling takes seconds: reuse the artefacts while sources and settings are unchanged.
    fingerprint = sha256_json(
        {
            "sources": {unit: sha256_file(path) for unit, path in sources.items()},
            "evm_version": evm_version,
            "solc": json.loads((node_module("solc") / "package.json").read_text())["version"],
        }
    )
    stamp = out_dir / "out" / "compile.json"
    names = (BATCH_VERIFIER_NAME, SOLVENCY_VERIFIER_NAME, REGISTRY_NAME)
    if stamp.is_file() and read_json(stamp).get("fingerprint") == fingerprint:
        paths = [out_dir / "out" / f"{n}.json" for n in names]
        if all(p.is_file() for p in paths):
            return {n: ContractArtifact.load(p) for n, p in zip(names, paths, strict=True)}
    artifacts = compile_contracts(sources, out_dir / "out", evm_version=evm_version)
    write_json(stamp, {"fingerprint": fingerprint})
    return artifacts


def registry_abi() -> list[dict[str, Any]]:
    """The registry's ABI, shipped with the package so users need no build to read the chain."""
    abi: list[dict[str, Any]] = json.loads(
        (Path(__file__).parent / "data" / "SolvencyRegistry.abi.json").read_text()
    )
    return abi


def deploy_registry(
    w3: Web3, sender: str, keys: Keys, params: EpochParams, out: Path | None = None
) -> dict[str, Any]:
    """Build and deploy the contracts for ``keys``; return (and write to ``out``) the record."""
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
        # Pinned by on-chain verification (TrustAnchors): the verifiers' runtime code.
        "batch_verifier_codehash": _codehash(w3, dep.batch_verifier),
        "solvency_verifier_codehash": _codehash(w3, dep.solvency_verifier),
        "development_setup": keys.batch.development or keys.solvency.development,
        "gas_used": dep.gas_used,
    }
    if out is not None:
        write_json(out, record)
    return record


def _codehash(w3: Web3, address: str) -> str:
    code = w3.eth.get_code(Web3.to_checksum_address(address))
    return Web3.keccak(bytes(code)).to_0x_hex()


def load_deployment(path: Path) -> dict[str, Any]:
    """Read a deployment record written by :func:`deploy_registry`."""
    record: dict[str, Any] = read_json(path)
    if record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    return record


def write_registry_abi(artifacts: dict[str, ContractArtifact]) -> Path:
    """Refresh the shipped ABI (a test keeps it equal to the compiled one)."""
    target = Path(__file__).parent / "data" / "SolvencyRegistry.abi.json"
    write_text(target, json.dumps(artifacts[REGISTRY_NAME].abi, indent=1) + "\n")
    return target

"""Contracts stage: generated verifiers for the epoch's keys, the registry, optionally the
single-account margin verifier, and a record of where they were deployed (which doubles as the
verifiers' trust anchors)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from web3 import Web3

from .atomic import read_json, sha256_file, sha256_json, write_json, write_text
from .chain import (
    ACCOUNT_MARGIN_NAME,
    BATCH_VERIFIER_NAME,
    DEFAULT_EVM_VERSION,
    MARGIN_VERIFIER_NAME,
    REGISTRY_NAME,
    SOLVENCY_VERIFIER_NAME,
    ChainError,
    ContractArtifact,
    Deployment,
    compile_contracts,
    deploy,
    read_circuit_hash,
    render_verifier,
)
from .commitments import registry_domain
from .keys import Keys, KeySet
from .onchain import NATIVE, AssetOnchain
from .params import EpochParams
from .paths import build_dir, node_module, repo_root

FORMAT = "zksolvency-deployment/1"


def registry_source() -> Path:
    """The hand-written registry contract."""
    return repo_root() / "verifier_contract" / "src" / "SolvencyRegistry.sol"


#: The libraries the registry imports (solved as units of the same name).
REGISTRY_LIBRARIES = (
    "BoundedCall.sol",
    "CustodySignatures.sol",
    "PriceCheck.sol",
    "ReserveBalances.sol",
)
#: Local-chain stand-ins for tokens and price feeds, deployed by the demo and tests only.
DEMO_CONTRACTS = ("MockERC20", "MockAggregator")


def account_margin_source() -> Path:
    """The hand-written contract checking single-account margin proofs against the registry."""
    return repo_root() / "verifier_contract" / "src" / "AccountMarginVerifier.sol"


def build_contracts(
    keys: Keys,
    out_dir: Path | None = None,
    *,
    margin: KeySet | None = None,
    evm_version: str = DEFAULT_EVM_VERSION,
) -> dict[str, ContractArtifact]:
    """Render the snarkjs verifiers of ``keys`` and compile them with the registry.

    ``margin``, the keys of the matching ``margin_*`` circuit instance, adds its verifier
    (``MarginVerifier``) and the AccountMarginVerifier contract. Sources go to
    ``out_dir/generated``, artefacts to ``out_dir/out``; ``out_dir`` defaults to
    ``build/contracts/<batch circuit>``. An unchanged source is not rewritten.
    """
    out_dir = out_dir or build_dir() / "contracts" / keys.batch.build.spec.name
    sources: dict[str, Path] = {}
    verifiers = [(keys.batch, BATCH_VERIFIER_NAME), (keys.solvency, SOLVENCY_VERIFIER_NAME)]
    if margin is not None:
        verifiers.append((margin, MARGIN_VERIFIER_NAME))
    for ks, name in verifiers:
        target = out_dir / "generated" / f"{name}.sol"
        text = render_verifier(
            ks.verifier_sol.read_text(encoding="utf-8"),
            name,
            f"zkey sha256:{ks.zkey_sha256}",
            ks.build.r1cs_sha256,
        )
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            write_text(target, text)
        sources[f"generated/{name}.sol"] = target
    sources[f"{REGISTRY_NAME}.sol"] = registry_source()
    for lib in REGISTRY_LIBRARIES:
        sources[lib] = registry_source().parent / lib
    names = [BATCH_VERIFIER_NAME, SOLVENCY_VERIFIER_NAME, REGISTRY_NAME]
    if margin is not None:
        # Its `import "./SolvencyRegistry.sol"` resolves to the registry unit above.
        sources[f"{ACCOUNT_MARGIN_NAME}.sol"] = account_margin_source()
        names += [
            MARGIN_VERIFIER_NAME,
            ACCOUNT_MARGIN_NAME,
        ]  # Compiling takes seconds: reuse the artefacts while sources and settings are unchanged.
    fingerprint = sha256_json(
        {
            "sources": {unit: sha256_file(path) for unit, path in sources.items()},
            "evm_version": evm_version,
            "solc": json.loads((node_module("solc") / "package.json").read_text())["version"],
        }
    )
    stamp = out_dir / "out" / "compile.json"
    if stamp.is_file() and read_json(stamp).get("fingerprint") == fingerprint:
        paths = [out_dir / "out" / f"{n}.json" for n in names]
        if all(p.is_file() for p in paths):
            return {n: ContractArtifact.load(p) for n, p in zip(names, paths, strict=True)}
    artifacts = compile_contracts(sources, out_dir / "out", evm_version=evm_version)
    write_json(stamp, {"fingerprint": fingerprint})
    return artifacts


def build_demo_contracts(evm_version: str = DEFAULT_EVM_VERSION) -> dict[str, ContractArtifact]:
    """MockERC20 and MockAggregator, compiled into build/contracts/demo (reused while their
    sources are unchanged)."""
    src = registry_source().parent / "demo"
    sources = {f"{name}.sol": src / f"{name}.sol" for name in DEMO_CONTRACTS}
    out_dir = build_dir() / "contracts" / "demo"
    fingerprint = sha256_json(
        {
            "sources": {unit: sha256_file(path) for unit, path in sources.items()},
            "evm_version": evm_version,
        }
    )
    stamp = out_dir / "compile.json"
    paths = [out_dir / f"{n}.json" for n in DEMO_CONTRACTS]
    fresh = stamp.is_file() and read_json(stamp).get("fingerprint") == fingerprint
    if fresh and all(p.is_file() for p in paths):
        return {n: ContractArtifact.load(p) for n, p in zip(DEMO_CONTRACTS, paths, strict=True)}
    artifacts = compile_contracts(sources, out_dir, evm_version=evm_version)
    write_json(stamp, {"fingerprint": fingerprint})
    return artifacts


def _shipped_abi(name: str) -> list[dict[str, Any]]:
    abi: list[dict[str, Any]] = json.loads(
        (Path(__file__).parent / "data" / f"{name}.abi.json").read_text()
    )
    return abi


def registry_abi() -> list[dict[str, Any]]:
    """The registry's ABI, shipped with the package so users need no build to read the chain."""
    return _shipped_abi(REGISTRY_NAME)


def account_margin_abi() -> list[dict[str, Any]]:
    """The AccountMarginVerifier's ABI, shipped like the registry's."""
    return _shipped_abi(ACCOUNT_MARGIN_NAME)


def deploy_registry(
    w3: Web3,
    sender: str,
    keys: Keys,
    params: EpochParams,
    out: Path | None = None,
    *,
    margin: KeySet | None = None,
    assets: Sequence[AssetOnchain] | None = None,
) -> dict[str, Any]:
    """Build and deploy the contracts for ``keys``; return (and write to ``out``) the record.

    With ``margin`` (the keys of the matching ``margin_*`` circuit) the MarginVerifier and the
    AccountMarginVerifier are deployed too; the record's margin fields are None otherwise.
    ``assets`` (onchain.load_asset_config) configures the registry's on-chain reserves and
    price feeds per asset slot; each ERC-20's decimals are checked against the token first.
    """
    if assets is not None:
        check_token_decimals(w3, assets)
    artifacts = build_contracts(keys, margin=margin)
    dep: Deployment = deploy(
        w3, sender, artifacts, params.n_assets, margin=margin is not None, assets=assets
    )
    domain = registry_domain(dep.chain_id, dep.registry)
    on_chain = int(dep.registry_contract(w3).functions.domain().call())
    if on_chain != domain:
        raise ChainError(f"the registry reports domain {on_chain}, expected {domain}")
    pinned = [(dep.batch_verifier, keys.batch), (dep.solvency_verifier, keys.solvency)]
    if margin is not None and dep.margin_verifier is not None:
        pinned.append((dep.margin_verifier, margin))
    for address, ks in pinned:
        if read_circuit_hash(w3, address) != ks.build.r1cs_sha256:
            raise ChainError(f"the verifier at {address} does not pin {ks.build.spec.name}'s r1cs")
    record = {
        "format": FORMAT,
        "chain_id": dep.chain_id,
        "registry": dep.registry,
        "batch_verifier": dep.batch_verifier,
        "solvency_verifier": dep.solvency_verifier,
        "publisher": dep.publisher,
        # The solvency proof's public `domain`: `prove --deployment` binds an epoch to it.
        "domain": str(domain),
        "n_assets": dep.n_assets,
        "params": params.as_dict(),
        "batch_vkey_sha256": keys.batch.vkey_hash,
        "solvency_vkey_sha256": keys.solvency.vkey_hash,
        # The circuits themselves: an auditor compiles circuits/ and compares.
        "batch_r1cs_sha256": keys.batch.build.r1cs_sha256,
        "solvency_r1cs_sha256": keys.solvency.build.r1cs_sha256,
        "margin_r1cs_sha256": margin.build.r1cs_sha256 if margin is not None else None,
        # Pinned by on-chain verification (TrustAnchors): the verifiers' runtime code.
        "batch_verifier_codehash": _codehash(w3, dep.batch_verifier),
        "solvency_verifier_codehash": _codehash(w3, dep.solvency_verifier),
        "development_setup": keys.batch.development
        or keys.solvency.development
        or (margin is not None and margin.development),
        # Single-account margin proofs (None when not deployed).
        "margin_verifier": dep.margin_verifier,
        "account_margin_verifier": dep.account_margin_verifier,
        "margin_vkey_sha256": margin.vkey_hash if margin is not None else None,
        "margin_verifier_codehash": (
            _codehash(w3, dep.margin_verifier) if dep.margin_verifier is not None else None
        ),
        "gas_used": dep.gas_used,
        # What the registry checks on-chain per asset slot (None: nothing).
        "assets": [a.as_json() for a in assets] if assets is not None else None,
    }
    if out is not None:
        write_json(out, record)
    return record


def check_token_decimals(w3: Web3, assets: Sequence[AssetOnchain]) -> None:
    """Each configured ERC-20 must exist and report the decimals the configuration gives: a
    wrong scale would misstate every verified reserve of that asset by powers of ten."""
    erc20_decimals = [
        {
            "type": "function",
            "name": "decimals",
            "inputs": [],
            "outputs": [{"name": "", "type": "uint8"}],
            "stateMutability": "view",
        }
    ]
    for a in assets:
        if a.token is None or a.token == NATIVE:
            continue
        address = Web3.to_checksum_address(a.token)
        if not w3.eth.get_code(address):
            raise ChainError(f"{a.symbol}: no contract at token address {address}")
        try:
            found = int(w3.eth.contract(address, abi=erc20_decimals).functions.decimals().call())
        except Exception as exc:  # a token without decimals(), or one that reverts
            raise ChainError(
                f"{a.symbol}: token {address} does not answer decimals() ({exc})"
            ) from None
        if found != a.token_decimals:
            raise ChainError(
                f"{a.symbol}: token {address} has {found} decimals, the configuration says "
                f"{a.token_decimals}"
            )


def _codehash(w3: Web3, address: str) -> str:
    code = w3.eth.get_code(Web3.to_checksum_address(address))
    return Web3.keccak(bytes(code)).to_0x_hex()


def load_deployment(path: Path) -> dict[str, Any]:
    """Read a deployment record written by :func:`deploy_registry`."""
    record: dict[str, Any] = read_json(path)
    if record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    return record


def deployment_domain(record: dict[str, Any], source: Path | str = "deployment record") -> int:
    """The registry domain a deployment record names, recomputed from its chain id and registry
    address (and checked against its `domain` field when it has one)."""
    try:
        domain = registry_domain(int(record["chain_id"]), str(record["registry"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: no usable chain_id and registry ({exc})") from None
    if "domain" in record and str(record["domain"]) != str(domain):
        raise ValueError(
            f"{source}: field 'domain' is {record['domain']}, but chain_id and registry give "
            f"{domain}"
        )
    return domain


def write_registry_abi(artifacts: dict[str, ContractArtifact]) -> Path:
    """Refresh the shipped registry ABI (a test keeps it equal to the compiled one)."""
    return _write_abi(artifacts, REGISTRY_NAME)


def write_account_margin_abi(artifacts: dict[str, ContractArtifact]) -> Path:
    """Refresh the shipped AccountMarginVerifier ABI (a test keeps it equal to the compiled one)."""
    return _write_abi(artifacts, ACCOUNT_MARGIN_NAME)


def _write_abi(artifacts: dict[str, ContractArtifact], name: str) -> Path:
    target = Path(__file__).parent / "data" / f"{name}.abi.json"
    write_text(target, json.dumps(artifacts[name].abi, indent=1) + "\n")
    return target

"""User inclusion packages: export one account's proof of membership, and verify it.

A package holds the user's own data (id, salt, balances), the leaf's Merkle path and the epoch's
public context. Verification recomputes the leaf and root, then checks the root is attested:
offline by verifying the bundle's proofs, or on-chain by reading the registry's finalized epoch.
It reveals nothing about other users: siblings are hashes of salted commitments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import read_json, write_json
from .bundle import Bundle, BundleError, TrustAnchors, load_bundle, verify_bundle
from .commitments import id_commitment, leaf_hash, qty_code
from .context import ContextError, margin_context, published_scenarios
from .field import P
from .instruments import format_quantity, parse_quantity
from .margin import headroom
from .params import EpochParams
from .progress import Reporter
from .snapshot import format_amount, parse_amount
from .tree import BatchedTree, climb

FORMAT = "zksolvency-inclusion/2"


class InclusionError(ValueError):
    """The account is not included as the package claims (verification failed)."""


class ExportError(ValueError):
    """A package cannot be exported as asked: unknown account, no private data (bad input)."""


class PackageFormatError(InclusionError):
    """The package file cannot be read or is not an inclusion package (bad input)."""


def export_package(epoch_dir: Path, account_id: str, out: Path | None = None) -> dict[str, Any]:
    """Build one account's package from the epoch's private data (exchange side)."""
    bundle = load_bundle(epoch_dir)
    m = bundle.manifest
    params = EpochParams(**{k: int(v) for k, v in m["params"].items()})
    rows = _private_rows(epoch_dir)
    match = [r for r in rows if r["id"] == account_id]
    if not match:
        raise ExportError(f"no account {account_id!r} in epoch {bundle.epoch}")
    row = match[0]
    tree = _rebuild_tree(params, rows, m)
    assets = m["context"]["assets"]
    idx = int(row["index"])
    pkg = {
        "format": FORMAT,
        "epoch": bundle.epoch,
        "bundle_sha256": bundle.sha256,
        "params": m["params"],
        "context": m["context"],
        "account": {
            "id": row["id"],
            "salt": row["salt"],
            "equity": {
                a["symbol"]: format_amount(int(v), int(a["decimals"]))
                for a, v in zip(assets, row["equity"], strict=True)
            },
            "debt": {
                a["symbol"]: format_amount(int(v), int(a["decimals"]))
                for a, v in zip(assets, row["debt"], strict=True)
            },
            "positions": {
                inst["id"]: format_quantity(int(q))
                for inst, q in zip(m["context"]["risk"]["instruments"], row["qty"], strict=False)
                if int(q)
            },
        },
        "vkeys": {
            "batch": m["circuits"]["batch"]["vkey_json"],
            "solvency": m["circuits"]["solvency"]["vkey_json"],
            "margin": m["circuits"]["margin"]["vkey_json"],
        },
        # the key margin proofs for this account must use (`margin prove --zkey`)
        "margin_key": {
            k: v for k, v in m["circuits"]["margin"].items() if k not in ("vkey_json", "vkey")
        },
        "leaf_index": idx,
        "leaf": str(tree.leaves[idx]),
        "siblings": [str(s) for s in tree.inclusion_path(idx)],
        "root": str(tree.root),
    }
    if out is not None:
        write_json(out, pkg)
    return pkg


def _private_rows(epoch_dir: Path) -> list[dict[str, Any]]:
    path = epoch_dir / "private" / "accounts.jsonl"
    if not path.is_file():
        raise ExportError(
            f"{path} is missing: packages are exported by the exchange that proved the epoch"
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _rebuild_tree(
    params: EpochParams, rows: list[dict[str, Any]], m: dict[str, Any]
) -> BatchedTree:
    n = params.n_assets
    leaves = []
    for r in rows:
        pad = [0] * (n - len(r["equity"]))
        commit = id_commitment(r["id"], int(r["salt"]))
        codes = [qty_code(int(q)) for q in r["qty"]]
        leaves.append(
            leaf_hash(commit, [*map(int, r["equity"]), *pad], [*map(int, r["debt"]), *pad], codes)
        )
    tree = BatchedTree.build(params, leaves)
    if tree.root != int(m["root"]):
        raise InclusionError("the private account data does not rebuild the published root")
    return tree


@dataclass
class InclusionResult:
    account_id: str
    epoch: int
    root: int
    leaf_index: int
    balances: dict[str, tuple[str, str]]  # symbol -> (equity, debt)
    checked_against: str  # "bundle" or "chain"
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    margin: dict[str, Any] = field(default_factory=dict)  # positions, headroom, worst scenario


def load_package(path: Path) -> dict[str, Any]:
    try:
        pkg = read_json(path)
    except OSError as exc:
        raise PackageFormatError(f"{path}: cannot read ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise PackageFormatError(f"{path}:{line or 1}: invalid JSON ({exc})") from exc
    if not isinstance(pkg, dict) or pkg.get("format") != FORMAT:
        raise PackageFormatError(f"{path}: not a {FORMAT} package")
    return pkg


def check_package(pkg: dict[str, Any]) -> InclusionResult:
    """Recompute the leaf and root from the user's data; no trust in the package's own hashes."""
    try:
        params = EpochParams(**{k: int(v) for k, v in pkg["params"].items()})
        context = pkg["context"]
        assets = context["assets"]
        acc = pkg["account"]
        salt = int(acc["salt"])
        equity, debt, shown = [], [], {}
        for a in assets:
            sym, dec = a["symbol"], int(a["decimals"])
            eq_s, debt_s = acc["equity"].get(sym, "0"), acc["debt"].get(sym, "0")
            equity.append(parse_amount(eq_s, dec))
            debt.append(parse_amount(debt_s, dec))
            shown[sym] = (eq_s, debt_s)
        extra = (set(acc["equity"]) | set(acc["debt"])) - {a["symbol"] for a in assets}
        if extra:
            raise InclusionError(f"balances for assets outside the epoch: {sorted(extra)}")
        pad = [0] * (params.n_assets - len(assets))
        qty = account_quantities(acc.get("positions", {}), context, params.n_instruments)
        leaf = leaf_hash(
            id_commitment(str(acc["id"]), salt),
            [*equity, *pad],
            [*debt, *pad],
            [qty_code(q) for q in qty],
        )
        idx = int(pkg["leaf_index"])
        siblings = [int(s) for s in pkg["siblings"]]
        root = int(pkg["root"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InclusionError):
            raise
        raise InclusionError(f"malformed package: {exc}") from exc
    if len(siblings) != params.tree_depth or not 0 <= idx < params.max_accounts:
        raise InclusionError("the Merkle path does not fit the tree's depth")
    if any(not 0 <= s < P for s in [*siblings, root]):
        raise InclusionError("a path element is not a field element")
    if climb(leaf, idx, siblings) != root:
        raise InclusionError(
            "your balances and id do not hash to the epoch root: the package was altered or "
            "your account is not in the tree as shown"
        )
    # One reading of the context serves both the hash check and the margin below.
    try:
        mctx = margin_context(context, pkg["params"])
        ctx = mctx.hash(int(context["epoch"]), params.tree_depth, params.batch_levels)
    except (ContextError, KeyError, TypeError, ValueError) as exc:
        raise InclusionError(f"the package's context is inconsistent: {exc}") from exc
    if ctx != int(context["ctx_hash"]):
        raise InclusionError("the package's prices do not match its context hash")
    result = InclusionResult(str(acc["id"]), int(pkg["epoch"]), root, idx, shown, "")
    value, worst = headroom([*equity, *pad], [*debt, *pad], qty, mctx)
    result.margin = {
        "positions": dict(acc.get("positions", {})),
        "headroom": value,
        "worst_scenario": worst,
        "worst_label": published_scenarios(context)[worst],
    }
    return result


def account_quantities(
    positions: dict[str, str], context: dict[str, Any], n_instruments: int
) -> list[int]:
    """The package's positions as quantities aligned with the epoch's instruments."""
    ids = [i["id"] for i in context["risk"]["instruments"]]
    unknown = sorted(set(positions) - set(ids))
    if unknown:
        raise InclusionError(f"positions in instruments outside the epoch: {unknown}")
    qty = [parse_quantity(str(positions.get(i, "0"))) for i in ids]
    return qty + [0] * (n_instruments - len(qty))


def verify_against_bundle(
    pkg: dict[str, Any],
    bundle_dir: Path,
    trusted: TrustAnchors | None = None,
    reporter: Reporter | None = None,
) -> InclusionResult:
    result = check_package(pkg)
    bundle: Bundle = load_bundle(bundle_dir)
    if bundle.epoch != result.epoch:
        raise InclusionError(f"the bundle is epoch {bundle.epoch}, the package {result.epoch}")
    if bundle.root != result.root:
        raise InclusionError("the bundle's root is not the package's root")
    if bundle.ctx_hash != int(pkg["context"]["ctx_hash"]):
        raise InclusionError("the bundle's context (prices) differs from the package's")
    if pkg.get("bundle_sha256") not in (None, bundle.sha256):
        result.warnings.append("the bundle's manifest is not byte-identical to the exported one")
    try:
        report = verify_bundle(bundle, trusted, reporter)
    except BundleError as exc:
        raise InclusionError(f"the epoch bundle does not verify: {exc}") from exc
    result.checked_against = "bundle"
    result.warnings.extend(report.warnings)
    result.details = {"proofs_verified": report.proofs_verified, "batches": report.batches}
    return result


def vkey_words(vkey: dict[str, Any]) -> list[int]:
    """Every coordinate of a snarkjs verification key, as the verifier contract embeds them."""
    points = [vkey["vk_alpha_1"], vkey["vk_beta_2"], vkey["vk_gamma_2"], vkey["vk_delta_2"]]
    points += vkey["IC"]
    out: list[int] = []
    for pt in points:
        for coord in pt[:2]:
            out.extend(int(c) for c in (coord if isinstance(coord, list) else [coord]))
    return out


def code_embeds_vkey(code: bytes, vkey: dict[str, Any]) -> bool:
    """Whether a snarkjs verifier's runtime code carries every constant of `vkey`.

    A quick, offline-computable link between the registry's verifier and a key; an exact
    match is the code hash pinned in the deployment record (trust anchors).
    """
    return all(_embedded(code, w) for w in vkey_words(vkey))


def _embedded(code: bytes, word: int) -> bool:
    """solc pushes a constant with as few bytes as it needs (PUSH31 for a word with a leading
    zero byte), or keeps it as a 32-byte data word: accept either."""
    n = max(1, (word.bit_length() + 7) // 8)
    push = bytes([0x5F + n]) + word.to_bytes(n, "big")
    return push in code or word.to_bytes(32, "big") in code


def verify_against_chain(
    pkg: dict[str, Any], rpc_url: str, registry: str, trusted: TrustAnchors | None = None
) -> InclusionResult:
    """Check the package's root and context against the registry's finalized epoch, and that
    the registry's verifiers are the ones for the package's keys (pinned by `trusted`)."""
    from web3 import Web3
    from web3.providers.rpc import HTTPProvider

    from .atomic import sha256_json
    from .chain import EpochStatus, read_circuit_hash, read_epoch, registry_at
    from .deployment import registry_abi

    result = check_package(pkg)
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise ConnectionError(f"cannot reach an Ethereum node at {rpc_url}")
    if not Web3.is_address(registry) or not w3.eth.get_code(Web3.to_checksum_address(registry)):
        raise InclusionError(f"no contract at {registry} on chain {w3.eth.chain_id}")
    chain_id = int(w3.eth.chain_id)
    if trusted is not None:
        if trusted.chain_id is not None and trusted.chain_id != chain_id:
            raise InclusionError(f"the node serves chain {chain_id}, not {trusted.chain_id}")
        if trusted.registry is not None and Web3.to_checksum_address(
            trusted.registry
        ) != Web3.to_checksum_address(registry):
            raise InclusionError(f"{registry} is not the pinned registry {trusted.registry}")
    contract = registry_at(w3, registry, registry_abi())
    vkeys = pkg.get("vkeys") or {}
    if not vkeys:
        result.warnings.append("the package carries no verification keys to compare")
    circuits: dict[str, str | None] = {}
    for kind in ("batch", "solvency"):
        address = getattr(contract.functions, f"{kind}Verifier")().call()
        code = bytes(w3.eth.get_code(address))
        circuits[kind] = read_circuit_hash(w3, address)
        pinned_r1cs = trusted.r1cs_sha256.get(kind) if trusted is not None else None
        if pinned_r1cs is not None and circuits[kind] != pinned_r1cs:
            raise InclusionError(
                f"the registry's {kind} verifier was made for circuit (r1cs sha256) "
                f"{circuits[kind]}, not the pinned {pinned_r1cs}"
            )
        vkey = vkeys.get(kind)
        if vkey is not None and not code_embeds_vkey(code, vkey):
            raise InclusionError(
                f"the registry's {kind} verifier is not built from the package's verification key"
            )
        if trusted is not None:
            if vkey is not None and sha256_json(vkey) != getattr(trusted, f"{kind}_vkey_sha256"):
                raise InclusionError(f"the package's {kind} key is not the pinned one")
            pinned = getattr(trusted, f"{kind}_verifier_codehash")
            codehash = Web3.keccak(code).hex().removeprefix("0x")
            if pinned is not None and codehash != pinned.removeprefix("0x"):
                raise InclusionError(f"the registry's {kind} verifier code is not the pinned one")
    if trusted is None:
        result.warnings.append(
            "no trust anchors given: the registry's verifiers were matched "
            "to the package's keys, but those keys were not pinned"
        )
    rec = read_epoch(w3, contract, result.epoch)
    if rec.status is not EpochStatus.FINALIZED:
        raise InclusionError(
            f"epoch {result.epoch} is {rec.status.name.lower()} on the registry, not finalized"
        )
    if rec.root != result.root:
        raise InclusionError("the registry's root for this epoch is not the package's root")
    if rec.ctx_hash != int(pkg["context"]["ctx_hash"]):
        raise InclusionError("the registry's context (prices) differs from the package's")
    if pkg.get("bundle_sha256") and rec.bundle_hash.hex() != pkg["bundle_sha256"]:
        result.warnings.append("the registry names another bundle hash than the package")
    result.checked_against = "chain"
    result.details = {
        "chain_id": chain_id,
        "registry": Web3.to_checksum_address(registry),
        "finalized_at": rec.finalized_at,
        "batches": rec.n_batches,
        "circuits_r1cs_sha256": circuits,
    }
    return result

"""Single-account margin proofs: an account shows a lender that it meets the margin rule of a
published epoch with at least a given headroom, revealing neither its balances nor its positions.

The account owner makes the proof from their own inclusion package (prover/inclusion.py), offline:
the package, completed from its epoch bundle (`inclusion.resolve`), holds the account, its Merkle
path and the epoch's full context, which is exactly the private input of the AccountMarginProof
circuit (docs/margin-design.md, "Single-account proof").
Its public signals are [ctxHash, root, idCommit, headroom]:

  ctxHash, root  name the epoch: a verifier accepts them only as those of a proven epoch, checked
                 against the epoch's bundle or read from the registry by AccountMarginVerifier
  idCommit       Poseidon(idHash, salt): the owner opens it to a lender by giving id and salt
  headroom       value units (USD * 10^26) the account keeps above its requirement in its worst
                 scenario; 0 proves plain compliance with the strict rule

A proof file (FORMAT) carries those numbers, the Groth16 proof and the margin verification key,
and nothing about balances, positions or the leaf's position in the tree.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import read_json, sha256_json, write_json
from .commitments import VALUE_DECIMALS, id_commitment, margin_bits, qty_code, weight
from .context import ContextError, margin_context, published_scenarios
from .field import P
from .groth16 import Proof, VerificationKey, verify
from .inclusion import account_quantities, check_package
from .keys import KeySet
from .margin import MarginContext
from .margin import headroom as margin_headroom
from .params import EpochParams
from .progress import NullReporter, Reporter
from .snapshot import format_amount, parse_amount

FORMAT = "zksolvency-margin-proof/1"
#: The circuit's public signals, in order (circuits/circuits.json, template "margin").
PUBLIC = ("ctxHash", "root", "idCommit", "headroom")


class MarginProofError(ValueError):
    """A margin proof cannot be made as asked: the account lacks the headroom, or the package
    is inconsistent (bad input; nothing is proven)."""


class HeadroomError(MarginProofError):
    """The account does not keep the requested headroom in every scenario."""


class MarginVerificationError(ValueError):
    """A margin proof does not verify, or does not say what it claims (verification failed)."""


class MarginProofFormatError(MarginVerificationError):
    """The file is not a readable margin proof (bad input rather than a failed check)."""


@dataclass(frozen=True)
class AccountData:
    """An inclusion package's account, parsed and padded to the circuit's shape."""

    params: EpochParams
    epoch: int
    margin: MarginContext
    ctx_hash: int
    root: int
    id_commit: int
    equity: list[int]
    debt: list[int]
    qty: list[int]  # signed, 10^-8 contracts
    leaf_index: int
    siblings: list[int]
    headroom: int  # the largest headroom the account can prove (negative: none)
    worst_scenario: int


def _field_strs(obj: Any) -> Any:
    """Circuit inputs as decimal strings; a negative entry becomes the field element p - |x|."""
    if isinstance(obj, dict):
        return {k: _field_strs(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_field_strs(v) for v in obj]
    if isinstance(obj, int) and obj < 0:
        return str(obj % P)
    return str(obj)


def usd(value: int) -> str:
    """A non-negative value (USD * 10^26) as an exact decimal USD string."""
    return format_amount(value, VALUE_DECIMALS)


def parse_usd(text: str, decimals: int = 8) -> int:
    """A decimal USD string with at most `decimals` decimals, in value units (USD * 10^26)."""
    scale: int = 10 ** (VALUE_DECIMALS - decimals)
    return parse_amount(text, decimals, max_bits=256) * scale


def account_data(pkg: dict[str, Any]) -> AccountData:
    """Check a resolved inclusion package (its leaf climbs to its root, its context hashes to
    its ctx_hash) and parse its account; MarginProofError if it is inconsistent."""
    if "context" not in pkg:
        raise MarginProofError("the inclusion package must be completed from its epoch bundle")
    try:
        checked = check_package(pkg)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # InclusionError, and BundleError for a context that does not hash to its ctx_hash
        raise MarginProofError(f"the inclusion package is inconsistent: {exc}") from exc
    try:
        params = EpochParams(**{k: int(v) for k, v in pkg["params"].items()})
        context = pkg["context"]
        acc = pkg["account"]
        n = params.n_assets
        equity, debt = [0] * n, [0] * n
        for i, a in enumerate(context["assets"]):
            sym, dec = a["symbol"], int(a["decimals"])
            equity[i] = parse_amount(acc["equity"].get(sym, "0"), dec)
            debt[i] = parse_amount(acc["debt"].get(sym, "0"), dec)
        ids = [i["id"] for i in context["risk"]["instruments"]]
        qty = account_quantities(acc.get("positions", {}), ids, params.n_instruments)
        mctx = margin_context(context, pkg["params"])
        value, worst = margin_headroom(equity, debt, qty, mctx)
        epoch = int(pkg["epoch"])
        ctx_epoch = int(context["epoch"])
        data = AccountData(
            params=params,
            epoch=epoch,
            margin=mctx,
            ctx_hash=int(context["ctx_hash"]),
            root=checked.root,
            id_commit=id_commitment(str(acc["id"]), int(acc["salt"])),
            equity=equity,
            debt=debt,
            qty=qty,
            leaf_index=checked.leaf_index,
            siblings=[int(s) for s in pkg["siblings"]],
            headroom=value,
            worst_scenario=worst,
        )
    except (KeyError, TypeError, ValueError, AttributeError, ContextError) as exc:
        raise MarginProofError(f"the inclusion package is inconsistent: {exc}") from exc
    if ctx_epoch != epoch:
        raise MarginProofError(f"the package is epoch {epoch} but its context is {ctx_epoch}")
    if len(qty) != params.n_instruments or len(mctx.weights) != n:
        raise MarginProofError("the package's account does not fit its circuit parameters")
    # The circuit also checks that equity covers debt at full prices (the batch circuit did so
    # for every account of a proven epoch); say so here rather than fail in the prover.
    assets = context["assets"]
    full = [weight(int(a["price_e8"]), int(a["decimals"])) for a in assets]
    if sum(e * w for e, w in zip(equity, full, strict=False)) < sum(
        d * w for d, w in zip(debt, full, strict=False)
    ):
        raise MarginProofError("the account's debt exceeds its equity at full prices")
    return data


def _refuse_headroom(data: AccountData, requested: int, scenarios: list[str]) -> None:
    if requested < 0:
        raise HeadroomError(f"the headroom must be >= 0, got {requested}")
    limit = 1 << margin_bits(data.params.n_assets, data.params.n_instruments)
    if requested >= limit:
        raise HeadroomError(f"the headroom must be below 2^{limit.bit_length() - 1} value units")
    if data.headroom >= requested:
        return
    label = (
        scenarios[data.worst_scenario]
        if data.worst_scenario < len(scenarios)
        else f"#{data.worst_scenario}"
    )
    if data.headroom < 0:
        raise HeadroomError(
            f"the account does not meet the margin rule in epoch {data.epoch}: it is "
            f"{usd(-data.headroom)} USD short in scenario {label}, so no margin proof exists"
        )
    raise HeadroomError(
        f"the account keeps only {usd(data.headroom)} USD of headroom in epoch {data.epoch} "
        f"(worst scenario {label}), less than the {usd(requested)} USD asked"
    )


def margin_proof_input(pkg: dict[str, Any], headroom: int) -> dict[str, Any]:
    """The AccountMarginProof circuit input for the package's account claiming `headroom`
    (value units, USD * 10^26). Raises MarginProofError (HeadroomError for the headroom) before
    anything is proven if the package is inconsistent or the account lacks that headroom."""
    data = account_data(pkg)
    try:
        scenarios = published_scenarios(pkg["context"])
    except (KeyError, TypeError):
        scenarios = []
    _refuse_headroom(data, headroom, scenarios)
    m = data.margin
    inputs: dict[str, Any] = _field_strs(
        {
            "ctxHash": data.ctx_hash,
            "root": data.root,
            "idCommit": data.id_commit,
            "headroom": headroom,
            **m.circuit_inputs(data.epoch),
            "equity": data.equity,
            "debt": data.debt,
            "qty": [qty_code(q) for q in data.qty],
            "leafIndex": data.leaf_index,
            "siblings": data.siblings,
        }
    )
    return inputs


def public_signals(inputs: dict[str, Any]) -> list[int]:
    """[ctxHash, root, idCommit, headroom] of a circuit input, as the proof will carry them."""
    return [int(inputs[name]) for name in PUBLIC]


def prove_account_margin(
    pkg: dict[str, Any],
    headroom: int,
    out: Path,
    ptau: Path | None = None,
    reporter: Reporter | None = None,
    *,
    stats: dict[str, float] | None = None,
    zkey: Path | None = None,
) -> dict[str, Any]:
    """Prove that the package's account keeps `headroom` (USD * 10^26) in every scenario;
    write the proof file to `out` (atomically) and return it.

    The input is built and the headroom checked first, so a refused request costs no key work.
    The proving key is `zkey` (the exchange publishes it with the bundle, as keys/margin.zkey)
    or else this machine's own (compiled and set up as for the epoch circuits, cached under
    build/: the exchange's case). Either way it must be the key whose verification key the
    package pins, or the proof would be refused by the bundle and the chain. The fresh proof is
    verified by snarkjs in the Node driver and again here in pure Python. `stats`, if given,
    receives witness_s / prove_s / verify_s (Node) and py_verify_s.
    """
    from .epoch import run_jobs

    rep = reporter or NullReporter()
    inputs = margin_proof_input(pkg, headroom)
    expected = public_signals(inputs)
    params = EpochParams(**{k: int(v) for k, v in pkg["params"].items()})
    ks = _proving_key(params, ptau, zkey, rep)
    if zkey is not None:  # whether it is a development key, the epoch's record says
        dev = bool((pkg.get("margin_key") or {}).get("development_setup", False))
        ks = dataclasses.replace(ks, development=dev)
    pinned = (pkg.get("vkeys") or {}).get("margin")
    if pinned is not None and sha256_json(pinned) != ks.vkey_hash:
        where = f"{zkey}" if zkey is not None else "this machine's margin key"
        raise MarginProofError(
            f"{where} is not the epoch's margin key (vkey {sha256_json(pinned)[:16]}...): "
            "prove with --zkey and the exchange's published keys/margin.zkey"
        )
    rep.info(f"proving {ks.build.spec.name} ({ks.build.n_constraints} constraints)")
    results: list[dict[str, Any]] = []
    # The input and the witness hold the account's balances and positions: both live in one
    # private (0700) temporary folder, removed when the proof is made, whatever happens.
    with tempfile.TemporaryDirectory(prefix="zksolvency-margin-") as tmp:
        folder = Path(tmp)
        ipath, proof_path, public_path = (folder / f for f in ("input.json", "p.json", "s.json"))
        write_json(ipath, inputs)
        job = {
            "kind": "prove",
            "name": ks.build.spec.name,
            "input": str(ipath),
            "wasm": str(ks.build.wasm),
            "zkey": str(ks.zkey),
            "vkey": str(ks.build.dir / "keys" / "verification_key.json"),
            "proof_out": str(proof_path),
            "public_out": str(public_path),
        }
        run_jobs([job], results.append, tmpdir=folder)
        proof: dict[str, Any] = read_json(proof_path)
        public = [int(x) for x in read_json(public_path)]
    if public != expected:
        raise MarginProofError(f"the proof's public signals {public} differ from {expected}")
    t0 = time.monotonic()
    if not verify(VerificationKey.from_snarkjs(ks.vkey), Proof.from_snarkjs(proof), public):
        raise MarginProofError("the fresh proof does not verify in pure Python")
    py_verify = time.monotonic() - t0
    if stats is not None:
        for res in results:
            stats.update({k: float(v) for k, v in res.items() if k.endswith("_s")})
        stats["py_verify_s"] = py_verify
    ctx_hash, root, id_commit, value = public
    doc: dict[str, Any] = {
        "format": FORMAT,
        "epoch": int(pkg["epoch"]),
        "circuit": ks.build.spec.name,
        "params": params.as_dict(),
        "ctx_hash": str(ctx_hash),
        "root": str(root),
        "id_commit": str(id_commit),
        "headroom": str(value),
        "headroom_usd": usd(value),
        "proof": proof,
        "public_signals": [str(x) for x in public],
        "vkey": ks.vkey,
        "vkey_sha256": ks.vkey_hash,
        "development_setup": ks.development,
    }
    if pkg.get("bundle_sha256"):
        doc["bundle_sha256"] = str(pkg["bundle_sha256"])
    write_json(out, doc)
    return doc


def _proving_key(
    params: EpochParams, ptau: Path | None, zkey: Path | None, rep: Reporter
) -> KeySet:
    """This machine's margin keys, or a given proving key with the locally compiled circuit."""
    from .keys import build_margin_keys, compile_circuit, external_keyset

    if zkey is None:
        return build_margin_keys(params, ptau, rep)
    return external_keyset(compile_circuit(params.margin_spec(), rep), zkey)


# --- verification -------------------------------------------------------------------------------


@dataclass
class MarginProofResult:
    """What a verified margin proof establishes, and against what it was checked."""

    epoch: int
    ctx_hash: int
    root: int
    id_commit: int
    headroom: int  # value units (USD * 10^26)
    headroom_usd: str
    vkey_sha256: str
    checked_against: str  # "proof only", "bundle" or "chain"
    account_id: str | None = None  # set when id and salt opened the idCommit
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def load_margin_proof(path: Path) -> dict[str, Any]:
    try:
        doc = read_json(path)
    except OSError as exc:
        raise MarginProofFormatError(f"{path}: cannot read ({exc.strerror})") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MarginProofFormatError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise MarginProofFormatError(f"{path}: not a {FORMAT} file")
    return doc


def _canonical(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MarginProofFormatError(f"{what}: expected a decimal string, got {value!r}")
    try:
        x = int(value)
    except ValueError:
        raise MarginProofFormatError(f"{what}: not an integer ({value!r})") from None
    if not 0 <= x < P:
        raise MarginProofFormatError(f"{what}: not a field element")
    return x


def _sha256_hex(text: str) -> str:
    h = text.lower().removeprefix("0x")
    if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise ValueError(f"not a SHA-256 hex digest: {text!r}")
    return h


def _check_proof(
    doc: dict[str, Any],
    trusted_vkey_sha256: str | None,
    account_id: str | None,
    salt: int | str | None,
) -> MarginProofResult:
    """Everything that needs no epoch data: format, signals, Groth16, key pin, id opening."""
    if doc.get("format") != FORMAT:
        raise MarginProofFormatError(f"not a {FORMAT} document")
    try:
        epoch = int(doc["epoch"])
        ctx_hash, root, id_commit, value = (
            _canonical(doc[k], k) for k in ("ctx_hash", "root", "id_commit", "headroom")
        )
        signals = [_canonical(s, "public signal") for s in doc["public_signals"]]
        vkey_json = doc["vkey"]
        vk = VerificationKey.from_snarkjs(vkey_json)
        proof = Proof.from_snarkjs(doc["proof"])
        shown = str(doc["headroom_usd"])
    except KeyError as exc:
        raise MarginProofFormatError(f"the margin proof lacks {exc}") from exc
    except (TypeError, ValueError) as exc:
        if isinstance(exc, MarginProofFormatError):
            raise
        raise MarginProofFormatError(f"malformed margin proof: {exc}") from exc
    digest = sha256_json(vkey_json)
    result = MarginProofResult(
        epoch, ctx_hash, root, id_commit, value, usd(value), digest, "proof only"
    )
    if trusted_vkey_sha256 is not None and digest != _sha256_hex(trusted_vkey_sha256):
        raise MarginVerificationError(
            f"the proof's verification key {digest[:16]}... is not the trusted one "
            f"{_sha256_hex(trusted_vkey_sha256)[:16]}..."
        )
    if vk.n_public != len(PUBLIC):
        raise MarginVerificationError(
            f"the verification key takes {vk.n_public} public signals, a margin proof has "
            f"{len(PUBLIC)}"
        )
    if signals != [ctx_hash, root, id_commit, value]:
        raise MarginVerificationError(
            "the proof's public signals are not the ctx_hash, root, id_commit and headroom it "
            "states"
        )
    if shown != result.headroom_usd:
        raise MarginVerificationError(
            f"the readable headroom {shown!r} USD is not the proven {result.headroom_usd} USD"
        )
    if not verify(vk, proof, signals):
        raise MarginVerificationError("the Groth16 proof does not verify")
    if trusted_vkey_sha256 is None:
        result.warnings.append(
            "the verification key was taken from the proof file itself: pin it with the "
            "deployment's margin_vkey_sha256 (--trusted-vkey), or check on chain"
        )
    if doc.get("development_setup"):
        result.warnings.append("the margin keys come from an INSECURE development setup")
    if (account_id is None) != (salt is None):
        raise ValueError("an account id and its salt go together")
    if account_id is not None and salt is not None:
        try:
            commit = id_commitment(account_id, int(salt))
        except ValueError as exc:
            raise ValueError(f"invalid salt: {exc}") from exc
        if commit != id_commit:
            raise MarginVerificationError(
                f"the proof's idCommit does not open to account {account_id!r} with this salt: "
                "it was made for another account"
            )
        result.account_id = account_id
    return result


def verify_margin_proof(
    proof_doc: dict[str, Any],
    bundle_dir: Path | None = None,
    trusted_vkey_sha256: str | None = None,
    account_id: str | None = None,
    salt: int | str | None = None,
    reporter: Reporter | None = None,
) -> MarginProofResult:
    """Verify a margin proof in pure Python (Groth16, BN254) and what it states.

    With `bundle_dir`, the epoch bundle is verified too and must carry the proof's ctx hash and
    root; without it (or a chain check), the proof only shows an account in *some* tree. With
    `account_id` and `salt`, the idCommit must open to them: that is how a lender learns whose
    account it is. Raises MarginVerificationError (MarginProofFormatError for an unreadable
    document) on any failure.
    """
    from .bundle import BundleError, BundleFormatError, load_bundle, verify_bundle

    result = _check_proof(proof_doc, trusted_vkey_sha256, account_id, salt)
    if bundle_dir is None:
        result.warnings.append(
            "no bundle or chain given: the proof's root and context were not checked to be "
            "those of a proven epoch"
        )
        return result
    bundle = load_bundle(bundle_dir)
    if bundle.epoch != result.epoch:
        raise MarginVerificationError(
            f"the bundle is epoch {bundle.epoch}, the proof names epoch {result.epoch}"
        )
    if bundle.ctx_hash != result.ctx_hash:
        raise MarginVerificationError("the proof's context hash is not the bundle's")
    if bundle.root != result.root:
        raise MarginVerificationError("the proof's root is not the bundle's account tree root")
    try:
        params = EpochParams(**{k: int(v) for k, v in bundle.manifest["params"].items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleFormatError(f"{bundle_dir}: unreadable circuit parameters ({exc})") from exc
    expected = params.margin_spec().name
    if proof_doc.get("circuit") != expected:
        raise MarginVerificationError(
            f"the proof names circuit {proof_doc.get('circuit')!r}, the epoch's is {expected!r}"
        )
    try:
        report = verify_bundle(bundle, None, reporter)
    except BundleFormatError:
        raise
    except BundleError as exc:
        raise MarginVerificationError(f"the epoch bundle does not verify: {exc}") from exc
    margin_entry = bundle.manifest["circuits"].get("margin")
    if margin_entry is None:
        raise MarginVerificationError("the bundle does not name a margin verification key")
    if sha256_json(margin_entry["vkey_json"]) != margin_entry["vkey_sha256"]:
        raise MarginVerificationError("the bundle's margin key does not match its recorded hash")
    if result.vkey_sha256 != margin_entry["vkey_sha256"]:
        raise MarginVerificationError(
            "the proof's verification key is not the margin key the epoch's bundle pins"
        )
    result.warnings = [w for w in result.warnings if "taken from the proof file" not in w]
    # The bundle's own warning about unpinned keys concerns the batch and solvency keys.
    result.warnings.extend(f"bundle: {w}" for w in report.warnings)
    if proof_doc.get("bundle_sha256") not in (None, bundle.sha256):
        result.warnings.append("the bundle's manifest is not byte-identical to the proven one")
    result.checked_against = "bundle"
    result.details = {"proofs_verified": report.proofs_verified, "batches": report.batches}
    return result


def verify_margin_against_chain(
    proof_doc: dict[str, Any],
    rpc_url: str,
    verifier: str,
    trusted_vkey_sha256: str | None = None,
    account_id: str | None = None,
    salt: int | str | None = None,
) -> MarginProofResult:
    """Verify a margin proof offline, then ask the AccountMarginVerifier at `verifier`, which
    reads the epoch's ctx hash and root from its registry (the epoch must be finalized) and runs
    the proof through the margin circuit's on-chain verifier (an eth_call: nothing is sent).

    With `trusted_vkey_sha256`, the on-chain verifier must also embed that key.
    """
    from web3 import Web3

    from .chain import MarginError, RegistryRevert, connect, registry_at, verify_margin_on_chain
    from .deployment import account_margin_abi
    from .inclusion import code_embeds_vkey

    result = _check_proof(proof_doc, trusted_vkey_sha256, account_id, salt)
    w3 = connect(rpc_url)
    chain_id = int(w3.eth.chain_id)
    if not Web3.is_address(verifier) or not w3.eth.get_code(Web3.to_checksum_address(verifier)):
        raise MarginVerificationError(f"no contract at {verifier} on chain {chain_id}")
    margin = registry_at(w3, verifier, account_margin_abi())
    try:
        registry = margin.functions.registry().call()
        groth16_verifier = margin.functions.verifier().call()
    except Exception as exc:  # web3 raises several unrelated types for a wrong contract
        raise MarginVerificationError(
            f"{verifier} is not an AccountMarginVerifier ({type(exc).__name__})"
        ) from exc
    code = bytes(w3.eth.get_code(groth16_verifier))
    if not code_embeds_vkey(code, proof_doc["vkey"]):
        if trusted_vkey_sha256 is not None:
            raise MarginVerificationError(
                "the contract's margin verifier is not built from the trusted verification key"
            )
        result.warnings.append("the contract's margin verifier does not embed the proof's key")
    try:
        signals = [result.ctx_hash, result.root, result.id_commit, result.headroom]
        verify_margin_on_chain(w3, margin, result.epoch, (proof_doc["proof"], signals))
    except (MarginError, RegistryRevert) as exc:
        raise MarginVerificationError(f"on chain: {exc}") from exc
    # The chain's verifier decides, not the proof's key: replace the offline warning about it.
    result.warnings = [w for w in result.warnings if "taken from the proof file" not in w]
    if trusted_vkey_sha256 is None:
        result.warnings.append(
            f"the AccountMarginVerifier {verifier} was not pinned: check that it is the one the "
            "exchange's deployment record names (and its margin_vkey_sha256, --trusted-vkey)"
        )
    result.checked_against = "chain"
    result.details = {
        "chain_id": chain_id,
        "account_margin_verifier": Web3.to_checksum_address(verifier),
        "registry": Web3.to_checksum_address(registry),
        "margin_verifier": Web3.to_checksum_address(groth16_verifier),
    }
    return result

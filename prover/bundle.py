"""Reading and checking a published epoch bundle (manifest + proofs) with no network.

Everything is recomputed or re-verified: the context hash from the published prices, the state
chain across batch proofs, each Groth16 proof in pure Python (py-ecc), and the solvency proof's
public signals against the manifest. Verification keys are compared with trust anchors when the
caller has them; a bundle's own keys alone prove nothing about which circuit was used.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import context as _context
from .atomic import read_json, sha256_file, sha256_json
from .commitments import (
    UNBOUND_DOMAIN,
    describe_domain,
    registry_domain,
    registry_of,
    totals_hash,
)
from .epoch import FORMAT
from .field import P
from .groth16 import Proof, VerificationKey, verify
from .params import FIELDS as PARAM_FIELDS
from .progress import NullReporter, Reporter
from .snapshot import format_amount
from .witness import covered_by


class BundleError(ValueError):
    """The bundle is inconsistent or its proofs do not verify."""


class BundleFormatError(BundleError):
    """A bundle or trust-anchor file is missing or unreadable (bad input, not a failed check)."""


@dataclass(frozen=True)
class TrustAnchors:
    """What a verifier pins: verification-key hashes and, for on-chain checks, where the
    registry lives and the code hashes of its verifiers. A deployment record is one."""

    batch_vkey_sha256: str
    solvency_vkey_sha256: str
    chain_id: int | None = None
    registry: str | None = None
    batch_verifier_codehash: str | None = None
    solvency_verifier_codehash: str | None = None
    margin_vkey_sha256: str | None = None  # pins the key single-account proofs must use
    # The circuits the keys were made for (r1cs hashes): kind -> sha256
    r1cs_sha256: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> TrustAnchors:
        try:
            d = json.loads(path.read_text())
            chain_id = d.get("chain_id")
            return cls(
                str(d["batch_vkey_sha256"]),
                str(d["solvency_vkey_sha256"]),
                int(chain_id) if chain_id is not None else None,
                d.get("registry"),
                d.get("batch_verifier_codehash"),
                d.get("solvency_verifier_codehash"),
                d.get("margin_vkey_sha256"),
                {
                    kind: str(d[f"{kind}_r1cs_sha256"])
                    for kind in ("batch", "solvency", "margin")
                    if d.get(f"{kind}_r1cs_sha256")
                },
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BundleFormatError(f"{path}: not a trust-anchor file ({exc})") from exc


@dataclass
class Bundle:
    dir: Path
    manifest: dict[str, Any]
    sha256: str  # of manifest.json's bytes: the bundle hash registered on-chain

    @property
    def epoch(self) -> int:
        return int(self.manifest["epoch"])

    @property
    def root(self) -> int:
        return int(self.manifest["root"])

    @property
    def ctx_hash(self) -> int:
        return int(self.manifest["context"]["ctx_hash"])

    def proof(self, entry: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        """Load one proof and its public signals, checking the recorded hash."""
        path = self.dir / entry["proof"]
        if not path.is_file():
            raise BundleError(f"missing proof file {path}")
        if sha256_file(path) != entry["proof_sha256"]:
            raise BundleError(f"{path} does not match the hash recorded in the manifest")
        public = [int(x) for x in entry["public_signals"]]
        pub_path = self.dir / entry["public"]
        if not pub_path.is_file():
            raise BundleError(f"missing public-signals file {pub_path}")
        if [int(x) for x in read_json(pub_path)] != public:
            raise BundleError(f"{pub_path} disagrees with the manifest's public signals")
        proof: dict[str, Any] = read_json(path)
        return proof, public


def load_bundle(directory: Path) -> Bundle:
    path = directory / "manifest.json"
    if not path.is_file():
        raise BundleFormatError(f"{directory}: no manifest.json (is this an epoch directory?)")
    try:
        manifest = read_json(path)
    except json.JSONDecodeError as exc:
        raise BundleFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleFormatError(f"{path}: not a {FORMAT} manifest")
    return Bundle(directory, manifest, sha256_file(path))


def recompute_context(context: dict[str, Any], params: dict[str, Any]) -> int:
    """The context hash from the published prices, haircuts and risk arrays, as the circuits
    compute it; every derived number is checked against what it derives from."""
    try:
        return _context.recompute_context(context, params)
    except (_context.ContextError, KeyError, TypeError) as exc:
        raise BundleError(f"the published context is inconsistent: {exc}") from exc


@dataclass
class BundleReport:
    epoch: int
    batches: int
    proofs_verified: int
    root: int
    anchored: bool
    warnings: list[str] = field(default_factory=list)


def _vkey(bundle: Bundle, kind: str, anchor: str | None) -> VerificationKey:
    entry = bundle.manifest["circuits"][kind]
    vkey_json = entry["vkey_json"]
    digest = sha256_json(vkey_json)
    if digest != entry["vkey_sha256"]:
        raise BundleError(f"{kind} verification key does not match its recorded hash")
    if anchor is not None and digest != anchor:
        raise BundleError(
            f"{kind} verification key {digest[:16]}... is not the trusted one {anchor[:16]}..."
        )
    return VerificationKey.from_snarkjs(vkey_json)


def check_readable(
    m: dict[str, Any], totals: list[int], n_slots: int
) -> tuple[list[int], list[int]]:
    """The human-readable totals and reserves must say exactly what the proven numbers say.
    Returns the raw verified and declared reserves (one per asset slot)."""
    res, raw = m["reserves"], m["reserves_raw"]
    if not (
        isinstance(res, dict)
        and set(res) == {"verified", "declared", "verified_only"}
        and isinstance(raw, dict)
        and set(raw) == {"verified", "declared"}
    ):
        raise BundleError("the manifest's reserves are not split into verified and declared")
    verified = [int(r) for r in raw["verified"]]
    declared = [int(r) for r in raw["declared"]]
    if len(verified) != n_slots or len(declared) != n_slots:
        raise BundleError(f"the raw reserves do not fill the circuit's {n_slots} asset slots")
    assets = m["context"]["assets"]
    symbols = {a["symbol"] for a in assets}
    if (
        set(m["totals"]) != symbols
        or set(res["verified"]) != symbols
        or set(res["declared"]) != symbols
    ):
        raise BundleError("the readable totals or reserves name other assets than the context")
    for i, a in enumerate(assets):
        sym, dec = a["symbol"], int(a["decimals"])
        eq, debt = totals[2 * i], totals[2 * i + 1]
        shown = m["totals"][sym]
        want = {
            "equity": format_amount(eq, dec),
            "debt": format_amount(debt, dec),
            "net": format_amount(max(0, eq - debt), dec),
        }
        if (
            shown != want
            or res["verified"][sym] != format_amount(verified[i], dec)
            or res["declared"][sym] != format_amount(declared[i], dec)
        ):
            raise BundleError(f"{sym}: the readable totals or reserves differ from the proven ones")
    if res["verified_only"] is not covered_by(totals, verified):
        raise BundleError("verified_only disagrees with the totals and the verified reserves")
    return verified, declared


def _check_custody(m: dict[str, Any], domain: int, epoch: int) -> list[str]:
    """The custody list the verified reserves were read from: signed for this epoch of the
    registry the proof is bound to, each signature its address's. A signature that does not
    recover may be a contract wallet's (ERC-1271), which only the chain can answer: a warning,
    since the registry asks the wallet at publication. Returns the warnings."""
    from .commitments import registry_of
    from .custody import recover

    custody = m.get("custody")
    if custody is None:
        if any(int(v) for v in m["reserves_raw"]["verified"]):
            raise BundleError("verified reserves without the custody list they were read from")
        return []
    reg = registry_of(domain)
    try:
        chain_id, registry = int(custody["chain_id"]), str(custody["registry"])
        entries = [(str(e["address"]), str(e["signature"])) for e in custody["custody"]]
        same = reg is not None and (chain_id, registry.lower()) == (
            int(reg["chain_id"]),
            str(reg["address"]).lower(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"the custody list is malformed ({exc})") from None
    if not same or int(custody["epoch"]) != epoch:
        raise BundleError("the custody list is signed for another registry, chain or epoch")
    wallets = []
    for address, sig in entries:
        try:
            raw = bytes.fromhex(sig.removeprefix("0x"))
        except ValueError:
            raise BundleError(f"custody signature of {address} is not hex") from None
        if (recover(registry, chain_id, epoch, address, raw) or "").lower() != address.lower():
            wallets.append(address)
    if not wallets:
        return []
    return [
        f"the custody signatures of {', '.join(wallets)} are not their keys': only a contract "
        "wallet (ERC-1271) may sign so, which the registry checks when the epoch is published"
    ]


def _check_metadata(m: dict[str, Any]) -> None:
    """The descriptive fields must agree with each other: a bundle cannot describe its keys as
    a ceremony's, or its circuits as another shape's, while carrying something else."""
    p = m["params"]
    shape = [int(p[k]) for k in PARAM_FIELDS]
    circuits = m["circuits"]
    if set(circuits) != {"batch", "solvency", "margin"}:
        raise BundleError(f"the manifest names circuits {sorted(circuits)}, not the epoch's three")
    for kind, entry in circuits.items():
        if [int(x) for x in entry["params"]] != shape:
            raise BundleError(
                f"the {kind} circuit is described with shape {entry['params']}, the epoch's "
                f"params are {shape}"
            )
        if not isinstance(entry["development_setup"], bool):
            raise BundleError(f"the {kind} circuit's development_setup is not a boolean")
    dev = any(entry["development_setup"] for entry in circuits.values())
    if m.get("development_setup") is not dev:
        raise BundleError(
            "the manifest's development_setup flag disagrees with its circuits' keys "
            f"(keys: {'development' if dev else 'ceremony'})"
        )
    accounts, batches = int(m["accounts"]), int(m["batches"])
    per_batch = 1 << int(p["batch_levels"])
    if not (batches >= 1 and (batches - 1) * per_batch < max(accounts, 1) <= batches * per_batch):
        raise BundleError(f"{accounts} accounts cannot fill exactly {batches} batches")


def _check_domain(m: dict[str, Any], trusted: TrustAnchors | None) -> int:
    """The registry the solvency proof is bound to, consistent with the manifest's description
    and, with anchors that name a registry, equal to it."""
    try:
        domain = int(m["domain"])
        want = registry_of(domain)  # checks that it is a domain
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"the manifest's domain is not a registry domain ({exc})") from None
    described = m.get("registry")
    if described != want:
        raise BundleError(f"the manifest's registry {described} does not match its domain")
    if trusted is not None and trusted.chain_id is not None and trusted.registry is not None:
        anchored = registry_domain(trusted.chain_id, trusted.registry)
        if domain != anchored:
            raise BundleError(
                f"the solvency proof is bound to {describe_domain(domain)}, not to the trusted "
                f"{describe_domain(anchored)}"
            )
    return domain


@dataclass
class BundleKeys:
    """What the bundle's header checks establish: the domain the solvency proof is bound to
    and the verification keys the proofs are checked with (pinned when anchors were given)."""

    domain: int
    batch: VerificationKey
    solvency: VerificationKey
    warnings: list[str] = field(default_factory=list)


def check_manifest(bundle: Bundle, trusted: TrustAnchors | None = None) -> tuple[int, list[str]]:
    """The manifest's descriptive fields, the registry binding and the custody list. Returns
    the domain the solvency proof is bound to and the warnings: keys no anchors pin, an
    insecure setup, a proof bound to no registry, custody signatures only the chain can check."""
    m = bundle.manifest
    warnings = []
    if trusted is None:
        warnings.append(
            "verification keys were taken from the bundle itself; pass trust anchors "
            "(or check against the registry) to pin them"
        )
    _check_metadata(m)
    domain = _check_domain(m, trusted)
    if m["development_setup"]:
        warnings.append("the keys come from an INSECURE development setup")
    if domain == UNBOUND_DOMAIN:
        warnings.append(
            "the solvency proof is bound to no registry (proved before deployment): no "
            "registry will accept it as it stands"
        )
    warnings.extend(_check_custody(m, domain, bundle.epoch))
    return domain, warnings


def check_keys(
    bundle: Bundle, trusted: TrustAnchors | None = None
) -> tuple[VerificationKey, VerificationKey]:
    """The circuits (r1cs) and the margin key the anchors pin, and the batch and solvency keys:
    each matches its recorded hash and, with anchors, the pinned one. Returns those two keys."""
    m = bundle.manifest
    for kind, digest in (trusted.r1cs_sha256 if trusted is not None else {}).items():
        entry = m["circuits"].get(kind) or {}
        if entry.get("r1cs_sha256") != digest:
            raise BundleError(f"the bundle's {kind} circuit (r1cs) is not the pinned one")
    margin = m["circuits"].get("margin")
    pinned = trusted.margin_vkey_sha256 if trusted is not None else None
    if pinned is not None and (margin is None or margin.get("vkey_sha256") != pinned):
        raise BundleError("the bundle's margin verification key is not the pinned one")
    if margin is not None and sha256_json(margin["vkey_json"]) != margin["vkey_sha256"]:
        raise BundleError("margin verification key does not match its recorded hash")
    batch_vk = _vkey(bundle, "batch", trusted.batch_vkey_sha256 if trusted else None)
    solv_vk = _vkey(bundle, "solvency", trusted.solvency_vkey_sha256 if trusted else None)
    return batch_vk, solv_vk


def check_header(bundle: Bundle, trusted: TrustAnchors | None = None) -> BundleKeys:
    """The manifest's descriptive fields, the registry binding, the custody list and the keys:
    everything a proof check relies on, before any proof is read."""
    domain, warnings = check_manifest(bundle, trusted)
    batch_vk, solv_vk = check_keys(bundle, trusted)
    return BundleKeys(domain, batch_vk, solv_vk, warnings)


def check_context(bundle: Bundle) -> int:
    """The context hash recomputed from the published prices, haircuts and market data, with
    the risk arrays repriced; it must be the manifest's, for the manifest's epoch."""
    m = bundle.manifest
    ctx = recompute_context(m["context"], m["params"])
    risk = _context.risk_problems(m["context"])
    if risk:
        raise BundleError(
            "the published risk arrays are less conservative than a recomputation from the "
            "published market data:\n  " + "\n  ".join(risk)
        )
    if ctx != bundle.ctx_hash or int(m["context"]["epoch"]) != bundle.epoch:
        raise BundleError("the context hash does not match the published prices and epoch")
    return ctx


def state_chain_as_given(bundle: Bundle) -> list[int]:
    """The manifest's state chain S_0..S_n, checked only for its form: n + 1 field elements.
    Nothing here ties it to the context or to the batches' public signals (check_state_chain
    does)."""
    m = bundle.manifest
    batches = int(m["batches"])
    chain = [int(s) for s in m["state_chain"]]
    if len(chain) != batches + 1:
        raise BundleError(f"the state chain has {len(chain)} states, not {batches + 1}")
    if any(not 0 <= s < P for s in chain):
        raise BundleError("a state in the chain is not a field element")
    return chain


def check_state_chain(bundle: Bundle, ctx: int) -> list[int]:
    """The state chain S_0..S_n: it starts at the context, and batch k's recorded public
    signals move it from S_k to S_k+1. Reads no proof file; returns the chain."""
    m = bundle.manifest
    batches = int(m["batches"])
    chain = [int(s) for s in m["state_chain"]]
    entries = m["proofs"]["batches"]
    if len(entries) != batches or len(chain) != batches + 1 or chain[0] != ctx:
        raise BundleError("the state chain does not start at the context or has the wrong length")
    if any(not 0 <= s < P for s in chain):
        raise BundleError("a state in the chain is not a field element")
    for k, entry in enumerate(entries):
        if [int(x) for x in entry["public_signals"]] != [chain[k], chain[k + 1], ctx]:
            raise BundleError(f"batch {k}: public signals do not continue the state chain")
    return chain


def verify_batch(bundle: Bundle, k: int, vk: VerificationKey, chain: list[int], ctx: int) -> None:
    """Batch proof k: its files match the manifest, it continues the chain, and it verifies."""
    proof, public = bundle.proof(bundle.manifest["proofs"]["batches"][k])
    if public != [chain[k], chain[k + 1], ctx]:
        raise BundleError(f"batch {k}: public signals do not continue the state chain")
    if not verify(vk, Proof.from_snarkjs(proof), public):
        raise BundleError(f"batch {k}: the Groth16 proof does not verify")


#: Batch proofs are verified in worker processes from this many on: starting one (a fresh
#: interpreter importing py_ecc) costs about as much as a few verifications.
PARALLEL_FROM = 32

_worker: tuple[Bundle, VerificationKey, list[int], int] | None = None


def _init_worker(bundle: Bundle, vk: VerificationKey, chain: list[int], ctx: int) -> None:
    global _worker
    _worker = (bundle, vk, chain, ctx)


def _verify_in_worker(k: int) -> Exception | None:
    assert _worker is not None
    try:
        verify_batch(_worker[0], k, *_worker[1:])
    except Exception as exc:  # handed back as it is: the caller raises or reports it
        return exc
    return None


def batch_failures(
    bundle: Bundle,
    ks: Sequence[int],
    vk: VerificationKey,
    chain: list[int],
    ctx: int,
    advance: Callable[[int], None] | None = None,
    workers: int = 1,
) -> dict[int, Exception]:
    """verify_batch for every batch in `ks`: {k: what it raised} for those that fail.

    With `workers` > 1 (the command line passes every core), many batches are verified in
    spawned worker processes: spawned, not forked, because a caller may have threads. Spawning
    imports the caller's main module again, so a script that calls this with workers > 1 needs
    the `if __name__ == "__main__":` guard, as any multiprocessing does; the default (one
    worker, in this process) needs none. `advance(1)` follows each batch in order."""
    step = advance or (lambda _n: None)
    workers = min(workers, len(ks))
    failures: dict[int, Exception] = {}
    if len(ks) < PARALLEL_FROM or workers < 2:
        for k in ks:
            try:
                verify_batch(bundle, k, vk, chain, ctx)
            except Exception as exc:
                failures[k] = exc
            step(1)
        return failures
    chunk = max(1, min(16, len(ks) // (8 * workers)))
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(bundle, vk, chain, ctx),
    ) as pool:
        for k, err in zip(ks, pool.map(_verify_in_worker, ks, chunksize=chunk), strict=True):
            if err is not None:
                failures[k] = err
            step(1)
    return failures


def check_totals(bundle: Bundle) -> None:
    """The totals behind the solvency proof: totals_raw opens the totals commitment, the
    readable totals and reserves say what the raw ones say, verified_only follows from them,
    and the insurance fund is the context's. Reads no proof file."""
    m = bundle.manifest
    totals = [int(t) for t in m["totals_raw"]]
    commit = totals_hash(totals, int(m["params"]["tree_depth"]))
    if commit != int(m["totals_commit"]):
        raise BundleError("the published totals do not match the totals commitment")
    check_readable(m, totals, len(m["context"]["weights"]))
    int(m["shortfall"])  # a number, like the fund: both are public signals of the proof
    if int(m["insurance_fund"]) != int(m["context"]["insurance_fund"]):
        raise BundleError("the insurance fund differs between the manifest and its context")


def verify_solvency(
    bundle: Bundle, vk: VerificationKey, chain: list[int], ctx: int, domain: int
) -> None:
    """The solvency proof alone: its files match the manifest, its public signals open the last
    state with the manifest's root, totals commitment, shortfall, fund, weights and raw
    reserves as they are written (check_totals says whether those agree), and it verifies."""
    m = bundle.manifest
    raw = m["reserves_raw"]
    expected = [
        chain[-1],
        ctx,
        bundle.root,
        int(m["totals_commit"]),
        int(m["batches"]),
        int(m["shortfall"]),
        int(m["insurance_fund"]),
        bundle.epoch,
        domain,
        *(int(w) for w in m["context"]["weights"]),
        *(int(r) for r in raw["verified"]),
        *(int(r) for r in raw["declared"]),
        int(m["reserves"]["verified_only"]),
    ]
    proof, public = bundle.proof(m["proofs"]["solvency"])
    if public != expected:
        raise BundleError("solvency proof: public signals differ from the manifest")
    if not verify(vk, Proof.from_snarkjs(proof), public):
        raise BundleError("solvency proof: the Groth16 proof does not verify")


def check_solvency(
    bundle: Bundle, vk: VerificationKey, chain: list[int], ctx: int, domain: int
) -> None:
    """The solvency proof opens the last state: its public signals are the manifest's root,
    totals commitment, shortfall, fund, weights and reserves, and it verifies."""
    check_totals(bundle)
    verify_solvency(bundle, vk, chain, ctx, domain)


def verify_bundle(
    bundle: Bundle,
    trusted: TrustAnchors | None = None,
    reporter: Reporter | None = None,
    workers: int = 1,
) -> BundleReport:
    """Check every proof and commitment of an epoch bundle; raise BundleError on any failure.
    `workers` > 1 verifies the batch proofs in that many processes (batch_failures)."""
    rep = reporter or NullReporter()
    keys = check_header(bundle, trusted)
    report = BundleReport(
        bundle.epoch, int(bundle.manifest["batches"]), 0, bundle.root, trusted is not None
    )
    report.warnings.extend(keys.warnings)
    ctx = check_context(bundle)
    chain = check_state_chain(bundle, ctx)
    with rep.task("verifying proofs", report.batches + 1) as advance:
        failures = batch_failures(
            bundle, range(report.batches), keys.batch, chain, ctx, advance, workers
        )
        if failures:
            raise failures[min(failures)]  # the first batch that fails, as in order
        report.proofs_verified += report.batches
        check_solvency(bundle, keys.solvency, chain, ctx, keys.domain)
        report.proofs_verified += 1
        advance(1)
    return report

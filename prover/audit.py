"""The auditor's check of one published epoch, as a list of named results.

Offline: the steps of `bundle.verify_bundle`, each on its own line (the manifest, the keys,
the state chain, every Groth16 proof, the totals and reserves), the context hash recomputed
from the published prices and haircuts, and the risk arrays repriced from the published
instruments, market data and grid. With a node: the registry's record of the epoch (status,
root, context, totals commitment, bundle hash, batch count, final state), the states its
BatchVerified events carry, the keys its verifiers embed, and the reserves, custody list and
prices it stored at finalize.

Each line runs whenever what it needs is available, so one failure never hides another: every
batch proof is verified even when another fails, the totals are checked without any proof,
and the proofs are checked against the manifest's own state chain (if well-formed), ctxHash
and domain when their checks failed; only a missing input skips a check, and the line says
which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from . import context as _context
from .bundle import (
    Bundle,
    BundleError,
    BundleFormatError,
    TrustAnchors,
    batch_failures,
    check_context,
    check_keys,
    check_manifest,
    check_state_chain,
    check_totals,
    load_bundle,
    recompute_context,
    state_chain_as_given,
    verify_solvency,
)
from .commitments import UNBOUND_DOMAIN, describe_domain
from .progress import NullReporter, Reporter
from .snapshot import format_amount

FORMAT = "zksolvency-audit/1"

Status = Literal["pass", "fail", "skip"]
PASS: Status = "pass"
FAIL: Status = "fail"
SKIP: Status = "skip"

#: Every line of a report, in the order it is printed, with its title.
TITLES = {
    "manifest": "manifest",
    "keys": "verification keys",
    "context": "context hash",
    "risk": "risk arrays",
    "state_chain": "state chain",
    "proofs": "Groth16 proofs",
    "totals": "totals and reserves",
    "registry": "registry",
    "epoch_record": "epoch record",
    "batch_events": "BatchVerified events",
    "verifiers": "registry verifiers",
    "reserves": "reserves on-chain",
    "prices": "prices on-chain",
}
#: What no check here can establish (docs/audit.md says why).
CANNOT_SEE = (
    "that the snapshot holds every account and every liability of the exchange",
    "that the published prices and market data are the market's (they are recomputed, not sourced)",
    "that declared reserves exist, or that verified ones were not borrowed for the moment",
    "that reserves stayed where they were after finalize",
    "that the keys come from an honest setup, or that the registry is the announced one, "
    "beyond what --trusted-keys pins",
)
BUNDLE_KEYS = ("manifest", "keys", "state_chain", "proofs", "totals")
CHAIN_KEYS = ("registry", "epoch_record", "batch_events", "verifiers", "reserves", "prices")


class AuditInputError(BundleFormatError):
    """The audit cannot start as asked: no epoch directory, no registry to compare with (bad
    input, not a failed check)."""


class _Failed(Exception):
    """A check found a discrepancy; the message is the report line's detail."""


@dataclass(frozen=True)
class Check:
    key: str
    title: str
    status: Status
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "title": self.title, "status": self.status, "detail": self.detail}


@dataclass
class AuditReport:
    """Every named check of one epoch; `ok` when none failed (skipped ones do not count)."""

    epoch_dir: Path
    epoch: int
    bundle_sha256: str
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    anchored: bool = False
    rpc: str | None = None
    registry: str | None = None

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    def check(self, key: str) -> Check:
        for c in self.checks:
            if c.key == key:
                return c
        raise KeyError(key)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in (PASS, FAIL, SKIP)}

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (a JSON-ready dict)."""
        return {
            "format": FORMAT,
            "epoch": self.epoch,
            "epoch_dir": str(self.epoch_dir),
            "bundle_sha256": self.bundle_sha256,
            "ok": self.ok,
            "counts": self.counts(),
            "trusted_keys": self.anchored,
            "rpc": self.rpc,
            "registry": self.registry,
            "checks": [c.as_json() for c in self.checks],
            "warnings": list(self.warnings),
            "cannot_see": list(CANNOT_SEE),
        }


def audit_epoch(
    epoch_dir: Path,
    trusted: TrustAnchors | None = None,
    rpc: str | None = None,
    registry: str | None = None,
    reporter: Reporter | None = None,
    from_block: int = 0,
    workers: int = 1,
) -> AuditReport:
    """Run every check on the epoch in `epoch_dir`; compare with the registry when `rpc` is
    given (at `registry`, by default the one the bundle is bound to). The registry's events
    are read from `from_block` on (its deployment block spares a node a scan from genesis).
    `workers` > 1 verifies the batch proofs in that many processes (bundle.batch_failures).

    Raises BundleFormatError (AuditInputError among them) for bad input: no such directory, an
    unreadable or foreign manifest, `rpc` with no registry to read. Discrepancies never raise:
    they are failed checks in the report.
    """
    rep = reporter or NullReporter()
    epoch_dir = Path(epoch_dir)
    if not epoch_dir.is_dir():
        raise AuditInputError(f"{epoch_dir}: no such directory")
    bundle = load_bundle(epoch_dir)
    try:
        epoch = bundle.epoch
        int(bundle.manifest["batches"])  # every line's detail counts on it
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditInputError(
            f"{epoch_dir / 'manifest.json'}: no epoch number or batch count ({exc!r})"
        ) from None
    address = _registry_address(bundle, rpc, registry)
    report = AuditReport(
        epoch_dir, epoch, bundle.sha256, anchored=trusted is not None, rpc=rpc, registry=address
    )
    lines: dict[str, Check] = {
        "context": _run("context", lambda: _check_context(bundle)),
        "risk": _run("risk", lambda: _check_risk(bundle)),
    }
    bundle_lines, warnings = _bundle_lines(bundle, trusted, rep, lines, workers)
    lines.update(bundle_lines)
    report.warnings.extend(warnings)
    if rpc is None or address is None:
        for key in CHAIN_KEYS:
            lines[key] = Check(key, TITLES[key], SKIP, "no --rpc: not compared with the chain")
    else:
        rep.info(f"reading the registry {address} at {rpc}")
        lines.update(_chain_lines(bundle, trusted, rpc, address, from_block))
    report.checks = [lines[key] for key in TITLES]
    return report


def _registry_address(bundle: Bundle, rpc: str | None, registry: str | None) -> str | None:
    """The registry to compare with: the one given, else the one the bundle is bound to."""
    if rpc is None:
        if registry is not None:
            raise AuditInputError("--registry needs --rpc (the node to read it from)")
        return None
    if registry is None:
        bound = bundle.manifest.get("registry")
        if not isinstance(bound, dict) or not bound.get("address"):
            raise AuditInputError(
                f"{bundle.dir}: the epoch is bound to no registry; name one with --registry"
            )
        registry = str(bound["address"])
    from web3 import Web3

    if not Web3.is_address(registry):
        raise AuditInputError(f"--registry: {registry!r} is not a 0x address")
    return str(Web3.to_checksum_address(registry))


# --------------------------------------------------------------------------------------------
# Running one check


_MANIFEST_ERRORS: tuple[type[Exception], ...] = (BundleError, KeyError, TypeError, ValueError)


def _run(
    key: str,
    fn: Callable[[], tuple[Status, str]],
    errors: tuple[type[Exception], ...] = _MANIFEST_ERRORS,
    offline: bool = True,
) -> Check:
    """One line of the report: what `fn` says, or a failure naming what went wrong."""
    try:
        status, detail = fn()
    except _Failed as exc:
        status, detail = FAIL, str(exc)
    except errors as exc:
        status, detail = FAIL, _describe(exc) if offline else f"{type(exc).__name__}: {exc}"
    return Check(key, TITLES[key], status, detail)


def _describe(exc: BaseException) -> str:
    """An error met reading the bundle: its own message, or what was malformed."""
    if isinstance(exc, BundleError):
        return str(exc)
    return f"malformed manifest ({type(exc).__name__}: {exc})"


def _short(value: int | str, n: int = 12) -> str:
    text = str(value)
    return text if len(text) <= n else text[:n] + "…"


# --------------------------------------------------------------------------------------------
# Offline: the context, recomputed on its own


def _check_context(bundle: Bundle) -> tuple[Status, str]:
    m = bundle.manifest
    c, p = m["context"], m["params"]
    ctx = recompute_context(c, p)  # BundleError naming the inconsistent number
    if ctx != bundle.ctx_hash:
        raise _Failed(
            f"recomputed ctxHash {_short(ctx)} differs from the published {_short(bundle.ctx_hash)}"
        )
    if int(c["epoch"]) != bundle.epoch:
        raise _Failed(f"the context is for epoch {c['epoch']}, the manifest for {bundle.epoch}")
    symbols = ", ".join(a["symbol"] for a in c["assets"])
    arrays = c["risk"]["arrays"]
    return PASS, (
        f"{_short(ctx)} recomputed from {len(c['assets'])} assets ({symbols}) in "
        f"{p['n_assets']} slots: weights from USD prices, {p['n_tiers']} haircut tiers, caps from "
        f"brackets, {len(arrays)}x{len(arrays[0]) if arrays else 0} risk entries, "
        f"{c['mode']} mode"
    )


def _check_risk(bundle: Bundle) -> tuple[Status, str]:
    c = bundle.manifest["context"]
    problems = _context.risk_problems(c, limit=100)
    if problems:
        more = "" if len(problems) < 3 else f"; and {len(problems) - 2} more"
        raise _Failed(
            "less conservative than a repricing of the published market data: "
            + "; ".join(problems[:2])
            + more
        )
    r = c["risk"]
    scenarios = len(_context.published_scenarios(c))
    if not r["instruments"]:
        return PASS, f"no instruments published; every risk row ({scenarios} scenarios) is zero"
    ids = ", ".join(i["id"] for i in r["instruments"])
    return PASS, (
        f"{len(r['instruments'])} instruments ({ids}) repriced under {scenarios} scenarios at "
        f"the market of {r['as_of']}: every published entry within tolerance"
    )


# --------------------------------------------------------------------------------------------
# Offline: the steps of bundle.verify_bundle, each on its own line

#: What a step may raise: a failed check, or a manifest missing what the step reads (an
#: IndexError among them: a proof list shorter than the batch count).
_BUNDLE_ERRORS: tuple[type[Exception], ...] = (*_MANIFEST_ERRORS, IndexError)

T = TypeVar("T")


def _described(exc: Exception) -> str:
    """What went wrong, for an error of the bundle's; anything else is a bug: raised."""
    if isinstance(exc, _BUNDLE_ERRORS):
        return _describe(exc)
    raise exc


def _attempt(fn: Callable[[], T]) -> tuple[T | None, str | None]:
    """What `fn` returns and no error, or nothing and what went wrong."""
    try:
        return fn(), None
    except _BUNDLE_ERRORS as exc:
        return None, _describe(exc)


def _input(
    check: Callable[[], T], given: Callable[[], T], what: str, as_given: list[str]
) -> tuple[T | None, str | None, str | None]:
    """An input of the proofs: what `check` establishes or, when it fails, what `given` reads
    from the manifest unchecked (then `what` joins `as_given`). Returns the value, the check's
    error, and why there is no value."""
    value, error = _attempt(check)
    if error is None:
        return value, None, None
    value, unusable = _attempt(given)
    if unusable is None:
        as_given.append(what)
    return value, error, unusable


def _about(what: str, message: str) -> str:
    """`message`, saying which proof it is about."""
    return message if message.startswith(f"{what}:") else f"{what}: {message}"


def _bundle_lines(
    bundle: Bundle,
    trusted: TrustAnchors | None,
    reporter: Reporter,
    lines: dict[str, Check],
    workers: int = 1,
) -> tuple[dict[str, Check], list[str]]:
    """The lines of the bundle's own checks, and the manifest check's warnings.

    Each step runs whenever what it needs is there, whatever the others found. The proofs need
    the keys, the ctxHash and the state chain, the solvency proof also the domain: the ones
    their checks established or, where a check failed, the manifest's own as given (the state
    chain only if it is n + 1 field elements); without one they are skipped, saying why. A
    failure of bundle.check_context fails the independent context line in `lines` unless it or
    the risk line already failed.
    """
    m = bundle.manifest
    n = int(m["batches"])
    out: dict[str, Check] = {}
    as_given: list[str] = []  # inputs the proofs are checked against although unconfirmed

    header, error = _attempt(lambda: check_manifest(bundle, trusted))
    out["manifest"] = _line("manifest", error, lambda: _manifest_detail(bundle))
    warnings = header[1] if header is not None else []
    keys, error = _attempt(lambda: check_keys(bundle, trusted))
    out["keys"] = _line("keys", error, lambda: _keys_detail(bundle, trusted))

    ctx, error, no_ctx = _input(
        lambda: check_context(bundle), lambda: bundle.ctx_hash, "ctxHash", as_given
    )
    if error is not None and FAIL not in (lines["context"].status, lines["risk"].status):
        lines["context"] = Check("context", TITLES["context"], FAIL, error)
    chain: list[int] | None = None
    no_chain: str | None = None
    if ctx is None:
        detail = f"not checked: no ctxHash to start from ({no_ctx})"
        out["state_chain"] = Check("state_chain", TITLES["state_chain"], SKIP, detail)
    else:
        start = ctx
        chain, error, no_chain = _input(
            lambda: check_state_chain(bundle, start),
            lambda: state_chain_as_given(bundle),
            "state chain",
            as_given,
        )
        out["state_chain"] = _line("state_chain", error, lambda: _chain_detail(n, as_given))
    domain: int | None = None
    no_domain: str | None = None
    if header is not None:
        domain = header[0]
    else:
        domain, no_domain = _attempt(lambda: int(m["domain"]))
        if domain is not None:
            as_given.append("domain")

    solvency_ok = False
    if keys is None or ctx is None or chain is None:
        missing = []
        if keys is None:
            missing.append("no verification keys to check them with (the keys check failed)")
        if ctx is None:
            missing.append(f"no ctxHash to check them against ({no_ctx})")
        elif chain is None:
            missing.append(
                f"no state chain to check them against: the manifest's is unusable ({no_chain})"
            )
        detail = f"none of the {n + 1} checked: " + "; ".join(missing)
        out["proofs"] = Check("proofs", TITLES["proofs"], SKIP, detail)
    else:
        batch_vk, solvency_vk = keys
        batches_ok = 0
        failed: list[str] = []
        unchecked: list[str] = []
        with reporter.task("verifying proofs", n + 1) as advance:
            failures = batch_failures(bundle, range(n), batch_vk, chain, ctx, advance, workers)
            for k in range(n):
                if k in failures:
                    failed.append(_about(f"batch {k}", _described(failures[k])))
                else:
                    batches_ok += 1
            if domain is None:
                unchecked.append(f"the solvency proof not checked: no domain ({no_domain})")
            else:
                _, error = _attempt(
                    partial(verify_solvency, bundle, solvency_vk, chain, ctx, domain)
                )
                solvency_ok = error is None
                if error is not None:
                    failed.append(_about("solvency proof", error))
            advance(1)
        out["proofs"] = _proofs_line(n, batches_ok, solvency_ok, failed, unchecked, as_given)

    _, error = _attempt(lambda: check_totals(bundle))
    out["totals"] = _line("totals", error, lambda: _totals_detail(bundle, solvency_ok))
    return out, warnings


def _line(key: str, error: str | None, passed: Callable[[], tuple[Status, str]]) -> Check:
    """The line of one step: failed with its error, or what its passing establishes."""
    if error is not None:
        return Check(key, TITLES[key], FAIL, error)
    try:
        status, detail = passed()
    except (KeyError, TypeError, ValueError):  # a field only the summary reads
        status, detail = PASS, "checked by bundle.py"
    return Check(key, TITLES[key], status, detail)


def _manifest_detail(bundle: Bundle) -> tuple[Status, str]:
    m = bundle.manifest
    custody = m.get("custody") or {}
    dev = "development keys (INSECURE)" if m["development_setup"] else "ceremony keys"
    return PASS, (
        f"{m['accounts']} accounts in {int(m['batches'])} batches, circuits "
        f"{m['circuits']['batch']['circuit']}, {dev}, bound to "
        f"{describe_domain(int(m['domain']))}, {len(custody.get('custody', []))} custody "
        "address(es)"
    )


def _keys_detail(bundle: Bundle, trusted: TrustAnchors | None) -> tuple[Status, str]:
    """Passed with the pinned keys; skipped without trust anchors: nothing pinned them."""
    m = bundle.manifest
    digests = ", ".join(
        f"{kind} {_short(m['circuits'][kind]['vkey_sha256'])}" for kind in ("batch", "solvency")
    )
    if trusted is None:
        return SKIP, (
            f"no --trusted-keys: the bundle's own keys ({digests}) were used; they match "
            "their recorded hashes but nothing pins them"
        )
    extra = [
        what
        for what, pinned in (
            ("circuits (r1cs)", bool(trusted.r1cs_sha256)),
            ("margin key", trusted.margin_vkey_sha256 is not None),
            ("registry", trusted.registry is not None and trusted.chain_id is not None),
        )
        if pinned
    ]
    return PASS, f"{digests} are the pinned keys" + (
        f"; also pinned: {', '.join(extra)}" if extra else ""
    )


def _chain_detail(n: int, as_given: list[str]) -> tuple[Status, str]:
    detail = (
        f"S_0 = ctxHash, {n + 1} field elements; batch k's public signals are "
        f"[S_k, S_k+1, ctxHash] for k < {n}"
    )
    if "ctxHash" in as_given:
        detail += "; ctxHash as the manifest gives it, which the context check did not confirm"
    return PASS, detail


def _proofs_line(
    n: int,
    batches_ok: int,
    solvency_ok: bool,
    failed: list[str],
    unchecked: list[str],
    as_given: list[str],
) -> Check:
    """How many of the n batch proofs and the solvency proof verified, and why the others did
    not: failed if one failed, skipped if some could not be checked."""
    verified = batches_ok + int(solvency_ok)
    status: Status = PASS
    detail = f"{verified} verified in pure Python ({n} batch proofs and the solvency proof)"
    if verified < n + 1:
        status = FAIL if failed else SKIP
        detail = (
            f"{verified} of {n + 1} verified in pure Python ({batches_ok} of {n} batch proofs"
            + (" and the solvency proof" if solvency_ok else "")
            + "); "
            + "; ".join([*failed, *unchecked])
        )
    if as_given:
        names = " and ".join(as_given)
        detail += (
            f"; checked against the manifest's {names} as given, which the lines above do not "
            "confirm"
        )
    return Check("proofs", TITLES["proofs"], status, detail)


def _totals_detail(bundle: Bundle, solvency_ok: bool) -> tuple[Status, str]:
    m = bundle.manifest
    detail = (
        "totalsHash(totals_raw) = totals_commit; the readable totals and reserves equal the "
        f"raw ones; verified_only = {str(m['reserves']['verified_only']).lower()}"
    )
    if solvency_ok:  # verify_solvency compared its public signals before verifying it
        detail += (
            f"; the solvency proof's public signals open S_{int(m['batches'])} with the manifest's "
            "root, totals commitment, prices and reserves"
        )
    return PASS, detail


# --------------------------------------------------------------------------------------------
# On-chain


def _chain_lines(
    bundle: Bundle, trusted: TrustAnchors | None, rpc: str, address: str, from_block: int = 0
) -> dict[str, Check]:
    from eth_abi.exceptions import DecodingError
    from web3 import Web3
    from web3.exceptions import Web3Exception

    from .chain import ChainError, connect, read_epoch, registry_at
    from .deployment import registry_abi

    errors: tuple[type[Exception], ...] = (
        Web3Exception,  # a node that answers, but not as a registry would
        DecodingError,
        ChainError,
        OSError,  # requests' connection errors among them
        *_MANIFEST_ERRORS,
    )
    unreachable = None
    try:
        w3 = connect(rpc)
        if not w3.eth.get_code(Web3.to_checksum_address(address)):
            unreachable = f"no contract at {address} on chain {w3.eth.chain_id}"
    except ConnectionError as exc:  # the node does not answer: connect says so
        unreachable = str(exc)
    except errors as exc:
        unreachable = f"cannot read {address} at {rpc} ({type(exc).__name__}: {exc})"
    if unreachable is not None:
        out = {"registry": Check("registry", TITLES["registry"], FAIL, unreachable)}
        for key in CHAIN_KEYS[1:]:
            out[key] = Check(key, TITLES[key], SKIP, "not checked: no registry to read")
        return out

    contract = registry_at(w3, address, registry_abi())
    record: list[Any] = []  # read once, shared by the lines that compare stored values

    def stored() -> Any:
        if not record:
            record.append(read_epoch(w3, contract, bundle.epoch))
        return record[0]

    checks: list[tuple[str, Callable[[], tuple[Status, str]]]] = [
        ("registry", lambda: _check_registry(w3, contract, bundle, trusted, address)),
        ("epoch_record", lambda: _check_record(stored(), bundle)),
        ("batch_events", lambda: _check_events(w3, contract, bundle, from_block)),
        ("verifiers", lambda: _check_verifiers(w3, contract, bundle, trusted)),
        ("reserves", lambda: _check_reserves(stored(), contract, bundle)),
        ("prices", lambda: _check_prices(stored(), contract, bundle)),
    ]
    return {key: _run(key, fn, errors, offline=False) for key, fn in checks}


def _check_registry(
    w3: Any, contract: Any, bundle: Bundle, trusted: TrustAnchors | None, address: str
) -> tuple[Status, str]:
    """The registry is the one the solvency proof is bound to (its domain()), and the pinned
    one when the trust anchors name a chain and a registry."""
    from web3 import Web3

    chain_id = int(w3.eth.chain_id)
    problems = []
    pinned = []
    if trusted is not None and trusted.chain_id is not None:
        pinned.append("chain id")
        if trusted.chain_id != chain_id:
            problems.append(f"the node serves chain {chain_id}, not the pinned {trusted.chain_id}")
    if trusted is not None and trusted.registry is not None:
        pinned.append("address")
        if Web3.to_checksum_address(trusted.registry) != address:
            problems.append(f"{address} is not the pinned registry {trusted.registry}")
    domain = int(contract.functions.domain().call())
    bound = int(bundle.manifest["domain"])
    if bound == UNBOUND_DOMAIN:
        problems.append("the solvency proof is bound to no registry, so none can have accepted it")
    elif domain != bound:
        problems.append(
            f"the solvency proof is bound to {describe_domain(bound)}, not to this registry "
            f"({describe_domain(domain)})"
        )
    if problems:
        raise _Failed("; ".join(problems))
    return PASS, (
        f"chain {chain_id}, registry {address}: its domain() is the solvency proof's"
        + (f"; {' and '.join(pinned)} pinned by the trust anchors" if pinned else "")
    )


def _check_record(rec: Any, bundle: Bundle) -> tuple[Status, str]:
    """The epoch is finalized with exactly the bundle's commitments and bundle hash."""
    from .chain import EpochStatus

    m = bundle.manifest
    chain = [int(s) for s in m["state_chain"]]
    n = int(m["batches"])
    fields: list[tuple[str, Any, Any]] = [
        ("ctxHash", rec.ctx_hash, bundle.ctx_hash),
        ("bundle hash", rec.bundle_hash.hex(), bundle.sha256),
        ("batch count", rec.n_batches, n),
    ]
    if rec.status is EpochStatus.FINALIZED:
        fields += [
            ("batches submitted", rec.batches_submitted, n),
            ("root", rec.root, bundle.root),
            ("totals commitment", rec.totals_commit, int(m["totals_commit"])),
            ("final state", rec.state, chain[-1]),
            ("shortfall", rec.shortfall, int(m["shortfall"])),
            ("insurance fund", rec.insurance_fund, int(m["insurance_fund"])),
            ("verified_only", rec.verified_only, bool(m["reserves"]["verified_only"])),
        ]
    differ = [
        f"{name} {_short(got)} (bundle: {_short(want)})"
        for name, got, want in fields
        if got != want
    ]
    if rec.status is not EpochStatus.FINALIZED:
        why = f"epoch {bundle.epoch} is {rec.status.name.lower()} on the registry, not finalized"
        if rec.status is not EpochStatus.NONE and differ:
            why += "; it records " + ", ".join(differ)
        raise _Failed(why)
    if differ:
        raise _Failed("the registry records " + "; ".join(differ))
    when = datetime.fromtimestamp(rec.finalized_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    # Prices are fixed by the context, but finalize may wait for the feeds to drift to them
    # (or for a feed to go stale): a long wait after opening is worth an auditor's look.
    open_for = _duration(rec.finalized_at - rec.opened_at)
    return PASS, (
        f"opened, then finalized {open_for} later ({when}): ctxHash, root, totals commitment, "
        "bundle hash "
        f"{_short(bundle.sha256)}, {n} batches, final state, shortfall, insurance fund and "
        "verified_only equal the bundle's"
    )


# Blocks per eth_getLogs request: public nodes refuse wide ranges (often above 10,000 blocks).
LOG_WINDOW = 10_000


def _check_events(w3: Any, contract: Any, bundle: Bundle, from_block: int) -> tuple[Status, str]:
    """The registry's BatchVerified events for this epoch carry the manifest's state chain."""
    chain = [int(s) for s in bundle.manifest["state_chain"]]
    head = int(w3.eth.block_number)
    if from_block > head:
        raise _Failed(f"--from-block {from_block} is past the chain's head (block {head})")
    logs = []
    for start in range(from_block, head + 1, LOG_WINDOW):
        logs.extend(
            contract.events.BatchVerified().get_logs(
                argument_filters={"epoch": bundle.epoch},
                from_block=start,
                to_block=min(head, start + LOG_WINDOW - 1),
            )
        )
    events = sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))
    n = len(chain) - 1
    got = [(int(e.args.index), int(e.args.prevState), int(e.args.nextState)) for e in events]
    want = [(k, chain[k], chain[k + 1]) for k in range(n)]
    if got != want:
        pairs = enumerate(zip(_padded(got, n), want, strict=True))
        bad = [f"batch {k}: {_event(g)}" for k, (g, w) in pairs if g != w]
        extra = f"; {len(got) - n} events beyond the chain" if len(got) > n else ""
        raise _Failed(
            f"{len(got)} events for {n} batches, unlike the manifest's chain at "
            + "; ".join(bad[:3])
            + extra
        )
    blocks = sorted({int(e["blockNumber"]) for e in events})
    return PASS, (
        f"{n} events (index 0..{n - 1}, blocks {blocks[0]}..{blocks[-1]}) carry S_0..S_{n} of "
        "the manifest's state chain"
    )


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _padded(got: Sequence[tuple[int, int, int]], n: int) -> list[tuple[int, int, int] | None]:
    return [*got[:n], *([None] * (n - len(got)))]


def _event(e: tuple[int, int, int] | None) -> str:
    return "no event" if e is None else f"event #{e[0]} {_short(e[1])} -> {_short(e[2])}"


def _check_verifiers(
    w3: Any, contract: Any, bundle: Bundle, trusted: TrustAnchors | None
) -> tuple[Status, str]:
    """The registry's verifiers embed the bundle's keys and pin its circuits; with trust
    anchors, their code and circuits are the pinned ones."""
    from web3 import Web3

    from .chain import read_circuit_hash
    from .inclusion import code_embeds_vkey

    circuits = bundle.manifest["circuits"]
    problems: list[str] = []
    notes: list[str] = []
    for kind in ("batch", "solvency"):
        address = getattr(contract.functions, f"{kind}Verifier")().call()
        code = bytes(w3.eth.get_code(address))
        if not code_embeds_vkey(code, circuits[kind]["vkey_json"]):
            problems.append(f"the {kind} verifier {address} does not embed the bundle's key")
        r1cs = read_circuit_hash(w3, address)
        if r1cs is None:
            notes.append(f"the {kind} verifier names no circuit")
        elif r1cs != circuits[kind]["r1cs_sha256"]:
            problems.append(
                f"the {kind} verifier was made for circuit {_short(r1cs)}, the bundle's is "
                f"{_short(circuits[kind]['r1cs_sha256'])}"
            )
        if trusted is not None:
            pinned_code = getattr(trusted, f"{kind}_verifier_codehash")
            codehash = Web3.keccak(code).hex().removeprefix("0x")
            if pinned_code is not None and codehash != pinned_code.removeprefix("0x"):
                problems.append(f"the {kind} verifier's code is not the pinned one")
            pinned_r1cs = trusted.r1cs_sha256.get(kind)
            if pinned_r1cs is not None and r1cs != pinned_r1cs:
                problems.append(f"the {kind} verifier's circuit is not the pinned one")
    if problems:
        raise _Failed("; ".join(problems))
    pinned = (
        trusted is not None
        and trusted.batch_verifier_codehash is not None
        and trusted.solvency_verifier_codehash is not None
    )
    return PASS, (
        "the batch and solvency verifiers embed the bundle's keys and were made for its circuits"
        + ("; their code is the pinned code" if pinned else "")
        + "".join(f"; {n}" for n in notes)
    )


def _check_reserves(rec: Any, contract: Any, bundle: Bundle) -> tuple[Status, str]:
    """Verified and declared reserves and the custody list, as finalize stored them."""
    from web3 import Web3

    from .chain import EpochStatus

    if rec.status is not EpochStatus.FINALIZED:
        return SKIP, "nothing stored: the epoch is not finalized"
    m = bundle.manifest
    raw = m["reserves_raw"]
    problems = []
    for kind, got in (("verified", rec.reserves), ("declared", rec.declared)):
        want = tuple(int(v) for v in raw[kind])
        if tuple(got) != want:
            problems.append(f"{kind} {list(got)} (bundle: {list(want)})")
    custody = m.get("custody") or {}
    listed = [Web3.to_checksum_address(e["address"]) for e in custody.get("custody", [])]
    held = [Web3.to_checksum_address(a) for a in contract.functions.getCustody(bundle.epoch).call()]
    if held != listed:
        problems.append(f"custody {held} (bundle: {listed})")
    if problems:
        raise _Failed("the registry stored " + "; ".join(problems))
    assets = m["context"]["assets"]
    shown = ", ".join(
        f"{a['symbol']} {format_amount(v, int(a['decimals']))} + "
        f"{format_amount(d, int(a['decimals']))}"
        for a, v, d in zip(assets, rec.reserves, rec.declared, strict=False)
    )
    return PASS, (
        f"verified + declared as stored at finalize equal reserves_raw ({shown}); custody list "
        f"of {len(held)} address(es) equals the manifest's"
    )


def _check_prices(rec: Any, contract: Any, bundle: Bundle) -> tuple[Status, str]:
    """The prices finalize stored: each slot's weight at the slot's configured decimals, and
    for a configured slot the asset's published USD price."""
    from .chain import EpochStatus
    from .onchain import claimed_e8

    if rec.status is not EpochStatus.FINALIZED:
        return SKIP, "nothing stored: the epoch is not finalized"
    c = bundle.manifest["context"]
    weights = [int(w) for w in c["weights"]]
    if len(rec.prices_e8) != len(weights):
        raise _Failed(f"{len(rec.prices_e8)} prices stored for {len(weights)} asset slots")
    problems, checked, unpriced = [], [], []
    for i, (w, stored) in enumerate(zip(weights, rec.prices_e8, strict=True)):
        token, _, decimals, feeds = contract.functions.assetConfig(i).call()[:4]
        want = claimed_e8(w, int(decimals))
        if stored != want:
            problems.append(f"slot {i}: stored {stored}, the context's weight gives {want}")
        if i >= len(c["assets"]):
            continue
        a = c["assets"][i]
        configured = int(token, 16) != 0 or bool(feeds)
        if not configured:
            unpriced.append(a["symbol"])
        elif int(decimals) != int(a["decimals"]):
            problems.append(
                f"{a['symbol']}: slot {i} is configured for {decimals} decimals, the asset has "
                f"{a['decimals']}"
            )
        elif stored != int(a["price_e8"]):
            problems.append(f"{a['symbol']}: stored {stored}, published price_e8 {a['price_e8']}")
        else:
            feeds_note = f"{len(feeds)} feeds" if feeds else "no feeds"
            checked.append(f"{a['symbol']} {format_amount(stored, 8)} USD ({feeds_note})")
    if problems:
        raise _Failed("; ".join(problems))
    parts = ["the stored prices are the context's weights at each slot's configured decimals"]
    if checked:
        parts.append("equal to the published prices: " + ", ".join(checked))
    if unpriced:
        parts.append(f"not configured on-chain, so not meaningful: {', '.join(unpriced)}")
    return PASS, "; ".join(parts)

"""User inclusion packages: build one for every account, and check one in a single command.

A package is small and holds only what concerns its owner: their id, salt, balances and
positions, the leaf's Merkle path, and references to the batch proof that covers the leaf, the
epoch bundle (its manifest hash) and the on-chain registry. Everything shared by all users (the
context, the keys, the other proofs) stays in the bundle, which the checks read.

`verify_inclusion` runs every check a user can run, each reported by name with what it found and
what it means, so that the command line, the web page and the tests speak the same words. It
trusts none of the package's own hashes: the leaf is recomputed from the user's data, the path is
climbed, the proofs are verified in pure Python, the context is recomputed from the published
market data, and the registry is read when an RPC URL is given. It reveals nothing about other
users: siblings are hashes of salted commitments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_json
from .bundle import (
    Bundle,
    BundleError,
    BundleKeys,
    TrustAnchors,
    batch_failures,
    check_context,
    check_header,
    check_solvency,
    check_state_chain,
    load_bundle,
    verify_batch,
)
from .commitments import id_commitment, leaf_hash, qty_code, registry_of
from .context import ContextError, margin_context, published_scenarios
from .field import P
from .instruments import format_quantity, parse_quantity
from .margin import headroom
from .params import EpochParams
from .progress import NullReporter, Reporter
from .snapshot import format_amount, parse_amount
from .tree import climb

FORMAT = "zksolvency-inclusion/3"


class InclusionError(ValueError):
    """The account is not included as the package claims (verification failed)."""


class ExportError(ValueError):
    """A package cannot be exported as asked: unknown account, no private data (bad input)."""


class PackageFormatError(InclusionError):
    """The package file cannot be read or is not an inclusion package (bad input)."""


# --- building packages ----------------------------------------------------------------------


def epoch_layout(m: dict[str, Any]) -> dict[str, Any]:
    """What reading a package's balances needs (shared by every package of the epoch): the
    circuit shape, each asset's symbol and decimals, and the instruments' ids in slot order."""
    return {
        "params": {k: int(v) for k, v in m["params"].items()},
        "assets": [
            {"symbol": a["symbol"], "decimals": int(a["decimals"])} for a in m["context"]["assets"]
        ],
        "instruments": [i["id"] for i in m["context"]["risk"]["instruments"]],
    }


class PackageMaker:
    """Turns the epoch's private account rows into packages; holds the tree and shared parts."""

    def __init__(self, bundle: Bundle, tree: Any, spot_checks: int = 256) -> None:
        import random

        from eth_utils.address import to_checksum_address

        m = bundle.manifest
        self.manifest = m
        self.tree = tree
        self.n_assets = int(m["params"]["n_assets"])
        # Rows whose leaf is hashed again: rows and leaves.bin from different runs cannot pass.
        n = int(m["accounts"])
        self.picks = set(random.Random(n).sample(range(n), min(n, spot_checks)))
        self.layout = epoch_layout(m)
        self.batch_size = 1 << int(m["params"]["batch_levels"])
        self.batches = m["proofs"]["batches"]
        self.root = str(tree.root)
        reg = registry_of(int(m["domain"]))
        self.common = {
            "bundle": {
                "manifest_sha256": bundle.sha256,
                "ctx_hash": str(bundle.ctx_hash),
                "final_state": str(m["state_chain"][-1]),
            },
            "registry": (
                {
                    "chain_id": int(reg["chain_id"]),
                    "address": to_checksum_address(str(reg["address"])),
                }
                if reg
                else None
            ),
        }

    def package(self, row: dict[str, Any], check: bool = False) -> dict[str, Any]:
        """The row's package; its leaf is hashed again if `check` or the row is sampled."""
        idx = int(row["index"])
        if check or idx in self.picks:
            leaf = leaves_of([row], self.n_assets)[0]
            if leaf != self.tree.leaves[idx]:
                raise InclusionError(f"private row {idx + 1} does not hash to the tree's leaf")
        k = idx // self.batch_size
        entry = self.batches[k]
        assets = self.layout["assets"]
        return {
            "format": FORMAT,
            "epoch": int(self.manifest["epoch"]),
            "account": {
                "id": row["id"],
                "salt": row["salt"],
                "equity": {
                    a["symbol"]: format_amount(int(v), a["decimals"])
                    for a, v in zip(assets, row["equity"], strict=False)
                },
                "debt": {
                    a["symbol"]: format_amount(int(v), a["decimals"])
                    for a, v in zip(assets, row["debt"], strict=False)
                },
                "positions": {
                    inst: format_quantity(int(q))
                    for inst, q in zip(self.layout["instruments"], row["qty"], strict=False)
                    if int(q)
                },
            },
            "layout": self.layout,
            "leaf_index": idx,
            "leaf": str(self.tree.leaves[idx]),
            "siblings": [str(s) for s in self.tree.inclusion_path(idx)],
            "root": self.root,
            "batch": {
                "index": k,
                "proof": entry["proof"],
                "proof_sha256": entry["proof_sha256"],
                "public_signals": list(entry["public_signals"]),
            },
            **self.common,
        }


def private_rows(epoch_dir: Path) -> Iterator[dict[str, Any]]:
    """The epoch's private account rows, streamed a line at a time."""
    path = epoch_dir / "private" / "accounts.jsonl"
    if not path.is_file():
        raise ExportError(
            f"{path} is missing: packages are exported by the exchange that proved the epoch"
        )
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ExportError(f"{path}:{n}: invalid JSON ({exc.msg})") from None


def rebuild_tree(epoch_dir: Path, m: dict[str, Any]) -> Any:
    """The epoch's tree, which must give the published root.

    From private/leaves.bin (the leaves `prove` hashed) when present: only the inner nodes are
    hashed again, and `PackageMaker` re-hashes a sample of rows against their leaves as it goes.
    Otherwise every leaf is hashed from the private rows."""
    from .field import FieldArray
    from .tree import BatchedTree

    params = EpochParams(**{k: int(v) for k, v in m["params"].items()})
    saved = epoch_dir / "private" / "leaves.bin"
    if saved.is_file():
        leaves = FieldArray(saved.read_bytes())
        if len(leaves) != int(m["accounts"]):
            raise ExportError(f"{saved} holds {len(leaves)} leaves for {m['accounts']} accounts")
    else:
        leaves = _hash_rows(epoch_dir, params.n_assets)
    tree = BatchedTree.build(params, leaves)
    if tree.root != int(m["root"]):
        raise InclusionError("the private account data does not rebuild the published root")
    return tree


def leaves_of(rows: list[dict[str, Any]], n_assets: int) -> list[int]:
    """The leaves of private account rows, hashed as one batch (natively when built)."""
    import numpy as np

    from .commitments import id_commitments, leaf_hashes_of

    amounts = []
    for r in rows:
        pad = [0] * (n_assets - len(r["equity"]))
        eq, debt = [*map(int, r["equity"]), *pad], [*map(int, r["debt"]), *pad]
        amounts.append([v for pair in zip(eq, debt, strict=True) for v in pair])
    return leaf_hashes_of(
        id_commitments([str(r["id"]) for r in rows], [int(r["salt"]) for r in rows]),
        np.array(amounts, dtype=np.uint64).reshape(len(rows), 2 * n_assets),
        [[qty_code(int(q)) for q in r["qty"]] for r in rows],
    )


def _hash_rows(epoch_dir: Path, n_assets: int, chunk: int = 65_536) -> Any:
    """Every leaf from the private rows, a chunk at a time."""
    from .field import FieldArray

    parts: list[bytes] = []
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(private_rows(epoch_dir)):
        if int(r["index"]) != i:
            raise ExportError(f"private/accounts.jsonl: row {i + 1} has index {r['index']}")
        rows.append(r)
        if len(rows) >= chunk:
            parts.append(FieldArray.of(leaves_of(rows, n_assets)).tobytes())
            rows.clear()
    if rows:
        parts.append(FieldArray.of(leaves_of(rows, n_assets)).tobytes())
    return FieldArray(b"".join(parts))


def export_package(epoch_dir: Path, account_id: str, out: Path | None = None) -> dict[str, Any]:
    """One account's package (exchange side): from the package store when it has been built
    for this bundle, else from the private rows (the tree is rebuilt: slow for a big epoch)."""
    from .atomic import sha256_file
    from .package_store import PackageStore, StoreError

    pkg: dict[str, Any] | None = None
    try:  # the manifest's hash names the bundle: no need to parse it when the store answers
        store = PackageStore.open(epoch_dir, sha256_file(epoch_dir / "manifest.json"))
    except (StoreError, OSError):
        store = None
    bundle = load_bundle(epoch_dir) if store is None else None
    if store is not None:
        with store:
            pkg = store.get(account_id)
    else:
        assert bundle is not None
        tree = rebuild_tree(epoch_dir, bundle.manifest)
        maker = PackageMaker(bundle, tree)
        for row in private_rows(epoch_dir):
            if row["id"] == account_id:
                pkg = maker.package(row, check=True)
                break
    if pkg is None:
        epoch = (bundle or load_bundle(epoch_dir)).epoch
        raise ExportError(f"no account {account_id!r} in epoch {epoch}")
    if out is not None:
        write_json(out, pkg)
    return pkg


def resolve(pkg: dict[str, Any], bundle: Bundle) -> dict[str, Any]:
    """The package completed from its bundle with the epoch's context and keys, which a margin
    proof needs; the bundle must be the one the package names."""
    m = bundle.manifest
    ref = pkg.get("bundle") or {}
    if int(pkg.get("epoch", -1)) != bundle.epoch or ref.get("manifest_sha256") != bundle.sha256:
        raise InclusionError(
            f"the package names bundle {str(ref.get('manifest_sha256'))[:16]}... of epoch "
            f"{pkg.get('epoch')}, not this bundle ({bundle.sha256[:16]}... of epoch {bundle.epoch})"
        )
    return {
        **pkg,
        "params": m["params"],
        "context": m["context"],
        "bundle_sha256": bundle.sha256,
        "vkeys": {k: m["circuits"][k]["vkey_json"] for k in ("batch", "solvency", "margin")},
        "margin_key": {
            k: v for k, v in m["circuits"]["margin"].items() if k not in ("vkey_json", "vkey")
        },
    }


def load_package(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackageFormatError(f"{path}: cannot read ({exc.strerror})") from exc
    return parse_package(data, str(path))


#: Deeper JSON is refused before parsing (a real package nests 4 levels).
MAX_NESTING = 32

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_nesting(data: bytes | str) -> int:
    """How deep arrays and objects nest in a JSON text (strings skipped); for invalid JSON an
    upper bound of how deep the decoder would go before it stops at the first error."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    depth = deepest = 0
    for b in _STRING.sub(b"", raw).translate(None, _NOT_BRACKET):
        if b in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_package(data: bytes | str, name: str = "package") -> dict[str, Any]:
    """A package from its bytes; PackageFormatError names the file and line of a JSON error."""
    if json_nesting(data) > MAX_NESTING:
        # json.loads recurses per level, and py_ecc lifts the recursion limit: a deep enough
        # file would crash the interpreter instead of raising.
        raise PackageFormatError(f"{name}: nested deeper than {MAX_NESTING} levels")
    try:
        pkg = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise PackageFormatError(f"{name}:{line or 1}: invalid JSON ({exc})") from exc
    if not isinstance(pkg, dict) or pkg.get("format") != FORMAT:
        got = pkg.get("format") if isinstance(pkg, dict) else None
        raise PackageFormatError(
            f"{name}: not a {FORMAT} package" + (f" (format {got!r})" if got else "")
        )
    return pkg


# --- reading a package ----------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A package's account, parsed at the epoch's decimals and padded to the circuit's shape."""

    id: str
    params: EpochParams
    equity: list[int]
    debt: list[int]
    qty: list[int]
    leaf: int
    leaf_index: int
    siblings: list[int]
    root: int
    shown: dict[str, tuple[str, str]]  # symbol -> (equity, debt) as written in the package
    positions: dict[str, str]


def read_account(pkg: dict[str, Any]) -> Account:
    """Parse the account, its leaf and its path; InclusionError names what is malformed."""
    try:
        layout = pkg["layout"]
        params = EpochParams(**{k: int(v) for k, v in layout["params"].items()})
        acc = pkg["account"]
        salt = int(acc["salt"])
        equity, debt, shown = [], [], {}
        for a in layout["assets"]:
            sym, dec = a["symbol"], int(a["decimals"])
            eq_s, debt_s = acc["equity"].get(sym, "0"), acc["debt"].get(sym, "0")
            equity.append(parse_amount(eq_s, dec))
            debt.append(parse_amount(debt_s, dec))
            shown[sym] = (eq_s, debt_s)
        extra = (set(acc["equity"]) | set(acc["debt"])) - {a["symbol"] for a in layout["assets"]}
        if extra:
            raise InclusionError(f"balances for assets outside the epoch: {sorted(extra)}")
        if len(layout["assets"]) > params.n_assets:
            raise InclusionError("more assets than the circuit has slots")
        pad = [0] * (params.n_assets - len(layout["assets"]))
        positions = {str(k): str(v) for k, v in acc.get("positions", {}).items()}
        qty = account_quantities(positions, list(layout["instruments"]), params.n_instruments)
        leaf = leaf_hash(
            id_commitment(str(acc["id"]), salt),
            [*equity, *pad],
            [*debt, *pad],
            [qty_code(q) for q in qty],
        )
        idx = int(pkg["leaf_index"])
        siblings = [int(s) for s in pkg["siblings"]]
        root = int(pkg["root"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, InclusionError):
            raise
        raise InclusionError(f"malformed package: {exc!r}") from exc
    return Account(
        str(acc["id"]),
        params,
        [*equity, *pad],
        [*debt, *pad],
        qty,
        leaf,
        idx,
        siblings,
        root,
        shown,
        positions,
    )


def account_quantities(positions: dict[str, str], ids: list[str], n_instruments: int) -> list[int]:
    """The package's positions as quantities aligned with the epoch's instruments."""
    unknown = sorted(set(positions) - set(ids))
    if unknown:
        raise InclusionError(f"positions in instruments outside the epoch: {unknown}")
    if len(ids) > n_instruments:
        raise InclusionError("more instruments than the circuit has slots")
    qty = [parse_quantity(str(positions.get(i, "0"))) for i in ids]
    return qty + [0] * (n_instruments - len(qty))


def check_path(a: Account) -> None:
    if len(a.siblings) != a.params.tree_depth or not 0 <= a.leaf_index < a.params.max_accounts:
        raise InclusionError("the Merkle path does not fit the tree's depth")
    if any(not 0 <= s < P for s in [*a.siblings, a.root]):
        raise InclusionError("a path element is not a field element")
    if climb(a.leaf, a.leaf_index, a.siblings) != a.root:
        raise InclusionError(
            "your leaf does not climb to the epoch root along the package's path: the package "
            "was altered, or your account is not in the tree at this position"
        )


@dataclass
class InclusionResult:
    """What `check_package` found: the account is in the package's root (and its margin)."""

    account_id: str
    epoch: int
    root: int
    leaf_index: int
    balances: dict[str, tuple[str, str]]  # symbol -> (equity, debt)
    margin: dict[str, Any] = field(default_factory=dict)  # positions, headroom, worst scenario


def check_package(pkg: dict[str, Any]) -> InclusionResult:
    """Recompute the leaf and climb to the root; with a resolved package (`resolve`), also
    recompute its context hash and the account's margin headroom."""
    a = read_account(pkg)
    check_path(a)
    result = InclusionResult(a.id, int(pkg["epoch"]), a.root, a.leaf_index, a.shown)
    if "context" in pkg:
        result.margin = margin_of(a, pkg["context"], pkg["params"])
    return result


def margin_of(a: Account, context: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The account's margin values and headroom under the epoch's published scenarios."""
    try:
        mctx = margin_context(context, params)
        ctx = mctx.hash(int(context["epoch"]), a.params.tree_depth, a.params.batch_levels)
    except (ContextError, KeyError, TypeError, ValueError) as exc:
        raise InclusionError(f"the epoch's context is inconsistent: {exc}") from exc
    if ctx != int(context["ctx_hash"]):
        raise InclusionError("the epoch's prices do not match its context hash")
    value, worst = headroom(a.equity, a.debt, a.qty, mctx)
    return {
        "positions": dict(a.positions),
        "headroom": value,
        "worst_scenario": worst,
        "worst_label": published_scenarios(context)[worst],
    }


# --- the one-command check ------------------------------------------------------------------

#: Every check, in the order it runs: key -> (title, what a pass means for the user).
CHECKS: dict[str, tuple[str, str]] = {
    "package": (
        "The package is readable",
        "It is an inclusion package for this tool, and every field parses.",
    ),
    "leaf": (
        "Your data makes your leaf",
        "Your id, salt, balances and positions, as shown above, hash to the leaf the exchange "
        "committed for you: it committed exactly these numbers.",
    ),
    "path": (
        "Your leaf is in the epoch's tree",
        "Your leaf climbs along the package's path to the epoch's root: your account is one of "
        "the accounts the epoch's proofs are about.",
    ),
    "bundle": (
        "The package belongs to this epoch bundle",
        "The bundle is the one your package names (same manifest hash, epoch, root and "
        "registry), and its keys and descriptions are consistent.",
    ),
    "context": (
        "Prices and risk parameters recompute",
        "The prices, haircuts and risk arrays the proofs used recompute from the published "
        "market data: nobody proved against private prices.",
    ),
    "batch_proof": (
        "The batch holding your account is proven",
        "A zero-knowledge proof shows that every account of your batch, yours included, is "
        "non-negative and meets its margin requirement in every risk scenario, and that the "
        "batch's totals were added to the running totals.",
    ),
    "state_chain": (
        "Every batch is chained to the final commitment",
        "Each batch proof (verified here, or by the registry as it accepted it) continues the "
        "previous one's hidden state, from the published prices to the final state: no batch "
        "was skipped, replaced or counted twice.",
    ),
    "solvency_proof": (
        "Liabilities are covered by reserves",
        "A zero-knowledge proof opens the final state and shows that, for every asset, the "
        "total of all users' balances in the tree (yours included) is at most the reserves.",
    ),
    "margin": (
        "Your account's margin",
        "Your own headroom above the margin requirement in the worst published scenario, "
        "computed here from your data.",
    ),
    "onchain": (
        "The registry attests this epoch",
        "The registry contract finalized this epoch with your root and these prices, after "
        "verifying every batch proof and the solvency proof itself.",
    ),
}

#: The checks a verdict of VERIFIED needs, besides every batch proof standing (ok).
REQUIRED = frozenset(
    {"leaf", "path", "bundle", "context", "batch_proof", "state_chain", "solvency_proof"}
)

#: What no check here can establish, said to the user every time.
NOT_PROVEN = (
    "that the balances and positions shown are the ones in your own records: compare them",
    "that the published prices match the market at the snapshot time",
    "that the exchange holds the reserves beyond the snapshot moment (they may be borrowed)",
    "that the registry address is the one the exchange announced, unless --trusted-keys pins it",
)

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class Check:
    key: str
    status: str  # pass, fail or skip
    detail: str

    @property
    def title(self) -> str:
        return CHECKS[self.key][0]

    @property
    def meaning(self) -> str:
        return CHECKS[self.key][1]

    def as_json(self) -> dict[str, str]:
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "meaning": self.meaning,
        }


@dataclass
class InclusionReport:
    """Every check's outcome for one package, and what the user should read from them."""

    checks: list[Check] = field(default_factory=list)
    account_id: str | None = None
    epoch: int | None = None
    root: int | None = None
    balances: dict[str, tuple[str, str]] = field(default_factory=dict)
    margin: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    unpinned: list[str] = field(default_factory=list)  # what the trust anchors left open

    @property
    def ok(self) -> bool:
        """Nothing failed; the account's leaf, its path and the bundle's proofs were checked;
        and every batch proof stands: verified here, or by the registry whose record of this
        bundle was read (only then does the final state, which the solvency proof opens,
        follow from the batch that holds the account)."""
        done = {c.key for c in self.checks if c.status == PASS}
        here, n = self.details.get("batches_verified_here"), self.details.get("epoch_batches")
        every_batch = (here is not None and here == n) or "onchain" in done
        return not self.failed and done >= REQUIRED and every_batch

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def status(self, key: str) -> str | None:
        return next((c.status for c in self.checks if c.key == key), None)

    def summary(self) -> list[str]:
        """The plain-language verdict: what was checked, what it means, what it does not."""
        if self.failed:
            first = self.failed[0]
            return [
                f"NOT VERIFIED: the check '{first.title}' failed: {first.detail}",
                "Do not rely on this epoch for your account; keep the package and contact the "
                "exchange (or an auditor) with the message above.",
            ]
        if not self.ok:
            return [
                "NOT VERIFIED: the epoch's bundle is needed (--bundle DIR): without it your "
                "package's assets, decimals and instruments, and the proofs, are unchecked."
            ]
        lines = [
            f"VERIFIED: account {self.account_id} is included in epoch {self.epoch} with "
            "exactly the balances and positions shown, and the epoch's proofs hold"
            + (", under keys nothing here pinned (see below)." if self.unpinned else "."),
        ]
        lines += [f"Caution: {u}" for u in self.unpinned]
        here, n = self.details.get("batches_verified_here"), self.details.get("epoch_batches")
        if here is not None and n is not None and here < n:
            lines.append(
                f"Of the {n} batch proofs, the one holding your account was verified here; the "
                "registry verified every one as it accepted it, and its record of this bundle "
                "was read above."
            )
        lines.append("This means:")
        lines += [
            f"  - {c.meaning}" for c in self.checks if c.status == PASS and c.key != "package"
        ]
        lines.append("It does not prove:")
        lines += [f"  - {n}" for n in NOT_PROVEN]
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "account_id": self.account_id,
            "epoch": self.epoch,
            "root": str(self.root) if self.root is not None else None,
            "balances": {k: {"equity": e, "debt": d} for k, (e, d) in self.balances.items()},
            "margin": {k: (str(v) if k == "headroom" else v) for k, v in self.margin.items()},
            "checks": [c.as_json() for c in self.checks],
            "warnings": list(self.warnings),
            "unpinned": list(self.unpinned),
            "summary": self.summary(),
            "not_proven": list(NOT_PROVEN),
        }


class _Run:
    """Runs checks in order; a check whose prerequisites did not pass is skipped, saying so."""

    def __init__(self, report: InclusionReport) -> None:
        self.report = report

    def passed(self, *keys: str) -> bool:
        return all(self.report.status(k) == PASS for k in keys)

    def __call__(
        self, key: str, needs: tuple[str, ...], fn: Callable[[], str], skip: str | None = None
    ) -> None:
        if skip is not None:
            self.report.checks.append(Check(key, SKIP, skip))
            return
        missing = [k for k in needs if self.report.status(k) != PASS]
        if missing:
            self.report.checks.append(
                Check(key, SKIP, f"not checked: needs '{CHECKS[missing[0]][0]}' to pass first")
            )
            return
        try:
            detail = fn()
        except (InclusionError, BundleError, ContextError, ConnectionError) as exc:
            self.report.checks.append(Check(key, FAIL, str(exc)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.report.checks.append(Check(key, FAIL, f"malformed data: {exc!r}"))
        else:
            self.report.checks.append(Check(key, PASS, detail))


def verify_inclusion(
    pkg: dict[str, Any] | bytes | str,
    bundle_dir: Path | Bundle | None = None,
    *,
    rpc: str | None = None,
    registry: str | None = None,
    trusted: TrustAnchors | None = None,
    all_batches: bool = False,
    reporter: Reporter | None = None,
    workers: int = 1,
) -> InclusionReport:
    """Run every check on a package against its bundle (offline) and/or the chain.

    The bundle is required: it fixes the package's layout (assets, decimals, instruments)
    and holds the proofs. Offline, every batch proof and the solvency proof are verified in
    pure Python: the solvency proof opens the final state, and only the batch proofs carry the
    account's batch to it. With `rpc`, the registry (the package's, unless `registry` is given)
    must have finalized this epoch with this bundle, root and context; it verified every batch
    proof as it accepted it, so only the proof of the account's batch is verified here, unless
    `all_batches`. `workers` > 1 verifies them in that many processes (bundle.batch_failures).
    """
    rep = reporter or NullReporter()
    report = InclusionReport()
    run = _Run(report)
    state: dict[str, Any] = {}

    def package() -> str:
        state["pkg"] = parse_package(pkg) if isinstance(pkg, bytes | str) else pkg
        if not isinstance(state["pkg"], dict) or state["pkg"].get("format") != FORMAT:
            raise PackageFormatError(f"not a {FORMAT} package")
        a = state["account"] = read_account(state["pkg"])
        report.account_id, report.epoch = a.id, int(state["pkg"]["epoch"])
        report.root, report.balances = a.root, a.shown
        return f"account {a.id}, epoch {report.epoch}, leaf {a.leaf_index}"

    def leaf() -> str:
        a: Account = state["account"]
        stated = int(state["pkg"]["leaf"])
        if stated != a.leaf:
            raise InclusionError(
                "your id, salt, balances and positions do not hash to the leaf in the package: "
                "the data shown is not what the exchange committed"
            )
        return f"leaf {a.leaf} recomputed from your data"

    def path() -> str:
        a: Account = state["account"]
        check_path(a)
        return f"{len(a.siblings)} hashes from leaf {a.leaf_index} to root {a.root}"

    run("package", (), package)
    run("leaf", ("package",), leaf)
    run("path", ("leaf",), path)
    if bundle_dir is not None:
        _bundle_checks(run, state, bundle_dir, trusted, all_batches or rpc is None, rep, workers)
    else:
        why = "not checked: no epoch bundle given (--bundle DIR)"
        for key in ("bundle", "context", "batch_proof", "state_chain", "solvency_proof", "margin"):
            run(key, (), lambda: "", skip=why)
    if rpc is not None:

        def onchain() -> str:
            try:
                return _onchain(state, report, rpc, registry, trusted)
            except (InclusionError, ConnectionError):
                raise
            except Exception as exc:  # web3's errors: a node that answers, but not as a registry
                raise InclusionError(f"reading the registry failed: {exc}") from exc

        run("onchain", ("path",), onchain)
    else:
        run("onchain", (), lambda: "", skip="not checked: no RPC URL given (--rpc URL)")
    report.unpinned = _unpinned(trusted, rpc is not None)
    return report


def _unpinned(trusted: TrustAnchors | None, onchain: bool) -> list[str]:
    """What the trust anchors leave to the exchange's word: said with the verdict, because a
    proof under keys the exchange made itself (it could hold their trapdoor) proves nothing."""
    if trusted is None:
        return [
            "no trust anchors were given (--trusted-keys), so the verification keys are the "
            "ones the exchange published; an exchange that made its own keys could prove "
            "anything. Pin them with the deployment record your auditor or the exchange's "
            "announcement gives."
        ]
    if not onchain:
        return []
    missing = [
        what
        for what, value in (
            ("chain id", trusted.chain_id),
            ("registry address", trusted.registry),
            ("batch verifier code", trusted.batch_verifier_codehash),
            ("solvency verifier code", trusted.solvency_verifier_codehash),
        )
        if value is None
    ]
    if not missing:
        return []
    return [
        "the trust anchors pin no " + ", ".join(missing) + ": the registry read is the one the "
        "package names, and a contract there could answer anything"
    ]


def _bundle_checks(
    run: _Run,
    state: dict[str, Any],
    bundle_dir: Path | Bundle,
    trusted: TrustAnchors | None,
    all_batches: bool,
    rep: Reporter,
    workers: int = 1,
) -> None:
    report = run.report

    def bundle_check() -> str:
        b = state["bundle"] = (
            bundle_dir if isinstance(bundle_dir, Bundle) else load_bundle(bundle_dir)
        )
        pkg, a = state["pkg"], state["account"]
        ref = pkg.get("bundle") or {}
        if ref.get("manifest_sha256") != b.sha256:
            raise InclusionError(
                f"the package was exported from bundle {str(ref.get('manifest_sha256'))[:16]}..., "
                f"this bundle is {b.sha256[:16]}...: get the bundle your package names"
            )
        if b.epoch != int(pkg["epoch"]) or b.root != a.root:
            raise InclusionError("the bundle's epoch or root is not the package's")
        if int(ref.get("ctx_hash", -1)) != b.ctx_hash:
            raise InclusionError("the bundle's context hash is not the one the package names")
        if epoch_layout(b.manifest) != pkg["layout"]:
            raise InclusionError(
                "the package's assets, decimals, instruments or circuit shape differ from the "
                "bundle's"
            )
        reg = registry_of(int(b.manifest["domain"]))
        named = pkg.get("registry")
        same = (reg is None and named is None) or (
            reg is not None
            and isinstance(named, dict)
            and int(named.get("chain_id", -1)) == int(reg["chain_id"])
            and str(named.get("address", "")).lower() == str(reg["address"]).lower()
        )
        if not same:
            raise InclusionError("the package names another registry than the bundle's proofs")
        keys: BundleKeys = check_header(b, trusted)
        state["keys"] = keys
        report.warnings.extend(w for w in keys.warnings if "trust anchors" not in w)
        return (
            f"epoch {b.epoch}, manifest sha256 {b.sha256[:16]}..., {b.manifest['batches']} batches"
        )

    def context() -> str:
        b: Bundle = state["bundle"]
        state["ctx"] = check_context(b)
        c = b.manifest["context"]
        return (
            f"context hash recomputed from {len(c['assets'])} asset prices and haircuts and "
            f"{len(c['risk']['instruments'])} instruments' risk arrays"
        )

    def batch_proof() -> str:
        b: Bundle = state["bundle"]
        a: Account = state["account"]
        pkg = state["pkg"]
        k = a.leaf_index >> a.params.batch_levels
        ref = pkg["batch"]
        entries = b.manifest["proofs"]["batches"]
        if int(ref["index"]) != k or k >= len(entries):
            raise InclusionError(f"leaf {a.leaf_index} lies in batch {k}, not {ref['index']}")
        if (
            ref["proof"] != entries[k]["proof"]
            or ref["proof_sha256"] != entries[k]["proof_sha256"]
            or [str(x) for x in ref["public_signals"]]
            != [str(x) for x in entries[k]["public_signals"]]
        ):
            raise InclusionError(f"the package's batch {k} proof is not the bundle's")
        chain = [int(s) for s in b.manifest["state_chain"]]
        if len(chain) < k + 2:
            raise InclusionError("the state chain is shorter than the batch index")
        verify_batch(b, k, state["keys"].batch, chain, state["ctx"])
        return f"batch {k} proof verified (Groth16, pure Python)"

    def state_chain() -> str:
        b: Bundle = state["bundle"]
        chain = state["chain"] = check_state_chain(b, state["ctx"])
        n = report.details["epoch_batches"] = len(chain) - 1
        if str(chain[-1]) != str(state["pkg"]["bundle"].get("final_state")):
            raise InclusionError("the chain ends at another state than the package names")
        if not all_batches:  # the registry's record stands for the others (onchain)
            others = n - 1
            report.details["batches_verified_here"] = 1
            tail = (
                f"; the other {others} batch proof(s) are the registry's to have verified "
                "(the on-chain check), or run --all-batches"
                if others
                else ""
            )
            return f"{n} batches link the prices to the final state{tail}"
        k_user = state["account"].leaf_index >> state["account"].params.batch_levels
        rest = [k for k in range(n) if k != k_user]  # the user's was verified already
        with rep.task("verifying batch proofs", len(rest)) as advance:
            failures = batch_failures(
                b, rest, state["keys"].batch, chain, state["ctx"], advance, workers
            )
        if failures:
            raise failures[min(failures)]
        report.details["batches_verified_here"] = n
        return f"{n} batches link the prices to the final state; all {n} batch proofs verified"

    def solvency_proof() -> str:
        b: Bundle = state["bundle"]
        keys: BundleKeys = state["keys"]
        check_solvency(b, keys.solvency, state["chain"], state["ctx"], keys.domain)
        m = b.manifest
        basis = (
            "on-chain verified reserves alone"
            if m["reserves"]["verified_only"]
            else "reserves including declared (unverified) ones"
        )
        return f"solvency proof verified over {m['batches']} batches; covered by {basis}"

    def margin() -> str:
        b: Bundle = state["bundle"]
        m = b.manifest
        mg = report.margin = margin_of(state["account"], m["context"], m["params"])
        from .witness import format_value

        if mg["headroom"] < 0:
            short = (
                f"your account is {format_value(-mg['headroom'])} USD short of its margin "
                f"requirement in scenario {mg['worst_label']}"
            )
            if m["context"].get("mode") == "shortfall":
                # Shortfall mode lets accounts fall short: their shortfalls add up in the
                # batch proofs and the solvency proof covers them with the insurance fund.
                return f"{short}; this epoch counts that against its insurance fund"
            raise InclusionError(f"{short}, yet the epoch (strict mode) says every account passes")
        return (
            f"headroom {format_value(mg['headroom'])} USD in the worst scenario "
            f"({mg['worst_label']})"
        )

    run("bundle", ("package",), bundle_check)
    run("context", ("bundle",), context)
    run("batch_proof", ("path", "context"), batch_proof)
    run("state_chain", ("context",), state_chain)
    run("solvency_proof", ("state_chain", "path"), solvency_proof)
    run("margin", ("leaf", "context"), margin)


def _onchain(
    state: dict[str, Any],
    report: InclusionReport,
    rpc: str,
    registry: str | None,
    trusted: TrustAnchors | None,
) -> str:
    """The registry finalized the package's epoch with its root and context, and its verifiers
    are built from the epoch's keys (the bundle's, when one was checked)."""
    from web3 import Web3

    from .atomic import sha256_json
    from .chain import EpochStatus, connect, read_circuit_hash, read_epoch, registry_at
    from .deployment import registry_abi

    pkg, a = state["pkg"], state["account"]
    named = pkg.get("registry") or {}
    address = registry or named.get("address")
    if not address:
        raise InclusionError("the package names no registry: give --registry ADDR")
    w3 = connect(rpc)
    if not Web3.is_address(address) or not w3.eth.get_code(Web3.to_checksum_address(address)):
        raise InclusionError(f"no contract at {address} on chain {w3.eth.chain_id}")
    chain_id = int(w3.eth.chain_id)
    address = Web3.to_checksum_address(address)
    if named and (int(named.get("chain_id", -1)), str(named.get("address", "")).lower()) != (
        chain_id,
        address.lower(),
    ):
        raise InclusionError(
            f"the package names registry {named.get('address')} on chain {named.get('chain_id')}, "
            f"not {address} on chain {chain_id}"
        )
    if trusted is not None:
        if trusted.chain_id is not None and trusted.chain_id != chain_id:
            raise InclusionError(f"the node serves chain {chain_id}, not {trusted.chain_id}")
        if trusted.registry is not None and Web3.to_checksum_address(trusted.registry) != address:
            raise InclusionError(f"{address} is not the pinned registry {trusted.registry}")
    contract = registry_at(w3, address, registry_abi())
    bundle: Bundle | None = state.get("bundle")
    vkeys = (
        {k: bundle.manifest["circuits"][k]["vkey_json"] for k in ("batch", "solvency")}
        if bundle is not None
        else {}
    )
    circuits: dict[str, str | None] = {}
    for kind in ("batch", "solvency"):
        verifier = getattr(contract.functions, f"{kind}Verifier")().call()
        code = bytes(w3.eth.get_code(verifier))
        circuits[kind] = read_circuit_hash(w3, verifier)
        pinned_r1cs = trusted.r1cs_sha256.get(kind) if trusted is not None else None
        if pinned_r1cs is not None and circuits[kind] != pinned_r1cs:
            raise InclusionError(
                f"the registry's {kind} verifier was made for circuit (r1cs sha256) "
                f"{circuits[kind]}, not the pinned {pinned_r1cs}"
            )
        vkey = vkeys.get(kind)
        if vkey is not None and not code_embeds_vkey(code, vkey):
            raise InclusionError(
                f"the registry's {kind} verifier is not built from the bundle's verification key"
            )
        if trusted is not None:
            if vkey is not None and sha256_json(vkey) != getattr(trusted, f"{kind}_vkey_sha256"):
                raise InclusionError(f"the bundle's {kind} key is not the pinned one")
            pinned = getattr(trusted, f"{kind}_verifier_codehash")
            codehash = Web3.keccak(code).hex().removeprefix("0x")
            if pinned is not None and codehash != pinned.removeprefix("0x"):
                raise InclusionError(f"the registry's {kind} verifier code is not the pinned one")
    if not vkeys and trusted is None:
        report.warnings.append(
            "the registry's verifiers were compared with no key (no bundle, no trust anchors)"
        )
    rec = read_epoch(w3, contract, a_epoch := int(pkg["epoch"]))
    if rec.status is not EpochStatus.FINALIZED:
        raise InclusionError(
            f"epoch {a_epoch} is {rec.status.name.lower()} on the registry, not finalized"
        )
    if rec.root != a.root:
        raise InclusionError("the registry's root for this epoch is not the package's root")
    ref = pkg.get("bundle") or {}
    if rec.ctx_hash != int(ref.get("ctx_hash", -1)):
        raise InclusionError("the registry's context (prices) differs from the package's")
    if rec.bundle_hash.hex() != ref.get("manifest_sha256"):
        raise InclusionError("the registry records another bundle hash than the package names")
    if bundle is not None:
        from .onchain import slot_scale_problems

        scales = slot_scale_problems(contract, bundle.manifest["context"]["assets"])
        if scales:
            raise InclusionError(
                "the registry reads reserves and prices at other decimals than the epoch's "
                "balances: " + "; ".join(scales)
            )
    latest = int(contract.functions.latestFinalizedEpoch().call())
    if latest > a_epoch:
        # An exchange could keep handing out an old epoch's package that includes the user
        # while the newer ones leave them out: the newer epoch is the one to check.
        report.warnings.append(
            f"the registry has finalized a newer epoch ({latest}) than this package's "
            f"({a_epoch}): ask for your package of epoch {latest}"
        )
    report.details.update(
        {
            "chain_id": chain_id,
            "registry": address,
            "latest_finalized_epoch": latest,
            "finalized_at": rec.finalized_at,
            "batches": rec.n_batches,
            "circuits_r1cs_sha256": circuits,
        }
    )
    return (
        f"registry {address} on chain {chain_id} finalized epoch {a_epoch} "
        f"({rec.n_batches} batch proofs verified on-chain)"
    )


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

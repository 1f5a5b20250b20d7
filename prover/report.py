"""The auditor's and public report over one or more epoch directories: an HTML page with PNG
figures (reserves against liabilities, proving time, gas and, from the exchange's private data,
the distribution of collateral ratios and margin headroom).

Gathering is pure: each `gather_*` function reads an epoch directory and returns frozen
dataclasses. Rendering draws those with matplotlib's Agg canvas (no display, no pyplot state)
and writes the page through string templates, every value escaped. The output directory is
built under a temporary name beside its target and renamed into place, so a failed run leaves
nothing half-written.

Privacy: the page holds no per-account number. Account data is only ever folded into counts
of fixed bins, and bins holding fewer than `K` accounts are merged into their neighbours
(`merge_small_bins`); see docs/report.md.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import html
import io
import json
import math
import os
import re
import shutil
import string
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .atomic import read_json, write_bytes, write_text
from .bundle import check_readable, load_bundle
from .commitments import VALUE_DECIMALS
from .context import ContextError, margin_context
from .margin import headroom
from .progress import NullReporter, Reporter
from .snapshot import format_amount
from .witness import format_value

#: Smallest number of accounts a shown histogram bin may hold (0 aside).
K = 5
PUBLICATION_FORMAT = "zksolvency-publication/1"
TX_KINDS = ("open", "batch", "custody", "finalize")
_VALUE = 10**VALUE_DECIMALS  # value units per USD

#: Collateral ratio bins (equity value / debt value): (-inf, 1), [1, 1.1), ..., [1000, inf).
#: Fixed, roughly log-spaced, finer near 1 where margin matters; never derived from the data,
#: so the edges themselves tell nothing about any account.
RATIO_EDGES = tuple(
    Fraction(x) for x in ("1", "1.1", "1.25", "1.5", "2", "3", "5", "10", "100", "1000")
)
#: Headroom bins in USD, by decades on both sides of 0: (-inf, -1e9), ..., [-1, 0), [0, 1),
#: [1, 10), ..., [1e9, inf). Negative headroom only occurs in shortfall mode.
HEADROOM_EDGES = tuple(
    Fraction(x) for x in [*(-(10**e) for e in range(9, -1, -1)), 0, *(10**e for e in range(10))]
)


class ReportError(ValueError):
    """An epoch directory or its files cannot be read for a report (bad input)."""


# --- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetTotals:
    """One asset of one epoch, in its smallest units (raw integers from the manifest)."""

    symbol: str
    decimals: int
    equity: int
    debt: int
    verified: int
    declared: int

    @property
    def net(self) -> int:
        """Net liabilities, as the manifest defines them: max(0, equity - debt)."""
        return max(0, self.equity - self.debt)

    def amount(self, raw: int) -> float:
        """A raw amount in whole units, for plotting (tables use `text`, which is exact)."""
        return float(Fraction(raw, 10**self.decimals))

    def text(self, raw: int) -> str:
        return format_amount(raw, self.decimals)


@dataclass(frozen=True)
class Bin:
    label: str
    count: int  # 0 or at least K: smaller groups were merged into their neighbours


@dataclass(frozen=True)
class Histogram:
    """Counts over fixed bins after small-bin merging. `suppressed`: fewer than K accounts in
    all, so that no bin may be shown and `bins` is empty."""

    total: int
    bins: tuple[Bin, ...]

    @property
    def suppressed(self) -> bool:
        return 0 < self.total < K


@dataclass(frozen=True)
class Distribution:
    """What the private account data gives, as counts only."""

    accounts: int
    no_debt: int  # accounts whose debt is worth nothing at the epoch's prices
    ratio: Histogram  # collateral ratio of the accounts with debt
    headroom: Histogram  # worst-scenario margin headroom of every account


@dataclass(frozen=True)
class ProvingTime:
    """Seconds per proof from proofs/<name>.meta.json; None where no time was recorded (meta
    files written before the field existed, or missing)."""

    batches: tuple[float | None, ...]
    solvency: float | None

    @property
    def all(self) -> tuple[float | None, ...]:
        return (*self.batches, self.solvency)

    @property
    def recorded(self) -> int:
        return sum(1 for s in self.all if s is not None)

    @property
    def complete(self) -> bool:
        return self.recorded == len(self.all)

    @property
    def batch_total(self) -> float:
        return sum(s for s in self.batches if s is not None)

    @property
    def total(self) -> float:
        return sum(s for s in self.all if s is not None)


@dataclass(frozen=True)
class Publication:
    """publication.json: the transactions `publish` sent for this epoch."""

    chain_id: int
    registry: str
    transactions: int
    gas_by_kind: dict[str, int]  # every kind of TX_KINDS, 0 when absent
    total_gas: int


@dataclass(frozen=True)
class EpochData:
    dir: Path
    epoch: int
    created_at: str
    root: str
    bundle_sha256: str
    accounts: int
    batches: int
    verified_only: bool
    development_setup: bool
    mode: str
    shortfall: int  # value units
    insurance_fund: int  # value units
    registry: dict[str, Any] | None  # {chain_id, address} the solvency proof is bound to
    assets: tuple[AssetTotals, ...]
    proving: ProvingTime
    distribution: Distribution | None  # None: no private/accounts.jsonl (a public bundle)
    publication: Publication | None  # None: no publication.json
    notes: tuple[str, ...]  # inconsistencies worth a reader's attention, not fatal

    @property
    def gas_per_account(self) -> float | None:
        if self.publication is None or self.accounts == 0:
            return None
        return self.publication.total_gas / self.accounts


# --- gathering ------------------------------------------------------------------------------


def gather(dirs: Sequence[Path], reporter: Reporter | None = None) -> list[EpochData]:
    """Every epoch directory, in the order given."""
    if not dirs:
        raise ReportError("no epoch directory given")
    return [gather_epoch(d, reporter) for d in dirs]


def gather_epoch(directory: Path, reporter: Reporter | None = None) -> EpochData:
    rep = reporter or NullReporter()
    bundle = load_bundle(directory)  # BundleFormatError when there is no manifest
    m = bundle.manifest
    try:
        assets = _asset_totals(m)
        accounts, batches = int(m["accounts"]), int(m["batches"])
        registry = m.get("registry")
        names = [str(e["name"]) for e in m["proofs"]["batches"]]
        epoch = EpochData(
            dir=directory,
            epoch=bundle.epoch,
            created_at=str(m.get("created_at", "")),
            root=str(int(m["root"])),
            bundle_sha256=bundle.sha256,
            accounts=accounts,
            batches=batches,
            verified_only=m["reserves"]["verified_only"] is True,
            development_setup=m["development_setup"] is True,
            mode=str(m["context"]["mode"]),
            shortfall=int(m["shortfall"]),
            insurance_fund=int(m["insurance_fund"]),
            registry=None if registry is None else dict(registry),
            assets=assets,
            proving=gather_proving_time(directory, names),
            distribution=None,
            publication=None,
            notes=(),
        )
        bound = (
            None
            if registry is None
            else (int(registry["chain_id"]), str(registry["address"]).lower())
        )
    except (KeyError, TypeError, ValueError) as exc:
        where = directory / "manifest.json"
        raise ReportError(f"{where}: not a readable epoch manifest ({_why(exc)})") from None
    distribution = None
    if (directory / "private" / "accounts.jsonl").is_file():
        rep.info(f"epoch {epoch.epoch}: binning {accounts} accounts from private/accounts.jsonl")
        distribution = gather_distribution(directory, m, rep)
    publication = gather_publication(directory, epoch.epoch)
    notes = []
    if (
        publication is not None
        and bound is not None
        and bound != (publication.chain_id, publication.registry.lower())
    ):
        notes.append(
            "publication.json names another registry than the one the solvency proof is bound to"
        )
    return replace(epoch, distribution=distribution, publication=publication, notes=tuple(notes))


def _why(exc: BaseException) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)


def _asset_totals(m: dict[str, Any]) -> tuple[AssetTotals, ...]:
    """Per asset the proven raw totals and reserves. The readable copies are compared with
    them, so that the page cannot show other numbers than the proofs (verify-bundle checks the
    proofs themselves)."""
    totals = [int(t) for t in m["totals_raw"]]
    verified, declared = check_readable(m, totals, len(m["context"]["weights"]))
    return tuple(
        AssetTotals(
            str(a["symbol"]),
            int(a["decimals"]),
            totals[2 * i],
            totals[2 * i + 1],
            verified[i],
            declared[i],
        )
        for i, a in enumerate(m["context"]["assets"])
    )


def gather_proving_time(directory: Path, batch_names: Sequence[str]) -> ProvingTime:
    def seconds(name: str) -> float | None:
        path = directory / "proofs" / f"{name}.meta.json"
        try:
            value = read_json(path).get("seconds")
        except (OSError, ValueError, AttributeError):  # missing, damaged or not an object
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if math.isfinite(value) and value >= 0 else None

    return ProvingTime(tuple(seconds(n) for n in batch_names), seconds("solvency"))


def gather_publication(directory: Path, epoch: int) -> Publication | None:
    """publication.json ({"format": "zksolvency-publication/1", ...}), None when absent."""
    path = directory / "publication.json"
    if not path.is_file():
        return None
    try:
        doc = read_json(path)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: unreadable ({exc})") from None
    try:
        if not isinstance(doc, dict) or doc.get("format") != PUBLICATION_FORMAT:
            raise ValueError(f"not a {PUBLICATION_FORMAT} file")
        if _int(doc["epoch"]) != epoch:
            raise ValueError(f"it is for epoch {doc['epoch']}, the manifest for {epoch}")
        by_kind = dict.fromkeys(TX_KINDS, 0)
        txs = doc["transactions"]
        if not isinstance(txs, list):
            raise ValueError("transactions is not a list")
        for n, tx in enumerate(txs):
            kind, gas = tx["kind"], _int(tx["gas_used"])
            if kind not in by_kind or gas < 0:
                raise ValueError(f"transaction {n}: kind {kind!r}, gas_used {gas}")
            by_kind[kind] += gas
        total = _int(doc["total_gas"])
        if total != sum(by_kind.values()):
            raise ValueError(f"total_gas {total} is not the sum of its transactions' gas")
        return Publication(_int(doc["chain_id"]), str(doc["registry"]), len(txs), by_kind, total)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path}: not a valid publication record ({_why(exc)})") from None


def _int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"{x!r} is not an integer")
    return x


def gather_distribution(
    directory: Path, m: dict[str, Any], reporter: Reporter | None = None
) -> Distribution:
    """Bin every account of private/accounts.jsonl, a line at a time: no per-account value is
    kept beyond the line that gives it, only bin counts."""
    rep = reporter or NullReporter()
    path = directory / "private" / "accounts.jsonl"
    try:
        params = m["params"]
        mctx = margin_context(m["context"], params)
        n_assets, n_instr = int(params["n_assets"]), int(params["n_instruments"])
        weights = mctx.weights
        n_real = len(m["context"]["assets"])
        accounts = int(m["accounts"])
    except (ContextError, KeyError, TypeError, ValueError) as exc:
        raise ReportError(
            f"{directory / 'manifest.json'}: unusable context ({_why(exc)})"
        ) from None

    ratio_counts = [0] * (len(RATIO_EDGES) + 1)
    headroom_counts = [0] * (len(HEADROOM_EDGES) + 1)
    no_debt = seen = 0
    step = max(1, accounts // 100)
    with open(path, encoding="utf-8") as fh, rep.task("binning accounts", accounts) as advance:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            # The errors name the line and the field, never a value: the file is private.
            try:
                row = json.loads(line)
                equity = [int(v) for v in row["equity"]]
                debt = [int(v) for v in row["debt"]]
                qty = [int(v) for v in row["qty"]]
            except json.JSONDecodeError:
                raise ReportError(
                    f"{path}:{line_no}: not an account record (invalid JSON)"
                ) from None
            except KeyError as exc:
                raise ReportError(
                    f"{path}:{line_no}: not an account record ({_why(exc)})"
                ) from None
            except (TypeError, ValueError):
                raise ReportError(
                    f"{path}:{line_no}: not an account record (equity, debt and qty must be "
                    "lists of integers)"
                ) from None
            if (
                len(equity) != n_real
                or len(debt) != n_real
                or len(qty) > n_instr
                or min(equity + debt, default=0) < 0
            ):
                raise ReportError(
                    f"{path}:{line_no}: not an account record (equity or debt negative, or not "
                    "the epoch's shape)"
                )
            pad = [0] * (n_assets - n_real)
            equity, debt = [*equity, *pad], [*debt, *pad]
            qty = [*qty, *([0] * (n_instr - len(qty)))]
            value, _ = headroom(equity, debt, qty, mctx)
            headroom_counts[bisect.bisect_right(HEADROOM_EDGES, Fraction(value, _VALUE))] += 1
            debt_value = sum(d * w for d, w in zip(debt, weights, strict=True))
            if debt_value == 0:
                no_debt += 1
            else:
                equity_value = sum(e * w for e, w in zip(equity, weights, strict=True))
                ratio = Fraction(equity_value, debt_value)
                ratio_counts[bisect.bisect_right(RATIO_EDGES, ratio)] += 1
            seen += 1
            if seen > accounts:
                break
            if seen % step == 0:
                advance(step)
        if seen <= accounts and seen % step:
            advance(seen % step)
    if seen != accounts:
        held = f"more than {accounts}" if seen > accounts else str(seen)
        raise ReportError(
            f"{path} holds {held} accounts, the manifest {accounts}: private data of another run?"
        )
    return Distribution(
        accounts=seen,
        no_debt=no_debt,
        ratio=histogram(ratio_counts, RATIO_EDGES, _ratio_label),
        headroom=histogram(headroom_counts, HEADROOM_EDGES, _usd_label),
    )


# --- the privacy rule -----------------------------------------------------------------------


def merge_small_bins(counts: Sequence[int], k: int = K) -> list[tuple[int, int, int]]:
    """Group adjacent bins so that every group holds 0 or at least `k` accounts.

    Returns (first bin, last bin, count) per group, in order, covering every bin. Sweeping up,
    a group closes as soon as it holds `k`; empty bins between groups stay separate (an empty
    bin gives no account away). A remainder of fewer than `k` at the top is folded back into
    the last group that holds accounts. Only when all the bins together hold fewer than `k` is
    a group left below `k` (a single one): the caller must then show nothing.
    """
    groups: list[tuple[int, int, int]] = []
    start, held = -1, 0
    for i, c in enumerate(counts):
        if held == 0 and c == 0:
            groups.append((i, i, 0))
            continue
        if held == 0:
            start = i
        held += c
        if held >= k:
            groups.append((start, i, held))
            held = 0
    if held:
        last = len(counts) - 1
        while groups and groups[-1][2] == 0:  # the empty bins between go with it
            start = groups.pop()[0]
        if groups:
            first, _, count = groups.pop()
            start, held = first, count + held
        groups.append((start, last, held))
    return groups


def histogram(
    counts: Sequence[int], edges: Sequence[Fraction], label: Callable[[Fraction], str]
) -> Histogram:
    """Counts over the bins (-inf, e0), [e0, e1), ..., [e_last, inf), merged by the privacy rule,
    with the empty groups at either end left out."""
    total = sum(counts)
    if total < K:
        return Histogram(total, ())
    groups = merge_small_bins(counts)
    while groups and groups[0][2] == 0:
        groups.pop(0)
    while groups and groups[-1][2] == 0:
        groups.pop()
    bins = []
    for first, last, count in groups:
        lo = edges[first - 1] if first > 0 else None
        hi = edges[last] if last < len(edges) else None
        if lo is not None and hi is not None:
            text = f"{label(lo)} to {label(hi)}"
        elif hi is not None:
            text = f"< {label(hi)}"
        elif lo is not None:
            text = f"≥ {label(lo)}"
        else:
            text = "all"
        bins.append(Bin(text, count))
    return Histogram(total, tuple(bins))


def _usd_label(x: Fraction) -> str:
    v = abs(int(x))
    for div, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k"), (1, "")):
        if v >= div:
            text = f"${v // div}{suffix}"
            break
    else:
        text = "$0"
    return f"−{text}" if x < 0 else text


def _ratio_label(x: Fraction) -> str:
    return f"{float(x):g}×"


def count_text(n: int) -> str:
    """A category count as it may be shown: below K (but not 0) only as "<K"."""
    return f"<{K}" if 0 < n < K else f"{n:,}"


# --- rendering ------------------------------------------------------------------------------

_COLOURS = {
    "liabilities": "#b2182b",
    "verified": "#1a9850",
    "declared": "#a6d96a",
    "batch": "#4575b4",
    "solvency": "#91bfdb",
    "bins": "#5e3c99",
}
_GAS_COLOURS = {"open": "#fdae61", "batch": "#4575b4", "custody": "#abd9e9", "finalize": "#d73027"}


@dataclass(frozen=True)
class Rendered:
    index: Path  # out/index.html, in its final place
    figures: tuple[str, ...]  # file names of the PNGs beside it


def epoch_labels(epochs: Sequence[EpochData]) -> list[str]:
    """ "epoch N", with the directory's name added where two directories share a number."""
    numbers = [e.epoch for e in epochs]
    return [
        f"epoch {e.epoch}" + (f" ({e.dir.name})" if numbers.count(e.epoch) > 1 else "")
        for e in epochs
    ]


def render(
    epochs: Sequence[EpochData], out: Path, generated_at: dt.datetime | None = None
) -> Rendered:
    """Write index.html and its figures into `out`, replacing an earlier report there."""
    files: dict[str, bytes] = {}
    labels = epoch_labels(epochs)
    files["reserves.png"] = _png(_reserves_figure(epochs, labels))
    dist_names: list[str | None] = []
    for e, lab in zip(epochs, labels, strict=True):
        if e.distribution is None:
            dist_names.append(None)
            continue
        name = f"distribution-{_slug(lab)}.png"
        files[name] = _png(_distribution_figure(e.distribution, lab))
        dist_names.append(name)
    files["proving.png"] = _png(_proving_figure(epochs, labels))
    if any(e.publication is not None for e in epochs):
        files["gas.png"] = _png(_gas_figure(epochs, labels))
    when = generated_at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    page = _page(epochs, labels, dist_names, "gas.png" in files, when)
    with _staging(out) as tmp:
        for name, data in files.items():
            write_bytes(tmp / name, data)
        write_text(tmp / "index.html", page)
    return Rendered(out / "index.html", tuple(n for n in files if n.endswith(".png")))


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)  # attaches itself to the figure: savefig then renders with Agg
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _new_figure(width: float, height: float) -> Figure:
    # A bare Figure on an Agg canvas: no pyplot, so no global backend or figure registry.
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _reserves_figure(epochs: Sequence[EpochData], labels: Sequence[str]) -> Figure:
    """Per asset, per epoch: net liabilities beside the reserves (verified, declared on top)."""
    symbols: list[str] = []
    for e in epochs:
        symbols += [a.symbol for a in e.assets if a.symbol not in symbols]
    ncols = min(2, max(1, len(symbols)))
    nrows = max(1, math.ceil(len(symbols) / ncols))
    width = max(5.0, 0.9 * len(epochs) + 3.0)
    fig = _new_figure(width * ncols, 3.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    x = list(range(len(epochs)))
    for n, sym in enumerate(symbols):
        ax = axes[n // ncols][n % ncols]
        rows = [next((a for a in e.assets if a.symbol == sym), None) for e in epochs]
        liab = [a.amount(a.net) if a else 0.0 for a in rows]
        ver = [a.amount(a.verified) if a else 0.0 for a in rows]
        dec = [a.amount(a.declared) if a else 0.0 for a in rows]
        w = 0.38
        ax.bar(
            [i - w / 2 for i in x], liab, w, label="net liabilities", color=_COLOURS["liabilities"]
        )
        ax.bar(
            [i + w / 2 for i in x], ver, w, label="verified reserves", color=_COLOURS["verified"]
        )
        ax.bar(
            [i + w / 2 for i in x],
            dec,
            w,
            bottom=ver,
            label="declared reserves (unverified)",
            color=_COLOURS["declared"],
            hatch="//",
            edgecolor="white",
        )
        ax.set_title(sym)
        ax.set_ylabel(sym)
        ax.set_xticks(x, list(labels))
        ax.set_xlim(-0.75, len(x) - 0.25)
        ax.margins(y=0.1)
    for n in range(len(symbols), nrows * ncols):
        axes[n // ncols][n % ncols].set_visible(False)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=3, frameon=False)
    return fig


def _distribution_figure(d: Distribution, label: str) -> Figure:
    fig = _new_figure(11.0, 4.2)
    left, right = fig.subplots(1, 2)
    _histogram_axes(
        left,
        d.ratio,
        "collateral ratio (equity value / debt value)",
        f"{label}: collateral ratio, {count_text(d.ratio.total)} accounts with debt "
        f"({count_text(d.no_debt)} without)",
    )
    _histogram_axes(
        right,
        d.headroom,
        "worst-scenario margin headroom (USD)",
        f"{label}: margin headroom, {count_text(d.headroom.total)} accounts",
    )
    fig.suptitle(f"bins holding fewer than {K} accounts are merged into their neighbours")
    return fig


def _histogram_axes(ax: Axes, h: Histogram, xlabel: str, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    if not h.bins:
        why = f"fewer than {K} accounts: not shown" if h.suppressed else "no accounts"
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    x = list(range(len(h.bins)))
    bars = ax.bar(x, [b.count for b in h.bins], 0.8, color=_COLOURS["bins"])
    ax.bar_label(bars, [f"{b.count:,}" for b in h.bins])
    # "$" would start mathtext in matplotlib: escape it in tick labels.
    ax.set_xticks(x, [b.label.replace("$", r"\$") for b in h.bins], rotation=30, ha="right")
    ax.set_xlim(-0.75, len(x) - 0.25)
    ax.set_ylabel("accounts")
    ax.margins(y=0.15)


def _proving_figure(epochs: Sequence[EpochData], labels: Sequence[str]) -> Figure:
    fig = _new_figure(max(8.0, 1.4 * len(epochs) + 4.0), 3.8)
    left, right = fig.subplots(1, 2)
    x = list(range(len(epochs)))
    bars = left.bar(x, [e.batches for e in epochs], 0.6, color=_COLOURS["batch"])
    left.bar_label(bars)
    left.set_xticks(x, list(labels))
    left.set_title("batch proofs per epoch")
    left.margins(y=0.15)
    batch = [e.proving.batch_total for e in epochs]
    solv = [e.proving.solvency or 0.0 for e in epochs]
    right.bar(x, batch, 0.6, label="batch proofs", color=_COLOURS["batch"])
    right.bar(x, solv, 0.6, bottom=batch, label="solvency proof", color=_COLOURS["solvency"])
    top = max([b + s for b, s in zip(batch, solv, strict=True)] + [1.0])
    for i, e in enumerate(epochs):
        note = _proving_note(e.proving)
        if note:
            right.text(i, top * 0.05, note, ha="center", va="bottom", rotation=90, fontsize=8)
    right.set_xticks(x, list(labels))
    right.set_ylabel("seconds (sum over the proofs)")
    right.set_title("proving time per epoch")
    right.legend(loc="upper center", ncols=2, frameon=False)
    right.margins(y=0.3)
    return fig


def _proving_note(p: ProvingTime) -> str:
    if p.recorded == 0:
        return "not recorded"
    if not p.complete:
        return f"{p.recorded} of {len(p.all)} recorded"
    return ""


def _gas_figure(epochs: Sequence[EpochData], labels: Sequence[str]) -> Figure:
    fig = _new_figure(max(6.0, 1.0 * len(epochs) + 4.0), 3.8)
    ax = fig.subplots()
    x = list(range(len(epochs)))
    bottom = [0.0] * len(epochs)
    for kind in TX_KINDS:
        gas = [float(e.publication.gas_by_kind[kind]) if e.publication else 0.0 for e in epochs]
        ax.bar(x, gas, 0.6, bottom=bottom, label=kind, color=_GAS_COLOURS[kind])
        bottom = [b + g for b, g in zip(bottom, gas, strict=True)]
    top = max([*bottom, 1.0])
    for i, e in enumerate(epochs):
        if e.publication is None:
            ax.text(i, top * 0.05, "not published", ha="center", va="bottom", rotation=90)
    ax.set_xticks(x, list(labels))
    ax.set_ylabel("gas")
    ax.set_title("gas used per epoch, by transaction kind")
    ax.legend(loc="upper center", ncols=len(TX_KINDS), frameon=False)
    ax.margins(y=0.3)
    return fig


# --- the page -------------------------------------------------------------------------------

_PAGE = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; } h3 { font-size: 1.05rem; }
table { border-collapse: collapse; margin: 0.8rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.85rem; word-break: break-all; }
img { max-width: 100%; border: 1px solid #eee; }
.warn { background: #fff3cd; border: 1px solid #e0c060; padding: 0.5rem 0.8rem; margin: 0.6rem 0; }
.note { color: #555; }
</style>
</head>
<body>
<h1>$title</h1>
<p class="note">Generated $generated by <code>zksolvency report</code> from $n_epochs epoch
director$plural. This page holds no per-account data.</p>
$warnings
<h2>Epochs</h2>
$epoch_table
<h2>What these figures mean, and what they do not</h2>
$meaning
<h2>Liabilities and reserves per asset</h2>
<p>Net liabilities per asset are the proven totals, max(0, equity &minus; debt) over every
account. Verified reserves were read from the custody addresses through the registry when the
epoch was proven (the registry reads them again when it finalizes); declared reserves are the
exchange's statement, which no proof or contract checks.</p>
<img src="reserves.png"
     alt="Net liabilities against verified and declared reserves, per asset and epoch">
$asset_table
<h2>Collateral ratio and margin headroom</h2>
<p>From the exchange's private account data, as counts over fixed bins. The collateral ratio is
an account's equity value over its debt value at the epoch's prices; accounts with no debt are
counted apart. The headroom is what an account keeps above the margin rule in its worst risk
scenario, computed by the prover's mirror of the circuit. Any bin holding fewer than $k accounts
is merged into its neighbours, and a histogram of fewer than $k accounts in all is not shown, so
that no single account can be read off.</p>
$distributions
<h2>Batches and proving time</h2>
<p>Each batch proof covers a fixed number of accounts; the solvency proof closes the epoch.
Times are the wall seconds the prover spent on each proof (witness, proof and its check), as
recorded in <code>proofs/*.meta.json</code>; epochs proven before that was recorded show
&ldquo;not recorded&rdquo;. Where proofs were made in parallel (native backend, Dask cluster)
the sum exceeds the run's wall time.</p>
<img src="proving.png" alt="Batch proofs and proving time per epoch">
$proving_table
<h2>Gas</h2>
$gas
</body>
</html>
""")

_MEANING = """
<p>The proofs of an epoch show that every account in its tree has equity worth at least its
debt at the published prices and meets the published margin rule in every published risk
scenario (in shortfall mode, up to a total shortfall within the declared insurance fund), and
that each asset's net liabilities are at most its verified plus declared reserves. The figures
draw those proven numbers; they verify nothing themselves. Check the proofs with
<code>zksolvency verify-bundle</code> (and a published epoch against the registry); each user
checks their own inclusion.</p>
<p>They do not show that every customer account is in the tree (only the accounts the exchange
put in; each user's inclusion check is what catches an omission), that declared reserves exist
(only verified reserves are read from the chain, and &ldquo;verified reserves alone
cover&rdquo; says whether they suffice without the declared ones), that the reserves are not owed
to anyone outside the tree, or that the published prices and risk scenarios are adequate. The
distributions are the exchange's own computation from its private data: nothing proves them
beyond the margin rule every account was proven to meet. An epoch proven with keys from a
development setup (flagged above) proves nothing.</p>"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """An HTML table; cells are already escaped HTML."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>\n"
        for r in rows
    )
    return f"<table>\n<tr>{th}</tr>\n{body}</table>"


def _registry_text(reg: dict[str, Any] | None) -> str:
    if reg is None:
        return "none (proven before deployment)"
    return f"chain {reg.get('chain_id')}, {reg.get('address')}"


def _page(
    epochs: Sequence[EpochData],
    labels: Sequence[str],
    dist_names: Sequence[str | None],
    gas_figure: bool,
    when: dt.datetime,
) -> str:
    warnings = []
    for e, lab in zip(epochs, labels, strict=True):
        if e.development_setup:
            warnings.append(
                f"{lab}: its keys come from an INSECURE development setup; its proofs prove "
                "nothing until it is proven with ceremony keys"
            )
        warnings += [f"{lab}: {n}" for n in e.notes]
    epoch_rows = [
        [
            _e(lab),
            f"<code>{_e(e.root)}</code>",
            f"<code>{_e(e.bundle_sha256)}</code>",
            f"{e.accounts:,}",
            f"{e.batches:,}",
            "yes" if e.verified_only else "no",
            "<strong>yes (insecure)</strong>" if e.development_setup else "no",
            _e(f"{e.mode}; shortfall {format_value(e.shortfall)} USD"),
            _e(_registry_text(e.registry)),
            _e(e.created_at),
        ]
        for e, lab in zip(epochs, labels, strict=True)
    ]
    epoch_table = _table(
        [
            "epoch",
            "root",
            "bundle sha256 (of manifest.json)",
            "accounts",
            "batches",
            "verified reserves alone cover",
            "development setup",
            "margin mode",
            "bound to registry",
            "created",
        ],
        epoch_rows,
        {3, 4},
    )
    asset_rows = [
        [
            _e(lab),
            _e(a.symbol),
            _e(a.text(a.net)),
            _e(a.text(a.verified)),
            _e(a.text(a.declared)),
            "yes" if a.net <= a.verified else "no",
        ]
        for e, lab in zip(epochs, labels, strict=True)
        for a in e.assets
    ]
    asset_table = _table(
        ["epoch", "asset", "net liabilities", "verified", "declared", "verified alone cover"],
        asset_rows,
        {2, 3, 4},
    )
    dist = [
        _distribution_section(e, lab, name)
        for e, lab, name in zip(epochs, labels, dist_names, strict=True)
    ]
    proving_rows = [
        [
            _e(lab),
            f"{e.batches:,}",
            _e(_seconds_text(e.proving)),
            _e(f"{e.proving.solvency:.2f} s" if e.proving.solvency is not None else "not recorded"),
        ]
        for e, lab in zip(epochs, labels, strict=True)
    ]
    proving_table = _table(
        ["epoch", "batches", "all proofs", "solvency proof"], proving_rows, {1, 2, 3}
    )
    return _PAGE.substitute(
        title="zksolvency report: " + _e(", ".join(labels)),
        generated=_e(when.isoformat()),
        n_epochs=len(epochs),
        plural="y" if len(epochs) == 1 else "ies",
        warnings="".join(f'<p class="warn">{_e(w)}</p>\n' for w in warnings),
        epoch_table=epoch_table,
        meaning=_MEANING,
        asset_table=asset_table,
        k=K,
        distributions="\n".join(dist),
        proving_table=proving_table,
        gas=_gas_section(epochs, labels, gas_figure),
    )


def _seconds_text(p: ProvingTime) -> str:
    if p.recorded == 0:
        return "not recorded"
    text = f"{p.total:.2f} s"
    return text if p.complete else f"{text} ({p.recorded} of {len(p.all)} proofs recorded)"


def _distribution_section(e: EpochData, label: str, figure: str | None) -> str:
    if e.distribution is None or figure is None:
        return (
            f"<h3>{_e(label)}</h3>\n<p>Not shown: this epoch directory has no "
            "<code>private/accounts.jsonl</code> (a public bundle). The distributions need "
            "the exchange's private account data.</p>"
        )
    d = e.distribution

    def rows(h: Histogram) -> list[list[str]]:
        if not h.bins:
            return [["&mdash;", f"fewer than {K}: not shown" if h.suppressed else "none"]]
        return [[_e(b.label), f"{b.count:,}"] for b in h.bins]

    return (
        f"<h3>{_e(label)}</h3>\n"
        f'<img src="{_e(figure)}" alt="{_e(label)}: histograms of collateral ratio and margin '
        'headroom">\n'
        f"<p>{_e(count_text(d.accounts))} accounts; {_e(count_text(d.no_debt))} with no debt "
        "(no collateral ratio).</p>\n"
        + _table(["collateral ratio", "accounts"], rows(d.ratio), {1})
        + "\n"
        + _table(["worst-scenario headroom", "accounts"], rows(d.headroom), {1})
    )


def _gas_section(epochs: Sequence[EpochData], labels: Sequence[str], figure: bool) -> str:
    rows = []
    for e, lab in zip(epochs, labels, strict=True):
        p = e.publication
        if p is None:
            rows.append([_e(lab), "not published from this directory", "", "", "", ""])
            continue
        per = e.gas_per_account
        rows.append(
            [
                _e(lab),
                _e(f"chain {p.chain_id}, {p.registry}"),
                f"{p.transactions:,}",
                _e(", ".join(f"{k} {p.gas_by_kind[k]:,}" for k in TX_KINDS)),
                f"{p.total_gas:,}",
                "" if per is None else f"{per:,.1f}",
            ]
        )
    intro = (
        "<p>From each directory's <code>publication.json</code>, written by "
        "<code>zksolvency publish</code>: the gas of every transaction that put the epoch on "
        "chain, and that total over the epoch's accounts.</p>"
    )
    img = '<img src="gas.png" alt="Gas used per epoch by transaction kind">\n' if figure else ""
    table = _table(
        ["epoch", "registry", "transactions", "gas by kind", "total gas", "gas per account"],
        rows,
        {2, 4, 5},
    )
    return intro + "\n" + img + table


# --- output ---------------------------------------------------------------------------------


def _is_report(directory: Path) -> bool:
    """Whether `directory` holds only what a report writes (so replacing it loses nothing)."""
    return all(
        p.is_file() and not p.is_symlink() and (p.name == "index.html" or p.suffix == ".png")
        for p in directory.iterdir()
    )


def check_output_dir(out: Path) -> None:
    """Refuse an output path that is not free for a report: a file, a symlink, or a directory
    holding anything but an earlier report (which is replaced)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ReportError(f"{out} exists and is not a directory")
    if out.is_dir() and not _is_report(out):
        raise ReportError(f"{out} holds files other than a report's: choose another --out")


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A temporary directory beside `out`, renamed to `out` once the block succeeds.

    An existing `out` is replaced only if it is empty or an earlier report; on any failure the
    temporary directory is removed and `out` is left as it was.
    """
    check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        # mkdtemp makes 0700 folders; a report is meant to be shared.
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        yield tmp
        if out.is_dir():
            # rename(2) will not replace a non-empty directory: move the old report aside
            # first, and back if the new one cannot take its place.
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".tmp", dir=out.parent))
            os.replace(out, old / "report")
            try:
                os.replace(tmp, out)
            except OSError:
                os.replace(old / "report", out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

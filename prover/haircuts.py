"""Haircut table: per-asset collateral tiers for one account, and exchange-wide rate caps.

The format is described in docs/haircuts-format.md and the circuit side in docs/margin-design.md.
Parsing follows snapshot.py: amounts and rates are decimal strings turned into exact integers
(amounts at the asset's scale, rates in basis points) through string and integer operations only,
never floats, and every bad input stops with a SnapshotError naming the file, the line and the
field. The file readers are snapshot.py's own private helpers, called through the module as
instruments.py does, so that every input file accepts and rejects the same bytes and numbers.

An asset the table does not list gets `DEFAULT_HAIRCUTS`: one unbounded tier at rate 1 and one
unbounded exchange bracket at cap 1, i.e. no haircut at all.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import snapshot as _snapshot
from .snapshot import (
    ASSETS_HEADER,
    MAX_AMOUNT,
    PRICE_DECIMALS,
    Asset,
    SnapshotError,
    StrPath,
    format_amount,
    parse_amount,
)

__all__ = [
    "BPS",
    "DEFAULT_HAIRCUTS",
    "HAIRCUTS_HEADER",
    "KINDS",
    "RATE_DECIMALS",
    "AssetHaircuts",
    "HaircutTable",
    "Kind",
    "credited_value",
    "default_haircuts",
    "format_rate",
    "load_haircuts",
    "parse_rate",
    "sample_haircuts",
    "select_bracket",
    "tier_excess",
    "tier_rates",
    "tier_split",
    "tier_weights",
    "tier_widths",
    "write_haircuts_csv",
    "write_haircuts_json",
]

RATE_DECIMALS = 4  # rates are fractions with at most 4 decimals: basis points
BPS = 10**RATE_DECIMALS  # rate 1 (no haircut) in basis points
HAIRCUTS_HEADER = ("symbol", "kind", "up_to", "rate")

Kind = Literal["account", "exchange"]
KINDS: tuple[Kind, ...] = ("account", "exchange")
_KIND_BY_NAME: dict[str, Kind] = {k: k for k in KINDS}
# How one row of each kind is called in messages.
_NOUN: dict[Kind, str] = {"account": "tier", "exchange": "bracket"}

_show = _snapshot._show


# --- rates ------------------------------------------------------------------------------------


def parse_rate(text: str) -> int:
    """Parse a rate, a fraction from 0 to 1 with at most 4 decimals, into basis points.

    "0.95" -> 9500, "1" -> 10000. Raises ValueError whose message gives the reason and the
    quoted input; a percentage such as "95" is refused with a hint.
    """
    # Bounded first at the amount limit so that "95" is reported as a range problem, not bits.
    value = _snapshot._parse_scaled(text, RATE_DECIMALS, MAX_AMOUNT, "rate")
    if value > BPS:
        raise ValueError(f"rate must be at most 1; it is a fraction, 0.95 for 95% ({_show(text)})")
    return value


def format_rate(bps: int) -> str:
    """Render basis points as a canonical fraction (inverse of parse_rate): 9500 -> "0.95"."""
    _check_int(bps, 0, BPS, "a rate in basis points")
    return format_amount(bps, RATE_DECIMALS)


def _check_int(value: Any, lo: int, hi: int | None, what: str) -> None:
    """`value` is an int (not a bool) in lo..hi, hi None meaning no upper bound."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < lo
        or (hi is not None and value > hi)
    ):
        bounds = f"{lo}.." if hi is None else f"{lo}..{hi}"
        raise ValueError(f"{what} must be an int in {bounds}, got {value!r}")


# --- data model -------------------------------------------------------------------------------


def _check_ladder(ups: tuple[int | None, ...], rates: tuple[int, ...], what: str) -> None:
    """Upper bounds strictly increasing in 1..2^64-1 with the last None; rates non-increasing."""
    if not rates or len(ups) != len(rates):
        raise ValueError(f"{what}: need one upper bound per rate, and at least one of each")
    if ups[-1] is not None:
        raise ValueError(f"{what}: the last upper bound must be None (unbounded)")
    previous = 0
    for up in ups[:-1]:
        if up is None:
            raise ValueError(f"{what}: only the last upper bound may be None")
        _check_int(up, 1, MAX_AMOUNT, f"{what} upper bounds")
        if up <= previous:
            raise ValueError(f"{what}: upper bounds must be strictly increasing, got {ups!r}")
        previous = up
    for rate in rates:
        _check_int(rate, 0, BPS, f"{what} rates")
    if any(a < b for a, b in itertools.pairwise(rates)):
        raise ValueError(f"{what}: rates must not increase, got {rates!r}")


@dataclass(frozen=True)
class AssetHaircuts:
    """One asset's haircuts, in the asset's smallest units and in basis points.

    `thresholds[t]` is the upper end of account tier t and `rates_bps[t]` its rate; `bounds[j]`
    is the largest exchange-wide total equity of bracket j and `caps_bps[j]` its cap. Each pair is
    aligned and ends with None (unbounded). The defaults are DEFAULT_HAIRCUTS: no haircut.
    """

    thresholds: tuple[int | None, ...] = (None,)
    rates_bps: tuple[int, ...] = (BPS,)
    bounds: tuple[int | None, ...] = (None,)
    caps_bps: tuple[int, ...] = (BPS,)

    def __post_init__(self) -> None:
        for name in ("thresholds", "rates_bps", "bounds", "caps_bps"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_ladder(self.thresholds, self.rates_bps, "account tiers")
        _check_ladder(self.bounds, self.caps_bps, "exchange brackets")


DEFAULT_HAIRCUTS = AssetHaircuts()


@dataclass(frozen=True)
class HaircutTable:
    """Haircuts per asset symbol; `entry(symbol)` gives DEFAULT_HAIRCUTS for unlisted assets.

    Equality is structural: a table listing an asset at the defaults differs from one leaving
    it out, though both haircut it alike.
    """

    entries: dict[str, AssetHaircuts] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        entries = dict(self.entries)
        for symbol, entry in entries.items():
            problem = _snapshot._symbol_problem(symbol) if isinstance(symbol, str) else "not a str"
            if problem:
                raise ValueError(f"HaircutTable symbol: {problem}")
            if not isinstance(entry, AssetHaircuts):
                raise ValueError(f"HaircutTable[{symbol!r}] must be an AssetHaircuts")
        object.__setattr__(self, "entries", entries)

    def entry(self, asset: Asset | str) -> AssetHaircuts:
        """The asset's haircuts, or DEFAULT_HAIRCUTS if the table does not list it."""
        return self.entries.get(_symbol(asset), DEFAULT_HAIRCUTS)


def _symbol(asset: Asset | str) -> str:
    return asset.symbol if isinstance(asset, Asset) else asset


def default_haircuts(assets: Sequence[Asset]) -> HaircutTable:
    """Every asset listed explicitly at DEFAULT_HAIRCUTS (no haircut), e.g. to write a template."""
    return HaircutTable({a.symbol: DEFAULT_HAIRCUTS for a in assets})


# --- the circuit's view -----------------------------------------------------------------------


def _too_many(symbol: str, kept: int, n_tiers: int) -> ValueError:
    return ValueError(
        f"the haircut table gives {symbol} {kept} account tiers but the circuits have "
        f"N_TIERS = {n_tiers}: use circuits with at least {kept} tiers, or merge tiers"
    )


def tier_widths(table: HaircutTable, asset: Asset | str, n_tiers: int) -> list[int]:
    """The K-1 bounded tier widths Δ_t = T_{t+1} - T_t (T_0 = 0) for circuits with K = n_tiers.

    A table with fewer tiers is padded with zero-width tiers before the unbounded one, at the
    last rate (see tier_rates): they hold nothing, so the credit is unchanged and rates stay
    non-increasing. A table with more tiers than K is an error.
    """
    _check_int(n_tiers, 1, None, "n_tiers")
    entry = table.entry(asset)
    if len(entry.rates_bps) > n_tiers:
        raise _too_many(_symbol(asset), len(entry.rates_bps), n_tiers)
    widths: list[int] = []
    previous = 0
    for up in entry.thresholds[:-1]:
        assert up is not None  # AssetHaircuts guarantees it; this tells the type checker
        widths.append(up - previous)
        previous = up
    return widths + [0] * (n_tiers - 1 - len(widths))


def tier_rates(table: HaircutTable, asset: Asset | str, n_tiers: int) -> list[int]:
    """The K account rates in basis points, aligned with tier_widths (padded at the last rate)."""
    _check_int(n_tiers, 1, None, "n_tiers")
    rates = list(table.entry(asset).rates_bps)
    if len(rates) > n_tiers:
        raise _too_many(_symbol(asset), len(rates), n_tiers)
    return rates + [rates[-1]] * (n_tiers - len(rates))


def select_bracket(
    table: HaircutTable, asset: Asset | str, total_equity: int, tree_depth: int
) -> tuple[int, int]:
    """(cap in basis points, cap limit C_a) of the exchange bracket that `total_equity` is in.

    The bracket is the first whose bound is >= total_equity (the exchange's total equity in the
    asset, smallest units); C_a is that bound, or 2^(64 + tree_depth) - 1 for the unbounded one,
    the most 2^tree_depth accounts of 64-bit amounts can sum to.
    """
    _check_int(tree_depth, 0, None, "tree_depth")
    limit = 2 ** (64 + tree_depth) - 1
    _check_int(total_equity, 0, limit, "total_equity")
    entry = table.entry(asset)
    for bound, cap in zip(entry.bounds, entry.caps_bps, strict=True):
        if bound is None:
            return cap, limit
        if total_equity <= bound:
            return cap, bound
    raise AssertionError("unreachable: the last bracket is unbounded")


def tier_weights(weight: int, rates_bps: Sequence[int], cap_bps: int) -> list[int]:
    """W_t = floor(weight * min(r_t, cap) / 10^4): rounding down never overstates collateral."""
    _check_int(weight, 0, None, "weight")
    _check_int(cap_bps, 0, BPS, "cap_bps")
    for r in rates_bps:
        _check_int(r, 0, BPS, "a rate in basis points")
    return [weight * min(r, cap_bps) // BPS for r in rates_bps]


def tier_split(amount: int, widths: Sequence[int]) -> list[int]:
    """Fill the tiers in order: min(width, rest) each, the last (unbounded) tier the rest.

    The circuit computes this fill itself (margin.circom Margin, through tier_excess), so no
    prover chooses a split.
    """
    _check_int(amount, 0, None, "amount")
    split: list[int] = []
    rest = amount
    for width in widths:
        _check_int(width, 0, None, "a tier width")
        take = min(width, rest)
        split.append(take)
        rest -= take
    split.append(rest)
    return split


def tier_excess(amount: int, widths: Sequence[int]) -> list[int]:
    """excess_t = max(amount - B_t, 0) for each cumulative bound B_t = width_0 + ... + width_(t-1),
    t = 1..K-1: the signals Margin computes. split_t = excess_t - excess_(t+1) with
    excess_0 = amount and excess_K = 0, so that Σ_t split_t · W_t equals
    W_0 · amount + Σ_(t>=1) (W_t - W_(t-1)) · excess_t, the circuit's credit."""
    _check_int(amount, 0, None, "amount")
    out: list[int] = []
    bound = 0
    for width in widths:
        _check_int(width, 0, None, "a tier width")
        bound += width
        out.append(max(amount - bound, 0))
    return out


def credited_value(amount: int, widths: Sequence[int], weights: Sequence[int]) -> int:
    """Σ_t split_t · W_t with split = tier_split(amount, widths): the account's credit for it."""
    if len(weights) != len(widths) + 1:
        raise ValueError(f"need {len(widths) + 1} tier weights for {len(widths)} widths")
    return sum(s * w for s, w in zip(tier_split(amount, widths), weights, strict=True))


# --- reading ----------------------------------------------------------------------------------


class _Ladder:
    """The rows read so far for one symbol and kind."""

    def __init__(self) -> None:
        self.ups: list[int | None] = []
        self.rates: list[int] = []
        self.lines: list[int] = []

    def closed(self) -> bool:
        return bool(self.ups) and self.ups[-1] is None


class _TableBuilder:
    """Validate tier rows (CSV or JSON) into a HaircutTable, one ladder (symbol, kind) at a time.

    A ladder's rows must come together and end with the unbounded one: a CSV row of another
    ladder, the end of a JSON array or the end of the file closes the current ladder.
    """

    def __init__(self, file: str, assets: Sequence[Asset], unit: str, blank: str) -> None:
        self.file = file
        self.assets = tuple(assets)
        self.by_symbol = {a.symbol: a for a in self.assets}
        self.unit = unit  # how `line` reads in messages: "line" (CSV) or "entry" (JSON)
        self.blank = blank  # how this format writes "unbounded"
        self.symbols: dict[str, None] = {}  # in the order first named
        self.ladders: dict[tuple[str, Kind], _Ladder] = {}
        self.current: tuple[str, Kind] | None = None

    def field(self, symbol: str, kind: Kind, column: str) -> str:
        # A CSV column says it all; a JSON field is only clear with its path.
        return column if self.unit == "line" else f"{symbol}.{kind}.{column}"

    def error(self, line: int | None, field: str | None, message: str) -> SnapshotError:
        return SnapshotError(self.file, line, field, message)

    def asset(self, line: int, field: str, symbol: str) -> Asset:
        if symbol == "":
            raise self.error(line, field, "empty symbol")
        found = self.by_symbol.get(symbol)
        if found is None:
            raise self.error(line, field, _snapshot._unknown_asset(symbol, self.assets))
        self.symbols.setdefault(symbol)
        return found

    def add(self, line: int, asset: Asset, kind: Kind, up_text: str | None, rate_text: str) -> None:
        symbol, noun = asset.symbol, _NOUN[kind]
        key = (symbol, kind)
        if self.current is not None and self.current != key:
            self.end()
        ladder = self.ladders.setdefault(key, _Ladder())
        if ladder.closed():
            if self.current != key:
                # Only CSV gets here: a JSON ladder is one array, under a key given once.
                raise self.error(
                    line,
                    "symbol",
                    f"{symbol}'s {kind} {noun}s were given already (lines {ladder.lines[0]}-"
                    f"{ladder.lines[-1]}): give each symbol's {noun}s once, together",
                )
            raise self.error(
                line,
                self.field(symbol, kind, "up_to"),
                f"a {noun} after the unbounded one ({self.unit} {ladder.lines[-1]}): the "
                f"unbounded {noun} must be the last of {symbol}'s {kind} {noun}s",
            )
        self.current = key
        up = None if up_text is None else self._up_to(line, asset, kind, up_text, ladder)
        rate_field = self.field(symbol, kind, "rate")
        try:
            rate = parse_rate(rate_text)
        except ValueError as e:
            raise self.error(line, rate_field, str(e)) from None
        if ladder.rates and rate > ladder.rates[-1]:
            rule = "rates must not increase with the amount"
            if kind == "exchange":
                rule = "caps must not increase with the exchange's total"
            raise self.error(
                line,
                rate_field,
                f"rate {format_rate(rate)} is higher than the previous {noun}'s "
                f"{format_rate(ladder.rates[-1])} ({self.unit} {ladder.lines[-1]}): {rule}",
            )
        ladder.ups.append(up)
        ladder.rates.append(rate)
        ladder.lines.append(line)

    def _up_to(self, line: int, asset: Asset, kind: Kind, text: str, ladder: _Ladder) -> int:
        name, noun = self.field(asset.symbol, kind, "up_to"), _NOUN[kind]
        try:
            up = parse_amount(text, asset.decimals)
        except ValueError as e:
            raise self.error(line, name, str(e)) from None
        if up == 0:
            raise self.error(
                line, name, f"up_to must be greater than 0 (the first {noun} starts at 0)"
            )
        previous = ladder.ups[-1] if ladder.ups else None
        if previous is not None and up <= previous:
            raise self.error(
                line,
                name,
                f"up_to must be greater than the previous {noun}'s "
                f"{format_amount(previous, asset.decimals)} ({self.unit} {ladder.lines[-1]}): "
                "upper bounds strictly increase",
            )
        return up

    def end(self) -> None:
        """Close the current ladder: its last row must be the unbounded one."""
        if self.current is None:
            return
        symbol, kind = self.current
        ladder, noun = self.ladders[self.current], _NOUN[kind]
        self.current = None
        if not ladder.closed():
            together = (
                f" (give all of {symbol}'s {kind} rows together)" if self.unit == "line" else ""
            )
            raise self.error(
                ladder.lines[-1],
                self.field(symbol, kind, "up_to"),
                f"{symbol}'s {kind} {noun}s end without an unbounded {noun}: the last one "
                f"needs {self.blank}{together}",
            )

    def done(self) -> HaircutTable:
        self.end()
        entries: dict[str, AssetHaircuts] = {}
        for symbol in self.symbols:
            account = self.ladders.get((symbol, "account"))
            exchange = self.ladders.get((symbol, "exchange"))
            # A kind left out gets the default: one unbounded row at 1.
            entries[symbol] = AssetHaircuts(
                tuple(account.ups) if account else (None,),
                tuple(account.rates) if account else (BPS,),
                tuple(exchange.ups) if exchange else (None,),
                tuple(exchange.rates) if exchange else (BPS,),
            )
        return HaircutTable(entries)


def _csv_columns(file: str, line: int, header: list[str]) -> dict[str, int]:
    """Map the header's names to columns: the four of HAIRCUTS_HEADER, in any order."""
    if tuple(header) == ASSETS_HEADER:
        raise SnapshotError(file, line, None, "this is an assets file, not a haircut table")
    where: dict[str, int] = {}
    for col, name in enumerate(header):
        if name in where:
            raise SnapshotError(
                file, line, name, f"duplicate column (columns {where[name] + 1} and {col + 1})"
            )
        where[name] = col
        if name == "":
            raise SnapshotError(file, line, name, "empty column name (a trailing comma?)")
        if name != name.strip():
            raise SnapshotError(file, line, name, "column name has surrounding whitespace")
        if name not in HAIRCUTS_HEADER:
            expected = ", ".join(HAIRCUTS_HEADER)
            raise SnapshotError(file, line, name, f"unexpected column; expected {expected}")
    for name in HAIRCUTS_HEADER:
        if name not in where:
            raise SnapshotError(file, line, name, "missing column")
    return where


@contextlib.contextmanager
def _records(path: Path) -> Iterator[Iterator[tuple[int, list[str]]]]:
    """The file's non-blank CSV records as (first line, cells), read as they are used."""
    with _snapshot._open_binary(path) as fh:
        yield _snapshot._csv_records(fh, str(path))


def _load_csv(path: Path, assets: Sequence[Asset]) -> HaircutTable:
    file = str(path)
    builder = _TableBuilder(file, assets, "line", "an empty up_to")
    with _records(path) as records:
        first = next(records, None)
        if first is None:
            raise SnapshotError(file, None, None, "empty file")
        where = _csv_columns(file, *first)
        columns = [where[name] for name in HAIRCUTS_HEADER]
        for line, row in records:
            if len(row) != len(first[1]):
                raise SnapshotError(
                    file,
                    line,
                    None,
                    f"expected {len(first[1])} cells as in the header, found {len(row)}",
                )
            symbol, kind_text, up_text, rate_text = (row[col] for col in columns)
            asset = builder.asset(line, "symbol", symbol)
            kind = _KIND_BY_NAME.get(kind_text)
            if kind is None:
                hint = " (kinds are lower case)" if kind_text.lower() in _KIND_BY_NAME else ""
                raise SnapshotError(
                    file,
                    line,
                    "kind",
                    f"unknown kind {_show(kind_text)}; expected account or exchange{hint}",
                )
            # An empty up_to is the unbounded row.
            builder.add(line, asset, kind, up_text or None, rate_text)
        return builder.done()


def _json_text(j: _snapshot._Json, value: Any, line: int, name: str, what: str) -> str:
    if not isinstance(value, str):
        kind = _snapshot._json_kind(value)
        quote = "; quote it" if isinstance(value, _snapshot._JsonNumber) else ""
        raise j.error(line, name, f"{what} must be strings, not {kind}{quote}")
    return value


def _load_json(path: Path, assets: Sequence[Asset]) -> HaircutTable:
    file = str(path)
    j = _snapshot._Json(file)
    top = j.obj(_snapshot._read_json(path), None, None, "a haircut table", ("assets",))
    j.require(top, None, ("assets",))
    table = top["assets"]
    if not isinstance(table, dict):
        kind = _snapshot._json_kind(table)
        raise j.error(
            None, "assets", f"must be a JSON object mapping asset symbols to haircuts, not {kind}"
        )
    if isinstance(table, _snapshot._DupKeys):
        # json keeps a repeated key at its first position: report that entry.
        position = list(table).index(table.duplicate) + 1
        raise j.error(position, table.duplicate, "asset appears more than once")
    builder = _TableBuilder(file, assets, "entry", "up_to null")
    for i, (symbol, value) in enumerate(table.items(), 1):
        asset = builder.asset(i, symbol, symbol)
        kinds = j.obj(value, i, symbol, f"the haircuts of {symbol}", KINDS)
        for kind in KINDS:
            if kind not in kinds:
                continue  # the default for this kind
            name, noun = f"{symbol}.{kind}", _NOUN[kind]
            rows = kinds[kind]
            if not isinstance(rows, list):
                raise j.error(i, name, f"must be a JSON array, not {_snapshot._json_kind(rows)}")
            if not rows:
                raise j.error(i, name, f"no {noun}s (leave the key out for the default)")
            for t, entry in enumerate(rows, 1):
                row = j.obj(entry, t, name, f"a {noun}", HAIRCUTS_HEADER[2:])
                for key in HAIRCUTS_HEADER[2:]:
                    if key not in row:
                        raise j.error(t, f"{name}.{key}", "missing key")
                up = row["up_to"]
                if up is not None and not isinstance(up, str):
                    kind_of = _snapshot._json_kind(up)
                    quote = "; quote it" if isinstance(up, _snapshot._JsonNumber) else ""
                    raise j.error(
                        t, f"{name}.up_to", f"up_to must be a string or null, not {kind_of}{quote}"
                    )
                if up == "":
                    raise j.error(
                        t, f"{name}.up_to", f"empty up_to: write null for the unbounded {noun}"
                    )
                rate = _json_text(j, row["rate"], t, f"{name}.rate", "rates")
                builder.add(t, asset, kind, up, rate)
            builder.end()
    return builder.done()


def load_haircuts(path: StrPath, assets: Sequence[Asset]) -> HaircutTable:
    """Read a haircut table: CSV `symbol,kind,up_to,rate` (one row per tier) or JSON
    {"assets": {SYMBOL: {"account": [...], "exchange": [...]}}}. Symbols must be in `assets`,
    whose decimals scale the amounts; unlisted assets and left-out kinds get the defaults."""
    path = Path(path)
    return _load_json(path, assets) if _snapshot._is_json(path) else _load_csv(path, assets)


# --- writing ----------------------------------------------------------------------------------


def _rows(table: HaircutTable, assets: Sequence[Asset]) -> Iterator[tuple[str, Kind, str, str]]:
    """(symbol, kind, up_to, rate) as written, "" for unbounded, in the table's order."""
    decimals = {a.symbol: a.decimals for a in assets}
    for symbol, entry in table.entries.items():
        if symbol not in decimals:
            raise ValueError(f"the haircut table lists {symbol!r}, which is not among the assets")
        ladders: tuple[tuple[Kind, tuple[int | None, ...], tuple[int, ...]], ...] = (
            ("account", entry.thresholds, entry.rates_bps),
            ("exchange", entry.bounds, entry.caps_bps),
        )
        for kind, ups, rates in ladders:
            for up, rate in zip(ups, rates, strict=True):
                text = "" if up is None else format_amount(up, decimals[symbol])
                yield symbol, kind, text, format_rate(rate)


def write_haircuts_csv(table: HaircutTable, assets: Sequence[Asset], path: StrPath) -> None:
    """Write the CSV form, every tier and bracket explicit (`assets` give the decimals)."""
    rows = list(_rows(table, assets))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(HAIRCUTS_HEADER)
        w.writerows(rows)


def write_haircuts_json(table: HaircutTable, assets: Sequence[Asset], path: StrPath) -> None:
    """Write the JSON form, one asset's tiers and one its brackets per line."""
    nested: dict[str, dict[str, list[dict[str, str | None]]]] = {}
    for symbol, kind, up, rate in _rows(table, assets):
        entry = nested.setdefault(symbol, {}).setdefault(kind, [])
        entry.append({"up_to": up or None, "rate": rate})

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    # One tier per line: the file is meant to be read and edited by hand.
    blocks = []
    for symbol, kinds in nested.items():
        parts = [
            f"      {dumps(kind)}: [\n"
            + ",\n".join(f"        {dumps(r)}" for r in rows)
            + "\n      ]"
            for kind, rows in kinds.items()
        ]
        blocks.append(f"    {dumps(symbol)}: {{\n" + ",\n".join(parts) + "\n    }")
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write('{\n  "assets": {' + ("\n" + ",\n".join(blocks) + "\n  " if blocks else ""))
        fh.write("}\n}\n")


# --- sample -----------------------------------------------------------------------------------

_STABLECOINS = frozenset({"USDT", "USDC", "DAI", "BUSD", "TUSD", "FDUSD", "USDP", "PYUSD"})
# (upper bound, rate in bps) ladders; None = unbounded. Majors in whole units of the asset:
# per account, the first 10 BTC count at 95%, the next 90 at 90%, the rest at 80%; the caps cut
# in only at totals far above any exchange's holdings today, as a backstop against splitting.
_SAMPLE_UNITS: dict[str, tuple[tuple[tuple[int | None, int], ...], ...]] = {
    "BTC": (
        ((10, 9500), (100, 9000), (None, 8000)),
        ((1_000_000, BPS), (2_000_000, 9000), (None, 7500)),
    ),
    "ETH": (
        ((100, 9500), (1_000, 9000), (None, 8000)),
        ((10_000_000, BPS), (20_000_000, 9000), (None, 7500)),
    ),
    "stable": (((1_000_000, BPS), (None, 9800)), ((25_000_000_000, BPS), (None, 9500))),
}
# Other assets, in USD: thinner markets, steeper haircuts, converted at the snapshot price.
_SAMPLE_OTHER_USD = (
    ((100_000, 8500), (1_000_000, 7000), (None, 5000)),
    ((500_000_000, BPS), (2_000_000_000, 8000), (None, 6000)),
)


def _round_down(value: int) -> int:
    """Keep the leading digit only (656 -> 600), so that sample thresholds read as round numbers."""
    unit: int = 10 ** (len(str(value)) - 1)
    return value // unit * unit


def _ladder(
    steps: Sequence[tuple[int | None, int]], asset: Asset, in_usd: bool
) -> tuple[tuple[int | None, ...], tuple[int, ...]]:
    """Turn (bound, rate) steps into smallest units of `asset` (bounds in whole units, or in USD
    at the asset's price), dropping tiers that end up empty (a bound of 0 or not above the
    previous one) and clamping bounds to 2^64 - 1."""
    ups: list[int | None] = []
    rates: list[int] = []
    previous = 0
    for bound, rate in steps:
        if bound is None:
            ups.append(None)
            rates.append(rate)
            break
        if in_usd:
            up = _round_down(bound * 10 ** (PRICE_DECIMALS + asset.decimals) // asset.price_e8)
        else:
            up = bound * 10**asset.decimals
        up = min(up, MAX_AMOUNT)
        if up > previous:
            ups.append(up)
            rates.append(rate)
            previous = up
    return tuple(ups), tuple(rates)


def sample_haircuts(assets: Sequence[Asset]) -> HaircutTable:
    """A plausible table for `assets`: stablecoins at 1 up to 1,000,000 units then 0.98; BTC
    and ETH at 0.95/0.9/0.8 (BTC steps at 10 and 100, ETH at 100 and 1,000); other assets
    0.85/0.7/0.5 stepping at $100k and $1M worth at the asset's price. Exchange-wide caps
    lower the rates only for very large totals (BTC above 1,000,000, others above $500M)."""
    entries: dict[str, AssetHaircuts] = {}
    for a in assets:
        key = "stable" if a.symbol in _STABLECOINS else a.symbol
        in_usd = key not in _SAMPLE_UNITS
        ladders = _SAMPLE_OTHER_USD if in_usd else _SAMPLE_UNITS[key]
        account, exchange = (_ladder(steps, a, in_usd) for steps in ladders)
        entries[a.symbol] = AssetHaircuts(*account, *exchange)
    return HaircutTable(entries)

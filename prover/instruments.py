"""Derivatives input: instruments, market data and every account's signed positions.

The formats are described in docs/derivatives-format.md. Parsing follows snapshot.py: decimal
strings become exact integers (strikes, multipliers, spots, vols and rates at 10^8, quantities at
10^QTY_DECIMALS) through string and integer operations only, never floats, and every bad input
stops with a SnapshotError naming the file, the line and the field.

The file readers (UTF-8 lines, CSV records, float-free JSON) and the decimal parser are
snapshot.py's own private helpers, called through the module rather than copied, so that both
loaders accept and reject exactly the same bytes and number spellings.
"""

from __future__ import annotations

import contextlib
import csv
import json
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

from . import snapshot as _snapshot
from .snapshot import (
    MAX_PRICE_E8,
    PRICE_DECIMALS,
    Asset,
    Snapshot,
    SnapshotError,
    StrPath,
    account_values,
    csv_header,
    format_amount,
)

__all__ = [
    "INSTRUMENTS_HEADER",
    "KINDS",
    "MARKET_HEADER",
    "MAX_INSTRUMENT_ID",
    "MAX_QTY",
    "MAX_RATE_E8",
    "MAX_VOL_E8",
    "QTY_BITS",
    "QTY_DECIMALS",
    "SAMPLE_AS_OF",
    "Derivatives",
    "Instrument",
    "Kind",
    "MarketData",
    "MarketFile",
    "format_quantity",
    "format_utc",
    "load_derivatives",
    "load_instruments",
    "load_market",
    "load_positions",
    "parse_quantity",
    "parse_utc",
    "sample_derivatives",
    "write_derivatives",
    "write_instruments_csv",
    "write_instruments_json",
    "write_market_csv",
    "write_market_json",
    "write_positions_csv",
    "write_positions_json",
]

Kind = Literal["perpetual", "future", "call", "put"]
KINDS: tuple[Kind, ...] = ("perpetual", "future", "call", "put")
_KIND_BY_NAME: dict[str, Kind] = {k: k for k in KINDS}

# Strikes, multipliers, spots, vols and rates all use the price scale: value * 10^8.
E8 = 10**PRICE_DECIMALS
MAX_VOL_E8 = 5 * E8  # vol is a fraction; 5 = 500% a year is beyond any listed market
MAX_RATE_E8 = E8  # rate is a fraction in [-1, 1]
QTY_DECIMALS = 8
# The circuit carries a position as (sign bit, magnitude) with the magnitude range-checked to
# QTY_BITS. With |q| <= 2^63 - 1 the range is symmetric, so -q always exists, and q fits an int64.
QTY_BITS = 63
MAX_QTY = 2**QTY_BITS - 1
MAX_INSTRUMENT_ID = 32

INSTRUMENTS_HEADER = ("id", "kind", "underlying", "strike", "expiry", "multiplier")
MARKET_HEADER = ("underlying", "spot", "vol", "rate")
_REQUIRED_INSTRUMENT_KEYS = ("id", "kind", "underlying", "multiplier")
_POSITION_KEYS = ("id", "qty")

_INSTRUMENT_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}):([0-9]{2}):([0-9]{2})(Z|\+00:00))?"
)
_AS_OF_RE = re.compile(r"#\s*as_of\s*:\s*(.*?)\s*")

_show = _snapshot._show


# --- numbers and times ------------------------------------------------------------------------


def _parse_positive(text: str, what: str) -> int:
    """A decimal > 0 with at most 8 decimals, as an integer at 10^8 below 2^64."""
    value = _snapshot._parse_scaled(text, PRICE_DECIMALS, MAX_PRICE_E8, what)
    if value == 0:
        raise ValueError(f"{what} must be greater than 0 ({_show(text)})")
    return value


def _parse_signed(text: str, decimals: int, max_magnitude: int, what: str) -> int:
    """A decimal with an optional leading '-' (never '+'), as a signed integer at 10^decimals."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, not {type(text).__name__}")
    if not text.startswith("-"):
        return _snapshot._parse_scaled(text, decimals, max_magnitude, what)
    body = text[1:]
    if body == "" or body[0] in "+-":
        raise ValueError(f"a sign must be one leading '-' followed by digits ({_show(text)})")
    try:
        return -_snapshot._parse_scaled(body, decimals, max_magnitude, what)
    except ValueError as e:
        # The reason was found on the magnitude; quote the input as written, sign included.
        reason = str(e).removesuffix(f" ({_show(body)})")
        raise ValueError(f"{reason} ({_show(text)})") from None


def parse_quantity(text: str) -> int:
    """Parse a signed position size into an integer at 10^QTY_DECIMALS, |q| <= 2^63 - 1.

    Accepts `-?[0-9]+(.[0-9]+)?`; "-0" is 0; '+', exponents, whitespace and "" are rejected.
    Raises ValueError whose message gives the reason and the quoted input.
    """
    if text == "":
        raise ValueError("empty quantity (write 0 for none) ('')")
    return _parse_signed(text, QTY_DECIMALS, MAX_QTY, "quantity")


def format_quantity(value: int) -> str:
    """Render a signed quantity at 10^QTY_DECIMALS canonically (inverse of parse_quantity)."""
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_QTY:
        raise ValueError(f"quantity must be an int with |q| <= 2^{QTY_BITS}-1, got {value!r}")
    text = format_amount(abs(value), QTY_DECIMALS)
    return "-" + text if value < 0 else text


def _time_reason(text: str, what: str) -> str:
    if text == "":
        return f"empty {what}"
    if any(c.isspace() for c in text):
        return "whitespace is not allowed (use 'T' between date and time)"
    if re.fullmatch(r"[0-9-]+T[0-9:]+(\.[0-9]+)?", text):
        return "no time zone: end the time with 'Z' (times are UTC)"
    if re.fullmatch(r"[0-9-]+T[0-9:]+\.[0-9]+(Z|\+00:00)", text):
        return "fractional seconds are not allowed"
    if re.fullmatch(r"[0-9-]+T[0-9:]+[+-][0-9:]+", text):
        return "not UTC: write the time in UTC with 'Z'"
    return "not an ISO-8601 date YYYY-MM-DD or UTC time YYYY-MM-DDTHH:MM:SSZ"


def parse_utc(text: str, what: str = "time") -> datetime:
    """Parse `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ` (or `+00:00`) to an aware
    UTC datetime. Raises ValueError whose message gives the reason and the quoted input."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, not {type(text).__name__}")
    m = _TIME_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"{_time_reason(text, what)} ({_show(text)})")
    y, mo, d, h, mi, s = (int(g or 0) for g in m.groups()[:6])
    try:
        return datetime(y, mo, d, h, mi, s, tzinfo=UTC)
    except ValueError as e:  # 2026-02-30, 25:00:00 and the like
        raise ValueError(f"not a valid {what}: {e} ({_show(text)})") from None


def format_utc(value: datetime) -> str:
    """Render a UTC time as `YYYY-MM-DDTHH:MM:SSZ` (always the full form, so it reads alike)."""
    _check_time(value, "time")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_time(value: Any, what: str) -> None:
    # Whole seconds only: the file formats have no fractions, and the round trip must be exact.
    if not isinstance(value, datetime) or value.utcoffset() != timedelta(0):
        raise ValueError(f"{what} must be an aware UTC datetime, got {value!r}")
    if value.microsecond:
        raise ValueError(f"{what} must be a whole second, got {value!r}")


def _check_int(value: Any, lo: int, hi: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} must be an int in {lo}..{hi}, got {value!r}")


# --- data model -------------------------------------------------------------------------------


def _instrument_id_problem(instrument_id: str) -> str | None:
    if instrument_id == "":
        return "empty instrument id"
    if len(instrument_id) > MAX_INSTRUMENT_ID:
        return f"instrument id is longer than {MAX_INSTRUMENT_ID} characters"
    if not _INSTRUMENT_ID_RE.fullmatch(instrument_id):
        return f"bad instrument id {_show(instrument_id)}: use 1 to 32 of A-Z a-z 0-9 . _ -"
    if instrument_id.lower() == "id":
        return "instrument id 'id' is reserved (it names the account column of positions CSVs)"
    return None


@dataclass(frozen=True)
class Instrument:
    """One contract on `underlying` (an asset symbol), quoted in USD.

    strike_e8 = strike USD * 10^8 (calls and puts only); expiry is an aware UTC datetime
    (futures and options only); multiplier_e8 = units of the underlying per contract * 10^8.
    `line` (CSV line, or 1-based JSON entry) is for messages only and takes no part in equality.
    """

    id: str
    kind: Kind
    underlying: str
    strike_e8: int | None
    expiry: datetime | None
    multiplier_e8: int
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        problem = _instrument_id_problem(self.id) if isinstance(self.id, str) else "not a str"
        if problem:
            raise ValueError(f"Instrument.id: {problem}")
        if self.kind not in KINDS:
            raise ValueError(f"Instrument.kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.underlying, str) or not self.underlying:
            raise ValueError(f"Instrument.underlying must be a symbol, got {self.underlying!r}")
        if self.kind in ("call", "put"):
            _check_int(self.strike_e8, 1, MAX_PRICE_E8, "Instrument.strike_e8")
        elif self.strike_e8 is not None:
            raise ValueError(f"a {self.kind} has no strike")
        if self.kind == "perpetual":
            if self.expiry is not None:
                raise ValueError("a perpetual has no expiry")
        else:
            _check_time(self.expiry, "Instrument.expiry")
        _check_int(self.multiplier_e8, 1, MAX_PRICE_E8, "Instrument.multiplier_e8")


@dataclass(frozen=True)
class MarketData:
    """Market inputs for one underlying: spot_e8 = USD * 10^8, vol_e8 = annual volatility as a
    fraction * 10^8 (0.65 -> 65000000), rate_e8 = annual rate as a fraction * 10^8, signed."""

    underlying: str
    spot_e8: int
    vol_e8: int
    rate_e8: int
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.underlying, str) or not self.underlying:
            raise ValueError(f"MarketData.underlying must be a symbol, got {self.underlying!r}")
        _check_int(self.spot_e8, 1, MAX_PRICE_E8, "MarketData.spot_e8")
        _check_int(self.vol_e8, 1, MAX_VOL_E8, "MarketData.vol_e8")
        _check_int(self.rate_e8, -MAX_RATE_E8, MAX_RATE_E8, "MarketData.rate_e8")


def _underlyings(instruments: Sequence[Instrument]) -> dict[str, str]:
    """Underlying -> the first instrument on it, in the instruments' order."""
    used: dict[str, str] = {}
    for inst in instruments:
        used.setdefault(inst.underlying, inst.id)
    return used


@dataclass(frozen=True)
class Derivatives:
    """Instruments, market data per underlying, the valuation time and the positions.

    `market` is kept in the order in which the instruments first use each underlying, and
    `positions` maps account id -> signed quantities at 10^QTY_DECIMALS aligned with
    `instruments`, holding only accounts with a non-zero position (absent = all zero); both are
    normalised on construction, so equal data compares equal whatever order it was read in.
    """

    instruments: tuple[Instrument, ...]
    market: tuple[MarketData, ...]
    as_of: datetime
    positions: dict[str, tuple[int, ...]] = field(hash=False)

    def __post_init__(self) -> None:
        instruments = tuple(self.instruments)
        object.__setattr__(self, "instruments", instruments)
        if not instruments:
            raise ValueError("derivatives need at least one instrument")
        if len({i.id.lower() for i in instruments}) != len(instruments):
            raise ValueError("instrument ids must be unique (ignoring case)")
        _check_time(self.as_of, "Derivatives.as_of")
        for inst in instruments:
            if inst.expiry is not None and inst.expiry <= self.as_of:
                raise ValueError(f"instrument {inst.id!r} expires at or before as_of")
        market = tuple(self.market)
        by_underlying = {m.underlying: m for m in market}
        used = _underlyings(instruments)
        if len(by_underlying) != len(market) or set(by_underlying) != set(used):
            raise ValueError("market data must hold exactly one entry per underlying in use")
        object.__setattr__(self, "market", tuple(by_underlying[u] for u in used))
        positions: dict[str, tuple[int, ...]] = {}
        for account_id, qty in dict(self.positions).items():
            qty = tuple(qty)
            if len(qty) != len(instruments):
                raise ValueError(f"account {account_id!r}: {len(qty)} quantities, not one each")
            for q in qty:
                _check_int(q, -MAX_QTY, MAX_QTY, "a quantity")
            if any(qty):
                positions[account_id] = qty
        object.__setattr__(self, "positions", positions)

    def positions_of(self, account_id: str) -> tuple[int, ...]:
        """The account's quantities, all zero if it has no position."""
        return self.positions.get(account_id, (0,) * len(self.instruments))


class MarketFile(NamedTuple):
    """What load_market reads: the market data, and the file's as_of if it gives one."""

    market: tuple[MarketData, ...]
    as_of: datetime | None
    as_of_line: int | None = None  # where the file gave as_of, for messages


# --- reading: instruments ---------------------------------------------------------------------


class _InstrumentBuilder:
    """Validate instrument rows (CSV or JSON) into Instruments."""

    def __init__(self, file: str, assets: Sequence[Asset], unit: str, blank: str) -> None:
        self.file, self.assets = file, tuple(assets)
        self.unit = unit  # how `line` reads in messages: "line" or "entry"
        self.blank = blank  # how to say "give no value" in this format
        self.symbols = {a.symbol for a in self.assets}
        self.first: dict[str, tuple[str, int]] = {}  # lower-cased id -> (id, line)
        self.instruments: list[Instrument] = []

    def error(self, line: int, field: str, message: str) -> SnapshotError:
        return SnapshotError(self.file, line, field, message)

    def add(
        self,
        line: int,
        instrument_id: str,
        kind_text: str,
        underlying: str,
        strike_text: str | None,
        expiry_text: str | None,
        multiplier_text: str,
    ) -> None:
        problem = _instrument_id_problem(instrument_id)
        if problem:
            raise self.error(line, "id", problem)
        # Ids are compared ignoring case: positions name instruments by column or key, and
        # BTC-PERP next to btc-perp would be an accident waiting to happen.
        first_id, first_line = self.first.setdefault(instrument_id.lower(), (instrument_id, line))
        if first_line != line:
            if first_id == instrument_id:
                problem = f"duplicate instrument id {instrument_id!r}"
            else:
                problem = f"instrument id {instrument_id!r} differs from {first_id!r} only in case"
            raise self.error(line, "id", f"{problem} (first at {self.unit} {first_line})")
        kind = _KIND_BY_NAME.get(kind_text)
        if kind is None:
            hint = " (kinds are lower case)" if kind_text.lower() in _KIND_BY_NAME else ""
            raise self.error(
                line,
                "kind",
                f"unknown kind {_show(kind_text)}; expected perpetual, future, call or put{hint}",
            )
        if underlying == "":
            raise self.error(line, "underlying", "empty underlying")
        if underlying not in self.symbols:
            raise self.error(line, "underlying", _snapshot._unknown_asset(underlying, self.assets))
        strike: int | None = None
        if kind in ("call", "put"):
            if strike_text is None:
                raise self.error(line, "strike", f"a {kind} needs a strike")
            try:
                strike = _parse_positive(strike_text, "strike")
            except ValueError as e:
                raise self.error(line, "strike", str(e)) from None
        elif strike_text is not None:
            raise self.error(line, "strike", f"a {kind} has no strike ({self.blank})")
        expiry: datetime | None = None
        if kind != "perpetual":
            if expiry_text is None:
                raise self.error(line, "expiry", f"a {kind} needs an expiry")
            try:
                expiry = parse_utc(expiry_text, "expiry")
            except ValueError as e:
                raise self.error(line, "expiry", str(e)) from None
        elif expiry_text is not None:
            raise self.error(line, "expiry", f"a perpetual has no expiry ({self.blank})")
        try:
            multiplier = _parse_positive(multiplier_text, "multiplier")
        except ValueError as e:
            raise self.error(line, "multiplier", str(e)) from None
        self.instruments.append(
            Instrument(instrument_id, kind, underlying, strike, expiry, multiplier, line)
        )

    def done(self) -> tuple[Instrument, ...]:
        if not self.instruments:
            raise SnapshotError(self.file, None, None, "no instruments after the header")
        return tuple(self.instruments)


@contextlib.contextmanager
def _records(path: Path) -> Iterator[Iterator[tuple[int, list[str]]]]:
    """The file's non-blank CSV records as (first line, cells), read as they are used."""
    with _snapshot._open_binary(path) as fh:
        yield _snapshot._csv_records(fh, str(path))


def _check_header(file: str, line: int, header: list[str], expected: tuple[str, ...]) -> None:
    if tuple(header) != expected:
        raise SnapshotError(
            file,
            line,
            None,
            f"expected the header {','.join(expected)!r}, found {_show(','.join(header), 80)}",
        )


def _check_cells(file: str, line: int, row: list[str], n: int) -> None:
    if len(row) != n:
        raise SnapshotError(
            file, line, None, f"expected {n} cells as in the header, found {len(row)}"
        )


def _load_instruments_csv(path: Path, assets: Sequence[Asset]) -> tuple[Instrument, ...]:
    file = str(path)
    builder = _InstrumentBuilder(file, assets, "line", "leave the cell empty")
    with _records(path) as records:
        first = next(records, None)
        if first is None:
            raise SnapshotError(file, None, None, "empty file")
        _check_header(file, first[0], first[1], INSTRUMENTS_HEADER)
        for line, row in records:
            _check_cells(file, line, row, len(INSTRUMENTS_HEADER))
            iid, kind, underlying, strike, expiry, multiplier = row
            # In CSV an empty cell is "not given": strike and expiry apply to some kinds only.
            builder.add(line, iid, kind, underlying, strike or None, expiry or None, multiplier)
        return builder.done()


def _json_string(j: _snapshot._Json, value: Any, line: int | None, name: str, what: str) -> str:
    if not isinstance(value, str):
        kind = _snapshot._json_kind(value)
        quote = "; quote it" if isinstance(value, _snapshot._JsonNumber) else ""
        raise j.error(line, name, f"{what} must be strings, not {kind}{quote}")
    return value


def _json_entries(
    j: _snapshot._Json, raw: Any, name: str, what: str, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The array of a JSON file given as a bare array or as {name: [...]} (plus `extra` keys)."""
    if isinstance(raw, list):
        return {name: raw}
    keys = (*extra, name)
    top = j.obj(raw, None, None, what, keys)
    j.require(top, None, (name,))
    return top


def _load_instruments_json(path: Path, assets: Sequence[Asset]) -> tuple[Instrument, ...]:
    j = _snapshot._Json(str(path))
    top = _json_entries(j, _snapshot._read_json(path), "instruments", "an instruments file")
    builder = _InstrumentBuilder(str(path), assets, "entry", "leave the key out or null")
    for i, entry in enumerate(j.array(top["instruments"], "instruments", "instruments"), 1):
        obj = j.obj(entry, i, None, "an instrument", INSTRUMENTS_HEADER)
        j.require(obj, i, _REQUIRED_INSTRUMENT_KEYS)
        text = {k: _json_string(j, obj[k], i, k, k + "s") for k in _REQUIRED_INSTRUMENT_KEYS}
        optional: list[str | None] = []
        for k in ("strike", "expiry"):
            value = obj.get(k)
            optional.append(None if value is None else _json_string(j, value, i, k, k + "s"))
        builder.add(
            i,
            text["id"],
            text["kind"],
            text["underlying"],
            optional[0],
            optional[1],
            text["multiplier"],
        )
    return builder.done()


def load_instruments(path: StrPath, assets: Sequence[Asset]) -> tuple[Instrument, ...]:
    """Read the instruments file: CSV with header `id,kind,underlying,strike,expiry,multiplier`,
    or JSON (a list of such objects, or {"instruments": [...]}). Underlyings must be in `assets`."""
    path = Path(path)
    if _snapshot._is_json(path):
        return _load_instruments_json(path, assets)
    return _load_instruments_csv(path, assets)


# --- reading: market data ---------------------------------------------------------------------


class _MarketBuilder:
    """Validate market rows (CSV or JSON) against the underlyings the instruments use."""

    def __init__(self, file: str, instruments: Sequence[Instrument], unit: str) -> None:
        self.file, self.unit = file, unit
        self.used = _underlyings(instruments)
        self.rows: dict[str, MarketData] = {}

    def add(self, line: int, underlying: str, spot: str, vol: str, rate: str) -> None:
        if underlying in self.rows:
            first = self.rows[underlying].line
            raise SnapshotError(
                self.file,
                line,
                "underlying",
                f"duplicate underlying {underlying!r} (first at {self.unit} {first})",
            )
        if underlying not in self.used:
            # A row no instrument uses is most likely a typo; refusing it keeps the market
            # vector exactly the underlyings the circuit prices.
            used = ", ".join(self.used)
            raise SnapshotError(
                self.file,
                line,
                "underlying",
                f"no instrument has the underlying {_show(underlying)} (in use: {used})",
            )
        values: list[int] = []
        for name, text in (("spot", spot), ("vol", vol), ("rate", rate)):
            try:
                values.append(_market_value(name, text))
            except ValueError as e:
                raise SnapshotError(self.file, line, name, str(e)) from None
        self.rows[underlying] = MarketData(underlying, values[0], values[1], values[2], line)

    def done(self) -> tuple[MarketData, ...]:
        for underlying, instrument_id in self.used.items():
            if underlying not in self.rows:
                raise SnapshotError(
                    self.file,
                    None,
                    "underlying",
                    f"no market data for {underlying!r} (the underlying of {instrument_id!r})",
                )
        return tuple(self.rows[u] for u in self.used)


def _market_value(name: str, text: str) -> int:
    if name == "spot":
        return _parse_positive(text, "spot")
    if name == "vol":
        vol = _parse_positive(text, "vol")
        if vol > MAX_VOL_E8:
            raise ValueError(
                f"vol must be at most 5; it is a fraction, 0.65 for 65% ({_show(text)})"
            )
        return vol
    # Bounded first at the price limit so that the reason for a huge value reads naturally.
    rate = _parse_signed(text, PRICE_DECIMALS, MAX_PRICE_E8, "rate")
    if abs(rate) > MAX_RATE_E8:
        raise ValueError(
            f"rate must be between -1 and 1; it is a fraction, 0.05 for 5% ({_show(text)})"
        )
    return rate


def _load_market_csv(path: Path, instruments: Sequence[Instrument]) -> MarketFile:
    file = str(path)
    builder = _MarketBuilder(file, instruments, "line")
    with _records(path) as records:
        first = next(records, None)
        if first is None:
            raise SnapshotError(file, None, None, "empty file")
        as_of: datetime | None = None
        as_of_line: int | None = None
        if first[1][0].startswith("#"):
            as_of_line, cells = first
            # The csv reader split the comment at commas; put it back together to read it.
            m = _AS_OF_RE.fullmatch(",".join(cells))
            if m is None:
                raise SnapshotError(
                    file, as_of_line, "as_of", "expected '# as_of: <time>' as the only comment line"
                )
            try:
                as_of = parse_utc(m.group(1), "as_of")
            except ValueError as e:
                raise SnapshotError(file, as_of_line, "as_of", str(e)) from None
            first = next(records, None)
            if first is None:
                raise SnapshotError(file, None, None, "no header after the as_of line")
        _check_header(file, first[0], first[1], MARKET_HEADER)
        for line, row in records:
            if row[0].startswith("#"):
                raise SnapshotError(
                    file, line, None, "comment lines are not allowed, except '# as_of:' on line 1"
                )
            _check_cells(file, line, row, len(MARKET_HEADER))
            builder.add(line, *row)
        if not builder.rows:
            raise SnapshotError(file, None, None, "no market data after the header")
        return MarketFile(builder.done(), as_of, as_of_line)


def _load_market_json(path: Path, instruments: Sequence[Instrument]) -> MarketFile:
    j = _snapshot._Json(str(path))
    top = _json_entries(j, _snapshot._read_json(path), "market", "a market file", ("as_of",))
    as_of: datetime | None = None
    if "as_of" in top:
        text = _json_string(j, top["as_of"], None, "as_of", "times")
        try:
            as_of = parse_utc(text, "as_of")
        except ValueError as e:
            raise j.error(None, "as_of", str(e)) from None
    builder = _MarketBuilder(str(path), instruments, "entry")
    for i, entry in enumerate(j.array(top["market"], "market", "market data"), 1):
        obj = j.obj(entry, i, None, "a market entry", MARKET_HEADER)
        j.require(obj, i, MARKET_HEADER)
        underlying = _json_string(j, obj["underlying"], i, "underlying", "underlyings")
        values = [_json_string(j, obj[k], i, k, "market values") for k in MARKET_HEADER[1:]]
        builder.add(i, underlying, *values)
    return MarketFile(builder.done(), as_of, None)


def load_market(path: StrPath, instruments: Sequence[Instrument]) -> MarketFile:
    """Read the market file: CSV `underlying,spot,vol,rate` after an optional first line
    `# as_of: <time>`, or JSON {"as_of": "<time>", "market": [...]} (as_of optional; a bare
    list is also accepted). Exactly one row per underlying that the instruments use."""
    path = Path(path)
    if _snapshot._is_json(path):
        return _load_market_json(path, instruments)
    return _load_market_csv(path, instruments)


# --- reading: positions -----------------------------------------------------------------------


def _unknown_instrument(name: str, instruments: Sequence[Instrument], limit: int = 10) -> str:
    ids = [i.id for i in instruments]
    known = ", ".join(ids[:limit]) + (", ..." if len(ids) > limit else "")
    hint = "; ids are case-sensitive" if name.lower() in {i.lower() for i in ids} else ""
    return f"unknown instrument {name!r} (instruments: {known}{hint})"


class _PositionsBuilder:
    """Validate positions rows against the snapshot's accounts, one row per account at most."""

    def __init__(self, file: str, snapshot: Snapshot, unit: str) -> None:
        self.file, self.snapshot, self.unit = file, snapshot, unit
        self.accounts = {acc.id for acc in snapshot.accounts}
        self.first: dict[str, int] = {}
        self.found: dict[str, tuple[int, ...]] = {}

    def account(self, line: int, account_id: str) -> None:
        if account_id not in self.accounts:
            hint = ""
            if account_id.strip() in self.accounts:
                hint = " (surrounding whitespace?)"
            elif account_id == "":
                hint = " (empty account id)"
            raise SnapshotError(
                self.file,
                line,
                "id",
                f"unknown account id {_show(account_id)}: not in the snapshot{hint}",
            )
        seen = self.first.setdefault(account_id, line)
        if seen != line:
            raise SnapshotError(
                self.file,
                line,
                "id",
                f"duplicate account id {account_id!r} (first at {self.unit} {seen})",
            )

    def quantity(self, line: int, name: str, text: str) -> int:
        try:
            return parse_quantity(text)
        except ValueError as e:
            raise SnapshotError(self.file, line, name, str(e)) from None

    def done(self) -> dict[str, tuple[int, ...]]:
        # Snapshot order, and only accounts that hold something: see Derivatives.
        return {
            acc.id: self.found[acc.id]
            for acc in self.snapshot.accounts
            if any(self.found.get(acc.id, ()))
        }


def _positions_columns(
    file: str, line: int, header: list[str], instruments: Sequence[Instrument]
) -> tuple[int, list[tuple[int, int, str]]]:
    """Map the positions header to (id column, [(column, instrument index, name)])."""
    index = {inst.id: k for k, inst in enumerate(instruments)}

    def check(name: str) -> None:
        if name not in index:
            raise SnapshotError(file, line, name, _unknown_instrument(name, instruments))

    id_col, where = csv_header(file, line, header, check)
    return id_col, [(col, index[name], name) for name, col in where.items()]


def _load_positions_csv(
    path: Path, snapshot: Snapshot, instruments: Sequence[Instrument]
) -> dict[str, tuple[int, ...]]:
    file = str(path)
    builder = _PositionsBuilder(file, snapshot, "line")
    with _records(path) as records:
        first = next(records, None)
        if first is None:
            raise SnapshotError(file, None, None, "empty file")
        header_line, header = first
        id_col, columns = _positions_columns(file, header_line, header, instruments)
        for line, row in records:
            _check_cells(file, line, row, len(header))
            builder.account(line, row[id_col])
            qty = [0] * len(instruments)  # an instrument without a column: no position in it
            for col, k, name in columns:
                qty[k] = builder.quantity(line, name, row[col])
            builder.found[row[id_col]] = tuple(qty)
        return builder.done()


def _load_positions_json(
    path: Path, snapshot: Snapshot, instruments: Sequence[Instrument]
) -> dict[str, tuple[int, ...]]:
    j = _snapshot._Json(str(path))
    top = _json_entries(j, _snapshot._read_json(path), "positions", "a positions file")
    entries = top["positions"]
    if not isinstance(entries, list):  # an empty list is fine: no open positions
        raise j.error(
            None, "positions", f"must be a JSON array, not {_snapshot._json_kind(entries)}"
        )
    index = {inst.id: k for k, inst in enumerate(instruments)}
    builder = _PositionsBuilder(str(path), snapshot, "entry")
    for i, entry in enumerate(entries, 1):
        obj = j.obj(entry, i, None, "a positions entry", _POSITION_KEYS)
        j.require(obj, i, ("id",))
        account_id = _json_string(j, obj["id"], i, "id", "account ids")
        builder.account(i, account_id)
        qty = [0] * len(instruments)
        for name, text in j.obj(obj.get("qty", {}), i, "qty", "'qty'", ()).items():
            key = f"qty.{name}"
            if name not in index:
                raise j.error(i, key, _unknown_instrument(name, instruments))
            qty[index[name]] = builder.quantity(i, key, _json_string(j, text, i, key, "quantities"))
        builder.found[account_id] = tuple(qty)
    return builder.done()


def load_positions(
    path: StrPath, snapshot: Snapshot, instruments: Sequence[Instrument]
) -> dict[str, tuple[int, ...]]:
    """Read the positions file: CSV with `id` and one column per instrument id, or JSON
    {"positions": [{"id": ..., "qty": {instrument: "-1.5"}}]} (or a bare list).

    Returns account id -> signed quantities at 10^QTY_DECIMALS in instrument order, for the
    accounts holding a non-zero position, in snapshot order. An account the file leaves out, or
    an instrument without a column or key, means zero.
    """
    path = Path(path)
    if _snapshot._is_json(path):
        return _load_positions_json(path, snapshot, instruments)
    return _load_positions_csv(path, snapshot, instruments)


# --- reading: everything ----------------------------------------------------------------------


def load_derivatives(
    instruments_path: StrPath,
    market_path: StrPath,
    positions_path: StrPath,
    snapshot: Snapshot,
    as_of: datetime | None = None,
) -> Derivatives:
    """Read and cross-check the three files against `snapshot`.

    as_of comes from the market file or from the argument (parse a command-line value with
    parse_utc); when both give it they must agree. Every expiry must be after as_of.
    """
    instruments = load_instruments(instruments_path, snapshot.assets)
    market = load_market(market_path, instruments)
    if as_of is not None:
        _check_time(as_of, "as_of")
        if market.as_of is not None and market.as_of != as_of:
            raise SnapshotError(
                str(market_path),
                market.as_of_line,
                "as_of",
                f"the file says {format_utc(market.as_of)} but as_of {format_utc(as_of)} was "
                "given; give one, or make them agree",
            )
    when = as_of if as_of is not None else market.as_of
    if when is None:
        raise SnapshotError(
            str(market_path),
            None,
            "as_of",
            "no valuation time: put '# as_of: <time>' on the first line of the CSV or an "
            '"as_of" key in the JSON, or pass as_of',
        )
    for inst in instruments:
        if inst.expiry is not None and inst.expiry <= when:
            # Expired contracts are settled into balances before the snapshot is taken; one
            # still listed would be counted twice or at a stale value.
            raise SnapshotError(
                str(instruments_path),
                inst.line,
                "expiry",
                f"{inst.id!r} expired at {format_utc(inst.expiry)}, not after as_of "
                f"{format_utc(when)}; settle expired instruments before the snapshot",
            )
    positions = load_positions(positions_path, snapshot, instruments)
    return Derivatives(instruments, market.market, when, positions)


# --- writing ----------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _write_json_list(path: StrPath, head: dict[str, str], name: str, entries: list[Any]) -> None:
    """{**head, name: [...]} with one entry per line, like write_snapshot_json."""
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("{\n")
        for key, value in head.items():
            fh.write(f"  {_dumps(key)}: {_dumps(value)},\n")
        fh.write(f"  {_dumps(name)}: [")
        fh.write(",".join(f"\n    {_dumps(e)}" for e in entries))
        fh.write("\n  ]\n}\n" if entries else "]\n}\n")


def _instrument_cells(inst: Instrument) -> dict[str, str]:
    cells = {"id": inst.id, "kind": inst.kind, "underlying": inst.underlying}
    if inst.strike_e8 is not None:
        cells["strike"] = format_amount(inst.strike_e8, PRICE_DECIMALS)
    if inst.expiry is not None:
        cells["expiry"] = format_utc(inst.expiry)
    cells["multiplier"] = format_amount(inst.multiplier_e8, PRICE_DECIMALS)
    return cells


def write_instruments_json(instruments: Sequence[Instrument], path: StrPath) -> None:
    """{"instruments": [...]}, one per line; strike and expiry left out where they do not apply."""
    _write_json_list(path, {}, "instruments", [_instrument_cells(i) for i in instruments])


def write_instruments_csv(instruments: Sequence[Instrument], path: StrPath) -> None:
    """The instruments CSV; strike and expiry cells empty where they do not apply."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(INSTRUMENTS_HEADER)
        for inst in instruments:
            cells = _instrument_cells(inst)
            w.writerow([cells.get(k, "") for k in INSTRUMENTS_HEADER])


def _market_cells(m: MarketData) -> dict[str, str]:
    return {
        "underlying": m.underlying,
        "spot": format_amount(m.spot_e8, PRICE_DECIMALS),
        "vol": format_amount(m.vol_e8, PRICE_DECIMALS),
        "rate": ("-" if m.rate_e8 < 0 else "") + format_amount(abs(m.rate_e8), PRICE_DECIMALS),
    }


def write_market_json(market: Sequence[MarketData], as_of: datetime, path: StrPath) -> None:
    """{"as_of": ..., "market": [...]}, one entry per line."""
    entries = [_market_cells(m) for m in market]
    _write_json_list(path, {"as_of": format_utc(as_of)}, "market", entries)


def write_market_csv(market: Sequence[MarketData], as_of: datetime, path: StrPath) -> None:
    """The market CSV, with its `# as_of:` first line."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(f"# as_of: {format_utc(as_of)}\n")
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(MARKET_HEADER)
        for m in market:
            w.writerow(list(_market_cells(m).values()))


def write_positions_json(
    positions: Mapping[str, Sequence[int]], instruments: Sequence[Instrument], path: StrPath
) -> None:
    """{"positions": [...]}, one account per line; zero quantities left out (missing = 0)."""
    entries = [
        {
            "id": account_id,
            "qty": {i.id: format_quantity(q) for i, q in zip(instruments, qty, strict=True) if q},
        }
        for account_id, qty in positions.items()
    ]
    _write_json_list(path, {}, "positions", entries)


def write_positions_csv(
    positions: Mapping[str, Sequence[int]], instruments: Sequence[Instrument], path: StrPath
) -> None:
    """The positions CSV: a column per instrument, every cell explicit (zeros as 0)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", *(i.id for i in instruments)])
        for account_id, qty in positions.items():
            w.writerow([account_id, *(format_quantity(q) for q in qty)])


def write_derivatives(
    derivatives: Derivatives,
    instruments_path: StrPath,
    market_path: StrPath,
    positions_path: StrPath,
) -> None:
    """Write the three files, each as JSON if its name ends in .json, else as CSV."""
    d = derivatives

    def is_json(path: StrPath) -> bool:
        return Path(path).suffix.lower() == ".json"

    if is_json(instruments_path):
        write_instruments_json(d.instruments, instruments_path)
    else:
        write_instruments_csv(d.instruments, instruments_path)
    if is_json(market_path):
        write_market_json(d.market, d.as_of, market_path)
    else:
        write_market_csv(d.market, d.as_of, market_path)
    if is_json(positions_path):
        write_positions_json(d.positions, d.instruments, positions_path)
    else:
        write_positions_csv(d.positions, d.instruments, positions_path)


# --- sample -----------------------------------------------------------------------------------

SAMPLE_AS_OF = datetime(2026, 11, 21, tzinfo=UTC)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_SAMPLE_EXPIRY_DAYS = (7, 14, 28, 56, 84)  # weeklies and monthlies, all within 3 months
_SAMPLE_MONEYNESS = (80, 85, 90, 95, 100, 105, 110, 115, 120)  # strike as percent of spot
_SAMPLE_POSITION_PERCENT = 40
_SAMPLE_LOT_E8 = 10**4  # quantities are whole multiples of 0.0001 contracts where possible
_SAMPLE_FUTURE_MULTIPLIER_E8 = E8 // 10  # 0.1 of the underlying, like CME micro futures


def _sample_instrument(rng: random.Random, kind: Kind, asset: Asset, as_of: datetime) -> Instrument:
    sym = asset.symbol[:8]  # keeps every id within 32 characters
    if kind == "perpetual":
        return Instrument(f"{sym}-PERP", kind, asset.symbol, None, None, E8)
    days = rng.choice(_SAMPLE_EXPIRY_DAYS[2:] if kind == "future" else _SAMPLE_EXPIRY_DAYS)
    expiry = as_of.replace(hour=8, minute=0, second=0) + timedelta(days=days)
    label = f"{expiry.day}{_MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"
    if kind == "future":
        multiplier = _SAMPLE_FUTURE_MULTIPLIER_E8
        return Instrument(f"{sym}-{label}", kind, asset.symbol, None, expiry, multiplier)
    # Strikes on a grid of about 2.5% of spot, rounded to a power of ten (BTC 1000, ETH 10).
    step = 10 ** (len(str(max(asset.price_e8 // 40, 1))) - 1)
    target = asset.price_e8 * rng.choice(_SAMPLE_MONEYNESS) // 100
    strike = max(step, (target + step // 2) // step * step)
    letter = "C" if kind == "call" else "P"
    iid = f"{sym}-{label}-{format_amount(strike, PRICE_DECIMALS)}-{letter}"
    return Instrument(iid, kind, asset.symbol, strike, expiry, E8)


def sample_derivatives(
    snapshot: Snapshot, n_instruments: int = 8, seed: int = 0, as_of: datetime = SAMPLE_AS_OF
) -> Derivatives:
    """A deterministic, plausible set of derivatives on the snapshot's BTC and ETH.

    The first eight instruments are a perpetual, a future, a call and a put on each of BTC and
    ETH (the first two assets if those are missing); more are random futures and options. Spots
    are the snapshot prices, vols 0.50-0.80, rates 3-5%, expiries 7-84 days after as_of, strikes
    80-120% of spot. About 40% of the accounts hold 1-3 positions, each long or short with a
    notional of 10-100% of the account's net value. Integers only: random.Random(seed).
    """
    if not 1 <= n_instruments <= 200:
        raise ValueError("n_instruments must be 1..200")
    _check_time(as_of, "as_of")
    rng = random.Random(seed)
    by_symbol = {a.symbol: a for a in snapshot.assets}
    picked = [by_symbol[s] for s in ("BTC", "ETH") if s in by_symbol]
    underlyings = picked if picked else list(snapshot.assets[:2])
    # The first instruments cover each kind on each underlying; the rest are drawn at random.
    kinds: tuple[Kind, ...] = ("perpetual", "future", "call", "put")
    plan = [(kind, a) for a in underlyings for kind in kinds]
    plan.sort(key=lambda p: min(kinds.index(p[0]), 2))  # perps, futures, then options
    instruments: list[Instrument] = []
    ids: set[str] = set()
    attempts = 0
    while len(instruments) < n_instruments:
        attempts += 1
        if attempts > 100 * n_instruments:
            raise ValueError(f"cannot make {n_instruments} distinct sample instruments")
        if plan:
            kind, asset = plan.pop(0)
        else:
            kind = rng.choice(("future", "call", "call", "put", "put"))
            asset = rng.choice(underlyings)
        inst = _sample_instrument(rng, kind, asset, as_of)
        if inst.id.lower() not in ids:
            ids.add(inst.id.lower())
            instruments.append(inst)
    market = tuple(
        MarketData(
            u, by_symbol[u].price_e8, rng.randint(50, 80) * 10**6, rng.randint(30, 50) * 10**5
        )
        for u in _underlyings(instruments)
    )
    spot = {m.underlying: m.spot_e8 for m in market}
    top = max(a.decimals for a in snapshot.assets)
    positions: dict[str, tuple[int, ...]] = {}
    for acc in snapshot.accounts:
        if rng.randrange(100) >= _SAMPLE_POSITION_PERCENT:
            continue
        equity, debt = account_values(snapshot, acc)  # USD * 10^(8 + top)
        if equity <= debt:
            continue  # nothing to margin a position with
        k = rng.randint(1, min(3, len(instruments)))
        qty = [0] * len(instruments)
        for j in rng.sample(range(len(instruments)), k):
            inst = instruments[j]
            budget = (equity - debt) * rng.randint(10, 100) // (100 * k)
            # contracts * 10^8 = budget / (multiplier * spot), with the units' scales worked in.
            raw = budget * 10**16 // (10**top * inst.multiplier_e8 * spot[inst.underlying])
            q = raw // _SAMPLE_LOT_E8 * _SAMPLE_LOT_E8 or raw or 1
            qty[j] = min(q, MAX_QTY) * rng.choice((1, -1))
        positions[acc.id] = tuple(qty)
    return Derivatives(tuple(instruments), market, as_of, positions)

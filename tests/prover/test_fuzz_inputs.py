"""Fuzzing the input parsers: every malformed input stops with a SnapshotError that points at it.

Each class in CLASSES is a hypothesis strategy. It generates a valid set of input files — a
snapshot (one JSON file, or an accounts CSV plus an assets CSV or JSON), reserves, instruments,
market data, positions and a haircut table, each CSV or JSON at random, CSV files with a BOM,
CRLF line ends and blank lines here and there (all tolerated) — breaks it in exactly one way, and
says where the error must point: the file, the line (CSV: the physical line; JSON: the entry, or
the text line of a syntax error), the field and fragments of the message. test_malformed_input
loads the files in the order `zksolvency prove` does and checks exactly that, and that nothing
but a SnapshotError escapes (no KeyError, IndexError, UnicodeDecodeError, RecursionError, ...).
tests/cli/test_cli_fuzz.py runs one example of each class through the CLI.

Three properties go with the catalogue: the spellings the formats tolerate (BOM, CRLF, blank
lines, leading and extra fractional zeros, '-0', '+00:00') read exactly as the plain files do;
account ids are compared as exact strings (case and Unicode-normalisation variants are other
accounts, as docs/snapshot-format.md says); and random byte corruption of any file never lets
anything but a located SnapshotError out.

The default run draws a few examples per class; `pytest -m slow` (make fuzz) draws many more.
"""

from __future__ import annotations

import codecs
import copy
import json
import string
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zksolvency.prover.commitments import RESERVE_BITS
from zksolvency.prover.haircuts import BPS, HAIRCUTS_HEADER, format_rate, load_haircuts
from zksolvency.prover.instruments import (
    INSTRUMENTS_HEADER,
    MARKET_HEADER,
    MAX_QTY,
    MAX_RATE_E8,
    MAX_VOL_E8,
    QTY_BITS,
    format_quantity,
    format_utc,
    load_derivatives,
)
from zksolvency.prover.reserves import load_reserves
from zksolvency.prover.snapshot import (
    MAX_AMOUNT,
    MAX_ID_BYTES,
    MAX_PRICE_E8,
    SnapshotError,
    format_amount,
    load_snapshot,
)

# --- the world: a valid set of inputs --------------------------------------------------------

SYMBOL_CHARS = string.ascii_uppercase + string.digits + "._-"
INSTRUMENT_CHARS = string.ascii_letters + string.digits + "._-"
KINDS = ("perpetual", "future", "call", "put")
NOUN = {"account": "tier", "exchange": "bracket"}
DECIMALS_MSG = "decimals must be an integer from 0 to 18"


def valid_account_id(text: str) -> bool:
    return text == text.strip() and text.isprintable() and 0 < len(text.encode()) <= MAX_ID_BYTES


ACCOUNT_IDS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_.-]{0,11}", fullmatch=True),
    st.text(min_size=1, max_size=10).filter(valid_account_id),
)
INSTRUMENT_IDS = st.text(INSTRUMENT_CHARS, min_size=1, max_size=32).filter(
    lambda s: s.lower() != "id"
)


@dataclass
class Inst:
    id: str
    kind: str
    underlying: str
    strike: int | None
    expiry: datetime | None
    multiplier: int


@dataclass
class World:
    """Everything the files say, as numbers; rendering turns it into text."""

    assets: list[tuple[str, int, int]]  # symbol, decimals, price_e8
    accounts: list[tuple[str, list[int], list[int]]]  # id, equity, debt (asset order)
    reserves: list[int]
    as_of: datetime
    instruments: list[Inst]
    market: list[tuple[str, int, int, int]]  # underlying, spot_e8, vol_e8, rate_e8
    positions: list[tuple[str, list[int]]]  # account id, quantity per instrument
    haircuts: dict[tuple[str, str], list[tuple[int | None, int]]]  # (symbol, kind) -> rows
    forms: dict[str, str]  # file -> "csv" or "json"

    def decimals(self, symbol: str) -> int:
        return next(d for s, d, _ in self.assets if s == symbol)


@st.composite
def ladders(draw: st.DrawFn, min_rows: int = 1) -> list[tuple[int | None, int]]:
    """Rows (up_to, rate in bps): bounds strictly increasing, rates non-increasing, last None."""
    n = draw(st.integers(min_rows, 4))
    ups = sorted(draw(st.sets(st.integers(1, MAX_AMOUNT), min_size=n - 1, max_size=n - 1)))
    rates = sorted(draw(st.lists(st.integers(0, BPS), min_size=n, max_size=n)), reverse=True)
    return [*zip(ups, rates[:-1], strict=True), (None, rates[-1])]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    symbols = draw(
        st.lists(
            st.text(SYMBOL_CHARS, min_size=1, max_size=16), min_size=1, max_size=3, unique=True
        )
    )
    assets = [(s, draw(st.integers(0, 18)), draw(st.integers(1, MAX_PRICE_E8))) for s in symbols]
    ids = draw(st.lists(ACCOUNT_IDS, min_size=1, max_size=4, unique=True))
    amount = st.one_of(st.just(0), st.integers(0, MAX_AMOUNT))
    accounts = [(i, [draw(amount) for _ in assets], [draw(amount) for _ in assets]) for i in ids]
    reserves = [draw(st.integers(0, 2**RESERVE_BITS - 1)) for _ in assets]
    as_of = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(
        seconds=draw(st.integers(0, 60 * 365 * 86400))
    )
    inst_ids = draw(st.lists(INSTRUMENT_IDS, min_size=1, max_size=3, unique_by=str.lower))
    instruments = []
    for k, iid in enumerate(inst_ids):
        # The first is always an option, so that every class finds a strike and an expiry.
        kind = draw(st.sampled_from(KINDS[2:] if k == 0 else KINDS))
        strike = draw(st.integers(1, MAX_PRICE_E8)) if kind in ("call", "put") else None
        expiry = None
        if kind != "perpetual":
            expiry = as_of + timedelta(seconds=draw(st.integers(1, 10**9)))
        underlying = draw(st.sampled_from(symbols))
        instruments.append(
            Inst(iid, kind, underlying, strike, expiry, draw(st.integers(1, MAX_PRICE_E8)))
        )
    used = list(dict.fromkeys(i.underlying for i in instruments))
    market = [
        (
            u,
            draw(st.integers(1, MAX_PRICE_E8)),
            draw(st.integers(1, MAX_VOL_E8)),
            draw(st.integers(-MAX_RATE_E8, MAX_RATE_E8)),
        )
        for u in draw(st.permutations(used))
    ]
    qty = st.one_of(st.just(0), st.integers(-MAX_QTY, MAX_QTY))
    holders = draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
    positions = [(i, [draw(qty) for _ in instruments]) for i in holders]
    haircuts: dict[tuple[str, str], list[tuple[int | None, int]]] = {}
    listed = draw(st.lists(st.sampled_from(symbols), min_size=1, unique=True))
    for n, symbol in enumerate(listed):
        kinds = draw(st.sampled_from([("account",), ("exchange",), ("account", "exchange")]))
        for kind in ("account", *kinds) if n == 0 else kinds:
            if (symbol, kind) not in haircuts:
                # The first listed symbol has a two-row account ladder at least.
                haircuts[symbol, kind] = draw(ladders(2 if n == 0 and kind == "account" else 1))
    names = ("snapshot", "assets", "reserves", "instruments", "market", "positions", "haircuts")
    forms = {name: draw(st.sampled_from(("csv", "json"))) for name in names}
    return World(assets, accounts, reserves, as_of, instruments, market, positions, haircuts, forms)


# --- rendering: CSV ---------------------------------------------------------------------------

MARK = "\U000f0000"  # a private-use character standing for bytes spliced in after rendering
MARK_BYTES = MARK.encode()


def csv_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_row(cells: list[str]) -> str:
    if cells == [""]:
        return '""'  # a lone empty cell would be a blank line, which readers skip
    return ",".join(csv_cell(c) for c in cells)


class CsvDoc:
    """A CSV file as rows of cells, plus tolerated decoration and byte-level breakage."""

    def __init__(self, rows: list[list[str]], prefix: tuple[str, ...] = ()) -> None:
        self.rows = [list(r) for r in rows]
        self.prefix = list(prefix)  # raw lines before the header (market: '# as_of: ...')
        self.bom = False
        self.blanks: dict[int, int] = {}  # row -> blank lines before it
        self.crlf: set[int] = set()  # rows (and their blank lines) ending in CRLF
        self.term: dict[int, str] = {}  # row -> another line end
        self.raw: dict[int, bytes] = {}  # row -> bytes written instead of the row and its end

    def line(self, r: int) -> int:
        """The physical line of row r (the header is row 0)."""
        return len(self.prefix) + r + 1 + sum(n for k, n in self.blanks.items() if k <= r)

    def render(self) -> bytes:
        out = [codecs.BOM_UTF8 if self.bom else b""]
        out += [(p + "\n").encode() for p in self.prefix]
        for r, row in enumerate(self.rows):
            end = "\r\n" if r in self.crlf else "\n"
            out += [end.encode()] * self.blanks.get(r, 0)
            if r in self.raw:
                out.append(self.raw[r])
            else:
                out.append((csv_row(row) + self.term.get(r, end)).encode())
        return b"".join(out)


# --- rendering: JSON --------------------------------------------------------------------------


class Raw:
    """JSON text written as it is: numbers, and anything a class wants verbatim."""

    def __init__(self, text: str) -> None:
        self.text = text


class Pairs:
    """A JSON object as (key, value) pairs, so that a key can repeat."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def jstr(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def items(value: Any) -> list[tuple[str, Any]]:
    return value.pairs if isinstance(value, Pairs) else list(value.items())


def inline(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict | Pairs):
        return "{" + ", ".join(f"{jstr(k)}: {inline(v)}" for k, v in items(value)) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


Path_ = tuple[Any, ...]


def render_json(value: Any, depth: int) -> tuple[str, dict[Path_, int]]:
    """Containers above `depth` one child per line, the rest inline; and each path's line."""
    lines: list[str] = []
    where: dict[Path_, int] = {}

    def emit(v: Any, path: Path_, level: int, head: str, tail: str) -> None:
        where.setdefault(path, len(lines) + 1)
        pad = "  " * level
        if level < depth and isinstance(v, list) and v:
            lines.append(pad + head + "[")
            for k, x in enumerate(v):
                emit(x, (*path, k), level + 1, "", "," if k < len(v) - 1 else "")
            lines.append(pad + "]" + tail)
        elif level < depth and isinstance(v, dict | Pairs) and items(v):
            lines.append(pad + head + "{")
            kv = items(v)
            for k, (key, x) in enumerate(kv):
                emit(x, (*path, key), level + 1, jstr(key) + ": ", "," if k < len(kv) - 1 else "")
            lines.append(pad + "}" + tail)
        else:
            lines.append(pad + head + inline(v) + tail)

    emit(value, (), 0, "", "")
    return "\n".join(lines) + "\n", where


class JsonDoc:
    def __init__(self, value: Any, depth: int) -> None:
        self.value = value
        self.depth = depth
        self.where = render_json(value, depth)[1]  # lines of the valid layout
        self.bom = False
        self.crlf = False
        self.cut: int | None = None  # keep only this many characters
        self.tail = ""  # text after the document

    def phys(self, path: Path_) -> int:
        while path not in self.where:
            path = path[:-1]
        return self.where[path]

    def text(self) -> str:
        text = render_json(self.value, self.depth)[0]
        return (text if self.cut is None else text[: self.cut]) + self.tail

    def render(self) -> bytes:
        text = self.text()
        if self.crlf:
            text = text.replace("\n", "\r\n")
        return (codecs.BOM_UTF8 if self.bom else b"") + text.encode()

    def get(self, path: Path_) -> Any:
        value = self.value
        for key in path:
            value = value[key]
        return value

    def set(self, path: Path_, new: Any) -> None:
        if not path:
            self.value = new
        else:
            self.get(path[:-1])[path[-1]] = new


class RawDoc:
    """A file given as bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.bom = False

    def render(self) -> bytes:
        return self.data


Doc = CsvDoc | JsonDoc | RawDoc


# --- targets: the values a class can break ----------------------------------------------------

# role -> (name in messages, decimals (None: the asset's), bits, signed)
NUMBERS: dict[str, tuple[str, int | None, int, bool]] = {
    "amount": ("amount", None, 64, False),
    "reserve": ("amount", None, RESERVE_BITS, False),
    "up_to": ("amount", None, 64, False),
    "price": ("price", 8, 64, False),
    "strike": ("strike", 8, 64, False),
    "multiplier": ("multiplier", 8, 64, False),
    "spot": ("spot", 8, 64, False),
    "vol": ("vol", 8, 64, False),
    "mrate": ("rate", 8, 64, True),
    "qty": ("quantity", 8, QTY_BITS, True),
    "hrate": ("rate", 4, 64, False),
}
POSITIVE = ("price", "strike", "multiplier", "spot", "vol", "up_to")
UNSIGNED = tuple(r for r, spec in NUMBERS.items() if not spec[3])
# In CSV an empty cell means "not given" for these; breaking them is another class's business.
EMPTY_MEANS_ABSENT = ("strike", "expiry", "up_to")


@dataclass
class Target:
    """One value in one file, and where an error about it points."""

    file: str
    line: int | None
    field: str | None
    role: str
    text: str
    put: Callable[[Any], None]
    doc: Doc
    path: Path_ = ()  # JSON
    decimals: int = 0

    @property
    def json(self) -> bool:
        return isinstance(self.doc, JsonDoc)

    @property
    def what(self) -> str:
        return NUMBERS[self.role][0]

    @property
    def bits(self) -> int:
        return NUMBERS[self.role][2]

    @property
    def signed(self) -> bool:
        return NUMBERS[self.role][3]


@dataclass
class Spot:
    """A JSON object or array, for wrong types and repeated keys."""

    file: str
    doc: JsonDoc
    path: Path_
    shape: str  # "object", "array" or "object_or_list" (a top level that may be a bare list)
    line: int | None
    field: str | None
    wrong: str  # the message for a wrong type, with {k} for the kind found
    dup: Callable[[str, int], tuple[int | None, str, str]] | None = None  # key, index -> expect


@dataclass(frozen=True)
class Names:
    snapshot: str
    assets: str | None
    reserves: str
    instruments: str
    market: str
    positions: str
    haircuts: str

    def files(self) -> list[str]:
        names = [self.snapshot, self.assets, self.reserves, self.instruments]
        return [n for n in [*names, self.market, self.positions, self.haircuts] if n]


def names_of(w: World) -> Names:
    f = w.forms
    csv_snapshot = f["snapshot"] == "csv"
    return Names(
        "accounts.csv" if csv_snapshot else "snapshot.json",
        f"assets.{f['assets']}" if csv_snapshot else None,
        f"reserves.{f['reserves']}",
        f"instruments.{f['instruments']}",
        f"market.{f['market']}",
        f"positions.{f['positions']}",
        f"haircuts.{f['haircuts']}",
    )


@dataclass
class Expect:
    file: str
    line: int | None
    field: str | None
    fragments: tuple[str, ...]


@dataclass
class Case:
    label: str
    names: Names
    files: dict[str, bytes]
    expect: Expect


def e8(value: int) -> str:
    return format_amount(value, 8)


def signed_e8(value: int) -> str:
    return ("-" if value < 0 else "") + e8(abs(value))


class Build:
    """The world's files as documents, with every breakable value and container listed."""

    def __init__(self, w: World, draw: st.DrawFn, plain: bool = False) -> None:
        self.w, self.draw, self.plain = w, draw, plain
        self.names = names_of(w)
        self.docs: dict[str, Doc] = {}
        self.targets: list[Target] = []
        self.spots: list[Spot] = []
        self.splice: dict[str, bytes] = {}  # file -> bytes replacing MARK
        self._snapshot()
        self._reserves()
        self._instruments()
        self._market()
        self._positions()
        self._haircuts()

    # -- documents

    def _csv(self, name: str, rows: list[list[str]], prefix: tuple[str, ...] = ()) -> CsvDoc:
        doc = CsvDoc(rows, prefix)
        self.docs[name] = doc
        if self.plain:
            return doc
        draw = self.draw
        doc.bom = draw(st.booleans())
        doc.blanks = draw(
            st.dictionaries(st.integers(0, len(rows) - 1), st.integers(1, 2), max_size=2)
        )
        doc.crlf = draw(st.sets(st.integers(0, len(rows) - 1), max_size=3))
        return doc

    def _json(self, name: str, value: Any, depth: int) -> JsonDoc:
        doc = JsonDoc(value, depth)
        self.docs[name] = doc
        if self.plain:
            return doc
        doc.bom = self.draw(st.booleans())
        doc.crlf = self.draw(st.booleans())
        return doc

    def _cell(
        self, name: str, doc: CsvDoc, r: int, c: int, role: str, fld: str, d: int = 0
    ) -> None:
        row = doc.rows[r]

        def put(v: Any) -> None:
            row[c] = v

        self.targets.append(Target(name, doc.line(r), fld, role, row[c], put, doc, decimals=d))

    def _key(
        self,
        name: str,
        doc: JsonDoc,
        path: Path_,
        line: int | None,
        fld: str,
        role: str,
        d: int = 0,
    ) -> None:
        container, key = doc.get(path[:-1]), path[-1]
        raw = isinstance(container[key], Raw)  # a JSON number (decimals): text stays a token

        def put(v: Any) -> None:
            container[key] = Raw(v) if raw and isinstance(v, str) else v

        text = container[key].text if raw else container[key]
        self.targets.append(Target(name, line, fld, role, text, put, doc, path=path, decimals=d))

    def _spot(
        self,
        name: str,
        doc: JsonDoc,
        path: Path_,
        shape: str,
        line: int | None,
        fld: str | None,
        wrong: str,
        dup: Callable[[str, int], tuple[int | None, str, str]] | None = None,
    ) -> None:
        self.spots.append(Spot(name, doc, path, shape, line, fld, wrong, dup))

    def _top_spots(self, name: str, doc: JsonDoc, what: str, key: str, list_ok: bool) -> None:
        def dup(k: str, _: int) -> tuple[int | None, str, str]:
            return None, k, "key appears more than once"

        shape = "object_or_list" if list_ok else "object"
        self._spot(name, doc, (), shape, None, None, what + " must be a JSON object, not {k}", dup)
        self._spot(name, doc, (key,), "array", None, key, "must be a JSON array, not {k}")

    def _entry_spot(self, name: str, doc: JsonDoc, path: Path_, what: str) -> None:
        line = path[-1] + 1

        def dup(k: str, _: int) -> tuple[int | None, str, str]:
            return line, k, "key appears more than once"

        self._spot(
            name, doc, path, "object", line, None, what + " must be a JSON object, not {k}", dup
        )

    def _asset_obj(self, symbol: str, decimals: int, price: int) -> dict[str, Any]:
        return {"symbol": symbol, "decimals": Raw(str(decimals)), "price_usd": e8(price)}

    def _asset_entries(self, name: str, doc: JsonDoc, key: str) -> None:
        for i, (_, _, _) in enumerate(self.w.assets):
            path = (key, i)
            self._entry_spot(name, doc, path, "an asset")
            self._key(name, doc, (*path, "symbol"), i + 1, "symbol", "symbol")
            self._key(name, doc, (*path, "decimals"), i + 1, "decimals", "jdecimals")
            self._key(name, doc, (*path, "price_usd"), i + 1, "price_usd", "price")

    def _snapshot(self) -> None:
        w, n = self.w, self.names
        symbols = [s for s, _, _ in w.assets]
        if n.assets is None:
            value = {
                "assets": [self._asset_obj(*a) for a in w.assets],
                "accounts": [
                    {
                        "id": i,
                        "equity": {
                            s: format_amount(v, d)
                            for (s, d, _), v in zip(w.assets, eq, strict=True)
                        },
                        "debt": {
                            s: format_amount(v, d)
                            for (s, d, _), v in zip(w.assets, debt, strict=True)
                        },
                    }
                    for i, eq, debt in w.accounts
                ],
            }
            doc = self._json(n.snapshot, value, 2)
            self._top_spots(n.snapshot, doc, "a JSON snapshot", "accounts", False)
            self._spot(
                n.snapshot,
                doc,
                ("assets",),
                "array",
                None,
                "assets",
                "must be a JSON array, not {k}",
            )
            self._asset_entries(n.snapshot, doc, "assets")
            for i, _ in enumerate(w.accounts):
                self._entry_spot(n.snapshot, doc, ("accounts", i), "an account")
                self._key(n.snapshot, doc, ("accounts", i, "id"), i + 1, "id", "id")
                for part in ("equity", "debt"):
                    line = i + 1

                    def dup(
                        k: str, _: int, part: str = part, line: int = line
                    ) -> tuple[int | None, str, str]:
                        return line, f"{part}.{k}", "key appears more than once"

                    self._spot(
                        n.snapshot,
                        doc,
                        ("accounts", i, part),
                        "object",
                        line,
                        part,
                        f"'{part}' must be a JSON object, not {{k}}",
                        dup,
                    )
                    for s, d, _ in w.assets:
                        path = ("accounts", i, part, s)
                        self._key(n.snapshot, doc, path, line, f"{part}.{s}", "amount", d)
            return
        # Assets file.
        assert n.assets is not None
        if n.assets.endswith(".json"):
            doc = self._json(n.assets, {"assets": [self._asset_obj(*a) for a in w.assets]}, 2)
            self._top_spots(n.assets, doc, "an assets file", "assets", True)
            self._asset_entries(n.assets, doc, "assets")
        else:
            rows = [["symbol", "decimals", "price_usd"]]
            rows += [[s, str(d), e8(p)] for s, d, p in w.assets]
            cdoc = self._csv(n.assets, rows)
            for r in range(1, len(rows)):
                self._cell(n.assets, cdoc, r, 0, "symbol", "symbol")
                self._cell(n.assets, cdoc, r, 1, "decimals", "decimals")
                self._cell(n.assets, cdoc, r, 2, "price", "price_usd")
        # Accounts CSV.
        header = ["id"] + [f"{s}_{kind}" for s in symbols for kind in ("equity", "debt")]
        rows = [header]
        for i, eq, debt in w.accounts:
            cells = [i]
            for (_, d, _), e, b in zip(w.assets, eq, debt, strict=True):
                cells += [format_amount(e, d), format_amount(b, d)]
            rows.append(cells)
        cdoc = self._csv(n.snapshot, rows)
        for r in range(1, len(rows)):
            self._cell(n.snapshot, cdoc, r, 0, "id", "id")
            for c in range(1, len(header)):
                s, _, _ = w.assets[(c - 1) // 2]
                self._cell(n.snapshot, cdoc, r, c, "amount", header[c], w.decimals(s))

    def _reserves(self) -> None:
        w, name = self.w, self.names.reserves
        if name.endswith(".json"):
            value = {
                s: format_amount(v, d) for (s, d, _), v in zip(w.assets, w.reserves, strict=True)
            }
            doc = self._json(name, value, 1)

            def dup(k: str, index: int) -> tuple[int | None, str, str]:
                return index + 1, k, "appears more than once"

            self._spot(name, doc, (), "object", None, None, "must be a JSON object", dup)
            for k, (s, d, _) in enumerate(w.assets):
                self._key(name, doc, (s,), k + 1, s, "reserve", d)
        else:
            rows = [["symbol", "amount"]]
            rows += [
                [s, format_amount(v, d)] for (s, d, _), v in zip(w.assets, w.reserves, strict=True)
            ]
            cdoc = self._csv(name, rows)
            for r, (s, d, _) in enumerate(w.assets, 1):
                self._cell(name, cdoc, r, 0, "rsymbol", "symbol")
                self._cell(name, cdoc, r, 1, "reserve", s, d)

    def _instruments(self) -> None:
        w, name = self.w, self.names.instruments

        def cells(i: Inst) -> dict[str, str | None]:
            return {
                "id": i.id,
                "kind": i.kind,
                "underlying": i.underlying,
                "strike": None if i.strike is None else e8(i.strike),
                "expiry": None if i.expiry is None else format_utc(i.expiry),
                "multiplier": e8(i.multiplier),
            }

        roles = {
            "id": "inst_id",
            "kind": "kind",
            "underlying": "underlying",
            "strike": "strike",
            "expiry": "expiry",
            "multiplier": "multiplier",
        }
        if name.endswith(".json"):
            entries = [{k: v for k, v in cells(i).items() if v is not None} for i in w.instruments]
            doc = self._json(name, {"instruments": entries}, 2)
            self._top_spots(name, doc, "an instruments file", "instruments", True)
            for k, entry in enumerate(entries):
                self._entry_spot(name, doc, ("instruments", k), "an instrument")
                for key in entry:
                    self._key(name, doc, ("instruments", k, key), k + 1, key, roles[key])
        else:
            rows = [list(INSTRUMENTS_HEADER)]
            rows += [[v or "" for v in cells(i).values()] for i in w.instruments]
            cdoc = self._csv(name, rows)
            for r in range(1, len(rows)):
                for c, key in enumerate(INSTRUMENTS_HEADER):
                    if rows[r][c]:
                        self._cell(name, cdoc, r, c, roles[key], key)

    def _market(self) -> None:
        w, name = self.w, self.names.market
        entries = [
            {"underlying": u, "spot": e8(s), "vol": e8(v), "rate": signed_e8(r)}
            for u, s, v, r in w.market
        ]
        roles = {"underlying": "munderlying", "spot": "spot", "vol": "vol", "rate": "mrate"}
        if name.endswith(".json"):
            doc = self._json(name, {"as_of": format_utc(w.as_of), "market": entries}, 2)
            self._top_spots(name, doc, "a market file", "market", True)
            self._key(name, doc, ("as_of",), None, "as_of", "as_of")
            for k, entry in enumerate(entries):
                self._entry_spot(name, doc, ("market", k), "a market entry")
                for key in entry:
                    self._key(name, doc, ("market", k, key), k + 1, key, roles[key])
        else:
            rows = [list(MARKET_HEADER)] + [list(e.values()) for e in entries]
            cdoc = self._csv(name, rows, (f"# as_of: {format_utc(w.as_of)}",))

            def put(v: Any) -> None:
                cdoc.prefix[0] = f"# as_of: {v}"

            self.targets.append(Target(name, 1, "as_of", "as_of", format_utc(w.as_of), put, cdoc))
            for r in range(1, len(rows)):
                for c, key in enumerate(MARKET_HEADER):
                    self._cell(name, cdoc, r, c, roles[key], key)

    def _positions(self) -> None:
        w, name = self.w, self.names.positions
        ids = [i.id for i in w.instruments]
        if name.endswith(".json"):
            entries = [
                {"id": a, "qty": {i: format_quantity(q) for i, q in zip(ids, qty, strict=True)}}
                for a, qty in w.positions
            ]
            doc = self._json(name, {"positions": entries}, 2)
            self._top_spots(name, doc, "a positions file", "positions", True)
            for k, entry in enumerate(entries):
                self._entry_spot(name, doc, ("positions", k), "a positions entry")
                self._key(name, doc, ("positions", k, "id"), k + 1, "id", "pos_id")
                line = k + 1

                def dup(key: str, _: int, line: int = line) -> tuple[int | None, str, str]:
                    return line, f"qty.{key}", "key appears more than once"

                self._spot(
                    name,
                    doc,
                    ("positions", k, "qty"),
                    "object",
                    line,
                    "qty",
                    "'qty' must be a JSON object, not {k}",
                    dup,
                )
                for i in entry["qty"]:
                    self._key(name, doc, ("positions", k, "qty", i), line, f"qty.{i}", "qty")
        else:
            rows = [["id", *ids]]
            rows += [[a, *(format_quantity(q) for q in qty)] for a, qty in w.positions]
            cdoc = self._csv(name, rows)
            for r in range(1, len(rows)):
                self._cell(name, cdoc, r, 0, "pos_id", "id")
                for c in range(1, len(rows[0])):
                    self._cell(name, cdoc, r, c, "qty", rows[0][c])

    def _haircuts(self) -> None:
        w, name = self.w, self.names.haircuts
        if name.endswith(".json"):
            table: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for (s, kind), rows in w.haircuts.items():
                d = w.decimals(s)
                table.setdefault(s, {})[kind] = [
                    {"up_to": None if up is None else format_amount(up, d), "rate": format_rate(r)}
                    for up, r in rows
                ]
            doc = self._json(name, {"assets": table}, 2)

            def top_dup(k: str, _: int) -> tuple[int | None, str, str]:
                return None, k, "key appears more than once"

            def asset_dup(k: str, index: int) -> tuple[int | None, str, str]:
                return index + 1, k, "asset appears more than once"

            self._spot(
                name,
                doc,
                (),
                "object",
                None,
                None,
                "a haircut table must be a JSON object, not {k}",
                top_dup,
            )
            self._spot(
                name,
                doc,
                ("assets",),
                "object",
                None,
                "assets",
                "must be a JSON object mapping asset symbols to haircuts, not {k}",
                asset_dup,
            )
            for pos, (s, kinds) in enumerate(table.items(), 1):

                def kind_dup(
                    k: str, _: int, s: str = s, pos: int = pos
                ) -> tuple[int | None, str, str]:
                    return pos, f"{s}.{k}", "key appears more than once"

                self._spot(
                    name,
                    doc,
                    ("assets", s),
                    "object",
                    pos,
                    s,
                    f"the haircuts of {s} must be a JSON object, not {{k}}",
                    kind_dup,
                )
                for kind, rows_ in kinds.items():
                    path = ("assets", s, kind)
                    self._spot(
                        name,
                        doc,
                        path,
                        "array",
                        pos,
                        f"{s}.{kind}",
                        "must be a JSON array, not {k}",
                    )
                    for t, row in enumerate(rows_):
                        fld = f"{s}.{kind}"

                        def row_dup(
                            k: str, _: int, t: int = t, fld: str = fld
                        ) -> tuple[int | None, str, str]:
                            return t + 1, f"{fld}.{k}", "key appears more than once"

                        self._spot(
                            name,
                            doc,
                            (*path, t),
                            "object",
                            t + 1,
                            fld,
                            f"a {NOUN[kind]} must be a JSON object, not {{k}}",
                            row_dup,
                        )
                        if row["up_to"] is not None:
                            self._key(
                                name,
                                doc,
                                (*path, t, "up_to"),
                                t + 1,
                                f"{fld}.up_to",
                                "up_to",
                                w.decimals(s),
                            )
                        self._key(name, doc, (*path, t, "rate"), t + 1, f"{fld}.rate", "hrate")
        else:
            rows = [list(HAIRCUTS_HEADER)]
            for (s, kind), ladder in w.haircuts.items():
                d = w.decimals(s)
                for up, r in ladder:
                    rows.append(
                        [s, kind, "" if up is None else format_amount(up, d), format_rate(r)]
                    )
            cdoc = self._csv(name, rows)
            for r in range(1, len(rows)):
                s = rows[r][0]
                self._cell(name, cdoc, r, 0, "hsymbol", "symbol")
                if rows[r][2]:
                    self._cell(name, cdoc, r, 2, "up_to", "up_to", w.decimals(s))
                self._cell(name, cdoc, r, 3, "hrate", "rate")

    # -- choosing and finishing

    def pick(self, roles: tuple[str, ...]) -> Target:
        found = [t for t in self.targets if t.role in roles]
        return self.draw(st.sampled_from(found))

    def csv_docs(self) -> list[str]:
        return [n for n, d in self.docs.items() if isinstance(d, CsvDoc)]

    def json_docs(self) -> list[str]:
        return [n for n, d in self.docs.items() if isinstance(d, JsonDoc)]

    def case(self, label: str, expect: Expect) -> Case:
        files = {}
        for name in self.names.files():
            data = self.docs[name].render()
            if name in self.splice:
                data = data.replace(MARK_BYTES, self.splice[name])
            files[name] = data
        return Case(label, self.names, files, expect)

    def expect(self, t: Target, *fragments: str) -> Expect:
        return Expect(t.file, t.line, t.field, fragments)


def some_csv(draw: st.DrawFn) -> World:
    """A world whose chosen file is CSV: which one is drawn by the class."""
    w = draw(worlds())
    key = draw(st.sampled_from(sorted(w.forms)))
    w.forms[key] = "csv"
    if key == "assets":
        w.forms["snapshot"] = "csv"
    return w


# --- classes: numbers -------------------------------------------------------------------------

NUMBER_ROLES = tuple(NUMBERS)
NON_ASCII_DIGITS = (
    "\u0663",
    "\u06f3",
    "\u0969",
    "\uff13",
    "\U0001d7d1",
    "\u1813",
    "\u07c3",
    "\u00b2",
)
PADS = (
    " ",
    "  ",
    "\t",
    "\u00a0",
    "\u2003",
    "\u3000",
    "\n",
    "\r\n",
    "\x0b",
    "\x0c",
    "\x85",
    "\u2028",
)


@st.composite
def number_class(
    draw: st.DrawFn,
    label: str,
    roles: tuple[str, ...],
    make: Callable[[st.DrawFn, Target], tuple[Any, tuple[str, ...]]],
) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(roles)
    value, fragments = make(draw, t)
    t.put(value)
    return b.case(label, b.expect(t, *fragments))


def maybe_minus(draw: st.DrawFn, t: Target, text: str) -> str:
    return "-" + text if t.signed and draw(st.booleans()) else text


def make_exponent(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    text = draw(st.sampled_from(["1e5", "1E5", "1.5e-3", "2e+2", ".5e1", "1.e2", "0e0", "7E18"]))
    if t.role == "decimals":
        return text, (DECIMALS_MSG,)
    return maybe_minus(draw, t, text), ("exponent notation is not allowed",)


def make_comma(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    text = draw(st.sampled_from(["1,5", "1,000", "0,1", "1,000.25", "1.000,5", ",5"]))
    if t.role == "decimals":
        return text, (DECIMALS_MSG,)
    return maybe_minus(draw, t, text), ("commas are not allowed",)


def make_plus(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    if t.role == "decimals":
        return "+" + t.text, (DECIMALS_MSG,)
    return "+" + t.text, ("a '+' sign is not allowed",)


def make_leading_point(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    text = "." + draw(st.from_regex(r"[0-9]{1,8}", fullmatch=True))
    if t.role == "decimals":
        return text, (DECIMALS_MSG,)
    return maybe_minus(draw, t, text), ("missing digits before the decimal point",)


def make_trailing_point(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    text = draw(st.from_regex(r"[0-9]{1,8}", fullmatch=True)) + "."
    if t.role == "decimals":
        return text, (DECIMALS_MSG,)
    return maybe_minus(draw, t, text), ("missing digits after the decimal point",)


def make_too_many_decimals(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    d = NUMBERS[t.role][1]
    d = t.decimals if d is None else d
    whole = draw(st.sampled_from(["0", "1", "12345"]))
    frac = draw(st.from_regex(f"[0-9]{{{d}}}", fullmatch=True)) + draw(
        st.from_regex(r"[0-9]{0,3}[1-9]", fullmatch=True)
    )
    return maybe_minus(draw, t, f"{whole}.{frac}"), (f"more than {d} decimals",)


def make_overflow(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    d = NUMBERS[t.role][1]
    d = t.decimals if d is None else d
    limit = 2**t.bits - 1
    if draw(st.booleans()):
        text = format_amount(limit + 1 + draw(st.integers(0, 10**30)), d)
    else:  # a huge digit string: the parser must not convert it in full
        text = "9" * draw(st.integers(len(str(limit)) + 1, 6000))
    return maybe_minus(draw, t, text), (f"over the {t.bits}-bit limit",)


def make_negative(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    if t.role == "decimals":
        return "-" + t.text, (DECIMALS_MSG,)
    return "-" + t.text, (f"negative {t.what}",)


def make_non_ascii_digit(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    spots = [k for k, c in enumerate(t.text) if c in string.digits]
    k = draw(st.sampled_from(spots))
    text = t.text[:k] + draw(st.sampled_from(NON_ASCII_DIGITS)) + t.text[k + 1 :]
    if t.role == "decimals":
        return text, (DECIMALS_MSG,)
    return text, ("not a decimal number",)


def make_padding(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    pad = draw(st.sampled_from(PADS))
    where = draw(st.sampled_from(["start", "end", "both", "middle"]))
    text = t.text
    if where == "middle" and len(text) > 1 and t.role not in ("id",):
        k = draw(st.integers(1, len(text) - 1))
        text = text[:k] + pad + text[k:]
    else:
        text = (pad if where != "end" else "") + text + (pad if where != "start" else "")
    if t.role == "decimals":
        return text, (DECIMALS_MSG,)
    if t.role == "id":
        return text, ("account id has leading or trailing whitespace",)
    if t.role == "pos_id":
        return text, ("unknown account id", "not in the snapshot")
    return text, ("whitespace is not allowed",)


def make_empty(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    if t.role == "decimals":
        return "", (DECIMALS_MSG,)
    if t.role == "id":
        return "", ("empty account id",)
    if t.role == "pos_id":
        return "", ("unknown account id '': not in the snapshot (empty account id)",)
    if t.role == "up_to":  # JSON only: in CSV an empty up_to is the unbounded row
        return "", ("empty up_to: write null for the unbounded",)
    if t.role == "expiry":
        return "", ("empty expiry",)
    suffix = " (write 0 for none)" if t.role in ("amount", "reserve", "qty") else ""
    return "", (f"empty {t.what}{suffix}",)


def make_zero(draw: st.DrawFn, t: Target) -> tuple[Any, tuple[str, ...]]:
    text = draw(st.sampled_from(["0", "00", "0.0", "0.00000000", "0.000000000000"]))
    if t.role == "up_to":
        return text, ("up_to must be greater than 0",)
    return text, (f"{t.what} must be greater than 0",)


def empty_roles() -> tuple[str, ...]:
    return (*NUMBER_ROLES, "decimals", "id", "pos_id", "expiry")


@st.composite
def empty_value(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    found = [
        t
        for t in b.targets
        if t.role in empty_roles() and not (not t.json and t.role in EMPTY_MEANS_ABSENT)
    ]
    t = draw(st.sampled_from(found))
    value, fragments = make_empty(draw, t)
    t.put(value)
    return b.case("empty value", b.expect(t, *fragments))


# --- classes: ids, symbols, duplicates --------------------------------------------------------

CONTROL = (
    "\t",
    "\x00",
    "\x01",
    "\x1b",
    "\x7f",
    "\x85",
    "\u200b",
    "\u200e",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\n",
    "\r",
    "\u00ad",
    "\U000e0001",
)


@st.composite
def control_char_in_id(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(("id",))
    c = draw(st.sampled_from(CONTROL))
    k = draw(st.integers(1, max(1, len(t.text) - 1)))
    text = t.text[:k] + c + (t.text[k:] or "x")
    t.put(text)
    return b.case("control character in id", b.expect(t, "account id contains non-printable"))


@st.composite
def long_id(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(("id",))
    unit = draw(st.sampled_from(["a", "\u00e9", "\u20ac", "\U0001f600", 'ab,"c']))
    n = MAX_ID_BYTES // len(unit.encode()) + 1 + draw(st.integers(0, 3000))
    t.put(unit * n)
    return b.case("over-long id", b.expect(t, f"longer than {MAX_ID_BYTES} UTF-8 bytes"))


@st.composite
def empty_id(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(("id", "pos_id", "inst_id", "hsymbol"))
    fragment = {
        "id": "empty account id",
        "pos_id": "(empty account id)",
        "inst_id": "empty instrument id",
        "hsymbol": "empty symbol",
    }[t.role]
    t.put("")
    return b.case("empty id", b.expect(t, fragment))


def _row_line(doc: Doc, r: int) -> int:
    """The line an error about data row r (1-based, after the header) names."""
    return doc.line(r) if isinstance(doc, CsvDoc) else r


@st.composite
def duplicate_account_id(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    name = draw(st.sampled_from([b.names.snapshot, b.names.positions]))
    doc = b.docs[name]
    if isinstance(doc, CsvDoc):
        rows = doc.rows
        j = draw(st.integers(1, len(rows) - 1))
        if len(rows) == 2 or draw(st.booleans()):
            rows.append(list(rows[j]))
            k = len(rows) - 1
        else:
            k = draw(st.integers(1, len(rows) - 1).filter(lambda x: x != j))
            j, k = min(j, k), max(j, k)
            rows[k][0] = rows[j][0]
        dup, unit = rows[j][0], "line"
    else:
        key = "accounts" if name == b.names.snapshot else "positions"
        entries = doc.get((key,))
        j = draw(st.integers(0, len(entries) - 1))
        if len(entries) == 1 or draw(st.booleans()):
            entries.append(copy.deepcopy(entries[j]))
            k = len(entries) - 1
        else:
            k = draw(st.integers(0, len(entries) - 1).filter(lambda x: x != j))
            j, k = min(j, k), max(j, k)
            entries[k]["id"] = entries[j]["id"]
        dup, unit, j, k = entries[j]["id"], "entry", j + 1, k + 1
    first = doc.line(j) if isinstance(doc, CsvDoc) else j
    line = doc.line(k) if isinstance(doc, CsvDoc) else k
    return b.case(
        "duplicate account id",
        Expect(name, line, "id", (f"duplicate account id {dup!r} (first at {unit} {first})",)),
    )


def case_variant(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if f else c for c, f in zip(text, flips, strict=True))


@st.composite
def duplicate_instrument_id(draw: st.DrawFn) -> Case:
    w = draw(worlds())
    j = draw(st.integers(0, len(w.instruments) - 1))
    if len(w.instruments) == 1 or draw(st.booleans()):
        src = w.instruments[j]
        w.instruments.append(
            Inst(src.id, src.kind, src.underlying, src.strike, src.expiry, src.multiplier)
        )
        for _, qty in w.positions:
            qty.append(0)
        k = len(w.instruments) - 1
    else:
        k = draw(st.integers(0, len(w.instruments) - 1).filter(lambda x: x != j))
        j, k = min(j, k), max(j, k)
    first_id = w.instruments[j].id
    variant = case_variant(draw, first_id)
    w.instruments[k].id = variant
    b = Build(w, draw)
    doc = b.docs[b.names.instruments]
    first, line = _row_line(doc, j + 1), _row_line(doc, k + 1)
    unit = "line" if isinstance(doc, CsvDoc) else "entry"
    if variant == first_id:
        problem = f"duplicate instrument id {variant!r}"
    else:
        problem = f"instrument id {variant!r} differs from {first_id!r} only in case"
    return b.case(
        "duplicate instrument id",
        Expect(b.names.instruments, line, "id", (f"{problem} (first at {unit} {first})",)),
    )


@st.composite
def duplicate_symbol(draw: st.DrawFn) -> Case:
    """A second asset row for a symbol, market row for an underlying or reserve for an asset."""
    b = Build(draw(worlds()), draw)
    choices = [b.names.market, b.names.reserves]
    choices.append(b.names.assets if b.names.assets else b.names.snapshot)
    name = draw(st.sampled_from(choices))
    doc = b.docs[name]
    if name == b.names.reserves and isinstance(doc, JsonDoc):
        pairs = list(doc.value.items())
        j = draw(st.integers(0, len(pairs) - 1))
        pairs.insert(draw(st.integers(j + 1, len(pairs))), pairs[j])
        doc.value = Pairs(pairs)
        return b.case(
            "duplicate symbol", Expect(name, j + 1, pairs[j][0], ("appears more than once",))
        )
    if isinstance(doc, CsvDoc):
        j = draw(st.integers(1, len(doc.rows) - 1))
        k = draw(st.integers(j + 1, len(doc.rows)))
        doc.rows.insert(k, list(doc.rows[j]))
        first, line, unit = doc.line(j), doc.line(k), "line"
        symbol = doc.rows[j][0]
    else:
        key = "market" if name == b.names.market else "assets"
        entries = doc.get((key,))
        j = draw(st.integers(0, len(entries) - 1))
        k = draw(st.integers(j + 1, len(entries)))
        entries.insert(k, dict(entries[j]))
        first, line, unit = j + 1, k + 1, "entry"
        symbol = entries[j]["underlying" if key == "market" else "symbol"]
    if name == b.names.market:
        fld, problem = "underlying", f"duplicate underlying {symbol!r} (first at {unit} {first})"
    elif name == b.names.reserves:
        fld, problem = "symbol", f"duplicate asset {symbol!r}"
    else:
        fld, problem = "symbol", f"duplicate asset symbol {symbol!r} (first at {unit} {first})"
    return b.case("duplicate symbol", Expect(name, line, fld, (problem,)))


def unknown_symbol(draw: st.DrawFn, w: World) -> str:
    symbols = {s for s, _, _ in w.assets}
    lower = [s.lower() for s in symbols if s.lower() not in symbols]
    made = st.text(SYMBOL_CHARS + "abcxyz", min_size=1, max_size=16).filter(
        lambda s: s not in symbols
    )
    return draw(st.one_of(made, st.sampled_from(lower)) if lower else made)


@st.composite
def unknown_asset_symbol(draw: st.DrawFn) -> Case:
    w = draw(worlds())
    b = Build(w, draw)
    x = unknown_symbol(draw, w)
    fragment = f"unknown asset {x!r}"
    where = draw(st.sampled_from(["snapshot", "reserves", "instruments", "haircuts"]))
    if where == "snapshot":
        doc = b.docs[b.names.snapshot]
        if isinstance(doc, CsvDoc):
            p = draw(st.integers(1, len(doc.rows[0])))
            part = draw(st.sampled_from(["equity", "debt"]))
            for r, row in enumerate(doc.rows):
                row.insert(p, f"{x}_{part}" if r == 0 else "0")
            return b.case(
                "unknown asset", Expect(b.names.snapshot, doc.line(0), f"{x}_{part}", (fragment,))
            )
        i = draw(st.integers(0, len(w.accounts) - 1))
        part = draw(st.sampled_from(["equity", "debt"]))
        doc.get(("accounts", i, part))[x] = "1"
        return b.case("unknown asset", Expect(b.names.snapshot, i + 1, f"{part}.{x}", (fragment,)))
    if where == "reserves":
        doc = b.docs[b.names.reserves]
        if isinstance(doc, CsvDoc):
            k = draw(st.integers(1, len(doc.rows)))
            doc.rows.insert(k, [x, "1"])
            return b.case(
                "unknown asset", Expect(b.names.reserves, doc.line(k), "symbol", (fragment,))
            )
        pairs = list(doc.value.items())
        k = draw(st.integers(0, len(pairs)))
        pairs.insert(k, (x, "1"))
        doc.value = dict(pairs)
        return b.case("unknown asset", Expect(b.names.reserves, k + 1, "symbol", (fragment,)))
    if where == "instruments":
        t = b.pick(("underlying",))
        t.put(x)
        return b.case("unknown asset", b.expect(t, fragment))
    doc = b.docs[b.names.haircuts]
    if isinstance(doc, CsvDoc):
        t = b.pick(("hsymbol",))
        t.put(x)
        return b.case("unknown asset", b.expect(t, fragment))
    table = doc.get(("assets",))
    pairs = list(table.items())
    k = draw(st.integers(0, len(pairs)))
    pairs.insert(k, (x, {"account": [{"up_to": None, "rate": "1"}]}))
    doc.set(("assets",), dict(pairs))
    return b.case("unknown asset", Expect(b.names.haircuts, k + 1, x, (fragment,)))


@st.composite
def bad_symbol(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    symbols = [t for t in b.targets if t.role == "symbol"]
    t = draw(st.sampled_from(symbols))
    taken = {x.text for x in symbols}
    bad = st.one_of(
        st.text(SYMBOL_CHARS, min_size=17, max_size=40),
        st.sampled_from(
            ["", "btc", "Eth", "BT C", "B/C", "\u00c9", "$", "BTC ", "B\u200bC", "\uff22"]
        ),
        st.text(min_size=1, max_size=8).filter(lambda s: any(c not in SYMBOL_CHARS for c in s)),
    ).filter(lambda s: s not in taken)
    t.put(draw(bad))
    return b.case("bad symbol", b.expect(t, "bad symbol"))


@st.composite
def bad_decimals(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(("decimals", "jdecimals"))
    if t.role == "decimals":
        text = draw(
            st.one_of(
                st.integers(19, 10**40).map(str),
                st.sampled_from(
                    [
                        "0019",
                        "8.0",
                        "-1",
                        "1e1",
                        "",
                        " 8",
                        "8 ",
                        "+8",
                        "x",
                        "\u0668",
                        "\uff18",
                        "0x8",
                        "9" * 5000,
                        "0" * 5000 + "19",  # leading zeros must not reach int() in full
                    ]
                ),
            )
        )
        t.put(text)
        return b.case("bad decimals", b.expect(t, DECIMALS_MSG))
    raw = draw(
        st.sampled_from(
            [
                "19",
                "100",
                "8.0",
                "-1",
                "1e1",
                "1E400",
                "-0",
                "NaN",
                "9" * 5000,
                "99999999999999999999999999",
                '"8"',
                "null",
                "true",
                "[8]",
            ]
        )
    )
    t.put(Raw(raw))
    kinds = {'"8"': "a string", "null": "null", "true": "true", "[8]": "an array"}
    if raw in kinds:
        return b.case("bad decimals", b.expect(t, f"must be a JSON integer, not {kinds[raw]}"))
    return b.case("bad decimals", b.expect(t, DECIMALS_MSG))


@st.composite
def bad_price(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(("price",))
    text, fragment = draw(
        st.sampled_from(
            [
                ("0", "price must be greater than 0"),
                ("0.00000000", "price must be greater than 0"),
                ("-1", "negative price"),
                ("-0.5", "negative price"),
                ("0.000000001", "more than 8 decimals"),
                ("1.123456789", "more than 8 decimals"),
                ("184467440737.09551616", "over the 64-bit limit"),
                ("1" * 40, "over the 64-bit limit"),
                ("", "empty price"),
                ("1e3", "exponent notation"),
                ("abc", "not a decimal number"),
                ("NaN", "not a decimal number"),
                ("inf", "not a decimal number"),
                ("0x10", "not a decimal number"),
                ("$1", "not a decimal number"),
            ]
        )
    )
    if t.json and draw(st.booleans()):
        number = draw(st.sampled_from(["65000.12", "1", "1e3", "0.1"]))
        t.put(Raw(number))
        return b.case("bad price", b.expect(t, f"prices must be strings, not JSON number {number}"))
    t.put(text)
    return b.case("bad price", b.expect(t, fragment))


# --- classes: JSON ----------------------------------------------------------------------------

JSON_STRING_ROLES = (
    "amount",
    "reserve",
    "up_to",
    "price",
    "strike",
    "multiplier",
    "spot",
    "vol",
    "mrate",
    "qty",
    "hrate",
    "id",
    "pos_id",
    "symbol",
    "inst_id",
    "kind",
    "underlying",
    "expiry",
    "munderlying",
    "as_of",
)
NUMBER_TOKENS = (
    "1.5",
    "0.1",
    "1e5",
    "-0.0",
    "1E400",
    "NaN",
    "Infinity",
    "-Infinity",
    "0.30000000000000004",
    "12345678901234567890.5",
    "1",
    "-7",
)
WRONG = (
    ("null", "null"),
    ("true", "true"),
    ("false", "false"),
    ("42", "JSON number 42"),
    ('"x"', "a string"),
    ("[]", "an array"),
    ('["1"]', "an array"),
    ("{}", "an object"),
    ('{"a": "1"}', "an object"),
)


def json_world(draw: st.DrawFn) -> Build:
    w = draw(worlds())
    if all(v == "csv" for k, v in w.forms.items() if k != "assets"):
        w.forms[draw(st.sampled_from(["snapshot", "reserves", "positions", "haircuts"]))] = "json"
    return Build(w, draw)


@st.composite
def json_number_for_string(draw: st.DrawFn) -> Case:
    b = json_world(draw)
    found = [t for t in b.targets if t.json and t.role in (*JSON_STRING_ROLES, "jdecimals")]
    t = draw(st.sampled_from(found))
    if t.role == "jdecimals":
        token = draw(st.sampled_from([x for x in NUMBER_TOKENS if not x.lstrip("-").isdigit()]))
        t.put(Raw(token))
        return b.case("JSON number", b.expect(t, DECIMALS_MSG))
    token = draw(st.sampled_from(NUMBER_TOKENS))
    t.put(Raw(token))
    return b.case("JSON number", b.expect(t, f"not JSON number {token}"))


@st.composite
def json_lone_surrogate(draw: st.DrawFn) -> Case:
    """A \\ud800 escape: Python decodes it to a lone surrogate, which no UTF-8 output can hold.
    The value is refused, and the message quotes it escaped (the CLI prints it)."""
    b = json_world(draw)
    t = draw(st.sampled_from([x for x in b.targets if x.json and x.role in JSON_STRING_ROLES]))
    k = draw(st.integers(0, len(t.text)))
    surrogate = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udbff\\udbff"]))
    t.put(Raw('"' + jstr(t.text[:k])[1:-1] + surrogate + jstr(t.text[k:])[1:-1] + '"'))
    new = t.text[:k] + "\ud800" + t.text[k:]  # as long as what the parser sees
    fragment = {
        "id": "non-printable",
        "pos_id": "unknown account id",
        "symbol": "bad symbol",
        "inst_id": "longer than 32" if len(new) > 32 else "bad instrument id",
        "kind": "unknown kind",
        "underlying": "unknown asset",
        "munderlying": "no instrument has the underlying",
        "expiry": "not an ISO-8601 date",
        "as_of": "not an ISO-8601 date",
    }.get(t.role, "not a decimal number")
    return b.case("JSON lone surrogate", b.expect(t, fragment))


@st.composite
def json_wrong_type(draw: st.DrawFn) -> Case:
    b = json_world(draw)
    if draw(st.booleans()):
        found = [t for t in b.targets if t.json and t.role in (*JSON_STRING_ROLES, "jdecimals")]
        t = draw(st.sampled_from(found))
        nullable = t.role in EMPTY_MEANS_ABSENT
        options = [
            (raw, k) for raw, k in WRONG if k != "a string" and not (nullable and raw == "null")
        ]
        if t.role == "jdecimals":
            options = [(raw, k) for raw, k in WRONG if not k.startswith("JSON number")]
        raw, kind = draw(st.sampled_from(options))
        t.put(Raw(raw))
        if t.role == "jdecimals":
            return b.case("JSON wrong type", b.expect(t, f"must be a JSON integer, not {kind}"))
        return b.case("JSON wrong type", b.expect(t, f"not {kind}"))
    spot = draw(st.sampled_from(b.spots))
    excluded = {
        "object": ("an object",),
        "array": ("an array",),
        "object_or_list": ("an object", "an array"),
    }[spot.shape]
    raw, kind = draw(st.sampled_from([(r, k) for r, k in WRONG if k not in excluded]))
    spot.doc.set(spot.path, Raw(raw))
    return b.case(
        "JSON wrong type", Expect(spot.file, spot.line, spot.field, (spot.wrong.format(k=kind),))
    )


@st.composite
def json_duplicate_key(draw: st.DrawFn) -> Case:
    b = json_world(draw)
    spots = [s for s in b.spots if s.dup is not None and items(s.doc.get(s.path))]
    spot = draw(st.sampled_from(spots))
    assert spot.dup is not None
    pairs = items(spot.doc.get(spot.path))
    j = draw(st.integers(0, len(pairs) - 1))
    key, value = pairs[j]
    pairs.insert(draw(st.integers(j + 1, len(pairs))), (key, value))
    spot.doc.set(spot.path, Pairs(pairs))
    line, fld, fragment = spot.dup(key, j)
    return b.case("JSON duplicate key", Expect(spot.file, line, fld, (fragment,)))


@st.composite
def json_deep_nesting(draw: st.DrawFn) -> Case:
    b = json_world(draw)
    paths = [(t.doc, t.file, t.path) for t in b.targets if t.json]
    paths += [(s.doc, s.file, s.path) for s in b.spots]
    doc, name, path = draw(st.sampled_from(paths))
    assert isinstance(doc, JsonDoc)
    n = draw(st.integers(33, 50000))
    deep = draw(st.sampled_from(["[" * n + "]" * n, '{"a": ' * n + "0" + "}" * n, "[" * n]))
    line = doc.phys(path)
    doc.set(path, Raw(deep))
    return b.case("JSON deep nesting", Expect(name, line, None, ("nested deeper than 32 levels",)))


@st.composite
def json_trailing_data(draw: st.DrawFn) -> Case:
    b = json_world(draw)
    name = draw(st.sampled_from(b.json_docs()))
    doc = b.docs[name]
    assert isinstance(doc, JsonDoc)
    blank = draw(st.integers(0, 3))
    doc.tail = "\n" * blank + draw(
        st.sampled_from(["x", "{}", "]", "}", "1", '"a"', "[]", ",", "null"])
    )
    line = doc.text().count("\n") + 1
    return b.case("JSON trailing data", Expect(name, line, None, ("invalid JSON: Extra data",)))


# --- classes: bytes and lines -----------------------------------------------------------------

BAD_UTF8 = (
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xbf",
    b"\xc3(",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe9",
    b"\xe2\x82",
    b"\xf8\x88\x80\x80\x80",
)


def splice_at_mark(b: Build, name: str, bad: bytes) -> tuple[int, int]:
    """Render `name`, put `bad` where MARK is; (line, 1-based byte of the line) of the splice."""
    doc = b.docs[name]
    data = doc.render()
    pos = data.index(MARK_BYTES)
    start = data.rfind(b"\n", 0, pos) + 1
    offset = pos - start - (len(codecs.BOM_UTF8) if start == 0 and doc.bom else 0)
    b.splice[name] = bad
    return data.count(b"\n", 0, pos) + 1, offset + 1


def insert_mark(draw: st.DrawFn, text: str) -> str:
    k = draw(st.integers(0, len(text)))
    return text[:k] + MARK + text[k:]


@st.composite
def non_utf8(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = draw(st.sampled_from(b.targets))
    t.put(insert_mark(draw, t.text))
    bad = draw(st.sampled_from(BAD_UTF8))
    line, byte = splice_at_mark(b, t.file, bad)
    if t.json:
        assert line == t.doc.phys(t.path)
        return b.case(
            "non-UTF-8", Expect(t.file, line, None, (f"not valid UTF-8 (byte 0x{bad[0]:02x})",))
        )
    assert line == t.line
    fragment = f"not valid UTF-8 (byte 0x{bad[0]:02x}, byte {byte} of the line)"
    return b.case("non-UTF-8", Expect(t.file, line, None, (fragment,)))


@st.composite
def bom_in_middle(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = draw(st.sampled_from(b.targets))
    if t.json:
        # Between tokens: before the first string on the line the value is on (a key or the
        # value), where JSON allows whitespace only.
        doc = t.doc
        assert isinstance(doc, JsonDoc)
        line = doc.phys(t.path)
        text = doc.text().split("\n")
        text[line - 1] = (
            text[line - 1].replace('"', '\ufeff"', 1)
            if '"' in text[line - 1]
            else "\ufeff" + text[line - 1]
        )
        doc.value, doc.depth = Raw("\n".join(text).removesuffix("\n")), 0
        return b.case("BOM in the middle", Expect(t.file, line, None, ("invalid JSON",)))
    # In the target's file, a data row whose first cell now starts with a BOM: the cell is no
    # longer what it was (only line 1 may start with one).
    doc = t.doc
    assert isinstance(doc, CsvDoc)
    r = draw(st.integers(1, len(doc.rows) - 1))
    row = doc.rows[r]
    row[0] = "\ufeff" + row[0]
    name, line = t.file, doc.line(r)
    first = {
        b.names.snapshot: ("id", "non-printable"),
        b.names.assets: ("symbol", "bad symbol"),
        b.names.reserves: ("symbol", "unknown asset"),
        # the length is checked first: a 32-character id is one too long with its BOM
        b.names.instruments: (
            "id",
            "longer than 32" if len(row[0]) > 32 else "bad instrument id",
        ),
        b.names.market: ("underlying", "no instrument has the underlying"),
        b.names.positions: ("id", "unknown account id"),
        b.names.haircuts: ("symbol", "unknown asset"),
    }[name]
    return b.case("BOM in the middle", Expect(name, line, first[0], (first[1],)))


@st.composite
def nul_byte(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick((*UNSIGNED, "mrate", "qty", "id"))
    if t.json:
        t.put(insert_mark(draw, t.text))
        line, _ = splice_at_mark(b, t.file, b"\x00")
        return b.case(
            "NUL byte", Expect(t.file, line, None, ("invalid JSON: Invalid control character",))
        )
    k = draw(st.integers(0, len(t.text)))
    t.put(t.text[:k] + "\x00" + t.text[k:])
    fragment = "non-printable" if t.role == "id" else "not a decimal number"
    return b.case("NUL byte", b.expect(t, fragment))


@st.composite
def truncated(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    name = draw(st.sampled_from(sorted(b.docs)))
    doc = b.docs[name]
    if isinstance(doc, JsonDoc):
        text = doc.text()
        cut = draw(st.integers(1, text.rindex("}")))
        doc.cut = cut
        return b.case(
            "truncated", Expect(name, text[:cut].count("\n") + 1, None, ("invalid JSON",))
        )
    r = draw(st.integers(1, len(doc.rows) - 1))
    row = doc.rows[r]
    del doc.rows[r + 1 :]
    line, n = doc.line(r), len(doc.rows[0])
    mode = draw(st.sampled_from(["cells", "quote", "utf8"]))
    wide = [(k, c) for k, c in enumerate(csv_row(row)) if len(c.encode()) > 1]
    if mode == "utf8" and wide:
        k, c = draw(st.sampled_from(wide))
        data = csv_row(row)[:k].encode() + c.encode()[: draw(st.integers(1, len(c.encode()) - 1))]
        doc.raw[r] = data
        return b.case(
            "truncated", Expect(name, line, None, (f"not valid UTF-8 (byte 0x{c.encode()[0]:02x}",))
        )
    c = draw(st.integers(0, n - 1))
    if mode == "quote":
        head = [csv_cell(x) for x in row[:c]]
        part = row[c][: draw(st.integers(0, len(row[c])))]
        doc.raw[r] = (",".join([*head, '"' + part.replace('"', '""')])).encode()
        return b.case(
            "truncated", Expect(name, line, None, ("malformed CSV: unexpected end of data",))
        )
    c = max(c, 1)
    trailing = c < n - 1 and draw(st.booleans())
    doc.raw[r] = (
        csv_row(row[:c]) + ("," if trailing else "") + draw(st.sampled_from(["", "\n"]))
    ).encode()
    found = c + trailing
    return b.case("truncated", Expect(name, line, None, (f"expected {n} cells", f"found {found}")))


@st.composite
def unclosed_quote(draw: st.DrawFn) -> Case:
    """A quote opening a cell and never closed: the reader runs on to the end of the file, and
    the error must still point at the line the quote is on."""
    b = Build(some_csv(draw), draw)
    name = draw(st.sampled_from(b.csv_docs()))
    doc = b.docs[name]
    assert isinstance(doc, CsvDoc)
    r = draw(st.integers(1, len(doc.rows) - 1))
    c = draw(st.integers(0, len(doc.rows[r]) - 1))
    # Nothing after the quote may close it. What those cells hold does not matter: the reader
    # fails on the quote before any of them is looked at.
    plain = str.maketrans(',"\r\n', "____")
    doc.rows[r][c:] = [x.translate(plain) for x in doc.rows[r][c:]]
    for row in doc.rows[r + 1 :]:
        row[:] = [x.translate(plain) for x in row]
    row = doc.rows[r]
    end = "\r\n" if r in doc.crlf else "\n"
    doc.raw[r] = (
        ",".join([*(csv_cell(x) for x in row[:c]), '"' + ",".join(row[c:])]) + end
    ).encode()
    last = doc.render().count(b"\n")
    fragments = ["malformed CSV: unexpected end of data"]
    if last != doc.line(r):
        fragments.append(f"(in the record from here to line {last})")
    return b.case("unclosed quote", Expect(name, doc.line(r), None, tuple(fragments)))


@st.composite
def extra_cell(draw: st.DrawFn) -> Case:
    b = Build(some_csv(draw), draw)
    name = draw(st.sampled_from(b.csv_docs()))
    doc = b.docs[name]
    assert isinstance(doc, CsvDoc)
    r = draw(st.integers(1, len(doc.rows) - 1))
    n = len(doc.rows[0])
    extra = draw(st.lists(st.sampled_from(["", "0", "1", "x", "a,b"]), min_size=1, max_size=3))
    doc.rows[r] += extra
    return b.case(
        "extra cell",
        Expect(name, doc.line(r), None, (f"expected {n} cells", f"found {n + len(extra)}")),
    )


@st.composite
def missing_cell(draw: st.DrawFn) -> Case:
    b = Build(some_csv(draw), draw)
    name = draw(st.sampled_from(b.csv_docs()))
    doc = b.docs[name]
    assert isinstance(doc, CsvDoc)
    r = draw(st.integers(1, len(doc.rows) - 1))
    n = len(doc.rows[0])
    gone = draw(st.integers(1, n - 1))
    for _ in range(gone):
        del doc.rows[r][draw(st.integers(0, len(doc.rows[r]) - 1))]
    return b.case(
        "missing cell",
        Expect(name, doc.line(r), None, (f"expected {n} cells", f"found {n - gone}")),
    )


EXACT_HEADERS = ("assets", "reserves", "instruments", "market")


def header_kind(b: Build, name: str) -> str:
    n = b.names
    return {
        n.snapshot: "accounts",
        n.assets: "assets",
        n.reserves: "reserves",
        n.instruments: "instruments",
        n.market: "market",
        n.positions: "positions",
        n.haircuts: "haircuts",
    }[name]


@st.composite
def header_missing_column(draw: st.DrawFn) -> Case:
    b = Build(some_csv(draw), draw)
    name = draw(st.sampled_from(b.csv_docs()))
    doc = b.docs[name]
    assert isinstance(doc, CsvDoc)
    kind = header_kind(b, name)
    # Positions may leave instruments out (no position in them): only their id column is needed.
    c = 0 if kind == "positions" else draw(st.integers(0, len(doc.rows[0]) - 1))
    col = doc.rows[0][c]
    for row in doc.rows:
        del row[c]
    if kind in EXACT_HEADERS:
        return b.case(
            "header missing column", Expect(name, doc.line(0), None, ("expected the header",))
        )
    return b.case("header missing column", Expect(name, doc.line(0), col, ("missing column",)))


@st.composite
def header_duplicate_column(draw: st.DrawFn) -> Case:
    b = Build(some_csv(draw), draw)
    name = draw(st.sampled_from(b.csv_docs()))
    doc = b.docs[name]
    assert isinstance(doc, CsvDoc)
    n = len(doc.rows[0])
    c = draw(st.integers(0, n - 1))
    p = draw(st.integers(0, n))
    col = doc.rows[0][c]
    for row in doc.rows:
        row.insert(p, row[c])
    if header_kind(b, name) in EXACT_HEADERS:
        return b.case(
            "header duplicate column", Expect(name, doc.line(0), None, ("expected the header",))
        )
    i, j = sorted(k for k, x in enumerate(doc.rows[0]) if x == col)
    fragment = f"duplicate column (columns {i + 1} and {j + 1})"
    return b.case("header duplicate column", Expect(name, doc.line(0), col, (fragment,)))


@st.composite
def header_unknown_column(draw: st.DrawFn) -> Case:
    b = Build(some_csv(draw), draw)
    name = draw(st.sampled_from(b.csv_docs()))
    doc = b.docs[name]
    assert isinstance(doc, CsvDoc)
    kind = header_kind(b, name)
    header = doc.rows[0]
    if kind == "accounts":
        x = unknown_symbol(draw, b.w)
        col, fragment = draw(
            st.sampled_from(
                [
                    (f"{x}_equity", f"unknown asset {x!r}"),
                    (f"{x}_debt", f"unknown asset {x!r}"),
                    ("name", "unexpected column"),
                    ("ID", "unexpected column"),
                    ("", "empty column name (a trailing comma?)"),
                    (" " + header[1], "column name has surrounding whitespace"),
                ]
            )
        )
    elif kind == "positions":
        ids = {i.id for i in b.w.instruments}
        x = draw(INSTRUMENT_IDS.filter(lambda s: s not in ids))
        col, fragment = draw(
            st.sampled_from(
                [
                    (x, f"unknown instrument {x!r}"),
                    ("", "empty column name"),
                    (header[1] + " ", "column name has surrounding whitespace"),
                ]
            )
        )
    elif kind == "haircuts":
        col, fragment = draw(
            st.sampled_from(
                [
                    ("symbols", "unexpected column"),
                    ("tier", "unexpected column"),
                    ("", "empty column name"),
                    ("rate ", "surrounding whitespace"),
                ]
            )
        )
    else:
        col, fragment = draw(st.sampled_from(["note", "", "x"])), "expected the header"
    p = draw(st.integers(0, len(header)))
    for r, row in enumerate(doc.rows):
        row.insert(p, col if r == 0 else "0")
    fld = None if kind in EXACT_HEADERS else col
    return b.case("header unknown column", Expect(name, doc.line(0), fld, (fragment,)))


@st.composite
def bare_cr_line_end(draw: st.DrawFn) -> Case:
    b = Build(some_csv(draw), draw)
    name = draw(st.sampled_from(b.csv_docs()))
    doc = b.docs[name]
    assert isinstance(doc, CsvDoc)
    r = draw(st.integers(0, len(doc.rows) - 2))
    doc.term[r] = "\r"
    doc.blanks.pop(r + 1, None)
    return b.case(
        "bare CR line end",
        Expect(
            name, doc.line(r), None, ("malformed CSV: new-line character seen in unquoted field",)
        ),
    )


@st.composite
def huge_line(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick((*NUMBER_ROLES, "id"))
    n = draw(st.integers(131073, 400000))
    if not t.json:
        t.put(draw(st.sampled_from(["1", "a", "\u00e9"])) * n)
        fragment = "malformed CSV: field larger than field limit"
        return b.case("huge line", Expect(t.file, t.line, None, (fragment,)))
    if t.role == "id":
        t.put("a" * n)
        return b.case("huge line", b.expect(t, f"longer than {MAX_ID_BYTES} UTF-8 bytes"))
    t.put("9" * n)
    return b.case("huge line", b.expect(t, f"over the {t.bits}-bit limit"))


@st.composite
def empty_input(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    name = draw(st.sampled_from(b.names.files()))
    doc = b.docs[name]
    n = b.names
    if draw(st.booleans()):
        blanks = ["", "\n", "\r\n", "\n\n\r\n"] + (["  \n\t "] if isinstance(doc, JsonDoc) else [])
        b.docs[name] = RawDoc(draw(st.sampled_from(blanks)).encode())
        return b.case("empty input", Expect(name, None, None, ("empty file",)))
    # The header alone, or empty arrays.
    if name in (n.positions, n.haircuts):
        name = draw(
            st.sampled_from([x for x in (n.snapshot, n.assets, n.instruments, n.market) if x])
        )
        doc = b.docs[name]
    what = {
        n.snapshot: "accounts",
        n.assets: "assets",
        n.instruments: "instruments",
        n.market: "market data",
        n.reserves: "reserve",
    }[name]
    if name == n.reserves:
        if isinstance(doc, CsvDoc):
            del doc.rows[1:]
        else:
            doc.value = {}
        first = b.w.assets[0][0]
        return b.case(
            "empty input", Expect(name, None, first, ("no reserve given for this asset",))
        )
    if isinstance(doc, CsvDoc):
        del doc.rows[1:]
        return b.case("empty input", Expect(name, None, None, (f"no {what} after the header",)))
    key = {"market data": "market"}.get(what, what)
    doc.set((key,), [])
    return b.case("empty input", Expect(name, None, key, (f"no {what}",)))


# --- classes: cross-file and domain rules -----------------------------------------------------


@st.composite
def reserves_missing_asset(draw: st.DrawFn) -> Case:
    w = draw(worlds())
    b = Build(w, draw)
    doc = b.docs[b.names.reserves]
    k = draw(st.integers(0, len(w.assets) - 1))
    symbol = w.assets[k][0]
    if isinstance(doc, CsvDoc):
        del doc.rows[k + 1]
    else:
        del doc.value[symbol]
    return b.case(
        "reserves missing asset",
        Expect(b.names.reserves, None, symbol, ("no reserve given for this asset",)),
    )


@st.composite
def positions_unknown_account(draw: st.DrawFn) -> Case:
    w = draw(worlds())
    b = Build(w, draw)
    t = b.pick(("pos_id",))
    ids = {a for a, _, _ in w.accounts}
    variants = [
        v
        for v in (
            t.text.swapcase(),
            unicodedata.normalize("NFD", t.text),
            unicodedata.normalize("NFC", t.text),
            unicodedata.normalize("NFKC", t.text),
            t.text + "x",
        )
        if v not in ids and v
    ]
    x = draw(st.one_of(st.sampled_from(variants), ACCOUNT_IDS.filter(lambda s: s not in ids)))
    t.put(x)
    return b.case(
        "positions unknown account", b.expect(t, "unknown account id", "not in the snapshot")
    )


@st.composite
def positions_unknown_instrument(draw: st.DrawFn) -> Case:
    w = draw(worlds())
    b = Build(w, draw)
    doc = b.docs[b.names.positions]
    ids = [i.id for i in w.instruments]
    variants = [v for v in (i.swapcase() for i in ids) if v not in ids and v != "id"]
    made = INSTRUMENT_IDS.filter(lambda s: s not in ids)
    x = draw(st.one_of(st.sampled_from(variants), made) if variants else made)
    fragment = f"unknown instrument {x!r}"
    if isinstance(doc, CsvDoc):
        if draw(st.booleans()):
            c = draw(st.integers(1, len(doc.rows[0]) - 1))
            doc.rows[0][c] = x
        else:
            p = draw(st.integers(0, len(doc.rows[0])))
            for r, row in enumerate(doc.rows):
                row.insert(p, x if r == 0 else "0")
        return b.case(
            "positions unknown instrument", Expect(b.names.positions, doc.line(0), x, (fragment,))
        )
    entries = doc.get(("positions",))
    k = draw(st.integers(0, len(entries) - 1))
    entries[k]["qty"][x] = "1"
    return b.case(
        "positions unknown instrument", Expect(b.names.positions, k + 1, f"qty.{x}", (fragment,))
    )


@st.composite
def quantity_sign_and_range(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(("qty",))
    text, fragment = draw(
        st.sampled_from(
            [
                ("--1", "a sign must be one leading '-' followed by digits"),
                ("-+1", "a sign must be one leading '-' followed by digits"),
                ("-", "a sign must be one leading '-' followed by digits"),
                ("--0", "a sign must be one leading '-' followed by digits"),
                ("92233720368.54775808", "over the 63-bit limit"),
                ("-92233720368.54775808", "over the 63-bit limit"),
                ("-18446744073709551616", "over the 63-bit limit"),
                ("-" + "9" * 5000, "over the 63-bit limit"),
                ("-0.000000001", "more than 8 decimals"),
                ("-0e0", "exponent notation"),
                ("- 1", "whitespace is not allowed"),
                ("\u22121", "not a decimal number"),  # MINUS SIGN, not '-'
                ("\u20131", "not a decimal number"),  # EN DASH
            ]
        )
    )
    t.put(text)
    return b.case("quantity sign and range", b.expect(t, fragment))


@st.composite
def expiry_not_after_as_of(draw: st.DrawFn) -> Case:
    w = draw(worlds())
    k = draw(st.sampled_from([k for k, i in enumerate(w.instruments) if i.expiry is not None]))
    inst = w.instruments[k]
    inst.expiry = w.as_of - timedelta(seconds=draw(st.integers(0, 10**9)))
    b = Build(w, draw)
    doc = b.docs[b.names.instruments]
    assert inst.expiry is not None
    fragments = (
        f"{inst.id!r} expired at {format_utc(inst.expiry)}, not after as_of {format_utc(w.as_of)}",
    )
    return b.case(
        "expiry not after as_of",
        Expect(b.names.instruments, _row_line(doc, k + 1), "expiry", fragments),
    )


@st.composite
def bad_time(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(("expiry", "as_of"))
    what = t.role
    text, fragment = draw(
        st.sampled_from(
            [
                ("2026-12-25T08:00:00", "no time zone"),
                ("2026-12-25T08:00:00.5", "no time zone"),
                ("2026-12-25T09:00:00+01:00", "not UTC"),
                ("2026-12-25T08:00:00-00:00", "not UTC"),
                ("2026-12-25T08:00:00.5Z", "fractional seconds are not allowed"),
                ("2026-12-25\t08:00:00Z", "whitespace is not allowed"),
                ("25/12/2026", "not an ISO-8601 date"),
                ("20261225", "not an ISO-8601 date"),
                ("1798185600", "not an ISO-8601 date"),
                ("2026-12-25t08:00:00z", "not an ISO-8601 date"),
                ("2026-12-25T08:00Z", "not an ISO-8601 date"),
                ("\u0662026-12-25", "not an ISO-8601 date"),
                ("2026-02-30", f"not a valid {what}: day is out of range"),
                ("2026-13-01", f"not a valid {what}: month must be in 1..12"),
                ("2026-12-25T24:00:00Z", f"not a valid {what}: hour must be in 0..23"),
                ("2026-12-25T23:59:60Z", f"not a valid {what}: second must be in 0..59"),
                ("0000-01-01", f"not a valid {what}: year 0 is out of range"),
            ]
        )
    )
    t.put(text)
    return b.case("bad time", b.expect(t, fragment))


@st.composite
def instrument_fields(draw: st.DrawFn) -> Case:
    """Strike and expiry that do not fit the kind, and unknown kinds."""
    w = draw(worlds())
    k = draw(st.integers(0, len(w.instruments) - 1))
    inst = w.instruments[k]
    option = inst.kind in ("call", "put")
    later = w.as_of + timedelta(days=1)
    variants: list[tuple[str, str, str]] = []  # (change, field, message)
    if option:
        variants += [
            ("no strike", "strike", f"a {inst.kind} needs a strike"),
            ("no expiry", "expiry", f"a {inst.kind} needs an expiry"),
            ("kind future", "strike", "a future has no strike"),
            ("kind perpetual", "strike", "a perpetual has no strike"),
        ]
    elif inst.kind == "future":
        variants += [
            ("add strike", "strike", "a future has no strike"),
            ("no expiry", "expiry", "a future needs an expiry"),
            ("kind perpetual", "expiry", "a perpetual has no expiry"),
            ("kind call", "strike", "a call needs a strike"),
        ]
    else:
        variants += [
            ("add expiry", "expiry", "a perpetual has no expiry"),
            ("add strike", "strike", "a perpetual has no strike"),
            ("kind future", "expiry", "a future needs an expiry"),
            ("kind put", "strike", "a put needs a strike"),
        ]
    bad_kind = draw(
        st.sampled_from(["Call", "PERPETUAL", "swap", "", "option", "futures", "call "])
    )
    hint = " (kinds are lower case)" if bad_kind.lower() in KINDS else ""
    variants.append(
        (
            "bad kind",
            "kind",
            f"unknown kind {bad_kind!r}; expected perpetual, future, call or put{hint}",
        )
    )
    change, fld, message = draw(st.sampled_from(variants))
    if change == "no strike":
        inst.strike = None
    elif change == "no expiry":
        inst.expiry = None
    elif change == "add strike":
        inst.strike = 1
    elif change == "add expiry":
        inst.expiry = later
    elif change.startswith("kind "):
        inst.kind = change.removeprefix("kind ")
    else:
        inst.kind = bad_kind
    b = Build(w, draw)
    doc = b.docs[b.names.instruments]
    if isinstance(doc, JsonDoc) and change == "no strike" and draw(st.booleans()):
        doc.get(("instruments", k))["strike"] = None  # null is "not given" too
    return b.case(
        "instrument fields", Expect(b.names.instruments, _row_line(doc, k + 1), fld, (message,))
    )


@st.composite
def bad_instrument_id(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(("inst_id",))
    text, fragment = draw(
        st.sampled_from(
            [
                ("ETH/PERP", "bad instrument id 'ETH/PERP'"),
                ("BTC PERP", "bad instrument id"),
                ("A" * 33, "instrument id is longer than 32 characters"),
                ("id", "instrument id 'id' is reserved"),
                ("ID", "instrument id 'id' is reserved"),
                ("Id", "instrument id 'id' is reserved"),
                ("\u00c9TH", "bad instrument id"),
                ("BTC,PERP", "bad instrument id"),
                ("BTC\u2011PERP", "bad instrument id"),  # NON-BREAKING HYPHEN
            ]
        )
    )
    t.put(text)
    return b.case("bad instrument id", b.expect(t, fragment))


@st.composite
def haircut_rate_above_one(draw: st.DrawFn) -> Case:
    b = Build(draw(worlds()), draw)
    t = b.pick(("hrate",))
    t.put(
        draw(
            st.sampled_from(["1.0001", "1.5", "2", "95", "100", "10000", "1.00010000", "999999999"])
        )
    )
    return b.case("haircut rate above one", b.expect(t, "rate must be at most 1; it is a fraction"))


def ladder_lines(b: Build, symbol: str, kind: str) -> list[int]:
    doc = b.docs[b.names.haircuts]
    if isinstance(doc, CsvDoc):
        return [
            doc.line(r)
            for r, row in enumerate(doc.rows)
            if r and row[0] == symbol and row[1] == kind
        ]
    return list(range(1, len(b.w.haircuts[symbol, kind]) + 1))


def ladder_field(b: Build, symbol: str, kind: str, column: str) -> str:
    return column if b.names.haircuts.endswith(".csv") else f"{symbol}.{kind}.{column}"


@st.composite
def haircut_rising_rate(draw: st.DrawFn) -> Case:
    w = draw(worlds())
    key = draw(st.sampled_from([k for k, v in w.haircuts.items() if len(v) >= 2]))
    rows = w.haircuts[key]
    t = draw(st.integers(1, len(rows) - 1))
    low = draw(st.integers(0, BPS - 1))
    high = draw(st.integers(low + 1, BPS))
    rows[:t] = [(up, max(r, low)) for up, r in rows[:t]]
    rows[t - 1] = (rows[t - 1][0], low)
    rows[t] = (rows[t][0], high)
    b = Build(w, draw)
    symbol, kind = key
    line = ladder_lines(b, symbol, kind)[t]
    rule = (
        "rates must not increase with the amount" if kind == "account" else "caps must not increase"
    )
    fragment = (
        f"rate {format_rate(high)} is higher than the previous {NOUN[kind]}'s {format_rate(low)}"
    )
    return b.case(
        "haircut rising rate",
        Expect(b.names.haircuts, line, ladder_field(b, symbol, kind, "rate"), (fragment, rule)),
    )


@st.composite
def haircut_ladder_shape(draw: st.DrawFn) -> Case:
    w = draw(worlds())
    key = draw(st.sampled_from(sorted(w.haircuts)))
    symbol, kind = key
    noun = NOUN[kind]
    change = draw(
        st.sampled_from(["no unbounded", "not increasing", "after unbounded", "given twice"])
    )
    t = 0
    if change == "given twice" and (len(w.haircuts) < 2 or w.forms["haircuts"] == "json"):
        change = "after unbounded"
    if change == "no unbounded":
        w.haircuts[key] = (
            draw(ladders(2))[:-1] if len(w.haircuts[key]) < 2 else w.haircuts[key][:-1]
        )
    elif change == "not increasing":
        rows = draw(ladders(3))
        t = draw(st.integers(1, len(rows) - 2))
        prev = rows[t - 1][0]
        assert prev is not None
        rows[t] = (draw(st.integers(1, prev)), rows[t][1])
        w.haircuts[key] = rows
    elif change == "after unbounded":
        w.haircuts[key] = [*w.haircuts[key], (draw(st.sampled_from([None, 1, MAX_AMOUNT])), 0)]
    else:
        # Move the ladder's last row to the end of the file, after another ladder.
        keys = list(w.haircuts)
        if keys[-1] == key:
            keys = [key, *keys[:-1]]
        w.haircuts = {k: w.haircuts[k] for k in keys}
    b = Build(w, draw)
    lines = ladder_lines(b, symbol, kind)
    if change == "given twice":
        doc = b.docs[b.names.haircuts]
        assert isinstance(doc, CsvDoc)
        rows_ = [r for r, row in enumerate(doc.rows) if r and row[0] == symbol and row[1] == kind]
        doc.rows.append(list(doc.rows[rows_[-1]]))
        message = f"{symbol}'s {kind} {noun}s were given already (lines {lines[0]}-{lines[-1]})"
        return b.case(
            "haircut ladder shape",
            Expect(b.names.haircuts, doc.line(len(doc.rows) - 1), "symbol", (message,)),
        )
    up_to = ladder_field(b, symbol, kind, "up_to")
    if change == "no unbounded":
        message = f"{symbol}'s {kind} {noun}s end without an unbounded {noun}"
        return b.case(
            "haircut ladder shape", Expect(b.names.haircuts, lines[-1], up_to, (message,))
        )
    if change == "not increasing":
        message = f"up_to must be greater than the previous {noun}'s"
        return b.case("haircut ladder shape", Expect(b.names.haircuts, lines[t], up_to, (message,)))
    message = f"a {noun} after the unbounded one"
    return b.case("haircut ladder shape", Expect(b.names.haircuts, lines[-1], up_to, (message,)))


@st.composite
def market_values_and_rows(draw: st.DrawFn) -> Case:
    w = draw(worlds())
    b = Build(w, draw)
    change = draw(st.sampled_from(["vol", "rate", "unused", "missing"]))
    if change == "vol":
        t = b.pick(("vol",))
        t.put(draw(st.sampled_from(["5.00000001", "6", "70", "500", "65"])))
        return b.case("market values", b.expect(t, "vol must be at most 5; it is a fraction"))
    if change == "rate":
        t = b.pick(("mrate",))
        t.put(draw(st.sampled_from(["1.00000001", "-1.00000001", "-1.5", "4.25", "100", "-100"])))
        return b.case(
            "market values", b.expect(t, "rate must be between -1 and 1; it is a fraction")
        )
    doc = b.docs[b.names.market]
    used = [m[0] for m in w.market]
    if change == "missing" and len(used) > 1:
        k = draw(st.integers(0, len(used) - 1))
        if isinstance(doc, CsvDoc):
            del doc.rows[k + 1]
        else:
            del doc.get(("market",))[k]
        first_use = next(i.id for i in w.instruments if i.underlying == used[k])
        message = f"no market data for {used[k]!r} (the underlying of {first_use!r})"
        return b.case("market values", Expect(b.names.market, None, "underlying", (message,)))
    x = draw(
        st.one_of(
            st.sampled_from([s for s, _, _ in w.assets]),
            st.text(SYMBOL_CHARS, min_size=1, max_size=5),
        ).filter(lambda s: s not in used)
    )
    if isinstance(doc, CsvDoc):
        k = draw(st.integers(1, len(doc.rows)))
        doc.rows.insert(k, [x, "1", "0.5", "0"])
        line = doc.line(k)
    else:
        entries = doc.get(("market",))
        k = draw(st.integers(0, len(entries)))
        entries.insert(k, {"underlying": x, "spot": "1", "vol": "0.5", "rate": "0"})
        line = k + 1
    return b.case(
        "market values",
        Expect(b.names.market, line, "underlying", (f"no instrument has the underlying {x!r}",)),
    )


CLASSES: dict[str, st.SearchStrategy[Case]] = {
    # bytes, lines and cells
    "non_utf8": non_utf8(),
    "bom_in_middle": bom_in_middle(),
    "nul_byte": nul_byte(),
    "truncated": truncated(),
    "unclosed_quote": unclosed_quote(),
    "extra_cell": extra_cell(),
    "missing_cell": missing_cell(),
    "header_missing_column": header_missing_column(),
    "header_duplicate_column": header_duplicate_column(),
    "header_unknown_column": header_unknown_column(),
    "bare_cr_line_end": bare_cr_line_end(),
    "huge_line": huge_line(),
    "empty_input": empty_input(),
    # numbers
    "exponent": number_class("exponent", (*NUMBER_ROLES, "decimals"), make_exponent),
    "comma": number_class("comma", (*NUMBER_ROLES, "decimals"), make_comma),
    "plus_sign": number_class("plus sign", (*NUMBER_ROLES, "decimals"), make_plus),
    "leading_point": number_class("'.5'", (*NUMBER_ROLES, "decimals"), make_leading_point),
    "trailing_point": number_class("'5.'", (*NUMBER_ROLES, "decimals"), make_trailing_point),
    "too_many_decimals": number_class("too many decimals", NUMBER_ROLES, make_too_many_decimals),
    "overflow": number_class("overflow", NUMBER_ROLES, make_overflow),
    "negative": number_class("negative", (*UNSIGNED, "decimals"), make_negative),
    "non_ascii_digits": number_class(
        "non-ASCII digit", (*NUMBER_ROLES, "decimals"), make_non_ascii_digit
    ),
    "whitespace_padding": number_class(
        "whitespace", (*NUMBER_ROLES, "decimals", "id", "pos_id", "expiry"), make_padding
    ),
    "empty_value": empty_value(),
    "zero_where_positive": number_class("zero", POSITIVE, make_zero),
    "bad_price": bad_price(),
    "bad_decimals": bad_decimals(),
    "quantity_sign_and_range": quantity_sign_and_range(),
    # ids, symbols and duplicates
    "empty_id": empty_id(),
    "long_id": long_id(),
    "control_char_in_id": control_char_in_id(),
    "duplicate_account_id": duplicate_account_id(),
    "duplicate_instrument_id": duplicate_instrument_id(),
    "duplicate_symbol": duplicate_symbol(),
    "unknown_asset_symbol": unknown_asset_symbol(),
    "bad_symbol": bad_symbol(),
    "bad_instrument_id": bad_instrument_id(),
    # JSON
    "json_number_for_string": json_number_for_string(),
    "json_wrong_type": json_wrong_type(),
    "json_lone_surrogate": json_lone_surrogate(),
    "json_duplicate_key": json_duplicate_key(),
    "json_deep_nesting": json_deep_nesting(),
    "json_trailing_data": json_trailing_data(),
    # cross-file and domain rules
    "reserves_missing_asset": reserves_missing_asset(),
    "positions_unknown_account": positions_unknown_account(),
    "positions_unknown_instrument": positions_unknown_instrument(),
    "expiry_not_after_as_of": expiry_not_after_as_of(),
    "bad_time": bad_time(),
    "instrument_fields": instrument_fields(),
    "haircut_rate_above_one": haircut_rate_above_one(),
    "haircut_rising_rate": haircut_rising_rate(),
    "haircut_ladder_shape": haircut_ladder_shape(),
    "market_values_and_rows": market_values_and_rows(),
}


# --- running a case ---------------------------------------------------------------------------


def write_case(case: Case, folder: Path) -> None:
    for name, data in case.files.items():
        (folder / name).write_bytes(data)


def load_all(folder: Path, names: Names) -> tuple[Any, ...]:
    """Load every file as `zksolvency prove` does, in its order."""
    snapshot = load_snapshot(
        folder / names.snapshot, None if names.assets is None else folder / names.assets
    )
    reserves = load_reserves(folder / names.reserves, snapshot.assets)
    derivatives = load_derivatives(
        folder / names.instruments, folder / names.market, folder / names.positions, snapshot
    )
    return snapshot, reserves, derivatives, load_haircuts(folder / names.haircuts, snapshot.assets)


def describe(case: Case) -> str:
    e = case.expect
    return (
        f"{case.label}: expected {e.file}:{e.line} field {e.field!r}: {' ... '.join(e.fragments)}"
    )


def expected_text(folder: Path, e: Expect) -> str:
    where = str(folder / e.file) + ("" if e.line is None else f":{e.line}")
    return where + ("" if e.field is None else f": field {e.field!r}") + ": "


def check_error(err: SnapshotError, folder: Path, case: Case) -> None:
    """The error names exactly the expected file, line and field, and says what is wrong."""
    e = case.expect
    got = (err.file, err.line, err.field)
    assert got == (str(folder / e.file), e.line, e.field), f"{describe(case)}\n  got: {err}"
    assert str(err).startswith(expected_text(folder, e)), f"{describe(case)}\n  got: {err}"
    for fragment in e.fragments:
        assert fragment in err.message, f"{describe(case)}\n  got: {err}"


def run_case(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_case(case, folder)
        try:
            load_all(folder, case.names)
        except SnapshotError as err:
            check_error(err, folder, case)
        except Exception as exc:  # anything else escaping is a parser bug
            raise AssertionError(
                f"{describe(case)}\n  {type(exc).__name__} escaped: {exc}"
            ) from exc
        else:
            raise AssertionError(f"{describe(case)}\n  the input was accepted")


FAST = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MANY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", list(CLASSES))
@FAST
@given(data=st.data())
def test_malformed_input(name: str, data: st.DataObject) -> None:
    run_case(data.draw(CLASSES[name], label=name))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CLASSES))
@MANY
@given(data=st.data())
def test_malformed_input_many(name: str, data: st.DataObject) -> None:
    run_case(data.draw(CLASSES[name], label=name))


def test_catalogue_is_broad() -> None:
    assert len(CLASSES) >= 30


# --- what the formats tolerate ----------------------------------------------------------------


def load_files(names: Names, files: dict[str, bytes]) -> tuple[Any, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return load_all(folder, names)


def respell(draw: st.DrawFn, t: Target) -> str:
    """The same value written another accepted way."""
    if t.role in ("expiry", "as_of"):
        return t.text.replace("Z", "+00:00")
    if t.role == "decimals":
        return "0" * draw(st.sampled_from([1, 3, 5000])) + t.text
    sign, body = ("-", t.text[1:]) if t.text.startswith("-") else ("", t.text)
    body = "0" * draw(st.integers(0, 3)) + body
    zeros = "0" * draw(st.integers(1, 12))  # extra fractional zeros keep the value exact
    body += zeros if "." in body else "." + zeros
    if t.signed and not body.strip("0."):
        sign = "-"  # "-0" is 0
    return sign + body


@settings(FAST, max_examples=40)
@given(data=st.data())
def test_tolerated_spellings_read_alike(data: st.DataObject) -> None:
    """BOM, CRLF and blank lines (drawn by Build), leading zeros, extra fractional zeros, '-0',
    '+00:00' and decimals with thousands of leading zeros all read as the plain files do."""
    w = data.draw(worlds())
    plain = Build(w, data.draw, plain=True)
    expected = load_files(plain.names, plain.case("plain", Expect("", None, None, ())).files)
    b = Build(w, data.draw)
    for t in b.targets:
        if t.role in (*NUMBER_ROLES, "decimals", "expiry", "as_of") and data.draw(st.booleans()):
            t.put(respell(data.draw, t))
    assert load_files(b.names, b.case("respelled", Expect("", None, None, ())).files) == expected


@settings(FAST, max_examples=20)
@given(data=st.data())
def test_ids_are_compared_exactly(data: st.DataObject) -> None:
    """Case and Unicode-normalisation variants of an account id are other accounts (the format
    compares ids as exact strings), accepted side by side and kept apart in positions."""
    w = data.draw(worlds())
    base = data.draw(st.sampled_from(["alice", "Bob", "élodie", "Zürich", "Å"]))
    variants = dict.fromkeys(
        [
            base,
            base.swapcase(),
            unicodedata.normalize("NFD", base),
            unicodedata.normalize("NFC", base),
        ]
    )
    taken = {a for a, _, _ in w.accounts}
    ids = [v for v in variants if v not in taken]
    zeros = [0] * len(w.assets)
    w.accounts += [(v, list(zeros), list(zeros)) for v in ids]
    w.positions = [(v, [k + 1] * len(w.instruments)) for k, v in enumerate(ids)]
    b = Build(w, data.draw)
    snapshot, _, derivatives, _ = load_files(
        b.names, b.case("ids", Expect("", None, None, ())).files
    )
    assert [a.id for a in snapshot.accounts if a.id in ids] == ids
    assert {v: derivatives.positions_of(v)[0] for v in ids} == {
        v: (k + 1) for k, v in enumerate(ids)
    }


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[Names, dict[str, bytes]]:
    """A valid world with random bytes of one file overwritten, inserted or deleted."""
    b = Build(draw(worlds()), draw)
    files = b.case("valid", Expect("", None, None, ())).files
    name = draw(st.sampled_from(sorted(files)))
    data = bytearray(files[name])
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["set", "insert", "delete"]))
        chunk = draw(
            st.binary(min_size=1, max_size=4)
            | st.sampled_from([b"\n", b"\r", b'"', b",", b"{", b"[", b"\x00", b"-", b"e", b"\xff"])
        )
        if edit == "delete":
            del data[pos : pos + len(chunk)]
        elif edit == "insert":
            data[pos:pos] = chunk
        else:
            data[pos : pos + len(chunk)] = chunk
    files[name] = bytes(data)
    return b.names, files


def check_corrupted(case: tuple[Names, dict[str, bytes]]) -> None:
    names, files = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        try:
            load_all(folder, names)
        except SnapshotError as err:
            name = Path(err.file).name
            assert name in files, str(err)
            assert err.line is None or 1 <= err.line <= files[name].count(b"\n") + 1, str(err)


@settings(FAST, max_examples=100)
@given(corrupted())
def test_random_corruption_never_leaks(case: tuple[Names, dict[str, bytes]]) -> None:
    """Whatever the bytes, loading succeeds or raises a SnapshotError naming one of the files and
    a line inside it; no other exception type escapes."""
    check_corrupted(case)


@pytest.mark.slow
@settings(MANY, max_examples=5000)
@given(corrupted())
def test_random_corruption_never_leaks_many(case: tuple[Names, dict[str, bytes]]) -> None:
    check_corrupted(case)

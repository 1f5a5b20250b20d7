"""The exchange's snapshot: its assets (symbol, decimals, USD price) and every account's balances.

The formats are described in docs/snapshot-format.md. Parsing is exact: decimal strings become
integers at the asset's scale through string and integer operations only, never floats, and every
bad input stops with a SnapshotError naming the file, the line (Parquet: the row) and the field.
Accounts files in CSV, JSON Lines and Parquet are read as a stream (iter_accounts).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import importlib
import json
import os
import random
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, overload

import numpy as np

from .atomic import atomic_path

__all__ = [
    "AMOUNT_BITS",
    "MAX_AMOUNT",
    "MAX_DECIMALS",
    "MAX_ID_BYTES",
    "MAX_PRICE_E8",
    "PARQUET_BATCH_ROWS",
    "PARQUET_ROW_GROUP_ROWS",
    "PRICE_BITS",
    "PRICE_DECIMALS",
    "Account",
    "Asset",
    "Snapshot",
    "SnapshotError",
    "account_values",
    "format_amount",
    "iter_accounts",
    "load_assets",
    "load_snapshot",
    "parse_amount",
    "sample_snapshot",
    "write_snapshot_csv",
    "write_snapshot_json",
    "write_snapshot_jsonl",
    "write_snapshot_parquet",
]

MAX_DECIMALS = 18  # asset decimals are 0..18
PRICE_DECIMALS = 8  # prices are USD with at most 8 decimals, stored as integer USD * 10^8
AMOUNT_BITS = 64  # every equity and debt at the asset's scale fits in 64 bits
PRICE_BITS = 64  # every price_e8 fits in 64 bits (and is > 0)
MAX_AMOUNT = 2**AMOUNT_BITS - 1
MAX_PRICE_E8 = 2**PRICE_BITS - 1
MAX_ID_BYTES = 256

ASSETS_HEADER = ("symbol", "decimals", "price_usd")

StrPath = str | os.PathLike[str]

# [0-9], not \d: \d also matches other scripts' digits ("٣"), which int() would happily accept.
_DECIMAL_RE = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_EXPONENT_RE = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+")
_UINT_RE = re.compile(r"[0-9]+")
_SYMBOL_RE = re.compile(r"[A-Z0-9._-]{1,16}")


class SnapshotError(ValueError):
    """Bad snapshot input, located as `file:line: field 'name': message`.

    `line` is None when the problem is the file as a whole, `field` when it is not one field. In
    CSV and JSON Lines files `line` is the 1-based physical line (CSV header = 1); in JSON files
    it is the JSON text line for syntax errors and otherwise the 1-based position of the entry in
    its array. In Parquet files it is the 1-based row, `unit` is "row" and the location reads
    `file: row N: ...`, since a Parquet file has no lines.
    """

    def __init__(
        self, file: str, line: int | None, field: str | None, message: str, unit: str = "line"
    ) -> None:
        # All of them go to args so that the exception pickles (e.g. across multiprocessing).
        super().__init__(file, line, field, message, unit)
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        self.unit = unit

    def __str__(self) -> str:
        if self.line is None:
            where = self.file
        elif self.unit == "line":
            where = f"{self.file}:{self.line}"
        else:
            where = f"{self.file}: {self.unit} {self.line}"
        if self.field is not None:
            where += f": field {self.field!r}"
        return f"{where}: {self.message}"


# --- amounts ----------------------------------------------------------------------------------


def _show(text: str, limit: int = 40) -> str:
    """Quote user input for a message, shortened so that a huge bad cell stays readable."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _not_decimal_reason(text: str, what: str) -> str:
    """Say why `text` does not match [0-9]+(.[0-9]+)?, as specifically as is cheap."""
    if text == "":
        return f"empty {what}" + (" (write 0 for none)" if what == "amount" else "")
    if any(c.isspace() for c in text):
        return "whitespace is not allowed"
    if text.startswith("-"):
        return f"negative {what}"
    if text.startswith("+"):
        return "a '+' sign is not allowed"
    if _EXPONENT_RE.fullmatch(text):
        return "exponent notation is not allowed"
    if "," in text:
        return "commas are not allowed (use '.' as the decimal point, no thousands separators)"
    if text.startswith(".") and _DECIMAL_RE.fullmatch("0" + text):
        return "missing digits before the decimal point"
    if text.endswith(".") and _DECIMAL_RE.fullmatch(text[:-1]):
        return "missing digits after the decimal point"
    return "not a decimal number"


def _parse_scaled(text: str, decimals: int, max_value: int, what: str) -> int:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, not {type(text).__name__}")
    m = _DECIMAL_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"{_not_decimal_reason(text, what)} ({_show(text)})")
    whole, frac = m.group(1).lstrip("0"), m.group(2) or ""
    if len(frac) > decimals:
        # Extra digits are tolerated only when they are zeros: the value is still exact.
        if frac[decimals:].strip("0"):
            raise ValueError(f"more than {decimals} decimals ({_show(text)})")
        frac = frac[:decimals]
    # Bound the digit count before int(): a huge digit string would otherwise be converted in
    # full (and int() refuses more than 4300 digits). A value with this many digits is too big.
    if len(whole) + decimals > len(str(max_value)):
        value = max_value + 1
    else:
        value = int((whole + frac.ljust(decimals, "0")) or "0")
    if value > max_value:
        limit = format_amount(max_value, decimals)
        raise ValueError(
            f"over the {max_value.bit_length()}-bit limit: at most {limit} with {decimals} "
            f"decimals ({_show(text)})"
        )
    return value


def _check_decimals(decimals: int) -> None:
    if isinstance(decimals, bool) or not isinstance(decimals, int):
        raise TypeError(f"decimals must be an int, not {type(decimals).__name__}")
    if not 0 <= decimals <= MAX_DECIMALS:
        raise ValueError(f"decimals must be 0..{MAX_DECIMALS}, got {decimals}")


def parse_amount(text: str, decimals: int, max_bits: int = AMOUNT_BITS) -> int:
    """Parse an exact decimal string into an integer at scale 10^decimals, below 2^max_bits.

    Accepts `[0-9]+(.[0-9]+)?` only; fractional digits beyond `decimals` must be zeros. Raises
    ValueError whose message gives the reason and the quoted input. Balances use the default
    64 bits; reserves, which the solvency circuit range-checks to 128 bits, pass more.
    """
    _check_decimals(decimals)
    return _parse_scaled(text, decimals, (1 << max_bits) - 1, "amount")


def _parse_price(text: str) -> int:
    value = _parse_scaled(text, PRICE_DECIMALS, MAX_PRICE_E8, "price")
    if value == 0:
        raise ValueError(f"price must be greater than 0 ({_show(text)})")
    return value


def format_amount(value: int, decimals: int) -> str:
    """Render an integer at scale 10^decimals as a canonical decimal string (inverse of parse).

    Also renders values (not only amounts) at wider scales, such as USD values at 10^(8+18).
    """
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 64:
        raise ValueError(f"decimals must be an int in 0..64, got {decimals!r}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"amount must be a non-negative int, got {value!r}")
    digits = str(value).rjust(decimals + 1, "0")
    whole, frac = digits[: len(digits) - decimals], digits[len(digits) - decimals :].rstrip("0")
    return f"{whole}.{frac}" if frac else whole


# --- data model -------------------------------------------------------------------------------


def _symbol_problem(symbol: str) -> str | None:
    if _SYMBOL_RE.fullmatch(symbol):
        return None
    hint = " (symbols are upper case)" if _SYMBOL_RE.fullmatch(symbol.upper()) else ""
    return f"bad symbol {_show(symbol)}: use 1 to 16 of A-Z 0-9 . _ -{hint}"


def _id_problem(account_id: str) -> str | None:
    if account_id == "":
        return "empty account id"
    if account_id != account_id.strip():
        return f"account id has leading or trailing whitespace ({_show(account_id)})"
    # Tabs, newlines, zero-width and other invisible characters make ids that look alike but
    # differ, or that break line-oriented tools; printable text is all an id needs.
    if not account_id.isprintable():
        return f"account id contains non-printable characters ({_show(account_id)})"
    if len(account_id.encode("utf-8")) > MAX_ID_BYTES:
        return f"account id is longer than {MAX_ID_BYTES} UTF-8 bytes ({_show(account_id)})"
    return None


def _check_amounts(values: tuple[int, ...], what: str) -> None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_AMOUNT:
            raise ValueError(f"{what} amounts must be ints in 0..2^{AMOUNT_BITS}-1, got {v!r}")


@dataclass(frozen=True)
class Asset:
    """One asset: amounts of it are integers at scale 10^decimals; price_e8 = USD price * 10^8."""

    symbol: str
    decimals: int
    price_e8: int

    def __post_init__(self) -> None:
        problem = _symbol_problem(self.symbol) if isinstance(self.symbol, str) else "not a str"
        if problem:
            raise ValueError(f"Asset.symbol: {problem}")
        _check_decimals(self.decimals)
        p = self.price_e8
        if isinstance(p, bool) or not isinstance(p, int) or not 0 < p <= MAX_PRICE_E8:
            raise ValueError(f"Asset.price_e8 must be an int in 1..2^{PRICE_BITS}-1, got {p!r}")


@dataclass(frozen=True)
class Account:
    """One account's equity and debt per asset, in Snapshot.assets order, at each asset's scale.

    `line` (CSV or JSON Lines line, 1-based index in the JSON accounts array, or Parquet row) is
    for error messages only and takes no part in equality, so that a snapshot equals itself
    after a round trip through any of the formats.
    """

    id: str
    equity: tuple[int, ...]
    debt: tuple[int, ...]
    line: int = field(compare=False)

    def __post_init__(self) -> None:
        problem = _id_problem(self.id) if isinstance(self.id, str) else "not a str"
        if problem:
            raise ValueError(f"Account.id: {problem}")
        # Accept any sequence but store tuples, so that accounts stay immutable and hashable.
        object.__setattr__(self, "equity", tuple(self.equity))
        object.__setattr__(self, "debt", tuple(self.debt))
        if len(self.equity) != len(self.debt):
            raise ValueError(f"account {self.id!r}: equity and debt have different lengths")
        _check_amounts(self.equity, "equity")
        _check_amounts(self.debt, "debt")


def _trusted_account(
    account_id: str, equity: tuple[int, ...], debt: tuple[int, ...], line: int
) -> Account:
    """An Account from values an AccountTable checked when they went in: no checks again."""
    acc = object.__new__(Account)
    object.__setattr__(acc, "id", account_id)
    object.__setattr__(acc, "equity", equity)
    object.__setattr__(acc, "debt", debt)
    object.__setattr__(acc, "line", line)
    return acc


class AccountTable(Sequence[Account]):
    """Accounts stored column-wise: the amounts as unsigned 64-bit integers, the ids in one
    UTF-8 buffer. About 16 bytes per asset plus the id's length and 16 per account, where a
    tuple of Account objects costs some 500 bytes an account at 4 assets (5 GB at 10^7).
    Indexing builds the Account on the fly. Every account is checked when it is appended;
    repeated ids are the caller's to refuse (iter_accounts does)."""

    def __init__(self, n_assets: int) -> None:
        self.n_assets = n_assets
        self._ids = bytearray()
        self._ends = array("Q")  # end offset of each id in _ids
        self._amounts = array("Q")  # per account: n equity amounts, then n debt amounts
        self._lines = array("Q")

    @classmethod
    def of(cls, accounts: Iterable[Account], n_assets: int) -> AccountTable:
        table = cls(n_assets)
        for acc in accounts:
            table.append(acc)
        return table

    def append(self, acc: Account) -> None:
        if len(acc.equity) != self.n_assets:
            raise ValueError(f"every account needs exactly {self.n_assets} equity and debt amounts")
        self._ids += acc.id.encode()
        self._ends.append(len(self._ids))
        self._amounts.extend(acc.equity)
        self._amounts.extend(acc.debt)
        self._lines.append(acc.line)

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, i: int) -> Account: ...

    @overload
    def __getitem__(self, i: slice) -> list[Account]: ...

    def __getitem__(self, i: int | slice) -> Account | list[Account]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError("AccountTable index out of range")
        i %= n
        start = self._ends[i - 1] if i else 0
        a = self.n_assets
        row = self._amounts[2 * a * i : 2 * a * (i + 1)]
        return _trusted_account(
            self._ids[start : self._ends[i]].decode(),
            tuple(row[:a]),
            tuple(row[a:]),
            self._lines[i],
        )

    def id_at(self, i: int) -> str:
        return self._ids[self._ends[i - 1] if i else 0 : self._ends[i]].decode()

    def ids(self) -> Iterator[str]:
        """The ids in order, without building the accounts."""
        start, buf = 0, self._ids
        for end in self._ends:
            yield buf[start:end].decode()
            start = end

    def amount_matrix(self) -> np.ndarray:
        """The amounts as a read-only (accounts, 2 · assets) uint64 view, equity columns then
        debt: no copy at any size. The table cannot grow while the view is alive."""
        m = np.frombuffer(self._amounts, dtype=np.uint64).reshape(len(self), 2 * self.n_assets)
        m.flags.writeable = False
        return m

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != len(self):
            return NotImplemented if not isinstance(other, Sequence) else False
        return all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))


def account_ids(accounts: Sequence[Account]) -> Iterator[str]:
    return accounts.ids() if isinstance(accounts, AccountTable) else (a.id for a in accounts)


def account_id_at(accounts: Sequence[Account], i: int) -> str:
    return accounts.id_at(i) if isinstance(accounts, AccountTable) else accounts[i].id


def amount_matrix(accounts: Sequence[Account]) -> np.ndarray:
    """(accounts, 2 · assets) uint64: each account's equity amounts, then its debt amounts (a
    view of an AccountTable; a copy for other sequences, meant for small ones)."""
    if isinstance(accounts, AccountTable):
        return accounts.amount_matrix()
    return np.array([[*a.equity, *a.debt] for a in accounts], dtype=np.uint64)


def exact_sums(m: np.ndarray, axis: int = 0) -> np.ndarray:
    """Exact sums of uint64 amounts along `axis`, as Python ints (an object array): each
    amount is split into 32-bit halves, whose sums fit 64 bits for up to 2^32 terms."""
    if m.shape[axis] > 1 << 32:
        raise ValueError("exact_sums takes at most 2^32 terms")
    lo = (m & np.uint64(0xFFFFFFFF)).sum(axis=axis, dtype=np.uint64)
    hi = (m >> np.uint64(32)).sum(axis=axis, dtype=np.uint64)
    out: np.ndarray = hi.astype(object) * (1 << 32) + lo.astype(object)
    return out


@dataclass(frozen=True)
class Snapshot:
    """The assets and the accounts; `source` (where it was read from) takes no part in equality.

    `accounts` is a tuple, or an AccountTable for snapshots read from a file (compact at any
    size; its reader has already refused repeated ids)."""

    assets: tuple[Asset, ...]
    accounts: Sequence[Account]
    source: str = field(compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "assets", tuple(self.assets))
        table = isinstance(self.accounts, AccountTable)
        if not table:
            object.__setattr__(self, "accounts", tuple(self.accounts))
        if not self.assets:
            raise ValueError("a snapshot needs at least one asset")
        if not self.accounts:
            raise ValueError("a snapshot needs at least one account")
        if len({a.symbol for a in self.assets}) != len(self.assets):
            raise ValueError("asset symbols must be unique")
        n = len(self.assets)
        if isinstance(self.accounts, AccountTable):
            if self.accounts.n_assets != n:
                raise ValueError(f"every account needs exactly {n} equity and debt amounts")
            return
        if any(len(acc.equity) != n for acc in self.accounts):
            raise ValueError(f"every account needs exactly {n} equity and debt amounts")
        if len({acc.id for acc in self.accounts}) != len(self.accounts):
            raise ValueError("account ids must be unique")


def account_values(snapshot: Snapshot, account: Account) -> tuple[int, int]:
    """(equity value, debt value) as sum(amount * price_e8 * 10^(max decimals - decimals)).

    The factor lifts every asset to the largest scale in the snapshot, so values of different
    assets add up exactly; the unit is USD * 10^(8 + max decimals).
    """
    top = max(a.decimals for a in snapshot.assets)
    mult = [a.price_e8 * 10 ** (top - a.decimals) for a in snapshot.assets]
    equity = sum(v * m for v, m in zip(account.equity, mult, strict=True))
    debt = sum(v * m for v, m in zip(account.debt, mult, strict=True))
    return equity, debt


# --- reading files ----------------------------------------------------------------------------


def _open_binary(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as e:
        raise SnapshotError(str(path), None, None, f"cannot read: {e.strerror}") from None


def _utf8_lines(fh: IO[bytes], file: str) -> Iterator[str]:
    """Decode line by line, so that a bad byte is reported with its line (UTF-8 never puts 0x0A
    inside a multi-byte character, so splitting bytes at newlines is safe)."""
    for n, raw in enumerate(fh, 1):
        if n == 1 and raw.startswith(codecs.BOM_UTF8):  # spreadsheet exports often start so
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SnapshotError(
                file,
                n,
                None,
                f"not valid UTF-8 (byte 0x{raw[e.start]:02x}, byte {e.start + 1} of the line); "
                "save the file as UTF-8",
            ) from None
        yield text


def _csv_records(fh: IO[bytes], file: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (first physical line, cells) for each non-blank CSV record."""
    reader = csv.reader(_utf8_lines(fh, file), strict=True)
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            # Report the line the broken record starts on, as for every other error in it: an
            # unclosed quote makes the reader run on to the end of the file, far from the quote.
            start, reached = end + 1, reader.line_num
            upto = f" (in the record from here to line {reached})" if reached != start else ""
            raise SnapshotError(file, start, None, f"malformed CSV: {e}{upto}") from None
        # A quoted cell may span lines; report the line where the record starts.
        start, end = end + 1, reader.line_num
        if row:  # blank lines carry nothing; skipping them tolerates a trailing empty line
            yield start, row


class _JsonNumber:
    """A JSON number kept as its source text: no float is ever made, and numbers where strings
    belong can be reported as written."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _DupKeys(dict[str, Any]):
    """A JSON object that repeated a key (json keeps the last one silently); checked on use."""

    duplicate = ""


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    dup = _DupKeys(obj)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            dup.duplicate = key
            break
        seen.add(key)
    return dup


MAX_JSON_DEPTH = 32  # a snapshot needs 4 levels; anything far deeper is not a snapshot


def _too_deep(text: str) -> int | None:
    """Line where bracket nesting (outside strings) first exceeds MAX_JSON_DEPTH, else None."""
    depth = 0
    in_string = escaped = False
    for pos, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return text.count("\n", 0, pos) + 1
        elif ch in "]}":
            depth -= 1
    return None


def _read_json(path: Path) -> Any:
    file = str(path)
    with _open_binary(path) as fh:
        data = fh.read()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise SnapshotError(
            file,
            line,
            None,
            f"not valid UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8",
        ) from None
    if not text.strip():
        raise SnapshotError(file, None, None, "empty file")
    depth_line = _too_deep(text)
    if depth_line is not None:
        # json's C scanner can overflow the C stack (a crash, not a RecursionError) long before
        # Python's recursion limit when run in a deep call stack, so refuse deep nesting first.
        raise SnapshotError(
            file, depth_line, None, f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return json.loads(
            text,
            parse_float=_JsonNumber,
            parse_int=_JsonNumber,
            parse_constant=_JsonNumber,
            object_pairs_hook=_object_pairs,
        )
    except json.JSONDecodeError as e:
        raise SnapshotError(
            file, e.lineno, None, f"invalid JSON: {e.msg} (column {e.colno})"
        ) from None
    except RecursionError:
        raise SnapshotError(file, None, None, "invalid JSON: nested too deeply") from None


def _is_json(path: Path) -> bool:
    """Decide by extension; for other names look at the first character ('{' or '[')."""
    suffix = path.suffix.lower()
    if suffix in (".json", ".csv"):
        return suffix == ".json"
    with _open_binary(path) as fh:
        head = fh.read(4096)
    head = head.removeprefix(codecs.BOM_UTF8).lstrip()
    return head[:1] in (b"{", b"[")


def _json_kind(value: Any) -> str:
    if isinstance(value, _JsonNumber):
        return f"JSON number {value.text}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    return "an array" if isinstance(value, list) else "a string"


def _unknown_asset(symbol: str, assets: Sequence[Asset], limit: int = 10) -> str:
    symbols = [a.symbol for a in assets]
    known = ", ".join(symbols[:limit]) + (", ..." if len(symbols) > limit else "")
    hint = "; symbols are case-sensitive" if symbol.upper() in symbols else ""
    return f"unknown asset {symbol!r} (assets: {known}{hint})"


class _Json:
    """Validation helpers bound to one JSON file."""

    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, line: int | None, field: str | None, message: str) -> SnapshotError:
        return SnapshotError(self.file, line, field, message)

    def obj(
        self, value: Any, line: int | None, field: str | None, what: str, keys: Sequence[str]
    ) -> dict[str, Any]:
        """Check that `value` is an object whose keys are among `keys`, none repeated."""
        if not isinstance(value, dict):
            raise self.error(line, field, f"{what} must be a JSON object, not {_json_kind(value)}")
        prefix = f"{field}." if field else ""
        if isinstance(value, _DupKeys):
            raise self.error(line, prefix + value.duplicate, "key appears more than once")
        for key in value:
            if keys and key not in keys:
                expected = ", ".join(repr(k) for k in keys)
                raise self.error(line, prefix + key, f"unknown key; expected {expected}")
        return value

    def require(self, obj: dict[str, Any], line: int | None, keys: Sequence[str]) -> None:
        for key in keys:
            if key not in obj:
                raise self.error(line, key, "missing key")

    def array(self, value: Any, field: str, what: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.error(None, field, f"must be a JSON array, not {_json_kind(value)}")
        if not value:
            raise self.error(None, field, f"no {what}")
        return value

    def assets(self, value: Any) -> tuple[Asset, ...]:
        builder = _AssetBuilder(self.file, "entry")
        for i, entry in enumerate(self.array(value, "assets", "assets"), 1):
            obj = self.obj(entry, i, None, "an asset", ASSETS_HEADER)
            self.require(obj, i, ASSETS_HEADER)
            symbol, decimals, price = obj["symbol"], obj["decimals"], obj["price_usd"]
            if not isinstance(symbol, str):
                raise self.error(i, "symbol", f"must be a string, not {_json_kind(symbol)}")
            if not isinstance(decimals, _JsonNumber):
                raise self.error(
                    i, "decimals", f"must be a JSON integer, not {_json_kind(decimals)}"
                )
            if not isinstance(price, str):
                raise self.error(
                    i, "price_usd", f"prices must be strings, not {_json_kind(price)}; quote it"
                )
            builder.add(i, symbol, decimals.text, price)
        return builder.done()

    def account(
        self, entry: Any, i: int, assets: tuple[Asset, ...], index: dict[str, int]
    ) -> Account:
        obj = self.obj(entry, i, None, "an account", ("id", "equity", "debt"))
        self.require(obj, i, ("id",))
        account_id = obj["id"]
        if not isinstance(account_id, str):
            raise self.error(i, "id", f"account ids must be strings, not {_json_kind(account_id)}")
        problem = _id_problem(account_id)
        if problem:
            raise self.error(i, "id", problem)
        parts: list[tuple[int, ...]] = []
        for part in ("equity", "debt"):
            amounts = [0] * len(assets)  # a missing key means 0
            balances = self.obj(obj.get(part, {}), i, part, f"'{part}'", ())
            for symbol, text in balances.items():
                name = f"{part}.{symbol}"
                k = index.get(symbol)
                if k is None:
                    raise self.error(i, name, _unknown_asset(symbol, assets))
                if not isinstance(text, str):
                    raise self.error(
                        i, name, f"amounts must be strings, not {_json_kind(text)}; quote it"
                    )
                try:
                    amounts[k] = parse_amount(text, assets[k].decimals)
                except ValueError as e:
                    raise self.error(i, name, str(e)) from None
            parts.append(tuple(amounts))
        return Account(account_id, parts[0], parts[1], i)


class _AssetBuilder:
    """Validate asset rows (CSV or JSON) into Assets, rejecting repeated symbols."""

    def __init__(self, file: str, unit: str) -> None:
        self.file, self.unit = file, unit  # unit: how `line` reads in messages, "line"/"entry"
        self.first: dict[str, int] = {}
        self.assets: list[Asset] = []

    def add(self, line: int, symbol: str, decimals_text: str, price_text: str) -> None:
        problem = _symbol_problem(symbol)
        if problem:
            raise SnapshotError(self.file, line, "symbol", problem)
        if symbol in self.first:
            raise SnapshotError(
                self.file,
                line,
                "symbol",
                f"duplicate asset symbol {symbol!r} (first at {self.unit} {self.first[symbol]})",
            )
        self.first[symbol] = line
        # Leading zeros are fine, so they are stripped before int() as well as before the length
        # test: "000...08" with more than 4300 digits would make int() raise a bare ValueError.
        digits = decimals_text.lstrip("0")
        if (
            not _UINT_RE.fullmatch(decimals_text)
            or len(digits) > 2
            or int(digits or "0") > MAX_DECIMALS
        ):
            raise SnapshotError(
                self.file,
                line,
                "decimals",
                f"decimals must be an integer from 0 to {MAX_DECIMALS} ({_show(decimals_text)})",
            )
        try:
            price = _parse_price(price_text)
        except ValueError as e:
            raise SnapshotError(self.file, line, "price_usd", str(e)) from None
        self.assets.append(Asset(symbol, int(digits or "0"), price))

    def done(self) -> tuple[Asset, ...]:
        if not self.assets:
            raise SnapshotError(self.file, None, None, "no assets after the header")
        return tuple(self.assets)


def _load_assets_csv(path: Path) -> tuple[Asset, ...]:
    file = str(path)
    builder = _AssetBuilder(file, "line")
    with _open_binary(path) as fh:
        records = _csv_records(fh, file)
        first = next(records, None)
        if first is None:
            raise SnapshotError(file, None, None, "empty file")
        line, header = first
        if tuple(header) != ASSETS_HEADER:
            raise SnapshotError(
                file,
                line,
                None,
                f"expected the header {','.join(ASSETS_HEADER)!r}, found {','.join(header)!r}",
            )
        for line, row in records:
            if len(row) != len(ASSETS_HEADER):
                raise SnapshotError(file, line, None, f"expected 3 cells, found {len(row)}")
            builder.add(line, row[0], row[1], row[2])
    return builder.done()


def _load_assets_json(path: Path) -> tuple[Asset, ...]:
    j = _Json(str(path))
    raw = _read_json(path)
    if isinstance(raw, list):
        return j.assets(raw)
    if isinstance(raw, dict) and "accounts" in raw:
        raise j.error(
            None, None, "this is a whole JSON snapshot; pass it alone, without an assets file"
        )
    top = j.obj(raw, None, None, "an assets file", ("assets",))
    j.require(top, None, ("assets",))
    return j.assets(top["assets"])


def load_assets(path: StrPath) -> tuple[Asset, ...]:
    """Read the assets file: CSV with header `symbol,decimals,price_usd`, or JSON (a list of
    {"symbol", "decimals", "price_usd"} objects, or {"assets": [...]})."""
    path = Path(path)
    return _load_assets_json(path) if _is_json(path) else _load_assets_csv(path)


def csv_header(
    file: str, line: int | None, header: list[str], check: Callable[[str], None]
) -> tuple[int, dict[str, int]]:
    """Check a CSV header keyed by an `id` column: (id column, {other name: column}).

    Names must be unique, non-empty and free of surrounding whitespace; `check` judges what
    each other name means, in column order, before a missing `id` is reported. Shared by the
    accounts and positions files, and by the columns of a Parquet accounts file (line None).
    """
    where: dict[str, int] = {}
    for col, name in enumerate(header):
        if name in where:
            raise SnapshotError(
                file, line, name, f"duplicate column (columns {where[name] + 1} and {col + 1})"
            )
        where[name] = col
        if name == "id":
            continue
        if name == "":
            raise SnapshotError(file, line, name, "empty column name (a trailing comma?)")
        if name != name.strip():
            raise SnapshotError(file, line, name, "column name has surrounding whitespace")
        check(name)
    if "id" not in where:
        raise SnapshotError(file, line, "id", "missing column")
    id_col = where.pop("id")
    return id_col, where


def _account_columns(
    file: str, line: int | None, header: list[str], assets: tuple[Asset, ...]
) -> tuple[int, list[int], list[int]]:
    """Map the accounts CSV header to (id column, equity columns, debt columns) per asset."""
    if tuple(header) == ASSETS_HEADER:
        raise SnapshotError(file, line, None, "this is an assets file, not an accounts CSV")
    index = {a.symbol: k for k, a in enumerate(assets)}

    def check(name: str) -> None:
        if name.endswith("_equity"):
            symbol = name[: -len("_equity")]
        elif name.endswith("_debt"):
            symbol = name[: -len("_debt")]
        else:
            problem = "unexpected column; expected 'id', '<SYMBOL>_equity' or '<SYMBOL>_debt'"
            raise SnapshotError(file, line, name, problem)
        if symbol not in index:
            raise SnapshotError(file, line, name, _unknown_asset(symbol, assets))

    id_col, where = csv_header(file, line, header, check)
    for name in (f"{a.symbol}_{kind}" for a in assets for kind in ("equity", "debt")):
        if name not in where:
            raise SnapshotError(file, line, name, "missing column")
    equity = [where[f"{a.symbol}_equity"] for a in assets]
    debt = [where[f"{a.symbol}_debt"] for a in assets]
    return id_col, equity, debt


class _Rows:
    """Turn rows of an id and amount texts (CSV cells, Parquet values) into Accounts.

    The amounts come in `names` order: every asset's equity, then every asset's debt.
    """

    def __init__(self, file: str, unit: str, assets: tuple[Asset, ...]) -> None:
        self.file, self.unit, self.n = file, unit, len(assets)
        self.names = [f"{a.symbol}_{kind}" for kind in ("equity", "debt") for a in assets]
        self.decimals = [a.decimals for a in assets] * 2

    def error(self, line: int, field: str | None, message: str) -> SnapshotError:
        return SnapshotError(self.file, line, field, message, self.unit)

    def account(self, line: int, account_id: str | None, texts: Sequence[str | None]) -> Account:
        if account_id is None:  # Parquet null
            raise self.error(line, "id", "missing account id (null)")
        problem = _id_problem(account_id)
        if problem:
            raise self.error(line, "id", problem)
        amounts: list[int] = []
        for text, decimals, name in zip(texts, self.decimals, self.names, strict=True):
            if text == "0":  # most cells of a wide file: no need to parse
                amounts.append(0)
                continue
            if text is None:
                raise self.error(line, name, "missing amount (null); write 0 for none")
            try:
                # parse_amount without re-checking the asset's decimals on every cell.
                amounts.append(_parse_scaled(text, decimals, MAX_AMOUNT, "amount"))
            except ValueError as e:
                raise self.error(line, name, str(e)) from None
        # Both checks Account makes are done above (id, then each amount against MAX_AMOUNT).
        return _trusted_account(
            account_id, tuple(amounts[: self.n]), tuple(amounts[self.n :]), line
        )


def _csv_accounts(path: Path, assets: tuple[Asset, ...]) -> Iterator[Account]:
    file = str(path)
    rows = _Rows(file, "line", assets)
    count = 0
    with _open_binary(path) as fh:
        records = _csv_records(fh, file)
        first = next(records, None)
        if first is None:
            raise SnapshotError(file, None, None, "empty file")
        header_line, header = first
        id_col, eq_cols, debt_cols = _account_columns(file, header_line, header, assets)
        amount_cols = eq_cols + debt_cols
        for line, row in records:
            if len(row) != len(header):
                raise SnapshotError(
                    file,
                    line,
                    None,
                    f"expected {len(header)} cells as in the header, found {len(row)}",
                )
            yield rows.account(line, row[id_col], [row[col] for col in amount_cols])
            count += 1
    if not count:
        raise SnapshotError(file, None, None, "no accounts after the header")


_JSON_SPACE = " \t\r\n"
# As _read_json decodes, made once: json.loads would build a decoder for every line.
_LINE_DECODER = json.JSONDecoder(
    parse_float=_JsonNumber,
    parse_int=_JsonNumber,
    parse_constant=_JsonNumber,
    object_pairs_hook=_object_pairs,
)


def _jsonl_accounts(path: Path, assets: tuple[Asset, ...]) -> Iterator[Account]:
    file = str(path)
    j = _Json(file)
    index = {a.symbol: k for k, a in enumerate(assets)}
    blank: int | None = None  # the first blank line
    count = 0
    with _open_binary(path) as fh:
        for n, text in enumerate(_utf8_lines(fh, file), 1):
            if not text.strip(_JSON_SPACE):
                blank = blank or n
            elif blank is not None:
                break  # a blank line between accounts
            else:
                yield _jsonl_account(j, text, n, assets, index)
                count += 1
        else:
            if not count:  # nothing, or blank lines only
                raise SnapshotError(file, None, None, "empty file")
            if blank is None:
                return
    raise SnapshotError(
        file,
        blank,
        None,
        "blank line: JSON Lines holds one account on every line (only the last line may end "
        "with a newline)",
    )


def _jsonl_account(
    j: _Json, text: str, n: int, assets: tuple[Asset, ...], index: dict[str, int]
) -> Account:
    # Counting brackets runs at C speed; the exact (and slow) scan only when it could matter.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _too_deep(text) is not None:
        raise j.error(n, None, f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        entry = _LINE_DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise j.error(n, None, f"invalid JSON: {e.msg} (column {e.colno})") from None
    except RecursionError:
        raise j.error(n, None, "invalid JSON: nested too deeply") from None
    if isinstance(entry, dict) and "accounts" in entry and "id" not in entry:
        raise j.error(
            n, None, "this is a whole JSON snapshot on one line; name it .json and pass it alone"
        )
    return j.account(entry, n, assets, index)


_PARQUET_MAGIC = b"PAR1"
PARQUET_BATCH_ROWS = 1024  # rows turned into Python objects at a time: bounds the memory used
PARQUET_ROW_GROUP_ROWS = 65536  # rows per row group written: bounds what a reader decodes at once
_ARROW_STRINGS = ("string", "large_string", "string_view")


def _arrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, imported on first use.

    The import takes ~0.2 s, which only Parquet users should pay; the modules carry no type
    information, so they are typed Any.
    """
    return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")


def _arrow_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _parquet_magic(fh: IO[bytes], file: str) -> None:
    """Refuse files that are not Parquet, or are cut short, before pyarrow sees them."""
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        raise SnapshotError(file, None, None, "empty file")
    fh.seek(0)
    if fh.read(4) != _PARQUET_MAGIC:
        raise SnapshotError(file, None, None, "not a Parquet file: it does not start with 'PAR1'")
    fh.seek(max(size - 4, 0))
    if size < 12 or fh.read(4) != _PARQUET_MAGIC:
        raise SnapshotError(
            file,
            None,
            None,
            "truncated or damaged Parquet file: it does not end with 'PAR1' (cut short?)",
        )
    fh.seek(0)


def _parquet_column_problem(pa: Any, name: str, dtype: Any) -> str | None:
    """Why a column's Arrow type cannot hold ids or decimal amounts, or None if it can."""
    kind = str(dtype.value_type) if pa.types.is_dictionary(dtype) else str(dtype)
    if kind in _ARROW_STRINGS:
        return None
    if name == "id":
        return f"account ids must be strings; this column holds {dtype}"
    if pa.types.is_floating(dtype):
        return (
            f"column of {dtype}: floats cannot hold amounts exactly; store decimal strings "
            "such as '1.5'"
        )
    if pa.types.is_integer(dtype) or pa.types.is_decimal(dtype):
        # One meaning for every format: an integer column would leave open whether it counts
        # whole units or the smallest ones.
        return f"column of {dtype}: store amounts as decimal strings such as '1.5', as in CSV"
    return f"amounts must be a string column of decimal text such as '1.5', not {dtype}"


def _utf8_problem(column: Any) -> tuple[int, str]:
    """(0-based row, message) of the first value in `column` that is not UTF-8."""
    for r in range(len(column)):
        try:
            column[r].as_py()
        except UnicodeDecodeError as e:
            byte = e.object[e.start]
            return r, f"not valid UTF-8 (byte 0x{byte:02x}, byte {e.start + 1} of the value)"
    raise AssertionError("no value of the column fails to decode")


def _parquet_accounts(path: Path, assets: tuple[Asset, ...]) -> Iterator[Account]:
    pa, pq = _arrow()
    file = str(path)
    rows = _Rows(file, "row", assets)
    done = 0
    with _open_binary(path) as fh:
        _parquet_magic(fh, file)
        try:
            # No pre-buffering: it would read a whole row group's columns before the first row.
            reader = pq.ParquetFile(fh, pre_buffer=False)
            schema = reader.schema_arrow
        except (pa.ArrowException, OSError) as e:
            raise SnapshotError(
                file, None, None, f"damaged Parquet file: {_arrow_message(e)}"
            ) from None
        names = [str(n) for n in schema.names]
        id_col, eq_cols, debt_cols = _account_columns(file, None, names, assets)
        for name, dtype in zip(names, schema.types, strict=True):
            problem = _parquet_column_problem(pa, name, dtype)
            if problem:
                raise SnapshotError(file, None, name, problem)
        order = [id_col, *eq_cols, *debt_cols]
        batches = reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as e:
                raise SnapshotError(
                    file, done + 1, None, f"damaged Parquet file: {_arrow_message(e)}", "row"
                ) from None
            if batch is None:
                break
            columns: list[list[str | None]] = []
            for col in order:
                try:
                    columns.append(batch.column(col).to_pylist())
                except UnicodeDecodeError:
                    r, message = _utf8_problem(batch.column(col))
                    raise SnapshotError(file, done + r + 1, names[col], message, "row") from None
            for row, values in enumerate(zip(*columns, strict=True), done + 1):
                yield rows.account(row, values[0], values[1:])
            done += batch.num_rows
    if not done:
        raise SnapshotError(file, None, None, "no accounts (the file has no rows)")


def _json_accounts(path: Path, assets: tuple[Asset, ...]) -> Iterator[Account]:
    snapshot = _load_snapshot_json(path)
    if snapshot.assets != assets:
        raise SnapshotError(
            str(path),
            None,
            "assets",
            "the snapshot's own assets differ from the assets given; its accounts are in its "
            "own assets' order",
        )
    yield from snapshot.accounts


_READERS: dict[str, Callable[[Path, tuple[Asset, ...]], Iterator[Account]]] = {
    "csv": _csv_accounts,
    "jsonl": _jsonl_accounts,
    "parquet": _parquet_accounts,
    "json": _json_accounts,
}
_FORMAT_NAMES = {"csv": "CSV", "jsonl": "JSON Lines", "parquet": "Parquet", "json": "JSON"}
_SUFFIXES = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}


def _accounts_format(path: Path) -> str:
    """Decide by extension; for other names look at the start: 'PAR1' is Parquet, '{' or '['
    JSON, anything else CSV (JSON Lines needs its extension: its first line looks like JSON)."""
    known = _SUFFIXES.get(path.suffix.lower())
    if known is not None:
        return known
    with _open_binary(path) as fh:
        head = fh.read(4096)
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    head = head.removeprefix(codecs.BOM_UTF8).lstrip()
    return "json" if head[:1] in (b"{", b"[") else "csv"


def _id_digest(account_id: str) -> bytes:
    return hashlib.blake2b(account_id.encode("utf-8"), digest_size=8).digest()


class _SeenIds:
    """The account ids read so far, as 8-byte digests packed in one buffer.

    A Python set of the ids, or of 16-byte digests of them, costs 80-100 bytes per account in
    CPython (~1 GB at 10^7 accounts); the packed digests cost 8. Repeats are looked for once, at
    the end, by sorting, and every repeated digest is then checked against the ids themselves,
    so a digest collision never refuses a good file.
    """

    def __init__(self) -> None:
        self.packed = bytearray()

    def add(self, account_id: str) -> None:
        self.packed += _id_digest(account_id)

    def repeated(self) -> set[bytes]:
        digests = np.frombuffer(self.packed, dtype=np.uint64)
        digests.sort()  # in place: the buffer is not needed in its order any more
        same = digests[1:][digests[1:] == digests[:-1]]
        return {d.tobytes() for d in np.unique(same)}


def _duplicate_id(
    path: Path, fmt: str, assets: tuple[Asset, ...], repeated: set[bytes]
) -> SnapshotError | None:
    """Read the file again for the first account whose id an earlier one already had."""
    unit = "row" if fmt == "parquet" else "line"
    first: dict[str, int] = {}
    for account in _READERS[fmt](path, assets):
        if _id_digest(account.id) in repeated:
            seen = first.setdefault(account.id, account.line)
            if seen != account.line:
                message = f"duplicate account id {account.id!r} (first at {unit} {seen})"
                return SnapshotError(str(path), account.line, "id", message, unit)
    return None


def iter_accounts(path: StrPath, assets: Sequence[Asset]) -> Iterator[Account]:
    """Yield the accounts of an accounts file one at a time, in file order, checked as
    load_snapshot checks them; `assets` are the snapshot's (from load_assets).

    CSV, JSON Lines and Parquet are streamed: memory stays bounded by one line or one Parquet
    batch, plus 8 bytes per account for the duplicate-id check. A JSON snapshot is a single
    document and is parsed whole; its own assets must equal `assets`.

    A SnapshotError can come at any point, also after the last account (repeated ids are known
    only once the whole file has been read): act on the accounts only once the iterator is done.
    """
    path = Path(path)
    assets = tuple(assets)
    if not assets:
        raise ValueError("iter_accounts needs the snapshot's assets")
    fmt = _accounts_format(path)
    seen = _SeenIds()
    for account in _READERS[fmt](path, assets):
        seen.add(account.id)
        yield account
    repeated = seen.repeated()
    if repeated:
        error = _duplicate_id(path, fmt, assets, repeated)
        if error is not None:
            raise error


def _load_snapshot_json(path: Path) -> Snapshot:
    j = _Json(str(path))
    top = j.obj(_read_json(path), None, None, "a JSON snapshot", ("assets", "accounts"))
    j.require(top, None, ("assets", "accounts"))
    assets = j.assets(top["assets"])
    index = {a.symbol: k for k, a in enumerate(assets)}
    first: dict[str, int] = {}
    accounts: list[Account] = []
    for i, entry in enumerate(j.array(top["accounts"], "accounts", "accounts"), 1):
        account = j.account(entry, i, assets, index)
        seen = first.setdefault(account.id, i)
        if seen != i:
            raise j.error(i, "id", f"duplicate account id {account.id!r} (first at entry {seen})")
        accounts.append(account)
    return Snapshot(assets, tuple(accounts), str(path))


def load_snapshot(accounts: StrPath, assets: StrPath | None = None) -> Snapshot:
    """Read a snapshot: one JSON file, or an accounts file (CSV, JSON Lines or Parquet) plus its
    assets file (CSV or JSON)."""
    accounts = Path(accounts)
    fmt = _accounts_format(accounts)
    if fmt == "json":
        if assets is not None:
            raise SnapshotError(
                str(accounts),
                None,
                None,
                f"a JSON snapshot holds its own assets; do not also give an assets file ({assets})",
            )
        return _load_snapshot_json(accounts)
    if assets is None:
        raise SnapshotError(
            str(accounts),
            None,
            None,
            f"a {_FORMAT_NAMES[fmt]} snapshot needs its assets file (symbol,decimals,price_usd) "
            "given as well",
        )
    asset_list = load_assets(assets)
    table = AccountTable.of(iter_accounts(accounts, asset_list), len(asset_list))
    return Snapshot(asset_list, table, f"{accounts} + {assets}")


# --- writing ----------------------------------------------------------------------------------


def _asset_json(asset: Asset) -> dict[str, Any]:
    price = format_amount(asset.price_e8, PRICE_DECIMALS)
    return {"symbol": asset.symbol, "decimals": asset.decimals, "price_usd": price}


def _account_json(assets: tuple[Asset, ...], account: Account) -> dict[str, Any]:
    """An account as in a JSON snapshot or a JSON Lines file, zero balances left out."""
    entry: dict[str, Any] = {"id": account.id}
    for part, values in (("equity", account.equity), ("debt", account.debt)):
        entry[part] = {
            a.symbol: format_amount(v, a.decimals) for a, v in zip(assets, values, strict=True) if v
        }
    return entry


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _write_assets(assets: tuple[Asset, ...], path: Path) -> None:
    """The assets file: JSON ({"assets": [...]}) if its name ends in .json, CSV otherwise."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        if path.suffix.lower() == ".json":
            entries = ",\n".join(f"    {_dumps(_asset_json(a))}" for a in assets)
            fh.write(f'{{\n  "assets": [\n{entries}\n  ]\n}}\n')
            return
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(ASSETS_HEADER)
        for a in assets:
            w.writerow([a.symbol, a.decimals, format_amount(a.price_e8, PRICE_DECIMALS)])


def write_snapshot_json(snapshot: Snapshot, path: StrPath) -> None:
    """Write one JSON snapshot, an entry per line; zero balances are left out (missing = 0)."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write('{\n  "assets": [\n')
        fh.write(",\n".join(f"    {_dumps(_asset_json(a))}" for a in snapshot.assets))
        fh.write('\n  ],\n  "accounts": [\n')
        for k, acc in enumerate(snapshot.accounts):
            entry = _account_json(snapshot.assets, acc)
            fh.write(("" if k == 0 else ",\n") + f"    {_dumps(entry)}")
        fh.write("\n  ]\n}\n")


def _csv_header_row(assets: tuple[Asset, ...]) -> list[str]:
    return ["id"] + [f"{a.symbol}_{kind}" for a in assets for kind in ("equity", "debt")]


def write_snapshot_csv(snapshot: Snapshot, accounts_path: StrPath, assets_path: StrPath) -> None:
    """Write the accounts CSV (every cell explicit, zeros as 0) and the assets file (CSV, or
    JSON if its name ends in .json)."""
    _write_assets(snapshot.assets, Path(assets_path))
    with (
        atomic_path(Path(accounts_path)) as tmp,
        open(tmp, "w", encoding="utf-8", newline="") as fh,
    ):
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(_csv_header_row(snapshot.assets))
        for acc in snapshot.accounts:
            row = [acc.id]
            for a, eq, debt in zip(snapshot.assets, acc.equity, acc.debt, strict=True):
                row += [format_amount(eq, a.decimals), format_amount(debt, a.decimals)]
            w.writerow(row)


def write_snapshot_jsonl(snapshot: Snapshot, accounts_path: StrPath, assets_path: StrPath) -> None:
    """Write the accounts as JSON Lines (one account per line, zero balances left out) and the
    assets file (CSV, or JSON if its name ends in .json)."""
    _write_assets(snapshot.assets, Path(assets_path))
    with (
        atomic_path(Path(accounts_path)) as tmp,
        open(tmp, "w", encoding="utf-8", newline="\n") as fh,
    ):
        for acc in snapshot.accounts:
            fh.write(_dumps(_account_json(snapshot.assets, acc)) + "\n")


def write_snapshot_parquet(
    snapshot: Snapshot, accounts_path: StrPath, assets_path: StrPath
) -> None:
    """Write the accounts as Parquet (the CSV's columns, every amount a decimal string, zeros
    as 0) in row groups of PARQUET_ROW_GROUP_ROWS, and the assets file (CSV, or JSON if its
    name ends in .json)."""
    pa, pq = _arrow()
    _write_assets(snapshot.assets, Path(assets_path))
    names = _csv_header_row(snapshot.assets)
    schema = pa.schema([pa.field(name, pa.string(), nullable=False) for name in names])
    accounts = snapshot.accounts
    with atomic_path(Path(accounts_path)) as tmp, pq.ParquetWriter(str(tmp), schema) as writer:
        for start in range(0, len(accounts), PARQUET_ROW_GROUP_ROWS):
            chunk = accounts[start : start + PARQUET_ROW_GROUP_ROWS]
            columns: list[list[str]] = [[acc.id for acc in chunk]]
            for k, a in enumerate(snapshot.assets):
                columns.append([format_amount(acc.equity[k], a.decimals) for acc in chunk])
                columns.append([format_amount(acc.debt[k], a.decimals) for acc in chunk])
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


# --- sample -----------------------------------------------------------------------------------

# Exchanges book ETH at 8 decimals, not its on-chain 18, so that balances fit in 64 bits; SOL
# keeps its native 9 (2^64 - 1 lamports is ~18 billion SOL, far above the supply).
_SAMPLE_ASSETS = (
    Asset("BTC", 8, 65000_12000000),
    Asset("ETH", 8, 3456_78000000),
    Asset("USDT", 6, 1_00010000),
    Asset("SOL", 9, 152_34000000),
)
# Per asset: percent of accounts holding it, and the range of the balance's decade at the asset's
# scale (BTC 10^3..10^9 is 0.00001 to ~100 BTC); balances are log-uniform over those decades.
_SAMPLE_HOLDINGS = ((45, 3, 9), (35, 4, 10), (70, 5, 11), (20, 7, 12))
_SAMPLE_BORROW_PERCENT = 30
# Cumulative percent thresholds for which asset a borrower borrows: mostly USDT.
_SAMPLE_BORROW_PICK = ((15, 0), (30, 1), (90, 2), (100, 3))


def sample_snapshot(n_accounts: int, seed: int = 0) -> Snapshot:
    """A deterministic, plausible snapshot of BTC, ETH, USDT and SOL balances.

    Every account holds some equity; about 30% also borrow, up to 80% of their equity value, so
    every account is solvent at the snapshot's prices. Integers only: random.Random(seed).
    """
    if n_accounts < 1:
        raise ValueError("a snapshot needs at least one account")
    rng = random.Random(seed)
    assets = _SAMPLE_ASSETS
    top = max(a.decimals for a in assets)
    mult = [a.price_e8 * 10 ** (top - a.decimals) for a in assets]
    accounts: list[Account] = []
    for i in range(1, n_accounts + 1):
        held = [rng.randrange(100) < pct for pct, _, _ in _SAMPLE_HOLDINGS]
        if not any(held):
            held[rng.randrange(len(assets))] = True
        equity = [0] * len(assets)
        for k, (_, lo, hi) in enumerate(_SAMPLE_HOLDINGS):
            if held[k]:
                e = rng.randint(lo, hi)
                equity[k] = rng.randint(10**e, 10 ** (e + 1) - 1)
        debt = [0] * len(assets)
        if rng.randrange(100) < _SAMPLE_BORROW_PERCENT:
            r = rng.randrange(100)
            k = next(k for bound, k in _SAMPLE_BORROW_PICK if r < bound)
            value = sum(v * m for v, m in zip(equity, mult, strict=True))
            # Rounding down keeps debt value <= the chosen share of the equity value.
            debt[k] = min(value * rng.randint(5, 80) // (100 * mult[k]), MAX_AMOUNT)
        accounts.append(Account(f"user-{i:06d}", tuple(equity), tuple(debt), i))
    return Snapshot(assets, tuple(accounts), f"sample_snapshot({n_accounts}, seed={seed})")

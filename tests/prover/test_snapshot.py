"""Snapshot parsing: exact amounts, located errors for every kind of bad input, round trips."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zksolvency.prover.snapshot import (
    MAX_AMOUNT,
    Account,
    Asset,
    Snapshot,
    SnapshotError,
    account_values,
    format_amount,
    load_assets,
    load_snapshot,
    parse_amount,
    sample_snapshot,
    write_snapshot_csv,
    write_snapshot_json,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"

ASSETS = (
    Asset("BTC", 8, 6500012000000),
    Asset("ETH", 8, 345678000000),
    Asset("USDT", 6, 100010000),
    Asset("SOL", 9, 15234000000),
)
# good_accounts.csv and good_4assets.json, amounts in BTC, ETH, USDT, SOL order.
ACCOUNTS = (
    Account("alice", (150000000, 0, 100000000, 0), (0, 0, 0, 0), 2),
    Account("bob, the builder", (1, 225000000, 0, 3000000001), (0, 0, 50500000, 0), 3),
    Account("carol", (MAX_AMOUNT, 0, 0, 0), (0, 0, 0, 0), 4),
    Account("dave", (0, 50000000, 7000000, 0), (10000000, 0, 0, 0), 5),
)
CSV_HEADER = "id,BTC_equity,BTC_debt,ETH_equity,ETH_debt,USDT_equity,USDT_debt,SOL_equity,SOL_debt"
ASSETS_HEADER = "symbol,decimals,price_usd"


def short_id(value: object) -> str | None:
    """Test ids for long inputs (up to 100 kB): the other parameters tell the cases apart."""
    if isinstance(value, str | bytes) and len(value) > 50:
        return "text"
    return None


def expected_prefix(path: Path, line: int | None, field: str | None) -> str:
    where = str(path) if line is None else f"{path}:{line}"
    return where + (f": field '{field}'" if field is not None else "") + ": "


def assert_error(
    err: SnapshotError, path: Path, line: int | None, field: str | None, fragment: str
) -> None:
    """The error names exactly this file, line and field, in attributes and in its text."""
    assert (err.file, err.line, err.field) == (str(path), line, field), str(err)
    assert str(err).startswith(expected_prefix(path, line, field)), str(err)
    assert fragment in err.message, str(err)


# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "decimals", "value"),
    [
        ("0.00000001", 8, 1),
        ("123.45", 2, 12345),
        ("184467440737.09551615", 8, MAX_AMOUNT),
        ("18446744073709551615", 0, MAX_AMOUNT),
        ("0.000000000000000001", 18, 1),
        ("18.446744073709551615", 18, MAX_AMOUNT),
        ("0", 8, 0),
        ("0.0", 0, 0),
        ("007", 0, 7),
        ("1.50000000000", 8, 150000000),  # extra fractional zeros are still exact
        ("1", 6, 1000000),
    ],
)
def test_parse_amount_exact(text: str, decimals: int, value: int) -> None:
    assert parse_amount(text, decimals) == value


@pytest.mark.parametrize(
    ("text", "decimals", "reason"),
    [
        ("-1", 8, "negative amount"),
        ("+1", 8, "'+' sign"),
        ("1e5", 8, "exponent notation"),
        ("1.5E-3", 8, "exponent notation"),
        ("0.123456789", 8, "more than 8 decimals ('0.123456789')"),
        ("0.100000001", 8, "more than 8 decimals"),
        ("1.5", 0, "more than 0 decimals"),
        ("184467440737.09551616", 8, "over the 64-bit limit: at most 184467440737.09551615"),
        ("18446744073709551616", 0, "over the 64-bit limit"),
        ("19", 18, "over the 64-bit limit"),
        ("9" * 5000, 8, "over the 64-bit limit"),
        ("", 8, "empty amount"),
        (" 1", 8, "whitespace"),
        ("1 000", 8, "whitespace"),
        ("1\n", 8, "whitespace"),
        ("NaN", 8, "not a decimal number"),
        ("inf", 8, "not a decimal number"),
        ("0x10", 8, "not a decimal number"),
        ("1.2.3", 8, "not a decimal number"),
        ("\u0663", 0, "not a decimal number"),  # ARABIC-INDIC DIGIT THREE: int() would take it
        (".5", 8, "before the decimal point"),
        ("5.", 8, "after the decimal point"),
        ("1,5", 8, "commas"),
    ],
    ids=short_id,
)
def test_parse_amount_rejects(text: str, decimals: int, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_amount(text, decimals)


def test_parse_amount_rejects_non_strings_and_bad_decimals() -> None:
    not_a_string: Any = 1.5
    with pytest.raises(TypeError):
        parse_amount(not_a_string, 8)
    with pytest.raises(ValueError, match="decimals"):
        parse_amount("1", 19)


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [(0, 8, "0"), (1, 8, "0.00000001"), (150000000, 8, "1.5"), (12345, 2, "123.45"), (7, 0, "7")],
)
def test_format_amount_canonical(value: int, decimals: int, text: str) -> None:
    assert format_amount(value, decimals) == text


@given(st.integers(0, MAX_AMOUNT), st.integers(0, 18), st.integers(0, 3), st.integers(0, 3))
def test_amount_round_trip(value: int, decimals: int, lead: int, trail: int) -> None:
    text = format_amount(value, decimals)
    assert re.fullmatch(r"(0|[1-9][0-9]*)(\.[0-9]*[1-9])?", text)
    assert parse_amount(text, decimals) == value
    # Leading zeros and trailing fractional zeros do not change the value.
    point = "." if trail and "." not in text else ""
    assert parse_amount("0" * lead + text + point + "0" * trail, decimals) == value


# --- good files -------------------------------------------------------------------------------


def test_load_assets_all_forms() -> None:
    for name in ("good_assets.csv", "good_assets.json", "good_assets_list.json"):
        assert load_assets(FIX / name) == ASSETS, name


def test_load_csv_snapshot() -> None:
    snap = load_snapshot(FIX / "good_accounts.csv", FIX / "good_assets.csv")
    assert snap.assets == ASSETS
    assert snap.accounts == ACCOUNTS
    assert [a.line for a in snap.accounts] == [2, 3, 4, 5]
    assert str(FIX / "good_accounts.csv") in snap.source
    assert str(FIX / "good_assets.csv") in snap.source


def test_csv_and_json_snapshots_agree() -> None:
    expected = Snapshot(ASSETS, ACCOUNTS, "expected")
    from_json = load_snapshot(FIX / "good_4assets.json")
    assert from_json == expected
    assert [a.line for a in from_json.accounts] == [1, 2, 3, 4]  # JSON: index in the array
    assert load_snapshot(FIX / "good_accounts.csv", FIX / "good_assets.json") == expected
    # A BOM and CRLF line ends, as spreadsheet exports write them, are tolerated.
    bom = load_snapshot(FIX / "good_bom_accounts.csv", FIX / "good_assets_list.json")
    assert bom == expected
    assert [a.line for a in bom.accounts] == [2, 3, 4, 5]


def test_format_detected_by_content_without_extension(tmp_path: Path) -> None:
    (tmp_path / "snap").write_bytes((FIX / "good_4assets.json").read_bytes())
    (tmp_path / "accounts").write_bytes((FIX / "good_accounts.csv").read_bytes())
    (tmp_path / "assets").write_bytes((FIX / "good_assets.json").read_bytes())
    assert load_snapshot(tmp_path / "snap") == load_snapshot(
        tmp_path / "accounts", tmp_path / "assets"
    )


def test_blank_lines_are_skipped_and_lines_stay_physical(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(f"{CSV_HEADER}\n\nalice,1,0,0,0,0,0,0,0\n\nbob,1,0,0,0,0,0,0,0\n\n")
    snap = load_snapshot(path, FIX / "good_assets.csv")
    assert [(a.id, a.line) for a in snap.accounts] == [("alice", 3), ("bob", 5)]


@pytest.mark.parametrize("seed", [0, 7])
def test_round_trip_sample(tmp_path: Path, seed: int) -> None:
    snap = sample_snapshot(120, seed)
    write_snapshot_json(snap, tmp_path / "s.json")
    write_snapshot_csv(snap, tmp_path / "accounts.csv", tmp_path / "assets.csv")
    from_json = load_snapshot(tmp_path / "s.json")
    from_csv = load_snapshot(tmp_path / "accounts.csv", tmp_path / "assets.csv")
    assert from_json == snap
    assert from_csv == snap
    assert [a.line for a in from_csv.accounts] == list(range(2, 122))


def test_round_trip_awkward_ids_and_extremes(tmp_path: Path) -> None:
    assets = (Asset("A.B-C_1", 0, 1), Asset("X", 18, 2**64 - 1))
    accounts = (
        Account("comma, inside", (MAX_AMOUNT, 0), (0, MAX_AMOUNT), 1),
        Account('say "hi"', (0, 1), (1, 0), 2),
        Account("ünïcödé ✓", (1, 10**18), (0, 0), 3),
        Account("x" * 256, (0, 0), (0, 0), 4),
    )
    snap = Snapshot(assets, accounts, "test")
    write_snapshot_json(snap, tmp_path / "s.json")
    write_snapshot_csv(snap, tmp_path / "accounts.csv", tmp_path / "assets.csv")
    assert load_snapshot(tmp_path / "s.json") == snap
    assert load_snapshot(tmp_path / "accounts.csv", tmp_path / "assets.csv") == snap


# --- bad files --------------------------------------------------------------------------------

GOOD_ASSETS = "good_assets.csv"
GOOD_ACCOUNTS = "good_accounts.csv"

# (accounts file, assets file, the file blamed, line, field, part of the message)
BAD_FIXTURES = [
    ("bad_negative.csv", GOOD_ASSETS, "accounts", 3, "BTC_equity", "negative amount ('-1')"),
    ("bad_non_numeric.csv", GOOD_ASSETS, "accounts", 2, "BTC_equity", "not a decimal number"),
    ("bad_exponent.csv", GOOD_ASSETS, "accounts", 3, "BTC_equity", "exponent notation"),
    (
        "bad_too_many_decimals.csv",
        GOOD_ASSETS,
        "accounts",
        2,
        "BTC_equity",
        "more than 8 decimals ('0.123456789')",
    ),
    ("bad_overflow.csv", GOOD_ASSETS, "accounts", 3, "BTC_equity", "over the 64-bit limit"),
    (
        "bad_duplicate_id.csv",
        GOOD_ASSETS,
        "accounts",
        4,
        "id",
        "duplicate account id 'alice' (first at line 2)",
    ),
    ("bad_empty_id.csv", GOOD_ASSETS, "accounts", 3, "id", "empty account id"),
    ("bad_id_whitespace.csv", GOOD_ASSETS, "accounts", 2, "id", "leading or trailing whitespace"),
    ("bad_unknown_column.csv", GOOD_ASSETS, "accounts", 1, "DOGE_equity", "unknown asset 'DOGE'"),
    ("bad_missing_column.csv", GOOD_ASSETS, "accounts", 1, "BTC_debt", "missing column"),
    ("bad_stray_column.csv", GOOD_ASSETS, "accounts", 1, "name", "unexpected column"),
    (
        "bad_duplicate_column.csv",
        GOOD_ASSETS,
        "accounts",
        1,
        "ETH_equity",
        "duplicate column (columns 4 and 10)",
    ),
    ("bad_empty_cell.csv", GOOD_ASSETS, "accounts", 2, "USDT_debt", "empty amount (write 0"),
    ("bad_too_many_cells.csv", GOOD_ASSETS, "accounts", 3, None, "expected 9 cells"),
    ("bad_too_few_cells.csv", GOOD_ASSETS, "accounts", 3, None, "found 8"),
    ("bad_header_only.csv", GOOD_ASSETS, "accounts", None, None, "no accounts"),
    ("bad_empty.csv", GOOD_ASSETS, "accounts", None, None, "empty file"),
    ("bad_non_utf8.csv", GOOD_ASSETS, "accounts", 3, None, "not valid UTF-8 (byte 0xe9"),
    ("bad_unterminated_quote.csv", GOOD_ASSETS, "accounts", 3, None, "malformed CSV"),
    (GOOD_ACCOUNTS, "bad_assets_header.csv", "assets", 1, None, "expected the header"),
    (GOOD_ACCOUNTS, "bad_assets_price.csv", "assets", 3, "price_usd", "negative price"),
    (GOOD_ACCOUNTS, "bad_assets_decimals.csv", "assets", 3, "decimals", "0 to 18 ('19')"),
    (
        GOOD_ACCOUNTS,
        "bad_assets_duplicate.csv",
        "assets",
        4,
        "symbol",
        "duplicate asset symbol 'BTC' (first at line 2)",
    ),
    (GOOD_ACCOUNTS, "bad_assets_symbol.csv", "assets", 3, "symbol", "bad symbol 'Eth'"),
    (GOOD_ACCOUNTS, "bad_assets_empty.csv", "assets", None, None, "empty file"),
    (GOOD_ACCOUNTS, "bad_assets_header_only.csv", "assets", None, None, "no assets"),
    ("bad_invalid.json", None, "accounts", 4, None, "invalid JSON: Expecting ',' delimiter"),
    ("bad_amount_number.json", None, "accounts", 2, "equity.BTC", "amounts must be strings"),
    ("bad_price_number.json", None, "accounts", 2, "price_usd", "prices must be strings"),
    ("bad_missing_accounts.json", None, "accounts", None, "accounts", "missing key"),
    ("bad_missing_assets.json", None, "accounts", None, "assets", "missing key"),
    ("bad_no_accounts.json", None, "accounts", None, "accounts", "no accounts"),
    ("bad_unknown_asset.json", None, "accounts", 1, "debt.DOGE", "unknown asset 'DOGE'"),
    ("bad_duplicate_id.json", None, "accounts", 3, "id", "'alice' (first at entry 1)"),
    ("bad_duplicate_key.json", None, "accounts", 1, "equity.BTC", "more than once"),
    ("bad_unknown_key.json", None, "accounts", 2, "debts", "unknown key"),
    ("bad_id_number.json", None, "accounts", 1, "id", "must be strings, not JSON number 42"),
]


@pytest.mark.parametrize(
    ("accounts", "assets", "blamed", "line", "field", "fragment"),
    BAD_FIXTURES,
    ids=[case[0] if case[2] == "accounts" else str(case[1]) for case in BAD_FIXTURES],
)
def test_bad_fixture(
    accounts: str,
    assets: str | None,
    blamed: str,
    line: int | None,
    field: str | None,
    fragment: str,
) -> None:
    accounts_path = FIX / accounts
    assets_path = None if assets is None else FIX / assets
    with pytest.raises(SnapshotError) as info:
        load_snapshot(accounts_path, assets_path)
    assert_error(
        info.value,
        accounts_path if blamed == "accounts" else FIX / str(assets),
        line,
        field,
        fragment,
    )


def test_every_fixture_is_exercised() -> None:
    used = {case[0] for case in BAD_FIXTURES} | {case[1] for case in BAD_FIXTURES}
    assert {p.name for p in FIX.glob("bad_*")} <= used


@pytest.mark.parametrize(
    ("price", "fragment"),
    [
        ("-1", "negative price"),
        ("0", "greater than 0"),
        ("0.000000001", "more than 8 decimals"),
        ("0.00000000", "greater than 0"),
        ("abc", "not a decimal number"),
        ("1e3", "exponent notation"),
        ("", "empty price"),
        ("184467440737.09551616", "over the 64-bit limit"),
    ],
)
def test_bad_price(tmp_path: Path, price: str, fragment: str) -> None:
    path = tmp_path / "assets.csv"
    path.write_text(f"{ASSETS_HEADER}\nBTC,8,65000.12\nETH,8,{price}\n")
    with pytest.raises(SnapshotError) as info:
        load_assets(path)
    assert_error(info.value, path, 3, "price_usd", fragment)


def test_largest_price_passes(tmp_path: Path) -> None:
    path = tmp_path / "assets.csv"
    path.write_text(f"{ASSETS_HEADER}\nBIG,0,184467440737.09551615\nSMALL,18,0.00000001\n")
    assert load_assets(path) == (Asset("BIG", 0, 2**64 - 1), Asset("SMALL", 18, 1))


@pytest.mark.parametrize("decimals", ["8.0", "-1", "19", "", "x", " 8", "1e1", "100"])
def test_bad_decimals(tmp_path: Path, decimals: str) -> None:
    path = tmp_path / "assets.csv"
    path.write_text(f"{ASSETS_HEADER}\nBTC,{decimals},65000.12\n")
    with pytest.raises(SnapshotError) as info:
        load_assets(path)
    assert_error(info.value, path, 2, "decimals", "integer from 0 to 18")


@pytest.mark.parametrize("symbol", ["", "btc", "BT C", "B/C", "ABCDEFGHIJKLMNOPQ", "É"])
def test_bad_symbol(tmp_path: Path, symbol: str) -> None:
    path = tmp_path / "assets.csv"
    path.write_text(f'{ASSETS_HEADER}\n"{symbol}",8,65000.12\n', encoding="utf-8")
    with pytest.raises(SnapshotError) as info:
        load_assets(path)
    assert_error(info.value, path, 2, "symbol", "bad symbol")


def _bad_accounts(tmp_path: Path, text: str | bytes) -> SnapshotError:
    path = tmp_path / "accounts.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(SnapshotError) as info:
        load_snapshot(path, FIX / GOOD_ASSETS)
    return info.value


ROW = "0,0,0,0,0,0,0,0"


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        (f'{CSV_HEADER}\n"ali\nce",{ROW}\n', 2, "id", "non-printable"),  # quoted line break
        (f"{CSV_HEADER}\nali\tce,{ROW}\n", 2, "id", "non-printable"),
        (f"{CSV_HEADER}\n{'é' * 129},{ROW}\n", 2, "id", "longer than 256 UTF-8 bytes"),
        (f'{CSV_HEADER}\n" alice",{ROW}\n', 2, "id", "whitespace"),
        (CSV_HEADER.replace("BTC_equity", "btc_equity") + f"\na,{ROW}\n", 1, "btc_equity", "case"),
        (CSV_HEADER.replace(",BTC_debt", ", BTC_debt") + f"\na,{ROW}\n", 1, " BTC_debt", "space"),
        (CSV_HEADER + f",\na,{ROW},\n", 1, "", "trailing comma"),
        (CSV_HEADER.replace("id,", "ID,") + f"\na,{ROW}\n", 1, "ID", "unexpected column"),
        (CSV_HEADER.replace("id,", "") + f",id,id\n{ROW},a,a\n", 1, "id", "duplicate column"),
        (CSV_HEADER.replace("id,", "") + f"\n{ROW}\n", 1, "id", "missing column"),
        (f"{ASSETS_HEADER}\nBTC,8,1\n", 1, None, "assets file"),
        (f"{CSV_HEADER}\n\na,{ROW}\nb,1,2\n", 4, None, "expected 9 cells"),
        (
            f"{CSV_HEADER}\na,{ROW.replace('0', '1.0', 1)}\nb,0,0,0,0,0,0,0,1e-3\n",
            3,
            "SOL_debt",
            "exponent notation",
        ),
        (b"\xef\xbb\xbf" + f"{CSV_HEADER}\na,{ROW}\n".encode() + b"b\xff,0\n", 3, None, "0xff"),
    ],
    ids=short_id,
)
def test_bad_accounts_inline(
    tmp_path: Path, text: str | bytes, line: int | None, field: str | None, fragment: str
) -> None:
    assert_error(_bad_accounts(tmp_path, text), tmp_path / "accounts.csv", line, field, fragment)


def _bad_json(tmp_path: Path, text: str | bytes) -> SnapshotError:
    path = tmp_path / "snap.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SnapshotError) as info:
        load_snapshot(path)
    return info.value


A = '{"symbol": "BTC", "decimals": 8, "price_usd": "65000.12"}'


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("", None, None, "empty file"),
        ("[]", None, None, "must be a JSON object"),
        (f'{{"assets": [{A}], "accounts": [], "extra": 1}}', None, "extra", "unknown key"),
        (f'{{"assets": [{A}], "accounts": {{}}}}', None, "accounts", "must be a JSON array"),
        ('{"assets": [], "accounts": [{"id": "a"}]}', None, "assets", "no assets"),
        (f'{{"assets": [{A}], "accounts": ["a"]}}', 1, None, "an account must be a JSON object"),
        (f'{{"assets": [{A}], "accounts": [{{"equity": {{}}}}]}}', 1, "id", "missing key"),
        (f'{{"assets": [{A}], "accounts": [{{"id": "a", "equity": []}}]}}', 1, "equity", "object"),
        (f'{{"assets": [{A}], "accounts": [{{"id": ""}}]}}', 1, "id", "empty account id"),
        (f'{{"assets": [{A}], "accounts": [{{"id": "a "}}]}}', 1, "id", "whitespace"),
        (
            f'{{"assets": [{A}], "accounts": [{{"id": "a", "debt": {{"BTC": NaN}}}}]}}',
            1,
            "debt.BTC",
            "amounts must be strings, not JSON number NaN",
        ),
        (
            f'{{"assets": [{A}], "accounts": [{{"id": "a", "debt": {{"BTC": null}}}}]}}',
            1,
            "debt.BTC",
            "not null",
        ),
        (
            f'{{"assets": [{A}], "accounts": [{{"id": "a", "debt": {{"BTC": "-2"}}}}]}}',
            1,
            "debt.BTC",
            "negative amount",
        ),
        (
            '{"assets": [{"symbol": "BTC", "decimals": "8", "price_usd": "1"}], "accounts": []}',
            1,
            "decimals",
            "JSON integer",
        ),
        (
            '{"assets": [{"symbol": "BTC", "decimals": 8.0, "price_usd": "1"}], "accounts": []}',
            1,
            "decimals",
            "integer from 0 to 18 ('8.0')",
        ),
        (
            '{"assets": [{"symbol": "BTC", "decimals": 8}], "accounts": []}',
            1,
            "price_usd",
            "missing key",
        ),
        (
            '{"assets": [{"symbol": "BTC", "decimals": 8, "price_usd": "1", "name": "Bitcoin"}],'
            ' "accounts": []}',
            1,
            "name",
            "unknown key",
        ),
        (f'{{"assets": [{A}], "assets": [{A}], "accounts": []}}', None, "assets", "more than once"),
        ("{\n\n  nope", 3, None, "invalid JSON"),
        ("[" * 100000, 1, None, "invalid JSON"),
        (b'{\n"assets": [],\n"accounts": ["\xc3\x28"]}', 3, None, "not valid UTF-8"),
    ],
    ids=short_id,
)
def test_bad_json_inline(
    tmp_path: Path, text: str | bytes, line: int | None, field: str | None, fragment: str
) -> None:
    assert_error(_bad_json(tmp_path, text), tmp_path / "snap.json", line, field, fragment)


def test_json_with_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_bytes(b"\xef\xbb\xbf" + (FIX / "good_4assets.json").read_bytes())
    assert load_snapshot(path).accounts == ACCOUNTS


def test_json_snapshot_with_assets_file_is_ambiguous() -> None:
    path = FIX / "good_4assets.json"
    with pytest.raises(SnapshotError) as info:
        load_snapshot(path, FIX / GOOD_ASSETS)
    assert_error(info.value, path, None, None, "do not also give an assets file")


def test_csv_snapshot_needs_assets_file() -> None:
    path = FIX / GOOD_ACCOUNTS
    with pytest.raises(SnapshotError) as info:
        load_snapshot(path)
    assert_error(info.value, path, None, None, "needs its assets file")


def test_whole_snapshot_given_as_assets_file() -> None:
    path = FIX / "good_4assets.json"
    with pytest.raises(SnapshotError) as info:
        load_snapshot(FIX / GOOD_ACCOUNTS, path)
    assert_error(info.value, path, None, None, "whole JSON snapshot")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(SnapshotError) as info:
        load_snapshot(path, FIX / GOOD_ASSETS)
    assert_error(info.value, path, None, None, "cannot read")


def test_error_text_and_pickling() -> None:
    err = SnapshotError("accounts.csv", 7, "BTC_equity", "more than 8 decimals ('0.123456789')")
    assert str(err) == "accounts.csv:7: field 'BTC_equity': more than 8 decimals ('0.123456789')"
    assert str(SnapshotError("a.csv", None, None, "empty file")) == "a.csv: empty file"
    assert issubclass(SnapshotError, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.file, again.line, again.field, again.message, str(again)) == (
        err.file,
        err.line,
        err.field,
        err.message,
        str(err),
    )


# --- data model, values and the sample --------------------------------------------------------


def test_data_model_rejects_invalid_values() -> None:
    with pytest.raises(ValueError):
        Asset("btc", 8, 1)
    with pytest.raises(ValueError):
        Asset("BTC", 8, 0)
    with pytest.raises(ValueError):
        Account("a", (-1,), (0,), 1)
    with pytest.raises(ValueError):
        Account("a", (2**64,), (0,), 1)
    with pytest.raises(ValueError):
        Snapshot(ASSETS, (ACCOUNTS[0], ACCOUNTS[0]), "dup")
    with pytest.raises(ValueError):
        Snapshot(ASSETS[:2], ACCOUNTS, "lengths")


def test_account_values_common_unit() -> None:
    snap = Snapshot(ASSETS, ACCOUNTS, "t")
    # The top scale is SOL's 9 decimals: BTC amounts are lifted by 10, USDT by 1000.
    assert account_values(snap, ACCOUNTS[0]) == (
        150000000 * 6500012000000 * 10 + 100000000 * 100010000 * 1000,
        0,
    )
    assert account_values(snap, ACCOUNTS[3]) == (
        50000000 * 345678000000 * 10 + 7000000 * 100010000 * 1000,
        10000000 * 6500012000000 * 10,
    )


def test_sample_snapshot() -> None:
    snap = sample_snapshot(500, seed=3)
    assert snap == sample_snapshot(500, seed=3)
    assert snap != sample_snapshot(500, seed=4)
    assert [a.symbol for a in snap.assets] == ["BTC", "ETH", "USDT", "SOL"]
    assert snap.accounts[0].id == "user-000001"
    assert snap.accounts[-1].id == "user-000500"
    borrowers = 0
    for acc in snap.accounts:
        equity, debt = account_values(snap, acc)
        assert equity > 0
        assert equity >= debt
        borrowers += any(acc.debt)
    assert 0.2 * 500 < borrowers < 0.4 * 500
    with pytest.raises(ValueError):
        sample_snapshot(0)

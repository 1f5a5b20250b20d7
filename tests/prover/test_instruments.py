"""Derivatives input: exact signed quantities, UTC times, located errors, round trips, sample."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zksolvency.prover.instruments import (
    MAX_QTY,
    MAX_RATE_E8,
    MAX_VOL_E8,
    SAMPLE_AS_OF,
    Derivatives,
    Instrument,
    MarketData,
    format_quantity,
    format_utc,
    load_derivatives,
    load_instruments,
    load_market,
    load_positions,
    parse_quantity,
    parse_utc,
    sample_derivatives,
    write_derivatives,
    write_instruments_csv,
)
from zksolvency.prover.snapshot import (
    Account,
    Asset,
    Snapshot,
    SnapshotError,
    account_values,
    load_snapshot,
    sample_snapshot,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "derivatives"
SNAP = load_snapshot(FIX / "good_snapshot.json")
AS_OF = datetime(2026, 11, 21, tzinfo=UTC)
DEC25 = datetime(2026, 12, 25, 8, tzinfo=UTC)
DEC26 = datetime(2026, 12, 26, tzinfo=UTC)
E8 = 10**8

# good_instruments.csv, .json and _list.json
INSTRUMENTS = (
    Instrument("BTC-PERP", "perpetual", "BTC", None, None, E8),
    Instrument("ETH-PERP", "perpetual", "ETH", None, None, E8 // 100),
    Instrument("BTC-25DEC26", "future", "BTC", None, DEC25, E8 // 10),
    Instrument("BTC-25DEC26-70000-C", "call", "BTC", 70000 * E8, DEC25, E8),
    Instrument("ETH-26DEC26-3000.5-P", "put", "ETH", 3000_50000000, DEC26, E8),
)
# good_market.csv (rows ETH, BTC: kept in the instruments' order) and good_market.json
MARKET = (
    MarketData("BTC", 65000_12000000, 55000000, 4250000),
    MarketData("ETH", 3456_78000000, 70000000, -500000),
)
# good_positions.csv and .json: carol's all-zero row and dave's empty entry leave no trace.
POSITIONS: dict[str, tuple[int, ...]] = {
    "alice": (-150000000, 0, 0, 0, 0),
    "bob, the builder": (0, 10 * E8, -1, 2 * E8, 0),
}


def assert_error(
    err: SnapshotError, path: Path, line: int | None, field: str | None, fragment: str
) -> None:
    """The error names exactly this file, line and field, in attributes and in its text."""
    assert (err.file, err.line, err.field) == (str(path), line, field), str(err)
    where = str(path) if line is None else f"{path}:{line}"
    prefix = where + (f": field '{field}'" if field is not None else "") + ": "
    assert str(err).startswith(prefix), str(err)
    assert fragment in err.message, str(err)


# --- quantities and times ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-0", 0),
        ("-0.000", 0),
        ("1", E8),
        ("-1.5", -150000000),
        ("0.00000001", 1),
        ("-0.00000001", -1),
        ("007.10000000000", 710000000),  # leading zeros, extra fractional zeros: still exact
        ("92233720368.54775807", MAX_QTY),
        ("-92233720368.54775807", -MAX_QTY),
    ],
)
def test_parse_quantity_exact(text: str, value: int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty quantity (write 0 for none)"),
        ("+1", "a '+' sign is not allowed ('+1')"),
        ("--1", "one leading '-' followed by digits ('--1')"),
        ("-+1", "one leading '-'"),
        ("-", "one leading '-' followed by digits ('-')"),
        ("1e3", "exponent notation"),
        ("-1E-3", "exponent notation is not allowed ('-1E-3')"),
        ("0.000000001", "more than 8 decimals"),
        ("-0.000000001", "more than 8 decimals ('-0.000000001')"),
        ("92233720368.54775808", "over the 63-bit limit: at most 92233720368.54775807"),
        ("-92233720368.54775808", "over the 63-bit limit"),
        ("-" + "9" * 5000, "over the 63-bit limit"),
        (" 1", "whitespace"),
        ("- 1", "whitespace is not allowed ('- 1')"),
        ("1-", "not a decimal number"),
        ("1,5", "commas"),
        (".5", "before the decimal point"),
        ("-5.", "after the decimal point"),
        ("NaN", "not a decimal number"),
        ("-inf", "not a decimal number ('-inf')"),
        ("\u2212" + "1", "not a decimal number"),  # MINUS SIGN, not '-'
    ],
    ids=lambda v: "long" if isinstance(v, str) and len(v) > 50 else None,
)
def test_parse_quantity_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_quantity(text)


@given(st.integers(-MAX_QTY, MAX_QTY), st.integers(0, 3), st.integers(0, 3))
def test_quantity_round_trip(value: int, lead: int, trail: int) -> None:
    text = format_quantity(value)
    assert re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?", text)
    assert text.startswith("-") == (value < 0)  # never "-0"
    assert parse_quantity(text) == value
    # Leading zeros, trailing fractional zeros and a "-" on zero do not change the value.
    sign, body = ("-", text[1:]) if text.startswith("-") else ("", text)
    point = "." if trail and "." not in body else ""
    assert parse_quantity(sign + "0" * lead + body + point + "0" * trail) == value
    if value == 0:
        assert parse_quantity("-" + "0" * (lead + 1)) == 0


def test_format_quantity_rejects_out_of_range() -> None:
    for bad in (MAX_QTY + 1, -MAX_QTY - 1, True):
        with pytest.raises(ValueError):
            format_quantity(bad)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2026-12-25", datetime(2026, 12, 25, tzinfo=UTC)),
        ("2026-12-25T08:00:00Z", datetime(2026, 12, 25, 8, tzinfo=UTC)),
        ("2026-12-25T08:00:00+00:00", datetime(2026, 12, 25, 8, tzinfo=UTC)),
        ("2028-02-29T23:59:59Z", datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_utc(text: str, value: datetime) -> None:
    assert parse_utc(text) == value
    assert parse_utc(format_utc(value)) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty expiry"),
        ("2026-12-25T08:00:00", "no time zone"),
        ("2026-12-25T08:00", "no time zone"),
        ("2026-12-25T08:00:00+01:00", "not UTC"),
        ("2026-12-25T08:00:00-00:00", "not UTC"),
        ("2026-12-25T08:00:00.5Z", "fractional seconds"),
        ("2026-12-25 08:00:00Z", "whitespace"),
        ("2026-12-25t08:00:00z", "not an ISO-8601 date"),
        ("25/12/2026", "not an ISO-8601 date"),
        ("20261225", "not an ISO-8601 date"),
        ("1795219200", "not an ISO-8601 date"),
        ("2026-13-01", "not a valid expiry: month must be in 1..12"),
        ("2027-02-29", "day is out of range"),
        ("2026-12-25T24:00:00Z", "hour must be in 0..23"),
        ("2026-12-25T23:59:60Z", "second must be in 0..59"),
    ],
)
def test_parse_utc_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_utc(text, "expiry")


# --- good files -------------------------------------------------------------------------------


def test_load_instruments_all_forms() -> None:
    for name in ("good_instruments.csv", "good_instruments.json", "good_instruments_list.json"):
        assert load_instruments(FIX / name, SNAP.assets) == INSTRUMENTS, name
    lines = [i.line for i in load_instruments(FIX / "good_instruments.csv", SNAP.assets)]
    assert lines == [2, 3, 4, 5, 6]


def test_load_market_all_forms() -> None:
    csv_market = load_market(FIX / "good_market.csv", INSTRUMENTS)
    assert (csv_market.market, csv_market.as_of, csv_market.as_of_line) == (MARKET, AS_OF, 1)
    assert [m.line for m in csv_market.market] == [4, 3]  # file lines, whatever the order
    assert load_market(FIX / "good_market.json", INSTRUMENTS) == (MARKET, AS_OF, None)
    assert load_market(FIX / "good_market_no_as_of.csv", INSTRUMENTS) == (MARKET, None, None)


def test_load_positions_both_forms() -> None:
    for name in ("good_positions.csv", "good_positions.json"):
        positions = load_positions(FIX / name, SNAP, INSTRUMENTS)
        assert positions == POSITIONS, name
        assert list(positions) == ["alice", "bob, the builder"]  # snapshot order


@pytest.mark.parametrize(
    ("instruments", "market", "positions"),
    [
        ("good_instruments.csv", "good_market.csv", "good_positions.csv"),
        ("good_instruments.json", "good_market.json", "good_positions.json"),
        ("good_instruments_list.json", "good_market.csv", "good_positions.json"),
    ],
)
def test_load_derivatives(instruments: str, market: str, positions: str) -> None:
    d = load_derivatives(FIX / instruments, FIX / market, FIX / positions, SNAP)
    assert d == Derivatives(INSTRUMENTS, MARKET, AS_OF, POSITIONS)
    assert d.positions_of("alice") == (-150000000, 0, 0, 0, 0)
    assert d.positions_of("dave") == (0, 0, 0, 0, 0)
    hash(d)


def test_as_of_from_argument() -> None:
    args = (FIX / "good_instruments.csv", FIX / "good_market_no_as_of.csv")
    positions = FIX / "good_positions.csv"
    assert load_derivatives(*args, positions, SNAP, AS_OF).as_of == AS_OF
    # Given both ways, they must agree.
    both = load_derivatives(FIX / "good_instruments.csv", FIX / "good_market.csv", positions, SNAP)
    assert both == load_derivatives(
        FIX / "good_instruments.csv", FIX / "good_market.csv", positions, SNAP, AS_OF
    )
    with pytest.raises(SnapshotError) as info:
        load_derivatives(*args, positions, SNAP)
    assert_error(info.value, args[1], None, "as_of", "no valuation time")
    with pytest.raises(SnapshotError) as info:
        load_derivatives(
            FIX / "good_instruments.csv",
            FIX / "good_market.csv",
            positions,
            SNAP,
            AS_OF + timedelta(hours=1),
        )
    assert_error(
        info.value, FIX / "good_market.csv", 1, "as_of", "the file says 2026-11-21T00:00:00Z"
    )
    with pytest.raises(SnapshotError) as info:
        load_derivatives(
            FIX / "good_instruments.json",
            FIX / "good_market.json",
            positions,
            SNAP,
            AS_OF - timedelta(days=1),
        )
    assert_error(info.value, FIX / "good_market.json", None, "as_of", "but as_of 2026-11-20")


def test_expiry_must_be_after_as_of(tmp_path: Path) -> None:
    # An instrument expiring exactly at as_of is being settled: refused like an expired one.
    market, positions = FIX / "good_market_no_as_of.csv", FIX / "good_positions.csv"
    inst = FIX / "good_instruments.csv"
    with pytest.raises(SnapshotError) as info:
        load_derivatives(inst, market, positions, SNAP, DEC25)
    assert_error(info.value, inst, 4, "expiry", "'BTC-25DEC26' expired at 2026-12-25T08:00:00Z")
    d = load_derivatives(inst, market, positions, SNAP, DEC25 - timedelta(seconds=1))
    assert d.as_of == datetime(2026, 12, 25, 7, 59, 59, tzinfo=UTC)


# --- bad files --------------------------------------------------------------------------------

# (file, line, field, part of the message); the loader is chosen by the name's prefix, and the
# other inputs are the good fixtures, so the named file is always the one blamed.
BAD_FIXTURES = [
    ("bad_inst_header.csv", 1, None, "expected the header 'id,kind,underlying,strike,expiry,"),
    ("bad_inst_id.csv", 3, "id", "bad instrument id 'ETH/PERP'"),
    ("bad_inst_id_long.csv", 4, "id", "longer than 32 characters"),
    ("bad_inst_id_reserved.csv", 2, "id", "'id' is reserved"),
    ("bad_inst_duplicate.csv", 7, "id", "duplicate instrument id 'BTC-PERP' (first at line 2)"),
    ("bad_inst_duplicate_case.csv", 7, "id", "differs from 'BTC-PERP' only in case"),
    ("bad_inst_kind.csv", 5, "kind", "unknown kind 'Call'; expected perpetual, future, call or"),
    ("bad_inst_kind_swap.csv", 3, "kind", "unknown kind 'swap'"),
    ("bad_inst_underlying.csv", 3, "underlying", "unknown asset 'DOGE' (assets: BTC, ETH"),
    ("bad_inst_strike_missing.csv", 5, "strike", "a call needs a strike"),
    ("bad_inst_strike_on_future.csv", 4, "strike", "a future has no strike"),
    ("bad_inst_strike_zero.csv", 6, "strike", "strike must be greater than 0 ('0.00')"),
    ("bad_inst_strike_decimals.csv", 6, "strike", "more than 8 decimals ('3000.500000001')"),
    ("bad_inst_expiry_missing.csv", 4, "expiry", "a future needs an expiry"),
    ("bad_inst_expiry_on_perp.csv", 2, "expiry", "a perpetual has no expiry"),
    ("bad_inst_expiry_format.csv", 4, "expiry", "not an ISO-8601 date"),
    ("bad_inst_expiry_offset.csv", 4, "expiry", "not UTC"),
    ("bad_inst_expiry_no_zone.csv", 5, "expiry", "no time zone"),
    ("bad_inst_expiry_date.csv", 6, "expiry", "day is out of range for month ('2026-02-30')"),
    ("bad_inst_expired.csv", 6, "expiry", "settle expired instruments before the snapshot"),
    ("bad_inst_multiplier_negative.csv", 3, "multiplier", "negative multiplier ('-0.01')"),
    ("bad_inst_multiplier_exponent.csv", 3, "multiplier", "exponent notation"),
    ("bad_inst_multiplier_empty.csv", 3, "multiplier", "empty multiplier"),
    ("bad_inst_cells.csv", 3, None, "expected 6 cells as in the header, found 5"),
    ("bad_inst_header_only.csv", None, None, "no instruments after the header"),
    ("bad_inst_empty.csv", None, None, "empty file"),
    ("bad_inst_strike_number.json", 2, "strike", "strings, not JSON number 70000; quote it"),
    ("bad_inst_unknown_key.json", 1, "name", "unknown key"),
    ("bad_inst_missing_key.json", 2, "multiplier", "missing key"),
    ("bad_inst_strike_on_perp.json", 1, "strike", "a perpetual has no strike (leave the key"),
    ("bad_inst_none.json", None, "instruments", "no instruments"),
    ("bad_inst_invalid.json", 3, None, "invalid JSON: Expecting ',' delimiter"),
    ("bad_market_header.csv", 2, None, "expected the header 'underlying,spot,vol,rate'"),
    ("bad_market_spot_zero.csv", 4, "spot", "spot must be greater than 0"),
    ("bad_market_spot_negative.csv", 4, "spot", "negative spot ('-65000')"),
    ("bad_market_vol_percent.csv", 3, "vol", "vol must be at most 5; it is a fraction"),
    ("bad_market_vol_zero.csv", 3, "vol", "vol must be greater than 0"),
    ("bad_market_rate_range.csv", 4, "rate", "rate must be between -1 and 1"),
    ("bad_market_rate_plus.csv", 4, "rate", "a '+' sign is not allowed ('+0.0425')"),
    ("bad_market_rate_decimals.csv", 4, "rate", "more than 8 decimals"),
    ("bad_market_missing.csv", None, "underlying", "no market data for 'ETH' (the underlying of"),
    ("bad_market_unused.csv", 5, "underlying", "no instrument has the underlying 'SOL'"),
    ("bad_market_duplicate.csv", 5, "underlying", "duplicate underlying 'ETH' (first at line 3)"),
    ("bad_market_as_of.csv", 1, "as_of", "whitespace is not allowed (use 'T'"),
    ("bad_market_as_of_syntax.csv", 1, "as_of", "expected '# as_of: <time>'"),
    ("bad_market_comment.csv", 4, None, "comment lines are not allowed"),
    ("bad_market_header_only.csv", None, None, "no market data after the header"),
    ("bad_market_cells.csv", 3, None, "expected 4 cells"),
    ("bad_market_vol_number.json", 2, "vol", "must be strings, not JSON number 0.7; quote it"),
    ("bad_market_as_of_number.json", None, "as_of", "not JSON number 1795219200"),
    ("bad_market_unknown_key.json", None, "asof", "unknown key; expected 'as_of', 'market'"),
    ("bad_market_missing_key.json", 1, "rate", "missing key"),
    ("bad_pos_unknown_account.csv", 4, "id", "unknown account id 'erin': not in the snapshot"),
    ("bad_pos_account_whitespace.csv", 2, "id", "'alice ': not in the snapshot (surrounding"),
    ("bad_pos_duplicate_account.csv", 4, "id", "duplicate account id 'alice' (first at line 2)"),
    ("bad_pos_unknown_instrument.csv", 1, "BTC-26DEC26", "unknown instrument 'BTC-26DEC26'"),
    ("bad_pos_duplicate_column.csv", 1, "ETH-PERP", "duplicate column (columns 2 and 6)"),
    ("bad_pos_missing_id.csv", 1, "id", "missing column"),
    ("bad_pos_empty_cell.csv", 3, "BTC-PERP", "empty quantity (write 0 for none)"),
    ("bad_pos_plus.csv", 3, "ETH-PERP", "a '+' sign is not allowed ('+10')"),
    ("bad_pos_exponent.csv", 2, "BTC-PERP", "exponent notation is not allowed ('-1.5e0')"),
    ("bad_pos_decimals.csv", 3, "BTC-25DEC26", "more than 8 decimals ('-0.000000001')"),
    ("bad_pos_overflow.csv", 2, "BTC-PERP", "over the 63-bit limit"),
    ("bad_pos_double_minus.csv", 2, "BTC-PERP", "one leading '-' followed by digits ('--1.5')"),
    ("bad_pos_cells.csv", 2, None, "expected 5 cells as in the header, found 4"),
    ("bad_pos_non_utf8.csv", 3, None, "not valid UTF-8 (byte 0xe9"),
    ("bad_pos_empty.csv", None, None, "empty file"),
    ("bad_pos_qty_number.json", 1, "qty.BTC-PERP", "quantities must be strings, not JSON number"),
    ("bad_pos_unknown_instrument.json", 2, "qty.btc-perp", "ids are case-sensitive"),
    ("bad_pos_unknown_account.json", 2, "id", "unknown account id 'mallory'"),
    ("bad_pos_duplicate_account.json", 3, "id", "duplicate account id 'alice' (first at entry 1)"),
    ("bad_pos_duplicate_key.json", 1, "qty.BTC-PERP", "key appears more than once"),
    ("bad_pos_unknown_key.json", 1, "quantity", "unknown key; expected 'id', 'qty'"),
    ("bad_pos_not_list.json", None, "positions", "must be a JSON array, not an object"),
]


def _load(path: Path) -> None:
    """Load `path` in its role, with good fixtures for every other input."""
    good = (FIX / "good_instruments.csv", FIX / "good_market.csv", FIX / "good_positions.csv")
    if path.name.startswith("bad_inst"):
        load_derivatives(path, good[1], good[2], SNAP)
    elif path.name.startswith("bad_market"):
        load_derivatives(good[0], path, good[2], SNAP)
    else:
        load_derivatives(good[0], good[1], path, SNAP)


@pytest.mark.parametrize(("name", "line", "field", "fragment"), BAD_FIXTURES)
def test_bad_fixture(name: str, line: int | None, field: str | None, fragment: str) -> None:
    with pytest.raises(SnapshotError) as info:
        _load(FIX / name)
    assert_error(info.value, FIX / name, line, field, fragment)


def test_every_fixture_is_exercised() -> None:
    assert {p.name for p in FIX.glob("bad_*")} == {case[0] for case in BAD_FIXTURES}


def _bad_csv(tmp_path: Path, name: str, text: str) -> SnapshotError:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SnapshotError) as info:
        if name.startswith("instruments"):
            load_instruments(path, SNAP.assets)
        elif name.startswith("market"):
            load_market(path, INSTRUMENTS)
        else:
            load_positions(path, SNAP, INSTRUMENTS)
    return info.value


INST_HEADER = "id,kind,underlying,strike,expiry,multiplier\n"


@pytest.mark.parametrize(
    ("cells", "field", "fragment"),
    [
        ("X,call,BTC,-1,2026-12-25,1", "strike", "negative strike"),
        ("X,call,BTC,abc,2026-12-25,1", "strike", "not a decimal number"),
        ("X,call,BTC,1e5,2026-12-25,1", "strike", "exponent notation"),
        ("X,call,BTC,184467440737.09551616,2026-12-25,1", "strike", "over the 64-bit limit"),
        ("X,put,BTC, 70000,2026-12-25,1", "strike", "whitespace"),
        ("X,perpetual,BTC,,,0", "multiplier", "multiplier must be greater than 0"),
        ("X,perpetual,BTC,,,0.000000001", "multiplier", "more than 8 decimals"),
        ("X,perpetual,BTC,,,+1", "multiplier", "'+' sign"),
        ("X,future,BTC,,2026-12-25T08:00:00.000Z,1", "expiry", "fractional seconds"),
        ("X,perpetual,btc,,,1", "underlying", "symbols are case-sensitive"),
        ("X,perpetual,,,,1", "underlying", "empty underlying"),
        ("X,,BTC,,,1", "kind", "unknown kind ''"),
        ("X,option,BTC,,,1", "kind", "unknown kind 'option'"),
        (",perpetual,BTC,,,1", "id", "empty instrument id"),
        ("BTC PERP,perpetual,BTC,,,1", "id", "bad instrument id"),
        ("ID,perpetual,BTC,,,1", "id", "reserved"),
        ("BTC-PERP-É,perpetual,BTC,,,1", "id", "bad instrument id"),
    ],
)
def test_bad_instrument_cells(tmp_path: Path, cells: str, field: str, fragment: str) -> None:
    err = _bad_csv(
        tmp_path, "instruments.csv", f"{INST_HEADER}BTC-PERP,perpetual,BTC,,,1\n{cells}\n"
    )
    assert_error(err, tmp_path / "instruments.csv", 3, field, fragment)


@pytest.mark.parametrize(
    ("row", "field", "fragment"),
    [
        ("BTC,0.00000001,0.00000001,-1", None, ""),  # smallest spot and vol, lowest rate: fine
        ("BTC,184467440737.09551615,5,1", None, ""),  # the largest of each: fine
        ("BTC,,0.5,0", "spot", "empty spot"),
        ("BTC,65000,5.00000001,0", "vol", "at most 5"),
        ("BTC,65000,-0.5,0", "vol", "negative vol"),
        ("BTC,65000,0.5,-1.00000001", "rate", "between -1 and 1"),
        ("BTC,65000,0.5,--0.1", "rate", "one leading '-'"),
        ("BTC,65000,0.5,", "rate", "empty rate"),
        ("BTC,65000,0.5,5%", "rate", "not a decimal number"),
        ("BTC,65000,0.5,-" + "9" * 30, "rate", "over the 64-bit limit"),
    ],
)
def test_market_values(tmp_path: Path, row: str, field: str | None, fragment: str) -> None:
    text = f"underlying,spot,vol,rate\n{row}\nETH,3456.78,0.7,0\n"
    if field is None:
        path = tmp_path / "market.csv"
        path.write_text(text)
        market = load_market(path, INSTRUMENTS).market
        assert market[0].vol_e8 in (1, MAX_VOL_E8)
        assert market[0].rate_e8 in (-MAX_RATE_E8, MAX_RATE_E8)
        return
    assert_error(
        _bad_csv(tmp_path, "market.csv", text), tmp_path / "market.csv", 2, field, fragment
    )


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("# as_of: 2026-11-21\n\n# as_of: 2026-11-22\n", 3, None, "expected the header"),
        ("\n# as_of: 2026-11-21\n", None, None, "no header after the as_of line"),
        ("underlying,spot,vol,rate\n# as_of: 2026-11-21\n", 2, None, "comment lines"),
        ("# as_of:\nunderlying,spot,vol,rate\n", 1, "as_of", "empty as_of"),
    ],
)
def test_market_as_of_line(
    tmp_path: Path, text: str, line: int | None, field: str | None, fragment: str
) -> None:
    assert_error(
        _bad_csv(tmp_path, "market.csv", text), tmp_path / "market.csv", line, field, fragment
    )


def test_market_as_of_tolerates_spacing_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "market.csv"
    path.write_text("\n#as_of:2026-11-21\n\nunderlying,spot,vol,rate\nBTC,1,1,0\n\nETH,1,1,0\n")
    market = load_market(path, INSTRUMENTS)
    assert (market.as_of, market.as_of_line) == (AS_OF, 2)
    assert [m.line for m in market.market] == [5, 7]


POS_HEADER = "id,BTC-PERP\n"


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("id,BTC-PERP,\nalice,1,\n", 1, "", "empty column name (a trailing comma?)"),
        ("id, BTC-PERP\nalice,1\n", 1, " BTC-PERP", "surrounding whitespace"),
        ("ID,BTC-PERP\nalice,1\n", 1, "ID", "unknown instrument 'ID'"),
        ("id,id\nalice,alice\n", 1, "id", "duplicate column"),
        (f"{POS_HEADER},1\n", 2, "id", "unknown account id '': not in the snapshot (empty"),
        (f"{POS_HEADER}Alice,1\n", 2, "id", "unknown account id 'Alice'"),
        (f"{POS_HEADER}alice,1\ncarol,1\nalice,0\n", 4, "id", "duplicate account id 'alice'"),
        (f"{POS_HEADER}alice, 1\n", 2, "BTC-PERP", "whitespace"),
        (f"{POS_HEADER}alice,1.5.0\n", 2, "BTC-PERP", "not a decimal number"),
    ],
)
def test_bad_positions_inline(
    tmp_path: Path, text: str, line: int | None, field: str | None, fragment: str
) -> None:
    err = _bad_csv(tmp_path, "positions.csv", text)
    assert_error(err, tmp_path / "positions.csv", line, field, fragment)


def test_positions_without_rows_or_columns(tmp_path: Path) -> None:
    # No open positions at all is a valid state: header only, only an id column, an empty list.
    for name, text in (("a.csv", "id,BTC-PERP\n"), ("b.csv", "id\nalice\n"), ("c.json", "[]")):
        (tmp_path / name).write_text(text)
        assert load_positions(tmp_path / name, SNAP, INSTRUMENTS) == {}, name


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(SnapshotError) as info:
        load_instruments(path, SNAP.assets)
    assert_error(info.value, path, None, None, "cannot read")


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "json"])
@pytest.mark.parametrize("seed", [0, 7])
def test_round_trip_sample(tmp_path: Path, ext: str, seed: int) -> None:
    snap = sample_snapshot(200, seed)
    d = sample_derivatives(snap, 12, seed)
    inst, market, positions = (tmp_path / f"{n}.{ext}" for n in ("inst", "market", "pos"))
    write_derivatives(d, inst, market, positions)
    again = load_derivatives(inst, market, positions, snap)
    assert again == d
    assert list(again.positions) == list(d.positions)


def test_round_trip_extremes(tmp_path: Path) -> None:
    assets = (Asset("BTC", 8, 1), Asset("X.Y-Z_1", 0, 2**64 - 1))
    accounts = (
        Account("comma, inside", (1, 0), (0, 0), 1),
        Account('say "hi"', (1, 0), (0, 0), 2),
        Account("ünïcödé ✓", (1, 0), (0, 0), 3),
        Account("x" * 256, (1, 0), (0, 0), 4),
    )
    snap = Snapshot(assets, accounts, "test")
    late = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    instruments = (
        Instrument("a", "perpetual", "X.Y-Z_1", None, None, 2**64 - 1),
        Instrument("B.b_9-", "call", "BTC", 1, late, 1),
        Instrument("Z" * 32, "put", "X.Y-Z_1", 2**64 - 1, AS_OF + timedelta(seconds=1), E8),
    )
    market = (
        MarketData("X.Y-Z_1", 2**64 - 1, MAX_VOL_E8, -MAX_RATE_E8),
        MarketData("BTC", 1, 1, 0),
    )
    positions: dict[str, tuple[int, ...]] = {
        "comma, inside": (MAX_QTY, -MAX_QTY, -1),
        'say "hi"': (0, 1, 0),
        "ünïcödé ✓": (-1, 0, 0),
        "x" * 256: (0, 0, MAX_QTY),
    }
    d = Derivatives(instruments, market, AS_OF, positions)
    for ext in ("csv", "json"):
        inst, market_path, pos = (tmp_path / f"{n}.{ext}" for n in ("i", "m", "p"))
        write_derivatives(d, inst, market_path, pos)
        assert load_derivatives(inst, market_path, pos, snap) == d, ext


def test_written_instruments_csv_leaves_cells_empty(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    write_instruments_csv(INSTRUMENTS, path)
    lines = path.read_text().splitlines()
    assert lines[1] == "BTC-PERP,perpetual,BTC,,,1"
    assert lines[5] == "ETH-26DEC26-3000.5-P,put,ETH,3000.5,2026-12-26T00:00:00Z,1"


# --- data model and the sample ----------------------------------------------------------------


def test_derivatives_normalises() -> None:
    d = Derivatives(INSTRUMENTS, MARKET[::-1], AS_OF, {**POSITIONS, "carol": (0, 0, 0, 0, 0)})
    assert d.market == MARKET  # the instruments' order
    assert "carol" not in d.positions  # an all-zero row is no position
    assert d == Derivatives(INSTRUMENTS, MARKET, AS_OF, POSITIONS)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Derivatives((), (), AS_OF, {}),
        lambda: Derivatives(INSTRUMENTS, MARKET[:1], AS_OF, {}),
        lambda: Derivatives(INSTRUMENTS, MARKET * 2, AS_OF, {}),
        lambda: Derivatives(INSTRUMENTS, MARKET, AS_OF, {"alice": (1, 2)}),
        lambda: Derivatives(INSTRUMENTS, MARKET, AS_OF, {"alice": (MAX_QTY + 1, 0, 0, 0, 0)}),
        lambda: Derivatives(INSTRUMENTS, MARKET, DEC25, {}),  # BTC-25DEC26 expires at as_of
        lambda: Derivatives(INSTRUMENTS, MARKET, datetime(2026, 11, 21), {}),  # naive
        lambda: Derivatives(INSTRUMENTS * 2, MARKET, AS_OF, {}),
        lambda: Instrument("X", "call", "BTC", None, DEC25, E8),
        lambda: Instrument("X", "future", "BTC", 1, DEC25, E8),
        lambda: Instrument("X", "perpetual", "BTC", None, DEC25, E8),
        lambda: Instrument("X", "future", "BTC", None, DEC25.replace(microsecond=1), E8),
        lambda: Instrument("X", "perpetual", "BTC", None, None, 0),
        lambda: Instrument("X/Y", "perpetual", "BTC", None, None, E8),
        lambda: MarketData("BTC", 1, MAX_VOL_E8 + 1, 0),
        lambda: MarketData("BTC", 1, 1, -MAX_RATE_E8 - 1),
        lambda: MarketData("BTC", 0, 1, 0),
    ],
)
def test_data_model_rejects(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_sample_derivatives() -> None:
    snap = sample_snapshot(500, seed=3)
    d = sample_derivatives(snap, seed=3)
    assert d == sample_derivatives(snap, seed=3)
    assert d != sample_derivatives(snap, seed=4)
    assert d.as_of == SAMPLE_AS_OF
    kinds = [(i.kind, i.underlying) for i in d.instruments]
    assert sorted(kinds) == sorted(
        (k, u) for k in ("perpetual", "future", "call", "put") for u in ("BTC", "ETH")
    )
    prices = {a.symbol: a.price_e8 for a in snap.assets}
    assert {m.underlying: m.spot_e8 for m in d.market} == {u: prices[u] for u in ("BTC", "ETH")}
    assert all(50 * 10**6 <= m.vol_e8 <= 80 * 10**6 for m in d.market)
    for inst in d.instruments:
        if inst.expiry is not None:
            assert d.as_of < inst.expiry <= d.as_of + timedelta(days=92)
        if inst.strike_e8 is not None:
            spot = prices[inst.underlying]
            assert spot * 75 // 100 <= inst.strike_e8 <= spot * 125 // 100
    holders = len(d.positions)
    assert 0.3 * 500 < holders < 0.5 * 500
    for account_id, qty in d.positions.items():
        assert 1 <= sum(q != 0 for q in qty) <= 3
        account = next(a for a in snap.accounts if a.id == account_id)
        equity, debt = account_values(snap, account)
        assert equity > debt
    assert any(q < 0 for qty in d.positions.values() for q in qty)
    more = sample_derivatives(snap, n_instruments=40, seed=1)
    assert len({i.id for i in more.instruments}) == 40
    assert len(sample_derivatives(snap, n_instruments=1).instruments) == 1
    with pytest.raises(ValueError):
        sample_derivatives(snap, n_instruments=0)

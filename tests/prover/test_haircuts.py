"""Haircut tables: exact rates, located errors, round trips, and the tier arithmetic."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zksolvency.prover.commitments import tier_compare_bits
from zksolvency.prover.haircuts import (
    BPS,
    DEFAULT_HAIRCUTS,
    AssetHaircuts,
    HaircutTable,
    credited_value,
    default_haircuts,
    format_rate,
    load_haircuts,
    parse_rate,
    sample_haircuts,
    select_bracket,
    tier_excess,
    tier_rates,
    tier_split,
    tier_weights,
    tier_widths,
    write_haircuts_csv,
    write_haircuts_json,
)
from zksolvency.prover.snapshot import (
    MAX_AMOUNT,
    Asset,
    SnapshotError,
    load_assets,
    sample_snapshot,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "haircuts"
ASSETS = load_assets(FIX / "assets.csv")  # BTC 8, ETH 8, USDT 6, SOL 9 decimals
BTC = 10**8
USDT = 10**6

# good_haircuts.csv, good_haircuts.json and good_reordered.csv; SOL is not listed.
TABLE = HaircutTable(
    {
        "BTC": AssetHaircuts(
            (10 * BTC, 100 * BTC, None),
            (9500, 9000, 8000),
            (1_000_000 * BTC, 2_000_000 * BTC, None),
            (10000, 9000, 7500),
        ),
        "ETH": AssetHaircuts((100_50000000, None), (9500, 8500)),
        "USDT": AssetHaircuts(
            (1_000_000 * USDT, None), (10000, 9800), (25_000_000_000 * USDT, None), (10000, 9500)
        ),
    }
)


def assert_error(
    err: SnapshotError, path: Path, line: int | None, field: str | None, fragment: str
) -> None:
    """The error names exactly this file, line and field, in attributes and in its text."""
    assert (err.file, err.line, err.field) == (str(path), line, field), str(err)
    where = str(path) if line is None else f"{path}:{line}"
    prefix = where + (f": field '{field}'" if field is not None else "") + ": "
    assert str(err).startswith(prefix), str(err)
    assert fragment in err.message, str(err)


# --- rates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("0", 0),
        ("1", 10000),
        ("1.0000", 10000),
        ("0.95", 9500),
        ("0.9", 9000),
        ("0.0001", 1),
        ("0.12340000", 1234),  # extra fractional zeros: still exact
        ("00.5", 5000),
    ],
)
def test_parse_rate(text: str, bps: int) -> None:
    assert parse_rate(text) == bps


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty rate"),
        ("1.0001", "at most 1; it is a fraction, 0.95 for 95% ('1.0001')"),
        ("95", "at most 1"),
        ("9" * 5000, "at most 1"),
        ("0.00005", "more than 4 decimals ('0.00005')"),
        ("-0.5", "negative rate"),
        ("+0.5", "'+' sign"),
        ("5e-1", "exponent notation"),
        (".95", "before the decimal point"),
        ("0,95", "commas"),
        ("95%", "not a decimal number"),
        ("NaN", "not a decimal number"),
        (" 0.9", "whitespace"),
    ],
    ids=lambda v: "long" if isinstance(v, str) and len(v) > 50 else None,
)
def test_parse_rate_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_rate(text)


@given(st.integers(0, BPS))
def test_rate_round_trip(bps: int) -> None:
    text = format_rate(bps)
    assert re.fullmatch(r"(0|1)(\.[0-9]*[1-9])?", text)
    assert parse_rate(text) == bps


# --- good files -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["good_haircuts.csv", "good_haircuts.json", "good_reordered.csv"])
def test_load_good(name: str) -> None:
    table = load_haircuts(FIX / name, ASSETS)
    assert table == TABLE
    # Unlisted assets and left-out kinds get the defaults: no haircut, no cap.
    assert table.entry("SOL") == DEFAULT_HAIRCUTS
    assert table.entry(ASSETS[3]) == DEFAULT_HAIRCUTS
    eth = table.entry("ETH")
    assert (eth.bounds, eth.caps_bps) == ((None,), (BPS,))


def test_good_csv_keeps_file_order() -> None:
    assert list(load_haircuts(FIX / "good_haircuts.csv", ASSETS).entries) == ["BTC", "ETH", "USDT"]
    assert list(load_haircuts(FIX / "good_reordered.csv", ASSETS).entries) == ["USDT", "BTC", "ETH"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("h.csv", "symbol,kind,up_to,rate\n"),
        ("h.json", '{"assets": {}}'),
    ],
)
def test_empty_table_means_defaults(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    table = load_haircuts(tmp_path / name, ASSETS)
    assert table == HaircutTable()
    assert all(table.entry(a) == DEFAULT_HAIRCUTS for a in ASSETS)


def test_json_asset_without_kinds_is_listed_at_defaults(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text('{"assets": {"SOL": {}}}')
    assert load_haircuts(path, ASSETS) == HaircutTable({"SOL": DEFAULT_HAIRCUTS})


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(SnapshotError) as info:
        load_haircuts(path, ASSETS)
    assert_error(info.value, path, None, None, "cannot read")


# --- bad files --------------------------------------------------------------------------------

# (file, line, field, part of the message). CSV lines are file lines; in JSON a line is the
# 1-based entry: of the asset in "assets" (field = its symbol), or of the row in its list.
BAD_FIXTURES = [
    (
        "bad_rate_range.csv",
        2,
        "rate",
        "rate must be at most 1; it is a fraction, 0.95 for 95% ('1.05')",
    ),
    ("bad_rate_percent.csv", 2, "rate", "0.95 for 95% ('95')"),
    ("bad_rate_negative.csv", 3, "rate", "negative rate ('-0.1')"),
    ("bad_rate_decimals.csv", 2, "rate", "more than 4 decimals ('0.95001')"),
    ("bad_rate_empty.csv", 3, "rate", "empty rate"),
    (
        "bad_rate_increasing.csv",
        3,
        "rate",
        "rate 0.95 is higher than the previous tier's 0.9 (line 2): rates must not increase",
    ),
    ("bad_threshold_order.csv", 3, "up_to", "greater than the previous tier's 100 (line 2)"),
    ("bad_threshold_equal.csv", 3, "up_to", "greater than the previous tier's 10 (line 2)"),
    ("bad_threshold_zero.csv", 2, "up_to", "up_to must be greater than 0"),
    ("bad_threshold_decimals.csv", 2, "up_to", "more than 8 decimals ('10.000000001')"),
    (
        "bad_threshold_overflow.csv",
        3,
        "up_to",
        "over the 64-bit limit: at most 184467440737.09551615 with 8 decimals",
    ),
    ("bad_threshold_exponent.csv", 2, "up_to", "exponent notation is not allowed ('1e3')"),
    ("bad_threshold_negative.csv", 2, "up_to", "negative amount ('-5')"),
    ("bad_bound_order.csv", 3, "up_to", "greater than the previous bracket's 2000000000 (line 2)"),
    ("bad_bound_overflow.csv", 2, "up_to", "at most 18446744073709.551615 with 6 decimals"),
    (
        "bad_cap_increasing.csv",
        4,
        "rate",
        "rate 1 is higher than the previous bracket's 0.9 (line 3): caps must not increase",
    ),
    ("bad_unknown_symbol.csv", 4, "symbol", "unknown asset 'DOGE' (assets: BTC, ETH, USDT, SOL)"),
    ("bad_symbol_case.csv", 2, "symbol", "unknown asset 'btc' (assets: BTC, ETH, USDT, SOL; symb"),
    ("bad_symbol_empty.csv", 3, "symbol", "empty symbol"),
    ("bad_kind.csv", 2, "kind", "unknown kind 'Account'; expected account or exchange (kinds are"),
    ("bad_kind_unknown.csv", 3, "kind", "unknown kind 'global'"),
    ("bad_missing_column.csv", 1, "rate", "missing column"),
    ("bad_duplicate_column.csv", 1, "rate", "duplicate column (columns 4 and 5)"),
    ("bad_unknown_column.csv", 1, "note", "unexpected column; expected symbol, kind, up_to, rate"),
    ("bad_header_spaces.csv", 1, " kind", "column name has surrounding whitespace"),
    ("bad_assets_file.csv", 1, None, "this is an assets file, not a haircut table"),
    ("bad_cells.csv", 3, None, "expected 4 cells as in the header, found 3"),
    (
        "bad_no_unbounded.csv",
        3,
        "up_to",
        "BTC's account tiers end without an unbounded tier: the last one needs an empty up_to",
    ),
    ("bad_unfinished.csv", 2, "up_to", "(give all of BTC's account rows together)"),
    ("bad_after_unbounded.csv", 4, "up_to", "a tier after the unbounded one (line 3)"),
    ("bad_duplicate_ladder.csv", 5, "symbol", "BTC's account tiers were given already (lines 2-3)"),
    ("bad_empty.csv", None, None, "empty file"),
    ("bad_unterminated_quote.csv", 3, None, "malformed CSV"),
    ("bad_non_utf8.csv", 3, None, "not valid UTF-8 (byte 0xe9"),
    ("bad_rate_number.json", 1, "BTC.account.rate", "not JSON number 0.95; quote it"),
    ("bad_rate_nan.json", 2, "BTC.account.rate", "rates must be strings, not JSON number NaN"),
    ("bad_rate_decimals.json", 1, "ETH.account.rate", "more than 4 decimals ('0.12345')"),
    ("bad_up_to_number.json", 1, "BTC.account.up_to", "string or null, not JSON number 10; quote"),
    ("bad_up_to_empty.json", 1, "BTC.account.up_to", "empty up_to: write null for the unbounded"),
    ("bad_up_to_overflow.json", 1, "SOL.exchange.up_to", "over the 64-bit limit"),
    ("bad_duplicate_symbol.json", 1, "BTC", "asset appears more than once"),
    ("bad_duplicate_kind.json", 2, "BTC.account", "key appears more than once"),
    ("bad_unknown_symbol.json", 2, "DOGE", "unknown asset 'DOGE'"),
    ("bad_unknown_kind.json", 1, "BTC.acount", "unknown key; expected 'account', 'exchange'"),
    ("bad_unknown_key.json", 1, "BTC.account.upto", "unknown key; expected 'up_to', 'rate'"),
    ("bad_missing_key.json", 2, "BTC.account.rate", "missing key"),
    ("bad_empty_tiers.json", 1, "BTC.account", "no tiers (leave the key out for the default)"),
    ("bad_tiers_not_list.json", 1, "BTC.account", "must be a JSON array, not an object"),
    ("bad_entry_not_object.json", 1, "BTC", "must be a JSON object, not an array"),
    (
        "bad_not_unbounded.json",
        2,
        "BTC.account.up_to",
        "end without an unbounded tier: the last one needs up_to null",
    ),
    (
        "bad_after_unbounded.json",
        2,
        "BTC.account.up_to",
        "a tier after the unbounded one (entry 1)",
    ),
    ("bad_cap_increasing.json", 2, "BTC.exchange.rate", "higher than the previous bracket's 0.9"),
    ("bad_assets_list.json", None, "assets", "must be a JSON object mapping asset symbols"),
    ("bad_top_key.json", None, "haircuts", "unknown key; expected 'assets'"),
    ("bad_missing_assets.json", None, "assets", "missing key"),
    ("bad_invalid.json", 2, None, "invalid JSON: Expecting value"),
]


@pytest.mark.parametrize(("name", "line", "field", "fragment"), BAD_FIXTURES)
def test_bad_fixture(name: str, line: int | None, field: str | None, fragment: str) -> None:
    with pytest.raises(SnapshotError) as info:
        load_haircuts(FIX / name, ASSETS)
    assert_error(info.value, FIX / name, line, field, fragment)


def test_every_fixture_is_exercised() -> None:
    assert {p.name for p in FIX.glob("bad_*")} == {case[0] for case in BAD_FIXTURES}


HEADER = "symbol,kind,up_to,rate\n"


@pytest.mark.parametrize(
    ("rows", "line", "field", "fragment"),
    [
        ("BTC,account,,0.9\nBTC,account,,0.9\n", 3, "up_to", "a tier after the unbounded one"),
        ("BTC,exchange,1,1\nBTC,exchange,,0.9\nBTC,exchange,,0.9\n", 4, "up_to", "a bracket after"),
        ("BTC,exchange,10,0.9\n", 2, "up_to", "BTC's exchange brackets end without an unbounded"),
        ("BTC,account,10,0.9\nBTC,exchange,,1\n", 2, "up_to", "end without an unbounded tier"),
        ("SOL,account,18446744073.709551615,0\nSOL,account,,0\n", None, None, ""),  # all fine
        ("SOL,account,0.000000001,1\nSOL,account,,0\n", None, None, ""),  # one lamport wide
        ("SOL,account,0.0000000001,1\nSOL,account,,0\n", 2, "up_to", "more than 9 decimals"),
        ("BTC,account,,1.00001\n", 2, "rate", "more than 4 decimals"),
        ("BTC,account,,0.95\nBTC,exchange,,0.95\nBTC,account,,0.9\n", 4, "symbol", "given already"),
    ],
)
def test_bad_rows_inline(
    tmp_path: Path, rows: str, line: int | None, field: str | None, fragment: str
) -> None:
    path = tmp_path / "h.csv"
    path.write_text(HEADER + rows)
    if line is None:
        load_haircuts(path, ASSETS)
        return
    with pytest.raises(SnapshotError) as info:
        load_haircuts(path, ASSETS)
    assert_error(info.value, path, line, field, fragment)


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("write", [write_haircuts_csv, write_haircuts_json])
@pytest.mark.parametrize(
    "make",
    [
        lambda assets: sample_haircuts(assets),
        lambda assets: default_haircuts(assets),
        lambda assets: HaircutTable(),
        lambda assets: TABLE,
    ],
)
def test_round_trip(
    tmp_path: Path,
    write: Callable[[HaircutTable, tuple[Asset, ...], Path], None],
    make: Callable[[tuple[Asset, ...]], HaircutTable],
) -> None:
    table = make(ASSETS)
    path = tmp_path / ("h.csv" if write is write_haircuts_csv else "h.json")
    write(table, ASSETS, path)
    again = load_haircuts(path, ASSETS)
    assert again == table
    assert list(again.entries) == list(table.entries)


def test_round_trip_extremes(tmp_path: Path) -> None:
    assets = (Asset("X.Y-Z_1", 0, 1), Asset("WEI", 18, 2**64 - 1))
    table = HaircutTable(
        {
            "WEI": AssetHaircuts(
                (1, 2, MAX_AMOUNT, None), (BPS, 9999, 1, 0), (MAX_AMOUNT, None), (1, 0)
            ),
            "X.Y-Z_1": AssetHaircuts((None,), (0,), (1, None), (BPS, BPS)),
        }
    )
    for name, write in (("h.csv", write_haircuts_csv), ("h.json", write_haircuts_json)):
        write(table, assets, tmp_path / name)
        assert load_haircuts(tmp_path / name, assets) == table, name


def test_written_csv(tmp_path: Path) -> None:
    write_haircuts_csv(TABLE, ASSETS, tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[:4] == [
        "symbol,kind,up_to,rate",
        "BTC,account,10,0.95",
        "BTC,account,100,0.9",
        "BTC,account,,0.8",
    ]
    assert "ETH,account,100.5,0.95" in lines
    assert "ETH,exchange,,1" in lines  # every kind written explicitly


def test_writers_need_every_symbol_among_the_assets(tmp_path: Path) -> None:
    for write in (write_haircuts_csv, write_haircuts_json):
        with pytest.raises(ValueError, match="'USDT', which is not among the assets"):
            write(TABLE, ASSETS[:2], tmp_path / "h")


# --- data model -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: AssetHaircuts((), ()),
        lambda: AssetHaircuts((10,), (BPS,)),  # the last tier must be unbounded
        lambda: AssetHaircuts((None, None), (BPS, BPS)),
        lambda: AssetHaircuts((10, None), (BPS,)),
        lambda: AssetHaircuts((0, None), (BPS, BPS)),
        lambda: AssetHaircuts((MAX_AMOUNT + 1, None), (BPS, BPS)),
        lambda: AssetHaircuts((10, 10, None), (BPS, BPS, BPS)),
        lambda: AssetHaircuts((10, 5, None), (BPS, BPS, BPS)),
        lambda: AssetHaircuts((10, None), (9000, 9500)),
        lambda: AssetHaircuts((None,), (BPS + 1,)),
        lambda: AssetHaircuts((None,), (-1,)),
        lambda: AssetHaircuts((None,), (True,)),
        lambda: AssetHaircuts(bounds=(5, None), caps_bps=(9000, BPS)),
        lambda: AssetHaircuts(bounds=(5,), caps_bps=(BPS,)),
        lambda: HaircutTable({"btc": DEFAULT_HAIRCUTS}),
        lambda: HaircutTable({"BTC": (None,)}),  # type: ignore[dict-item]
    ],
)
def test_data_model_rejects(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_table_is_immutable_and_normalised() -> None:
    source = {"BTC": DEFAULT_HAIRCUTS}
    table = HaircutTable(source)
    source["ETH"] = DEFAULT_HAIRCUTS
    assert list(table.entries) == ["BTC"]  # a copy, not the caller's dict
    entry = AssetHaircuts([10, None], [BPS, 9000])  # type: ignore[arg-type]
    assert entry.thresholds == (10, None) and entry.rates_bps == (BPS, 9000)
    hash(entry)
    hash(table)


def test_default_haircuts() -> None:
    table = default_haircuts(ASSETS)
    assert list(table.entries) == [a.symbol for a in ASSETS]
    assert set(table.entries.values()) == {DEFAULT_HAIRCUTS}
    assert AssetHaircuts((None,), (BPS,), (None,), (BPS,)) == DEFAULT_HAIRCUTS


# --- tiers for the circuit --------------------------------------------------------------------


def test_tier_widths_and_rates_exact() -> None:
    assert tier_widths(TABLE, "BTC", 3) == [10 * BTC, 90 * BTC]
    assert tier_rates(TABLE, "BTC", 3) == [9500, 9000, 8000]
    assert tier_widths(TABLE, ASSETS[1], 2) == [100_50000000]
    assert tier_rates(TABLE, ASSETS[1], 2) == [9500, 8500]
    # Unlisted: one unbounded tier at 1, and no widths with one tier.
    assert tier_widths(TABLE, "SOL", 1) == []
    assert tier_rates(TABLE, "SOL", 1) == [BPS]


def test_tiers_padded_to_k() -> None:
    # Zero-width tiers before the unbounded one, at the last rate: rates stay non-increasing.
    assert tier_widths(TABLE, "BTC", 5) == [10 * BTC, 90 * BTC, 0, 0]
    assert tier_rates(TABLE, "BTC", 5) == [9500, 9000, 8000, 8000, 8000]
    assert tier_widths(TABLE, "SOL", 3) == [0, 0]
    assert tier_rates(TABLE, "SOL", 3) == [BPS, BPS, BPS]


def test_too_many_tiers_for_the_circuit() -> None:
    for f in (tier_widths, tier_rates):
        with pytest.raises(ValueError, match="gives BTC 3 account tiers but the circuits have "):
            f(TABLE, "BTC", 2)
        with pytest.raises(ValueError, match="use circuits with at least 3 tiers"):
            f(TABLE, "BTC", 1)
        with pytest.raises(ValueError, match="n_tiers"):
            f(TABLE, "BTC", 0)


@given(st.integers(0, MAX_AMOUNT), st.integers(0, 4), st.integers(1, 2**128 - 1))
def test_padding_keeps_the_credit(amount: int, pad: int, weight: int) -> None:
    for symbol in ("BTC", "ETH", "USDT", "SOL"):
        k = len(TABLE.entry(symbol).rates_bps)
        credits = set()
        for n_tiers in (k, k + pad):
            weights = tier_weights(weight, tier_rates(TABLE, symbol, n_tiers), 9000)
            credits.add(credited_value(amount, tier_widths(TABLE, symbol, n_tiers), weights))
        assert len(credits) == 1, symbol


def test_tier_split_examples() -> None:
    widths = [10, 90]
    assert tier_split(0, widths) == [0, 0, 0]
    assert tier_split(7, widths) == [7, 0, 0]
    assert tier_split(10, widths) == [10, 0, 0]
    assert tier_split(11, widths) == [10, 1, 0]
    assert tier_split(100, widths) == [10, 90, 0]
    assert tier_split(250, widths) == [10, 90, 150]
    assert tier_split(5, [0, 0, 3]) == [0, 0, 3, 2]
    assert tier_split(MAX_AMOUNT, []) == [MAX_AMOUNT]
    for bad in (-1, True):
        with pytest.raises(ValueError):
            tier_split(bad, widths)
    with pytest.raises(ValueError):
        tier_split(1, [-1])


def test_credited_value_example() -> None:
    # 150 BTC at $65,000.12: weight = price_e8 * 10^(18 - 8) value units per satoshi.
    weight = 65000_12000000 * 10**10
    rates = tier_rates(TABLE, "BTC", 3)
    w = tier_weights(weight, rates, BPS)
    credit = credited_value(150 * BTC, tier_widths(TABLE, "BTC", 3), w)
    assert credit == (10 * 9500 + 90 * 9000 + 50 * 8000) * BTC * weight // BPS
    # A cap of 0.9 lowers only the first tier.
    capped = tier_weights(weight, rates, 9000)
    assert credited_value(150 * BTC, tier_widths(TABLE, "BTC", 3), capped) == (
        (10 * 9000 + 90 * 9000 + 50 * 8000) * BTC * weight // BPS
    )
    with pytest.raises(ValueError, match="need 3 tier weights"):
        credited_value(1, [10, 90], [1, 1])


@st.composite
def tiers_and_split(draw: st.DrawFn) -> tuple[int, list[int], list[int], list[int]]:
    """(amount, widths, non-increasing weights, any valid split of amount over the tiers)."""
    k = draw(st.integers(1, 6))
    widths = draw(st.lists(st.integers(0, 2**64 - 1), min_size=k - 1, max_size=k - 1))
    weights = sorted(draw(st.lists(st.integers(0, 2**128), min_size=k, max_size=k)), reverse=True)
    amount = draw(st.integers(0, 2**64 - 1))
    split, rest = [], amount
    for width in widths:
        s = draw(st.integers(0, min(width, rest)))
        split.append(s)
        rest -= s
    split.append(rest)
    return amount, widths, weights, split


@given(tiers_and_split())
def test_filling_in_order_credits_the_most(
    case: tuple[int, list[int], list[int], list[int]],
) -> None:
    amount, widths, weights, other = case
    greedy = tier_split(amount, widths)
    # Both are valid splits, as the circuit checks them.
    for split in (greedy, other):
        assert sum(split) == amount
        assert all(0 <= s <= w for s, w in zip(split, widths, strict=False))
    best = credited_value(amount, widths, weights)
    assert best == sum(s * w for s, w in zip(greedy, weights, strict=True))
    assert sum(s * w for s, w in zip(other, weights, strict=True)) <= best


@given(tiers_and_split())
def test_circuit_fill_equals_the_in_order_split(
    case: tuple[int, list[int], list[int], list[int]],
) -> None:
    """Margin computes W_0 * x + Σ_t (W_t - W_(t-1)) * excess_t (excess_t the part of x above
    the t-th cumulative bound), which must be the credit of the in-order split; and every
    excess and bound fits the comparison's bits (commitments.tier_compare_bits)."""
    amount, widths, weights, _ = case
    excess = tier_excess(amount, widths)
    assert len(excess) == len(widths)
    circuit = weights[0] * amount + sum(
        (weights[t + 1] - weights[t]) * e for t, e in enumerate(excess)
    )
    assert circuit == credited_value(amount, widths, weights)
    split = tier_split(amount, widths)
    bounded = [amount, *excess, 0]
    assert split == [bounded[t] - bounded[t + 1] for t in range(len(split))]
    bits = tier_compare_bits(len(weights))
    assert sum(widths) < 1 << bits and amount < 1 << bits


@pytest.mark.parametrize(
    ("weight", "rates", "cap", "expected"),
    [
        (3, [9999, 5000, 1, 0], BPS, [2, 1, 0, 0]),  # floor: 2.9997, 1.5, 0.0003
        (10**4, [9500, 9000], 9200, [9200, 9000]),  # the cap lowers the first only
        (10**4 + 1, [BPS], BPS, [10**4 + 1]),  # rate 1 keeps the full weight
        (12345, [BPS, 9000], 0, [0, 0]),  # cap 0: no credit
        (2**128 - 1, [9999], BPS, [(2**128 - 1) * 9999 // BPS]),
    ],
)
def test_tier_weights_round_down(
    weight: int, rates: list[int], cap: int, expected: list[int]
) -> None:
    assert tier_weights(weight, rates, cap) == expected


@given(
    st.integers(0, 2**128 - 1),
    st.lists(st.integers(0, BPS), min_size=1, max_size=5),
    st.integers(0, BPS),
)
def test_tier_weights_never_overstate(weight: int, rates: list[int], cap: int) -> None:
    rates.sort(reverse=True)
    weights = tier_weights(weight, rates, cap)
    for w, r in zip(weights, rates, strict=True):
        effective = weight * min(r, cap)
        assert w * BPS <= effective < (w + 1) * BPS  # exactly the floor
        assert w <= weight
    assert weights == sorted(weights, reverse=True)  # still non-increasing


def test_tier_weights_rejects() -> None:
    for args in ((-1, [BPS], BPS), (1, [BPS + 1], BPS), (1, [BPS], BPS + 1), (1, [-1], 0)):
        with pytest.raises(ValueError):
            tier_weights(*args)


# --- exchange brackets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (0, (BPS, 1_000_000 * BTC)),
        (1_000_000 * BTC, (BPS, 1_000_000 * BTC)),  # the bound is inclusive
        (1_000_000 * BTC + 1, (9000, 2_000_000 * BTC)),
        (2_000_000 * BTC, (9000, 2_000_000 * BTC)),
        (2_000_000 * BTC + 1, (7500, 2**74 - 1)),
        (2**74 - 1, (7500, 2**74 - 1)),
    ],
)
def test_select_bracket(total: int, expected: tuple[int, int]) -> None:
    assert select_bracket(TABLE, "BTC", total, 10) == expected


def test_select_bracket_defaults_and_limits() -> None:
    assert select_bracket(TABLE, "SOL", 0, 4) == (BPS, 2**68 - 1)
    assert select_bracket(TABLE, ASSETS[1], 5, 20) == (BPS, 2**84 - 1)
    with pytest.raises(ValueError, match="total_equity"):
        select_bracket(TABLE, "BTC", 2**68, 4)  # more than 2^4 accounts can hold
    with pytest.raises(ValueError, match="total_equity"):
        select_bracket(TABLE, "BTC", -1, 4)
    with pytest.raises(ValueError, match="tree_depth"):
        select_bracket(TABLE, "BTC", 0, -1)


@given(st.integers(0, 2**70 - 1))
def test_splitting_cannot_lift_the_cap(total: int) -> None:
    # The cap depends on the exchange's total only, and a larger total never gets a higher cap.
    cap, limit = select_bracket(TABLE, "BTC", total, 6)
    assert total <= limit
    more_cap, _ = select_bracket(TABLE, "BTC", min(total * 2 + 1, 2**70 - 1), 6)
    assert more_cap <= cap


# --- sample -----------------------------------------------------------------------------------


def test_sample_haircuts() -> None:
    assets = sample_snapshot(10).assets
    table = sample_haircuts(assets)
    assert list(table.entries) == [a.symbol for a in assets]
    btc, usdt, sol = table.entry("BTC"), table.entry("USDT"), table.entry("SOL")
    assert btc.thresholds == (10 * BTC, 100 * BTC, None)
    assert btc.rates_bps == (9500, 9000, 8000)
    assert usdt.rates_bps == (BPS, 9800)
    assert usdt.thresholds == (1_000_000 * USDT, None)
    # SOL steps at $100k and $1M worth, rounded down to a leading digit: 600 and 6000 SOL.
    assert sol.thresholds == (600 * 10**9, 6000 * 10**9, None)
    assert sol.rates_bps == (8500, 7000, 5000)
    for entry in table.entries.values():
        assert entry.caps_bps[0] == BPS  # the caps bind only for very large totals
        assert entry.caps_bps[-1] < BPS
    usdc = sample_haircuts([Asset("USDC", 6, 1_00000000)]).entry("USDC")
    assert usdc.rates_bps == (BPS, 9800)


@given(
    st.from_regex(r"[A-Z]{1,8}", fullmatch=True),
    st.integers(0, 18),
    st.integers(1, 2**64 - 1),
)
def test_sample_haircuts_any_asset(symbol: str, decimals: int, price_e8: int) -> None:
    # Extreme prices and decimals drop empty tiers and clamp bounds, and stay valid.
    asset = Asset(symbol, decimals, price_e8)
    entry = sample_haircuts([asset]).entry(symbol)
    assert entry.thresholds[-1] is None and entry.bounds[-1] is None
    assert 1 <= len(entry.rates_bps) <= 3

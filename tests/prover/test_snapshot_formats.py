"""Accounts files as JSON Lines and Parquet, and streaming them with iter_accounts.

Every format reads back to the same Snapshot; every malformed JSON Lines or Parquet file stops
with a SnapshotError naming the file, the line (Parquet: the row) and the field; streaming keeps
memory bounded by a line or a batch, not by the number of accounts.
"""

from __future__ import annotations

import gc
import json
import pickle
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from zksolvency.prover import snapshot as snapshot_module
from zksolvency.prover.snapshot import (
    MAX_AMOUNT,
    Account,
    Asset,
    Snapshot,
    SnapshotError,
    iter_accounts,
    load_assets,
    load_snapshot,
    sample_snapshot,
    write_snapshot_csv,
    write_snapshot_json,
    write_snapshot_jsonl,
    write_snapshot_parquet,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
ASSETS_FILE = FIX / "good_assets.csv"  # BTC 8, ETH 8, USDT 6, SOL 9 decimals
ASSETS = load_assets(ASSETS_FILE)
COLUMNS = ["id"] + [f"{a.symbol}_{kind}" for a in ASSETS for kind in ("equity", "debt")]
ASSETS_OF_SAMPLE = sample_snapshot(1).assets


def assert_error(
    err: SnapshotError,
    path: Path,
    line: int | None,
    field: str | None,
    fragment: str,
    unit: str = "line",
) -> None:
    """The error names exactly this file, line or row, and field, in attributes and text."""
    assert (err.file, err.line, err.field) == (str(path), line, field), str(err)
    where = str(path)
    if line is not None:
        where += f":{line}" if unit == "line" else f": {unit} {line}"
    if field is not None:
        where += f": field '{field}'"
    assert str(err).startswith(where + ": "), str(err)
    assert fragment in err.message, str(err)


def load_error(path: Path, assets: Path = ASSETS_FILE) -> SnapshotError:
    with pytest.raises(SnapshotError) as info:
        load_snapshot(path, assets)
    return info.value


# --- good files and round trips ---------------------------------------------------------------


def test_jsonl_and_parquet_fixtures_equal_the_csv() -> None:
    from_csv = load_snapshot(FIX / "good_accounts.csv", ASSETS_FILE)
    from_jsonl = load_snapshot(FIX / "good_accounts.jsonl", ASSETS_FILE)
    from_parquet = load_snapshot(FIX / "good_accounts.parquet", FIX / "good_assets.json")
    assert from_jsonl == from_csv
    assert from_parquet == from_csv
    assert [a.line for a in from_jsonl.accounts] == [1, 2, 3, 4]
    assert [a.line for a in from_parquet.accounts] == [1, 2, 3, 4]


@pytest.mark.parametrize("seed", [0, 7])
def test_round_trip_through_every_format(tmp_path: Path, seed: int) -> None:
    snap = sample_snapshot(150, seed)
    write_snapshot_csv(snap, tmp_path / "a.csv", tmp_path / "assets.csv")
    from_csv = load_snapshot(tmp_path / "a.csv", tmp_path / "assets.csv")
    write_snapshot_jsonl(from_csv, tmp_path / "a.jsonl", tmp_path / "assets.json")
    from_jsonl = load_snapshot(tmp_path / "a.jsonl", tmp_path / "assets.json")
    write_snapshot_parquet(from_jsonl, tmp_path / "a.parquet", tmp_path / "assets2.csv")
    from_parquet = load_snapshot(tmp_path / "a.parquet", tmp_path / "assets2.csv")
    write_snapshot_json(from_parquet, tmp_path / "s.json")
    from_json = load_snapshot(tmp_path / "s.json")
    assert from_csv == from_jsonl == from_parquet == from_json == snap
    assert [a.line for a in from_jsonl.accounts] == list(range(1, 151))
    assert [a.line for a in from_parquet.accounts] == list(range(1, 151))
    # Streaming yields the same accounts as loading.
    for path in (tmp_path / "a.csv", tmp_path / "a.jsonl", tmp_path / "a.parquet"):
        assert tuple(iter_accounts(path, snap.assets)) == snap.accounts


def test_round_trip_awkward_ids_and_extremes(tmp_path: Path) -> None:
    assets = (Asset("A.B-C_1", 0, 1), Asset("X", 18, 2**64 - 1))
    accounts = (
        Account("comma, inside", (MAX_AMOUNT, 0), (0, MAX_AMOUNT), 1),
        Account('say "hi"\\', (0, 1), (1, 0), 2),
        Account("ünïcödé ✓ 𝄞", (1, 10**18), (0, 0), 3),
        Account("x" * 256, (0, 0), (0, 0), 4),
        Account("{not json}", (5, 5), (5, 5), 5),
    )
    snap = Snapshot(assets, accounts, "test")
    write_snapshot_jsonl(snap, tmp_path / "a.jsonl", tmp_path / "assets.csv")
    write_snapshot_parquet(snap, tmp_path / "a.parquet", tmp_path / "assets.json")
    assert load_snapshot(tmp_path / "a.jsonl", tmp_path / "assets.csv") == snap
    assert load_snapshot(tmp_path / "a.parquet", tmp_path / "assets.json") == snap


def test_parquet_across_row_groups_and_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_module, "PARQUET_ROW_GROUP_ROWS", 7)
    monkeypatch.setattr(snapshot_module, "PARQUET_BATCH_ROWS", 3)
    snap = sample_snapshot(40)
    write_snapshot_parquet(snap, tmp_path / "a.parquet", tmp_path / "assets.csv")
    assert pq.ParquetFile(tmp_path / "a.parquet").num_row_groups == 6
    loaded = load_snapshot(tmp_path / "a.parquet", tmp_path / "assets.csv")
    assert loaded == snap
    assert [a.line for a in loaded.accounts] == list(range(1, 41))
    # A bad value deep in the file is reported at its own row, not its batch's.
    table = pq.read_table(tmp_path / "a.parquet")
    column = table.column("ETH_debt").to_pylist()
    column[32] = "-2"
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.set_column(4, "ETH_debt", pa.array(column)), bad, row_group_size=7)
    assert_error(load_error(bad, tmp_path / "assets.csv"), bad, 33, "ETH_debt", "negative", "row")


def test_parquet_accepts_large_and_dictionary_strings_in_any_column_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.parquet"
    columns: dict[str, Any] = {name: ["0", "1"] for name in reversed(COLUMNS)}
    columns["id"] = pa.array(["alice", "bob"], type=pa.large_string())
    columns["BTC_equity"] = pa.array(["1.5", "2"]).dictionary_encode()
    columns["SOL_debt"] = pa.array(["0", "0.000000001"], type=pa.large_string())
    pq.write_table(pa.table(columns), path)
    snap = load_snapshot(path, ASSETS_FILE)
    assert [(a.id, a.equity[0], a.debt[3]) for a in snap.accounts] == [
        ("alice", 150000000, 0),
        ("bob", 200000000, 1),
    ]


def test_parquet_accepts_string_views(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    columns: dict[str, Any] = good_columns()
    columns["BTC_equity"] = pa.array(["1", "2", "3.5"], type=pa.string_view())
    try:
        pq.write_table(pa.table(columns), path)
    except pa.ArrowNotImplementedError:
        pytest.skip(f"pyarrow {pa.__version__} cannot write string views to Parquet")
    assert pq.ParquetFile(path).schema_arrow.field("BTC_equity").type == pa.string_view()
    snap = load_snapshot(path, ASSETS_FILE)
    assert [a.equity[0] for a in snap.accounts] == [100000000, 200000000, 350000000]


def test_jsonl_tolerates_bom_crlf_and_a_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.ndjson"
    path.write_bytes(b'\xef\xbb\xbf{"id": "alice", "equity": {"BTC": "1"}}\r\n{"id": "bob"}')
    snap = load_snapshot(path, ASSETS_FILE)
    assert [(a.id, a.line) for a in snap.accounts] == [("alice", 1), ("bob", 2)]


def test_format_is_detected_by_content_without_extension(tmp_path: Path) -> None:
    (tmp_path / "accounts").write_bytes((FIX / "good_accounts.parquet").read_bytes())
    assert load_snapshot(tmp_path / "accounts", ASSETS_FILE) == load_snapshot(
        FIX / "good_accounts.csv", ASSETS_FILE
    )


@pytest.mark.parametrize(("name", "kind"), [("a.jsonl", "JSON Lines"), ("a.parquet", "Parquet")])
def test_jsonl_and_parquet_need_an_assets_file(tmp_path: Path, name: str, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes((FIX / f"good_accounts{path.suffix}").read_bytes())
    with pytest.raises(SnapshotError) as info:
        load_snapshot(path)
    assert_error(info.value, path, None, None, f"a {kind} snapshot needs its assets file")


# --- streaming --------------------------------------------------------------------------------


def test_iter_accounts_yields_before_reading_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "alice"}\n{"id": "bob"}\n{"id": "carol", "debt": {"BTC": "-1"}}\n')
    accounts = iter_accounts(path, ASSETS)
    assert [next(accounts).id, next(accounts).id] == ["alice", "bob"]
    with pytest.raises(SnapshotError) as info:
        next(accounts)
    assert_error(info.value, path, 3, "debt.BTC", "negative amount")


def test_a_repeated_id_is_refused_after_the_last_account(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "alice"}\n{"id": "bob"}\n{"id": "alice"}\n{"id": "carol"}\n')
    seen: list[str] = []
    with pytest.raises(SnapshotError) as info:
        for account in iter_accounts(path, ASSETS):
            seen.append(account.id)
    assert seen == ["alice", "bob", "alice", "carol"]
    assert_error(info.value, path, 3, "id", "duplicate account id 'alice' (first at line 1)")


def test_digest_collisions_never_refuse_distinct_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every id gets the same digest: only the real repeat, checked on the ids, is refused."""
    monkeypatch.setattr(snapshot_module, "_id_digest", lambda account_id: b"\0" * 8)
    path = tmp_path / "a.jsonl"
    path.write_text("".join(f'{{"id": "u{i}"}}\n' for i in range(50)))
    assert [a.id for a in iter_accounts(path, ASSETS)] == [f"u{i}" for i in range(50)]
    path.write_text("".join(f'{{"id": "u{i % 40}"}}\n' for i in range(50)))
    with pytest.raises(SnapshotError) as info:
        list(iter_accounts(path, ASSETS))
    assert_error(info.value, path, 41, "id", "duplicate account id 'u0' (first at line 1)")


def test_iter_accounts_over_a_json_snapshot_checks_its_assets() -> None:
    path = FIX / "good_4assets.json"
    accounts = tuple(iter_accounts(path, ASSETS))
    assert accounts == load_snapshot(path).accounts
    with pytest.raises(SnapshotError) as info:
        list(iter_accounts(path, ASSETS[::-1]))
    assert_error(info.value, path, None, "assets", "differ from the assets given")


def test_row_errors_render_and_pickle_with_their_unit() -> None:
    err = SnapshotError("a.parquet", 7, "BTC_equity", "negative amount ('-1')", "row")
    assert str(err) == "a.parquet: row 7: field 'BTC_equity': negative amount ('-1')"
    again = pickle.loads(pickle.dumps(err))
    assert (again.line, again.unit, str(again)) == (7, "row", str(err))
    assert str(SnapshotError("a.jsonl", 3, None, "x")) == "a.jsonl:3: x"


# --- writers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", [write_snapshot_jsonl, write_snapshot_parquet])
def test_writers_replace_files_whole_or_not_at_all(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writer: Callable[[Snapshot, Path, Path], None],
) -> None:
    accounts, assets = tmp_path / "accounts.out", tmp_path / "assets.csv"
    accounts.write_text("old")
    calls = 0

    def failing(value: int, decimals: int) -> str:
        nonlocal calls
        calls += 1
        if calls > 20:  # the assets file is written first, then this fails mid-accounts
            raise OSError(28, "No space left on device")
        return real(value, decimals)

    real: Callable[[int, int], str] = snapshot_module.format_amount
    monkeypatch.setattr(snapshot_module, "format_amount", failing)
    with pytest.raises(OSError):
        writer(sample_snapshot(30), accounts, assets)
    assert accounts.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.out", "assets.csv"]


# --- bad JSON Lines ---------------------------------------------------------------------------

A = '{"id": "alice", "equity": {"BTC": "1"}}\n'
B = '{"id": "bob", "debt": {"USDT": "2"}}\n'

# (file content, line, field, part of the message)
BAD_JSONL: list[tuple[str | bytes, int | None, str | None, str]] = [
    (b'{"id": "alice"}\n{"id": "caf\xe9"}\n', 2, None, "not valid UTF-8 (byte 0xe9"),
    (A + '{"id": "bob",}\n', 2, None, "invalid JSON: Expecting property name"),
    (A + B + '{"id": "carol"} {"id": "dave"}\n', 3, None, "invalid JSON: Extra data"),
    ('{"id": "a", "equity": {"BTC": "1", "BTC": "2"}}\n', 1, "equity.BTC", "more than once"),
    ('{"id": "a", "id": "b"}\n', 1, "id", "more than once"),
    (A + '{"id": "b", "equity": {"BTC": 1.5}}\n', 2, "equity.BTC", "not JSON number 1.5"),
    (A + '{"id": "b", "debt": {"ETH": "-1"}}\n', 2, "debt.ETH", "negative amount ('-1')"),
    (
        '{"id": "b", "equity": {"BTC": "184467440737.09551616"}}\n',
        1,
        "equity.BTC",
        "over the 64-bit limit",
    ),
    ('{"id": "b", "equity": {"USDT": "0.0000001"}}\n', 1, "equity.USDT", "more than 6 decimals"),
    ('{"id": "b", "equity": {"BTC": "1e5"}}\n', 1, "equity.BTC", "exponent notation"),
    (A + B + '{"id": "c", "debt": {"DOGE": "1"}}\n', 3, "debt.DOGE", "unknown asset 'DOGE'"),
    ('{"id": "b", "equity": {"btc": "1"}}\n', 1, "equity.btc", "symbols are case-sensitive"),
    (A + B + A, 3, "id", "duplicate account id 'alice' (first at line 1)"),
    ('{"equity": {"BTC": "1"}}\n', 1, "id", "missing key"),
    (A + '{"id": ""}\n', 2, "id", "empty account id"),
    ('{"id": "bob "}\n', 1, "id", "leading or trailing whitespace"),
    ('{"id": 42}\n', 1, "id", "account ids must be strings, not JSON number 42"),
    ('{"id": null}\n', 1, "id", "account ids must be strings, not null"),
    ('{"id": "b", "debts": {}}\n', 1, "debts", "unknown key"),
    ('{"id": "b", "equity": ["1"]}\n', 1, "equity", "must be a JSON object, not an array"),
    (A + '["bob"]\n', 2, None, "an account must be a JSON object, not an array"),
    (A + "\n" + B, 2, None, "blank line"),
    (A + B + "\n", 3, None, "blank line"),
    (A + "   \r\n" + B, 2, None, "blank line"),
    ('{"id": "b", "x": ' + "[" * 40 + "]" * 40 + "}\n", 1, None, "nested deeper than 32"),
    (
        json.dumps({"assets": [], "accounts": []}) + "\n",
        1,
        None,
        "a whole JSON snapshot on one line",
    ),
    ('{\n  "id": "alice"\n}\n', 1, None, "invalid JSON"),
    ("", None, None, "empty file"),
    ("\n\n", None, None, "empty file"),
]


@pytest.mark.parametrize(
    ("content", "line", "field", "fragment"), BAD_JSONL, ids=[c[3] for c in BAD_JSONL]
)
def test_bad_jsonl(
    tmp_path: Path, content: str | bytes, line: int | None, field: str | None, fragment: str
) -> None:
    path = tmp_path / "accounts.jsonl"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    assert_error(load_error(path), path, line, field, fragment)


# --- bad Parquet ------------------------------------------------------------------------------


def good_columns(n: int = 3) -> dict[str, Any]:
    """Columns of n good accounts: ids u1..un, 1 BTC of equity each, everything else 0."""
    columns: dict[str, Any] = {name: ["0"] * n for name in COLUMNS}
    columns["id"] = [f"u{i}" for i in range(1, n + 1)]
    columns["BTC_equity"] = ["1"] * n
    return columns


def with_cell(name: str, row: int, value: Any) -> dict[str, Any]:
    columns = good_columns()
    columns[name] = list(columns[name])
    columns[name][row - 1] = value
    return columns


def with_column(name: str, values: Any) -> dict[str, Any]:
    columns = good_columns()
    columns[name] = values
    return columns


def without(name: str) -> dict[str, Any]:
    columns = good_columns()
    del columns[name]
    return columns


def extra(name: str) -> dict[str, Any]:
    columns = good_columns()
    columns[name] = ["x"] * 3
    return columns


def invalid_utf8_ids() -> pa.Array:
    return pa.array([b"u1", b"caf\xe9", b"u3"], type=pa.binary()).view(pa.string())


# (columns, row, field, part of the message); row None for problems of a whole column
BAD_PARQUET: list[tuple[dict[str, Any], int | None, str | None, str]] = [
    (with_cell("BTC_equity", 2, None), 2, "BTC_equity", "missing amount (null)"),
    (with_cell("id", 3, None), 3, "id", "missing account id (null)"),
    (with_cell("id", 2, ""), 2, "id", "empty account id"),
    (with_cell("id", 2, "u\t2"), 2, "id", "non-printable"),
    (with_cell("id", 3, "u1"), 3, "id", "duplicate account id 'u1' (first at row 1)"),
    (with_cell("ETH_debt", 3, "-1"), 3, "ETH_debt", "negative amount ('-1')"),
    (with_cell("BTC_debt", 1, "184467440737.09551616"), 1, "BTC_debt", "over the 64-bit limit"),
    (with_cell("SOL_equity", 2, "1e9"), 2, "SOL_equity", "exponent notation"),
    (with_cell("USDT_equity", 2, ""), 2, "USDT_equity", "empty amount"),
    (with_cell("USDT_equity", 1, "0.1234567"), 1, "USDT_equity", "more than 6 decimals"),
    (with_column("id", invalid_utf8_ids()), 2, "id", "not valid UTF-8 (byte 0xe9"),
    (with_column("BTC_equity", [1.5, 2.0, 0.0]), None, "BTC_equity", "floats cannot hold"),
    (
        with_column("ETH_debt", pa.array([1, 2, 3], type=pa.float32())),
        None,
        "ETH_debt",
        "column of float: floats cannot hold amounts exactly",
    ),
    (with_column("USDT_debt", [1, 2, 3]), None, "USDT_debt", "store amounts as decimal strings"),
    (
        with_column("SOL_debt", pa.array([1, 2, 3], type=pa.decimal128(10, 2))),
        None,
        "SOL_debt",
        "column of decimal128(10, 2): store amounts as decimal strings",
    ),
    (with_column("BTC_debt", [True, False, True]), None, "BTC_debt", "not bool"),
    (
        with_column("id", [1, 2, 3]),
        None,
        "id",
        "account ids must be strings; this column holds int64",
    ),
    (without("SOL_debt"), None, "SOL_debt", "missing column"),
    (without("id"), None, "id", "missing column"),
    (extra("name"), None, "name", "unexpected column"),
    (extra("DOGE_equity"), None, "DOGE_equity", "unknown asset 'DOGE'"),
    (extra(" BTC_debt"), None, " BTC_debt", "surrounding whitespace"),
    (
        {name: pa.array([], type=pa.string()) for name in COLUMNS},
        None,
        None,
        "no accounts (the file has no rows)",
    ),
]


@pytest.mark.parametrize(
    ("columns", "row", "field", "fragment"), BAD_PARQUET, ids=[c[3] for c in BAD_PARQUET]
)
def test_bad_parquet(
    tmp_path: Path, columns: dict[str, Any], row: int | None, field: str | None, fragment: str
) -> None:
    path = tmp_path / "accounts.parquet"
    pq.write_table(pa.table(columns), path)
    assert_error(load_error(path), path, row, field, fragment, "row")


def test_parquet_with_a_repeated_column(tmp_path: Path) -> None:
    path = tmp_path / "accounts.parquet"
    names = [*COLUMNS, "ETH_equity"]
    arrays = [pa.array(good_columns()[name]) for name in names]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)
    assert_error(load_error(path), path, None, "ETH_equity", "duplicate column (columns 4 and 10)")


def _good_parquet_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "good.parquet"
    write_snapshot_parquet(sample_snapshot(50), path, tmp_path / "assets.csv")
    return path.read_bytes()


def _damaged_pages(data: bytes) -> bytes:
    """The file with every byte between the leading magic and the footer overwritten."""
    footer: int = len(data) - 8 - struct.unpack("<I", data[-8:-4])[0]
    return data[:4] + b"\x5a" * (footer - 4) + data[footer:]


@pytest.mark.parametrize(
    ("damage", "line", "fragment"),
    [
        (lambda data: b"", None, "empty file"),
        (lambda data: b"id,BTC_equity\nalice,1\n", None, "not a Parquet file"),
        (lambda data: data[: len(data) // 2], None, "truncated or damaged Parquet file"),
        (lambda data: data[:-1], None, "truncated or damaged Parquet file"),
        (lambda data: data[:8] + data[-4:], None, "damaged Parquet file"),
        (_damaged_pages, 1, "damaged Parquet file"),
        (
            lambda data: data[: len(data) - 60] + b"\xff" * 52 + data[-8:],
            None,
            "damaged Parquet file",
        ),
    ],
    ids=["empty", "csv", "half", "last byte", "header and magic", "pages", "footer"],
)
def test_parquet_damaged_or_not_parquet(
    tmp_path: Path, damage: Callable[[bytes], bytes], line: int | None, fragment: str
) -> None:
    path = tmp_path / "accounts.parquet"
    path.write_bytes(damage(_good_parquet_bytes(tmp_path)))
    assert_error(load_error(path, tmp_path / "assets.csv"), path, line, None, fragment, "row")


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "bad.jsonl",
            '{"id": "alice", "equity": {"BTC": "1"}}\n{"id": "bob", "equity": {"BTC": "-1"}}\n',
            "bad.jsonl:2: field 'equity.BTC': negative amount ('-1')",
        ),
        ("bad.parquet", None, "bad.parquet: row 2: field 'USDT_debt': missing amount (null)"),
    ],
)
def test_prove_refuses_bad_jsonl_and_parquet_writing_nothing(
    tmp_path: Path, name: str, content: str | None, expected: str
) -> None:
    from zksolvency.cli.main import main

    inputs, work = tmp_path / "inputs", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    path = inputs / name
    if content is None:
        columns: dict[str, list[str | None]] = {
            n: ["0", "0"] for n in ("id", "BTC_equity", "BTC_debt", "USDT_equity")
        }
        columns.update(id=["alice", "bob"], USDT_debt=["1", None])
        pq.write_table(pa.table(columns), path)
    else:
        path.write_text(content)
    assets = inputs / "assets.csv"
    assets.write_text("symbol,decimals,price_usd\nBTC,8,65000.12\nUSDT,6,1.0001\n")
    out = work / "epoch"
    args = [path, "--assets-file", assets, "--reserves", FIX / "small_2assets_reserves.json"]
    args += ["--epoch", 1, "--out", out, "--batch-levels", 1, "--tree-depth", 4, "--assets", 2]
    result = CliRunner().invoke(main, ["prove", *map(str, args)])
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.stderr
    assert list(work.iterdir()) == []


# --- memory and throughput --------------------------------------------------------------------

MEMORY_ACCOUNTS = 200_000


def _write(snap: Snapshot, fmt: str, directory: Path) -> tuple[Path, Path | None]:
    """Write `snap` in one format; (accounts file, assets file or None)."""
    accounts, assets = directory / f"accounts.{fmt}", directory / "assets.csv"
    if fmt == "json":
        write_snapshot_json(snap, accounts)
        return accounts, None
    writer = {
        "csv": write_snapshot_csv,
        "jsonl": write_snapshot_jsonl,
        "parquet": write_snapshot_parquet,
    }[fmt]
    writer(snap, accounts, assets)
    return accounts, assets


def _traced_peak(run: Callable[[], object]) -> int:
    """Peak bytes allocated (as tracemalloc sees them) while `run` runs, beyond the start."""
    gc.collect()
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    directory = tmp_path_factory.mktemp("big")
    snap = sample_snapshot(MEMORY_ACCOUNTS)
    files = {fmt: _write(snap, fmt, directory)[0] for fmt in ("csv", "jsonl", "parquet", "json")}
    del snap
    yield files


def assert_streaming_memory_bounded(path: Path, n: int) -> None:
    """Iterating without keeping the accounts needs a small fraction of what holding them does.

    tracemalloc sees Python objects, numpy's buffers included; Arrow's own buffers it does not,
    so for Parquet their high-water mark is sampled from pyarrow as the iteration goes.
    """
    # First use imports and caches things (numpy's sort, pyarrow's modules) once per process:
    # not what is measured here.
    for warm_up in (FIX / "good_accounts.jsonl", FIX / "good_accounts.parquet"):
        list(iter_accounts(warm_up, ASSETS))
    arrow_peak = 0

    def stream() -> int:
        nonlocal arrow_peak
        base = pa.total_allocated_bytes()
        count = 0
        for count, _ in enumerate(iter_accounts(path, ASSETS_OF_SAMPLE), 1):
            if count % 256 == 0:
                arrow_peak = max(arrow_peak, pa.total_allocated_bytes() - base)
        return count

    streaming = _traced_peak(stream)
    holding = _traced_peak(lambda: list(iter_accounts(path, ASSETS_OF_SAMPLE)))
    print(
        f"\n{path.name}, {n} accounts: streaming peak {streaming / 1e6:.1f} MB "
        f"({streaming / n:.1f} B/account), holding peak {holding / 1e6:.1f} MB "
        f"({holding / n:.0f} B/account), ratio {streaming / holding:.3f}; "
        f"Arrow buffers peak {arrow_peak / 1e6:.1f} MB"
    )
    assert streaming < holding / 4
    assert arrow_peak < 32e6


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_streaming_memory_is_bounded_quick(tmp_path: Path, fmt: str) -> None:
    """The default run's check, on fewer accounts (the slow test reads 200k)."""
    path, _ = _write(sample_snapshot(20_000), fmt, tmp_path)
    assert_streaming_memory_bounded(path, 20_000)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_streaming_memory_is_bounded(big_files: dict[str, Path], fmt: str) -> None:
    assert_streaming_memory_bounded(big_files[fmt], MEMORY_ACCOUNTS)


@pytest.mark.bench
def test_throughput(big_files: dict[str, Path]) -> None:
    """Accounts per second read by iter_accounts, per format (printed, not asserted)."""
    print()
    for fmt, path in big_files.items():
        start = time.perf_counter()
        count = sum(1 for _ in iter_accounts(path, ASSETS_OF_SAMPLE))
        seconds = time.perf_counter() - start
        size = path.stat().st_size
        print(
            f"{fmt:8} {count} accounts in {seconds:.2f} s: {count / seconds:,.0f} accounts/s "
            f"({size / 1e6:.1f} MB file)"
        )
        assert count == MEMORY_ACCOUNTS

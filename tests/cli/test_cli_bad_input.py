"""Bad input: exit code 2, a message naming the file, line and field, and nothing written.

None of these needs keys: every check runs before the circuits are compiled or set up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
SMALL = SNAPSHOTS / "small_2assets.json"
RESERVES = SNAPSHOTS / "small_2assets_reserves.json"
TINY = ("--batch-levels", "1", "--tree-depth", "4", "--assets", "2")

#: id -> (prove arguments before --out, fragments the error must contain)
PROVE_CASES: dict[str, tuple[list[object], list[str]]] = {
    "negative amount": (
        [
            SNAPSHOTS / "bad_negative.csv",
            "--assets-file",
            SNAPSHOTS / "good_assets.csv",
            "--reserves",
            RESERVES,
            "--epoch",
            1,
        ],
        ["bad_negative.csv:3: field 'BTC_equity'", "negative amount"],
    ),
    "unknown asset in snapshot": (
        [SNAPSHOTS / "bad_unknown_asset.json", "--reserves", RESERVES, "--epoch", 1],
        ["bad_unknown_asset.json:1", "DOGE"],
    ),
    "invalid JSON snapshot": (
        [SNAPSHOTS / "bad_invalid.json", "--reserves", RESERVES, "--epoch", 1],
        ["bad_invalid.json:", "invalid JSON"],
    ),
    "CSV snapshot without assets file": (
        [SNAPSHOTS / "good_accounts.csv", "--reserves", RESERVES, "--epoch", 1],
        ["good_accounts.csv", "needs its assets file"],
    ),
    "insolvent account": (
        [SNAPSHOTS / "small_2assets_insolvent.json", "--reserves", RESERVES, "--epoch", 1],
        [
            "1 account(s) have less equity than debt",
            "mallory (line 3) in ",
            "small_2assets_insolvent.json: equity worth 60006 USD < debt worth 65000.12 USD",
        ],
    ),
    "reserves short of liabilities": (
        [SMALL, "--reserves", SNAPSHOTS / "small_2assets_reserves_short.json", "--epoch", 1],
        ["reserves do not cover net liabilities", "BTC: liabilities 4.65000001 > reserves 4.5"],
    ),
    "reserve for an unknown asset": (
        [SMALL, "--reserves", SNAPSHOTS / "small_2assets_reserves_unknown.json", "--epoch", 1],
        ["small_2assets_reserves_unknown.json:3: field 'symbol'", "unknown asset 'DOGE'"],
    ),
    "missing reserve": (
        [SMALL, "--reserves", SNAPSHOTS / "small_2assets_reserves_missing.csv", "--epoch", 1],
        ["small_2assets_reserves_missing.csv: field 'USDT'", "no reserve given"],
    ),
    "more assets than circuit slots": (
        [
            SNAPSHOTS / "good_4assets.json",
            "--reserves",
            SNAPSHOTS / "good_4assets_reserves.json",
            "--epoch",
            1,
        ],
        ["the snapshot has 4 assets but the circuits take 2"],
    ),
    "epoch 0": (
        [SMALL, "--reserves", RESERVES, "--epoch", 0],
        ["Invalid value for '--epoch'", "0 is not in the range"],
    ),
    "missing snapshot file": (
        [SNAPSHOTS / "no_such_file.json", "--reserves", RESERVES, "--epoch", 1],
        ["no_such_file.json", "does not exist"],
    ),
}


@pytest.mark.parametrize("case", sorted(PROVE_CASES))
def test_prove_refuses_bad_input_and_writes_nothing(
    cli: Callable[..., Result], tmp_path: Path, case: str
) -> None:
    args, fragments = PROVE_CASES[case]
    out = tmp_path / "epoch"
    result = cli("prove", *args, "--out", out, *TINY)
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert not out.exists(), "bad input must not create the output directory"
    assert list(tmp_path.iterdir()) == []


def test_prove_refuses_impossible_circuit_params(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    out = tmp_path / "epoch"
    result = cli(
        "prove", SMALL, "--reserves", RESERVES, "--epoch", 1, "--out", out,
        "--batch-levels", 4, "--tree-depth", 4, "--assets", 2,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "batch_levels < tree_depth" in result.stderr
    assert not out.exists()


def test_verify_inclusion_needs_a_source(cli: Callable[..., Result], tmp_path: Path) -> None:
    pkg = tmp_path / "pkg.json"
    pkg.write_text("{}")
    for extra, message in (
        ([], "Missing option '--bundle'"),
        (["--rpc", "http://127.0.0.1:9"], "Missing option '--bundle'"),
        (["--bundle", tmp_path, "--registry", "0x" + "11" * 20], "--registry needs --rpc"),
    ):
        result = cli("verify-inclusion", pkg, *extra)
        assert result.exit_code == 2, result.output
        assert message in result.stderr


def test_verify_refuses_files_that_are_not_packages(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    for text, message in (
        ("not json at all\n", f"{bad}:1: invalid JSON"),
        (
            '{"format": "zksolvency-inclusion/2"}',
            f"{bad}: not a zksolvency-inclusion/3 package (format 'zksolvency-inclusion/2')",
        ),
    ):
        bad.write_text(text)
        result = cli("verify-inclusion", bad, "--bundle", tmp_path)
        assert result.exit_code == 2, result.output
        assert message in result.stderr


def test_verify_bundle_refuses_a_directory_without_manifest(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    result = cli("verify-bundle", tmp_path)
    assert result.exit_code == 2
    assert "no manifest.json (is this an epoch directory?)" in result.stderr

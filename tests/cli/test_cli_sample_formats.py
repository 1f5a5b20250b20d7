"""`sample-snapshot` writes every accounts format `prove` reads, and they all load the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from zksolvency.prover.reserves import load_reserves
from zksolvency.prover.snapshot import load_snapshot


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_sample_snapshot_in_each_streaming_format(
    cli: Callable[..., Result], tmp_path: Path, suffix: str
) -> None:
    reference = tmp_path / "ref.json"
    assert (
        cli("sample-snapshot", "--accounts", "12", "--seed", "3", "--out", reference).exit_code == 0
    )
    out = tmp_path / f"s{suffix}"
    result = cli("sample-snapshot", "--accounts", "12", "--seed", "3", "--out", out)
    assets = tmp_path / "s_assets.csv"
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {out} and {assets}"
    want, got = load_snapshot(reference), load_snapshot(out, assets)
    assert got.assets == want.assets
    assert [(a.id, a.equity, a.debt) for a in got.accounts] == [
        (a.id, a.equity, a.debt) for a in want.accounts
    ]


@pytest.mark.parametrize("name", ["reserves.json", "reserves.csv", "reserves"])
def test_sample_reserves_in_the_format_their_name_says(
    cli: Callable[..., Result], tmp_path: Path, name: str
) -> None:
    """--reserves-out writes what `prove --reserves` reads back from that name: JSON for .json,
    else CSV; both give the same amounts."""
    snap = tmp_path / "s.json"
    out = tmp_path / name
    args = ("--accounts", "9", "--seed", "4", "--out", snap, "--reserves-out", out)
    assert cli("sample-snapshot", *args).exit_code == 0
    text = out.read_text()
    assert text.startswith("{") == (name.endswith(".json"))
    assets = load_snapshot(snap).assets
    reference = tmp_path / "ref.json"
    assert cli("sample-snapshot", *args[:-1], reference).exit_code == 0
    assert load_reserves(out, assets) == load_reserves(reference, assets)
    assert all(load_reserves(out, assets))

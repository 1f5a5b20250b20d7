"""Margin through the CLI at the tiny shape: the strict-mode refusal that names the failing
accounts, a shortfall-mode epoch proven, verified and tampered with, and the margin figures the
tiny epoch publishes and shows its users."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SNAPSHOT = FIXTURES / "snapshots" / "small_2assets.json"
RESERVES = FIXTURES / "snapshots" / "small_2assets_reserves.json"
MARGIN = FIXTURES / "margin"
FAILING = (
    "--instruments", str(MARGIN / "tiny_instruments.csv"),
    "--market", str(MARGIN / "tiny_market.csv"),
    "--positions", str(MARGIN / "failing_positions.csv"),
    "--haircuts", str(MARGIN / "tiny_haircuts.csv"),
)  # fmt: skip


@pytest.fixture(scope="module")
def params(tiny_inputs: Any) -> tuple[str, ...]:
    assert tiny_inputs.snapshot == SNAPSHOT
    return tuple(tiny_inputs.params)


def _prove(cli: Callable[..., Result], params: tuple[str, ...], out: Path, *extra: str) -> Result:
    return cli(
        "prove", SNAPSHOT, "--reserves", RESERVES, "--epoch", "1", "--out", out,
        *params, *FAILING, *extra,
    )  # fmt: skip


def test_strict_mode_names_the_failing_account_and_writes_nothing(
    cli: Callable[..., Result], params: tuple[str, ...], tmp_path: Path
) -> None:
    out = tmp_path / "epoch"
    result = _prove(cli, params, out)
    assert result.exit_code == 2, result.output
    # dave holds 0.00000001 BTC and is short 1 BTC of perpetuals: the extreme rally costs
    # him 35 % of 3 × 15 % of 65,000 USD.
    assert "1 account(s) fail the margin rule (strict mode)" in result.output
    assert "dave (line 4) in " in result.output
    assert "price +3×range" in result.output
    assert "alice" not in result.output
    assert not out.exists()


@pytest.fixture(scope="module")
def shortfall_epoch(
    tmp_path_factory: pytest.TempPathFactory, params: tuple[str, ...], toolchain: None
) -> tuple[Path, Result]:
    from zksolvency.cli.main import main

    out = tmp_path_factory.mktemp("shortfall") / "epoch"
    args = [
        "prove", str(SNAPSHOT), "--reserves", str(RESERVES), "--epoch", "1",
        "--out", str(out), *params, *FAILING,
        "--mode", "shortfall", "--insurance-fund", "25000",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, result


def test_shortfall_mode_proves_and_publishes_the_shortfall(
    cli: Callable[..., Result], shortfall_epoch: tuple[Path, Result]
) -> None:
    out, result = shortfall_epoch
    m = json.loads((out / "manifest.json").read_text())
    short = int(m["shortfall"])
    assert short > 0
    assert m["context"]["mode"] == "shortfall"
    assert int(m["insurance_fund"]) == 25_000 * 10**26
    assert m["proofs"]["solvency"]["public_signals"][5:7] == [str(short), m["insurance_fund"]]
    assert "covered by an insurance fund of 25,000.00 USD" in result.stdout
    private = json.loads((out / "private" / "margin.json").read_text())
    assert private["failing"] == 1 and private["accounts"] == 5
    ok = cli("verify-bundle", out)
    assert ok.exit_code == 0, ok.output


def test_an_account_short_in_shortfall_mode_still_verifies(
    cli: Callable[..., Result], shortfall_epoch: tuple[Path, Result], tmp_path: Path
) -> None:
    """dave falls short; the epoch counts his shortfall against the fund, and his own check
    says so rather than failing."""
    out = shortfall_epoch[0]
    pkg = tmp_path / "dave.json"
    assert cli("export", out, "--account", "dave", "--out", pkg).exit_code == 0
    result = cli("verify-inclusion", pkg, "--bundle", out)
    assert result.exit_code == 0, result.output
    margin = next(line for line in result.stdout.splitlines() if "Your account's margin" in line)
    assert "[PASS]" in margin and "short of its margin requirement" in margin
    assert "counts that against its insurance fund" in margin


@pytest.mark.parametrize(
    ("field", "value"),
    [("shortfall", "0"), ("insurance_fund", "1")],
)
def test_edited_shortfall_or_fund_fails_verification(
    cli: Callable[..., Result],
    shortfall_epoch: tuple[Path, Result],
    tmp_path: Path,
    field: str,
    value: str,
) -> None:
    copy = tmp_path / "epoch"
    shutil.copytree(shortfall_epoch[0], copy, ignore=shutil.ignore_patterns("private"))
    path = copy / "manifest.json"
    m = json.loads(path.read_text())
    m[field] = value
    if field == "insurance_fund":
        m["context"]["insurance_fund"] = value
    path.write_text(json.dumps(m))
    result = cli("verify-bundle", copy)
    assert result.exit_code == 1, result.output


def test_fund_too_small_is_refused_before_proving(
    cli: Callable[..., Result], params: tuple[str, ...], tmp_path: Path
) -> None:
    result = _prove(cli, params, tmp_path / "e", "--mode", "shortfall", "--insurance-fund", "1")
    assert result.exit_code == 2, result.output
    assert "exceeds the insurance fund 1.00 USD" in result.output
    assert "dave (line 4)" in result.output


def test_fund_in_strict_mode_is_a_usage_error(
    cli: Callable[..., Result], params: tuple[str, ...], tmp_path: Path
) -> None:
    result = _prove(cli, params, tmp_path / "e", "--insurance-fund", "10")
    assert result.exit_code == 2
    assert "--insurance-fund only applies with --mode shortfall" in result.output


def test_tiny_epoch_publishes_its_margin_context(tiny_epoch: Any) -> None:
    m = tiny_epoch.manifest
    c = m["context"]
    assert c["mode"] == "strict" and m["shortfall"] == "0"
    assert [i["id"] for i in c["risk"]["instruments"]] == ["BTC-PERP", "BTC-C70K"]
    assert len(c["risk"]["arrays"]) == 2 and all(len(r) == 8 for r in c["risk"]["arrays"])
    btc = c["assets"][0]
    assert btc["tier_rates_bps"] == [9500, 9000] and btc["cap_bps"] == 10000
    assert "margin: strict mode, 2 instruments, 8 scenarios" in tiny_epoch.prove_result.stdout


def test_risk_check_recomputes_the_tiny_epoch(cli: Callable[..., Result], tiny_epoch: Any) -> None:
    result = cli("risk", "check", tiny_epoch.dir)
    assert result.exit_code == 0, result.output
    assert "BTC-C70K" in result.stdout and "OK: risk arrays" in result.stdout


def test_risk_check_refuses_a_flattering_array(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path: Path
) -> None:
    copy = tmp_path / "epoch"
    shutil.copytree(tiny_epoch.dir, copy, ignore=shutil.ignore_patterns("private"))
    path = copy / "manifest.json"
    m = json.loads(path.read_text())
    m["context"]["risk"]["arrays"][1][7] = "0"  # the short calls' worst loss, gone
    path.write_text(json.dumps(m))
    result = cli("risk", "check", copy)
    assert result.exit_code == 1, result.output
    assert "instrument 1 scenario 7" in result.output
    assert cli("verify-bundle", copy).exit_code == 1


def test_risk_report_lists_the_tightest_accounts(
    cli: Callable[..., Result], params: tuple[str, ...]
) -> None:
    result = cli("risk", "report", SNAPSHOT, *params, *FAILING, "--top", "2")
    assert result.exit_code == 0, result.output
    assert "BTC-C70K" in result.stdout
    assert "accounts: 5, 3 with positions, 1 failing the margin rule" in result.stdout
    lines = [ln for ln in result.stdout.splitlines() if "headroom" in ln]
    assert len(lines) == 2 and "dave" in lines[0] and "-10,237.51 USD" in lines[0]

"""`zksolvency report` on the session's tiny epoch: the summary it prints, the page it writes,
and bad input refused with exit code 2 and nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from zksolvency.cli.main import main


def test_report_of_a_private_and_a_public_epoch(tiny_epoch: Any, tmp_path: Path) -> None:
    public = tmp_path / "public"
    shutil.copytree(tiny_epoch.dir, public, ignore=shutil.ignore_patterns("private"))
    out = tmp_path / "site" / "report"
    result = CliRunner().invoke(
        main, ["report", str(tiny_epoch.dir), str(public), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    sha = tiny_epoch.sha256()
    for label in ("epoch 1 (epoch)", "epoch 1 (public)"):  # two directories of one epoch
        assert any(line.startswith(f"{label}: 5 accounts in 3 batches") for line in lines)
    assert f"bundle sha256 {sha[:16]}..." in result.stdout
    assert (
        "  BTC      net liabilities           4.65000001   reserves 0 verified + 5 declared"
        in lines
    )
    assert (
        "  distributions: collateral ratio not shown (<5 accounts), headroom 1 bin; <5 accounts "
        "without debt (bins under 5 accounts merged)"
    ) in lines
    assert "  distributions: not shown (no private/accounts.jsonl: a public bundle)" in lines
    assert "  gas: not published from this directory" in lines
    assert sum(1 for line in lines if line.startswith("  proving time: ")) == 2
    assert lines[-1] == f"wrote 3 figures and {(out / 'index.html').resolve()}"
    assert (out / "index.html").is_file() and (out / "reserves.png").is_file()
    for row in (tiny_epoch.dir / "private" / "accounts.jsonl").read_text().splitlines():
        assert json.loads(row)["salt"] not in result.output  # nor in the summary


def test_a_directory_without_manifest_is_bad_input(tiny_epoch: Any, tmp_path: Path) -> None:
    empty = tmp_path / "not-an-epoch"
    empty.mkdir()
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main, ["report", str(tiny_epoch.dir), str(empty), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert f"error: {empty}: no manifest.json (is this an epoch directory?)" in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["not-an-epoch"]


def test_other_bad_input_exits_2(tiny_epoch: Any, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    none = runner.invoke(main, ["report", "--out", str(tmp_path / "r")])
    assert none.exit_code == 2 and "Missing argument" in none.stderr

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused = runner.invoke(main, ["report", str(tiny_epoch.dir), "--out", str(busy)])
    assert refused.exit_code == 2
    assert "holds files other than a report's" in refused.stderr
    assert (busy / "notes.txt").read_text() == "mine"

    epoch = tmp_path / "epoch"
    shutil.copytree(tiny_epoch.dir, epoch, ignore=shutil.ignore_patterns("private"))
    (epoch / "publication.json").write_text('{"format": "zksolvency-publication/1"')
    broken = runner.invoke(main, ["report", str(epoch), "--out", str(tmp_path / "r")])
    assert broken.exit_code == 2
    assert f"{epoch / 'publication.json'}: unreadable" in broken.stderr
    assert not (tmp_path / "r").exists()

"""The auditor's report (prover/report.py): the privacy rule for histograms, the numbers read
from an epoch directory, and the rendered page and figures for the session's tiny epoch."""

from __future__ import annotations

import bisect
import itertools
import json
import re
import shutil
import struct
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from zksolvency.prover import report
from zksolvency.prover.bundle import BundleFormatError
from zksolvency.prover.report import (
    HEADROOM_EDGES,
    RATIO_EDGES,
    Bin,
    K,
    ReportError,
    gather_distribution,
    gather_epoch,
    histogram,
    merge_small_bins,
    render,
)

PUBLICATION = {
    "format": "zksolvency-publication/1",
    "epoch": 1,
    "chain_id": 31337,
    "registry": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "transactions": [
        {"kind": "open", "index": None, "tx": "0x01", "gas_used": 120_000},
        {"kind": "batch", "index": 0, "tx": "0x02", "gas_used": 310_000},
        {"kind": "batch", "index": 1, "tx": "0x03", "gas_used": 300_000},
        {"kind": "batch", "index": 2, "tx": "0x04", "gas_used": 300_500},
        {"kind": "finalize", "index": None, "tx": "0x05", "gas_used": 450_000},
    ],
    "total_gas": 1_480_500,
}


# --- the privacy rule, without an epoch -----------------------------------------------------


@given(st.lists(st.integers(0, 12), min_size=1, max_size=25))
def test_merged_groups_cover_every_bin_and_hold_zero_or_at_least_k(counts: list[int]) -> None:
    groups = merge_small_bins(counts)
    # contiguous, in order, covering every bin once, and no account lost or added
    assert groups[0][0] == 0 and groups[-1][1] == len(counts) - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(groups))
    assert all(first <= last for first, last, _ in groups)
    assert [sum(counts[a : b + 1]) for a, b, _ in groups] == [c for _, _, c in groups]
    if sum(counts) >= K:
        assert all(c == 0 or c >= K for _, _, c in groups)
    else:  # the caller shows nothing: at most one group holds the few accounts there are
        assert sum(1 for _, _, c in groups if c) <= 1


def test_small_bins_merge_upwards_and_a_top_remainder_folds_back() -> None:
    #         0  1  2  3  4  5  6  7
    counts = [0, 1, 0, 3, 6, 0, 2, 0]
    # bins 1 to 3 hold 4: bin 4 closes the group at 10; the 2 of bin 6 (and the empty bin 7)
    # then fold back into it, across the empty bin 5
    assert merge_small_bins(counts) == [(0, 0, 0), (1, 7, 12)]
    # five single accounts in a row make one group; empty bins around groups stay apart
    assert merge_small_bins([5, 0, 1, 1, 1, 1, 1, 0]) == [
        (0, 0, 5),
        (1, 1, 0),
        (2, 6, 5),
        (7, 7, 0),
    ]
    # fewer than K in all: one group, which the caller does not show
    assert merge_small_bins([0, 0, 4]) == [(0, 2, 4)]


def test_histogram_labels_come_from_the_fixed_edges() -> None:
    counts = [0] * (len(RATIO_EDGES) + 1)
    counts[1], counts[3], counts[5], counts[8], counts[9] = 9, 2, 1, 10, 6
    h = histogram(counts, RATIO_EDGES, report._ratio_label)
    assert h.total == 28 and not h.suppressed
    assert h.bins == (
        Bin("1× to 1.1×", 9),
        Bin("1.1× to 1.25×", 0),  # an empty bin between groups stays, empty
        Bin("1.25× to 100×", 13),
        Bin("100× to 1000×", 6),
    )
    few = histogram([0, 3, 1, 0], RATIO_EDGES[:3], report._ratio_label)
    assert few.suppressed and few.bins == ()


def test_open_ended_and_whole_range_labels() -> None:
    usd = [0] * (len(HEADROOM_EDGES) + 1)
    usd[0], usd[-1] = 5, 7
    h = histogram(usd, HEADROOM_EDGES, report._usd_label)
    assert len(h.bins) == len(usd)  # nothing to merge: 5 and 7 accounts, empty bins between
    assert (h.bins[0], h.bins[-1]) == (Bin("< −$1B", 5), Bin("≥ $1B", 7))
    assert [b.label for b in h.bins[10:14]] == ["−$1 to $0", "$0 to $1", "$1 to $10", "$10 to $100"]
    # one account below and four above any edge merge into a single group: "all"
    assert [b.label for b in histogram([1, 0, 4], (Fraction(0), Fraction(1)), str).bins] == ["all"]


# --- reading an epoch directory -------------------------------------------------------------


def _private_rows(epoch_dir: Path) -> list[dict[str, Any]]:
    lines = (epoch_dir / "private" / "accounts.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


def test_proof_seconds_from_each_backends_result_line() -> None:
    from zksolvency.prover.epoch import proof_seconds

    snarkjs = {"i": 0, "ok": True, "seconds": 2.0004, "witness_s": 0.5, "prove_s": 1.2}
    native = {"i": 0, "ok": True, "witness_s": 0.5, "prove_s": 1.25, "verify_s": 0.25}
    assert proof_seconds(snarkjs) == 2.0  # the whole job, not the sum of its stages
    assert proof_seconds({**native, "backend": "native", "worker": "tcp://w"}) == 2.0
    assert proof_seconds({"i": 0, "ok": True}) is None


def test_proving_time_is_read_from_the_meta_files(tiny_epoch: Any, tmp_path: Path) -> None:
    data = gather_epoch(tiny_epoch.dir)
    assert data.proving.complete and len(data.proving.batches) == 3
    assert all(s is not None and s > 0 for s in data.proving.all)
    metas = sorted((tiny_epoch.dir / "proofs").glob("*.meta.json"))
    recorded = sum(json.loads(p.read_text())["seconds"] for p in metas)
    assert data.proving.total == pytest.approx(recorded)
    # an epoch proven before the field existed: the same files without "seconds"
    old = tmp_path / "old"
    shutil.copytree(tiny_epoch.dir, old, ignore=shutil.ignore_patterns("private"))
    for p in (old / "proofs").glob("*.meta.json"):
        meta = json.loads(p.read_text())
        del meta["seconds"]
        p.write_text(json.dumps(meta))
    assert gather_epoch(old).proving.recorded == 0


def test_totals_and_reserves_are_the_manifest_raw_numbers(tiny_epoch: Any) -> None:
    data = gather_epoch(tiny_epoch.dir)
    m = tiny_epoch.manifest
    assert [a.symbol for a in data.assets] == ["BTC", "USDT"]
    for a in data.assets:
        assert a.text(a.net) == m["totals"][a.symbol]["net"]
        assert a.text(a.verified) == m["reserves"]["verified"][a.symbol]
        assert a.text(a.declared) == m["reserves"]["declared"][a.symbol]
    btc = data.assets[0]
    assert btc.amount(btc.net) == pytest.approx(4.65000001)
    assert data.bundle_sha256 == tiny_epoch.sha256()
    assert data.root == m["root"] and data.accounts == 5 and data.batches == 3
    assert data.development_setup is m["development_setup"]
    assert data.publication is None


def test_distribution_of_the_tiny_epoch(
    tiny_epoch: Any, risk_headrooms: dict[str, Fraction]
) -> None:
    d = gather_distribution(tiny_epoch.dir, tiny_epoch.manifest)
    assert d.accounts == 5
    assert d.no_debt == 2  # alice and dave
    assert d.ratio.total == 3 and d.ratio.suppressed and d.ratio.bins == ()
    # The same accounts binned from the snapshot by another path (`risk report`), then merged
    counts = [0] * (len(HEADROOM_EDGES) + 1)
    for usd in risk_headrooms.values():
        counts[bisect.bisect_right(HEADROOM_EDGES, usd)] += 1
    assert d.headroom == histogram(counts, HEADROOM_EDGES, report._usd_label)
    assert d.headroom.bins == (Bin("$0 to $1M", 5),)  # five decades merged into one bin


def _synthetic(tiny_epoch: Any, folder: Path, rows: list[tuple[list[str], list[str]]]) -> Any:
    """The tiny epoch's manifest, for the accounts `rows` (equity and debt per asset, raw integer
    strings, no positions) written as its private accounts."""
    m = json.loads(json.dumps(tiny_epoch.manifest))
    m["accounts"] = len(rows)
    (folder / "private").mkdir(parents=True)
    with open(folder / "private" / "accounts.jsonl", "w") as fh:
        for i, (eq, debt) in enumerate(rows):
            rec = {"index": i, "id": f"u{i}", "salt": "1", "equity": eq, "debt": debt}
            fh.write(json.dumps({**rec, "qty": ["0", "0"]}) + "\n")
    return m


def test_small_ratio_bins_are_merged_on_real_context(tiny_epoch: Any, tmp_path: Path) -> None:
    """40 accounts whose collateral ratios (equity and debt in the same asset, so the ratio is
    exact) fall 9 / 2 / 1 / 10 / 6 in five bins: the bins of 2 and 1 are merged upwards."""
    usdt = 10**6
    rows: list[tuple[list[int], list[int]]] = [([0, 5 * usdt], [0, 0])] * 11
    rows.append(([10**8, 0], [0, 0]))  # BTC only, no debt
    for ratio, n in (("1.05", 9), ("1.3", 2), ("2.5", 1), ("20", 10), ("500", 6)):
        eq = int(Fraction(ratio) * 100 * usdt)
        rows += [([0, eq], [0, 100 * usdt])] * n
    rows_str = [([str(x) for x in e], [str(x) for x in d]) for e, d in rows]
    m = _synthetic(tiny_epoch, tmp_path, rows_str)
    d = gather_distribution(tmp_path, m)
    assert (d.accounts, d.no_debt, d.ratio.total) == (40, 12, 28)
    assert d.ratio.bins == (
        Bin("1× to 1.1×", 9),
        Bin("1.1× to 1.25×", 0),
        Bin("1.25× to 100×", 13),
        Bin("100× to 1000×", 6),
    )
    assert all(b.count == 0 or b.count >= K for b in (*d.ratio.bins, *d.headroom.bins))
    assert sum(b.count for b in d.headroom.bins) == 40


def test_bad_private_data_is_refused_by_line(tiny_epoch: Any, tmp_path: Path) -> None:
    m = _synthetic(tiny_epoch, tmp_path, [(["1", "0"], ["0", "0"])] * 6)
    with pytest.raises(ReportError, match="holds more than 5 accounts, the manifest 5"):
        gather_distribution(tmp_path, {**m, "accounts": 5})
    with pytest.raises(ReportError, match="holds 6 accounts, the manifest 7"):
        gather_distribution(tmp_path, {**m, "accounts": 7})
    path = tmp_path / "private" / "accounts.jsonl"
    lines = path.read_text().splitlines()
    for bad in (
        '{"id": "secret-id", "equity": ["secret-balance"], "debt": ["0"], "qty": []}',
        '{"id": "secret-id", "equity": ["-7"], "debt": ["0"], "qty": []}',
        '{"id": "secret-id", "equity": ["1", "2", "3"], "debt": ["0"], "qty": []}',
        '{"id": "secret-id", "debt": ["0"], "qty": []}',
        '{"id": "secret-id", ',
    ):
        lines[3] = bad
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(ReportError, match=r"accounts\.jsonl:4: not an account record") as exc:
            gather_distribution(tmp_path, m)
        assert "secret" not in str(exc.value)  # the file is private: no value is echoed


def test_publication_is_read_and_checked(tiny_epoch: Any, tmp_path: Path) -> None:
    epoch = tmp_path / "epoch"
    shutil.copytree(tiny_epoch.dir, epoch, ignore=shutil.ignore_patterns("private"))
    (epoch / "publication.json").write_text(json.dumps(PUBLICATION))
    data = gather_epoch(epoch)
    assert data.publication is not None
    assert data.publication.gas_by_kind == {
        "open": 120_000,
        "batch": 910_500,
        "custody": 0,
        "finalize": 450_000,
    }
    assert data.publication.transactions == 5
    assert data.gas_per_account == pytest.approx(1_480_500 / 5)
    for edit, why in (
        ({"total_gas": 1}, "not the sum"),
        ({"epoch": 2}, "for epoch 2"),
        ({"format": "other/1"}, "not a zksolvency-publication/1"),
        ({"transactions": [{"kind": "mint", "gas_used": 1}]}, "kind 'mint'"),
    ):
        (epoch / "publication.json").write_text(json.dumps({**PUBLICATION, **edit}))
        with pytest.raises(ReportError, match=why):
            gather_epoch(epoch)


# --- the rendered report --------------------------------------------------------------------


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG file's chunks, after checking its signature, every CRC and its image data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert width > 100 and height > 100
    zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    return chunks


def _word(text: str, word: str) -> bool:
    """Whether `word` occurs as a whole token: an id such as "erin" is also part of English
    words ("gathering"), which say nothing about the account."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def assert_no_account_data(out: Path, epoch_dir: Path, headrooms: dict[str, Fraction]) -> None:
    rows = _private_rows(epoch_dir)
    page = (out / "index.html").read_text()
    for path in out.iterdir():
        data = path.read_bytes()
        texts = [page] if path.suffix == ".html" else []
        if path.suffix == ".png":  # text a PNG can carry (its pixels cannot be grepped)
            texts = [b.decode("latin-1") for k, b in png_chunks(data) if k in (b"tEXt", b"iTXt")]
        for row in rows:
            assert row["salt"].encode() not in data, f"a salt in {path.name}"
            assert not any(_word(t, row["id"]) for t in texts), f"{row['id']} in {path.name}"
    # each account's own headroom as `risk report` prints it; dave's 0.00 is no fingerprint
    for usd in (u for u in headrooms.values() if u >= 100):
        cents = int(usd * 100)
        assert f"{cents // 100:,}.{cents % 100:02d}" not in page


@pytest.fixture(scope="module")
def risk_headrooms(tiny_epoch: Any) -> dict[str, Fraction]:
    """Each tiny account's worst-scenario headroom in USD, from `risk report` on the snapshot
    (another path than the report's reading of private/accounts.jsonl)."""
    from zksolvency.cli.main import main

    prove = list(tiny_epoch.prove_args)
    shape_and_margin = prove[prove.index("--out") + 2 :]  # circuit options, derivatives, haircuts
    args = ["risk", "report", str(tiny_epoch.snapshot), *shape_and_margin]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    found = re.findall(r"^  (\w+) +headroom +([\d,.-]+) USD", result.stdout, re.M)
    assert len(found) == 5
    return {name: Fraction(value.replace(",", "")) for name, value in found}


@pytest.fixture
def rendered(tiny_epoch: Any, tmp_path: Path) -> Callable[..., Path]:
    def run(*dirs: Path) -> Path:
        out = tmp_path / "report"
        render(report.gather(dirs or (tiny_epoch.dir,)), out)
        return out

    return run


def test_report_renders_for_the_tiny_epoch(
    tiny_epoch: Any, rendered: Callable[..., Path], risk_headrooms: dict[str, Fraction]
) -> None:
    out = rendered()
    names = {p.name for p in out.iterdir()}
    assert names == {
        "index.html",
        "reserves.png",
        "distribution-epoch-1.png",
        "proving.png",
    }
    page = (out / "index.html").read_text()
    referenced = set(re.findall(r'<img src="([^"]+)"', page))
    assert referenced == names - {"index.html"}
    for name in referenced:
        png_chunks((out / name).read_bytes())
    # self-contained: no script, no stylesheet or image from elsewhere
    assert "<script" not in page and "<link" not in page and "http" not in page
    assert tiny_epoch.sha256() in page and tiny_epoch.manifest["root"] in page
    assert "INSECURE development setup" in page
    assert "$0 to $1M" in page and "fewer than 5: not shown" in page
    assert "not published from this directory" in page
    assert_no_account_data(out, tiny_epoch.dir, risk_headrooms)


def test_a_public_bundle_renders_with_a_note(
    tiny_epoch: Any, tmp_path: Path, rendered: Callable[..., Path]
) -> None:
    public = tmp_path / "public"
    shutil.copytree(tiny_epoch.dir, public, ignore=shutil.ignore_patterns("private"))
    (public / "publication.json").write_text(json.dumps(PUBLICATION))
    out = rendered(tiny_epoch.dir, public)
    page = (out / "index.html").read_text()
    assert "has no <code>private/accounts.jsonl</code> (a public bundle)" in page
    # one distribution figure: the public copy has none
    assert {p.name for p in out.glob("distribution-*")} == {"distribution-epoch-1-epoch.png"}
    assert "gas.png" in page and "296,100.0" in page  # gas per account: 1,480,500 / 5
    assert "epoch 1 (epoch)" in page and "epoch 1 (public)" in page  # two epoch-1 directories
    png_chunks((out / "gas.png").read_bytes())


def test_output_directory_is_replaced_whole_or_left_alone(
    tiny_epoch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    epochs = report.gather([tiny_epoch.dir])
    out = tmp_path / "report"
    render(epochs, out)
    (out / "stale.png").write_bytes(b"from an earlier report")
    render(epochs, out)  # an earlier report is replaced, stale figures included
    assert not (out / "stale.png").exists()
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args: Any) -> None:
        raise OSError(28, "No space left on device")  # the last file, after the figures

    monkeypatch.setattr(report, "write_text", broken)
    for target in (tmp_path / "fresh", out):
        with pytest.raises(OSError):
            render(epochs, target)
    assert not (tmp_path / "fresh").exists()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"], "temporary folders left"
    monkeypatch.undo()

    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("mine")
    with pytest.raises(ReportError, match="holds files other than a report's"):
        render(epochs, foreign)
    assert (foreign / "todo.txt").read_text() == "mine"


def test_a_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleFormatError, match=r"no manifest\.json"):
        report.gather([tmp_path])

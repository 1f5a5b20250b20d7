"""`zksolvency report`: an HTML page with PNG figures over one or more epoch directories, for
auditors and the public (no per-account data; docs/report.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from zksolvency.prover.report import EpochData


@click.command("report")
@click.argument(
    "epoch_dirs",
    metavar="EPOCH_DIR...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--out",
    metavar="DIR",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory to write index.html and its figures into. Created if missing; an earlier "
    "report there is replaced, any other content is refused.",
)
def report(epoch_dirs: tuple[Path, ...], out: Path) -> None:
    """Write an HTML report over EPOCH_DIR... (oldest first) into --out.

    \b
    Per epoch: root, bundle hash, accounts, batches, flags; per asset net liabilities against
    verified and declared reserves; batch counts and proving time (from proofs/*.meta.json);
    gas (from publication.json, when publish wrote one). With the exchange's private/ data
    also the distribution of collateral ratios and margin headroom, as histogram counts in
    which no bin holds fewer than 5 accounts. A public bundle (no private/) gets a note instead.

    Exit codes: 0 written, 2 bad input (no manifest.json, unreadable files, --out in use).
    """
    from zksolvency.prover.report import ReportError, check_output_dir, gather, render

    from .main import EXIT_USAGE, ClickReporter, fail, handle_errors

    @handle_errors
    def run() -> None:
        try:
            check_output_dir(out)  # before minutes of binning, not after
            epochs = gather(epoch_dirs, ClickReporter())
            rendered = render(epochs, out)
        except ReportError as exc:
            fail(str(exc), EXIT_USAGE)
        for line in summary(epochs):
            click.echo(line)
        click.echo(f"wrote {len(rendered.figures)} figures and {rendered.index.resolve()}")

    run()


def summary(epochs: Sequence[EpochData]) -> list[str]:
    """What the page says, in a few lines per epoch (aggregates only, as on the page)."""
    from zksolvency.prover.report import K, count_text, epoch_labels

    lines = []
    for e, label in zip(epochs, epoch_labels(epochs), strict=True):
        lines.append(
            f"{label}: {e.accounts} accounts in {e.batches} batches, root "
            f"{e.root[:20]}..., bundle sha256 {e.bundle_sha256[:16]}..."
            + ("  [INSECURE development setup]" if e.development_setup else "")
        )
        for a in e.assets:
            lines.append(
                f"  {a.symbol:8s} net liabilities {a.text(a.net):>20s}   reserves "
                f"{a.text(a.verified)} verified + {a.text(a.declared)} declared"
            )
        lines.append(
            f"  verified reserves alone cover every asset: {'yes' if e.verified_only else 'no'}"
        )
        d = e.distribution
        if d is None:
            lines.append("  distributions: not shown (no private/accounts.jsonl: a public bundle)")
        else:
            shown = [
                f"{name} {len(h.bins)} bin{'s' if len(h.bins) > 1 else ''}"
                if h.bins
                else f"{name} not shown (<{K} accounts)"
                if h.total
                else f"{name}: no accounts"
                for name, h in (("collateral ratio", d.ratio), ("headroom", d.headroom))
            ]
            lines.append(
                f"  distributions: {', '.join(shown)}; {count_text(d.no_debt)} accounts without "
                f"debt (bins under {K} accounts merged)"
            )
        p = e.proving
        if p.recorded == 0:
            lines.append("  proving time: not recorded")
        else:
            part = "" if p.complete else f" ({p.recorded} of {len(p.all)} proofs recorded)"
            lines.append(
                f"  proving time: {p.total:.2f} s (batches {p.batch_total:.2f} s, solvency "
                f"{p.solvency or 0:.2f} s){part}"
            )
        pub, per = e.publication, e.gas_per_account
        if pub is None:
            lines.append("  gas: not published from this directory")
        else:
            lines.append(
                f"  gas: {pub.total_gas:,} in {pub.transactions} transactions"
                + ("" if per is None else f", {per:,.1f} per account")
            )
        lines += [f"  note: {n}" for n in e.notes]
    return lines

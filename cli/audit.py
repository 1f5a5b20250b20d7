"""`zksolvency audit`: the auditor's one command over a published epoch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

_MARKS = {"pass": ("PASS", "green"), "fail": ("FAIL", "red"), "skip": ("SKIP", "yellow")}


@click.command()
@click.argument("epoch_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--trusted-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Deployment record or trust-anchor JSON pinning the keys (and, on-chain, the chain "
    "id, registry and verifier code).",
)
@click.option("--rpc", default=None, help="Also compare with the registry: JSON-RPC URL.")
@click.option(
    "--registry",
    default=None,
    help="Registry address, with --rpc (default: the registry the epoch is bound to).",
)
@click.option(
    "--from-block",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="With --rpc: read the registry's events from this block on (its deployment block: "
    "public nodes refuse a scan from genesis). Read in windows of 10,000 blocks.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the report as JSON to this file.",
)
def audit(
    epoch_dir: Path,
    trusted_keys: Path | None,
    rpc: str | None,
    registry: str | None,
    from_block: int,
    json_out: Path | None,
) -> None:
    """Audit a published epoch: every check, each on its own line.

    \b
    Offline: the manifest, every Groth16 proof (pure Python), the state chain S_0..S_n, the
    totals commitment, the context hash recomputed from the published prices and haircuts,
    and the risk arrays repriced from the published instruments, market data and grid.
    With --rpc: the registry's record of the epoch (finalized, with the bundle's root,
    context, totals commitment, bundle hash and batch count), its BatchVerified events,
    the keys its verifiers embed, and the reserves, custody list and prices it stored.

    A failed check does not stop the others. Exit codes: 0 every check passed (or was
    skipped), 1 a check failed, 2 bad input.
    """
    from .main import ClickReporter, handle_errors

    @handle_errors
    def run() -> None:
        from zksolvency.prover.atomic import write_json
        from zksolvency.prover.audit import audit_epoch
        from zksolvency.prover.bundle import TrustAnchors

        if registry is not None and rpc is None:
            raise click.UsageError("--registry needs --rpc")
        anchors = TrustAnchors.load(trusted_keys) if trusted_keys else None
        report = audit_epoch(
            epoch_dir, anchors, rpc, registry, ClickReporter(), from_block, os.cpu_count() or 1
        )
        if json_out is not None:
            write_json(json_out, report.to_json())
        _print(report, trusted_keys)

    run()


def _print(report: Any, trusted_keys: Path | None) -> None:
    from .main import EXIT_FAILED, fail

    click.echo(
        f"epoch {report.epoch} in {report.epoch_dir} (bundle sha256 {report.bundle_sha256[:16]}…)"
    )
    if trusted_keys is not None:
        click.echo(f"keys pinned by {trusted_keys}")
    if report.rpc is not None:
        click.echo(f"registry {report.registry} at {report.rpc}")
    width = max(len(c.title) for c in report.checks)
    for c in report.checks:
        mark, colour = _MARKS[c.status]
        click.echo(f"{click.style(mark, fg=colour)}  {c.title:<{width}}  {c.detail}")
    for w in report.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    counts = report.counts()
    summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
    if not report.ok:
        names = ", ".join(f"{c.title} ({c.key})" for c in report.failed)
        fail(f"audit FAILED ({summary}): {names}", EXIT_FAILED)
    click.secho(f"OK: epoch {report.epoch} audited: {summary}", fg="green")

"""`zksolvency risk`: the risk engine's numbers, for the exchange and for bundle checkers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .options import circuit_params


@click.group()
def risk() -> None:
    """Risk arrays and greeks: the exchange's own view, and a check of a published bundle."""


@risk.command("check")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
def risk_check(bundle: Path) -> None:
    """Recompute a bundle's context from its published market data.

    Reprices every published instrument under the published scenario grid with the
    Black-Scholes engine, compares the risk arrays (which must equal floor(R * 10^18) up to
    float noise), rebuilds the tier weights from prices, rates and caps, and recomputes the
    context hash. Exit 0 if everything agrees, 1 otherwise.
    """
    from zksolvency.prover.bundle import BundleError, load_bundle, recompute_context
    from zksolvency.prover.context import published_scenarios, risk_problems
    from zksolvency.prover.witness import format_value

    from .main import EXIT_FAILED, fail, handle_errors

    @handle_errors
    def run() -> None:
        b = load_bundle(bundle)
        m = b.manifest
        ctx = m["context"]
        r = ctx["risk"]
        click.echo(
            f"epoch {b.epoch}: {ctx['mode']} mode, {len(r['instruments'])} instruments, "
            f"{len(published_scenarios(ctx))} scenarios, market as of {r['as_of']}"
        )
        for inst, row in zip(r["instruments"], r["arrays"], strict=False):
            worst = min(int(v) for v in row)
            best = max(int(v) for v in row)
            # L is per 10^-8 contract: times 10^8 gives a whole contract's P&L
            click.echo(
                f"  {inst['id']:24s} {inst['kind']:9s} worst {format_value(worst * 10**8):>16s}"
                f"  best {format_value(best * 10**8):>16s} USD per contract"
            )
        problems = risk_problems(ctx, limit=20)
        try:
            ok_hash = recompute_context(ctx, m["params"]) == b.ctx_hash
        except BundleError as exc:
            problems.append(str(exc))
            ok_hash = False
        if not ok_hash and not problems:
            problems.append("the recomputed context hash differs from the published one")
        if problems:
            fail(
                "the published context does not recompute:\n  " + "\n  ".join(problems), EXIT_FAILED
            )
        click.secho(
            "OK: risk arrays, haircut weights and the context hash recompute from the published "
            "market data",
            fg="green",
        )

    run()


@risk.command("report")
@click.argument("snapshot", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--assets-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Assets file, for a CSV snapshot.",
)
@click.option(
    "--instruments",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Instruments file.",
)
@click.option(
    "--market",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Market data file.",
)
@click.option(
    "--positions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Positions file.",
)
@click.option(
    "--haircuts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Haircut table (default: none).",
)
@click.option(
    "--top",
    type=click.IntRange(0, 10**6),
    default=10,
    show_default=True,
    help="Accounts to list, tightest headroom first.",
)
@circuit_params
def risk_report(
    snapshot: Path,
    assets_file: Path | None,
    instruments: Path,
    market: Path,
    positions: Path,
    haircuts: Path | None,
    top: int,
    **shape: int | None,
) -> None:
    """The exchange's own view: per-instrument value and greeks, and per account the greeks,
    the worst scenario and the margin headroom (private data: not for publication)."""
    from .main import handle_errors, load_margin_inputs, resolve_params

    @handle_errors
    def run() -> None:
        from zksolvency.prover.snapshot import load_snapshot

        params = resolve_params(**shape)
        snap = load_snapshot(snapshot, assets_file)
        margin = load_margin_inputs(snap, instruments, market, positions, haircuts, "strict", "0")
        _report(snap, params, margin, top)

    run()


def _report(snap: Any, params: Any, margin: Any, top: int) -> None:
    from zksolvency.prover.commitments import SHORTFALL
    from zksolvency.prover.margin import headroom
    from zksolvency.prover.risk import (
        account_greeks,
        greeks,
        pricing_inputs,
        scenario_labels,
        values,
    )
    from zksolvency.prover.witness import MarginInputs, format_value, make_context

    d = margin.derivatives
    inputs, market, as_of = pricing_inputs(d)
    g = greeks(inputs, market, as_of)
    v = values(inputs, market, as_of)
    click.echo(f"instruments (per contract, market as of {as_of:%Y-%m-%d %H:%M} UTC)")
    click.echo(
        f"  {'id':24s} {'value':>14s} {'delta':>10s} {'gamma':>12s} {'vega/1%':>10s} "
        f"{'theta/day':>10s}"
    )
    for i, inst in enumerate(inputs):
        click.echo(
            f"  {inst.id:24s} {v[i]:14.2f} {g.delta[i]:10.4f} {g.gamma[i]:12.6f} "
            f"{g.vega[i] / 100:10.2f} {g.theta[i] / 365:10.2f}"
        )
    # Headroom in shortfall mode, so that failing accounts are reported, not refused.
    ctx = make_context(snap, params, 1, MarginInputs(d, margin.haircuts, None, SHORTFALL, 0))
    labels = scenario_labels(ctx.grid, params.n_scenarios)
    n = params.n_assets
    pad = [0] * (params.n_instruments - len(inputs))
    rows = []
    for acc in snap.accounts:
        q = list(d.positions_of(acc.id))
        eq = [*acc.equity, *([0] * (n - len(acc.equity)))]
        debt = [*acc.debt, *([0] * (n - len(acc.debt)))]
        value, worst = headroom(eq, debt, [*q, *pad], ctx.margin)
        rows.append((value, worst, acc.id, q))
    rows.sort()
    failing = sum(1 for r in rows if r[0] < 0)
    click.echo(
        f"accounts: {len(rows)}, {sum(1 for r in rows if any(r[3]))} with positions, "
        f"{failing} failing the margin rule"
    )
    for value, worst, account_id, q in rows[:top]:
        per = account_greeks([x / 10**8 for x in q], g)
        deltas = (
            ", ".join(f"{u} delta {p.delta:.4f}" for u, p in per.items() if p.delta or p.gamma)
            or "no positions"
        )
        click.echo(
            f"  {account_id:24s} headroom {format_value(value):>16s} USD  "
            f"worst: {labels[worst]}; {deltas}"
        )

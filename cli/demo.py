"""`zksolvency demo`: the product's whole journey on one machine, with a readable summary."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import click
from zksolvency.prover.progress import Reporter


def run_demo(workdir: Path, n_accounts: int, ptau: Path | None, rep: Reporter) -> None:
    from zksolvency.prover import snapshot as snap
    from zksolvency.prover.account_proof import (
        prove_account_margin,
        verify_margin_against_chain,
        verify_margin_proof,
    )
    from zksolvency.prover.bundle import TrustAnchors
    from zksolvency.prover.chain import Anvil
    from zksolvency.prover.commitments import VALUE_DECIMALS
    from zksolvency.prover.deployment import deploy_registry, deployment_domain
    from zksolvency.prover.epoch import prove_epoch
    from zksolvency.prover.inclusion import (
        InclusionError,
        check_package,
        export_package,
        verify_against_bundle,
        verify_against_chain,
    )
    from zksolvency.prover.keys import build_keys, build_margin_keys
    from zksolvency.prover.params import EpochParams
    from zksolvency.prover.reserves import load_reserves
    from zksolvency.prover.witness import PlanError, format_value, plan_epoch

    from .main import load_margin_inputs, publish_bundle, write_sample_margin, write_sample_reserves

    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    params = EpochParams.default()
    click.secho("1/7 sample snapshot, derivatives and haircuts", bold=True, err=True)
    snapshot_path = workdir / "snapshot.json"
    reserves_path = workdir / "reserves.json"
    sample = snap.sample_snapshot(n_accounts, seed=7)
    snap.write_snapshot_json(sample, snapshot_path)
    write_sample_reserves(sample, reserves_path, 1.2)
    s = snap.load_snapshot(snapshot_path)
    reserves = load_reserves(reserves_path, s.assets)
    instruments, market, positions, haircuts = write_sample_margin(
        s, workdir / "margin", params.n_instruments, 7
    )
    margin = load_margin_inputs(s, instruments, market, positions, haircuts, "strict", "0")

    # What strict mode does with an over-leveraged account: refuse, naming it, before proving.
    reckless = _reckless(s, margin)
    try:
        plan_epoch(s, params, 1, reserves, b"demo" * 8, reckless)
        refusal = "NOT refused (bug!)"
    except PlanError as exc:
        refusal = str(exc).splitlines()[-1].strip()

    click.secho("2/7 circuits and keys", bold=True, err=True)
    keys = build_keys(params, ptau, rep)
    margin_keys = build_margin_keys(params, ptau, rep)

    click.secho("3/7 local chain: deploy the registry and verifiers", bold=True, err=True)
    epoch_dir = workdir / "epoch-1"
    if epoch_dir.exists() and (epoch_dir / "private" / "run.json").exists():
        # A previous demo's run with another random seed would not match: start clean.
        shutil.rmtree(epoch_dir)
    with Anvil() as node:
        w3 = node.w3
        # The registry exists before the proofs: the solvency proof is bound to its chain id
        # and address, so it can only ever be published there.
        deployment = deploy_registry(
            w3, node.accounts[0], keys, params, workdir / "deployment.json", margin=margin_keys
        )
        click.secho("4/7 proving epoch 1 and publishing it", bold=True, err=True)
        t_prove = time.monotonic()
        manifest = prove_epoch(
            s,
            reserves,
            epoch_dir,
            epoch=1,
            params=params,
            ptau=ptau,
            reporter=rep,
            margin=margin,
            domain=deployment_domain(deployment),
        )
        stats = margin_stats_of(epoch_dir)
        prove_s = time.monotonic() - t_prove
        report = publish_bundle(w3, node.accounts[0], deployment["registry"], epoch_dir)

        click.secho("5/7 one user checks their inclusion", bold=True, err=True)
        # A user with positions, so that the package shows their margin too.
        traders = [a.id for a in s.accounts if margin.derivatives.positions.get(a.id)]
        user = traders[len(traders) // 2] if traders else s.accounts[len(s.accounts) // 2].id
        pkg_path = workdir / f"inclusion-{user}.json"
        pkg = export_package(epoch_dir, user, pkg_path)
        anchors = TrustAnchors.load(workdir / "deployment.json")
        on_chain = verify_against_chain(pkg, node.url, deployment["registry"], anchors)
        offline = verify_against_bundle(pkg, epoch_dir, anchors)

        click.secho("6/7 the user proves their margin to a lender", bold=True, err=True)
        # Half the true headroom, rounded down to whole dollars: the lender learns only that.
        shown = max(0, offline.margin["headroom"] // 2 // 10**VALUE_DECIMALS)
        t_margin = time.monotonic()
        proof_path = workdir / f"margin-{user}.json"
        doc = prove_account_margin(pkg, shown * 10**VALUE_DECIMALS, proof_path, ptau, rep)
        margin_prove_s = time.monotonic() - t_margin
        lender = verify_margin_proof(doc, epoch_dir, account_id=user, salt=pkg["account"]["salt"])
        lender_chain = verify_margin_against_chain(
            doc, node.url, deployment["account_margin_verifier"]
        )

        click.secho("7/7 an edited package is rejected", bold=True, err=True)
        forged = json.loads(json.dumps(pkg))
        sym = next(iter(forged["account"]["equity"]))
        forged["account"]["equity"][sym] = "1000000"
        try:
            check_package(forged)
            rejected = "NOT rejected (bug!)"
        except InclusionError as exc:
            rejected = f"rejected: {exc}"

    total_s = time.monotonic() - t0
    b, sv = keys.batch.build, keys.solvency.build
    click.echo("")
    click.secho("zksolvency demo: summary", bold=True)
    click.echo(
        f"  accounts          {manifest['accounts']} in {manifest['batches']} batches of "
        f"{params.batch_size} (tree depth {params.tree_depth}, {params.n_assets} assets)"
    )
    click.echo(
        f"  circuits          {b.spec.name}: {b.n_constraints} constraints "
        f"({b.n_constraints // params.batch_size} per account, batch overhead included); "
        f"{sv.spec.name}: {sv.n_constraints}"
    )
    click.echo(f"  proving           {prove_s:.1f} s for {manifest['batches'] + 1} proofs")
    h = stats["headroom_usd"]
    click.echo(
        f"  margin            {stats['accounts']} accounts, {stats['with_positions']} with "
        f"positions in {len(margin.derivatives.instruments)} instruments, "
        f"{params.n_scenarios} scenarios, strict mode: {stats['failing']} failing"
    )
    click.echo(
        f"  headroom (USD)    worst scenario per account: p1 {h['p1']}, p10 {h['p10']}, "
        f"median {h['p50']}, p90 {h['p90']}; shortfall {stats['shortfall_usd']}"
    )
    click.echo(f"  strict refusal    {refusal}")
    click.echo(
        f"  {'asset':8s} {'equity':>20s} {'debt':>18s} {'net liability':>20s} {'reserves':>20s}"
    )
    for sym, t in manifest["totals"].items():
        click.echo(
            f"  {sym:8s} {t['equity']:>20s} {t['debt']:>18s} {t['net']:>20s} "
            f"{manifest['reserves'][sym]:>20s}"
        )
    batch_gas = report.batch_gas
    click.echo(
        f"  gas               deploy {sum(deployment['gas_used'].values())}, open "
        f"{report.open_gas}, per batch {min(batch_gas)}-{max(batch_gas)}, finalize "
        f"{report.finalize_gas}"
    )
    click.echo(
        f"  registry          {deployment['registry']} (chain {deployment['chain_id']}, "
        "anvil on 127.0.0.1, now stopped)"
    )
    click.echo(
        f"  user check        {on_chain.account_id}: included, verified against the chain "
        f"and offline ({offline.details['proofs_verified']} proofs)"
    )
    click.echo(
        f"  margin proof      {user} shows a headroom of at least {lender.headroom_usd} USD "
        f"(true: {format_value(offline.margin['headroom'])}, kept private): proved in "
        f"{margin_prove_s:.1f} s, verified offline and by the AccountMarginVerifier"
        f" ({lender_chain.checked_against})"
    )
    click.echo(f"  tampered package  {rejected}")
    click.echo(
        f"  files             {workdir}/: snapshot.json, reserves.json, deployment.json, "
        f"{pkg_path.name}, {proof_path.name}, margin/, epoch-1/ (bundle; private/ stays "
        "with the exchange)"
    )
    if keys.batch.development or keys.solvency.development:
        click.secho(
            "  keys              INSECURE development setup: for demonstration only", fg="yellow"
        )
    else:
        click.echo(
            f"  keys              ceremony ptau, {keys.batch.contributions} phase-2 "
            "contribution(s): see `zksolvency keys --help` before publishing for real"
        )
    click.echo(f"  total time        {total_s:.0f} s")


def margin_stats_of(epoch_dir: Path) -> dict[str, Any]:
    """The exchange's private margin statistics written by the prove step."""
    stats: dict[str, Any] = json.loads((epoch_dir / "private" / "margin.json").read_text())
    return stats


def _reckless(s: Any, margin: Any) -> Any:
    """The demo's margin inputs plus one account short 1,000 BTC perpetuals on its own small
    balance: strict mode must refuse the epoch and name it."""
    from dataclasses import replace

    d = margin.derivatives
    perp = next(i for i, inst in enumerate(d.instruments) if inst.kind == "perpetual")
    victim = s.accounts[0].id
    qty = [0] * len(d.instruments)
    qty[perp] = -1000 * 10**8
    positions = {**d.positions, victim: tuple(qty)}
    return replace(margin, derivatives=replace(d, positions=positions))

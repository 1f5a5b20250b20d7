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
    from zksolvency.prover import mockchain
    from zksolvency.prover import snapshot as snap
    from zksolvency.prover.account_proof import (
        prove_account_margin,
        verify_margin_against_chain,
        verify_margin_proof,
    )
    from zksolvency.prover.atomic import write_json
    from zksolvency.prover.audit import audit_epoch
    from zksolvency.prover.bundle import TrustAnchors, load_bundle
    from zksolvency.prover.chain import Anvil, AttestationRefused, registry_at
    from zksolvency.prover.commitments import VALUE_DECIMALS
    from zksolvency.prover.custody import RemoteSigner, sign_ownership
    from zksolvency.prover.deployment import deploy_registry, deployment_domain, registry_abi
    from zksolvency.prover.epoch import prove_epoch
    from zksolvency.prover.inclusion import export_package, resolve, verify_inclusion
    from zksolvency.prover.keys import build_keys, build_margin_keys
    from zksolvency.prover.onchain import (
        Custody,
        check_prices,
        read_verified_reserves,
        write_custody,
    )
    from zksolvency.prover.package_store import build_store
    from zksolvency.prover.params import EpochParams
    from zksolvency.prover.report import gather, render
    from zksolvency.prover.reserves import load_reserves
    from zksolvency.prover.witness import PlanError, format_value, plan_epoch

    from .main import load_margin_inputs, publish_bundle, write_sample_margin

    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    params = EpochParams.default()
    click.secho("1/9 sample snapshot, derivatives and haircuts", bold=True, err=True)
    snapshot_path = workdir / "snapshot.json"
    reserves_path = workdir / "reserves.json"
    sample = snap.sample_snapshot(n_accounts, seed=7)
    snap.write_snapshot_json(sample, snapshot_path)
    s = snap.load_snapshot(snapshot_path)
    net = _net_liabilities(s)
    # Declared (unverified) reserves: BTC in cold storage on Bitcoin, which this chain cannot
    # see, 10 % of the net liabilities. The rest is held on-chain and verified there.
    write_json(
        reserves_path,
        {
            a.symbol: snap.format_amount(net[i] // 10 if a.symbol == "BTC" else 0, a.decimals)
            for i, a in enumerate(s.assets)
        },
    )
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

    click.secho("2/9 circuits and keys", bold=True, err=True)
    keys = build_keys(params, ptau, rep)
    margin_keys = build_margin_keys(params, ptau, rep)

    click.secho(
        "3/9 local chain: tokens, price feeds, custody funds, the registry", bold=True, err=True
    )
    for old in ("epoch-1", "epoch-2"):
        if (workdir / old / "private" / "run.json").exists():
            # A previous demo's run with another random seed would not match: start clean.
            shutil.rmtree(workdir / old)
    epoch_dir = workdir / "epoch-1"
    with Anvil() as node:
        w3 = node.w3
        operator, custodians = node.accounts[0], node.accounts[1:3]
        # On this chain: BTC as an 8-decimal wrapped token, ETH as ether (18 decimals, the
        # snapshot counts 8), USDT as an 18-decimal token (the snapshot counts 6), SOL as a
        # 9-decimal wrapped token; three feeds each, one of them with 18 decimals.
        onchain = mockchain.deploy_market(
            w3, operator, s.assets, _listings(), params.n_assets, tolerance_bps=200
        )
        # Custody holds 110 % of every asset's net liabilities, split over two addresses.
        for k, holder in enumerate(custodians):
            share = {a.symbol: net[i] * 11 // 20 + k for i, a in enumerate(s.assets)}
            mockchain.fund(w3, operator, onchain, holder, share)
        # The registry exists before the proofs: the solvency proof is bound to its chain id
        # and address, so it can only ever be published there.
        deployment = deploy_registry(
            w3,
            operator,
            keys,
            params,
            workdir / "deployment.json",
            margin=margin_keys,
            assets=onchain.config,
        )
        registry = registry_at(w3, deployment["registry"], registry_abi())

        def custody_for(epoch: int) -> Custody:
            """The custodians sign the epoch's ownership statement (anvil holds their keys
            and answers eth_signTypedData_v4, as a remote signer would)."""
            c = Custody(deployment["chain_id"], deployment["registry"], epoch, ())
            for holder in custodians:
                signer = RemoteSigner(node.url, holder)
                c = c.with_entry(*sign_ownership(signer, c.registry, c.chain_id, epoch))
            write_custody(workdir / f"custody-{epoch}.json", c)
            return c

        def prove_and_publish(epoch: int, out: Path) -> tuple[dict[str, Any], Any]:
            c = custody_for(epoch)
            verified = read_verified_reserves(registry, c.holders)[: len(s.assets)]
            manifest = prove_epoch(
                s,
                reserves,
                out,
                epoch=epoch,
                params=params,
                ptau=ptau,
                reporter=rep,
                margin=margin,
                domain=deployment_domain(deployment),
                verified=verified,
                custody={**c.as_json(), "block": int(w3.eth.block_number)},
            )
            return manifest, publish_bundle(w3, operator, deployment["registry"], out)

        click.secho(
            "4/9 custody signatures, proving epoch 1, publishing it: the registry checks "
            "reserves and prices",
            bold=True,
            err=True,
        )
        t_prove = time.monotonic()
        manifest, report = prove_and_publish(1, epoch_dir)
        prove_s = time.monotonic() - t_prove
        stats = margin_stats_of(epoch_dir)
        weights = [int(w) for w in manifest["context"]["weights"]]
        readings = check_prices(registry, weights, onchain.config)
        record_prices = registry.functions.getPrices(1).call()

        click.secho(
            "5/9 every user's inclusion package; one user checks theirs", bold=True, err=True
        )
        store = build_store(epoch_dir, rep)
        # A user with positions, so that the package shows their margin too.
        traders = [a.id for a in s.accounts if margin.derivatives.positions.get(a.id)]
        user = traders[len(traders) // 2] if traders else s.accounts[len(s.accounts) // 2].id
        pkg_path = workdir / f"inclusion-{user}.json"
        pkg = export_package(epoch_dir, user, pkg_path)
        anchors = TrustAnchors.load(workdir / "deployment.json")
        t_check = time.monotonic()
        offline = verify_inclusion(pkg, epoch_dir, trusted=anchors)
        check_s = time.monotonic() - t_check
        on_chain = verify_inclusion(pkg, epoch_dir, rpc=node.url, trusted=anchors)

        click.secho("6/9 the user proves their margin to a lender", bold=True, err=True)
        # Half the true headroom, rounded down to whole dollars: the lender learns only that.
        shown = max(0, offline.margin["headroom"] // 2 // 10**VALUE_DECIMALS)
        t_margin = time.monotonic()
        proof_path = workdir / f"margin-{user}.json"
        full = resolve(pkg, load_bundle(epoch_dir))
        doc = prove_account_margin(full, shown * 10**VALUE_DECIMALS, proof_path, ptau, rep)
        margin_prove_s = time.monotonic() - t_margin
        lender = verify_margin_proof(doc, epoch_dir, account_id=user, salt=pkg["account"]["salt"])
        lender_chain = verify_margin_against_chain(
            doc, node.url, deployment["account_margin_verifier"]
        )

        click.secho("7/9 an edited package is rejected", bold=True, err=True)
        forged = json.loads(json.dumps(pkg))
        sym = next(iter(forged["account"]["equity"]))
        forged["account"]["equity"][sym] = "1000000"
        forged_path = workdir / f"inclusion-{user}-edited.json"
        write_json(forged_path, forged)
        caught = verify_inclusion(forged, epoch_dir, trusted=anchors)
        rejected = (
            f"rejected: {caught.failed[0].title.lower()}: {caught.failed[0].detail}"
            if caught.failed
            else "NOT rejected (bug!)"
        )

        click.secho("8/9 an auditor audits epoch 1 against the chain", bold=True, err=True)
        audit = audit_epoch(epoch_dir, anchors, rpc=node.url)
        write_json(workdir / "audit-1.json", audit.to_json())

        click.secho(
            "9/9 epoch 2: two ETH feeds go bad (one stale, one 15 % high); the circuit breaker "
            "refuses",
            bold=True,
            err=True,
        )
        eth = next(i for i, a in enumerate(s.assets) if a.symbol == "ETH")
        stale, high = onchain.feeds("ETH")[1:3]
        now = int(w3.eth.get_block("latest")["timestamp"])
        decs = onchain.feed_decimals["ETH"]
        price = s.assets[eth].price_e8
        mockchain.set_feed(w3, operator, stale, mockchain.scaled_price(price, decs[1]), now - 7200)
        mockchain.set_feed(w3, operator, high, mockchain.scaled_price(price * 115 // 100, decs[2]))
        try:
            prove_and_publish(2, workdir / "epoch-2")
            breaker = ["NOT refused (bug!)"]
        except AttestationRefused as exc:
            symbols = [a.symbol for a in s.assets]
            breaker = [
                f"epoch 2 REFUSED on-chain (event in {exc.tx_hash[:18]}...), epoch left open:"
            ] + ["  " + r.describe(symbols[r.asset]) for r in exc.readings]

    click.secho("the public report of epoch 1", bold=True, err=True)
    report_dir = workdir / "report"
    rendered = render(gather([epoch_dir], rep), report_dir)

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
    res = manifest["reserves"]
    click.echo(
        f"  {'asset':6s} {'net liability':>18s} {'verified (chain)':>18s} "
        f"{'declared':>14s} {'epoch price':>14s} {'feeds median':>14s}"
    )
    for i, (sym, t) in enumerate(manifest["totals"].items()):
        click.echo(
            f"  {sym:6s} {t['net']:>18s} {res['verified'][sym]:>18s} {res['declared'][sym]:>14s} "
            f"{snap.format_amount(record_prices[i], 8):>14s} "
            f"{snap.format_amount(readings[i].median_e8, 8):>14s}"
        )
    click.echo(
        f"  reserves          verified by the registry at finalize: {len(custodians)} custody "
        "addresses (EIP-712 ownership signatures checked on-chain), balances read on-chain; "
        "solvent on verified reserves alone: " + ("yes" if res["verified_only"] else "NO")
    )
    fresh = ", ".join(
        f"{s.assets[i].symbol} {r.agreeing}/{r.fresh}"
        for i, r in enumerate(readings[: len(s.assets)])
    )
    click.echo(
        f"  prices            every epoch price within 2 % of its feeds' median (agreeing/fresh "
        f"feeds: {fresh})"
    )
    for line in breaker:
        click.echo(
            f"  circuit breaker   {line}" if line == breaker[0] else f"                    {line}"
        )
    batch_gas = report.batch_gas
    click.echo(
        f"  gas               deploy {sum(deployment['gas_used'].values())}, open "
        f"{report.open_gas}, per batch {min(batch_gas)}-{max(batch_gas)}, custody "
        f"{sum(report.custody_gas)}, finalize {report.finalize_gas}"
    )
    click.echo(
        f"  registry          {deployment['registry']} (chain {deployment['chain_id']}, "
        "anvil on 127.0.0.1, now stopped)"
    )
    verdict = "VERIFIED" if offline.ok and on_chain.ok else "NOT VERIFIED (bug!)"
    click.echo(
        f"  packages          {store.packages} written to {store.path.name} at "
        f"{store.rate:,.0f}/s (tree rebuilt in {store.tree_seconds:.2f} s)"
    )
    click.echo(
        f"  user check        {user}: {verdict}: {sum(c.status == 'pass' for c in offline.checks)}"
        f" checks offline in {check_s:.2f} s, and the registry's attestation"
    )
    click.echo(
        f"  margin proof      {user} shows a headroom of at least {lender.headroom_usd} USD "
        f"(true: {format_value(offline.margin['headroom'])}, kept private): proved in "
        f"{margin_prove_s:.1f} s, verified offline and by the AccountMarginVerifier"
        f" ({lender_chain.checked_against})"
    )
    click.echo(f"  tampered package  {rejected}")
    counts = audit.counts()
    click.echo(
        f"  audit             {'PASSED' if audit.ok else 'FAILED (bug!)'}: {counts['pass']} "
        f"checks passed, {counts['fail']} failed, {counts['skip']} skipped (audit-1.json)"
    )
    click.echo(
        f"  files             {workdir}/: snapshot.json, reserves.json (declared), "
        f"deployment.json, custody-1.json, {pkg_path.name}, {proof_path.name}, margin/, report/, "
        "epoch-1/ (bundle; private/ stays with the exchange), epoch-2/ (refused)"
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
    click.echo("")
    click.secho("Next:", bold=True)
    click.echo(f"  the report         file://{rendered.index.resolve()}")
    click.echo(
        f"  the verifier page  zksolvency serve --bundle {epoch_dir}   then open "
        "http://127.0.0.1:8765/"
    )
    click.echo(
        f"                     and drop {pkg_path} (it verifies) or {forged_path} (it fails, "
        "and says why)"
    )
    click.echo(f"  the CLI check      zksolvency verify-inclusion {pkg_path} --bundle {epoch_dir}")


def _listings() -> dict[str, Any]:
    from zksolvency.prover.mockchain import Listing

    return {
        "BTC": Listing(8),
        "ETH": Listing(None, native=True),
        "USDT": Listing(18),
        "SOL": Listing(9),
    }


def _net_liabilities(s: Any) -> list[int]:
    return [max(0, sum(a.equity[i] - a.debt[i] for a in s.accounts)) for i in range(len(s.assets))]


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

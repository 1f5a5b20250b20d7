"""The tiny epoch through the CLI with reserves and prices the registry checks: `deploy
--assets-config` over mock tokens and feeds on anvil, `custody sign` through anvil as a remote
signer, `prove --custody --rpc`, `publish`; then custody funds that move after proving, and a
circuit breaker that trips and recovers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from zksolvency.prover import chain, mockchain
from zksolvency.prover.deployment import registry_abi
from zksolvency.prover.mockchain import Listing, MockMarket
from zksolvency.prover.snapshot import load_snapshot

LISTINGS = {"BTC": Listing(8), "USDT": Listing(18, feed_decimals=(8, 6, 8))}
#: Per custody address, in asset units: together 5 BTC and 12,000 USDT, above the tiny
#: epoch's net liabilities (4.65 BTC, 11,049.5 USDT), so verified reserves alone suffice.
HELD = {"BTC": 250_000_000, "USDT": 6_000_000_000}


def prove_args(tiny_epoch: Any, out: Path, epoch: int) -> list[str]:
    """The tiny epoch's `prove` arguments, into `out` as epoch `epoch`."""
    args = list(tiny_epoch.prove_args)
    args[args.index("--out") + 1] = str(out)
    args[args.index("--epoch") + 1] = str(epoch)
    return args


@dataclass(frozen=True)
class Rig:
    node: chain.Anvil
    market: MockMarket
    record_file: Path
    record: dict[str, Any]
    holders: list[str]
    registry: Any
    assets: Any

    def sign(self, cli: Callable[..., Result], epoch: int, out: Path) -> Result:
        extra = [a for h in self.holders for a in ("--address", h)]
        return cli(
            "custody", "sign", "--deployment", self.record_file, "--epoch", epoch,
            "--remote-signer", self.node.url, *extra, "--out", out,
        )  # fmt: skip

    def prove(
        self, cli: Callable[..., Result], tiny_epoch: Any, out: Path, epoch: int, custody: Path
    ) -> Result:
        return cli(
            *prove_args(tiny_epoch, out, epoch), "--deployment", self.record_file,
            "--custody", custody, "--rpc", self.node.url,
        )  # fmt: skip

    def publish(self, cli: Callable[..., Result], bundle: Path) -> Result:
        return cli("publish", bundle, "--rpc", self.node.url, "--registry", self.record["registry"])

    def set_feeds(self, symbol: str, factors: list[float]) -> None:
        w3 = self.node.w3
        price = next(a.price_e8 for a in self.assets if a.symbol == symbol)
        for k, f in enumerate(factors):
            dec = self.market.feed_decimals[symbol][k]
            answer = mockchain.scaled_price(int(price * f), dec)
            mockchain.set_feed(w3, self.node.accounts[0], self.market.feeds(symbol)[k], answer)


@pytest.fixture(scope="module")
def rig(
    cli: Callable[..., Result], tiny_inputs: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    folder = tmp_path_factory.mktemp("onchain")
    assets = load_snapshot(tiny_inputs.snapshot).assets
    with chain.Anvil() as node:
        w3, op = node.w3, node.accounts[0]
        market = mockchain.deploy_market(w3, op, assets, LISTINGS, len(assets))
        holders = sorted(node.accounts[3:5], key=lambda a: int(a, 16))
        for h in holders:
            mockchain.fund(w3, op, market, h, HELD)
        config = folder / "assets.json"
        config.write_text(json.dumps({"assets": [c.as_json() for c in market.config]}))
        record_file = folder / "dep.json"
        r = cli("deploy", "--rpc", node.url, "--out", record_file, "--assets-config", config,
                *tiny_inputs.params)  # fmt: skip
        assert r.exit_code == 0, r.output
        record = json.loads(record_file.read_text())
        registry = chain.registry_at(w3, record["registry"], registry_abi())
        yield Rig(node, market, record_file, record, holders, registry, assets)


def test_a_fully_checked_epoch(
    cli: Callable[..., Result], rig: Rig, tiny_epoch: Any, tmp_path: Path
) -> None:
    assert [a["symbol"] for a in rig.record["assets"]] == ["BTC", "USDT"]
    assert rig.record["assets"][1]["token_decimals"] == 18
    custody = tmp_path / "custody.json"
    r = rig.sign(cli, 1, custody)
    assert r.exit_code == 0, r.output
    assert "2 custody address(es) for epoch 1" in r.stdout
    # Only the solvency proof is made again: the batches do not depend on reserves or registry.
    bundle = tmp_path / "epoch"
    shutil.copytree(tiny_epoch.dir, bundle)
    r = rig.prove(cli, tiny_epoch, bundle, 1, custody)
    assert r.exit_code == 0, r.output
    assert "resuming: 3 of 4 proofs already done" in r.output
    assert "verified reserves of 2 custody address(es) read at block" in r.stderr
    assert "solvent on verified reserves alone: yes" in r.stdout
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["reserves"]["verified"] == {"BTC": "5", "USDT": "12000"}
    assert m["reserves"]["declared"] == {"BTC": "5", "USDT": "20000"}
    assert [e["address"] for e in m["custody"]["custody"]] == rig.holders
    r = rig.publish(cli, bundle)
    assert r.exit_code == 0, r.output
    assert "1 custody transaction(s)" in r.stdout
    rec = chain.read_epoch(rig.node.w3, rig.registry, 1)
    assert rec.status is chain.EpochStatus.FINALIZED
    assert list(rec.reserves) == [500_000_000, 12_000_000_000]
    assert rec.verified_only is True
    assert list(rec.prices_e8) == [a.price_e8 for a in rig.assets]
    r = cli("verify-bundle", bundle)
    assert r.exit_code == 0, r.output
    assert "custody signatures" not in r.output
    # verify-bundle reads the custody list too: a signature that is not its address's can only
    # be a contract wallet's (a warning: the registry asked it); another epoch's list is refused
    manifest = bundle / "manifest.json"
    original = manifest.read_text()
    edited = json.loads(original)
    sig = edited["custody"]["custody"][0]["signature"]
    edited["custody"]["custody"][0]["signature"] = (
        sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
    )
    manifest.write_text(json.dumps(edited))
    r = cli("verify-bundle", bundle)
    assert r.exit_code == 0, r.output
    assert f"the custody signatures of {rig.holders[0]} are not their keys'" in r.output
    edited["custody"]["epoch"] = 2
    manifest.write_text(json.dumps(edited))
    r = cli("verify-bundle", bundle)
    assert r.exit_code == 1
    assert "the custody list is signed for another registry, chain or epoch" in r.output
    manifest.write_text(original)


def test_moved_funds_and_the_circuit_breaker(
    cli: Callable[..., Result], rig: Rig, tiny_epoch: Any, tmp_path: Path
) -> None:
    """Epoch 2: 1 BTC leaves custody after proving (publish refuses before sending anything);
    proving again reads what is left (no longer enough on its own); two BTC feeds go bad
    (refused on-chain, printed, exit 1); once they recover the same bundle is attested."""
    custody = tmp_path / "custody.json"
    assert rig.sign(cli, 2, custody).exit_code == 0
    bundle = tmp_path / "epoch-2"
    r = rig.prove(cli, tiny_epoch, bundle, 2, custody)
    assert r.exit_code == 0, r.output
    mockchain.move(
        rig.node.w3, rig.holders[0], rig.market, "BTC", 100_000_000, rig.node.accounts[0]
    )
    r = rig.publish(cli, bundle)
    assert r.exit_code == 1
    assert "custody balances fell below the proof since proving" in r.stderr
    assert "(asset 0: proven 500000000, held now " in r.stderr
    assert "prove again with the same arguments" in r.stderr
    assert chain.read_epoch(rig.node.w3, rig.registry, 2).status is chain.EpochStatus.NONE
    r = rig.prove(cli, tiny_epoch, bundle, 2, custody)
    assert r.exit_code == 0, r.output
    assert "resuming: 3 of 4 proofs already done" in r.output
    assert "solvent on verified reserves alone: no" in r.stdout
    rig.set_feeds("BTC", [1.0, 1.2, 1.4])
    r = rig.publish(cli, bundle)
    assert r.exit_code == 1
    assert "REFUSED: the registry's circuit breaker did not attest epoch 2" in r.stderr
    assert "BTC: feeds diverge (epoch price 65000.12 USD" in r.stderr
    assert chain.read_epoch(rig.node.w3, rig.registry, 2).status is chain.EpochStatus.OPEN
    rig.set_feeds("BTC", [1.0, 1.0, 1.0])
    r = rig.publish(cli, bundle)
    assert r.exit_code == 0, r.output
    rec = chain.read_epoch(rig.node.w3, rig.registry, 2)
    assert rec.status is chain.EpochStatus.FINALIZED
    assert (list(rec.reserves), rec.verified_only) == ([400_000_000, 12_000_000_000], False)


def test_custody_and_registry_must_fit_the_epoch(
    cli: Callable[..., Result], rig: Rig, tiny_epoch: Any, tmp_path: Path
) -> None:
    custody = tmp_path / "custody.json"
    assert rig.sign(cli, 7, custody).exit_code == 0
    out = tmp_path / "never"
    r = rig.prove(cli, tiny_epoch, out, 8, custody)
    assert r.exit_code == 2
    assert f"{custody}: signed for chain 31337" in r.stderr and "epoch 7" in r.stderr
    # A registry whose slots hold the assets in another order would read one asset's coins
    # for the other: refused before anything is read or written.
    swapped = dict(rig.record, assets=rig.record["assets"][::-1])
    other = tmp_path / "swapped.json"
    other.write_text(json.dumps(swapped))
    r = cli(*prove_args(tiny_epoch, out, 7), "--deployment", other)
    assert r.exit_code == 2
    assert "Deploy a registry configured for these assets" in r.output
    assert not out.exists()

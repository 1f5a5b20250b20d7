"""Reserves and prices the registry checks itself, on a real anvil: a registry configured with
mock tokens (one ERC-20 with the asset's decimals, one with 18 for a 6-decimal asset, ether for
an 8-decimal asset, one asset held off-chain) and three price feeds per on-chain asset; custody
addresses signing EIP-712 ownership through anvil as a remote signer; toy solvency proofs with
the public interface of the real circuit, published with prover/chain.py.

Covers the issue's cases end to end: a forged signature, a signature for another epoch or
another registry, an address the exchange does not control, reserves that drop between proving
and finalize, one bad feed of three, two bad feeds, stale feeds, unusual token decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD
from zksolvency.prover import chain, custody, mockchain
from zksolvency.prover.commitments import registry_domain
from zksolvency.prover.mockchain import Listing, MockMarket
from zksolvency.prover.onchain import check_prices, read_verified_reserves
from zksolvency.prover.snapshot import Asset

from .conftest import N_ASSETS, ToyProofs, ToySetup, account, calldata, rpc, toy_solvency_for

Proof = tuple[dict[str, Any], list[str]]

#: The registry's four slots: BTC as an 8-decimal token, ETH as ether (the snapshot counts 8
#: decimals), USDT as an 18-decimal token for a 6-decimal asset, GOLD held off-chain, unpriced.
ASSETS = (
    Asset("BTC", 8, 65_000 * 10**8),
    Asset("ETH", 8, 3_456_78000000),
    Asset("USDT", 6, 1_00010000),
    Asset("GOLD", 2, 2_000 * 10**8),
)
LISTINGS = {
    "BTC": Listing(8),
    "ETH": Listing(None, native=True),
    "USDT": Listing(18, feed_decimals=(8, 6, 18)),
}
#: What each custody address holds, in asset units (toy totals are 1000, 2000, 3000, 4000).
HELD = {"BTC": 700, "ETH": 1_500, "USDT": 2_999}
DECLARED = [400, 600, 5, 4_000]  # verified + declared cover the toy totals


def weight(a: Asset) -> int:
    return a.price_e8 * 10 ** (18 - a.decimals)


@dataclass(frozen=True)
class Checked:
    registry: Any
    market: MockMarket
    holders: list[str]
    verified: list[int]
    domain: int
    good: Proof  # epoch 1, the reserves as funded
    dropped: Proof  # epoch 1, after 100 BTC units left the first custody address
    verified_dropped: list[int]
    extra: Any  # an account outside custody

    @property
    def chain_id(self) -> int:
        return int(self.registry.w3.eth.chain_id)

    def signed(self, epoch: int = 1) -> list[tuple[str, bytes]]:
        url = self.registry.w3.provider.endpoint_uri
        return [
            custody.sign_ownership(
                custody.RemoteSigner(url, h), self.registry.address, self.chain_id, epoch
            )
            for h in self.holders
        ]


@pytest.fixture(scope="module")
def checked(node: chain.Anvil, toy: ToySetup, proofs: ToyProofs) -> Checked:
    """Created once, before any test's snapshot, so every test starts from it."""
    w3 = node.w3
    op = account(w3, 0)
    market = mockchain.deploy_market(w3, op, ASSETS, LISTINGS, N_ASSETS)
    holders = sorted([account(w3, 7), account(w3, 8)], key=lambda a: int(a, 16))
    for h in holders:
        mockchain.fund(w3, op, market, h, HELD)
    dep = chain.deploy(w3, op, toy.artifacts, N_ASSETS, assets=market.config, margin=False)
    registry = dep.registry_contract(w3)
    verified = list(read_verified_reserves(registry, holders))
    assert verified == [2 * HELD["BTC"], 2 * HELD["ETH"], 2 * HELD["USDT"], 0]
    domain = registry_domain(dep.chain_id, dep.registry)
    weights = [weight(a) for a in ASSETS]

    def prove(v: list[int]) -> Proof:
        only = int(all(x >= 1_000 * (i + 1) for i, x in enumerate(v)))
        return toy_solvency_for(
            toy,
            proofs.main,
            1,
            domain,
            weights=weights,
            verified=v,
            declared=DECLARED,
            verified_only=only,
        )

    dropped = [verified[0] - 100, *verified[1:]]
    return Checked(
        registry,
        market,
        holders,
        verified,
        domain,
        prove(verified),
        prove(dropped),
        dropped,
        Account.create(),
    )


@pytest.fixture
def reg(w3: Web3, checked: Checked) -> Any:
    return checked.registry


def publish(w3: Web3, c: Checked, proofs: ToyProofs, **kw: Any) -> chain.PublishReport:
    kw.setdefault("custody", c.signed())
    return proofs.main.publish(w3, c.registry, 1, solvency=kw.pop("solvency", c.good), **kw)


def refused_custody(w3: Web3, c: Checked, proofs: ToyProofs, entries: Any) -> None:
    with pytest.raises(chain.RegistryRevert) as info:
        publish(w3, c, proofs, custody=entries)
    assert info.value.error == "BadCustodySignature", str(info.value)
    assert chain.read_epoch(w3, c.registry, 1).status is chain.EpochStatus.OPEN


# --- a fully checked epoch -------------------------------------------------------------------


def test_checked_epoch_is_finalized(w3: Web3, checked: Checked, proofs: ToyProofs) -> None:
    report = publish(w3, checked, proofs)
    print(f"\ncustody gas {report.custody_gas}, finalize gas {report.finalize_gas}")
    rec = chain.read_epoch(w3, checked.registry, 1)
    assert rec.status is chain.EpochStatus.FINALIZED
    assert list(rec.reserves) == checked.verified
    assert list(rec.declared) == DECLARED
    assert rec.verified_only is False  # GOLD is held off-chain only
    assert list(rec.prices_e8) == [a.price_e8 for a in ASSETS[:3]] + [weight(ASSETS[3]) // 10**16]
    assert checked.registry.functions.getCustody(1).call() == checked.holders
    assert report.finalize_gas is not None
    assert report.finalize_gas < chain.finalize_gas_for(checked.registry, 2)


def test_unusual_decimals_floor_to_asset_units(w3: Web3, checked: Checked) -> None:
    """USDT: an 18-decimal token for a 6-decimal asset; ETH: 18-decimal ether for 8 decimals.
    Dust below one asset unit is not counted, whatever it adds up to."""
    usdt = mockchain.contract(w3, "MockERC20", str(checked.market.token("USDT")))
    h = checked.holders[0]
    usdt.functions.mint(h, 10**12 - 1).transact({"from": account(w3, 0)})  # below 1 unit
    rpc(w3, "anvil_setBalance", h, hex(HELD["ETH"] * 10**10 + 10**10 - 1))
    assert list(read_verified_reserves(checked.registry, checked.holders)) == checked.verified
    usdt.functions.mint(h, 1).transact({"from": account(w3, 0)})  # now a whole unit more
    got = read_verified_reserves(checked.registry, checked.holders)
    assert got[2] == checked.verified[2] + 1 and got[1] == checked.verified[1]


# --- custody signatures ----------------------------------------------------------------------


def test_forged_signature_refused(w3: Web3, checked: Checked, proofs: ToyProofs) -> None:
    entries = checked.signed()
    forged = bytes(32) + (1).to_bytes(32, "big") + bytes([27])
    refused_custody(w3, checked, proofs, [entries[0], (entries[1][0], forged)])


def test_signature_for_another_epoch_refused(w3: Web3, checked: Checked, proofs: ToyProofs) -> None:
    refused_custody(w3, checked, proofs, checked.signed(epoch=2))


def test_signature_for_another_registry_refused(
    w3: Web3, checked: Checked, proofs: ToyProofs, deployment: chain.Deployment
) -> None:
    url = checked.registry.w3.provider.endpoint_uri
    other = [
        custody.sign_ownership(
            custody.RemoteSigner(url, h), deployment.registry, checked.chain_id, 1
        )
        for h in checked.holders
    ]
    refused_custody(w3, checked, proofs, other)


def test_signature_for_another_chain_refused(w3: Web3, checked: Checked, proofs: ToyProofs) -> None:
    url = checked.registry.w3.provider.endpoint_uri
    other = [
        custody.sign_ownership(custody.RemoteSigner(url, h), checked.registry.address, 1, 1)
        for h in checked.holders
    ]
    refused_custody(w3, checked, proofs, other)


def test_address_the_exchange_does_not_control_refused(
    w3: Web3, checked: Checked, proofs: ToyProofs
) -> None:
    """A rich address the exchange names but cannot sign for: its own key signs the statement
    for the victim's address (and the victim's address for the statement is all it can sign)."""
    rich = account(w3, 9)
    data = custody.typed_data(checked.registry.address, checked.chain_id, 1, rich)
    sig = bytes(Account.sign_typed_data(checked.extra.key, full_message=data).signature)
    entries = sorted([*checked.signed(), (rich, sig)], key=lambda e: int(e[0], 16))
    # publish would stop first (the proof does not count the rich balance): ask the registry
    e, me = proofs.main, account(w3, 0)
    open_args = (1, e.ctx, len(e.batches), e.bundle_hash)
    chain.transact(w3, me, checked.registry, "openEpoch", open_args, gas=300_000)
    args = (1, [a for a, _ in entries], [s for _, s in entries])
    with pytest.raises(chain.RegistryRevert) as info:
        chain.transact(w3, me, checked.registry, "addCustody", args, gas=2_000_000)
    assert (info.value.error, info.value.error_args) == ("BadCustodySignature", (rich,))


# --- reserves that move ----------------------------------------------------------------------


def test_reserves_dropping_after_proving_are_refused(
    w3: Web3, checked: Checked, proofs: ToyProofs
) -> None:
    """100 BTC units leave custody after the proof was made. publish refuses before sending
    anything, naming the asset and both amounts; finalize itself would revert with
    ReservesChanged; proving the solvency again with what is left publishes."""
    mockchain.move(w3, checked.holders[0], checked.market, "BTC", 100, account(w3, 0))
    before = checked.verified[0]
    with pytest.raises(chain.PublishError) as info:
        publish(w3, checked, proofs)
    assert f"asset 0: proven {before}, held now {before - 100}" in str(info.value)
    assert chain.read_epoch(w3, checked.registry, 1).status is chain.EpochStatus.NONE
    publish(w3, checked, proofs, solvency=checked.dropped)
    rec = chain.read_epoch(w3, checked.registry, 1)
    assert rec.status is chain.EpochStatus.FINALIZED
    assert list(rec.reserves) == checked.verified_dropped


def test_funds_moving_after_the_epoch_opened(w3: Web3, checked: Checked, proofs: ToyProofs) -> None:
    """The race the early check cannot close: funds move once the epoch is open (its bundle
    hash recorded). finalize reverts with ReservesChanged, named with both amounts; publish
    then says to restore the balances or abandon, and once they are back the same bundle
    finalizes."""
    e, reg, me = proofs.main, checked.registry, account(w3, 0)
    with pytest.raises(chain.RegistryRevert):  # stop before finalize: too little gas for it
        publish(w3, checked, proofs, finalize_gas=300_000)
    rec = chain.read_epoch(w3, reg, 1)
    assert (rec.status, rec.batches_submitted) == (chain.EpochStatus.OPEN, len(e.batches))
    assert reg.functions.getCustody(1).call() == checked.holders
    mockchain.move(w3, checked.holders[0], checked.market, "BTC", 100, me)
    claim = (e.root, e.totals_commit, e.shortfall, e.insurance_fund)
    pub = [int(x) for x in checked.good[1]]
    n = N_ASSETS
    claim += (pub[9 : 9 + n], pub[9 + n : 9 + 2 * n], pub[9 + 2 * n : 9 + 3 * n], pub[-1] == 1)
    a, b, c = calldata(checked.good[0])
    with pytest.raises(chain.RegistryRevert) as info:
        chain.transact(w3, me, reg, "finalize", (1, (a, b, c), claim), gas=3_000_000)
    assert info.value.error == "ReservesChanged"
    assert info.value.error_args == (0, checked.verified[0], checked.verified[0] - 100)
    with pytest.raises(chain.PublishError, match="move the balances back"):
        publish(w3, checked, proofs)
    mockchain.move(w3, me, checked.market, "BTC", 100, checked.holders[0])
    publish(w3, checked, proofs)
    assert chain.read_epoch(w3, reg, 1).status is chain.EpochStatus.FINALIZED


def test_reserves_arriving_after_proving_still_publish_the_proven_amount(
    w3: Web3, checked: Checked, proofs: ToyProofs
) -> None:
    """Deposits, or anyone's dust, that reach custody after proving do not stop the epoch:
    the registry attests the proven amount, which is still held (a floor). Exact equality let
    anyone block finalize with one token unit, as often as they liked."""
    mockchain.fund(w3, account(w3, 0), checked.market, checked.holders[1], {"BTC": 1})
    publish(w3, checked, proofs)
    rec = chain.read_epoch(w3, checked.registry, 1)
    assert rec.status is chain.EpochStatus.FINALIZED
    assert list(rec.reserves) == checked.verified


# --- prices: the circuit breaker -------------------------------------------------------------


def _set(w3: Web3, c: Checked, symbol: str, k: int, price_e8: int, age: int = 0) -> None:
    feed = c.market.feeds(symbol)[k]
    dec = c.market.feed_decimals[symbol][k]
    now = int(w3.eth.get_block("latest")["timestamp"])
    mockchain.set_feed(w3, account(w3, 0), feed, mockchain.scaled_price(price_e8, dec), now - age)


def test_one_bad_feed_of_three_is_outvoted(w3: Web3, checked: Checked, proofs: ToyProofs) -> None:
    eth = ASSETS[1].price_e8
    _set(w3, checked, "ETH", 2, eth * 10)  # wildly off
    readings = check_prices(checked.registry, [weight(a) for a in ASSETS], checked.market.config)
    assert readings[1].ok and readings[1].fresh == 3 and readings[1].agreeing == 2
    publish(w3, checked, proofs)
    assert chain.read_epoch(w3, checked.registry, 1).status is chain.EpochStatus.FINALIZED


def test_two_bad_feeds_trip_the_breaker(w3: Web3, checked: Checked, proofs: ToyProofs) -> None:
    """Two bad feeds that disagree: no quorum agrees around the median. finalize is mined, emits
    why, and leaves the epoch open; once the feeds recover the same bundle finalizes."""
    eth = ASSETS[1].price_e8
    _set(w3, checked, "ETH", 1, eth * 120 // 100)
    _set(w3, checked, "ETH", 2, eth * 140 // 100)
    with pytest.raises(chain.AttestationRefused) as info:
        publish(w3, checked, proofs)
    (r,) = info.value.readings
    assert (r.asset, r.verdict, r.fresh) == (1, 2, 3)  # ETH, Diverged, all fresh
    assert r.claimed_e8 == eth and r.median_e8 == eth * 120 // 100
    receipt = w3.eth.get_transaction_receipt(info.value.tx_hash)
    assert receipt["status"] == 1  # refused on-chain, not reverted: the event survives
    refused = checked.registry.events.AttestationRefused().process_receipt(receipt, errors=DISCARD)
    assert [ev.args.epoch for ev in refused] == [1]
    rec = chain.read_epoch(w3, checked.registry, 1)
    assert rec.status is chain.EpochStatus.OPEN and rec.batches_submitted == 3
    _set(w3, checked, "ETH", 1, eth)
    _set(w3, checked, "ETH", 2, eth)
    publish(w3, checked, proofs)
    assert chain.read_epoch(w3, checked.registry, 1).status is chain.EpochStatus.FINALIZED


def test_two_colluding_feeds_move_the_median(w3: Web3, checked: Checked, proofs: ToyProofs) -> None:
    """Two feeds that agree on a false price outvote the honest one: the epoch's true price is
    then off their median and the breaker refuses (what collusion cannot do is pass a false
    epoch price without controlling a majority of feeds; docs/threat-model.md)."""
    btc = ASSETS[0].price_e8
    _set(w3, checked, "BTC", 0, btc * 90 // 100)
    _set(w3, checked, "BTC", 1, btc * 90 // 100)
    with pytest.raises(chain.AttestationRefused) as info:
        publish(w3, checked, proofs)
    (r,) = info.value.readings
    assert (r.asset, r.verdict, r.agreeing) == (0, 3, 2)  # BTC, OffMedian


@pytest.mark.parametrize(("stale", "ok"), [(1, True), (2, False)])
def test_stale_feeds(w3: Web3, checked: Checked, proofs: ToyProofs, stale: int, ok: bool) -> None:
    """An answer older than max_age (an hour) does not count: one stale feed of three leaves a
    quorum of two; two leave one, too few."""
    for k in range(stale):
        _set(w3, checked, "USDT", k, ASSETS[2].price_e8, age=3_601)
    if ok:
        publish(w3, checked, proofs)
        assert chain.read_epoch(w3, checked.registry, 1).status is chain.EpochStatus.FINALIZED
        return
    with pytest.raises(chain.AttestationRefused) as info:
        publish(w3, checked, proofs)
    (r,) = info.value.readings
    assert (r.asset, r.verdict, r.fresh) == (2, 1, 1)  # USDT, TooFewFresh


def test_unpriced_offchain_asset_is_not_checked(w3: Web3, checked: Checked) -> None:
    readings = check_prices(checked.registry, [weight(a) for a in ASSETS], checked.market.config)
    assert [r.verdict for r in readings] == [0, 0, 0, 0]
    assert (readings[3].fresh, readings[3].median_e8) == (0, 0)
    # GOLD's verified reserve must be 0: nothing on this chain holds it
    assert read_verified_reserves(checked.registry, checked.holders)[3] == 0

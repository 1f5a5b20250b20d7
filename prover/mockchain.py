"""Stand-ins for a market on a local chain (the demo and tests only): MockERC20 tokens, three
MockAggregator price feeds per asset, and custody addresses funded with exact balances.

Nothing here is for a real chain: the mocks mint to anyone and take any price from anyone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from .chain import ChainError
from .deployment import build_demo_contracts
from .onchain import NATIVE, AssetOnchain, unchecked_slot
from .snapshot import Asset

#: Mock transactions are simple: fixed limits, far above what they use.
_GAS = 2_000_000


@dataclass(frozen=True)
class Listing:
    """How one asset appears on the local chain: its token (None: held off-chain, NATIVE:
    ether) with that token's decimals, and its feeds' decimals (one feed each)."""

    token_decimals: int | None
    native: bool = False
    feed_decimals: tuple[int, ...] = (8, 8, 18)


@dataclass(frozen=True)
class MockMarket:
    config: tuple[AssetOnchain, ...]  # one per registry slot, for deploy_registry(assets=...)
    feed_decimals: dict[str, tuple[int, ...]]

    def token(self, symbol: str) -> str | None:
        return next(c.token for c in self.config if c.symbol == symbol)

    def feeds(self, symbol: str) -> tuple[str, ...]:
        return next(c.feeds for c in self.config if c.symbol == symbol)


def _send(w3: Web3, sender: str, fn: Any) -> None:
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender, "gas": _GAS}))
    if receipt["status"] != 1:
        raise ChainError(f"mock transaction {receipt['transactionHash'].to_0x_hex()} failed")


def _deploy(w3: Web3, sender: str, name: str, *args: Any) -> str:
    art = build_demo_contracts()[name]
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx = factory.constructor(*args).transact({"from": sender, "gas": _GAS})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    address = receipt.get("contractAddress")
    if receipt["status"] != 1 or address is None:
        raise ChainError(f"deploying {name} failed")
    return Web3.to_checksum_address(address)


def contract(w3: Web3, name: str, address: str) -> Any:
    return w3.eth.contract(
        address=Web3.to_checksum_address(address), abi=build_demo_contracts()[name].abi
    )


def deploy_market(
    w3: Web3,
    sender: str,
    assets: Sequence[Asset],
    listings: Mapping[str, Listing],
    n_slots: int,
    *,
    tolerance_bps: int = 200,
    max_age: int = 3600,
) -> MockMarket:
    """Tokens and three feeds (answering each asset's price now) per listed asset, and the
    registry configuration naming them; unlisted assets are held off-chain, unpriced."""
    now = int(w3.eth.get_block("latest")["timestamp"])
    config: list[AssetOnchain] = []
    feed_decimals: dict[str, tuple[int, ...]] = {}
    for a in assets:
        listing = listings.get(a.symbol)
        if listing is None:
            config.append(AssetOnchain(a.symbol, a.decimals, None, 0, (), 0, 0, 0))
            continue
        token: str | None = None
        if listing.native:
            token = NATIVE
        elif listing.token_decimals is not None:
            token = _deploy(
                w3, sender, "MockERC20", f"Mock {a.symbol}", a.symbol, listing.token_decimals
            )
        feeds = tuple(
            _deploy(w3, sender, "MockAggregator", d, scaled_price(a.price_e8, d), now)
            for d in listing.feed_decimals
        )
        feed_decimals[a.symbol] = listing.feed_decimals
        n = len(feeds)
        config.append(
            AssetOnchain(
                a.symbol,
                a.decimals,
                token,
                18 if listing.native else (listing.token_decimals or 0),
                feeds,
                max_age,
                tolerance_bps,
                n // 2 + 1,
            )
        )
    config.extend(unchecked_slot() for _ in range(n_slots - len(config)))
    return MockMarket(tuple(config), feed_decimals)


def scaled_price(price_e8: int, decimals: int) -> int:
    """A USD price with 8 decimals as a feed with `decimals` answers it."""
    return price_e8 * int(10**decimals) // 10**8


def set_feed(w3: Web3, sender: str, feed: str, answer: int, updated_at: int | None = None) -> None:
    """Make `feed` answer `answer` (in its own decimals), updated at `updated_at` (now)."""
    at = updated_at if updated_at is not None else int(w3.eth.get_block("latest")["timestamp"])
    _send(w3, sender, contract(w3, "MockAggregator", feed).functions.set(answer, at))


def fund(
    w3: Web3, sender: str, market: MockMarket, holder: str, amounts: Mapping[str, int]
) -> None:
    """Mint `holder` `amounts` (asset units, by symbol) of each listed token; ether is set, not
    added (a local node's accounts start rich), so its balance is exactly the amount."""
    for c in market.config:
        if c.symbol not in amounts or c.token is None:
            continue
        units = amounts[c.symbol] * 10**c.token_decimals // 10**c.decimals
        if c.token == NATIVE:
            w3.provider.make_request("anvil_setBalance", [holder, hex(units)])  # type: ignore[arg-type]
        else:
            _send(w3, sender, contract(w3, "MockERC20", c.token).functions.mint(holder, units))


def move(w3: Web3, holder: str, market: MockMarket, symbol: str, amount: int, to: str) -> None:
    """`holder` sends `amount` (asset units) of `symbol`'s token to `to`."""
    c = next(c for c in market.config if c.symbol == symbol)
    if c.token is None or c.token == NATIVE:
        raise ChainError(f"{symbol} has no ERC-20 token here")
    units = amount * 10**c.token_decimals // 10**c.decimals
    # The holder may hold no ether for gas (its balance is a reserve): lend it some, then put
    # its balance back, so that only the token moves.
    balance = w3.eth.get_balance(Web3.to_checksum_address(holder))
    w3.provider.make_request("anvil_setBalance", [holder, hex(balance + 10**18)])  # type: ignore[arg-type]
    _send(w3, holder, contract(w3, "MockERC20", c.token).functions.transfer(to, units))
    w3.provider.make_request("anvil_setBalance", [holder, hex(balance)])  # type: ignore[arg-type]

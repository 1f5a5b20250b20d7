"""Reserves and prices the registry checks itself: its per-asset configuration (where each asset
is held on-chain, which feeds price it and the circuit breaker's thresholds), custody files (the
addresses that hold reserves, each with its ownership signature for one epoch), and reading,
before proving, what the registry will read at finalize.

The registry computes verified reserves with `onchainReserves(holders)` and judges prices with
`checkPrices(weights)`; this module calls the same views, so what the prover puts in the solvency
proof is what finalize recomputes, unless balances move in between (then finalize reverts with
ReservesChanged and only the solvency proof needs making again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils.address import is_hex_address, to_checksum_address

from . import custody as _custody
from . import snapshot as _snapshot
from .atomic import write_json
from .chain import NATIVE_TOKEN
from .snapshot import Asset, SnapshotError

#: The token address that stands for the chain's own currency (ReserveBalances.NATIVE).
NATIVE = NATIVE_TOKEN
#: Defaults of the circuit breaker (docs/protocol.md): an answer older than an hour is stale,
#: feeds and the epoch's price must lie within 2 % of the median, a majority of feeds must agree.
DEFAULT_MAX_AGE = 3600
DEFAULT_TOLERANCE_BPS = 200
MAX_FEEDS = 16
MAX_DECIMALS = 36  # ReserveBalances.MAX_DECIMALS
MAX_ASSET_DECIMALS = 18
#: PriceCheck.Verdict, in its order.
VERDICTS = ("ok", "too few fresh feeds", "feeds diverge", "price off the feeds' median")
CUSTODY_FORMAT = "zksolvency-custody/1"
CONFIG_KEYS = (
    "symbol",
    "decimals",
    "token",
    "token_decimals",
    "feeds",
    "max_age",
    "tolerance_bps",
    "quorum",
)


@dataclass(frozen=True)
class AssetOnchain:
    """One asset slot of the registry. `token` is an ERC-20, NATIVE, or None when the chain
    cannot see the asset (its verified reserve is then 0); no feeds means its price is not
    checked on-chain."""

    symbol: str
    decimals: int
    token: str | None = None
    token_decimals: int = 0
    feeds: tuple[str, ...] = ()
    max_age: int = DEFAULT_MAX_AGE
    tolerance_bps: int = DEFAULT_TOLERANCE_BPS
    quorum: int = 0

    def constructor_arg(self) -> tuple[Any, ...]:
        """The registry's AssetConfig tuple: (token, tokenDecimals, assetDecimals, feeds,
        maxAge, toleranceBps, quorum)."""
        token = self.token or "0x" + "00" * 20
        return (
            to_checksum_address(token),
            self.token_decimals,
            self.decimals,
            list(self.feeds),
            self.max_age,
            self.tolerance_bps,
            self.quorum,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "decimals": self.decimals,
            "token": "native" if self.token == NATIVE else self.token,
            "token_decimals": self.token_decimals,
            "feeds": list(self.feeds),
            "max_age": self.max_age,
            "tolerance_bps": self.tolerance_bps,
            "quorum": self.quorum,
        }


def unchecked_slot(symbol: str = "", decimals: int = 0) -> AssetOnchain:
    """A slot the chain checks nothing for: held off-chain, price unchecked."""
    return AssetOnchain(symbol, decimals, feeds=(), max_age=0, tolerance_bps=0, quorum=0)


def load_asset_config(path: Path, n_slots: int) -> tuple[AssetOnchain, ...]:
    """Read a registry asset configuration (docs/protocol.md, "On-chain reserves and prices"):

        {"assets": [{"symbol": "ETH", "decimals": 18, "token": "native",
                     "feeds": ["0x...", "0x...", "0x..."], "max_age": 3600,
                     "tolerance_bps": 200, "quorum": 2}, ...]}

    in the snapshot's asset order, padded to `n_slots` with unchecked slots. `token` is
    "native", an ERC-20 address (with `token_decimals`) or absent (held off-chain); `feeds` may
    be empty (price not checked on-chain). Errors name the file, the asset's position and field.
    """
    file = str(path)
    j = _snapshot._Json(file)
    doc = j.obj(_snapshot._read_json(Path(path)), None, None, "the configuration", ("assets",))
    j.require(doc, None, ("assets",))
    entries = j.array(doc["assets"], "assets", "assets")
    if not 1 <= len(entries) <= n_slots:
        raise j.error(None, "assets", f"need 1 to {n_slots} assets (the circuit's slots)")
    out: list[AssetOnchain] = []
    seen: dict[str, int] = {}
    tokens: dict[str, int] = {}  # token -> the asset position that holds it
    for pos, raw in enumerate(entries, 1):
        e = j.obj(raw, pos, None, "an asset", CONFIG_KEYS)
        j.require(e, pos, ("symbol", "decimals"))
        symbol = e["symbol"]
        if not isinstance(symbol, str) or not symbol:
            raise j.error(pos, "symbol", "must be a non-empty string")
        if symbol in seen:
            raise j.error(pos, "symbol", f"{symbol!r} repeats asset {seen[symbol]}")
        seen[symbol] = pos

        decimals = _integer(j, e, pos, "decimals", 0, MAX_ASSET_DECIMALS)
        token_raw = e.get("token")
        token: str | None
        if token_raw is None:
            token, token_decimals = None, 0
            if "token_decimals" in e:
                raise j.error(pos, "token_decimals", "given for an asset without a token")
        elif token_raw == "native":
            token, token_decimals = NATIVE, _integer(j, e, pos, "token_decimals", 18, 18, 18)
        elif isinstance(token_raw, str) and is_hex_address(token_raw):
            token = to_checksum_address(token_raw)
            if int(token, 16) == 0 or token == NATIVE:
                raise j.error(pos, "token", 'use "native" for ether, or a token\'s address')
            if "token_decimals" not in e:
                raise j.error(pos, "token_decimals", "missing for an ERC-20 token")
            token_decimals = _integer(j, e, pos, "token_decimals", 0, MAX_DECIMALS)
        else:
            raise j.error(pos, "token", f'must be "native" or a 0x address, not {token_raw!r}')
        if token is not None:
            # one balance read for two assets would count as reserves of both
            if token in tokens:
                raise j.error(pos, "token", f"{token_raw!r} is asset {tokens[token]}'s token too")
            tokens[token] = pos
        feeds_raw = e.get("feeds", [])
        if not isinstance(feeds_raw, list):
            raise j.error(pos, "feeds", "must be a JSON array of 0x addresses")
        if len(feeds_raw) > MAX_FEEDS:
            raise j.error(pos, "feeds", f"at most {MAX_FEEDS} feeds")
        feeds: list[str] = []
        for f in feeds_raw:
            if not isinstance(f, str) or not is_hex_address(f):
                raise j.error(pos, "feeds", f"{f!r} is not a 0x address")
            if to_checksum_address(f) in feeds:
                raise j.error(pos, "feeds", f"{f} appears twice (it would vote twice)")
            feeds.append(to_checksum_address(f))
        if not feeds:
            for key in ("max_age", "tolerance_bps", "quorum"):
                if key in e:
                    raise j.error(pos, key, "given for an asset without feeds")
            out.append(AssetOnchain(symbol, decimals, token, token_decimals, (), 0, 0, 0))
            continue
        n = len(feeds)
        max_age = _integer(j, e, pos, "max_age", 1, 2**32 - 1, DEFAULT_MAX_AGE)
        tolerance = _integer(j, e, pos, "tolerance_bps", 1, 9_999, DEFAULT_TOLERANCE_BPS)
        # a majority: then bad feeds must outnumber good ones to set the price
        quorum = _integer(j, e, pos, "quorum", n // 2 + 1, n, n // 2 + 1)
        out.append(
            AssetOnchain(
                symbol, decimals, token, token_decimals, tuple(feeds), max_age, tolerance, quorum
            )
        )
    out.extend(unchecked_slot() for _ in range(n_slots - len(out)))
    return tuple(out)


def _integer(
    j: Any,
    e: dict[str, Any],
    pos: int | None,
    key: str,
    lo: int,
    hi: int,
    default: int | None = None,
) -> int:
    raw = e.get(key, default)
    if isinstance(raw, _snapshot._JsonNumber):  # numbers are kept as their source text
        text = raw.text
        value = int(text) if text.lstrip("-").isdigit() else None
    else:
        text = repr(raw)
        value = raw if type(raw) is int else None
    if value is None or not lo <= value <= hi:
        raise j.error(pos, key, f"must be an integer in [{lo}, {hi}], not {text}")
    return value


def config_from_record(record: Mapping[str, Any]) -> tuple[AssetOnchain, ...] | None:
    """The asset slots a deployment record lists (None for a record without them)."""
    assets = record.get("assets")
    if assets is None:
        return None
    return tuple(
        AssetOnchain(
            a["symbol"],
            int(a["decimals"]),
            NATIVE if a["token"] == "native" else a["token"],
            int(a["token_decimals"]),
            tuple(a["feeds"]),
            int(a["max_age"]),
            int(a["tolerance_bps"]),
            int(a["quorum"]),
        )
        for a in assets
    )


def check_snapshot_assets(
    config: Sequence[AssetOnchain], assets: Sequence[Asset], where: str
) -> None:
    """The registry's slots must hold the snapshot's assets in the same order and scale: a
    verified reserve read for one asset must never cover another."""
    named = [(c.symbol, c.decimals) for c in config if c.symbol]
    want = [(a.symbol, a.decimals) for a in assets]
    if named != want:
        raise ValueError(
            f"{where}: the registry's assets are {named} (symbol, decimals); the snapshot's "
            f"are {want}. Deploy a registry configured for these assets"
        )


def slot_scale_problems(registry: Any, assets: Sequence[dict[str, Any]]) -> list[str]:
    """Where a registry slot the chain checks (a token or feeds) is configured for other
    decimals than the epoch's asset in it (`assets`: the manifest context's). The circuit
    compares raw integers, so a snapshot at other decimals than the registry reads its
    reserves and prices at would overstate reserves by powers of ten."""
    out = []
    for i, a in enumerate(assets):
        token, _, decimals, feeds = registry.functions.assetConfig(i).call()[:4]
        if (int(token, 16) != 0 or feeds) and int(decimals) != int(a["decimals"]):
            out.append(
                f"slot {i} is configured for {decimals} decimals, the epoch's {a['symbol']} has "
                f"{a['decimals']}"
            )
    return out


# --------------------------------------------------------------------------------------------
# Custody files


@dataclass(frozen=True)
class Custody:
    """Custody addresses with their ownership signatures for one epoch of one registry."""

    chain_id: int
    registry: str
    epoch: int
    entries: tuple[tuple[str, bytes], ...]  # (address, signature), by increasing address

    @property
    def holders(self) -> list[str]:
        return [a for a, _ in self.entries]

    @property
    def signatures(self) -> list[bytes]:
        return [s for _, s in self.entries]

    def as_json(self) -> dict[str, Any]:
        return {
            "format": CUSTODY_FORMAT,
            "chain_id": self.chain_id,
            "registry": self.registry,
            "epoch": self.epoch,
            "custody": [{"address": a, "signature": "0x" + s.hex()} for a, s in self.entries],
        }

    def with_entry(self, address: str, signature: bytes) -> Custody:
        """This file with `address` signed (replacing an earlier signature of it)."""
        kept = {a: s for a, s in self.entries if a != address}
        kept[address] = signature
        return Custody(self.chain_id, self.registry, self.epoch, _sorted(kept.items()))

    def unrecovered(self) -> list[str]:
        """Addresses whose signature does not recover to them: fine only for contract wallets
        (ERC-1271), which the registry asks on-chain."""
        return [
            a
            for a, s in self.entries
            if _custody.recover(self.registry, self.chain_id, self.epoch, a, s) != a
        ]


def _sorted(entries: Any) -> tuple[tuple[str, bytes], ...]:
    return tuple(sorted(entries, key=lambda e: int(e[0], 16)))


def write_custody(path: Path, custody: Custody) -> None:
    write_json(path, custody.as_json())


def load_custody(path: Path) -> Custody:
    """Read a custody file; errors name the file, the entry's position and the field."""
    file = str(path)
    j = _snapshot._Json(file)
    doc = j.obj(
        _snapshot._read_json(Path(path)),
        None,
        None,
        "a custody file",
        ("format", "chain_id", "registry", "epoch", "custody"),
    )
    j.require(doc, None, ("format", "chain_id", "registry", "epoch", "custody"))
    if doc["format"] != CUSTODY_FORMAT:
        raise j.error(None, "format", f"expected {CUSTODY_FORMAT!r}, not {doc['format']!r}")
    for key in ("chain_id", "epoch"):
        doc[key] = _integer(j, doc, None, key, 1, 2**64 - 1)
    if not isinstance(doc["registry"], str) or not is_hex_address(doc["registry"]):
        raise j.error(None, "registry", f"not a 0x address: {doc['registry']!r}")
    entries: dict[str, bytes] = {}
    for pos, raw in enumerate(j.array(doc["custody"], "custody", "custody"), 1):
        e = j.obj(raw, pos, None, "a custody entry", ("address", "signature"))
        j.require(e, pos, ("address", "signature"))
        if not isinstance(e["address"], str) or not is_hex_address(e["address"]):
            raise j.error(pos, "address", f"not a 0x address: {e['address']!r}")
        address = to_checksum_address(e["address"])
        if address in entries:
            raise j.error(pos, "address", f"{address} appears twice (counted twice on-chain)")
        sig = e["signature"]
        try:
            entries[address] = bytes.fromhex(str(sig).removeprefix("0x"))
        except ValueError:
            raise j.error(pos, "signature", "not hex") from None
        if not isinstance(sig, str) or not entries[address]:
            raise j.error(pos, "signature", "must be a non-empty 0x hex string")
    return Custody(
        int(doc["chain_id"]),
        to_checksum_address(doc["registry"]),
        int(doc["epoch"]),
        _sorted(entries.items()),
    )


def check_custody_for(
    custody: Custody, chain_id: int, registry: str, epoch: int, where: str
) -> None:
    """The custody file must be signed for this epoch of this registry on this chain."""
    want = (chain_id, to_checksum_address(registry), epoch)
    got = (custody.chain_id, custody.registry, custody.epoch)
    if got != want:
        raise SnapshotError(
            where,
            None,
            None,
            f"signed for chain {got[0]}, registry {got[1]}, epoch {got[2]}; this epoch is "
            f"chain {want[0]}, registry {want[1]}, epoch {want[2]}",
        )


# --------------------------------------------------------------------------------------------
# What the registry will read


@dataclass(frozen=True)
class PriceReading:
    """PriceCheck's reading of one asset: verdict, feeds' median (USD, 8 decimals), counts."""

    asset: int
    verdict: int
    claimed_e8: int
    median_e8: int
    fresh: int
    agreeing: int

    @property
    def ok(self) -> bool:
        return self.verdict == 0

    def describe(self, symbol: str) -> str:
        why = VERDICTS[self.verdict] if self.verdict < len(VERDICTS) else f"verdict {self.verdict}"
        return (
            f"{symbol or f'asset {self.asset}'}: {why} (epoch price {_usd(self.claimed_e8)}, "
            f"feeds' median {_usd(self.median_e8)}, {self.fresh} fresh, {self.agreeing} agreeing)"
        )


def _usd(e8: int) -> str:
    return _snapshot.format_amount(e8, 8) + " USD"


def claimed_e8(weight: int, decimals: int) -> int:
    """The USD price (8 decimals) a context weight states, as the registry derives it."""
    return weight // int(10 ** (MAX_ASSET_DECIMALS - decimals))


def read_verified_reserves(
    registry: Any, holders: Sequence[str], block: int | str = "latest"
) -> tuple[int, ...]:
    """What `holders` hold per asset slot, in asset units, as the registry counts it (zeros
    for no holders, as finalize computes for an epoch without custody)."""
    values = registry.functions.onchainReserves(list(holders)).call(block_identifier=block)
    return tuple(int(v) for v in values)


def check_prices(
    registry: Any, weights: Sequence[int], config: Sequence[AssetOnchain]
) -> list[PriceReading]:
    """The registry's circuit-breaker readings for these context weights, one per slot."""
    raw = registry.functions.checkPrices(list(weights)).call()
    return [
        PriceReading(i, int(r[0]), claimed_e8(w, c.decimals), int(r[1]), int(r[2]), int(r[3]))
        for i, (r, w, c) in enumerate(zip(raw, weights, config, strict=True))
    ]

"""prover/onchain.py without a chain: the registry asset configuration and custody files, read
strictly (errors name the file, the entry and the field), and the weight-to-price conversion
the registry makes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from zksolvency.prover import custody
from zksolvency.prover.commitments import weight
from zksolvency.prover.onchain import (
    DEFAULT_MAX_AGE,
    DEFAULT_TOLERANCE_BPS,
    NATIVE,
    Custody,
    check_custody_for,
    check_snapshot_assets,
    claimed_e8,
    load_asset_config,
    load_custody,
    write_custody,
)
from zksolvency.prover.snapshot import Asset, SnapshotError

FEEDS = ["0x" + f"{i:040x}" for i in (0xF1, 0xF2, 0xF3)]
TOKEN = "0x" + "ab" * 20
REGISTRY = "0x" + "aa" * 20


def _write(tmp_path: Path, doc: Any, name: str = "assets.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def test_config_defaults_and_padding(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "assets": [
                {"symbol": "ETH", "decimals": 8, "token": "native", "feeds": FEEDS},
                {"symbol": "USDT", "decimals": 6, "token": TOKEN, "token_decimals": 18},
                {"symbol": "BTC", "decimals": 8, "feeds": FEEDS[:1], "quorum": 1},
            ]
        },
    )
    eth, usdt, btc, pad = load_asset_config(path, 4)
    assert (eth.token, eth.token_decimals, eth.quorum) == (NATIVE, 18, 2)
    assert (eth.max_age, eth.tolerance_bps) == (DEFAULT_MAX_AGE, DEFAULT_TOLERANCE_BPS)
    assert usdt.token is not None and usdt.token.lower() == TOKEN and usdt.feeds == ()
    assert (btc.token, btc.quorum) == (None, 1)
    assert (pad.symbol, pad.token, pad.feeds) == ("", None, ())
    # the constructor tuple: (token, tokenDecimals, assetDecimals, (feeds, maxAge, tol, quorum))
    assert eth.constructor_arg()[:3] == (NATIVE, 18, 8)
    assert btc.constructor_arg()[0] == "0x" + "00" * 20


@pytest.mark.parametrize(
    ("entry", "field", "fragment"),
    [
        ({"decimals": 8}, "symbol", "missing key"),
        ({"symbol": "X", "decimals": 19}, "decimals", "integer in [0, 18]"),
        ({"symbol": "X", "decimals": "8"}, "decimals", "integer"),
        ({"symbol": "X", "decimals": 8, "token": "eth"}, "token", '"native" or a 0x address'),
        ({"symbol": "X", "decimals": 8, "token": TOKEN}, "token_decimals", "missing"),
        ({"symbol": "X", "decimals": 8, "token": NATIVE}, "token", 'use "native"'),
        ({"symbol": "X", "decimals": 8, "token_decimals": 8}, "token_decimals", "without a token"),
        ({"symbol": "X", "decimals": 8, "feeds": FEEDS, "quorum": 1}, "quorum", "[2, 3]"),
        ({"symbol": "X", "decimals": 8, "feeds": FEEDS, "tolerance_bps": 0}, "tolerance_bps", ""),
        ({"symbol": "X", "decimals": 8, "feeds": FEEDS, "max_age": 0}, "max_age", ""),
        ({"symbol": "X", "decimals": 8, "feeds": [FEEDS[0], FEEDS[0]]}, "feeds", "twice"),
        ({"symbol": "X", "decimals": 8, "feeds": ["0x12"]}, "feeds", "not a 0x address"),
        ({"symbol": "X", "decimals": 8, "quorum": 2}, "quorum", "without feeds"),
        ({"symbol": "X", "decimals": 8, "price": 1}, "price", "unknown key"),
    ],
)
def test_config_errors_name_the_entry_and_field(
    tmp_path: Path, entry: dict[str, Any], field: str, fragment: str
) -> None:
    good = {"symbol": "A", "decimals": 8}
    path = _write(tmp_path, {"assets": [good, entry]})
    with pytest.raises(SnapshotError) as info:
        load_asset_config(path, 4)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), 2, field)
    assert fragment in err.message
    assert str(path) in str(err) and "2" in str(err)


def test_config_limits(tmp_path: Path) -> None:
    five = {"assets": [{"symbol": f"A{i}", "decimals": 8} for i in range(5)]}
    with pytest.raises(SnapshotError, match="1 to 4 assets"):
        load_asset_config(_write(tmp_path, five), 4)
    twice = {"assets": [{"symbol": "A", "decimals": 8}, {"symbol": "A", "decimals": 8}]}
    with pytest.raises(SnapshotError, match="repeats asset 1"):
        load_asset_config(_write(tmp_path, twice), 4)
    # One token (ether among them) for two assets would count one balance twice.
    for token, extra in (("native", {}), (FEEDS[1], {"token_decimals": 6})):
        shared = {
            "assets": [
                {"symbol": "A", "decimals": 8, "token": token, **extra},
                {"symbol": "B", "decimals": 8, "token": token, **extra},
            ]
        }
        with pytest.raises(SnapshotError, match="is asset 1's token too") as info:
            load_asset_config(_write(tmp_path, shared), 4)
        assert (info.value.line, info.value.field) == (2, "token")
    with pytest.raises(SnapshotError):
        load_asset_config(_write(tmp_path, "{not json"), 4)


def test_snapshot_assets_must_fill_the_slots_in_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path, {"assets": [{"symbol": "BTC", "decimals": 8}, {"symbol": "ETH", "decimals": 8}]}
    )
    config = load_asset_config(path, 4)
    check_snapshot_assets(config, [Asset("BTC", 8, 1), Asset("ETH", 8, 1)], "d.json")
    for wrong in (
        [Asset("ETH", 8, 1), Asset("BTC", 8, 1)],  # swapped: each would read the other's coins
        [Asset("BTC", 6, 1), Asset("ETH", 8, 1)],  # another scale
        [Asset("BTC", 8, 1)],
    ):
        with pytest.raises(ValueError, match="Deploy a registry configured"):
            check_snapshot_assets(config, wrong, "d.json")


def test_claimed_price_is_what_the_weight_states() -> None:
    for price, dec in [(65_000 * 10**8, 8), (1_00010000, 6), (152_34000000, 9), (1, 18), (7, 0)]:
        assert claimed_e8(weight(price, dec), dec) == price


# --- custody files -----------------------------------------------------------------------


def _custody(n: int = 3, epoch: int = 5) -> tuple[Custody, list[Any]]:
    keys = [Account.create() for _ in range(n)]
    c = Custody(31337, custody.to_checksum_address(REGISTRY), epoch, ())
    for k in keys:
        sig = bytes(
            Account.sign_typed_data(
                k.key, full_message=custody.typed_data(REGISTRY, 31337, epoch, k.address)
            ).signature
        )
        c = c.with_entry(k.address, sig)
    return c, keys


def test_custody_round_trip_sorted_and_recoverable(tmp_path: Path) -> None:
    c, _ = _custody()
    path = tmp_path / "custody.json"
    write_custody(path, c)
    back = load_custody(path)
    assert back == c
    assert [int(a, 16) for a in back.holders] == sorted(int(a, 16) for a in back.holders)
    assert back.unrecovered() == []
    check_custody_for(back, 31337, REGISTRY, 5, str(path))
    for other in [(1, REGISTRY, 5), (31337, "0x" + "bb" * 20, 5), (31337, REGISTRY, 6)]:
        with pytest.raises(SnapshotError, match="signed for chain 31337"):
            check_custody_for(back, *other, str(path))


def test_custody_resigning_replaces_and_foreign_signatures_show(tmp_path: Path) -> None:
    c, keys = _custody(2)
    stranger = Account.create()
    data = custody.typed_data(REGISTRY, 31337, 5, keys[0].address)
    forged = bytes(Account.sign_typed_data(stranger.key, full_message=data).signature)
    c2 = c.with_entry(keys[0].address, forged)
    assert len(c2.entries) == 2 and c2.unrecovered() == [keys[0].address]


@pytest.mark.parametrize(
    ("edit", "line", "field", "fragment"),
    [
        (lambda d: d.update(format="x"), None, "format", "expected"),
        (lambda d: d.update(epoch=0), None, "epoch", "[1, 18446744073709551615]"),
        (lambda d: d.update(chain_id="1"), None, "chain_id", "integer"),
        (lambda d: d.update(registry="0x12"), None, "registry", "not a 0x address"),
        (lambda d: d["custody"][1].update(address="nope"), 2, "address", "not a 0x address"),
        (lambda d: d["custody"][1].update(signature="0xzz"), 2, "signature", "not hex"),
        (lambda d: d["custody"][1].update(signature=""), 2, "signature", "non-empty"),
        (lambda d: d["custody"].append(dict(d["custody"][0])), 4, "address", "appears twice"),
        (lambda d: d["custody"][0].pop("signature"), 1, "signature", "missing key"),
    ],
)
def test_custody_errors_name_the_entry_and_field(
    tmp_path: Path, edit: Any, line: int | None, field: str, fragment: str
) -> None:
    c, _ = _custody()
    doc = c.as_json()
    edit(doc)
    path = _write(tmp_path, doc, "custody.json")
    with pytest.raises(SnapshotError) as info:
        load_custody(path)
    assert (info.value.line, info.value.field) == (line, field)
    assert fragment in info.value.message


def test_slot_scale_problems_name_the_slots_read_at_other_decimals() -> None:
    """The circuit compares raw integers: an epoch whose asset has other decimals than its
    registry slot is read at would have its reserves and prices misstated by powers of ten."""
    from types import SimpleNamespace

    from zksolvency.prover.onchain import slot_scale_problems

    configs = [
        ("0x" + "11" * 20, 6, 8, []),  # a token, read at 8 decimals
        ("0x" + "00" * 20, 0, 8, ["0x" + "22" * 20]),  # feeds only
        ("0x" + "00" * 20, 0, 3, []),  # nothing on-chain: its decimals are not read
    ]
    calls = SimpleNamespace(
        assetConfig=lambda i: SimpleNamespace(call=lambda: configs[i]),
    )
    registry = SimpleNamespace(functions=calls)
    same = [{"symbol": "BTC", "decimals": 8}, {"symbol": "ETH", "decimals": 8}]
    assert slot_scale_problems(registry, [*same, {"symbol": "X", "decimals": 8}]) == []
    moved = [{"symbol": "BTC", "decimals": 6}, {"symbol": "ETH", "decimals": 9}]
    assert slot_scale_problems(registry, moved) == [
        "slot 0 is configured for 8 decimals, the epoch's BTC has 6",
        "slot 1 is configured for 8 decimals, the epoch's ETH has 9",
    ]

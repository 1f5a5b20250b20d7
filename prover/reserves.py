"""The exchange's declared reserves per asset: CSV (symbol,amount) or JSON {"BTC": "12.5"}."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .commitments import RESERVE_BITS
from .snapshot import Asset, SnapshotError, format_amount, parse_amount


def load_reserves(path: Path, assets: tuple[Asset, ...]) -> tuple[int, ...]:
    """Reserves at each asset's scale, in the snapshot's asset order; every asset is required."""
    name = str(path)
    by_symbol = {a.symbol: a for a in assets}
    found: dict[str, tuple[str, int | None]] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SnapshotError(name, None, None, f"cannot read reserves ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise SnapshotError(name, None, None, "not UTF-8 text") from exc
    if not text.strip():
        raise SnapshotError(name, None, None, "empty reserves file")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SnapshotError(name, exc.lineno, None, f"invalid JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise SnapshotError(name, None, None, 'expected an object {"SYMBOL": "amount"}')
        for sym, amount in data.items():
            if not isinstance(amount, str):
                raise SnapshotError(name, None, sym, "amounts must be strings")
            found[sym] = (amount, None)
    else:
        rows = csv.reader(text.splitlines())
        header = next(rows, None)
        if header != ["symbol", "amount"]:
            raise SnapshotError(name, 1, None, f"header must be 'symbol,amount', got {header}")
        for line, row in enumerate(rows, start=2):
            if len(row) != 2:
                raise SnapshotError(name, line, None, f"expected 2 cells, got {len(row)}")
            if row[0] in found:
                raise SnapshotError(name, line, "symbol", f"duplicate asset {row[0]!r}")
            found[row[0]] = (row[1], line)
    out = []
    for sym in found:
        if sym not in by_symbol:
            raise SnapshotError(name, found[sym][1], "symbol", f"unknown asset {sym!r}")
    for asset in assets:
        if asset.symbol not in found:
            raise SnapshotError(name, None, asset.symbol, "no reserve given for this asset")
        text_amount, where = found[asset.symbol]
        try:
            value = parse_amount(text_amount, asset.decimals, max_bits=RESERVE_BITS)
        except ValueError as exc:
            raise SnapshotError(name, where, asset.symbol, str(exc)) from exc
        out.append(value)
    return tuple(out)


def render_reserves(assets: tuple[Asset, ...], reserves: tuple[int, ...]) -> dict[str, str]:
    return {a.symbol: format_amount(r, a.decimals) for a, r in zip(assets, reserves, strict=True)}

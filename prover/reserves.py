"""The exchange's declared reserves per asset: CSV (symbol,amount) or JSON {"BTC": "12.5"}.

Files are read with snapshot.py's own readers, as every other input file is: UTF-8 decoded line by
line (a bad byte is reported at its line), BOM, CRLF and blank lines tolerated, quoted CSV cells
tracked to the line they start on, and JSON parsed without floats, with repeated keys caught and
nesting bounded. Every bad input stops with a SnapshotError naming the file, the line (CSV line,
or the key's 1-based position in the JSON object) and the field.
"""

from __future__ import annotations

from pathlib import Path

from . import snapshot as _snapshot
from .commitments import RESERVE_BITS
from .snapshot import Asset, SnapshotError, format_amount, parse_amount

RESERVES_HEADER = ("symbol", "amount")


def _read_csv(path: Path) -> dict[str, tuple[str, int]]:
    """symbol -> (amount text, line), in file order."""
    file = str(path)
    found: dict[str, tuple[str, int]] = {}
    with _snapshot._open_binary(path) as fh:
        records = _snapshot._csv_records(fh, file)
        first = next(records, None)
        if first is None:
            raise SnapshotError(file, None, None, "empty file")
        line, header = first
        if tuple(header) != RESERVES_HEADER:
            shown = _snapshot._show(",".join(header), 80)
            raise SnapshotError(
                file, line, None, f"expected the header 'symbol,amount', found {shown}"
            )
        for line, row in records:
            if len(row) != len(RESERVES_HEADER):
                raise SnapshotError(
                    file, line, None, f"expected 2 cells as in the header, found {len(row)}"
                )
            symbol, amount = row
            if symbol in found:
                raise SnapshotError(
                    file,
                    line,
                    "symbol",
                    f"duplicate asset {symbol!r} (first at line {found[symbol][1]})",
                )
            found[symbol] = (amount, line)
    return found


def _read_json(path: Path) -> dict[str, tuple[str, int]]:
    """symbol -> (amount text, 1-based position of the key), in file order."""
    j = _snapshot._Json(str(path))
    data = _snapshot._read_json(path)
    if not isinstance(data, dict):
        kind = _snapshot._json_kind(data)
        raise j.error(
            None, None, f'reserves must be a JSON object {{"SYMBOL": "amount"}}, not {kind}'
        )
    if isinstance(data, _snapshot._DupKeys):
        # json keeps a repeated key at its first position: report that entry. Silently keeping
        # one of two amounts would let a file claim a reserve it does not consistently state.
        position = list(data).index(data.duplicate) + 1
        raise j.error(position, data.duplicate, "asset appears more than once")
    found: dict[str, tuple[str, int]] = {}
    for position, (symbol, amount) in enumerate(data.items(), 1):
        if not isinstance(amount, str):
            kind = _snapshot._json_kind(amount)
            quote = "; quote it" if isinstance(amount, _snapshot._JsonNumber) else ""
            raise j.error(position, symbol, f"amounts must be strings, not {kind}{quote}")
        found[symbol] = (amount, position)
    return found


def load_reserves(path: Path, assets: tuple[Asset, ...]) -> tuple[int, ...]:
    """Reserves at each asset's scale, in the snapshot's asset order; every asset is required."""
    path = Path(path)
    name = str(path)
    by_symbol = {a.symbol: a for a in assets}
    found = _read_json(path) if _snapshot._is_json(path) else _read_csv(path)
    for sym, (_, where) in found.items():
        if sym not in by_symbol:
            raise SnapshotError(name, where, "symbol", _snapshot._unknown_asset(sym, assets))
    out = []
    for asset in assets:
        if asset.symbol not in found:
            raise SnapshotError(name, None, asset.symbol, "no reserve given for this asset")
        text_amount, where = found[asset.symbol]
        try:
            value = parse_amount(text_amount, asset.decimals, max_bits=RESERVE_BITS)
        except ValueError as exc:
            raise SnapshotError(name, where, asset.symbol, str(exc)) from None
        out.append(value)
    return tuple(out)


def render_reserves(assets: tuple[Asset, ...], reserves: tuple[int, ...]) -> dict[str, str]:
    return {a.symbol: format_amount(r, a.decimals) for a, r in zip(assets, reserves, strict=True)}

"""Options shared by several commands, declared once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def circuit_params(f: F) -> F:
    """--batch-levels / --tree-depth / --assets / --instrument-slots / --scenarios / --tiers:
    the circuit instance (defaults: circuits.json)."""
    f = click.option(
        "--tiers",
        "n_tiers",
        type=click.IntRange(2, 16),
        default=None,
        help="Haircut tiers per asset in the circuits. Default from circuits.json.",
    )(f)
    f = click.option(
        "--scenarios",
        "n_scenarios",
        type=click.IntRange(1, 256),
        default=None,
        help="Risk scenarios in the circuits (4k + 4 for the default grid; without derivatives "
        "any count, and 1 is cheapest). Default from circuits.json.",
    )(f)
    f = click.option(
        "--instrument-slots",
        "n_instruments",
        type=click.IntRange(1, 256),
        default=None,
        help="Derivative instruments per account in the circuits. Default from circuits.json.",
    )(f)
    f = click.option(
        "--assets",
        "n_assets",
        type=click.IntRange(1, 64),
        default=None,
        help="Asset slots in the circuits (>= the snapshot's assets). Default from circuits.json.",
    )(f)
    f = click.option(
        "--tree-depth",
        type=click.IntRange(2, 32),
        default=None,
        help="Depth of the account tree: up to 2^depth accounts. Default from circuits.json.",
    )(f)
    f = click.option(
        "--batch-levels",
        type=click.IntRange(0, 16),
        default=None,
        help="2^levels accounts per batch proof. Default from circuits.json.",
    )(f)
    return f


def ptau_option(f: F) -> F:
    return click.option(
        "--ptau",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="Powers of Tau from a public ceremony (production). Without it an INSECURE "
        "development ptau is taken from the machine's cache or generated once.",
    )(f)


def chain_options(f: F) -> F:
    f = click.option(
        "--from",
        "sender",
        default=None,
        help="Sending account, unlocked on the node (default: the node's first account).",
    )(f)
    f = click.option("--rpc", required=True, help="JSON-RPC URL of the Ethereum node.")(f)
    return f

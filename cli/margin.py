"""`zksolvency margin`: single-account margin proofs, made by the account owner from their
inclusion package and checked by a lender offline or against the chain."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
_SHA256 = re.compile(r"(0x)?[0-9a-fA-F]{64}")


def _guarded(f: F) -> F:
    """handle_errors (exit 2 for bad input, 1 for a failed check) plus this group's errors.

    cli/main.py imports this module at its end, so its names are looked up at call time.
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from zksolvency.prover.account_proof import (
            MarginProofError,
            MarginProofFormatError,
            MarginVerificationError,
        )

        from .main import EXIT_FAILED, EXIT_USAGE, fail, handle_errors

        @handle_errors
        def run() -> Any:
            try:
                return f(*args, **kwargs)
            except (MarginProofError, MarginProofFormatError) as exc:
                fail(str(exc), EXIT_USAGE)
            except MarginVerificationError as exc:
                fail(f"verification FAILED: {exc}", EXIT_FAILED)

        return run()

    return wrapper  # type: ignore[return-value]


@click.group()
def margin() -> None:
    """Single-account margin proofs: show a lender that your account meets the epoch's margin
    rule with at least some headroom, revealing no balance or position.

    \b
    Account owner:  margin prove PACKAGE --bundle DIR --headroom USD --out PROOF
    Lender:         margin verify PROOF --bundle DIR --account ID --salt SALT
                    margin verify PROOF --rpc URL --verifier ADDR --account ID --salt SALT

    The owner makes the proof from the inclusion package the exchange exported for them
    (`zksolvency export`) and hands the lender the proof with their account id and salt (from
    the package), which open the proof's id commitment. Nothing else leaves the package.
    """


def _headroom(text: str) -> int:
    from zksolvency.prover.account_proof import parse_usd

    try:
        return parse_usd(text)
    except ValueError as exc:
        raise click.BadParameter(f"USD amount: {exc}", param_hint="--headroom") from exc


@margin.command("prove")
@click.argument("package", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--bundle",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The epoch bundle the package names: its context (prices, risk arrays) and the margin "
    "key it pins are read from there.",
)
@click.option(
    "--headroom",
    "headroom_usd",
    default="0",
    show_default=True,
    help="Headroom to prove, in USD (decimal string, at most 8 decimals): the account keeps at "
    "least this much above its margin requirement in every scenario. 0 proves plain "
    "compliance. It must not exceed the account's own worst-scenario headroom.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Proof file to write (JSON; holds no balance or position, safe to hand out).",
)
@click.option(
    "--ptau",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Powers of Tau from a public ceremony, if the margin keys must be made. Without it an "
    "INSECURE development ptau is used (keys are cached under build/).",
)
@click.option(
    "--zkey",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The epoch's margin proving key, published with the bundle as keys/margin.zkey. "
    "Account owners need it; without it this machine's own keys are used (the exchange's "
    "case), and they must be the ones the package pins.",
)
@_guarded
def margin_prove(
    package: Path,
    bundle: Path,
    headroom_usd: str,
    out: Path,
    ptau: Path | None,
    zkey: Path | None,
) -> None:
    """Prove your account keeps --headroom USD in every scenario.

    PACKAGE is your inclusion package (from the exchange's `zksolvency export`). The request
    is checked against it first: if the account does not keep that headroom (or the package is
    inconsistent) nothing is proven and the exit code is 2.
    """
    from zksolvency.prover.account_proof import prove_account_margin
    from zksolvency.prover.bundle import load_bundle
    from zksolvency.prover.inclusion import load_package, resolve

    from .main import ClickReporter

    value = _headroom(headroom_usd)
    pkg = resolve(load_package(package), load_bundle(bundle))
    stats: dict[str, float] = {}
    start = time.monotonic()
    doc = prove_account_margin(pkg, value, out, ptau, ClickReporter(), stats=stats, zkey=zkey)
    click.echo(
        f"wrote {out}: epoch {doc['epoch']}, headroom {doc['headroom_usd']} USD, "
        f"idCommit {doc['id_commit']}"
    )
    click.echo(
        f"  proved in {time.monotonic() - start:.1f}s (witness {stats.get('witness_s', 0):.2f}s, "
        f"prove {stats.get('prove_s', 0):.2f}s, verify {stats.get('py_verify_s', 0):.2f}s)"
    )
    click.echo(
        "  give the lender this file, plus your account id and salt: they open the proof's "
        "idCommit, so the lender knows which account it speaks for"
    )


@margin.command("verify")
@click.argument("proof", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--bundle",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Check offline against this epoch bundle: it is verified, and its context hash and "
    "root must be the proof's.",
)
@click.option(
    "--account",
    "account_id",
    default=None,
    help="Account id the proof should belong to (with --salt): its id commitment must open to it.",
)
@click.option(
    "--salt",
    default=None,
    help="The account's salt, a decimal integer from its inclusion package (with --account).",
)
@click.option(
    "--trusted-vkey",
    default=None,
    help="SHA-256 (hex) the margin verification key must have, e.g. the deployment record's "
    "margin_vkey_sha256. Without it the proof's own key is used, which proves nothing alone.",
)
@click.option(
    "--rpc",
    default=None,
    help="Check against the chain (with --verifier): JSON-RPC URL of an Ethereum node.",
)
@click.option(
    "--verifier",
    default=None,
    help="Check against the chain (with --rpc): address of the AccountMarginVerifier, which "
    "reads the epoch's context hash and root from its registry (finalized epochs only).",
)
@_guarded
def margin_verify(
    proof: Path,
    bundle: Path | None,
    account_id: str | None,
    salt: str | None,
    trusted_vkey: str | None,
    rpc: str | None,
    verifier: str | None,
) -> None:
    """Verify a margin PROOF, the epoch it names and whose account it is.

    The Groth16 proof is verified in pure Python; the epoch against its bundle (--bundle) or
    the chain (--rpc with --verifier); the account with --account and --salt.

    Exit codes: 0 verified, 1 verification failed, 2 bad input.
    """
    from zksolvency.prover.account_proof import (
        load_margin_proof,
        verify_margin_against_chain,
        verify_margin_proof,
    )

    from .main import ClickReporter

    if (account_id is None) != (salt is None):
        raise click.UsageError("--account and --salt go together")
    if salt is not None and not (salt.isascii() and salt.isdigit() and int(salt) > 0):
        raise click.BadParameter("a positive decimal integer", param_hint="--salt")
    if trusted_vkey is not None and not _SHA256.fullmatch(trusted_vkey):
        raise click.BadParameter("64 hex digits (a SHA-256)", param_hint="--trusted-vkey")
    if (rpc is None) != (verifier is None):
        raise click.UsageError("--rpc and --verifier go together")
    if bundle is not None and rpc is not None:
        raise click.UsageError("give either --bundle DIR or --rpc URL --verifier ADDR, not both")
    doc = load_margin_proof(proof)
    if rpc is not None and verifier is not None:
        result = verify_margin_against_chain(doc, rpc, verifier, trusted_vkey, account_id, salt)
    else:
        result = verify_margin_proof(doc, bundle, trusted_vkey, account_id, salt, ClickReporter())
    for w in result.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    whose = f"account {result.account_id}" if result.account_id else "the committed account"
    where = {
        "bundle": "checked against the bundle",
        "chain": "checked against the chain",
    }.get(result.checked_against, "the proof alone: its epoch was not checked")
    click.secho(
        f"OK: {whose} keeps at least {result.headroom_usd} USD of margin headroom in every "
        f"scenario of epoch {result.epoch} ({where})",
        fg="green",
    )
    click.echo(f"  idCommit {result.id_commit}")
    click.echo(f"  root     {result.root}")
    if result.account_id is None:
        click.echo("  (give --account and --salt to check whose account this is)")
    for key, value in result.details.items():
        click.echo(f"  {key}: {value}")

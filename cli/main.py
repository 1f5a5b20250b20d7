"""zksolvency command line: exchange commands (setup, prove, deploy, publish, export) and user
commands (verify), plus `demo`, which runs the whole journey on a local anvil."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from zksolvency.prover import __version__
from zksolvency.prover.progress import Advance, StderrReporter

from .options import chain_options, circuit_params, ptau_option

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
F = TypeVar("F", bound=Callable[..., Any])


class ClickReporter:
    """Progress on stderr: messages as lines, long steps as click progress bars."""

    def info(self, msg: str) -> None:
        click.echo(msg, err=True)

    def warn(self, msg: str) -> None:
        click.secho(f"WARNING: {msg}", fg="yellow", err=True)

    @contextlib.contextmanager
    def task(self, label: str, total: int) -> Iterator[Advance]:
        if not sys.stderr.isatty():
            # click draws nothing but the label off a terminal: print a line per step instead.
            with StderrReporter().task(label, total) as advance:
                yield advance
            return
        with click.progressbar(
            length=total, label=f"  {label}", file=sys.stderr, show_eta=True, show_pos=True
        ) as bar:
            yield bar.update


def fail(msg: str, code: int) -> NoReturn:
    click.secho(f"error: {msg}", fg="red", err=True)
    sys.exit(code)


def handle_errors(f: F) -> F:
    """Map the prover's exceptions to exit codes: 2 for bad input, 1 for failed checks."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except Exception as exc:
            mapped = _classify(exc)
            if mapped is None:
                raise
            fail(mapped[1], mapped[0])

    return wrapper  # type: ignore[return-value]


def _classify(exc: Exception) -> tuple[int, str] | None:
    """Exit code and message for a known error; None for anything else (a bug: re-raised).

    The error classes are imported here, when something failed, not when a command is
    declared: chain.py pulls in web3, which would add most of a second to every command."""
    from zksolvency.prover.bundle import BundleError, BundleFormatError
    from zksolvency.prover.chain import ChainError
    from zksolvency.prover.epoch import EpochDirError
    from zksolvency.prover.inclusion import ExportError, InclusionError, PackageFormatError
    from zksolvency.prover.keys import KeySetupError
    from zksolvency.prover.package_store import StoreError
    from zksolvency.prover.paths import ToolchainMissing
    from zksolvency.prover.ptau import PtauError
    from zksolvency.prover.snapshot import SnapshotError
    from zksolvency.prover.toolchain import ToolError
    from zksolvency.prover.witness import PlanError

    bad_input = (
        SnapshotError,
        PlanError,
        PtauError,
        PackageFormatError,
        BundleFormatError,
        EpochDirError,
        KeySetupError,
        ExportError,
        StoreError,
    )
    if isinstance(exc, bad_input):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, InclusionError | BundleError):
        return EXIT_FAILED, f"verification FAILED: {exc}"
    if isinstance(exc, ToolError | ChainError | ToolchainMissing | ConnectionError):
        return EXIT_FAILED, str(exc)
    if isinstance(exc, OSError):
        # Name the file(s) when the error carries them; some OSErrors carry neither a file
        # nor a strerror, and ": None" would say nothing.
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        return EXIT_USAGE, f"{where}: {exc.strerror or exc}" if where else str(exc)
    return None


def resolve_params(**given: int | None) -> Any:
    """EpochParams from the circuit options; an option left out takes circuits.json's default."""
    from zksolvency.prover.params import FIELDS, EpochParams

    d = EpochParams.default()
    try:
        values: dict[str, int] = {}
        for k in FIELDS:
            v = given.get(k)
            values[k] = getattr(d, k) if v is None else v  # batch levels may be 0
        return EpochParams(**values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="zksolvency")
def main() -> None:
    """Zero-knowledge proof of solvency for crypto exchanges.

    \b
    Exchange:  setup -> keys (ceremony) -> prove -> deploy -> publish -> export
    User:      verify PACKAGE --bundle DIR   (offline, pure Python)
               verify PACKAGE --rpc URL --registry ADDR   (against the chain)
    Both:      verify-bundle DIR, demo

    Exit codes: 0 ok, 1 verification failed, 2 bad input or usage.
    """


@main.command()
@circuit_params
@ptau_option
@handle_errors
def setup(ptau: Path | None, **shape: int | None) -> None:
    """Compile the circuits and make their Groth16 keys (cached under build/)."""
    from zksolvency.prover.keys import build_keys

    params = resolve_params(**shape)
    keys = build_keys(params, ptau, ClickReporter())
    for kind, ks in (("batch", keys.batch), ("solvency", keys.solvency)):
        click.echo(
            f"{kind:9s} {ks.build.spec.name:16s} {ks.build.n_constraints:>8d} constraints"
            f"  vkey sha256 {ks.vkey_hash}"
        )
    click.echo(
        f"accounts per batch proof: {params.batch_size}; "
        f"constraints per account: {keys.batch.build.n_constraints / params.batch_size:.0f}"
    )


@main.group()
def keys() -> None:
    """Phase-2 key ceremony: outside contributions make the keys trustworthy.

    \b
    Groth16 keys are only as honest as their phase-2 contributors: whoever knows every
    contribution's secret can forge proofs. In production the exchange runs `setup --ptau
    CEREMONY.ptau`, then sends each circuit's zkey through independent parties, each running
    `keys contribute`, and finally installs the result with `keys import`, which verifies the
    whole transcript against the circuit and the ptau.
    """


@keys.command("contribute")
@click.argument("zkey_in", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("zkey_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Contributor's name, recorded in the key.")
@handle_errors
def keys_contribute(zkey_in: Path, zkey_out: Path, name: str) -> None:
    """Add your contribution to a zkey (run by each outside party; entropy from the OS)."""
    from zksolvency.prover.keys import contribute_zkey

    digest = contribute_zkey(zkey_in, zkey_out, name)
    click.echo(f"wrote {zkey_out}; publish your contribution hash:\n{digest}")


@keys.command("import")
@click.option(
    "--batch",
    "batch_zkey",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Contributed zkey of the batch circuit.",
)
@click.option(
    "--solvency",
    "solvency_zkey",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Contributed zkey of the solvency circuit.",
)
@click.option(
    "--margin",
    "margin_zkey",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Contributed zkey of the single-account margin circuit.",
)
@click.option(
    "--ptau",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The ceremony ptau the keys were set up from.",
)
@circuit_params
@handle_errors
def keys_import(
    batch_zkey: Path | None,
    solvency_zkey: Path | None,
    margin_zkey: Path | None,
    ptau: Path,
    **shape: int | None,
) -> None:
    """Verify contributed zkeys against the circuits and the ptau, then install them."""
    from zksolvency.prover.keys import compile_circuit, import_zkey
    from zksolvency.prover.ptau import check_ptau, required_power

    if batch_zkey is None and solvency_zkey is None and margin_zkey is None:
        raise click.UsageError("give --batch, --solvency and/or --margin")
    params = resolve_params(**shape)
    rep = ClickReporter()
    for spec, zkey in (
        (params.batch_spec(), batch_zkey),
        (params.solvency_spec(), solvency_zkey),
        (params.margin_spec(), margin_zkey),
    ):
        if zkey is None:
            continue
        build = compile_circuit(spec, rep)
        info = check_ptau(ptau, required_power(build.n_constraints, build.n_public), False)
        ks = import_zkey(build, zkey, info)
        click.echo(
            f"{spec.name}: {ks.contributions} contributions verified; vkey sha256 {ks.vkey_hash}"
        )


@keys.command("info")
@circuit_params
@handle_errors
def keys_info(**shape: int | None) -> None:
    """Show the installed keys: hashes, contributions and whether they are development keys."""
    from zksolvency.prover.keys import cached_keys, compile_circuit

    params = resolve_params(**shape)
    for spec in (params.batch_spec(), params.solvency_spec(), params.margin_spec()):
        ks = cached_keys(compile_circuit(spec, ClickReporter()))
        if ks is None:
            click.echo(f"{spec.name}: no keys matching this circuit (run `zksolvency setup`)")
            continue
        kind = "DEVELOPMENT (insecure)" if ks.development else "ceremony ptau"
        click.echo(
            f"{spec.name}: {kind}, {ks.contributions} phase-2 contribution(s), "
            f"zkey {ks.zkey_sha256[:16]}..., vkey {ks.vkey_hash}"
        )


@main.command("sample-snapshot")
@click.option(
    "--accounts",
    "n_accounts",
    type=click.IntRange(1, 10**7),
    default=100,
    show_default=True,
    help="Number of accounts.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Snapshot file to write: .json, or .csv, .jsonl or .parquet with a sibling assets "
    "file (<name>_assets.csv) to pass to prove --assets-file.",
)
@click.option(
    "--reserves-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write reserves covering net liabilities by --reserve-ratio: JSON for a .json "
    "name, else CSV (symbol,amount).",
)
@click.option(
    "--reserve-ratio",
    type=float,
    default=1.2,
    show_default=True,
    help="Reserves / net liabilities for --reserves-out (a demo convenience).",
)
@click.option(
    "--derivatives-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write sample derivatives and haircuts there: instruments.csv, market.csv, "
    "positions.csv and haircuts.csv (for prove --instruments/--market/--positions/--haircuts).",
)
@click.option(
    "--instruments",
    "n_instruments",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Instruments in the sample derivatives.",
)
@handle_errors
def sample_snapshot_cmd(
    n_accounts: int,
    seed: int,
    out: Path,
    reserves_out: Path | None,
    reserve_ratio: float,
    derivatives_dir: Path | None,
    n_instruments: int,
) -> None:
    """Write a deterministic sample snapshot (and reserves, derivatives, haircuts) for trying
    the tool."""
    from zksolvency.prover import snapshot as snap

    s = snap.sample_snapshot(n_accounts, seed)
    writers = {
        ".csv": snap.write_snapshot_csv,
        ".jsonl": snap.write_snapshot_jsonl,
        ".ndjson": snap.write_snapshot_jsonl,
        ".parquet": snap.write_snapshot_parquet,
    }
    writer = writers.get(out.suffix.lower())
    if writer is not None:
        assets = out.with_name(out.stem + "_assets.csv")
        writer(s, out, assets)
        click.echo(f"wrote {out} and {assets}")
    else:
        snap.write_snapshot_json(s, out)
        click.echo(f"wrote {out}")
    if reserves_out is not None:
        write_sample_reserves(s, reserves_out, reserve_ratio)
        click.echo(f"wrote {reserves_out}")
    if derivatives_dir is not None:
        for path in write_sample_margin(s, derivatives_dir, n_instruments, seed):
            click.echo(f"wrote {path}")


def write_sample_margin(s: Any, directory: Path, n_instruments: int, seed: int) -> list[Path]:
    """Sample derivatives on the snapshot's accounts and a sample haircut table."""
    from zksolvency.prover.haircuts import sample_haircuts, write_haircuts_csv
    from zksolvency.prover.instruments import sample_derivatives, write_derivatives

    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / n for n in ("instruments.csv", "market.csv", "positions.csv")]
    write_derivatives(sample_derivatives(s, n_instruments, seed), *paths)
    paths.append(directory / "haircuts.csv")
    write_haircuts_csv(sample_haircuts(s.assets), s.assets, paths[-1])
    return paths


def write_sample_reserves(s: Any, path: Path, ratio: float) -> None:
    """JSON for a .json name, else the CSV `prove --reserves` reads for any other name."""
    from zksolvency.prover.atomic import write_bytes, write_json
    from zksolvency.prover.snapshot import format_amount

    num = round(ratio * 1000)
    out = {}
    for i, a in enumerate(s.assets):
        net = sum(acc.equity[i] - acc.debt[i] for acc in s.accounts)
        out[a.symbol] = format_amount(max(0, net) * num // 1000, a.decimals)
    if path.suffix.lower() == ".json":
        write_json(path, out)
    else:
        rows = "".join(f"{sym},{amount}\n" for sym, amount in out.items())
        write_bytes(path, f"symbol,amount\n{rows}".encode())


@main.command()
@click.argument("snapshot", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--assets-file",
    "assets_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Assets file (symbol,decimals,price_usd, CSV or JSON), for a CSV, JSON Lines or "
    "Parquet accounts file.",
)
@click.option(
    "--reserves",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help='Declared reserves per asset: CSV "symbol,amount" or JSON {"BTC": "1.5"}: what the '
    "chain cannot see (other chains, banks). Published apart from verified reserves, marked "
    "unverified.",
)
@click.option(
    "--epoch",
    type=click.IntRange(1, 2**64 - 1),
    required=True,
    help="Epoch number (strictly increasing on the registry).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Epoch directory to write (re-run the same command to resume).",
)
@click.option(
    "--instruments",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Derivative instruments (docs/derivatives-format.md); needs --market and --positions.",
)
@click.option(
    "--market",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Market data per underlying: spot, vol, rate, and the valuation time as_of.",
)
@click.option(
    "--positions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Every account's signed quantity per instrument.",
)
@click.option(
    "--haircuts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Haircut table (docs/haircuts-format.md). Default: no haircut.",
)
@click.option(
    "--mode",
    type=click.Choice(["strict", "shortfall"]),
    default="strict",
    show_default=True,
    help="strict: refuse while any account fails its margin. shortfall: prove, publishing the "
    "failing accounts' total shortfall, which --insurance-fund must cover.",
)
@click.option(
    "--insurance-fund",
    default="0",
    show_default=True,
    help="Insurance fund in USD (decimal string), shortfall mode only.",
)
@click.option(
    "--deployment",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Deployment record (from `deploy`) of the registry that will publish this epoch. The "
    "solvency proof is bound to its chain id and address, and no other registry accepts it. "
    "Without it the epoch is proven unbound; prove again with --deployment before publishing "
    "(only the solvency proof is redone).",
)
@click.option(
    "--backend",
    type=click.Choice(["snarkjs", "native"]),
    default="snarkjs",
    show_default=True,
    help="Groth16 prover. snarkjs is the reference. native is groth16py (arkworks; about 2.4x "
    "faster per batch on one core and one proof per core; GPL-3.0, installed with "
    "`pip install 'zksolvency[native]'`): its witnesses come from the same calculator and "
    "snarkjs verifies each of its proofs before it is kept.",
)
@click.option(
    "--witness",
    type=click.Choice(["wasm", "cpp"]),
    default="wasm",
    show_default=True,
    help="Witness calculator for the batch proofs with --backend native. cpp builds circom's "
    "C++ generator once per circuit instance (minutes of g++; cached in build/; needs g++, "
    "make, nasm, libgmp-dev and nlohmann-json3-dev) and then computes each witness several "
    "times faster than wasm: worth it for epochs of thousands of batches (docs/scaling.md).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Prove the batches on a Dask cluster: its scheduler's address, tcp://host:port. The "
    "workers must be the exchange's own hosts (they read private balances), with this checkout "
    "installed and the --out folder and build/ at the same absolute paths (shared storage; "
    "docs/scaling.md). local:N starts N worker processes on this machine for the run. Needs "
    "`pip install 'zksolvency[dask]'`.",
)
@click.option(
    "--custody",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Custody file from `custody sign`: addresses holding reserves, each with its "
    "ownership signature for this epoch. Their balances, read through the registry of "
    "--deployment at --rpc, are the verified reserves; the registry reads them again at "
    "finalize, and they must not have dropped.",
)
@click.option("--rpc", default=None, help="JSON-RPC URL of the node, with --custody.")
@circuit_params
@ptau_option
@handle_errors
def prove(
    snapshot: Path,
    assets_file: Path | None,
    reserves: Path,
    epoch: int,
    out: Path,
    instruments: Path | None,
    market: Path | None,
    positions: Path | None,
    haircuts: Path | None,
    mode: str,
    insurance_fund: str,
    deployment: Path | None,
    backend: str,
    witness: str,
    scheduler: str | None,
    custody: Path | None,
    rpc: str | None,
    ptau: Path | None,
    **shape: int | None,
) -> None:
    """Prove an epoch: every account covered and within its margin, liabilities within reserves.

    Reserves are verified (custody addresses' balances, which the registry reads on-chain) plus
    declared (--reserves); the proof also states whether verified reserves alone suffice.

    Nothing is written to --out if any input is invalid, or if any account fails its check
    (in strict mode, its margin too): those are listed first and the command exits with code 2.
    """
    from zksolvency.prover import cluster
    from zksolvency.prover.epoch import prove_epoch
    from zksolvency.prover.reserves import load_reserves
    from zksolvency.prover.snapshot import load_snapshot

    if witness == "cpp" and backend != "native":
        raise click.BadParameter("cpp serves --backend native only", param_hint="--witness")
    if scheduler is not None:
        # Checked before any planning: a typo or a missing extra costs nothing.
        try:
            cluster.parse_scheduler(scheduler)
            cluster.require_distributed()
        except (ValueError, cluster.ClusterError) as exc:
            raise click.BadParameter(str(exc), param_hint="--scheduler") from None
    params = resolve_params(**shape)
    snap = load_snapshot(snapshot, assets_file)
    res = load_reserves(reserves, snap.assets)
    margin = load_margin_inputs(
        snap, instruments, market, positions, haircuts, mode, insurance_fund
    )
    domain = deployment_domain_option(deployment, params)
    verified, custody_json = custody_reserves(custody, rpc, deployment, snap, epoch)
    try:
        manifest = prove_epoch(
            snap,
            res,
            out,
            epoch=epoch,
            params=params,
            ptau=ptau,
            reporter=ClickReporter(),
            margin=margin,
            domain=domain,
            backend=backend,
            scheduler=scheduler,
            witness=witness,
            verified=verified,
            custody=custody_json,
        )
    except cluster.ClusterError as exc:  # the cluster's setup, not a failed proof
        fail(str(exc), EXIT_USAGE)
    print_epoch_summary(manifest, out)


def custody_reserves(
    custody: Path | None, rpc: str | None, deployment: Path | None, snap: Any, epoch: int
) -> tuple[tuple[int, ...], dict[str, Any] | None]:
    """The verified reserves of `custody`'s addresses, read through the deployment's registry
    (none without --custody), and the custody record for the manifest."""
    from zksolvency.prover.chain import registry_at
    from zksolvency.prover.deployment import load_deployment, registry_abi
    from zksolvency.prover.onchain import (
        check_custody_for,
        check_snapshot_assets,
        config_from_record,
        load_custody,
        read_verified_reserves,
    )

    record = load_deployment(deployment) if deployment is not None else None
    config = config_from_record(record) if record is not None else None
    if config is not None:
        # The registry checks prices and reserves per slot: the slots must be these assets.
        try:
            check_snapshot_assets(config, snap.assets, str(deployment))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--deployment") from None
    if custody is None:
        if rpc is not None:
            raise click.UsageError("--rpc goes with --custody")
        return (), None
    if rpc is None or record is None:
        raise click.UsageError("--custody needs --rpc and --deployment (the registry to read)")
    if config is None:
        raise click.BadParameter(
            f"{deployment}: the registry has no on-chain assets configured "
            "(deploy --assets-config)",
            param_hint="--custody",
        )
    c = load_custody(custody)
    check_custody_for(c, int(record["chain_id"]), str(record["registry"]), epoch, str(custody))
    w3 = connect(rpc)
    if int(w3.eth.chain_id) != int(record["chain_id"]):
        raise click.BadParameter(
            f"{rpc} is chain {w3.eth.chain_id}, the registry's is {record['chain_id']}",
            param_hint="--rpc",
        )
    bad = [a for a in c.unrecovered() if not w3.eth.get_code(a)]
    if bad:
        raise click.BadParameter(
            f"{custody}: the signatures of {', '.join(bad)} are not theirs for epoch {epoch} of "
            f"registry {c.registry} (and they are not contract wallets)",
            param_hint="--custody",
        )
    registry = registry_at(w3, record["registry"], registry_abi())
    block = int(w3.eth.block_number)
    slots = read_verified_reserves(registry, c.holders, block)
    verified = slots[: len(snap.assets)]
    click.echo(
        f"verified reserves of {len(c.holders)} custody address(es) read at block {block}",
        err=True,
    )
    return verified, {**c.as_json(), "block": block}


def deployment_domain_option(path: Path | None, params: Any) -> int:
    """The registry domain `--deployment` names (UNBOUND_DOMAIN without one), refusing a record
    made for another circuit shape."""
    from zksolvency.prover.commitments import UNBOUND_DOMAIN
    from zksolvency.prover.deployment import deployment_domain, load_deployment

    if path is None:
        return UNBOUND_DOMAIN
    try:
        record = load_deployment(path)
        domain = deployment_domain(record, path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--deployment") from exc
    if record.get("params") not in (None, params.as_dict()):
        raise click.BadParameter(
            f"{path}: the registry was deployed for circuit shape {record['params']}, this "
            f"epoch is {params.as_dict()}",
            param_hint="--deployment",
        )
    return domain


def load_margin_inputs(
    snap: Any,
    instruments: Path | None,
    market: Path | None,
    positions: Path | None,
    haircuts: Path | None,
    mode: str,
    insurance_fund: str,
) -> Any:
    from zksolvency.prover.commitments import SHORTFALL, STRICT, VALUE_DECIMALS
    from zksolvency.prover.haircuts import load_haircuts
    from zksolvency.prover.instruments import load_derivatives
    from zksolvency.prover.snapshot import parse_amount
    from zksolvency.prover.witness import MarginInputs

    given = [p is not None for p in (instruments, market, positions)]
    if any(given) and not all(given):
        raise click.UsageError("--instruments, --market and --positions go together")
    derivatives = None
    if instruments is not None and market is not None and positions is not None:
        derivatives = load_derivatives(instruments, market, positions, snap)
    table = load_haircuts(haircuts, snap.assets) if haircuts is not None else None
    try:
        # USD with at most 8 decimals, in value units (USD * 10^26)
        fund = parse_amount(insurance_fund, 8) * 10 ** (VALUE_DECIMALS - 8)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--insurance-fund") from exc
    if mode == "strict" and fund:
        raise click.UsageError("--insurance-fund only applies with --mode shortfall")
    return MarginInputs(
        derivatives, table, None, SHORTFALL if mode == "shortfall" else STRICT, fund
    )


def print_epoch_summary(m: dict[str, Any], out: Path) -> None:
    from zksolvency.prover.context import published_scenarios
    from zksolvency.prover.witness import format_value

    click.echo(
        f"epoch {m['epoch']}: {m['accounts']} accounts in {m['batches']} batches, "
        f"root {str(m['root'])[:20]}..."
    )
    res = m["reserves"]
    click.echo(
        f"  {'asset':8s} {'net liabilities':>24s} {'verified reserves':>24s} "
        f"{'declared (unverified)':>24s}"
    )
    for sym, t in m["totals"].items():
        click.echo(
            f"  {sym:8s} {t['net']:>24s} {res['verified'][sym]:>24s} {res['declared'][sym]:>24s}"
        )
    click.echo("  solvent on verified reserves alone: " + ("yes" if res["verified_only"] else "no"))
    ctx = m["context"]
    click.echo(
        f"  margin: {ctx['mode']} mode, {len(ctx['risk']['instruments'])} instruments, "
        f"{len(published_scenarios(ctx))} scenarios; "
        f"shortfall {format_value(int(m['shortfall']))} USD"
        + (
            f" covered by an insurance fund of {format_value(int(m['insurance_fund']))} USD"
            if int(m["shortfall"])
            else ""
        )
    )
    reg = m.get("registry")
    click.echo(
        f"  bound to: chain {reg['chain_id']}, registry {reg['address']}"
        if reg
        else "  bound to: no registry yet (prove again with --deployment before publishing)"
    )
    click.echo(f"  bundle: {out}  (publish everything except {out / 'private'})")


@main.group()
def custody() -> None:
    """Custody addresses: ownership signatures for an epoch (proof of reserves)."""


@custody.command("sign")
@click.option(
    "--deployment",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Deployment record of the registry (its address and chain id are signed).",
)
@click.option(
    "--epoch", type=click.IntRange(1, 2**64 - 1), required=True, help="Epoch to sign for."
)
@click.option(
    "--keystore",
    "keystores",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Encrypted keystore (Ethereum v3 JSON) of a custody address; repeatable. Its password "
    "is read from --password-file or asked for.",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="File holding the keystores' password (first line).",
)
@click.option(
    "--remote-signer",
    metavar="URL",
    default=None,
    help="JSON-RPC endpoint answering eth_signTypedData_v4 for --address: a node with the "
    "account unlocked, a signing service, or a hardware-wallet bridge.",
)
@click.option(
    "--address",
    "addresses",
    multiple=True,
    help="Custody address the remote signer signs for; repeatable.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Custody file to write. An existing one for the same registry, chain and epoch is "
    "added to, so holders of different keys can sign in turn.",
)
@handle_errors
def custody_sign(
    deployment: Path,
    epoch: int,
    keystores: tuple[Path, ...],
    password_file: Path | None,
    remote_signer: str | None,
    addresses: tuple[str, ...],
    out: Path,
) -> None:
    """Sign the epoch's ownership statement (EIP-712, naming the registry, chain id and epoch)
    with custody keys, and collect the signatures in a custody file for `prove --custody`.

    Private keys are never taken on the command line: they stay in keystores or behind a
    remote signer. Each signature is checked against its address before it is written.
    """
    from zksolvency.prover.custody import KeystoreSigner, RemoteSigner, SignerError, sign_ownership
    from zksolvency.prover.deployment import load_deployment
    from zksolvency.prover.onchain import Custody, check_custody_for, load_custody, write_custody

    if not keystores and not addresses:
        raise click.UsageError("give --keystore, or --remote-signer with --address")
    if bool(addresses) != (remote_signer is not None):
        raise click.UsageError("--remote-signer and --address go together")
    from eth_utils.address import to_checksum_address

    record = load_deployment(deployment)
    chain_id, registry = int(record["chain_id"]), to_checksum_address(str(record["registry"]))
    if out.exists():
        c = load_custody(out)
        check_custody_for(c, chain_id, registry, epoch, str(out))
    else:
        c = Custody(chain_id, registry, epoch, ())
    password = None
    if password_file is not None:
        password = password_file.read_text(encoding="utf-8").splitlines()[0]
    signers: list[Any] = []
    try:
        for path in keystores:
            pw = (
                password
                if password is not None
                else click.prompt(f"password for {path}", hide_input=True, err=True)
            )
            signers.append(KeystoreSigner(path, pw))
        signers += [RemoteSigner(str(remote_signer), a) for a in addresses]
        for signer in signers:
            address, sig = sign_ownership(signer, registry, chain_id, epoch)
            c = c.with_entry(address, sig)
            click.echo(f"signed epoch {epoch} for {address}", err=True)
    except SignerError as exc:
        fail(str(exc), EXIT_USAGE)
    write_custody(out, c)
    click.echo(f"{out}: {len(c.entries)} custody address(es) for epoch {epoch} of {registry}")


@main.command("verify-bundle")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--trusted-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Deployment or trust-anchor JSON pinning the vkey hashes.",
)
@handle_errors
def verify_bundle_cmd(bundle: Path, trusted_keys: Path | None) -> None:
    """Verify every proof of an epoch bundle offline (pure Python Groth16)."""
    from zksolvency.prover.bundle import TrustAnchors, load_bundle, verify_bundle

    anchors = TrustAnchors.load(trusted_keys) if trusted_keys else None
    report = verify_bundle(load_bundle(bundle), anchors, ClickReporter(), os.cpu_count() or 1)
    for w in report.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    click.secho(
        f"OK: epoch {report.epoch}, {report.proofs_verified} proofs verified, root {report.root}",
        fg="green",
    )


@main.command()
@circuit_params
@ptau_option
@chain_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the deployment record (addresses, chain id, vkey hashes).",
)
@click.option(
    "--assets-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="What the registry checks on-chain per asset, in the snapshot's asset order: the "
    "token holding it (ERC-20 or native ether) and the price feeds with the circuit "
    "breaker's max_age (default 3600 s), tolerance_bps (200) and quorum (a majority) "
    "(docs/protocol.md). Fixed for the registry's life. Without it nothing is checked "
    "on-chain: every reserve is declared and no price is compared.",
)
@handle_errors
def deploy(
    ptau: Path | None,
    rpc: str,
    sender: str | None,
    out: Path,
    assets_config: Path | None,
    **shape: int | None,
) -> None:
    """Deploy the batch and solvency verifiers and the registry for these circuits' keys, and
    the margin verifier with the AccountMarginVerifier that checks single-account proofs
    against the registry's finalized epochs."""
    from zksolvency.prover.deployment import deploy_registry
    from zksolvency.prover.keys import build_keys, build_margin_keys
    from zksolvency.prover.onchain import load_asset_config

    params = resolve_params(**shape)
    assets = (
        load_asset_config(assets_config, params.n_assets) if assets_config is not None else None
    )
    rep = ClickReporter()
    keys = build_keys(params, ptau, rep)
    margin = build_margin_keys(params, ptau, rep)
    w3 = connect(rpc)
    record = deploy_registry(
        w3, sender or w3.eth.accounts[0], keys, params, out, margin=margin, assets=assets
    )
    click.echo(
        f"registry {record['registry']} on chain {record['chain_id']}; record written to {out}"
    )
    click.echo(f"account margin verifier {record['account_margin_verifier']}")
    for name, gas in record["gas_used"].items():
        click.echo(f"  {name:18s} {gas:>9d} gas")


def connect(rpc: str) -> Any:
    from zksolvency.prover.chain import connect as connect_node

    return connect_node(rpc, timeout=60)


@main.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@chain_options
@click.option("--registry", required=True, help="Registry address.")
@handle_errors
def publish(bundle: Path, rpc: str, sender: str | None, registry: str) -> None:
    """Publish an epoch: open it, submit each batch proof, add the custody addresses and their
    signatures, finalize (resumable).

    At finalize the registry reads the custody balances and checks the epoch's prices against
    its feeds. If its circuit breaker trips, the epoch is not attested: the registry records
    why in an event, this command prints it and exits with code 1, and the epoch stays open
    (publish again once the feeds agree, or abandon it). If balances dropped since proving,
    finalize reverts with ReservesChanged: prove again (only the solvency proof is redone).
    """
    from zksolvency.prover.chain import AttestationRefused

    try:
        report = publish_bundle(connect(rpc), sender, registry, bundle)
    except AttestationRefused as exc:
        symbols = [a["symbol"] for a in read_manifest_assets(bundle)]
        click.secho(
            f"REFUSED: the registry's circuit breaker did not attest epoch {exc.epoch} "
            f"(transaction {exc.tx_hash}):",
            fg="red",
            err=True,
        )
        for r in exc.readings:
            click.echo(
                "  " + r.describe(symbols[r.asset] if r.asset < len(symbols) else ""), err=True
            )
        sys.exit(EXIT_FAILED)
    custody = f", {len(report.custody_txs)} custody transaction(s)" if report.custody_txs else ""
    click.echo(
        f"epoch published: {len(report.batch_gas)} batches sent "
        f"({report.batches_skipped} already there){custody}, total gas {report.total_gas}"
    )


def read_manifest_assets(bundle: Path) -> list[dict[str, Any]]:
    from zksolvency.prover.atomic import read_json

    assets: list[dict[str, Any]] = read_json(bundle / "manifest.json")["context"]["assets"]
    return assets


def publish_bundle(w3: Any, sender: str | None, registry: str, bundle_dir: Path) -> Any:
    from zksolvency.prover.bundle import load_bundle
    from zksolvency.prover.chain import publish_epoch, registry_at
    from zksolvency.prover.deployment import registry_abi

    b = load_bundle(bundle_dir)
    m = b.manifest
    batches = [b.proof(e) for e in m["proofs"]["batches"]]
    solvency = b.proof(m["proofs"]["solvency"])
    custody = [
        (e["address"], bytes.fromhex(e["signature"].removeprefix("0x")))
        for e in (m.get("custody") or {}).get("custody", [])
    ]
    contract = registry_at(w3, registry, registry_abi())
    rep = ClickReporter()
    with rep.task("publishing", len(batches) + 2 + bool(custody)) as advance:
        report = publish_epoch(
            w3,
            sender or w3.eth.accounts[0],
            contract,
            b.epoch,
            b.ctx_hash,
            bytes.fromhex(b.sha256),
            batches,
            solvency,
            progress=lambda ev: advance(1),
            custody=custody,
        )
    record_publication(bundle_dir, b.epoch, int(w3.eth.chain_id), contract.address, report)
    return report


def record_publication(
    bundle_dir: Path, epoch: int, chain_id: int, registry: str, report: Any
) -> None:
    """Keep the transactions and their gas in EPOCH_DIR/publication.json (for `report`),
    merged with what earlier, interrupted runs sent."""
    from zksolvency.prover.atomic import read_json, write_json

    path = bundle_dir / "publication.json"
    old: dict[str, Any] = read_json(path) if path.is_file() else {}
    txs = {(t["kind"], t.get("index")): t for t in old.get("transactions", [])}
    if old.get("registry", registry) != registry or int(old.get("chain_id", chain_id)) != chain_id:
        txs = {}  # published to another registry: the old record is not this one's
    sent: list[tuple[str, int | None, str | None, int | None]] = [
        ("open", None, report.open_tx, report.open_gas)
    ]
    sent += [("batch", None, t, g) for t, g in zip(report.batch_txs, report.batch_gas, strict=True)]
    # custody addresses go in order too: a resumed run's continue after those recorded
    first_custody = sum(1 for kind, _ in txs if kind == "custody")
    sent += [
        ("custody", first_custody + i, t, g)
        for i, (t, g) in enumerate(zip(report.custody_txs, report.custody_gas, strict=True))
    ]
    sent.append(("finalize", None, report.finalize_tx, report.finalize_gas))
    first_batch = report.batches_skipped
    for n, (kind, index, tx, gas) in enumerate(sent):
        if tx is None or gas is None:
            continue
        if kind == "batch":
            index = first_batch + n - 1
        txs[(kind, index)] = {"kind": kind, "index": index, "tx": tx, "gas_used": int(gas)}
    order = {"open": 0, "batch": 1, "custody": 2, "finalize": 3}
    rows = sorted(txs.values(), key=lambda t: (order[t["kind"]], t.get("index") or 0))
    write_json(
        path,
        {
            "format": "zksolvency-publication/1",
            "epoch": epoch,
            "chain_id": chain_id,
            "registry": registry,
            "transactions": rows,
            "total_gas": sum(t["gas_used"] for t in rows),
        },
    )


@main.command()
@click.argument("epoch_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write one JSON file per account into this folder (named by the URL-quoted id).",
)
@handle_errors
def packages(epoch_dir: Path, out_dir: Path | None) -> None:
    """Build every account's inclusion package into the epoch's package store (exchange side).

    The store is EPOCH_DIR/private/packages.sqlite, keyed by account id: it holds salts, so it
    is as private as the snapshot. An interrupted build resumes where it stopped; `export`
    then answers one account at once.
    """
    from zksolvency.prover.package_store import build_store, export_files

    rep = ClickReporter()
    st = build_store(epoch_dir, rep)
    resumed = f" ({st.resumed} from an earlier run)" if st.resumed else ""
    click.echo(
        f"{st.path}: {st.packages} packages{resumed}, {st.bytes / 1e6:.1f} MB; tree rebuilt in "
        f"{st.tree_seconds:.2f}s, packages written at {st.rate:,.0f}/s"
    )
    if out_dir is not None:
        n = export_files(epoch_dir, out_dir, rep)
        click.echo(f"{out_dir}: {n} package files")


@main.command()
@click.argument("epoch_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--account", "account_id", required=True, help="Account id as in the snapshot.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Package file to write.",
)
@handle_errors
def export(epoch_dir: Path, account_id: str, out: Path) -> None:
    """Export one user's inclusion package (exchange side: needs the epoch's private data).

    Read from the package store when `packages` has built it, else made from the private rows
    (which rebuilds the tree: slow for a big epoch).
    """
    from zksolvency.prover.inclusion import export_package

    pkg = export_package(epoch_dir, account_id, out)
    click.echo(f"wrote {out}: account {account_id}, epoch {pkg['epoch']}, leaf {pkg['leaf_index']}")


@main.command("verify-inclusion")
@click.argument("package", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--bundle",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The published epoch bundle the package names: it fixes the package's assets, "
    "decimals and instruments, and its proofs are verified in pure Python.",
)
@click.option(
    "--rpc",
    default=None,
    help="JSON-RPC URL: also check the registry's attestation (then only your batch's proof "
    "is verified here: the registry verified every batch proof as it accepted it).",
)
@click.option(
    "--registry",
    default=None,
    help="Registry address, with --rpc. Default: the registry the package names.",
)
@click.option(
    "--trusted-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Deployment record or trust-anchor JSON pinning the keys, chain and registry.",
)
@click.option(
    "--all-batches",
    is_flag=True,
    help="With --rpc, verify every batch proof here too (without --rpc they always are).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the report as JSON to this file.",
)
@handle_errors
def verify_inclusion_cmd(
    package: Path,
    bundle: Path,
    rpc: str | None,
    registry: str | None,
    trusted_keys: Path | None,
    all_batches: bool,
    json_out: Path | None,
) -> None:
    """Check that your account is in a proven epoch with exactly your balances, in one command.

    \b
    In order: your leaf recomputes from your own data; its path climbs to the epoch root;
    the bundle is the one the package names, the prices recompute, the batch proof covering
    your leaf verifies, the state chain links every batch to the final state, and the
    solvency proof verifies. Offline every batch proof is verified (about 0.2 s each); with
    --rpc the registry must have finalized this epoch with this bundle, root and prices, and
    its verification of the other batches stands for theirs. Prints what each check found,
    what it means, and what it does not prove. Exit code 0 verified, 1 a check failed or
    something needed was not checked, 2 bad input.
    """
    from zksolvency.prover.atomic import write_json
    from zksolvency.prover.bundle import TrustAnchors, load_bundle
    from zksolvency.prover.inclusion import load_package, verify_inclusion

    if registry is not None and rpc is None:
        raise click.UsageError("--registry needs --rpc")
    pkg = load_package(package)
    # read here, so that a folder that is no bundle is bad input rather than a failed check
    loaded = load_bundle(bundle)
    anchors = TrustAnchors.load(trusted_keys) if trusted_keys else None
    report = verify_inclusion(
        pkg,
        loaded,
        rpc=rpc,
        registry=registry,
        trusted=anchors,
        all_batches=all_batches,
        reporter=ClickReporter(),
        workers=os.cpu_count() or 1,
    )
    if json_out is not None:
        write_json(json_out, report.as_json())
    echo_inclusion_report(report)
    if not report.ok:
        sys.exit(EXIT_FAILED)


def echo_inclusion_report(report: Any) -> None:
    """Balances, each check with its outcome, warnings, then the plain-language verdict."""
    from zksolvency.prover.witness import format_value

    if report.account_id is not None:
        click.echo(f"account {report.account_id}, epoch {report.epoch}")
        for sym, (eq, debt) in report.balances.items():
            click.echo(f"  {sym:8s} equity {eq:>22s}   debt {debt:>22s}")
        for inst, qty in report.margin.get("positions", {}).items():
            click.echo(f"  {inst:24s} position {qty:>22s}")
        if "headroom" in report.margin:
            click.echo(
                f"  margin headroom {format_value(report.margin['headroom'])} USD in the worst "
                f"scenario ({report.margin['worst_label']})"
            )
    colours = {"pass": "green", "fail": "red", "skip": "yellow"}
    for c in report.checks:
        click.echo(
            click.style(f"  [{c.status.upper():4s}]", fg=colours[c.status]) + f" {c.title}: "
            f"{c.detail}"
        )
    for w in report.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    lines = report.summary()
    click.secho(lines[0], fg="green" if report.ok else "red", bold=True)
    for line in lines[1:]:
        click.echo(line)


@main.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Where to write everything.",
)
@click.option(
    "--accounts",
    "n_accounts",
    type=click.IntRange(1, 1024),
    default=48,
    show_default=True,
    help="Accounts in the sample snapshot (at most the tree's 2^depth leaves).",
)
@ptau_option
@handle_errors
def demo(workdir: Path, n_accounts: int, ptau: Path | None) -> None:
    """The whole journey on a local anvil: snapshot, proofs, registry, one user's check."""
    from .demo import run_demo

    run_demo(workdir, n_accounts, ptau, ClickReporter())


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8545, show_default=True)
def node(port: int) -> None:
    """Run a local anvil on 127.0.0.1 until interrupted (for trying deploy/publish by hand)."""
    import subprocess

    from zksolvency.prover.paths import node_bin

    click.echo(f"anvil on http://127.0.0.1:{port} (Ctrl-C to stop)", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(
            [str(node_bin("anvil")), "--host", "127.0.0.1", "--port", str(port)], check=False
        )


from .risk import risk  # noqa: E402  (the group's commands import from this module lazily)

main.add_command(risk)

from .margin import margin  # noqa: E402  (its commands import from this module lazily)

main.add_command(margin)

from .audit import audit  # noqa: E402  (its command imports from this module lazily)

main.add_command(audit)

from .report import report  # noqa: E402  (its command imports from this module lazily)

main.add_command(report)

from .serve import serve  # noqa: E402  (its command imports from this module lazily)

main.add_command(serve)

if __name__ == "__main__":
    main()

"""`zksolvency serve`: the local web verifier, where a user drops their inclusion package and
reads every check with what it means."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import click

#: The only address served: the page is for the user's own machine, never the network.
HOST = "127.0.0.1"


def _listen(port: int) -> socket.socket:
    """A listening socket made before the URL is printed, so that the URL is right (also for
    --port 0) and a browser opened at once is queued rather than refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise click.UsageError(
            f"cannot listen on {HOST}:{port}: {exc.strerror or exc} (try another --port)"
        ) from exc
    sock.listen(128)
    return sock


@click.command()
@click.option(
    "--bundle",
    "bundles",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="An epoch bundle to check packages against (repeat for several epochs; each package "
    "is checked against the bundle it names).",
)
@click.option("--rpc", default=None, help="Also check against the chain: JSON-RPC URL.")
@click.option(
    "--registry", default=None, help="With --rpc: registry address (default: the package's)."
)
@click.option(
    "--trusted-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Deployment or trust-anchor JSON pinning the verification keys.",
)
@click.option(
    "--host",
    default=HOST,
    show_default=True,
    help="Listen address; only 127.0.0.1 is accepted.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
def serve(
    bundles: tuple[Path, ...],
    rpc: str | None,
    registry: str | None,
    trusted_keys: Path | None,
    host: str,
    port: int,
) -> None:
    """Run the web verifier on 127.0.0.1 until Ctrl-C: drop or paste an inclusion package into
    the page and see each check pass or fail, with what it found and what it means.

    The page and its script are served from this package; the package you check goes to this
    local server only, which reads the bundles given here (and the chain with --rpc).
    """
    from .main import handle_errors

    if host != HOST:
        raise click.BadParameter(
            f"the verifier listens on {HOST} only, not {host!r}: it is for your own machine",
            param_hint="--host",
        )
    if not bundles and rpc is None:
        raise click.UsageError("give --bundle DIR (one per epoch) and/or --rpc URL")

    @handle_errors
    def run() -> None:
        import uvicorn
        from zksolvency.prover.bundle import TrustAnchors
        from zksolvency.prover.webapp import create_app

        anchors = TrustAnchors.load(trusted_keys) if trusted_keys else None
        app = create_app(list(bundles), rpc=rpc, registry=registry, trusted=anchors)
        sock = _listen(port)
        config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False)
        server = uvicorn.Server(config)
        url = f"http://{HOST}:{sock.getsockname()[1]}/"
        click.echo(f"zksolvency verifier on {url}")
        click.echo("Open it in your browser and drop your inclusion package; Ctrl-C to stop.")
        # uvicorn shuts down on Ctrl-C, then raises the signal again for the caller.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
        sock.close()
        click.echo("verifier stopped")

    run()

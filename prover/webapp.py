"""The local web verifier behind `zksolvency serve`: a page where a user drops or pastes their
inclusion package and reads every check of `verify_inclusion`, with what it found and means.

Everything the page needs is served from this package (prover/web/), and the
Content-Security-Policy lets the browser load nothing from anywhere else. The package goes to
this server only, on 127.0.0.1, which checks it against the epoch bundle the package names among
those it was started with (and against the chain when given an RPC URL).
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .bundle import Bundle, TrustAnchors, load_bundle
from .inclusion import MAX_NESTING, json_nesting, verify_inclusion
from .witness import format_value

log = logging.getLogger(__name__)

#: The largest package accepted (a real one is a few kB: a path of at most 32 hashes).
MAX_PACKAGE_BYTES = 1 << 20
#: Host names the page is served under; anything else is a DNS-rebinding attempt.
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _web_files() -> dict[str, bytes]:
    """The page's files, read once: a broken install fails at start, not on a request."""
    web = resources.files(__package__ or "zksolvency.prover") / "web"
    return {name: (web / name).read_bytes() for name in ("index.html", *STATIC)}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _SecurityHeaders:
    """Adds SECURITY_HEADERS to every response, errors and 404s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    headers[k] = v
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Verifier:
    """The loaded bundles and chain settings, and the routes that use them."""

    def __init__(
        self,
        bundles: list[Bundle],
        rpc: str | None,
        registry: str | None,
        trusted: TrustAnchors | None,
    ) -> None:
        self.bundles = bundles
        self.rpc, self.registry, self.trusted = rpc, registry, trusted
        # One verification at a time: they are CPU-bound pure Python, so parallel ones would
        # only share the GIL, and a queue keeps memory flat.
        self.limiter = anyio.CapacityLimiter(1)
        self.files = _web_files()

    def pick(self, data: bytes) -> tuple[Bundle | None, str | None]:
        """The bundle a package names by manifest hash, and a note for the user when none is
        used. Choosing it is routing, not checking: verify_inclusion checks the choice again."""
        try:
            pkg = json.loads(data)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            pkg = None
        if not isinstance(pkg, dict):
            # Any bundle will do: the bundle checks are then skipped for the unreadable package,
            # and say so, rather than for a missing bundle.
            return (self.bundles[0] if self.bundles else None), None
        ref = pkg.get("bundle")
        sha = ref.get("manifest_sha256") if isinstance(ref, dict) else None
        for b in self.bundles:
            if b.sha256 == sha:
                return b, None
        loaded = ", ".join(f"epoch {b.epoch} ({b.sha256[:16]}...)" for b in self.bundles)
        named = (
            f"the epoch bundle with manifest sha256 {sha[:64]}"
            if isinstance(sha, str)
            else "an epoch bundle (the package names none)"
        )
        if not self.bundles:
            note = f"This verifier was started without epoch bundles, so it cannot check {named}."
        else:
            note = f"This verifier does not have {named}; it has {loaded}."
        note += (
            " The checks that need the bundle were skipped: restart `zksolvency serve` with "
            "--bundle DIR for your package's epoch."
        )
        return None, note

    async def index(self, request: Request) -> Response:
        return Response(self.files["index.html"], media_type="text/html; charset=utf-8")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return _error(404, "not found")
        return Response(self.files[name], media_type=STATIC[name])

    async def favicon(self, request: Request) -> Response:
        return Response(status_code=204)  # no icon, and no 404 in the browser's console

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "bundles": len(self.bundles)})

    async def epochs(self, request: Request) -> Response:
        return JSONResponse(
            {
                "epochs": [
                    {
                        "epoch": b.epoch,
                        "manifest_sha256": b.sha256,
                        "root": str(b.root),
                        "batches": int(b.manifest["batches"]),
                    }
                    for b in self.bundles
                ],
                "rpc": self.rpc,
                "registry": self.registry,
                "trusted_keys": self.trusted is not None,
                "max_package_bytes": MAX_PACKAGE_BYTES,
            }
        )

    async def verify(self, request: Request) -> Response:
        # Requiring a JSON content type makes any cross-site POST a CORS-preflighted request,
        # which this server never approves: other web pages cannot use the verifier.
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return _error(415, "send the package as the request body with type application/json")
        too_big = f"the package is larger than {MAX_PACKAGE_BYTES // 1024} kB: not a package"
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_PACKAGE_BYTES):
            return _error(413, too_big)
        body = bytearray()
        async for chunk in request.stream():  # chunked bodies carry no length: count
            body += chunk
            if len(body) > MAX_PACKAGE_BYTES:
                return _error(413, too_big)
        try:
            status, out = await anyio.to_thread.run_sync(
                self.check, bytes(body), limiter=self.limiter
            )
        except OSError as exc:  # the RPC endpoint is down or unreachable: no verdict either way
            return _error(502, f"the chain could not be read: {exc}")
        except Exception as exc:  # a bug, not a verdict: say so instead of a bare 500
            log.exception("verify_inclusion failed")
            return _error(500, f"the verifier failed unexpectedly: {exc!r}")
        return JSONResponse(out, status_code=status)

    def check(self, data: bytes) -> tuple[int, dict[str, Any]]:
        """The report on a package, with the bundle it was checked against, or an error for a
        body that cannot be a package. Runs in a worker thread: it takes up to seconds of CPU."""
        if json_nesting(data) > MAX_NESTING:
            return 400, {
                "error": f"the package nests deeper than {MAX_NESTING} levels: not a package"
            }
        bundle, note = self.pick(data)
        report = verify_inclusion(
            data,
            bundle,  # loaded once at start: no manifest is read per request
            rpc=self.rpc,
            registry=self.registry,
            trusted=self.trusted,
            workers=os.cpu_count() or 1,  # `serve` is a command: its main module is guarded
        )
        out: dict[str, Any] = report.as_json()
        if "headroom" in report.margin:
            out["margin"]["headroom_usd"] = format_value(int(report.margin["headroom"]))
        out["bundle"] = (
            {"epoch": bundle.epoch, "manifest_sha256": bundle.sha256}
            if bundle is not None and report.status("bundle") != "skip"
            else None
        )
        # A missing bundle matters only for a package that could be read.
        out["bundle_note"] = note if report.status("package") == "pass" else None
        return 200, out


def create_app(
    bundles: list[Path],
    rpc: str | None = None,
    registry: str | None = None,
    trusted: TrustAnchors | None = None,
) -> Starlette:
    """The verifier app for these epoch bundles (BundleFormatError for a directory that is not
    one); a bundle given twice is loaded once."""
    loaded: list[Bundle] = []
    for d in bundles:
        b = load_bundle(Path(d))
        if all(b.sha256 != other.sha256 for other in loaded):
            loaded.append(b)
    v = _Verifier(loaded, rpc, registry, trusted)
    routes = [
        Route("/", v.index, methods=["GET"]),
        Route("/static/{name}", v.static, methods=["GET"]),
        Route("/favicon.ico", v.favicon, methods=["GET"]),
        Route("/healthz", v.healthz, methods=["GET"]),
        Route("/api/epochs", v.epochs, methods=["GET"]),
        Route("/api/verify", v.verify, methods=["POST"]),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=ALLOWED_HOSTS),
    ]
    return Starlette(routes=routes, middleware=middleware)

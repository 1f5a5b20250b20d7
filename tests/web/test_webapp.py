"""The web verifier's app (Starlette TestClient) and the `serve` command that runs it."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from zksolvency.prover.inclusion import CHECKS, NOT_PROVEN

from .conftest import TAMPERED_BTC, Server, WebPackages

JSON = {"Content-Type": "application/json"}
BUNDLE_CHECKS = ("bundle", "context", "batch_proof", "state_chain", "solvency_proof", "margin")


@pytest.fixture(scope="module")
def client(tiny_epoch: Any) -> Iterator[TestClient]:
    from zksolvency.prover.webapp import create_app

    # The app only answers to 127.0.0.1/localhost as Host (DNS rebinding): so does the client.
    with TestClient(create_app([tiny_epoch.dir]), base_url="http://127.0.0.1") as c:
        yield c


def verify(client: TestClient, body: bytes) -> dict[str, Any]:
    r = client.post("/api/verify", content=body, headers=JSON)
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    return report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["key"]: c["status"] for c in report["checks"]}


def check(report: dict[str, Any], key: str) -> dict[str, str]:
    found: dict[str, str] = next(c for c in report["checks"] if c["key"] == key)
    return found


def test_valid_package_passes_every_check(
    client: TestClient, web_packages: WebPackages, tiny_epoch: Any
) -> None:
    report = verify(client, web_packages.good)
    assert report["ok"] is True
    assert [c["key"] for c in report["checks"]] == list(CHECKS)
    assert statuses(report) == {**dict.fromkeys(CHECKS, "pass"), "onchain": "skip"}
    for c in report["checks"]:
        assert (c["title"], c["meaning"]) == CHECKS[c["key"]]
        assert c["detail"]
    assert report["summary"][0].startswith("VERIFIED: account bob is included in epoch 1")
    assert report["balances"]["BTC"] == {"equity": "0.25", "debt": "0"}
    assert report["margin"]["positions"] == {"BTC-PERP": "-10", "BTC-C70K": "5"}
    assert re.fullmatch(r"[\d,]+\.\d\d", report["margin"]["headroom_usd"])
    assert report["bundle"] == {"epoch": 1, "manifest_sha256": tiny_epoch.sha256()}
    assert report["bundle_note"] is None
    assert report["not_proven"] == list(NOT_PROVEN)
    assert report["unpinned"] and "no trust anchors were given" in report["unpinned"][0]


def test_tampered_balance_fails_the_leaf_check(
    client: TestClient, web_packages: WebPackages
) -> None:
    report = verify(client, web_packages.tampered)
    assert report["ok"] is False
    leaf = check(report, "leaf")
    assert leaf["status"] == "fail"
    assert "do not hash to the leaf" in leaf["detail"]
    assert report["summary"][0].startswith(
        "NOT VERIFIED: the check 'Your data makes your leaf' failed"
    )
    # What the package claims is shown, so that the user sees which numbers were refused.
    assert report["balances"]["BTC"]["equity"] == TAMPERED_BTC
    assert statuses(report)["path"] == "skip"
    assert statuses(report)["batch_proof"] == "skip"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"account: bob\nbalance: 0.25 BTC\n", "package:1: invalid JSON"),
        (b'{"format": "zksolvency-inclusion/3",\n "epoch": 1,,}', "package:2: invalid JSON"),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
        (b"[1, 2, 3]", "not a zksolvency-inclusion/3 package"),
        (b'{"format": "zksolvency-inclusion/2"}', "(format 'zksolvency-inclusion/2')"),
    ],
)
def test_malformed_file_fails_the_package_check(
    client: TestClient, body: bytes, expected: str
) -> None:
    report = verify(client, body)
    assert report["ok"] is False
    first = report["checks"][0]
    assert (first["key"], first["status"]) == ("package", "fail")
    assert expected in first["detail"]
    assert report["summary"][0].startswith(
        "NOT VERIFIED: the check 'The package is readable' failed"
    )
    assert report["account_id"] is None
    assert report["balances"] == {}
    assert all(c["status"] == "skip" for c in report["checks"][1:])


def test_unreadable_package_skips_for_that_reason(
    client: TestClient, web_packages: WebPackages
) -> None:
    """The bundle checks say they wait for the package, not that a bundle is missing."""
    report = verify(client, web_packages.not_json)
    assert check(report, "bundle")["detail"] == (
        "not checked: needs 'The package is readable' to pass first"
    )
    for key in BUNDLE_CHECKS:
        assert check(report, key)["detail"].startswith("not checked: needs '")
    assert report["bundle"] is None


def test_oversized_body_is_refused(client: TestClient) -> None:
    from zksolvency.prover.webapp import MAX_PACKAGE_BYTES

    big = b" " * (MAX_PACKAGE_BYTES + 1)
    r = client.post("/api/verify", content=big, headers=JSON)
    assert r.status_code == 413
    assert "larger than 1024 kB" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server has to count
        for _ in range(MAX_PACKAGE_BYTES // 65536 + 1):
            yield b" " * 65536

    r = client.post("/api/verify", content=chunks(), headers=JSON)
    assert r.status_code == 413
    # Exactly at the limit is still a package to check (and here not a JSON one).
    r = client.post("/api/verify", content=b" " * MAX_PACKAGE_BYTES, headers=JSON)
    assert r.status_code == 200
    assert r.json()["checks"][0]["status"] == "fail"


def test_unknown_bundle_skips_the_bundle_checks(
    client: TestClient, web_packages: WebPackages
) -> None:
    pkg = web_packages.load()
    pkg["bundle"]["manifest_sha256"] = "ab" * 32
    report = verify(client, json.dumps(pkg).encode())
    assert report["ok"] is False
    assert report["checks"] and not [c for c in report["checks"] if c["status"] == "fail"]
    st = statuses(report)
    assert st["leaf"] == st["path"] == "pass"
    for key in BUNDLE_CHECKS:
        assert st[key] == "skip"
        assert "no epoch bundle given" in check(report, key)["detail"]
    assert report["summary"][0].startswith("NOT VERIFIED: the epoch's bundle is needed")
    assert report["bundle"] is None
    note = report["bundle_note"]
    assert "ab" * 32 in note and "it has epoch 1 (" in note and "--bundle DIR" in note


def test_no_bundle_loaded(web_packages: WebPackages) -> None:
    from zksolvency.prover.webapp import create_app

    with TestClient(create_app([]), base_url="http://127.0.0.1") as c:
        assert c.get("/api/epochs").json()["epochs"] == []
        report = verify(c, web_packages.good)
    assert report["ok"] is False
    assert all(statuses(report)[k] == "skip" for k in BUNDLE_CHECKS)
    assert "started without epoch bundles" in report["bundle_note"]


def anchors(tiny_epoch: Any, folder: Path, **override: str) -> Path:
    """A trust-anchor file pinning the tiny epoch's verification keys."""
    circuits = tiny_epoch.manifest["circuits"]
    pins = {f"{k}_vkey_sha256": circuits[k]["vkey_sha256"] for k in ("batch", "solvency")}
    path = folder / "anchors.json"
    path.write_text(json.dumps({**pins, **override}))
    return path


def test_trusted_keys_are_passed_to_the_checks(
    tiny_epoch: Any, web_packages: WebPackages, tmp_path: Path
) -> None:
    from zksolvency.prover.bundle import TrustAnchors
    from zksolvency.prover.webapp import create_app

    bad = TrustAnchors.load(anchors(tiny_epoch, tmp_path, solvency_vkey_sha256="00" * 32))
    with TestClient(create_app([tiny_epoch.dir], trusted=bad), base_url="http://127.0.0.1") as c:
        assert c.get("/api/epochs").json()["trusted_keys"] is True
        report = verify(c, web_packages.good)
    assert report["ok"] is False
    assert check(report, "bundle")["status"] == "fail"
    assert not any("no trust anchors" in w for w in report["warnings"])


def test_unreachable_chain_is_reported(tiny_epoch: Any, web_packages: WebPackages) -> None:
    from zksolvency.prover.webapp import create_app

    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        rpc = f"http://127.0.0.1:{closed.getsockname()[1]}"
        app = create_app([tiny_epoch.dir], rpc=rpc)
        with TestClient(app, base_url="http://127.0.0.1") as c:
            assert c.get("/api/epochs").json()["rpc"] == rpc
            r = c.post("/api/verify", content=web_packages.good, headers=JSON)
    # verify_inclusion lets the node's ConnectionError out: the user gets it as an error
    # rather than a verdict (were it made a failed "onchain" check, that is what to show).
    if r.status_code == 200:
        assert r.json()["ok"] is False
        assert check(r.json(), "onchain")["status"] == "fail"
    else:
        assert r.status_code == 502
        assert r.json()["error"].startswith("the chain could not be read: cannot reach")


def test_deeply_nested_json_is_refused_before_parsing(client: TestClient) -> None:
    """py_ecc raises the recursion limit, so the JSON decoder would crash the server."""
    r = client.post("/api/verify", content=b"[" * 500_000, headers=JSON)
    assert r.status_code == 400
    assert "nests deeper than 32 levels" in r.json()["error"]
    # Brackets inside strings are text, not nesting.
    r = client.post("/api/verify", content=b'["' + b"[" * 1000 + b'"]', headers=JSON)
    assert r.status_code == 200
    assert r.json()["checks"][0]["status"] == "fail"
    assert client.get("/healthz").json()["status"] == "ok"


def test_nesting_measure() -> None:
    from zksolvency.prover.inclusion import json_nesting

    assert json_nesting(b'{"a": [1, {"b": []}], "c": {}}') == 4
    assert json_nesting(b'{"a": "[[[[\\"[[[["}') == 1
    assert json_nesting(b"") == 0


def test_verify_needs_json_content_type(client: TestClient, web_packages: WebPackages) -> None:
    """A form or text/plain POST (what another site can send without a CORS preflight) is
    refused."""
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": ctype} if ctype else {}
        r = client.post("/api/verify", content=web_packages.good, headers=headers)
        assert r.status_code == 415
    assert client.get("/api/verify").status_code == 405


def test_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert csp.split(";")[0] == "default-src 'self'"
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    html = r.text
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sorted(refs) == ["/static/app.js", "/static/style.css"]
    assert "<script>" not in html and "style=" not in html  # nothing inline: CSP would block it
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
        assert r.headers["content-security-policy"] == csp
        assert not re.search(r"https?://", r.text), f"{name} names another host"
        assert "innerHTML" not in r.text and "insertAdjacentHTML" not in r.text
    for path in ("/static/index.html", "/static/..%2fwebapp.py", "/static/nope.js", "/nope"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.headers["content-security-policy"] == csp


def test_epochs_and_health(client: TestClient, tiny_epoch: Any) -> None:
    m = tiny_epoch.manifest
    info = client.get("/api/epochs").json()
    assert info["epochs"] == [
        {
            "epoch": 1,
            "manifest_sha256": tiny_epoch.sha256(),
            "root": str(m["root"]),
            "batches": m["batches"],
        }
    ]
    assert info["rpc"] is None and info["max_package_bytes"] == 1 << 20
    assert client.get("/healthz").json() == {"status": "ok", "bundles": 1}


def test_other_host_names_are_refused(tiny_epoch: Any) -> None:
    """A site rebinding its own name to 127.0.0.1 gets nothing from the verifier."""
    from zksolvency.prover.webapp import create_app

    app = create_app([tiny_epoch.dir])
    with TestClient(app, base_url="http://attacker.example") as c:
        assert c.get("/api/epochs").status_code == 400
    with TestClient(app, base_url="http://localhost:8765") as c:
        assert c.get("/api/epochs").status_code == 200


def test_bundles_load_once_and_must_be_bundles(tiny_epoch: Any, tmp_path: Path) -> None:
    from zksolvency.prover.bundle import BundleFormatError
    from zksolvency.prover.webapp import create_app

    app = create_app([tiny_epoch.dir, tiny_epoch.dir])
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert len(c.get("/api/epochs").json()["epochs"]) == 1
    with pytest.raises(BundleFormatError, match=r"no manifest\.json"):
        create_app([tmp_path])


# --- the serve command ------------------------------------------------------------------------


def run_serve(*args: object) -> Any:
    from zksolvency.cli.main import main

    return CliRunner().invoke(main, ["serve", *(str(a) for a in args)])


def test_serve_refuses_other_hosts(tiny_epoch: Any) -> None:
    for host in ("0.0.0.0", "localhost", "192.168.1.2"):
        result = run_serve("--bundle", tiny_epoch.dir, "--host", host)
        assert result.exit_code == 2
        assert "listens on 127.0.0.1 only" in result.output


def test_serve_needs_a_bundle_or_a_chain() -> None:
    result = run_serve()
    assert result.exit_code == 2
    assert "give --bundle DIR" in result.output


def test_serve_reports_a_busy_port_and_a_bad_bundle(tiny_epoch: Any, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_serve("--bundle", tiny_epoch.dir, "--port", port)
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    result = run_serve("--bundle", tmp_path)
    assert result.exit_code == 2
    assert "no manifest.json" in result.output


def test_serve_runs_until_ctrl_c(
    served: Callable[..., Server], tiny_epoch: Any, web_packages: WebPackages, tmp_path: Path
) -> None:
    server = served("--bundle", tiny_epoch.dir, "--trusted-keys", anchors(tiny_epoch, tmp_path))
    r = httpx.post(server.url + "api/verify", content=web_packages.good, headers=JSON)
    assert r.status_code == 200 and r.json()["ok"] is True
    assert not any("no trust anchors" in w for w in r.json()["warnings"])  # the keys are pinned
    out = server.stop()
    assert server.proc.returncode == 0, out
    assert "Open it in your browser" in out and "verifier stopped" in out
    assert "Traceback" not in out

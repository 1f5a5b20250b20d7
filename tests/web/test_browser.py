"""End to end: the real `zksolvency serve` in a child process, used in headless Chromium as a
user would (choose, drop or paste a package, read the checks), loading nothing from elsewhere.

Set ZKSOLVENCY_WEB_SCREENSHOTS=DIR to keep a screenshot of each result page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from zksolvency.prover.inclusion import CHECKS, NOT_PROVEN

from .conftest import BOB_BTC, TAMPERED_BTC, Server, WebPackages

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
)
#: Headless, and nothing of Chromium's own that would reach the network (updates, sync, ...).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000  # a verification takes about a second; a loaded CI machine, more
WAYS = ("file", "paste")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Visit:
    """A page opened on the verifier, with every request it made and every error it logged."""

    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_stayed_local(self, server: Server) -> None:
        assert self.requests, "no request recorded"
        others = [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1"]
        assert not others, f"the page contacted other hosts: {others}"
        assert server.url + "api/verify" in self.requests
        # A CSP violation or a script error would show here.
        assert not self.errors, self.errors


@pytest.fixture
def visit(browser: Any, web_server: Server) -> Iterator[Visit]:
    from playwright.sync_api import expect

    # Clipboard access, so that "paste" is a real Ctrl-V into the text box.
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    v = Visit(page)
    page.on("request", lambda r: v.requests.append(r.url))
    page.on("console", lambda m: v.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: v.errors.append(str(e)))
    page.goto(web_server.url)
    expect(page.locator("#epochs li")).to_have_count(1)
    yield v
    context.close()


def give(v: Visit, way: str, body: bytes, name: str = "bob.json") -> None:
    """Hand the package to the page as a user would."""
    page = v.page
    if way == "file":  # choosing a file verifies it at once
        page.set_input_files(
            "#file", files=[{"name": name, "mimeType": "application/json", "buffer": body}]
        )
    elif way == "paste":
        page.evaluate("text => navigator.clipboard.writeText(text)", body.decode())
        page.focus("#paste")
        page.keyboard.press("Control+V")
        assert page.input_value("#paste") == body.decode()
        page.click("#verify")
    elif way == "drop":
        data = page.evaluate_handle(
            """([text, name]) => {
                const data = new DataTransfer();
                data.items.add(new File([text], name, {type: "application/json"}));
                return data;
            }""",
            [body.decode(), name],
        )
        page.dispatch_event("#drop", "drop", {"dataTransfer": data})
    else:
        raise AssertionError(way)


def expect_verdict(v: Visit, word: str, shot: str) -> None:
    from playwright.sync_api import expect

    expect(v.page.locator("#result")).to_be_visible()
    expect(v.page.locator("#verdict-word")).to_have_text(word)
    if folder := os.environ.get("ZKSOLVENCY_WEB_SCREENSHOTS"):
        v.page.screenshot(path=str(Path(folder) / f"{shot}.png"), full_page=True)


def rows(v: Visit) -> dict[str, dict[str, str]]:
    """Each check row as shown: badge, title, what was found, what it means."""
    shown: dict[str, dict[str, str]] = {}
    for row in v.page.locator("#checks > li").all():
        shown[row.get_attribute("data-key") or ""] = {
            "badge": row.locator(".badge").inner_text(),
            "title": row.locator(".check-title").inner_text(),
            "detail": row.locator(".detail-text").inner_text(),
            "meaning": row.locator(".meaning-text").inner_text(),
        }
    return shown


def failed_named(v: Visit) -> list[str]:
    return [
        t.removeprefix("Failed check: ") for t in v.page.locator(".failed-check").all_inner_texts()
    ]


@pytest.mark.parametrize("way", [*WAYS, "drop"])
def test_valid_package(
    visit: Visit, web_server: Server, web_packages: WebPackages, way: str
) -> None:
    page = visit.page
    sha = web_packages.load()["bundle"]["manifest_sha256"]
    assert sha in page.locator("#epochs").inner_text()
    give(visit, way, web_packages.good)
    expect_verdict(visit, "VERIFIED", f"valid-{way}")
    shown = rows(visit)
    assert list(shown) == list(CHECKS)
    for key, row in shown.items():
        assert row["badge"] == ("SKIPPED" if key == "onchain" else "PASS")
        assert (row["title"], row["meaning"]) == CHECKS[key]
        assert row["detail"]
    assert failed_named(visit) == []
    assert (
        page.locator("#verdict-text").inner_text().startswith("Account bob is included in epoch 1")
    )
    balances = page.locator("#balances tbody tr").all_inner_texts()
    assert [re.split(r"\s+", b.strip()) for b in balances] == [
        ["BTC", BOB_BTC, "0"],
        ["USDT", "0", "50.5"],
    ]
    assert re.match(r"Margin headroom: [\d,]+\.\d\d USD", page.locator("#headroom").inner_text())
    assert page.locator("#warnings li").count() >= 1
    not_proven = page.locator("#not-proven li").all_inner_texts()
    assert [n.lower() for n in not_proven] == [n.lower() for n in NOT_PROVEN]
    visit.assert_stayed_local(web_server)


@pytest.mark.parametrize("way", WAYS)
def test_tampered_package(
    visit: Visit, web_server: Server, web_packages: WebPackages, way: str
) -> None:
    page = visit.page
    give(visit, way, web_packages.tampered)
    expect_verdict(visit, "NOT VERIFIED", f"tampered-{way}")
    assert failed_named(visit) == [CHECKS["leaf"][0]]
    leaf = page.locator('#checks > li[data-key="leaf"]')
    assert leaf.get_attribute("data-status") == "fail"
    row = rows(visit)["leaf"]
    assert row["badge"] == "FAIL"
    assert "do not hash to the leaf" in row["detail"]
    assert row["meaning"] == CHECKS["leaf"][1]
    shown = rows(visit)
    assert shown["package"]["badge"] == "PASS"
    # What rests on the leaf is not checked, and the page says why.
    for key in ("path", "batch_proof", "solvency_proof"):
        assert shown[key]["badge"] == "SKIPPED"
        assert shown[key]["detail"].startswith("not checked: needs '")
    # The numbers the package claims are shown, next to the verdict that refuses them.
    assert TAMPERED_BTC in page.locator("#balances").inner_text()
    visit.assert_stayed_local(web_server)


@pytest.mark.parametrize("way", WAYS)
def test_malformed_file(
    visit: Visit, web_server: Server, web_packages: WebPackages, way: str
) -> None:
    page = visit.page
    give(visit, way, web_packages.not_json, name="notes.txt")
    expect_verdict(visit, "NOT VERIFIED", f"malformed-{way}")
    assert failed_named(visit) == [CHECKS["package"][0]]
    shown = rows(visit)
    assert shown["package"]["badge"] == "FAIL"
    assert "package:1: invalid JSON" in shown["package"]["detail"]
    assert all(r["badge"] == "SKIPPED" for k, r in shown.items() if k != "package")
    assert page.locator("#account").is_hidden()
    visit.assert_stayed_local(web_server)


def test_a_second_package_replaces_the_first(
    visit: Visit, web_server: Server, web_packages: WebPackages
) -> None:
    give(visit, "file", web_packages.good)
    expect_verdict(visit, "VERIFIED", "second-first")
    give(visit, "paste", web_packages.not_json)
    expect_verdict(visit, "NOT VERIFIED", "second-then")
    assert visit.page.input_value("#file") == ""  # the pasted text is what was checked
    assert "the pasted text" in visit.page.locator("#source").inner_text()
    visit.assert_stayed_local(web_server)


def test_oversized_file_is_not_sent(visit: Visit) -> None:
    from playwright.sync_api import expect

    page = visit.page
    body = b" " * ((1 << 20) + 1)
    page.set_input_files(
        "#file", files=[{"name": "big.json", "mimeType": "application/json", "buffer": body}]
    )
    expect(page.locator("#error")).to_be_visible()
    assert "big.json is larger than 1024 kB" in page.locator("#error-text").inner_text()
    assert page.locator("#result").is_hidden()
    assert page.locator("#verify").is_disabled()
    assert not [u for u in visit.requests if u.endswith("/api/verify")]
    # And the server refuses it too, when a script sends it anyway.
    status = page.evaluate(
        """size => fetch("/api/verify", {method: "POST",
            headers: {"Content-Type": "application/json"}, body: " ".repeat(size)})
            .then(r => r.status)""",
        len(body),
    )
    assert status == 413
    assert [urlsplit(u).hostname for u in visit.requests] == ["127.0.0.1"] * len(visit.requests)
    assert len(visit.errors) == 1 and "status of 413" in visit.errors[0]

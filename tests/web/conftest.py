"""Web verifier fixtures: bob's inclusion package from the tiny epoch, as the bytes a user would
drop into the page, in the three shapes the tests need (good, one balance edited, not JSON)."""

from __future__ import annotations

import copy
import json
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

#: bob's BTC equity in the tiny snapshot, and the amount a tampered package claims instead.
BOB_BTC, TAMPERED_BTC = "0.25", "250"


@dataclass(frozen=True)
class WebPackages:
    good: bytes
    tampered: bytes
    not_json: bytes

    def load(self) -> dict[str, Any]:
        pkg: dict[str, Any] = json.loads(self.good)
        return pkg


@pytest.fixture(scope="session")
def web_packages(tiny_epoch: Any) -> WebPackages:
    from zksolvency.prover.inclusion import export_package

    pkg = export_package(tiny_epoch.dir, "bob")
    assert pkg["account"]["equity"]["BTC"] == BOB_BTC
    tampered = copy.deepcopy(pkg)
    tampered["account"]["equity"]["BTC"] = TAMPERED_BTC
    return WebPackages(
        good=json.dumps(pkg, indent=1).encode(),
        tampered=json.dumps(tampered, indent=1).encode(),
        not_json=b"account: bob\nbalance: 0.25 BTC\n",
    )


@dataclass
class Server:
    """`zksolvency serve` running in a child process, as a user starts it."""

    proc: subprocess.Popen[bytes]
    url: str
    lines: list[str]

    def stop(self) -> str:
        """Ctrl-C, as a user stops it; the rest of its output."""
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return "".join(self.lines) + out.decode(errors="replace")


def start_server(*args: object, timeout: float = 60) -> Server:
    """Start `zksolvency serve` on a free port, and wait until it prints its URL; it is
    listening from then on."""
    code = "from zksolvency.cli.main import main; main(prog_name='zksolvency')"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", *(str(a) for a in args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,  # unbuffered: what readline does not take is left for stop() to read
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if not ready:
            continue
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            break
        lines.append(line)
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if found:
            return Server(proc, found.group(0), lines)
    proc.kill()
    out, _ = proc.communicate()
    pytest.fail(f"zksolvency serve did not print its URL:\n{''.join(lines)}{out.decode()}")


@pytest.fixture
def served() -> Iterator[Callable[..., Server]]:
    """Start `zksolvency serve` with these arguments; stopped when the test ends."""
    started: list[Server] = []

    def start(*args: object) -> Server:
        started.append(start_server(*args))
        return started[-1]

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop()


@pytest.fixture(scope="session")
def web_server(tiny_epoch: Any) -> Iterator[Server]:
    """One verifier for the tiny epoch, shared by the browser tests."""
    server = start_server("--bundle", tiny_epoch.dir)
    yield server
    server.stop()

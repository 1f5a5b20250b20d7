"""Session fixtures for the circuit tests: every circuit compiled once, in parallel.

Each circuit fixture (range64, merkle3, batch_o1, batch_1_4_2_2_8_2, ...) names an entry of
harness.CIRCUITS. When the first test of this folder starts, the circuits that the collected
tests need are submitted to a thread pool, largest first, so circom2 runs on every core while the
cheap tests begin; a fixture then waits only for its own circuit. Unit templates are compiled
with --O1 into a session tmp dir; production instances come from keys.compile_circuit (--O2,
cached in build/).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from harness import (
    CIRCUITS,
    ROOT,
    Circuit,
    Production,
    WitnessServer,
    compile_source,
    compile_template,
)
from zksolvency.prover.keys import compile_circuit


class CircuitPool:
    """Compiles CIRCUITS entries on a thread pool, each at most once per session."""

    def __init__(self, out_dir: Path, server: WitnessServer) -> None:
        self.out_dir = out_dir
        self.server = server
        self._pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
        self._futures: dict[str, Future[Circuit]] = {}

    def submit(self, name: str) -> Future[Circuit]:
        if name not in self._futures:
            self._futures[name] = self._pool.submit(self._build, name)
        return self._futures[name]

    def get(self, name: str) -> Circuit:
        return self.submit(name).result()

    def _build(self, name: str) -> Circuit:
        spec = CIRCUITS[name]
        if isinstance(spec, Production):
            return Circuit.of(compile_circuit(spec.spec()), self.server)
        if spec.source is not None:
            return compile_source(
                name, spec.source(), self.out_dir, optimize=spec.optimize, server=self.server
            )
        return compile_template(
            spec.file,
            spec.template,
            spec.params,
            spec.public,
            self.out_dir,
            optimize=spec.optimize,
            name=name,
            server=self.server,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def circuit_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CircuitPool]:
    if shutil.which("node") is None or not (ROOT / "node_modules" / ".bin" / "circom2").exists():
        pytest.skip("node toolchain not installed (run `make install`)")
    server = WitnessServer()
    pool = CircuitPool(tmp_path_factory.mktemp("circuits"), server)
    yield pool
    pool.close()
    server.close()


@pytest.fixture(scope="session", autouse=True)
def _prefetch_circuits(request: pytest.FixtureRequest, circuit_pool: CircuitPool) -> None:
    """Start compiling, largest first, every circuit that a collected test asks for."""
    wanted: set[str] = set()
    for item in request.session.items:
        wanted.update(getattr(item, "fixturenames", ()))
        # A test parametrised over `circuit` fetches it with request.getfixturevalue(circuit).
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("circuit"), str):
            wanted.add(callspec.params["circuit"])
    for name in sorted(wanted & CIRCUITS.keys(), key=lambda n: -CIRCUITS[n].cost):
        circuit_pool.submit(name)


def _circuit_fixture(name: str) -> Callable[..., Circuit]:
    def fixture(circuit_pool: CircuitPool) -> Circuit:
        return circuit_pool.get(name)

    fixture.__name__ = name
    fixture.__doc__ = f"The compiled {name} circuit ({CIRCUITS[name]})."
    return pytest.fixture(scope="session", name=name)(fixture)


for _name in CIRCUITS:
    globals()[f"_fixture_{_name}"] = _circuit_fixture(_name)

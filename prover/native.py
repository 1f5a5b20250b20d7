"""A native Groth16 prover behind the same job interface as the snarkjs driver.

groth16py (PyPI; arkworks, GPL-3.0, an optional extra) reads snarkjs zkeys and proves a
default batch in about 1.55 s on one core, against about 3.8 s for snarkjs on two (measured on
this project's 2-core machine; benchmarks/README figures). It is trusted only as far as it is
checked: the witness comes from the same snarkjs wasm calculator, and every proof it makes is
verified by snarkjs against the circuit's verification key before it is written, exactly as the
snarkjs path verifies its own. A proof that fails stops the run; nothing unverified is kept.

One thread per core takes a job at a time through three steps with its own long-lived Node
driver: the driver computes the witness, groth16py proves (it releases the GIL), the driver
verifies the proof. The threads are out of step, so Node's work on one overlaps proving on the
other core. Witnesses hold every private signal, so they live in `tmpdir` (the epoch's
private/inputs) and are deleted as soon as their proof exists.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from .atomic import read_json, write_json
from .toolchain import ToolError
from .witness_cpp import compute_witness

NAME = "native"


def available() -> bool:
    """Whether groth16py is installed (`pip install 'zksolvency[native]'`)."""
    try:
        import groth16py  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def _proving_key(zkey: str, mtime_ns: int, size: int) -> Any:
    """The imported zkey, once per file version (an import takes ~0.15 s at 2^16)."""
    import groth16py

    pk, _ = groth16py.import_zkey(zkey)
    return pk


def _public_from_wtns(path: Path, n_public: int) -> list[int]:
    """Signals 1..n_public of a .wtns file (v2: header, section 1 = field, section 2 = values):
    the circuit's public outputs and inputs, in snarkjs' order."""
    data = path.read_bytes()
    if data[:4] != b"wtns":
        raise ValueError(f"{path}: not a witness file")
    pos, sections = 12, {}
    while pos + 12 <= len(data):
        sid, size = struct.unpack_from("<IQ", data, pos)
        sections[sid] = pos + 12
        pos += 12 + size
    n8 = struct.unpack_from("<I", data, sections[1])[0]
    values = sections[2]
    return [
        int.from_bytes(data[values + n8 * i : values + n8 * (i + 1)], "little")
        for i in range(1, n_public + 1)
    ]


def _snarkjs_proof(blob: bytes) -> dict[str, Any]:
    """groth16py's 256-byte proof (EVM layout: A, B with c1 before c0, C) as snarkjs JSON."""
    if len(blob) != 256:
        raise ValueError(f"a Groth16 proof is 256 bytes, groth16py returned {len(blob)}")
    w = [str(int.from_bytes(blob[32 * i : 32 * (i + 1)], "big")) for i in range(8)]
    return {
        "pi_a": [w[0], w[1], "1"],
        "pi_b": [[w[3], w[2]], [w[5], w[4]], ["1", "0"]],
        "pi_c": [w[6], w[7], "1"],
        "protocol": "groth16",
        "curve": "bn128",
    }


def _prove_one(
    job: dict[str, Any], wtns: Path, n_public: int
) -> tuple[dict[str, Any], list[int], float]:
    import groth16py

    stat = Path(job["zkey"]).stat()
    pk = _proving_key(job["zkey"], stat.st_mtime_ns, stat.st_size)
    t0 = time.monotonic()
    try:
        blob = groth16py.prove_wtns(pk, str(wtns))
    except BaseException as exc:
        # A witness of another circuit makes the Rust code panic, which pyo3 raises as a
        # BaseException; anything but an interrupt is a failed job.
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise ToolError(["groth16py"], 1, f"{job.get('name', '')}: {exc}") from None
    return _snarkjs_proof(bytes(blob)), _public_from_wtns(wtns, n_public), time.monotonic() - t0


class Driver(Protocol):
    """A snarkjs driver that runs one job at a time (epoch.NodeDriver)."""

    def run(self, job: dict[str, Any]) -> dict[str, Any]: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


def run_jobs_native(
    jobs: list[dict[str, Any]],
    on_done: Callable[[dict[str, Any]], None],
    start_driver: Callable[[], Driver],
    *,
    tmpdir: Path,
    workers: int | None = None,
) -> None:
    """Prove snarkjs-driver `prove` jobs natively; call on_done(result) per job, in order, once
    its proof is verified by snarkjs and in place.

    Each of `workers` threads (one per core by default) owns a driver from `start_driver` and
    takes a job through witness, proof and verification before the next, so the cores stay
    busy: Node's witness and check run on one while groth16py proves on the other."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    tmpdir.mkdir(parents=True, exist_ok=True)
    # A run shares few verification keys: read each one once.
    n_public = {v: int(read_json(Path(v))["nPublic"]) for v in {j["vkey"] for j in jobs}}
    drivers: queue.SimpleQueue[Driver] = queue.SimpleQueue()
    started: list[Driver] = []
    try:
        for _ in range(workers):  # here: the drivers die with this thread (_die_with_parent)
            started.append(start_driver())
            drivers.put(started[-1])

        stop = threading.Event()  # set by the first failure: no job starts after it

        def one(k: int) -> dict[str, Any]:
            driver = drivers.get()
            try:
                if stop.is_set():
                    raise CancelledError
                return _prove_checked(
                    driver, jobs[k], tmpdir / f"native-{os.getpid()}-{k}", n_public
                )
            except BaseException:
                stop.set()
                raise
            finally:
                drivers.put(driver)

        pool = ThreadPoolExecutor(workers)
        try:
            futures = [pool.submit(one, k) for k in range(len(jobs))]
            for k, fut in enumerate(futures):
                on_done({"i": k, "ok": True, **fut.result(), "backend": NAME})
        except BaseException:
            # Stop Node first, so that no thread waits on a driver that will never answer
            # (snarkjs spins after some write failures); then let the running proofs end.
            stop.set()
            for d in started:
                d.kill()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    finally:
        for d in started:
            d.close()


def _prove_checked(
    driver: Driver, job: dict[str, Any], stem: Path, n_public: dict[str, int]
) -> dict[str, float]:
    """Witness (Node, or the job's C++ `witness_bin`), proof (groth16py), snarkjs check, then
    both files moved into place."""
    wtns, proof_tmp, public_tmp = (
        Path(f"{stem}{x}") for x in (".wtns", ".proof.json", ".public.json")
    )
    try:
        # name and proof_out only label a failure (the driver reads neither)
        label = {"name": job.get("name", ""), "proof_out": job["proof_out"]}
        if job.get("witness_bin"):  # circom's C++ generator (prover/witness_cpp.py)
            times = {
                "witness_s": compute_witness(Path(job["witness_bin"]), Path(job["input"]), wtns)
            }
        else:
            res = driver.run(
                {"kind": "witness", "input": job["input"], "wasm": job["wasm"]}
                | {"wtns_out": str(wtns)}
                | label
            )
            times = {"witness_s": float(res["witness_s"])}
        proof, public, times["prove_s"] = _prove_one(job, wtns, n_public[job["vkey"]])
        wtns.unlink()  # every private signal: gone as soon as the proof exists
        write_json(proof_tmp, proof)
        write_json(public_tmp, [str(x) for x in public])
        res = driver.run(
            {
                "kind": "verify",
                "vkey": job["vkey"],
                "proof": str(proof_tmp),
                "public": str(public_tmp),
            }
            | label
        )
        times["verify_s"] = float(res["seconds"])
        # Verified: move both files into place (same filesystem, so atomic renames).
        os.replace(proof_tmp, job["proof_out"])
        os.replace(public_tmp, job["public_out"])
        return times
    finally:
        for f in (wtns, proof_tmp, public_tmp):
            f.unlink(missing_ok=True)

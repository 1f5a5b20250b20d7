"""A native Groth16 prover behind the same job interface as the snarkjs driver.

groth16py (PyPI; arkworks, GPL-3.0, an optional extra) reads snarkjs zkeys and proves a
default batch in about 1.55 s on one core, against about 3.8 s for snarkjs on two (measured on
this project's 2-core machine; benchmarks/README figures). It is trusted only as far as it is
checked: the witness comes from the same snarkjs wasm calculator, and every proof it makes is
verified by snarkjs against the circuit's verification key before it is written, exactly as the
snarkjs path verifies its own. A proof that fails stops the run; nothing unverified is kept.

Jobs run in chunks, each in three steps: one Node run computes the chunk's witnesses, threads
prove them (groth16py releases the GIL, one proof per core), one Node run verifies the proofs.
Witnesses hold every private signal, so they live in `tmpdir` (the epoch's private/inputs) and
are deleted as soon as their proof exists.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

from .atomic import read_json, write_json
from .toolchain import ToolError

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


def run_jobs_native(
    jobs: list[dict[str, Any]],
    on_done: Callable[[dict[str, Any]], None],
    run_node: Callable[..., None],
    *,
    tmpdir: Path,
    lock_fd: int | None = None,
    workers: int | None = None,
) -> None:
    """Prove snarkjs-driver `prove` jobs natively; call on_done(result) per job, in order,
    once its proof is verified by snarkjs and written. `run_node` is epoch.run_jobs."""
    workers = workers or max(1, os.cpu_count() or 1)
    chunk = 2 * workers
    tmpdir.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(jobs), chunk):
        part = jobs[start : start + chunk]
        stem = [tmpdir / f"native-{os.getpid()}-{start + k}" for k in range(len(part))]
        times: list[dict[str, Any]] = [{} for _ in part]
        try:
            witness_jobs = [
                {"kind": "witness", "input": j["input"], "wasm": j["wasm"], "wtns_out": f"{s}.wtns"}
                for j, s in zip(part, stem, strict=True)
            ]
            witnessed: list[dict[str, Any]] = []
            run_node(witness_jobs, witnessed.append, tmpdir=tmpdir, lock_fd=lock_fd)
            for res in witnessed:
                times[int(res["i"])]["witness_s"] = float(res["witness_s"])
            # A batch chunk shares one verification key: read each one once.
            n_public = {v: int(read_json(Path(v))["nPublic"]) for v in {j["vkey"] for j in part}}
            with ThreadPoolExecutor(workers) as pool:
                proved = list(
                    pool.map(
                        _prove_one,
                        part,
                        [Path(f"{s}.wtns") for s in stem],
                        [n_public[j["vkey"]] for j in part],
                    )
                )
            verify_jobs = []
            for k, (job, s, (proof, public, seconds)) in enumerate(
                zip(part, stem, proved, strict=True)
            ):
                Path(f"{s}.wtns").unlink()
                times[k]["prove_s"] = seconds
                write_json(Path(f"{s}.proof.json"), proof)
                write_json(Path(f"{s}.public.json"), [str(x) for x in public])
                verify_jobs.append(
                    {
                        "kind": "verify",
                        "vkey": job["vkey"],
                        "proof": f"{s}.proof.json",
                        "public": f"{s}.public.json",
                    }
                )
            verified: list[dict[str, Any]] = []
            run_node(verify_jobs, verified.append, tmpdir=tmpdir, lock_fd=lock_fd)
            for res in sorted(verified, key=lambda r: int(r["i"])):
                k = int(res["i"])
                times[k]["verify_s"] = float(res["seconds"])
                job, s = part[k], stem[k]
                # Verified: move both files into place (same filesystem, so atomic renames).
                os.replace(f"{s}.proof.json", job["proof_out"])
                os.replace(f"{s}.public.json", job["public_out"])
                on_done({"i": start + k, "ok": True, **times[k], "backend": NAME})
        finally:
            for s in stem:
                for suffix in (".wtns", ".proof.json", ".public.json"):
                    Path(f"{s}{suffix}").unlink(missing_ok=True)

"""Prove an epoch's jobs on a Dask distributed cluster: one task per proof.

The coordinator (the `prove` process, holding the epoch's lock) plans the epoch, writes every
input and alone records proofs (meta files, manifest). A worker only turns one input into a
proof verified by snarkjs, with the machinery of a local run (`epoch.run_jobs` or
`native.run_jobs_native` on a one-job list), so the public outputs equal a local run's by
construction, and the coordinator still compares each with the mirror.

Jobs carry absolute paths: the epoch directory and build/ must be at the same path on every
worker (shared storage), and every worker needs this checkout (the venv, node_modules).
`run_jobs_dask` checks that on each worker before it submits anything.

A task writes its proof and public files under temporary names (`<file>.<run>.tmp`), and only
the coordinator renames them into place, as their results reach it. A task that outlives its
run (cancelled while running, or rescheduled after its worker dropped off the network while
still proving) can then never replace a proof that is already recorded; its files keep their
temporary names, which the next run deletes. Witnesses go to a folder of the task's own under
`workdir` (on the shared storage, next to the epoch's private data): worker processes on
different hosts may share a pid, which names the drivers' temporary files.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import epoch, native
from .atomic import sha256_file
from .paths import node_module
from .progress import NullReporter, Reporter
from .toolchain import ToolError

INSTALL_HINT = "pip install 'zksolvency[dask]'"
#: Seconds to wait for the scheduler, and for a first worker to join it.
CONNECT_TIMEOUT = 20.0
#: Reruns of a task that raised (a proof is deterministic to check, but a worker's disk or
#: Node can fail transiently). A task whose worker dies is rescheduled by the scheduler itself,
#: up to `distributed.scheduler.allowed-failures` times.
RETRIES = 2
#: local:N starts at most this many worker processes.
MAX_LOCAL_WORKERS = 256

_REMOTE = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+):(\d{1,5})$")
_LOCAL = re.compile(r"^local:(\d+)$")


class ClusterError(RuntimeError):
    """The cluster cannot prove this epoch: distributed is missing, the scheduler cannot be
    reached, or a worker cannot read the keys and inputs or write the epoch directory."""


class TaskError(RuntimeError):
    """A proving task failed on a worker (raised there, with the worker named)."""


def require_distributed() -> Any:
    """The distributed package, else ClusterError: it is the optional `dask` extra.

    Used untyped: its annotations are partial (mypy strict rejects calls to Client).
    """
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"proving on a Dask cluster needs distributed: {INSTALL_HINT}") from None
    return distributed


def parse_scheduler(spec: str) -> int | None:
    """Check a scheduler address: tcp://host:port (or tls://), or local:N.

    Returns N for local:N (worker processes to start on this machine), else None. Raises
    ValueError naming what is wrong.
    """
    local = _LOCAL.match(spec)
    if local:
        n = int(local.group(1))
        if not 1 <= n <= MAX_LOCAL_WORKERS:
            raise ValueError(f"local:N needs 1 <= N <= {MAX_LOCAL_WORKERS}, not {spec!r}")
        return n
    remote = _REMOTE.match(spec)
    if remote is None or not 1 <= int(remote.group(3)) <= 65535:
        raise ValueError(f"expected tcp://host:port or local:N, not {spec!r}")
    return None


def run_jobs_dask(
    jobs: list[dict[str, Any]],
    on_done: Callable[[dict[str, Any]], None],
    *,
    scheduler: str,
    backend: str,
    workdir: Path,
    reporter: Reporter | None = None,
    retries: int = RETRIES,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Prove `prove` jobs (as for epoch.run_jobs) on the Dask cluster at `scheduler`.

    `scheduler` is tcp://host:port, or local:N to start N worker processes here for this call.
    Calls on_done(result) in this process as each proof is in place, in completion order, with
    run_jobs' result keys ("i", "ok", the timings) plus "worker", "host" and "pid". `workdir`
    holds the tasks' witness folders: private, on the shared storage, cleared before and after.
    On a failure the outstanding tasks are cancelled and no proof is left under its final name
    that was not reported.
    """
    rep = reporter or NullReporter()
    dask = require_distributed()
    local_workers = parse_scheduler(scheduler)
    if not jobs:
        return
    run = secrets.token_hex(4)
    staged, keys = [], []
    for job in jobs:
        # The key carries the input's hash and this run's token: a scheduler that still knows
        # a key from an earlier run must never hand back that run's result.
        keys.append(f"zksolvency-prove-{job['name']}-{sha256_file(Path(job['input']))[:16]}-{run}")
        staged.append(
            {
                **job,
                "proof_out": _staged(job["proof_out"], run),
                "public_out": _staged(job["public_out"], run),
            }
        )
    shutil.rmtree(workdir, ignore_errors=True)  # witnesses a killed run left behind
    workdir.mkdir(parents=True, mode=0o700)
    try:
        with _client(dask, scheduler, local_workers, connect_timeout) as client:
            _preflight(client, scheduler, jobs, backend, workdir, connect_timeout, rep)
            futures = client.map(
                _prove_task,
                staged,
                [backend] * len(staged),
                [str(workdir)] * len(staged),
                key=keys,
                retries=retries,
                pure=False,
            )
            try:
                per_worker = _collect(dask, client, futures, jobs, staged, on_done, scheduler)
            except BaseException:
                # Interrupted, a task failed, or on_done did: stop the rest. Tasks already
                # running cannot be stopped, but they only ever write temporary names.
                with contextlib.suppress(Exception):
                    client.cancel(futures)
                raise
            finally:
                # Long-lived workers must not keep Node drivers of a finished run (its
                # folders are deleted; a later run may come from an upgraded checkout).
                with contextlib.suppress(Exception):
                    client.run(close_thread_drivers)
        rep.info(
            f"dask: {len(jobs)} proofs on {len(per_worker)} workers ("
            + ", ".join(f"{w}: {n}" for w, n in sorted(per_worker.items()))
            + ")"
        )
    except BaseException:
        for job in staged:
            for path in (job["proof_out"], job["public_out"]):
                Path(path).unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _collect(
    dask: Any,
    client: Any,
    futures: list[Any],
    jobs: list[dict[str, Any]],
    staged: list[dict[str, Any]],
    on_done: Callable[[dict[str, Any]], None],
    scheduler: str,
) -> collections.Counter[str]:
    """Put each proof in place and report it as its task finishes; count proofs per worker."""
    index = {f.key: i for i, f in enumerate(futures)}
    per_worker: collections.Counter[str] = collections.Counter()
    for fut in dask.as_completed(futures, loop=client.loop):  # this client, not a default one
        i = index[fut.key]
        if fut.status != "finished":
            raise _failure(jobs[i], fut, scheduler)
        res = fut.result()
        # Renamed only now, by the one process that records proofs.
        os.replace(staged[i]["proof_out"], jobs[i]["proof_out"])
        os.replace(staged[i]["public_out"], jobs[i]["public_out"])
        per_worker[str(res["worker"])] += 1
        on_done({**res, "i": i})
    return per_worker


def _staged(path: str, run: str) -> str:
    return f"{path}.{run}.tmp"


@contextlib.contextmanager
def _client(dask: Any, scheduler: str, local_workers: int | None, timeout: float) -> Iterator[Any]:
    if local_workers is not None:
        # One thread per process: snarkjs is multi-threaded, and groth16py proves one proof
        # per core. The dashboard (always served) on any free port, not a fixed one.
        with (
            dask.LocalCluster(
                n_workers=local_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            ) as cluster,
            dask.Client(cluster, set_as_default=False) as client,
        ):
            yield client
        return
    _probe(scheduler, timeout)
    try:
        client = dask.Client(scheduler, timeout=timeout, set_as_default=False)
    except OSError as exc:  # TimeoutError included
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client:
        yield client


def _probe(scheduler: str, timeout: float) -> None:
    """Fail at once on a refused connection: the Dask client retries one until its timeout."""
    m = _REMOTE.match(scheduler)
    assert m is not None  # parse_scheduler accepted it
    host = m.group(2).strip("[]")
    try:
        with socket.create_connection((host, int(m.group(3))), timeout=min(timeout, 5.0)):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {reason}") from None


def _preflight(
    client: Any,
    scheduler: str,
    jobs: list[dict[str, Any]],
    backend: str,
    workdir: Path,
    timeout: float,
    rep: Reporter,
) -> None:
    """Every worker can read the keys and inputs, write the epoch directory, run the backend."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise ClusterError(
            f"no worker joined the Dask scheduler at {scheduler} within {timeout:.0f} s"
        ) from None
    reads = sorted({job[k] for job in jobs for k in _READS if k in job})
    reads.append(jobs[0]["input"])  # the epoch directory is shared, not only the keys
    writes = sorted({str(Path(job["proof_out"]).parent) for job in jobs} | {str(workdir)})
    runs = tuple(sorted({job["witness_bin"] for job in jobs if "witness_bin" in job}))
    answers = client.run(check_worker, reads, writes, backend, runs, on_error="return")
    problems = []
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            problems.append(
                f"worker {worker}: the check failed ({type(answer).__name__}: {answer}); "
                "is this checkout installed there?"
            )
        else:
            problems.extend(f"worker {worker}: {p}" for p in answer)
    if problems:
        raise ClusterError(
            "the Dask workers cannot prove this epoch (they need the epoch directory and "
            "build/ at the same absolute paths, and this checkout installed):\n  "
            + "\n  ".join(problems)
        )
    threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    rep.info(
        f"dask: {len(answers)} workers ({threads} threads) at {scheduler}: "
        f"{len(jobs)} proofs to make"
    )


def check_worker(
    reads: list[str], writes: list[str], backend: str, runs: tuple[str, ...] = ()
) -> list[str]:
    """What this process lacks to prove: unreadable files, unwritable folders, programs that
    do not start here (the C++ witness program needs this host's libgmp), the toolchain.

    Runs on each worker (`client.run`) and at the start of each task.
    """
    problems = [f"cannot read {p}: {why}" for p in reads if (why := _unreadable(p))]
    problems += [f"cannot run {p}: {why}" for p in runs if (why := _unrunnable(p))]
    for d in writes:
        try:
            # a .tmp name: if this process dies here, the next prove deletes the file
            fd, tmp = tempfile.mkstemp(prefix=".zksolvency-check.", suffix=".tmp", dir=d)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            problems.append(f"cannot write in {d}: {exc.strerror or exc}")
    if shutil.which("node") is None:
        problems.append("node is not on PATH")
    try:
        node_module("snarkjs")
    except RuntimeError as exc:  # ToolchainMissing
        problems.append(str(exc))
    if backend == native.NAME and not native.available():
        problems.append("groth16py is not installed: pip install 'zksolvency[native]'")
    return problems


def _unrunnable(path: str) -> str | None:
    """Why a program does not start here, if it does not. Without arguments the C++ witness
    program prints its usage and exits 0, so this checks its loader and libraries."""
    try:
        done = subprocess.run([path], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return f"exit status {done.returncode}" + (f": {tail[0]}" if tail else "")
    return None


def _unreadable(path: str) -> str | None:
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


#: Per worker thread, its Node driver: kept from task to task, as a local run keeps one per core
#: (starting Node and snarkjs costs about a second, a large share of a small batch's proof).
_DRIVERS: dict[int, epoch.NodeDriver] = {}


class _Kept:
    """A thread's driver lent to one task: closing it keeps it for the next task; killing it
    (after a failure) ends it, and the next task starts another."""

    def __init__(self, driver: epoch.NodeDriver) -> None:
        self.driver = driver

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        return self.driver.run(job)

    def kill(self) -> None:
        self.driver.kill()

    def close(self) -> None:
        pass


def close_thread_drivers() -> int:
    """Stop every driver this worker process keeps; how many. Run on each worker as a run ends."""
    drivers = list(_DRIVERS.values())
    _DRIVERS.clear()
    for d in drivers:
        d.close()
    return len(drivers)


def _thread_driver(workdir: Path) -> _Kept:
    """This worker thread's driver, started if it has none or its last one failed. Native jobs
    name their witness files, so the driver's TMPDIR (the run's private folder) stays unused."""
    key = threading.get_ident()
    driver = _DRIVERS.get(key)
    if driver is None or driver.broken or driver.proc.poll() is not None:
        if driver is not None:
            driver.close()
        driver = _DRIVERS[key] = epoch.NodeDriver(tmpdir=workdir)
    return _Kept(driver)


#: The shared files a job reads besides its input: keys, calculators, the C++ witness program.
_READS = ("wasm", "zkey", "vkey", "witness_bin")


def _prove_task(job: dict[str, Any], backend: str, workdir: str) -> dict[str, Any]:
    """One proof, on a worker. Raised errors name the worker: the coordinator reports them."""
    from distributed import get_worker

    worker = get_worker().address
    where = f"worker {worker} (host {socket.gethostname()}, pid {os.getpid()})"
    name = job["name"]
    problems = check_worker([job[k] for k in ("input", *_READS) if k in job], [], backend)
    if problems:  # a worker that joined after the start-up check, say
        raise ClusterError(f"{where}, proving {name}: " + "; ".join(problems))
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=workdir))  # unique across hosts
    results: list[dict[str, Any]] = []
    try:
        if backend == native.NAME:
            native.run_jobs_native(
                [job], results.append, lambda: _thread_driver(Path(workdir)), tmpdir=tmp, workers=1
            )
        else:
            epoch.run_jobs([job], results.append, tmpdir=tmp)
    except OSError as exc:
        # Kept an OSError (a full disk on the shared storage, say): the CLI names the file.
        why = f"{exc.strerror or exc} ({where}, proving {name})"
        raise OSError(exc.errno, why, exc.filename) from None
    except Exception as exc:
        raise TaskError(f"{where}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**results[0], "worker": worker, "host": socket.gethostname(), "pid": os.getpid()}


def _failure(job: dict[str, Any], fut: Any, scheduler: str) -> BaseException:
    """The error to raise for a task that did not finish, naming the job."""
    name = job["name"]
    if fut.status == "cancelled":
        return ToolError(
            ["dask", "prove", name], 1, f"the task was cancelled (lost the scheduler {scheduler}?)"
        )
    exc = fut.exception()
    if isinstance(exc, ClusterError | OSError):
        return exc
    # TaskError names the worker; KilledWorker (its workers kept dying) names the task.
    why = str(exc) if isinstance(exc, TaskError) else f"{type(exc).__name__}: {exc}"
    return ToolError(["dask", "prove", name], 1, why)

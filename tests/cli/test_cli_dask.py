"""`prove --scheduler`: the batches proven on a real Dask cluster (a LocalCluster of two worker
processes), with the same public signals as a local snarkjs run of the same snapshot and seed,
spread over both workers, resumable, whole after a worker is killed mid-proof, and with clear
errors for an unreachable scheduler, workers that cannot see the keys, and a failing task."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from zksolvency.prover import cluster, native, witness_cpp
from zksolvency.prover.toolchain import ToolError

pytest.importorskip("distributed")

#: Three accounts more than the tiny snapshot's five: 4 batches of 2, then the solvency proof.
EXTRA_ACCOUNTS = [
    {"id": "frank", "equity": {"BTC": "0.1"}},
    {"id": "grace", "equity": {"USDT": "500"}},
    {"id": "heidi", "equity": {"BTC": "0.05", "USDT": "10"}, "debt": {"USDT": "5"}},
]


@pytest.fixture(scope="module")
def scheduler(toolchain: None) -> Iterator[str]:
    """The address of a LocalCluster: two worker processes, one thread each."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as lc:
        yield lc.scheduler_address


def _args(base: tuple[str, ...], out: Path, snapshot: Path | None = None) -> list[str]:
    args = list(base)
    args[args.index("--out") + 1] = str(out)
    if snapshot is not None:
        args[1] = str(snapshot)
    return args


def _with_seed(out: Path, reference: Path) -> Path:
    """`out` primed with the reference run's seed: the same salts, leaves and states."""
    (out / "private").mkdir(parents=True)
    shutil.copyfile(reference / "private" / "seed", out / "private" / "seed")
    return out


@dataclass(frozen=True)
class DaskRun:
    reference: Path  # proven locally with snarkjs
    dir: Path  # the same snapshot and seed, proven on the cluster
    args: list[str]
    result: Result
    results: list[dict[str, Any]]  # what run_jobs_dask reported, in completion order


@pytest.fixture(scope="module")
def dask_run(
    cli: Callable[..., Result],
    tiny_epoch: Any,
    scheduler: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> DaskRun:
    folder = tmp_path_factory.mktemp("dask")
    snapshot = json.loads(tiny_epoch.snapshot.read_text())
    snapshot["accounts"] += EXTRA_ACCOUNTS
    eight = folder / "eight.json"
    eight.write_text(json.dumps(snapshot))

    reference = folder / "local"
    local = cli(*_args(tiny_epoch.prove_args, reference, eight))
    assert local.exit_code == 0, local.output
    assert "epoch 1: 8 accounts in 4 batches" in local.stdout

    out = _with_seed(folder / "dask", reference)
    args = [*_args(tiny_epoch.prove_args, out, eight), "--scheduler", scheduler]
    results: list[dict[str, Any]] = []
    real = cluster.run_jobs_dask

    def spy(jobs: list[dict[str, Any]], on_done: Callable[..., None], **kw: Any) -> None:
        def record(res: dict[str, Any]) -> None:
            results.append(res)
            on_done(res)

        real(jobs, record, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cluster, "run_jobs_dask", spy)
        result = cli(*args)
    assert result.exit_code == 0, result.output
    return DaskRun(reference, out, args, result, results)


def _leftovers(out: Path) -> list[Path]:
    """Anything a failed or finished run must not leave: temporary files, inputs, witnesses."""
    return [
        *out.glob("proofs/*.tmp"),
        *out.glob("private/inputs/*"),
        *out.glob("private/dask"),
    ]


def test_the_cluster_proves_what_a_local_run_proves(
    cli: Callable[..., Result], dask_run: DaskRun
) -> None:
    names = sorted(p.name for p in dask_run.reference.glob("proofs/*.public.json"))
    assert len(names) == 5
    assert sorted(p.name for p in dask_run.dir.glob("proofs/*.public.json")) == names
    for name in names:
        ours = (dask_run.dir / "proofs" / name).read_bytes()
        assert ours == (dask_run.reference / "proofs" / name).read_bytes(), name

    def comparable(d: Path) -> dict[str, Any]:
        m: dict[str, Any] = json.loads((d / "manifest.json").read_text())
        del m["created_at"]
        for e in [*m["proofs"]["batches"], m["proofs"]["solvency"]]:
            del e["proof_sha256"]  # a proof is randomised; its statement is not
        return m

    assert comparable(dask_run.dir) == comparable(dask_run.reference)
    assert not _leftovers(dask_run.dir)
    # Progress advances per finished proof, as in a local run.
    for k in range(1, 6):
        assert f"proving: {k}/5" in dask_run.result.stderr
    checked = cli("verify-bundle", dask_run.dir)
    assert checked.exit_code == 0, checked.output
    assert "5 proofs verified" in checked.stdout


def test_the_proofs_are_spread_over_the_workers(dask_run: DaskRun, scheduler: str) -> None:
    res = dask_run.results
    assert sorted(r["i"] for r in res) == [0, 1, 2, 3, 4]
    for r in res:
        assert r["ok"] and {"witness_s", "prove_s", "verify_s"} <= r.keys(), r
    processes = {(r["host"], r["pid"]) for r in res}
    assert len(processes) >= 2, res
    workers = {r["worker"] for r in res}
    assert len(workers) >= 2
    assert f"dask: 2 workers (2 threads) at {scheduler}: 5 proofs to make" in (
        dask_run.result.stderr
    )
    assert "dask: 5 proofs on 2 workers (" in dask_run.result.stderr


def test_a_rerun_resumes_with_nothing_to_do(cli: Callable[..., Result], dask_run: DaskRun) -> None:
    before = (dask_run.dir / "manifest.json").read_bytes()
    result = cli(*dask_run.args)
    assert result.exit_code == 0, result.output
    assert "resuming: 5 of 5 proofs already done" in result.stderr
    assert "dask:" not in result.stderr  # nothing to prove: the cluster is not even contacted
    assert (dask_run.dir / "manifest.json").read_bytes() == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _assert_nothing_proven(out: Path) -> None:
    assert not list(out.glob("proofs/*")), "a proof file was left"
    assert not _leftovers(out)
    assert not (out / "manifest.json").exists()


def test_an_unreachable_scheduler_is_bad_usage(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path: Path
) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    out = tmp_path / "epoch"
    result = cli(*_args(tiny_epoch.prove_args, out), "--scheduler", address)
    assert result.exit_code == 2, result.output
    assert f"cannot reach the Dask scheduler at {address}" in result.stderr
    _assert_nothing_proven(out)


def test_workers_missing_the_zkey_are_named(
    cli: Callable[..., Result],
    tiny_epoch: Any,
    scheduler: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The workers of a LocalCluster share this machine's files, so the zkey is made missing
    on the workers by naming another path in the jobs they get."""
    absent = tmp_path / "not-shared" / "batch.zkey"
    real = cluster.run_jobs_dask

    def elsewhere(jobs: list[dict[str, Any]], on_done: Callable[..., None], **kw: Any) -> None:
        real([{**j, "zkey": str(absent)} for j in jobs], on_done, **kw)

    monkeypatch.setattr(cluster, "run_jobs_dask", elsewhere)
    out = tmp_path / "epoch"
    result = cli(*_args(tiny_epoch.prove_args, out), "--scheduler", scheduler)
    assert result.exit_code == 2, result.output
    assert "the Dask workers cannot prove this epoch" in result.stderr
    for line in [ln for ln in result.stderr.splitlines() if str(absent) in ln]:
        assert line.strip().startswith("worker tcp://127.0.0.1:")
        assert "No such file or directory" in line
    assert result.stderr.count(f"cannot read {absent}") == 2  # both workers
    _assert_nothing_proven(out)


def test_a_failing_task_names_the_job_and_the_worker(
    tiny_epoch: Any, scheduler: str, tmp_path: Path
) -> None:
    """A job whose witness cannot be computed fails on the worker (once retried): the error
    names the job and the worker's error, and nothing is written."""
    from zksolvency.prover.keys import build_keys
    from zksolvency.prover.params import EpochParams

    ks = build_keys(EpochParams(**tiny_epoch.manifest["params"]), None).batch  # cached
    bad = tmp_path / "private" / "inputs" / "batch_000007.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{}")
    proofs = tmp_path / "proofs"
    proofs.mkdir()
    job = {
        "kind": "prove",
        "name": "batch_000007",
        "input": str(bad),
        "wasm": str(ks.build.wasm),
        "zkey": str(ks.zkey),
        "vkey": str(ks.build.dir / "keys" / "verification_key.json"),
        "proof_out": str(proofs / "batch_000007.proof.json"),
        "public_out": str(proofs / "batch_000007.public.json"),
    }
    done: list[dict[str, Any]] = []
    with pytest.raises(ToolError) as err:
        cluster.run_jobs_dask(
            [job],
            done.append,
            scheduler=scheduler,
            backend="snarkjs",
            workdir=tmp_path / "private" / "dask",
            retries=1,
        )
    msg = str(err.value)
    assert "dask prove batch_000007" in msg and "worker tcp://127.0.0.1:" in msg, msg
    assert "Not all inputs have been set" in msg, msg
    assert not done
    assert not list(proofs.iterdir()) and not (tmp_path / "private" / "dask").exists()


def _kill_a_worker_mid_proof(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first worker process of this test's LocalCluster seen running a proof."""
    import psutil  # a dependency of distributed

    me = psutil.Process()
    while not stop.is_set():
        for proc in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if any("groth16.mjs" in arg for arg in proc.cmdline()):
                    worker = proc.parent()
                    assert worker is not None and worker.pid != me.pid
                    worker.kill()
                    killed.append(worker.pid)
                    return
        time.sleep(0.02)


def test_a_local_cluster_survives_a_killed_worker(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path: Path
) -> None:
    """--scheduler local:2, with one worker process killed while it proves: its task is
    rescheduled, and the epoch comes out whole, with the local run's statements."""
    out = _with_seed(tmp_path / "epoch", tiny_epoch.dir)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_a_worker_mid_proof, args=(stop, killed))
    killer.start()
    try:
        result = cli(*_args(tiny_epoch.prove_args, out), "--scheduler", "local:2")
    finally:
        stop.set()
        killer.join()
    assert result.exit_code == 0, result.output
    assert killed, "no worker was caught proving"
    assert "dask: 2 workers (2 threads) at local:2: 4 proofs to make" in result.stderr
    for public in sorted(tiny_epoch.dir.glob("proofs/*.public.json")):
        assert (out / "proofs" / public.name).read_bytes() == public.read_bytes(), public.name
    assert not _leftovers(out)
    checked = cli("verify-bundle", out)
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("local:0", "local:N needs 1 <= N <= 256, not 'local:0'"),
        ("127.0.0.1:8786", "expected tcp://host:port or local:N, not '127.0.0.1:8786'"),
        ("tcp://127.0.0.1:99999", "expected tcp://host:port or local:N"),
    ],
)
def test_a_malformed_scheduler_is_refused_before_planning(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path: Path, spec: str, message: str
) -> None:
    out = tmp_path / "epoch"
    result = cli(*_args(tiny_epoch.prove_args, out), "--scheduler", spec)
    assert result.exit_code == 2, result.output
    assert "Invalid value for" in result.stderr and "--scheduler" in result.stderr
    assert message in result.stderr
    assert not out.exists()


def test_without_distributed_the_error_says_what_to_install(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    out = tmp_path / "epoch"
    result = cli(*_args(tiny_epoch.prove_args, out), "--scheduler", "local:2")
    assert result.exit_code == 2, result.output
    assert "pip install 'zksolvency[dask]'" in result.stderr
    assert not out.exists()


@pytest.mark.skipif(not native.available(), reason="groth16py is not installed")
def test_the_native_backend_on_the_cluster(
    cli: Callable[..., Result], tiny_epoch: Any, scheduler: str, tmp_path: Path
) -> None:
    out = _with_seed(tmp_path / "epoch", tiny_epoch.dir)
    args = _args(tiny_epoch.prove_args, out)
    result = cli(*args, "--backend", "native", "--scheduler", scheduler)
    assert result.exit_code == 0, result.output
    for public in sorted(tiny_epoch.dir.glob("proofs/*.public.json")):
        # the same signals; native writes its JSON with another indent than snarkjs
        ours = json.loads((out / "proofs" / public.name).read_text())
        assert ours == json.loads(public.read_text()), public.name
    assert not _leftovers(out)


@pytest.mark.skipif(not native.available(), reason="groth16py is not installed")
@pytest.mark.skipif(bool(witness_cpp.missing_tools()), reason="no C++ toolchain for circom --c")
def test_cpp_witnesses_on_the_cluster(
    cli: Callable[..., Result], tiny_epoch: Any, scheduler: str, tmp_path: Path
) -> None:
    """Workers run the job's C++ witness program (checked to start on each of them first)."""
    out = _with_seed(tmp_path / "epoch", tiny_epoch.dir)
    args = _args(tiny_epoch.prove_args, out)
    result = cli(*args, "--backend", "native", "--witness", "cpp", "--scheduler", scheduler)
    assert result.exit_code == 0, result.output
    for public in sorted(tiny_epoch.dir.glob("proofs/*.public.json")):
        ours = json.loads((out / "proofs" / public.name).read_text())
        assert ours == json.loads(public.read_text()), public.name
    assert not _leftovers(out)


def test_a_program_that_cannot_start_on_a_worker_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "calc"
    broken.write_text(
        "#!/bin/sh\necho 'error while loading shared libraries: libgmp.so.10' >&2\nexit 127\n"
    )
    broken.chmod(0o755)
    problems = cluster.check_worker([], [], "native", (str(broken), str(tmp_path / "absent")))
    assert problems[0] == (
        f"cannot run {broken}: exit status 127: error while loading shared libraries: libgmp.so.10"
    )
    assert problems[1].startswith(f"cannot run {tmp_path / 'absent'}: ")

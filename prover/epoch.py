"""Proving stage: snapshot in, epoch directory out (manifest, proofs, private user data).

Layout of an epoch directory:
  manifest.json                public: parameters, context, key hashes and vkeys, state chain,
                               root, totals, reserves, and the list of proofs with their hashes
  keys/{batch,solvency}.vkey.json
  proofs/batch_NNNNNN.{proof,public}.json, proofs/solvency.{proof,public}.json
  private/                     exchange only, never published: the epoch seed (salts and blinds
                               derive from it), the accounts' leaf data for inclusion packages,
                               and the run's fingerprint for resuming

Every write is atomic. A rerun with the same inputs skips proofs already made and checked.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import native, witness_cpp
from .atomic import atomic_path, read_json, sha256_file, sha256_json, write_bytes, write_json
from .commitments import UNBOUND_DOMAIN, describe_domain, registry_of
from .context import context_json
from .field import FieldArray
from .keys import Keys, KeySet, build_keys, build_margin_keys
from .params import EpochParams
from .paths import js_script, repo_root
from .progress import NullReporter, Reporter
from .reserves import render_reserves
from .snapshot import Snapshot, format_amount
from .toolchain import ToolError
from .witness import EpochPlan, MarginInputs, format_value, plan_epoch

FORMAT = "zksolvency-epoch/4"
#: Proving backends: snarkjs (the reference) and groth16py (prover/native.py).
BACKENDS = ("snarkjs", "native")


class EpochDirError(RuntimeError):
    """The output directory belongs to another run, or holds files that fail their checks."""


def _seed(out: Path) -> tuple[bytes, bool]:
    """The epoch's secret seed (salts, blinds, leaf order): the stored one, else a fresh one.

    Returns (seed, is_new); a new seed is written only once the snapshot has been planned.
    """
    stored = _stored_seed(out)
    return (stored, False) if stored is not None else (secrets.token_bytes(32), True)


def _stored_seed(out: Path) -> bytes | None:
    path = out / "private" / "seed"
    if not path.is_file():
        return None
    try:
        seed = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except ValueError:  # not hex, or not ASCII at all
        seed = b""
    if len(seed) != 32:
        # A damaged seed must not be replaced by a fresh one: every salt and blind derives from
        # it, so the epoch's proofs and inclusion data could not be reproduced.
        raise EpochDirError(
            f"{path} is not a 32-byte hex seed (corrupted?): restore it from a backup"
        )
    return seed


def _run_info(out: Path) -> dict[str, Any]:
    """private/run.json of an earlier run in `out` ({} if none): its fingerprint and start."""
    path = out / "private" / "run.json"
    if not path.is_file():
        return {}
    try:
        info = read_json(path)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("fingerprint"), str):
        raise EpochDirError(
            f"{path} is unreadable (corrupted?); delete it to prove into {out} again "
            "(the new manifest then gets a new created_at)"
        )
    return info


def _store_seed(out: Path, seed: bytes) -> None:
    path = out / "private" / "seed"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_bytes(path, seed.hex().encode())
    os.chmod(path, 0o600)


def _fingerprint(plan: EpochPlan, snapshot: Snapshot, keys: Keys) -> str:
    """What a resumed run must share with the one that started: the inputs and the keys.
    Accounts and positions are hashed a line at a time, never gathered into one document.
    Reserves and the domain are left out: only the solvency proof shows them, and it is made
    again when its public signals change (custody balances read again after they moved)."""
    params, epoch = plan.context.params, plan.context.epoch
    h = hashlib.sha256()
    for acc in snapshot.accounts:
        h.update(json.dumps([acc.id, list(acc.equity), list(acc.debt)]).encode() + b"\n")
    accounts_sha = h.hexdigest()
    h = hashlib.sha256()
    for q in plan.qty:
        h.update(json.dumps([str(x) for x in q]).encode() + b"\n")
    return sha256_json(
        {
            "ctx_hash": str(plan.context.ctx_hash),
            "insurance_fund": str(plan.context.inputs.insurance_fund),
            "positions_sha256": h.hexdigest(),
            "assets": [[a.symbol, a.decimals, a.price_e8] for a in snapshot.assets],
            "accounts_sha256": accounts_sha,
            "params": params.as_dict(),
            "epoch": epoch,
            "batch_zkey": keys.batch.zkey_sha256,
            "solvency_zkey": keys.solvency.zkey_sha256,
        }
    )


def _proof_paths(out: Path, name: str) -> tuple[Path, Path, Path]:
    d = out / "proofs"
    return d / f"{name}.proof.json", d / f"{name}.public.json", d / f"{name}.meta.json"


def _done(out: Path, name: str, input_sha: str, expected_public: list[int], rep: Reporter) -> bool:
    """A proof counts as done if its meta matches this input and its files match their hashes."""
    proof, public, meta = _proof_paths(out, name)
    if not meta.is_file():
        return False
    try:
        m = read_json(meta)
    except ValueError:  # a damaged meta (JSONDecodeError, UnicodeDecodeError)
        m = None
    if not isinstance(m, dict):
        rep.warn(f"{meta} is unreadable: proving {name} again")
        return False
    if m.get("input_sha256") != input_sha:
        return False
    # The hashes are checked before anything is parsed: a damaged file is reported as such,
    # never as a parse error (or, worse, a wrong type reaching int()).
    damaged = [
        str(path)
        for path, key in ((proof, "proof_sha256"), (public, "public_sha256"))
        if not path.is_file() or sha256_file(path) != m.get(key)
    ]
    if damaged:
        rep.warn(
            f"{' and '.join(damaged)} missing or not matching the hashes in {meta}: "
            f"proving {name} again"
        )
        return False
    return [int(x) for x in read_json(public)] == expected_public


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGKILL when this process dies (Linux).

    Without it a `kill -9` of the prover (or the OOM killer) leaves the Node driver running as
    an orphan that keeps writing proofs into the epoch directory while a resumed run writes
    the same files. The libc function is looked up here, in the parent: the child only calls it.

    Python warns that a preexec_fn is unsafe in a process with threads (a prove has its
    Poseidon pool; a Dask worker has its event loop): the forked child holds copies of locks
    other threads held at the fork, and code that takes one deadlocks. This function takes
    none: it makes one foreign call prepared beforehand and reads the parent's pid. The signal
    is tied to the thread that starts the child, so drivers are started by the thread that
    owns them for their whole life (the run's thread, or a Dask worker's thread).
    """
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os._exit(1)

    return preexec


#: Node's file errors, e.g. "ENOSPC: no space left on device, write" or
#: "EACCES: permission denied, open '/epoch/proofs/batch_000001.proof.json.123.tmp'".
_NODE_FS_ERROR = re.compile(r"\b(E[A-Z]+): [^,]*, \w+(?: '([^']*)')?")


def _node_os_error(error: str, where: str) -> OSError | None:
    """The OSError behind a Node file error (full disk, unwritable directory), if it is one.

    Such a failure is the output directory's fault, not the proof's: report it as the CLI
    reports Python's own OSErrors (exit 2, naming the file, else `where`), not as a failed tool.
    """
    m = _NODE_FS_ERROR.search(error)
    code = getattr(errno, m.group(1), None) if m else None
    if m is None or not isinstance(code, int):
        return None
    # name the file the job was writing, not Node's temporary name for it
    path = re.sub(r"\.\d+\.tmp$", "", m.group(2) or where)
    return OSError(code, os.strerror(code), path)


def _spawn_node(
    cmd: list[str], tmpdir: Path | None, lock_fd: int | None, stderr: Any
) -> subprocess.Popen[str]:
    """Start the Node driver: text pipes, witness files under `tmpdir`, the epoch lock
    inherited, and killed if the starting thread dies (`_die_with_parent`)."""
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir is not None else None
    return subprocess.Popen(
        cmd,
        cwd=repo_root(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        pass_fds=() if lock_fd is None else (lock_fd,),
        preexec_fn=_die_with_parent(),
    )


def run_jobs(
    jobs: list[dict[str, Any]],
    on_done: Callable[[dict[str, Any]], None],
    *,
    tmpdir: Path | None = None,
    lock_fd: int | None = None,
) -> None:
    """Feed jobs to the Node driver; call on_done(result line) as each finishes.

    `tmpdir` is where Node keeps witness files: they hold every private signal of a batch, so
    an epoch puts them under private/ (a resumed run deletes what a killed one left), not in
    /tmp. `lock_fd` is the epoch directory's lock, inherited so that it stays held until Node
    has exited too: no second prove can start while this one's driver may still write.
    """
    cmd = ["node", str(js_script("groth16.mjs"))]
    with _spawn_node(cmd, tmpdir, lock_fd, subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(json.dumps({"jobs": jobs}))
        proc.stdin.close()
        reported = 0
        try:
            for line in proc.stdout:
                try:
                    res = json.loads(line)
                except ValueError:
                    # Not a result: snarkjs logs some failures on stdout rather than throwing,
                    # then spins. Seen on a full disk while it writes a witness:
                    # "ERROR Writing: Error: ENOSPC: no space left on device, write".
                    where = tmpdir or Path(jobs[min(reported, len(jobs) - 1)]["proof_out"]).parent
                    os_error = _node_os_error(line, str(where))
                    if os_error is not None:
                        raise os_error from None
                    continue
                reported += 1
                if not res["ok"]:
                    raise _job_failure(cmd, jobs[res["i"]], res)
                on_done(res)
        except BaseException:
            # on_done failed (a full disk, say) or a job did: stop the driver now rather than
            # wait for it to finish a proof nobody will record (its writes are atomic)
            proc.kill()
            raise
        err = proc.stderr.read()
        if proc.wait() != 0:
            raise ToolError(cmd, proc.returncode, err)


def _job_failure(cmd: list[str], job: dict[str, Any], res: dict[str, Any]) -> Exception:
    """The exception for a driver's failed result line: a file error as an OSError (exit 2,
    naming the file), else a failed tool."""
    error = res.get("error", "verification failed")
    os_error = _node_os_error(error, str(job.get("proof_out", "")))
    if os_error is not None:
        return os_error
    return ToolError(cmd, 1, f"{job['kind']} {job.get('name', '')}: {error}")


class NodeDriver:
    """One long-lived Node driver (groth16.mjs --stream) fed a job at a time, so that a native
    run starts Node, the curve and the circuit's wasm once per worker rather than per chunk.

    Start it in the thread that will own it for its life (`_die_with_parent`), then one thread at a
    time may call `run`. Arguments as for `run_jobs`."""

    def __init__(self, *, tmpdir: Path | None = None, lock_fd: int | None = None) -> None:
        self.cmd = ["node", str(js_script("groth16.mjs")), "--stream"]
        # stderr to a file: a pipe nobody reads during a long run would fill and block Node.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._where = str(tmpdir or "")
        self._sent = 0  # jobs written: the driver numbers its result lines the same way
        self.broken = False  # killed after a failure that leaves its stream unusable
        try:
            self.proc = _spawn_node(self.cmd, tmpdir, lock_fd, self._stderr)
        except BaseException:
            self._stderr.close()
            raise

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run one job; its result line, or raise as `run_jobs` does for a failed one.

        A failed job whose result line arrived leaves the driver usable. Anything else (a file
        error snarkjs only logs, after which it spins; a result for another job; the process
        gone) kills it, and every later call raises."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.broken:
            raise ToolError(self.cmd, 1, "the Node driver was stopped after an earlier failure")
        i, self._sent = self._sent, self._sent + 1
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.broken = True
            raise self._died() from None
        while line := self.proc.stdout.readline():
            try:
                res = json.loads(line)
            except ValueError:  # a log line, or snarkjs reporting a failed write (run_jobs)
                os_error = _node_os_error(line, self._where)
                if os_error is not None:
                    self.kill()
                    raise os_error from None
                continue
            if res.get("i") != i:
                self.kill()
                raise ToolError(self.cmd, 1, f"result line {res.get('i')} came for job {i}")
            if not res["ok"]:
                raise _job_failure(self.cmd, job, res)
            return dict(res)
        self.broken = True
        raise self._died()

    def kill(self) -> None:
        """Stop the driver now (whatever it is doing); later calls to `run` raise."""
        self.broken = True
        with contextlib.suppress(OSError):
            self.proc.kill()

    def _died(self) -> ToolError:
        code = self.proc.wait()
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")
        return ToolError(self.cmd, code, err or "the Node driver exited")

    def close(self) -> None:
        """Stop the driver: EOF ends a healthy one; one still busy (after a failure) is killed."""
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> NodeDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.proc.kill()  # a job failed or we were interrupted: nothing more to finish
        self.close()


def prove_epoch(
    snapshot: Snapshot,
    reserves: tuple[int, ...],
    out: Path,
    *,
    epoch: int,
    params: EpochParams,
    ptau: Path | None = None,
    reporter: Reporter | None = None,
    stats: list[dict[str, Any]] | None = None,
    margin: MarginInputs | None = None,
    domain: int = UNBOUND_DOMAIN,
    backend: str = "snarkjs",
    scheduler: str | None = None,
    witness: str = "wasm",
    verified: tuple[int, ...] = (),
    custody: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Prove an epoch into `out` and return its manifest. Resumes an interrupted run.

    `reserves` are the declared reserves, `verified` those the registry will read from the
    custody addresses at finalize (onchain.read_verified_reserves; none when empty). `custody`
    (onchain.Custody.as_json, with the block the balances were read at) goes in the manifest,
    which publish submits to the registry before finalize.

    `backend` is "snarkjs" (the reference) or "native" (groth16py, prover/native.py; every proof
    still verified by snarkjs before it is kept). `scheduler`, if given, proves on that Dask
    cluster with the same backend (prover/cluster.py: tcp://host:port, or local:N). `witness`
    "cpp" computes the native backend's batch witnesses with circom's C++ generator
    (prover/witness_cpp.py: built once per instance) instead of the wasm calculator.

    `domain` (commitments.registry_domain) is the registry the solvency proof is made for; only
    that registry will accept it. Proving again with another domain redoes only the solvency
    proof. `stats`, if given, receives one record per proof made: name and witness/prove/verify
    seconds.
    """
    rep = reporter or NullReporter()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == native.NAME and not native.available():
        raise ToolError(
            ["groth16py"], 1, "the native backend needs groth16py: pip install 'zksolvency[native]'"
        )
    if witness not in witness_cpp.WITNESS_MODES:
        modes = ", ".join(witness_cpp.WITNESS_MODES)
        raise ValueError(f"witness must be one of {modes}, not {witness!r}")
    if witness == witness_cpp.NAME and backend != native.NAME:
        raise ValueError("the C++ witness generator serves the native backend (--backend native)")
    if witness == witness_cpp.NAME:
        witness_cpp.require_tools()  # before planning: a missing package costs nothing
    # The Node driver runs in the checkout (where its modules are), so every path handed to it
    # must be absolute: a relative --out would name a directory under the checkout.
    out = Path(os.path.abspath(out))
    # Plan first: a snapshot that cannot be proven stops here, before any key work and before
    # anything is written to `out`.
    seed, new_seed = _seed(out)
    rep.info(f"planning epoch {epoch}: {len(snapshot.accounts)} accounts")
    plan = plan_epoch(snapshot, params, epoch, reserves, seed, margin, domain, verified)
    plan.custody = custody
    rep.info(margin_summary(plan))
    rep.info(f"solvency proof bound to {describe_domain(domain)}")
    keys = build_keys(params, ptau, rep)
    # The margin circuit's key goes in the bundle, so that single-account proofs made later
    # are checked against a key the epoch itself pins.
    margin_keys = build_margin_keys(params, ptau, rep)
    # Only the batch circuit's: one solvency proof does not repay minutes of g++.
    witness_bin = (
        witness_cpp.build_witness_binary(keys.batch.build, rep)
        if witness == witness_cpp.NAME
        else None
    )
    fingerprint = _fingerprint(plan, snapshot, keys)
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out) as lock_fd:
        # The directory's state is read again under the lock: another prove may have stored
        # its seed and run.json here while this one was planning (the lock is only taken now,
        # so that an unprovable snapshot leaves nothing behind), and the plan holds only for
        # the seed it was made with.
        if _stored_seed(out) != (None if new_seed else seed):
            raise EpochDirError(
                f"another prove changed {out} while this one was planning; run it again"
            )
        run_info = _run_info(out)
        # A seed that changed under a run (damaged into other valid hex, or replaced) would
        # re-prove everything with new salts and rewrite the inclusion data of an epoch that
        # may be published. Checked before the fingerprint, which it also changes (the leaf
        # order derives from the seed), so that the message says what is wrong.
        seed_sha = hashlib.sha256(seed).hexdigest()
        if run_info.get("seed_sha256", seed_sha) != seed_sha:
            raise EpochDirError(
                f"{out / 'private' / 'seed'} is not the seed this run started with; restore "
                "the original (with another seed every proof and the inclusion data change)"
            )
        if run_info and run_info["fingerprint"] != fingerprint:
            raise EpochDirError(
                f"{out} holds a run with other inputs or keys; prove into a new directory"
            )
        if new_seed:
            _store_seed(out, seed)
        # A killed run can leave temporary files (never a half-written final one), inputs of
        # proofs it finished but had not yet deleted, and Node's witness files: clear them.
        for stale in out.rglob("*.tmp"):
            stale.unlink()
        inputs_dir = out / "private" / "inputs"
        for stale in inputs_dir.iterdir() if inputs_dir.is_dir() else ():
            stale.unlink()
        # Per-task witness folders of a distributed run whose workers were killed.
        shutil.rmtree(out / "private" / "dask", ignore_errors=True)
        return _prove_planned(
            out,
            plan,
            keys,
            margin_keys,
            fingerprint,
            run_info,
            seed_sha,
            lock_fd,
            rep,
            stats,
            backend,
            scheduler,
            witness_bin,
        )


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[int]:
    """One prove per epoch directory at a time; the OS drops the lock if the process dies.

    Yields the lock's file descriptor, for child processes that must hold the lock too.
    """
    (out / "private").mkdir(parents=True, exist_ok=True)
    with open(out / "private" / "lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EpochDirError(f"another prove is already running in {out}") from None
        yield fh.fileno()


def _prove_planned(
    out: Path,
    plan: EpochPlan,
    keys: Keys,
    margin_keys: KeySet,
    fingerprint: str,
    run_info: dict[str, Any],
    seed_sha: str,
    lock_fd: int,
    rep: Reporter,
    stats: list[dict[str, Any]] | None,
    backend: str,
    scheduler: str | None,
    witness_bin: Path | None,
) -> dict[str, Any]:
    fp_path = out / "private" / "run.json"
    epoch = plan.context.epoch
    # The creation time is fixed at the first run, so that a resumed or repeated run writes
    # a byte-identical manifest: its hash is the bundle hash registered on-chain.
    created_at = (
        run_info.get("created_at") or dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    )
    write_json(
        fp_path, {"fingerprint": fingerprint, "created_at": created_at, "seed_sha256": seed_sha}
    )
    _write_private(out, plan)

    inputs_dir = out / "private" / "inputs"
    jobs: list[dict[str, Any]] = []
    names = [f"batch_{k:06d}" for k in range(plan.n_batches)] + ["solvency"]
    pending: list[tuple[str, str, list[int]]] = []
    with _no_leftovers(out):
        for k, name in enumerate(names):
            # Built one at a time: only the inputs still to prove go to disk, none stay in memory.
            last = k == plan.n_batches
            inp = plan.solvency_input() if last else plan.batch_input(k)
            pub = plan.solvency_public() if last else plan.batch_public(k)
            input_sha = sha256_json(inp)
            if _done(out, name, input_sha, pub, rep):
                continue
            ks = keys.solvency if name == "solvency" else keys.batch
            ipath = inputs_dir / f"{name}.json"
            write_json(ipath, inp)
            proof, public, meta = _proof_paths(out, name)
            proof.parent.mkdir(parents=True, exist_ok=True)
            # A meta left from an earlier proof (now damaged, or of other inputs) goes before the
            # files are remade: a meta, where there is one, always matches its proof's files.
            meta.unlink(missing_ok=True)
            jobs.append(
                {
                    "kind": "prove",
                    "name": name,
                    "input": str(ipath),
                    "wasm": str(ks.build.wasm),
                    "zkey": str(ks.zkey),
                    "vkey": str(ks.build.dir / "keys" / "verification_key.json"),
                    "proof_out": str(proof),
                    "public_out": str(public),
                }
                | ({"witness_bin": str(witness_bin)} if witness_bin and not last else {})
            )
            pending.append((name, input_sha, pub))
        skipped = len(names) - len(jobs)
        if skipped:
            rep.info(f"resuming: {skipped} of {len(names)} proofs already done")
        if jobs:
            with rep.task("proving", len(jobs)) as advance:

                def finished(res: dict[str, Any]) -> None:
                    i = int(res["i"])
                    name, input_sha, pub = pending[i]
                    if stats is not None:
                        stats.append({"name": name, **{k: res[k] for k in res if k.endswith("_s")}})
                    _finish(out, name, input_sha, pub, proof_seconds(res))
                    os.unlink(jobs[i]["input"])  # private balances: keep no more copies than needed
                    advance(1)

                if scheduler is not None:
                    from . import cluster  # not at the top: cluster imports this module

                    cluster.run_jobs_dask(
                        jobs,
                        finished,
                        scheduler=scheduler,
                        backend=backend,
                        workdir=out / "private" / "dask",
                        reporter=rep,
                    )
                elif backend == native.NAME:
                    native.run_jobs_native(
                        jobs,
                        finished,
                        lambda: NodeDriver(tmpdir=inputs_dir, lock_fd=lock_fd),
                        tmpdir=inputs_dir,
                    )
                else:
                    run_jobs(jobs, finished, tmpdir=inputs_dir, lock_fd=lock_fd)

    manifest = _manifest(plan, keys, margin_keys, out, names, created_at)
    _write_keys(out, keys, margin_keys)
    write_json(out / "manifest.json", manifest)
    rep.info(f"epoch {epoch} proven: {plan.n_batches} batch proofs + 1 solvency proof in {out}")
    return manifest


@contextlib.contextmanager
def _no_leftovers(out: Path) -> Iterator[None]:
    """On a failure (a full disk, say), remove what proving leaves besides whole files: Node's
    temporary files and witnesses, and the private inputs (a rerun writes them again), so that
    no copy of private balances outlives the run. After a SIGKILL the next run clears them."""
    try:
        yield
    except BaseException:
        for stale in [*(out / "proofs").glob("*.tmp"), *(out / "private" / "inputs").glob("*")]:
            stale.unlink(missing_ok=True)
        raise


def proof_seconds(res: dict[str, Any]) -> float | None:
    """Wall seconds spent making one proof, from a backend's result line: the Node driver's
    `seconds` for the whole job (witness, prove, verify), else (native backend) the sum of its
    stage timings. Measured by the backend rather than here, because jobs overlap in a run."""
    if "seconds" in res:
        return round(float(res["seconds"]), 3)
    stages = [float(v) for k, v in res.items() if k.endswith("_s")]
    return round(sum(stages), 3) if stages else None


def _finish(
    out: Path, name: str, input_sha: str, expected: list[int], seconds: float | None
) -> None:
    proof, public, meta = _proof_paths(out, name)
    got = [int(x) for x in read_json(public)]
    if got != expected:
        raise EpochDirError(f"{name}: public signals {got} differ from the mirror's {expected}")
    # `seconds` is for reports only: resuming (_done) reads the hashes alone, and a proof that
    # is skipped keeps its meta file, so it keeps the seconds of the run that made it.
    write_json(
        meta,
        {
            "input_sha256": input_sha,
            "proof_sha256": sha256_file(proof),
            "public_sha256": sha256_file(public),
            "seconds": seconds,
        },
    )


def _write_keys(out: Path, keys: Keys, margin_keys: KeySet) -> None:
    write_json(out / "keys" / "batch.vkey.json", keys.batch.vkey)
    write_json(out / "keys" / "solvency.vkey.json", keys.solvency.vkey)
    write_json(out / "keys" / "margin.vkey.json", margin_keys.vkey)
    # The margin proving key is public: account owners prove their margin with it.
    target = out / "keys" / "margin.zkey"
    if not (target.is_file() and sha256_file(target) == margin_keys.zkey_sha256):
        write_bytes(target, margin_keys.zkey.read_bytes())


def _write_private(out: Path, plan: EpochPlan) -> None:
    """What inclusion packages need: per account its salt, balances and leaf index. Written a
    line at a time (atomically, as a whole file)."""
    with atomic_path(out / "private" / "accounts.jsonl") as tmp, open(tmp, "w") as fh:
        for i, (acc, salt) in enumerate(zip(plan.accounts, plan.salts, strict=True)):
            row = {
                "index": i,
                "id": acc.id,
                "salt": str(salt),
                "equity": [str(v) for v in acc.equity],
                "debt": [str(v) for v in acc.debt],
                "qty": [str(v) for v in plan.qty[i]],
            }
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    # The leaves in tree order, 32 bytes each: building every user's package then needs only the
    # tree's inner hashes, not the account hashes again (inclusion.rebuild_tree).
    leaves = plan.leaves if isinstance(plan.leaves, FieldArray) else FieldArray.of(plan.leaves)
    write_bytes(out / "private" / "leaves.bin", leaves.tobytes())
    # The headroom distribution is the exchange's own view: quantiles of a small epoch would
    # give single accounts away, so it stays private.
    write_json(out / "private" / "margin.json", margin_stats(plan))


def margin_stats(plan: EpochPlan) -> dict[str, Any]:
    """Aggregate margin figures for the exchange (written under private/: the quantiles of a
    small epoch would give single accounts away)."""
    # Ranked by float64 (exact in sign, and to a fraction of a cent at any real size), so that
    # 10^7 accounts need 80 MB rather than a sorted list of their exact values; each quantile
    # is then read back exactly.
    approx = np.fromiter((float(v) for v, _ in plan.headrooms), np.float64, len(plan.headrooms))
    ranked = np.argsort(approx, kind="stable")
    n = len(approx)

    def q(f: float) -> str:
        return format_value(plan.headrooms[int(ranked[min(n - 1, int(f * n))])][0]) if n else "0.00"

    return {
        "accounts": n,
        "with_positions": sum(1 for qty in plan.qty if any(qty)),
        "failing": int(np.count_nonzero(approx < 0)),
        "headroom_usd": {"p1": q(0.01), "p10": q(0.10), "p50": q(0.50), "p90": q(0.90)},
        "shortfall_usd": format_value(plan.shortfall),
        "insurance_fund_usd": format_value(plan.context.inputs.insurance_fund),
    }


def margin_summary(plan: EpochPlan) -> str:
    st = margin_stats(plan)
    h = st["headroom_usd"]
    return (
        f"margin ({'strict' if plan.context.margin.mode == 0 else 'shortfall'} mode): "
        f"{st['accounts']} accounts, {st['with_positions']} with positions, "
        f"{st['failing']} short; worst-scenario headroom p1 {h['p1']} / p10 {h['p10']} / "
        f"median {h['p50']} / p90 {h['p90']} USD; shortfall {st['shortfall_usd']} USD"
        + (f" (insurance fund {st['insurance_fund_usd']} USD)" if plan.shortfall else "")
    )


def _manifest(
    plan: EpochPlan,
    keys: Keys,
    margin_keys: KeySet,
    out: Path,
    names: list[str],
    created_at: str,
) -> dict[str, Any]:
    c = plan.context
    totals = plan.final_totals
    proofs = []
    for name in names:
        proof, public, _ = _proof_paths(out, name)
        proofs.append(
            {
                "name": name,
                "proof": str(proof.relative_to(out)),
                "public": str(public.relative_to(out)),
                "proof_sha256": sha256_file(proof),
                "public_signals": [str(x) for x in read_json(public)],
            }
        )
    dev = keys.batch.development or keys.solvency.development or margin_keys.development
    return {
        "format": FORMAT,
        "epoch": c.epoch,
        "created_at": created_at,
        "params": c.params.as_dict(),
        "context": context_json(plan),
        "accounts": len(plan.accounts),
        "batches": plan.n_batches,
        "root": str(plan.tree.root),
        "state_chain": [str(s) for s in plan.states],
        "totals_commit": str(plan.totals_commit()),
        "totals": {
            a.symbol: {
                "equity": format_amount(totals[2 * i], a.decimals),
                "debt": format_amount(totals[2 * i + 1], a.decimals),
                "net": format_amount(max(0, totals[2 * i] - totals[2 * i + 1]), a.decimals),
            }
            for i, a in enumerate(c.assets)
        },
        "totals_raw": [str(t) for t in totals],
        # verified: read on-chain by the registry at finalize; declared: what the chain cannot
        # see, shown apart and unverified. Raw values fill every asset slot of the circuit.
        "reserves": {
            "verified": render_reserves(c.assets, plan.verified),
            "declared": render_reserves(c.assets, plan.declared),
            "verified_only": plan.verified_only,
        },
        "reserves_raw": {
            "verified": [str(r) for r in plan.verified_slots],
            "declared": [str(r) for r in plan.declared_slots],
        },
        # the addresses (and ownership signatures) the verified reserves were read from
        "custody": plan.custody,
        "shortfall": str(plan.shortfall),
        "insurance_fund": str(c.inputs.insurance_fund),
        "domain": str(plan.domain),
        "registry": registry_of(plan.domain),
        "circuits": {
            "batch": {
                **keys.batch.manifest_entry(),
                "vkey": "keys/batch.vkey.json",
                "vkey_json": keys.batch.vkey,
            },
            "solvency": {
                **keys.solvency.manifest_entry(),
                "vkey": "keys/solvency.vkey.json",
                "vkey_json": keys.solvency.vkey,
            },
            # not used by the epoch's proofs: the key single-account margin proofs must use
            "margin": {
                **margin_keys.manifest_entry(),
                "vkey": "keys/margin.vkey.json",
                "zkey": "keys/margin.zkey",
                "vkey_json": margin_keys.vkey,
            },
        },
        "development_setup": dev,
        "proofs": {"batches": proofs[:-1], "solvency": proofs[-1]},
    }

"""The proving pipeline survives what happens to long runs on real machines.

- SIGKILL at any stage (planning, key loading, the witness and proof of each batch, solvency,
  the manifest), of the whole process group (a supervisor) or of the prover alone (`kill -9`,
  the OOM killer): rerunning the same command completes a bundle that verifies, whose public
  outputs equal those of an uninterrupted run with the same seed, and that keeps every proof
  finished before a kill.
- An unwritable output directory or a full disk: an error naming the file, exit code 2, and only
  whole, hash-consistent files left; once the problem is gone, a rerun completes.
- Damaged files: a proof or public file (found by its hash and proven again), the manifest
  (refused by verify-bundle, restored byte for byte by a rerun), the cached zkey (not used; a
  ceremony key is refused), leftovers in private/inputs (removed), the seed and run.json.

The reference run is the session's tiny epoch. Everything else runs against a private copy of
its circuits and keys (ZKSOLVENCY_BUILD), so that concurrent key builds in build/ cannot change
the keys under these tests, and damaging a key never touches the shared one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

PROOFS = ("batch_000000", "batch_000001", "batch_000002", "solvency")


# --- the rig: reference epoch, private build folder, commands ------------------------------------


@dataclass(frozen=True)
class Rig:
    reference: Path  # the uninterrupted run (the session's tiny epoch): read only
    build: Path  # private copy of its circuits and keys
    args: tuple[str, ...]  # the reference's `prove` arguments (each test picks its --out)
    env: dict[str, str]  # for subprocesses: the private build, and a TMPDIR watched for leaks
    systmp: Path

    def prove_args(self, out: Path) -> list[str]:
        args = list(self.args)
        args[args.index("--out") + 1] = str(out)
        return args

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "zksolvency.cli.main", *args]

    def fresh(self, out: Path) -> Path:
        """An empty epoch directory holding only the reference's seed: both runs use one."""
        (out / "private").mkdir(parents=True)
        shutil.copy2(self.reference / "private" / "seed", out / "private" / "seed")
        return out

    def copy(self, out: Path, *, drop: tuple[str, ...] = (), manifest: bool = True) -> Path:
        """A copy of the finished reference, or of what a run stopped before the end leaves:
        without the proofs in `drop`, and then (or if not `manifest`) without the manifest."""
        shutil.copytree(self.reference, out)
        for name in drop:
            for kind in ("proof", "public", "meta"):
                (out / "proofs" / f"{name}.{kind}.json").unlink()
        if drop or not manifest:
            (out / "manifest.json").unlink()
        return out


def copy_build(reference: Path, dest: Path) -> Path:
    """Copy the reference's three circuits (sources, wasm, keys) from the shared build folder,
    checking that they are the keys the reference was proven with."""
    from zksolvency.prover.paths import build_dir

    manifest = json.loads((reference / "manifest.json").read_text())
    for kind in ("batch", "solvency", "margin"):
        entry = manifest["circuits"][kind]
        src = build_dir() / "circuits" / entry["circuit"]
        copy = shutil.copytree(src, dest / "circuits" / entry["circuit"])
        stamp = json.loads((copy / "keys" / "keys.json").read_text())
        if stamp["zkey_sha256"] != entry["zkey_sha256"]:
            pytest.fail(f"{src}: keys changed since the tiny epoch was proven (rebuilt meanwhile?)")
    return dest


@pytest.fixture(scope="module")
def rig(tiny_epoch: Any, tmp_path_factory: pytest.TempPathFactory) -> Rig:
    root = tmp_path_factory.mktemp("robust")
    build = copy_build(tiny_epoch.dir, root / "build")
    systmp = root / "systmp"
    systmp.mkdir()
    env = {**os.environ, "ZKSOLVENCY_BUILD": str(build), "TMPDIR": str(systmp)}
    return Rig(tiny_epoch.dir, build, tuple(tiny_epoch.prove_args), env, systmp)


@pytest.fixture
def in_process(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `zksolvency` in this process (for injected faults), against the private build."""
    from zksolvency.cli.main import main

    monkeypatch.setenv("ZKSOLVENCY_BUILD", str(rig.build))
    return lambda *args: CliRunner().invoke(main, [str(a) for a in args])


def verify_bundle(rig: Rig, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rig.command("verify-bundle", str(out)),
        env=rig.env,
        capture_output=True,
        text=True,
        check=False,
    )


# --- what a directory must look like ------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_whole(out: Path, reference: Path, *, after_kill: bool = False) -> None:
    """Every file in `out` is whole: JSON parses, metas and the manifest match the files they
    hash. Temporary files (ours, Node's, witnesses) may only remain after a kill."""
    ref = json.loads((reference / "manifest.json").read_text())
    for f in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = f.relative_to(out)
        if f.name.endswith(".tmp") or f.suffix == ".wtns":
            assert after_kill, f"{rel}: temporary file left behind"
            continue
        if rel.parts[:2] == ("private", "inputs"):
            assert after_kill, f"{rel}: private input left behind"
        if f.suffix == ".json":
            try:
                json.loads(f.read_text())
            except ValueError as exc:
                pytest.fail(f"{rel}: not whole JSON ({exc})")
        elif f.name == "accounts.jsonl":
            text = f.read_text()
            assert text.endswith("\n") and len(text.splitlines()) == ref["accounts"], rel
            for line in text.splitlines():
                json.loads(line)
        elif f.name == "seed":
            assert re.fullmatch(r"[0-9a-f]{64}", f.read_text()), rel
        elif f.name == "margin.zkey":
            assert sha256(f) == ref["circuits"]["margin"]["zkey_sha256"], rel
    for meta in sorted((out / "proofs").glob("*.meta.json")):
        m = json.loads(meta.read_text())
        name = meta.name.removesuffix(".meta.json")
        for kind in ("proof", "public"):
            path = out / "proofs" / f"{name}.{kind}.json"
            assert path.is_file() and sha256(path) == m[f"{kind}_sha256"], (
                f"{meta.name} does not match {path.name}"
            )
    if (out / "manifest.json").exists():
        m = json.loads((out / "manifest.json").read_text())
        for entry in [*m["proofs"]["batches"], m["proofs"]["solvency"]]:
            assert sha256(out / entry["proof"]) == entry["proof_sha256"], entry["proof"]
            assert json.loads((out / entry["public"]).read_text()) == entry["public_signals"]


def assert_same_outputs(out: Path, reference: Path) -> None:
    """The public outputs of `out` equal the reference's.

    A proof is randomised (Groth16's r and s), so two runs agree on everything but the proofs'
    bytes, hence their sha256 in the manifest, and the manifest's created_at (the time of each
    run's first attempt). With those replaced by the reference's, the manifest is byte-identical.
    """
    mine = json.loads((out / "manifest.json").read_text())
    ref = json.loads((reference / "manifest.json").read_text())
    for key in ("root", "state_chain", "totals_commit", "totals_raw", "reserves_raw"):
        assert mine[key] == ref[key], key
    assert mine["context"]["ctx_hash"] == ref["context"]["ctx_hash"]
    text = (out / "manifest.json").read_text()
    text = text.replace(json.dumps(mine["created_at"]), json.dumps(ref["created_at"]), 1)
    pairs = zip(
        [*mine["proofs"]["batches"], mine["proofs"]["solvency"]],
        [*ref["proofs"]["batches"], ref["proofs"]["solvency"]],
        strict=True,
    )
    for a, b in pairs:
        assert a["public_signals"] == b["public_signals"], a["name"]
        assert (out / a["public"]).read_bytes() == (reference / b["public"]).read_bytes()
        text = text.replace(a["proof_sha256"], b["proof_sha256"])
    assert text == (reference / "manifest.json").read_text(), "manifests differ"
    assert (out / "private" / "accounts.jsonl").read_bytes() == (
        reference / "private" / "accounts.jsonl"
    ).read_bytes()


def finished_proofs(out: Path) -> dict[str, bytes]:
    """Proof files whose meta is written: a resume must keep them byte for byte."""
    kept = {}
    for meta in (out / "proofs").glob("*.meta.json"):
        name = meta.name.removesuffix(".meta.json")
        for suffix in ("proof.json", "public.json", "meta.json"):
            path = out / "proofs" / f"{name}.{suffix}"
            kept[path.name] = path.read_bytes()
    return kept


def flip_digit(path: Path, after: str = "") -> None:
    """Damage one byte: a digit in the middle of the first number (of 4 digits or more) after
    `after` becomes another one (XOR 1 keeps a digit a digit). The numbers are JSON strings, so
    the file still parses and only a hash or a check of what the number means can tell."""
    data = bytearray(path.read_bytes())
    start = data.index(after.encode()) if after else 0
    m = re.compile(rb"[0-9]{4,}").search(bytes(data), start)
    assert m is not None, f"no number in {path} after {after!r}"
    data[(m.start() + m.end()) // 2] ^= 1
    path.write_bytes(bytes(data))


def flip_hex(path: Path, key: str) -> None:
    """Damage the first character of the hex string value of `key`."""
    data = bytearray(path.read_bytes())
    m = re.compile(rf'"{key}": "([0-9a-f])'.encode()).search(bytes(data))
    assert m is not None, f"no {key} in {path}"
    data[m.start(1)] = ord("1") if data[m.start(1)] == ord("0") else ord("0")
    path.write_bytes(bytes(data))


# --- killing a run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """SIGKILL `delay` seconds after a stderr line containing `trigger`; `group` kills the
    whole process group (prover and its Node driver), otherwise the prover alone."""

    stage: str
    trigger: str
    delay: float
    group: bool

    def __str__(self) -> str:
        who = "process group" if self.group else "prover alone"
        return f"{self.stage}: {self.delay:.2f}s after {self.trigger!r} ({who})"


@dataclass
class Attempt:
    returncode: int
    killed: bool
    stderr: list[str] = field(default_factory=list)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has closed its files already


def wait_unlocked(out: Path, timeout: float = 20.0) -> None:
    """Wait until no process holds the epoch directory's lock (the killed run is all gone)."""
    lock = out / "private" / "lock"
    if not lock.exists():
        return
    deadline = time.monotonic() + timeout
    with open(lock, "a") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{lock} still held after the kill"
                time.sleep(0.05)


def run_prove(rig: Rig, out: Path, kill: KillPoint | None, timeout: float = 300) -> Attempt:
    """One `zksolvency prove` attempt, killed at `kill` (if the run gets that far)."""
    proc = subprocess.Popen(
        rig.command(*rig.prove_args(out)),
        env=rig.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    lines: list[str] = []
    fired = threading.Event()

    def read() -> None:
        for line in stderr:
            lines.append(line)
            if kill is not None and kill.trigger in line:
                fired.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed = False
    deadline = time.monotonic() + timeout
    if kill is not None:
        while not fired.wait(0.01) and proc.poll() is None:
            assert time.monotonic() < deadline, "prove hung"
        if fired.is_set():
            time.sleep(kill.delay)
            if proc.poll() is None:
                children = [] if kill.group else _children(proc.pid)
                if kill.group:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    os.kill(proc.pid, signal.SIGKILL)
                killed = True
                proc.wait()
                # The Node driver must not outlive the prover: it would go on writing proofs
                # into the directory while the rerun writes the same files.
                t0 = time.monotonic()
                while any(_alive(c) for c in children) and time.monotonic() - t0 < 2:
                    time.sleep(0.02)
                survivors = [c for c in children if _alive(c)]
                assert not survivors, f"children {survivors} outlived the killed prover"
    proc.wait(max(1.0, deadline - time.monotonic()))
    reader.join(10)
    if killed:
        wait_unlocked(out)
    return Attempt(proc.returncode, killed, lines)


def kill_and_resume(rig: Rig, out: Path, points: list[KillPoint]) -> list[Attempt]:
    """Attempts killed at `points` in turn (until one completes first), then a rerun to the
    end; checks the directory after every kill, and that finished proofs are never redone."""
    attempts: list[Attempt] = []
    kept: dict[str, bytes] = {}
    created: set[str] = set()
    for point in points:
        attempt = run_prove(rig, out, point)
        attempts.append(attempt)
        print(f"  kill at {point}: {'killed' if attempt.killed else 'missed, run completed'}")
        assert attempt.killed or attempt.returncode == 0, "".join(attempt.stderr)
        assert_whole(out, rig.reference, after_kill=attempt.killed)
        now = finished_proofs(out)
        assert {k: now[k] for k in kept} == kept, "a finished proof was redone or lost"
        kept = now
        if (out / "private" / "run.json").exists():
            created.add(json.loads((out / "private" / "run.json").read_text())["created_at"])
        if not attempt.killed:
            break
    final = run_prove(rig, out, None)
    attempts.append(final)
    assert final.returncode == 0, "".join(final.stderr)
    assert {k: v for k, v in finished_proofs(out).items() if k in kept} == kept
    assert_whole(out, rig.reference)
    manifest = json.loads((out / "manifest.json").read_text())
    assert created <= {manifest["created_at"]}, "created_at changed between attempts"
    assert_same_outputs(out, rig.reference)
    check = verify_bundle(rig, out)
    assert check.returncode == 0, check.stderr
    assert not list(rig.systmp.iterdir()), "a witness or other file leaked into TMPDIR"
    return attempts


#: The default run's kill points, one attempt each, in one directory: key loading (nothing
#: written yet), the middle of batch 1's witness and proof with the prover killed alone (its
#: Node driver must die too), and the manifest stage, every proof made.
KILL_POINTS = [
    KillPoint("key loading", "keys come from an INSECURE", 0.0, group=False),
    KillPoint("witness/prove of batch 1", "proving: 1/", 1.5, group=False),
    KillPoint("manifest", "proving: done", 0.0, group=True),
]


def test_killed_at_each_stage_resumes_to_the_same_bundle(rig: Rig, tmp_path: Path) -> None:
    out = rig.fresh(tmp_path / "epoch")
    attempts = kill_and_resume(rig, out, KILL_POINTS)
    assert [a.killed for a in attempts] == [True, True, True, False]
    # every proof was made before the last kill: the rerun only writes the manifest
    assert any("resuming: 4 of 4 proofs already done" in line for line in attempts[-1].stderr)
    # and a further rerun writes it again byte for byte (its hash is the on-chain bundle hash)
    before = (out / "manifest.json").read_bytes()
    again = run_prove(rig, out, None)
    assert again.returncode == 0, "".join(again.stderr)
    assert (out / "manifest.json").read_bytes() == before


#: Where random kill points fall: (stage, trigger, longest delay). "proving: k/" is the k-th
#: proof finished in that attempt, so the delay lands in the next one's witness or proof.
STAGES = [
    ("planning", "planning epoch", 0.3),
    ("key loading", "keys come from an INSECURE", 0.2),
    ("first proof of the attempt", "keys come from an INSECURE", 6.0),
    ("next proof", "proving: 1/", 4.5),
    ("next proof", "proving: 2/", 4.5),
    ("next proof", "proving: 3/", 4.5),
    ("manifest", "proving: done", 0.1),
]


def random_kills(rig: Rig, tmp_path: Path, wanted: int) -> None:
    """SIGKILL prove at `wanted` random points (each one a kill that landed), in episodes of up
    to four kills in one directory, each episode resumed to the end and checked. The seed is
    printed; CI uses a fixed one so that a red run replays exactly."""
    env_seed = os.environ.get("ZKSOLVENCY_KILL_SEED")
    seed = (
        int(env_seed) if env_seed else 20261207 if os.environ.get("CI") else random.randrange(2**32)
    )
    print(f"kill points from seed {seed} (rerun them with ZKSOLVENCY_KILL_SEED={seed})")
    rng = random.Random(seed)
    kills = episode = 0
    stages: set[str] = set()
    while kills < wanted:
        episode += 1
        assert episode <= 3 * wanted, f"only {kills} of {wanted} kill points landed"
        points = []
        for _ in range(min(4, wanted - kills)):
            stage, trigger, longest = rng.choice(STAGES)
            points.append(KillPoint(stage, trigger, rng.uniform(0, longest), rng.random() < 0.5))
        print(f"episode {episode}:")
        attempts = kill_and_resume(rig, rig.fresh(tmp_path / f"epoch{episode}"), points)
        landed = [p for p, a in zip(points, attempts, strict=False) if a.killed]
        kills += len(landed)
        stages.update(p.stage for p in landed)
    print(f"{kills} kills in {episode} episodes, at stages {sorted(stages)}")
    assert len(stages) >= 3, f"the kills landed in too few stages: {sorted(stages)}"


def test_killed_at_20_random_points_resumes_to_the_same_bundle(rig: Rig, tmp_path: Path) -> None:
    random_kills(rig, tmp_path, 20)


@pytest.mark.slow
def test_killed_at_many_random_points_resumes_to_the_same_bundle(rig: Rig, tmp_path: Path) -> None:
    random_kills(rig, tmp_path, 80)


# --- unwritable directories, full disks ---------------------------------------------------------


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    mode = path.stat().st_mode
    path.chmod(0o500)
    try:
        if os.access(path, os.W_OK):
            pytest.skip(
                "permissions do not bind this user (root): cannot make a folder unwritable; "
                "run under `setpriv --bounding-set -dac_override,-dac_read_search` to test"
            )
        yield
    finally:
        path.chmod(mode)


def test_unwritable_output_directory(rig: Rig, in_process: Any, tmp_path: Path) -> None:
    # a new epoch under a folder this user cannot write: refused before anything is made
    parent = tmp_path / "locked"
    parent.mkdir()
    with read_only(parent):
        result = in_process(*rig.prove_args(parent / "epoch"))
        assert result.exit_code == 2, result.output
        assert f"error: {parent / 'epoch'}: Permission denied" in result.stderr
    assert not (parent / "epoch").exists()

    # a half-done epoch whose private/ or proofs/ became read-only: the error names the file,
    # what is there stays whole, and a rerun once writable completes
    out = rig.copy(tmp_path / "epoch", drop=("solvency",))
    with read_only(out / "private"):
        result = in_process(*rig.prove_args(out))
    assert result.exit_code == 2, result.output
    assert f"error: {out / 'private' / 'run.json'}: Permission denied" in result.stderr
    assert_whole(out, rig.reference)
    with read_only(out / "proofs"):
        result = in_process(*rig.prove_args(out))  # the Node driver cannot write the proof
    assert result.exit_code == 2, result.output
    assert f"error: {out / 'proofs' / 'solvency.proof.json'}: Permission denied" in result.stderr
    assert_whole(out, rig.reference)
    result = in_process(*rig.prove_args(out))
    assert result.exit_code == 0, result.output
    assert_whole(out, rig.reference)
    assert_same_outputs(out, rig.reference)


class _FullDisk:
    """Stands in for `os` in prover.atomic: the fsync of the write to a file named `fail_on`
    finds the disk full, with half the data written (as write() or a delayed allocation would
    fail); every other call goes to the real `os`."""

    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on
        self.writes: list[str] = []
        self.failed: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def fsync(self, fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")  # the temporary file beside the target
        name = Path(target).name.removeprefix(".").rsplit(".", 2)[0]
        self.writes.append(name)
        if self.failed is None and name == self.fail_on:
            self.failed = name
            os.truncate(target, os.fstat(fd).st_size // 2)  # fd is open read-only
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)


@pytest.mark.parametrize(
    ("target", "drop"),
    [
        ("private/run.json", ()),
        ("proofs/batch_000002.meta.json", ("batch_000002", "solvency")),
        ("manifest.json", ()),
    ],
    ids=["before-proving", "between-proofs", "manifest"],
)
def test_full_disk(
    rig: Rig, in_process: Any, tmp_path: Path, target: str, drop: tuple[str, ...]
) -> None:
    """The disk fills up at a write before proving, between two proofs (the one under way is
    abandoned), or at the manifest: exit 2 naming the file, that file still the old one (or
    absent), the rest whole; a rerun with room on the disk completes."""
    from zksolvency.prover import atomic

    out = rig.copy(tmp_path / "epoch", drop=drop, manifest=False)
    path = out / target
    old = path.read_bytes() if path.exists() else None
    disk = _FullDisk(path.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(atomic, "os", disk)
        result = in_process(*rig.prove_args(out))
    print(f"writes until the disk was full: {disk.writes}")
    assert disk.failed == path.name, f"{target} was never written: {disk.writes}"
    assert result.exit_code == 2, result.output
    assert f"error: {path}: No space left on device" in result.stderr
    assert_whole(out, rig.reference)
    assert (path.read_bytes() if path.exists() else None) == old

    result = in_process(*rig.prove_args(out))
    assert result.exit_code == 0, result.output
    assert_whole(out, rig.reference)
    assert_same_outputs(out, rig.reference)


def test_full_disk_while_the_driver_writes_a_witness(
    rig: Rig, in_process: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snarkjs does not throw when the disk fills while it writes a witness: it logs
    "ERROR Writing: Error: ENOSPC: ..." on stdout, among the driver's result lines, and spins
    (seen on a full tmpfs; the slow test below fills one). A stand-in driver does the same:
    the prover must stop it and report the full disk, not crash on the line or wait."""
    from zksolvency.prover import epoch

    driver = tmp_path / "groth16.mjs"
    driver.write_text(
        'process.stdout.write("ERROR Writing: Error: ENOSPC: no space left on device, write\\n");\n'
        "setTimeout(() => process.exit(0), 60000);\n"
    )
    monkeypatch.setattr(epoch, "js_script", lambda name: driver)
    out = rig.copy(tmp_path / "epoch", drop=("solvency",))
    start = time.monotonic()
    result = in_process(*rig.prove_args(out))
    assert time.monotonic() - start < 30, "the prover waited for the stuck driver"
    assert result.exit_code == 2, result.output
    assert f"error: {out / 'private' / 'inputs'}: No space left on device" in result.stderr
    assert_whole(out, rig.reference)


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path`, where this process may mount one (root)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)  # detach it at least


@pytest.mark.slow
def test_disk_fills_up_while_proving(rig: Rig, tmp_path: Path) -> None:
    """A real full disk: a tmpfs fills up once the run has written its inputs, so that the
    Node driver's witness or proof, or the prover's meta, finds no room."""
    with small_disk(tmp_path / "disk", "8m") as disk:
        out = rig.copy(disk / "epoch", drop=("batch_000002", "solvency"))
        with subprocess.Popen(
            rig.command(*rig.prove_args(out)),
            env=rig.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as proc:
            try:
                inputs = out / "private" / "inputs" / "solvency.json"
                while not inputs.exists() and proc.poll() is None:
                    time.sleep(0.005)
                ballast = disk / "ballast"
                with contextlib.suppress(OSError), open(ballast, "wb", buffering=0) as fh:
                    while True:
                        fh.write(b"\0" * 4096)
                _, stderr = proc.communicate(timeout=300)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 2, stderr
        print(stderr.splitlines()[-1])
        assert re.search(rf"error: {re.escape(str(out))}\S*: No space left on device", stderr)
        assert_whole(out, rig.reference)
        ballast.unlink()
        rerun = subprocess.run(
            rig.command(*rig.prove_args(out)), env=rig.env, capture_output=True, text=True
        )
        assert rerun.returncode == 0, rerun.stderr
        assert_whole(out, rig.reference)
        assert_same_outputs(out, rig.reference)


# --- damaged files -----------------------------------------------------------------------------


def test_damaged_proof_files_and_leftover_inputs_on_resume(
    rig: Rig, in_process: Any, tmp_path: Path
) -> None:
    """(a) a proof file and a public file of finished proofs, one digit changed (still JSON, so
    only the hashes in their meta tell): found and proven again, the others kept.
    (d) private/inputs left with a damaged input, the input of a finished proof and a witness,
    and a Node temporary in proofs/: removed, and never used."""
    out = rig.copy(tmp_path / "epoch")
    flip_digit(out / "proofs" / "batch_000001.proof.json")
    flip_digit(out / "proofs" / "solvency.public.json")
    inputs = out / "private" / "inputs"
    inputs.mkdir(exist_ok=True)
    (inputs / "batch_000001.json").write_text('{"ctx_hash": "12')  # cut short by a kill
    (inputs / "batch_000002.json").write_text("{}\n")  # of a proof finished before the kill
    (inputs / "zksolvency-123-456.wtns").write_bytes(b"wtns\x02\x00")
    (out / "proofs" / "batch_000002.proof.json.123.tmp").write_text('{"pi_a": [')
    kept = {n: (out / "proofs" / f"{n}.proof.json").read_bytes() for n in PROOFS[::2]}

    result = in_process(*rig.prove_args(out))
    assert result.exit_code == 0, result.output
    for damaged in ("batch_000001.proof.json", "solvency.public.json"):
        path = re.escape(str(out / "proofs" / damaged))
        assert re.search(rf"{path} missing or not matching .*: proving \w+ again", result.stderr)
    assert "resuming: 2 of 4 proofs already done" in result.stderr
    for name, data in kept.items():
        assert (out / "proofs" / f"{name}.proof.json").read_bytes() == data
    assert not list(inputs.iterdir())
    assert_whole(out, rig.reference)
    assert_same_outputs(out, rig.reference)
    check = in_process("verify-bundle", out)
    assert check.exit_code == 0, check.output


#: (b) Damage to the manifest, each caught by verify-bundle: (what, how, exit code).
MANIFEST_DAMAGE: list[tuple[str, Callable[[Path], object], int]] = [
    ("root", lambda p: flip_digit(p, '"root"'), 1),
    ("state chain", lambda p: flip_digit(p, '"state_chain"'), 1),
    ("totals", lambda p: flip_digit(p, '"totals_raw"'), 1),
    ("reserves", lambda p: flip_digit(p, '"reserves_raw"'), 1),
    ("context", lambda p: flip_digit(p, '"ctx_hash"'), 1),
    ("batch vkey", lambda p: flip_digit(p, '"vkey_json"'), 1),
    ("a public signal", lambda p: flip_digit(p, '"public_signals"'), 1),
    ("a proof hash", lambda p: flip_hex(p, "proof_sha256"), 1),
    ("cut short", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), 2),
    ("not JSON", lambda p: p.write_bytes(b"\x00" + p.read_bytes()[1:]), 2),
]


def test_damaged_manifest_is_refused_and_a_rerun_restores_it(
    rig: Rig, in_process: Any, tmp_path: Path
) -> None:
    out = rig.copy(tmp_path / "epoch")
    manifest = out / "manifest.json"
    original = manifest.read_bytes()
    for what, damage, code in MANIFEST_DAMAGE:
        manifest.write_bytes(original)
        damage(manifest)
        assert manifest.read_bytes() != original, what
        result = in_process("verify-bundle", out)
        assert result.exit_code == code, f"{what}: {result.output}"
        assert "error:" in result.stderr and "OK:" not in result.stdout, what
    # the proofs are all there: a rerun writes the manifest again, byte for byte
    result = in_process(*rig.prove_args(out))
    assert result.exit_code == 0, result.output
    assert manifest.read_bytes() == original


@pytest.fixture
def own_build(rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build folder of this test's own, safe to damage."""
    build = copy_build(rig.reference, tmp_path / "build")
    monkeypatch.setenv("ZKSOLVENCY_BUILD", str(build))
    return build


def _batch_key(build: Path, rig: Rig) -> tuple[Path, Path]:
    name = json.loads((rig.reference / "manifest.json").read_text())["circuits"]["batch"]
    keys = build / "circuits" / name["circuit"] / "keys"
    return keys / f"{name['circuit']}.zkey", keys / "keys.json"


def test_damaged_cached_zkey_is_not_used(rig: Rig, own_build: Path, tmp_path: Path) -> None:
    """(c) A cached proving key that no longer matches the sha256 in its stamp is never handed
    to the prover: the reporter says which file, and the caller makes new development keys
    (see the slow test) or refuses to replace ceremony keys, before anything is written."""
    from zksolvency.cli.main import main
    from zksolvency.prover.keys import cached_keys, compile_circuit
    from zksolvency.prover.params import EpochParams

    zkey, stamp_path = _batch_key(own_build, rig)
    data = bytearray(zkey.read_bytes())
    data[len(data) // 2] ^= 0x40
    zkey.write_bytes(bytes(data))

    warnings: list[str] = []

    class Recorder:
        def info(self, msg: str) -> None:
            pass

        def warn(self, msg: str) -> None:
            warnings.append(msg)

        def task(self, label: str, total: int) -> Any:
            return contextlib.nullcontext(lambda n: None)

    params = EpochParams(**json.loads((rig.reference / "manifest.json").read_text())["params"])
    assert cached_keys(compile_circuit(params.batch_spec()), None, Recorder()) is None
    assert warnings == [f"{zkey} no longer matches the sha256 in {stamp_path} (damaged?); not used"]

    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**stamp, "development": False}))  # a ceremony key
    out = tmp_path / "epoch"
    result = CliRunner().invoke(main, rig.prove_args(out))
    assert result.exit_code == 2, result.output
    assert f"{zkey} no longer matches the sha256" in result.stderr
    assert "holds ceremony keys that no longer match" in result.stderr
    assert not out.exists()
    assert zkey.read_bytes() == bytes(data)  # left alone for the operator to look at


@pytest.mark.slow
def test_damaged_development_zkey_is_rebuilt(rig: Rig, own_build: Path, tmp_path: Path) -> None:
    """(c) A damaged development key is set up again, and the epoch proven with the new one."""
    from zksolvency.cli.main import main

    zkey, stamp_path = _batch_key(own_build, rig)
    data = bytearray(zkey.read_bytes())
    data[len(data) // 2] ^= 0x40
    zkey.write_bytes(bytes(data))
    out = rig.fresh(tmp_path / "epoch")
    result = CliRunner().invoke(main, rig.prove_args(out))
    assert result.exit_code == 0, result.output
    assert f"{zkey} no longer matches the sha256" in result.stderr
    assert "Groth16 setup for batch" in result.stderr
    stamp = json.loads(stamp_path.read_text())
    assert stamp["zkey_sha256"] == sha256(zkey)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["circuits"]["batch"]["zkey_sha256"] == stamp["zkey_sha256"]
    assert verify_bundle(rig, out).returncode == 0


def flip_byte(path: Path, new: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 1] = new
    path.write_bytes(bytes(data))


#: Damage to the run's private state: how, and what the refusal says.
PRIVATE_DAMAGE = [
    pytest.param(
        lambda out: flip_byte(out / "private" / "seed", b"g"),
        "is not a 32-byte hex seed",
        id="seed-not-hex",
    ),
    pytest.param(
        lambda out: (out / "private" / "seed").write_text(os.urandom(32).hex()),
        "is not the seed this run started with",
        id="seed-replaced",
    ),
    pytest.param(
        lambda out: flip_byte(out / "private" / "run.json", b"\x00"),
        "run.json is unreadable",
        id="run-json-damaged",
    ),
]


@pytest.mark.parametrize(("damage", "message"), PRIVATE_DAMAGE)
def test_damaged_private_state_is_refused(
    rig: Rig,
    in_process: Any,
    tmp_path: Path,
    damage: Callable[[Path], Any],
    message: str,
) -> None:
    """A damaged seed must not be replaced (every salt derives from it), nor a replaced one
    silently re-prove a finished epoch with other salts; an unreadable run.json is reported."""
    out = rig.copy(tmp_path / "epoch")
    damage(out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = in_process(*rig.prove_args(out))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before, "the directory was changed"


def test_a_seed_stored_while_planning_is_not_overwritten(
    rig: Rig, in_process: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two proves started on one new directory: the one that takes the lock second must not
    overwrite the seed the first stored while it was planning (and re-prove with its own)."""
    from zksolvency.prover import epoch
    from zksolvency.prover.witness import plan_epoch

    out = tmp_path / "epoch"

    def plan_while_another_run_stores_its_seed(*args: Any, **kwargs: Any) -> Any:
        plan = plan_epoch(*args, **kwargs)
        rig.fresh(out)  # the other run's seed (the reference's)
        return plan

    monkeypatch.setattr(epoch, "plan_epoch", plan_while_another_run_stores_its_seed)
    result = in_process(*rig.prove_args(out))
    assert result.exit_code == 2, result.output
    assert "another prove changed" in result.stderr
    assert (out / "private" / "seed").read_bytes() == (
        rig.reference / "private" / "seed"
    ).read_bytes()

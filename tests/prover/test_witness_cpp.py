"""prover/witness_cpp.py: the C++ witness program's failures are caught, whatever it does.

The generated program neither checks its writes nor reports a failed assertion other than by
aborting, so the wrapper judges it by its exit status and by the witness file's own sizes. The
real program is built and compared with wasm in tests/cli/test_cli_native.py; here circom and
make are stand-ins, to check how builds are cached, versioned and published.
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from zksolvency.prover import native, witness_cpp
from zksolvency.prover.field import P
from zksolvency.prover.keys import CircuitBuild
from zksolvency.prover.params import CircuitSpec
from zksolvency.prover.toolchain import ToolError


def _wtns(values: list[int]) -> bytes:
    """A .wtns v2 file: section 1 (n8, prime, count), section 2 (the values)."""
    head = struct.pack("<I", 32) + P.to_bytes(32, "little") + struct.pack("<I", len(values))
    body = b"".join(v.to_bytes(32, "little") for v in values)
    return (
        b"wtns"
        + struct.pack("<II", 2, 2)
        + struct.pack("<IQ", 1, len(head))
        + head
        + struct.pack("<IQ", 2, len(body))
        + body
    )


def test_check_wtns_accepts_whole_files_and_refuses_cut_or_padded_ones(tmp_path: Path) -> None:
    f = tmp_path / "w.wtns"
    whole = _wtns([1, 7, P - 1])
    f.write_bytes(whole)
    witness_cpp.check_wtns(f)
    for bad in (whole[:-1], whole[:-32], whole[:40], whole + b"\0", b"wtnx" + whole[4:], b""):
        f.write_bytes(bad)
        with pytest.raises(ValueError, match="witness file"):
            witness_cpp.check_wtns(f)
    # a count that disagrees with the values written (a program cut short before its last write)
    f.write_bytes(whole.replace(struct.pack("<I", 3), struct.pack("<I", 4), 1))
    with pytest.raises(ValueError, match="truncated or malformed"):
        witness_cpp.check_wtns(f)


def _program(tmp_path: Path, body: str) -> Path:
    prog = tmp_path / "calc"
    prog.write_text("#!/bin/sh\n" + body + "\n")
    prog.chmod(0o755)
    return prog


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        # a failed constraint assertion: the generated code calls assert(false)
        ('echo "Assertion failed" >&2; kill -ABRT $$', "Assertion failed\\nkilled by signal 6"),
        ("echo 'Not all inputs have been set. Only 3 out of 9' >&2; exit 1", "Not all inputs"),
        ('head -c 100 /dev/zero > "$2"', "not a witness file"),
    ],
)
def test_a_failing_program_is_a_tool_error(tmp_path: Path, body: str, expect: str) -> None:
    with pytest.raises(ToolError, match=expect):
        witness_cpp.compute_witness(_program(tmp_path, body), tmp_path / "in.json", tmp_path / "w")


def test_a_program_that_cannot_run_is_a_tool_error(tmp_path: Path) -> None:
    not_executable = tmp_path / "calc"
    not_executable.write_text("#!/bin/sh\n")
    for prog in (not_executable, tmp_path / "absent"):
        with pytest.raises(ToolError, match="cannot run the C\\+\\+ witness program"):
            witness_cpp.compute_witness(prog, tmp_path / "in.json", tmp_path / "w")


def test_a_hung_program_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(witness_cpp, "WITNESS_TIMEOUT", 0.5)
    with pytest.raises(ToolError, match=r"no witness after 0\.5 s"):
        witness_cpp.compute_witness(_program(tmp_path, "sleep 30"), tmp_path / "i", tmp_path / "w")


def test_a_truncated_witness_stops_a_native_run_before_proving(tmp_path: Path) -> None:
    """A job's `witness_bin` replaces the driver's witness step; its cut-short output stops the
    run with nothing kept, and the driver is never asked for a witness."""
    good = _wtns([1, 2, 3, 4])
    prog = _program(tmp_path, f'head -c {len(good) - 5} "{tmp_path / "good.wtns"}" > "$2"')
    (tmp_path / "good.wtns").write_bytes(good)
    vkey = tmp_path / "vkey.json"
    vkey.write_text(json.dumps({"nPublic": 3}))
    out = tmp_path / "proofs"
    out.mkdir()
    job = {
        "name": "batch_000000",
        "input": str(tmp_path / "in.json"),
        "wasm": "w.wasm",
        "zkey": "k.zkey",
        "vkey": str(vkey),
        "proof_out": str(out / "p.json"),
        "public_out": str(out / "q.json"),
        "witness_bin": str(prog),
    }
    asked: list[dict[str, Any]] = []

    class Driver:
        def run(self, j: dict[str, Any]) -> dict[str, Any]:
            asked.append(j)
            raise AssertionError("the driver was asked for a witness")

        def kill(self) -> None: ...

        def close(self) -> None: ...

    work = tmp_path / "work"
    with pytest.raises(ToolError, match="truncated or malformed"):
        native.run_jobs_native([job], lambda r: None, Driver, tmpdir=work, workers=1)
    assert not asked
    assert not list(out.iterdir()) and not list(work.iterdir())


def test_missing_tools_names_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(witness_cpp.shutil, "which", lambda tool: None)
    assert witness_cpp.missing_tools() == [
        "g++",
        "make",
        "nasm",
        "libgmp-dev",
        "nlohmann-json3-dev",
    ]


@dataclass
class _FakeToolchain:
    """circom --c and make stand-ins: the "program" prints the .dat file beside it, as the real
    one reads it at each start, so running it shows that both files are still there."""

    build: CircuitBuild
    gxx: str = "g++ 12.2.0"
    make_seconds: float = 0.0
    fail_make: bool = False
    builds: list[Path] = field(default_factory=list)

    def circom(self, main: Path, out: Path, *targets: str) -> None:
        assert targets == ("--c",)
        name = self.build.spec.name
        (out / f"{name}.r1cs").write_bytes(b"r1cs")
        (out / f"{name}_cpp").mkdir()
        (out / f"{name}_cpp" / "main.cpp").write_text("int main() {}\n")

    def make(self, cmd: list[str], cwd: Path) -> str:
        assert cmd[0] == "make"
        time.sleep(self.make_seconds)
        (cwd / "main.o").write_bytes(b"object")
        if self.fail_make:
            raise witness_cpp.ToolError(cmd, 2, "make: *** [main.o] Killed")
        name = self.build.spec.name
        (cwd / f"{name}.dat").write_text(f"built with {self.gxx}\n")
        prog = cwd / name
        prog.write_text('#!/bin/sh\ncat "$0.dat"\n')
        prog.chmod(0o755)
        self.builds.append(cwd)
        return ""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _FakeToolchain:
    monkeypatch.setenv("ZKSOLVENCY_BUILD", str(tmp_path / "build"))  # the instance lock's home
    spec = CircuitSpec("batch_t", "batch.circom", "Batch", (1, 4), ())
    d = tmp_path / "build" / "circuits" / spec.name
    d.mkdir(parents=True)
    build = CircuitBuild(
        spec=spec,
        dir=d,
        r1cs=d / f"{spec.name}.r1cs",
        wasm=d / f"{spec.name}_js" / f"{spec.name}.wasm",
        sym=d / f"{spec.name}.sym",
        n_constraints=1,
        n_public=0,
        r1cs_sha256=hashlib.sha256(b"r1cs").hexdigest(),
    )
    tools = _FakeToolchain(build)
    monkeypatch.setattr(witness_cpp, "require_tools", lambda: None)
    monkeypatch.setattr(witness_cpp, "source_fingerprint", lambda spec: "sources")
    monkeypatch.setattr(witness_cpp, "_gxx_version", lambda: tools.gxx)
    monkeypatch.setattr(witness_cpp, "run_circom", tools.circom)
    monkeypatch.setattr(witness_cpp, "run", tools.make)
    return tools


def _runs(binary: Path) -> str:
    return subprocess.run([binary], capture_output=True, text=True, check=True).stdout.strip()


def _leftovers(versions: Path) -> list[str]:
    return sorted(p.name for p in versions.iterdir() if p.name.startswith("."))


def test_a_changed_stamp_builds_a_new_folder_and_the_old_program_keeps_working(
    fake: _FakeToolchain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prove holding the old path (it may run it for hours) still finds it, and its .dat."""
    old = witness_cpp.build_witness_binary(fake.build)
    versions = witness_cpp.versions_dir(fake.build)
    assert old.parents[2] == versions and witness_cpp.instance_dir(old) == fake.build.dir
    assert _runs(old) == "built with g++ 12.2.0"
    fake.gxx = "g++ 13.1.0"
    new = witness_cpp.build_witness_binary(fake.build)
    assert new.parents[2] == versions and new.parents[1] != old.parents[1]
    assert _runs(new) == "built with g++ 13.1.0"
    assert _runs(old) == "built with g++ 12.2.0"
    monkeypatch.setattr(witness_cpp, "CFLAGS", "-std=c++11 -O3 -I.")
    flags = witness_cpp.build_witness_binary(fake.build)
    assert len({old, new, flags}) == 3 and all(_runs(b) for b in (old, new))
    assert len(fake.builds) == 3
    assert not list(versions.rglob("*.o")) and not _leftovers(versions)


def test_a_matching_stamp_reuses_its_folder(fake: _FakeToolchain) -> None:
    first = witness_cpp.build_witness_binary(fake.build)
    assert witness_cpp.build_witness_binary(fake.build) == first
    assert len(fake.builds) == 1
    # an older version is kept, so going back to it (a g++ downgrade, say) costs no build
    fake.gxx = "g++ 13.1.0"
    witness_cpp.build_witness_binary(fake.build)
    fake.gxx = "g++ 12.2.0"
    assert witness_cpp.build_witness_binary(fake.build) == first
    assert len(fake.builds) == 2
    assert json.loads((first.parents[1] / "build.json").read_text())["gxx"] == "g++ 12.2.0"


def test_a_killed_build_is_not_taken_for_a_finished_one(fake: _FakeToolchain) -> None:
    """A build killed before its rename leaves a temporary folder, whole-looking or not: the
    next build (under the instance lock, so none is running) removes it and builds anew."""
    binary = witness_cpp.build_witness_binary(fake.build)
    version = binary.parents[1]
    versions = version.parent
    # as a SIGKILL just before the rename would leave it: stamp and program written
    version.rename(versions / f".{version.name}.4242.tmp")
    # and another killed mid-make, and one of the layout before versioned folders
    half = versions / f".{version.name}.4343.tmp" / f"{fake.build.spec.name}_cpp"
    half.mkdir(parents=True)
    (half / "main.o").write_bytes(b"object")
    (fake.build.dir / "cpp.tmp").mkdir()
    again = witness_cpp.build_witness_binary(fake.build)
    assert again == binary and len(fake.builds) == 2
    assert _runs(again) == "built with g++ 12.2.0"
    assert not _leftovers(versions) and not (fake.build.dir / "cpp.tmp").exists()


def test_a_failed_build_publishes_nothing(fake: _FakeToolchain) -> None:
    fake.fail_make = True
    with pytest.raises(witness_cpp.ToolError, match="Killed"):
        witness_cpp.build_witness_binary(fake.build)
    versions = witness_cpp.versions_dir(fake.build)
    assert not list(versions.iterdir())
    fake.fail_make = False
    assert _runs(witness_cpp.build_witness_binary(fake.build)) == "built with g++ 12.2.0"


def test_a_damaged_folder_is_rebuilt_and_the_old_layout_is_left_alone(
    fake: _FakeToolchain,
) -> None:
    """A version folder whose stamp or program was deleted by hand is built again in place;
    cpp/build.json and cpp/<instance>_cpp/ of the unversioned layout are neither read nor
    removed (an older prove may still be running that program)."""
    name = fake.build.spec.name
    versions = witness_cpp.versions_dir(fake.build)
    legacy = versions / f"{name}_cpp" / name
    legacy.parent.mkdir(parents=True)
    legacy.write_text("#!/bin/sh\necho legacy\n")
    legacy.chmod(0o755)
    (versions / "build.json").write_text("{}\n")
    binary = witness_cpp.build_witness_binary(fake.build)
    assert binary != legacy and len(fake.builds) == 1
    for damage in (binary.parents[1] / "build.json", binary):
        damage.unlink()
        assert witness_cpp.build_witness_binary(fake.build) == binary
        assert _runs(binary) == "built with g++ 12.2.0"
    (binary.parents[1] / "build.json").write_text('{"cut short')
    assert witness_cpp.build_witness_binary(fake.build) == binary
    assert len(fake.builds) == 4
    assert _runs(legacy) == "legacy" and (versions / "build.json").is_file()


def test_two_processes_building_at_once_make_one_program(fake: _FakeToolchain) -> None:
    """The instance lock (keys.instance_lock, a flock) serialises them; the second finds the
    first's folder finished."""
    fake.make_seconds = 0.3
    got: list[Path] = []
    threads = [
        threading.Thread(target=lambda: got.append(witness_cpp.build_witness_binary(fake.build)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and got[0] == got[1] and len(fake.builds) == 1

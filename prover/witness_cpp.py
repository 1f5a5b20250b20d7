"""circom's C++ witness generator: an optional, faster witness stage for the native backend.

circom `--c` emits a C++ program per circuit instance that computes the same witness as the
wasm calculator, byte for byte, several times faster (docs/scaling.md). Building it costs
a minute or more of g++ per instance and needs g++, make, nasm, GMP and nlohmann-json (Debian:
build-essential nasm libgmp-dev nlohmann-json3-dev), so it is opt-in (`prove --witness cpp`)
and cached under the instance's build folder like its keys (one folder per build, see
build_witness_binary).

Trust does not change: a witness only feeds the prover. Every proof is still verified by
snarkjs and its public signals compared with the Python mirror's before it is kept.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

from .atomic import read_json, sha256_file, sha256_json, write_json
from .keys import CircuitBuild, instance_lock, run_circom, source_fingerprint
from .progress import NullReporter, Reporter
from .toolchain import ToolError, run

NAME = "cpp"
#: Seconds a witness may take: a healthy one takes well under a second at 2^17 constraints.
WITNESS_TIMEOUT = 600
#: -O1 rather than the generated Makefile's -O3: measured on the 46,262-constraint batch, half
#: the build (100 s against 195 s) for the same witness time (0.044 s against 0.047 s); -O0
#: builds in 66 s but its witness takes 0.075 s.
CFLAGS = "-std=c++11 -O1 -I."
WITNESS_MODES = ("wasm", NAME)

#: What the generated Makefile and sources need, and the Debian packages that provide them.
_TOOLS = {"g++": "g++", "make": "make", "nasm": "nasm"}
_HEADERS = {"gmp.h": "libgmp-dev", "nlohmann/json.hpp": "nlohmann-json3-dev"}


def missing_tools() -> list[str]:
    """The Debian packages missing for a C++ witness build (empty when it can be built)."""
    out = [package for tool, package in _TOOLS.items() if shutil.which(tool) is None]
    if "g++" not in out:
        for header, package in _HEADERS.items():
            # the compiler's own search path: Debian puts gmp.h under a multiarch folder
            probe = subprocess.run(
                ["g++", "-E", "-x", "c++", "-"],
                input=f"#include <{header}>\n",
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.returncode != 0:
                out.append(package)
    else:
        out.extend(_HEADERS.values())
    return out


def require_tools() -> None:
    """Raise a ToolError naming the Debian packages a C++ witness build lacks, if any."""
    missing = missing_tools()
    if missing:
        raise ToolError(
            ["circom", "--c"],
            1,
            "the C++ witness generator needs these Debian packages: " + " ".join(missing),
        )


def _gxx_version() -> str:
    return run(["g++", "--version"]).splitlines()[0]


def versions_dir(build: CircuitBuild) -> Path:
    """The folder holding an instance's C++ witness programs, one subfolder per build stamp:
    build/circuits/<instance>/cpp/<stamp hash>/<instance>_cpp/<instance> (and its .dat)."""
    return build.dir / "cpp"


def instance_dir(binary: Path) -> Path:
    """The instance's build folder (build/circuits/<instance>/, beside <instance>_js/) of a
    program returned by build_witness_binary."""
    return binary.parents[3]


def _program(version: Path, name: str) -> Path:
    return version / f"{name}_cpp" / name


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def build_witness_binary(build: CircuitBuild, reporter: Reporter | None = None) -> Path:
    """The C++ witness program of a compiled instance, built (a few minutes) or cached.

    Compiled with the same circom flags as the wasm build, and checked to produce the same
    r1cs, so the program computes the witness of exactly the circuit the keys are for.

    Each build lives in its own folder named by a hash of its stamp (sources, r1cs, g++
    version, flags), published whole by one rename, and is never replaced or removed here: a
    `prove` may run the path it was given (and the .dat file beside it) for hours, and nothing
    tells whether one still does, since the instance lock is held only while building. So a
    rebuild (a new g++ or new flags) leaves the older folders in place; they can be deleted by
    hand when no prove is running, as can the cpp/build.json and cpp/<instance>_cpp/ of the
    layout before versioned folders."""
    rep = reporter or NullReporter()
    require_tools()
    name = build.spec.name
    stamp = {
        "fingerprint": source_fingerprint(build.spec),
        "r1cs_sha256": build.r1cs_sha256,
        "gxx": _gxx_version(),
        "cflags": CFLAGS,
    }
    key = sha256_json(stamp)[:16]
    versions = versions_dir(build)
    out = versions / key
    binary = _program(out, name)
    # The instance lock (keys.py) makes one process build at a time: under it, a temporary
    # folder can only be one a killed build left behind.
    with instance_lock(name, rep):
        if _matches(out, binary, stamp):
            return binary
        rep.info(f"building the C++ witness generator of {name} (g++, a few minutes; cached)")
        t0 = time.monotonic()
        versions.mkdir(parents=True, exist_ok=True)
        for stale in [build.dir / "cpp.tmp", *filter(_is_temporary, versions.iterdir())]:
            shutil.rmtree(stale, ignore_errors=True)  # cpp.tmp: the unversioned layout's
        tmp = versions / f".{key}.{os.getpid()}.tmp"
        tmp.mkdir()
        try:
            _build(build, tmp, stamp)
            if out.exists():  # damaged by hand (its stamp or program gone): nothing runs it
                shutil.rmtree(out, ignore_errors=True)
            os.rename(tmp, out)  # the folder appears whole, or not at all
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed build's
        rep.info(f"  {name}: C++ witness generator built in {time.monotonic() - t0:.0f} s")
        return binary


def _matches(out: Path, binary: Path, stamp: dict[str, str]) -> bool:
    """Whether `out` is a finished build of `stamp` (its stamp is written last, and the
    folder is renamed into place only after that)."""
    try:
        return binary.is_file() and read_json(out / "build.json") == stamp
    except (OSError, ValueError):
        return False


def _build(build: CircuitBuild, tmp: Path, stamp: dict[str, str]) -> None:
    """circom --c and make in `tmp`, then its stamp, written last."""
    name = build.spec.name
    run_circom(build.dir / f"{name}.circom", tmp, "--c")
    if sha256_file(tmp / f"{name}.r1cs") != build.r1cs_sha256:
        raise ToolError(
            ["circom", "--c"], 1, f"{name}: the C++ build's r1cs differs from the keys' r1cs"
        )
    (tmp / f"{name}.r1cs").unlink()
    run(["make", "-j", str(os.cpu_count() or 1), f"CFLAGS={CFLAGS}"], cwd=tmp / f"{name}_cpp")
    for obj in (tmp / f"{name}_cpp").glob("*.o"):
        obj.unlink()  # hundreds of MB for a large circuit; the program is all that runs
    write_json(tmp / "build.json", stamp)


def compute_witness(binary: Path, input_json: Path, wtns: Path) -> float:
    """Write the witness of `input_json` to `wtns` with a built program; its seconds.

    The generated program writes without checking for errors, and a failed constraint
    assertion aborts it: both are caught here (exit status, then the file's size)."""
    t0 = time.monotonic()
    cmd = [str(binary), str(input_json), str(wtns)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=WITNESS_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ToolError(cmd[:2], 1, f"no witness after {WITNESS_TIMEOUT} s") from None
    except OSError as exc:  # the program is gone, not executable, or for another machine
        raise ToolError(cmd[:2], 1, f"cannot run the C++ witness program: {exc}") from None
    if done.returncode != 0:
        why = (done.stdout + done.stderr).decode(errors="replace").strip()
        if done.returncode < 0:  # a failed assertion in the circuit's code aborts
            why = f"{why}\nkilled by signal {-done.returncode}".strip()
        raise ToolError(cmd[:2], done.returncode, why)
    try:
        check_wtns(wtns)
    except ValueError as exc:
        raise ToolError(cmd[:2], 1, str(exc)) from None
    return time.monotonic() - t0


def check_wtns(path: Path) -> None:
    """Refuse a .wtns file whose sections do not add up (a write cut short by a full disk)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        size = os.fstat(fh.fileno()).st_size
        if len(head) < 12 or head[:4] != b"wtns":
            raise ValueError(f"{path}: not a witness file")
        pos, n8, n_vars, values = 12, None, None, None
        try:
            while pos < size:
                fh.seek(pos)
                sid, length = struct.unpack("<IQ", fh.read(12))
                if sid == 1:
                    n8 = struct.unpack("<I", fh.read(4))[0]
                    fh.seek(n8, os.SEEK_CUR)
                    n_vars = struct.unpack("<I", fh.read(4))[0]
                elif sid == 2:
                    values = length
                pos += 12 + length
        except struct.error:
            pos = -1  # a header cut short
    if pos != size or n8 is None or n_vars is None or values != n8 * n_vars:
        raise ValueError(f"{path}: truncated or malformed witness file ({size} bytes)")

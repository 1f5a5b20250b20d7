"""Setup stage: compile circuit instances with circom2 and make their Groth16 keys with snarkjs.

Both steps are cached under build/ by a stamp of their inputs (circuit sources and toolchain
versions; r1cs and ptau hashes), so re-running `setup` is free and a changed circuit rebuilds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import secrets
import shutil
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_path, read_json, sha256_file, sha256_json, write_json, write_text
from .params import CircuitSpec, EpochParams
from .paths import build_dir, circuits_dir, node_bin, node_module, repo_root
from .progress import NullReporter, Reporter
from .ptau import PtauInfo, check_ptau, required_power, resolve_ptau
from .toolchain import ToolError, run


class KeySetupError(RuntimeError):
    """Keys cannot be made or installed as asked."""


@dataclass(frozen=True)
class CircuitBuild:
    spec: CircuitSpec
    dir: Path
    r1cs: Path
    wasm: Path
    sym: Path
    n_constraints: int
    n_public: int
    r1cs_sha256: str


@dataclass(frozen=True)
class KeySet:
    build: CircuitBuild
    zkey: Path
    zkey_sha256: str
    vkey: dict[str, Any]
    vkey_hash: str
    verifier_sol: Path
    ptau_sha256: str
    ptau_power: int
    development: bool
    contributions: int

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "circuit": self.build.spec.name,
            "template": self.build.spec.template,
            "params": list(self.build.spec.params),
            "constraints": self.build.n_constraints,
            "r1cs_sha256": self.build.r1cs_sha256,
            "zkey_sha256": self.zkey_sha256,
            "vkey_sha256": self.vkey_hash,
            "ptau_sha256": self.ptau_sha256,
            "ptau_power": self.ptau_power,
            "development_setup": self.development,
            "phase2_contributions": self.contributions,
        }


def r1cs_header(path: Path) -> tuple[int, int]:
    """(constraints, public signals) from an .r1cs header, without reading the constraints."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"r1cs":
            raise ValueError(f"{path}: not an r1cs file")
        _version, n_sections = struct.unpack("<II", fh.read(8))
        for _ in range(n_sections):
            sid, size = struct.unpack("<IQ", fh.read(12))
            if sid == 1:
                n8 = struct.unpack("<I", fh.read(4))[0]
                fh.read(n8)  # prime
                _wires, n_out, n_pub_in, _prv, _labels, n_constraints = struct.unpack(
                    "<IIIIQI", fh.read(28)
                )
                return n_constraints, n_out + n_pub_in
            fh.seek(size, 1)
    raise ValueError(f"{path}: r1cs without a header section")


def _tool_versions() -> dict[str, str]:
    out = {}
    for mod in ("circom2", "circomlib", "snarkjs"):
        pkg = json.loads((node_module(mod) / "package.json").read_text())
        out[mod] = str(pkg["version"])
    return out


def source_fingerprint(spec: CircuitSpec) -> str:
    """Hash of everything a compile depends on: the main file, every .circom, tool versions."""
    h = hashlib.sha256(spec.main_source().encode())
    for f in sorted(circuits_dir().rglob("*.circom")):
        h.update(str(f.relative_to(circuits_dir())).encode())
        h.update(f.read_bytes())
    h.update(json.dumps(_tool_versions(), sort_keys=True).encode())
    return h.hexdigest()


@contextlib.contextmanager
def instance_lock(name: str, reporter: Reporter | None = None) -> Iterator[None]:
    """Exclusive use of one circuit instance's build folder. Two processes (say two `prove`
    runs, or `setup` next to `margin prove`) would otherwise run circom or snarkjs into the
    same files and each could read the other's half-written r1cs or zkey. The OS drops the
    lock if its holder dies. The lock file sits beside the folder, which may be removed."""
    path = build_dir() / "circuits" / f".{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            (reporter or NullReporter()).info(
                f"waiting for another process that is building {name}"
            )
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def compile_circuit(spec: CircuitSpec, reporter: Reporter | None = None) -> CircuitBuild:
    """Compile one circuit instance with circom, or return the cached build of the same
    sources and tools."""
    with instance_lock(spec.name, reporter):
        return _compile(spec, reporter)


def _compile(spec: CircuitSpec, reporter: Reporter | None) -> CircuitBuild:
    rep = reporter or NullReporter()
    out = build_dir() / "circuits" / spec.name
    stamp_path = out / "compile.json"
    fingerprint = source_fingerprint(spec)
    r1cs = out / f"{spec.name}.r1cs"
    wasm = out / f"{spec.name}_js" / f"{spec.name}.wasm"
    sym = out / f"{spec.name}.sym"
    if stamp_path.is_file() and r1cs.is_file() and wasm.is_file():
        stamp = read_json(stamp_path)
        if stamp.get("fingerprint") == fingerprint and stamp.get("r1cs_sha256") == sha256_file(
            r1cs
        ):
            return _build(spec, out, r1cs, wasm, sym, stamp["r1cs_sha256"])
    rep.info(f"compiling {spec.name} with circom (--O2)")
    out.mkdir(parents=True, exist_ok=True)
    main = out / f"{spec.name}.circom"
    write_text(main, spec.main_source())
    run_circom(main, out, "--wasm", "--sym")
    digest = sha256_file(r1cs)
    write_json(stamp_path, {"fingerprint": fingerprint, "r1cs_sha256": digest})
    build = _build(spec, out, r1cs, wasm, sym, digest)
    rep.info(f"  {spec.name}: {build.n_constraints} constraints")
    return build


def run_circom(main: Path, out: Path, *targets: str) -> None:
    """Compile `main` into `out` with the project's circom flags (--O2, the include folders),
    an r1cs and `targets` (--wasm, --sym, --c): every build of an instance sees the same
    circuit. circom2 is a WASI build that sees paths relative to the working directory, so
    include folders are passed as -l options rather than absolute includes."""
    run(
        [
            node_bin("circom2"),
            main,
            "--r1cs",
            *targets,
            "--O2",
            "-l",
            circuits_dir(),
            "-l",
            repo_root() / "node_modules",
            "-o",
            out,
        ]
    )


def _build(
    spec: CircuitSpec, out: Path, r1cs: Path, wasm: Path, sym: Path, digest: str
) -> CircuitBuild:
    n_constraints, n_public = r1cs_header(r1cs)
    return CircuitBuild(spec, out, r1cs, wasm, sym, n_constraints, n_public, digest)


def cached_keys(
    build: CircuitBuild, ptau: Path | None = None, reporter: Reporter | None = None
) -> KeySet | None:
    """Keys already set up for exactly this r1cs (and this ceremony file, if one is named).

    Without `ptau` any cached keys are taken, ceremony ones included: a development run must
    never overwrite production keys. Cached files that no longer match their stamp (damaged or
    replaced) are not used, and the reporter is told which: the caller then makes new keys,
    or refuses to replace ceremony ones.
    """
    rep = reporter or NullReporter()
    out = build.dir / "keys"
    stamp_path = out / "keys.json"
    zkey = out / f"{build.spec.name}.zkey"
    vkey_path = out / "verification_key.json"
    sol = out / "verifier.sol"
    if not (stamp_path.is_file() and zkey.is_file() and vkey_path.is_file() and sol.is_file()):
        return None
    stamp = _read_stamp(stamp_path)
    try:
        vkey = read_json(vkey_path)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        vkey = None
    if stamp is None or not isinstance(vkey, dict):
        rep.warn(f"{stamp_path if stamp is None else vkey_path}: unreadable (damaged?); not used")
        return None
    if stamp.get("r1cs_sha256") != build.r1cs_sha256:
        return None  # the circuit changed: these keys are simply outdated
    # A damaged proving key must never reach the prover. The vkey is checked too where the
    # stamp records it (stamps written before it did not): the bundle publishes that vkey.
    if stamp.get("zkey_sha256") != sha256_file(zkey):
        rep.warn(f"{zkey} no longer matches the sha256 in {stamp_path} (damaged?); not used")
        return None
    if stamp.get("vkey_sha256", sha256_json(vkey)) != sha256_json(vkey):
        rep.warn(f"{vkey_path} no longer matches the hash in {stamp_path} (damaged?); not used")
        return None
    if ptau is not None and stamp.get("ptau_sha256") != sha256_file(ptau):
        return None
    return _keyset(build, zkey, vkey_path, sol, stamp)


def _read_stamp(path: Path) -> dict[str, Any] | None:
    """A keys.json stamp, or None if it is not a readable one."""
    try:
        stamp = read_json(path)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return None
    return stamp if isinstance(stamp, dict) else None


def setup_keys(
    build: CircuitBuild, ptau: PtauInfo | Path, reporter: Reporter | None = None
) -> KeySet:
    """Groth16 phase-2 setup for one circuit: zkey, one contribution, vkey, Solidity verifier.

    A bare path is checked and, knowing nothing of its origin, labelled as development.
    """
    rep = reporter or NullReporter()
    power = required_power(build.n_constraints, build.n_public)
    info = ptau if isinstance(ptau, PtauInfo) else check_ptau(ptau, power, development=True)
    if info.power < power:
        raise ValueError(f"{build.spec.name} needs 2^{power} powers, the ptau has 2^{info.power}")
    out = build.dir / "keys"
    zkey = out / f"{build.spec.name}.zkey"
    rep.info(f"Groth16 setup for {build.spec.name} ({build.n_constraints} constraints, 2^{power})")
    out.mkdir(parents=True, exist_ok=True)
    snarkjs = node_bin("snarkjs")
    z0 = out / "setup_0000.zkey"
    run([snarkjs, "groth16", "setup", build.r1cs, info.path, z0])
    # One contribution with fresh entropy, so that no key is the deterministic output of the
    # ptau alone. Production keys need more contributions, from other parties: see
    # docs/threat-model.md.
    contribute_zkey(z0, zkey, "zksolvency setup")
    z0.unlink()
    return _install(build, zkey, info, contributions=1)


def contribute_zkey(zkey_in: Path, zkey_out: Path, name: str) -> str:
    """Add one phase-2 contribution; return the contribution hash snarkjs prints.

    Entropy goes in on stdin (snarkjs also mixes in 64 bytes from the OS), never on the
    command line. This is what each outside party of a production key ceremony runs.
    """
    out = run(
        [node_bin("snarkjs"), "zkey", "contribute", zkey_in, zkey_out, f"--name={name}"],
        stdin=secrets.token_hex(32) + "\n",
    )
    digest = re.search(r"Contribution Hash:\s*((?:[0-9a-fA-F]{8}\s*){16})", out)
    return re.sub(r"\s+", "", digest.group(1)) if digest else ""


def verify_zkey(build: CircuitBuild, zkey: Path, info: PtauInfo) -> int:
    """Check a zkey's whole transcript against this r1cs and ptau; return its contribution count.

    `snarkjs zkey verify` recomputes the initial key from the r1cs and ptau and checks every
    contribution in the chain, so a key cannot claim a ceremony it did not go through.
    """
    try:
        out = run([node_bin("snarkjs"), "zkey", "verify", build.r1cs, info.path, zkey])
    except ToolError as exc:
        out = exc.output
    if "ZKey Ok!" not in out:
        raise KeySetupError(f"{zkey}: snarkjs did not accept the key:\n{out[-2000:]}")
    return len(re.findall(r"contribution #\d+", out))


def import_zkey(build: CircuitBuild, zkey: Path, info: PtauInfo) -> KeySet:
    """Install a zkey that went through outside contributions, after verifying its transcript."""
    contributions = verify_zkey(build, zkey, info)
    target = build.dir / "keys" / f"{build.spec.name}.zkey"
    with instance_lock(build.spec.name):
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(zkey, tmp)
        return _install(build, target, info, contributions)


def _install(build: CircuitBuild, zkey: Path, info: PtauInfo, contributions: int) -> KeySet:
    """Export the vkey and Solidity verifier of `zkey` and write the stamp (last)."""
    out = build.dir / "keys"
    vkey_path = out / "verification_key.json"
    sol = out / "verifier.sol"
    snarkjs = node_bin("snarkjs")
    run([snarkjs, "zkey", "export", "verificationkey", zkey, vkey_path])
    run([snarkjs, "zkey", "export", "solidityverifier", zkey, sol])
    stamp = {
        **_stamp(build, zkey, info),
        "contributions": contributions,
        # the vkey goes into every bundle: cached_keys checks it was not damaged since
        "vkey_sha256": sha256_json(read_json(vkey_path)),
    }
    write_json(out / "keys.json", stamp)
    return _keyset(build, zkey, vkey_path, sol, stamp)


def refuse_replacing_ceremony_keys(stale: list[CircuitBuild]) -> None:
    """Stop before regenerating keys that came from a ceremony: their outside contributions
    cannot be redone here, and new keys would not match the deployed verifiers."""
    for b in stale:
        path = b.dir / "keys" / "keys.json"
        if not path.is_file():
            continue
        stamp = _read_stamp(path)
        if stamp is None:
            # unreadable: whether it stamps ceremony keys is unknown, and those are not to be
            # overwritten on a guess
            raise KeySetupError(
                f"{path} is unreadable (damaged?): if {b.dir / 'keys'} holds ceremony keys, "
                "re-import the ceremony's zkey; otherwise delete the folder to make new keys"
            )
        if stamp.get("development") is False:
            raise KeySetupError(
                f"{b.dir / 'keys'} holds ceremony keys that no longer match the circuit, the "
                "zkey file or the given --ptau; re-import the ceremony's zkey or move the folder"
            )


@dataclass(frozen=True)
class Keys:
    batch: KeySet
    solvency: KeySet


def build_keys(params: EpochParams, ptau: Path | None, reporter: Reporter | None = None) -> Keys:
    """Compile both circuits of `params` and set up their keys, each step cached under build/.

    The two circuits compile and set up in parallel threads (each drives its own Node
    process); the ptau is resolved once, before, so a missing one is generated only once.
    """
    rep = reporter or NullReporter()
    specs = [params.batch_spec(), params.solvency_spec()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        builds = list(pool.map(lambda spec: compile_circuit(spec, rep), specs))
    with instance_lock(specs[0].name, rep), instance_lock(specs[1].name, rep):
        return _build_keys(builds, ptau, rep)


def _build_keys(builds: list[CircuitBuild], ptau: Path | None, rep: Reporter) -> Keys:
    found = [cached_keys(b, ptau, rep) for b in builds]
    stale = [b for b, k in zip(builds, found, strict=True) if k is None]
    refuse_replacing_ceremony_keys(stale)
    if stale:
        power = max(required_power(b.n_constraints, b.n_public) for b in stale)
        info = resolve_ptau(power, ptau, rep)
        with ThreadPoolExecutor(max_workers=2) as pool:
            made = dict(
                zip(
                    [b.spec.name for b in stale],
                    pool.map(lambda b: setup_keys(b, info, rep), stale),
                    strict=True,
                )
            )
        found = [k or made[b.spec.name] for b, k in zip(builds, found, strict=True)]
    batch, solvency = found
    assert batch is not None and solvency is not None
    for ks in (batch, solvency):
        if ks.development:
            rep.warn(f"{ks.build.spec.name}: keys come from an INSECURE development ptau")
    return Keys(batch, solvency)


def build_margin_keys(
    params: EpochParams, ptau: Path | None, reporter: Reporter | None = None
) -> KeySet:
    """Compile the single-account margin circuit of `params` and set up its keys, cached under
    build/ exactly as `build_keys` does for the batch and solvency circuits."""
    rep = reporter or NullReporter()
    build = compile_circuit(params.margin_spec(), rep)
    with instance_lock(build.spec.name, rep):
        ks = cached_keys(build, ptau, rep)
        if ks is None:
            refuse_replacing_ceremony_keys([build])
            info = resolve_ptau(required_power(build.n_constraints, build.n_public), ptau, rep)
            ks = setup_keys(build, info, rep)
    if ks.development:
        rep.warn(f"{ks.build.spec.name}: keys come from an INSECURE development ptau")
    return ks


def external_keyset(build: CircuitBuild, zkey: Path) -> KeySet:
    """A proving key made elsewhere (the exchange's published margin key), used as is: its
    verification key is exported here, and callers compare it with the one they trust."""
    import tempfile

    if not zkey.is_file():
        raise KeySetupError(f"{zkey}: no such proving key")
    with tempfile.TemporaryDirectory(prefix="zksolvency-zkey-") as tmp:
        vkey_path = Path(tmp) / "vkey.json"
        try:
            run([node_bin("snarkjs"), "zkey", "export", "verificationkey", zkey, vkey_path])
            vkey: dict[str, Any] = json.loads(vkey_path.read_text())
        except (ToolError, OSError, ValueError) as exc:
            raise KeySetupError(f"{zkey}: not a snarkjs proving key ({exc})") from exc
    return KeySet(
        build=build,
        zkey=zkey,
        zkey_sha256=sha256_file(zkey),
        vkey=vkey,
        vkey_hash=sha256_json(vkey),
        verifier_sol=zkey.with_suffix(".sol"),  # not generated: nothing is deployed from it
        ptau_sha256="",  # unknown here: the epoch's manifest records the key's origin
        ptau_power=0,
        development=False,
        contributions=0,
    )


def _stamp(build: CircuitBuild, zkey: Path, info: PtauInfo) -> dict[str, Any]:
    return {
        "r1cs_sha256": build.r1cs_sha256,
        "zkey_sha256": sha256_file(zkey),
        "ptau_sha256": info.sha256,
        "ptau_power": info.power,
        "development": info.development,
    }


def _keyset(
    build: CircuitBuild, zkey: Path, vkey_path: Path, sol: Path, stamp: dict[str, Any]
) -> KeySet:
    vkey = read_json(vkey_path)
    return KeySet(
        build=build,
        zkey=zkey,
        zkey_sha256=stamp["zkey_sha256"],
        vkey=vkey,
        vkey_hash=sha256_json(vkey),
        verifier_sol=sol,
        ptau_sha256=stamp["ptau_sha256"],
        ptau_power=int(stamp["ptau_power"]),
        development=bool(stamp["development"]),
        contributions=int(stamp.get("contributions", 1)),
    )

"""A witness tester for the circom templates (in the spirit of circomkit's WitnessTester).

`compile_template` writes a main component for one template of circuits/, compiles it with
circom2 and returns a `Circuit` that computes witnesses (`witness`, `expect_fail`), checks them
against its R1CS (`check`, `expect_constraint_fail`) and edits them by signal name (`tamper`).

Unit templates are compiled with --O1: it keeps every named signal as a wire (only signal = signal
and signal = constant equalities are folded), so any signal can be tampered with, and it keeps the
linear constraints, which `failing_constraints` checks like any other. Production instances are
compiled with --O2 by `zksolvency.prover.keys.compile_circuit` and wrapped with `Circuit.of`.

CIRCUITS lists every circuit the tests compile (conftest.py makes each a session fixture).
The mirror helpers (`raw_*`, `RawContext`, `BatchCase`, `SolvencyCase`, `AccountCase`) compute
the same hashes and margin values as zksolvency.prover.commitments and .margin, but without their
input checks: attacks need hashes of values the mirror rightly refuses (amounts >= 2^64, weights
>= 2^128, risk entries >= 2^128, negative totals or amounts as p - x, non-canonical quantity
codes). `assert_at`, `fired_in` and `nested` build `expect_fail` patterns naming the assert that
must fail.
"""

from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cached_property
from pathlib import Path
from typing import Any

from zksolvency.prover.commitments import (
    CTX_TAG,
    RATE_ONE,
    STRICT,
    empty_nodes,
    qty_code,
    qty_from_code,
    total_bits,
)
from zksolvency.prover.field import P, per_element
from zksolvency.prover.haircuts import AssetHaircuts, HaircutTable
from zksolvency.prover.instruments import sample_derivatives
from zksolvency.prover.keys import CircuitBuild
from zksolvency.prover.margin import MarginContext
from zksolvency.prover.params import CircuitSpec, EpochParams
from zksolvency.prover.poseidon import hash_list, poseidon
from zksolvency.prover.r1cs import R1CS, failing_constraints, read_sym
from zksolvency.prover.snapshot import MAX_AMOUNT, Account, Asset, Snapshot
from zksolvency.prover.tree import climb, subtree_levels
from zksolvency.prover.witness import EpochPlan, MarginInputs

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "node_modules" / ".bin"
SERVER_JS = Path(__file__).with_name("witness_server.cjs")
COMPILE_TIMEOUT = 600.0

Inputs = Mapping[str, Any]


class WitnessError(RuntimeError):
    """The witness calculator refused the inputs: an `===` (or an input shape) does not hold.

    `message` is circom's report, e.g. "Assert Failed. Error in template Num2Bits_3 line: 38"
    followed by the chain of enclosing templates.
    """

    def __init__(self, circuit: str, message: str) -> None:
        super().__init__(f"{circuit}: witness generation failed: {message}")
        self.circuit = circuit
        self.message = message


class CompileError(RuntimeError):
    """circom2 rejected a generated main file."""


# --- witness calculation ----------------------------------------------------------------------


class WitnessServer:
    """One long-lived `node witness_server.cjs`: every circuit's wasm is instantiated once."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                ["node", str(SERVER_JS)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        return self._proc

    def calculate(self, circuit: str, wasm: Path, inputs: Inputs) -> list[int]:
        request = json.dumps({"wasm": str(wasm), "input": _decimal(inputs)})
        with self._lock:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(request + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{circuit}: the witness server exited (code {proc.poll()})")
        reply = json.loads(line)
        if not reply["ok"]:
            raise WitnessError(circuit, " ".join(str(reply["error"]).split()))
        return [int(v) for v in reply["witness"]]

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_SERVER = WitnessServer()


def default_server() -> WitnessServer:
    return _SERVER


def _decimal(value: Any) -> Any:
    """Inputs as the calculator wants them: decimal strings, nested like the signals."""
    if isinstance(value, Mapping):
        return {k: _decimal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decimal(v) for v in value]
    return str(int(value))


# --- circuits ---------------------------------------------------------------------------------


@dataclass
class Circuit:
    """A compiled circuit: its R1CS, wasm and symbols, with witness helpers."""

    name: str
    r1cs_path: Path
    wasm_path: Path
    sym_path: Path
    server: WitnessServer = field(default_factory=default_server, repr=False)

    @classmethod
    def of(cls, build: CircuitBuild, server: WitnessServer | None = None) -> Circuit:
        """Wrap a production instance compiled (with --O2) by keys.compile_circuit."""
        return cls(build.spec.name, build.r1cs, build.wasm, build.sym, server or default_server())

    @cached_property
    def r1cs(self) -> R1CS:
        return R1CS.load(self.r1cs_path)

    @cached_property
    def sym(self) -> dict[str, int]:
        return read_sym(self.sym_path)

    # witnesses

    def witness(self, inputs: Inputs) -> list[int]:
        """The full witness for `inputs`; WitnessError if an assert (`===`) fails."""
        return self.server.calculate(self.name, self.wasm_path, inputs)

    def expect_fail(self, inputs: Inputs, match: str | None = None) -> WitnessError:
        """Assert that no witness exists for `inputs` (as far as the calculator can tell).

        The failure must be an assert (`===`), not malformed inputs. `match`, a regular
        expression, is searched in circom's message, e.g. the name of the template whose assert
        fired, so that a test fails for the reason it claims.
        """
        try:
            self.witness(inputs)
        except WitnessError as err:
            if "Assert Failed" not in err.message:  # e.g. a missing input: a broken test
                raise AssertionError(
                    f"{self.name}: witness generation failed, but not on an assert: {err.message}"
                ) from err
            if match is not None and not re.search(match, err.message):
                raise AssertionError(
                    f"{self.name}: witness generation failed, but not with {match!r}: {err.message}"
                ) from err
            return err
        raise AssertionError(f"{self.name}: witness generation accepted inputs it must refuse")

    def check(self, witness: Sequence[int]) -> list[int]:
        """Indices of the constraints the witness violates (empty: it satisfies the R1CS)."""
        return failing_constraints(self.r1cs, witness)

    def expect_constraint_fail(self, witness: Sequence[int]) -> list[int]:
        """Assert that the witness violates at least one constraint; return which."""
        bad = self.check(witness)
        assert bad, f"{self.name}: the edited witness still satisfies every constraint"
        return bad

    def expect_pass(self, inputs: Inputs) -> list[int]:
        """Witness for `inputs`, asserted to satisfy every constraint."""
        w = self.witness(inputs)
        assert self.check(w) == [], f"{self.name}: the calculator's witness breaks constraints"
        return w

    # signals

    def wire(self, signal: str) -> int:
        """Witness index of a signal, named with or without the leading `main.`."""
        name = signal if signal.startswith("main.") else f"main.{signal}"
        try:
            return self.sym[name]
        except KeyError:
            near = get_close_matches(name, self.sym, n=5, cutoff=0.6)
            raise KeyError(f"{self.name} has no wire {name!r} (near: {near})") from None

    def get(self, witness: Sequence[int], signal: str) -> int:
        return witness[self.wire(signal)]

    def get_list(self, witness: Sequence[int], signal: str, n: int) -> list[int]:
        return [witness[self.wire(f"{signal}[{i}]")] for i in range(n)]

    def tamper(self, witness: Sequence[int], signal: str, value: int) -> list[int]:
        """A copy of the witness with one signal set to `value` mod p (so -1 means p - 1)."""
        out = list(witness)
        idx = self.wire(signal)
        new = value % P
        assert out[idx] != new, f"tampering {signal} with its own value proves nothing"
        out[idx] = new
        return out

    def public(self, witness: Sequence[int]) -> list[int]:
        """Public signals in snarkjs order: outputs, then public inputs."""
        return list(witness[1 : 1 + self.r1cs.n_public])

    # sizes

    def constraint_count(self) -> int:
        return self.r1cs.n_constraints

    def nonlinear_count(self) -> int:
        """Constraints with a product of two non-constant terms (circom's "non-linear")."""
        return sum(1 for a, b, _ in self.r1cs.constraints if _varies(a) and _varies(b))


def _varies(lc: Mapping[int, int]) -> bool:
    return any(wire != 0 and coeff for wire, coeff in lc.items())


def transplant(src: Circuit, witness: Sequence[int], dst: Circuit) -> list[int]:
    """Carry a witness of `src` over to `dst` by signal name.

    For two compilations of the same template, one with a constraint removed, this turns a
    witness the relaxed circuit accepts into a hand-built witness for the real one: every hash
    and product is honestly computed, only the removed constraint's condition is violated.
    """
    out = [0] * dst.r1cs.n_wires
    out[0] = 1
    seen = {0}
    for name, wire in dst.sym.items():
        out[wire] = witness[src.sym[name]]
        seen.add(wire)
    missing = set(range(dst.r1cs.n_wires)) - seen
    assert not missing, f"{dst.name}: {len(missing)} wires have no name to carry over"
    return out


def main_source(file: str, template: str, params: Sequence[int], public: Sequence[str] = ()) -> str:
    args = ", ".join(map(str, params))
    pubs = f" {{public [{', '.join(public)}]}}" if public else ""
    return f'pragma circom 2.1.0;\ninclude "{file}";\ncomponent main{pubs} = {template}({args});\n'


def compile_source(
    name: str,
    source: str,
    out_dir: Path,
    *,
    optimize: str = "O1",
    server: WitnessServer | None = None,
) -> Circuit:
    """Compile a main file's text (it may include files under circuits/ or node_modules/, but
    nothing next to itself: circom2 sees only paths below its working directory) into
    out_dir/name/."""
    if optimize not in ("O0", "O1", "O2"):
        raise ValueError(f"unknown optimisation level {optimize!r}")
    out = out_dir / name
    out.mkdir(parents=True, exist_ok=True)
    main = out / f"{name}.circom"
    main.write_text(source)
    # circom2 is a WASI build: include folders must be relative to its working directory.
    cmd = [
        str(BIN / "circom2"), str(main), "--r1cs", "--wasm", "--sym", f"--{optimize}",
        "-l", "circuits", "-l", "node_modules", "-o", str(out),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=COMPILE_TIMEOUT, check=False
    )
    r1cs = out / f"{name}.r1cs"
    if proc.returncode != 0 or not r1cs.is_file():
        raise CompileError(f"circom2 failed on {main}:\n{proc.stdout}\n{proc.stderr}")
    wasm = out / f"{name}_js" / f"{name}.wasm"
    return Circuit(name, r1cs, wasm, out / f"{name}.sym", server or default_server())


def compile_template(
    file: str,
    template: str,
    params: Sequence[int],
    public: Sequence[str] = (),
    tmpdir: Path | None = None,
    *,
    optimize: str = "O1",
    name: str | None = None,
    server: WitnessServer | None = None,
) -> Circuit:
    """Compile `component main {public [...]} = template(params)` from circuits/`file`."""
    if tmpdir is None:
        raise ValueError("compile_template needs an output directory")
    label = name or "_".join([template, *map(str, params), optimize])
    return compile_source(
        label,
        main_source(file, template, params, public),
        tmpdir,
        optimize=optimize,
        server=server,
    )


# --- the circuits under test ----------------------------------------------------------------

# Test-only wrapper circuits: HashList at these lengths, Pack(LEN, BITS) as the circuits use it
# (amounts of 2 and 4 assets; totals at tree depths 4, 10 and 32).
HASH_LENGTHS = (1, 2, 16, 17, 31, 32, 40)
PACK_CASES = ((4, 64), (8, 64), (4, 68), (8, 74), (3, 96))
MERKLE_BOOLEAN_LINE = "pathBits[i] * (pathBits[i] - 1) === 0;"


def _hash_lists_source() -> str:
    """One circuit with a HashList per tested length, all fed from the same 40 inputs."""
    n = len(HASH_LENGTHS)
    lens = ", ".join(map(str, HASH_LENGTHS))
    return f"""pragma circom 2.1.0;
include "lib/hash.circom";
template HashLists() {{
    var LENS[{n}] = [{lens}];
    signal input in[{max(HASH_LENGTHS)}];
    signal output out[{n}];
    component h[{n}];
    for (var k = 0; k < {n}; k++) {{
        h[k] = HashList(LENS[k]);
        for (var i = 0; i < LENS[k]; i++) {{ h[k].in[i] <== in[i]; }}
        out[k] <== h[k].out;
    }}
}}
component main = HashLists();
"""


def _packs_source() -> str:
    """One circuit with a Pack per case: inputs inK[LEN], outputs oK[i] = pK.out[i] * one.

    The product with the input `one` (always 1) keeps each output a wire of its own: an output
    that merely equals an input (a last element holding one value) would otherwise be merged
    into it, giving an .r1cs with fewer wires than inputs + outputs, which prover/r1cs.py refuses.
    """
    lines = ["pragma circom 2.1.0;", 'include "lib/hash.circom";', "template Packs() {"]
    lines.append("    signal input one;")
    for k, (length, bits) in enumerate(PACK_CASES):
        lines += [
            f"    signal input in{k}[{length}];",
            f"    signal output o{k}[packedLength({length}, {bits})];",
            f"    component p{k} = Pack({length}, {bits});",
            f"    for (var i = 0; i < {length}; i++) {{ p{k}.in[i] <== in{k}[i]; }}",
            f"    for (var i = 0; i < packedLength({length}, {bits}); i++) {{",
            f"        o{k}[i] <== p{k}.out[i] * one;",
            "    }",
        ]
    return "\n".join([*lines, "}", "component main = Packs();", ""])


def _constants_source() -> str:
    return """pragma circom 2.1.0;
include "lib/constants.circom";
template Constants() {
    signal output empty[33];
    signal output tag;
    for (var l = 0; l <= 32; l++) { empty[l] <== EMPTY_NODE(l); }
    tag <== CTX_TAG();
}
component main = Constants();
"""


def _relaxed_merkle_source() -> str:
    """lib/merkle.circom without the path-bit boolean constraints (the one thing it drops, in
    MerkleUpdate and MerkleRoot alike), with MerkleUpdate(3) as main. Inlined: circom2 does not
    find includes next to a main in /tmp."""
    text = (ROOT / "circuits" / "lib" / "merkle.circom").read_text()
    assert text.count(MERKLE_BOOLEAN_LINE) == 2, "merkle.circom changed: update the relaxed copy"
    relaxed = text.replace(MERKLE_BOOLEAN_LINE, "// (relaxed: no boolean constraint)")
    return relaxed + "\ncomponent main = MerkleUpdate(3);\n"


@dataclass(frozen=True)
class Unit:
    """A template instance to compile with compile_template (--O1), or the source text of a
    test-only wrapper circuit."""

    cost: float  # rough compile seconds, to start the slow ones first
    file: str = ""
    template: str = ""
    params: tuple[int, ...] = ()
    public: tuple[str, ...] = ()
    source: Callable[[], str] | None = None
    optimize: str = "O1"


@dataclass(frozen=True)
class Production:
    """A circuits.json instance compiled as `setup` compiles it (--O2, cached in build/)."""

    cost: float
    kind: str  # "batch", "solvency" or "margin"
    params: EpochParams

    def spec(self) -> CircuitSpec:
        specs = {
            "batch": self.params.batch_spec,
            "solvency": self.params.solvency_spec,
            "margin": self.params.margin_spec,
        }
        return specs[self.kind]()


# The small test shape and the default one (circuits.json): (BATCH_LEVELS, TREE_DEPTH, N_ASSETS,
# N_INSTR, N_SCEN, N_TIERS).
SMALL = EpochParams(1, 4, 2, 2, 8, 2)
DEFAULT = EpochParams(3, 10, 4, 8, 16, 3)
TIERS3 = EpochParams(1, 4, 1, 1, 2, 3)  # margin_tiers3: one asset in three tiers
TIERS16 = EpochParams(1, 4, 1, 1, 1, 16)  # margin_tiers16: the most tiers a shape may have
SPOT = EpochParams(1, 4, 2, 1, 1, 2)  # an epoch without derivatives: one scenario, no grid
BATCH_PUBLIC = SMALL.batch_spec().public
SOLVENCY_PUBLIC = SMALL.solvency_spec().public
MARGIN_PUBLIC = SMALL.margin_spec().public

CIRCUITS: dict[str, Unit | Production] = {
    "range64": Unit(1.5, "lib/range.circom", "RangeCheck", (64,)),
    "range252": Unit(2, "lib/range.circom", "RangeCheck", (252,)),
    "nnd64": Unit(1.5, "lib/range.circom", "NonNegativeDifference", (64,)),
    "nnd129": Unit(1.5, "lib/range.circom", "NonNegativeDifference", (129,)),
    "hash_lists": Unit(28, source=_hash_lists_source),
    "packs": Unit(1.5, source=_packs_source),
    "constants": Unit(1.5, source=_constants_source),
    "subtree3": Unit(4, "lib/merkle.circom", "SubtreeRoot", (3,)),
    "merkle3": Unit(4, "lib/merkle.circom", "MerkleUpdate", (3,)),
    "merkle3_relaxed": Unit(4, source=_relaxed_merkle_source),
    "merkle_root3": Unit(3, "lib/merkle.circom", "MerkleRoot", (3,)),
    "account2": Unit(4, "lib/account.circom", "AccountLeaf", (2, 2, 128)),
    "account4": Unit(5, "lib/account.circom", "AccountLeaf", (4, 4, 128)),
    "margin_unit": Unit(4, "lib/margin.circom", "Margin", (2, 2, 8, 2)),
    "margin_tiers3": Unit(3, "lib/margin.circom", "Margin", TIERS3.shape[2:]),
    "margin_tiers16": Unit(3, "lib/margin.circom", "Margin", TIERS16.shape[2:]),
    "context": Unit(4, "lib/state.circom", "ContextHash", (4, 1, 2, 2, 8, 2)),
    "context_bounds": Unit(3, "lib/state.circom", "ContextBounds", (2, 2, 8, 2, 128, 128, 68)),
    "totals": Unit(2, "lib/state.circom", "TotalsHash", (4, 68)),
    "state": Unit(2.5, "lib/state.circom", "StateHash"),
    "batch_o1": Unit(14, "batch.circom", "BatchSolvency", SMALL.shape, BATCH_PUBLIC),
    "solvency_o1": Unit(12, "solvency.circom", "Solvency", SMALL.shape, SOLVENCY_PUBLIC),
    "account_margin_o1": Unit(
        12, "account_margin.circom", "AccountMarginProof", SMALL.shape, MARGIN_PUBLIC
    ),
    "batch_1_4_2_2_8_2": Production(14, "batch", SMALL),
    "solvency_1_4_2_2_8_2": Production(12, "solvency", SMALL),
    "margin_1_4_2_2_8_2": Production(12, "margin", SMALL),
    "batch_1_4_2_1_1_2": Production(8, "batch", SPOT),
    "solvency_1_4_2_1_1_2": Production(8, "solvency", SPOT),
    "batch_3_10_4_8_16_3": Production(90, "batch", DEFAULT),
    "solvency_3_10_4_8_16_3": Production(40, "solvency", DEFAULT),
    "margin_3_10_4_8_16_3": Production(25, "margin", DEFAULT),
}


# --- the mirror without its guards -----------------------------------------------------------


def signed(x: int) -> int:
    """A field element read as a signed integer: p - x is -x (for |x| < p / 2)."""
    x %= P
    return x - P if x > P // 2 else x


def codes(qty: Sequence[int]) -> list[int]:
    """Signed quantities (10^-8 contracts) as the circuit's codes m + 2^63 * b."""
    return [qty_code(q) for q in qty]


def raw_pack(values: Sequence[int], bits: int) -> list[int]:
    """circuits/lib/hash.circom Pack over arbitrary field elements (no range check)."""
    per = per_element(bits)
    return [
        sum(v << (j * bits) for j, v in enumerate(values[k : k + per])) % P
        for k in range(0, len(values), per)
    ]


def raw_leaf(
    id_commit: int, equity: Sequence[int], debt: Sequence[int], qty_codes: Sequence[int]
) -> int:
    """AccountLeaf's output for any amounts and codes, in or out of range."""
    interleaved = [v % P for pair in zip(equity, debt, strict=True) for v in pair]
    return hash_list([id_commit, *raw_pack(interleaved, 64), *raw_pack(list(qty_codes), 64)])


def raw_split(amount: int, widths: Sequence[int]) -> list[int]:
    """Fill the tiers in order (margin.tier_split without its range checks)."""
    out = []
    rest = amount
    for w in widths:
        take = min(rest, w)
        out.append(take)
        rest -= take
    return [*out, rest]


@dataclass
class RawContext:
    """ContextHash's preimage as plain integers, unguarded: attacks need hashes of contexts
    that commitments.context_preimage refuses (risk >= 2^128, mode 2, tier weight > weight).
    Risk entries are signed; like every other entry they enter the circuits mod p."""

    epoch: int
    tree_depth: int
    batch_levels: int
    mode: int
    weights: list[int]
    tier_weights: list[list[int]]
    tier_widths: list[list[int]]
    cap_limits: list[int]
    risk: list[list[int]]

    @classmethod
    def of(cls, m: MarginContext, epoch: int, tree_depth: int, batch_levels: int) -> RawContext:
        return cls(
            epoch,
            tree_depth,
            batch_levels,
            m.mode,
            list(m.weights),
            [list(r) for r in m.tier_weights],
            [list(r) for r in m.tier_widths],
            list(m.cap_limits),
            [list(r) for r in m.risk],
        )

    @classmethod
    def from_inputs(cls, raw: Inputs, tree_depth: int, batch_levels: int) -> RawContext:
        """The context of a circuit input (plan_epoch's JSON: decimal strings)."""

        def ints(xs: Sequence[Any]) -> list[int]:
            return [int(x) for x in xs]

        return cls(
            int(raw["epoch"]),
            tree_depth,
            batch_levels,
            int(raw["mode"]),
            ints(raw["weights"]),
            [ints(r) for r in raw["tierWeights"]],
            [ints(r) for r in raw["tierWidths"]],
            ints(raw["capLimit"]),
            [[signed(int(x)) for x in r] for r in raw["risk"]],
        )

    def copy(self) -> RawContext:
        return copy.deepcopy(self)

    @property
    def n_assets(self) -> int:
        return len(self.weights)

    @property
    def n_instruments(self) -> int:
        return len(self.risk)

    @property
    def n_scenarios(self) -> int:
        return len(self.risk[0])

    @property
    def n_tiers(self) -> int:
        return len(self.tier_weights[0])

    def preimage(self) -> list[int]:
        """The field elements ContextHash hashes (commitments.context_preimage's layout)."""
        return [
            v % P
            for v in [
                CTX_TAG,
                self.epoch,
                self.tree_depth,
                self.batch_levels,
                self.n_assets,
                self.n_instruments,
                self.n_scenarios,
                self.n_tiers,
                self.mode,
                *self.weights,
                *(w for row in self.tier_weights for w in row),
                *(d for row in self.tier_widths for d in row),
                *self.cap_limits,
                *(v for row in self.risk for v in row),
            ]
        ]

    def hash(self) -> int:
        return hash_list(self.preimage())

    def inputs(self) -> dict[str, Any]:
        """The context's circuit inputs, every entry mod p."""
        return {
            "epoch": self.epoch % P,
            "mode": self.mode % P,
            "weights": [w % P for w in self.weights],
            "tierWeights": [[w % P for w in row] for row in self.tier_weights],
            "tierWidths": [[d % P for d in row] for row in self.tier_widths],
            "capLimit": [c % P for c in self.cap_limits],
            "risk": [[v % P for v in row] for row in self.risk],
        }

    def margin(self) -> MarginContext:
        """The prover's MarginContext for the same numbers (for prover.margin's functions)."""
        return MarginContext(
            self.mode,
            self.weights,
            self.tier_weights,
            self.tier_widths,
            self.cap_limits,
            self.risk,
        )

    def split(self, equity: Sequence[int]) -> list[list[int]]:
        """Every equity filled into its asset's tiers in order: the honest split."""
        return [raw_split(e, self.tier_widths[a]) for a, e in enumerate(equity)]

    def margin_values(
        self,
        equity: Sequence[int],
        debt: Sequence[int],
        qty: Sequence[int],
        split: Sequence[Sequence[int]] | None = None,
    ) -> list[int]:
        """What Margin range-checks per scenario before shortfall and floor, as integers:
        credit - debt value + sum_i q_i * L[i][s] - sum_i |q_i|, for signed quantities `qty`
        and any split (default: the honest one). margin.margin_values, unguarded."""
        split = self.split(equity) if split is None else split
        credit = sum(
            x * w
            for row, weights in zip(split, self.tier_weights, strict=True)
            for x, w in zip(row, weights, strict=True)
        )
        debt_value = sum(d * w for d, w in zip(debt, self.weights, strict=True))
        base = credit - debt_value - sum(abs(q) for q in qty)
        return [
            base + sum(q * row[s] for q, row in zip(qty, self.risk, strict=True))
            for s in range(self.n_scenarios)
        ]

    def headroom(
        self,
        equity: Sequence[int],
        debt: Sequence[int],
        qty: Sequence[int],
        split: Sequence[Sequence[int]] | None = None,
    ) -> int:
        return min(self.margin_values(equity, debt, qty, split))


def raw_totals_hash(totals: Sequence[int], tree_depth: int) -> int:
    return hash_list(raw_pack([t % P for t in totals], total_bits(tree_depth)))


def raw_state(
    ctx: int,
    count: int,
    root: int,
    totals: Sequence[int],
    shortfall: int,
    blind: int,
    depth: int,
) -> int:
    return poseidon(
        [ctx, count % P, root, raw_totals_hash(totals, depth), shortfall % P, blind % P]
    )


def _ints(xs: Sequence[Any]) -> list[int]:
    return [int(x) for x in xs]


@dataclass
class BatchCase:
    """The private and public inputs of one BatchSolvency proof, editable field by field.

    `inputs()` derives prevState (ctxHash for batch 0, else the opening of the old state),
    ctxHash and nextState from the other fields with the unguarded mirror, unless they are set
    explicitly, so an attack can break exactly one relation and leave every other one
    consistent. `qty` holds the position codes (m + 2^63 * b) as the circuit takes them.
    """

    batch_levels: int
    tree_depth: int
    context: RawContext
    batch_index: int
    old_root: int
    old_totals: list[int]
    old_shortfall: int
    prev_blind: int
    next_blind: int
    siblings: list[int]
    id_commit: list[int]
    equity: list[list[int]]
    debt: list[list[int]]
    qty: list[list[int]]
    shortfall: list[int]
    ctx_hash: int | None = None
    prev_state: int | None = None
    next_state: int | None = None
    next_count: int | None = None  # batchCount hashed into nextState (default batchIndex + 1)
    next_root: int | None = None  # root hashed into nextState (default: the updated tree)
    next_totals: list[int] | None = None  # totals hashed into nextState (default: old + sums)
    next_shortfall: int | None = None  # shortfall hashed into nextState (default: old + sum)

    @classmethod
    def from_plan_input(cls, batch_levels: int, tree_depth: int, raw: Inputs) -> BatchCase:
        """Start from one of witness.plan_epoch's batch inputs (its states are recomputed:
        check_plan asserts they agree with the plan's)."""
        return cls(
            batch_levels=batch_levels,
            tree_depth=tree_depth,
            context=RawContext.from_inputs(raw, tree_depth, batch_levels),
            batch_index=int(raw["batchIndex"]),
            old_root=int(raw["oldRoot"]),
            old_totals=_ints(raw["oldTotals"]),
            old_shortfall=int(raw["oldShortfall"]),
            prev_blind=int(raw["prevBlind"]),
            next_blind=int(raw["nextBlind"]),
            siblings=_ints(raw["siblings"]),
            id_commit=_ints(raw["idCommit"]),
            equity=[_ints(row) for row in raw["equity"]],
            debt=[_ints(row) for row in raw["debt"]],
            qty=[_ints(row) for row in raw["qty"]],
            shortfall=_ints(raw["shortfall"]),
        )

    def set_account(
        self,
        slot: int,
        equity: Sequence[int],
        debt: Sequence[int],
        qty: Sequence[int] | None = None,
        shortfall: int = 0,
    ) -> None:
        """Replace the account in `slot`; `qty` are signed quantities (default: none)."""
        self.equity[slot] = list(equity)
        self.debt[slot] = list(debt)
        self.qty[slot] = codes(qty if qty is not None else [0] * self.context.n_instruments)
        self.shortfall[slot] = shortfall

    def signed_qty(self, slot: int) -> list[int]:
        return [qty_from_code(c) for c in self.qty[slot]]

    def margin_values(self, slot: int) -> list[int]:
        """The account's margin value per scenario (tiers filled in order, as Margin does)."""
        return self.context.margin_values(self.equity[slot], self.debt[slot], self.signed_qty(slot))

    def ctx(self) -> int:
        return self.context.hash() if self.ctx_hash is None else self.ctx_hash

    def leaves(self) -> list[int]:
        return [
            raw_leaf(c, e, d, q)
            for c, e, d, q in zip(self.id_commit, self.equity, self.debt, self.qty, strict=True)
        ]

    def new_root(self) -> int:
        sub = subtree_levels(self.leaves())[-1][0]
        return climb(sub, self.batch_index, self.siblings)

    def new_totals(self) -> list[int]:
        out = list(self.old_totals)
        for eq_row, debt_row in zip(self.equity, self.debt, strict=True):
            for i, (e, d) in enumerate(zip(eq_row, debt_row, strict=True)):
                out[2 * i] += e
                out[2 * i + 1] += d
        return [t % P for t in out]

    def new_shortfall(self) -> int:
        return (self.old_shortfall + sum(self.shortfall)) % P

    def inputs(self) -> dict[str, Any]:
        ctx = self.ctx()
        depth = self.tree_depth
        if self.prev_state is not None:
            prev = self.prev_state
        elif self.batch_index == 0:
            prev = ctx
        else:
            prev = raw_state(
                ctx,
                self.batch_index,
                self.old_root,
                self.old_totals,
                self.old_shortfall,
                self.prev_blind,
                depth,
            )
        if self.next_state is not None:
            nxt = self.next_state
        else:
            count = self.batch_index + 1 if self.next_count is None else self.next_count
            root = self.new_root() if self.next_root is None else self.next_root
            totals = self.new_totals() if self.next_totals is None else self.next_totals
            short = self.new_shortfall() if self.next_shortfall is None else self.next_shortfall
            nxt = raw_state(ctx, count, root, totals, short, self.next_blind, depth)
        return {
            "prevState": prev,
            "nextState": nxt,
            "ctxHash": ctx,
            **self.context.inputs(),
            "batchIndex": self.batch_index % P,
            "oldRoot": self.old_root,
            "oldTotals": [t % P for t in self.old_totals],
            "oldShortfall": self.old_shortfall % P,
            "prevBlind": self.prev_blind,
            "nextBlind": self.next_blind,
            "siblings": self.siblings,
            "idCommit": self.id_commit,
            "equity": [[v % P for v in row] for row in self.equity],
            "debt": [[v % P for v in row] for row in self.debt],
            "qty": [[v % P for v in row] for row in self.qty],
            "shortfall": [s % P for s in self.shortfall],
        }

    def public(self) -> list[int]:
        """[prevState, nextState, ctxHash] as the circuit should output them."""
        i = self.inputs()
        return [i["prevState"], i["nextState"], i["ctxHash"]]


def empty_root(tree_depth: int) -> int:
    return empty_nodes(tree_depth)[tree_depth]


def first_batch(context: RawContext, batch_levels: int, blind: int = 77) -> BatchCase:
    """Batch 0 of an empty epoch under `context`, with empty (all-zero, id 0) accounts: tests
    fill the slots with set_account."""
    depth = context.tree_depth
    b, n = 1 << batch_levels, context.n_assets
    zeros = empty_nodes(depth)
    return BatchCase(
        batch_levels=batch_levels,
        tree_depth=depth,
        context=context,
        batch_index=0,
        old_root=empty_root(depth),
        old_totals=[0] * (2 * n),
        old_shortfall=0,
        prev_blind=0,
        next_blind=blind,
        siblings=list(zeros[batch_levels:depth]),
        id_commit=[1000 + a for a in range(b)],
        equity=[[0] * n for _ in range(b)],
        debt=[[0] * n for _ in range(b)],
        qty=[[0] * context.n_instruments for _ in range(b)],
        shortfall=[0] * b,
    )


@dataclass
class SolvencyCase:
    """The inputs of one Solvency proof; ctxHash, finalState and totalsCommit follow the
    context, the totals and the shortfall unless set explicitly."""

    context: RawContext
    batch_count: int
    root: int
    totals: list[int]
    shortfall: int
    insurance_fund: int
    blind: int
    verified: list[int]
    declared: list[int]
    ctx_hash: int | None = None
    final_state: int | None = None
    totals_commit: int | None = None
    domain: int = 0
    verified_only: int | None = None  # follows the totals and verified reserves unless set

    @classmethod
    def from_plan_input(cls, tree_depth: int, batch_levels: int, raw: Inputs) -> SolvencyCase:
        return cls(
            context=RawContext.from_inputs(raw, tree_depth, batch_levels),
            batch_count=int(raw["batchCount"]),
            root=int(raw["root"]),
            totals=_ints(raw["totals"]),
            shortfall=int(raw["shortfall"]),
            insurance_fund=int(raw["insuranceFund"]),
            blind=int(raw["blind"]),
            verified=_ints(raw["verified"]),
            declared=_ints(raw["declared"]),
            domain=int(raw["domain"]),
        )

    @property
    def tree_depth(self) -> int:
        return self.context.tree_depth

    def ctx(self) -> int:
        return self.context.hash() if self.ctx_hash is None else self.ctx_hash

    def inputs(self) -> dict[str, Any]:
        depth = self.tree_depth
        ctx = self.ctx()
        final = self.final_state
        if final is None:
            final = raw_state(
                ctx, self.batch_count, self.root, self.totals, self.shortfall, self.blind, depth
            )
        commit = self.totals_commit
        if commit is None:
            commit = raw_totals_hash(self.totals, depth)
        return {
            "finalState": final,
            "ctxHash": ctx,
            "root": self.root,
            "totalsCommit": commit,
            "batchCount": self.batch_count % P,
            "shortfall": self.shortfall % P,
            "insuranceFund": self.insurance_fund % P,
            "domain": self.domain % P,
            **self.context.inputs(),
            "verified": [r % P for r in self.verified],
            "declared": [r % P for r in self.declared],
            "verifiedOnly": self.true_verified_only()
            if self.verified_only is None
            else self.verified_only % P,
            "totals": [t % P for t in self.totals],
            "blind": self.blind,
        }

    def true_verified_only(self) -> int:
        """1 iff equity <= verified + debt for every asset (as integers, before reduction)."""
        t = self.totals
        return int(all(t[2 * i] <= v + t[2 * i + 1] for i, v in enumerate(self.verified)))

    def public(self) -> list[int]:
        i = self.inputs()
        out: list[int] = []
        for name in SOLVENCY_PUBLIC:
            value = i[name]
            out.extend(value if isinstance(value, list) else [value])
        return out


@dataclass
class AccountCase:
    """The inputs of one AccountMarginProof: an account of a published tree and the headroom
    it claims. The root follows the leaf and its path unless set explicitly."""

    context: RawContext
    id_commit: int
    equity: list[int]
    debt: list[int]
    qty: list[int]  # codes
    headroom: int
    leaf_index: int
    siblings: list[int]
    root: int | None = None
    ctx_hash: int | None = None

    @classmethod
    def from_plan(cls, plan: EpochPlan, j: int, headroom: int | None = None) -> AccountCase:
        """Leaf j of a planned epoch, claiming its true headroom (or `headroom`)."""
        params = plan.context.params
        n = params.n_assets
        acc = plan.accounts[j]
        case = cls(
            context=RawContext.of(
                plan.context.margin, plan.context.epoch, params.tree_depth, params.batch_levels
            ),
            id_commit=plan.id_commits[j],
            equity=[*acc.equity, *[0] * (n - len(acc.equity))],
            debt=[*acc.debt, *[0] * (n - len(acc.debt))],
            qty=codes(plan.qty[j]),
            headroom=0,
            leaf_index=j,
            siblings=list(plan.tree.inclusion_path(j)),
        )
        assert case.leaf() == plan.leaves[j] and case.tree_root() == plan.tree.root
        case.headroom = case.true_headroom() if headroom is None else headroom
        return case

    def signed_qty(self) -> list[int]:
        return [qty_from_code(c) for c in self.qty]

    def true_headroom(self) -> int:
        """The largest headroom the account can prove (negative: it cannot prove any)."""
        return self.context.headroom(self.equity, self.debt, self.signed_qty())

    def leaf(self) -> int:
        return raw_leaf(self.id_commit, self.equity, self.debt, self.qty)

    def tree_root(self) -> int:
        return climb(self.leaf(), self.leaf_index, self.siblings)

    def ctx(self) -> int:
        return self.context.hash() if self.ctx_hash is None else self.ctx_hash

    def inputs(self) -> dict[str, Any]:
        return {
            "ctxHash": self.ctx(),
            "root": self.tree_root() if self.root is None else self.root,
            "idCommit": self.id_commit % P,
            "headroom": self.headroom % P,
            **self.context.inputs(),
            "equity": [v % P for v in self.equity],
            "debt": [v % P for v in self.debt],
            "qty": [v % P for v in self.qty],
            "leafIndex": self.leaf_index % P,
            "siblings": self.siblings,
        }

    def public(self) -> list[int]:
        i = self.inputs()
        return [i[name] for name in MARGIN_PUBLIC]


def source_line(file: str, snippet: str, after: str | None = None) -> int:
    """1-based line of the only line in circuits/`file` that contains `snippet` (of the first
    such line after the one holding `after`, e.g. "template MerkleRoot(")."""
    lines = (ROOT / "circuits" / file).read_text().splitlines()
    if after is not None:
        starts = [n for n, text in enumerate(lines, 1) if after in text]
        assert len(starts) == 1, f"{file}: {after!r} is on lines {starts}, expected exactly one"
        found = [n for n, text in enumerate(lines, 1) if n > starts[0] and snippet in text][:1]
    else:
        found = [n for n, text in enumerate(lines, 1) if snippet in text]
    assert len(found) == 1, f"{file}: {snippet!r} is on lines {found}, expected exactly one"
    return found[0]


def assert_at(template: str, file: str, snippet: str, after: str | None = None) -> str:
    """A regular expression for WitnessError.message: the first assert to fail is the one on
    the line of `file` holding `snippet`, directly in `template` (not in a subcomponent)."""
    line = source_line(file, snippet, after)
    return rf"^Error: Assert Failed\. Error in template {template}_\d+ line: {line}\b"


def fired_in(*templates: str) -> str:
    """A regular expression for a failure inside nested components, innermost first, e.g.
    fired_in("RangeCheck", "AccountLeaf", "BatchSolvency")."""
    return r"^Error: Assert Failed\. " + " ".join(
        rf"Error in template {t}_\d+ line: \d+" for t in templates
    )


Level = str | tuple[str, str, str]


def nested(*levels: Level) -> str:
    """Like fired_in, but a level may be (template, file, snippet): the chain must pass through
    that template's line holding `snippet` in circuits/`file`. circom names, for each enclosing
    template, the line that fed the failing subcomponent its last input, so this tells apart
    two range checks of one template, e.g. an amount's and a total's in BatchSolvency."""
    parts = []
    for level in levels:
        if isinstance(level, tuple):
            template, file, snippet = level
            line = source_line(file, snippet)
            parts.append(rf"Error in template {template}_\d+ line: {line}\b")
        else:
            parts.append(rf"Error in template {level}_\d+ line: \d+")
    return r"^Error: Assert Failed\. " + " ".join(parts)


# --- random epochs ------------------------------------------------------------------------------


def random_amount(rng: random.Random) -> int:
    """0, the 64-bit maximum, or a value of random size: edges show up often."""
    r = rng.random()
    if r < 0.2:
        return 0
    if r < 0.3:
        return (1 << 64) - 1
    return rng.randrange(1 << rng.randint(1, 64))


def random_snapshot(
    seed: int, n_assets: int, n_accounts: int, used: int | None = None
) -> tuple[Snapshot, tuple[int, ...]]:
    """A solvent snapshot (with some exactly covered accounts) and reserves that cover it.

    Unless `used` says how many, it has 1..n_assets assets, so the circuit's unused asset slots
    (weight 0, reserve 0) are exercised too.
    """
    rng = random.Random(seed)
    used = rng.randint(1, n_assets) if used is None else used
    assets = tuple(
        Asset(f"A{i}", rng.randint(0, 18), rng.randint(1, (1 << rng.randint(1, 64)) - 1) or 1)
        for i in range(used)
    )
    top = max(a.decimals for a in assets)
    mult = [a.price_e8 * 10 ** (top - a.decimals) for a in assets]
    accounts = []
    for n in range(n_accounts):
        equity = [random_amount(rng) for _ in assets]
        if rng.random() < 0.15:
            debt = list(equity)  # equity value == debt value: the boundary must pass
        else:
            debt = [random_amount(rng) for _ in assets]
            eq_value = sum(e * m for e, m in zip(equity, mult, strict=True))
            debt_value = sum(d * m for d, m in zip(debt, mult, strict=True))
            if debt_value > eq_value:
                debt = [d * eq_value // debt_value for d in debt]
        accounts.append(Account(f"user-{seed}-{n}", tuple(equity), tuple(debt), n + 1))
    totals = [
        (sum(a.equity[i] for a in accounts), sum(a.debt[i] for a in accounts)) for i in range(used)
    ]
    reserves = tuple(
        max(0, eq - debt) + rng.choice([0, 0, 1, rng.randrange(1 << 100)]) for eq, debt in totals
    )
    return Snapshot(assets, tuple(accounts), f"random_snapshot({seed})"), reserves


# --- random margin inputs ----------------------------------------------------------------------


def random_context(
    rng: random.Random, params: EpochParams, epoch: int = 1, mode: int = STRICT
) -> RawContext:
    """An in-range context of the given shape: tier weights fall from tier to tier (as the
    context builder makes them), widths and risk entries of random size, the widest cap."""
    n, k = params.n_assets, params.n_tiers
    weights, tier_weights, widths = [], [], []
    for _ in range(n):
        w = 0 if rng.random() < 0.1 else rng.randrange(1, 1 << rng.randint(1, 124))
        rates = sorted((rng.randint(0, RATE_ONE) for _ in range(k)), reverse=True)
        if rng.random() < 0.3:
            rates[0] = RATE_ONE
        weights.append(w)
        tier_weights.append([w * r // RATE_ONE for r in rates])
        widths.append(
            [rng.choice([0, rng.randrange(1 << rng.randint(1, 64))]) for _ in range(k - 1)]
        )
    risk_bits = rng.randint(1, 127)
    risk = [
        [
            0 if rng.random() < 0.1 else rng.choice([1, -1]) * rng.randrange(1 << risk_bits)
            for _ in range(params.n_scenarios)
        ]
        for _ in range(params.n_instruments)
    ]
    caps = [(1 << total_bits(params.tree_depth)) - 1] * n
    return RawContext(
        epoch, params.tree_depth, params.batch_levels, mode, weights, tier_weights, widths, caps,
        risk,
    )  # fmt: skip


def random_margin_account(
    rng: random.Random, ctx: RawContext
) -> tuple[list[int], list[int], list[int]]:
    """(equity, debt, signed quantities) whose equity covers its debt at full weights, with
    positions of random size (or none), so that its margin may go either way."""
    equity = [random_amount(rng) for _ in range(ctx.n_assets)]
    debt = [random_amount(rng) for _ in range(ctx.n_assets)]
    eq_value = sum(e * w for e, w in zip(equity, ctx.weights, strict=True))
    debt_value = sum(d * w for d, w in zip(debt, ctx.weights, strict=True))
    if debt_value > eq_value:
        debt = [d * eq_value // debt_value for d in debt]
    qty_bits = rng.randint(1, 63)
    qty = [
        0 if rng.random() < 0.25 else rng.choice([1, -1]) * rng.randrange(1, 1 << qty_bits)
        for _ in range(ctx.n_instruments)
    ]
    return equity, debt, qty


def tiered_haircuts(snapshot: Snapshot, n_tiers: int) -> HaircutTable:
    """A haircut table for random snapshots: each asset's account tiers step at quantiles of
    the accounts' holdings (so some accounts span tiers) at 100%, 85%, 70%, ...; the exchange
    bracket's bound is exactly the exchange's total (so the cap limit check is at its edge)."""
    entries = {}
    for i, asset in enumerate(snapshot.assets):
        held = sorted(acc.equity[i] for acc in snapshot.accounts if acc.equity[i])
        ups: list[int | None] = []
        for t in range(1, n_tiers):
            if held:
                up = min(held[len(held) * t // n_tiers], MAX_AMOUNT)
                if up > max([0, *(u for u in ups if u is not None)]):
                    ups.append(up)
        rates = tuple(RATE_ONE - 1500 * t for t in range(len(ups) + 1))
        total = sum(acc.equity[i] for acc in snapshot.accounts)
        if 1 <= total <= MAX_AMOUNT:
            brackets: tuple[tuple[int | None, ...], tuple[int, ...]] = (
                (total, None),
                (RATE_ONE, 5000),
            )
        else:
            brackets = ((None,), (RATE_ONE,))
        entries[asset.symbol] = AssetHaircuts((*ups, None), rates, *brackets)
    return HaircutTable(entries)


def margin_inputs(
    snapshot: Snapshot,
    params: EpochParams,
    seed: int,
    *,
    haircuts: bool = False,
    mode: int = STRICT,
    fund: int = 0,
) -> MarginInputs:
    """Sample derivatives on the snapshot's first assets (perpetuals first, so the small
    shape's two instruments are the two perps), optionally tiered haircuts."""
    table = tiered_haircuts(snapshot, params.n_tiers) if haircuts else None
    derivatives = sample_derivatives(snapshot, params.n_instruments, seed=seed)
    return MarginInputs(derivatives, table, mode=mode, insurance_fund=fund)

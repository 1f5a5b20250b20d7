"""A witness tester for the circom templates (in the spirit of circomkit's WitnessTester).

`compile_template` writes a main component for one template of circuits/, compiles it with
circom2 and returns a `Circuit` that computes witnesses (`witness`, `expect_fail`), checks them
against its R1CS (`check`, `expect_constraint_fail`) and edits them by signal name (`tamper`).

Unit templates are compiled with --O1: it keeps every named signal as a wire (only signal = signal
and signal = constant equalities are folded), so any signal can be tampered with, and it keeps the
linear constraints, which `failing_constraints` checks like any other. Production instances are
compiled with --O2 by `zksolvency.prover.keys.compile_circuit` and wrapped with `Circuit.of`.

CIRCUITS lists every circuit the tests compile (conftest.py makes each a session fixture).
The mirror helpers (`raw_*`, `BatchCase`, `SolvencyCase`) compute the same hashes as
zksolvency.prover.commitments, but without its input checks: attacks need hashes of values the
mirror rightly refuses (amounts >= 2^64, weights >= 2^128, negative totals as p - x).
`assert_at` and `fired_in` build `expect_fail` patterns naming the assert that must fail.
"""

from __future__ import annotations

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

from zksolvency.prover.commitments import CTX_TAG, empty_nodes, total_bits
from zksolvency.prover.field import P, per_element
from zksolvency.prover.keys import CircuitBuild
from zksolvency.prover.params import EpochParams
from zksolvency.prover.poseidon import hash_list, poseidon
from zksolvency.prover.r1cs import R1CS, failing_constraints, read_sym
from zksolvency.prover.snapshot import Account, Asset, Snapshot
from zksolvency.prover.tree import climb, subtree_levels

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
    """lib/merkle.circom without the path-bit boolean constraint (the one thing it drops), with
    MerkleUpdate(3) as main. Inlined: circom2 does not find includes next to a main in /tmp."""
    text = (ROOT / "circuits" / "lib" / "merkle.circom").read_text()
    assert text.count(MERKLE_BOOLEAN_LINE) == 1, "merkle.circom changed: update the relaxed copy"
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
    kind: str  # "batch" or "solvency"
    params: EpochParams


BATCH_PUBLIC = ("prevState", "nextState", "ctxHash")
SOLVENCY_PUBLIC = ("finalState", "ctxHash", "root", "totalsCommit", "batchCount", "reserves")
SMALL = EpochParams(1, 4, 2)
DEFAULT = EpochParams(3, 10, 4)

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
    "account2": Unit(4, "lib/account.circom", "AccountLeaf", (2, 128)),
    "account4": Unit(5, "lib/account.circom", "AccountLeaf", (4, 128)),
    "context": Unit(3, "lib/state.circom", "ContextHash", (4, 1, 2, 128)),
    "totals": Unit(2, "lib/state.circom", "TotalsHash", (4, 68)),
    "state": Unit(2.5, "lib/state.circom", "StateHash"),
    "batch_o1": Unit(10, "batch.circom", "BatchSolvency", (1, 4, 2), BATCH_PUBLIC),
    "solvency_o1": Unit(8, "solvency.circom", "Solvency", (4, 2), SOLVENCY_PUBLIC),
    "batch_1_4_2": Production(10, "batch", SMALL),
    "solvency_4_2": Production(8, "solvency", SMALL),
    "batch_3_10_4": Production(14, "batch", DEFAULT),
    "solvency_10_4": Production(9, "solvency", DEFAULT),
}


# --- the mirror without its guards -----------------------------------------------------------


def raw_pack(values: Sequence[int], bits: int) -> list[int]:
    """circuits/lib/hash.circom Pack over arbitrary field elements (no range check)."""
    per = per_element(bits)
    return [
        sum(v << (j * bits) for j, v in enumerate(values[k : k + per])) % P
        for k in range(0, len(values), per)
    ]


def raw_leaf(id_commit: int, equity: Sequence[int], debt: Sequence[int]) -> int:
    """AccountLeaf's output for any amounts, in or out of range."""
    interleaved = [v for pair in zip(equity, debt, strict=True) for v in pair]
    return hash_list([id_commit, *raw_pack(interleaved, 64)])


def raw_context_hash(epoch: int, tree_depth: int, batch_levels: int, weights: Sequence[int]) -> int:
    """ContextHash for any weights (commitments.context_hash refuses those >= 2^128)."""
    return hash_list([CTX_TAG, epoch, tree_depth, batch_levels, len(weights), *weights])


def raw_totals_hash(totals: Sequence[int], tree_depth: int) -> int:
    return hash_list(raw_pack([t % P for t in totals], total_bits(tree_depth)))


def raw_state(
    ctx: int, count: int, root: int, totals: Sequence[int], blind: int, depth: int
) -> int:
    return poseidon([ctx, count % P, root, raw_totals_hash(totals, depth), blind])


@dataclass
class BatchCase:
    """The private and public inputs of one BatchSolvency proof, editable field by field.

    `inputs()` derives prevState (ctxHash for batch 0, else the opening of the old state) and
    nextState from the other fields with the unguarded mirror, unless they are set explicitly,
    so an attack can break exactly one relation and leave every other one consistent.
    """

    batch_levels: int
    tree_depth: int
    epoch: int
    weights: list[int]
    batch_index: int
    old_root: int
    old_totals: list[int]
    prev_blind: int
    next_blind: int
    siblings: list[int]
    id_commit: list[int]
    equity: list[list[int]]
    debt: list[list[int]]
    ctx_hash: int | None = None
    prev_state: int | None = None
    next_state: int | None = None
    next_count: int | None = None  # batchCount hashed into nextState (default batchIndex + 1)
    next_root: int | None = None  # root hashed into nextState (default: the updated tree)
    next_totals: list[int] | None = None  # totals hashed into nextState (default: old + sums)

    @classmethod
    def from_plan_input(cls, batch_levels: int, tree_depth: int, raw: Inputs) -> BatchCase:
        """Start from one of witness.plan_epoch's batch inputs (its states are recomputed)."""

        def ints(xs: Sequence[Any]) -> list[int]:
            return [int(x) for x in xs]

        return cls(
            batch_levels=batch_levels,
            tree_depth=tree_depth,
            epoch=int(raw["epoch"]),
            weights=ints(raw["weights"]),
            batch_index=int(raw["batchIndex"]),
            old_root=int(raw["oldRoot"]),
            old_totals=ints(raw["oldTotals"]),
            prev_blind=int(raw["prevBlind"]),
            next_blind=int(raw["nextBlind"]),
            siblings=ints(raw["siblings"]),
            id_commit=ints(raw["idCommit"]),
            equity=[ints(row) for row in raw["equity"]],
            debt=[ints(row) for row in raw["debt"]],
        )

    def ctx(self) -> int:
        if self.ctx_hash is not None:
            return self.ctx_hash
        return raw_context_hash(self.epoch, self.tree_depth, self.batch_levels, self.weights)

    def leaves(self) -> list[int]:
        return [
            raw_leaf(c, e, d)
            for c, e, d in zip(self.id_commit, self.equity, self.debt, strict=True)
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

    def inputs(self) -> dict[str, Any]:
        ctx = self.ctx()
        depth = self.tree_depth
        if self.prev_state is not None:
            prev = self.prev_state
        elif self.batch_index == 0:
            prev = ctx
        else:
            prev = raw_state(
                ctx, self.batch_index, self.old_root, self.old_totals, self.prev_blind, depth
            )
        if self.next_state is not None:
            nxt = self.next_state
        else:
            count = self.batch_index + 1 if self.next_count is None else self.next_count
            root = self.new_root() if self.next_root is None else self.next_root
            totals = self.new_totals() if self.next_totals is None else self.next_totals
            nxt = raw_state(ctx, count, root, totals, self.next_blind, depth)
        return {
            "prevState": prev,
            "nextState": nxt,
            "ctxHash": ctx,
            "epoch": self.epoch,
            "weights": self.weights,
            "batchIndex": self.batch_index % P,
            "oldRoot": self.old_root,
            "oldTotals": [t % P for t in self.old_totals],
            "prevBlind": self.prev_blind,
            "nextBlind": self.next_blind,
            "siblings": self.siblings,
            "idCommit": self.id_commit,
            "equity": [[v % P for v in row] for row in self.equity],
            "debt": [[v % P for v in row] for row in self.debt],
        }

    def public(self) -> list[int]:
        """[prevState, nextState, ctxHash] as the circuit should output them."""
        i = self.inputs()
        return [i["prevState"], i["nextState"], i["ctxHash"]]


def empty_root(tree_depth: int) -> int:
    return empty_nodes(tree_depth)[tree_depth]


@dataclass
class SolvencyCase:
    """The inputs of one Solvency proof; finalState and totalsCommit follow the totals unless
    set explicitly."""

    tree_depth: int
    ctx_hash: int
    batch_count: int
    root: int
    totals: list[int]
    blind: int
    reserves: list[int]
    final_state: int | None = None
    totals_commit: int | None = None

    @classmethod
    def from_plan_input(cls, tree_depth: int, raw: Inputs) -> SolvencyCase:
        return cls(
            tree_depth=tree_depth,
            ctx_hash=int(raw["ctxHash"]),
            batch_count=int(raw["batchCount"]),
            root=int(raw["root"]),
            totals=[int(x) for x in raw["totals"]],
            blind=int(raw["blind"]),
            reserves=[int(x) for x in raw["reserves"]],
        )

    def inputs(self) -> dict[str, Any]:
        depth = self.tree_depth
        final = self.final_state
        if final is None:
            final = raw_state(
                self.ctx_hash, self.batch_count, self.root, self.totals, self.blind, depth
            )
        commit = self.totals_commit
        if commit is None:
            commit = raw_totals_hash(self.totals, depth)
        return {
            "finalState": final,
            "ctxHash": self.ctx_hash,
            "root": self.root,
            "totalsCommit": commit,
            "batchCount": self.batch_count % P,
            "reserves": [r % P for r in self.reserves],
            "totals": [t % P for t in self.totals],
            "blind": self.blind,
        }

    def public(self) -> list[int]:
        i = self.inputs()
        return [
            i["finalState"], i["ctxHash"], i["root"], i["totalsCommit"], i["batchCount"],
            *i["reserves"],
        ]  # fmt: skip


def source_line(file: str, snippet: str) -> int:
    """1-based line of the only line in circuits/`file` that contains `snippet`."""
    lines = (ROOT / "circuits" / file).read_text().splitlines()
    found = [n for n, text in enumerate(lines, 1) if snippet in text]
    assert len(found) == 1, f"{file}: {snippet!r} is on lines {found}, expected exactly one"
    return found[0]


def assert_at(template: str, file: str, snippet: str) -> str:
    """A regular expression for WitnessError.message: the first assert to fail is the one on
    the line of `file` holding `snippet`, directly in `template` (not in a subcomponent)."""
    line = source_line(file, snippet)
    return rf"^Error: Assert Failed\. Error in template {template}_\d+ line: {line}\b"


def fired_in(*templates: str) -> str:
    """A regular expression for a failure inside nested components, innermost first, e.g.
    fired_in("RangeCheck", "AccountLeaf", "BatchSolvency")."""
    return r"^Error: Assert Failed\. " + " ".join(
        rf"Error in template {t}_\d+ line: \d+" for t in templates
    )


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

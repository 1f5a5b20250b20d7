"""Session fixtures for the registry tests: toy circuits with the real public interfaces (batch,
solvency, single-account margin), their snarkjs keys and verifiers, real Groth16 proofs, one
anvil node and one deployment (registry and AccountMarginVerifier).

Every test runs between evm_snapshot / evm_revert, so each starts from the fresh deployment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.types import RPCEndpoint
from zksolvency.prover import chain
from zksolvency.prover.atomic import sha256_file
from zksolvency.prover.commitments import registry_domain, solvency_public_count
from zksolvency.prover.deployment import build_contracts
from zksolvency.prover.keys import CircuitBuild, Keys, KeySet, r1cs_header, setup_keys
from zksolvency.prover.params import CircuitSpec
from zksolvency.prover.paths import ToolchainMissing, node_bin

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PTAU = Path(
    os.environ.get("ZKSOLVENCY_DEV_PTAU", REPO.parent / "shared" / "ptau" / "dev_pot12.ptau")
)
N_ASSETS = 4  # toy_solvency.circom instantiates ToySolvency(4)
P = chain.SNARK_SCALAR_FIELD

Proof = dict[str, Any]


@dataclass(frozen=True)
class ToySetup:
    """Toy keys and the contracts built from them (``build`` holds generated/ and out/)."""

    build: Path
    artifacts: dict[str, chain.ContractArtifact]
    wasm: dict[str, Path]
    zkey: dict[str, Path]
    keys: Keys
    margin_keys: KeySet


@dataclass(frozen=True)
class ToyEpoch:
    """A provable epoch: batch proofs chained from ctx, plus solvency proofs whose signals are
    [finalState, ctxHash, root, totalsCommit, batchCount, shortfall, insuranceFund, epoch,
    domain, weights[N], verified[N], declared[N], verifiedOnly], one per epoch number in
    TOY_EPOCHS, all for the session's registry."""

    ctx: int
    bundle_hash: bytes
    batches: list[tuple[Proof, list[str]]]
    solvencies: dict[int, tuple[Proof, list[str]]]

    @property
    def solvency(self) -> tuple[Proof, list[str]]:
        """The solvency proof for epoch 1."""
        return self.solvencies[1]

    def solvency_at(self, epoch: int) -> tuple[Proof, list[str]]:
        return self.solvencies[epoch]

    @property
    def states(self) -> list[int]:
        """[ctx, state after batch 0, ...]."""
        return [self.ctx] + [int(pub[1]) for _, pub in self.batches]

    @property
    def root(self) -> int:
        return int(self.solvency[1][2])

    @property
    def totals_commit(self) -> int:
        return int(self.solvency[1][3])

    @property
    def shortfall(self) -> int:
        return int(self.solvency[1][5])

    @property
    def insurance_fund(self) -> int:
        return int(self.solvency[1][6])

    @property
    def weights(self) -> list[int]:
        return list(solvency_claim(self.solvency[1])[4])

    @property
    def verified(self) -> list[int]:
        return list(solvency_claim(self.solvency[1])[5])

    @property
    def declared(self) -> list[int]:
        return list(solvency_claim(self.solvency[1])[6])

    @property
    def verified_only(self) -> bool:
        return bool(solvency_claim(self.solvency[1])[7])

    def claim(self, epoch: int = 1) -> tuple[Any, ...]:
        """finalize's Claim tuple from the solvency proof made for `epoch`."""
        return solvency_claim(self.solvency_at(epoch)[1])

    def batch_args(self, i: int, epoch: int, index: int | None = None) -> tuple[Any, ...]:
        proof, pub = self.batches[i]
        a, b, c = calldata(proof)
        return (epoch, i if index is None else index, a, b, c, int(pub[1]))

    def publish(
        self,
        w3: Web3,
        registry: Any,
        epoch: int = 1,
        solvency: tuple[Proof, list[str]] | None = None,
        **kw: Any,
    ) -> chain.PublishReport:
        """publish_epoch from the first anvil account, with the solvency proof for `epoch`
        unless another is given."""
        return chain.publish_epoch(
            w3,
            w3.eth.accounts[0],
            registry,
            epoch,
            self.ctx,
            self.bundle_hash,
            self.batches,
            self.solvency_at(epoch) if solvency is None else solvency,
            **kw,
        )

    def finalize_args(self, epoch: int) -> tuple[Any, ...]:
        """finalize's arguments (epoch, (a, b, c), claim) with the solvency proof made for
        `epoch`."""
        return finalize_call(epoch, *self.solvency_at(epoch))


#: Epoch numbers the toy solvency proofs are made for.
TOY_EPOCHS = (1, 2, 3, 4, 5, 6)
#: Margin of the toy account in main's tree, and the headrooms the toy margin proofs claim.
TOY_MARGIN = 1_000
LOW_HEADROOM, HIGH_HEADROOM = 250, 900


@dataclass(frozen=True)
class ToyProofs:
    main: ToyEpoch  # 3 batches
    #: per epoch number: a solvency proof for main's chain with another root
    other_roots: dict[int, tuple[Proof, list[str]]]
    domain: int  # the session registry's domain, which every toy solvency proof is bound to
    #: Toy margin proofs, signals [ctxHash, root, idCommit, headroom]: "low" and "high" for
    #: main's ctx and root (same idCommit), "other_root" for other_root's root, "other_ctx"
    #: for another context with main's root.
    margin: dict[str, tuple[Proof, list[str]]]
    #: A solvency proof closing main as epoch 1 that claims `verified_claim_reserves` as
    #: verified reserves (the session registry reads 0 for every asset: it has no token).
    verified_claim: tuple[Proof, list[str]]
    verified_claim_reserves: list[int]

    def other_root_at(self, epoch: int) -> tuple[Proof, list[str]]:
        return self.other_roots[epoch]

    def margin_args(self, kind: str, epoch: int) -> tuple[Any, ...]:
        """(epoch, idCommit, headroom, a, b, c) as verifyMargin and attest take them."""
        proof, pub = self.margin[kind]
        a, b, c = calldata(proof)
        return (epoch, int(pub[2]), int(pub[3]), a, b, c)


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    """A raw JSON-RPC call (anvil's evm_* / anvil_* methods have no web3 wrapper)."""
    return w3.provider.make_request(RPCEndpoint(method), list(params))["result"]


def account(w3: Web3, i: int) -> str:
    """anvil dev account i (web3 types eth.accounts as a 1-tuple)."""
    return str(list(w3.eth.accounts)[i])


def calldata(proof: Proof) -> tuple[list[int], list[list[int]], list[int]]:
    """Independent of groth16.proof_calldata on purpose: G2 coordinates go (c1, c0) for the EVM."""
    a = [int(x) for x in proof["pi_a"][:2]]
    b = [[int(proof["pi_b"][i][1]), int(proof["pi_b"][i][0])] for i in range(2)]
    c = [int(x) for x in proof["pi_c"][:2]]
    return a, b, c


#: finalize's Claim fields, in the struct's order.
CLAIM_FIELDS = (
    "root",
    "totalsCommit",
    "shortfall",
    "insuranceFund",
    "weights",
    "verified",
    "declared",
    "verifiedOnly",
)


def solvency_claim(public: Sequence[int | str], n_assets: int = N_ASSETS) -> tuple[Any, ...]:
    """finalize's Claim (root, totalsCommit, shortfall, insuranceFund, weights, verified,
    declared, verifiedOnly) from a solvency proof's public signals; the registry supplies the
    rest (finalState, ctxHash, batchCount, epoch, domain) itself."""
    values = [int(x) for x in public]
    assert len(values) == solvency_public_count(n_assets), len(values)
    f, n = chain.SOLVENCY_FIXED_INPUTS, n_assets
    return (
        values[2],
        values[3],
        values[5],
        values[6],
        values[f : f + n],
        values[f + n : f + 2 * n],
        values[f + 2 * n : f + 3 * n],
        bool(values[f + 3 * n]),
    )


def finalize_call(
    epoch: int, proof: Proof, public: Sequence[int | str], n_assets: int = N_ASSETS
) -> tuple[Any, ...]:
    """finalize's arguments (epoch, (a, b, c), claim) for a solvency proof."""
    return (epoch, calldata(proof), solvency_claim(public, n_assets))


def with_claim(args: tuple[Any, ...], **changes: Any) -> tuple[Any, ...]:
    """finalize's arguments with some Claim fields (named as in CLAIM_FIELDS) replaced."""
    epoch, proof, claim = args
    unknown = set(changes) - set(CLAIM_FIELDS)
    assert not unknown, unknown
    new = tuple(changes.get(name, value) for name, value in zip(CLAIM_FIELDS, claim, strict=True))
    return (epoch, proof, new)


def with_proof(
    args: tuple[Any, ...], a: Any = None, b: Any = None, c: Any = None
) -> tuple[Any, ...]:
    """finalize's arguments with parts of the proof replaced."""
    epoch, (a0, b0, c0), claim = args
    return (
        epoch,
        (a0 if a is None else a, b0 if b is None else b, c0 if c is None else c),
        claim,
    )


def _run(cmd: list[str], cwd: Path, stdin: str | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def _toy_keys(circuit: str, template: str, build: Path, circom: Path) -> KeySet:
    """Compile one toy circuit and set up its keys the way the prover does for real ones."""
    src = HERE / "circuits" / f"{circuit}.circom"
    out = build / circuit
    out.mkdir()
    # circom2 (WASI) only reaches paths below its working directory's ancestors: run it from
    # the checkout so the include path resolves.
    _run(
        [str(circom), str(src), "--r1cs", "--wasm", "-l", "node_modules", "-o", str(out)],
        cwd=REPO,
    )
    r1cs = out / f"{circuit}.r1cs"
    n_constraints, n_public = r1cs_header(r1cs)
    circuit_build = CircuitBuild(
        spec=CircuitSpec(circuit, src.name, template, (), ()),
        dir=out,
        r1cs=r1cs,
        wasm=out / f"{circuit}_js" / f"{circuit}.wasm",
        sym=out / f"{circuit}.sym",
        n_constraints=n_constraints,
        n_public=n_public,
        r1cs_sha256=sha256_file(r1cs),
    )
    return setup_keys(circuit_build, PTAU)


@pytest.fixture(scope="session")
def toy(tmp_path_factory: pytest.TempPathFactory) -> ToySetup:
    if not PTAU.is_file():
        pytest.skip(f"dev ptau {PTAU} is absent")
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    try:
        circom = node_bin("circom2")
        node_bin("snarkjs")
        node_bin("anvil")
    except ToolchainMissing as exc:
        pytest.skip(str(exc))

    build = tmp_path_factory.mktemp("toy")
    circuits = {"toy_batch": "ToyBatch", "toy_solvency": "ToySolvency", "toy_margin": "ToyMargin"}
    # Two independent node pipelines: run them side by side.
    with ThreadPoolExecutor(len(circuits)) as pool:
        futures = {
            name: pool.submit(_toy_keys, name, template, build, circom)
            for name, template in circuits.items()
        }
        key_sets = {name: f.result() for name, f in futures.items()}
    keys = Keys(key_sets["toy_batch"], key_sets["toy_solvency"])
    artifacts = build_contracts(keys, build / "contracts", margin=key_sets["toy_margin"])
    return ToySetup(
        build=build / "contracts",
        artifacts=artifacts,
        wasm={name: ks.build.wasm for name, ks in key_sets.items()},
        zkey={name: ks.zkey for name, ks in key_sets.items()},
        keys=keys,
        margin_keys=key_sets["toy_margin"],
    )


#: The toy liabilities per asset, which the reserves must cover.
TOY_TOTALS = tuple(1_000 * (i + 1) for i in range(N_ASSETS))
#: Default USD prices (8 decimals) of the toy assets; the session registry's slots have 0
#: asset decimals, so their weights are price * 10^18.
TOY_PRICES_E8 = (2_000 * 10**8, 10**8, 30_000 * 10**8, 5 * 10**7)


def _solvency_input(
    final: int,
    ctx: int,
    root: int,
    count: int,
    epoch: int,
    domain: int,
    *,
    weights: Sequence[int] | None = None,
    verified: Sequence[int] | None = None,
    declared: Sequence[int] | None = None,
    verified_only: bool | int | None = None,
) -> dict[str, Any]:
    """Toy solvency inputs. By default the reserves are all declared (the session registry
    checks nothing on-chain, so the verified ones must be 0) and exceed the totals by 17 * i;
    `declared` defaults to what `verified` leaves uncovered of that, and `verified_only` to
    whether `verified` alone covers the totals. Overrides must still cover the totals."""
    totals = list(TOY_TOTALS)
    if weights is None:
        weights = [p * 10**18 for p in TOY_PRICES_E8]
    if verified is None:
        verified = [0] * N_ASSETS
    if declared is None:
        declared = [
            max(t + 17 * i - v, 0) for i, (t, v) in enumerate(zip(totals, verified, strict=True))
        ]
    if verified_only is None:
        verified_only = all(v >= t for v, t in zip(verified, totals, strict=True))
    assert len(weights) == len(verified) == len(declared) == N_ASSETS
    assert all(0 <= v + d - t < 2**64 for v, d, t in zip(verified, declared, totals, strict=True))
    commit = (final + ctx * root + count + sum(totals)) % P
    return {
        "finalState": str(final),
        "ctxHash": str(ctx),
        "root": str(root),
        "totalsCommit": str(commit),
        "batchCount": str(count),
        "shortfall": "40",
        "insuranceFund": "100",  # covers the shortfall
        "epoch": str(epoch),
        "domain": str(domain),
        "weights": [str(w) for w in weights],
        "verified": [str(v) for v in verified],
        "declared": [str(d) for d in declared],
        "verifiedOnly": str(int(verified_only)),
        "totals": [str(t) for t in totals],
    }


def toy_solvency_for(
    toy: ToySetup,
    e: ToyEpoch,
    epoch: int,
    domain: int,
    *,
    weights: Sequence[int] | None = None,
    verified: Sequence[int] | None = None,
    declared: Sequence[int] | None = None,
    verified_only: bool | int | None = None,
) -> tuple[Proof, list[str]]:
    """A toy solvency proof closing `e` as `epoch` of the registry with `domain` (another
    registry than the session's needs its own), with the default reserves and weights of
    _solvency_input unless given (e.g. the verified reserves a registry reads on-chain)."""
    job = {
        "wasm": str(toy.wasm["toy_solvency"]),
        "zkey": str(toy.zkey["toy_solvency"]),
        "input": _solvency_input(
            e.states[-1],
            e.ctx,
            e.root,
            len(e.batches),
            epoch,
            domain,
            weights=weights,
            verified=verified,
            declared=declared,
            verified_only=verified_only,
        ),
    }
    out = _run(["node", str(HERE / "prove_many.mjs")], cwd=toy.build, stdin=json.dumps([job]))
    (r,) = json.loads(out)
    return r["proof"], r["publicSignals"]


@pytest.fixture(scope="session")
def proofs(toy: ToySetup, deployment: chain.Deployment) -> ToyProofs:
    domain = registry_domain(deployment.chain_id, deployment.registry)
    ctx = 0x1234_5678_9ABC_DEF0 * 0x1_0000_0000_0001 % P
    steps = [3, 5, 11]
    jobs: list[dict[str, Any]] = []
    state = ctx
    for step in steps:
        nxt = (state * 7 + step * step + ctx) % P
        jobs.append(
            {
                "wasm": str(toy.wasm["toy_batch"]),
                "zkey": str(toy.zkey["toy_batch"]),
                "input": {
                    "prevState": str(state),
                    "nextState": str(nxt),
                    "ctxHash": str(ctx),
                    "step": str(step),
                },
            }
        )
        state = nxt
    solvency_keys = [(root, epoch) for root in (0xABCDEF, 0xFEDCBA) for epoch in TOY_EPOCHS]
    for root, epoch in solvency_keys:
        jobs.append(
            {
                "wasm": str(toy.wasm["toy_solvency"]),
                "zkey": str(toy.zkey["toy_solvency"]),
                "input": _solvency_input(state, ctx, root, len(steps), epoch, domain),
            }
        )
    margins = {
        "low": (ctx, 0xABCDEF, LOW_HEADROOM),
        "high": (ctx, 0xABCDEF, HIGH_HEADROOM),
        "other_root": (ctx, 0xFEDCBA, LOW_HEADROOM),
        "other_ctx": ((ctx + 1) % P, 0xABCDEF, LOW_HEADROOM),
    }
    for m_ctx, root, headroom in margins.values():
        jobs.append(
            {
                "wasm": str(toy.wasm["toy_margin"]),
                "zkey": str(toy.zkey["toy_margin"]),
                "input": {
                    "ctxHash": str(m_ctx),
                    "root": str(root),
                    "idCommit": str((root - m_ctx - TOY_MARGIN) % P),
                    "headroom": str(headroom),
                    "margin": str(TOY_MARGIN),
                },
            }
        )
    verified_claim = [7, 0, 0, 2]
    jobs.append(
        {
            "wasm": str(toy.wasm["toy_solvency"]),
            "zkey": str(toy.zkey["toy_solvency"]),
            "input": _solvency_input(
                state, ctx, 0xABCDEF, len(steps), 1, domain, verified=verified_claim
            ),
        }
    )
    out = _run(["node", str(HERE / "prove_many.mjs")], cwd=toy.build, stdin=json.dumps(jobs))
    results = [(r["proof"], r["publicSignals"]) for r in json.loads(out)]
    *results, verified_result = results
    n, k = len(steps), len(solvency_keys)
    solvencies = dict(zip(solvency_keys, results[n : n + k], strict=True))
    main = ToyEpoch(
        ctx=ctx,
        bundle_hash=bytes.fromhex("ab" * 32),
        batches=results[:n],
        solvencies={e: solvencies[0xABCDEF, e] for e in TOY_EPOCHS},
    )
    return ToyProofs(
        main=main,
        other_roots={e: solvencies[0xFEDCBA, e] for e in TOY_EPOCHS},
        domain=domain,
        margin=dict(zip(margins, results[n + k :], strict=True)),
        verified_claim=verified_result,
        verified_claim_reserves=verified_claim,
    )


@pytest.fixture(scope="session")
def node(toy: ToySetup) -> Iterator[chain.Anvil]:
    with chain.Anvil() as anvil:
        yield anvil


@pytest.fixture(scope="session")
def deployment(node: chain.Anvil, toy: ToySetup) -> chain.Deployment:
    d = chain.deploy(node.w3, node.accounts[0], toy.artifacts, N_ASSETS)
    print(f"\ndeploy gas: {d.gas_used}")
    return d


@pytest.fixture
def w3(node: chain.Anvil, deployment: chain.Deployment) -> Iterator[Web3]:
    """The node's Web3, rolled back to the fresh deployment after the test."""
    snap = rpc(node.w3, "evm_snapshot")
    yield node.w3
    assert rpc(node.w3, "evm_revert", snap)


@pytest.fixture
def registry(w3: Web3, deployment: chain.Deployment) -> Any:
    return deployment.registry_contract(w3)

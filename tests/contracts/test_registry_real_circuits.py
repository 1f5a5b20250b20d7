"""The registry with the real circuits' verifiers and real proofs of the tiny epoch
(tests/conftest.py): publish and finalize, and the refusals, each decoded to its custom error.

Run with -s to see the gas of each batch and of finalize.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from zksolvency.prover import chain
from zksolvency.prover.atomic import write_json
from zksolvency.prover.bundle import recompute_context
from zksolvency.prover.commitments import describe_domain, registry_domain
from zksolvency.prover.deployment import FORMAT as DEPLOYMENT_FORMAT
from zksolvency.prover.deployment import build_contracts
from zksolvency.prover.inclusion import code_embeds_vkey
from zksolvency.prover.keys import build_keys
from zksolvency.prover.params import EpochParams

from .conftest import calldata, finalize_call, rpc, solvency_claim, with_claim

PARAMS = EpochParams(1, 4, 2, 2, 8, 2)
KIND_BATCH, KIND_SOLVENCY = 0, 1
Proof = tuple[dict[str, Any], list[str]]


@dataclass(frozen=True)
class RealEpoch:
    """The tiny epoch's proofs and public values, as the registry takes them."""

    epoch: int
    ctx: int
    bundle_hash: bytes
    batches: list[Proof]
    solvency: Proof

    @property
    def root(self) -> int:
        return int(self.solvency[1][2])

    def batch_args(self, i: int, index: int | None = None, epoch: int = 1) -> tuple[Any, ...]:
        proof, public = self.batches[i]
        a, b, c = calldata(proof)
        return (epoch, i if index is None else index, a, b, c, int(public[1]))

    @property
    def claim(self) -> tuple[Any, ...]:
        """(root, totalsCommit, shortfall, insuranceFund, weights, verified, declared,
        verifiedOnly) from the solvency signals [finalState, ctxHash, root, totalsCommit,
        batchCount, shortfall, insuranceFund, epoch, domain, weights[N], verified[N],
        declared[N], verifiedOnly]; the registry supplies the others itself."""
        return solvency_claim(self.solvency[1], PARAMS.n_assets)

    def finalize_args(self, **override: Any) -> tuple[Any, ...]:
        """finalize's (epoch, (a, b, c), claim), with Claim fields replaced by name."""
        args = finalize_call(self.epoch, *self.solvency, PARAMS.n_assets)
        return with_claim(args, **override)


def real_epoch(tiny: Any) -> RealEpoch:
    *batches, solvency = tiny.proofs()
    m = tiny.manifest
    return RealEpoch(
        epoch=int(m["epoch"]),
        ctx=int(m["context"]["ctx_hash"]),
        bundle_hash=bytes.fromhex(tiny.sha256()),
        batches=batches,
        solvency=solvency,
    )


def record_of(d: chain.Deployment, path: Path) -> Path:
    """A deployment record naming `d` (what `prove --deployment` reads)."""
    write_json(path, {"format": DEPLOYMENT_FORMAT, "chain_id": d.chain_id, "registry": d.registry})
    return path


@pytest.fixture(scope="module")
def real(
    tiny_epoch: Any, real_deployment: chain.Deployment, tmp_path_factory: pytest.TempPathFactory
) -> RealEpoch:
    """The tiny epoch, its solvency proof made again for this module's registry."""
    tmp = tmp_path_factory.mktemp("real")
    return real_epoch(tiny_epoch.bound_to(record_of(real_deployment, tmp / "dep.json"), tmp / "e"))


@pytest.fixture(scope="module")
def real_artifacts() -> dict[str, chain.ContractArtifact]:
    """Verifiers generated from the tiny circuits' keys (cached under build/), and the registry."""
    return build_contracts(build_keys(PARAMS, None))


@pytest.fixture(scope="module")
def real_node(tiny_epoch: Any) -> Iterator[chain.Anvil]:
    with chain.Anvil() as node:
        yield node


@pytest.fixture(scope="module")
def real_deployment(
    real_node: chain.Anvil, real_artifacts: dict[str, chain.ContractArtifact]
) -> chain.Deployment:
    d = chain.deploy(real_node.w3, real_node.accounts[0], real_artifacts, PARAMS.n_assets)
    print(f"\nreal-circuit deploy gas: {d.gas_used}")
    return d


@pytest.fixture
def w3(real_node: chain.Anvil, real_deployment: chain.Deployment) -> Iterator[Web3]:
    """The node, rolled back to the fresh deployment after each test."""
    snap = rpc(real_node.w3, "evm_snapshot")
    yield real_node.w3
    assert rpc(real_node.w3, "evm_revert", snap)


@pytest.fixture
def registry(w3: Web3, real_deployment: chain.Deployment) -> Any:
    return real_deployment.registry_contract(w3)


def send(w3: Web3, registry: Any, fn: str, args: tuple[Any, ...], sender: int = 0) -> Any:
    gas = chain.finalize_gas_for(registry, 0) if fn == "finalize" else 1_000_000
    return chain.transact(w3, list(w3.eth.accounts)[sender], registry, fn, args, gas=gas)


def reverts(
    w3: Web3, registry: Any, fn: str, args: tuple[Any, ...], sender: int = 0
) -> chain.RegistryRevert:
    """The decoded revert of a call that must fail (in preflight: nothing is mined)."""
    block = w3.eth.block_number
    with pytest.raises(chain.RegistryRevert) as info:
        send(w3, registry, fn, args, sender)
    assert w3.eth.block_number == block
    return info.value


def open_epoch(
    w3: Web3, registry: Any, e: RealEpoch, epoch: int = 1, ctx: int | None = None
) -> None:
    args = (epoch, e.ctx if ctx is None else ctx, len(e.batches), e.bundle_hash)
    send(w3, registry, "openEpoch", args)


def test_valid_epoch_publishes_and_finalizes(w3: Web3, registry: Any, real: RealEpoch) -> None:
    report = chain.publish_epoch(
        w3, w3.eth.accounts[0], registry, real.epoch, real.ctx, real.bundle_hash,
        real.batches, real.solvency,
    )  # fmt: skip
    print(
        f"\nreal circuits gas: open {report.open_gas}, per batch {report.batch_gas}, "
        f"finalize {report.finalize_gas}, total {report.total_gas}"
    )
    assert len(report.batch_gas) == 3 and report.finalize_tx is not None
    assert max(report.batch_gas) < chain.BATCH_GAS
    assert report.finalize_gas is not None and report.finalize_gas < chain.FINALIZE_GAS
    tx = w3.eth.get_transaction(report.finalize_tx)
    assert tx["gas"] == chain.finalize_gas_for(registry, 0)

    rec = chain.read_epoch(w3, registry, 1)
    assert rec.status is chain.EpochStatus.FINALIZED
    assert (rec.root, rec.ctx_hash, rec.bundle_hash) == (real.root, real.ctx, real.bundle_hash)
    public = real.solvency[1]
    assert len(public) == 10 + 3 * PARAMS.n_assets
    assert (rec.shortfall, rec.insurance_fund) == (int(public[5]), int(public[6]))
    _, _, _, _, weights, verified, declared, verified_only = real.claim
    # Proven without custody: nothing verified on-chain, every reserve declared.
    assert list(rec.reserves) == verified == [0] * PARAMS.n_assets
    assert list(rec.declared) == declared and any(declared)
    assert rec.verified_only is verified_only is False
    # The default deployment's slots have 0 asset decimals: price = weight / 10^18, floored.
    assert rec.prices_e8 == tuple(w // 10**18 for w in weights)
    assert all(w > 0 for w in weights)
    assert rec.state == int(real.batches[-1][1][1])
    f = registry.functions
    assert f.isFinalizedRoot(1, real.root).call()
    assert not f.isFinalizedRoot(1, real.root + 1).call()
    assert not f.isFinalizedRoot(2, real.root).call()


def test_wrong_publisher_is_refused(w3: Web3, registry: Any, real: RealEpoch) -> None:
    intruder = list(w3.eth.accounts)[1]
    args = (1, real.ctx, 3, real.bundle_hash)
    err = reverts(w3, registry, "openEpoch", args, sender=1)
    assert (err.error, err.error_args) == ("NotPublisher", (intruder,))
    open_epoch(w3, registry, real)
    err = reverts(w3, registry, "submitBatch", real.batch_args(0), sender=1)
    assert (err.error, err.error_args) == ("NotPublisher", (intruder,))
    with pytest.raises(chain.PublishError, match="is not the registry's publisher"):
        chain.publish_epoch(
            w3, intruder, registry, 1, real.ctx, real.bundle_hash, real.batches, real.solvency
        )


def test_replayed_batch_reverts(w3: Web3, registry: Any, real: RealEpoch) -> None:
    open_epoch(w3, registry, real)
    send(w3, registry, "submitBatch", real.batch_args(0))
    err = reverts(w3, registry, "submitBatch", real.batch_args(0))
    assert (err.error, err.error_args) == ("WrongBatchIndex", (1, 0))
    # Replayed under the next index it no longer continues the stored state.
    err = reverts(w3, registry, "submitBatch", real.batch_args(0, index=1))
    assert (err.error, err.error_args) == ("InvalidProof", (KIND_BATCH,))


def test_out_of_order_batch_reverts(w3: Web3, registry: Any, real: RealEpoch) -> None:
    open_epoch(w3, registry, real)
    err = reverts(w3, registry, "submitBatch", real.batch_args(1))
    assert (err.error, err.error_args) == ("WrongBatchIndex", (0, 1))
    err = reverts(w3, registry, "submitBatch", real.batch_args(1, index=0))
    assert (err.error, err.error_args) == ("InvalidProof", (KIND_BATCH,))
    err = reverts(w3, registry, "submitBatch", real.batch_args(0, index=3))
    assert (err.error, err.error_args) == ("TooManyBatches", (3, 3))
    assert chain.read_epoch(w3, registry, 1).batches_submitted == 0


def test_batch_proof_with_a_changed_public_input_is_invalid(
    w3: Web3, registry: Any, real: RealEpoch
) -> None:
    open_epoch(w3, registry, real)
    epoch, index, a, b, c, next_state = real.batch_args(0)
    err = reverts(w3, registry, "submitBatch", (epoch, index, a, b, c, next_state + 1))
    assert (err.error, err.error_args) == ("InvalidProof", (KIND_BATCH,))
    # The genuine one still goes through.
    send(w3, registry, "submitBatch", real.batch_args(0))


def test_batch_proof_for_another_epoch_context_is_invalid(
    w3: Web3, registry: Any, real: RealEpoch, tiny_epoch: Any
) -> None:
    """Epoch 1's real batch proof replayed into epoch 2 (same prices and circuit shape)."""
    m = tiny_epoch.manifest
    ctx2 = recompute_context({**m["context"], "epoch": 2}, m["params"])
    assert ctx2 != real.ctx
    open_epoch(w3, registry, real, epoch=2, ctx=ctx2)
    err = reverts(w3, registry, "submitBatch", real.batch_args(0, epoch=2))
    assert (err.error, err.error_args) == ("InvalidProof", (KIND_BATCH,))


def test_solvency_proof_with_changed_public_inputs_is_invalid(
    w3: Web3, registry: Any, real: RealEpoch
) -> None:
    open_epoch(w3, registry, real)
    for i in range(3):
        send(w3, registry, "submitBatch", real.batch_args(i))
    root, totals, shortfall, fund, weights, verified, declared, verified_only = real.claim

    def bump(values: list[int], j: int) -> list[int]:
        return [v + 1 if i == j else v for i, v in enumerate(values)]

    overrides: list[dict[str, Any]] = [
        {"root": root + 1},
        {"totalsCommit": totals + 1},
        {"shortfall": shortfall + 1},
        {"insuranceFund": fund + 1},
        {"verifiedOnly": not verified_only},
    ]
    for j in range(PARAMS.n_assets):
        overrides += [{"weights": bump(weights, j)}, {"declared": bump(declared, j)}]
    for override in overrides:
        err = reverts(w3, registry, "finalize", real.finalize_args(**override))
        assert (err.error, err.error_args) == ("InvalidProof", (KIND_SOLVENCY,)), override
    # The verified reserves are read back first: more than the chain holds is refused as such.
    for j in range(PARAMS.n_assets):
        err = reverts(w3, registry, "finalize", real.finalize_args(verified=bump(verified, j)))
        assert (err.error, err.error_args) == ("ReservesChanged", (j, verified[j] + 1, 0))
    # Every claim value is checked to be a field element before anything else.
    p = chain.SNARK_SCALAR_FIELD
    for override in (
        {"root": root + p},
        {"totalsCommit": totals + p},
        {"shortfall": shortfall + p},
        {"insuranceFund": fund + p},
        {"weights": [weights[0] + p, *weights[1:]]},
        {"verified": [verified[0] + p, *verified[1:]]},
        {"declared": [declared[0] + p, *declared[1:]]},
    ):
        err = reverts(w3, registry, "finalize", real.finalize_args(**override))
        assert err.error == "FieldOverflow" and err.error_args[0] >= p, override
    send(w3, registry, "finalize", real.finalize_args())
    assert registry.functions.isFinalizedRoot(1, real.root).call()


def test_finalize_before_all_batches_reverts(w3: Web3, registry: Any, real: RealEpoch) -> None:
    open_epoch(w3, registry, real)
    err = reverts(w3, registry, "finalize", real.finalize_args())
    assert (err.error, err.error_args) == ("BatchesMissing", (0, 3))
    for i in range(2):
        send(w3, registry, "submitBatch", real.batch_args(i))
    err = reverts(w3, registry, "finalize", real.finalize_args())
    assert (err.error, err.error_args) == ("BatchesMissing", (2, 3))
    assert not registry.functions.isFinalizedRoot(1, real.root).call()


def test_deployed_verifiers_embed_the_manifest_vkeys(
    real_node: chain.Anvil, real_deployment: chain.Deployment, tiny_epoch: Any
) -> None:
    """What `verify --rpc` checks before trusting the registry's root."""
    circuits = tiny_epoch.manifest["circuits"]
    codes = {
        kind: bytes(real_node.w3.eth.get_code(address))
        for kind, address in (
            ("batch", real_deployment.batch_verifier),
            ("solvency", real_deployment.solvency_verifier),
        )
    }
    assert code_embeds_vkey(codes["batch"], circuits["batch"]["vkey_json"])
    assert code_embeds_vkey(codes["solvency"], circuits["solvency"]["vkey_json"])
    assert not code_embeds_vkey(codes["batch"], circuits["solvency"]["vkey_json"])
    # and the circuits those keys were made for, as the manifest records them
    w3 = real_node.w3
    for kind, address in (
        ("batch", real_deployment.batch_verifier),
        ("solvency", real_deployment.solvency_verifier),
    ):
        assert chain.read_circuit_hash(w3, address) == circuits[kind]["r1cs_sha256"]


def test_code_embeds_vkey_finds_constants_with_a_leading_zero_byte() -> None:
    """solc pushes such a constant with PUSH31; a 32-byte search missed it (~10% of keys)."""
    word = 0x5A17 << 232  # 31 significant bytes
    g1, g2 = [str(word), str(word), "1"], [[str(word)] * 2, [str(word)] * 2, ["1", "0"]]
    vkey = {"vk_alpha_1": g1, "vk_beta_2": g2, "vk_gamma_2": g2, "vk_delta_2": g2, "IC": [g1]}
    assert code_embeds_vkey(b"\x00\x7e" + word.to_bytes(31, "big") + b"\x00", vkey)  # PUSH31
    assert code_embeds_vkey(b"\x00" + word.to_bytes(32, "big"), vkey)  # a data word
    assert not code_embeds_vkey(b"\x7f" + word.to_bytes(31, "big"), vkey)  # PUSH32 of another


# --- binding: epoch number, registry and chain id (ANCHORS: replay across deployments) --------


def _close_batches(w3: Web3, registry: Any, real: RealEpoch, epoch: int = 1) -> None:
    open_epoch(w3, registry, real, epoch=epoch)
    for i in range(len(real.batches)):
        send(w3, registry, "submitBatch", real.batch_args(i, epoch=epoch))


def test_unbound_solvency_proof_is_refused(
    w3: Web3, registry: Any, real: RealEpoch, tiny_epoch: Any
) -> None:
    """The epoch as first proven, before any registry existed (domain 0): its batches verify,
    its solvency proof does not, and publish says why before sending anything."""
    unbound = real_epoch(tiny_epoch)
    assert int(unbound.solvency[1][8]) == 0 and unbound.batches == real.batches
    with pytest.raises(chain.PublishError, match="bound to no registry"):
        chain.publish_epoch(
            w3, w3.eth.accounts[0], registry, 1, unbound.ctx, unbound.bundle_hash,
            unbound.batches, unbound.solvency,
        )  # fmt: skip
    assert chain.read_epoch(w3, registry, 1).status is chain.EpochStatus.NONE
    _close_batches(w3, registry, unbound)
    err = reverts(w3, registry, "finalize", unbound.finalize_args())
    assert (err.error, err.error_args) == ("InvalidProof", (KIND_SOLVENCY,))
    send(w3, registry, "finalize", real.finalize_args())  # the bound one closes the same epoch


def test_ctx_reopened_under_a_later_epoch_cannot_finalize(
    w3: Web3, registry: Any, real: RealEpoch
) -> None:
    """The publisher opens epoch 1's ctxHash as epoch 2: every batch proof still verifies (the
    chain starts at the same ctxHash), but no solvency proof can claim epoch 2 for a context
    that says epoch 1, and publish refuses to try."""
    with pytest.raises(chain.PublishError, match="made for epoch 1, not 2"):
        chain.publish_epoch(
            w3, w3.eth.accounts[0], registry, 2, real.ctx, real.bundle_hash, real.batches,
            real.solvency,
        )  # fmt: skip
    _close_batches(w3, registry, real, epoch=2)
    args = (2, *real.finalize_args()[1:])  # the epoch number is finalize's first argument
    err = reverts(w3, registry, "finalize", args)
    assert (err.error, err.error_args) == ("InvalidProof", (KIND_SOLVENCY,))


def test_proof_for_another_registry_is_refused(
    w3: Web3, registry: Any, real: RealEpoch, real_artifacts: dict[str, chain.ContractArtifact]
) -> None:
    """A second registry with the same verifiers and publisher on the same chain refuses the
    proof bound to the first; publish names both registries."""
    other = chain.deploy(w3, w3.eth.accounts[0], real_artifacts, PARAMS.n_assets)
    reg2 = other.registry_contract(w3)
    assert reg2.functions.domain().call() != registry.functions.domain().call()
    with pytest.raises(chain.PublishError) as info:
        chain.publish_epoch(
            w3, w3.eth.accounts[0], reg2, 1, real.ctx, real.bundle_hash, real.batches,
            real.solvency,
        )  # fmt: skip
    assert describe_domain(int(real.solvency[1][8])) in str(info.value)
    assert other.registry.lower() in str(info.value)
    _close_batches(w3, reg2, real)
    err = reverts(w3, reg2, "finalize", real.finalize_args())
    assert (err.error, err.error_args) == ("InvalidProof", (KIND_SOLVENCY,))


def test_proof_for_another_chain_id_is_refused(
    real: RealEpoch,
    real_deployment: chain.Deployment,
    real_artifacts: dict[str, chain.ContractArtifact],
) -> None:
    """The same deployer and nonces on a chain with another id give a registry at the same
    address: only the chain id in the domain tells them apart, and it is enough."""
    with chain.Anvil(chain_id=real_deployment.chain_id + 1) as node:
        w3 = node.w3
        twin = chain.deploy(w3, node.accounts[0], real_artifacts, PARAMS.n_assets)
        assert twin.registry == real_deployment.registry
        reg = twin.registry_contract(w3)
        assert reg.functions.domain().call() == registry_domain(
            real_deployment.chain_id + 1, twin.registry
        )
        with pytest.raises(chain.PublishError, match=f"chain {real_deployment.chain_id},"):
            chain.publish_epoch(
                w3, node.accounts[0], reg, 1, real.ctx, real.bundle_hash, real.batches,
                real.solvency,
            )  # fmt: skip
        _close_batches(w3, reg, real)
        err = reverts(w3, reg, "finalize", real.finalize_args())
        assert (err.error, err.error_args) == ("InvalidProof", (KIND_SOLVENCY,))

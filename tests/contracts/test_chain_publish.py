"""prover/chain.py on a real anvil: publish_epoch (checks, resume, idempotence), the local
signer path, compile errors, verifier rendering and the Anvil wrapper itself."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from zksolvency.prover import chain
from zksolvency.prover.atomic import sha256_file
from zksolvency.prover.commitments import registry_domain
from zksolvency.prover.deployment import account_margin_abi, registry_abi

from .conftest import (
    N_ASSETS,
    TOY_PRICES_E8,
    ToyEpoch,
    ToyProofs,
    ToySetup,
    account,
    calldata,
    rpc,
    toy_solvency_for,
)


def publish(w3: Web3, registry: Any, e: ToyEpoch, epoch: int = 1, **kw: Any) -> chain.PublishReport:
    return e.publish(w3, registry, epoch, **kw)


def test_publish_epoch_end_to_end(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    events: list[chain.ProgressEvent] = []
    report = publish(w3, registry, e, 3, progress=events.append)
    print(
        f"\npublish_epoch gas: open {report.open_gas}, batches {report.batch_gas}, "
        f"finalize {report.finalize_gas}, total {report.total_gas}"
    )
    assert [(ev.stage, ev.index) for ev in events] == [
        ("open", 0),
        ("batch", 0),
        ("batch", 1),
        ("batch", 2),
        ("finalize", 3),
    ]
    assert len(report.batch_txs) == len(report.batch_gas) == 3
    assert report.open_tx and report.finalize_tx and not report.already_finalized
    assert report.batches_skipped == 0
    for tx in [report.open_tx, *report.batch_txs, report.finalize_tx]:
        assert w3.eth.get_transaction_receipt(tx)["status"] == 1

    rec = chain.read_epoch(w3, registry, 3)
    assert rec.status is chain.EpochStatus.FINALIZED
    assert (rec.root, rec.state, rec.bundle_hash) == (e.root, e.states[-1], e.bundle_hash)
    assert (rec.shortfall, rec.insurance_fund) == (e.shortfall, e.insurance_fund)
    assert (list(rec.reserves), list(rec.declared)) == (e.verified, e.declared)
    assert rec.verified_only is e.verified_only is False
    assert rec.prices_e8 == TOY_PRICES_E8
    assert not report.custody_txs and not report.custody_gas
    assert registry.functions.getCustody(3).call() == []

    # Publishing the same epoch again sends nothing.
    block = w3.eth.block_number
    again = publish(w3, registry, e, 3)
    assert again.already_finalized and again.total_gas == 0 and not again.batch_txs
    assert w3.eth.block_number == block


def test_publish_resumes_after_a_crash(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main

    class Crash(Exception):
        pass

    def crash_after_first_batch(ev: chain.ProgressEvent) -> None:
        if ev.stage == "batch":
            raise Crash

    with pytest.raises(Crash):
        publish(w3, registry, e, progress=crash_after_first_batch)
    rec = chain.read_epoch(w3, registry, 1)
    assert (rec.status, rec.batches_submitted) == (chain.EpochStatus.OPEN, 1)

    events: list[chain.ProgressEvent] = []
    report = publish(w3, registry, e, progress=events.append)
    assert report.open_tx is None and report.batches_skipped == 1
    assert len(report.batch_txs) == 2
    assert [(ev.stage, ev.index) for ev in events] == [
        ("resume", 1),
        ("batch", 1),
        ("batch", 2),
        ("finalize", 3),
    ]
    assert chain.read_epoch(w3, registry, 1).status is chain.EpochStatus.FINALIZED


def test_publish_resumes_with_every_batch_in(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    publisher = w3.eth.accounts[0]
    chain.transact(w3, publisher, registry, "openEpoch", (1, e.ctx, 3, e.bundle_hash), gas=300_000)
    for i in range(3):
        _, pub = e.batches[i]
        a, b, c = calldata(e.batches[i][0])
        chain.transact(
            w3, publisher, registry, "submitBatch", (1, i, a, b, c, int(pub[1])), gas=600_000
        )
    report = publish(w3, registry, e)
    assert report.batches_skipped == 3 and not report.batch_txs and report.finalize_tx


def _no_tx(w3: Web3, fn: Any, match: str) -> None:
    block = w3.eth.block_number
    with pytest.raises(chain.PublishError, match=match):
        fn()
    assert w3.eth.block_number == block, "nothing may be sent when inputs are inconsistent"


def test_publish_checks_inputs_before_sending(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    me = w3.eth.accounts[0]

    def run(**over: Any) -> Any:
        args: dict[str, Any] = {
            "ctx_hash": e.ctx,
            "bundle_hash": e.bundle_hash,
            "batches": e.batches,
            "solvency": e.solvency,
        }
        args.update(over)
        sender = args.pop("sender", me)
        return lambda: chain.publish_epoch(w3, sender, registry, 1, **args)

    b0, b1, b2 = e.batches
    _no_tx(w3, run(batches=[b1, b0, b2]), "batch 0 starts from state")
    _no_tx(w3, run(batches=[b0, b2, b1]), "batch 1 starts from state")
    _no_tx(w3, run(batches=[b0, b1]), "solvency proof ends at state")
    _no_tx(w3, run(ctx_hash=e.ctx + 1), "proved for ctxHash")
    _no_tx(w3, run(batches=[]), "at least one batch")
    n_signals = 10 + 3 * N_ASSETS
    _no_tx(w3, run(solvency=(e.solvency[0], e.solvency[1][:-1])), f"expected {n_signals}")
    _no_tx(w3, run(bundle_hash=b"\x01" * 31), "32 bytes")
    bad_proof = {**e.batches[0][0], "pi_a": e.batches[0][0]["pi_a"][:2]}
    _no_tx(w3, run(batches=[(bad_proof, b0[1]), b1, b2]), "not a snarkjs Groth16 proof")
    _no_tx(w3, run(sender=account(w3, 1)), "is not the registry's publisher")
    counted = list(e.solvency[1])
    counted[4] = "2"
    _no_tx(w3, run(solvency=(e.solvency[0], counted)), "counts 2 batches")
    not_a_bit = [*e.solvency[1][:-1], "2"]
    _no_tx(w3, run(solvency=(e.solvency[0], not_a_bit)), "verifiedOnly is 2, not a bit")
    holder = account(w3, 4)
    twice = [(holder, b"\x00" * 65), (holder, b"\x00" * 65)]
    _no_tx(w3, run(custody=twice), "distinct and in increasing order")


def test_publish_refuses_to_contradict_the_registry(
    w3: Web3, registry: Any, proofs: ToyProofs
) -> None:
    e = proofs.main
    me = w3.eth.accounts[0]
    publish(w3, registry, e, 1)
    other = proofs.other_root_at(1)
    # Finalized with another root: refuse, do not pretend it is done.
    _no_tx(
        w3,
        lambda: chain.publish_epoch(w3, me, registry, 1, e.ctx, e.bundle_hash, e.batches, other),
        "already finalized with different",
    )
    # Lower epoch number than the latest.
    chain.transact(w3, me, registry, "openEpoch", (5, e.ctx, 3, e.bundle_hash), gas=300_000)
    _no_tx(w3, lambda: publish(w3, registry, e, 4), "not above the latest")
    # Another epoch still open.
    _no_tx(w3, lambda: publish(w3, registry, e, 6), "epoch 5 is still open")
    # Epoch open with another bundle or batch count.
    _no_tx(
        w3,
        lambda: chain.publish_epoch(
            w3, me, registry, 5, e.ctx, b"\x00" * 32, e.batches, e.solvency_at(5)
        ),
        "is open with",
    )
    # Abandoned epochs stay abandoned.
    chain.transact(w3, me, registry, "abandonEpoch", (5,), gas=100_000)
    _no_tx(w3, lambda: publish(w3, registry, e, 5), "abandoned")


def test_publish_the_other_root_after_a_different_epoch(
    w3: Web3, registry: Any, proofs: ToyProofs
) -> None:
    """The same chain may be re-proved under a later epoch number with a new solvency proof."""
    e = proofs.main
    publish(w3, registry, e, 1)
    me = w3.eth.accounts[0]
    report = chain.publish_epoch(
        w3, me, registry, 2, e.ctx, e.bundle_hash, e.batches, proofs.other_root_at(2)
    )
    assert report.finalize_tx
    assert registry.functions.isFinalizedRoot(2, int(proofs.other_root_at(2)[1][2])).call()
    assert registry.functions.isFinalizedRoot(1, e.root).call()


def test_publish_refuses_verified_reserves_the_registry_does_not_see(
    w3: Web3, registry: Any, proofs: ToyProofs
) -> None:
    """A proof claiming verified reserves that the registry's custody addresses do not hold is
    refused before anything is sent (the bundle hash is recorded at open, so the epoch must not
    be opened with a bundle that cannot finish it); a proof of what the chain holds publishes."""
    e = proofs.main
    block = w3.eth.block_number
    fell = "custody balances fell below the proof since proving"
    with pytest.raises(chain.PublishError, match=fell) as info:
        publish(w3, registry, e, 1, solvency=proofs.verified_claim)
    assert f"asset 0: proven {proofs.verified_claim_reserves[0]}, held now 0" in str(info.value)
    assert "prove again" in str(info.value)
    assert w3.eth.block_number == block
    assert chain.read_epoch(w3, registry, 1).status is chain.EpochStatus.NONE
    report = publish(w3, registry, e, 1)
    assert report.batches_skipped == 0 and report.finalize_tx
    assert chain.read_epoch(w3, registry, 1).status is chain.EpochStatus.FINALIZED


def test_mined_revert_is_decoded(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    me = w3.eth.accounts[0]
    # Preflight catches it without a transaction...
    block = w3.eth.block_number
    with pytest.raises(chain.RegistryRevert, match="ZeroBatches") as info:
        chain.transact(w3, me, registry, "openEpoch", (1, e.ctx, 0, e.bundle_hash), gas=300_000)
    assert info.value.tx_hash is None and w3.eth.block_number == block
    # ...and without preflight the mined revert is replayed for its reason.
    with pytest.raises(chain.RegistryRevert, match="ZeroBatches") as info:
        chain.transact(
            w3,
            me,
            registry,
            "openEpoch",
            (1, e.ctx, 0, e.bundle_hash),
            gas=300_000,
            preflight=False,
        )
    assert info.value.tx_hash is not None
    assert w3.eth.get_transaction_receipt(info.value.tx_hash)["status"] == 0


def test_local_signer_deploys_and_publishes(w3: Web3, toy: ToySetup, proofs: ToyProofs) -> None:
    acct = Account.create()
    rpc(w3, "anvil_setBalance", acct.address, hex(10**20))
    d = chain.deploy(w3, acct.address, toy.artifacts, N_ASSETS, signer=acct)
    assert d.publisher == acct.address
    registry = d.registry_contract(w3)
    e = proofs.main
    # A new registry: the epoch's solvency proof must be made for it.
    solvency = toy_solvency_for(toy, e, 1, registry_domain(d.chain_id, d.registry))
    report = chain.publish_epoch(
        w3, acct.address, registry, 1, e.ctx, e.bundle_hash, e.batches, solvency, signer=acct
    )
    assert report.finalize_tx is not None
    tx = w3.eth.get_transaction(report.finalize_tx)
    assert tx["from"] == acct.address and tx["gas"] == chain.finalize_gas_for(registry, 0)
    assert tx["gas"] > chain.FINALIZE_GAS
    assert chain.read_epoch(w3, registry, 1).status is chain.EpochStatus.FINALIZED


def test_compile_error_carries_solc_messages(tmp_path: Path, toy: ToySetup) -> None:
    src = tmp_path / "Broken.sol"
    src.write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.20;\n"
        "contract Broken { function f() public { uint x = ; } }\n"
    )
    with pytest.raises(chain.CompileError, match=r"ParserError[\s\S]*Broken\.sol"):
        chain.compile_contracts([src], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_artifacts_on_disk(toy: ToySetup) -> None:
    names = (
        "BatchVerifier",
        "SolvencyVerifier",
        "SolvencyRegistry",
        "MarginVerifier",
        "AccountMarginVerifier",
    )
    for name in names:
        art = chain.ContractArtifact.load(toy.build / "out" / f"{name}.json")
        assert art == toy.artifacts[name]
        assert art.bytecode.startswith("0x6") and len(art.deployed_bytecode) > 2
    text = (toy.build / "generated" / "BatchVerifier.sol").read_text()
    assert text.startswith("// GENERATED by zksolvency from zkey sha256:")
    assert sha256_file(toy.zkey["toy_batch"]) in text.splitlines()[0]
    assert "contract BatchVerifier {" in text and "Groth16Verifier" not in text
    text = (toy.build / "generated" / "MarginVerifier.sol").read_text()
    assert sha256_file(toy.zkey["toy_margin"]) in text.splitlines()[0]
    assert "contract MarginVerifier {" in text and "uint[4] calldata _pubSignals" in text


def test_render_verifier_rejects_unexpected_input() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        chain.render_verifier("contract Other {}", "BatchVerifier")
    with pytest.raises(ValueError, match="identifier"):
        chain.render_verifier("contract Groth16Verifier {}", "Not-A-Name")
    out = chain.render_verifier("contract Groth16Verifier {}", "X", zkey_hash="abc")
    assert out.endswith("contract X {}") and "from abc" in out
    pinned = chain.render_verifier("contract Groth16Verifier {}", "X", circuit_sha256="ab" * 32)
    assert f"bytes32 public constant CIRCUIT_R1CS_SHA256 = 0x{'ab' * 32};" in pinned
    with pytest.raises(ValueError, match="not a sha256"):
        chain.render_verifier("contract Groth16Verifier {}", "X", circuit_sha256="AB" * 32)


def test_deployed_verifiers_pin_their_circuits(
    w3: Web3, deployment: chain.Deployment, toy: ToySetup
) -> None:
    """Each verifier carries the r1cs hash of the circuit its key was made for; the registry's
    verifiers are immutable, so the registry pins the circuits on-chain."""
    pins = {
        deployment.batch_verifier: toy.keys.batch,
        deployment.solvency_verifier: toy.keys.solvency,
        deployment.margin_verifier: toy.margin_keys,
    }
    for address, ks in pins.items():
        assert address is not None
        assert chain.read_circuit_hash(w3, address) == ks.build.r1cs_sha256
    assert chain.read_circuit_hash(w3, deployment.registry) is None  # no such constant


def test_anvil_lifecycle() -> None:
    with chain.Anvil(chain_id=31338) as node:
        assert node.url.startswith("http://127.0.0.1:")
        assert node.w3.eth.chain_id == 31338
        assert len(node.accounts) == 10
        pid = node._proc.pid if node._proc else 0
    # The whole process group (node wrapper and anvil binary) is gone; allow a moment for the
    # orphaned binary to be reaped.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"anvil process group {pid} survived stop()")
    with pytest.raises(chain.AnvilError):
        _ = node.w3


def test_shipped_abi_is_the_compiled_one(toy: ToySetup) -> None:
    """prover/data/SolvencyRegistry.abi.json and AccountMarginVerifier.abi.json must follow the
    contracts (write_registry_abi, write_account_margin_abi)."""
    assert registry_abi() == toy.artifacts["SolvencyRegistry"].abi
    assert account_margin_abi() == toy.artifacts["AccountMarginVerifier"].abi


def test_calldata_is_groth16_calldata_with_publish_errors(proofs: ToyProofs) -> None:
    proof = proofs.main.batches[0][0]
    assert chain._calldata(proof) == calldata(proof)
    with pytest.raises(chain.PublishError, match="at infinity"):
        chain._calldata({**proof, "pi_c": ["0", "1", "0"]})
    with pytest.raises(chain.PublishError, match="not on the BN254 G1 curve"):
        chain._calldata({**proof, "pi_a": ["1", "1", "1"]})
    with pytest.raises(chain.PublishError, match="must be a JSON object"):
        chain._calldata([])  # type: ignore[arg-type]

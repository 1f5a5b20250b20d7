"""SolvencyRegistry on a real anvil, with real Groth16 proofs of the toy circuits.

Reverts are asserted on mined transactions (preflight off) that carry an explicit gas limit,
as the publisher sends them.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from zksolvency.prover import chain
from zksolvency.prover.commitments import registry_domain, solvency_public_count

from .conftest import (
    N_ASSETS,
    TOY_PRICES_E8,
    P,
    ToyEpoch,
    ToyProofs,
    ToySetup,
    account,
    finalize_call,
    with_claim,
    with_proof,
)

KIND_BATCH, KIND_SOLVENCY = 0, 1
ZERO = "0x" + "00" * 20


def finalize_gas(registry: Any) -> int:
    """finalize's gas limit as publish_epoch computes it (no custody addresses)."""
    return chain.finalize_gas_for(registry, 0)


def slot(token: str = ZERO, token_decimals: int = 0, asset_decimals: int = 0) -> tuple[Any, ...]:
    """An AssetConfig (token, tokenDecimals, assetDecimals, feeds, maxAge, toleranceBps,
    quorum) without feeds."""
    return (token, token_decimals, asset_decimals, [], 0, 0, 0)


def send(
    w3: Web3, registry: Any, fn: str, *args: Any, sender: str | None = None, gas: int = 600_000
) -> Any:
    return chain.transact(
        w3, sender or w3.eth.accounts[0], registry, fn, args, gas=gas, preflight=False
    )


def reverts(
    w3: Web3, registry: Any, error: str, fn: str, *args: Any, **kw: Any
) -> chain.RegistryRevert:
    with pytest.raises(chain.RegistryRevert) as info:
        send(w3, registry, fn, *args, **kw)
    assert info.value.error == error, str(info.value)
    assert info.value.tx_hash is not None  # it was mined, not caught in preflight
    return info.value


def open_main(w3: Web3, registry: Any, epoch: ToyEpoch, number: int = 1) -> Any:
    return send(w3, registry, "openEpoch", number, epoch.ctx, len(epoch.batches), epoch.bundle_hash)


def test_valid_epoch_end_to_end(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    receipt = open_main(w3, registry, e, 1)
    (opened,) = registry.events.EpochOpened().process_receipt(receipt)
    assert opened["args"] == {
        "epoch": 1,
        "ctxHash": e.ctx,
        "nBatches": 3,
        "bundleHash": e.bundle_hash,
    }
    assert registry.functions.openEpochId().call() == 1

    batch_gas = []
    for i in range(3):
        receipt = send(w3, registry, "submitBatch", *e.batch_args(i, 1))
        batch_gas.append(receipt["gasUsed"])
        (ev,) = registry.events.BatchVerified().process_receipt(receipt)
        assert ev["args"] == {
            "epoch": 1,
            "index": i,
            "prevState": e.states[i],
            "nextState": e.states[i + 1],
        }
        assert chain.read_epoch(w3, registry, 1).state == e.states[i + 1]

    receipt = send(w3, registry, "finalize", *e.finalize_args(1), gas=finalize_gas(registry))
    (fin,) = registry.events.EpochFinalized().process_receipt(receipt)
    assert not registry.events.AttestationRefused().process_receipt(receipt, errors=DISCARD)
    print(f"\nbatch submit gas: {batch_gas}; finalize gas (N={N_ASSETS}): {receipt['gasUsed']}")

    rec = chain.read_epoch(w3, registry, 1)
    assert rec.status is chain.EpochStatus.FINALIZED
    assert fin["args"] == {
        "epoch": 1,
        "root": rec.root,
        "finalState": rec.state,
        "totalsCommit": rec.totals_commit,
        "shortfall": rec.shortfall,
        "insuranceFund": rec.insurance_fund,
        "nBatches": rec.n_batches,
        "verified": list(rec.reserves),
        "declared": list(rec.declared),
        "verifiedOnly": rec.verified_only,
    }
    assert (rec.ctx_hash, rec.bundle_hash, rec.state) == (e.ctx, e.bundle_hash, e.states[-1])
    assert (rec.root, rec.totals_commit) == (e.root, e.totals_commit)
    # Nothing is held on this chain: verified reserves are 0 and all of them are declared.
    assert list(rec.reserves) == e.verified == [0] * N_ASSETS
    assert list(rec.declared) == e.declared and all(d > 0 for d in e.declared)
    assert rec.verified_only is e.verified_only is False
    # The weights' USD prices (assetDecimals 0: weight / 10^18), as the proof claimed them.
    assert rec.prices_e8 == TOY_PRICES_E8
    assert [w // 10**18 for w in e.weights] == list(TOY_PRICES_E8)
    assert registry.functions.getCustody(1).call() == []
    assert (rec.shortfall, rec.insurance_fund) == (e.shortfall, e.insurance_fund) == (40, 100)
    assert (rec.n_batches, rec.batches_submitted) == (3, 3)
    assert 0 < rec.opened_at <= rec.finalized_at
    assert registry.functions.latestEpoch().call() == 1
    assert registry.functions.latestFinalizedEpoch().call() == 1
    assert registry.functions.openEpochId().call() == 0
    assert registry.functions.isFinalizedRoot(1, e.root).call()
    assert not registry.functions.isFinalizedRoot(1, e.root + 1).call()
    assert not registry.functions.isFinalizedRoot(2, e.root).call()


def test_views_and_selectors(registry: Any, deployment: chain.Deployment, node: Any) -> None:
    f = registry.functions
    assert f.publisher().call() == node.accounts[0] == deployment.publisher
    assert f.batchVerifier().call() == deployment.batch_verifier
    assert f.solvencyVerifier().call() == deployment.solvency_verifier
    assert f.nAssets().call() == N_ASSETS
    assert f.batchSelector().call() == chain.verify_selector(3)
    assert solvency_public_count(N_ASSETS) == 10 + 3 * N_ASSETS
    assert f.solvencySelector().call() == chain.verify_selector(10 + 3 * N_ASSETS)
    assert f.SOLVENCY_FIXED_INPUTS().call() == chain.SOLVENCY_FIXED_INPUTS == 9
    # The default deployment checks nothing on-chain: no token, no feeds in any slot.
    for i in range(N_ASSETS):
        assert tuple(f.assetConfig(i).call()) == slot()
    assert f.onchainReserves([]).call() == [0] * N_ASSETS
    assert f.onchainReserves([account(registry.w3, 1)]).call() == [0] * N_ASSETS
    weights = [p * 10**18 for p in TOY_PRICES_E8]
    assert [tuple(r) for r in f.checkPrices(weights).call()] == [(0, 0, 0, 0)] * N_ASSETS
    with pytest.raises(ContractLogicError):
        f.checkPrices(weights[:-1]).call()
    assert f.getCustody(1).call() == f.getDeclaredReserves(1).call() == f.getPrices(1).call() == []
    chain_id = registry.w3.eth.chain_id
    assert f.domain().call() == registry_domain(chain_id, deployment.registry)
    assert f.domain().call() == chain_id << 160 | int(deployment.registry, 16)
    assert f.SNARK_SCALAR_FIELD().call() == P
    counters = (f.latestEpoch().call(), f.latestFinalizedEpoch().call(), f.openEpochId().call())
    assert counters == (0, 0, 0)
    assert chain.read_epoch(registry.w3, registry, 1).status is chain.EpochStatus.NONE


@pytest.mark.parametrize(
    "fn", ["openEpoch", "submitBatch", "addCustody", "finalize", "abandonEpoch"]
)
def test_only_publisher_writes(w3: Web3, registry: Any, proofs: ToyProofs, fn: str) -> None:
    e = proofs.main
    open_main(w3, registry, e)
    args = {
        "openEpoch": (2, e.ctx, 3, e.bundle_hash),
        "submitBatch": e.batch_args(0, 1),
        "addCustody": (1, [], []),
        "finalize": e.finalize_args(1),
        "abandonEpoch": (1,),
    }[fn]
    stranger = account(w3, 1)
    err = reverts(w3, registry, "NotPublisher", fn, *args, sender=stranger)
    assert err.error_args == (stranger,)


def test_replayed_and_out_of_order_batches(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    open_main(w3, registry, e)
    # Skipping ahead: batch 1 (a valid proof) before batch 0.
    err = reverts(w3, registry, "WrongBatchIndex", "submitBatch", *e.batch_args(1, 1))
    assert err.error_args == (0, 1)
    send(w3, registry, "submitBatch", *e.batch_args(0, 1))
    # Replay of batch 0, same proof and index.
    err = reverts(w3, registry, "WrongBatchIndex", "submitBatch", *e.batch_args(0, 1))
    assert err.error_args == (1, 0)
    send(w3, registry, "submitBatch", *e.batch_args(1, 1))
    send(w3, registry, "submitBatch", *e.batch_args(2, 1))
    # Past nBatches.
    err = reverts(w3, registry, "TooManyBatches", "submitBatch", *e.batch_args(2, 1, index=3))
    assert err.error_args == (3, 3)
    assert chain.read_epoch(w3, registry, 1).batches_submitted == 3


def test_batch_must_continue_the_chain(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    open_main(w3, registry, e)
    # A valid proof of batch 1 submitted as index 0: its prevState is not the stored ctxHash.
    err = reverts(w3, registry, "InvalidProof", "submitBatch", *e.batch_args(1, 1, index=0))
    assert err.error_args == (KIND_BATCH,)
    # Same after a gap in the chain: batch 2's proof at index 1.
    send(w3, registry, "submitBatch", *e.batch_args(0, 1))
    reverts(w3, registry, "InvalidProof", "submitBatch", *e.batch_args(2, 1, index=1))
    assert chain.read_epoch(w3, registry, 1).state == e.states[1]


def _tampered(args: tuple[Any, ...], how: str, donor: tuple[Any, ...]) -> tuple[Any, ...]:
    epoch, index, a, b, c, nxt = args
    if how == "a-off-curve":
        a = [a[0], (a[1] + 1) % P]
    elif how == "c-from-other-proof":
        c = donor[4]
    elif how == "b-swapped":
        b = [b[1], b[0]]
    return (epoch, index, a, b, c, nxt)


@pytest.mark.parametrize("how", ["a-off-curve", "c-from-other-proof", "b-swapped"])
def test_tampered_batch_proof_is_invalid(
    w3: Web3, registry: Any, proofs: ToyProofs, how: str
) -> None:
    e = proofs.main
    open_main(w3, registry, e)
    bad = _tampered(e.batch_args(0, 1), how, e.batch_args(1, 1))
    # 600k is plenty: the revert is the proof's fault, not a starved verifier's.
    err = reverts(w3, registry, "InvalidProof", "submitBatch", *bad, gas=600_000)
    assert err.error_args == (KIND_BATCH,)
    # Wrong public input with an untouched proof.
    epoch, index, a, b, c, nxt = e.batch_args(0, 1)
    reverts(w3, registry, "InvalidProof", "submitBatch", epoch, index, a, b, c, nxt + 1)
    assert chain.read_epoch(w3, registry, 1).batches_submitted == 0


def _close_batches(w3: Web3, registry: Any, e: ToyEpoch, epoch: int = 1) -> None:
    open_main(w3, registry, e, epoch)
    for i in range(len(e.batches)):
        send(w3, registry, "submitBatch", *e.batch_args(i, epoch))


def _bump(values: list[int], j: int, by: int = 1) -> list[int]:
    return [v + by if i == j else v for i, v in enumerate(values)]


def test_tampered_solvency_proof_is_invalid(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    """Every Claim value is a public signal of the proof: changing any one of them, with the
    proof untouched, is an invalid proof."""
    e = proofs.main
    _close_batches(w3, registry, e)
    args = e.finalize_args(1)
    _, (a, b, _), claim = args
    root, totals, short, fund, weights, verified, declared, verified_only = claim
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("a", with_proof(args, a=[a[0], (a[1] + 1) % P])),
        ("b", with_proof(args, b=[b[1], b[0]])),
        ("c", with_proof(args, c=e.finalize_args(2)[1][2])),  # another valid proof's C
        ("root", with_claim(args, root=root + 1)),
        ("totalsCommit", with_claim(args, totalsCommit=totals + 1)),
        ("shortfall", with_claim(args, shortfall=short + 1)),
        ("insuranceFund", with_claim(args, insuranceFund=fund + 1)),
        ("swapped", with_claim(args, shortfall=fund, insuranceFund=short)),
        ("verifiedOnly", with_claim(args, verifiedOnly=not verified_only)),
    ]
    for j in range(N_ASSETS):
        cases.append((f"weights[{j}]", with_claim(args, weights=_bump(weights, j))))
        cases.append((f"declared[{j}]", with_claim(args, declared=_bump(declared, j))))
        cases.append((f"declared[{j}] - 1", with_claim(args, declared=_bump(declared, j, -1))))
    cases.append(("weights reordered", with_claim(args, weights=weights[::-1])))
    for what, bad in cases:
        err = reverts(w3, registry, "InvalidProof", "finalize", *bad, gas=finalize_gas(registry))
        assert err.error_args == (KIND_SOLVENCY,), what
    # A verified reserve the registry cannot read back is refused before the proof is checked.
    for j in range(N_ASSETS):
        bad = with_claim(args, verified=_bump(verified, j))
        err = reverts(w3, registry, "ReservesChanged", "finalize", *bad, gas=finalize_gas(registry))
        assert err.error_args == (j, verified[j] + 1, 0)
    # So are declared reserves passed off as verified.
    bad = with_claim(args, verified=declared, declared=verified)
    err = reverts(w3, registry, "ReservesChanged", "finalize", *bad, gas=finalize_gas(registry))
    assert err.error_args == (0, declared[0], 0)
    assert chain.read_epoch(w3, registry, 1).status is chain.EpochStatus.OPEN
    send(w3, registry, "finalize", *args, gas=finalize_gas(registry))


def test_verified_reserves_are_read_back(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    """A proof claiming verified reserves this registry does not see (it holds no custody and
    checks no token) is refused as ReservesChanged, and the on-chain zeros in its place do not
    match the proof: tampering the verified reserves is an invalid proof too."""
    e = proofs.main
    proof, public = proofs.verified_claim
    _close_batches(w3, registry, e)
    args = finalize_call(1, proof, public)
    _, _, (*_, verified, declared, verified_only) = args
    assert verified == proofs.verified_claim_reserves and verified_only is False
    err = reverts(w3, registry, "ReservesChanged", "finalize", *args, gas=finalize_gas(registry))
    assert err.error_args == (0, verified[0], 0)
    zeros = [0] * N_ASSETS
    for bad in (
        with_claim(args, verified=zeros),
        # the verified amounts moved to declared: still not the proven split
        with_claim(
            args, verified=zeros, declared=[v + d for v, d in zip(verified, declared, strict=True)]
        ),
    ):
        err = reverts(w3, registry, "InvalidProof", "finalize", *bad, gas=finalize_gas(registry))
        assert err.error_args == (KIND_SOLVENCY,)
    assert chain.read_epoch(w3, registry, 1).status is chain.EpochStatus.OPEN


def test_starved_verifier_is_not_an_invalid_proof(
    w3: Web3, registry: Any, proofs: ToyProofs
) -> None:
    """snarkjs verifiers answer false when out of gas; the registry names that case instead."""
    e = proofs.main
    open_main(w3, registry, e)
    err = reverts(w3, registry, "InsufficientGas", "submitBatch", *e.batch_args(0, 1), gas=200_000)
    assert err.error_args[0] == KIND_BATCH
    # ...which also makes eth_estimateGas usable: its estimate is enough for a valid proof.
    fn = registry.functions.submitBatch(*e.batch_args(0, 1))
    estimate = fn.estimate_gas({"from": w3.eth.accounts[0]})
    receipt = send(w3, registry, "submitBatch", *e.batch_args(0, 1), gas=estimate)
    print(f"\nsubmitBatch: estimate {estimate}, used {receipt['gasUsed']}")


def test_public_values_outside_the_field(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    reverts(w3, registry, "FieldOverflow", "openEpoch", 1, e.ctx + P, 3, e.bundle_hash)
    reverts(w3, registry, "FieldOverflow", "openEpoch", 1, 2**256 - 1, 3, e.bundle_hash)
    open_main(w3, registry, e)
    epoch, index, a, b, c, nxt = e.batch_args(0, 1)
    # nxt + P is congruent to nxt: the verifier alone would wrongly-but-quietly say false.
    err = reverts(w3, registry, "FieldOverflow", "submitBatch", epoch, index, a, b, c, nxt + P)
    assert err.error_args == (nxt + P,)
    for i in range(3):
        send(w3, registry, "submitBatch", *e.batch_args(i, 1))
    args = e.finalize_args(1)
    root, totals, short, fund, weights, verified, declared, _ = args[2]
    cases = [
        with_claim(args, root=root + P),
        with_claim(args, totalsCommit=totals + P),
        with_claim(args, shortfall=short + P),
        with_claim(args, insuranceFund=fund + P),
        with_claim(args, root=2**256 - 1),
    ]
    for j in range(N_ASSETS):
        cases.append(with_claim(args, weights=_bump(weights, j, P)))
        cases.append(with_claim(args, verified=_bump(verified, j, P)))
        cases.append(with_claim(args, declared=_bump(declared, j, P)))
    for bad in cases:
        err = reverts(w3, registry, "FieldOverflow", "finalize", *bad, gas=finalize_gas(registry))
        assert err.error_args[0] >= P
    send(w3, registry, "finalize", *args, gas=finalize_gas(registry))


def test_finalize_needs_every_batch(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    open_main(w3, registry, e)
    reverts(w3, registry, "BatchesMissing", "finalize", *e.finalize_args(1))
    send(w3, registry, "submitBatch", *e.batch_args(0, 1))
    send(w3, registry, "submitBatch", *e.batch_args(1, 1))
    err = reverts(w3, registry, "BatchesMissing", "finalize", *e.finalize_args(1))
    assert err.error_args == (2, 3)


def test_wrong_counts(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    _close_batches(w3, registry, e)
    args = e.finalize_args(1)
    _, _, _, _, weights, verified, declared, _ = args[2]
    for field, values, error in (
        ("weights", weights, "WrongWeightCount"),
        ("verified", verified, "WrongReserveCount"),
        ("declared", declared, "WrongReserveCount"),
    ):
        for wrong in (values[:-1], [*values, 0], []):
            bad = with_claim(args, **{field: wrong})
            err = reverts(w3, registry, error, "finalize", *bad)
            assert err.error_args == (N_ASSETS, len(wrong)), field
    send(w3, registry, "finalize", *args, gas=finalize_gas(registry))


def test_custody_is_signed_and_increasing(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    """addCustody on the session registry: only for the open epoch, one signature per address,
    and each must be the address's own."""
    e = proofs.main
    holder = account(w3, 5)
    reverts(w3, registry, "NotOpen", "addCustody", 1, [holder], [b"\x00" * 65])
    open_main(w3, registry, e)
    err = reverts(w3, registry, "WrongSignatureCount", "addCustody", 1, [holder], [])
    assert err.error_args == (1, 0)
    forged = b"\x11" * 64 + b"\x1b"
    err = reverts(w3, registry, "BadCustodySignature", "addCustody", 1, [holder], [forged])
    assert err.error_args == (holder,)
    assert registry.functions.getCustody(1).call() == []
    send(w3, registry, "addCustody", 1, [], [])  # nothing to add is not an error


def test_epochs_strictly_increase(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    err = reverts(w3, registry, "EpochNotIncreasing", "openEpoch", 0, e.ctx, 3, e.bundle_hash)
    assert err.error_args == (0, 0)
    open_main(w3, registry, e, 5)
    for i in range(3):
        send(w3, registry, "submitBatch", *e.batch_args(i, 5))
    send(w3, registry, "finalize", *e.finalize_args(5), gas=finalize_gas(registry))
    for again in (5, 4, 1):  # a replayed epoch and older ones
        err = reverts(
            w3, registry, "EpochNotIncreasing", "openEpoch", again, e.ctx, 3, e.bundle_hash
        )
        assert err.error_args == (again, 5)
    # Finalized epochs are closed to writes.
    reverts(w3, registry, "NotOpen", "submitBatch", *e.batch_args(0, 5))
    reverts(w3, registry, "NotOpen", "finalize", *e.finalize_args(5))
    open_main(w3, registry, e, 6)


def test_one_open_epoch_at_a_time(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    reverts(w3, registry, "ZeroBatches", "openEpoch", 1, e.ctx, 0, e.bundle_hash)
    open_main(w3, registry, e, 1)
    err = reverts(w3, registry, "EpochStillOpen", "openEpoch", 2, e.ctx, 3, e.bundle_hash)
    assert err.error_args == (1,)
    # A never-opened epoch takes no batches.
    reverts(w3, registry, "NotOpen", "submitBatch", *e.batch_args(0, 2))
    reverts(w3, registry, "NotOpen", "abandonEpoch", 2)


def test_abandon_then_open_next(w3: Web3, registry: Any, proofs: ToyProofs) -> None:
    e = proofs.main
    open_main(w3, registry, e, 1)
    send(w3, registry, "submitBatch", *e.batch_args(0, 1))
    receipt = send(w3, registry, "abandonEpoch", 1)
    (ev,) = registry.events.EpochAbandoned().process_receipt(receipt)
    assert ev["args"] == {"epoch": 1, "batchesSubmitted": 1}
    rec = chain.read_epoch(w3, registry, 1)
    assert (rec.status, rec.batches_submitted) == (chain.EpochStatus.ABANDONED, 1)
    assert registry.functions.openEpochId().call() == 0

    # Abandoned is final.
    reverts(w3, registry, "NotOpen", "submitBatch", *e.batch_args(1, 1))
    reverts(w3, registry, "NotOpen", "finalize", *e.finalize_args(1))
    reverts(w3, registry, "NotOpen", "addCustody", 1, [], [])
    reverts(w3, registry, "NotOpen", "abandonEpoch", 1)
    reverts(w3, registry, "EpochNotIncreasing", "openEpoch", 1, e.ctx, 3, e.bundle_hash)

    # The next epoch goes through, and epoch 1 never becomes finalized.
    open_main(w3, registry, e, 2)
    for i in range(3):
        send(w3, registry, "submitBatch", *e.batch_args(i, 2))
    send(w3, registry, "finalize", *e.finalize_args(2), gas=finalize_gas(registry))
    assert registry.functions.latestFinalizedEpoch().call() == 2
    assert not registry.functions.isFinalizedRoot(1, e.root).call()
    assert chain.read_epoch(w3, registry, 1).status is chain.EpochStatus.ABANDONED


def test_constructor_guards(w3: Web3, toy: ToySetup, deployment: chain.Deployment) -> None:
    art = toy.artifacts["SolvencyRegistry"]
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    me, eoa = w3.eth.accounts[0], account(w3, 2)
    bv, sv = deployment.batch_verifier, deployment.solvency_verifier
    four = [slot()] * 4
    native = chain.NATIVE_TOKEN

    def with_slot(i: int, s: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return [s if j == i else x for j, x in enumerate(four)]

    for args, error in [
        ((ZERO, bv, sv, 4, four), ("ZeroAddress", ())),
        ((me, eoa, sv, 4, four), ("NoCode", (eoa,))),
        ((me, bv, eoa, 4, four), ("NoCode", (eoa,))),
        ((me, bv, sv, 0, []), ("ZeroAssets", ())),
        ((me, bv, sv, 4, four[:3]), ("WrongAssetCount", (4, 3))),
        ((me, bv, sv, 4, [*four, slot()]), ("WrongAssetCount", (4, 5))),
        ((me, bv, sv, 4, with_slot(2, slot(asset_decimals=19))), ("BadAssetDecimals", (2, 19))),
        ((me, bv, sv, 4, with_slot(1, slot(native, 37, 18))), ("BadTokenDecimals", (1, 37))),
        ((me, bv, sv, 4, with_slot(3, slot(eoa, 6, 6))), ("NoCode", (eoa,))),
    ]:
        with pytest.raises(ContractLogicError) as info:
            factory.constructor(*args).estimate_gas({"from": me})
        assert chain.decode_revert(art.abi, info.value.data) == error, args
    # The limits themselves are accepted: 18 asset decimals, ether with 36 token decimals.
    ok = with_slot(0, slot(native, 36, 18))
    factory.constructor(me, bv, sv, 4, ok).estimate_gas({"from": me})


def test_deploy_checks_verifier_arity(w3: Web3, toy: ToySetup) -> None:
    before = w3.eth.block_number
    # 3 assets need 10 + 3 * 3 public signals; the toy verifier takes 10 + 3 * 4.
    with pytest.raises(chain.ChainError, match=r"uint256\[22\][^\n]*uint256\[19\]"):
        chain.deploy(w3, w3.eth.accounts[0], toy.artifacts, N_ASSETS - 1)
    assert w3.eth.block_number == before


def test_decode_revert_knows_every_error(toy: ToySetup) -> None:
    abi = toy.artifacts["SolvencyRegistry"].abi
    data = (
        keccak(text="WrongBatchIndex(uint64,uint64)")[:4]
        + (2).to_bytes(32, "big")
        + (5).to_bytes(32, "big")
    )
    assert chain.decode_revert(abi, data) == ("WrongBatchIndex", (2, 5))
    assert chain.decode_revert(abi, b"") == ("EmptyRevert", ())
    errors = {item["name"] for item in abi if item["type"] == "error"}
    assert {
        "NotPublisher",
        "EpochNotIncreasing",
        "EpochStillOpen",
        "NotOpen",
        "WrongBatchIndex",
        "TooManyBatches",
        "BatchesMissing",
        "WrongReserveCount",
        "InvalidProof",
        "FieldOverflow",
        "InsufficientGas",
        "ZeroBatches",
        "WrongWeightCount",
        "WrongAssetCount",
        "BadAssetDecimals",
        "BadTokenDecimals",
        "WrongSignatureCount",
        "CustodyNotIncreasing",
        "BadCustodySignature",
        "ReservesChanged",
    } <= errors
    events = {item["name"] for item in abi if item["type"] == "event"}
    assert {"EpochFinalized", "CustodyAdded", "PriceCheckFailed", "AttestationRefused"} <= events

"""AccountMarginVerifier on a real anvil, with real Groth16 proofs of the toy margin circuit
(public [ctxHash, root, idCommit, headroom]) against epochs published with the toy registry
proofs; and the chain.py helpers verify_margin_on_chain / attest_margin.

Run with -s to see the gas of verifyMargin and attest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.exceptions import ContractLogicError
from zksolvency.prover import chain
from zksolvency.prover.deployment import deploy_registry, load_deployment
from zksolvency.prover.params import EpochParams

from .conftest import (
    HIGH_HEADROOM,
    LOW_HEADROOM,
    N_ASSETS,
    P,
    ToyProofs,
    ToySetup,
    account,
    calldata,
)

NONE, OPEN, FINALIZED, ABANDONED = 0, 1, 2, 3


@pytest.fixture
def margin(w3: Web3, deployment: chain.Deployment) -> Any:
    return deployment.margin_contract(w3)


def publish(
    w3: Web3, registry: Any, proofs: ToyProofs, epoch: int, other_root: bool = False
) -> None:
    other = proofs.other_root_at(epoch) if other_root else None
    proofs.main.publish(w3, registry, epoch, other)


def raw_revert(
    margin: Any, fn: str, args: tuple[Any, ...], gas: int = 1_000_000
) -> tuple[str, Any]:
    """The decoded revert of a direct eth_call of the contract, bypassing the helpers."""
    with pytest.raises(ContractLogicError) as info:
        getattr(margin.functions, fn)(*args).call({"gas": gas})
    data = info.value.data
    return chain.decode_revert(margin.abi, data if isinstance(data, str) else None)


def test_deployment_wires_registry_and_verifier(
    margin: Any, deployment: chain.Deployment, toy: ToySetup
) -> None:
    f = margin.functions
    assert f.registry().call() == deployment.registry
    assert f.verifier().call() == deployment.margin_verifier
    assert f.MARGIN_PUBLIC_INPUTS().call() == chain.MARGIN_PUBLIC_INPUTS == 4
    assert f.SNARK_SCALAR_FIELD().call() == P
    assert set(deployment.gas_used) == {
        "BatchVerifier",
        "SolvencyVerifier",
        "SolvencyRegistry",
        "MarginVerifier",
        "AccountMarginVerifier",
    }
    print(f"\nmargin deploy gas: {deployment.gas_used}")


def test_verify_and_attest_on_a_finalized_epoch(
    w3: Web3, registry: Any, margin: Any, proofs: ToyProofs
) -> None:
    publish(w3, registry, proofs, 1)
    low, high = proofs.margin["low"], proofs.margin["high"]
    assert chain.verify_margin_on_chain(w3, margin, 1, low) == LOW_HEADROOM
    assert chain.verify_margin_on_chain(w3, margin, 1, high) == HIGH_HEADROOM
    estimate = margin.functions.verifyMargin(*proofs.margin_args("high", 1)).estimate_gas()
    assert estimate < chain.MARGIN_VERIFY_GAS

    id_commit = int(low[1][2])
    assert chain.read_attested_headroom(margin, 1, id_commit) is None
    first = chain.attest_margin(w3, w3.eth.accounts[0], margin, 1, low)
    assert (first.headroom, first.recorded_headroom) == (LOW_HEADROOM, LOW_HEADROOM)
    second = chain.attest_margin(w3, account(w3, 1), margin, 1, high)
    assert second.recorded_headroom == HIGH_HEADROOM
    # A lower proof verifies and is logged but keeps the highest headroom on record.
    third = chain.attest_margin(w3, w3.eth.accounts[0], margin, 1, low)
    assert (third.headroom, third.recorded_headroom) == (LOW_HEADROOM, HIGH_HEADROOM)
    assert chain.read_attested_headroom(margin, 1, id_commit) == HIGH_HEADROOM
    assert chain.read_attested_headroom(margin, 2, id_commit) is None

    receipt = w3.eth.get_transaction_receipt(second.tx_hash)
    (ev,) = margin.events.MarginAttested().process_receipt(receipt)
    assert ev["args"] == {
        "epoch": 1,
        "idCommit": id_commit,
        "headroom": HIGH_HEADROOM,
        "prover": account(w3, 1),
    }
    assert max(first.gas_used, second.gas_used, third.gas_used) < chain.ATTEST_GAS
    print(
        f"\nverifyMargin estimate {estimate}; attest gas: first {first.gas_used}, "
        f"higher {second.gas_used}, lower {third.gas_used}"
    )


def test_epoch_must_be_finalized(w3: Web3, registry: Any, margin: Any, proofs: ToyProofs) -> None:
    low = proofs.margin["low"]
    # Unknown epoch: the helper says so before calling; the contract names the status.
    with pytest.raises(chain.MarginError, match="epoch 1 is none on the registry"):
        chain.verify_margin_on_chain(w3, margin, 1, low)
    with pytest.raises(chain.RegistryRevert) as info:
        chain.verify_margin_on_chain(w3, margin, 1, low, check=False)
    assert (info.value.error, info.value.error_args) == ("EpochNotFinalized", (1, NONE))
    assert raw_revert(margin, "verifyMargin", proofs.margin_args("low", 0)) == (
        "EpochNotFinalized",
        (0, NONE),
    )

    # Open, all batches in, not finalized.
    e = proofs.main
    me = w3.eth.accounts[0]
    chain.transact(w3, me, registry, "openEpoch", (1, e.ctx, 3, e.bundle_hash), gas=300_000)
    for i in range(3):
        chain.transact(w3, me, registry, "submitBatch", e.batch_args(i, 1), gas=600_000)
    with pytest.raises(chain.MarginError, match="epoch 1 is open"):
        chain.attest_margin(w3, me, margin, 1, low)
    with pytest.raises(chain.RegistryRevert) as info:
        chain.attest_margin(w3, me, margin, 1, low, check=False, preflight=False)
    assert (info.value.error, info.value.error_args) == ("EpochNotFinalized", (1, OPEN))
    assert info.value.tx_hash is not None

    # Abandoned.
    chain.transact(w3, me, registry, "abandonEpoch", (1,), gas=100_000)
    assert raw_revert(margin, "verifyMargin", proofs.margin_args("low", 1)) == (
        "EpochNotFinalized",
        (1, ABANDONED),
    )
    assert chain.read_attested_headroom(margin, 1, int(low[1][2])) is None


def test_proof_must_match_the_epochs_root_and_context(
    w3: Web3, registry: Any, margin: Any, proofs: ToyProofs
) -> None:
    publish(w3, registry, proofs, 1)
    publish(w3, registry, proofs, 2, other_root=True)
    cases = [
        ("other_root", 1, "made for root"),  # epoch 1 has the main root
        ("low", 2, "made for root"),  # epoch 2 has the other root
        ("other_ctx", 1, "made for ctxHash"),
    ]
    for kind, epoch, message in cases:
        with pytest.raises(chain.MarginError, match=message):
            chain.verify_margin_on_chain(w3, margin, epoch, proofs.margin[kind])
        with pytest.raises(chain.RegistryRevert) as info:
            chain.verify_margin_on_chain(w3, margin, epoch, proofs.margin[kind], check=False)
        assert (info.value.error, info.value.error_args) == ("InvalidProof", ()), kind
    # Each proof holds for its own epoch.
    assert chain.verify_margin_on_chain(w3, margin, 2, proofs.margin["other_root"]) == LOW_HEADROOM
    assert chain.verify_margin_on_chain(w3, margin, 1, proofs.margin["low"]) == LOW_HEADROOM


def test_tampered_proofs_and_values(
    w3: Web3, registry: Any, margin: Any, proofs: ToyProofs
) -> None:
    publish(w3, registry, proofs, 1)
    epoch, id_commit, headroom, a, b, c = proofs.margin_args("low", 1)
    _, _, _, _, _, c_other = proofs.margin_args("high", 1)
    for args in [
        (epoch, id_commit, headroom + 1, a, b, c),  # claims more headroom than proven
        (epoch, id_commit + 1, headroom, a, b, c),
        (epoch, id_commit, headroom, [a[0], (a[1] + 1) % P], b, c),
        (epoch, id_commit, headroom, a, b, c_other),
        (epoch, id_commit, headroom, a, [b[1], b[0]], c),
    ]:
        assert raw_revert(margin, "verifyMargin", args) == ("InvalidProof", ())
        assert raw_revert(margin, "attest", args) == ("InvalidProof", ())
    for args in [
        (epoch, id_commit + P, headroom, a, b, c),
        (epoch, id_commit, headroom + P, a, b, c),
    ]:
        name, detail = raw_revert(margin, "verifyMargin", args)
        assert name == "FieldOverflow" and detail[0] >= P
    # Signals given to the helper are checked before anything is called.
    proof, signals = proofs.margin["low"]
    with pytest.raises(chain.PublishError, match="expected 4"):
        chain.verify_margin_on_chain(w3, margin, 1, (proof, signals[:3]))
    with pytest.raises(chain.PublishError, match="not a field element"):
        chain.verify_margin_on_chain(w3, margin, 1, (proof, [*signals[:3], str(P)]))
    assert chain.read_attested_headroom(margin, 1, id_commit) is None


def test_starved_verifier_is_not_an_invalid_proof(
    w3: Web3, registry: Any, margin: Any, proofs: ToyProofs
) -> None:
    publish(w3, registry, proofs, 1)
    low = proofs.margin["low"]
    with pytest.raises(chain.RegistryRevert) as info:
        chain.verify_margin_on_chain(w3, margin, 1, low, gas=200_000)
    assert info.value.error == "InsufficientGas"
    needed, available = info.value.error_args
    assert available < needed
    with pytest.raises(chain.RegistryRevert) as info:
        chain.attest_margin(w3, w3.eth.accounts[0], margin, 1, low, gas=200_000, preflight=False)
    assert info.value.error == "InsufficientGas" and info.value.tx_hash is not None
    # eth_estimateGas finds a limit that passes the guard, and that limit is enough.
    args = proofs.margin_args("low", 1)
    estimate = margin.functions.attest(*args).estimate_gas({"from": w3.eth.accounts[0]})
    done = chain.attest_margin(w3, w3.eth.accounts[0], margin, 1, low, gas=estimate)
    print(f"\nattest: estimate {estimate}, used {done.gas_used}")


def test_constructor_guards(w3: Web3, toy: ToySetup, deployment: chain.Deployment) -> None:
    art = toy.artifacts["AccountMarginVerifier"]
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    me, eoa = w3.eth.accounts[0], account(w3, 2)
    for args in [(eoa, deployment.margin_verifier), (deployment.registry, eoa)]:
        with pytest.raises(ContractLogicError) as info:
            factory.constructor(*args).estimate_gas({"from": me})
        assert chain.decode_revert(art.abi, info.value.data) == ("NoCode", (eoa,))


def test_deploy_margin_is_optional_and_checked(w3: Web3, toy: ToySetup) -> None:
    me = w3.eth.accounts[0]
    plain = chain.deploy(w3, me, toy.artifacts, N_ASSETS, margin=False)
    assert plain.margin_verifier is None and plain.account_margin_verifier is None
    with pytest.raises(chain.ChainError, match="no AccountMarginVerifier"):
        plain.margin_contract(w3)
    without = {k: v for k, v in toy.artifacts.items() if k != "MarginVerifier"}
    assert chain.deploy(w3, me, without, N_ASSETS).margin_verifier is None
    before = w3.eth.block_number
    with pytest.raises(chain.ChainError, match="no compiled MarginVerifier"):
        chain.deploy(w3, me, without, N_ASSETS, margin=True)
    # A margin verifier of the wrong arity (here the batch circuit's) is refused up front.
    wrong = {**toy.artifacts, "MarginVerifier": toy.artifacts["BatchVerifier"]}
    with pytest.raises(chain.ChainError, match=r"uint256\[4\]"):
        chain.deploy(w3, me, wrong, N_ASSETS)
    assert w3.eth.block_number == before


def test_deploy_registry_records_the_margin_contracts(
    w3: Web3, toy: ToySetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZKSOLVENCY_BUILD", str(tmp_path / "build"))
    params = EpochParams.default()  # only its n_assets and as_dict() are used
    assert params.n_assets == N_ASSETS
    out = tmp_path / "deployment.json"
    record = deploy_registry(w3, w3.eth.accounts[0], toy.keys, params, out, margin=toy.margin_keys)
    assert load_deployment(out) == json.loads(json.dumps(record))
    assert record["margin_vkey_sha256"] == toy.margin_keys.vkey_hash
    code = bytes(w3.eth.get_code(record["margin_verifier"]))
    assert record["margin_verifier_codehash"] == Web3.keccak(code).to_0x_hex()
    margin = chain.registry_at(
        w3, record["account_margin_verifier"], toy.artifacts["AccountMarginVerifier"].abi
    )
    assert margin.functions.registry().call() == record["registry"]
    assert margin.functions.verifier().call() == record["margin_verifier"]
    assert "AccountMarginVerifier" in record["gas_used"]

    plain = deploy_registry(w3, w3.eth.accounts[0], toy.keys, params)
    assert plain["margin_verifier"] is None and plain["account_margin_verifier"] is None
    assert plain["margin_vkey_sha256"] is None and plain["margin_verifier_codehash"] is None


def test_calldata_helper_matches(proofs: ToyProofs) -> None:
    proof = proofs.margin["low"][0]
    assert chain._calldata(proof) == calldata(proof)

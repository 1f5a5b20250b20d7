"""Gas griefing, proof malleability and replay against SolvencyRegistry and AccountMarginVerifier
on a real anvil, with real Groth16 proofs of the toy circuits (conftest.py).

A snarkjs verifier answers ``false`` when it runs out of gas (its precompile calls fail), so
whoever picks the gas limit could turn a valid proof into a recorded "invalid proof", and an
``eth_estimateGas`` search could settle on a limit where the verifier is starved. The contracts
refuse to call a verifier with less than its budget left (``InsufficientGas``). The sweeps below
try every gas limit around that threshold with a valid proof: each ends in success,
InsufficientGas or a plain out-of-gas revert, never InvalidProof, and a failed transaction
changes no state.

Groth16 proofs are malleable: (-A, -B, C) and the re-randomisation (A/r, rB + rsδ, C + sA) of a
valid proof verify as well. Nothing here relies on proofs being unique: the registry's state
chain refuses a replayed batch however its proof is re-encoded, and attest never lowers a record.
Public inputs >= p are refused by the contracts (FieldOverflow), by the generated verifiers and by
prover/groth16.py.

Run with -s to see the thresholds.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.optimized_bn128.optimized_curve import add, curve_order, multiply, neg, normalize
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError
from zksolvency.prover import chain, groth16
from zksolvency.prover.commitments import solvency_public_count
from zksolvency.prover.deployment import account_margin_abi, registry_abi

from .conftest import (
    HIGH_HEADROOM,
    LOW_HEADROOM,
    N_ASSETS,
    P,
    Proof,
    ToyProofs,
    ToySetup,
    account,
    calldata,
    rpc,
    with_claim,
    with_proof,
)

OK, GUARD, OOG, INTRINSIC = "ok", "InsufficientGas", "OutOfGas", "IntrinsicGas"
KIND_BATCH, KIND_SOLVENCY = 0, 1
#: Gas limits tried one by one on each side of the guard's and of success's threshold.
WINDOW = 32
#: Step of the coarse sweep from below the guard to well past success.
COARSE_STEP = 4_999


# ---------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Call:
    """One valid proof-carrying call, ready to send, and a view of the state it may change."""

    contract: Any
    fn: str
    args: tuple[Any, ...]
    sender: str
    state: Callable[[], Any]

    def tx(self, gas: int) -> dict[str, Any]:
        return {
            "from": self.sender,
            "to": self.contract.address,
            "data": self.contract.encode_abi(self.fn, args=list(self.args)),
            "gas": gas,
        }


def outcome(w3: Web3, call: Call, gas: int) -> str:
    """How an eth_call of ``call`` with this gas limit ends: OK, the custom error's name, OOG
    (an empty revert or the node's out-of-gas error) or INTRINSIC (below the intrinsic gas)."""
    try:
        w3.eth.call(call.tx(gas))  # type: ignore[arg-type]
    except ContractLogicError as exc:
        name, _ = chain.decode_revert(call.contract.abi, chain._revert_data(exc))
        return OOG if name == "EmptyRevert" else name
    except Web3RPCError as exc:
        message = str(exc)
        if "intrinsic gas" in message:
            return INTRINSIC
        if "out of gas" in message.lower() or "OOG" in message or "OutOfGas" in message:
            return OOG
        raise
    return OK


def lowest(pred: Callable[[int], bool], lo: int, hi: int) -> int:
    """The least g in (lo, hi] with pred(g), given not pred(lo) and pred(hi) (monotone)."""
    assert not pred(lo) and pred(hi), (lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def registry_state(registry: Any, epoch: int) -> tuple[Any, ...]:
    f = registry.functions
    return (
        f.latestEpoch().call(),
        f.latestFinalizedEpoch().call(),
        f.openEpochId().call(),
        tuple(f.getEpoch(epoch).call()),
        tuple(f.getReserves(epoch).call()),
        tuple(f.getDeclaredReserves(epoch).call()),
        tuple(f.getPrices(epoch).call()),
        tuple(f.getCustody(epoch).call()),
    )


@pytest.fixture
def margin(w3: Web3, deployment: chain.Deployment) -> Any:
    return deployment.margin_contract(w3)


def _open(w3: Web3, registry: Any, proofs: ToyProofs, epoch: int = 1) -> None:
    e = proofs.main
    chain.transact(
        w3,
        w3.eth.accounts[0],
        registry,
        "openEpoch",
        (epoch, e.ctx, len(e.batches), e.bundle_hash),
        gas=300_000,
    )


def _submit(w3: Web3, registry: Any, args: tuple[Any, ...]) -> None:
    chain.transact(w3, w3.eth.accounts[0], registry, "submitBatch", args, gas=chain.BATCH_GAS)


def _publish(w3: Web3, registry: Any, proofs: ToyProofs, epoch: int = 1) -> None:
    proofs.main.publish(w3, registry, epoch)


def _ready(name: str, w3: Web3, registry: Any, margin: Any, proofs: ToyProofs) -> Call:
    """Bring the chain to where a valid ``name`` call can go through, and return that call."""
    e = proofs.main
    me = w3.eth.accounts[0]
    if name == "submitBatch":
        _open(w3, registry, proofs)
        return Call(registry, name, e.batch_args(0, 1), me, lambda: registry_state(registry, 1))
    if name == "finalize":
        _open(w3, registry, proofs)
        for i in range(len(e.batches)):
            _submit(w3, registry, e.batch_args(i, 1))
        return Call(registry, name, e.finalize_args(1), me, lambda: registry_state(registry, 1))
    _publish(w3, registry, proofs)
    args = proofs.margin_args("low", 1)
    id_commit = args[1]

    def state() -> tuple[Any, ...]:
        headroom = tuple(margin.functions.attestedHeadroom(1, id_commit).call())
        return (headroom, *registry_state(registry, 1))

    return Call(margin, name, args, account(w3, 3), state)


@pytest.fixture
def snapshot(w3: Web3) -> Iterator[Callable[[], Callable[[], None]]]:
    """snapshot() marks the chain; calling what it returns rolls back to the mark."""

    def take() -> Callable[[], None]:
        snap = rpc(w3, "evm_snapshot")

        def back() -> None:
            assert rpc(w3, "evm_revert", snap)

        return back

    yield take


def _send(w3: Web3, call: Call, gas: int) -> tuple[str, tuple[Any, ...]]:
    """Mine ``call`` with this gas limit through chain.transact (no preflight): ("ok", ()) or
    (how it failed, the error's arguments), as transact decodes it from a replay on the parent
    block. A failed transaction must leave no logs. Running out of gas, in the transaction or
    in its replay, must still come back as RegistryRevert, never as the node's bare error."""
    try:
        chain.transact(w3, call.sender, call.contract, call.fn, call.args, gas=gas, preflight=False)
    except chain.RegistryRevert as exc:
        assert exc.tx_hash is not None, "sent without preflight: the revert must be mined"
        receipt = w3.eth.get_transaction_receipt(exc.tx_hash)
        assert receipt["status"] == 0 and not receipt["logs"], "a reverted call left logs"
        if exc.error == "EmptyRevert":
            return OOG, ()
        if exc.error == "Reverted":
            (reason,) = exc.error_args
            assert "gas" in str(reason).lower() or "OOG" in str(reason), reason
            return OOG, ()
        return exc.error, exc.error_args
    return OK, ()


# ---------------------------------------------------------------------------------- gas sweeps


@pytest.mark.parametrize("fn", ["submitBatch", "finalize", "verifyMargin", "attest"])
def test_no_gas_limit_turns_a_valid_proof_into_a_verdict(
    w3: Web3,
    registry: Any,
    margin: Any,
    proofs: ToyProofs,
    snapshot: Callable[[], Callable[[], None]],
    fn: str,
) -> None:
    call = _ready(fn, w3, registry, margin, proofs)
    before = call.state()
    seen: dict[int, str] = {}

    def at(gas: int) -> str:
        if gas not in seen:
            seen[gas] = outcome(w3, call, gas)
        return seen[gas]

    ok_gas = lowest(lambda g: at(g) == OK, 60_000, 3_000_000)
    # Below the guard, a call runs out of gas in the work before it (finalize's claim and
    # price checks take more than the others'): find the guard by a coarse sweep first. From
    # low to high limits: intrinsic-gas errors, out of gas before the guard, InsufficientGas,
    # maybe out of gas after the verifier (its storage writes), success.
    for gas in range(25_000, ok_gas + 100_000, COARSE_STEP):
        at(gas)
    guarded = sorted(g for g, o in seen.items() if o == GUARD)
    assert guarded, f"{fn}: no gas limit reached the guard: {sorted(seen.items())}"
    reach_gas = lowest(lambda g: at(g) not in (OOG, INTRINSIC), 21_000, guarded[0])
    guard_gas = lowest(lambda g: at(g) != GUARD, guarded[0], ok_gas)
    # Every limit next to the three thresholds, and ~120 across the band between the guard and
    # success (where the verifier runs and what follows may run out of gas).
    lo, hi = min(guard_gas, ok_gas), max(guard_gas, ok_gas)
    band_step = max(1, (hi - lo) // 120)
    for gas in [
        *range(reach_gas - WINDOW, reach_gas + WINDOW + 1),
        *range(lo - WINDOW, lo + WINDOW + 1),
        *range(hi - WINDOW, hi + WINDOW + 1),
        *range(lo, hi, band_step),
    ]:
        at(gas)
    verdicts = {g: o for g, o in seen.items() if o not in (OK, GUARD, OOG, INTRINSIC)}
    assert not verdicts, f"{fn}: a valid proof was judged at gas limits {verdicts}"
    assert all(o == OK for g, o in seen.items() if g >= ok_gas), "success is not monotone in gas"
    assert all(o != OK for g, o in seen.items() if g < ok_gas)
    below = {o for g, o in seen.items() if g < guard_gas}
    assert below <= {GUARD, OOG, INTRINSIC} and GUARD in below
    assert {o for g, o in seen.items() if g < reach_gas} <= {OOG, INTRINSIC}
    assert {o for g, o in seen.items() if reach_gas <= g < guard_gas} == {GUARD}
    oog_band = sorted(g for g, o in seen.items() if o == OOG and g >= guard_gas)
    print(
        f"\n{fn}: guard reached from {reach_gas}, passes from {guard_gas}, success from {ok_gas} "
        f"({len(seen)} limits tried; out of gas after the guard at {len(oog_band)} of them"
        + (f", {oog_band[0]}..{oog_band[-1]})" if oog_band else ")")
    )
    assert call.state() == before  # eth_call only

    # The same on mined transactions: starved ones revert with nothing recorded.
    back = snapshot()
    for gas in (guard_gas - 1, ok_gas - 1):
        name, err_args = _send(w3, call, gas)
        assert name in (GUARD, OOG), (gas, name)
        if name == GUARD:
            needed, available = err_args[-2:]
            assert available < needed
            if call.contract is registry:
                kind = KIND_BATCH if fn == "submitBatch" else KIND_SOLVENCY
                assert err_args[0] == kind
        assert call.state() == before, f"{fn} with gas {gas} changed state"
    name, _ = _send(w3, call, ok_gas)
    assert name == OK
    if fn != "verifyMargin":
        assert call.state() != before
    back()

    # eth_estimateGas cannot settle below the verifier's needs, and its estimate is enough.
    fn_call = getattr(call.contract.functions, fn)(*call.args)
    estimate = int(fn_call.estimate_gas({"from": call.sender}))
    assert estimate >= ok_gas
    name, _ = _send(w3, call, estimate)
    assert name == OK
    print(f"{fn}: eth_estimateGas {estimate}")


@pytest.mark.parametrize("fn", ["submitBatch", "finalize", "verifyMargin", "attest"])
def test_estimate_gas_of_an_invalid_proof_finds_no_limit(
    w3: Web3, registry: Any, margin: Any, proofs: ToyProofs, fn: str
) -> None:
    """A tampered proof fails at every limit eth_estimateGas tries, so it yields no estimate, and
    mined at the valid proof's limit it reverts with InvalidProof."""
    call = _ready(fn, w3, registry, margin, proofs)
    if fn == "finalize":  # (epoch, (a, b, c), claim)
        a = call.args[1][0]
        bad_args = with_proof(call.args, a=[a[0], (a[1] + 1) % P])
    else:
        # Where the proof's A point sits: submitBatch (epoch, index, a, ...), verifyMargin /
        # attest (epoch, idCommit, headroom, a, ...).
        args = list(call.args)
        a_pos = 2 if fn == "submitBatch" else 3
        a = args[a_pos]
        args[a_pos] = [a[0], (a[1] + 1) % P]
        bad_args = tuple(args)
    bad = Call(call.contract, fn, bad_args, call.sender, call.state)
    before = call.state()
    with pytest.raises(ContractLogicError) as info:
        getattr(bad.contract.functions, fn)(*bad.args).estimate_gas({"from": bad.sender})
    name, _ = chain.decode_revert(bad.contract.abi, chain._revert_data(info.value))
    assert name == "InvalidProof"
    gas = {"submitBatch": chain.BATCH_GAS, "finalize": chain.finalize_gas_for(registry, 0)}.get(
        fn, chain.ATTEST_GAS
    )
    assert _send(w3, bad, gas)[0] == "InvalidProof"
    assert call.state() == before


def _intrinsic(data: bytes) -> int:
    return 21_000 + sum(16 if byte else 4 for byte in data)


#: The contracts' verifier budget (SolvencyRegistry VERIFY_GAS_BASE / VERIFY_GAS_PER_INPUT;
#: AccountMarginVerifier uses the same) and the most the guard's own call may cost on top of
#: what it checks: a cold account access (2,600) and the calldata copy.
GUARD_BASE, GUARD_PER_INPUT, CALL_OVERHEAD = 211_000, 7_150, 5_000


def test_verifier_gas_fits_the_guards(
    w3: Web3, proofs: ToyProofs, toy: ToySetup, deployment: chain.Deployment
) -> None:
    """What each generated verifier needs on entry to accept a valid proof, against the budget
    the guards reserve for it: the budget must cover the need with room for the call itself,
    and grow per public input at least as fast as the need does (so it holds for any nAssets).
    The stand-in verifiers of the forge tests (BookRegistryTest) need about this much."""
    cases = {
        "batch": (*proofs.main.batches[0], deployment.batch_verifier),
        "margin": (*proofs.margin["low"], deployment.margin_verifier),
        "solvency": (*proofs.main.solvency, deployment.solvency_verifier),
    }
    need: dict[int, int] = {}
    for name, (proof, public, address) in cases.items():
        assert address is not None
        k = len(public)
        verifier = _verifier(w3, address, k)
        a, b, c = calldata(proof)
        args = [a, b, c, [int(x) for x in public]]
        fn = verifier.functions.verifyProof(*args)
        data = bytes.fromhex(verifier.encode_abi("verifyProof", args=args)[2:])

        def accepts(gas: int, fn: Any = fn) -> bool:
            return bool(fn.call({"gas": gas}))

        need[k] = lowest(accepts, 100_000, 1_000_000) - _intrinsic(data)
        budget = GUARD_BASE + GUARD_PER_INPUT * k
        print(f"\n{name} verifier (K={k}): needs {need[k]} on entry, guard budget {budget}")
        assert need[k] + CALL_OVERHEAD < budget, name
    (k1, n1), *_, (k2, n2) = sorted(need.items())
    per_input = (n2 - n1) / (k2 - k1)
    print(f"per public input: {per_input:.0f} gas (budget {GUARD_PER_INPUT})")
    assert per_input < GUARD_PER_INPUT


# ---------------------------------------------------------------------------------- malleability

Point = tuple[Any, Any, Any]  # projective py_ecc point (G1 over FQ, G2 over FQ2)


def _g1(p: Sequence[Any]) -> Point:
    return (FQ(int(p[0])), FQ(int(p[1])), FQ(1))


def _g2(p: Sequence[Sequence[Any]]) -> Point:
    x, y = p[0], p[1]
    return (FQ2([int(x[0]), int(x[1])]), FQ2([int(y[0]), int(y[1])]), FQ2.one())


def _g1_json(pt: Point) -> list[str]:
    x, y = normalize(pt)
    return [str(int(x)), str(int(y)), "1"]


def _g2_json(pt: Point) -> list[list[str]]:
    x, y = normalize(pt)
    return [[str(int(c)) for c in x.coeffs], [str(int(c)) for c in y.coeffs], ["1", "0"]]


def negated(proof: Proof) -> Proof:
    """(-A, -B, C): e(-A, -B) = e(A, B), so it verifies wherever (A, B, C) does."""
    return {
        **proof,
        "pi_a": _g1_json(neg(_g1(proof["pi_a"]))),
        "pi_b": _g2_json(neg(_g2(proof["pi_b"]))),
    }


def rerandomised(proof: Proof, vkey: dict[str, Any]) -> Proof:
    """(A/r, rB + rs·δ, C + sA) for random r, s: a fresh-looking valid proof of the same
    statement that anyone can make from a proof and the verification key."""
    r = secrets.randbelow(curve_order - 1) + 1
    s = secrets.randbelow(curve_order - 1) + 1
    a, b, c = _g1(proof["pi_a"]), _g2(proof["pi_b"]), _g1(proof["pi_c"])
    delta = _g2(vkey["vk_delta_2"])
    return {
        **proof,
        "pi_a": _g1_json(multiply(a, pow(r, -1, curve_order))),
        "pi_b": _g2_json(add(multiply(b, r), multiply(delta, r * s % curve_order))),
        "pi_c": _g1_json(add(c, multiply(a, s))),
    }


def _verifier(w3: Web3, address: str, k: int) -> Any:
    g1 = {"type": "uint256[2]", "name": ""}
    abi = [
        {
            "type": "function",
            "name": "verifyProof",
            "stateMutability": "view",
            "inputs": [
                g1,
                {"type": "uint256[2][2]", "name": ""},
                g1,
                {"type": f"uint256[{k}]", "name": ""},
            ],
            "outputs": [{"type": "bool", "name": ""}],
        }
    ]
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)


def _on_chain(verifier: Any, proof: Proof, public: Sequence[int | str]) -> bool:
    a, b, c = calldata(proof)
    return bool(verifier.functions.verifyProof(a, b, c, [int(x) for x in public]).call())


def test_malleated_proofs_verify_but_cannot_replay(
    w3: Web3, registry: Any, proofs: ToyProofs, toy: ToySetup, deployment: chain.Deployment
) -> None:
    e = proofs.main
    vkey = toy.keys.batch.vkey
    vk = groth16.VerificationKey.from_snarkjs(vkey)
    verifier = _verifier(w3, deployment.batch_verifier, 3)
    proof, public = e.batches[0]
    forms = {"negated": negated(proof), "rerandomised": rerandomised(proof, vkey)}
    for name, p in forms.items():
        assert p != proof
        # Groth16 is malleable: the generated verifier and prover/groth16.py both accept these.
        assert _on_chain(verifier, p, public), name
        assert groth16.verify(vk, groth16.Proof.from_snarkjs(p), public), name
    # Negating only A (or only B) is not a malleation.
    half = {**proof, "pi_a": negated(proof)["pi_a"]}
    assert not _on_chain(verifier, half, public)

    _open(w3, registry, proofs)
    nxt = int(public[1])
    # Each form is a valid first batch, but only one first batch goes in.
    form = forms["rerandomised"]
    a, b, c = calldata(form)
    _submit(w3, registry, (1, 0, a, b, c, nxt))
    after_first = registry_state(registry, 1)
    for p in [proof, *forms.values()]:
        a, b, c = calldata(p)
        for index, error in ((0, "WrongBatchIndex"), (1, "InvalidProof"), (5, "TooManyBatches")):
            with pytest.raises(chain.RegistryRevert) as info:
                chain.transact(
                    w3,
                    w3.eth.accounts[0],
                    registry,
                    "submitBatch",
                    (1, index, a, b, c, nxt),
                    gas=chain.BATCH_GAS,
                    preflight=False,
                )
            assert info.value.error == error, (index, info.value)
    assert registry_state(registry, 1) == after_first

    # The rest of the epoch, then a malleated solvency proof: the epoch is closed.
    for i in range(1, len(e.batches)):
        _submit(w3, registry, e.batch_args(i, 1))
    finalize_gas = chain.finalize_gas_for(registry, 0)
    chain.transact(
        w3, w3.eth.accounts[0], registry, "finalize", e.finalize_args(1), gas=finalize_gas
    )
    final = registry_state(registry, 1)
    s_proof, s_public = e.solvency
    s_vkey = toy.keys.solvency.vkey
    s_verifier = _verifier(w3, deployment.solvency_verifier, solvency_public_count(N_ASSETS))
    for p in (negated(s_proof), rerandomised(s_proof, s_vkey)):
        assert _on_chain(s_verifier, p, s_public)
        a, b, c = calldata(p)
        args = with_proof(e.finalize_args(1), a=a, b=b, c=c)
        with pytest.raises(chain.RegistryRevert) as info:
            chain.transact(
                w3,
                w3.eth.accounts[0],
                registry,
                "finalize",
                args,
                gas=finalize_gas,
                preflight=False,
            )
        assert info.value.error == "NotOpen"
    assert registry_state(registry, 1) == final


def test_malleated_margin_proof_cannot_lower_a_record(
    w3: Web3, registry: Any, margin: Any, proofs: ToyProofs, toy: ToySetup
) -> None:
    vkey = toy.margin_keys.vkey
    low_proof, low_public = proofs.margin["low"]
    id_commit = int(low_public[2])
    # Not finalized yet: no form of the proof is accepted.
    _open(w3, registry, proofs)
    for p in (low_proof, rerandomised(low_proof, vkey)):
        with pytest.raises(chain.RegistryRevert) as info:
            chain.attest_margin(
                w3, account(w3, 2), margin, 1, (p, low_public), check=False, preflight=False
            )
        assert info.value.error == "EpochNotFinalized"
    chain.transact(w3, w3.eth.accounts[0], registry, "abandonEpoch", (1,), gas=100_000)
    _publish(w3, registry, proofs, 2)

    high = chain.attest_margin(w3, account(w3, 1), margin, 2, proofs.margin["high"])
    assert high.recorded_headroom == HIGH_HEADROOM
    for p in (negated(low_proof), rerandomised(low_proof, vkey), rerandomised(low_proof, vkey)):
        done = chain.attest_margin(w3, account(w3, 2), margin, 2, (p, low_public))
        assert (done.headroom, done.recorded_headroom) == (LOW_HEADROOM, HIGH_HEADROOM)
    assert chain.read_attested_headroom(margin, 2, id_commit) == HIGH_HEADROOM
    # The abandoned epoch 1 had the same context: still nothing recorded there.
    assert chain.read_attested_headroom(margin, 1, id_commit) is None


# ---------------------------------------------------------------------------------- field overflow


@pytest.mark.parametrize("circuit", ["batch", "solvency", "margin"])
def test_public_inputs_at_or_above_p_are_refused_everywhere(
    w3: Web3, proofs: ToyProofs, toy: ToySetup, deployment: chain.Deployment, circuit: str
) -> None:
    """x + p is congruent to x: a verifier reducing inputs would accept it. The generated
    verifier answers false and prover/groth16.py raises, for every public input."""
    proof, public, vkey, address = {
        "batch": (*proofs.main.batches[0], toy.keys.batch.vkey, deployment.batch_verifier),
        "solvency": (*proofs.main.solvency, toy.keys.solvency.vkey, deployment.solvency_verifier),
        "margin": (*proofs.margin["low"], toy.margin_keys.vkey, deployment.margin_verifier),
    }[circuit]
    assert address is not None
    verifier = _verifier(w3, address, len(public))
    vk = groth16.VerificationKey.from_snarkjs(vkey)
    parsed = groth16.Proof.from_snarkjs(proof)
    assert _on_chain(verifier, proof, public)
    assert groth16.verify(vk, parsed, public)
    for i in range(len(public)):
        for shift in (P, 2 * P):
            if int(public[i]) + shift >= 2**256:
                continue
            aliased = [int(x) for x in public]
            aliased[i] += shift
            assert not _on_chain(verifier, proof, aliased), (circuit, i)
            with pytest.raises(ValueError, match="canonical"):
                groth16.verify(vk, parsed, aliased)


def test_contracts_refuse_each_public_value_at_or_above_p(
    w3: Web3, registry: Any, margin: Any, proofs: ToyProofs
) -> None:
    """Every public value a caller supplies is checked before the verifier is called."""
    e = proofs.main
    me = w3.eth.accounts[0]

    def refused(contract: Any, fn: str, args: tuple[Any, ...], sender: str = me) -> None:
        call = Call(contract, fn, args, sender, lambda: None)
        assert outcome(w3, call, 2_000_000) == "FieldOverflow", (fn, args)

    refused(registry, "openEpoch", (1, e.ctx + P, 3, e.bundle_hash))
    _open(w3, registry, proofs)
    epoch, index, a, b, c, nxt = e.batch_args(0, 1)
    refused(registry, "submitBatch", (epoch, index, a, b, c, nxt + P))
    for i in range(len(e.batches)):
        _submit(w3, registry, e.batch_args(i, 1))
    args = e.finalize_args(1)
    root, totals, short, fund, *per_asset, _ = args[2]
    for name, value in (
        ("root", root),
        ("totalsCommit", totals),
        ("shortfall", short),
        ("insuranceFund", fund),
    ):
        refused(registry, "finalize", with_claim(args, **{name: value + P}))
    for name, values in zip(("weights", "verified", "declared"), per_asset, strict=True):
        for j in range(N_ASSETS):
            bumped = [v + P if i == j else v for i, v in enumerate(values)]
            refused(registry, "finalize", with_claim(args, **{name: bumped}))
    chain.transact(w3, me, registry, "finalize", args, gas=chain.finalize_gas_for(registry, 0))
    m_epoch, id_commit, headroom, a, b, c = proofs.margin_args("low", 1)
    for fn in ("verifyMargin", "attest"):
        refused(margin, fn, (m_epoch, id_commit + P, headroom, a, b, c), account(w3, 1))
        refused(margin, fn, (m_epoch, id_commit, headroom + P, a, b, c), account(w3, 1))


# ---------------------------------------------------------------------------------- immutability

_NO_SETTERS = {
    "SolvencyRegistry": {"openEpoch", "submitBatch", "addCustody", "finalize", "abandonEpoch"},
    "AccountMarginVerifier": {"attest"},
}
#: Writers that take addresses, and which: addCustody's custody addresses are data of the open
#: epoch (each signs for it), not contracts the registry will ever run or delegate to.
_ADDRESS_INPUTS = {"addCustody": {"holders"}}
#: Opcodes that could change code or move control to other code: SELFDESTRUCT, DELEGATECALL,
#: CALLCODE, CALL, CREATE, CREATE2. The contracts only ever STATICCALL.
_FORBIDDEN_OPS = {0xFF: "SELFDESTRUCT", 0xF4: "DELEGATECALL", 0xF2: "CALLCODE", 0xF1: "CALL"}
_FORBIDDEN_OPS |= {0xF0: "CREATE", 0xF5: "CREATE2"}


def opcodes(code: bytes) -> list[int]:
    """The opcodes of solc runtime code, push data skipped, CBOR metadata trailer removed."""
    meta = int.from_bytes(code[-2:], "big") + 2
    assert meta < len(code), "no metadata trailer"
    body = code[:-meta]
    ops, i = [], 0
    while i < len(body):
        op = body[i]
        ops.append(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return ops


@pytest.mark.parametrize("name", sorted(_NO_SETTERS))
def test_no_function_can_change_the_verifiers(
    w3: Web3, toy: ToySetup, deployment: chain.Deployment, name: str
) -> None:
    """The only state-changing functions are the intended writers (none takes an address but
    addCustody, whose custody addresses are only ever read), no function is payable, there is
    no fallback, and the runtime code can neither self-destruct nor run other code in its own
    context; the verifier addresses are immutables in the code."""
    compiled = toy.artifacts[name].abi
    shipped = registry_abi() if name == "SolvencyRegistry" else account_margin_abi()
    for abi in (compiled, shipped):
        assert not [x for x in abi if x["type"] in ("fallback", "receive")]
        functions = [x for x in abi if x["type"] == "function"]
        writers = {x["name"] for x in functions if x["stateMutability"] not in ("view", "pure")}
        assert writers == _NO_SETTERS[name]
        assert not [x for x in functions if x["stateMutability"] == "payable"]
        for fn in functions:
            if fn["name"] in writers:
                takes = {i["name"] for i in fn["inputs"] if i["type"].startswith("address")}
                takes |= {i["name"] for i in fn["inputs"] if "address" in str(i.get("components"))}
                assert takes == _ADDRESS_INPUTS.get(fn["name"], set()), fn["name"]

    address = (
        deployment.registry if name == "SolvencyRegistry" else deployment.account_margin_verifier
    )
    assert address is not None
    code = bytes(w3.eth.get_code(address))
    found = {_FORBIDDEN_OPS[op] for op in opcodes(code) if op in _FORBIDDEN_OPS}
    assert not found, f"{name} runtime code has {found}"
    assert 0xFA in opcodes(code)  # STATICCALL: how it reaches its verifiers
    held = (
        [deployment.batch_verifier, deployment.solvency_verifier, deployment.publisher]
        if name == "SolvencyRegistry"
        else [deployment.margin_verifier, deployment.registry]
    )
    for addr in held:
        assert addr is not None
        word = bytes.fromhex(addr[2:].lower())
        assert word in code, f"{addr} is not an immutable of {name}"
        for slot in range(8):
            stored = bytes(w3.eth.get_storage_at(address, slot))
            assert word not in stored, f"{addr} found in storage slot {slot}"

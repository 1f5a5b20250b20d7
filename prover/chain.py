"""On-chain side of zksolvency: compile, run a local anvil, deploy, publish an epoch, read it back,
and check single-account margin proofs against a published epoch.

The registry (verifier_contract/src/SolvencyRegistry.sol) accepts an epoch in three steps:
``openEpoch`` → ``submitBatch`` for every batch proof, strictly in index order → ``finalize`` with
the solvency proof. :func:`publish_epoch` drives those steps idempotently: it checks every public
signal against the registry's stored state before sending anything, resumes a half-published
epoch, and turns a revert into :class:`RegistryRevert` carrying the decoded custom error.

The optional AccountMarginVerifier (verifier_contract/src/AccountMarginVerifier.sol) checks a
single-account margin proof against a finalized epoch of the registry:
:func:`verify_margin_on_chain` asks it (a call, no transaction), :func:`attest_margin` records
the proven headroom on chain.

snarkjs verifiers return ``false`` instead of reverting, also when starved of gas, which makes
``eth_estimateGas`` under-estimate proof-carrying calls. The registry turns ``false`` into a
revert and refuses to call a verifier with too little gas left, and on top of that every
proof-carrying transaction sent from here carries an explicit gas limit.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD
from web3.providers.rpc import HTTPProvider
from web3.types import TxParams, TxReceipt

from .atomic import write_text
from .commitments import SOLVENCY_FIXED_INPUTS as COMMITTED_FIXED_INPUTS
from .commitments import describe_domain, solvency_public_count
from .groth16 import proof_calldata
from .paths import node_bin, repo_root

log = logging.getLogger(__name__)

SNARK_SCALAR_FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
#: Public signals of the batch circuit: [prevState, nextState, ctxHash].
BATCH_PUBLIC_INPUTS = 3
#: Solvency signals before the per-asset ones: [finalState, ctxHash, root, totalsCommit,
#: batchCount, shortfall, insuranceFund, epoch, domain] (commitments.SOLVENCY_FIXED_INPUTS);
#: then weights[N], verified[N], declared[N] and verifiedOnly.
SOLVENCY_FIXED_INPUTS = COMMITTED_FIXED_INPUTS
#: Public signals of the single-account margin circuit: [ctxHash, root, idCommit, headroom].
MARGIN_PUBLIC_INPUTS = 4
#: Paris bytecode (no PUSH0) runs on every EVM chain and on anvil's default (latest) hardfork.
DEFAULT_EVM_VERSION = "paris"
#: A batch submit uses ~252k, and the registry refuses to call the verifier with less than
#: ~236k left (a starved snarkjs verifier answers "false"), so limits need headroom.
BATCH_GAS = 600_000
#: Finalize's floor. Its limit is computed per registry (finalize_gas_for): the verifier, each
#: asset's storage and log words, and the worst case of every foreign read the registry makes
#: (each feed and token call is capped, and each is refused unless its cap is left).
FINALIZE_GAS = 1_000_000
#: Custody addresses sent per addCustody transaction, and the gas each one may need (an
#: ecrecover or a capped ERC-1271 call, a storage word, a log).
CUSTODY_CHUNK = 50
CUSTODY_GAS_PER_HOLDER = 140_000
#: verifyMargin uses ~265k (the registry read, a 4-input verifier; eth_estimateGas says ~293k)
#: and refuses to call the verifier with less than ~244k left.
MARGIN_VERIFY_GAS = 400_000
#: attest adds a storage word and a log to verifyMargin's work: ~288k for a first record.
ATTEST_GAS = 450_000
#: Contract names the registry deployment expects among the compiled artefacts.
REGISTRY_NAME = "SolvencyRegistry"
BATCH_VERIFIER_NAME = "BatchVerifier"
SOLVENCY_VERIFIER_NAME = "SolvencyVerifier"
#: Optional single-account margin contracts: the margin circuit's generated verifier and the
#: hand-written contract that checks its proofs against the registry's finalized epochs.
MARGIN_VERIFIER_NAME = "MarginVerifier"
ACCOUNT_MARGIN_NAME = "AccountMarginVerifier"

#: ReserveBalances.NATIVE: the token address standing for the chain's own currency.
NATIVE_TOKEN = "0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE"

_ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
_PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


class ChainError(RuntimeError):
    """Base class of this module's errors."""


class CompileError(ChainError):
    """solc reported errors; the message holds solc's own formatted messages."""


class AnvilError(ChainError):
    """anvil failed to start or answer."""


class PublishError(ChainError):
    """Inputs disagree with each other or with the registry; nothing was sent for the step."""


class AttestationRefused(ChainError):
    """The registry's circuit breaker refused the epoch's prices: finalize emitted why (one
    reading per failing asset, onchain.PriceReading) and left the epoch open."""

    def __init__(self, epoch: int, readings: Sequence[Any], tx_hash: str) -> None:
        self.epoch, self.readings, self.tx_hash = epoch, list(readings), tx_hash
        super().__init__(
            f"the registry refused to attest epoch {epoch} (transaction {tx_hash}): "
            + "; ".join(r.describe("") for r in readings)
        )


class MarginError(PublishError):
    """A margin proof does not fit the epoch it names (checked locally); nothing was sent."""


class RegistryRevert(ChainError):
    """A call to the registry or the margin verifier reverted (in preflight or an eth_call, or
    mined with status 0 if ``tx_hash`` is set)."""

    def __init__(
        self, function: str, error: str, args: tuple[Any, ...], tx_hash: str | None = None
    ) -> None:
        where = f"mined in {tx_hash}" if tx_hash else "in preflight eth_call, not sent"
        rendered = ", ".join(str(a) for a in args)
        super().__init__(f"{function} reverted with {error}({rendered}) [{where}]")
        self.function = function
        self.error = error
        self.error_args = args
        self.tx_hash = tx_hash


# --------------------------------------------------------------------------------------------
# Tools


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise ChainError("`node` is not on PATH; the Solidity and snarkjs tooling needs Node.js")
    return node


# --------------------------------------------------------------------------------------------
# Compilation


@dataclass(frozen=True)
class ContractArtifact:
    """ABI and creation bytecode of one compiled contract (bytecode is 0x-prefixed hex)."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str = ""

    @classmethod
    def load(cls, path: Path) -> ContractArtifact:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            name=data.get("contractName", path.stem),
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data.get("deployedBytecode", ""),
        )


def compile_contracts(
    sources: Mapping[str, Path] | Sequence[Path],
    out_dir: Path,
    *,
    evm_version: str = DEFAULT_EVM_VERSION,
    optimizer_runs: int = 200,
) -> dict[str, ContractArtifact]:
    """Compile Solidity sources with the pinned solc-js and write ``<out_dir>/<Contract>.json``.

    ``sources`` maps source unit names to files, or is a list of files named by their base
    name. Imports not listed are resolved by solc.mjs relative to the first file's directory.
    Returns the artefacts by contract name (names must be unique across the sources).
    """
    units: dict[str, Path] = {}
    if isinstance(sources, Mapping):
        units = {str(k): Path(v) for k, v in sources.items()}
    else:
        for p in sources:
            path = Path(p)
            if path.name in units:
                raise CompileError(f"two sources are named {path.name}; pass a dict of unit names")
            units[path.name] = path
    if not units:
        raise CompileError("no sources to compile")

    standard_input = {
        "language": "Solidity",
        "sources": {
            name: {"content": path.read_text(encoding="utf-8")} for name, path in units.items()
        },
        "settings": {
            "optimizer": {"enabled": True, "runs": optimizer_runs},
            "evmVersion": evm_version,
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }
    script = repo_root() / "verifier_contract" / "scripts" / "solc.mjs"
    base = next(iter(units.values())).resolve().parent
    proc = subprocess.run(
        [_node(), str(script), "--standard-json", "--base-path", str(base)],
        input=json.dumps(standard_input),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise CompileError(f"solc.mjs exited with {proc.returncode}:\n{proc.stderr.strip()}")
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise CompileError(f"solc.mjs printed no JSON: {proc.stdout[:500]!r}") from exc

    problems = output.get("errors", [])
    errors = [e for e in problems if e.get("severity") == "error"]
    if errors:
        raise CompileError(
            "solc failed:\n" + "\n".join(e.get("formattedMessage", str(e)) for e in errors)
        )
    for warning in problems:
        log.warning("solc: %s", warning.get("formattedMessage", warning).strip())

    artifacts: dict[str, ContractArtifact] = {}
    for unit, contracts in output.get("contracts", {}).items():
        for name, data in contracts.items():
            if name in artifacts:
                raise CompileError(f"contract {name} is defined twice (second time in {unit})")
            artifact = ContractArtifact(
                name=name,
                abi=data["abi"],
                bytecode="0x" + data["evm"]["bytecode"]["object"],
                deployed_bytecode="0x" + data["evm"]["deployedBytecode"]["object"],
            )
            artifacts[name] = artifact
            doc = {
                "contractName": name,
                "sourceName": unit,
                "abi": artifact.abi,
                "bytecode": artifact.bytecode,
                "deployedBytecode": artifact.deployed_bytecode,
            }
            write_text(out_dir / f"{name}.json", json.dumps(doc, indent=1) + "\n")
    return artifacts


def render_verifier(
    snarkjs_sol_text: str,
    contract_name: str,
    zkey_hash: str = "an unrecorded zkey",
    circuit_sha256: str | None = None,
) -> str:
    """Rename snarkjs' ``contract Groth16Verifier`` and mark the file as generated.

    Both circuits' verifiers share snarkjs' contract name, so each needs its own before they
    can be compiled together. ``circuit_sha256`` (of the circuit's .r1cs) becomes the public
    constant ``CIRCUIT_R1CS_SHA256``: the registry's immutable verifiers thereby pin the
    circuits on-chain next to their keys, for auditors and ``verify --rpc`` to compare.
    """
    if not _IDENTIFIER.match(contract_name):
        raise ValueError(f"{contract_name!r} is not a Solidity identifier")
    pattern = re.compile(r"\bcontract\s+Groth16Verifier\s*\{")
    if len(pattern.findall(snarkjs_sol_text)) != 1:
        raise ValueError("expected exactly one `contract Groth16Verifier` in the snarkjs output")
    opening = f"contract {contract_name} {{"
    if circuit_sha256 is not None:
        if not re.fullmatch(r"[0-9a-f]{64}", circuit_sha256):
            raise ValueError(f"{circuit_sha256!r} is not a sha256 hex digest")
        opening += (
            "\n    /// @notice sha256 of the circuit's .r1cs file this verifier's key was made for."
            f"\n    bytes32 public constant CIRCUIT_R1CS_SHA256 = 0x{circuit_sha256};\n"
        )
    body = pattern.sub(lambda _: opening, snarkjs_sol_text)
    header = (
        f"// GENERATED by zksolvency from {zkey_hash} — do not edit.\n"
        "// Exported by `snarkjs zkey export solidityverifier` at `zksolvency setup`, "
        "renamed for `zksolvency deploy`.\n"
    )
    return header + body


def read_circuit_hash(w3: Web3, verifier: str) -> str | None:
    """The ``CIRCUIT_R1CS_SHA256`` a generated verifier pins (hex), or None if it has none."""
    abi = [
        {
            "type": "function",
            "name": "CIRCUIT_R1CS_SHA256",
            "stateMutability": "view",
            "inputs": [],
            "outputs": [{"type": "bytes32", "name": ""}],
        }
    ]
    contract = w3.eth.contract(address=Web3.to_checksum_address(verifier), abi=abi)
    try:
        value: bytes = contract.functions.CIRCUIT_R1CS_SHA256().call()
    except (ContractLogicError, Web3RPCError, DecodingError, ValueError):
        return None
    return value.hex()


def verify_selector(n_public: int) -> bytes:
    """Selector of snarkjs' ``verifyProof`` for a circuit with ``n_public`` public signals."""
    sig = f"verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[{n_public}])"
    return keccak(text=sig)[:4]


# --------------------------------------------------------------------------------------------
# anvil


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _local_w3(url: str, timeout: float = 30.0) -> Web3:
    # trust_env=False: a proxy configured in the environment must not capture 127.0.0.1 traffic.
    session = requests.Session()
    session.trust_env = False
    provider = HTTPProvider(
        url,
        request_kwargs={"timeout": timeout},
        session=session,
        exception_retry_configuration=None,
    )
    return Web3(provider)


class Anvil:
    """A throwaway local anvil node, listening on 127.0.0.1 only.

    >>> with Anvil() as node:
    ...     node.w3.eth.chain_id
    """

    def __init__(
        self,
        *,
        chain_id: int | None = None,
        startup_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        if any(a in ("--host", "-p", "--port") for a in extra_args):
            raise ValueError("Anvil chooses the host and port itself")
        self._chain_id = chain_id
        self._timeout = startup_timeout
        self._extra = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self.url = ""
        self._w3: Web3 | None = None

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            raise AnvilError("anvil is not running")
        return self._w3

    @property
    def accounts(self) -> list[ChecksumAddress]:
        """anvil's funded dev accounts; the node signs for them (eth_sendTransaction)."""
        return list(self.w3.eth.accounts)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._proc is not None:
            raise AnvilError("anvil is already running")
        anvil = node_bin("anvil")
        # The port is freed before anvil binds it, so another process may grab it in between:
        # retry on a fresh port a couple of times.
        last = ""
        for _ in range(3):
            port = _free_port()
            cmd = [str(anvil), "--host", "127.0.0.1", "--port", str(port), "--silent"]
            if self._chain_id is not None:
                cmd += ["--chain-id", str(self._chain_id)]
            # Kept open for the node's lifetime so startup failures can quote it.
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
            # A session of its own: bin/anvil is a node wrapper around the real binary, and
            # signalling the whole group on stop reaches both.
            self._proc = subprocess.Popen(
                [*cmd, *self._extra],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                start_new_session=True,
            )
            self.url = f"http://127.0.0.1:{port}"
            try:
                self._w3 = self._wait_ready()
                return
            except AnvilError as exc:
                last = str(exc)
                self.stop()
                if "in use" not in last:
                    break
        raise AnvilError(last)

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text: bytes = self._stderr.read()
        return text.decode(errors="replace").strip()

    def _wait_ready(self) -> Web3:
        assert self._proc is not None
        w3 = _local_w3(self.url)
        probe = _local_w3(self.url, timeout=1.0)
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AnvilError(
                    f"anvil exited with {self._proc.returncode} before answering:\n"
                    f"{self._stderr_text()}"
                )
            try:
                if probe.eth.chain_id:
                    return w3
            except (OSError, requests.RequestException):
                time.sleep(0.05)
        raise AnvilError(
            f"anvil did not answer eth_chainId on {self.url} within {self._timeout:.0f}s:\n"
            f"{self._stderr_text()}"
        )

    def stop(self) -> None:
        proc, self._proc, self._w3 = self._proc, None, None
        if proc is not None:
            # Signal the group even if the wrapper has exited: the binary may outlive it.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)  # the group we created for this anvil only
                try:
                    proc.wait(timeout=5.0)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


# --------------------------------------------------------------------------------------------
# Transactions and reverts


def _canonical_type(param: Mapping[str, Any]) -> str:
    typ = str(param["type"])
    if typ.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){typ[len('tuple') :]}"
    return typ


def decode_revert(
    abi: Sequence[Mapping[str, Any]], data: bytes | str | None
) -> tuple[str, tuple[Any, ...]]:
    """Name and arguments of a revert payload: a custom error of ``abi``, Error or Panic."""
    raw = HexBytes(data or b"")
    if len(raw) < 4:
        return ("EmptyRevert", ())
    selector, payload = bytes(raw[:4]), bytes(raw[4:])
    if selector == _ERROR_STRING_SELECTOR:
        return ("Error", tuple(abi_decode(["string"], payload)))
    if selector == _PANIC_SELECTOR:
        return ("Panic", tuple(abi_decode(["uint256"], payload)))
    for item in abi:
        if item.get("type") != "error":
            continue
        types = [_canonical_type(p) for p in item.get("inputs", [])]
        if keccak(text=f"{item['name']}({','.join(types)})")[:4] == selector:
            try:
                values = abi_decode(types, payload)
            except DecodingError:  # malformed payload: report it raw below
                break
            return (
                str(item["name"]),
                tuple(
                    Web3.to_checksum_address(v) if t == "address" else v
                    for t, v in zip(types, values, strict=True)
                ),
            )
    return ("UnknownError", (raw.to_0x_hex(),))


def _revert_data(exc: ContractLogicError) -> str | None:
    data = exc.data
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
        inner = data.get("data")
        return inner if isinstance(inner, str) else None
    return data


def transact(
    w3: Web3,
    sender: str,
    contract: Contract,
    fn_name: str,
    args: Sequence[Any],
    *,
    gas: int,
    signer: LocalAccount | None = None,
    preflight: bool = True,
    receipt_timeout: float = 120.0,
) -> TxReceipt:
    """Send ``contract.fn_name(*args)`` with an explicit gas limit; return the successful receipt.

    ``preflight`` first replays the call with eth_call so a revert costs no gas. A mined
    revert is replayed on the parent block to recover the custom error. Either way it raises
    :class:`RegistryRevert`. With ``signer`` the transaction is signed locally and sent raw;
    otherwise the node signs for ``sender`` (an unlocked account).
    """
    frm = Web3.to_checksum_address(signer.address if signer is not None else sender)
    if signer is not None and Web3.to_checksum_address(sender) != frm:
        raise ValueError(f"sender {sender} is not the signer's address {frm}")
    abi = contract.abi
    call_tx: TxParams = {
        "from": frm,
        "to": contract.address,
        "data": contract.encode_abi(fn_name, args=list(args)),
        "gas": gas,
    }
    if preflight:
        try:
            w3.eth.call(call_tx, "pending")
        except ContractLogicError as exc:
            name, detail = decode_revert(abi, _revert_data(exc))
            raise RegistryRevert(fn_name, name, detail) from exc
        except Web3RPCError as exc:
            # A call that runs out of gas has no revert data: nodes answer with a bare RPC
            # error. It is still this call's failure, not the node's.
            raise RegistryRevert(fn_name, "Reverted", (_rpc_reason(exc),)) from exc

    if signer is None:
        tx_hash = w3.eth.send_transaction(call_tx)
    else:
        tx = contract.functions[fn_name](*args).build_transaction(
            {"from": frm, "gas": gas, "nonce": w3.eth.get_transaction_count(frm, "pending")}
        )
        tx_hash = _send_signed(w3, signer, tx)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=receipt_timeout)
    if receipt["status"] == 1:
        return receipt

    # The parent block is the state the transaction ran on (we send one at a time, so our
    # previous transaction is already in it).
    replay_block = max(int(receipt["blockNumber"]) - 1, 0)
    try:
        w3.eth.call(call_tx, replay_block)
    except ContractLogicError as exc:
        name, detail = decode_revert(abi, _revert_data(exc))
        raise RegistryRevert(fn_name, name, detail, tx_hash.to_0x_hex()) from exc
    except Web3RPCError as exc:
        raise RegistryRevert(fn_name, "Reverted", (_rpc_reason(exc),), tx_hash.to_0x_hex()) from exc
    why = "out of gas" if int(receipt["gasUsed"]) >= gas else "replay did not reproduce it"
    raise RegistryRevert(fn_name, "Reverted", (why,), tx_hash.to_0x_hex())


def _rpc_reason(exc: Web3RPCError) -> str:
    """The node's message for a failed call (e.g. "out of gas"), without web3's wrapping."""
    rpc = exc.rpc_response or {}
    err = rpc.get("error") if isinstance(rpc, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    return str(message or exc.user_message or exc)


def _send_signed(w3: Web3, signer: LocalAccount, tx: TxParams) -> HexBytes:
    # eth_account types its input as a plain dict; web3 builds a TxParams TypedDict.
    signed = signer.sign_transaction(cast("dict[str, Any]", tx))
    return w3.eth.send_raw_transaction(signed.raw_transaction)


# --------------------------------------------------------------------------------------------
# Deployment


@dataclass(frozen=True)
class Deployment:
    """Where the registry and its verifiers live, and what deploying them cost.

    ``margin_verifier`` and ``account_margin_verifier`` are set when the single-account margin
    contracts were deployed too.
    """

    registry: ChecksumAddress
    batch_verifier: ChecksumAddress
    solvency_verifier: ChecksumAddress
    gas_used: dict[str, int]
    chain_id: int
    n_assets: int
    publisher: ChecksumAddress
    registry_abi: list[dict[str, Any]] = field(repr=False)
    margin_verifier: ChecksumAddress | None = None
    account_margin_verifier: ChecksumAddress | None = None
    account_margin_abi: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def registry_contract(self, w3: Web3) -> Contract:
        return registry_at(w3, self.registry, self.registry_abi)

    def margin_contract(self, w3: Web3) -> Contract:
        """The AccountMarginVerifier; :class:`ChainError` if it was not deployed."""
        if self.account_margin_verifier is None:
            raise ChainError("this deployment has no AccountMarginVerifier")
        return registry_at(w3, self.account_margin_verifier, self.account_margin_abi)


def connect(rpc: str, timeout: float = 30) -> Web3:
    """A Web3 on the node at `rpc`; ConnectionError, naming it, if it does not answer."""
    w3 = Web3(HTTPProvider(rpc, request_kwargs={"timeout": timeout}))
    if not w3.is_connected():
        raise ConnectionError(f"cannot reach an Ethereum node at {rpc}")
    return w3


def registry_at(w3: Web3, address: str, abi: Sequence[Mapping[str, Any]]) -> Contract:
    """A web3 handle on a deployed contract (the registry or the margin verifier)."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=list(abi))


def _deploy_one(
    w3: Web3,
    frm: ChecksumAddress,
    artifact: ContractArtifact,
    args: Sequence[Any],
    signer: LocalAccount | None,
    receipt_timeout: float,
) -> tuple[ChecksumAddress, int]:
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    ctor = factory.constructor(*args)
    # Creation gas is estimated: constructors here call no verifier, so estimates are exact.
    if signer is None:
        tx_hash = ctor.transact({"from": frm})
    else:
        tx = ctor.build_transaction(
            {"from": frm, "nonce": w3.eth.get_transaction_count(frm, "pending")}
        )
        tx_hash = _send_signed(w3, signer, tx)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=receipt_timeout)
    address = receipt.get("contractAddress")
    if receipt["status"] != 1 or address is None:
        raise ChainError(f"deploying {artifact.name} failed in {tx_hash.to_0x_hex()}")
    return Web3.to_checksum_address(address), int(receipt["gasUsed"])


def deploy(
    w3: Web3,
    sender: str,
    artifacts: Mapping[str, ContractArtifact],
    n_assets: int,
    publisher: str | None = None,
    *,
    margin: bool | None = None,
    assets: Sequence[Any] | None = None,
    signer: LocalAccount | None = None,
    receipt_timeout: float = 120.0,
) -> Deployment:
    """Deploy BatchVerifier, SolvencyVerifier and SolvencyRegistry(publisher, ..., n_assets,
    assets), then, with ``margin``, MarginVerifier and AccountMarginVerifier(registry,
    MarginVerifier).

    ``assets`` (onchain.AssetOnchain, one per slot) says where each asset is held on this chain
    and which feeds price it; by default no slot is checked on-chain. ``publisher`` defaults to
    the deployer. ``margin`` defaults to whether ``artifacts`` hold a MarginVerifier. The
    verifiers are checked to expect 3, 10 + 3 * ``n_assets`` and 4 public signals before
    anything is sent: a mismatch would make every call fail for good, since neither contract
    can swap verifiers.
    """
    from .onchain import unchecked_slot

    if margin is None:
        margin = MARGIN_VERIFIER_NAME in artifacts
    names = [BATCH_VERIFIER_NAME, SOLVENCY_VERIFIER_NAME, REGISTRY_NAME]
    if margin:
        names += [MARGIN_VERIFIER_NAME, ACCOUNT_MARGIN_NAME]
    for name in names:
        if name not in artifacts:
            raise ChainError(f"no compiled {name} among {sorted(artifacts)}")
    if n_assets < 1:
        raise ValueError("n_assets must be at least 1")
    slots = list(assets) if assets is not None else [unchecked_slot() for _ in range(n_assets)]
    if len(slots) != n_assets:
        raise ValueError(f"{len(slots)} asset configurations for {n_assets} slots")
    _require_verifier_arity(artifacts[BATCH_VERIFIER_NAME], BATCH_PUBLIC_INPUTS)
    _require_verifier_arity(artifacts[SOLVENCY_VERIFIER_NAME], solvency_public_count(n_assets))
    if margin:
        _require_verifier_arity(artifacts[MARGIN_VERIFIER_NAME], MARGIN_PUBLIC_INPUTS)

    frm = Web3.to_checksum_address(signer.address if signer is not None else sender)
    pub = Web3.to_checksum_address(publisher) if publisher is not None else frm
    gas: dict[str, int] = {}
    batch_addr, gas[BATCH_VERIFIER_NAME] = _deploy_one(
        w3, frm, artifacts[BATCH_VERIFIER_NAME], (), signer, receipt_timeout
    )
    solv_addr, gas[SOLVENCY_VERIFIER_NAME] = _deploy_one(
        w3, frm, artifacts[SOLVENCY_VERIFIER_NAME], (), signer, receipt_timeout
    )
    registry_artifact = artifacts[REGISTRY_NAME]
    reg_addr, gas[REGISTRY_NAME] = _deploy_one(
        w3,
        frm,
        registry_artifact,
        (pub, batch_addr, solv_addr, n_assets, [a.constructor_arg() for a in slots]),
        signer,
        receipt_timeout,
    )
    margin_addr: ChecksumAddress | None = None
    account_margin_addr: ChecksumAddress | None = None
    account_margin_abi: list[dict[str, Any]] = []
    if margin:
        margin_addr, gas[MARGIN_VERIFIER_NAME] = _deploy_one(
            w3, frm, artifacts[MARGIN_VERIFIER_NAME], (), signer, receipt_timeout
        )
        account_margin = artifacts[ACCOUNT_MARGIN_NAME]
        account_margin_addr, gas[ACCOUNT_MARGIN_NAME] = _deploy_one(
            w3, frm, account_margin, (reg_addr, margin_addr), signer, receipt_timeout
        )
        account_margin_abi = account_margin.abi
    return Deployment(
        registry=reg_addr,
        batch_verifier=batch_addr,
        solvency_verifier=solv_addr,
        gas_used=gas,
        chain_id=int(w3.eth.chain_id),
        n_assets=n_assets,
        publisher=pub,
        registry_abi=registry_artifact.abi,
        margin_verifier=margin_addr,
        account_margin_verifier=account_margin_addr,
        account_margin_abi=account_margin_abi,
    )


def _require_verifier_arity(artifact: ContractArtifact, n_public: int) -> None:
    for item in artifact.abi:
        if item.get("type") == "function" and item.get("name") == "verifyProof":
            found = item["inputs"][-1]["type"]
            if found != f"uint256[{n_public}]":
                raise ChainError(
                    f"{artifact.name} takes {found} public signals, the contract calling it "
                    f"needs uint256[{n_public}] (wrong circuit or n_assets?)"
                )
            return
    raise ChainError(f"{artifact.name} has no verifyProof function")


# --------------------------------------------------------------------------------------------
# Reading


class EpochStatus(IntEnum):
    NONE = 0
    OPEN = 1
    FINALIZED = 2
    ABANDONED = 3


@dataclass(frozen=True)
class EpochRecord:
    """One epoch as stored by the registry (state is the final state once finalized)."""

    epoch: int
    ctx_hash: int
    bundle_hash: bytes
    state: int
    root: int
    totals_commit: int
    shortfall: int
    insurance_fund: int
    n_batches: int
    batches_submitted: int
    opened_at: int
    finalized_at: int
    status: EpochStatus
    reserves: tuple[int, ...]  # verified: read on-chain by the registry at finalize
    declared: tuple[int, ...] = ()  # declared by the exchange, not verifiable on this chain
    verified_only: bool = False  # solvent on the verified reserves alone (proven)
    prices_e8: tuple[int, ...] = ()  # the epoch's USD prices the breaker accepted


def read_epoch(w3: Web3, registry: Contract, epoch: int) -> EpochRecord:
    """Read ``epoch`` from the registry (status NONE if it was never opened)."""
    del w3  # the contract handle carries its own connection; kept for a uniform signature
    raw = registry.functions.getEpoch(epoch).call()
    reserves = registry.functions.getReserves(epoch).call()
    declared = registry.functions.getDeclaredReserves(epoch).call()
    prices = registry.functions.getPrices(epoch).call()
    return EpochRecord(
        epoch=epoch,
        ctx_hash=int(raw[0]),
        bundle_hash=bytes(raw[1]),
        state=int(raw[2]),
        root=int(raw[3]),
        totals_commit=int(raw[4]),
        shortfall=int(raw[5]),
        insurance_fund=int(raw[6]),
        n_batches=int(raw[7]),
        batches_submitted=int(raw[8]),
        opened_at=int(raw[9]),
        finalized_at=int(raw[10]),
        status=EpochStatus(int(raw[11])),
        reserves=tuple(int(r) for r in reserves),
        declared=tuple(int(r) for r in declared),
        verified_only=bool(raw[12]),
        prices_e8=tuple(int(p) for p in prices),
    )


# --------------------------------------------------------------------------------------------
# Publishing

#: (snarkjs proof.json as a dict, snarkjs public.json as a list)
ProofWithSignals = tuple[Mapping[str, Any], Sequence[int | str]]
G1 = list[int]
G2 = list[list[int]]


def _calldata(proof: Mapping[str, Any]) -> tuple[G1, G2, G1]:
    """Solidity (a, b, c) of a snarkjs proof; a malformed proof raises :class:`PublishError`.

    Stricter than :func:`~zksolvency.prover.groth16.proof_calldata` in one way: a point at
    infinity is refused, since no honest prover makes one and the verifier would reject it.
    """
    try:
        a, b, c = proof_calldata(proof)
    except (TypeError, ValueError) as exc:
        raise PublishError(f"not a snarkjs Groth16 proof: {exc}") from exc
    if a == [0, 0] or c == [0, 0] or b == [[0, 0], [0, 0]]:
        raise PublishError("not a snarkjs Groth16 proof: a point is at infinity")
    return a, b, c


def _signals(signals: Sequence[int | str], expected: int, what: str) -> list[int]:
    values = [int(s) for s in signals]
    if len(values) != expected:
        raise PublishError(f"{what}: {len(values)} public signals, expected {expected}")
    for i, v in enumerate(values):
        if not 0 <= v < SNARK_SCALAR_FIELD:
            raise PublishError(f"{what}: public signal {i} is not a field element: {v}")
    return values


def _bytes32(value: bytes | str) -> bytes:
    raw = bytes(HexBytes(value))
    if len(raw) != 32:
        raise PublishError(f"bundle hash must be 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class ProgressEvent:
    """Reported after each step of :func:`publish_epoch` (index is the batch index)."""

    stage: Literal["open", "resume", "batch", "custody", "finalize", "already-finalized"]
    index: int
    total: int
    tx_hash: str | None = None
    gas_used: int | None = None


@dataclass
class PublishReport:
    """What :func:`publish_epoch` sent; batch lists cover only batches sent by this call."""

    epoch: int
    open_tx: str | None = None
    open_gas: int | None = None
    batches_skipped: int = 0
    batch_txs: list[str] = field(default_factory=list)
    batch_gas: list[int] = field(default_factory=list)
    custody_txs: list[str] = field(default_factory=list)
    custody_gas: list[int] = field(default_factory=list)
    finalize_tx: str | None = None
    finalize_gas: int | None = None
    already_finalized: bool = False

    @property
    def total_gas(self) -> int:
        return (
            (self.open_gas or 0)
            + sum(self.batch_gas)
            + sum(self.custody_gas)
            + (self.finalize_gas or 0)
        )


def finalize_gas_for(registry: Contract, n_holders: int) -> int:
    """A finalize gas limit that covers the worst case of this registry's configuration: the
    verifier with 10 + 3N inputs, N assets' storage, and every capped foreign read (two calls
    per feed; one balanceOf per token and custody address), each of which the registry refuses
    to make unless its cap is left."""
    n = int(registry.functions.nAssets().call())
    feeds = tokens = 0
    for i in range(n):
        token, _, _, feed_list, *_rest = registry.functions.assetConfig(i).call()
        feeds += len(feed_list)
        tokens += int(int(token, 16) not in (0, int(NATIVE_TOKEN, 16)))
    k = solvency_public_count(n)
    return (
        FINALIZE_GAS
        + 7_200 * k
        + 75_000 * n  # three new storage words and their log words per asset
        + 210_000 * feeds
        + 55_000 * tokens * n_holders
        + 3_000 * n_holders  # reading the stored custody list
    )


def publish_epoch(
    w3: Web3,
    sender: str,
    registry: Contract,
    epoch: int,
    ctx_hash: int,
    bundle_hash: bytes | str,
    batches: Sequence[ProofWithSignals],
    solvency: ProofWithSignals,
    progress: Callable[[ProgressEvent], None] | None = None,
    *,
    batch_gas: int = BATCH_GAS,
    finalize_gas: int | None = None,
    open_gas: int = 300_000,
    signer: LocalAccount | None = None,
    custody: Sequence[tuple[str, bytes]] = (),
) -> PublishReport:
    """Publish one epoch: open it, submit every batch proof in order, add the custody
    addresses with their ownership signatures, finalize.

    Idempotent: batches and custody addresses the registry already holds are skipped (after
    checking they are the ones given here), and an epoch already finalized with the same
    values is reported as such with nothing sent. Inconsistent inputs raise
    :class:`PublishError` before any transaction; a revert raises :class:`RegistryRevert`
    (ReservesChanged when custody balances moved since proving: prove again, only the solvency
    proof is redone). When the registry's circuit breaker refuses the epoch's prices, finalize
    is mined without finalizing and :class:`AttestationRefused` says why. ``finalize_gas``
    defaults to :func:`finalize_gas_for` this registry. The solvency proof's public signals
    give finalize its root, totals commitment, shortfall, insurance fund, weights and reserves;
    positions 7 and 8 must be this epoch and the registry's own domain, which the registry
    supplies itself.
    """
    from .onchain import PriceReading

    if not 0 < epoch < 2**64:
        raise PublishError(f"epoch must be in [1, 2^64), got {epoch}")
    if not 0 <= ctx_hash < SNARK_SCALAR_FIELD:
        raise PublishError("ctx_hash is not a field element")
    if not batches:
        raise PublishError("an epoch needs at least one batch proof")
    bundle = _bytes32(bundle_hash)
    n_assets = int(registry.functions.nAssets().call())
    holders = [Web3.to_checksum_address(a) for a, _ in custody]
    if any(int(x, 16) >= int(y, 16) for x, y in itertools.pairwise(holders)):
        raise PublishError("custody addresses must be distinct and in increasing order")
    if finalize_gas is None:
        finalize_gas = finalize_gas_for(registry, len(holders))
    publisher = Web3.to_checksum_address(registry.functions.publisher().call())
    frm = Web3.to_checksum_address(signer.address if signer is not None else sender)
    if frm != publisher:
        raise PublishError(f"{frm} is not the registry's publisher {publisher}")

    # Local chain check: each batch must continue the previous one from the context hash.
    batch_calls: list[tuple[tuple[G1, G2, G1], int]] = []
    state = ctx_hash
    for i, (proof, signals) in enumerate(batches):
        prev, nxt, ctx = _signals(signals, BATCH_PUBLIC_INPUTS, f"batch {i}")
        if ctx != ctx_hash:
            raise PublishError(f"batch {i} was proved for ctxHash {ctx}, not {ctx_hash}")
        if prev != state:
            raise PublishError(
                f"batch {i} starts from state {prev}, but the chain is at {state} "
                "(batch 0 must start at ctxHash; each batch at the previous nextState)"
            )
        batch_calls.append((_calldata(proof), nxt))
        state = nxt
    s_proof, s_signals = solvency
    signals = _signals(s_signals, solvency_public_count(n_assets), "solvency proof")
    final, s_ctx, root, totals, count, shortfall, insurance_fund, s_epoch, s_domain = signals[
        :SOLVENCY_FIXED_INPUTS
    ]
    n, f = n_assets, SOLVENCY_FIXED_INPUTS
    weights, verified = signals[f : f + n], signals[f + n : f + 2 * n]
    declared, verified_only = signals[f + 2 * n : f + 3 * n], signals[-1]
    if verified_only not in (0, 1):
        raise PublishError(f"solvency proof: verifiedOnly is {verified_only}, not a bit")
    if s_epoch != epoch:
        raise PublishError(f"solvency proof was made for epoch {s_epoch}, not {epoch}")
    domain = int(registry.functions.domain().call())
    if s_domain != domain:
        raise PublishError(
            f"solvency proof is bound to {describe_domain(s_domain)}; this registry is "
            f"{describe_domain(domain)}. Prove the epoch again with --deployment naming this "
            "registry (only the solvency proof is redone)"
        )
    if s_ctx != ctx_hash:
        raise PublishError(f"solvency proof was made for ctxHash {s_ctx}, not {ctx_hash}")
    if final != state:
        raise PublishError(f"solvency proof ends at state {final}, the batches at {state}")
    if count != len(batches):
        raise PublishError(f"solvency proof counts {count} batches, {len(batches)} were given")
    s_call = _calldata(s_proof)

    report = PublishReport(epoch=epoch)
    total = len(batches)

    def emit(event: ProgressEvent) -> None:
        if progress is not None:
            progress(event)

    record = read_epoch(w3, registry, epoch)
    if record.status is not EpochStatus.FINALIZED:
        _check_reserves_unchanged(registry, holders, verified, record.status)
    if record.status is EpochStatus.FINALIZED:
        stored = (
            record.ctx_hash,
            record.root,
            record.totals_commit,
            record.shortfall,
            record.insurance_fund,
            record.reserves,
            record.declared,
            record.verified_only,
        )
        given = (ctx_hash, root, totals, shortfall, insurance_fund, tuple(verified))
        if stored != (*given, tuple(declared), bool(verified_only)):
            raise PublishError(f"epoch {epoch} is already finalized with different values")
        report.already_finalized = True
        report.batches_skipped = total
        emit(ProgressEvent("already-finalized", total, total))
        return report
    if record.status is EpochStatus.ABANDONED:
        raise PublishError(f"epoch {epoch} was abandoned and can never be finalized")
    if record.status is EpochStatus.NONE:
        latest = int(registry.functions.latestEpoch().call())
        open_id = int(registry.functions.openEpochId().call())
        if epoch <= latest:
            raise PublishError(f"epoch {epoch} is not above the latest opened epoch {latest}")
        if open_id != 0:
            raise PublishError(f"epoch {open_id} is still open: finalize or abandon it first")
        receipt = transact(
            w3,
            frm,
            registry,
            "openEpoch",
            (epoch, ctx_hash, total, bundle),
            gas=open_gas,
            signer=signer,
        )
        report.open_tx, report.open_gas = receipt["transactionHash"].to_0x_hex(), receipt["gasUsed"]
        emit(ProgressEvent("open", 0, total, report.open_tx, report.open_gas))
        done = 0
    else:  # OPEN: resume after the batches already accepted
        if (record.ctx_hash, record.bundle_hash, record.n_batches) != (ctx_hash, bundle, total):
            raise PublishError(
                f"epoch {epoch} is open with ctxHash {record.ctx_hash}, bundle "
                f"0x{record.bundle_hash.hex()}, {record.n_batches} batches; this bundle has "
                f"{ctx_hash}, 0x{bundle.hex()}, {total}"
            )
        done = record.batches_submitted
        expected = ctx_hash if done == 0 else batch_calls[done - 1][1]
        if record.state != expected:
            raise PublishError(
                f"epoch {epoch}: the registry's state after {done} batches is {record.state}, "
                f"this bundle's is {expected}"
            )
        report.batches_skipped = done
        emit(ProgressEvent("resume", done, total))

    for index in range(done, total):
        (a, b, c), nxt = batch_calls[index]
        receipt = transact(
            w3,
            frm,
            registry,
            "submitBatch",
            (epoch, index, a, b, c, nxt),
            gas=batch_gas,
            signer=signer,
        )
        tx, used = receipt["transactionHash"].to_0x_hex(), int(receipt["gasUsed"])
        report.batch_txs.append(tx)
        report.batch_gas.append(used)
        emit(ProgressEvent("batch", index, total, tx, used))

    _add_custody(w3, frm, registry, epoch, custody, signer, report)
    if custody:
        emit(ProgressEvent("custody", total, total))

    a, b, c = s_call
    claim = (
        root,
        totals,
        shortfall,
        insurance_fund,
        weights,
        verified,
        declared,
        verified_only == 1,
    )
    receipt = transact(
        w3,
        frm,
        registry,
        "finalize",
        (epoch, (a, b, c), claim),
        gas=finalize_gas,
        signer=signer,
    )
    report.finalize_tx = receipt["transactionHash"].to_0x_hex()
    report.finalize_gas = int(receipt["gasUsed"])
    refused = registry.events.AttestationRefused().process_receipt(receipt, errors=DISCARD)
    if refused:
        failed = registry.events.PriceCheckFailed().process_receipt(receipt, errors=DISCARD)
        readings = [
            PriceReading(
                int(ev.args.asset),
                int(ev.args.verdict),
                int(ev.args.claimedE8),
                int(ev.args.median),
                int(ev.args.fresh),
                int(ev.args.agreeing),
            )
            for ev in failed
        ]
        raise AttestationRefused(epoch, readings, report.finalize_tx)
    emit(ProgressEvent("finalize", total, total, report.finalize_tx, report.finalize_gas))
    return report


def _check_reserves_unchanged(
    registry: Contract, holders: Sequence[str], verified: Sequence[int], status: EpochStatus
) -> None:
    """finalize would revert with ReservesChanged (custody holds less than proven): say so
    before anything is sent. The bundle's hash is recorded when the epoch is opened, so a bundle
    proven again afterwards cannot finish that epoch; better to find out before opening it.
    More than proven is fine: the registry attests the proven amount, a floor."""
    from .onchain import read_verified_reserves  # not at the top: onchain imports this module

    now = read_verified_reserves(registry, holders)
    moved = [(i, v, n) for i, (v, n) in enumerate(zip(verified, now, strict=True)) if v > n]
    if not moved:
        return
    what = "; ".join(f"asset {i}: proven {v}, held now {n}" for i, v, n in moved)
    fix = (
        "move the balances back to what the proof states (the epoch is open with this bundle), "
        "or abandon the epoch"
        if status is EpochStatus.OPEN
        else "prove again with the same arguments (only the solvency proof is redone) and publish"
    )
    raise PublishError(f"custody balances fell below the proof since proving ({what}): {fix}")


def _add_custody(
    w3: Web3,
    frm: ChecksumAddress,
    registry: Contract,
    epoch: int,
    custody: Sequence[tuple[str, bytes]],
    signer: LocalAccount | None,
    report: PublishReport,
) -> None:
    """Send the custody addresses the registry does not hold yet for `epoch`, in chunks; those
    it holds must be the first ones given (a resumed publish)."""
    stored = [Web3.to_checksum_address(a) for a in registry.functions.getCustody(epoch).call()]
    given = [Web3.to_checksum_address(a) for a, _ in custody]
    if stored != given[: len(stored)]:
        raise PublishError(
            f"epoch {epoch} already holds custody addresses {stored[:3]}...; this bundle's "
            f"differ ({given[:3]}...)"
        )
    rest = list(custody)[len(stored) :]
    for start in range(0, len(rest), CUSTODY_CHUNK):
        chunk = rest[start : start + CUSTODY_CHUNK]
        receipt = transact(
            w3,
            frm,
            registry,
            "addCustody",
            (epoch, [Web3.to_checksum_address(a) for a, _ in chunk], [s for _, s in chunk]),
            gas=200_000 + CUSTODY_GAS_PER_HOLDER * len(chunk),
            signer=signer,
        )
        report.custody_txs.append(receipt["transactionHash"].to_0x_hex())
        report.custody_gas.append(int(receipt["gasUsed"]))


# --------------------------------------------------------------------------------------------
# Single-account margin proofs


@dataclass(frozen=True)
class MarginAttestation:
    """What :func:`attest_margin` recorded: ``headroom`` is this proof's, ``recorded_headroom``
    the highest one on record for (epoch, id_commit) after the transaction."""

    epoch: int
    id_commit: int
    headroom: int
    recorded_headroom: int
    tx_hash: str
    gas_used: int


def _margin_inputs(
    w3: Web3, margin: Contract, epoch: int, proof: ProofWithSignals, check: bool
) -> tuple[int, int, tuple[G1, G2, G1]]:
    """(idCommit, headroom, calldata) of a margin proof; with ``check``, also that the proof's
    ctxHash and root are those of ``epoch``, finalized on the margin verifier's registry."""
    if not 0 <= epoch < 2**64:
        raise MarginError(f"epoch must be in [0, 2^64), got {epoch}")
    m_proof, m_signals = proof
    ctx, root, id_commit, headroom = _signals(m_signals, MARGIN_PUBLIC_INPUTS, "margin proof")
    call = _calldata(m_proof)
    if check:
        from .deployment import registry_abi  # deferred: deployment imports this module

        registry = registry_at(w3, margin.functions.registry().call(), registry_abi())
        rec = read_epoch(w3, registry, epoch)
        if rec.status is not EpochStatus.FINALIZED:
            raise MarginError(
                f"epoch {epoch} is {rec.status.name.lower()} on the registry, not finalized"
            )
        if ctx != rec.ctx_hash:
            raise MarginError(
                f"the margin proof was made for ctxHash {ctx}, epoch {epoch} has {rec.ctx_hash}"
            )
        if root != rec.root:
            raise MarginError(
                f"the margin proof was made for root {root}, epoch {epoch} has {rec.root}"
            )
    return id_commit, headroom, call


def verify_margin_on_chain(
    w3: Web3,
    margin: Contract,
    epoch: int,
    proof: ProofWithSignals,
    *,
    gas: int = MARGIN_VERIFY_GAS,
    sender: str | None = None,
    check: bool = True,
) -> int:
    """Ask the AccountMarginVerifier whether ``proof`` holds for finalized ``epoch`` (an
    eth_call with an explicit gas limit, nothing is sent); return the proven headroom.

    ``proof`` is (snarkjs proof, public signals [ctxHash, root, idCommit, headroom]). With
    ``check``, a proof made for another context or root, or an epoch that is not finalized,
    raises :class:`MarginError` before the call. A revert raises :class:`RegistryRevert`
    carrying the contract's error (EpochNotFinalized, InvalidProof, InsufficientGas, ...).
    """
    id_commit, headroom, (a, b, c) = _margin_inputs(w3, margin, epoch, proof, check)
    tx: TxParams = {
        "to": margin.address,
        "data": margin.encode_abi("verifyMargin", args=[epoch, id_commit, headroom, a, b, c]),
        "gas": gas,
    }
    if sender is not None:
        tx["from"] = Web3.to_checksum_address(sender)
    try:
        raw = w3.eth.call(tx, "latest")
    except ContractLogicError as exc:
        name, detail = decode_revert(margin.abi, _revert_data(exc))
        raise RegistryRevert("verifyMargin", name, detail) from exc
    (ok,) = abi_decode(["bool"], bytes(raw))
    if not ok:  # the contract reverts rather than answering false; never trust a bare false
        raise RegistryRevert("verifyMargin", "ReturnedFalse", ())
    return headroom


def attest_margin(
    w3: Web3,
    sender: str,
    margin: Contract,
    epoch: int,
    proof: ProofWithSignals,
    *,
    gas: int = ATTEST_GAS,
    signer: LocalAccount | None = None,
    check: bool = True,
    preflight: bool = True,
) -> MarginAttestation:
    """Record ``proof``'s headroom for (``epoch``, idCommit) on the AccountMarginVerifier.

    Sent with an explicit gas limit (a starved verifier would answer false). The contract keeps
    the highest headroom ever proven, so attesting a lower one succeeds without lowering it.
    Local mismatches raise :class:`MarginError` before anything is sent (see
    :func:`verify_margin_on_chain`); a revert raises :class:`RegistryRevert`.
    """
    id_commit, headroom, (a, b, c) = _margin_inputs(w3, margin, epoch, proof, check)
    receipt = transact(
        w3,
        sender,
        margin,
        "attest",
        (epoch, id_commit, headroom, a, b, c),
        gas=gas,
        signer=signer,
        preflight=preflight,
    )
    block = int(receipt["blockNumber"])
    proven, recorded = margin.functions.attestedHeadroom(epoch, id_commit).call(
        block_identifier=block
    )
    if not proven:  # cannot happen after a successful attest
        raise ChainError(f"attest of epoch {epoch} succeeded but recorded nothing")
    return MarginAttestation(
        epoch=epoch,
        id_commit=id_commit,
        headroom=headroom,
        recorded_headroom=int(recorded),
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        gas_used=int(receipt["gasUsed"]),
    )


def read_attested_headroom(margin: Contract, epoch: int, id_commit: int) -> int | None:
    """The highest headroom attested for (``epoch``, ``id_commit``), or None if none was."""
    proven, headroom = margin.functions.attestedHeadroom(epoch, id_commit).call()
    return int(headroom) if proven else None


__all__ = [
    "ACCOUNT_MARGIN_NAME",
    "ATTEST_GAS",
    "BATCH_GAS",
    "DEFAULT_EVM_VERSION",
    "FINALIZE_GAS",
    "MARGIN_PUBLIC_INPUTS",
    "MARGIN_VERIFIER_NAME",
    "MARGIN_VERIFY_GAS",
    "SNARK_SCALAR_FIELD",
    "Anvil",
    "AnvilError",
    "ChainError",
    "CompileError",
    "ContractArtifact",
    "Deployment",
    "EpochRecord",
    "EpochStatus",
    "MarginAttestation",
    "MarginError",
    "ProgressEvent",
    "PublishError",
    "PublishReport",
    "RegistryRevert",
    "attest_margin",
    "compile_contracts",
    "decode_revert",
    "deploy",
    "publish_epoch",
    "read_attested_headroom",
    "read_epoch",
    "registry_at",
    "render_verifier",
    "transact",
    "verify_margin_on_chain",
    "verify_selector",
]

"""Custody ownership signatures: each custody address signs, per epoch, EIP-712 typed data
naming the epoch, under a domain naming the registry and the chain id (the mirror of
verifier_contract/src/CustodySignatures.sol).

Keys stay with their holders. A signer is a keystore file (decrypted in memory with a password
read from a file or typed at a prompt) or a remote signer answering `eth_signTypedData_v4` over
JSON-RPC (a node with the account unlocked, or a signing service or hardware-wallet bridge that
speaks that method). Nothing here takes a private key as an argument.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

DOMAIN_NAME = "zksolvency"
DOMAIN_VERSION = "1"
PRIMARY_TYPE = "CustodyOwnership"
TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    PRIMARY_TYPE: [
        {"name": "epoch", "type": "uint64"},
        {"name": "custody", "type": "address"},
    ],
}
#: secp256k1's group order, and half of it: signatures with a higher s are refused on-chain.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class SignerError(RuntimeError):
    """A signer could not sign, or signed something other than what was asked."""


def typed_data(registry: str, chain_id: int, epoch: int, custody: str) -> dict[str, Any]:
    """The EIP-712 message `custody` signs for `epoch` of `registry` on chain `chain_id`."""
    if not 0 < epoch < 1 << 64:
        raise ValueError(f"epoch must be in 1..2^64-1, not {epoch}")
    return {
        "types": TYPES,
        "primaryType": PRIMARY_TYPE,
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(registry),
        },
        "message": {"epoch": epoch, "custody": to_checksum_address(custody)},
    }


def digest(registry: str, chain_id: int, epoch: int, custody: str) -> bytes:
    """The 32-byte EIP-712 digest (what ecrecover sees)."""
    msg = encode_typed_data(full_message=typed_data(registry, chain_id, epoch, custody))
    return keccak(b"\x19" + msg.version + msg.header + msg.body)


def recover(registry: str, chain_id: int, epoch: int, custody: str, signature: bytes) -> str | None:
    """The address that made `signature` over `custody`'s message, under the contract's rules
    (65 bytes, v 27 or 28, low s); None for a signature the contract would refuse."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        return None
    if int.from_bytes(signature[32:64], "big") > SECP256K1_N // 2:
        return None
    try:
        return str(
            Account._recover_hash(digest(registry, chain_id, epoch, custody), signature=signature)
        )
    except Exception:  # a signature no key can have made (r or s out of range)
        return None


class Signer(Protocol):
    """Something that holds one custody key and signs EIP-712 typed data with it."""

    address: str

    def sign_typed_data(self, data: dict[str, Any]) -> bytes: ...


@dataclass
class KeystoreSigner:
    """A key in an Ethereum keystore file (geth/web3 v3 JSON), decrypted with its password."""

    path: Path
    password: str = field(repr=False)  # dropped once the key is decrypted

    def __post_init__(self) -> None:
        try:
            blob = json.loads(self.path.read_text())
            self.address = to_checksum_address(blob["address"])
        except (OSError, ValueError, KeyError) as exc:
            raise SignerError(f"{self.path}: not a keystore file ({exc})") from None
        try:
            self._key = bytes(Account.decrypt(blob, self.password))
        except ValueError:
            raise SignerError(f"{self.path}: wrong password for {self.address}") from None
        finally:
            self.password = ""
        if Account.from_key(self._key).address != self.address:
            raise SignerError(f"{self.path}: the key does not match the address {self.address}")

    def sign_typed_data(self, data: dict[str, Any]) -> bytes:
        return bytes(Account.sign_typed_data(self._key, full_message=data).signature)

    def __repr__(self) -> str:  # never the key
        return f"KeystoreSigner({self.path}, {self.address})"


@dataclass
class RemoteSigner:
    """An account behind a JSON-RPC endpoint that answers `eth_signTypedData_v4`."""

    url: str
    address: str

    def sign_typed_data(self, data: dict[str, Any]) -> bytes:
        from web3 import HTTPProvider

        where = _redacted(self.url)
        provider = HTTPProvider(self.url)
        try:
            res = provider.make_request(
                "eth_signTypedData_v4",
                [self.address, json.dumps(data)],
            )
        except Exception as exc:
            raise SignerError(f"remote signer {where}: {_redacted(str(exc))}") from None
        if "error" in res:
            raise SignerError(f"remote signer {where} refused: {res['error']}")
        try:
            return bytes.fromhex(str(res["result"]).removeprefix("0x"))
        except (KeyError, ValueError):
            raise SignerError(f"remote signer {where} answered no signature: {res}") from None


def _redacted(text: str) -> str:
    """`text` without the credentials a signer URL may carry (user:password@host)."""
    return " ".join(
        word.replace(f"{urlsplit(word).username or ''}:{urlsplit(word).password or ''}@", "")
        if "@" in word and "://" in word
        else word
        for word in text.split(" ")
    )


def sign_ownership(signer: Signer, registry: str, chain_id: int, epoch: int) -> tuple[str, bytes]:
    """`signer`'s custody signature for `epoch`, checked before it is returned: a signer that
    signed with another key, or something else, fails here rather than on-chain."""
    data = typed_data(registry, chain_id, epoch, signer.address)
    sig = signer.sign_typed_data(data)
    if len(sig) != 65 or sig[64] not in (0, 1, 27, 28):
        raise SignerError(f"the signer for {signer.address} returned no 65-byte signature")
    if sig[64] in (0, 1):  # some signers return v as 0/1
        sig = sig[:64] + bytes([sig[64] + 27])
    s = int.from_bytes(sig[32:64], "big")
    if s > SECP256K1_N // 2:  # normalise to the low-s twin the contract takes
        sig = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    if recover(registry, chain_id, epoch, signer.address, sig) != to_checksum_address(
        signer.address
    ):
        raise SignerError(f"the signature returned for {signer.address} is not that address's")
    return to_checksum_address(signer.address), sig

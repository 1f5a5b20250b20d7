"""prover/custody.py: the EIP-712 custody signatures the registry checks
(verifier_contract/src/CustodySignatures.sol), made by keystore files and remote signers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from zksolvency.prover import chain, custody
from zksolvency.prover.custody import KeystoreSigner, RemoteSigner, SignerError

KEY = (0xA11CE).to_bytes(32, "big")
ADDRESS = "0xe05fcC23807536bEe418f142D19fa0d21BB0cfF7"
REGISTRY = "0x00000000000000000000000000000000000000aa"
OTHER = "0x00000000000000000000000000000000000000bb"


def test_the_digest_is_the_contracts() -> None:
    """The vector verifier_contract/test/CustodySignatures.t.sol checks the library against."""
    assert Account.from_key(KEY).address == ADDRESS
    assert custody.digest(REGISTRY, 31337, 3, ADDRESS).hex() == (
        "1a9a71907b8ce45ffe3b9ac7bccd037349371c14bc9d4eee2617d3caa732c035"
    )
    # every field of the message and of the domain changes it
    base = custody.digest(REGISTRY, 31337, 3, ADDRESS)
    assert custody.digest(REGISTRY, 31337, 4, ADDRESS) != base
    assert custody.digest(OTHER, 31337, 3, ADDRESS) != base
    assert custody.digest(REGISTRY, 1, 3, ADDRESS) != base
    assert custody.digest(REGISTRY, 31337, 3, OTHER) != base


@pytest.mark.parametrize("epoch", [0, -1, 1 << 64])
def test_epochs_outside_uint64_are_refused(epoch: int) -> None:
    with pytest.raises(ValueError, match="epoch must be"):
        custody.typed_data(REGISTRY, 1, epoch, ADDRESS)


def _keystore(tmp_path: Path, password: str = "correct horse") -> Path:
    # pbkdf2 with few rounds: the default scrypt costs seconds per test
    blob = Account.encrypt(KEY, password, kdf="pbkdf2", iterations=2)
    path = tmp_path / "custody.json"
    path.write_text(json.dumps(blob))
    return path


def test_a_keystore_signs_what_the_contract_accepts(tmp_path: Path) -> None:
    signer = KeystoreSigner(_keystore(tmp_path), "correct horse")
    assert signer.address == ADDRESS
    addr, sig = custody.sign_ownership(signer, REGISTRY, 31337, 3)
    assert addr == ADDRESS and len(sig) == 65
    assert custody.recover(REGISTRY, 31337, 3, ADDRESS, sig) == ADDRESS
    # the same signature names nobody for another epoch, registry or chain
    assert custody.recover(REGISTRY, 31337, 4, ADDRESS, sig) != ADDRESS
    assert custody.recover(OTHER, 31337, 3, ADDRESS, sig) != ADDRESS
    assert custody.recover(REGISTRY, 1, 3, ADDRESS, sig) != ADDRESS


def test_the_password_and_key_never_show_in_repr(tmp_path: Path) -> None:
    signer = KeystoreSigner(_keystore(tmp_path, "hunter2"), "hunter2")
    assert "hunter2" not in repr(signer) and "hunter2" not in str(vars(signer))
    assert KEY.hex() not in repr(signer) and ADDRESS in repr(signer)


def test_keystore_errors_name_the_file(tmp_path: Path) -> None:
    path = _keystore(tmp_path)
    with pytest.raises(SignerError, match=f"{path}: wrong password for {ADDRESS}"):
        KeystoreSigner(path, "wrong")
    blob = json.loads(path.read_text())
    blob["address"] = OTHER[2:]
    path.write_text(json.dumps(blob))
    with pytest.raises(SignerError, match="does not match the address"):
        KeystoreSigner(path, "correct horse")
    path.write_text("{not json")
    with pytest.raises(SignerError, match="not a keystore file"):
        KeystoreSigner(path, "correct horse")


class _Raw:
    """A signer returning whatever signature a test gives it."""

    def __init__(self, address: str, make: Any) -> None:
        self.address = address
        self.make = make

    def sign_typed_data(self, data: dict[str, Any]) -> bytes:
        return bytes(self.make(data))


def _signed(data: dict[str, Any], key: bytes = KEY) -> bytes:
    return bytes(Account.sign_typed_data(key, full_message=data).signature)


def test_v_as_0_or_1_and_high_s_are_normalised_to_what_the_contract_takes() -> None:
    def zero_one_high_s(data: dict[str, Any]) -> bytes:
        sig = _signed(data)
        s = int.from_bytes(sig[32:64], "big")
        twin_s = (custody.SECP256K1_N - s).to_bytes(32, "big")  # the malleated twin, v flipped
        return sig[:32] + twin_s + bytes([(55 - sig[64]) - 27])

    _, sig = custody.sign_ownership(_Raw(ADDRESS, zero_one_high_s), REGISTRY, 5, 9)
    assert sig[64] in (27, 28) and int.from_bytes(sig[32:64], "big") <= custody.SECP256K1_N // 2
    assert custody.recover(REGISTRY, 5, 9, ADDRESS, sig) == ADDRESS


def test_a_signer_that_signs_with_another_key_fails_before_the_chain() -> None:
    other_key = (0xB0B).to_bytes(32, "big")
    with pytest.raises(SignerError, match="not that address's"):
        custody.sign_ownership(_Raw(ADDRESS, lambda d: _signed(d, other_key)), REGISTRY, 5, 9)
    with pytest.raises(SignerError, match="not that address's"):
        custody.sign_ownership(_Raw(ADDRESS, lambda d: b"\x01" * 64 + b"\x1b"), REGISTRY, 5, 9)
    for bad in (b"\x01" * 64 + b"\x40", b"", b"\x01" * 64, b"\x01" * 66):
        with pytest.raises(SignerError, match="no 65-byte signature"):
            custody.sign_ownership(_Raw(ADDRESS, lambda d, b=bad: b), REGISTRY, 5, 9)


def test_signer_urls_lose_their_credentials_in_messages() -> None:
    url = "https://ops:s3cret@signer.internal:8550"
    with pytest.raises(SignerError) as err:
        RemoteSigner(url, ADDRESS).sign_typed_data(custody.typed_data(REGISTRY, 1, 1, ADDRESS))
    assert "s3cret" not in str(err.value) and "signer.internal" in str(err.value)


def test_a_remote_signer_over_json_rpc() -> None:
    """anvil answers eth_signTypedData_v4 for its own accounts, as Clef or a node would."""
    with chain.Anvil() as node:
        account = node.accounts[1]
        addr, sig = custody.sign_ownership(RemoteSigner(node.url, account), REGISTRY, 31337, 7)
        assert addr == account
        assert custody.recover(REGISTRY, 31337, 7, account, sig) == account
        stranger = RemoteSigner(node.url, ADDRESS)  # not an account the node holds
        with pytest.raises(SignerError, match="refused"):
            custody.sign_ownership(stranger, REGISTRY, 31337, 7)
    with pytest.raises(SignerError, match="remote signer"):
        custody.sign_ownership(RemoteSigner(node.url, account), REGISTRY, 31337, 7)  # node gone

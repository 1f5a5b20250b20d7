"""`zksolvency custody sign`: custody keys sign an epoch's ownership statement from keystores
(never from a key on the command line), holders of different keys sign in turn into one file,
and bad input stops with a clear message and exit code 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from eth_account import Account
from zksolvency.prover import custody
from zksolvency.prover.onchain import load_custody

REGISTRY = "0x" + "aa" * 20
CHAIN_ID = 31337


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    path = tmp_path / "deployment.json"
    path.write_text(
        json.dumps(
            {"format": "zksolvency-deployment/1", "chain_id": CHAIN_ID, "registry": REGISTRY}
        )
    )
    return path


def _keystore(tmp_path: Path, name: str, password: str) -> tuple[Path, str]:
    acct = Account.create()
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(Account.encrypt(acct.key, password, iterations=2)))
    return path, acct.address


def test_holders_sign_in_turn_into_one_file(
    cli: Callable[..., Result], tmp_path: Path, deployment: Path
) -> None:
    (ks1, a1), (ks2, a2) = _keystore(tmp_path, "k1", "pw one"), _keystore(tmp_path, "k2", "pw2")
    pw1 = tmp_path / "pw1"
    pw1.write_text("pw one\n")
    out = tmp_path / "custody.json"
    base = ["custody", "sign", "--deployment", deployment, "--epoch", "7", "--out", out]
    r = cli(*base, "--keystore", ks1, "--password-file", pw1)
    assert r.exit_code == 0, r.output
    assert (
        f"1 custody address(es) for epoch 7 of {custody.to_checksum_address(REGISTRY)}" in r.stdout
    )
    # the second holder types the password at the prompt
    r = cli(*base, "--keystore", ks2, input="pw2\n")
    assert r.exit_code == 0, r.output
    c = load_custody(out)
    assert sorted(c.holders) == sorted([a1, a2])
    assert (c.chain_id, c.epoch) == (CHAIN_ID, 7)
    assert c.unrecovered() == []
    for address, sig in c.entries:
        assert custody.recover(REGISTRY, CHAIN_ID, 7, address, sig) == address
    assert "pw one" not in out.read_text() and "pw2" not in out.read_text()


def test_wrong_password_is_refused_and_nothing_written(
    cli: Callable[..., Result], tmp_path: Path, deployment: Path
) -> None:
    ks, address = _keystore(tmp_path, "k", "right")
    out = tmp_path / "custody.json"
    r = cli(
        "custody",
        "sign",
        "--deployment",
        deployment,
        "--epoch",
        "1",
        "--out",
        out,
        "--keystore",
        ks,
        input="wrong\n",
    )
    assert r.exit_code == 2
    assert f"{ks}: wrong password for {address}" in r.stderr
    assert not out.exists()


def test_a_file_for_another_epoch_is_not_added_to(
    cli: Callable[..., Result], tmp_path: Path, deployment: Path
) -> None:
    ks, _ = _keystore(tmp_path, "k", "pw")
    out = tmp_path / "custody.json"
    args = ["custody", "sign", "--deployment", deployment, "--out", out, "--keystore", ks]
    assert cli(*args, "--epoch", "1", input="pw\n").exit_code == 0
    before = out.read_bytes()
    r = cli(*args, "--epoch", "2", input="pw\n")
    assert r.exit_code == 2
    assert f"{out}: signed for chain {CHAIN_ID}" in r.stderr and "epoch 1" in r.stderr
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give --keystore, or --remote-signer with --address"),
        (["--address", "0x" + "11" * 20], "--remote-signer and --address go together"),
        (["--remote-signer", "http://127.0.0.1:9"], "give --keystore"),
    ],
)
def test_signer_options_are_checked(
    cli: Callable[..., Result], tmp_path: Path, deployment: Path, extra: list[str], message: str
) -> None:
    r = cli(
        "custody",
        "sign",
        "--deployment",
        deployment,
        "--epoch",
        "1",
        "--out",
        tmp_path / "c.json",
        *extra,
    )
    assert r.exit_code == 2
    assert message in r.output


def test_no_private_key_option_exists(cli: Callable[..., Result]) -> None:
    r = cli("custody", "sign", "--help")
    assert r.exit_code == 0
    assert "--keystore" in r.stdout and "--remote-signer" in r.stdout
    assert "--private-key" not in r.stdout and "--key " not in r.stdout

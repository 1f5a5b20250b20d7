"""The tiny epoch on a local anvil through the CLI: deploy, publish (idempotent), verify a user
against the registry, and the refusals: an edited package, a publisher the registry does not
know, an epoch the registry never saw."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from zksolvency.prover import chain
from zksolvency.prover.atomic import sha256_file
from zksolvency.prover.deployment import registry_abi
from zksolvency.prover.params import EpochParams
from zksolvency.prover.paths import build_dir


@dataclass(frozen=True)
class Deployed:
    node: chain.Anvil
    record_file: Path
    record: dict[str, Any]
    publish_result: Result
    epoch: Any  # the tiny epoch proven again for this registry (conftest.TinyEpoch)

    @property
    def registry(self) -> str:
        return str(self.record["registry"])


@pytest.fixture(scope="module")
def node() -> Iterator[chain.Anvil]:
    with chain.Anvil() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def deployed(
    cli: Callable[..., Result],
    node: chain.Anvil,
    tiny_epoch: Any,
    tiny_inputs: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Deployed:
    """The tiny circuits' registry, deployed with `deploy`, and the epoch `publish`ed to it."""
    record_file = tmp_path_factory.mktemp("deploy") / "dep.json"
    result = cli("deploy", "--rpc", node.url, "--out", record_file, *tiny_inputs.params)
    assert result.exit_code == 0, result.output
    record = json.loads(record_file.read_text())
    assert f"registry {record['registry']} on chain 31337" in result.stdout
    # The epoch was proven before the registry existed: `prove --deployment` binds it.
    bound = tiny_epoch.bound_to(record_file, record_file.parent / "epoch")
    assert (
        f"bound to: chain 31337, registry {record['registry'].lower()}" in bound.prove_result.stdout
    )
    published = cli("publish", bound.dir, "--rpc", node.url, "--registry", record["registry"])
    assert published.exit_code == 0, published.output
    print(f"\n{published.stdout.strip()}")
    return Deployed(node, record_file, record, published, bound)


@dataclass(frozen=True)
class BoundPackages:
    good: Path  # bob's package from the epoch published on the registry
    tampered: Path  # the same with one balance edited


@pytest.fixture(scope="module")
def bound(
    cli: Callable[..., Result], deployed: Deployed, tmp_path_factory: pytest.TempPathFactory
) -> BoundPackages:
    folder = tmp_path_factory.mktemp("bound-packages")
    good = folder / "bob.json"
    result = cli("export", deployed.epoch.dir, "--account", "bob", "--out", good)
    assert result.exit_code == 0, result.output
    pkg = json.loads(good.read_text())
    assert pkg["registry"] == {"chain_id": 31337, "address": deployed.registry}
    pkg["account"]["equity"]["BTC"] = "0.26"
    tampered = folder / "tampered.json"
    tampered.write_text(json.dumps(pkg))
    return BoundPackages(good, tampered)


def test_publish_of_an_unbound_epoch_is_refused(
    cli: Callable[..., Result], deployed: Deployed, tiny_epoch: Any
) -> None:
    """The epoch as first proven (no --deployment) cannot be published; the error says how to
    fix it, and nothing is sent."""
    w3 = deployed.node.w3
    block = w3.eth.block_number
    url, registry = deployed.node.url, deployed.registry
    result = cli("publish", tiny_epoch.dir, "--rpc", url, "--registry", registry)
    assert result.exit_code == 1, result.output
    assert "solvency proof is bound to no registry (proved before deployment)" in result.stderr
    assert "Prove the epoch again with --deployment" in result.stderr
    assert w3.eth.block_number == block


def test_deploy_record_pins_the_epoch_keys(deployed: Deployed, tiny_epoch: Any) -> None:
    r, circuits = deployed.record, tiny_epoch.manifest["circuits"]
    assert r["format"] == "zksolvency-deployment/1"
    assert (r["chain_id"], r["n_assets"]) == (31337, 2)
    assert r["publisher"] == deployed.node.accounts[0]
    assert r["params"] == {
        "batch_levels": 1,
        "tree_depth": 4,
        "n_assets": 2,
        "n_instruments": 2,
        "n_scenarios": 8,
        "n_tiers": 2,
    }
    assert r["batch_vkey_sha256"] == circuits["batch"]["vkey_sha256"]
    assert r["solvency_vkey_sha256"] == circuits["solvency"]["vkey_sha256"]
    for kind in ("batch", "solvency", "margin"):
        assert r[f"{kind}_r1cs_sha256"] == circuits[kind]["r1cs_sha256"]
    w3 = deployed.node.w3
    for kind in ("batch", "solvency", "margin"):
        code = bytes(w3.eth.get_code(r[f"{kind}_verifier"]))
        assert r[f"{kind}_verifier_codehash"] == w3.keccak(code).to_0x_hex()
    assert w3.eth.get_code(r["account_margin_verifier"])


def test_publish_finalizes_the_epoch(deployed: Deployed, tiny_epoch: Any) -> None:
    assert "epoch published: 3 batches sent (0 already there)" in deployed.publish_result.stdout
    w3 = deployed.node.w3
    registry = chain.registry_at(w3, deployed.registry, registry_abi())
    rec = chain.read_epoch(w3, registry, 1)
    m = deployed.epoch.manifest
    assert rec.status is chain.EpochStatus.FINALIZED
    assert (rec.root, rec.n_batches, rec.batches_submitted) == (int(m["root"]), 3, 3)
    assert rec.bundle_hash.hex() == sha256_file(deployed.epoch.dir / "manifest.json")
    # Binding changed the solvency proof only: the tree, the chain and the batches are the same.
    assert m["root"] == tiny_epoch.manifest["root"]
    assert m["proofs"]["batches"] == tiny_epoch.manifest["proofs"]["batches"]
    assert m["proofs"]["solvency"] != tiny_epoch.manifest["proofs"]["solvency"]
    assert [str(r) for r in rec.reserves] == m["reserves_raw"]["verified"]
    assert [str(r) for r in rec.declared] == m["reserves_raw"]["declared"]
    assert rec.verified_only is m["reserves"]["verified_only"] is False


def test_verify_against_the_chain(
    cli: Callable[..., Result], deployed: Deployed, bound: BoundPackages
) -> None:
    # The package names its registry; the registry's record stands for the batch proofs
    # other than bob's, which alone is verified here.
    url = deployed.node.url
    result = cli("verify-inclusion", bound.good, "--rpc", url, "--bundle", deployed.epoch.dir)
    assert result.exit_code == 0, result.output
    assert "[PASS] The registry attests this epoch: registry " in result.stdout
    assert "[PASS] The batch holding your account is proven: batch " in result.stdout
    assert "the other 2 batch proof(s) are the registry's to have verified" in result.stdout
    assert "VERIFIED: account bob is included in epoch 1" in result.stdout
    assert "Of the 3 batch proofs, the one holding your account was verified here" in (
        result.stdout
    )
    assert "equity                   0.25" in result.stdout
    assert "debt                   50.5" in result.stdout
    assert "Caution: no trust anchors were given" in result.stdout

    # Pinned by the deployment record, with the bundle too: every check passes, no warning.
    pinned = cli(
        "verify-inclusion", bound.good, "--rpc", deployed.node.url, "--bundle",
        deployed.epoch.dir, "--trusted-keys", deployed.record_file,
    )  # fmt: skip
    assert pinned.exit_code == 0, pinned.output
    assert pinned.stdout.count("[PASS]") == 10, pinned.stdout
    assert "Caution" not in pinned.stdout and "trust anchors" not in pinned.stderr


def test_publish_records_the_gas(deployed: Deployed) -> None:
    rec = json.loads((deployed.epoch.dir / "publication.json").read_text())
    assert rec["format"] == "zksolvency-publication/1"
    assert (rec["epoch"], rec["chain_id"], rec["registry"]) == (1, 31337, deployed.registry)
    kinds = [(t["kind"], t["index"]) for t in rec["transactions"]]
    assert kinds == [("open", None), ("batch", 0), ("batch", 1), ("batch", 2), ("finalize", None)]
    receipts = [deployed.node.w3.eth.get_transaction_receipt(t["tx"]) for t in rec["transactions"]]
    assert [r["gasUsed"] for r in receipts] == [t["gas_used"] for t in rec["transactions"]]
    assert rec["total_gas"] == sum(t["gas_used"] for t in rec["transactions"])


def test_verify_against_the_chain_refuses_an_edited_package(
    cli: Callable[..., Result], deployed: Deployed, bound: BoundPackages
) -> None:
    result = cli(
        "verify-inclusion", bound.tampered, "--rpc", deployed.node.url, "--bundle",
        deployed.epoch.dir,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "[FAIL] Your data makes your leaf: your id, salt, balances and positions" in (
        result.stdout
    )
    assert "[SKIP] The registry attests this epoch: not checked" in result.stdout


def test_verify_against_an_unreachable_node(
    cli: Callable[..., Result], deployed: Deployed, bound: BoundPackages
) -> None:
    result = cli(
        "verify-inclusion", bound.good, "--rpc", "http://127.0.0.1:9", "--bundle",
        deployed.epoch.dir,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "cannot reach an Ethereum node at http://127.0.0.1:9" in result.stdout


def test_publish_again_sends_nothing(
    cli: Callable[..., Result], deployed: Deployed, tiny_epoch: Any
) -> None:
    w3 = deployed.node.w3
    block = w3.eth.block_number
    url, registry = deployed.node.url, deployed.registry
    result = cli("publish", deployed.epoch.dir, "--rpc", url, "--registry", registry)
    assert result.exit_code == 0, result.output
    assert "epoch published: 0 batches sent (3 already there), total gas 0" in result.stdout
    assert w3.eth.block_number == block


def test_publish_from_a_non_publisher_is_refused(
    cli: Callable[..., Result], deployed: Deployed, tiny_epoch: Any, packages: Any
) -> None:
    """A fresh registry for the same keys, and the same epoch sent by another account."""
    w3 = deployed.node.w3
    out = build_dir() / "contracts" / EpochParams(1, 4, 2, 2, 8, 2).batch_spec().name / "out"
    names = (chain.BATCH_VERIFIER_NAME, chain.SOLVENCY_VERIFIER_NAME, chain.REGISTRY_NAME)
    artifacts = {n: chain.ContractArtifact.load(out / f"{n}.json") for n in names}
    fresh = chain.deploy(w3, deployed.node.accounts[0], artifacts, 2)
    intruder = deployed.node.accounts[1]

    block = w3.eth.block_number
    result = cli(
        "publish", tiny_epoch.dir, "--rpc", deployed.node.url, "--registry", fresh.registry,
        "--from", intruder,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"error: {intruder} is not the registry's publisher {fresh.publisher}" in result.stderr
    assert w3.eth.block_number == block, "nothing may be sent"

    # The user's check against that registry fails: it never finalized epoch 1. (The package
    # of the epoch as first proven names no registry, so any may be asked.)
    url = deployed.node.url
    result = cli(
        "verify-inclusion", packages.good, "--rpc", url, "--registry", fresh.registry,
        "--bundle", tiny_epoch.dir,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "epoch 1 is none on the registry, not finalized" in result.stdout


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_vkey_sha256", "00" * 32, "batch key is not the pinned one"),
        ("solvency_verifier_codehash", "0x" + "11" * 32, "verifier code is not the pinned one"),
        ("chain_id", 1, "not 1"),
        ("registry", "0x" + "22" * 20, "is not the pinned registry"),
        ("solvency_r1cs_sha256", "00" * 32, "solvency verifier was made for circuit"),
    ],
)
def test_verify_against_the_chain_refuses_other_anchors(
    cli: Callable[..., Result],
    deployed: Deployed,
    bound: BoundPackages,
    tmp_path: Path,
    field: str,
    value: Any,
    message: str,
) -> None:
    # Trust anchors that disagree with the chain in any one field must fail the check.
    anchors = {**deployed.record, field: value}
    path = tmp_path / "anchors.json"
    path.write_text(json.dumps(anchors))
    result = cli(
        "verify-inclusion", bound.good, "--rpc", deployed.node.url, "--bundle",
        deployed.epoch.dir, "--trusted-keys", path,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    onchain = next(ln for ln in result.stdout.splitlines() if "The registry attests" in ln)
    assert "[FAIL]" in onchain and message in onchain


def test_verify_refuses_a_registry_whose_verifier_has_another_key(
    cli: Callable[..., Result], deployed: Deployed, bound: BoundPackages, tmp_path: Path
) -> None:
    # A bundle whose batch key differs from the one the registry's verifier embeds.
    bundle = tmp_path / "bundle"
    shutil.copytree(deployed.epoch.dir, bundle, ignore=shutil.ignore_patterns("private"))
    m = json.loads((bundle / "manifest.json").read_text())
    m["circuits"]["batch"]["vkey_json"]["vk_delta_2"][0][0] = str(
        3**150
    )  # a word no verifier holds
    (bundle / "manifest.json").write_text(json.dumps(m))
    result = cli("verify-inclusion", bound.good, "--rpc", deployed.node.url, "--bundle", bundle)
    assert result.exit_code == 1, result.output
    assert "batch verifier is not built from the bundle's verification key" in result.stdout


def test_a_package_of_an_older_epoch_is_flagged(
    cli: Callable[..., Result], deployed: Deployed, bound: BoundPackages, tmp_path: Path
) -> None:
    """An exchange could keep handing out the package of an old epoch that included the user
    while newer epochs leave them out: with --rpc the check says a newer epoch is finalized.
    (Last in this module: it finalizes epoch 2 on the shared registry.)"""
    url = deployed.node.url
    epoch2 = tmp_path / "epoch2"
    args = list(deployed.epoch.prove_args)  # the bound epoch's: --deployment included
    args[args.index("--out") + 1] = str(epoch2)
    args[args.index("--epoch") + 1] = "2"
    proved = cli(*args)
    assert proved.exit_code == 0, proved.output
    published = cli("publish", epoch2, "--rpc", url, "--registry", deployed.registry)
    assert published.exit_code == 0, published.output

    result = cli("verify-inclusion", bound.good, "--rpc", url, "--bundle", deployed.epoch.dir)
    assert result.exit_code == 0, result.output  # epoch 1 still holds what it held
    assert (
        "the registry has finalized a newer epoch (2) than this package's (1): ask for your "
        "package of epoch 2" in result.stderr
    )

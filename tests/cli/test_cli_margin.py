"""`zksolvency margin prove` / `margin verify` on the session's tiny epoch: alice (a BTC perpetual
long and a short call) proves her margin headroom with the real circuit, a lender verifies it
offline against the bundle, with her id and salt, and on a local anvil; edited proofs, excessive
headrooms and bad input are refused with the documented exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from zksolvency.prover import chain
from zksolvency.prover.account_proof import account_data, parse_usd, usd
from zksolvency.prover.bundle import load_bundle
from zksolvency.prover.inclusion import resolve
from zksolvency.prover.params import EpochParams

HEADROOM = "1000.25"  # well below alice's true headroom (about 90k USD)


@dataclass(frozen=True)
class Proven:
    package: Path
    pkg: dict[str, Any]
    zero: Path  # headroom 0
    some: Path  # headroom HEADROOM
    zero_result: Result
    some_result: Result
    bundle: Path

    @property
    def salt(self) -> str:
        return str(self.pkg["account"]["salt"])

    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.some.read_text())
        return doc


@pytest.fixture(scope="module")
def proven(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path_factory: pytest.TempPathFactory
) -> Proven:
    folder = tmp_path_factory.mktemp("margin")
    package = folder / "alice.json"
    exported = cli("export", tiny_epoch.dir, "--account", "alice", "--out", package)
    assert exported.exit_code == 0, exported.output
    pkg = json.loads(package.read_text())
    assert pkg["account"]["positions"] == {"BTC-PERP": "250", "BTC-C70K": "-20"}
    full = resolve(pkg, load_bundle(tiny_epoch.dir))
    assert account_data(full).headroom > parse_usd(HEADROOM)
    zero, some = folder / "zero.proof.json", folder / "some.proof.json"
    zero_result = cli("margin", "prove", package, "--bundle", tiny_epoch.dir, "--out", zero)
    assert zero_result.exit_code == 0, zero_result.output
    some_result = cli(
        "margin", "prove", package, "--bundle", tiny_epoch.dir, "--headroom", HEADROOM,
        "--out", some,
    )  # fmt: skip
    assert some_result.exit_code == 0, some_result.output
    print(f"\n{zero_result.stdout.strip()}\n{some_result.stdout.strip()}")
    return Proven(package, full, zero, some, zero_result, some_result, tiny_epoch.dir)


def test_prove_writes_proofs(proven: Proven) -> None:
    assert "headroom 0 USD" in proven.zero_result.stdout
    assert f"wrote {proven.some}: epoch 1, headroom {HEADROOM} USD" in proven.some_result.stdout
    assert "proving margin_1_4_2_2_8_2" in proven.some_result.stderr
    for path, headroom in ((proven.zero, "0"), (proven.some, HEADROOM)):
        doc = json.loads(path.read_text())
        assert doc["format"] == "zksolvency-margin-proof/1"
        assert (doc["epoch"], doc["circuit"], doc["headroom_usd"]) == (
            1,
            "margin_1_4_2_2_8_2",
            headroom,
        )
        assert doc["headroom"] == str(parse_usd(headroom))
        assert (doc["root"], doc["ctx_hash"]) == (
            proven.pkg["root"],
            proven.pkg["context"]["ctx_hash"],
        )
        assert doc["public_signals"] == [
            doc["ctx_hash"],
            doc["root"],
            doc["id_commit"],
            doc["headroom"],
        ]


def test_proof_reveals_no_balance_position_or_path(proven: Proven) -> None:
    text = proven.some.read_text()
    acc = proven.pkg["account"]
    secrets = [proven.salt, proven.pkg["leaf"], *proven.pkg["siblings"], *acc["positions"]]
    assert all(s not in text for s in secrets)
    doc = proven.doc()
    assert not {"account", "equity", "debt", "positions", "leaf_index", "siblings"} & set(doc)


def test_verify_against_the_bundle(cli: Callable[..., Result], proven: Proven) -> None:
    result = cli("margin", "verify", proven.some, "--bundle", proven.bundle)
    assert result.exit_code == 0, result.output
    assert (
        f"OK: the committed account keeps at least {HEADROOM} USD of margin headroom in every "
        "scenario of epoch 1 (checked against the bundle)"
    ) in result.stdout
    assert "give --account and --salt" in result.stdout
    # The bundle pins the margin key: no warning about a key taken from the proof itself.
    assert "taken from the proof file itself" not in result.stderr

    zero = cli("margin", "verify", proven.zero, "--bundle", proven.bundle)
    assert zero.exit_code == 0, zero.output
    assert "keeps at least 0 USD" in zero.stdout


def test_verify_opens_the_id_commitment(cli: Callable[..., Result], proven: Proven) -> None:
    vkey = proven.doc()["vkey_sha256"]
    result = cli(
        "margin", "verify", proven.some, "--bundle", proven.bundle,
        "--account", "alice", "--salt", proven.salt, "--trusted-vkey", vkey,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"OK: account alice keeps at least {HEADROOM} USD" in result.stdout
    assert "taken from the proof file itself" not in result.stderr

    # Without a bundle the proof still verifies, with a warning that the epoch is unchecked.
    alone = cli("margin", "verify", proven.some, "--account", "alice", "--salt", proven.salt)
    assert alone.exit_code == 0, alone.output
    assert "the proof alone: its epoch was not checked" in alone.stdout
    assert "no bundle or chain given" in alone.stderr

    for account, salt in (("bob", proven.salt), ("alice", str(int(proven.salt) + 1))):
        wrong = cli("margin", "verify", proven.some, "--account", account, "--salt", salt)
        assert wrong.exit_code == 1, wrong.output
        assert (
            f"verification FAILED: the proof's idCommit does not open to account {account!r}"
            in (wrong.stderr)
        )

    pinned_elsewhere = cli("margin", "verify", proven.some, "--trusted-vkey", "ab" * 32)
    assert pinned_elsewhere.exit_code == 1, pinned_elsewhere.output
    assert "is not the trusted one" in pinned_elsewhere.stderr


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _consistent(doc: dict[str, Any], **fields: str) -> dict[str, Any]:
    """The proof file with stated values changed along with its public signals."""
    bad = {**doc, **fields}
    bad["public_signals"] = [bad["ctx_hash"], bad["root"], bad["id_commit"], bad["headroom"]]
    bad["headroom_usd"] = usd(int(bad["headroom"]))
    return bad


def test_edited_proofs_fail(cli: Callable[..., Result], proven: Proven, tmp_path: Path) -> None:
    doc = proven.doc()
    higher = str(parse_usd("50000"))
    cases = {
        "headroom": (_consistent(doc, headroom=higher), "the Groth16 proof does not verify"),
        "root": (
            _consistent(doc, root=str(int(doc["root"]) ^ 1)),
            "the Groth16 proof does not verify",
        ),
        "headroom_only": ({**doc, "headroom": higher}, "public signals are not"),
        "readable": ({**doc, "headroom_usd": "50000"}, "readable headroom '50000' USD"),
    }
    for name, (bad, message) in cases.items():
        path = _write(tmp_path / f"{name}.json", bad)
        for extra in ((), ("--bundle", proven.bundle)):
            result = cli("margin", "verify", path, *extra)
            assert result.exit_code == 1, (name, result.output)
            assert "verification FAILED:" in result.stderr, (name, result.stderr)
            if not extra:
                assert message in result.stderr, (name, result.stderr)


def test_prove_refuses_more_headroom_than_the_account_has(
    cli: Callable[..., Result], proven: Proven, tmp_path: Path
) -> None:
    true = account_data(proven.pkg).headroom
    above = usd(true // 10**18 * 10**18 + 10**18)  # the next 10^-8 USD above the true headroom
    out = tmp_path / "never.json"
    result = cli(
        "margin",
        "prove",
        proven.package,
        "--bundle",
        proven.bundle,
        "--headroom",
        above,
        "--out",
        out,
    )
    assert result.exit_code == 2, result.output
    assert "error: the account keeps only" in result.stderr
    assert f"less than the {above} USD asked" in result.stderr
    assert "proving" not in result.stderr and "Groth16 setup" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--headroom", "1.123456789"), "more than 8 decimals"),
        (("--headroom", "-5"), "negative amount"),
        (("--headroom", "1e3"), "exponent notation"),
    ],
)
def test_prove_bad_headroom(
    cli: Callable[..., Result], proven: Proven, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = cli(
        "margin",
        "prove",
        proven.package,
        "--bundle",
        proven.bundle,
        *args,
        "--out",
        tmp_path / "x.json",
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for --headroom" in result.stderr and message in result.stderr


def test_prove_refuses_a_tampered_or_unreadable_package(
    cli: Callable[..., Result], proven: Proven, tmp_path: Path
) -> None:
    pkg = json.loads(proven.package.read_text())
    pkg["account"]["positions"]["BTC-PERP"] = "10"
    tampered = _write(tmp_path / "tampered.json", pkg)
    result = cli(
        "margin", "prove", tampered, "--bundle", proven.bundle, "--out", tmp_path / "x.json"
    )
    assert result.exit_code == 2, result.output
    assert "error: the inclusion package is inconsistent" in result.stderr
    assert "does not climb to the epoch root" in result.stderr

    junk = tmp_path / "junk.json"
    junk.write_text("not json")
    result = cli("margin", "prove", junk, "--bundle", proven.bundle, "--out", tmp_path / "x.json")
    assert result.exit_code == 2 and "invalid JSON" in result.stderr
    result = cli(
        "margin",
        "prove",
        tmp_path / "missing.json",
        "--bundle",
        proven.bundle,
        "--out",
        tmp_path / "x.json",
    )
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_verify_bad_input(cli: Callable[..., Result], proven: Proven, tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    cases: list[tuple[tuple[Any, ...], str]] = [
        ((junk,), "not a zksolvency-margin-proof/1 file"),
        ((tmp_path / "missing.json",), "cannot read"),
        ((proven.package,), "not a zksolvency-margin-proof/1 file"),
        ((proven.some, "--account", "alice"), "--account and --salt go together"),
        ((proven.some, "--account", "alice", "--salt", "x1"), "Invalid value for --salt"),
        ((proven.some, "--trusted-vkey", "abc"), "Invalid value for --trusted-vkey"),
        ((proven.some, "--rpc", "http://127.0.0.1:1"), "--rpc and --verifier go together"),
        (
            (proven.some, "--bundle", proven.bundle, "--rpc", "http://x", "--verifier", "0x0"),
            "not both",
        ),
        ((proven.some, "--bundle", tmp_path), "no manifest.json"),
    ]
    for args, message in cases:
        result = cli("margin", "verify", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)


# --- on chain -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnChain:
    node: chain.Anvil
    record: dict[str, Any]
    empty: dict[str, Any]  # a second deployment on which nothing was published


@pytest.fixture(scope="module")
def on_chain(
    cli: Callable[..., Result], tiny_epoch: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OnChain]:
    """The tiny circuits' registry deployed with the margin contracts, the epoch published."""
    from zksolvency.prover.deployment import deploy_registry
    from zksolvency.prover.keys import build_keys, build_margin_keys

    params = EpochParams(**tiny_epoch.manifest["params"])
    keys = build_keys(params, None)
    margin_keys = build_margin_keys(params, None)
    out = tmp_path_factory.mktemp("margin_chain") / "deployment.json"
    with chain.Anvil() as node:
        me = node.accounts[0]
        record = deploy_registry(node.w3, me, keys, params, out, margin=margin_keys)
        bound = tiny_epoch.bound_to(out, out.parent / "epoch")
        published = cli("publish", bound.dir, "--rpc", node.url, "--registry", record["registry"])
        assert published.exit_code == 0, published.output
        empty = deploy_registry(node.w3, me, keys, params, margin=margin_keys)
        yield OnChain(node, record, empty)


def test_verify_on_chain(cli: Callable[..., Result], proven: Proven, on_chain: OnChain) -> None:
    rec = on_chain.record
    args = ("--rpc", on_chain.node.url, "--verifier", rec["account_margin_verifier"])
    result = cli(
        "margin", "verify", proven.some, *args, "--account", "alice", "--salt", proven.salt
    )
    assert result.exit_code == 0, result.output
    assert f"OK: account alice keeps at least {HEADROOM} USD" in result.stdout
    assert "(checked against the chain)" in result.stdout
    assert f"registry: {rec['registry']}" in result.stdout
    assert "was not pinned" in result.stderr

    pinned = cli(
        "margin", "verify", proven.zero, *args, "--trusted-vkey", rec["margin_vkey_sha256"]
    )
    assert pinned.exit_code == 0, pinned.output
    assert "was not pinned" not in pinned.stderr


def test_verify_on_chain_refusals(
    cli: Callable[..., Result], proven: Proven, on_chain: OnChain, tmp_path: Path
) -> None:
    url = on_chain.node.url
    # An epoch the margin verifier's registry never finalized.
    result = cli(
        "margin", "verify", proven.some, "--rpc", url,
        "--verifier", on_chain.empty["account_margin_verifier"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "verification FAILED: on chain: epoch 1 is" in result.stderr
    assert "not finalized" in result.stderr
    # The registry is not an AccountMarginVerifier.
    result = cli(
        "margin", "verify", proven.some, "--rpc", url, "--verifier", on_chain.record["registry"]
    )
    assert result.exit_code == 1, result.output
    assert "is not an AccountMarginVerifier" in result.stderr
    # No contract at all, and an unreachable node.
    nobody = "0x" + "12" * 20
    result = cli("margin", "verify", proven.some, "--rpc", url, "--verifier", nobody)
    assert result.exit_code == 1 and "no contract at" in result.stderr
    result = cli(
        "margin", "verify", proven.some, "--rpc", "http://127.0.0.1:9", "--verifier", nobody
    )
    assert result.exit_code == 1 and "cannot reach an Ethereum node" in result.stderr
    # An edited proof fails offline before anything is asked of the chain.
    doc = _consistent(proven.doc(), headroom=str(parse_usd("50000")))
    bad = _write(tmp_path / "bad.json", doc)
    verifier = on_chain.record["account_margin_verifier"]
    result = cli("margin", "verify", bad, "--rpc", url, "--verifier", verifier)
    assert result.exit_code == 1 and "the Groth16 proof does not verify" in result.stderr


def test_owner_proves_with_the_published_proving_key(
    cli: Callable[..., Result], proven: Proven, tmp_path: Path
) -> None:
    """An account owner has no keys of their own: the bundle publishes keys/margin.zkey, and a
    proof made with it verifies against the bundle."""
    zkey = proven.bundle / "keys" / "margin.zkey"
    assert zkey.is_file()
    out = tmp_path / "owner.proof.json"
    made = cli(
        "margin", "prove", proven.package, "--bundle", proven.bundle, "--zkey", zkey, "--out", out
    )
    assert made.exit_code == 0, made.output
    checked = cli("margin", "verify", out, "--bundle", proven.bundle)
    assert checked.exit_code == 0, checked.output


def test_a_proving_key_the_package_does_not_pin_is_refused(
    cli: Callable[..., Result], proven: Proven, tmp_path: Path
) -> None:
    other = tmp_path / "other.zkey"
    batch = proven.bundle / "keys" / "margin.zkey"
    # A valid snarkjs key of another circuit: the tiny batch circuit's.
    from zksolvency.prover.keys import compile_circuit
    from zksolvency.prover.params import EpochParams

    build = compile_circuit(EpochParams(1, 4, 2, 2, 8, 2).batch_spec())
    other.write_bytes((build.dir / "keys" / f"{build.spec.name}.zkey").read_bytes())
    assert other.read_bytes() != batch.read_bytes()
    out = tmp_path / "x.json"
    result = cli(
        "margin", "prove", proven.package, "--bundle", proven.bundle, "--zkey", other, "--out", out
    )
    assert result.exit_code == 2, result.output
    assert "is not the epoch's margin key" in result.output
    assert not out.exists()

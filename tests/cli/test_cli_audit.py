"""`zksolvency audit`: the tiny epoch audited offline and against a registry on anvil; tampered
copies fail the check they concern while every other check still runs (every batch proof among
them); bad input exits 2."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from zksolvency.cli.main import main
from zksolvency.prover import chain
from zksolvency.prover.audit import CHAIN_KEYS, TITLES, AuditInputError, audit_epoch
from zksolvency.prover.params import EpochParams
from zksolvency.prover.paths import build_dir

OFFLINE = ("manifest", "keys", "context", "risk", "state_chain", "proofs", "totals")


def run(*args: object) -> Result:
    return CliRunner().invoke(main, ["audit", *(str(a) for a in args)])


def statuses(report_file: Path) -> dict[str, str]:
    report = json.loads(report_file.read_text())
    assert [c["key"] for c in report["checks"]] == list(TITLES), "every check is reported"
    return {c["key"]: c["status"] for c in report["checks"]}


def detail(report_file: Path, key: str) -> str:
    checks = json.loads(report_file.read_text())["checks"]
    return str(next(c["detail"] for c in checks if c["key"] == key))


def copy_epoch(src: Path, dest: Path, edit: Callable[[dict[str, Any], Path], None]) -> Path:
    """A copy of an epoch directory whose manifest (and files) `edit` changes."""
    shutil.copytree(src, dest)
    path = dest / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest, dest)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return dest


def set_batch_signal(m: dict[str, Any], d: Path, batch: int, pos: int, value: int) -> None:
    """Set one public signal of a batch proof, in the manifest and in its public file alike."""
    entry = m["proofs"]["batches"][batch]
    entry["public_signals"][pos] = str(value)
    (d / entry["public"]).write_text(json.dumps(entry["public_signals"]))


# --------------------------------------------------------------------------------------------
# Offline


def test_offline_audit_of_the_tiny_epoch_passes(tiny_epoch: Any, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = run(tiny_epoch.dir, "--json", out)
    assert result.exit_code == 0, result.output
    status = statuses(out)
    assert {k: status[k] for k in OFFLINE} == {
        **dict.fromkeys(OFFLINE, "pass"),
        "keys": "skip",  # no --trusted-keys
    }
    assert all(status[k] == "skip" for k in CHAIN_KEYS)
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["epoch"] == 1
    assert report["bundle_sha256"] == tiny_epoch.sha256()
    assert report["counts"] == {"pass": 6, "fail": 0, "skip": 7}
    out_text = result.stdout
    assert "4 verified in pure Python (3 batch proofs and the solvency proof)" in out_text
    assert "recomputed from 2 assets (BTC, USDT) in 2 slots" in out_text
    assert "2 instruments (BTC-PERP, BTC-C70K) repriced under 8 scenarios" in out_text
    assert "for k < 3" in out_text and "public signals open S_3" in out_text
    assert "no --rpc: not compared with the chain" in out_text
    assert "OK: epoch 1 audited: 6 passed, 0 failed, 7 skipped" in out_text
    assert "INSECURE development setup" in result.stderr


def test_trusted_keys_pin_the_bundle_keys(tiny_epoch: Any, tmp_path: Path) -> None:
    circuits = tiny_epoch.manifest["circuits"]
    anchors = {f"{k}_vkey_sha256": circuits[k]["vkey_sha256"] for k in ("batch", "solvency")}
    good = tmp_path / "good.json"
    good.write_text(json.dumps(anchors))
    out = tmp_path / "good-audit.json"
    result = run(tiny_epoch.dir, "--trusted-keys", good, "--json", out)
    assert result.exit_code == 0, result.output
    assert statuses(out)["keys"] == "pass"
    assert "are the pinned keys" in detail(out, "keys")

    # Another solvency key: the keys fail and the proofs, which need them, are skipped; every
    # check that does not need the keys still runs.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**anchors, "solvency_vkey_sha256": "00" * 32}))
    out = tmp_path / "bad-audit.json"
    result = run(tiny_epoch.dir, "--trusted-keys", bad, "--json", out)
    assert result.exit_code == 1, result.output
    assert "audit FAILED (5 passed, 1 failed, 7 skipped): verification keys (keys)" in (
        result.stderr
    )
    status = statuses(out)
    assert {k: status[k] for k in OFFLINE} == {
        "manifest": "pass",
        "keys": "fail",
        "context": "pass",
        "risk": "pass",
        "state_chain": "pass",
        "proofs": "skip",
        "totals": "pass",
    }
    assert "is not the trusted one" in detail(out, "keys")
    assert detail(out, "proofs") == (
        "none of the 4 checked: no verification keys to check them with (the keys check failed)"
    )
    assert "public signals open" not in detail(out, "totals")  # no solvency proof verified


def _edit_batch_signal(m: dict[str, Any], d: Path) -> None:
    # batch 1 claims another next state: it no longer continues the manifest's chain
    set_batch_signal(m, d, 1, 1, int(m["state_chain"][2]) + 1)


def _edit_state(m: dict[str, Any], d: Path) -> None:
    # S_2 replaced everywhere it appears: the chain is consistent, batch 1's proof is not
    s2 = int(m["state_chain"][2]) + 1
    m["state_chain"][2] = str(s2)
    set_batch_signal(m, d, 1, 1, s2)
    set_batch_signal(m, d, 2, 0, s2)


def _swap_prices(m: dict[str, Any], d: Path) -> None:
    a, b = m["context"]["assets"]
    for k in ("price_usd", "price_e8"):
        a[k], b[k] = b[k], a[k]


def _edit_totals(m: dict[str, Any], d: Path) -> None:
    m["totals_raw"][0] = str(int(m["totals_raw"][0]) + 1)


def _drop_totals(m: dict[str, Any], d: Path) -> None:
    del m["totals_raw"]


def _edit_risk(m: dict[str, Any], d: Path) -> None:
    row = m["context"]["risk"]["arrays"][0]
    row[0] = str(int(row[0]) + 10**15)  # far above the repricing: flatters long positions


ALL_PROOFS = "4 verified in pure Python (3 batch proofs and the solvency proof)"
AS_GIVEN = "; checked against the manifest's {} as given, which the lines above do not confirm"


@pytest.mark.parametrize(
    ("edit", "failed", "message", "proofs"),
    [
        (
            _edit_batch_signal,
            {"state_chain", "proofs"},
            "batch 1: public signals do not continue the state chain",
            "3 of 4 verified in pure Python (2 of 3 batch proofs and the solvency proof); "
            "batch 1: public signals do not continue the state chain"
            + AS_GIVEN.format("state chain"),
        ),
        (
            _edit_state,
            {"proofs"},
            "batch 1: the Groth16 proof does not verify",
            "2 of 4 verified in pure Python (1 of 3 batch proofs and the solvency proof); "
            "batch 1: the Groth16 proof does not verify; "
            "batch 2: the Groth16 proof does not verify",
        ),
        (
            _swap_prices,
            {"context"},
            "asset BTC: published weight disagrees with its price",
            ALL_PROOFS + AS_GIVEN.format("ctxHash"),
        ),
        (
            _edit_totals,
            {"totals"},
            "the published totals do not match the totals commitment",
            ALL_PROOFS,
        ),
        (
            _edit_risk,
            {"context", "risk"},
            "less conservative than a repricing of the published market data",
            ALL_PROOFS + AS_GIVEN.format("ctxHash"),
        ),
        (
            _drop_totals,
            {"totals"},
            "malformed manifest (KeyError: 'totals_raw')",
            ALL_PROOFS,
        ),
    ],
    ids=["batch-signal", "state", "prices", "totals", "risk-array", "no-totals"],
)
def test_a_tampered_epoch_fails_the_check_it_concerns(
    tiny_epoch: Any,
    tmp_path: Path,
    edit: Callable[[dict[str, Any], Path], None],
    failed: set[str],
    message: str,
    proofs: str,
) -> None:
    epoch = copy_epoch(tiny_epoch.dir, tmp_path / "epoch", edit)
    out = tmp_path / "audit.json"
    result = run(epoch, "--json", out)
    assert result.exit_code == 1, result.output
    status = statuses(out)
    assert {k for k, s in status.items() if s == "fail"} == failed
    assert message in " ".join(detail(out, k) for k in failed)
    assert detail(out, "proofs") == proofs
    # Every other offline check ran and passed (the keys are skipped: nothing pins them).
    assert all(status[k] == "pass" for k in OFFLINE if k not in failed and k != "keys")
    assert json.loads(out.read_text())["ok"] is False
    for key in failed:
        assert f"FAIL  {TITLES[key]}" in result.stdout
        assert f"{TITLES[key]} ({key})" in result.stderr


@pytest.mark.parametrize("k", [0, 1, 2])
def test_a_bad_batch_proof_hides_no_other_proof(tiny_epoch: Any, tmp_path: Path, k: int) -> None:
    """Batch k's proof file is another batch's (its recorded hash updated to match): batch k
    fails, and every other batch proof and the solvency proof are still verified and counted."""
    other = (k + 1) % 3

    def swap_proof(m: dict[str, Any], d: Path) -> None:
        entries = m["proofs"]["batches"]
        shutil.copyfile(d / entries[other]["proof"], d / entries[k]["proof"])
        entries[k]["proof_sha256"] = entries[other]["proof_sha256"]

    epoch = copy_epoch(tiny_epoch.dir, tmp_path / "epoch", swap_proof)
    out = tmp_path / "audit.json"
    result = run(epoch, "--json", out)
    assert result.exit_code == 1, result.output
    assert "audit FAILED (5 passed, 1 failed, 7 skipped): Groth16 proofs (proofs)" in (
        result.stderr
    )
    status = statuses(out)
    assert {k for k, s in status.items() if s == "fail"} == {"proofs"}
    assert all(status[k] == "pass" for k in OFFLINE if k not in ("proofs", "keys"))
    assert detail(out, "proofs") == (
        "3 of 4 verified in pure Python (2 of 3 batch proofs and the solvency proof); "
        f"batch {k}: the Groth16 proof does not verify"
    )
    # The solvency proof verified, after its public signals were compared with the manifest.
    assert "the solvency proof's public signals open S_3" in detail(out, "totals")
    assert f"batch {k}: the Groth16 proof does not verify" in result.stdout


def _shorten_chain(m: dict[str, Any], d: Path) -> None:
    m["state_chain"].pop()


def test_a_malformed_state_chain_skips_the_proofs_saying_why(
    tiny_epoch: Any, tmp_path: Path
) -> None:
    """A chain one state short fails its check and cannot stand in for the checked one: the
    proofs are skipped, saying why; the totals, which need no chain, still pass."""
    epoch = copy_epoch(tiny_epoch.dir, tmp_path / "epoch", _shorten_chain)
    out = tmp_path / "audit.json"
    result = run(epoch, "--json", out)
    assert result.exit_code == 1, result.output
    status = statuses(out)
    assert {k for k, s in status.items() if s == "fail"} == {"state_chain"}
    assert status["proofs"] == "skip"
    assert detail(out, "proofs") == (
        "none of the 4 checked: no state chain to check them against: the manifest's is "
        "unusable (the state chain has 3 states, not 4)"
    )
    assert status["totals"] == "pass"
    assert "public signals open" not in detail(out, "totals")


def test_bad_input_exits_2(tiny_epoch: Any, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = run(tmp_path / "nowhere", "--json", out)
    assert result.exit_code == 2
    assert "Directory" in result.stderr and "does not exist" in result.stderr
    with pytest.raises(AuditInputError, match="nowhere: no such directory"):
        audit_epoch(tmp_path / "nowhere")

    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(empty, "--json", out)
    assert result.exit_code == 2
    assert "no manifest.json (is this an epoch directory?)" in result.stderr

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ not json\n")
    result = run(broken, "--json", out)
    assert result.exit_code == 2
    assert "manifest.json:1: invalid JSON" in result.stderr

    # --rpc needs a registry: the tiny epoch is bound to none
    result = run(tiny_epoch.dir, "--rpc", "http://127.0.0.1:9", "--json", out)
    assert result.exit_code == 2
    assert "the epoch is bound to no registry; name one with --registry" in result.stderr
    result = run(tiny_epoch.dir, "--rpc", "http://127.0.0.1:9", "--registry", "0x1234")
    assert result.exit_code == 2
    assert "'0x1234' is not a 0x address" in result.stderr
    result = run(tiny_epoch.dir, "--registry", "0x" + "11" * 20)
    assert result.exit_code == 2
    assert "--registry needs --rpc" in result.stderr
    assert not out.exists(), "nothing is written on bad input"


def test_an_unreachable_node_fails_the_registry_line_only(tiny_epoch: Any, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = run(
        tiny_epoch.dir, "--rpc", "http://127.0.0.1:9", "--registry", "0x" + "11" * 20,
        "--json", out,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    status = statuses(out)
    assert status["registry"] == "fail"
    assert detail(out, "registry") == "cannot reach an Ethereum node at http://127.0.0.1:9"
    assert all(status[k] == "skip" for k in CHAIN_KEYS[1:])
    assert all(status[k] == "pass" for k in OFFLINE if k != "keys")


# --------------------------------------------------------------------------------------------
# Against a registry on anvil


@dataclass(frozen=True)
class Published:
    node: chain.Anvil
    record_file: Path
    record: dict[str, Any]
    dir: Path  # the tiny epoch, proven again for this registry and published to it


@pytest.fixture(scope="module")
def node() -> Iterator[chain.Anvil]:
    with chain.Anvil() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def published(
    cli: Callable[..., Result],
    node: chain.Anvil,
    tiny_epoch: Any,
    tiny_inputs: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Published:
    """A registry for the tiny circuits, deployed with `deploy`, and the tiny epoch bound to
    it (`prove --deployment`) and `publish`ed, as in test_cli_chain."""
    record_file = tmp_path_factory.mktemp("audit-deploy") / "dep.json"
    result = cli("deploy", "--rpc", node.url, "--out", record_file, *tiny_inputs.params)
    assert result.exit_code == 0, result.output
    record = json.loads(record_file.read_text())
    bound = tiny_epoch.bound_to(record_file, record_file.parent / "epoch")
    result = cli("publish", bound.dir, "--rpc", node.url, "--registry", record["registry"])
    assert result.exit_code == 0, result.output
    return Published(node, record_file, record, bound.dir)


def test_audit_against_the_registry_passes(published: Published, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    # The registry defaults to the one the epoch is bound to.
    result = run(
        published.dir, "--rpc", published.node.url, "--trusted-keys", published.record_file,
        "--json", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert set(statuses(out).values()) == {"pass"}
    report = json.loads(out.read_text())
    assert report["registry"] == published.record["registry"]
    assert report["counts"] == {"pass": 13, "fail": 0, "skip": 0}
    assert "chain id and address pinned by the trust anchors" in detail(out, "registry")
    assert "3 batches, final state" in detail(out, "epoch_record")
    assert re.match(r"opened, then finalized \d+ s later \(20\d\d-", detail(out, "epoch_record"))
    assert detail(out, "batch_events").startswith("3 events (index 0..2, blocks ")
    assert "their code is the pinned code" in detail(out, "verifiers")
    assert "custody list of 0 address(es)" in detail(out, "reserves")
    # The tiny registry was deployed without an assets configuration: no slot is priced.
    assert "not configured on-chain, so not meaningful: BTC, USDT" in detail(out, "prices")
    assert f"registry {published.record['registry']} at {published.node.url}" in result.stdout


def test_events_are_read_in_windows_from_the_given_block(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Public nodes refuse wide eth_getLogs ranges: the events are read a window at a time
    from --from-block, and a start past the events finds none of them."""
    import zksolvency.prover.audit as audit_mod

    w3 = published.node.w3
    monkeypatch.setattr(audit_mod, "LOG_WINDOW", 2)  # several windows over anvil's few blocks
    out = tmp_path / "audit.json"
    result = run(published.dir, "--rpc", published.node.url, "--from-block", 1, "--json", out)
    assert result.exit_code == 0, result.output
    assert detail(out, "batch_events").startswith("3 events (index 0..2, blocks ")

    head = int(w3.eth.block_number)  # finalize's block or later: after every batch's event
    result = run(published.dir, "--rpc", published.node.url, "--from-block", head, "--json", out)
    assert result.exit_code == 1, result.output
    assert statuses(out)["batch_events"] == "fail"
    assert detail(out, "batch_events").startswith("0 events for 3 batches")

    result = run(
        published.dir, "--rpc", published.node.url, "--from-block", head + 5, "--json", out
    )
    assert result.exit_code == 1, result.output
    assert f"past the chain's head (block {head})" in detail(out, "batch_events")


def test_audit_against_a_registry_that_never_saw_the_epoch(
    published: Published, tmp_path: Path
) -> None:
    """A fresh registry for the same keys: the verifiers match, nothing else does."""
    w3 = published.node.w3
    out_dir = build_dir() / "contracts" / EpochParams(1, 4, 2, 2, 8, 2).batch_spec().name / "out"
    names = (chain.BATCH_VERIFIER_NAME, chain.SOLVENCY_VERIFIER_NAME, chain.REGISTRY_NAME)
    artifacts = {n: chain.ContractArtifact.load(out_dir / f"{n}.json") for n in names}
    fresh = chain.deploy(w3, published.node.accounts[0], artifacts, 2)

    out = tmp_path / "audit.json"
    result = run(
        published.dir, "--rpc", published.node.url, "--registry", fresh.registry,
        "--json", out,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    status = statuses(out)
    assert {k for k, s in status.items() if s == "fail"} == {
        "registry",
        "epoch_record",
        "batch_events",
    }
    assert "not to this registry" in detail(out, "registry")
    assert detail(out, "epoch_record") == "epoch 1 is none on the registry, not finalized"
    assert detail(out, "batch_events").startswith("0 events for 3 batches")
    assert status["verifiers"] == "pass"
    assert status["reserves"] == status["prices"] == "skip"
    assert all(status[k] == "pass" for k in OFFLINE if k != "keys")


def test_audit_of_a_bundle_the_registry_did_not_record(
    published: Published, tmp_path: Path
) -> None:
    """The same content in other bytes: every proof still verifies, but the registry holds the
    hash of the manifest that was published, so the bundle is not the published one."""
    epoch = tmp_path / "epoch"
    shutil.copytree(published.dir, epoch)
    manifest = epoch / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()), indent=1))
    out = tmp_path / "audit.json"
    result = run(epoch, "--rpc", published.node.url, "--json", out)
    assert result.exit_code == 1, result.output
    status = statuses(out)
    assert {k for k, s in status.items() if s == "fail"} == {"epoch_record"}
    assert "the registry records bundle hash" in detail(out, "epoch_record")
    assert "epoch record (epoch_record)" in result.stderr


def test_audit_with_anchors_the_registry_does_not_match(
    published: Published, tmp_path: Path
) -> None:
    anchors = tmp_path / "anchors.json"
    anchors.write_text(
        json.dumps({**published.record, "solvency_verifier_codehash": "0x" + "11" * 32})
    )
    out = tmp_path / "audit.json"
    result = run(
        published.dir, "--rpc", published.node.url, "--trusted-keys", anchors, "--json", out
    )
    assert result.exit_code == 1, result.output
    status = statuses(out)
    assert {k for k, s in status.items() if s == "fail"} == {"verifiers"}
    assert detail(out, "verifiers") == "the solvency verifier's code is not the pinned one"


@pytest.fixture(scope="module")
def custodied(
    cli: Callable[..., Result],
    node: chain.Anvil,
    tiny_epoch: Any,
    tiny_inputs: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Published:
    """A second registry whose slots hold mock tokens priced by mock feeds (as in
    test_cli_onchain), and the tiny epoch proven with two custody addresses and published."""
    from zksolvency.prover import mockchain
    from zksolvency.prover.mockchain import Listing
    from zksolvency.prover.snapshot import load_snapshot

    folder = tmp_path_factory.mktemp("audit-custody")
    w3, op = node.w3, node.accounts[0]
    assets = load_snapshot(tiny_inputs.snapshot).assets
    listings = {"BTC": Listing(8), "USDT": Listing(18, feed_decimals=(8, 6, 8))}
    market = mockchain.deploy_market(w3, op, assets, listings, len(assets))
    holders = sorted(node.accounts[3:5], key=lambda a: int(a, 16))
    for h in holders:
        mockchain.fund(w3, op, market, h, {"BTC": 250_000_000, "USDT": 6_000_000_000})
    config = folder / "assets.json"
    config.write_text(json.dumps({"assets": [c.as_json() for c in market.config]}))
    record_file = folder / "dep.json"
    r = cli("deploy", "--rpc", node.url, "--out", record_file, "--assets-config", config,
            *tiny_inputs.params)  # fmt: skip
    assert r.exit_code == 0, r.output
    record = json.loads(record_file.read_text())
    custody = folder / "custody.json"
    signers = [a for h in holders for a in ("--address", h)]
    r = cli("custody", "sign", "--deployment", record_file, "--epoch", 1,
            "--remote-signer", node.url, *signers, "--out", custody)  # fmt: skip
    assert r.exit_code == 0, r.output
    bundle = folder / "epoch"
    shutil.copytree(tiny_epoch.dir, bundle)
    args = list(tiny_epoch.prove_args)
    args[args.index("--out") + 1] = str(bundle)
    r = cli(*args, "--deployment", record_file, "--custody", custody, "--rpc", node.url)
    assert r.exit_code == 0, r.output
    r = cli("publish", bundle, "--rpc", node.url, "--registry", record["registry"])
    assert r.exit_code == 0, r.output
    return Published(node, record_file, record, bundle)


def test_audit_of_an_epoch_with_custody_and_price_feeds(
    custodied: Published, tmp_path: Path
) -> None:
    out = tmp_path / "audit.json"
    epoch_dir = custodied.dir
    result = run(epoch_dir, "--rpc", custodied.node.url, "--trusted-keys", custodied.record_file,
                 "--json", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert set(statuses(out).values()) == {"pass"}
    assert "2 custody address(es)" in detail(out, "manifest")
    # 5 BTC and 12,000 USDT verified (read by the registry), 5 BTC and 20,000 USDT declared
    assert "(BTC 5 + 5, USDT 12000 + 20000); custody list of 2 address(es)" in detail(
        out, "reserves"
    )
    prices = detail(out, "prices")
    assert "equal to the published prices: BTC " in prices and "USD (3 feeds)" in prices
    assert "not configured" not in prices

"""Single-account margin proofs (prover/account_proof.py).

The input tests plan the tiny epoch in Python (no proving) and export real inclusion packages
from a minimal epoch folder; the verification tests make one real proof from the session's
tiny epoch and check what verify_margin_proof accepts and refuses.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from zksolvency.prover import epoch as epoch_mod
from zksolvency.prover.account_proof import (
    FORMAT,
    HeadroomError,
    MarginProofError,
    MarginProofFormatError,
    MarginVerificationError,
    account_data,
    load_margin_proof,
    margin_proof_input,
    parse_usd,
    prove_account_margin,
    public_signals,
    usd,
    verify_margin_proof,
)
from zksolvency.prover.bundle import load_bundle
from zksolvency.prover.commitments import (
    STRICT,
    id_commitment,
    leaf_hash,
    margin_bits,
    qty_code,
    qty_from_code,
)
from zksolvency.prover.context import context_json
from zksolvency.prover.field import P
from zksolvency.prover.haircuts import load_haircuts, tier_split
from zksolvency.prover.inclusion import export_package, resolve
from zksolvency.prover.instruments import load_derivatives
from zksolvency.prover.margin import MarginContext
from zksolvency.prover.params import EpochParams
from zksolvency.prover.reserves import load_reserves
from zksolvency.prover.snapshot import load_snapshot
from zksolvency.prover.tree import climb
from zksolvency.prover.witness import EpochPlan, MarginInputs, plan_epoch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MARGIN = FIXTURES / "margin"
TINY_SNAPSHOT = FIXTURES / "snapshots" / "small_2assets.json"
TINY_RESERVES = FIXTURES / "snapshots" / "small_2assets_reserves.json"
PARAMS = EpochParams(1, 4, 2, 2, 8, 2)


@pytest.fixture(scope="module")
def plan() -> EpochPlan:
    snap = load_snapshot(TINY_SNAPSHOT)
    derivatives = load_derivatives(
        MARGIN / "tiny_instruments.csv",
        MARGIN / "tiny_market.csv",
        MARGIN / "tiny_positions.csv",
        snap,
    )
    table = load_haircuts(MARGIN / "tiny_haircuts.csv", snap.assets)
    margin = MarginInputs(derivatives, table, None, STRICT, 0)
    reserves = load_reserves(TINY_RESERVES, snap.assets)
    return plan_epoch(snap, PARAMS, 7, reserves, b"m" * 32, margin)


@pytest.fixture(scope="module")
def epoch_dir(plan: EpochPlan, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Just what export_package reads: a manifest (no proofs) and the private account rows."""
    out = tmp_path_factory.mktemp("planned")
    manifest = {
        "format": epoch_mod.FORMAT,
        "epoch": plan.context.epoch,
        "params": PARAMS.as_dict(),
        "context": context_json(plan),
        "root": str(plan.tree.root),
        "accounts": len(plan.accounts),
        "domain": "0",
        # placeholders for what packages reference: these tests prove nothing
        "state_chain": ["0"] * (plan.tree.n_batches + 1),
        "proofs": {
            "batches": [
                {
                    "proof": f"proofs/batch_{k:06d}.proof.json",
                    "proof_sha256": "",
                    "public_signals": [],
                }
                for k in range(plan.tree.n_batches)
            ]
        },
        "circuits": {
            "batch": {"vkey_json": {}},
            "solvency": {"vkey_json": {}},
            "margin": {"vkey_json": {}, "vkey_sha256": "0" * 64, "development_setup": True},
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    rows = [
        {
            "index": i,
            "id": acc.id,
            "salt": str(salt),
            "equity": [str(v) for v in acc.equity],
            "debt": [str(v) for v in acc.debt],
            "qty": [str(q) for q in plan.qty[i]],
        }
        for i, (acc, salt) in enumerate(zip(plan.accounts, plan.salts, strict=True))
    ]
    (out / "private").mkdir()
    (out / "private" / "accounts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _index(plan: EpochPlan, account_id: str) -> int:
    return next(i for i, a in enumerate(plan.accounts) if a.id == account_id)


def _package(epoch_dir: Path, account_id: str) -> dict[str, Any]:
    """The account's package, completed from its bundle as `margin prove --bundle` does."""
    return resolve(export_package(epoch_dir, account_id), load_bundle(epoch_dir))


def _signed(x: str) -> int:
    v = int(x)
    assert 0 <= v < P
    return v - P if v > P // 2 else v


@pytest.mark.parametrize("account_id", ["alice", "bob", "carol", "dave", "erin"])
def test_input_matches_the_mirror(plan: EpochPlan, epoch_dir: Path, account_id: str) -> None:
    j = _index(plan, account_id)
    pkg = _package(epoch_dir, account_id)
    true_headroom, _ = plan.headrooms[j]
    assert account_data(pkg).headroom == true_headroom
    inp = margin_proof_input(pkg, true_headroom)

    # Every value is a canonical decimal string, as the witness calculator reads them.
    def leaves(x: Any) -> list[Any]:
        return [y for v in x for y in leaves(v)] if isinstance(x, list) else [x]

    assert all(isinstance(v, str) and 0 <= int(v) < P for x in inp.values() for v in leaves(x))

    n, k = PARAMS.n_assets, PARAMS.n_tiers
    acc = plan.accounts[j]
    equity = [*acc.equity, *[0] * (n - len(acc.equity))]
    debt = [*acc.debt, *[0] * (n - len(acc.debt))]
    codes = [qty_code(q) for q in plan.qty[j]]
    assert public_signals(inp) == [
        plan.context.ctx_hash,
        plan.tree.root,
        plan.id_commits[j],
        true_headroom,
    ]
    assert inp["idCommit"] == str(id_commitment(acc.id, plan.salts[j]))
    assert [int(x) for x in inp["equity"]] == equity
    assert [int(x) for x in inp["debt"]] == debt
    assert [int(x) for x in inp["qty"]] == codes
    assert int(inp["leafIndex"]) == j
    assert [int(s) for s in inp["siblings"]] == plan.tree.inclusion_path(j)
    assert len(inp["siblings"]) == PARAMS.tree_depth

    # The leaf built from the inputs climbs to the public root along the path.
    leaf = leaf_hash(int(inp["idCommit"]), equity, debt, codes)
    assert leaf == plan.leaves[j]
    assert climb(leaf, int(inp["leafIndex"]), [int(s) for s in inp["siblings"]]) == int(inp["root"])

    # The context inputs (negative risk entries as p - |x|) hash to the public ctxHash.
    risk = [[_signed(x) for x in row] for row in inp["risk"]]
    assert risk == [list(r) for r in plan.context.margin.risk]
    ctx = MarginContext(
        int(inp["mode"]),
        tuple(int(w) for w in inp["weights"]),
        tuple(tuple(int(w) for w in row) for row in inp["tierWeights"]),
        tuple(tuple(int(w) for w in row) for row in inp["tierWidths"]),
        tuple(int(c) for c in inp["capLimit"]),
        tuple(tuple(row) for row in risk),
    )
    assert ctx == plan.context.margin
    assert ctx.hash(int(inp["epoch"]), PARAMS.tree_depth, PARAMS.batch_levels) == int(
        inp["ctxHash"]
    )

    # No split is an input: the circuit fills the tiers in order, as the mirror does.
    assert "split" not in inp
    split = [tier_split(x, ctx.tier_widths[a]) for a, x in enumerate(equity)]
    assert all(len(row) == k for row in split) and [sum(row) for row in split] == equity

    # The circuit's rule 6 with floor = headroom, on the inputs themselves: the worst scenario
    # has exactly zero to spare at the true headroom.
    q = [qty_from_code(c) for c in codes]
    credit = sum(
        x * w for a in range(n) for x, w in zip(split[a], ctx.tier_weights[a], strict=True)
    )
    debt_value = sum(d * w for d, w in zip(debt, ctx.weights, strict=True))
    spare = [
        credit
        - debt_value
        + sum(q[i] * risk[i][s] - abs(q[i]) for i in range(PARAMS.n_instruments))
        - int(inp["headroom"])
        for s in range(PARAMS.n_scenarios)
    ]
    assert min(spare) == 0


def test_negative_risk_entries_become_field_elements(plan: EpochPlan, epoch_dir: Path) -> None:
    inp = margin_proof_input(_package(epoch_dir, "alice"), 0)
    negatives = [
        (i, s) for i, row in enumerate(plan.context.margin.risk) for s, v in enumerate(row)
    ]
    negatives = [(i, s) for i, s in negatives if plan.context.margin.risk[i][s] < 0]
    assert negatives, "the tiny epoch's perpetual loses in price-down scenarios"
    for i, s in negatives:
        assert inp["risk"][i][s] == str(P + plan.context.margin.risk[i][s])


def test_alice_has_positions_and_room(plan: EpochPlan, epoch_dir: Path) -> None:
    pkg = _package(epoch_dir, "alice")
    assert pkg["account"]["positions"] == {"BTC-PERP": "250", "BTC-C70K": "-20"}
    assert plan.headrooms[_index(plan, "alice")][0] > parse_usd("1000")


def test_refuses_more_headroom_than_the_account_has(plan: EpochPlan, epoch_dir: Path) -> None:
    pkg = _package(epoch_dir, "alice")
    true_headroom = plan.headrooms[_index(plan, "alice")][0]
    margin_proof_input(pkg, true_headroom)  # exactly the true headroom is fine
    with pytest.raises(HeadroomError, match=r"keeps only [0-9.]+ USD of headroom in epoch 7"):
        margin_proof_input(pkg, true_headroom + 1)
    with pytest.raises(HeadroomError, match="must be >= 0"):
        margin_proof_input(pkg, -1)
    with pytest.raises(HeadroomError, match="below 2\\^"):
        margin_proof_input(pkg, 1 << margin_bits(PARAMS.n_assets, PARAMS.n_instruments))
    # A HeadroomError is a MarginProofError is a ValueError: callers can catch either.
    assert issubclass(HeadroomError, MarginProofError) and issubclass(MarginProofError, ValueError)


def test_usd_round_trip() -> None:
    assert parse_usd("0") == 0
    assert parse_usd("1000.25") == 100025 * 10**24
    assert usd(parse_usd("1000.25")) == "1000.25"
    assert usd(parse_usd("0.00000001")) == "0.00000001"
    with pytest.raises(ValueError, match="more than 8 decimals"):
        parse_usd("1.000000001")
    with pytest.raises(ValueError, match="negative"):
        parse_usd("-1")


def _tamper(pkg: dict[str, Any], edit: str) -> dict[str, Any]:
    bad = copy.deepcopy(pkg)
    if edit == "equity":
        bad["account"]["equity"]["BTC"] = "1.6"
    elif edit == "position":
        bad["account"]["positions"]["BTC-PERP"] = "251"
    elif edit == "salt":
        bad["account"]["salt"] = str(int(bad["account"]["salt"]) + 1)
    elif edit == "id":
        bad["account"]["id"] = "mallory"
    elif edit == "sibling":
        bad["siblings"][2] = str(int(bad["siblings"][2]) ^ 1)
    elif edit == "leaf_index":
        bad["leaf_index"] = bad["leaf_index"] ^ 1
    elif edit == "root":
        bad["root"] = str(int(bad["root"]) ^ 1)
    elif edit == "price":
        bad["context"]["assets"][0]["price_e8"] = "1"
    elif edit == "risk":
        bad["context"]["risk"]["arrays"][0][0] = str(
            int(bad["context"]["risk"]["arrays"][0][0]) + 1
        )
    elif edit == "epoch":
        bad["epoch"] = bad["epoch"] + 1
    elif edit == "no_siblings":
        del bad["siblings"]
    return bad


@pytest.mark.parametrize(
    "edit",
    [
        "equity",
        "position",
        "salt",
        "id",
        "sibling",
        "leaf_index",
        "root",
        "price",
        "risk",
        "epoch",
        "no_siblings",
    ],
)
def test_refuses_a_tampered_package(epoch_dir: Path, edit: str) -> None:
    pkg = _package(epoch_dir, "alice")
    with pytest.raises(MarginProofError) as info:
        margin_proof_input(_tamper(pkg, edit), 0)
    assert not isinstance(info.value, HeadroomError)
    assert "inconsistent" in str(info.value) or "context is" in str(info.value)


def test_id_commit_opens_to_the_packages_id_and_salt(epoch_dir: Path) -> None:
    pkg = _package(epoch_dir, "bob")
    inp = margin_proof_input(pkg, 0)
    salt = int(pkg["account"]["salt"])
    assert int(inp["idCommit"]) == id_commitment("bob", salt)
    assert int(inp["idCommit"]) != id_commitment("alice", salt)
    assert int(inp["idCommit"]) != id_commitment("bob", salt + 1)


# --- a real proof -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tiny_epoch: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """alice's package from the session's tiny epoch, and a proof of 1000.25 USD of headroom."""
    out = tmp_path_factory.mktemp("margin_lib")
    pkg = _package(tiny_epoch.dir, "alice")
    stats: dict[str, float] = {}
    doc = prove_account_margin(pkg, parse_usd("1000.25"), out / "proof.json", stats=stats)
    print(f"\nmargin proof timings: {stats}")
    return {"pkg": pkg, "doc": doc, "path": out / "proof.json", "bundle": tiny_epoch.dir}


def test_proof_file_is_written_and_reveals_no_balances(real: dict[str, Any]) -> None:
    doc, pkg = real["doc"], real["pkg"]
    assert load_margin_proof(real["path"]) == json.loads(json.dumps(doc))
    assert doc["format"] == FORMAT and doc["circuit"] == "margin_1_4_2_2_8_2"
    assert (doc["headroom"], doc["headroom_usd"]) == (str(parse_usd("1000.25")), "1000.25")
    assert doc["public_signals"] == [
        doc["ctx_hash"],
        doc["root"],
        doc["id_commit"],
        doc["headroom"],
    ]
    assert doc["root"] == pkg["root"] and doc["ctx_hash"] == pkg["context"]["ctx_hash"]
    text = real["path"].read_text()
    acc = pkg["account"]
    for secret in [acc["salt"], *pkg["siblings"], pkg["leaf"], "alice", "BTC-PERP", "equity"]:
        assert secret not in text


def test_private_files_stay_in_one_private_folder_that_is_removed(
    real: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proof input and Node's witness hold the account's balances and positions: both go in
    one 0700 temporary folder (never Node's own TMPDIR), and nothing stays behind."""
    from zksolvency.prover import epoch

    ours, nodes = tmp_path / "ours", tmp_path / "node"
    ours.mkdir()
    nodes.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(ours))
    monkeypatch.setenv("TMPDIR", str(nodes))
    seen: list[tuple[Path, int, list[str]]] = []
    original = epoch.run_jobs

    def spy(jobs: list[dict[str, Any]], on_done: Any, **kw: Any) -> None:
        folder = Path(kw["tmpdir"])
        seen.append((folder, folder.stat().st_mode & 0o777, [j["input"] for j in jobs]))
        original(jobs, on_done, **kw)

    monkeypatch.setattr(epoch, "run_jobs", spy)
    prove_account_margin(real["pkg"], parse_usd("1000.25"), tmp_path / "proof.json")
    ((folder, mode, inputs),) = seen
    assert folder.parent == ours and mode == 0o700
    assert all(Path(i).parent == folder for i in inputs)
    assert list(ours.iterdir()) == [] and list(nodes.iterdir()) == []


def test_verify_with_bundle_and_opening(real: dict[str, Any]) -> None:
    doc, salt = real["doc"], real["pkg"]["account"]["salt"]
    result = verify_margin_proof(doc, real["bundle"], doc["vkey_sha256"], "alice", salt)
    assert result.checked_against == "bundle" and result.account_id == "alice"
    assert (result.epoch, result.headroom_usd) == (1, "1000.25")
    assert not any("taken from the proof file" in w for w in result.warnings)

    alone = verify_margin_proof(doc)
    assert alone.checked_against == "proof only" and alone.account_id is None
    assert any("no bundle or chain" in w for w in alone.warnings)
    assert any("taken from the proof file" in w for w in alone.warnings)

    with pytest.raises(MarginVerificationError, match="does not open to account 'bob'"):
        verify_margin_proof(doc, None, None, "bob", salt)
    with pytest.raises(MarginVerificationError, match="does not open"):
        verify_margin_proof(doc, None, None, "alice", int(salt) + 1)
    with pytest.raises(MarginVerificationError, match="not the trusted one"):
        verify_margin_proof(doc, None, "ab" * 32)


def _edited(doc: dict[str, Any], **fields: str) -> dict[str, Any]:
    """A copy with fields changed consistently: the stated values and the public signals."""
    bad = copy.deepcopy(doc)
    for key, value in fields.items():
        bad[key] = value
    bad["public_signals"] = [bad["ctx_hash"], bad["root"], bad["id_commit"], bad["headroom"]]
    if "headroom" in fields:
        bad["headroom_usd"] = usd(int(fields["headroom"]))
    return bad


def test_refuses_edited_proofs(real: dict[str, Any]) -> None:
    doc = real["doc"]
    more = str(int(doc["headroom"]) * 2)
    with pytest.raises(MarginVerificationError, match="Groth16 proof does not verify"):
        verify_margin_proof(_edited(doc, headroom=more))
    with pytest.raises(MarginVerificationError, match="Groth16 proof does not verify"):
        verify_margin_proof(_edited(doc, root=str(int(doc["root"]) ^ 1)))
    with pytest.raises(MarginVerificationError, match="Groth16 proof does not verify"):
        verify_margin_proof(_edited(doc, id_commit=str(id_commitment("bob", 1))))
    # Stated values that differ from the proven signals.
    with pytest.raises(MarginVerificationError, match="public signals"):
        verify_margin_proof({**doc, "headroom": more})
    with pytest.raises(MarginVerificationError, match="readable headroom"):
        verify_margin_proof({**doc, "headroom_usd": "2000.5"})
    with pytest.raises(MarginVerificationError, match="bundle is epoch 1"):
        verify_margin_proof({**doc, "epoch": 2}, real["bundle"])


def _bundle_copy(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("private"))
    m = json.loads((dst / "manifest.json").read_text())
    edit(m)
    (dst / "manifest.json").write_text(json.dumps(m, indent=2))
    return dst


def test_refuses_a_bundle_of_another_epoch_or_a_broken_one(
    real: dict[str, Any], tmp_path: Path
) -> None:
    doc, src = real["doc"], real["bundle"]

    def other_root(m: dict[str, Any]) -> None:
        m["root"] = str(int(m["root"]) ^ 1)

    def other_context(m: dict[str, Any]) -> None:
        m["context"]["ctx_hash"] = str(int(m["context"]["ctx_hash"]) ^ 1)

    def broken(m: dict[str, Any]) -> None:
        m["totals_commit"] = str(int(m["totals_commit"]) ^ 1)

    with pytest.raises(MarginVerificationError, match="root is not the bundle's"):
        verify_margin_proof(doc, _bundle_copy(src, tmp_path / "a", other_root))
    with pytest.raises(MarginVerificationError, match="context hash is not the bundle's"):
        verify_margin_proof(doc, _bundle_copy(src, tmp_path / "b", other_context))
    with pytest.raises(MarginVerificationError, match="the epoch bundle does not verify"):
        verify_margin_proof(doc, _bundle_copy(src, tmp_path / "c", broken))


def test_refuses_malformed_proof_files(real: dict[str, Any], tmp_path: Path) -> None:
    doc = real["doc"]
    with pytest.raises(MarginProofFormatError, match="lacks 'proof'"):
        verify_margin_proof({k: v for k, v in doc.items() if k != "proof"})
    with pytest.raises(MarginProofFormatError, match="not a field element"):
        verify_margin_proof({**doc, "root": str(P)})
    with pytest.raises(MarginProofFormatError):
        verify_margin_proof({**doc, "format": "zksolvency-inclusion/2"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MarginProofFormatError, match="invalid JSON"):
        load_margin_proof(bad)
    with pytest.raises(MarginProofFormatError, match="cannot read"):
        load_margin_proof(tmp_path / "missing.json")


def test_prove_refuses_before_any_key_work(real: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "never.json"
    with pytest.raises(HeadroomError):
        prove_account_margin(real["pkg"], account_data(real["pkg"]).headroom + 1, out)
    with pytest.raises(MarginProofError):
        prove_account_margin(_tamper(real["pkg"], "equity"), 0, out)
    assert not out.exists()


def test_refuses_a_key_other_than_the_one_the_bundle_pins(
    real: dict[str, Any], tmp_path: Path
) -> None:
    """A proof under any other margin key (a rogue setup) fails against the epoch's bundle."""
    doc, src = real["doc"], real["bundle"]

    def other_key(m: dict[str, Any]) -> None:
        entry = m["circuits"]["margin"]
        entry["vkey_json"] = m["circuits"]["batch"]["vkey_json"]
        entry["vkey_sha256"] = m["circuits"]["batch"]["vkey_sha256"]

    def no_key(m: dict[str, Any]) -> None:
        del m["circuits"]["margin"]

    with pytest.raises(MarginVerificationError, match="not the margin key the epoch's bundle"):
        verify_margin_proof(doc, _bundle_copy(src, tmp_path / "a", other_key))
    # A bundle without the margin entry is refused as a whole (its manifest is incomplete).
    with pytest.raises(MarginVerificationError, match=r"names circuits \['batch', 'solvency'\]"):
        verify_margin_proof(doc, _bundle_copy(src, tmp_path / "b", no_key))

"""Proving stage: snapshot in, epoch directory out (manifest, proofs, private user data).

Layout of an epoch directory:
  manifest.json                public: parameters, context, key hashes and vkeys, state chain,
                               root, totals, reserves, and the list of proofs with their hashes
  keys/{batch,solvency}.vkey.json
  proofs/batch_NNNNNN.{proof,public}.json, proofs/solvency.{proof,public}.json
  private/                     exchange only, never published: the epoch seed (salts and blinds
                               derive from it), the accounts' leaf data for inclusion packages,
                               and the run's fingerprint for resuming

Every write is atomic. A rerun with the same inputs skips proofs already made and checked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .atomic import read_json, sha256_file, sha256_json, write_bytes, write_json
from .context import context_json
from .keys import Keys, KeySet, build_keys, build_margin_keys
from .params import EpochParams
from .paths import js_script, repo_root
from .progress import NullReporter, Reporter
from .reserves import render_reserves
from .snapshot import Snapshot, format_amount
from .toolchain import ToolError
from .witness import EpochPlan, MarginInputs, format_value, plan_epoch

FORMAT = "zksolvency-epoch/2"


class EpochDirError(RuntimeError):
    """The output directory belongs to another run, or holds files that fail their checks."""


def _seed(out: Path) -> tuple[bytes, bool]:
    """The epoch's secret seed (salts, blinds, leaf order): the stored one, else a fresh one.

    Returns (seed, is_new); a new seed is written only once the snapshot has been planned.
    """
    path = out / "private" / "seed"
    if path.is_file():
        return bytes.fromhex(path.read_text().strip()), False
    return secrets.token_bytes(32), True


def _store_seed(out: Path, seed: bytes) -> None:
    path = out / "private" / "seed"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_bytes(path, seed.hex().encode())
    os.chmod(path, 0o600)


def _fingerprint(plan: EpochPlan, snapshot: Snapshot, reserves: tuple[int, ...], keys: Keys) -> str:
    params, epoch = plan.context.params, plan.context.epoch
    return sha256_json(
        {
            "ctx_hash": str(plan.context.ctx_hash),
            "insurance_fund": str(plan.context.inputs.insurance_fund),
            "positions": [[str(x) for x in q] for q in plan.qty],
            "assets": [[a.symbol, a.decimals, a.price_e8] for a in snapshot.assets],
            "accounts": [[a.id, list(a.equity), list(a.debt)] for a in snapshot.accounts],
            "params": params.as_dict(),
            "epoch": epoch,
            "reserves": list(reserves),
            "batch_zkey": keys.batch.zkey_sha256,
            "solvency_zkey": keys.solvency.zkey_sha256,
        }
    )


def _proof_paths(out: Path, name: str) -> tuple[Path, Path, Path]:
    d = out / "proofs"
    return d / f"{name}.proof.json", d / f"{name}.public.json", d / f"{name}.meta.json"


def _done(out: Path, name: str, input_sha: str, expected_public: list[int]) -> bool:
    """A proof counts as done if its meta matches this input and its files match their hashes."""
    proof, public, meta = _proof_paths(out, name)
    if not (proof.is_file() and public.is_file() and meta.is_file()):
        return False
    try:
        m = read_json(meta)
        pub = [int(x) for x in read_json(public)]
    except (ValueError, json.JSONDecodeError):
        return False
    return (
        m.get("input_sha256") == input_sha
        and m.get("proof_sha256") == sha256_file(proof)
        and m.get("public_sha256") == sha256_file(public)
        and pub == expected_public
    )


def _run_jobs(jobs: list[dict[str, Any]], on_done: Callable[[dict[str, Any]], None]) -> None:
    """Feed jobs to the Node driver; call on_done(result line) as each finishes."""
    cmd = ["node", str(js_script("groth16.mjs"))]
    with subprocess.Popen(
        cmd,
        cwd=repo_root(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(json.dumps({"jobs": jobs}))
        proc.stdin.close()
        for line in proc.stdout:
            res = json.loads(line)
            if not res["ok"]:
                job = jobs[res["i"]]
                raise ToolError(
                    cmd,
                    1,
                    f"{job['kind']} {job.get('name', '')}: "
                    f"{res.get('error', 'verification failed')}",
                )
            on_done(res)
        err = proc.stderr.read()
        if proc.wait() != 0:
            raise ToolError(cmd, proc.returncode, err)


def prove_epoch(
    snapshot: Snapshot,
    reserves: tuple[int, ...],
    out: Path,
    *,
    epoch: int,
    params: EpochParams,
    ptau: Path | None = None,
    reporter: Reporter | None = None,
    stats: list[dict[str, Any]] | None = None,
    margin: MarginInputs | None = None,
) -> dict[str, Any]:
    """Prove an epoch into `out` and return its manifest. Resumes an interrupted run.

    `stats`, if given, receives one record per proof made: name and witness/prove/verify seconds.
    """
    rep = reporter or NullReporter()
    # Plan first: a snapshot that cannot be proven stops here, before any key work and before
    # anything is written to `out`.
    seed, new_seed = _seed(out)
    rep.info(f"planning epoch {epoch}: {len(snapshot.accounts)} accounts")
    plan = plan_epoch(snapshot, params, epoch, reserves, seed, margin)
    rep.info(margin_summary(plan))
    keys = build_keys(params, ptau, rep)
    # The margin circuit's key goes in the bundle, so that single-account proofs made later
    # are checked against a key the epoch itself pins.
    margin_keys = build_margin_keys(params, ptau, rep)
    fingerprint = _fingerprint(plan, snapshot, reserves, keys)
    fp_path = out / "private" / "run.json"
    run_info = read_json(fp_path) if fp_path.is_file() else {}
    if run_info and run_info.get("fingerprint") != fingerprint:
        raise EpochDirError(
            f"{out} holds a run with other inputs or keys; prove into a new directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        if new_seed:
            _store_seed(out, seed)
        # A killed run can leave temporary files (never a half-written final one): clear them.
        for stale in out.rglob("*.tmp"):
            stale.unlink()
        return _prove_planned(out, plan, keys, margin_keys, fingerprint, run_info, rep, stats)


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One prove per epoch directory at a time; the OS drops the lock if the process dies."""
    (out / "private").mkdir(parents=True, exist_ok=True)
    with open(out / "private" / "lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EpochDirError(f"another prove is already running in {out}") from None
        yield


def _prove_planned(
    out: Path,
    plan: EpochPlan,
    keys: Keys,
    margin_keys: KeySet,
    fingerprint: str,
    run_info: dict[str, Any],
    rep: Reporter,
    stats: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    fp_path = out / "private" / "run.json"
    epoch = plan.context.epoch
    # The creation time is fixed at the first run, so that a resumed or repeated run writes
    # a byte-identical manifest: its hash is the bundle hash registered on-chain.
    created_at = (
        run_info.get("created_at") or dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    )
    write_json(fp_path, {"fingerprint": fingerprint, "created_at": created_at})
    _write_private(out, plan)

    inputs_dir = out / "private" / "inputs"
    jobs: list[dict[str, Any]] = []
    names = [f"batch_{k:06d}" for k in range(plan.n_batches)] + ["solvency"]
    all_inputs = [*plan.batch_inputs, plan.solvency_input()]
    publics = [plan.batch_public(k) for k in range(plan.n_batches)] + [plan.solvency_public()]
    pending: list[tuple[str, str, list[int]]] = []
    for name, inp, pub in zip(names, all_inputs, publics, strict=True):
        input_sha = sha256_json(inp)
        if _done(out, name, input_sha, pub):
            continue
        ks = keys.solvency if name == "solvency" else keys.batch
        ipath = inputs_dir / f"{name}.json"
        write_json(ipath, inp)
        proof, public, _meta = _proof_paths(out, name)
        proof.parent.mkdir(parents=True, exist_ok=True)
        jobs.append(
            {
                "kind": "prove",
                "name": name,
                "input": str(ipath),
                "wasm": str(ks.build.wasm),
                "zkey": str(ks.zkey),
                "vkey": str(ks.build.dir / "keys" / "verification_key.json"),
                "proof_out": str(proof),
                "public_out": str(public),
            }
        )
        pending.append((name, input_sha, pub))
    skipped = len(names) - len(jobs)
    if skipped:
        rep.info(f"resuming: {skipped} of {len(names)} proofs already done")
    if jobs:
        with rep.task("proving", len(jobs)) as advance:

            def finished(res: dict[str, Any]) -> None:
                i = int(res["i"])
                name, input_sha, pub = pending[i]
                if stats is not None:
                    stats.append({"name": name, **{k: res[k] for k in res if k.endswith("_s")}})
                _finish(out, name, input_sha, pub)
                os.unlink(jobs[i]["input"])  # private balances: keep no more copies than needed
                advance(1)

            _run_jobs(jobs, finished)

    manifest = _manifest(plan, keys, margin_keys, out, names, created_at)
    _write_keys(out, keys, margin_keys)
    write_json(out / "manifest.json", manifest)
    rep.info(f"epoch {epoch} proven: {plan.n_batches} batch proofs + 1 solvency proof in {out}")
    return manifest


def _finish(out: Path, name: str, input_sha: str, expected: list[int]) -> None:
    proof, public, meta = _proof_paths(out, name)
    got = [int(x) for x in read_json(public)]
    if got != expected:
        raise EpochDirError(f"{name}: public signals {got} differ from the mirror's {expected}")
    write_json(
        meta,
        {
            "input_sha256": input_sha,
            "proof_sha256": sha256_file(proof),
            "public_sha256": sha256_file(public),
        },
    )


def _write_keys(out: Path, keys: Keys, margin_keys: KeySet) -> None:
    write_json(out / "keys" / "batch.vkey.json", keys.batch.vkey)
    write_json(out / "keys" / "solvency.vkey.json", keys.solvency.vkey)
    write_json(out / "keys" / "margin.vkey.json", margin_keys.vkey)
    # The margin proving key is public: account owners prove their margin with it.
    target = out / "keys" / "margin.zkey"
    if not (target.is_file() and sha256_file(target) == margin_keys.zkey_sha256):
        write_bytes(target, margin_keys.zkey.read_bytes())


def _write_private(out: Path, plan: EpochPlan) -> None:
    """What inclusion packages need: per account its salt, balances and leaf index."""
    rows = []
    for i, (acc, salt) in enumerate(zip(plan.accounts, plan.salts, strict=True)):
        rows.append(
            json.dumps(
                {
                    "index": i,
                    "id": acc.id,
                    "salt": str(salt),
                    "equity": [str(v) for v in acc.equity],
                    "debt": [str(v) for v in acc.debt],
                    "qty": [str(v) for v in plan.qty[i]],
                },
                separators=(",", ":"),
            )
        )
    write_bytes(out / "private" / "accounts.jsonl", ("\n".join(rows) + "\n").encode())
    # The headroom distribution is the exchange's own view: quantiles of a small epoch would
    # give single accounts away, so it stays private.
    write_json(out / "private" / "margin.json", margin_stats(plan))


def margin_stats(plan: EpochPlan) -> dict[str, Any]:
    """Aggregate margin figures for the exchange (written under private/: the quantiles of a
    small epoch would give single accounts away)."""
    values = sorted(v for v, _ in plan.headrooms)
    n = len(values)

    def q(f: float) -> str:
        return format_value(values[min(n - 1, int(f * n))]) if n else "0.00"

    return {
        "accounts": n,
        "with_positions": sum(1 for qty in plan.qty if any(qty)),
        "failing": sum(1 for v in values if v < 0),
        "headroom_usd": {"p1": q(0.01), "p10": q(0.10), "p50": q(0.50), "p90": q(0.90)},
        "shortfall_usd": format_value(plan.shortfall),
        "insurance_fund_usd": format_value(plan.context.inputs.insurance_fund),
    }


def margin_summary(plan: EpochPlan) -> str:
    st = margin_stats(plan)
    h = st["headroom_usd"]
    return (
        f"margin ({'strict' if plan.context.margin.mode == 0 else 'shortfall'} mode): "
        f"{st['accounts']} accounts, {st['with_positions']} with positions, "
        f"{st['failing']} short; worst-scenario headroom p1 {h['p1']} / p10 {h['p10']} / "
        f"median {h['p50']} / p90 {h['p90']} USD; shortfall {st['shortfall_usd']} USD"
        + (f" (insurance fund {st['insurance_fund_usd']} USD)" if plan.shortfall else "")
    )


def _manifest(
    plan: EpochPlan,
    keys: Keys,
    margin_keys: KeySet,
    out: Path,
    names: list[str],
    created_at: str,
) -> dict[str, Any]:
    c = plan.context
    totals = plan.final_totals
    proofs = []
    for name in names:
        proof, public, _ = _proof_paths(out, name)
        proofs.append(
            {
                "name": name,
                "proof": str(proof.relative_to(out)),
                "public": str(public.relative_to(out)),
                "proof_sha256": sha256_file(proof),
                "public_signals": [str(x) for x in read_json(public)],
            }
        )
    dev = keys.batch.development or keys.solvency.development or margin_keys.development
    return {
        "format": FORMAT,
        "epoch": c.epoch,
        "created_at": created_at,
        "params": c.params.as_dict(),
        "context": context_json(plan),
        "accounts": len(plan.accounts),
        "batches": plan.n_batches,
        "root": str(plan.tree.root),
        "state_chain": [str(s) for s in plan.states],
        "totals_commit": str(plan.totals_commit()),
        "totals": {
            a.symbol: {
                "equity": format_amount(totals[2 * i], a.decimals),
                "debt": format_amount(totals[2 * i + 1], a.decimals),
                "net": format_amount(max(0, totals[2 * i] - totals[2 * i + 1]), a.decimals),
            }
            for i, a in enumerate(c.assets)
        },
        "totals_raw": [str(t) for t in totals],
        "reserves": render_reserves(c.assets, plan.reserves),
        "reserves_raw": [str(r) for r in plan.solvency_public()[7:]],
        "shortfall": str(plan.shortfall),
        "insurance_fund": str(c.inputs.insurance_fund),
        "circuits": {
            "batch": {
                **keys.batch.manifest_entry(),
                "vkey": "keys/batch.vkey.json",
                "vkey_json": keys.batch.vkey,
            },
            "solvency": {
                **keys.solvency.manifest_entry(),
                "vkey": "keys/solvency.vkey.json",
                "vkey_json": keys.solvency.vkey,
            },
            # not used by the epoch's proofs: the key single-account margin proofs must use
            "margin": {
                **margin_keys.manifest_entry(),
                "vkey": "keys/margin.vkey.json",
                "zkey": "keys/margin.zkey",
                "vkey_json": margin_keys.vkey,
            },
        },
        "development_setup": dev,
        "proofs": {"batches": proofs[:-1], "solvency": proofs[-1]},
    }

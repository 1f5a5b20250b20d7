"""Witness stage: the mirror computes every state of the epoch and each circuit's input JSON.

`plan_epoch` is pure computation (no files, no tools): leaves, tree, totals, the state chain and
the expected public signals of every proof. The proving stage only has to match it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .commitments import (
    context_hash,
    derive_secret,
    id_commitment,
    leaf_hash,
    state_hash,
    totals_hash,
    weight,
)
from .params import EpochParams
from .snapshot import Account, Asset, Snapshot, account_values, format_amount
from .tree import BatchedTree


class PlanError(ValueError):
    """The snapshot cannot be proven as asked: listed before any proving starts."""


@dataclass(frozen=True)
class EpochContext:
    epoch: int
    params: EpochParams
    assets: tuple[Asset, ...]  # the snapshot's assets; circuit slots past them are zero-weight
    weights: tuple[int, ...]  # one per circuit asset slot (n_assets of them)
    max_decimals: int
    ctx_hash: int


@dataclass
class EpochPlan:
    context: EpochContext
    accounts: tuple[Account, ...]
    salts: list[int]
    id_commits: list[int]
    leaves: list[int]
    tree: BatchedTree
    reserves: tuple[int, ...]
    totals_after: list[list[int]]  # totals_after[k]: interleaved totals once k batches are in
    blinds: list[int]  # blinds[k]: blind of the state after k batches (blinds[0] unused)
    states: list[int]  # states[0] = ctx_hash, states[k] after k batches
    batch_inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_batches(self) -> int:
        return self.tree.n_batches

    @property
    def final_totals(self) -> list[int]:
        return self.totals_after[-1]

    def totals_commit(self) -> int:
        return totals_hash(self.final_totals, self.context.params.tree_depth)

    def batch_public(self, k: int) -> list[int]:
        return [self.states[k], self.states[k + 1], self.context.ctx_hash]

    def solvency_public(self) -> list[int]:
        return [
            self.states[-1],
            self.context.ctx_hash,
            self.tree.root,
            self.totals_commit(),
            self.n_batches,
            *self._reserve_slots(),
        ]

    def _reserve_slots(self) -> list[int]:
        pad = self.context.params.n_assets - len(self.reserves)
        return [*self.reserves, *([0] * pad)]

    def solvency_input(self) -> dict[str, Any]:
        pub = self.solvency_public()
        out: dict[str, Any] = _strs(
            {
                "finalState": pub[0],
                "ctxHash": pub[1],
                "root": pub[2],
                "totalsCommit": pub[3],
                "batchCount": pub[4],
                "reserves": pub[5:],
                "totals": self.final_totals,
                "blind": self.blinds[-1],
            }
        )
        return out


def make_context(snapshot: Snapshot, params: EpochParams, epoch: int) -> EpochContext:
    if epoch < 1:
        raise PlanError("epochs are numbered from 1")
    if len(snapshot.assets) > params.n_assets:
        raise PlanError(
            f"the snapshot has {len(snapshot.assets)} assets but the circuits take "
            f"{params.n_assets}; choose circuits with at least that many assets"
        )
    maxdec = max(a.decimals for a in snapshot.assets)
    weights = [weight(a.price_e8, a.decimals, maxdec) for a in snapshot.assets]
    weights += [0] * (params.n_assets - len(weights))
    ctx = context_hash(epoch, params.tree_depth, params.batch_levels, weights)
    return EpochContext(epoch, params, snapshot.assets, tuple(weights), maxdec, ctx)


def _slots(values: tuple[int, ...], n: int) -> list[int]:
    return [*values, *([0] * (n - len(values)))]


def _strs(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strs(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strs(v) for v in obj]
    return str(obj)


def plan_epoch(
    snapshot: Snapshot,
    params: EpochParams,
    epoch: int,
    reserves: tuple[int, ...],
    seed: bytes,
) -> EpochPlan:
    """Everything the proofs will show, computed in Python; refuses unprovable snapshots."""
    context = make_context(snapshot, params, epoch)
    n = params.n_assets
    # Leaf order follows a keyed shuffle, so a leaf's position says nothing about where the
    # account stood in the exchange's snapshot (sign-up order, size, ...).
    accounts = tuple(sorted(snapshot.accounts, key=lambda a: derive_secret(seed, "position", a.id)))
    if len(accounts) > params.max_accounts:
        raise PlanError(
            f"{len(accounts)} accounts exceed the tree's {params.max_accounts} leaves "
            f"(tree depth {params.tree_depth}); use a deeper tree"
        )
    failing = []
    for acc in snapshot.accounts:  # in file order, for the operator
        eq_value, debt_value = account_values(snapshot, acc)
        if eq_value < debt_value:
            unit = 8 + context.max_decimals  # account_values are USD * 10^unit
            failing.append(
                f"{acc.id} (line {acc.line}) in {snapshot.source}: equity worth "
                f"{format_amount(eq_value, unit)} USD < debt worth "
                f"{format_amount(debt_value, unit)} USD"
            )
    if failing:
        head = "\n  ".join(failing[:20])
        more = f"\n  ... and {len(failing) - 20} more" if len(failing) > 20 else ""
        raise PlanError(
            f"{len(failing)} account(s) have less equity than debt at the epoch's prices; "
            f"no proof can include them:\n  {head}{more}"
        )

    salts = [derive_secret(seed, "salt", acc.id) or 1 for acc in accounts]
    id_commits = [id_commitment(acc.id, s) for acc, s in zip(accounts, salts, strict=True)]
    leaves = [
        leaf_hash(c, _slots(acc.equity, n), _slots(acc.debt, n))
        for c, acc in zip(id_commits, accounts, strict=True)
    ]
    tree = BatchedTree.build(params, leaves)

    b = params.batch_size
    totals = [0] * (2 * n)
    totals_after = [list(totals)]
    blinds = [0]
    states = [context.ctx_hash]
    plan = EpochPlan(
        context, accounts, salts, id_commits, leaves, tree, reserves, totals_after, blinds, states
    )
    for k in range(tree.n_batches):
        members = list(accounts[k * b : (k + 1) * b])
        commits = id_commits[k * b : (k + 1) * b]
        equity = [_slots(a.equity, n) for a in members]
        debt = [_slots(a.debt, n) for a in members]
        while len(equity) < b:  # padding slots: id commitment 0, zero balances
            commits = [*commits, 0]
            equity.append([0] * n)
            debt.append([0] * n)
        new_totals = list(totals)
        for eq_row, debt_row in zip(equity, debt, strict=True):
            for i in range(n):
                new_totals[2 * i] += eq_row[i]
                new_totals[2 * i + 1] += debt_row[i]
        blind = derive_secret(seed, "blind", k + 1)
        root_after = tree.root_after(k + 1)
        state = state_hash(
            context.ctx_hash, k + 1, root_after, totals_hash(new_totals, params.tree_depth), blind
        )
        plan.batch_inputs.append(
            _strs(
                {
                    "prevState": states[k],
                    "nextState": state,
                    "ctxHash": context.ctx_hash,
                    "epoch": epoch,
                    "weights": context.weights,
                    "batchIndex": k,
                    "oldRoot": tree.root_after(k),
                    "oldTotals": totals,
                    "prevBlind": blinds[k],
                    "nextBlind": blind,
                    "siblings": tree.insertion_siblings(k),
                    "idCommit": commits,
                    "equity": equity,
                    "debt": debt,
                }
            )
        )
        totals = new_totals
        totals_after.append(list(totals))
        blinds.append(blind)
        states.append(state)

    short = [
        f"{a.symbol}: liabilities {format_amount(totals[2 * i] - totals[2 * i + 1], a.decimals)}"
        f" > reserves {format_amount(reserves[i], a.decimals)}"
        for i, a in enumerate(context.assets)
        if totals[2 * i] > reserves[i] + totals[2 * i + 1]
    ]
    if short:
        raise PlanError("reserves do not cover net liabilities:\n  " + "\n  ".join(short))
    return plan

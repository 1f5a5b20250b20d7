"""Witness stage: the mirror computes every state of the epoch and each circuit's input JSON.

`plan_epoch` is pure computation (no files, no tools): leaves, tree, totals, the state chain and
the expected public signals of every proof. The proving stage only has to match it.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar, overload

import numpy as np

from .commitments import (
    RESERVE_BITS,
    RISK_SCALE,
    SHORTFALL,
    STRICT,
    UNBOUND_DOMAIN,
    VALUE_DECIMALS,
    check_domain,
    derive_secret,
    fund_bits,
    id_commitments,
    leaf_hashes_of,
    qty_code,
    secret_deriver,
    total_bits,
    totals_hash,
    weight,
)
from .field import FieldArray, P, pack
from .haircuts import (
    HaircutTable,
    default_haircuts,
    select_bracket,
    tier_rates,
    tier_weights,
)
from .haircuts import tier_widths as table_tier_widths
from .instruments import Derivatives
from .margin import MarginContext, headroom_fn
from .params import EpochParams
from .poseidon import hash_list_many, poseidon_many
from .risk import ScenarioGrid, pricing_inputs, risk_arrays, scenario_labels, to_fixed
from .snapshot import (
    Account,
    AccountTable,
    Asset,
    Snapshot,
    account_id_at,
    account_ids,
    account_values,
    amount_matrix,
    exact_sums,
    format_amount,
)
from .tree import BatchedTree


class PlanError(ValueError):
    """The snapshot cannot be proven as asked: listed before any proving starts."""


@dataclass(frozen=True)
class MarginInputs:
    """What margin needs beyond the snapshot. Without derivatives every position is zero; without
    a haircut table every asset counts at full value."""

    derivatives: Derivatives | None = None
    haircuts: HaircutTable | None = None
    # default: ScenarioGrid() sized to the circuit; none when there are no derivatives and no
    # default grid has the circuit's scenario count (a 1-scenario circuit proves spot margin)
    grid: ScenarioGrid | None = None
    mode: int = STRICT
    insurance_fund: int = 0  # value units (USD * 10^26); only shortfall mode may use it

    def __post_init__(self) -> None:
        if self.mode not in (STRICT, SHORTFALL):
            raise ValueError("mode must be STRICT or SHORTFALL")
        if self.insurance_fund < 0:
            raise ValueError("the insurance fund cannot be negative")


@dataclass(frozen=True)
class EpochContext:
    epoch: int
    params: EpochParams
    assets: tuple[Asset, ...]  # the snapshot's assets; circuit slots past them are zero-weight
    margin: MarginContext
    grid: ScenarioGrid | None  # None: no derivatives, so no scenario moves anything
    inputs: MarginInputs
    ctx_hash: int
    tier_rates: tuple[tuple[int, ...], ...] = ()  # per snapshot asset, bps, padded to n_tiers
    cap_bps: tuple[int, ...] = ()  # per snapshot asset: the exchange bracket's cap
    brackets: tuple[tuple[tuple[int | None, int], ...], ...] = ()  # per asset: (bound, cap)

    @property
    def weights(self) -> tuple[int, ...]:
        return tuple(self.margin.weights)


T = TypeVar("T")


class Reordered(Sequence[T]):
    """`base` read in the order of `order` (indices into base), without copying it."""

    def __init__(self, base: Sequence[T], order: Sequence[int]) -> None:
        self.base = base
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    @overload
    def __getitem__(self, i: int) -> T: ...

    @overload
    def __getitem__(self, i: slice) -> list[T]: ...

    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self.base[j] for j in self.order[i]]
        return self.base[self.order[i]]


class Headrooms(Sequence[tuple[int, int]]):
    """(worst value, scenario) per account: values as 32-byte signed integers and scenarios as
    16-bit ones, about 34 bytes an account instead of a tuple of two ints (~130)."""

    def __init__(self) -> None:
        self._values = bytearray()
        self._worst = array("H")

    def append(self, value: int, worst: int) -> None:
        self._values += value.to_bytes(32, "little", signed=True)
        self._worst.append(worst)

    def __len__(self) -> int:
        return len(self._worst)

    @overload
    def __getitem__(self, i: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, i: slice) -> list[tuple[int, int]]: ...

    def __getitem__(self, i: int | slice) -> tuple[int, int] | list[tuple[int, int]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]
        return int.from_bytes(self._values[32 * i : 32 * i + 32], "little", signed=True), int(
            self._worst[i]
        )


class Salts(Sequence[int]):
    """Each account's salt, derived from the epoch seed when read rather than stored."""

    def __init__(self, seed: bytes, accounts: Sequence[Account]) -> None:
        self._seed = seed
        self._accounts = accounts

    def __len__(self) -> int:
        return len(self._accounts)

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> list[int]: ...

    def __getitem__(self, i: int | slice) -> int | list[int]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return salt_for(self._seed, self._accounts[i].id)


def salt_for(seed: bytes, account_id: str) -> int:
    """The account's salt: never 0, which would make its id commitment a padding slot's."""
    return derive_secret(seed, "salt", account_id) or 1


def salts_for(seed: bytes, account_ids: Iterable[str]) -> list[int]:
    """[salt_for(seed, i) for i in account_ids], with the HMAC key set up once."""
    derive = secret_deriver(seed, "salt")
    return [derive(i) or 1 for i in account_ids]


def leaf_order(accounts: Sequence[Account], seed: bytes) -> np.ndarray:
    """Indices of `accounts` sorted by the keyed shuffle derive_secret(seed, "position", id),
    as four 64-bit columns (most significant first) rather than 10^7 Python ints."""
    keys = bytearray()
    position = secret_deriver(seed, "position")
    for account_id in account_ids(accounts):
        keys += position(account_id).to_bytes(32, "big")
    cols = np.frombuffer(bytes(keys), dtype=">u8").reshape(-1, 4)
    order: np.ndarray = np.lexsort(cols.T[::-1])  # lexsort's last key is the primary one
    return order


@dataclass
class EpochPlan:
    context: EpochContext
    accounts: Sequence[Account]
    salts: Sequence[int]
    id_commits: Sequence[int]
    leaves: Sequence[int]
    tree: BatchedTree
    declared: tuple[int, ...]  # reserves the chain cannot see, per snapshot asset
    totals_after: list[list[int]]  # totals_after[k]: interleaved totals once k batches are in
    blinds: list[int]  # blinds[k]: blind of the state after k batches (blinds[0] unused)
    states: list[int]  # states[0] = ctx_hash, states[k] after k batches
    qty: list[list[int]] = field(default_factory=list)  # per account (tree order), padded
    headrooms: Sequence[tuple[int, int]] = field(default_factory=list)  # (worst value, scenario)
    shortfalls: list[int] = field(default_factory=list)
    shortfall_after: list[int] = field(default_factory=list)  # per state, like totals_after
    roots: list[int] = field(default_factory=list)  # roots[k]: tree root once k batches are in
    # registry_domain(chain id, registry) the solvency proof is bound to; 0 = no registry yet
    domain: int = UNBOUND_DOMAIN
    # reserves the registry reads on-chain at finalize, per snapshot asset; () = none
    verified: tuple[int, ...] = ()
    # the custody addresses and signatures those were read from (onchain.Custody.as_json)
    custody: dict[str, Any] | None = None

    @property
    def shortfall(self) -> int:
        return self.shortfall_after[-1]

    @property
    def n_batches(self) -> int:
        return self.tree.n_batches

    @property
    def final_totals(self) -> list[int]:
        return self.totals_after[-1]

    def totals_commit(self) -> int:
        return totals_hash(self.final_totals, self.context.params.tree_depth)

    @property
    def batch_inputs(self) -> BatchInputs:
        """Every batch proof's input JSON, built one at a time as it is read."""
        return BatchInputs(self)

    def batch_input(self, k: int) -> dict[str, Any]:
        """Batch k's input JSON (the circuit's signal names, values as decimal strings)."""
        if not 0 <= k < self.n_batches:
            raise IndexError(f"batch {k} is outside 0..{self.n_batches - 1}")
        params = self.context.params
        n, b = params.n_assets, params.batch_size
        equity, debt = self._member_amounts(k * b, (k + 1) * b)
        pad = b - len(equity)  # padding slots: id commitment 0, zero balances and positions
        zeros, no_position = ["0"] * n, ["0"] * params.n_instruments
        out: dict[str, Any] = _strs(
            {
                "prevState": self.states[k],
                "nextState": self.states[k + 1],
                "ctxHash": self.context.ctx_hash,
                "batchIndex": k,
                "oldRoot": self.roots[k],
                "oldTotals": self.totals_after[k],
                "oldShortfall": self.shortfall_after[k],
                "prevBlind": self.blinds[k],
                "nextBlind": self.blinds[k + 1],
                "siblings": self.tree.insertion_siblings(k),
                "idCommit": [*self.id_commits[k * b : (k + 1) * b], *[0] * pad],
                "shortfall": [*self.shortfalls[k * b : (k + 1) * b], *[0] * pad],
            }
        )
        out["equity"] = equity + [zeros] * pad
        out["debt"] = debt + [zeros] * pad
        out["qty"] = [
            [str(qty_code(x)) for x in q] if any(q) else no_position
            for q in self.qty[k * b : (k + 1) * b]
        ] + [no_position] * pad
        # The context preimage is the same in every batch: converted once, shared (read-only).
        return {**out, **self._context_strs}

    def _member_amounts(self, start: int, stop: int) -> tuple[list[list[str]], list[list[str]]]:
        """Equity and debt of the accounts at tree positions start..stop, as decimal strings
        padded to the circuit's asset slots: read from the snapshot's amounts matrix when it
        has one, rather than building an Account per member."""
        n = self.context.params.n_assets
        accounts = self.accounts
        if isinstance(accounts, Reordered) and isinstance(accounts.base, AccountTable):
            rows = accounts.base.amount_matrix()[accounts.order[start:stop]]
            a = accounts.base.n_assets
            pad = ["0"] * (n - a)
            cells = rows.astype(str).tolist()  # uint64 to decimal text, exact
            return [r[:a] + pad for r in cells], [r[a:] + pad for r in cells]
        members = accounts[start:stop]
        return (
            [list(map(str, _slots(m.equity, n))) for m in members],
            [list(map(str, _slots(m.debt, n))) for m in members],
        )

    @cached_property
    def _context_strs(self) -> dict[str, Any]:
        ctx: dict[str, Any] = _strs(self.context.margin.circuit_inputs(self.context.epoch))
        return ctx

    def batch_public(self, k: int) -> list[int]:
        return [self.states[k], self.states[k + 1], self.context.ctx_hash]

    def solvency_public(self) -> list[int]:
        return [
            self.states[-1],
            self.context.ctx_hash,
            self.tree.root,
            self.totals_commit(),
            self.n_batches,
            self.shortfall,
            self.context.inputs.insurance_fund,
            self.context.epoch,
            self.domain,
            *self.context.margin.weights,
            *self.verified_slots,
            *self.declared_slots,
            int(self.verified_only),
        ]

    @property
    def verified_slots(self) -> list[int]:
        """Verified reserves for every asset slot of the circuit (padding slots hold 0)."""
        return _slots(self.verified, self.context.params.n_assets)

    @property
    def declared_slots(self) -> list[int]:
        return _slots(self.declared, self.context.params.n_assets)

    @property
    def verified_only(self) -> bool:
        """Whether verified reserves alone cover every asset's net liabilities."""
        return covered_by(self.final_totals, self.verified_slots)

    def solvency_input(self) -> dict[str, Any]:
        pub = self.solvency_public()
        out: dict[str, Any] = _strs(
            {
                "finalState": pub[0],
                "ctxHash": pub[1],
                "root": pub[2],
                "totalsCommit": pub[3],
                "batchCount": pub[4],
                "shortfall": pub[5],
                "insuranceFund": pub[6],
                **self.context.margin.circuit_inputs(self.context.epoch),
                "epoch": pub[7],
                "domain": pub[8],
                "verified": self.verified_slots,
                "declared": self.declared_slots,
                "verifiedOnly": pub[-1],
                "totals": self.final_totals,
                "blind": self.blinds[-1],
            }
        )
        return out


class BatchInputs(Sequence[dict[str, Any]]):
    """A plan's batch inputs as a read-only sequence, each built on access."""

    def __init__(self, plan: EpochPlan) -> None:
        self._plan = plan

    def __len__(self) -> int:
        return self._plan.n_batches

    @overload
    def __getitem__(self, k: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, k: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, k: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(k, slice):
            return [self._plan.batch_input(i) for i in range(*k.indices(len(self)))]
        return self._plan.batch_input(k if k >= 0 else k + len(self))


_HASH_CHUNK = 1 << 16  # accounts hashed per step of plan_epoch: bounds the transient ints


def _grid_for(
    params: EpochParams, grid: ScenarioGrid | None, derivatives: Derivatives | None
) -> ScenarioGrid | None:
    if grid is None:
        steps, rest = divmod(params.n_scenarios - 4, 4)
        if (rest or steps < 1) and derivatives is None:
            return None  # nothing to price: the risk arrays are zero whatever the count
        if rest or steps < 1:
            raise PlanError(
                f"the circuits take {params.n_scenarios} scenarios, which no default grid has "
                "(4k + 4 for k price steps); pass a scenario grid"
            )
        grid = ScenarioGrid(price_steps=steps)
    if grid.n_scenarios != params.n_scenarios:
        raise PlanError(
            f"the scenario grid has {grid.n_scenarios} scenarios but the circuits take "
            f"{params.n_scenarios}"
        )
    return grid


def risk_matrix(
    derivatives: Derivatives | None, params: EpochParams, grid: ScenarioGrid | None
) -> list[list[int]]:
    """L[i][s] = floor(R[i][s] * 10^18) per instrument slot: value units per 10^-8 contract."""
    rows: list[list[int]] = []
    if derivatives is not None:
        assert grid is not None, "_grid_for gives a grid whenever there are derivatives"
        if len(derivatives.instruments) > params.n_instruments:
            raise PlanError(
                f"the derivatives list {len(derivatives.instruments)} instruments but the "
                f"circuits take {params.n_instruments}; choose circuits with more instruments"
            )
        instruments, market, as_of = pricing_inputs(derivatives)
        rows = to_fixed(risk_arrays(instruments, market, grid, as_of), RISK_SCALE)
    zero = [0] * params.n_scenarios
    return rows + [list(zero) for _ in range(params.n_instruments - len(rows))]


def exchange_totals(snapshot: Snapshot) -> list[int]:
    """Total equity per asset over all accounts: the figure the haircut caps are chosen by."""
    n = len(snapshot.assets)
    return [int(x) for x in exact_sums(amount_matrix(snapshot.accounts)[:, :n])]


def make_context(
    snapshot: Snapshot, params: EpochParams, epoch: int, inputs: MarginInputs | None = None
) -> EpochContext:
    if epoch < 1:
        raise PlanError("epochs are numbered from 1")
    inputs = inputs or MarginInputs()
    if len(snapshot.assets) > params.n_assets:
        raise PlanError(
            f"the snapshot has {len(snapshot.assets)} assets but the circuits take "
            f"{params.n_assets}; choose circuits with at least that many assets"
        )
    if inputs.mode == STRICT and inputs.insurance_fund:
        raise PlanError("an insurance fund is only used in shortfall mode")
    if inputs.insurance_fund >= 1 << fund_bits(
        params.tree_depth, params.n_assets, params.n_instruments
    ):
        raise PlanError("the insurance fund is too large for the circuits")
    grid = _grid_for(params, inputs.grid, inputs.derivatives)
    table = inputs.haircuts or default_haircuts(snapshot.assets)
    k = params.n_tiers
    totals = exchange_totals(snapshot)
    weights, tws, widths, caps = [], [], [], []
    rates, cap_rates, brackets = [], [], []
    try:
        for asset, total in zip(snapshot.assets, totals, strict=True):
            w = weight(asset.price_e8, asset.decimals)
            cap_bps, cap_limit = select_bracket(table, asset, total, params.tree_depth)
            entry = table.entry(asset)
            rates.append(tuple(tier_rates(table, asset, k)))
            cap_rates.append(cap_bps)
            brackets.append(tuple(zip(entry.bounds, entry.caps_bps, strict=True)))
            weights.append(w)
            tws.append(tier_weights(w, list(rates[-1]), cap_bps))
            widths.append(table_tier_widths(table, asset, k))
            caps.append(cap_limit)
    except ValueError as exc:
        raise PlanError(str(exc)) from exc
    for _ in range(params.n_assets - len(snapshot.assets)):
        weights.append(0)
        tws.append([0] * k)
        widths.append([0] * (k - 1))
        caps.append(0)
    margin = MarginContext(
        inputs.mode, weights, tws, widths, caps, risk_matrix(inputs.derivatives, params, grid)
    )
    ctx = margin.hash(epoch, params.tree_depth, params.batch_levels)
    return EpochContext(
        epoch,
        params,
        snapshot.assets,
        margin,
        grid,
        inputs,
        ctx,
        tuple(rates),
        tuple(cap_rates),
        tuple(brackets),
    )


def format_value(value: int) -> str:
    """A value (USD * 10^26) as USD with cents, rounded toward zero."""
    cents = abs(value) // 10 ** (VALUE_DECIMALS - 2)
    sign = "-" if value < 0 and cents else ""
    return f"{sign}{cents // 100:,}.{cents % 100:02d}"


def _listing(lines: list[str], limit: int = 20) -> str:
    head = "\n  ".join(lines[:limit])
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"\n  {head}{more}" if lines else ""


def _slots(values: tuple[int, ...], n: int) -> list[int]:
    return [*values, *([0] * (n - len(values)))]


def covered_by(totals: Sequence[int], reserves: Sequence[int]) -> bool:
    """The solvency circuit's verifiedOnly: equity_i <= reserves_i + debt_i for every asset, with
    totals interleaved (equity_0, debt_0, equity_1, ...)."""
    return all(totals[2 * i] <= r + totals[2 * i + 1] for i, r in enumerate(reserves))


def _strs(obj: Any) -> Any:
    """Ints as decimal strings at any depth (JSON numbers would lose precision in Node)."""
    t = type(obj)
    if t is int:
        # signed risk entries: the field element p - |x|
        return str(obj) if obj >= 0 else str(obj % P)
    if t is list or t is tuple:
        if all(type(v) is int and v >= 0 for v in obj):  # most lists: flat, non-negative
            return list(map(str, obj))
        return [_strs(v) for v in obj]
    if t is dict:
        return {k: _strs(v) for k, v in obj.items()}
    return str(obj)


def _positions(
    snapshot: Snapshot, inputs: MarginInputs, params: EpochParams
) -> dict[str, list[int]]:
    d = inputs.derivatives
    if d is None:
        return {}
    known = {acc.id for acc in snapshot.accounts}
    strays = sorted(set(d.positions) - known)
    if strays:
        raise PlanError(f"positions name accounts that are not in the snapshot: {strays[:10]}")
    pad = [0] * (params.n_instruments - len(d.instruments))
    return {a: [*q, *pad] for a, q in d.positions.items()}


def _tree_rows(m: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows `idx` of the amounts matrix (equity columns, then debt) with their columns in the
    circuits' interleaved order: equity of asset 0, its debt, asset 1, ..."""
    k = m.shape[1] // 2
    cols = np.array([j // 2 + (k if j % 2 else 0) for j in range(2 * k)], dtype=np.intp)
    rows: np.ndarray = m[np.ix_(idx, cols)]
    return rows


def _batch_sums(m: np.ndarray, order: np.ndarray, b: int, n: int) -> Iterator[list[int]]:
    """Per batch of `b` accounts in `order` (tree order), the interleaved sums over `n` asset
    slots, exact; the batches' rows are gathered a chunk at a time."""
    per_chunk = max(1, _HASH_CHUNK // b) * b
    for start in range(0, len(order), per_chunk):
        rows = _tree_rows(m, order[start : start + per_chunk])
        pad = -len(rows) % b
        if pad:
            rows = np.vstack([rows, np.zeros((pad, rows.shape[1]), dtype=np.uint64)])
        for sums in exact_sums(rows.reshape(-1, b, rows.shape[1]), axis=1).tolist():
            yield [*sums, *[0] * (2 * n - len(sums))]


def _not_covered(snapshot: Snapshot, j: int, unit_decimals: int) -> str:
    acc = snapshot.accounts[j]
    eq_value, debt_value = account_values(snapshot, acc)
    unit = 8 + unit_decimals  # account_values' unit
    return (
        f"{acc.id} (line {acc.line}) in {snapshot.source}: equity worth "
        f"{format_amount(eq_value, unit)} USD < debt worth {format_amount(debt_value, unit)} USD"
    )


def _hash_leaves(
    snapshot: Snapshot,
    m: np.ndarray,
    order: np.ndarray,
    seed: bytes,
    n: int,
    positions: dict[str, list[int]],
    no_position: list[int],
) -> tuple[FieldArray, FieldArray, list[list[int]]]:
    """Id commitments and leaves in tree order (`order`), and each account's quantities.

    Read from the amounts matrix `m` rather than built accounts, a chunk at a time, and kept
    32 bytes an entry. (Hashing these on a second thread while the margin pass runs was
    measured 50 % slower: the two threads' Python steps queue for the GIL.)"""
    k_assets = len(snapshot.assets)
    qty: list[list[int]] = [no_position] * len(order)
    commit_bytes, leaf_bytes = bytearray(), bytearray()
    for start in range(0, len(order), _HASH_CHUNK):
        idx = order[start : start + _HASH_CHUNK]
        ids = [account_id_at(snapshot.accounts, i) for i in idx.tolist()]
        if positions:
            qty[start : start + len(idx)] = [positions.get(i, no_position) for i in ids]
        amounts = np.zeros((len(idx), 2 * n), dtype=np.uint64)  # padding slots stay zero
        amounts[:, : 2 * k_assets] = _tree_rows(m, idx)
        codes = [[qty_code(x) for x in q] for q in qty[start : start + len(idx)]]
        commits = id_commitments(ids, salts_for(seed, ids))
        commit_bytes.extend(FieldArray.of(commits).tobytes())
        leaf_bytes.extend(FieldArray.of(leaf_hashes_of(commits, amounts, codes)).tobytes())
    return FieldArray(commit_bytes), FieldArray(leaf_bytes), qty


def plan_epoch(
    snapshot: Snapshot,
    params: EpochParams,
    epoch: int,
    reserves: tuple[int, ...],
    seed: bytes,
    margin: MarginInputs | None = None,
    domain: int = UNBOUND_DOMAIN,
    verified: tuple[int, ...] = (),
) -> EpochPlan:
    """Everything the proofs will show, computed in Python; refuses unprovable snapshots.

    `reserves` are the declared reserves (what the chain cannot see) and `verified` those the
    registry reads from custody addresses (none when empty), both per snapshot asset at its scale.
    `domain` (commitments.registry_domain) names the registry the solvency proof is for."""
    check_domain(domain)
    verified = verified or (0,) * len(snapshot.assets)
    for what, values in (("reserves", reserves), ("verified reserves", verified)):
        if len(values) != len(snapshot.assets) or not all(
            0 <= v < 1 << RESERVE_BITS for v in values
        ):
            raise PlanError(
                f"{what}: need {len(snapshot.assets)} amounts below 2^{RESERVE_BITS}, got {values}"
            )
    context = make_context(snapshot, params, epoch, margin)
    inputs = context.inputs
    n = params.n_assets
    positions = _positions(snapshot, inputs, params)
    no_position = [0] * params.n_instruments
    if len(snapshot.accounts) > params.max_accounts:
        raise PlanError(
            f"{len(snapshot.accounts)} accounts exceed the tree's {params.max_accounts} leaves "
            f"(tree depth {params.tree_depth}); use a deeper tree"
        )
    m = amount_matrix(snapshot.accounts)
    order, by_file, short_at = _order_and_margin(snapshot, context, m, seed, positions, no_position)
    accounts = Reordered(snapshot.accounts, order)
    tree_order = np.frombuffer(order, dtype=np.int64)
    id_commits, all_leaves, qty = _hash_leaves(
        snapshot, m, tree_order, seed, n, positions, no_position
    )
    tree = BatchedTree.build(params, all_leaves)
    salts = Salts(seed, accounts)

    plan = EpochPlan(
        context,
        accounts,
        salts,
        id_commits,
        all_leaves,
        tree,
        reserves,
        [[0] * (2 * n)],  # totals_after[0]
        [0],  # blinds[0], unused
        [context.ctx_hash],  # states[0]
    )
    plan.domain = domain
    plan.verified = verified
    plan.qty = qty
    plan.headrooms = Reordered(by_file, order)
    plan.shortfalls = (
        [short_at.get(j, 0) for j in order.tolist()]
        if inputs.mode == SHORTFALL and short_at
        else [0] * len(accounts)
    )
    return _chain_states(plan, m, tree_order, seed)


def _order_and_margin(
    snapshot: Snapshot,
    context: EpochContext,
    m: np.ndarray,
    seed: bytes,
    positions: dict[str, list[int]],
    no_position: list[int],
) -> tuple[array[int], Headrooms, dict[int, int]]:
    """The leaf order, then one pass in file order (the operator's) over the amounts, without
    building accounts: equity against debt at the epoch's prices, then the margin rule.
    Returns the order, each account's headroom (file order) and the shortfalls by file index;
    raises PlanError for an account that cannot be proven."""
    inputs, mctx, params = context.inputs, context.margin, context.params
    # Leaf order follows a keyed shuffle, so a leaf's position says nothing about where the
    # account stood in the exchange's snapshot (sign-up order, size, ...).
    order = array("q")
    order.frombytes(leaf_order(snapshot.accounts, seed).astype(np.int64).tobytes())
    failing: list[str] = []
    by_file = Headrooms()
    margin_failing: list[str] = []
    short_at: dict[int, int] = {}  # file index -> shortfall, for the accounts short of margin
    labels = scenario_labels(context.grid, params.n_scenarios)
    top = max(a.decimals for a in snapshot.assets)
    mult = [a.price_e8 * 10 ** (top - a.decimals) for a in snapshot.assets]
    margin_of = headroom_fn(mctx)
    ids = iter(account_ids(snapshot.accounts)) if positions else None
    k_assets = len(snapshot.assets)
    for start in range(0, len(snapshot.accounts), _HASH_CHUNK):
        for j, row in enumerate(m[start : start + _HASH_CHUNK].tolist(), start):
            equity, debt = row[:k_assets], row[k_assets:]
            q = positions.get(next(ids), no_position) if ids is not None else no_position
            if sum(map(operator.mul, equity, mult)) < sum(map(operator.mul, debt, mult)):
                failing.append(_not_covered(snapshot, j, top))
                continue
            value, worst = margin_of(equity, debt, q)
            by_file.append(value, worst)
            if value < 0:
                short_at[j] = -value
                acc = snapshot.accounts[j]
                margin_failing.append(
                    f"{acc.id} (line {acc.line}) in {snapshot.source}: short by "
                    f"{format_value(-value)} USD in scenario {worst} ({labels[worst]})"
                )
    if failing:
        raise PlanError(
            f"{len(failing)} account(s) have less equity than debt at the epoch's prices; "
            f"no proof can include them:" + _listing(failing)
        )
    if margin_failing and inputs.mode == STRICT:
        raise PlanError(
            f"{len(margin_failing)} account(s) fail the margin rule (strict mode); fix them or "
            f"prove in shortfall mode with an insurance fund:" + _listing(margin_failing)
        )
    total_shortfall = sum(short_at.values())
    if total_shortfall > inputs.insurance_fund:
        raise PlanError(
            f"the accounts' total margin shortfall {format_value(total_shortfall)} USD exceeds "
            f"the insurance fund {format_value(inputs.insurance_fund)} USD:"
            + _listing(margin_failing)
        )
    return order, by_file, short_at


def _chain_states(plan: EpochPlan, m: np.ndarray, tree_order: np.ndarray, seed: bytes) -> EpochPlan:
    """The roots, totals, shortfalls, blinds and states after every batch; then the reserves
    check against the final totals."""
    context, tree = plan.context, plan.tree
    params, n, b = context.params, context.params.n_assets, context.params.batch_size
    totals = [0] * (2 * n)
    totals_after, blinds, states = plan.totals_after, plan.blinds, plan.states
    reserves, verified = plan.declared, plan.verified
    plan.shortfall_after = [0]
    plan.roots = tree.roots_after()
    # Only the chain of states is computed here; each batch's input JSON is built when it is
    # needed (EpochPlan.batch_input), so that a large epoch never holds them all.
    # state_k = Poseidon(ctx, k, root_k, TotalsHash(totals_k), shortfall_k, blind_k) holds no
    # earlier state, so every totals hash, then every state, is one batched hash (as
    # commitments.totals_hash and state_hash compute them one at a time).
    sums = _batch_sums(m, tree_order, b, n)
    bits = total_bits(params.tree_depth)
    blind_of = secret_deriver(seed, "blind")
    for first in range(1, tree.n_batches + 1, _HASH_CHUNK):  # a chunk at a time: bounded rows
        last = min(tree.n_batches, first + _HASH_CHUNK - 1)
        packed = []
        for k in range(first, last + 1):
            totals = [t + x for t, x in zip(totals, next(sums), strict=True)]
            totals_after.append(totals)
            packed.append(pack(totals, bits))
            plan.shortfall_after.append(
                plan.shortfall_after[k - 1] + sum(plan.shortfalls[(k - 1) * b : k * b])
            )
            blinds.append(blind_of(k))
        rows = [
            [context.ctx_hash, k, plan.roots[k], th, plan.shortfall_after[k], blinds[k]]
            for k, th in enumerate(hash_list_many(packed), first)
        ]
        states.extend(poseidon_many(rows))

    held = [v + d for v, d in zip(verified, reserves, strict=True)]
    short = [
        f"{a.symbol}: liabilities {format_amount(totals[2 * i] - totals[2 * i + 1], a.decimals)}"
        f" > reserves {format_amount(held[i], a.decimals)}"
        + (f" (verified {format_amount(verified[i], a.decimals)})" if verified[i] else "")
        for i, a in enumerate(context.assets)
        if totals[2 * i] > held[i] + totals[2 * i + 1]
    ]
    if short:
        raise PlanError("reserves do not cover net liabilities:\n  " + "\n  ".join(short))
    return plan

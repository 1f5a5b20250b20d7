pragma circom 2.1.0;

include "circomlib/circuits/bitify.circom";
include "circomlib/circuits/comparators.circom";
include "lib/account.circom";
include "lib/constants.circom";
include "lib/margin.circom";
include "lib/merkle.circom";
include "lib/range.circom";
include "lib/state.circom";

// BatchSolvency(BATCH_LEVELS, TREE_DEPTH, N_ASSETS, N_INSTR, N_SCEN, N_TIERS): one batch of
// 2^BATCH_LEVELS accounts with N_INSTR derivative positions each, margined under N_SCEN
// scenarios with N_TIERS haircut tiers per asset (docs/margin-design.md).
//
// Public:  prevState  state before this batch (the context hash itself for batch 0)
//          nextState  state after it
//          ctxHash    the epoch's public context (shape, mode, prices, haircuts, risk arrays)
// Private: the context preimage (epoch, mode, weights, tierWeights, tierWidths, capLimit, risk)
//          batchIndex, oldRoot, oldTotals[2N], oldShortfall, prevBlind: opened against prevState
//          siblings[TREE_DEPTH - BATCH_LEVELS]: path of this batch's subtree slot
//          idCommit[B], equity[B][N], debt[B][N], qty[B][P], shortfall[B]: the accounts;
//          nextBlind (the haircut tiers are filled in-circuit, so no split is an input)
//
// Proves:  every account's amounts are < 2^64, its equity value >= its debt value at the
//          context's weights, and it meets the margin rule in every scenario (plus its declared
//          shortfall, which must be 0 in strict mode); the slot batchIndex was empty in oldRoot
//          and holds exactly these leaves in the new root; totals grow by exactly this batch's
//          sums with no wrap mod p, and the shortfall total by the batch's shortfalls;
//          nextState = StateHash(ctx, batchIndex + 1, newRoot, TotalsHash(newTotals),
//          newShortfall, nextBlind).
// Batch 0 must start from the empty tree, zero totals and zero shortfall, with
// prevState = ctxHash, so the chain cannot begin from a made-up state and batches cannot be
// skipped, reordered or repeated.
template BatchSolvency(BATCH_LEVELS, TREE_DEPTH, N_ASSETS, N_INSTR, N_SCEN, N_TIERS) {
    assert(BATCH_LEVELS >= 0);
    assert(TREE_DEPTH > BATCH_LEVELS && TREE_DEPTH <= 32);
    assert(N_ASSETS >= 1);
    var B = 1 << BATCH_LEVELS;
    var UPPER = TREE_DEPTH - BATCH_LEVELS;
    var WEIGHT_BITS = 128;
    var TOTAL_BITS = 64 + TREE_DEPTH;
    var N_TOTALS = 2 * N_ASSETS;
    var MARGIN_BITS = marginBits(N_ASSETS, N_INSTR);

    signal input prevState;
    signal input nextState;
    signal input ctxHash;

    signal input epoch;
    signal input mode;
    signal input weights[N_ASSETS];
    signal input tierWeights[N_ASSETS][N_TIERS];
    signal input tierWidths[N_ASSETS][N_TIERS - 1];
    signal input capLimit[N_ASSETS];
    signal input risk[N_INSTR][N_SCEN];
    signal input batchIndex;
    signal input oldRoot;
    signal input oldTotals[N_TOTALS];
    signal input oldShortfall;
    signal input prevBlind;
    signal input nextBlind;
    signal input siblings[UPPER];
    signal input idCommit[B];
    signal input equity[B][N_ASSETS];
    signal input debt[B][N_ASSETS];
    signal input qty[B][N_INSTR];
    signal input shortfall[B];

    // Context: the prices, haircuts and risk arrays used below are the published ones.
    component ctx = ContextHash(TREE_DEPTH, BATCH_LEVELS, N_ASSETS, N_INSTR, N_SCEN, N_TIERS);
    ctx.epoch <== epoch;
    ctx.mode <== mode;
    for (var a = 0; a < N_ASSETS; a++) {
        ctx.weights[a] <== weights[a];
        ctx.capLimit[a] <== capLimit[a];
        for (var t = 0; t < N_TIERS; t++) {
            ctx.tierWeights[a][t] <== tierWeights[a][t];
        }
        for (var t = 0; t < N_TIERS - 1; t++) {
            ctx.tierWidths[a][t] <== tierWidths[a][t];
        }
    }
    for (var i = 0; i < N_INSTR; i++) {
        for (var s = 0; s < N_SCEN; s++) {
            ctx.risk[i][s] <== risk[i][s];
        }
    }
    ctx.out === ctxHash;

    // Previous state. For batch 0 it is ctxHash, and the tree, totals and shortfall start empty.
    component isFirst = IsZero();
    isFirst.in <== batchIndex;
    component oldTotalsHash = TotalsHash(N_TOTALS, TOTAL_BITS);
    for (var i = 0; i < N_TOTALS; i++) {
        oldTotalsHash.totals[i] <== oldTotals[i];
        isFirst.out * oldTotals[i] === 0;
    }
    isFirst.out * oldShortfall === 0;
    component opened = StateHash();
    opened.ctx <== ctxHash;
    opened.batchCount <== batchIndex;
    opened.root <== oldRoot;
    opened.totalsHash <== oldTotalsHash.out;
    opened.shortfall <== oldShortfall;
    opened.blind <== prevBlind;
    // prevState = isFirst ? ctxHash : opened.out
    prevState - opened.out === isFirst.out * (ctxHash - opened.out);
    isFirst.out * (oldRoot - EMPTY_NODE(TREE_DEPTH)) === 0;

    // Accounts: range checks, coverage, margin, leaves and per-asset batch sums.
    component acct[B];
    component margin[B];
    component shortRange[B];
    var eqSum[N_ASSETS];
    var debtSum[N_ASSETS];
    for (var i = 0; i < N_ASSETS; i++) {
        eqSum[i] = 0;
        debtSum[i] = 0;
    }
    var shortSum = 0;
    component subtree = SubtreeRoot(BATCH_LEVELS);
    for (var a = 0; a < B; a++) {
        acct[a] = AccountLeaf(N_ASSETS, N_INSTR, WEIGHT_BITS);
        acct[a].idCommit <== idCommit[a];
        for (var i = 0; i < N_ASSETS; i++) {
            acct[a].equity[i] <== equity[a][i];
            acct[a].debt[i] <== debt[a][i];
            acct[a].weights[i] <== weights[i];
            eqSum[i] += equity[a][i];
            debtSum[i] += debt[a][i];
        }
        for (var i = 0; i < N_INSTR; i++) {
            acct[a].qty[i] <== qty[a][i];
        }
        subtree.leaves[a] <== acct[a].leaf;

        // A shortfall is bounded, and only shortfall mode may declare one.
        shortRange[a] = RangeCheck(MARGIN_BITS);
        shortRange[a].in <== shortfall[a];
        (1 - mode) * shortfall[a] === 0;
        shortSum += shortfall[a];

        margin[a] = Margin(N_ASSETS, N_INSTR, N_SCEN, N_TIERS);
        margin[a].debtValue <== acct[a].debtValue;
        margin[a].magSum <== acct[a].magSum;
        margin[a].shortfall <== shortfall[a];
        margin[a].floor <== 0;
        for (var i = 0; i < N_ASSETS; i++) {
            margin[a].equity[i] <== equity[a][i];
            for (var t = 0; t < N_TIERS; t++) {
                margin[a].tierWeights[i][t] <== tierWeights[i][t];
            }
            for (var t = 0; t < N_TIERS - 1; t++) {
                margin[a].tierWidths[i][t] <== tierWidths[i][t];
            }
        }
        for (var i = 0; i < N_INSTR; i++) {
            margin[a].q[i] <== acct[a].q[i];
            for (var s = 0; s < N_SCEN; s++) {
                margin[a].risk[i][s] <== risk[i][s];
            }
        }
    }

    // Tree: the slot at batchIndex was an empty subtree in oldRoot and now holds this batch.
    // Num2Bits(UPPER) makes the path bits boolean and batchIndex < 2^UPPER.
    component slot = Num2Bits(UPPER);
    slot.in <== batchIndex;
    component path = MerkleUpdate(UPPER);
    path.oldLeaf <== EMPTY_NODE(BATCH_LEVELS);
    path.newLeaf <== subtree.root;
    for (var l = 0; l < UPPER; l++) {
        path.pathBits[l] <== slot.out[l];
        path.siblings[l] <== siblings[l];
    }
    path.oldRoot === oldRoot;

    // Totals: each new total is range-checked. With every amount < 2^64 and at most
    // 2^TREE_DEPTH accounts an honest total never reaches 2^TOTAL_BITS, and the range check
    // makes both packings (old, opened from prevState, and new) injective, so no total can be
    // shifted into its neighbour or wrap mod p. The shortfall total needs no check: it starts
    // at 0 and grows by at most 2^TREE_DEPTH range-checked shortfalls, so it stays below
    // 2^(MARGIN_BITS + TREE_DEPTH) by induction along the chain.
    signal newTotals[N_TOTALS];
    component newRange[N_TOTALS];
    component newTotalsHash = TotalsHash(N_TOTALS, TOTAL_BITS);
    for (var i = 0; i < N_ASSETS; i++) {
        newTotals[2 * i] <== oldTotals[2 * i] + eqSum[i];
        newTotals[2 * i + 1] <== oldTotals[2 * i + 1] + debtSum[i];
    }
    for (var i = 0; i < N_TOTALS; i++) {
        newRange[i] = RangeCheck(TOTAL_BITS);
        newRange[i].in <== newTotals[i];
        newTotalsHash.totals[i] <== newTotals[i];
    }

    component next = StateHash();
    next.ctx <== ctxHash;
    next.batchCount <== batchIndex + 1;
    next.root <== path.newRoot;
    next.totalsHash <== newTotalsHash.out;
    next.shortfall <== oldShortfall + shortSum;
    next.blind <== nextBlind;
    next.out === nextState;
}

pragma circom 2.1.0;

include "circomlib/circuits/comparators.circom";
include "lib/margin.circom";
include "lib/range.circom";
include "lib/state.circom";

// Solvency(BATCH_LEVELS, TREE_DEPTH, N_ASSETS, N_INSTR, N_SCEN, N_TIERS): the epoch's closing proof.
//
// Public:  finalState    the state after the last batch (the registry holds it)
//          ctxHash       the epoch's context
//          root          the account tree root users check their inclusion against
//          totalsCommit  TotalsHash of the per-asset totals (published in the bundle)
//          batchCount    number of batches chained into finalState (at least 1)
//          shortfall     total margin shortfall of the epoch's accounts (0 in strict mode)
//          insuranceFund the fund that must cover it, in value units (USD * 10^26)
//          epoch         the epoch number inside the context (the registry supplies its own)
//          domain        (chainId << 160) | registry address: the registry supplies its own, so a
//                        proof made for another registry or chain never verifies there
//          reserves[N]   the exchange's reserves per asset, at each asset's scale
// Private: the context preimage, totals[2N] (eq_0, debt_0, eq_1, debt_1, ...), blind
//
// Proves:  ctxHash opens to a context whose every entry is in range (ContextBounds: the batch
//          circuits rely on it); finalState opens to (ctxHash, batchCount, root, totals,
//          shortfall); for every asset, total equity <= reserves + total debt (net liabilities
//          are covered) and total equity <= the asset's cap limit (the haircut cap the context
//          applies is the one for the exchange's whole holding); shortfall <= insuranceFund, and
//          a strict-mode epoch has no shortfall.
template Solvency(BATCH_LEVELS, TREE_DEPTH, N_ASSETS, N_INSTR, N_SCEN, N_TIERS) {
    assert(TREE_DEPTH > BATCH_LEVELS && TREE_DEPTH <= 32);
    assert(N_ASSETS >= 1);
    var TOTAL_BITS = 64 + TREE_DEPTH;
    var RESERVE_BITS = 128;
    var WEIGHT_BITS = 128;
    var RISK_BITS = 128;
    var FUND_BITS = marginBits(N_ASSETS, N_INSTR) + TREE_DEPTH;
    var N_TOTALS = 2 * N_ASSETS;

    signal input finalState;
    signal input ctxHash;
    signal input root;
    signal input totalsCommit;
    signal input batchCount;
    signal input shortfall;
    signal input insuranceFund;
    signal input epoch;
    signal input domain;
    signal input reserves[N_ASSETS];

    signal input mode;
    signal input weights[N_ASSETS];
    signal input tierWeights[N_ASSETS][N_TIERS];
    signal input tierWidths[N_ASSETS][N_TIERS - 1];
    signal input capLimit[N_ASSETS];
    signal input risk[N_INSTR][N_SCEN];
    signal input totals[N_TOTALS];
    signal input blind;

    // The domain takes part in no other constraint; squaring it keeps it in the system
    // explicitly (Groth16 binds public inputs anyway, but nothing should rest on that detail).
    signal domainSquared <== domain * domain;

    // At least one batch: the chain's genesis (ctxHash itself) is not a closing state.
    component none = IsZero();
    none.in <== batchCount;
    none.out === 0;

    // The context, with every bound the batch circuits rely on.
    component ctx = ContextHash(TREE_DEPTH, BATCH_LEVELS, N_ASSETS, N_INSTR, N_SCEN, N_TIERS);
    component bounds = ContextBounds(
        N_ASSETS, N_INSTR, N_SCEN, N_TIERS, WEIGHT_BITS, RISK_BITS, TOTAL_BITS
    );
    ctx.epoch <== epoch;
    ctx.mode <== mode;
    bounds.mode <== mode;
    for (var a = 0; a < N_ASSETS; a++) {
        ctx.weights[a] <== weights[a];
        bounds.weights[a] <== weights[a];
        ctx.capLimit[a] <== capLimit[a];
        bounds.capLimit[a] <== capLimit[a];
        for (var t = 0; t < N_TIERS; t++) {
            ctx.tierWeights[a][t] <== tierWeights[a][t];
            bounds.tierWeights[a][t] <== tierWeights[a][t];
        }
        for (var t = 0; t < N_TIERS - 1; t++) {
            ctx.tierWidths[a][t] <== tierWidths[a][t];
            bounds.tierWidths[a][t] <== tierWidths[a][t];
        }
    }
    for (var i = 0; i < N_INSTR; i++) {
        for (var s = 0; s < N_SCEN; s++) {
            ctx.risk[i][s] <== risk[i][s];
            bounds.risk[i][s] <== risk[i][s];
        }
    }
    ctx.out === ctxHash;

    component totRange[N_TOTALS];
    component th = TotalsHash(N_TOTALS, TOTAL_BITS);
    for (var i = 0; i < N_TOTALS; i++) {
        totRange[i] = RangeCheck(TOTAL_BITS);
        totRange[i].in <== totals[i];
        th.totals[i] <== totals[i];
    }
    th.out === totalsCommit;

    component st = StateHash();
    st.ctx <== ctxHash;
    st.batchCount <== batchCount;
    st.root <== root;
    st.totalsHash <== th.out;
    st.shortfall <== shortfall;
    st.blind <== blind;
    st.out === finalState;

    // equity_i <= reserve_i + debt_i. reserve < 2^128 and totals < 2^96, so the sum stays below
    // 2^129 and a range check of the difference is a sound comparison. Likewise
    // equity_i <= capLimit_i, both below 2^TOTAL_BITS.
    component resRange[N_ASSETS];
    component covered[N_ASSETS];
    component capped[N_ASSETS];
    for (var i = 0; i < N_ASSETS; i++) {
        resRange[i] = RangeCheck(RESERVE_BITS);
        resRange[i].in <== reserves[i];
        covered[i] = NonNegativeDifference(RESERVE_BITS + 1);
        covered[i].a <== reserves[i] + totals[2 * i + 1];
        covered[i].b <== totals[2 * i];
        capped[i] = NonNegativeDifference(TOTAL_BITS);
        capped[i].a <== capLimit[i];
        capped[i].b <== totals[2 * i];
    }

    // The shortfall is below 2^FUND_BITS by induction along the batch chain (batch.circom).
    component fundRange = RangeCheck(FUND_BITS);
    fundRange.in <== insuranceFund;
    component insured = NonNegativeDifference(FUND_BITS);
    insured.a <== insuranceFund;
    insured.b <== shortfall;
    (1 - mode) * shortfall === 0;
}

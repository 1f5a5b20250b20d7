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
//          weights[N]    the context's price of each asset per smallest unit, in value units: the
//                        registry checks them against on-chain price feeds
//          verified[N]   reserves per asset that the registry read on-chain (custody balances)
//          declared[N]   reserves per asset the chain cannot see, at each asset's scale: shown
//                        apart as unverified
//          verifiedOnly  1 iff verified reserves alone cover every asset's net liabilities
// Private: the rest of the context preimage, totals[2N] (eq_0, debt_0, eq_1, debt_1, ...), blind
//
// Proves:  ctxHash opens to a context whose every entry is in range (ContextBounds: the batch
//          circuits rely on it); finalState opens to (ctxHash, batchCount, root, totals,
//          shortfall); for every asset, total equity <= verified + declared + total debt (net
//          liabilities are covered), and verifiedOnly is whether equity <= verified + debt holds
//          for every asset and total equity <= the asset's cap limit (the haircut cap the context
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
    // Public signals follow declaration order: the registry builds them in this order.
    signal input weights[N_ASSETS];
    signal input verified[N_ASSETS];
    signal input declared[N_ASSETS];
    signal input verifiedOnly;

    signal input mode;
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

    // equity_i <= verified_i + declared_i + debt_i. Both reserves are below 2^128 and totals
    // below 2^96, so the sum stays below 2^130 and a range check of the difference is a sound
    // comparison. Likewise equity_i <= capLimit_i, both below 2^TOTAL_BITS.
    // verifiedOnly = AND_i (equity_i < verified_i + debt_i + 1); that sum is below 2^129, within
    // LessThan's bound, and a product of bits forces verifiedOnly to be a bit itself.
    component verRange[N_ASSETS];
    component decRange[N_ASSETS];
    component covered[N_ASSETS];
    component coveredVerified[N_ASSETS];
    component capped[N_ASSETS];
    signal allVerified[N_ASSETS + 1];
    allVerified[0] <== 1;
    for (var i = 0; i < N_ASSETS; i++) {
        verRange[i] = RangeCheck(RESERVE_BITS);
        verRange[i].in <== verified[i];
        decRange[i] = RangeCheck(RESERVE_BITS);
        decRange[i].in <== declared[i];
        covered[i] = NonNegativeDifference(RESERVE_BITS + 2);
        covered[i].a <== verified[i] + declared[i] + totals[2 * i + 1];
        covered[i].b <== totals[2 * i];
        coveredVerified[i] = LessThan(RESERVE_BITS + 1);
        coveredVerified[i].in[0] <== totals[2 * i];
        coveredVerified[i].in[1] <== verified[i] + totals[2 * i + 1] + 1;
        allVerified[i + 1] <== allVerified[i] * coveredVerified[i].out;
        capped[i] = NonNegativeDifference(TOTAL_BITS);
        capped[i].a <== capLimit[i];
        capped[i].b <== totals[2 * i];
    }
    verifiedOnly === allVerified[N_ASSETS];

    // The shortfall is below 2^FUND_BITS by induction along the batch chain (batch.circom).
    component fundRange = RangeCheck(FUND_BITS);
    fundRange.in <== insuranceFund;
    component insured = NonNegativeDifference(FUND_BITS);
    insured.a <== insuranceFund;
    insured.b <== shortfall;
    (1 - mode) * shortfall === 0;
}

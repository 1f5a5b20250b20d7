pragma circom 2.1.0;

include "circomlib/circuits/comparators.circom";
include "lib/range.circom";
include "lib/state.circom";

// Solvency(TREE_DEPTH, N_ASSETS): the epoch's closing proof.
//
// Public:  finalState    the state after the last batch (the registry holds it)
//          ctxHash       the epoch's context
//          root          the account tree root users check their inclusion against
//          totalsCommit  TotalsHash of the per-asset totals (published in the bundle)
//          batchCount    number of batches chained into finalState (at least 1)
//          reserves[N]   the exchange's reserves per asset, at each asset's scale
// Private: totals[2N] (eq_0, debt_0, eq_1, debt_1, ...), blind
//
// Proves:  finalState opens to (ctxHash, batchCount, root, totals) and, for every asset,
//          total equity <= reserves + total debt, i.e. net liabilities are covered.
template Solvency(TREE_DEPTH, N_ASSETS) {
    assert(TREE_DEPTH >= 1 && TREE_DEPTH <= 32);
    assert(N_ASSETS >= 1);
    var TOTAL_BITS = 64 + TREE_DEPTH;
    var RESERVE_BITS = 128;
    var N_TOTALS = 2 * N_ASSETS;

    signal input finalState;
    signal input ctxHash;
    signal input root;
    signal input totalsCommit;
    signal input batchCount;
    signal input reserves[N_ASSETS];

    signal input totals[N_TOTALS];
    signal input blind;

    // At least one batch: the chain's genesis (ctxHash itself) is not a closing state.
    component none = IsZero();
    none.in <== batchCount;
    none.out === 0;

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
    st.blind <== blind;
    st.out === finalState;

    // equity_i <= reserve_i + debt_i. reserve < 2^128 and totals < 2^96, so the sum stays below
    // 2^129 and a range check of the difference is a sound comparison.
    component resRange[N_ASSETS];
    component covered[N_ASSETS];
    for (var i = 0; i < N_ASSETS; i++) {
        resRange[i] = RangeCheck(RESERVE_BITS);
        resRange[i].in <== reserves[i];
        covered[i] = NonNegativeDifference(RESERVE_BITS + 1);
        covered[i].a <== reserves[i] + totals[2 * i + 1];
        covered[i].b <== totals[2 * i];
    }
}

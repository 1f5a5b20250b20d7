pragma circom 2.1.0;

include "circomlib/circuits/bitify.circom";
include "lib/account.circom";
include "lib/margin.circom";
include "lib/merkle.circom";
include "lib/range.circom";
include "lib/state.circom";

// AccountMarginProof(BATCH_LEVELS, TREE_DEPTH, N_ASSETS, N_INSTR, N_SCEN, N_TIERS): one
// account of a published epoch meets the margin rule with room to spare.
//
// Public:  ctxHash    the epoch's context (read from the registry's finalized epoch)
//          root       the epoch's account tree root (likewise)
//          idCommit   Poseidon(idHash, salt) of the account: its owner can open it to a lender
//          headroom   value (USD * 10^26) the account keeps above its margin requirement in its
//                     worst scenario; 0 proves plain compliance
// Private: the context preimage, the account (equity, debt, qty), leafIndex, siblings
//
// Proves:  the leaf of (idCommit, equity, debt, qty) sits at leafIndex under root; its amounts
//          are in range and its equity covers its debt; for every scenario,
//          credit - debt + P&L >= headroom (the strict rule: no shortfall). Nothing about the
//          balances, positions or the leaf's position is revealed.
// The context's bounds were checked by the epoch's solvency proof; a verifier must only accept
// ctxHash and root of a finalized epoch (AccountMarginVerifier reads both from the registry).
template AccountMarginProof(BATCH_LEVELS, TREE_DEPTH, N_ASSETS, N_INSTR, N_SCEN, N_TIERS) {
    assert(TREE_DEPTH > BATCH_LEVELS && TREE_DEPTH <= 32);
    var WEIGHT_BITS = 128;
    var MARGIN_BITS = marginBits(N_ASSETS, N_INSTR);

    signal input ctxHash;
    signal input root;
    signal input idCommit;
    signal input headroom;

    signal input epoch;
    signal input mode;
    signal input weights[N_ASSETS];
    signal input tierWeights[N_ASSETS][N_TIERS];
    signal input tierWidths[N_ASSETS][N_TIERS - 1];
    signal input capLimit[N_ASSETS];
    signal input risk[N_INSTR][N_SCEN];
    signal input equity[N_ASSETS];
    signal input debt[N_ASSETS];
    signal input qty[N_INSTR];
    signal input leafIndex;
    signal input siblings[TREE_DEPTH];

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

    component acct = AccountLeaf(N_ASSETS, N_INSTR, WEIGHT_BITS);
    acct.idCommit <== idCommit;
    for (var a = 0; a < N_ASSETS; a++) {
        acct.equity[a] <== equity[a];
        acct.debt[a] <== debt[a];
        acct.weights[a] <== weights[a];
    }
    for (var i = 0; i < N_INSTR; i++) {
        acct.qty[i] <== qty[i];
    }

    // The headroom is bounded so that the scenario checks below cannot wrap.
    component headroomRange = RangeCheck(MARGIN_BITS);
    headroomRange.in <== headroom;
    component margin = Margin(N_ASSETS, N_INSTR, N_SCEN, N_TIERS);
    margin.debtValue <== acct.debtValue;
    margin.magSum <== acct.magSum;
    margin.shortfall <== 0;
    margin.floor <== headroom;
    for (var a = 0; a < N_ASSETS; a++) {
        margin.equity[a] <== equity[a];
        for (var t = 0; t < N_TIERS; t++) {
            margin.tierWeights[a][t] <== tierWeights[a][t];
        }
        for (var t = 0; t < N_TIERS - 1; t++) {
            margin.tierWidths[a][t] <== tierWidths[a][t];
        }
    }
    for (var i = 0; i < N_INSTR; i++) {
        margin.q[i] <== acct.q[i];
        for (var s = 0; s < N_SCEN; s++) {
            margin.risk[i][s] <== risk[i][s];
        }
    }

    // Inclusion. Num2Bits makes the path bits boolean and leafIndex < 2^TREE_DEPTH.
    component index = Num2Bits(TREE_DEPTH);
    index.in <== leafIndex;
    component path = MerkleRoot(TREE_DEPTH);
    path.leaf <== acct.leaf;
    for (var l = 0; l < TREE_DEPTH; l++) {
        path.pathBits[l] <== index.out[l];
        path.siblings[l] <== siblings[l];
    }
    path.root === root;
}

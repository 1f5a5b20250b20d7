pragma circom 2.1.0;

include "circomlib/circuits/poseidon.circom";
include "constants.circom";
include "hash.circom";
include "range.circom";

// ContextLength(...): number of field elements ContextHash hashes.
function contextLength(N_ASSETS, N_INSTR, N_SCEN, N_TIERS) {
    return 9 + N_ASSETS * (2 * N_TIERS + 1) + N_INSTR * N_SCEN;
}

// ContextHash(TREE_DEPTH, BATCH_LEVELS, N_ASSETS, N_INSTR, N_SCEN, N_TIERS): the epoch's public
// context, HashList(CTX_TAG, epoch, shape..., mode, weights, tierWeights, tierWidths, capLimit,
// risk), with the matrices row by row. It only hashes: the solvency circuit, which every
// finalized epoch includes, opens the same preimage with ContextBounds, so the batch and
// single-account circuits may rely on those bounds. Mirror: commitments.context_hash.
template ContextHash(TREE_DEPTH, BATCH_LEVELS, N_ASSETS, N_INSTR, N_SCEN, N_TIERS) {
    signal input epoch;
    signal input mode;
    signal input weights[N_ASSETS];
    signal input tierWeights[N_ASSETS][N_TIERS];
    signal input tierWidths[N_ASSETS][N_TIERS - 1];
    signal input capLimit[N_ASSETS];
    signal input risk[N_INSTR][N_SCEN];
    signal output out;

    var LEN = contextLength(N_ASSETS, N_INSTR, N_SCEN, N_TIERS);
    component h = HashList(LEN);
    h.in[0] <== CTX_TAG();
    h.in[1] <== epoch;
    h.in[2] <== TREE_DEPTH;
    h.in[3] <== BATCH_LEVELS;
    h.in[4] <== N_ASSETS;
    h.in[5] <== N_INSTR;
    h.in[6] <== N_SCEN;
    h.in[7] <== N_TIERS;
    h.in[8] <== mode;
    var k = 9;
    for (var a = 0; a < N_ASSETS; a++) {
        h.in[k] <== weights[a];
        k++;
    }
    for (var a = 0; a < N_ASSETS; a++) {
        for (var t = 0; t < N_TIERS; t++) {
            h.in[k] <== tierWeights[a][t];
            k++;
        }
    }
    for (var a = 0; a < N_ASSETS; a++) {
        for (var t = 0; t < N_TIERS - 1; t++) {
            h.in[k] <== tierWidths[a][t];
            k++;
        }
    }
    for (var a = 0; a < N_ASSETS; a++) {
        h.in[k] <== capLimit[a];
        k++;
    }
    for (var i = 0; i < N_INSTR; i++) {
        for (var s = 0; s < N_SCEN; s++) {
            h.in[k] <== risk[i][s];
            k++;
        }
    }
    out <== h.out;
}

// ContextBounds(...): the ranges every circuit relies on (docs/margin-design.md, "Units"):
// mode is a bit, weights < 2^WEIGHT_BITS, tier weights <= their asset's weight and never rising
// from tier to tier (a haircut schedule must not reward larger holdings; Margin fills the tiers
// in order whatever the weights), tier widths < 2^64 (so every tier bound stays below Margin's
// comparison bits), cap limits < 2^CAP_BITS and -2^RISK_BITS <= risk < 2^RISK_BITS.
template ContextBounds(N_ASSETS, N_INSTR, N_SCEN, N_TIERS, WEIGHT_BITS, RISK_BITS, CAP_BITS) {
    signal input mode;
    signal input weights[N_ASSETS];
    signal input tierWeights[N_ASSETS][N_TIERS];
    signal input tierWidths[N_ASSETS][N_TIERS - 1];
    signal input capLimit[N_ASSETS];
    signal input risk[N_INSTR][N_SCEN];

    mode * (mode - 1) === 0;
    component w[N_ASSETS];
    component tw[N_ASSETS][N_TIERS];
    component tierLe[N_ASSETS][N_TIERS];
    component tierOrder[N_ASSETS][N_TIERS - 1];
    component width[N_ASSETS][N_TIERS - 1];
    component cap[N_ASSETS];
    for (var a = 0; a < N_ASSETS; a++) {
        w[a] = RangeCheck(WEIGHT_BITS);
        w[a].in <== weights[a];
        for (var t = 0; t < N_TIERS; t++) {
            tw[a][t] = RangeCheck(WEIGHT_BITS);
            tw[a][t].in <== tierWeights[a][t];
            tierLe[a][t] = NonNegativeDifference(WEIGHT_BITS);
            tierLe[a][t].a <== weights[a];
            tierLe[a][t].b <== tierWeights[a][t];
        }
        for (var t = 0; t < N_TIERS - 1; t++) {
            width[a][t] = RangeCheck(64);
            width[a][t].in <== tierWidths[a][t];
            tierOrder[a][t] = NonNegativeDifference(WEIGHT_BITS);
            tierOrder[a][t].a <== tierWeights[a][t];
            tierOrder[a][t].b <== tierWeights[a][t + 1];
        }
        cap[a] = RangeCheck(CAP_BITS);
        cap[a].in <== capLimit[a];
    }
    component r[N_INSTR][N_SCEN];
    for (var i = 0; i < N_INSTR; i++) {
        for (var s = 0; s < N_SCEN; s++) {
            r[i][s] = RangeCheck(RISK_BITS + 1);
            r[i][s].in <== risk[i][s] + (1 << RISK_BITS);
        }
    }
}

// TotalsHash(N_TOTALS, TOTAL_BITS): HashList over the totals packed TOTAL_BITS apiece.
// Callers range-check the totals they hash. Mirror: commitments.totals_hash.
template TotalsHash(N_TOTALS, TOTAL_BITS) {
    signal input totals[N_TOTALS];
    signal output out;
    var PACKED = packedLength(N_TOTALS, TOTAL_BITS);
    component packer = Pack(N_TOTALS, TOTAL_BITS);
    component h = HashList(PACKED);
    for (var i = 0; i < N_TOTALS; i++) {
        packer.in[i] <== totals[i];
    }
    for (var k = 0; k < PACKED; k++) {
        h.in[k] <== packer.out[k];
    }
    out <== h.out;
}

// StateHash: Poseidon(ctx, batchCount, root, totalsHash, shortfall, blind).
// Mirror: commitments.state_hash.
template StateHash() {
    signal input ctx;
    signal input batchCount;
    signal input root;
    signal input totalsHash;
    signal input shortfall;
    signal input blind;
    signal output out;
    component h = Poseidon(6);
    h.inputs[0] <== ctx;
    h.inputs[1] <== batchCount;
    h.inputs[2] <== root;
    h.inputs[3] <== totalsHash;
    h.inputs[4] <== shortfall;
    h.inputs[5] <== blind;
    out <== h.out;
}

pragma circom 2.1.0;

include "circomlib/circuits/poseidon.circom";
include "constants.circom";
include "hash.circom";
include "range.circom";

// ContextHash(N_ASSETS): the epoch's public context, HashList(CTX_TAG, epoch, TREE_DEPTH,
// BATCH_LEVELS, N_ASSETS, weights...). Range-checks every weight to WEIGHT_BITS so that
// AccountLeaf's value comparison cannot wrap. Mirror: commitments.context_hash.
template ContextHash(TREE_DEPTH, BATCH_LEVELS, N_ASSETS, WEIGHT_BITS) {
    signal input epoch;
    signal input weights[N_ASSETS];
    signal output out;

    component wRange[N_ASSETS];
    component h = HashList(5 + N_ASSETS);
    h.in[0] <== CTX_TAG();
    h.in[1] <== epoch;
    h.in[2] <== TREE_DEPTH;
    h.in[3] <== BATCH_LEVELS;
    h.in[4] <== N_ASSETS;
    for (var i = 0; i < N_ASSETS; i++) {
        wRange[i] = RangeCheck(WEIGHT_BITS);
        wRange[i].in <== weights[i];
        h.in[5 + i] <== weights[i];
    }
    out <== h.out;
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

// StateHash: Poseidon(ctx, batchCount, root, totalsHash, blind). Mirror: commitments.state_hash.
template StateHash() {
    signal input ctx;
    signal input batchCount;
    signal input root;
    signal input totalsHash;
    signal input blind;
    signal output out;
    component h = Poseidon(5);
    h.inputs[0] <== ctx;
    h.inputs[1] <== batchCount;
    h.inputs[2] <== root;
    h.inputs[3] <== totalsHash;
    h.inputs[4] <== blind;
    out <== h.out;
}

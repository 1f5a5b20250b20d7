pragma circom 2.1.0;

include "hash.circom";
include "range.circom";

// AccountLeaf(N_ASSETS): one account's balances, checked and committed.
//
// Inputs:  idCommit           Poseidon(idHash, salt), computed off-circuit by the prover
//          equity[N], debt[N] amounts at each asset's scale
//          weights[N]         price per smallest unit; the caller range-checks them to
//                             WEIGHT_BITS and binds them to the public context hash
// Outputs: leaf               HashList(idCommit, Pack64(eq_0, debt_0, eq_1, debt_1, ...))
// Proves:  every amount < 2^64 (so none is a negative in disguise, p - x), and
//          sum_i equity_i * w_i >= sum_i debt_i * w_i as integers.
template AccountLeaf(N_ASSETS, WEIGHT_BITS) {
    assert(N_ASSETS >= 1);
    var AMOUNT_BITS = 64;
    // sum of N products of (64-bit amount) * (WEIGHT_BITS-bit weight)
    var LOG_N = 1;
    while ((1 << LOG_N) < N_ASSETS) { LOG_N++; }
    var VALUE_BITS = AMOUNT_BITS + WEIGHT_BITS + LOG_N;
    assert(VALUE_BITS <= 252);

    signal input idCommit;
    signal input equity[N_ASSETS];
    signal input debt[N_ASSETS];
    signal input weights[N_ASSETS];
    signal output leaf;

    component eqRange[N_ASSETS];
    component debtRange[N_ASSETS];
    signal eqValue[N_ASSETS];
    signal debtValue[N_ASSETS];
    var eqSum = 0;
    var debtSum = 0;
    for (var i = 0; i < N_ASSETS; i++) {
        eqRange[i] = RangeCheck(AMOUNT_BITS);
        eqRange[i].in <== equity[i];
        debtRange[i] = RangeCheck(AMOUNT_BITS);
        debtRange[i].in <== debt[i];
        eqValue[i] <== equity[i] * weights[i];
        debtValue[i] <== debt[i] * weights[i];
        eqSum += eqValue[i];
        debtSum += debtValue[i];
    }
    // Both sums are < 2^VALUE_BITS, so a range check on their difference is a sound >=.
    component covered = NonNegativeDifference(VALUE_BITS);
    covered.a <== eqSum;
    covered.b <== debtSum;

    var PACKED = packedLength(2 * N_ASSETS, AMOUNT_BITS);
    component packer = Pack(2 * N_ASSETS, AMOUNT_BITS);
    for (var i = 0; i < N_ASSETS; i++) {
        packer.in[2 * i] <== equity[i];
        packer.in[2 * i + 1] <== debt[i];
    }
    component h = HashList(1 + PACKED);
    h.in[0] <== idCommit;
    for (var k = 0; k < PACKED; k++) {
        h.in[1 + k] <== packer.out[k];
    }
    leaf <== h.out;
}

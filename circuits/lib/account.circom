pragma circom 2.1.0;

include "circomlib/circuits/bitify.circom";
include "circomlib/circuits/comparators.circom";
include "hash.circom";
include "range.circom";

// AccountLeaf(N_ASSETS, N_INSTR, WEIGHT_BITS): one account's balances and positions, checked and
// committed.
//
// Inputs:  idCommit           Poseidon(idHash, salt), computed off-circuit by the prover
//          equity[N], debt[N] amounts at each asset's scale
//          qty[P]             position codes m + 2^63 * b: magnitude m < 2^63 in 10^-8
//                             contracts, b = 1 for a short
//          weights[N]         price per smallest unit; below 2^WEIGHT_BITS in any epoch whose
//                             solvency proof verifies (the solvency circuit range-checks the
//                             context it shares with every batch)
// Outputs: leaf               HashList(idCommit, Pack64(eq_0, debt_0, ...), Pack64(qty_0, ...))
//          debtValue          sum_i debt_i * w_i
//          q[P]               signed quantities m or -m (as field elements)
//          magSum             sum of the magnitudes
// Proves:  every amount and code < 2^64 (so none is a negative in disguise, p - x); a short has a
//          non-zero magnitude (zero has one encoding); sum_i equity_i * w_i >= debtValue.
// A signed quantity is never taken from a raw field element: its sign is a bit of a 64-bit
// decomposition, so p - x cannot pass for -x.
template AccountLeaf(N_ASSETS, N_INSTR, WEIGHT_BITS) {
    assert(N_ASSETS >= 1);
    assert(N_INSTR >= 1);
    var AMOUNT_BITS = 64;
    // sum of N products of (64-bit amount) * (WEIGHT_BITS-bit weight)
    var LOG_N = 1;
    while ((1 << LOG_N) < N_ASSETS) { LOG_N++; }
    var VALUE_BITS = AMOUNT_BITS + WEIGHT_BITS + LOG_N;
    assert(VALUE_BITS <= 252);

    signal input idCommit;
    signal input equity[N_ASSETS];
    signal input debt[N_ASSETS];
    signal input qty[N_INSTR];
    signal input weights[N_ASSETS];
    signal output leaf;
    signal output debtValue;
    signal output q[N_INSTR];
    signal output magSum;

    component eqRange[N_ASSETS];
    component debtRange[N_ASSETS];
    signal eqValue[N_ASSETS];
    signal debtValues[N_ASSETS];
    var eqSum = 0;
    var debtSum = 0;
    for (var i = 0; i < N_ASSETS; i++) {
        eqRange[i] = RangeCheck(AMOUNT_BITS);
        eqRange[i].in <== equity[i];
        debtRange[i] = RangeCheck(AMOUNT_BITS);
        debtRange[i].in <== debt[i];
        eqValue[i] <== equity[i] * weights[i];
        debtValues[i] <== debt[i] * weights[i];
        eqSum += eqValue[i];
        debtSum += debtValues[i];
    }
    debtValue <== debtSum;
    // Both sums are < 2^VALUE_BITS, so a range check on their difference is a sound >=.
    component covered = NonNegativeDifference(VALUE_BITS);
    covered.a <== eqSum;
    covered.b <== debtSum;

    // Positions: bits 0..62 are the magnitude, bit 63 the sign.
    component code[N_INSTR];
    component zero[N_INSTR];
    signal negMag[N_INSTR];
    var mags = 0;
    for (var i = 0; i < N_INSTR; i++) {
        code[i] = Num2Bits(64);
        code[i].in <== qty[i];
        var m = 0;
        for (var j = 0; j < 63; j++) {
            m += code[i].out[j] * (1 << j);
        }
        zero[i] = IsZero();
        zero[i].in <== m;
        code[i].out[63] * zero[i].out === 0;
        negMag[i] <== code[i].out[63] * m;
        q[i] <== m - 2 * negMag[i];
        mags += m;
    }
    magSum <== mags;

    var PACKED = packedLength(2 * N_ASSETS, AMOUNT_BITS);
    var PACKED_Q = packedLength(N_INSTR, 64);
    component packer = Pack(2 * N_ASSETS, AMOUNT_BITS);
    for (var i = 0; i < N_ASSETS; i++) {
        packer.in[2 * i] <== equity[i];
        packer.in[2 * i + 1] <== debt[i];
    }
    component qPacker = Pack(N_INSTR, 64);
    for (var i = 0; i < N_INSTR; i++) {
        qPacker.in[i] <== qty[i];
    }
    component h = HashList(1 + PACKED + PACKED_Q);
    h.in[0] <== idCommit;
    for (var k = 0; k < PACKED; k++) {
        h.in[1 + k] <== packer.out[k];
    }
    for (var k = 0; k < PACKED_Q; k++) {
        h.in[1 + PACKED + k] <== qPacker.out[k];
    }
    leaf <== h.out;
}

pragma circom 2.1.0;

include "circomlib/circuits/poseidon.circom";

// HashList(LEN): Poseidon over any number of field elements.
// LEN <= 16: one Poseidon(LEN). Otherwise absorb 16, then 15 more per step with the running
// digest first. Mirror: prover/poseidon.py hash_list.
template HashList(LEN) {
    assert(LEN >= 1);
    signal input in[LEN];
    signal output out;

    var FIRST = LEN < 16 ? LEN : 16;
    var STEPS = LEN <= 16 ? 0 : (LEN - 16 + 14) \ 15;
    component head = Poseidon(FIRST);
    for (var i = 0; i < FIRST; i++) {
        head.inputs[i] <== in[i];
    }
    component step[STEPS];
    signal digest[STEPS + 1];
    digest[0] <== head.out;
    for (var s = 0; s < STEPS; s++) {
        var start = 16 + 15 * s;
        var width = LEN - start < 15 ? LEN - start : 15;
        step[s] = Poseidon(width + 1);
        step[s].inputs[0] <== digest[s];
        for (var j = 0; j < width; j++) {
            step[s].inputs[j + 1] <== in[start + j];
        }
        digest[s + 1] <== step[s].out;
    }
    out <== digest[STEPS];
}

// Pack(LEN, BITS): sums PER = floor(253 / BITS) values per output at BITS-bit offsets.
// Linear, so it costs no multiplication; it is injective only for inputs already
// range-checked to BITS bits, which every caller does. Mirror: prover/field.py pack.
template Pack(LEN, BITS) {
    assert(BITS >= 1 && BITS <= 253);
    var PER = 253 \ BITS;
    var OUT = (LEN + PER - 1) \ PER;
    signal input in[LEN];
    signal output out[OUT];
    for (var k = 0; k < OUT; k++) {
        var acc = 0;
        for (var j = 0; j < PER && k * PER + j < LEN; j++) {
            acc += in[k * PER + j] * (1 << (j * BITS));
        }
        out[k] <== acc;
    }
}

// Number of field elements Pack(LEN, BITS) outputs.
function packedLength(LEN, BITS) {
    var PER = 253 \ BITS;
    return (LEN + PER - 1) \ PER;
}

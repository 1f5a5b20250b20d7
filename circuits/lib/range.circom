pragma circom 2.1.0;

include "circomlib/circuits/bitify.circom";

// RangeCheck(N_BITS): proves 0 <= in < 2^N_BITS (as an integer, not mod p).
// N_BITS <= 252 keeps the bit decomposition unique: sum(bits) < 2^252 < p cannot alias.
template RangeCheck(N_BITS) {
    assert(N_BITS >= 1 && N_BITS <= 252);
    signal input in;
    component bits = Num2Bits(N_BITS);
    bits.in <== in;
}

// NonNegativeDifference(N_BITS): proves a >= b, for a and b that the caller already knows to
// be integers below 2^N_BITS. It range-checks a - b: if a < b the difference wraps to
// p - (b - a) >= p - 2^N_BITS, which needs more than N_BITS bits whenever N_BITS <= 252.
template NonNegativeDifference(N_BITS) {
    assert(N_BITS >= 1 && N_BITS <= 252);
    signal input a;
    signal input b;
    component bits = Num2Bits(N_BITS);
    bits.in <== a - b;
}

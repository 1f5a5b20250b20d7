pragma circom 2.1.0;

include "circomlib/circuits/bitify.circom";

// Stand-in for the single-account margin circuit with the same public interface:
// [ctxHash, root, idCommit, headroom]. The "account" is a private margin tied to the rest by
// root = ctxHash + idCommit + margin, and margin - headroom fits in 64 bits (the account has
// at least `headroom` to spare).
template ToyMargin() {
    signal input ctxHash;
    signal input root;
    signal input idCommit;
    signal input headroom;
    signal input margin; // private

    root === ctxHash + idCommit + margin;
    component spare = Num2Bits(64);
    spare.in <== margin - headroom;
}

component main {public [ctxHash, root, idCommit, headroom]} = ToyMargin();

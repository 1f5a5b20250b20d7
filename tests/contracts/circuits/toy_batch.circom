pragma circom 2.1.0;

// Stand-in for the batch circuit with the same public interface, so the registry can be tested
// without the real circuits: public [prevState, nextState, ctxHash] (declaration order is the
// order of snarkjs' public signals).
template ToyBatch() {
    signal input prevState;
    signal input nextState;
    signal input ctxHash;
    signal input step; // private

    signal stepSq <== step * step;
    nextState === prevState * 7 + stepSq + ctxHash;
}

component main {public [prevState, nextState, ctxHash]} = ToyBatch();

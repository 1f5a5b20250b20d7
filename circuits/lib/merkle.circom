pragma circom 2.1.0;

include "circomlib/circuits/poseidon.circom";

// SubtreeRoot(LEVELS): root of the complete binary Poseidon tree over 2^LEVELS leaves.
template SubtreeRoot(LEVELS) {
    var N = 1 << LEVELS;
    signal input leaves[N];
    signal output root;

    // Level-order nodes: nodes[0..N-1] are the leaves, then each level's parents follow.
    signal nodes[2 * N - 1];
    for (var i = 0; i < N; i++) {
        nodes[i] <== leaves[i];
    }
    component h[N - 1];
    var read = 0;
    var write = N;
    for (var level = LEVELS; level > 0; level--) {
        var width = 1 << (level - 1);
        for (var i = 0; i < width; i++) {
            h[write - N] = Poseidon(2);
            h[write - N].inputs[0] <== nodes[read + 2 * i];
            h[write - N].inputs[1] <== nodes[read + 2 * i + 1];
            nodes[write] <== h[write - N].out;
            write++;
        }
        read += 2 * width;
    }
    root <== nodes[2 * N - 2];
}

// MerkleUpdate(LEVELS): roots above oldLeaf and newLeaf along the same path.
// pathBits[i] = 1 means the running node is the right child at level i. The bits are forced
// boolean here, whatever the caller does, so a non-binary bit cannot blend the two children.
template MerkleUpdate(LEVELS) {
    assert(LEVELS >= 1);
    signal input oldLeaf;
    signal input newLeaf;
    signal input pathBits[LEVELS];
    signal input siblings[LEVELS];
    signal output oldRoot;
    signal output newRoot;

    signal oldNode[LEVELS + 1];
    signal newNode[LEVELS + 1];
    signal oldLeft[LEVELS];
    signal newLeft[LEVELS];
    component oldH[LEVELS];
    component newH[LEVELS];
    oldNode[0] <== oldLeaf;
    newNode[0] <== newLeaf;
    for (var i = 0; i < LEVELS; i++) {
        pathBits[i] * (pathBits[i] - 1) === 0;
        // left = bit ? sibling : node; right = node + sibling - left
        oldLeft[i] <== oldNode[i] + pathBits[i] * (siblings[i] - oldNode[i]);
        newLeft[i] <== newNode[i] + pathBits[i] * (siblings[i] - newNode[i]);
        oldH[i] = Poseidon(2);
        oldH[i].inputs[0] <== oldLeft[i];
        oldH[i].inputs[1] <== oldNode[i] + siblings[i] - oldLeft[i];
        newH[i] = Poseidon(2);
        newH[i].inputs[0] <== newLeft[i];
        newH[i].inputs[1] <== newNode[i] + siblings[i] - newLeft[i];
        oldNode[i + 1] <== oldH[i].out;
        newNode[i + 1] <== newH[i].out;
    }
    oldRoot <== oldNode[LEVELS];
    newRoot <== newNode[LEVELS];
}

// MerkleRoot(LEVELS): the root above `leaf` along a path, for inclusion proofs. Same path
// convention and boolean bits as MerkleUpdate.
template MerkleRoot(LEVELS) {
    assert(LEVELS >= 1);
    signal input leaf;
    signal input pathBits[LEVELS];
    signal input siblings[LEVELS];
    signal output root;

    signal node[LEVELS + 1];
    signal left[LEVELS];
    component h[LEVELS];
    node[0] <== leaf;
    for (var i = 0; i < LEVELS; i++) {
        pathBits[i] * (pathBits[i] - 1) === 0;
        left[i] <== node[i] + pathBits[i] * (siblings[i] - node[i]);
        h[i] = Poseidon(2);
        h[i].inputs[0] <== left[i];
        h[i].inputs[1] <== node[i] + siblings[i] - left[i];
        node[i + 1] <== h[i].out;
    }
    root <== node[LEVELS];
}

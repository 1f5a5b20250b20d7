pragma circom 2.1.0;

include "circomlib/circuits/bitify.circom";

// Stand-in for the solvency circuit with the same public interface:
// [finalState, ctxHash, root, totalsCommit, batchCount, shortfall, insuranceFund, epoch, domain,
//  weights[N], verified[N], declared[N], verifiedOnly].
// Ties them together: totalsCommit = finalState + ctxHash * root + batchCount + sum(totals),
// verified[i] + declared[i] - totals[i] fits in 64 bits (reserves cover the private totals),
// and so does insuranceFund - shortfall (the fund covers the shortfall); verifiedOnly is a bit.
template ToySolvency(N) {
    signal input finalState;
    signal input ctxHash;
    signal input root;
    signal input totalsCommit;
    signal input batchCount;
    signal input shortfall;
    signal input insuranceFund;
    signal input epoch;
    signal input domain;
    signal input weights[N];
    signal input verified[N];
    signal input declared[N];
    signal input verifiedOnly;
    signal input totals[N]; // private

    // epoch and domain only need to be public (the registry supplies them); squared so that
    // they take part in a constraint, as in the real circuit.
    signal epochSquared <== epoch * epoch;
    signal domainSquared <== domain * domain;
    signal mixed <== ctxHash * root;
    var acc = finalState + mixed + batchCount;
    component surplus[N];
    signal weightSquared[N];
    for (var i = 0; i < N; i++) {
        surplus[i] = Num2Bits(64);
        surplus[i].in <== verified[i] + declared[i] - totals[i];
        weightSquared[i] <== weights[i] * weights[i];
        acc += totals[i];
    }
    verifiedOnly * (verifiedOnly - 1) === 0;
    totalsCommit === acc;
    component covered = Num2Bits(64);
    covered.in <== insuranceFund - shortfall;
}

component main {public [finalState, ctxHash, root, totalsCommit, batchCount, shortfall, insuranceFund, epoch, domain, weights, verified, declared, verifiedOnly]} = ToySolvency(4);

pragma circom 2.1.0;

include "range.circom";

// Bits of every scenario's margin value, and of a shortfall (see docs/margin-design.md): the
// credited collateral, the debt and each |q_i * L[i][s]| are below 2^192, and 2N + P + 2 terms
// of that size cannot reach 2^(MARGIN_BITS - 1). Mirror: commitments.margin_bits.
function marginBits(N_ASSETS, N_INSTR) {
    var terms = 2 * N_ASSETS + N_INSTR + 2;
    var len = 0;
    while ((1 << len) <= terms) { len++; }
    return 192 + len + 1;
}

// Margin(N_ASSETS, N_INSTR, N_SCEN, N_TIERS): one account's margin rule under every scenario.
//
// Inputs:  equity[N]          range-checked by AccountLeaf
//          debtValue, q[P], magSum from AccountLeaf
//          split[N][K]        the prover's split of each equity into haircut tiers
//          tierWeights[N][K]  value credited per smallest unit in each tier (context)
//          tierWidths[N][K-1] size of every tier but the last, unbounded one (context)
//          risk[P][S]         L[i][s]: floor of the P&L of 10^-8 contract, signed (context)
//          shortfall          added to every scenario (0 unless the epoch is in shortfall mode)
//          floor              headroom the account must keep (0 in the batch circuit)
// Proves:  for every s, credit - debtValue + sum_i q_i * L[i][s] - magSum + shortfall - floor
//          lies in [0, 2^MARGIN_BITS), where credit = sum_a sum_t split[a][t] * tierWeights[a][t]
//          and each split is in [0, width] with the splits summing to the equity.
// Every operand is bounded (amounts and splits here and in AccountLeaf, the context by the
// solvency circuit, shortfall and floor by the caller), so the value cannot wrap mod p: a
// negative one would need more than MARGIN_BITS bits.
template Margin(N_ASSETS, N_INSTR, N_SCEN, N_TIERS) {
    assert(N_TIERS >= 2);
    assert(N_SCEN >= 1);
    var MARGIN_BITS = marginBits(N_ASSETS, N_INSTR);
    assert(MARGIN_BITS <= 252);

    signal input equity[N_ASSETS];
    signal input debtValue;
    signal input q[N_INSTR];
    signal input magSum;
    signal input split[N_ASSETS][N_TIERS];
    signal input tierWeights[N_ASSETS][N_TIERS];
    signal input tierWidths[N_ASSETS][N_TIERS - 1];
    signal input risk[N_INSTR][N_SCEN];
    signal input shortfall;
    signal input floor;

    // Tiers. Rates fall from tier to tier, so filling them in order is the prover's best split
    // and any other split only credits less: no ordering constraint is needed.
    component lo[N_ASSETS][N_TIERS];
    component hi[N_ASSETS][N_TIERS - 1];
    signal credited[N_ASSETS][N_TIERS];
    var credit = 0;
    for (var a = 0; a < N_ASSETS; a++) {
        var total = 0;
        for (var t = 0; t < N_TIERS; t++) {
            lo[a][t] = RangeCheck(64);
            lo[a][t].in <== split[a][t];
            if (t < N_TIERS - 1) {
                hi[a][t] = RangeCheck(64);
                hi[a][t].in <== tierWidths[a][t] - split[a][t];
            }
            credited[a][t] <== split[a][t] * tierWeights[a][t];
            credit += credited[a][t];
            total += split[a][t];
        }
        total === equity[a];
    }

    // P&L: P * S products. Using floor(R) for shorts too is safe because each scenario also
    // subtracts one unit per 10^-8 contract (magSum), and ceil(R) - floor(R) <= 1.
    signal pnl[N_INSTR][N_SCEN];
    component ok[N_SCEN];
    for (var s = 0; s < N_SCEN; s++) {
        var sum = 0;
        for (var i = 0; i < N_INSTR; i++) {
            pnl[i][s] <== q[i] * risk[i][s];
            sum += pnl[i][s];
        }
        ok[s] = RangeCheck(MARGIN_BITS);
        ok[s].in <== credit - debtValue + sum - magSum + shortfall - floor;
    }
}

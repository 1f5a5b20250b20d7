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

// Bits of the tier comparison in Margin: a cumulative tier bound is a sum of N_TIERS - 1 widths
// below 2^64, so it and every 64-bit amount are below 2^tierCompareBits(N_TIERS).
// Mirror: commitments.tier_compare_bits.
function tierCompareBits(N_TIERS) {
    var len = 0;
    while ((1 << len) <= N_TIERS - 1) { len++; }
    return 64 + len;
}

// Margin(N_ASSETS, N_INSTR, N_SCEN, N_TIERS): one account's margin rule under every scenario.
//
// Inputs:  equity[N]          range-checked by AccountLeaf
//          debtValue, q[P], magSum from AccountLeaf
//          tierWeights[N][K]  value credited per smallest unit in each tier (context)
//          tierWidths[N][K-1] size of every tier but the last, unbounded one (context)
//          risk[P][S]         L[i][s]: floor of the P&L of 10^-8 contract, signed (context)
//          shortfall          added to every scenario (0 unless the epoch is in shortfall mode)
//          floor              headroom the account must keep (0 in the batch circuit)
// Proves:  for every s, credit - debtValue + sum_i q_i * L[i][s] - magSum + shortfall - floor
//          lies in [0, 2^MARGIN_BITS), where credit = sum_a sum_t fill[a][t] * tierWeights[a][t]
//          for the equity filled into the tiers in order (haircuts.tier_split).
// The fill is computed, not chosen by the prover: with B_t = width_0 + ... + width_(t-1),
// excess_t = max(equity - B_t, 0) is the part of the equity above bound t, and
// credit = W_0 * equity + sum_(t >= 1) (W_t - W_(t-1)) * excess_t. One comparison per bound
// replaces a range-checked split (2K - 1 range checks of 64 bits): K = 3 costs 139 constraints
// per asset instead of 323. Every operand is bounded (amounts here and in AccountLeaf, the
// context by the solvency circuit, shortfall and floor by the caller), so the value cannot wrap
// mod p: a negative one would need more than MARGIN_BITS bits.
template Margin(N_ASSETS, N_INSTR, N_SCEN, N_TIERS) {
    assert(N_TIERS >= 2);
    assert(N_SCEN >= 1);
    var MARGIN_BITS = marginBits(N_ASSETS, N_INSTR);
    assert(MARGIN_BITS <= 252);
    var CMP_BITS = tierCompareBits(N_TIERS);

    signal input equity[N_ASSETS];
    signal input debtValue;
    signal input q[N_INSTR];
    signal input magSum;
    signal input tierWeights[N_ASSETS][N_TIERS];
    signal input tierWidths[N_ASSETS][N_TIERS - 1];
    signal input risk[N_INSTR][N_SCEN];
    signal input shortfall;
    signal input floor;

    // Tiers. d = equity + 2^CMP_BITS - B_t lies in (0, 2^(CMP_BITS + 1)) as an integer, since
    // equity and B_t are both below 2^CMP_BITS; its top bit is (equity >= B_t) and, when set,
    // the rest of d is equity - B_t. The decomposition is unique (CMP_BITS + 1 < 254 bits).
    component above[N_ASSETS][N_TIERS - 1];
    signal excess[N_ASSETS][N_TIERS - 1];
    signal base[N_ASSETS];
    signal step[N_ASSETS][N_TIERS - 1];
    var credit = 0;
    for (var a = 0; a < N_ASSETS; a++) {
        base[a] <== equity[a] * tierWeights[a][0];
        credit += base[a];
        var bound = 0;
        for (var t = 0; t < N_TIERS - 1; t++) {
            bound += tierWidths[a][t];
            above[a][t] = Num2Bits(CMP_BITS + 1);
            above[a][t].in <== equity[a] + (1 << CMP_BITS) - bound;
            excess[a][t] <== above[a][t].out[CMP_BITS] * (equity[a] - bound);
            // W_(t+1) <= W_t (ContextBounds): each step takes back what tier t+1 is worth less.
            step[a][t] <== (tierWeights[a][t + 1] - tierWeights[a][t]) * excess[a][t];
            credit += step[a][t];
        }
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

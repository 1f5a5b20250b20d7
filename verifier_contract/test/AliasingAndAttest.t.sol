// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {AccountMarginVerifier} from "../src/AccountMarginVerifier.sol";
import {Proof} from "./utils/BookVerifier.sol";
import {BookRegistryTest} from "./utils/BookRegistryTest.sol";

/// Over stand-in verifiers that compare public inputs modulo p (so x + p passes wherever x was
/// proven), every public input of every circuit is still refused at or above p: the ones a
/// caller supplies by the contracts' FieldOverflow checks, the ones read from storage because
/// they were checked when written. And AccountMarginVerifier only ever raises a record, and
/// only for finalized epochs.
contract AliasingAndAttestTest is BookRegistryTest {
    uint256 internal constant CTX = 1234;
    uint256 internal constant ROOT = 7;

    /// @dev x + m·p for some m >= 1 that fits in 256 bits.
    function _alias(uint256 x, uint256 m) internal pure returns (uint256) {
        uint256 maxM = (type(uint256).max - x) / P;
        return x + P * (1 + m % maxM);
    }

    function _fieldOverflow(uint256 v) internal pure returns (bytes memory) {
        return _err(SolvencyRegistry.FieldOverflow.selector, v);
    }

    /// openEpoch's ctxHash (the batch and solvency circuits' ctxHash, and the first prevState).
    function testFuzz_AliasedContextRefused(uint256 ctx, uint256 m) public {
        ctx = ctx % P;
        uint256 aliased = _alias(ctx, m);
        _reverts(
            PUBLISHER, address(registry), abi.encodeCall(SolvencyRegistry.openEpoch, (1, aliased, 1, bytes32(0))),
            _fieldOverflow(aliased), "aliased ctxHash"
        );
        _open(1, ctx, 1);
        require(registry.getEpoch(1).ctxHash == ctx, "ctxHash");
    }

    /// submitBatch's nextState (and so every later prevState and the final state), with a proof
    /// the aliasing verifier accepts for it.
    function testFuzz_AliasedNextStateRefused(uint256 next, uint256 m) public {
        next = next % P;
        uint256 aliased = _alias(next, m);
        _open(1, CTX, 1);
        Proof memory pr = _batchProof(CTX, next, CTX);
        _reverts(PUBLISHER, address(registry), _submitCall(1, 0, pr, aliased), _fieldOverflow(aliased), "nextState");
        vm.prank(PUBLISHER);
        registry.submitBatch(1, 0, pr.a, pr.b, pr.c, next);
        require(registry.getEpoch(1).state == next, "state");
    }

    /// finalize's root, totalsCommit, shortfall, insuranceFund and each asset's weight, verified
    /// and declared reserve (batchCount is the stored uint64 nBatches, epoch the uint64 epoch
    /// number, domain the registry's own, below 2^224, and verifiedOnly a bool), with a proof the
    /// aliasing verifier accepts for them. The values the registry checks otherwise are kept
    /// true: asset 0's weight is its price, its verified reserve what custody holds (v), and
    /// asset 1, not on this chain, has verified reserve 0.
    function testFuzz_AliasedSolvencyValueRefused(uint8 which, uint256 v, uint256 m) public {
        which %= 4 + 3 * uint8(N_ASSETS);
        v = v % P;
        _open(1, CTX, 1);
        _submit(1, 42);
        SolvencyRegistry.Claim memory c = _claim(1, ROOT);
        if (which == 4) v = c.weights[0];
        if (which == 6) _addCustody(1, v);
        if (which == 7) v = 0;
        _set(c, which, v);
        Proof memory pr = solvencyBook.issue(_solvencySignals(1, c));
        uint256 aliased = _alias(v, m);
        SolvencyRegistry.Claim memory bad = _copy(c);
        _set(bad, which, aliased);
        _reverts(
            PUBLISHER,
            address(registry),
            abi.encodeCall(SolvencyRegistry.finalize, (1, _p(pr), bad)),
            _fieldOverflow(aliased),
            "aliased solvency value"
        );
        vm.prank(PUBLISHER);
        require(registry.finalize(1, _p(pr), c), "refused");
        require(registry.isFinalizedRoot(1, c.root), "canonical values accepted");
    }

    /// @dev Value `which` of `c`: root, totalsCommit, shortfall, insuranceFund, weights,
    ///      verified, declared.
    function _set(SolvencyRegistry.Claim memory c, uint256 which, uint256 v) internal pure {
        if (which == 0) c.root = v;
        else if (which == 1) c.totalsCommit = v;
        else if (which == 2) c.shortfall = v;
        else if (which == 3) c.insuranceFund = v;
        else if (which < 4 + N_ASSETS) c.weights[which - 4] = v;
        else if (which < 4 + 2 * N_ASSETS) c.verified[which - 4 - N_ASSETS] = v;
        else c.declared[which - 4 - 2 * N_ASSETS] = v;
    }

    function _copy(SolvencyRegistry.Claim memory c) internal pure returns (SolvencyRegistry.Claim memory d) {
        d = SolvencyRegistry.Claim(
            c.root, c.totalsCommit, c.shortfall, c.insuranceFund, _copy(c.weights), _copy(c.verified),
            _copy(c.declared), c.verifiedOnly
        );
    }

    function _copy(uint256[] memory a) internal pure returns (uint256[] memory b) {
        b = new uint256[](a.length);
        for (uint256 i = 0; i < a.length; ++i) {
            b[i] = a[i];
        }
    }

    /// verifyMargin's and attest's idCommit and headroom (ctxHash and root come from the
    /// registry, which refused aliases when they were written).
    function testFuzz_AliasedMarginValueRefused(uint256 id, uint256 headroom, uint256 m, bool onId, bool viaAttest)
        public
    {
        id = id % P;
        headroom = headroom % P;
        _publish(1, CTX, 1, 1, ROOT);
        Proof memory pr = _marginProof(1, id, headroom);
        uint256 aliased = onId ? _alias(id, m) : _alias(headroom, m);
        (uint256 badId, uint256 badHeadroom) = onId ? (aliased, headroom) : (id, aliased);
        bytes memory data = viaAttest
            ? abi.encodeCall(AccountMarginVerifier.attest, (1, badId, badHeadroom, pr.a, pr.b, pr.c))
            : abi.encodeCall(AccountMarginVerifier.verifyMargin, (1, badId, badHeadroom, pr.a, pr.b, pr.c));
        _reverts(
            address(this), address(margin), data, _err(AccountMarginVerifier.FieldOverflow.selector, aliased),
            "aliased margin value"
        );
        require(margin.verifyMargin(1, id, headroom, pr.a, pr.b, pr.c), "canonical values accepted");
        (bool proven,) = margin.attestedHeadroom(1, id);
        require(!proven, "recorded by a refused call");
    }

    /// A sequence of valid attestations in any order: the record is always the highest headroom
    /// proven so far, per (epoch, idCommit); lower proofs verify and are logged but lower
    /// nothing.
    function testFuzz_AttestNeverLowersARecord(uint256[8] memory headrooms, uint8 idBits, address prover) public {
        _publish(1, CTX, 1, 1, ROOT);
        _publish(2, CTX + 1, 1, 2, ROOT);
        uint256[2][2] memory best; // [epoch - 1][id - 1] + 1
        for (uint256 i = 0; i < headrooms.length; ++i) {
            uint256 h = i % 3 == 0 ? headrooms[i] % P : headrooms[i] % 1000;
            uint64 epoch = uint64(1 + (i % 2));
            uint256 id = 1 + ((idBits >> i) & 1);
            Proof memory pr = _marginProof(epoch, id, h);
            uint256 expected = h + 1 > best[epoch - 1][id - 1] ? h : best[epoch - 1][id - 1] - 1;
            vm.expectEmit(true, true, true, true, address(margin));
            emit AccountMarginVerifier.MarginAttested(epoch, id, h, prover);
            vm.prank(prover);
            require(margin.attest(epoch, id, h, pr.a, pr.b, pr.c) == expected, "returned record");
            best[epoch - 1][id - 1] = expected + 1;
            for (uint64 e = 1; e <= 2; ++e) {
                for (uint256 j = 1; j <= 2; ++j) {
                    (bool proven, uint256 rec) = margin.attestedHeadroom(e, j);
                    uint256 want = best[e - 1][j - 1];
                    require(proven == (want != 0) && rec == (want == 0 ? 0 : want - 1), "record");
                }
            }
        }
    }

    /// Epochs that are not finalized (never opened, open with all batches in, abandoned) take
    /// no margin proof, even one made for exactly what the registry stores for them.
    function testFuzz_AttestOnlyOnFinalizedEpochs(uint8 status, uint256 headroom, uint64 epoch) public {
        headroom = headroom % P;
        epoch = uint64(1 + epoch % 1000);
        SolvencyRegistry.Status want = SolvencyRegistry.Status(status % 3 == 0 ? 0 : status % 3 == 1 ? 1 : 3);
        if (want != SolvencyRegistry.Status.None) {
            _open(epoch, CTX, 1);
            _submit(epoch, 42);
            if (want == SolvencyRegistry.Status.Abandoned) {
                vm.prank(PUBLISHER);
                registry.abandonEpoch(epoch);
            }
        }
        require(registry.getEpoch(epoch).status == want, "status");
        Proof memory pr = _marginProof(epoch, 1, headroom); // for the stored ctxHash and root 0
        bytes memory notFinalized =
            abi.encodeWithSelector(AccountMarginVerifier.EpochNotFinalized.selector, epoch, want);
        _reverts(
            address(this), address(margin),
            abi.encodeCall(AccountMarginVerifier.verifyMargin, (epoch, 1, headroom, pr.a, pr.b, pr.c)), notFinalized,
            "verifyMargin"
        );
        _reverts(
            address(this), address(margin),
            abi.encodeCall(AccountMarginVerifier.attest, (epoch, 1, headroom, pr.a, pr.b, pr.c)), notFinalized,
            "attest"
        );
        (bool proven,) = margin.attestedHeadroom(epoch, 1);
        require(!proven, "recorded");
    }
}

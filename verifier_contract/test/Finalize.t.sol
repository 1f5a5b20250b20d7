// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";

/// Finalization: needs every batch, stores what it verified, and answers isFinalizedRoot.
contract FinalizeTest is RegistryTest {
    function test_FinalizeBeforeAllBatchesReverts() public {
        _open(1, 2);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.BatchesMissing.selector, 0, 2));
        registry.finalize(1, _proof(), _claim(7));

        _submit(1, 0, 42);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.BatchesMissing.selector, 1, 2));
        registry.finalize(1, _proof(), _claim(7));
    }

    function test_WrongCountsRevert() public {
        _open(1, 1);
        _submit(1, 0, 42);
        SolvencyRegistry.Claim memory c = _claim(7);
        c.weights = new uint256[](3);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.WrongWeightCount.selector, 2, 3));
        registry.finalize(1, _proof(), c);
        c = _claim(7);
        c.verified = new uint256[](1);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.WrongReserveCount.selector, 2, 1));
        registry.finalize(1, _proof(), c);
        c = _claim(7);
        c.declared = new uint256[](3);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.WrongReserveCount.selector, 2, 3));
        registry.finalize(1, _proof(), c);
    }

    function test_StoredStateAndEvents() public {
        vm.warp(1_000);
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.EpochOpened(5, CTX, 2, keccak256("bundle"));
        _open(5, 2);
        _submit(5, 0, 42);
        _submit(5, 1, 43);

        vm.warp(2_000);
        solvencyVerifier.expectInputs(_inputs(43, 2, 5, _claim(7)));
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.EpochFinalized(5, 7, 43, 99, SHORTFALL, FUND, 2, _reserves(), _declared(), true);
        _finalize(5, 7);

        SolvencyRegistry.Epoch memory e = registry.getEpoch(5);
        assertTrue(e.status == SolvencyRegistry.Status.Finalized, "status");
        assertEq(e.ctxHash, CTX, "ctxHash");
        assertTrue(e.bundleHash == keccak256("bundle"), "bundleHash");
        assertEq(e.state, 43, "state");
        assertEq(e.root, 7, "root");
        assertEq(e.totalsCommit, 99, "totalsCommit");
        assertEq(e.shortfall, SHORTFALL, "shortfall");
        assertEq(e.insuranceFund, FUND, "insuranceFund");
        assertEq(e.nBatches, 2, "nBatches");
        assertEq(e.batchesSubmitted, 2, "batchesSubmitted");
        assertEq(e.openedAt, 1_000, "openedAt");
        assertEq(e.finalizedAt, 2_000, "finalizedAt");
        assertTrue(e.verifiedOnly, "verifiedOnly");
        uint256[] memory r = registry.getReserves(5);
        assertEq(r.length, 2, "reserves length");
        assertEq(r[0], 500, "reserve 0");
        assertEq(r[1], 700, "reserve 1");
        uint256[] memory d = registry.getDeclaredReserves(5);
        assertTrue(d.length == 2 && d[0] == 11 && d[1] == 13, "declared reserves");
        uint256[] memory prices = registry.getPrices(5);
        assertTrue(prices.length == 2 && prices[0] == PRICE0 && prices[1] == PRICE1, "prices");
        assertEq(registry.latestFinalizedEpoch(), 5, "latestFinalizedEpoch");
        assertEq(registry.openEpochId(), 0, "openEpochId");
        assertEq(registry.latestEpoch(), 5, "latestEpoch");
    }

    function testFuzz_ShortfallAndFundStoredAndEmitted(uint256 shortfall, uint256 fund) public {
        shortfall = _bound(shortfall, 0, P - 1);
        fund = _bound(fund, 0, P - 1);
        _open(1, 1);
        _submit(1, 0, 42);
        SolvencyRegistry.Claim memory c = _claim(7, shortfall, fund);
        solvencyVerifier.expectInputs(_inputs(42, 1, 1, c));
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.EpochFinalized(1, 7, 42, 99, shortfall, fund, 1, _reserves(), _declared(), true);
        vm.prank(PUBLISHER);
        registry.finalize(1, _proof(), c);
        SolvencyRegistry.Epoch memory e = registry.getEpoch(1);
        assertEq(e.shortfall, shortfall, "shortfall");
        assertEq(e.insuranceFund, fund, "insuranceFund");
    }

    function test_ShortfallAndFundAreNotInterchangeable() public {
        _open(1, 1);
        _submit(1, 0, 42);
        // The verifier accepts only the proven order; swapping the two values is another statement.
        solvencyVerifier.expectInputs(_inputs(42, 1, 1, _claim(7)));
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.InvalidProof.selector, 1));
        registry.finalize(1, _proof(), _claim(7, FUND, SHORTFALL));
        _finalize(1, 7);
        assertEq(registry.getEpoch(1).shortfall, SHORTFALL, "shortfall");
    }

    function test_CannotFinalizeTwice() public {
        _fullEpoch(1, 7);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.NotOpen.selector, 1));
        registry.finalize(1, _proof(), _claim(7));
    }

    function testFuzz_IsFinalizedRoot(uint256 root, uint256 other) public {
        root = _bound(root, 0, P - 1);
        vm.assume(other != root);
        assertTrue(!registry.isFinalizedRoot(1, root), "before open");
        _open(1, 1);
        _submit(1, 0, 42);
        assertTrue(!registry.isFinalizedRoot(1, root), "while open");
        _finalize(1, root);
        assertTrue(registry.isFinalizedRoot(1, root), "finalized root");
        assertTrue(!registry.isFinalizedRoot(1, other), "other root");
        assertTrue(!registry.isFinalizedRoot(2, root), "other epoch");
    }

    function test_SelectorsCarryK() public view {
        assertTrue(
            registry.batchSelector()
                == bytes4(keccak256("verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[3])")),
            "batch selector"
        );
        // K = 10 + 3N for N = 2
        assertTrue(
            registry.solvencySelector()
                == bytes4(keccak256("verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[16])")),
            "solvency selector"
        );
        assertEq(registry.SOLVENCY_FIXED_INPUTS(), 9, "fixed solvency inputs");
    }
}

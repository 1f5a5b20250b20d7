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
        registry.finalize(1, pa, pb, pc, 7, 99, SHORTFALL, FUND, _reserves());

        _submit(1, 0, 42);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.BatchesMissing.selector, 1, 2));
        registry.finalize(1, pa, pb, pc, 7, 99, SHORTFALL, FUND, _reserves());
    }

    function test_WrongReserveCountReverts() public {
        _open(1, 1);
        _submit(1, 0, 42);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.WrongReserveCount.selector, 2, 3));
        registry.finalize(1, pa, pb, pc, 7, 99, SHORTFALL, FUND, new uint256[](3));
    }

    function test_StoredStateAndEvents() public {
        vm.warp(1_000);
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.EpochOpened(5, CTX, 2, keccak256("bundle"));
        _open(5, 2);
        _submit(5, 0, 42);
        _submit(5, 1, 43);

        vm.warp(2_000);
        // [finalState, ctxHash, root, totalsCommit, nBatches, shortfall, insuranceFund, epoch,
        //  domain, reserves...]
        uint256 domain = _domainOf(address(registry));
        solvencyVerifier.expectInputs(
            keccak256(abi.encode([uint256(43), CTX, 7, 99, 2, SHORTFALL, FUND, 5, domain, 500, 700]))
        );
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.EpochFinalized(5, 7, 43, 99, SHORTFALL, FUND, 2, _reserves());
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
        uint256[] memory r = registry.getReserves(5);
        assertEq(r.length, 2, "reserves length");
        assertEq(r[0], 500, "reserve 0");
        assertEq(r[1], 700, "reserve 1");
        assertEq(registry.latestFinalizedEpoch(), 5, "latestFinalizedEpoch");
        assertEq(registry.openEpochId(), 0, "openEpochId");
        assertEq(registry.latestEpoch(), 5, "latestEpoch");
    }

    function testFuzz_ShortfallAndFundStoredAndEmitted(uint256 shortfall, uint256 fund) public {
        shortfall = _bound(shortfall, 0, P - 1);
        fund = _bound(fund, 0, P - 1);
        _open(1, 1);
        _submit(1, 0, 42);
        uint256 domain = _domainOf(address(registry));
        solvencyVerifier.expectInputs(
            keccak256(abi.encode([uint256(42), CTX, 7, 99, 1, shortfall, fund, 1, domain, 500, 700]))
        );
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.EpochFinalized(1, 7, 42, 99, shortfall, fund, 1, _reserves());
        vm.prank(PUBLISHER);
        registry.finalize(1, pa, pb, pc, 7, 99, shortfall, fund, _reserves());
        SolvencyRegistry.Epoch memory e = registry.getEpoch(1);
        assertEq(e.shortfall, shortfall, "shortfall");
        assertEq(e.insuranceFund, fund, "insuranceFund");
    }

    function test_ShortfallAndFundAreNotInterchangeable() public {
        _open(1, 1);
        _submit(1, 0, 42);
        // The verifier accepts only the proven order; swapping the two values is another statement.
        uint256 domain = _domainOf(address(registry));
        solvencyVerifier.expectInputs(
            keccak256(abi.encode([uint256(42), CTX, 7, 99, 1, SHORTFALL, FUND, 1, domain, 500, 700]))
        );
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.InvalidProof.selector, 1));
        registry.finalize(1, pa, pb, pc, 7, 99, FUND, SHORTFALL, _reserves());
        _finalize(1, 7);
        assertEq(registry.getEpoch(1).shortfall, SHORTFALL, "shortfall");
    }

    function test_CannotFinalizeTwice() public {
        _fullEpoch(1, 7);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.NotOpen.selector, 1));
        registry.finalize(1, pa, pb, pc, 7, 99, SHORTFALL, FUND, _reserves());
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
        assertTrue(
            registry.solvencySelector()
                == bytes4(keccak256("verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[11])")),
            "solvency selector"
        );
        assertEq(registry.SOLVENCY_FIXED_INPUTS(), 9, "fixed solvency inputs");
    }
}

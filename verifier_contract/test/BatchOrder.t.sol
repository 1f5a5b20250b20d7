// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";

/// Batches are accepted strictly in index order; the state chain starts at ctxHash.
contract BatchOrderTest is RegistryTest {
    function setUp() public override {
        super.setUp();
        _open(1, 3);
    }

    function test_ReplayRejected() public {
        _submit(1, 0, 42);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.WrongBatchIndex.selector, 1, 0));
        registry.submitBatch(1, 0, pa, pb, pc, 42);
    }

    function test_SkipRejected() public {
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.WrongBatchIndex.selector, 0, 1));
        registry.submitBatch(1, 1, pa, pb, pc, 42);
    }

    function test_IndexPastEndRejected() public {
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.TooManyBatches.selector, 3, 3));
        registry.submitBatch(1, 3, pa, pb, pc, 42);
    }

    function test_WrongEpochRejected() public {
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.NotOpen.selector, 2));
        registry.submitBatch(2, 0, pa, pb, pc, 42);
    }

    function test_StateChainAndEvents() public {
        // The verifier only accepts the exact public signals [prevState, nextState, ctxHash].
        batchVerifier.expectInputs(keccak256(abi.encode([CTX, 42, CTX])));
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.BatchVerified(1, 0, CTX, 42);
        _submit(1, 0, 42);

        batchVerifier.expectInputs(keccak256(abi.encode([uint256(42), 43, CTX])));
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.BatchVerified(1, 1, 42, 43);
        _submit(1, 1, 43);

        SolvencyRegistry.Epoch memory e = registry.getEpoch(1);
        assertEq(e.state, 43, "state");
        assertEq(e.batchesSubmitted, 2, "batchesSubmitted");
        assertEq(e.ctxHash, CTX, "ctxHash");
    }
}

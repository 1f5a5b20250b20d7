// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";

/// Epoch numbers strictly increase and at most one epoch is open.
contract EpochOrderTest is RegistryTest {
    function test_EpochZeroRejected() public {
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.EpochNotIncreasing.selector, 0, 0));
        registry.openEpoch(0, CTX, 1, bytes32(0));
    }

    function testFuzz_EpochsStrictlyIncrease(uint64 first, uint64 second) public {
        vm.assume(first > 0);
        _fullEpoch(first, 7);
        if (second <= first) {
            vm.prank(PUBLISHER);
            vm.expectRevert(_err(SolvencyRegistry.EpochNotIncreasing.selector, second, first));
            registry.openEpoch(second, CTX, 1, bytes32(0));
        } else {
            _open(second, 1);
            assertEq(registry.latestEpoch(), second, "latestEpoch");
            assertEq(registry.openEpochId(), second, "openEpochId");
        }
    }

    function testFuzz_AbandonedEpochNumberNotReusable(uint64 epoch) public {
        vm.assume(epoch > 0);
        _open(epoch, 2);
        vm.prank(PUBLISHER);
        registry.abandonEpoch(epoch);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.EpochNotIncreasing.selector, epoch, epoch));
        registry.openEpoch(epoch, CTX, 1, bytes32(0));
    }

    function test_NoSecondOpenEpoch() public {
        _open(1, 2);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.EpochStillOpen.selector, 1));
        registry.openEpoch(2, CTX, 1, bytes32(0));
    }

    function test_AbandonFreesTheSlot() public {
        _open(1, 2);
        _submit(1, 0, 42);
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.EpochAbandoned(1, 1);
        vm.prank(PUBLISHER);
        registry.abandonEpoch(1);
        assertEq(registry.openEpochId(), 0, "still open");
        assertTrue(registry.getEpoch(1).status == SolvencyRegistry.Status.Abandoned, "status");
        _open(2, 1);
        // the abandoned epoch can no longer take writes
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.NotOpen.selector, 1));
        registry.submitBatch(1, 1, pa, pb, pc, 43);
    }

    function test_ZeroBatchesRejected() public {
        vm.prank(PUBLISHER);
        vm.expectRevert(abi.encodeWithSelector(SolvencyRegistry.ZeroBatches.selector));
        registry.openEpoch(1, CTX, 0, bytes32(0));
    }
}

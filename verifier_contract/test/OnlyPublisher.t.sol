// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";

/// Only the publisher may call any writer.
contract OnlyPublisherTest is RegistryTest {
    function testFuzz_OpenEpochRejectsOthers(address caller) public {
        vm.assume(caller != PUBLISHER);
        vm.prank(caller);
        vm.expectRevert(_err(SolvencyRegistry.NotPublisher.selector, uint160(caller)));
        registry.openEpoch(1, CTX, 1, bytes32(0));
    }

    function testFuzz_SubmitBatchRejectsOthers(address caller) public {
        vm.assume(caller != PUBLISHER);
        _open(1, 1);
        vm.prank(caller);
        vm.expectRevert(_err(SolvencyRegistry.NotPublisher.selector, uint160(caller)));
        registry.submitBatch(1, 0, pa, pb, pc, 42);
    }

    function testFuzz_FinalizeRejectsOthers(address caller) public {
        vm.assume(caller != PUBLISHER);
        _open(1, 1);
        _submit(1, 0, 42);
        vm.prank(caller);
        vm.expectRevert(_err(SolvencyRegistry.NotPublisher.selector, uint160(caller)));
        registry.finalize(1, _proof(), _claim(7));
    }

    function testFuzz_AddCustodyRejectsOthers(address caller) public {
        vm.assume(caller != PUBLISHER);
        _open(1, 1);
        vm.prank(caller);
        vm.expectRevert(_err(SolvencyRegistry.NotPublisher.selector, uint160(caller)));
        registry.addCustody(1, new address[](0), new bytes[](0));
    }

    function testFuzz_AbandonRejectsOthers(address caller) public {
        vm.assume(caller != PUBLISHER);
        _open(1, 1);
        vm.prank(caller);
        vm.expectRevert(_err(SolvencyRegistry.NotPublisher.selector, uint160(caller)));
        registry.abandonEpoch(1);
    }

    function test_PublisherCanWrite() public {
        _fullEpoch(1, 7);
        assertEq(registry.latestFinalizedEpoch(), 1, "not finalized");
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";

/// Every public value must be below SNARK_SCALAR_FIELD.
contract FieldOverflowTest is RegistryTest {
    function _big(uint256 x) internal pure returns (uint256) {
        return _bound(x, P, type(uint256).max);
    }

    function test_FieldConstant() public view {
        assertEq(registry.SNARK_SCALAR_FIELD(), P, "field");
    }

    function testFuzz_CtxHash(uint256 x) public {
        uint256 v = _big(x);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.FieldOverflow.selector, v));
        registry.openEpoch(1, v, 1, bytes32(0));
    }

    function testFuzz_NextState(uint256 x) public {
        uint256 v = _big(x);
        _open(1, 1);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.FieldOverflow.selector, v));
        registry.submitBatch(1, 0, pa, pb, pc, v);
    }

    function testFuzz_FinalizeValues(uint256 x, uint8 which) public {
        uint256 v = _big(x);
        _open(1, 1);
        _submit(1, 0, 42);
        SolvencyRegistry.Claim memory c = _claim(7);
        which %= 4 + 3 * uint8(N_ASSETS);
        if (which == 0) c.root = v;
        else if (which == 1) c.totalsCommit = v;
        else if (which == 2) c.shortfall = v;
        else if (which == 3) c.insuranceFund = v;
        else if (which < 4 + N_ASSETS) c.weights[which - 4] = v;
        else if (which < 4 + 2 * N_ASSETS) c.verified[which - 4 - N_ASSETS] = v;
        else c.declared[which - 4 - 2 * N_ASSETS] = v;
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.FieldOverflow.selector, v));
        registry.finalize(1, _proof(), c);
    }

    function test_LargestFieldElementAccepted() public {
        _open(1, 1);
        _submit(1, 0, P - 1);
        assertEq(registry.getEpoch(1).state, P - 1, "state");
    }
}

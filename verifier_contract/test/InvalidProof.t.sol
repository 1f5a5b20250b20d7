// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";

/// A verifier answering false makes the write revert with InvalidProof(kind), leaving no trace.
contract InvalidProofTest is RegistryTest {
    function test_BatchVerifierFalse() public {
        _open(1, 1);
        batchVerifier.setResult(false);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.InvalidProof.selector, 0));
        registry.submitBatch(1, 0, pa, pb, pc, 42);
        assertEq(registry.getEpoch(1).batchesSubmitted, 0, "batch counted");
        assertEq(registry.getEpoch(1).state, CTX, "state moved");
    }

    function test_SolvencyVerifierFalse() public {
        _open(1, 1);
        _submit(1, 0, 42);
        solvencyVerifier.setResult(false);
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.InvalidProof.selector, 1));
        registry.finalize(1, pa, pb, pc, 7, 99, SHORTFALL, FUND, _reserves());
        assertEq(registry.openEpochId(), 1, "epoch closed");
        assertTrue(!registry.isFinalizedRoot(1, 7), "root finalized");
    }

    function test_SolvencyWrongSignalsRejected() public {
        _open(1, 1);
        _submit(1, 0, 42);
        // [finalState, ctxHash, root, totalsCommit, nBatches, shortfall, insuranceFund, epoch,
        //  domain, reserves...] with another root
        uint256 domain = _domainOf(address(registry));
        solvencyVerifier.expectInputs(
            keccak256(abi.encode([uint256(42), CTX, 8, 99, 1, SHORTFALL, FUND, 1, domain, 500, 700]))
        );
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.InvalidProof.selector, 1));
        registry.finalize(1, pa, pb, pc, 7, 99, SHORTFALL, FUND, _reserves());
    }

    function test_StarvedSolvencyVerifierIsNotAnInvalidProof() public {
        _open(1, 1);
        _submit(1, 0, 42);
        // Too little gas left for a real verifier: named as such, the verifier is not called.
        vm.prank(PUBLISHER);
        try registry.finalize{gas: 150_000}(1, pa, pb, pc, 7, 99, SHORTFALL, FUND, _reserves()) {
            revert("starved finalize went through");
        } catch (bytes memory err) {
            assertTrue(_selector(err) == SolvencyRegistry.InsufficientGas.selector, "not InsufficientGas");
        }
        assertEq(registry.openEpochId(), 1, "epoch closed");
        _finalize(1, 7);
    }
}

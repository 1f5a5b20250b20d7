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
        registry.finalize(1, _proof(), _claim(7));
        assertEq(registry.openEpochId(), 1, "epoch closed");
        assertTrue(!registry.isFinalizedRoot(1, 7), "root finalized");
    }

    function test_SolvencyWrongSignalsRejected() public {
        _open(1, 1);
        _submit(1, 0, 42);
        // The signals of another root.
        solvencyVerifier.expectInputs(_inputs(42, 1, 1, _claim(8)));
        vm.prank(PUBLISHER);
        vm.expectRevert(_err(SolvencyRegistry.InvalidProof.selector, 1));
        registry.finalize(1, _proof(), _claim(7));
    }

    function test_StarvedSolvencyVerifierIsNotAnInvalidProof() public {
        _open(1, 1);
        _submit(1, 0, 42);
        // Enough for the price feeds and the token read (each with its own gas check), too little
        // left for a real verifier: named as such, the verifier is not called.
        vm.prank(PUBLISHER);
        try registry.finalize{gas: 300_000}(1, _proof(), _claim(7)) {
            revert("starved finalize went through");
        } catch (bytes memory err) {
            assertTrue(_selector(err) == SolvencyRegistry.InsufficientGas.selector, "not InsufficientGas");
        }
        assertEq(registry.openEpochId(), 1, "epoch closed");
        _finalize(1, 7);
    }
}

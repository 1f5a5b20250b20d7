// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {AccountMarginVerifier} from "../src/AccountMarginVerifier.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {MockMarginVerifier} from "./utils/MockVerifier.sol";

/// Single-account margin proofs: only against finalized epochs, with the registry's ctxHash and
/// root as public signals, a false verifier answer and a starved call named as such, and
/// attestations that keep the highest headroom proven.
contract AccountMarginVerifierTest is RegistryTest {
    uint256 internal constant ROOT = 7;
    uint256 internal constant ID = 0xC0FFEE;
    uint256 internal constant HEADROOM = 5_000;
    address internal constant ALICE = address(0xA11CE);

    AccountMarginVerifier internal margin;
    MockMarginVerifier internal marginVerifier;

    function setUp() public override {
        super.setUp();
        marginVerifier = new MockMarginVerifier();
        margin = new AccountMarginVerifier(address(registry), address(marginVerifier));
        _fullEpoch(1, ROOT);
        // From here on the mock verifier accepts exactly [ctxHash, root, idCommit, headroom].
        _expect(CTX, ROOT, ID, HEADROOM);
    }

    function _expect(uint256 ctx, uint256 root, uint256 id, uint256 headroom) internal {
        marginVerifier.expectInputs(keccak256(abi.encode([ctx, root, id, headroom])));
    }

    function _verify(uint64 epoch, uint256 id, uint256 headroom) internal view returns (bool) {
        return margin.verifyMargin(epoch, id, headroom, pa, pb, pc);
    }

    function _attest(uint64 epoch, uint256 id, uint256 headroom) internal returns (uint256) {
        return margin.attest(epoch, id, headroom, pa, pb, pc);
    }

    function _notFinalized(uint64 epoch, SolvencyRegistry.Status status) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(AccountMarginVerifier.EpochNotFinalized.selector, epoch, uint8(status));
    }

    function _invalid() internal pure returns (bytes memory) {
        return abi.encodeWithSelector(AccountMarginVerifier.InvalidProof.selector);
    }

    // ------------------------------------------------------------------ construction

    function test_Immutables() public view {
        assertTrue(address(margin.registry()) == address(registry), "registry");
        assertTrue(margin.verifier() == address(marginVerifier), "verifier");
        assertEq(margin.MARGIN_PUBLIC_INPUTS(), 4, "K");
        assertEq(margin.SNARK_SCALAR_FIELD(), P, "field");
    }

    function test_ConstructorNeedsCode() public {
        vm.expectRevert(_err(AccountMarginVerifier.NoCode.selector, uint160(ALICE)));
        new AccountMarginVerifier(ALICE, address(marginVerifier));
        vm.expectRevert(_err(AccountMarginVerifier.NoCode.selector, uint160(ALICE)));
        new AccountMarginVerifier(address(registry), ALICE);
        vm.expectRevert(_err(AccountMarginVerifier.NoCode.selector, 0));
        new AccountMarginVerifier(address(0), address(marginVerifier));
    }

    // ------------------------------------------------------------------ verifyMargin

    function test_ValidProofOnFinalizedEpoch() public view {
        assertTrue(_verify(1, ID, HEADROOM), "valid proof");
    }

    function test_UnknownEpochRejected() public {
        vm.expectRevert(_notFinalized(2, SolvencyRegistry.Status.None));
        _verify(2, ID, HEADROOM);
        vm.expectRevert(_notFinalized(0, SolvencyRegistry.Status.None));
        _verify(0, ID, HEADROOM);
    }

    function test_OpenEpochRejected() public {
        _open(2, 2);
        _submit(2, 0, 42);
        vm.expectRevert(_notFinalized(2, SolvencyRegistry.Status.Open));
        _verify(2, ID, HEADROOM);
        vm.expectRevert(_notFinalized(2, SolvencyRegistry.Status.Open));
        _attest(2, ID, HEADROOM);
    }

    function test_AbandonedEpochRejected() public {
        _open(2, 1);
        _submit(2, 0, 42);
        vm.prank(PUBLISHER);
        registry.abandonEpoch(2);
        // The mock would accept these signals: the status alone decides.
        _expect(CTX, 0, ID, HEADROOM);
        vm.expectRevert(_notFinalized(2, SolvencyRegistry.Status.Abandoned));
        _verify(2, ID, HEADROOM);
    }

    function test_FalseProofRejected() public {
        marginVerifier.setResult(false);
        vm.expectRevert(_invalid());
        _verify(1, ID, HEADROOM);
        vm.expectRevert(_invalid());
        _attest(1, ID, HEADROOM);
        (bool proven,) = margin.attestedHeadroom(1, ID);
        assertTrue(!proven, "recorded a false proof");
    }

    function test_WrongRootRejected() public {
        // Epoch 2 is finalized with another root: a proof made against epoch 1's root fails there.
        _fullEpoch(2, ROOT + 1);
        vm.expectRevert(_invalid());
        _verify(2, ID, HEADROOM);
        assertTrue(_verify(1, ID, HEADROOM), "epoch 1");
    }

    function test_WrongContextRejected() public {
        // Epoch 2 has the same root but another context (e.g. other prices).
        uint256 otherCtx = CTX + 1;
        vm.prank(PUBLISHER);
        registry.openEpoch(2, otherCtx, 1, keccak256("bundle"));
        _addCustody(2);
        _submit(2, 0, 42);
        _finalize(2, ROOT);
        vm.expectRevert(_invalid());
        _verify(2, ID, HEADROOM);
        // The signals sent are exactly the registry's for epoch 2.
        _expect(otherCtx, ROOT, ID, HEADROOM);
        assertTrue(_verify(2, ID, HEADROOM), "epoch 2 proof");
    }

    function testFuzz_OtherIdOrHeadroomRejected(uint256 id, uint256 headroom) public {
        id = _bound(id, 0, P - 1);
        headroom = _bound(headroom, 0, P - 1);
        vm.assume(id != ID || headroom != HEADROOM);
        vm.expectRevert(_invalid());
        _verify(1, id, headroom);
    }

    function testFuzz_FieldOverflow(uint256 x, bool onId) public {
        uint256 v = _bound(x, P, type(uint256).max);
        vm.expectRevert(_err(AccountMarginVerifier.FieldOverflow.selector, v));
        if (onId) _verify(1, v, HEADROOM);
        else _verify(1, ID, v);
        vm.expectRevert(_err(AccountMarginVerifier.FieldOverflow.selector, v));
        if (onId) _attest(1, v, HEADROOM);
        else _attest(1, ID, v);
    }

    function test_LargestFieldElementsAccepted() public {
        _expect(CTX, ROOT, P - 1, P - 1);
        assertTrue(_verify(1, P - 1, P - 1), "p - 1");
        assertEq(_attest(1, P - 1, P - 1), P - 1, "recorded");
        (bool proven, uint256 h) = margin.attestedHeadroom(1, P - 1);
        assertTrue(proven && h == P - 1, "attested p - 1");
    }

    function test_StarvedVerifierIsNotAnInvalidProof() public {
        try margin.verifyMargin{gas: 150_000}(1, ID, HEADROOM, pa, pb, pc) {
            revert("starved verifyMargin went through");
        } catch (bytes memory err) {
            assertTrue(_selector(err) == AccountMarginVerifier.InsufficientGas.selector, "verifyMargin");
        }
        try margin.attest{gas: 150_000}(1, ID, HEADROOM, pa, pb, pc) {
            revert("starved attest went through");
        } catch (bytes memory err) {
            assertTrue(_selector(err) == AccountMarginVerifier.InsufficientGas.selector, "attest");
        }
        (bool proven,) = margin.attestedHeadroom(1, ID);
        assertTrue(!proven, "starved attest recorded");
        // Enough for a real verifier (the guard's threshold, the registry read and the rest).
        assertTrue(margin.verifyMargin{gas: 300_000}(1, ID, HEADROOM, pa, pb, pc), "enough gas");
    }

    // ------------------------------------------------------------------ attest

    function test_AttestRecordsAndEmits() public {
        (bool proven, uint256 h) = margin.attestedHeadroom(1, ID);
        assertTrue(!proven && h == 0, "before");
        vm.expectEmit(true, true, true, true, address(margin));
        emit AccountMarginVerifier.MarginAttested(1, ID, HEADROOM, ALICE);
        vm.prank(ALICE);
        assertEq(_attest(1, ID, HEADROOM), HEADROOM, "returned");
        (proven, h) = margin.attestedHeadroom(1, ID);
        assertTrue(proven, "proven");
        assertEq(h, HEADROOM, "headroom");
        // Keyed by epoch and idCommit.
        (proven,) = margin.attestedHeadroom(2, ID);
        assertTrue(!proven, "other epoch");
        (proven,) = margin.attestedHeadroom(1, ID + 1);
        assertTrue(!proven, "other id");
    }

    function test_ZeroHeadroomIsProven() public {
        _expect(CTX, ROOT, ID, 0);
        assertEq(_attest(1, ID, 0), 0, "returned");
        (bool proven, uint256 h) = margin.attestedHeadroom(1, ID);
        assertTrue(proven && h == 0, "zero headroom is a proof, not an absence");
    }

    function testFuzz_AttestKeepsTheHighest(uint256 first, uint256 second) public {
        first = _bound(first, 0, P - 1);
        second = _bound(second, 0, P - 1);
        uint256 best = first > second ? first : second;
        _expect(CTX, ROOT, ID, first);
        assertEq(_attest(1, ID, first), first, "first");
        _expect(CTX, ROOT, ID, second);
        // A lower proof still verifies and is logged, but does not lower the record.
        vm.expectEmit(true, true, true, true, address(margin));
        emit AccountMarginVerifier.MarginAttested(1, ID, second, address(this));
        assertEq(_attest(1, ID, second), best, "second");
        (bool proven, uint256 h) = margin.attestedHeadroom(1, ID);
        assertTrue(proven, "proven");
        assertEq(h, best, "highest");
    }

    function test_AttestPerEpoch() public {
        _fullEpoch(2, ROOT);
        _expect(CTX, ROOT, ID, 10);
        _attest(1, ID, 10);
        _expect(CTX, ROOT, ID, 3);
        _attest(2, ID, 3);
        (, uint256 h1) = margin.attestedHeadroom(1, ID);
        (, uint256 h2) = margin.attestedHeadroom(2, ID);
        assertEq(h1, 10, "epoch 1");
        assertEq(h2, 3, "epoch 2");
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../../src/SolvencyRegistry.sol";
import {Vm} from "./Vm.sol";
import {MockBatchVerifier, MockSolvencyVerifier} from "./MockVerifier.sol";

/// @dev Shared fixture: a registry over two mock verifiers, N_ASSETS = 2, plus small helpers.
abstract contract RegistryTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant P =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant N_ASSETS = 2;
    address internal constant PUBLISHER = address(0xB0B);
    uint256 internal constant CTX = 1234;
    uint256 internal constant SHORTFALL = 3;
    uint256 internal constant FUND = 10;

    SolvencyRegistry internal registry;
    MockBatchVerifier internal batchVerifier;
    MockSolvencyVerifier internal solvencyVerifier;

    uint256[2] internal pa = [uint256(1), 2];
    uint256[2][2] internal pb = [[uint256(3), 4], [uint256(5), 6]];
    uint256[2] internal pc = [uint256(7), 8];

    function setUp() public virtual {
        batchVerifier = new MockBatchVerifier();
        solvencyVerifier = new MockSolvencyVerifier();
        registry = new SolvencyRegistry(PUBLISHER, address(batchVerifier), address(solvencyVerifier), N_ASSETS);
    }

    function _open(uint64 epoch, uint64 nBatches) internal {
        vm.prank(PUBLISHER);
        registry.openEpoch(epoch, CTX, nBatches, keccak256("bundle"));
    }

    function _submit(uint64 epoch, uint64 index, uint256 nextState) internal {
        vm.prank(PUBLISHER);
        registry.submitBatch(epoch, index, pa, pb, pc, nextState);
    }

    /// @dev The domain a prover binds a solvency proof for `reg` to, computed here (not read
    ///      back from the registry) with the current chain id.
    function _domainOf(address reg) internal view returns (uint256) {
        return (block.chainid << 160) | uint160(reg);
    }

    function _reserves() internal pure returns (uint256[] memory r) {
        r = new uint256[](N_ASSETS);
        r[0] = 500;
        r[1] = 700;
    }

    function _finalize(uint64 epoch, uint256 root) internal {
        vm.prank(PUBLISHER);
        registry.finalize(epoch, pa, pb, pc, root, 99, SHORTFALL, FUND, _reserves());
    }

    /// @dev Opens `epoch` with one batch, submits it and finalizes with `root`.
    function _fullEpoch(uint64 epoch, uint256 root) internal {
        _open(epoch, 1);
        _submit(epoch, 0, 42);
        _finalize(epoch, root);
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + (x % (hi - lo + 1));
    }

    function _err(bytes4 selector, uint256 x) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, x);
    }

    function _err(bytes4 selector, uint256 x, uint256 y) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, x, y);
    }

    /// @dev The selector of a revert payload (for errors whose arguments depend on gas).
    function _selector(bytes memory revertData) internal pure returns (bytes4) {
        return bytes4(revertData);
    }

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        require(a == b, what);
    }

    function assertTrue(bool c, string memory what) internal pure {
        require(c, what);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../../src/SolvencyRegistry.sol";
import {AccountMarginVerifier} from "../../src/AccountMarginVerifier.sol";
import {Vm} from "./Vm.sol";
import {BookBatchVerifier, BookMarginVerifier, BookSolvencyVerifier, Proof} from "./BookVerifier.sol";

/// @dev Fixture over stand-in verifiers that accept a proof only for the statement it was
///      issued for (compared modulo p, see BookVerifier.sol), and that need the real verifiers'
///      gas: a registry (N = 2 assets) and its AccountMarginVerifier, with helpers that publish
///      honest epochs and keep their proofs for replays.
abstract contract BookRegistryTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant P =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant N_ASSETS = 2;
    address internal constant PUBLISHER = address(0xB0B);
    /// @dev The real verifiers' needs on entry plus ~2k (see RegistryHandler.BATCH_VERIFY_COST).
    uint256 internal constant BATCH_COST = 207_000;
    uint256 internal constant SOLVENCY_COST = 260_000;
    uint256 internal constant MARGIN_COST = 214_000;

    SolvencyRegistry internal registry;
    AccountMarginVerifier internal margin;
    BookBatchVerifier internal batchBook;
    BookSolvencyVerifier internal solvencyBook;
    BookMarginVerifier internal marginBook;

    /// @dev An accepted batch: its proof, the state it started from and the one it produced.
    struct Batch {
        Proof pr;
        uint256 prev;
        uint256 next;
    }

    /// @dev Batches of each epoch published through the helpers.
    mapping(uint64 => Batch[]) internal batches;

    function setUp() public virtual {
        batchBook = new BookBatchVerifier(BATCH_COST);
        solvencyBook = new BookSolvencyVerifier(SOLVENCY_COST);
        marginBook = new BookMarginVerifier(MARGIN_COST);
        registry = new SolvencyRegistry(PUBLISHER, address(batchBook), address(solvencyBook), N_ASSETS);
        margin = new AccountMarginVerifier(address(registry), address(marginBook));
    }

    // ------------------------------------------------------------------ proofs

    function _batchProof(uint256 prev, uint256 next, uint256 ctx) internal returns (Proof memory) {
        uint256[] memory x = new uint256[](3);
        (x[0], x[1], x[2]) = (prev, next, ctx);
        return batchBook.issue(x);
    }

    function _reserves() internal pure returns (uint256[] memory r) {
        r = new uint256[](N_ASSETS);
        (r[0], r[1]) = (500, 700);
    }

    /// @dev The domain a prover binds a solvency proof for `reg` to, computed here (not read
    ///      back from the registry) with the current chain id.
    function _domainOf(address reg) internal view returns (uint256) {
        return (block.chainid << 160) | uint160(reg);
    }

    /// @dev [finalState, ctxHash, root, totalsCommit, batchCount, shortfall, insuranceFund, epoch,
    ///      domain, reserves...] with totalsCommit 99, shortfall 3, fund 10, for `registry`.
    function _solvencySignals(uint64 epoch, uint256 root, uint256[] memory reserves)
        internal
        view
        returns (uint256[] memory x)
    {
        SolvencyRegistry.Epoch memory e = registry.getEpoch(epoch);
        x = new uint256[](9 + N_ASSETS);
        (x[0], x[1], x[2], x[3], x[4], x[5], x[6]) = (e.state, e.ctxHash, root, 99, e.nBatches, 3, 10);
        (x[7], x[8]) = (epoch, _domainOf(address(registry)));
        for (uint256 i = 0; i < N_ASSETS; ++i) {
            x[9 + i] = reserves[i];
        }
    }

    function _solvencyProof(uint64 epoch, uint256 root) internal returns (Proof memory) {
        return solvencyBook.issue(_solvencySignals(epoch, root, _reserves()));
    }

    function _marginProof(uint64 epoch, uint256 id, uint256 headroom) internal returns (Proof memory) {
        SolvencyRegistry.Epoch memory e = registry.getEpoch(epoch);
        uint256[] memory x = new uint256[](4);
        (x[0], x[1], x[2], x[3]) = (e.ctxHash, e.root, id, headroom);
        return marginBook.issue(x);
    }

    // ------------------------------------------------------------------ publishing

    function _open(uint64 epoch, uint256 ctx, uint64 n) internal {
        vm.prank(PUBLISHER);
        registry.openEpoch(epoch, ctx, n, keccak256(abi.encode("bundle", epoch)));
    }

    /// @dev The next honest batch of the open `epoch`, moving to `next`.
    function _submit(uint64 epoch, uint256 next) internal {
        SolvencyRegistry.Epoch memory e = registry.getEpoch(epoch);
        Proof memory pr = _batchProof(e.state, next, e.ctxHash);
        vm.prank(PUBLISHER);
        registry.submitBatch(epoch, e.batchesSubmitted, pr.a, pr.b, pr.c, next);
        batches[epoch].push(Batch(pr, e.state, next));
    }

    function _finalize(uint64 epoch, uint256 root) internal {
        Proof memory pr = _solvencyProof(epoch, root);
        _sendFinalize(epoch, pr, root);
    }

    function _sendFinalize(uint64 epoch, Proof memory pr, uint256 root) internal {
        vm.prank(PUBLISHER);
        registry.finalize(epoch, pr.a, pr.b, pr.c, root, 99, 3, 10, _reserves());
    }

    /// @dev Opens `epoch` with `n` batches whose states are derived from `seed`, submits them all
    ///      and finalizes with `root`.
    function _publish(uint64 epoch, uint256 ctx, uint64 n, uint256 seed, uint256 root) internal {
        _open(epoch, ctx, n);
        for (uint64 i = 0; i < n; ++i) {
            _submit(epoch, _state(seed, i));
        }
        _finalize(epoch, root);
    }

    /// @dev Distinct states for batch i of a chain seeded with `seed`.
    function _state(uint256 seed, uint256 i) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, i))) % P;
    }

    function _recordHash(uint64 epoch) internal view returns (bytes32) {
        return keccak256(abi.encode(registry.getEpoch(epoch), registry.getReserves(epoch)));
    }

    // ------------------------------------------------------------------ asserting calls

    function _err(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector);
    }

    function _err(bytes4 selector, uint256 x) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, x);
    }

    function _err(bytes4 selector, uint256 x, uint256 y) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, x, y);
    }

    /// @dev Calls `target` as `caller` and requires the revert data to be exactly `expected`.
    function _reverts(address caller, address target, bytes memory data, bytes memory expected, string memory what)
        internal
    {
        vm.prank(caller);
        (bool ok, bytes memory ret) = target.call(data);
        require(!ok, string.concat(what, ": accepted"));
        require(keccak256(ret) == keccak256(expected), string.concat(what, ": wrong error"));
    }

    function _submitCall(uint64 epoch, uint64 index, Proof memory pr, uint256 next)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeCall(SolvencyRegistry.submitBatch, (epoch, index, pr.a, pr.b, pr.c, next));
    }

    function _finalizeCall(uint64 epoch, Proof memory pr, uint256 root) internal pure returns (bytes memory) {
        return abi.encodeCall(SolvencyRegistry.finalize, (epoch, pr.a, pr.b, pr.c, root, 99, 3, 10, _reserves()));
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../../src/SolvencyRegistry.sol";
import {AccountMarginVerifier} from "../../src/AccountMarginVerifier.sol";
import {MockERC20} from "../../src/demo/MockERC20.sol";
import {Vm} from "./Vm.sol";
import {Fixtures} from "./Fixtures.sol";
import {BookBatchVerifier, BookMarginVerifier, BookSolvencyVerifier, Proof} from "./BookVerifier.sol";

/// @dev Fixture over stand-in verifiers that accept a proof only for the statement it was
///      issued for (compared modulo p, see BookVerifier.sol), and that need the real verifiers'
///      gas: a registry (N = 2 assets) and its AccountMarginVerifier, with helpers that publish
///      honest epochs and keep their proofs for replays. Asset 0 is an 18-decimal token priced
///      by three feeds at $2; asset 1 is not on this chain (declared only) and unpriced here.
///      Epochs have no custody address unless a test adds one (`_addCustody`), so their
///      verified reserves are what the registry reads for the custody they have (0 without).
abstract contract BookRegistryTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant P =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant N_ASSETS = 2;
    address internal constant PUBLISHER = address(0xB0B);
    /// @dev The real verifiers' needs on entry plus ~2k (see RegistryHandler.BATCH_VERIFY_COST).
    uint256 internal constant BATCH_COST = 207_000;
    uint256 internal constant SOLVENCY_COST = 294_000;
    uint256 internal constant MARGIN_COST = 214_000;
    uint256 internal constant PRICE0 = 2e8; // $2
    uint256 internal constant PRICE1 = 1e8; // unchecked
    uint256 internal constant CUSTODY_KEY = 0xC057;

    SolvencyRegistry internal registry;
    AccountMarginVerifier internal margin;
    BookBatchVerifier internal batchBook;
    BookSolvencyVerifier internal solvencyBook;
    BookMarginVerifier internal marginBook;
    MockERC20 internal token;
    address[] internal feeds;

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
        token = new MockERC20("Wrapped", "WRP", 18);
        feeds = Fixtures.feeds(3, PRICE0);
        registry = new SolvencyRegistry(PUBLISHER, address(batchBook), address(solvencyBook), N_ASSETS, _assets());
        margin = new AccountMarginVerifier(address(registry), address(marginBook));
    }

    function _assets() internal view returns (SolvencyRegistry.AssetConfig[] memory a) {
        a = new SolvencyRegistry.AssetConfig[](N_ASSETS);
        a[0] = Fixtures.asset(address(token), 18, 18, feeds);
        a[1] = Fixtures.asset(address(0), 0, 6, new address[](0));
    }

    // ------------------------------------------------------------------ proofs

    function _batchProof(uint256 prev, uint256 next, uint256 ctx) internal returns (Proof memory) {
        uint256[] memory x = new uint256[](3);
        (x[0], x[1], x[2]) = (prev, next, ctx);
        return batchBook.issue(x);
    }

    /// @dev The claim an honest prover makes for `epoch` of `registry` with `root`: totalsCommit
    ///      99, shortfall 3, fund 10, the fixture's prices, the reserves its custody holds now,
    ///      declared [500, 700], not covered by verified reserves alone.
    function _claim(uint64 epoch, uint256 root) internal view returns (SolvencyRegistry.Claim memory c) {
        (c.root, c.totalsCommit, c.shortfall, c.insuranceFund) = (root, 99, 3, 10);
        c.weights = Fixtures.two(Fixtures.weight(PRICE0, 18), Fixtures.weight(PRICE1, 6));
        c.verified = registry.onchainReserves(registry.getCustody(epoch));
        c.declared = Fixtures.two(500, 700);
    }

    /// @dev The domain a prover binds a solvency proof for `reg` to, computed here (not read
    ///      back from the registry) with the current chain id.
    function _domainOf(address reg) internal view returns (uint256) {
        return (block.chainid << 160) | uint160(reg);
    }

    /// @dev [finalState, ctxHash, root, totalsCommit, batchCount, shortfall, insuranceFund, epoch,
    ///      domain, weights, verified, declared, verifiedOnly] of `c` for `epoch` of `registry`.
    function _solvencySignals(uint64 epoch, SolvencyRegistry.Claim memory c) internal view returns (uint256[] memory) {
        SolvencyRegistry.Epoch memory e = registry.getEpoch(epoch);
        return _signalsOf(e.state, e.ctxHash, e.nBatches, epoch, _domainOf(address(registry)), c);
    }

    /// @dev The solvency signals of `c` with the values the registry supplies given explicitly.
    function _signalsOf(
        uint256 finalState,
        uint256 ctx,
        uint256 nBatches,
        uint256 epoch,
        uint256 domain,
        SolvencyRegistry.Claim memory c
    ) internal pure returns (uint256[] memory x) {
        x = new uint256[](10 + 3 * N_ASSETS);
        (x[0], x[1], x[2], x[3], x[4], x[5], x[6]) =
            (finalState, ctx, c.root, c.totalsCommit, nBatches, c.shortfall, c.insuranceFund);
        (x[7], x[8]) = (epoch, domain);
        for (uint256 i = 0; i < N_ASSETS; ++i) {
            (x[9 + i], x[9 + N_ASSETS + i], x[9 + 2 * N_ASSETS + i]) = (c.weights[i], c.verified[i], c.declared[i]);
        }
        x[9 + 3 * N_ASSETS] = c.verifiedOnly ? 1 : 0;
    }

    function _solvencyProof(uint64 epoch, uint256 root) internal returns (Proof memory) {
        return solvencyBook.issue(_solvencySignals(epoch, _claim(epoch, root)));
    }

    function _marginProof(uint64 epoch, uint256 id, uint256 headroom) internal returns (Proof memory) {
        SolvencyRegistry.Epoch memory e = registry.getEpoch(epoch);
        uint256[] memory x = new uint256[](4);
        (x[0], x[1], x[2], x[3]) = (e.ctxHash, e.root, id, headroom);
        return marginBook.issue(x);
    }

    function _p(Proof memory pr) internal pure returns (SolvencyRegistry.Proof memory) {
        return SolvencyRegistry.Proof(pr.a, pr.b, pr.c);
    }

    // ------------------------------------------------------------------ publishing

    function _open(uint64 epoch, uint256 ctx, uint64 n) internal {
        vm.prank(PUBLISHER);
        registry.openEpoch(epoch, ctx, n, keccak256(abi.encode("bundle", epoch)));
    }

    /// @dev Adds the fixture's custody address (holding `amount` of the token) to the open `epoch`.
    function _addCustody(uint64 epoch, uint256 amount) internal {
        address holder = vm.addr(CUSTODY_KEY);
        token.mint(holder, amount);
        bytes memory sig = Fixtures.custodySignature(CUSTODY_KEY, address(registry), epoch, holder);
        vm.prank(PUBLISHER);
        registry.addCustody(epoch, Fixtures.one(holder), Fixtures.one(sig));
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
        SolvencyRegistry.Claim memory c = _claim(epoch, root); // (its reads would take the prank)
        vm.prank(PUBLISHER);
        require(registry.finalize(epoch, _p(pr), c), "finalize refused");
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
        return keccak256(
            abi.encode(
                registry.getEpoch(epoch),
                registry.getReserves(epoch),
                registry.getDeclaredReserves(epoch),
                registry.getPrices(epoch),
                registry.getCustody(epoch)
            )
        );
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

    function _finalizeCall(uint64 epoch, Proof memory pr, uint256 root) internal view returns (bytes memory) {
        return abi.encodeCall(SolvencyRegistry.finalize, (epoch, _p(pr), _claim(epoch, root)));
    }
}

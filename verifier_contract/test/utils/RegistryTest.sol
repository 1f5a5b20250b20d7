// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../../src/SolvencyRegistry.sol";
import {ReserveBalances} from "../../src/ReserveBalances.sol";
import {MockERC20} from "../../src/demo/MockERC20.sol";
import {Vm} from "./Vm.sol";
import {Fixtures} from "./Fixtures.sol";
import {MockBatchVerifier, MockSolvencyVerifier} from "./MockVerifier.sol";

/// @dev Shared fixture: a registry over two mock verifiers and N_ASSETS = 2 assets, plus small
///      helpers. Asset 0 is a 6-decimal token counted with 8 decimals in the snapshot, priced by
///      three feeds at $1; asset 1 is ether, unpriced on-chain. One custody address, added to
///      every epoch `_open` opens, holds 5 token units (500 in the asset's units) and 700 wei.
abstract contract RegistryTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant P =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant N_ASSETS = 2;
    address internal constant PUBLISHER = address(0xB0B);
    uint256 internal constant CTX = 1234;
    uint256 internal constant SHORTFALL = 3;
    uint256 internal constant FUND = 10;
    uint256 internal constant CUSTODY_KEY = 0xC057;
    uint256 internal constant PRICE0 = 1e8; // $1
    uint256 internal constant PRICE1 = 3_000e8; // unchecked

    SolvencyRegistry internal registry;
    MockBatchVerifier internal batchVerifier;
    MockSolvencyVerifier internal solvencyVerifier;
    MockERC20 internal token;
    address[] internal feeds;
    address internal custody;

    uint256[2] internal pa = [uint256(1), 2];
    uint256[2][2] internal pb = [[uint256(3), 4], [uint256(5), 6]];
    uint256[2] internal pc = [uint256(7), 8];

    function setUp() public virtual {
        batchVerifier = new MockBatchVerifier();
        solvencyVerifier = new MockSolvencyVerifier();
        token = new MockERC20("USD Coin", "USDC", 6);
        feeds = Fixtures.feeds(3, PRICE0);
        registry = new SolvencyRegistry(
            PUBLISHER, address(batchVerifier), address(solvencyVerifier), N_ASSETS, _assets()
        );
        custody = vm.addr(CUSTODY_KEY);
        token.mint(custody, 5);
        vm.deal(custody, 700);
    }

    function _assets() internal view returns (SolvencyRegistry.AssetConfig[] memory a) {
        a = new SolvencyRegistry.AssetConfig[](N_ASSETS);
        a[0] = Fixtures.asset(address(token), 6, 8, feeds);
        a[1] = Fixtures.asset(ReserveBalances.NATIVE, 18, 18, new address[](0));
    }

    /// @dev Opens `epoch` and adds the fixture's custody address to it.
    function _open(uint64 epoch, uint64 nBatches) internal {
        vm.prank(PUBLISHER);
        registry.openEpoch(epoch, CTX, nBatches, keccak256("bundle"));
        _addCustody(epoch);
    }

    function _addCustody(uint64 epoch) internal {
        bytes memory sig = Fixtures.custodySignature(CUSTODY_KEY, address(registry), epoch, custody);
        vm.prank(PUBLISHER);
        registry.addCustody(epoch, Fixtures.one(custody), Fixtures.one(sig));
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

    function _weights() internal pure returns (uint256[] memory) {
        return Fixtures.two(Fixtures.weight(PRICE0, 8), Fixtures.weight(PRICE1, 18));
    }

    /// @dev The custody address's reserves in the assets' units: 5 units of a 6-decimal token
    ///      counted with 8 decimals, and 700 wei.
    function _reserves() internal pure returns (uint256[] memory) {
        return Fixtures.two(500, 700);
    }

    function _declared() internal pure returns (uint256[] memory) {
        return Fixtures.two(11, 13);
    }

    function _proof() internal view returns (SolvencyRegistry.Proof memory) {
        return SolvencyRegistry.Proof(pa, pb, pc);
    }

    function _claim(uint256 root) internal pure returns (SolvencyRegistry.Claim memory) {
        return _claim(root, SHORTFALL, FUND);
    }

    function _claim(uint256 root, uint256 shortfall, uint256 fund)
        internal
        pure
        returns (SolvencyRegistry.Claim memory)
    {
        return SolvencyRegistry.Claim(root, 99, shortfall, fund, _weights(), _reserves(), _declared(), true);
    }

    /// @dev keccak256 of the K = 16 solvency signals of `c` for `epoch` of `registry`, as the mock
    ///      verifier hashes them: [finalState, ctxHash, root, totalsCommit, nBatches, shortfall,
    ///      insuranceFund, epoch, domain, weights, verified, declared, verifiedOnly].
    function _inputs(uint256 finalState, uint256 nBatches, uint64 epoch, SolvencyRegistry.Claim memory c)
        internal
        view
        returns (bytes32)
    {
        bytes memory fixed9 = abi.encode(
            finalState, CTX, c.root, c.totalsCommit, nBatches, c.shortfall, c.insuranceFund, epoch,
            _domainOf(address(registry))
        );
        return keccak256(
            abi.encodePacked(fixed9, c.weights, c.verified, c.declared, uint256(c.verifiedOnly ? 1 : 0))
        );
    }

    function _finalize(uint64 epoch, uint256 root) internal {
        vm.prank(PUBLISHER);
        require(registry.finalize(epoch, _proof(), _claim(root)), "finalize refused");
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

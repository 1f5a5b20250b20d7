// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {PriceCheck} from "../src/PriceCheck.sol";
import {ReserveBalances} from "../src/ReserveBalances.sol";
import {MockERC20} from "../src/demo/MockERC20.sol";
import {MockAggregator} from "../src/demo/MockAggregator.sol";
import {Vm} from "./utils/Vm.sol";
import {Fixtures} from "./utils/Fixtures.sol";
import {MockBatchVerifier, MockSolvencyVerifierN} from "./utils/MockVerifier.sol";
import {MockWallet} from "./CustodySignatures.t.sol";

/// The registry checks what it can see itself: verified reserves are read at finalize from
/// custody addresses that signed for the epoch, and must hold at least the proven ones; claimed prices
/// pass the feeds' circuit breaker, or finalize refuses to attest without reverting, the epoch
/// left open. Four assets: a 6-decimal token counted with 8 decimals, a 24-decimal token counted
/// with 18, ether counted with 9 (each priced by three feeds), and an asset on no chain the
/// registry sees (declared only, unpriced here).
contract ReservesAndPricesTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant N = 4;
    address internal constant PUBLISHER = address(0xB0B);
    uint256 internal constant NOW = 1_700_000_000;
    uint256 internal constant CTX = 1234;
    uint256 internal constant KEY_1 = 0xA11CE;
    uint256 internal constant KEY_2 = 0xB0B0;
    uint256 internal constant STRANGER_KEY = 0x5757;

    /// @dev USD prices, 8 decimals.
    uint256 internal constant USDC_PRICE = 1e8;
    uint256 internal constant ODD_PRICE = 2.5e8;
    uint256 internal constant ETH_PRICE = 3_000e8;
    uint256 internal constant BTC_PRICE = 65_000e8;

    SolvencyRegistry internal registry;
    MockBatchVerifier internal batchVerifier;
    MockSolvencyVerifierN internal solvencyVerifier;
    MockERC20 internal usdc; // 6 decimals, 8 in the snapshot
    MockERC20 internal odd; // 24 decimals, 18 in the snapshot
    address[][N] internal feeds;
    /// @dev The two custody addresses, increasing, and their keys.
    address internal holder1;
    address internal holder2;
    uint256 internal key1;
    uint256 internal key2;

    function setUp() public {
        vm.warp(NOW);
        batchVerifier = new MockBatchVerifier();
        solvencyVerifier = new MockSolvencyVerifierN(N);
        usdc = new MockERC20("USD Coin", "USDC", 6);
        odd = new MockERC20("Odd", "ODD", 24);
        feeds[0] = Fixtures.feeds(3, USDC_PRICE);
        feeds[1] = Fixtures.feeds(3, ODD_PRICE);
        feeds[2] = Fixtures.feeds(3, ETH_PRICE);
        registry = new SolvencyRegistry(PUBLISHER, address(batchVerifier), address(solvencyVerifier), N, _assets());
        (holder1, key1, holder2, key2) = vm.addr(KEY_1) < vm.addr(KEY_2)
            ? (vm.addr(KEY_1), KEY_1, vm.addr(KEY_2), KEY_2)
            : (vm.addr(KEY_2), KEY_2, vm.addr(KEY_1), KEY_1);
        usdc.mint(holder1, 1_500_000); // 1.5
        usdc.mint(holder2, 2_000_001); // 2.000001
        odd.mint(holder1, 1e24 + 999_999_999_999_999); // 1.000000000999999999999999
        odd.mint(holder2, 2e24);
        vm.deal(holder1, 3 ether + 123);
        vm.deal(holder2, 0.5 ether + 999_999_999);
    }

    function _assets() internal view returns (SolvencyRegistry.AssetConfig[] memory a) {
        a = new SolvencyRegistry.AssetConfig[](N);
        a[0] = Fixtures.asset(address(usdc), 6, 8, feeds[0]);
        a[1] = Fixtures.asset(address(odd), 24, 18, feeds[1]);
        a[2] = Fixtures.asset(ReserveBalances.NATIVE, 18, 9, feeds[2]);
        a[3] = Fixtures.asset(address(0), 0, 8, new address[](0));
    }

    // ------------------------------------------------------------------ helpers

    function _feed(uint256 asset, uint256 i) internal view returns (MockAggregator) {
        return MockAggregator(feeds[asset][i]);
    }

    function _sig(uint256 key, uint64 epoch, address holder) internal view returns (bytes memory) {
        return Fixtures.custodySignature(key, address(registry), epoch, holder);
    }

    function _holders() internal view returns (address[] memory h) {
        h = new address[](2);
        (h[0], h[1]) = (holder1, holder2);
    }

    function _sigs(uint64 epoch) internal view returns (bytes[] memory s) {
        s = new bytes[](2);
        (s[0], s[1]) = (_sig(key1, epoch, holder1), _sig(key2, epoch, holder2));
    }

    /// @dev Opens `epoch` (one batch, submitted) and adds both custody addresses.
    function _ready(uint64 epoch) internal {
        vm.prank(PUBLISHER);
        registry.openEpoch(epoch, CTX, 1, keccak256("bundle"));
        vm.prank(PUBLISHER);
        registry.addCustody(epoch, _holders(), _sigs(epoch));
        vm.prank(PUBLISHER);
        registry.submitBatch(epoch, 0, [uint256(1), 2], [[uint256(3), 4], [uint256(5), 6]], [uint256(7), 8], 42);
    }

    function _weights() internal pure returns (uint256[] memory w) {
        w = new uint256[](N);
        w[0] = Fixtures.weight(USDC_PRICE, 8);
        w[1] = Fixtures.weight(ODD_PRICE, 18);
        w[2] = Fixtures.weight(ETH_PRICE, 9);
        w[3] = Fixtures.weight(BTC_PRICE, 8);
    }

    /// @dev What the custody holds, computed here from the balances: 6 -> 8 decimals scales up,
    ///      24 -> 18 and 18 -> 9 floor.
    function _held() internal view returns (uint256[] memory r) {
        r = new uint256[](N);
        r[0] = (usdc.balanceOf(holder1) + usdc.balanceOf(holder2)) * 100;
        r[1] = (odd.balanceOf(holder1) + odd.balanceOf(holder2)) / 1e6;
        r[2] = (holder1.balance + holder2.balance) / 1e9;
    }

    function _claim() internal view returns (SolvencyRegistry.Claim memory c) {
        c.root = 7;
        c.totalsCommit = 99;
        (c.shortfall, c.insuranceFund) = (3, 10);
        c.weights = _weights();
        c.verified = _held();
        c.declared = new uint256[](N);
        c.declared[3] = 12e8; // 12 BTC held where this chain cannot see
        c.verifiedOnly = false;
    }

    function _proof() internal pure returns (SolvencyRegistry.Proof memory p) {
        p.a = [uint256(1), 2];
        p.b = [[uint256(3), 4], [uint256(5), 6]];
        p.c = [uint256(7), 8];
    }

    /// @dev The K = 10 + 3N words the registry must hand the verifier for `c` on `epoch`.
    function _signals(uint64 epoch, SolvencyRegistry.Claim memory c) internal view returns (bytes32) {
        bytes memory head = abi.encode(
            uint256(42), CTX, c.root, c.totalsCommit, uint256(1), c.shortfall, c.insuranceFund, uint256(epoch),
            (block.chainid << 160) | uint160(address(registry))
        );
        return keccak256(
            abi.encodePacked(head, c.weights, c.verified, c.declared, uint256(c.verifiedOnly ? 1 : 0))
        );
    }

    function _finalize(uint64 epoch, SolvencyRegistry.Claim memory c) internal returns (bool) {
        vm.prank(PUBLISHER);
        return registry.finalize(epoch, _proof(), c);
    }

    function _expectFinalizeRevert(uint64 epoch, SolvencyRegistry.Claim memory c, bytes memory err) internal {
        vm.prank(PUBLISHER);
        vm.expectRevert(err);
        registry.finalize(epoch, _proof(), c);
    }

    function _expectCustodyRevert(uint64 epoch, address[] memory h, bytes[] memory s, bytes memory err) internal {
        vm.prank(PUBLISHER);
        vm.expectRevert(err);
        registry.addCustody(epoch, h, s);
    }

    function _one(address a) internal pure returns (address[] memory) {
        return Fixtures.one(a);
    }

    function _one(bytes memory b) internal pure returns (bytes[] memory) {
        return Fixtures.one(b);
    }

    function _stillOpen(uint64 epoch) internal view {
        require(registry.openEpochId() == epoch, "the epoch closed");
        require(registry.getEpoch(epoch).status == SolvencyRegistry.Status.Open, "status");
        require(registry.getReserves(epoch).length == 0 && registry.getPrices(epoch).length == 0, "stored");
    }

    // ------------------------------------------------------------------ the whole path

    /// The verifier gets exactly [finalState, ctxHash, root, totalsCommit, batchCount, shortfall,
    /// insuranceFund, epoch, domain, weights, verified, declared, verifiedOnly], and the registry
    /// keeps the reserves, the declared ones, the prices (USD, 8 decimals) and verifiedOnly.
    function test_FinalizeChecksReservesAndPricesAndStoresThem() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        solvencyVerifier.expectInputs(_signals(1, c));
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.EpochFinalized(1, 7, 42, 99, 3, 10, 1, c.verified, c.declared, false);
        require(_finalize(1, c), "refused");

        uint256[] memory r = registry.getReserves(1);
        require(r[0] == 350_000_100, "6-decimal token in 8 decimals");
        require(r[1] == 3e18 + 999_999_999, "24-decimal token in 18 decimals, floored");
        require(r[2] == 3_500_000_001, "ether in 9 decimals, floored");
        require(r[3] == 0, "nothing of the off-chain asset is verified");
        require(keccak256(abi.encode(registry.getDeclaredReserves(1))) == keccak256(abi.encode(c.declared)), "declared");
        uint256[] memory prices = registry.getPrices(1);
        require(
            prices[0] == USDC_PRICE && prices[1] == ODD_PRICE && prices[2] == ETH_PRICE && prices[3] == BTC_PRICE,
            "prices"
        );
        require(!registry.getEpoch(1).verifiedOnly, "verifiedOnly");
        require(registry.isFinalizedRoot(1, 7), "root");
    }

    /// Any difference in the per-asset signals or in verifiedOnly is another statement.
    function test_VerifierSeesWeightsVerifiedDeclaredAndVerifiedOnly() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        c.verifiedOnly = true;
        solvencyVerifier.expectInputs(_signals(1, c));
        bytes memory invalid = abi.encodeWithSelector(SolvencyRegistry.InvalidProof.selector, 1);

        c.verifiedOnly = false;
        _expectFinalizeRevert(1, c, invalid);
        c.verifiedOnly = true;
        c.weights[2] += 1; // still the same price, to 8 decimals
        _expectFinalizeRevert(1, c, invalid);
        c.weights[2] -= 1;
        c.declared[0] = 1;
        _expectFinalizeRevert(1, c, invalid);
        c.declared[0] = 0;
        (c.declared[2], c.declared[3]) = (c.declared[3], c.declared[2]); // the same values, elsewhere
        _expectFinalizeRevert(1, c, invalid);
        (c.declared[2], c.declared[3]) = (c.declared[3], c.declared[2]);
        require(_finalize(1, c), "the proven statement");
        require(registry.getEpoch(1).verifiedOnly, "verifiedOnly stored");
    }

    // ------------------------------------------------------------------ custody

    function test_CustodyIsAddedWithEventsAndReadBack() public {
        vm.prank(PUBLISHER);
        registry.openEpoch(1, CTX, 1, bytes32(0));
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.CustodyAdded(1, holder1);
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.CustodyAdded(1, holder2);
        vm.prank(PUBLISHER);
        registry.addCustody(1, _holders(), _sigs(1));
        address[] memory c = registry.getCustody(1);
        require(c.length == 2 && c[0] == holder1 && c[1] == holder2, "custody");
        require(registry.getCustody(2).length == 0, "another epoch's custody");
    }

    function test_AForgedCustodySignatureIsRefused() public {
        vm.prank(PUBLISHER);
        registry.openEpoch(1, CTX, 1, bytes32(0));
        bytes memory sig = _sig(key1, 1, holder1);
        sig[10] ^= 0x01;
        bytes memory err = abi.encodeWithSelector(SolvencyRegistry.BadCustodySignature.selector, holder1);
        _expectCustodyRevert(1, _one(holder1), _one(sig), err);
        _expectCustodyRevert(1, _one(holder1), _one(new bytes(65)), err);
        _expectCustodyRevert(1, _one(holder1), _one(bytes("")), err);
    }

    function test_ACustodySignatureForAnotherEpochIsRefused() public {
        vm.prank(PUBLISHER);
        registry.openEpoch(2, CTX, 1, bytes32(0));
        _expectCustodyRevert(
            2, _one(holder1), _one(_sig(key1, 1, holder1)),
            abi.encodeWithSelector(SolvencyRegistry.BadCustodySignature.selector, holder1)
        );
    }

    function test_ACustodySignatureForAnotherRegistryIsRefused() public {
        SolvencyRegistry other =
            new SolvencyRegistry(PUBLISHER, address(batchVerifier), address(solvencyVerifier), N, _assets());
        bytes memory forOther = Fixtures.custodySignature(key1, address(other), 1, holder1);
        vm.prank(PUBLISHER);
        registry.openEpoch(1, CTX, 1, bytes32(0));
        _expectCustodyRevert(
            1, _one(holder1), _one(forOther),
            abi.encodeWithSelector(SolvencyRegistry.BadCustodySignature.selector, holder1)
        );
        vm.prank(PUBLISHER);
        other.openEpoch(1, CTX, 1, bytes32(0));
        vm.prank(PUBLISHER);
        other.addCustody(1, _one(holder1), _one(forOther)); // where it was made for
    }

    function test_ACustodySignatureFromAnotherChainIsRefused() public {
        vm.prank(PUBLISHER);
        registry.openEpoch(1, CTX, 1, bytes32(0));
        bytes memory here = _sig(key1, 1, holder1);
        vm.chainId(block.chainid + 1); // the same registry after a split, or at its address elsewhere
        _expectCustodyRevert(
            1, _one(holder1), _one(here), abi.encodeWithSelector(SolvencyRegistry.BadCustodySignature.selector, holder1)
        );
        vm.prank(PUBLISHER);
        registry.addCustody(1, _one(holder1), _one(_sig(key1, 1, holder1))); // signed on this chain
    }

    /// The exchange signs with its own key for an address whose key it does not hold.
    function test_AnAddressTheExchangeDoesNotControlIsRefused() public {
        vm.prank(PUBLISHER);
        registry.openEpoch(1, CTX, 1, bytes32(0));
        address stranger = vm.addr(STRANGER_KEY);
        _expectCustodyRevert(
            1, _one(stranger), _one(_sig(key1, 1, stranger)),
            abi.encodeWithSelector(SolvencyRegistry.BadCustodySignature.selector, stranger)
        );
        // Nor can one valid signature vouch for another address.
        bytes[] memory s = _sigs(1);
        s[1] = s[0];
        _expectCustodyRevert(1, _holders(), s, abi.encodeWithSelector(SolvencyRegistry.BadCustodySignature.selector, holder2));
        _expectCustodyRevert(
            1, _one(address(0)), _one(_sig(key1, 1, address(0))),
            abi.encodeWithSelector(SolvencyRegistry.BadCustodySignature.selector, address(0))
        );
        require(registry.getCustody(1).length == 0, "added");
    }

    /// A contract wallet (a multisig, say) answers through ERC-1271; its balances count.
    function test_AContractWalletCustodyCounts() public {
        MockWallet wallet = new MockWallet(vm.addr(key1));
        usdc.mint(address(wallet), 7);
        vm.prank(PUBLISHER);
        registry.openEpoch(1, CTX, 1, bytes32(0));
        vm.prank(PUBLISHER);
        registry.addCustody(1, _one(address(wallet)), _one(_sig(key1, 1, address(wallet))));
        require(registry.onchainReserves(registry.getCustody(1))[0] == 700, "wallet's tokens");
    }

    /// Strictly increasing within a call and across calls: large sets go in chunks, and no
    /// address is counted twice.
    function test_CustodyMustStrictlyIncreaseAcrossChunks() public {
        vm.prank(PUBLISHER);
        registry.openEpoch(1, CTX, 1, bytes32(0));
        address[] memory h = new address[](2);
        bytes[] memory s = new bytes[](2);
        (h[0], h[1]) = (holder2, holder1);
        (s[0], s[1]) = (_sig(key2, 1, holder2), _sig(key1, 1, holder1));
        _expectCustodyRevert(1, h, s, abi.encodeWithSelector(SolvencyRegistry.CustodyNotIncreasing.selector, 1));
        (h[0], h[1]) = (holder1, holder1);
        (s[0], s[1]) = (_sig(key1, 1, holder1), _sig(key1, 1, holder1));
        _expectCustodyRevert(1, h, s, abi.encodeWithSelector(SolvencyRegistry.CustodyNotIncreasing.selector, 1));

        vm.prank(PUBLISHER);
        registry.addCustody(1, _one(holder1), _one(_sig(key1, 1, holder1)));
        _expectCustodyRevert(
            1, _one(holder1), _one(_sig(key1, 1, holder1)),
            abi.encodeWithSelector(SolvencyRegistry.CustodyNotIncreasing.selector, 0)
        );
        vm.prank(PUBLISHER);
        registry.addCustody(1, _one(holder2), _one(_sig(key2, 1, holder2)));
        _expectCustodyRevert(
            1, _one(holder1), _one(_sig(key1, 1, holder1)),
            abi.encodeWithSelector(SolvencyRegistry.CustodyNotIncreasing.selector, 0)
        );
        require(registry.getCustody(1).length == 2, "custody");
        vm.expectRevert(abi.encodeWithSelector(ReserveBalances.HoldersNotIncreasing.selector, 1));
        registry.onchainReserves(h); // the view refuses a doubled address too
    }

    function test_CustodyNeedsTheOpenEpochAndOneSignatureEach() public {
        _expectCustodyRevert(1, _holders(), _sigs(1), abi.encodeWithSelector(SolvencyRegistry.NotOpen.selector, 1));
        vm.prank(PUBLISHER);
        registry.openEpoch(1, CTX, 1, bytes32(0));
        _expectCustodyRevert(
            1, _holders(), _one(_sig(key1, 1, holder1)),
            abi.encodeWithSelector(SolvencyRegistry.WrongSignatureCount.selector, 2, 1)
        );
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(SolvencyRegistry.NotPublisher.selector, address(0xBAD)));
        registry.addCustody(1, _holders(), _sigs(1));
        vm.prank(PUBLISHER);
        registry.abandonEpoch(1);
        _expectCustodyRevert(1, _holders(), _sigs(1), abi.encodeWithSelector(SolvencyRegistry.NotOpen.selector, 1));
    }

    // ------------------------------------------------------------------ reserves

    /// Reserves that leave custody between proving and finalize: refused, naming the asset, the
    /// proven amount and what is held; the epoch stays open and a proof of what is held passes.
    function test_ReservesThatDropBeforeFinalizeAreRefused() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        vm.prank(holder2);
        usdc.transfer(address(0xF00D), 1_000_000);
        _expectFinalizeRevert(
            1, c,
            abi.encodeWithSelector(SolvencyRegistry.ReservesChanged.selector, 0, 350_000_100, 250_000_100)
        );
        vm.deal(holder1, 1 ether);
        c.verified = _held();
        vm.deal(holder1, 0);
        _expectFinalizeRevert(
            1, c,
            abi.encodeWithSelector(SolvencyRegistry.ReservesChanged.selector, 2, 1_500_000_000, 500_000_000)
        );
        _stillOpen(1);
        c.verified = _held();
        require(_finalize(1, c), "a proof of what is held");
        require(registry.getReserves(1)[0] == 250_000_100, "stored");
    }

    /// Reserves that arrive after proving, or anyone's dust sent to a custody address, do not
    /// stop finalize: the attestation states the proven amount, which is still held (a floor).
    /// Before, exact equality let anyone front-run finalize with one token unit.
    function test_ReservesThatArriveBeforeFinalizeStillFinalizeTheProvenAmount() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        uint256[] memory proven = c.verified;
        odd.mint(holder1, 1e6); // one more asset unit of ODD
        vm.deal(holder2, holder2.balance + 1); // a wei of dust
        usdc.mint(holder1, 1); // and a token unit
        require(_finalize(1, c), "finalized");
        uint256[] memory stored = registry.getReserves(1);
        for (uint256 i = 0; i < N; ++i) {
            require(stored[i] == proven[i], "the proven amounts are stored");
        }
        require(_held()[1] == proven[1] + 1, "more is held than attested");
    }

    /// An asset not on this chain has verified reserve 0: all of it is declared.
    function test_AnOffChainAssetNeedsVerifiedZero() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        c.verified[3] = 1;
        _expectFinalizeRevert(1, c, abi.encodeWithSelector(SolvencyRegistry.ReservesChanged.selector, 3, 1, 0));
    }

    /// Without custody addresses nothing is verified.
    function test_AnEpochWithoutCustodyVerifiesNothing() public {
        vm.prank(PUBLISHER);
        registry.openEpoch(1, CTX, 1, bytes32(0));
        vm.prank(PUBLISHER);
        registry.submitBatch(1, 0, [uint256(1), 2], [[uint256(3), 4], [uint256(5), 6]], [uint256(7), 8], 42);
        SolvencyRegistry.Claim memory c = _claim();
        _expectFinalizeRevert(
            1, c, abi.encodeWithSelector(SolvencyRegistry.ReservesChanged.selector, 0, c.verified[0], 0)
        );
        c.verified = new uint256[](N);
        require(_finalize(1, c), "refused");
    }

    /// The view the prover calls gives the same numbers finalize checks, floored.
    function test_OnchainReservesConvertUnusualDecimalsAndFloor() public view {
        uint256[] memory r = registry.onchainReserves(_holders());
        require(r[0] == 3_500_001 * 100, "6 -> 8 decimals: exact");
        // 3.000000000999999999999999 in 24 decimals, 3.000000000999999999 in 18
        require(r[1] == 3e18 + 999_999_999, "24 -> 18 decimals: floored");
        // 3.500000001000000122 ether: 3.500000001 in 9 decimals
        require(r[2] == 3_500_000_001, "18 -> 9 decimals: floored");
        require(r[3] == 0, "off-chain");
        uint256[] memory none = registry.onchainReserves(new address[](0));
        require(none.length == N && none[0] == 0 && none[1] == 0 && none[2] == 0 && none[3] == 0, "no holders");
    }

    // ------------------------------------------------------------------ prices

    /// One bad feed among three: the median of the other two holds, finalize goes through.
    function test_OneBadFeedAmongThreeTheMedianHolds() public {
        _ready(1);
        _feed(0, 1).set(9e8, NOW); // $9 for a dollar
        _feed(2, 0).set(1, NOW); // ether at a hundred-millionth of a dollar
        PriceCheck.Reading[] memory r = registry.checkPrices(_weights());
        require(r[0].verdict == PriceCheck.Verdict.Ok && r[0].median == USDC_PRICE && r[0].agreeing == 2, "asset 0");
        require(r[2].verdict == PriceCheck.Verdict.Ok && r[2].median == ETH_PRICE && r[2].agreeing == 2, "asset 2");
        require(_finalize(1, _claim()), "refused");
    }

    /// Two bad feeds: finalize refuses to attest, without reverting, so that its reasons stay
    /// on the chain; the epoch stays open and, once the feeds recover, the same proof finalizes.
    function test_TwoBadFeedsTripTheBreakerAndALaterRetrySucceeds() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        _feed(1, 0).set(5e8, NOW);
        _feed(1, 2).set(1e8, NOW);
        // answers 5, 2.5, 1 (dollars): median 2.5, only itself within 1 %
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.PriceCheckFailed(1, 1, PriceCheck.Verdict.Diverged, ODD_PRICE, ODD_PRICE, 3, 1);
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.AttestationRefused(1);
        vm.recordLogs();
        require(!_finalize(1, c), "finalized on diverging feeds");
        require(vm.getRecordedLogs().length == 2, "other events");
        _stillOpen(1);

        vm.warp(NOW + 600);
        _feed(1, 0).set(int256(ODD_PRICE), NOW + 600);
        _feed(1, 2).set(int256(ODD_PRICE), NOW + 600);
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.EpochFinalized(1, 7, 42, 99, 3, 10, 1, c.verified, c.declared, false);
        require(_finalize(1, c), "the retry was refused");
    }

    /// Every failing asset is reported, then the refusal.
    function test_EveryFailingAssetIsReported() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        c.weights[0] = Fixtures.weight(USDC_PRICE * 102 / 100, 8); // 2 % above the median
        _feed(2, 0).set(int256(ETH_PRICE), NOW - 2 hours); // stale
        _feed(2, 1).set(int256(ETH_PRICE), NOW - 2 hours);
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.PriceCheckFailed(1, 0, PriceCheck.Verdict.OffMedian, 1.02e8, USDC_PRICE, 3, 3);
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.PriceCheckFailed(1, 2, PriceCheck.Verdict.TooFewFresh, ETH_PRICE, ETH_PRICE, 1, 1);
        vm.expectEmit(true, true, true, true, address(registry));
        emit SolvencyRegistry.AttestationRefused(1);
        require(!_finalize(1, c), "finalized");
        _stillOpen(1);
    }

    /// A stale feed does not count: one among three leaves a quorum, two do not; when every feed
    /// has gone stale the breaker holds until they are updated.
    function test_StaleFeeds() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        _feed(0, 0).set(int256(USDC_PRICE), NOW - Fixtures.MAX_AGE - 1);
        PriceCheck.Reading[] memory r = registry.checkPrices(c.weights);
        require(r[0].verdict == PriceCheck.Verdict.Ok && r[0].fresh == 2, "one stale of three");
        _feed(0, 1).set(int256(USDC_PRICE), NOW - Fixtures.MAX_AGE - 1);
        r = registry.checkPrices(c.weights);
        require(r[0].verdict == PriceCheck.Verdict.TooFewFresh && r[0].fresh == 1, "two stale of three");
        require(!_finalize(1, c), "finalized on one fresh feed");

        _feed(0, 0).set(int256(USDC_PRICE), NOW);
        _feed(0, 1).set(int256(USDC_PRICE), NOW);
        vm.warp(NOW + 1 days); // every feed stale
        require(!_finalize(1, c), "finalized on stale feeds");
        for (uint256 a = 0; a < 3; ++a) {
            for (uint256 i = 0; i < 3; ++i) {
                MockAggregator f = _feed(a, i);
                f.set(f.answer(), NOW + 1 days);
            }
        }
        require(_finalize(1, c), "refused fresh feeds");
    }

    /// A claim off the feeds' median trips the breaker even when the feeds agree.
    function test_AClaimOffTheMedianTripsTheBreaker() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        c.weights[2] = Fixtures.weight(ETH_PRICE * 101 / 100, 9); // 1 %: within
        PriceCheck.Reading[] memory r = registry.checkPrices(c.weights);
        require(r[2].verdict == PriceCheck.Verdict.Ok, "1 % off");
        c.weights[2] = Fixtures.weight(ETH_PRICE * 101 / 100 + 1, 9);
        r = registry.checkPrices(c.weights);
        require(r[2].verdict == PriceCheck.Verdict.OffMedian, "just past 1 %");
        require(!_finalize(1, c), "finalized off the median");
    }

    /// Weights convert to 8-decimal prices by flooring: a weight a hair under the next cent of a
    /// cent is the price below, for every asset's decimals.
    function test_WeightsFloorToPricesOfUnusualDecimals() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        c.weights[0] += 1e10 - 1; // 8 asset decimals: weight = priceE8 * 10^10
        c.weights[2] += 1e9 - 1; // 9 asset decimals: weight = priceE8 * 10^9 (18: nothing to floor)
        c.weights[3] += 1e10 - 1;
        require(_finalize(1, c), "refused");
        uint256[] memory prices = registry.getPrices(1);
        require(
            prices[0] == USDC_PRICE && prices[1] == ODD_PRICE && prices[2] == ETH_PRICE && prices[3] == BTC_PRICE,
            "prices not floored"
        );
    }

    /// An asset without feeds is not price-checked: any weight passes, and checkPrices reads it
    /// as Ok with nothing else.
    function test_AnAssetWithoutFeedsIsNotPriceChecked() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        c.weights[3] = 1;
        PriceCheck.Reading[] memory r = registry.checkPrices(c.weights);
        require(r[3].verdict == PriceCheck.Verdict.Ok && r[3].median == 0 && r[3].fresh == 0 && r[3].agreeing == 0, "r");
        require(_finalize(1, c), "refused");
        require(registry.getPrices(1)[3] == 0, "price");
    }

    /// checkPrices previews finalize's breaker, per asset.
    function test_CheckPricesPreviewsTheBreaker() public {
        PriceCheck.Reading[] memory r = registry.checkPrices(_weights());
        require(r.length == N, "length");
        for (uint256 i = 0; i < 3; ++i) {
            require(r[i].verdict == PriceCheck.Verdict.Ok && r[i].fresh == 3 && r[i].agreeing == 3, "reading");
        }
        require(r[0].median == USDC_PRICE && r[1].median == ODD_PRICE && r[2].median == ETH_PRICE, "medians");
        vm.expectRevert(abi.encodeWithSelector(SolvencyRegistry.WrongWeightCount.selector, N, 3));
        registry.checkPrices(new uint256[](3));
    }

    /// The breaker comes before the reserves and the proof: with prices refused, neither a
    /// reserves change nor a false proof turns the refusal into a revert.
    function test_TheBreakerComesFirst() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        c.verified[0] += 1;
        solvencyVerifier.setResult(false);
        _feed(0, 0).set(2e8, NOW);
        _feed(0, 1).set(3e8, NOW);
        require(!_finalize(1, c), "finalized");
        _feed(0, 0).set(int256(USDC_PRICE), NOW);
        _feed(0, 1).set(int256(USDC_PRICE), NOW);
        _expectFinalizeRevert(
            1, c, abi.encodeWithSelector(SolvencyRegistry.ReservesChanged.selector, 0, c.verified[0], c.verified[0] - 1)
        );
        c.verified[0] -= 1;
        _expectFinalizeRevert(1, c, abi.encodeWithSelector(SolvencyRegistry.InvalidProof.selector, 1));
    }

    /// With any gas limit finalize succeeds or reverts (a gas guard, or out of gas); it never
    /// returns a refusal: a starved feed read would count a good feed as down.
    function test_StarvedFinalizeNeverTripsTheBreaker() public {
        _ready(1);
        SolvencyRegistry.Claim memory c = _claim();
        bytes memory data = abi.encodeCall(SolvencyRegistry.finalize, (1, _proof(), c));
        bool succeeded;
        for (uint256 g = 100_000; g < 2_500_000; g += 9_973) {
            uint256 snapshot = vm.snapshotState();
            vm.prank(PUBLISHER);
            (bool ok, bytes memory ret) = address(registry).call{gas: g}(data);
            if (ok) {
                require(abi.decode(ret, (bool)), "a starved finalize tripped the breaker");
                succeeded = true;
            } else if (ret.length != 0) {
                bytes4 sel = bytes4(ret);
                require(
                    sel == PriceCheck.FeedGas.selector || sel == ReserveBalances.TokenGas.selector
                        || sel == SolvencyRegistry.InsufficientGas.selector,
                    "a starved finalize failed otherwise than for gas"
                );
            }
            require(vm.revertToState(snapshot), "snapshot");
        }
        require(succeeded, "never enough gas");
    }

    // ------------------------------------------------------------------ configuration

    function test_AssetConfigReadsBack() public view {
        SolvencyRegistry.AssetConfig[] memory a = _assets();
        for (uint256 i = 0; i < N; ++i) {
            require(
                keccak256(abi.encode(registry.assetConfig(i))) == keccak256(abi.encode(a[i])), "asset configuration"
            );
        }
    }

    function _deploy(SolvencyRegistry.AssetConfig[] memory a, bytes memory err) internal {
        vm.expectRevert(err);
        new SolvencyRegistry(PUBLISHER, address(batchVerifier), address(solvencyVerifier), N, a);
    }

    function test_ConstructorValidatesTheAssets() public {
        SolvencyRegistry.AssetConfig[] memory a = new SolvencyRegistry.AssetConfig[](3);
        _deploy(a, abi.encodeWithSelector(SolvencyRegistry.WrongAssetCount.selector, N, 3));

        a = _assets();
        a[1].quorum = 1; // one feed of three could set the price
        _deploy(a, abi.encodeWithSelector(PriceCheck.BadQuorum.selector, 1, 3));
        a = _assets();
        a[2].feeds[1] = address(0xFEED);
        _deploy(a, abi.encodeWithSelector(PriceCheck.FeedWithoutCode.selector, address(0xFEED)));
        a = _assets();
        a[0].toleranceBps = 0;
        _deploy(a, abi.encodeWithSelector(PriceCheck.BadTolerance.selector, 0));
        a = _assets();
        a[0].maxAge = 0;
        _deploy(a, abi.encodeWithSelector(PriceCheck.ZeroMaxAge.selector));

        a = _assets();
        a[1].token = address(0x70CE); // an ERC-20 without code
        _deploy(a, abi.encodeWithSelector(SolvencyRegistry.NoCode.selector, address(0x70CE)));
        a = _assets();
        a[3].assetDecimals = 19;
        _deploy(a, abi.encodeWithSelector(SolvencyRegistry.BadAssetDecimals.selector, 3, 19));
        a = _assets();
        a[1].tokenDecimals = 37;
        _deploy(a, abi.encodeWithSelector(SolvencyRegistry.BadTokenDecimals.selector, 1, 37));

        // One token for two assets would count one balance as reserves of both.
        a = _assets();
        a[1].token = address(usdc);
        a[1].tokenDecimals = 6;
        _deploy(a, abi.encodeWithSelector(SolvencyRegistry.TokenInTwoAssets.selector, address(usdc), 0, 1));
        a = _assets();
        a[3] = Fixtures.asset(ReserveBalances.NATIVE, 18, 8, new address[](0));
        _deploy(
            a, abi.encodeWithSelector(SolvencyRegistry.TokenInTwoAssets.selector, ReserveBalances.NATIVE, 2, 3)
        );
        // The token's own decimals must be the configured ones: USDC taken as 0 decimals would
        // read 1 USDC as a million.
        a = _assets();
        a[0].tokenDecimals = 0;
        _deploy(
            a, abi.encodeWithSelector(SolvencyRegistry.TokenDecimalsDiffer.selector, 0, address(usdc), 0)
        );
        a = _assets();
        a[0].token = address(batchVerifier); // code, but no decimals()
        _deploy(
            a,
            abi.encodeWithSelector(SolvencyRegistry.TokenDecimalsDiffer.selector, 0, address(batchVerifier), 6)
        );
        // A feed listed twice is one voice counted twice: with a quorum of 2 it alone would do.
        a = _assets();
        a[1].feeds[2] = a[1].feeds[0];
        _deploy(a, abi.encodeWithSelector(PriceCheck.DuplicateFeed.selector, a[1].feeds[0]));

        // Off-chain assets ignore tokenDecimals; ether needs no code; feeds are optional.
        a = _assets();
        a[3].tokenDecimals = 255;
        a[2].feeds = new address[](0);
        a[2].assetDecimals = 18;
        new SolvencyRegistry(PUBLISHER, address(batchVerifier), address(solvencyVerifier), N, a);
    }
}

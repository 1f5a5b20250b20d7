// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {PriceCheck} from "../src/PriceCheck.sol";
import {MockAggregator as MockFeed} from "../src/demo/MockAggregator.sol";
import {Vm} from "./utils/Vm.sol";

/// @dev Exposes the library to the tests.
contract PriceCheckHarness {
    function check(PriceCheck.Feeds memory f, uint256 claimedE8) external view returns (PriceCheck.Reading memory) {
        return PriceCheck.check(f, claimedE8);
    }

    function validate(PriceCheck.Feeds memory f) external view {
        PriceCheck.validate(f);
    }
}

/// The circuit breaker: the median of three feeds holds with one bad feed, trips with two,
/// refuses stale, broken and hostile feeds, and reads feeds of any decimals.
contract PriceCheckTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant NOW = 1_700_000_000;
    uint256 internal constant BTC = 65_000e8; // USD, 8 decimals

    PriceCheckHarness internal h;
    MockFeed[3] internal feeds;

    function setUp() public {
        vm.warp(NOW);
        h = new PriceCheckHarness();
        feeds[0] = new MockFeed(8, 65_000e8, NOW - 60);
        feeds[1] = new MockFeed(8, 65_100e8, NOW - 120);
        feeds[2] = new MockFeed(8, 64_950e8, NOW - 30);
    }

    function _config() internal view returns (PriceCheck.Feeds memory f) {
        f.feeds = new address[](3);
        for (uint256 i = 0; i < 3; i++) f.feeds[i] = address(feeds[i]);
        f.maxAge = 3600;
        f.toleranceBps = 100; // 1 %
        f.quorum = 2;
    }

    function _expect(PriceCheck.Reading memory r, PriceCheck.Verdict v, uint256 fresh, uint256 agreeing)
        internal
        pure
    {
        require(r.verdict == v, "verdict");
        require(r.fresh == fresh, "fresh count");
        require(r.agreeing == agreeing, "agreeing count");
    }

    function test_ThreeGoodFeedsAcceptTheirMedian() public view {
        PriceCheck.Reading memory r = h.check(_config(), BTC);
        _expect(r, PriceCheck.Verdict.Ok, 3, 3);
        require(r.median == 65_000e8, "median");
    }

    function test_OneBadFeedAmongThreeTheMedianHolds() public {
        feeds[1].set(90_000e8, NOW - 10); // far off, and fresh
        PriceCheck.Reading memory r = h.check(_config(), BTC);
        _expect(r, PriceCheck.Verdict.Ok, 3, 2);
        require(r.median == 65_000e8, "the outlier moved the median");
        feeds[1].set(1, NOW - 10); // far off the other way
        r = h.check(_config(), BTC);
        _expect(r, PriceCheck.Verdict.Ok, 3, 2);
        require(r.median == 64_950e8, "median");
    }

    function test_TwoBadFeedsTripTheBreaker() public {
        feeds[0].set(80_000e8, NOW - 10);
        feeds[1].set(50_000e8, NOW - 10);
        PriceCheck.Reading memory r = h.check(_config(), BTC);
        _expect(r, PriceCheck.Verdict.Diverged, 3, 1);
    }

    function test_AStaleFeedDoesNotCount() public {
        feeds[2].set(64_950e8, NOW - 3601);
        PriceCheck.Reading memory r = h.check(_config(), BTC);
        _expect(r, PriceCheck.Verdict.Ok, 2, 2);
        require(r.median == (65_000e8 + 65_100e8) / 2, "median of the two fresh feeds");
    }

    function test_StaleFeedsBelowTheQuorumTripTheBreaker() public {
        feeds[0].set(65_000e8, NOW - 7200);
        feeds[2].set(64_950e8, NOW - 3601);
        _expect(h.check(_config(), BTC), PriceCheck.Verdict.TooFewFresh, 1, 1);
        feeds[1].set(65_100e8, NOW - 4000);
        PriceCheck.Reading memory r = h.check(_config(), BTC);
        _expect(r, PriceCheck.Verdict.TooFewFresh, 0, 0);
        require(r.median == 0, "no median without answers");
    }

    function test_AClaimOffTheMedianIsRefused() public view {
        _expect(h.check(_config(), 65_000e8 * 101 / 100), PriceCheck.Verdict.Ok, 3, 3); // 1 %: in
        _expect(h.check(_config(), 65_000e8 * 101 / 100 + 1), PriceCheck.Verdict.OffMedian, 3, 3);
        _expect(h.check(_config(), 65_000e8 * 99 / 100 - 1), PriceCheck.Verdict.OffMedian, 3, 3);
        _expect(h.check(_config(), 0), PriceCheck.Verdict.OffMedian, 3, 3);
    }

    function test_FeedsOfUnusualDecimalsAreScaledTo8() public {
        feeds[0] = new MockFeed(18, 65_000e18, NOW - 60); // 18 decimals
        feeds[1] = new MockFeed(6, 65_010e6, NOW - 60); // 6 decimals
        feeds[2] = new MockFeed(0, 64_990, NOW - 60); // whole dollars
        PriceCheck.Reading memory r = h.check(_config(), BTC);
        _expect(r, PriceCheck.Verdict.Ok, 3, 3);
        require(r.median == 65_000e8, "median");
        feeds[0] = new MockFeed(37, 65_000e18, NOW - 60); // beyond the supported decimals
        _expect(h.check(_config(), BTC), PriceCheck.Verdict.Ok, 2, 2);
    }

    function test_BrokenAndHostileFeedsCountAsNotFresh() public {
        feeds[0].setFailure(true, false); // reverts
        _expect(h.check(_config(), BTC), PriceCheck.Verdict.Ok, 2, 2);
        feeds[1].setFailure(false, true); // burns all the gas it is given
        uint256 before = gasleft();
        _expect(h.check(_config(), BTC), PriceCheck.Verdict.TooFewFresh, 1, 1);
        require(before - gasleft() < 400_000, "a hostile feed spent the caller's gas");
    }

    function test_MalformedFeedsCountAsNotFreshAndNeverStopTheCheck() public {
        for (uint8 mode = 1; mode <= 4; mode++) {
            feeds[0].setMalformed(mode);
            PriceCheck.Reading memory r = h.check(_config(), BTC);
            _expect(r, PriceCheck.Verdict.Ok, 2, 2);
            feeds[0].setMalformed(0);
        }
        PriceCheck.Feeds memory f = _config();
        f.feeds[2] = address(0xC0DE); // no code (validate refuses it; check must survive it)
        _expect(h.check(f, BTC), PriceCheck.Verdict.Ok, 2, 2);
    }

    function test_AClaimBeyond2To128IsOffTheMedian() public view {
        _expect(h.check(_config(), type(uint256).max), PriceCheck.Verdict.OffMedian, 3, 3);
        _expect(h.check(_config(), uint256(type(uint128).max) + 1), PriceCheck.Verdict.OffMedian, 3, 3);
    }

    function test_TooLittleGasRevertsRatherThanDroppingFeeds() public {
        uint256 needed = PriceCheck.FEED_GAS_NEEDED;
        (bool ok, bytes memory err) =
            address(h).call{gas: needed}(abi.encodeCall(PriceCheckHarness.check, (_config(), BTC)));
        require(!ok && bytes4(err) == PriceCheck.FeedGas.selector, "a starved check must revert");
        (ok,) = address(h).call{gas: 3 * needed + 200_000}(abi.encodeCall(PriceCheckHarness.check, (_config(), BTC)));
        require(ok, "enough gas for three feeds");
    }

    function test_InsaneAnswersCountAsNotFresh() public {
        feeds[0].set(0, NOW - 10);
        feeds[1].set(-65_000e8, NOW - 10);
        _expect(h.check(_config(), BTC), PriceCheck.Verdict.TooFewFresh, 1, 1);
        feeds[0].set(65_000e8, NOW + 1); // from the future
        feeds[1].set(type(int256).max, NOW - 10); // beyond 2^128
        _expect(h.check(_config(), BTC), PriceCheck.Verdict.TooFewFresh, 1, 1);
        feeds[0].set(65_000e8, 0); // never updated
        _expect(h.check(_config(), BTC), PriceCheck.Verdict.TooFewFresh, 1, 1);
        feeds[0].set(65_000e8, NOW - 10);
        feeds[0].setRounds(7, 6); // an answer carried over from an earlier round
        _expect(h.check(_config(), BTC), PriceCheck.Verdict.TooFewFresh, 1, 1);
    }

    function test_ValidateRefusesUnusableConfigurations() public {
        PriceCheck.Feeds memory f = _config();
        h.validate(f);
        f.quorum = 0;
        _expectRevert(f, abi.encodeWithSelector(PriceCheck.BadQuorum.selector, 0, 3));
        f.quorum = 4;
        _expectRevert(f, abi.encodeWithSelector(PriceCheck.BadQuorum.selector, 4, 3));
        f.quorum = 1; // not a majority of three: one bad feed could set the price
        _expectRevert(f, abi.encodeWithSelector(PriceCheck.BadQuorum.selector, 1, 3));
        f = _config();
        f.toleranceBps = 10_000;
        _expectRevert(f, abi.encodeWithSelector(PriceCheck.BadTolerance.selector, 10_000));
        f = _config();
        f.maxAge = 0;
        _expectRevert(f, abi.encodeWithSelector(PriceCheck.ZeroMaxAge.selector));
        f = _config();
        f.feeds[1] = address(0xBEEF);
        _expectRevert(f, abi.encodeWithSelector(PriceCheck.FeedWithoutCode.selector, address(0xBEEF)));
        f.feeds = new address[](0);
        _expectRevert(f, abi.encodeWithSelector(PriceCheck.NoFeeds.selector));
    }

    function _expectRevert(PriceCheck.Feeds memory f, bytes memory err) internal {
        vm.expectRevert(err);
        h.validate(f);
    }

    /// The median lies between the smallest and largest fresh answer, and equal answers give
    /// that answer back, whatever their order.
    function testFuzz_MedianIsBetweenTheAnswers(uint64 a, uint64 b, uint64 c) public {
        vm.assume(a > 0 && b > 0 && c > 0);
        feeds[0].set(int256(uint256(a)), NOW - 1);
        feeds[1].set(int256(uint256(b)), NOW - 1);
        feeds[2].set(int256(uint256(c)), NOW - 1);
        PriceCheck.Reading memory r = h.check(_config(), a);
        uint256 lo = a < b ? (a < c ? a : c) : (b < c ? b : c);
        uint256 hi = a > b ? (a > c ? a : c) : (b > c ? b : c);
        require(r.median >= lo && r.median <= hi, "median outside the answers");
        require(r.median == uint256(a) + b + c - lo - hi, "median is not the middle answer");
        require(r.fresh == 3, "fresh");
    }
}

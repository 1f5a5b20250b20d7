// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {BoundedCall} from "./BoundedCall.sol";

/// @notice The part of Chainlink's AggregatorV3Interface this check reads.
interface AggregatorV3Interface {
    function decimals() external view returns (uint8);

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}

/// @title PriceCheck
/// @notice The circuit breaker on an epoch's prices: a claimed USD price (8 decimals) is
///         accepted only if a quorum of fresh on-chain feeds agree around their median and the
///         claim lies within the same tolerance of that median.
/// @dev A feed that reverts, runs out of its gas allowance, has no code, answers zero or less,
///      or in the wrong shape, reports a time in the future or an unusable number of decimals
///      counts as not fresh, like a stale one: a broken or hostile feed can lower the count of fresh feeds, never move the price
///      on its own. With a quorum of a majority, one bad feed among three is outvoted (the
///      median is one of the two good answers or between them); two bad feeds that disagree
///      trip the breaker, and two that collude can only be caught off-chain (docs/threat-model.md).
library PriceCheck {
    /// @notice Why a check failed (Ok when it did not). Stored in events, so the order is fixed.
    enum Verdict {
        Ok,
        TooFewFresh, // fewer than `quorum` feeds answered recently and sanely
        Diverged, // fewer than `quorum` fresh answers lie within the tolerance of their median
        OffMedian // the claimed price lies outside the tolerance of the median
    }

    /// @notice One asset's feeds and thresholds.
    struct Feeds {
        address[] feeds;
        uint32 maxAge; // seconds: an answer updated longer ago than this is stale
        uint16 toleranceBps; // band around the median, in basis points, for feeds and the claim
        uint8 quorum; // fresh feeds within the band needed: a majority of feeds.length, at most all
    }

    /// @notice What a check found: the verdict, the median of the fresh answers (8 decimals;
    ///         0 when none), and how many feeds were fresh and how many agreed.
    struct Reading {
        Verdict verdict;
        uint256 median;
        uint256 fresh;
        uint256 agreeing;
    }

    uint256 internal constant PRICE_DECIMALS = 8;
    uint256 internal constant BPS = 10_000;
    uint256 internal constant MAX_FEEDS = 16;
    /// @dev Gas each feed call may use: Chainlink's proxies take under 20k; the cap keeps a
    ///      hostile feed from spending the transaction's gas.
    uint256 internal constant FEED_GAS = 100_000;
    /// @dev Gas left needed before reading a feed: both calls' allowances survive the 63/64 rule.
    uint256 internal constant FEED_GAS_NEEDED = 2 * (FEED_GAS + FEED_GAS / 63) + 20_000;
    /// @dev Feeds with more decimals than this are refused (10^(dec - 8) must stay exact).
    uint256 internal constant MAX_FEED_DECIMALS = 36;

    error NoFeeds();
    error TooManyFeeds(uint256 count);
    error BadQuorum(uint256 quorum, uint256 feeds);
    error BadTolerance(uint256 toleranceBps);
    error ZeroMaxAge();
    error FeedWithoutCode(address feed);
    error DuplicateFeed(address feed);
    error FeedGas(uint256 available, uint256 needed);

    /// @notice Reverts unless `f` is a usable configuration (checked once, at deployment).
    function validate(Feeds memory f) internal view {
        uint256 n = f.feeds.length;
        if (n == 0) revert NoFeeds();
        if (n > MAX_FEEDS) revert TooManyFeeds(n);
        // a majority: then bad feeds must outnumber good ones to set the price
        if (f.quorum <= n / 2 || f.quorum > n) revert BadQuorum(f.quorum, n);
        if (f.toleranceBps == 0 || f.toleranceBps >= BPS) revert BadTolerance(f.toleranceBps);
        if (f.maxAge == 0) revert ZeroMaxAge();
        for (uint256 i = 0; i < n; i++) {
            if (f.feeds[i].code.length == 0) revert FeedWithoutCode(f.feeds[i]);
            // a feed listed twice is one voice counted twice: it could make a quorum alone
            for (uint256 j = 0; j < i; j++) {
                if (f.feeds[j] == f.feeds[i]) revert DuplicateFeed(f.feeds[i]);
            }
        }
    }

    /// @notice Checks `claimedE8` against the feeds at the current block.
    function check(Feeds memory f, uint256 claimedE8) internal view returns (Reading memory r) {
        uint256[] memory answers = new uint256[](f.feeds.length);
        uint256 fresh = 0;
        for (uint256 i = 0; i < f.feeds.length; i++) {
            (bool ok, uint256 price) = readFeed(f.feeds[i], f.maxAge);
            if (ok) answers[fresh++] = price;
        }
        r.fresh = fresh;
        if (fresh == 0) {
            r.verdict = Verdict.TooFewFresh;
            return r;
        }
        r.median = _median(answers, fresh);
        for (uint256 i = 0; i < fresh; i++) {
            if (_within(answers[i], r.median, f.toleranceBps)) r.agreeing++;
        }
        if (fresh < f.quorum) r.verdict = Verdict.TooFewFresh;
        else if (r.agreeing < f.quorum) r.verdict = Verdict.Diverged;
        else if (!_within(claimedE8, r.median, f.toleranceBps)) r.verdict = Verdict.OffMedian;
    }

    /// @notice One feed's latest answer in USD with 8 decimals, and whether it is fresh and sane.
    /// @dev Low-level calls with exact answer sizes: a `try` would not catch an answer that
    ///      fails to decode (empty, short, or a decimals value past 255), and one such feed would
    ///      then stop every check.
    function readFeed(address feed, uint256 maxAge) internal view returns (bool ok, uint256 priceE8) {
        // A call given less than its allowance could fail for want of gas and count a good feed
        // as down: a caller choosing the gas would choose which feeds count. Refuse instead.
        if (gasleft() < FEED_GAS_NEEDED) revert FeedGas(gasleft(), FEED_GAS_NEEDED);
        (bool called, uint256 size, bytes memory out) =
            BoundedCall.staticcall(feed, abi.encodeCall(AggregatorV3Interface.decimals, ()), FEED_GAS, 32);
        if (!called || size != 32) return (false, 0);
        uint256 dec = abi.decode(out, (uint256));
        if (dec > MAX_FEED_DECIMALS) return (false, 0);
        (called, size, out) =
            BoundedCall.staticcall(feed, abi.encodeCall(AggregatorV3Interface.latestRoundData, ()), FEED_GAS, 160);
        if (!called || size != 160) return (false, 0);
        (uint256 roundId, int256 answer,, uint256 updatedAt, uint256 answeredInRound) =
            abi.decode(out, (uint256, int256, uint256, uint256, uint256));
        // Bounded before scaling, so that the arithmetic below cannot overflow; the casts come
        // after `answer > 0`, so they keep its value.
        // forge-lint: disable-next-line(unsafe-typecast)
        if (answer <= 0 || uint256(answer) > type(uint128).max) return (false, 0);
        // Staleness is judged in minutes; the few seconds a block producer can shift do not matter.
        // forge-lint: disable-next-line(block-timestamp)
        if (updatedAt == 0 || updatedAt > block.timestamp) return (false, 0);
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp - updatedAt > maxAge) return (false, 0);
        if (answeredInRound < roundId) return (false, 0); // an answer carried from an older round
        // forge-lint: disable-next-line(unsafe-typecast)
        uint256 a = uint256(answer);
        priceE8 = dec >= PRICE_DECIMALS ? a / 10 ** (dec - PRICE_DECIMALS) : a * 10 ** (PRICE_DECIMALS - dec);
        return (priceE8 != 0 && priceE8 <= type(uint128).max, priceE8);
    }

    /// @dev |a - m| <= m * tol / BPS, without division. The median is below 2^128; a claim
    ///      above that is off any median (and would overflow the product).
    function _within(uint256 a, uint256 m, uint256 toleranceBps) private pure returns (bool) {
        if (a > type(uint128).max) return false;
        uint256 diff = a > m ? a - m : m - a;
        return diff * BPS <= m * toleranceBps;
    }

    /// @dev Median of the first `n` entries (sorted in place): the middle one, or the floor of
    ///      the mean of the two middle ones.
    function _median(uint256[] memory v, uint256 n) private pure returns (uint256) {
        for (uint256 i = 1; i < n; i++) {
            uint256 x = v[i];
            uint256 j = i;
            while (j > 0 && v[j - 1] > x) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }
}

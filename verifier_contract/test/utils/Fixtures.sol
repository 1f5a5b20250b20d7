// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../../src/SolvencyRegistry.sol";
import {CustodySignatures} from "../../src/CustodySignatures.sol";
import {MockAggregator} from "../../src/demo/MockAggregator.sol";
import {Vm} from "./Vm.sol";

/// @dev Building blocks of the registry fixtures: price feeds, asset configurations, weights and
///      custody signatures, made the way the prover and the CLI make them.
library Fixtures {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @dev Feed thresholds of every fixture: an hour's staleness, a 1 % band, a majority.
    uint32 internal constant MAX_AGE = 1 hours;
    uint16 internal constant TOLERANCE_BPS = 100;

    /// @dev `n` feeds (8 decimals) answering `priceE8`, updated now.
    function feeds(uint256 n, uint256 priceE8) internal returns (address[] memory f) {
        f = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            f[i] = address(new MockAggregator(8, int256(priceE8), block.timestamp));
        }
    }

    /// @dev An asset read from `token` (0: not on this chain) and checked against `feeds_` (none:
    ///      unchecked), with the fixtures' thresholds and a majority quorum.
    function asset(address token, uint8 tokenDecimals, uint8 assetDecimals, address[] memory feeds_)
        internal
        pure
        returns (SolvencyRegistry.AssetConfig memory c)
    {
        c.token = token;
        c.tokenDecimals = tokenDecimals;
        c.assetDecimals = assetDecimals;
        c.feeds = feeds_;
        if (feeds_.length > 0) {
            c.maxAge = MAX_AGE;
            c.toleranceBps = TOLERANCE_BPS;
            c.quorum = uint8(feeds_.length / 2 + 1);
        }
    }

    /// @dev The circuit's weight of a USD price (8 decimals): value units (USD * 10^26) per
    ///      smallest unit of an asset with `assetDecimals`.
    function weight(uint256 priceE8, uint8 assetDecimals) internal pure returns (uint256) {
        return priceE8 * 10 ** (18 - uint256(assetDecimals));
    }

    /// @dev `key`'s custody signature (r, s, v) for `epoch` of `registry`, on the chain in force.
    function custodySignature(uint256 key, address registry, uint64 epoch, address holder)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, CustodySignatures.digest(registry, epoch, holder));
        return abi.encodePacked(r, s, v);
    }

    function one(address a) internal pure returns (address[] memory out) {
        out = new address[](1);
        out[0] = a;
    }

    function one(bytes memory b) internal pure returns (bytes[] memory out) {
        out = new bytes[](1);
        out[0] = b;
    }

    function two(uint256 x, uint256 y) internal pure returns (uint256[] memory out) {
        out = new uint256[](2);
        (out[0], out[1]) = (x, y);
    }
}

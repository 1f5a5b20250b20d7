// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title MockAggregator
/// @notice An AggregatorV3-style price feed whose answer, time, rounds and failure modes its
///         caller sets, for the demo and tests on a local chain only.
contract MockAggregator {
    uint8 public decimals;
    int256 public answer;
    uint256 public updatedAt;
    uint80 public roundId = 1;
    uint80 public answeredInRound = 1;
    bool public reverts;
    bool public burnsGas;

    constructor(uint8 decimals_, int256 answer_, uint256 updatedAt_) {
        decimals = decimals_;
        answer = answer_;
        updatedAt = updatedAt_;
    }

    function set(int256 answer_, uint256 updatedAt_) external {
        answer = answer_;
        updatedAt = updatedAt_;
    }

    function setRounds(uint80 roundId_, uint80 answeredInRound_) external {
        roundId = roundId_;
        answeredInRound = answeredInRound_;
    }

    function setFailure(bool reverts_, bool burnsGas_) external {
        reverts = reverts_;
        burnsGas = burnsGas_;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        require(!reverts, "feed down");
        if (burnsGas) {
            uint256 x;
            while (true) x++;
        }
        return (roundId, answer, updatedAt, updatedAt, answeredInRound);
    }
}

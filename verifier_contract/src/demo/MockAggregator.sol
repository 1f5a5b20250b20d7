// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title MockAggregator
/// @notice An AggregatorV3-style price feed whose answer, time, rounds and failure modes its
///         caller sets, for the demo and tests on a local chain only.
contract MockAggregator {
    uint8 private _decimals;
    int256 public answer;
    uint256 public updatedAt;
    uint80 public roundId = 1;
    uint80 public answeredInRound = 1;
    bool public reverts;
    bool public burnsGas;
    /// @dev 0: answers normally; 1: decimals() reverts; 2: decimals() burns its gas;
    ///      3: decimals() answers 256 (not a uint8); 4: latestRoundData() answers nothing.
    uint8 public malformed;

    constructor(uint8 decimals_, int256 answer_, uint256 updatedAt_) {
        _decimals = decimals_;
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

    function setMalformed(uint8 mode) external {
        malformed = mode;
    }

    function decimals() external view returns (uint8) {
        if (malformed == 1) revert("decimals down");
        if (malformed == 2) {
            uint256 x;
            while (true) x++;
        }
        if (malformed == 3) {
            assembly {
                mstore(0, 256)
                return(0, 32)
            }
        }
        return _decimals;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        require(!reverts, "feed down");
        if (malformed == 4) {
            assembly {
                return(0, 0)
            }
        }
        if (burnsGas) {
            uint256 x;
            while (true) x++;
        }
        return (roundId, answer, updatedAt, updatedAt, answeredInRound);
    }
}

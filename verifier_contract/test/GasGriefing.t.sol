// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {AccountMarginVerifier} from "../src/AccountMarginVerifier.sol";
import {PriceCheck} from "../src/PriceCheck.sol";
import {ReserveBalances} from "../src/ReserveBalances.sol";
import {Proof} from "./utils/BookVerifier.sol";
import {BookRegistryTest} from "./utils/BookRegistryTest.sol";

/// Gas griefing: a valid proof-carrying call with any gas limit succeeds, reverts with
/// InsufficientGas (or, for finalize's feed and token reads, FeedGas and TokenGas), or runs out
/// of gas; it never reverts with InvalidProof (what a starved snarkjs verifier would make of
/// it), a starved finalize never trips the price breaker (what starved feeds, counted as down,
/// would make of it), and a failed call never leaves a write behind. The stand-in verifiers
/// answer false when they get less than the real verifiers need (BookRegistryTest), so the
/// contracts' guards must leave them that much. tests/contracts/test_gas_griefing.py does the
/// same on anvil with the real verifiers.
contract GasGriefingTest is BookRegistryTest {
    uint256 internal constant ID = 0xC0FFEE;
    uint256 internal constant HEADROOM = 5_000;

    error Outcome(bool ok, bytes ret);

    enum Kind {
        Ok,
        Guard,
        OutOfGas
    }

    /// @dev Makes the call and reverts with its outcome, so every probe leaves no trace.
    function probe(address caller, address target, bytes calldata data, uint256 gasLimit) external {
        vm.prank(caller);
        (bool ok, bytes memory ret) = target.call{gas: gasLimit}(data);
        revert Outcome(ok, ret);
    }

    function _outcome(address caller, address target, bytes memory data, uint256 gasLimit)
        internal
        returns (Kind)
    {
        try this.probe(caller, target, data, gasLimit) {
            revert("probe returned");
        } catch (bytes memory r) {
            require(bytes4(r) == Outcome.selector, "probe failed");
            bytes memory inner;
            assembly {
                inner := add(r, 4)
                mstore(inner, sub(mload(r), 4))
            }
            (bool ok, bytes memory ret) = abi.decode(inner, (bool, bytes));
            if (ok) {
                bool refused = bytes4(data) == SolvencyRegistry.finalize.selector && !abi.decode(ret, (bool));
                require(!refused, "a valid finalize was refused by the price breaker");
                return Kind.Ok;
            }
            if (ret.length == 0) return Kind.OutOfGas;
            bytes4 sel = bytes4(ret);
            if (
                sel == SolvencyRegistry.InsufficientGas.selector || sel == AccountMarginVerifier.InsufficientGas.selector
                    || sel == PriceCheck.FeedGas.selector || sel == ReserveBalances.TokenGas.selector
            ) {
                return Kind.Guard;
            }
            revert(string.concat("a valid call was judged: ", _hex4(sel)));
        }
    }

    function _hex4(bytes4 s) internal pure returns (string memory) {
        bytes memory digits = "0123456789abcdef";
        bytes memory out = new bytes(10);
        (out[0], out[1]) = ("0", "x");
        for (uint256 i = 0; i < 4; ++i) {
            out[2 + 2 * i] = digits[uint8(s[i]) >> 4];
            out[3 + 2 * i] = digits[uint8(s[i]) & 15];
        }
        return string(out);
    }

    // ------------------------------------------------------------------ the four calls

    function _batchCall() internal returns (address, address, bytes memory) {
        _open(1, 1234, 2);
        Proof memory pr = _batchProof(1234, 42, 1234);
        return (PUBLISHER, address(registry), _submitCall(1, 0, pr, 42));
    }

    function _finalizeCall() internal returns (address, address, bytes memory) {
        _open(1, 1234, 1);
        _addCustody(1, 5 ether); // so that finalize reads the token too
        _submit(1, 42);
        return (PUBLISHER, address(registry), _finalizeCall(1, _solvencyProof(1, 7), 7));
    }

    function _marginCall(bool attest) internal returns (address, address, bytes memory) {
        _publish(1, 1234, 1, 1, 7);
        Proof memory pr = _marginProof(1, ID, HEADROOM);
        bytes memory data = attest
            ? abi.encodeCall(AccountMarginVerifier.attest, (1, ID, HEADROOM, pr.a, pr.b, pr.c))
            : abi.encodeCall(AccountMarginVerifier.verifyMargin, (1, ID, HEADROOM, pr.a, pr.b, pr.c));
        return (address(0xA11CE), address(margin), data);
    }

    function _call(uint8 which) internal returns (address, address, bytes memory) {
        which %= 4;
        if (which == 0) return _batchCall();
        if (which == 1) return _finalizeCall();
        return _marginCall(which == 3);
    }

    function _state() internal view returns (bytes32) {
        (bool proven, uint256 h) = margin.attestedHeadroom(1, ID);
        return keccak256(
            abi.encode(
                _recordHash(1),
                registry.latestEpoch(),
                registry.latestFinalizedEpoch(),
                registry.openEpochId(),
                proven,
                h
            )
        );
    }

    // ------------------------------------------------------------------ tests

    /// Any gas limit: success, InsufficientGas or out of gas; a failed call writes nothing.
    function testFuzz_StarvedCallIsNeverAnInvalidProof(uint8 which, uint256 gasLimit) public {
        (address caller, address target, bytes memory data) = _call(which);
        gasLimit = gasLimit % 700_000;
        _outcome(caller, target, data, gasLimit); // reverts on a verdict
        bytes32 before = _state();
        vm.prank(caller);
        (bool ok,) = target.call{gas: gasLimit}(data);
        if (!ok) require(_state() == before, "a starved call changed state");
        else require(gasLimit > 200_000, "succeeded with less gas than the verifier needs");
    }

    /// Every gas limit next to the guard's threshold and success's, and a sweep between.
    function test_GasSweepAroundTheThresholds() public {
        for (uint8 which = 0; which < 4; ++which) {
            (address caller, address target, bytes memory data) = _call(which);
            uint256 okGas = _lowest(caller, target, data, false);
            uint256 guardGas = _lowest(caller, target, data, true);
            require(guardGas <= okGas, "success below the guard");
            for (uint256 g = guardGas - 200; g <= guardGas + 200; ++g) {
                _outcome(caller, target, data, g);
            }
            uint256 step = (okGas - guardGas) / 200 + 1;
            for (uint256 g = guardGas; g <= okGas + 200; g += step) {
                Kind k = _outcome(caller, target, data, g);
                require(g < okGas || k == Kind.Ok, "success is not monotone in gas");
            }
            setUp(); // fresh contracts for the next call
        }
    }

    /// @dev Least gas limit at which the call succeeds, or (`guard`) gets past InsufficientGas.
    function _lowest(address caller, address target, bytes memory data, bool guard) internal returns (uint256) {
        uint256 lo = 1_000;
        uint256 hi = 2_000_000;
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            Kind k = _outcome(caller, target, data, mid);
            bool pass = guard ? k != Kind.Guard && !(k == Kind.OutOfGas && mid < 60_000) : k == Kind.Ok;
            if (pass) hi = mid;
            else lo = mid;
        }
        return hi;
    }
}

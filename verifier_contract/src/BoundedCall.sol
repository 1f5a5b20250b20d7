// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title BoundedCall
/// @notice A read-only call to a contract this system does not control (a price feed, a token,
///         a custody wallet) that can neither spend more than a set gas allowance nor make the
///         caller copy more than a set number of answer bytes, and whose failure, empty or
///         malformed answer is reported rather than reverting the caller: decoding is left to
///         the caller, after it has checked the answer's exact size.
library BoundedCall {
    /// @notice staticcall `target` with `data` and at most `gasCap` gas; `out` holds the first
    ///         `maxOut` bytes of the answer and `size` its full length.
    function staticcall(address target, bytes memory data, uint256 gasCap, uint256 maxOut)
        internal
        view
        returns (bool ok, uint256 size, bytes memory out)
    {
        out = new bytes(maxOut);
        assembly {
            ok := staticcall(gasCap, target, add(data, 32), mload(data), add(out, 32), maxOut)
            size := returndatasize()
        }
    }
}

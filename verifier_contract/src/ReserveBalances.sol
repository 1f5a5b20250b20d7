// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {BoundedCall} from "./BoundedCall.sol";

/// @title ReserveBalances
/// @notice Reads what custody addresses hold: native ether or an ERC-20 `balanceOf`, converted
///         to the asset's scale in the snapshot (its decimals there may differ from the
///         token's). Converting down floors, so reserves are never overstated.
library ReserveBalances {
    /// @notice The token address that stands for the chain's native currency.
    address internal constant NATIVE = 0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE;
    /// @dev Gas a token's balanceOf may use: standard tokens take under 10k; the cap keeps a
    ///      misbehaving token from spending the caller's gas.
    uint256 internal constant TOKEN_GAS = 50_000;
    uint256 internal constant TOKEN_GAS_NEEDED = TOKEN_GAS + TOKEN_GAS / 63 + 5_000;
    /// @notice Decimals beyond this are refused (10^77 overflows a uint256).
    uint256 internal constant MAX_DECIMALS = 36;

    error TokenReadFailed(address token, address holder);
    error DecimalsTooLarge(uint256 decimals);
    error TokenGas(uint256 available, uint256 needed);
    error HoldersNotIncreasing(uint256 index);

    /// @notice `holder`'s balance of `token` (NATIVE for ether), in the token's own units.
    function balanceOf(address token, address holder) internal view returns (uint256) {
        if (token == NATIVE) return holder.balance;
        // Given less than its allowance a read could fail for want of gas: refuse instead.
        if (gasleft() < TOKEN_GAS_NEEDED) revert TokenGas(gasleft(), TOKEN_GAS_NEEDED);
        (bool ok, uint256 size, bytes memory ret) =
            BoundedCall.staticcall(token, abi.encodeWithSelector(0x70a08231, holder), TOKEN_GAS, 32); // balanceOf
        if (!ok || size != 32) revert TokenReadFailed(token, holder);
        return abi.decode(ret, (uint256));
    }

    /// @notice `amount` of a token with `tokenDecimals` in units of `assetDecimals` (floored).
    function toAssetUnits(uint256 amount, uint256 tokenDecimals, uint256 assetDecimals)
        internal
        pure
        returns (uint256)
    {
        if (tokenDecimals > MAX_DECIMALS) revert DecimalsTooLarge(tokenDecimals);
        if (assetDecimals > MAX_DECIMALS) revert DecimalsTooLarge(assetDecimals);
        if (tokenDecimals >= assetDecimals) return amount / 10 ** (tokenDecimals - assetDecimals);
        return amount * 10 ** (assetDecimals - tokenDecimals); // checked: reverts on overflow
    }

    /// @notice The decimals an ERC-20 reports (`decimals()`), or false if it answers none.
    function decimalsOf(address token) internal view returns (bool ok, uint256 decimals) {
        if (gasleft() < TOKEN_GAS_NEEDED) revert TokenGas(gasleft(), TOKEN_GAS_NEEDED);
        uint256 size;
        bytes memory ret;
        (ok, size, ret) = BoundedCall.staticcall(token, abi.encodeWithSelector(0x313ce567), TOKEN_GAS, 32);
        if (!ok || size != 32) return (false, 0);
        return (true, abi.decode(ret, (uint256)));
    }

    /// @notice What `holders` hold of `token` together, in the asset's units.
    /// @dev Holders must be strictly increasing, so that no balance is counted twice.
    function total(address token, uint256 tokenDecimals, uint256 assetDecimals, address[] memory holders)
        internal
        view
        returns (uint256 sum)
    {
        for (uint256 i = 0; i < holders.length; i++) {
            if (i > 0 && holders[i] <= holders[i - 1]) revert HoldersNotIncreasing(i);
            sum += balanceOf(token, holders[i]);
        }
        return toAssetUnits(sum, tokenDecimals, assetDecimals);
    }
}

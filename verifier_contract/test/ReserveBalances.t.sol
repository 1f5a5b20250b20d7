// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ReserveBalances} from "../src/ReserveBalances.sol";
import {MockERC20} from "../src/demo/MockERC20.sol";
import {Vm} from "./utils/Vm.sol";

contract ReserveHarness {
    function total(address token, uint256 tokenDec, uint256 assetDec, address[] memory holders)
        external
        view
        returns (uint256)
    {
        return ReserveBalances.total(token, tokenDec, assetDec, holders);
    }

    function toAssetUnits(uint256 amount, uint256 tokenDec, uint256 assetDec) external pure returns (uint256) {
        return ReserveBalances.toAssetUnits(amount, tokenDec, assetDec);
    }
}

/// @dev A token whose balanceOf reverts, returns nothing, or burns gas.
contract BrokenToken {
    uint8 public mode;

    function setMode(uint8 m) external {
        mode = m;
    }

    function balanceOf(address) external view returns (uint256) {
        if (mode == 0) revert("paused");
        if (mode == 1) {
            assembly {
                return(0, 0)
            }
        }
        uint256 x;
        while (true) x++;
        return x;
    }
}

/// Reserves read on-chain: ether and tokens of any decimals, summed over custody addresses
/// in the asset's units, never overstated; a token that cannot be read stops the read.
contract ReserveBalancesTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    ReserveHarness internal h;
    address[] internal holders;

    function setUp() public {
        h = new ReserveHarness();
        holders.push(address(0x1001));
        holders.push(address(0x1002));
    }

    function test_TokensOfUnusualDecimalsAreConvertedToTheAssetsScale() public {
        MockERC20 usdc = new MockERC20("USD Coin", "USDC", 6);
        usdc.mint(holders[0], 1_500_000); // 1.5
        usdc.mint(holders[1], 2_000_001); // 2.000001
        // the snapshot counts USDC with 8 decimals: scaled up exactly
        require(h.total(address(usdc), 6, 8, holders) == 350_000_100, "6 -> 8 decimals");
        MockERC20 odd = new MockERC20("Odd", "ODD", 24);
        odd.mint(holders[0], 1e24 + 999_999_999_999_999); // 1.000000000999999999999999
        odd.mint(holders[1], 2e24);
        // 24 -> 18 decimals: floored, so reserves are never overstated
        require(h.total(address(odd), 24, 18, holders) == 3e18 + 999_999_999, "24 -> 18 decimals");
        require(h.total(address(odd), 24, 24, holders) == 3e24 + 999_999_999_999_999, "same scale");
    }

    function test_NativeEtherIsRead() public {
        vm.deal(holders[0], 3 ether);
        vm.deal(holders[1], 0.5 ether + 7);
        require(h.total(ReserveBalances.NATIVE, 18, 18, holders) == 3.5 ether + 7, "ether");
        require(h.total(ReserveBalances.NATIVE, 18, 8, holders) == 3.5e8, "ether in 8 decimals");
    }

    function test_AHolderListedTwiceIsRefused() public {
        MockERC20 t = new MockERC20("T", "T", 18);
        t.mint(holders[0], 5);
        address[] memory twice = new address[](3);
        (twice[0], twice[1], twice[2]) = (holders[0], holders[1], holders[1]);
        vm.expectRevert(abi.encodeWithSelector(ReserveBalances.HoldersNotIncreasing.selector, 2));
        h.total(address(t), 18, 18, twice);
        (twice[0], twice[1], twice[2]) = (holders[1], holders[0], address(0x1003));
        vm.expectRevert(abi.encodeWithSelector(ReserveBalances.HoldersNotIncreasing.selector, 1));
        h.total(address(t), 18, 18, twice);
    }

    function test_AStarvedTokenReadReverts() public {
        MockERC20 t = new MockERC20("T", "T", 18);
        (bool ok, bytes memory err) = address(h).call{gas: ReserveBalances.TOKEN_GAS}(
            abi.encodeCall(ReserveHarness.total, (address(t), 18, 18, holders))
        );
        require(!ok && bytes4(err) == ReserveBalances.TokenGas.selector, "starved read must revert");
    }

    function test_AnUnreadableTokenStopsTheRead() public {
        BrokenToken t = new BrokenToken();
        for (uint8 mode = 0; mode < 3; mode++) {
            t.setMode(mode);
            vm.expectRevert(
                abi.encodeWithSelector(ReserveBalances.TokenReadFailed.selector, address(t), holders[0])
            );
            h.total(address(t), 18, 18, holders);
        }
        vm.expectRevert(
            abi.encodeWithSelector(ReserveBalances.TokenReadFailed.selector, address(0xdead), holders[0])
        );
        h.total(address(0xdead), 18, 18, holders); // no code at all
    }

    function test_DecimalsBeyond36AreRefused() public {
        vm.expectRevert(abi.encodeWithSelector(ReserveBalances.DecimalsTooLarge.selector, 37));
        h.toAssetUnits(1, 37, 8);
    }

    /// Converting down and back never gains: reserves are floored, not rounded.
    function testFuzz_ConversionNeverOverstates(uint128 amount, uint8 tokenDec, uint8 assetDec) public view {
        uint256 t = tokenDec % 37;
        uint256 a = assetDec % 37;
        uint256 got = h.toAssetUnits(amount, t, a);
        // got / 10^a <= amount / 10^t, i.e. got * 10^t <= amount * 10^a
        require(got * 10 ** t <= uint256(amount) * 10 ** a, "overstated");
        if (a >= t) require(got == uint256(amount) * 10 ** (a - t), "scaling up is exact");
    }
}

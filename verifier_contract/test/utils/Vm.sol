// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @dev The few forge cheatcodes these tests use (forge-std is not available offline).
interface Vm {
    function prank(address sender) external;
    function warp(uint256 timestamp) external;
    function assume(bool condition) external pure;
    function expectRevert(bytes calldata revertData) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter)
        external;
}

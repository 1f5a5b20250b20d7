// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @dev The few forge cheatcodes these tests use (forge-std is not available offline). Each is
///      declared exactly as forge-std's Vm.sol declares it.
interface Vm {
    /// @dev An event recorded by {recordLogs}, as forge-std's VmSafe.Log.
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function prank(address msgSender) external;
    function warp(uint256 newTimestamp) external;
    /// @dev Sets block.chainid for the rest of the test.
    function chainId(uint256 newChainId) external;
    /// @dev Sets block.prevrandao for the rest of the test.
    function prevrandao(bytes32 newPrevrandao) external;
    function assume(bool condition) external pure;
    function expectRevert(bytes calldata revertData) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter)
        external;

    /// @dev Starts recording every emitted event; {getRecordedLogs} returns and clears them.
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);

    /// @dev Starts recording storage reads and writes; {accesses} returns those of `target`.
    function record() external;
    function accesses(address target) external returns (bytes32[] memory readSlots, bytes32[] memory writeSlots);

    function load(address target, bytes32 slot) external view returns (bytes32 data);

    /// @dev Signs `digest` with `privateKey` (secp256k1); {addr} is that key's address.
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function addr(uint256 privateKey) external pure returns (address keyAddr);
    /// @dev Sets `account`'s ether balance.
    function deal(address account, uint256 newBalance) external;

    /// @dev Takes a snapshot of the whole state; {revertToState} goes back to it.
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);
}

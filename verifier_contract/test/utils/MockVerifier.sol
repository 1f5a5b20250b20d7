// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @dev Settable stand-in for a snarkjs verifier. It returns `result`, and false when an
///      expected public-signal hash is set and the signals differ from it.
abstract contract MockVerifierBase {
    bool public result = true;
    bytes32 public expectedInputs; // keccak256(abi.encode(input)); 0 = accept any input

    function setResult(bool r) external {
        result = r;
    }

    function expectInputs(bytes32 h) external {
        expectedInputs = h;
    }

    function _answer(bytes memory encodedInput) internal view returns (bool) {
        return result && (expectedInputs == bytes32(0) || keccak256(encodedInput) == expectedInputs);
    }
}

/// @dev Batch circuit: K = 3.
contract MockBatchVerifier is MockVerifierBase {
    function verifyProof(
        uint256[2] calldata,
        uint256[2][2] calldata,
        uint256[2] calldata,
        uint256[3] calldata input
    ) external view returns (bool) {
        return _answer(abi.encode(input));
    }
}

/// @dev Solvency circuit with N = 2 assets: K = 9 + 2.
contract MockSolvencyVerifier is MockVerifierBase {
    function verifyProof(
        uint256[2] calldata,
        uint256[2][2] calldata,
        uint256[2] calldata,
        uint256[11] calldata input
    ) external view returns (bool) {
        return _answer(abi.encode(input));
    }
}

/// @dev Single-account margin circuit: K = 4, [ctxHash, root, idCommit, headroom].
contract MockMarginVerifier is MockVerifierBase {
    function verifyProof(
        uint256[2] calldata,
        uint256[2][2] calldata,
        uint256[2] calldata,
        uint256[4] calldata input
    ) external view returns (bool) {
        return _answer(abi.encode(input));
    }
}

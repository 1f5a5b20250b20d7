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

/// @dev Solvency circuit with N = 2 assets: K = 10 + 3 * 2, [finalState, ctxHash, root,
///      totalsCommit, batchCount, shortfall, insuranceFund, epoch, domain, weight0, weight1,
///      verified0, verified1, declared0, declared1, verifiedOnly].
contract MockSolvencyVerifier is MockVerifierBase {
    function verifyProof(
        uint256[2] calldata,
        uint256[2][2] calldata,
        uint256[2] calldata,
        uint256[16] calldata input
    ) external view returns (bool) {
        return _answer(abi.encode(input));
    }
}

/// @dev Solvency circuit with any number of assets N: K = 10 + 3N. Answers only
///      `verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[K])` with exactly its calldata
///      size (the selector computed here the way snarkjs names it); `expectInputs` takes the
///      hash of the K words, as abi.encode(uint256[K]) lays them out.
contract MockSolvencyVerifierN is MockVerifierBase {
    uint256 public immutable k;
    bytes4 public immutable selector;

    constructor(uint256 nAssets) {
        k = 10 + 3 * nAssets;
        selector = bytes4(
            keccak256(abi.encodePacked("verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[", _decimal(k), "])"))
        );
    }

    fallback(bytes calldata data) external returns (bytes memory) {
        require(bytes4(data) == selector && data.length == 4 + 32 * (8 + k), "MockSolvencyVerifierN: call");
        return abi.encode(_answer(data[4 + 32 * 8:]));
    }

    function _decimal(uint256 v) internal pure returns (bytes memory out) {
        uint256 digits = v >= 100 ? 3 : v >= 10 ? 2 : 1;
        out = new bytes(digits);
        for (; digits > 0; v /= 10) out[--digits] = bytes1(uint8(48 + (v % 10)));
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

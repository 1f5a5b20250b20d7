// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @dev A Groth16 proof as the registry takes it.
struct Proof {
    uint256[2] a;
    uint256[2][2] b;
    uint256[2] c;
}

/// @dev Stand-in for a snarkjs verifier that is sound only for what was "proven": it accepts a
///      proof exactly for the statement it was issued for. Like a real verifier it returns false
///      (never reverts) for anything else, and also when it gets less than `cost` gas (as a
///      starved pairing precompile call makes a snarkjs verifier answer false).
///      Two deliberate weaknesses make it stricter than a real verifier for the contracts under
///      test: public inputs are compared modulo p (the input-aliasing bug, so x + p passes
///      wherever x was proven and only the contracts' own FieldOverflow checks stop it), and
///      the same statement can be issued any number of times with distinct proofs (Groth16
///      proofs are re-randomisable), so a replay cannot be refused for being a known proof.
abstract contract BookVerifierBase {
    uint256 internal constant P =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @notice The only account that may issue proofs (the test handler that deployed it).
    address public immutable prover;
    /// @notice Gas the verifier needs on entry; with less it answers false.
    uint256 public immutable cost;
    uint256 public issued;
    /// @dev keccak(a, b, c) => keccak(public inputs mod p).
    mapping(bytes32 => bytes32) public statementOf;

    constructor(uint256 cost_) {
        prover = msg.sender;
        cost = cost_;
    }

    /// @notice A fresh proof of `inputs` (a re-randomised one if the statement was issued before).
    function issue(uint256[] calldata inputs) external returns (Proof memory pr) {
        require(msg.sender == prover, "BookVerifier: not the prover");
        require(inputs.length == _k(), "BookVerifier: wrong input count");
        ++issued;
        pr.a = [issued, uint256(uint160(address(this)))];
        pr.b = [[uint256(keccak256(abi.encode(issued, inputs))), 1], [uint256(2), 3]];
        pr.c = [block.number, block.timestamp];
        statementOf[_proofId(pr.a, pr.b, pr.c)] = _statement(inputs);
    }

    function _k() internal pure virtual returns (uint256);

    function _proofId(uint256[2] memory a, uint256[2][2] memory b, uint256[2] memory c)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(a, b, c));
    }

    function _statement(uint256[] memory inputs) internal pure returns (bytes32) {
        uint256[] memory reduced = new uint256[](inputs.length);
        for (uint256 i = 0; i < inputs.length; ++i) {
            reduced[i] = inputs[i] % P;
        }
        return keccak256(abi.encode(reduced));
    }

    function _accepts(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[] memory inputs
    ) internal view returns (bool) {
        if (gasleft() < cost) return false;
        bytes32 s = statementOf[_proofId(a, b, c)];
        return s != bytes32(0) && s == _statement(inputs);
    }
}

/// @dev Batch circuit: K = 3, [prevState, nextState, ctxHash].
contract BookBatchVerifier is BookVerifierBase {
    constructor(uint256 cost_) BookVerifierBase(cost_) {}

    function _k() internal pure override returns (uint256) {
        return 3;
    }

    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[3] calldata input
    ) external view returns (bool) {
        uint256[] memory x = new uint256[](3);
        for (uint256 i = 0; i < 3; ++i) x[i] = input[i];
        return _accepts(a, b, c, x);
    }
}

/// @dev Solvency circuit with N = 2 assets: K = 10 + 3 * 2, [finalState, ctxHash, root,
///      totalsCommit, batchCount, shortfall, insuranceFund, epoch, domain, weight0, weight1,
///      verified0, verified1, declared0, declared1, verifiedOnly].
contract BookSolvencyVerifier is BookVerifierBase {
    constructor(uint256 cost_) BookVerifierBase(cost_) {}

    function _k() internal pure override returns (uint256) {
        return 16;
    }

    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[16] calldata input
    ) external view returns (bool) {
        uint256[] memory x = new uint256[](16);
        for (uint256 i = 0; i < 16; ++i) x[i] = input[i];
        return _accepts(a, b, c, x);
    }
}

/// @dev Single-account margin circuit: K = 4, [ctxHash, root, idCommit, headroom].
contract BookMarginVerifier is BookVerifierBase {
    constructor(uint256 cost_) BookVerifierBase(cost_) {}

    function _k() internal pure override returns (uint256) {
        return 4;
    }

    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[4] calldata input
    ) external view returns (bool) {
        uint256[] memory x = new uint256[](4);
        for (uint256 i = 0; i < 4; ++i) x[i] = input[i];
        return _accepts(a, b, c, x);
    }
}

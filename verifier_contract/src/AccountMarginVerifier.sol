// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "./SolvencyRegistry.sol";

/// @dev The snarkjs verifier of the single-account margin circuit (K = 4 public signals).
interface IAccountMarginGroth16Verifier {
    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[4] calldata input
    ) external view returns (bool);
}

/// @title AccountMarginVerifier
/// @notice Checks single-account margin proofs against a finalized epoch of a SolvencyRegistry:
///         "the account committed to as `idCommit` sits in the epoch's liability tree and meets
///         the strict margin rule with at least `headroom` value units to spare in every
///         scenario". The epoch's context hash and root are read from the registry, so a proof
///         can only name an epoch the registry finalized.
/// @dev The margin circuit's public signals are [ctxHash, root, idCommit, headroom]. Its snarkjs
///      verifier returns false instead of reverting, also when starved of gas; as in the
///      registry, false becomes {InvalidProof} and a call with too little gas left for the
///      verifier reverts with {InsufficientGas} before calling it.
contract AccountMarginVerifier {
    /// @notice BN254 scalar field order; every public signal must be below it.
    uint256 public constant SNARK_SCALAR_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @notice Public signal count of the margin circuit: [ctxHash, root, idCommit, headroom].
    uint256 public constant MARGIN_PUBLIC_INPUTS = 4;

    /// @dev Same budget as the registry's: the 4-pair pairing (45k + 4*34k) plus slack, and an
    ///      ecMul + ecAdd (6k + 150) plus slack per public input.
    uint256 private constant VERIFY_GAS = (181_000 + 30_000) + (6_150 + 1_000) * MARGIN_PUBLIC_INPUTS;

    /// @notice The registry whose finalized epochs the proofs name.
    SolvencyRegistry public immutable registry;
    /// @notice Groth16 verifier of the margin circuit (K = 4).
    address public immutable verifier;

    /// @dev Highest headroom proven per (epoch, idCommit), stored plus one so that 0 means
    ///      "nothing proven" (headroom is a field element, so headroom + 1 cannot overflow).
    mapping(uint64 => mapping(uint256 => uint256)) private _headroomPlusOne;

    /// @notice `prover` submitted a valid proof that `idCommit` has at least `headroom` in `epoch`.
    event MarginAttested(uint64 indexed epoch, uint256 indexed idCommit, uint256 headroom, address indexed prover);

    error NoCode(address account);
    error EpochNotFinalized(uint64 epoch, SolvencyRegistry.Status status);
    error FieldOverflow(uint256 value);
    error InsufficientGas(uint256 needed, uint256 available);
    error InvalidProof();

    /// @param registry_ The SolvencyRegistry whose epochs the proofs refer to.
    /// @param verifier_ snarkjs verifier of the margin circuit instance matching the registry's
    ///        (a proof from another instance hashes another context and cannot verify).
    constructor(address registry_, address verifier_) {
        if (registry_.code.length == 0) revert NoCode(registry_);
        if (verifier_.code.length == 0) revert NoCode(verifier_);
        registry = SolvencyRegistry(registry_);
        verifier = verifier_;
    }

    // ------------------------------------------------------------------ checks

    /// @notice Reverts unless the proof shows that `idCommit` is in finalized `epoch` with at
    ///         least `headroom` of margin in every scenario; returns true otherwise.
    function verifyMargin(
        uint64 epoch,
        uint256 idCommit,
        uint256 headroom,
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c
    ) external view returns (bool) {
        _verifyMargin(epoch, idCommit, headroom, a, b, c);
        return true;
    }

    /// @notice Verifies like {verifyMargin} and records the headroom for (`epoch`, `idCommit`),
    ///         keeping the highest one ever proven. Anyone may attest; the event names who did.
    /// @return recorded The highest headroom proven for (`epoch`, `idCommit`) after this call.
    function attest(
        uint64 epoch,
        uint256 idCommit,
        uint256 headroom,
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c
    ) external returns (uint256 recorded) {
        _verifyMargin(epoch, idCommit, headroom, a, b, c);
        uint256 stored = _headroomPlusOne[epoch][idCommit];
        if (headroom + 1 > stored) {
            _headroomPlusOne[epoch][idCommit] = headroom + 1;
            recorded = headroom;
        } else {
            recorded = stored - 1;
        }
        emit MarginAttested(epoch, idCommit, headroom, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @notice Whether a headroom was attested for (`epoch`, `idCommit`), and the highest one.
    function attestedHeadroom(uint64 epoch, uint256 idCommit) external view returns (bool proven, uint256 headroom) {
        uint256 stored = _headroomPlusOne[epoch][idCommit];
        if (stored == 0) return (false, 0);
        return (true, stored - 1);
    }

    // ------------------------------------------------------------------ internals

    function _verifyMargin(
        uint64 epoch,
        uint256 idCommit,
        uint256 headroom,
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c
    ) private view {
        _checkField(idCommit);
        _checkField(headroom);
        SolvencyRegistry.Epoch memory e = registry.getEpoch(epoch);
        if (e.status != SolvencyRegistry.Status.Finalized) revert EpochNotFinalized(epoch, e.status);

        // Scale by 64/63: the call forwards at most 63/64 of what is left.
        uint256 needed = VERIFY_GAS + VERIFY_GAS / 63;
        uint256 available = gasleft();
        if (available < needed) revert InsufficientGas(needed, available);
        (bool ok, bytes memory ret) = verifier.staticcall(
            abi.encodeCall(
                IAccountMarginGroth16Verifier.verifyProof, (a, b, c, [e.ctxHash, e.root, idCommit, headroom])
            )
        );
        if (!ok || ret.length != 32 || abi.decode(ret, (uint256)) != 1) revert InvalidProof();
    }

    /// @dev The verifier also rejects these, but by returning false; failing here names the cause.
    function _checkField(uint256 v) private pure {
        if (v >= SNARK_SCALAR_FIELD) revert FieldOverflow(v);
    }
}

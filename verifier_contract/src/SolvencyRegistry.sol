// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title SolvencyRegistry
/// @notice Per-epoch on-chain record of an exchange's proof of solvency. An epoch is opened
///         with a context hash, then its batch proofs are submitted strictly in order (each one
///         moves a state chain that starts at the context hash), then a solvency proof binds the
///         final state to the liability Merkle root, a commitment to the per-asset totals, the
///         exchange's total margin shortfall, the insurance fund covering it and the public
///         reserves, under the epoch's number and this registry's {domain}. Users check their
///         inclusion proof against a finalized root, and single-account margin proofs
///         (AccountMarginVerifier) name a finalized epoch.
/// @dev Verifiers are snarkjs Groth16 contracts. They return false instead of reverting and
///      their public-input array length K differs per circuit, so they are called through a
///      low-level staticcall with a selector fixed at construction; one registry source thus
///      serves any number of assets.
contract SolvencyRegistry {
    /// @notice BN254 scalar field order; every public signal must be below it.
    uint256 public constant SNARK_SCALAR_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @notice Public signal count of the batch circuit: [prevState, nextState, ctxHash].
    uint256 public constant BATCH_PUBLIC_INPUTS = 3;
    /// @notice Solvency public signals before the reserves: [finalState, ctxHash, root,
    ///         totalsCommit, batchCount, shortfall, insuranceFund, epoch, domain].
    uint256 public constant SOLVENCY_FIXED_INPUTS = 9;

    /// @notice `kind` values carried by {InvalidProof} and {InsufficientGas}.
    uint8 public constant KIND_BATCH = 0;
    uint8 public constant KIND_SOLVENCY = 1;

    /// @dev Gas a snarkjs verifier needs: the 4-pair pairing (45k + 4*34k), one ecMul + ecAdd
    ///      (6k + 150) per public input, and slack for its memory/calldata work. Checked before
    ///      the call because a verifier starved of gas returns false, which would otherwise be
    ///      indistinguishable from a bad proof (and makes eth_estimateGas under-estimate).
    uint256 private constant VERIFY_GAS_BASE = 181_000 + 30_000;
    uint256 private constant VERIFY_GAS_PER_INPUT = 6_150 + 1_000;

    enum Status {
        None,
        Open,
        Finalized,
        Abandoned
    }

    /// @notice Stored fields of one epoch; its reserves are returned by {getReserves}.
    struct Epoch {
        uint256 ctxHash;
        bytes32 bundleHash;
        uint256 state; // current head of the batch state chain (final state once finalized)
        uint256 root;
        uint256 totalsCommit;
        uint256 shortfall; // sum of the accounts' margin shortfalls (0 in strict mode)
        uint256 insuranceFund; // declared fund, proven to cover `shortfall`
        uint64 nBatches;
        uint64 batchesSubmitted;
        uint48 openedAt;
        uint48 finalizedAt;
        Status status;
    }

    /// @notice The only account allowed to write.
    address public immutable publisher;
    /// @notice Groth16 verifier of the batch circuit (K = 3).
    address public immutable batchVerifier;
    /// @notice Groth16 verifier of the solvency circuit (K = 9 + nAssets).
    address public immutable solvencyVerifier;
    /// @notice Number of assets, i.e. reserves per epoch.
    uint256 public immutable nAssets;
    /// @notice `verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[3])` selector.
    bytes4 public immutable batchSelector;
    /// @notice `verifyProof(...,uint256[9 + nAssets])` selector.
    bytes4 public immutable solvencySelector;
    uint256 private immutable _solvencyVerifyGas;

    /// @notice Highest epoch ever opened (0 = none; epochs start at 1).
    uint64 public latestEpoch;
    /// @notice Highest finalized epoch (0 = none).
    uint64 public latestFinalizedEpoch;
    /// @notice The epoch currently open (0 = none).
    uint64 public openEpochId;

    mapping(uint64 => Epoch) private _epochs;
    mapping(uint64 => uint256[]) private _reserves;

    event EpochOpened(uint64 indexed epoch, uint256 ctxHash, uint64 nBatches, bytes32 bundleHash);
    event BatchVerified(uint64 indexed epoch, uint64 index, uint256 prevState, uint256 nextState);
    event EpochFinalized(
        uint64 indexed epoch,
        uint256 root,
        uint256 finalState,
        uint256 totalsCommit,
        uint256 shortfall,
        uint256 insuranceFund,
        uint64 nBatches,
        uint256[] reserves
    );
    event EpochAbandoned(uint64 indexed epoch, uint64 batchesSubmitted);

    error ZeroAddress();
    error NoCode(address account);
    error ZeroAssets();
    error NotPublisher(address caller);
    error EpochNotIncreasing(uint64 epoch, uint64 latest);
    error EpochStillOpen(uint64 openEpoch);
    error NotOpen(uint64 epoch);
    error ZeroBatches();
    error WrongBatchIndex(uint64 expected, uint64 got);
    error TooManyBatches(uint64 index, uint64 nBatches);
    error BatchesMissing(uint64 submitted, uint64 nBatches);
    error WrongReserveCount(uint256 expected, uint256 got);
    error FieldOverflow(uint256 value);
    error InsufficientGas(uint8 kind, uint256 needed, uint256 available);
    error InvalidProof(uint8 kind);
    error ChainIdTooLarge(uint256 chainId);

    modifier onlyPublisher() {
        if (msg.sender != publisher) revert NotPublisher(msg.sender);
        _;
    }

    /// @param publisher_ Account allowed to open, submit, finalize and abandon.
    /// @param batchVerifier_ snarkjs verifier of the batch circuit.
    /// @param solvencyVerifier_ snarkjs verifier of the solvency circuit for `nAssets_` assets.
    /// @param nAssets_ Number of reserves per epoch.
    constructor(
        address publisher_,
        address batchVerifier_,
        address solvencyVerifier_,
        uint256 nAssets_
    ) {
        if (publisher_ == address(0)) revert ZeroAddress();
        if (batchVerifier_.code.length == 0) revert NoCode(batchVerifier_);
        if (solvencyVerifier_.code.length == 0) revert NoCode(solvencyVerifier_);
        if (nAssets_ == 0) revert ZeroAssets();
        // From 2^64 on, {domain} could reach the field order (and from 2^96 lose the id's top
        // bits); it refuses such ids itself, and no registry is deployed on a chain that has one.
        if (block.chainid >= 1 << 64) revert ChainIdTooLarge(block.chainid);
        publisher = publisher_;
        batchVerifier = batchVerifier_;
        solvencyVerifier = solvencyVerifier_;
        nAssets = nAssets_;
        batchSelector = _verifySelector(BATCH_PUBLIC_INPUTS);
        solvencySelector = _verifySelector(SOLVENCY_FIXED_INPUTS + nAssets_);
        _solvencyVerifyGas = _verifyGas(SOLVENCY_FIXED_INPUTS + nAssets_);
    }

    // ------------------------------------------------------------------ writes

    /// @notice Opens `epoch`; its state chain starts at `ctxHash`.
    /// @param epoch Must exceed every epoch opened before (so 0 is never valid).
    /// @param ctxHash Context hash binding the epoch's proofs; must be a field element.
    /// @param nBatches Number of batch proofs that must be submitted before finalizing.
    /// @param bundleHash Hash of the off-chain epoch bundle, recorded for auditors.
    function openEpoch(uint64 epoch, uint256 ctxHash, uint64 nBatches, bytes32 bundleHash)
        external
        onlyPublisher
    {
        if (epoch <= latestEpoch) revert EpochNotIncreasing(epoch, latestEpoch);
        if (openEpochId != 0) revert EpochStillOpen(openEpochId);
        if (nBatches == 0) revert ZeroBatches();
        _checkField(ctxHash);

        latestEpoch = epoch;
        openEpochId = epoch;
        Epoch storage e = _epochs[epoch];
        e.ctxHash = ctxHash;
        e.bundleHash = bundleHash;
        e.state = ctxHash;
        e.nBatches = nBatches;
        e.openedAt = uint48(block.timestamp);
        e.status = Status.Open;
        emit EpochOpened(epoch, ctxHash, nBatches, bundleHash);
    }

    /// @notice Verifies batch `index` of the open epoch and advances its state to `nextState`.
    /// @dev Public signals: [storedState, nextState, ctxHash]. `index` must equal the number of
    ///      batches already accepted, which rules out replays, gaps and reordering.
    function submitBatch(
        uint64 epoch,
        uint64 index,
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256 nextState
    ) external onlyPublisher {
        Epoch storage e = _openEpoch(epoch);
        uint64 submitted = e.batchesSubmitted;
        if (index >= e.nBatches) revert TooManyBatches(index, e.nBatches);
        if (index != submitted) revert WrongBatchIndex(submitted, index);
        _checkField(nextState);

        uint256 prevState = e.state;
        _verify(
            KIND_BATCH,
            batchVerifier,
            batchSelector,
            _verifyGas(BATCH_PUBLIC_INPUTS),
            abi.encode(a, b, c, prevState, nextState, e.ctxHash)
        );
        e.state = nextState;
        e.batchesSubmitted = submitted + 1;
        emit BatchVerified(epoch, index, prevState, nextState);
    }

    /// @notice Verifies the solvency proof of the open epoch and finalizes it.
    /// @dev Public signals: [finalState, ctxHash, root, totalsCommit, nBatches, shortfall,
    ///      insuranceFund, epoch, domain, reserves...]. The circuit proves shortfall <=
    ///      insuranceFund, and shortfall = 0 when the context's mode is strict. `epoch` is the
    ///      epoch number inside the context preimage, so a ctxHash reopened under another epoch
    ///      number cannot be finalized with the proof made for the first; `domain` is {domain}
    ///      for the chain id in force, so finalize reverts with {ChainIdTooLarge} if that id has
    ///      reached 2^64.
    /// @param shortfall Sum of the accounts' margin shortfalls, as the batches accumulated it.
    /// @param insuranceFund Insurance fund the exchange declares against that shortfall.
    function finalize(
        uint64 epoch,
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256 root,
        uint256 totalsCommit,
        uint256 shortfall,
        uint256 insuranceFund,
        uint256[] calldata reserves
    ) external onlyPublisher {
        Epoch storage e = _openEpoch(epoch);
        if (e.batchesSubmitted != e.nBatches) revert BatchesMissing(e.batchesSubmitted, e.nBatches);
        if (reserves.length != nAssets) revert WrongReserveCount(nAssets, reserves.length);
        _checkField(root);
        _checkField(totalsCommit);
        _checkField(shortfall);
        _checkField(insuranceFund);
        for (uint256 i = 0; i < reserves.length; ++i) {
            _checkField(reserves[i]);
        }

        {
            // A calldata uint256[] packs as its bare 32-byte words: exactly the inline layout of
            // the verifier's static uint256[K] tail.
            bytes memory args = abi.encodePacked(
                abi.encode(a, b, c),
                _solvencySignals(epoch, e, root, totalsCommit, shortfall, insuranceFund),
                reserves
            );
            _verify(KIND_SOLVENCY, solvencyVerifier, solvencySelector, _solvencyVerifyGas, args);
        }
        e.root = root;
        e.totalsCommit = totalsCommit;
        e.shortfall = shortfall;
        e.insuranceFund = insuranceFund;
        e.finalizedAt = uint48(block.timestamp);
        e.status = Status.Finalized;
        _reserves[epoch] = reserves;
        openEpochId = 0;
        latestFinalizedEpoch = epoch;
        emit EpochFinalized(
            epoch, root, e.state, totalsCommit, shortfall, insuranceFund, e.nBatches, reserves
        );
    }

    /// @notice Gives up on the open `epoch` (e.g. a lost or bad bundle) so a later one can be
    ///         opened. An abandoned epoch can never be finalized.
    function abandonEpoch(uint64 epoch) external onlyPublisher {
        Epoch storage e = _openEpoch(epoch);
        e.status = Status.Abandoned;
        openEpochId = 0;
        emit EpochAbandoned(epoch, e.batchesSubmitted);
    }

    // ------------------------------------------------------------------ views

    /// @notice `(block.chainid << 160) | address(this)`, with the chain id in force now: the
    ///         solvency circuit's `domain` signal. finalize supplies it (as it supplies `epoch`),
    ///         never the caller, so a solvency proof made for another registry, or for one at
    ///         this address on another chain, never verifies here.
    /// @dev Recomputed on every call rather than fixed at deployment, as EIP-712 domain
    ///      separators are when block.chainid changes: a chain split carries this registry, at
    ///      the same address and with the same storage, onto both branches, and a fork that
    ///      gives one branch a new chain id (EIP-155) must leave each branch's registry refusing
    ///      the proofs made for the other, which only the live chain id tells apart. Injective
    ///      and a field element while the chain id is below 2^64: the id fills bits 160..223 and
    ///      the address bits 0..159, far below p. From 2^64 on it reverts with {ChainIdTooLarge}
    ///      (and so does finalize).
    function domain() public view returns (uint256) {
        if (block.chainid >= 1 << 64) revert ChainIdTooLarge(block.chainid);
        return (block.chainid << 160) | uint256(uint160(address(this)));
    }

    /// @notice Stored fields of `epoch` (all zero with status None if never opened).
    function getEpoch(uint64 epoch) external view returns (Epoch memory) {
        return _epochs[epoch];
    }

    /// @notice Reserves of a finalized `epoch` (empty otherwise).
    function getReserves(uint64 epoch) external view returns (uint256[] memory) {
        return _reserves[epoch];
    }

    /// @notice True iff `epoch` is finalized with liability root `root`.
    function isFinalizedRoot(uint64 epoch, uint256 root) external view returns (bool) {
        Epoch storage e = _epochs[epoch];
        return e.status == Status.Finalized && e.root == root;
    }

    // ------------------------------------------------------------------ internals

    function _openEpoch(uint64 epoch) private view returns (Epoch storage e) {
        if (epoch == 0 || epoch != openEpochId) revert NotOpen(epoch);
        return _epochs[epoch];
    }

    /// @dev The solvency signals before the reserves, in the circuit's order: [finalState,
    ///      ctxHash, root, totalsCommit, nBatches, shortfall, insuranceFund, epoch, domain].
    ///      (A helper of its own keeps finalize's stack shallow.)
    function _solvencySignals(
        uint64 epoch,
        Epoch storage e,
        uint256 root,
        uint256 totalsCommit,
        uint256 shortfall,
        uint256 insuranceFund
    ) private view returns (bytes memory) {
        return abi.encode(
            e.state, e.ctxHash, root, totalsCommit, e.nBatches, shortfall, insuranceFund, uint256(epoch), domain()
        );
    }

    /// @dev The verifier also rejects these, but by returning false; failing here names the cause.
    function _checkField(uint256 v) private pure {
        if (v >= SNARK_SCALAR_FIELD) revert FieldOverflow(v);
    }

    /// @dev `args` is abi.encode(a, b, c) followed by the K public-signal words.
    function _verify(uint8 kind, address verifier, bytes4 selector, uint256 gasNeeded, bytes memory args)
        private
        view
    {
        // Scale by 64/63: the call forwards at most 63/64 of what is left.
        uint256 available = gasleft();
        if (available < gasNeeded + gasNeeded / 63) {
            revert InsufficientGas(kind, gasNeeded + gasNeeded / 63, available);
        }
        (bool ok, bytes memory ret) = verifier.staticcall(abi.encodePacked(selector, args));
        if (!ok || ret.length != 32 || abi.decode(ret, (uint256)) != 1) revert InvalidProof(kind);
    }

    function _verifyGas(uint256 nInputs) private pure returns (uint256) {
        return VERIFY_GAS_BASE + VERIFY_GAS_PER_INPUT * nInputs;
    }

    function _verifySelector(uint256 nInputs) private pure returns (bytes4) {
        return bytes4(
            keccak256(
                abi.encodePacked(
                    "verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[", _toDecimal(nInputs), "])"
                )
            )
        );
    }

    function _toDecimal(uint256 v) private pure returns (bytes memory out) {
        if (v == 0) return "0";
        uint256 digits;
        for (uint256 t = v; t != 0; t /= 10) ++digits;
        out = new bytes(digits);
        for (; v != 0; v /= 10) out[--digits] = bytes1(uint8(48 + (v % 10)));
    }
}

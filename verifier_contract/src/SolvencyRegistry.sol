// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {CustodySignatures} from "./CustodySignatures.sol";
import {PriceCheck} from "./PriceCheck.sol";
import {ReserveBalances} from "./ReserveBalances.sol";

/// @title SolvencyRegistry
/// @notice Per-epoch on-chain record of an exchange's proof of solvency. An epoch is opened
///         with a context hash, then its batch proofs are submitted strictly in order (each one
///         moves a state chain that starts at the context hash), then a solvency proof binds the
///         final state to the liability Merkle root, a commitment to the per-asset totals, the
///         exchange's total margin shortfall, the insurance fund covering it, the epoch's prices
///         and its reserves, under the epoch's number and this registry's {domain}. Users check
///         their inclusion proof against a finalized root, and single-account margin proofs
///         (AccountMarginVerifier) name a finalized epoch.
///
///         The registry does not take the exchange's word for the two inputs it can check
///         itself. Reserves on this chain are read at finalize from the custody addresses the
///         exchange proved it controls for the epoch ({addCustody}), and must cover the proven
///         ones (which are what is attested); reserves elsewhere are recorded apart, as declared. Prices are checked against
///         on-chain feeds (PriceCheck); if they disagree, finalize refuses to attest, without
///         reverting, so the refusal and its reasons stay on the chain.
/// @dev Verifiers are snarkjs Groth16 contracts. They return false instead of reverting and
///      their public-input array length K differs per circuit, so they are called through a
///      low-level staticcall with a selector fixed at construction; one registry source thus
///      serves any number of assets. Every other contract it reads (feeds, tokens, custody
///      wallets) is read through BoundedCall, with a gas allowance checked before the call.
contract SolvencyRegistry {
    /// @notice BN254 scalar field order; every public signal must be below it.
    uint256 public constant SNARK_SCALAR_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @notice Public signal count of the batch circuit: [prevState, nextState, ctxHash].
    uint256 public constant BATCH_PUBLIC_INPUTS = 3;
    /// @notice Solvency public signals before the per-asset ones: [finalState, ctxHash, root,
    ///         totalsCommit, batchCount, shortfall, insuranceFund, epoch, domain]. They are
    ///         followed by weights[N], verified[N], declared[N] and verifiedOnly: K = 10 + 3N.
    uint256 public constant SOLVENCY_FIXED_INPUTS = 9;
    /// @notice Largest asset decimals in the snapshot: a weight is priceE8 * 10^(18 - decimals).
    uint256 public constant MAX_ASSET_DECIMALS = 18;

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

    /// @notice Stored fields of one epoch; its reserves are returned by {getReserves} and
    ///         {getDeclaredReserves}, its prices by {getPrices} and its custody by {getCustody}.
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
        bool verifiedOnly; // proven: every asset is covered by its verified reserves alone
    }

    /// @notice How one asset is read on this chain; fixed at deployment.
    /// @dev `token`: address(0) when the asset is not on this chain (its verified reserve is then
    ///      0 and all of it must be declared), ReserveBalances.NATIVE for ether, else an ERC-20.
    ///      `tokenDecimals` are the token's (18 for ether; ignored for address(0)) and
    ///      `assetDecimals` the asset's in the snapshot, which may differ. `feeds`, `maxAge`,
    ///      `toleranceBps` and `quorum` are the asset's PriceCheck.Feeds; an empty `feeds` leaves
    ///      its price unchecked on-chain (no feed exists for it here). They are flattened into
    ///      this struct rather than nested as a PriceCheck.Feeds: the constructor's decoder of an
    ///      array of structs nesting a struct with a dynamic array is too deep a stack for legacy
    ///      codegen with the optimizer's Yul inliner.
    struct AssetConfig {
        address token;
        uint8 tokenDecimals;
        uint8 assetDecimals;
        address[] feeds;
        uint32 maxAge;
        uint16 toleranceBps;
        uint8 quorum;
    }

    /// @notice A Groth16 proof as snarkjs exports it.
    struct Proof {
        uint256[2] a;
        uint256[2][2] b;
        uint256[2] c;
    }

    /// @notice What a solvency proof claims, besides what the registry supplies itself (the
    ///         final state, context, batch count, epoch and domain).
    /// @dev `weights[i]` is asset i's price per smallest unit in value units (USD * 10^26), i.e.
    ///      priceE8 * 10^(18 - assetDecimals); `verified[i]` its reserves on this chain (in the
    ///      asset's units), which finalize reads back; `declared[i]` its reserves elsewhere.
    struct Claim {
        uint256 root;
        uint256 totalsCommit;
        uint256 shortfall;
        uint256 insuranceFund;
        uint256[] weights;
        uint256[] verified;
        uint256[] declared;
        bool verifiedOnly;
    }

    /// @notice The only account allowed to write.
    address public immutable publisher;
    /// @notice Groth16 verifier of the batch circuit (K = 3).
    address public immutable batchVerifier;
    /// @notice Groth16 verifier of the solvency circuit (K = 10 + 3 * nAssets).
    address public immutable solvencyVerifier;
    /// @notice Number of assets, i.e. reserves per epoch.
    uint256 public immutable nAssets;
    /// @notice `verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[3])` selector.
    bytes4 public immutable batchSelector;
    /// @notice `verifyProof(...,uint256[10 + 3 * nAssets])` selector.
    bytes4 public immutable solvencySelector;
    uint256 private immutable _solvencyVerifyGas;

    /// @notice Highest epoch ever opened (0 = none; epochs start at 1).
    uint64 public latestEpoch;
    /// @notice Highest finalized epoch (0 = none).
    uint64 public latestFinalizedEpoch;
    /// @notice The epoch currently open (0 = none).
    uint64 public openEpochId;

    mapping(uint64 => Epoch) private _epochs;
    mapping(uint64 => uint256[]) private _reserves; // verified, read on this chain
    /// @dev Per-asset configuration, in the circuit's asset order; never written after deployment.
    AssetConfig[] private _assets;
    mapping(uint64 => uint256[]) private _declared;
    mapping(uint64 => uint256[]) private _prices; // claimed USD prices, 8 decimals
    /// @dev Custody addresses proven for each epoch, strictly increasing.
    mapping(uint64 => address[]) private _custody;

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
        uint256[] verified,
        uint256[] declared,
        bool verifiedOnly
    );
    event EpochAbandoned(uint64 indexed epoch, uint64 batchesSubmitted);
    /// @notice One event per custody address, so an indexer can follow each without decoding arrays.
    event CustodyAdded(uint64 indexed epoch, address holder);
    /// @notice Asset `asset`'s claimed price failed the check: the verdict, the claim and the
    ///         feeds' median (USD, 8 decimals), how many feeds were fresh and how many agreed.
    ///         Emitted per failing asset, before {AttestationRefused}.
    event PriceCheckFailed(
        uint64 indexed epoch,
        uint256 asset,
        PriceCheck.Verdict verdict,
        uint256 claimedE8,
        uint256 median,
        uint256 fresh,
        uint256 agreeing
    );
    /// @notice finalize refused to attest `epoch` because its prices failed; the epoch stays open.
    event AttestationRefused(uint64 indexed epoch);

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
    error WrongAssetCount(uint256 expected, uint256 got);
    error BadAssetDecimals(uint256 asset, uint256 decimals);
    error BadTokenDecimals(uint256 asset, uint256 decimals);
    error TokenDecimalsDiffer(uint256 asset, address token, uint256 configured);
    error TokenInTwoAssets(address token, uint256 first, uint256 second);
    error WrongWeightCount(uint256 expected, uint256 got);
    error WrongSignatureCount(uint256 holders, uint256 signatures);
    error CustodyNotIncreasing(uint256 index);
    error BadCustodySignature(address holder);
    error ReservesChanged(uint256 asset, uint256 claimed, uint256 onchain);

    modifier onlyPublisher() {
        if (msg.sender != publisher) revert NotPublisher(msg.sender);
        _;
    }

    /// @param publisher_ Account allowed to open, add custody, submit, finalize and abandon.
    /// @param batchVerifier_ snarkjs verifier of the batch circuit.
    /// @param solvencyVerifier_ snarkjs verifier of the solvency circuit for `nAssets_` assets.
    /// @param nAssets_ Number of assets, in the circuit's order.
    /// @param assets_ How each asset is read here (see {AssetConfig}); fixed for good, since an
    ///        exchange able to swap a feed or a token later could pick what gets checked.
    constructor(
        address publisher_,
        address batchVerifier_,
        address solvencyVerifier_,
        uint256 nAssets_,
        AssetConfig[] memory assets_
    ) {
        if (publisher_ == address(0)) revert ZeroAddress();
        if (batchVerifier_.code.length == 0) revert NoCode(batchVerifier_);
        if (solvencyVerifier_.code.length == 0) revert NoCode(solvencyVerifier_);
        if (nAssets_ == 0) revert ZeroAssets();
        if (assets_.length != nAssets_) revert WrongAssetCount(nAssets_, assets_.length);
        // From 2^64 on, {domain} could reach the field order (and from 2^96 lose the id's top
        // bits); it refuses such ids itself, and no registry is deployed on a chain that has one.
        if (block.chainid >= 1 << 64) revert ChainIdTooLarge(block.chainid);
        publisher = publisher_;
        batchVerifier = batchVerifier_;
        solvencyVerifier = solvencyVerifier_;
        nAssets = nAssets_;
        batchSelector = _verifySelector(BATCH_PUBLIC_INPUTS);
        solvencySelector = _verifySelector(_solvencyInputs(nAssets_));
        _solvencyVerifyGas = _verifyGas(_solvencyInputs(nAssets_));
        for (uint256 i = 0; i < nAssets_; ++i) {
            _addAsset(i, assets_[i]);
        }
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

    /// @notice Records custody addresses of the open `epoch`: addresses whose on-chain balances
    ///         count as the exchange's verified reserves at finalize.
    /// @dev Each address signs, for this epoch of this registry on this chain (EIP-712, see
    ///      CustodySignatures; ERC-1271 for contract wallets), so an exchange cannot count an
    ///      address it does not control, nor reuse a signature made for another epoch, registry
    ///      or chain. Addresses must be strictly increasing, across calls too (each call's first
    ///      exceeds the last one already added): large sets can be added in chunks and no
    ///      balance is ever counted twice. Emits one {CustodyAdded} per address.
    /// @param holders Custody addresses, strictly increasing.
    /// @param signatures `signatures[i]` is `holders[i]`'s signature (65 bytes r, s, v for a key).
    function addCustody(uint64 epoch, address[] calldata holders, bytes[] calldata signatures)
        external
        onlyPublisher
    {
        _openEpoch(epoch);
        if (holders.length != signatures.length) revert WrongSignatureCount(holders.length, signatures.length);
        address[] storage custody = _custody[epoch];
        address last = custody.length == 0 ? address(0) : custody[custody.length - 1];
        for (uint256 i = 0; i < holders.length; ++i) {
            address holder = holders[i];
            // (The first address ever added has nothing below it; address(0) fails its signature.)
            if (holder <= last && (i > 0 || custody.length > 0)) revert CustodyNotIncreasing(i);
            if (!CustodySignatures.isValid(address(this), epoch, holder, signatures[i])) {
                revert BadCustodySignature(holder);
            }
            custody.push(holder);
            last = holder;
            emit CustodyAdded(epoch, holder);
        }
    }

    /// @notice Verifies the solvency proof of the open epoch and finalizes it, unless its prices
    ///         fail the on-chain check.
    /// @dev In order:
    ///      1. the epoch is open with every batch in, each array has one entry per asset and
    ///         every value is a field element;
    ///      2. the claimed price of each asset with feeds (weights[i] / 10^(18 - assetDecimals),
    ///         floored, USD with 8 decimals) is checked by PriceCheck. If any fails, finalize
    ///         emits {PriceCheckFailed} per failing asset and {AttestationRefused} and returns
    ///         false, changing nothing else: the epoch stays open, to be retried once the feeds
    ///         agree again, or abandoned. It does not revert, so that the refusal and its
    ///         reasons stay on the chain, where anyone can read them;
    ///      3. the reserves held now by the epoch's custody addresses ({onchainReserves}) must
    ///         be at least `claim.verified`, else {ReservesChanged}: funds left since the proof
    ///         was made, and a proof of reserves that are gone is not attested. More is fine
    ///         (deposits, or dust anyone sends to block finalize): the proven floor is stored;
    ///      4. the proof is verified with the signals [finalState, ctxHash, root, totalsCommit,
    ///         nBatches, shortfall, insuranceFund, epoch, domain, weights..., verified...,
    ///         declared..., verifiedOnly]. The circuit proves shortfall <= insuranceFund (0 in
    ///         strict mode), the liabilities valued at `weights`, and `verifiedOnly` = 1 iff the
    ///         verified reserves alone cover every asset. `epoch` is the epoch number inside the
    ///         context preimage, so a ctxHash reopened under another epoch number cannot be
    ///         finalized with the proof made for the first; `domain` is {domain} for the chain
    ///         id in force, so finalize reverts with {ChainIdTooLarge} if that id has reached 2^64.
    /// @return finalized True if the epoch is finalized; false if the price check refused it.
    function finalize(uint64 epoch, Proof calldata proof, Claim calldata claim)
        external
        onlyPublisher
        returns (bool finalized)
    {
        Epoch storage e = _openEpoch(epoch);
        if (e.batchesSubmitted != e.nBatches) revert BatchesMissing(e.batchesSubmitted, e.nBatches);
        _checkClaim(claim);
        (bool pricesOk, uint256[] memory pricesE8) = _checkPrices(epoch, claim.weights);
        if (!pricesOk) return false;
        _checkReserves(claim.verified, onchainReserves(_custody[epoch]));
        _verifySolvency(epoch, e, proof, claim);

        e.root = claim.root;
        e.totalsCommit = claim.totalsCommit;
        e.shortfall = claim.shortfall;
        e.insuranceFund = claim.insuranceFund;
        e.finalizedAt = uint48(block.timestamp);
        e.status = Status.Finalized;
        e.verifiedOnly = claim.verifiedOnly;
        _reserves[epoch] = claim.verified;
        _declared[epoch] = claim.declared;
        _prices[epoch] = pricesE8;
        openEpochId = 0;
        latestFinalizedEpoch = epoch;
        _emitFinalized(epoch, e, claim);
        return true;
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

    /// @notice Verified reserves of a finalized `epoch`, per asset, in the asset's units: what its
    ///         custody addresses held on this chain at finalize (empty before).
    function getReserves(uint64 epoch) external view returns (uint256[] memory) {
        return _reserves[epoch];
    }

    /// @notice Declared reserves of a finalized `epoch`: held where this chain cannot see (other
    ///         chains, banks), proven to enter the solvency sums but not checked here (empty before).
    function getDeclaredReserves(uint64 epoch) external view returns (uint256[] memory) {
        return _declared[epoch];
    }

    /// @notice The USD prices (8 decimals, floored) a finalized `epoch` was proven at (empty before).
    function getPrices(uint64 epoch) external view returns (uint256[] memory) {
        return _prices[epoch];
    }

    /// @notice The custody addresses added for `epoch`, in increasing order.
    function getCustody(uint64 epoch) external view returns (address[] memory) {
        return _custody[epoch];
    }

    /// @notice How asset `i` is read on this chain.
    function assetConfig(uint256 i) external view returns (AssetConfig memory) {
        return _assets[i];
    }

    /// @notice What `holders` hold now, per asset, in the asset's units (floored): 0 for assets
    ///         not on this chain. The prover reads it before proving, with the addresses it will
    ///         add; finalize computes the same with the epoch's custody addresses.
    /// @dev Reverts with ReserveBalances.HoldersNotIncreasing unless `holders` strictly increase
    ///      (when some asset is on this chain), and with TokenReadFailed if a token cannot be read.
    function onchainReserves(address[] memory holders) public view returns (uint256[] memory reserves) {
        reserves = new uint256[](nAssets);
        for (uint256 i = 0; i < reserves.length; ++i) {
            AssetConfig storage asset = _assets[i];
            if (asset.token == address(0)) continue;
            reserves[i] = ReserveBalances.total(asset.token, asset.tokenDecimals, asset.assetDecimals, holders);
        }
    }

    /// @notice The price check finalize would make now of `weights` (one per asset): per asset
    ///         the verdict, the feeds' median, and how many were fresh and agreed. An asset
    ///         without feeds reads Ok with all else 0. Lets a publisher see the breaker before
    ///         sending finalize.
    function checkPrices(uint256[] calldata weights) external view returns (PriceCheck.Reading[] memory readings) {
        if (weights.length != nAssets) revert WrongWeightCount(nAssets, weights.length);
        (readings,) = _readPrices(weights);
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

    /// @dev Validates and stores asset `i`'s configuration.
    function _addAsset(uint256 i, AssetConfig memory c) private {
        if (c.feeds.length != 0) PriceCheck.validate(_feedsOf(c));
        // A weight is priceE8 * 10^(18 - assetDecimals): more decimals have no integral weight.
        if (c.assetDecimals > MAX_ASSET_DECIMALS) revert BadAssetDecimals(i, c.assetDecimals);
        if (c.token != address(0)) {
            if (c.tokenDecimals > ReserveBalances.MAX_DECIMALS) revert BadTokenDecimals(i, c.tokenDecimals);
            // One balance read for two assets would count it as reserves of both.
            for (uint256 j = 0; j < i; ++j) {
                if (_assets[j].token == c.token) revert TokenInTwoAssets(c.token, j, i);
            }
            if (c.token != ReserveBalances.NATIVE) {
                // An address without code answers every call with nothing: no token lives there.
                if (c.token.code.length == 0) revert NoCode(c.token);
                // A wrong scale would misstate every verified reserve by powers of ten.
                (bool ok, uint256 dec) = ReserveBalances.decimalsOf(c.token);
                if (!ok || dec != c.tokenDecimals) revert TokenDecimalsDiffer(i, c.token, c.tokenDecimals);
            }
        }
        _assets.push(c);
    }

    function _feedsOf(AssetConfig memory c) private pure returns (PriceCheck.Feeds memory) {
        return PriceCheck.Feeds(c.feeds, c.maxAge, c.toleranceBps, c.quorum);
    }

    /// @dev Step 1 of finalize: one entry per asset in each array, and every value a field element.
    function _checkClaim(Claim calldata claim) private view {
        if (claim.weights.length != nAssets) revert WrongWeightCount(nAssets, claim.weights.length);
        if (claim.verified.length != nAssets) revert WrongReserveCount(nAssets, claim.verified.length);
        if (claim.declared.length != nAssets) revert WrongReserveCount(nAssets, claim.declared.length);
        _checkField(claim.root);
        _checkField(claim.totalsCommit);
        _checkField(claim.shortfall);
        _checkField(claim.insuranceFund);
        for (uint256 i = 0; i < nAssets; ++i) {
            _checkField(claim.weights[i]);
            _checkField(claim.verified[i]);
            _checkField(claim.declared[i]);
        }
    }

    /// @dev Each asset's claimed USD price (8 decimals, floored) and its reading.
    function _readPrices(uint256[] calldata weights)
        private
        view
        returns (PriceCheck.Reading[] memory readings, uint256[] memory pricesE8)
    {
        readings = new PriceCheck.Reading[](weights.length);
        pricesE8 = new uint256[](weights.length);
        for (uint256 i = 0; i < weights.length; ++i) {
            AssetConfig memory asset = _assets[i];
            pricesE8[i] = weights[i] / 10 ** (MAX_ASSET_DECIMALS - asset.assetDecimals);
            if (asset.feeds.length != 0) readings[i] = PriceCheck.check(_feedsOf(asset), pricesE8[i]);
            // else: verdict Ok, median, fresh and agreeing 0
        }
    }

    /// @dev Step 2 of finalize: the circuit breaker. Emits the failures, and refuses if any.
    function _checkPrices(uint64 epoch, uint256[] calldata weights)
        private
        returns (bool ok, uint256[] memory pricesE8)
    {
        PriceCheck.Reading[] memory readings;
        (readings, pricesE8) = _readPrices(weights);
        ok = true;
        for (uint256 i = 0; i < readings.length; ++i) {
            PriceCheck.Reading memory r = readings[i];
            if (r.verdict == PriceCheck.Verdict.Ok) continue;
            ok = false;
            emit PriceCheckFailed(epoch, i, r.verdict, pricesE8[i], r.median, r.fresh, r.agreeing);
        }
        if (!ok) emit AttestationRefused(epoch);
    }

    /// @dev Step 3 of finalize: the proven verified reserves are held now. More is fine: the
    ///      attestation states the proven amount, a floor, so deposits (or anyone's dust) that
    ///      arrive before finalize cannot stop it.
    function _checkReserves(uint256[] calldata claimed, uint256[] memory onchain) private pure {
        for (uint256 i = 0; i < onchain.length; ++i) {
            if (claimed[i] > onchain[i]) revert ReservesChanged(i, claimed[i], onchain[i]);
        }
    }

    /// @dev Step 4 of finalize: the Groth16 check of the K = 10 + 3N solvency signals.
    function _verifySolvency(uint64 epoch, Epoch storage e, Proof calldata proof, Claim calldata claim) private view {
        // A calldata uint256[] packs as its bare 32-byte words: exactly the inline layout of the
        // verifier's static uint256[K] tail.
        bytes memory args = abi.encodePacked(
            abi.encode(proof.a, proof.b, proof.c),
            _solvencySignals(epoch, e, claim),
            claim.weights,
            claim.verified,
            claim.declared,
            uint256(claim.verifiedOnly ? 1 : 0)
        );
        _verify(KIND_SOLVENCY, solvencyVerifier, solvencySelector, _solvencyVerifyGas, args);
    }

    /// @dev The solvency signals before the per-asset ones, in the circuit's order: [finalState,
    ///      ctxHash, root, totalsCommit, nBatches, shortfall, insuranceFund, epoch, domain].
    ///      (A helper of its own keeps finalize's stack shallow.)
    function _solvencySignals(uint64 epoch, Epoch storage e, Claim calldata claim)
        private
        view
        returns (bytes memory)
    {
        return abi.encode(
            e.state,
            e.ctxHash,
            claim.root,
            claim.totalsCommit,
            e.nBatches,
            claim.shortfall,
            claim.insuranceFund,
            uint256(epoch),
            domain()
        );
    }

    /// @dev A function of its own keeps finalize's stack shallow.
    function _emitFinalized(uint64 epoch, Epoch storage e, Claim calldata claim) private {
        emit EpochFinalized(
            epoch,
            e.root,
            e.state,
            e.totalsCommit,
            e.shortfall,
            e.insuranceFund,
            e.nBatches,
            claim.verified,
            claim.declared,
            claim.verifiedOnly
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

    /// @dev K of the solvency circuit: 9 fixed signals, three per asset and verifiedOnly.
    function _solvencyInputs(uint256 n) private pure returns (uint256) {
        return SOLVENCY_FIXED_INPUTS + 3 * n + 1;
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

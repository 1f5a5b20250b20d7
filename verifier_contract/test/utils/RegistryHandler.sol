// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../../src/SolvencyRegistry.sol";
import {AccountMarginVerifier} from "../../src/AccountMarginVerifier.sol";
import {PriceCheck} from "../../src/PriceCheck.sol";
import {ReserveBalances} from "../../src/ReserveBalances.sol";
import {MockERC20} from "../../src/demo/MockERC20.sol";
import {MockAggregator} from "../../src/demo/MockAggregator.sol";
import {Vm} from "./Vm.sol";
import {Fixtures} from "./Fixtures.sol";
import {BookBatchVerifier, BookMarginVerifier, BookSolvencyVerifier, Proof} from "./BookVerifier.sol";

/// @dev Invariant-test handler: drives a SolvencyRegistry (N = 2 assets) and its
///      AccountMarginVerifier through random sequences of openEpoch / addCustody / submitBatch /
///      finalize / abandonEpoch / attest / verifyMargin, as the publisher and as strangers, with
///      honest proofs, replayed and re-randomised ones, proofs of wrong statements, values >= p,
///      custody signatures by the wrong key or for another epoch, reserves that move and price
///      feeds that go stale or disagree, starved gas limits and raw calls with random calldata.
///      Asset 0 is a 6-decimal token counted with 8 decimals and priced by three feeds; asset 1
///      is ether, unpriced on-chain. Custody addresses come from a pool of six keys.
///
///      Each call is first decided by a model of the specification (`_m*`): the handler
///      requires the contract to do exactly that, success (or the price breaker's refusal, with
///      its events) or the exact custom error. The model reads balances and feed answers from
///      the mock token and feeds themselves, and decides the breaker with its own median.
///      Successful calls' events are replayed into a second, event-sourced mirror (`_ev*`) that
///      checks the state chain and the custody lists from the logs alone. The invariant
///      functions then compare model, mirror and storage. A failed `require` here is an
///      invariant failure (fail_on_revert = true).
contract RegistryHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant P =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant N_ASSETS = 2;
    address public constant PUBLISHER = address(0xB0B);

    /// @dev Gas the stand-in verifiers need on entry: what real snarkjs verifiers need plus ~2k,
    ///      so the starved-call actions check the contracts' gas guards against reality.
    ///      test_verifier_gas_fits_the_guards (tests/contracts/test_gas_griefing.py) measured
    ///      205,048 for K = 3, 211,779 for K = 4 and 258,232 for K = 11 on anvil, ~6,650 per
    ///      input; this solvency circuit's K = 16 (10 + 3 * 2 assets) comes to ~291,500.
    uint256 public constant BATCH_VERIFY_COST = 207_000;
    uint256 public constant SOLVENCY_VERIFY_COST = 294_000;
    uint256 public constant MARGIN_VERIFY_COST = 214_000;

    /// @dev Asset 0's price ($1) and its weight for 8 asset decimals.
    uint256 public constant GOOD_PRICE = 1e8;
    uint256 public constant GOOD_WEIGHT = 1e18;
    uint256 internal constant POOL = 6;
    uint256 internal constant STRANGER_KEY = 0x5757;

    SolvencyRegistry public immutable registry;
    AccountMarginVerifier public immutable margin;
    BookBatchVerifier public immutable batchBook;
    BookSolvencyVerifier public immutable solvencyBook;
    BookMarginVerifier public immutable marginBook;
    MockERC20 public immutable token;
    MockAggregator[3] internal _feeds;
    /// @dev Custody addresses the handler holds the keys of, increasing, and their keys.
    address[POOL] public pool;
    uint256[POOL] internal _poolKeys;

    // ------------------------------------------------------------------ model of the spec

    mapping(uint64 => SolvencyRegistry.Epoch) internal _m;
    mapping(uint64 => uint256[]) internal _mReserves;
    mapping(uint64 => uint256[]) internal _mDeclared;
    mapping(uint64 => uint256[]) internal _mPrices;
    mapping(uint64 => address[]) internal _mCustody;
    uint64 public mLatest;
    uint64 public mLatestFinal;
    uint64 public mOpen;
    /// @dev Every epoch ever opened, in order.
    uint64[] public opened;
    /// @dev Hash of each finalized epoch's record (getEpoch + getReserves) when it was finalized.
    mapping(uint64 => bytes32) public frozen;
    /// @dev The public signals the solvency proof that finalized each epoch was issued for.
    mapping(uint64 => uint256[]) internal _finalSignals;
    /// @dev The chain id in force when each epoch was finalized (the handler never changes it:
    ///      DomainBinding.t.sol does).
    mapping(uint64 => uint256) public finalChainId;

    /// @dev Highest headroom attested per (epoch, idCommit), plus one (0 = none).
    mapping(uint64 => mapping(uint256 => uint256)) internal _mHead;
    uint64[] internal _attEpochs;
    uint256[] internal _attIds;

    // ------------------------------------------------------------------ mirror built from events

    mapping(uint64 => SolvencyRegistry.Epoch) internal _ev;
    mapping(uint64 => bytes32) internal _evReserves;
    mapping(uint64 => bytes32) internal _evDeclared;
    mapping(uint64 => address[]) internal _evCustody;
    /// @dev Registry events the call being run must emit (1 unless the caller says otherwise),
    ///      and the price-check failure a refused finalize must report.
    uint256 internal _expectEvents = 1;
    Breaker internal _expectBreaker;
    /// @dev The model's reading of asset 0's feeds when each epoch was finalized.
    mapping(uint64 => Breaker) internal _feedsAtFinalize;
    uint64 public evLatest;
    uint64 public evLatestFinal;
    uint64 public evOpen;

    // ------------------------------------------------------------------ proofs issued

    struct BatchProof {
        Proof pr;
        uint256 prev;
        uint256 next;
        uint256 ctx;
    }

    struct SolvencyProof {
        Proof pr;
        uint256[] signals; // [final, ctx, root, totals, count, shortfall, fund, epoch, domain, w0, w1,
        //  v0, v1, d0, d1, verifiedOnly]
    }

    /// @dev The price check of asset 0, as the model computes it.
    struct Breaker {
        bool trips;
        PriceCheck.Verdict verdict;
        uint256 claimedE8;
        uint256 median;
        uint256 fresh;
        uint256 agreeing;
    }

    BatchProof[] internal _acceptedBatches;
    SolvencyProof[] internal _acceptedSolvency;
    mapping(bytes32 => bytes32) internal _issued; // proof id => statement (inputs mod p)

    // ------------------------------------------------------------------ counters

    mapping(bytes32 => uint256) public count;
    uint256 public calls;

    constructor() {
        batchBook = new BookBatchVerifier(BATCH_VERIFY_COST);
        solvencyBook = new BookSolvencyVerifier(SOLVENCY_VERIFY_COST);
        marginBook = new BookMarginVerifier(MARGIN_VERIFY_COST);
        token = new MockERC20("USD Coin", "USDC", 6);
        address[] memory feeds = Fixtures.feeds(3, GOOD_PRICE);
        for (uint256 i = 0; i < 3; ++i) {
            _feeds[i] = MockAggregator(feeds[i]);
        }
        registry = new SolvencyRegistry(PUBLISHER, address(batchBook), address(solvencyBook), N_ASSETS, assets());
        margin = new AccountMarginVerifier(address(registry), address(marginBook));
        // The pool, sorted by address (insertion sort of six).
        for (uint256 i = 0; i < POOL; ++i) {
            uint256 key = 0x1001 + i;
            address a = vm.addr(key);
            uint256 j = i;
            while (j > 0 && pool[j - 1] > a) {
                (pool[j], _poolKeys[j]) = (pool[j - 1], _poolKeys[j - 1]);
                --j;
            }
            (pool[j], _poolKeys[j]) = (a, key);
            token.mint(a, 1_000_000 * (i + 1));
            vm.deal(a, 1 ether * (i + 1));
        }
    }

    /// @notice The registry's asset configuration as deployed.
    function assets() public view returns (SolvencyRegistry.AssetConfig[] memory a) {
        a = new SolvencyRegistry.AssetConfig[](N_ASSETS);
        address[] memory feeds = new address[](3);
        for (uint256 i = 0; i < 3; ++i) {
            feeds[i] = address(_feeds[i]);
        }
        a[0] = Fixtures.asset(address(token), 6, 8, feeds);
        a[1] = Fixtures.asset(ReserveBalances.NATIVE, 18, 18, new address[](0));
    }

    /// @dev The registry's domain as the specification defines it, for the chain id in force
    ///      (not read from the registry).
    function modelDomain() public view returns (uint256) {
        return (block.chainid << 160) | uint160(address(registry));
    }

    // ================================================================== actions

    function openEpoch(uint256 actorSeed, uint256 epochSeed, uint256 ctxSeed, uint256 nSeed, bytes32 bundle)
        external
    {
        uint256 ctx = ctxSeed % 7 == 3 && opened.length > 0
            ? _m[opened[(ctxSeed >> 3) % opened.length]].ctxHash // an earlier epoch's context
            : _fieldish(ctxSeed);
        _open(_actor(actorSeed), _epochToOpen(epochSeed), ctx, uint64(nSeed % 5), bundle);
    }

    /// @dev The publisher's next honest step: open the next epoch, add its custody, submit its
    ///      next batch, or finalize it (the feeds mostly answering the price, as keepers keep
    ///      them). Keeps the runs going deep enough to finalize epochs between the adversarial
    ///      calls.
    function advance(uint256 seed) external {
        if (mOpen == 0) {
            uint64 epoch = mLatest >= type(uint64).max - 2 ? type(uint64).max : mLatest + 1 + uint64(seed % 2);
            _open(PUBLISHER, epoch, (seed >> 8) % P, uint64(1 + seed % 3), keccak256(abi.encode(seed)));
        } else if (_mCustody[mOpen].length == 0 && seed % 4 != 0) {
            _addCustody(PUBLISHER, mOpen, seed >> 8, 0);
        } else if (_m[mOpen].batchesSubmitted < _m[mOpen].nBatches) {
            _submitBatch(PUBLISHER, mOpen, 1, (seed / 10) * 10 + 3, 0, 0);
        } else {
            if (seed % 8 != 0) {
                for (uint256 i = 0; i < 3; ++i) {
                    _feeds[i].set(int256(GOOD_PRICE), block.timestamp);
                }
            }
            Values memory v = _values(seed, mOpen);
            v.root %= P;
            v.totals %= P;
            v.shortfall %= P;
            v.fund %= P;
            v.weights = _reduced(v.weights);
            v.weights[0] = GOOD_WEIGHT;
            v.verified = _onchain(mOpen);
            v.declared = _reduced(v.declared);
            if (seed % 8 == 1 && _mCustody[mOpen].length > 0) {
                // Reserves leave custody between proving and finalize.
                address holder = _mCustody[mOpen][0];
                uint256 amount = (token.balanceOf(holder) + 1) / 2;
                vm.prank(holder);
                token.transfer(address(0xF00D), amount);
            }
            _finalizeWith(PUBLISHER, mOpen, v, 0, 0);
        }
    }

    /// @dev `a` cut or padded to N_ASSETS entries, each reduced mod p.
    function _reduced(uint256[] memory a) internal pure returns (uint256[] memory b) {
        b = new uint256[](N_ASSETS);
        for (uint256 i = 0; i < N_ASSETS && i < a.length; ++i) {
            b[i] = a[i] % P;
        }
    }

    /// @dev Custody for `epoch`: some pool addresses (picked by bits of `pickSeed`), signed by
    ///      their keys, or (by `kindSeed`) one signed by another key or for another epoch, an
    ///      unsorted list, or one signature too many.
    function addCustody(uint256 actorSeed, uint256 epochSeed, uint256 pickSeed, uint256 kindSeed) external {
        _addCustody(_actor(actorSeed), _epochToUse(epochSeed), pickSeed, kindSeed);
    }

    /// @dev Moves reserves: tokens or ether into or out of a pool address, or to an outsider.
    function moveFunds(uint256 seed) external {
        address holder = pool[seed % POOL];
        uint256 r = (seed >> 8) % 4;
        uint256 amount = (seed >> 16) % 1e12;
        if (r == 0) {
            token.mint(holder, amount);
        } else if (r == 1) {
            vm.deal(holder, amount * 1e6);
        } else if (r == 2) {
            amount %= token.balanceOf(holder) + 1;
            vm.prank(holder);
            token.transfer(address(0xF00D), amount);
        } else {
            token.mint(address(0xF00D), amount);
        }
        count["funds"]++;
        calls++;
    }

    /// @dev Sets one feed: the price, near it, far off either way, or stale.
    function setFeed(uint256 seed) external {
        MockAggregator feed = _feeds[seed % 3];
        uint256 r = (seed >> 8) % 6;
        uint256 stale = block.timestamp > Fixtures.MAX_AGE + 1 ? block.timestamp - Fixtures.MAX_AGE - 1 : 0;
        if (r == 0) feed.set(int256(GOOD_PRICE), block.timestamp);
        else if (r == 1) feed.set(int256(GOOD_PRICE + (seed >> 16) % (GOOD_PRICE / 100)), block.timestamp);
        else if (r == 2) feed.set(int256(GOOD_PRICE * 2), block.timestamp);
        else if (r == 3) feed.set(int256(GOOD_PRICE / 2), block.timestamp);
        else if (r == 4) feed.set(int256(GOOD_PRICE), stale);
        else feed.set(int256(GOOD_PRICE), block.timestamp - (seed >> 16) % block.timestamp); // fresh or not
        count["feed"]++;
        calls++;
    }

    function submitBatch(uint256 actorSeed, uint256 epochSeed, uint256 indexSeed, uint256 nextSeed, uint256 proofSeed)
        external
    {
        _submitBatch(_actor(actorSeed), _epochToUse(epochSeed), indexSeed, nextSeed, proofSeed, 0);
    }

    /// @dev An honest next batch with a random gas limit: success, InsufficientGas or out of
    ///      gas, never InvalidProof and never a partial write.
    function submitBatchStarved(uint256 gasSeed, uint256 nextSeed) external {
        if (mOpen == 0) return;
        _submitBatch(PUBLISHER, mOpen, 1, nextSeed, 0, _starvedGas(gasSeed));
    }

    function finalize(uint256 actorSeed, uint256 epochSeed, uint256 valuesSeed, uint256 proofSeed) external {
        _finalize(_actor(actorSeed), _epochToUse(epochSeed), valuesSeed, proofSeed, 0);
    }

    function finalizeStarved(uint256 gasSeed, uint256 valuesSeed) external {
        if (mOpen == 0) return;
        _finalize(PUBLISHER, mOpen, valuesSeed, 0, _starvedGas(gasSeed));
    }

    function abandonEpoch(uint256 actorSeed, uint256 epochSeed) external {
        address actor = _actor(actorSeed);
        uint64 epoch = _epochToUse(epochSeed);
        bytes memory err;
        if (actor != PUBLISHER) {
            err = abi.encodeWithSelector(SolvencyRegistry.NotPublisher.selector, actor);
        } else if (epoch == 0 || epoch != mOpen) {
            err = abi.encodeWithSelector(SolvencyRegistry.NotOpen.selector, epoch);
        }
        bool ok = _run(address(registry), actor, abi.encodeCall(SolvencyRegistry.abandonEpoch, (epoch)), err, 0);
        if (!ok) return;
        count["abandon.ok"]++;
        _m[epoch].status = SolvencyRegistry.Status.Abandoned;
        mOpen = 0;
    }

    /// @dev attest (or verifyMargin when `viewOnly`) by anyone, on any epoch.
    function attest(
        uint256 actorSeed,
        uint256 epochSeed,
        uint256 idSeed,
        uint256 headroomSeed,
        uint256 proofSeed,
        bool viewOnly
    ) external {
        _attest(
            _anyone(actorSeed), _epochForMargin(epochSeed), idSeed, headroomSeed, proofSeed, viewOnly, 0
        );
    }

    function attestStarved(uint256 gasSeed, uint256 epochSeed, uint256 headroomSeed, bool viewOnly) external {
        _attest(
            address(0xA11CE), _epochForMargin(epochSeed), 0, headroomSeed, 0, viewOnly, _starvedGas(gasSeed)
        );
    }

    /// @dev Random calldata to the registry under one of its own selectors (or none): as a
    ///      stranger it must not write storage; as the publisher only view functions are used.
    function rawCall(uint256 actorSeed, uint256 selectorSeed, bytes calldata data) external {
        bytes4[22] memory views = [
            SolvencyRegistry.getEpoch.selector,
            SolvencyRegistry.getReserves.selector,
            SolvencyRegistry.getDeclaredReserves.selector,
            SolvencyRegistry.getPrices.selector,
            SolvencyRegistry.getCustody.selector,
            SolvencyRegistry.assetConfig.selector,
            SolvencyRegistry.onchainReserves.selector,
            SolvencyRegistry.checkPrices.selector,
            registry.MAX_ASSET_DECIMALS.selector,
            SolvencyRegistry.isFinalizedRoot.selector,
            registry.latestEpoch.selector,
            registry.latestFinalizedEpoch.selector,
            registry.openEpochId.selector,
            registry.publisher.selector,
            registry.batchVerifier.selector,
            registry.solvencyVerifier.selector,
            registry.nAssets.selector,
            registry.batchSelector.selector,
            registry.solvencySelector.selector,
            registry.domain.selector,
            registry.SNARK_SCALAR_FIELD.selector,
            bytes4(uint32(selectorSeed >> 32))
        ];
        bytes4[5] memory writers = [
            SolvencyRegistry.openEpoch.selector,
            SolvencyRegistry.submitBatch.selector,
            SolvencyRegistry.finalize.selector,
            SolvencyRegistry.abandonEpoch.selector,
            SolvencyRegistry.addCustody.selector
        ];
        address actor = actorSeed % 2 == 0 ? PUBLISHER : _stranger(actorSeed);
        bytes4 sel;
        if (actor == PUBLISHER || selectorSeed % 2 == 0) sel = views[selectorSeed % views.length];
        else sel = writers[(selectorSeed >> 1) % writers.length];
        if (actor == PUBLISHER) {
            for (uint256 i = 0; i < writers.length; ++i) {
                if (sel == writers[i]) return; // a random selector hit a writer: skip
            }
        }
        vm.record();
        vm.prank(actor);
        (bool ok,) = address(registry).call(abi.encodePacked(sel, data));
        (, bytes32[] memory writes) = vm.accesses(address(registry));
        require(writes.length == 0, "raw call wrote registry storage");
        if (actor != PUBLISHER) {
            for (uint256 i = 0; i < writers.length; ++i) {
                if (sel == writers[i]) require(!ok, "stranger's raw call to a writer succeeded");
            }
        }
        count["raw"]++;
        calls++;
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + seconds_ % 3 days);
    }

    // ================================================================== action bodies

    function _open(address actor, uint64 epoch, uint256 ctx, uint64 n, bytes32 bundle) internal {
        bytes memory err;
        if (actor != PUBLISHER) {
            err = abi.encodeWithSelector(SolvencyRegistry.NotPublisher.selector, actor);
        } else if (epoch <= mLatest) {
            err = abi.encodeWithSelector(SolvencyRegistry.EpochNotIncreasing.selector, epoch, mLatest);
        } else if (mOpen != 0) {
            err = abi.encodeWithSelector(SolvencyRegistry.EpochStillOpen.selector, mOpen);
        } else if (n == 0) {
            err = abi.encodeWithSelector(SolvencyRegistry.ZeroBatches.selector);
        } else if (ctx >= P) {
            err = abi.encodeWithSelector(SolvencyRegistry.FieldOverflow.selector, ctx);
        }
        if (epoch <= mLatest && epoch != 0) count["open.replay-or-rollback"]++;

        bool ok = _run(
            address(registry), actor, abi.encodeCall(SolvencyRegistry.openEpoch, (epoch, ctx, n, bundle)), err, 0
        );
        if (!ok) return;
        count["open.ok"]++;
        mLatest = epoch;
        mOpen = epoch;
        opened.push(epoch);
        SolvencyRegistry.Epoch storage m = _m[epoch];
        m.ctxHash = ctx;
        m.bundleHash = bundle;
        m.state = ctx;
        m.nBatches = n;
        m.openedAt = uint48(block.timestamp);
        m.status = SolvencyRegistry.Status.Open;
    }

    function _addCustody(address actor, uint64 epoch, uint256 pickSeed, uint256 kindSeed) internal {
        (address[] memory holders, uint256[] memory keys) = _pick(pickSeed);
        uint256 kind = kindSeed % 10;
        if (kind == 7 && holders.length > 1) {
            (holders[0], holders[1]) = (holders[1], holders[0]);
            (keys[0], keys[1]) = (keys[1], keys[0]);
        }
        bytes[] memory sigs = new bytes[](holders.length + (kind == 8 ? 1 : 0));
        uint256 badAt = kind == 5 || kind == 6 ? (kindSeed >> 8) % holders.length : type(uint256).max;
        for (uint256 i = 0; i < sigs.length; ++i) {
            address holder = i < holders.length ? holders[i] : pool[0];
            uint256 key = i < holders.length ? keys[i] : _poolKeys[0];
            uint64 signedEpoch = epoch;
            if (i == badAt && kind == 5) key = STRANGER_KEY; // an address the exchange does not control
            if (i == badAt && kind == 6) signedEpoch = epoch ^ 1; // another epoch's signature
            sigs[i] = Fixtures.custodySignature(key, address(registry), signedEpoch, holder);
        }

        bytes memory err = _custodyError(actor, epoch, holders, sigs.length, badAt);
        _expectEvents = holders.length;
        bool ok = _run(
            address(registry), actor, abi.encodeCall(SolvencyRegistry.addCustody, (epoch, holders, sigs)), err, 0
        );
        if (!ok) {
            if (bytes4(err) == SolvencyRegistry.BadCustodySignature.selector) count["custody.bad-signature"]++;
            if (bytes4(err) == SolvencyRegistry.CustodyNotIncreasing.selector) count["custody.not-increasing"]++;
            return;
        }
        count["custody.ok"]++;
        for (uint256 i = 0; i < holders.length; ++i) {
            _mCustody[epoch].push(holders[i]);
        }
    }

    function _custodyError(address actor, uint64 epoch, address[] memory holders, uint256 nSigs, uint256 badAt)
        internal
        view
        returns (bytes memory)
    {
        if (actor != PUBLISHER) return abi.encodeWithSelector(SolvencyRegistry.NotPublisher.selector, actor);
        if (epoch == 0 || epoch != mOpen) return abi.encodeWithSelector(SolvencyRegistry.NotOpen.selector, epoch);
        if (nSigs != holders.length) {
            return abi.encodeWithSelector(SolvencyRegistry.WrongSignatureCount.selector, holders.length, nSigs);
        }
        address[] storage added = _mCustody[epoch];
        address last = added.length == 0 ? address(0) : added[added.length - 1];
        for (uint256 i = 0; i < holders.length; ++i) {
            if (holders[i] <= last) return abi.encodeWithSelector(SolvencyRegistry.CustodyNotIncreasing.selector, i);
            if (i == badAt) return abi.encodeWithSelector(SolvencyRegistry.BadCustodySignature.selector, holders[i]);
            last = holders[i];
        }
        return "";
    }

    /// @dev Pool addresses whose bit is set in `seed` (one at least), increasing, and their keys.
    function _pick(uint256 seed) internal view returns (address[] memory holders, uint256[] memory keys) {
        uint256 bits = seed % (1 << POOL);
        if (bits == 0) bits = 1 << ((seed >> 8) % POOL);
        uint256 n;
        for (uint256 i = 0; i < POOL; ++i) {
            if (bits & (1 << i) != 0) ++n;
        }
        holders = new address[](n);
        keys = new uint256[](n);
        n = 0;
        for (uint256 i = 0; i < POOL; ++i) {
            if (bits & (1 << i) == 0) continue;
            (holders[n], keys[n]) = (pool[i], _poolKeys[i]);
            ++n;
        }
    }

    function _submitBatch(
        address actor,
        uint64 epoch,
        uint256 indexSeed,
        uint256 nextSeed,
        uint256 proofSeed,
        uint256 gasLimit
    ) internal {
        SolvencyRegistry.Epoch storage m = _m[epoch];
        uint64 index = indexSeed % 4 == 0 ? uint64((indexSeed >> 2) % 6) : m.batchesSubmitted;
        uint256 next = _fieldish(nextSeed);
        Proof memory pr;
        uint256 kind = proofSeed % 10;
        if (kind == 4 && _acceptedBatches.length > 0) {
            // Exact replay of an accepted batch (any epoch), with its nextState.
            BatchProof storage old = _acceptedBatches[(proofSeed >> 4) % _acceptedBatches.length];
            pr = old.pr;
            next = old.next;
            count["batch.replay"]++;
        } else if (kind == 5 && _acceptedBatches.length > 0) {
            // A re-randomised proof of an accepted batch's statement.
            BatchProof storage old = _acceptedBatches[(proofSeed >> 4) % _acceptedBatches.length];
            next = old.next;
            pr = _issueBatch(old.prev, old.next, old.ctx);
            count["batch.malleated-replay"]++;
        } else if (kind == 6) {
            // The chain restarted (from ctxHash) or skipped ahead.
            uint256 prev = m.batchesSubmitted == 0 ? addmod(m.state, 1, P) : m.ctxHash;
            pr = _issueBatch(prev, next, m.ctxHash);
        } else if (kind == 7) {
            pr = _issueBatch(m.state, next, addmod(m.ctxHash, 1, P)); // another context
        } else if (kind == 8) {
            pr = _unissued(proofSeed);
        } else {
            pr = _issueBatch(m.state, next, m.ctxHash); // honest (aliased if next >= p)
        }

        bytes memory err;
        if (actor != PUBLISHER) {
            err = abi.encodeWithSelector(SolvencyRegistry.NotPublisher.selector, actor);
        } else if (epoch == 0 || epoch != mOpen) {
            err = abi.encodeWithSelector(SolvencyRegistry.NotOpen.selector, epoch);
        } else if (index >= m.nBatches) {
            err = abi.encodeWithSelector(SolvencyRegistry.TooManyBatches.selector, index, m.nBatches);
        } else if (index != m.batchesSubmitted) {
            err = abi.encodeWithSelector(SolvencyRegistry.WrongBatchIndex.selector, m.batchesSubmitted, index);
        } else if (next >= P) {
            err = abi.encodeWithSelector(SolvencyRegistry.FieldOverflow.selector, next);
        } else if (!_proves(pr, _three(m.state, next, m.ctxHash))) {
            err = abi.encodeWithSelector(SolvencyRegistry.InvalidProof.selector, uint8(0));
        }
        bool ok = _run(
            address(registry),
            actor,
            abi.encodeCall(SolvencyRegistry.submitBatch, (epoch, index, pr.a, pr.b, pr.c, next)),
            err,
            gasLimit
        );
        if (!ok) return;
        count["batch.ok"]++;
        _acceptedBatches.push(BatchProof(pr, m.state, next, m.ctxHash));
        m.state = next;
        m.batchesSubmitted += 1;
    }

    /// @dev finalize's caller-supplied values (its Claim).
    struct Values {
        uint256 root;
        uint256 totals;
        uint256 shortfall;
        uint256 fund;
        uint256[] weights;
        uint256[] verified;
        uint256[] declared;
        bool verifiedOnly;
    }

    function _finalize(address actor, uint64 epoch, uint256 valuesSeed, uint256 proofSeed, uint256 gasLimit)
        internal
    {
        _finalizeWith(actor, epoch, _values(valuesSeed, epoch), proofSeed, gasLimit);
    }

    function _finalizeWith(address actor, uint64 epoch, Values memory v, uint256 proofSeed, uint256 gasLimit)
        internal
    {
        (Proof memory pr, uint256[] memory signals) = _solvencyProof(epoch, v, proofSeed);
        bytes memory err = _finalizeError(actor, epoch, v, pr);
        // Decided by the model's own price check, once the call gets that far.
        Breaker memory b = _breaker(v.weights);
        bool refused = err.length == 0 && b.trips;
        if (err.length == 0 && !b.trips) err = _lateFinalizeError(epoch, v, pr);
        if (refused) {
            _expectBreaker = b;
            _expectEvents = 2; // PriceCheckFailed (asset 0), AttestationRefused
        }
        bytes memory data = abi.encodeCall(SolvencyRegistry.finalize, (epoch, _p(pr), _claimOf(v)));
        bool ok = _run(address(registry), actor, data, err, gasLimit);
        delete _expectBreaker;
        if (!ok) {
            if (bytes4(err) == SolvencyRegistry.ReservesChanged.selector) count["final.reserves-changed"]++;
            return;
        }
        require(abi.decode(_lastReturn, (bool)) == !refused, "finalize returned");
        if (refused) {
            count["final.breaker"]++;
            return;
        }
        count["final.ok"]++;
        _feedsAtFinalize[epoch] = b;
        _acceptedSolvency.push(SolvencyProof(pr, signals));
        _finalSignals[epoch] = signals;
        finalChainId[epoch] = block.chainid;
        SolvencyRegistry.Epoch storage m = _m[epoch];
        m.root = v.root;
        m.totalsCommit = v.totals;
        m.shortfall = v.shortfall;
        m.insuranceFund = v.fund;
        m.finalizedAt = uint48(block.timestamp);
        m.status = SolvencyRegistry.Status.Finalized;
        m.verifiedOnly = v.verifiedOnly;
        _mReserves[epoch] = v.verified;
        _mDeclared[epoch] = v.declared;
        _mPrices[epoch] = _two(v.weights[0] / 1e10, v.weights[1]); // 8 and 18 asset decimals
        mOpen = 0;
        mLatestFinal = epoch;
        frozen[epoch] = recordHash(epoch);
    }

    function _p(Proof memory pr) internal pure returns (SolvencyRegistry.Proof memory) {
        return SolvencyRegistry.Proof(pr.a, pr.b, pr.c);
    }

    function _claimOf(Values memory v) internal pure returns (SolvencyRegistry.Claim memory) {
        return SolvencyRegistry.Claim(
            v.root, v.totals, v.shortfall, v.fund, v.weights, v.verified, v.declared, v.verifiedOnly
        );
    }

    /// @dev Random values for `epoch`: mostly asset 0 at its price and the reserves its custody
    ///      holds, sometimes off the price, reserves that are not held, values >= p or arrays of
    ///      the wrong length.
    function _values(uint256 seed, uint64 epoch) internal view returns (Values memory v) {
        v.root = _fieldish(seed);
        v.totals = _fieldish(uint256(keccak256(abi.encode(seed, 1))));
        v.shortfall = _small(uint256(keccak256(abi.encode(seed, 2))));
        v.fund = _small(uint256(keccak256(abi.encode(seed, 3))));
        uint256 h = uint256(keccak256(abi.encode(seed, 4)));
        v.weights = new uint256[](N_ASSETS);
        uint256 r = h % 8;
        if (r == 0) v.weights[0] = P + (h >> 8) % 1000;
        else if (r == 1) v.weights[0] = GOOD_WEIGHT * 2; // far off the feeds
        else if (r == 2) v.weights[0] = GOOD_WEIGHT + (h >> 8) % (GOOD_WEIGHT / 50); // within 2 %
        else v.weights[0] = GOOD_WEIGHT;
        v.weights[1] = _small(h >> 16);
        v.verified = _onchain(epoch);
        if ((h >> 32) % 5 == 0) v.verified[(h >> 40) % N_ASSETS] += 1 + (h >> 48) % 3; // not held
        if ((h >> 32) % 23 == 1) v.verified[0] = P + (h >> 48) % 1000;
        v.declared = new uint256[](N_ASSETS);
        for (uint256 i = 0; i < N_ASSETS; ++i) {
            v.declared[i] = _small(uint256(keccak256(abi.encode(seed, 5 + i))));
        }
        v.verifiedOnly = (h >> 64) % 2 == 0;
        if (seed % 13 == 0) {
            uint256[] memory wrong = new uint256[]((seed >> 8) % 4);
            uint256 which = (seed >> 16) % 3;
            if (which == 0) v.weights = wrong;
            else if (which == 1) v.verified = wrong;
            else v.declared = wrong;
        }
    }

    /// @dev What the custody of `epoch` holds now, computed from the mock token and balances:
    ///      the token's 6 decimals scaled to the asset's 8, and wei.
    function _onchain(uint64 epoch) internal view returns (uint256[] memory held) {
        held = new uint256[](N_ASSETS);
        address[] storage c = _mCustody[epoch];
        for (uint256 i = 0; i < c.length; ++i) {
            held[0] += token.balanceOf(c[i]) * 100;
            held[1] += c[i].balance;
        }
    }

    /// @dev The proof to send and the signals it was issued for (none for an unissued one); a
    ///      replay also takes the replayed epoch's values into `v`.
    function _solvencyProof(uint64 epoch, Values memory v, uint256 proofSeed)
        internal
        returns (Proof memory pr, uint256[] memory signals)
    {
        SolvencyRegistry.Epoch storage m = _m[epoch];
        uint256 kind = proofSeed % 9;
        if (kind == 4 && _acceptedSolvency.length > 0) {
            // Replay of an earlier epoch's solvency proof with its values (made for that epoch's
            // number, so refused whatever the context).
            SolvencyProof storage old = _acceptedSolvency[(proofSeed >> 4) % _acceptedSolvency.length];
            pr = old.pr;
            signals = old.signals;
            (v.root, v.totals, v.shortfall, v.fund) = (signals[2], signals[3], signals[5], signals[6]);
            v.weights = _two(signals[9], signals[10]);
            v.verified = _two(signals[11], signals[12]);
            v.declared = _two(signals[13], signals[14]);
            v.verifiedOnly = signals[15] == 1;
            count["final.replay"]++;
            return (pr, signals);
        }
        if (kind == 7) return (_unissued(proofSeed), signals);
        if (kind == 5) {
            // Proven with the context hash as final state: the batches skipped.
            signals = _signalsOf(m.ctxHash, m.ctxHash, m.nBatches, epoch, modelDomain(), v);
        } else if (kind == 6) {
            // Proven for one batch fewer.
            signals = _signalsOf(m.state, m.ctxHash, m.nBatches == 0 ? 0 : m.nBatches - 1, epoch, modelDomain(), v);
        } else if (kind == 8) {
            // Proven for everything but where it is sent: another epoch number (the same context
            // reopened later), this address on another chain, or another registry on this one.
            uint256 r = (proofSeed >> 4) % 3;
            uint256 provenEpoch = r == 0 ? epoch ^ 1 : epoch;
            uint256 provenDomain = modelDomain();
            if (r == 1) provenDomain = ((block.chainid + 1) << 160) | uint160(address(registry));
            if (r == 2) provenDomain = (block.chainid << 160) | uint160(address(solvencyBook));
            signals = _signalsOf(m.state, m.ctxHash, m.nBatches, provenEpoch, provenDomain, v);
            count["final.foreign"]++;
        } else {
            signals = _signalsOf(m.state, m.ctxHash, m.nBatches, epoch, modelDomain(), v); // honest
        }
        pr = _issue(solvencyBook, signals);
    }

    /// @dev The error of finalize's step 1 (before the prices), or none.
    function _finalizeError(address actor, uint64 epoch, Values memory v, Proof memory)
        internal
        view
        returns (bytes memory)
    {
        SolvencyRegistry.Epoch storage m = _m[epoch];
        if (actor != PUBLISHER) return abi.encodeWithSelector(SolvencyRegistry.NotPublisher.selector, actor);
        if (epoch == 0 || epoch != mOpen) return abi.encodeWithSelector(SolvencyRegistry.NotOpen.selector, epoch);
        if (m.batchesSubmitted != m.nBatches) {
            return abi.encodeWithSelector(SolvencyRegistry.BatchesMissing.selector, m.batchesSubmitted, m.nBatches);
        }
        if (v.weights.length != N_ASSETS) {
            return abi.encodeWithSelector(SolvencyRegistry.WrongWeightCount.selector, N_ASSETS, v.weights.length);
        }
        if (v.verified.length != N_ASSETS) {
            return abi.encodeWithSelector(SolvencyRegistry.WrongReserveCount.selector, N_ASSETS, v.verified.length);
        }
        if (v.declared.length != N_ASSETS) {
            return abi.encodeWithSelector(SolvencyRegistry.WrongReserveCount.selector, N_ASSETS, v.declared.length);
        }
        uint256[10] memory checked = [
            v.root,
            v.totals,
            v.shortfall,
            v.fund,
            v.weights[0],
            v.verified[0],
            v.declared[0],
            v.weights[1],
            v.verified[1],
            v.declared[1]
        ];
        for (uint256 i = 0; i < checked.length; ++i) {
            if (checked[i] >= P) return abi.encodeWithSelector(SolvencyRegistry.FieldOverflow.selector, checked[i]);
        }
        return "";
    }

    /// @dev The error of finalize's steps 3 and 4 (after the prices passed), or none.
    function _lateFinalizeError(uint64 epoch, Values memory v, Proof memory pr) internal view returns (bytes memory) {
        SolvencyRegistry.Epoch storage m = _m[epoch];
        uint256[] memory held = _onchain(epoch);
        for (uint256 i = 0; i < N_ASSETS; ++i) {
            if (v.verified[i] != held[i]) {
                return abi.encodeWithSelector(SolvencyRegistry.ReservesChanged.selector, i, v.verified[i], held[i]);
            }
        }
        if (!_proves(pr, _signalsOf(m.state, m.ctxHash, m.nBatches, epoch, modelDomain(), v))) {
            return abi.encodeWithSelector(SolvencyRegistry.InvalidProof.selector, uint8(1));
        }
        return "";
    }

    /// @dev The specification's price check of asset 0 (asset 1 has no feeds): the claim is
    ///      weights[0] / 10^10 (8 asset decimals); fresh answers are those updated at most
    ///      MAX_AGE ago; the median is the middle one (or the floor of the two middle ones'
    ///      mean); a quorum of 2 fresh answers within 1 % of it must agree, and the claim too.
    function _breaker(uint256[] memory weights) internal view returns (Breaker memory b) {
        if (weights.length != N_ASSETS) return b;
        b.claimedE8 = weights[0] / 1e10;
        uint256[3] memory answers;
        for (uint256 i = 0; i < 3; ++i) {
            uint256 at = _feeds[i].updatedAt();
            if (at == 0 || at > block.timestamp || block.timestamp - at > Fixtures.MAX_AGE) continue;
            uint256 a = uint256(_feeds[i].answer());
            uint256 j = b.fresh++;
            while (j > 0 && answers[j - 1] > a) {
                answers[j] = answers[j - 1];
                --j;
            }
            answers[j] = a;
        }
        if (b.fresh > 0) {
            b.median = b.fresh % 2 == 1 ? answers[b.fresh / 2] : (answers[b.fresh / 2 - 1] + answers[b.fresh / 2]) / 2;
        }
        for (uint256 i = 0; i < b.fresh; ++i) {
            if (_near(answers[i], b.median)) ++b.agreeing;
        }
        if (b.fresh < 2) b.verdict = PriceCheck.Verdict.TooFewFresh;
        else if (b.agreeing < 2) b.verdict = PriceCheck.Verdict.Diverged;
        else if (!_near(b.claimedE8, b.median)) b.verdict = PriceCheck.Verdict.OffMedian;
        b.trips = b.verdict != PriceCheck.Verdict.Ok;
    }

    /// @dev Within Fixtures.TOLERANCE_BPS (1 %) of `m`.
    function _near(uint256 a, uint256 m) internal pure returns (bool) {
        uint256 diff = a > m ? a - m : m - a;
        return diff * 10_000 <= m * Fixtures.TOLERANCE_BPS;
    }

    function _attest(
        address actor,
        uint64 epoch,
        uint256 idSeed,
        uint256 headroomSeed,
        uint256 proofSeed,
        bool viewOnly,
        uint256 gasLimit
    ) internal {
        uint256 id = idSeed % 7 == 6 ? P + idSeed % 1000 : [uint256(1), 2, P - 1][idSeed % 3];
        uint256 headroom = headroomSeed % 7 == 6 ? P + (headroomSeed >> 3) % 1000 : (headroomSeed >> 3) % 1000;
        if (headroomSeed % 7 == 5) headroom = P - 1 - (headroomSeed >> 3) % 3;
        Proof memory pr = _marginProof(epoch, id, headroom, proofSeed);
        bytes memory data = viewOnly
            ? abi.encodeCall(AccountMarginVerifier.verifyMargin, (epoch, id, headroom, pr.a, pr.b, pr.c))
            : abi.encodeCall(AccountMarginVerifier.attest, (epoch, id, headroom, pr.a, pr.b, pr.c));
        if (!_run(address(margin), actor, data, _marginError(epoch, id, headroom, pr), gasLimit)) return;

        uint256 before = _mHead[epoch][id];
        uint256 after_ = headroom + 1 > before ? headroom + 1 : before;
        require(abi.decode(_lastReturn, (uint256)) == (viewOnly ? 1 : after_ - 1), "attest/verifyMargin returned");
        if (viewOnly) {
            count["verifyMargin.ok"]++;
            return;
        }
        count[headroom + 1 < before ? bytes32("attest.ok-lower") : bytes32("attest.ok")]++;
        if (before == 0) {
            _attEpochs.push(epoch);
            _attIds.push(id);
        }
        _mHead[epoch][id] = after_;
    }

    function _marginProof(uint64 epoch, uint256 id, uint256 headroom, uint256 proofSeed)
        internal
        returns (Proof memory)
    {
        SolvencyRegistry.Epoch storage m = _m[epoch];
        uint256 kind = proofSeed % 8;
        if (kind == 4 && opened.length > 0) {
            // Made for another epoch's context and root.
            SolvencyRegistry.Epoch storage o = _m[opened[(proofSeed >> 3) % opened.length]];
            return _issue(marginBook, _four(o.ctxHash, o.root, id, headroom));
        }
        if (kind == 5) return _issue(marginBook, _four(m.ctxHash, m.root, id, headroom + 1)); // another claim
        if (kind == 6) return _unissued(proofSeed);
        // For the epoch's stored values, whatever its status (an open or abandoned epoch stores
        // root 0, so only the status check stands in the way).
        return _issue(marginBook, _four(m.ctxHash, m.root, id, headroom));
    }

    function _marginError(uint64 epoch, uint256 id, uint256 headroom, Proof memory pr)
        internal
        view
        returns (bytes memory)
    {
        SolvencyRegistry.Epoch storage m = _m[epoch];
        if (id >= P) return abi.encodeWithSelector(AccountMarginVerifier.FieldOverflow.selector, id);
        if (headroom >= P) return abi.encodeWithSelector(AccountMarginVerifier.FieldOverflow.selector, headroom);
        if (m.status != SolvencyRegistry.Status.Finalized) {
            return abi.encodeWithSelector(AccountMarginVerifier.EpochNotFinalized.selector, epoch, m.status);
        }
        if (!_proves(pr, _four(m.ctxHash, m.root, id, headroom))) {
            return abi.encodeWithSelector(AccountMarginVerifier.InvalidProof.selector);
        }
        return "";
    }

    // ================================================================== running a call

    bytes internal _lastReturn;

    /// @dev Calls `target` as `actor` and requires the outcome the model predicts: success when
    ///      `err` is empty, else a revert with exactly `err`. With a `gasLimit` (starved call) a
    ///      predicted success may instead end in InsufficientGas or out of gas. Events and
    ///      storage writes are checked and, on success, replayed into the mirror.
    function _run(address target, address actor, bytes memory data, bytes memory err, uint256 gasLimit)
        internal
        returns (bool ok)
    {
        ok = _runOnce(target, actor, data, err, gasLimit);
        _expectEvents = 1;
    }

    function _runOnce(address target, address actor, bytes memory data, bytes memory err, uint256 gasLimit)
        internal
        returns (bool)
    {
        calls++;
        if (gasLimit >= NEAR_GUARD) gasLimit = _guardThreshold(target, actor, data) - 1_000 + (gasLimit - NEAR_GUARD);
        vm.getRecordedLogs(); // drop anything recorded before
        vm.recordLogs();
        vm.record();
        vm.prank(actor);
        (bool ok, bytes memory ret) = gasLimit == 0 ? target.call(data) : target.call{gas: gasLimit}(data);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        (, bytes32[] memory regWrites) = vm.accesses(address(registry));
        (, bytes32[] memory marWrites) = vm.accesses(address(margin));

        if (actor != PUBLISHER && target == address(registry)) {
            // Refused before anything else: not a single write or event, even in the reverted
            // frame.
            require(!ok, "a stranger changed the registry");
            require(regWrites.length == 0 && logs.length == 0, "a stranger's call reached a write");
            count["stranger.refused"]++;
        }
        if (target == address(margin)) require(regWrites.length == 0, "margin wrote the registry");

        if (gasLimit != 0 && !ok && (ret.length == 0 || err.length == 0 || (_isGuard(ret) && _isLate(err)))) {
            // Starved: a bare out-of-gas revert, or else a call that gets past finalize's cheap
            // checks must be refused by a gas guard (never InvalidProof, never a feed or a token
            // read counted as failed).
            require(ret.length == 0 || _isGuard(ret), string.concat("starved call reverted with ", _hex(ret)));
            count[ret.length == 0 ? bytes32("starved.oog") : bytes32("starved.guard")]++;
            return false;
        }
        if (err.length != 0) {
            require(!ok, string.concat("accepted, expected ", _hex(err)));
            require(keccak256(ret) == keccak256(err), string.concat("reverted ", _hex(ret), " expected ", _hex(err)));
            return false;
        }
        require(ok, string.concat("refused a valid call: ", _hex(ret)));
        _lastReturn = ret;
        if (target == address(registry)) {
            require(marWrites.length == 0, "registry call wrote the margin contract");
            _mirror(logs);
        } else {
            _checkMarginLog(logs, data, actor);
        }
        return true;
    }

    /// @dev A gas guard's error: the verifiers' budget, a feed's, a token's.
    function _isGuard(bytes memory ret) internal pure returns (bool) {
        bytes4 sel = bytes4(ret);
        return ret.length >= 4
            && (
                sel == SolvencyRegistry.InsufficientGas.selector || sel == AccountMarginVerifier.InsufficientGas.selector
                    || sel == PriceCheck.FeedGas.selector || sel == ReserveBalances.TokenGas.selector
            );
    }

    /// @dev An error finalize finds only after reading feeds and tokens (behind their guards).
    function _isLate(bytes memory err) internal pure returns (bool) {
        bytes4 sel = bytes4(err);
        return sel == SolvencyRegistry.ReservesChanged.selector || sel == SolvencyRegistry.InvalidProof.selector;
    }

    error ProbeOutcome(bool ok, bytes ret);

    /// @dev Makes the call and reverts with its outcome, so a probe leaves no trace.
    function probe(address target, address actor, bytes calldata data, uint256 gasLimit) external {
        require(msg.sender == address(this), "probe: internal");
        vm.prank(actor);
        (bool ok, bytes memory ret) = target.call{gas: gasLimit}(data);
        revert ProbeOutcome(ok, ret);
    }

    /// @dev Whether the call with this gas limit gets past the contract's gas guard.
    function _pastGuard(address target, address actor, bytes memory data, uint256 gasLimit) internal returns (bool) {
        try this.probe(target, actor, data, gasLimit) {
            revert("probe returned");
        } catch (bytes memory r) {
            require(bytes4(r) == ProbeOutcome.selector, "probe failed");
            bytes memory inner = new bytes(r.length - 4);
            for (uint256 i = 0; i < inner.length; ++i) {
                inner[i] = r[i + 4];
            }
            (bool ok, bytes memory ret) = abi.decode(inner, (bool, bytes));
            if (ok) return true;
            if (_isGuard(ret)) return false;
            return ret.length != 0 || gasLimit >= 60_000; // out of gas before the guard, or after it
        }
    }

    /// @dev The least gas limit that gets the call past the guard.
    function _guardThreshold(address target, address actor, bytes memory data) internal returns (uint256) {
        uint256 lo = 20_000;
        uint256 hi = 1_000_000;
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_pastGuard(target, actor, data, mid)) hi = mid;
            else lo = mid;
        }
        count["starved.calibrated"]++;
        return hi;
    }

    /// @dev Replays the registry's events into the mirror; the state chain and the custody lists
    ///      are checked from the logs alone. Each successful write emits exactly the events the
    ///      model expects (`_expectEvents`: one for most writes, one per custody address, two for
    ///      a refused finalize, whose failure must be the model's).
    function _mirror(Vm.Log[] memory logs) internal {
        uint256 n;
        for (uint256 i = 0; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter != address(registry)) continue;
            ++n;
            bytes32 topic = log.topics[0];
            uint64 epoch = uint64(uint256(log.topics[1]));
            SolvencyRegistry.Epoch storage e = _ev[epoch];
            if (topic == SolvencyRegistry.EpochOpened.selector) {
                (uint256 ctx, uint64 nBatches, bytes32 bundle) = abi.decode(log.data, (uint256, uint64, bytes32));
                require(epoch > evLatest && evOpen == 0, "events: opened out of order");
                require(e.status == SolvencyRegistry.Status.None, "events: epoch opened twice");
                (e.ctxHash, e.bundleHash, e.state, e.nBatches) = (ctx, bundle, ctx, nBatches);
                e.openedAt = uint48(block.timestamp);
                e.status = SolvencyRegistry.Status.Open;
                evLatest = epoch;
                evOpen = epoch;
            } else if (topic == SolvencyRegistry.BatchVerified.selector) {
                (uint64 index, uint256 prev, uint256 next) = abi.decode(log.data, (uint64, uint256, uint256));
                require(epoch == evOpen, "events: batch for a closed epoch");
                require(index == e.batchesSubmitted && index < e.nBatches, "events: batch out of order");
                require(prev == e.state, "events: batch does not continue the chain");
                e.state = next;
                e.batchesSubmitted = index + 1;
            } else if (topic == SolvencyRegistry.CustodyAdded.selector) {
                address holder = abi.decode(log.data, (address));
                address[] storage c = _evCustody[epoch];
                require(epoch == evOpen, "events: custody for a closed epoch");
                require(c.length == 0 || holder > c[c.length - 1], "events: custody not increasing");
                c.push(holder);
            } else if (topic == SolvencyRegistry.EpochFinalized.selector) {
                _mirrorFinalized(epoch, log.data);
            } else if (topic == SolvencyRegistry.EpochAbandoned.selector) {
                uint64 submitted = abi.decode(log.data, (uint64));
                require(epoch == evOpen && submitted == e.batchesSubmitted, "events: abandon");
                e.status = SolvencyRegistry.Status.Abandoned;
                evOpen = 0;
            } else if (topic == SolvencyRegistry.PriceCheckFailed.selector) {
                require(epoch == evOpen && _expectBreaker.trips, "events: unexpected price check failure");
                Breaker memory b = _expectBreaker;
                require(
                    keccak256(log.data)
                        == keccak256(abi.encode(0, b.verdict, b.claimedE8, b.median, b.fresh, b.agreeing)),
                    "events: the price check failed otherwise than the model's"
                );
                require(i + 1 < logs.length, "events: no AttestationRefused");
            } else if (topic == SolvencyRegistry.AttestationRefused.selector) {
                require(epoch == evOpen && _expectBreaker.trips, "events: unexpected refusal");
                require(n == 2, "events: refusal without its reasons");
            } else {
                revert("events: unknown registry event");
            }
        }
        require(n == _expectEvents, "a registry write emitted other events than expected");
    }

    function _mirrorFinalized(uint64 epoch, bytes memory data) internal {
        SolvencyRegistry.Epoch storage e = _ev[epoch];
        (uint256 root, uint256 finalState, uint256 totals, uint256 shortfall, uint256 fund,,,,) = abi.decode(
            data, (uint256, uint256, uint256, uint256, uint256, uint64, uint256[], uint256[], bool)
        );
        (,,,,, uint64 nBatches, uint256[] memory verified, uint256[] memory declared, bool verifiedOnly) = abi.decode(
            data, (uint256, uint256, uint256, uint256, uint256, uint64, uint256[], uint256[], bool)
        );
        require(epoch == evOpen, "events: finalized a closed epoch");
        require(finalState == e.state, "events: final state is not the last nextState");
        require(nBatches == e.nBatches && e.batchesSubmitted == nBatches, "events: batches missing");
        e.root = root;
        e.totalsCommit = totals;
        e.shortfall = shortfall;
        e.insuranceFund = fund;
        e.finalizedAt = uint48(block.timestamp);
        e.status = SolvencyRegistry.Status.Finalized;
        e.verifiedOnly = verifiedOnly;
        _evReserves[epoch] = keccak256(abi.encode(verified));
        _evDeclared[epoch] = keccak256(abi.encode(declared));
        evOpen = 0;
        evLatestFinal = epoch;
    }

    function _checkMarginLog(Vm.Log[] memory logs, bytes memory data, address actor) internal view {
        bool isAttest = bytes4(data) == AccountMarginVerifier.attest.selector;
        uint256 n;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(registry)) revert("margin call made the registry emit");
            if (logs[i].emitter != address(margin)) continue;
            ++n;
            Vm.Log memory log = logs[i];
            (uint64 epoch, uint256 id, uint256 headroom) = _marginArgs(data);
            require(log.topics[0] == AccountMarginVerifier.MarginAttested.selector, "margin event");
            require(uint64(uint256(log.topics[1])) == epoch && uint256(log.topics[2]) == id, "margin event keys");
            require(address(uint160(uint256(log.topics[3]))) == actor, "margin event prover");
            require(abi.decode(log.data, (uint256)) == headroom, "margin event headroom");
        }
        require(n == (isAttest ? 1 : 0), "margin event count");
    }

    function _marginArgs(bytes memory data) internal pure returns (uint64 epoch, uint256 id, uint256 headroom) {
        assembly {
            epoch := mload(add(data, 36))
            id := mload(add(data, 68))
            headroom := mload(add(data, 100))
        }
    }

    // ================================================================== checks for the invariants

    function openedCount() external view returns (uint256) {
        return opened.length;
    }

    function recordHash(uint64 epoch) public view returns (bytes32) {
        return keccak256(
            abi.encode(
                registry.getEpoch(epoch),
                registry.getReserves(epoch),
                registry.getDeclaredReserves(epoch),
                registry.getPrices(epoch),
                registry.getCustody(epoch)
            )
        );
    }

    function modelHash(uint64 epoch) external view returns (bytes32) {
        return keccak256(abi.encode(_m[epoch], _mReserves[epoch], _mDeclared[epoch], _mPrices[epoch], _mCustody[epoch]));
    }

    function feedsAtFinalize(uint64 epoch) external view returns (uint256 median, uint256 fresh, uint256 agreeing) {
        Breaker storage b = _feedsAtFinalize[epoch];
        return (b.median, b.fresh, b.agreeing);
    }

    function mirrorDeclared(uint64 epoch) external view returns (bytes32) {
        return _evDeclared[epoch];
    }

    function mirrorCustody(uint64 epoch) external view returns (address[] memory) {
        return _evCustody[epoch];
    }

    function inPool(address a) external view returns (bool) {
        for (uint256 i = 0; i < POOL; ++i) {
            if (pool[i] == a) return true;
        }
        return false;
    }

    function mirrorEpoch(uint64 epoch) external view returns (SolvencyRegistry.Epoch memory) {
        return _ev[epoch];
    }

    function mirrorReserves(uint64 epoch) external view returns (bytes32) {
        return _evReserves[epoch];
    }

    function finalSignals(uint64 epoch) external view returns (uint256[] memory) {
        return _finalSignals[epoch];
    }

    function attestedCount() external view returns (uint256) {
        return _attEpochs.length;
    }

    function attested(uint256 i) external view returns (uint64 epoch, uint256 id, uint256 headroom) {
        epoch = _attEpochs[i];
        id = _attIds[i];
        headroom = _mHead[epoch][id] - 1;
    }

    // ================================================================== choosing values

    function _actor(uint256 seed) internal view returns (address) {
        return seed % 8 < 5 ? PUBLISHER : _stranger(seed);
    }

    function _anyone(uint256 seed) internal view returns (address) {
        return seed % 5 == 0 ? PUBLISHER : _stranger(seed);
    }

    function _stranger(uint256 seed) internal view returns (address) {
        uint256 r = (seed >> 3) % 5;
        if (r == 0) return address(registry);
        if (r == 1) return address(margin);
        if (r == 2) return address(this);
        if (r == 3) return address(batchBook);
        return address(uint160(uint256(keccak256(abi.encode(seed)))));
    }

    /// @dev Mostly the next epochs, often a replay or rollback (<= latest), sometimes anything.
    function _epochToOpen(uint256 seed) internal view returns (uint64) {
        uint256 r = seed % 8;
        if (r == 0) return 0;
        if (r == 1) return mLatest;
        if (r == 2) return mLatest == 0 ? 0 : uint64(1 + (seed >> 3) % mLatest);
        if (r == 3 && opened.length > 0) return opened[(seed >> 3) % opened.length];
        if (r == 7) return uint64(seed >> 8);
        if (mLatest >= type(uint64).max - 3) return type(uint64).max;
        return mLatest + 1 + uint64((seed >> 3) % 3);
    }

    /// @dev Mostly the open epoch, else an earlier one, the next one or 0.
    function _epochToUse(uint256 seed) internal view returns (uint64) {
        uint256 r = seed % 8;
        if (r < 5 && mOpen != 0) return mOpen;
        if (r == 5) return 0;
        if (r == 6 || opened.length == 0) return mLatest == type(uint64).max ? mLatest : mLatest + 1;
        return opened[(seed >> 3) % opened.length];
    }

    /// @dev Mostly an opened epoch, often the latest finalized one (as users attest against it),
    ///      sometimes 0 or one never opened.
    function _epochForMargin(uint256 seed) internal view returns (uint64) {
        if (opened.length == 0 || seed % 6 == 0) {
            return seed % 4 == 0 || mLatest == type(uint64).max ? 0 : mLatest + 1;
        }
        if (seed % 6 <= 2 && mLatestFinal != 0) return mLatestFinal;
        return opened[(seed >> 3) % opened.length];
    }

    /// @dev Gas limits at or above this mean "near the guard's threshold": _run finds the least
    ///      gas limit that gets the call past InsufficientGas and uses one within
    ///      [threshold - 1000, threshold + 3000), where a guard leaving the verifier too little
    ///      would show as InvalidProof.
    uint256 internal constant NEAR_GUARD = 1 << 128;

    /// @dev A gas limit for a starved call: too little to reach the guard, next to the guard's
    ///      threshold, or anything up to well past what the call needs.
    function _starvedGas(uint256 seed) internal pure returns (uint256) {
        uint256 r = seed % 4;
        if (r == 0) return 1_000 + (seed >> 2) % 30_000;
        if (r == 1) return NEAR_GUARD + (seed >> 2) % 4_000;
        return 30_000 + (seed >> 2) % 600_000;
    }


    /// @dev A field element, sometimes p - 1 or 0, sometimes >= p.
    function _fieldish(uint256 seed) internal pure returns (uint256) {
        uint256 r = seed % 10;
        if (r == 0) return P + (seed >> 4) % (type(uint256).max - P);
        if (r == 1) return P - 1;
        if (r == 2) return 0;
        return (seed >> 4) % P;
    }

    function _small(uint256 seed) internal pure returns (uint256) {
        if (seed % 23 == 0) return P + (seed >> 8) % 1000;
        return (seed >> 8) % 1_000_000;
    }

    // ================================================================== proofs

    function _issueBatch(uint256 prev, uint256 next, uint256 ctx) internal returns (Proof memory) {
        return _issue(batchBook, _three(prev, next, ctx));
    }

    function _issue(BookBatchVerifier book, uint256[] memory inputs) internal returns (Proof memory pr) {
        pr = book.issue(inputs);
        _issued[_proofId(pr)] = _statement(inputs);
    }

    function _issue(BookSolvencyVerifier book, uint256[] memory inputs) internal returns (Proof memory pr) {
        pr = book.issue(inputs);
        _issued[_proofId(pr)] = _statement(inputs);
    }

    function _issue(BookMarginVerifier book, uint256[] memory inputs) internal returns (Proof memory pr) {
        pr = book.issue(inputs);
        _issued[_proofId(pr)] = _statement(inputs);
    }

    function _unissued(uint256 seed) internal pure returns (Proof memory pr) {
        pr.a = [seed, seed >> 1];
        pr.c = [uint256(keccak256(abi.encode(seed))), 0];
    }

    /// @dev Whether `pr` proves `inputs` (as the stand-in verifier judges: modulo p).
    function _proves(Proof memory pr, uint256[] memory inputs) internal view returns (bool) {
        bytes32 s = _issued[_proofId(pr)];
        return s != bytes32(0) && s == _statement(inputs);
    }

    function _proofId(Proof memory pr) internal pure returns (bytes32) {
        return keccak256(abi.encode(pr.a, pr.b, pr.c));
    }

    function _statement(uint256[] memory inputs) internal pure returns (bytes32) {
        uint256[] memory reduced = new uint256[](inputs.length);
        for (uint256 i = 0; i < inputs.length; ++i) {
            reduced[i] = inputs[i] % P;
        }
        return keccak256(abi.encode(reduced));
    }

    function _three(uint256 x, uint256 y, uint256 z) internal pure returns (uint256[] memory v) {
        v = new uint256[](3);
        (v[0], v[1], v[2]) = (x, y, z);
    }

    function _four(uint256 w, uint256 x, uint256 y, uint256 z) internal pure returns (uint256[] memory v) {
        v = new uint256[](4);
        (v[0], v[1], v[2], v[3]) = (w, x, y, z);
    }

    /// @dev [finalState, ctxHash, root, totalsCommit, batchCount, shortfall, insuranceFund, epoch,
    ///      domain, weight0, weight1, verified0, verified1, declared0, declared1, verifiedOnly]
    ///      (missing entries as 0).
    function _signalsOf(
        uint256 finalState,
        uint256 ctx,
        uint256 nBatches,
        uint256 epoch,
        uint256 domain,
        Values memory v
    ) internal pure returns (uint256[] memory s) {
        s = new uint256[](16);
        (s[0], s[1], s[2], s[3], s[4], s[5], s[6]) = (finalState, ctx, v.root, v.totals, nBatches, v.shortfall, v.fund);
        (s[7], s[8]) = (epoch, domain);
        for (uint256 i = 0; i < N_ASSETS; ++i) {
            if (i < v.weights.length) s[9 + i] = v.weights[i];
            if (i < v.verified.length) s[11 + i] = v.verified[i];
            if (i < v.declared.length) s[13 + i] = v.declared[i];
        }
        s[15] = v.verifiedOnly ? 1 : 0;
    }

    function _two(uint256 x, uint256 y) internal pure returns (uint256[] memory v) {
        v = new uint256[](2);
        (v[0], v[1]) = (x, y);
    }

    function _hex(bytes memory b) internal pure returns (string memory) {
        bytes memory digits = "0123456789abcdef";
        uint256 n = b.length > 68 ? 68 : b.length;
        bytes memory out = new bytes(2 + 2 * n);
        (out[0], out[1]) = ("0", "x");
        for (uint256 i = 0; i < n; ++i) {
            out[2 + 2 * i] = digits[uint8(b[i]) >> 4];
            out[3 + 2 * i] = digits[uint8(b[i]) & 15];
        }
        return string(out);
    }
}

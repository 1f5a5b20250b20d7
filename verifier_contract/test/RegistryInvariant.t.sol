// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {AccountMarginVerifier} from "../src/AccountMarginVerifier.sol";
import {RegistryHandler} from "./utils/RegistryHandler.sol";

/// Stateful invariant tests: forge calls the handler's actions (openEpoch, addCustody,
/// submitBatch, finalize, abandonEpoch, attest / verifyMargin, their starved-gas variants, raw
/// calls, time warps, reserves moving, feeds changing) in random orders with random arguments,
/// as the publisher and as strangers. The handler
/// requires each call to succeed or fail exactly as the specification says (see its comments);
/// the invariants below are checked after every call.
///
/// Runs and depth are set in foundry.toml ([invariant]); for a longer search run e.g.
///   FOUNDRY_INVARIANT_RUNS=500 FOUNDRY_INVARIANT_DEPTH=200 node_modules/.bin/forge test --offline \
///     --match-contract RegistryInvariantTest
/// or FOUNDRY_PROFILE=deep (foundry.toml).
contract RegistryInvariantTest {
    /// @dev forge-std's StdInvariant.FuzzSelector, which forge reads from targetSelectors().
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    RegistryHandler internal handler;
    SolvencyRegistry internal registry;
    AccountMarginVerifier internal margin;
    bytes32 internal registryCodehash;
    bytes32 internal marginCodehash;
    address internal batchVerifier;
    address internal solvencyVerifier;
    address internal marginVerifier;
    uint64 internal lastLatest;
    uint64 internal lastLatestFinal;
    bytes32 internal assetsHash;

    function setUp() public {
        handler = new RegistryHandler();
        registry = handler.registry();
        margin = handler.margin();
        registryCodehash = address(registry).codehash;
        marginCodehash = address(margin).codehash;
        batchVerifier = address(handler.batchBook());
        solvencyVerifier = address(handler.solvencyBook());
        marginVerifier = address(handler.marginBook());
        assetsHash = keccak256(abi.encode(handler.assets()));
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory s = new bytes4[](16);
        s[0] = RegistryHandler.openEpoch.selector;
        s[1] = RegistryHandler.submitBatch.selector;
        s[2] = RegistryHandler.finalize.selector;
        s[3] = RegistryHandler.abandonEpoch.selector;
        s[4] = RegistryHandler.attest.selector;
        s[5] = RegistryHandler.attest.selector; // twice: attestations need finalized epochs first
        s[6] = RegistryHandler.submitBatchStarved.selector;
        s[7] = RegistryHandler.finalizeStarved.selector;
        s[8] = RegistryHandler.attestStarved.selector;
        s[9] = RegistryHandler.rawCall.selector;
        s[10] = RegistryHandler.warp.selector;
        s[11] = RegistryHandler.advance.selector; // the honest path, so that epochs get finalized
        s[12] = RegistryHandler.advance.selector;
        s[13] = RegistryHandler.addCustody.selector;
        s[14] = RegistryHandler.moveFunds.selector;
        s[15] = RegistryHandler.setFeed.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), s);
    }

    // ------------------------------------------------------------------ invariants

    /// Only the publisher changes state: every successful registry write in the handler came
    /// from the publisher (strangers are refused before any write, checked per call), and the
    /// storage equals what the publisher's successful calls alone produce.
    function invariant_OnlyPublisherChangesState() public view {
        uint256 n = handler.openedCount();
        for (uint256 i = 0; i < n; ++i) {
            uint64 e = handler.opened(i);
            require(handler.recordHash(e) == handler.modelHash(e), "storage differs from the publisher's model");
        }
        require(registry.latestEpoch() == handler.mLatest(), "latestEpoch differs from the model");
        require(registry.latestFinalizedEpoch() == handler.mLatestFinal(), "latestFinalizedEpoch differs");
        require(registry.openEpochId() == handler.mOpen(), "openEpochId differs from the model");
    }

    /// latestEpoch and latestFinalizedEpoch never decrease (no rollback).
    function invariant_LatestEpochNeverDecreases() public {
        uint64 latest = registry.latestEpoch();
        uint64 latestFinal = registry.latestFinalizedEpoch();
        require(latest >= lastLatest, "latestEpoch decreased");
        require(latestFinal >= lastLatestFinal, "latestFinalizedEpoch decreased");
        require(latestFinal <= latest, "finalized past the latest opened");
        lastLatest = latest;
        lastLatestFinal = latestFinal;
    }

    /// A finalized epoch's record (every field, the reserves, prices and custody) never changes
    /// afterwards: no rollback, no replay, no second finalize. Abandoned epochs stay abandoned.
    function invariant_FinalizedRecordsAreFrozen() public view {
        uint256 n = handler.openedCount();
        for (uint256 i = 0; i < n; ++i) {
            uint64 e = handler.opened(i);
            SolvencyRegistry.Epoch memory rec = registry.getEpoch(e);
            bytes32 frozen = handler.frozen(e);
            if (frozen != bytes32(0)) {
                require(rec.status == SolvencyRegistry.Status.Finalized, "a finalized epoch changed status");
                require(handler.recordHash(e) == frozen, "a finalized record changed");
                require(registry.isFinalizedRoot(e, rec.root), "isFinalizedRoot lost a root");
            } else {
                require(rec.status != SolvencyRegistry.Status.Finalized, "finalized outside the model");
                require(!registry.isFinalizedRoot(e, rec.root), "isFinalizedRoot of an unfinalized epoch");
                require(registry.getReserves(e).length == 0, "reserves of an unfinalized epoch");
                require(registry.getDeclaredReserves(e).length == 0, "declared reserves of an unfinalized epoch");
                require(registry.getPrices(e).length == 0, "prices of an unfinalized epoch");
            }
        }
    }

    /// Finalized epochs took exactly nBatches batches, and their final state is the last one.
    function invariant_FinalizedAfterExactlyAllBatches() public view {
        uint256 n = handler.openedCount();
        for (uint256 i = 0; i < n; ++i) {
            SolvencyRegistry.Epoch memory rec = registry.getEpoch(handler.opened(i));
            require(rec.batchesSubmitted <= rec.nBatches, "more batches than nBatches");
            if (rec.status == SolvencyRegistry.Status.Finalized) {
                require(rec.batchesSubmitted == rec.nBatches && rec.nBatches > 0, "finalized with batches missing");
                require(rec.finalizedAt >= rec.openedAt, "finalized before opened");
            } else {
                require(rec.finalizedAt == 0 && rec.root == 0, "finalize fields on an unfinalized epoch");
            }
        }
    }

    /// openEpochId is 0 with no epoch open, or the single open epoch, which is the latest.
    function invariant_AtMostOneOpenEpoch() public view {
        uint64 openId = registry.openEpochId();
        uint256 nOpen;
        uint256 n = handler.openedCount();
        for (uint256 i = 0; i < n; ++i) {
            uint64 e = handler.opened(i);
            if (registry.getEpoch(e).status == SolvencyRegistry.Status.Open) {
                ++nOpen;
                require(e == openId, "an open epoch other than openEpochId");
            }
        }
        if (openId == 0) {
            require(nOpen == 0, "open epoch while openEpochId is 0");
        } else {
            require(nOpen == 1, "openEpochId is not open");
            require(openId == registry.latestEpoch(), "the open epoch is not the latest");
        }
    }

    /// The stored state is the last BatchVerified nextState (the ctxHash before any batch), and
    /// every stored field equals what the events alone say (replayed by the handler, which
    /// checked each BatchVerified continues the chain at the next index).
    function invariant_EventsMatchStorage() public view {
        uint256 n = handler.openedCount();
        for (uint256 i = 0; i < n; ++i) {
            uint64 e = handler.opened(i);
            SolvencyRegistry.Epoch memory rec = registry.getEpoch(e);
            SolvencyRegistry.Epoch memory ev = handler.mirrorEpoch(e);
            require(rec.state == ev.state, "state is not the last BatchVerified nextState");
            require(keccak256(abi.encode(rec)) == keccak256(abi.encode(ev)), "storage differs from the events");
            require(
                keccak256(abi.encode(registry.getCustody(e))) == keccak256(abi.encode(handler.mirrorCustody(e))),
                "custody differs from the CustodyAdded events"
            );
            if (rec.status == SolvencyRegistry.Status.Finalized) {
                require(
                    keccak256(abi.encode(registry.getReserves(e))) == handler.mirrorReserves(e),
                    "reserves differ from EpochFinalized"
                );
                require(
                    keccak256(abi.encode(registry.getDeclaredReserves(e))) == handler.mirrorDeclared(e),
                    "declared reserves differ from EpochFinalized"
                );
            }
        }
        require(registry.latestEpoch() == handler.evLatest(), "latestEpoch differs from the events");
        require(registry.latestFinalizedEpoch() == handler.evLatestFinal(), "latestFinalizedEpoch vs events");
        require(registry.openEpochId() == handler.evOpen(), "openEpochId differs from the events");
    }

    /// The verifiers, publisher, asset count and configuration, selectors and code never change,
    /// and the domain is that of the chain id in force (which the handler never changes).
    function invariant_VerifiersImmutable() public view {
        require(registry.batchVerifier() == batchVerifier, "batch verifier changed");
        require(registry.solvencyVerifier() == solvencyVerifier, "solvency verifier changed");
        require(registry.publisher() == handler.PUBLISHER(), "publisher changed");
        require(registry.nAssets() == 2, "nAssets changed");
        SolvencyRegistry.AssetConfig[] memory a = new SolvencyRegistry.AssetConfig[](2);
        (a[0], a[1]) = (registry.assetConfig(0), registry.assetConfig(1));
        require(keccak256(abi.encode(a)) == assetsHash, "asset configuration changed");
        require(
            registry.batchSelector()
                == bytes4(keccak256("verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[3])")),
            "batch selector changed"
        );
        require(
            registry.solvencySelector()
                == bytes4(keccak256("verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[16])")),
            "solvency selector changed"
        );
        require(
            registry.domain() == ((block.chainid << 160) | uint160(address(registry)))
                && registry.domain() == handler.modelDomain(),
            "domain changed"
        );
        require(address(margin.registry()) == address(registry), "margin registry changed");
        require(margin.verifier() == marginVerifier, "margin verifier changed");
        require(address(registry).codehash == registryCodehash, "registry code changed");
        require(address(margin).codehash == marginCodehash, "margin code changed");
    }

    /// Every finalized epoch was finalized by a proof of exactly its own statement: the stored
    /// record, its prices, reserves and verifiedOnly, its own epoch number and this registry's
    /// domain for the chain id in force at finalize time (so no proof made for another epoch
    /// number, registry or chain, nor a replayed one, ever finalized an epoch).
    function invariant_FinalizedUnderOwnEpochAndDomain() public view {
        uint256 n = handler.openedCount();
        for (uint256 i = 0; i < n; ++i) {
            uint64 e = handler.opened(i);
            SolvencyRegistry.Epoch memory rec = registry.getEpoch(e);
            uint256[] memory s = handler.finalSignals(e);
            if (rec.status != SolvencyRegistry.Status.Finalized) {
                require(s.length == 0, "signals recorded for an unfinalized epoch");
                continue;
            }
            require(s.length == 10 + 3 * 2, "finalized without a recorded proof");
            require(s[7] == e, "finalized by a proof made for another epoch number");
            require(
                s[8] == (handler.finalChainId(e) << 160) | uint160(address(registry)),
                "finalized by a proof made for another registry or chain"
            );
            require(
                s[0] == rec.state && s[1] == rec.ctxHash && s[2] == rec.root && s[3] == rec.totalsCommit
                    && s[4] == rec.nBatches && s[5] == rec.shortfall && s[6] == rec.insuranceFund,
                "finalized by a proof of another record"
            );
            uint256[] memory prices = registry.getPrices(e);
            require(prices.length == 2 && s[9] / 1e10 == prices[0] && s[10] == prices[1], "prices not proven");
            uint256[] memory reserves = registry.getReserves(e);
            require(reserves.length == 2 && s[11] == reserves[0] && s[12] == reserves[1], "reserves not proven");
            uint256[] memory declared = registry.getDeclaredReserves(e);
            require(declared.length == 2 && s[13] == declared[0] && s[14] == declared[1], "declared not proven");
            require(s[15] == (rec.verifiedOnly ? 1 : 0), "verifiedOnly not proven");
        }
    }

    /// Every epoch's custody addresses are strictly increasing (none counted twice) and each is
    /// one the exchange holds the key of: a signature by another key, or for another epoch, never
    /// added one.
    function invariant_CustodyIsIncreasingAndOwned() public view {
        uint256 n = handler.openedCount();
        for (uint256 i = 0; i < n; ++i) {
            address[] memory c = registry.getCustody(handler.opened(i));
            for (uint256 j = 0; j < c.length; ++j) {
                require(j == 0 || c[j] > c[j - 1], "custody not strictly increasing");
                require(handler.inPool(c[j]), "custody the exchange does not control");
            }
        }
    }

    /// Every finalized epoch's checked price was backed by its feeds when it was finalized: at
    /// least a quorum (2 of 3) of fresh answers agreed within 1 % of their median, and the price
    /// lay within 1 % of it (the feeds as the handler read them at that moment, with its own
    /// median). Whenever they did not, finalize refused to attest and the epoch stayed open.
    function invariant_FinalizedPricesBackedByTheFeeds() public view {
        uint256 n = handler.openedCount();
        for (uint256 i = 0; i < n; ++i) {
            uint64 e = handler.opened(i);
            if (registry.getEpoch(e).status != SolvencyRegistry.Status.Finalized) continue;
            (uint256 median, uint256 fresh, uint256 agreeing) = handler.feedsAtFinalize(e);
            uint256 price = registry.getPrices(e)[0];
            uint256 diff = price > median ? price - median : median - price;
            require(fresh >= 2 && agreeing >= 2, "finalized without a quorum of agreeing feeds");
            require(diff * 10_000 <= median * 100, "finalized at a price off the feeds' median");
        }
    }

    /// Attested headrooms are the highest ever proven (never lowered), only for finalized
    /// epochs.
    function invariant_AttestationsOnlyRiseAndOnlyOnFinalizedEpochs() public view {
        uint256 n = handler.attestedCount();
        for (uint256 i = 0; i < n; ++i) {
            (uint64 e, uint256 id, uint256 headroom) = handler.attested(i);
            (bool proven, uint256 recorded) = margin.attestedHeadroom(e, id);
            require(proven && recorded == headroom, "attested headroom is not the highest proven");
            require(registry.getEpoch(e).status == SolvencyRegistry.Status.Finalized, "attested an unfinalized epoch");
        }
    }

    // ------------------------------------------------------------------ the handler itself

    /// The handler is not vacuous: a fixed pseudo-random sequence of its actions reaches every
    /// kind of outcome the invariants are about.
    function test_HandlerReachesEveryOutcome() public {
        for (uint256 i = 0; i < 1200; ++i) {
            uint256 r = uint256(keccak256(abi.encode("coverage", i)));
            uint256 a = uint256(keccak256(abi.encode(r, 1)));
            uint256 b = uint256(keccak256(abi.encode(r, 2)));
            uint256 c = uint256(keccak256(abi.encode(r, 3)));
            uint256 d = uint256(keccak256(abi.encode(r, 4)));
            uint256 which = r % 15;
            if (which == 0) handler.openEpoch(a, b, c, d, bytes32(r));
            else if (which == 1) handler.submitBatch(a, b, c, d, r >> 8);
            else if (which == 2) handler.finalize(a, b, c, d);
            else if (which == 3) handler.abandonEpoch(a, b);
            else if (which == 4) handler.attest(a, b, c, d, r >> 8, (r >> 4) % 3 == 0);
            else if (which == 5) handler.submitBatchStarved(a, b);
            else if (which == 6) handler.finalizeStarved(a, b);
            else if (which == 7) handler.attestStarved(a, b, c, (r >> 4) % 3 == 0);
            else if (which == 8) handler.rawCall(a, b, abi.encode(c, d));
            else if (which == 9) handler.warp(a % 2 hours);
            else if (which == 10) handler.addCustody(a, b, c, d);
            else if (which == 11) handler.moveFunds(a);
            else if (which == 12) handler.setFeed(a);
            else handler.advance(a);
            if (i % 50 == 49) {
                invariant_OnlyPublisherChangesState();
                invariant_FinalizedRecordsAreFrozen();
                invariant_EventsMatchStorage();
                invariant_FinalizedUnderOwnEpochAndDomain();
                invariant_AttestationsOnlyRiseAndOnlyOnFinalizedEpochs();
                invariant_CustodyIsIncreasingAndOwned();
                invariant_FinalizedPricesBackedByTheFeeds();
            }
        }
        string[24] memory outcomes = [
            "open.ok",
            "open.replay-or-rollback",
            "batch.ok",
            "batch.replay",
            "batch.malleated-replay",
            "final.ok",
            "final.replay",
            "final.foreign",
            "abandon.ok",
            "attest.ok",
            "attest.ok-lower",
            "verifyMargin.ok",
            "stranger.refused",
            "starved.guard",
            "starved.oog",
            "raw",
            "custody.ok",
            "custody.bad-signature",
            "custody.not-increasing",
            "final.breaker",
            "final.reserves-changed",
            "funds",
            "feed",
            ""
        ];
        for (uint256 i = 0; i < outcomes.length; ++i) {
            if (bytes(outcomes[i]).length == 0) continue;
            require(handler.count(bytes32(bytes(outcomes[i]))) > 0, string.concat("never reached: ", outcomes[i]));
        }
    }
}

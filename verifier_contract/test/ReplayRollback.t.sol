// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {AccountMarginVerifier} from "../src/AccountMarginVerifier.sol";
import {Proof} from "./utils/BookVerifier.sol";
import {BookRegistryTest} from "./utils/BookRegistryTest.sol";

/// Replays and rollbacks, over verifiers that accept exactly the statements they issued proofs
/// for (and re-randomised proofs of them): an epoch number is never reused, finalized records
/// never change, abandoned epochs are never finalized, and a batch proof, once accepted, is
/// never accepted again in the same chain however it is re-encoded.
contract ReplayRollbackTest is BookRegistryTest {
    uint256 internal constant CTX = 1234;

    /// Opening any epoch number <= latestEpoch (the finalized one, an abandoned one, anything
    /// older, 0) is refused, and the finalized record is untouched.
    function testFuzz_EpochReplayOrRollbackRefused(uint64 first, uint64 gap, uint64 again, bool abandonNext) public {
        first = uint64(1 + first % (type(uint64).max - 1000));
        _publish(first, CTX, 2, first, 7);
        bytes32 record = _recordHash(first);
        uint64 latest = first;
        if (abandonNext) {
            latest = first + 1 + gap % 100;
            _open(latest, CTX + 1, 3);
            _submit(latest, 5);
            vm.prank(PUBLISHER);
            registry.abandonEpoch(latest);
        }
        again = again % (latest + 1); // 0..latest
        _reverts(
            PUBLISHER,
            address(registry),
            abi.encodeCall(SolvencyRegistry.openEpoch, (again, CTX, 2, bytes32(0))),
            _err(SolvencyRegistry.EpochNotIncreasing.selector, again, latest),
            "openEpoch <= latest"
        );
        require(registry.latestEpoch() == latest, "latestEpoch moved");
        require(registry.latestFinalizedEpoch() == first, "latestFinalizedEpoch moved");
        require(_recordHash(first) == record, "finalized record changed");
        // The finalized epoch takes no more writes.
        Batch memory b = batches[first][0];
        _reverts(
            PUBLISHER, address(registry), _submitCall(first, 0, b.pr, b.next),
            _err(SolvencyRegistry.NotOpen.selector, first), "batch into a finalized epoch"
        );
        _reverts(
            PUBLISHER, address(registry), _finalizeCall(first, _solvencyProof(first, 8), 8),
            _err(SolvencyRegistry.NotOpen.selector, first), "second finalize"
        );
        _reverts(
            PUBLISHER, address(registry), abi.encodeCall(SolvencyRegistry.abandonEpoch, (first)),
            _err(SolvencyRegistry.NotOpen.selector, first), "abandon a finalized epoch"
        );
        require(_recordHash(first) == record, "finalized record changed");
    }

    /// An abandoned epoch, however far its batches got, can never be finalized, take batches,
    /// be reopened or back a margin proof; later epochs go on normally.
    function testFuzz_AbandonedEpochNeverFinalized(uint64 epoch, uint8 n, uint8 k, uint256 root, uint256 seed)
        public
    {
        epoch = uint64(1 + epoch % 1_000_000);
        n = uint8(1 + n % 5);
        k = uint8(k % (n + 1));
        root = root % P;
        _open(epoch, CTX, n);
        for (uint64 i = 0; i < k; ++i) {
            _submit(epoch, _state(seed, i));
        }
        vm.prank(PUBLISHER);
        registry.abandonEpoch(epoch);
        bytes32 record = _recordHash(epoch);
        bytes memory notOpen = _err(SolvencyRegistry.NotOpen.selector, epoch);

        // A solvency proof made for exactly its stored state.
        Proof memory pr = _solvencyProof(epoch, root);
        _reverts(PUBLISHER, address(registry), _finalizeCall(epoch, pr, root), notOpen, "finalize abandoned");
        Proof memory bp = _batchProof(registry.getEpoch(epoch).state, 5, CTX);
        _reverts(PUBLISHER, address(registry), _submitCall(epoch, k, bp, 5), notOpen, "batch into abandoned");
        _reverts(
            PUBLISHER, address(registry), abi.encodeCall(SolvencyRegistry.abandonEpoch, (epoch)), notOpen,
            "abandon twice"
        );
        _reverts(
            PUBLISHER,
            address(registry),
            abi.encodeCall(SolvencyRegistry.openEpoch, (epoch, CTX, n, bytes32(0))),
            _err(SolvencyRegistry.EpochNotIncreasing.selector, epoch, epoch),
            "reopen abandoned"
        );

        // The next epoch, same context, is finalized; the abandoned one stays as it was.
        _publish(epoch + 1, CTX, n, seed, root);
        _reverts(PUBLISHER, address(registry), _finalizeCall(epoch, pr, root), notOpen, "finalize abandoned later");
        require(_recordHash(epoch) == record, "abandoned record changed");
        require(registry.getEpoch(epoch).status == SolvencyRegistry.Status.Abandoned, "status changed");
        require(!registry.isFinalizedRoot(epoch, root) && !registry.isFinalizedRoot(epoch, 0), "finalized root");

        // A margin proof for its stored (ctxHash, root = 0) is refused for the status alone.
        Proof memory mp = _marginProof(epoch, 1, 5);
        _reverts(
            address(this),
            address(margin),
            abi.encodeCall(AccountMarginVerifier.attest, (epoch, 1, 5, mp.a, mp.b, mp.c)),
            abi.encodeWithSelector(
                AccountMarginVerifier.EpochNotFinalized.selector, epoch, SolvencyRegistry.Status.Abandoned
            ),
            "attest on abandoned"
        );
    }

    /// Every accepted batch, replayed with its own proof or a re-randomised one, at any index,
    /// is refused, and nothing moves.
    function testFuzz_ReplayedBatchRefused(uint8 n, uint8 k, uint8 which, uint64 index, bool fresh, uint256 seed)
        public
    {
        n = uint8(2 + n % 5);
        k = uint8(1 + k % n); // batches submitted before the replay, 1..n
        _open(1, CTX, n);
        for (uint64 i = 0; i < k; ++i) {
            _submit(1, _state(seed, i));
        }
        Batch memory b = batches[1][which % k];
        Proof memory pr = fresh ? _batchProof(b.prev, b.next, CTX) : b.pr;
        index = index % (n + 2);
        bytes memory expected;
        if (index >= n) expected = _err(SolvencyRegistry.TooManyBatches.selector, index, n);
        else if (index != k) expected = _err(SolvencyRegistry.WrongBatchIndex.selector, k, index);
        else expected = _err(SolvencyRegistry.InvalidProof.selector, 0);
        bytes32 before = _recordHash(1);
        _reverts(PUBLISHER, address(registry), _submitCall(1, index, pr, b.next), expected, "replayed batch");
        require(_recordHash(1) == before, "replay moved the epoch");

        // The chain goes on from where it was; after finalizing, replays meet a closed epoch.
        for (uint64 i = k; i < n; ++i) {
            _submit(1, _state(seed, i));
        }
        _finalize(1, 7);
        _reverts(
            PUBLISHER, address(registry), _submitCall(1, k, pr, b.next),
            _err(SolvencyRegistry.NotOpen.selector, 1), "replay after finalize"
        );
    }

    /// A whole finalized epoch replayed under a new epoch number: every proof binds ctxHash, so
    /// the batch replay fails unless the new epoch was opened with the very same ctxHash (the
    /// registry cannot tell which epoch a ctxHash belongs to). Even then the old solvency proof
    /// is refused: it binds the epoch number it was made for, and finalize supplies the open
    /// epoch's own, so a replayed chain of batches can never be finalized. (The context hash
    /// commits to the epoch number too, prover/commitments.py context_hash, which is what makes
    /// the circuit's epoch signal the one inside the context.)
    function testFuzz_CrossEpochReplayRefusedAtFinalize(uint256 ctx1, uint256 ctx2, bool sameCtx, uint256 seed)
        public
    {
        ctx1 = ctx1 % P;
        ctx2 = sameCtx ? ctx1 : ctx2 % P;
        _publish(1, ctx1, 2, seed, 7);
        Proof memory s1 = solvencyBook.issue(_solvencySignals(1, _claim(1, 7)));
        _open(2, ctx2, 2);
        Batch memory b0 = batches[1][0];
        vm.prank(PUBLISHER);
        (bool ok,) = address(registry).call(_submitCall(2, 0, b0.pr, b0.next));
        require(ok == (ctx1 == ctx2), "cross-epoch batch replay");
        if (!ok) return;
        Batch memory b1 = batches[1][1];
        _submitRaw(2, 1, b1.pr, b1.next);
        SolvencyRegistry.Epoch memory e1 = registry.getEpoch(1);
        SolvencyRegistry.Epoch memory e2 = registry.getEpoch(2);
        require(e1.ctxHash == e2.ctxHash && e1.state == e2.state, "replayed chain differs");
        bytes32 before = _recordHash(2);
        _reverts(
            PUBLISHER, address(registry), _finalizeCall(2, s1, 7), _err(SolvencyRegistry.InvalidProof.selector, 1),
            "cross-epoch solvency replay"
        );
        require(_recordHash(2) == before && registry.openEpochId() == 2, "the replay moved epoch 2");
        require(!registry.isFinalizedRoot(2, 7) && registry.latestFinalizedEpoch() == 1, "epoch 2 finalized");
    }

    function _submitRaw(uint64 epoch, uint64 index, Proof memory pr, uint256 next) internal {
        vm.prank(PUBLISHER);
        registry.submitBatch(epoch, index, pr.a, pr.b, pr.c, next);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {Vm} from "./utils/Vm.sol";
import {Proof} from "./utils/BookVerifier.sol";
import {BookRegistryTest} from "./utils/BookRegistryTest.sol";
import {Bytecode} from "./utils/Bytecode.sol";

/// A solvency proof binds the epoch number and the registry's domain, (chainid << 160) |
/// address, both of which finalize supplies itself: over verifiers that accept exactly the
/// statements they issued proofs for, a proof made for another epoch number, another registry or
/// another chain is refused with InvalidProof(KIND_SOLVENCY), and the same proof made for the
/// right ones goes through. The domain is recomputed from the chain id in force on every call,
/// so a registry that a chain split carries onto a branch with another chain id refuses there
/// the proofs made for the branch it came from; and only for chain ids below 2^64.
contract DomainBindingTest is BookRegistryTest {
    uint256 internal constant CTX = 1234;
    uint256 internal constant ROOT = 7;
    bytes32 internal constant SALT = keccak256("registry");

    // ------------------------------------------------------------------ helpers

    function _deploy() internal returns (SolvencyRegistry) {
        return new SolvencyRegistry(PUBLISHER, address(batchBook), address(solvencyBook), N_ASSETS, _assets());
    }

    /// @dev `code` (a registry's creation code) followed by the fixture's constructor arguments.
    function _withArgs(bytes memory code) internal view returns (bytes memory) {
        return abi.encodePacked(code, abi.encode(PUBLISHER, address(batchBook), address(solvencyBook), N_ASSETS, _assets()));
    }

    /// @dev Where `new SolvencyRegistry{salt: SALT}(...)` from this contract lands, on any chain.
    function _create2Address() internal view returns (address) {
        bytes32 initHash = keccak256(_withArgs(type(SolvencyRegistry).creationCode));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), SALT, initHash)))));
    }

    function _invalidSolvency() internal view returns (bytes memory) {
        return _err(SolvencyRegistry.InvalidProof.selector, registry.KIND_SOLVENCY());
    }

    /// @dev The signals of `registry`'s open `epoch` as _solvencySignals makes them, but proven
    ///      for epoch number `provenEpoch` and domain `provenDomain`.
    function _signalsFor(uint64 epoch, uint256 provenEpoch, uint256 provenDomain)
        internal
        view
        returns (uint256[] memory x)
    {
        x = _solvencySignals(epoch, _claim(epoch, ROOT));
        (x[7], x[8]) = (provenEpoch, provenDomain);
    }

    /// @dev Opens `epoch` of `registry` with `n` batches from `seed` and submits them all.
    function _openAndSubmit(uint64 epoch, uint256 ctx, uint64 n, uint256 seed) internal {
        _open(epoch, ctx, n);
        for (uint64 i = 0; i < n; ++i) {
            _submit(epoch, _state(seed, i));
        }
    }

    /// @dev Requires finalizing `epoch` of `registry` with `pr` to fail with InvalidProof and to
    ///      leave the epoch as it was.
    function _refused(uint64 epoch, Proof memory pr, string memory what) internal {
        bytes32 before = _recordHash(epoch);
        _reverts(PUBLISHER, address(registry), _finalizeCall(epoch, pr, ROOT), _invalidSolvency(), what);
        require(_recordHash(epoch) == before && registry.openEpochId() == epoch, string.concat(what, ": moved"));
    }

    // ------------------------------------------------------------------ the domain

    /// domain() is (block.chainid << 160) | address(registry), and opens back into both.
    function test_DomainIsChainIdAndAddress() public {
        uint64[4] memory ids = [uint64(1), 5, 31337, type(uint64).max];
        for (uint256 i = 0; i < ids.length; ++i) {
            vm.chainId(ids[i]);
            SolvencyRegistry r = _deploy();
            uint256 d = r.domain();
            require(d == ((uint256(ids[i]) << 160) | uint160(address(r))), "domain");
            require(d >> 160 == ids[i] && address(uint160(d)) == address(r), "domain does not open back");
            require(d < P, "domain is not a field element");
        }
    }

    /// Distinct (chain id, address) pairs give distinct domains: the packing is injective.
    function testFuzz_DomainIsInjective(uint64 id1, uint64 id2, address a1, address a2) public pure {
        uint256 d1 = (uint256(id1) << 160) | uint160(a1);
        uint256 d2 = (uint256(id2) << 160) | uint160(a2);
        require((d1 == d2) == (id1 == id2 && a1 == a2), "two deployments share a domain");
        require(d1 < P && d2 < P, "domain is not a field element");
    }

    /// domain() follows the chain id in force, not the one at deployment: a chain split that
    /// gives one branch a new chain id (EIP-155) carries the registry, at the same address and
    /// with the same storage, onto both branches, and each copy must refuse the proofs made for
    /// the other. Here one registry, with an epoch ready to finalize, sees chain id A, then B:
    /// under B the proof made for A is refused (leaving the epoch as it was); back under A,
    /// whether by switching the chain id back or by restoring the state from before the switch
    /// (after B's own proof finalized the epoch under B), the proof made for B is refused and
    /// A's goes through.
    function testFuzz_DomainFollowsChainId(uint64 idA, uint64 idB, uint8 n, uint256 seed, bool restore) public {
        idA = uint64(1 + idA % type(uint64).max);
        idB = uint64(1 + idB % type(uint64).max);
        if (idB == idA) idB = idA == type(uint64).max ? 1 : idA + 1;
        n = uint8(1 + n % 4);
        vm.chainId(idA);
        registry = _deploy();
        uint256 domainA = (uint256(idA) << 160) | uint160(address(registry));
        uint256 domainB = (uint256(idB) << 160) | uint160(address(registry));
        require(registry.domain() == domainA, "domain under chain A");
        _openAndSubmit(1, CTX, n, seed);
        // Issued before the snapshot, so that both sides of it know them.
        Proof memory forA = solvencyBook.issue(_signalsFor(1, 1, domainA));
        Proof memory forB = solvencyBook.issue(_signalsFor(1, 1, domainB));
        uint256 snapshot = vm.snapshotState();

        vm.chainId(idB); // the split: the same registry and storage under another chain id
        require(registry.domain() == domainB, "domain did not follow the chain id");
        _refused(1, forA, "chain B took chain A's proof");
        if (restore) {
            _sendFinalize(1, forB, ROOT);
            require(registry.isFinalizedRoot(1, ROOT), "chain B refused its own proof");
            require(vm.revertToState(snapshot), "snapshot");
            require(block.chainid == idA, "the snapshot did not restore the chain id");
            require(
                registry.openEpochId() == 1 && !registry.isFinalizedRoot(1, ROOT), "the snapshot kept B's finalize"
            );
        } else {
            vm.chainId(idA);
        }
        require(registry.domain() == domainA, "domain did not follow the chain id back");
        _refused(1, forB, "chain A took chain B's proof");
        _sendFinalize(1, forA, ROOT);
        require(registry.isFinalizedRoot(1, ROOT), "chain A refused its own proof");
    }

    // ------------------------------------------------------------------ epoch number

    /// A solvency proof made for epoch E is refused when the same ctxHash is opened under a
    /// later epoch number E' (after E was abandoned, or finalized) and its batches replayed: the
    /// registry supplies E' as the epoch signal. In the real circuit the epoch signal is the
    /// number inside the ctxHash preimage, so no proof of this ctxHash for E' exists at all; the
    /// stand-in issues one to show that the epoch signal alone decides.
    function testFuzz_ProofForEpochRefusedUnderLaterEpoch(
        uint64 epoch,
        uint64 gap,
        uint8 n,
        uint256 ctx,
        uint256 seed,
        bool finalizeFirst
    ) public {
        epoch = uint64(1 + epoch % (type(uint64).max - 2_000));
        uint64 later = epoch + 1 + gap % 1_000;
        n = uint8(1 + n % 4);
        ctx = ctx % P;
        _openAndSubmit(epoch, ctx, n, seed);
        Proof memory pr = _solvencyProof(epoch, ROOT);
        if (finalizeFirst) {
            _sendFinalize(epoch, pr, ROOT);
            require(registry.isFinalizedRoot(epoch, ROOT), "the proof's own epoch refused it");
        } else {
            vm.prank(PUBLISHER);
            registry.abandonEpoch(epoch);
        }

        _open(later, ctx, n);
        for (uint256 i = 0; i < n; ++i) {
            Batch memory b = batches[epoch][i];
            vm.prank(PUBLISHER);
            registry.submitBatch(later, uint64(i), b.pr.a, b.pr.b, b.pr.c, b.next);
        }
        require(registry.getEpoch(later).state == registry.getEpoch(epoch).state, "replayed chain differs");
        _refused(later, pr, "proof for an earlier epoch number");

        _finalize(later, ROOT);
        require(registry.isFinalizedRoot(later, ROOT), "the proof for E' refused");
    }

    // ------------------------------------------------------------------ registry address

    /// A proof made for registry A is refused by registry B (same verifiers, publisher and asset
    /// count, the same epoch and batches, so the same statement but for the domain) and
    /// accepted by A; and the other way round.
    function testFuzz_ProofForRegistryARefusedByRegistryB(uint64 epoch, uint256 ctx, uint8 n, uint256 seed) public {
        epoch = uint64(1 + epoch % type(uint64).max);
        ctx = ctx % P;
        n = uint8(1 + n % 4);
        SolvencyRegistry a = registry;
        SolvencyRegistry b = _deploy();
        require(a.domain() != b.domain(), "two registries share a domain");

        registry = a;
        _openAndSubmit(epoch, ctx, n, seed);
        Proof memory forA = _solvencyProof(epoch, ROOT);
        registry = b;
        _openAndSubmit(epoch, ctx, n, seed);
        Proof memory forB = _solvencyProof(epoch, ROOT);
        require(b.getEpoch(epoch).state == a.getEpoch(epoch).state, "the two chains differ");

        _refused(epoch, forA, "B took A's proof");
        registry = a;
        _refused(epoch, forB, "A took B's proof");
        _sendFinalize(epoch, forA, ROOT);
        require(a.isFinalizedRoot(epoch, ROOT), "A refused its own proof");
        registry = b;
        _sendFinalize(epoch, forB, ROOT);
        require(b.isFinalizedRoot(epoch, ROOT), "B refused its own proof");
    }

    // ------------------------------------------------------------------ chain id

    /// The same deployment (deployer, salt and arguments, hence the same address X) on chain 1
    /// and on chain 5: the proof made on chain 1 for X is refused on chain 5 and accepted on
    /// chain 1. The proof is issued before the state snapshot, so both chains see it.
    function testFuzz_ProofForChain1RefusedOnChain5(uint64 epoch, uint256 ctx, uint256 seed) public {
        epoch = uint64(1 + epoch % type(uint64).max);
        ctx = ctx % P;
        address x = _create2Address();
        // The claim for an epoch without custody (verified reserves 0), as on both chains.
        uint256[] memory signals =
            _signalsOf(_state(seed, 1), ctx, 2, epoch, (uint256(1) << 160) | uint160(x), _claim(epoch, ROOT));
        Proof memory onChain1 = solvencyBook.issue(signals);
        uint256 snapshot = vm.snapshotState();

        vm.chainId(5);
        registry =
            new SolvencyRegistry{salt: SALT}(PUBLISHER, address(batchBook), address(solvencyBook), N_ASSETS, _assets());
        require(address(registry) == x, "not the same address");
        require(registry.domain() == ((uint256(5) << 160) | uint160(x)), "chain 5 domain");
        _openAndSubmit(epoch, ctx, 2, seed);
        _refused(epoch, onChain1, "chain 5 took chain 1's proof");
        _finalize(epoch, ROOT); // made for chain 5
        require(registry.isFinalizedRoot(epoch, ROOT), "chain 5 refused its own proof");

        require(vm.revertToState(snapshot), "snapshot");
        vm.chainId(1);
        registry =
            new SolvencyRegistry{salt: SALT}(PUBLISHER, address(batchBook), address(solvencyBook), N_ASSETS, _assets());
        require(address(registry) == x, "not the same address");
        _openAndSubmit(epoch, ctx, 2, seed);
        _sendFinalize(epoch, onChain1, ROOT);
        require(registry.isFinalizedRoot(epoch, ROOT), "chain 1 refused its own proof");
    }

    // ------------------------------------------------------------------ chain ids from 2^64

    /// forge's EVM, like every client, keeps the chain id in 64 bits: vm.chainId refuses 2^64,
    /// and the largest id it takes deploys (test_DomainIsChainIdAndAddress).
    function test_ChainIdsFrom2To64AreOutOfReach() public {
        (bool ok,) = address(vm).call(abi.encodeCall(Vm.chainId, (uint256(1) << 64)));
        require(!ok, "the EVM took a chain id of 2^64");
    }

    /// So the constructor's guard is reached by running its real creation code with every
    /// CHAINID instruction read as CALLER, the deployer pranked to the "chain id" wanted: from
    /// 2^64 on it refuses to deploy, naming the id; just below, it deploys with that id in its
    /// domain (which the deployed code, patched too, computes from its caller, so it is read
    /// as the deployer).
    function testFuzz_ConstructorRefusesChainIdFrom2To64(uint160 id) public {
        bytes memory code = type(SolvencyRegistry).creationCode;
        // CHAINID (0x46) -> CALLER (0x33)
        require(Bytecode.replaceOpcode(code, 0x46, 0x33) > 0, "no CHAINID in the constructor");
        code = _withArgs(code);
        // 2^64, any id above it, and any below it up to 2^64 - 2 (2^64 - 1 comes last, alone:
        // distinct deployers keep the CREATE addresses apart).
        uint160 two64 = uint160(1) << 64;
        uint160[3] memory ids = [two64, two64 + id % (type(uint160).max - two64), 1_000 + id % (two64 - 1_001)];
        for (uint256 i = 0; i < ids.length; ++i) {
            (address deployed, bytes memory err) = _createAs(address(ids[i]), code);
            if (ids[i] >= two64) {
                require(deployed == address(0), "deployed with a chain id from 2^64");
                require(
                    keccak256(err) == keccak256(_err(SolvencyRegistry.ChainIdTooLarge.selector, ids[i])),
                    "not ChainIdTooLarge(chain id)"
                );
            } else {
                require(deployed != address(0), "refused a chain id below 2^64");
                vm.prank(address(ids[i]));
                uint256 d = SolvencyRegistry(deployed).domain();
                require(d == ((uint256(ids[i]) << 160) | uint160(deployed)), "domain");
            }
        }
        (address edge,) = _createAs(address(two64 - 1), code);
        require(edge != address(0), "refused chain id 2^64 - 1");
        vm.prank(address(two64 - 1));
        require(SolvencyRegistry(edge).domain() == ((uint256(two64 - 1) << 160) | uint160(edge)), "edge domain");
    }

    /// A chain id that reaches 2^64 after deployment makes domain() and finalize revert with
    /// ChainIdTooLarge(chain id), leaving the open epoch as it was, instead of binding a proof
    /// to a domain that is no longer injective nor a field element; back below 2^64 the same
    /// proof finalizes. The registry's real code runs with every CHAINID instruction read as
    /// PREVRANDAO, set with vm.prevrandao to the "chain id" wanted (CALLER would not do here,
    /// finalize must come from the publisher; and vm.txGasPrice stops below 2^64 too).
    function testFuzz_FinalizeRefusesChainIdFrom2To64(uint64 deployedOn, uint256 laterOn, uint8 n, uint256 seed)
        public
    {
        bytes memory code = type(SolvencyRegistry).creationCode;
        require(!Bytecode.hasOpcode(code, 0x44), "PREVRANDAO already in the code");
        // CHAINID (0x46) -> PREVRANDAO (0x44), in the constructor and in the runtime code.
        require(Bytecode.replaceOpcode(code, 0x46, 0x44) >= 2, "CHAINID missing from the code");
        deployedOn = uint64(1 + deployedOn % type(uint64).max);
        uint256 two64 = uint256(1) << 64;
        // 2^64, and any id from 2^64 on.
        uint256[2] memory ids = [two64, two64 + laterOn % (type(uint256).max - two64 + 1)];
        n = uint8(1 + n % 4);

        vm.prevrandao(bytes32(uint256(deployedOn)));
        (address deployed,) = _createAs(address(this), _withArgs(code));
        require(deployed != address(0), "not deployed");
        require(!Bytecode.hasOpcode(deployed.code, 0x46), "CHAINID left in the runtime code");
        registry = SolvencyRegistry(deployed);
        uint256 d = (uint256(deployedOn) << 160) | uint160(deployed);
        require(registry.domain() == d, "domain");
        _openAndSubmit(1, CTX, n, seed);
        Proof memory pr = solvencyBook.issue(_signalsFor(1, 1, d));

        for (uint256 i = 0; i < ids.length; ++i) {
            vm.prevrandao(bytes32(ids[i]));
            bytes memory tooLarge = _err(SolvencyRegistry.ChainIdTooLarge.selector, ids[i]);
            _reverts(address(this), deployed, abi.encodeWithSelector(registry.domain.selector), tooLarge, "domain()");
            bytes32 before = _recordHash(1);
            _reverts(PUBLISHER, deployed, _finalizeCall(1, pr, ROOT), tooLarge, "finalize");
            require(_recordHash(1) == before && registry.openEpochId() == 1, "finalize moved the epoch");
        }

        vm.prevrandao(bytes32(uint256(deployedOn)));
        _sendFinalize(1, pr, ROOT);
        require(registry.isFinalizedRoot(1, ROOT), "refused its own proof back below 2^64");
    }

    /// @dev CREATE `code` as `deployer`: the new address, or 0 and the revert data.
    function _createAs(address deployer, bytes memory code) internal returns (address deployed, bytes memory err) {
        vm.prank(deployer);
        assembly {
            deployed := create(0, add(code, 32), mload(code))
        }
        if (deployed == address(0)) {
            assembly {
                err := mload(0x40)
                mstore(err, returndatasize())
                returndatacopy(add(err, 32), 0, returndatasize())
                mstore(0x40, add(add(err, 32), returndatasize()))
            }
        }
    }
}

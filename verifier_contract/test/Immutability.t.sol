// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SolvencyRegistry} from "../src/SolvencyRegistry.sol";
import {AccountMarginVerifier} from "../src/AccountMarginVerifier.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {MockMarginVerifier} from "./utils/MockVerifier.sol";
import {Bytecode} from "./utils/Bytecode.sol";

/// Nothing can change the verifiers (or the publisher, the asset configuration, or the code), nor the domain but through
/// the chain id: read from the deployed runtime code, the dispatcher knows exactly the intended
/// functions (so there is no setter), the verifiers and publisher are immutables in the code
/// rather than storage, the domain is computed from CHAINID and ADDRESS on every call (neither
/// stored nor fixed in the code), and the code has no opcode that could replace or destroy it
/// or run foreign code in its context (it only STATICCALLs).
contract ImmutabilityTest is RegistryTest {
    AccountMarginVerifier internal margin;

    function setUp() public override {
        super.setUp();
        margin = new AccountMarginVerifier(address(registry), address(new MockMarginVerifier()));
    }

    uint256 internal constant WRITERS = 5;

    function _registryFunctions() internal view returns (bytes4[30] memory) {
        return [
            // The only writers (the first WRITERS), none of which takes a verifier, publisher or
            // asset configuration: addCustody's addresses are the epoch's custody, nothing else.
            SolvencyRegistry.openEpoch.selector,
            SolvencyRegistry.submitBatch.selector,
            SolvencyRegistry.finalize.selector,
            SolvencyRegistry.abandonEpoch.selector,
            SolvencyRegistry.addCustody.selector,
            // Views.
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
            registry.BATCH_PUBLIC_INPUTS.selector,
            registry.SOLVENCY_FIXED_INPUTS.selector,
            registry.KIND_BATCH.selector,
            registry.KIND_SOLVENCY.selector
        ];
    }

    function _marginFunctions() internal view returns (bytes4[7] memory) {
        return [
            AccountMarginVerifier.attest.selector, // the only writer
            AccountMarginVerifier.verifyMargin.selector,
            AccountMarginVerifier.attestedHeadroom.selector,
            margin.registry.selector,
            margin.verifier.selector,
            margin.SNARK_SCALAR_FIELD.selector,
            margin.MARGIN_PUBLIC_INPUTS.selector
        ];
    }

    function _sameSet(bytes4[] memory found, bytes4[] memory expected, string memory what) internal pure {
        require(found.length == expected.length, string.concat(what, ": dispatcher has another function count"));
        for (uint256 i = 0; i < expected.length; ++i) {
            bool hit;
            for (uint256 j = 0; j < found.length; ++j) {
                if (found[j] == expected[i]) hit = true;
            }
            require(hit, string.concat(what, ": a function is missing from the dispatcher"));
        }
    }

    function _noForeignCode(bytes memory code, string memory what) internal pure {
        uint8[6] memory forbidden = [0xff, 0xf4, 0xf2, 0xf1, 0xf0, 0xf5]; // SELFDESTRUCT, DELEGATECALL,
        // CALLCODE, CALL, CREATE, CREATE2
        for (uint256 i = 0; i < forbidden.length; ++i) {
            require(!Bytecode.hasOpcode(code, forbidden[i]), string.concat(what, ": forbidden opcode"));
        }
        require(Bytecode.hasOpcode(code, 0xfa), string.concat(what, ": no STATICCALL"));
    }

    function _inCode(bytes memory code, address a) internal pure returns (bool) {
        return _inCode(code, abi.encodePacked(a));
    }

    function _inCode(bytes memory code, bytes memory word) internal pure returns (bool) {
        for (uint256 i = 0; i + word.length <= code.length; ++i) {
            bool same = true;
            for (uint256 j = 0; j < word.length && same; ++j) {
                same = code[i + j] == word[j];
            }
            if (same) return true;
        }
        return false;
    }

    function test_RegistryDispatcherHasNoSetter() public view {
        bytes4[30] memory fixed_ = _registryFunctions();
        bytes4[] memory expected = new bytes4[](fixed_.length);
        for (uint256 i = 0; i < fixed_.length; ++i) {
            expected[i] = fixed_[i];
        }
        _sameSet(Bytecode.dispatchedSelectors(address(registry).code), expected, "SolvencyRegistry");
    }

    function test_MarginDispatcherHasNoSetter() public view {
        bytes4[7] memory fixed_ = _marginFunctions();
        bytes4[] memory expected = new bytes4[](fixed_.length);
        for (uint256 i = 0; i < fixed_.length; ++i) {
            expected[i] = fixed_[i];
        }
        _sameSet(Bytecode.dispatchedSelectors(address(margin).code), expected, "AccountMarginVerifier");
    }

    function test_NoOpcodeCanReplaceOrDestroyTheCode() public view {
        _noForeignCode(address(registry).code, "SolvencyRegistry");
        _noForeignCode(address(margin).code, "AccountMarginVerifier");
    }

    function test_VerifiersAreImmutablesNotStorage() public view {
        bytes memory code = address(registry).code;
        require(_inCode(code, address(batchVerifier)), "batch verifier not in the code");
        require(_inCode(code, address(solvencyVerifier)), "solvency verifier not in the code");
        require(_inCode(code, PUBLISHER), "publisher not in the code");
        require(_inCode(address(margin).code, margin.verifier()), "margin verifier not in the code");
        require(_inCode(address(margin).code, address(registry)), "registry not in the margin code");
        // The registry's own storage: the packed counters (slot 0), the mappings and the asset
        // array's length (slots 1 to 6).
        for (uint256 slot = 0; slot < 8; ++slot) {
            bytes32 word = vm.load(address(registry), bytes32(slot));
            require(address(uint160(uint256(word))) != address(batchVerifier), "verifier in storage");
            require(address(uint160(uint256(word))) != address(solvencyVerifier), "verifier in storage");
        }
    }

    /// The domain is read from the chain, not kept: the runtime code has the CHAINID and ADDRESS
    /// it is computed from, and neither the code nor the registry's storage holds the domain
    /// word (for the chain id of deployment or any other).
    function testFuzz_DomainIsComputedNotKept(uint64 chainId) public {
        chainId = uint64(1 + chainId % type(uint64).max);
        bytes memory code = address(registry).code;
        require(Bytecode.hasOpcode(code, 0x46), "no CHAINID in the code");
        require(Bytecode.hasOpcode(code, 0x30), "no ADDRESS in the code");
        uint256[2] memory domains = [registry.domain(), 0];
        vm.chainId(chainId);
        domains[1] = registry.domain();
        require(domains[1] == _domainOf(address(registry)), "domain is not that of the chain id in force");
        for (uint256 i = 0; i < domains.length; ++i) {
            require(!_inCode(code, abi.encode(domains[i])), "domain in the code");
            // The registry's own storage: the packed counters (slot 0), the mappings and the asset
            // array's length (slots 1 to 6).
            for (uint256 slot = 0; slot < 8; ++slot) {
                require(uint256(vm.load(address(registry), bytes32(slot))) != domains[i], "domain in storage");
            }
        }
    }

    /// Random calldata under any selector, from anyone, never changes what the registry reads
    /// back as its verifiers (and a stranger's call never writes anything).
    function testFuzz_NoCallChangesTheVerifiers(address caller, bytes4 selector, bytes calldata data) public {
        bytes4[30] memory fns = _registryFunctions();
        // Half the time one of the registry's own selectors.
        if (uint32(selector) % 2 == 0) selector = fns[uint32(selector) % fns.length];
        vm.assume(caller != PUBLISHER);
        vm.record();
        vm.prank(caller);
        (bool ok,) = address(registry).call(abi.encodePacked(selector, data));
        (, bytes32[] memory writes) = vm.accesses(address(registry));
        require(writes.length == 0, "a stranger's call wrote storage");
        for (uint256 i = 0; i < WRITERS; ++i) {
            if (selector == fns[i]) require(!ok, "a stranger's write went through");
        }
        require(registry.batchVerifier() == address(batchVerifier), "batch verifier changed");
        require(registry.solvencyVerifier() == address(solvencyVerifier), "solvency verifier changed");
        require(registry.publisher() == PUBLISHER, "publisher changed");
        require(registry.domain() == _domainOf(address(registry)), "domain changed");
        require(keccak256(abi.encode(_configs())) == keccak256(abi.encode(_assets())), "asset configuration changed");
    }

    /// The asset configuration reads back as deployed; no function writes it (the dispatcher
    /// test) and no call changes it (the fuzz test above; RegistryInvariant.t.sol for the
    /// publisher's calls).
    function test_AssetConfigurationReadsBack() public view {
        require(keccak256(abi.encode(_configs())) == keccak256(abi.encode(_assets())), "asset configuration");
        (bool ok,) = address(registry).staticcall(abi.encodeCall(SolvencyRegistry.assetConfig, (N_ASSETS)));
        require(!ok, "an asset past nAssets");
    }

    function _configs() internal view returns (SolvencyRegistry.AssetConfig[] memory c) {
        c = new SolvencyRegistry.AssetConfig[](N_ASSETS);
        for (uint256 i = 0; i < N_ASSETS; ++i) {
            c[i] = registry.assetConfig(i);
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {CustodySignatures, IERC1271} from "../src/CustodySignatures.sol";
import {Vm} from "./utils/Vm.sol";

/// @dev Exposes the library; `address(this)` plays the registry.
contract CustodyHarness {
    function isValid(uint64 epoch, address custody, bytes memory sig) external view returns (bool) {
        return CustodySignatures.isValid(address(this), epoch, custody, sig);
    }

    function digest(uint64 epoch, address custody) external view returns (bytes32) {
        return CustodySignatures.digest(address(this), epoch, custody);
    }

    function digestFor(address registry, uint64 epoch, address custody) external view returns (bytes32) {
        return CustodySignatures.digest(registry, epoch, custody);
    }
}

/// @dev A 1-of-1 contract wallet answering ERC-1271 for its owner's signatures, or burning gas.
contract MockWallet is IERC1271 {
    address public immutable owner;
    bool public burns;

    constructor(address owner_) {
        owner = owner_;
    }

    function setBurns(bool b) external {
        burns = b;
    }

    function isValidSignature(bytes32 hash, bytes memory signature) external view returns (bytes4) {
        if (burns) {
            uint256 x;
            while (true) x++;
        }
        (bytes32 r, bytes32 s) = abi.decode(signature, (bytes32, bytes32));
        uint8 v = uint8(signature[64]);
        return ecrecover(hash, v, r, s) == owner ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }
}

/// @dev Answers every call with its own calldata, which starts with the ERC-1271 selector.
contract Echo {
    fallback(bytes calldata data) external returns (bytes memory) {
        return data;
    }
}

/// @dev Answers isValidSignature with the magic value and more bytes after it.
contract LongAnswer {
    fallback(bytes calldata) external returns (bytes memory) {
        return abi.encode(bytes32(bytes4(0x1626ba7e)), uint256(1));
    }
}

/// Custody ownership: a signature counts for its address, epoch, registry and chain only.
contract CustodySignaturesTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant KEY = 0xA11CE;
    uint256 internal constant OTHER_KEY = 0xB0B;

    CustodyHarness internal registry;
    CustodyHarness internal otherRegistry;
    address internal custody;

    function setUp() public {
        registry = new CustodyHarness();
        otherRegistry = new CustodyHarness();
        custody = vm.addr(KEY);
    }

    function _sign(uint256 key, bytes32 d) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, d);
        return abi.encodePacked(r, s, v);
    }

    /// The digest eth_account computes for the same typed data (prover/custody.py; the same
    /// vector is checked in tests/prover/test_custody.py), so that what the CLI has custody keys
    /// sign is what this contract checks.
    function test_DigestMatchesEthAccount() public {
        vm.chainId(31337);
        bytes32 expected = 0x1a9a71907b8ce45ffe3b9ac7bccd037349371c14bc9d4eee2617d3caa732c035;
        require(registry.digestFor(address(0xaa), 3, custody) == expected, "EIP-712 digest differs");
        require(custody == 0xe05fcC23807536bEe418f142D19fa0d21BB0cfF7, "key 0xA11CE's address");
    }

    function test_TheCustodysOwnSignatureCounts() public view {
        bytes memory sig = _sign(KEY, registry.digest(3, custody));
        require(registry.isValid(3, custody, sig), "a valid signature was refused");
    }

    function test_AForgedSignatureIsRefused() public view {
        bytes memory sig = _sign(KEY, registry.digest(3, custody));
        sig[10] ^= 0x01; // one bit of r
        require(!registry.isValid(3, custody, sig), "a forged signature counted");
        bytes memory junk = new bytes(65);
        junk[64] = bytes1(uint8(27));
        require(!registry.isValid(3, custody, junk), "zero bytes counted");
    }

    function test_ASignatureForAnotherEpochIsRefused() public view {
        bytes memory sig = _sign(KEY, registry.digest(2, custody));
        require(!registry.isValid(3, custody, sig), "epoch 2's signature counted for epoch 3");
    }

    function test_ASignatureForAnotherRegistryIsRefused() public view {
        bytes memory sig = _sign(KEY, otherRegistry.digest(3, custody));
        require(otherRegistry.isValid(3, custody, sig), "valid where it was made");
        require(!registry.isValid(3, custody, sig), "another registry's signature counted");
    }

    function test_ASignatureFromAnotherChainIsRefused() public {
        bytes memory sig = _sign(KEY, registry.digest(3, custody));
        vm.chainId(block.chainid + 1);
        require(!registry.isValid(3, custody, sig), "a signature counted on another chain");
    }

    function test_AnAddressTheExchangeDoesNotControlIsRefused() public view {
        // The exchange signs with its own key, naming an address it does not hold the key of.
        address stranger = vm.addr(OTHER_KEY);
        bytes memory sig = _sign(KEY, registry.digest(3, stranger));
        require(!registry.isValid(3, stranger, sig), "a stranger's address was claimed");
        require(!registry.isValid(3, address(0), sig), "the zero address was claimed");
    }

    function test_MalleatedAndMalformedSignaturesAreRefused() public view {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(KEY, registry.digest(3, custody));
        uint256 n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141;
        bytes memory twin = abi.encodePacked(r, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        require(!registry.isValid(3, custody, twin), "the high-s twin counted");
        require(!registry.isValid(3, custody, abi.encodePacked(r, s, v + 4)), "v outside 27/28");
        require(!registry.isValid(3, custody, abi.encodePacked(r, s)), "64 bytes");
        require(!registry.isValid(3, custody, abi.encodePacked(r, s, v, uint8(0))), "66 bytes");
    }

    function test_ContractsThatOnlyLookLikeWalletsAreRefused() public {
        Echo echo = new Echo();
        require(!registry.isValid(3, address(echo), hex"00"), "an echoing contract was claimed");
        LongAnswer long = new LongAnswer();
        require(!registry.isValid(3, address(long), hex"00"), "a 64-byte answer counted");
    }

    function test_AStarvedWalletCheckReverts() public {
        MockWallet wallet = new MockWallet(custody);
        bytes memory sig = _sign(KEY, registry.digest(3, address(wallet)));
        (bool ok, bytes memory err) = address(registry).call{gas: CustodySignatures.WALLET_GAS}(
            abi.encodeCall(CustodyHarness.isValid, (3, address(wallet), sig))
        );
        require(!ok && bytes4(err) == CustodySignatures.WalletGas.selector, "starved check must revert");
    }

    function test_AContractWalletAnswersThroughERC1271() public {
        MockWallet wallet = new MockWallet(custody);
        bytes32 d = registry.digest(3, address(wallet));
        require(registry.isValid(3, address(wallet), _sign(KEY, d)), "the owner's signature was refused");
        require(!registry.isValid(3, address(wallet), _sign(OTHER_KEY, d)), "a stranger signed for the wallet");
        bytes memory epoch2 = _sign(KEY, registry.digest(2, address(wallet)));
        require(!registry.isValid(3, address(wallet), epoch2), "another epoch's signature counted");
        wallet.setBurns(true);
        uint256 before = gasleft();
        require(!registry.isValid(3, address(wallet), _sign(KEY, d)), "a gas-burning wallet counted");
        require(before - gasleft() < 150_000, "a wallet spent the caller's gas");
    }
}

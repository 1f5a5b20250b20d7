// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {BoundedCall} from "./BoundedCall.sol";

/// @notice ERC-1271: how a contract wallet (a multisig, say) says a signature is its own.
interface IERC1271 {
    function isValidSignature(bytes32 hash, bytes memory signature) external view returns (bytes4 magicValue);
}

/// @title CustodySignatures
/// @notice Proof that the exchange controls a custody address for one epoch: the address signs
///         EIP-712 typed data naming the epoch, under a domain naming the registry and the
///         chain id, so that a signature counts for that epoch of that registry on that chain
///         only. Externally owned addresses sign with their key (ecrecover, low-s only);
///         contract wallets answer through ERC-1271.
library CustodySignatures {
    /// @notice EIP-712 domain: name, version, chainId, verifyingContract (the registry).
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant NAME_HASH = keccak256("zksolvency");
    bytes32 internal constant VERSION_HASH = keccak256("1");
    /// @notice The signed statement: `custody` holds reserves of the exchange for `epoch`.
    bytes32 internal constant OWNERSHIP_TYPEHASH = keccak256("CustodyOwnership(uint64 epoch,address custody)");

    bytes4 internal constant ERC1271_MAGIC = 0x1626ba7e;
    /// @dev secp256k1 order / 2: a signature with a higher s is the malleated twin of another.
    uint256 internal constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    /// @dev Gas a contract wallet may use to answer.
    uint256 internal constant WALLET_GAS = 100_000;
    uint256 internal constant WALLET_GAS_NEEDED = WALLET_GAS + WALLET_GAS / 63 + 10_000;

    error WalletGas(uint256 available, uint256 needed);

    /// @notice The EIP-712 domain separator of `registry` on this chain.
    function domainSeparator(address registry) internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, registry));
    }

    /// @notice The digest `custody` signs for `epoch` of `registry`.
    function digest(address registry, uint64 epoch, address custody) internal view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(OWNERSHIP_TYPEHASH, epoch, custody));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(registry), structHash));
    }

    /// @notice Whether `signature` is `custody`'s over `epoch` of `registry`.
    function isValid(address registry, uint64 epoch, address custody, bytes memory signature)
        internal
        view
        returns (bool)
    {
        if (custody == address(0)) return false;
        bytes32 d = digest(registry, epoch, custody);
        if (custody.code.length > 0) {
            // Starved of its allowance a valid wallet would read as invalid: refuse instead.
            if (gasleft() < WALLET_GAS_NEEDED) revert WalletGas(gasleft(), WALLET_GAS_NEEDED);
            // Exactly one word, the magic value left-aligned: a contract that echoes its
            // calldata (whose first bytes are this very selector) must not pass.
            (bool ok, uint256 size, bytes memory ret) = BoundedCall.staticcall(
                custody, abi.encodeCall(IERC1271.isValidSignature, (d, signature)), WALLET_GAS, 32
            );
            // `ret` is exactly 32 bytes long: the conversion reads all of it
            // forge-lint: disable-next-line(unsafe-typecast)
            return ok && size == 32 && bytes32(ret) == bytes32(ERC1271_MAGIC);
        }
        if (signature.length != 65) return false;
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(signature, 32))
            s := mload(add(signature, 64))
            v := byte(0, mload(add(signature, 96)))
        }
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) return false;
        address signer = ecrecover(d, v, r, s);
        return signer != address(0) && signer == custody;
    }
}

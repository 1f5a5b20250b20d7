// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @dev Reads solc code (runtime or creation): its opcodes (push data skipped, CBOR metadata
///      trailer removed) and the selectors its dispatcher compares the calldata against; and
///      rewrites opcodes, to run a contract's real code under conditions no EVM here can make.
library Bytecode {
    /// @dev End of the executable part: solc appends CBOR metadata and its 2-byte length.
    function codeEnd(bytes memory code) internal pure returns (uint256) {
        require(code.length > 2, "Bytecode: no code");
        uint256 meta = (uint256(uint8(code[code.length - 2])) << 8) | uint8(code[code.length - 1]);
        require(meta + 2 < code.length, "Bytecode: no metadata trailer");
        return code.length - meta - 2;
    }

    function _pushSize(uint8 op) private pure returns (uint256) {
        return op >= 0x60 && op <= 0x7f ? op - 0x5f : 0;
    }

    /// @dev Whether opcode `op` occurs as an instruction (not inside push data).
    function hasOpcode(bytes memory code, uint8 op) internal pure returns (bool) {
        uint256 end = codeEnd(code);
        for (uint256 i = 0; i < end; i += 1 + _pushSize(uint8(code[i]))) {
            if (uint8(code[i]) == op) return true;
        }
        return false;
    }

    /// @dev Rewrites every instruction `from` (never push data) into `to`, in place; returns how
    ///      many it rewrote.
    function replaceOpcode(bytes memory code, uint8 from, uint8 to) internal pure returns (uint256 n) {
        uint256 end = codeEnd(code);
        for (uint256 i = 0; i < end; i += 1 + _pushSize(uint8(code[i]))) {
            if (uint8(code[i]) == from) {
                code[i] = bytes1(to);
                ++n;
            }
        }
    }

    /// @dev Every `DUP1 PUSHn sel EQ PUSH2 dest` (n <= 4): how solc's dispatcher matches a
    ///      function selector.
    function dispatchedSelectors(bytes memory code) internal pure returns (bytes4[] memory out) {
        uint256 end = codeEnd(code);
        bytes4[] memory found = new bytes4[](end / 8 + 1);
        uint256 n;
        uint256 prev = type(uint256).max; // position of the previous instruction
        for (uint256 i = 0; i < end; i += 1 + _pushSize(uint8(code[i]))) {
            uint8 op = uint8(code[i]);
            uint256 size = _pushSize(op);
            if (
                size >= 1 && size <= 4 && prev != type(uint256).max && uint8(code[prev]) == 0x80
                    && i + size + 2 < end && uint8(code[i + size + 1]) == 0x14 && uint8(code[i + size + 2]) == 0x61
            ) {
                uint32 sel;
                for (uint256 j = 0; j < size; ++j) {
                    sel = (sel << 8) | uint8(code[i + 1 + j]);
                }
                found[n++] = bytes4(sel);
            }
            prev = i;
        }
        out = new bytes4[](n);
        for (uint256 j = 0; j < n; ++j) {
            out[j] = found[j];
        }
    }
}

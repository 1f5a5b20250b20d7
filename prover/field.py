"""The BN254 scalar field that circom, snarkjs and the Groth16 verifier work in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import overload

import numpy as np

# r: order of the BN254 (alt_bn128) G1 group, the prime circom calls `p`.
P = 21888242871839275222246405745257275088548364400416034343698204186575808495617


def fe(x: int) -> int:
    """Reduce an integer into the field, mapping negatives to p - |x| as circom does."""
    return x % P


def check_field(x: int, what: str = "value") -> int:
    """Reject values that are not canonical field elements (0 <= x < p)."""
    if not 0 <= x < P:
        raise ValueError(f"{what} is not a canonical field element: {x}")
    return x


def pack(values: Sequence[int], bits: int) -> list[int]:
    """Pack values of at most `bits` bits each, as many per field element as fit in 253 bits.

    Element k holds values[k*m + j] at bit offset j*bits, low value first. Injective only when
    every value really is below 2**bits, which the circuits range-check before packing.
    """
    per = per_element(bits)
    out: list[int] = []
    for start in range(0, len(values), per):
        acc = 0
        for j, v in enumerate(values[start : start + per]):
            if not 0 <= v < (1 << bits):
                raise ValueError(f"value {v} does not fit in {bits} bits")
            acc |= v << (j * bits)
        out.append(acc)
    return out


def pack_rows64(m: np.ndarray) -> list[list[int]]:
    """[pack(row, 64) for row in m] for a uint64 matrix, read through its bytes: a run of
    little-endian 64-bit values is the little-endian form of their packed element."""
    per = per_element(64)
    rows, cols = m.shape
    groups = -(-cols // per)
    padded = np.zeros((rows, groups * per), dtype="<u8")
    padded[:, :cols] = m
    raw, step = padded.tobytes(), 8 * per
    return [
        [
            int.from_bytes(raw[off : off + step], "little")
            for off in range(base, base + groups * step, step)
        ]
        for base in range(0, rows * groups * step, groups * step)
    ]


def per_element(bits: int) -> int:
    """How many `bits`-bit values fit in one field element without reaching p."""
    if not 1 <= bits <= 253:
        raise ValueError(f"cannot pack {bits}-bit values")
    return 253 // bits


def to_ints(xs: Iterable[int | str]) -> list[int]:
    """Parse decimal or 0x-hex strings (as snarkjs writes them) into ints."""
    return [int(x, 0) if isinstance(x, str) else int(x) for x in xs]


class FieldArray(Sequence[int]):
    """Field elements packed 32 bytes apiece (little-endian, canonical): a tree level or a
    list of commitments at 32 bytes per entry instead of the ~70 a Python int and its list slot
    take. The layout is the native Poseidon's input format, so a level of a binary tree can be
    hashed straight from its bytes (poseidon.hash_pairs)."""

    __slots__ = ("_buf",)

    def __init__(self, data: bytes | bytearray = b"") -> None:
        if len(data) % 32:
            raise ValueError("a FieldArray holds whole 32-byte elements")
        self._buf = bytes(data)

    @classmethod
    def of(cls, values: Iterable[int]) -> FieldArray:
        """Pack canonical field elements (0 <= x < p)."""
        out = bytearray()
        for x in values:
            if not 0 <= x < P:
                raise ValueError(f"not a canonical field element: {x}")
            out += x.to_bytes(32, "little")
        return cls(out)

    def tobytes(self) -> bytes:
        return self._buf

    def __len__(self) -> int:
        return len(self._buf) // 32

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> list[int]: ...

    def __getitem__(self, i: int | slice) -> int | list[int]:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            buf, frm = memoryview(self._buf), int.from_bytes
            return [frm(buf[32 * j : 32 * j + 32], "little") for j in range(start, stop, step)]
        n = len(self)
        if not -n <= i < n:
            raise IndexError("FieldArray index out of range")
        i %= n
        return int.from_bytes(self._buf[32 * i : 32 * i + 32], "little")

    def __add__(self, other: FieldArray) -> FieldArray:
        return FieldArray(self._buf + other._buf)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FieldArray):
            return self._buf == other._buf
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._buf)

"""The BN254 scalar field that circom, snarkjs and the Groth16 verifier work in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def per_element(bits: int) -> int:
    """How many `bits`-bit values fit in one field element without reaching p."""
    if not 1 <= bits <= 253:
        raise ValueError(f"cannot pack {bits}-bit values")
    return 253 // bits


def to_ints(xs: Iterable[int | str]) -> list[int]:
    """Parse decimal or 0x-hex strings (as snarkjs writes them) into ints."""
    return [int(x, 0) if isinstance(x, str) else int(x) for x in xs]

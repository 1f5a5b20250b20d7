"""Read circom's binary R1CS, witness (.wtns) and symbol (.sym) files, and check a witness.

Used to show that the circuits really constrain what they claim: edit one signal of a valid
witness, write it back, and both `failing_constraints` and `snarkjs wtns check` must reject it.

Both binary formats are iden3 "binfile" containers: 4-byte magic, u32 version, u32 section
count, then sections of (u32 type, u64 byte size, payload), little-endian throughout. Field
elements are stored in plain (not Montgomery) form, little-endian, in n8 bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul

__all__ = [
    "R1CS",
    "LinearCombination",
    "failing_constraints",
    "read_sym",
    "read_wtns",
    "write_wtns",
]

LinearCombination = dict[int, int]  # wire index -> coefficient (canonical, < prime)
Constraint = tuple[LinearCombination, LinearCombination, LinearCombination]  # A·B = C

_HEADER, _CONSTRAINTS, _WIRE2LABEL = 1, 2, 3


def _sections(data: bytes, magic: bytes, max_version: int) -> dict[int, list[tuple[int, int]]]:
    """Map section type -> [(payload offset, payload size)], checking the container framing."""
    if len(data) < 12 or data[:4] != magic:
        raise ValueError(f"not a {magic.decode()} file (bad magic)")
    version, n_sections = struct.unpack_from("<II", data, 4)
    if not 1 <= version <= max_version:
        raise ValueError(f"unsupported {magic.decode()} version {version}")
    out: dict[int, list[tuple[int, int]]] = {}
    pos = 12
    for _ in range(n_sections):
        if pos + 12 > len(data):
            raise ValueError("truncated section header")
        kind, size = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if pos + size > len(data):
            raise ValueError(f"section {kind} runs past the end of the file")
        out.setdefault(kind, []).append((pos, size))
        pos += size
    if pos != len(data):
        raise ValueError("trailing bytes after the last section")
    return out


def _unique(sections: dict[int, list[tuple[int, int]]], kind: int) -> tuple[int, int]:
    found = sections.get(kind, [])
    if len(found) != 1:
        raise ValueError(f"expected exactly one section of type {kind}, found {len(found)}")
    return found[0]


@dataclass(frozen=True)
class R1CS:
    """A circom constraint system. Wire 0 is the constant 1; then public outputs, public
    inputs, private inputs, then internal wires."""

    prime: int
    n8: int
    n_wires: int
    n_pub_out: int
    n_pub_in: int
    n_prv_in: int
    n_labels: int
    constraints: tuple[Constraint, ...]
    wire_to_label: tuple[int, ...] | None  # from the optional wire2label section

    @property
    def n_constraints(self) -> int:
        return len(self.constraints)

    @property
    def n_public(self) -> int:
        """Number of public signals, i.e. snarkjs public.json entries (outputs first)."""
        return self.n_pub_out + self.n_pub_in

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> R1CS:
        with open(path, "rb") as fh:
            return cls.from_bytes(fh.read())

    @classmethod
    def from_bytes(cls, data: bytes) -> R1CS:
        """Parse an .r1cs file (version 1); sections may come in any order."""
        sections = _sections(data, b"r1cs", 1)
        pos, size = _unique(sections, _HEADER)
        (n8,) = struct.unpack_from("<I", data, pos)
        if n8 == 0 or n8 % 8 or size != 4 + n8 + 28:
            raise ValueError(f"bad r1cs header (field size {n8}, section size {size})")
        prime = int.from_bytes(data[pos + 4 : pos + 4 + n8], "little")
        n_wires, n_pub_out, n_pub_in, n_prv_in, n_labels, n_constraints = struct.unpack_from(
            "<IIIIQI", data, pos + 4 + n8
        )
        # No check that 1 + outputs + inputs <= wires: circom merges an output that equals an
        # input into one wire, so a valid file can declare more signals than it has wires.

        pos, size = _unique(sections, _CONSTRAINTS)
        end = pos + size
        term = struct.Struct("<I")
        constraints: list[Constraint] = []
        for _ in range(n_constraints):
            lcs: list[LinearCombination] = []
            for _ in range(3):
                if pos + 4 > end:
                    raise ValueError("truncated constraints section")
                (n_terms,) = term.unpack_from(data, pos)
                pos += 4
                if pos + n_terms * (4 + n8) > end:
                    raise ValueError("truncated constraints section")
                lc: LinearCombination = {}
                for _ in range(n_terms):
                    (wire,) = term.unpack_from(data, pos)
                    coeff = int.from_bytes(data[pos + 4 : pos + 4 + n8], "little")
                    pos += 4 + n8
                    if wire >= n_wires or coeff >= prime or wire in lc:
                        raise ValueError(f"bad term (wire {wire}) in constraint {len(constraints)}")
                    lc[wire] = coeff
                lcs.append(lc)
            constraints.append((lcs[0], lcs[1], lcs[2]))
        if pos != end:
            raise ValueError("constraints section is longer than its constraints")

        wire_to_label = None
        if _WIRE2LABEL in sections:
            pos, size = _unique(sections, _WIRE2LABEL)
            if size != 8 * n_wires:
                raise ValueError("wire2label section size does not match the wire count")
            wire_to_label = struct.unpack_from(f"<{n_wires}Q", data, pos)
        return cls(
            prime=prime,
            n8=n8,
            n_wires=n_wires,
            n_pub_out=n_pub_out,
            n_pub_in=n_pub_in,
            n_prv_in=n_prv_in,
            n_labels=n_labels,
            constraints=tuple(constraints),
            wire_to_label=wire_to_label,
        )


def _n8(prime: int) -> int:
    """Bytes per element as snarkjs writes it: whole 64-bit limbs of (prime - 1)."""
    return ((prime - 1).bit_length() - 1) // 64 * 8 + 8


def read_wtns(path: str | os.PathLike[str]) -> list[int]:
    """Witness values from a .wtns file (versions 1 and 2 share the layout read here)."""
    with open(path, "rb") as fh:
        data = fh.read()
    sections = _sections(data, b"wtns", 2)
    pos, size = _unique(sections, 1)
    (n8,) = struct.unpack_from("<I", data, pos)
    if n8 == 0 or size != 4 + n8 + 4:
        raise ValueError(f"bad wtns header (field size {n8}, section size {size})")
    prime = int.from_bytes(data[pos + 4 : pos + 4 + n8], "little")
    (n_witness,) = struct.unpack_from("<I", data, pos + 4 + n8)
    pos, size = _unique(sections, 2)
    if size != n_witness * n8:
        raise ValueError(f"wtns data section holds {size} bytes, expected {n_witness} x {n8}")
    values = [int.from_bytes(data[o : o + n8], "little") for o in range(pos, pos + size, n8)]
    if any(v >= prime for v in values):
        raise ValueError("wtns holds a value that is not reduced modulo its prime")
    return values


def write_wtns(path: str | os.PathLike[str], witness: Sequence[int], prime: int) -> None:
    """Write a version-2 .wtns byte-for-byte as circom's witness generator and snarkjs do.

    Values must be canonical (0 <= v < prime): a tampering test that wants an out-of-range
    value should say so explicitly rather than have it silently reduced here.
    """
    n8 = _n8(prime)
    for i, v in enumerate(witness):
        if not 0 <= v < prime:
            raise ValueError(f"witness[{i}] is not a canonical field element")
    header = struct.pack("<I", n8) + prime.to_bytes(n8, "little") + struct.pack("<I", len(witness))
    body = b"".join(v.to_bytes(n8, "little") for v in witness)
    out = b"".join(
        (
            b"wtns",
            struct.pack("<II", 2, 2),
            struct.pack("<IQ", 1, len(header)),
            header,
            struct.pack("<IQ", 2, len(body)),
            body,
        )
    )
    with open(path, "wb") as fh:
        fh.write(out)


def failing_constraints(r1cs: R1CS, witness: Sequence[int], limit: int | None = None) -> list[int]:
    """Indices of constraints with <A,w>·<B,w> != <C,w> (mod prime), at most `limit` of them.

    Plain Python ints: each constraint's three dot products are summed unreduced and reduced
    once. On an 82,800-constraint circuit (80 Poseidon(2) + Num2Bits_strict) this takes ≈0.2 s.
    Vectorising was measured and does not pay: a 254-bit field only fits numpy object arrays, so
    each element is still a Python big-int operation; numpy object arrays took ≈0.23 s and
    `galois` GF(p) arrays ≈0.46 s for the same check, counting the flattening into arrays.
    """
    w = list(witness)
    if len(w) != r1cs.n_wires:
        raise ValueError(f"witness has {len(w)} values, the circuit has {r1cs.n_wires} wires")
    if w[0] != 1:
        raise ValueError("witness[0] must be 1 (the constant wire)")
    p = r1cs.prime
    for i, v in enumerate(w):
        if not 0 <= v < p:
            raise ValueError(f"witness[{i}] is not a canonical field element")
    get = w.__getitem__
    bad: list[int] = []
    for i, (a, b, c) in enumerate(r1cs.constraints):
        av = sum(map(mul, a.values(), map(get, a)))
        bv = sum(map(mul, b.values(), map(get, b)))
        cv = sum(map(mul, c.values(), map(get, c)))
        if (av * bv - cv) % p:
            bad.append(i)
            if limit is not None and len(bad) >= limit:
                break
    return bad


def read_sym(path: str | os.PathLike[str]) -> dict[str, int]:
    """Signal name -> witness index from a circom .sym file.

    Lines are `labelIdx,witnessIdx,componentIdx,name`; a witness index of -1 marks a signal
    the optimiser removed (it has no wire), so it is left out.
    """
    out: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split(",", 3)  # names never contain commas, but stay safe
            if len(parts) != 4:
                raise ValueError(f"{path}:{n}: expected 4 comma-separated fields")
            wire = int(parts[1])
            if wire >= 0:
                out[parts[3]] = wire
    return out

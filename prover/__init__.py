"""zksolvency prover: snapshot -> Poseidon tree -> witnesses -> Groth16 proofs -> epoch bundle."""

__version__ = "0.1.0"

"""Malformed inputs through `zksolvency prove`: exit code 2, the located message, nothing written.

One example of each class of malformed input in tests/prover/test_fuzz_inputs.py (which holds
the generators and says where each error must point) goes through the command line with the
tiny circuits' options. None needs keys or circuits: every input is checked before they are.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zksolvency.cli.main import main  # at import: it raises the recursion limit, once
from zksolvency.prover.snapshot import SnapshotError

TINY = (
    "--batch-levels", "1", "--tree-depth", "4", "--assets", "2",
    "--instrument-slots", "2", "--scenarios", "8", "--tiers", "2",
)  # fmt: skip


def _catalogue() -> ModuleType:
    """tests/prover/test_fuzz_inputs.py, imported by path (test folders are not packages)."""
    name = "fuzz_inputs_catalogue"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "prover" / "test_fuzz_inputs.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules[name]


FUZZ = _catalogue()


def prove_args(folder: Path, names: object, out: Path) -> list[str]:
    n = names  # a test_fuzz_inputs.Names
    args = ["prove", str(folder / n.snapshot)]  # type: ignore[attr-defined]
    if n.assets is not None:  # type: ignore[attr-defined]
        args += ["--assets-file", str(folder / n.assets)]  # type: ignore[attr-defined]
    for option, name in (
        ("--reserves", n.reserves),  # type: ignore[attr-defined]
        ("--instruments", n.instruments),  # type: ignore[attr-defined]
        ("--market", n.market),  # type: ignore[attr-defined]
        ("--positions", n.positions),  # type: ignore[attr-defined]
        ("--haircuts", n.haircuts),  # type: ignore[attr-defined]
    ):
        args += [option, str(folder / name)]
    return [*args, "--epoch", "1", "--out", str(out), *TINY]


@pytest.mark.parametrize("name", list(FUZZ.CLASSES))
@settings(
    max_examples=1,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_prove_refuses_malformed_input(name: str, data: st.DataObject) -> None:
    case = data.draw(FUZZ.CLASSES[name], label=name)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs"
        inputs.mkdir()
        FUZZ.write_case(case, inputs)
        # The library refuses the files first, where the catalogue says: on input that it let
        # through, the command would go on to build circuits and prove.
        with pytest.raises(SnapshotError) as info:
            FUZZ.load_all(inputs, case.names)
        FUZZ.check_error(info.value, inputs, case)

        out = Path(tmp) / "epoch"
        result = CliRunner().invoke(main, prove_args(inputs, case.names, out))
        assert result.exit_code == 2, f"{FUZZ.describe(case)}\n{result.output}"
        assert f"error: {info.value}" in result.stderr, f"{FUZZ.describe(case)}\n{result.stderr}"
        assert not out.exists(), "bad input must not create the output directory"
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["inputs"]
        assert {p.name: p.read_bytes() for p in inputs.iterdir()} == case.files

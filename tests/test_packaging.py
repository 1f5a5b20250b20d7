"""The wheel installs everything under one namespace and carries its data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from zksolvency.prover.paths import repo_root


def test_wheel_claims_only_the_zksolvency_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(repo_root()),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("zksolvency-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"zksolvency", next(t for t in tops if t.endswith(".dist-info"))}
    for needed in (
        "zksolvency/prover/data/poseidon_constants_opt.json.gz",
        "zksolvency/prover/data/SolvencyRegistry.abi.json",
        "zksolvency/prover/data/AccountMarginVerifier.abi.json",
        "zksolvency/prover/js/groth16.mjs",
        # the local web verifier (`zksolvency serve`) serves these from the installed package
        "zksolvency/prover/web/index.html",
        "zksolvency/prover/web/app.js",
        "zksolvency/prover/web/style.css",
        "zksolvency/cli/main.py",
    ):
        assert needed in names, needed

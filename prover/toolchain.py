"""Running the node toolchain (circom2, snarkjs, helper scripts) with useful failures."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from .paths import repo_root


class ToolError(RuntimeError):
    """An external tool failed; the message carries its command and the tail of its output."""

    def __init__(self, cmd: Sequence[str], code: int, output: str) -> None:
        tail = "\n".join(output.strip().splitlines()[-25:])
        super().__init__(f"`{' '.join(map(str, cmd))}` exited with {code}:\n{tail}")
        self.cmd = list(cmd)
        self.code = code
        self.output = output


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    timeout: float | None = None,
    stdin: str | None = None,
) -> str:
    """Run a command, returning its combined output; raise ToolError on a non-zero exit.

    With `on_line`, output is streamed line by line (for progress on long steps). `stdin` is
    fed to the process (secrets go this way rather than on the command line, where `ps` shows
    them); it is only supported without `on_line`.
    """
    args = [str(c) for c in cmd]
    workdir = cwd or repo_root()
    if on_line is None:
        done = subprocess.run(
            args,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=stdin,
        )
        out = done.stdout + done.stderr
        if done.returncode != 0:
            raise ToolError(args, done.returncode, out)
        return out
    if stdin is not None:
        raise ValueError("stdin cannot be combined with on_line")
    lines: list[str] = []
    with subprocess.Popen(
        args,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))
        code = proc.wait(timeout=timeout)
    out = "".join(lines)
    if code != 0:
        raise ToolError(args, code, out)
    return out

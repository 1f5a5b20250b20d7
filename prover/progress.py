"""How long-running stages report progress, without tying the prover to a terminal library."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Protocol

Advance = Callable[[int], None]


class Reporter(Protocol):
    def info(self, msg: str) -> None: ...

    def warn(self, msg: str) -> None: ...

    def task(self, label: str, total: int) -> contextlib.AbstractContextManager[Advance]: ...


class NullReporter:
    """Silent: for library use and tests."""

    def info(self, msg: str) -> None:
        pass

    def warn(self, msg: str) -> None:
        pass

    @contextlib.contextmanager
    def task(self, label: str, total: int) -> Iterator[Advance]:
        yield lambda n: None


class StderrReporter:
    """Plain line-based progress on stderr: works in CI logs and pipes."""

    def info(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def warn(self, msg: str) -> None:
        print(f"WARNING: {msg}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def task(self, label: str, total: int) -> Iterator[Advance]:
        start = time.monotonic()
        done = 0
        shown = -1.0  # when the last line was printed

        def advance(n: int) -> None:
            nonlocal done, shown
            done += n
            now = time.monotonic()
            # A line a second at most (and the last one): a log, not a flood, on fast steps.
            if now - shown < 1.0 and done < total:
                return
            shown = now
            elapsed = now - start
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (total - done) / rate if rate > 0 else 0.0
            print(
                f"  {label}: {done}/{total} ({rate:.2f}/s, eta {eta:.0f}s)",
                file=sys.stderr,
                flush=True,
            )

        yield advance
        print(f"  {label}: done in {time.monotonic() - start:.1f}s", file=sys.stderr, flush=True)

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
        shown, tenth = -1.0, -1  # when the last line was printed, and at which tenth

        def advance(n: int) -> None:
            nonlocal done, shown, tenth
            done += n
            now = time.monotonic()
            # A line per tenth of the way or per second, whichever comes first, and the last:
            # every step of a short task, but no flood from a fast long one.
            at = done * 10 // max(total, 1)
            if now - shown < 1.0 and at == tenth and done < total:
                return
            shown, tenth = now, at
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

"""Stopping a long run at a safe point: Ctrl-C (SIGINT) or a scheduler's SIGTERM.

Python raises KeyboardInterrupt wherever the signal lands: inside a garbage-collection callback
of XLA it is swallowed ("Exception ignored in _xla_gc_callback") and the run goes on, and an
exit while compiled computations are still in flight can crash the interpreter. So inside
`stop_at_safe_points()` the first signal only records the request; the host loops of long stages
(sample batches, walk chunks, methods, figures) call `check()` between steps, which raises
`StopRequested` there, after the loop has kept what it finished. A second Ctrl-C stops at once.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any, Iterator

_requested: list[str] = []


class StopRequested(KeyboardInterrupt):
    """A stop asked by a signal, raised at a safe point. `signal_name`: SIGINT or SIGTERM."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


def requested() -> bool:
    return bool(_requested)


def check() -> None:
    """Raises StopRequested if a stop was asked since `stop_at_safe_points` began."""
    if _requested:
        raise StopRequested(_requested[0])


def _handler(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    if _requested and signum == signal.SIGINT:
        raise KeyboardInterrupt  # the second Ctrl-C: now
    if not _requested:
        _requested.append(name)
        print(f"\n{name}: stopping after the current step (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_at_safe_points() -> Iterator[None]:
    """SIGINT and SIGTERM request a stop (`check`) while inside; handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _requested.clear()
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _requested.clear()

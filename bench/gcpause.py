"""Pausing the cycle collector around start-up imports.

Imports allocate a few hundred thousand objects and free almost none, so
the collections they trigger find nothing: ~60 ms of the time from ``bench
run`` to the first request on a 2-core machine (``benchmarks/startup.py``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection inside the block; afterwards the collector is as it was."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()

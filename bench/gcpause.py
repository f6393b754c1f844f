"""Keeping the cycle collector off the critical paths: start-up imports, and the parent during a run.

Imports allocate a few hundred thousand objects and free almost none, so
the collections they trigger find nothing: ~60 ms of the time from ``bench
run`` to the first request on a 2-core machine (``benchmarks/startup.py``).
During a run, a full collection in the parent walks every object of the
command and the preloaded transport (~43 k objects, ~19 ms with aiohttp):
a burst on the core a worker shares with it. Frozen, those are skipped.
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


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Objects alive on entry are left out of every collection inside the block, then put back.

    If something had frozen objects before (``gc.get_freeze_count()``), the
    block does nothing: unfreezing at its end would release theirs too, and
    not unfreezing would keep ours (the run's cyclic histograms) forever.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()

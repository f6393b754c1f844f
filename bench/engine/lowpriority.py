"""Run the parent's collecting loop on a thread of lower CPU priority, so it yields a shared core to the workers.

With as many workers as cores, the parent shares a core with a worker. Every
interval it merges reports, closes seconds and renders the live view: a burst
of a millisecond or more. At equal priority the kernel runs a freshly woken
parent ahead of the worker that has been busy, and the worker's sends and
reads wait for the burst to end: that shows up in the worker's tail latency.
A niced thread gives the core back sooner, and still gets ~10 % of a fully
busy core, far more than the aggregator needs (0.5-1 % of a core at 60,000
requests a second). With many more busy processes than cores it gets less,
and the live view and abort checks lag accordingly.

Linux keeps niceness per thread, so only this thread is lowered. The calling
thread, which forks the workers of later runs, keeps its priority (children
inherit the niceness of the thread that forks them), and nothing has to be
restored: an unprivileged process cannot lower a niceness it has raised.
What the thread starts (e.g. a subprocess from a progress callback) inherits
its niceness and its blocked SIGINT / SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable, TypeVar

NICE_STEP = 10
MAX_NICE = 19
BLOCKED_SIGNALS = {signal.SIGINT, signal.SIGTERM}

T = TypeVar("T")


def call_at_low_priority(fn: Callable[..., T], *args, cancel: Callable[[], None] | None = None) -> T:
    """``fn(*args)`` on a new thread niced by NICE_STEP (Linux only; elsewhere as is); returns or raises what it did.

    The new thread blocks SIGINT and SIGTERM, so they go to another thread,
    in practice the main one, which runs Python's signal handlers. If waiting
    here is interrupted by an exception, ``cancel()`` asks ``fn`` to return
    soon, and the thread is waited for (bounded) before the exception goes on.
    """
    outcome: dict[str, object] = {}
    # Not Thread.join: an exception raised in join's wait (by a signal handler) marks a thread
    # that is still running as stopped (CPython's bpo-45274 clean-up), and later joins return at once.
    finished = threading.Event()

    def body() -> None:
        try:
            lower_this_thread()
            if hasattr(signal, "pthread_sigmask"):
                signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED_SIGNALS)
            outcome["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
            outcome["error"] = exc
        finally:
            finished.set()

    thread = threading.Thread(target=body, name="bench-collector", daemon=True)
    thread.start()
    try:
        while not finished.wait(0.25):  # a signal interrupts the wait, and its handler runs here
            pass
    except BaseException:
        if cancel is not None:
            cancel()
        finished.wait(10.0)
        raise
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def lower_this_thread() -> None:
    """Raise the calling thread's niceness by NICE_STEP (capped at 19); silently a no-op where that is not per thread."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere setpriority(PRIO_PROCESS) reaches the whole process, and its future children
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, tid) + NICE_STEP))
    except OSError:
        pass  # a sandbox may forbid it; the run is the same, only less polite

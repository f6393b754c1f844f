"""Run the parent's collecting loop on a thread of lower CPU priority, so it yields a shared core to the workers.

With as many workers as cores, the parent shares a core with a worker. Every
interval it merges reports, closes seconds and renders the live view: a burst
of a millisecond or more. At equal priority the kernel runs a freshly woken
parent ahead of the worker that has been busy, and the worker's sends and
reads wait for the burst to end: that shows up in the worker's tail latency.
A niced thread is preempted as soon as the worker wants the core, and still
gets ~10 % of a fully busy core, far more than the aggregator needs.

Linux keeps niceness per thread, so only this thread is lowered. The calling
thread, which forks the workers of later runs, keeps its priority (children
inherit the niceness of the thread that forks them), and nothing has to be
restored: an unprivileged process cannot lower a niceness it has raised.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable, TypeVar

NICE_STEP = 10
MAX_NICE = 19

T = TypeVar("T")


def call_at_low_priority(fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` on a new thread niced by NICE_STEP (Linux only; elsewhere as is); returns or raises what it did.

    The new thread blocks SIGINT and SIGTERM, so the kernel hands them to the
    calling thread, where Python runs signal handlers (in the main thread).
    """
    outcome: dict[str, object] = {}

    def body() -> None:
        lower_this_thread()
        if hasattr(signal, "pthread_sigmask"):
            # Ctrl-C and SIGTERM go to the calling thread, which runs Python's handlers at once
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
            outcome["error"] = exc

    thread = threading.Thread(target=body, name="bench-collector", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.25)  # a signal interrupts the wait, and its handler runs here
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

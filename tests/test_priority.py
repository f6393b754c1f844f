"""The parent collects on a niced thread with its heap frozen, so a worker sharing its core is not held up by its bursts.

Linux keeps niceness per thread: the collecting thread is lowered, while the
thread that forks (the workers of this and later runs, the mock) keeps its
priority. Real runs: worker processes and the bundled mock on 127.0.0.1.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from pathlib import Path

import pytest
import yaml

import bench
import procs
from procs import niceness
from bench.engine.lowpriority import MAX_NICE, NICE_STEP

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")


def children() -> list[int]:
    return procs.children(os.getpid())


def collectors_left() -> list[threading.Thread]:
    """Collecting threads still alive after a moment (one that has just set its result may be finishing)."""
    left = [t for t in threading.enumerate() if t.name == "bench-collector"]
    for thread in left:
        thread.join(2.0)
    return [t for t in left if t.is_alive()]


def run_profile(tmp_path: Path, on_progress) -> bench.RunResult:
    path = tmp_path / "profile.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mock": {"latency": {"model": "fixed", "delay": "2ms"}},
                "load": {"concurrency": 4, "duration": "1.2s", "workers": 2},
            }
        )
    )
    return bench.run(bench.load_profile(path), on_progress=on_progress)


def test_the_collector_runs_niced_and_frozen_while_the_workers_and_the_caller_keep_their_priority(tmp_path: Path) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    freeze_is_ours = gc.get_freeze_count() == 0  # else someone froze objects before, and the run leaves that alone
    before = set(children())
    seen: list[tuple[bool, int, list[int]]] = []
    frozen: list[int] = []

    def on_progress(snapshot) -> None:
        others = [n for n in (niceness(pid) for pid in set(children()) - before) if n is not None]  # (None: just exited)
        here = niceness(f"self/task/{threading.get_native_id()}")
        seen.append((threading.current_thread() is threading.main_thread(), here, others))
        frozen.append(gc.get_freeze_count())

    for _ in range(2):  # the second run's workers are forked after the first run's collector was lowered
        result = run_profile(tmp_path, on_progress)
        assert result.summary["requests"]["ok"] > 0
        on_main, collector, others = seen[1]
        assert not on_main
        if collector == base and base < MAX_NICE:
            pytest.skip("setpriority on a thread has no effect here (a sandbox?)")
        assert collector == min(MAX_NICE, base + NICE_STEP)
        assert len(others) >= 3 and set(others) == {base}  # two workers and the mock
        assert os.getpriority(os.PRIO_PROCESS, 0) == base
        # the heap as it was when the run began is out of the parent's collections while it runs, and back after
        if freeze_is_ours:
            assert min(frozen) > 1000 and gc.get_freeze_count() == 0
        seen.clear()
        frozen.clear()


def test_an_error_in_the_collector_reaches_the_caller_and_nothing_is_left_running(tmp_path: Path) -> None:
    def on_progress(snapshot) -> None:
        raise LookupError("the progress callback failed")

    before = set(children())
    with pytest.raises(LookupError, match="the progress callback failed"):
        run_profile(tmp_path, on_progress)
    assert set(children()) <= before  # the workers and the mock are gone
    assert not collectors_left()


def test_an_exception_in_the_waiting_caller_stops_the_collector_and_the_workers(tmp_path: Path) -> None:
    # A signal handler of the caller's own raises while bench waits for the collecting thread:
    # the collector is told to stop at once, the workers are killed, and the exception goes on.
    import signal
    import time

    def alarm(signum, frame):
        raise TimeoutError("the caller's own deadline")

    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump({"mock": {"latency": {"model": "fixed", "delay": "2ms"}}, "load": {"concurrency": 4, "duration": "20s", "workers": 2}}))
    before = set(children())
    previous = signal.signal(signal.SIGALRM, alarm)
    started = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.5)
        with pytest.raises(TimeoutError, match="own deadline"):
            bench.run(bench.load_profile(path))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 10  # not the 20 s the profile asked for
    assert set(children()) <= before
    assert not collectors_left()

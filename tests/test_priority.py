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
from bench.engine.lowpriority import MAX_NICE, NICE_STEP

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")


def niceness(stat_path: str) -> int:
    # /proc/.../stat: "pid (comm) state ..." with nice the 19th field; comm may hold spaces, so split after ")"
    return int(Path(stat_path).read_text().rsplit(")", 1)[1].split()[16])


def children() -> list[int]:
    return [int(pid) for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()]


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
    seen: list[tuple[bool, int, list[int]]] = []
    frozen: list[int] = []

    def on_progress(snapshot) -> None:
        here = f"/proc/self/task/{threading.get_native_id()}/stat"
        others = []
        for pid in children():
            try:
                others.append(niceness(f"/proc/{pid}/stat"))
            except OSError:
                pass  # a worker that has just exited
        seen.append((threading.current_thread() is threading.main_thread(), niceness(here), others))
        frozen.append(gc.get_freeze_count())

    for _ in range(2):  # the second run's workers are forked after the first run's collector was lowered
        result = run_profile(tmp_path, on_progress)
        assert result.summary["requests"]["ok"] > 0
        on_main, collector, others = seen[1]
        assert not on_main
        assert collector == min(MAX_NICE, base + NICE_STEP)
        assert len(others) >= 3 and set(others) == {base}  # two workers and the mock
        assert os.getpriority(os.PRIO_PROCESS, 0) == base
        # the heap as it was when the run began is out of the parent's collections while it runs, and back after
        assert min(frozen) > 1000 and gc.get_freeze_count() == 0
        seen.clear()
        frozen.clear()


def test_an_error_in_the_collector_reaches_the_caller_and_nothing_is_left_running(tmp_path: Path) -> None:
    def on_progress(snapshot) -> None:
        raise LookupError("the progress callback failed")

    with pytest.raises(LookupError, match="the progress callback failed"):
        run_profile(tmp_path, on_progress)
    assert children() == []

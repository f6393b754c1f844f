"""What one live-view Snapshot costs the parent: CPU time of ``Aggregator.snapshot()`` during real runs.

Runs each profile (real workers against the bundled mock, its JSON report to a temporary folder)
with a progress callback, times every ``snapshot()`` call with the calling
thread's CPU clock, and prints the count, median, p95 and max in µs, and the
share of the parent's aggregation thread they took.

    python benchmarks/snapshot_cost.py [profiles/open-loop.yaml profiles/openai-chat.yaml ...]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import machine_line  # noqa: E402

import bench  # noqa: E402
from bench.engine.results import aggregate  # noqa: E402

DEFAULT = ("profiles/open-loop.yaml", "profiles/ramp.yaml", "profiles/openai-chat.yaml", "profiles/sla.yaml")


def measure(path: str) -> None:
    costs: list[int] = []
    original = aggregate.Aggregator.snapshot

    def timed(self):
        start = time.thread_time_ns()
        snap = original(self)
        costs.append(time.thread_time_ns() - start)
        return snap

    aggregate.Aggregator.snapshot = timed  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-snapshot-cost-") as tmp:
            profile = bench.load_profile(ROOT / path, {"json": str(Path(tmp) / "report.json")})
            wall = time.monotonic()
            result = bench.run(profile, on_progress=lambda snap: None)
            wall = time.monotonic() - wall
    finally:
        aggregate.Aggregator.snapshot = original  # type: ignore[method-assign]
    us = sorted(c / 1000 for c in costs)
    p95 = us[min(len(us) - 1, int(0.95 * len(us)))]
    print(
        f"{path}: {result.summary['requests']['sent']} requests in {wall:.1f} s, {len(us)} snapshots: "
        f"median {statistics.median(us):.0f} µs, p95 {p95:.0f} µs, max {us[-1]:.0f} µs, "
        f"total {sum(us) / 1000:.1f} ms ({sum(us) / 1e4 / wall:.3f} % of one core)"
    )


def main() -> None:
    print(machine_line())
    for path in sys.argv[1:] or DEFAULT:
        measure(path)


if __name__ == "__main__":
    main()

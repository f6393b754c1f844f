"""The JSON report and the per-request CSV: what a run leaves on disk.

The report is versioned (``schema_version``) and carries the full HdrHistograms
in their standard encoded form, so later tools can merge and compare runs
exactly instead of working from rounded summaries.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Iterable

import orjson

import bench
from bench.engine.results.gate import Verdict
from bench.engine.plan.profile import CLOSED_LOOP, Profile
from bench.engine.workers.worker import CSV_HEADER

SCHEMA_VERSION = 1


def latency_meaning(profile: Profile) -> str:
    """What the run's ``latency`` distribution measures, in words for the report and the tables."""
    if profile.conversation:
        return "turn latency: from when each turn was due (its conversation's start, or the previous turn's end) to the last response byte"
    if profile.session:
        return "step latency: from when each step was due (its session's start, or the previous step's end, plus its think time) to the last response byte"
    if profile.load.model == CLOSED_LOOP:
        return "service time: from the actual send to the last response byte (closed loop)"
    return "response time: from the intended send time to the last response byte (open loop, coordinated-omission safe)"


def build_report(
    profile: Profile,
    *,
    status: str,
    messages: Iterable[str],
    started_at: str,
    load_started_at: str | None,
    ended_at: str,
    target_url: str,
    summary: dict[str, Any],
    verdict: Verdict,
    worker_pids: list[int | None],
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "bench_version": bench.__version__,
        "name": profile.name,
        "profile_path": profile.source,
        "profile": profile.resolved,
        "target_url": target_url,
        "started_at": started_at,
        "load_started_at": load_started_at,
        "ended_at": ended_at,
        "status": status,
        "complete": status == "completed",
        "messages": list(messages),
        "load_model": profile.load.model,
        "worker_pids": worker_pids,
        "latency_meaning": latency_meaning(profile),
        **summary,
        "trusted": summary.get("trust", {}).get("trusted", True),
        "sla": {
            "passed": verdict.passed and status in ("completed",),
            "error_aware": profile.sla_options.error_aware,
            "min_samples": profile.sla_options.min_samples,
            "checks": [c.as_dict() for c in verdict.checks],
        },
    }


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(json_safe(report), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def json_safe(value: Any) -> Any:
    """JSON has no infinity: error-aware percentiles that are infinite are written as the string "inf"."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def merge_csv_parts(path: Path, parts: list[Path]) -> None:
    """Concatenate the workers' CSV part files under one header, then delete them."""
    with open(path, "w", encoding="ascii") as out:
        out.write(CSV_HEADER)
        for part in parts:
            if part.exists():
                with open(part, encoding="ascii") as src:
                    shutil.copyfileobj(src, out)
                part.unlink()

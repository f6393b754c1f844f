"""Run a capacity search: one probe (a whole ``bench run``) per load level, until the plan knows the answer.

Each probe is the profile at one level (``--over concurrency``: users, a
closed loop; ``--over rate``: arrivals per second, an open loop), with its
own warm-up and its duration or request count, judged by the profile's whole
SLA. Probes run with ``sla.fail_fast``, so a probe that can no longer pass
ends at once and a search costs little more than the probes near the answer.
The bundled mock (a profile without a target URL) is started once for the
whole search. A probe within noise is measured again twice as long; the
search stops without an answer when the generator, not the target, was the
bottleneck, when no request got an answer, on Ctrl-C, or when the budget is
spent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import bench
from bench.engine.errors import ProfileError, RunError
from bench.engine.plan.profile import Output, Profile, load_profile
from bench.engine.results.report import json_safe
from bench.engine.runner import RunResult, run
from bench.search.judge import LIMITED, STOPPED, UNMEASURED, ProbeVerdict, judge
from bench.search.strategy import UNSURE, Plan


@dataclass
class Probe:
    """One measured level: its verdict and its full run report (histograms included, for compare and report)."""

    level: float
    outcome: str
    why: str
    result: RunResult

    @property
    def summary(self) -> dict[str, Any]:
        return self.result.summary

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "outcome": self.outcome, "why": self.why, "report": json_safe(self.result.report)}


@dataclass
class SearchResult:
    """The answer: ``capacity`` is the highest passing level (None: not even the lowest passed, or no answer)."""

    over: str
    plan: Plan
    probes: list[Probe] = field(default_factory=list)
    stopped: str | None = None  # why the search ended without an answer it trusts: LIMITED, UNMEASURED, STOPPED, "budget"
    require: float | None = None

    @property
    def capacity(self) -> float | None:
        return self.plan.bracket()[0]

    @property
    def first_failing(self) -> float | None:
        return self.plan.bracket()[1]

    def probe_at(self, level: float | None) -> Probe | None:
        found = [p for p in self.probes if p.level == level]
        return found[-1] if found else None

    @property
    def measured(self) -> bool:
        """False when the search ended on something that says nothing about the target."""
        return self.stopped not in (LIMITED, UNMEASURED)

    def as_dict(self) -> dict[str, Any]:
        best = self.probe_at(self.capacity)
        return {
            "over": self.over,
            "unit": "users" if self.over == "concurrency" else "requests/s",
            "min": self.plan.low,
            "max": self.plan.high,
            "tolerance": self.plan.tolerance,
            "capacity": self.capacity,
            "capacity_rps": best.summary.get("rps") if best else None,
            "first_failing": self.first_failing,
            "indeterminate": sorted(level for level, outcome in self.plan.results.items() if outcome == UNSURE),
            "stopped": self.stopped,
            "require": self.require,
            "probes": [p.as_dict() for p in self.probes],
        }


def search(
    path: str | Path,
    over: str,
    low: float,
    high: float,
    *,
    overrides: Mapping[str, Any] | None = None,
    scenario: str | None = None,
    tolerance: float = 0.1,
    budget_s: float | None = None,
    require: float | None = None,
    on_probe: Callable[[int, float, Profile], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    on_verdict: Callable[[Probe], None] | None = None,
) -> SearchResult:
    """Search the profile at ``path`` for the most load (``over``: concurrency or rate) that meets its SLA.

    ``on_probe(n, level, profile)`` is called before each probe, ``on_progress``
    with its snapshots (as ``bench.run``), ``on_verdict`` after it.

    Raises:
        ProfileError: the profile, an override or a level does not load (before anything runs).
        RunError: the mock server could not start.
    """
    overrides = dict(overrides or {})
    base = load_profile(path, overrides, scenario=scenario)  # fails before anything starts
    if not base.sla:
        raise ProfileError(str(path), "sla", "a capacity search needs SLA criteria to judge each level by")
    if base.load.replay is not None:
        raise ProfileError(str(path), "load.replay", "a replayed trace sets its own load; a search grows users or a rate: search a profile without replay")
    if base.output.metrics_port == 0:  # one port for every probe, so one scrape target follows the whole search
        overrides["metrics_port"] = f"{base.output.metrics_host}:{_free_port(base.output.metrics_host)}"
    plan = Plan(over, low, high, tolerance)
    result = SearchResult(over, plan, require=require)
    started = time.monotonic()
    with _served(base) as url, _interruptible(result):
        number = 0
        while (level := plan.next_level()) is not None:
            if budget_s is not None and time.monotonic() - started > budget_s:
                result.stopped = "budget"
                break
            probe = None
            for longer in (1, 2):  # a verdict within noise is measured once more, twice as long
                number += 1
                profile = _probe_profile(path, overrides, scenario, base, over, level, url, longer)
                if on_probe is not None:
                    on_probe(number, level, profile)
                outcome = _run_probe(profile, level, on_progress)
                probe = outcome
                result.probes.append(probe)
                if on_verdict is not None:
                    on_verdict(probe)
                if probe.outcome != UNSURE:
                    break
            assert probe is not None
            if probe.outcome in (LIMITED, UNMEASURED, STOPPED):
                result.stopped = probe.outcome
                break
            plan.record(level, probe.outcome)
    return result


@contextlib.contextmanager
def _interruptible(result: SearchResult) -> Iterator[None]:
    """A Ctrl-C between probes ends the search like one during a probe: stopped, with what was measured."""
    try:
        yield
    except KeyboardInterrupt:
        result.stopped = STOPPED


def _run_probe(profile: Profile, level: float, on_progress) -> Probe:
    run_result = run(profile, on_progress=on_progress)
    verdict: ProbeVerdict = judge(run_result.status, run_result.verdict, run_result.report)
    return Probe(level, verdict.outcome, verdict.why, run_result)


@contextlib.contextmanager
def _served(profile: Profile) -> Iterator[str | None]:
    """The bundled mock for the whole search (when the profile has no target URL), else the profile's own URL."""
    if not profile.uses_mock:
        yield None
        return
    from bench.mock import MockServerProcess

    mock = MockServerProcess(profile.mock).launch()
    try:
        try:
            mock.wait_ready()
        except RuntimeError as exc:
            raise RunError(f"could not start the mock server: {exc}") from None
        yield mock.url + "/"
    finally:
        mock.stop()


def _probe_profile(
    path: str | Path, overrides: dict[str, Any], scenario: str | None, base: Profile, over: str, level: float, url: str | None, longer: int
) -> Profile:
    """The profile at one level: validated like a command line, writing nothing, stopping once it cannot pass."""
    at = dict(overrides)
    if over == "concurrency":
        at["concurrency"] = int(level)
        at["workers"] = min(base.load.workers, int(level))  # a worker needs at least one user
    else:
        at["rate"] = f"{level}/s"
    if url is not None:
        at["url"] = url
    if longer > 1:
        if base.load.requests is not None:
            at["requests"] = base.load.requests * longer
        if base.load.duration_s is not None:
            at["duration"] = f"{base.load.duration_s * longer}s"
    profile = load_profile(path, at, scenario=scenario)
    options = dataclasses.replace(profile.sla_options, fail_fast=True)
    resolved = {**profile.resolved, "sla_options": {**profile.resolved.get("sla_options", {}), "fail_fast": True}}
    if base.uses_mock and isinstance(resolved.get("target"), dict):
        # The search's own mock: recorded as the bundled mock server, not its port of the day, so that a probe
        # compares with the same level of another search, or with a plain run of the profile.
        resolved["target"] = {**resolved["target"], "url": None}
    out = profile.output  # no files per probe; the live metrics stay, each probe serving them in turn
    telemetry_only = Output(
        None, None, metrics_host=out.metrics_host, metrics_port=out.metrics_port, metrics_linger_s=out.metrics_linger_s,
        otlp_url=out.otlp_url, otlp_interval_s=out.otlp_interval_s,
    )  # fmt: skip
    return dataclasses.replace(profile, output=telemetry_only, sla_options=options, resolved=resolved)


def _free_port(host: str) -> int:
    """A port free on ``host`` now, resolved as the metrics server will bind it. Raises RunError."""
    import socket

    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family) as s:
            s.bind(sockaddr[:2])
            return s.getsockname()[1]
    except OSError as exc:
        raise RunError(f"cannot serve metrics on {host}: {exc.strerror or exc}") from None


def search_report(result: SearchResult, profile: Profile) -> dict[str, Any]:
    """The JSON report of a search: the profile as loaded, the answer, and every probe's full report."""
    return {
        "schema_version": 1,
        "kind": "search",
        "bench_version": bench.__version__,
        "name": profile.name,
        "profile_path": profile.source,
        "search": result.as_dict(),
    }

"""The generator's self-check: was bench itself the bottleneck? Pure; reads the summary only.

A load tester that cannot keep up silently turns an open loop into a slower
one and adds its own queueing to every latency. bench measures itself and
marks the run as not trustworthy, naming the cause and the remedy, when:

* the achieved send rate is under ``MIN_RATE_RATIO`` (95 %) of the rate the
  schedule asked for over the measured phase (open loop);
* the schedule lag p99 (actual minus intended send) is above
  ``MAX_LAG_P99_MS``. Latency is still counted from the intended time, so the
  numbers stay honest, but the target was offered bunched arrivals instead of
  the planned process. 10 ms is about ten times what an idle worker shows on
  loopback (its timers have 1 ms resolution; p99 lag of 1-3 ms at moderate
  rates) and under 2 % of the latencies of the inference APIs bench is built
  for, so crossing it means real client-side queueing, not timer noise;
* closed loop only (an open loop shows the same trouble as lag): a worker's
  CPU use is above ``MAX_WORKER_CPU`` (95 % of a core): its event loop is
  saturated, so its timings include its own backlog;
* the event-loop lag p99 (``generator.loop_lag_p99_ms``: how late each
  worker's loop ran a timer due every 5 ms) is above ``MAX_LOOP_LAG_P99_MS``.
  A chunk or a response that arrives while the loop is busy is timestamped
  only when the loop gets to it, so every timing can carry up to that much
  client delay, whatever the loop model, with a worker far from a full core:
  a round of streams that arrives together is handled in one burst, and the
  CPU share averages the bursts away (0.3 of a core at 256 streams with the
  aiohttp transport, whose TTFT p99 was 13-20 ms above the truth). The same
  10 ms as the schedule lag, for the same reason: an idle worker's timer
  fires up to about 1 ms late (millisecond resolution), so 10 ms is client
  queueing, not timer noise, and under 10 % of a typical TTFT.

In an open loop a low send rate or a high lag has two possible causes: the
generator itself, or requests waiting for a free slot under
``load.max_in_flight`` because the target answered slower than the cap
allows. Workers share the cap, so adding workers does not help the second; a
run where requests waited for the cap names the cap (and the generator too
when a worker was also above ``MAX_WORKER_CPU``).
"""

from __future__ import annotations

from typing import Any, Mapping

MIN_RATE_RATIO = 0.95
MAX_LAG_P99_MS = 10.0
MAX_WORKER_CPU = 0.95
MAX_LOOP_LAG_P99_MS = 10.0


def _cause(summary: Mapping[str, Any], generator_cause: str, cap_also: str = "") -> str:
    """What held an open loop's sends back, with the remedy.

    Requests that had to wait for a free slot under ``load.max_in_flight``
    were held back by the cap, which more workers would not raise (they share
    it), so the cap is named; the generator is named when nothing waited for
    the cap, and also when a worker was saturated.
    """
    capped = summary.get("requests", {}).get("waited_for_cap", 0)
    if not capped:
        return generator_cause
    cause = (
        f"{capped} requests waited for a free slot under load.max_in_flight (the target was slower "
        f"than the cap allows); raise load.max_in_flight{cap_also}"
    )
    busiest = max(summary.get("generator", {}).get("worker_cpu", {}).values(), default=0.0)
    if busiest > MAX_WORKER_CPU:
        cause += f". A worker also used {busiest * 100:.0f} % of a CPU core: {generator_cause}"
    return cause


def _generator_named(model: str, summary: Mapping[str, Any]) -> bool:
    """Whether the reasons name the generator: a saturated worker, or an open loop held back with nothing waiting for the cap."""
    busiest = max(summary.get("generator", {}).get("worker_cpu", {}).values(), default=0.0)
    if busiest > MAX_WORKER_CPU:
        return True
    loop_lag_p99 = summary.get("generator", {}).get("loop_lag_p99_ms")
    if loop_lag_p99 is not None and loop_lag_p99 > MAX_LOOP_LAG_P99_MS:
        return True
    return model == "open" and not summary.get("requests", {}).get("waited_for_cap", 0)


def assess(model: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``{"trusted": bool, "reasons": [...]}``; each reason says what was seen and what to do."""
    reasons: list[str] = []
    generator = summary.get("generator", {})
    if model == "open":
        ratio = generator.get("rate_ratio")
        if ratio is not None and ratio < MIN_RATE_RATIO:
            cause = _cause(summary, "the generator could not keep up; add workers or lower the rate")
            reasons.append(
                f"achieved send rate {generator['achieved_rps']:.1f}/s is {ratio * 100:.1f} % of the scheduled "
                f"{generator['requested_rps']:.1f}/s (below {MIN_RATE_RATIO * 100:.0f} %): {cause}"
            )
        lag_p99 = summary.get("schedule_lag", {}).get("p99")
        if lag_p99 is not None and lag_p99 > MAX_LAG_P99_MS:
            cause = _cause(summary, "the generator itself was late; add workers or lower the rate", ", or read the latency as what users queued for")
            reasons.append(f"schedule lag p99 is {lag_p99:.1f} ms (above {MAX_LAG_P99_MS:.0f} ms), so the target saw bunched arrivals: {cause}")
    for worker, cpu in sorted(generator.get("worker_cpu", {}).items()):
        # In an open loop a saturated worker shows up directly as lag or a low send
        # rate (checked above), and a busy worker that still keeps its schedule is
        # fine. In a closed loop nothing else shows it, so CPU is the criterion.
        if model != "open" and cpu > MAX_WORKER_CPU:
            reasons.append(
                f"worker {worker} used {cpu * 100:.0f} % of a CPU core (above {MAX_WORKER_CPU * 100:.0f} %): "
                "its event loop was saturated and its timings include its own backlog; add workers"
            )
    loop_lag_p99 = generator.get("loop_lag_p99_ms")
    if loop_lag_p99 is not None and loop_lag_p99 > MAX_LOOP_LAG_P99_MS:
        reasons.append(
            f"the client's event loop was late by {loop_lag_p99:.1f} ms at p99 (above {MAX_LOOP_LAG_P99_MS:.0f} ms): "
            "timings carry up to that much client delay; use the fast transport or add workers"
        )
    return {
        "trusted": not reasons,
        "reasons": reasons,
        # The generator itself (not a slow target holding requests under max_in_flight) held the load back:
        # a capacity search stops here instead of blaming the target.
        "generator_limited": bool(reasons) and _generator_named(model, summary),
        "thresholds": {"min_rate_ratio": MIN_RATE_RATIO, "max_lag_p99_ms": MAX_LAG_P99_MS, "max_worker_cpu": MAX_WORKER_CPU,
                       "max_loop_lag_p99_ms": MAX_LOOP_LAG_P99_MS},
    }

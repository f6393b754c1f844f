"""Rich renderings of a run: the live view while it runs and the result tables at the end.

Functions of plain data (Snapshot, summary dicts, Verdict) only: nothing here
measures or decides; the engine owns the numbers, the app owns the exit code.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from bench.engine.aggregate import Snapshot
from bench.engine.gate import Verdict
from bench.engine.profile import Profile, SlaRule, redact_url
from bench.engine.schedule import rate_ramp, scheduled_in_second


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "∞"
    if value >= 1000:
        return f"{value / 1000:.3f} s"
    return f"{value:.2f} ms"


def _ms3(value: float | None) -> str:
    """Three significant digits, for the short summary: ``0.32 ms``, ``27.4 ms``, ``208 ms``, ``1.20 s``."""
    if value is None or value == float("inf"):
        return _ms(value)
    if value >= 1000:
        return f"{value / 1000:.3g} s" if value < 100_000 else f"{value / 1000:,.0f} s"
    return f"{value:.3g} ms" if value >= 1 else f"{value:.2f} ms"


def _sla_threshold(profile: Profile, metric: str) -> float | None:
    for rule in profile.sla:
        if rule.metric == metric and rule.unit == "ms":
            return rule.threshold
    return None


def _colored_ms(value: float | None, threshold: float | None) -> Text:
    text = _ms(value)
    if value is None or threshold is None:
        return Text(text)
    return Text(text, style="green" if value <= threshold else "red")


def progress_fraction(profile: Profile, snap: Snapshot) -> tuple[float | None, str]:
    """Done fraction and a label: requests done of the total, or time elapsed of the duration."""
    load = profile.load
    parts = []
    fraction = None
    if load.requests is not None:
        fraction = min(1.0, snap.completed / load.requests)
        parts.append(f"{snap.completed}/{load.requests} requests")
    planned_s = None
    if load.duration_s is not None:
        planned_s = load.warmup_s + load.duration_s
    if load.stages:
        stages_s = sum(s.duration_s for s in load.stages)
        planned_s = stages_s if planned_s is None else min(planned_s, stages_s)
    if load.replay is not None:
        planned_s = load.replay.end_s  # the last line's due time
    if planned_s:
        time_fraction = min(1.0, snap.elapsed_s / planned_s)
        fraction = time_fraction if fraction is None else max(fraction, time_fraction)
        parts.append(f"{snap.elapsed_s:.1f}/{planned_s:.1f} s")
    elif not parts:
        parts.append(f"{snap.elapsed_s:.1f} s")
    return fraction, ", ".join(parts)


def live_view(profile: Profile, snap: Snapshot) -> Group:
    """The live panel: progress, rates, in-flight, errors and last-second vs cumulative percentiles."""
    fraction, label = progress_fraction(profile, snap)
    if profile.load.replay is not None:  # the trace's own count in the last whole second
        requested = scheduled_in_second(profile.load, max(0, int(snap.elapsed_s) - 1))
    else:
        requested = rate_ramp(profile.load).value_at(max(0.0, snap.elapsed_s - 1.0)) if profile.load.model == "open" else None
    width = 30
    if fraction is not None:
        filled = int(round(fraction * width))
        bar = Text("━" * filled, style="magenta") + Text("━" * (width - filled), style="grey37")
        head = Text(f"{profile.name}  ") + bar + Text(f" {fraction * 100:5.1f}%  {label}")
    else:
        head = Text(f"{profile.name}  {label}")
    stats = Text(
        f"req/s now {snap.last_rps:,.0f}  avg {snap.average_rps:,.0f}   in flight {snap.in_flight}   "
        f"ok {snap.ok}   errors {snap.errors}"
        + (f"   warm-up {snap.warmup_sent}" if snap.warmup_sent else "")
    )
    generator = Text(
        (f"schedule lag p50 {_ms(snap.lag_p50_ms)} p99 {_ms(snap.lag_p99_ms)}   " if snap.lag_p99_ms is not None else "")
        + (f"sent/s {snap.last_sent_rps:,.0f} of {requested:,.0f} scheduled   " if requested else "")
        + (f"worker CPU max {snap.max_worker_cpu * 100:.0f} %" if snap.max_worker_cpu is not None else ""),
        style="grey62",
    )
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("latency")
    for name in ("p50", "p95", "p99"):
        threshold = _sla_threshold(profile, name)
        table.add_column(name + (f" (SLA {_ms(threshold)})" if threshold is not None else ""), justify="right")
    table.add_row(
        "last second",
        *(_colored_ms(v, _sla_threshold(profile, n)) for n, v in (("p50", snap.last_p50_ms), ("p95", snap.last_p95_ms), ("p99", snap.last_p99_ms))),
    )
    table.add_row(
        "whole run",
        *(_colored_ms(v, _sla_threshold(profile, n)) for n, v in (("p50", snap.total_p50_ms), ("p95", snap.total_p95_ms), ("p99", snap.total_p99_ms))),
    )
    return Group(head, stats, generator, table)


def status_line(profile: Profile, snap: Snapshot) -> str:
    """One plain line for logs (stdout not a terminal)."""
    _, label = progress_fraction(profile, snap)
    return (
        f"[bench] {profile.name}: {label}, {snap.average_rps:.0f} req/s, in flight {snap.in_flight}, "
        f"errors {snap.errors}, p50 {_ms(snap.total_p50_ms)}, p95 {_ms(snap.total_p95_ms)}, p99 {_ms(snap.total_p99_ms)}"
    )


def latency_table(summary: dict[str, Any], meaning: str) -> Table:
    """Percentiles down, distributions across: narrow enough for an 80-column CI log."""
    table = Table(title="Latency", caption=meaning, caption_justify="left")
    columns = [("latency", summary["latency"])]
    if summary["service"]["count"] and summary.get("load_model") == "open":
        columns.append(("service time", summary["service"]))
    if summary["schedule_lag"]["count"]:
        columns.append(("schedule lag", summary["schedule_lag"]))
    aware = summary.get("latency_error_aware", {})
    if aware.get("failures"):
        columns.append(("failures as ∞", aware))
    if summary["warmup"]["latency"]["count"]:
        columns.append(("warm-up (excluded)", summary["warmup"]["latency"]))
    table.add_column("stat")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for key in ("min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"):
        table.add_row(key, *(_ms(stats.get(key)) for _, stats in columns))
    table.add_row("count", *(str(stats["count"]) for _, stats in columns))
    return table


def requests_table(summary: dict[str, Any]) -> Table:
    req = summary["requests"]
    table = Table(title="Requests")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rps = summary.get("rps")
    table.add_row("sent", str(req["sent"]))
    table.add_row("ok (2xx/3xx)", str(req["ok"]))
    table.add_row("HTTP errors (4xx/5xx)", str(req["http_errors"]))
    table.add_row("client errors", str(req["client_errors"]))
    if req.get("check_failures"):
        table.add_row("failed checks", Text(str(req["check_failures"]), style="red"))
    if req.get("due_but_not_sent"):
        table.add_row("due but never sent (stopped)", Text(str(req["due_but_not_sent"]), style="yellow"))
    if req["unfinished"]:
        table.add_row("never finished", Text(str(req["unfinished"]), style="red"))
    rate = summary.get("error_rate")
    table.add_row("error rate", "-" if rate is None else f"{rate * 100:.2f} %")
    table.add_row("throughput", "-" if rps is None else f"{rps:,.1f} req/s")
    table.add_row("measured for", f"{summary['duration_s']:.2f} s")
    table.add_row("received", f"{summary['bytes_received']:,} bytes")
    for code, n in summary["status_codes"].items():
        table.add_row(f"status {code}", str(n))
    for kind, n in summary["errors"].items():
        table.add_row(f"error: {kind}", str(n))
    warm = summary["warmup"]
    if warm["sent"]:
        table.add_row("warm-up sent (excluded)", str(warm["sent"]))
    return table


def _in_unit(unit: str, value: float | None, *, short: bool = False) -> str:
    """A criterion's threshold or measured value as its unit reads: ms, %, req/s, tok/s."""
    if unit == "ms" or value is None:
        return _ms3(value) if short else _ms(value)
    if unit == "ratio":
        return f"{value * 100:.3g} %" if short else f"{value * 100:.2f} %"
    return f"{value:,.1f} {unit}"


def _criterion(rule: SlaRule) -> str:
    """``p95 <= 800 ms``, ``error_rate <= 1 % (default)``, ``p95 <= 800 ms (any 10 s window)``."""
    where = " (default)" if rule.default else (f" (any {rule.window_s:g} s window)" if rule.window_s is not None else "")
    return f"{rule.name} {rule.op} {_in_unit(rule.unit, rule.threshold, short=True)}{where}"


def _load_words(profile: Profile) -> str:
    """``closed loop, 20 users, 400 requests + 20 warm-up`` or ``open loop, ramp 50 -> 300 -> 100/s (poisson), 30 s``."""
    load = profile.load
    if load.replay is not None:
        r = load.replay
        what = f"open loop, replay {r.file}: {r.count:,} requests over {r.span_s:g} s of trace" + (f" at {r.speed:g}x speed" if r.speed != 1 else "")
    elif load.model == "open":
        if load.stages:
            what = "ramp " + " -> ".join(f"{v:g}" for v in [load.rate_per_s or 0, *(s.target for s in load.stages)]) + "/s"
        else:
            what = f"{load.rate_per_s:g}/s"
        what = f"open loop, {what} ({load.arrival})"
    else:
        users = " -> ".join(str(int(v)) for v in [load.concurrency or 0, *(s.target for s in load.stages)])
        what = f"closed loop, {users} users"
    if load.requests is not None:
        what += f", {load.requests:,} requests"
    if load.duration_s is not None:
        what += f"{' or' if load.requests is not None else ','} {load.duration_s:g} s"
    elif load.stages and load.requests is None:
        what += f", {sum(s.duration_s for s in load.stages):g} s"
    if load.warmup_requests:
        what += f" + {load.warmup_requests:,} warm-up"
    elif load.warmup_s:
        what += f" + {load.warmup_s:g} s warm-up"
    return what


def run_header(profile: Profile, version: str) -> Text:
    """What is about to run, before it starts: target, load, workers and transport, SLA criteria."""
    kinds = profile.kinds
    method = profile.target.method if len(kinds) <= 1 else f"{len(kinds)} request kinds"
    where = redact_url(profile.target.url) if profile.target.url else "bundled mock server"
    workers = f"{profile.load.workers} worker{'s' if profile.load.workers != 1 else ''}"
    lines = [
        Text.assemble((f"bench {version}", "bold"), "  ", (profile.name, "bold cyan")),
        Text(f"  target  {method} {where}"),
        Text(f"  load    {_load_words(profile)}; {workers}, {profile.client.transport}"),
        Text("  SLA     " + (", ".join(_criterion(r) for r in profile.sla) or "none: the run passes whatever it measures")),
    ]
    return Text("\n").join(lines)


def summary_screen(summary: dict[str, Any], verdict: Verdict) -> Group:
    """The few numbers that matter and one line per SLA criterion (k6's summary): fits a 35-row, 80-column terminal."""
    req = summary["requests"]
    lat = summary["latency"]
    rows = Table(box=None, show_header=False, pad_edge=False, show_edge=False)
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column()
    rps = summary.get("rps")
    rows.add_row(
        "requests",
        f"{req['sent']:,} sent in {summary['duration_s']:.2f} s, " + ("-" if rps is None else f"{rps:,.1f} req/s"),
    )
    rate = summary.get("error_rate")
    outcome = Text(f"{req['ok']:,} ok, {req['http_errors'] + req['client_errors'] + req.get('check_failures', 0):,} failed")
    outcome.append(" (error rate " + ("-" if rate is None else f"{rate * 100:.2f} %") + ")", style="red" if rate else "")
    rows.add_row("", outcome)
    causes = [f"status {code}: {n:,}" for code, n in summary["status_codes"].items() if int(code) >= 400]
    causes += [f"{kind}: {n:,}" for kind, n in summary["errors"].items()]
    if causes:
        rows.add_row("errors", Text(", ".join(causes[:6]) + (f", +{len(causes) - 6} more" if len(causes) > 6 else ""), style="red"))
    stats = "  ".join(f"{key} {_ms3(lat.get(key))}" for key in ("p50", "p90", "p95", "p99", "max"))
    rows.add_row("latency", stats)
    meaning = "service time, from the actual send (closed loop)" if summary.get("load_model") == "closed" else "from the intended send (open loop: coordinated-omission safe)"
    rows.add_row("", Text(meaning, style="grey62"))
    inference = summary.get("inference")
    if inference:
        for family in ("ttft", "tpot", "itl"):
            fam = inference.get(family) or {}
            if fam.get("count"):
                rows.add_row(family.upper(), "  ".join(f"{key} {_ms3(fam.get(key))}" for key in ("p50", "p90", "p95", "p99", "max")))
        tokens = inference.get("output_tokens_per_s")
        goodput = summary.get("goodput") or {}
        line = f"{inference['output_tokens']:,} output tokens" + ("" if tokens is None else f", {tokens:,.1f} tok/s")
        if goodput.get("ratio") is not None:
            line += f", goodput {goodput['ratio'] * 100:.1f} %"
        rows.add_row("tokens", line)
    trust = summary.get("trust", {})
    if not trust.get("trusted", True):
        rows.add_row("generator", Text("NOT trustworthy (see the warning below)", style="bold yellow"))
    parts: list[Any] = [Text("Results", style="bold underline"), rows]
    if verdict.checks:
        gate = Table(box=None, show_header=False, pad_edge=False, show_edge=False)
        gate.add_column(no_wrap=True)
        gate.add_column()
        gate.add_column(justify="right")
        for check in verdict.checks:
            mark = Text("✓", style="bold green") if check.passed else Text("✗", style="bold red")
            measured = _in_unit(check.rule.unit, check.measured, short=True)
            if check.status == "not measurable":
                measured += " (not measurable)"
            gate.add_row(mark, _criterion(check.rule), Text(measured, style="green" if check.passed else "red"))
        parts += [Text("SLA", style="bold underline"), gate]
    return Group(*parts)


def sla_table(verdict: Verdict) -> Table:
    table = Table(title="SLA")
    for name, justify in (("criterion", "left"), ("threshold", "right"), ("measured", "right"), ("result", "center")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for check in verdict.checks:
        rule = check.rule
        threshold, measured = _in_unit(rule.unit, rule.threshold), _in_unit(rule.unit, check.measured)
        if check.passed:
            result = Text("PASS", style="bold green")
        elif check.status == "not measurable":
            result = Text("NOT MEASURABLE", style="bold red")
        else:
            result = Text("FAIL", style="bold red")
        table.add_row(rule.label, threshold, measured, result)
    notes = [f"{c.rule.label}: {c.note}" for c in verdict.checks if c.note]
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def generator_table(summary: dict[str, Any]) -> Table:
    """The generator's self-check: schedule lag, achieved vs requested rate, worker CPU."""
    gen = summary.get("generator", {})
    lag = summary["schedule_lag"]
    trust = summary.get("trust", {})
    table = Table(title="Generator self-check")
    table.add_column("measure")
    table.add_column("value", justify="right")
    if lag["count"]:
        table.add_row("schedule lag p50 / p99", f"{_ms(lag['p50'])} / {_ms(lag['p99'])}")
    if gen.get("requested_rps"):
        table.add_row(
            "send rate achieved / scheduled",
            f"{gen['achieved_rps']:,.1f} / {gen['requested_rps']:,.1f} req/s ({gen['rate_ratio'] * 100:.1f} %)",
        )
    for worker, cpu in sorted(gen.get("worker_cpu", {}).items()):
        table.add_row(f"worker {worker} CPU", f"{cpu * 100:.0f} %")
    if gen.get("parent_cpu") is not None:
        table.add_row("parent CPU (aggregator, live view)", f"{gen['parent_cpu'] * 100:.0f} %")
    verdict = Text("yes", style="green") if trust.get("trusted", True) else Text("NO", style="bold red")
    table.add_row("results trustworthy", verdict)
    return table


def compare_table(labels: list[str], table: dict[str, list[Any]], *, title: str) -> Table:
    """Each run's value per metric, and for the others the change against the first: green better, red worse."""
    from bench.engine.compare import METRICS, show_change

    out = Table(title=title)
    out.add_column("metric")
    for i, label in enumerate(labels):
        out.add_column(label if i == 0 else f"{label}", justify="right")
    for metric, sides in table.items():
        unit, lower_better = METRICS[metric]
        base = sides[0].value
        cells = [_compare_value(sides[0], unit)]
        for side in sides[1:]:
            text = _compare_value(side, unit)
            if base is not None and side.value is not None:
                delta = side.value - base
                change = show_change(delta, base, unit)
                better = (delta < 0) if lower_better else (delta > 0)
                style = "dim" if abs(delta) <= abs(base) * 1e-9 else ("green" if better else "red")
                cells.append(Text(f"{text}  {change}", style=style))
            else:
                cells.append(Text(text))
        out.add_row(metric, *cells)
    return out


def _compare_value(side: Any, unit: str) -> str:
    value = side.value
    if value is None:
        return "-"
    if unit == "ratio":
        text = f"{value * 100:.2f} %"
    elif unit == "ms":
        text = _ms(value)
    else:
        text = f"{value:,.1f}/s"
    if side.low is not None and side.high is not None:
        if unit == "ratio":
            text += f" [{side.low * 100:.2f}, {side.high * 100:.2f}]"
        else:
            text += f" [{side.low:,.2f}, {side.high:,.2f}]"
    return text


def inference_table(summary: dict[str, Any]) -> Table | None:
    """TTFT, TPOT and ITL percentiles, token throughput and goodput, when the run streamed an inference API."""
    inference = summary.get("inference")
    if not inference:
        return None
    table = Table(title="Inference", caption="definitions: README, 'Inference metrics'", caption_justify="left")
    table.add_column("stat")
    columns = [(name, inference[name]) for name in ("ttft", "tpot", "itl") if inference[name]["count"]]
    for name, _ in columns:
        table.add_column(name.upper(), justify="right")
    for key in ("p50", "p90", "p95", "p99", "p99.9", "max", "mean"):
        table.add_row(key, *(_ms(stats.get(key)) for _, stats in columns))
    table.add_row("count", *(str(stats["count"]) for _, stats in columns))
    tokens = Table(title="Tokens and goodput", show_header=False)
    tokens.add_column("measure")
    tokens.add_column("value", justify="right")
    tokens.add_row("output tokens", f"{inference['output_tokens']:,}")
    sources = ", ".join(f"{k}: {v}" for k, v in inference["token_source"].items())
    tokens.add_row("token counts from", sources or "-")
    rate = inference.get("output_tokens_per_s")
    tokens.add_row("output tokens/s", "-" if rate is None else f"{rate:,.1f}")
    per = inference.get("output_tokens_per_request")
    tokens.add_row("output tokens/request", "-" if per is None else f"{per:,.1f}")
    goodput = summary.get("goodput") or {}
    if goodput.get("ratio") is not None:
        tokens.add_row("goodput", f"{goodput['good']}/{goodput['completed']} ({goodput['ratio'] * 100:.1f} %), {goodput['rps'] or 0:,.1f} req/s")
    return Group(table, tokens)  # type: ignore[return-value]


# --------------------------------------------------------------------------- capacity search


def level_text(level: float | None, over: str) -> str:
    """``4 users``, ``1 user``, ``82.5/s``."""
    if level is None:
        return "-"
    if over == "concurrency":
        return f"{int(level)} user{'s' if int(level) != 1 else ''}"
    return f"{level:,.4g}/s" if level < 10_000 else f"{level:,.0f}/s"


_OUTCOME_STYLE = {"pass": "bold green", "fail": "bold red", "indeterminate": "bold yellow"}


def probe_line(probe: Any, over: str) -> Text:
    """One probe's verdict, printed as it ends: level, achieved rate, p95, outcome and why."""
    summary = probe.summary
    rps = summary.get("rps")
    text = Text(f"{level_text(probe.level, over)}: ")
    text.append(probe.outcome.upper(), style=_OUTCOME_STYLE.get(probe.outcome, "bold magenta"))
    text.append(f"  {'-' if rps is None else f'{rps:,.1f}'} req/s; {probe.why}")
    return text


def search_table(result: Any) -> Table:
    """Every probe in the order run: level, achieved req/s, latency, errors, TTFT/TPOT when streamed, verdict and why."""
    inference = any((p.summary.get("inference") or {}).get("ttft", {}).get("count") for p in result.probes)
    table = Table(title=f"Capacity search over {result.over}", box=box.SIMPLE_HEAD, caption_justify="left")
    for name in ("#", "level", "req/s", "p50", "p95", "p99", "errors", *(("TTFT p95", "TPOT p95") if inference else ())):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    notes = []
    for number, probe in enumerate(result.probes, 1):
        summary = probe.summary
        latency = summary["latency"]
        rate = summary.get("error_rate")
        rps = summary.get("rps")
        cells = [str(number), level_text(probe.level, result.over), "-" if rps is None else f"{rps:,.1f}"]
        cells += [_ms3(latency.get(name)) for name in ("p50", "p95", "p99")]
        cells.append("-" if rate is None else f"{rate * 100:.3g} %")
        if inference:
            inf = summary.get("inference") or {}
            cells += [_ms3((inf.get("ttft") or {}).get("p95")), _ms3((inf.get("tpot") or {}).get("p95"))]
        verdict = Text(probe.outcome, style=_OUTCOME_STYLE.get(probe.outcome, "bold magenta"))
        table.add_row(*cells, verdict)
        if probe.outcome != "pass":
            notes.append(f"{number}: {probe.why}")
    table.caption = "\n".join(notes) or None
    return table


def search_answer(result: Any) -> str:
    """The answer in one line: ``capacity: 4 users, 78.1 req/s at p95 <= 75 ms; 5 users fail: p95 102 ms``."""
    over, capacity, failing = result.over, result.capacity, result.first_failing
    best, worst = result.probe_at(capacity), result.probe_at(failing)
    criteria = ", ".join(_criterion(c.rule) for c in (best or worst or result.probes[-1]).result.verdict.checks) if result.probes else ""
    if best is not None:
        rps = best.summary.get("rps")
        answer = f"capacity: {level_text(capacity, over)}" + (f", {rps:,.1f} req/s" if rps is not None and over == "concurrency" else "")
        answer += f" at {criteria}"
        if failing is not None and worst is not None:
            answer += f"; {level_text(failing, over)} {'fail' if worst.outcome == 'fail' else 'stay within noise'}: {worst.why}"
        elif result.stopped is None:
            answer += f" (every level up to --max {level_text(result.plan.high, over)} passed)"
    elif failing is not None and worst is not None:
        answer = f"no capacity: the lowest level probed, {level_text(failing, over)}, fails {criteria}: {worst.why}"
    else:
        answer = "no answer"
    unsure = [level_text(level, over) for level, outcome in sorted(result.plan.results.items()) if outcome == "indeterminate"]
    if unsure:
        answer += f" (within noise even measured longer, counted as not passing: {', '.join(unsure)})"
    reasons = {
        "generator-limited": "the generator, not the target, was the bottleneck at {level}: add workers or cores; the answer so far",
        "not measured": "no request got an answer at {level}; the answer so far",
        "stopped": "interrupted at {level}; the answer so far",
        "budget": "the budget was spent before the answer was known to the tolerance; the answer so far",
    }
    if result.stopped in reasons:
        last = result.probes[-1].level if result.probes else None
        answer = reasons[result.stopped].format(level=level_text(last, over)) + ": " + answer
    return answer

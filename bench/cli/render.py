"""Rich renderings of a run: the live view while it runs and the result tables at the end.

Functions of plain data (Snapshot, summary dicts, Verdict) only: nothing here
measures or decides; the engine owns the numbers, the app owns the exit code.
"""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from bench.engine.results.aggregate import Snapshot
from bench.engine.results.gate import Verdict
from bench.engine.plan.profile import Profile, SlaRule, redact_url
from bench.engine.plan.schedule import rate_ramp, schedule_end_s, scheduled_in_second


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



# ---------------------------------------------------------------- live view

_MS_EPSILON = 1e-9


def _rule(profile: Profile, metric: str) -> SlaRule | None:
    """The criterion on ``metric``: the whole-run one if there is one, else a window criterion."""
    found = [rule for rule in profile.sla if rule.metric == metric]
    found.sort(key=lambda rule: rule.window_s is not None)
    return found[0] if found else None


def _within(rule: SlaRule | None, value: float | None) -> str | None:
    """The style of ``value`` against ``rule``: green within, red beyond, None without either."""
    if rule is None or value is None:
        return None
    ok = value <= rule.threshold + _MS_EPSILON if rule.op == "<=" else value >= rule.threshold - _MS_EPSILON
    return "green" if ok else "red"


def _short_ms(value: float) -> str:
    """A threshold as written: 50 ms, 22.5 ms, 1 s, 1.5 s."""
    if value >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:g} ms"


def _clock(seconds: float) -> str:
    """4.2 s under a minute, then m:ss, then h:mm:ss."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds + 0.5)
    if whole < 3600:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _rate(value: float) -> str:
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def planned_end_s(profile: Profile, snap: Snapshot) -> float | None:
    """When the plan stops issuing work (seconds from the start, warm-up included); None: only the request count ends it."""
    if profile.load.replay is not None:
        return profile.load.replay.end_s  # the last line's due time
    end = schedule_end_s(profile.load)  # the workers' own end (schedule.py)
    return None if math.isinf(end) else end


def in_warmup(profile: Profile, snap: Snapshot) -> bool:
    """Warm-up requests only so far: nothing measured yet."""
    load = profile.load
    return not snap.done and snap.sent == 0 and (load.warmup_s > 0 or load.warmup_requests > 0)


def warmup_progress(profile: Profile, snap: Snapshot) -> tuple[float, str]:
    """Warm-up done fraction and its label: seconds of the warm-up time, or requests of its count."""
    load = profile.load
    if load.warmup_s > 0:
        return min(1.0, snap.elapsed_s / load.warmup_s), f"{min(snap.elapsed_s, load.warmup_s):.1f}/{load.warmup_s:g} s"
    if profile.session or profile.conversation:  # a count of sessions; their requests, as far as every step is sent
        steps = len(profile.session) or max(len(row["turns"]) for row in profile.data.rows)  # type: ignore[union-attr]
        planned = load.warmup_requests * steps
        return min(1.0, snap.warmup_sent / planned), f"{load.warmup_requests:,} {_unit(profile)}"
    return min(1.0, snap.warmup_sent / load.warmup_requests), f"{min(snap.warmup_sent, load.warmup_requests):,}/{load.warmup_requests:,} requests"


def current_stage(profile: Profile, t: float) -> tuple[int, int, float, float, float] | None:
    """(stage number from 1, stages, value at its start, its target, seconds left in it) at time ``t``; None without stages or after them."""
    load = profile.load
    if not load.stages:
        return None
    value = float(load.rate_per_s if load.model == "open" else load.concurrency or 0) or 0.0
    start = 0.0
    for i, stage in enumerate(load.stages):
        end = start + stage.duration_s
        if t < end:
            return i + 1, len(load.stages), value, float(stage.target), end - t
        value, start = float(stage.target), end
    return None


def scheduled_rate(profile: Profile, snap: Snapshot) -> float | None:
    """Sends the schedule asked for in the last closed second, the second ``last_sent_rps`` counts (open loop)."""
    load = profile.load
    if load.model != "open" or snap.closed_s <= 0:
        return None
    if load.replay is not None:  # the trace's own count in that second
        return scheduled_in_second(load, snap.closed_s - 1)
    ramp = rate_ramp(load)
    end = schedule_end_s(load)
    b = min(float(snap.closed_s), end)
    a = min(float(snap.closed_s - 1), end)
    return ramp.integral_to(b) - ramp.integral_to(a)


def _unit(profile: Profile) -> str:
    """What ``load.requests`` counts: sessions, conversations, or requests."""
    return "sessions" if profile.session else "conversations" if profile.conversation else "requests"


def _run_state(profile: Profile, snap: Snapshot) -> str:
    """done, draining (nothing more is due, requests still in flight), warm-up, or running."""
    if snap.done:
        return "done"
    if snap.stopping:
        return "draining"
    load = profile.load
    planned = planned_end_s(profile, snap)
    started = snap.sessions_started if profile.session or profile.conversation else snap.sent
    if (planned is not None and snap.elapsed_s >= planned) or (load.requests is not None and started >= load.requests):
        return "draining"
    if in_warmup(profile, snap):
        return "warm-up"
    return "running"


def progress(profile: Profile, snap: Snapshot) -> tuple[float | None, str]:
    """Done fraction and a label: elapsed and remaining time, requests done and an ETA, or done."""
    load = profile.load
    state = _run_state(profile, snap)
    done, unit = (snap.sessions_done, _unit(profile)) if profile.session or profile.conversation else (snap.completed, "req")
    if state == "done":
        finished = load.requests is None or done >= load.requests
        planned = planned_end_s(profile, snap)
        if planned is not None and snap.elapsed_s < planned - 1.0 and (load.requests is None or not finished):
            finished = False
        if snap.stopping:
            return None, f"stopped ({snap.stopping}) after {_clock(snap.elapsed_s)}"
        word = "done" if finished else "ended early"
        return 1.0 if finished else None, f"{word} after {_clock(snap.elapsed_s)}"
    planned = planned_end_s(profile, snap)
    fraction: float | None = None
    parts = []
    left: float | None = None
    if planned is not None and snap.elapsed_s >= planned:
        fraction = 1.0
        parts.append(f"{_clock(snap.elapsed_s)}, schedule ended at {_clock(planned)}")  # never "12.2 s of 12.0 s"
    elif planned is not None:
        fraction = min(1.0, snap.elapsed_s / planned) if planned > 0 else 1.0
        left = max(0.0, planned - snap.elapsed_s)
        parts.append(f"{_clock(snap.elapsed_s)} of {_clock(planned)}")
    else:
        parts.append(_clock(snap.elapsed_s))
    if load.requests is not None:
        count_fraction = min(1.0, done / load.requests)
        fraction = count_fraction if fraction is None else max(fraction, count_fraction)
        parts.append(f"{done:,}/{load.requests:,} {unit}")
        if done and snap.measured_s > 0:
            eta = max(0.0, load.requests - done) / (done / snap.measured_s)
            left = eta if left is None else min(left, eta)
    if state == "draining":
        pass  # the phase line says it
    elif left is not None:
        parts.append(f"{_clock(left)} left" if load.requests is None else f"ETA {_clock(left)}")
    elif load.requests is not None:
        parts.append("ETA -")
    return fraction, ", ".join(parts)


def _stage_text(profile: Profile, snap: Snapshot) -> str | None:
    stage = current_stage(profile, snap.elapsed_s)
    if stage is None or snap.done:
        return None
    number, count, start, target, left = stage
    unit = "/s" if profile.load.model == "open" else " in flight"
    show = _rate if profile.load.model == "open" else (lambda v: f"{v:.0f}")
    now = start + (target - start) * (1 - left / max(_MS_EPSILON, profile.load.stages[number - 1].duration_s))
    if abs(target - start) < _MS_EPSILON:
        what = f"hold {show(target)}{unit}"
    else:
        what = f"{show(start)} -> {show(target)}{unit}, now {show(now)}"
    return f"stage {number}/{count}: {what}, {_clock(left)} left"


def error_kinds(snap: Snapshot) -> list[tuple[str, int]]:
    """Errors by kind, most frequent first: HTTP error statuses by class (http 5xx) and client kinds (timeout, connect, check...)."""
    kinds: dict[str, int] = {}
    for code, n in snap.status_codes:
        if code >= 400:
            name = f"http {code // 100}xx"
            kinds[name] = kinds.get(name, 0) + n
    for kind, n in snap.error_kinds:
        kinds[kind] = kinds.get(kind, 0) + n
    return sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))


def _fit(pieces: list[Text], width: int, sep: str = "   ") -> Text:
    """Join ``pieces`` while they fit in ``width``; the rest is dropped (pieces come most important first)."""
    out = Text()
    for piece in pieces:
        extra = (len(sep) if out.plain else 0) + len(piece.plain)
        if out.plain and len(out.plain) + extra > width:
            break
        if out.plain:
            out.append(sep)
        out.append_text(piece)
    out.no_wrap = True
    out.overflow = "ellipsis"
    return out


WIDE = 110  # from this many columns, short lines share one


def _beside(first: Text, second: Text, width: int) -> Text:
    """``first`` and ``second`` on one line when both fit whole, else on two (wide consoles only)."""
    if len(first.plain) + 3 + len(second.plain) <= width:
        joined = first.copy()
        joined.append("   ")
        joined.append_text(second)
        return joined
    joined = first.copy()
    joined.append("\n")
    joined.append_text(second)
    return joined


def _listing(items: list[tuple[str, int]], width: int, counts: bool = True) -> str:
    """``a 3, b 2`` (or ``a, b`` without counts) with as many items as fit in ``width``, then ``+N more``."""
    shown: list[str] = []
    for i, (name, n) in enumerate(items):
        piece = f"{name} {n:,}" if counts else name
        rest = len(items) - i - 1
        tail = f", +{rest} more" if rest else ""
        if shown and len(", ".join(shown + [piece])) + len(tail) > width:
            shown.append(f"+{len(items) - i} more")
            break
        shown.append(piece)
    return ", ".join(shown)


def _now(snap: Snapshot) -> str:
    """Completions in the last closed second, or "-" before a whole measured second has closed."""
    if snap.closed_s == 0 or (snap.measure_start_s is not None and snap.closed_s - 1 < snap.measure_start_s):
        return "-"
    return _rate(snap.last_rps)


def _lines(profile: Profile, snap: Snapshot, width: int) -> list[Text]:
    state = _run_state(profile, snap)
    fraction, label = progress(profile, snap)
    name = profile.name if len(profile.name) <= 24 else profile.name[:23] + "…"
    lines: list[Text] = []

    # 2: what phase: warm-up progress, the ramp stage, draining (beside the bar on a wide console).
    phase: list[Text] = []
    if state == "warm-up":
        wf, wlabel = warmup_progress(profile, snap)
        phase.append(Text("warm-up (excluded) ", style="bold yellow") + Text(f"{wlabel}: sent {snap.warmup_sent:,}, done {snap.warmup_completed:,}, errors {snap.warmup_errors:,}"))
    stage = _stage_text(profile, snap)
    if stage:
        phase.append(Text(stage, style="cyan"))
    if state == "draining":
        why = f"{snap.stopping}, stopped sending" if snap.stopping else "nothing more due"
        phase.append(Text(f"draining: {why}, {snap.in_flight:,} in flight", style="yellow"))
    phase_line = _fit(phase, width) if phase else None
    beside = phase_line is not None and width >= WIDE and len(phase_line.plain) == len("   ".join(x.plain for x in phase))

    # 1: progress bar, elapsed and remaining (or ETA), or done.
    tail = Text(label, style=("bold yellow" if snap.stopping or fraction is None else "bold green") if state == "done" else "")
    if fraction is not None:
        room = width - len(name) - len(label) - 10 - (len(phase_line.plain) + 3 if beside and phase_line is not None else 0)
        bar_width = max(10, min(40, room))
        filled = int(round(fraction * bar_width))
        bar = Text("━" * filled, style="green" if state == "done" else "magenta") + Text("━" * (bar_width - filled), style="grey37")
        head = Text(f"{name}  ") + bar + Text(f" {fraction * 100:3.0f}%  ") + tail
    else:
        head = Text(f"{name}  ") + tail
    lines.append(_fit([head], width))
    if phase_line is not None:
        if beside:
            lines[0] = _beside(lines[0], phase_line, width)
        else:
            lines.append(phase_line)

    # 3: throughput: achieved vs scheduled over the same window, in flight, completed.
    rates: list[Text] = []
    if state == "done":
        overall = f"req/s {_rate(snap.average_rps)} overall" if snap.measured_s > 0 else "req/s -"
        rates.append(Text(overall, style="bold"))
        rates.append(Text(f"completed {snap.completed:,} in {_clock(snap.measured_s)}"))
    else:
        if state == "warm-up":
            rates.append(Text("req/s - (measuring after warm-up)", style="grey62"))
        elif snap.completed == 0:
            rates.append(Text("req/s -"))
        else:
            now = _now(snap)
            rule = _rule(profile, "rps")
            avg = Text(_rate(snap.average_rps), style=_within(rule, snap.average_rps) or "")
            rates.append(Text(f"req/s {now} now, ") + avg + Text(" avg"))
        due = scheduled_rate(profile, snap)
        if due is not None and state != "draining":
            achieved = snap.last_sent_rps
            low = due > 0 and achieved < 0.8 * due
            expected = "~" if profile.load.arrival == "poisson" else ""  # poisson: the expected count, not an exact one
            rates.append(Text(f"sent/s {_rate(achieved)} of {expected}{_rate(due)} due", style="yellow" if low else ""))
        rates.append(Text(f"in flight {snap.in_flight:,}"))
        if state != "warm-up":
            rates.append(Text(f"ok {snap.ok:,}"))
    lines.append(_fit(rates, width))

    # 4: errors by kind and the top status codes.
    kinds = error_kinds(snap)
    rule = _rule(profile, "error_rate")
    if snap.errors:
        share = snap.errors / snap.completed if snap.completed else None
        err = Text(f"errors {snap.errors:,}", style="bold red")
        if share is not None:
            err.append(f" ({share * 100:.2f} %)", style=_within(rule, share) or "red")
        err.append(": " + _listing(kinds, width - len(err.plain) - 2))
    else:
        err = Text("errors 0", style="green" if snap.completed else "")
    codes = [(str(code), n) for code, n in snap.status_codes]
    status = Text("status " + _listing(codes, width - len("status ")), style="grey62") if codes else None
    if state == "warm-up" and not snap.errors and status is None:
        pass  # nothing measured yet: the warm-up line has its errors
    elif status is not None and len(err.plain) + 3 + len(status.plain) <= width:
        lines.append(_fit([err, status], width))
    else:  # errors by kind come first; the status codes get a line of their own
        lines.append(_fit([err], width))
        if status is not None:
            lines.append(_fit([status], width))

    # 5: the generator's health.
    gen: list[Text] = []
    if snap.lag_p99_ms is not None:
        lag_style = "yellow" if snap.lag_p99_ms > 10.0 else "grey62"
        gen.append(Text(f"schedule lag p50 {_ms(snap.lag_p50_ms)}, p99 {_ms(snap.lag_p99_ms)}", style=lag_style))
    if snap.max_worker_cpu is not None and not snap.done:  # (its last interval is a fraction of one: noise)
        gen.append(Text(f"worker CPU max {snap.max_worker_cpu * 100:.0f} %", style="yellow" if snap.max_worker_cpu > 0.95 else "grey62"))
    if 0 < snap.workers_done < snap.workers:
        gen.append(Text(f"workers done {snap.workers_done}/{snap.workers}", style="grey62"))
    if gen:
        gen_line = _fit(gen, width)
        if width >= WIDE and len(gen_line.plain) == len("   ".join(x.plain for x in gen)):
            lines[-1] = _beside(lines[-1], gen_line, width)
        else:
            lines.append(gen_line)
    return [line for line in lines if line.plain]


def _latency_table(profile: Profile, snap: Snapshot, width: int) -> Table:
    """Percentiles: last second and whole run, and TTFT/TPOT/ITL for inference runs, each coloured against its SLA."""
    wide = width >= 100
    stats = ["p50", "p95", "p99"] + (["max"] if wide else [])
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    table.add_column("", no_wrap=True, overflow="ellipsis")
    for name in stats:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("SLA", no_wrap=True, overflow="ellipsis", style="grey62")

    rows: list[tuple[str, str, list[Text], bool]] = []

    def sla_cell(family: str, room: int) -> str:
        """This row's criteria, those on a shown column first and whole-run before window ones, as many as fit."""
        prefix = "" if family == "latency" else family + "."
        rules = [
            rule
            for rule in profile.sla
            if rule.unit == "ms" and rule.metric.startswith(prefix) and (family != "latency" or "." not in rule.metric)
        ]
        rules.sort(key=lambda rule: (rule.metric[len(prefix):] not in stats, rule.window_s is not None))
        parts = []
        for rule in rules:
            window = f" ({rule.window_s:g} s)" if rule.window_s is not None else ""
            parts.append((f"{rule.metric[len(prefix):]} {rule.op} {_short_ms(rule.threshold)}{window}", 0))
        return _listing(parts, room, counts=False)

    def row(label: str, family: str, values: dict[str, float | None], with_sla: bool) -> None:
        prefix = "" if family == "latency" else family + "."
        cells = []
        for name in stats:
            value = values.get(name)
            if name not in values:
                cells.append(Text(""))
                continue
            cells.append(Text(_ms(value), style=_within(_rule(profile, prefix + name), value) or ""))
        rows.append((label, family, cells, with_sla))

    if not snap.done:
        row(
            "latency, last 1 s",
            "latency",
            {"p50": snap.last_p50_ms, "p95": snap.last_p95_ms, "p99": snap.last_p99_ms, "max": snap.last_max_ms},
            False,
        )
    row(
        "latency, whole run",
        "latency",
        {"p50": snap.total_p50_ms, "p95": snap.total_p95_ms, "p99": snap.total_p99_ms, "max": snap.total_max_ms},
        True,
    )
    streamed = snap.ttft_p50_ms is not None or any(kind.stream for kind in profile.kinds)
    if streamed:
        row("TTFT", "ttft", {"p50": snap.ttft_p50_ms, "p95": snap.ttft_p95_ms, "p99": snap.ttft_p99_ms}, True)
        row("TPOT", "tpot", {"p50": snap.tpot_p50_ms, "p95": snap.tpot_p95_ms, "p99": snap.tpot_p99_ms}, True)
        row("ITL", "itl", {"p50": snap.itl_p50_ms, "p95": snap.itl_p95_ms, "p99": snap.itl_p99_ms}, True)
    # The SLA column gets the room the label and the value columns leave, each value as wide as it can get
    # ("999.99 ms") and padded by 2: the same room in every frame, so the cell does not change as values do.
    used = max(len(label) for label, *_ in rows) + 2 + 11 * len(stats)
    for label, family, cells, with_sla in rows:
        table.add_row(label, *cells, sla_cell(family, max(12, width - used)) if with_sla else "")
    if not any(rule.unit == "ms" for rule in profile.sla):
        table.columns.pop()  # no latency criteria: no SLA column
    return table


def _tokens_line(profile: Profile, snap: Snapshot, width: int) -> Text | None:
    if snap.output_tokens_per_s is None and not any(kind.api is not None for kind in profile.kinds):
        return None
    rule = _rule(profile, "output_tokens_per_s")
    rate = snap.output_tokens_per_s
    text = Text("output tokens/s ")
    text.append("-" if rate is None else f"{rate:,.1f}", style=_within(rule, rate) or "bold")
    if rule is not None:
        text.append(f" (SLA {rule.op} {rule.threshold:,.1f})", style="grey62")
    text.append(f"   output tokens {snap.output_tokens:,}")
    return _fit([text], width)


class LiveView:
    """The live panel, laid out for the console's width: nothing wraps at 80 columns; a max column from 100, short lines side by side from 110."""

    def __init__(self, profile: Profile, snap: Snapshot, width: int | None = None):
        self.profile = profile
        self.snap = snap
        self.width = width  # lay out for this many columns instead of the console's

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(40, self.width or options.max_width)
        yield from _lines(self.profile, self.snap, width)
        yield _latency_table(self.profile, self.snap, width)
        tokens = _tokens_line(self.profile, self.snap, width)
        if tokens is not None:
            yield tokens


def live_view(profile: Profile, snap: Snapshot, width: int | None = None) -> LiveView:
    """The live panel: progress and time left, phase (warm-up, stage), rates against the schedule, errors by kind, percentiles.

    Laid out for the console's width, or ``width`` columns when given.
    """
    return LiveView(profile, snap, width)


def status_line(profile: Profile, snap: Snapshot) -> str:
    """One plain line for logs (stdout not a terminal) with the live view's essentials."""
    state = _run_state(profile, snap)
    _, label = progress(profile, snap)
    parts = [label]
    if state == "warm-up":
        _, wlabel = warmup_progress(profile, snap)
        parts.append(f"warm-up {wlabel} (sent {snap.warmup_sent:,}, errors {snap.warmup_errors:,})")
    stage = _stage_text(profile, snap)
    if stage:
        parts.append(stage)
    if state == "done":
        parts.append(f"{snap.completed:,} requests, {_rate(snap.average_rps)} req/s overall")
    elif state != "warm-up" and snap.completed:
        parts.append(f"{_now(snap)} req/s now, {_rate(snap.average_rps)} avg")
    due = scheduled_rate(profile, snap)
    if due is not None and state in ("running", "warm-up"):
        expected = "~" if profile.load.arrival == "poisson" else ""
        parts.append(f"sent/s {_rate(snap.last_sent_rps)} of {expected}{_rate(due)} due")
    if state == "draining":
        parts.append(f"draining: {snap.stopping}, stopped sending" if snap.stopping else "draining: nothing more due")
    if state != "done":
        parts.append(f"in flight {snap.in_flight:,}")
    if snap.errors:
        share = f" ({snap.errors / snap.completed * 100:.2f} %)" if snap.completed else ""
        kinds = ", ".join(f"{k} {n:,}" for k, n in error_kinds(snap))
        parts.append(f"errors {snap.errors:,}{share}: {kinds}")
    else:
        parts.append("errors 0")
    if snap.status_codes:
        parts.append("status " + ", ".join(f"{code} {n:,}" for code, n in snap.status_codes[:4]))
    if snap.total_p50_ms is not None:
        parts.append(f"p50 {_ms(snap.total_p50_ms)}, p95 {_ms(snap.total_p95_ms)}, p99 {_ms(snap.total_p99_ms)}")
    if snap.ttft_p50_ms is not None:
        parts.append(f"TTFT p50 {_ms(snap.ttft_p50_ms)}, p95 {_ms(snap.ttft_p95_ms)}")
    if snap.tpot_p50_ms is not None:
        parts.append(f"TPOT p50 {_ms(snap.tpot_p50_ms)}, p95 {_ms(snap.tpot_p95_ms)}")
    if snap.itl_p50_ms is not None:
        parts.append(f"ITL p50 {_ms(snap.itl_p50_ms)}, p95 {_ms(snap.itl_p95_ms)}")
    if snap.output_tokens_per_s is not None:
        parts.append(f"{snap.output_tokens_per_s:,.1f} output tok/s")
    return f"[bench] {profile.name}: " + "; ".join(parts)


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


def steps_table(summary: dict[str, Any]) -> Table | None:
    """A session's steps, one row each: requests, errors and latency from when each step was due."""
    steps = summary.get("steps")
    if not steps:
        return None
    sessions = summary.get("sessions") or {}
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in (sessions.get("failures") or {}).items())
    caption = (
        f"sessions: {sessions.get('started', 0):,} started, {sessions.get('completed', 0):,} completed, "
        f"{sessions.get('failed', 0):,} failed{f' ({kinds})' if kinds else ''}, {sessions.get('unfinished', 0):,} unfinished; "
        f"{sessions.get('skipped_steps', 0):,} steps skipped after a failure"
    )
    table = Table(title="Steps", caption=caption, caption_justify="left")
    for name, justify in (("step", "left"), ("sent", "right"), ("ok", "right"), ("errors", "right"), ("p50", "right"), ("p95", "right"), ("p99", "right"), ("max", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name, step in steps.items():
        req, lat = step["requests"], step["latency"]
        failed = req["http_errors"] + req["client_errors"] + req["check_failures"]
        table.add_row(name, f"{req['sent']:,}", f"{req['ok']:,}", Text(f"{failed:,}", style="red" if failed else ""), *(_ms(lat.get(k)) for k in ("p50", "p95", "p99", "max")))
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
    """``p95 <= 800 ms``, ``error_rate <= 1 % (default)``, ``p95 <= 800 ms (any 10 s window)``, ``login p95 <= 300 ms``."""
    where = " (default)" if rule.default else (f" (any {rule.window_s:g} s window)" if rule.window_s is not None else "")
    step = f"{rule.step} " if rule.step is not None else ""
    return f"{step}{rule.name} {rule.op} {_in_unit(rule.unit, rule.threshold, short=True)}{where}"


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
        what += f", {load.requests:,} {_unit(profile)}"
    if load.duration_s is not None:
        what += f"{' or' if load.requests is not None else ','} {load.duration_s:g} s"
    elif load.stages and load.requests is None:
        what += f", {sum(s.duration_s for s in load.stages):g} s"
    if load.warmup_requests:
        what += f" + {load.warmup_requests:,} warm-up"
    elif load.warmup_s:
        what += f" + {load.warmup_s:g} s warm-up"
    return what


def run_header(profile: Profile, version: str) -> Group:
    """What is about to run, before it starts: target, load, workers and transport, SLA criteria, repeats (long lines wrap under their value)."""
    kinds = profile.kinds
    if profile.session:
        method = f"a session of {len(profile.session)} steps ({', '.join(step.name for step in profile.session)}) on"
    elif profile.conversation:
        method = f"{kinds[0].api} conversations of up to {max(len(row['turns']) for row in profile.data.rows)} turns on"  # type: ignore[union-attr]
    else:
        method = profile.target.method if len(kinds) <= 1 else f"{len(kinds)} request kinds"
        if len(kinds) == 1 and kinds[0].api is not None:  # what is sent: POST to the API's path, not target.method
            method = f"POST {kinds[0].api} on"
    where = redact_url(profile.target.url) if profile.target.url else "bundled mock server"
    workers = f"{profile.load.workers} worker{'s' if profile.load.workers != 1 else ''}"
    grid = Table.grid()
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row("  target  ", f"{method} {where}")
    grid.add_row("  load    ", f"{_load_words(profile)}; {workers}, {profile.client.transport}")
    grid.add_row("  SLA     ", ", ".join(_criterion(r) for r in profile.sla) or "none: the run passes whatever it measures")
    if profile.repeat > 1:
        judge = "the median" if profile.sla_options.repeat_judge == "median" else "the pessimistic bound of the 95 % CI"
        grid.add_row("  repeat  ", f"{profile.repeat} runs, each an independent sample; SLA judged on {judge}")
    return Group(Text.assemble((f"bench {version}", "bold"), "  ", (profile.name, "bold cyan")), grid)


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
    if summary.get("turns"):
        meaning = "each turn from when it was due (the previous turn's end)"
    elif summary.get("sessions"):
        meaning = "each step from when it was due (think time excluded)"
    elif summary.get("load_model") == "closed":
        meaning = "service time, from the actual send (closed loop)"
    else:
        meaning = "from the intended send (open loop: coordinated-omission safe)"
    rows.add_row("", Text(meaning, style="grey62"))
    sessions = summary.get("sessions")
    if sessions:
        failures = ", ".join(f"{kind} {n:,}" for kind, n in sessions["failures"].items())
        line = Text(f"{sessions['started']:,} started, {sessions['completed']:,} completed")
        if sessions["failed"]:
            line.append(f", {sessions['failed']:,} failed ({failures})", style="red")
        if sessions["unfinished"]:
            line.append(f", {sessions['unfinished']:,} unfinished", style="yellow")
        duration = sessions["duration"]
        if duration.get("count"):
            line.append(f"; duration p50 {_ms3(duration.get('p50'))} p95 {_ms3(duration.get('p95'))}")
        rows.add_row("conversations" if summary.get("turns") else "sessions", line)
        for number, turn in summary.get("turns", {}).items():
            ttft, lat = turn["ttft"], turn["latency"]
            shown = f"TTFT p50 {_ms3(ttft.get('p50'))} p95 {_ms3(ttft.get('p95'))}" if ttft.get("count") else f"p50 {_ms3(lat.get('p50'))} p95 {_ms3(lat.get('p95'))}"
            sent = turn["requests"]["sent"]
            tokens = f"  in {turn['input_tokens'] / sent:,.0f} tok/req" if sent else ""
            rows.add_row(f"  turn {number}", shown + tokens)
        for name, step in summary.get("steps", {}).items():
            lat = step["latency"]
            rate = step.get("error_rate")
            errors = "" if not rate else f"  errors {rate * 100:.3g} %"
            rows.add_row(f"  {name}", f"p50 {_ms3(lat.get('p50'))}  p95 {_ms3(lat.get('p95'))}  p99 {_ms3(lat.get('p99'))}{errors}")
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
    """Per criterion its threshold, what was measured and the result; for a repeated run the median, the 95 % CI and which was judged."""
    repeated = any(c.repeat is not None for c in verdict.checks)
    judged = next((c.repeat.get("judged_on") for c in verdict.checks if c.repeat is not None), "median")
    table = Table(title="SLA" if not repeated else f"SLA (judged on the {'median' if judged == 'median' else 'pessimistic bound of the 95 % CI'} of the runs)")
    columns = [("criterion", "left"), ("threshold", "right")]
    columns += [("median", "right"), ("95 % CI", "right"), ("judged", "right")] if repeated else [("measured", "right")]
    for name, justify in (*columns, ("result", "center")):
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
        if repeated:
            spread = check.repeat or {}
            interval = _interval(rule.unit, spread.get("ci95_low"), spread.get("ci95_high"))
            table.add_row(rule.label, threshold, _in_unit(rule.unit, spread.get("median")), interval, measured, result)
        else:
            table.add_row(rule.label, threshold, measured, result)
    notes = [f"{c.rule.label}: {c.note}" for c in verdict.checks if c.note]
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def _interval(unit: str, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    if unit == "ratio":
        return f"[{low * 100:.3g}, {high * 100:.3g}] %"
    if unit == "ms":
        return f"[{_ms3(low)}, {_ms3(high)}]"
    return f"[{low:,.1f}, {high:,.1f}]"


#: A repeated run's table rows: (label, aggregate path, unit).
REPEAT_ROWS = (
    *((f"latency {p}", ("latency", p), "ms") for p in ("p50", "p90", "p95", "p99", "max", "mean")),
    ("req/s", ("rps",), "req/s"),
    ("error rate", ("error_rate",), "ratio"),
    *((f"{f.upper()} {p}", (f, p), "ms") for f in ("ttft", "tpot") for p in ("p50", "p95", "p99")),
    ("output tok/s", ("output_tokens_per_s",), "tok/s"),
)


def _repeat_value(unit: str, value: float | None) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return _ms3(value)
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    return f"{value:,.1f}"


def repeat_table(aggregate: dict[str, Any], numbers: list[int] | None = None, median_run: int | None = None) -> Table:
    """A repeated run's figures: per metric each run's value, the median and the 95 % CI (the method in the caption)."""
    runs = aggregate.get("counted_runs") or list(range(1, aggregate.get("runs", 0) + 1))
    table = Table(title=f"Repeated runs: {len(runs)} completed, median and 95 % CI")
    table.add_column("metric")
    for k in runs:
        table.add_column(f"run {k}" + (" *" if k == median_run else ""), justify="right")
    table.add_column("median", justify="right", style="bold")
    table.add_column("95 % CI", justify="right")
    for label, path, unit in REPEAT_ROWS:
        node: Any = aggregate
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        cells = [_repeat_value(unit, v) for v in node["values"]]
        table.add_row(label, *cells, _repeat_value(unit, node["median"]), _interval(unit, node["ci95_low"], node["ci95_high"]))
    caption = f"95 % CI: {aggregate.get('method_text', aggregate.get('method'))}"
    if median_run:
        caption += "; * the median run (by latency p95), whose figures the report's top level shows"
    table.caption, table.caption_justify = caption, "left"
    return table


def repeat_run_line(k: int, n: int, summary: dict[str, Any], status: str) -> str:
    """One line as run k of n ends: its status and the figures the aggregate takes."""
    lat = summary["latency"]
    rps, rate = summary.get("rps"), summary.get("error_rate")
    figures = "  ".join(f"{p} {_ms3(lat.get(p))}" for p in ("p50", "p95", "p99"))
    return (
        f"run {k} of {n}: {status}, {summary['requests']['sent']:,} req, "
        + ("-" if rps is None else f"{rps:,.1f} req/s")
        + f", {figures}, errors "
        + ("-" if rate is None else f"{rate * 100:.2f} %")
    )


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
    bursts = gen.get("send_bursts")
    if bursts:
        table.add_row("sends per busy ms p50 / p90 / p99 / max", f"{bursts['p50']} / {bursts['p90']} / {bursts['p99']} / {bursts['max']}")
    for worker, cpu in sorted(gen.get("worker_cpu", {}).items()):
        table.add_row(f"worker {worker} CPU", f"{cpu * 100:.0f} %")
    if gen.get("loop_lag_p99_ms") is not None:
        table.add_row("event-loop lag p50 / p99 / max", f"{_ms(gen['loop_lag_p50_ms'])} / {_ms(gen['loop_lag_p99_ms'])} / {_ms(gen['loop_lag_max_ms'])}")
    if gen.get("parent_cpu") is not None:
        table.add_row("parent CPU (aggregator, live view)", f"{gen['parent_cpu'] * 100:.0f} %")
    verdict = Text("yes", style="green") if trust.get("trusted", True) else Text("NO", style="bold red")
    table.add_row("results trustworthy", verdict)
    return table


def compare_table(labels: list[str], table: dict[str, list[Any]], *, title: str) -> Table:
    """Each run's value per metric, and for the others the change against the first: green better, red worse."""
    from bench.engine.results.compare import metric_info, show_change

    out = Table(title=title)
    out.add_column("metric")
    for i, label in enumerate(labels):
        out.add_column(label if i == 0 else f"{label}", justify="right")
    for metric, sides in table.items():
        unit, lower_better = metric_info(metric)  # type: ignore[misc]
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

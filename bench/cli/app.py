"""The ``bench`` command: parse flags, call the engine, render, and pick the exit code (here only).

Exit codes: 0 SLA met; 1 SLA not met; 2 invalid input (before any process
starts); 3 the run could not be measured (every request failed without an HTTP
response, or a worker crashed); 130 interrupted. With 3 and 130 the report of
what was measured is still written.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from enum import IntEnum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from bench.engine.errors import BenchError, ProfileError, RunError
from bench.units import UnitError, parse_duration
from bench.engine.results.exports import markdown_summary
from bench.engine.results.gate import failure_alarm
from bench.engine.plan.profile import Profile, load_profile, load_scenarios, profile_from_url
from bench.engine.results.report import json_safe, latency_meaning
from bench.engine.runner import ABORTED, CRASHED, INTERRUPTED, UNMEASURABLE, RunResult, run as run_profile
from bench import __version__
from bench.cli import render


class ExitCode(IntEnum):
    OK = 0
    SLA_FAILED = 1
    USAGE = 2
    RUN_ERROR = 3
    INTERRUPTED = 130


EXIT_CODES_HELP = (
    "Exit codes: 0 SLA met; 1 SLA not met; 2 invalid profile or flags; "
    "3 run could not be measured (target unreachable for every request, worker crashed, or generator overloaded with strict: true); 130 interrupted."
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Load-test HTTP and inference APIs; gate CI on latency SLAs. " + EXIT_CODES_HELP,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def exit_code_for(result: RunResult) -> ExitCode:
    if result.status == INTERRUPTED:
        return ExitCode.INTERRUPTED
    if result.status in (CRASHED, UNMEASURABLE):
        return ExitCode.RUN_ERROR
    if result.profile.strict and not result.summary["trust"]["trusted"]:
        return ExitCode.RUN_ERROR
    if result.status == ABORTED:
        return ExitCode.SLA_FAILED
    return ExitCode.OK if result.verdict.passed else ExitCode.SLA_FAILED


def _fail_usage(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(ExitCode.USAGE)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"bench {__version__}", highlight=False)
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Load-test HTTP and inference APIs; gate CI on latency SLAs."""


RUN_EXAMPLES = """Examples:

  bench run profiles/sla.yaml

  bench run http://127.0.0.1:8000/v1/x --concurrency 20 --requests 400 --sla p95=800ms,error_rate=1%

  bench run https://api.example.com/v1/chat -m POST -H 'Authorization: Bearer $TOKEN' --body @req.json --rate 50/s --duration 30s
"""


@app.command(epilog=RUN_EXAMPLES)
def run(
    target: str = typer.Argument(..., metavar="PROFILE|URL", help="A YAML load profile, or a URL to load-test with the flags alone."),
    workers: Optional[int] = typer.Option(None, help="Worker processes (default: CPU count)."),
    concurrency: Optional[int] = typer.Option(None, help="Closed loop: total requests in flight."),
    rate: Optional[str] = typer.Option(None, help="Open loop: total arrivals per second, e.g. 500/s."),
    requests: Optional[int] = typer.Option(None, help="Measured requests to send."),
    duration: Optional[str] = typer.Option(None, help="Measured duration, e.g. 30s."),
    url: Optional[str] = typer.Option(None, help="Target URL (instead of the bundled mock server)."),
    method: Optional[str] = typer.Option(None, "--method", "-m", help="HTTP method (default GET)."),
    header: Optional[list[str]] = typer.Option(None, "--header", "-H", help="A request header, 'Name: value' (repeatable)."),
    body: Optional[str] = typer.Option(None, "--body", "-d", help="Request body: a string, or @file (JSON gets a JSON Content-Type)."),
    timeout: Optional[str] = typer.Option(None, help="Per-request timeout, e.g. 10s (default 30s)."),
    sla: Optional[str] = typer.Option(None, help="The SLA gate, e.g. p95=800ms,error_rate=1% (replaces the profile's)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the JSON report here."),
    csv_path: Optional[str] = typer.Option(None, "--csv", help="Write one CSV row per request here."),
    hlog_path: Optional[str] = typer.Option(None, "--hlog", help="Write the HdrHistogram interval log (.hlog) here."),
    junit_path: Optional[str] = typer.Option(None, "--junit", help="Write the SLA verdict as JUnit XML here."),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write the HTML report (as `bench report` does) here, after the JSON."),
    chunks_path: Optional[str] = typer.Option(None, "--chunks", help="Write each request's body pieces with their arrival times here (JSON lines)."),
    scenario: Optional[str] = typer.Option(None, help="Run only this scenario of a profile with scenarios."),
    metrics_port: Optional[str] = typer.Option(None, help="Serve live Prometheus metrics on [HOST:]PORT/metrics while running (0: any free port, printed)."),
    metrics_linger: Optional[str] = typer.Option(None, help="After the run, keep /metrics up until scraped, at most this long (default 2s)."),
    otlp: Optional[str] = typer.Option(None, help="Push the live metrics over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 (needs the otel extra)."),
    engine: Optional[str] = typer.Option(None, help="Where workers run: local (default) or ray (pip install 'bench-loadtest[ray]')."),
    ray_address: Optional[str] = typer.Option(None, help="With --engine ray: auto, HOST:PORT, or local (start a local Ray)."),
    on_worker_failure: Optional[str] = typer.Option(None, help="stop (default: exit 3, report incomplete) or continue (record the gap)."),
    repeat: Optional[int] = typer.Option(
        None, help="Run the profile N times as independent samples: per metric each run, the median and a 95 % CI; the SLA judged on the median (load.repeat)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress."),
    details: bool = typer.Option(False, "--details", help="The full tables at the end (every percentile, status, error kind, the self-check)."),
) -> None:
    """Run a load profile (each of its scenarios in turn), or load-test a URL; show progress and results; exit by the SLA verdict.

    Given a URL instead of a profile, the flags are the profile: without load flags
    it sends 200 requests from 50 users (as hey and oha do).

    Exit codes: 0 SLA met; 1 SLA not met (or aborted by abort_on_fail); 2 invalid profile or
    flags; 3 run could not be measured (target unreachable for every request, a worker
    crashed, or the generator could not keep up and the profile says strict: true);
    130 interrupted.
    """
    overrides = {
        "workers": workers,
        "concurrency": concurrency,
        "rate": rate,
        "requests": requests,
        "duration": duration,
        "url": url,
        "method": method,
        "header": header or None,
        "body": body,
        "timeout": timeout,
        "sla": sla,
        "json": json_path,
        "csv": csv_path,
        "hlog": hlog_path,
        "junit": junit_path,
        "html": html_path,
        "chunks": chunks_path,
        "metrics_port": metrics_port,
        "metrics_linger": metrics_linger,
        "otlp": otlp,
        "engine": engine,
        "ray_address": ray_address,
        "on_worker_failure": on_worker_failure,
        "repeat": repeat,
    }
    try:
        profiles = _load(target, overrides, scenario)
    except ProfileError as exc:
        raise _fail_usage(str(exc)) from None
    results: list[RunResult] = []
    codes: list[ExitCode] = []
    for prof in profiles:
        if len(profiles) > 1:
            console.rule(f"scenario {prof.name}", style="cyan")
        if not quiet:
            console.print(render.run_header(prof, __version__), highlight=False)
        try:
            result = _run_repeated(prof, quiet) if prof.repeat > 1 else _run_with_progress(prof, quiet)
        except ProfileError as exc:
            raise _fail_usage(str(exc)) from None
        except RunError as exc:
            err_console.print(f"[bold red]run failed:[/] {escape(str(exc))}", highlight=False)
            codes.append(ExitCode.RUN_ERROR)
            break
        except BenchError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            codes.append(ExitCode.RUN_ERROR)
            break
        _write_html(result)
        _print_result(result, details, alone=len(profiles) == 1)
        _append_step_summary(result)
        results.append(result)
        codes.append(exit_code_for(result))
        if codes[-1] == ExitCode.INTERRUPTED:
            break
    regression = _compare_scenarios(results) if len(results) > 1 else ExitCode.OK
    final = max([*codes, regression], key=_severity) if codes else ExitCode.OK
    if len(profiles) > 1:
        _print_overall(results, codes, regression, final, len(profiles))
    raise typer.Exit(final)


def _load(target: str, overrides: dict, scenario: str | None) -> list[Profile]:
    """A URL is a profile made of the flags; anything else is a profile file."""
    if "://" in target:
        if scenario is not None:
            raise ProfileError("command line", "scenarios", "--scenario picks a scenario of a profile file, not of a URL", flag="--scenario")
        return [profile_from_url(target, overrides)]
    path = Path(target)
    if not path.exists() and not target.endswith((".yaml", ".yml")) and re.match(r"^[\w.-]+:\d+(/|$)", target):
        raise ProfileError(target, "", f"no such profile file; to load-test a URL, give its scheme: http://{target}")
    return load_scenarios(path, overrides, only=scenario)


def _print_overall(results: list[RunResult], codes: list[ExitCode], regression: ExitCode, final: ExitCode, planned: int) -> None:
    """One line for a run of several scenarios, matching the exit code: which scenario decided it."""
    words = {ExitCode.OK: "✓ SLA met", ExitCode.SLA_FAILED: "✗ SLA not met", ExitCode.RUN_ERROR: "✗ not measured", ExitCode.INTERRUPTED: "interrupted"}
    each = [f"{r.profile.name} {words.get(c, c.name)}" for r, c in zip(results, codes)]
    if len(codes) > len(results):
        each.append("run failed")
    if len(each) < planned:
        each.append(f"{planned - len(each)} not run")
    if regression != ExitCode.OK:
        each.append("✗ a regression beyond compare.fail_on_regression")
    style = "bold green" if final == ExitCode.OK else ("bold yellow" if final == ExitCode.INTERRUPTED else "bold red")
    console.print(f"[{style}]overall:[/] {escape(', '.join(each))} - exit code {int(final)}", highlight=False)


def _write_html(result: RunResult) -> None:
    """The run's HTML report, when asked for (--html or output.html); a failure to write it is a note, the run stands."""
    path = result.profile.output.html_path
    if path is None:
        return
    from bench.cli import html_report  # not on the start-up path

    try:
        json_path = result.profile.output.json_path
        html_report.write_report(path, [result.report], sources=[str(json_path) if json_path else f"{result.profile.name} (this run)"])
    except (OSError, html_report.ReportInputError) as exc:
        err_console.print(f"[yellow]note:[/] could not write the HTML report {escape(str(path))}: {escape(str(exc))}", highlight=False)
        return
    result.written.append(path)


def _severity(code: ExitCode) -> int:
    """Which exit code wins when scenarios end differently: interrupted, then run error, then SLA failed."""
    return {ExitCode.OK: 0, ExitCode.SLA_FAILED: 1, ExitCode.RUN_ERROR: 2, ExitCode.USAGE: 3, ExitCode.INTERRUPTED: 4}[code]


def _append_step_summary(result: RunResult) -> None:
    """In GitHub Actions, add a Markdown summary of the run to the job's summary page."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(markdown_summary(json_safe(result.report)) + "\n")
    except OSError as exc:
        err_console.print(f"[yellow]note:[/] could not write GITHUB_STEP_SUMMARY {escape(path)}: {escape(str(exc))}", highlight=False)


def _compare_scenarios(results: list[RunResult]) -> ExitCode:
    """Side by side: every scenario against the first, and the profile's regression bounds if any."""
    from bench.engine.results.compare import compare as compare_runs, parse_bounds, regressions, run_from_report, runs_of  # not on the start-up path
    sides = []
    for r in results:
        report = json_safe(r.report)
        sides.append(runs_of(report, r.profile.name, label=r.profile.name) or [run_from_report(report, r.profile.name)])
    labels = [r.profile.name + (f" ({len(side)} runs)" if len(side) > 1 else "") for r, side in zip(results, sides)]
    table = compare_runs(sides)
    bounds = parse_bounds(results[0].profile.fail_on_regression or "")
    console.print(render.compare_table(labels, table, title="Scenarios compared (change against the first)"))
    found = regressions(table, bounds, labels)
    for line in found:
        err_console.print(f"[bold red]regression:[/] {escape(line)}", highlight=False)
    return ExitCode.SLA_FAILED if found else ExitCode.OK


def _run_with_progress(prof, quiet: bool) -> RunResult:
    if quiet:
        return run_profile(prof)
    if console.is_terminal:
        with Live(console=console, auto_refresh=False, transient=False) as live:

            def show(snap):
                live.update(render.live_view(prof, snap), refresh=True)

            return run_profile(prof, on_progress=show)
    last = [0.0]

    def log(snap):
        now = time.monotonic()
        if now - last[0] >= 5.0 or snap.done:  # every 5 s, and the run's own figures at the end
            last[0] = now
            print(render.status_line(prof, snap), flush=True)

    return run_profile(prof, on_progress=log)


def _run_repeated(prof: Profile, quiet: bool) -> RunResult:
    """``--repeat N``: each run under a "run k of N" rule with its own live view (or status lines), a line as it ends."""
    from bench.engine.repeat import run as run_repeated

    live: list[Live] = []
    last = [0.0]
    current: list[Profile] = [prof]

    def start(k: int, n: int, run_prof: Profile) -> None:
        current[:] = [run_prof]
        if quiet:
            return
        console.rule(f"run {k} of {n}", style="cyan")
        if console.is_terminal:
            live[:] = [Live(console=console, auto_refresh=False, transient=False)]
            live[0].start()
        last[0] = 0.0

    def progress(snap) -> None:
        if quiet:
            return
        if live:
            live[0].update(render.live_view(current[0], snap), refresh=True)
            return
        now = time.monotonic()
        if now - last[0] >= 5.0 or snap.done:
            last[0] = now
            print(render.status_line(current[0], snap), flush=True)

    def end(k: int, n: int, result: RunResult) -> None:
        if live:
            live.pop().stop()
        if not quiet:
            console.print(escape(render.repeat_run_line(k, n, result.summary, result.status)), highlight=False)

    try:
        return run_repeated(prof, progress, on_run_start=start, on_run_end=end)
    finally:
        while live:
            live.pop().stop()


def _print_result(result: RunResult, details: bool, *, alone: bool = True) -> None:
    """The verdict and the numbers that matter (all tables with --details), then notes, warnings, files and the verdict line."""
    summary = dict(result.summary, load_model=result.profile.load.model)
    meaning = latency_meaning(result.profile)
    aggregate = getattr(result, "aggregate", None)
    if aggregate is not None:  # a repeated run: the runs side by side and the SLA on their medians (or bounds)
        if details and getattr(result, "representative", 0):
            console.print(f"The median run (run {result.representative}, by latency p95) in full:", highlight=False)  # type: ignore[attr-defined]
            console.print(render.latency_table(summary, meaning))
            console.print(render.requests_table(summary))
            console.print(render.generator_table(summary))
        if aggregate.get("runs"):
            console.print(render.repeat_table(aggregate, median_run=getattr(result, "representative", None)))
        if result.verdict.checks:
            console.print(render.sla_table(result.verdict))
    elif details:
        console.print(render.latency_table(summary, meaning))
        console.print(render.requests_table(summary))
        steps = render.steps_table(summary)
        if steps is not None:
            console.print(steps)
        inference = render.inference_table(summary)
        if inference is not None:
            console.print(inference)
        console.print(render.generator_table(summary))
        if result.verdict.checks:
            console.print(render.sla_table(result.verdict))
    else:
        console.print(render.summary_screen(summary, result.verdict))
    alarm = failure_alarm(result.summary)
    for message in result.messages:
        if message != alarm:
            err_console.print(f"[yellow]note:[/] {escape(message)}", highlight=False)
    trust = result.summary["trust"]
    if not trust["trusted"]:
        consequence = "strict: true, so the run fails with exit code 3" if result.profile.strict else "set strict: true to fail the run on this"
        err_console.print(f"[bold yellow]warning: these results may not be trustworthy ({consequence}):[/]", highlight=False)
        for reason in trust["reasons"]:
            err_console.print(f"  - {escape(reason)}", highlight=False)
    if alarm is not None:
        err_console.print(f"[bold red]✗ {escape(alarm)}[/]", highlight=False)
    for path in result.written:
        console.print(f"wrote {escape(str(path))}", highlight=False)
    code = exit_code_for(result)
    verdicts = {
        ExitCode.OK: "[bold green]SLA met[/]" if result.verdict.checks else "[green]completed (no SLA criteria)[/]",
        ExitCode.SLA_FAILED: "[bold red]SLA not met[/]" + (" (run aborted early)" if result.status == ABORTED else ""),
        ExitCode.RUN_ERROR: (
            "[bold red]results not trustworthy (strict)[/]"
            if result.status not in (CRASHED, UNMEASURABLE)
            else f"[bold red]run could not be measured ({result.status})[/]"
        ),
        ExitCode.INTERRUPTED: "[bold yellow]interrupted[/]: partial results",
    }
    # With several scenarios the exit code is the overall line's, printed after the last one.
    console.print(f"{verdicts[code]} - exit code {int(code)}" if alone else f"scenario {escape(result.profile.name)}: {verdicts[code]}", highlight=False)


@app.command()
def validate(
    profile: Path = typer.Argument(..., help="YAML load profile."),
    scenario: Optional[str] = typer.Option(None, help="Check only this scenario of a profile with scenarios (default: all)."),
) -> None:
    """Check a profile without running it, every scenario of it (exit 0 if valid, 2 if not)."""
    try:
        profiles = load_scenarios(profile, only=scenario)
    except ProfileError as exc:
        raise _fail_usage(str(exc)) from None
    for prof in profiles:
        load = prof.load
        if load.replay is not None:
            what = f"replay {load.replay.file} ({load.replay.count:,} lines over {load.replay.span_s:g} s, speed {load.replay.speed:g})"
        elif load.model == "open":
            what = f"rate {load.rate_per_s:g}/s ({load.arrival})" if load.rate_per_s is not None else f"ramping rate ({load.arrival})"
        else:
            what = f"concurrency {load.concurrency}"
        target = prof.target.url or "the bundled mock server"
        name = f"{profile} ({prof.scenario})" if prof.scenario is not None else str(profile)
        console.print(escape(f"{name}: valid - {load.model} loop, {what}, {load.workers} worker(s), target {target}"), highlight=False)


@app.command()
def mock(
    profile: Optional[Path] = typer.Option(None, help="Take the mock settings from this profile's mock: section."),
    scenario: Optional[str] = typer.Option(None, help="With --profile: the scenario whose mock to serve, for a profile with scenarios."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback unless told otherwise)."),
    port: int = typer.Option(8080, help="Port to listen on (0: any free port)."),
    processes: int = typer.Option(1, help="Server processes sharing the port (SO_REUSEPORT)."),
    latency: Optional[str] = typer.Option(None, help="Fixed latency for every response, e.g. 20ms."),
    tls_cert: Optional[Path] = typer.Option(None, help="Serve HTTPS (HTTP/2 or HTTP/1.1 by ALPN) with this PEM certificate."),
    tls_key: Optional[Path] = typer.Option(None, help="The certificate's PEM private key (if not in the certificate file)."),
) -> None:
    """Run the bundled mock server in the foreground until Ctrl-C (HTTP/1.1 and h2c; HTTPS with --tls-cert)."""
    from bench.mock import MockConfig, MockConfigError, run_server, tls_context

    settings: dict = {}
    if profile is not None:
        try:
            prof = load_profile(profile, scenario=scenario)
        except ProfileError as exc:
            raise _fail_usage(str(exc)) from None
        if prof.mock is None:
            raise _fail_usage(f"{profile}: has a target.url, so it has no mock section to serve")
        config = prof.mock
    else:
        if latency is not None:
            settings["latency"] = {"model": "fixed", "delay": latency}
        try:
            config = MockConfig.from_mapping(settings)
        except MockConfigError as exc:
            raise _fail_usage(f"--latency: {exc}") from None
    if processes < 1:
        raise _fail_usage(f"--processes must be at least 1, got {processes}")
    ssl_context = None
    if tls_cert is not None:
        try:
            ssl_context = tls_context(str(tls_cert), str(tls_key) if tls_key else None)
        except (OSError, ValueError) as exc:
            raise _fail_usage(f"--tls-cert {tls_cert}: cannot load the certificate/key: {exc}") from None
    elif tls_key is not None:
        raise _fail_usage("--tls-key needs --tls-cert")
    scheme = "https" if ssl_context else "http"

    def ready(bound_port: int) -> None:
        console.print(f"mock server listening on {scheme}://{host}:{bound_port}/ (Ctrl-C to stop)", highlight=False)

    try:
        run_server(config, host=host, port=port, processes=processes, on_ready=ready, ssl_context=ssl_context)
    except OSError as exc:  # the bind: a usage problem, said in one line
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise _fail_usage(f"port {port} on {host} is already in use; pick another with --port (0: any free port)") from None
        raise _fail_usage(f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}") from None


GROUP_SEPARATOR = "::"


@app.command(context_settings={"ignore_unknown_options": False})
def compare(
    reports: list[str] = typer.Argument(
        ..., help="JSON reports: A.json B.json [C.json ...], or A1 A2 -- B1 B2 for several runs per side; a --repeat report counts as its runs; S.json#N is probe N of a search."
    ),
    fail_on_regression: Optional[str] = typer.Option(
        None, help="Exit 1 when a candidate is worse than the baseline by more than e.g. p95=10%,error_rate=0.5pp,p99=20ms."
    ),
    force: bool = typer.Option(False, help="Compare even when the runs offered different load (with a loud warning)."),
) -> None:
    """Compare runs against the first, from their stored histograms; gate CI on regressions.

    Exit codes: 0 no regression beyond the bounds; 1 a regression; 2 unreadable reports,
    bad bounds, or runs that are not comparable (without --force).
    """
    from bench.engine.results.compare import CompareError, comparability, load_runs, parse_bounds, regressions
    from bench.engine.results.compare import compare as compare_runs

    groups: list[list[str]] = [[]]
    for item in reports:
        if item == GROUP_SEPARATOR:
            groups.append([])
        else:
            groups[-1].append(item)
    if len(groups) == 1:
        groups = [[path] for path in groups[0]]
    if any(not g for g in groups) or len(groups) < 2:
        raise _fail_usage("compare needs at least two sides: A.json B.json, or A1.json A2.json -- B1.json B2.json")
    try:
        loaded = [[load_runs(path) for path in group] for group in groups]  # a repeated report: its runs
        bounds = parse_bounds(fail_on_regression or "")
    except CompareError as exc:
        raise _fail_usage(str(exc)) from None
    sides = [[run for runs in group for run in runs] for group in loaded]
    problems = comparability([run for side in sides for run in side])
    if problems:
        for problem in problems:
            err_console.print(f"[bold red]not comparable:[/] {escape(problem)}", highlight=False)
        if not force:
            raise _fail_usage("these runs offered different load; compare like with like, or pass --force")
        err_console.print("[bold yellow]warning: comparing runs that offered different load (--force)[/]", highlight=False)
    labels = [" + ".join(_runs_label(path, runs) for path, runs in zip(paths, group)) for paths, group in zip(groups, loaded)]
    table = compare_runs(sides)
    many = any(len(side) > 1 for side in sides)
    title = "Comparison (median of runs [95 % CI: Student-t of the mean for 2-5 runs, order statistics of the median from 6])" if many else "Comparison (change against the first)"
    console.print(render.compare_table(labels, table, title=title))
    found = regressions(table, bounds, labels)
    for line in found:
        err_console.print(f"[bold red]regression:[/] {escape(line)}", highlight=False)
    if bounds and not found:
        console.print(escape("no regression beyond " + ", ".join(b.text for b in bounds)), highlight=False)
    raise typer.Exit(ExitCode.SLA_FAILED if found else ExitCode.OK)


def _runs_label(path: str, runs: list) -> str:
    """A report's name in the comparison: ``base.json``, or ``base.json (3 runs)`` for a repeated report."""
    name = Path(path).name
    return f"{name} ({len(runs)} runs)" if len(runs) > 1 else runs[0].label


@app.command()
def search(
    profile: Path = typer.Argument(..., help="YAML load profile with SLA criteria: each probe is judged by all of them."),
    over: str = typer.Option(..., help="What to grow: concurrency (users, closed loop) or rate (requests per second, open loop)."),
    min_level: str = typer.Option("1", "--min", help="The first level to probe (users, or e.g. 50/s)."),
    max_level: Optional[str] = typer.Option(None, "--max", help="The highest level to probe (default 1024 users or 100000/s)."),
    tolerance: str = typer.Option("10%", help="Stop bisecting when the gap is within this share of the answer (concurrency goes on to adjacent integers near it)."),
    require: Optional[str] = typer.Option(None, help="Exit 1 unless the capacity found is at least this level."),
    budget: Optional[str] = typer.Option(None, help="Stop probing after this long, e.g. 10m; the answer so far stands."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the search report (every probe's full report) here."),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write the search's HTML page (the latency-throughput curve) here."),
    scenario: Optional[str] = typer.Option(None, help="Search this scenario of a profile with scenarios."),
    workers: Optional[int] = typer.Option(None, help="Worker processes (default: the profile's)."),
    url: Optional[str] = typer.Option(None, help="Target URL (instead of the bundled mock server)."),
    engine: Optional[str] = typer.Option(None, help="Where workers run: local (default) or ray."),
    ray_address: Optional[str] = typer.Option(None, help="With --engine ray: auto, HOST:PORT, or local."),
    metrics_port: Optional[str] = typer.Option(None, help="Serve each probe's live Prometheus metrics on [HOST:]PORT/metrics (one port for the whole search)."),
    metrics_linger: Optional[str] = typer.Option(None, help="After each probe, keep /metrics up until scraped, at most this long (default 2s)."),
    otlp: Optional[str] = typer.Option(None, help="Push each probe's live metrics over OTLP/HTTP to this collector."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress."),
) -> None:
    """Find the most load that still meets the profile's SLA: grow until a probe fails, then bisect.

    Exit codes: 0 the search found its answer (and it meets --require); 1 the capacity is below --require;
    2 invalid input; 3 no answer about the target (the generator was the bottleneck, or no request got an answer);
    130 interrupted (the report of what was measured is still written).
    """
    from bench.search import OVER, parse_level, search as run_search, search_report

    if over not in OVER:
        raise _fail_usage(f"--over: expected concurrency or rate, got {over!r}")
    def level(flag: str, value: str | None, default: float | None) -> float | None:
        try:
            return parse_level(over, value) if value is not None else default
        except ValueError as exc:
            raise _fail_usage(f"{flag}: {exc}") from None

    low = level("--min", min_level, None)
    high = level("--max", max_level, max(low or 1.0, 1024.0 if over == "concurrency" else 100_000.0))
    needed = level("--require", require, None)
    assert low is not None and high is not None
    if high < low:
        raise _fail_usage(f"--max {max_level} is below --min {min_level}")
    try:
        share = float(tolerance.strip().rstrip("%")) / (100 if tolerance.strip().endswith("%") else 1)
    except ValueError:
        raise _fail_usage(f"--tolerance: expected a share such as 10%, got {tolerance!r}") from None
    if not 0.001 <= share < 1:
        raise _fail_usage(f"--tolerance: must be at least 0.1% and below 100%, got {tolerance!r}")
    try:
        budget_s = parse_duration(budget) if budget is not None else None
    except UnitError as exc:
        raise _fail_usage(f"--budget: {exc}") from None
    for flag, out in (("--json", json_path), ("--html", html_path)):
        if out is None:
            continue
        folder = Path(out).resolve().parent
        if Path(out).is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
            raise _fail_usage(f"{flag}: cannot write {out}: not a file in a writable directory")

    overrides = {
        "workers": workers, "url": url, "engine": engine, "ray_address": ray_address,
        "metrics_port": metrics_port, "metrics_linger": metrics_linger, "otlp": otlp,
    }  # fmt: skip
    probing: list[Profile] = []  # the probe now running, for the live view
    live_view = not quiet and console.is_terminal

    def on_probe(number: int, level: float, prof: Profile) -> None:
        probing[:] = [prof]
        if not quiet:
            console.rule(f"probe {number}: {render.level_text(level, over)}", style="cyan")

    def on_verdict(probe) -> None:
        console.print(render.probe_line(probe, over), highlight=False)

    try:
        with Live(console=console, auto_refresh=False, transient=True) if live_view else contextlib.nullcontext() as view:

            def on_progress(snap) -> None:
                if view is not None and probing:
                    view.update(render.live_view(probing[0], snap), refresh=True)

            result = run_search(
                profile, over, low, high, overrides=overrides, scenario=scenario, tolerance=share,
                budget_s=budget_s, require=needed, on_probe=on_probe, on_progress=on_progress, on_verdict=on_verdict,
            )  # fmt: skip
    except ProfileError as exc:
        raise _fail_usage(str(exc)) from None
    except BenchError as exc:
        err_console.print(f"[bold red]search failed:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(ExitCode.RUN_ERROR) from None
    console.print(render.search_table(result))
    document = search_report(result, load_profile(profile, overrides, scenario=scenario))
    code = _search_exit_code(result, needed)
    try:
        if json_path is not None:
            from bench.engine.results.report import write_json

            write_json(Path(json_path), document)
            console.print(f"wrote {escape(json_path)}", highlight=False)
        if html_path is not None:
            from bench.cli import html_report  # not on the start-up path

            html_report.write_report(Path(html_path), [document], sources=[json_path or str(profile)])
            console.print(f"wrote {escape(html_path)}", highlight=False)
    except OSError as exc:  # the disk went away after the check: the search stands, its file does not
        err_console.print(f"[bold red]error:[/] could not write the search report: {escape(str(exc))}", highlight=False)
        code = max(code, ExitCode.RUN_ERROR, key=_severity)
    style = "bold green" if code == ExitCode.OK else ("bold yellow" if code == ExitCode.INTERRUPTED else "bold red")
    console.print(f"[{style}]{escape(render.search_answer(result))}[/] - exit code {int(code)}", highlight=False)
    raise typer.Exit(code)


def _search_exit_code(result, needed: float | None) -> ExitCode:
    """130 interrupted; 3 no answer about the target; with --require, 1 when the capacity is below it."""
    if result.stopped == "stopped":
        return ExitCode.INTERRUPTED
    if not result.measured:
        return ExitCode.RUN_ERROR
    if needed is not None and (result.capacity is None or result.capacity < needed):
        return ExitCode.SLA_FAILED
    return ExitCode.OK


def main() -> None:
    """Console-script entry point."""
    argv = sys.argv[1:]
    if argv[:1] == ["compare"] and "--" in argv:
        # click swallows "--"; keep it as the separator between the sides' runs.
        sys.argv[1:] = [GROUP_SEPARATOR if a == "--" else a for a in argv]
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., metavar="RUN.json", help="JSON reports written by `bench run --json` (several are overlaid for comparison); a `bench search --json` report alone, or S.json#N for its probe N."),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", help="The HTML file to write."),
    title: Optional[str] = typer.Option(None, help="Page title (default: from the run names)."),
    force: bool = typer.Option(False, help="Overlay runs that offered different load or hit different targets (the page says so at the top)."),
) -> None:
    """Write one self-contained HTML report of one or more runs: SLA tables, charts over time, percentile distributions.

    The page opens offline (HTML and SVG, no script). Runs that are not comparable,
    as `bench compare` judges them, are refused unless --force.
    Exit codes: 0 written; 2 a bad input file, runs not comparable, or an unwritable output path.
    """
    import os

    try:
        if output.is_dir():
            raise _fail_usage(f"--output {output}: is a directory")
        folder = output.parent
        if not folder.is_dir():
            raise _fail_usage(f"--output {output}: directory {folder} does not exist")
    except OSError as exc:
        raise _fail_usage(f"--output {str(output)[:80]}: unusable path: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise _fail_usage(f"--output {output}: directory {folder} is not writable")
    from bench.cli import html_report

    try:
        page, count = html_report.build(runs, title=title, force=force)
    except html_report.ReportInputError as exc:
        raise _fail_usage(str(exc)) from None
    data = page.encode("utf-8")
    partial = output.with_name(f".{output.name}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise _fail_usage(f"--output {output}: cannot write: {exc.strerror or exc}") from None
    console.print(f"wrote {escape(str(output))} ({count} run{'s' if count != 1 else ''}, {len(data) / 1e3:,.0f} kB)", highlight=False)

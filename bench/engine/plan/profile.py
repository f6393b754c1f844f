"""Load and validate a YAML load profile into frozen dataclasses.

All checking of user input happens here, before any process starts: every
error names the file, the dotted field and the value, and unknown keys get the
nearest valid name (a typo must never become a silently ignored setting or a
silently passing SLA gate). Nothing here opens sockets or starts processes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import difflib
import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

import orjson
import yaml

from bench.engine.errors import ProfileError
from bench.engine.plan.requests import (
    API_PRESETS,
    DATA_ORDERS,
    Check,
    DataSpec,
    RequestKind,
    preset_fields,
    read_rows,
    synthetic_rows,
    template_fields,
)
from bench.engine.plan.replay import MAX_TRACE_MS, Replay, read_trace
from bench.mock.config import MockConfig, MockConfigError
from bench.sessions.spec import CAPTURE_SOURCES, Capture, Step, Think

MAX_SYNTHETIC_ROWS = 100_000
MAX_SYNTHETIC_WORDS = 5_000_000  # count x largest prompt: about 0.5 µs a word to generate
from bench.units import UnitError, parse_duration, parse_rate, parse_size

OPEN_LOOP = "open"
CLOSED_LOOP = "closed"
ARRIVALS = ("constant", "poisson")
TRANSPORTS = ("aiohttp", "fast", "h2")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_IN_FLIGHT = 1000

#: SLA metric name -> (summary key, comparison, unit). Latency thresholds are in ms.
SLA_METRICS: dict[str, tuple[str, str, str]] = {
    "p50": ("p50", "<=", "ms"),
    "p90": ("p90", "<=", "ms"),
    "p95": ("p95", "<=", "ms"),
    "p99": ("p99", "<=", "ms"),
    "p99.9": ("p99.9", "<=", "ms"),
    "max": ("max", "<=", "ms"),
    "mean": ("mean", "<=", "ms"),
    "error_rate": ("error_rate", "<=", "ratio"),
    "min_rps": ("rps", ">=", "req/s"),
    # Inference APIs (streamed responses; see README for the exact definitions).
    **{f"{family}.{stat}": (f"{family}.{stat}", "<=", "ms") for family in ("ttft", "tpot", "itl") for stat in ("p50", "p90", "p95", "p99", "p99.9", "max", "mean")},
    "min_output_tokens_per_s": ("output_tokens_per_s", ">=", "tok/s"),
    "min_goodput": ("goodput", ">=", "ratio"),
}
#: Metrics a window criterion can use (computed per second from latency histograms and counters).
WINDOW_METRICS = ("p50", "p90", "p95", "p99", "p99.9", "max", "mean", "error_rate", "min_rps")
#: The error criterion a gate gets when its profile has latency or throughput criteria but none on errors:
#: a service that fails every request must never pass a gate by default (k6 users write http_req_failed rate<0.01).
DEFAULT_ERROR_RATE = 0.01
#: Criteria that judge failed requests themselves (goodput never counts a failed request as good).
ERROR_CRITERIA = ("error_rate", "min_goodput")
#: What switches the default error criterion off, explicitly: ``error_rate: off`` (YAML reads a bare off as false).
SWITCHED_OFF = ("off", "none")
#: Settings in the sla section that are not criteria.
SLA_OPTIONS = ("error_aware", "min_samples", "windows", "fail_fast", "steps", "repeat_judge")
#: How a repeated run (load.repeat, --repeat) judges each criterion: on the median of the runs, or on its 95 % interval's pessimistic bound.
REPEAT_JUDGES = ("median", "bound")
#: The most runs one repeated run may make.
MAX_REPEAT = 1000
#: What a session step's own criteria may judge (sla.steps.NAME).
STEP_METRICS = ("p50", "p90", "p95", "p99", "p99.9", "max", "mean", "error_rate", "min_rps")


@dataclass(frozen=True, slots=True)
class Target:
    """What every request looks like. ``url`` is None when the bundled mock server is the target."""

    url: str | None
    method: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    timeout_s: float
    metrics_url: str | None = None  # the target's own Prometheus endpoint, scraped every second (bench.telemetry.scrape)
    metrics: tuple[str, ...] = ()  # which of its series: names or regexes (empty: all numeric series, up to a bound)


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a ramp: reach ``target`` (req/s or in-flight requests) linearly over ``duration_s``."""

    duration_s: float
    target: float


@dataclass(frozen=True, slots=True)
class Load:
    """How much load, for how long. ``model`` is open (arrival rate) or closed (fixed concurrency)."""

    model: str
    workers: int
    rate_per_s: float | None
    concurrency: int | None
    arrival: str
    seed: int
    max_in_flight: int
    requests: int | None
    duration_s: float | None
    warmup_requests: int
    warmup_s: float
    stages: tuple[Stage, ...]
    replay: Replay | None = None  # open loop at the trace's own times (replay.py)
    # Closed loop: the window the first users' starts are spread over (schedule.SpawnPlan); None: auto
    # (one response time, at most SPAWN_AUTO_S), 0: every user at once.
    spawn_s: float | None = None

    @property
    def peak_concurrency(self) -> int:
        """Most in-flight requests the run may ask for (closed loop: the largest stage)."""
        if self.model == CLOSED_LOOP:
            values = [self.concurrency or 0] + [int(s.target) for s in self.stages]
            return max(values)
        return self.max_in_flight


@dataclass(frozen=True, slots=True)
class Client:
    """Connection handling. ``pool_size`` None means: as many connections as requests may be in flight."""

    pool_size: int | None
    keepalive: bool
    connect_timeout_s: float
    transport: str = "aiohttp"
    tls_verify: bool = True
    max_body: int | None = None  # bytes read of one response at most; beyond: error "body_too_large"


@dataclass(frozen=True, slots=True)
class SlaRule:
    """One SLA criterion, e.g. ``p95 <= 800 ms``, as written in the profile."""

    name: str
    metric: str
    op: str
    threshold: float
    unit: str
    window_s: float | None = None
    abort_on_fail: bool = False
    grace_s: float = 0.0
    default: bool = False  # added by bench (the default error criterion), not written in the profile
    step: str | None = None  # a session step's own figures (sla.steps.NAME), not the whole run's

    @property
    def label(self) -> str:
        """How the criterion reads in tables: ``p95 <=``, ``p95 <= (any 10 s window)``, ``error_rate <= (default)``, ``login p95 <=``."""
        if self.step is not None:
            return f"{self.step} {self.name} {self.op}"
        if self.default:
            return f"{self.name} {self.op} (default)"
        if self.window_s is None:
            return f"{self.name} {self.op}"
        return f"{self.name} {self.op} (any {self.window_s:g} s window)"


@dataclass(frozen=True, slots=True)
class SlaOptions:
    """How the SLA criteria are judged.

    ``error_aware``: latency criteria count failed requests as infinitely slow.
    ``min_samples``: a criterion measured on fewer requests fails as not measurable.
    ``fail_fast``: stop the run as soon as a whole-run criterion can no longer pass (see ``gate.certain_failure``).
    ``repeat_judge``: with ``load.repeat`` above 1, judge each criterion on the median of the runs (``median``)
    or on the pessimistic bound of its 95 % interval (``bound``: the high bound of a ``<=`` criterion, the low of a ``>=``).
    """

    error_aware: bool = False
    min_samples: int = 1
    fail_fast: bool = False
    repeat_judge: str = "median"


@dataclass(frozen=True, slots=True)
class Output:
    """Where a run writes: JSON report, per-request CSV, HdrHistogram interval log, per-second CSV, JUnit XML, per-request chunk timings (JSONL)."""

    json_path: Path | None
    csv_path: Path | None
    hlog_path: Path | None = None
    series_csv_path: Path | None = None
    junit_path: Path | None = None
    html_path: Path | None = None  # written by the cli (bench run --html), not by the engine
    chunks_path: Path | None = None
    metrics_host: str = "127.0.0.1"  # live Prometheus metrics (bench.telemetry): where /metrics listens
    metrics_port: int | None = None  # None: no server; 0: any free port (printed)
    metrics_linger_s: float = 2.0  # after the run: until the final figures are scraped, at most this long
    otlp_url: str | None = None  # push the same metrics over OTLP/HTTP (needs the otel extra)
    otlp_interval_s: float = 5.0  # how often

    def extra_paths(self) -> tuple[Path | None, ...]:
        """The paths after json and csv, in the order of OUTPUT_FIELDS."""
        return (self.hlog_path, self.series_csv_path, self.junit_path, self.html_path, self.chunks_path)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Where the workers run: ``local`` processes, or Ray actors on a cluster (``address``: auto, HOST:PORT or local)."""

    kind: str = "local"
    address: str | None = None
    on_worker_failure: str = "stop"
    resource: str | None = None  # a custom Ray resource workers need (keeps them off the target's nodes)


ENGINES = ("local", "ray")


@dataclass(frozen=True, slots=True)
class Profile:
    """A fully validated profile. ``resolved`` is the mapping as understood, for the JSON report."""

    name: str
    source: str
    target: Target
    load: Load
    client: Client
    sla: tuple[SlaRule, ...]
    output: Output
    mock: MockConfig | None
    resolved: Mapping[str, Any] = field(repr=False)
    sla_options: SlaOptions = SlaOptions()
    strict: bool = False
    fail_on_regression: str | None = None
    kinds: tuple[RequestKind, ...] = ()
    data: DataSpec | None = None
    api_key_env: str | None = None
    goodput: tuple[tuple[str, float], ...] = ()
    engine: EngineConfig = EngineConfig()
    session: tuple[Step, ...] = ()  # ordered steps each virtual user runs, then starts again (see bench.sessions)
    repeat: int = 1  # load.repeat: run the profile this many times as independent samples (see bench.engine.repeat)
    scenario: str | None = None  # the key under ``scenarios`` this profile came from, if any
    turn_think: Think | None = None  # conversation.think: a user's pause before each turn after the first

    @property
    def plain(self) -> bool:
        """One fixed request, no checks or streaming: the transports' prebuilt fast path."""
        if self.session or self.conversation or len(self.kinds) > 1 or self.data is not None or self.api_key_env is not None or self.load.replay is not None:
            return False
        if self.output.chunks_path is not None:  # every response is read through a receiver that times its pieces
            return False
        kind = self.kinds[0] if self.kinds else None
        if kind is None:
            return True
        return kind.name == "default" and kind.api is None and kind.check is None and not kind.stream and kind.path is None

    @property
    def conversation(self) -> bool:
        """Multi-turn chat: every data row holds ``turns``, each turn sent with the whole history so far."""
        return self.data is not None and bool(self.data.rows) and "turns" in self.data.rows[0]

    @property
    def uses_mock(self) -> bool:
        return self.target.url is None


# --------------------------------------------------------------------------- loading

#: CLI override name -> dotted profile field.
OVERRIDE_FIELDS = {
    "workers": "load.workers",
    "concurrency": "load.concurrency",
    "rate": "load.rate",
    "requests": "load.requests",
    "duration": "load.duration",
    "url": "target.url",
    "method": "target.method",
    "header": "target.headers",  # a list of "Name: value", merged over the profile's headers
    "body": "target.body",  # a string, or @file
    "timeout": "target.timeout",
    "sla": "sla.",  # "p95=800ms,error_rate=1%": replaces the whole sla section
    "json": "output.json",
    "csv": "output.csv",
    "hlog": "output.hlog",
    "junit": "output.junit",
    "html": "output.html",
    "chunks": "output.chunks",
    "metrics_port": "output.metrics_port",  # [HOST:]PORT
    "metrics_linger": "output.metrics_linger",
    "otlp": "output.otlp",
    "engine": "engine.kind",
    "ray_address": "engine.address",
    "on_worker_failure": "engine.on_worker_failure",
    "repeat": "load.repeat",
}


def load_profile(
    path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None, *, scenario: str | None = None
) -> Profile:
    """Read, override and validate a profile file.

    Args:
        path: the YAML file.
        overrides: values from the command line, keyed by the names in
            ``OVERRIDE_FIELDS`` (``workers``, ``rate``, ``url``, ...); None values are ignored.
        scenario: for a profile with ``scenarios``, which one; required there.

    Raises:
        ProfileError: naming the file, field and value of the first problem found.
    """
    profiles = load_scenarios(path, overrides, only=scenario)
    if len(profiles) > 1:
        names = ", ".join(p.name for p in profiles)
        raise ProfileError(str(path), "scenarios", f"the profile has {len(profiles)} scenarios ({names}); pick one with --scenario NAME (in Python: scenario=NAME, or load_scenarios for all)")
    return profiles[0]


def load_scenarios(
    path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None, *, only: str | None = None
) -> list[Profile]:
    """Read a profile file into one Profile per scenario (one, for a profile without ``scenarios``).

    A ``scenarios`` mapping names variants of the rest of the file: each is the
    file's other sections with the scenario's sections merged over them
    (mappings merge key by key, a null removes a key, anything else replaces).
    Output paths may contain ``{scenario}``; two scenarios writing one file is an error.
    """
    source = str(path)
    data = _read_yaml(path)
    scenarios = data.pop("scenarios", None)
    if scenarios is None:
        if only is not None:
            raise ProfileError(source, "scenarios", f"the profile has no scenarios, so there is no {only!r} to pick")
        merged = _apply_overrides(data, overrides or {}, source)
        with _blame_flags(overrides):
            return [parse_profile(merged, source=source, default_name=Path(path).stem)]
    if not isinstance(scenarios, dict) or not scenarios:
        raise ProfileError(source, "scenarios", f"expected a mapping of scenario name to settings, got {scenarios!r}")
    if only is not None and only not in scenarios:
        hint = difflib.get_close_matches(str(only), [str(k) for k in scenarios], n=1)
        raise ProfileError(
            source, "scenarios", f"no scenario {only!r}" + (f"; did you mean {hint[0]!r}?" if hint else f"; there are: {', '.join(map(str, scenarios))}")
        )
    profiles: list[Profile] = []
    written: dict[str, str] = {}
    for name, settings in scenarios.items():
        if only is not None and name != only:
            continue
        if not isinstance(name, str) or not name:
            raise ProfileError(source, "scenarios", f"scenario names must be strings, got {name!r}")
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise ProfileError(source, f"scenarios.{name}", f"expected a mapping of settings, got {settings!r}")
        if "scenarios" in settings:
            raise ProfileError(source, f"scenarios.{name}.scenarios", "scenarios cannot be nested")
        merged = _deep_merge(data, settings)
        merged["name"] = settings.get("name", name)
        merged = _substitute_scenario(merged, name)
        merged = _apply_overrides(merged, overrides or {}, source)
        try:
            with _blame_flags(overrides):
                profile = dataclasses.replace(parse_profile(merged, source=source, default_name=name), scenario=name)
        except ProfileError as exc:
            if exc.flag is not None:
                raise
            raise ProfileError(exc.path, exc.field, f"in scenario {name!r}: {exc.message}", line=exc.line, column=exc.column) from None
        for out in (profile.output.json_path, profile.output.csv_path, *profile.output.extra_paths()):
            if out is not None:
                key = str(out)
                if key in written:
                    raise ProfileError(
                        source, "output", f"scenarios {written[key]!r} and {name!r} would both write {key}; put {{scenario}} in the path"
                    )
                written[key] = name
        profiles.append(profile)
    return profiles


def flag_name(override: str) -> str:
    """The command-line flag behind an override: ``rate`` -> ``--rate``, ``ray_address`` -> ``--ray-address``."""
    return "--" + override.replace("_", "-")


@contextlib.contextmanager
def _blame_flags(overrides: Mapping[str, Any] | None) -> Iterator[None]:
    """A problem in a field that a flag set is reported against the flag, not the profile file."""
    try:
        yield
    except ProfileError as exc:
        if exc.flag is not None:
            raise
        for name, value in (overrides or {}).items():
            field_name = OVERRIDE_FIELDS.get(name, "").rstrip(".")
            if value is None or not field_name:
                continue
            if exc.field == field_name or exc.field.startswith((field_name + ".", field_name + "[")):
                part = exc.field[len(field_name) :].lstrip(".")  # --sla p95: ..., --header X-Key: ...
                flag = f"{flag_name(name)} {part}" if part else flag_name(name)
                raise ProfileError(exc.path, exc.field, exc.message, flag=flag) from None
        raise


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _substitute_scenario(data: dict[str, Any], name: str) -> dict[str, Any]:
    output = data.get("output")
    if isinstance(output, dict):
        data["output"] = {k: (v.replace("{scenario}", name) if isinstance(v, str) else v) for k, v in output.items()}
    return data


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(source, "", "file not found") from None
    except IsADirectoryError:
        raise ProfileError(source, "", "is a directory, not a profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(source, "", f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise ProfileError(source, "", f"YAML value error: {type(exc).__name__}: {str(exc)[:200]}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise ProfileError(source, "", f"YAML syntax error: {problem}", line=line, column=column) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(source, "", f"a profile must be a YAML mapping, got {type(data).__name__}")
    _check_sane(data, source, "")
    return data


_MAX_INT = 2**63
_MAX_DEPTH = 64
_MAX_NODES = 1_000_000


def _check_sane(data: Any, source: str, path: str, depth: int = 0, budget: list[int] | None = None) -> None:
    """Refuse what no field accepts but would crash or exhaust the loader: huge integers, deep nesting, alias bombs."""
    budget = budget if budget is not None else [_MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise ProfileError(source, path, "the profile expands to more than a million values (a YAML alias bomb?)")
    if depth > _MAX_DEPTH:
        raise ProfileError(source, path, f"nested more than {_MAX_DEPTH} levels deep")
    if isinstance(data, bool):
        return
    if isinstance(data, int):
        if abs(data) > _MAX_INT:
            raise ProfileError(source, path, "a number too large for any field (more than 2**63)")
    elif isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, int) and not isinstance(key, bool) and abs(key) > _MAX_INT:
                raise ProfileError(source, path, "a key too large for any field")
            name = key if isinstance(key, str) else "?"
            _check_sane(value, source, f"{path}.{name}" if path else name, depth + 1, budget)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _check_sane(value, source, f"{path}[{i}]", depth + 1, budget)


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Return a copy of ``data`` with command-line values written into their fields.

    Choosing a load model on the command line replaces the profile's: ``--rate``
    drops ``concurrency`` and ``stages``, ``--concurrency`` drops ``rate`` and
    ``stages``; ``--url`` drops the ``mock`` section it would make unused.
    """
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in OVERRIDE_FIELDS:
            raise ProfileError(source, name, "unknown override")
        section, key = OVERRIDE_FIELDS[name].split(".")
        if name == "sla":
            data["sla"] = sla_from_flag(value, source)
            continue
        current = data.get(section)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            raise ProfileError(source, section, f"expected a mapping, got {current!r}")
        if name == "header":
            value = {**(current.get("headers") or {}), **headers_from_flags(value, source)}
        elif name == "body":
            value = body_from_flag(value, current, source)
        current[key] = value
        if name == "rate":
            current.pop("concurrency", None)
            current.pop("stages", None)
            current.pop("spawn", None)
        elif name == "concurrency":
            for key_of_open_loop in ("rate", "stages", "arrival", "max_in_flight"):
                current.pop(key_of_open_loop, None)
        elif name == "url":
            data.pop("mock", None)
        data[section] = current
    return data


def sla_from_flag(text: str, source: str = "command line") -> dict[str, str]:
    """``--sla p95=800ms,error_rate=1%`` -> ``{"p95": "800ms", "error_rate": "1%"}``, validated later like a profile's."""
    section: dict[str, str] = {}
    for part in (p.strip() for p in str(text).split(",")):
        name, sep, value = part.partition("=")
        if not part or not sep or not name.strip() or not value.strip():
            raise ProfileError(source, "sla", f"cannot read {part!r}; write e.g. p95=800ms,error_rate=1%", flag="--sla")
        section[name.strip()] = value.strip()
    return section


def headers_from_flags(values: list[str] | tuple[str, ...], source: str = "command line") -> dict[str, str]:
    """``--header 'Name: value'`` (repeatable), as curl and hey take it."""
    headers: dict[str, str] = {}
    for item in values:
        name, sep, value = str(item).partition(":")
        if not sep or not name.strip():
            raise ProfileError(source, "target.headers", f"expected 'Name: value', got {item!r}", flag="--header")
        headers[name.strip()] = value.strip()
    return headers


def body_from_flag(value: str, target: dict[str, Any], source: str = "command line") -> str:
    """``--body TEXT`` or ``--body @file`` (curl's convention); JSON text gets a JSON Content-Type unless one is set."""
    text = str(value)
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(source, "target.body", f"cannot read {text[1:]!r}: {getattr(exc, 'strerror', None) or exc}", flag="--body") from None
    headers = target.get("headers") or {}
    if isinstance(headers, dict) and not any(str(k).lower() == "content-type" for k in headers):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, (dict, list)):
            target["headers"] = {**headers, "Content-Type": "application/json"}
    return text


#: Load when a URL is given with no load flags: hey's and oha's defaults.
URL_DEFAULT_CONCURRENCY = 50
URL_DEFAULT_REQUESTS = 200


def profile_from_url(url: str, overrides: Mapping[str, Any] | None = None) -> Profile:
    """A profile from the command line alone (``bench run URL --rate 100/s --duration 30s``), validated like a file.

    Without load flags it sends 200 requests from 50 users, as hey and oha do.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "url" in overrides:
        raise ProfileError("command line", "target.url", "the URL is already the first argument; drop --url", flag="--url")
    load: dict[str, Any] = {}
    if "rate" not in overrides and "concurrency" not in overrides:
        load["concurrency"] = URL_DEFAULT_CONCURRENCY
    if "requests" not in overrides and "duration" not in overrides:
        load["requests"] = URL_DEFAULT_REQUESTS
    data = {"target": {"url": url}, "load": load}
    parts = urlsplit(url) if "://" in url else None
    host = parts.hostname if parts is not None else None
    where = f"{host}:{parts.port}" if host and parts.port else host  # type: ignore[union-attr]
    name = f"{where}{parts.path}".rstrip("/") if where else "url"  # type: ignore[union-attr]
    merged = _apply_overrides(data, overrides, "command line")
    try:
        with _blame_flags(overrides):
            return parse_profile(merged, source="command line", default_name=name)
    except ProfileError as exc:
        if exc.field == "target.url":
            raise ProfileError("command line", exc.field, exc.message, flag="URL") from None
        raise


class _Fields:
    """Reads one mapping section, remembering which keys were used so leftovers are reported."""

    def __init__(self, source: str, prefix: str, data: Any, allowed: tuple[str, ...]):
        self.source = source
        self.prefix = prefix
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ProfileError(source, prefix, f"expected a mapping, got {data!r}")
        for key in data:
            if not isinstance(key, str) or key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; valid fields: {', '.join(allowed)}"
                raise ProfileError(source, self.path(str(key)), f"unknown field{suggestion}")
        self.data = data

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, message: str) -> ProfileError:
        return ProfileError(self.source, self.path(key), message)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key)
        return default if value is None else value

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}")
        return value

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0, maximum: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().isdecimal():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected a whole number, got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be at most {maximum:,}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def duration(self, key: str, default: float | None = None, *, positive: bool = False) -> float | None:
        value = self.data.get(key)
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except UnitError as exc:
            raise self.error(key, str(exc)) from None
        if positive and seconds <= 0:
            raise self.error(key, f"must be greater than 0, got {value!r}")
        return seconds

    def rate(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        try:
            return parse_rate(value)
        except UnitError as exc:
            raise self.error(key, str(exc)) from None


def parse_profile(data: Mapping[str, Any], *, source: str = "<profile>", default_name: str = "profile") -> Profile:
    """Validate an already-loaded mapping; see ``load_profile``."""
    top = _Fields(
        source,
        "",
        dict(data),
        ("name", "description", "strict", "target", "request_kinds", "session", "conversation", "data", "goodput", "mock", "load", "client", "sla", "output", "compare", "engine"),
    )
    name = top.string("name", default_name) or default_name
    strict = top.boolean("strict", False)
    compare_fields = _Fields(source, "compare", top.raw("compare", {}), ("fail_on_regression",))
    fail_on_regression = compare_fields.string("fail_on_regression")
    if fail_on_regression is not None:
        from bench.engine.results.compare import CompareError, parse_bounds

        try:
            parse_bounds(fail_on_regression)
        except CompareError as exc:
            raise compare_fields.error("fail_on_regression", str(exc).replace("--fail-on-regression: ", "")) from None
    top.string("description")
    target_fields = _Fields(source, "target", top.raw("target", {}), TARGET_FIELDS)
    target = _parse_target(target_fields)
    kinds = _parse_kinds(source, target_fields, top.raw("request_kinds"))
    raw_load = top.raw("load")
    if isinstance(raw_load, dict) and raw_load.get("replay") is not None:
        for section in ("request_kinds", "data"):
            if top.has(section):
                raise top.error(section, f"load.replay builds every request from its trace line (path, method, headers, body, fields); remove {section} (or replay)")
        data_spec = None  # the trace's lines fill the templates: checked line by line in _parse_replay_load
    else:
        data_spec = _parse_data(source, top.raw("data"), kinds)
    api_key_env = target_fields.string("api_key_env")
    if api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        raise target_fields.error("api_key_env", f"expected the NAME of an environment variable (the key itself never goes in a profile), got {api_key_env!r}")
    goodput = _parse_goodput(_Fields(source, "goodput", top.raw("goodput", {}), GOODPUT_FIELDS))
    if target.url is not None and top.has("mock"):
        raise top.error("mock", "target.url is set, so this mock section would never be used; remove one of them")
    mock = _parse_mock(source, top.raw("mock", {})) if target.url is None else None
    load_fields = _Fields(
        source,
        "load",
        top.raw("load", {}),
        ("workers", "concurrency", "rate", "arrival", "seed", "max_in_flight", "requests", "duration", "warmup", "stages", "replay", "speed", "repeat", "spawn"),
    )
    repeat = load_fields.integer("repeat", 1, minimum=1, maximum=MAX_REPEAT) or 1
    if load_fields.has("replay"):
        load = _parse_replay_load(load_fields, target, kinds)
    else:
        if load_fields.has("speed"):
            raise load_fields.error("speed", "speed sets the pace of load.replay; this profile replays no trace")
        load = _parse_load(load_fields)
    client = _parse_client(
        _Fields(source, "client", top.raw("client", {}), ("transport", "pool_size", "keepalive", "connect_timeout", "tls_verify", "max_body"))
    )
    if load.replay is not None and client.transport == "fast":
        _check_replay_head(load.replay, kinds[0].method)
    sla_fields = _Fields(source, "sla", top.raw("sla", {}), tuple(SLA_METRICS) + SLA_OPTIONS)
    sla = _parse_sla(sla_fields)
    sla_options = SlaOptions(
        error_aware=sla_fields.boolean("error_aware", False),
        min_samples=sla_fields.integer("min_samples", 1, minimum=1) or 1,
        fail_fast=sla_fields.boolean("fail_fast", False),
        repeat_judge=_repeat_judge(sla_fields),
    )
    output = _parse_output(_Fields(source, "output", top.raw("output", {}), OUTPUT_FIELDS))
    secret_raw = target_fields.raw("secret_headers", [])
    if not isinstance(secret_raw, list) or not all(isinstance(x, str) for x in secret_raw):
        raise target_fields.error("secret_headers", f"expected a list of header names, got {secret_raw!r}")
    resolved = _resolved(name, target, load, client, sla, output, mock, frozenset(x.lower() for x in secret_raw))
    resolved["strict"] = strict
    resolved["sla_options"] = {
        "error_aware": sla_options.error_aware, "min_samples": sla_options.min_samples, "fail_fast": sla_options.fail_fast,
        "repeat_judge": sla_options.repeat_judge,
    }  # fmt: skip
    resolved["load"]["repeat"] = repeat
    resolved["compare"] = {"fail_on_regression": fail_on_regression}
    resolved["request_kinds"] = [
        {"name": k.name, "weight": k.weight, "method": k.method, "path": k.path, "url": k.url, "api": k.api, "stream": k.stream}
        for k in kinds
    ]
    resolved["data"] = {"source": data_spec.source, "rows": len(data_spec.rows), "order": data_spec.order} if data_spec else None
    resolved["goodput"] = dict(goodput)
    resolved["target"]["api_key_env"] = api_key_env
    session = _parse_session(source, top.raw("session"), target, data_spec, kinds, client)
    if data_spec is not None and data_spec.rows and "turns" in data_spec.rows[0]:
        _check_conversation_client(source, kinds, client)
    if session and load.replay is not None:
        raise top.error("session", "load.replay sends each trace line as one request; a session's steps cannot be replayed from it: remove one of them")
    if output.chunks_path is not None and (session or (data_spec is not None and data_spec.rows and "turns" in data_spec.rows[0])):
        raise ProfileError(
            source, "output.chunks", "per-chunk timings are written for single requests; sessions and multi-turn conversations do not record them yet: remove output.chunks"
        )
    step_rules = _parse_step_sla(sla_fields, session)
    if step_rules:
        sla = (*sla, *step_rules)
        resolved["sla"] += [{"name": r.name, "metric": r.metric, "op": r.op, "threshold": r.threshold, "unit": r.unit, "step": r.step} for r in step_rules]
    if session:
        resolved["session"] = [
            {"name": s.name, "method": s.method, "path": s.path, "url": s.url, "captures": [c.name for c in s.captures], "think": dataclasses.asdict(s.think) if s.think else None}
            for s in session
        ]
    turn_think = _parse_conversation(source, top, data_spec)
    if turn_think is not None:
        resolved["conversation"] = {"think": dataclasses.asdict(turn_think)}
    engine = _parse_engine(_Fields(source, "engine", top.raw("engine", {}), ("kind", "address", "on_worker_failure", "resource")))
    resolved["engine"] = dataclasses.asdict(engine)
    return Profile(
        name, source, target, load, client, sla, output, mock, resolved, sla_options, strict, fail_on_regression,
        kinds, data_spec, api_key_env, goodput, engine, session, repeat, turn_think=turn_think,
    )


def _check_conversation_client(source: str, kinds: tuple[RequestKind, ...], client: Client) -> None:
    """Conversations are sent by the aiohttp client and judged by their replies: refuse what they would ignore."""
    if client.transport != "aiohttp":
        raise ProfileError(
            source, "client.transport", f"conversations are sent by the aiohttp transport (each turn carries the streamed history); got {client.transport!r}"
        )
    if kinds and kinds[0].check is not None:
        raise ProfileError(
            source, "target.checks", "checks do not apply to conversation turns: a turn fails on an error status, a stream error or an empty reply; remove them"
        )


def _parse_conversation(source: str, top: _Fields, data: DataSpec | None) -> Think | None:
    """``conversation: {think: ...}``: the pause before each turn after the first (the user reading and typing)."""
    raw = top.raw("conversation")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ProfileError(source, "conversation", f"expected a mapping such as {{think: 5s}}, got {raw!r}")
    if data is None or not data.rows or "turns" not in data.rows[0]:
        raise ProfileError(
            source, "conversation", "applies to multi-turn conversations: data rows holding turns (data.synthetic.turns, or a file's turns)"
        )
    return _parse_think(_Fields(source, "conversation", raw, ("think",)))


def _parse_target(f: _Fields) -> Target:
    url = f.string("url")
    if url is not None:
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise f.error("url", f"invalid URL {url!r}: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise f.error("url", f"unsupported scheme in {url!r}; use http:// or https://")
        if not parts.hostname:
            raise f.error("url", f"no host in {url!r}")
        try:
            parts.port
        except ValueError:
            raise f.error("url", f"invalid port in {url!r}") from None
    method = (f.string("method", "GET") or "GET").upper()
    if method not in METHODS:
        raise f.error("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    headers = _parse_headers(f)
    body_value = f.raw("body")
    body: bytes | None
    if body_value is None:
        body = None
    elif isinstance(body_value, str):
        body = body_value.encode("utf-8")
    elif isinstance(body_value, (dict, list)):
        try:
            body = orjson.dumps(body_value)
        except TypeError as exc:
            raise f.error("body", f"cannot encode as JSON: {exc}") from None
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
    else:
        raise f.error("body", f"expected a mapping (sent as JSON) or a string, got {body_value!r}")
    timeout_s = f.duration("timeout", DEFAULT_TIMEOUT_S, positive=True)
    metrics_url = f.string("metrics_url")
    if metrics_url is not None and not metrics_url.startswith("/"):  # a path: on the target's host (the bundled mock's too)
        parts = urlsplit(metrics_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise f.error("metrics_url", f"expected an http:// or https:// URL of a Prometheus endpoint, or a path on the target such as /metrics, got {metrics_url!r}")
    picks = f.raw("metrics", [])
    if isinstance(picks, str):
        picks = [picks]
    if not isinstance(picks, list) or not all(isinstance(x, str) and x for x in picks):
        raise f.error("metrics", f"expected a list of metric names or regexes, got {picks!r}")
    for pick in picks:
        try:
            re.compile(pick)
        except re.error as exc:
            raise f.error("metrics", f"{pick!r} is not a valid regex: {exc}") from None
    if picks and metrics_url is None:
        raise f.error("metrics", "picks series of target.metrics_url, which is not set")
    return Target(url, method, tuple(headers), body, timeout_s, metrics_url, tuple(picks))  # type: ignore[arg-type]


def _parse_headers(f: _Fields) -> list[tuple[str, str]]:
    raw_headers = f.raw("headers", {})
    if not isinstance(raw_headers, dict):
        raise f.error("headers", f"expected a mapping of header name to value, got {raw_headers!r}")
    headers: list[tuple[str, str]] = []
    for key, value in raw_headers.items():
        if not isinstance(key, str) or not key or any(c in key for c in " :\r\n"):
            raise f.error("headers", f"invalid header name {key!r}")
        if isinstance(value, (dict, list)) or value is None:
            raise f.error(f"headers.{key}", f"expected a string, got {value!r}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\r" in text or "\n" in text:
            raise f.error(f"headers.{key}", "header values cannot contain line breaks")
        headers.append((key, text))
    return headers


KIND_FIELDS = ("name", "weight", "url", "path", "method", "headers", "body", "api", "model", "max_tokens", "stream", "checks")
TARGET_FIELDS = (
    "url", "method", "headers", "body", "timeout", "api", "model", "max_tokens", "stream", "api_key_env", "checks", "secret_headers",
    "metrics_url", "metrics",
)


def _parse_check(f: _Fields, key: str) -> Check | None:
    raw = f.raw(key)
    if raw is None:
        return None
    c = _Fields(f.source, f.path(key), raw, ("status", "body_contains", "body_regex", "json_path", "json_equals", "json_exists"))
    statuses = c.raw("status")
    if statuses is not None:
        statuses = statuses if isinstance(statuses, list) else [statuses]
        if not all(isinstance(x, int) and not isinstance(x, bool) and 100 <= x <= 599 for x in statuses):
            raise c.error("status", f"expected HTTP status codes (100-599), got {c.raw('status')!r}")
        statuses = tuple(statuses)
    regex = c.string("body_regex")
    if regex is not None:
        try:
            re.compile(regex)
        except (re.error, OverflowError, RecursionError) as exc:
            raise c.error("body_regex", f"invalid regular expression {regex!r}: {exc}") from None
    json_path = c.string("json_path")
    if json_path is None and (c.has("json_equals") or c.has("json_exists")):
        raise c.error("json_path", "json_equals and json_exists need json_path, e.g. json_path: choices.0.message.content")
    kwargs: dict[str, Any] = {}
    if "json_equals" in c.data:
        kwargs["json_equals"] = c.data["json_equals"]
    return Check(statuses, c.string("body_contains"), regex, json_path, json_exists=c.boolean("json_exists", True) if c.has("json_exists") else None, **kwargs)


def _parse_kind(f: _Fields, name: str, base: RequestKind | None) -> RequestKind:
    """A request kind: the target's settings (``base``) with this entry's on top."""
    api = f.string("api", base.api if base else None)
    if api is not None and api not in API_PRESETS:
        hint = difflib.get_close_matches(api, API_PRESETS, n=1)
        raise f.error("api", f"expected one of {', '.join(API_PRESETS)}, got {api!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
    method = (f.string("method", base.method if base else ("POST" if api else "GET")) or "GET").upper()
    if method not in METHODS:
        raise f.error("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    url = f.string("url") if "url" in f.data and base is not None else None
    if url is not None:
        _check_url(f, "url", url)
    path = f.string("path")
    if path is not None and not path.startswith("/"):
        raise f.error("path", f"a path starts with '/', got {path!r}")
    headers = tuple(_parse_headers(f)) if f.has("headers") else (base.headers if base else ())
    body = f.raw("body", base.body if base else None)
    if body is not None and not isinstance(body, (str, dict, list)):
        raise f.error("body", f"expected a mapping (sent as JSON) or a string, got {body!r}")
    if api is not None and f.has("body"):
        raise f.error("body", f"api {api} builds the body from the dataset (prompt, max_tokens); remove body or api")
    weight = f.raw("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise f.error("weight", f"expected a positive number, got {weight!r}")
    max_tokens = f.integer("max_tokens", base.max_tokens if base else 128, minimum=1)
    return RequestKind(
        name=name,
        weight=float(weight),
        method=method,
        url=url,
        path=path,
        headers=headers,
        body=body,
        api=api,
        model=f.string("model", base.model if base else "demo-model") or "demo-model",
        max_tokens=max_tokens or 128,
        stream=f.boolean("stream", base.stream if base else False),
        check=_parse_check(f, "checks") if f.has("checks") else (base.check if base else None),
    )


STEP_FIELDS = ("name", "method", "path", "url", "headers", "body", "checks", "capture", "think")
THINK_MODELS = {"fixed": ("delay",), "uniform": ("min", "max"), "exponential": ("mean",), "normal": ("mean", "stddev")}
_STEP_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _parse_session(
    source: str, raw: Any, target: Target, data: DataSpec | None, kinds: tuple[RequestKind, ...], client: Client
) -> tuple[Step, ...]:
    """``session:``: ordered steps with captures and think times; placeholders must be filled by the data or an earlier capture."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ProfileError(source, "session", f"expected a list of steps such as [{{name: login, method: POST, path: /login}}], got {raw!r}")
    if len(kinds) > 1 or any(k.api for k in kinds):
        raise ProfileError(source, "session", "a session's steps are its requests: remove request_kinds and target.api, or the session")
    if client.transport != "aiohttp":
        raise ProfileError(
            source, "client.transport", f"sessions need each user's cookies and the response headers, which the aiohttp transport gives; got {client.transport!r}"
        )
    dataset = set.intersection(*(set(row) for row in data.rows)) if data is not None and data.rows else set()
    known = set(dataset)
    steps: list[Step] = []
    for i, item in enumerate(raw):
        f = _Fields(source, f"session[{i}]", item, STEP_FIELDS)
        name = f.string("name") or f"step{i + 1}"
        if not _STEP_NAME.fullmatch(name) or name in {s.name for s in steps}:
            raise f.error("name", f"step names are unique and made of letters, digits, '_', '.', '-'; got {name!r}")
        method = (f.string("method", "GET") or "GET").upper()
        if method not in METHODS:
            raise f.error("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
        url = f.string("url")
        path = f.string("path")
        if url is not None and path is not None:
            raise f.error("url", "give a step a path (joined to the target URL) or a url, not both")
        if path is not None and not path.startswith(("/", "{{")):
            raise f.error("path", f"a path starts with '/' (or is a captured one, '{{{{name}}}}'), got {path!r}")
        if url is not None and not template_fields(url):
            _check_url(f, "url", url)
        headers = tuple({**dict(target.headers), **dict(_parse_headers(f))}.items()) if f.has("headers") else target.headers
        body = f.raw("body")
        if body is not None and not isinstance(body, (str, dict, list)):
            raise f.error("body", f"expected a mapping (sent as JSON) or a string, got {body!r}")
        if isinstance(body, (dict, list)):
            try:
                orjson.dumps(body)
            except TypeError as exc:  # e.g. a YAML key such as on: or 1: that is not a string
                raise f.error("body", f"cannot encode as JSON: {exc}") from None
        for key, template in (("path", path), ("url", url), ("headers", [v for _, v in headers]), ("body", body)):
            unknown = template_fields(template) - known
            if unknown:
                field = sorted(unknown)[0]
                where = "an earlier step's capture" + (" or the data" if data is not None else " (the profile has no data section)")
                raise f.error(key, f"uses {{{{{field}}}}}, which no {where} provides")
        captures = _parse_captures(f)
        known |= {c.name for c in captures}
        steps.append(Step(name, method, url, path, headers, body, _parse_check(f, "checks"), captures, _parse_think(f)))
    return tuple(steps)


def _parse_step_sla(f: _Fields, session: tuple[Step, ...]) -> list[SlaRule]:
    """``sla.steps: {login: {p95: 300ms}}``: criteria on one session step's own requests."""
    raw = f.raw("steps")
    if raw is None:
        return []
    if not session:
        raise f.error("steps", "criteria per step need a session: section")
    names = tuple(step.name for step in session)
    steps = _Fields(f.source, "sla.steps", raw, names)
    rules = []
    for name in names:
        if not steps.has(name):
            continue
        criteria = _Fields(f.source, f"sla.steps.{name}", steps.raw(name), STEP_METRICS)
        for metric, value in criteria.data.items():
            rule = _sla_rule(criteria, metric, value)
            rules.append(dataclasses.replace(rule, name=metric, step=name))
    return rules


def _parse_captures(f: _Fields) -> tuple[Capture, ...]:
    raw = f.raw("capture", {})
    if not isinstance(raw, dict):
        raise f.error("capture", f"expected a mapping of name to {{json_path: a.b}}, {{header: Location}} or {{regex: 'id=(\\d+)'}}, got {raw!r}")
    captures = []
    for name, spec in raw.items():
        c = _Fields(f.source, f.path(f"capture.{name}"), spec, CAPTURE_SOURCES)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise f.error("capture", f"a capture's name is used as {{{{name}}}}: letters, digits and '_', got {name!r}")
        given = [key for key in CAPTURE_SOURCES if c.has(key)]
        if len(given) != 1:
            raise c.error("json_path", f"say where to capture from with exactly one of {', '.join(CAPTURE_SOURCES)}")
        expression = c.string(given[0]) or ""
        if given[0] == "regex":
            try:
                re.compile(expression)
            except (re.error, OverflowError, RecursionError) as exc:
                raise c.error("regex", f"invalid regular expression {expression!r}: {exc}") from None
        captures.append(Capture(name, given[0], expression))
    return tuple(captures)


def _parse_think(f: _Fields) -> Think | None:
    """``think: 500ms`` (fixed) or ``{model: uniform, min: 1s, max: 3s}`` (also exponential mean, normal mean/stddev)."""
    raw = f.raw("think")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return Think("fixed", f.duration("think") or 0.0)
    model = raw.get("model", "fixed")
    if not isinstance(model, str) or model not in THINK_MODELS:
        raise f.error("think", f"expected a duration, or a model among {', '.join(THINK_MODELS)}; got {model!r}")
    t = _Fields(f.source, f.path("think"), raw, ("model", *THINK_MODELS[model]))
    values = []
    for key in THINK_MODELS[model]:
        value = t.duration(key)
        if value is None:
            raise t.error(key, f"a {model} think time needs {' and '.join(THINK_MODELS[model])}")
        values.append(value)
    if model == "uniform" and values[1] < values[0]:
        raise t.error("max", f"must be at least min, got {raw.get('max')!r}")
    return Think(model, values[0], values[1] if len(values) > 1 else 0.0)


def _check_url(f: _Fields, key: str, url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise f.error(key, f"invalid URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise f.error(key, f"unsupported scheme in {url!r}; use http:// or https://")
    if not parts.hostname:
        raise f.error(key, f"no host in {url!r}")
    try:
        parts.port
    except ValueError:
        raise f.error(key, f"invalid port in {url!r}") from None


def _parse_kinds(source: str, target_f: _Fields, raw: Any) -> tuple[RequestKind, ...]:
    base = _parse_kind(_Fields(source, "target", {k: v for k, v in target_f.data.items() if k in KIND_FIELDS and k != "url"}, KIND_FIELDS), "default", None)
    if raw is None:
        return (base,)
    if not isinstance(raw, list) or not raw:
        raise ProfileError(source, "request_kinds", f"expected a list of request kinds such as [{{name: chat, path: /v1/chat, weight: 3}}], got {raw!r}")
    kinds = []
    names = set()
    for i, item in enumerate(raw):
        f = _Fields(source, f"request_kinds[{i}]", item, KIND_FIELDS)
        name = f.string("name", f"kind{i}") or f"kind{i}"
        if name in names:
            raise f.error("name", f"two request kinds are named {name!r}")
        names.add(name)
        kinds.append(_parse_kind(f, name, base))
    return tuple(kinds)


def _parse_data(source: str, raw: Any, kinds: tuple[RequestKind, ...]) -> DataSpec | None:
    if raw is None:
        for kind in kinds:
            missing = template_fields(kind.body)
            if missing:
                raise ProfileError(source, "data", f"request kind {kind.name!r} uses {{{{{sorted(missing)[0]}}}}} but the profile has no data section")
        return None
    f = _Fields(source, "data", raw, ("file", "order", "seed", "synthetic"))
    order = f.string("order", "sequential")
    if order not in DATA_ORDERS:
        raise f.error("order", f"expected one of {', '.join(DATA_ORDERS)}, got {order!r}")
    seed = f.integer("seed", 1) or 0
    if f.has("file") == f.has("synthetic"):
        raise f.error("file", "set either data.file (a JSONL or CSV file) or data.synthetic")
    if f.has("file"):
        name = f.string("file") or ""
        path = Path(name)
        if not path.is_absolute():
            path = Path(source).parent / path
        if path.suffix.lower() not in (".jsonl", ".csv", ".ndjson"):
            raise f.error("file", f"expected a .jsonl or .csv file, got {name!r}")
        try:
            rows = read_rows(path)
        except FileNotFoundError:
            raise f.error("file", f"file not found: {str(path)!r} (relative to the profile)") from None
        except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
            raise f.error("file", f"{name}: {exc}") from None
        if not rows:
            raise f.error("file", f"{name} has no rows")
        where = name
    else:
        g = _Fields(source, "data.synthetic", f.raw("synthetic"), ("count", "prompt_tokens", "max_tokens", "turns"))
        # Rows are generated while the profile loads (and no worker prepares more than 50,000):
        # bounds keep `bench validate` instant instead of hanging on a typo'd size.
        count = g.integer("count", 100, minimum=1, maximum=MAX_SYNTHETIC_ROWS) or 100
        turns = g.integer("turns", 1, minimum=1, maximum=MAX_TURNS) or 1
        if turns > 1 and not any(k.api == "openai-chat" for k in kinds):
            raise g.error("turns", "multi-turn conversations need target.api: openai-chat (each turn sends the chat history)")
        prompt_tokens = _int_range(g, "prompt_tokens", (32, 256))
        if count * prompt_tokens[1] * turns > MAX_SYNTHETIC_WORDS:
            raise g.error(
                "prompt_tokens",
                f"count x prompt_tokens x turns is {count * prompt_tokens[1] * turns:,} words, more than {MAX_SYNTHETIC_WORDS:,} to generate; use fewer rows or shorter prompts",
            )
        rows = synthetic_rows(count, prompt_tokens, _int_range(g, "max_tokens", (16, 128)), seed, turns)
        where = "synthetic"
    conversations = [i for i, row in enumerate(rows, 1) if "turns" in row]
    if conversations:
        _check_turns(f, where, rows, kinds)
    for kind in kinds:
        needed = template_fields(kind.body) | preset_fields(kind)
        for row_number, row in enumerate(rows, 1):
            missing = needed - set(row) - ({"prompt"} if "turns" in row else set())
            if missing:
                raise f.error("file", f"{where} row {row_number} has no field {sorted(missing)[0]!r}, which request kind {kind.name!r} uses")
    if order == "weighted" and not all(isinstance(r.get("weight", 1), (int, float)) and r.get("weight", 1) > 0 for r in rows):
        raise f.error("order", "weighted order needs a positive number in each row's weight field")
    return DataSpec(tuple(rows), order, seed, where)


MAX_TURNS = 1000


def _check_turns(f: _Fields, where: str, rows: list[dict[str, Any]], kinds: tuple[RequestKind, ...]) -> None:
    """Conversation rows: every row a non-empty ``turns`` list of user messages, for one openai-chat kind."""
    if len(kinds) != 1 or kinds[0].api != "openai-chat":
        raise f.error("file", f"{where} rows with turns are conversations: they need one request kind with target.api: openai-chat")
    for row_number, row in enumerate(rows, 1):
        turns = row.get("turns")
        if not isinstance(turns, list) or not turns or len(turns) > MAX_TURNS or not all(isinstance(t, str) and t for t in turns):
            raise f.error("file", f"{where} row {row_number}: turns must be a list of 1 to {MAX_TURNS} non-empty user messages (strings), got {turns!r}"[:300])
        tokens, model = row.get("max_tokens"), row.get("model")
        if "max_tokens" in row and (not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1):
            raise f.error("file", f"{where} row {row_number}: max_tokens must be a whole number >= 1, got {tokens!r}"[:300])
        if "model" in row and (not isinstance(model, str) or not model):
            raise f.error("file", f"{where} row {row_number}: model must be a non-empty string, got {model!r}"[:300])


def _int_range(f: _Fields, key: str, default: tuple[int, int]) -> tuple[int, int]:
    raw = f.raw(key)
    if raw is None:
        return default
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return raw, raw
    g = _Fields(f.source, f.path(key), raw, ("min", "max"))
    low, high = g.integer("min", minimum=1), g.integer("max", minimum=1)
    if low is None or high is None or low > high:
        raise f.error(key, f"expected a whole number or {{min, max}} with min <= max, got {raw!r}")
    return low, high


GOODPUT_FIELDS = ("ttft", "tpot", "e2e")


def _parse_goodput(f: _Fields) -> tuple[tuple[str, float], ...]:
    """Per-request objectives: a request is good when it succeeded and meets every one (values in ms)."""
    objectives = []
    for key in GOODPUT_FIELDS:
        value = f.raw(key)
        if value is None:
            continue
        try:
            objectives.append((key, round(parse_duration(value) * 1e3, 6)))
        except UnitError as exc:
            raise f.error(key, str(exc)) from None
    return tuple(objectives)


def _parse_engine(f: _Fields) -> EngineConfig:
    kind = f.string("kind", "local") or "local"
    if kind not in ENGINES:
        raise f.error("kind", f"expected one of {', '.join(ENGINES)}, got {kind!r}")
    failure = f.string("on_worker_failure", "stop") or "stop"
    if failure not in ("stop", "continue"):
        raise f.error("on_worker_failure", f"expected stop or continue, got {failure!r}")
    address = f.string("address")
    if address is not None and kind != "ray":
        raise f.error("address", "engine.address is for kind: ray")
    return EngineConfig(kind, address, failure, f.string("resource"))


def _parse_mock(source: str, raw: Any) -> MockConfig:
    try:
        return MockConfig.from_mapping(raw)
    except MockConfigError as exc:
        raise ProfileError(source, f"mock.{exc.field}" if exc.field else "mock", exc.message) from None


def _parse_load(f: _Fields) -> Load:
    rate = f.rate("rate")
    concurrency = f.integer("concurrency", minimum=1)
    if rate is not None and concurrency is not None:
        raise f.error("rate", "set either rate (open loop) or concurrency (closed loop), not both")
    stages = _parse_stages(f)
    if stages:
        kind = stages[0][0]
        if kind == "rate" and concurrency is not None:
            raise f.error("stages", "the stages ramp a rate, so the starting value must be load.rate, not concurrency")
        if kind == "concurrency" and rate is not None:
            raise f.error("stages", "the stages ramp concurrency, so the starting value must be load.concurrency, not rate")
        model = OPEN_LOOP if kind == "rate" else CLOSED_LOOP
    elif rate is not None:
        model = OPEN_LOOP
    elif concurrency is not None:
        model = CLOSED_LOOP
    else:
        raise f.error("rate", "set load.rate (open loop, e.g. 100/s), load.concurrency (closed loop) or load.stages")
    arrival = f.string("arrival", "constant")
    if arrival not in ARRIVALS:
        hint = difflib.get_close_matches(str(arrival), ARRIVALS, n=1)
        raise f.error("arrival", f"expected one of {', '.join(ARRIVALS)}, got {arrival!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
    if model == CLOSED_LOOP and f.has("arrival"):
        raise f.error("arrival", "arrival applies to an open-loop rate; this profile is closed loop (concurrency)")
    seed = f.integer("seed", 1) or 0
    max_in_flight = f.integer("max_in_flight", DEFAULT_MAX_IN_FLIGHT, minimum=1)
    if model == CLOSED_LOOP and f.has("max_in_flight"):
        raise f.error("max_in_flight", "caps an open-loop rate; in a closed loop, concurrency is the cap")
    requests = f.integer("requests", minimum=1)
    duration_s = f.duration("duration", positive=True)
    stage_list = tuple(Stage(d, t) for _, d, t in stages)
    if requests is None and duration_s is None and not stage_list:
        raise f.error("requests", "set load.requests, load.duration or load.stages, or the run would never end")
    warmup_requests, warmup_s = _parse_warmup(f)
    spawn_s = _parse_spawn(f, model, duration_s)
    if model == CLOSED_LOOP:
        start_concurrency = concurrency if concurrency is not None else (0 if stage_list else None)
        peak = max([start_concurrency or 0] + [int(s.target) for s in stage_list])
    else:
        start_concurrency = None
        peak = max_in_flight  # type: ignore[assignment]
    cpu_count = os.cpu_count() or 1
    workers = f.integer("workers", minimum=1)
    if workers is None:
        workers = max(1, min(cpu_count, peak if model == CLOSED_LOOP else cpu_count))
    elif model == CLOSED_LOOP and workers > peak:
        raise f.error("workers", f"{workers} workers cannot share a concurrency of {peak}; use at most {peak} workers")
    elif model == OPEN_LOOP and workers > max_in_flight:  # type: ignore[operator]
        raise f.error("workers", f"{workers} workers cannot share max_in_flight {max_in_flight}")
    return Load(
        model=model,
        workers=workers,
        rate_per_s=rate if model == OPEN_LOOP else None,
        concurrency=start_concurrency,
        arrival=arrival or "constant",
        seed=seed,
        max_in_flight=max_in_flight or DEFAULT_MAX_IN_FLIGHT,
        requests=requests,
        duration_s=duration_s,
        warmup_requests=warmup_requests,
        warmup_s=warmup_s,
        stages=stage_list,
        spawn_s=spawn_s,
    )


def _parse_spawn(f: _Fields, model: str, duration_s: float | None) -> float | None:
    """``spawn: auto`` (the default: None), or a duration over which the closed loop's first users start (``0s``: all at once)."""
    if not f.has("spawn"):
        return None
    if model != CLOSED_LOOP:
        raise f.error("spawn", "spawn spreads the start of a closed loop's users (concurrency); an open loop's rate already spaces its sends")
    raw = f.raw("spawn")
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return None
    try:
        spawn_s = parse_duration(raw)
    except UnitError as exc:
        raise f.error("spawn", f"expected auto or a duration such as 1s (0s: every user starts at once): {exc}") from None
    if duration_s is not None and spawn_s >= duration_s:
        raise f.error("spawn", f"{raw} is not shorter than the duration ({duration_s:g} s): the last users would start after the run ended")
    return spawn_s


#: What a trace replay decides itself: when each request goes (so no rate, concurrency, ramp or arrival process)
#: and how many there are (so no request count, duration or warm-up).
REPLAY_EXCLUDES = ("rate", "concurrency", "stages", "arrival", "seed", "requests", "duration", "warmup", "spawn")


def _parse_replay_load(f: _Fields, target: Target, kinds: tuple[RequestKind, ...]) -> Load:
    """``load.replay: FILE`` (JSONL, relative to the profile) and ``speed``: an open loop at the trace's own times."""
    for key in REPLAY_EXCLUDES:
        if f.has(key):
            raise f.error(key, f"load.replay sends each line of the trace at its own time, once; remove {key} (or replay)")
    name = f.string("replay") or ""
    path = Path(name)
    if not path.is_absolute():
        path = Path(f.source).parent / path
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise f.error("replay", f"expected a .jsonl trace (one JSON object per line), got {name!r}")
    speed = f.raw("speed", 1)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed <= 0:
        raise f.error("speed", f"expected a number > 0 (2: twice as fast), got {speed!r}")
    try:
        replay = read_trace(path, name, float(speed), kinds[0], target.url, METHODS)
    except FileNotFoundError:
        raise f.error("replay", f"file not found: {str(path)!r} (relative to the profile)") from None
    except IsADirectoryError:
        raise f.error("replay", f"{str(path)!r} is a directory, not a trace file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise f.error("replay", f"cannot read {str(path)!r}: {exc}") from None
    if replay.last_ms / speed > MAX_TRACE_MS:
        raise f.error("speed", f"at speed {speed!r} the trace would take {replay.last_ms / speed / 86_400_000:.3g} days; a replay lasts at most a week")
    max_in_flight = f.integer("max_in_flight", DEFAULT_MAX_IN_FLIGHT, minimum=1) or DEFAULT_MAX_IN_FLIGHT
    workers = f.integer("workers", minimum=1)
    if workers is None:
        workers = max(1, min(os.cpu_count() or 1, replay.count))
    elif workers > replay.count:
        raise f.error("workers", f"{workers} workers cannot share a trace of {replay.count} line(s); use at most {replay.count}")
    elif workers > max_in_flight:
        raise f.error("workers", f"{workers} workers cannot share max_in_flight {max_in_flight}")
    return Load(
        model=OPEN_LOOP,
        workers=workers,
        rate_per_s=None,
        concurrency=None,
        arrival="replay",
        seed=1,
        max_in_flight=max_in_flight,
        requests=None,
        duration_s=None,
        warmup_requests=0,
        warmup_s=0.0,
        stages=(),
        replay=replay,
    )


def _check_replay_head(replay: Replay, default_method: str) -> None:
    """The fast transport reads a run's responses either all as answers to HEAD (no body) or none: a trace cannot mix them."""
    for line in replay.lines:
        method = line.fields.get("method") or default_method
        if (method == "HEAD") != (default_method == "HEAD"):
            raise ProfileError(
                replay.path, "method",
                f"{method} with target.method {default_method}: the fast transport cannot mix HEAD and other methods in one run; "
                "use client.transport aiohttp or h2, or replay the HEAD lines in a trace of their own",
                line=line.number,
            )


def _parse_stages(f: _Fields) -> list[tuple[str, float, float]]:
    raw = f.raw("stages")
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise f.error("stages", f"expected a list of steps such as [{{duration: 30s, rate: 100/s}}], got {raw!r}")
    stages: list[tuple[str, float, float]] = []
    kinds = set()
    for i, item in enumerate(raw):
        step = _Fields(f.source, f"load.stages[{i}]", item, ("duration", "rate", "concurrency"))
        duration = step.duration("duration")
        if duration is None:
            raise step.error("duration", "each stage needs a duration, e.g. 30s (0s for an instant step)")
        if step.has("rate") == step.has("concurrency"):
            raise step.error("rate", "each stage needs exactly one of rate or concurrency")
        if step.has("rate"):
            kinds.add("rate")
            stages.append(("rate", duration, step.rate("rate")))  # type: ignore[arg-type]
        else:
            kinds.add("concurrency")
            stages.append(("concurrency", duration, float(step.integer("concurrency", minimum=0))))  # type: ignore[arg-type]
    if len(kinds) > 1:
        raise f.error("stages", "all stages must ramp the same thing: either rate or concurrency")
    if sum(d for _, d, _ in stages) <= 0:
        raise f.error("stages", "the stages add up to no time at all")
    return stages


def _parse_warmup(f: _Fields) -> tuple[int, float]:
    """Warm-up is a request count (``50``) or a duration (``5s``); excluded from the statistics."""
    raw = f.raw("warmup")
    if raw is None:
        return 0, 0.0
    if isinstance(raw, bool):
        raise f.error("warmup", f"expected a request count such as 50 or a duration such as 5s, got {raw!r}")
    if isinstance(raw, int) or (isinstance(raw, str) and raw.strip().isdecimal()):
        count = int(raw)
        if count < 0:
            raise f.error("warmup", f"must be at least 0, got {raw!r}")
        return count, 0.0
    if isinstance(raw, str):
        try:
            return 0, parse_duration(raw)
        except UnitError:
            pass
    raise f.error("warmup", f"expected a request count such as 50 or a duration such as 5s, got {raw!r}")


def _size(f: _Fields, key: str) -> int | None:
    value = f.raw(key)
    if value is None:
        return None
    try:
        return parse_size(value)
    except UnitError as exc:
        raise f.error(key, str(exc)) from None


def _parse_client(f: _Fields) -> Client:
    transport = f.string("transport", "aiohttp") or "aiohttp"
    if transport not in TRANSPORTS:
        hint = difflib.get_close_matches(transport, TRANSPORTS, n=1)
        raise f.error("transport", f"expected one of {', '.join(TRANSPORTS)}, got {transport!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
    client = Client(
        pool_size=f.integer("pool_size", minimum=1),
        keepalive=f.boolean("keepalive", True),
        connect_timeout_s=f.duration("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S, positive=True),  # type: ignore[arg-type]
        transport=transport,
        tls_verify=f.boolean("tls_verify", True),
        max_body=_size(f, "max_body"),
    )
    if transport == "h2" and not client.keepalive:
        raise f.error("keepalive", "the h2 transport multiplexes requests over kept-alive connections; keepalive: false needs transport aiohttp or fast")
    return client


def _parse_sla(f: _Fields) -> tuple[SlaRule, ...]:
    """Whole-run criteria (``p95: 800ms``), under ``windows`` criteria on every sliding window, and the default error criterion.

    A gate with criteria but none on errors gets ``error_rate <= 1%`` (marked
    default), unless the profile says ``error_rate: off``: otherwise a service
    answering 404 to everything would pass ``p95: 500ms``.
    """
    errors_off = _error_rate_switched_off(f)
    rules = [_sla_rule(f, name, value) for name, value in f.data.items() if name in SLA_METRICS and not (errors_off and name == "error_rate")]
    rules.extend(_parse_windows(f))
    if rules and not errors_off and not any(r.name in ERROR_CRITERIA for r in rules):
        rules.append(SlaRule("error_rate", "error_rate", "<=", DEFAULT_ERROR_RATE, "ratio", default=True))
    return tuple(rules)


def _repeat_judge(f: _Fields) -> str:
    judge = f.string("repeat_judge", "median") or "median"
    if judge not in REPEAT_JUDGES:
        raise f.error("repeat_judge", f"expected median (the median of the runs) or bound (the pessimistic bound of its 95 % interval), got {judge!r}")
    return judge


def _error_rate_switched_off(f: _Fields) -> bool:
    value = f.data.get("error_rate")
    return value is False or (isinstance(value, str) and value.strip().lower() in SWITCHED_OFF)


def _parse_windows(f: _Fields) -> list[SlaRule]:
    rules: list[SlaRule] = []
    windows = f.raw("windows")
    if windows is None:
        return rules
    if not isinstance(windows, list):
        raise f.error("windows", f"expected a list such as [{{p95: 800ms, window: 10s}}], got {windows!r}")
    for i, item in enumerate(windows):
        w = _Fields(f.source, f"sla.windows[{i}]", item, tuple(SLA_METRICS) + ("window", "abort_on_fail", "grace"))
        metrics = [k for k in w.data if k in SLA_METRICS]
        if len(metrics) != 1:
            raise w.error("window", f"each window criterion needs exactly one metric ({', '.join(SLA_METRICS)}), got {metrics or 'none'}")
        window_s = w.duration("window", positive=True)
        if window_s is None:
            raise w.error("window", "set the window length, e.g. window: 10s")
        if window_s < 1 or window_s != int(window_s):
            raise w.error("window", f"windows are whole seconds (the series resolution), at least 1s; got {w.raw('window')!r}")
        if metrics[0] not in WINDOW_METRICS:
            raise w.error(metrics[0], f"window criteria support {', '.join(WINDOW_METRICS)}; {metrics[0]} is judged on the whole run only")
        rule = _sla_rule(w, metrics[0], w.data[metrics[0]])
        rules.append(
            dataclasses.replace(
                rule,
                window_s=window_s,
                abort_on_fail=w.boolean("abort_on_fail", False),
                grace_s=w.duration("grace", 0.0) or 0.0,
            )
        )
    return rules


def _sla_rule(f: _Fields, name: str, value: Any) -> SlaRule:
    metric, op, unit = SLA_METRICS[name]
    if value is None:
        raise f.error(name, "expected a threshold, got nothing")
    try:
        if unit == "ms":
            threshold = round(parse_duration(value) * 1e3, 6)
        elif unit == "ratio":
            threshold = _parse_ratio(value)
        elif unit == "tok/s":
            threshold = parse_rate(value)
        else:
            threshold = parse_rate(value)
    except (UnitError, ValueError) as exc:
        raise f.error(name, str(exc)) from None
    return SlaRule(name, metric, op, threshold, unit)


def _parse_ratio(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a fraction such as 0.01 or a percentage such as 1%, got {value!r}")
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            ratio = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a fraction such as 0.01 or a percentage such as 1%, got {value!r}") from None
    elif isinstance(value, (int, float)):
        ratio = float(value)
    else:
        raise ValueError(f"expected a fraction such as 0.01 or a percentage such as 1%, got {value!r}")
    if not 0 <= ratio <= 1:
        raise ValueError(f"must be between 0 and 1 (0% and 100%), got {value!r}")
    return ratio


OUTPUT_PATH_FIELDS = ("json", "csv", "hlog", "series_csv", "junit", "html", "chunks")
OUTPUT_FIELDS = (*OUTPUT_PATH_FIELDS, "metrics_port", "metrics_linger", "otlp", "otlp_interval")


def _parse_metrics_port(f: _Fields) -> tuple[str, int | None]:
    """``metrics_port: 9464`` or ``"0.0.0.0:9464"`` (0: any free port); host 127.0.0.1 unless given."""
    raw = f.raw("metrics_port")
    if raw is None:
        return "127.0.0.1", None
    text = str(raw).strip() if not isinstance(raw, bool) else ""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port_text.isdecimal() or int(port_text) > 65535 or (sep and not host):
        raise f.error("metrics_port", f"expected a port (0-65535; 0 picks a free one) or HOST:PORT, got {raw!r}")
    return host, int(port_text)


def _parse_output(f: _Fields) -> Output:
    metrics_host, metrics_port = _parse_metrics_port(f)
    linger = f.duration("metrics_linger", 2.0)
    if linger is not None and linger < 0:
        raise f.error("metrics_linger", f"must be 0 or more, got {f.raw('metrics_linger')!r}")
    otlp = f.string("otlp")
    if otlp is not None:
        parts = urlsplit(otlp)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise f.error("otlp", f"expected the http:// URL of an OTLP/HTTP receiver, e.g. http://127.0.0.1:4318, got {otlp!r}")
    otlp_interval = f.duration("otlp_interval", 5.0)
    if otlp_interval is not None and otlp_interval < 0.1:
        raise f.error("otlp_interval", f"must be at least 100ms, got {f.raw('otlp_interval')!r}")
    paths = {}
    for key in OUTPUT_PATH_FIELDS:
        value = f.string(key)
        if value is None:
            paths[key] = None
            continue
        path = Path(value)
        parent = path.parent if str(path.parent) else Path(".")
        try:
            if path.is_dir():
                raise f.error(key, f"{value!r} is a directory; give a file name")
            if not parent.is_dir():
                raise f.error(key, f"directory {str(parent)!r} does not exist (for {value!r})")
        except OSError as exc:
            raise f.error(key, f"unusable path {value[:80]!r}: {exc.strerror or exc}") from None
        if not os.access(parent, os.W_OK):
            raise f.error(key, f"directory {str(parent)!r} is not writable (for {value!r})")
        paths[key] = path
    return Output(
        paths["json"], paths["csv"], paths["hlog"], paths["series_csv"], paths["junit"], paths["html"], paths["chunks"],
        metrics_host, metrics_port, linger if linger is not None else 2.0, otlp,
        otlp_interval if otlp_interval is not None else 5.0,
    )


_SECRET_HEADER = re.compile(r"authorization|cookie|api[-_]?key|token|secret|password|session|credential", re.IGNORECASE)
REDACTED = "<redacted>"


def redact_url(url: str) -> str:
    """The URL with the password of any ``user:password@`` hidden: reports, logs and headers never carry it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", f":{REDACTED}@", 1)).geturl()


def redact_header(name: str, value: str, secret_names: frozenset[str] = frozenset()) -> str:
    """Header values that carry credentials (by name, or listed in target.secret_headers) never reach a report."""
    return REDACTED if _SECRET_HEADER.search(name) or name.lower() in secret_names else value


def _resolved(name, target, load, client, sla, output, mock, secret_names=frozenset()) -> dict[str, Any]:
    """The profile as bench understood it, in plain JSON types, for the report (credentials redacted)."""
    return {
        "name": name,
        "target": {
            "url": redact_url(target.url) if target.url else None,
            "method": target.method,
            "headers": {name: redact_header(name, value, secret_names) for name, value in target.headers},
            "body_bytes": len(target.body) if target.body is not None else 0,
            "body_sha256": hashlib.sha256(target.body).hexdigest() if target.body is not None else None,
            "timeout_s": target.timeout_s,
            "metrics_url": redact_url(target.metrics_url) if target.metrics_url else None,
            "metrics": list(target.metrics),
        },
        "load": {
            "model": load.model,
            "workers": load.workers,
            "rate_per_s": load.rate_per_s,
            "concurrency": load.concurrency,
            "arrival": load.arrival if load.model == OPEN_LOOP else None,
            "seed": load.seed,
            "max_in_flight": load.max_in_flight if load.model == OPEN_LOOP else None,
            "requests": load.requests,
            "duration_s": load.duration_s,
            "warmup_requests": load.warmup_requests,
            "warmup_s": load.warmup_s,
            "stages": [{"duration_s": s.duration_s, "target": s.target} for s in load.stages],
            "spawn": ("auto" if load.spawn_s is None else f"{load.spawn_s:g}s") if load.model == CLOSED_LOOP else None,
            "replay": load.replay.describe() if load.replay is not None else None,
        },
        "client": {
            "transport": client.transport,
            "pool_size": client.pool_size,
            "keepalive": client.keepalive,
            "connect_timeout_s": client.connect_timeout_s,
            "tls_verify": client.tls_verify,
            "max_body": client.max_body,
        },
        "sla": [
            {
                "name": r.name,
                "metric": r.metric,
                "op": r.op,
                "threshold": r.threshold,
                "unit": r.unit,
                "window_s": r.window_s,
                "abort_on_fail": r.abort_on_fail,
                "grace_s": r.grace_s,
                "default": r.default,
            }
            for r in sla
        ],
        "output": {
            **{key: str(path) if path else None for key, path in zip(OUTPUT_PATH_FIELDS, (output.json_path, output.csv_path, *output.extra_paths()))},
            "metrics_port": output.metrics_port,
            "otlp": output.otlp_url,
            "otlp_interval": output.otlp_interval_s if output.otlp_url else None,
        },
        "mock": dataclasses.asdict(mock) if mock is not None else None,
    }

"""Validated configuration of the mock server: latency model, injected errors, stalls, body size,
capacity (slots and a queue), and the optional OpenAI-compatible endpoints (``openai:``).

This module owns turning a YAML-loaded mapping into an immutable ``MockConfig`` and
every error message about it, so the server and the behaviour code can trust their
input and a user with a typo is told which field is wrong and what was meant.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.units import UnitError, parse_duration

__all__ = [
    "CapacityConfig",
    "ErrorsConfig",
    "LatencyConfig",
    "LATENCY_MODELS",
    "MockConfig",
    "MockConfigError",
    "OPENAI_QUIRKS",
    "OpenAIConfig",
    "OpenAIErrorsConfig",
    "OpenAIQuirks",
    "PrefixCacheConfig",
    "OpenAIStallConfig",
    "StallConfig",
]

# Keys each latency model accepts (besides "model"); the tuples list required keys
# first and are also what unknown-key suggestions are drawn from.
LATENCY_MODELS: dict[str, tuple[str, ...]] = {
    "none": (),
    "fixed": ("delay",),
    "uniform": ("min", "max"),
    "normal": ("mean", "stddev"),
    "lognormal": ("median", "p95", "mu", "sigma"),
    "exponential": ("mean",),
    "empirical": ("percentiles",),
}


class MockConfigError(ValueError):
    """A mock configuration value is invalid; ``field`` is its dotted path, e.g. "latency.median"."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(frozen=True)
class LatencyConfig:
    """One latency model and its parameters, durations in seconds; unused parameters stay None.

    ``lognormal`` always has ``mu``/``sigma`` filled in (derived from ``median``/``p95``
    when those were given), and ``empirical`` has ``percentiles`` as sorted
    ``(percentile, seconds)`` pairs.
    """

    model: str = "none"
    delay: float | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    stddev: float | None = None
    median: float | None = None
    p95: float | None = None
    mu: float | None = None
    sigma: float | None = None
    percentiles: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class ErrorsConfig:
    """Share of requests answered with an error status, and the statuses drawn from (uniformly)."""

    rate: float = 0.0
    statuses: tuple[int, ...] = (500,)


@dataclass(frozen=True)
class StallConfig:
    """A server-wide pause, relative to the first request received.

    Exactly one of ``at`` (a single window ``[at, at + duration)``) or ``every``
    (windows ``[k*every, k*every + duration)`` for k = 1, 2, ...; no window at 0)
    is set. Responses due inside a window are held until it ends.
    """

    duration: float
    at: float | None = None
    every: float | None = None


@dataclass(frozen=True)
class CapacityConfig:
    """A server that serves ``slots`` requests at once, each for its latency draw (the service time).

    Requests that find every slot busy wait in FIFO order; ``queue`` bounds how
    many may wait (None: unbounded), and a request arriving when ``queue`` are
    already waiting is answered at once with ``status``.
    """

    slots: int
    queue: int | None = None
    status: int = 503


@dataclass(frozen=True)
class OpenAIErrorsConfig:
    """Share of accepted OpenAI requests answered at once with ``status`` and an OpenAI-style error body."""

    rate: float = 0.0
    status: int = 500


@dataclass(frozen=True)
class OpenAIStallConfig:
    """A pause of ``duration`` seconds after ``after_tokens`` tokens, in a ``rate`` share of the requests."""

    after_tokens: int
    duration: float
    rate: float = 1.0


@dataclass(frozen=True)
class OpenAIQuirks:
    """SSE habits of real servers. The first and ``usage_chunk`` are what OpenAI itself does; the rest are off.

    ``role_first_chunk``: a role-only chunk goes first (together with the first token, at TTFT);
    ``tokens_per_chunk``: tokens per content event after the first token (which goes alone);
    ``usage_chunk``: send the usage-only chunk when the request asks ``stream_options.include_usage``;
    ``no_space_after_data``: ``data:{...}``; ``split_events``: every write goes out as two, split
    inside an event's JSON; ``comments``: ``: keep-alive`` comment lines, also right after the headers.
    """

    role_first_chunk: bool = True
    tokens_per_chunk: int = 1
    usage_chunk: bool = True
    no_space_after_data: bool = False
    split_events: bool = False
    comments: bool = False


@dataclass(frozen=True)
class PrefixCacheConfig:
    """Prefill that costs ``per_token`` seconds per prompt token not already in a prefix cache.

    The cache holds prompt (and generated) tokens in blocks of ``block`` tokens,
    each block named by the hash of its whole prefix (as vLLM does), least
    recently used first out beyond ``capacity`` tokens. ``enabled: false``
    keeps the per-token cost and caches nothing: every prompt token is charged.
    """

    per_token: float
    block: int = 16
    capacity: int = 200_000
    enabled: bool = True


#: Quirk names, for validation and suggestions.
OPENAI_QUIRKS: tuple[str, ...] = tuple(OpenAIQuirks.__dataclass_fields__)


@dataclass(frozen=True)
class OpenAIConfig:
    """The mock's OpenAI-compatible endpoints (``/v1/chat/completions``, ``/v1/completions``).

    ``ttft`` is the prefill time (from getting a slot to the first token) and
    ``inter_token`` the delay before each further token, both latency models in
    seconds. ``output_tokens_min``/``_max`` bound the uniform draw of the output
    length (equal for a fixed length), capped by the request's ``max_tokens``.
    ``slots`` is the number of requests generated at once (None: unlimited) and
    ``queue`` the number waiting for one (None: unbounded); beyond it, 429.
    ``slowdown`` multiplies TTFT and inter-token delays when every slot is busy,
    linearly from 1 at one busy slot. ``prefix_cache`` (None: off) adds a
    per-prompt-token prefill cost, less what a prefix cache holds;
    ``check_history`` refuses a chat request whose assistant messages are not
    completions this server produced.
    """

    ttft: LatencyConfig = field(default_factory=lambda: LatencyConfig("fixed", delay=0.2))
    inter_token: LatencyConfig = field(default_factory=lambda: LatencyConfig("fixed", delay=0.02))
    output_tokens_min: int = 50
    output_tokens_max: int = 200
    slots: int | None = None
    queue: int | None = None
    slowdown: float = 1.0
    errors: OpenAIErrorsConfig = field(default_factory=OpenAIErrorsConfig)
    disconnect_rate: float = 0.0
    stall: OpenAIStallConfig | None = None
    quirks: OpenAIQuirks = field(default_factory=OpenAIQuirks)
    prefix_cache: PrefixCacheConfig | None = None
    check_history: bool = False


@dataclass(frozen=True)
class MockConfig:
    """Everything the mock server does per request; build it with ``from_mapping`` from YAML.

    ``body_bytes`` is the exact size of every JSON body (see ``bench.mock.connection.build_body``);
    ``seed`` seeds the latency and error draws; ``capacity`` (None: unlimited) makes
    the latency a service time in one of a few slots, see ``CapacityConfig``;
    ``openai`` (None: off) turns on the OpenAI-compatible endpoints, see ``OpenAIConfig``;
    ``flow`` turns on the ``/flow/`` endpoints (login, cookie session, cart), see ``bench.mock.flow``.
    """

    latency: LatencyConfig = field(default_factory=LatencyConfig)
    errors: ErrorsConfig = field(default_factory=ErrorsConfig)
    body_bytes: int = 64
    seed: int = 1
    stall: StallConfig | None = None
    capacity: CapacityConfig | None = None
    openai: OpenAIConfig | None = None
    flow: bool = False

    @property
    def response_statuses(self) -> frozenset[int]:
        """Every status a plain HTTP request can be answered with: 200, the injected errors, a full queue's."""
        full = (self.capacity.status,) if self.capacity is not None else ()
        return frozenset((200, *self.errors.statuses, *full))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "MockConfig":
        """Validate a YAML-loaded mapping (None means all defaults); raise MockConfigError on the first problem."""
        if data is None:
            return cls()
        mapping = _mapping(data, "")
        _check_keys(mapping, ("latency", "errors", "body_bytes", "seed", "stall", "capacity", "openai", "flow"), "")
        kwargs: dict[str, Any] = {}
        if mapping.get("latency") is not None:
            kwargs["latency"] = _latency(mapping["latency"])
        if mapping.get("errors") is not None:
            kwargs["errors"] = _errors(mapping["errors"])
        if "body_bytes" in mapping:
            kwargs["body_bytes"] = _int(mapping["body_bytes"], "body_bytes", minimum=0)
        if "seed" in mapping:
            kwargs["seed"] = _int(mapping["seed"], "seed")
        if mapping.get("stall") is not None:
            kwargs["stall"] = _stall(mapping["stall"])
        if mapping.get("capacity") is not None:
            kwargs["capacity"] = _capacity(mapping["capacity"], kwargs.get("latency", LatencyConfig()))
        if mapping.get("openai") is not None:
            kwargs["openai"] = _openai(mapping["openai"])
        if mapping.get("flow") is not None:
            kwargs["flow"] = _bool(mapping["flow"], "flow")
        return cls(**kwargs)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MockConfigError(path, f"expected a mapping, got {value!r}")
    return value


def _check_keys(mapping: Mapping[Any, Any], allowed: tuple[str, ...], path: str, context: str = "") -> None:
    for key in mapping:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(allowed) or '(none)'}"
        raise MockConfigError(_join(path, str(key)), f"unknown key{context}{hint}")


def _duration(value: object, path: str, *, positive: bool = False) -> float:
    try:
        seconds = parse_duration(value)
    except UnitError as exc:
        raise MockConfigError(path, str(exc)) from None
    if positive and seconds <= 0:
        raise MockConfigError(path, f"must be greater than 0, got {value!r}")
    return seconds


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MockConfigError(path, f"expected a finite number, got {value!r}")
    return float(value)


def _int(value: object, path: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MockConfigError(path, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise MockConfigError(path, f"must be >= {minimum}, got {value!r}")
    return value


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise MockConfigError(path, f"expected true or false, got {value!r}")
    return value


def _require(mapping: Mapping[str, Any], key: str, path: str, model: str) -> Any:
    if mapping.get(key) is None:
        raise MockConfigError(_join(path, key), f"required by latency model {model!r}")
    return mapping[key]


def _latency(value: object, path: str = "latency") -> LatencyConfig:
    mapping = _mapping(value, path)
    model = mapping.get("model", "none")
    if not isinstance(model, str) or model not in LATENCY_MODELS:
        close = difflib.get_close_matches(str(model), LATENCY_MODELS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(LATENCY_MODELS)}"
        raise MockConfigError(f"{path}.model", f"unknown model {model!r}; {hint}")
    allowed = ("model", *LATENCY_MODELS[model])
    for key in mapping:
        if key not in allowed and any(key in keys for keys in LATENCY_MODELS.values()):
            raise MockConfigError(
                f"{path}.{key}", f"not a parameter of model {model!r}; it takes {', '.join(allowed[1:]) or 'nothing'}"
            )
    _check_keys(mapping, allowed, path, f" for model {model!r}")

    def dur(key: str, *, positive: bool = False) -> float:
        return _duration(_require(mapping, key, path, model), f"{path}.{key}", positive=positive)

    if model == "none":
        return LatencyConfig()
    if model == "fixed":
        return LatencyConfig(model, delay=dur("delay"))
    if model == "uniform":
        low, high = dur("min"), dur("max")
        if high < low:
            raise MockConfigError(f"{path}.max", f"must be >= {path}.min ({low:g}s), got {high:g}s")
        return LatencyConfig(model, min=low, max=high)
    if model == "normal":
        return LatencyConfig(model, mean=dur("mean"), stddev=dur("stddev"))
    if model == "exponential":
        return LatencyConfig(model, mean=dur("mean", positive=True))
    if model == "lognormal":
        return _lognormal(mapping, path)
    percentiles = _percentiles(_require(mapping, "percentiles", path, model), f"{path}.percentiles")
    return LatencyConfig(model, percentiles=percentiles)


_Z95 = 1.6448536269514722  # standard normal quantile at 0.95


def _lognormal(mapping: Mapping[str, Any], path: str = "latency") -> LatencyConfig:
    by_median = "median" in mapping or "p95" in mapping
    by_mu = "mu" in mapping or "sigma" in mapping
    if by_median and by_mu:
        raise MockConfigError(path, "lognormal takes either median and p95, or mu and sigma, not both")
    if by_mu:
        mu = _number(_require(mapping, "mu", path, "lognormal"), f"{path}.mu")
        sigma = _number(_require(mapping, "sigma", path, "lognormal"), f"{path}.sigma")
        if sigma <= 0:
            raise MockConfigError(f"{path}.sigma", f"must be greater than 0, got {sigma!r}")
        return LatencyConfig("lognormal", mu=mu, sigma=sigma)
    median = _duration(_require(mapping, "median", path, "lognormal"), f"{path}.median", positive=True)
    p95 = _duration(_require(mapping, "p95", path, "lognormal"), f"{path}.p95")
    if p95 <= median:
        raise MockConfigError(f"{path}.p95", f"must be greater than {path}.median ({median:g}s), got {p95:g}s")
    return LatencyConfig(
        "lognormal", median=median, p95=p95, mu=math.log(median), sigma=math.log(p95 / median) / _Z95
    )


def _percentile_key(key: object, path: str) -> float:
    text = key
    if isinstance(key, str):
        text = key.strip().lower().removeprefix("p")
        try:
            text = float(text)
        except ValueError:
            raise MockConfigError(path, f"expected a percentile between 0 and 100, got {key!r}") from None
    if isinstance(text, bool) or not isinstance(text, (int, float)) or not 0 <= text <= 100:
        raise MockConfigError(path, f"expected a percentile between 0 and 100, got {key!r}")
    return float(text)


def _percentiles(value: object, path: str = "latency.percentiles") -> tuple[tuple[float, float], ...]:
    mapping = _mapping(value, path)
    if not mapping:
        raise MockConfigError(path, "needs at least one percentile, e.g. {50: 200ms, 100: 1s}")
    points = []
    for key, duration in mapping.items():
        key_path = f"{path}.{key}"
        points.append((_percentile_key(key, key_path), _duration(duration, key_path), key_path))
    points.sort()
    for (p_prev, v_prev, _), (p, v, key_path) in zip(points, points[1:]):
        if p == p_prev:
            raise MockConfigError(key_path, f"percentile {p:g} is given twice")
        if v < v_prev:
            raise MockConfigError(
                key_path, f"durations must not decrease as the percentile grows ({v:g}s after {v_prev:g}s)"
            )
    return tuple((p, v) for p, v, _ in points)


def _errors(value: object) -> ErrorsConfig:
    mapping = _mapping(value, "errors")
    _check_keys(mapping, ("rate", "statuses"), "errors")
    rate = 0.0
    if "rate" in mapping:
        rate = _number(mapping["rate"], "errors.rate")
        if not 0 <= rate <= 1:
            raise MockConfigError("errors.rate", f"must be between 0 and 1, got {rate!r}")
    statuses: tuple[int, ...] = (500,)
    if "statuses" in mapping:
        raw = mapping["statuses"]
        if not isinstance(raw, (list, tuple)) or not raw:
            raise MockConfigError("errors.statuses", f"expected a non-empty list of HTTP statuses, got {raw!r}")
        for index, status in enumerate(raw):
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise MockConfigError(f"errors.statuses.{index}", f"expected an HTTP status 100-599, got {status!r}")
        statuses = tuple(raw)
    return ErrorsConfig(rate=rate, statuses=statuses)


def _stall(value: object) -> StallConfig:
    mapping = _mapping(value, "stall")
    _check_keys(mapping, ("at", "every", "duration"), "stall")
    if ("at" in mapping) == ("every" in mapping):
        raise MockConfigError("stall", "give exactly one of 'at' (one stall) or 'every' (repeating stalls)")
    if "duration" not in mapping:
        raise MockConfigError("stall.duration", "required, e.g. 1s")
    duration = _duration(mapping["duration"], "stall.duration", positive=True)
    if "at" in mapping:
        return StallConfig(duration=duration, at=_duration(mapping["at"], "stall.at"))
    every = _duration(mapping["every"], "stall.every", positive=True)
    if duration >= every:
        raise MockConfigError("stall.duration", f"must be shorter than stall.every ({every:g}s), got {duration:g}s")
    return StallConfig(duration=duration, every=every)


def _always_zero(latency: LatencyConfig) -> bool:
    """Whether every draw of the latency model is 0 s."""
    if latency.model == "none":
        return True
    if latency.model == "fixed":
        return latency.delay == 0
    if latency.model == "uniform":
        return latency.max == 0
    if latency.model == "normal":
        return latency.mean <= 0 and latency.stddev == 0
    if latency.model == "empirical":
        return latency.percentiles[-1][1] == 0
    return False  # lognormal and exponential draws are always positive


def _capacity(value: object, latency: LatencyConfig) -> CapacityConfig:
    path = "capacity"
    mapping = _mapping(value, path)
    _check_keys(mapping, ("slots", "queue", "status"), path)
    if mapping.get("slots") is None:
        raise MockConfigError(f"{path}.slots", "required: how many requests are served at once, e.g. 4")
    slots = _int(mapping["slots"], f"{path}.slots", minimum=1)
    queue = _optional_int(mapping.get("queue"), f"{path}.queue", 0)
    status = 503
    if "status" in mapping:
        status = mapping["status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise MockConfigError(f"{path}.status", f"expected an HTTP status 100-599, got {status!r}")
    if _always_zero(latency):
        raise MockConfigError(
            path,
            "needs a latency model with a service time (each request holds a slot for its latency draw); "
            f"latency {latency.model!r} serves every request in 0 s, which is unlimited capacity: "
            "set e.g. latency: {model: fixed, delay: 50ms}",
        )
    return CapacityConfig(slots=slots, queue=queue, status=status)


def _rate(mapping: Mapping[str, Any], key: str, path: str, default: float) -> float:
    if key not in mapping:
        return default
    rate = _number(mapping[key], path)
    if not 0 <= rate <= 1:
        raise MockConfigError(path, f"must be between 0 and 1, got {rate!r}")
    return rate


def _optional_int(value: object, path: str, minimum: int) -> int | None:
    return None if value is None else _int(value, path, minimum=minimum)


def _output_tokens(value: object) -> tuple[int, int]:
    path = "openai.output_tokens"
    if isinstance(value, int) and not isinstance(value, bool):
        fixed = _int(value, path, minimum=1)
        return fixed, fixed
    mapping = _mapping(value, path)
    _check_keys(mapping, ("min", "max", "fixed"), path)
    if "fixed" in mapping:
        if "min" in mapping or "max" in mapping:
            raise MockConfigError(path, "give either 'fixed' or 'min' and 'max', not both")
        fixed = _int(mapping["fixed"], f"{path}.fixed", minimum=1)
        return fixed, fixed
    for key in ("min", "max"):
        if key not in mapping:
            raise MockConfigError(f"{path}.{key}", "required (or give 'fixed'), e.g. {min: 50, max: 200}")
    low = _int(mapping["min"], f"{path}.min", minimum=1)
    high = _int(mapping["max"], f"{path}.max", minimum=1)
    if high < low:
        raise MockConfigError(f"{path}.max", f"must be >= {path}.min ({low}), got {high}")
    return low, high


def _openai_errors(value: object) -> OpenAIErrorsConfig:
    path = "openai.errors"
    mapping = _mapping(value, path)
    _check_keys(mapping, ("rate", "status"), path)
    status = 500
    if "status" in mapping:
        status = mapping["status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise MockConfigError(f"{path}.status", f"expected an HTTP error status 400-599, got {status!r}")
    return OpenAIErrorsConfig(rate=_rate(mapping, "rate", f"{path}.rate", 0.0), status=status)


def _openai_stall(value: object) -> OpenAIStallConfig:
    path = "openai.stall"
    mapping = _mapping(value, path)
    _check_keys(mapping, ("after_tokens", "duration", "rate"), path)
    for key, example in (("after_tokens", "5"), ("duration", "2s")):
        if key not in mapping:
            raise MockConfigError(f"{path}.{key}", f"required, e.g. {example}")
    return OpenAIStallConfig(
        after_tokens=_int(mapping["after_tokens"], f"{path}.after_tokens", minimum=0),
        duration=_duration(mapping["duration"], f"{path}.duration", positive=True),
        rate=_rate(mapping, "rate", f"{path}.rate", 1.0),
    )


def _openai_quirks(value: object) -> OpenAIQuirks:
    path = "openai.quirks"
    mapping = _mapping(value, path)
    _check_keys(mapping, OPENAI_QUIRKS, path)
    kwargs: dict[str, Any] = {}
    for key, raw in mapping.items():
        if key == "tokens_per_chunk":
            kwargs[key] = _int(raw, f"{path}.{key}", minimum=1)
        else:
            kwargs[key] = _bool(raw, f"{path}.{key}")
    return OpenAIQuirks(**kwargs)


def _prefix_cache(value: object) -> PrefixCacheConfig:
    path = "openai.prefix_cache"
    mapping = _mapping(value, path)
    _check_keys(mapping, ("per_token", "block", "capacity", "enabled"), path)
    if mapping.get("per_token") is None:
        raise MockConfigError(f"{path}.per_token", "required: the prefill time of one uncached prompt token, e.g. 0.5ms")
    per_token = _duration(mapping["per_token"], f"{path}.per_token")
    block = _int(mapping["block"], f"{path}.block", minimum=1) if "block" in mapping else 16
    capacity = 200_000
    if "capacity" in mapping:
        capacity = _int(mapping["capacity"], f"{path}.capacity", minimum=block)
    enabled = _bool(mapping["enabled"], f"{path}.enabled") if "enabled" in mapping else True
    return PrefixCacheConfig(per_token=per_token, block=block, capacity=capacity, enabled=enabled)


_OPENAI_KEYS = (
    "ttft",
    "inter_token",
    "output_tokens",
    "slots",
    "queue",
    "slowdown",
    "errors",
    "disconnect_rate",
    "stall",
    "quirks",
    "prefix_cache",
    "check_history",
)


def _openai(value: object) -> OpenAIConfig:
    path = "openai"
    mapping = _mapping(value, path)
    _check_keys(mapping, _OPENAI_KEYS, path)
    kwargs: dict[str, Any] = {}
    for key in ("ttft", "inter_token"):
        if mapping.get(key) is not None:
            kwargs[key] = _latency(mapping[key], f"{path}.{key}")
    if mapping.get("output_tokens") is not None:
        kwargs["output_tokens_min"], kwargs["output_tokens_max"] = _output_tokens(mapping["output_tokens"])
    slots = _optional_int(mapping.get("slots"), f"{path}.slots", 1)
    queue = _optional_int(mapping.get("queue"), f"{path}.queue", 0)
    if queue is not None and slots is None:
        raise MockConfigError(f"{path}.queue", "needs openai.slots: requests only wait when every slot is busy")
    slowdown = 1.0
    if mapping.get("slowdown") is not None:
        slowdown = _number(mapping["slowdown"], f"{path}.slowdown")
        if slowdown < 1:
            raise MockConfigError(
                f"{path}.slowdown", f"must be >= 1 (a factor on delays when all slots are busy), got {slowdown!r}"
            )
        if slowdown > 1 and slots is None:
            raise MockConfigError(
                f"{path}.slowdown", "needs openai.slots: the slowdown grows with the share of busy slots"
            )
    kwargs.update(slots=slots, queue=queue, slowdown=slowdown)
    if mapping.get("errors") is not None:
        kwargs["errors"] = _openai_errors(mapping["errors"])
    kwargs["disconnect_rate"] = _rate(mapping, "disconnect_rate", f"{path}.disconnect_rate", 0.0)
    if mapping.get("stall") is not None:
        kwargs["stall"] = _openai_stall(mapping["stall"])
    if mapping.get("quirks") is not None:
        kwargs["quirks"] = _openai_quirks(mapping["quirks"])
    if mapping.get("prefix_cache") is not None:
        kwargs["prefix_cache"] = _prefix_cache(mapping["prefix_cache"])
    if mapping.get("check_history") is not None:
        kwargs["check_history"] = _bool(mapping["check_history"], f"{path}.check_history")
    return OpenAIConfig(**kwargs)


def server_url(host: str, port: int, tls: bool = False) -> str:
    """The URL a client uses for a mock listening on ``host:port`` (a wildcard address is reached on loopback)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

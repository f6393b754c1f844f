"""Validated configuration of the mock server: latency model, injected errors, stalls, body size.

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
    "ErrorsConfig",
    "LatencyConfig",
    "LATENCY_MODELS",
    "MockConfig",
    "MockConfigError",
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
class MockConfig:
    """Everything the mock server does per request; build it with ``from_mapping`` from YAML.

    ``body_bytes`` is the exact size of every JSON body (see ``bench.mock.server.build_body``);
    ``seed`` seeds the latency and error draws.
    """

    latency: LatencyConfig = field(default_factory=LatencyConfig)
    errors: ErrorsConfig = field(default_factory=ErrorsConfig)
    body_bytes: int = 64
    seed: int = 1
    stall: StallConfig | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "MockConfig":
        """Validate a YAML-loaded mapping (None means all defaults); raise MockConfigError on the first problem."""
        if data is None:
            return cls()
        mapping = _mapping(data, "")
        _check_keys(mapping, ("latency", "errors", "body_bytes", "seed", "stall"), "")
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


def _require(mapping: Mapping[str, Any], key: str, path: str, model: str) -> Any:
    if mapping.get(key) is None:
        raise MockConfigError(_join(path, key), f"required by latency model {model!r}")
    return mapping[key]


def _latency(value: object) -> LatencyConfig:
    path = "latency"
    mapping = _mapping(value, path)
    model = mapping.get("model", "none")
    if not isinstance(model, str) or model not in LATENCY_MODELS:
        close = difflib.get_close_matches(str(model), LATENCY_MODELS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(LATENCY_MODELS)}"
        raise MockConfigError("latency.model", f"unknown model {model!r}; {hint}")
    allowed = ("model", *LATENCY_MODELS[model])
    for key in mapping:
        if key not in allowed and any(key in keys for keys in LATENCY_MODELS.values()):
            raise MockConfigError(
                f"latency.{key}", f"not a parameter of model {model!r}; it takes {', '.join(allowed[1:]) or 'nothing'}"
            )
    _check_keys(mapping, allowed, path, f" for model {model!r}")

    def dur(key: str, *, positive: bool = False) -> float:
        return _duration(_require(mapping, key, path, model), f"latency.{key}", positive=positive)

    if model == "none":
        return LatencyConfig()
    if model == "fixed":
        return LatencyConfig(model, delay=dur("delay"))
    if model == "uniform":
        low, high = dur("min"), dur("max")
        if high < low:
            raise MockConfigError("latency.max", f"must be >= latency.min ({low:g}s), got {high:g}s")
        return LatencyConfig(model, min=low, max=high)
    if model == "normal":
        return LatencyConfig(model, mean=dur("mean"), stddev=dur("stddev"))
    if model == "exponential":
        return LatencyConfig(model, mean=dur("mean", positive=True))
    if model == "lognormal":
        return _lognormal(mapping)
    return LatencyConfig(model, percentiles=_percentiles(_require(mapping, "percentiles", path, model)))


_Z95 = 1.6448536269514722  # standard normal quantile at 0.95


def _lognormal(mapping: Mapping[str, Any]) -> LatencyConfig:
    by_median = "median" in mapping or "p95" in mapping
    by_mu = "mu" in mapping or "sigma" in mapping
    if by_median and by_mu:
        raise MockConfigError("latency", "lognormal takes either median and p95, or mu and sigma, not both")
    if by_mu:
        mu = _number(_require(mapping, "mu", "latency", "lognormal"), "latency.mu")
        sigma = _number(_require(mapping, "sigma", "latency", "lognormal"), "latency.sigma")
        if sigma <= 0:
            raise MockConfigError("latency.sigma", f"must be greater than 0, got {sigma!r}")
        return LatencyConfig("lognormal", mu=mu, sigma=sigma)
    median = _duration(_require(mapping, "median", "latency", "lognormal"), "latency.median", positive=True)
    p95 = _duration(_require(mapping, "p95", "latency", "lognormal"), "latency.p95")
    if p95 <= median:
        raise MockConfigError("latency.p95", f"must be greater than latency.median ({median:g}s), got {p95:g}s")
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


def _percentiles(value: object) -> tuple[tuple[float, float], ...]:
    path = "latency.percentiles"
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

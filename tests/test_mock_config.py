"""MockConfig.from_mapping: what valid YAML turns into, and which field each invalid case names."""

from __future__ import annotations

import math

import pytest

from bench.mock import MockConfig, MockConfigError
from bench.mock.config import CapacityConfig, ErrorsConfig, LatencyConfig, StallConfig


def test_defaults_from_none_and_empty() -> None:
    for data in (None, {}):
        config = MockConfig.from_mapping(data)
        assert config == MockConfig()
        assert config.latency.model == "none"
        assert config.errors == ErrorsConfig(rate=0.0, statuses=(500,))
        assert config.body_bytes == 64
        assert config.seed == 1
        assert config.stall is None


def test_full_example() -> None:
    config = MockConfig.from_mapping(
        {
            "latency": {"model": "lognormal", "median": "215ms", "p95": "490ms"},
            "errors": {"rate": 0.05, "statuses": [500, 503]},
            "body_bytes": 256,
            "seed": 7,
            "stall": {"at": "2s", "duration": "1s"},
        }
    )
    assert config.latency.median == pytest.approx(0.215)
    assert config.latency.p95 == pytest.approx(0.490)
    assert config.latency.mu == pytest.approx(math.log(0.215))
    assert config.latency.sigma == pytest.approx(math.log(0.490 / 0.215) / 1.6448536269514722)
    assert config.errors == ErrorsConfig(rate=0.05, statuses=(500, 503))
    assert config.body_bytes == 256 and config.seed == 7
    assert config.stall == StallConfig(duration=1.0, at=2.0)
    with pytest.raises(AttributeError):
        config.seed = 2  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("latency", "expected"),
    [
        ({"model": "none"}, LatencyConfig()),
        ({"model": "fixed", "delay": "10ms"}, LatencyConfig("fixed", delay=0.01)),
        ({"model": "fixed", "delay": 0}, LatencyConfig("fixed", delay=0.0)),  # zero needs no unit
        ({"model": "uniform", "min": "1ms", "max": "3ms"}, LatencyConfig("uniform", min=0.001, max=0.003)),
        ({"model": "normal", "mean": "20ms", "stddev": "5ms"}, LatencyConfig("normal", mean=0.02, stddev=0.005)),
        ({"model": "exponential", "mean": "30ms"}, LatencyConfig("exponential", mean=0.03)),
        ({"model": "lognormal", "mu": -3, "sigma": 0.5}, LatencyConfig("lognormal", mu=-3.0, sigma=0.5)),
    ],
)
def test_latency_models(latency: dict, expected: LatencyConfig) -> None:
    assert MockConfig.from_mapping({"latency": latency}).latency == expected


def test_empirical_percentiles_sorted_and_in_seconds() -> None:
    config = MockConfig.from_mapping(
        {"latency": {"model": "empirical", "percentiles": {99: "800ms", 50: "200ms", "p90": "400ms", 100: "1s"}}}
    )
    assert config.latency.percentiles == ((50.0, 0.2), (90.0, 0.4), (99.0, 0.8), (100.0, 1.0))


def test_stall_every() -> None:
    config = MockConfig.from_mapping({"stall": {"every": "5s", "duration": "1s"}})
    assert config.stall == StallConfig(duration=1.0, every=5.0)


def test_error_str_format() -> None:
    with pytest.raises(MockConfigError) as info:
        MockConfig.from_mapping({"latency": {"model": "lognormal", "median": "abc", "p95": "1s"}})
    assert info.value.field == "latency.median"
    assert str(info.value).startswith("latency.median: expected a duration such as 250ms")
    assert str(info.value).endswith("got 'abc'")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"latncy": {}}, "latncy", "did you mean 'latency'"),
        ({"body_byte": 10}, "body_byte", "did you mean 'body_bytes'"),
        ({"latency": {"model": "fixed", "dely": "1ms"}}, "latency.dely", "did you mean 'delay'"),
        ({"latency": {"model": "fixed", "mean": "1ms"}}, "latency.mean", "not a parameter of model 'fixed'"),
        ({"latency": {"model": "lognormel"}}, "latency.model", "did you mean 'lognormal'"),
        ({"errors": {"rates": 0.1}}, "errors.rates", "did you mean 'rate'"),
        ({"stall": {"at": "1s", "durtion": "1s"}}, "stall.durtion", "did you mean 'duration'"),
        ({"latency": {"model": "fixed", "delay": "abc"}}, "latency.delay", "expected a duration"),
        ({"latency": {"model": "fixed", "delay": "-5ms"}}, "latency.delay", "expected a duration"),
        ({"latency": {"model": "fixed", "delay": -1}}, "latency.delay", ">= 0"),
        ({"latency": {"model": "fixed"}}, "latency.delay", "required"),
        ({"latency": {"model": "uniform", "min": "3ms", "max": "1ms"}}, "latency.max", "must be >="),
        ({"latency": {"model": "exponential", "mean": 0}}, "latency.mean", "greater than 0"),
        ({"latency": {"model": "fixed", "delay": 0.5}}, "latency.delay", "needs a unit: write 0.5s or 0.5ms"),
        ({"latency": {"model": "lognormal", "median": "500ms", "p95": "200ms"}}, "latency.p95", "greater than"),
        ({"latency": {"model": "lognormal", "median": "500ms"}}, "latency.p95", "required"),
        ({"latency": {"model": "lognormal", "mu": 0, "sigma": -1}}, "latency.sigma", "greater than 0"),
        ({"latency": {"model": "lognormal", "median": "1s", "sigma": 1}}, "latency", "not both"),
        (
            {"latency": {"model": "empirical", "percentiles": {50: "300ms", 90: "200ms"}}},
            "latency.percentiles.90",
            "must not decrease",
        ),
        ({"latency": {"model": "empirical", "percentiles": {150: "1s"}}}, "latency.percentiles.150", "between 0"),
        ({"latency": {"model": "empirical", "percentiles": {}}}, "latency.percentiles", "at least one"),
        ({"latency": "fast"}, "latency", "expected a mapping"),
        ({"errors": {"rate": 1.5}}, "errors.rate", "between 0 and 1"),
        ({"errors": {"rate": -0.1}}, "errors.rate", "between 0 and 1"),
        ({"errors": {"rate": "often"}}, "errors.rate", "expected a finite number"),
        ({"errors": {"statuses": [500, 700]}}, "errors.statuses.1", "100-599"),
        ({"errors": {"statuses": ["500"]}}, "errors.statuses.0", "100-599"),
        ({"errors": {"statuses": []}}, "errors.statuses", "non-empty"),
        ({"body_bytes": -1}, "body_bytes", ">= 0"),
        ({"body_bytes": 1.5}, "body_bytes", "integer"),
        ({"seed": True}, "seed", "integer"),
        ({"stall": {"duration": "1s"}}, "stall", "exactly one"),
        ({"stall": {"at": "1s", "every": "5s", "duration": "1s"}}, "stall", "exactly one"),
        ({"stall": {"at": "1s"}}, "stall.duration", "required"),
        ({"stall": {"every": "1s", "duration": "2s"}}, "stall.duration", "shorter than"),
        ({"stall": {"at": "1s", "duration": 0}}, "stall.duration", "greater than 0"),
    ],
)
def test_invalid(data: dict, field: str, fragment: str) -> None:
    with pytest.raises(MockConfigError) as info:
        MockConfig.from_mapping(data)
    assert info.value.field == field
    assert fragment in info.value.message
    assert str(info.value) == f"{field}: {info.value.message}"


def test_not_a_mapping() -> None:
    with pytest.raises(MockConfigError) as info:
        MockConfig.from_mapping(["latency"])  # type: ignore[arg-type]
    assert info.value.field == ""


FIXED_50MS = {"model": "fixed", "delay": "50ms"}


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        ({"slots": 4}, CapacityConfig(slots=4, queue=None, status=503)),
        ({"slots": 4, "queue": 100, "status": 503}, CapacityConfig(slots=4, queue=100, status=503)),
        ({"slots": 1, "queue": None, "status": 429}, CapacityConfig(slots=1, queue=None, status=429)),
        ({"slots": 2, "queue": 0}, CapacityConfig(slots=2, queue=0, status=503)),
    ],
)
def test_capacity(capacity: dict, expected: CapacityConfig) -> None:
    config = MockConfig.from_mapping({"latency": FIXED_50MS, "capacity": capacity})
    assert config.capacity == expected
    assert config.latency == LatencyConfig("fixed", delay=0.05)


def test_capacity_default_none_and_statuses_answered() -> None:
    assert MockConfig().capacity is None
    assert MockConfig().response_statuses == {200, 500}
    config = MockConfig.from_mapping(
        {"latency": FIXED_50MS, "errors": {"rate": 0.1, "statuses": [502]}, "capacity": {"slots": 2, "status": 429}}
    )
    assert config.response_statuses == {200, 502, 429}


@pytest.mark.parametrize(
    "latency",
    [
        {"model": "lognormal", "median": "50ms", "p95": "120ms"},
        {"model": "exponential", "mean": "50ms"},
        {"model": "uniform", "min": 0, "max": "10ms"},
        {"model": "normal", "mean": "50ms", "stddev": 0},
        {"model": "empirical", "percentiles": {0: 0, 100: "1ms"}},
    ],
)
def test_capacity_takes_any_latency_model_with_a_service_time(latency: dict) -> None:
    assert MockConfig.from_mapping({"latency": latency, "capacity": {"slots": 1}}).capacity == CapacityConfig(1)


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"latency": FIXED_50MS, "capacity": {"slot": 4}}, "capacity.slot", "did you mean 'slots'"),
        ({"latency": FIXED_50MS, "capacity": {"slots": 4, "queu": 1}}, "capacity.queu", "did you mean 'queue'"),
        ({"latency": FIXED_50MS, "capacity": {"slots": 4, "stats": 1}}, "capacity.stats", "did you mean 'status'"),
        ({"latency": FIXED_50MS, "capacty": {"slots": 4}}, "capacty", "did you mean 'capacity'"),
        ({"latency": FIXED_50MS, "capacity": {"queue": 4}}, "capacity.slots", "required"),
        ({"latency": FIXED_50MS, "capacity": {"slots": None}}, "capacity.slots", "required"),
        ({"latency": FIXED_50MS, "capacity": {"slots": 0}}, "capacity.slots", ">= 1"),
        ({"latency": FIXED_50MS, "capacity": {"slots": 2.5}}, "capacity.slots", "integer"),
        ({"latency": FIXED_50MS, "capacity": {"slots": True}}, "capacity.slots", "integer"),
        ({"latency": FIXED_50MS, "capacity": {"slots": "4"}}, "capacity.slots", "integer"),
        ({"latency": FIXED_50MS, "capacity": {"slots": 4, "queue": -1}}, "capacity.queue", ">= 0"),
        ({"latency": FIXED_50MS, "capacity": {"slots": 4, "queue": 1.5}}, "capacity.queue", "integer"),
        ({"latency": FIXED_50MS, "capacity": {"slots": 4, "status": 99}}, "capacity.status", "100-599"),
        ({"latency": FIXED_50MS, "capacity": {"slots": 4, "status": 600}}, "capacity.status", "100-599"),
        ({"latency": FIXED_50MS, "capacity": {"slots": 4, "status": "503"}}, "capacity.status", "100-599"),
        ({"latency": FIXED_50MS, "capacity": 4}, "capacity", "expected a mapping"),
        ({"capacity": {"slots": 4}}, "capacity", "latency 'none' serves every request in 0 s"),
        ({"latency": {"model": "none"}, "capacity": {"slots": 4}}, "capacity", "unlimited capacity"),
        ({"latency": {"model": "fixed", "delay": 0}, "capacity": {"slots": 4}}, "capacity", "unlimited capacity"),
        ({"latency": {"model": "uniform", "min": 0, "max": 0}, "capacity": {"slots": 1}}, "capacity", "in 0 s"),
        ({"latency": {"model": "empirical", "percentiles": {100: 0}}, "capacity": {"slots": 1}}, "capacity", "in 0 s"),
    ],
)
def test_capacity_invalid(data: dict, field: str, fragment: str) -> None:
    with pytest.raises(MockConfigError) as info:
        MockConfig.from_mapping(data)
    assert info.value.field == field
    assert fragment in info.value.message

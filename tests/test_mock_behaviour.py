"""Behaviour: sampled delays match each model's exact quantiles, errors match the rate, seeds reproduce, stalls hold."""

from __future__ import annotations

import math

import pytest

from bench.mock import MockConfig
from bench.mock.behaviour import Behaviour, latency_model

N = 20_000
LEVELS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)

MODELS = {
    "none": {"model": "none"},
    "fixed": {"model": "fixed", "delay": "25ms"},
    "uniform": {"model": "uniform", "min": "10ms", "max": "30ms"},
    "normal": {"model": "normal", "mean": "20ms", "stddev": "10ms"},  # ~2.3% clipped at 0
    "lognormal": {"model": "lognormal", "median": "215ms", "p95": "490ms"},
    "lognormal-mu": {"model": "lognormal", "mu": -3.0, "sigma": 0.7},
    "exponential": {"model": "exponential", "mean": "40ms"},
    "empirical": {"model": "empirical", "percentiles": {50: "200ms", 90: "400ms", 99: "800ms", 100: "1s"}},
    "empirical-tails": {"model": "empirical", "percentiles": {10: "5ms", 80: "50ms"}},
}


def _config(latency: dict, **extra: object) -> MockConfig:
    return MockConfig.from_mapping({"latency": latency, **extra})


def _delays(behaviour: Behaviour, n: int) -> list[float]:
    return [behaviour.next_response(0.0)[0] for _ in range(n)]


@pytest.mark.parametrize("name", MODELS)
def test_sample_quantiles_match_model(name: str) -> None:
    behaviour = Behaviour(_config(MODELS[name], seed=11))
    model = behaviour.latency
    samples = sorted(_delays(behaviour, N))
    for q in LEVELS:
        # The order statistic of rank ceil(qN) lies between the true quantiles at
        # q -/+ 4 binomial standard deviations, except with probability ~1e-4.
        spread = 4.0 * math.sqrt(q * (1.0 - q) / N)
        low = model.quantile(max(q - spread, 1e-9))
        high = model.quantile(min(q + spread, 1.0 - 1e-9))
        observed = samples[math.ceil(q * N) - 1]
        assert low - 1e-12 <= observed <= high + 1e-12, (name, q, low, observed, high)


def test_quantiles_exact_values() -> None:
    lognormal = latency_model(_config(MODELS["lognormal"]).latency)
    assert lognormal.quantile(0.5) == pytest.approx(0.215)
    assert lognormal.quantile(0.95) == pytest.approx(0.490)
    empirical = latency_model(_config(MODELS["empirical"]).latency)
    assert empirical.quantile(0.5) == pytest.approx(0.2)
    assert empirical.quantile(0.7) == pytest.approx(0.3)  # halfway between p50 and p90
    assert empirical.quantile(0.25) == pytest.approx(0.2)  # below p50: percentile 0 is the smallest value
    from_zero = latency_model(_config({"model": "empirical", "percentiles": {0: "100ms", 50: "200ms"}}).latency)
    assert from_zero.quantile(0.25) == pytest.approx(0.15)  # 0 given: interpolate from it
    tails = latency_model(_config(MODELS["empirical-tails"]).latency)
    assert tails.quantile(0.05) == pytest.approx(0.005)  # below the lowest percentile: lowest value
    assert tails.quantile(0.95) == pytest.approx(0.05)  # above the highest: highest value
    assert latency_model(_config(MODELS["exponential"]).latency).quantile(0.5) == pytest.approx(0.04 * math.log(2))
    normal = latency_model(_config(MODELS["normal"]).latency)
    assert normal.quantile(0.01) == 0.0  # clipped
    assert normal.quantile(0.5) == pytest.approx(0.02)
    with pytest.raises(ValueError):
        normal.quantile(1.0)


def test_error_rate_within_binomial_bound() -> None:
    rate = 0.05
    behaviour = Behaviour(MockConfig.from_mapping({"errors": {"rate": rate, "statuses": [500, 503]}, "seed": 3}))
    statuses = [behaviour.next_response(0.0)[1] for _ in range(N)]
    errors = sum(status != 200 for status in statuses)
    assert abs(errors - N * rate) <= 4.0 * math.sqrt(N * rate * (1.0 - rate))
    assert set(statuses) == {200, 500, 503}
    assert abs(statuses.count(500) - errors / 2) <= 4.0 * math.sqrt(errors * 0.25)


def test_error_rate_edges() -> None:
    never = Behaviour(MockConfig.from_mapping({"errors": {"rate": 0}}))
    always = Behaviour(MockConfig.from_mapping({"errors": {"rate": 1, "statuses": [429]}}))
    assert {never.next_response(0.0)[1] for _ in range(1000)} == {200}
    assert {always.next_response(0.0)[1] for _ in range(1000)} == {429}


def test_errors_are_delayed_like_successes() -> None:
    behaviour = Behaviour(_config({"model": "fixed", "delay": "30ms"}, errors={"rate": 1}))
    assert behaviour.next_response(0.0) == (pytest.approx(0.03), 500)


def test_same_seed_same_sequence_and_seeds_differ() -> None:
    data = {"latency": MODELS["lognormal"], "errors": {"rate": 0.2, "statuses": [500, 502]}}
    runs = [
        [Behaviour(MockConfig.from_mapping({**data, "seed": seed})) for _ in range(2)] for seed in (1, 2)
    ]
    sequences = [[[b.next_response(0.0) for _ in range(500)] for b in pair] for pair in runs]
    assert sequences[0][0] == sequences[0][1]
    assert sequences[1][0] == sequences[1][1]
    assert sequences[0][0] != sequences[1][0]


def test_latency_stream_independent_of_error_rate() -> None:
    plain = Behaviour(_config(MODELS["exponential"], seed=5))
    with_errors = Behaviour(_config(MODELS["exponential"], seed=5, errors={"rate": 0.5}))
    assert _delays(plain, 200) == _delays(with_errors, 200)


def test_stall_at_holds_responses_until_window_end() -> None:
    behaviour = Behaviour(_config({"model": "fixed", "delay": "600ms"}, stall={"at": "2s", "duration": "1s"}))
    t0 = 100.0
    assert behaviour.next_response(t0)[0] == pytest.approx(0.6)  # first request starts the clock
    assert behaviour.next_response(t0 + 1.0)[0] == pytest.approx(0.6)  # sent at 1.6 s: before the window
    assert behaviour.next_response(t0 + 1.5)[0] == pytest.approx(1.5)  # due at 2.1 s: held until 3 s
    assert behaviour.next_response(t0 + 2.5)[0] == pytest.approx(0.6)  # due at 3.1 s: after the window
    assert behaviour.next_response(t0 + 10.0)[0] == pytest.approx(0.6)  # one stall only


def test_stall_every_repeats_from_every_not_zero() -> None:
    behaviour = Behaviour(_config({"model": "none"}, stall={"every": "5s", "duration": "1s"}))
    t0 = 50.0
    assert behaviour.next_response(t0)[0] == 0.0  # no window at k = 0
    assert behaviour.next_response(t0 + 0.5)[0] == 0.0
    assert behaviour.next_response(t0 + 4.99)[0] == 0.0
    assert behaviour.next_response(t0 + 5.0)[0] == pytest.approx(1.0)
    assert behaviour.next_response(t0 + 5.75)[0] == pytest.approx(0.25)
    assert behaviour.next_response(t0 + 6.0)[0] == 0.0
    assert behaviour.next_response(t0 + 10.5)[0] == pytest.approx(0.5)
    assert behaviour.release_time(t0 + 15.2) == pytest.approx(t0 + 16.0)


def test_stall_at_zero_holds_first_requests() -> None:
    behaviour = Behaviour(_config({"model": "fixed", "delay": "10ms"}, stall={"at": 0, "duration": "500ms"}))
    assert behaviour.next_response(7.0)[0] == pytest.approx(0.5)
    assert behaviour.next_response(7.2)[0] == pytest.approx(0.3)
    assert behaviour.next_response(7.6)[0] == pytest.approx(0.01)


def test_only_a_plain_instant_mock_skips_the_per_request_decision():
    """The server's fast path (no delay, status 200, no clock) applies only when nothing could change an answer."""
    assert Behaviour(MockConfig()).instant
    assert not Behaviour(MockConfig.from_mapping({"latency": {"model": "fixed", "delay": "1ms"}})).instant
    assert not Behaviour(MockConfig.from_mapping({"errors": {"rate": 0.01}})).instant
    assert not Behaviour(MockConfig.from_mapping({"stall": {"every": "2s", "duration": "1s"}})).instant

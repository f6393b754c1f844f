"""Behaviour: sampled delays match each model's exact quantiles, errors match the rate, seeds reproduce, stalls hold."""

from __future__ import annotations

import heapq
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


# --- capacity: an M/G/N FIFO queue in virtual time ------------------------------------


def _slots(slots: int, delay: str = "1s", queue: int | None = None, **extra: object) -> Behaviour:
    capacity = {"slots": slots, "queue": queue, **extra.pop("capacity", {})}  # type: ignore[dict-item]
    return Behaviour(_config({"model": "fixed", "delay": delay}, capacity=capacity, **extra))


def test_capacity_delays_computed_by_hand() -> None:
    # 2 slots, 1 s service. t=0: two start at once; the third waits for the first free slot (1 s).
    # t=0.5: both slots busy until 1 s and one already waits for a slot at 1 s: the other one at 1 s too.
    # t=1.5: slots free at 2 s and 2 s -> starts at 2 s. t=3: a slot is free -> served at once.
    behaviour = _slots(2)
    arrivals = (0.0, 0.0, 0.0, 0.5, 1.5, 3.0)
    assert [behaviour.next_response(t) for t in arrivals] == [
        (1.0, 200),
        (1.0, 200),
        (2.0, 200),
        (1.5, 200),
        (1.5, 200),
        (1.0, 200),
    ]
    assert behaviour.rejected == 0


def test_capacity_waiting_counts_requests_not_yet_started() -> None:
    behaviour = _slots(2)
    for t in (0.0, 0.0, 0.0, 0.0, 0.0):  # starts 0, 0, 1, 1, 2
        behaviour.next_response(t)
    assert behaviour.waiting(0.0) == 3
    assert behaviour.waiting(0.999) == 3
    assert behaviour.waiting(1.0) == 1  # a start at 1 s is no longer waiting at 1 s
    assert behaviour.waiting(2.0) == 0


def test_capacity_bounded_queue_answers_status_at_once() -> None:
    behaviour = _slots(1, queue=2, capacity={"status": 429})
    at_zero = [behaviour.next_response(0.0) for _ in range(5)]
    assert at_zero == [(1.0, 200), (2.0, 200), (3.0, 200), (0.0, 429), (0.0, 429)]
    # At 1 s the second request starts: one place is free again, taken by the next arrival (start 3 s).
    assert behaviour.next_response(1.0) == (3.0, 200)
    assert behaviour.next_response(1.0) == (0.0, 429)
    assert behaviour.next_response(3.0) == (2.0, 200)  # slot free at 4 s; starts at 4, 5 s are still ahead
    assert behaviour.rejected == 3


def test_capacity_queue_zero_serves_only_on_a_free_slot() -> None:
    behaviour = _slots(2, queue=0)
    # Slots busy until 1 s and 1.2 s: refused at 0.4 and 0.999 s, served at 1 s (a slot is free), refused at 1.1 s.
    delays = [behaviour.next_response(t) for t in (0.0, 0.2, 0.4, 0.999, 1.0, 1.1, 1.2)]
    assert delays == [(1.0, 200), (1.0, 200), (0.0, 503), (0.0, 503), (1.0, 200), (0.0, 503), (1.0, 200)]
    assert behaviour.rejected == 3


def test_capacity_errors_keep_their_slot_and_the_rejected_draw_nothing() -> None:
    behaviour = _slots(1, queue=1, errors={"rate": 1, "statuses": [500]})
    assert [behaviour.next_response(0.0) for _ in range(3)] == [(1.0, 500), (2.0, 500), (0.0, 503)]
    # The k-th accepted request gets the k-th latency draw, whatever was rejected in between.
    plain = Behaviour(_config(MODELS["exponential"], seed=4))
    queued = Behaviour(_config(MODELS["exponential"], seed=4, capacity={"slots": 1, "queue": 0}))
    served = []
    for k in range(200):
        delay, status = queued.next_response(float(k))  # 1 s apart: the slot is free unless a draw was > 1 s
        if status == 200:
            served.append(delay)
    assert served == _delays(plain, len(served))
    assert queued.rejected == 0  # exponential mean 40 ms: a draw over 1 s has probability ~1e-11


def test_capacity_with_more_slots_than_requests_changes_nothing() -> None:
    plain = Behaviour(_config(MODELS["lognormal"], seed=9))
    queued = Behaviour(_config(MODELS["lognormal"], seed=9, capacity={"slots": 300}))
    assert _delays(queued, 300) == _delays(plain, 300)


def test_capacity_stall_holds_responses_not_slots() -> None:
    behaviour = _slots(1, "600ms", queue=0, stall={"at": "2s", "duration": "1s"})
    t0 = 100.0
    assert behaviour.next_response(t0) == (pytest.approx(0.6), 200)
    assert behaviour.next_response(t0 + 1.5) == (pytest.approx(1.5), 200)  # served 1.5-2.1 s, held to 3 s
    # The slot is free at 2.1 s (not 3 s): queue 0 refuses at 2.0 s ...
    assert behaviour.next_response(t0 + 2.0) == (pytest.approx(1.0), 503)  # ... and the refusal is held too
    assert behaviour.next_response(t0 + 2.2) == (pytest.approx(0.8), 200)  # served 2.2-2.8 s, held to 3 s


def _closed_loop(behaviour: Behaviour, users: int, requests: int) -> tuple[float, list[float]]:
    """Users that send again the moment their answer arrives: (last answer time, latencies)."""
    due = [(0.0, user) for user in range(users)]
    latencies: list[float] = []
    end = 0.0
    while len(latencies) < requests:
        now, user = heapq.heappop(due)
        delay, _ = behaviour.next_response(now)
        latencies.append(delay)
        end = max(end, now + delay)
        heapq.heappush(due, (now + delay, user))
    return end, latencies


@pytest.mark.parametrize(("slots", "users"), [(4, 1), (4, 4), (4, 5), (4, 6), (4, 12), (1, 3), (8, 9)])
def test_capacity_closed_loop_truth(slots: int, users: int) -> None:
    service = 0.05
    requests = 100 * users
    end, latencies = _closed_loop(_slots(slots, "50ms"), users, requests)
    if users <= slots:
        assert latencies == [pytest.approx(service)] * requests  # nobody waits
        return
    assert requests / end == pytest.approx(slots / service, rel=0.02)  # throughput N/D
    assert sum(latencies) / requests == pytest.approx(users * service / slots, rel=0.02)  # Little: C*D/N
    p95 = sorted(latencies)[math.ceil(0.95 * requests) - 1]
    assert p95 >= service * (1 + 1 / slots) - 1e-9


def test_capacity_one_user_more_than_slots_moves_the_p95_while_over_5_percent_wait() -> None:
    # N + 1 users: 1 request in N + 1 waits about D. The mean is D (1 + 1/N) for any N; the p95 is about 2 D
    # while 1 / (N + 1) > 5 % (N <= 18) and D once it is under 5 % (N >= 20).
    for slots, p95 in ((4, 0.1), (18, 0.1), (20, 0.05), (32, 0.05)):
        end, latencies = _closed_loop(_slots(slots, "50ms"), slots + 1, 100 * (slots + 1))
        assert sum(latencies) / len(latencies) == pytest.approx(0.05 * (1 + 1 / slots), rel=0.02)
        assert sorted(latencies)[math.ceil(0.95 * len(latencies)) - 1] == pytest.approx(p95, rel=0.02), slots


def test_capacity_open_loop_truth() -> None:
    slots, service = 4, 0.1  # capacity 40/s
    below = _slots(slots, "100ms")
    assert {round(below.next_response(k / 39.0)[0], 9) for k in range(400)} == {service}
    above = _slots(slots, "100ms")
    rate = 60.0  # the backlog grows by 20/s: a request arriving at t waits t * (60/40 - 1)
    for k in range(600):
        t = k / rate
        delay, _ = above.next_response(t)
        assert delay - service == pytest.approx(t * (rate * service / slots - 1), abs=service)

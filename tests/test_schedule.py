"""bench.engine.plan.schedule: the load plan, table-driven in the style of vegeta's pacer tests."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math

import pytest

from bench.engine.plan.profile import CLOSED_LOOP, OPEN_LOOP, Load, Stage
from bench.engine.plan.schedule import Ramp, arrival_offsets, concurrency_ramp, rate_ramp, schedule_end_s, share

BASE = Load(
    model=OPEN_LOOP,
    workers=1,
    rate_per_s=10.0,
    concurrency=None,
    arrival="constant",
    seed=1,
    max_in_flight=1000,
    requests=None,
    duration_s=1.0,
    warmup_requests=0,
    warmup_s=0.0,
    stages=(),
)


def load(**changes) -> Load:
    return dataclasses.replace(BASE, **changes)


def merged(load_: Load, workers: int) -> list[float]:
    """Every worker's offsets, merged in time order."""
    return list(heapq.merge(*(arrival_offsets(load_, i, workers) for i in range(workers))))


def ks_exponential(samples: list[float]) -> float:
    """Kolmogorov-Smirnov statistic D_n of ``samples`` against the unit exponential CDF 1 - exp(-x)."""
    xs = sorted(samples)
    n = len(xs)
    d = 0.0
    for i, x in enumerate(xs):
        cdf = 1.0 - math.exp(-x)
        d = max(d, (i + 1) / n - cdf, cdf - i / n)
    return d


def ks_critical(n: int) -> float:
    """Asymptotic KS critical value at alpha = 0.01."""
    return 1.63 / math.sqrt(n)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip([0.0] + times, times)]


# --------------------------------------------------------------------------- share


@pytest.mark.parametrize(
    ("total", "count", "expected"),
    [
        (10, 1, [10]),  # one worker takes everything
        (10, 2, [5, 5]),  # even split
        (10, 3, [4, 3, 3]),  # the remainder goes to the first workers
        (10, 4, [3, 3, 2, 2]),
        (3, 5, [1, 1, 1, 0, 0]),  # fewer units than workers: some get none
        (0, 4, [0, 0, 0, 0]),  # nothing to share
        (1, 1, [1]),
        (7, 7, [1] * 7),  # exactly one each
        (100, 8, [13, 13, 13, 13, 12, 12, 12, 12]),
    ],
)
def test_share_table(total, count, expected):
    assert [share(total, i, count) for i in range(count)] == expected


def test_share_adds_up_and_is_balanced():
    # Every (total, count) pair in a grid: parts sum to the total and differ by at most one,
    # larger parts first (so worker 0 is never short-changed relative to a later worker).
    for total in list(range(0, 130)) + [999, 1000, 1001, 65_537]:
        for count in range(1, 33):
            parts = [share(total, i, count) for i in range(count)]
            assert sum(parts) == total, (total, count, parts)
            assert max(parts) - min(parts) <= 1, (total, count, parts)
            assert parts == sorted(parts, reverse=True), (total, count, parts)


# --------------------------------------------------------------------------- Ramp


CONSTANT = Ramp(((0.0, 10.0),))  # 10/s forever
LINEAR = Ramp(((0.0, 0.0), (10.0, 100.0)))  # 0 -> 100/s over 10 s, then flat at 100/s
STEP = Ramp.from_load(10.0, (Stage(2.0, 10.0), Stage(0.0, 50.0), Stage(2.0, 50.0)))  # 10/s for 2 s, instant step to 50/s
DOWN = Ramp(((0.0, 10.0), (1.0, 0.0)))  # 10 -> 0 over 1 s: total area 5, then nothing
VALLEY = Ramp(((0.0, 10.0), (1.0, 0.0), (2.0, 0.0), (3.0, 10.0)))  # down to 0, a second at 0, back up


@pytest.mark.parametrize(
    ("ramp", "t", "value", "integral"),
    [
        (CONSTANT, 0.0, 10.0, 0.0),  # start
        (CONSTANT, 2.5, 10.0, 25.0),  # r * t
        (CONSTANT, 1000.0, 10.0, 10_000.0),  # far after the last point: flat
        (LINEAR, 0.0, 0.0, 0.0),  # ramp starts at zero
        (LINEAR, 4.0, 40.0, 80.0),  # 5 t^2
        (LINEAR, 10.0, 100.0, 500.0),  # end of the ramp
        (LINEAR, 12.0, 100.0, 700.0),  # 500 + 100 * 2 after the ramp
        (STEP, 1.0, 10.0, 10.0),  # before the step
        (STEP, 1.999, 10.0, 19.99),  # just before the step
        (STEP, 2.0, 50.0, 20.0),  # at the step: the new value, no area yet
        (STEP, 3.0, 50.0, 70.0),  # 20 + 50
        (STEP, 5.0, 50.0, 170.0),  # after the last point: flat at 50
        (DOWN, 0.5, 5.0, 3.75),  # (10 + 5) / 2 * 0.5
        (DOWN, 1.0, 0.0, 5.0),
        (DOWN, 9.0, 0.0, 5.0),  # no more area after reaching zero
        (VALLEY, 1.5, 0.0, 5.0),  # in the flat zero
        (VALLEY, 3.0, 10.0, 10.0),
    ],
)
def test_ramp_value_and_integral(ramp, t, value, integral):
    assert ramp.value_at(t) == pytest.approx(value, abs=1e-12)
    assert ramp.integral_to(t) == pytest.approx(integral, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("ramp", "area", "t"),
    [
        (CONSTANT, 0.0, 0.0),  # the first request is due at once
        (CONSTANT, 25.0, 2.5),
        (LINEAR, 0.0, 0.0),
        (LINEAR, 80.0, 4.0),  # sqrt(area / 5)
        (LINEAR, 500.0, 10.0),  # exactly the end of the ramp
        (LINEAR, 700.0, 12.0),  # into the flat tail
        (STEP, 20.0, 2.0),  # the area before the step
        (STEP, 45.0, 2.5),  # 2 + 25 / 50
        (STEP, 220.0, 6.0),  # past the last point: 4 + 50 / 50
        (DOWN, 2.5, 1.0 - math.sqrt(0.5)),  # solve 10x - 5x^2 = 2.5 on the falling edge
        (DOWN, 5.0, 1.0),  # all of the area
        (DOWN, 5.000001, math.inf),  # the ramp never gets there
        (VALLEY, 5.0, 1.0),  # earliest time: the start of the zero plateau
        (VALLEY, 7.5, 2.0 + math.sqrt(0.5)),  # 5x^2 = 2.5 on the rising edge
    ],
)
def test_ramp_inverse_integral(ramp, area, t):
    got = ramp.inverse_integral(area)
    if math.isinf(t):
        assert got == math.inf
    else:
        assert got == pytest.approx(t, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    "ramp",
    [
        CONSTANT,
        LINEAR,
        STEP,
        DOWN,
        Ramp.from_load(50.0, (Stage(4.0, 300.0), Stage(4.0, 300.0), Stage(2.0, 100.0))),  # profiles/ramp.yaml
        Ramp.from_load(1.0, (Stage(0.5, 1000.0), Stage(0.0, 2.0), Stage(3.0, 2.0), Stage(1.0, 7.5))),
        Ramp.from_load(100.0, (Stage(10.0, 100.001),)),  # almost flat, but not quite
    ],
    ids=["constant", "linear", "step", "down", "ramp-yaml", "spiky", "near-flat"],
)
def test_ramp_inverse_of_integral_is_identity(ramp):
    # Wherever the rate is positive, Λ is strictly increasing, so Λ⁻¹(Λ(t)) == t.
    end = max(ramp.end_s, 1.0) + 2.0
    checked = 0
    for k in range(0, 401):
        t = end * k / 400
        if ramp.value_at(t) <= 0 or (t > 0 and ramp.value_at(t - 1e-9) <= 0):
            continue
        assert ramp.inverse_integral(ramp.integral_to(t)) == pytest.approx(t, abs=1e-9), t
        checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    "ramp",
    [LINEAR, STEP, DOWN, VALLEY, Ramp.from_load(1.0, (Stage(0.5, 1000.0), Stage(0.0, 2.0), Stage(3.0, 2.0), Stage(1.0, 7.5)))],
    ids=["linear", "step", "down", "valley", "spiky"],
)
def test_ramp_integral_matches_numeric_integration_of_value(ramp):
    # Independent check of integral_to against a fine midpoint sum of value_at.
    end = ramp.end_s + 1.0
    steps = 20_000
    h = end / steps
    total = 0.0
    for k in range(steps):
        total += ramp.value_at((k + 0.5) * h) * h
        if k % 2000 == 1999:
            t = (k + 1) * h
            assert ramp.integral_to(t) == pytest.approx(total, rel=1e-3, abs=1e-3), t


def test_rate_and_concurrency_ramps_from_load():
    flat = load(rate_per_s=25.0)
    assert rate_ramp(flat).points == ((0.0, 25.0),)
    staged = load(rate_per_s=5.0, stages=(Stage(2.0, 15.0), Stage(1.0, 15.0)))
    assert rate_ramp(staged).points == ((0.0, 5.0), (2.0, 15.0), (3.0, 15.0))
    closed = load(model=CLOSED_LOOP, rate_per_s=None, concurrency=3, stages=(Stage(4.0, 9.0),))
    assert concurrency_ramp(closed).points == ((0.0, 3.0), (4.0, 9.0))
    assert concurrency_ramp(closed).value_at(2.0) == 6.0
    assert concurrency_ramp(load(model=CLOSED_LOOP, rate_per_s=None, concurrency=7)).points == ((0.0, 7.0),)


@pytest.mark.parametrize(
    ("changes", "end"),
    [
        ({"duration_s": 3.0}, 3.0),  # plain duration
        ({"duration_s": 3.0, "warmup_s": 2.0}, 5.0),  # duration counts after the warm-up
        ({"duration_s": None, "requests": 10}, math.inf),  # only the request count ends it
        ({"duration_s": None, "stages": (Stage(1.0, 5.0), Stage(2.0, 5.0))}, 3.0),  # stages end it
        ({"duration_s": None, "warmup_s": 1.0, "stages": (Stage(1.0, 5.0),)}, 1.0),  # warm-up inside the stages
        ({"duration_s": 10.0, "stages": (Stage(1.0, 5.0),)}, 1.0),  # the earlier end wins
        ({"duration_s": 0.5, "stages": (Stage(1.0, 5.0),)}, 0.5),
    ],
)
def test_schedule_end(changes, end):
    assert schedule_end_s(load(**changes)) == end


# --------------------------------------------------------------------------- constant arrivals


@pytest.mark.parametrize(
    ("rate", "duration", "warmup", "expected_count"),
    [
        (10.0, 1.0, 0.0, 10),  # 0.0, 0.1, ..., 0.9: the one at 1.0 is past the end
        (1.0, 5.0, 0.0, 5),
        (100.0, 2.5, 0.0, 250),
        (10.0, 1.0, 0.5, 15),  # warm-up extends the end to 1.5 s
        (0.5, 10.0, 0.0, 5),  # 30/m
        (3.0, 1.0, 0.0, 3),
    ],
)
def test_constant_arrivals_count_spacing_and_end(rate, duration, warmup, expected_count):
    plan = load(rate_per_s=rate, duration_s=duration, warmup_s=warmup)
    offsets = list(arrival_offsets(plan, 0, 1))
    assert len(offsets) == expected_count
    assert offsets[0] == 0.0
    assert all(t < duration + warmup for t in offsets)
    for a, b in zip(offsets, offsets[1:]):
        assert b - a == pytest.approx(1.0 / rate, rel=1e-9)
    for n, t in enumerate(offsets):
        assert t == pytest.approx(n / rate, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize(
    "plan",
    [
        load(rate_per_s=1000.0, duration_s=2.0),  # constant
        load(rate_per_s=37.0, duration_s=3.3, warmup_s=0.7),  # awkward numbers
        load(rate_per_s=50.0, duration_s=None, stages=(Stage(4.0, 300.0), Stage(4.0, 300.0), Stage(2.0, 100.0))),
        load(rate_per_s=5.0, duration_s=None, stages=(Stage(1.0, 5.0), Stage(0.0, 200.0), Stage(1.0, 200.0))),
    ],
    ids=["constant", "awkward", "ramp", "step"],
)
def test_constant_shards_union_is_the_single_worker_schedule(plan, workers):
    whole = list(arrival_offsets(plan, 0, 1))
    shards = [list(arrival_offsets(plan, i, workers)) for i in range(workers)]
    assert sorted(itertools.chain.from_iterable(shards)) == whole  # exactly, not approximately
    for i, shard in enumerate(shards):
        assert len(shard) == share(len(whole), i, workers)  # interleaved: balanced to within one
        assert shard == whole[i::workers]
        assert shard == sorted(shard)


def test_constant_shard_spacing_is_workers_over_rate():
    plan = load(rate_per_s=200.0, duration_s=1.0)
    for i in range(4):
        shard = list(arrival_offsets(plan, i, 4))
        assert shard[0] == pytest.approx(i / 200.0)
        assert all(b - a == pytest.approx(4 / 200.0) for a, b in zip(shard, shard[1:]))


def test_request_count_only_plan_is_unbounded():
    plan = load(duration_s=None, requests=5, rate_per_s=1000.0)
    first = list(itertools.islice(arrival_offsets(plan, 0, 1), 100_000))
    assert len(first) == 100_000  # the worker, not the plan, enforces the request count
    assert first[-1] == pytest.approx(99.999)


# --------------------------------------------------------------------------- ramped rate


RAMP_YAML = load(rate_per_s=50.0, duration_s=None, stages=(Stage(4.0, 300.0), Stage(4.0, 300.0), Stage(2.0, 100.0)))


def test_ramp_yaml_total_is_the_integral():
    # 50 -> 300 over 4 s (700), 300 for 4 s (1200), 300 -> 100 over 2 s (400).
    offsets = list(arrival_offsets(RAMP_YAML, 0, 1))
    assert rate_ramp(RAMP_YAML).integral_to(10.0) == 2300.0
    assert len(offsets) == 2300
    assert offsets[-1] < 10.0


@pytest.mark.parametrize(
    "plan",
    [
        RAMP_YAML,
        load(rate_per_s=0.0, duration_s=None, stages=(Stage(5.0, 200.0),)),  # ramp up from zero
        load(rate_per_s=5.0, duration_s=None, stages=(Stage(1.0, 5.0), Stage(0.0, 200.0), Stage(1.0, 200.0))),  # step
        load(rate_per_s=400.0, duration_s=None, stages=(Stage(3.0, 1.0),)),  # ramp down
    ],
    ids=["ramp-yaml", "from-zero", "step", "down"],
)
def test_ramped_count_up_to_t_is_floor_of_integral(plan):
    # Request n is due at Λ⁻¹(n), n = 0, 1, ...: the arrivals in [0, T] are n = 0..floor(Λ(T)).
    offsets = list(arrival_offsets(plan, 0, 1))
    ramp = rate_ramp(plan)
    end = schedule_end_s(plan)
    checked = 0
    for k in range(200):
        t = end * (k + 1 / math.pi) / 200  # an irrational offset keeps T off the round-number arrivals
        area = ramp.integral_to(t)
        if abs(area - round(area)) < 1e-6:
            continue  # an arrival exactly at T: float rounding decides; skip
        count = sum(1 for x in offsets if x <= t)
        assert count == math.floor(area) + 1, (t, area, count)
        checked += 1
    assert checked > 150
    assert len(offsets) == math.ceil(ramp.integral_to(end) - 1e-9)


# --------------------------------------------------------------------------- poisson arrivals


def poisson(rate=1000.0, duration=20.0, seed=42, **changes) -> Load:
    return load(arrival="poisson", rate_per_s=rate, duration_s=duration, seed=seed, **changes)


def test_poisson_is_deterministic_per_seed():
    plan = poisson(duration=2.0)
    a = list(arrival_offsets(plan, 0, 1))
    b = list(arrival_offsets(plan, 0, 1))
    c = list(arrival_offsets(dataclasses.replace(plan, seed=43), 0, 1))
    assert a == b
    assert a != c
    assert a == sorted(a) and all(0 < t < 2.0 for t in a)


def test_poisson_workers_draw_different_streams():
    plan = poisson(duration=2.0)
    w0, w1 = list(arrival_offsets(plan, 0, 2)), list(arrival_offsets(plan, 1, 2))
    assert w0 != w1
    assert not set(w0) & set(w1)


@pytest.mark.parametrize("workers", [1, 2, 5])
@pytest.mark.parametrize(("rate", "duration", "warmup"), [(1000.0, 20.0, 0.0), (50.0, 100.0, 0.0), (500.0, 10.0, 5.0)])
def test_poisson_count_within_five_sigma(rate, duration, warmup, workers):
    # N(T) ~ Poisson(rT): mean rT, standard deviation sqrt(rT).
    times = merged(poisson(rate=rate, duration=duration, warmup_s=warmup), workers)
    expected = rate * (duration + warmup)
    assert abs(len(times) - expected) <= 5 * math.sqrt(expected), (len(times), expected)
    assert times[-1] < duration + warmup


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("seed", [1, 42, 2024])
def test_poisson_gaps_are_exponential(seed, workers):
    # Inter-arrival gaps scaled by the rate are unit exponential; with 2 workers the merged stream too (superposition).
    rate = 1000.0
    times = merged(poisson(rate=rate, duration=20.0, seed=seed), workers)
    scaled = [g * rate for g in gaps(times)]
    d = ks_exponential(scaled)
    assert d < ks_critical(len(scaled)), (d, ks_critical(len(scaled)))
    assert sum(scaled) / len(scaled) == pytest.approx(1.0, abs=5 / math.sqrt(len(scaled)))


def test_poisson_each_shard_is_poisson_at_rate_over_workers():
    rate, workers = 1000.0, 4
    plan = poisson(rate=rate, duration=40.0)
    for i in range(workers):
        shard = list(arrival_offsets(plan, i, workers))
        scaled = [g * rate / workers for g in gaps(shard)]
        assert ks_exponential(scaled) < ks_critical(len(scaled))


def test_ramped_poisson_time_rescaled_gaps_are_exponential():
    # Time-rescaling theorem: for a Poisson process of intensity r(t), Λ(t_k) - Λ(t_{k-1}) are unit exponential.
    plan = dataclasses.replace(RAMP_YAML, arrival="poisson", seed=7, stages=tuple(Stage(s.duration_s * 5, s.target) for s in RAMP_YAML.stages))
    ramp = rate_ramp(plan)
    times = merged(plan, 2)
    rescaled = gaps([ramp.integral_to(t) for t in times])
    expected = ramp.integral_to(schedule_end_s(plan))
    assert abs(len(times) - expected) <= 5 * math.sqrt(expected)
    assert ks_exponential(rescaled) < ks_critical(len(rescaled))


@pytest.mark.parametrize(
    ("label", "samples"),
    [
        # Constant arrivals: every gap is exactly the mean; far from exponential.
        ("constant", [g * 1000.0 for g in gaps(list(arrival_offsets(load(rate_per_s=1000.0, duration_s=5.0), 0, 1)))[1:]]),
        # Poisson gaps scaled by the wrong rate (twice too fast).
        ("wrong-rate", [g * 2000.0 for g in gaps(list(arrival_offsets(poisson(duration=5.0), 0, 1)))]),
    ],
)
def test_ks_check_rejects_non_exponential_gaps(label, samples):
    # The goodness-of-fit check above must be able to fail.
    assert ks_exponential(samples) > ks_critical(len(samples)), label

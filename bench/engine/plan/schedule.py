"""The load plan: when each request is due (open loop) and how many may run at once (closed loop).

Everything here is a pure function of the profile's Load and a worker's index,
so every worker computes its own share without talking to the others, and the
shares add up to the whole exactly.

Open loop. The offered rate is a piecewise-linear function r(t) (constant, or
ramped by stages like k6's ramping-arrival-rate). Its integral
Λ(t) = ∫₀ᵗ r(u) du counts the requests due by time t, so

* constant arrivals: global request n is due at Λ⁻¹(n); worker i of W takes
  n = i, i+W, i+2W, ... (interleaved, so each worker sends at r/W);
* poisson arrivals: worker i draws unit-rate exponential gaps E₁, E₂, ... from
  its own seeded generator and sends at Λ⁻¹(W·(E₁+…+Eₖ)). Each worker is then a
  Poisson process of intensity r(t)/W, and their union a Poisson process of
  intensity r(t) (superposition), with any number of workers.

Trace replay (``load.replay``). Request k of the time-sorted trace is due at
its timestamp divided by the speed; worker i takes k = i, i+W, ... as with
constant arrivals, so every request keeps its time (see ``replay.py``).

Closed loop. The concurrency c(t) is piecewise linear the same way; worker i's
share of a total C is C//W, plus one for the first C % W workers. The users
present at the start (``load.concurrency``) start spread over a window
(``SpawnPlan``), so that they do not send in lock-step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Iterator

from bench.engine.plan import replay as trace
from bench.engine.plan.profile import Load


def share(total: int, index: int, count: int) -> int:
    """Worker ``index``'s part of ``total`` split over ``count`` workers; the parts add up to ``total``."""
    base, extra = divmod(total, count)
    return base + (1 if index < extra else 0)


@dataclass(frozen=True, slots=True)
class Ramp:
    """A piecewise-linear function of time: ``points`` are (t_s, value), linear in between, flat after the last."""

    points: tuple[tuple[float, float], ...]

    @classmethod
    def from_load(cls, start: float, stages) -> "Ramp":
        t, value = 0.0, start
        points = [(t, value)]
        for stage in stages:
            t += stage.duration_s
            points.append((t, stage.target))
        return cls(tuple(points))

    @property
    def end_s(self) -> float:
        return self.points[-1][0]

    def value_at(self, t: float) -> float:
        """r(t): the value at time t (after an instant step, the new value)."""
        points = self.points
        if t >= points[-1][0]:
            return points[-1][1]
        for (t0, v0), (t1, v1) in zip(points, points[1:]):
            if t < t1:
                if t1 == t0:
                    continue
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        return points[-1][1]

    def integral_to(self, t: float) -> float:
        """Λ(t) = ∫₀ᵗ r(u) du."""
        total = 0.0
        points = self.points
        for (t0, v0), (t1, v1) in zip(points, points[1:]):
            if t <= t0:
                return total
            end = min(t, t1)
            if t1 > t0:
                v_end = v0 + (v1 - v0) * (end - t0) / (t1 - t0)
                total += (v0 + v_end) / 2 * (end - t0)
        last_t, last_v = points[-1]
        if t > last_t:
            total += last_v * (t - last_t)
        return total

    def inverse_integral(self, area: float) -> float:
        """Λ⁻¹(area): the earliest t with Λ(t) = area, or +inf when the ramp never gets there."""
        total = 0.0
        points = self.points
        for (t0, v0), (t1, v1) in zip(points, points[1:]):
            span = t1 - t0
            if span <= 0:
                continue
            segment = (v0 + v1) / 2 * span
            if total + segment >= area:
                need = area - total
                slope = (v1 - v0) / span
                if abs(slope) < 1e-12:
                    return t0 + (need / v0 if v0 > 0 else 0.0)
                # Solve v0*x + slope/2*x^2 = need for the smallest x >= 0.
                disc = v0 * v0 + 2 * slope * need
                x = (-v0 + math.sqrt(max(disc, 0.0))) / slope
                return t0 + min(max(x, 0.0), span)
            total += segment
        last_t, last_v = points[-1]
        if last_v <= 0:
            return math.inf
        return last_t + (area - total) / last_v


def rate_ramp(load: Load) -> Ramp:
    """The open-loop rate r(t) in requests per second."""
    if load.stages:
        return Ramp.from_load(load.rate_per_s or 0.0, load.stages)
    return Ramp(((0.0, load.rate_per_s or 0.0),))


def concurrency_ramp(load: Load) -> Ramp:
    """The closed-loop concurrency c(t) in requests in flight."""
    if load.stages:
        return Ramp.from_load(float(load.concurrency or 0), load.stages)
    return Ramp(((0.0, float(load.concurrency or 0)),))


#: ``spawn: auto`` spreads the first users over one response time, at most this long.
SPAWN_AUTO_S = 1.0


class SpawnPlan:
    """When each of a worker's first users starts (seconds from the common start): seeded, stratified, pure.

    A worker with n users: user 0 starts at once, user j >= 1 at fraction
    f_j = (j + u_j) / n of the window, u_j uniform in [0, 1) from a generator
    seeded by ``load.seed`` and the worker's index (one start per 1/n of the
    window, never two in one slot; the workers' draws differ, so their users
    interleave). A fixed ``spawn`` window W: user j starts at f_j * W.

    ``spawn: auto`` (``spawn_s`` None): spread over one response time, at most
    ``SPAWN_AUTO_S``. The starts are laid out over ``SPAWN_AUTO_S`` until the
    worker's first response ends, at R; the users not started by then are laid
    out again over the next min(R, SPAWN_AUTO_S - R): user j at
    R + (f_j * SPAWN_AUTO_S - R) * min(1, R / (SPAWN_AUTO_S - R)). Against a
    server answering in R, each user's requests then keep a phase of their
    own within R, and full concurrency is reached by min(2R, SPAWN_AUTO_S).
    A run ended by its request count alone starts its users at once under
    ``auto``: spread, a run of 20 rounds took 2-3 rounds longer.
    """

    def __init__(self, load: Load, index: int, users: int) -> None:
        count_only = load.duration_s is None and not load.stages
        if load.spawn_s == 0 or (load.spawn_s is None and count_only):
            users = 0  # nothing to wait for
        self.users = users
        self.window_s = SPAWN_AUTO_S if load.spawn_s is None else load.spawn_s
        self.auto = load.spawn_s is None
        rng = random.Random(f"bench-spawn:{load.seed}:{index}")
        self.fractions = [0.0] + [(j + rng.random()) / users for j in range(1, users)]
        self.first_response_s: float | None = None  # auto: when the worker's first response ended

    def due_s(self, user: int) -> float:
        """When ``user`` starts; 0 for a user beyond the plan (a ramp's, started when the ramp asks)."""
        if user >= self.users:
            return 0.0
        due = self.fractions[user] * self.window_s
        r = self.first_response_s
        if r is None or due < r:
            return due
        return r + (due - r) * min(1.0, r / (self.window_s - r))

    def waiting_for_response(self, started: int) -> bool:
        """auto, with users still to start and no response seen yet: the caller should look often (see ``response_seen``)."""
        return self.auto and self.first_response_s is None and started < self.users

    def response_seen(self, elapsed_s: float) -> None:
        """auto: the worker's first response ended at ``elapsed_s`` (capped by the window)."""
        if self.first_response_s is None:
            self.first_response_s = min(elapsed_s, self.window_s)


def schedule_end_s(load: Load) -> float:
    """When the plan stops issuing work, in seconds from the start (inf: only the request count ends it).

    With a time warm-up, ``duration`` counts from the end of the warm-up.
    Stages end the plan when they end, warm-up included.
    """
    ends = [math.inf]
    if load.duration_s is not None:
        ends.append(load.warmup_s + load.duration_s)
    if load.stages:
        ends.append(Ramp.from_load(0.0, load.stages).end_s)
    return min(ends)


def arrival_offsets(load: Load, index: int, count: int) -> Iterator[float]:
    """Intended send times (seconds from the common start) of worker ``index``'s requests, in order.

    Stops at the end of the plan's time; the request count is the worker's to enforce.
    """
    if load.replay is not None:
        yield from trace.offsets(load.replay, index, count)
        return
    ramp = rate_ramp(load)
    end_s = schedule_end_s(load)
    if load.arrival == "poisson":
        rng = random.Random(f"bench-poisson:{load.seed}:{index}")
        area = 0.0
        while True:
            area += rng.expovariate(1.0) * count
            t = ramp.inverse_integral(area)
            if t >= end_s:
                return
            yield t
    n = index
    while True:
        t = ramp.inverse_integral(float(n))
        if t >= end_s:
            return
        yield t
        n += count


def scheduled_in_second(load: Load, second: int) -> float:
    """Sends the open-loop plan asks for in ``[second, second + 1)`` from the start (a trace's own count, or r(t))."""
    if load.replay is not None:
        return float(trace.scheduled_between(load.replay, second, second + 1))
    return rate_ramp(load).value_at(second)

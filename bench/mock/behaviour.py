"""What the mock answers to each request (delay and status), as pure seeded code without I/O.

Keeping the decisions here, apart from the sockets, makes them reproducible for a
seed and testable without a server, and gives load-tester tests an exact oracle:
every latency model has ``quantile(q)``, the true quantile of its distribution.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque
from statistics import NormalDist

from bench.mock.config import LatencyConfig, MockConfig

__all__ = [
    "Behaviour",
    "EmpiricalLatency",
    "ExponentialLatency",
    "FixedLatency",
    "LatencyModel",
    "LognormalLatency",
    "NormalLatency",
    "UniformLatency",
    "latency_model",
]


def _check_q(q: float) -> None:
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q!r}")


class LatencyModel:
    """Base of the latency distributions (and the "none" model itself).

    ``sample`` draws seconds from an rng; ``quantile`` is the exact inverse CDF.
    """

    name = "none"

    def sample(self, rng: random.Random) -> float:
        return 0.0

    def quantile(self, q: float) -> float:
        _check_q(q)
        return 0.0

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class FixedLatency(LatencyModel):
    name = "fixed"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def sample(self, rng: random.Random) -> float:
        return self.delay

    def quantile(self, q: float) -> float:
        _check_q(q)
        return self.delay


class UniformLatency(LatencyModel):
    name = "uniform"

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def sample(self, rng: random.Random) -> float:
        return self.low + (self.high - self.low) * rng.random()

    def quantile(self, q: float) -> float:
        _check_q(q)
        return self.low + (self.high - self.low) * q


class NormalLatency(LatencyModel):
    """Normal, clipped at 0: negative draws become 0, so quantiles below P(X<0) are 0 too."""

    name = "normal"

    def __init__(self, mean: float, stddev: float) -> None:
        self.mean, self.stddev = mean, stddev
        self._dist = NormalDist(mean, stddev) if stddev > 0 else None

    def sample(self, rng: random.Random) -> float:
        value = rng.gauss(self.mean, self.stddev)
        return value if value > 0.0 else 0.0

    def quantile(self, q: float) -> float:
        _check_q(q)
        if self._dist is None:
            return max(self.mean, 0.0)
        return max(self._dist.inv_cdf(q), 0.0)


class LognormalLatency(LatencyModel):
    """ln(delay in seconds) ~ Normal(mu, sigma); the median is exp(mu)."""

    name = "lognormal"

    def __init__(self, mu: float, sigma: float) -> None:
        self.mu, self.sigma = mu, sigma
        self._dist = NormalDist(mu, sigma)

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)

    def quantile(self, q: float) -> float:
        _check_q(q)
        return math.exp(self._dist.inv_cdf(q))


class ExponentialLatency(LatencyModel):
    name = "exponential"

    def __init__(self, mean: float) -> None:
        self.mean = mean

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)

    def quantile(self, q: float) -> float:
        _check_q(q)
        return -self.mean * math.log1p(-q)


class EmpiricalLatency(LatencyModel):
    """Piecewise-linear inverse CDF through the given (percentile, seconds) points.

    Below the lowest given percentile the delay is the lowest value (unless percentile 0
    is given), above the highest it is the highest value, so those tails are point masses.
    """

    name = "empirical"

    def __init__(self, percentiles: tuple[tuple[float, float], ...]) -> None:
        self.percentiles = percentiles
        points = [(p / 100.0, v) for p, v in percentiles]
        if points[0][0] > 0.0:
            points.insert(0, (0.0, points[0][1]))
        if points[-1][0] < 1.0:
            points.append((1.0, points[-1][1]))
        self._probs = [p for p, _ in points]
        self._values = [v for _, v in points]

    def sample(self, rng: random.Random) -> float:
        return self._inverse(rng.random())

    def quantile(self, q: float) -> float:
        _check_q(q)
        return self._inverse(q)

    def _inverse(self, u: float) -> float:
        probs, values = self._probs, self._values
        i = bisect.bisect_right(probs, u)
        if i >= len(probs):
            return values[-1]
        p0, p1 = probs[i - 1], probs[i]
        v0, v1 = values[i - 1], values[i]
        return v0 + (v1 - v0) * (u - p0) / (p1 - p0)


def latency_model(config: LatencyConfig) -> LatencyModel:
    """Build the distribution a validated ``LatencyConfig`` describes."""
    model = config.model
    if model == "none":
        return LatencyModel()
    if model == "fixed":
        return FixedLatency(config.delay)
    if model == "uniform":
        return UniformLatency(config.min, config.max)
    if model == "normal":
        return NormalLatency(config.mean, config.stddev)
    if model == "lognormal":
        return LognormalLatency(config.mu, config.sigma)
    if model == "exponential":
        return ExponentialLatency(config.mean)
    if model == "empirical":
        return EmpiricalLatency(config.percentiles)
    raise ValueError(f"unknown latency model {model!r}")


class Behaviour:
    """Per-server decision maker: ``next_response(now_s)`` returns ``(delay_s, status)`` for one request.

    Latency and errors use separate ``random.Random`` streams (latency: ``Random(seed)``),
    so the delay sequence for a seed does not change when the error rate does. Stall
    windows are measured from the ``now_s`` of the first call; a response that would
    be sent inside a window is held until the window ends.

    With ``capacity`` the server is an M/G/N FIFO queue in virtual time: a latency
    draw is the service time of a request in one of N slots. ``_free`` is a min-heap
    of the slots' free times; a request arriving at ``now`` takes the earliest one,
    starts at ``max(now, free)`` and is answered at start + service. ``_waiting``
    holds the start times still ahead of the clock (nondecreasing, so the past ones
    leave from the left): its length is the queue. A request that finds every slot
    busy and ``queue`` already waiting (with ``queue`` 0: every slot busy) is
    answered at once with the capacity's status, draws nothing, and is counted in
    ``rejected``. Error injection draws the status of a served request only: it
    keeps its slot for its service time. Stalls hold responses (a full queue's
    too) but not the slots: service goes on through a stall.
    """

    def __init__(self, config: MockConfig | None = None) -> None:
        config = config if config is not None else MockConfig()
        self.config = config
        self.latency = latency_model(config.latency)
        self.first_request_s: float | None = None
        self._latency_rng = random.Random(config.seed)
        self._error_rng = random.Random(f"bench.mock.errors:{config.seed}")
        self._sample = self.latency.sample
        self._error_rate = config.errors.rate
        self._statuses = config.errors.statuses
        self._stall = config.stall
        capacity = config.capacity
        self._free: list[float] | None = None if capacity is None else [0.0] * capacity.slots
        self._waiting: deque[float] = deque()
        self._queue_limit = math.inf if capacity is None or capacity.queue is None else capacity.queue
        self._full_status = 503 if capacity is None else capacity.status
        self.rejected = 0
        # Every answer is (0.0, 200): the server can skip next_response (and the clock) per request.
        self.instant = (
            type(self.latency) is LatencyModel and not self._error_rate and self._stall is None and capacity is None
        )

    def next_response(self, now_s: float) -> tuple[float, int]:
        """Decide the delay (seconds from ``now_s``) and HTTP status of the request that arrived at ``now_s``."""
        if self._free is None:
            delay = self._sample(self._latency_rng)
        else:
            delay = self._slot_delay(now_s)
            if delay is None:
                self.rejected += 1
                return (self._held(now_s, 0.0) if self._stall is not None else 0.0), self._full_status
        status = 200
        if self._error_rate and self._error_rng.random() < self._error_rate:
            statuses = self._statuses
            status = statuses[0] if len(statuses) == 1 else self._error_rng.choice(statuses)
        if self._stall is not None:
            delay = self._held(now_s, delay)
        return delay, status

    def waiting(self, now_s: float) -> int:
        """With capacity: how many accepted requests have not started their service at ``now_s``."""
        waiting = self._waiting
        while waiting and waiting[0] <= now_s:
            waiting.popleft()
        return len(waiting)

    def busy_slots(self, now_s: float) -> int:
        """With capacity: how many slots are serving a request at ``now_s``."""
        return sum(1 for free in self._free or () if free > now_s)

    def prometheus_text(self, now_s: float, requests: int) -> bytes:
        """What ``GET /metrics`` answers on a server with ``capacity``: its slots, queue and refusals, named as the OpenAI side names them."""
        lines = []
        for name, kind, help_text, value in (
            ("mock:num_requests_running", "gauge", "Requests holding a slot", self.busy_slots(now_s)),
            ("mock:num_requests_waiting", "gauge", "Requests queued for a slot", self.waiting(now_s)),
            ("mock:requests_total", "counter", "Requests answered or refused since the start (not /metrics)", requests),
            ("mock:requests_rejected_total", "counter", "Requests refused at once because the queue was full", self.rejected),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return ("\n".join(lines) + "\n").encode()

    def _slot_delay(self, now_s: float) -> float | None:
        """Queue the request that arrived at ``now_s``: seconds until its service ends, or None if the queue is full."""
        free = self._free
        start = free[0]
        if start > now_s:  # every slot is busy: wait in line, if there is room
            if self.waiting(now_s) >= self._queue_limit:
                return None
            self._waiting.append(start)
        else:
            start = now_s
        service = self._sample(self._latency_rng)
        heapq.heapreplace(free, start + service)
        return (start - now_s) + service

    def _held(self, now_s: float, delay: float) -> float:
        """``delay`` lengthened to the end of the stall window its response would leave in."""
        if self.first_request_s is None:
            self.first_request_s = now_s
        return self.release_time(now_s + delay) - now_s

    def release_time(self, send_s: float) -> float:
        """When a response due at ``send_s`` goes out: the end of the stall window it falls in, else ``send_s``."""
        stall, first = self._stall, self.first_request_s
        if stall is None or first is None:
            return send_s
        elapsed = send_s - first
        if stall.at is not None:
            start = stall.at
        else:
            start = math.floor(elapsed / stall.every) * stall.every
            if start <= 0.0:  # windows start at every, 2*every, ...; none at 0
                return send_s
        if start <= elapsed < start + stall.duration:
            return first + start + stall.duration
        return send_s

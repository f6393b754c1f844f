"""The mock's capacity under real load: a mock server process on 127.0.0.1 and real concurrent clients.

The truths checked are those of an M/D/N FIFO queue (N slots, fixed service D):
closed loop with C <= N users never waits; with C > N users the throughput is
N/D and the mean latency C*D/N; open loop below N/D req/s never waits, above it
the backlog grows at R - N/D per second; a bounded queue refuses at once what
does not fit. Service times are 100 ms, so scheduling noise of a few
milliseconds cannot change a verdict; every test is bounded in requests and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
import uvloop

from bench.mock import MockConfig, MockServerProcess
from bench.mock.behaviour import Behaviour

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
D = 0.1  # service time of every test here
SLOTS = 4


@dataclass(frozen=True)
class Answer:
    sent: float  # perf_counter seconds
    latency: float
    status: int


def _config(slots: int, queue: int | None = None) -> MockConfig:
    return MockConfig.from_mapping(
        {"latency": {"model": "fixed", "delay": f"{D * 1000:g}ms"}, "capacity": {"slots": slots, "queue": queue}}
    )


@contextlib.contextmanager
def mock(slots: int, queue: int | None = None) -> Iterator[MockServerProcess]:
    with MockServerProcess(_config(slots, queue)) as server:
        yield server


def run(coro: Any, timeout: float = 30.0) -> Any:
    return uvloop.run(asyncio.wait_for(coro, timeout))


async def _open(port: int, count: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    return list(await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(count))))


async def _close(connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in connections:
        writer.close()


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Answer:
    sent = time.perf_counter()
    writer.write(GET)
    head = await reader.readuntil(b"\r\n\r\n")
    latency = time.perf_counter() - sent
    lines = head.decode("latin-1").split("\r\n")
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    await reader.readexactly(length)
    return Answer(sent, latency, int(lines[0].split()[1]))


async def closed_loop(port: int, users: int, per_user: int) -> tuple[list[Answer], float]:
    """``users`` connections, each sending its next request when the previous answer is in: (answers, seconds)."""
    connections = await _open(port, users)
    answers: list[Answer] = []

    async def user(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(per_user):
            answers.append(await _request(reader, writer))

    start = time.perf_counter()
    await asyncio.gather(*(user(*connection) for connection in connections))
    elapsed = time.perf_counter() - start
    await _close(connections)
    return answers, elapsed


async def open_loop(port: int, rate: float, count: int) -> list[Answer]:
    """``count`` requests at constant ``rate``, each on its own connection (opened beforehand), sorted by send time."""
    connections = await _open(port, count)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05
    tasks = []
    for k, connection in enumerate(connections):
        await asyncio.sleep(max(0.0, t0 + k / rate - loop.time()))
        tasks.append(asyncio.ensure_future(_request(*connection)))
    answers = await asyncio.gather(*tasks)
    await _close(connections)
    return sorted(answers, key=lambda answer: answer.sent)


def replay(answers: list[Answer], slots: int, queue: int | None) -> list[tuple[float, int]]:
    """What the model answers to the same arrivals (the clients' send times)."""
    behaviour = Behaviour(_config(slots, queue))
    first = answers[0].sent
    return [behaviour.next_response(answer.sent - first) for answer in answers]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1]


def test_closed_loop_up_to_n_users_never_waits() -> None:
    with mock(SLOTS) as server:
        answers, _ = run(closed_loop(server.port, SLOTS, 8))
    latencies = [answer.latency for answer in answers]
    assert {answer.status for answer in answers} == {200}
    assert len(latencies) == 8 * SLOTS
    assert min(latencies) >= D  # never early
    # A wait would add close to D: the p90 and the max stay clear of it, with room for scheduling noise.
    assert quantile(latencies, 0.9) < 1.2 * D
    assert max(latencies) < 1.9 * D


@pytest.mark.parametrize(("users", "per_user"), [(SLOTS + 1, 16), (SLOTS + 2, 14)])
def test_closed_loop_beyond_n_users_caps_throughput_and_follows_littles_law(users: int, per_user: int) -> None:
    with mock(SLOTS) as server:
        answers, elapsed = run(closed_loop(server.port, users, per_user))
    latencies = [answer.latency for answer in answers]
    assert {answer.status for answer in answers} == {200}
    throughput = len(answers) / elapsed
    capacity = SLOTS / D  # 40/s
    assert 0.85 * capacity <= throughput <= 1.02 * capacity, throughput
    mean = sum(latencies) / len(latencies)
    little = users * D / SLOTS  # 125 ms for 5 users, 150 ms for 6
    assert 0.95 * little <= mean <= 1.15 * little, (mean, little)
    # (users - N) of every `users` requests wait close to D: the p95 is near 2 D, above D (1 + 1/N).
    assert quantile(latencies, 0.95) >= D * (1 + 1 / SLOTS)
    assert min(latencies) >= D


def test_open_loop_below_capacity_never_waits() -> None:
    with mock(SLOTS) as server:
        answers = run(open_loop(server.port, 30.0, 45))  # 75 % of N/D = 40/s
    latencies = [answer.latency for answer in answers]
    assert {answer.status for answer in answers} == {200}
    assert min(latencies) >= D
    assert quantile(latencies, 0.9) < 1.2 * D
    assert max(latencies) < 1.9 * D


def test_open_loop_above_capacity_backlog_grows() -> None:
    rate = 60.0  # 1.5 N/D: the backlog grows by 20/s, so a request sent at t waits t * (60/40 - 1) = t / 2
    with mock(SLOTS) as server:
        answers = run(open_loop(server.port, rate, 90))
    assert {answer.status for answer in answers} == {200}
    model = replay(answers, SLOTS, None)
    errors = [answer.latency - delay for answer, (delay, _) in zip(answers, model)]
    # Each latency is the model's for the same send times (waits of up to 0.75 s), give or take the noise.
    assert min(errors) >= -0.005 and max(errors) < D, (min(errors), max(errors))
    assert sum(errors) / len(errors) < 0.02
    first = answers[0].sent
    head, tail = answers[:10], answers[-10:]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    growth = mean([a.latency for a in tail]) - mean([a.latency for a in head])
    span = mean([a.sent - first for a in tail]) - mean([a.sent - first for a in head])
    sent_rate = (len(answers) - 1) / (answers[-1].sent - first)
    expected = span * (sent_rate * D / SLOTS - 1)  # about 0.65 s
    assert abs(growth - expected) < 0.1 + 0.1 * expected, (growth, expected, sent_rate)
    assert growth > 0.4


def test_bounded_queue_refuses_a_burst_at_once() -> None:
    slots, queue, burst = 2, 3, 10

    async def body(port: int) -> list[Answer]:
        connections = await _open(port, burst)
        answers = await asyncio.gather(*(_request(*connection) for connection in connections))
        await _close(connections)
        return answers

    with mock(slots, queue) as server:
        answers = run(body(server.port))
    refused = sorted(a.latency for a in answers if a.status == 503)
    served = sorted(a.latency for a in answers if a.status == 200)
    assert len(refused) == burst - slots - queue == 5
    assert max(refused) < 0.05
    # 2 served at once, 3 wait: starts 0.1, 0.1, 0.2 s.
    assert served == [pytest.approx(t, abs=0.04) for t in (D, D, 2 * D, 2 * D, 3 * D)]
    assert min(served) >= D


def test_bounded_queue_under_overload_refuses_what_the_model_refuses() -> None:
    slots, queue, rate, count = 2, 4, 43.7, 88  # capacity 20/s, about 2 s of arrivals at 2.2 times it
    with mock(slots, queue) as server:
        answers = run(open_loop(server.port, rate, count))
    refused = [a for a in answers if a.status == 503]
    served = [a for a in answers if a.status == 200]
    assert len(refused) + len(served) == count
    modelled = sum(status == 503 for _, status in replay(answers, slots, queue))
    assert abs(len(refused) - modelled) <= 2, (len(refused), modelled)
    # Served: every slot starts one every D from the first arrival to the last (N * (floor(span / D) + 1)),
    # and the queue is full at the end.
    span = answers[-1].sent - answers[0].sent
    low = slots * span / D + queue
    assert low - 1 <= len(served) <= low + slots + 1, (len(served), span)
    assert max(a.latency for a in refused) < 0.05
    assert max(a.latency for a in served) < D * (1 + queue / slots) + 0.05

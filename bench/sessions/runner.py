"""Sessions inside a worker: virtual users running a profile's steps in order, with captures, cookies and think times.

Closed loop: ``load.concurrency`` users, each starting its next session when
the last one ends; they start spread over ``load.spawn`` (``SpawnPlan``). Open loop: new sessions arrive at ``load.rate`` (k6's
arrival-rate semantics), whatever the earlier ones are doing. The request
count and warm-up count sessions, not requests.

A step's latency counts from when it was due: a session's first step from
its start (its scheduled arrival in an open loop) plus its think time, a
later step from the previous step's end plus its think time. A slow step
therefore delays the steps after it, and a late timer is never hidden. Every
step is recorded twice: into the worker's counters (the run's totals) and
into the step's own group (``steps.<name>`` in the report).

Each user has its own cookie jar, emptied at the start of each session (a
new visitor, as k6 does by default). A step that fails (a client error, an
HTTP error status, a failed check) or whose capture finds nothing ends its
session as failed, by that kind; its remaining steps are not sent and are
counted as skipped. Nothing is dropped: requests sent = ok + errors by kind,
and sessions started = completed + failed + unfinished.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import aiohttp
import orjson

from bench.engine.plan.requests import check_response
from bench.engine.workers.responses import ResponseFacts
from bench.engine.workers.samples import MEASURED, PhaseReport, Recorder, SessionCounts
from bench.engine.workers.transports.aiohttp_client import map_error
from bench.engine.workers.worker import LONG_GAP_NS
from bench.engine.workers.worker import sleep_until as _sleep_until
from bench.sessions.spec import Step, capture_value, render_step

if TYPE_CHECKING:
    from bench.engine.workers.worker import Worker  # noqa: F401 - the runner is created by the worker, after its module loaded

RAMP_TICK_S = 0.05
#: After a duration-bounded run's end, a session under way may still finish its steps for this long (k6's gracefulStop).
GRACEFUL_STOP_NS = 30_000_000_000


@dataclass(frozen=True, slots=True)
class _Sent:
    """What the per-request CSV row needs of a step (its name in the ``kind`` column)."""

    kind_name: str


class SessionRunner:
    """Runs one worker's share of sessions; the worker reports its counts with every interval."""

    def __init__(self, worker: Worker):
        self.worker = worker
        spec = worker.spec
        profile = spec.profile
        self.steps: tuple[Step, ...] = profile.session
        self.base_url = spec.url
        self.extra_headers = spec.extra_headers
        self.timeout_s = profile.target.timeout_s
        self.max_body = profile.client.max_body if profile.client.max_body is not None else math.inf
        self.groups = {step.name: Recorder(open_loop=True) for step in self.steps}
        self.counts = SessionCounts()
        rows = list(profile.data.rows) if profile.data is not None and profile.data.rows else [{}]
        self.rows = rows[spec.index :: spec.count] or rows
        self.row_cursor = 0
        self.rng = random.Random(f"bench-think:{worker.load.seed}:{spec.index}")
        self._noted = False  # an unexpected error was said on stderr (once per worker)
        self.names = tuple(_Sent(step.name) for step in self.steps)
        self.connector: aiohttp.TCPConnector | None = None
        self.tasks: set[asyncio.Task] = set()
        self.sessions_in_flight = 0

    # ------------------------------------------------------------------ reporting

    def take(self) -> tuple[dict[str, PhaseReport] | None, SessionCounts | None]:
        """This interval's per-step reports and session counts, and new empty ones started."""
        groups = {}
        for name, recorder in self.groups.items():
            report = recorder.take(MEASURED)
            if report is not None:
                groups[f"step:{name}"] = report
        counts = None if self.counts.empty and not self.counts.skipped_steps else self.counts
        self.counts = SessionCounts()
        return groups or None, counts

    def set_origin(self, origin_ns: int) -> None:
        for recorder in self.groups.values():
            recorder.origin_ns = origin_ns

    # ------------------------------------------------------------------ loops

    async def run(self) -> None:
        worker = self.worker
        client = worker.spec.profile.client
        self.set_origin(worker.start_ns)
        self.connector = aiohttp.TCPConnector(
            ssl=None if client.tls_verify else False,
            limit=worker._pool_size(),
            limit_per_host=0,
            force_close=not client.keepalive,
            enable_cleanup_closed=True,
        )
        try:
            if worker.open_loop:
                await self._open_loop()
            else:
                await self._closed_loop()
            await self._drain()
        finally:
            await self.connector.close()

    def _client(self) -> aiohttp.ClientSession:
        """A user's own client: its cookie jar (cookies from 127.0.0.1 too), over the worker's shared connections."""
        return aiohttp.ClientSession(
            connector=self.connector,
            connector_owner=False,
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=self.worker.spec.profile.client.connect_timeout_s),
            headers={"User-Agent": "bench"},
            auto_decompress=False,
        )

    async def _open_loop(self) -> None:
        """New sessions at the load's arrival times, at most ``load.max_in_flight`` sessions at once."""
        await self.worker.arrivals(lambda: self.sessions_in_flight, lambda phase, due_ns, _capped: self._spawn(self._visitor(phase, due_ns)))

    async def _visitor(self, phase: str, due_ns: int) -> None:
        """An open loop's arrival: one session with a client of its own."""
        self.sessions_in_flight += 1
        try:
            async with self._client() as http:
                await self._session(phase, due_ns, http)
        finally:
            self.sessions_in_flight -= 1
            self.worker._slot_freed.set()

    async def _closed_loop(self) -> None:
        """Users spread over the spawn window and following a ramp, as the worker's own closed loop starts them."""
        await self.worker.start_users(lambda number, finished: self._spawn(self._user(number, finished)))

    async def _user(self, number: int, finished: asyncio.Event) -> None:
        """A closed loop's user: session after session with one client, until the share is done or the ramp lowers the limit."""
        worker = self.worker
        async with self._client() as http:
            while not finished.is_set() and not worker.stopping:
                if number >= worker._user_limit:
                    if not worker._limit_may_rise():
                        return
                    await asyncio.sleep(RAMP_TICK_S)
                    continue
                now_ns = time.monotonic_ns()
                phase = worker._next_phase((now_ns - worker.start_ns) / 1e9)
                if phase is None:
                    finished.set()
                    return
                http.cookie_jar.clear()  # a new visitor
                await self._session(phase, now_ns, http)

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _drain(self) -> None:
        """Wait for the sessions in flight; once stopping, for a bounded time, then cancel them (counted)."""
        worker = self.worker
        deadline = None
        while self.tasks:
            if worker.stopping and deadline is None:
                deadline = time.monotonic() + min(3.0, self.timeout_s)
            if deadline is not None and time.monotonic() >= deadline:
                pending = set(self.tasks)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
                break
            await asyncio.wait(set(self.tasks), timeout=0.1)

    # ------------------------------------------------------------------ one session

    async def _session(self, phase: str, start_ns: int, http: aiohttp.ClientSession) -> None:
        """Run every step in order from ``start_ns``; count the session once, as completed, failed or unfinished."""
        measured = phase == MEASURED
        counts = self.counts
        if measured:
            counts.started += 1
        row = self.rows[self.row_cursor]
        self.row_cursor = (self.row_cursor + 1) % len(self.rows)
        state = self._begin(row)
        parts = self._parts(row)
        due_ns = start_ns
        for i in range(parts):
            try:
                pause_s = self._pause_s(i)
                if pause_s:
                    due_ns += int(pause_s * 1e9)
                    end_ns = self._end_ns()
                    if due_ns > end_ns + GRACEFUL_STOP_NS:  # cannot finish in the grace after the run's end: ends at the end
                        await self.worker.until_due_or_stopped(end_ns)
                        if not self.worker.stopping:
                            await _sleep_until(end_ns)  # to the end itself: no new session starts after this one
                        if measured:
                            self.counts.unfinished += 1
                        return
                    if due_ns - time.monotonic_ns() > LONG_GAP_NS:
                        await self.worker.until_due_or_stopped(due_ns)  # a Ctrl-C ends a long pause
                        if self.worker.stopping and time.monotonic_ns() < due_ns:
                            if measured:
                                self.counts.unfinished += 1
                            return
                    await _sleep_until(due_ns)
                if self.worker.stopping and i > 0:
                    if measured:
                        self.counts.unfinished += 1
                    return
                end_ns, failure = await self._part(i, phase, due_ns, state, http)
            except asyncio.CancelledError:  # the drain's end, in a step or in a pause before one
                if measured:
                    self.counts.unfinished += 1
                raise
            except Exception as exc:  # noqa: BLE001 - an input no check foresaw must fail this session, not end its user
                if measured:
                    self.counts.fail("other", parts - i - 1)
                self._note_unexpected(exc)
                return
            if failure is not None:
                if measured:
                    self.counts.fail(failure, parts - i - 1)
                return
            due_ns = end_ns
        if measured:
            self.counts.complete(due_ns - start_ns)

    def _end_ns(self) -> int:
        """When this worker's share of a duration-bounded run ends (far off for a count of sessions).

        A session under way then may finish its steps, as k6's iterations do in
        their gracefulStop (30 s), unless a think time would take it past that.
        """
        end_s = self.worker.end_s
        return self.worker.start_ns + int(end_s * 1e9) if end_s < math.inf else 1 << 62

    def _note_unexpected(self, exc: Exception) -> None:
        """Say once per worker, on stderr, what failed sessions as ``other`` (the run goes on and counts them)."""
        if not self._noted:
            self._noted = True
            print(f"bench: a session failed on an unexpected error, counted as 'other': {type(exc).__name__}: {exc}"[:400], file=sys.stderr, flush=True)

    # What a session is made of; a conversation (bench.sessions.conversation) answers these differently.

    def _begin(self, row: dict[str, Any]) -> Any:
        """A new session's state: the placeholder values (the data row, then captures)."""
        return dict(row)

    def _parts(self, row: dict[str, Any]) -> int:
        return len(self.steps)

    def _pause_s(self, index: int) -> float:
        think = self.steps[index].think
        return think.draw(self.rng) if think is not None else 0.0

    async def _part(self, index: int, phase: str, due_ns: int, state: Any, http: aiohttp.ClientSession) -> tuple[int, str | None]:
        return await self._step(index, self.steps[index], phase, due_ns, state, http)

    async def _step(self, index: int, step: Step, phase: str, due_ns: int, values: dict[str, Any], http: aiohttp.ClientSession) -> tuple[int, str | None]:
        """Send one step, record it, capture from it; (its end, the failure kind or None)."""
        where, headers, body = render_step(step, values)
        url = urljoin(self.base_url, where) if where is not None and step.url is None else (where or self.base_url)
        data, headers = _body_bytes(body, headers)
        group = self.groups[step.name] if phase == MEASURED else None
        sent_ns, (status, payload, response_headers, nbytes, error) = await self._exchange(index, phase, group, due_ns, http, step.method, url, headers, data)
        facts, failure = None, error
        if status is not None:
            if step.check is not None:
                facts = ResponseFacts(check_response(step.check, status, payload))
            if status >= 400:
                failure = "http"
            elif facts is not None and facts.check_failed is not None:
                failure = "check"
            else:
                for capture in step.captures:
                    value = capture_value(capture, payload, response_headers)
                    if value is None:  # the response lacks what the next steps need: a failed check of this step
                        facts, failure = ResponseFacts(f"capture {capture.name} found nothing"), "capture"
                        break
                    values[capture.name] = value
        return self._record(phase, group, due_ns, sent_ns, status, error, nbytes, facts, index), failure

    async def _exchange(self, index: int, phase: str, group: Recorder | None, due_ns: int, http: aiohttp.ClientSession, *request: Any):
        """Count the request as sent (the run's and its group's), send it; (sent time, what ``_send`` returned).

        Cancelled by the drain, it is recorded as ``cancelled`` before the cancellation goes on.
        """
        worker = self.worker
        worker.in_flight += 1
        sent_ns = time.monotonic_ns()
        worker.recorder.sent(phase, sent_ns, due_ns)
        if group is not None:
            group.sent(MEASURED, sent_ns, due_ns)
        try:
            return sent_ns, await self._send(http, *request)
        except asyncio.CancelledError:
            self._record(phase, group, due_ns, sent_ns, None, "cancelled", 0, None, index)
            raise

    async def _send(self, http: aiohttp.ClientSession, method: str, url: str, headers, data: bytes | None, stream: Any = None):
        """One exchange: (status, body, response headers, bytes, None) or (None, b"", {}, 0, error kind).

        The body is kept whole (captures and checks read it), within
        ``client.max_body``; with ``stream`` (an OpenAIStreamMetrics) a
        successful response is fed to it as it arrives instead.
        """
        try:
            async with http.request(method, url, headers=(*headers, *self.extra_headers), data=data, allow_redirects=False) as response:
                status, response_headers = response.status, response.headers
                if stream is not None and status < 400:
                    nbytes = 0
                    async for chunk in response.content.iter_any():
                        stream.feed(chunk, time.monotonic_ns())
                        nbytes += len(chunk)
                        if nbytes > self.max_body:
                            return None, b"", {}, 0, "body_too_large"
                    return status, b"", response_headers, nbytes, None
                payload = await _read_within(response, self.max_body)
                if payload is None:
                    return None, b"", {}, 0, "body_too_large"
                return status, payload, response_headers, len(payload), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is counted as a kind, never raised
            return None, b"", {}, 0, map_error(exc)

    def _record(self, phase: str, group: Recorder | None, due_ns: int, sent_ns: int, status, error, nbytes: int, facts, index: int) -> int:
        worker = self.worker
        end_ns = time.monotonic_ns()
        worker.in_flight -= 1
        good = error is None and status is not None and status < 400 and (facts is None or facts.check_failed is None)
        worker.recorder.finished(phase, due_ns, sent_ns, end_ns, status, error, nbytes, facts, good)
        if group is not None:
            group.finished(MEASURED, due_ns, sent_ns, end_ns, status, error, nbytes, facts, good)
        if worker.csv is not None:
            worker._write_row(phase, due_ns, sent_ns, end_ns, status, error, nbytes, self.names[index], facts)
        return end_ns


async def _read_within(response: aiohttp.ClientResponse, max_body: float) -> bytes | None:
    """The whole body (kept: captures and checks read it), or None past ``max_body`` bytes."""
    if response.content_length is not None and response.content_length > max_body:
        return None
    parts, size = [], 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > max_body:
            response.close()
            return None
        parts.append(chunk)
    return b"".join(parts)


def _body_bytes(body: Any, headers: tuple[tuple[str, str], ...]) -> tuple[bytes | None, tuple[tuple[str, str], ...]]:
    """A mapping or list is sent as JSON (with its Content-Type unless one is set); a string as UTF-8."""
    if body is None:
        return None, headers
    if isinstance(body, (dict, list)):
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers = (*headers, ("Content-Type", "application/json"))
        return orjson.dumps(body), headers
    return str(body).encode("utf-8"), headers


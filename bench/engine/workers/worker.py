"""A worker process: its own uvloop event loop and aiohttp pool, sending its share of the plan.

Talks to the parent over one duplex pipe. Parent -> worker: ``("start",
start_ns)`` once every worker is ready (a common start time, so the shares
interleave), ``("stop",)`` to drain early (Ctrl-C). Worker -> parent:
``("ready",)``, then an ``("interval", IntervalReport)`` every interval and a
last one with ``final=True``, or ``("error", text)`` if the worker itself fails.

Open loop: request k is sent at its intended time whether or not earlier ones
finished; if the in-flight cap is reached it waits for a slot and is sent late,
its latency still counted from the intended time. Closed loop: a set of
virtual users, each sending its next request when the previous one finished.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import gc
import io
import math
import os
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable
from multiprocessing.connection import Connection

from bench.engine.plan.profile import OPEN_LOOP, Profile
from bench.engine.workers.samples import MEASURED, WARMUP, Recorder
from bench.engine.plan.schedule import SpawnPlan, arrival_offsets, concurrency_ramp, schedule_end_s, share
from bench.engine.plan.replay import prepare_replay
from bench.engine.plan.requests import PreparedRequest, check_response, prepare
from bench.engine.workers.responses import ResponseFacts, receiver_for, timed_receiver_for
from bench.engine.workers.transports import make_transport

CSV_HEADER = "worker,request,phase,intended_ms,sent_ms,end_ms,status,error,latency_ms,service_ms,bytes,kind,ttft_ms,output_tokens\n"
RAMP_TICK_S = 0.05
LOOP_TICK_S = 0.005  # the lateness timer's period: 200 samples a second of how late the loop runs a due callback
SPAWN_LOOK_S = 0.001  # spawn auto: how often the closed loop looks for the first response while users wait to start
_CANCELLED = (None, 0, "cancelled")
INTERRUPT_DRAIN_S = 3.0


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker needs, fixed before the fork."""

    index: int
    count: int
    profile: Profile
    url: str
    interval_s: float
    csv_path: str | None
    extra_headers: tuple[tuple[str, str], ...] = ()  # e.g. the API key from the environment; never reported
    chunks_path: str | None = None  # this worker's part of output.chunks


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies, so no worker is ever orphaned."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Process entry point (after fork): build a fresh uvloop loop and run the worker over the pipe."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        worker = Worker(spec, conn.send)

        def on_parent_message() -> None:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                os._exit(1)  # the parent is gone: nobody would read our results
            if message[0] == "start":
                worker.begin(message[1])
            elif message[0] == "stop":
                worker.stop()

        loop.add_reader(conn.fileno(), on_parent_message)
        loop.run_until_complete(worker.run())
        loop.remove_reader(conn.fileno())
    except BaseException:  # noqa: BLE001 - reported to the parent, which decides the exit code
        try:
            conn.send(("error", f"worker {spec.index}: {traceback.format_exc(limit=6)}"))
        except OSError:
            pass
        os._exit(1)
    finally:
        conn.close()


def _check_error(facts: ResponseFacts | None) -> str:
    return "check" if facts is not None and facts.check_failed is not None else ""


#: An arrival further off than this is waited for in a way a stop can interrupt (closer ones: sleep_until, exact).
LONG_GAP_NS = 100_000_000


async def sleep_until(due_ns: int) -> None:
    """Sleep until ``due_ns`` without waking early.

    The event loop's timers have millisecond resolution and fire up to about
    a millisecond early, which would send requests before they are due. So
    sleep the whole delay, and if woken early, yield to the loop until due
    (a spin of well under a millisecond, while other callbacks still run).
    """
    delay = (due_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
    while time.monotonic_ns() < due_ns:
        await asyncio.sleep(0)


class Worker:
    """Runs one worker's share: scheduling, sending, recording and reporting."""

    def __init__(self, spec: WorkerSpec, emit: Callable[[tuple], None]):
        self.spec = spec
        self.emit = emit  # ("ready",), then ("interval", IntervalReport) ...: to the pipe, or a Ray stream
        self.load = spec.profile.load
        self.open_loop = self.load.model == OPEN_LOOP
        # A session's steps count latency from when each was due, in a closed loop too (see bench.sessions.runner).
        self.recorder = Recorder(self.open_loop or bool(spec.profile.session) or spec.profile.conversation)
        self.sessions: Any = None  # a SessionRunner, for a profile with session steps
        self.in_flight = 0
        self.stopping = False
        self.tasks: set[asyncio.Task] = set()
        self.shots: set[_Shot] = set()  # open-loop requests in flight through a transport's callback form
        self._shots_idle: asyncio.Future[None] | None = None  # set when the last shot ends, while draining
        self.failure: BaseException | None = None  # the worker's own error inside a transport callback
        self.issued = 0
        self.warmup_share = share(self.load.warmup_requests, spec.index, spec.count)
        self.measured_share = share(self.load.requests, spec.index, spec.count) if self.load.requests is not None else None
        self.measured_issued = 0
        self.measured_cap = self.measured_share if self.measured_share is not None else -1
        # Before this (monotonic ns) every next request is measured, budget allowing: _next_phase's verdict, cached
        # for the closed loop's users (_phase_at), where that call is a noticeable share of a fast request's cost.
        self.measured_until_ns = 0
        self.end_s = schedule_end_s(self.load)
        self.csv: io.TextIOBase | None = None
        self.chunks: Any = None  # a ChunkLog, when output.chunks is written
        self.start_ns = 0
        self.seq = 0
        self.rows = 0
        self.prepared: list[PreparedRequest] | None = None
        self.cursor = 0
        self.objectives = dict(spec.profile.goodput)
        self.cpu_start = time.process_time()
        self._started = asyncio.get_event_loop().create_future()
        self._slot_freed = asyncio.Event()
        self._stopped = asyncio.Event()  # set by stop(): wakes an arrival schedule waiting a long gap
        self._submits = False  # the transport has the callback form (``submit``/``cancel``)
        self.loop_lag: dict[int, int] = {}  # this interval's timer lateness, bucket floor (µs) -> count
        self._tick: asyncio.TimerHandle | None = None
        self._tick_due_ns = 0

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        pool = self._pool_size()
        self.transport = make_transport(self.spec.profile, self.spec.url, pool)
        self._submits = hasattr(self.transport, "submit")
        profile = self.spec.profile
        if profile.session:
            from bench.sessions.runner import SessionRunner

            self.sessions = SessionRunner(self)
        elif profile.conversation:
            from bench.sessions.conversation import ConversationRunner

            self.sessions = ConversationRunner(self)
        elif self.load.replay is not None:  # one request per line of this worker's share, in the order of its offsets
            self.prepared = prepare_replay(
                self.load.replay, profile.kinds[0], self.spec.url, self.spec.extra_headers, self.spec.index, self.spec.count
            )
        elif not profile.plain:
            self.prepared = prepare(
                profile.kinds, profile.data, self.spec.url, self.spec.extra_headers, self.spec.index, self.spec.count, seed=self.load.seed
            )
        if self.spec.csv_path:
            self.csv = open(self.spec.csv_path, "w", buffering=1 << 16, encoding="ascii")
        if self.spec.chunks_path:
            from bench.engine.workers.chunks import ChunkLog

            self.chunks = ChunkLog(self.spec.chunks_path, self.spec.index)
        # Everything alive now (the modules, the parent's heap inherited by fork, the pool) lives for the
        # whole run: freezing it keeps the cycle collector from walking it again. Its full collections
        # otherwise stalled the loop for milliseconds, and open-loop sends due meanwhile left late.
        gc.freeze()
        self.emit(("ready",))
        self.start_ns = await self._started
        self.recorder.origin_ns = self.start_ns  # report times from the common start: comparable across hosts
        if self.chunks is not None:
            self.chunks.start_ns = self.start_ns
        await sleep_until(self.start_ns)  # every worker begins at the same instant, none early
        self.cpu_start = time.process_time()
        reporter = asyncio.ensure_future(self._report_loop())
        self._arm_tick(time.monotonic_ns())
        try:
            if self.sessions is not None:
                await self.sessions.run()
            elif self.open_loop:
                await self._open_loop()
            else:
                await self._closed_loop()
            await self._drain()
        finally:
            reporter.cancel()
            if self._tick is not None:
                self._tick.cancel()
            self.emit(("interval", self._flush(final=True)))
            if self.csv is not None:
                self.csv.close()
            if self.chunks is not None:
                self.chunks.close()
            await self.transport.close()

    def _pool_size(self) -> int:
        load, client = self.load, self.spec.profile.client
        peak = load.peak_concurrency
        total = client.pool_size if client.pool_size is not None else peak
        return max(1, share(total, self.spec.index, self.spec.count))

    def begin(self, start_ns: int) -> None:
        """Start at ``start_ns`` (this host's monotonic clock), the common start of every worker."""
        if not self._started.done():
            self._started.set_result(start_ns)

    def stop(self) -> None:
        """Stop issuing requests and drain the ones in flight (bounded)."""
        self.stopping = True
        self.measured_until_ns = 0
        self._slot_freed.set()
        self._stopped.set()

    async def _report_loop(self) -> None:
        interval_ns = int(self.spec.interval_s * 1e9)
        while True:
            due = self.start_ns + (self.seq + 1) * interval_ns
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            self.emit(("interval", self._flush()))
            self.seq += 1

    def _arm_tick(self, now_ns: int) -> None:
        self._tick_due_ns = now_ns + int(LOOP_TICK_S * 1e9)
        self._tick = asyncio.get_running_loop().call_later(LOOP_TICK_S, self._on_tick)

    def _on_tick(self) -> None:
        """The lateness timer: how long after its due time the loop got to it, the delay any callback due then saw.

        A loop busy with a burst of callbacks (a round of streamed chunks,
        responses, sends) runs everything that became due meanwhile late,
        timestamps taken in those callbacks included; schedule lag shows this
        only in an open loop and only at send times. The loop's timers have
        millisecond resolution, so an idle loop shows up to about 1 ms.
        """
        now_ns = time.monotonic_ns()
        late_us = (now_ns - self._tick_due_ns) // 1000
        if late_us < 1:  # (a millisecond timer can also fire a little early)
            late_us = 1
        shift = late_us.bit_length() - 11  # bucket_floor inlined
        key = late_us if shift <= 0 else (late_us >> shift) << shift
        self.loop_lag[key] = self.loop_lag.get(key, 0) + 1
        self._arm_tick(now_ns)

    def _flush(self, final: bool = False):
        cpu_s = time.process_time() - self.cpu_start
        wall_s = (time.monotonic_ns() - self.start_ns) / 1e9
        report = self.recorder.flush(self.spec.index, self.seq, self.in_flight, cpu_s, wall_s, final=final)
        if self.loop_lag:
            report = dataclasses.replace(report, loop_lag=self.loop_lag)
            self.loop_lag = {}
        if self.sessions is not None:
            groups, counts = self.sessions.take()
            report = dataclasses.replace(report, groups=groups, sessions=counts)
        return report

    async def _drain(self) -> None:
        """Wait for in-flight work; once stopping, only for a bounded time, then cancel the rest.

        Cancelled requests are counted as errors of kind ``cancelled``.
        """
        deadline = None
        loop = asyncio.get_running_loop()
        while self.tasks or self.shots:
            if self.stopping and deadline is None:
                deadline = time.monotonic() + min(INTERRUPT_DRAIN_S, self.spec.profile.target.timeout_s)
            if deadline is not None and time.monotonic() >= deadline:
                for shot in list(self.shots):
                    shot.cancel()  # recorded as "cancelled" at once
                pending = set(self.tasks)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending)
                break
            waiting: set[asyncio.Future] = set(self.tasks)
            if self.shots:
                self._shots_idle = loop.create_future()
                waiting.add(self._shots_idle)
            await asyncio.wait(waiting, timeout=0.1)
        if self.failure is not None:
            raise self.failure

    # ------------------------------------------------------------------ tickets

    def _next_phase(self, offset_s: float) -> str | None:
        """The phase of the next request, or None when this worker's share is done."""
        if self.stopping or offset_s >= self.end_s:
            return None
        if self.issued < self.warmup_share or (self.load.warmup_s > 0 and offset_s < self.load.warmup_s):
            self.issued += 1
            return WARMUP
        if self.measured_issued == 0 and self.load.warmup_requests and self.load.duration_s is not None:
            # Count-based warm-up: the measured duration starts with the first measured request.
            self.end_s = min(self.end_s, offset_s + self.load.duration_s)
        if self.measured_share is not None and self.measured_issued >= self.measured_share:
            return None
        self.issued += 1
        self.measured_issued += 1
        if not self.stopping:  # from here to the end, nothing but the budget or a stop makes a request other than measured
            self.measured_until_ns = self.start_ns + (int(self.end_s * 1e9) if self.end_s < math.inf else 1 << 62)
        return MEASURED

    # ------------------------------------------------------------------ open loop

    async def _open_loop(self) -> None:
        await self.arrivals(lambda: self.in_flight, self._spawn)

    async def arrivals(self, busy: Callable[[], int], spawn: Callable[[str, int, bool], None]) -> None:
        """The open loop's schedule: each arrival, once due and under the in-flight cap (``busy()`` below
        ``load.max_in_flight``), goes to ``spawn(phase, intended_ns, capped)``; the share's end or a stop ends it,
        counting what fell due but never left. Requests here; a session runner's sessions likewise."""
        cap = max(1, share(self.load.max_in_flight, self.spec.index, self.spec.count))
        start_ns = self.start_ns
        offsets = arrival_offsets(self.load, self.spec.index, self.spec.count)
        for offset_s in offsets:
            intended_ns = start_ns + int(offset_s * 1e9)
            if intended_ns - time.monotonic_ns() > LONG_GAP_NS and not self.stopping:
                await self.until_due_or_stopped(intended_ns)
                if self.stopping:  # Ctrl-C or the run's end in a long gap: what was due is counted, the rest was not due
                    self._count_unsent(offset_s, offsets)
                    return
            await sleep_until(intended_ns)
            capped = busy() >= cap
            while busy() >= cap and not self.stopping:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            phase = self._next_phase(offset_s)
            if phase is None:
                if self.stopping:
                    self._count_unsent(offset_s, offsets)
                return
            spawn(phase, intended_ns, capped)

    async def until_due_or_stopped(self, due_ns: int) -> None:
        """Wait for something far off (a slow rate's next arrival, a trace's quiet stretch, a session's think time)
        but wake on a stop: a Ctrl-C or the run's end must not wait for it. Wakes LONG_GAP_NS / 2 early when due."""
        try:
            await asyncio.wait_for(self._stopped.wait(), (due_ns - time.monotonic_ns() - LONG_GAP_NS // 2) / 1e9)
        except asyncio.TimeoutError:
            pass

    def _count_unsent(self, first_offset_s: float, later_offsets) -> None:
        """Stopped early: count the requests that were already due but never left (never silently dropped)."""
        now_s = (time.monotonic_ns() - self.start_ns) / 1e9
        due = 0
        offset_s = first_offset_s
        budget = None if self.measured_share is None else self.measured_share - self.measured_issued
        while offset_s <= now_s and (budget is None or due < budget):
            due += 1
            offset_s = next(later_offsets, math.inf)
        self.recorder.phases[MEASURED].unsent += due

    def _spawn(self, phase: str, intended_ns: int, capped: bool) -> None:
        self.in_flight += 1  # counted now, not when the task starts, so the cap holds within a burst
        if self._submits:  # the transport's callback form: no task, future or coroutine per request
            _Shot(self, phase, intended_ns, capped)
            return
        task = asyncio.ensure_future(self._one(phase, intended_ns, capped))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------------ closed loop

    async def _closed_loop(self) -> None:
        # A transport with a callback form drives its users itself: no future, task wake-up or coroutine resumption per request.
        user = self._driven_user if self._submits else self._user
        users = await self.start_users(lambda number, finished: asyncio.ensure_future(user(number, finished)))
        self.tasks.update(users)
        for user_task in users:
            user_task.add_done_callback(self.tasks.discard)

    async def start_users(self, start: Callable[[int, asyncio.Event], asyncio.Task]) -> list[asyncio.Task]:
        """The closed loop's users: ``start(number, finished)`` each, the users there at the start spread over the
        spawn window (SpawnPlan), a ramp's as it rises; ``_user_limit`` follows the ramp. Requests' users here; a
        session runner's users likewise. Returns when the ramp is over, the share is done or a stop came."""
        ramp = concurrency_ramp(self.load)
        users: list[asyncio.Task] = []
        self._user_limit = 0
        finished = asyncio.Event()
        index, count = self.spec.index, self.spec.count

        def target_at(t: float) -> int:
            return share(int(round(ramp.value_at(t))), index, count)

        spawn = SpawnPlan(self.load, index, target_at(0.0))
        while not self.stopping and not finished.is_set():
            elapsed = (time.monotonic_ns() - self.start_ns) / 1e9
            self._user_limit = target_at(elapsed)
            ramping = bool(self.load.stages) and elapsed < ramp.end_s
            if spawn.waiting_for_response(len(users)) and self.recorder.sends > len(users):
                spawn.response_seen(elapsed)  # a user has sent again: a response has ended
            spawn_wait_s = 0.0
            while len(users) < self._user_limit:
                due_s = spawn.due_s(len(users))
                if due_s > elapsed:
                    spawn_wait_s = min(due_s - elapsed, SPAWN_LOOK_S if spawn.waiting_for_response(len(users)) else math.inf)
                    break
                users.append(start(len(users), finished))
            if spawn_wait_s and (not ramping or spawn_wait_s < RAMP_TICK_S):
                await asyncio.sleep(spawn_wait_s)  # (finished is looked at by the loop)
                continue
            if not ramping:
                break
            try:
                await asyncio.wait_for(finished.wait(), RAMP_TICK_S)
            except asyncio.TimeoutError:
                pass
        return users

    def _phase_at(self, now_ns: int) -> str | None:
        """``_next_phase`` for a closed-loop user deciding at ``now_ns``, its verdict cached while every request is measured."""
        if now_ns < self.measured_until_ns and self.measured_issued != self.measured_cap:
            self.issued += 1  # what _next_phase would do and say
            self.measured_issued += 1
            return MEASURED
        return self._next_phase((now_ns - self.start_ns) / 1e9)

    def _limit_may_rise(self) -> bool:
        """For a user above the current limit: whether to look again after a tick (a ramp may raise it) or end."""
        return bool(self.load.stages) and not self.stopping and (time.monotonic_ns() - self.start_ns) / 1e9 < self.end_s

    async def _user(self, number: int, finished: asyncio.Event) -> None:
        """One virtual user: request after request until the share is done or the ramp lowers the limit.

        A plain profile takes the lean lane, as ``_DrivenUser`` does: the
        time a response ended is the next send time, and while every request
        is measured one lean ``Recorder`` call per request, which also counts
        the next send (the transport's own cost dominates, but this is what
        bench adds to it).
        """
        lean = self.prepared is None and not self.objectives and self.csv is None
        recorder, send = self.recorder, self.transport.send
        now_ns = time.monotonic_ns()
        while not finished.is_set():
            if number >= self._user_limit:
                if not self._limit_may_rise():
                    return
                await asyncio.sleep(RAMP_TICK_S)
                now_ns = time.monotonic_ns()
                continue
            phase = self._phase_at(now_ns)
            if phase is None:
                finished.set()
                self.measured_until_ns = 0  # the other users' lean lane must look too
                return
            self.in_flight += 1
            if lean:
                recorder.sent(phase, now_ns)
                while True:  # request after request while the common case holds, as _DrivenUser.outcome decides it
                    try:
                        status, nbytes, error = await send()
                    except asyncio.CancelledError:
                        status, nbytes, error = _CANCELLED
                    end_ns = time.monotonic_ns()
                    again = (
                        phase is MEASURED
                        and end_ns < self.measured_until_ns
                        and self.measured_issued != self.measured_cap
                        and number < self._user_limit
                        and error is None
                    )
                    if error is None:
                        recorder.closed_response(phase, now_ns, end_ns, status, nbytes, again)  # type: ignore[arg-type]
                    else:
                        recorder.finished(phase, now_ns, now_ns, end_ns, None, error, 0)
                    now_ns = end_ns
                    if not again:
                        break
                    self.issued += 1  # the next one, already counted as sent by closed_response
                    self.measured_issued += 1
                self.in_flight -= 1
                continue
            # _one's steps inlined: one coroutine level less for every resumption inside the transport.
            request, receiver, sent_ns = self._before_send(phase, now_ns)
            try:
                outcome = await (send() if request is None else send(request, receiver))
            except asyncio.CancelledError:
                outcome = _CANCELLED
            self._after_send(phase, now_ns, sent_ns, outcome, request, receiver)
            now_ns = time.monotonic_ns()

    async def _driven_user(self, number: int, finished: asyncio.Event) -> None:
        """The same virtual user as ``_user``, chained through the transport's ``submit`` callbacks.

        The task only waits for the user to end; cancelling it (the bounded
        drain) cancels the request in flight, which is counted as "cancelled".
        """
        user = _DrivenUser(self, number, finished)
        user.start()
        try:
            await user.ended
        except asyncio.CancelledError:
            user.cancel()
            raise

    # ------------------------------------------------------------------ one request

    async def _one(self, phase: str, intended_ns: int, capped: bool = False) -> None:
        """Send one request and record it; the caller has already counted it in ``in_flight``."""
        request, receiver, sent_ns = self._before_send(phase, intended_ns, capped)
        try:
            outcome = await (self.transport.send() if request is None else self.transport.send(request, receiver))
        except asyncio.CancelledError:
            outcome = _CANCELLED
        self._after_send(phase, intended_ns, sent_ns, outcome, request, receiver)

    def _before_send(self, phase: str, intended_ns: int, capped: bool = False) -> tuple[PreparedRequest | None, Any, int]:
        """The request to send (None: the profile's own), its receiver, and the send time, counted as sent."""
        request = receiver = None
        if self.prepared is not None:
            request = self.prepared[self.cursor]
            self.cursor = (self.cursor + 1) % len(self.prepared)
            # With output.chunks every response goes through a receiver that notes its pieces.
            receiver = receiver_for(request) if self.chunks is None else timed_receiver_for(request)
        sent_ns = time.monotonic_ns()
        self.recorder.sent(phase, sent_ns, intended_ns, capped=capped)
        return request, receiver, sent_ns

    def _after_send(self, phase: str, intended_ns: int, sent_ns: int, outcome: tuple, request: PreparedRequest | None, receiver: Any) -> None:
        """Record a finished request: its outcome, checks, inference facts, goodput, and CSV row."""
        status, nbytes, error = outcome
        end_ns = time.monotonic_ns()
        self.in_flight -= 1
        if self.open_loop:  # only the open loop waits for a free slot under its in-flight cap
            self._slot_freed.set()
        start_ns = intended_ns if self.open_loop else sent_ns  # TTFT and e2e count from the same start as latency
        facts = None
        if request is not None and status is not None:
            if receiver is not None:
                facts = receiver.facts(request, status, start_ns)
            elif request.check is not None:
                facts = ResponseFacts(check_response(request.check, status, None))
        good = error is None and status is not None and status < 400 and (facts is None or facts.check_failed is None)
        if good and self.objectives:
            good = self._meets_objectives(facts, end_ns - start_ns)
        self.recorder.finished(phase, intended_ns, sent_ns, end_ns, status, error, nbytes, facts, good)
        if self.csv is not None:
            self._write_row(phase, intended_ns, sent_ns, end_ns, status, error, nbytes, request, facts)
        if self.chunks is not None:
            self.chunks.write(phase, request.kind_name if request is not None else None, intended_ns, sent_ns, end_ns, status, error, receiver, facts)

    def _meets_objectives(self, facts: ResponseFacts | None, latency_ns: int) -> bool:
        """Goodput: every per-request objective (ms) met; a TTFT objective needs a streamed first token."""
        for name, limit_ms in self.objectives.items():
            if name == "e2e":
                value_ns = facts.e2e_ns if facts is not None and facts.e2e_ns is not None else latency_ns
            elif name == "ttft":
                value_ns = facts.ttft_ns if facts is not None else None
                if value_ns is None:
                    return False
            else:  # tpot: undefined below two tokens, so it cannot be missed
                value_ns = facts.tpot_ns if facts is not None else None
                if value_ns is None:
                    continue
            if value_ns > limit_ms * 1e6:
                return False
        return True

    def _write_row(self, phase, intended_ns, sent_ns, end_ns, status, error, nbytes, request=None, facts=None) -> None:
        start = self.start_ns
        self.rows += 1
        latency_start = intended_ns if self.open_loop else sent_ns
        latency = f"{(end_ns - latency_start) / 1e6:.3f}" if error is None else ""
        service = f"{(end_ns - sent_ns) / 1e6:.3f}" if error is None else ""
        self.csv.write(  # type: ignore[union-attr]
            f"{self.spec.index},{self.rows},{phase},{(intended_ns - start) / 1e6:.3f},{(sent_ns - start) / 1e6:.3f},"
            f"{(end_ns - start) / 1e6:.3f},{status if status is not None else ''},{error or _check_error(facts)},{latency},{service},{nbytes},"
            f"{request.kind_name if request is not None else ''},"
            f"{f'{facts.ttft_ns / 1e6:.3f}' if facts is not None and facts.ttft_ns is not None else ''},"
            f"{facts.output_tokens if facts is not None and facts.output_tokens is not None else ''}\n"
        )


class _DrivenUser:
    """One closed-loop virtual user as a callback chain: each outcome records the request and starts the next.

    Does what ``Worker._user`` does, in the same order, for a transport with
    ``submit(done, request, receiver, repeat)`` (the fast transport): the
    request's bookkeeping runs straight from the callback that completed the
    response, with no future, task wake-up or coroutine per request. A plain
    profile (the target's own request, no goodput objectives, no CSV) takes
    the lean lane: one repeating request that ``outcome`` sends again by
    returning True (the transport writes it on the same connection at once),
    the time a response ended taken as the next send time, the phase from the
    worker's cached verdict while it holds, and one lean ``Recorder`` call
    each way. At full speed this is most of the client's CPU per request.
    """

    __slots__ = ("worker", "number", "finished", "ended", "pending", "phase", "start_ns", "sent_ns", "request", "receiver", "loop", "lean", "done")

    def __init__(self, worker: Worker, number: int, finished: asyncio.Event) -> None:
        self.worker = worker
        self.number = number
        self.finished = finished
        self.loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[None] = self.loop.create_future()
        self.pending: Any = None  # the transport's handle of the request in flight
        self.phase = MEASURED
        self.start_ns = self.sent_ns = 0
        self.request: PreparedRequest | None = None
        self.receiver: Any = None
        self.lean = worker.prepared is None and not worker.objectives and worker.csv is None
        self.done = self.outcome  # bound once

    def start(self) -> None:
        """Send a request through the transport: the first, and after a ramp tick or a lean lane that stopped."""
        try:
            now_ns = time.monotonic_ns()
            phase = self._take(now_ns)
            if phase is not None:
                self._submit(phase, now_ns)
        except BaseException as exc:  # noqa: BLE001 - the worker's own failure: ends the user's task with it
            self._fail(exc)

    def outcome(self, outcome: tuple) -> bool:
        """The transport's callback: record the finished request and start the next; True: send the same again now."""
        worker = self.worker
        try:
            now_ns = time.monotonic_ns()
            if self.lean:
                status, nbytes, error = outcome
                # The most common case, decided here as _take and _phase_at would: a measured request, then another.
                again = (
                    self.phase is MEASURED
                    and now_ns < worker.measured_until_ns
                    and worker.measured_issued != worker.measured_cap
                    and self.number < worker._user_limit
                    and error is None
                )
                if error is None:
                    worker.recorder.closed_response(self.phase, self.sent_ns, now_ns, status, nbytes, again)
                else:
                    worker.recorder.finished(self.phase, self.sent_ns, self.sent_ns, now_ns, None, error, 0)
                if again:
                    worker.issued += 1
                    worker.measured_issued += 1
                else:
                    worker.in_flight -= 1
                    phase = self._take(now_ns)
                    if phase is None:
                        return False
                    worker.recorder.sent(phase, now_ns)
                self.start_ns = self.sent_ns = now_ns
                return True
            worker._after_send(self.phase, self.start_ns, self.sent_ns, outcome, self.request, self.receiver)
            phase = self._take(now_ns)
            if phase is not None:
                self._submit(phase, now_ns)
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        return False

    def _take(self, now_ns: int) -> str | None:
        """The next request's phase, counted in flight; None when this user ends or waits for a ramp tick."""
        worker = self.worker
        if self.ended.done() or self.finished.is_set():  # cancelled, or another user found the share done
            self._end()
            return None
        if self.number >= worker._user_limit:
            if worker._limit_may_rise():
                self.loop.call_later(RAMP_TICK_S, self.start)
            else:
                self._end()
            return None
        phase = worker._phase_at(now_ns)
        if phase is None:
            self.finished.set()
            worker.measured_until_ns = 0  # the other users' lean lane must look too
            self._end()
            return None
        worker.in_flight += 1
        self.phase = phase
        return phase

    def _submit(self, phase: str, now_ns: int) -> None:
        worker = self.worker
        if self.lean:
            worker.recorder.sent(phase, now_ns)
            self.start_ns = self.sent_ns = now_ns
            self.pending = worker.transport.submit(self.done, None, None, True)  # type: ignore[attr-defined]
        else:
            self.request, self.receiver, self.sent_ns = worker._before_send(phase, now_ns)
            self.start_ns = now_ns
            self.pending = worker.transport.submit(self.done, self.request, self.receiver)  # type: ignore[attr-defined]

    def cancel(self) -> None:
        """The drain's deadline: the request in flight ends as "cancelled" (recorded), and the user with it."""
        self.ended.cancel()
        self.worker.measured_until_ns = 0  # no lean lane goes on without looking
        if self.pending is not None:
            self.worker.transport.cancel(self.pending)  # type: ignore[attr-defined]

    def _fail(self, exc: BaseException) -> None:
        if not self.ended.done():
            self.ended.set_exception(exc)

    def _end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class _Shot:
    """One open-loop request sent through the transport's callback form; ``Worker._one`` without the task.

    Created when the request is due (already counted in flight), it is sent
    at once and recorded from the callback that completes it. The worker
    keeps the shots in flight so that the bounded drain can cancel them,
    which records them as "cancelled".
    """

    __slots__ = ("worker", "phase", "intended_ns", "sent_ns", "request", "receiver", "pending")

    def __init__(self, worker: Worker, phase: str, intended_ns: int, capped: bool) -> None:
        self.worker = worker
        self.phase = phase
        self.intended_ns = intended_ns
        self.request, self.receiver, self.sent_ns = worker._before_send(phase, intended_ns, capped)
        worker.shots.add(self)
        self.pending = worker.transport.submit(self.done, self.request, self.receiver)  # type: ignore[attr-defined]

    def done(self, outcome: tuple) -> bool:
        """The transport's callback (never from inside ``submit``): record the request; False: not sent again."""
        worker = self.worker
        worker.shots.discard(self)
        try:
            worker._after_send(self.phase, self.intended_ns, self.sent_ns, outcome, self.request, self.receiver)
        except BaseException as exc:  # noqa: BLE001 - the worker's own failure: raised by the drain
            if worker.failure is None:
                worker.failure = exc
        if not worker.shots and worker._shots_idle is not None and not worker._shots_idle.done():
            worker._shots_idle.set_result(None)
        return False

    def cancel(self) -> None:
        """The drain's deadline: the request ends now as "cancelled" (``done`` records it)."""
        self.worker.transport.cancel(self.pending)  # type: ignore[attr-defined]

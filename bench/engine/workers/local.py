"""The local engine: worker processes forked on this machine, talking to the parent over pipes.

An engine places the workers and carries their messages; it knows nothing of
the aggregator, the gate or the reports, so the runner drives any engine the
same way (see ``Engine``): start (every worker ready), begin (one common start
time), poll (interval reports and worker failures), stop (drain), kill (now),
close (nothing left running).
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Protocol, Sequence

from bench.engine.errors import RunError
from bench.engine.workers.samples import IntervalReport
from bench.engine.workers.transports import preload
from bench.engine.workers.worker import WorkerSpec, worker_main

READY_TIMEOUT_S = 15.0
START_MARGIN_S = 0.02
STOP_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class WorkerFailed:
    """A worker ended without its final report (crashed, killed, or reported an error)."""

    index: int
    message: str


Event = IntervalReport | WorkerFailed


class Engine(Protocol):
    """How the runner sees any engine; see the module docstring."""

    name: str
    continue_on_failure: bool  # a lost worker is recorded and the others go on, instead of stopping the run
    start_wall_s: float | None  # wall-clock time of the common start, once begin() has set it

    def start(self) -> None: ...

    def begin(self) -> None: ...

    def poll(self, timeout: float) -> list[Event]: ...

    @property
    def running(self) -> bool: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> list[dict]: ...


def death(proc: multiprocessing.process.BaseProcess) -> str:
    """Why a worker process ended, in words: its exit code or the signal that killed it."""
    code = proc.exitcode
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class LocalEngine:
    """Forks one process per worker (before any thread exists in the parent) and reads their pipes."""

    name = "local"

    def __init__(self, specs: Sequence[WorkerSpec]):
        self.specs = list(specs)
        self.continue_on_failure = bool(specs) and specs[0].profile.engine.on_worker_failure == "continue"
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.conns: list[Connection] = []
        self.live: dict[Connection, int] = {}
        self.start_wall_s: float | None = None

    def start(self) -> None:
        if self.specs:
            preload(self.specs[0].profile.client.transport)
        ctx = multiprocessing.get_context("fork")
        for spec in self.specs:
            parent_end, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=worker_main, args=(spec, child_end), name=f"bench-worker-{spec.index}", daemon=True)
            proc.start()
            child_end.close()
            self.procs.append(proc)
            self.conns.append(parent_end)
        self.live = {conn: i for i, conn in enumerate(self.conns)}
        self._wait_ready()

    def _wait_ready(self) -> None:
        pending = dict(self.live)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunError(f"{len(pending)} worker(s) were not ready after {READY_TIMEOUT_S:.0f} s")
            for conn in wait(list(pending), timeout=remaining):
                proc = self.procs[pending[conn]]
                try:
                    message = conn.recv()
                except EOFError:
                    proc.join(1)
                    raise RunError(f"{proc.name} {death(proc)} while starting") from None
                if message[0] == "error":
                    raise RunError(message[1])
                if message[0] == "ready":
                    del pending[conn]

    def begin(self) -> None:
        wall_s, now_ns = time.time(), time.monotonic_ns()
        start_ns = now_ns + int(START_MARGIN_S * 1e9)  # one clock: every process shares CLOCK_MONOTONIC
        self.start_wall_s = wall_s + START_MARGIN_S
        self._broadcast(("start", start_ns))

    @property
    def running(self) -> bool:
        return bool(self.live)

    def poll(self, timeout: float) -> list[Event]:
        """Interval reports as they arrive, and a WorkerFailed for each worker that died without its final one."""
        events: list[Event] = []
        sentinels = {self.procs[i].sentinel: conn for conn, i in self.live.items()}
        ready = wait(list(self.live) + list(sentinels), timeout=timeout)
        for item in ready:
            if isinstance(item, int) or item not in self.live:
                continue  # a sentinel: handled below, once its pipe is drained
            index = self.live[item]
            try:
                kind, payload = item.recv()
            except (EOFError, OSError):
                events.append(self._lost(item))
                continue
            if kind == "interval":
                events.append(payload)
                if payload.final:
                    del self.live[item]
            elif kind == "error":
                del self.live[item]
                events.append(WorkerFailed(index, payload.strip()))
        for sentinel, conn in sentinels.items():
            if sentinel in ready and conn in self.live and not conn.poll():
                events.append(self._lost(conn))
        return events

    def _lost(self, conn: Connection) -> WorkerFailed:
        index = self.live.pop(conn)
        proc = self.procs[index]
        proc.join(1)
        return WorkerFailed(index, f"worker {index} (pid {proc.pid}) {death(proc)} before its final report; stopped the others")

    def stop(self) -> None:
        self._broadcast(("stop",))

    def kill(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
        self.live.clear()

    def close(self) -> None:
        """Make sure no worker outlives the run: join, then SIGKILL what is left, by PID."""
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(2)
        for conn in self.conns:
            conn.close()

    def describe(self) -> list[dict]:
        return [{"index": i, "pid": proc.pid, "node": "local"} for i, proc in enumerate(self.procs)]

    def _broadcast(self, message: tuple) -> None:
        for conn in self.conns:
            try:
                conn.send(message)
            except (OSError, ValueError):
                pass

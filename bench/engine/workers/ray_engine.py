"""The Ray engine: one Ray actor per worker, spread over a cluster's nodes, running the same ``Worker``.

The runner drives it like the local engine (see ``local.Engine``):

* ``start``: connect to Ray (``engine.address``: ``auto`` or ``HOST:PORT`` joins
  a cluster, ``local`` or none starts a private one; an already initialized
  Ray in this process is reused and left running), reserve one bundle per
  worker in a SPREAD placement group, create the actors, refuse mismatched
  bench/Ray/Python versions, open one streaming call per actor, wait until
  every worker is ready, then estimate each node's clock offset.
* ``begin``: one common start, as a wall time on the driver's clock shifted
  by each node's estimated offset; each actor converts it to its own
  monotonic clock, so the workers start together and their span times
  (relative to the common start) line up across hosts.
* ``poll``: one background thread per actor reads its stream into a queue;
  interval reports come back as they are, a stream that breaks (the actor
  died), ends early or skips a sequence number becomes a ``WorkerFailed``.
* ``stop``/``kill``/``close``: drain, kill now, and leave nothing behind
  (actors killed, placement group removed, Ray shut down if we started it).

Actors never restart (``max_restarts=0``) and their calls are never retried:
a restarted worker would send its share again and change the offered load.

Ray is imported only here; the runner imports this module only for
``engine.kind: ray``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import platform
import queue
import re
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

import bench
from bench.engine.errors import RunError
from bench.engine.workers.local import Event, WorkerFailed
from bench.engine.plan.profile import EngineConfig
from bench.engine.plan.replay import for_worker
from bench.engine.workers.worker import Worker, WorkerSpec

NAMESPACE = "bench"
PLACEMENT_TIMEOUT_S = 60.0  # the cluster may need to scale up (KubeRay autoscaler)
READY_TIMEOUT_S = 60.0  # actor process start and import on a busy node is slower than a fork
START_MARGIN_S = 0.1  # common start this far ahead of the driver's clock: covers the begin() round trip
CLOCK_SAMPLES = 5
SKEW_WARN_MS = 250.0  # the report interval: more than this and per-second series from different hosts blur
STOP_GRACE_S = 5.0
GCS_CONNECT_TIMEOUT_S = 5.0
MAX_CONCURRENCY = 8  # stream + stop + clock + begin + info run while the stream is open

_END = object()  # a stream that ended (after its last message)


# --------------------------------------------------------------------------- the actor


class WorkerActor:
    """Runs one ``Worker`` inside a Ray actor, exactly as a local worker process runs it.

    The worker emits into an asyncio queue; ``stream`` yields what it emits,
    each message with a sequence number, so the driver sees a lost message as
    a gap. Every method is ``async`` so that it runs on the actor's event loop
    thread, where the worker lives (``begin`` and ``stop`` touch its futures).
    """

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.worker: Worker | None = None
        self.stopping = False

    async def info(self) -> dict[str, Any]:
        """Where this worker runs and with which versions (checked against the driver's)."""
        ctx = ray.get_runtime_context()
        csv_dir = os.path.dirname(self.spec.csv_path or self.spec.chunks_path or "") or None  # output.csv's parts, or output.chunks'
        return {
            "pid": os.getpid(),
            "node_id": ctx.get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname(),
            "versions": versions(),
            # The driver made this directory (a fresh random name) just before: if we see it, we share its filesystem.
            "csv_dir_visible": None if csv_dir is None else os.path.isdir(csv_dir),
        }

    async def clock(self) -> tuple[int, int]:
        return time.time_ns(), time.monotonic_ns()

    @ray.method(num_returns="streaming")
    async def stream(self):
        """Create and run the worker; yield ``(sequence, message)`` for every message it emits, until its last."""
        messages: asyncio.Queue = asyncio.Queue()
        try:
            self.worker = Worker(self.spec, messages.put_nowait)
        except BaseException:  # noqa: BLE001 - reported to the driver like a failed worker process
            yield 0, ("error", f"worker {self.spec.index} on {socket.gethostname()} (pid {os.getpid()}): {traceback.format_exc(limit=6)}")
            return
        if self.stopping:
            self.worker.stop()
        task = asyncio.ensure_future(self._run(messages.put_nowait))
        seq = 0
        while True:
            message = await messages.get()
            yield seq, message
            seq += 1
            if message[0] == "error" or (message[0] == "interval" and message[1].final):
                break
        try:
            await asyncio.wait_for(task, 10)  # the transport closes after the final report
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - the results are already out
            pass

    async def _run(self, emit) -> None:
        try:
            await self.worker.run()  # type: ignore[union-attr]
        except BaseException:  # noqa: BLE001 - reported to the driver, which decides the exit code
            emit(("error", f"worker {self.spec.index} on {socket.gethostname()} (pid {os.getpid()}): {traceback.format_exc(limit=6)}"))

    async def begin(self, start_wall_ns: int) -> float:
        """Start at ``start_wall_ns`` (this node's wall clock); returns how many ms ahead of it the call arrived."""
        now_wall, now_mono = time.time_ns(), time.monotonic_ns()
        start_mono = now_mono + (start_wall_ns - now_wall)
        if self.worker is not None:
            self.worker.begin(start_mono)
        return (start_wall_ns - now_wall) / 1e6

    async def stop(self) -> None:
        self.stopping = True
        if self.worker is not None:
            self.worker.stop()


RemoteWorker = ray.remote(WorkerActor)


# --------------------------------------------------------------------------- pure helpers


def versions() -> dict[str, str]:
    return {"bench": bench.__version__, "ray": ray.__version__, "python": platform.python_version()}


def check_versions(driver: dict[str, str], workers: Sequence[dict[str, Any]]) -> None:
    """Refuse a cluster whose bench, Ray or Python (major.minor) differs from the driver's.

    ``workers``: each worker's ``info()``. Raises RunError naming every mismatch.
    """

    def same(a: dict[str, str], b: dict[str, str]) -> bool:
        return a["bench"] == b["bench"] and a["ray"] == b["ray"] and a["python"].split(".")[:2] == b["python"].split(".")[:2]

    bad = [w for w in workers if not same(driver, w["versions"])]
    if not bad:
        return
    seen = []
    for w in bad:
        v = w["versions"]
        line = f"node {w.get('ip', '?')} ({w.get('node_id', '?')[:12]}): bench {v['bench']}, Ray {v['ray']}, Python {v['python']}"
        if line not in seen:
            seen.append(line)
    raise RunError(
        f"version mismatch between this driver (bench {driver['bench']}, Ray {driver['ray']}, Python {driver['python']}) "
        f"and the cluster: {'; '.join(seen)}. Install the same bench-loadtest and Ray versions, on the same Python "
        "minor version, on the driver and in the cluster's image"
    )


def estimate_offset(samples: Sequence[tuple[int, int, int]]) -> tuple[float, float]:
    """A node's wall-clock offset from the driver's, from ``(sent_ns, remote_wall_ns, received_ns)`` round trips.

    Takes the round trip with the smallest delay (least queueing) and assumes
    the remote clock was read at its midpoint. Returns ``(offset_ms,
    uncertainty_ms)``: remote minus driver, and half that round trip.
    """
    sent, remote, received = min(samples, key=lambda s: s[2] - s[0])
    return (remote - (sent + received) / 2) / 1e6, (received - sent) / 2e6


def death_detail(exc: BaseException) -> str:
    """Ray's long actor-death text, cut to the part that says why (one line)."""
    text = " ".join(str(exc).split())
    match = re.search(r"Worker exit detail: (.*?)(?: Some common causes|$)", text)
    if match:
        return match.group(1).strip()
    text = re.sub(r"\s*class_name:.*?(?=The actor|$)", " ", text).strip()
    return text[:300] + ("..." if len(text) > 300 else "")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_gcs_reachable(address: str, timeout_s: float = GCS_CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds on a wrong HOST:PORT: ray.init retries an unreachable GCS for minutes."""
    if "://" in address:
        return  # ray:// (Ray Client) and the like: Ray's own business
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RunError(f"engine.address {address!r}: expected auto, local or HOST:PORT (the head node's GCS port, 6379 by default)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise RunError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); give the head node's GCS address "
            "(port 6379 unless ray start --port said otherwise) and check that the port is open from here"
        ) from None


# --------------------------------------------------------------------------- the engine


@dataclass
class _Placed:
    actor: Any
    info: dict[str, Any]
    offset_ms: float = 0.0
    offset_uncertainty_ms: float = 0.0


class RayEngine:
    """Workers as Ray actors; see the module docstring."""

    name = "ray"

    def __init__(self, specs: Sequence[WorkerSpec], config: EngineConfig | None = None):
        self.specs = list(specs)
        self.config = config or EngineConfig(kind="ray")
        self.continue_on_failure = self.config.on_worker_failure == "continue"
        self.owns_ray = False
        self.pg = None
        self.actors: list[Any] = []
        self.placed: list[_Placed] = []
        self.events: queue.Queue = queue.Queue()
        self.readers: list[threading.Thread] = []
        self.live: set[int] = set()
        self.next_seq: dict[int, int] = {}
        self.begun = False
        self.start_wall_s: float | None = None
        self.notes: list[str] = []  # worth telling the user (clock skew, a late start); the runner may print them
        self.clock_skew_ms = 0.0

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        self._connect()
        try:
            self._place()
            self._create_actors()
            self._open_streams()
            self._wait_ready()
            self._measure_clocks()
        except ray.exceptions.RayError as exc:  # anything Ray raises while starting is a failed start (exit 3)
            raise RunError(f"Ray failed while starting the workers: {death_detail(exc)}") from None

    def _connect(self) -> None:
        if ray.is_initialized():
            return  # someone else's Ray (a test session, a notebook): use it, never shut it down
        address = self.config.address
        if address not in (None, "", "local", "auto"):
            _check_gcs_reachable(address)
        on_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if on_main else None
        try:
            if address in (None, "", "local"):
                ray.init(
                    num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, namespace=NAMESPACE, configure_logging=False
                )
            else:
                ray.init(address=address, log_to_driver=False, namespace=NAMESPACE, configure_logging=False)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError (version mismatch, auth), ValueError
            if ray.is_initialized():
                ray.shutdown()  # half started: leave nothing behind
            where = "start a local Ray" if address in (None, "", "local") else f"connect to the Ray cluster at {address}"
            raise RunError(f"could not {where}: {' '.join(str(exc).split())[:600]}") from None
        finally:
            if on_main and previous is not None:
                signal.signal(signal.SIGTERM, previous)  # ray.init installs its own; the runner's drains the workers
        self.owns_ray = True

    def _bundle(self) -> dict[str, float]:
        bundle = {"CPU": 1.0}
        if self.config.resource:
            bundle[self.config.resource] = 1.0
        return bundle

    def _place(self) -> None:
        bundle = self._bundle()
        if self.owns_ray and self.config.address in (None, "", "local") and len(self.specs) > (os.cpu_count() or 1):
            raise RunError(
                f"a local Ray has {os.cpu_count()} CPUs, one per worker, so it cannot run {len(self.specs)} workers; "
                "lower load.workers (--workers) or use a cluster (--ray-address auto or HOST:PORT)"
            )
        self.pg = placement_group([dict(bundle) for _ in self.specs], strategy="SPREAD", name="")
        ready, _ = ray.wait([self.pg.ready()], timeout=PLACEMENT_TIMEOUT_S)
        if not ready:
            available = {k: v for k, v in ray.available_resources().items() if k == "CPU" or k == self.config.resource}
            raise RunError(
                f"the Ray cluster could not place {len(self.specs)} worker(s) of {bundle} each within "
                f"{PLACEMENT_TIMEOUT_S:.0f} s (available now: {available or 'nothing'}); "
                "lower load.workers, add nodes, or check engine.resource"
            )

    def _create_actors(self) -> None:
        options: dict[str, Any] = {
            "num_cpus": 1,
            "max_restarts": 0,
            "max_task_retries": 0,
            "max_concurrency": MAX_CONCURRENCY,
        }
        if self.config.resource:
            options["resources"] = {self.config.resource: 1}
        for i, spec in enumerate(self.specs):
            strategy = PlacementGroupSchedulingStrategy(placement_group=self.pg, placement_group_bundle_index=i)
            # A replayed trace: each actor is sent only its own lines (1/W of the trace, pickled once for it).
            spec = dataclasses.replace(spec, profile=for_worker(spec.profile, spec.index, spec.count))
            self.actors.append(RemoteWorker.options(scheduling_strategy=strategy, name=None, **options).remote(spec))
        try:
            infos = ray.get([a.info.remote() for a in self.actors], timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RunError(f"the Ray worker actors did not start within {READY_TIMEOUT_S:.0f} s") from None
        except ray.exceptions.RayError as exc:
            raise RunError(
                f"a Ray worker actor could not start ({death_detail(exc)}); is bench-loadtest installed in the cluster's image?"
            ) from None
        self.placed = [_Placed(a, info) for a, info in zip(self.actors, infos)]
        check_versions(versions(), infos)
        self._check_reachability(infos)

    def _check_reachability(self, infos: Sequence[dict[str, Any]]) -> None:
        """Refuse what cannot work across machines: CSV part files on the driver's disk, a target on the driver's loopback."""
        spec = self.specs[0]
        blind = [i for i, info in enumerate(infos) if info["csv_dir_visible"] is False]
        if blind:
            where = ", ".join(sorted({infos[i]["ip"] for i in blind}))
            field = "output.csv" if spec.csv_path else "output.chunks"
            raise RunError(
                f"{field} needs the workers to share the driver's filesystem, but worker(s) {', '.join(map(str, blind))} "
                f"run on another machine ({where}); with a multi-node Ray cluster leave out --{field[7:]}/{field} "
                "(the JSON report, --hlog and the per-second series still work)"
            )
        if _is_loopback(spec.url):
            here = ray.util.get_node_ip_address()
            away = [i for i, info in enumerate(infos) if info["ip"] != here]
            if away:
                raise RunError(
                    f"the target {spec.url} is this machine's loopback address, which worker(s) {', '.join(map(str, away))} "
                    f"on other nodes cannot reach; set target.url (or --url) to an address the cluster can reach"
                    + (" (the bundled mock server only listens on this machine)" if spec.profile.uses_mock else "")
                )

    def _open_streams(self) -> None:
        for i, actor in enumerate(self.actors):
            stream = actor.stream.remote()
            thread = threading.Thread(target=self._read, args=(i, stream), name=f"bench-ray-stream-{i}", daemon=True)
            thread.start()
            self.readers.append(thread)
            self.next_seq[i] = 0
        self.live = set(range(len(self.actors)))

    def _read(self, index: int, stream) -> None:
        """Background thread: this actor's messages into the queue, then how the stream ended."""
        try:
            for ref in stream:
                seq, message = ray.get(ref)
                self.events.put((index, seq, message))
        except BaseException as exc:  # noqa: BLE001 - the actor died, or the stream broke: the driver decides
            self.events.put((index, None, exc))
            return
        self.events.put((index, None, _END))

    def _wait_ready(self) -> None:
        pending = set(self.live)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunError(f"{len(pending)} Ray worker(s) were not ready after {READY_TIMEOUT_S:.0f} s")
            try:
                index, seq, message = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            failure = self._check_seq(index, seq, message)
            if failure is not None:
                raise RunError(failure + " while starting")
            if isinstance(message, tuple) and message[0] == "error":
                raise RunError(message[1].strip())
            if isinstance(message, tuple) and message[0] == "ready":
                pending.discard(index)

    def _measure_clocks(self) -> None:
        samples: list[list[tuple[int, int, int]]] = [[] for _ in self.actors]
        for _ in range(CLOCK_SAMPLES):
            for i, actor in enumerate(self.actors):
                sent = time.time_ns()
                remote_wall, _ = ray.get(actor.clock.remote(), timeout=10)
                samples[i].append((sent, remote_wall, time.time_ns()))
        here = (ray.util.get_node_ip_address(), socket.gethostname())
        for placed, taken in zip(self.placed, samples):
            placed.offset_ms, placed.offset_uncertainty_ms = estimate_offset(taken)
            if (placed.info["ip"], placed.info["host"]) == here:
                placed.offset_ms = 0.0  # the driver's machine: one clock, so the estimate is only noise
        by_node: dict[str, float] = {}
        for placed in self.placed:
            by_node.setdefault(placed.info["node_id"], placed.offset_ms)
        offsets = list(by_node.values()) + [0.0]  # the driver's clock takes part too
        self.clock_skew_ms = max(offsets) - min(offsets)
        if self.clock_skew_ms > SKEW_WARN_MS:
            self.notes.append(
                f"node clocks differ by up to {self.clock_skew_ms:.0f} ms (estimated from round trips); the common start "
                "corrects for it, but timestamps from different nodes in logs will disagree: run chrony/NTP on the nodes"
            )

    # ------------------------------------------------------------------ run

    def begin(self) -> None:
        start_wall = time.time_ns() + int(START_MARGIN_S * 1e9)
        self.start_wall_s = start_wall / 1e9
        refs = [p.actor.begin.remote(start_wall + int(p.offset_ms * 1e6)) for p in self.placed]
        self.begun = True
        try:
            leads = ray.get(refs, timeout=10)
        except ray.exceptions.RayError:
            return  # an actor died just now: its stream says so, and poll() reports it
        late = [(i, -lead) for i, lead in enumerate(leads) if lead < 0]
        if late:
            worst = max(ms for _, ms in late)
            self.notes.append(f"{len(late)} worker(s) got the start time up to {worst:.0f} ms after it (their first requests were late)")

    @property
    def running(self) -> bool:
        return bool(self.live)

    def poll(self, timeout: float) -> list[Event]:
        """Interval reports as they arrive, and a WorkerFailed for each worker whose stream broke or ended early."""
        events: list[Event] = []
        try:
            item = self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return events
        while True:
            event = self._handle(*item)
            if event is not None:
                events.append(event)
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return events

    def _handle(self, index: int, seq: int | None, message: Any) -> Event | None:
        if index not in self.live:
            return None  # finished, already reported failed, or killed
        failure = self._check_seq(index, seq, message)
        if failure is not None:
            self.live.discard(index)
            ray.kill(self.actors[index], no_restart=True)  # its numbers are incomplete: it must not keep loading the target
            return WorkerFailed(index, failure + self._consequence())
        if isinstance(message, BaseException):
            self.live.discard(index)
            return WorkerFailed(index, f"{self._who(index)} died before its final report (Ray: {death_detail(message)}){self._consequence()}")
        if message is _END:
            self.live.discard(index)
            return WorkerFailed(index, f"{self._who(index)} ended its stream before its final report{self._consequence()}")
        kind = message[0]
        if kind == "interval":
            if message[1].final:
                self.live.discard(index)
            return message[1]
        if kind == "error":
            self.live.discard(index)
            return WorkerFailed(index, message[1].strip())
        return None  # "ready": handled by start()

    def _check_seq(self, index: int, seq: int | None, message: Any) -> str | None:
        """Streams are ordered and reliable, so a gap means lost data: say which."""
        if seq is None:
            if isinstance(message, BaseException) and not self.begun:
                return f"{self._who(index)} died: {death_detail(message)}"
            if message is _END and not self.begun:
                return f"{self._who(index)} ended its stream"
            return None
        expected = self.next_seq[index]
        self.next_seq[index] = seq + 1
        if seq != expected:
            return f"{self._who(index)}: lost message(s) {expected}..{seq - 1} from its stream"
        return None

    def _who(self, index: int) -> str:
        if index < len(self.placed):
            info = self.placed[index].info
            return f"worker {index} on node {info['ip']} (pid {info['pid']})"
        return f"worker {index}"

    def _consequence(self) -> str:
        # With "stop" the runner stops the others on this event; what "continue" does is the runner's to say.
        return "" if self.config.on_worker_failure == "continue" else "; stopped the others"

    def stop(self) -> None:
        for actor in self.actors:
            try:
                actor.stop.remote()
            except Exception:  # noqa: BLE001 - a dead actor: nothing to stop
                pass

    def kill(self) -> None:
        self._kill_all()
        self.live.clear()

    def _kill_all(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    # ------------------------------------------------------------------ end

    def close(self) -> None:
        """Leave nothing running: wait (bounded) for the streams to end, kill every actor, free the placement group."""
        if not ray.is_initialized():
            return
        if self.begun:
            deadline = time.monotonic() + STOP_GRACE_S
            if self.live:
                self.stop()
            for thread in self.readers:
                thread.join(max(0.0, deadline - time.monotonic()))
        self._kill_all()
        for thread in self.readers:
            thread.join(2.0)  # each ends once Ray sees its actor dead
        self.live.clear()
        if self.pg is not None:
            try:
                remove_placement_group(self.pg)
            except Exception:  # noqa: BLE001
                pass
            self.pg = None
        if self.owns_ray:
            ray.shutdown()
            self.owns_ray = False

    def describe(self) -> list[dict]:
        described = []
        for i, placed in enumerate(self.placed):
            info = placed.info
            described.append(
                {
                    "index": i,
                    "pid": info["pid"],
                    "node": info["ip"],
                    "node_id": info["node_id"],
                    "host": info["host"],
                    "clock_offset_ms": round(placed.offset_ms, 3),
                    "clock_offset_uncertainty_ms": round(placed.offset_uncertainty_ms, 3),
                }
            )
        if self.clock_skew_ms > SKEW_WARN_MS:
            for entry in described:
                entry["clock_skew_ms"] = round(self.clock_skew_ms, 1)
        return described

"""The Ray engine: the same workers as Ray actors, against the bundled mock, on one and on two Ray nodes.

Every Ray process these tests start is theirs and is stopped by PID: the
module's own ``ray.init`` (shut down after the module, before other test
modules fork workers from this process), the local Ray a CLI run starts
(the engine shuts it down; leftovers are killed by PID), and a two-node
cluster of ``ray start --block`` processes in their own process groups and
temp dirs. Token authentication (Ray >= 2.52) uses a throwaway token from the
environment, so nothing is read from or written to ``~/.ray``.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),  # a throwaway token for this module's clusters
}
# Before Ray is imported: it reads its auth mode once, at import. Harmless for tests that do not use Ray.
os.environ.update(RAY_ENV)

ray = pytest.importorskip("ray", reason="Ray not installed: pip install 'bench-loadtest[ray]'")

import bench  # noqa: E402
from bench.engine.workers import ray_engine  # noqa: E402
from bench.engine.errors import RunError  # noqa: E402
from bench.engine.workers.local import WorkerFailed  # noqa: E402
from bench.engine.plan.profile import EngineConfig  # noqa: E402
from bench.engine.workers.samples import IntervalReport  # noqa: E402
from procs import alive, cmdline, descendants, first_status_line, wait_until  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# --------------------------------------------------------------------------- helpers












def kill_pids(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_profile(path: Path, **load) -> Path:
    data = {
        "name": "ray-test",
        "mock": {"latency": {"model": "fixed", "delay": "20ms"}},
        "load": {"workers": 2, **load},
        "sla": {"p95": "100ms", "error_rate": "1%"},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def bench_cmd(profile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bench", "run", str(profile), *args]


def run_env() -> dict[str, str]:
    return {**os.environ, **RAY_ENV, "COLUMNS": "100"}


@pytest.fixture(scope="module")
def ray_session():
    """One small Ray for this module's in-process runs (2 CPUs: one worker actor each).

    Module-scoped rather than session-scoped on purpose: only this module
    uses it, and shutting it down here means the test modules after it do
    not fork worker processes from a process full of Ray's threads.
    """
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 << 20)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def reaper():
    """PIDs a test started; whatever of them is still alive at the end is SIGKILLed, even when the test fails."""
    started: list[int] = []
    yield started
    kill_pids(started)


@pytest.fixture
def recorded(monkeypatch):
    """Every RayEngine the runner makes, and the time each event came out of poll()."""
    seen: dict = {"engines": [], "events": []}
    begin, poll = ray_engine.RayEngine.begin, ray_engine.RayEngine.poll

    def recording_begin(self):
        seen["engines"].append(self)
        return begin(self)

    def recording_poll(self, timeout):
        events = poll(self, timeout)
        now = time.monotonic()
        seen["events"].extend((now, e) for e in events)
        return events

    monkeypatch.setattr(ray_engine.RayEngine, "begin", recording_begin)
    monkeypatch.setattr(ray_engine.RayEngine, "poll", recording_poll)
    return seen


# --------------------------------------------------------------------------- pure parts


def test_version_mismatch_is_refused_with_each_node_named():
    driver = {"bench": "0.1.0", "ray": "2.60.0", "python": "3.11.9"}
    ok = {"ip": "10.0.0.1", "node_id": "a" * 56, "versions": {"bench": "0.1.0", "ray": "2.60.0", "python": "3.11.4"}}
    ray_engine.check_versions(driver, [ok])  # a different Python patch release is fine
    old_ray = {"ip": "10.0.0.2", "node_id": "b" * 56, "versions": {"bench": "0.1.0", "ray": "2.9.3", "python": "3.11.9"}}
    py310 = {"ip": "10.0.0.3", "node_id": "c" * 56, "versions": {"bench": "0.1.0", "ray": "2.60.0", "python": "3.10.12"}}
    with pytest.raises(RunError) as info:
        ray_engine.check_versions(driver, [ok, old_ray, py310])
    text = str(info.value)
    assert "version mismatch" in text and "Ray 2.60.0" in text
    assert "10.0.0.2" in text and "Ray 2.9.3" in text and "10.0.0.3" in text and "Python 3.10.12" in text
    assert "10.0.0.1" not in text


def test_clock_offset_uses_the_fastest_round_trip():
    # Remote clock 300 ms ahead; the second round trip (2 ms) is the one to trust.
    samples = [(0, 300_000_000 + 40_000_000, 50_000_000), (100_000_000, 301_000_000 + 100_000_000, 102_000_000)]
    offset_ms, uncertainty_ms = ray_engine.estimate_offset(samples)
    assert offset_ms == pytest.approx(300.0) and uncertainty_ms == pytest.approx(1.0)


def test_csv_and_a_loopback_target_are_refused_when_workers_are_on_other_machines(tmp_path):
    profile = bench.load_profile(write_profile(tmp_path / "p.yaml", rate="10/s", duration="1s"), {"engine": "ray"})
    from bench.engine.workers.worker import WorkerSpec

    specs = [WorkerSpec(i, 2, profile, "http://127.0.0.1:9/", 0.25, str(tmp_path / f"w{i}.csv")) for i in range(2)]
    engine = ray_engine.RayEngine(specs, EngineConfig("ray"))
    here = {"ip": "10.0.0.1", "pid": 1, "node_id": "a", "host": "h", "csv_dir_visible": True}
    away = {"ip": "10.0.0.2", "pid": 2, "node_id": "b", "host": "g", "csv_dir_visible": False}
    with pytest.raises(RunError, match=r"output.csv needs the workers to share the driver's filesystem.*worker\(s\) 1.*10.0.0.2"):
        engine._check_reachability([here, away])
    with pytest.raises(RunError, match=r"loopback address.*bundled mock server only listens on this machine"):
        engine._check_reachability([here, {**away, "csv_dir_visible": True}])


def test_a_wrong_cluster_address_fails_in_seconds_not_minutes():
    t0 = time.monotonic()
    with pytest.raises(RunError, match=r"no Ray cluster answers at 127\.0\.0\.1:\d+"):
        ray_engine._check_gcs_reachable(f"127.0.0.1:{free_port()}")
    assert time.monotonic() - t0 < 6
    with pytest.raises(RunError, match="expected auto, local or HOST:PORT"):
        ray_engine._check_gcs_reachable("head-node")


# --------------------------------------------------------------------------- in-process runs


def test_two_ray_workers_match_a_local_run(tmp_path, ray_session, recorded):
    profile_path = write_profile(tmp_path / "p.yaml", rate="200/s", duration="3s")

    def local_run() -> dict:
        out = tmp_path / "local.json"
        done = subprocess.run(bench_cmd(profile_path, "--json", str(out), "-q"), capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(out.read_text())

    def ray_run() -> tuple[dict, dict[int, int]]:
        recorded["events"].clear()
        result = bench.run(bench.load_profile(profile_path, {"engine": "ray", "json": str(tmp_path / "ray.json")}))
        assert result.status == "completed", result.messages
        per_worker = {0: 0, 1: 0}
        for _, event in recorded["events"]:
            assert isinstance(event, IntervalReport)
            if event.measured is not None:
                per_worker[event.worker] += event.measured.ok
        return result.report, per_worker

    # One retry: on a shared 2-core machine another job's burst can shift one run's p50 by a few ms.
    for attempt in (1, 2):
        local_report = local_run()
        report, per_worker = ray_run()
        if abs(report["latency"]["p50"] - local_report["latency"]["p50"]) <= 2.0:
            break
    print(
        f"\nlocal p50 {local_report['latency']['p50']:.2f} ms p99 {local_report['latency']['p99']:.2f} ms {local_report['rps']:.1f} req/s; "
        f"ray p50 {report['latency']['p50']:.2f} ms p99 {report['latency']['p99']:.2f} ms {report['rps']:.1f} req/s (attempt {attempt})"
    )
    assert report["engine"]["name"] == "ray" and [w["index"] for w in report["engine"]["workers"]] == [0, 1]
    assert json.loads((tmp_path / "ray.json").read_text())["engine"]["workers"][0]["pid"] == report["engine"]["workers"][0]["pid"]

    # The merged counts are the sum of what each worker reported, and the whole plan was sent.
    assert per_worker[0] > 0 and per_worker[1] > 0
    assert sum(per_worker.values()) == report["requests"]["ok"] == report["requests"]["sent"] == 600
    assert local_report["requests"]["sent"] == 600

    # Same mock, same plan: the same latency, and the same verdict.
    assert abs(report["latency"]["p50"] - local_report["latency"]["p50"]) <= 2.0, (report["latency"], local_report["latency"])
    assert report["sla"]["passed"] == local_report["sla"]["passed"] is True, (report["sla"], local_report["sla"])


def test_a_replayed_trace_keeps_every_lines_time_on_ray_workers(tmp_path, ray_session):
    # Each actor is sent only its own lines (replay.for_worker); together they send each line once, at its time.
    times = [i * 10.0 for i in range(40)] + [500.0] * 20 + [700.0 + i * 5 for i in range(40)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"timestamp_ms": t, "path": f"/r/{n}"}) + "\n" for n, t in enumerate(times)))
    profile_path = tmp_path / "p.yaml"
    profile_path.write_text(yaml.safe_dump({"mock": {"latency": {"model": "fixed", "delay": "2ms"}}, "load": {"replay": "t.jsonl", "speed": 2, "workers": 2}}))
    rows_path = tmp_path / "rows.csv"
    result = bench.run(bench.load_profile(profile_path, {"engine": "ray", "csv": str(rows_path)}))
    assert result.status == "completed", result.messages
    assert (result.summary["requests"]["sent"], result.summary["requests"]["ok"]) == (100, 100)
    rows = list(csv.DictReader(rows_path.open()))
    assert sorted(int(r["kind"].removeprefix("line:")) for r in rows) == list(range(1, 101))
    assert {r["worker"] for r in rows} == {"0", "1"}
    for r in rows:
        assert abs(float(r["intended_ms"]) - times[int(r["kind"].removeprefix("line:")) - 1] / 2) < 0.002, r


def test_a_version_mismatch_refuses_the_run_and_leaves_nothing(tmp_path, ray_session, monkeypatch):
    # (Before the killed-actor test: after an actor was SIGKILLed, the next run in the same Ray session timed out
    # creating its placement group on a 2-core machine, with this code and the code before it; see the issue notes.)
    # The actors report their real versions; the driver pretends to be another bench.
    real = ray_engine.versions()
    monkeypatch.setattr(ray_engine, "versions", lambda: {**real, "bench": "9.9.9"})
    profile = bench.load_profile(write_profile(tmp_path / "p.yaml", rate="10/s", duration="1s"), {"engine": "ray"})
    with pytest.raises(RunError, match=rf"version mismatch .*bench 9\.9\.9.*: node .*bench {real['bench']}"):
        bench.run(profile)
    assert wait_until(lambda: ray.available_resources().get("CPU") == 2.0, 10), ray.available_resources()


def test_a_killed_actor_stops_the_run_within_a_second(tmp_path, ray_session, recorded):
    profile = bench.load_profile(write_profile(tmp_path / "p.yaml", rate="100/s", duration="30s"), {"engine": "ray"})
    killed: dict = {}

    def on_progress(snapshot):
        if not killed and snapshot.completed >= 30:
            engine = recorded["engines"][0]
            killed["pids"] = [w["pid"] for w in engine.describe()]
            killed["at"] = time.monotonic()
            os.kill(killed["pids"][0], signal.SIGKILL)

    result = bench.run(profile, on_progress=on_progress)
    returned = time.monotonic()
    assert killed, "the run never got going"
    failures = [(t, e) for t, e in recorded["events"] if isinstance(e, WorkerFailed)]
    assert len(failures) == 1 and failures[0][1].index == 0
    assert failures[0][0] - killed["at"] < 1.0, "the death was noticed late"
    print(f"\nkilled actor noticed after {(failures[0][0] - killed['at']) * 1e3:.0f} ms; run returned after {(returned - killed['at']):.2f} s")
    assert returned - killed["at"] < 6.0  # then the other worker drains and sends its final report
    pid = killed["pids"][0]
    assert any("worker 0 on node" in m and f"(pid {pid}) died" in m for m in result.messages), result.messages
    assert result.status == "crashed"
    assert result.report["complete"] is False and result.report["status"] == "crashed"
    assert 0 < result.report["requests"]["sent"] < 3000
    # Nothing is left: both actor processes are gone, and the placement group gave its CPUs back.
    assert wait_until(lambda: not any(alive(p) for p in killed["pids"]), 10), killed["pids"]
    assert wait_until(lambda: ray.available_resources().get("CPU") == 2.0, 10), ray.available_resources()


# --------------------------------------------------------------------------- the CLI, with its own local Ray


def test_cli_exits_3_when_an_actor_is_killed(tmp_path, reaper):
    profile = write_profile(tmp_path / "p.yaml", rate="100/s", duration="30s")
    proc = subprocess.Popen(
        bench_cmd(profile, "--engine", "ray", "--ray-address", "local", "--json", str(tmp_path / "report.json")),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(),
    )
    reaper.append(proc.pid)
    tree: set[int] = set()

    def actors() -> list[int]:
        found = descendants(proc.pid)
        tree.update(found)
        reaper.extend(p for p in found if p not in reaper)
        return [p for p in found if "WorkerActor" in cmdline(p)]

    try:
        assert wait_until(lambda: len(actors()) >= 2, 60, step=0.2), "the worker actors did not start"
        line = first_status_line(proc.stdout)  # the run has started
        assert "[bench]" in line, line
        time.sleep(0.5)
        victim = sorted(actors())[0]
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:  # a failed assertion: record the whole tree for the reaper, then stop the run
            actors()
            proc.kill()
    assert proc.returncode == 3, stdout[-2000:] + stderr[-3000:]
    assert elapsed < 20  # the crash is noticed at once; then draining and Ray's shutdown
    assert f"(pid {victim}) died" in stdout + stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "crashed" and report["complete"] is False
    assert victim in [w["pid"] for w in report["engine"]["workers"]]
    # The engine started this Ray, so it shut it down: no actor, raylet or GCS process of it is left.
    assert wait_until(lambda: not any(alive(p) for p in tree), 15), [cmdline(p)[:80] for p in tree if alive(p)]


# --------------------------------------------------------------------------- two Ray nodes on this machine


class RayNode:
    """``ray start --block`` in its own process group and temp dir; stopped by PID."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.temp = tempfile.mkdtemp(prefix="bench-ray-")  # short: Ray's unix socket paths must fit in 107 bytes
        self.log = Path(self.temp) / "start.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ray.scripts.scripts", "start", *args, "--temp-dir", self.temp, "--block", "--disable-usage-stats"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.pids: set[int] = {self.proc.pid}

    def wait_started(self, timeout: float = 60) -> None:
        def started() -> bool:
            self.pids.update(descendants(self.proc.pid))
            return "Ray runtime started" in self.log.read_text() or self.proc.poll() is not None

        wait_until(started, timeout, step=0.2)
        assert self.proc.poll() is None and "Ray runtime started" in self.log.read_text(), self.log.read_text()[-3000:]

    def stop(self) -> None:
        self.pids.update(descendants(self.proc.pid))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # ray start --block stops its own processes on SIGTERM
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        kill_pids(p for p in self.pids if alive(p))
        self.proc.wait(5)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture
def two_nodes():
    """A head (1 CPU, custom resource ``benchnode``) and a second node (1 CPU), as separate raylets on this machine."""
    env = {**os.environ, **RAY_ENV}
    nodes: list[RayNode] = []
    try:
        for attempt in range(3):  # Ray picks some ports itself; another process may take one first: retry
            port = free_port()
            head = RayNode(
                [
                    "--head", "--port", str(port), "--num-cpus", "1", "--resources", '{"benchnode": 1}',
                    "--include-dashboard=false", "--dashboard-port", str(free_port()),
                    "--dashboard-agent-listen-port", str(free_port()), "--object-store-memory", str(100 << 20),
                ],
                env,
            )
            nodes.append(head)
            try:
                head.wait_started()
                break
            except AssertionError:
                if attempt == 2:
                    raise
                head.stop()
                nodes.remove(head)
        second = RayNode(
            [
                "--address", f"127.0.0.1:{port}", "--num-cpus", "1",
                "--dashboard-agent-listen-port", str(free_port()), "--object-store-memory", str(100 << 20),
            ],
            env,
        )
        nodes.append(second)
        second.wait_started()
        yield f"127.0.0.1:{port}"
    finally:
        for node in reversed(nodes):
            node.stop()
        leftovers = [p for node in nodes for p in node.pids if alive(p)]
        assert not leftovers, [cmdline(p)[:100] for p in leftovers]


PROBE = """
import json, sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
deadline = time.monotonic() + 60
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
    time.sleep(0.2)
print(json.dumps({n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}))
"""


def test_workers_spread_over_two_ray_nodes(tmp_path, two_nodes):
    probe = subprocess.run([sys.executable, "-c", PROBE, two_nodes], capture_output=True, text=True, timeout=90, env=run_env())
    assert probe.returncode == 0, probe.stderr[-3000:]
    nodes = json.loads(probe.stdout.strip().splitlines()[-1])
    assert len(nodes) == 2, nodes
    head = next(node for node, resources in nodes.items() if resources.get("benchnode"))

    profile = write_profile(tmp_path / "p.yaml", rate="100/s", duration="2s")
    spread = subprocess.run(
        bench_cmd(profile, "--engine", "ray", "--ray-address", two_nodes, "--json", str(tmp_path / "spread.json"), "-q"),
        capture_output=True, text=True, timeout=120, env=run_env(), cwd=tmp_path,
    )
    assert spread.returncode == 0, spread.stdout[-2000:] + spread.stderr[-3000:]
    report = json.loads((tmp_path / "spread.json").read_text())
    assert report["status"] == "completed" and report["requests"]["sent"] == 200
    workers = report["engine"]["workers"]
    assert {w["node_id"] for w in workers} == set(nodes), workers  # one worker on each node

    # engine.resource: the worker goes where that resource is (here: only the head has it).
    pinned_profile = tmp_path / "pinned.yaml"
    data = yaml.safe_load(profile.read_text())
    data["engine"] = {"kind": "ray", "address": two_nodes, "resource": "benchnode"}
    data["load"]["workers"] = 1
    pinned_profile.write_text(yaml.safe_dump(data))
    pinned = subprocess.run(
        bench_cmd(pinned_profile, "--json", str(tmp_path / "pinned.json"), "-q"),
        capture_output=True, text=True, timeout=120, env=run_env(), cwd=tmp_path,
    )
    assert pinned.returncode == 0, pinned.stdout[-2000:] + pinned.stderr[-3000:]
    assert [w["node_id"] for w in json.loads((tmp_path / "pinned.json").read_text())["engine"]["workers"]] == [head]

"""Trace replay (``load.replay``): every line sent once, at its own time, with its own request.

The runs are real: worker processes against the bundled mock, or against a
small recording HTTP server on 127.0.0.1 that keeps what it received. The
per-request CSV names each request's trace line (``kind`` = ``line:N``), so
every intended send time is checked against that line's ``timestamp_ms``
exactly; how late requests actually left is bounded loosely (it depends on
the machine), but a replay that ignored the trace's times could not pass.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

import bench
from bench.engine.errors import ProfileError

pytestmark = pytest.mark.slow


def trace_times() -> list[float]:
    """100 timestamps over 1.2 s, deliberately out of order in the file: a steady part, two bursts, a pause."""
    times = [i * 20.0 for i in range(30)]  # 0-580 ms: 50/s
    times += [600.0] * 25  # a burst of 25 in one millisecond
    times += [900.0 + i * 7.5 for i in range(30)]  # after a 300 ms pause: 133/s
    times += [1200.0] * 15  # a last burst
    return times[::-1]  # the file need not be sorted


def write_trace(path: Path, lines: list[dict]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def write_profile(tmp_path: Path, load: dict, **sections) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"name": "replay-test", "load": load, **sections}, sort_keys=False))
    return path


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------- timing


@pytest.mark.parametrize(
    "transport, speed, workers",
    [("aiohttp", 1, 1), ("aiohttp", 2, 2), ("fast", 1, 2), ("fast", 2, 1), ("h2", 1, 2), ("h2", 2, 2)],
)
def test_every_line_is_sent_once_at_its_own_time(tmp_path: Path, transport: str, speed: float, workers: int) -> None:
    times = trace_times()
    write_trace(tmp_path / "trace.jsonl", [{"timestamp_ms": t, "path": f"/item/{n}"} for n, t in enumerate(times)])
    out = tmp_path / "rows.csv"
    profile = bench.load_profile(
        write_profile(
            tmp_path,
            {"replay": "trace.jsonl", "speed": speed, "workers": workers},
            target={"timeout": "5s"},
            mock={"latency": {"model": "fixed", "delay": "2ms"}},
            client={"transport": transport},
            output={"csv": str(out)},
        )
    )
    result = bench.run(profile)

    req = result.summary["requests"]
    assert (req["sent"], req["ok"], req["client_errors"], req["unfinished"]) == (100, 100, 0, 0)
    rows = csv_rows(out)
    assert len(rows) == 100
    lines = sorted(int(r["kind"].removeprefix("line:")) for r in rows)
    assert lines == list(range(1, 101))  # each line exactly once
    lags = []
    for r in rows:
        due_ms = times[int(r["kind"].removeprefix("line:")) - 1] / speed
        assert abs(float(r["intended_ms"]) - due_ms) < 0.002, r  # the trace's time, exactly (CSV has 3 decimals)
        lags.append(float(r["sent_ms"]) - float(r["intended_ms"]))
    assert min(lags) >= 0  # never early
    assert quantile(lags, 0.5) < 5.0 and quantile(lags, 0.99) < 50.0, sorted(lags)[-5:]  # loose: not a speed test
    # Worker i of W took the sorted trace's lines i, i+W, ... (rows are written as requests end, so compare sets).
    order = sorted(range(100), key=lambda k: (times[k], k))  # file order for ties
    for w in range(workers):
        mine = sorted(int(r["kind"].removeprefix("line:")) - 1 for r in rows if r["worker"] == str(w))
        assert mine == sorted(order[w::workers])
    replay = result.report["profile"]["load"]["replay"]
    assert (replay["lines"], replay["span_s"], replay["speed"], replay["scheduled_s"]) == (100, 1.2, speed, 1.2 / speed)
    assert result.report["profile"]["load"]["rate_per_s"] is None
    gen = result.summary["generator"]
    assert gen["requested_rps"] == pytest.approx(99 / (1.2 / speed), rel=1e-6)  # the trace's own schedule
    assert gen["rate_ratio"] > 0.5


# --------------------------------------------------------------------------- what reaches the server


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list[tuple[str, str, dict[str, str], bytes]] = []
    lock = threading.Lock()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.lock:
            self.received.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        answer = b'{"ok": true, "choices": [{"message": {"content": "hi"}}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    Recorder.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", Recorder.received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.parametrize("transport", ["aiohttp", "fast"])
def test_each_lines_path_method_headers_and_body_reach_the_server(tmp_path: Path, server, transport: str) -> None:
    url, received = server
    lines = [
        {"timestamp_ms": 0, "path": "/users/{{user}}/cart", "user": "ann b", "n": 1, "method": "get"},
        {"timestamp_ms": 30, "method": "POST", "path": "/orders", "body": {"sku": 7, "qty": 2}},
        {"timestamp_ms": 10, "method": "PUT", "path": "/notes/1", "body": "plain text", "headers": {"Content-Type": "text/plain", "X-Base": "line"}},
        {"timestamp_ms": 20, "method": "DELETE", "path": "/carts/{{cart}}?force=1", "cart": 42, "user": "dee", "n": 2},
        {"timestamp_ms": 40, "user": "bob", "n": 3},  # no path, no body: the target's URL and body template
        {"timestamp_ms": 50, "method": "PATCH", "path": "/p", "user": "cy", "n": 4.5},
    ]
    write_trace(tmp_path / "t.jsonl", lines)
    profile = bench.load_profile(
        write_profile(
            tmp_path,
            {"replay": "t.jsonl", "workers": 2},
            target={"url": f"{url}/api/{{{{user}}}}", "method": "POST", "headers": {"X-Base": "target"}, "body": {"who": "{{user}}", "n": "{{n}}"}},
            client={"transport": transport},
        )
    )
    result = bench.run(profile)
    assert result.summary["requests"]["ok"] == 6
    got = sorted(received, key=lambda r: r[1])
    by_path = {path: (method, headers, body) for method, path, headers, body in got}
    assert len(received) == 6 and len(by_path) == 6
    assert by_path["/users/ann%20b/cart"][0] == "GET"
    method, headers, body = by_path["/orders"]
    assert (method, json.loads(body), headers["content-type"], headers["x-base"]) == ("POST", {"sku": 7, "qty": 2}, "application/json", "target")
    method, headers, body = by_path["/notes/1"]
    assert (method, body, headers["content-type"], headers["x-base"]) == ("PUT", b"plain text", "text/plain", "line")
    assert by_path["/carts/42?force=1"][0] == "DELETE"
    method, headers, body = by_path["/api/bob"]  # the target URL's placeholder and its body template, typed
    assert (method, json.loads(body)) == ("POST", {"who": "bob", "n": 3})
    method, headers, body = by_path["/p"]
    assert (method, json.loads(body)) == ("PATCH", {"who": "cy", "n": 4.5})


def test_openai_chat_lines_fill_the_preset_body(tmp_path: Path, server) -> None:
    url, received = server
    lines = [
        {"timestamp_ms": 0, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5},
        {"timestamp_ms": 5, "prompt": "tell me", "model": "other-model"},
    ]
    write_trace(tmp_path / "chat.jsonl", lines)
    profile = bench.load_profile(
        write_profile(tmp_path, {"replay": "chat.jsonl", "workers": 1}, target={"url": url, "api": "openai-chat", "max_tokens": 9})
    )
    assert bench.run(profile).summary["requests"]["ok"] == 2
    assert [(m, p) for m, p, _, _ in received] == [("POST", "/v1/chat/completions")] * 2
    # Two connections: the line due 5 ms later can reach the server first, so match bodies by content, not order.
    bodies = sorted((json.loads(b) for _, _, _, b in received), key=lambda body: body["messages"][0]["content"])
    assert bodies[0] == {"model": "demo-model", "max_tokens": 5, "stream": False, "messages": [{"role": "user", "content": "hello"}]}
    assert bodies[1] == {"model": "other-model", "max_tokens": 9, "stream": False, "messages": [{"role": "user", "content": "tell me"}]}


# --------------------------------------------------------------------------- validation


GOOD = '{"timestamp_ms": 0, "path": "/a"}\n'


@pytest.mark.parametrize(
    "trace, load, expected",
    [
        (None, {}, "profile.yaml: load.replay: file not found"),
        ("", {}, "t.jsonl: the trace has no lines"),
        ("\n\n", {}, "t.jsonl: the trace has no lines"),
        (GOOD + "[1, 2]\n", {}, "t.jsonl:2: expected a JSON object"),
        (GOOD + "{nope\n", {}, "t.jsonl:2: not valid JSON"),
        (GOOD + '{"path": "/b"}\n', {}, "t.jsonl:2: timestamp_ms: missing"),
        (GOOD + GOOD + '{"timestamp_ms": -1}\n', {}, "t.jsonl:3: timestamp_ms: expected a number of milliseconds >= 0, got -1"),
        (GOOD + '{"timestamp_ms": "5"}\n', {}, "t.jsonl:2: timestamp_ms: expected a number"),
        (GOOD + '{"timestamp_ms": true}\n', {}, "t.jsonl:2: timestamp_ms: expected a number"),
        (GOOD + '{"timestamp_ms": 1733500000000}\n', {}, "t.jsonl:2: timestamp_ms: 1733500000000 ms is more than a week after the start"),
        (GOOD + '{"timestamp_ms": 1e300}\n', {}, "t.jsonl:2: timestamp_ms: 1e+300 ms is more than a week"),
        (GOOD + '{"timestamp_ms": 1, "method": "FETCH"}\n', {}, "t.jsonl:2: method: expected one of GET"),
        (GOOD + '{"timestamp_ms": 1, "path": "b"}\n', {}, "t.jsonl:2: path: a path starts with '/'"),
        (GOOD + '{"timestamp_ms": 1, "path": "/u/{{id}}"}\n', {}, "t.jsonl:2: id: the line has no field 'id' to fill {{id}}"),
        (GOOD + '{"timestamp_ms": 1, "headers": ["X: y"]}\n', {}, "t.jsonl:2: headers: expected a mapping"),
        (GOOD + '{"timestamp_ms": 1, "body": 5}\n', {}, "t.jsonl:2: body: expected a mapping or list"),
        (GOOD, {"speed": 0}, "profile.yaml: load.speed: expected a number > 0"),
        (GOOD, {"speed": -2}, "profile.yaml: load.speed: expected a number > 0"),
        (GOOD, {"speed": "fast"}, "profile.yaml: load.speed: expected a number > 0"),
        (GOOD + '{"timestamp_ms": 86400000}\n', {"speed": 0.01}, "profile.yaml: load.speed: at speed 0.01 the trace would take 100 days"),
        (GOOD, {"rate": "10/s"}, "profile.yaml: load.rate: load.replay sends each line of the trace at its own time"),
        (GOOD, {"concurrency": 2}, "profile.yaml: load.concurrency: load.replay sends"),
        (GOOD, {"duration": "5s"}, "profile.yaml: load.duration: load.replay sends"),
        (GOOD, {"requests": 5}, "profile.yaml: load.requests: load.replay sends"),
        (GOOD, {"warmup": 5}, "profile.yaml: load.warmup: load.replay sends"),
        (GOOD, {"arrival": "poisson"}, "profile.yaml: load.arrival: load.replay sends"),
        (GOOD, {"stages": [{"duration": "1s", "rate": 5}]}, "profile.yaml: load.stages: load.replay sends"),
        (GOOD, {"workers": 2}, "profile.yaml: load.workers: 2 workers cannot share a trace of 1 line(s)"),
    ],
)
def test_a_bad_trace_or_combination_names_file_line_and_field(tmp_path: Path, trace: str | None, load: dict, expected: str) -> None:
    if trace is not None:
        (tmp_path / "t.jsonl").write_text(trace)
    path = write_profile(tmp_path, {"replay": "t.jsonl", **load})
    with pytest.raises(ProfileError) as caught:
        bench.load_profile(path)
    assert str(caught.value).startswith(str(tmp_path / expected.split(":")[0])), str(caught.value)
    assert expected.split(":", 1)[1] in str(caught.value)


def test_bench_validate_exits_2_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text(GOOD * 3 + '{"timestamp_ms": 4, "method": "GRAB"}\n')
    path = write_profile(tmp_path, {"replay": "t.jsonl"})
    done = subprocess.run([sys.executable, "-m", "bench", "validate", str(path)], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 2
    assert f"{tmp_path / 't.jsonl'}:4: method: expected one of" in done.stdout + done.stderr
    (tmp_path / "t.jsonl").write_text(GOOD * 3)
    done = subprocess.run([sys.executable, "-m", "bench", "validate", str(path)], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 0 and "replay t.jsonl (3 lines" in done.stdout


def test_replay_refuses_data_and_request_kinds_and_speed_needs_replay(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text(GOOD)
    with pytest.raises(ProfileError, match="data: load.replay builds every request"):
        bench.load_profile(write_profile(tmp_path, {"replay": "t.jsonl"}, data={"file": "t.jsonl"}))
    with pytest.raises(ProfileError, match="request_kinds: load.replay builds"):
        bench.load_profile(write_profile(tmp_path, {"replay": "t.jsonl"}, request_kinds=[{"name": "a", "path": "/a"}]))
    with pytest.raises(ProfileError, match="load.speed: speed sets the pace of load.replay"):
        bench.load_profile(write_profile(tmp_path, {"rate": "5/s", "requests": 5, "speed": 2}))
    (tmp_path / "h.jsonl").write_text(GOOD + '{"timestamp_ms": 1, "method": "head"}\n')
    with pytest.raises(ProfileError, match=r"h.jsonl:2: method: HEAD with target.method GET: the fast transport cannot mix"):
        bench.load_profile(write_profile(tmp_path, {"replay": "h.jsonl"}, client={"transport": "fast"}))
    assert bench.load_profile(write_profile(tmp_path, {"replay": "h.jsonl"}, client={"transport": "h2"})).load.replay.count == 2
    with pytest.raises(ProfileError, match="--rate: load.replay sends"):
        bench.load_profile(write_profile(tmp_path, {"replay": "t.jsonl"}), {"rate": "10/s"})


def test_the_bundled_replay_profile_is_valid() -> None:
    profile = bench.load_profile(Path(__file__).parent.parent / "profiles" / "replay.yaml")
    replay = profile.load.replay
    assert (replay.count, replay.first_ms, replay.last_ms, replay.speed) == (280, 0.0, 5000.0, 1.0)
    assert [line.timestamp_ms for line in replay.lines] == sorted(line.timestamp_ms for line in replay.lines)


def test_each_ray_actor_is_sent_only_its_own_lines(tmp_path: Path) -> None:
    # The Ray engine pickles a WorkerSpec per actor: for_worker cuts the trace to the worker's share first.
    import pickle

    from bench.engine.plan.replay import for_worker, offsets, worker_lines

    write_trace(tmp_path / "t.jsonl", [{"timestamp_ms": t, "path": "/x", "pad": "y" * 100} for t in trace_times()])
    profile = bench.load_profile(write_profile(tmp_path, {"replay": "t.jsonl", "workers": 2}))
    whole = profile.load.replay
    for index in (0, 1):
        part = for_worker(profile, index, 2)
        assert part.load.replay.lines == whole.lines[index::2] and part.load.replay.count == 100
        assert list(worker_lines(part.load.replay, index, 2)) == list(worker_lines(whole, index, 2))
        assert list(offsets(part.load.replay, index, 2)) == list(offsets(whole, index, 2))
        assert len(pickle.dumps(part)) < 0.6 * len(pickle.dumps(profile))
        with pytest.raises(ValueError):
            worker_lines(part.load.replay, 1 - index, 2)


@pytest.mark.slow
def test_ctrl_c_in_a_quiet_stretch_of_the_trace_stops_at_once(tmp_path: Path) -> None:
    """Lines at 5 ms and 20 s, Ctrl-C to the process group at 2 s: the run ends within seconds, not at 20 s."""
    import signal
    import time

    write_trace(tmp_path / "gap.jsonl", [{"timestamp_ms": 5, "path": "/a"}, {"timestamp_ms": 20000, "path": "/b"}])
    path = write_profile(tmp_path, {"replay": "gap.jsonl"}, mock={"latency": {"model": "fixed", "delay": "1ms"}}, output={"json": str(tmp_path / "r.json")})
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(path), "-q"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        time.sleep(2)
        interrupted = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and took < 8, took
    requests = json.loads((tmp_path / "r.json").read_text())["requests"]
    assert requests["sent"] == requests["ok"] == 1 and requests["due_but_not_sent"] == 0  # the 20 s line was never due

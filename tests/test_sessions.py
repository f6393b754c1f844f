"""Sessions end to end: real workers, a real server on 127.0.0.1 that hands out tokens and cookies and checks them.

The server in this file logs a user in (a token in the JSON body, a cookie,
a Location header), serves the user's page, and accepts a cart only with the
token and the cookie of the same login: so a passing session proves that
captures from JSON, headers and a regex, and the cookie jar, all worked.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import yaml

import bench
from bench.engine.errors import ProfileError

pytestmark = pytest.mark.slow


class FlowServer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    logins: dict[str, str]  # token -> session cookie
    seen: list[tuple[str, str, str, str]]  # method, path, authorization, cookie
    counter: itertools.count
    lock: threading.Lock

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth, cookie = self.headers.get("Authorization", ""), self.headers.get("Cookie", "")
        with self.lock:
            self.seen.append((self.command, self.path, auth, cookie))
        if self.command == "POST" and self.path == "/login":
            user = json.loads(body)["user"]
            n = next(self.counter)
            token, sid = f"t-{user}-{n}", f"s{n}"
            with self.lock:
                self.logins[token] = sid
            headers = {"Set-Cookie": f"sid={sid}; Path=/", "Location": f"/users/{n}", "Content-Type": "application/json"}
            return self._reply(200, json.dumps({"token": token, "id": n}).encode(), headers)
        if self.command == "GET" and self.path.startswith("/users/"):
            return self._reply(200, f"id={self.path.rsplit('/', 1)[1]};ok".encode())
        if self.command == "POST" and self.path == "/cart":
            token = auth.removeprefix("Bearer ")
            if self.logins.get(token) is None or f"sid={self.logins[token]}" != cookie:
                return self._reply(401, b'{"error": "who are you"}')
            return self._reply(200, json.dumps({"cart": "c" + token, "uid": json.loads(body)["uid"]}).encode())
        self._reply(404, b"{}")

    do_GET = do_POST = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flow() -> Iterator[tuple[str, type]]:
    handler = type("Handler", (FlowServer,), {"logins": {}, "seen": [], "counter": itertools.count(1), "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


STEPS = [
    {"name": "login", "method": "POST", "path": "/login", "body": {"user": "{{user}}"},
     "capture": {"token": {"json_path": "token"}, "home": {"header": "Location"}}},
    {"name": "home", "path": "{{home}}", "capture": {"uid": {"regex": "id=(\\d+);"}}},
    {"name": "cart", "method": "POST", "path": "/cart", "headers": {"Authorization": "Bearer {{token}}"}, "body": {"uid": "{{uid}}"},
     "think": "150ms", "checks": {"json_path": "uid", "json_exists": True}},
]  # fmt: skip


def write(tmp_path: Path, data: dict) -> Path:
    (tmp_path / "users.csv").write_text("user\nada\nbob\ncyd\n")
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def profile(url: str, **load) -> dict:
    return {"target": {"url": url}, "session": STEPS, "data": {"file": "users.csv"}, "load": {"workers": 2, **load}, "sla": {"p95": "2s"}}


def test_captures_and_cookies_carry_each_user_through_the_session(tmp_path: Path, flow) -> None:
    url, server = flow
    result = bench.run(bench.load_profile(write(tmp_path, profile(url, concurrency=4, requests=20))))
    sessions = result.summary["sessions"]
    assert sessions["started"] == sessions["completed"] == 20 and sessions["failed"] == 0, sessions
    steps = result.summary["steps"]
    assert list(steps) == ["login", "home", "cart"]
    assert all(steps[name]["requests"]["sent"] == steps[name]["requests"]["ok"] == 20 for name in steps)
    assert result.summary["requests"]["sent"] == result.summary["requests"]["ok"] == 60
    carts = [entry for entry in server.seen if entry[1] == "/cart"]
    assert len(carts) == 20
    for _, _, auth, cookie in carts:  # every cart came with its own login's token and cookie
        token = auth.removeprefix("Bearer ")
        assert cookie == f"sid={server.logins[token]}", (auth, cookie)
    assert all(cookie == "" for method, path, _, cookie in server.seen if path == "/login")  # a new visitor has no cookie
    # Think time (150 ms before the cart) is in the session's duration, never in a step's latency.
    assert steps["cart"]["latency"]["p99"] < 150
    assert sessions["duration"]["p50"] >= 150
    assert result.passed


def test_a_capture_that_finds_nothing_fails_the_session_and_skips_the_rest(tmp_path: Path, flow) -> None:
    url, server = flow
    steps = [dict(STEPS[0]), {**STEPS[1], "capture": {"uid": {"regex": "nothing=(\\d+)"}}}, STEPS[2]]
    data = {**profile(url, concurrency=2, requests=10), "session": steps}
    result = bench.run(bench.load_profile(write(tmp_path, data)))
    sessions = result.summary["sessions"]
    assert sessions == {**sessions, "started": 10, "completed": 0, "failed": 10, "failures": {"capture": 10}, "skipped_steps": 10}
    assert "cart" not in result.summary["steps"] and not [e for e in server.seen if e[1] == "/cart"]
    req = result.summary["requests"]
    assert req["sent"] == 20 and req["ok"] == 10 and req["check_failures"] == 10  # the empty capture is that request's failure
    assert not result.passed  # the default error criterion sees it


def test_an_open_loop_starts_sessions_at_the_arrival_rate(tmp_path: Path, flow) -> None:
    url, server = flow
    data = profile(url, rate="20/s", duration="1s")
    data["sla"] = {"steps": {"login": {"p95": "1s"}, "cart": {"p99": "1ms"}}}
    result = bench.run(bench.load_profile(write(tmp_path, data)))
    sessions = result.summary["sessions"]
    assert sessions["started"] == 20 and sessions["completed"] == 20, sessions  # constant arrivals: 20/s for 1 s
    checks = {c.rule.label: c for c in result.verdict.checks}
    assert checks["login p95 <="].passed and not checks["cart p99 <="].passed  # criteria on one step's own figures
    assert result.report["sla"]["checks"][-1]["step"] == "cart"


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "100"}
    )


def test_the_summary_shows_sessions_and_each_step(tmp_path: Path, flow) -> None:
    url, _ = flow
    result = run_cli(tmp_path, "run", str(write(tmp_path, profile(url, concurrency=2, requests=6))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sessions  6 started, 6 completed" in result.stdout
    for name in ("login", "home", "cart"):
        assert f"  {name} " in result.stdout


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"session": [{"name": "a", "path": "/x/{{nope}}"}]}, "session[0].path", "uses {{nope}}"),
        ({"session": [{"name": "a", "path": "/x", "capture": {"v": {"json_path": "a", "header": "B"}}}]}, "session[0].capture.v.json_path", "exactly one"),
        ({"session": [{"name": "a", "path": "/x", "think": {"model": "uniform", "min": "2s", "max": "1s"}}]}, "session[0].think.max", "at least min"),
        ({"session": [{"name": "a"}, {"name": "a"}]}, "session[1].name", "unique"),
        ({"client": {"transport": "fast"}}, "client.transport", "aiohttp"),
        ({"sla": {"steps": {"logn": {"p95": "1s"}}}}, "sla.steps.logn", "did you mean 'login'"),
        ({"session": [{"name": "a", "path": "/x", "method": "POST", "body": {1: "x"}}]}, "session[0].body", "cannot encode as JSON"),
        ({"session": [{"name": "a", "path": "/x", "think": {"model": ["uniform"]}}]}, "session[0].think", "expected a duration, or a model"),
    ],
)
def test_a_bad_session_is_refused_naming_the_field(tmp_path: Path, change: dict, field: str, message: str) -> None:
    data = {**profile("http://127.0.0.1:9/", concurrency=2, requests=2), **change}
    with pytest.raises(ProfileError) as info:
        bench.load_profile(write(tmp_path, data))
    assert info.value.field == field and message in str(info.value), str(info.value)


def test_compare_shows_each_step_and_gates_on_it(tmp_path: Path, flow) -> None:
    url, _ = flow
    path = write(tmp_path, profile(url, concurrency=2, requests=6))
    for name in ("a.json", "b.json"):
        assert run_cli(tmp_path, "run", str(path), "--quiet", "--json", name).returncode == 0
    result = run_cli(tmp_path, "compare", "a.json", "b.json", "--fail-on-regression", "steps.cart.p95=1000%")
    assert result.returncode == 0, result.stdout + result.stderr
    for metric in ("steps.login.p95", "steps.home.p50", "steps.cart.error_rate"):
        assert metric in result.stdout
    tight = run_cli(tmp_path, "compare", "a.json", "b.json", "--fail-on-regression", "steps.nope.p95=10%")
    assert tight.returncode == 1 and "steps.nope.p95: cannot judge" in tight.stderr


def test_the_shipped_session_runs_against_the_mocks_flow_endpoints(tmp_path: Path) -> None:
    # The mock's cart needs the token AND the cookie of the same login (401 / 403 otherwise), and the
    # second add checks the item count: every session completing means captures and cookies worked there too.
    profile_path = Path(__file__).resolve().parent.parent / "profiles" / "session.yaml"
    result = run_cli(tmp_path, "run", str(profile_path), "--requests", "12", "--quiet", "--json", "s.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["sessions"]["completed"] == report["sessions"]["started"] == 12
    assert report["status_codes"] == {"200": 36, "201": 24}
    assert list(report["steps"]) == ["login", "profile", "cart", "add", "add-again"]


def counts_add_up(sessions: dict) -> None:
    assert sessions["started"] == sessions["completed"] + sessions["failed"] + sessions["unfinished"], sessions


@pytest.mark.slow
def test_ctrl_c_during_a_think_pause_counts_the_session_as_unfinished(tmp_path: Path) -> None:
    """A user cancelled while thinking (a 6 s pause, Ctrl-C to the process group at 2 s) is still accounted for."""
    import signal
    import time

    data = {
        "name": "think-drain",
        "mock": {"latency": {"model": "fixed", "delay": "1ms"}, "flow": True},
        "session": [{"name": "first", "path": "/flow/stats"}, {"name": "later", "path": "/flow/stats", "think": "6s"}],
        "load": {"concurrency": 3, "duration": "30s", "workers": 1},
        "output": {"json": str(tmp_path / "r.json")},
    }
    path = write(tmp_path, data)
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(path), "-q"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        time.sleep(2.5)
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    sessions = json.loads((tmp_path / "r.json").read_text())["sessions"]
    assert sessions["started"] == 3 and sessions["unfinished"] == 3, sessions
    counts_add_up(sessions)


def test_an_unexpected_error_in_a_step_fails_its_session_as_other_and_the_users_go_on(tmp_path: Path, monkeypatch) -> None:
    """Workers are forked from this process, so a step that raises here raises in them: every session fails, none vanishes."""
    from bench.sessions import runner

    original = runner.SessionRunner._part

    async def second_step_raises(self, index, *args):
        if index == 1:
            raise ValueError("an input nothing checked")
        return await original(self, index, *args)

    monkeypatch.setattr(runner.SessionRunner, "_part", second_step_raises)
    data = {
        "name": "step-raises",
        "mock": {"latency": {"model": "fixed", "delay": "1ms"}, "flow": True},
        "session": [{"name": "first", "path": "/flow/stats"}, {"name": "second", "path": "/flow/stats"}, {"name": "third", "path": "/flow/stats"}],
        "load": {"concurrency": 2, "requests": 10, "workers": 1},
    }
    summary = bench.run(bench.load_profile(write(tmp_path, data))).summary
    sessions = summary["sessions"]
    assert sessions["started"] == 10 and sessions["failed"] == 10 and sessions["failures"] == {"other": 10}
    assert sessions["skipped_steps"] == 10  # the third step of each
    counts_add_up(sessions)


@pytest.mark.slow
def test_the_runs_end_cuts_a_long_think_pause_short(tmp_path: Path) -> None:
    """A 2 s run whose users think 60 s between steps (more than the 30 s grace) ends at about 2 s, not 62 s: unfinished."""
    import time

    data = {
        "name": "think-end",
        "mock": {"latency": {"model": "fixed", "delay": "1ms"}, "flow": True},
        "session": [{"name": "first", "path": "/flow/stats"}, {"name": "later", "path": "/flow/stats", "think": "60s"}],
        "load": {"concurrency": 3, "duration": "2s", "workers": 1},
    }
    started = time.monotonic()
    result = bench.run(bench.load_profile(write(tmp_path, data)))
    took = time.monotonic() - started
    sessions = result.summary["sessions"]
    assert took < 5.0, took
    assert sessions["started"] == 3 and sessions["unfinished"] == 3 and result.summary["requests"]["sent"] == 3
    counts_add_up(sessions)


def test_a_non_streamed_turn_reads_the_servers_prompt_tokens() -> None:
    from bench.sessions.conversation import _usage_prompt_tokens

    assert _usage_prompt_tokens(b'{"choices": [], "usage": {"prompt_tokens": 321, "completion_tokens": 4}}') == 321
    assert _usage_prompt_tokens(b'{"choices": []}') is None
    assert _usage_prompt_tokens(b'{"usage": {"prompt_tokens": true}}') is None
    assert _usage_prompt_tokens(b"not json") is None

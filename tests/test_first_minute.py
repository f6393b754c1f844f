"""The first minute, as a hey, oha or k6 user tries it: a URL and flags, --version, the header, a final screen that fits.

Every test runs the real command in a subprocess; the URL tests point it at a
small recording HTTP server on 127.0.0.1 and check what that server received.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import yaml

import bench


def cli(args: list[str], cwd: Path, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "35"}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 to anything and remembers each request's method, path, headers and body."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str], bytes]]
    lock: threading.Lock

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.lock:
            self.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list]]:
    seen: list = []
    handler = type("Handler", (Recorder,), {"seen": seen, "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.slow
def test_a_url_and_flags_are_a_whole_profile(tmp_path: Path, recorder) -> None:
    base, seen = recorder
    (tmp_path / "req.json").write_text('{"prompt": "hi", "max_tokens": 8}')
    args = [
        "run", f"{base}/v1/x", "--concurrency", "4", "--requests", "40", "--workers", "1",
        "-m", "POST", "-H", "X-Team: perf", "--header", "Accept: application/json", "--body", "@req.json",
        "--timeout", "5s", "--sla", "p95=5s,error_rate=1%", "--json", "r.json",
    ]  # fmt: skip
    result = cli(args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(seen) == 40
    assert {(method, path) for method, path, _, _ in seen} == {("POST", "/v1/x")}
    headers, body = seen[0][2], seen[0][3]
    assert headers["x-team"] == "perf" and headers["accept"] == "application/json"
    assert headers["content-type"] == "application/json"  # JSON text from @file gets a JSON content type
    assert body == b'{"prompt": "hi", "max_tokens": 8}'  # sent byte for byte
    # The header says what runs before it runs; the gate is the one the flags gave.
    assert f"target  POST {base}/v1/x" in result.stdout
    assert "load    closed loop, 4 users, 40 requests; 1 worker, aiohttp" in result.stdout
    assert "SLA     p95 <= 5 s, error_rate <= 1 %" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["requests"]["sent"] == 40 and report["requests"]["ok"] == 40
    assert [c["criterion"] for c in report["sla"]["checks"]] == ["p95", "error_rate"]


@pytest.mark.slow
def test_a_bare_url_sends_what_hey_and_oha_send(tmp_path: Path, recorder) -> None:
    base, seen = recorder
    result = cli(["run", base + "/", "--quiet", "--json", "r.json"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(seen) == 200 and {m for m, _, _, _ in seen} == {"GET"}
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["profile"]["load"]["concurrency"] == 50 and report["requests"]["sent"] == 200
    assert "completed (no SLA criteria) - exit code 0" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://example"], "error: URL: unsupported scheme in 'ftp://example'"),
        (["http://127.0.0.1:9/", "--sla", "p95=10"], "error: --sla p95: a duration needs a unit: write 10s or 10ms"),
        (["http://127.0.0.1:9/", "--sla", "p95"], "error: --sla: cannot read 'p95'"),
        (["http://127.0.0.1:9/", "-H", "no-colon"], "error: --header: expected 'Name: value', got 'no-colon'"),
        (["http://127.0.0.1:9/", "--body", "@missing.json"], "error: --body: cannot read 'missing.json'"),
        (["http://127.0.0.1:9/", "--url", "http://127.0.0.1:9/"], "error: --url: the URL is already the first argument"),
        (["http://127.0.0.1:9/", "-m", "FETCH"], "error: --method: expected one of GET, POST"),
        (["127.0.0.1:9/x"], "error: 127.0.0.1:9/x: no such profile file; to load-test a URL, give its scheme: http://127.0.0.1:9/x"),
    ],
)
def test_bad_flags_with_a_url_exit_2_naming_the_flag(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli(["run", *args], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 3


def test_version_and_a_working_example_in_help(tmp_path: Path) -> None:
    version = cli(["--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"bench {bench.__version__}"
    helped = cli(["run", "http://127.0.0.1:9/", "--help"], tmp_path, columns=200)
    assert helped.returncode == 0
    assert "bench run http://127.0.0.1:8000/v1/x --concurrency 20 --requests 400 --sla p95=800ms,error_rate=1%" in helped.stdout


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_the_final_screen_fits_35_rows_and_80_columns_and_details_has_every_table(tmp_path: Path) -> None:
    profile = {
        "name": "fits",
        "mock": {"latency": {"model": "fixed", "delay": "2ms"}, "errors": {"rate": 0.05, "statuses": [503, 429]}, "seed": 3},
        "load": {"concurrency": 4, "requests": 300, "warmup": 10, "workers": 1},
        "sla": {"p95": "800ms", "p99": "1s"},
    }
    path = write(tmp_path, profile)
    short = cli(["run", str(path)], tmp_path)
    assert short.returncode == 1, short.stdout + short.stderr  # 5 % errors fail the default error criterion
    screen = (short.stdout + short.stderr).splitlines()
    assert len(screen) <= 35, "\n".join(screen)
    drawn = [line for line in screen if not line.startswith("[bench] ")]  # the plain progress lines are log lines
    assert max(len(line) for line in drawn) <= 80, "\n".join(screen)
    out = short.stdout
    assert "✓  p95 <= 800 ms" in out and "✗  error_rate <= 1 % (default)" in out
    assert "status 429:" in out and "status 503:" in out
    assert "Generator self-check" not in out and "Latency" not in out  # the full tables only with --details
    full = cli(["run", str(path), "--details"], tmp_path, columns=120)
    assert full.returncode == 1
    for title in ("Latency", "Requests", "Generator self-check", "SLA"):
        assert title in full.stdout, title


@pytest.mark.slow
def test_several_scenarios_end_with_one_line_that_matches_the_exit_code(tmp_path: Path) -> None:
    profile = {
        "mock": {"latency": {"model": "fixed", "delay": "5ms"}},
        "load": {"concurrency": 2, "requests": 40, "workers": 1},
        "sla": {"p95": "1s"},
        "scenarios": {"roomy": {}, "tight": {"sla": {"p95": "1ms"}}},
    }
    result = cli(["run", str(write(tmp_path, profile)), "--quiet"], tmp_path, columns=120)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last == "overall: roomy ✓ SLA met, tight ✗ SLA not met - exit code 1", last
    assert "exit code 0" not in result.stdout  # no scenario claims an exit code of its own
    assert "scenario roomy: SLA met" in result.stdout


@pytest.mark.slow
def test_a_password_in_the_url_reaches_no_screen_or_report(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: every request fails to connect, exit 3, the report still written
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli(["run", f"http://ci:hunter2@127.0.0.1:{port}/x", "--requests", "2", "--concurrency", "1", "--json", "r.json"], tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    report = (tmp_path / "r.json").read_text()
    for text in (result.stdout, result.stderr, report):
        assert "hunter2" not in text
    assert f"http://ci:<redacted>@127.0.0.1:{port}/x" in result.stdout

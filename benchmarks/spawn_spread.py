"""Closed-loop users started at once (``spawn: 0s``) against spread (the default ``spawn: auto``).

Against a server that queues the start of each request, users that send in
lock-step wait behind each other: the 64th request of a burst waits for 63.
This runs a streamed chat closed loop (64 users) against GuideLLM's mock
server (``guidellm mock-server``, one Sanic worker, TTFT 150 ms, ITL 10 ms by
default) when ``guidellm`` is on PATH or given with ``--guidellm`` (skipped
with a message otherwise: the bundled mock has no model of a server that
serialises only the start of each request; its ``openai.slots: 1`` serialises
whole generations, so 64 users queue behind each other however they start),
and prints TTFT p50/p95, req/s and the send bursts (sends within one
millisecond, per worker) of each, alternating the two ``--repeat`` times. Then, with ``--persist``, the bursts second by second over a 10 s run
of 32 users against a fixed 50 ms mock (``fast``, one worker): whether the
users keep the phases they started with.

    python benchmarks/spawn_spread.py [--seconds 10] [--users 64] [--repeat 2] [--guidellm PATH] [--persist]
"""

from __future__ import annotations

import argparse
import collections
import csv
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line  # noqa: E402

import bench  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_guidellm(exe: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [exe, "mock-server", "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/v1/models", timeout=1) as answer:
                model = yaml.safe_load(answer.read())["data"][0]["id"]
                return proc, model if isinstance(model, str) else "default"
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"guidellm mock-server exited with {proc.returncode}") from None
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("guidellm mock-server did not answer /v1/models within 60 s")


def run(profile: dict) -> dict:
    path = Path(tempfile.mkdtemp()) / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return bench.run(bench.load_profile(path)).summary


def chat_profile(url: str, model: str, users: int, seconds: float, spawn: str | None) -> dict:
    profile: dict = {
        "target": {"url": url, "api": "openai-chat", "model": model, "stream": True, "max_tokens": 32},
        "data": {"synthetic": {"count": 200, "prompt_tokens": 64, "max_tokens": 32}},
        "load": {"concurrency": users, "duration": f"{seconds:g}s"},
    }
    if spawn is not None:
        profile["load"]["spawn"] = spawn
    return profile


def persistence(seconds: float) -> None:
    """Per-second send bursts of 32 users (one worker) against a fixed 50 ms mock, spread and in lock-step."""
    print(f"\npersistence: 32 users, one worker, fast, fixed 50 ms mock, {seconds:g} s; per second p50/p90/max sends per busy ms")
    for spawn in ("auto", "0s"):
        rows = Path(tempfile.mkdtemp()) / "rows.csv"
        run({"mock": {"latency": {"model": "fixed", "delay": "50ms"}}, "client": {"transport": "fast"}, "output": {"csv": str(rows)},
             "load": {"concurrency": 32, "duration": f"{seconds:g}s", "workers": 1, "spawn": spawn}})  # fmt: skip
        per: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
        with open(rows) as f:
            for row in csv.DictReader(f):
                t = float(row["sent_ms"])
                per[int(t // 1000)][int(t)] += 1
        cells = []
        for second in sorted(per):
            counts = sorted(per[second].values())
            n = len(counts)
            cells.append(f"{counts[n // 2]}/{counts[min(n - 1, int(0.9 * n))]}/{counts[-1]}")
        print(f"  spawn {spawn:>4}: " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--guidellm", default=shutil.which("guidellm"), help="the guidellm executable (default: on PATH)")
    parser.add_argument("--persist", action="store_true", help="also the per-second bursts over a run against a fixed-latency mock")
    args = parser.parse_args()
    print(machine_line())
    if not args.guidellm:
        print("guidellm not found (pip install guidellm, or --guidellm PATH): the GuideLLM comparison is skipped")
        if args.persist:
            persistence(args.seconds)
        return
    proc, model = start_guidellm(args.guidellm)
    url = f"http://127.0.0.1:{proc.args[-1]}/v1/chat/completions"  # type: ignore[index]
    print(f"target: guidellm mock-server (model {model}), {args.users} users, {args.seconds:g} s, streamed chat")
    try:
        print(f"{'spawn':>6} {'TTFT p50':>9} {'TTFT p95':>9} {'req/s':>7}  sends per busy ms p50/p90/p99/max")
        for _ in range(args.repeat):
            for spawn in ("0s", None):
                s = run(chat_profile(url, model, args.users, args.seconds, spawn))
                ttft, bursts = s["inference"]["ttft"], s["generator"]["send_bursts"]
                print(
                    f"{spawn or 'auto':>6} {ttft['p50']:>7.1f}ms {ttft['p95']:>7.1f}ms {s['rps']:>7.1f}  "
                    f"{bursts['p50']}/{bursts['p90']}/{bursts['p99']}/{bursts['max']}" + (f"  errors {s['errors']}" if s["errors"] else "")
                )
    finally:
        proc.terminate()
        proc.wait(10)
    if args.persist:
        persistence(args.seconds)


if __name__ == "__main__":
    main()

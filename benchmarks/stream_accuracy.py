"""How far bench's streamed TTFT and inter-token timing are from the truth as concurrent streams grow, per transport.

    python benchmarks/stream_accuracy.py [--streams 1,16,64,256] [--transports aiohttp,fast,h2] [--rounds 3] [--repeat 2]

The bundled mock's OpenAI endpoint answers every streamed chat request with
exactly TTFT = 100 ms to the first token, then a token every 10 ms, 64
tokens in all (fixed models: the mock's timers are never early, so anything
above the truth is the mock's own lateness, loopback and the client). The
mock is pinned to the first CPU and ``bench run`` (one worker, closed loop,
``load.concurrency`` = the streams) to the second. Every user sends its next
request when its stream ends, so all the streams of a round start together
and their tokens arrive together: a round of N chunks every 10 ms, the
hardest case for a client that timestamps a chunk only once it has got to
it. Each run: one round of warm-up, ``--rounds`` rounds measured (bounded:
under 1 s a round, plus start-up). The transports take turns (the order
alternates between repeats), and each cell is the median over ``--repeat``.

Columns: TTFT p50 and p99 minus the true 100 ms; TPOT p50 minus the true
10 ms; worker CPU µs per output token (``worker_cpu_s`` over the warm-up and
measured tokens); the new self-check signal ``generator.loop_lag_p99_ms``
(how late the worker's own event loop fired its timer, p99) when this
version reports it; and the self-check's verdict.

GuideLLM, AIPerf and inference-perf are measured only when on PATH: nothing
is installed here. Running them is not wired yet (their command lines differ
by version), so an installed one is listed, not measured.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from _common import NAN, QuietGate, cpu_plan, fmt, machine_line, pin_pid, pin_prefix, run_bench  # noqa: E402

from bench.mock import MockConfig, MockServerProcess  # noqa: E402

TTFT_MS = 100.0
ITL_MS = 10.0
TOKENS = 64
PEERS = {"GuideLLM": "guidellm", "AIPerf": "aiperf", "inference-perf": "inference-perf"}


def mock_config() -> MockConfig:
    return MockConfig.from_mapping({
        "openai": {
            "ttft": {"model": "fixed", "delay": f"{TTFT_MS:g}ms"},
            "inter_token": {"model": "fixed", "delay": f"{ITL_MS:g}ms"},
            "output_tokens": {"min": TOKENS, "max": TOKENS},
        }
    })


def measure(url: str, transport: str, streams: int, rounds: int, pin: list[str]) -> dict:
    profile = {
        "name": f"stream-accuracy-{transport}-{streams}",
        "target": {"url": url, "api": "openai-chat", "model": "m", "stream": True, "timeout": "30s"},
        "data": {"synthetic": {"count": 64, "prompt_tokens": {"min": 8, "max": 16}, "max_tokens": TOKENS}},
        "client": {"transport": transport},
        "load": {"concurrency": streams, "requests": streams * rounds, "warmup": streams, "workers": 1},
    }
    report, error = run_bench(profile, pin, timeout_s=60 + 2 * rounds)
    if report is None:
        return {"error": error}
    s = report["summary"] if "summary" in report else report
    inference = s.get("inference") or {}
    ttft, tpot = inference.get("ttft") or {}, inference.get("tpot") or {}
    sent = s["requests"]["sent"] + s.get("warmup", {}).get("sent", streams)
    cpu_s = sum(s.get("worker_cpu_s", {}).values())
    gen = s.get("generator", {})
    trust = s.get("trust", {})
    return {
        "ttft50": ttft.get("p50", NAN) - TTFT_MS if ttft.get("p50") is not None else NAN,
        "ttft99": ttft.get("p99", NAN) - TTFT_MS if ttft.get("p99") is not None else NAN,
        "tpot50": tpot.get("p50", NAN) - ITL_MS if tpot.get("p50") is not None else NAN,
        "cpu_us_token": cpu_s * 1e6 / max(1, sent * TOKENS),
        "loop_lag99": gen.get("loop_lag_p99_ms", NAN) if gen.get("loop_lag_p99_ms") is not None else NAN,
        "trusted": trust.get("trusted"),
        "errors": s["requests"].get("http_errors", 0) + s["requests"].get("client_errors", 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1,16,64,256", help="comma-separated concurrent streams")
    parser.add_argument("--transports", default="aiohttp,fast,h2", help="comma-separated bench transports")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per run (each under 1 s)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per cell (medians shown)")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 20 and 1 <= args.repeat <= 10):
        parser.error("--rounds must be in [1, 20], --repeat in [1, 10]")
    streams = [int(x) for x in args.streams.split(",")]
    transports = args.transports.split(",")

    server_cpu, client_cpu = cpu_plan()
    pin = pin_prefix(client_cpu)
    print(machine_line())
    print(f"mock: TTFT {TTFT_MS:g} ms, a token every {ITL_MS:g} ms, {TOKENS} tokens; closed loop, one worker; "
          f"1 round warm-up + {args.rounds} measured; {args.repeat} run(s) per cell, medians shown")
    print(f"pinning: mock on CPU {server_cpu}, bench on CPU {client_cpu}" if pin else "pinning: off (needs taskset and 2 CPUs)")
    gate = QuietGate()
    cells: dict[tuple[str, int], list[dict]] = {}
    mock = MockServerProcess(mock_config())
    try:
        mock.start()
        pin_pid(mock.pid, {server_cpu} if server_cpu is not None else None)
        for n in streams:
            for rep in range(args.repeat):
                order = transports if rep % 2 == 0 else transports[::-1]
                for transport in order:
                    gate.wait()
                    row = measure(mock.url, transport, n, args.rounds, pin)
                    if row.get("error"):
                        print(f"  {transport} x{n}: {row['error']}", flush=True)
                        continue
                    print(f"  {transport} x{n} run {rep + 1}: TTFT p99 {row['ttft99']:+.2f} ms, loop lag p99 {fmt(row['loop_lag99'], '.2f')} ms", flush=True)
                    cells.setdefault((transport, n), []).append(row)
    finally:
        mock.stop()
    print(gate.summary())
    print()

    def med(rows: list[dict], key: str) -> float:
        values = [r[key] for r in rows if r[key] == r[key]]
        return statistics.median(values) if values else NAN

    print("| tool | streams | TTFT p50 - truth ms | TTFT p99 - truth ms | TPOT p50 - truth ms | CPU µs/token | loop lag p99 ms | trusted |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for transport in transports:
        for n in streams:
            rows = cells.get((transport, n), [])
            if not rows:
                print(f"| bench ({transport}) | {n} | failed | | | | | |")
                continue
            verdicts = {r["trusted"] for r in rows}
            trusted = "/".join("-" if v is None else ("yes" if v else "NO") for v in sorted(verdicts, key=str))
            errors = sum(r["errors"] for r in rows)
            print(f"| bench ({transport}) | {n} | {fmt(med(rows, 'ttft50'), '+.2f')} | {fmt(med(rows, 'ttft99'), '+.2f')} | "
                  f"{fmt(med(rows, 'tpot50'), '+.3f')} | {fmt(med(rows, 'cpu_us_token'), '.1f')} | {fmt(med(rows, 'loop_lag99'), '.2f')} | "
                  f"{trusted}{f' ({errors} errors)' if errors else ''} |")
    for name, command in PEERS.items():
        if shutil.which(command) is None:
            print(f"| {name} | | skipped: `{command}` not on PATH | | | | | |")
        else:
            print(f"| {name} | | installed, not measured: this script does not drive it yet | | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

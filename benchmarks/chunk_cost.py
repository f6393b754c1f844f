"""What ``output.chunks`` costs a worker per request, and what the path without it costs.

Drives a real ``Worker``'s per-request bookkeeping without a network:
``_before_send`` (receiver chosen), every body piece handed to
``receiver.chunk`` as a transport would, ``_after_send`` (facts, recorder, and
with the output on, the JSON line written to a part file). Two response
shapes: a streamed chat completion of ``--tokens`` SSE pieces, and a
non-streamed one (one body piece). Each variant runs ``--requests`` requests,
``--repeat`` times interleaved; the table gives the best and median µs per
request (process CPU time).

    python benchmarks/chunk_cost.py [--requests 20000] [--tokens 64] [--repeat 5]

To compare the path without the output against an older version of bench, run
the same script with that version first on the path (``PYTHONPATH=DIR``, DIR
holding its ``bench`` package): variants needing ``output.chunks`` are skipped
where it does not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import orjson

from _common import machine_line

import bench
from bench.engine.errors import ProfileError
from bench.engine.plan.profile import parse_profile
from bench.engine.plan.requests import prepare
from bench.engine.workers.samples import MEASURED
from bench.engine.workers.worker import Worker, WorkerSpec


def sse_pieces(tokens: int) -> list[bytes]:
    """The body pieces of a streamed chat completion, as the mock sends them: one event per token, usage and [DONE] last."""
    pieces = []
    for i in range(tokens):
        event = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "mock",
                 "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]}
        pieces.append(b"data: " + orjson.dumps(event) + b"\n\n")
    usage = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": tokens}}
    pieces[-1] += b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n"
    return pieces


def make_worker(stream: bool, chunks_path: str | None) -> Worker | None:
    data = {"target": {"api": "openai-chat", "stream": stream, "url": "http://127.0.0.1:9/v1/chat/completions"}, "load": {"concurrency": 1, "requests": 1}}
    if chunks_path is not None:
        data["output"] = {"chunks": chunks_path}
    try:
        profile = parse_profile(data)
    except ProfileError:
        return None  # a version without output.chunks
    spec = WorkerSpec(0, 1, profile, profile.target.url, 0.25, None, (), chunks_path) if chunks_path else WorkerSpec(0, 1, profile, profile.target.url, 0.25, None)
    worker = Worker(spec, lambda message: None)
    worker.prepared = prepare(profile.kinds, profile.data, spec.url, (), 0, 1)
    if chunks_path is not None:
        from bench.engine.workers.chunks import ChunkLog

        worker.chunks = ChunkLog(chunks_path, 0)
    worker.start_ns = worker.recorder.origin_ns = time.monotonic_ns()
    if chunks_path is not None:
        worker.chunks.start_ns = worker.start_ns
    return worker


def run_once(worker: Worker, pieces: list[bytes], requests: int) -> float:
    """µs of process CPU per request."""
    nbytes = sum(map(len, pieces))
    before_send, after_send, clock = worker._before_send, worker._after_send, time.monotonic_ns
    worker.in_flight = requests
    cpu = time.process_time_ns()
    for _ in range(requests):
        now = clock()
        request, receiver, sent = before_send(MEASURED, now)
        if receiver is not None:
            for piece in pieces:
                receiver.chunk(piece, clock())
        after_send(MEASURED, now, sent, (200, nbytes, None), request, receiver)
    return (time.process_time_ns() - cpu) / requests / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(machine_line())
    print(f"bench {bench.__version__} from {os.path.dirname(bench.__file__)}; {args.requests} requests x {args.repeat}, {args.tokens} tokens a stream")
    asyncio.set_event_loop(asyncio.new_event_loop())
    streamed = sse_pieces(args.tokens)
    plain_body = [orjson.dumps({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok " * args.tokens}}],
                                "usage": {"prompt_tokens": 10, "completion_tokens": args.tokens}})]
    with tempfile.TemporaryDirectory(prefix="bench-chunk-cost-") as tmp:
        variants = []
        for shape, stream, pieces in (("streamed", True, streamed), ("non-streamed", False, plain_body)):
            for label, path in (("off", None), ("on", os.path.join(tmp, f"{shape}.jsonl"))):
                worker = make_worker(stream, path)
                if worker is not None:
                    variants.append((f"{shape}, output.chunks {label}", worker, pieces))
        results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for name, worker, pieces in variants:  # warm up
            run_once(worker, pieces, min(2000, args.requests))
        for _ in range(args.repeat):
            for name, worker, pieces in variants:
                results[name].append(run_once(worker, pieces, args.requests))
        sizes = {}
        for name, worker, _ in variants:
            if getattr(worker, "chunks", None) is not None:
                worker.chunks.close()
                sizes[name] = os.path.getsize(worker.chunks.file.name) / worker.chunks.lines
    print(f"{'variant':<34} {'best µs/req':>12} {'median µs/req':>14} {'bytes/line':>11}")
    for name, values in results.items():
        size = f"{sizes[name]:.0f}" if name in sizes else "-"
        print(f"{name:<34} {min(values):>12.2f} {statistics.median(values):>14.2f} {size:>11}")


if __name__ == "__main__":
    main()

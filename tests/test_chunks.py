"""output.chunks: each request's body pieces with their arrival times, from real workers against the mock.

The mock streams 8 tokens, the first 50 ms after the request and each next
one 10 ms after the previous, so the truth is known: a first piece no earlier
than 50 ms after the send, gaps near 10 ms. Tolerances are wide (a busy
2-core machine delays reads by milliseconds), never tight.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from typer.testing import CliRunner

import bench
from bench.cli.app import app
from bench.engine.workers import responses
from bench.engine.plan.requests import PreparedRequest
from bench.engine.workers.responses import TimedReceiver, timed_receiver_for

TTFT_MS, ITL_MS, TOKENS = 50, 10, 8


def chat(tmp_path: Path, transport: str = "aiohttp", openai: dict | None = None, stream: bool = True, **load) -> dict:
    return {
        "target": {"api": "openai-chat", "stream": stream, "max_tokens": 64, "timeout": "10s"},
        "mock": {
            "seed": 3,
            "openai": {
                "ttft": {"model": "fixed", "delay": f"{TTFT_MS}ms"},
                "inter_token": {"model": "fixed", "delay": f"{ITL_MS}ms"},
                "output_tokens": {"min": TOKENS, "max": TOKENS},
                **(openai or {}),
            },
        },
        "client": {"transport": transport},
        "load": {"concurrency": 4, "requests": 24, "workers": 2, **load},
        "output": {"chunks": str(tmp_path / "chunks.jsonl")},
    }


def run(tmp_path: Path, data: dict) -> tuple[bench.RunResult, list[dict]]:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = bench.run(bench.load_profile(path))
    lines = [json.loads(line) for line in (tmp_path / "chunks.jsonl").read_text().splitlines()]
    return result, lines


@contextlib.contextmanager
def h2_sse_server() -> Iterator[str]:
    """An h2c server streaming OpenAI chat chunks with the same timing as the mock (whose HTTP/2 side answers
    plain JSON only): headers at once, token 1 at TTFT, each next one ITL later, usage and [DONE] with the last."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    address: list[str] = []

    async def until(due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        while time.monotonic() < due:
            await asyncio.sleep(0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())

        async def stream(stream_id: int, arrival: float) -> None:
            with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, ConnectionError):
                conn.send_headers(stream_id, [(":status", "200"), ("content-type", "text/event-stream")])
                writer.write(conn.data_to_send())
                for i in range(TOKENS):
                    await until(arrival + (TTFT_MS + i * ITL_MS) / 1000)
                    event = {"choices": [{"index": 0, "delta": {"content": f"t{i} "}}]}
                    data = b"data: " + json.dumps(event).encode() + b"\n\n"
                    if i == TOKENS - 1:
                        usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": TOKENS}}
                        data += b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n"
                    conn.send_data(stream_id, data, end_stream=i == TOKENS - 1)
                    writer.write(conn.data_to_send())

        tasks = set()
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    task = asyncio.ensure_future(stream(event.stream_id, time.monotonic()))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            writer.write(conn.data_to_send())
        writer.close()

    def main() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(serve, "127.0.0.1", 0))
        address.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions")
        ready.set()
        loop.run_forever()
        server.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield address[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def token_gaps(line: dict) -> list[float]:
    times = [t for t, _, tokens in line["chunks"] if tokens]
    return [b - a for a, b in zip(times, times[1:])]


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["aiohttp", "fast", "h2"])
def test_every_streamed_request_has_its_pieces_timed(tmp_path: Path, transport: str) -> None:
    data = chat(tmp_path, transport)
    data["output"]["csv"] = str(tmp_path / "rows.csv")
    if transport == "h2":
        with h2_sse_server() as url:
            del data["mock"]
            data["target"]["url"] = url
            result, lines = run(tmp_path, data)
    else:
        result, lines = run(tmp_path, data)
    summary = result.summary
    assert result.status == "completed" and summary["requests"]["ok"] == 24
    assert len(lines) == 24
    assert {line["worker"] for line in lines} == {0, 1}  # both workers' parts, merged
    assert [line["worker"] for line in lines] == sorted(line["worker"] for line in lines)  # in worker order
    # The CSV's (worker, request) numbers name the same requests.
    with open(tmp_path / "rows.csv") as f:
        rows = {(int(r["worker"]), int(r["request"])): r for r in csv.DictReader(f)}
    assert set(rows) == {(line["worker"], line["request"]) for line in lines}
    gaps = []
    for line in lines:
        row = rows[(line["worker"], line["request"])]
        assert line["sent_ms"] == pytest.approx(float(row["sent_ms"]), abs=0.002)
        assert line["status"] == 200 and line["error"] is None and line["stream"] is True
        assert line["phase"] == "measured" and line["kind"] == "default" and line["dropped"] == 0
        chunks = line["chunks"]
        times = [t for t, _, _ in chunks]
        assert times == sorted(times) and line["sent_ms"] <= times[0] and times[-1] <= line["end_ms"]
        first = next(t for t, _, tokens in chunks if tokens)
        assert first - line["sent_ms"] >= TTFT_MS  # the mock's prefill, never less
        assert first - line["sent_ms"] < TTFT_MS + 200
        assert sum(n for _, n, _ in chunks) == line["bytes"] > 0
        assert sum(k for _, _, k in chunks) == line["tokens"] == line["output_tokens"] == TOKENS
        gaps += token_gaps(line)
    assert gaps and all(0 <= g <= 60 for g in gaps), max(gaps)
    assert 5 <= statistics.median(gaps) <= 20, statistics.median(gaps)
    assert sum(line["tokens"] for line in lines) == summary["inference"]["output_tokens"] == 24 * TOKENS


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["aiohttp", "fast"])
def test_requests_cut_mid_stream_keep_what_arrived(tmp_path: Path, transport: str) -> None:
    result, lines = run(tmp_path, chat(tmp_path, transport, {"disconnect_rate": 0.5}, requests=30, concurrency=6))
    errors = result.summary["errors"]
    assert len(lines) == 30
    failed = [line for line in lines if line["error"] is not None]
    assert len(failed) == sum(errors.values()) >= 5, errors  # half of 30, seeded
    for line in failed:
        assert line["status"] is None and line["error"] in errors
        assert 1 <= sum(k for _, _, k in line["chunks"]) == line["tokens"] < TOKENS  # the tokens before the cut
    assert all(line["tokens"] == TOKENS for line in lines if line["error"] is None)


@pytest.mark.slow
def test_a_stall_shows_in_the_gaps(tmp_path: Path) -> None:
    result, lines = run(tmp_path, chat(tmp_path, "fast", {"stall": {"after_tokens": 4, "duration": "300ms"}}, requests=8))
    assert len(lines) == 8
    for line in lines:
        gaps = token_gaps(line)
        assert len(gaps) == TOKENS - 1
        assert max(gaps) >= 300 and sorted(gaps)[-2] < 100, gaps  # one long pause, in the server's stream


@pytest.mark.slow
def test_non_streamed_responses_list_their_body_pieces(tmp_path: Path) -> None:
    result, lines = run(tmp_path, chat(tmp_path, "fast", stream=False, requests=10))
    assert len(lines) == 10
    for line in lines:
        assert line["stream"] is False and line["status"] == 200 and line["tokens"] == 0
        assert line["output_tokens"] == TOKENS  # from the body's usage
        assert line["chunks"] and all(k == 0 for _, _, k in line["chunks"])
        assert sum(n for _, n, _ in line["chunks"]) == line["bytes"] > 0


@pytest.mark.slow
def test_a_plain_profile_gets_a_line_per_request_too(tmp_path: Path) -> None:
    data = {
        "mock": {"latency": {"model": "fixed", "delay": "5ms"}, "body_bytes": 3000},
        "client": {"transport": "fast"},
        "load": {"concurrency": 2, "requests": 10, "workers": 1},
        "output": {"chunks": str(tmp_path / "chunks.jsonl")},
    }
    result, lines = run(tmp_path, data)
    assert result.summary["requests"]["ok"] == 10 and len(lines) == 10
    assert all(line["bytes"] == 3000 and line["chunks"] and line["output_tokens"] is None for line in lines)


def test_the_piece_list_is_capped_and_the_rest_counted(monkeypatch) -> None:
    monkeypatch.setattr(responses, "MAX_CHUNKS", 3)
    request = PreparedRequest(0, "chat", "POST", "http://x/", (), b"{}", True, None, "openai-chat")
    receiver = timed_receiver_for(request)
    assert isinstance(receiver, TimedReceiver)
    event = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    for i in range(5):
        receiver.chunk(event * 2, 1_000_000 * (i + 1))
    receiver.chunk(b"data: [DONE]\n\n", 9_000_000)
    assert receiver.pieces(0) == [[1.0, 2 * len(event), 2], [2.0, 2 * len(event), 2], [3.0, 2 * len(event), 2]]
    assert receiver.pieces(500_000) == [[0.5, 2 * len(event), 2], [1.5, 2 * len(event), 2], [2.5, 2 * len(event), 2]]
    assert receiver.dropped == 3 and receiver.total_tokens == 10 and receiver.total_bytes == 10 * len(event) + 14
    facts = receiver.facts(request, 200, 0)
    assert facts.output_tokens == 10 and facts.ttft_ns == 1_000_000


def test_without_the_output_nothing_is_timed() -> None:
    request = PreparedRequest(0, "plain", "GET", "http://x/", (), None, False, None, None)
    assert responses.receiver_for(request) is None
    assert type(timed_receiver_for(request)) is TimedReceiver


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


def test_an_unusable_path_is_refused_at_load(tmp_path: Path) -> None:
    data = chat(tmp_path)
    data["output"]["chunks"] = str(tmp_path / "missing" / "chunks.jsonl")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    code, err = invoke("run", str(path), "-q")
    assert code == 2 and "output.chunks" in err and "does not exist" in err, err
    del data["output"]
    path.write_text(yaml.safe_dump(data))
    code, err = invoke("run", str(path), "-q", "--chunks", str(tmp_path))
    assert code == 2 and "--chunks" in err and "is a directory" in err, err
    assert not list(tmp_path.glob("*.jsonl"))


def test_sessions_and_conversations_are_refused(tmp_path: Path) -> None:
    data = chat(tmp_path)
    data["data"] = {"synthetic": {"count": 4, "turns": 2}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(bench.ProfileError, match="output.chunks"):
        bench.load_profile(path)

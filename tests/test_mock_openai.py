"""The mock's OpenAI-compatible endpoints over real sockets: SSE shape and timing, quirks, capacity, faults, config."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import pytest
import uvloop

from bench.mock import MockConfig, MockConfigError, start_server
from bench.mock.config import OpenAIConfig, OpenAIQuirks, OpenAIStallConfig
from bench.mock.openai import TOKEN_TEXT, OpenAIBehaviour, ParsedRequest, RequestError, parse_request
from bench.mock.server import MockServer

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def run(coro: Any, timeout: float = 10.0) -> Any:
    return uvloop.run(asyncio.wait_for(coro, timeout))


def openai_config(**openai: Any) -> MockConfig:
    """A mock with fixed 100 ms TTFT, 20 ms inter-token and 10 output tokens, overridden by ``openai``."""
    section: dict[str, Any] = {
        "ttft": {"model": "fixed", "delay": "100ms"},
        "inter_token": {"model": "fixed", "delay": "20ms"},
        "output_tokens": {"fixed": 10},
    }
    section.update(openai)
    return MockConfig.from_mapping({"seed": 3, "openai": section})


@contextlib.asynccontextmanager
async def serving(config: MockConfig) -> AsyncIterator[MockServer]:
    server = await start_server(config)
    try:
        yield server
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator["Client"]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def chat(stream: bool = True, content: str = "say hello to the mock", **extra: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": content}], "stream": stream, **extra}


@dataclass
class Response:
    """One response as read off the socket; times are seconds since the request was written."""

    status: int
    headers: dict[str, str]
    t_head: float
    reads: list[tuple[float, bytes]] = field(default_factory=list)  # body bytes (de-chunked) per socket read
    complete: bool = False  # zero-length chunk (or Content-Length) seen
    eof: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.reads)

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[tuple[float, str, bool]]:
        """SSE events: (arrival time of the read completing it, text, whether it spanned several reads)."""
        out, buffer, started = [], b"", None
        for index, (t, data) in enumerate(self.reads):
            buffer += data
            if started is None and buffer:
                started = index
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                out.append((t, event.decode(), started != index))
                started = index if buffer else None
        return out

    def data(self) -> list[tuple[float, Any]]:
        """The ``data`` events, JSON-decoded (``[DONE]`` stays a string); comments skipped."""
        out = []
        for t, event, _ in self.events():
            if event.startswith(":"):
                continue
            assert event.startswith("data:"), event
            payload = event[5:].strip()
            out.append((t, payload if payload == "[DONE]" else json.loads(payload)))
        return out

    def tokens(self) -> list[tuple[float, str]]:
        """(arrival, text) of each content event."""
        out = []
        for t, obj in self.data():
            if isinstance(obj, dict) and obj["choices"]:
                choice = obj["choices"][0]
                text = choice["delta"].get("content") if "delta" in choice else choice["text"]
                if text:
                    out.append((t, text))
        return out


class Client:
    """A raw HTTP/1.1 client that timestamps every read, decodes chunked framing by hand and checks it.

    Bytes read past the end of one response stay in ``buffer`` for the next (pipelining).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""

    def send(self, path: str, body: Any, method: str = "POST") -> float:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        self.writer.write(head.encode() + payload)
        return time.monotonic()

    async def _fill(self) -> bool:
        data = await self.reader.read(65536)
        self.buffer += data
        return bool(data)

    async def receive(self, t0: float) -> Response:
        while b"\r\n\r\n" not in self.buffer:
            if not await self._fill():
                raise ConnectionError("closed before a response head")
        raw, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        response = Response(int(lines[0].split()[1]), headers, time.monotonic() - t0)
        if headers.get("transfer-encoding") == "chunked":
            while not response.complete:
                payload = b""
                buffer = self.buffer
                while (end := buffer.find(b"\r\n")) >= 0:
                    size = int(buffer[:end], 16)
                    if len(buffer) < end + 2 + size + 2:
                        break
                    payload += buffer[end + 2 : end + 2 + size]
                    assert buffer[end + 2 + size : end + 4 + size] == b"\r\n", "chunk not followed by CRLF"
                    buffer = buffer[end + 4 + size :]
                    if size == 0:
                        response.complete = True
                        break
                self.buffer = buffer
                if payload:
                    response.reads.append((time.monotonic() - t0, payload))
                if not response.complete and not await self._fill():
                    response.eof = True
                    break
        else:
            length = int(headers["content-length"])
            while len(self.buffer) < length:
                if not await self._fill():
                    raise ConnectionError("closed inside a response body")
            response.reads.append((time.monotonic() - t0, self.buffer[:length]))
            self.buffer = self.buffer[length:]
            response.complete = True
        return response

    async def request(self, path: str, body: Any, method: str = "POST") -> Response:
        return await self.receive(self.send(path, body, method))


async def one(port: int, path: str, body: Any) -> Response:
    async with connect(port) as client:
        return await client.request(path, body)


# --- streaming --------------------------------------------------------------------------


def test_streaming_chat_shape_timing_and_keep_alive() -> None:
    async def body() -> None:
        config = openai_config(output_tokens={"fixed": 30})
        async with serving(config) as server, connect(server.port) as client:
            first = await client.request(CHAT, chat(max_tokens=12))
            second = await client.request(CHAT, chat(max_tokens=12, stream_options={"include_usage": True}))
            return server, first, second

    server, first, second = run(body())
    for response in (first, second):
        assert response.status == 200 and response.complete and not response.eof
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.t_head < 0.05  # headers at once, as servers do
        data = response.data()
        assert data[-1][1] == "[DONE]"
        role_t, role = data[0]
        assert role["object"] == "chat.completion.chunk" and role["model"] == "demo"
        assert role["choices"][0]["delta"] == {"role": "assistant"}  # role only
        assert 0.100 <= role_t < 0.150  # sent with the first token at TTFT, not at 0
        tokens = response.tokens()
        assert [text for _, text in tokens] == [TOKEN_TEXT] * 12  # max_tokens caps the 30
        assert tokens[0][0] == role_t
        gaps = [b[0] - a[0] for a, b in zip(tokens, tokens[1:])]
        assert min(gaps) >= 0.019  # 20 ms, never early (1 ms for client-side read jitter)
        assert statistics.median(gaps) < 0.025
        finish = [obj for _, obj in data if isinstance(obj, dict) and obj["choices"] and obj["choices"][0]["finish_reason"]]
        assert len(finish) == 1 and finish[0]["choices"][0] == {
            "index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"
        }
    # usage only when asked: none at all in the first, a usage-only chunk in the second
    assert not any("usage" in obj for _, obj in first.data()[:-1])
    usage_chunks = [obj for _, obj in second.data()[:-1] if obj["choices"] == []]
    assert len(usage_chunks) == 1 and second.data()[-2][1] == usage_chunks[0]
    assert usage_chunks[0]["usage"] == {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17}
    assert all(obj["usage"] is None for _, obj in second.data()[:-2])
    truth = server.openai
    assert truth.counts["ok"] == 2 and truth.busy == 0
    record = truth.records[0]
    assert record.tokens == record.tokens_sent == 12 and record.ttft == pytest.approx(0.1, abs=0.01)


def test_streaming_completions_and_finish_stop() -> None:
    async def body() -> Response:
        async with serving(openai_config(output_tokens={"fixed": 4}, inter_token={"model": "none"})) as server:
            return await one(server.port, COMPLETIONS, {"model": "m", "prompt": "one two three", "stream": True, "max_tokens": 50})

    response = run(body())
    data = response.data()
    assert data[0][1]["object"] == "text_completion"
    assert [text for _, text in response.tokens()] == [TOKEN_TEXT] * 4  # no role chunk on /v1/completions
    assert data[-2][1]["choices"][0]["finish_reason"] == "stop" and data[-1][1] == "[DONE]"


# --- non-streaming ----------------------------------------------------------------------


def test_non_stream_chat_and_completions() -> None:
    async def body() -> tuple[Response, Response, Response]:
        config = openai_config(inter_token={"model": "fixed", "delay": "10ms"}, output_tokens={"fixed": 8})
        async with serving(config) as server, connect(server.port) as client:
            chat_response = await client.request(CHAT, chat(stream=False, content="a b c d", max_completion_tokens=6))
            completion = await client.request(COMPLETIONS, {"prompt": ["x y", "z"]})
            parts = await client.request(
                CHAT, chat(stream=False, messages=[{"role": "user", "content": [{"type": "text", "text": "p q"}]}])
            )
            return chat_response, completion, parts

    chat_response, completion, parts = run(body())
    assert chat_response.status == 200 and chat_response.headers["content-type"] == "application/json"
    obj = chat_response.json()
    assert obj["object"] == "chat.completion" and obj["model"] == "demo"
    assert obj["choices"][0]["message"] == {"role": "assistant", "content": TOKEN_TEXT * 6}
    assert obj["choices"][0]["finish_reason"] == "length"
    assert obj["usage"] == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
    assert 0.150 <= chat_response.reads[-1][0] < 0.190  # TTFT + 5 * ITL
    obj = completion.json()
    assert obj["object"] == "text_completion" and obj["choices"][0]["text"] == TOKEN_TEXT * 8
    assert obj["choices"][0]["finish_reason"] == "stop"
    assert obj["usage"] == {"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11}
    assert 0.170 <= completion.reads[-1][0] < 0.210  # 100 ms + 7 * 10 ms
    assert parts.json()["usage"]["prompt_tokens"] == 2


def test_routing_and_bad_requests() -> None:
    async def body() -> dict[str, Response]:
        out = {}
        async with serving(openai_config(ttft={"model": "none"}, inter_token={"model": "none"})) as server:
            async with connect(server.port) as client:
                out["root"] = await client.request("/", b"")
                out["get"] = await client.request(CHAT, b"", method="GET")
                out["json"] = await client.request(CHAT, b"{not json")
                out["messages"] = await client.request(CHAT, {"messages": []})
                out["max_tokens"] = await client.request(COMPLETIONS, {"prompt": "x", "max_tokens": 0})
                out["query"] = await client.request(CHAT + "?x=1", chat(stream=False))
        async with serving(MockConfig()) as plain:  # no openai section: the path is nothing special
            out["plain"] = await one(plain.port, CHAT, chat(stream=False))
        return out

    out = run(body())
    assert out["root"].status == 200 and out["root"].json()["status"] == 200  # the plain mock answer
    assert out["plain"].status == 200 and out["plain"].json()["status"] == 200
    assert out["get"].status == 405
    for key in ("json", "messages", "max_tokens"):
        assert out[key].status == 400 and out[key].json()["error"]["type"] == "invalid_request_error", key
    assert out["max_tokens"].json()["error"]["param"] == "max_tokens"
    assert out["query"].status == 200 and out["query"].json()["object"] == "chat.completion"


def test_pipelined_requests_answer_in_order() -> None:
    async def body() -> tuple[Response, Response, Response]:
        config = openai_config(ttft={"model": "fixed", "delay": "30ms"}, inter_token={"model": "fixed", "delay": "5ms"})
        async with serving(config) as server, connect(server.port) as client:
            t0 = client.send(CHAT, chat(max_tokens=5))  # slower than the next two, which must wait for it
            client.send(CHAT, chat(stream=False, max_tokens=1))
            client.send("/", b"")
            return await client.receive(t0), await client.receive(t0), await client.receive(t0)

    stream, full, plain = run(body())
    assert stream.complete and len(stream.tokens()) == 5
    assert full.json()["usage"]["completion_tokens"] == 1
    assert plain.json()["status"] == 200


# --- quirks -----------------------------------------------------------------------------


def quirk_response(quirks: dict[str, Any], **request: Any) -> Response:
    async def body() -> Response:
        config = openai_config(inter_token={"model": "fixed", "delay": "10ms"}, quirks=quirks)
        async with serving(config) as server:
            return await one(server.port, CHAT, chat(max_tokens=10, **request))

    return run(body())


def test_quirk_no_space_after_data() -> None:
    events = [text for _, text, _ in quirk_response({"no_space_after_data": True}).events()]
    assert events[-1] == "data:[DONE]"
    assert all(text.startswith("data:{") for text in events[:-1])
    plain = [text for _, text, _ in quirk_response({}).events()]
    assert all(text.startswith("data: ") for text in plain)


def test_quirk_comments() -> None:
    response = quirk_response({"comments": True})
    events = response.events()
    comments = [(t, text) for t, text, _ in events if text.startswith(":")]
    assert all(text == ": keep-alive" for _, text in comments)
    assert comments[0][0] < 0.05  # one right after the headers, long before the first token
    assert events[0][1] == ": keep-alive"
    assert len(comments) == 1 + 10  # and one before each write's events
    assert len(response.tokens()) == 10


def test_quirk_tokens_per_chunk() -> None:
    response = quirk_response({"tokens_per_chunk": 4})
    texts = [text for _, text in response.tokens()]
    assert texts == [TOKEN_TEXT, TOKEN_TEXT * 4, TOKEN_TEXT * 4, TOKEN_TEXT]  # the first token alone, at TTFT
    times = [t for t, _ in response.tokens()]
    assert times[0] >= 0.100 and times[1] - times[0] >= 0.039  # 4 tokens of 10 ms


def test_quirk_role_and_usage_chunks_off() -> None:
    response = quirk_response({"role_first_chunk": False, "usage_chunk": False}, stream_options={"include_usage": True})
    data = response.data()
    assert data[0][1]["choices"][0]["delta"] == {"role": "assistant", "content": TOKEN_TEXT}
    assert not any(obj["choices"] == [] for _, obj in data[:-1])  # asked for usage, quirk says no


def test_quirk_split_events() -> None:
    response = quirk_response({"split_events": True})
    assert response.complete
    data_events = [(t, text, spanned) for t, text, spanned in response.events() if text.startswith("data: {")]
    assert len(response.tokens()) == 10
    # every write is cut inside its first event's JSON and sent as two 2 ms apart: those arrive in two reads
    assert sum(spanned for _, _, spanned in data_events) >= 8
    unsplit = quirk_response({})
    assert not any(spanned for _, _, spanned in unsplit.events())


# --- capacity ---------------------------------------------------------------------------


def test_capacity_queue_and_429() -> None:
    async def body() -> tuple[MockServer, list[Response]]:
        config = openai_config(
            slots=2, queue=2, inter_token={"model": "fixed", "delay": "10ms"}, output_tokens={"fixed": 5}
        )
        async with serving(config) as server:
            responses = await asyncio.gather(*(one(server.port, CHAT, chat()) for _ in range(6)))
            return server, responses

    server, responses = run(body())
    rejected = [r for r in responses if r.status == 429]
    assert len(rejected) == 2
    for response in rejected:
        assert response.t_head < 0.05 and response.json()["error"]["code"] == "rate_limit_exceeded"
    ttfts = sorted(r.tokens()[0][0] for r in responses if r.status == 200)
    assert len(ttfts) == 4
    # two get slots at once; two wait for them (100 ms + 4 * 10 ms), then their own 100 ms TTFT
    assert all(0.100 <= t < 0.140 for t in ttfts[:2])
    assert all(0.240 <= t < 0.300 for t in ttfts[2:])
    truth = server.openai
    assert truth.counts == {"ok": 4, "rejected": 2} and truth.busy == 0 and not truth.waiting
    queued = [r for r in truth.records if r.outcome == "ok" and r.queue_wait > 0.05]
    assert len(queued) == 2
    for record in queued:
        assert record.ttft == pytest.approx(record.queue_wait + 0.100, abs=0.01)


def test_slowdown_when_all_slots_busy() -> None:
    async def body() -> tuple[Response, list[Response]]:
        config = openai_config(slots=2, slowdown=2.0, ttft={"model": "fixed", "delay": "50ms"})
        async with serving(config) as server:
            alone = await one(server.port, CHAT, chat())
            together = await asyncio.gather(one(server.port, CHAT, chat()), one(server.port, CHAT, chat()))
            return alone, together

    alone, together = run(body())

    def gaps(response: Response) -> list[float]:
        times = [t for t, _ in response.tokens()]
        return [b - a for a, b in zip(times, times[1:])]

    assert 0.019 <= statistics.median(gaps(alone)) < 0.025
    for response in together:  # both slots busy: 2x
        assert 0.039 <= statistics.median(gaps(response)) < 0.050
    behaviour = OpenAIBehaviour(OpenAIConfig(slots=5, slowdown=2.0))
    assert [behaviour.slowdown_factor(b) for b in range(6)] == [1.0, 1.0, 1.25, 1.5, 1.75, 2.0]


def test_client_disconnect_frees_the_slot() -> None:
    async def body() -> tuple[MockServer, Response]:
        config = openai_config(slots=1, queue=1, output_tokens={"fixed": 200})
        async with serving(config) as server:
            async with connect(server.port) as client:
                client.send(CHAT, chat())
                await client.reader.readuntil(b"data: ")  # generating
            # the client is gone mid-stream: the next request gets the slot at once
            response = await one(server.port, CHAT, chat(max_tokens=2))
            return server, response

    server, response = run(body())
    assert response.complete and 0.100 <= response.tokens()[0][0] < 0.150
    assert server.openai.counts["cancelled"] == 1 and server.openai.busy == 0


# --- failure injection ------------------------------------------------------------------


def test_error_injection_rate_and_determinism() -> None:
    async def statuses(rate: float) -> list[int]:
        config = openai_config(errors={"rate": rate, "status": 503}, ttft={"model": "none"}, inter_token={"model": "none"})
        async with serving(config) as server, connect(server.port) as client:
            out = []
            for _ in range(40):
                response = await client.request(CHAT, chat(stream=False, max_tokens=1))
                if response.status != 200:
                    assert response.json()["error"]["type"] == "server_error"
                out.append(response.status)
            assert server.openai.counts["error"] == out.count(503)
            return out

    first = run(statuses(0.5))
    assert set(first) == {200, 503} and 8 <= first.count(503) <= 32
    assert run(statuses(0.5)) == first  # same seed, same order: same answers
    assert run(statuses(1.0)) == [503] * 40


def test_disconnect_injection() -> None:
    async def body() -> tuple[MockServer, Response, Response]:
        config = openai_config(disconnect_rate=1.0, inter_token={"model": "fixed", "delay": "5ms"})
        async with serving(config) as server:
            streamed = await one(server.port, CHAT, chat())
            async with connect(server.port) as client:
                client.send(CHAT, chat(stream=False))
                eof = await asyncio.wait_for(client.reader.read(), 2.0)
            return server, streamed, eof

    server, streamed, eof = run(body())
    assert streamed.eof and not streamed.complete  # closed mid-stream, no terminating chunk
    assert not any(obj == "[DONE]" for _, obj in streamed.data())
    sent = len(streamed.tokens())
    assert 1 <= sent < 10
    assert eof == b""  # non-streaming: closed before any answer
    truth = server.openai
    assert truth.counts["disconnect"] == 2 and truth.busy == 0
    assert truth.records[0].tokens_sent == sent


def test_stall_injection() -> None:
    async def body() -> Response:
        config = openai_config(stall={"after_tokens": 3, "duration": "300ms"}, inter_token={"model": "fixed", "delay": "10ms"})
        async with serving(config) as server:
            return await one(server.port, CHAT, chat())

    response = run(body())
    times = [t for t, _ in response.tokens()]
    assert len(times) == 10
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[2] >= 0.310  # after the 3rd token: 300 ms + the 10 ms inter-token delay
    assert max(gaps[:2] + gaps[3:]) < 0.030


# --- behaviour without sockets ----------------------------------------------------------


def test_plans_are_seeded_and_truth_is_exposed() -> None:
    config = openai_config(
        output_tokens={"min": 5, "max": 50},
        ttft={"model": "lognormal", "median": "200ms", "p95": "400ms"},
        disconnect_rate=0.3,
    )
    request = ParsedRequest("chat", "m", True, False, 30, 4)

    def plans(seed_config: MockConfig) -> list[tuple[int, str, int | None, float]]:
        behaviour = OpenAIBehaviour(seed_config.openai, seed_config.seed)
        out = []
        for _ in range(50):
            plan = behaviour.plan(request)
            out.append((plan.tokens, plan.finish_reason, plan.disconnect_after, behaviour.sample_ttft(plan)))
        return out

    first = plans(config)
    assert first == plans(config)
    assert first != plans(MockConfig.from_mapping({"seed": 4, "openai": {"output_tokens": {"min": 5, "max": 50}}}))
    assert all(5 <= tokens <= 30 for tokens, *_ in first)
    assert {finish for tokens, finish, *_ in first if tokens == 30} == {"length"}
    behaviour = OpenAIBehaviour(config.openai)
    assert behaviour.ttft_quantile(0.5) == pytest.approx(0.2) and behaviour.ttft_quantile(0.95) == pytest.approx(0.4)
    assert behaviour.itl_quantile(0.99) == pytest.approx(0.02)
    assert behaviour.output_tokens(30) == (5, 30) and behaviour.output_tokens(3, ignore_eos=True) == (3, 3)


def test_parse_request() -> None:
    parsed = parse_request("chat", json.dumps(chat(max_tokens=7, stream_options={"include_usage": True})).encode())
    assert parsed == ParsedRequest("chat", "demo", True, True, 7, 5)
    assert parse_request("completion", b'{"prompt": [1, 2, 3]}').prompt_tokens == 3
    assert parse_request("chat", b'{"messages": [{"role": "user", "content": "a"}], "ignore_eos": true}').ignore_eos
    with pytest.raises(RequestError, match="prompt"):
        parse_request("completion", b'{"prompt": {"x": 1}}')


# --- config -----------------------------------------------------------------------------


def test_config_defaults_and_example() -> None:
    assert MockConfig.from_mapping({}).openai is None
    assert MockConfig.from_mapping({"openai": None}).openai is None
    assert MockConfig.from_mapping({"openai": {}}).openai == OpenAIConfig()
    config = MockConfig.from_mapping(
        {
            "openai": {
                "ttft": {"model": "lognormal", "median": "200ms", "p95": "400ms"},
                "inter_token": {"model": "fixed", "delay": "20ms"},
                "output_tokens": {"min": 50, "max": 200},
                "slots": 8,
                "queue": 32,
                "slowdown": 1.5,
                "errors": {"rate": 0.01, "status": 503},
                "disconnect_rate": 0.02,
                "stall": {"after_tokens": 5, "duration": "2s"},
                "quirks": {"tokens_per_chunk": 2, "split_events": True, "comments": True},
            }
        }
    ).openai
    assert config.ttft.median == pytest.approx(0.2) and config.inter_token.delay == pytest.approx(0.02)
    assert (config.output_tokens_min, config.output_tokens_max, config.slots, config.queue) == (50, 200, 8, 32)
    assert config.slowdown == 1.5 and config.errors.status == 503 and config.disconnect_rate == 0.02
    assert config.stall == OpenAIStallConfig(after_tokens=5, duration=2.0)
    assert config.quirks == OpenAIQuirks(tokens_per_chunk=2, split_events=True, comments=True)
    assert MockConfig.from_mapping({"openai": {"output_tokens": 64}}).openai.output_tokens_max == 64


@pytest.mark.parametrize(
    ("openai", "field", "fragment"),
    [
        ({"slots": -1}, "openai.slots", ">= 1"),
        ({"slots": 2, "queue": -1}, "openai.queue", ">= 0"),
        ({"queue": 4}, "openai.queue", "needs openai.slots"),
        ({"slots": 2, "slowdown": 0.5}, "openai.slowdown", ">= 1"),
        ({"slowdown": 2}, "openai.slowdown", "needs openai.slots"),
        ({"quirks": {"tokens_per_chunk": 0}}, "openai.quirks.tokens_per_chunk", ">= 1"),
        ({"quirks": {"split_event": True}}, "openai.quirks.split_event", "did you mean 'split_events'"),
        ({"quirks": {"comments": "yes"}}, "openai.quirks.comments", "true or false"),
        ({"ttft": {"model": "fixed"}}, "openai.ttft.delay", "required"),
        ({"inter_token": {"model": "lognorm"}}, "openai.inter_token.model", "did you mean 'lognormal'"),
        ({"ttft": {"model": "lognormal", "median": "200ms", "p95": "100ms"}}, "openai.ttft.p95", "greater than"),
        ({"output_tokens": {"min": 10, "max": 5}}, "openai.output_tokens.max", ">= openai.output_tokens.min"),
        ({"output_tokens": {"min": 10}}, "openai.output_tokens.max", "required"),
        ({"output_tokens": {"fixed": 0}}, "openai.output_tokens.fixed", ">= 1"),
        ({"errors": {"rate": 2}}, "openai.errors.rate", "between 0 and 1"),
        ({"errors": {"statuses": [500]}}, "openai.errors.statuses", "did you mean 'status'"),
        ({"errors": {"status": 200}}, "openai.errors.status", "400-599"),
        ({"disconnect_rate": -0.1}, "openai.disconnect_rate", "between 0 and 1"),
        ({"stall": {"after_tokens": 5}}, "openai.stall.duration", "required"),
        ({"stall": {"after_tokens": 5, "duration": "0s"}}, "openai.stall.duration", "greater than 0"),
        ({"slot": 3}, "openai.slot", "did you mean 'slots'"),
        ([1], "openai", "mapping"),
    ],
)
def test_config_errors_name_the_field(openai: Any, field: str, fragment: str) -> None:
    with pytest.raises(MockConfigError) as info:
        MockConfig.from_mapping({"openai": openai})
    assert info.value.field == field
    assert fragment in info.value.message


def test_http10_stream_ends_with_close_and_queue_zero_rejects() -> None:
    async def body() -> tuple[bytes, list[int]]:
        config = openai_config(slots=1, queue=0, inter_token={"model": "none"}, output_tokens={"fixed": 3})
        async with serving(config) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            payload = json.dumps(chat()).encode()
            writer.write(b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
            # while that one holds the only slot, another gets 429 (no queue)
            busy = await one(server.port, CHAT, chat(stream=False))
            raw = await asyncio.wait_for(reader.read(), 2.0)  # HTTP/1.0: no chunking, the close ends it
            writer.close()
            after = await one(server.port, CHAT, chat(stream=False))
            return raw, [busy.status, after.status]

    raw, statuses = run(body())
    head, sse = raw.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert sse.endswith(b"data: [DONE]\n\n") and sse.count(b'"content":"tok "') == 3
    assert statuses == [429, 200]

"""One test suite for every transport: the same requests, the same misbehaving servers, the same outcomes.

Each test runs once per transport ("aiohttp", "fast", "h2") and drives the
transport directly, the way a worker does (``send()`` on one object inside one
uvloop loop), against a real server on 127.0.0.1: the bundled mock, or a small
hand-written server (``Scripted``) that does exactly what a test needs, right
or wrong. ``Scripted`` speaks HTTP/1.1, or HTTP/2 (h2c prior knowledge, or h2
through TLS ALPN) for the h2 transport, so the same misbehaviour is staged in
either protocol. Whatever a transport does inside, the outcome must be the
interface's: ``(status, body bytes, None)`` or ``(None, 0, error kind)``, and a
cancelled send raises CancelledError.

The h2 transport is skipped, with the reason, while
``bench.engine.workers.transports.h2`` cannot be imported or raises NotImplementedError.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import ssl
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import orjson
import pytest
import uvloop

import bench
from bench.engine.errors import ProfileError
from bench.engine.plan.profile import Profile, parse_profile
from bench.engine.workers.transports import Transport, make_transport
from bench.mock import MockConfig, start_server
from bench.mock.behaviour import Behaviour
from bench.mock.connection import build_body

TRANSPORTS = ("aiohttp", "fast", "h2")


def run(coro: Any, timeout: float = 15.0) -> Any:
    """Run a test coroutine on a fresh uvloop loop, bounded in time."""
    return uvloop.run(asyncio.wait_for(coro, timeout))


# --------------------------------------------------------------------------- transports


@functools.cache
def h2_unavailable() -> str | None:
    """Why the h2 transport cannot be tested yet, or None when it can."""
    try:
        from bench.engine.workers.transports.h2 import H2Transport
    except ImportError as exc:
        return f"bench.engine.workers.transports.h2 cannot be imported yet ({exc})"
    except NotImplementedError as exc:
        return f"the h2 transport is not implemented yet ({exc})"

    async def probe() -> None:
        url = "http://127.0.0.1:9/"
        transport = H2Transport(make_profile("h2", url), url, 1)
        await transport.close()

    try:
        run(probe(), 5.0)
    except NotImplementedError as exc:
        return f"the h2 transport is not implemented yet ({exc})"
    return None


@pytest.fixture(params=TRANSPORTS)
def name(request: pytest.FixtureRequest) -> str:
    if request.param == "h2":
        reason = h2_unavailable()
        if reason:
            pytest.skip(reason)
    return request.param


def make_profile(
    transport: str,
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: str = "5s",
    keepalive: bool = True,
    pool_size: int | None = None,
    connect_timeout: str | None = None,
    tls_verify: bool | None = None,
) -> Profile:
    target: dict[str, Any] = {"url": url, "method": method, "timeout": timeout}
    if body is not None:
        target["body"] = body
    if headers:
        target["headers"] = headers
    client: dict[str, Any] = {"transport": transport, "keepalive": keepalive}
    for key, value in (("pool_size", pool_size), ("connect_timeout", connect_timeout), ("tls_verify", tls_verify)):
        if value is not None:
            client[key] = value
    try:
        return parse_profile({"target": target, "load": {"concurrency": 1, "requests": 1}, "client": client})
    except ProfileError as exc:
        pytest.skip(f"transport {transport}: {exc.field}: {exc.message}")


@contextlib.asynccontextmanager
async def opened(transport: str, url: str, pool_size: int = 4, **options: Any) -> AsyncIterator[Transport]:
    client = make_transport(make_profile(transport, url, pool_size=pool_size, **options), url, pool_size)
    try:
        yield client
    finally:
        await client.close()


def proto_of(transport: str) -> str:
    return "h2" if transport == "h2" else "h1"


# --------------------------------------------------------------------------- a hand-written server


@dataclass
class Respond:
    """Answer the request. ``chunked``: no length, the body in pieces (HTTP/1.1 chunked, h2 several DATA frames)."""

    status: int = 200
    body: bytes = b'{"ok":true}'
    chunked: bool = False
    close: bool = False  # "Connection: close" (h2: GOAWAY) and close after it
    http10: bool = False  # HTTP/1.0, no length: the body ends when the connection does (HTTP/1.1 only)
    delay: float = 0.0
    linger: float | None = None  # close the idle connection this long after answering, without saying so
    informational: bool = False  # a 103 Early Hints response first


NEVER = "never"  # read the request, never answer
CLOSE_MID = "close_mid"  # headers announcing 100 bytes, 10 of them, then close
GARBAGE = "garbage"  # bytes that are not a response
DROP = "drop"  # close the connection without a byte (h2: after a GOAWAY leaving the stream unprocessed)


@dataclass
class Received:
    conn: int  # which accepted connection, from 0
    index: int  # the request's number on that connection, from 0
    method: str
    target: str
    headers: dict[str, str]  # lower-case names; h2 pseudo-headers included
    body: bytes


@dataclass
class Scripted:
    """A server whose every answer is chosen by ``script(received)``, and that counts its connections."""

    proto: str = "h1"
    script: Callable[[Received], Any] = lambda received: Respond()
    tls: ssl.SSLContext | None = None
    accepted: int = 0
    open: int = 0
    max_open: int = 0
    resets: int = 0  # h2 streams the client reset
    requests: list[Received] = field(default_factory=list)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    async def __aenter__(self) -> "Scripted":
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def wait_closed_connections(self, timeout: float = 2.0) -> bool:
        """Wait until no client connection is open; whether that happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.open and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.open == 0

    async def wait_released(self, timeout: float = 2.0) -> bool:
        """Wait until every client connection closed, or (h2) the client reset a stream."""
        deadline = time.monotonic() + timeout
        while self.open and not self.resets and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.open == 0 or self.resets > 0

    async def wait_requests(self, count: int, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert len(self.requests) >= count, f"the server got {len(self.requests)} requests, expected {count}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.accepted
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        self._writers.add(writer)
        task = asyncio.current_task()
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if self.proto == "h2" or alpn == "h2":
                await self._serve_h2(reader, writer, number)
            else:
                await self._serve_h1(reader, writer, number)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    # HTTP/1.1 --------------------------------------------------------------------------

    async def _serve_h1(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        index = 0
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    key, value = line.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            received = Received(number, index, method, target, headers, body)
            index += 1
            self.requests.append(received)
            if not await self._act_h1(self.script(received), received, reader, writer):
                return

    async def _act_h1(self, action: Any, received: Received, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Do what the script says; False when the connection is done."""
        if action == NEVER:
            while await reader.read(65536):
                pass
            return False
        if action == DROP:
            return False
        if action == GARBAGE:
            writer.write(b"SPAM spam spam\r\nnot: http\r\n\r\n")
            await writer.drain()
            while await reader.read(65536):
                pass
            return False
        if action == CLOSE_MID:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            await writer.drain()
            return False
        assert isinstance(action, Respond), action
        if action.delay:
            await asyncio.sleep(action.delay)
        head = received.method == "HEAD"
        version = b"HTTP/1.0" if action.http10 else b"HTTP/1.1"
        parts = [b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"] if action.informational else []
        parts.append(b"%s %d X\r\nServer: scripted\r\n" % (version, action.status))
        body = b"" if head else action.body
        if action.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
            pieces = [action.body[i : i + 1000] for i in range(0, len(action.body), 1000)]
            body = b"" if head else b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        elif not action.http10:
            parts.append(b"Content-Length: %d\r\n" % len(action.body))
        if action.close:
            parts.append(b"Connection: close\r\n")
        writer.write(b"".join(parts) + b"\r\n" + body)
        await writer.drain()
        if action.close or action.http10:
            return False
        if action.linger is not None:
            await asyncio.sleep(action.linger)
            return False
        return True

    # HTTP/2 ----------------------------------------------------------------------------

    async def _serve_h2(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        import h2.config
        import h2.connection
        import h2.events
        import h2.exceptions

        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        index = 0
        ending = False

        def flush() -> None:
            data = conn.data_to_send()
            if data and not writer.is_closing():
                writer.write(data)

        def respond(stream_id: int, action: Respond, head: bool) -> None:
            if action.informational:
                conn.send_headers(stream_id, [(":status", "103"), ("link", "</style.css>; rel=preload")])
            headers = [(":status", str(action.status)), ("server", "scripted")]
            if not action.chunked:
                headers.append(("content-length", str(len(action.body))))
            conn.send_headers(stream_id, headers, end_stream=head or not action.body)
            if not head and action.body:
                size = 1000 if action.chunked else conn.max_outbound_frame_size
                pieces = [action.body[i : i + size] for i in range(0, len(action.body), size)]
                for i, piece in enumerate(pieces):
                    conn.send_data(stream_id, piece, end_stream=i == len(pieces) - 1)
            if action.close:
                conn.close_connection()
            flush()

        async def later(stream_id: int, action: Respond, head: bool) -> None:
            await asyncio.sleep(action.delay)
            with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                respond(stream_id, action, head)
                await writer.drain()

        async def linger(seconds: float) -> None:
            await asyncio.sleep(seconds)
            writer.transport.abort()

        while not ending:
            data = await reader.read(65536)
            if not data:
                return
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                flush()
                return
            for event in events:
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = (dict(event.headers), bytearray())
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id][1].extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    self.resets += 1
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id in streams:
                    headers, body = streams.pop(event.stream_id)
                    plain = {k: v for k, v in headers.items()}
                    received = Received(number, index, headers[":method"], headers[":path"], plain, bytes(body))
                    index += 1
                    self.requests.append(received)
                    action = self.script(received)
                    head = received.method == "HEAD"
                    if action == NEVER:
                        continue
                    if action == DROP:
                        # The h2 way of closing an idle connection: GOAWAY saying this stream was never processed.
                        conn.close_connection(last_stream_id=max(0, event.stream_id - 2))
                        flush()
                        ending = True
                    elif action == GARBAGE:
                        flush()
                        writer.write(b"\x00\x00\x04\x00\x00\x00\x00\x00\x00SPAM")  # DATA on stream 0: not HTTP/2
                    elif action == CLOSE_MID:
                        conn.send_headers(event.stream_id, [(":status", "200"), ("content-length", "100")])
                        conn.send_data(event.stream_id, b"x" * 10)
                        flush()
                        ending = True
                    elif action.delay:
                        task = asyncio.ensure_future(later(event.stream_id, action, head))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    else:
                        respond(event.stream_id, action, head)
                        if action.close:
                            ending = True
                        elif action.linger is not None:
                            task = asyncio.ensure_future(linger(action.linger))
                            self._tasks.add(task)
                            task.add_done_callback(self._tasks.discard)
            if not ending:
                flush()
            await writer.drain()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


OK = Respond()
OK_OUTCOME = (200, len(OK.body), None)


# --------------------------------------------------------------------------- against the mock


@pytest.mark.parametrize("body_bytes", [0, 1, 100, 70_000])
def test_statuses_and_body_sizes_match_the_mock(name: str, body_bytes: int) -> None:
    """The mock's seeded statuses, and each status's exact body size, are what every transport reports."""
    config = MockConfig.from_mapping({"errors": {"rate": 0.5, "statuses": [204, 404, 500, 503]}, "body_bytes": body_bytes, "seed": 7})
    truth = Behaviour(config)
    expected = []
    for _ in range(16):
        status = truth.next_response(0.0)[1]
        expected.append((status, 0 if status == 204 else len(build_body(status, body_bytes)), None))

    async def body() -> list:
        server = await start_server(config)
        try:
            async with opened(name, server.url + "/v1/x") as client:
                return [await client.send() for _ in expected]
        finally:
            await server.close()

    assert run(body()) == expected


def test_head_responses_have_no_body(name: str) -> None:
    async def body() -> list:
        server = await start_server(MockConfig.from_mapping({"body_bytes": 500}))
        try:
            async with opened(name, server.url + "/", method="HEAD") as client:
                return [await client.send() for _ in range(4)]
        finally:
            await server.close()

    assert run(body()) == [(200, 0, None)] * 4


# --------------------------------------------------------------------------- requests and responses


def test_post_json_body_arrives_intact(name: str) -> None:
    payload = {"prompt": "héllo, wörld", "max_tokens": 64, "stop": ["\n", "END"], "nested": {"a": [1, 2.5, None]}}

    async def body() -> tuple[Any, Scripted]:
        async with Scripted(proto_of(name)) as server:
            url = server.url + "/v1/generate?x=1&y=%20z"
            async with opened(name, url, method="POST", body=payload, headers={"Authorization": "Bearer t0ken", "X-Test": "yes"}) as client:
                outcome = await client.send()
            return outcome, server

    outcome, server = run(body())
    assert outcome == OK_OUTCOME
    [received] = server.requests
    assert received.method == "POST"
    assert received.target == "/v1/generate?x=1&y=%20z"
    assert received.body == orjson.dumps(payload)
    assert json.loads(received.body) == payload
    assert received.headers["content-type"] == "application/json"
    assert received.headers["authorization"] == "Bearer t0ken"
    assert received.headers["x-test"] == "yes"
    assert received.headers["user-agent"] == "bench"
    if name != "h2":
        assert received.headers["content-length"] == str(len(received.body))
        assert received.headers["host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_response_bodies_are_counted(name: str, chunked: bool) -> None:
    sizes = [0, 7, 1000, 3001, 12_345]

    async def body() -> tuple[list, Scripted]:
        script = lambda r: Respond(body=b"b" * sizes[len(server.requests) - 1], chunked=chunked)  # noqa: E731
        async with Scripted(proto_of(name), script) as server:
            async with opened(name, server.url) as client:
                return [await client.send() for _ in sizes], server

    outcomes, server = run(body())
    assert outcomes == [(200, size, None) for size in sizes]
    assert server.accepted == 1


def test_connection_close_and_http10_responses_end_the_connection(name: str) -> None:
    """A response saying Connection: close, or an HTTP/1.0 one whose body runs until the close, ends the connection."""
    if name == "h2":
        pytest.skip("HTTP/1.x framing only")
    plan = [Respond(body=b"a" * 10, close=True), Respond(body=b"b" * 20, http10=True), Respond(body=b"c" * 30)]

    async def body() -> tuple[list, Scripted]:
        async with Scripted("h1", lambda r: plan[len(server.requests) - 1]) as server:
            async with opened(name, server.url) as client:
                return [await client.send() for _ in plan], server

    outcomes, server = run(body())
    assert outcomes == [(200, 10, None), (200, 20, None), (200, 30, None)]
    assert server.accepted == 3


def test_informational_responses_are_skipped(name: str) -> None:
    async def body() -> list:
        async with Scripted(proto_of(name), lambda r: Respond(informational=True, body=b"final")) as server:
            async with opened(name, server.url) as client:
                return [await client.send() for _ in range(3)]

    assert run(body()) == [(200, 5, None)] * 3


def test_host_names_are_resolved(name: str) -> None:
    """``localhost`` may resolve to ::1 first; the server listens on 127.0.0.1 only."""

    async def body() -> list:
        async with Scripted(proto_of(name)) as server:
            async with opened(name, f"http://localhost:{server.port}/") as client:
                return [await client.send() for _ in range(2)]

    assert run(body()) == [OK_OUTCOME] * 2


def test_server_errors_are_statuses(name: str) -> None:
    statuses = [500, 503, 502, 429, 200]

    async def body() -> list:
        script = lambda r: Respond(status=statuses[len(server.requests) - 1], body=b"e" * 9)  # noqa: E731
        async with Scripted(proto_of(name), script) as server:
            async with opened(name, server.url) as client:
                return [await client.send() for _ in statuses]

    assert run(body()) == [(status, 9, None) for status in statuses]


# --------------------------------------------------------------------------- connections


def test_keepalive_reuses_one_connection(name: str) -> None:
    async def body() -> tuple[list, Scripted]:
        async with Scripted(proto_of(name)) as server:
            async with opened(name, server.url) as client:
                outcomes = [await client.send() for _ in range(10)]
            assert await server.wait_closed_connections(), "close() left a connection open"
            return outcomes, server

    outcomes, server = run(body())
    assert outcomes == [OK_OUTCOME] * 10
    assert server.accepted == 1


def test_keepalive_false_opens_one_connection_per_request(name: str) -> None:
    async def body() -> tuple[list, Scripted]:
        async with Scripted(proto_of(name)) as server:
            async with opened(name, server.url, keepalive=False) as client:
                outcomes = [await client.send() for _ in range(5)]
            return outcomes, server

    outcomes, server = run(body())  # (h2 refuses keepalive: false in the profile: skipped there)
    assert outcomes == [OK_OUTCOME] * 5
    assert server.accepted == 5
    assert all(r.headers.get("connection") == "close" for r in server.requests)


def test_pool_size_bounds_concurrent_connections(name: str) -> None:
    async def body() -> tuple[list, Scripted]:
        async with Scripted(proto_of(name), lambda r: Respond(delay=0.02)) as server:
            async with opened(name, server.url, pool_size=4) as client:
                outcomes = await asyncio.gather(*(client.send() for _ in range(50)))
            return outcomes, server

    outcomes, server = run(body())
    assert outcomes == [OK_OUTCOME] * 50
    assert 1 <= server.max_open <= 4
    assert server.accepted <= 4


def test_connection_refused_is_connect(name: str) -> None:
    async def body() -> list:
        url = f"http://127.0.0.1:{free_port()}/"
        async with opened(name, url) as client:
            return [await client.send() for _ in range(2)]

    assert run(body()) == [(None, 0, "connect")] * 2


def test_idle_connection_closed_by_the_server_is_replaced(name: str) -> None:
    """The server closes an idle keep-alive connection (and says so with a FIN): the next send opens a new one."""

    async def body() -> tuple[list, Scripted]:
        async with Scripted(proto_of(name), lambda r: Respond(linger=0.05)) as server:
            async with opened(name, server.url) as client:
                first = await client.send()
                await asyncio.sleep(0.25)
                return [first, await client.send()], server

    outcomes, server = run(body())
    assert outcomes == [OK_OUTCOME] * 2
    assert server.accepted == 2


def test_stale_keepalive_connection_is_retried_once(name: str) -> None:
    """The server drops every second request on a connection without a byte (it had closed it while idle; h2: a
    GOAWAY leaves the stream unprocessed): the send is retried once on a new connection and counted as one request."""

    async def body() -> tuple[list, Scripted]:
        async with Scripted(proto_of(name), lambda r: DROP if r.index >= 1 else OK) as server:
            async with opened(name, server.url) as client:
                return [await client.send() for _ in range(3)], server

    outcomes, server = run(body())
    assert outcomes == [OK_OUTCOME] * 3
    assert server.accepted == 3  # the first connection, then one per retried send
    assert len(server.requests) == 5


# --------------------------------------------------------------------------- failures


def test_server_that_never_answers_times_out(name: str) -> None:
    """Timeout: within the timeout plus a margin; the connection is discarded, so the late answer is nobody's."""
    plan = [Respond(delay=0.6, body=b"late" * 10), Respond(body=b"ok")]

    async def body() -> tuple[Any, float, Any, bool, Scripted]:
        async with Scripted(proto_of(name), lambda r: plan[min(len(server.requests), 2) - 1]) as server:
            async with opened(name, server.url, timeout="300ms") as client:
                started = time.monotonic()
                outcome = await client.send()
                elapsed = time.monotonic() - started
                released = await server.wait_released(1.0)
                after = await client.send()
            return outcome, elapsed, after, released, server

    outcome, elapsed, after, released, server = run(body())
    assert outcome == (None, 0, "timeout")
    assert 0.29 <= elapsed < 0.3 + 0.25, elapsed
    assert released, "the timed-out request's connection (h2: stream) was not released"
    assert after == (200, 2, None)  # not the late answer to the first request


def test_pool_wait_counts_toward_the_timeout(name: str) -> None:
    """The timeout is total: a request waiting for a pool slot that never frees times out too."""

    async def body() -> tuple[list, float]:
        async with Scripted(proto_of(name), lambda r: NEVER) as server:
            async with opened(name, server.url, pool_size=1, timeout="250ms") as client:
                started = time.monotonic()
                outcomes = await asyncio.gather(*(client.send() for _ in range(3)))
                return outcomes, time.monotonic() - started

    outcomes, elapsed = run(body())
    assert outcomes == [(None, 0, "timeout")] * 3
    assert elapsed < 0.25 + 0.25, elapsed


def test_server_closing_mid_response_is_read(name: str) -> None:
    async def body() -> list:
        async with Scripted(proto_of(name), lambda r: CLOSE_MID if len(server.requests) == 1 else OK) as server:
            async with opened(name, server.url) as client:
                return [await client.send(), await client.send()]

    assert run(body()) == [(None, 0, "read"), OK_OUTCOME]


def test_malformed_response_is_protocol(name: str) -> None:
    async def body() -> list:
        async with Scripted(proto_of(name), lambda r: GARBAGE if len(server.requests) == 1 else OK) as server:
            async with opened(name, server.url) as client:
                return [await client.send(), await client.send()]

    assert run(body()) == [(None, 0, "protocol"), OK_OUTCOME]


def test_cancelled_send_raises_cancelled_error(name: str) -> None:
    async def body() -> tuple[Any, Scripted]:
        async with Scripted(proto_of(name), lambda r: NEVER if len(server.requests) == 1 else OK) as server:
            async with opened(name, server.url) as client:
                task = asyncio.ensure_future(client.send())
                await server.wait_requests(1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return await client.send(), server

    after, server = run(body())
    assert after == OK_OUTCOME


def test_tls(name: str, tmp_path: Any) -> None:
    """https:// with a self-signed certificate: accepted with tls_verify false, a "connect" error with it true."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"] if name == "h2" else ["http/1.1"])

    async def body() -> tuple[list, list]:
        async with Scripted(proto_of(name), tls=context) as server:
            async with opened(name, server.url + "/", tls_verify=False) as client:
                unverified = [await client.send() for _ in range(2)]
            async with opened(name, server.url + "/", tls_verify=True) as client:
                verified = [await client.send()]
            return unverified, verified

    unverified, verified = run(body())
    assert unverified == [OK_OUTCOME] * 2
    assert verified == [(None, 0, "connect")]


# --------------------------------------------------------------------------- latency parity and end to end

PARITY_DELAY_MS = 20.0
PARITY_REQUESTS = 200


@functools.cache
def parity_medians() -> dict[str, float]:
    """Median latency (ms) of PARITY_REQUESTS sequential requests per transport, all transports side by side."""
    names = [n for n in TRANSPORTS if n != "h2" or not h2_unavailable()]

    async def sequential(client: Transport) -> float:
        latencies = []
        for _ in range(PARITY_REQUESTS):
            started = time.perf_counter()
            outcome = await client.send()
            latencies.append((time.perf_counter() - started) * 1e3)
            assert outcome[0] == 200, outcome
        return statistics.median(latencies)

    async def body() -> dict[str, float]:
        server = await start_server(MockConfig.from_mapping({"latency": {"model": "fixed", "delay": f"{PARITY_DELAY_MS:g}ms"}}))
        try:
            async with contextlib.AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(opened(n, server.url + "/")) for n in names]
                medians = await asyncio.gather(*(sequential(c) for c in clients))
            return dict(zip(names, medians))
        finally:
            await server.close()

    return run(body(), 30.0)


@pytest.mark.slow
def test_latency_parity(name: str) -> None:
    """Against a fixed 20 ms mock, every transport's median is within 1 ms of the others' (measured side by side)."""
    medians = parity_medians()
    assert PARITY_DELAY_MS <= medians[name] < PARITY_DELAY_MS + 3.0, medians
    assert max(medians.values()) - min(medians.values()) <= 1.0, medians


@pytest.mark.slow
def test_bench_run_open_loop_with_the_fast_transport() -> None:
    profile = parse_profile(
        {
            "name": "fast-e2e",
            "target": {"method": "GET", "timeout": "5s"},
            "mock": {"latency": {"model": "fixed", "delay": "20ms"}, "body_bytes": 64},
            "load": {"rate": "200/s", "duration": "5s", "requests": 200, "warmup": 20, "workers": 1},
            "client": {"transport": "fast"},
        }
    )
    result = bench.run(profile)
    summary = result.summary
    requests = summary["requests"]
    assert result.status == "completed"
    assert requests["sent"] == 200 and requests["ok"] == 200
    assert requests["sent"] == requests["ok"] + requests["http_errors"] + requests["client_errors"]
    assert requests["unfinished"] == 0 and summary["errors"] == {}
    assert summary["status_codes"] == {"200": 200}
    assert summary["bytes_received"] == 200 * 64
    assert summary["warmup"]["sent"] == 20 and summary["warmup"]["ok"] == 20
    assert summary["latency"]["count"] == 200
    assert 20.0 <= summary["latency"]["p50"] < 24.0, summary["latency"]


# --------------------------------------------------------------------------- the fast transport's own details


def test_fast_request_bytes_are_built_once() -> None:
    from bench.engine.workers.transports.fast import UNSUPPORTED, _build_request

    assert isinstance(UNSUPPORTED, dict)

    def build(url: str, method: str = "GET", headers: tuple = (), body: bytes | None = None, keepalive: bool = True) -> bytes:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        tls = parts.scheme == "https"
        return _build_request(method, parts, parts.hostname, parts.port or (443 if tls else 80), tls, headers, body, keepalive)

    assert build("http://example.test/") == b"GET / HTTP/1.1\r\nHost: example.test\r\nUser-Agent: bench\r\n\r\n"
    assert build("https://example.test:443") == b"GET / HTTP/1.1\r\nHost: example.test\r\nUser-Agent: bench\r\n\r\n"
    assert build("http://[::1]:8080/a b?q=1#frag").startswith(b"GET /a%20b?q=1 HTTP/1.1\r\nHost: [::1]:8080\r\n")
    post = build("http://h:81/p", "POST", (("Content-Type", "application/json"), ("User-Agent", "mine")), b'{"a":1}', keepalive=False)
    assert post == (
        b"POST /p HTTP/1.1\r\nHost: h:81\r\nContent-Type: application/json\r\nUser-Agent: mine\r\n"
        b'Content-Length: 7\r\nConnection: close\r\n\r\n{"a":1}'
    )
    assert b"Content-Length: 0\r\n" in build("http://h/", "POST")
    assert b"Authorization: Basic dTpw\r\n" in build("http://u:p@h/")


def test_fast_tries_each_address_and_remembers_the_one_that_answered() -> None:
    from bench.engine.workers.transports.fast import FastTransport

    async def body() -> tuple[list, list]:
        async with Scripted() as server:
            url = f"http://name.test:{server.port}/"
            client = FastTransport(make_profile("fast", url), url, 2)
            client._addrs = [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.1")]  # as if resolved
            client._addrs_until = float("inf")
            try:
                return [await client.send() for _ in range(2)], list(client._addrs)
            finally:
                await client.close()

    outcomes, addrs = run(body())
    assert outcomes == [OK_OUTCOME] * 2
    assert addrs[0] == (socket.AF_INET, "127.0.0.1")


async def repeat_until(client: Any, times: int, timeout: float = 5.0) -> list:
    """Submit one repeating request on the fast transport and let it go ``times`` times; its outcomes in order."""
    outcomes: list = []
    finished = asyncio.get_running_loop().create_future()

    def done(outcome: tuple) -> bool:
        outcomes.append(outcome)
        if len(outcomes) < times:
            return True
        finished.set_result(None)
        return False

    client.submit(done, repeat=True)
    await asyncio.wait_for(finished, timeout)
    return outcomes


@pytest.mark.parametrize(
    ("respond", "outcome"),
    [(OK, OK_OUTCOME), (Respond(close=True), OK_OUTCOME), (DROP, (None, 0, "read")), (NEVER, (None, 0, "timeout"))],
    ids=["keep-alive", "close", "drop", "never"],
)
def test_fast_repeating_request_goes_again_while_asked(respond: Any, outcome: tuple) -> None:
    """submit(repeat=True) sends the request again each time done() returns True: on the same connection while
    it stays usable, else through the pool; every send gets exactly one outcome, whatever the server does."""

    async def body() -> tuple[list, Scripted, int]:
        async with Scripted(script=lambda r: respond) as server:
            async with opened("fast", server.url, pool_size=1, timeout="150ms") as client:
                outcomes = await repeat_until(client, 6)
                await asyncio.sleep(0.05)  # nothing more is sent once done() said no
                sent = len(server.requests)
            return outcomes, server, sent

    outcomes, server, sent = run(body())
    assert outcomes == [outcome] * 6
    assert sent == 6
    assert server.accepted == (1 if respond is OK else 6)  # a closed, dropped or timed-out connection is replaced


def test_fast_response_completing_after_the_send_was_cancelled_is_dropped() -> None:
    """The waiting task is cancelled, then the response completes before the task wakes: no error, CancelledError."""

    async def body() -> None:
        async with Scripted(script=lambda r: NEVER) as server:
            async with opened("fast", server.url) as client:
                task = asyncio.ensure_future(client.send())
                await server.wait_requests(1)
                task.cancel()
                [conn] = client._conns
                conn.req.finish(OK_OUTCOME)  # what data_received does with a complete response: must not raise
                with pytest.raises(asyncio.CancelledError):
                    await task

    run(body())


def test_fast_repeating_request_cancelled_ends() -> None:
    async def body() -> tuple[list, int]:
        async with Scripted(script=lambda r: NEVER) as server:
            async with opened("fast", server.url, timeout="5s") as client:
                outcomes: list = []
                req = client.submit(lambda outcome: outcomes.append(outcome) or True, repeat=True)
                await server.wait_requests(1)
                client.cancel(req)
                await asyncio.sleep(0.05)
                return outcomes, len(server.requests)

    outcomes, sent = run(body())
    assert outcomes == [(None, 0, "cancelled")] and sent == 1


@pytest.mark.parametrize("with_body", [False, True], ids=["get", "post-without-content-type"])
def test_no_headers_beyond_the_profile(name: str, with_body: bool) -> None:
    """Every transport sends Host, User-Agent (and Content-Length for a body), nothing the profile did not ask for."""

    async def body() -> Scripted:
        async with Scripted(proto_of(name)) as server:
            options: dict[str, Any] = {"method": "POST", "body": "plain text"} if with_body else {}
            async with opened(name, server.url + "/", **options) as client:
                assert await client.send() == OK_OUTCOME
            return server

    [received] = run(body()).requests
    names = {key.lower() for key in received.headers if not key.startswith(":")} - {"host"}
    expected = {"user-agent", "content-length"} if with_body else {"user-agent"}
    if name == "h2":
        expected -= {"content-length"}
        names -= {"content-length"}
    assert names == expected, received.headers

"""HTTP/2 over real sockets on 127.0.0.1: the mock's h2c and TLS+ALPN sides, the ``h2`` transport, and a run end to end."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
import trustme
import uvloop
from hyperframe.frame import GoAwayFrame

import bench
from bench.engine.plan.profile import parse_profile
from bench.engine.workers.transports.h2 import H2Transport
from bench.mock import MockConfig, MockServerProcess, start_server
from bench.mock import h2 as mock_h2
from bench.mock.connection import build_body
from bench.mock.server import MockServer, tls_context

REPO_ROOT = Path(__file__).resolve().parent.parent


def run(coro: Any, timeout: float = 10.0) -> Any:
    """Run a test coroutine on a fresh uvloop loop, bounded in time."""
    return uvloop.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def serving(data: dict | None = None, **kwargs: Any) -> AsyncIterator[MockServer]:
    server = await start_server(MockConfig.from_mapping(data), **kwargs)
    try:
        yield server
    finally:
        await server.close()


def h2_connections(server: MockServer) -> list[mock_h2.H2ServerConnection]:
    return [c for c in server._shared.connections if isinstance(c, mock_h2.H2ServerConnection)]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


# --------------------------------------------------------------------------- a raw h2 client


class RawClient:
    """A minimal HTTP/2 client on asyncio streams and h2, to check the mock independently of bench's transport."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, window: int | None = None) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        if window is not None:  # a small window makes the server wait for WINDOW_UPDATE
            self.conn.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        self.conn.initiate_connection()
        self.responses: dict[int, dict[str, Any]] = {}
        self.events: list[Any] = []
        self.waiters: dict[int, asyncio.Future] = {}
        self.flush()
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, port: int, ssl_context: ssl.SSLContext | None = None, window: int | None = None) -> "RawClient":
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl_context, server_hostname="127.0.0.1" if ssl_context else None
        )
        return cls(reader, writer, window)

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    def request(self, method: str = "GET", path: str = "/") -> int:
        """Open a stream with a body-less request (see ``send_body`` for one with a body)."""
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(stream_id, headers, end_stream=True)
        self.responses[stream_id] = {"status": None, "body": b"", "done": False}
        self.waiters[stream_id] = asyncio.get_running_loop().create_future()
        self.flush()
        return stream_id

    async def response(self, stream_id: int) -> dict[str, Any]:
        await self.waiters[stream_id]
        return self.responses[stream_id]

    async def _read(self) -> None:
        while True:
            data = await self.reader.read(65536)
            if not data:
                for waiter in self.waiters.values():
                    if not waiter.done():
                        waiter.set_exception(ConnectionError("closed"))
                return
            for event in self.conn.receive_data(data):
                self.events.append(event)
                if isinstance(event, h2.events.ResponseReceived):
                    self.responses[event.stream_id]["status"] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    self.responses[event.stream_id]["body"] += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self.responses[event.stream_id]["done"] = True
                    self.waiters[event.stream_id].set_result(None)
            self.flush()

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def send_body(client: RawClient, body: bytes) -> int:
    """Send a POST whose body may exceed the server's windows, waiting for WINDOW_UPDATE as needed."""
    conn = client.conn
    stream_id = conn.get_next_available_stream_id()
    headers = [(":method", "POST"), (":path", "/"), (":scheme", "http"), (":authority", "t"), ("content-length", str(len(body)))]
    conn.send_headers(stream_id, headers)
    client.responses[stream_id] = {"status": None, "body": b"", "done": False}
    client.waiters[stream_id] = asyncio.get_running_loop().create_future()
    offset = 0
    while offset < len(body):
        window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
        if window <= 0:
            client.flush()
            await asyncio.sleep(0.005)
            continue
        chunk = body[offset : offset + window]
        offset += len(chunk)
        conn.send_data(stream_id, chunk, end_stream=offset == len(body))
        client.flush()
    return stream_id


# --------------------------------------------------------------------------- frame boundaries


def test_frame_slicer_cuts_only_at_frame_boundaries_however_the_bytes_arrive():
    import random

    rng = random.Random(4)
    frames = [bytes([0, 0, 0]) + b"\x01" * 6]  # an empty frame first
    for _ in range(300):
        length = rng.choice([0, 1, 5, 9, 40, 300, 16384])
        frames.append(length.to_bytes(3, "big") + bytes([rng.randrange(10)]) + b"\x00" * 5 + b"p" * length)
    stream = mock_h2.H2_PREFACE + b"".join(frames)
    boundaries = {len(mock_h2.H2_PREFACE)}
    for frame in frames:
        boundaries.add(max(boundaries) + len(frame))
    for trial in range(20):
        slicer = mock_h2.FrameSlicer(skip=len(mock_h2.H2_PREFACE))
        offset = 0
        while offset < len(stream):
            piece = stream[offset : offset + rng.choice([1, 3, 8, 9, 10, 100, 5000, 40000])]
            base = offset
            while piece:
                cut = slicer.cut(piece, rng.choice([1, 2, 8]))
                assert 0 < cut <= len(piece)
                if cut < len(piece):  # cut short: it must be at a frame end
                    assert base + cut in boundaries
                piece, base = piece[cut:], base + cut
            offset = base
        assert slicer.pending == 0 and slicer.partial == b""


# --------------------------------------------------------------------------- mock: h2c


def test_mock_h2c_concurrent_streams_on_one_connection():
    async def main():
        async with serving({"body_bytes": 300}) as server:
            client = await RawClient.open(server.port)
            methods = ["GET", "HEAD"] * 5
            ids = [client.request(method) for method in methods]
            responses = [await client.response(i) for i in ids]
            assert len(h2_connections(server)) == 1
            assert [r["status"] for r in responses] == [200] * 10
            for method, r in zip(methods, responses):
                assert r["body"] == (build_body(200, 300) if method == "GET" else b"")
            await client.close()

    run(main())


def test_mock_h2c_delays_overlap():
    async def main():
        async with serving({"latency": {"model": "fixed", "delay": "200ms"}}) as server:
            client = await RawClient.open(server.port)
            await asyncio.sleep(0.05)  # let SETTINGS settle
            start = time.monotonic()
            ids = [client.request() for _ in range(100)]
            responses = [await client.response(i) for i in ids]
            elapsed = time.monotonic() - start
            assert all(r["status"] == 200 for r in responses)
            assert 0.19 <= elapsed < 0.34, elapsed  # one delay, not 100 of them (nor 2)
            await client.close()

    run(main())


def test_mock_h2c_error_injection():
    async def main():
        async with serving({"errors": {"rate": 1.0, "statuses": [503]}, "body_bytes": 40}) as server:
            client = await RawClient.open(server.port)
            responses = [await client.response(client.request()) for _ in range(5)]
            assert {r["status"] for r in responses} == {503}
            assert all(r["body"] == build_body(503, 40) for r in responses)
            await client.close()
        async with serving({"errors": {"rate": 0.5, "statuses": [500, 502]}, "seed": 3}) as server:
            client = await RawClient.open(server.port)
            ids = [client.request() for _ in range(60)]
            statuses = [(await client.response(i))["status"] for i in ids]
            assert set(statuses) == {200, 500, 502}
            await client.close()

    run(main())


def test_mock_h2_stall_holds_streams_until_it_ends():
    async def main():
        async with serving({"stall": {"at": "100ms", "duration": "300ms"}}) as server:
            client = await RawClient.open(server.port)
            start = time.monotonic()
            await client.response(client.request())  # the first request starts the stall clock
            await asyncio.sleep(0.15)
            ids = [client.request() for _ in range(5)]
            for i in ids:
                assert (await client.response(i))["status"] == 200
            assert 0.38 <= time.monotonic() - start < 0.55  # released when the stall ends, at 0.4 s
            await client.close()

    run(main())


def test_mock_same_port_serves_http11_to_aiohttp():
    async def main():
        async with serving({"body_bytes": 100}) as server:
            h2client = await RawClient.open(server.port)
            assert (await h2client.response(h2client.request()))["status"] == 200
            async with aiohttp.ClientSession() as session:
                async with session.post(server.url + "/", data=b"x" * 1000) as response:
                    assert response.status == 200 and response.version == aiohttp.HttpVersion11
                    assert await response.read() == build_body(200, 100)
            await h2client.close()

    run(main())


def test_mock_h2_flow_control_both_directions(monkeypatch):
    """A 200 kB response through a 16 kB client window, and a 200 kB request body through the server's windows."""
    monkeypatch.setattr(mock_h2, "RECEIVE_WINDOW", 65535)  # the protocol defaults, so the body needs acknowledgements
    monkeypatch.setattr(mock_h2, "CONNECTION_WINDOW", 65535)

    async def main():
        async with serving({"body_bytes": 200_000}) as server:
            client = await RawClient.open(server.port, window=16_384)
            await asyncio.sleep(0.05)
            ids = [client.request() for _ in range(3)]
            for i in ids:
                response = await client.response(i)
                assert response["status"] == 200 and len(response["body"]) == 200_000
            stream_id = await send_body(client, b"y" * 200_000)
            response = await client.response(stream_id)
            assert response["status"] == 200 and len(response["body"]) == 200_000
            await client.close()

    run(main())


def test_mock_h2_ping_and_reset_cancels_timer():
    async def main():
        async with serving({"latency": {"model": "fixed", "delay": "5s"}}) as server:
            client = await RawClient.open(server.port)
            client.conn.ping(b"12345678")
            stream_id = client.request()
            await asyncio.sleep(0.1)
            (handler,) = h2_connections(server)
            assert len(handler._timers) == 1
            client.conn.reset_stream(stream_id)
            client.flush()
            await asyncio.sleep(0.1)
            assert handler._timers == {}
            assert any(isinstance(e, h2.events.PingAckReceived) and e.ping_data == b"12345678" for e in client.events)
            await client.close()

    run(main())


def test_mock_h2_protocol_violation_gets_goaway():
    async def main():
        async with serving() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(mock_h2.H2_PREFACE + b"\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # DATA on stream 0
            data = await asyncio.wait_for(reader.read(), 2)  # everything, up to EOF
            frame_types = []
            while data:
                length = int.from_bytes(data[:3], "big")
                frame_types.append(data[3])
                data = data[9 + length :]
            assert frame_types[0] == 0x4 and frame_types[-1] == 0x7  # our SETTINGS ... GOAWAY, then the close
            writer.close()

    run(main())


# --------------------------------------------------------------------------- mock: TLS + ALPN


def test_mock_tls_alpn_picks_h2_or_http11(ca):
    async def main():
        async with serving({"body_bytes": 50}, ssl_context=server_tls(ca)) as server:
            assert server.url.startswith("https://")
            client_context = ssl.create_default_context()
            ca.configure_trust(client_context)
            client_context.set_alpn_protocols(["h2", "http/1.1"])
            client = await RawClient.open(server.port, ssl_context=client_context)
            assert client.writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
            response = await client.response(client.request())
            assert response["status"] == 200 and response["body"] == build_body(200, 50)
            await client.close()

            aiohttp_context = ssl.create_default_context()
            ca.configure_trust(aiohttp_context)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=aiohttp_context)) as session:
                async with session.get(server.url + "/") as response:
                    assert response.status == 200 and response.version == aiohttp.HttpVersion11
                    assert await response.read() == build_body(200, 50)

    run(main())


# --------------------------------------------------------------------------- H2Transport


def make_transport(url: str, pool_size: int = 1, **target: Any) -> H2Transport:
    client = target.pop("client", {})
    profile = parse_profile(
        {
            "target": {"url": url, **target},
            "load": {"concurrency": 1, "requests": 1},
            "client": {"transport": "h2", **client},
        }
    )
    return H2Transport(profile, url, pool_size)


def test_transport_statuses_and_body_sizes():
    async def main():
        config = {"errors": {"rate": 0.4, "statuses": [500, 503]}, "body_bytes": 777, "seed": 5}
        async with serving(config) as server:
            transport = make_transport(server.url + "/v1/generate?x=1", method="POST", body={"prompt": "hi"})
            results = await asyncio.gather(*(transport.send() for _ in range(60)))
            assert {r[0] for r in results} == {200, 500, 503}
            assert {r[1:] for r in results} == {(777, None)}
            assert transport.connections_opened == 1
            await transport.close()

    run(main())


def test_transport_200_concurrent_sends_share_one_connection(monkeypatch):
    accepted = []
    original = mock_h2.H2ServerConnection.__init__

    def counting(self, *args, **kwargs):
        accepted.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(mock_h2.H2ServerConnection, "__init__", counting)

    async def main():
        async with serving({"latency": {"model": "fixed", "delay": "100ms"}, "body_bytes": 64}) as server:
            transport = make_transport(server.url + "/")
            start = time.monotonic()
            results = await asyncio.gather(*(transport.send() for _ in range(200)))
            elapsed = time.monotonic() - start
            assert results == [(200, 64, None)] * 200
            assert len(accepted) == 1 and len(h2_connections(server)) == 1
            # The mock allows 100 streams at once: two rounds of 100 ms on the one connection.
            assert mock_h2.MAX_CONCURRENT_STREAMS == 100
            assert 0.2 <= elapsed < 0.6, elapsed
            await transport.close()
            await asyncio.sleep(0.05)
            assert h2_connections(server) == []  # closed cleanly (GOAWAY, then close)

    run(main())


def test_transport_opens_more_connections_up_to_pool_size_when_streams_run_out():
    async def main():
        async with serving({"latency": {"model": "fixed", "delay": "100ms"}}) as server:
            transport = make_transport(server.url + "/", pool_size=2)
            start = time.monotonic()
            results = await asyncio.gather(*(transport.send() for _ in range(200)))
            elapsed = time.monotonic() - start
            assert {r[0] for r in results} == {200}
            assert transport.connections_opened == 2 and len(h2_connections(server)) == 2
            assert elapsed < 0.4, elapsed  # one round of 100 streams on each connection (plus a connect)
            await transport.close()

    run(main())


def test_transport_moves_to_a_new_connection_when_stream_ids_run_out():
    async def main():
        async with serving() as server:
            transport = make_transport(server.url + "/")
            assert await transport.send() == (200, 64, None)
            (connection,) = transport.usable
            connection.h2.highest_outbound_stream_id = 2**31 - 3  # the next stream takes the last id
            assert await asyncio.gather(*(transport.send() for _ in range(3))) == [(200, 64, None)] * 3
            assert transport.connections_opened == 2 and connection not in transport.usable
            await asyncio.sleep(0.05)
            assert len(h2_connections(server)) == 1  # the old one closed once its last stream ended
            await transport.close()

    run(main())


def test_transport_timeout_resets_the_stream():
    async def main():
        async with serving({"latency": {"model": "fixed", "delay": "2s"}}) as server:
            transport = make_transport(server.url + "/", timeout="200ms")
            start = time.monotonic()
            results = await asyncio.gather(*(transport.send() for _ in range(5)))
            assert results == [(None, 0, "timeout")] * 5
            assert 0.19 <= time.monotonic() - start < 0.5
            await asyncio.sleep(0.05)
            (handler,) = h2_connections(server)
            assert handler._timers == {}  # RST_STREAM reached the server and cancelled each response
            await transport.close()

    run(main())


def test_transport_timeout_counts_the_wait_for_a_stream():
    async def main():
        async with serving({"latency": {"model": "fixed", "delay": "300ms"}}) as server:
            transport = make_transport(server.url + "/", timeout="200ms")
            results = await asyncio.gather(*(transport.send() for _ in range(150)))  # 50 wait for a stream slot
            assert results == [(None, 0, "timeout")] * 150
            server.behaviour.latency.delay = 0.0
            assert await transport.send() == (200, 64, None)  # nothing left behind blocks the next request
            await transport.close()

    run(main())


def test_transport_connection_refused_is_connect():
    async def main():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        transport = make_transport(f"http://127.0.0.1:{port}/")
        results = await asyncio.gather(*(transport.send() for _ in range(3)))
        assert results == [(None, 0, "connect")] * 3
        assert "cannot connect" in (transport.last_error or "")
        await transport.close()

    run(main())


def test_transport_server_killed_mid_run_is_read_then_connect():
    async def main():
        mock = MockServerProcess(MockConfig.from_mapping({"latency": {"model": "fixed", "delay": "1s"}})).start()
        try:
            transport = make_transport(mock.url + "/")
            tasks = [asyncio.ensure_future(transport.send()) for _ in range(20)]
            await asyncio.sleep(0.3)
            mock.stop()
            results = await asyncio.gather(*tasks)
            assert results == [(None, 0, "read")] * 20
            assert await transport.send() == (None, 0, "connect")  # replaced, and nobody listens now
            await transport.close()
        finally:
            mock.stop()

    run(main())


def test_transport_cancelled_send_raises_and_resets_the_stream():
    async def main():
        async with serving({"latency": {"model": "fixed", "delay": "2s"}}) as server:
            transport = make_transport(server.url + "/")
            task = asyncio.ensure_future(transport.send())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.05)
            (handler,) = h2_connections(server)
            assert handler._timers == {}
            server.behaviour.latency.delay = 0.0  # the same connection still works
            assert await transport.send() == (200, 64, None)
            await transport.close()

    run(main())


def test_transport_tls_without_verification(ca):
    async def main():
        async with serving({"body_bytes": 10}, ssl_context=server_tls(ca)) as server:
            transport = make_transport(server.url + "/", client={"tls_verify": False})
            assert await asyncio.gather(*(transport.send() for _ in range(5))) == [(200, 10, None)] * 5
            await transport.close()
            verifying = make_transport(server.url + "/")  # trustme's CA is not trusted by default
            assert await verifying.send() == (None, 0, "connect")
            await verifying.close()

    run(main())


def test_mock_process_serves_tls_from_pem_files(ca, tmp_path):
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    with MockServerProcess(MockConfig.from_mapping({"body_bytes": 20}), ssl_context=tls_context(str(pem))) as mock:
        assert mock.url.startswith("https://")

        async def main():
            transport = make_transport(mock.url + "/", client={"tls_verify": False})
            assert await transport.send() == (200, 20, None)
            await transport.close()

        run(main())


def test_transport_tls_server_without_h2_is_protocol(ca):
    async def main():
        context = server_tls(ca)
        context.set_alpn_protocols(["http/1.1"])
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        transport = make_transport(f"https://127.0.0.1:{port}/", client={"tls_verify": False})
        assert await transport.send() == (None, 0, "protocol")
        assert "ALPN" in (transport.last_error or "")
        await transport.close()
        server.close()

    run(main())


def test_transport_h2c_against_http11_only_server_is_protocol():
    async def main():
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = make_transport(f"http://127.0.0.1:{port}/")
        assert await asyncio.gather(transport.send(), transport.send()) == [(None, 0, "protocol")] * 2
        await transport.close()
        server.close()

    run(main())


class ScriptedServer(asyncio.Protocol):
    """A raw h2 server for what the mock does not do: GOAWAY mid-run and small windows with request bodies."""

    connections = 0

    def __init__(self, goaway_after: int | None = None, last_stream_id: int = 0, every_connection: bool = False) -> None:
        type(self).connections += 1
        self.goaway_after = goaway_after if every_connection or type(self).connections == 1 else None
        self.last_stream_id = last_stream_id
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.pending: list[int] = []
        self.received: dict[int, int] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.conn.initiate_connection()  # default windows: 65,535 bytes
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.received[event.stream_id] = self.received.get(event.stream_id, 0) + len(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.pending.append(event.stream_id)
        if self.goaway_after is None:
            for stream_id in self.pending:
                self._respond(stream_id)
            self.pending.clear()
        elif len(self.pending) >= self.goaway_after:
            self.transport.write(self.conn.data_to_send())
            goaway = GoAwayFrame(0, last_stream_id=self.last_stream_id, error_code=0)
            self.transport.write(goaway.serialize())  # behind h2's back: h2 would refuse to answer after it
            for stream_id in self.pending:
                if stream_id <= self.last_stream_id:
                    self._respond(stream_id)
            self.pending.clear()
            self.goaway_after = None
        self.transport.write(self.conn.data_to_send())

    def _respond(self, stream_id: int) -> None:
        body = b"%d" % self.received.get(stream_id, 0)
        self.conn.send_headers(stream_id, [(b":status", b"200"), (b"content-length", b"%d" % len(body))])
        self.conn.send_data(stream_id, body, end_stream=True)


def test_transport_goaway_resends_unprocessed_streams_on_a_new_connection():
    async def main():
        ScriptedServer.connections = 0
        server = await asyncio.get_running_loop().create_server(
            lambda: ScriptedServer(goaway_after=5, last_stream_id=5), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        transport = make_transport(f"http://127.0.0.1:{port}/")
        results = await asyncio.gather(*(transport.send() for _ in range(5)))  # streams 1, 3, 5, 7, 9
        assert results == [(200, 1, None)] * 5  # 7 and 9 were not processed: sent again on a second connection
        assert ScriptedServer.connections == 2
        assert await transport.send() == (200, 1, None)  # the second connection goes on
        assert ScriptedServer.connections == 2
        await transport.close()
        server.close()

    run(main())


def test_transport_resends_an_unprocessed_stream_only_once():
    async def main():
        ScriptedServer.connections = 0
        server = await asyncio.get_running_loop().create_server(
            lambda: ScriptedServer(goaway_after=1, last_stream_id=0, every_connection=True), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        transport = make_transport(f"http://127.0.0.1:{port}/")
        assert await transport.send() == (None, 0, "read")  # unprocessed twice: a failure, not a loop
        assert ScriptedServer.connections == 2
        await transport.close()
        server.close()

    run(main())


def test_transport_request_body_respects_flow_control():
    async def main():
        ScriptedServer.connections = 0
        server = await asyncio.get_running_loop().create_server(ScriptedServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        body = "z" * 300_000  # far beyond the server's 65,535-byte windows
        transport = make_transport(f"http://127.0.0.1:{port}/", method="POST", body=body)
        results = await asyncio.gather(*(transport.send() for _ in range(3)))
        assert results == [(200, 6, None)] * 3  # the server answers with the byte count it read: b"300000"
        await transport.close()
        server.close()

    run(main())


# --------------------------------------------------------------------------- end to end


def write_profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "h2.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
def test_run_profile_with_h2_transport_against_the_mock(tmp_path):
    path = write_profile(
        tmp_path,
        """
name: h2-e2e
target: {method: POST, body: {prompt: hi}, timeout: 5s}
mock: {latency: {model: fixed, delay: 50ms}, body_bytes: 128}
load: {concurrency: 10, requests: 200, warmup: 10, workers: 1}
client: {transport: h2, pool_size: 1}
sla: {p95: 500ms, error_rate: 0%}
""",
    )
    result = bench.run(bench.load_profile(path))
    summary = result.summary
    requests = summary["requests"]
    assert requests["sent"] == requests["completed"] == requests["ok"] == 200
    assert requests["client_errors"] == requests["http_errors"] == 0
    assert summary["status_codes"] == {"200": 200}
    assert summary["bytes_received"] == 200 * 128
    assert 50 <= summary["latency"]["p50"] < 80, summary["latency"]
    assert result.verdict.passed


@pytest.mark.slow
def test_shipped_http2_profile_runs(tmp_path):
    profile = bench.load_profile(REPO_ROOT / "profiles" / "http2.yaml", {"requests": 100, "json": str(tmp_path / "r.json")})
    assert profile.client.transport == "h2" and profile.client.pool_size == 1 and profile.load.concurrency == 20
    result = bench.run(profile)
    requests = result.summary["requests"]
    assert requests["ok"] == requests["sent"] == 100
    assert 150 < result.summary["latency"]["p50"] < 300  # the mock's median is 215 ms
    assert result.verdict.passed

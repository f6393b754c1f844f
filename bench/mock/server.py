"""The mock HTTP/1.1 server: uvloop + httptools protocol, in-process, blocking and child-process runners.

HTTP/2 is served too: a connection whose first bytes are the HTTP/2 preface (h2c
with prior knowledge), or that negotiated ``h2`` through TLS ALPN, is handed over
to ``bench.mock.h2``. TLS is optional (``ssl_context``; ``tls_context`` builds one).

It owns the sockets and process handling so that load tests have a fast, predictable
target on the same machine: responses are prebuilt bytes, delays are event-loop timers
(never blocking), pipelined responses leave in request order, and a child server dies
with its parent instead of being left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import threading
from dataclasses import replace
from http import HTTPStatus
from typing import Any, Callable, Iterator

import httptools
import orjson
import uvloop
from time import monotonic as _monotonic

from bench.mock.behaviour import Behaviour
from bench.mock.config import MockConfig
from bench.mock.config import server_url as _url
from bench.mock.h2 import H2_PREFACE as _H2_PREFACE  # imported up front: the first h2 client must not wait for it
from bench.mock.h2 import H2ServerConnection

__all__ = ["MockServer", "run_server", "start_server", "tls_context"]

_BACKLOG = 1024
_PARENT_POLL_S = 0.5
_NO_BODY_STATUSES = frozenset({204, 304})
_ALPN = ["h2", "http/1.1"]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def build_body(status: int, size: int) -> bytes:
    """The JSON body for ``status``, exactly ``size`` bytes long.

    ``{"status":200,"pad":"xx..."}`` when ``size`` >= 23 (the unpadded object); smaller
    sizes get ``{}`` padded with trailing spaces (still valid JSON), ``0`` for 1 byte,
    and nothing for 0.
    """
    minimal = orjson.dumps({"status": status, "pad": ""})
    if size >= len(minimal):
        return orjson.dumps({"status": status, "pad": "x" * (size - len(minimal))})
    if size >= 2:
        return b"{}" + b" " * (size - 2)
    return b"0" if size == 1 else b""


def _response(status: int, body: bytes, keep_alive: bool, head: bool) -> bytes:
    """Complete response bytes; 1xx, 204 and 304 go without body or Content-Length, as HTTP requires."""
    if status in _NO_BODY_STATUSES or status < 200:
        length, body = b"", b""
    else:
        length = b"Content-Length: %d\r\n" % len(body)
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, _reason(status).encode("latin-1")),
            b"Server: bench-mock\r\nContent-Type: application/json\r\n",
            length,
            b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n",
            b"" if head else body,
        )
    )


class _Shared:
    """State shared by all connections of one listening server: behaviour, prebuilt responses, live connections."""

    __slots__ = ("behaviour", "_loop_call_later", "_call_soon", "connections", "head_responses", "responses", "time", "bad_request", "openai")

    def __init__(self, loop: asyncio.AbstractEventLoop, config: MockConfig) -> None:
        self.behaviour = Behaviour(config)
        self.openai: Any = None  # bench.mock.openai.OpenAIBehaviour when config.openai is set
        self.time = loop.time
        self._loop_call_later = loop.call_later
        self._call_soon = loop.call_soon
        self.connections: set[_Connection] = set()
        statuses = config.response_statuses
        bodies = {status: build_body(status, config.body_bytes) for status in statuses}
        # Indexed by keep_alive (False -> 0, True -> 1).
        self.responses = {
            s: (_response(s, b, False, False), _response(s, b, True, False))
            for s, b in bodies.items()
        }
        self.head_responses = {
            s: (_response(s, b, False, True), _response(s, b, True, True))
            for s, b in bodies.items()
        }
        self.bad_request = _response(400, orjson.dumps({"status": 400, "error": "malformed request"}), False, False)

    def call_later(self, delay: float, callback, *args) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds, never before.

        The mock is the oracle the load tester's accuracy is tested against, so
        a response must not leave before its delay. uvloop rounds timers to whole
        milliseconds from a millisecond clock and can fire up to ~1 ms early;
        when that happens the callback is re-armed for the remainder (and, for
        the last fraction of a millisecond, run from the next loop iterations).
        """
        due = _monotonic() + delay
        return self._loop_call_later(delay, self._when_due, due, callback, args)

    def _when_due(self, due: float, callback, args) -> None:
        remaining = due - _monotonic()
        if remaining <= 0.0:
            callback(*args)
        elif remaining > 0.001:
            self._loop_call_later(remaining, self._when_due, due, callback, args)
        else:
            self._call_soon(self._when_due, due, callback, args)


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, schedules each response, writes them in request order.

    Requests are numbered; ``_send_seq`` is the next number allowed on the wire, and
    responses that become ready earlier wait in ``_early``. After a request that ends
    the connection (``Connection: close``, HTTP/1.0, malformed, upgrade, client EOF)
    further input is ignored and the socket closes once everything before it is sent.
    """

    __slots__ = ("_batch", "_close_seq", "_early", "_next_seq", "_parser", "_send_seq", "_shared", "_sniff", "_transport")

    def __init__(self, shared: _Shared) -> None:
        self._shared = shared
        self._parser = httptools.HttpRequestParser(self)
        self._transport: Any = None
        self._next_seq = 0
        self._send_seq = 0
        self._close_seq: int | None = None
        self._early: dict[int, bytes] = {}
        self._batch: list[bytes] | None = None
        self._sniff: bytes | None = b""  # the first bytes, until we know whether they are the HTTP/2 preface

    # asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._shared.connections.add(self)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._switch_to_h2(b"")

    def connection_lost(self, exc: BaseException | None) -> None:
        self._transport = None
        self._early.clear()
        self._shared.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._sniff is not None:  # only until the first bytes have been classified
            data = self._sniffed(data)
            if data is None:
                return
        if self._close_seq is not None:
            return
        # Responses ready during this feed (pipelining, zero delay) leave in one write.
        self._batch = batch = []
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # That request was answered; what follows is a protocol we do not speak.
            self._close_after(self._next_seq - 1)
        except httptools.HttpParserError:
            if self._close_seq is None:  # else: llhttp rejects data after a closing request; ignore it
                self._reject()
        self._batch = None
        transport = self._transport
        if transport is None:
            return
        if batch:
            transport.write(batch[0] if len(batch) == 1 else b"".join(batch))
        if self._close_seq is not None and self._send_seq > self._close_seq:
            self._close()

    def eof_received(self) -> bool | None:
        # The client stopped sending: answer what it already asked, then close.
        self._close_after(self._next_seq - 1)
        return True if self._send_seq <= self._close_seq else None

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and self._close_seq is None:
            self._transport.resume_reading()

    # httptools callbacks ------------------------------------------------------------

    def on_message_complete(self) -> None:
        if self._close_seq is not None:
            return
        seq = self._next_seq
        self._next_seq = seq + 1
        shared = self._shared
        parser = self._parser
        keep_alive = parser.should_keep_alive()
        behaviour = shared.behaviour
        if behaviour.instant:
            delay, status = 0.0, 200
        else:
            delay, status = behaviour.next_response(shared.time())
        if parser.get_method() == b"HEAD":
            data = shared.head_responses[status][keep_alive]
        else:
            data = shared.responses[status][keep_alive]
        if not keep_alive:
            self._close_after(seq)
        if delay > 0.0:
            shared.call_later(delay, self._deliver, seq, data)
        else:
            self._deliver(seq, data)

    # internals ----------------------------------------------------------------------

    def _sniffed(self, data: bytes) -> bytes | None:
        """The first bytes: HTTP/1.1 data to parse, or None (kept for more, or handed to HTTP/2)."""
        data = self._sniff + data  # type: ignore[operator]
        if len(data) < len(_H2_PREFACE) and _H2_PREFACE.startswith(data):
            self._sniff = data
            return None
        self._sniff = None
        if data.startswith(_H2_PREFACE):
            self._switch_to_h2(data)
            return None
        return data

    def _switch_to_h2(self, data: bytes) -> None:
        """Hand this connection to the HTTP/2 handler, with the bytes read so far."""
        transport, self._transport = self._transport, None
        self._sniff = None
        self._shared.connections.discard(self)
        handler = H2ServerConnection(self._shared, transport)
        transport.set_protocol(handler)
        handler.start(data)

    def _deliver(self, seq: int, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if seq != self._send_seq:
            self._early[seq] = data
            return
        seq += 1
        early = self._early
        if early and seq in early:
            parts = [data]
            while seq in early:
                parts.append(early.pop(seq))
                seq += 1
            data = b"".join(parts)
        self._send_seq = seq
        batch = self._batch
        if batch is not None:
            batch.append(data)  # data_received writes and closes after the feed
            return
        transport.write(data)
        if self._close_seq is not None and seq > self._close_seq:
            self._close()

    def _close_after(self, seq: int) -> None:
        if self._close_seq is None:
            self._close_seq = seq
            if self._transport is not None:
                self._transport.pause_reading()

    def _reject(self) -> None:
        seq = self._next_seq
        self._next_seq = seq + 1
        self._close_after(seq)
        self._deliver(seq, self._shared.bad_request)

    def _close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def _abort(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()


class _InstantConnection(_Connection):
    """A connection of a server whose every answer is an instant 200 (latency none, no errors, no stall).

    Each response is ready when its request is parsed, so they leave in order,
    and always from within ``data_received``: ``_batch`` is one list for the
    connection's life, filled by the parser's callback and written (joined,
    when pipelined) after each feed.

    Load generators send the same bytes again and again. A feed that was
    exactly one whole keep-alive request, parsed from a clean parser state
    (every message begun was complete) back to a clean state, is remembered
    with its answer: the same bytes arriving again in a clean state would
    parse the same way, so they get the same answer without the parser.
    """

    __slots__ = ("_ok", "_head_ok", "_begun", "_repeat_request", "_repeat_response")

    def __init__(self, shared: _Shared) -> None:
        super().__init__(shared)
        self._batch = []
        self._ok = shared.responses[200]  # by keep-alive: (close, keep-alive)
        self._head_ok = shared.head_responses[200]
        self._begun = 0  # messages the parser has begun; equal to _next_seq (completed) between messages
        self._repeat_request: bytes | None = None
        self._repeat_response = b""

    def data_received(self, data: bytes) -> None:
        if data == self._repeat_request and self._begun == self._next_seq and self._close_seq is None:
            seq = self._next_seq + 1
            self._next_seq = self._send_seq = self._begun = seq
            transport = self._transport
            if transport is not None:
                transport.write(self._repeat_response)
            return
        if self._sniff is not None:
            data = self._sniffed(data)
            if data is None:
                return
        if self._close_seq is not None:
            return
        done = self._next_seq
        clean = self._begun == done
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            clean = False
            self._close_after(self._next_seq - 1)
        except httptools.HttpParserError:
            clean = False
            if self._close_seq is None:
                self._reject()
        batch = self._batch
        if batch:
            if clean and self._next_seq == done + 1 == self._begun and self._close_seq is None:
                self._repeat_request, self._repeat_response = data, batch[0]
            transport = self._transport
            try:
                if transport is not None:
                    transport.write(batch[0] if len(batch) == 1 else b"".join(batch))
            finally:
                batch.clear()  # whatever happened, never written twice
        if self._close_seq is not None and self._send_seq > self._close_seq:
            self._close()

    def on_message_begin(self) -> None:
        self._begun += 1

    def on_message_complete(self) -> None:
        if self._close_seq is not None:
            return
        seq = self._next_seq
        self._next_seq = self._send_seq = seq + 1
        parser = self._parser
        keep_alive = parser.should_keep_alive()
        self._batch.append((self._head_ok if parser.get_method() == b"HEAD" else self._ok)[keep_alive])  # type: ignore[union-attr]
        if not keep_alive:
            self._close_after(seq)


class MockServer:
    """A listening in-process mock server; unpacks as ``(asyncio.Server, port)``.

    Use ``await close()`` (or ``async with``) rather than only ``server.close()``:
    it also closes open keep-alive connections, which asyncio leaves running.
    """

    def __init__(self, server: asyncio.AbstractServer, port: int, host: str, shared: _Shared, tls: bool = False) -> None:
        self.server = server
        self.port = port
        self.host = host
        self.tls = tls
        self._shared = shared

    @property
    def behaviour(self) -> Behaviour:
        return self._shared.behaviour

    @property
    def openai(self) -> Any:
        """The ``bench.mock.openai.OpenAIBehaviour`` (truth, counters, records), or None without ``openai:``."""
        return self._shared.openai

    @property
    def url(self) -> str:
        return _url(self.host, self.port, self.tls)

    async def close(self) -> None:
        """Stop listening, close every open connection and wait for the listener to shut."""
        self.server.close()
        for connection in list(self._shared.connections):
            connection._abort()  # a client that stopped reading must not keep us waiting
        await asyncio.wait_for(self.server.wait_closed(), timeout=5.0)

    async def __aenter__(self) -> "MockServer":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __iter__(self) -> Iterator[Any]:
        return iter((self.server, self.port))


def tls_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A server TLS context for the mock from PEM files, offering ``h2`` and ``http/1.1`` through ALPN."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(_ALPN)
    return context


async def start_server(
    config: MockConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> MockServer:
    """Listen on the running loop (port 0 picks a free port, ``sock`` uses an already bound socket).

    With ``ssl_context`` the server speaks TLS; its ALPN list is set to ``h2``,
    ``http/1.1`` and the negotiated protocol picks the handler. Without it, plain TCP,
    where HTTP/2 clients use prior knowledge (h2c).
    """
    loop = asyncio.get_running_loop()
    config = config if config is not None else MockConfig()
    shared = _Shared(loop, config)
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(_ALPN)
    connection_class: type[_Connection] = _InstantConnection if shared.behaviour.instant else _Connection
    if config.openai is not None:
        # Routing hook: this connection class sends /v1/chat/completions and /v1/completions
        # to the OpenAI behaviour and everything else to _Connection's code, so servers
        # without an openai section keep the lean protocol (no URL or body callbacks).
        from bench.mock.openai import OpenAIBehaviour, OpenAIConnection

        shared.openai = OpenAIBehaviour(config.openai, config.seed)
        connection_class = OpenAIConnection

    def factory() -> _Connection:
        return connection_class(shared)

    if sock is not None:
        server = await loop.create_server(factory, sock=sock, backlog=_BACKLOG, ssl=ssl_context)
    else:
        server = await loop.create_server(
            factory, host, port, reuse_port=reuse_port or None, backlog=_BACKLOG, ssl=ssl_context
        )
    bound = server.sockets[0].getsockname()
    return MockServer(server, bound[1], host if sock is None else bound[0], shared, tls=ssl_context is not None)


async def _serve_until_signal(
    config: MockConfig,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
    on_ready: Callable[[int], object] | None = None,
    parent_pid: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or, with ``parent_pid``, until that parent is gone)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    handle_signals = threading.current_thread() is threading.main_thread()
    if handle_signals:
        for signum in signals:
            loop.add_signal_handler(signum, stop.set)

    def watch_parent() -> None:
        if os.getppid() != parent_pid:
            stop.set()
        else:
            loop.call_later(_PARENT_POLL_S, watch_parent)

    try:
        server = await start_server(config, host, port, reuse_port=reuse_port, sock=sock, ssl_context=ssl_context)
        try:
            if parent_pid is not None:
                watch_parent()
            if on_ready is not None:
                on_ready(server.port)
            await stop.wait()
        finally:
            await server.close()
    finally:
        if handle_signals:
            for signum in signals:
                loop.remove_signal_handler(signum)


def _bind_reuse_port(host: str, port: int) -> socket.socket:
    family, type_, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def run_server(
    config: MockConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    processes: int = 1,
    on_ready: Callable[[int], object] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve on uvloop until SIGINT/SIGTERM, then close connections and stop any worker processes.

    With ``processes`` > 1 the port is shared through SO_REUSEPORT by this process and
    ``processes - 1`` forked workers; worker i uses seed ``seed + i`` so their random
    streams differ. ``on_ready(port)`` runs once every process listens. ``ssl_context``
    serves TLS (see ``start_server``).
    """
    config = config if config is not None else MockConfig()
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes!r}")
    from bench.mock.process import MockServerProcess

    workers: list[MockServerProcess] = []
    sock = None
    try:
        if processes > 1:
            # Bind first so port 0 resolves to one port all workers then share;
            # listening starts only after the fork, and workers close their copy.
            sock = _bind_reuse_port(host, port)
            port = sock.getsockname()[1]
            for index in range(1, processes):
                worker = MockServerProcess(
                    replace(config, seed=config.seed + index), host, port, reuse_port=True, ssl_context=ssl_context
                )
                worker._close_fds = (sock.fileno(),)
                workers.append(worker)
                worker.start()
            sock.listen(_BACKLOG)
        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(
                _serve_until_signal(config, host, port, sock=sock, on_ready=on_ready, ssl_context=ssl_context)
            )
        finally:
            loop.close()
    finally:
        for worker in workers:
            worker.stop()
        if sock is not None:
            sock.close()

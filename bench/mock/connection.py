"""The machinery every connection of the mock shares: response bytes, per-server state, the HTTP/1.1 protocol.

``bench.mock.server`` listens and picks a connection class per server;
``bench.mock.openai`` subclasses ``Connection`` for its endpoints;
``bench.mock.h2`` takes over a connection that turns out to speak HTTP/2 and
answers its streams from the same ``Shared`` state. Kept in a module of its
own so those three depend on one documented place, not on each other's
private names. Subclasses use ``Connection``'s underscored methods
(``_deliver``, ``_close_after``, ...): they are the protocol's internals,
shared with subclasses only.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from time import monotonic as _monotonic
from typing import Any

import httptools
import orjson

from bench.mock.behaviour import Behaviour
from bench.mock.config import MockConfig
from bench.mock.h2 import H2_PREFACE  # imported up front: the first h2 client must not wait for it
from bench.mock.h2 import H2ServerConnection

__all__ = ["METRICS_PATH", "CapacityConnection", "Connection", "InstantConnection", "Shared", "build_body", "http1_response", "reason"]

#: Where a server with ``capacity`` (or ``openai``) answers its own state in Prometheus text.
METRICS_PATH = b"/metrics"

_NO_BODY_STATUSES = frozenset({204, 304})


def reason(status: int) -> str:
    """The reason phrase for an HTTP status line (``Unknown`` for a code HTTP does not name)."""
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


def http1_response(status: int, body: bytes, keep_alive: bool, head: bool, content_type: bytes = b"application/json") -> bytes:
    """Complete response bytes; 1xx, 204 and 304 go without body or Content-Length, as HTTP requires."""
    if status in _NO_BODY_STATUSES or status < 200:
        length, body = b"", b""
    else:
        length = b"Content-Length: %d\r\n" % len(body)
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason(status).encode("latin-1")),
            b"Server: bench-mock\r\nContent-Type: %s\r\n" % content_type,
            length,
            b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n",
            b"" if head else body,
        )
    )


class Shared:
    """State shared by all connections of one listening server: behaviour, prebuilt responses, live connections."""

    __slots__ = ("behaviour", "_loop_call_later", "_call_soon", "connections", "head_responses", "responses", "time", "bad_request", "openai", "flow", "requests")

    def __init__(self, loop: asyncio.AbstractEventLoop, config: MockConfig) -> None:
        self.behaviour = Behaviour(config)
        self.openai: Any = None  # bench.mock.openai.OpenAIBehaviour when config.openai is set
        self.flow: Any = None  # bench.mock.flow.FlowState when config.flow is set
        self.requests = 0  # requests a CapacityConnection has answered (for its /metrics)
        self.time = loop.time
        self._loop_call_later = loop.call_later
        self._call_soon = loop.call_soon
        self.connections: set[Connection | H2ServerConnection] = set()
        statuses = config.response_statuses
        bodies = {status: build_body(status, config.body_bytes) for status in statuses}
        # Indexed by keep_alive (False -> 0, True -> 1).
        self.responses = {
            s: (http1_response(s, b, False, False), http1_response(s, b, True, False))
            for s, b in bodies.items()
        }
        self.head_responses = {
            s: (http1_response(s, b, False, True), http1_response(s, b, True, True))
            for s, b in bodies.items()
        }
        self.bad_request = http1_response(400, orjson.dumps({"status": 400, "error": "malformed request"}), False, False)

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


class Connection(asyncio.Protocol):
    """One client connection: parses requests, schedules each response, writes them in request order.

    Requests are numbered; ``_send_seq`` is the next number allowed on the wire, and
    responses that become ready earlier wait in ``_early``. After a request that ends
    the connection (``Connection: close``, HTTP/1.0, malformed, upgrade, client EOF)
    further input is ignored and the socket closes once everything before it is sent.
    """

    __slots__ = ("_batch", "_close_seq", "_early", "_next_seq", "_parser", "_send_seq", "_shared", "_sniff", "_transport")

    def __init__(self, shared: Shared) -> None:
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
        if len(data) < len(H2_PREFACE) and H2_PREFACE.startswith(data):
            self._sniff = data
            return None
        self._sniff = None
        if data.startswith(H2_PREFACE):
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


class InstantConnection(Connection):
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

    def __init__(self, shared: Shared) -> None:
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


class CapacityConnection(Connection):
    """A connection of a server with ``capacity``: also answers ``GET /metrics`` with the slots in use, the queue and the refusals.

    Only such servers read the URL of every request (``on_url``), so the
    others keep the lean protocol; ``/metrics`` itself is not counted as a
    request and takes no slot.
    """

    __slots__ = ("_url",)

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)
        self._url = b""

    def on_message_begin(self) -> None:
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_message_complete(self) -> None:
        if self._url.split(b"?", 1)[0] != METRICS_PATH or self._parser.get_method() != b"GET" or self._close_seq is not None:
            self._shared.requests += 1
            super().on_message_complete()
            return
        seq = self._next_seq
        self._next_seq = seq + 1
        keep_alive = self._parser.should_keep_alive()
        if not keep_alive:
            self._close_after(seq)
        shared = self._shared
        body = shared.behaviour.prometheus_text(shared.time(), shared.requests)
        self._deliver(seq, http1_response(200, body, keep_alive, False, b"text/plain; version=0.0.4"))

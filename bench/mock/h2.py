"""The mock server's HTTP/2 side: one connection, many streams, each answered like an HTTP/1.1 request.

``bench.mock.connection.Connection`` accepts every connection as HTTP/1.1 and hands it over here
when its first bytes are the HTTP/2 client preface (h2c with prior knowledge) or
when TLS negotiated ``h2`` through ALPN. Each stream gets exactly what an HTTP/1.1
request gets from the shared ``Behaviour``: a delay (an event-loop timer, never
blocking), a status (error injection), stalls, and a JSON body of ``body_bytes``.

Streams are independent: responses leave when their timer fires, in any order.
Response bodies respect flow control (what the client's windows allow goes now,
the rest on WINDOW_UPDATE); request bodies are read, discarded and acknowledged
at once so the client's window never runs dry. A RST_STREAM cancels that
stream's timer. h2 answers PING and SETTINGS itself. Reads are parsed a few
frames at a time (``FrameSlicer``) so due timers fire between slices of a large
read, and each delay counts from when the bytes arrived.

h2 is pure Python: an HTTP/2 stream costs this server several times the CPU of
an HTTP/1.1 request (h2 and HPACK on both directions), so at thousands of
requests per second on one connection the mock, not the client, can be the limit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import asyncio
from collections import deque

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

if TYPE_CHECKING:  # pragma: no cover
    from bench.mock.connection import Shared

__all__ = ["H2_PREFACE", "MAX_CONCURRENT_STREAMS", "FrameSlicer", "H2ServerConnection"]

#: What every HTTP/2 client sends first (RFC 9113, 3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Streams one client may have open at once (h2's default, and what most servers advertise).
MAX_CONCURRENT_STREAMS = 100
#: Frames handed to h2 at a time; between slices the loop runs (timers fire, responses leave).
FRAMES_PER_SLICE = 8
#: Per-stream receive window advertised for request bodies (bytes), and the connection window.
RECEIVE_WINDOW = 1 << 24
CONNECTION_WINDOW = 1 << 30
_NO_BODY_STATUSES = frozenset({204, 304})


class FrameSlicer:
    """Finds HTTP/2 frame boundaries in a byte stream that arrives in arbitrary pieces.

    h2 parses a whole read before it reports anything, so a read carrying 50
    responses would hold all 50 requesters until the last is parsed, and both
    ends fall into lockstep batches. Feeding h2 a few frames at a time, with
    the loop running in between, keeps requests flowing.
    """

    __slots__ = ("partial", "pending")

    def __init__(self, skip: int = 0) -> None:
        self.pending = skip  # bytes still to come of the current frame (or of the preface)
        self.partial = b""  # the start of a frame header cut by the end of a read

    def cut(self, data: bytes, frames: int) -> int:
        """How many bytes of ``data`` make up at most ``frames`` more frames (all of it if it ends first)."""
        size = len(data)
        pos = 0
        if self.pending:
            if self.pending >= size:
                self.pending -= size
                return size
            pos, self.pending = self.pending, 0
            frames -= 1
        if self.partial:
            header = self.partial + data[: 9 - len(self.partial)]
            if len(header) < 9:
                self.partial = header
                return size
            pos = 9 - len(self.partial)
            self.partial = b""
            end = pos + int.from_bytes(header[:3], "big")
            if end > size:
                self.pending = end - size
                return size
            pos = end
            frames -= 1
        while frames > 0 and pos < size:
            if size - pos < 9:
                self.partial = data[pos:]
                return size
            end = pos + 9 + int.from_bytes(data[pos : pos + 3], "big")
            if end > size:
                self.pending = end - size
                return size
            pos = end
            frames -= 1
        return pos


@lru_cache(maxsize=64)
def _prebuilt(status: int, body_bytes: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(headers, body) for a status, built once per server configuration; HEAD gets the same headers."""
    from bench.mock.connection import build_body  # connection imports this module at its top: import back lazily

    common = [(b":status", b"%d" % status), (b"server", b"bench-mock"), (b"content-type", b"application/json")]
    if status in _NO_BODY_STATUSES or status < 200:
        return common, b""
    body = build_body(status, body_bytes)
    return common + [(b"content-length", b"%d" % len(body))], body


class H2ServerConnection:
    """The asyncio protocol of one HTTP/2 connection, installed with ``transport.set_protocol``.

    ``_requests``: streams whose request is still arriving (id -> is HEAD);
    ``_timers``: streams waiting for their delay; ``_blocked``: streams whose body
    waits for flow-control window (id -> (body, offset)).
    """

    __slots__ = (
        "_arrival",
        "_backlog",
        "_blocked",
        "_body_bytes",
        "_call_at",
        "_call_soon",
        "_conn",
        "_flow",
        "_flush_scheduled",
        "_requests",
        "_shared",
        "_slicer",
        "_timers",
        "_transport",
    )

    def __init__(self, shared: "Shared", transport: Any) -> None:
        self._shared = shared
        self._transport = transport
        self._body_bytes = shared.behaviour.config.body_bytes
        self._requests: dict[int, bool] = {}
        self._flow: dict[int, list[Any]] = {}  # with flow on: /flow/ streams -> [method, path, auth, cookie, body]
        self._timers: dict[int, Any] = {}
        self._blocked: dict[int, tuple[bytes, int]] = {}
        self._arrival = 0.0
        self._flush_scheduled = False
        self._slicer = FrameSlicer(skip=len(H2_PREFACE))
        self._backlog: deque[tuple[float, bytes]] | None = None  # (arrival, bytes) not yet given to h2
        loop = asyncio.get_running_loop()
        self._call_at = loop.call_at
        self._call_soon = loop.call_soon
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=False,  # our headers are prebuilt and valid
            normalize_outbound_headers=False,
            validate_inbound_headers=False,  # a load target, not a conformance checker: ~15 % less CPU per request read
        )
        conn = h2.connection.H2Connection(config)
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                SettingCodes.MAX_HEADER_LIST_SIZE: conn.DEFAULT_MAX_HEADER_LIST_SIZE,
                SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW,
            },
        )
        conn.initiate_connection()
        if CONNECTION_WINDOW > 65535:  # the connection window starts at 65,535 whatever the settings
            conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._conn = conn
        shared.connections.add(self)

    # asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # pragma: no cover - installed on a live transport
        self._transport = transport

    def start(self, data: bytes) -> None:
        """Send our SETTINGS, then process what the HTTP/1.1 side already read (the preface, maybe more)."""
        self._flush()
        if data:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        # Delays count from the arrival of the bytes, not from when parsing got round to each stream.
        arrival = self._shared.time()
        if self._backlog is not None:
            self._backlog.append((arrival, data))  # _next_slice gets to it, in order
            return
        self._feed(arrival, data)
        if self._backlog is not None:
            self._call_soon(self._next_slice)

    def _feed(self, arrival: float, data: bytes) -> None:
        """Hand h2 a few frames; put the rest at the front of the backlog (see ``FrameSlicer``)."""
        cut = self._slicer.cut(data, FRAMES_PER_SLICE)
        if cut < len(data):
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.appendleft((arrival, data[cut:]))
            data = data[:cut]
        self._process(arrival, data)

    def _next_slice(self) -> None:
        backlog = self._backlog
        if backlog is None or self._transport is None:
            return
        arrival, data = backlog.popleft()
        if not backlog:
            self._backlog = None
        self._feed(arrival, data)
        if self._backlog is not None:
            self._call_soon(self._next_slice)

    def _process(self, arrival: float, data: bytes) -> None:
        self._arrival = arrival
        conn = self._conn
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._fail(ErrorCodes.PROTOCOL_ERROR)
            return
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                self._on_request(event)
            elif kind is h2.events.DataReceived:
                if self._flow and event.stream_id in self._flow:
                    self._flow[event.stream_id][4].append(event.data)
                if event.flow_controlled_length:
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is h2.events.StreamEnded:
                self._on_request_complete(event.stream_id)
            elif kind is h2.events.StreamReset:
                self._forget(event.stream_id)
            elif kind is h2.events.WindowUpdated:
                if self._blocked:
                    self._resume(event.stream_id)
            elif kind is h2.events.RemoteSettingsChanged:
                if self._blocked and SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                    self._resume(0)
            elif kind is h2.events.ConnectionTerminated:
                # The client is leaving: nothing it asked can still be delivered usefully.
                self._flush()
                self._close()
                return
        self._flush()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: BaseException | None) -> None:
        self._transport = None
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._blocked.clear()
        self._backlog = None
        self._requests.clear()
        self._flow.clear()
        self._shared.connections.discard(self)

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    # streams ------------------------------------------------------------------------

    def _on_request(self, event: Any) -> None:
        is_head = False
        for name, value in event.headers:
            if name == b":method":
                is_head = value == b"HEAD"
                break
        self._requests[event.stream_id] = is_head
        if self._shared.flow is not None:
            self._on_flow_request(event)

    def _on_flow_request(self, event: Any) -> None:
        """With ``flow`` on: keep what a ``/flow/`` stream's answer depends on (its body arrives later)."""
        fields: dict[bytes, bytes] = {}
        for name, value in event.headers:
            if name == b"cookie" and name in fields:  # HTTP/2 may send each cookie in a field of its own
                fields[name] += b"; " + value
            else:
                fields[name] = value
        path = fields.get(b":path", b"").split(b"?", 1)[0]
        if path.startswith(b"/flow/"):
            method = fields.get(b":method", b"GET")
            self._flow[event.stream_id] = [method, path.decode("latin-1"), fields.get(b"authorization"), fields.get(b"cookie"), []]

    def _on_request_complete(self, stream_id: int) -> None:
        is_head = self._requests.pop(stream_id, None)
        if is_head is None:
            return
        arrival = self._arrival
        if self._flow and stream_id in self._flow:
            self._on_flow_complete(stream_id, arrival)
            return
        delay, status = self._shared.behaviour.next_response(arrival)
        if delay > 0.0:
            self._timers[stream_id] = self._call_at(arrival + delay, self._respond, stream_id, status, is_head)
        else:
            self._respond(stream_id, status, is_head, flush=False)  # data_received flushes after the batch

    def _on_flow_complete(self, stream_id: int, arrival: float) -> None:
        from bench.mock.flow import answer_flow  # flow imports the HTTP/1.1 side, which imports this module

        method, path, auth, cookie, body = self._flow.pop(stream_id)
        data = b"".join(body)
        delay, answer = answer_flow(self._shared, arrival, method, path, auth, cookie, data, len(data))
        if isinstance(answer, int):
            args: tuple[Any, ...] = (stream_id, answer, False)
        else:
            headers = [
                (b":status", b"%d" % answer.status),
                (b"server", b"bench-mock"),
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(answer.body)),
                *answer.headers,
            ]
            args = (stream_id, answer.status, False, True, (headers, answer.body))
        if delay > 0.0:
            self._timers[stream_id] = self._call_at(arrival + delay, self._respond, *args)
        else:
            self._respond(*args)

    def _respond(
        self,
        stream_id: int,
        status: int,
        is_head: bool,
        flush: bool = True,
        built: tuple[list[tuple[bytes, bytes]], bytes] | None = None,
    ) -> None:
        self._timers.pop(stream_id, None)
        if self._transport is None:
            return
        headers, body = _prebuilt(status, self._body_bytes) if built is None else built
        conn = self._conn
        try:
            if is_head or not body:
                conn.send_headers(stream_id, headers, end_stream=True)
            else:
                conn.send_headers(stream_id, headers)
                self._send_body(stream_id, body, 0)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._blocked.pop(stream_id, None)  # the client reset it or the connection is closing
        if flush and not self._flush_scheduled:
            # Timers due together (same delay, a stall ending) leave in one write, right after this loop turn.
            self._flush_scheduled = True
            self._call_soon(self._flush)

    def _send_body(self, stream_id: int, body: bytes, offset: int) -> None:
        """Send what the windows allow; park the rest in ``_blocked`` until a WINDOW_UPDATE."""
        conn = self._conn
        size = len(body)
        while offset < size:
            window = conn.local_flow_control_window(stream_id)
            if window <= 0:
                self._blocked[stream_id] = (body, offset)
                return
            end = min(size, offset + min(window, conn.max_outbound_frame_size))
            chunk = body if offset == 0 and end == size else body[offset:end]
            conn.send_data(stream_id, chunk, end_stream=end == size)
            offset = end
        self._blocked.pop(stream_id, None)

    def _resume(self, stream_id: int) -> None:
        """A window opened: stream 0 means the connection (every blocked stream), else one stream."""
        ids = list(self._blocked) if stream_id == 0 else ([stream_id] if stream_id in self._blocked else [])
        for sid in ids:
            body, offset = self._blocked[sid]
            try:
                self._send_body(sid, body, offset)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._blocked.pop(sid, None)

    def _forget(self, stream_id: int) -> None:
        self._requests.pop(stream_id, None)
        self._flow.pop(stream_id, None)
        self._blocked.pop(stream_id, None)
        handle = self._timers.pop(stream_id, None)
        if handle is not None:
            handle.cancel()

    # internals ----------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self._conn.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)

    def _fail(self, code: ErrorCodes) -> None:
        """A protocol violation by the client: GOAWAY with ``code`` (best effort), then close."""
        try:
            self._conn.close_connection(error_code=code)
        except h2.exceptions.ProtocolError:
            pass
        self._flush()
        self._close()

    def _close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def _abort(self) -> None:
        """Used by ``MockServer.close``: drop the connection now, like the HTTP/1.1 side does."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()

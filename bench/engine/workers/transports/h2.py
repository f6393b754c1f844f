"""The ``h2`` transport: HTTP/2 on the ``h2`` state machine, as an asyncio protocol on the worker's uvloop loop.

Many requests share one connection as concurrent streams. ``pool_size`` is the
number of connections: a connection is used up to the server's
MAX_CONCURRENT_STREAMS; beyond that a send opens another connection (while
fewer than ``pool_size`` are open) or waits, first come first served, for a
stream to finish. So a closed loop of 20 users needs one connection, and
``pool_size: 1`` makes every request share it.

``http://`` URLs use h2c with prior knowledge (the client preface straight
away); ``https://`` uses TLS with ALPN and fails as ``protocol`` if the server
does not select ``h2``. ``client.tls_verify: false`` skips certificate checks.

What ends up as which error kind (a per-request failure is data, never an exception):

* ``connect``: the connection could not be made (refused, DNS, connect timeout, TLS handshake).
* ``timeout``: ``target.timeout`` ran out, counted from the call of ``send()``, so the
  wait for a connection or a free stream counts; the stream is reset (RST_STREAM CANCEL).
* ``read``: the connection was lost with the stream in flight, or the server reset the
  stream. A stream a GOAWAY left unprocessed (id above the last stream id) is sent
  once more on another connection, and is ``read`` only if that happens again.
  Later sends use a new connection.
* ``protocol``: the server broke HTTP/2 (or is not HTTP/2 at all), or did not select
  ``h2`` through ALPN.

h2 moves its connection state to CLOSED on receiving GOAWAY and then refuses every
further frame (python-hyper/h2#1181), which would fail streams the server still
means to answer. This transport wraps h2's GOAWAY handler so the state goes back
to open, never starts another stream on that connection, lets the streams at or
below the last stream id finish, then closes it.

h2 also parses a whole read before reporting anything; reads are handed to it a
few frames at a time (``FrameSlicer``) so that the requests answered early in a
large read can send their next request before the rest is parsed.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from bench.engine.plan.profile import Profile
from bench.mock.h2 import FrameSlicer  # the same frame-boundary finder the mock server uses

__all__ = ["H2Transport"]

Outcome = tuple[int | None, int, str | None]

#: Receive windows we advertise: per stream (INITIAL_WINDOW_SIZE) and for the connection.
STREAM_WINDOW = 1 << 24
CONNECTION_WINDOW = 1 << 30
#: Streams a connection is assumed to take while its SETTINGS have not arrived (RFC 9113 recommends >= 100).
ASSUMED_STREAMS = 100
#: How long close() waits for connections to finish closing.
CLOSE_WAIT_S = 1.0
#: Frames handed to h2 at a time (see bench.mock.h2.FrameSlicer); between slices the loop runs,
#: so requests that finished send their next one while the rest of a large read waits.
FRAMES_PER_SLICE = 8

#: Connection-specific headers HTTP/2 forbids (RFC 9113, 8.2.2); ``host`` becomes ``:authority``.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"})
#: Stream or connection error codes that mean someone broke the protocol.
_PROTOCOL_CODES = frozenset(
    {
        ErrorCodes.PROTOCOL_ERROR,
        ErrorCodes.FLOW_CONTROL_ERROR,
        ErrorCodes.FRAME_SIZE_ERROR,
        ErrorCodes.COMPRESSION_ERROR,
        ErrorCodes.STREAM_CLOSED,
        ErrorCodes.INADEQUATE_SECURITY,
        ErrorCodes.HTTP_1_1_REQUIRED,
    }
)


def _reset_kind(code: int) -> str:
    return "protocol" if code in _PROTOCOL_CODES else "read"


class _Request:
    """One send() in progress: queued (``conn`` None) or a stream on ``conn``."""

    __slots__ = ("body", "body_offset", "conn", "done", "future", "headers", "nbytes", "receiver", "retried", "status", "stream_id", "timer")

    def __init__(self, future: asyncio.Future, headers: list, body: bytes, receiver: Any = None) -> None:
        self.future = future
        self.headers = headers
        self.body = body
        self.receiver = receiver
        self.timer: asyncio.TimerHandle | None = None
        self.conn: _Connection | None = None
        self.stream_id = 0
        self.status: int | None = None
        self.nbytes = 0
        self.body_offset = 0
        self.done = False
        self.retried = False


class H2Transport:
    """HTTP/2 client for one worker: up to ``pool_size`` connections, many streams on each."""

    def __init__(self, profile: Profile, url: str, pool_size: int):
        target, client = profile.target, profile.client
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        authority = parts.netloc.rpartition("@")[2]
        self.authority = authority
        self.body = target.body or b""
        self.headers = self._build_headers(target.method, path, authority, target.headers, self.body)
        self.timeout_s = target.timeout_s
        self.connect_timeout_s = client.connect_timeout_s
        self.pool_size = max(1, pool_size)
        self.ssl_context: ssl.SSLContext | None = None
        if self.tls:
            context = ssl.create_default_context()
            if not client.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2", "http/1.1"])  # offering both makes a non-h2 server say so
            self.ssl_context = context
        self.usable: list[_Connection] = []  # connecting or open, accepting new streams
        self.open: set[_Connection] = set()  # everything not yet closed, draining ones too
        self.queue: deque[_Request] = deque()
        self.closed = False
        self.last_error: str | None = None  # why the latest connection failed, for diagnostics
        self.connections_opened = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def _build_headers(self, method: str, path: str, authority: str, headers, body: bytes) -> list[tuple[bytes, bytes]]:
        """The request's header block, built once per request template."""
        extra: list[tuple[bytes, bytes]] = []
        has_agent = False
        for name, value in headers:
            lower = name.lower()
            if lower == "host":
                authority = value
            if lower in _HOP_BY_HOP or (lower == "te" and value.lower() != "trailers"):
                continue
            has_agent = has_agent or lower == "user-agent"
            extra.append((lower.encode("utf-8"), value.encode("utf-8")))
        block = [
            (b":method", method.encode("ascii")),
            (b":path", path.encode("latin-1")),
            (b":scheme", b"https" if self.tls else b"http"),
            (b":authority", authority.encode("utf-8")),
            *extra,
        ]
        if not has_agent:
            block.append((b"user-agent", b"bench"))
        if body:
            block = [h for h in block if h[0] != b"content-length"]
            block.append((b"content-length", b"%d" % len(body)))
        return block

    def _prepared_headers(self, prepared: Any) -> list[tuple[bytes, bytes]]:
        block = prepared.cache.get("h2")
        if block is None:
            parts = urlsplit(prepared.url)
            path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            block = prepared.cache["h2"] = self._build_headers(prepared.method, path, self.authority, prepared.headers, prepared.body or b"")
        return block

    # ------------------------------------------------------------------ the interface

    async def send(self, prepared: Any = None, receiver: Any = None) -> Outcome:
        """Send a request on a stream and read the whole response: (status, body bytes, None) or (None, 0, kind).

        ``prepared`` (a PreparedRequest) replaces the profile's request; ``receiver``
        gets every DATA payload with its arrival time (streamed responses, checks).
        """
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self.closed:
            return None, 0, "other"
        if prepared is None:
            request = _Request(loop.create_future(), self.headers, self.body, receiver)
        else:
            request = _Request(loop.create_future(), self._prepared_headers(prepared), prepared.body or b"", receiver)
        request.timer = loop.call_later(self.timeout_s, self._expire, request)
        try:
            self._dispatch(request)
        except Exception as exc:  # noqa: BLE001 - a bug here must be counted, not crash the worker
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.finish(request, (None, 0, "other"))
        try:
            return await request.future
        except asyncio.CancelledError:
            self._withdraw(request)
            raise

    async def close(self) -> None:
        """GOAWAY and close every connection; requests still waiting end as ``cancelled``."""
        self.closed = True
        while self.queue:
            self.finish(self.queue.popleft(), (None, 0, "cancelled"))
        connections = list(self.open)
        for connection in connections:
            connection.shutdown()
        waiting = [c.lost for c in connections if not c.lost.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=CLOSE_WAIT_S)
        for connection in connections:
            connection.abort()

    # ------------------------------------------------------------------ scheduling

    def _dispatch(self, request: _Request) -> None:
        queue = self.queue
        while queue and queue[0].done:  # timed out or cancelled while waiting
            queue.popleft()
        if not queue:
            for connection in self.usable:
                if connection.ready and len(connection.streams) < connection.max_streams:
                    if connection.start(request):
                        return
                    break
        queue.append(request)
        self.pump()

    def pump(self) -> None:
        """Start queued requests on connections with free streams, oldest first; open connections if needed."""
        queue = self.queue
        while queue and queue[0].done:
            queue.popleft()
        if not queue:
            return
        for connection in list(self.usable):
            if not connection.ready:
                continue
            while queue and len(connection.streams) < connection.max_streams:
                request = queue.popleft()
                if not request.done and not connection.start(request):
                    queue.appendleft(request)
                    break
            if not queue:
                return
        self._grow()

    def _grow(self) -> None:
        """Open connections while the queue is longer than the connections being opened will take."""
        if self.closed:
            return
        waiting = sum(1 for r in self.queue if not r.done) if len(self.queue) < 4 * ASSUMED_STREAMS else len(self.queue)
        connecting = sum(1 for c in self.usable if not c.ready)
        while waiting > connecting * ASSUMED_STREAMS and len(self.usable) < self.pool_size:
            self._open()
            connecting += 1

    def _open(self) -> None:
        connection = _Connection(self)
        self.usable.append(connection)
        self.open.add(connection)
        self.connections_opened += 1
        connection.task = self._loop.create_task(connection.connect())  # type: ignore[union-attr]

    def retire(self, connection: "_Connection") -> None:
        """Take a connection out of use for new streams (GOAWAY, lost, failed)."""
        if connection in self.usable:
            self.usable.remove(connection)

    def failed_before_ready(self, connection: "_Connection", kind: str) -> None:
        """A connection never became usable: the queued requests fail with ``kind`` unless another connection may serve them.

        Failing them (rather than opening another connection) keeps a refusing or
        non-HTTP/2 server from turning each waiting request into a reconnect loop.
        """
        if connection not in self.open:
            return
        self.retire(connection)
        self.open.discard(connection)
        if not self.usable:
            while self.queue:
                self.finish(self.queue.popleft(), (None, 0, kind))

    def lost(self, connection: "_Connection") -> None:
        """A connection that worked has ended: queued requests get a new one."""
        if connection not in self.open:
            return
        self.retire(connection)
        self.open.discard(connection)
        self.pump()

    # ------------------------------------------------------------------ endings

    def resend(self, request: _Request) -> None:
        """A GOAWAY left the request's stream unprocessed (id above the last stream id).

        The server did not act on it (RFC 9113, 6.8), so, like a request that
        failed on a stale keep-alive connection in the HTTP/1.1 transports, it
        goes once more, first in line, on another connection; a second time
        it is "read". The caller pumps the queue.
        """
        if request.done:
            return
        if request.retried or request.status is not None or request.nbytes:
            self.finish(request, (None, 0, "read"))
            return
        request.retried = True
        request.conn = None
        request.stream_id = 0
        request.body_offset = 0
        self.queue.appendleft(request)

    def finish(self, request: _Request, outcome: Outcome) -> None:
        if request.done:
            return
        request.done = True
        if request.timer is not None:
            request.timer.cancel()
        if not request.future.done():
            request.future.set_result(outcome)

    def _expire(self, request: _Request) -> None:
        """The total timeout ran out: reset the stream if there is one, else leave the queue."""
        if request.done:
            return
        connection = request.conn
        self.finish(request, (None, 0, "timeout"))
        if connection is not None:
            connection.cancel_stream(request)
            self.pump()

    def _withdraw(self, request: _Request) -> None:
        """send() was cancelled: forget the request and reset its stream."""
        if request.done:
            return
        request.done = True
        if request.timer is not None:
            request.timer.cancel()
        connection = request.conn
        if connection is not None:
            connection.cancel_stream(request)
            self.pump()


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection: the h2 state machine, its streams, and writes batched once per loop turn."""

    def __init__(self, owner: H2Transport) -> None:
        self.owner = owner
        self.loop = owner._loop
        self.transport: Any = None
        self.task: asyncio.Task | None = None
        self.lost: asyncio.Future = owner._loop.create_future()  # type: ignore[union-attr]
        self.ready = False  # connected and the server's SETTINGS arrived (new streams also need: not draining)
        self.draining = False  # GOAWAY received or sent: no new streams (and no longer in owner.usable)
        self.failure: str | None = None  # error kind decided before the connection ended
        self.streams: dict[int, _Request] = {}
        self.blocked: dict[int, _Request] = {}  # streams whose request body waits for window
        self.max_streams = ASSUMED_STREAMS
        self.flush_scheduled = False
        self.first_bytes = True  # nothing received yet: the server must start with a SETTINGS frame
        self.slicer = FrameSlicer()
        self.backlog: bytearray | None = None  # received, not yet given to h2 (see FrameSlicer)
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,  # prebuilt once and valid
            normalize_outbound_headers=False,
        )
        conn = h2.connection.H2Connection(config)
        # h2 closes its state machine on GOAWAY, and then raises on the frames the server
        # still sends for streams it will finish, even in the same read (python-hyper/h2#1181).
        # Put the state back right after h2 handles the frame; we never open a stream after it.
        receive_goaway = conn._frame_dispatch_table[GoAwayFrame]

        def receive_goaway_keep_open(frame: GoAwayFrame) -> Any:
            state = conn.state_machine.state
            result = receive_goaway(frame)
            if state is not ConnectionState.CLOSED:
                conn.state_machine.state = state
            return result

        conn._frame_dispatch_table[GoAwayFrame] = receive_goaway_keep_open
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,  # for pushed streams, which we disable anyway
                SettingCodes.MAX_HEADER_LIST_SIZE: conn.DEFAULT_MAX_HEADER_LIST_SIZE,
            },
        )
        self.h2 = conn

    # ------------------------------------------------------------------ connecting

    async def connect(self) -> None:
        owner = self.owner
        try:
            await asyncio.wait_for(
                self.loop.create_connection(  # type: ignore[union-attr]
                    lambda: self,
                    owner.host,
                    owner.port,
                    ssl=owner.ssl_context,
                    server_hostname=owner.host if owner.tls else None,
                ),
                owner.connect_timeout_s,
            )
        except asyncio.CancelledError:
            self._end_before_ready("cancelled")
            raise
        except (OSError, asyncio.TimeoutError, ValueError) as exc:  # ssl.SSLError is an OSError
            owner.last_error = f"cannot connect to {owner.host}:{owner.port}: {type(exc).__name__}: {exc}"
            self._end_before_ready("connect")
        except Exception as exc:  # noqa: BLE001
            owner.last_error = f"cannot connect to {owner.host}:{owner.port}: {type(exc).__name__}: {exc}"
            self._end_before_ready("other")

    def _end_before_ready(self, kind: str) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.owner.failed_before_ready(self, kind)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.owner.tls:
            ssl_object = transport.get_extra_info("ssl_object")
            selected = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if selected != "h2":
                self.owner.last_error = f"{self.owner.host}:{self.owner.port} did not select h2 through ALPN (selected {selected!r})"
                self.failure = "protocol"
                transport.close()
                return
        conn = self.h2
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        transport.write(conn.data_to_send())

    # ------------------------------------------------------------------ streams

    def start(self, request: _Request) -> bool:
        """Open a stream for the request; False if this connection cannot take it now (the caller keeps it queued)."""
        conn = self.h2
        try:
            stream_id = conn.get_next_available_stream_id()
            body = request.body
            conn.send_headers(stream_id, request.headers, end_stream=not body)
        except h2.exceptions.TooManyStreamsError:  # h2 counts a stream we do not: wait for one to end
            return False
        except h2.exceptions.NoAvailableStreamIDError:  # 2^30 streams used: finish these, then a new connection
            self._drain_out()
            return False
        request.conn = self
        request.stream_id = stream_id
        self.streams[stream_id] = request
        if body:
            self._send_body(request)
        self._flush_soon()
        return True

    def _send_body(self, request: _Request) -> None:
        conn = self.h2
        body = request.body
        size = len(body)
        offset = request.body_offset
        stream_id = request.stream_id
        while offset < size:
            window = conn.local_flow_control_window(stream_id)
            if window <= 0:
                request.body_offset = offset
                self.blocked[stream_id] = request
                return
            end = min(size, offset + min(window, conn.max_outbound_frame_size))
            conn.send_data(stream_id, body if offset == 0 and end == size else body[offset:end], end_stream=end == size)
            offset = end
        request.body_offset = offset
        self.blocked.pop(stream_id, None)

    def _resume_bodies(self, stream_id: int) -> None:
        if stream_id:
            request = self.blocked.get(stream_id)
            requests = [request] if request is not None else []
        else:
            requests = list(self.blocked.values())
        for request in requests:
            try:
                self._send_body(request)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self.blocked.pop(request.stream_id, None)

    def cancel_stream(self, request: _Request) -> None:
        """Reset a stream we no longer want (timeout, cancelled send)."""
        stream_id = request.stream_id
        if self.streams.pop(stream_id, None) is None:
            return
        self.blocked.pop(stream_id, None)
        try:
            self.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self._flush_soon()
        self._maybe_finish_draining()

    # ------------------------------------------------------------------ receiving

    def data_received(self, data: bytes) -> None:
        if self.backlog is not None:
            self.backlog += data  # _next_slice will get to it, in order
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        cut = self.slicer.cut(data, FRAMES_PER_SLICE)
        if cut < len(data):
            self.backlog = bytearray(data[cut:])
            self.loop.call_soon(self._next_slice)  # type: ignore[union-attr]
            data = data[:cut]
        self._process(data)

    def _next_slice(self) -> None:
        data, self.backlog = self.backlog, None
        if data and self.transport is not None and self.failure is None:
            self._feed(bytes(data))

    def _process(self, data: bytes) -> None:
        if self.flush_scheduled:
            self._flush()  # requests started since the last slice go first (and before a GOAWAY can clear h2's buffer)
        conn = self.h2
        owner = self.owner
        if self.first_bytes:
            self.first_bytes = False
            if len(data) >= 4 and data[3] != 0x4:  # frame type SETTINGS; h2 itself would wait for a "frame" of length b"HTT"
                owner.last_error = f"{owner.host}:{owner.port} does not speak HTTP/2 (it answered {bytes(data[:24])!r})"
                self._break("protocol")
                return
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            owner.last_error = f"HTTP/2 protocol error from {owner.host}:{owner.port}: {exc}"
            self._break("protocol")
            return
        streams = self.streams
        freed = False
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                request = streams.get(event.stream_id)
                if request is not None:
                    request.nbytes += len(event.data)
                    if request.receiver is not None:
                        request.receiver.chunk(event.data, time.monotonic_ns())
                if event.flow_controlled_length:
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is h2.events.ResponseReceived:
                request = streams.get(event.stream_id)
                if request is not None:
                    request.status = _status(event.headers)
            elif kind is h2.events.StreamEnded:
                request = streams.pop(event.stream_id, None)
                if request is not None:
                    freed = True
                    if self.blocked.pop(event.stream_id, None) is not None:
                        self._reset_quietly(event.stream_id, ErrorCodes.NO_ERROR)  # answered before we sent it all
                    if request.status is None:
                        owner.finish(request, (None, 0, "protocol"))
                    else:
                        owner.finish(request, (request.status, request.nbytes, None))
            elif kind is h2.events.StreamReset:
                request = streams.pop(event.stream_id, None)
                self.blocked.pop(event.stream_id, None)
                if request is not None:
                    freed = True
                    owner.finish(request, (None, 0, _reset_kind(event.error_code)))
            elif kind is h2.events.WindowUpdated:
                if self.blocked:
                    self._resume_bodies(event.stream_id)
            elif kind is h2.events.RemoteSettingsChanged:
                self.max_streams = conn.remote_settings.max_concurrent_streams
                if self.blocked and SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                    self._resume_bodies(0)
                if not self.ready:
                    self.ready = True
                    freed = True
            elif kind is h2.events.ConnectionTerminated:
                self._on_goaway(event)
                if self.failure is not None:
                    return
                freed = True
        self._flush()
        if freed:
            owner.pump()
            self._maybe_finish_draining()

    def _on_goaway(self, event: Any) -> None:
        owner = self.owner
        owner.last_error = f"GOAWAY from {owner.host}:{owner.port}: {event.error_code!r}, last stream {event.last_stream_id}"
        if event.error_code in _PROTOCOL_CODES:
            self._break("protocol")
            return
        self.draining = True
        owner.retire(self)
        last = event.last_stream_id
        for stream_id in [s for s in self.streams if s > last]:
            self.blocked.pop(stream_id, None)
            owner.resend(self.streams.pop(stream_id))

    def _maybe_finish_draining(self) -> None:
        if self.draining and not self.streams and self.transport is not None:
            self.shutdown()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.owner.retire(self)
        if self.backlog and self.failure is None:  # responses that arrived before the close still count
            data, self.backlog = bytes(self.backlog), None
            self._process(data)
        self.backlog = None
        self.transport = None
        owner = self.owner
        streams, self.streams = self.streams, {}
        self.blocked.clear()
        for request in streams.values():
            owner.finish(request, (None, 0, self.failure or "read"))
        if not self.lost.done():
            self.lost.set_result(None)
        if self.ready:
            owner.lost(self)
        else:
            if self.failure is None and owner.last_error is None:
                owner.last_error = f"{owner.host}:{owner.port} closed the connection before its HTTP/2 SETTINGS"
            owner.failed_before_ready(self, self.failure or "read")

    def pause_writing(self) -> None:
        pass  # streams are bounded by concurrency and flow control

    def resume_writing(self) -> None:
        pass

    # ------------------------------------------------------------------ writing and closing

    def _flush_soon(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)  # type: ignore[union-attr]

    def _flush(self) -> None:
        self.flush_scheduled = False
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def _reset_quietly(self, stream_id: int, code: ErrorCodes) -> None:
        try:
            self.h2.reset_stream(stream_id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def _drain_out(self) -> None:
        """No new streams here (stream ids used up): finish the open ones, then close."""
        self.draining = True
        self.owner.retire(self)
        self._maybe_finish_draining()

    def _break(self, kind: str) -> None:
        """The connection cannot go on: every stream on it fails with ``kind``; GOAWAY (best effort), close."""
        self.failure = kind
        owner = self.owner
        owner.retire(self)
        streams, self.streams = self.streams, {}
        self.blocked.clear()
        for request in streams.values():
            owner.finish(request, (None, 0, kind))
        self.shutdown(ErrorCodes.PROTOCOL_ERROR if kind == "protocol" else ErrorCodes.NO_ERROR)

    def shutdown(self, code: ErrorCodes = ErrorCodes.NO_ERROR) -> None:
        """GOAWAY, then close the socket once what is buffered is written."""
        self.draining = True
        transport = self.transport
        if transport is None:
            if self.task is not None and not self.task.done():
                self.task.cancel()  # still connecting
            return
        try:
            self.h2.close_connection(error_code=code)
        except h2.exceptions.ProtocolError:
            pass
        self._flush()
        transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        if self.task is not None and not self.task.done():
            self.task.cancel()


def _status(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b":status":
            try:
                return int(value)
            except ValueError:
                return None
    return None

"""The ``fast`` transport: a lean HTTP/1.1 client on the running (uv)loop with httptools parsing.

For when the generator itself must be cheap. Per request it does what a bare
asyncio.Protocol client does, plus what a load tester needs:

* the request bytes are built once, in ``__init__``; a send is one
  ``transport.write`` of them;
* one ``asyncio.Protocol`` per connection; a keep-alive pool of at most
  ``pool_size`` connections: an idle one is reused (most recent first), a new
  one is opened while under the limit, otherwise the request waits in FIFO
  order for one to come free;
* the response is parsed by httptools (llhttp): status, Content-Length,
  chunked or read-until-close bodies, whose bytes are counted, never kept;
* ``target.timeout`` bounds each request as a whole: waiting for a pool
  slot, connecting, sending and reading. Every request has the same timeout,
  so deadlines grow in send order and one timer per transport does, armed
  for the earliest deadline in flight (a timer per request would cost more
  than the rest of the request's bookkeeping). A request past its deadline
  is "timeout" and its connection is discarded, so a late response can never
  be taken for the next request's;
* a request that fails on a reused keep-alive connection before any byte of
  its response arrived (the server closed the idle connection) is retried
  once on a new connection, as aiohttp does, and counted as one request;
  like aiohttp, only for idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS);
* besides the coroutine ``send()``, a callback form: ``submit(done, ...)``
  calls ``done(outcome)`` when the request ends, and a repeating request
  (``repeat=True``) is written again on the same connection, straight from
  the callback that completed its response, each time ``done`` returns True,
  as wrk's connections do. The worker's closed loop runs on it: at full speed
  a request then costs one callback into the worker and no pool, future or
  task work at all; its open loop sends each due request with ``submit``
  (no task, future or coroutine per request).

Failures are error kinds, never exceptions (see ``bench.engine.workers.transports``):
"connect" (refused, DNS, TLS handshake), "timeout" (the request's total
``target.timeout`` or the connect timeout ``client.connect_timeout``), "read"
(the server closed or reset the connection mid-response), "protocol" (a
response httptools cannot parse, or bytes nobody asked for). A cancelled
``send()`` raises CancelledError, and its connection is discarded; ``cancel()``
ends a submitted request as "cancelled".
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import math
import socket
import ssl
import time
from collections import deque
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import httptools

from bench.engine.plan.profile import Profile

Outcome = tuple[int | None, int, str | None]

__all__ = ["UNSUPPORTED", "FastTransport"]

#: Profile option (dotted field) -> why this transport cannot honour it. Empty:
#: everything a profile can say today, the fast transport does. The profile
#: loader rejects a ``client.transport: fast`` profile that sets one of these.
UNSUPPORTED: dict[str, str] = {}

_DNS_TTL_S = 300.0  # like the aiohttp transport's ttl_dns_cache
_LATE_S = 0.001  # the sweep runs this much after a deadline (loop timers may fire up to a millisecond early)
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_CLOSE_WAIT_S = 1.0
_TIMEOUT = (None, 0, "timeout")
_READ = (None, 0, "read")
_PROTOCOL = (None, 0, "protocol")
_TOO_LARGE = (None, 0, "body_too_large")
_CANCELLED = (None, 0, "cancelled")
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE_PATH + "?"


class _Req:
    """One request in progress: the callback its outcome goes to, its deadline (loop time), the connection serving it.

    ``done`` is called exactly once per send, with the outcome, unless the
    request was cancelled first; ``ended`` says it can no longer be called. A
    repeating request (``repeat``: its transport) is sent again each time
    ``done`` returns True: on the same connection when its response left it
    reusable, else through the pool like a new one.
    """

    __slots__ = ("conn", "deadline", "done", "ended", "receiver", "repeat", "retried", "retry", "wire")

    def __init__(
        self,
        done: Callable[[Outcome], Any],
        deadline: float,
        wire: bytes | None = None,
        receiver: Any = None,
        retry: bool = True,
        repeat: FastTransport | None = None,
    ) -> None:
        self.done = done
        self.ended = False
        self.deadline = deadline
        self.conn: _Conn | None = None
        self.retried = False
        self.wire = wire  # None: the profile's prebuilt request
        self.receiver = receiver
        self.retry = retry
        self.repeat = repeat

    def finish(self, outcome: Outcome) -> None:
        if not self.ended:
            self.ended = True
            if self.done(outcome) and self.repeat is not None:
                self.repeat._again(self)


class _Unexpected(Exception):
    """A response arrived that no request asked for."""


class _Conn(asyncio.Protocol):
    """One connection: writes the prebuilt request, parses the response, hands itself back to the pool.

    Per response httptools calls back twice (``on_body`` per body piece,
    ``on_message_complete`` once); the status and keep-alive verdict are read
    from the parser then.
    """

    __slots__ = ("dead", "head", "keep", "nbytes", "outcome", "parser", "pool", "req", "request", "too_large", "transport", "uses")

    def __init__(self, pool: FastTransport) -> None:
        self.pool = pool
        self.request = pool._request
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.req: _Req | None = None
        self.outcome: tuple[int, int, None] | None = None  # set once the response is complete
        self.nbytes = 0
        self.head = b""  # the response's first bytes (empty: none yet), kept to judge a body that ends with the connection
        self.keep = False
        self.dead = False
        self.too_large = False
        self.uses = 0

    # ------------------------------------------------------------------ pool side

    def start(self, req: _Req) -> None:
        self.req = req
        req.conn = self
        self.uses += 1
        self.nbytes = 0
        self.head = b""
        self.outcome = None
        self.transport.write(req.wire or self.request)

    def discard(self) -> None:
        """Drop the connection at once (timeout, cancellation, bad response): nothing more is read from it."""
        idle = self.req is None
        self.req = None
        if not self.dead:
            self.dead = True
            self.pool._forget(self, idle)
        if self.transport is not None:
            self.transport.abort()

    def shut(self) -> None:
        """Close after a complete response (Connection: close, HTTP/1.0 or keepalive: false)."""
        if not self.dead:
            self.dead = True
            self.pool._forget(self, False)
        self.transport.close()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.pool._conns.add(self)

    def data_received(self, data: bytes) -> None:
        req = self.req
        if req is None:  # bytes nobody asked for: the connection can no longer be trusted
            self.discard()
            return
        if not self.head:
            self.head = data
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            if self.outcome is None:
                self._fail(req, _TOO_LARGE if self.too_large else _PROTOCOL)
                return
            self.keep = False  # a complete response, then bytes nobody asked for: answer it, drop the connection
        outcome = self.outcome
        if outcome is None:
            return
        # The response is complete. A repeating request that is to go again goes again at once on this
        # connection (the closed loop at full speed: no trip through the pool); any other request frees
        # the connection first, then reports, so that whatever it starts next can take the connection.
        pool = self.pool
        keep = self.keep and pool._keepalive
        if keep and req.repeat is not None and not req.ended:
            req.ended = True
            again = req.done(outcome)
            if again and not pool._closing:  # start() inlined: this is the closed loop's every request
                req.ended = req.retried = False
                req.deadline = pool._loop.time() + pool._timeout_s
                self.uses += 1
                self.nbytes = 0
                self.head = b""
                self.outcome = None
                self.transport.write(req.wire or self.request)
                return
            self.req = None
            req.conn = None
            self._free(keep)
            if again:  # the transport is closing: it ends as "cancelled"
                pool._again(req)
            return
        self.req = None
        req.conn = None
        self._free(keep)
        req.finish(outcome)

    def _free(self, keep: bool) -> None:
        """After a complete response: back to the pool (the oldest waiter, else idle), or closed."""
        pool = self.pool
        if not keep:
            self.shut()
        elif pool._waiters:
            pool._release(self)
        else:
            pool._idle.append(self)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost decides what the EOF meant

    def connection_lost(self, exc: BaseException | None) -> None:
        pool = self.pool
        pool._conns.discard(self)
        if not self.dead:
            self.dead = True
            pool._forget(self, self.req is None)
        req, self.req = self.req, None
        if req is not None:
            req.conn = None
            if not req.ended:
                status = _eof_body_status(self.head) if exc is None and self.head else None
                if pool._closing:
                    req.finish(_CANCELLED)
                elif status is not None:
                    req.finish((status, self.nbytes, None))  # the body ran until the server closed
                elif not self.head and self.uses > 1 and not req.retried and req.retry:
                    # A kept-alive connection the server had closed while idle: once more on a new one.
                    req.retried = True
                    pool._connect_for(req)
                else:
                    req.finish(_READ)
        if pool._close_waiter is not None and not pool._conns and not pool._close_waiter.done():
            pool._close_waiter.set_result(None)
        pool._kick()

    # ------------------------------------------------------------------ httptools callbacks

    def on_body(self, body: bytes) -> None:
        self.nbytes += len(body)
        if self.nbytes > self.pool._max_body:
            self.too_large = True
            raise _Unexpected()  # httptools stops parsing; data_received fails the request
        req = self.req
        if req is not None and req.receiver is not None:
            req.receiver.chunk(body, time.monotonic_ns())

    def on_message_complete(self) -> None:
        if self.outcome is not None:  # a second response in the same bytes: nobody asked for it
            raise _Unexpected()
        parser = self.parser
        status = parser.get_status_code()
        if status < 200:  # the end of a 1xx informational response: the real one follows
            self.nbytes = 0
            return
        self.keep = parser.should_keep_alive()
        self.outcome = (status, self.nbytes, None)

    # ------------------------------------------------------------------ internals

    def _fail(self, req: _Req, outcome: Outcome) -> None:
        req.conn = None
        self.discard()
        req.finish(outcome)


class _PlainConn(_Conn):
    """A connection for a plain profile with no ``max_body``: body pieces are only counted (no receiver, no limit)."""

    __slots__ = ()

    def on_body(self, body: bytes) -> None:
        self.nbytes += len(body)


class _HeadConn(_Conn):
    """A connection sending HEAD: the response ends with its headers, whatever Content-Length says."""

    __slots__ = ()

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if status < 200:
            return
        if self.outcome is not None:
            raise _Unexpected()
        self.keep = parser.should_keep_alive()
        self.outcome = (status, 0, None)
        self.parser = httptools.HttpResponseParser(self)  # the old one would wait for the announced body

    def on_body(self, body: bytes) -> None:
        pass

    def on_message_complete(self) -> None:
        pass


def _eof_body_status(head: bytes) -> int | None:
    """The status of a response whose headers (in ``head``) announce neither Content-Length nor chunked,
    so that its body ends when the connection does; None for any other response or incomplete headers."""

    class Probe:
        status: int | None = None
        length = False

        def on_header(self, name: bytes, value: bytes) -> None:
            name = name.lower()
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
                self.length = True

        def on_headers_complete(self) -> None:
            status = parser.get_status_code()
            if status >= 200 and self.status is None:
                self.status = status if not self.length else -1
            self.length = False  # (a 1xx response's headers say nothing about the final one)

    probe = Probe()
    parser = httptools.HttpResponseParser(probe)
    try:
        parser.feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        pass
    return probe.status if probe.status is not None and probe.status >= 0 else None


class FastTransport:
    """A keep-alive pool of httptools-parsed HTTP/1.1 connections; see the module docstring."""

    def __init__(self, profile: Profile, url: str, pool_size: int):
        target, client = profile.target, profile.client
        self._loop = asyncio.get_running_loop()
        self._timeout_s = target.timeout_s
        self._connect_timeout_s = client.connect_timeout_s
        self._pool_size = max(1, pool_size)
        self._keepalive = client.keepalive
        self._max_body = client.max_body if client.max_body is not None else math.inf
        self._retry = target.method in _IDEMPOTENT  # a stale connection's request is retried (RFC 9112, 9.3.1)
        if target.method == "HEAD":
            self._conn_class: type[_Conn] = _HeadConn
        else:
            self._conn_class = _PlainConn if profile.plain and client.max_body is None else _Conn

        parts = urlsplit(url)
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        self._host, self._port = host, port
        self._request = _build_request(target.method, parts, host, port, tls, target.headers, target.body, client.keepalive)

        self._ssl: ssl.SSLContext | None = None
        if tls:
            context = ssl.create_default_context()
            if not client.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            self._addrs: list[tuple[int, str]] = []
            self._addrs_until = 0.0
        else:
            self._addrs = [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, host)]
            self._addrs_until = float("inf")

        self._idle: deque[_Conn] = deque()
        self._waiters: deque[_Req] = deque()
        self._open = 0  # connections open or being opened, never above pool_size
        self._conns: set[_Conn] = set()
        self._connecting: set[_Req] = set()  # requests a connection is being opened for
        self._tasks: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None  # the sweep, due at the earliest deadline in flight
        self._closing = False
        self._close_waiter: asyncio.Future | None = None

    # ------------------------------------------------------------------ the interface

    async def send(self, prepared: Any = None, receiver: Any = None) -> Outcome:
        """Send a request once: (status, body bytes, None) or (None, 0, error kind); CancelledError propagates.

        ``prepared`` (a PreparedRequest to this transport's host) replaces the
        profile's request; ``receiver`` gets every body piece with its arrival time.
        """
        fut = self._loop.create_future()
        req = self.submit(functools.partial(_resolve, fut), prepared, receiver)
        try:
            return await fut
        except asyncio.CancelledError:
            self.cancel(req, None)
            raise

    def submit(self, done: Callable[[Outcome], Any], prepared: Any = None, receiver: Any = None, repeat: bool = False) -> _Req:
        """Start a request and return its handle at once; ``done(outcome)`` is called from the loop when it ends.

        The callback form of ``send()``, for a caller that chains requests
        without a coroutine, a future and a task wake-up per request (the
        worker's closed loop: see ``Worker``). ``done`` is never called from
        inside ``submit``; for a request that is not repeating it is called
        after the connection is back in the pool, so it may submit the next
        request on the same connection. ``repeat``: the request is sent again
        each time ``done`` returns True (it has counted the next send), like
        wrk's connections; on the same connection when the response left it
        reusable.
        """
        loop = self._loop
        if prepared is None:
            req = _Req(done, loop.time() + self._timeout_s, None, receiver, self._retry, self if repeat else None)
        else:
            wire = prepared.cache.get("fast")
            if wire is None:
                parts = urlsplit(prepared.url)
                wire = prepared.cache["fast"] = _build_request(
                    prepared.method, parts, self._host, self._port, self._ssl is not None, prepared.headers, prepared.body, self._keepalive
                )
            req = _Req(done, loop.time() + self._timeout_s, wire, receiver, prepared.method in _IDEMPOTENT, self if repeat else None)
        self._route(req)
        return req

    def _again(self, req: _Req) -> None:
        """A repeating request goes again through the pool (its connection was closed, lost or timed out)."""
        req.ended = req.retried = False
        req.deadline = self._loop.time() + self._timeout_s
        if req in self._connecting:  # it timed out while a connection was being opened for it: it takes that one
            return
        self._route(req)

    def _route(self, req: _Req) -> None:
        """Send on an idle connection, or open one while under the limit, or wait in line for one."""
        if self._closing:
            req.repeat = None  # the caller has counted it as sent: it ends as "cancelled", and only once
            self._loop.call_soon(req.finish, _CANCELLED)
            return
        if self._timer is None:  # else it is due at an earlier deadline: every request has the same timeout
            self._timer = self._loop.call_at(req.deadline + _LATE_S, self._sweep)
        if self._idle:
            self._idle.pop().start(req)
        elif self._open < self._pool_size:
            self._connect_for(req)
        else:
            self._waiters.append(req)

    def cancel(self, req: _Req, outcome: Outcome | None = _CANCELLED) -> None:
        """Give up on a submitted request: its connection is dropped (a late response would belong to nobody)
        and ``done`` gets ``outcome`` (None: is not called) unless the request had already ended."""
        if req.ended:
            return
        req.repeat = None  # a cancelled request does not go again
        if outcome is None:
            req.ended = True
        conn = req.conn
        if conn is not None and conn.req is req:
            conn.discard()
        if outcome is not None:
            req.finish(outcome)

    async def close(self) -> None:
        """Close every connection, stop connection attempts, fail whatever still waits as "cancelled"."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        while self._waiters:
            self._waiters.popleft().finish(_CANCELLED)
        self._idle.clear()
        if self._conns:
            self._close_waiter = self._loop.create_future()
            for conn in list(self._conns):
                if conn.transport is not None:
                    conn.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._close_waiter), _CLOSE_WAIT_S)
            except asyncio.TimeoutError:
                for conn in list(self._conns):
                    if conn.transport is not None:
                        conn.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=_CLOSE_WAIT_S)

    # ------------------------------------------------------------------ the pool

    def _sweep(self) -> None:
        """The transport's one timer: every request past its deadline ends as "timeout", then re-arm for the earliest left.

        Deadlines are the send time plus ``target.timeout`` (total: the wait for
        a pool slot, connecting, sending and reading), so they grow in send
        order and a new request never needs the timer earlier than it is. A
        timed-out request's connection is discarded, so its late response
        cannot be read as the next request's; a connection still being opened
        for it joins the pool instead.
        """
        self._timer = None
        now = self._loop.time()
        earliest = math.inf
        expired: list[_Req] = []  # finished last: a callback may submit again, which must find the timer armed
        waiters = self._waiters
        while waiters:  # in deadline order
            req = waiters[0]
            if req.ended:
                waiters.popleft()
            elif req.deadline <= now:
                expired.append(waiters.popleft())
            else:
                earliest = req.deadline
                break
        for req in self._connecting:
            if not req.ended:
                if req.deadline <= now:
                    expired.append(req)
                elif req.deadline < earliest:
                    earliest = req.deadline
        for conn in list(self._conns):
            req = conn.req
            if req is None:
                continue
            if req.deadline <= now:
                req.conn = None
                conn.discard()
                expired.append(req)
            elif req.deadline < earliest:
                earliest = req.deadline
        if earliest < math.inf and not self._closing:
            self._timer = self._loop.call_at(earliest + _LATE_S, self._sweep)
        for req in expired:
            req.finish(_TIMEOUT)

    def _release(self, conn: _Conn) -> None:
        """A kept-alive connection is free: to the oldest live waiter, else to the idle pool."""
        waiters = self._waiters
        while waiters:
            req = waiters.popleft()
            if not req.ended:
                conn.start(req)
                return
        self._idle.append(conn)

    def _forget(self, conn: _Conn, idle: bool) -> None:
        """A connection is gone (or going): free its slot, and take it out of the idle pool if it was there."""
        self._open -= 1
        if idle:
            try:
                self._idle.remove(conn)
            except ValueError:
                pass

    def _kick(self) -> None:
        """Open connections for waiters while under the limit (after a connection closed or failed to open)."""
        waiters = self._waiters
        while waiters and self._open < self._pool_size and not self._closing:
            req = waiters.popleft()
            if not req.ended:
                self._connect_for(req)

    def _connect_for(self, req: _Req) -> None:
        self._open += 1
        self._connecting.add(req)
        task = self._loop.create_task(self._connect(req))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, req: _Req) -> None:
        try:
            conn = await self._open_connection()
        except asyncio.CancelledError:  # close(): the request ends with the transport
            self._open -= 1
            self._connecting.discard(req)
            req.finish(_CANCELLED)
            raise
        except BaseException as exc:  # noqa: BLE001 - a failed connect is an error kind for this request
            self._connecting.discard(req)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self._open -= 1
            req.finish((None, 0, _connect_error(exc)))
            self._kick()
            return
        self._connecting.discard(req)
        if conn.dead:  # lost between connecting and now: connection_lost has freed its slot
            req.finish(_READ)
            return
        if self._closing:
            conn.discard()
            req.finish(_CANCELLED)
        elif req.ended:  # it timed out or was cancelled meanwhile: the connection serves the next one
            self._release(conn)
        else:
            conn.start(req)

    async def _open_connection(self) -> _Conn:
        loop = self._loop
        # client.connect_timeout: resolving, TCP connect and TLS handshake together; beyond it, "timeout".
        async with asyncio.timeout(self._connect_timeout_s):
            addrs = await self._resolve()
            error: BaseException | None = None
            for i, (family, address) in enumerate(addrs):
                try:
                    _, conn = await loop.create_connection(
                        lambda: self._conn_class(self),
                        address,
                        self._port,
                        family=family,
                        ssl=self._ssl,
                        server_hostname=self._host if self._ssl is not None else None,
                    )
                except OSError as exc:
                    error = exc
                    continue
                if i:  # try the address that answered first next time
                    addrs.insert(0, addrs.pop(i))
                return conn  # type: ignore[return-value]
            raise error if error is not None else OSError(f"no address for {self._host!r}")

    async def _resolve(self) -> list[tuple[int, str]]:
        """The host's addresses, looked up once per DNS_TTL (an IP literal never)."""
        if self._addrs and time.monotonic() < self._addrs_until:
            return self._addrs
        infos = await self._loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        addrs: list[tuple[int, str]] = []
        for family, _, _, _, sockaddr in infos:
            entry = (family, sockaddr[0])
            if entry not in addrs:
                addrs.append(entry)
        self._addrs, self._addrs_until = addrs, time.monotonic() + _DNS_TTL_S
        return addrs


def _resolve(fut: asyncio.Future, outcome: Outcome) -> None:
    """``send()``'s callback: a response can complete after the waiting task was cancelled, before it woke up."""
    if not fut.done():
        fut.set_result(outcome)


def _connect_error(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, (OSError, ssl.SSLError, ssl.CertificateError)):  # refused, unreachable, DNS, TLS handshake
        return "connect"
    return "other"


def _build_request(
    method: str,
    parts: Any,
    host: str,
    port: int,
    tls: bool,
    headers: tuple[tuple[str, str], ...],
    body: bytes | None,
    keepalive: bool,
) -> bytes:
    """The complete request, once: request line, Host, the profile's headers, User-Agent, Content-Length, body."""
    path = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        path += "?" + quote(parts.query, safe=_SAFE_QUERY)
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {path} HTTP/1.1"]
    if "host" not in names:
        host_text = f"[{host}]" if ":" in host else host
        if port != (443 if tls else 80):
            host_text += f":{port}"
        lines.append(f"Host: {host_text}")
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("content-length", "transfer-encoding") or (lowered == "connection" and not keepalive):
            continue  # the body's length is ours to state; keepalive: false says Connection: close below
        lines.append(f"{name}: {value}")
    if parts.username is not None and "authorization" not in names:
        credentials = f"{parts.username}:{parts.password or ''}".encode()
        lines.append("Authorization: Basic " + base64.b64encode(credentials).decode("ascii"))
    if "user-agent" not in names:
        lines.append("User-Agent: bench")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    if not keepalive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (body or b"")

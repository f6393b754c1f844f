"""The default transport: an aiohttp client pool, and the place aiohttp's exceptions become error kinds."""

from __future__ import annotations

import asyncio
import math
import socket
import sys
import time
import types
from collections import deque
from typing import Any

import aiohttp

from bench.engine.plan.profile import Profile


def map_error(exc: BaseException) -> str:
    """The error kind of an exception raised while sending or reading a request."""
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return "timeout"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ClientProxyConnectionError, ConnectionRefusedError, socket.gaierror)):
        return "connect"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError, ConnectionResetError)):
        return "read"
    if isinstance(exc, (aiohttp.ClientResponseError, aiohttp.InvalidURL)):
        return "protocol"
    if isinstance(exc, aiohttp.ClientError):
        return "protocol"
    if isinstance(exc, OSError):
        return "read"
    return "other"


SMALL_BODY = 1 << 20  # read at once below this; stream and count above it
_NO_CONTENT_TYPE = ("Content-Type",)


class _PlainRequest(aiohttp.ClientRequest):
    """An aiohttp request that adds no Accept or Accept-Encoding header: the same bytes as the other transports.

    Cheaper than the session's ``skip_auto_headers``, which aiohttp turns into
    a sorted multidict and a copy of the headers on every request.
    """

    DEFAULT_HEADERS: dict[str, str] = {}

    if sys.version_info < (3, 12):  # aiohttp starts this eagerly itself from Python 3.12 on

        def write_bytes(self, writer: Any, conn: Any, content_length: int | None = None) -> Any:
            """Write the request body now, in the sending task, not in a task of its own that runs later.

            aiohttp writes a request with a body (the headers coalesced with it)
            from a new task; before Python 3.12 that task cannot start eagerly,
            so it runs only after every callback already queued. When a round of
            streams ends together, each user records its response and sends the
            next request, and every request's bytes then waited for all the
            other users' turns: 43 ms at p50 (up to 108 ms) between the send
            time and the write at 256 streams, counted into TTFT and latency.
            Here the body coroutine's first step runs at once (what aiohttp does
            with ``eager_start`` on 3.12+); if it has to wait (a full socket
            buffer, a 100-continue), the task aiohttp makes goes on from there.
            """
            coro = super().write_bytes(writer, conn, content_length)
            try:
                waiting_on = coro.send(None)
            except StopIteration:
                return _written()
            return _resumed(coro, waiting_on)


async def _written() -> None:
    """The body was written at once: the task aiohttp makes for it has nothing left to do."""


@types.coroutine
def _resumed(coro: Any, waiting_on: Any) -> Any:
    """Drive a coroutine that already ran its first step and is waiting on ``waiting_on``, as a task would."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:  # noqa: BLE001 - cancellation and the rest go into the coroutine, as a task's would
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as stop:
                return stop.value


class FifoSlots:
    """A counting semaphore that hands a freed slot to the longest waiter, so no request can jump the queue."""

    def __init__(self, slots: int):
        self.free = slots
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we were cancelled: pass it on
            elif waiter in self.waiters:  # release() may already have dropped it as cancelled
                self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the waiter, never back to the pool
                return
        self.free += 1


class AiohttpTransport:
    """An aiohttp ClientSession sized to this worker's share of the load, with request parts prebuilt."""

    def __init__(self, profile: Profile, url: str, pool_size: int):
        self.url = url
        self.timeout_s = profile.target.timeout_s
        self.connect_timeout_s = profile.client.connect_timeout_s
        self.max_body = profile.client.max_body if profile.client.max_body is not None else math.inf
        self.slots = FifoSlots(pool_size)
        self.method = profile.target.method
        self.connection_header = {} if profile.client.keepalive else {"Connection": "close"}
        self.read_limit = min(SMALL_BODY, self.max_body)  # a body of known length up to this is read at once
        # The profile's own request: its keyword arguments built once, only those that differ from aiohttp's
        # defaults (each one passed costs on every request: ~2 k instructions for data=None and headers={}).
        self.plain_kwargs = self._kwargs(profile.target.body, {**dict(profile.target.headers), **self.connection_header})
        connector = aiohttp.TCPConnector(
            ssl=None if profile.client.tls_verify else False,
            limit=pool_size,  # FifoSlots already holds requests to pool_size; this is only a backstop
            limit_per_host=0,  # one host: the limit above covers it, without per-host bookkeeping on every request
            force_close=not profile.client.keepalive,
            ttl_dns_cache=300,
            enable_cleanup_closed=True,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=profile.target.timeout_s, sock_connect=profile.client.connect_timeout_s),
            # Send the same bytes as the other transports: no Accept, Accept-Encoding or default Content-Type.
            request_class=_PlainRequest,
            headers={"User-Agent": "bench"},
            auto_decompress=False,
        )

    async def send(self, prepared: Any = None, receiver: Any = None) -> tuple[int | None, int, str | None]:
        """Send a request and read the whole body: (status, body bytes, None) or (None, 0, error kind).

        ``prepared`` (a PreparedRequest) replaces the profile's request; ``receiver``
        gets every body piece with its arrival time (streamed responses, checks).

        Requests wait for a connection in our own first-come-first-served queue:
        aiohttp's connector lets a request that arrives as a connection frees up
        take it ahead of the ones already waiting, which starves some requests
        for seconds when the pool is smaller than the concurrency. The total
        timeout covers that wait, as it does in the other transports: a request
        that waited gets what is left of it as its aiohttp total timeout; one
        that did not wait runs under the session's, so the common case arms
        one timer per request, not two.
        """
        if prepared is None:
            method, url, kwargs = self.method, self.url, self.plain_kwargs
        else:
            method, url = prepared.method, prepared.url
            kwargs = prepared.cache.get("aiohttp")
            if kwargs is None:
                kwargs = prepared.cache["aiohttp"] = self._kwargs(prepared.body, {**dict(prepared.headers), **self.connection_header})
        slots = self.slots
        try:
            if slots.free > 0 and not slots.waiters:  # a connection is free: no wait, one timer (the session's)
                slots.free -= 1
            else:  # wait in line; the time spent waiting comes off the request's total timeout
                started = time.monotonic()
                async with asyncio.timeout(self.timeout_s):
                    await slots.acquire()
                left = max(1e-3, self.timeout_s - (time.monotonic() - started))
                kwargs = {**kwargs, "timeout": aiohttp.ClientTimeout(total=left, sock_connect=self.connect_timeout_s)}
            try:
                # One coroutine level, not two: every resumption inside aiohttp passes through each.
                async with self.session.request(method, url, **kwargs) as response:
                    length = response.content_length
                    if receiver is None and length is not None and length <= self.read_limit:
                        return response.status, len(await response.read()), None
                    # Large or unknown length: count the pieces without keeping them, within max_body.
                    nbytes = 0
                    async for chunk in response.content.iter_any():
                        if receiver is not None:
                            receiver.chunk(chunk, time.monotonic_ns())
                        nbytes += len(chunk)
                        if nbytes > self.max_body:
                            response.close()
                            return None, 0, "body_too_large"
                    return response.status, nbytes, None
            finally:
                slots.release()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure is counted as a kind, never raised
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return None, 0, map_error(exc)

    @staticmethod
    def _kwargs(body: Any, headers: dict[str, str]) -> dict[str, Any]:
        """A request's keyword arguments for ``session.request``: no redirects followed, and only what differs from the defaults."""
        kwargs: dict[str, Any] = {"allow_redirects": False}
        if body is not None:
            kwargs["data"] = body
            kwargs["skip_auto_headers"] = _NO_CONTENT_TYPE  # a body without a Content-Type in the profile goes without one
        if headers:
            kwargs["headers"] = headers
        return kwargs

    async def close(self) -> None:
        await self.session.close()

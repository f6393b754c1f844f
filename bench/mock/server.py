"""The mock server: listening on uvloop, in-process, blocking and child-process runners.

The connections themselves (the httptools HTTP/1.1 protocol and the state a
server's connections share) live in ``bench.mock.connection``. HTTP/2 is served
too: a connection whose first bytes are the HTTP/2 preface (h2c with prior
knowledge), or that negotiated ``h2`` through TLS ALPN, is handed over to
``bench.mock.h2``. TLS is optional (``ssl_context``; ``tls_context`` builds one).

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
from typing import Any, Callable, Iterator

import uvloop

from bench.mock.behaviour import Behaviour
from bench.mock.config import MockConfig
from bench.mock.config import server_url as _url
from bench.mock.connection import CapacityConnection, Connection, InstantConnection, Shared

__all__ = ["MockServer", "run_server", "serve_until_signal", "start_server", "tls_context"]

_BACKLOG = 1024
_PARENT_POLL_S = 0.5
_ALPN = ["h2", "http/1.1"]


class MockServer:
    """A listening in-process mock server; unpacks as ``(asyncio.Server, port)``.

    Use ``await close()`` (or ``async with``) rather than only ``server.close()``:
    it also closes open keep-alive connections, which asyncio leaves running.
    """

    def __init__(self, server: asyncio.AbstractServer, port: int, host: str, shared: Shared, tls: bool = False) -> None:
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
    shared = Shared(loop, config)
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(_ALPN)
    connection_class: type[Connection] = InstantConnection if shared.behaviour.instant else Connection
    if config.capacity is not None:
        connection_class = CapacityConnection  # GET /metrics: its slots, queue and refusals
    if config.openai is not None:
        # Routing hook: this connection class sends /v1/chat/completions and /v1/completions
        # to the OpenAI behaviour and everything else to Connection's code, so servers
        # without an openai section keep the lean protocol (no URL or body callbacks).
        from bench.mock.openai import OpenAIBehaviour, OpenAIConnection

        shared.openai = OpenAIBehaviour(config.openai, config.seed)
        connection_class = OpenAIConnection
    if config.flow:
        # /flow/ paths too (FlowConnection is an OpenAIConnection that serves OpenAI paths only with openai on).
        from bench.mock.flow import FlowConnection, FlowState

        shared.flow = FlowState(config.seed)
        connection_class = FlowConnection

    def factory() -> Connection:
        return connection_class(shared)

    if sock is not None:
        server = await loop.create_server(factory, sock=sock, backlog=_BACKLOG, ssl=ssl_context)
    else:
        server = await loop.create_server(
            factory, host, port, reuse_port=reuse_port or None, backlog=_BACKLOG, ssl=ssl_context
        )
    bound = server.sockets[0].getsockname()
    return MockServer(server, bound[1], host if sock is None else bound[0], shared, tls=ssl_context is not None)


async def serve_until_signal(
    config: MockConfig,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
    on_ready: Callable[[int], object] | None = None,
    parent_pid: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    stop_signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
) -> None:
    """Serve until one of ``stop_signals`` (or, with ``parent_pid``, until that parent is gone)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = stop_signals
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
                    replace(config, seed=config.seed + index), host, port, reuse_port=True, ssl_context=ssl_context,
                    close_fds=(sock.fileno(),),
                )
                workers.append(worker)
                worker.start()
            sock.listen(_BACKLOG)
        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(
                serve_until_signal(config, host, port, sock=sock, on_ready=on_ready, ssl_context=ssl_context)
            )
        finally:
            loop.close()
    finally:
        for worker in workers:
            worker.stop()
        if sock is not None:
            sock.close()

"""The mock server in a forked child process: for ``bench run`` without a target URL, tests and benchmarks.

Kept apart from ``bench.mock.server`` so the parent need not import the
server (uvloop, httptools, h2) to fork it: the child imports it, in
parallel with whatever the parent does next. ``launch()`` forks and returns
at once; ``wait_ready()`` waits until the child listens (``start()`` is
both), so ``bench run`` can prepare its workers meanwhile.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import ssl
import sys
import threading
import traceback
from typing import Any

from bench.mock.config import MockConfig, server_url

__all__ = ["MockServerProcess"]

_START_TIMEOUT_S = 10.0


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Best effort (Linux): have the kernel send SIGTERM when the forking thread's process dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _child_main(
    conn: multiprocessing.connection.Connection,
    config: MockConfig,
    host: str,
    port: int,
    reuse_port: bool,
    parent_pid: int,
    pdeathsig: bool,
    close_fds: tuple[int, ...],
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    # The fork copied the parent's signal setup (possibly its event loop's wakeup fd,
    # which would forward our signals to the parent): start from the defaults.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A terminal's Ctrl-C (or a kill of the whole group) reaches every process of the foreground
    # group at once. The parent answers it by draining its workers against this server, so the
    # server leaves the group and ignores SIGINT: it stops when the parent stops it (SIGTERM,
    # by PID) after the drain, or when the parent dies (below, and the parent watch).
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if pdeathsig:
        _die_with_parent()
    if os.getppid() != parent_pid:
        os._exit(0)
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    import asyncio

    import uvloop

    from bench.mock.server import serve_until_signal  # here, in the child: see the module docstring

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(
            serve_until_signal(
                config,
                host,
                port,
                reuse_port=reuse_port,
                on_ready=lambda bound: conn.send(("ready", bound)),
                parent_pid=parent_pid,
                ssl_context=ssl_context,
                stop_signals=(signal.SIGTERM,),
            )
        )
    except BaseException:
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass
        raise SystemExit(1)
    finally:
        loop.close()
        conn.close()


class MockServerProcess:
    """A mock server in a forked child process, for tests and benchmarks that need a separate CPU.

    ``start()`` returns once the child listens (``port`` then holds the real port);
    ``stop()`` sends SIGTERM, then SIGKILL if the child has not exited within the
    timeout. The child runs in a process group of its own and ignores SIGINT, so
    a Ctrl-C to the terminal's group leaves it serving until ``stop()``; it exits
    by itself if this process dies. ``ssl_context`` serves
    TLS with ALPN (see ``start_server``); the child gets it through the fork.
    ``close_fds``: this process's descriptors the child closes first (e.g. a
    listening socket it must not hold).
    """

    def __init__(
        self,
        config: MockConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reuse_port: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        close_fds: tuple[int, ...] = (),
    ) -> None:
        self.config = config if config is not None else MockConfig()
        self.ssl_context = ssl_context
        self.host = host
        self.port: int | None = port or None
        self.pid: int | None = None
        self._requested_port = port
        self._reuse_port = reuse_port
        self._close_fds = close_fds
        self._process: Any = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._ready = False

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("MockServerProcess is not started")
        return server_url(self.host, self.port, self.ssl_context is not None)

    def start(self, timeout: float = _START_TIMEOUT_S) -> "MockServerProcess":
        """Fork the server and wait until it listens; raise RuntimeError with the child's error otherwise."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> "MockServerProcess":
        """Fork the server and return at once; ``wait_ready()`` then waits for it to listen."""
        if self._process is not None:
            raise RuntimeError("MockServerProcess already started")
        ctx = multiprocessing.get_context("fork")
        receiver, sender = ctx.Pipe(duplex=False)
        pdeathsig = threading.current_thread() is threading.main_thread()
        process = ctx.Process(
            target=_child_main,
            args=(
                sender,
                self.config,
                self.host,
                self._requested_port,
                self._reuse_port,
                os.getpid(),
                pdeathsig,
                self._close_fds,
                self.ssl_context,
            ),
            name="bench-mock-server",
            daemon=True,
        )
        self._process, self._conn = process, receiver
        process.start()
        self.pid = process.pid
        sender.close()  # so a child that dies early shows up as EOF here
        return self

    def wait_ready(self, timeout: float = _START_TIMEOUT_S) -> "MockServerProcess":
        """Wait until the launched child listens (``port`` then holds the real port); RuntimeError otherwise."""
        process, receiver = self._process, self._conn
        if process is None or receiver is None:
            raise RuntimeError("MockServerProcess is not launched")
        if self.port is not None and self._ready:
            return self
        message: Any = None
        if multiprocessing.connection.wait([receiver, process.sentinel], timeout):
            try:
                if receiver.poll():
                    message = receiver.recv()
            except (EOFError, OSError):
                message = None
        if isinstance(message, tuple) and message[0] == "ready":
            self.port = message[1]
            self._ready = True
            return self
        where = f"{self.host}:{self._requested_port}"
        self.stop()
        if isinstance(message, tuple) and message[0] == "error":
            raise RuntimeError(f"mock server process failed to listen on {where}:\n{message[1]}")
        if process.exitcode is not None:
            raise RuntimeError(f"mock server process exited with code {process.exitcode} before listening on {where}")
        raise RuntimeError(f"mock server process did not report listening on {where} within {timeout:g} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after ``timeout``) and reap it; safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.exitcode is None:
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                process.join(timeout)
                if process.exitcode is None:
                    process.kill()
                    process.join(timeout)
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "MockServerProcess":
        if self._process is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

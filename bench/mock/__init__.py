"""The bundled mock HTTP server: a fast, configurable target with known latency, errors and stalls.

It lets the load tester be exercised (and its percentiles checked against exact
quantiles) without any external service. It stands alone: nothing here imports the
engine or the CLI.

The server's names are imported on first use (PEP 562), so that reading a
profile's ``mock:`` section (``bench.mock.config``) does not load uvloop,
httptools and h2 into a ``bench run`` that targets a real API, and
``MockServerProcess`` (``bench.mock.process``) forks a child that imports
the server itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.mock.config import MockConfig, MockConfigError

if TYPE_CHECKING:
    from bench.mock.process import MockServerProcess
    from bench.mock.server import run_server, start_server, tls_context

__all__ = ["MockConfig", "MockConfigError", "MockServerProcess", "run_server", "start_server", "tls_context"]

_SERVER_NAMES = {"run_server", "start_server", "tls_context"}


def __getattr__(name: str) -> Any:
    if name == "MockServerProcess":
        from bench.mock.process import MockServerProcess

        return MockServerProcess
    if name in _SERVER_NAMES:
        from bench.mock import server

        return getattr(server, name)
    raise AttributeError(f"module 'bench.mock' has no attribute {name!r}")

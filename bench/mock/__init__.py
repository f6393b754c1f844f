"""The bundled mock HTTP server: a fast, configurable target with known latency, errors and stalls.

It lets the load tester be exercised (and its percentiles checked against exact
quantiles) without any external service. It stands alone: nothing here imports the
engine or the CLI.
"""

from bench.mock.config import MockConfig, MockConfigError
from bench.mock.server import MockServerProcess, run_server, start_server, tls_context

__all__ = ["MockConfig", "MockConfigError", "MockServerProcess", "run_server", "start_server", "tls_context"]

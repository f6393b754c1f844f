"""Transports: how one request is sent. Every transport has the same small interface.

``send()`` sends the profile's request once and returns ``(status, body_bytes,
None)`` or ``(None, 0, error_kind)``: a per-request failure is data, never an
exception, so the worker counts every request exactly once. ``close()``
releases the connections. The worker never knows which transport it drives.

* ``aiohttp`` (default): everything aiohttp does (TLS, proxies from the
  environment, any body), at aiohttp's cost per request.
* ``fast``: a lean HTTP/1.1 client on uvloop + httptools for when the
  generator itself must be cheap. It also offers a callback form
  (``submit``/``cancel``, with repeating requests), which the worker's
  open and closed loops use when a transport has it.
* ``h2``: HTTP/2 with many streams per connection (h2c or TLS with ALPN).
"""

from __future__ import annotations

from typing import Protocol

from bench.engine.plan.profile import TRANSPORTS, Profile
from bench.gcpause import collector_paused

Outcome = tuple[int | None, int, str | None]
__all__ = ["TRANSPORTS", "Outcome", "Transport", "make_transport", "preload"]


class Transport(Protocol):
    async def send(self) -> Outcome: ...

    async def close(self) -> None: ...


def preload(name: str) -> None:
    """Import a transport's module (and uvloop) now: in a parent about to fork, once for every worker.

    Importing aiohttp costs about 0.15 s (it builds two SSL contexts at
    import); paid once before the fork, the workers start without it, and
    workers sharing a core do not pay it one after another.
    """
    with collector_paused():
        import uvloop  # noqa: F401 - every worker runs on it

        if name == "fast":
            import bench.engine.workers.transports.fast  # noqa: F401
        elif name == "h2":
            import bench.engine.workers.transports.h2  # noqa: F401
        else:
            import bench.engine.workers.transports.aiohttp_client  # noqa: F401


def make_transport(profile: Profile, url: str, pool_size: int) -> Transport:
    """Build the transport the profile names (``client.transport``), sized to this worker's share."""
    name = profile.client.transport
    if name == "fast":
        from bench.engine.workers.transports.fast import FastTransport

        return FastTransport(profile, url, pool_size)
    if name == "h2":
        from bench.engine.workers.transports.h2 import H2Transport

        return H2Transport(profile, url, pool_size)
    from bench.engine.workers.transports.aiohttp_client import AiohttpTransport

    return AiohttpTransport(profile, url, pool_size)

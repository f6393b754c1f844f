"""Transports: how one request is sent. Every transport has the same small interface.

``send()`` sends the profile's request once and returns ``(status, body_bytes,
None)`` or ``(None, 0, error_kind)``: a per-request failure is data, never an
exception, so the worker counts every request exactly once. ``close()``
releases the connections. The worker never knows which transport it drives.

* ``aiohttp`` (default): everything aiohttp does (TLS, proxies from the
  environment, any body), at aiohttp's cost per request.
* ``fast``: a lean HTTP/1.1 client on uvloop + httptools for when the
  generator itself must be cheap.
* ``h2``: HTTP/2 with many streams per connection (h2c or TLS with ALPN).
"""

from __future__ import annotations

from typing import Protocol

from bench.engine.profile import TRANSPORTS, Profile

Outcome = tuple[int | None, int, str | None]
__all__ = ["TRANSPORTS", "Outcome", "Transport", "make_transport"]


class Transport(Protocol):
    async def send(self) -> Outcome: ...

    async def close(self) -> None: ...


def make_transport(profile: Profile, url: str, pool_size: int) -> Transport:
    """Build the transport the profile names (``client.transport``), sized to this worker's share."""
    name = profile.client.transport
    if name == "fast":
        from bench.engine.transports.fast import FastTransport

        return FastTransport(profile, url, pool_size)
    if name == "h2":
        from bench.engine.transports.h2 import H2Transport

        return H2Transport(profile, url, pool_size)
    from bench.engine.transports.aiohttp_client import AiohttpTransport

    return AiohttpTransport(profile, url, pool_size)

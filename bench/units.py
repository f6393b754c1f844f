"""Parse the human units that profiles use: durations ("250ms", "30s", "2m") and rates ("500/s").

Shared by the engine and the mock server, so it imports nothing from either.
A duration always carries its unit: a bare number other than 0 is refused,
because "10" reads as seconds to one person and as milliseconds to another
(bench once took it as seconds in ``load`` and milliseconds in ``sla``). A
bare rate is per second, a bare size is bytes: those have one reading.
"""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ns|us|µs|ms|s|m|h)?\s*$")
_SECONDS_PER_UNIT = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*(ms|s|m|h|sec|second|min|minute))?\s*$")
_RATE_PERIOD_S = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0}


class UnitError(ValueError):
    """A value that is not a duration or rate; the message says what is accepted."""


def parse_duration(value: object) -> float:
    """Return a duration in seconds from "250ms", "30s", "2m", "1h", or 0.

    A bare number other than 0 (int, float or numeric string) is refused with a
    message that shows how to write it with a unit.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a duration such as 250ms, 30s or 2m, got {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, int) and abs(value) > 2**63:
            raise UnitError(f"a duration must be a finite number >= 0, got a {len(str(abs(value)))}-digit number")
        number, unit = float(value), None
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise UnitError(f"expected a duration such as 250ms, 30s or 2m, got {value!r}")
        text, unit = match.groups()
        number = float(text)
    else:
        raise UnitError(f"expected a duration such as 250ms, 30s or 2m, got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise UnitError(f"a duration must be a finite number >= 0, got {value!r}")
    if unit is None and number != 0:
        shown = f"{number:g}"
        raise UnitError(f"a duration needs a unit: write {shown}s or {shown}ms (or 250ms, 2m, 1h), got {value!r}")
    seconds = number * _SECONDS_PER_UNIT[unit] if unit else 0.0
    if not math.isfinite(seconds):
        raise UnitError(f"a duration must be a finite number >= 0, got {value!r}")
    return seconds


def parse_rate(value: object) -> float:
    """Return a rate in events per second from "500/s", "30/m", "2/ms" or a bare number (per second)."""
    if isinstance(value, bool):
        raise UnitError(f"expected a rate such as 500/s or 30/m, got {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, int) and abs(value) > 2**63:
            raise UnitError("a rate must be a finite number > 0, got a number too large for any rate")
        rate = float(value)
    elif isinstance(value, str):
        match = _RATE.match(value)
        if not match:
            raise UnitError(f"expected a rate such as 500/s or 30/m, got {value!r}")
        number, period = match.groups()
        rate = float(number) / (_RATE_PERIOD_S[period] if period else 1.0)
    else:
        raise UnitError(f"expected a rate such as 500/s or 30/m, got {value!r}")
    if not math.isfinite(rate) or rate <= 0:
        raise UnitError(f"a rate must be a finite number > 0, got {value!r}")
    return rate


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_BYTES_PER_UNIT = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(value: object) -> int:
    """Return a size in bytes from "512KB", "10MB", "1GiB" or a bare number of bytes."""
    if isinstance(value, bool):
        raise UnitError(f"expected a size such as 10MB or 512KiB, got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        number, unit = match.groups()
        size = int(float(number) * _BYTES_PER_UNIT[(unit or "b").lower()])
    else:
        raise UnitError(f"expected a size such as 10MB or 512KiB, got {value!r}")
    if size <= 0:
        raise UnitError(f"a size must be greater than 0, got {value!r}")
    return size

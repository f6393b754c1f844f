"""What a session is: ordered steps, the values each captures from its response, and the pause before each.

Frozen data, validated by ``bench.engine.plan.profile`` when the profile loads;
``capture_value`` and ``think_s`` are the pure pieces the worker's session
runner calls per step.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from bench.engine.plan.requests import MISSING, Check, json_path_lookup, render

CAPTURE_SOURCES = ("json_path", "header", "regex")


@dataclass(frozen=True, slots=True)
class Capture:
    """Where a step takes a value from: a JSON path (``a.b.0``), a response header, or a regex's first group."""

    name: str
    source: str  # one of CAPTURE_SOURCES
    expression: str

    def needs_body(self) -> bool:
        return self.source != "header"


@dataclass(frozen=True, slots=True)
class Think:
    """A pause before a step, not counted in any latency: fixed, or drawn (uniform, exponential, normal) in seconds."""

    model: str = "fixed"
    a: float = 0.0  # fixed: the pause; uniform: min; exponential: mean; normal: mean
    b: float = 0.0  # uniform: max; normal: stddev

    def draw(self, rng: random.Random) -> float:
        if self.model == "fixed":
            return self.a
        if self.model == "uniform":
            return rng.uniform(self.a, self.b)
        if self.model == "exponential":
            return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        return max(0.0, rng.gauss(self.a, self.b))


@dataclass(frozen=True, slots=True)
class Step:
    """One request of a session. ``path`` (joined to the target URL) or ``url``; templates may use
    dataset fields and values captured by earlier steps."""

    name: str
    method: str
    url: str | None
    path: str | None
    headers: tuple[tuple[str, str], ...]
    body: Any  # a template: mapping (sent as JSON), string, or None
    check: Check | None
    captures: tuple[Capture, ...]
    think: Think | None

    @property
    def keeps_body(self) -> bool:
        return any(c.needs_body() for c in self.captures) or (self.check is not None and self.check.needs_body)


def capture_value(capture: Capture, body: bytes, headers: Mapping[str, str]) -> str | None:
    """The captured value as text, or None when the response does not have it (the session then fails)."""
    if capture.source == "header":
        for name, value in headers.items():
            if name.lower() == capture.expression.lower():
                return value
        return None
    text = body.decode("utf-8", "replace")
    if capture.source == "regex":
        match = re.search(capture.expression, text)
        if match is None:
            return None
        return match.group(1) if match.groups() else match.group(0)
    try:
        value: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = json_path_lookup(value, capture.expression)
    if value is MISSING or value is None:
        return None
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value).lower() if isinstance(value, bool) else str(value)


def render_step(step: Step, values: Mapping[str, Any]) -> tuple[str | None, tuple[tuple[str, str], ...], Any]:
    """The step's path (or URL), headers and body with ``{{name}}`` filled from dataset fields and captures."""
    where = step.url if step.url is not None else step.path
    filled = render(where, values) if where is not None else None
    headers = tuple((name, str(render(value, values))) for name, value in step.headers)
    body = render(step.body, values) if step.body is not None else None
    return (str(filled) if filled is not None else None), headers, body

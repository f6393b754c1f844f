"""What a response tells us beyond its status: check verdicts and inference metrics.

A ``Receiver`` rides along one send: the transport hands it every body piece
with its arrival time; it keeps the body only as far as checks need (bounded)
and feeds streamed responses to the SSE interpreter. ``facts()`` then reduces
it to what the recorder counts: a failed check, and for inference APIs TTFT,
TPOT, ITL gaps, output tokens and where their count came from.
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass

from bench.engine.plan.requests import MAX_CHECKED_BODY, PreparedRequest, check_response
from bench.engine.workers.sse import OpenAIStreamMetrics, openai_response_metrics


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """Per-request results beyond status and latency; times in ns, None when not applicable."""

    check_failed: str | None = None
    ttft_ns: int | None = None
    tpot_ns: int | None = None
    e2e_ns: int | None = None
    itl_ns: tuple[int, ...] = ()
    output_tokens: int | None = None
    token_source: str | None = None


class Receiver:
    """Collects one response's body pieces: kept for checks (up to 1 MiB), parsed as SSE when streamed."""

    __slots__ = ("parts", "size", "stream", "first_byte_ns")

    def __init__(self, keep_body: bool, stream: bool):
        self.parts: list[bytes] | None = [] if keep_body else None
        self.size = 0
        self.stream = OpenAIStreamMetrics() if stream else None
        self.first_byte_ns: int | None = None

    def chunk(self, data: bytes, t_ns: int) -> None:
        if self.first_byte_ns is None:
            self.first_byte_ns = t_ns
        if self.parts is not None and self.size < MAX_CHECKED_BODY:
            self.parts.append(data)
            self.size += len(data)
        if self.stream is not None:
            self.stream.feed(data, t_ns)

    @property
    def body(self) -> bytes:
        return b"".join(self.parts) if self.parts else b""

    def facts(self, request: PreparedRequest, status: int, sent_ns: int) -> ResponseFacts:
        """Judge the checks and extract the inference metrics of a completed response."""
        failed = check_response(request.check, status, self.body if self.parts is not None else None) if request.check else None
        stream = self.stream
        if stream is not None:
            stream.close()
            tokens, source = stream.output_tokens()
            if failed is None and stream.error:
                failed = f"stream error: {stream.error}"
            return ResponseFacts(
                failed,
                stream.ttft_ns(sent_ns),
                stream.tpot_ns(sent_ns),
                stream.e2e_ns(sent_ns),
                tuple(stream.itl_ns),
                tokens,
                source,
            )
        if request.api is not None and self.parts is not None and status < 400:
            tokens, source = openai_response_metrics(self.body)
            return ResponseFacts(failed, output_tokens=tokens, token_source=source if tokens is not None else None)
        return ResponseFacts(failed)


#: Body pieces a ``TimedReceiver`` keeps per request for ``output.chunks``; later ones are only counted.
MAX_CHUNKS = 10_000


class TimedReceiver(Receiver):
    """A ``Receiver`` that also notes every body piece for ``output.chunks``: arrival time, bytes, content events.

    Used only when that output is asked for, so the plain ``Receiver`` pays
    nothing for it. The notes live in one flat ``array('q')`` (24 bytes a
    piece: arrival ns, bytes, content events so far) and stop at
    ``MAX_CHUNKS`` pieces; ``dropped`` counts the pieces after that and
    ``dropped_bytes`` their bytes (their events are in the stream's count).
    """

    __slots__ = ("notes", "limit", "dropped", "dropped_bytes")

    def __init__(self, keep_body: bool, stream: bool):
        Receiver.__init__(self, keep_body, stream)
        self.notes = array("q")
        self.limit = 3 * MAX_CHUNKS
        self.dropped = 0
        self.dropped_bytes = 0

    def chunk(self, data: bytes, t_ns: int) -> None:
        # Receiver.chunk inlined (a call less per piece); the rest is what a piece costs with the output on.
        if self.first_byte_ns is None:
            self.first_byte_ns = t_ns
        if self.parts is not None and self.size < MAX_CHECKED_BODY:
            self.parts.append(data)
            self.size += len(data)
        stream = self.stream
        if stream is not None:
            stream.feed(data, t_ns)
        notes = self.notes
        if len(notes) < self.limit:
            notes.extend((t_ns, len(data), 0 if stream is None else stream.content_events))
        else:
            self.dropped += 1
            self.dropped_bytes += len(data)

    def pieces(self, origin_ns: int) -> list[list]:
        """``[t_ms, bytes, content events]`` for each noted piece, ``t_ms`` from ``origin_ns`` in whole µs."""
        notes = self.notes
        events = notes[2::3]
        before = events[:-1]
        before.insert(0, 0)
        # Whole µs / 1000: the float nearest a 3-decimal ms value, written with just those decimals (cheaper than round()).
        return [[(t - origin_ns) // 1000 / 1000, n, k - b] for t, n, k, b in zip(notes[0::3], notes[1::3], events, before)]

    @property
    def total_bytes(self) -> int:
        return sum(self.notes[1::3]) + self.dropped_bytes

    @property
    def total_tokens(self) -> int:
        """Content events in the whole body (0 outside an SSE stream)."""
        return 0 if self.stream is None else self.stream.content_events


def timed_receiver_for(request: PreparedRequest) -> TimedReceiver:
    """``receiver_for`` when ``output.chunks`` is written: every response is read through a receiver, streamed or not."""
    return TimedReceiver(request.keep_body or (request.api is not None and not request.stream), request.stream)


#: Tests only (never set by a profile, a flag or the environment): CPU seconds each body piece costs on top,
#: spent busy in the receiver, to stand for a client too slow for its load. Set before the workers fork.
_test_chunk_cost_s = 0.0


class _SlowReceiver(Receiver):
    """A Receiver that burns ``_test_chunk_cost_s`` of CPU per body piece: a client delay the self-check must see."""

    __slots__ = ()

    def chunk(self, data: bytes, t_ns: int) -> None:
        Receiver.chunk(self, data, t_ns)
        until = time.perf_counter() + _test_chunk_cost_s
        while time.perf_counter() < until:
            pass


def receiver_for(request: PreparedRequest) -> Receiver | None:
    """A receiver when the response must be looked at (checks, streaming, token usage); None otherwise."""
    keep = request.keep_body or (request.api is not None and not request.stream)
    if not keep and not request.stream:
        return None
    return (_SlowReceiver if _test_chunk_cost_s else Receiver)(keep, request.stream)

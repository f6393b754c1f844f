"""Incremental server-sent events parser and OpenAI stream metrics.

Fed from a transport's receive path: each ``bytes`` chunk as it arrives, with
the ``time.monotonic_ns()`` of its arrival. Works on bytes, splits lines with
``bytes.split`` (no per-byte Python loop, no regex), decodes nothing for the
metrics path, and keeps bounded memory (``max_event_bytes`` per pending event,
``max_itl`` gaps per request).

Metric definitions (all times integer ns; ``sent`` is the request's send time,
which the caller chooses: actual send, or intended send in an open loop):

A *content event* is an SSE event whose JSON has a choice with a non-empty
``delta.content``, ``delta.reasoning_content``, ``delta.reasoning`` (strings),
a non-empty ``delta.tool_calls`` list or ``delta.function_call`` object, or
(completions API) a non-empty ``text``. Role-only and empty-content chunks,
usage-only chunks (``choices: []``), errors and ``[DONE]`` are not. An event's
time is the arrival time of the chunk that completes it (the chunk holding the
blank line that dispatches it).

| ours | definition | vLLM ``vllm bench serve`` | AIPerf |
|---|---|---|---|
| TTFT | first content event - sent | TTFT (first message with non-empty ``choices``: a role-only chat chunk counts there) | ``time_to_first_token`` |
| ITL | list of gaps between consecutive content events; 0 for events completed by the same chunk | ITL (gaps between messages with non-empty ``choices``) | ``inter_chunk_latency`` (per-request mean of gaps between responses) |
| TPOT | (e2e - TTFT) / (output tokens - 1); None below 2 tokens | TPOT, same formula | ``inter_token_latency`` |
| e2e | last content event - sent | E2EL (last message with non-empty ``choices``) | ``request_latency`` (to the last response) |
| output tokens | ``usage.completion_tokens`` of the last chunk that has it (source ``server``), else the number of content events (source ``events``) | ``usage.completion_tokens``, else the re-tokenized text | ``output_sequence_length`` (client tokenizer; server usage with ``--use-server-token-count``) |

Content events undercount tokens when a server packs several tokens into one
chunk, so prefer ``stream_options: {include_usage: true}`` (source ``server``).
"""

from __future__ import annotations

import orjson

__all__ = ["SSEParser", "OpenAIStreamMetrics", "openai_response_metrics"]

_BOM = b"\xef\xbb\xbf"
_DEFAULT_MAX_EVENT = 16 * 1024 * 1024
_MAX_ERROR_CHARS = 1000


class SSEParser:
    """WHATWG ``text/event-stream`` parser, fed bytes incrementally.

    ``feed`` returns the events completed by the chunk as ``(type, data)``
    strings; ``feed_raw`` the same as bytes (type ``b"message"`` by default),
    undecoded. Lines end with CRLF, LF or CR, also when a CRLF is split across
    chunks. ``last_event_id`` and ``retry_ms`` hold the latest ``id`` and
    ``retry`` fields. An event whose pending bytes exceed ``max_event_bytes``
    is dropped whole (``dropped_events``) and parsing resumes after it.
    """

    __slots__ = (
        "_buf", "_data", "_data_len", "_event", "_skip_lf", "_at_start",
        "_discard", "_skip_line", "max_event_bytes", "bytes_received",
        "last_event_id", "retry_ms", "dropped_events", "incomplete",
    )

    def __init__(self, max_event_bytes: int = _DEFAULT_MAX_EVENT) -> None:
        self.max_event_bytes = max_event_bytes
        self._buf = bytearray()        # the pending, unterminated line
        self._data: list[bytes] = []   # data lines of the pending event
        self._data_len = 0
        self._event: bytes | None = None
        self._skip_lf = False          # previous chunk ended with CR
        self._at_start = True          # BOM not yet ruled out
        self._discard = False          # dropping an oversized event
        self._skip_line = False        # dropping the rest of an oversized line
        self.bytes_received = 0
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self.dropped_events = 0
        self.incomplete = False

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        return [
            (etype.decode("utf-8", "replace"), data.decode("utf-8", "replace"))
            for etype, data in self.feed_raw(chunk)
        ]

    def feed_raw(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if not chunk:
            return out
        if chunk.__class__ is not bytes:
            chunk = bytes(chunk)
        self.bytes_received += len(chunk)
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 10:
                chunk = chunk[1:]
                if not chunk:
                    return out
        buf = self._buf
        if self._at_start:
            if buf:
                chunk = bytes(buf) + chunk
                buf.clear()
            if len(chunk) < 3 and _BOM.startswith(chunk):
                buf += chunk
                return out
            self._at_start = False
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
                if not chunk:
                    return out
        if b"\r" in chunk:
            if chunk[-1] == 13:
                self._skip_lf = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            if not self._skip_line:
                buf += chunk
                if len(buf) + self._data_len > self.max_event_bytes:
                    self._overflow()
            return out

        lines = chunk.split(b"\n")
        tail = lines.pop()
        if self._skip_line:
            self._skip_line = False
            del lines[0]
        elif buf:
            buf += lines[0]
            lines[0] = bytes(buf)
            buf.clear()

        data = self._data
        dlen = self._data_len
        maxb = self.max_event_bytes
        discard = self._discard
        for line in lines:
            if not line:
                if discard:
                    discard = False
                    self.dropped_events += 1
                    data.clear()
                    dlen = 0
                elif data:
                    out.append((
                        self._event or b"message",
                        data[0] if len(data) == 1 else b"\n".join(data),
                    ))
                    data.clear()
                    dlen = 0
                self._event = None
                continue
            if discard:
                continue
            if line[:5] == b"data:":
                value = line[6:] if line[5:6] == b" " else line[5:]
            elif line[0] == 58:          # ":" comment
                continue
            elif line == b"data":
                value = b""
            else:
                self._field(line)
                continue
            data.append(value)
            dlen += len(value) + 1
            if dlen > maxb:
                discard = True
                data.clear()
                dlen = 0
        self._data_len = dlen
        self._discard = discard
        if tail:
            buf += tail
            if len(buf) + dlen > maxb:
                self._overflow()
        return out

    def _field(self, line: bytes) -> None:
        i = line.find(b":")
        if i < 0:
            name, value = line, b""
        else:
            name, value = line[:i], line[i + 1:]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"event":
            self._event = value
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():          # bytes.isdigit: ASCII digits only
                self.retry_ms = int(value)
        # any other field is ignored, as the spec says

    def _overflow(self) -> None:
        self._buf.clear()
        self._data.clear()
        self._data_len = 0
        self._discard = True
        self._skip_line = True

    def close(self) -> list[tuple[str, str]]:
        """End of stream. An unterminated event is discarded (as the spec
        says); ``incomplete`` tells whether one was pending: buffered data
        lines, a partial non-comment line, or an oversized event being
        dropped."""
        buf = self._buf
        self.incomplete = bool(
            self._data or self._discard or (buf and buf[0] != 58)
        )
        buf.clear()
        self._data.clear()
        self._data_len = 0
        self._event = None
        return []


def _error_message(err: object) -> str:
    if err.__class__ is dict:
        msg = err.get("message")  # type: ignore[union-attr]
        text = msg if msg.__class__ is str else orjson.dumps(err).decode()
    elif err.__class__ is str:
        text = err  # type: ignore[assignment]
    else:
        text = orjson.dumps(err).decode()
    return text[:_MAX_ERROR_CHARS]


class OpenAIStreamMetrics:
    """Per-request inference metrics from an OpenAI-compatible SSE stream.

    Call ``feed(chunk, t_ns)`` for every received body chunk and ``close()``
    at the end. Definitions: see the module docstring. Several content events
    completed by one chunk share its arrival time, so their ITL gaps are 0.
    ``itl_ns`` keeps at most ``max_itl`` gaps (``itl_dropped`` counts the
    rest). Nothing here raises on bad input: malformed or non-object JSON is
    counted in ``malformed_events``.
    """

    __slots__ = (
        "_parser", "max_itl", "first_byte_ns", "last_byte_ns",
        "first_token_ns", "last_token_ns", "content_events", "events",
        "malformed_events", "itl_ns", "itl_dropped", "done",
        "usage_completion_tokens", "usage_prompt_tokens", "error",
        "incomplete", "text",
    )

    def __init__(self, max_itl: int = 100_000,
                 max_event_bytes: int = _DEFAULT_MAX_EVENT, keep_text: bool = False) -> None:
        # The reply's content deltas in order, when asked (a conversation sends it back in the next turn's history).
        self.text: list[str] | None = [] if keep_text else None
        self._parser = SSEParser(max_event_bytes)
        self.max_itl = max_itl
        self.first_byte_ns: int | None = None
        self.last_byte_ns: int | None = None
        self.first_token_ns: int | None = None
        self.last_token_ns: int | None = None
        self.content_events = 0
        self.events = 0
        self.malformed_events = 0
        self.itl_ns: list[int] = []
        self.itl_dropped = 0
        self.done = False
        self.usage_completion_tokens: int | None = None
        self.usage_prompt_tokens: int | None = None
        self.error: str | None = None
        self.incomplete = False

    @property
    def bytes_received(self) -> int:
        return self._parser.bytes_received

    def feed(self, chunk: bytes, t_ns: int) -> None:
        if not chunk:
            return
        if self.first_byte_ns is None:
            self.first_byte_ns = t_ns
        self.last_byte_ns = t_ns
        for etype, data in self._parser.feed_raw(chunk):
            self.events += 1
            if self._is_content(etype, data):
                self.content_events += 1
                last = self.last_token_ns
                if last is None:
                    self.first_token_ns = t_ns
                elif len(self.itl_ns) < self.max_itl:
                    self.itl_ns.append(t_ns - last)
                else:
                    self.itl_dropped += 1
                self.last_token_ns = t_ns

    def _is_content(self, etype: bytes, data: bytes) -> bool:
        if len(data) < 16 and data.strip() == b"[DONE]":
            self.done = True
            return False
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            if etype == b"error":
                self.error = data.decode("utf-8", "replace")[:_MAX_ERROR_CHARS]
            else:
                self.malformed_events += 1
            return False
        if obj.__class__ is not dict:
            self.malformed_events += 1
            return False
        usage = obj.get("usage")
        if usage.__class__ is dict:
            n = usage.get("completion_tokens")
            if n.__class__ is int:
                self.usage_completion_tokens = n
            n = usage.get("prompt_tokens")
            if n.__class__ is int:
                self.usage_prompt_tokens = n
        err = obj.get("error")
        if err is not None:
            self.error = _error_message(err)
        elif obj.get("object") == "error" or etype == b"error":
            self.error = _error_message(obj)
        choices = obj.get("choices")
        if not choices or choices.__class__ is not list:
            return False
        for ch in choices:
            if ch.__class__ is not dict:
                continue
            delta = ch.get("delta")
            if delta.__class__ is dict and delta:
                v = delta.get("content")
                if v.__class__ is str and v:
                    if self.text is not None:
                        self.text.append(v)
                    return True
                v = delta.get("reasoning_content")
                if v.__class__ is str and v:
                    return True
                v = delta.get("reasoning")
                if v.__class__ is str and v:
                    return True
                v = delta.get("tool_calls")
                if v.__class__ is list and v:
                    return True
                v = delta.get("function_call")
                if v.__class__ is dict and v:
                    return True
            v = ch.get("text")
            if v.__class__ is str and v:
                return True
        return False

    def close(self) -> None:
        """End of the body: ``incomplete`` says whether an unterminated event
        was cut off."""
        self._parser.close()
        self.incomplete = self._parser.incomplete

    def output_tokens(self) -> tuple[int, str]:
        if self.usage_completion_tokens is not None:
            return self.usage_completion_tokens, "server"
        return self.content_events, "events"

    def ttft_ns(self, sent_ns: int) -> int | None:
        t = self.first_token_ns
        return None if t is None else t - sent_ns

    def e2e_ns(self, sent_ns: int) -> int | None:
        t = self.last_token_ns
        return None if t is None else t - sent_ns

    def tpot_ns(self, sent_ns: int) -> int | None:
        """(e2e - TTFT) / (output tokens - 1), rounded to the nearest ns
        (halves up); None with fewer than 2 output tokens or no content."""
        n = self.output_tokens()[0]
        if n < 2 or self.first_token_ns is None:
            return None
        span = self.last_token_ns - self.first_token_ns  # type: ignore[operator]
        k = n - 1
        return (2 * span + k) // (2 * k)


def openai_response_metrics(body: bytes) -> tuple[int | None, str]:
    """Output tokens of a non-streamed OpenAI response: ``(n, "server")``
    from ``usage.completion_tokens``, else ``(None, "none")`` (also for a
    body that is not JSON). Tokens are not counted from the text: that would
    need the model's tokenizer."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, "none"
    if obj.__class__ is dict:
        usage = obj.get("usage")
        if usage.__class__ is dict:
            n = usage.get("completion_tokens")
            if n.__class__ is int:
                return n, "server"
    return None, "none"

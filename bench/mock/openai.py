"""The mock's OpenAI-compatible endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions``.

With the ``openai:`` section set, ``bench.mock.server`` hands requests for these two
paths to ``OpenAIConnection`` (a ``bench.mock.connection.Connection`` that also reads the URL and body);
every other path is served exactly as before. A request is answered like an
inference server would: it waits for a generation slot (FIFO queue, 429 when the
queue is full), its first token is ready ``ttft`` after it got the slot, each further
token ``inter_token`` after the previous one (both times ``slowdown_factor`` of the
busy slots), and with ``stream: true`` each token's server-sent event is written
when the token is ready; otherwise one JSON body goes out at the end.

Every delay is a ``Shared.call_later`` timer (never blocking, never early), each one
counted from when the previous token was actually written, so every measured gap is
at least the configured one. ``OpenAIBehaviour`` holds the truth tests compare
against: the TTFT and inter-token distributions (exact quantiles), the slowdown
factor, counters and a bounded log of what happened to each request.

With ``prefix_cache`` the prefill also costs ``per_token`` for every prompt token
a vLLM-like ``PrefixCache`` does not hold; with ``check_history`` a chat request
must carry, as assistant messages, only texts of completions produced here (else
400). ``GET /v1/mock/stats`` reads back the history and prompt/cached token counts.

Draws are seeded: request i (in arrival order) gets the same output length, TTFT,
inter-token delays and injected faults for a seed, whatever the timing. HTTP/1.1 only:
over HTTP/2 these paths get the mock's plain JSON answer.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from time import monotonic as _monotonic
from typing import Any

import orjson

from bench.mock.behaviour import FixedLatency, LatencyModel, latency_model
from bench.mock.config import OpenAIConfig, PrefixCacheConfig
from bench.mock.connection import METRICS_PATH, Connection, Shared, reason

__all__ = [
    "MAX_BODY_BYTES",
    "HISTORY_KEPT",
    "OPENAI_PATHS",
    "STATS_PATH",
    "SPLIT_DELAY_S",
    "TOKEN_TEXT",
    "OpenAIBehaviour",
    "OpenAIConnection",
    "ParsedRequest",
    "Plan",
    "PrefixCache",
    "RequestError",
    "RequestRecord",
    "parse_request",
]

#: Request paths served by the OpenAI behaviour, and the API each one is.
OPENAI_PATHS: dict[bytes, str] = {b"/v1/chat/completions": "chat", b"/v1/completions": "completion"}
#: Read-back counters of the OpenAI side (``GET``), answered at once.
STATS_PATH = b"/v1/mock/stats"
#: The text of every generated token: one word, so counting words counts tokens.
TOKEN_TEXT = "tok "
#: ``check_history``: completions remembered (their hashes), the latest first kept.
HISTORY_KEPT = 100_000
#: Larger request bodies get 413.
MAX_BODY_BYTES = 1 << 20
#: ``split_events``: time between the two writes of one event.
SPLIT_DELAY_S = 0.002
#: ``OpenAIBehaviour.records`` keeps this many of the latest requests.
RECORDS_KEPT = 4096

_COMMENT = b": keep-alive\n\n"
_TERMINATOR = b"0\r\n\r\n"


# --- requests ------------------------------------------------------------------------


class RequestError(Exception):
    """A request the server refuses; becomes an OpenAI-style error response with ``status``."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What the mock uses of a request body. ``max_tokens`` None means no cap.

    ``prompt_words`` (only when asked for: the prefix cache's tokens) is the
    prompt as words, each word of a chat message tagged with its role;
    ``assistant`` (only when asked for: the history check) lists each assistant
    message as (its index in ``messages``, its text, None when it has none).
    """

    kind: str  # "chat" or "completion"
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    prompt_tokens: int
    ignore_eos: bool = False
    prompt_words: tuple[str, ...] | None = None
    assistant: tuple[tuple[int, str | None], ...] = ()


def _words(text: object) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _message_text(message: object, index: int) -> str | None:
    """A message's text (content parts joined), or None when it has no text content."""
    if not isinstance(message, dict):
        raise RequestError(400, f"messages[{index}] must be an object", f"messages[{index}]")
    content = message.get("content")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}, ...]
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else None


def _message_words(message: object, index: int) -> int:
    if not isinstance(message, dict):
        raise RequestError(400, f"messages[{index}] must be an object", f"messages[{index}]")
    content = message.get("content")
    if isinstance(content, list):
        return sum(_words(part.get("text")) for part in content if isinstance(part, dict))
    return _words(content)


def role_words(role: object, text: str) -> list[str]:
    """The prefix cache's tokens of one chat message: its words, each tagged with the role."""
    tag = f"{role}\x1f"
    return [tag + word for word in text.split()]


def _prompt_words(prompt: object) -> tuple[str, ...]:
    if isinstance(prompt, str):
        return tuple(prompt.split())
    words: list[str] = []
    for part in prompt:  # type: ignore[union-attr]  # validated by _prompt_tokens
        if isinstance(part, str):
            words.extend(part.split())
        elif isinstance(part, list):
            words.extend(map(str, part))
        else:
            words.append(str(part))
    return tuple(words)


def _prompt_tokens(prompt: object) -> int:
    if isinstance(prompt, str):
        return _words(prompt)
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return sum(_words(p) for p in prompt)
        if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return len(prompt)  # token ids
        if all(isinstance(p, list) for p in prompt):
            return sum(len(p) for p in prompt)
    raise RequestError(400, "'prompt' must be a string, a list of strings or a list of token ids", "prompt")


def parse_request(kind: str, body: bytes, *, words: bool = False, history: bool = False) -> ParsedRequest:
    """Read a chat (``messages``) or completion (``prompt``) request body; raise RequestError if unusable.

    ``prompt_tokens`` counts whitespace-separated words of the prompt or of every
    message's text. ``max_completion_tokens`` wins over ``max_tokens`` (chat).
    ``ignore_eos: true`` (vLLM's extension) makes the output exactly ``max_tokens`` long.
    ``words`` fills ``prompt_words``, ``history`` fills ``assistant``.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object")
    prompt_words: tuple[str, ...] | None = None
    assistant: list[tuple[int, str | None]] = []
    if kind == "chat":
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "'messages' must be a non-empty list", "messages")
        prompt_tokens = sum(_message_words(m, i) for i, m in enumerate(messages))
        if words or history:
            tagged: list[str] = []
            for index, message in enumerate(messages):
                text = _message_text(message, index)
                role = message.get("role")
                if words and text:
                    tagged.extend(role_words(role, text))
                if history and role == "assistant":
                    assistant.append((index, text))
            prompt_words = tuple(tagged) if words else None
        limit_key = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    else:
        if "prompt" not in data:
            raise RequestError(400, "'prompt' is required", "prompt")
        prompt_tokens = _prompt_tokens(data["prompt"])
        if words:
            prompt_words = _prompt_words(data["prompt"])
        limit_key = "max_tokens"
    max_tokens = data.get(limit_key)
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise RequestError(400, f"'{limit_key}' must be an integer >= 1, got {max_tokens!r}", limit_key)
    stream = data.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise RequestError(400, f"'stream' must be a boolean, got {stream!r}", "stream")
    options = data.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    model = data.get("model")
    return ParsedRequest(
        kind=kind,
        model=model if isinstance(model, str) and model else "mock-model",
        stream=bool(stream),
        include_usage=include_usage,
        max_tokens=max_tokens,
        prompt_tokens=prompt_tokens,
        ignore_eos=data.get("ignore_eos") is True,
        prompt_words=prompt_words,
        assistant=tuple(assistant),
    )


# --- decisions and capacity ----------------------------------------------------------


class PrefixCache:
    """A vLLM-like prefix cache of token blocks, in the server's memory: which prompt tokens need no prefill.

    A sequence's block k (tokens ``k*block .. (k+1)*block - 1``; a last partial
    block is never cached) is named by the hash of its tokens and of block k-1's
    name, so a name stands for the whole prefix up to the end of that block. A
    lookup counts the leading blocks whose names are held; at least the last
    token is always computed (a prompt held in full gives back its last block).
    Blocks are evicted least recently used first beyond ``capacity`` tokens;
    a sequence's blocks are touched last to first, so a prefix outlives its
    continuations. Names use Python's ``hash``: per process, like the cache.
    """

    __slots__ = ("block", "max_blocks", "_lru")

    def __init__(self, block: int, capacity: int) -> None:
        self.block = block
        self.max_blocks = capacity // block
        self._lru: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        """Blocks held."""
        return len(self._lru)

    def names(self, tokens: tuple[str, ...] | list[str]) -> list[int]:
        """The names of the sequence's whole blocks, first to last."""
        block, name, out = self.block, 0, []
        for start in range(0, len(tokens) - block + 1, block):
            name = hash((name, *tokens[start : start + block]))
            out.append(name)
        return out

    def lookup(self, tokens: tuple[str, ...] | list[str]) -> tuple[int, list[int]]:
        """(tokens of ``tokens`` already cached, the names of its blocks); touches the blocks that hit."""
        names = self.names(tokens)
        lru = self._lru
        hits = 0
        for name in names:
            if name not in lru:
                break
            hits += 1
        for name in reversed(names[:hits]):
            lru.move_to_end(name)
        cached = hits * self.block
        if cached and cached >= len(tokens):
            cached -= self.block
        return cached, names

    def insert(self, names: list[int]) -> None:
        """Hold these blocks (a sequence's names, first to last), evicting the least recently used beyond capacity."""
        lru = self._lru
        for name in reversed(names):
            lru[name] = None
            lru.move_to_end(name)
        while len(lru) > self.max_blocks:
            lru.popitem(last=False)



@dataclass(slots=True)
class Plan:
    """The seeded decisions for one request, made when it arrives.

    ``tokens`` is the output length; ``disconnect_after`` (tokens written before the
    server closes the connection) and ``stall_after`` (tokens written before the pause)
    are None when not injected. ``rng`` draws this request's TTFT and inter-token delays.
    """

    index: int
    tokens: int
    finish_reason: str
    error_status: int | None
    disconnect_after: int | None
    stall_after: int | None
    rng: random.Random


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request; times are ``time.monotonic()`` seconds in the server process.

    ``outcome``: ``ok``, ``rejected`` (429, queue full), ``error`` (injected status),
    ``disconnect`` (injected), ``cancelled`` (the client went away), ``invalid`` (400-class).
    """

    index: int
    kind: str
    stream: bool
    outcome: str
    status: int
    tokens: int
    tokens_sent: int
    prompt_tokens: int
    arrived: float
    started: float | None = None  # got a slot
    first_token: float | None = None
    ended: float | None = None

    @property
    def queue_wait(self) -> float | None:
        return None if self.started is None else self.started - self.arrived

    @property
    def ttft(self) -> float | None:
        """From arrival to the first token's write (queue wait included)."""
        return None if self.first_token is None else self.first_token - self.arrived


class OpenAIBehaviour:
    """Per-server state of the OpenAI endpoints: seeded decisions, slots and queue, and the truth for tests.

    ``ttft`` and ``inter_token`` are the configured distributions (``quantile(q)`` is
    exact); the delays actually used are those times ``slowdown_factor()`` at the
    moment they are scheduled, and TTFT as a client sees it adds the queue wait.
    ``busy`` counts requests holding a slot, ``waiting`` those queued; ``counts``
    tallies outcomes and ``records`` keeps the latest ``RECORDS_KEPT`` requests.

    ``prompt_tokens`` and ``cached_tokens`` sum, over the requests that got a
    slot, their prompt tokens and how many of them the prefix cache held (0
    without one); ``cache`` is the ``PrefixCache`` (None unless enabled).
    """

    def __init__(self, config: OpenAIConfig, seed: int = 1) -> None:
        self.config = config
        self.seed = seed
        prefix: PrefixCacheConfig | None = config.prefix_cache
        self.per_token = prefix.per_token if prefix is not None else 0.0
        self.cache = PrefixCache(prefix.block, prefix.capacity) if prefix is not None and prefix.enabled else None
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self._history: dict[bytes, None] = {}
        self.ttft: LatencyModel = latency_model(config.ttft)
        self.inter_token: LatencyModel = latency_model(config.inter_token)
        self._fixed_itl = self.inter_token.delay if isinstance(self.inter_token, FixedLatency) else None
        self._request_rng = random.Random(f"bench.mock.openai:{seed}")
        self._fault_rng = random.Random(f"bench.mock.openai.faults:{seed}")
        self.requests = 0
        self.busy = 0
        self.waiting: deque[_Exchange] = deque()
        self.counts: Counter[str] = Counter()
        self.records: deque[RequestRecord] = deque(maxlen=RECORDS_KEPT)

    # the truth ----------------------------------------------------------------------

    def ttft_quantile(self, q: float) -> float:
        """Exact quantile of the configured TTFT (seconds; no queueing, no slowdown)."""
        return self.ttft.quantile(q)

    def itl_quantile(self, q: float) -> float:
        """Exact quantile of the configured inter-token delay (seconds; no slowdown)."""
        return self.inter_token.quantile(q)

    def output_tokens(self, max_tokens: int | None = None, ignore_eos: bool = False) -> tuple[int, int]:
        """The range (inclusive) of output lengths a request with this ``max_tokens`` gets."""
        low, high = self.config.output_tokens_min, self.config.output_tokens_max
        if max_tokens is None:
            return low, high
        if ignore_eos:
            return max_tokens, max_tokens
        return min(low, max_tokens), min(high, max_tokens)

    def slowdown_factor(self, busy: int | None = None) -> float:
        """Delay multiplier with ``busy`` slots taken (default: now): 1 at one, ``slowdown`` at all, linear between."""
        slots, slowdown = self.config.slots, self.config.slowdown
        busy = self.busy if busy is None else busy
        if slots is None or slowdown == 1.0 or busy < 1:
            return 1.0
        if slots == 1:
            return slowdown
        return 1.0 + (slowdown - 1.0) * (min(busy, slots) - 1) / (slots - 1)

    # decisions ----------------------------------------------------------------------

    def plan(self, request: ParsedRequest) -> Plan:
        """Draw this request's output length and injected faults (in arrival order, so seeded)."""
        config = self.config
        index = self.requests
        self.requests = index + 1
        rng = random.Random(self._request_rng.getrandbits(64))
        drawn = rng.randint(config.output_tokens_min, config.output_tokens_max)
        cap = request.max_tokens
        if cap is not None and (request.ignore_eos or drawn >= cap):
            tokens, finish = cap, "length"
        else:
            tokens, finish = drawn, "stop"
        faults = self._fault_rng
        error_status = None
        if config.errors.rate and faults.random() < config.errors.rate:
            error_status = config.errors.status
        disconnect_after = None
        if config.disconnect_rate and faults.random() < config.disconnect_rate:
            disconnect_after = faults.randrange(1, tokens) if tokens > 1 else 0
        stall_after = None
        stall = config.stall
        if stall is not None and (stall.rate >= 1.0 or faults.random() < stall.rate):
            if stall.after_tokens < tokens:
                stall_after = stall.after_tokens
        return Plan(index, tokens, finish, error_status, disconnect_after, stall_after, rng)

    def sample_ttft(self, plan: Plan) -> float:
        return self.ttft.sample(plan.rng)

    # prefill, text, history ---------------------------------------------------------

    def prefill(self, request: ParsedRequest) -> tuple[float, list[int] | None]:
        """(The per-token prefill time of a request that got its slot, the names of its prompt's blocks).

        ``per_token`` x the prompt tokens the prefix cache does not hold (all of
        them without a cache); the prompt's blocks are cached from now on.
        """
        cache = self.cache
        if cache is None:
            self.prompt_tokens += request.prompt_tokens
            return self.per_token * request.prompt_tokens, None
        words = request.prompt_words or ()
        cached, names = cache.lookup(words)
        cache.insert(names)
        self.prompt_tokens += len(words)
        self.cached_tokens += cached
        return self.per_token * (len(words) - cached), names

    def cache_completion(self, request: ParsedRequest, text: str) -> None:
        """Cache the blocks of a finished request's prompt followed by its output (as the next turn sends them)."""
        if self.cache is None:
            return
        output = role_words("assistant", text) if request.kind == "chat" else text.split()
        self.cache.insert(self.cache.names((*(request.prompt_words or ()), *output)))

    def text(self, plan: Plan, before: int, count: int) -> str:
        """The text of tokens ``before+1 .. before+count``: ``TOKEN_TEXT`` each.

        With ``check_history`` the first token is ``m<seed>-<request index> ``
        instead (still one word), so no two completions of a server have the same text.
        """
        if before == 0 and count and self.config.check_history:
            return f"m{self.seed}-{plan.index} " + TOKEN_TEXT * (count - 1)
        return TOKEN_TEXT * count

    def remember(self, text: str) -> None:
        """A completion was produced in full: its text may come back as an assistant message."""
        history = self._history
        history[hashlib.blake2b(text.encode(), digest_size=16).digest()] = None
        if len(history) > HISTORY_KEPT:
            del history[next(iter(history))]

    def check_history(self, request: ParsedRequest) -> None:
        """Raise RequestError (400) unless every assistant message is the text of a completion produced here."""
        if not request.assistant:
            return
        history = self._history
        for ordinal, (index, text) in enumerate(request.assistant, 1):
            if text is None or hashlib.blake2b(text.encode(), digest_size=16).digest() not in history:
                self.counts["history_mismatch"] += 1
                raise RequestError(
                    400, f"assistant message {ordinal} was not produced by this server", f"messages[{index}]"
                )
        self.counts["history_ok"] += 1

    def stats(self) -> dict[str, int]:
        """What ``GET /v1/mock/stats`` answers."""
        counts = self.counts
        return {
            "requests": self.requests,
            "history_ok": counts["history_ok"],
            "history_mismatch": counts["history_mismatch"],
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_blocks": len(self.cache) if self.cache is not None else 0,
        }

    def prometheus_text(self) -> str:
        """What ``GET /metrics`` answers: the mock's state in Prometheus text, named as vLLM names its own (``mock:`` for ``vllm:``)."""
        cache = self.cache
        usage = len(cache) / cache.max_blocks if cache is not None and cache.max_blocks else 0.0
        lines = []
        for name, kind, help_text, value in (
            ("mock:num_requests_running", "gauge", "Requests holding a generation slot", self.busy),
            ("mock:num_requests_waiting", "gauge", "Requests queued for a slot", len(self.waiting)),
            ("mock:gpu_cache_usage_perc", "gauge", "Share of the simulated prefix cache in use (0-1)", usage),
            ("mock:requests_total", "counter", "Requests answered or refused since the start", self.requests),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(lines) + "\n"

    def sample_inter_token(self, plan: Plan, count: int) -> float:
        """The sum of ``count`` inter-token delays (seconds, before slowdown)."""
        if self._fixed_itl is not None:
            return self._fixed_itl * count
        sample, rng = self.inter_token.sample, plan.rng
        return sum(sample(rng) for _ in range(count))

    # capacity -----------------------------------------------------------------------

    def full(self) -> bool:
        """Would a request arriving now be refused (every slot busy and the queue full)?"""
        slots, queue = self.config.slots, self.config.queue
        return slots is not None and self.busy >= slots and queue is not None and len(self.waiting) >= queue

    def acquire(self, exchange: "_Exchange") -> bool:
        """Take a slot (True) or join the queue (False); call ``full()`` first."""
        slots = self.config.slots
        if slots is None or self.busy < slots:
            self.busy += 1
            return True
        self.waiting.append(exchange)
        return False

    def release(self) -> None:
        """A slot is free: give it to the longest-waiting request."""
        self.busy -= 1
        if self.waiting:
            exchange = self.waiting.popleft()
            self.busy += 1
            exchange.start()

    def withdraw(self, exchange: "_Exchange") -> None:
        try:
            self.waiting.remove(exchange)
        except ValueError:
            pass


# --- responses -------------------------------------------------------------------------


def _error_body(status: int, message: str, param: str | None = None) -> bytes:
    if status == 429:
        kind, code = "rate_limit_exceeded", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", None
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def _json_response(status: int, body: bytes, keep_alive: bool, content_type: bytes = b"application/json") -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason(status).encode("latin-1")),
            b"Server: bench-mock\r\nContent-Type: %s\r\n" % content_type,
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n",
            body,
        )
    )


def _stream_head(keep_alive: bool, chunked: bool) -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 200 OK\r\nServer: bench-mock\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n",
            b"Transfer-Encoding: chunked\r\n" if chunked else b"",
            b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n",
        )
    )


class _Exchange:
    """One admitted request: waits for a slot, then writes its tokens as they are generated.

    The token schedule is a list of marks (tokens written so far after each write):
    the first token alone at TTFT, then groups of ``tokens_per_chunk`` (streaming) or
    the rest at once (non-streaming), with extra marks where a stall or an injected
    disconnect happens. Each write is scheduled when the previous one is done.
    """

    __slots__ = (
        "_cache",
        "_chunked",
        "_conn",
        "_created",
        "_data_prefix",
        "_held",
        "_held_last",
        "_id",
        "_oa",
        "_quirks",
        "_shared",
        "_timer",
        "keep_alive",
        "plan",
        "record",
        "request",
        "sent",
        "seq",
        "state",
        "target",
    )

    def __init__(
        self, conn: "OpenAIConnection", seq: int, request: ParsedRequest, plan: Plan, keep_alive: bool, chunked: bool
    ) -> None:
        shared = conn._shared
        self._conn = conn
        self._shared = shared
        self._oa: OpenAIBehaviour = shared.openai
        self._quirks = self._oa.config.quirks
        self._chunked = chunked
        self._data_prefix = b"data:" if self._quirks.no_space_after_data else b"data: "
        self._cache: dict[int, bytes] = {}
        self._held: list[bytes] | None = None
        self._held_last = False
        self._timer: Any = None
        self._id = f"{'chatcmpl' if request.kind == 'chat' else 'cmpl'}-mock{plan.index}"
        self._created = int(time.time())
        self.seq = seq
        self.request = request
        self.plan = plan
        self.keep_alive = keep_alive
        self.sent = 0
        self.target = 1
        self.state = "new"  # -> queued -> running -> done
        self.record = RequestRecord(
            plan.index, request.kind, request.stream, "ok", 200, plan.tokens, 0, request.prompt_tokens, _monotonic()
        )

    # lifecycle ----------------------------------------------------------------------

    def begin(self) -> None:
        """Send the stream's headers (at once, as servers do) and take a slot or queue for one."""
        if self.request.stream:
            head = _stream_head(self.keep_alive, self._chunked)
            if self._quirks.comments:
                head += self._frame(_COMMENT)
            self._conn._oa_write(self.seq, head)
        if self._oa.acquire(self):
            self.start()
        else:
            self.state = "queued"

    def start(self) -> None:
        """Got a slot: the first token is ready after TTFT (times the slowdown, plus a stall before it)."""
        self.state = "running"
        oa, plan = self._oa, self.plan
        self.record.started = _monotonic()
        delay = oa.sample_ttft(plan)
        prefill, _ = oa.prefill(self.request)
        delay = (delay + prefill) * oa.slowdown_factor()
        if plan.stall_after == 0:
            delay += oa.config.stall.duration
        self.target = self._next_mark(0)
        self._timer = self._shared.call_later(delay, self._emit)

    def cancel(self) -> None:
        """The client's connection is gone: give back the slot (or the queue place)."""
        self._end("cancelled")

    def _end(self, outcome: str) -> None:
        if self.state == "done":
            return
        state, self.state = self.state, "done"
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        record = self.record
        record.outcome = outcome
        record.tokens_sent = self.sent
        record.ended = _monotonic()
        oa = self._oa
        oa.counts[outcome] += 1
        oa.records.append(record)
        if outcome == "ok" and (oa.cache is not None or oa.config.check_history):
            text = oa.text(self.plan, 0, self.plan.tokens)
            if oa.config.check_history:
                oa.remember(text)
            oa.cache_completion(self.request, text)
        self._conn._oa_exchanges.pop(self.seq, None)
        if state == "running":
            oa.release()
        elif state == "queued":
            oa.withdraw(self)

    # generation ---------------------------------------------------------------------

    def _next_mark(self, sent: int) -> int:
        plan = self.plan
        tokens = plan.tokens
        if sent == 0:
            mark = 1
        elif self.request.stream:
            mark = min(tokens, sent + self._quirks.tokens_per_chunk)
        else:
            mark = tokens
        for extra in (plan.stall_after, plan.disconnect_after):
            if extra is not None and sent < extra < mark:
                mark = extra
        return mark

    def _emit(self) -> None:
        self._timer = None
        if self.state != "running":
            return
        plan, oa = self.plan, self._oa
        sent = self.sent
        if sent == 0:
            if plan.disconnect_after == 0:
                self._disconnect()
                return
            self.record.first_token = _monotonic()
        target = self.target
        self.sent = target
        last = target == plan.tokens
        if self.request.stream:
            self._out(self._events(sent, target - sent, last), last)
        elif last:
            self._conn._deliver(self.seq, _json_response(200, self._full_body(), self.keep_alive))
        if last:
            self._end("ok")
            return
        if target == plan.disconnect_after:
            self._disconnect()
            return
        self.target = nxt = self._next_mark(target)
        delay = oa.sample_inter_token(plan, nxt - target) * oa.slowdown_factor()
        if target == plan.stall_after:
            delay += oa.config.stall.duration
        self._timer = self._shared.call_later(delay, self._emit)

    def _disconnect(self) -> None:
        conn = self._conn
        self._end("disconnect")
        conn._oa_disconnect()

    # bytes --------------------------------------------------------------------------

    def _event(self, obj: dict[str, Any]) -> bytes:
        return self._data_prefix + orjson.dumps(obj) + b"\n\n"

    def _chunk_object(self, choice: dict[str, Any]) -> dict[str, Any]:
        chat = self.request.kind == "chat"
        obj = {
            "id": self._id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": self._created,
            "model": self.request.model,
            "choices": [choice],
        }
        if self.request.include_usage:
            obj["usage"] = None  # as OpenAI does on every chunk but the usage one
        return obj

    def _content(self, text: str, first: bool) -> bytes:
        if self.request.kind == "chat":
            delta: dict[str, str] = {"content": text}
            if first and not self._quirks.role_first_chunk:
                delta = {"role": "assistant", "content": text}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": None}
        return self._event(self._chunk_object(choice))

    def _usage(self) -> dict[str, int]:
        prompt, tokens = self.request.prompt_tokens, self.plan.tokens
        return {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}

    def _events(self, before: int, count: int, last: bool) -> bytes:
        """The SSE events written when tokens ``before+1 .. before+count`` are ready."""
        chat = self.request.kind == "chat"
        parts = [_COMMENT] if self._quirks.comments else []
        first = before == 0
        if first and chat and self._quirks.role_first_chunk:
            role = {"index": 0, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": None}
            parts.append(self._event(self._chunk_object(role)))
        if first or last:
            parts.append(self._content(self._oa.text(self.plan, before, count), first))
        else:
            event = self._cache.get(count)
            if event is None:
                event = self._cache[count] = self._content(TOKEN_TEXT * count, False)
            parts.append(event)
        if last:
            finish = self.plan.finish_reason
            if chat:
                choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": finish}
            parts.append(self._event(self._chunk_object(choice)))
            if self.request.include_usage and self._quirks.usage_chunk:
                usage = {
                    "id": self._id,
                    "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": self._created,
                    "model": self.request.model,
                    "choices": [],
                    "usage": self._usage(),
                }
                parts.append(self._event(usage))
            parts.append(self._data_prefix + b"[DONE]\n\n")
        return b"".join(parts)

    def _full_body(self) -> bytes:
        text = self._oa.text(self.plan, 0, self.plan.tokens)
        if self.request.kind == "chat":
            obj = "chat.completion"
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": self.plan.finish_reason,
            }
        else:
            obj = "text_completion"
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": self.plan.finish_reason}
        return orjson.dumps(
            {
                "id": self._id,
                "object": obj,
                "created": self._created,
                "model": self.request.model,
                "choices": [choice],
                "usage": self._usage(),
            }
        )

    def _frame(self, payload: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(payload), payload) if self._chunked else payload

    def _out(self, payload: bytes, last: bool) -> None:
        """Write SSE bytes as one HTTP chunk (``last``: then end the response), or split in two writes."""
        framed = self._frame(payload)
        if last and self._chunked:
            framed += _TERMINATOR
        held = self._held
        if held is not None:  # the second half of a split write is still to go: queue behind it
            held.append(framed)
            self._held_last = last
            return
        conn = self._conn
        if not self._quirks.split_events:
            if last:
                conn._deliver(self.seq, framed)
            else:
                conn._oa_write(self.seq, framed)
            return
        start = payload.find(b"{")
        end = payload.find(b"\n\n", start) if start >= 0 else -1
        cut = (start + end) // 2 if 0 <= start < end else len(payload) // 2
        second = self._frame(payload[cut:])
        if last and self._chunked:
            second += _TERMINATOR
        conn._oa_write(self.seq, self._frame(payload[:cut]))
        self._held = [second]
        self._held_last = last
        self._shared.call_later(SPLIT_DELAY_S, self._flush_held)

    def _flush_held(self) -> None:
        held, self._held = self._held, None
        if not held:
            return
        data = b"".join(held)
        if self._held_last:
            self._conn._deliver(self.seq, data)
        elif self._conn._oa_exchanges.get(self.seq) is self:  # not disconnected meanwhile
            self._conn._oa_write(self.seq, data)


# --- the connection --------------------------------------------------------------------


class OpenAIConnection(Connection):
    """A mock connection that also serves ``OPENAI_PATHS`` (any other path: exactly as ``Connection``).

    Streaming responses are written in several parts; a part for a request that is
    not yet at the head of the pipeline waits in ``_oa_parts`` until every earlier
    response has gone, so pipelined responses still leave in request order.
    """

    __slots__ = ("_oa_body", "_oa_body_size", "_oa_exchanges", "_oa_kind", "_oa_parts", "_oa_url")

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)
        self._oa_url = b""
        self._oa_kind: str | None = None
        self._oa_body: list[bytes] = []
        self._oa_body_size = 0
        self._oa_parts: dict[int, list[bytes]] = {}
        self._oa_exchanges: dict[int, _Exchange] = {}

    # httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._oa_url = b""
        self._oa_kind = None
        self._oa_body = []
        self._oa_body_size = 0

    def on_url(self, url: bytes) -> None:
        self._oa_url += url

    def on_headers_complete(self) -> None:
        self._oa_kind = self._route(self._oa_url.split(b"?", 1)[0])

    def _route(self, path: bytes) -> str | None:
        """What serves ``path``: an ``OPENAI_PATHS`` kind, ``stats`` or None (``Connection``'s plain answer)."""
        return OPENAI_PATHS.get(path) or ("stats" if path == STATS_PATH else "metrics" if path == METRICS_PATH else None)

    def on_body(self, body: bytes) -> None:
        if self._oa_kind is not None:
            size = self._oa_body_size + len(body)
            if size <= MAX_BODY_BYTES:
                self._oa_body.append(body)
            self._oa_body_size = size

    def on_message_complete(self) -> None:
        kind = self._oa_kind
        if kind is None:
            super().on_message_complete()
            return
        if self._close_seq is not None:
            return
        parser = self._parser
        chunked = parser.get_http_version() != "1.0"
        keep_alive = chunked and parser.should_keep_alive()
        seq = self._number(keep_alive)
        oa: OpenAIBehaviour = self._shared.openai
        if kind == "stats":
            status = 200 if parser.get_method() == b"GET" else 405
            body = orjson.dumps(oa.stats()) if status == 200 else _error_body(405, "/v1/mock/stats takes GET")
            self._oa_body = []
            self._deliver(seq, _json_response(status, body, keep_alive))
            return
        if kind == "metrics":
            self._oa_body = []
            if parser.get_method() != b"GET":
                self._deliver(seq, _json_response(405, _error_body(405, "/metrics takes GET"), keep_alive))
                return
            self._deliver(seq, _json_response(200, oa.prometheus_text().encode(), keep_alive, b"text/plain; version=0.0.4"))
            return
        try:
            if parser.get_method() != b"POST":
                raise RequestError(405, f"{self._oa_url.decode('latin-1')} takes POST")
            if self._oa_body_size > MAX_BODY_BYTES:
                raise RequestError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
            history = oa.config.check_history
            request = parse_request(kind, b"".join(self._oa_body), words=oa.cache is not None, history=history)
            if history:
                oa.check_history(request)
        except RequestError as exc:
            oa.counts["invalid"] += 1
            self._deliver(seq, _json_response(exc.status, _error_body(exc.status, exc.message, exc.param), keep_alive))
            return
        finally:
            self._oa_body = []
        plan = oa.plan(request)
        if oa.full():
            self._refuse(oa, seq, request, plan, 429, "the mock's queue is full; retry later", keep_alive, "rejected")
        elif plan.error_status is not None:
            self._refuse(oa, seq, request, plan, plan.error_status, "injected error", keep_alive, "error")
        else:
            exchange = _Exchange(self, seq, request, plan, keep_alive, chunked)
            self._oa_exchanges[seq] = exchange
            exchange.begin()

    # internals ----------------------------------------------------------------------

    def _number(self, keep_alive: bool) -> int:
        """The sequence number of the request just parsed (its answer's place on the wire); the last if not ``keep_alive``."""
        seq = self._next_seq
        self._next_seq = seq + 1
        if not keep_alive:
            self._close_after(seq)
        return seq

    def _refuse(
        self,
        oa: OpenAIBehaviour,
        seq: int,
        request: ParsedRequest,
        plan: Plan,
        status: int,
        message: str,
        keep_alive: bool,
        outcome: str,
    ) -> None:
        """Answer at once with an error status (no slot taken), and record it."""
        now = _monotonic()
        oa.counts[outcome] += 1
        record = RequestRecord(
            plan.index, request.kind, request.stream, outcome, status, plan.tokens, 0, request.prompt_tokens, now
        )
        record.ended = now
        oa.records.append(record)
        self._deliver(seq, _json_response(status, _error_body(status, message), keep_alive))

    def _oa_write(self, seq: int, data: bytes) -> None:
        """Write part of response ``seq`` now if it is next on the wire, else keep it for then."""
        transport = self._transport
        if transport is None:
            return
        if seq != self._send_seq:
            self._oa_parts.setdefault(seq, []).append(data)
        elif self._batch is not None:
            self._batch.append(data)
        else:
            transport.write(data)

    def _oa_disconnect(self) -> None:
        """Injected failure: close the connection (after what was written), mid-response."""
        self._close()

    def _deliver(self, seq: int, data: bytes) -> None:
        # Connection._deliver, plus: parts of later (streaming) responses go out as soon as they are next.
        transport = self._transport
        if transport is None:
            return
        if seq != self._send_seq:
            self._early[seq] = data
            return
        out = [data]
        seq += 1
        early, parts = self._early, self._oa_parts
        while True:
            pending = parts.pop(seq, None)
            if pending:
                out.extend(pending)
            if seq not in early:
                break
            out.append(early.pop(seq))
            seq += 1
        data = out[0] if len(out) == 1 else b"".join(out)
        self._send_seq = seq
        batch = self._batch
        if batch is not None:
            batch.append(data)
            return
        transport.write(data)
        if self._close_seq is not None and seq > self._close_seq:
            self._close()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._oa_parts.clear()
        for exchange in list(self._oa_exchanges.values()):
            exchange.cancel()

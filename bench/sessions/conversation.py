"""Multi-turn chat: each conversation sends its turns in order, every turn with the whole history so far.

A conversation is a session whose steps are a data row's ``turns`` (user
messages). Turn k sends the system-free history: the earlier user messages
and the assistant's replies exactly as they were streamed back (the content
deltas joined), then the new user message. That is what exercises a model
server's prefix cache, so the report gives every figure by turn
(``turns.<k>``: requests, latency, TTFT, TPOT, input and output tokens).

The loops, the cookie-free clients, the accounting and the drain are the
session runner's; a failed turn (an error, an HTTP error status, a stream
error or a reply with no content) ends its conversation as failed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson

from bench.engine.plan.requests import API_PRESETS
from bench.engine.workers.responses import ResponseFacts
from bench.engine.workers.samples import MEASURED, Recorder
from bench.engine.workers.sse import OpenAIStreamMetrics, openai_response_metrics
from bench.sessions.runner import SessionRunner, _Sent


class ConversationRunner(SessionRunner):
    """Runs one worker's share of conversations (closed loop: users; open loop: new conversations per second)."""

    def __init__(self, worker: Any):
        super().__init__(worker)
        kind = worker.spec.profile.kinds[0]
        self.kind = kind
        base = self.base_url
        self.url = base if urlsplit(base).path not in ("", "/") else urljoin(base, API_PRESETS["openai-chat"])
        self.headers = (*kind.headers, *(() if any(n.lower() == "content-type" for n, _ in kind.headers) else (("Content-Type", "application/json"),)))
        longest = max(len(row.get("turns") or ()) for row in self.rows)
        self.groups = {str(turn): Recorder(open_loop=True) for turn in range(1, longest + 1)}
        self.names = tuple(_Sent(f"turn {turn}") for turn in range(1, longest + 1))

    def take(self):
        groups, counts = super().take()
        if groups:
            groups = {f"turn:{label[5:]}": report for label, report in groups.items()}
        return groups, counts

    def _begin(self, row: dict[str, Any]) -> Any:
        return {"row": row, "history": []}

    def _parts(self, row: dict[str, Any]) -> int:
        return len(row["turns"])

    def _pause_s(self, index: int) -> float:
        """``conversation.think`` before every turn but the first (which starts when the conversation is due)."""
        think = self.worker.spec.profile.turn_think
        return think.draw(self.rng) if think is not None and index > 0 else 0.0

    async def _part(self, index: int, phase: str, due_ns: int, state: Any, http: aiohttp.ClientSession) -> tuple[int, str | None]:
        history = state["history"]
        history.append({"role": "user", "content": state["row"]["turns"][index]})
        end_ns, reply, failure = await self._turn(index, phase, due_ns, history, state["row"], http)
        if failure is None:
            history.append({"role": "assistant", "content": reply})
        return end_ns, failure

    async def _turn(self, index: int, phase: str, due_ns: int, history: list[dict[str, str]], row: dict[str, Any], http: aiohttp.ClientSession):
        """Send one turn with the history so far; (its end, the reply as streamed, the failure kind or None)."""
        worker, kind = self.worker, self.kind
        body: dict[str, Any] = {"model": row.get("model", kind.model), "max_tokens": int(row.get("max_tokens", kind.max_tokens)), "messages": history}
        body["stream"] = kind.stream
        if kind.stream:
            body["stream_options"] = {"include_usage": True}
        group = self.groups[str(index + 1)] if phase == MEASURED else None
        stream = OpenAIStreamMetrics(keep_text=True) if kind.stream else None
        sent_ns, (status, payload, _, nbytes, error) = await self._exchange(index, phase, group, due_ns, http, "POST", self.url, self.headers, orjson.dumps(body), stream)
        reply, facts = "", None
        if status is not None and status < 400:
            reply, facts = self._reply(stream, payload, due_ns)
        failure = error if error is not None else ("http" if status is not None and status >= 400 else None)
        if failure is None and facts is not None and facts.check_failed is not None:
            failure = "check"
        prompt_tokens = stream.usage_prompt_tokens if stream is not None else _usage_prompt_tokens(payload)
        if prompt_tokens is None:
            prompt_tokens = sum(len(m["content"].split()) for m in history)  # the mock's own count: words
        tallies = [worker.recorder.phases[phase]] + ([group.phases[MEASURED]] if group is not None else [])
        for tally in tallies:
            tally.input_tokens += prompt_tokens
        end_ns = self._record(phase, group, due_ns, sent_ns, status, error, nbytes, facts, index)
        return end_ns, reply, failure

    @staticmethod
    def _reply(stream: OpenAIStreamMetrics | None, payload: bytes, start_ns: int) -> tuple[str, ResponseFacts]:
        """The assistant's reply as the next turn must send it back, and the turn's facts (TTFT from when it was due)."""
        if stream is not None:
            stream.close()
            tokens, source = stream.output_tokens()
            reply = "".join(stream.text or ())
            failed = f"stream error: {stream.error}" if stream.error else (None if reply else "the reply had no content")
            return reply, ResponseFacts(
                failed, stream.ttft_ns(start_ns), stream.tpot_ns(start_ns), stream.e2e_ns(start_ns), tuple(stream.itl_ns), tokens, source
            )
        try:
            message = orjson.loads(payload)["choices"][0]["message"]["content"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            message = None
        tokens, source = openai_response_metrics(payload)
        failed = None if isinstance(message, str) and message else "the reply had no content"
        return (message if isinstance(message, str) else ""), ResponseFacts(failed, output_tokens=tokens, token_source=source if tokens is not None else None)


def _usage_prompt_tokens(payload: bytes) -> int | None:
    """A non-streamed reply's ``usage.prompt_tokens``, if the server gave one."""
    try:
        tokens = orjson.loads(payload)["usage"]["prompt_tokens"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None

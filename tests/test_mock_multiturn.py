"""Multi-turn chat against a real mock process: the history check and the prefix cache's TTFT by turn."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from bench.mock import MockConfig, MockConfigError, MockServerProcess
from bench.mock.config import PrefixCacheConfig
from bench.mock.openai import TOKEN_TEXT, OpenAIBehaviour, PrefixCache, parse_request

TIMEOUT = aiohttp.ClientTimeout(total=15)
OUTPUT = 12  # tokens per reply
TTFT = 0.020  # the fixed part of the prefill
PER_TOKEN = 0.001


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def config(**openai: Any) -> MockConfig:
    section = {
        "ttft": {"model": "fixed", "delay": "20ms"},
        "inter_token": {"model": "fixed", "delay": "2ms"},
        "output_tokens": {"fixed": OUTPUT},
        **openai,
    }
    return MockConfig.from_mapping({"openai": section})


def words(prefix: str, count: int) -> str:
    return " ".join(f"{prefix}{i}" for i in range(count))


async def chat(session: aiohttp.ClientSession, url: str, messages: list[dict[str, str]], stream: bool = True) -> tuple[int, Any, float | None]:
    """(status, the reply's text or the error body, seconds to the first content event)."""
    started = time.monotonic()
    body = {"model": "m", "messages": messages, "stream": stream}
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        if response.status != 200:
            return response.status, await response.json(), None
        if not stream:
            return 200, (await response.json())["choices"][0]["message"]["content"], None
        ttft, parts, done = None, [], False
        async for line in response.content:
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            if line == b"data: [DONE]":
                done = True
                continue
            choices = json.loads(line[6:])["choices"]
            content = choices[0]["delta"].get("content") if choices else None
            if content:
                if ttft is None:
                    ttft = time.monotonic() - started
                parts.append(content)
        assert done
        return 200, "".join(parts), ttft


async def stats(session: aiohttp.ClientSession, url: str) -> dict[str, int]:
    async with session.get(f"{url}/v1/mock/stats") as response:
        assert response.status == 200
        return await response.json()


async def conversation(url: str, turns: int, first_words: int, new_words: int) -> tuple[list[float], list[str], dict[str, int]]:
    """Each turn sends the whole history, the replies exactly as streamed; (TTFT by turn, replies, stats)."""
    messages = [{"role": "system", "content": words("s", 50)}, {"role": "user", "content": words("u", first_words - 50)}]
    ttfts, replies = [], []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for turn in range(turns):
            status, reply, ttft = await chat(session, url, messages)
            assert status == 200, reply
            ttfts.append(ttft)
            replies.append(reply)
            messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": words(f"t{turn}w", new_words)}]
        return ttfts, replies, await stats(session, url)


def test_history_check_accepts_replies_as_streamed_and_refuses_others() -> None:
    with MockServerProcess(config(check_history=True)) as mock:
        url = mock.url
        _, replies, counts = run(conversation(url, 3, 60, 10))
        # The streamed deltas concatenate to the completion's text: its first word names the request.
        assert replies == [f"m1-{i} " + TOKEN_TEXT * (OUTPUT - 1) for i in range(3)]
        assert counts["history_ok"] == 2 and counts["history_mismatch"] == 0  # turns 2 and 3

        async def others() -> dict[str, int]:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                user = {"role": "user", "content": "hello"}
                # A reply fetched without streaming counts as produced too.
                status, text, _ = await chat(session, url, [user], stream=False)
                assert status == 200 and text == "m1-3 " + TOKEN_TEXT * (OUTPUT - 1)
                assert (await chat(session, url, [user, {"role": "assistant", "content": text}, user]))[0] == 200
                tampered = replies[1].rstrip()  # one byte less
                history = [
                    user,
                    {"role": "assistant", "content": replies[0]},
                    user,
                    {"role": "assistant", "content": tampered},
                    user,
                ]
                status, error, _ = await chat(session, url, history)
                assert status == 400
                assert error["error"]["message"] == "assistant message 2 was not produced by this server"
                assert error["error"]["type"] == "invalid_request_error"
                assert error["error"]["param"] == "messages[3]"
                invented = [user, {"role": "assistant", "content": "tok " * OUTPUT}, user]
                assert (await chat(session, url, invented))[0] == 400
                return await stats(session, url)

        counts = run(others())
        assert counts["history_ok"] == 3 and counts["history_mismatch"] == 2
        assert counts["requests"] == 5  # refused requests draw nothing


def test_ttft_by_turn_falls_with_the_prefix_cache_and_rises_without() -> None:
    # 300 words, then each turn adds a 12-token reply and 100 words; 1 ms per uncached token.
    measured = {}
    for enabled in (True, False):
        with MockServerProcess(config(prefix_cache={"per_token": "1ms", "block": 16, "enabled": enabled})) as mock:
            measured[enabled] = run(conversation(mock.url, 3, 300, 100))
    prompts = [300, 412, 524]
    cached = [0, 304, 416]  # whole 16-token blocks of the previous turn's prompt + reply (312 -> 304, 424 -> 416)
    for enabled, (ttfts, _, counts) in measured.items():
        print(f"cache {'on ' if enabled else 'off'}: TTFT by turn", ", ".join(f"{t * 1000:.1f} ms" for t in ttfts))
        charged = [p - c for p, c in zip(prompts, cached)] if enabled else prompts
        assert counts["prompt_tokens"] == sum(prompts)
        assert counts["cached_tokens"] == (sum(cached) if enabled else 0)
        for ttft, tokens in zip(ttfts, charged):
            model = TTFT + PER_TOKEN * tokens
            assert model <= ttft < model + 0.100, (ttft, model)  # never early; late by scheduling only
    on, off = measured[True][0], measured[False][0]
    assert on[1] < on[0] / 2 and on[2] < on[0] / 2  # 132 ms and 128 ms of model less than turn 1's 320 ms
    assert off[0] < off[1] < off[2]  # 320, 432, 544 ms: 112 ms apart


def test_prefix_cache_blocks_last_token_and_lru() -> None:
    cache = PrefixCache(block=4, capacity=12)  # 3 blocks
    seq = [f"w{i}" for i in range(10)]
    assert cache.lookup(seq)[0] == 0
    cache.insert(cache.names(seq))  # 2 whole blocks
    assert len(cache) == 2
    assert cache.lookup(seq + ["x"])[0] == 8
    assert cache.lookup(seq[:8])[0] == 4  # a prompt held in full still computes its last block
    assert cache.lookup(["other"] + seq)[0] == 0  # a block's name is its whole prefix
    other = [f"v{i}" for i in range(8)]
    cache.insert(cache.names(other))  # 4 blocks > 3: the least recently used goes (seq's second block)
    assert len(cache) == 3
    assert cache.lookup(seq)[0] == 4
    assert cache.lookup(other + ["x"])[0] == 8


def test_prefill_without_a_cache_and_tagged_words() -> None:
    body = b'{"messages": [{"role": "system", "content": "a b"}, {"role": "user", "content": [{"type": "text", "text": "c d e"}]}]}'
    request = parse_request("chat", body, words=True, history=True)
    assert request.prompt_tokens == 5 and request.prompt_words == ("system\x1fa", "system\x1fb", "user\x1fc", "user\x1fd", "user\x1fe")
    assert request.assistant == ()
    plain = OpenAIBehaviour(config().openai)
    assert plain.prefill(request) == (0.0, None)  # no prefix_cache: today's TTFT exactly
    uncached = OpenAIBehaviour(config(prefix_cache={"per_token": "2ms", "enabled": False}).openai)
    assert uncached.prefill(request)[0] == pytest.approx(0.010) and uncached.cache is None


@pytest.mark.parametrize(
    ("openai", "field"),
    [
        ({"prefix_cache": {}}, "openai.prefix_cache.per_token"),
        ({"prefix_cache": {"per_token": "1ms", "block": 0}}, "openai.prefix_cache.block"),
        ({"prefix_cache": {"per_token": "1ms", "block": 16, "capacity": 8}}, "openai.prefix_cache.capacity"),
        ({"prefix_cache": {"per_token": "1ms", "enabled": "no"}}, "openai.prefix_cache.enabled"),
        ({"prefix_cache": {"per_token": "1ms", "blocks": 4}}, "openai.prefix_cache.blocks"),
        ({"check_history": 1}, "openai.check_history"),
    ],
)
def test_config_errors(openai: dict[str, Any], field: str) -> None:
    with pytest.raises(MockConfigError) as info:
        MockConfig.from_mapping({"openai": openai})
    assert info.value.field == field


def test_config_defaults() -> None:
    section = MockConfig.from_mapping({"openai": {}}).openai
    assert section.prefix_cache is None and section.check_history is False
    cache = MockConfig.from_mapping({"openai": {"prefix_cache": {"per_token": "0.5ms"}}}).openai.prefix_cache
    assert cache == PrefixCacheConfig(per_token=0.0005, block=16, capacity=200_000, enabled=True)

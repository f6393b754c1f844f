"""Multi-turn chat against the mock's OpenAI side: the history the server checks, and TTFT by turn with and without a prefix cache.

The mock (started here, so the test can read its counters) answers 400 to a
turn whose assistant messages are not replies it produced, and with a
prefix cache of 1 ms per uncached prompt token a turn costs only its new
words; without the cache every turn pays for its whole, growing history.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import yaml

import bench
from bench.engine.errors import ProfileError
from bench.mock import MockConfig, MockServerProcess

pytestmark = pytest.mark.slow

OPENAI = {
    "ttft": {"model": "fixed", "delay": "20ms"},
    "inter_token": {"model": "fixed", "delay": "2ms"},
    "output_tokens": {"min": 12, "max": 12},
    "check_history": True,
}


def conversation_run(tmp_path: Path, cached: bool) -> tuple[dict, dict]:
    """Six 3-turn conversations of 150-word user messages; the run's report and the mock's own counters."""
    mock = MockConfig.from_mapping({"openai": {**OPENAI, "prefix_cache": {"per_token": "1ms", "enabled": cached}}})
    with MockServerProcess(mock) as server:
        data = {
            "target": {"url": server.url + "/", "api": "openai-chat", "stream": True, "max_tokens": 16},
            "data": {"synthetic": {"count": 20, "turns": 3, "prompt_tokens": 150}},
            "load": {"concurrency": 2, "requests": 6, "workers": 1},
            "sla": {"ttft.p95": "5s"},
        }
        path = tmp_path / "chat.yaml"
        path.write_text(yaml.safe_dump(data))
        result = bench.run(bench.load_profile(path))
        with urllib.request.urlopen(server.url + "/v1/mock/stats", timeout=10) as answer:
            stats = json.loads(answer.read())
    return result.summary, stats


def test_every_turn_sends_the_history_as_streamed_and_the_server_accepts_it(tmp_path: Path) -> None:
    summary, stats = conversation_run(tmp_path, cached=True)
    conversations = summary["sessions"]
    assert conversations["started"] == conversations["completed"] == 6 and conversations["failed"] == 0
    assert summary["requests"]["ok"] == 18 and summary["status_codes"] == {"200": 18}
    # Turns 2 and 3 carry assistant messages; the server matched each, byte for byte, to a reply it streamed.
    assert stats["history_ok"] == 12 and stats["history_mismatch"] == 0
    turns = summary["turns"]
    assert list(turns) == ["1", "2", "3"]
    assert [turns[t]["requests"]["sent"] for t in turns] == [6, 6, 6]
    inputs = [turns[t]["input_tokens"] / 6 for t in turns]
    assert inputs[0] < inputs[1] < inputs[2]  # the history grows: 150, 150 + 12 + 150, ...
    assert all(turns[t]["output_tokens"] == 6 * 12 for t in turns)


def test_ttft_by_turn_shows_whether_the_prefix_cache_works(tmp_path: Path) -> None:
    cached, _ = conversation_run(tmp_path, cached=True)
    uncached, _ = conversation_run(tmp_path, cached=False)
    first, third = (cached["turns"][t]["ttft"]["p50"] for t in ("1", "3"))
    assert abs(third - first) < 40, (first, third)  # only the new words are computed: about 20 + 150 ms each turn
    first, third = (uncached["turns"][t]["ttft"]["p50"] for t in ("1", "3"))
    assert third - first > 200, (first, third)  # the whole history each time: about 324 ms more by turn 3


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_conversation_rows_are_checked_when_the_profile_loads(tmp_path: Path) -> None:
    load = {"concurrency": 1, "requests": 1}
    with pytest.raises(ProfileError) as info:
        bench.load_profile(write(tmp_path, {"target": {"api": "openai-completions"}, "data": {"synthetic": {"turns": 3}}, "load": load}))
    assert info.value.field == "data.synthetic.turns" and "openai-chat" in info.value.message
    (tmp_path / "rows.jsonl").write_text('{"turns": ["hi", "and then?"]}\n{"turns": []}\n')
    with pytest.raises(ProfileError) as info:
        bench.load_profile(write(tmp_path, {"target": {"api": "openai-chat"}, "data": {"file": "rows.jsonl"}, "load": load}))
    assert info.value.field == "data.file" and "row 2: turns must be a list" in info.value.message


def test_conversation_think_pauses_before_each_later_turn_and_counts_in_no_latency(tmp_path: Path) -> None:
    """conversation.think: 400 ms before turns 2 and 3 lengthens each conversation by 800 ms, and no turn's latency."""

    def durations(think: dict) -> tuple[dict, dict]:
        data = {
            "mock": {"openai": {"ttft": {"model": "fixed", "delay": "20ms"}, "inter_token": {"model": "fixed", "delay": "2ms"},
                                "output_tokens": {"min": 4, "max": 4}}},
            "target": {"api": "openai-chat", "stream": True, "max_tokens": 4},
            "data": {"synthetic": {"count": 4, "turns": 3, "prompt_tokens": 8}},
            "load": {"concurrency": 2, "requests": 4, "workers": 1},
            **think,
        }  # fmt: skip
        summary = bench.run(bench.load_profile(write(tmp_path, data))).summary
        assert summary["sessions"]["completed"] == 4
        return summary["sessions"], summary["turns"]

    plain, plain_turns = durations({})
    paused, paused_turns = durations({"conversation": {"think": "400ms"}})
    added = paused["duration"]["p50"] - plain["duration"]["p50"]
    assert 780 <= added <= 900, (plain["duration"], paused["duration"])  # two pauses of 400 ms, ms
    for turn in ("2", "3"):
        assert paused_turns[turn]["latency"]["p50"] < plain_turns[turn]["latency"]["p50"] + 100  # the pause is in no turn
    with pytest.raises(ProfileError) as info:
        bench.load_profile(write(tmp_path, {"target": {"api": "openai-chat"}, "load": {"concurrency": 1, "requests": 1}, "conversation": {"think": "1s"}}))
    assert info.value.field == "conversation" and "turns" in info.value.message
    with pytest.raises(ProfileError) as info:
        bench.load_profile(write(tmp_path, {"target": {"api": "openai-chat"}, "data": {"synthetic": {"turns": 2}}, "load": {"concurrency": 1, "requests": 1},
                                            "conversation": {"think": {"model": "uniform", "min": "2s", "max": "1s"}}}))  # fmt: skip
    assert info.value.field == "conversation.think.max"

"""SSE parser and OpenAI stream metrics: spec quirks, split-anywhere, exact timings."""

from __future__ import annotations

import bisect
import json
import random

import orjson
import pytest

from bench.engine.workers.sse import OpenAIStreamMetrics, SSEParser, openai_response_metrics


def parse_chunks(chunks) -> tuple[list[tuple[str, str]], SSEParser]:
    p = SSEParser()
    events: list[tuple[str, str]] = []
    for c in chunks:
        events.extend(p.feed(c))
    events.extend(p.close())
    return events, p


def parse(data: bytes) -> list[tuple[str, str]]:
    return parse_chunks([data])[0]


# ---------------------------------------------------------------- SSE quirks

def test_basic_events_and_default_type():
    assert parse(b"data: a\n\ndata: b\n\n") == [("message", "a"), ("message", "b")]


def test_data_without_space_and_only_one_space_stripped():
    assert parse(b"data:x\n\ndata:  y\n\ndata: \tz\n\n") == [
        ("message", "x"), ("message", " y"), ("message", "\tz")]


def test_crlf_and_cr_line_ends():
    assert parse(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n") == [
        ("message", "a"), ("message", "b"), ("message", "c")]


def test_comments_ignored():
    assert parse(b": hello\n:\ndata: a\n: mid\ndata: b\n\n: bye\n\n") == [
        ("message", "a\nb")]


def test_multiline_data_joined_with_lf():
    assert parse(b"data: l1\ndata:\ndata: l3\n\n") == [("message", "l1\n\nl3")]


def test_event_id_retry_fields():
    events, p = parse_chunks([b"event: delta\nid: 7\nretry: 2500\ndata: a\n\ndata: b\n\n"])
    assert events == [("delta", "a"), ("message", "b")]  # type resets after dispatch
    assert p.last_event_id == "7" and p.retry_ms == 2500
    events, p = parse_chunks([b"id: 1\nid: a\0b\nretry: 12x\nretry\ndata: z\n\n"])
    assert p.last_event_id == "1" and p.retry_ms is None  # NUL id and non-digits ignored
    assert events == [("message", "z")]


def test_empty_event_type_is_message_and_type_resets_on_blank_line():
    assert parse(b"event:\ndata: a\n\n") == [("message", "a")]
    assert parse(b"event: x\n\ndata: a\n\n") == [("message", "a")]


def test_line_without_colon_is_field_with_empty_value():
    assert parse(b"data\n\n") == [("message", "")]
    assert parse(b"data\ndata\n\n") == [("message", "\n")]
    assert parse(b"foo\nevent\ndata: a\n\n") == [("message", "a")]


def test_blank_line_without_data_dispatches_nothing():
    assert parse(b"\n\n\r\n: c\n\nevent: e\nid: 3\n\n") == []


def test_unknown_fields_ignored():
    assert parse(b"foo: bar\nDATA: no\ndata : no\ndata: yes\n\n") == [("message", "yes")]


def test_bom_skipped_only_at_start():
    assert parse(b"\xef\xbb\xbfdata: a\n\n") == [("message", "a")]
    # split inside the BOM
    assert parse_chunks([b"\xef", b"\xbb", b"\xbfdata: a\n\n"])[0] == [("message", "a")]
    # a second BOM is part of the field name, so the line is ignored
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n") == [("message", "b")]
    # bytes that only start like a BOM are kept
    assert parse_chunks([b"\xef", b"x\n\ndata: a\n\n"])[0] == [("message", "a")]


def test_cr_at_chunk_end_then_lf_is_one_line_end():
    # if the LF were a second line end, "a" and "b" would be two events
    events, _ = parse_chunks([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert events == [("message", "a\nb")]
    # CR then CR across chunks: line end + blank line
    assert parse_chunks([b"data: a\r", b"\r"])[0] == [("message", "a")]
    # CR then LF in a later, non-empty chunk only; an empty chunk in between changes nothing
    assert parse_chunks([b"data: a\r", b"", b"\n", b"\n"])[0] == [("message", "a")]


def test_several_events_in_one_chunk_and_event_across_chunks():
    p = SSEParser()
    assert p.feed(b"data: 1\n\ndata: 2\n\ndata: 3") == [("message", "1"), ("message", "2")]
    assert p.feed(b"4\n") == []
    assert p.feed(b"\n") == [("message", "34")]


def test_utf8_split_across_chunks():
    raw = "data: héllo ✓ 日本\n\n".encode()
    assert parse_chunks([bytes([b]) for b in raw])[0] == [("message", "héllo ✓ 日本")]


def test_feed_raw_and_bytes_like_input():
    p = SSEParser()
    assert p.feed_raw(bytearray(b"event: e\ndata: a\n\n")) == [(b"e", b"a")]
    assert p.feed_raw(memoryview(b"data: b\n\n")) == [(b"message", b"b")]
    assert p.bytes_received == 27


def test_close_discards_unterminated_event_and_reports_it():
    events, p = parse_chunks([b"data: a\n\ndata: b\n"])
    assert events == [("message", "a")] and p.incomplete
    events, p = parse_chunks([b"data: a\n\ndata: {\"cut"])
    assert events == [("message", "a")] and p.incomplete
    events, p = parse_chunks([b"data: a\n\n"])
    assert not p.incomplete
    events, p = parse_chunks([b"data: a\n\n: keep-alive"])  # partial comment: no event pending
    assert not p.incomplete
    events, p = parse_chunks([b"data: a\n\nevent: x\n"])  # no data: nothing would dispatch
    assert not p.incomplete


def test_oversized_event_dropped_and_parsing_resumes():
    big = b"data: " + b"x" * 300 + b"\ndata: more\n\n"
    stream = b"data: a\n\n" + big + b"data: b\n\n"
    for chunks in ([stream], [stream[i:i + 1] for i in range(len(stream))],
                   [stream[i:i + 7] for i in range(0, len(stream), 7)]):
        p = SSEParser(max_event_bytes=64)
        events = [e for c in chunks for e in p.feed(c)]
        assert events == [("message", "a"), ("message", "b")], chunks[:2]
        assert p.dropped_events == 1
        assert len(p._buf) <= 64
    # many data lines that add up past the limit
    p = SSEParser(max_event_bytes=64)
    assert p.feed(b"data: 0123456789\n" * 10 + b"\ndata: ok\n\n") == [("message", "ok")]
    assert p.dropped_events == 1


# A stream with every quirk; the expected events are written by hand.
QUIRKS = (
    b"\xef\xbb\xbf"
    b": welcome\r\n"
    b"id: 1\r\n"
    b"data: first\r\n"
    b"\r\n"
    b"event: update\n"
    b"data:no-space\n"
    b"data:  two spaces\n"
    b"\n"
    b"data: line1\r"
    b"data: line2\r"
    b"\r"
    b"retry: 1500\n"
    b"data\n"
    b"\n"
    b"data: caf\xc3\xa9 \xe2\x9c\x93\r\n"
    b"\r\n"
    b"data: [DONE]\n\n"
)
QUIRKS_EVENTS = [
    ("message", "first"),
    ("update", "no-space\n two spaces"),
    ("message", "line1\nline2"),
    ("message", ""),
    ("message", "café ✓"),
    ("message", "[DONE]"),
]


def _check_quirks(chunks):
    events, p = parse_chunks(chunks)
    assert events == QUIRKS_EVENTS, chunks
    assert p.last_event_id == "1" and p.retry_ms == 1500 and not p.incomplete


def test_quirks_whole_and_one_byte_chunks():
    _check_quirks([QUIRKS])
    _check_quirks([QUIRKS[i:i + 1] for i in range(len(QUIRKS))])


def test_quirks_every_split_point():
    for i in range(len(QUIRKS) + 1):
        _check_quirks([QUIRKS[:i], QUIRKS[i:]])


def test_quirks_every_pair_of_split_points():
    n = len(QUIRKS)
    for i in range(1, n):
        for j in range(i, n):
            events, _ = parse_chunks([QUIRKS[:i], QUIRKS[i:j], QUIRKS[j:]])
            assert events == QUIRKS_EVENTS, (i, j)


# ---------------------------------------------------------------- OpenAI streams

def sse(obj) -> bytes:
    body = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return b"data: " + body + b"\n\n"


def chat(**delta) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def usage(completion: int, prompt: int = 11) -> dict:
    return {"id": "c1", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


DONE = b"data: [DONE]\n\n"


def run(chunks_with_t) -> OpenAIStreamMetrics:
    m = OpenAIStreamMetrics()
    for chunk, t in chunks_with_t:
        m.feed(chunk, t)
    m.close()
    return m


def test_role_only_first_chunk_is_not_first_token():
    m = run([
        (sse(chat(role="assistant", content="")), 100),
        (sse(chat(content="Hi")), 250),
        (sse(chat(content=" there")), 300),
        (DONE, 310),
    ])
    assert m.first_byte_ns == 100 and m.last_byte_ns == 310
    assert m.first_token_ns == 250 and m.ttft_ns(40) == 210
    assert m.content_events == 2 and m.events == 4 and m.done
    assert m.output_tokens() == (2, "events")


def test_usage_only_last_chunk_gives_server_tokens_and_is_not_content():
    m = run([
        (sse(chat(content="a")), 10),
        (sse(chat(content="b")), 20),
        (sse(usage(7, prompt=5)), 90),
        (DONE, 95),
    ])
    assert m.content_events == 2 and m.last_token_ns == 20
    assert m.output_tokens() == (7, "server")
    assert m.usage_prompt_tokens == 5
    assert m.e2e_ns(0) == 20  # ends at the last content event, not the usage chunk


def test_multi_token_chunk_counts_one_event_usage_wins():
    m = run([(sse(chat(content="abc")), 10), (sse(usage(3)), 11), (DONE, 12)])
    assert m.content_events == 1
    assert m.output_tokens() == (3, "server")
    assert m.tpot_ns(0) == 0  # all 3 tokens in one chunk: e2e == ttft


def test_last_usage_wins():
    m = run([(sse({**chat(content="a"), "usage": {"completion_tokens": 1, "prompt_tokens": 4}}), 1),
             (sse({**chat(content="b"), "usage": None}), 2),
             (sse(usage(2, prompt=4)), 3)])
    assert m.output_tokens() == (2, "server") and m.usage_prompt_tokens == 4


@pytest.mark.parametrize("delta", [
    {"reasoning_content": "think"},
    {"reasoning": "think"},
    {"content": None, "reasoning_content": "think"},
    {"tool_calls": [{"index": 0, "id": "t1", "type": "function",
                     "function": {"name": "f", "arguments": ""}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\""}}]},
    {"function_call": {"arguments": "{"}},
])
def test_content_like_deltas_count(delta):
    m = run([(sse(chat(**delta)), 5)])
    assert m.content_events == 1 and m.first_token_ns == 5


@pytest.mark.parametrize("delta", [
    {}, {"role": "assistant"}, {"content": ""}, {"content": None},
    {"reasoning_content": ""}, {"reasoning": None}, {"tool_calls": []},
    {"tool_calls": None}, {"content": 5},
])
def test_empty_deltas_do_not_count(delta):
    m = run([(sse(chat(**delta)), 5)])
    assert m.content_events == 0 and m.first_token_ns is None
    assert m.ttft_ns(0) is None and m.e2e_ns(0) is None and m.tpot_ns(0) is None
    assert m.output_tokens() == (0, "events")


def test_any_choice_with_content_counts_once():
    obj = {"choices": [{"index": 0, "delta": {"content": ""}},
                       {"index": 1, "delta": {"content": "x"}},
                       {"index": 2, "delta": {"content": "y"}}]}
    assert run([(sse(obj), 1)]).content_events == 1


def test_completions_api_text_chunks():
    def comp(text):
        return {"id": "cmpl-1", "object": "text_completion",
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": None}]}
    m = run([(sse(comp("")), 10), (sse(comp("Hello")), 20), (sse(comp(" world")), 35),
             (sse(usage(2)), 40), (DONE, 41)])
    assert m.content_events == 2 and m.first_token_ns == 20 and m.itl_ns == [15]
    assert m.output_tokens() == (2, "server") and m.tpot_ns(0) == 15


def test_malformed_json_counted_not_raised():
    m = run([
        (sse(chat(content="a")), 1),
        (b"data: {\"choices\": [\n\n", 2),
        (b"data: not json\n\n", 3),
        (b"data: [1, 2]\n\n", 4),          # valid JSON but not an object
        (sse(chat(content="b")), 5),
    ])
    assert m.malformed_events == 3 and m.content_events == 2 and m.itl_ns == [4]
    assert m.error is None and not m.done


def test_no_done_means_done_false():
    m = run([(sse(chat(content="a")), 1), (sse(chat(content="b")), 2)])
    assert not m.done and not m.incomplete
    m = run([(sse(chat(content="a")), 1), (DONE, 2)])
    assert m.done


def test_cut_off_stream_is_incomplete():
    m = run([(sse(chat(content="a")), 1), (b'data: {"choices": [{"delta": {"content": "b', 2)])
    assert m.incomplete and m.content_events == 1 and not m.done


def test_error_events():
    m = run([(sse({"error": {"message": "boom", "type": "BadRequestError", "code": 400}}), 1)])
    assert m.error == "boom" and m.malformed_events == 0 and m.content_events == 0
    m = run([(sse({"object": "error", "message": "old vllm", "code": 500}), 1)])
    assert m.error == "old vllm"
    m = run([(b"event: error\ndata: upstream died\n\n", 1)])
    assert m.error == "upstream died" and m.malformed_events == 0
    m = run([(sse({"error": "plain"}), 1)])
    assert m.error == "plain"


def test_timings_exact():
    sent = 1_000
    m = run([
        (b": ping\n\n", 2_000),                                   # first byte: a comment
        (sse(chat(role="assistant", content="")), 5_000),
        (sse(chat(content="A")), 10_000),
        (sse(chat(content="B")), 13_000),
        (sse(chat(reasoning_content="C")), 17_000),
        (sse(chat(content="D")), 25_000),
        (sse(chat(content="")), 26_000),                          # empty: not a token
        (sse(usage(4)), 27_000),
        (DONE, 27_500),
    ])
    assert m.first_byte_ns == 2_000
    assert m.ttft_ns(sent) == 9_000
    assert m.e2e_ns(sent) == 24_000
    assert m.itl_ns == [3_000, 4_000, 8_000]
    assert m.output_tokens() == (4, "server")
    assert m.tpot_ns(sent) == 5_000                               # (24000 - 9000) / 3
    m.usage_completion_tokens = 6
    assert m.tpot_ns(sent) == 3_000                               # (24000 - 9000) / 5
    m.usage_completion_tokens = None                              # 4 events
    assert m.output_tokens() == (4, "events") and m.tpot_ns(sent) == 5_000


def test_tpot_rounding_and_one_token():
    m = run([(sse(chat(content="a")), 100), (sse(chat(content="b")), 111)])
    assert m.tpot_ns(0) == 11
    m.usage_completion_tokens = 3
    assert m.tpot_ns(0) == 6                                      # 5.5 rounds up
    m.usage_completion_tokens = 4
    assert m.tpot_ns(0) == 4                                      # 3.67
    one = run([(sse(chat(content="a")), 100), (sse(usage(1)), 120)])
    assert one.ttft_ns(0) == 100 and one.e2e_ns(0) == 100 and one.tpot_ns(0) is None
    zero_usage = run([(sse(chat(content="a")), 1), (sse(chat(content="b")), 2), (sse(usage(0)), 3)])
    assert zero_usage.output_tokens() == (0, "server") and zero_usage.tpot_ns(0) is None


def test_several_content_events_in_one_chunk_have_zero_gaps():
    m = run([(sse(chat(content="a")), 10),
             (sse(chat(content="b")) + sse(chat(content="c")) + sse(chat(content="d")), 30),
             (sse(chat(content="e")), 45)])
    assert m.itl_ns == [20, 0, 0, 15] and m.content_events == 5


def test_event_time_is_arrival_of_completing_chunk():
    ev = sse(chat(content="a"))
    m = run([(ev[:10], 100), (ev[10:-1], 200), (ev[-1:], 300)])
    assert m.first_byte_ns == 100 and m.first_token_ns == 300


def test_itl_list_is_capped():
    m = OpenAIStreamMetrics(max_itl=3)
    for t in range(10):
        m.feed(sse(chat(content="x")), t * 10)
    assert m.itl_ns == [10, 10, 10] and m.itl_dropped == 6 and m.content_events == 10
    assert m.e2e_ns(0) == 90


def test_non_streaming_helper():
    body = orjson.dumps({"choices": [{"message": {"content": "hi"}}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 9}})
    assert openai_response_metrics(body) == (9, "server")
    assert openai_response_metrics(b'{"choices": []}') == (None, "none")
    assert openai_response_metrics(b'{"usage": null}') == (None, "none")
    assert openai_response_metrics(b"<html>502</html>") == (None, "none")
    assert openai_response_metrics(b"[]") == (None, "none")


# ---------------------------------------------------------------- property: any chunking

TEXTS = ["a", "Hello", " wörld", " ✓", " 日本語", "\n", " \"q\"", "x" * 40]


def random_stream(rng: random.Random):
    """A valid stream plus what it must parse to: events, each event's dispatch
    offset (the first byte of its blank line), and which events are content."""
    eol = rng.choice([b"\n", b"\r\n", b"\r"])
    out = bytearray()
    if rng.random() < 0.2:
        out += b"\xef\xbb\xbf"
    events, offsets, content, usage_tokens = [], [], [], None
    malformed, done = 0, False
    for _ in range(rng.randint(0, 14)):
        if rng.random() < 0.2:
            out += b": keep-alive" + eol
        if rng.random() < 0.1:
            out += b"id: " + str(rng.randint(0, 99)).encode() + eol
        etype = "message"
        if rng.random() < 0.1:
            etype = rng.choice(["delta", "chunk"])
            out += b"event: " + etype.encode() + eol
        kind = rng.choice(["content", "content", "content", "role", "empty", "reasoning",
                           "tools", "text", "usage", "malformed", "done"])
        is_content = kind in ("content", "reasoning", "tools", "text")
        obj = {
            "content": chat(content=rng.choice(TEXTS)),
            "role": chat(role="assistant", content=""),
            "empty": chat(content=""),
            "reasoning": chat(reasoning_content=rng.choice(TEXTS)),
            "tools": chat(tool_calls=[{"index": 0, "function": {"arguments": "{}"}}]),
            "text": {"choices": [{"index": 0, "text": rng.choice(TEXTS)}]},
            "usage": usage(rng.randint(1, 500)),
        }.get(kind)
        if kind == "done":
            body = "[DONE]"
            done = True
        elif kind == "malformed":
            body = '{"choices": [{"delta": {"content": "x"'
            malformed += 1
        elif rng.random() < 0.3:
            body = json.dumps(obj, indent=1, ensure_ascii=False)   # multi-line data
        else:
            body = json.dumps(obj, ensure_ascii=False)
        if kind == "usage":
            usage_tokens = obj["usage"]["completion_tokens"]
        values = []
        for line in body.split("\n"):
            prefix = rng.choice([b"data: ", b"data:"])
            out += prefix + line.encode() + eol
            values.append(line[1:] if prefix == b"data:" and line.startswith(" ") else line)
        events.append((etype, "\n".join(values)))
        offsets.append(len(out))
        content.append(is_content)
        out += eol
    cut = rng.random() < 0.15
    if cut:
        out += b'data: {"choices": [{"delta": {"content": "never'
    model = dict(events=events, offsets=offsets, content=content, usage=usage_tokens,
                 malformed=malformed, done=done, incomplete=cut)
    return bytes(out), model


def random_chunks(rng: random.Random, data: bytes) -> list[tuple[bytes, int]]:
    """Split at random points; each chunk's time is its end offset (x1000)."""
    n = len(data)
    if n == 0:
        return []
    if rng.random() < 0.1:
        cuts = list(range(1, n))
    else:
        cuts = sorted(rng.sample(range(1, n), min(n - 1, rng.randint(0, 60))))
    bounds = [0, *cuts, n]
    return [(data[a:b], b * 1000) for a, b in zip(bounds, bounds[1:])]


def summary(m: OpenAIStreamMetrics) -> tuple:
    return (m.content_events, m.events, m.malformed_events, m.done, m.incomplete,
            m.usage_completion_tokens, m.output_tokens(), m.error, m.bytes_received)


def test_random_streams_any_chunking_matches_whole_and_model():
    rng = random.Random(20240611)
    for case in range(200):
        data, model = random_stream(rng)
        chunks = random_chunks(rng, data)

        whole_events, _ = parse_chunks([data])
        split_events, p = parse_chunks([c for c, _ in chunks])
        assert whole_events == model["events"], case
        assert split_events == whole_events, case
        assert p.incomplete == model["incomplete"], case

        whole = run([(data, len(data) * 1000)])
        split = run(chunks)
        assert summary(split) == summary(whole), case
        n_content = sum(model["content"])
        assert split.content_events == n_content
        assert split.malformed_events == model["malformed"] and split.done == model["done"]
        expect_tokens = (model["usage"], "server") if model["usage"] is not None \
            else (n_content, "events")
        assert split.output_tokens() == expect_tokens, case

        # each content event's time is the end of the chunk holding its dispatch byte
        ends = [t // 1000 for _, t in chunks]
        times = [ends[bisect.bisect_right(ends, off)] * 1000
                 for off, c in zip(model["offsets"], model["content"]) if c]
        if times:
            assert split.first_token_ns == times[0] and split.last_token_ns == times[-1], case
            assert split.itl_ns == [b - a for a, b in zip(times, times[1:])], case
            assert whole.itl_ns == [0] * (len(times) - 1)
        else:
            assert split.first_token_ns is None and split.ttft_ns(0) is None
        assert split.first_byte_ns == (chunks[0][1] if chunks else None)

"""bench.engine.plan.profile: every shipped profile loads, every bad input names its file and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import orjson
import pytest

from bench.engine.errors import ProfileError
from bench.engine.results.gate import evaluate
from bench.engine.plan.profile import CLOSED_LOOP, OPEN_LOOP, OVERRIDE_FIELDS, SLA_METRICS, load_profile, load_scenarios, parse_profile

PROFILES_DIR = Path(__file__).parent.parent / "profiles"
SHIPPED = sorted(PROFILES_DIR.glob("*.yaml"))

# A minimal valid closed-loop body for the cases that break something else.
LOAD_OK = "load: {concurrency: 4, requests: 10}\n"


def write(tmp_path: Path, text: str, name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, overrides=None):
    return load_profile(write(tmp_path, text), overrides)


def expect_error(tmp_path: Path, text: str, overrides=None) -> ProfileError:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path, overrides)
    exc = info.value
    assert exc.path == str(path)
    assert (exc.flag or str(path)) in str(exc)  # a flag's problem names the flag, the profile's the file
    return exc


# --------------------------------------------------------------------------- shipped profiles


def test_there_are_shipped_profiles():
    assert len(SHIPPED) >= 4, SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_profile_loads(path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # relative output paths resolve against a writable directory
    profiles = load_scenarios(path)
    if len(profiles) == 1:
        assert profiles[0].name == path.stem  # every single-scenario profile names itself after its file
    for profile in profiles:
        assert profile.source == str(path)
        assert profile.load.model in (OPEN_LOOP, CLOSED_LOOP)
        assert profile.load.workers >= 1
        assert profile.sla, "every shipped profile has an SLA gate"
        assert profile.uses_mock and profile.mock is not None
        assert orjson.loads(orjson.dumps(profile.resolved))["name"] == profile.name


def test_scenarios_merge_over_the_shared_sections(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    baseline, optimized = load_scenarios(PROFILES_DIR / "compare.yaml")
    assert (baseline.name, optimized.name) == ("baseline", "optimized")
    assert (baseline.client.pool_size, baseline.client.keepalive) == (3, False)
    assert (optimized.client.pool_size, optimized.client.keepalive) == (20, True)
    assert baseline.load == optimized.load and baseline.mock == optimized.mock  # only the client differs
    assert (baseline.output.json_path, optimized.output.json_path) == (Path("compare-baseline.json"), Path("compare-optimized.json"))
    (only,) = load_scenarios(PROFILES_DIR / "compare.yaml", only="optimized")
    assert only.name == "optimized"
    with pytest.raises(ProfileError, match="did you mean 'optimized'"):
        load_scenarios(PROFILES_DIR / "compare.yaml", only="optimised")
    with pytest.raises(ProfileError, match="2 scenarios"):
        load_profile(PROFILES_DIR / "compare.yaml")


def test_scenarios_errors_name_the_scenario(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("load: {concurrency: 2, requests: 5}\nscenarios:\n  a: {}\n  b: {load: {concurency: 3}}\n")
    with pytest.raises(ProfileError) as info:
        load_scenarios(path)
    assert info.value.field == "load.concurency" and "scenario 'b'" in str(info.value)
    path.write_text("load: {concurrency: 2, requests: 5}\noutput: {json: %s}\nscenarios: {a: {}, b: {}}\n" % (tmp_path / "r.json"))
    with pytest.raises(ProfileError, match="both write"):
        load_scenarios(path)
    path.write_text("load: {concurrency: 2, requests: 5, stages: null}\nscenarios: {a: {load: {requests: null, duration: 1s}}}\n")
    (a,) = load_scenarios(path)
    assert a.load.requests is None and a.load.duration_s == 1.0  # null removes a key


def test_shipped_sla_profile_values(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    p = load_profile(PROFILES_DIR / "sla.yaml")
    assert p.load.model == CLOSED_LOOP
    assert (p.load.concurrency, p.load.requests, p.load.warmup_requests) == (20, 400, 20)
    assert p.target.method == "POST"
    assert p.target.timeout_s == 10.0
    assert [(r.name, r.op, r.threshold, r.unit) for r in p.sla] == [("p95", "<=", 800.0, "ms"), ("error_rate", "<=", 0.01, "ratio")]
    assert p.output.json_path == Path("sla-report.json")


def test_shipped_open_loop_profile_values(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    p = load_profile(PROFILES_DIR / "open-loop.yaml")
    assert (p.load.model, p.load.rate_per_s, p.load.arrival, p.load.seed) == (OPEN_LOOP, 200.0, "poisson", 42)
    assert (p.load.duration_s, p.load.warmup_s, p.load.max_in_flight) == (5.0, 1.0, 500)
    rules = {r.name: r for r in p.sla}
    assert rules["error_rate"].threshold == pytest.approx(0.005)
    assert (rules["min_rps"].op, rules["min_rps"].threshold) == (">=", 180.0)


def test_shipped_ramp_profile_values(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    p = load_profile(PROFILES_DIR / "ramp.yaml")
    assert p.load.rate_per_s == 50.0
    assert [(s.duration_s, s.target) for s in p.load.stages] == [(4.0, 300.0), (4.0, 300.0), (2.0, 100.0)]


# --------------------------------------------------------------------------- bad input, table-driven

# (id, yaml text, expected .field, a fragment the message must contain)
BAD = [
    ("unknown-top-level", "lod: {concurrency: 4}\n" + LOAD_OK, "lod", "did you mean 'load'"),
    ("unknown-nested", "load: {concurency: 4, requests: 10}\n", "load.concurency", "did you mean 'concurrency'"),
    ("unknown-target-field", "target: {methd: GET}\n" + LOAD_OK, "target.methd", "did you mean 'method'"),
    ("wrong-type-workers", "load: {concurrency: 4, requests: 10, workers: two}\n", "load.workers", "whole number"),
    ("float-concurrency", "load: {concurrency: 2.5, requests: 10}\n", "load.concurrency", "whole number"),
    ("bool-requests", "load: {concurrency: 4, requests: true}\n", "load.requests", "whole number"),
    ("zero-requests", "load: {concurrency: 4, requests: 0}\n", "load.requests", "at least 1"),
    ("negative-concurrency", "load: {concurrency: -1, requests: 10}\n", "load.concurrency", "at least 1"),
    ("zero-workers", "load: {concurrency: 4, requests: 10, workers: 0}\n", "load.workers", "at least 1"),
    ("zero-duration", "load: {concurrency: 4, duration: 0s}\n", "load.duration", "greater than 0"),
    ("bad-duration", "load: {concurrency: 4, duration: soon}\n", "load.duration", "'soon'"),
    ("bad-rate", "load: {rate: fast, duration: 5s}\n", "load.rate", "'fast'"),
    ("zero-rate", "load: {rate: 0/s, duration: 5s}\n", "load.rate", "> 0"),
    ("no-end", "load: {concurrency: 4}\n", "load.requests", "never end"),
    ("no-model", "load: {requests: 10}\n", "load.rate", "load.concurrency"),
    ("rate-and-concurrency", "load: {rate: 10/s, concurrency: 4, requests: 10}\n", "load.rate", "not both"),
    ("bad-arrival", "load: {rate: 10/s, requests: 10, arrival: poison}\n", "load.arrival", "did you mean 'poisson'"),
    ("arrival-closed-loop", "load: {concurrency: 4, requests: 10, arrival: poisson}\n", "load.arrival", "closed loop"),
    ("max-in-flight-closed", "load: {concurrency: 4, requests: 10, max_in_flight: 9}\n", "load.max_in_flight", "closed loop"),
    ("url-ftp", "target: {url: 'ftp://x'}\n" + LOAD_OK, "target.url", "unsupported scheme"),
    ("url-no-host", "target: {url: 'http://'}\n" + LOAD_OK, "target.url", "no host"),
    ("url-no-scheme", "target: {url: 'example.com/path'}\n" + LOAD_OK, "target.url", "unsupported scheme"),
    ("url-bad-port", "target: {url: 'http://x:99999/'}\n" + LOAD_OK, "target.url", "invalid port"),
    ("bad-method", "target: {method: FETCH}\n" + LOAD_OK, "target.method", "FETCH"),
    ("headers-list", "target: {headers: [a, b]}\n" + LOAD_OK, "target.headers", "mapping"),
    ("header-newline", "target: {headers: {X-A: \"a\\r\\nX-B: b\"}}\n" + LOAD_OK, "target.headers.X-A", "line breaks"),
    ("body-number", "target: {body: 5}\n" + LOAD_OK, "target.body", "mapping"),
    ("zero-timeout", "target: {timeout: 0s}\n" + LOAD_OK, "target.timeout", "greater than 0"),
    ("sla-unknown-metric", "sla: {latency_p95: 800ms}\n" + LOAD_OK, "sla.latency_p95", "unknown field"),
    ("sla-bad-threshold", "sla: {p95: soon}\n" + LOAD_OK, "sla.p95", "'soon'"),
    ("sla-empty-threshold", "sla: {p95: }\n" + LOAD_OK, "sla.p95", "threshold"),
    ("sla-error-rate-150", "sla: {error_rate: '150%'}\n" + LOAD_OK, "sla.error_rate", "between 0 and 1"),
    ("sla-error-rate-2", "sla: {error_rate: 2}\n" + LOAD_OK, "sla.error_rate", "between 0 and 1"),
    ("sla-error-rate-word", "sla: {error_rate: low}\n" + LOAD_OK, "sla.error_rate", "fraction"),
    ("sla-min-rps-zero", "sla: {min_rps: 0}\n" + LOAD_OK, "sla.min_rps", "> 0"),
    ("sla-not-mapping", "sla: [p95]\n" + LOAD_OK, "sla", "mapping"),
    ("mock-with-url", "target: {url: 'http://127.0.0.1:9/'}\nmock: {seed: 1}\n" + LOAD_OK, "mock", "never be used"),
    ("mock-bad-delay", "mock: {latency: {model: fixed, delay: soon}}\n" + LOAD_OK, "mock.latency.delay", "'soon'"),
    ("mock-unknown-key", "mock: {sed: 1}\n" + LOAD_OK, "mock.sed", "did you mean 'seed'"),
    ("mock-bad-model", "mock: {latency: {model: fixd}}\n" + LOAD_OK, "mock.latency.model", "did you mean 'fixed'"),
    ("synthetic-huge-count", "data: {synthetic: {count: 1000000000}}\n" + LOAD_OK, "data.synthetic.count", "at most 100,000"),
    ("synthetic-huge-prompts", "data: {synthetic: {count: 1000, prompt_tokens: {min: 1, max: 99999999}}}\n" + LOAD_OK, "data.synthetic.prompt_tokens", "more than 5,000,000"),
    (
        "stages-mixed",
        "load:\n  rate: 10/s\n  stages:\n    - {duration: 1s, rate: 20/s}\n    - {duration: 1s, concurrency: 3}\n",
        "load.stages",
        "same thing",
    ),
    ("stage-no-duration", "load:\n  rate: 10/s\n  stages:\n    - {rate: 20/s}\n", "load.stages[0].duration", "needs a duration"),
    ("stage-both", "load:\n  stages:\n    - {duration: 1s, rate: 20/s, concurrency: 2}\n", "load.stages[0].rate", "exactly one"),
    ("stage-neither", "load:\n  rate: 5/s\n  stages:\n    - {duration: 1s}\n", "load.stages[0].rate", "exactly one"),
    ("stage-unknown-key", "load:\n  rate: 5/s\n  stages:\n    - {duraton: 1s, rate: 5/s}\n", "load.stages[0].duraton", "did you mean 'duration'"),
    ("stages-no-time", "load:\n  rate: 5/s\n  stages:\n    - {duration: 0s, rate: 9/s}\n", "load.stages", "no time"),
    ("stages-empty", "load: {rate: 5/s, duration: 1s, stages: []}\n", "load.stages", "list"),
    ("stages-rate-with-concurrency", "load:\n  concurrency: 2\n  stages:\n    - {duration: 1s, rate: 9/s}\n", "load.stages", "load.rate"),
    ("stages-concurrency-with-rate", "load:\n  rate: 2/s\n  stages:\n    - {duration: 1s, concurrency: 9}\n", "load.stages", "load.concurrency"),
    ("workers-gt-concurrency", "load: {concurrency: 2, requests: 10, workers: 3}\n", "load.workers", "at most 2"),
    ("workers-gt-stage-peak", "load:\n  workers: 4\n  stages:\n    - {duration: 1s, concurrency: 3}\n", "load.workers", "at most 3"),
    ("workers-gt-max-in-flight", "load: {rate: 9/s, requests: 10, max_in_flight: 2, workers: 3}\n", "load.workers", "max_in_flight"),
    ("warmup-word", "load: {concurrency: 2, requests: 10, warmup: soon}\n", "load.warmup", "'soon'"),
    ("warmup-negative", "load: {concurrency: 2, requests: 10, warmup: -5}\n", "load.warmup", "at least 0"),
    ("warmup-bool", "load: {concurrency: 2, requests: 10, warmup: true}\n", "load.warmup", "True"),
    ("client-bool", "client: {keepalive: maybe}\n" + LOAD_OK, "client.keepalive", "true or false"),
    ("client-pool-zero", "client: {pool_size: 0}\n" + LOAD_OK, "client.pool_size", "at least 1"),
    ("name-not-string", "name: [a]\n" + LOAD_OK, "name", "string"),
    ("load-not-mapping", "load: 5\n", "load", "mapping"),
]


@pytest.mark.parametrize(("text", "field", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_profile(tmp_path, text, field, fragment):
    exc = expect_error(tmp_path, text)
    assert exc.field == field, str(exc)
    assert fragment in exc.message, str(exc)
    assert f": {field}: " in str(exc)


def test_sla_typo_suggests_a_percentile(tmp_path):
    exc = expect_error(tmp_path, "sla: {p96: 800ms}\n" + LOAD_OK)
    assert exc.field == "sla.p96"
    assert any(f"did you mean {name!r}" in exc.message for name in ("p90", "p95", "p99")), exc.message


def test_unknown_field_without_close_match_lists_valid_fields(tmp_path):
    exc = expect_error(tmp_path, "zzzzzz: 1\n" + LOAD_OK)
    assert exc.field == "zzzzzz"
    assert "valid fields:" in exc.message and "load" in exc.message


def test_yaml_syntax_error_reports_line_and_column(tmp_path):
    # Line 4 has a key followed by a second "key:" on the same line: column 14 is the offending ':'.
    text = "name: x\nload:\n  concurrency: 4\n  requests: a: 10\n"
    exc = expect_error(tmp_path, text)
    assert (exc.line, exc.column) == (4, 14)
    assert exc.field == ""
    assert "YAML syntax error" in exc.message
    assert str(exc).startswith(f"{tmp_path / 'profile.yaml'}:4:14: ")


def test_unclosed_flow_sequence_reports_a_location(tmp_path):
    exc = expect_error(tmp_path, "load:\n  concurrency: 4\n  requests: [1, 2\n")
    assert exc.line == 4 and exc.column == 1  # end of stream, after the last line
    assert "YAML syntax error" in exc.message


def test_top_level_list_is_rejected(tmp_path):
    exc = expect_error(tmp_path, "- load: {concurrency: 1}\n")
    assert exc.field == ""
    assert "mapping" in exc.message and "list" in exc.message


def test_top_level_scalar_is_rejected(tmp_path):
    exc = expect_error(tmp_path, "just a string\n")
    assert "mapping" in exc.message and "str" in exc.message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"], ids=["empty", "comment", "blank-lines"])
def test_empty_file_asks_for_a_load(tmp_path, text):
    # An empty profile is an empty mapping: the first thing missing is the load model.
    exc = expect_error(tmp_path, text)
    assert exc.field == "load.rate"
    assert "load.concurrency" in exc.message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.path == str(path) and "not found" in info.value.message


def test_profile_path_is_a_directory(tmp_path):
    with pytest.raises(ProfileError) as info:
        load_profile(tmp_path)
    assert "directory" in info.value.message


def test_malformed_ipv6_url_is_a_profile_error(tmp_path):
    exc = expect_error(tmp_path, "target: {url: 'http://[::1'}\n" + LOAD_OK)
    assert exc.field == "target.url"


@pytest.mark.parametrize("key", ["workers", "warmup"])
def test_unicode_digit_string_is_a_profile_error(tmp_path, key):
    exc = expect_error(tmp_path, f"load: {{concurrency: 4, requests: 10, {key}: '²'}}\n")
    assert exc.field == f"load.{key}"


# --------------------------------------------------------------------------- output paths


def test_output_in_missing_directory(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "r.json"
    exc = expect_error(tmp_path, LOAD_OK + f"output: {{json: '{missing}'}}\n")
    assert exc.field == "output.json"
    assert "does not exist" in exc.message


def test_output_path_is_a_directory(tmp_path):
    (tmp_path / "out").mkdir()
    exc = expect_error(tmp_path, LOAD_OK + f"output: {{csv: '{tmp_path / 'out'}'}}\n")
    assert exc.field == "output.csv"
    assert "is a directory" in exc.message


def test_output_paths_accepted(tmp_path):
    p = load_text(tmp_path, LOAD_OK + f"output: {{json: '{tmp_path / 'r.json'}', csv: '{tmp_path / 'r.csv'}'}}\n")
    assert p.output.json_path == tmp_path / "r.json"
    assert p.output.csv_path == tmp_path / "r.csv"


# --------------------------------------------------------------------------- values as understood


def test_error_rate_percent_and_fraction(tmp_path):
    p = load_text(tmp_path, "sla: {error_rate: '1%'}\n" + LOAD_OK)
    assert p.sla[0].threshold == 0.01
    assert (p.sla[0].metric, p.sla[0].op, p.sla[0].unit) == ("error_rate", "<=", "ratio")
    p = load_text(tmp_path, "sla: {error_rate: 0.25}\n" + LOAD_OK)
    assert p.sla[0].threshold == 0.25
    p = load_text(tmp_path, "sla: {error_rate: '0%'}\n" + LOAD_OK)
    assert p.sla[0].threshold == 0.0


def _sla_rule(tmp_path, name, value):
    text = f"sla: {{{name}: {value}}}\n" + LOAD_OK
    rule, *_default_error_rule = load_text(tmp_path, text).sla
    return rule


@pytest.mark.parametrize(
    ("name", "value", "metric", "op", "threshold"),
    [
        ("p95", "800ms", "p95", "<=", 800.0),
        ("p99", "1.5s", "p99", "<=", 1500.0),
        ("max", "500us", "max", "<=", 0.5),
        ("p99.9", "2s", "p99.9", "<=", 2000.0),
        ("mean", "40ms", "mean", "<=", 40.0),
        ("min_rps", "30/m", "rps", ">=", 0.5),
        ("min_rps", "180", "rps", ">=", 180.0),
    ],
)
def test_sla_rules(tmp_path, name, value, metric, op, threshold):
    rule = _sla_rule(tmp_path, name, value)
    assert (rule.name, rule.metric, rule.op, rule.unit) == (name, metric, op, SLA_METRICS[name][2])
    assert rule.threshold == pytest.approx(threshold, rel=1e-12)


@pytest.mark.parametrize("value, ms", [("4007ms", 4007.0), ("32.3s", 32300.0), ("4015000us", 4015.0)])
def test_sla_threshold_is_exact_and_equal_value_passes(tmp_path, value, ms):
    rule = _sla_rule(tmp_path, "p95", value)
    verdict = evaluate({"latency": {"p95": ms, "count": 100}, "requests": {"completed": 100}}, [rule])
    assert rule.threshold == ms
    assert verdict.passed


@pytest.mark.parametrize(
    ("warmup", "requests", "seconds"),
    [
        ("5s", 0, 5.0),
        ("250ms", 0, 0.25),
        (50, 50, 0.0),
        ("'50'", 50, 0.0),  # a quoted count is still a count
        (0, 0, 0.0),
    ],
)
def test_warmup(tmp_path, warmup, requests, seconds):
    p = load_text(tmp_path, f"load: {{concurrency: 2, requests: 10, warmup: {warmup}}}\n")
    assert (p.load.warmup_requests, p.load.warmup_s) == (requests, seconds)


def test_no_warmup(tmp_path):
    p = load_text(tmp_path, LOAD_OK)
    assert (p.load.warmup_requests, p.load.warmup_s) == (0, 0.0)


def test_body_mapping_is_json_with_content_type(tmp_path):
    p = load_text(
        tmp_path,
        "target:\n  method: post\n  body: {model: m, n: 3, tags: [a, b], ok: true}\n" + LOAD_OK,
    )
    assert p.target.method == "POST"
    assert p.target.body == orjson.dumps({"model": "m", "n": 3, "tags": ["a", "b"], "ok": True})
    assert orjson.loads(p.target.body) == {"model": "m", "n": 3, "tags": ["a", "b"], "ok": True}
    assert ("Content-Type", "application/json") in p.target.headers
    assert p.resolved["target"]["body_bytes"] == len(p.target.body)


def test_body_mapping_keeps_users_content_type(tmp_path):
    p = load_text(tmp_path, "target:\n  headers: {content-type: application/x-ndjson}\n  body: {a: 1}\n" + LOAD_OK)
    assert p.target.headers == (("content-type", "application/x-ndjson"),)


def test_body_string_sent_as_is(tmp_path):
    p = load_text(tmp_path, "target:\n  body: 'a=1&b=é {x}'\n" + LOAD_OK)
    assert p.target.body == "a=1&b=é {x}".encode("utf-8")
    assert all(k.lower() != "content-type" for k, _ in p.target.headers)


def test_headers_values_become_strings(tmp_path):
    p = load_text(tmp_path, "target:\n  headers: {X-N: 5, X-B: true, Accept: text/plain}\n" + LOAD_OK)
    assert dict(p.target.headers) == {"X-N": "5", "X-B": "true", "Accept": "text/plain"}


def test_defaults_closed_loop(tmp_path):
    p = load_text(tmp_path, LOAD_OK)
    assert p.name == "profile"  # from the file name
    assert p.target.url is None and p.uses_mock and p.mock is not None
    assert (p.target.method, p.target.body, p.target.timeout_s) == ("GET", None, 30.0)
    assert (p.load.model, p.load.concurrency, p.load.rate_per_s, p.load.requests) == (CLOSED_LOOP, 4, None, 10)
    assert 1 <= p.load.workers <= 4  # never more workers than in-flight requests
    assert p.load.peak_concurrency == 4
    assert p.sla == ()


def test_open_loop(tmp_path):
    p = load_text(tmp_path, "load: {rate: 30/m, duration: 2m, arrival: poisson, seed: 9, workers: 2}\n")
    assert (p.load.model, p.load.rate_per_s, p.load.duration_s, p.load.arrival, p.load.seed) == (OPEN_LOOP, 0.5, 120.0, "poisson", 9)
    assert p.load.concurrency is None and p.load.workers == 2


def test_concurrency_stages_start_at_zero(tmp_path):
    p = load_text(tmp_path, "load:\n  stages:\n    - {duration: 2s, concurrency: 6}\n    - {duration: 0s, concurrency: 2}\n")
    assert p.load.model == CLOSED_LOOP
    assert p.load.concurrency == 0
    assert p.load.peak_concurrency == 6
    assert [(s.duration_s, s.target) for s in p.load.stages] == [(2.0, 6.0), (0.0, 2.0)]


def test_url_target_has_no_mock(tmp_path):
    p = load_text(tmp_path, "target: {url: 'https://example.com:8443/v1'}\n" + LOAD_OK)
    assert p.target.url == "https://example.com:8443/v1"
    assert p.mock is None and not p.uses_mock
    assert p.resolved["mock"] is None


def test_parse_profile_without_file():
    p = parse_profile({"load": {"rate": 5, "requests": 3}}, source="<cli>")
    assert (p.name, p.source, p.load.rate_per_s) == ("profile", "<cli>", 5.0)
    with pytest.raises(ProfileError) as info:
        parse_profile({"load": {"rate": 5}}, source="<cli>")
    assert str(info.value).startswith("<cli>: load.requests: ")


# --------------------------------------------------------------------------- command-line overrides

CLOSED = "load: {concurrency: 4, requests: 100, warmup: 5}\nmock: {seed: 3}\n"
OPEN = "load: {rate: 50/s, duration: 10s}\nmock: {seed: 3}\n"


def test_override_names_are_dotted_fields():
    assert set(OVERRIDE_FIELDS) == {
        "workers", "concurrency", "rate", "requests", "duration", "url", "method", "header", "body", "timeout", "sla",
        "json", "csv", "hlog", "junit", "html", "chunks", "engine", "ray_address", "on_worker_failure", "repeat",
        "metrics_port", "metrics_linger", "otlp",
    }  # fmt: skip
    assert all(v.count(".") == 1 for v in OVERRIDE_FIELDS.values())


def test_override_rate_switches_closed_to_open(tmp_path):
    p = load_text(tmp_path, CLOSED, {"rate": "100/s"})
    assert p.load.model == OPEN_LOOP
    assert (p.load.rate_per_s, p.load.concurrency) == (100.0, None)
    assert p.load.requests == 100 and p.load.warmup_requests == 5  # the rest of the profile stays


def test_override_rate_drops_concurrency_stages(tmp_path):
    text = "load:\n  concurrency: 2\n  stages:\n    - {duration: 3s, concurrency: 8}\n"
    p = load_text(tmp_path, text, {"rate": 20, "duration": "3s"})
    assert (p.load.model, p.load.rate_per_s, p.load.stages, p.load.duration_s) == (OPEN_LOOP, 20.0, (), 3.0)


def test_override_concurrency_switches_open_to_closed(tmp_path):
    p = load_text(tmp_path, OPEN, {"concurrency": 5})
    assert p.load.model == CLOSED_LOOP
    assert (p.load.concurrency, p.load.rate_per_s) == (5, None)
    assert p.load.duration_s == 10.0


def test_override_concurrency_on_shipped_open_loop_profile(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    p = load_profile(PROFILES_DIR / "open-loop.yaml", {"concurrency": 5})
    assert (p.load.model, p.load.concurrency) == (CLOSED_LOOP, 5)


def test_override_url_drops_mock(tmp_path):
    p = load_text(tmp_path, CLOSED, {"url": "http://127.0.0.1:9/"})
    assert p.target.url == "http://127.0.0.1:9/"
    assert p.mock is None and not p.uses_mock


def test_override_url_is_validated(tmp_path):
    exc = expect_error(tmp_path, CLOSED, {"url": "ftp://x"})
    assert exc.field == "target.url"


def test_override_none_values_ignored(tmp_path):
    overrides = {name: None for name in OVERRIDE_FIELDS}
    p = load_text(tmp_path, CLOSED, overrides)
    q = load_text(tmp_path, CLOSED)
    assert p.resolved == q.resolved
    assert p.load.concurrency == 4 and p.mock is not None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"workers": 0}, "load.workers"),
        ({"workers": "many"}, "load.workers"),
        ({"workers": 9}, "load.workers"),  # more than concurrency 4
        ({"requests": 0}, "load.requests"),
        ({"duration": "soon"}, "load.duration"),
        ({"rate": "fast"}, "load.rate"),
        ({"concurrency": 0}, "load.concurrency"),
        ({"threads": 3}, "threads"),  # not an override name
    ],
)
def test_bad_override(tmp_path, overrides, field):
    exc = expect_error(tmp_path, CLOSED, overrides)
    assert exc.field == field, str(exc)
    (name,) = overrides
    if name in OVERRIDE_FIELDS:  # the message names the flag, not the profile file that did not say it
        assert str(exc).startswith(f"--{name}: ") and "profile.yaml" not in str(exc), str(exc)


@pytest.mark.parametrize("name", ["json", "csv"])
def test_override_output_in_missing_directory(tmp_path, name):
    exc = expect_error(tmp_path, CLOSED, {name: str(tmp_path / "missing" / f"r.{name}")})
    assert exc.field == f"output.{name}"


def test_override_values_applied(tmp_path):
    p = load_text(
        tmp_path,
        CLOSED,
        {"workers": 2, "requests": 7, "duration": "1m", "json": str(tmp_path / "r.json"), "csv": str(tmp_path / "r.csv")},
    )
    assert (p.load.workers, p.load.requests, p.load.duration_s) == (2, 7, 60.0)
    assert (p.output.json_path, p.output.csv_path) == (tmp_path / "r.json", tmp_path / "r.csv")


def test_override_does_not_mutate_profile_text(tmp_path):
    path = write(tmp_path, CLOSED)
    load_profile(path, {"rate": "10/s", "url": "http://127.0.0.1:9/"})
    again = load_profile(path)
    assert again.load.model == CLOSED_LOOP and again.mock is not None

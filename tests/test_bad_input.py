"""Bad input ends in a clear error (exit code 2 on the command line), never in a traceback.

Property-based tests (hypothesis) feed the profile loader random YAML-able
structures built from the real field names, mutations of every shipped
profile, random bytes and mutated YAML text, and random command-line override
values; and they feed ``bench compare`` / ``bench report`` truncated, foreign
and mutated JSON reports and corrupt histograms. The only outcomes allowed: a
valid result, or the loader's own error naming the file (``ProfileError``,
``CompareError``, ``ReportInputError``; exit code 2 on the command line). Any
other exception fails the test, and hypothesis shrinks it to a minimal input.

The in-process tests run many examples with a fixed seed (``derandomize=True``,
no example database), so CI sees the same inputs on every run; a handful of
subprocess runs (marked slow) check the real command's exit code and stderr.
The safety tests check that profiles are parsed with a safe YAML loader and
that ``{{...}}`` templates are dataset placeholders, never code.

Inputs that once crashed bench (found by these tests) are kept at the end as
regression tests with the minimal input. The strategies still stay clear of
some of them (integers beyond float range, ``[`` in strings that reach a rich
console, very long output paths) so that the properties exercise everything
else; the regression tests cover those.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

import bench
from bench.cli import html_report, render
from bench.cli.app import app
from bench.engine.results.compare import CompareError, comparability, compare, load_run, parse_bounds, regressions
from bench.engine.errors import ProfileError
from bench.engine.plan.profile import (
    GOODPUT_FIELDS,
    KIND_FIELDS,
    OUTPUT_FIELDS,
    SLA_METRICS,
    SLA_OPTIONS,
    TARGET_FIELDS,
    Profile,
    load_profile,
    load_scenarios,
    parse_profile,
)
from bench.engine.plan.requests import prepare, render as render_template
from bench.mock.config import LATENCY_MODELS, OPENAI_QUIRKS

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"
SHIPPED = sorted(PROFILES.glob("*.yaml"))
SHIPPED_TEXT = {p.name: p.read_text(encoding="utf-8") for p in SHIPPED}
SHIPPED_DOCS = {name: yaml.safe_load(text) for name, text in SHIPPED_TEXT.items()}


def fuzz(examples: int) -> settings:
    """Reproducible in CI: the same examples every run, nothing remembered between runs."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------- a scratch directory to run in

_SCRATCH: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def work(tmp_path_factory) -> Iterator[Path]:
    """Every test runs in one scratch directory holding a copy of profiles/data (shipped profiles read
    data/prompts.jsonl relative to themselves; relative output paths are checked against the cwd)."""
    directory = tmp_path_factory.mktemp("bad-input")
    shutil.copytree(PROFILES / "data", directory / "data")
    old = os.getcwd()
    os.chdir(directory)
    _SCRATCH.append(directory)
    try:
        yield directory
    finally:
        os.chdir(old)
        _SCRATCH.remove(directory)


def scratch() -> Path:
    """The scratch directory inside @given tests (module fixtures cannot be passed to them cleanly)."""
    return _SCRATCH[-1]


# --------------------------------------------------------------------------- field names, as the loader knows them

# Sections whose field names the loader keeps inside its functions (docs/profiles.md lists the same);
# test_field_names_are_the_loaders checks that each one is accepted.
TOP_FIELDS = ("name", "description", "strict", "target", "request_kinds", "data", "goodput", "mock", "load", "client", "sla", "output", "compare")
LOAD_FIELDS = ("workers", "concurrency", "rate", "arrival", "seed", "max_in_flight", "requests", "duration", "warmup", "stages")
CLIENT_FIELDS = ("transport", "pool_size", "keepalive", "connect_timeout", "tls_verify")
DATA_FIELDS = ("file", "order", "seed", "synthetic")
SYNTHETIC_FIELDS = ("count", "prompt_tokens", "max_tokens")
CHECK_FIELDS = ("status", "body_contains", "body_regex", "json_path", "json_equals", "json_exists")
STAGE_FIELDS = ("duration", "rate", "concurrency")
WINDOW_FIELDS = ("window", "abort_on_fail", "grace")
MOCK_FIELDS = ("latency", "errors", "body_bytes", "seed", "stall", "openai")
LATENCY_FIELDS = ("model",) + tuple(dict.fromkeys(k for keys in LATENCY_MODELS.values() for k in keys))
MOCK_ERROR_FIELDS = ("rate", "statuses", "status")
STALL_FIELDS = ("at", "every", "duration", "after_tokens", "rate")
OPENAI_FIELDS = ("ttft", "inter_token", "output_tokens", "slots", "queue", "slowdown", "errors", "disconnect_rate", "stall", "quirks")
SECTION_FIELDS: dict[str, tuple[str, ...]] = {
    "target": TARGET_FIELDS,
    "data": DATA_FIELDS,
    "goodput": GOODPUT_FIELDS,
    "mock": MOCK_FIELDS,
    "load": LOAD_FIELDS,
    "client": CLIENT_FIELDS,
    "sla": tuple(SLA_METRICS) + SLA_OPTIONS,
    "output": OUTPUT_FIELDS,
    "compare": ("fail_on_regression",),
}
# Synthetic dataset sizes are left out of the free-form keys: a huge count or prompt size makes the
# loader generate that many rows or words (a hang, reported with the bugs below), not an error.
ALL_FIELDS = sorted(
    set(TOP_FIELDS + KIND_FIELDS + CHECK_FIELDS + STAGE_FIELDS + WINDOW_FIELDS + LATENCY_FIELDS + MOCK_ERROR_FIELDS + STALL_FIELDS)
    | set(OPENAI_FIELDS + OPENAI_QUIRKS + ("min", "max", "fixed", "scenarios"))
    | {f for fields in SECTION_FIELDS.values() for f in fields}
)
FREE_KEYS = [k for k in ALL_FIELDS if k not in SYNTHETIC_FIELDS]


def test_field_names_are_the_loaders():
    """The hand-kept field lists above are names the loader accepts, so the fuzzing reaches past the key check."""
    base = {"load": {"concurrency": 1, "requests": 1}}
    for section, fields in {**SECTION_FIELDS, "": TOP_FIELDS, "data.synthetic": SYNTHETIC_FIELDS}.items():
        for name in fields:
            if section == "":
                data = {**base, name: None}
            elif section == "data.synthetic":
                data = {**base, "data": {"synthetic": {name: None}}}
            else:
                data = {**base, section: {**base.get(section, {}), name: None}}
            try:
                parse_profile(data, source="fields.yaml")
            except ProfileError as exc:
                assert "unknown field" not in exc.message, (section, name, str(exc))


# --------------------------------------------------------------------------- value strategies

# Integers past float range (about 1.8e308) crash the loaders and the report page; see the xfail tests.
HUGE = 10**300
SMALL_INTS = st.integers(-3, 64)
INTS = st.one_of(SMALL_INTS, st.sampled_from([0, -1, -(2**31), 2**31, 2**63, 10**18, HUGE, -HUGE]), st.integers(-HUGE, HUGE))
FLOATS = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 0.5]))
SPECIAL_TEXT = [
    "", " ", "\t", "\n", "a\r\nb", "\x00", "\x1b", "\u2028", "\ufeff", "\ud800", "é", "ß", "İ", "\u202e", "😀", "日本語",
    "NaN", "Infinity", "-inf", "null", "~", "yes", "on", "0x10", "0o17", "1_000", "1:30", "1e3", "-0",
    "{{prompt}}", "{{ prompt }}", "{{missing}}", "{{__import__('os').system('touch PWNED')}}", "{{ open('x') }}",
    "${HOME}", "$(touch PWNED)", "`touch PWNED`", "%s%n", "'; DROP TABLE x; --", "../../etc/passwd", "/etc/passwd",
    "a" * 200,
]
UNIT_TEXT = [
    "250ms", "1s", "30s", "2m", "1h", "500us", "5µs", "10ns", "0s", "0", "0.5", ".5s", "1.5s", "5 s", "-1s", "1e400s", "1e-400s",
    "5sec", "1d", "100/s", "30/m", "2/ms", "5/h", "10 / second", "0/s", "-5/s", "1e400/s", "1e-400/s", "10/fortnight",
    "1%", "0.5%", "100%", "150%", "-1%", "%", "x%", "1e400%", "nan%", "nan", "inf", "1e400",
]
ENUM_TEXT = [
    "GET", "POST", "put", "DELETE", "HEAD", "OPTIONS", "TRACE", "aiohttp", "fast", "h2", "h3", "constant", "poisson", "uniform",
    "openai-chat", "openai-completions", "openai", "sequential", "shuffle", "weighted", *LATENCY_MODELS, "gaussian",
    "p95=10%", "error_rate=0.5pp,p99=20ms", "rps=5%", "p95", "x=1", "p95=10pp", "rps=5ms", "p95=-1%",
]
URL_TEXT = [
    "http://127.0.0.1:8000/v1/generate", "https://example.invalid/x", "http://[::1]:80/", "https://[::1", "http://h:99999/",
    "http://h:port/", "ftp://h/", "http://", "//h/x", "h:80", "http://user:pw@h/", "http://h/\x00", "http://h/ x\n",
]
PATH_TEXT = [
    "data/prompts.jsonl", "./data/prompts.jsonl", "data/../data/prompts.jsonl", "missing.jsonl", "rows.csv", "data", "data/",
    "/etc/passwd", "../../etc/passwd", "/dev/null.jsonl", "data/prompts.JSONL", "x.ndjson", "\x00.jsonl",
    "out.json", "nodir/out.json", ".", "/", "{scenario}.json", "/proc/out.json", "\x00.json", "é.json",
]
TEXT = st.one_of(st.text(max_size=16), st.sampled_from(SPECIAL_TEXT))
PLAUSIBLE = st.one_of(
    st.sampled_from(UNIT_TEXT), st.sampled_from(ENUM_TEXT), st.sampled_from(URL_TEXT), st.sampled_from(PATH_TEXT), SMALL_INTS, st.booleans()
)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT, PLAUSIBLE)
KEYS = st.one_of(st.sampled_from(FREE_KEYS), TEXT, SMALL_INTS, st.none(), st.booleans())
ANY = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)
SMALL_SIZE = st.one_of(st.integers(-2, 40), st.sampled_from([None, "10", 1.5, "x", True, [], {}]))


def synthetic_value(name: str) -> st.SearchStrategy[Any]:
    """Synthetic dataset sizes: small ones (generated) and huge ones (refused at once, never generated)."""
    sizes = st.one_of(SMALL_SIZE, st.sampled_from([100_001, 10**9, 10**18]))
    if name == "count":
        return sizes
    return st.one_of(sizes, st.fixed_dictionaries({}, optional={"min": SMALL_SIZE, "max": sizes}))


def section(fields: tuple[str, ...], value=None) -> st.SearchStrategy[dict]:
    """A mapping with any subset of ``fields`` (each a plausible or random value), sometimes a stray key."""
    value = value or field_value
    known = st.fixed_dictionaries({}, optional={name: st.deferred(lambda name=name: value(name)) for name in fields})
    stray = st.dictionaries(st.one_of(TEXT, st.sampled_from(FREE_KEYS)), SCALARS, max_size=1)
    return st.builds(lambda a, b: {**a, **b} if b and not set(b) & set(a) else a, known, st.one_of(st.just({}), stray))


def field_value(name: str) -> st.SearchStrategy[Any]:
    """Values for a field: shaped like what the field takes (nested sections too), or anything at all."""
    nested = {
        "stages": st.lists(section(STAGE_FIELDS), max_size=3),
        "windows": st.lists(
            st.builds(lambda m, w: {**m, **w}, st.dictionaries(st.sampled_from(sorted(SLA_METRICS)), PLAUSIBLE, min_size=1, max_size=2), section(WINDOW_FIELDS)),
            max_size=2,
        ),
        "latency": section(LATENCY_FIELDS),
        "ttft": section(LATENCY_FIELDS),
        "inter_token": section(LATENCY_FIELDS),
        "percentiles": st.dictionaries(st.one_of(st.integers(-1, 101), st.sampled_from(["p50", "99.9", "x"]), FLOATS), PLAUSIBLE, max_size=4),
        "openai": section(OPENAI_FIELDS),
        "quirks": section(OPENAI_QUIRKS),
        "errors": section(MOCK_ERROR_FIELDS),
        "stall": section(STALL_FIELDS),
        "output_tokens": st.one_of(section(("min", "max", "fixed")), SMALL_INTS),
        "synthetic": section(SYNTHETIC_FIELDS, value=synthetic_value),
        "checks": section(CHECK_FIELDS),
        "status": st.one_of(st.integers(99, 600), st.lists(st.integers(99, 600), max_size=3)),
        "statuses": st.lists(st.integers(99, 600), max_size=3),
        "body_regex": st.sampled_from(["ok", "^\\{", "(", "[", "a{2,1}", "(?P<x>", ".*", "\\"]),
        "json_path": st.sampled_from(["choices.0.message.content", "a.-1", "", "."]),
        "headers": st.dictionaries(st.one_of(TEXT, st.sampled_from(["Accept", "Authorization", "Content-Type", "X Y", "a:b", ""])), SCALARS, max_size=3),
        "body": st.one_of(st.dictionaries(TEXT, st.one_of(TEXT, SCALARS), max_size=3), st.lists(SCALARS, max_size=3), TEXT),
        "request_kinds": st.lists(section(KIND_FIELDS), max_size=3),
    }
    if name in SYNTHETIC_FIELDS:
        return synthetic_value(name)
    shaped = nested.get(name, PLAUSIBLE)
    return st.one_of(shaped, shaped, SCALARS, ANY)


def top_value(name: str) -> st.SearchStrategy[Any]:
    if name in SECTION_FIELDS:
        return st.one_of(section(SECTION_FIELDS[name]), section(SECTION_FIELDS[name]), ANY)
    return field_value(name)


PROFILE_DATA = section(TOP_FIELDS, value=top_value)


# --------------------------------------------------------------------------- the property every loader must keep


def expect_profiles_or_error(call, source: str) -> list[Profile] | None:
    """Run ``call``: it returns profiles or raises a ProfileError naming ``source``. Anything else propagates (and fails)."""
    try:
        result = call()
    except ProfileError as exc:
        assert exc.path == source, (exc.path, source)
        assert str(exc).startswith(exc.flag or source), str(exc)  # a flag's problem names the flag
        return None
    profiles = result if isinstance(result, list) else [result]
    assert profiles and all(isinstance(p, Profile) for p in profiles), result
    return profiles


def write_profile(content: str | bytes, name: str = "fuzzed.yaml") -> Path:
    path = scratch() / name
    path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    return path


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


# --------------------------------------------------------------------------- (a) random structures with the real field names


@fuzz(200)
@given(PROFILE_DATA)
@example({"load": {"concurrency": 2, "requests": 5}})
@example({"load": {"rate": "1e400/s", "requests": 1}})
@example({"load": {"concurrency": 1, "requests": 1}, "sla": {"windows": [{"p95": 1, "window": 0.5}]}})
@example({"load": {"stages": [{"duration": 0, "rate": 5}]}})
@example({"load": {"concurrency": 1, "requests": 1}, "request_kinds": [{"weight": -1}]})
@example({"load": {"concurrency": 1, "requests": 1}, "target": {"body": {"a": b"bytes", 1: 2}}})
@example({"load": {"concurrency": 1, "requests": 1}, "mock": {"latency": {"model": "lognormal", "median": 1e-320, "p95": 1}}})
def test_random_structures_load_or_fail_cleanly(data):
    source = str(scratch() / "random.yaml")
    expect_profiles_or_error(lambda: parse_profile(data, source=source), source)


# --------------------------------------------------------------------------- (b) mutations of every shipped profile

MUTANT_VALUES = st.one_of(
    st.sampled_from([HUGE, -HUGE, 10**18, 1e308, -1e308, -1, -0.5, 0, math.nan, math.inf, -math.inf, "", " ", "é", "😀", "\u202e", "\x00", None, True, [], {}]),
    SCALARS,
    ANY,
)


def _containers(value: Any, path: tuple = ()):
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(item, (dict, list)):
            yield from _containers(item, path + (key,))


def _slots(value: Any):
    """Every place a mutation can land: (path of the container, container, key or index)."""
    for where, box in _containers(value):
        for key in list(box) if isinstance(box, dict) else range(len(box)):
            yield where, box, key


# Numbers at the edges: huge, negative, zero, not finite, denormal (all below float range: see HUGE).
EDGE_NUMBERS = st.one_of(
    st.sampled_from([HUGE, -HUGE, 10**18, 2**63, -(2**63), -1, 0, -0.5, 1e308, -1e308, math.nan, math.inf, -math.inf, 5e-324]), INTS, FLOATS
)


def _other_type(value: Any) -> st.SearchStrategy[Any]:
    """A value of another type than ``value``: "30s" -> 30, 20 -> "20", true -> "true", a mapping -> a list ..."""
    if isinstance(value, str):
        return st.one_of(st.just([value]), st.just({value: value}), INTS, FLOATS, st.booleans(), st.none())
    if isinstance(value, bool):
        return st.sampled_from([str(value).lower(), int(value), "yes", None, [value]])
    if isinstance(value, (int, float)):
        return st.sampled_from([str(value), f"{value}s", [value], {"value": value}, bool(value), None, -value, value * 10**6])
    if isinstance(value, list):
        return st.one_of(st.just({"items": value}), st.just(value[0] if value else None), TEXT, SMALL_INTS)
    if isinstance(value, dict):
        return st.one_of(st.just(list(value.items())), st.just(list(value)), TEXT, SMALL_INTS, st.none())
    return SCALARS


@st.composite
def mutated_documents(draw) -> tuple[str, Any]:
    """A shipped profile with one to three mutations: drop, replace (by anything, or by an edge number), retype,
    rename, add, wrap or unicode-poison a field anywhere in it."""
    name = draw(st.sampled_from(sorted(SHIPPED_DOCS)))
    doc = copy.deepcopy(SHIPPED_DOCS[name])
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "replace", "number", "number", "retype", "rename", "add", "wrap", "unicode"]))
        slots = list(_slots(doc))
        if op == "add" or not slots:
            where, box = draw(st.sampled_from(list(_containers(doc))))
            # Inside data.synthetic every number stays small (a huge size is generated, not refused: see synthetic_value).
            small = any(part in SYNTHETIC_FIELDS or part == "synthetic" for part in where)
            if isinstance(box, dict):
                key = draw(st.one_of(st.sampled_from(FREE_KEYS), TEXT))
                box[key] = draw(SMALL_SIZE if small else field_value(key) if isinstance(key, str) else MUTANT_VALUES)
            else:
                box.append(draw(SMALL_SIZE if small else MUTANT_VALUES))
            continue
        where, box, key = draw(st.sampled_from(slots))
        small = any(part in SYNTHETIC_FIELDS or part == "synthetic" for part in (*where, key))
        if op == "drop":
            del box[key]
        elif op == "replace":
            box[key] = draw(SMALL_SIZE if small else MUTANT_VALUES)
        elif op == "number":
            box[key] = draw(SMALL_SIZE if small else EDGE_NUMBERS)
        elif op == "retype":
            box[key] = draw(SMALL_SIZE if small else _other_type(box[key]))
        elif op == "wrap":
            box[key] = draw(st.sampled_from([[box[key]], {"value": box[key]}, {key: box[key]}]))
        elif op == "rename" and isinstance(box, dict):
            text = str(key)
            new = draw(st.one_of(st.sampled_from(FREE_KEYS), TEXT, st.sampled_from([text.upper(), text + "s", text[:-1], " " + text, text.replace("o", "ο"), 1])))
            value = box.pop(key)
            box[new] = value
        elif op == "unicode":
            value = box[key]
            if isinstance(value, str):
                at = draw(st.integers(0, len(value)))
                box[key] = value[:at] + draw(st.sampled_from(["é", "\u200b", "\u202e", "😀", "\x00", "\ud800", "İ"])) + value[at:]
            elif isinstance(box, dict):
                box[str(key) + draw(st.sampled_from(["\u200b", "é", "\xa0"]))] = box.pop(key)
    return name, doc


@fuzz(300)
@given(mutated_documents())
def test_mutated_shipped_profiles_load_or_fail_cleanly(case):
    _, doc = case
    path = write_profile(dump(doc))
    expect_profiles_or_error(lambda: load_scenarios(path), str(path))


def test_every_shipped_profile_loads_here():
    """The mutations start from profiles that load (in the scratch directory, data/ copied beside them)."""
    for name, text in SHIPPED_TEXT.items():
        path = write_profile(text, name)
        assert expect_profiles_or_error(lambda: load_scenarios(path), str(path)), name


# --------------------------------------------------------------------------- (c) random bytes and random YAML text

# No scalar here fails after parsing (e.g. !!int abc or 2001-02-30): those are bugs, tested below.
YAML_SNIPPETS = [
    '!!python/object/apply:os.system ["touch PWNED"]', "!!python/name:os.system", "!!python/object/new:os.system [x]",
    "!!python/module:os", "!include /etc/passwd", "!!binary aGk=", "!!set {a, b}", "!!omap [a: 1]", "!!str", "!!null ''",
    "!!map {}", "!!seq []", "!<tag:yaml.org,2002:str> x", "!local x",
    "&a [1, 2]", "*a", "*undefined", "<<: *a", "<<: {a: 1}", "<<: 1", "<<: [1]",
    "a: &x [y, y, y]\nb: &y [*x, *x, *x]\nc: &z [*y, *y, *y]\nd: [*z, *z, *z]\n",
    "---", "...", "--- !!map", "%YAML 1.1\n---\n", "%YAML 9.9\n---\n", "%TAG ! tag:x,2000:\n---\n", "? [a]\n: b", "? {a: 1}\n: b",
    "{", "}", "[", "]", ":", ": ", "- ", "-", "#", "|", ">", '"', "'", "\\", "\t", "\n", "  ", "\r\n", "\x00", "\x85", "\u2028",
    "\ufeff", "\x1b[31m", "load:", "  concurrency: 1", "requests: 1", "load: {concurrency: 2, requests: 3}\n",
    "target: {url: 'http://127.0.0.1:1/'}\n", "sla: {p95: 1s}\n", "scenarios: {a: {}, b: null}\n", "name: x\nname: y\n",
    "1e400", ".nan", ".inf", "-.inf", "0x1f", "0o17", "0b101", "1_000", "1:30", "2001-12-14", "~", "null", "yes", "on",
    "'it''s'", '"\\u00e9\\ud800\\x00"', "{{prompt}}", "{{__import__('os').system('touch PWNED')}}",
]
YAML_TEXT = st.lists(st.one_of(st.sampled_from(YAML_SNIPPETS), st.text(max_size=8)), max_size=12).map("".join)


@st.composite
def mutated_texts(draw) -> bytes:
    """A shipped profile's text, cut, spliced, duplicated, re-indented, or with a byte broken (invalid UTF-8)."""
    text = SHIPPED_TEXT[draw(st.sampled_from(sorted(SHIPPED_TEXT)))]
    for _ in range(draw(st.integers(1, 3))):
        lines = text.split("\n")
        op = draw(st.sampled_from(["truncate", "delete", "insert", "duplicate", "swap", "indent", "char"]))
        at = draw(st.integers(0, len(text)))
        if op == "truncate":
            text = text[:at]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif op == "insert":
            text = text[:at] + draw(st.one_of(st.sampled_from(YAML_SNIPPETS), st.text(max_size=6))) + text[at:]
        elif op == "duplicate":
            i = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])
        elif op == "swap":
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif op == "indent":
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = draw(st.sampled_from(["", " ", "   ", "\t"])) + lines[i].lstrip(" " if draw(st.booleans()) else "")
            text = "\n".join(lines)
        else:
            text = text[:at] + draw(st.characters()) + text[at + 1 :]
    raw = text.encode("utf-8", "surrogatepass")
    if raw and draw(st.booleans()):
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0x80, 0xFF))]) + raw[at + 1 :]
    return raw


@fuzz(150)
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=40).map(lambda b: b"load: " + b)))
@example(b"\xff\xfe\x00l\x00o")
@example(b"\xef\xbb\xbfload: {concurrency: 1, requests: 1}\n")
@example("load: {concurrency: 1, requests: 1}\n".encode("utf-16"))
def test_random_bytes_load_or_fail_cleanly(raw):
    path = write_profile(raw)
    expect_profiles_or_error(lambda: load_scenarios(path), str(path))


@fuzz(300)
@given(YAML_TEXT)
def test_random_yaml_text_loads_or_fails_cleanly(text):
    path = write_profile(text)
    expect_profiles_or_error(lambda: load_scenarios(path), str(path))
    assert not (scratch() / "PWNED").exists()


@fuzz(300)
@given(mutated_texts())
def test_mutated_shipped_text_loads_or_fails_cleanly(raw):
    path = write_profile(raw)
    expect_profiles_or_error(lambda: load_scenarios(path), str(path))


# --------------------------------------------------------------------------- command-line values, in process

# Values as the CLI passes them: typer makes --workers/--concurrency/--requests ints, the rest strings.
CLI_INTS = st.one_of(st.integers(-3, 70), st.sampled_from([0, -1, 2**63, 10**30]))
CLI_TEXT = st.one_of(st.sampled_from(UNIT_TEXT), st.sampled_from(URL_TEXT), st.sampled_from(PATH_TEXT), st.text(max_size=12))
OVERRIDES = st.fixed_dictionaries(
    {},
    optional={
        "workers": CLI_INTS,
        "concurrency": CLI_INTS,
        "requests": CLI_INTS,
        "rate": CLI_TEXT,
        "duration": CLI_TEXT,
        "url": CLI_TEXT,
        "json": CLI_TEXT,
        "csv": CLI_TEXT,
        "hlog": CLI_TEXT,
        "junit": CLI_TEXT,
    },
)


@fuzz(250)
@given(st.sampled_from(sorted(SHIPPED_TEXT)), OVERRIDES, st.one_of(st.none(), st.sampled_from(["baseline", "optimized", "optimised", ""]), TEXT))
@example("sla.yaml", {"rate": "abc"}, None)
@example("compare.yaml", {"workers": 10**30}, "baseline")
@example("ramp.yaml", {"concurrency": 0}, None)
def test_command_line_overrides_load_or_fail_cleanly(name, overrides, only):
    path = write_profile(SHIPPED_TEXT[name], name)
    expect_profiles_or_error(lambda: load_scenarios(path, overrides, only=only), str(path))


def _no_markup(value: Any) -> bool:
    """No "[" in any string: rich reads "[/...]" in an error message as markup and crashes (bug, xfail below)."""
    if isinstance(value, str):
        return "[" not in value
    if isinstance(value, dict):
        return all(_no_markup(k) and _no_markup(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_no_markup(v) for v in value)
    return True


def invoke(*args: str):
    """The real command in process (typer's runner): returns its exit code, stdout and stderr; a traceback fails."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@fuzz(120)
@given(mutated_documents())
def test_validate_command_exits_0_or_2(case):
    _, doc = case
    assume(_no_markup(doc))
    path = write_profile(dump(doc), "cli.yaml")
    code, out, err = invoke("validate", str(path))
    assert code in (0, 2), (code, out, err)
    if code == 2:
        assert err.startswith(f"error: {path}"), err
        assert "Traceback" not in err
    else:
        assert "valid" in out


# --------------------------------------------------------------------------- a real report, and what breaks it


@pytest.fixture(scope="module")
def real_report(work) -> Path:
    """One short real run: closed loop, 20 requests against the bundled mock, an SLA to show."""
    out = work / "real-report.json"
    profile = work / "tiny.yaml"
    profile.write_text(
        "name: tiny\n"
        "target: {method: POST, body: {prompt: hi}}\n"
        "mock: {latency: {model: fixed, delay: 1ms}}\n"
        "load: {concurrency: 2, requests: 20, workers: 1}\n"
        "sla: {p95: 800ms, error_rate: 1%}\n"
        f"output: {{json: {json.dumps(str(out))}}}\n",
        encoding="utf-8",
    )
    result = bench.run(bench.load_profile(profile))
    assert result.status == "completed" and out.exists(), result.status
    return out


@pytest.fixture(scope="module")
def report_data(real_report) -> dict:
    return json.loads(real_report.read_text(encoding="utf-8"))


BOUNDS = parse_bounds("p95=10%,error_rate=0.5pp,rps=5%,p99=20ms")


def _mapping_or_absent(report: dict, *keys: str) -> bool:
    value: Any = report
    for key in keys:
        value = value.get(key, {}) or {}
        if not isinstance(value, dict):
            return False
    return True


def expect_compare_or_error(path: Path, base: Path) -> None:
    """What ``bench compare BASE PATH`` does in process: CompareError naming the file, or a comparison."""
    try:
        run = load_run(path)
    except CompareError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
        assert "\n" not in str(exc), str(exc)
        return
    # A report whose profile, profile.load or profile.target is not a mapping crashes fingerprint (bug, xfail below).
    if not all(_mapping_or_absent(run.report, *keys) for keys in (("profile",), ("profile", "load"), ("profile", "target"))):
        return
    runs = [load_run(base), run]
    comparability(runs)
    table = compare([[r] for r in runs])
    regressions(table, BOUNDS, ["base", "fuzzed"])
    Console(file=io.StringIO(), width=120).print(render.compare_table(["base", "fuzzed"], table, title="t"))


def expect_report_or_error(path: Path) -> None:
    """What ``bench report PATH`` does in process: ReportInputError naming the file, or a page."""
    try:
        page, count = html_report.build([path])
    except html_report.ReportInputError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
        assert "\n" not in str(exc), str(exc)
        return
    assert count == 1 and page.startswith("<!DOCTYPE html>")


def write_json(content: str | bytes, name: str = "fuzzed.json") -> Path:
    path = scratch() / name
    path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    return path


def test_truncated_reports_are_refused(real_report):
    """Every cut of a real report (every 97 bytes, and the last few) is an error naming the file."""
    raw = real_report.read_bytes()
    end = len(raw.rstrip())
    cuts = sorted(set(range(0, end, 97)) | set(range(max(0, end - 4), end)))
    for cut in cuts:
        path = write_json(raw[:cut], "truncated.json")
        with pytest.raises(CompareError, match=f"^{re.escape(str(path))}: "):
            load_run(path)
        with pytest.raises(html_report.ReportInputError, match=f"^{re.escape(str(path))}: "):
            html_report.load_run(path)


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-HUGE, HUGE), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
REPORT_KEYS = ["schema_version", "histograms", "requests", "latency", "sla", "series", "name", "status", "profile", "load_model", "completed"]
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.one_of(st.sampled_from(REPORT_KEYS), st.text(max_size=8)), inner, max_size=5),
    max_leaves=20,
)
FOREIGN_FILES = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.fixed_dictionaries({"schema_version": st.sampled_from([1, 2, "1", True, None])}, optional={k: JSON_VALUES for k in REPORT_KEYS if k != "schema_version"}).map(json.dumps),
    st.binary(max_size=200),
    JSON_VALUES.map(lambda v: json.dumps(v).encode("utf-16")),
    st.sampled_from(["", " \n", "NaN", "[NaN]", '{"schema_version": Infinity}', "1e999", '"\\ud800"', "[" * 5000, "{}" * 3, "\ufeff{}"]),
)


@fuzz(200)
@given(FOREIGN_FILES)
def test_foreign_json_is_refused_by_compare(content):
    base = scratch() / "real-report.json"
    expect_compare_or_error(write_json(content), base)


@fuzz(120)
@given(FOREIGN_FILES)
def test_foreign_json_is_refused_by_report(content):
    expect_report_or_error(write_json(content))


# Values that keep to the report's JSON, minus the crashes kept as xfail tests (ints past float range, 1e999).
REPORT_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 2, 10**18, HUGE, -HUGE, 1e308, -1e308, 0.5, "", "x", "inf", "-", [], {}, [1], {"a": 1}]),
    JSON_SCALARS,
    JSON_VALUES,
)


@st.composite
def mutated_reports(draw, base: dict) -> dict:
    """A real report with one to three fields (anywhere in it) dropped, retyped or replaced."""
    report = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        slots = list(_slots(report))
        if not slots:
            break
        _, box, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["drop", "replace", "number", "retype"]))
        if op == "drop":
            del box[key]
        elif op == "replace":
            box[key] = draw(REPORT_VALUES)
        elif op == "number":
            box[key] = draw(EDGE_NUMBERS.filter(lambda v: not (isinstance(v, float) and not math.isfinite(v))))
        else:
            box[key] = draw(_other_type(box[key]).filter(lambda v: not (isinstance(v, float) and not math.isfinite(v))))
    return report


@st.composite
def corrupt_histograms(draw, encoded: str) -> str:
    """An encoded HdrHistogram, broken: cut, a character changed, a byte of the header or payload changed, or random."""
    raw = base64.b64decode(encoded)
    op = draw(st.sampled_from(["cut", "char", "byte", "payload", "random", "text"]))
    if op == "cut":
        return encoded[: draw(st.integers(0, len(encoded) - 1))]
    if op == "char":
        at = draw(st.integers(0, len(encoded) - 1))
        return encoded[:at] + draw(st.sampled_from("AZaz09+/=-_ !é")) + encoded[at + 1 :]
    if op == "byte":
        at = draw(st.integers(0, len(raw) - 1))
        return base64.b64encode(raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]).decode()
    if op == "payload":
        # Re-compress a changed inner payload, so the damage gets past zlib to the histogram's own fields.
        inner = bytearray(zlib.decompress(raw[8:]))
        at = draw(st.integers(0, len(inner) - 1))
        inner[at] = draw(st.integers(0, 255))
        packed = zlib.compress(bytes(inner))
        return base64.b64encode(raw[:4] + len(packed).to_bytes(4, "big") + packed).decode()
    if op == "random":
        return base64.b64encode(draw(st.binary(max_size=64))).decode()
    return draw(st.text(max_size=20))


@fuzz(250)
@given(st.data())
def test_mutated_reports_are_refused_by_compare_or_compared(report_data, data):
    report = data.draw(mutated_reports(report_data))
    expect_compare_or_error(write_json(json.dumps(report, allow_nan=False)), scratch() / "real-report.json")


@fuzz(30)
@given(st.data())
def test_mutated_reports_are_refused_by_report_or_rendered(report_data, data):
    report = data.draw(mutated_reports(report_data))
    expect_report_or_error(write_json(json.dumps(report, allow_nan=False)))


@fuzz(100)
@given(st.data())
def test_corrupt_histograms_are_refused(report_data, data):
    report = copy.deepcopy(report_data)
    for key in data.draw(st.lists(st.sampled_from(["latency", "service"]), min_size=1, max_size=2, unique=True)):
        report["histograms"][key] = data.draw(corrupt_histograms(report_data["histograms"][key]))
    if data.draw(st.booleans()):
        # Without the stated counts, a histogram that decodes to other values is not caught by the count check.
        report["latency"].pop("count", None)
        report["service"].pop("count", None)
    path = write_json(json.dumps(report))
    expect_compare_or_error(path, scratch() / "real-report.json")
    expect_report_or_error(path)


@fuzz(20)
@given(st.data())
def test_compare_and_report_commands_exit_0_or_2(real_report, data):
    """The same through the commands in process: exit 0 (compared, written) or 2, one line naming the file."""
    report = data.draw(mutated_reports(json.loads(real_report.read_text())))
    assume(_no_markup(report) and all(_mapping_or_absent(report, *k) for k in (("profile",), ("profile", "load"), ("profile", "target"))))
    path = write_json(json.dumps(report, allow_nan=False), "cmd.json")
    for args in (("compare", str(real_report), str(path)), ("report", str(path), "-o", str(scratch() / "out.html"))):
        code, out, err = invoke(*args)
        assert code in (0, 2), (args, code, out, err)
        assert "Traceback" not in err, err
        if code == 2 and "not comparable:" not in err:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and str(path) in lines[0], err


# --------------------------------------------------------------------------- safety: a profile is data, never code

PYTHON_TAGS = [
    'name: !!python/object/apply:os.system ["touch PWNED"]\n',
    "name: !!python/name:os.system\n",
    'target: {body: !!python/object/apply:os.system ["touch PWNED"]}\n',
    'load: !!python/object/new:os.system ["touch PWNED"]\n',
    "mock: !!python/module:os\n",
    'scenarios: {a: {name: !!python/object/apply:subprocess.check_output [["touch", "PWNED"]]}}\n',
    '!!python/object/apply:os.system ["touch PWNED"]\n',
    "name: !include /etc/passwd\n",
]


@pytest.mark.parametrize("text", PYTHON_TAGS)
def test_python_yaml_tags_are_refused_and_never_run(work, text):
    path = write_profile("load: {concurrency: 1, requests: 1}\n" + text if not text.startswith("!!") else text, "tags.yaml")
    with pytest.raises(ProfileError) as info:
        load_scenarios(path)
    assert info.value.path == str(path)
    assert "YAML" in info.value.message
    assert not (work / "PWNED").exists()


def test_a_dataset_is_read_from_where_the_profile_names_it(work):
    """data.file may point outside the profile's folder (the profile names it); other files are refused."""
    (work / "elsewhere").mkdir(exist_ok=True)
    (work / "elsewhere" / "rows.jsonl").write_text('{"prompt": "from elsewhere"}\n', encoding="utf-8")
    (work / "profiles-here").mkdir(exist_ok=True)
    ok = (work / "profiles-here" / "p.yaml")
    ok.write_text("load: {concurrency: 1, requests: 1}\ntarget: {body: {q: '{{prompt}}'}}\ndata: {file: ../elsewhere/rows.jsonl}\n", encoding="utf-8")
    profile = load_profile(ok)
    assert profile.data is not None and profile.data.rows == ({"prompt": "from elsewhere"},)
    for name in ("../../../../../../etc/passwd", "/etc/passwd", "/etc/shadow", "../elsewhere"):
        bad = work / "profiles-here" / "bad.yaml"
        bad.write_text(f"load: {{concurrency: 1, requests: 1}}\ndata: {{file: {json.dumps(name)}}}\n", encoding="utf-8")
        with pytest.raises(ProfileError) as info:
            load_profile(bad)
        assert info.value.field == "data.file", str(info.value)
        assert "root:" not in str(info.value)


CODE_TEMPLATES = [
    "{{__import__('os').system('touch PWNED')}}",
    "{{ open('secret.txt').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ 7*7 }}{{ config.items() }}",
    "{% include 'secret.txt' %}",
    "${open('secret.txt')}",
]


@pytest.mark.parametrize("template", CODE_TEMPLATES)
def test_templates_are_never_evaluated(work, template):
    """Only {{identifier}} is a placeholder: anything else in braces is sent as the literal text it is."""
    (work / "secret.txt").write_text("TOP-SECRET", encoding="utf-8")
    text = f"load: {{concurrency: 1, requests: 1}}\ntarget: {{method: POST, body: {{q: {json.dumps(template)}, p: '{{{{prompt}}}}'}}}}\n"
    profile = load_profile(write_profile(text + "data: {synthetic: {count: 3}}\n", "tpl.yaml"))
    sent = [r.body for r in prepare(profile.kinds, profile.data, "http://127.0.0.1:9/", (), 0, 1)]
    bodies = [json.loads(body) for body in sent]
    assert len(bodies) == 3 and all(b["q"] == template and b["p"] != "{{prompt}}" for b in bodies), bodies
    # Without a dataset the body is sent as written (the plain path sends target.body).
    plain = load_profile(write_profile(text.replace(", p: '{{prompt}}'", ""), "tpl.yaml"))
    assert json.loads(plain.target.body) == {"q": template}
    for body in sent + [plain.target.body]:
        assert b"TOP-SECRET" not in body and b"49" not in body
    assert not (work / "PWNED").exists()


def test_placeholders_name_dataset_fields_only(work):
    """{{os}} or {{open}} is a dataset field: without a data section (or a row with it) the profile is refused."""
    for name in ("os", "open", "__import__", "__builtins__", "HOME"):
        path = write_profile(f"load: {{concurrency: 1, requests: 1}}\ntarget: {{body: {{q: '{{{{{name}}}}}'}}}}\n", "ph.yaml")
        with pytest.raises(ProfileError, match=r"data: request kind 'default' uses \{\{" + name):
            load_profile(path)
    (work / "rows.jsonl").write_text(json.dumps({"prompt": "{{__import__('os').system('touch PWNED')}}"}) + "\n", encoding="utf-8")
    path = write_profile("load: {concurrency: 1, requests: 1}\ntarget: {body: {q: '{{prompt}}', r: '{{os}}'}}\ndata: {file: rows.jsonl}\n", "ph.yaml")
    with pytest.raises(ProfileError, match=r"row 1 has no field 'os'"):
        load_profile(path)
    # A row's value is inserted as it is: never rendered again, never run.
    assert render_template({"q": "{{prompt}}"}, {"prompt": "{{__import__('os')}}"}) == {"q": "{{__import__('os')}}"}
    assert not (work / "PWNED").exists()


# --------------------------------------------------------------------------- the real command, in a subprocess (a handful)


def bench_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", "GITHUB_STEP_SUMMARY": ""},
    )


def assert_clean(result: subprocess.CompletedProcess, codes: tuple[int, ...]) -> None:
    assert result.returncode in codes, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
@fuzz(3)
@given(mutated_documents())
@example(("sla.yaml", {"load": {"concurrency": "lots", "requests": 1}}))
def test_cli_validate_on_mutated_profiles(case):
    _, doc = case
    assume(_no_markup(doc))
    path = write_profile(dump(doc), "subprocess.yaml")
    result = bench_cli("validate", str(path), cwd=scratch())
    assert_clean(result, (0, 2))
    if result.returncode == 2:
        assert result.stderr.startswith(f"error: {path}"), result.stderr


RUN_PROFILE = "name: tiny-open\nmock: {latency: {model: fixed, delay: 1ms}}\nload: {rate: 100/s, max_in_flight: 2, requests: 5}\n"
# Valid values that keep the run short (at most 2 workers: max_in_flight is 2; one request); the free text has no
# digits, so it is never a valid rate or duration, and no "[" (rich markup, a bug kept as an xfail test).
NO_DIGITS = st.text(st.characters(exclude_categories=("Nd", "No", "Cs", "Cc"), exclude_characters="["), max_size=8)
CLI_WORKERS = st.one_of(st.sampled_from(["1", "2", "0", "-1", "3", "abc", "1e3", "2.5", "", "99999999999999999999999"]), NO_DIGITS)
CLI_RATES = st.one_of(st.sampled_from(["50/s", "200/s", "0/s", "-5/s", "1e400/s", "10/fortnight", "", "nan/s"]), NO_DIGITS)
CLI_DURATIONS = st.one_of(st.sampled_from(["30s", "1m", "0s", "-1s", "1e400s", "5 parsecs", "", "inf"]), NO_DIGITS)


@pytest.mark.slow
@fuzz(2)
@given(CLI_WORKERS, CLI_RATES, CLI_DURATIONS)
@example("2", "50/s", "30s")
@example("abc", "50/s", "30s")
@example("1", "-5/s", "1m")
def test_cli_run_with_random_flag_values(workers, rate, duration):
    path = write_profile(RUN_PROFILE, "run.yaml")
    result = bench_cli("run", str(path), "-q", "--requests", "1", f"--workers={workers}", f"--rate={rate}", f"--duration={duration}", cwd=scratch())
    assert_clean(result, (0, 2))


BAD_REPORTS = {
    "truncated.json": lambda raw, data: raw[: len(raw) // 2],
    "foreign.json": lambda raw, data: b'[{"schema_version": 1}, "histograms"]',
    "wrong-types.json": lambda raw, data: json.dumps({**data, "requests": {**data["requests"], "completed": "twenty"}, "series": "none"}).encode(),
    "corrupt-histogram.json": lambda raw, data: json.dumps({**data, "histograms": {**data["histograms"], "latency": "HISTFAAAACh4nJNpmSzL"}}).encode(),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD_REPORTS))
def test_cli_compare_and_report_refuse_bad_reports(real_report, report_data, name):
    bad = write_json(BAD_REPORTS[name](real_report.read_bytes(), report_data), name)
    for args in (("compare", str(real_report), str(bad)), ("report", str(bad), "-o", str(scratch() / "page.html"))):
        result = bench_cli(*args, cwd=scratch())
        assert_clean(result, (2,))
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0], result.stderr


@pytest.mark.slow
def test_cli_refuses_a_python_tag_without_running_it(work):
    path = write_profile('load: {concurrency: 1, requests: 1}\nname: !!python/object/apply:os.system ["touch PWNED"]\n', "pwned.yaml")
    for command in ("validate", "run"):
        result = bench_cli(command, str(path), cwd=work)
        assert_clean(result, (2,))
        assert str(path) in result.stderr
    assert not (work / "PWNED").exists()


# --------------------------------------------------------------------------- known bugs (minimal inputs; drop the mark when fixed)
#
# Not tested here because they hang or exhaust memory instead of failing (the strategies keep clear of them):
# - data.synthetic {count: 1000000000} (or prompt_tokens: 100000000) is generated in full while the profile
#   loads (profile.py _parse_data -> requests.synthetic_rows): `bench validate` does not return.
# - a YAML alias bomb in target.body (7 levels of 9 aliases, ~400 bytes) expands to a 300 MB body in ~20 s;
#   9 levels exhaust memory (profile.py _parse_target encodes it, template_fields walks it).

BIG = "1" + "0" * 400  # an integer literal past float range (YAML reads it as an int)
HEX = "0x" + "f" * 4000  # a YAML hex integer of 4816 decimal digits: str()/repr() refuse it (int_max_str_digits)
LOAD = "load: {concurrency: 1, requests: 1}\n"


def _bug(text: str, reason: str):
    """An input that once crashed the loader (``reason`` says where); now a clear ProfileError."""
    return pytest.param(text)


@pytest.mark.parametrize(
    "text",
    [
        _bug(LOAD + "name: 2001-02-30\n", "profile.py:353 _read_yaml catches only yaml.YAMLError; the date constructor raises ValueError"),
        _bug(LOAD + "name: !!int abc\n", "profile.py:353 _read_yaml: yaml's int constructor raises ValueError"),
        _bug(LOAD + "name: !!float abc\n", "profile.py:353 _read_yaml: yaml's float constructor raises ValueError"),
        _bug(LOAD + "name: !!timestamp x\n", "profile.py:353 _read_yaml: yaml's timestamp constructor raises AttributeError"),
        _bug(LOAD + "name: " + "1" * 5000 + "\n", "profile.py:353 _read_yaml: int() of a 5000-digit literal raises ValueError"),
        _bug(LOAD + "name: " + "[" * 600 + "]" * 600 + "\n", "profile.py:353 _read_yaml: deep nesting raises RecursionError in yaml's composer"),
    ],
)
def test_bug_yaml_scalars_that_fail_after_parsing(work, text):
    path = write_profile(text, "bug.yaml")
    with pytest.raises(ProfileError):
        load_profile(path)


@pytest.mark.parametrize(
    "text",
    [
        _bug(f"load: {{concurrency: 1, requests: 1, duration: {BIG}}}\n", "units.py:40 parse_duration: float(int) raises OverflowError"),
        _bug(f"load: {{rate: {BIG}, requests: 1}}\n", "units.py:59 parse_rate: float(int) raises OverflowError"),
        _bug(LOAD + f"sla: {{p95: {BIG}}}\n", "units.py:40 parse_duration (sla threshold): OverflowError"),
        _bug(LOAD + f"sla: {{error_rate: {BIG}}}\n", "profile.py:1005 _parse_ratio: float(int) raises OverflowError"),
        _bug(f"load: {{stages: [{{duration: 1s, concurrency: {BIG}}}]}}\n", "profile.py:890 _parse_stages: float(int) raises OverflowError"),
        _bug(LOAD + f"request_kinds: [{{weight: {BIG}}}]\n", "profile.py:662 _parse_kind: float(weight) raises OverflowError"),
        _bug(LOAD + f"mock: {{errors: {{rate: {BIG}}}}}\n", "mock/config.py:234 _number: math.isfinite(int) raises OverflowError"),
        _bug(LOAD + f"target: {{method: {HEX}}}\n", "profile.py:434 _Fields.string: repr() of a >4300-digit int raises ValueError"),
        _bug(LOAD + f"? {HEX}\n: 1\n", "profile.py:411 _Fields: str(key) of a >4300-digit int raises ValueError"),
        _bug(LOAD + f"target: {{headers: {{a: {HEX}}}}}\n", "profile.py:598 _parse_headers: str(value) of a >4300-digit int raises ValueError"),
        _bug(LOAD + "target: {checks: {body_regex: 'a{4294967296}'}}\n", "profile.py:623 _parse_check: re.compile raises OverflowError, only re.error is caught"),
        _bug(LOAD + "target: {checks: {body_regex: '" + "(" * 1000 + ")" * 1000 + "'}}\n", "profile.py:623 _parse_check: re.compile raises RecursionError"),
        _bug(LOAD + "output: {json: " + "a" * 300 + "}\n", "profile.py:1025 _parse_output: Path.is_dir() raises OSError ENAMETOOLONG"),
    ],
)
def test_bug_values_that_crash_the_loader(work, text):
    path = write_profile(text, "bug.yaml")
    with pytest.raises(ProfileError):
        load_profile(path)


@pytest.mark.parametrize("weight", [".nan", ".inf"])
def test_bug_non_finite_request_kind_weight_is_accepted(work, weight):
    path = write_profile(LOAD + f"request_kinds: [{{name: a, weight: {weight}}}, {{name: b}}]\n", "bug.yaml")
    with pytest.raises(ProfileError):
        load_profile(path)


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "{work}/markup.yaml"),
        ("validate", "{work}/missing[/x].yaml"),
        ("compare", "{work}/missing[/x].json", "{work}/other.json"),
        ("run", "{work}/markup.yaml", "--rate", "[/x]"),
    ],
    ids=["profile-value", "profile-path", "compare-path", "run-flag"],
)
def test_bug_rich_markup_in_an_error_message(work, args):
    write_profile(LOAD + "target: {method: '[/x]'}\n", "markup.yaml")
    code, out, err = invoke(*(a.format(work=work) for a in args))
    assert code == 2 and "[/" in err


def test_bug_rich_markup_in_a_valid_profile(work):
    path = write_profile(LOAD + "target: {url: 'http://127.0.0.1:1/[/x]'}\n", "markup-url.yaml")
    code, out, err = invoke("validate", str(path))
    assert code == 0 and "[/x]" in out


def test_bug_report_long_output_name(real_report):
    code, out, err = invoke("report", str(real_report), "-o", "a" * 300 + ".html")
    assert code == 2


@pytest.mark.parametrize("patch", [{"profile": [1]}, {"profile": {"load": 5}}, {"profile": {"target": "x"}}], ids=["profile", "load", "target"])
def test_bug_compare_non_mapping_profile(real_report, report_data, patch):
    path = write_json(json.dumps({**report_data, **patch}), "bug.json")
    code, out, err = invoke("compare", str(real_report), str(path))
    assert code == 2 and path.name in err and "Traceback" not in err  # refused as not comparable, naming the file


def _with_number(report: dict, where: tuple, number: str) -> str:
    """The report as JSON text with the literal ``number`` (past what a float holds) at ``where``."""
    report = copy.deepcopy(report)
    box = report
    for key in where[:-1]:
        box = box[key]
    box[where[-1]] = "@NUMBER@"
    return json.dumps(report).replace('"@NUMBER@"', number)


@pytest.mark.parametrize("where", [("latency", "p50"), ("sla", "checks", 0, "threshold"), ("rps",), ("duration_s",), ("error_rate",)], ids=str)
def test_bug_report_integer_past_float_range(report_data, where):
    path = write_json(_with_number(report_data, where, BIG), "bug.json")
    with pytest.raises(html_report.ReportInputError):
        html_report.build([path])


def test_bug_report_infinite_number(report_data):
    path = write_json(_with_number(report_data, ("profile", "target", "timeout_s"), "1e999"), "bug.json")
    with pytest.raises(html_report.ReportInputError):
        html_report.build([path])

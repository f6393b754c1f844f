"""What each request carries: request kinds, datasets, templating, the OpenAI presets, response checks.

A profile may send one request again and again (``target``), or several kinds
of request (``requests``, chosen by weight) filled from a dataset (``data``:
JSONL or CSV rows, or a seeded synthetic generator) through ``{{field}}``
templates or an OpenAI-compatible preset. Everything is validated when the
profile loads and turned into ``PreparedRequest`` objects before the run
starts, so the send loop only picks the next one.
"""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urljoin, urlsplit

import orjson

API_PRESETS = {"openai-chat": "/v1/chat/completions", "openai-completions": "/v1/completions"}
DATA_ORDERS = ("sequential", "shuffle", "weighted")
MAX_PREPARED_PER_WORKER = 50_000
MAX_CHECKED_BODY = 1 << 20
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_MISSING = object()
_WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
          "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()  # fmt: skip


@dataclass(frozen=True, slots=True)
class Check:
    """What a response must satisfy, else it counts as an error of kind ``check``."""

    statuses: tuple[int, ...] | None = None
    body_contains: str | None = None
    body_regex: str | None = None
    json_path: str | None = None
    json_equals: Any = _MISSING
    json_exists: bool | None = None

    @property
    def needs_body(self) -> bool:
        return self.body_contains is not None or self.body_regex is not None or self.json_path is not None


@dataclass(frozen=True, slots=True)
class RequestKind:
    """One kind of request; ``path`` is joined to the target URL (or the mock's)."""

    name: str
    weight: float
    method: str
    url: str | None
    path: str | None
    headers: tuple[tuple[str, str], ...]
    body: Any  # a template: mapping/list/str with {{field}} placeholders, or None
    api: str | None = None
    model: str = "demo-model"
    max_tokens: int = 128
    stream: bool = False
    check: Check | None = None


@dataclass(frozen=True, slots=True)
class DataSpec:
    """Rows to fill templates from: a file (relative to the profile) or a synthetic generator."""

    rows: tuple[Mapping[str, Any], ...]
    order: str = "sequential"
    seed: int = 1
    source: str = ""


@dataclass(slots=True, eq=False)
class PreparedRequest:
    """A request ready to send. Transports may cache their wire form in ``cache``."""

    kind: int
    kind_name: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    stream: bool
    check: Check | None
    api: str | None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def keep_body(self) -> bool:
        return self.check is not None and self.check.needs_body


def render(template: Any, row: Mapping[str, Any]) -> Any:
    """Fill ``{{field}}`` placeholders from ``row``: a whole-string placeholder keeps the value's type."""
    if isinstance(template, str):
        whole = _TEMPLATE.fullmatch(template.strip())
        if whole:
            return row[whole.group(1)]
        return _TEMPLATE.sub(lambda m: str(row[m.group(1)]), template)
    if isinstance(template, dict):
        return {k: render(v, row) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, row) for v in template]
    return template


def template_fields(template: Any) -> set[str]:
    """The placeholder names a template uses (to check the dataset has them before the run)."""
    if isinstance(template, str):
        return set(_TEMPLATE.findall(template))
    if isinstance(template, dict):
        return set().union(*(template_fields(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(template_fields(v) for v in template)) if template else set()
    return set()


def preset_fields(kind: RequestKind) -> set[str]:
    """Dataset fields an API preset reads (``prompt`` or ``messages``)."""
    return {"prompt"} if kind.api else set()


def preset_body(kind: RequestKind, row: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI-compatible request body for a dataset row."""
    max_tokens = int(row.get("max_tokens", kind.max_tokens))
    body: dict[str, Any] = {"model": row.get("model", kind.model), "max_tokens": max_tokens, "stream": kind.stream}
    if kind.api == "openai-chat":
        messages = row.get("messages")
        body["messages"] = messages if isinstance(messages, list) else [{"role": "user", "content": str(row.get("prompt", ""))}]
    else:
        body["prompt"] = str(row.get("prompt", ""))
    if kind.stream:
        body["stream_options"] = {"include_usage": True}
    return body


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL (one object per line) or CSV (header row) file; raises ValueError naming the line."""
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rows.append({k: _number_or_text(v) for k, v in row.items() if k is not None})
        return rows
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"line {number}: not valid JSON ({exc})") from None
            if not isinstance(value, dict):
                raise ValueError(f"line {number}: expected a JSON object, got {type(value).__name__}")
            rows.append(value)
    return rows


def _number_or_text(value: str | None) -> Any:
    if value is None:
        return ""
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def synthetic_rows(count: int, prompt_tokens: tuple[int, int], max_tokens: tuple[int, int], seed: int, turns: int = 1) -> list[dict[str, Any]]:
    """Seeded rows with a prompt of a random number of words and a random max_tokens (uniform ranges).

    With ``turns`` above 1 each row is a conversation: ``turns`` holds that many
    user messages (the first is ``prompt``), each of its own random length.
    """
    rng = random.Random(f"bench-synthetic:{seed}")
    rows = []
    for _ in range(count):
        said = []
        for _ in range(turns):
            n = rng.randint(*prompt_tokens)
            said.append((" ".join(rng.choice(_WORDS) for _ in range(n)), n))
        row: dict[str, Any] = {"prompt": said[0][0], "max_tokens": rng.randint(*max_tokens), "prompt_tokens": said[0][1]}
        if turns > 1:
            row["turns"] = [text for text, _ in said]
        rows.append(row)
    return rows


def prepare(
    kinds: Sequence[RequestKind],
    data: DataSpec | None,
    base_url: str,
    extra_headers: tuple[tuple[str, str], ...],
    worker: int,
    workers: int,
    *,
    seed: int = 1,
) -> list[PreparedRequest]:
    """This worker's requests, in sending order (the worker cycles through them).

    Rows: sequential gives worker i rows i, i+W, ...; shuffle does the same on
    a seeded permutation; weighted draws rows by their ``weight`` field. Kinds
    are drawn by weight from a seeded generator per worker.
    """
    rows: list[Mapping[str, Any]]
    if data is None or not data.rows:
        rows = [{}]
    else:
        all_rows = list(data.rows)
        if data.order == "shuffle":
            random.Random(f"bench-shuffle:{data.seed}").shuffle(all_rows)
        if data.order == "weighted":
            rng = random.Random(f"bench-weighted:{data.seed}:{worker}")
            weights = [float(r.get("weight", 1.0)) for r in all_rows]
            count = min(MAX_PREPARED_PER_WORKER, max(1, len(all_rows) // workers))
            rows = rng.choices(all_rows, weights=weights, k=count)
        else:
            rows = all_rows[worker::workers] or all_rows[worker % len(all_rows) :: len(all_rows)] or all_rows[:1]
            rows = rows[:MAX_PREPARED_PER_WORKER]
    kind_rng = random.Random(f"bench-kinds:{seed}:{worker}")
    weights = [k.weight for k in kinds]
    prepared = []
    for row in rows:
        index = 0 if len(kinds) == 1 else kind_rng.choices(range(len(kinds)), weights=weights)[0]
        prepared.append(_prepare_one(index, kinds[index], row, base_url, extra_headers))
    return prepared


def _prepare_one(index: int, kind: RequestKind, row: Mapping[str, Any], base_url: str, extra: tuple[tuple[str, str], ...]) -> PreparedRequest:
    if kind.url is not None:
        url = kind.url
    elif kind.path is not None:
        url = urljoin(base_url, kind.path)
    elif kind.api:
        # A target URL with a path names the endpoint itself; a bare host gets the preset's path.
        url = base_url if urlsplit(base_url).path not in ("", "/") else urljoin(base_url, API_PRESETS[kind.api])
    else:
        url = base_url
    headers = list(kind.headers)
    if kind.api:
        value: Any = preset_body(kind, row)
    else:
        value = render(kind.body, row) if row else kind.body
    if value is None:
        body = None
    elif isinstance(value, (bytes, str)):
        body = value if isinstance(value, bytes) else value.encode("utf-8")
    else:
        body = orjson.dumps(value)
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
    headers.extend(extra)
    return PreparedRequest(index, kind.name, kind.method, url, tuple(headers), body, kind.stream, kind.check, kind.api)


def json_path_lookup(value: Any, path: str) -> Any:
    """``a.b.0`` in decoded JSON: keys of objects, indexes of arrays (negative from the end); ``MISSING`` when absent."""
    for part in path.split("."):
        if isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


MISSING = _MISSING


def check_response(check: Check, status: int, body: bytes | None) -> str | None:
    """None when the response passes, else a short reason (for the log line and the report)."""
    if check.statuses is not None and status not in check.statuses:
        return f"status {status} not in {list(check.statuses)}"
    if not check.needs_body:
        return None
    text = (body or b"")[:MAX_CHECKED_BODY].decode("utf-8", "replace")
    if check.body_contains is not None and check.body_contains not in text:
        return f"body does not contain {check.body_contains!r}"
    if check.body_regex is not None and not re.search(check.body_regex, text):
        return f"body does not match {check.body_regex!r}"
    if check.json_path is not None:
        try:
            value: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            return "body is not JSON"
        value = json_path_lookup(value, check.json_path)
        if check.json_exists is not None and (value is not _MISSING) != check.json_exists:
            return f"JSON field {check.json_path} {'missing' if check.json_exists else 'present'}"
        if check.json_equals is not _MISSING and value != check.json_equals:
            return f"JSON field {check.json_path} is {value!r}, expected {check.json_equals!r}"
    return None

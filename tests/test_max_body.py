"""client.max_body bounds how much of one response is read; a larger one is an error of kind body_too_large."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import bench
from bench.units import UnitError, parse_size

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("transport", ["aiohttp", "fast"])
def test_a_body_over_max_body_is_counted_as_body_too_large(tmp_path: Path, transport: str) -> None:
    def run(max_body: str) -> dict:
        data = {
            "mock": {"body_bytes": 300_000},
            "client": {"transport": transport, "max_body": max_body},
            "load": {"concurrency": 2, "requests": 10, "workers": 1},
        }
        path = tmp_path / f"{max_body}.yaml"
        path.write_text(yaml.safe_dump(data))
        return bench.run(bench.load_profile(path)).summary

    small = run("100KB")
    assert small["errors"] == {"body_too_large": 10}
    assert small["requests"]["sent"] == 10 and small["requests"]["ok"] == 0
    large = run("1MiB")
    assert large["requests"]["ok"] == 10 and large["bytes_received"] == 3_000_000


@pytest.mark.parametrize("text, size", [("512", 512), ("10MB", 10_000_000), ("1MiB", 1 << 20), ("1.5kb", 1500)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["ten", "-1MB", "0", True])
def test_parse_size_rejects(text) -> None:
    with pytest.raises(UnitError):
        parse_size(text)

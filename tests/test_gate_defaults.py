"""A gate that cannot say yes by mistake: the default error criterion, flags blamed as flags, units that never bite.

Each test runs the real command (worker processes against the bundled mock
on 127.0.0.1) and reads what a CI log and a JSON report would show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import bench
from bench.engine.plan.profile import load_scenarios

PROFILES = Path(__file__).resolve().parent.parent / "profiles"

BROKEN_SERVICE = {
    "name": "broken",
    "target": {"method": "GET"},
    "mock": {"errors": {"rate": 1.0, "statuses": [404]}},  # answers 404 to everything, fast
    "load": {"concurrency": 4, "requests": 200, "workers": 1},
}


def write(tmp_path: Path, data: dict, name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "120"}
    )


@pytest.mark.slow
def test_a_latency_only_sla_fails_a_service_that_fails_every_request(tmp_path: Path) -> None:
    path = write(tmp_path, {**BROKEN_SERVICE, "sla": {"p95": "500ms"}})
    result = cli(["run", str(path), "--quiet", "--json", "r.json"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✗  error_rate <= 1 % (default)" in result.stdout
    assert "most requests failed: 200 of 200 (100.0 %); status 404: 200" in result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    checks = {c["criterion"]: c for c in report["sla"]["checks"]}
    assert checks["p95"]["passed"] is True  # fast, because it fails
    assert checks["error_rate"] == {**checks["error_rate"], "default": True, "threshold": 0.01, "passed": False, "measured": 1.0}
    assert report["sla"]["passed"] is False
    assert any(m.startswith("most requests failed") for m in report["messages"])


@pytest.mark.slow
def test_the_default_error_criterion_is_off_only_when_the_profile_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, {**BROKEN_SERVICE, "sla": {"p95": "500ms", "error_rate": "off"}})
    result = cli(["run", str(path), "--quiet", "--json", "r.json"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr  # the user asked for latency only
    assert "(default)" not in result.stdout
    assert "most requests failed" in result.stderr  # still said loudly, whatever the SLA
    report = json.loads((tmp_path / "r.json").read_text())
    assert [c["criterion"] for c in report["sla"]["checks"]] == ["p95"]


def test_every_shipped_profile_with_an_sla_judges_errors() -> None:
    for path in sorted(PROFILES.glob("*.yaml")):
        for profile in load_scenarios(path):
            if profile.sla:
                names = {rule.name for rule in profile.sla}
                assert names & {"error_rate", "min_goodput"}, (path.name, profile.name, names)


def test_a_yaml_off_and_an_explicit_threshold_both_replace_the_default(tmp_path: Path) -> None:
    load = {"load": {"concurrency": 1, "requests": 5}}
    off = bench.load_profile(write(tmp_path, {**load, "sla": {"p95": "1s", "error_rate": False}}))  # YAML's bare off
    assert [r.name for r in off.sla] == ["p95"]
    zero = bench.load_profile(write(tmp_path, {**load, "sla": {"p95": "1s", "error_rate": 0}}))  # 0 is a threshold, not off
    assert sorted((r.name, r.threshold, r.default) for r in zero.sla) == [("error_rate", 0.0, False), ("p95", 1000.0, False)]
    window = bench.load_profile(write(tmp_path, {**load, "sla": {"p95": "1s", "windows": [{"error_rate": "5%", "window": "5s"}]}}))
    assert not any(r.default for r in window.sla)
    none = bench.load_profile(write(tmp_path, {"load": {"concurrency": 1, "requests": 5}}))
    assert none.sla == ()  # no SLA, no gate: nothing is added


def test_a_flag_error_names_the_flag_not_the_profile(tmp_path: Path) -> None:
    result = cli(["run", str(PROFILES / "open-loop.yaml"), "--rate", "0/s"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --rate: "), result.stderr
    assert "open-loop.yaml" not in result.stderr and "load.rate" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("sla", "field", "advice"),
    [({"p95": 10}, "sla.p95", "10s or 10ms"), ({"windows": [{"p99": "250", "window": "5s"}]}, "sla.windows[0].p99", "250s or 250ms")],
)
def test_a_bare_latency_threshold_is_refused(tmp_path: Path, sla: dict, field: str, advice: str) -> None:
    path = write(tmp_path, {"load": {"concurrency": 1, "requests": 5}, "sla": sla})
    result = cli(["validate", str(path)], tmp_path)
    assert result.returncode == 2
    assert f"{field}: a duration needs a unit: write {advice}" in result.stderr, result.stderr


def test_a_bare_duration_flag_is_refused(tmp_path: Path) -> None:
    result = cli(["run", str(PROFILES / "sla.yaml"), "--duration", "30"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --duration: a duration needs a unit: write 30s or 30ms"), result.stderr


@pytest.mark.slow
def test_compare_refuses_a_bound_without_a_unit_and_shows_deltas_with_units(tmp_path: Path) -> None:
    path = write(tmp_path, {"mock": {"latency": {"model": "fixed", "delay": "5ms"}}, "load": {"concurrency": 2, "requests": 60, "workers": 1}})
    for name in ("a.json", "b.json"):
        assert cli(["run", str(path), "--quiet", "--json", name], tmp_path).returncode == 0
    bare = cli(["compare", "a.json", "b.json", "--fail-on-regression", "p95=10"], tmp_path)
    assert bare.returncode == 2
    assert "'p95=10' needs a unit: p95=10% (relative to the baseline) or p95=10ms (absolute)" in bare.stderr, bare.stderr
    shown = cli(["compare", "a.json", "b.json", "--fail-on-regression", "p95=1s"], tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    p95_row = next(line for line in shown.stdout.splitlines() if line.startswith(("│ p95 ", "| p95 ")) or " p95 " in line[:8])
    assert " ms (" in p95_row, p95_row  # the change carries its unit: "+0.12 ms (+2.4 %)"
    rps_row = next(line for line in shown.stdout.splitlines() if " rps " in line[:8])
    assert " req/s (" in rps_row, rps_row

"""Secrets never leak: credential headers are sent, but no output of a run or report contains them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

SECRETS = ("tok-AAA-4711", "sid-BBB-4712", "custom-CCC-4713")


def test_credential_headers_are_redacted_in_every_output(tmp_path: Path) -> None:
    data = {
        "target": {
            "headers": {"Authorization": f"Bearer {SECRETS[0]}", "Cookie": f"session={SECRETS[1]}", "X-Tenant": SECRETS[2]},
            "secret_headers": ["X-Tenant"],
            "checks": {"status": [200]},
        },
        "mock": {"latency": {"model": "fixed", "delay": "2ms"}},
        "load": {"concurrency": 2, "requests": 30, "workers": 1},
        "sla": {"p95": "500ms"},
        "output": {"json": "r.json", "csv": "r.csv", "junit": "r.xml", "hlog": "r.hlog", "series_csv": "s.csv"},
    }
    profile = tmp_path / "secret.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    run = subprocess.run([sys.executable, "-m", "bench", "run", str(profile)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = subprocess.run([sys.executable, "-m", "bench", "report", "r.json", "-o", "r.html"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert report.returncode == 0, report.stderr
    outputs = {"stdout": run.stdout, "stderr": run.stderr, "report stdout": report.stdout}
    outputs.update({p.name: p.read_text(errors="replace") for p in tmp_path.iterdir() if p.name != "secret.yaml"})
    assert {"r.json", "r.csv", "r.xml", "r.hlog", "s.csv", "r.html"} <= set(outputs)
    for name, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into {name}"
    assert "<redacted>" in outputs["r.json"]

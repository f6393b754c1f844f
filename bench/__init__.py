"""bench: load testing for HTTP and inference APIs with honest percentiles and an SLA gate.

The Python API is the CLI without the terminal::

    import bench
    profile = bench.load_profile("profiles/sla.yaml", {"requests": 100})
    result = bench.run(profile)
    assert result.passed, result.verdict
    repeated = bench.run(profile, repeat=3)   # a RepeatResult: .runs, .aggregate (median, 95 % CI per metric)

The names below are imported on first use (PEP 562), so that ``import bench``
is cheap and the command can time its own imports (see ``bench.cli.main``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "BenchError": "bench.engine.errors",
    "ProfileError": "bench.engine.errors",
    "RunError": "bench.engine.errors",
    "Profile": "bench.engine.plan.profile",
    "load_profile": "bench.engine.plan.profile",
    "RunResult": "bench.engine.runner",
    "RepeatResult": "bench.engine.repeat",
    "run": "bench.engine.repeat",  # runner.run, repeated when the profile (load.repeat) or repeat= asks
}
__all__ = ["BenchError", "Profile", "ProfileError", "RepeatResult", "RunError", "RunResult", "__version__", "load_profile", "run"]

if TYPE_CHECKING:
    from bench.engine.errors import BenchError, ProfileError, RunError
    from bench.engine.plan.profile import Profile, load_profile
    from bench.engine.repeat import RepeatResult, run
    from bench.engine.runner import RunResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

"""bench: load testing for HTTP and inference APIs with honest percentiles and an SLA gate.

The Python API is the CLI without the terminal::

    import bench
    profile = bench.load_profile("profiles/sla.yaml", {"requests": 100})
    result = bench.run(profile)
    assert result.passed, result.verdict
"""

__version__ = "0.1.0"

from bench.engine.errors import BenchError, ProfileError, RunError
from bench.engine.profile import Profile, load_profile
from bench.engine.runner import RunResult, run

__all__ = ["BenchError", "Profile", "ProfileError", "RunError", "RunResult", "__version__", "load_profile", "run"]

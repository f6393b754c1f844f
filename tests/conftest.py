"""Which tests need the machine to themselves.

The suite runs in two passes (the README's test command): everything else on
four xdist processes (most tests wait on real runs, so they share two cores
well), then the tests marked ``quiet`` one at a time. A quiet test asserts a
bound on timing that another test's load on the same cores would break, not
a bug: a fixed delay's p99 within 10 ms, a capacity search's exact answer,
bursts of sends, the event loop's own lateness.
"""

from __future__ import annotations

import pytest

QUIET_MODULES = {
    "test_accuracy.py",
    "test_search.py",
    "test_search_report.py",  # its fixture is a search, whose probes the event-loop lag check can flag under load
    "test_mock_capacity.py",
    "test_spawn.py",
    "test_loop_lag.py",
    "test_coordinated_omission.py",
    "test_conversations.py",
}
QUIET_TESTS = {
    "test_ttft_tpot_itl_match_the_mock",
    "test_latency_parity",
    "test_a_generator_that_keeps_up_is_trusted",
    "test_mock_h2c_delays_overlap",
    "test_mock_h2_stall_holds_streams_until_it_ends",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in QUIET_MODULES or item.originalname in QUIET_TESTS:  # type: ignore[attr-defined]
            item.add_marker(pytest.mark.quiet)

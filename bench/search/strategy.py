"""Where a capacity search probes next: grow geometrically until a level fails, then bisect. Pure; no I/O.

The answer is the highest level that passed below the lowest level that did
not (failed, or stayed within noise). Concurrency is searched in whole users
down to adjacent integers while the gap is small (a few probes more at
most); a rate is searched until the gap is within the relative tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.units import UnitError, parse_rate

OVER = ("concurrency", "rate")
PASS = "pass"
FAIL = "fail"
UNSURE = "indeterminate"  # the verdict was within noise even when measured longer: never counted as a pass
#: Below this gap (users) a concurrency search goes on to adjacent integers: at most three probes more.
ADJACENT_WITHIN = 8


def parse_level(over: str, value: object) -> float:
    """A level in the unit of ``over``: whole users (``16``), or requests per second (``50`` or ``50/s``)."""
    if over == "concurrency":
        text = str(value).strip()
        if not text.isdecimal() or int(text) < 1:
            raise ValueError(f"expected a whole number of users (1 or more), got {value!r}")
        return float(int(text))
    try:
        return parse_rate(value)
    except UnitError as exc:
        raise ValueError(str(exc)) from None


@dataclass
class Plan:
    """The search's bounds and its results so far (level -> PASS, FAIL or UNSURE)."""

    over: str
    low: float
    high: float
    tolerance: float = 0.1
    growth: float = 2.0
    results: dict[float, str] = field(default_factory=dict)

    @property
    def integer(self) -> bool:
        return self.over == "concurrency"

    def record(self, level: float, outcome: str) -> None:
        self.results[level] = outcome

    def bracket(self) -> tuple[float | None, float | None]:
        """(highest passing level below the lowest non-passing one, that lowest non-passing level)."""
        not_passed = [level for level, outcome in self.results.items() if outcome != PASS]
        worst = min(not_passed, default=None)
        passed = [level for level, outcome in self.results.items() if outcome == PASS and (worst is None or level < worst)]
        return max(passed, default=None), worst

    def next_level(self) -> float | None:
        """The next level to probe, or None when the answer is known to the tolerance (or the bounds end it)."""
        best, worst = self.bracket()
        if best is None and worst is None:
            return self.low
        if worst is None:  # every probe passed: grow, up to the maximum
            if best >= self.high:  # type: ignore[operator]
                return None
            grown = best * self.growth  # type: ignore[operator]
            return min(self.high, float(math.ceil(grown)) if self.integer else grown)
        if best is None:  # the first level already failed
            return None if worst <= self.low else self.low
        if self.close_enough(best, worst):
            return None
        middle = math.floor((best + worst) / 2) if self.integer else (best + worst) / 2
        return float(middle)

    def close_enough(self, best: float, worst: float) -> bool:
        gap = worst - best
        if self.integer:
            return gap <= 1 or (gap > ADJACENT_WITHIN and gap <= self.tolerance * best)
        return gap <= self.tolerance * best

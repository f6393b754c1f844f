"""The per-second series the HTML report draws: in-flight, status codes, error kinds, and TTFT/TPOT/ITL per second.

Fast unit tests on the aggregator: the per-second inference percentiles,
computed from bucket counts without a histogram, equal the histogram's own
(``percentile_values``) for random counts; status codes and error kinds per
second add up to the run's totals; the warm-up end and the series end are
where the reports put them.
"""

from __future__ import annotations

import random

import pytest

from bench.engine.results.aggregate import INFERENCE_SERIES_KEYS, Aggregator, _counts_percentiles, percentile_values
from bench.engine.workers.samples import MEASURED, WARMUP, Recorder, bucket_floor, new_histogram

INTERVAL_S = 0.25
MS = 1_000_000


@pytest.mark.parametrize("seed", range(20))
def test_counts_percentiles_equal_the_histograms(seed: int) -> None:
    rng = random.Random(seed)
    histogram = new_histogram()
    counts: dict[int, int] = {}
    for _ in range(rng.randrange(1, 400)):
        value = int(rng.lognormvariate(10, 1.5)) + 1
        n = rng.randrange(1, 4)
        histogram.record_value(value, n)
        floor = bucket_floor(value)
        counts[floor] = counts.get(floor, 0) + n
    expected = percentile_values(histogram, (50.0, 95.0, 99.0))
    assert _counts_percentiles(counts, histogram) == tuple(expected[p] / 1000 for p in (50.0, 95.0, 99.0))
    assert _counts_percentiles({}, histogram) == (None, None, None)


def test_series_carries_in_flight_status_and_error_kinds() -> None:
    agg = Aggregator(2, INTERVAL_S)
    recorders = [Recorder(False) for _ in range(2)]
    t0 = 10**12
    for seq in range(9):  # 2.25 s: seconds 0 and 1 whole, second 2 a quarter
        for w, rec in enumerate(recorders):
            start = t0 + int(seq * INTERVAL_S * 1e9)
            phase = WARMUP if seq == 0 else MEASURED
            for k in range(10):
                rec.sent(phase, start)
                if k == 9 and seq % 2:
                    rec.finished(phase, start, start, start + 5 * MS, None, "timeout", 0)
                else:
                    rec.finished(phase, start, start, start + 5 * MS, 503 if k == 8 else 200, None, 10)
            agg.add(rec.flush(w, seq, in_flight=3 + w + seq, cpu_s=0.01, wall_s=(seq + 1) * INTERVAL_S, final=seq == 8))
    agg.close()
    summary = agg.summary()
    series = summary["series"]
    assert [p["second"] for p in series] == [0, 1, 2]
    # In flight: the two workers at their last report of each second (seq 3, 7 and 8).
    assert [p["in_flight"] for p in series] == [(3 + 3) + (4 + 3), (3 + 7) + (4 + 7), (3 + 8) + (4 + 8)]
    assert sum(p["status_codes"].get("503", 0) for p in series) == summary["status_codes"]["503"] == 16
    assert sum(p["error_kinds"].get("timeout", 0) for p in series) == summary["errors"]["timeout"] == 8
    assert summary["warmup"]["end_s"] == 0.25 and summary["series_end_s"] == 2.25
    assert "output_tokens" not in series[0] and not any(k in series[0] for k in INFERENCE_SERIES_KEYS)

"""bench.engine.workers.samples + bench.engine.results.aggregate: what workers record and what the parent makes of it."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from fractions import Fraction

import pytest

from bench.engine.results.aggregate import Aggregator, latency_stats, percentile_values
from bench.engine.workers.responses import ResponseFacts
from bench.engine.workers.samples import HIGHEST_US, IntervalReport, MEASURED, WARMUP, PhaseTally, Recorder, bucket_floor, new_histogram, record_counts

INTERVAL_S = 0.25
T0 = 1_000_000_000_000  # an arbitrary monotonic-clock origin, in ns
MS = 1_000_000  # ns per ms
PERCENTILES = [1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0]


def nearest_rank(sorted_values: list[int], p: float) -> int:
    """The exact nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    rank = max(1, math.ceil(Fraction(str(p)) * len(sorted_values) / 100))
    return sorted_values[rank - 1]


def within_hdr_precision(hdr_value: float, exact: float) -> bool:
    """3 significant figures: within 0.1 % of the exact value, plus the 1 µs resolution."""
    return abs(hdr_value - exact) <= exact * 1e-3 + 1


@dataclass
class Sim:
    """Two simulated workers' reports plus the exact values they contain, for comparison."""

    reports: list = field(default_factory=list)  # IntervalReports in arrival order
    latency_us: list[int] = field(default_factory=list)  # measured responses, µs, as Recorder computes them
    by_worker: dict[int, list[int]] = field(default_factory=dict)
    by_second: dict[int, list[int]] = field(default_factory=dict)
    sent: int = 0
    ok: int = 0
    http_errors: int = 0
    client_errors: int = 0
    per_second_sent: dict[int, int] = field(default_factory=dict)
    warmup_latency_us: list[int] = field(default_factory=list)
    warmup_sent: int = 0


def simulate(
    *,
    workers: int = 2,
    seconds: int = 2,
    responses_per_interval: int = 1250,
    client_errors_per_interval: int = 7,
    http_error_every: int = 50,
    warmup_per_worker: int = 0,
    open_loop: bool = True,
    seed: int = 5,
) -> Sim:
    """Run ``workers`` Recorders over ``seconds`` at INTERVAL_S, with log-uniform latencies 50 µs .. 30 s."""
    rng = random.Random(seed)
    sim = Sim()
    recorders = [Recorder(open_loop) for _ in range(workers)]
    intervals = round(seconds / INTERVAL_S)
    for w in range(workers):
        sim.by_worker[w] = []
        for _ in range(warmup_per_worker):  # warm-up requests in the first interval, deliberately slow
            sent_ns = T0 + rng.randrange(int(INTERVAL_S * 1e9))
            recorders[w].sent(WARMUP, sent_ns)
            recorders[w].finished(WARMUP, sent_ns, sent_ns, sent_ns + 5_000 * MS, 200, None, 10)
            sim.warmup_latency_us.append(5_000_000)
            sim.warmup_sent += 1
    for seq in range(intervals):
        for w in range(workers):
            rec = recorders[w]
            for k in range(responses_per_interval + client_errors_per_interval):
                intended = T0 + int((seq + rng.random()) * INTERVAL_S * 1e9)
                sent_ns = intended + (rng.randrange(2 * MS) if open_loop else 0)
                service_ns = int(math.exp(rng.uniform(math.log(50e3), math.log(30e9))))
                end_ns = sent_ns + service_ns
                rec.sent(MEASURED, sent_ns)
                sim.sent += 1
                second = int(seq * INTERVAL_S)
                sim.per_second_sent[second] = sim.per_second_sent.get(second, 0) + 1
                if k >= responses_per_interval:
                    rec.finished(MEASURED, intended, sent_ns, end_ns, None, "timeout", 0)
                    sim.client_errors += 1
                    continue
                status = 503 if k % http_error_every == 0 else 200
                rec.finished(MEASURED, intended, sent_ns, end_ns, status, None, 100)
                if status >= 400:
                    sim.http_errors += 1
                else:
                    sim.ok += 1
                start = intended if open_loop else sent_ns
                value = max(1, (end_ns - start) // 1000)
                sim.latency_us.append(value)
                sim.by_worker[w].append(value)
                sim.by_second.setdefault(second, []).append(value)
            sim.reports.append(rec.flush(w, seq, in_flight=3, cpu_s=0.1 * seq, final=seq == intervals - 1))
    return sim


def aggregate(sim: Sim, workers: int = 2) -> Aggregator:
    agg = Aggregator(workers, INTERVAL_S)
    for report in sim.reports:
        agg.add(report)
    agg.close()
    return agg


@pytest.fixture(scope="module")
def sim() -> Sim:
    return simulate()


@pytest.fixture(scope="module")
def agg(sim) -> Aggregator:
    return aggregate(sim)


@pytest.fixture(scope="module")
def summary(agg) -> dict:
    return agg.summary()


# --------------------------------------------------------------------------- percentiles


def test_simulation_has_integral_ranks(sim):
    # With 20 000 responses every tested percentile falls on a whole rank, where HdrHistogram's
    # rounding of the rank and the nearest-rank definition agree.
    assert len(sim.latency_us) == 20_000
    assert all((Fraction(str(p)) * len(sim.latency_us) / 100).denominator == 1 for p in PERCENTILES)


@pytest.mark.parametrize("p", PERCENTILES)
def test_percentile_matches_exact_nearest_rank(sim, agg, p):
    exact = nearest_rank(sorted(sim.latency_us), p)
    got = agg.measured.latency.get_value_at_percentile(p)
    assert within_hdr_precision(got, exact), (p, got, exact)
    assert got >= exact  # HdrHistogram reports the top of the value's bucket


def test_summary_latency_stats_match_exact(sim, summary):
    values = sorted(sim.latency_us)
    stats = summary["latency"]
    assert stats["count"] == len(values)
    for name, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p99.9", 99.9)):
        exact_ms = nearest_rank(values, p) / 1000
        assert abs(stats[name] - exact_ms) <= exact_ms * 1e-3 + 1e-3, (name, stats[name], exact_ms)
    assert abs(stats["max"] - values[-1] / 1000) <= values[-1] / 1000 * 1e-3 + 1e-3
    assert abs(stats["min"] - values[0] / 1000) <= values[0] / 1000 * 1e-3 + 1e-3
    mean = sum(values) / len(values) / 1000
    assert stats["mean"] == pytest.approx(mean, rel=1e-3)
    assert stats["p50"] < stats["p90"] < stats["p95"] < stats["p99"] < stats["p99.9"] <= stats["max"]


def test_merged_histograms_equal_one_histogram_of_all_values(sim, agg):
    one = new_histogram()
    for v in sim.latency_us:
        assert one.record_value(v)
    merged = agg.measured.latency
    assert merged.get_total_count() == one.get_total_count() == len(sim.latency_us)
    grid = [x / 10 for x in range(1, 1001)] + [99.99, 99.999]
    assert merged.get_percentile_to_value_dict(grid) == one.get_percentile_to_value_dict(grid)
    assert len(set(one.get_percentile_to_value_dict(grid).values())) > 500  # a grid that actually discriminates
    assert (merged.get_min_value(), merged.get_max_value()) == (one.get_min_value(), one.get_max_value())
    assert merged.get_mean_value() == one.get_mean_value()
    assert merged.get_stddev() == pytest.approx(one.get_stddev(), rel=1e-12)


def test_merge_is_independent_of_report_order(sim, agg, summary):
    shuffled = list(sim.reports)
    random.Random(3).shuffle(shuffled)
    other = Aggregator(2, INTERVAL_S)
    for report in shuffled:
        other.add(report)
    other.close()
    for p in PERCENTILES:
        assert other.measured.latency.get_value_at_percentile(p) == agg.measured.latency.get_value_at_percentile(p)
    assert other.summary()["requests"] == summary["requests"]


def test_per_worker_histograms_differ_but_merge_exactly(sim):
    # Each worker alone: its own percentiles; both together: the union's.
    for w in (0, 1):
        alone = Aggregator(1, INTERVAL_S)
        for report in sim.reports:
            if report.worker == w:
                alone.add(report)
        alone.close()
        exact = nearest_rank(sorted(sim.by_worker[w]), 99.0)
        assert within_hdr_precision(alone.measured.latency.get_value_at_percentile(99.0), exact)
        assert alone.measured.latency.get_total_count() == len(sim.by_worker[w])


# --------------------------------------------------------------------------- counts


def test_counts_add_up(sim, summary):
    req = summary["requests"]
    assert req["sent"] == sim.sent == 2 * 8 * (1250 + 7)
    assert (req["ok"], req["http_errors"], req["client_errors"]) == (sim.ok, sim.http_errors, sim.client_errors)
    assert req["sent"] == req["ok"] + req["http_errors"] + req["client_errors"]
    assert req["completed"] == req["sent"] and req["unfinished"] == 0
    assert summary["status_codes"] == {"200": sim.ok, "503": sim.http_errors}
    assert summary["errors"] == {"timeout": sim.client_errors}
    assert summary["error_rate"] == pytest.approx((sim.http_errors + sim.client_errors) / sim.sent)
    assert summary["bytes_received"] == 100 * (sim.ok + sim.http_errors)
    assert summary["overflow"] == 0
    assert summary["worker_cpu_s"] == {"0": 0.7, "1": 0.7}


def test_unfinished_requests_are_counted():
    rec = Recorder()
    for i in range(5):
        rec.sent(MEASURED, T0 + i * MS)
    rec.finished(MEASURED, T0, T0, T0 + 3 * MS, 200, None, 0)
    agg = Aggregator(1, INTERVAL_S)
    agg.add(rec.flush(0, 0, in_flight=4, cpu_s=0.0, final=True))
    agg.close()
    req = agg.summary()["requests"]
    assert (req["sent"], req["completed"], req["unfinished"]) == (5, 1, 4)
    assert agg.snapshot().in_flight == 4


def test_rps_and_duration(sim, agg, summary):
    # First measured send is within the first interval, last completion up to ~30 s later.
    first = agg.measured.first_send_ns
    last = agg.measured.last_end_ns
    assert T0 <= first < T0 + INTERVAL_S * 1e9
    assert summary["duration_s"] == pytest.approx((last - first) / 1e9)
    assert summary["rps"] == pytest.approx(sim.sent / summary["duration_s"])


def test_warmup_is_kept_separate():
    sim = simulate(seconds=1, responses_per_interval=200, client_errors_per_interval=0, warmup_per_worker=30)
    agg = aggregate(sim)
    summary = agg.summary()
    assert summary["requests"]["sent"] == sim.sent == 2 * 4 * 200  # no warm-up in the measured counts
    assert summary["latency"]["count"] == len(sim.latency_us)
    warm = summary["warmup"]
    assert (warm["sent"], warm["completed"], warm["ok"]) == (60, 60, 60)
    assert warm["latency"]["count"] == 60
    assert warm["latency"]["p50"] == pytest.approx(5000.0, rel=1e-3)
    # The measured distribution does not contain the 5 s warm-up values.
    assert agg.measured.latency.get_count_at_value(5_000_000) == sim.latency_us.count(5_000_000)
    assert sum(p["sent"] for p in summary["series"]) == sim.sent  # nor does the series
    assert agg.snapshot().warmup_sent == 60


def test_warmup_only_interval_reports_no_measured_phase():
    rec = Recorder(open_loop=True)
    rec.sent(WARMUP, T0)
    rec.finished(WARMUP, T0, T0, T0 + MS, 200, None, 0)
    report = rec.flush(0, 0, 0, 0.0)
    assert report.measured is None and report.warmup is not None
    assert report.warmup.sent == 1 and report.warmup.ok == 1
    empty = rec.flush(0, 1, 0, 0.0)
    assert empty.measured is None and empty.warmup is None  # flush started a fresh interval


# --------------------------------------------------------------------------- open vs closed loop


@pytest.mark.parametrize(
    ("open_loop", "latency_us", "lag_count"),
    [
        (True, 1_500, 1),  # open loop: from the intended send, 1.5 ms; lag 0.5 ms recorded
        (False, 1_000, 0),  # closed loop: from the actual send, 1 ms; no lag
    ],
)
def test_latency_origin(open_loop, latency_us, lag_count):
    rec = Recorder(open_loop)
    intended, sent, end = T0, T0 + MS // 2, T0 + 3 * MS // 2
    rec.sent(MEASURED, sent)
    rec.finished(MEASURED, intended, sent, end, 200, None, 0)
    tally = rec.tally(MEASURED)
    assert tally.latency.get_total_count() == 1
    assert tally.latency.get_max_value() == latency_us  # below 2048 µs: exact in the histogram
    assert tally.service.get_max_value() == 1_000  # service time is always from the actual send
    assert tally.lag.get_total_count() == lag_count
    if lag_count:
        assert tally.lag.get_max_value() == 500
    agg = Aggregator(1, INTERVAL_S)
    agg.add(rec.flush(0, 0, 0, 0.0, final=True))
    agg.close()
    s = agg.summary()
    assert s["latency"]["max"] == latency_us / 1000
    assert s["service"]["max"] == 1.0
    assert s["schedule_lag"]["count"] == lag_count


def test_open_loop_latency_includes_generator_lag():
    # Coordinated omission: a request sent 1 s late and answered in 1 ms took 1.001 s from the user's view.
    sim_open = simulate(seconds=1, responses_per_interval=100, client_errors_per_interval=0, open_loop=True, seed=9)
    sim_closed = simulate(seconds=1, responses_per_interval=100, client_errors_per_interval=0, open_loop=False, seed=9)
    a_open, a_closed = aggregate(sim_open), aggregate(sim_closed)
    assert a_open.measured.lag.get_total_count() == len(sim_open.latency_us)
    assert a_closed.measured.lag.get_total_count() == 0
    for agg, sim in ((a_open, sim_open), (a_closed, sim_closed)):
        exact = nearest_rank(sorted(sim.latency_us), 50.0)
        assert within_hdr_precision(agg.measured.latency.get_value_at_percentile(50.0), exact)


def test_sub_microsecond_latency_is_recorded_as_one():
    rec = Recorder()
    rec.finished(MEASURED, T0, T0, T0 + 400, 200, None, 0)
    assert rec.tally(MEASURED).latency.get_total_count() == 1
    assert rec.tally(MEASURED).latency.get_min_value() == 1
    assert rec.phases[MEASURED].overflow == 0


# --------------------------------------------------------------------------- overflow


def test_value_far_above_one_hour_is_counted_in_overflow():
    rec = Recorder()
    rec.sent(MEASURED, T0)
    rec.sent(MEASURED, T0)
    rec.finished(MEASURED, T0, T0, T0 + 2 * 3600 * 10**9, 200, None, 0)  # 2 hours
    rec.finished(MEASURED, T0, T0, T0 + 5 * MS, 200, None, 0)
    agg = Aggregator(1, INTERVAL_S)
    agg.add(rec.flush(0, 0, 0, 0.0, final=True))
    agg.close()
    s = agg.summary()
    assert s["overflow"] == 1
    assert s["requests"]["ok"] == 2  # the request itself is still counted
    assert s["latency"]["count"] == 1  # but it is not in the distribution
    assert s["latency"]["max"] == pytest.approx(5.0, rel=1e-3)


def test_value_just_above_one_hour_is_counted_in_overflow():
    rec = Recorder()
    rec.finished(MEASURED, T0, T0, T0 + (HIGHEST_US + 1_000_000) * 1000, 200, None, 0)  # 1 h + 1 s
    assert rec.phases[MEASURED].overflow == 1
    assert rec.tally(MEASURED).latency.get_total_count() == 0


# --------------------------------------------------------------------------- per-second series and memory


def test_series_has_one_point_per_second(sim, agg, summary):
    assert agg.reports_per_second == 4
    series = summary["series"]
    assert [p["second"] for p in series] == [0, 1]
    for point in series:
        second = point["second"]
        assert point["sent"] == sim.per_second_sent[second] == 2 * 4 * (1250 + 7)
        assert point["completed"] == point["sent"]
        assert point["ok"] + point["errors"] == point["completed"]
        exact = sorted(sim.by_second[second])
        for key, p in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
            assert abs(point[key] * 1000 - nearest_rank(exact, p)) <= nearest_rank(exact, p) * 1e-3 + 1, (second, key)
        assert abs(point["max_ms"] * 1000 - exact[-1]) <= exact[-1] * 1e-3 + 1
    assert sum(p["ok"] for p in series) == sim.ok


def test_seconds_close_as_soon_as_every_worker_has_passed_them(sim):
    agg = Aggregator(2, INTERVAL_S)
    open_counts = []
    closed_after = []
    for report in sim.reports:  # order: seq 0 w0, seq 0 w1, seq 1 w0, ...
        agg.add(report)
        open_counts.append(len(agg._open_seconds))
        closed_after.append(len(agg.series))
    # Second 0 closes once both workers reported seq 3 (the 8th report), second 1 once both are final.
    assert closed_after == [0] * 7 + [1] * 8 + [2]
    assert max(open_counts) <= 1  # memory: at most the current second is held
    assert agg._open_seconds == {}
    agg.close()
    assert agg._open_seconds == {}
    assert len(agg.series) == 2


def test_close_flushes_seconds_of_unfinished_workers():
    sim = simulate(seconds=1, responses_per_interval=20, client_errors_per_interval=0)
    agg = Aggregator(3, INTERVAL_S)  # a third worker never reports: nothing can close on its own
    for report in sim.reports:
        agg.add(report)
    assert list(agg.series) == [] and len(agg._open_seconds) == 1
    agg.close()
    assert agg._open_seconds == {}
    assert [p.second for p in agg.series] == [0]
    assert agg.series[0].sent == sim.sent


def test_memory_is_bounded_by_seconds_not_requests():
    # 8 seconds of reports: the open buckets never grow, the series grows by one point per second.
    rec = [Recorder(), Recorder()]
    agg = Aggregator(2, INTERVAL_S)
    peak_open = 0
    for seq in range(32):
        for w in (0, 1):
            for i in range(3):
                t = T0 + int(seq * INTERVAL_S * 1e9) + i
                rec[w].sent(MEASURED, t)
                rec[w].finished(MEASURED, t, t, t + MS, 200, None, 0)
            agg.add(rec[w].flush(w, seq, 0, 0.0))
            peak_open = max(peak_open, len(agg._open_seconds))
    agg.close()
    assert peak_open <= 1
    assert agg._open_seconds == {}
    assert [p.second for p in agg.series] == list(range(8))
    assert all(p.sent == 24 for p in agg.series)


def test_latency_stats_empty_histogram():
    stats = latency_stats(new_histogram())
    assert stats["count"] == 0
    assert all(stats[k] is None for k in ("min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max", "stddev"))


def test_snapshot_reflects_totals(sim, agg, summary):
    snap = agg.snapshot()
    assert (snap.sent, snap.completed, snap.ok) == (sim.sent, sim.sent, sim.ok)
    assert snap.errors == sim.http_errors + sim.client_errors
    assert snap.workers_done == 2 and snap.workers == 2
    assert snap.elapsed_s == pytest.approx(2.0)
    assert snap.total_p99_ms == pytest.approx(summary["latency"]["p99"])


# --------------------------------------------------------------------------- fast percentile walk


@pytest.mark.parametrize("seed", range(6))
def test_percentile_values_equal_hdrh(seed):
    """The parent's own percentile walk gives exactly hdrh's values, for spread, narrow and single-bucket data."""
    rng = random.Random(seed)
    histogram = new_histogram()
    shape = seed % 3
    for _ in range(rng.randint(1, 3000)):
        if shape == 0:
            value = int(math.exp(rng.uniform(0, math.log(3_000_000_000))))  # log-uniform 1 µs .. 50 min
        elif shape == 1:
            value = 20_000 + rng.randint(0, 300)  # a narrow 20 ms peak
        else:
            value = 777  # every value in one bucket
        histogram.record_value(max(1, value), rng.randint(1, 5))
    wanted = [0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0, rng.uniform(0, 100)]
    assert percentile_values(histogram, wanted) == histogram.get_percentile_to_value_dict(wanted)
    assert percentile_values(new_histogram(), wanted) == {}


def test_record_counts_equals_record_value():
    """The parent's inline recording of bucket counts fills exactly the buckets hdrh's record_value does."""
    rng = random.Random(3)
    counts: dict[int, int] = {}
    for _ in range(5000):
        value = bucket_floor(max(1, int(math.exp(rng.uniform(0, math.log(HIGHEST_US))))))
        counts[value] = counts.get(value, 0) + rng.randint(1, 3)
    counts[1] = counts[HIGHEST_US] = 2  # both ends of the range
    expected = new_histogram()
    for value, n in counts.items():
        expected.record_value(value, n)
    a, b = new_histogram(), new_histogram()
    b.record_value(123_456, 7)  # a histogram that already holds something
    record_counts(counts, a, b)
    assert list(a.counts) == list(expected.counts)
    assert (a.get_total_count(), a.get_min_value(), a.get_max_value()) == (
        expected.get_total_count(), expected.get_min_value(), expected.get_max_value())
    expected.record_value(123_456, 7)
    assert list(b.counts) == list(expected.counts) and b.get_total_count() == expected.get_total_count()


def test_interval_without_failures_ships_one_dict_for_latency_and_success():
    rec = Recorder()
    rec.sent(MEASURED, T0)
    rec.finished(MEASURED, T0, T0, T0 + MS, 200, None, 0)
    clean = rec.flush(0, 0, 0, 0.0).measured
    assert clean.success is clean.latency
    rec.sent(MEASURED, T0)
    rec.finished(MEASURED, T0, T0, T0 + MS, 200, None, 0)
    rec.sent(MEASURED, T0)
    rec.finished(MEASURED, T0, T0, T0 + 2 * MS, 503, None, 0)
    mixed = rec.flush(0, 1, 0, 0.0).measured
    assert mixed.success is not mixed.latency
    assert sum(mixed.latency.values()) == 2 and sum(mixed.success.values()) == 1
    agg = Aggregator(1, INTERVAL_S)
    agg.add(IntervalReport(0, 0, clean, None, 0, 0.0, 0.0))
    agg.add(IntervalReport(0, 1, mixed, None, 0, 0.0, 0.0, final=True))
    agg.close()
    assert agg.measured.latency.get_total_count() == 3 and agg.measured.success.get_total_count() == 2
    assert agg.summary()["latency_error_aware"]["max"] == math.inf


# --------------------------------------------------------------------------- the recorder against a plain reference


def _reference_histograms(events: list[tuple], open_loop: bool) -> dict[str, list[int]]:
    """What recording each value straight into its HdrHistogram gives: the definition Recorder must match."""
    hists = {name: new_histogram() for name in ("latency", "success", "service", "lag")}
    for intended, sent, end, status, error, failed_check in events:
        if open_loop:
            hists["lag"].record_value(max(1, (sent - intended) // 1000))
        if error is not None:
            continue
        latency = max(1, (end - (intended if open_loop else sent)) // 1000)
        service = max(1, (end - sent) // 1000)
        for name, value in (("latency", latency), ("service", service)):
            if value <= HIGHEST_US:
                hists[name].record_value(value)
        if status < 400 and not failed_check and latency <= HIGHEST_US:
            hists["success"].record_value(latency)
    return {name: list(h.counts) for name, h in hists.items()}


@pytest.mark.parametrize("open_loop", [True, False], ids=["open", "closed"])
@pytest.mark.parametrize("seed", range(6))
def test_recorder_matches_recording_every_value(open_loop: bool, seed: int) -> None:
    """Shared dicts (success until the first failure, service in a closed loop) change nothing the parent sees."""
    rng = random.Random(seed)
    events: list[tuple] = []
    rec = Recorder(open_loop)
    tally = PhaseTally()
    failure_rate = rng.choice([0.0, 0.01, 0.3])
    for interval in range(4):
        for _ in range(rng.randrange(0, 300)):
            intended = T0 + rng.randrange(10**9)
            sent = intended + (rng.randrange(5 * MS) if open_loop else 0)
            end = sent + rng.choice([rng.randrange(10**6), rng.randrange(10**10), (HIGHEST_US + 5) * 1000])
            roll = rng.random()
            status, error, failed_check = 200, None, False
            if roll < failure_rate / 3:
                status = rng.choice([404, 500, 503])
            elif roll < 2 * failure_rate / 3:
                error = rng.choice(["timeout", "read"])
                status = None
            elif roll < failure_rate:
                failed_check = True
            rec.sent(MEASURED, sent, intended)
            facts = ResponseFacts(check_failed="status") if failed_check else None
            rec.finished(MEASURED, intended, sent, end, status, error, 10, facts, error is None and status < 400 and not failed_check)
            events.append((intended, sent, end, status, error, failed_check))
        report = rec.flush(0, interval, 0, 0.0).measured
        if report is not None:
            tally.merge(report)
            assert (report.service is report.latency) == (not open_loop)
            assert (report.success is report.latency) == (report.http_errors + report.check_errors == 0)
    expected = _reference_histograms(events, open_loop)
    for name, counts in expected.items():
        assert list(getattr(tally, name).counts) == counts, name
    responses = [e for e in events if e[4] is None]
    assert tally.ok == sum(1 for e in responses if e[3] < 400 and not e[5])
    assert tally.http_errors == sum(1 for e in responses if e[3] >= 400)
    assert tally.check_errors == sum(1 for e in responses if e[3] < 400 and e[5])


@pytest.mark.parametrize("seed", range(4))
def test_closed_response_counts_as_finished_does(seed: int) -> None:
    """The closed loop's lean call and the general ones leave the same reports, failures and overflow included."""
    rng = random.Random(seed)
    lean, general = Recorder(), Recorder()
    for interval in range(3):
        events = []
        for _ in range(rng.randrange(1, 400)):
            sent = T0 + rng.randrange(10**9)
            end = sent + rng.choice([rng.randrange(10**6), rng.randrange(10**10), (HIGHEST_US + 5) * 1000, 300])
            events.append((end, sent, rng.choice([200, 200, 200, 204, 302, 404, 503]) if seed else 200))
        for end, sent, status in sorted(events):  # a worker records responses as they end
            again = rng.random() < 0.5  # the user sends its next request as this one ends
            lean.closed_response(MEASURED, sent, end, status, 17, again)
            general.finished(MEASURED, sent, sent, end, status, None, 17, None, status < 400)
            if again:
                general.sent(MEASURED, end)
        a, b = lean.flush(0, interval, 0, 0.0).measured, general.flush(0, interval, 0, 0.0).measured
        assert a == b
        assert (a.success is a.latency) == (b.success is b.latency)


def test_snapshot_last_second_is_the_last_closed_one_and_counts_its_warmup_sends():
    """The live view's 'now' is second closed_s - 1 even when nothing happened in it (not an older, stale point),
    and its sends include warm-up sends, so they compare with the schedule over that same second."""
    per_second = round(1 / INTERVAL_S)
    agg = Aggregator(1, INTERVAL_S)
    seq = 0
    for second, (warm, measured) in enumerate([(10, 0), (4, 6), (0, 10), (0, 0)]):
        for i in range(per_second):
            rec = Recorder()
            if i == 0:
                for k in range(warm):
                    rec.sent(WARMUP, T0 + k * MS)
                    rec.finished(WARMUP, T0, T0 + k * MS, T0 + k * MS + MS, 200, None, 0)
                for k in range(measured):
                    rec.sent(MEASURED, T0 + k * MS)
                    status, error = (503, None) if k == 0 else (None, "timeout") if k == 1 else (200, None)
                    rec.finished(MEASURED, T0, T0 + k * MS, T0 + k * MS + 2 * MS, status, error, 0)
            agg.add(rec.flush(0, seq, in_flight=0, cpu_s=0.0))
            seq += 1
        snap = agg.snapshot()
        assert snap.closed_s == second + 1  # a second closes with its last report
    agg.add(Recorder().flush(0, seq, in_flight=0, cpu_s=0.0))
    snap = agg.snapshot()
    assert snap.closed_s == 4
    assert (snap.last_rps, snap.last_sent_rps, snap.last_p50_ms) == (0.0, 0.0, None)  # second 3: nothing, not second 2's 10
    assert snap.measure_start_s == 1.0 and snap.warmup_completed == 14
    assert snap.status_codes == ((200, 12), (503, 2)) and snap.error_kinds == (("timeout", 2),) and snap.http_errors == 2
    agg2 = Aggregator(1, INTERVAL_S)
    for s in range(2 * per_second + 1):
        rec = Recorder()
        if s == per_second:
            for k in range(6):
                rec.sent(MEASURED if k >= 4 else WARMUP, T0 + k * MS)
        agg2.add(rec.flush(0, s, in_flight=0, cpu_s=0.0))
    assert agg2.snapshot().last_sent_rps == 6.0  # second 1: 4 warm-up + 2 measured sends

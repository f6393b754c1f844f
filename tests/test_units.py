"""bench.units: the human units profiles are written in."""

from __future__ import annotations

import math
import weakref

import pytest

from bench.units import UnitError, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("500us", 500e-6),
        ("500µs", 500e-6),
        ("100ns", 100e-9),
        ("1.5s", 1.5),
        (" 10 s ", 10.0),  # whitespace around and between number and unit
        ("0s", 0.0),  # zero is a valid duration (e.g. an instant ramp step)
        ("1e3ms", 1.0),  # exponent notation
        (0, 0.0),  # zero needs no unit
        ("0", 0.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=0)


@pytest.mark.parametrize("value", [250, "250", 1.5, "7", 7, 0.5, " 30 "])
def test_a_bare_duration_is_refused_with_both_readings_offered(value):
    # "10" is seconds to one reader and milliseconds to another: bench asks for the unit.
    with pytest.raises(UnitError) as info:
        parse_duration(value)
    number = f"{float(value):g}"
    assert f"{number}s or {number}ms" in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "fast",  # not a number
        "-1s",  # negative
        -1,  # negative bare number
        "",  # empty
        "   ",  # blank
        None,  # missing
        True,  # bool is an int subclass but never a duration
        False,
        "1 fortnight",  # unknown unit
        "10 ss",
        "1s2",
        float("nan"),
        float("inf"),
        "nan",
        "inf",
        "1e999s",  # overflows to inf
        [1],
        {"s": 1},
    ],
)
def test_parse_duration_rejects(value):
    with pytest.raises(UnitError) as info:
        parse_duration(value)
    assert isinstance(info.value, ValueError)  # callers may catch ValueError
    assert repr(value) in str(info.value)  # the message quotes the bad value


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("500/s", 500.0),
        ("30/m", 0.5),
        ("30/min", 0.5),
        ("3600/h", 1.0),
        ("2/ms", 2000.0),
        ("10/sec", 10.0),
        ("120/minute", 2.0),
        (" 5 / s ", 5.0),  # whitespace tolerated
        ("0.5/s", 0.5),
        ("100", 100.0),  # bare string: per second
        (100, 100.0),  # bare int
        (2.5, 2.5),  # bare float
    ],
)
def test_parse_rate(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "value",
    [
        "fast",
        "-1/s",
        -5,
        0,  # a rate must be > 0
        "0/s",
        "",
        None,
        True,
        "1/fortnight",  # unknown period
        "5 per second",
        float("nan"),
        float("inf"),
        "nan/s",
        "1e999/s",
    ],
)
def test_parse_rate_rejects(value):
    with pytest.raises(UnitError) as info:
        parse_rate(value)
    assert repr(value) in str(info.value)


def test_bare_number_scaling_is_linear():
    # Many values: a bare number times the bare unit, no hidden offsets or rounding.
    for n in (1, 3, 17, 250, 999, 12345):
        assert math.isclose(parse_duration(f"{n}ms"), n / 1000, rel_tol=1e-12)
        assert math.isclose(parse_duration(f"{n}s"), n, rel_tol=1e-12)
        assert math.isclose(parse_rate(f"{n}/m"), n / 60, rel_tol=1e-12)


def test_collector_paused_restores_the_collector_as_it_was():
    import gc

    from bench.gcpause import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller's own pause is left alone
        try:
            with collector_paused():
                raise ValueError
        except ValueError:
            pass
    finally:
        gc.enable()
    with pytest.raises(ValueError):
        with collector_paused():
            raise ValueError
    assert gc.isenabled()


def test_heap_frozen_leaves_old_objects_out_of_collections_and_puts_them_back():
    import gc

    from bench.gcpause import heap_frozen

    class Cycle:
        pass

    def cycle():
        a, b = Cycle(), Cycle()
        a.other, b.other = b, a
        return a

    assert gc.get_freeze_count() == 0
    gc.disable()  # no automatic collection: only the explicit ones below
    try:
        old = weakref.ref(cycle())  # garbage already on entry: frozen, not collected inside
        with heap_frozen():
            assert gc.get_freeze_count() > 0
            new = weakref.ref(cycle())  # garbage made inside: collected inside
            gc.collect()
            assert new() is None and old() is not None
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert old() is None
        gc.freeze()  # someone else froze objects: the block leaves their freeze alone and adds nothing
        try:
            before = gc.get_freeze_count()
            with heap_frozen():
                made_inside = weakref.ref(cycle())
                assert gc.get_freeze_count() == before
            assert gc.get_freeze_count() == before
            gc.collect()
            assert made_inside() is None
        finally:
            gc.unfreeze()
        with pytest.raises(ValueError):
            with heap_frozen():
                raise ValueError
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_package_root_exports_its_api_lazily():
    import bench

    assert {"run", "load_profile", "Profile", "ProfileError", "RunResult"} <= set(dir(bench))
    assert bench.ProfileError.__module__ == "bench.engine.errors" and callable(bench.run)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bench.nope  # noqa: B018

"""Statistics and interleaved timing: order, round rules, and a known cost ratio."""
import itertools
import time

import numpy as np
import pytest

from bench.measure.stats import bootstrap_ci, percentiles_ms
from bench.measure.timing import PairedTiming, interleaved_pairs, time_single


# ---------------------------------------------------------------- stats

def test_bootstrap_ci_contains_median_and_is_reproducible():
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 1.0, size=200)
    lo, hi = bootstrap_ci(x)
    assert lo < np.median(x) < hi
    assert hi - lo < 1.0  # 200 samples of sd 1: the median is known to well within +-0.5
    assert bootstrap_ci(x) == (lo, hi)  # same seed, same interval
    assert bootstrap_ci(x, seed=3) != (lo, hi)


def test_bootstrap_ci_narrower_at_lower_confidence_and_custom_stat():
    x = np.arange(50, dtype=float)
    lo95, hi95 = bootstrap_ci(x, alpha=0.05)
    lo50, hi50 = bootstrap_ci(x, alpha=0.5)
    assert lo95 <= lo50 <= hi50 <= hi95
    lo, hi = bootstrap_ci(x, stat=lambda a: float(np.max(a)))  # no axis argument: slow path
    assert hi == 49.0 and lo <= 49.0


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    assert bootstrap_ci([2.0] * 10) == (2.0, 2.0)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_percentiles_ms():
    p = percentiles_ms([i / 1000.0 for i in range(1, 101)])  # 1..100 ms
    assert p["p50"] == pytest.approx(50.5)
    assert p["p90"] == pytest.approx(90.1)
    assert p["p99"] == pytest.approx(99.01)
    assert percentiles_ms([]) == {"p50": None, "p90": None, "p99": None}
    assert percentiles_ms([0.25]) == {"p50": 250.0, "p90": 250.0, "p99": 250.0}


# ---------------------------------------------------------------- timing with a fake clock

class FakeClock:
    """A clock that only moves when a fake workload says so; records every call."""

    def __init__(self):
        self.t = 0.0
        self.events = []

    def __call__(self):
        return self.t

    def work(self, name, cost_per_item):
        def run(item):
            self.events.append((name, item))
            self.t += cost_per_item(item) if callable(cost_per_item) else cost_per_item
        return run


def test_interleaving_order_alternates_per_round_and_warmup_not_recorded():
    c = FakeClock()
    res = interleaved_pairs(c.work("A", 2.0), c.work("B", 1.0), ["x", "y"],
                            min_rounds=3, warmup=1, clock=c)
    assert res.n_rounds == 3
    # Warm-up round then three recorded rounds; first go alternates A, B, A, B by round.
    expected = []
    for first, second in [("A", "B"), ("B", "A"), ("A", "B"), ("B", "A")]:
        for item in ["x", "y"]:
            expected += [(first, item), (second, item)]
    assert c.events == expected
    assert res.ref_first == [False, True, False]  # the warm-up took "ref first"
    assert res.ref_item_s == [[2.0, 2.0]] * 3 and res.var_item_s == [[1.0, 1.0]] * 3
    assert res.ref_s == [4.0] * 3 and res.var_s == [2.0] * 3
    assert res.speedup() == pytest.approx(2.0)
    assert res.speedup_ci95() == pytest.approx((2.0, 2.0))


def test_interleaving_without_warmup_starts_with_reference():
    c = FakeClock()
    interleaved_pairs(c.work("A", 1.0), c.work("B", 1.0), [0], min_rounds=2, warmup=0, clock=c)
    assert c.events == [("A", 0), ("B", 0), ("B", 0), ("A", 0)]


def test_rounds_continue_until_min_seconds_and_stop_at_max_rounds():
    c = FakeClock()
    # Each round costs 1 + 1 timed seconds; 9 seconds need 5 rounds (> min_rounds=2).
    res = interleaved_pairs(c.work("A", 1.0), c.work("B", 1.0), ["u"],
                            min_rounds=2, min_seconds=9.0, max_rounds=50, warmup=0, clock=c)
    assert res.n_rounds == 5
    c = FakeClock()
    res = interleaved_pairs(c.work("A", 1.0), c.work("B", 1.0), ["u"],
                            min_rounds=2, min_seconds=1e9, max_rounds=7, warmup=2, clock=c)
    assert res.n_rounds == 7
    assert len(c.events) == 2 * (7 + 2)


def test_per_item_seconds_kept_in_item_order_when_variant_goes_first():
    c = FakeClock()
    cost = {"short": 1.0, "long": 3.0}
    res = interleaved_pairs(c.work("A", lambda i: 2 * cost[i]), c.work("B", lambda i: cost[i]),
                            ["short", "long"], min_rounds=2, warmup=0, clock=c)
    for r in range(2):
        assert res.ref_item_s[r] == [2.0, 6.0]
        assert res.var_item_s[r] == [1.0, 3.0]
    assert sorted(res.var_item_flat()) == [1.0, 1.0, 3.0, 3.0]


def test_speedup_is_median_of_round_ratios():
    t = PairedTiming(ref_s=[2.0, 3.0, 100.0], var_s=[1.0, 1.0, 1.0])
    assert t.speedup() == pytest.approx(3.0)  # the outlier round moves nothing
    lo, hi = t.speedup_ci95()
    assert 2.0 <= lo <= 3.0 <= hi <= 100.0


def test_bad_arguments():
    with pytest.raises(ValueError):
        interleaved_pairs(lambda i: None, lambda i: None, [])
    with pytest.raises(ValueError):
        interleaved_pairs(lambda i: None, lambda i: None, [1], min_rounds=5, max_rounds=2)
    with pytest.raises(ValueError):
        time_single(lambda i: None, [])


def test_time_single_with_fake_clock():
    c = FakeClock()
    res = time_single(c.work("A", lambda i: float(i)), [1, 2], min_rounds=2, min_seconds=10.0,
                      warmup=1, clock=c)
    # Rounds of 3 s: 4 rounds reach 10 s; the warm-up round is not recorded.
    assert res.n_rounds == 4
    assert res.item_s == [[1.0, 2.0]] * 4
    assert res.round_s == [3.0] * 4
    assert len(c.events) == 2 * 5


# ---------------------------------------------------------------- timing with the real clock

def _busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _spin(n):
    x = 0
    for i in range(n):
        x += i
    return x


def _calibrate(target_s=0.001):
    n = 1000
    while True:
        t0 = time.thread_time()
        _spin(n)
        dt = time.thread_time() - t0
        if dt > 0.02:
            return max(1, int(n * target_s / dt))
        n *= 2


def test_known_cost_ratio_gives_speedup_near_two():
    # Reference does exactly twice the work of the variant (~2 ms vs ~1 ms): true speedup 2.
    # Timed with this thread's CPU clock, so other processes competing for the 2 cores
    # (preemption) cannot squeeze the ratio towards 1.
    n = _calibrate()
    res = interleaved_pairs(lambda _: _spin(2 * n), lambda _: _spin(n), range(5),
                            min_rounds=15, min_seconds=0.3, max_rounds=40, warmup=1,
                            clock=time.thread_time)
    s = res.speedup()
    lo, hi = res.speedup_ci95()
    assert 1.5 < s < 2.6, s  # wide: the machine is noisy
    assert lo <= s <= hi
    assert lo <= 2.0 * 1.1 and hi >= 2.0 * 0.9, (lo, hi)  # the interval covers ~2
    assert res.n_rounds >= 15


def test_time_single_real_clock_sums():
    res = time_single(lambda _: _busy(0.001), [0, 1, 2], min_rounds=3, warmup=1)
    assert res.n_rounds == 3
    assert all(len(row) == 3 for row in res.item_s)
    assert all(0.0009 < s < 0.05 for s in res.item_flat())


# ---------------------------------------------------------------- the sequential rule and its cap

from bench.measure.timing import (STOP_DECIDED, STOP_FLOORS, STOP_MAX_ROUNDS,  # noqa: E402
                                  STOP_TIME_CAP, SingleTiming)


def _noisy(cost, sd=0.5, seed=0):
    """Per-call cost x a lognormal factor: rounds whose ratio never settles within 10 %."""
    rng = np.random.default_rng(seed)
    return lambda item: cost * float(rng.lognormal(0.0, sd))


def _cycle(*costs):
    """Per-call costs taken in turn: exact seconds, and a ratio that jumps round to round."""
    it = itertools.cycle(costs)
    return lambda item: next(it)


def test_sequential_rule_stops_at_the_floor_when_ratios_are_steady():
    c = FakeClock()
    res = interleaved_pairs(c.work("A", 2.0), c.work("B", 1.0), ["x", "y"], min_rounds=3,
                            target_rel_width=0.10, max_seconds=1000.0, clock=c)
    assert res.n_rounds == 3  # a steady ratio: the interval is a point after the floor
    assert res.stopped == STOP_DECIDED and res.floor == 3
    assert res.speedup() == pytest.approx(2.0) and res.rel_width() == 0.0
    assert res.warmup_s == pytest.approx(6.0) and res.elapsed_s == pytest.approx(24.0)
    assert (res.target_rel_width, res.max_seconds) == (0.10, 1000.0)


def test_sequential_rule_still_waits_for_min_seconds():
    c = FakeClock()
    # steady rounds of 2 + 1 s: decided from round 3 on, but 20 timed seconds need 7 rounds
    res = interleaved_pairs(c.work("A", 2.0), c.work("B", 1.0), ["u"], min_rounds=3,
                            min_seconds=20.0, target_rel_width=0.10, max_seconds=1000.0, clock=c)
    assert res.n_rounds == 7 and res.stopped == STOP_DECIDED


def test_noisy_ratios_go_on_until_the_time_cap():
    c = FakeClock()
    res = interleaved_pairs(c.work("A", _noisy(2.0, seed=1)), c.work("B", _noisy(1.0, seed=2)),
                            ["u"], min_rounds=3, target_rel_width=0.10, max_seconds=60.0, clock=c)
    assert res.stopped == STOP_TIME_CAP
    assert res.n_rounds > 3  # past the floor: it kept measuring while the cap allowed
    assert res.rel_width() >= 0.10  # not decided: the caller's too-noisy check judges it
    # whole rounds only, and no round started that the mean round said would pass the cap
    mean_round = (res.ref_total_s() + res.var_total_s()) / res.n_rounds
    assert res.elapsed_s <= 60.0 < res.elapsed_s + mean_round
    assert res.elapsed_s == pytest.approx(c.t)  # warm-up included


def test_noisy_ratios_without_a_cap_stop_at_max_rounds():
    c = FakeClock()
    res = interleaved_pairs(c.work("A", _noisy(2.0, seed=3)), c.work("B", _noisy(1.0, seed=4)),
                            ["u"], min_rounds=3, max_rounds=12, target_rel_width=0.10, clock=c)
    assert res.n_rounds == 12 and res.stopped == STOP_MAX_ROUNDS


def test_the_cap_never_cuts_below_the_floor():
    c = FakeClock()
    # rounds of 2-3.5 s and a 10 s cap; the 3 s warm-up is not above 10/3 s: the floor stays 4
    res = interleaved_pairs(c.work("A", _cycle(2.0, 1.0, 2.5)), c.work("B", 1.0), ["u"],
                            min_rounds=4, target_rel_width=0.10, max_seconds=10.0, clock=c)
    assert res.floor == 4 and res.n_rounds == 4 and res.stopped == STOP_TIME_CAP
    assert res.elapsed_s == pytest.approx(13.5)  # the floor won over the cap (11.5 s after 3)


def test_min_seconds_beyond_the_cap_gives_way_to_the_cap():
    c = FakeClock()
    res = interleaved_pairs(c.work("A", 2.0), c.work("B", 1.0), ["u"], min_rounds=3,
                            min_seconds=1e9, target_rel_width=0.10, max_seconds=30.0, clock=c)
    assert res.stopped == STOP_TIME_CAP and res.n_rounds == 9  # 3 s warm-up + 9 x 3 s = 30 s


def test_a_long_warmup_lowers_the_floor_to_two():
    c = FakeClock()
    # a 5-minute recording: the reference decodes in 60 s, the variant in 30, 60 or 20 s;
    # the warm-up round alone is 90 s > 120 / 3, so the floor of 5 becomes 2
    res = interleaved_pairs(c.work("A", 60.0), c.work("B", _cycle(30.0, 60.0, 20.0)), ["long"],
                            min_rounds=5, min_seconds=30.0, target_rel_width=0.10,
                            max_seconds=120.0, clock=c)
    assert res.floor == 2 and res.n_rounds == 2 and res.stopped == STOP_TIME_CAP
    assert res.warmup_s == pytest.approx(90.0) and res.elapsed_s == pytest.approx(290.0)
    # at exactly max_seconds / 3 the floor stays: "more than" a third lowers it
    c = FakeClock()
    res = interleaved_pairs(c.work("A", 20.0), c.work("B", _cycle(20.0, 10.0)), ["u"],
                            min_rounds=5, target_rel_width=0.10, max_seconds=120.0, clock=c)
    assert res.floor == 5 and res.n_rounds == 5 and res.stopped == STOP_TIME_CAP


def test_one_round_longer_than_the_cap_still_records_two():
    c = FakeClock()
    res = interleaved_pairs(c.work("A", 200.0), c.work("B", _cycle(100.0, 50.0)), ["u"],
                            min_rounds=3, target_rel_width=0.10, max_seconds=120.0, clock=c)
    assert res.n_rounds == 2 and res.floor == 2 and res.stopped == STOP_TIME_CAP
    # with no warm-up the first recorded round tells the same
    c = FakeClock()
    res = interleaved_pairs(c.work("A", 200.0), c.work("B", _cycle(100.0, 50.0)), ["u"],
                            min_rounds=3, warmup=0, target_rel_width=0.10, max_seconds=120.0,
                            clock=c)
    assert res.n_rounds == 2 and res.floor == 2 and res.warmup_s == 0.0


def test_a_long_warmup_of_the_reference_alone_lowers_its_floor_to_two():
    c = FakeClock()
    res = time_single(c.work("A", _cycle(60.0, 80.0, 50.0)), ["long"], min_rounds=5,
                      target_rel_width=0.10, max_seconds=120.0, clock=c)
    assert res.floor == 2 and res.n_rounds == 2 and res.stopped == STOP_TIME_CAP
    assert len(c.events) == 3  # warm-up + 2 rounds


def test_time_single_sequential_rule_uses_the_median_round_time():
    c = FakeClock()
    res = time_single(c.work("A", 1.5), [1, 2], min_rounds=3, target_rel_width=0.10,
                      max_seconds=1000.0, clock=c)
    assert res.n_rounds == 3 and res.stopped == STOP_DECIDED and res.rel_width() == 0.0
    c = FakeClock()
    res = time_single(c.work("A", _noisy(1.0, seed=10)), [1, 2], min_rounds=3,
                      target_rel_width=0.10, max_seconds=40.0, clock=c)
    assert res.stopped == STOP_TIME_CAP and res.n_rounds > 3 and res.rel_width() >= 0.10
    assert res.elapsed_s <= 40.0 < res.elapsed_s + res.total_s() / res.n_rounds
    c = FakeClock()
    res = time_single(c.work("A", _noisy(1.0, seed=11)), [1], min_rounds=3, max_rounds=9,
                      target_rel_width=0.10, clock=c)
    assert res.stopped == STOP_MAX_ROUNDS and res.n_rounds == 9


def test_no_target_keeps_the_fixed_floors_and_says_so():
    # noisy rounds, no target: exactly min_rounds / min_seconds as before, whatever the spread
    for warmup in (0, 1):
        c = FakeClock()
        res = interleaved_pairs(c.work("A", _noisy(2.0, seed=12)), c.work("B", 1.0), ["u"],
                                min_rounds=4, warmup=warmup, clock=c)
        assert res.n_rounds == 4 and res.stopped == STOP_FLOORS
        assert res.target_rel_width is None and res.max_seconds is None and res.floor == 4
    c = FakeClock()
    res = interleaved_pairs(c.work("A", 1.0), c.work("B", 1.0), ["u"], min_rounds=2,
                            min_seconds=1e9, max_rounds=7, clock=c)
    assert res.n_rounds == 7 and res.stopped == STOP_MAX_ROUNDS
    c = FakeClock()
    res = time_single(c.work("A", 1.0), [1], min_rounds=3, clock=c)
    assert res.n_rounds == 3 and res.stopped == STOP_FLOORS
    # the gate self-test's call: min_rounds == max_rounds, no target, no cap
    c = FakeClock()
    res = interleaved_pairs(c.work("A", _noisy(1.0, seed=13)), c.work("B", 1.0), [0, 1, 2],
                            min_rounds=8, max_rounds=8, warmup=1, clock=c)
    assert res.n_rounds == 8 and len(c.events) == 2 * 3 * 9


def test_a_cap_without_a_target_caps_the_fixed_floors():
    c = FakeClock()
    res = interleaved_pairs(c.work("A", 1.0), c.work("B", 1.0), ["u"], min_rounds=2,
                            min_seconds=1e9, max_seconds=11.0, clock=c)
    assert res.stopped == STOP_TIME_CAP and res.n_rounds == 4  # 2 s warm-up + 4 x 2 s = 10 s


def test_bad_rule_arguments():
    with pytest.raises(ValueError):
        interleaved_pairs(lambda i: None, lambda i: None, [1], target_rel_width=0.0)
    with pytest.raises(ValueError):
        time_single(lambda i: None, [1], max_seconds=-1.0)
    assert SingleTiming().rel_width() == float("inf")
    assert PairedTiming().rel_width() == float("inf")

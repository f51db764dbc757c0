"""Statistics and interleaved timing: order, round rules, and a known cost ratio."""
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

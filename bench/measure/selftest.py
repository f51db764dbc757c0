"""The gate's own error rates, measured on a workload whose cost is set exactly.

A gate earns trust by two numbers: how often it fails a run compared with itself (A/A, a
false alarm) and how often it catches a real regression of a set size. The workload is a
pure-Python loop of n iterations: its cost scales with n and nothing else, so a slowdown
of exactly 20% is n x 1.2. Each comparison measures a baseline run and a candidate run the
way the suites do (interleaved rounds, median ratio, bootstrap interval) and asks the real
gate (bench.baseline.compare_case) for its verdict.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from bench.baseline import DEFAULT_TOLERANCES, compare_case
from bench.measure.timing import interleaved_pairs


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def calibrate(target_s: float = 0.002) -> int:
    """Iterations that take about target_s on this machine."""
    n = 10000
    t = time.perf_counter()
    spin(n)
    return max(1000, int(n * target_s / (time.perf_counter() - t)))


def measured_speedup(n_ref: int, n_var: int, items: int, rounds: int) -> tuple[float, list[float]]:
    pt = interleaved_pairs(lambda _: spin(n_ref), lambda _: spin(n_var), list(range(items)),
                           min_rounds=rounds, max_rounds=rounds, warmup=1)
    return pt.speedup(), list(pt.speedup_ci95())


@dataclass
class Rates:
    comparisons: int
    aa_fail: int
    slowdown_caught: int
    wer_caught: int
    slowdown: float
    speedup_tol: float

    def summary(self) -> str:
        n = self.comparisons
        return (f"{n} comparisons, speedup tolerance {self.speedup_tol:g}: A/A failed "
                f"{self.aa_fail}/{n} ({100 * self.aa_fail / n:.1f}%); a {100 * self.slowdown:.0f}% "
                f"slowdown caught {self.slowdown_caught}/{n} ({100 * self.slowdown_caught / n:.1f}%); "
                f"a 1-point WER loss caught {self.wer_caught}/{n}")


def gate_error_rates(comparisons: int = 200, slowdown: float = 0.20, items: int = 3,
                     rounds: int = 8, item_s: float = 0.002,
                     speedup_tol: float | None = None) -> Rates:
    tols = {k: dict(v) for k, v in DEFAULT_TOLERANCES.items()}
    if speedup_tol is not None:
        tols["speedup"]["value"] = speedup_tol
    n = calibrate(item_s)
    rates = Rates(comparisons, 0, 0, 0, slowdown, tols["speedup"]["value"])
    for _ in range(comparisons):
        base_s, _ = measured_speedup(n, n, items, rounds)
        baseline = {"speedup": base_s, "wer": 5.0}
        same, same_ci = measured_speedup(n, n, items, rounds)
        slow, slow_ci = measured_speedup(n, int(n * (1 + slowdown)), items, rounds)
        verdict = lambda s, ci, wer: compare_case(  # noqa: E731
            {"task": "selftest", "card": "spin", "variant": "v", "device": "cpu",
             "metrics": {"speedup": s, "speedup_ci95": ci, "wer": wer}}, baseline, tols)["verdict"]
        rates.aa_fail += verdict(same, same_ci, 5.0) == "fail"
        rates.slowdown_caught += verdict(slow, slow_ci, 5.0) == "fail"
        rates.wer_caught += verdict(same, same_ci, 6.0) == "fail"
    return rates

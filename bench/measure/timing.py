"""Interleaved A/B timing of a reference and a variant.

Why interleave: on a shared 2-core machine one process timed twice varies by about 15 %.
Timing the reference and the variant on the same item back to back (A B A B ...) and taking
the ratio round by round lets slow drift (thermal, noisy neighbours, frequency scaling) hit
both sides alike, so it cancels in the ratio instead of landing in the speedup.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from bench.measure.stats import bootstrap_ci

__all__ = ["PairedTiming", "SingleTiming", "interleaved_pairs", "time_single"]

Clock = Callable[[], float]


def _timed(run: Callable[[Any], None], item: Any, clock: Clock) -> float:
    t0 = clock()
    run(item)
    return clock() - t0


def _check_rounds(items: Sequence, min_rounds: int, max_rounds: int, warmup: int) -> None:
    if len(items) == 0:
        raise ValueError("timing needs at least one item")
    if min_rounds < 1:
        raise ValueError(f"min_rounds must be >= 1, got {min_rounds}")
    if max_rounds < min_rounds:
        raise ValueError(f"max_rounds ({max_rounds}) < min_rounds ({min_rounds})")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")


def _enough(n_rounds: int, timed_s: float, min_rounds: int, min_seconds: float,
            max_rounds: int) -> bool:
    # Stop once both floors are met; max_rounds caps a workload too fast for min_seconds.
    if n_rounds >= max_rounds:
        return True
    return n_rounds >= min_rounds and timed_s >= min_seconds


@dataclass
class PairedTiming:
    """Recorded (post warm-up) rounds of an interleaved reference/variant timing.

    ``ref_item_s[r][i]`` / ``var_item_s[r][i]``: seconds of item ``i`` in round ``r`` (items in
    the caller's order, whatever order they ran in). ``ref_s`` / ``var_s``: per-round totals.
    ``ref_first[r]``: whether the reference ran first on each item in round ``r``.
    """

    ref_s: list[float] = field(default_factory=list)
    var_s: list[float] = field(default_factory=list)
    ref_item_s: list[list[float]] = field(default_factory=list)
    var_item_s: list[list[float]] = field(default_factory=list)
    ref_first: list[bool] = field(default_factory=list)

    @property
    def n_rounds(self) -> int:
        return len(self.ref_s)

    def ratios(self) -> np.ndarray:
        """Per-round ratio ref/var (> 1 means the variant is faster)."""
        ref = np.asarray(self.ref_s, dtype=float)
        var = np.asarray(self.var_s, dtype=float)
        if ref.size == 0:
            raise ValueError("no recorded rounds")
        with np.errstate(divide="ignore", invalid="ignore"):
            return ref / var

    def speedup(self) -> float:
        # Median of per-round ratios: one disturbed round cannot drag it, unlike a mean
        # or a ratio of totals.
        return float(np.median(self.ratios()))

    def speedup_ci95(self, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
        return bootstrap_ci(self.ratios(), stat=np.median, n_boot=n_boot, alpha=0.05, seed=seed)

    def ref_total_s(self) -> float:
        return float(np.sum(self.ref_s))

    def var_total_s(self) -> float:
        return float(np.sum(self.var_s))

    def var_item_flat(self) -> list[float]:
        """All per-item variant seconds, for latency percentiles."""
        return [s for row in self.var_item_s for s in row]

    def ref_item_flat(self) -> list[float]:
        return [s for row in self.ref_item_s for s in row]


@dataclass
class SingleTiming:
    """Recorded rounds of a variant timed alone. ``item_s[r][i]``: seconds of item i in round r."""

    item_s: list[list[float]] = field(default_factory=list)

    @property
    def n_rounds(self) -> int:
        return len(self.item_s)

    @property
    def round_s(self) -> list[float]:
        return [float(sum(row)) for row in self.item_s]

    def total_s(self) -> float:
        return float(sum(self.round_s))

    def item_flat(self) -> list[float]:
        return [s for row in self.item_s for s in row]


def interleaved_pairs(
    run_ref: Callable[[Any], None],
    run_var: Callable[[Any], None],
    items: Sequence,
    *,
    min_rounds: int = 3,
    min_seconds: float = 0.0,
    max_rounds: int = 50,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
) -> PairedTiming:
    """Time ``run_ref`` and ``run_var`` item by item, back to back, for several rounds.

    A round visits every item once and runs both sides on it in turn; which side goes first
    alternates from round to round (ref first in round 0, warm-up included) so a cache or
    turbo advantage of going first or second cancels over rounds. ``warmup`` rounds run the
    same way but are not recorded (first calls build sessions, fill caches, JIT...).
    ``min_seconds`` counts timed seconds of both sides in recorded rounds.
    """
    items = list(items)
    _check_rounds(items, min_rounds, max_rounds, warmup)
    out = PairedTiming()
    timed_total = 0.0
    r = 0  # counts warm-up and recorded rounds alike so the alternation never stalls
    while True:
        recording = r >= warmup
        if recording and _enough(out.n_rounds, timed_total, min_rounds, min_seconds, max_rounds):
            break
        ref_first = (r % 2 == 0)
        ref_row: list[float] = []
        var_row: list[float] = []
        for item in items:
            if ref_first:
                tr = _timed(run_ref, item, clock)
                tv = _timed(run_var, item, clock)
            else:
                tv = _timed(run_var, item, clock)
                tr = _timed(run_ref, item, clock)
            ref_row.append(tr)
            var_row.append(tv)
        if recording:
            out.ref_item_s.append(ref_row)
            out.var_item_s.append(var_row)
            out.ref_s.append(float(sum(ref_row)))
            out.var_s.append(float(sum(var_row)))
            out.ref_first.append(ref_first)
            timed_total += out.ref_s[-1] + out.var_s[-1]
        r += 1
    return out


def time_single(
    run: Callable[[Any], None],
    items: Sequence,
    *,
    min_rounds: int = 3,
    min_seconds: float = 0.0,
    warmup: int = 1,
    max_rounds: int = 50,
    clock: Clock = time.perf_counter,
) -> SingleTiming:
    """Time one callable over ``items`` in rounds (for a variant with no reference pair,
    e.g. the reference itself). Same round rules as :func:`interleaved_pairs`."""
    items = list(items)
    _check_rounds(items, min_rounds, max_rounds, warmup)
    for _ in range(warmup):
        for item in items:
            run(item)
    out = SingleTiming()
    timed_total = 0.0
    while not _enough(out.n_rounds, timed_total, min_rounds, min_seconds, max_rounds):
        row = [_timed(run, item, clock) for item in items]
        out.item_s.append(row)
        timed_total += sum(row)
    return out

"""Interleaved A/B timing of a reference and a variant, with a sequential stopping rule.

Why interleave: on a shared 2-core machine one process timed twice varies by about 15 %.
Timing the reference and the variant on the same item back to back (A B A B ...) and taking
the ratio round by round lets slow drift (thermal, noisy neighbours, frequency scaling) hit
both sides alike, so it cancels in the ratio instead of landing in the speedup.

When to stop (checked after every whole round; a round is never cut short):

* Fixed floors (a caller that passes no ``target_rel_width``; the gate self-test): stop once
  ``min_rounds`` rounds are recorded and they hold ``min_seconds`` timed seconds ("floors
  met"), or at ``max_rounds`` ("max rounds").
* Sequential rule (``target_rel_width`` given; the suites pass 0.10): after the floor of
  rounds, stop as soon as the 95 % bootstrap interval of the median is narrower than
  ``target_rel_width`` x the median and the recorded rounds hold ``min_seconds`` ("interval
  decided"). The median is the median per-round ratio ref/var for :func:`interleaved_pairs`,
  the median round time for :func:`time_single` (the reference timed alone). The interval is
  the one the results report (:meth:`PairedTiming.speedup_ci95`: 2000 resamples, seed 0), and
  it needs at least 2 recorded rounds.
* Time cap (``max_seconds`` given; the suites pass 60 s, ``timing.max_seconds`` on a card
  overrides it): seconds on the clock since the call began, warm-up included. Past the
  floor, a further round starts only if the seconds used so far plus one more round of the
  mean recorded length fit in ``max_seconds``; otherwise it stops with what it has ("time
  cap"; the caller's too-noisy check decides whether that is too wide to use). The cap beats
  ``min_seconds`` but never the floor.
* Floor: ``min_rounds`` recorded rounds, except that when a cap is set and the first round
  (the warm-up round; with ``warmup=0`` the first recorded one) alone took more than
  ``max_seconds / 3``, the floor is 2 (or ``min_rounds`` if that is lower). So a workload
  whose one round outlasts the cap still gets 2 recorded rounds: warm-up + 2 rounds in all.
* ``max_rounds`` (default 50) ends any timing ("max rounds").

Checked in this order: interval decided (or floors met), max rounds, time cap. The returned
timing object records why it stopped (``stopped``), the floor it applied, the seconds used
(``elapsed_s``, warm-up in ``warmup_s``) and the target and cap it ran under.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from bench.measure.stats import bootstrap_ci

__all__ = ["PairedTiming", "SingleTiming", "interleaved_pairs", "time_single",
           "DEFAULT_TARGET_REL_WIDTH", "DEFAULT_MAX_SECONDS", "SUITE_RULE",
           "STOP_DECIDED", "STOP_FLOORS", "STOP_MAX_ROUNDS", "STOP_TIME_CAP"]

Clock = Callable[[], float]

DEFAULT_TARGET_REL_WIDTH = 0.10  # what the suites pass: interval narrower than 10 % of the median
DEFAULT_MAX_SECONDS = 60.0  # what the suites pass: seconds of timing per measurement, warm-up included
# The rule the suites time under unless a card's `timing` says otherwise (bench/trackers.py)
SUITE_RULE = dict(min_rounds=3, min_seconds=10.0, max_rounds=50, warmup=1,
                  target_rel_width=DEFAULT_TARGET_REL_WIDTH, max_seconds=DEFAULT_MAX_SECONDS)
LONG_FIRST_ROUND = 1.0 / 3.0  # a first round longer than this x max_seconds lowers the floor to 2
LONG_ROUND_FLOOR = 2

STOP_DECIDED = "interval decided"
STOP_FLOORS = "floors met"  # the fixed rule (no target): min_rounds and min_seconds reached
STOP_MAX_ROUNDS = "max rounds"
STOP_TIME_CAP = "time cap"


def _timed(run: Callable[[Any], None], item: Any, clock: Clock) -> float:
    t0 = clock()
    run(item)
    return clock() - t0


def _check_rounds(items: Sequence, min_rounds: int, max_rounds: int, warmup: int,
                  target_rel_width: float | None = None, max_seconds: float | None = None) -> None:
    if len(items) == 0:
        raise ValueError("timing needs at least one item")
    if min_rounds < 1:
        raise ValueError(f"min_rounds must be >= 1, got {min_rounds}")
    if max_rounds < min_rounds:
        raise ValueError(f"max_rounds ({max_rounds}) < min_rounds ({min_rounds})")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if target_rel_width is not None and not target_rel_width > 0:
        raise ValueError(f"target_rel_width must be > 0, got {target_rel_width}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")


def _rel_width(values: Sequence[float]) -> float:
    """Width of the 95 % bootstrap interval of the median, over the median (inf if undefined)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.inf
    med = float(np.median(x))
    if not np.all(np.isfinite(x)) or not math.isfinite(med) or med <= 0:
        return math.inf
    lo, hi = bootstrap_ci(x, stat=np.median, n_boot=2000, alpha=0.05, seed=0)
    return (hi - lo) / med


@dataclass(frozen=True)
class _StopRule:
    min_rounds: int
    min_seconds: float
    max_rounds: int
    target_rel_width: float | None
    max_seconds: float | None

    def floor(self, first_round_s: float | None) -> int:
        if (self.max_seconds is not None and first_round_s is not None
                and first_round_s > LONG_FIRST_ROUND * self.max_seconds):
            return min(self.min_rounds, LONG_ROUND_FLOOR)
        return self.min_rounds

    def stop(self, n_rounds: int, floor: int, timed_s: float, elapsed_s: float,
             mean_round_s: float, rel_width: Callable[[], float]) -> str | None:
        """Why to stop after ``n_rounds`` recorded rounds, or None to run another round."""
        if n_rounds < floor:
            return None
        if self.target_rel_width is None:
            if timed_s >= self.min_seconds:
                return STOP_FLOORS
        elif (n_rounds >= 2 and timed_s >= self.min_seconds
              and rel_width() < self.target_rel_width):
            return STOP_DECIDED
        if n_rounds >= self.max_rounds:
            return STOP_MAX_ROUNDS
        if self.max_seconds is not None and elapsed_s + mean_round_s > self.max_seconds:
            return STOP_TIME_CAP
        return None

    def check(self, out, first_round_s: float | None, timed_s: float, elapsed_s: float) -> bool:
        """Before another recorded round: set ``out.floor``, and ``out.stopped`` when to stop."""
        out.floor = self.floor(first_round_s)
        n = out.n_rounds
        out.stopped = self.stop(n, out.floor, timed_s, elapsed_s, timed_s / n if n else 0.0,
                                out.rel_width) or ""
        return bool(out.stopped)


@dataclass
class _StopRecord:
    """How a timing ended: ``stopped`` (why, the module docstring), ``floor`` (the rounds
    floor applied), ``elapsed_s`` (clock seconds of the whole call, ``warmup_s`` of them in
    warm-up), ``target_rel_width`` / ``max_seconds`` (the rule it ran under; None: not used)."""

    stopped: str = ""
    floor: int = 0
    elapsed_s: float = 0.0
    warmup_s: float = 0.0
    target_rel_width: float | None = None
    max_seconds: float | None = None


@dataclass
class PairedTiming(_StopRecord):
    """Recorded (post warm-up) rounds of an interleaved reference/variant timing.

    ``ref_item_s[r][i]`` / ``var_item_s[r][i]``: seconds of item ``i`` in round ``r`` (items in
    the caller's order, whatever order they ran in). ``ref_s`` / ``var_s``: per-round totals.
    ``ref_first[r]``: whether the reference ran first on each item in round ``r``.
    ``stopped``: why the rounds ended (the module docstring); ``floor``: the rounds floor
    applied; ``elapsed_s``: clock seconds of the whole call, ``warmup_s`` of them in warm-up;
    ``target_rel_width`` / ``max_seconds``: the rule it ran under (None: not used).
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

    def rel_width(self) -> float:
        """Width of the speedup's 95 % interval over the speedup: what the stopping rule tests."""
        return _rel_width(self.ratios()) if self.n_rounds else math.inf

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
class SingleTiming(_StopRecord):
    """Recorded rounds of a variant timed alone. ``item_s[r][i]``: seconds of item i in round r.
    ``stopped`` ... ``max_seconds``: as in :class:`PairedTiming`."""

    item_s: list[list[float]] = field(default_factory=list)

    @property
    def n_rounds(self) -> int:
        return len(self.item_s)

    @property
    def round_s(self) -> list[float]:
        return [float(sum(row)) for row in self.item_s]

    def total_s(self) -> float:
        return float(sum(self.round_s))

    def rel_width(self) -> float:
        """Width of the median round time's 95 % interval over that median."""
        return _rel_width(self.round_s)

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
    target_rel_width: float | None = None,
    max_seconds: float | None = None,
) -> PairedTiming:
    """Time ``run_ref`` and ``run_var`` item by item, back to back, for several rounds.

    A round visits every item once and runs both sides on it in turn; which side goes first
    alternates from round to round (ref first in round 0, warm-up included) so a cache or
    turbo advantage of going first or second cancels over rounds. ``warmup`` rounds run the
    same way but are not recorded (first calls build sessions, fill caches, JIT...).
    ``min_seconds`` counts timed seconds of both sides in recorded rounds. When to stop: the
    module docstring (no ``target_rel_width`` and no ``max_seconds``: the fixed floors).
    """
    items = list(items)
    _check_rounds(items, min_rounds, max_rounds, warmup, target_rel_width, max_seconds)
    rule = _StopRule(min_rounds, min_seconds, max_rounds, target_rel_width, max_seconds)
    out = PairedTiming(target_rel_width=target_rel_width, max_seconds=max_seconds)
    start = clock()
    timed_total = 0.0
    first_round_s: float | None = None
    r = 0  # counts warm-up and recorded rounds alike so the alternation never stalls
    while True:
        recording = r >= warmup
        if recording and rule.check(out, first_round_s, timed_total, clock() - start):
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
        if first_round_s is None:
            first_round_s = float(sum(ref_row) + sum(var_row))
        if recording:
            out.ref_item_s.append(ref_row)
            out.var_item_s.append(var_row)
            out.ref_s.append(float(sum(ref_row)))
            out.var_s.append(float(sum(var_row)))
            out.ref_first.append(ref_first)
            timed_total += out.ref_s[-1] + out.var_s[-1]
        else:
            out.warmup_s = clock() - start
        r += 1
    out.elapsed_s = clock() - start
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
    target_rel_width: float | None = None,
    max_seconds: float | None = None,
) -> SingleTiming:
    """Time one callable over ``items`` in rounds (for a variant with no reference pair,
    e.g. the reference itself). Same round rules as :func:`interleaved_pairs`; the sequential
    rule tests the interval of the median round time relative to that median."""
    items = list(items)
    _check_rounds(items, min_rounds, max_rounds, warmup, target_rel_width, max_seconds)
    rule = _StopRule(min_rounds, min_seconds, max_rounds, target_rel_width, max_seconds)
    out = SingleTiming(target_rel_width=target_rel_width, max_seconds=max_seconds)
    start = clock()
    first_round_s: float | None = None
    for _ in range(warmup):
        row_s = sum(_timed(run, item, clock) for item in items)
        if first_round_s is None:
            first_round_s = row_s
    out.warmup_s = clock() - start
    timed_total = 0.0
    while not rule.check(out, first_round_s, timed_total, clock() - start):
        row = [_timed(run, item, clock) for item in items]
        if first_round_s is None:
            first_round_s = float(sum(row))
        out.item_s.append(row)
        timed_total += sum(row)
    out.elapsed_s = clock() - start
    return out

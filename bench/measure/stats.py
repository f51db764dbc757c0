"""Small statistics used by every measurement: bootstrap intervals and latency percentiles.

Kept numpy-only so it can be imported by child processes that must never import torch.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["bootstrap_ci", "block_bootstrap_ci", "percentiles_ms"]


def bootstrap_ci(
    values: Iterable[float],
    stat: Callable[[np.ndarray], float] = np.median,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(values)`` at level ``1 - alpha``.

    Why a bootstrap: timings are skewed (a few slow rounds), so a normal-theory interval
    of the median would be wrong; resampling makes no shape assumption.
    A fixed seed keeps the interval reproducible for the same measurements, so re-reading
    a results file never changes a gate verdict.
    """
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if x.size == 1:
        # One value carries no spread: the interval collapses to the point.
        v = float(stat(x))
        return v, v
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(int(n_boot), x.size))
    samples = x[idx]
    try:
        # Vectorised path for numpy reductions that take an axis (median, mean, ...).
        boot = np.asarray(stat(samples, axis=1), dtype=float)
        if boot.shape != (samples.shape[0],):
            raise TypeError
    except TypeError:
        boot = np.array([float(stat(s)) for s in samples])
    lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def block_bootstrap_ci(
    blocks: Sequence[Sequence[float]],
    stat: Callable[[np.ndarray], float] = np.median,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``stat`` over the values of several blocks (e.g. one block per
    pair of processes) from a two-level bootstrap: draw blocks with replacement, then each
    drawn block's values, so the interval holds the spread between blocks, not only within
    one. Seeded like :func:`bootstrap_ci`."""
    arrays = [np.asarray(b, dtype=float) for b in blocks if len(b)]
    if not arrays:
        raise ValueError("block_bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    boot = np.empty(int(n_boot))
    for i in range(boot.size):
        drawn = [arrays[j] for j in rng.integers(0, len(arrays), size=len(arrays))]
        boot[i] = stat(np.concatenate([b[rng.integers(0, b.size, size=b.size)] for b in drawn]))
    lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def percentiles_ms(seconds_list: Sequence[float]) -> dict[str, float | None]:
    """p50 / p90 / p99 of per-utterance seconds, in milliseconds.

    Uses numpy's default linear interpolation so numbers are comparable across runs;
    an empty list gives ``None`` values rather than raising, so a case that timed nothing
    can still be recorded.
    """
    x = np.asarray(list(seconds_list), dtype=float)
    if x.size == 0:
        return {"p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(x, [50, 90, 99]) * 1000.0
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}

"""The rules of `python -m bench compare`: when to stop timing, and the verdict on one case.

Both sides of a change run in one session on one host, so no baseline is involved: head is
judged against base with the gate's own tolerances (bench.baseline.DEFAULT_TOLERANCES), read
through :func:`tolerances` so the gate code can be swapped in one place. Pure functions of
measured numbers: no processes, no models.

Speed is the median of per-pair head/base time ratios with a 95% bootstrap interval. The case
fails when the head is slower beyond the tolerance *and* the slowdown is real: median above
1 + tolerance, whole interval above 1 (asv's idea: a change must be both large and significant).
Demanding the whole interval above 1 + tolerance instead caught a 20% slowdown on the smoke
card only 6 times in 9 (its medians sit near 1.19; docs/gate.md).
A failure decided by any figure wins over `invalid` (an interval too wide to decide speed).

Two worker processes running the same code can differ by about 10% for their whole life (an A/A
of the smoke card's PyTorch in CI: 1.1002 [1.0417, 1.1233] over 6 pairs of one pair of
workers). Pairs of one process pair cannot show that, so a time failure is re-timed on a fresh
pair of workers, started in the other order, and stands only if the pairs of both process
pairs, resampled by process pair and then by pair (:func:`pooled_summary`), still fail.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from bench.baseline import fmt  # the gate's number format, so both read alike
from bench.measure.stats import block_bootstrap_ci, bootstrap_ci

# Timing rounds. --fast: checks of the harness, not figures anyone should quote.
MIN_PAIRS, MIN_PAIRS_FAST = 6, 2
MAX_PAIRS = 40
CAP_S, CAP_S_FAST = 120.0, 20.0     # seconds of paired timing per case, after MIN_PAIRS
STOP_REL_WIDTH = 0.10               # stop early once the interval is narrower than this x median
MAX_REL_WIDTH = 0.50                # wider than this when timing stops: speed is undecided

# The gate's tolerance for speed applies to head/base time: both say "slower by more than x".
TIME_TOLERANCE = "speedup"
# Scored on each side, compared base -> head: against the references, and (the last three)
# against the side's own PyTorch outputs, as the main job scores agreement (real_agreement_ter
# on the card's real clips, only when both sides read the same ones: bench/compare.py).
QUALITY = ("wer", "cer", "bleu", "intent_acc", "agreement_ter", "real_agreement_ter", "tts_distance")
SIZES = ("model_mb", "peak_rss_mb")  # each side's own figure, compared base -> head


def tolerances() -> dict[str, Mapping[str, Any]]:
    """metric -> {mode, value, worse}: the gate's tolerances (imported when needed)."""
    from bench.baseline import DEFAULT_TOLERANCES

    return DEFAULT_TOLERANCES


def time_failure(median: float, lo: float, hi: float, tolerance: float) -> str | None:
    """The reason the head is slower beyond ``tolerance``, or None: median above 1 + tolerance
    and the whole interval above 1."""
    if median > 1 + tolerance and lo > 1:
        return (f"head/base time {median:.4f} [{lo:.4f}, {hi:.4f}]: median > 1 + {tolerance:.2f} "
                f"= {1 + tolerance:.4f} and the interval above 1")
    return None


def ratio_summary(ratios: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """Median head/base ratio and its 95% bootstrap interval (seeded: re-reading never changes it)."""
    x = np.asarray(ratios, dtype=float)
    return float(np.median(x)), bootstrap_ci(x, stat=np.median, alpha=0.05, seed=0)


def pooled_summary(blocks: Sequence[Sequence[float]]) -> tuple[float, tuple[float, float]]:
    """Median of all ratios of several process pairs (one block each) and its 95% interval,
    drawn by process pair and then by pair (seeded: re-reading never changes it)."""
    lo, hi = block_bootstrap_ci(blocks, stat=np.median, alpha=0.05, seed=0)
    return float(np.median(np.concatenate([np.asarray(b, dtype=float) for b in blocks]))), (lo, hi)


def time_tolerance(tol: Mapping[str, Mapping[str, Any]] | None = None) -> float:
    return float((tolerances() if tol is None else tol)[TIME_TOLERANCE]["value"])


def needs_confirmation(timing: Mapping[str, Any], tol: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
    """True when one pair of workers says the head is slower: re-time on a fresh pair first."""
    return time_failure(timing["median"], *timing["ci95"], time_tolerance(tol)) is not None


def confirmed(timings: Sequence[Mapping[str, Any]]) -> dict:
    """One case's timing from several process pairs' :func:`bench.compare.time_pairs` results."""
    blocks = [[p["ratio"] for p in t["pairs"]] for t in timings]
    median, (lo, hi) = pooled_summary(blocks)
    medians = ", ".join(f"{t['median']:.4f}" for t in timings)
    return {"median": median, "ci95": [lo, hi], "n_pairs": sum(len(b) for b in blocks),
            "stop_reason": f"re-timed on {len(timings)} pairs of worker processes "
                           f"(their medians {medians})",
            "process_pairs": list(timings)}


def stop_reason(ratios: Sequence[float], elapsed_s: float, fast: bool = False) -> str | None:
    """Why timing stops after these pairs, or None to time another pair."""
    if len(ratios) < (MIN_PAIRS_FAST if fast else MIN_PAIRS):
        return None
    median, (lo, hi) = ratio_summary(ratios)
    # the interval of a few pairs is their range: narrow by chance as often as not, so it
    # ends the timing only from MIN_PAIRS on (--fast too: two pairs at 1.22 and 1.12 once
    # stopped, and failed, an A/A of the smoke card on a noisy host)
    if len(ratios) >= MIN_PAIRS and hi - lo < STOP_REL_WIDTH * median:
        return f"interval narrower than {STOP_REL_WIDTH:.2f} x the median"
    if len(ratios) >= MAX_PAIRS:
        return f"{MAX_PAIRS} pairs"
    cap = CAP_S_FAST if fast else CAP_S
    if elapsed_s >= cap:
        return f"time cap ({cap:g} s)"
    return None


def _check(label: str, base: float, head: float, spec: Mapping[str, Any]) -> str | None:
    """A message if head is worse than base by more than the tolerance, else None."""
    v, up = float(spec["value"]), spec["worse"] == "higher"
    sign = "+" if up else "-"
    if spec["mode"] == "relative":
        limit = base * (1 + v) if up else base * (1 - v)
        rule = f"{fmt(base)} x (1 {sign} {v:.2f}) = {fmt(limit)}"
    else:
        limit = base + v if up else base - v
        rule = f"{fmt(base)} {sign} {v:.2f} = {fmt(limit)}"
    if (head > limit) if up else (head < limit):
        return f"{label} {fmt(base)} -> {fmt(head)} {'>' if up else '<'} {rule}"
    return None


def verdict(case: Mapping[str, Any], tol: Mapping[str, Mapping[str, Any]] | None = None
            ) -> tuple[str, list[str]]:
    """('pass' | 'fail' | 'invalid', reasons) for one measured case.

    ``case``: ``time`` {median, ci95}; ``quality`` {base: {metric: v}, head: {...}};
    ``between`` {agreement_ter | tts_distance: head against base}; ``model_mb`` and
    ``peak_rss_mb`` {base, head}. A figure missing on either side is not judged. ``between``
    is reported, never judged: sides that differ are not worse for it (two checkpoints, or an
    int8 graph quantized by another onnxruntime); each side's agreement with its own PyTorch
    (in ``quality``) is what is judged.
    """
    tol = tolerances() if tol is None else tol
    fails: list[str] = []
    t = case.get("time") or {}
    median, (lo, hi) = t.get("median"), t.get("ci95") or (None, None)
    if median is not None:
        fails.append(time_failure(median, lo, hi, time_tolerance(tol)))
    q = case.get("quality") or {}
    for m in QUALITY:
        b, h = (q.get("base") or {}).get(m), (q.get("head") or {}).get(m)
        if b is not None and h is not None and m in tol:
            fails.append(_check(m, b, h, tol[m]))
    for m in SIZES:
        sizes = case.get(m) or {}
        if sizes.get("base") is not None and sizes.get("head") is not None and m in tol:
            fails.append(_check(m, sizes["base"], sizes["head"], tol[m]))
    fails = [f for f in fails if f]
    if fails:
        return "fail", fails
    if median is not None and hi - lo > MAX_REL_WIDTH * median:
        return "invalid", [f"head/base time interval [{lo:.4f}, {hi:.4f}] is wider than "
                           f"{MAX_REL_WIDTH:.2f} x the median {median:.4f} "
                           f"(after {t.get('n_pairs', '?')} pairs, stopped at {t.get('stop_reason')})"]
    return "pass", []


def decision(doc: Mapping[str, Any]) -> tuple[str, list[str]]:
    """("GO" | "NO-GO", why) for the head side as a candidate: GO only when the run finished
    and every case passed; a case that failed, could not run or was too noisy to decide is a
    reason not to ship it yet."""
    why = [f"{c['card']} {c['variant']}: {c['verdict']}: {'; '.join(c.get('reasons') or [])}"
           for c in doc.get("cases", []) if c.get("verdict") != "pass"]
    if not doc.get("complete"):
        why.insert(0, "the run did not finish: only the cases listed were measured")
    if not doc.get("cases"):
        why.append("no case was measured")
    return ("NO-GO" if why else "GO"), why

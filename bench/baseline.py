"""Baselines (one JSON file per machine class) and the gate that compares a case with them.

A gate is only useful if it rarely cries wolf: each tolerance below is wide enough for the
noise seen on the reference machines and carries its reason in the file, beside the value.
Direction matters: a metric getting *better* never fails.
"""
from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from bench.results import case_key, run_environment, validate_results, write_json_atomic

__all__ = [
    "SCHEMA", "MIGRATIONS", "DEFAULT_TOLERANCES", "BASELINE_METRICS", "BaselineError",
    "baseline_path", "new_baseline", "load_baselines", "tolerances_for", "compare_case",
    "gate_case", "gate_results", "update_baselines",
]

SCHEMA = "bench-baseline/2"


def _from_schema_1(doc: dict) -> dict:
    """bench-baseline/1 (until 2026-11-22) did not record the environment of the run the
    figures came from; /2 does (``created_from.environment``, null when unknown)."""
    if isinstance(doc.get("created_from"), dict):
        doc["created_from"].setdefault("environment", None)
    doc["schema"] = "bench-baseline/2"
    return doc


# Each older schema this version still reads, with the step that lifts it one version up.
MIGRATIONS = {"bench-baseline/1": _from_schema_1}

# metric -> how it is gated. mode: "relative" (tolerance is a fraction of the baseline) or
# "absolute" (in the metric's own units); worse: the direction that counts as a regression.
DEFAULT_TOLERANCES: dict[str, dict[str, Any]] = {
    "speedup": {"mode": "relative", "value": 0.10, "worse": "lower",
                "why": ("fails only when the whole 95% interval lies below baseline x (1 - tol); "
                        "rising is fine. 0.10 from measured error rates (python -m bench "
                        "selftest): with 0.15 a 20% slowdown was caught in only 90% of "
                        "comparisons, with 0.10 in all, and A/A runs of the real cards still "
                        "passed (0.05 already gave a false alarm)")},
    "rtf": {"mode": "relative", "value": 0.50, "worse": "higher",
            "why": "absolute speed drifts with machine load; loose, same machine class only, "
                   "fails only when the whole interval (or the value) lies above baseline x (1 + tol)"},
    "wer": {"mode": "absolute", "value": 0.5, "worse": "higher",
            "why": "WER is deterministic on CPU; +0.5 points allows tiny numeric drift "
                   "across library versions"},
    "cer": {"mode": "absolute", "value": 0.5, "worse": "higher",
            "why": "as WER: deterministic on CPU, +0.5 points for numeric drift"},
    "bleu": {"mode": "absolute", "value": 1.0, "worse": "lower",
             "why": "BLEU is deterministic on CPU; -1.0 point allows numeric drift in search"},
    "intent_acc": {"mode": "absolute", "value": 1.0, "worse": "lower",
                   "why": "deterministic on CPU; -1.0 point lets 2 of 200 test commands flip with "
                          "numeric drift across library versions"},
    "tts_distance": {"mode": "absolute", "value": 0.5, "worse": "higher",
                     "why": "mel-cepstral distortion (dB) to the PyTorch output; deterministic on CPU, "
                            "+0.5 dB allows numeric drift, far below the distance of audibly different "
                            "speech (several dB)"},
    "agreement_ter": {"mode": "absolute", "value": 1.0, "worse": "higher",
                      "why": "token error rate vs PyTorch; +1.0 point, since quantized beam "
                             "search may flip a near-tie token"},
    "peak_rss_mb": {"mode": "relative", "value": 0.25, "worse": "higher",
                    "why": "allocator and thread-pool arenas vary run to run; +25% is a real leak "
                           "or a duplicated weight copy"},
    "peak_gpu_mb": {"mode": "relative", "value": 0.25, "worse": "higher",
                    "why": "as peak RSS, for GPU memory (NVML per process)"},
    "model_mb": {"mode": "relative", "value": 0.10, "worse": "higher",
                 "why": "file size is deterministic; +10% means lost quantization or "
                        "duplicated initializers"},
}

# What a baseline entry keeps per case (figures stable enough to gate, plus rtf for reference).
BASELINE_METRICS = ("speedup", "speedup_ci95", "rtf", "wer", "cer", "bleu", "intent_acc",
                    "tts_distance", "agreement_ter",
                    "peak_rss_mb", "peak_gpu_mb", "model_mb")

_TOL_FIELDS = {"mode", "value", "worse", "why"}


class BaselineError(ValueError):
    """A baseline file is malformed, or an update was refused; the message says which/why."""


def baseline_path(baselines_dir: str | os.PathLike, machine_class: str) -> Path:
    return Path(baselines_dir) / f"{machine_class}.json"


def new_baseline(machine_class: str) -> dict:
    return {"schema": SCHEMA, "machine_class": machine_class, "created_from": None,
            "tolerances": copy.deepcopy(DEFAULT_TOLERANCES), "card_tolerances": {},
            "cases": {}}


# ---------------------------------------------------------------- load / validate

def _check_tol(spec: Any, where: str, source: str, partial: bool) -> None:
    if not isinstance(spec, dict):
        raise BaselineError(f"{source}: {where}: expected an object, got {spec!r}")
    unknown = set(spec) - _TOL_FIELDS
    if unknown:
        raise BaselineError(f"{source}: {where}: unknown fields {sorted(unknown)}")
    if not partial or "mode" in spec:
        if spec.get("mode") not in ("relative", "absolute"):
            raise BaselineError(f"{source}: {where}.mode: expected 'relative' or 'absolute', "
                                f"got {spec.get('mode')!r}")
    if not partial or "worse" in spec:
        if spec.get("worse") not in ("lower", "higher"):
            raise BaselineError(f"{source}: {where}.worse: expected 'lower' or 'higher', "
                                f"got {spec.get('worse')!r}")
    if not partial or "value" in spec:
        v = spec.get("value")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise BaselineError(f"{source}: {where}.value: expected a number >= 0, got {v!r}")


def _validate(doc: Any, source: str) -> dict:
    if not isinstance(doc, dict):
        raise BaselineError(f"{source}: expected a JSON object")
    while doc.get("schema") in MIGRATIONS:
        doc = MIGRATIONS[doc["schema"]](doc)
    schema = doc.get("schema")
    if schema != SCHEMA:
        readable = ", ".join([SCHEMA, *MIGRATIONS])
        why = ("written by a newer or unknown version of the harness: update the harness, or "
               "rebuild the file with --update-baselines" if str(schema).startswith("bench-baseline/")
               else "not a baseline file")
        raise BaselineError(f"{source}: schema: got {schema!r}, this version reads {readable}; {why}")
    created = doc.get("created_from")
    if created is not None:
        if not isinstance(created, dict):
            raise BaselineError(f"{source}: created_from: expected an object or null, got {created!r}")
        for field in ("run_id", "git_commit", "started"):
            if created.get(field) is not None and not isinstance(created[field], str):
                raise BaselineError(f"{source}: created_from.{field}: expected a string, "
                                    f"got {created[field]!r}")
        if created.get("environment") is not None and not isinstance(created["environment"], dict):
            raise BaselineError(f"{source}: created_from.environment: expected an object or null")
    if not isinstance(doc.get("machine_class"), str) or not doc["machine_class"]:
        raise BaselineError(f"{source}: machine_class: expected a non-empty string")
    tols = doc.get("tolerances")
    if not isinstance(tols, dict):
        raise BaselineError(f"{source}: tolerances: missing or not an object")
    for m, spec in tols.items():
        _check_tol(spec, f"tolerances.{m}", source, partial=False)
    cards = doc.setdefault("card_tolerances", {})
    if not isinstance(cards, dict):
        raise BaselineError(f"{source}: card_tolerances: expected an object")
    for card, per in cards.items():
        if not isinstance(per, dict):
            raise BaselineError(f"{source}: card_tolerances.{card}: expected an object")
        for m, spec in per.items():
            # An override may change only the value; the rest comes from the defaults.
            _check_tol(spec, f"card_tolerances.{card}.{m}", source, partial=True)
    cases = doc.get("cases")
    if not isinstance(cases, dict):
        raise BaselineError(f"{source}: cases: missing or not an object")
    for key, entry in cases.items():
        if key.count("/") != 3:
            raise BaselineError(f"{source}: cases.{key}: key must be task/card/variant/device")
        if not isinstance(entry, dict):
            raise BaselineError(f"{source}: cases.{key}: expected an object")
        for m, v in entry.items():
            if m.endswith("_ci95"):
                ok = v is None or (isinstance(v, list) and len(v) == 2
                                   and all(isinstance(x, (int, float)) for x in v))
            else:
                ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
            if not ok:
                raise BaselineError(f"{source}: cases.{key}.{m}: expected a number "
                                    f"({'[lo, hi]' if m.endswith('_ci95') else 'or null'}), got {v!r}")
    return doc


def load_baselines(path: str | os.PathLike) -> dict:
    """Read and validate one class file; errors name the file and the field."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BaselineError(f"{path}: cannot read: {e}") from e
    except UnicodeDecodeError as e:
        raise BaselineError(f"{path}: not UTF-8 text (byte {e.start}): not a baseline file") from e
    except json.JSONDecodeError as e:
        raise BaselineError(f"{path}: not valid JSON: {e}") from e
    old = doc.get("schema") if isinstance(doc, dict) else None
    doc = _validate(doc, str(path))
    if old in MIGRATIONS:  # said once per load, so nobody wonders why the next update rewrites it
        print(f"{path}: read as {SCHEMA} (the file is {old}; the next baseline update "
              f"writes it as {SCHEMA})", file=sys.stderr)
    return doc


# ---------------------------------------------------------------- compare

def tolerances_for(baseline_doc: Mapping[str, Any], case: Mapping[str, Any]) -> dict:
    """Defaults, then the file's tolerances, then per-card overrides (by card name, then by
    full case key, the most specific winning), merged field by field."""
    tols = copy.deepcopy(DEFAULT_TOLERANCES)
    for m, spec in (baseline_doc.get("tolerances") or {}).items():
        tols[m] = {**tols.get(m, {}), **spec}
    overrides = baseline_doc.get("card_tolerances") or {}
    for key in (case.get("card"), case_key(case)):
        for m, spec in (overrides.get(key) or {}).items():
            tols[m] = {**tols.get(m, {}), **spec}
    return tols


def _fmt(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 1000 else f"{x:.0f}"


def _interval(case_metrics: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    ci = case_metrics.get(f"{metric}_ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(v is not None for v in ci):
        return float(min(ci)), float(max(ci))
    return None


def _check_metric(metric: str, measured: float, interval, base: float, spec: Mapping) -> str | None:
    tol = float(spec["value"])
    rel = spec["mode"] == "relative"
    lower_worse = spec["worse"] == "lower"
    if rel:
        limit = base * (1 - tol) if lower_worse else base * (1 + tol)
        rule = f"baseline {_fmt(base)} x (1 {'-' if lower_worse else '+'} {tol:g}) = {_fmt(limit)}"
    else:
        limit = base - tol if lower_worse else base + tol
        rule = f"baseline {_fmt(base)} {'-' if lower_worse else '+'} {tol:g} = {_fmt(limit)}"
    # With an interval the whole interval must be on the wrong side of the limit: a noisy
    # measurement that merely overlaps the limit is not evidence of a regression.
    lo, hi = interval if interval else (measured, measured)
    shown = f"{_fmt(measured)}" + (f" [{_fmt(lo)}, {_fmt(hi)}]" if interval else "")
    if lower_worse and hi < limit:
        return f"{metric} fell: measured {shown} < {rule}"
    if not lower_worse and lo > limit:
        return f"{metric} rose: measured {shown} > {rule}"
    return None


def compare_case(case: Mapping[str, Any], baseline_entry: Mapping[str, Any] | None,
                 tolerances: Mapping[str, Mapping[str, Any]], *,
                 machine_class: str | None = None, same_class: bool = True) -> dict:
    """Gate one case against its baseline entry.

    Returns ``{"verdict": "pass"|"fail"|"new", "reasons": [...]}``; reasons list only the
    failures (or why it is new). A metric that is None on either side is skipped. RTF is
    gated only when ``same_class`` (absolute speed does not transfer between classes).
    """
    if baseline_entry is None:
        where = f"machine class {machine_class!r}" if machine_class else "this machine class"
        return {"verdict": "new",
                "reasons": [f"no baseline for {case_key(case)} on {where}"]}
    metrics = case.get("metrics") or {}
    reasons = []
    for metric, spec in tolerances.items():
        if metric == "rtf" and not same_class:
            continue
        measured, base = metrics.get(metric), baseline_entry.get(metric)
        if measured is None or base is None:
            continue
        r = _check_metric(metric, float(measured), _interval(metrics, metric), float(base), spec)
        if r:
            reasons.append(r)
    return {"verdict": "fail" if reasons else "pass", "reasons": reasons}


def gate_case(case: Mapping[str, Any], baseline_doc: Mapping[str, Any] | None,
              machine_class: str | None = None) -> dict:
    """Compare a case with a loaded class file (None when the class has no file yet)."""
    cls = machine_class or (baseline_doc or {}).get("machine_class")
    entry = None if baseline_doc is None else baseline_doc["cases"].get(case_key(case))
    tols = tolerances_for(baseline_doc or {}, case)
    same = baseline_doc is None or machine_class is None or \
        baseline_doc.get("machine_class") == machine_class
    return compare_case(case, entry, tols, machine_class=cls, same_class=same)


def gate_results(results_doc: dict, baselines_dir: str | os.PathLike) -> dict:
    """Set ``gate`` on every ok/partial case of ``results_doc`` (in place) from the class file
    of its machine; cases that did not run (error/skipped) keep ``gate`` None."""
    cls = results_doc["run"]["machine"]["class"]
    path = baseline_path(baselines_dir, cls)
    base = load_baselines(path) if path.exists() else None
    for case in results_doc["cases"]:
        if case.get("status") in ("ok", "partial"):
            case["gate"] = gate_case(case, base, machine_class=cls)
        else:
            case["gate"] = None
    return results_doc


# ---------------------------------------------------------------- update

def _entry_from_case(case: Mapping[str, Any]) -> dict:
    m = case.get("metrics") or {}
    return {k: m.get(k) for k in BASELINE_METRICS}


def update_baselines(results_doc: dict, baselines_dir: str | os.PathLike, *,
                     allow_skipped: bool = False,
                     accept_failures: bool = False,
                     max_ci_rel_width: float | None = 0.5) -> Path:
    """Rewrite the class file of ``results_doc``'s machine from its cases, atomically.

    Refused (``BaselineError`` listing the cases, the file left untouched) when any case is
    not ``ok`` (``skipped`` allowed only with ``allow_skipped``), or when a speedup interval
    is wider than ``max_ci_rel_width`` x speedup (a noisy run must not become the bar).
    A case whose gate failed also refuses the update: a regression becomes the new bar only
    when someone says so (``accept_failures``, the CLI's ``--accept-failures``).
    Keeps the file's tolerances, card overrides and the entries of cases not in this run.
    """
    validate_results(results_doc, source="results document")
    ok_status = {"ok", "skipped"} if allow_skipped else {"ok"}
    bad = [f"{case_key(c)}: {c['status']}" + (f" ({c.get('error')})" if c.get("error") else "")
           for c in results_doc["cases"] if c["status"] not in ok_status]
    if bad:
        raise BaselineError("refusing to update baselines from a run with cases that were not "
                            "ok:\n  " + "\n  ".join(bad))
    failed = [f"{case_key(c)}: " + "; ".join(c["gate"]["reasons"])
              for c in results_doc["cases"] if (c.get("gate") or {}).get("verdict") == "fail"]
    if failed and not accept_failures:
        raise BaselineError("refusing to update baselines from a run whose gate failed (accept "
                            "these figures as the new bar with `python -m bench baseline update "
                            "RESULTS --accept-failures`):\n  " + "\n  ".join(failed))
    if max_ci_rel_width is not None:
        noisy = []
        for c in results_doc["cases"]:
            m = c.get("metrics") or {}
            s, ci = m.get("speedup"), m.get("speedup_ci95")
            if s and ci and (ci[1] - ci[0]) > max_ci_rel_width * s:
                noisy.append(f"{case_key(c)}: speedup {s:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]")
        if noisy:
            raise BaselineError("refusing to update baselines from a noisy run (speedup interval "
                                f"wider than {max_ci_rel_width:g} x speedup):\n  " + "\n  ".join(noisy))
    if not results_doc["cases"]:
        raise BaselineError("refusing to update baselines from a run with no cases")

    run = results_doc["run"]
    cls = run["machine"]["class"]
    path = baseline_path(baselines_dir, cls)
    doc = load_baselines(path) if path.exists() else new_baseline(cls)
    if doc["machine_class"] != cls:
        raise BaselineError(f"{path}: machine_class {doc['machine_class']!r} does not match "
                            f"the run's class {cls!r}")
    for c in results_doc["cases"]:
        if c["status"] == "ok":
            doc["cases"][case_key(c)] = _entry_from_case(c)
    doc["cases"] = dict(sorted(doc["cases"].items()))
    # the environment too, so a report can say what differs between the bar and a new run
    doc["created_from"] = {"run_id": run["id"], "git_commit": run.get("git_commit"),
                           "started": run["started"], "environment": run_environment(run)}
    _validate(doc, str(path))
    return write_json_atomic(path, doc)

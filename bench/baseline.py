"""Baselines (one JSON file per machine class) and the gate that compares a case with them.

A gate is only useful if it rarely cries wolf: each tolerance below is wide enough for the
noise seen on the reference machines and carries its reason in the file, beside the value.
Direction matters: a metric getting *better* never fails.
"""
from __future__ import annotations

import copy
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from bench.identity import baseline_key
from bench.results import case_key, run_environment, validate_results, write_json_atomic

__all__ = [
    "SCHEMA", "MIGRATIONS", "DEFAULT_TOLERANCES", "BASELINE_METRICS", "BaselineError",
    "baseline_path", "new_baseline", "load_baselines", "tolerances_for", "compare_case",
    "gate_case", "gate_results", "update_baselines", "baseline_from_results", "case_figures", "fmt",
]

SCHEMA = "bench-baseline/3"
PRE_IDENTITY = "pre-identity"  # the key suffix of entries migrated from files without identities


def _from_schema_1(doc: dict) -> dict:
    """bench-baseline/1 (until 2026-11-22) did not record the environment of the run the
    figures came from; /2 does (``created_from.environment``, null when unknown)."""
    if isinstance(doc.get("created_from"), dict):
        doc["created_from"].setdefault("environment", None)
    doc["schema"] = "bench-baseline/2"
    return doc


def _from_schema_2(doc: dict) -> dict:
    """bench-baseline/2 keyed entries by task/card/variant/device alone, flat figures, one run.
    /3 keys them by what was measured too (``@identity``: data, decode settings, variant
    definition) and keeps the runs behind each entry. Nobody recorded what a /2 entry was
    measured on, so it moves to ``...@pre-identity``: kept for the record, never matched."""
    created = doc.get("created_from") if isinstance(doc.get("created_from"), dict) else {}
    cases = doc.get("cases") if isinstance(doc.get("cases"), dict) else {}
    moved = {}
    for key, entry in cases.items():
        if not isinstance(entry, dict):
            moved[key] = entry  # validation names it
            continue
        run = {"run_id": created.get("run_id"), "started": created.get("started"),
               "git_commit": created.get("git_commit"), "host": None,
               **{m: entry.get(m) for m in RUN_METRICS if m in entry}}
        moved[f"{key}@{PRE_IDENTITY}"] = {"identity": None, "metrics": entry, "runs": [run]}
    doc["cases"] = moved
    for spec in (doc.get("tolerances") or {}).values():
        if isinstance(spec, dict):
            spec.pop("why", None)  # the old reasons describe the old rules
    doc["tolerances"] = {**copy.deepcopy(DEFAULT_TOLERANCES), **{
        m: {**DEFAULT_TOLERANCES.get(m, {}), **spec} for m, spec in (doc.get("tolerances") or {}).items()
        if isinstance(spec, dict)}}
    for m in ("speedup", "rtf"):  # their rules changed with /3: take the new ones whole
        doc["tolerances"][m] = copy.deepcopy(DEFAULT_TOLERANCES[m])
    doc["schema"] = "bench-baseline/3"
    return doc


# Each older schema this version still reads, with the step that lifts it one version up.
MIGRATIONS = {"bench-baseline/1": _from_schema_1, "bench-baseline/2": _from_schema_2}

# The speedup rule and why (docs/gate.md has the figures, printed by `bench baseline spread`).
SPEEDUP_WHY = (
    "fails only when the whole 95% interval lies below median(baseline runs) x (1 - t), "
    "t = max(floor, spread_factor x spread), spread = the largest relative deviation of a "
    "baseline run from their median (0 with one run). floor = value (0.10) when the baseline "
    "has runs of this host: with 0.10, python -m bench selftest --simulated fails 0/200 A/A "
    "comparisons and catches 98% of 25% slowdowns, 83.5% of 20% ones. floor = across_hosts (0.40) otherwise: the ratio "
    "of two runtimes moves far more between hosts of one class than between runs on one host "
    "(issue 16: the AMD class's plain onnx on the paper card, 2.20 on one host and 1.44-1.83 "
    "on another, same code), so across hosts the gate catches a lost optimisation, and "
    "`bench compare` (both sides on one host) catches a 20% slowdown")

# The absolute speed rule and why (docs/gate.md, section 2).
ABSOLUTE_WHY = (
    "absolute speed depends on the host: gated only against baseline runs of this host, never "
    "across hosts, and only once min_host_runs of them exist: one run shows the host's level, "
    "not how far it moves between runs (two same-host runs of the class file differ by up to "
    "32%; a busy host moved one case's latency 54% in an A/A run whose speedups all "
    "passed). Fails above median(this host's runs) x (1 + t), t = max(value, spread_factor x "
    "their spread); recorded and charted always")

# metric -> how it is gated. mode: "relative" (tolerance is a fraction of the baseline) or
# "absolute" (in the metric's own units); worse: the direction that counts as a regression.
DEFAULT_TOLERANCES: dict[str, dict[str, Any]] = {
    "speedup": {"mode": "relative", "value": 0.10, "worse": "lower", "across_hosts": 0.40,
                "spread_factor": 1.5, "why": SPEEDUP_WHY},
    "rtf": {"mode": "relative", "value": 0.50, "worse": "higher", "host_bound": True,
            "min_host_runs": 2, "spread_factor": 1.5, "why": ABSOLUTE_WHY},
    "latency_p50_ms": {"mode": "relative", "value": 0.50, "worse": "higher", "host_bound": True,
                       "min_host_runs": 2, "spread_factor": 1.5, "why": "as RTF"},
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
    "real_agreement_ter": {
        "mode": "absolute", "value": 6.0, "worse": "higher",
        "why": "agreement TER on the real clips the card names (data.real_speech), gated only "
               "against a figure from the same clips. Out of domain the trained cards say little: "
               "PyTorch gives 53-101 tokens on the 3 LibriSpeech clips, so one token is 1-1.9 "
               "points and +6.0 lets 3-6 tokens flip: room for the float rounding of another CPU "
               "of the class (an Intel host beside the AMD ones) on outputs full of near-ties. "
               "Quantizing the convolutions too took asr-conformer-tiny from 1.0 to 10.9 and "
               "asr-streaming-tiny from 4.7 to 18.8 while their test-set WER and agreement stayed "
               "inside their tolerances (docs/gate.md)"},
    "peak_rss_mb": {"mode": "relative", "value": 0.25, "worse": "higher",
                    "why": "allocator and thread-pool arenas vary run to run; +25% is a real leak "
                           "or a duplicated weight copy"},
    "process_peak_mb": {"mode": "relative", "value": 0.25, "worse": "higher",
                        "why": "the whole process from its start: +25% is a runtime library "
                               "that grew, a new import (torch in an ONNX process) or a leak"},
    "peak_gpu_mb": {"mode": "relative", "value": 0.25, "worse": "higher",
                    "why": "as peak RSS, for GPU memory (NVML per process)"},
    "model_mb": {"mode": "relative", "value": 0.10, "worse": "higher",
                 "why": "file size is deterministic; +10% means lost quantization or "
                        "duplicated initializers"},
}

# What a baseline entry keeps of the latest accepted run (figures stable enough to gate),
# and what it keeps of every run behind it (the speed figures whose spread decides).
BASELINE_METRICS = ("speedup", "speedup_ci95", "rtf", "latency_p50_ms", "wer", "cer", "bleu",
                    "intent_acc", "tts_distance", "agreement_ter", "real_agreement_ter",
                    "peak_rss_mb", "process_peak_mb", "peak_gpu_mb", "model_mb")
# Figures measured on other data than the case's own, and the case setting that identifies it:
# the entry keeps that identity, and the figure is gated only against one of the same data.
OTHER_DATA = {"real_agreement_ter": "real_speech"}
RUN_METRICS = ("speedup", "speedup_ci95", "rtf", "latency_p50_ms")
MAX_RUNS = 20  # the newest runs of an entry; older ones are history in results files

_TOL_FIELDS = {"mode", "value", "worse", "why", "across_hosts", "spread_factor", "host_bound",
               "min_host_runs"}


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
    for extra in ("across_hosts", "spread_factor", "min_host_runs"):
        v = spec.get(extra, 0)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise BaselineError(f"{source}: {where}.{extra}: expected a number >= 0, got {v!r}")


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
        path, _, ident = key.partition("@")
        if path.count("/") != 3 or not ident:
            raise BaselineError(f"{source}: cases.{key}: key must be task/card/variant/device@identity")
        if not isinstance(entry, dict):
            raise BaselineError(f"{source}: cases.{key}: expected an object")
        if entry.get("identity") is not None and not isinstance(entry["identity"], dict):
            raise BaselineError(f"{source}: cases.{key}.identity: expected an object or null")
        if not isinstance(entry.get("metrics"), dict):
            raise BaselineError(f"{source}: cases.{key}.metrics: missing or not an object")
        data = entry.get("other_data", {})
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise BaselineError(f"{source}: cases.{key}.other_data: expected an object of "
                                f"identity strings, got {data!r}")
        runs = entry.get("runs")
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise BaselineError(f"{source}: cases.{key}.runs: expected a list of objects")
        figures = [(f"metrics.{m}", v) for m, v in entry["metrics"].items()] + \
            [(f"runs[{i}].{m}", r.get(m)) for i, r in enumerate(runs) for m in RUN_METRICS]
        for field, v in figures:
            if field.endswith("_ci95"):
                ok = v is None or (isinstance(v, list) and len(v) == 2
                                   and all(isinstance(x, (int, float)) for x in v))
            else:
                ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
            if not ok:
                raise BaselineError(f"{source}: cases.{key}.{field}: expected a number "
                                    f"({'[lo, hi]' if field.endswith('_ci95') else 'or null'}), got {v!r}")
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
    doc["source"] = str(path)  # named in the gate's reasons; not written back
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


def fmt(x: float) -> str:
    """At least four significant digits, never an exponent (1.203, 12.34, 0.02160, 1234):
    enough to see why 0.0229 > 0.0216, never 0.02 > 0.02."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:.4f}"
    return f"{x:.{max(0, 3 - math.floor(math.log10(abs(x))))}f}"


def _interval(case_metrics: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    ci = case_metrics.get(f"{metric}_ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(v is not None for v in ci):
        return float(min(ci)), float(max(ci))
    return None


def case_figures(case: Mapping[str, Any]) -> dict:
    """The case's metrics, flattened as the baseline keeps them (``latency_p50_ms``)."""
    m = dict(case.get("metrics") or {})
    m["latency_p50_ms"] = (m.get("latency_ms") or {}).get("p50")
    return m


def _check_metric(metric: str, measured: float, interval, base: float, spec: Mapping,
                  tol: float | None = None, base_text: str = "baseline") -> str | None:
    tol = float(spec["value"]) if tol is None else tol
    rel = spec["mode"] == "relative"
    lower_worse = spec["worse"] == "lower"
    if rel:
        limit = base * (1 - tol) if lower_worse else base * (1 + tol)
        rule = f"{base_text} {fmt(base)} x (1 {'-' if lower_worse else '+'} {tol:.3g}) = {fmt(limit)}"
    else:
        limit = base - tol if lower_worse else base + tol
        rule = f"{base_text} {fmt(base)} {'-' if lower_worse else '+'} {tol:g} = {fmt(limit)}"
    # With an interval the whole interval must be on the wrong side of the limit: a noisy
    # measurement that merely overlaps the limit is not evidence of a regression.
    lo, hi = interval if interval else (measured, measured)
    shown = f"{fmt(measured)}" + (f" [{fmt(lo)}, {fmt(hi)}]" if interval else "")
    if lower_worse and hi < limit:
        return f"{metric} fell: measured {shown} < {rule}"
    if not lower_worse and lo > limit:
        return f"{metric} rose: measured {shown} > {rule}"
    return None


def _runs_of(entry: Mapping[str, Any], metric: str) -> list[Mapping[str, Any]]:
    """The entry's runs that measured ``metric``; a bare dict of figures (no ``runs``) is read
    as one run of this host, as the gate's self-test and hand-made tests write it."""
    if "runs" not in entry:
        return [{**entry, "host": SAME_HOST}] if entry.get(metric) is not None else []
    return [r for r in entry["runs"] if r.get(metric) is not None]


SAME_HOST = object()  # the host of a bare entry: whatever host asks


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def _provenance(runs: list[Mapping[str, Any]], host: str | None) -> str:
    if not runs or all(r.get("run_id") is None for r in runs):
        return ""
    ids = [str(r.get("run_id")) for r in runs]
    hosts = {("this host" if r.get("host") in (host, SAME_HOST) else f"host {r.get('host')}")
             for r in runs}
    shown = ids[-1] if len(ids) == 1 else f"{len(ids)} runs, latest {ids[-1]}"
    return f" (baseline: {shown}; {', '.join(sorted(hosts))})"


def _speed_gate(metric: str, figures: Mapping, entry: Mapping, spec: Mapping,
                host: str | None) -> tuple[str | None, str | None]:
    """(failure, note) for a speed figure: the ratio (speedup) against the spread of the
    baseline's runs, an absolute figure (RTF, latency) only against runs of this host."""
    runs = _runs_of(entry, metric)
    same = [r for r in runs if r.get("host") is SAME_HOST or (host and r.get("host") == host)]
    host_bound = spec.get("host_bound")
    if host_bound and not same:
        return None, (f"{metric} not gated: no baseline run of this host ({host}); absolute "
                      "speed does not transfer between hosts")
    needed = int(spec.get("min_host_runs", 1))
    if host_bound and len(same) < needed:
        return None, (f"{metric} not gated: {len(same)} baseline run(s) of this host, {needed} "
                      "needed to know how far it moves between runs")
    pool = same if host_bound else (same or runs)
    if not pool:
        return None, None
    ref = _median([float(r[metric]) for r in pool])
    spread = max(abs(float(r[metric]) / ref - 1) for r in pool) if ref else 0.0
    if host_bound:
        floor, base_text = float(spec["value"]), "median of this host's runs"
    else:
        floor = float(spec["value"]) if same else float(spec.get("across_hosts", spec["value"]))
        base_text = ("baseline" if len(pool) == 1 else f"median of {len(pool)} baseline runs") + \
            ("" if same else " (other hosts)")
    tol = max(floor, float(spec.get("spread_factor", 0)) * spread)
    measured = figures.get(metric)
    reason = _check_metric(metric, float(measured), _interval(figures, metric), ref, spec,
                           tol=tol, base_text=base_text)
    return (reason + _provenance(pool, host) if reason else None), None


def other_data_identity(case: Mapping[str, Any], metric: str) -> str | None:
    """The identity of the data ``metric`` was measured on, for a figure of OTHER_DATA."""
    setting = (case.get("settings") or {}).get(OTHER_DATA[metric]) or {}
    return setting.get("identity")


def _same_other_data(case: Mapping[str, Any], entry: Mapping[str, Any], metric: str) -> bool:
    mine = other_data_identity(case, metric)
    return mine is not None and (entry.get("other_data") or {}).get(metric) == mine


def compare_case(case: Mapping[str, Any], baseline_entry: Mapping[str, Any] | None,
                 tolerances: Mapping[str, Mapping[str, Any]], *,
                 machine_class: str | None = None, host: str | None = None) -> dict:
    """Gate one case against its baseline entry.

    Returns ``{"verdict": "pass"|"fail"|"new", "reasons": [...], "notes": [...]}``; reasons
    list only the failures (or why it is new), notes what was not gated and why. A metric
    that is None on either side is skipped. ``host``: this run's host (bench.fingerprint).
    """
    if baseline_entry is None:
        where = f"machine class {machine_class!r}" if machine_class else "this machine class"
        return {"verdict": "new", "notes": [],
                "reasons": [f"no baseline for {baseline_key(case)} on {where} (first run with "
                            "this data, decode settings and variant definition)"]}
    figures = case_figures(case)
    fixed = baseline_entry.get("metrics", baseline_entry)
    latest = (baseline_entry.get("runs") or [])[-1:]
    reasons, notes = [], []
    for metric, spec in tolerances.items():
        if figures.get(metric) is None:
            continue
        if metric in RUN_METRICS:
            reason, note = _speed_gate(metric, figures, baseline_entry, spec, host)
            notes += [note] if note else []
        elif metric in OTHER_DATA and not _same_other_data(case, baseline_entry, metric):
            reason = None
            notes.append(f"{metric} not gated: the baseline's figure is from other "
                         f"{OTHER_DATA[metric].replace('_', ' ')} data, or has none")
        elif fixed.get(metric) is not None:
            reason = _check_metric(metric, float(figures[metric]), _interval(figures, metric),
                                   float(fixed[metric]), spec)
            reason = reason and reason + _provenance(latest, host)
        else:
            reason = None
        if reason:
            reasons.append(reason)
    return {"verdict": "fail" if reasons else "pass", "reasons": reasons, "notes": notes}


def gate_case(case: Mapping[str, Any], baseline_doc: Mapping[str, Any] | None,
              machine_class: str | None = None, host: str | None = None) -> dict:
    """Compare a case with a loaded class file (None when the class has no file yet)."""
    cls = machine_class or (baseline_doc or {}).get("machine_class")
    entry = None if baseline_doc is None else baseline_doc["cases"].get(baseline_key(case))
    tols = tolerances_for(baseline_doc or {}, case)
    gate = compare_case(case, entry, tols, machine_class=cls, host=host)
    gate["baseline"] = {"key": baseline_key(case),
                        "source": (baseline_doc or {}).get("source"),
                        "runs": [r.get("run_id") for r in (entry or {}).get("runs", [])]}
    return gate


def gate_results(results_doc: dict, baselines_dir: str | os.PathLike | None = None, *,
                 baseline_doc: Mapping[str, Any] | None = None) -> dict:
    """Set ``gate`` on every ok/partial case of ``results_doc`` (in place) from the class file
    of its machine, or from ``baseline_doc`` (e.g. one built from earlier results); cases that
    did not run (error/skipped) keep ``gate`` None."""
    machine = results_doc["run"]["machine"]
    cls = machine["class"]
    if baseline_doc is None and baselines_dir is not None:
        path = baseline_path(baselines_dir, cls)
        baseline_doc = load_baselines(path) if path.exists() else None
    for case in results_doc["cases"]:
        if case.get("status") in ("ok", "partial"):
            case["gate"] = gate_case(case, baseline_doc, machine_class=cls, host=machine.get("host"))
        else:
            case["gate"] = None
    return results_doc


# ---------------------------------------------------------------- update

def _record(doc: dict, case: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    """Add a case's run to its entry (made if new): its figures become the entry's, its speed
    joins the runs whose spread the speedup gate reads."""
    figures = case_figures(case)
    key = baseline_key(case)
    entry = doc["cases"].setdefault(key, {"identity": case.get("identity"), "metrics": {},
                                          "runs": []})
    entry["identity"] = case.get("identity")
    entry["metrics"] = {k: figures.get(k) for k in BASELINE_METRICS}
    entry["other_data"] = {m: i for m in OTHER_DATA if figures.get(m) is not None
                           and (i := other_data_identity(case, m)) is not None}
    entry["runs"] = [r for r in entry["runs"] if r.get("run_id") != run["id"]]
    entry["runs"].append({"run_id": run["id"], "started": run["started"],
                          "git_commit": run.get("git_commit"),
                          "host": (run.get("machine") or {}).get("host"),
                          **{m: figures.get(m) for m in RUN_METRICS}})
    entry["runs"] = entry["runs"][-MAX_RUNS:]


def _injected(case: Mapping[str, Any]) -> bool:
    return bool((case.get("settings") or {}).get("injected_slowdown"))


def update_baselines(results_doc: dict, baselines_dir: str | os.PathLike, *,
                     allow_skipped: bool = False,
                     accept_failures: bool = False,
                     max_ci_rel_width: float | None = 0.5) -> Path:
    """Add ``results_doc``'s cases to the class file of its machine, atomically.

    Refused (``BaselineError`` listing the cases, the file left untouched) when any case is
    not ``ok`` (``skipped`` allowed only with ``allow_skipped``), when a speedup interval
    is wider than ``max_ci_rel_width`` x speedup (a noisy run must not become the bar), or when
    a slowdown was injected on purpose (bench.measure.inject).
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
    injected = [case_key(c) for c in results_doc["cases"] if _injected(c)]
    if injected:
        raise BaselineError("refusing to update baselines from a run with an injected slowdown "
                            "(BENCH_INJECT_SLOWDOWN):\n  " + "\n  ".join(injected))
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
                noisy.append(f"{case_key(c)}: speedup {fmt(s)} [{fmt(ci[0])}, {fmt(ci[1])}]")
        if noisy:
            raise BaselineError("refusing to update baselines from a noisy run (speedup interval "
                                f"wider than {max_ci_rel_width:g} x speedup):\n  " + "\n  ".join(noisy))
    if not results_doc["cases"]:
        raise BaselineError("refusing to update baselines from a run with no cases")

    run = results_doc["run"]
    cls = run["machine"]["class"]
    path = baseline_path(baselines_dir, cls)
    doc = load_baselines(path) if path.exists() else new_baseline(cls)
    doc.pop("source", None)
    for m, spec in DEFAULT_TOLERANCES.items():  # a metric gated since the file was written
        doc["tolerances"].setdefault(m, copy.deepcopy(spec))
    if doc["machine_class"] != cls:
        raise BaselineError(f"{path}: machine_class {doc['machine_class']!r} does not match "
                            f"the run's class {cls!r}")
    for c in results_doc["cases"]:
        if c["status"] == "ok":
            _record(doc, c, run)
            # re-measured: the migrated entry of unknown provenance has done its job (git keeps it)
            doc["cases"].pop(f"{case_key(c)}@{PRE_IDENTITY}", None)
    doc["cases"] = dict(sorted(doc["cases"].items()))
    # the environment too, so a report can say what differs between the bar and a new run
    doc["created_from"] = {"run_id": run["id"], "git_commit": run.get("git_commit"),
                           "started": run["started"], "environment": run_environment(run)}
    _validate(doc, str(path))
    return write_json_atomic(path, doc)


def baseline_from_results(results_docs: list[dict], machine_class: str) -> dict:
    """A baseline built in memory from earlier results documents of one machine class (e.g.
    the previous nights' runs of a hosted runner that has no committed file): every ok,
    ungated-or-passing case of each, oldest first, as ``update_baselines`` would record it."""
    doc = new_baseline(machine_class)
    used = []
    for d in sorted(results_docs, key=lambda d: d["run"]["started"]):
        if d["run"]["machine"]["class"] != machine_class or d["run"].get("partial"):
            continue
        for c in d["cases"]:
            if c["status"] == "ok" and (c.get("gate") or {}).get("verdict") != "fail" \
                    and not _injected(c):
                _record(doc, c, d["run"])
        used.append(d["run"]["id"])
    doc["cases"] = dict(sorted(doc["cases"].items()))
    doc["source"] = "earlier results: " + (", ".join(used) or "none of this class")
    return doc


def speedup_spread(docs: list[Mapping[str, Any]]) -> list[dict]:
    """Per machine class and case (task/card/variant/device, whatever the identity), each run's
    speedup and host:
    the between-run and between-host spread that the speedup tolerance has to cover. ``docs``
    are results documents and/or loaded baseline files (their entries' runs)."""
    rows: dict[str, list[tuple[str, str, float]]] = {}
    for d in docs:
        if "run" in d:  # a results document
            run = d["run"]
            for c in d["cases"]:
                s = (c.get("metrics") or {}).get("speedup")
                if c.get("status") == "ok" and s:
                    rows.setdefault(f"{run['machine']['class']} {case_key(c)}", []).append(
                        (run["id"], str((run.get("machine") or {}).get("host")), float(s)))
        else:  # a baseline file
            for key, entry in d["cases"].items():
                for r in entry.get("runs", []):
                    if r.get("speedup"):
                        rows.setdefault(f"{d['machine_class']} {key.partition('@')[0]}", []).append(
                            (str(r.get("run_id")), str(r.get("host")), float(r["speedup"])))
    out = []
    for key, vals in sorted(rows.items()):
        speeds = [v for _, _, v in vals]
        med = _median(speeds)
        # runs written before hosts were recorded count as no host, not as another one
        out.append({"case": key, "runs": len(vals), "hosts": len({h for _, h, _ in vals} - {"None"}),
                    "median": med, "min": min(speeds), "max": max(speeds),
                    "max_dev": max(abs(v / med - 1) for v in speeds),
                    "values": [f"{v:.3f} ({rid[-8:]}, host {h})" for rid, h, v in vals]})
    return out

"""The report's figures as pandas frames: every case of every run, and the current state.

"Current" is, per machine class and case, the case from the latest run that has it: a
nightly main job and a separate paper-tier run of the same night both count, and last
month's runs are history (trend lines), not evidence for today's verdict.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from bench.report.inputs import ReportRun
from bench.identity import baseline_key
from bench.tasks import TASKS
from bench.variants import REFERENCE, VARIANTS

__all__ = ["QUALITY_KEYS", "task_quality", "cases_frame", "current_cases", "latency_frame",
           "variant_order"]

# every quality metric of any task, in task order (each gets a "delta_<key>" column);
# agreement TER is already a comparison with PyTorch, so it has no delta
QUALITY_KEYS = tuple(dict.fromkeys(k for t in TASKS.values() for k in t.quality))
_SCALARS = ("rtf", "rtfx", "speedup", "first_call_ms", "load_ms", "peak_rss_mb", "process_peak_mb", "peak_gpu_mb",
            "model_mb", "agreement_ter", "real_agreement_ter", "gops_per_s", "peak_percent",
            "server_rtfx", "server_speedup", "server_p99_ms", "block_p90_ms", "first_token_s") + QUALITY_KEYS


def task_quality(task: str) -> tuple[str, ...]:
    """The task's quality metrics, headline first; () for a task this version does not know."""
    return TASKS[task].quality if task in TASKS else ()


def _num(x):
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else float("nan")


def variant_order(name: str) -> int:
    """Registry order (pytorch, onnx, onnx-fused, ...); unknown variants last."""
    names = list(VARIANTS)
    return names.index(name) if name in names else len(names)


def _data_label(c: dict) -> str:
    """'card' for a card's own data, else the data dir, with the content hash either way."""
    ident = c.get("identity") or {}
    if not ident:
        return "unidentified"
    source = ident.get("data_source") or "card"
    return f"{source} ({str(ident.get('data', ''))[:8]})"


def peaks_text(c: dict) -> str | None:
    """The GEMM peaks the case's roofline was set against (measured in its run)."""
    p = ((c.get("settings") or {}).get("roofline") or {}).get("peaks")
    if not p:
        return None
    return (f"fp32 {p['fp32_gflops']:.0f} GFLOP/s, int8 {p['int8_gops']:.0f} GOP/s "
            f"({p['n']}x{p['n']} GEMM, fastest of {p['runs']} runs, {p['threads']} threads)")


def _row(r: ReportRun, c: dict) -> dict:
    m = c.get("metrics") or {}
    lat = m.get("latency_ms") or {}
    ci = m.get("speedup_ci95") or [None, None]
    gate = c.get("gate") or {}
    row = {
        "run_id": r.id, "started": pd.Timestamp(r.started), "machine_class": r.machine_class,
        "partial": r.partial, "source": str(r.source),
        # the key carries what was measured: a --data run of a card is its own case
        "key": baseline_key(c), "task": c["task"], "card": c["card"], "variant": c["variant"],
        "data": _data_label(c),
        "device": c["device"], "status": c["status"], "error": c.get("error"),
        "verdict": gate.get("verdict"), "reasons": list(gate.get("reasons") or []),
        "notes": list(gate.get("notes") or []),  # what the gate did not judge, and why
        "speedup_lo": _num(ci[0]), "speedup_hi": _num(ci[1]),
        "gemm_peaks": peaks_text(c),
        "p50_ms": _num(lat.get("p50")), "p90_ms": _num(lat.get("p90")), "p99_ms": _num(lat.get("p99")),
    }
    row.update({k: _num(m.get(k)) for k in _SCALARS})
    return row


def cases_frame(runs: Sequence[ReportRun]) -> pd.DataFrame:
    """One row per case per run, with ``delta_<quality>``: the variant's figure minus the
    PyTorch reference's on the same run, card and device (NaN where either is missing)."""
    rows = [_row(r, c) for r in runs for c in r.doc["cases"]]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for col in ("error", "verdict"):  # a column of all None would turn into NaN floats
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    ref = df[df["variant"] == REFERENCE].set_index(["run_id", "card", "device"])
    idx = pd.MultiIndex.from_frame(df[["run_id", "card", "device"]])
    for k in QUALITY_KEYS:
        base = ref[k].reindex(idx).to_numpy() if not ref.empty else float("nan")
        df[f"delta_{k}"] = df[k].to_numpy() - base
    df["variant_rank"] = df["variant"].map(variant_order)
    return df.sort_values(["task", "machine_class", "card", "device", "variant_rank", "started"],
                          kind="stable").reset_index(drop=True)


def current_cases(df: pd.DataFrame) -> pd.DataFrame:
    """Per machine class and case key, the row of the latest run that has that case."""
    if df.empty:
        return df
    latest = df.sort_values("started", kind="stable").groupby(["machine_class", "key"]).tail(1)
    return latest.sort_index()


def latency_frame(runs: Sequence[ReportRun]) -> pd.DataFrame:
    """Per-utterance latency (ms) from each run's utterance log: the distributions behind
    the p50/p90/p99 of the tables."""
    rows = [{"run_id": r.id, "machine_class": r.machine_class, "task": u["task"], "card": u["card"],
             "variant": u["variant"], "device": u["device"], "ms": 1000.0 * float(u["seconds"])}
            for r in runs for u in r.utterances]
    return pd.DataFrame(rows, columns=["run_id", "machine_class", "task", "card", "variant",
                                       "device", "ms"])

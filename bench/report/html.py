"""One self-contained HTML page to decide a release from, with history.

Self-contained (inline CSS, charts as data: URIs, no script, no external URL) so it can be
attached to a release ticket or opened from a CI artifact offline, and read with JavaScript
off. Every piece of text from a results document is escaped: error messages carry arbitrary
exception text.

The verdict is taken from the *current* cases (per machine class and case, the latest run
that has it; bench.report.frames); older runs feed the trend charts and history tables.
"""
from __future__ import annotations

import html
import math
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from bench.paths import baselines_dir as default_baselines_dir
from bench.report import charts
from bench.report.environment import baseline_environment, environment_diff
from bench.report.frames import QUALITY_KEYS, cases_frame, current_cases, latency_frame, task_quality
from bench.report.inputs import LeftOut, ReportRun, load_inputs
from bench.results import run_environment, write_text_atomic
from bench.variants import REFERENCE

__all__ = ["decide", "render_report_html", "render_report", "render_report_files"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
h1{margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:2px solid #999} h3{margin-top:1.2em}
.verdict{font-size:2em;font-weight:bold;padding:.3em .8em;display:inline-block;border-radius:6px}
.go{background:#d6f5d6;color:#145214} .nogo{background:#f9d4d4;color:#7a1010}
.warn{background:#fdf3d8;border:1px solid #e0c060;padding:.5em 1em;border-radius:4px}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:right;vertical-align:top;white-space:nowrap}
th{background:#eee} td.txt{text-align:left}
td.pass{background:#eefaee} td.fail{background:#fbe0e0} td.new{background:#e8f0fb}
td.invalid{background:#fdf3d8} td.partial{background:#fdf3d8} td.error{background:#f6c8c8} td.skipped{background:#f2f2f2;color:#777}
td.reasons{text-align:left;min-width:24em;max-width:40em;white-space:pre-wrap}
ul.why li{margin:.2em 0}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:.85em}
dl.meta dt{font-weight:bold} dl.meta dd{margin:0}
figure{margin:.8em 0} figure img{max-width:100%} .charts figure{flex:0 1 auto;max-width:48%} figcaption{font-size:.8em;color:#555}
.scroll{overflow-x:auto;max-width:100%}
.charts{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
"""

DEFINITIONS = ("RTF = processing seconds / audio seconds (input audio; TTS: output audio), "
               "wave or text in to text or wave out. Speedup = RTF(pytorch) / RTF(variant) from "
               "interleaved pairs in one process: median and 95% bootstrap interval. Latency per "
               "utterance p50/p90/p99. Process peak: the whole isolated process's peak RSS from its start "
               "(runtime libraries, model and work, as a memory limit counts them); peak RSS: the "
               "same process's peak above its idle level after its imports (model and work). "
               "Quality deltas are the variant's figure minus PyTorch's on the same run. Real-speech TER: "
               "agreement with PyTorch on real recordings (../shared/real-speech) that a trained "
               "card's synthetic training never covered; reported, not gated. Server (bench run --server N): N "
               "single-threaded streams at once; RTFx = audio seconds per wall second with every "
               "query queued at the start, speedup = that over PyTorch's, p99 = latency from arrival "
               "at 70% of PyTorch's throughput (Poisson arrivals, fixed seed).")


def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _num(x, digits: int, signed: bool = False) -> str:
    if _missing(x):
        return "–"
    return f"{float(x):+.{digits}f}" if signed else f"{float(x):.{digits}f}"


def _anchor(machine_class: str, key: str) -> str:
    return "case-" + re.sub(r"[^A-Za-z0-9_-]+", "-", f"{machine_class}-{key}")


def _run_anchor(run_id: str) -> str:
    return "run-" + re.sub(r"[^A-Za-z0-9_-]+", "-", run_id)


# ---------------------------------------------------------------- the verdict

def decide(cur: pd.DataFrame, runs: Sequence[ReportRun], left_out: Sequence[LeftOut]) \
        -> tuple[str, list[tuple[str, str]]]:
    """``("GO", [])`` or ``("NO-GO", [(reason, link), ...])``. NO-GO when a current case failed
    its gate, could not run, or was too noisy to decide; when a current case comes from an
    interrupted run; when an input could not be read; or when there is nothing to decide from."""
    why: list[tuple[str, str]] = []
    for _, r in cur.iterrows():
        where = f"{r['key']} on {r['machine_class']} [run {r['run_id']}]"
        link = "#" + _anchor(r["machine_class"], r["key"])
        if r["status"] == "error":
            why.append((f"{where}: could not run: {r['error']}", link))
        if r["status"] == "partial":
            why.append((f"{where}: measured only in part: {r['error']}", link))
        if r["verdict"] == "fail":
            why.append((f"{where}: gate failed: " + "; ".join(r["reasons"]), link))
        if r["verdict"] == "invalid":
            why.append((f"{where}: too noisy to decide: " + "; ".join(r["reasons"]), link))
    current_runs = set(cur["run_id"]) if not cur.empty else set()
    for run in runs:
        if run.partial and run.id in current_runs:
            why.append((f"run {run.id} was interrupted: its cases are partial evidence",
                        "#" + _run_anchor(run.id)))
    for lo in left_out:
        if lo.missing_evidence:
            why.append((f"input left out: {lo.source}: {lo.reason}", "#inputs"))
    if cur.empty:
        why.append(("no cases in the results: nothing to decide from", "#verdict"))
    return ("NO-GO" if why else "GO"), why


# ---------------------------------------------------------------- tables (pandas)

def _quality_cell(r, key: str) -> str:
    value = _num(r[key], 2)
    delta = r.get(f"delta_{key}")
    if r["variant"] == REFERENCE or _missing(delta) or value == "–":
        return value
    return f"{value} (Δ {_num(delta, 2, signed=True)})"


def _case_table(cur: pd.DataFrame, task: str, table_id: str) -> str:
    """The variant x device table of one task on one machine class, built as a pandas frame
    and rendered with its Styler (cells pre-escaped here; colour by verdict via classes)."""
    quality = task_quality(task) or [q for q in QUALITY_KEYS if cur[q].notna().any()]
    rows, classes = [], []
    for _, r in cur.iterrows():
        sp = _num(r["speedup"], 2)
        if not _missing(r["speedup_lo"]):
            sp += f" [{_num(r['speedup_lo'], 2)}, {_num(r['speedup_hi'], 2)}]"
        # a pass on another host judged fewer figures: the notes say which, beside any failure
        reasons = list(r["reasons"]) + list(r["notes"])
        if isinstance(r["error"], str) and r["error"]:
            reasons.insert(0, f"{r['status']}: {r['error']}")
        verdict = r["verdict"] or "–"
        row = {
            "card": f'<a id="{_anchor(r["machine_class"], r["key"])}"></a>{_e(r["card"])}',
            "data": _e(r["data"]), "variant": _e(r["variant"]), "device": _e(r["device"]),
            "run": f'<a href="#{_run_anchor(r["run_id"])}">{_e(r["started"].strftime("%Y-%m-%d %H:%M"))}</a>',
            "RTF": _num(r["rtf"], 3), "RTFx": _num(r["rtfx"], 1), "speedup [95% CI]": sp,
            "p50 ms": _num(r["p50_ms"], 1), "p90 ms": _num(r["p90_ms"], 1),
            "p99 ms": _num(r["p99_ms"], 1), "first call ms": _num(r["first_call_ms"], 0),
            "load ms": _num(r["load_ms"], 0), "process peak MB": _num(r["process_peak_mb"], 0),
            "peak RSS MB": _num(r["peak_rss_mb"], 1),
            "peak GPU MB": _num(r["peak_gpu_mb"], 1), "model MB": _num(r["model_mb"], 1),
        }
        for q in quality:
            row[charts.LABELS.get(q, q)] = _quality_cell(r, q)
        row["agreement TER %"] = _num(r["agreement_ter"], 2)
        row["real-speech TER %"] = _num(r["real_agreement_ter"], 2)
        row["GOP/s in graphs"] = _num(r["gops_per_s"], 1)
        row["% of GEMM peak"] = _num(r["peak_percent"], 1)
        row["server RTFx"] = _num(r["server_rtfx"], 1)
        row["server speedup"] = _num(r["server_speedup"], 2)
        row["server p99 ms"] = _num(r["server_p99_ms"], 0)
        row["stream block p90 ms"] = _num(r["block_p90_ms"], 1)
        row["first token s"] = _num(r["first_token_s"], 2)
        row["status"] = _e(r["status"])
        row["verdict"] = _e(verdict)
        row["reasons"] = _e("\n".join(str(x) for x in reasons))
        rows.append(row)
        tone = r["status"] if r["status"] in ("error", "skipped", "partial") else (r["verdict"] or "")
        classes.append(tone)
    df = pd.DataFrame(rows)
    if cur["peak_gpu_mb"].isna().all():
        df = df.drop(columns=["peak GPU MB"])  # a CPU-only table needs no empty GPU column
    if cur["real_agreement_ter"].isna().all():
        df = df.drop(columns=["real-speech TER %"])  # no trained card with real clips here
    if cur["peak_percent"].isna().all():
        df = df.drop(columns=["GOP/s in graphs", "% of GEMM peak"])  # no roofline measured
    if cur["server_rtfx"].isna().all():
        df = df.drop(columns=["server RTFx", "server speedup", "server p99 ms"])  # not run (--server)
    if cur["block_p90_ms"].isna().all():
        df = df.drop(columns=["stream block p90 ms", "first token s"])  # no streaming model here
    text_cols = {"card", "data", "variant", "device", "run", "status", "verdict"}
    cls = pd.DataFrame([[("reasons " if c == "reasons" else "txt " if c in text_cols else "") + tone
                         for c in df.columns] for tone in classes], columns=df.columns)
    styler = df.style.hide(axis="index").set_td_classes(cls)
    return f'<div class="scroll">{styler.to_html(table_uuid=table_id)}</div>'


def _study_sections(cur: pd.DataFrame, quality: str, where: str, n: int) -> list[str]:
    """A section for each study these cases hold (bench/studies.py, Study.appears_in): its
    question, speed against size and quality against speed over the study's variants."""
    from bench.studies import STUDIES

    out = []
    for study in STUDIES.values():
        if not study.appears_in(set(cur["variant"]), set(cur["card"])):
            continue
        d = cur[cur["variant"].isin(study.variants)]
        figs = [charts.size_speed_chart(d, f"{study.name} study: {where}"),
                charts.quality_rtf_chart(d, quality, f"{study.name} study: {where}")]
        out.append(f'<h4 id="study-{_e(study.name)}-{n}">Study: {_e(study.name)}</h4><p>{_e(study.question)} '
                   f"Its table: <code>python -m bench table --study {_e(study.name)} RESULTS</code>.</p>"
                   + '<div class="charts">' + "".join(f for f in figs if f) + "</div>")
    return out


def _history_table(hist: pd.DataFrame, metric: str, table_id: str) -> str:
    """Case x run of one metric: how it moved, readable without the charts."""
    d = hist.dropna(subset=[metric])
    if d["run_id"].nunique() < 2:
        return ""
    d = d.assign(run=d["started"].dt.strftime("%Y-%m-%d %H:%M") + " " + d["run_id"].str[-8:])
    pivot = d.pivot_table(index="key", columns="run", values=metric, aggfunc="first")
    pivot = pivot.map(lambda x: _num(x, 2))
    pivot.index = [_e(i) for i in pivot.index]
    pivot.columns = [_e(c) for c in pivot.columns]
    return (f"<h4>{_e(charts.LABELS.get(metric, metric))}, run by run</h4>"
            + pivot.style.to_html(table_uuid=table_id))


# ---------------------------------------------------------------- runs

def _meta(run: ReportRun, baselines: Path) -> str:
    r = run.run
    items: list[tuple[str, object]] = [("source", run.source), ("started", r.get("started")),
                                       ("git commit", r.get("git_commit")),
                                       ("partial (interrupted)", "yes" if run.partial else "no")]
    for k, v in run_environment(r).items():
        if isinstance(v, (list, tuple)):
            v = " ".join(str(x) for x in v)
        elif v is None and k.startswith("libraries."):
            v = "not installed"
        items.append((k, v))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    out = [f'<h3 id="{_run_anchor(run.id)}">Run {_e(run.id)}</h3>', f'<dl class="meta">{body}</dl>']
    out += [f'<p class="warn">{_e(n)}</p>' for n in run.notes]
    base = baseline_environment(baselines, run.machine_class)
    if base.problem:
        out.append(f"<p>Against the baseline: {_e(base.problem)}.</p>")
    else:
        src = base.created_from or {}
        diff = environment_diff(r, base.environment)
        head = (f"Against the baseline of {_e(run.machine_class)} (from run {_e(src.get('run_id'))}, "
                f"commit {_e((src.get('git_commit') or '')[:12])})")
        if not diff:
            out.append(f"<p>{head}: same environment.</p>")
        else:
            trs = "".join(f"<tr><td class=\"txt\">{_e(k)}</td><td class=\"txt\">{_e(a)}</td>"
                          f"<td class=\"txt\">{_e(b)}</td></tr>" for k, a, b in diff)
            out.append(f"<p>{head}, what differs:</p><table><tr><th>field</th><th>baseline</th>"
                       f"<th>this run</th></tr>{trs}</table>")
    return "\n".join(out)


# ---------------------------------------------------------------- the page

def render_report_html(runs: Sequence[ReportRun], left_out: Sequence[LeftOut] = (),
                       baselines: str | os.PathLike | None = None,
                       title: str = "ESPnet ONNX benchmark") -> str:
    baselines = Path(baselines) if baselines else default_baselines_dir()
    runs = sorted(runs, key=lambda r: (r.started, r.id))  # oldest first: history reads forward
    allc = cases_frame(runs)
    cur = current_cases(allc)
    lat = latency_frame(runs)
    verdict, why = decide(cur, runs, left_out)
    classes = sorted(set(allc["machine_class"])) if not allc.empty else []
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p><span id="verdict" class="verdict {"go" if verdict == "GO" else "nogo"}">{_e(verdict)}</span></p>',
    ]
    if why:
        parts.append('<ul class="why">' + "".join(f'<li><a href="{_e(link)}">{_e(text)}</a></li>'
                                                  for text, link in why) + "</ul>")
    parts.append(f"<p>Decided from {len(cur)} current case(s) (per machine class and case, the "
                 f"latest run that has it) of {len(runs)} run(s); older runs are history. "
                 f"{_e(DEFINITIONS)}</p>")
    if len(classes) > 1:
        parts.append(f'<p class="warn">Runs of {len(classes)} machine classes: '
                     f'{_e(", ".join(classes))}. Each has its own tables and baselines; figures '
                     "are never compared across classes.</p>")
    if left_out:
        parts.append('<section id="inputs"><h2>Inputs left out</h2><ul class="why">'
                     + "".join(f"<li>{_e(lo.source)}: {_e(lo.reason)}</li>" for lo in left_out)
                     + "</ul></section>")
    n = 0
    for task in sorted(set(allc["task"])) if not allc.empty else []:
        parts.append(f'<h2 id="task-{_e(task)}">Task: {_e(task)}</h2>')
        quality = (task_quality(task) or ("agreement_ter",))[0]
        for mc in classes:
            c = cur[(cur["task"] == task) & (cur["machine_class"] == mc)]
            h = allc[(allc["task"] == task) & (allc["machine_class"] == mc)]
            if c.empty:
                continue
            n += 1
            where = f"{task} on {mc}"
            parts.append(f"<h3>Machine class {_e(mc)}</h3>")
            parts.append(_case_table(c, task, f"cases{n}"))
            peaks = sorted({(r, p) for r, p in zip(c["run_id"], c["gemm_peaks"]) if isinstance(p, str)})
            if peaks:
                parts.append("<p>Roofline: the graphs' counted arithmetic (products only) per second, "
                             "and the share of this machine's GEMM peak it reaches; peaks measured "
                             "in the run: " + "; ".join(f"{_e(r)}: {_e(p)}" for r, p in peaks) + ".</p>")
            figs = [charts.speedup_chart(c, where), charts.quality_rtf_chart(c, quality, where),
                    charts.memory_chart(c, where), charts.latency_chart(c, lat, where)]
            parts.append('<div class="charts">' + "".join(f for f in figs if f) + "</div>")
            parts.extend(_study_sections(c, quality, where, n))
            if h["run_id"].nunique() > 1:
                parts.append(f"<h4>History on {_e(mc)}</h4>")
                parts.append(charts.trend_chart(h, ["speedup", "rtf", "peak_rss_mb", quality], where))
                parts.append(_history_table(h, "speedup", f"hist{n}s"))
                parts.append(_history_table(h, quality, f"hist{n}q"))
    parts.append("<h2>Runs</h2>")
    parts.extend(_meta(r, baselines) for r in reversed(runs))
    parts.append("</body></html>")
    return "\n".join(parts)


def render_report_files(paths: Iterable[str | os.PathLike], out_path: str | os.PathLike,
                        baselines: str | os.PathLike | None = None) -> tuple[Path, list[LeftOut]]:
    """The report of results files (or folders holding results.json, with the utterance log
    beside them), written atomically. Returns the path and the inputs that were left out."""
    runs, left = load_inputs(paths)
    return write_text_atomic(out_path, render_report_html(runs, left, baselines)), left


def render_report(results_docs: Iterable[Mapping], out_path: str | os.PathLike,
                  baselines: str | os.PathLike | None = None) -> Path:
    """The report of results documents already in memory (no utterance logs)."""
    runs = [ReportRun(Path("<memory>"), dict(d)) for d in results_docs]
    return write_text_atomic(out_path, render_report_html(runs, (), baselines))

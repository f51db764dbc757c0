"""One self-contained HTML page from any number of results documents.

Self-contained (inline CSS, no scripts, no external URLs) so it can be attached to a release
ticket or opened from a CI artifact offline. Every piece of text from a results document is
escaped: error messages carry arbitrary exception text.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["overall_verdict", "render_report", "render_report_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
h1{margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ccc}
.verdict{font-size:2em;font-weight:bold;padding:.3em .8em;display:inline-block;border-radius:6px}
.go{background:#d6f5d6;color:#145214} .nogo{background:#f9d4d4;color:#7a1010}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#eee} td.txt{text-align:left}
tr.pass td{background:#eefaee} tr.fail td{background:#fbe0e0} tr.new td{background:#e8f0fb}
tr.error td{background:#f6c8c8} tr.skipped td{background:#f2f2f2;color:#777}
tr.partial td{background:#fdf3d8}
td.reasons{text-align:left;max-width:40em;white-space:pre-wrap}
ul.why li{margin:.2em 0}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:.85em}
dl.meta dt{font-weight:bold} dl.meta dd{margin:0}
"""

_COLUMNS = ["machine", "card", "variant", "device", "rtf", "rtfx", "speedup [95% CI]",
            "p50 ms", "p90 ms", "p99 ms", "first call ms", "load ms", "peak RSS MB",
            "peak GPU MB", "model MB", "WER", "CER", "agreement TER", "other quality", "status", "verdict", "reasons"]


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _num(x: Any, digits: int) -> str:
    if x is None:
        return "–"
    try:
        return f"{float(x):.{digits}f}"
    except (TypeError, ValueError):
        return str(x)


def _key(c: Mapping) -> str:
    return f"{c.get('task')}/{c.get('card')}/{c.get('variant')}/{c.get('device')}"


def _verdict_of(case: Mapping) -> str | None:
    g = case.get("gate")
    return g.get("verdict") if isinstance(g, Mapping) else None


def overall_verdict(results_docs: Sequence[Mapping]) -> tuple[str, list[str]]:
    """``("GO", [])`` or ``("NO-GO", reasons)``: NO-GO when any case failed its gate or could
    not run (status error), or when there is nothing to decide from."""
    why: list[str] = []
    n = 0
    for doc in results_docs:
        run_id = (doc.get("run") or {}).get("id")
        for c in doc.get("cases") or []:
            n += 1
            if c.get("status") == "error":
                why.append(f"{_key(c)} [{run_id}]: error: {c.get('error')}")
            if _verdict_of(c) in ("fail", "invalid"):
                rs = "; ".join(str(r) for r in (c.get("gate") or {}).get("reasons") or [])
                what = "gate failed" if _verdict_of(c) == "fail" else "too noisy to decide"
                why.append(f"{_key(c)} [{run_id}]: {what}: {rs}")
    if n == 0:
        why.append("no cases in the results: nothing to decide from")
    return ("NO-GO" if why else "GO"), why


def _other_quality(m: Mapping) -> str:
    # Task-specific scores (ST: BLEU, SLU: intent accuracy, TTS: distance) share one column
    # so a new task's metric shows up without a new column.
    parts = [f"{k}={_num(m.get(k), 2)}" for k in ("bleu", "intent_acc", "tts_distance")
             if m.get(k) is not None]
    return " ".join(parts) or "–"


def _row(doc: Mapping, c: Mapping) -> tuple[str, list[tuple[str, bool]]]:
    m = c.get("metrics") or {}
    lat = m.get("latency_ms") or {}
    ci = m.get("speedup_ci95")
    sp = _num(m.get("speedup"), 2)
    if ci and len(ci) == 2:
        sp += f" [{_num(ci[0], 2)}, {_num(ci[1], 2)}]"
    verdict = _verdict_of(c)
    status = c.get("status")
    reasons = list((c.get("gate") or {}).get("reasons") or [])
    if c.get("error"):
        reasons.insert(0, f"{status}: {c['error']}")
    machine = ((doc.get("run") or {}).get("machine") or {}).get("class")
    cells = [  # (text, is_text_column)
        (machine, True), (c.get("card"), True), (c.get("variant"), True), (c.get("device"), True),
        (_num(m.get("rtf"), 3), False), (_num(m.get("rtfx"), 1), False), (sp, False),
        (_num(lat.get("p50"), 1), False), (_num(lat.get("p90"), 1), False),
        (_num(lat.get("p99"), 1), False), (_num(m.get("first_call_ms"), 1), False),
        (_num(m.get("load_ms"), 1), False), (_num(m.get("peak_rss_mb"), 1), False),
        (_num(m.get("peak_gpu_mb"), 1), False),
        (_num(m.get("model_mb"), 1), False), (_num(m.get("wer"), 2), False),
        (_num(m.get("cer"), 2), False), (_num(m.get("agreement_ter"), 2), False),
        (_other_quality(m), True),
        (status, True), (verdict or "–", True), ("\n".join(str(r) for r in reasons), True),
    ]
    # Row colour: a case that did not run is coloured by its status, otherwise by verdict.
    cls = status if status in ("error", "skipped", "partial") else (verdict or "")
    return cls, cells


def _table(rows: list[tuple[str, list[tuple[str, bool]]]]) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in _COLUMNS) + "</tr>"]
    for cls, cells in rows:
        tds = []
        for i, (text, is_txt) in enumerate(cells):
            klass = "reasons" if i == len(cells) - 1 else ("txt" if is_txt else "")
            tds.append(f'<td class="{klass}">{_e(text)}</td>' if klass else f"<td>{_e(text)}</td>")
        out.append(f'<tr class="{_e(cls)}">' + "".join(tds) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _meta(doc: Mapping) -> str:
    run = doc.get("run") or {}
    items: list[tuple[str, Any]] = [("run id", run.get("id")), ("started", run.get("started")),
                                    ("git commit", run.get("git_commit"))]
    for k, v in (run.get("machine") or {}).items():
        if isinstance(v, Mapping):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        elif isinstance(v, (list, tuple)):
            v = " ".join(str(x) for x in v)
        items.append((f"machine.{k}", v))
    for k, v in (run.get("libraries") or {}).items():
        items.append((k, v if v is not None else "not installed"))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f"<h3>Run {_e(run.get('id'))}</h3>\n<dl class=\"meta\">{body}</dl>"


def render_report_html(results_docs: Sequence[Mapping], title: str = "ESPnet ONNX benchmark") -> str:
    verdict, why = overall_verdict(results_docs)
    by_task: dict[str, list] = {}
    for doc in results_docs:
        for c in doc.get("cases") or []:
            by_task.setdefault(str(c.get("task")), []).append((doc, c))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p><span class="verdict {"go" if verdict == "GO" else "nogo"}">{_e(verdict)}</span></p>',
    ]
    if why:
        parts.append('<ul class="why">' + "".join(f"<li>{_e(w)}</li>" for w in why) + "</ul>")
    n_cases = sum(len(v) for v in by_task.values())
    parts.append(f"<p>{len(results_docs)} run(s), {n_cases} case(s). Speedup = RTF(pytorch) / "
                 "RTF(variant) from interleaved pairs, median and 95% bootstrap interval; "
                 "peak RSS above the isolated process's idle level.</p>")
    for task in sorted(by_task):
        rows = sorted(by_task[task], key=lambda dc: (str(dc[1].get("card")), str(dc[1].get("variant")),
                                                      str(dc[1].get("device"))))
        parts.append(f"<h2>Task: {_e(task)}</h2>")
        parts.append(_table([_row(d, c) for d, c in rows]))
    parts.append("<h2>Runs</h2>")
    parts.extend(_meta(d) for d in results_docs)
    parts.append("</body></html>")
    return "\n".join(parts)


def render_report(results_docs: Iterable[Mapping], out_path: str | os.PathLike) -> Path:
    """Write the report to ``out_path`` (atomically) and return the path."""
    docs = list(results_docs)
    text = render_report_html(docs)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out

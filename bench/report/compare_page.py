"""How one `python -m bench compare` run is shown: the table it prints, and compare.html
beside its compare.json.

What an upgrade decision is made from: GO or NO-GO for the head side as a candidate, what each
side was (revision, packages pinned over the lock, the model), the libraries each side's
workers actually imported, and the table the command prints, one row per (card, variant).
Self-contained and script-free like the release report (bench.report.html), whose style it
shares; every string from the document is escaped.
"""
from __future__ import annotations

from typing import Mapping

from bench.compare_verdict import QUALITY, decision, fmt
from bench.report.html import _CSS, _e

DEFINITIONS = ("head/base time: for each pair of timed rounds (the card's timing subset, once on "
               "each side, the order alternating), head seconds / base seconds; the median over the "
               "pairs and its 95% bootstrap interval. Below 1 the head is faster. Quality: each "
               "side's outputs scored against the references. Agreement: the head's outputs "
               "against the base's (TER in %, 0 = the same tokens; TTS: distance of the waves). "
               "Peak RSS: the whole worker process's high-water mark, runtime libraries included.")


TABLE_HEAD = ("card", "variant", "head/base time [95% CI]", "quality base->head", "agreement",
              "model MB delta", "peak RSS MB delta", "verdict", "reasons")


def table_rows(cases: list[dict]) -> list[tuple[str, ...]]:
    """One row of TABLE_HEAD per case: the printed table and the HTML page read the same."""
    rows = []
    for c in cases:
        t = c.get("time")
        q = c.get("quality") or {}
        quality = ", ".join(f"{m} {fmt(q['base'][m])}->{fmt(q['head'][m])}" for m in QUALITY
                            if (q.get("base") or {}).get(m) is not None
                            and (q.get("head") or {}).get(m) is not None) or "-"
        between = ", ".join(f"{k} {fmt(v)}" for k, v in (c.get("between") or {}).items() if v is not None)

        def delta(key):
            d = (c.get(key) or {}).get("delta")
            return "-" if d is None else f"{d:+.2f} (of {fmt(c[key]['base'])})"
        reasons = list(c.get("reasons") or [])
        real = c.get("real_speech") or {}
        if real.get("note") and not real.get("ter"):
            reasons.append(real["note"])  # a trained card whose real clips were not compared: why
        rows.append((c["card"], c["variant"],
                     time_cell(t) if t else "-",
                     quality, between or "-", delta("model_mb"), delta("peak_rss_mb"), c["verdict"],
                     "; ".join(reasons) or "-"))
    return rows


def time_cell(t: Mapping) -> str:
    processes = len(t.get("process_pairs") or [])  # none: one pair of workers timed it
    where = f", {processes} pairs of workers" if processes else ""
    return f"{t['median']:.4f} [{t['ci95'][0]:.4f}, {t['ci95'][1]:.4f}] ({t['n_pairs']} pairs{where})"


def format_table(cases: list[dict]) -> str:
    rows = table_rows(cases)
    widths = [max(len(str(r[i])) for r in [TABLE_HEAD, *rows]) for i in range(len(TABLE_HEAD) - 1)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + str(r[-1])
                     for r in [TABLE_HEAD, *rows])


def _side(d: Mapping) -> str:
    sha = (d.get("sha") or "no git")[:10]
    pins = " ".join(f"{k}=={v}" for k, v in ((d.get("env") or {}).get("pins") or {}).items())
    text = f"{d.get('rev')} ({sha}{', uncommitted changes' if d.get('dirty') else ''})"
    if pins:
        text += f" + {pins}"
    if d.get("model"):
        text += f", model {d['model']}"
    return text


def _libraries(doc: Mapping, side: str) -> str:
    """The versions the side's workers reported (the first case that has them)."""
    for c in doc.get("cases", []):
        libs = ((c.get("sides") or {}).get(side) or {}).get("libraries")
        if libs:
            return ", ".join(f"{k} {v}" for k, v in libs.items())
    return "–"


def render_compare_html(doc: Mapping) -> str:
    go, why = decision(doc)
    host, settings = doc.get("host") or {}, doc.get("settings") or {}
    meta = [("base", _side(doc.get("base") or {})), ("head (candidate)", _side(doc.get("head") or {})),
            ("base libraries", _libraries(doc, "base")), ("head libraries", _libraries(doc, "head")),
            ("host", f"{host.get('host', '?')}: {host.get('cpu', '?')}, "
                     f"{host.get('cores', '?')} cores, class {host.get('class', '?')}"),
            ("started", doc.get("started")),
            ("settings", ", ".join(f"{k} {v}" for k, v in settings.items()
                                   if k in ("device", "threads", "fast", "data", "inject_head")))]
    rows = []
    for r in table_rows(list(doc.get("cases", []))):
        cells = "".join(f'<td class="txt">{_e(v)}</td>' for v in r[:-2])
        rows.append(f'<tr>{cells}<td class="{_e(r[-2])}">{_e(r[-2])}</td>'
                    f'<td class="reasons">{_e(r[-1])}</td></tr>')
    reasons = "".join(f"<li>{_e(w)}</li>" for w in why)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>bench compare {_e(doc.get('started'))}</title>
<style>{_CSS}</style></head><body>
<h1>bench compare: head against base, on one host</h1>
<div class="verdict {'go' if go == 'GO' else 'nogo'}">{go}</div>
{f'<ul class="why">{reasons}</ul>' if reasons else '<p>Every case passed.</p>'}
<dl class="meta">{''.join(f'<dt>{_e(k)}</dt><dd>{_e(v)}</dd>' for k, v in meta)}</dl>
<div class="scroll"><table><tr>{''.join(f'<th>{_e(h)}</th>' for h in TABLE_HEAD)}</tr>
{''.join(rows)}</table></div>
<p>{_e(DEFINITIONS)}</p>
</body></html>
"""

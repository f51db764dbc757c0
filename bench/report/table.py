"""A Markdown table of a results document, for README and release notes (never typed by hand)."""
from __future__ import annotations

from typing import Mapping


def num(x, fmt="{:.2f}"):
    return "-" if x is None else fmt.format(x)


# the task's own quality figures, in the order they are shown
QUALITY = (("intent_acc", "intent {:.1f}%"), ("wer", "WER {:.1f}%"), ("bleu", "BLEU {:.1f}"),
           ("tts_distance", "MCD to PyTorch {:.2f} dB"))


def quality(m: Mapping) -> str:
    return ", ".join(fmt.format(m[k]) for k, fmt in QUALITY if m.get(k) is not None) or "-"


def speed_cell(c: Mapping) -> str:
    """A case's speedup vs PyTorch with its 95% interval ("reference" for PyTorch itself)."""
    m, ci = c["metrics"], c["metrics"].get("speedup_ci95")
    return "reference" if c["variant"] == "pytorch" else (
        f"{num(m.get('speedup'))} [{num(ci[0])}, {num(ci[1])}]" if ci else "-")


def variant_label(c: Mapping) -> str:
    """The variant, with its device when that is not the CPU (a run may hold both)."""
    device = c.get("device", "cpu")
    return c["variant"] if device == "cpu" else f"{c['variant']} ({device})"


def process_cell(m: Mapping) -> str:
    """Whole-process peak RSS, and the GPU memory NVML listed for the process where it did."""
    host = num(m.get("process_peak_mb"), "{:.0f}")
    return host if m.get("peak_gpu_mb") is None else f"{host} + GPU {m['peak_gpu_mb']:.0f}"


def status_cell(c: Mapping) -> str:
    """The gate's verdict of a case that ran, else its status."""
    return c["status"] if c["status"] != "ok" else (c.get("gate") or {}).get("verdict", "ok")


def agreement_cell(m: Mapping) -> str:
    """TER to PyTorch on the test set, and on the real clips where a trained card has them."""
    test = num(m.get("agreement_ter"), "{:.1f}")
    real = m.get("real_agreement_ter")
    return test if real is None else f"{test} / {real:.1f}"


def markdown_table(doc: Mapping, card: str | None = None) -> str:
    rows = ["| card | variant | speedup vs PyTorch [95% CI] | RTF | p50 latency ms | "
            "process peak MB | above idle MB | model MB | quality | agreement TER % test / real | status |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in doc["cases"]:
        if card and c["card"] != card:
            continue
        m = c["metrics"]
        rows.append(f"| {c['card']} | {variant_label(c)} | {speed_cell(c)} | {num(m.get('rtf'), '{:.4f}')} | "
                    f"{num((m.get('latency_ms') or {}).get('p50'), '{:.0f}')} | "
                    f"{process_cell(m)} | "
                    f"{num(m.get('peak_rss_mb'), '{:.0f}')} | {num(m.get('model_mb'), '{:.1f}')} | "
                    f"{quality(m)} | {agreement_cell(m)} | "
                    f"{status_cell(c)} |")
    run = doc["run"]
    rows.append("")
    rows.append(f"Run {run['id']}, commit {str(run.get('git_commit'))[:10]}, machine class "
                f"`{run['machine']['class']}` ({run['machine'].get('cpu')}), "
                f"{run.get('threads')} threads.")
    return "\n".join(rows)


# Someki et al. (2022), ESPnet-ONNX: the CPU speedups the paper reports per task.
PAPER_CPU_SPEEDUP = {"asr": "about 2x", "slu": "about 2x", "st": "about 2x", "tts": "1.3x"}


def speedup_table(docs: list[Mapping]) -> str:
    """One row a card: each variant's speedup [95% CI] beside the paper's figure for the task."""
    variants, rows = [], {}
    for doc in docs:
        for c in doc["cases"]:
            if c["variant"] == "pytorch" or c["status"] != "ok":
                continue
            label = variant_label(c)
            if label not in variants:
                variants.append(label)
            m = c["metrics"]
            ci = m.get("speedup_ci95") or [None, None]
            rows.setdefault((c["task"], c["card"]), {})[label] = \
                f"{num(m.get('speedup'))} [{num(ci[0])}, {num(ci[1])}]"
    out = ["| task | card | " + " | ".join(variants) + " | paper (CPU) |",
           "|---|---|" + "---|" * len(variants) + "---|"]
    for (task, card), by_variant in sorted(rows.items()):
        out.append(f"| {task} | {card} | " + " | ".join(by_variant.get(v, "-") for v in variants)
                   + f" | {PAPER_CPU_SPEEDUP.get(task, '-')} |")
    runs = ", ".join(f"{d['run']['id']} (commit {str(d['run'].get('git_commit'))[:10]})" for d in docs)
    out += ["", f"Speedup vs PyTorch [95% CI]; runs {runs}."]
    return "\n".join(out)


def _below(x, ref) -> str:
    # one decimal: a target such as "85% below" must not be met by rounding
    return "-" if x is None or not ref else f"{100 * (1 - x / ref):.1f}%"


def memory_table(docs: list[Mapping]) -> str:
    """Each case's two memory figures and how far each lies below its card's PyTorch case in
    the same run: the whole process from its start, and the model and work above idle."""
    out = ["| card | variant | process peak MB | below PyTorch | above idle MB | below PyTorch "
           "| children's process peaks MB |", "|---|---|---|---|---|---|---|"]
    for doc in docs:
        torch = {(c["card"], c["device"]): c["metrics"] for c in doc["cases"]
                 if c["variant"] == "pytorch" and c["status"] == "ok"}
        for c in doc["cases"]:
            if c["status"] != "ok":
                continue
            m, ref = c["metrics"], torch.get((c["card"], c["device"]), {})
            whole, work = m.get("process_peak_mb"), m.get("peak_rss_mb")
            children = ((c.get("settings") or {}).get("memory") or {}).get("runs", {}).get("process_peak_mb")
            out.append(f"| {c['card']} | {variant_label(c)} | {num(whole, '{:.0f}')} | "
                       f"{_below(whole, ref.get('process_peak_mb'))} | {num(work, '{:.0f}')} | "
                       f"{_below(work, ref.get('peak_rss_mb'))} | "
                       f"{', '.join(f'{p:.0f}' for p in children) if children else '-'} |")
    runs = ", ".join(f"{d['run']['id']} (commit {str(d['run'].get('git_commit'))[:10]})" for d in docs)
    out += ["", f"Peak RSS of each variant in fresh processes of its own, the median of the children "
                f"(bench/trackers.py MEMORY_CHILDREN); runs {runs}."]
    return "\n".join(out)


def roofline_table(docs: list[Mapping]) -> str:
    """Per ONNX case, each graph's counted arithmetic, its rate and its share of the GEMM peak
    measured in the same run; then all graphs together, and the whole decode."""
    out = ["| card | variant | part | runs | GFLOP fp32 | GOP int8 | s | GOP/s | % of peak |",
           "|---|---|---|---|---|---|---|---|---|"]
    peaks = []
    for doc in docs:
        for c in doc["cases"]:
            r = (c.get("settings") or {}).get("roofline")
            if not r or c["status"] != "ok":
                continue
            if r.get("measured") is False:
                out.append(f"| {c['card']} | {variant_label(c)} | not measured: {r['why']} | | | | | | |")
                continue
            parts = [(f"graph {k}", g) for k, g in r["graphs"].items()]
            parts += [("all graphs", r["in_graphs"]), ("end to end", r["end_to_end"])]
            for name, g in parts:
                out.append(f"| {c['card']} | {variant_label(c)} | {name} | {g.get('runs', '')} | "
                           f"{g['gflop_fp32']:.2f} | {g['gop_int8']:.2f} | {g['seconds']:.3f} | "
                           f"{num(g['gops_per_s'], '{:.1f}')} | {num(g['peak_percent'], '{:.1f}')} |")
            p = r["peaks"]
            peaks.append(f"{doc['run']['id']}: fp32 {p['fp32_gflops']:.0f} GFLOP/s, "
                         f"int8 {p['int8_gops']:.0f} GOP/s")
    out += ["", "GEMM peaks measured in the run (1024x1024, fastest run, the run's threads): "
            + "; ".join(dict.fromkeys(peaks)) + "."]
    return "\n".join(out)


def streaming_table(docs: list[Mapping]) -> str:
    """The streaming figures of each streaming model's case (bench.runtime.streaming)."""
    out = ["| card | variant | chunk ms | RTF | call p50/p90/p99 ms | block call p50/p90/p99 ms | "
           "final call p50/p99 ms | first token: audio s / at s | behind real time |",
           "|---|---|---|---|---|---|---|---|---|"]
    trio = lambda p: "/".join(num(p[k], "{:.1f}") for k in ("p50", "p90", "p99"))  # noqa: E731
    for doc in docs:
        for c in doc["cases"]:
            s = (c.get("settings") or {}).get("streaming")
            if not s or c["status"] != "ok" or not s.get("measured", True):
                continue
            out.append(f"| {c['card']} | {variant_label(c)} | {num(s['chunk_ms'], '{:.0f}')} | "
                       f"{num(c['metrics'].get('rtf'), '{:.3f}')} | {trio(s['call_ms'])} | "
                       f"{trio(s['block_call_ms'])} | {num(s['final_ms']['p50'], '{:.1f}')}/"
                       f"{num(s['final_ms']['p99'], '{:.1f}')} | {num(s['first_token_audio_s'], '{:.2f}')} / "
                       f"{num(s['first_token_s'], '{:.2f}')} | {num(s['behind_real_time'], '{:.1%}')} |")
    runs = ", ".join(d["run"]["id"] for d in docs)
    out += ["", "Each utterance of the timed subset fed in chunks as ESPnet's streaming inference feeds "
            "it; a block call is a call that ran at least one decoder block; the first token's time "
            f"assumes the audio arrives in real time; runs {runs}."]
    return "\n".join(out)


def server_table(docs: list[Mapping]) -> str:
    """The server scenario of each case run with --server: offline throughput across streams,
    its ratio to PyTorch's, and latency at the fixed arrival rate."""
    out = ["| card | variant | streams | offline RTFx | speedup vs PyTorch | arrivals/s | "
           "p50 ms | p99 ms |", "|---|---|---|---|---|---|---|---|"]
    for doc in docs:
        for c in doc["cases"]:
            s = (c.get("settings") or {}).get("server")
            if not s or c["status"] != "ok":
                continue
            m, lat = c["metrics"], s["server"]["latency_ms"]
            speed = "reference" if c["variant"] == "pytorch" else num(m.get("server_speedup"))
            out.append(f"| {c['card']} | {variant_label(c)} | {s['streams']} | {s['offline']['rtfx']:.1f} | "
                       f"{speed} | {s['server']['rate_qps']:.2f} | {num(lat['p50'], '{:.0f}')} | "
                       f"{num(lat['p99'], '{:.0f}')} |")
    runs = ", ".join(d["run"]["id"] for d in docs)
    out += ["", f"Offline: every query queued at the start; server: Poisson arrivals at 70% of "
            f"PyTorch's offline throughput, one thread a stream; runs {runs}."]
    return "\n".join(out)

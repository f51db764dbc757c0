"""The report's pictures, drawn with matplotlib as SVG and embedded as data: URIs.

Each chart is an <img> of its own SVG document, so the ids matplotlib writes never clash
between charts, the page needs no script and no network, and it still shows with JavaScript
off. Every function takes the frames of bench.report.frames for one task and machine class
and returns an HTML fragment, or "" when there is nothing to draw.
"""
from __future__ import annotations

import base64
import html
import io

import matplotlib
import matplotlib.dates

matplotlib.use("Agg")  # no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from bench.report.frames import variant_order  # noqa: E402

__all__ = ["speedup_chart", "quality_rtf_chart", "size_speed_chart", "memory_chart", "latency_chart",
           "trend_chart"]

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True,
                     "grid.alpha": 0.3, "figure.dpi": 96, "svg.hashsalt": "bench-report"})

# legible names for the figures' axes (results-schema key -> label)
LABELS = {"speedup": "speedup vs PyTorch (x)", "rtf": "RTF (lower is faster)",
          "peak_rss_mb": "peak RSS above idle (MB)", "process_peak_mb": "whole-process peak RSS (MB)", "peak_gpu_mb": "peak GPU memory (MB)",
          "wer": "WER (%)", "cer": "CER (%)", "bleu": "BLEU", "intent_acc": "intent accuracy (%)",
          "tts_distance": "MCD to PyTorch (dB)", "agreement_ter": "agreement TER vs PyTorch (%)",
          "model_mb": "model size (MB)"}


def _colour(variant: str):
    return plt.get_cmap("tab10")(variant_order(variant) % 10)


def _img(fig, alt: str, caption: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue().encode("utf-8")).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


MARKERS = "osD^vP*X"  # one a card in the scatter charts


def _variant_card_legend(ax, variants, cards: list[str]) -> None:
    """Legend entries: colour = variant, marker = card."""
    for v in sorted(set(variants), key=variant_order):
        ax.scatter([], [], color=_colour(v), marker="s", label=v)
    for i, c in enumerate(cards):
        ax.scatter([], [], color="grey", marker=MARKERS[i % len(MARKERS)], label=c)


def _label(row) -> str:
    return f"{row['card']} · {row['variant']}" + ("" if row["device"] == "cpu" else f" ({row['device']})")


def speedup_chart(cur: pd.DataFrame, title: str) -> str:
    """Horizontal bars of each variant's median speedup, whiskers for its 95% interval."""
    d = cur.dropna(subset=["speedup"])
    if d.empty:
        return ""
    d = d.iloc[::-1]  # matplotlib draws bottom-up; keep the table's order top-down
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.28 * len(d)))
    y = range(len(d))
    lo = (d["speedup"] - d["speedup_lo"]).clip(lower=0).fillna(0)
    hi = (d["speedup_hi"] - d["speedup"]).clip(lower=0).fillna(0)
    ax.barh(list(y), d["speedup"], xerr=[lo, hi], color=[_colour(v) for v in d["variant"]],
            capsize=2, height=0.7)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(list(y), [_label(r) for _, r in d.iterrows()])
    ax.set_xlabel(LABELS["speedup"] + "; whiskers: 95% interval; line: as fast as PyTorch")
    ax.set_title(title)
    return _img(fig, f"speedup per variant: {title}", "Speedup per variant, median of interleaved "
                "pairs with its 95% bootstrap interval.")


def quality_rtf_chart(cur: pd.DataFrame, quality: str, title: str) -> str:
    """Each case as a point: RTF across, the task's headline quality up (agreement TER
    when the cards have no references, e.g. random weights)."""
    d = cur.dropna(subset=["rtf"])
    metric = quality if d[quality].notna().any() else "agreement_ter"
    d = d.dropna(subset=[metric])
    if d.empty:
        return ""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    cards = list(dict.fromkeys(d["card"]))
    for _, r in d.iterrows():
        ax.scatter(r["rtf"], r[metric], color=_colour(r["variant"]),
                   marker=MARKERS[cards.index(r["card"]) % len(MARKERS)], s=36)
    _variant_card_legend(ax, d["variant"], cards)
    ax.set_xscale("log")
    ax.set_xlabel(LABELS["rtf"] + ", log scale")
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title)
    return _img(fig, f"{metric} against RTF: {title}", f"{LABELS.get(metric, metric)} against RTF: "
                "colour is the variant, marker the card; the best corner is low RTF with good quality.")


def size_speed_chart(cur: pd.DataFrame, title: str) -> str:
    """Each case as a point: model size across, speedup up (PyTorch at 1x)."""
    d = cur.dropna(subset=["model_mb"])
    d = d[d["speedup"].notna() | (d["variant"] == "pytorch")]
    if d.empty:
        return ""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    cards = list(dict.fromkeys(d["card"]))
    for i, card in enumerate(cards):
        rows = d[d["card"] == card]
        speed = rows["speedup"].where(rows["variant"] != "pytorch", 1.0)
        for (_, r), s in zip(rows.iterrows(), speed):
            ax.scatter(r["model_mb"], s, color=_colour(r["variant"]), marker=MARKERS[i % len(MARKERS)], s=36)
    _variant_card_legend(ax, d["variant"], cards)
    ax.set_xscale("log")
    ax.set_xlabel(LABELS["model_mb"] + ", log scale")
    ax.set_ylabel(LABELS["speedup"])
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title)
    return _img(fig, f"speedup against model size: {title}", "Speedup against model size: colour "
                "is the variant, marker the card; the best corner is small and fast.")


def memory_chart(cur: pd.DataFrame, title: str) -> str:
    """Bars of peak memory per variant: above idle (solid) inside the whole process's (outline),
    GPU memory beside them where measured."""
    d = cur.dropna(subset=["peak_rss_mb"])
    if d.empty:
        return ""
    d = d.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.28 * len(d)))
    y = list(range(len(d)))
    colours = [_colour(v) for v in d["variant"]]
    whole = d["process_peak_mb"] if "process_peak_mb" in d else pd.Series(dtype=float)
    if whole.notna().any():
        ax.barh(y, whole.fillna(0), height=0.7, color="none", edgecolor=colours,
                label="whole process")
    ax.barh(y, d["peak_rss_mb"], color=colours, height=0.7, label="above idle")
    gpu = d["peak_gpu_mb"]
    if gpu.notna().any():
        ax.barh(y, gpu.fillna(0), height=0.25, color="black", label="peak GPU MB")
    ax.legend(fontsize=7)
    ax.set_yticks(y, [_label(r) for _, r in d.iterrows()])
    ax.set_xlabel("peak RSS (MB)")
    ax.set_title(title)
    return _img(fig, f"peak memory per variant: {title}", "Peak RSS of each variant in a process "
                "of its own: solid above the process's idle level (model and work), outlined the "
                "whole process from its start (runtime libraries too).")


def latency_chart(cur: pd.DataFrame, lat: pd.DataFrame, title: str) -> str:
    """Box plots of per-utterance latency, from the utterance log of each case's run."""
    if lat.empty:
        return ""
    boxes, labels, colours = [], [], []
    for _, r in cur.iterrows():
        ms = lat[(lat["run_id"] == r["run_id"]) & (lat["card"] == r["card"])
                 & (lat["variant"] == r["variant"]) & (lat["device"] == r["device"])]["ms"]
        if len(ms):
            boxes.append(ms.to_numpy())
            labels.append(_label(r))
            colours.append(_colour(r["variant"]))
    if not boxes:
        return ""
    boxes, labels, colours = boxes[::-1], labels[::-1], colours[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.3 * len(boxes)))
    parts = ax.boxplot(boxes, orientation="horizontal", patch_artist=True, widths=0.6,
                       flierprops={"markersize": 2})
    for patch, c in zip(parts["boxes"], colours):
        patch.set_facecolor(c)
        patch.set_alpha(0.7)
    ax.set_yticks(range(1, len(labels) + 1), labels)
    ax.set_xscale("log")
    ax.set_xlabel("latency per utterance (ms), log scale")
    ax.set_title(title)
    return _img(fig, f"latency distributions: {title}", "Latency of each utterance (the quality "
                "pass over the whole evaluation set): box = p25-p75, line = median, whiskers 1.5 IQR.")


def trend_chart(hist: pd.DataFrame, metrics: list[str], title: str) -> str:
    """One row per card run on two or more dates, one panel per metric, a line per variant."""
    cards = [c for c, g in hist.groupby("card", sort=False) if g["run_id"].nunique() > 1]
    metrics = [m for m in metrics if hist[m].notna().any()]
    if not cards or not metrics:
        return ""
    # one time axis for every panel, so a step in one metric lines up with the others
    fig, axes = plt.subplots(len(cards), len(metrics), squeeze=False, sharex=True,
                             figsize=(2.6 * len(metrics) + 1.5, 2.1 * len(cards) + 0.6))
    for i, card in enumerate(cards):
        g = hist[hist["card"] == card]
        for j, m in enumerate(metrics):
            ax = axes[i][j]
            for (v, dev), s in sorted(g.groupby(["variant", "device"]),
                                      key=lambda kv: variant_order(kv[0][0])):
                s = s.dropna(subset=[m]).sort_values("started")
                if len(s):
                    ax.plot(s["started"], s[m], marker="o", markersize=3, color=_colour(v),
                            label=v if dev == "cpu" else f"{v} ({dev})")
            ax.set_title(f"{card}: {m}", fontsize=8)
            ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%m-%d %H:%M"))
            ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        axes[i][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title)
    fig.tight_layout()
    return _img(fig, f"trends across runs: {title}", "Each metric across the runs in this report, "
                "one line per variant (" + ", ".join(LABELS.get(m, m) for m in metrics) + ").")

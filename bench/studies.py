"""Studies: a question answered by a set of variants run on a set of cards, and its table.

`python -m bench study NAME` runs the study's cases (the suites, as `bench run` does) and
prints its table; `python -m bench table --study NAME RESULTS...` prints it again. A study's own
variants (bench/variants.py, ``study=``) run only when asked for. Adding a study is one entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from bench.report.table import QUALITY, agreement_cell, num, quality, speed_cell, status_cell


@dataclass(frozen=True)
class Study:
    name: str
    question: str
    variants: tuple[str, ...]
    cards: tuple[str, ...]  # the default cards; --card picks others
    table: Callable[[list[Mapping]], str]


def _cases_by_card(docs: list[Mapping]) -> dict[str, dict[str, Mapping]]:
    by_card: dict[str, dict[str, Mapping]] = {}
    for doc in docs:
        for c in doc["cases"]:
            by_card.setdefault(c["card"], {})[c["variant"]] = c
    return by_card


_UNIT = {"intent_acc": " pt", "wer": " pt", "bleu": "", "tts_distance": " dB"}


def _quality_change(m: Mapping, ref: Mapping) -> str:
    """The change of the task's first quality figure against PyTorch's, in its own unit."""
    for key, _ in QUALITY:
        if m.get(key) is not None and ref.get(key) is not None:
            return f"{m[key] - ref[key]:+.2f}{_UNIT[key]}"
    return "-"


def int8_table(docs: list[Mapping]) -> str:
    """Per card and variant: size against the fp32 export, speed against PyTorch and against
    dynamic int8, quality and its change against PyTorch, agreement."""
    out = ["| card | variant | model MB | x smaller than fp32 export | speedup vs PyTorch [95% CI] "
           "| speed vs onnx-int8 | quality | change vs PyTorch | agreement TER % test / real | status |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for card, cases in _cases_by_card(docs).items():
        fp32 = (cases.get("onnx") or {}).get("metrics", {}).get("model_mb")
        ref = (cases.get("pytorch") or {}).get("metrics", {})
        dyn = (cases.get("onnx-int8") or {}).get("metrics", {}).get("speedup")
        for variant in STUDIES["int8"].variants:
            c = cases.get(variant)
            if c is None:
                continue
            m = c["metrics"]
            smaller = fp32 / m["model_mb"] if fp32 and m.get("model_mb") else None
            vs_dyn = m["speedup"] / dyn if dyn and m.get("speedup") and variant != "pytorch" else None
            status = f"error: {str(c.get('error'))[:120]}" if c["status"] == "error" else status_cell(c)
            out.append(f"| {card} | {variant} | {num(m.get('model_mb'), '{:.1f}')} | "
                       f"{num(smaller, '{:.2f}x')} | {speed_cell(c)} | {num(vs_dyn, '{:.2f}x')} | "
                       f"{quality(m)} | {_quality_change(m, ref) if variant != 'pytorch' else '-'} | "
                       f"{agreement_cell(m)} | {status} |")
    runs = ", ".join(f"{d['run']['id']} (commit {str(d['run'].get('git_commit'))[:10]}, "
                     f"`{d['run']['machine']['class']}`)" for d in docs)
    out += ["", "Model MB: the variant's files (PyTorch: its checkpoint). Speed vs onnx-int8: the "
            "ratio of the two speedups, each taken against PyTorch in the same run. "
            f"Runs {runs}."]
    return "\n".join(out)


STUDIES = {s.name: s for s in [
    Study("int8", "How much smaller and faster is int8 of weights and activations, and of the "
          "convolutions alone, than dynamic int8 of the products; and what does it cost in quality?",
          ("pytorch", "onnx", "onnx-fused", "onnx-int8", "onnx-int8-static", "onnx-int8-conv"),
          ("asr-conformer-tiny", "slu-conformer-tiny", "st-conformer-tiny", "tts-fastspeech2-smoke",
           "asr-conformer-paper"),
          int8_table),
]}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r} (known: {', '.join(STUDIES)})")
    return STUDIES[name]

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

    def appears_in(self, variants: set[str], cards: set[str]) -> bool:
        """Whether a set of cases holds this study: any of its own variants, else (a study of
        cards, run with the default variants) more than two of its cards."""
        from bench.variants import VARIANTS

        own = {v for v in self.variants if VARIANTS[v].study == self.name}
        return bool(own & variants) if own else len(set(self.cards) & cards) > 2


def _cases_by_card(docs: list[Mapping]) -> dict[str, dict[str, Mapping]]:
    by_card: dict[str, dict[str, Mapping]] = {}
    for doc in docs:
        for c in doc["cases"]:
            by_card.setdefault(c["card"], {})[c["variant"]] = c
    return by_card


def _status(c: Mapping) -> str:
    return f"error: {str(c.get('error'))[:120]}" if c["status"] == "error" else status_cell(c)


def _judged_cells(c: Mapping, ref: Mapping) -> str:
    """A study row's last cells: quality, its change against PyTorch's (``ref``, its metrics),
    agreement, and the gate's verdict or the case's error."""
    m = c["metrics"]
    change = _quality_change(m, ref) if c["variant"] != "pytorch" else "-"
    return f"{quality(m)} | {change} | {agreement_cell(m)} | {_status(c)}"


def _runs(docs: list[Mapping]) -> str:
    return ", ".join(f"{d['run']['id']} (commit {str(d['run'].get('git_commit'))[:10]}, "
                     f"`{d['run']['machine']['class']}`)" for d in docs)


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
    out = ["| card | variant | model MB | x smaller than fp32 export | x smaller than fp32 stored alike "
           "| speedup vs PyTorch [95% CI] | speed vs onnx-int8 | quality | change vs PyTorch "
           "| agreement TER % test / real | status |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
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
            alike = ((c.get("settings") or {}).get("variant") or {}).get("base_stored_alike_mb")
            smaller_alike = alike / m["model_mb"] if alike and m.get("model_mb") else None
            vs_dyn = m["speedup"] / dyn if dyn and m.get("speedup") and variant != "pytorch" else None
            out.append(f"| {card} | {variant} | {num(m.get('model_mb'), '{:.1f}')} | "
                       f"{num(smaller, '{:.2f}x')} | {num(smaller_alike, '{:.2f}x')} | {speed_cell(c)} | "
                       f"{num(vs_dyn, '{:.2f}x')} | {_judged_cells(c, ref)} |")
    out += ["", "Model MB: the variant's files (PyTorch: its checkpoint). Stored alike: its float base "
            "(onnx-fused) stored as the static variants are (STFT basis from its tables, short names), "
            "so only int8 differs. Speed vs onnx-int8: the "
            "ratio of the two speedups, each taken against PyTorch in the same run. "
            f"Runs {_runs(docs)}."]
    return "\n".join(out)


def _card_shape(name: str) -> tuple[str, str]:
    """(weights, encoder shape) from the card: trained or random, width x blocks, feed-forward,
    heads, decoder blocks. A card that cannot be read (a user's file elsewhere) shows '?'."""
    from bench.zoo.cards import load_card

    try:
        card = load_card(name)
    except Exception:  # noqa: BLE001 - the table still shows the figures
        return "?", "?"
    weights = "random" if str(card.model.get("weights", "")).startswith("random:") else "trained"
    esp = card.model.get("espnet") or {}
    enc, dec = esp.get("encoder_conf") or {}, esp.get("decoder_conf") or {}
    conv_only = f" (lowest {enc['conv_only_blocks']} conv-only)" if enc.get("conv_only_blocks") else ""
    shape = (f"{enc.get('output_size', '?')}-d x {enc.get('num_blocks', '?')}{conv_only}, "
             f"ff {enc.get('linear_units', '?')}, {enc.get('attention_heads', '?')} heads; "
             f"dec {dec.get('num_blocks', '-')}")
    return weights, shape


def _gflop_per_audio_second(case: Mapping | None) -> float | None:
    """The graphs' counted arithmetic (fp32 and int8 products) per second of audio, from the
    case's roofline pass (bench.measure.roofline)."""
    roof = ((case or {}).get("settings") or {}).get("roofline") or {}
    graphs, audio = roof.get("in_graphs") or {}, roof.get("audio_seconds")
    if not audio or graphs.get("gflop_fp32") is None:
        return None
    return (graphs["gflop_fp32"] + graphs.get("gop_int8", 0.0)) / audio


def size_table(docs: list[Mapping]) -> str:
    """One row per size (smallest first): weights, shape, parameters, arithmetic per second of
    audio, fp32 size and the speedup of each ONNX variant, all from one run per card; then a
    row per card and variant with RTF, quality and agreement."""
    by_card = _cases_by_card(docs)
    onnx_variants = [v for v in STUDIES["size"].variants if v != "pytorch"]

    def params(cases):
        return next((c["settings"].get("parameters") for c in cases.values()
                     if (c.get("settings") or {}).get("parameters")), None)

    order = sorted(by_card, key=lambda card: params(by_card[card]) or 0)
    out = ["| card | weights | encoder | parameters (M) | GFLOP per audio s | fp32 export MB | "
           + " | ".join(f"speedup {v} [95% CI]" for v in onnx_variants) + " |",
           "|---|---|---|---|---|---|" + "---|" * len(onnx_variants)]
    for card in order:
        cases = by_card[card]
        weights, shape = _card_shape(card)
        n = params(cases)
        fp32 = (cases.get("onnx") or {}).get("metrics", {}).get("model_mb")
        speeds = [speed_cell(cases[v]) if v in cases and cases[v]["status"] == "ok" else "-"
                  for v in onnx_variants]
        out.append(f"| {card} | {weights} | {shape} | {num(n / 1e6 if n else None, '{:.2f}')} | "
                   f"{num(_gflop_per_audio_second(cases.get('onnx')), '{:.2f}')} | {num(fp32, '{:.1f}')} | "
                   + " | ".join(speeds) + " |")
    out += ["", "| card | variant | model MB | RTF | quality | change vs PyTorch | agreement TER % test / real | status |",
            "|---|---|---|---|---|---|---|---|"]
    for card in order:
        cases = by_card[card]
        ref = (cases.get("pytorch") or {}).get("metrics", {})
        for variant in STUDIES["size"].variants:
            c = cases.get(variant)
            if c is None:
                continue
            m = c["metrics"]
            out.append(f"| {card} | {variant} | {num(m.get('model_mb'), '{:.1f}')} | {num(m.get('rtf'), '{:.3f}')} | "
                       f"{_judged_cells(c, ref)} |")
    out += ["", "Parameters: the PyTorch model's. GFLOP per audio s: the products (MatMul, Gemm, Conv) "
            "counted from the `onnx` graphs' shapes over the timed decode, per second of its audio; "
            "decoder steps depend on the hypotheses' lengths. Quality of random weights is noise; "
            f"their agreement with PyTorch is what counts. Runs {_runs(docs)}."]
    return "\n".join(out)


STUDIES = {s.name: s for s in [
    Study("int8", "How much smaller and faster is int8 of weights and activations, of the "
          "convolutions alone, or of the convolutions too, than dynamic int8 of the products; "
          "and what does it cost in quality?",
          ("pytorch", "onnx", "onnx-fused", "onnx-int8", "onnx-int8-static", "onnx-int8-conv",
           "onnx-int8-convs"),
          ("asr-conformer-tiny", "slu-conformer-tiny", "st-conformer-tiny", "tts-fastspeech2-smoke",
           "asr-conformer-paper"),
          int8_table),
    Study("size", "How do speed, arithmetic and quality change with the size of one conformer recipe "
          "(width, depth, feed-forward size, heads, convolution-only lower blocks), and does the ONNX "
          "speedup hold as it shrinks?",
          ("pytorch", "onnx", "onnx-fused", "onnx-int8"),
          ("asr-conformer-micro", "asr-conformer-tiny", "asr-convlower-tiny", "asr-conformer-small",
           "asr-convlower-paper", "asr-conformer-paper"),
          size_table),
]}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r} (known: {', '.join(STUDIES)})")
    return STUDIES[name]

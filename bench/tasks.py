"""What differs between tasks: the exporter and runtime family (speech in, text out; or text in,
speech out) and how the output is scored. Adding a task is one entry here plus its suite file
(suites/test_<task>.py); the ESPnet task that builds a card's model is in
bench/zoo/build_tasks.py.

Every scorer takes the references, the variant's outputs and the PyTorch reference's outputs
and returns (metrics, notes): metrics are results-schema keys (bench.results.METRIC_KEYS),
notes go into the case's settings (the sacrebleu signature, the bounds used).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Scorers import their metric libraries (jiwer, sacrebleu) when called: the report reads
# this registry on a merge machine that has only pandas and matplotlib.

@dataclass(frozen=True)
class Task:
    name: str
    family: str  # "speech2text": wave in, tokens out | "text2speech": phonemes in, wave out
    score: Callable[[list, list, list], tuple[dict, dict]]
    # the metrics that judge its output (results-schema keys), headline first; the report
    # shows these with their delta to PyTorch and plots the first against RTF
    quality: tuple[str, ...] = ()


def _tokens(outs):
    return [o.tokens for o in outs]


def _has_references(refs) -> bool:
    # None: no text file, or random weights (bench.trackers): nothing to score against
    return bool(refs) and all(r is not None for r in refs)


def score_asr(refs, outs, ref_outs):
    from bench.metrics.text import agreement_ter, wer_cer

    m = {"agreement_ter": agreement_ter(_tokens(ref_outs), _tokens(outs))}
    if _has_references(refs):
        m.update(wer_cer(refs, [o.text for o in outs]))
    return m, {}


def split_intent(text: str) -> tuple[str, str]:
    """SLURP-style output "INTENT transcript" -> (intent, transcript)."""
    head = text.split(maxsplit=1)
    return (head[0] if head else ""), (head[1] if len(head) > 1 else "")


def score_slu(refs, outs, ref_outs):
    """Intent accuracy (the first word, exactly) and WER/CER of the transcript after it."""
    from bench.metrics.text import agreement_ter, wer_cer

    m = {"agreement_ter": agreement_ter(_tokens(ref_outs), _tokens(outs))}
    if _has_references(refs):
        want = [split_intent(r) for r in refs]
        got = [split_intent(o.text) for o in outs]
        m["intent_acc"] = 100.0 * sum(g[0] == w[0] for g, w in zip(got, want)) / len(refs)
        m.update(wer_cer([w[1] for w in want], [g[1] for g in got]))
    return m, {}


def score_st(refs, outs, ref_outs):
    """Corpus BLEU (sacrebleu defaults: 13a tokenizer, mixed case); its signature is kept."""
    import sacrebleu

    from bench.metrics.text import agreement_ter

    m = {"agreement_ter": agreement_ter(_tokens(ref_outs), _tokens(outs))}
    notes = {}
    if _has_references(refs):
        bleu = sacrebleu.metrics.BLEU()
        m["bleu"] = bleu.corpus_score([o.text for o in outs], [refs]).score
        notes["bleu_signature"] = str(bleu.get_signature())
    return m, notes


def score_tts(refs, outs, ref_outs):
    """Mean mel-cepstral distortion (dB) of each output to the PyTorch reference's output."""
    from bench.metrics.audio import mel_cepstral_distortion

    d = [mel_cepstral_distortion(r.wave, o.wave, r.sample_rate) for r, o in zip(ref_outs, outs)]
    return {"tts_distance": sum(d) / len(d) if d else None}, \
        {"tts_distance": "mean mel-cepstral distortion to the PyTorch output, dB"}


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("asr", "speech2text", score_asr, ("wer", "cer")),
    Task("slu", "speech2text", score_slu, ("intent_acc", "wer")),
    Task("st", "speech2text", score_st, ("bleu",)),
    Task("tts", "text2speech", score_tts, ("tts_distance",)),
]}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]

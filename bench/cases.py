"""One benchmark case, (card, variant, device), measured end to end.

Quality runs over the whole evaluation set; speed over a length-stratified subset in
rounds that interleave the PyTorch reference and the variant; peak memory in a fresh
child process. The timed region is waveform in -> text out: feature extraction, encoder,
beam search and token conversion included.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.artifacts import artifact_info, ensure_artifact
from bench.data.sets import EvalUtterance, load_eval_set, stratified_subset
from bench.measure.memory import measure_peak_rss
from bench.measure.stats import percentiles_ms
from bench.measure.timing import interleaved_pairs, time_single
from bench.metrics.text import agreement_ter, wer_cer
from bench.results import make_case, set_error, set_skipped
from bench.runtime.load import PROVIDERS, load_recognizer, model_size_mb
from bench.variants import REFERENCE, get_variant
from bench.zoo.cards import Card


@dataclass
class Decoded:
    tokens: list[list[int]]
    texts: list[str]
    seconds: list[float]


@dataclass
class BenchSession:
    """State shared by the cases of one run: data, artifacts and PyTorch references."""

    threads: int = 2
    fast: bool = False  # fewer rounds: for tests of the harness, not for figures
    data_dir: str | None = None  # a Kaldi-style dir (--data) that replaces every card's data
    utterances: list[dict] = field(default_factory=list)
    _data: dict = field(default_factory=dict)
    _refs: dict = field(default_factory=dict)

    def eval_set(self, card: Card) -> list[EvalUtterance]:
        if card.name not in self._data:
            self._data[card.name] = load_eval_set(card, self.data_dir)
        return self._data[card.name]

    def artifact(self, card: Card) -> Path:
        return ensure_artifact(card)

    def reference(self, card: Card, device: str):
        """The PyTorch recognizer and its outputs on the whole set, computed once."""
        key = (card.name, device)
        if key not in self._refs:
            rec = load_recognizer(self.artifact(card), card.decode, REFERENCE, device, self.threads)
            self._refs[key] = (rec, decode_all(rec, self.eval_set(card)))
        return self._refs[key]


def decode_all(rec, utts: list[EvalUtterance]) -> Decoded:
    out = Decoded([], [], [])
    for u in utts:
        t = time.perf_counter()
        r = rec(u.wave)
        out.seconds.append(time.perf_counter() - t)
        out.tokens.append(r.tokens)
        out.texts.append(r.text)
    return out


def device_available(device: str) -> str | None:
    """None if the device can run here, else the reason it cannot."""
    if device == "cpu":
        return None
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return "no CUDA execution provider in this onnxruntime (install onnxruntime-gpu)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    return None


def run_case(session: BenchSession, card: Card, variant: str, device: str) -> dict:
    case = make_case(card.task, card.name, variant, device)
    # PyTorch's OpenMP threads slow down by orders of magnitude when another process takes
    # a core, ORT far less: a busy machine inflates speedups, so the load is recorded.
    case["settings"] = {"threads": session.threads, "decode": card.decode,
                        "providers": PROVIDERS.get(device), "loadavg_1m_before": os.getloadavg()[0]}
    reason = device_available(device)
    if reason:
        return set_skipped(case, reason)
    try:
        _measure(session, card, variant, device, case)
    except Exception as e:  # one broken case is reported; the run goes on
        set_error(case, f"{type(e).__name__}: {e}")
        case["traceback"] = traceback.format_exc(limit=6)
    case["settings"]["loadavg_1m_after"] = os.getloadavg()[0]
    return case


def _measure(session: BenchSession, card: Card, variant: str, device: str, case: dict) -> None:
    v = get_variant(variant)
    utts = session.eval_set(card)
    artifact = session.artifact(card)
    info = artifact_info(artifact)
    if v.runtime == "onnx":
        from bench.runtime.onnx_asr import session_settings

        case["settings"]["ort_session"] = session_settings(session.threads)
    case["settings"].update({"artifact": artifact.name, "opset": info["export"]["opset"],
                             "exporter": info["export"]["exporter"],
                             "variant": info["variants"].get(variant, {}).get("settings")})
    derive_error = info["variants"].get(variant, {}).get("error")
    if derive_error:
        raise RuntimeError(f"variant {variant} of {artifact.name} could not be derived: {derive_error}")
    ref_rec, ref_out = session.reference(card, device)

    # load and first call, then the quality pass over the whole set
    t = time.perf_counter()
    rec = load_recognizer(artifact, card.decode, variant, device, session.threads)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    rec(utts[0].wave)
    first_s = time.perf_counter() - t
    out = ref_out if variant == REFERENCE else decode_all(rec, utts)

    m = case["metrics"]
    case["n_utterances"] = len(utts)
    case["audio_seconds"] = round(sum(u.seconds for u in utts), 3)
    refs = [u.text for u in utts]
    if all(r is not None for r in refs):
        m.update(wer_cer(refs, out.texts))
    m["agreement_ter"] = agreement_ter(ref_out.tokens, out.tokens)
    m["load_ms"] = load_s * 1000
    m["first_call_ms"] = first_s * 1000
    m["model_mb"] = model_size_mb(artifact, variant)

    # speed: interleaved with the reference on a length-stratified subset
    subset = stratified_subset(utts, int(card.timing.get("subset", 3)))
    waves = [u.wave for u in subset]
    rounds = dict(min_rounds=2 if session.fast else int(card.timing.get("min_rounds", 5)),
                  min_seconds=0.0 if session.fast else float(card.timing.get("min_seconds", 10)),
                  warmup=1)
    sub_audio = sum(u.seconds for u in subset)
    if variant == REFERENCE:
        st = time_single(rec, waves, **rounds)
        per_item, total, n_rounds = st.item_flat(), st.total_s(), st.n_rounds
        round_s = st.round_s
    else:
        pt = interleaved_pairs(ref_rec, rec, waves, **rounds)
        if _too_noisy(pt):  # measure once more before calling the case undecidable
            case["settings"]["remeasured"] = {"first_ci95": list(pt.speedup_ci95())}
            pt = interleaved_pairs(ref_rec, rec, waves, **rounds)
            if _too_noisy(pt):
                lo, hi = pt.speedup_ci95()
                case["settings"]["too_noisy"] = (
                    f"speedup interval [{lo:.2f}, {hi:.2f}] is wider than {MAX_CI_REL_WIDTH:g} x "
                    f"the speedup {pt.speedup():.2f}, twice")
        per_item, total, n_rounds = pt.var_item_flat(), pt.var_total_s(), pt.n_rounds
        round_s = list(pt.var_s)
        m["speedup"] = pt.speedup()
        m["speedup_ci95"] = list(pt.speedup_ci95())
        case["settings"]["speedup_ratios"] = [round(r, 4) for r in pt.ratios()]
    m["rtf"] = total / (n_rounds * sub_audio)
    m["rtfx"] = 1.0 / m["rtf"]
    m["latency_ms"] = percentiles_ms(per_item)
    case["settings"]["timing"] = {"rounds": n_rounds, "subset": [u.id for u in subset],
                                  "subset_audio_s": round(sub_audio, 3), "round_s": round_s}

    # peak memory in a fresh process
    mem = measure_child_memory(artifact, card, variant, device, session.threads, waves)
    m["peak_rss_mb"] = mem.peak_rss_mb
    case["settings"]["memory"] = {"hwm_mb": mem.hwm_mb, "idle_mb": mem.idle_mb,
                                  "child_torch_imported": mem.payload.get("torch_imported")}
    if v.runtime == "onnx" and mem.payload.get("torch_imported"):
        raise RuntimeError("the ONNX variant's memory child imported torch")

    for u, toks, text, secs, rtoks in zip(utts, out.tokens, out.texts, out.seconds, ref_out.tokens):
        session.utterances.append({
            "task": card.task, "card": card.name, "variant": variant, "device": device,
            "id": u.id, "duration": round(u.seconds, 3), "seconds": secs, "hypothesis": text,
            "reference": u.text, "tokens": toks, "agrees_with_pytorch": toks == rtoks})


MAX_CI_REL_WIDTH = 0.5  # wider than this, an interval cannot tell a regression from noise


def _too_noisy(pt) -> bool:
    lo, hi = pt.speedup_ci95()
    return (hi - lo) > MAX_CI_REL_WIDTH * pt.speedup()


def measure_child_memory(artifact, card, variant, device, threads, waves):
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "waves.npz", **{f"u{i:03d}": w for i, w in enumerate(waves)})
        spec = {"artifact": str(artifact), "decode": card.decode, "variant": variant,
                "device": device, "threads": threads, "waves": str(Path(tmp) / "waves.npz"),
                "runtime": get_variant(variant).runtime}
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        return measure_peak_rss([sys.executable, "-m", "bench.measure.child",
                                 str(Path(tmp) / "spec.json")], env=env, timeout=1800)

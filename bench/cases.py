"""One benchmark case, (card, variant, device), measured end to end.

Quality runs over the whole evaluation set; speed over a length-stratified subset in
rounds that interleave the PyTorch reference and the variant; peak memory in a fresh
child process. The timed region is the whole job: waveform in -> text out (feature
extraction, encoder, beam search, token conversion) for ASR, SLU and ST; phonemes in ->
waveform out for TTS, whose RTF is over the audio it outputs. Task differences (scoring,
what the input is) live in bench.tasks.
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
from bench.data.sets import load_eval_set, stratified_subset
from bench.families import get_family
from bench.identity import case_identity, data_identity
from bench.measure.inject import injected_fractions
from bench.measure.memory import measure_peak_rss
from bench.measure.stats import percentiles_ms
from bench.measure.timing import SUITE_RULE, interleaved_pairs, time_single
from bench.results import make_case, set_error, set_skipped
from bench.runtime.load import PROVIDERS, load_recognizer, model_size_mb
from bench.tasks import get_task
from bench.variants import REFERENCE, device_reason, get_variant
from bench.zoo.cards import Card


@dataclass
class Decoded:
    outputs: list  # Recognition (tokens, text) or Synthesis (wave, sample_rate), one per item
    seconds: list[float]


@dataclass
class BenchSession:
    """State shared by the cases of one run: data, artifacts and PyTorch references."""

    threads: int = 2
    fast: bool = False  # fewer rounds: for tests of the harness, not for figures
    data_dir: str | None = None  # a Kaldi-style dir (--data) that replaces every card's data
    utterances: list[dict] = field(default_factory=list)
    _data: dict = field(default_factory=dict)
    _data_ids: dict = field(default_factory=dict)
    _refs: dict = field(default_factory=dict)

    def eval_set(self, card: Card) -> list:
        if card.name not in self._data:
            self._data[card.name] = load_eval_set(card, self.data_dir)
        return self._data[card.name]

    def identity(self, card: Card, variant: str) -> dict:
        """What the case is measured on (bench.identity); the data's hash once per card."""
        if card.name not in self._data_ids:
            self._data_ids[card.name] = data_identity(self.eval_set(card))
        return case_identity(self.eval_set(card), card.decode, variant, self.data_dir,
                             data=self._data_ids[card.name])

    def artifact(self, card: Card) -> Path:
        return ensure_artifact(card)

    def reference(self, card: Card, device: str):
        """The PyTorch recognizer and its outputs on the whole set, computed once."""
        key = (card.name, device)
        if key not in self._refs:
            rec = load_recognizer(self.artifact(card), card.decode, REFERENCE, device, self.threads)
            self._refs[key] = (rec, decode_all(rec, self.eval_set(card)))
        return self._refs[key]


class ItemError(RuntimeError):
    """An input the model cannot take (too short, empty, unknown symbol); names the item."""


def decode_all(rec, utts: list) -> Decoded:
    out = Decoded([], [])
    for u in utts:
        t = time.perf_counter()
        try:
            r = rec(u.input)
        except Exception as e:  # ESPnet's and our own errors say what; add which input
            raise ItemError(f"item {u.id} ({u.source}): {type(e).__name__}: {e}") from e
        out.seconds.append(time.perf_counter() - t)
        out.outputs.append(r)
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
    reason = device_reason(variant, device) or device_available(device)
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
    task = get_task(card.task)
    family = get_family(task.family)
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
    case["identity"] = session.identity(card, variant)
    injected = injected_fractions().get(variant)
    if injected:
        case["settings"]["injected_slowdown"] = injected
    ref_rec, ref_out = session.reference(card, device)

    # load and first call, then the quality pass over the whole set
    t = time.perf_counter()
    rec = load_recognizer(artifact, card.decode, variant, device, session.threads)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    rec(utts[0].input)
    first_s = time.perf_counter() - t
    out = ref_out if variant == REFERENCE else decode_all(rec, utts)

    m = case["metrics"]
    case["n_utterances"] = len(utts)
    # audio in for speech input, audio out for TTS (its RTF is over the output)
    item_audio = [o.seconds for o in out.outputs] if family.audio_is_output else [u.seconds for u in utts]
    case["audio_seconds"] = round(sum(item_audio), 3)
    refs = [u.text for u in utts]
    if card.random_weights:
        # a random model's output is noise: its WER or BLEU would be a number without meaning
        refs = [None] * len(utts)
        case["settings"]["references"] = ("not scored: random weights; agreement with PyTorch "
                                          "is the quality figure")
    metrics, notes = task.score(refs, out.outputs, ref_out.outputs)
    m.update(metrics)
    case["settings"].update(notes)
    m["load_ms"] = load_s * 1000
    m["first_call_ms"] = first_s * 1000
    m["model_mb"] = model_size_mb(artifact, variant)

    # speed: interleaved with the reference on a length-stratified subset
    subset = stratified_subset(utts, int(card.timing.get("subset", 3)))
    inputs = [u.input for u in subset]
    # the sequential rule and its cap (bench/measure/timing.py); --fast keeps 2 fixed rounds
    rule = {k: card.timing.get(k, v) for k, v in SUITE_RULE.items() if k != "warmup"}
    rounds = dict(min_rounds=2 if session.fast else int(rule["min_rounds"]),
                  min_seconds=0.0 if session.fast else float(rule["min_seconds"]),
                  max_rounds=int(rule["max_rounds"]),
                  target_rel_width=None if session.fast else float(rule["target_rel_width"]),
                  max_seconds=None if session.fast else float(rule["max_seconds"]),
                  warmup=SUITE_RULE["warmup"])
    audio_of = dict(zip((u.id for u in utts), item_audio))
    sub_audio = sum(audio_of[u.id] for u in subset)
    if variant == REFERENCE:
        st = tm = time_single(rec, inputs, **rounds)
        per_item, total, n_rounds = st.item_flat(), st.total_s(), st.n_rounds
        round_s = st.round_s
    else:
        pt = tm = interleaved_pairs(ref_rec, rec, inputs, **rounds)
        if _too_noisy(pt):  # measure once more before calling the case undecidable
            case["remeasured"] = {"first_ci95": list(pt.speedup_ci95())}
            pt = tm = interleaved_pairs(ref_rec, rec, inputs, **rounds)
            if _too_noisy(pt):
                lo, hi = pt.speedup_ci95()
                case["too_noisy"] = (
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
                                  "subset_audio_s": round(sub_audio, 3), "round_s": round_s,
                                  # why the rounds ended, under which rule (timing.py)
                                  "stopped": tm.stopped, "floor": tm.floor,
                                  "min_seconds": rounds["min_seconds"],
                                  "max_rounds": rounds["max_rounds"],
                                  "target_rel_width": rounds["target_rel_width"],
                                  "max_seconds": rounds["max_seconds"],
                                  "rel_width": (round(tm.rel_width(), 4)
                                                if np.isfinite(tm.rel_width()) else None),
                                  "timing_s": round(tm.elapsed_s, 3),
                                  "warmup_s": round(tm.warmup_s, 3)}

    # peak memory in a fresh process
    mem = measure_child_memory(artifact, card, variant, device, session.threads, inputs)
    m["peak_rss_mb"] = mem.peak_rss_mb
    case["settings"]["memory"] = {"hwm_mb": mem.hwm_mb, "idle_mb": mem.idle_mb,
                                  "child_torch_imported": mem.payload.get("torch_imported")}
    if device == "cuda":  # this process's own GPU memory (NVML), beside torch's counters
        m["peak_gpu_mb"] = mem.peak_gpu_mb
        case["settings"]["memory"].update({"gpu_source": "NVML per-process used memory, sampled",
                                           "gpu_note": mem.gpu_note,
                                           "torch_cuda": mem.payload.get("torch_cuda")})
    if v.runtime == "onnx" and mem.payload.get("torch_imported"):
        raise RuntimeError("the ONNX variant's memory child imported torch")

    for u, o, secs, ro, audio in zip(utts, out.outputs, out.seconds, ref_out.outputs, item_audio):
        row = {"task": card.task, "card": card.name, "variant": variant, "device": device,
               "id": u.id, "duration": round(audio, 3), "seconds": secs, "reference": u.text}
        row.update(family.utterance_row(u, o, ro))
        session.utterances.append(row)


MAX_CI_REL_WIDTH = 0.5  # wider than this, an interval cannot tell a regression from noise


def _too_noisy(pt) -> bool:
    lo, hi = pt.speedup_ci95()
    return (hi - lo) > MAX_CI_REL_WIDTH * pt.speedup()


def measure_child_memory(artifact, card, variant, device, threads, inputs):
    with tempfile.TemporaryDirectory() as tmp:
        if inputs and isinstance(inputs[0], str):  # TTS: phoneme strings
            path = Path(tmp) / "inputs.json"
            path.write_text(json.dumps(inputs))
        else:
            path = Path(tmp) / "inputs.npz"
            np.savez(path, **{f"u{i:03d}": w for i, w in enumerate(inputs)})
        spec = {"artifact": str(artifact), "decode": card.decode, "variant": variant,
                "device": device, "threads": threads, "inputs": str(path),
                "runtime": get_variant(variant).runtime}
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        return measure_peak_rss([sys.executable, "-m", "bench.measure.child",
                                 str(Path(tmp) / "spec.json")], env=env, timeout=1800,
                                gpu=device == "cuda")

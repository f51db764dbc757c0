"""What one case measures, one tracker each; bench.cases composes them into a case.

- load: loading the variant, its first call, the model's size on disk;
- quality: every item decoded and scored, against the references and the PyTorch outputs;
- speed: rounds on a length-stratified subset, interleaved with the PyTorch reference,
  stopped by bench.measure.timing's rule, measured once more if too noisy to decide;
- memory: in a fresh child process, peak RSS above its idle level (model and work) and the
  whole process's peak from its start (libraries too), and GPU memory on CUDA.

Each tracker returns a dataclass whose ``record(case)`` writes its fields into the case
record (schema: bench.results), so what a tracker measures and where it lands in
results.json are read in one place.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.identity import data_identity
from bench.measure.memory import measure_peak_rss
from bench.measure.stats import percentiles_ms
from bench.measure.timing import SUITE_RULE, interleaved_pairs, time_single
from bench.paths import REPO_ROOT, pythonpath_first
from bench.runtime.load import load_recognizer, model_size_mb
from bench.variants import REFERENCE, get_variant

MAX_CI_REL_WIDTH = 0.5  # wider than this, an interval cannot tell a regression from noise


@dataclass
class Decoded:
    outputs: list  # Recognition (tokens, text) or Synthesis (wave, sample_rate), one per item
    seconds: list[float]


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


# ------------------------------------------------------------------------------- load

@dataclass
class Load:
    load_s: float
    first_call_s: float
    model_mb: float

    def record(self, case: dict) -> None:
        case["metrics"].update(load_ms=self.load_s * 1000, first_call_ms=self.first_call_s * 1000,
                               model_mb=self.model_mb)


def track_load(artifact: Path, card, variant: str, device: str, threads: int, first_input):
    """(the loaded recognizer, Load)."""
    t = time.perf_counter()
    rec = load_recognizer(artifact, card.decode, variant, device, threads)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    rec(first_input)
    return rec, Load(load_s, time.perf_counter() - t, model_size_mb(artifact, variant))


# ---------------------------------------------------------------------------- quality

@dataclass
class Quality:
    decoded: Decoded
    item_audio_s: list[float]  # audio in (speech input) or out (TTS), per item
    metrics: dict[str, Any]
    notes: dict[str, Any]

    def record(self, case: dict) -> None:
        case["n_utterances"] = len(self.item_audio_s)
        case["audio_seconds"] = round(sum(self.item_audio_s), 3)
        case["metrics"].update(self.metrics)
        case["settings"].update(self.notes)


def track_quality(rec, variant: str, card, task, family, utts: list, ref_out: Decoded) -> Quality:
    out = ref_out if variant == REFERENCE else decode_all(rec, utts)
    # audio in for speech input, audio out for TTS (its RTF is over the output)
    audio = [o.seconds for o in out.outputs] if family.audio_is_output else [u.seconds for u in utts]
    refs, notes = [u.text for u in utts], {}
    if card.random_weights:
        # a random model's output is noise: its WER or BLEU would be a number without meaning
        refs = [None] * len(utts)
        notes["references"] = "not scored: random weights; agreement with PyTorch is the quality figure"
    metrics, score_notes = task.score(refs, out.outputs, ref_out.outputs)
    return Quality(out, audio, metrics, {**notes, **score_notes})


@dataclass
class RealSpeech:
    """Agreement with PyTorch on real recordings the model never saw (its test set is synthetic):
    how many tokens quantization or export flips out of domain, beside the test set's figure."""
    agreement_ter: float | None
    notes: dict[str, Any]

    def record(self, case: dict) -> None:
        case["metrics"]["real_agreement_ter"] = self.agreement_ter
        case["settings"]["real_speech"] = self.notes


def track_real_speech(rec, variant: str, task, clips: list, ref_out: Decoded | None,
                      where: str) -> RealSpeech:
    if not clips:
        return RealSpeech(None, {"measured": False, "why": where})
    # the clips' content hash: the gate compares this figure only with one from the same clips
    notes = {"measured": True, "dir": where, "n_clips": len(clips), "identity": data_identity(clips),
             "audio_seconds": round(sum(c.seconds for c in clips), 3)}
    if variant == REFERENCE:
        return RealSpeech(None, {**notes, "outputs": [o.text for o in ref_out.outputs]})
    out = decode_all(rec, clips)
    metrics, _ = task.score([None] * len(clips), out.outputs, ref_out.outputs)
    return RealSpeech(metrics["agreement_ter"], {**notes, "outputs": [o.text for o in out.outputs]})


# ------------------------------------------------------------------------------ speed

@dataclass
class Speed:
    metrics: dict[str, Any]  # speedup and its interval (not for the reference), rtf, rtfx, latency
    timing: dict[str, Any]  # the rounds and why they stopped: settings.timing
    speedup_ratios: list[float] | None
    remeasured: dict | None  # the first interval, when it was too wide and timing ran again
    too_noisy: str | None  # still too wide: why the gate cannot decide

    def record(self, case: dict) -> None:
        case["metrics"].update(self.metrics)
        if self.speedup_ratios is not None:
            case["settings"]["speedup_ratios"] = self.speedup_ratios
        case["settings"]["timing"] = self.timing
        case["remeasured"], case["too_noisy"] = self.remeasured, self.too_noisy


def rounds_rule(card_timing: dict, fast: bool) -> dict:
    """The suites' stopping rule (timing.SUITE_RULE) as the card overrides it; --fast: 2 fixed rounds."""
    rule = {k: type(v)(card_timing.get(k, v)) for k, v in SUITE_RULE.items() if k != "warmup"}
    if fast:
        rule.update(min_rounds=2, min_seconds=0.0, target_rel_width=None, max_seconds=None)
    return {**rule, "warmup": SUITE_RULE["warmup"]}


def _too_wide(pt) -> bool:
    lo, hi = pt.speedup_ci95()
    return (hi - lo) > MAX_CI_REL_WIDTH * pt.speedup()


def track_speed(ref_rec, rec, variant: str, subset: list, subset_audio_s: float, rounds: dict) -> Speed:
    inputs = [u.input for u in subset]
    metrics: dict[str, Any] = {}
    ratios = remeasured = too_noisy = None
    if variant == REFERENCE:
        tm = time_single(rec, inputs, **rounds)
        per_item, total, round_s = tm.item_flat(), tm.total_s(), tm.round_s
    else:
        tm = interleaved_pairs(ref_rec, rec, inputs, **rounds)
        if _too_wide(tm):  # measure once more before calling the case undecidable
            remeasured = {"first_ci95": list(tm.speedup_ci95())}
            tm = interleaved_pairs(ref_rec, rec, inputs, **rounds)
            if _too_wide(tm):
                lo, hi = tm.speedup_ci95()
                too_noisy = (f"speedup interval [{lo:.2f}, {hi:.2f}] is wider than {MAX_CI_REL_WIDTH:g} x "
                             f"the speedup {tm.speedup():.2f}, twice")
        per_item, total, round_s = tm.var_item_flat(), tm.var_total_s(), list(tm.var_s)
        metrics.update(speedup=tm.speedup(), speedup_ci95=list(tm.speedup_ci95()))
        ratios = [round(r, 4) for r in tm.ratios()]
    rtf = total / (tm.n_rounds * subset_audio_s)
    metrics.update(rtf=rtf, rtfx=1.0 / rtf, latency_ms=percentiles_ms(per_item))
    width = tm.rel_width()
    timing = {"rounds": tm.n_rounds, "subset": [u.id for u in subset],
              "subset_audio_s": round(subset_audio_s, 3), "round_s": round_s,
              # why the rounds ended, under which rule (timing.py)
              "stopped": tm.stopped, "floor": tm.floor,
              "min_seconds": rounds["min_seconds"], "max_rounds": rounds["max_rounds"],
              "target_rel_width": rounds["target_rel_width"], "max_seconds": rounds["max_seconds"],
              "rel_width": round(width, 4) if np.isfinite(width) else None,
              "timing_s": round(tm.elapsed_s, 3), "warmup_s": round(tm.warmup_s, 3)}
    return Speed(metrics, timing, ratios, remeasured, too_noisy)


# --------------------------------------------------------------------------- roofline

@dataclass
class Roofline:
    """The variant's arithmetic rate in its graphs and its share of the machine's GEMM peak
    (bench.measure.roofline): a diagnosis beside the speed figures, never gated."""
    detail: dict

    def record(self, case: dict) -> None:
        case["settings"]["roofline"] = self.detail
        in_graphs = self.detail.get("in_graphs") or {}
        case["metrics"].update(gops_per_s=in_graphs.get("gops_per_s"),
                               peak_percent=in_graphs.get("peak_percent"))


def track_roofline(rec, subset: list, peaks: dict) -> Roofline:
    from bench.measure.roofline import roofline

    detail = roofline(rec, [u.input for u in subset], peaks)
    if all(hasattr(u, "seconds") for u in subset):  # speech in: the arithmetic per second of it
        detail["audio_seconds"] = round(sum(u.seconds for u in subset), 3)
    return Roofline(detail)


# ----------------------------------------------------------------------------- server

SERVER_LOAD = 0.7  # arrivals at 70% of PyTorch's offline throughput, the same rate for every variant
SERVER_QUERIES = 24  # at least: the timed subset repeated


def server_queries(subset: list) -> tuple[list, list[float]]:
    reps = -(-SERVER_QUERIES // len(subset))
    items = (subset * reps)[:max(SERVER_QUERIES, len(subset))]
    return [u.input for u in items], [u.seconds for u in items]


def _streams(load, streams: int, subset: list) -> list:
    """``streams`` recognizers, each run once on the shortest query (first runs build caches)."""
    recs = [load() for _ in range(streams)]
    shortest = min(subset, key=lambda u: u.seconds).input
    for rec in recs:
        rec(shortest)
    return recs


def offline_throughput(load, streams: int, subset: list) -> dict:
    """Offline scenario of ``streams`` recognizers made by ``load()`` (bench.measure.server)."""
    from bench.measure.server import offline

    inputs, audio = server_queries(subset)
    return offline(_streams(load, streams, subset), inputs, audio)


@dataclass
class Server:
    """Throughput of N streams at once and p99 latency under load (bench.measure.server),
    beside the one-utterance-at-a-time figures; reported, not gated."""
    metrics: dict[str, Any]
    detail: dict[str, Any]

    def record(self, case: dict) -> None:
        case["metrics"].update(self.metrics)
        case["settings"]["server"] = self.detail


def track_server(load, variant: str, streams: int, subset: list, reference: dict) -> Server:
    """``load()`` makes one single-threaded recognizer of the variant; ``reference`` is
    PyTorch's offline result on the same queries, which sets the arrival rate."""
    from bench.measure.server import offline, server

    inputs, audio = server_queries(subset)
    recs = _streams(load, streams, subset)
    off = reference if variant == REFERENCE else offline(recs, inputs, audio)
    rate = SERVER_LOAD * reference["queries"] / reference["wall_s"]
    srv = server(recs, inputs, audio, rate)
    metrics = {"server_rtfx": off["rtfx"], "server_p99_ms": srv["latency_ms"]["p99"]}
    if variant != REFERENCE:
        metrics["server_speedup"] = off["rtfx"] / reference["rtfx"]
    detail = {"streams": streams, "threads_per_stream": 1, "load": SERVER_LOAD,
              "offline": off, "server": srv}
    return Server(metrics, detail)


# ----------------------------------------------------------------------------- streaming

@dataclass
class Streaming:
    """A streaming model's figures (bench.runtime.streaming.stream_figures) over the timed subset,
    each utterance fed chunk by chunk; reported, not gated."""
    metrics: dict[str, Any]
    detail: dict[str, Any]

    def record(self, case: dict) -> None:
        case["metrics"].update(self.metrics)
        case["settings"]["streaming"] = self.detail


def track_streaming(rec, subset: list) -> Streaming:
    from bench.runtime.streaming import SAMPLE_RATE, stream_figures

    logs = []
    for u in subset:
        rec(u.input)
        logs.append(rec.log)
    detail = {"chunk_ms": 1000 * rec.chunk / SAMPLE_RATE, "chunk_samples": rec.chunk, **stream_figures(logs)}
    return Streaming({"block_p90_ms": detail["block_call_ms"]["p90"],
                      "first_token_s": detail["first_token_s"]}, detail)


# ----------------------------------------------------------------------------- memory

@dataclass
class Memory:
    peak_rss_mb: float  # peak RSS above the child's idle level (after its imports)
    hwm_mb: float
    idle_mb: float
    process_peak_mb: float  # the child's whole peak from its start, its imports included
    torch_imported: bool | None
    device: str
    peak_gpu_mb: float | None = None
    gpu_note: str | None = None
    torch_cuda: dict | None = None
    runs: dict | None = None  # each child's figures, of which the fields above are medians

    def record(self, case: dict) -> None:
        case["metrics"]["peak_rss_mb"] = self.peak_rss_mb
        case["metrics"]["process_peak_mb"] = self.process_peak_mb
        memory = {"hwm_mb": self.hwm_mb, "idle_mb": self.idle_mb,
                  "child_torch_imported": self.torch_imported}
        if self.runs:
            memory.update(children=len(self.runs["process_peak_mb"]), statistic="median",
                          runs=self.runs)
        if self.device == "cuda":  # the child's own GPU memory (NVML), beside torch's counters
            case["metrics"]["peak_gpu_mb"] = self.peak_gpu_mb
            memory.update(gpu_source="NVML per-process used memory, sampled",
                          gpu_note=self.gpu_note, torch_cuda=self.torch_cuda)
        case["settings"]["memory"] = memory


# Fresh children per case; each figure is their median. One child's peak is one draw from a
# wide spread: glibc keeps freed heap, and where each block lands moves the peak. Twelve
# children of the paper card's onnx-int8 read 173-206 MB whole-process (docs/figures.md),
# while PyTorch's read within 1%.
MEMORY_CHILDREN = 3


def track_memory(artifact: Path, card, variant: str, device: str, threads: int, inputs: list,
                 children: int = MEMORY_CHILDREN) -> Memory:
    runs = [measure_child_memory(artifact, card, variant, device, threads, inputs)
            for _ in range(children)]

    def median(field: str) -> float | None:  # over the children that have the figure
        values = [getattr(r, field) for r in runs if getattr(r, field) is not None]
        return statistics.median(values) if values else None

    middle = sorted(runs, key=lambda r: r.process_peak_mb)[len(runs) // 2]  # GPU note, torch's counters
    return Memory(median("peak_rss_mb"), median("hwm_mb"), median("idle_mb"), median("process_peak_mb"),
                  any(r.payload.get("torch_imported") for r in runs), device,
                  median("peak_gpu_mb"), middle.gpu_note, middle.payload.get("torch_cuda"),
                  runs={"process_peak_mb": [round(r.process_peak_mb, 1) for r in runs],
                        "peak_rss_mb": [round(r.peak_rss_mb, 1) for r in runs]})


def measure_child_memory(artifact, card, variant, device, threads, inputs):
    """bench.measure.child run on ``inputs`` in a fresh process: its peak RSS and GPU memory."""
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
        env = dict(os.environ, PYTHONPATH=child_pythonpath())
        return measure_peak_rss([sys.executable, "-m", "bench.measure.child",
                                 str(Path(tmp) / "spec.json")], env=env, timeout=1800,
                                gpu=device == "cuda")


def child_pythonpath() -> str:
    """The measured child must import what its parent imported: this checkout, then the rest."""
    return pythonpath_first(REPO_ROOT)

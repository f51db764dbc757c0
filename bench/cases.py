"""One benchmark case, (card, variant, device), measured end to end.

Quality runs over the whole evaluation set; speed over a length-stratified subset in
rounds that interleave the PyTorch reference and the variant; peak memory in a fresh
child process: one tracker each (bench.trackers), composed here. The timed region is the whole job: waveform in -> text out (feature
extraction, encoder, beam search, token conversion) for ASR, SLU and ST; phonemes in ->
waveform out for TTS, whose RTF is over the audio it outputs. Task differences (scoring,
what the input is) live in bench.tasks.
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bench.artifacts import artifact_info, ensure_artifact, variant_record
from bench.data.sets import load_eval_set, load_real_clips, stratified_subset
from bench.families import get_family
from bench.identity import case_identity, data_identity
from bench.measure.inject import injected_fractions
from bench.results import make_case, set_error, set_skipped
from bench.runtime.load import PROVIDERS, load_recognizer
from bench.runtime.streaming import StreamLog
from bench.tasks import get_task
from bench.trackers import (MEMORY_CHILDREN, decode_all, offline_throughput, rounds_rule, track_load,
                            track_memory, track_quality, track_real_speech, track_roofline, track_server,
                            track_speed, track_streaming)
from bench.variants import REFERENCE, device_reason, get_variant
from bench.zoo.cards import Card


@dataclass
class BenchSession:
    """State shared by the cases of one run: data, artifacts and PyTorch references."""

    threads: int = 2
    fast: bool = False  # fewer rounds, one memory child: for tests of the harness, not for figures
    server_streams: int = 0  # > 0: also the server scenario with this many streams (--server)
    data_dir: str | None = None  # a Kaldi-style dir (--data) that replaces every card's data
    utterances: list[dict] = field(default_factory=list)
    _data: dict = field(default_factory=dict)
    _data_ids: dict = field(default_factory=dict)
    _refs: dict = field(default_factory=dict)
    _real: dict = field(default_factory=dict)
    _peaks: dict | None = None
    _server_ref: dict = field(default_factory=dict)

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

    def artifact(self, card: Card, variant: str | None = None) -> Path:
        """The card's artifact, with ``variant`` derived in it if it is a study's."""
        return ensure_artifact(card, variant)

    def reference(self, card: Card, device: str):
        """The PyTorch recognizer and its outputs on the whole set, computed once."""
        key = (card.name, device)
        if key not in self._refs:
            rec = load_recognizer(self.artifact(card), card.decode, REFERENCE, device, self.threads)
            self._refs[key] = (rec, decode_all(rec, self.eval_set(card)))
        return self._refs[key]

    def peaks(self) -> dict:
        """This machine's GEMM peaks (bench.measure.peak), probed once a run, at its threads."""
        if self._peaks is None:
            from bench.measure.peak import gemm_peaks

            self._peaks = gemm_peaks(self.threads)
        return self._peaks

    def server_reference(self, card: Card, device: str, subset: list) -> dict:
        """PyTorch's offline throughput with server_streams streams, once a card and device:
        every variant's arrival rate and server speedup are set by it."""
        key = (card.name, device)
        if key not in self._server_ref:
            load = lambda: load_recognizer(self.artifact(card), card.decode, REFERENCE, device, 1)  # noqa: E731
            self._server_ref[key] = offline_throughput(load, self.server_streams, subset)
        return self._server_ref[key]

    def real_speech(self, card: Card, device: str):
        """(real clips, PyTorch's outputs on them or None, where they are or why there are none),
        once a card and device. Only trained cards: a random model's output on speech is noise."""
        key = (card.name, device)
        if key not in self._real:
            if card.random_weights:
                self._real[key] = ([], None, "random weights: no agreement on real speech to speak of")
            else:
                clips, where = load_real_clips(card)
                ref_rec, _ = self.reference(card, device)
                self._real[key] = (clips, decode_all(ref_rec, clips) if clips else None, where)
        return self._real[key]


def _restore_torch_threads(threads: int) -> None:
    """Single-threaded streams set torch's process-wide thread count; the next case needs it back."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def device_available(device: str, runtime: str) -> str | None:
    """None if ``runtime`` ("torch" or "onnx") can run on the device here, else why not."""
    if device == "cpu":
        return None
    if runtime == "onnx":
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
    reason = device_reason(variant, device) or device_available(device, get_variant(variant).runtime)
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
    """The trackers in order, each recorded as soon as it is measured (a later failure keeps
    what the earlier ones found in the case)."""
    task, runtime = get_task(card.task), get_variant(variant).runtime
    family = get_family(task.family)
    utts, artifact = session.eval_set(card), session.artifact(card, variant)
    _describe(session, card, variant, runtime, artifact, case)
    ref_rec, ref_out = session.reference(card, device)
    case["settings"]["parameters"] = getattr(ref_rec, "parameters", None)  # the PyTorch model's

    rec, load = track_load(artifact, card, variant, device, session.threads, utts[0].input)
    quality = track_quality(rec, variant, card, task, family, utts, ref_out)
    quality.record(case)
    load.record(case)

    subset = stratified_subset(utts, int(card.timing.get("subset", 3)))
    audio_of = dict(zip((u.id for u in utts), quality.item_audio_s))
    speed = track_speed(ref_rec, rec, variant, subset, sum(audio_of[u.id] for u in subset),
                        rounds_rule(card.timing, session.fast))
    speed.record(case)

    memory = track_memory(artifact, card, variant, device, session.threads, [u.input for u in subset],
                          children=1 if session.fast else MEMORY_CHILDREN)
    memory.record(case)
    if runtime == "onnx" and memory.torch_imported:
        raise RuntimeError("the ONNX variant's memory child imported torch")

    # reported beside the gated figures: each records its own failure and the case goes on
    if runtime == "onnx" and device == "cpu":
        _reported("roofline", case, lambda: track_roofline(rec, subset, session.peaks()))
    if card.data.get("real_speech") and not family.audio_is_output:
        _reported("real_speech", case, lambda: track_real_speech(
            rec, variant, task, *session.real_speech(card, device)))
    if isinstance(getattr(rec, "log", None), StreamLog):
        _reported("streaming", case, lambda: track_streaming(rec, subset))
    if session.server_streams and device == "cpu" and not family.audio_is_output:
        _reported("server", case, lambda: _server(session, card, variant, device, artifact, subset))

    out = quality.decoded
    for u, o, secs, ro, audio in zip(utts, out.outputs, out.seconds, ref_out.outputs, quality.item_audio_s):
        row = {"task": card.task, "card": card.name, "variant": variant, "device": device,
               "id": u.id, "duration": round(audio, 3), "seconds": secs, "reference": u.text}
        row.update(family.utterance_row(u, o, ro))
        session.utterances.append(row)


def _reported(name: str, case: dict, track) -> None:
    """Record a reported (never gated) figure; if it fails, say why in settings[name] instead:
    the case's gated figures stand."""
    try:
        track().record(case)
    except Exception as e:  # noqa: BLE001 - reported, the case goes on
        case["settings"][name] = {"measured": False, "why": f"{type(e).__name__}: {e}"}


def _server(session: BenchSession, card: Card, variant: str, device: str, artifact: Path, subset: list):
    try:  # PyTorch's streams, the reference's included, set torch's process-wide threads to 1
        reference = session.server_reference(card, device, subset)
        return track_server(lambda: load_recognizer(artifact, card.decode, variant, device, 1), variant,
                            session.server_streams, subset, reference)
    finally:
        _restore_torch_threads(session.threads)


def _describe(session: BenchSession, card: Card, variant: str, runtime: str, artifact: Path,
              case: dict) -> None:
    """What the case runs: the artifact, exporter, variant settings, identity, any injection."""
    info, record = artifact_info(artifact), variant_record(artifact, variant)
    if runtime == "onnx":
        from bench.runtime.onnx_asr import session_settings

        case["settings"]["ort_session"] = session_settings(session.threads)
    case["settings"].update({"artifact": artifact.name, "opset": info["export"]["opset"],
                             "exporter": info["export"]["exporter"],
                             "variant": record.get("settings")})
    derive_error = record.get("error")
    if derive_error:
        raise RuntimeError(f"variant {variant} of {artifact.name} could not be derived: {derive_error}")
    case["identity"] = session.identity(card, variant)
    injected = injected_fractions().get(variant)
    if injected:
        case["settings"]["injected_slowdown"] = injected

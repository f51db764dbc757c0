"""ASR and ST with ONNX Runtime: encoder graph, then joint CTC/attention beam search in numpy.

ST decodes the same way; its encoder graph usually has no CTC output, and then decoding is
attention only (ctc_weight 0), as ESPnet's ST inference does without st_ctc. A CTC-only model
has no decoder graph, and decoding is CTC alone (ctc_weight 1), as ESPnet's with no decoder.

This module never imports torch: the process that measures an ONNX variant's memory
must hold only what a deployment would.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.runtime.beam_search import (BeamSearchConfig, beam_search, log_softmax_inplace,
                                       token_major)
from bench.runtime.finite import require_finite
from bench.runtime.recognition import Recognition
from bench.runtime.tokens import TokenConverter


class ModelFileError(RuntimeError):
    """An ONNX file that is missing or cannot be loaded; the message names it."""


# ORT's intra-op workers spin after each run by default, waiting for the next one. Between the
# decoder steps the search runs in Python on the same cores, and the spinning worker slowed it:
# on 2 cores, asr-conformer-tiny onnx-int8 decoded its timed subset in 0.047 s without spinning
# against 0.084-0.103 s with it, the paper card 0.65-0.68 against 0.70-0.73 s.
SESSION_CONFIG = {"session.intra_op.allow_spinning": "0"}


# Memory as a deployment holds it: ORT's CPU arena keeps every block it ever took and grows
# with each new input length, and ORT_ENABLE_ALL's NCHWc layout adds reordered copies of the
# subsampling convolution's activations (30 MB on a 15 s input at 256 channels). Without the
# arena and at ORT_ENABLE_EXTENDED (every fusion, no layout change) the paper card's int8
# peak fell by a sixth at the same decode time on the AVX-512 class (docs/figures.md).
ARENA = False
OPTIMIZATION = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED


def session_settings(threads: int) -> dict:
    """What a case records about its ORT sessions (with the providers and the versions)."""
    return {"intra_op_num_threads": threads, "inter_op_num_threads": 1,
            "execution_mode": "ORT_SEQUENTIAL", "graph_optimization_level": OPTIMIZATION.name,
            "enable_cpu_mem_arena": ARENA, "config": dict(SESSION_CONFIG)}


def session_options(threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = OPTIMIZATION
    so.enable_cpu_mem_arena = ARENA
    so.log_severity_level = 3
    for key, value in SESSION_CONFIG.items():
        so.add_session_config_entry(key, value)
    return so


class ProviderFallbackError(RuntimeError):
    """ORT did not take the execution provider asked for and would run the graph on another."""


def load_session(path: Path, threads: int, providers: list[str]) -> ort.InferenceSession:
    if not path.exists():
        raise ModelFileError(f"{path}: ONNX file not found")
    if providers[0] == "CUDAExecutionProvider":
        _preload_cuda_libraries()
    try:
        session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
    except Exception as e:  # ORT raises its own types for a corrupt or truncated file
        raise ModelFileError(f"{path}: cannot load ONNX model ({type(e).__name__}: {e})") from e
    check_provider(session, path, providers[0])
    return session


@functools.cache
def _preload_cuda_libraries() -> None:
    """PyPI's onnxruntime-gpu is built for CUDA 12 and cuDNN 9, which its extras [cuda,cudnn]
    install as pip packages (./run's BENCH_GPU=1 does), while this venv's torch brings CUDA 13:
    preload_dlls loads the CUDA 12 libraries from those packages before the first CUDA session."""
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()


def check_provider(session, path: Path, wanted: str) -> None:
    """ORT lists CUDAExecutionProvider whenever onnxruntime-gpu is installed, but when CUDA's
    or cuDNN's libraries of its major version are missing it only logs an error and runs
    the graph on the CPU: a 'cuda' case would then time the CPU."""
    if session.get_providers()[0] != wanted:
        raise ProviderFallbackError(
            f"{path}: ONNX Runtime {ort.__version__} could not start {wanted} and fell back to "
            f"{session.get_providers()}; for CUDA, the CUDA and cuDNN libraries this "
            "onnxruntime-gpu was built against must be found (BENCH_GPU=1 ./run installs them)")


class DecoderGraphs:
    """decoder.onnx, or with a key/value-cached step (export/kv_decoder.py) decoder_kv's graph and
    cross_kv.onnx: the beam search's step function over one encoder output."""

    def __init__(self, graphs_dir: Path, export_meta: dict, threads: int, providers: list[str]):
        self.decoder = load_session(Path(graphs_dir) / "decoder.onnx", threads, providers)
        self.cached = "cross_k_0" in {i.name for i in self.decoder.get_inputs()}
        self.cross_kv = load_session(Path(graphs_dir) / "cross_kv.onnx", threads, providers) \
            if self.cached else None
        self.meta = export_meta
        # On CUDA the cross-attention keys and values stay on the GPU for every step of an
        # utterance (IO binding) instead of being copied there at each step.
        self.bind_device = "cuda" if providers[0] == "CUDAExecutionProvider" else None

    @property
    def sessions(self) -> dict:
        graphs = {"decoder.onnx": self.decoder}
        return {**graphs, "cross_kv.onnx": self.cross_kv} if self.cross_kv else graphs

    def step_for(self, enc: np.ndarray):
        """The step function for encoder output ``enc`` ((1, T, D) or (T, D))."""
        return self._cached_step(enc.reshape((1,) + enc.shape[-2:])) if self.cached else self._step

    def _step(self, ys, cache, memory):
        if cache is None:
            n_layers, d = self.meta["n_layers"], self.meta["d_model"]
            cache = np.zeros((n_layers, ys.shape[0], 0, d), dtype=np.float32)
        logp, new_cache = self.decoder.run(None, {"ys": ys.astype(np.int64), "cache": cache,
                                                  "memory": memory})
        return logp, new_cache

    def _cached_step(self, enc):
        """A step over keys and values computed once for this encoder output; memory goes unused.
        Its cache is a list of per-layer arrays (self_k_0, self_v_0, ...) with beams on axis 0."""
        kv = self.meta["kv_decoder"]
        names = [i.name for i in self.decoder.get_inputs() if i.name.startswith("self_")]
        cross_names = [o.name for o in self.cross_kv.get_outputs()]
        if self.bind_device is None:
            cross = dict(zip(cross_names, self.cross_kv.run(None, {"enc": enc})))
            run = self.decoder.run
        else:
            cross = dict(zip(cross_names, _run_bound(self.cross_kv, {"enc": enc}, {}, self.bind_device)))

            def run(_, feeds):
                host = {k: v for k, v in feeds.items() if k not in cross}
                return _run_bound(self.decoder, host, cross, "cpu", copy=True)

        def step(ys, cache, memory):
            if cache is None:
                cache = [np.zeros((ys.shape[0], kv["heads"], 0, kv["d_k"]), np.float32)] * len(names)
            logp, *new_cache = run(None, {"ys": ys.astype(np.int64), **cross, **dict(zip(names, cache))})
            return logp, new_cache
        step.reads_memory = False  # the search then makes no (beams, T, D) copies of enc
        return step


class OnnxSpeech2Text:
    def __init__(self, graphs_dir: Path, exp_dir: Path, export_meta: dict, decode: dict,
                 threads: int = 1, providers: list[str] | None = None):
        providers = providers or ["CPUExecutionProvider"]
        self.encoder_path = Path(graphs_dir) / "encoder.onnx"
        self.encoder = load_session(self.encoder_path, threads, providers)
        self.encoder_outputs = [o.name for o in self.encoder.get_outputs()]
        self.decoding = DecoderGraphs(graphs_dir, export_meta, threads, providers) \
            if export_meta.get("has_decoder", True) else None
        self.meta = export_meta
        self.cfg = BeamSearchConfig(
            beam_size=decode["beam_size"], ctc_weight=decode["ctc_weight"],
            penalty=decode.get("penalty", 0.0), maxlenratio=decode.get("maxlenratio", 0.0),
            minlenratio=decode.get("minlenratio", 0.0))
        if not export_meta.get("has_ctc", True) and self.cfg.ctc_weight != 0:
            raise ValueError(f"decode.ctc_weight is {self.cfg.ctc_weight}, but this model has no CTC "
                             f"over its output tokens (an ST model without st_ctc): set it to 0")
        if self.decoding is None and self.cfg.ctc_weight != 1:
            raise ValueError(f"decode.ctc_weight is {self.cfg.ctc_weight}, but this model is CTC-only "
                             f"(no decoder): set it to 1.0, as the recipe's decode_ctc config does")
        self.converter = TokenConverter(exp_dir)
        self.min_samples = export_meta.get("subsampling_min_samples", 0)

    @property
    def sessions(self) -> dict:
        """{graph file: session}, as bench.optimize.calibration records them."""
        graphs = {"encoder.onnx": self.encoder}
        return {**graphs, **self.decoding.sessions} if self.decoding else graphs

    def __call__(self, wave: np.ndarray) -> Recognition:
        if wave.shape[0] < self.min_samples:
            raise ValueError(f"audio of {wave.shape[0]} samples is too short for the encoder's "
                             f"subsampling (needs at least {self.min_samples})")
        outs = self.encoder.run(None, {"speech": wave[None].astype(np.float32)})
        outs = dict(zip(self.encoder_outputs, outs))
        enc = outs["enc"]
        require_finite(enc, "encoder output", self.encoder_path)
        if "ctc_logits" in outs:  # popped: ORT's frame-major array is freed once laid out anew
            ctc_logp = token_major(log_softmax_inplace(outs.pop("ctc_logits")[0]))
        else:  # without CTC the search never reads these scores; it takes only the vocabulary size
            ctc_logp = np.zeros((enc.shape[1], self.meta["vocab_size"]), dtype=np.float32)
        step = self.decoding.step_for(enc) if self.decoding else None
        hyps = beam_search(enc[0], ctc_logp, step, sos=self.meta["sos"],
                           eos=self.meta["eos"], cfg=self.cfg)
        # like ESPnet's Speech2Text: no hypothesis -> empty output; blank (id 0) dropped
        best = [int(t) for t in hyps[0].tokens if t != 0] if hyps else []
        return Recognition(tokens=best, text=self.converter.text(best))


def _run_bound(session, host_inputs: dict, device_inputs: dict, output_device: str,
               copy: bool = False) -> list:
    """Run with IO binding: numpy inputs copied in, OrtValues used where they are, outputs
    left on ``output_device`` (OrtValues) or, with ``copy``, returned as numpy arrays."""
    binding = session.io_binding()
    for name, value in host_inputs.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(value))
    for name, value in device_inputs.items():
        binding.bind_ortvalue_input(name, value)
    for out in session.get_outputs():
        binding.bind_output(out.name, output_device)
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu() if copy else binding.get_outputs()


def load_export_meta(artifact: Path) -> dict:
    return json.loads((Path(artifact) / "onnx" / "export.json").read_text())

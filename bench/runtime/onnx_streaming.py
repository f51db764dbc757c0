"""Streaming (contextual block) ASR, SLU and ST with ONNX Runtime, fed chunk by chunk as
ESPnet's Speech2TextStreaming is: the streaming frontend and encoder graphs with their state
(bench.runtime.streaming_encoder), then the block-wise beam search (bench.runtime.
beam_search_online) over the decoder step graphs.

Never imports torch (see onnx_asr).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.runtime.beam_search import BeamSearchConfig
from bench.runtime.beam_search_online import OnlineBeamSearch
from bench.runtime.onnx_asr import DecoderGraphs, Recognition
from bench.runtime.streaming import (DEFAULT_CHUNK, SAMPLE_RATE, StreamLog, stream_chunks,
                                     streaming_options)
from bench.runtime.streaming_encoder import StreamingEncoder
from bench.runtime.tokens import TokenConverter


class OnnxStreamingSpeech2Text:
    def __init__(self, graphs_dir: Path, exp_dir: Path, export_meta: dict, decode: dict,
                 threads: int = 1, providers: list[str] | None = None):
        providers = providers or ["CPUExecutionProvider"]
        self.meta = export_meta
        self.encoder = StreamingEncoder(Path(graphs_dir), export_meta, threads=threads,
                                        providers=providers)
        # the decoder graphs and their step function, as offline; the search asks for one a block
        self._decoding = DecoderGraphs(graphs_dir, export_meta, threads, providers)
        cfg = BeamSearchConfig(
            beam_size=decode["beam_size"], ctc_weight=decode["ctc_weight"],
            penalty=decode.get("penalty", 0.0), maxlenratio=decode.get("maxlenratio", 0.0),
            minlenratio=decode.get("minlenratio", 0.0))
        if not export_meta.get("has_ctc", True) and cfg.ctc_weight != 0:
            raise ValueError(f"decode.ctc_weight is {cfg.ctc_weight}, but this model has no CTC over "
                             f"its output tokens: set it to 0")
        options = streaming_options(decode)
        for key in ("decoder_text_length_limit", "encoded_feat_length_limit"):
            if options[key]:
                raise ValueError(f"decode.{key} is {options[key]}: only 0 (no limit, as the recipes' "
                                 "streaming decode configs set it) is supported")
        self.search = OnlineBeamSearch(
            self._decoding.step_for, sos=export_meta["sos"], eos=export_meta["eos"],
            vocab_size=export_meta["vocab_size"], cfg=cfg,
            disable_repetition_detection=options["disable_repetition_detection"])
        self.chunk = int(decode.get("sim_chunk_length", DEFAULT_CHUNK))
        self.converter = TokenConverter(exp_dir)
        self.log = StreamLog()

    @property
    def sessions(self) -> dict:
        return {**self.encoder.sessions, **self._decoding.sessions}

    def __call__(self, wave: np.ndarray) -> Recognition:
        wave = wave.astype(np.float32)
        self.log = StreamLog()
        hyps = []
        for start, end, final in stream_chunks(wave.shape[0], self.chunk):
            t0 = time.perf_counter()
            enc, ctc_logp = self.encoder.feed(wave[start:end], final)
            blocks = 0
            if self.encoder.encoder_ran:  # ESPnet searches only when the frontend gave features
                hyps = self.search.feed(enc, ctc_logp, final)
                blocks = len(self.search.block_laps)
            else:
                hyps = []
            partial = len(hyps[0].tokens) if hyps else (0 if final else len(self.search.partial))
            self.log.add(end / SAMPLE_RATE, t0, blocks, partial, final)
        # like ESPnet's: no hypothesis -> empty output; blank (id 0) dropped
        best = [int(t) for t in hyps[0].tokens if t != 0] if hyps else []
        return Recognition(tokens=best, text=self.converter.text(best))

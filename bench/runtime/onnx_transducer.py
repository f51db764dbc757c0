"""Transducer ASR with ONNX Runtime: encoder graph, then ESPnet's transducer search over the
prediction and joint step graphs (export/transducer.py). Never imports torch."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.runtime.finite import require_finite
from bench.runtime.onnx_asr import load_session
from bench.runtime.recognition import Recognition
from bench.runtime.tokens import TokenConverter
from bench.runtime.transducer_search import transducer_search


class OnnxTransducer:
    def __init__(self, graphs_dir: Path, exp_dir: Path, export_meta: dict, decode: dict,
                 threads: int = 1, providers: list[str] | None = None):
        providers = providers or ["CPUExecutionProvider"]
        graphs_dir = Path(graphs_dir)
        self.encoder_path = graphs_dir / "encoder.onnx"
        self.encoder = load_session(self.encoder_path, threads, providers)
        self.predictor = load_session(graphs_dir / "predictor.onnx", threads, providers)
        self.joint = load_session(graphs_dir / "joint.onnx", threads, providers)
        self.meta = export_meta
        self.info = export_meta["transducer"]
        conf = decode.get("transducer_conf") or {}
        self.beam_size = decode["beam_size"]
        self.search_type = conf.get("search_type", "default")
        self.score_norm = conf.get("score_norm", True)
        if self.beam_size > 1 and self.search_type != "default":
            raise ValueError(f"decode.transducer_conf.search_type is {self.search_type!r}: the ONNX "
                             "runtime reproduces ESPnet's 'default' search (and greedy at beam 1)")
        self.converter = TokenConverter(exp_dir)
        self.min_samples = export_meta.get("subsampling_min_samples", 0)

    @property
    def sessions(self) -> dict:
        return {"encoder.onnx": self.encoder, "predictor.onnx": self.predictor, "joint.onnx": self.joint}

    def _predict(self, yseq, state):
        h, c = state
        dec_out, h, c = self.predictor.run(None, {"label": np.array([[yseq[-1]]], dtype=np.int64),
                                                  "h": h, "c": c})
        return dec_out, (h, c)

    def _joint(self, enc_t, dec_out):
        return self.joint.run(None, {"enc_t": enc_t[None], "dec_out": dec_out})[0][0]

    def __call__(self, wave: np.ndarray) -> Recognition:
        if wave.shape[0] < self.min_samples:
            raise ValueError(f"audio of {wave.shape[0]} samples is too short for the encoder's "
                             f"subsampling (needs at least {self.min_samples})")
        enc = self.encoder.run(None, {"speech": wave[None].astype(np.float32)})[0]
        require_finite(enc, "encoder output", self.encoder_path)
        zeros = np.zeros((self.info["layers"], 1, self.info["hidden"]), dtype=np.float32)
        hyps = transducer_search(enc[0], self._predict, self._joint, (zeros, zeros),
                                 beam_size=self.beam_size, vocab_size=self.info["vocab_size"],
                                 blank=self.info["blank"], search_type=self.search_type,
                                 score_norm=self.score_norm)
        # like ESPnet's Speech2Text: the labels after the leading blank, blanks dropped
        best = [int(t) for t in hyps[0].yseq[1:] if t != 0] if hyps else []
        return Recognition(tokens=best, text=self.converter.text(best))

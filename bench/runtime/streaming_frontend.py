"""The audio buffering of ESPnet's streaming decoders, in numpy, around a features function.

ASR mode mirrors espnet2/bin/asr_inference_streaming.py Speech2TextStreaming.apply_frontend
(202511, lines 205-291); ST mode mirrors espnet2/bin/st_inference_streaming.py's (lines 309-385).
Each call's segment goes through `features` whole (STFT + log-mel + normalize, i.e. frontend.onnx),
then the frames are trimmed as ESPnet trims them. ESPnet's quirks are kept, not fixed:
- ASR: a buffer of <= win_length samples (non-final) gives no features at all (S:212-221), and the
  next call trims its start as a continuation: the first ceil(ceil(win/hop)/2) frames are lost;
  a final buffer shorter than win_length is zero-padded to win_length (S:214-216).
- ST: the buffer keeps win-hop samples only, but the trims assume ASR's overlap: frames are lost
  at every chunk boundary.
Where torch raises (a negative narrow, a reflect pad longer than the input), this raises ValueError.

No torch import: this runs in the deployment-like process.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def trim_frames(win_length: int, hop_length: int) -> int:
    """ceil(ceil(win/hop)/2): the frames cut at each side of a continued segment (S:265)."""
    return math.ceil(math.ceil(win_length / hop_length) / 2)


class WaveBuffer:
    """feed(chunk, is_final) -> feats (Fr, F) float32 or None (ASR only: nothing to process yet)."""

    def __init__(self, features: Callable[[np.ndarray], np.ndarray], mode: str, n_fft: int,
                 win_length: int, hop_length: int):
        if mode not in ("asr", "st"):
            raise ValueError(f"frontend mode {mode!r}: 'asr' or 'st'")
        self.features, self.mode = features, mode
        self.n_fft, self.win, self.hop = n_fft, win_length, hop_length
        self.trim = trim_frames(win_length, hop_length)
        self.buf: np.ndarray | None = None

    def reset(self) -> None:
        self.buf = None

    def _segment(self, x: np.ndarray, is_final: bool) -> np.ndarray:
        if is_final:  # S:223-225, ST:316-318
            self.buf = None
            return x
        if self.mode == "asr":  # S:227-239
            n_frames, res = divmod(x.size, self.hop)
            keep = (2 * self.trim - 1) * self.hop + res
            seg = x[:n_frames * self.hop]
        else:  # ST:320-333
            base = self.win - self.hop
            n_frames, res = divmod(x.size - base, self.hop)
            keep = base + res
            seg = x[:max(base + n_frames * self.hop, 0)]
        if keep > x.size:  # torch.narrow with a negative start: always out of range here
            raise ValueError(f"streaming frontend: {x.size} buffered samples, fewer than the "
                             f"{keep} ESPnet keeps for the next call (its narrow fails too)")
        self.buf = x[x.size - keep:].copy()
        return seg

    def feed(self, chunk: np.ndarray, is_final: bool) -> np.ndarray | None:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        prev = self.buf is not None  # ESPnet's `prev_states is not None`
        x = np.concatenate([self.buf, chunk]) if prev else chunk
        if self.mode == "asr" and x.size <= self.win:  # S:212-221
            if not is_final:
                self.buf = x.copy()
                return None
            x = np.concatenate([x, np.zeros(self.win - x.size, np.float32)])
        seg = self._segment(x, is_final)
        if seg.size <= self.n_fft // 2:  # torch.stft's reflect pad needs more samples than n_fft/2
            raise ValueError(f"streaming frontend: a {seg.size}-sample segment is too short for the "
                             f"STFT's reflect padding (n_fft {self.n_fft})")
        f = self.features(seg)
        t = self.trim
        n = f.shape[0]
        # S:258-283 (ST:352-377 identical)
        if is_final:
            lo, hi = (t, n) if prev else (0, n)
        else:
            lo, hi = (t, n - t) if prev else (0, n - t)
        if hi < lo:
            raise ValueError(f"streaming frontend: {n} frames cannot lose {t} at each trimmed side")
        return f[lo:hi]

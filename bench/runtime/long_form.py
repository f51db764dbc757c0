"""Long recordings in windows, as a deployment decodes a 10-minute file.

Self-attention keeps a frames x frames score matrix per head, so decoding a whole recording at
once needs memory that grows with the square of its length (measured: README, Robustness).
With ``decode.segment_seconds`` set, a longer recording is cut into near-equal windows of at
most that length, each cut at the quietest 10 ms within a second of its even split point
(between words, not inside one), and the windows' texts are joined. Every variant, PyTorch
included, gets the same cuts, so they are still compared on the same input.
"""
from __future__ import annotations

import math

import numpy as np

from bench.runtime.recognition import Recognition

SEARCH_S = 2.0  # a cut may move this far (in total) from its even split point
FRAME_S = 0.01


def cut_points(wave: np.ndarray, sample_rate: int, segment_seconds: float) -> list[int]:
    """Sample indices [0, ..., len(wave)]: consecutive pairs bound windows <= segment_seconds."""
    if segment_seconds < 2 * SEARCH_S:
        raise ValueError(f"decode.segment_seconds is {segment_seconds}: at least {2 * SEARCH_S} s")
    n = len(wave)
    if n <= segment_seconds * sample_rate:
        return [0, n]
    k = math.ceil(n / ((segment_seconds - SEARCH_S) * sample_rate))
    hop, half = int(FRAME_S * sample_rate), int(SEARCH_S / 2 * sample_rate)
    cuts = [0]
    for i in range(1, k):
        lo = i * n // k - half
        frames = wave[lo:lo + 2 * half].reshape(-1, hop)  # 2 * half is a whole number of hops
        cuts.append(lo + int(np.argmin((frames.astype(np.float64) ** 2).mean(1))) * hop + hop // 2)
    return cuts + [n]


class LongForm:
    """Wraps any recognizer (wave in, Recognition out) to decode long waves window by window."""

    def __init__(self, recognizer, sample_rate: int, segment_seconds: float):
        self.recognizer, self.sample_rate = recognizer, sample_rate
        self.segment_seconds = float(segment_seconds)

    @property
    def parameters(self) -> int | None:
        """The wrapped PyTorch model's parameter count (None for ONNX recognizers)."""
        return getattr(self.recognizer, "parameters", None)

    def __call__(self, wave: np.ndarray) -> Recognition:
        cuts = cut_points(wave, self.sample_rate, self.segment_seconds)
        parts = [self.recognizer(wave[a:b]) for a, b in zip(cuts, cuts[1:])]
        if len(parts) == 1:
            return parts[0]
        return Recognition(tokens=[t for p in parts for t in p.tokens],
                           text=" ".join(p.text for p in parts if p.text))

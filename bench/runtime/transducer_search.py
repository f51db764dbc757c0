"""ESPnet's transducer searches (espnet2.asr.transducer.beam_search_transducer.BeamSearchTransducer)
in plain Python and numpy, for one utterance: `greedy` (beam 1) and `default` (the modified
Graves search ESPnet's transducer recipes decode with), no LM, scores as Python floats like
ESPnet's. It must not import torch.

``predict(yseq, state) -> (dec_out, new_state)`` runs the prediction network on the last label
of ``yseq`` from ``state``; ``joint(enc_t, dec_out) -> logp`` gives the log-probabilities of the
next label (blank = id 0). Hypotheses carry the state of their prefix, as ESPnet's; prediction
outputs are cached by the whole label sequence, as ESPnet's ``score`` does.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from bench.runtime.beam_search import _topk_1d
from bench.runtime.native import topk_rows

__all__ = ["TransducerHypothesis", "transducer_search"]


@dataclass(eq=False)  # states are arrays: no field-wise equality
class TransducerHypothesis:
    score: float
    yseq: list[int]  # starts with blank, as ESPnet's
    state: Any


COMPILED_TOPK_MIN = 256  # below, numpy's full sort beats a ctypes call (2 against 5 us at 30)


def _topk_desc(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first (torch.topk's order; ties by index).

    A full stable sort over a small vocabulary or with a NaN (NaNs last); over a large one the
    beam search's top-k, compiled (bench/runtime/topk_rows.c, 9 against 115 us at 5000 tokens)
    or its numpy version when the compiled loop is unavailable."""
    if x.size < COMPILED_TOPK_MIN or k >= x.size or x.dtype != np.float32 or np.isnan(x).any():
        return np.argsort(-x, kind="stable")[:k]
    compiled = topk_rows(np.ascontiguousarray(x)[None], k)
    return compiled[0] if compiled is not None else _topk_1d(x, k)


def transducer_search(enc: np.ndarray, predict: Callable, joint: Callable, init_state, *,
                      beam_size: int, vocab_size: int, blank: int = 0,
                      search_type: str = "default", score_norm: bool = True) -> list[TransducerHypothesis]:
    """n-best (here 1-best, ESPnet's nbest 1) hypotheses for encoder output ``enc`` (T, D)."""
    cache: dict[tuple, tuple] = {}

    def score(hyp: TransducerHypothesis):
        key = tuple(hyp.yseq)
        if key not in cache:
            cache[key] = predict(hyp.yseq, hyp.state)
        return cache[key]

    if beam_size <= 1:
        return [_greedy(enc, score, joint, init_state, blank)]
    if search_type != "default":
        raise ValueError(f"transducer search_type {search_type!r} is not implemented (the ONNX "
                         "runtime reproduces 'default' and, at beam 1, greedy)")
    beam = min(beam_size, vocab_size)
    beam_k = min(beam, vocab_size - 1)
    kept = [TransducerHypothesis(0.0, [blank], init_state)]
    order = itertools.count()
    for enc_t in enc:
        # ESPnet keeps a list and takes max() of it each step: the first of equal scores in list
        # order. A heap keyed by (-score, insertion order) pops the same hypothesis, without a
        # scan of every hypothesis expanded so far in this frame.
        hyps = [(-h.score, next(order), h) for h in kept]
        heapq.heapify(hyps)
        kept = []
        while True:
            best = heapq.heappop(hyps)[2]
            dec_out, state = score(best)
            logp = joint(enc_t, dec_out)
            kept.append(TransducerHypothesis(best.score + float(logp[0]), best.yseq[:], best.state))
            rest = logp[1:]
            for k in _topk_desc(rest, beam_k):
                s = best.score + float(rest[k])
                heapq.heappush(hyps, (-s, next(order),
                                      TransducerHypothesis(s, best.yseq[:] + [int(k + 1)], state)))
            hyps_max = -hyps[0][0]
            winners = sorted((h for h in kept if h.score > hyps_max), key=lambda h: h.score)
            if len(winners) >= beam:
                kept = winners
                break
    if score_norm:
        kept.sort(key=lambda h: h.score / len(h.yseq), reverse=True)
    else:
        kept.sort(key=lambda h: h.score, reverse=True)
    return kept[:1]


def _greedy(enc, score, joint, init_state, blank) -> TransducerHypothesis:
    hyp = TransducerHypothesis(0.0, [blank], init_state)
    dec_out, state = score(hyp)
    for enc_t in enc:
        logp = joint(enc_t, dec_out)
        pred = int(np.argmax(logp))  # torch.max: the first of equal maxima
        if pred != blank:
            hyp.yseq.append(pred)
            hyp.score += float(logp[pred])
            hyp.state = state
            dec_out, state = score(hyp)
    return hyp

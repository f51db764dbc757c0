"""Block-wise streaming joint CTC/attention beam search in pure numpy.

Reproduces ``espnet.nets.batch_beam_search_online.BatchBeamSearchOnline`` (ESPnet 202511,
block-wise branch, ``time_sync=False``) as ``espnet2.bin.asr_inference_streaming.
Speech2TextStreaming`` builds it: scorers decoder (weight ``1 - ctc_weight``),
``CTCPrefixScorer`` (``ctc_weight``) and ``LengthBonus`` (``penalty``), no LM; a scorer of
weight 0 is dropped; pre-beam as offline (``bench.runtime.beam_search``, whose step, CTC
prefix scorer and top-k this module reuses). It must not import torch.

Line references: O = espnet/nets/batch_beam_search_online.py, BB = batch_beam_search.py,
CP = ctc_prefix_score.py, SC = scorers/ctc.py, S = espnet2/bin/asr_inference_streaming.py.

Mirrored on purpose:

* Decoder-side block geometry is BatchBeamSearchOnline's own defaults 40/16/16 (O:36-38):
  Speech2TextStreaming never passes the encoder's values (S:112-135 only asserts the keys).
* Per call (O:174-190): encoder frames are buffered; ``maxlen``/``minlen`` come from the
  buffer length at this call; a negative maxlenratio gives ``maxlen = 1`` (``max(1,
  int(r*T))``), unlike offline.
* Blocks (O:305-373): block k decodes on ``h = buffer[:24 + 16k]`` while that is strictly
  shorter than the buffer; a final call then runs one final block on the whole buffer.
  The initial hypothesis is made at the first block (O:337-338); the last block's result is
  returned, else the previous output (O:365-373); a final block's result is returned as is
  and the object is reset (S:333-334).
* CTC streaming (O:520-535, SC:127-157, CP:226-270): the CTC posteriors grow with h (old
  frames keep their values); the running hypotheses' forward variables are extended (r_n
  logzero, r_b accumulates blank); eos scores ``r_sum`` at h's last frame. Decoder caches
  travel with the hypotheses across blocks (computed against shorter h, not recomputed).
* ``process_one_block`` (O:391-483): forced eos at ``process_idx == maxlen - 1`` also in a
  non-final block (post_process, BB:400-427, adds them to the ended list when
  ``i >= minlen``); repetition detection (a non-eos hypothesis' last token anywhere in its
  prefix, sos included, non-final blocks only, unless disabled) and "some hypothesis
  ended" in a non-final block stop the block; end detection only in the final block with
  maxlenratio 0 and before this step's hypotheses are added; in the final block the
  step's eos hypotheses are appended a second time without the minlen check (duplicate
  n-best entries, O:453-455); a non-final block returns ``assemble(local_ended + ended)``
  (duplicates again) and then rewinds one step (``running = prev``) when
  ``process_idx > 1`` and there is a previous set (O:465-483).
* ``incremental_decode``: only the best running hypothesis is kept after every block
  (O:351-361). ``assemble`` is a stable sort by score (or score/(len-1) with
  ``normalize_length``); nothing ended gives ``[]`` with no minlenratio retry (O:485-501).

Where ESPnet 202511 crashes or corrupts, this module does the sane thing instead:

* A prefix longer than h (a non-final block decoding past T_h frames): CP:173 raises
  IndexError; here that prefix's CTC score is logzero (as in the offline port).
* An empty running set (a non-final forced eos with ``process_idx <= 1`` or no previous
  set, so nothing is rewound): ESPnet's next search calls topk on nothing. Here a block
  with no running hypothesis decodes nothing: a final block returns the ended
  hypotheses, a non-final one returns ``assemble(ended)`` (then may rewind as ESPnet's
  code would).
* Forced eos in the final block: post_process runs twice on the same batch and
  ``resize_`` re-strides the tensor under earlier views (BB:414-415), so ESPnet's n-best
  rows after the first hold shifted token sequences and some end in two eos. Here each of
  those entries keeps its hypothesis' own tokens (same scores, same count and order; the
  1-best is the same as ESPnet's).
* A final block with 0 encoder frames in total (nothing ever fed): returns ``[]``.

Not supported: ``block_size == 0`` (the recompute branch), ``time_sync``,
``encoded_feat_length_limit`` / ``decoder_text_length_limit`` (both 0 as in the recipes),
``hold_n`` (read only by branches not used here).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from bench.runtime.beam_search import (
    BeamSearchConfig,
    DecoderStep,
    Hypothesis,
    beam_memory,
    _Beam,
    _CTCPrefixScorer,
    _end_detect,
    _Expander,
)

__all__ = ["OnlineBeamSearch"]


class OnlineBeamSearch:
    """Feed encoder frames (and their CTC log-probs) call by call; see the module doc."""

    def __init__(self, make_step: Callable[[np.ndarray], DecoderStep], *, sos: int, eos: int,
                 vocab_size: int, cfg: BeamSearchConfig,
                 disable_repetition_detection: bool = False, incremental_decode: bool = False,
                 block_size: int = 40, hop_size: int = 16, look_ahead: int = 16,
                 normalize_length: bool = False):
        if block_size <= 0:
            raise ValueError("block_size 0 (ESPnet's recompute branch) is not supported")
        self.make_step = make_step
        self.sos, self.eos, self.V, self.cfg = sos, eos, vocab_size, cfg
        self.disable_repetition_detection = disable_repetition_detection
        self.incremental_decode = incremental_decode
        self.block_size, self.hop_size, self.look_ahead = block_size, hop_size, look_ahead
        self.normalize_length = normalize_length
        self._expand = _Expander(vocab_size, eos, cfg)
        self.block_laps: list[float] = []
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget the utterance (BatchBeamSearchOnline.reset, O:90-99)."""
        self.block_laps = []
        self._reset_state()

    def _reset_state(self) -> None:
        self._enc: list[np.ndarray] = []  # encoder frames, by call
        self._logp: list[np.ndarray] = []  # their CTC log-probs
        self._T = 0
        self._enc_cat: np.ndarray | None = None
        self._logp_cat: np.ndarray | None = None
        self._running: _Beam | None = None
        self._prev: _Beam | None = None  # prev_hyps; None stands for ESPnet's []
        # ended hypotheses: (yseq with sos and eos, score float32, ESPnet's len(yseq))
        self._ended: list[tuple[np.ndarray, np.float32, int]] = []
        self._processed_block = 0
        self._process_idx = 0
        self._prev_output: list[tuple] | None = None
        self._ctc: _CTCPrefixScorer | None = None

    @property
    def partial(self) -> list[int]:
        """Tokens (no sos) of the best running hypothesis now, [] if none."""
        if self._running is None or len(self._running) == 0:
            return []
        return [int(t) for t in self._running.yseq[0, 1:]]

    # ------------------------------------------------------------------ input

    def _frames(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._enc_cat is None or self._enc_cat.shape[0] != self._T:
            # joined only when a block runs; the pieces collapse into the joined array
            self._enc_cat = np.ascontiguousarray(np.concatenate(self._enc, axis=0))
            self._enc = [self._enc_cat]
            if self._expand.use_ctc:
                self._logp_cat = np.ascontiguousarray(np.concatenate(self._logp, axis=0))
                self._logp = [self._logp_cat]
        logp = self._logp_cat[:n] if self._expand.use_ctc else None
        return self._enc_cat[:n], logp

    def feed(self, enc: np.ndarray, ctc_logp: np.ndarray | None,
             is_final: bool) -> list[Hypothesis]:
        """enc (T_new, D) new encoder frames (T_new may be 0); ctc_logp (T_new, V) their CTC
        log-softmax, or None when cfg.ctc_weight == 0. Returns what ESPnet's forward returns
        at this call, best first ([] for nothing); resets after a final call."""
        self.block_laps = []
        enc = np.array(enc, dtype=np.float32)  # a copy: kept across calls
        if enc.size:
            if enc.ndim != 2:
                raise ValueError(f"enc must be (T, D), got {enc.shape}")
            self._enc.append(enc)
            if self._expand.use_ctc:
                if ctc_logp is None:
                    raise ValueError("ctc_logp is required when cfg.ctc_weight != 0")
                logp = np.array(ctc_logp, dtype=np.float32)
                if logp.shape != (enc.shape[0], self.V):
                    raise ValueError(f"ctc_logp shape {logp.shape}, expected "
                                     f"{(enc.shape[0], self.V)}")
                self._logp.append(logp)
            self._T += enc.shape[0]
        T = self._T

        mlr, mnr = self.cfg.maxlenratio, self.cfg.minlenratio
        maxlen = T if mlr == 0 else max(1, int(mlr * T))  # O:181-185
        minlen = -1 * int(mnr) if mnr < 0 else int(mnr * T)  # O:187-190

        ret = None
        while True:  # O:305-373
            cur_end = self.block_size - self.look_ahead + self.hop_size * self._processed_block
            if cur_end < T:
                t_h, final = cur_end, False
            elif is_final:
                t_h, final = T, True
            else:
                break
            t0 = time.perf_counter()
            if t_h == 0:  # nothing was ever fed: ESPnet would fail
                ret = []
            else:
                if self._running is None:  # init_hyp (O:337-338)
                    self._running = _Beam(np.array([[self.sos]], dtype=np.int64),
                                          np.zeros(1, dtype=np.float32))
                ret = self._process_one_block(t_h, final, maxlen, minlen)
            self._processed_block += 1
            if self.incremental_decode and self._running is not None and len(self._running):
                self._running = self._running.take(np.array([0]))
            self.block_laps.append(time.perf_counter() - t0)
            if final:
                out = self._hypotheses(ret)
                self._reset_state()
                return out
        if ret is None:
            return self._hypotheses(self._prev_output or [])
        self._prev_output = ret
        return self._hypotheses(ret)

    # ------------------------------------------------------------------ search

    def _process_one_block(self, t_h: int, final: bool, maxlen: int, minlen: int) -> list:
        h, logp = self._frames(t_h)
        expand, eos = self._expand, self.eos
        # extend (O:520-535): CTC posteriors grow to h, running r are extended
        if expand.use_ctc:
            if self._ctc is None:
                self._ctc = _CTCPrefixScorer(logp, blank=0, eos=eos)
            else:
                self._ctc.extend(logp)
            run = self._running
            if run.r is not None and run.r.shape[0] < self._ctc.T:
                run.r = self._ctc.extend_r(run.r)
        step = self.make_step(h) if expand.use_dec else None
        memory = beam_memory(h)

        local_ended: list[tuple] = []
        while self._process_idx < maxlen:
            i = self._process_idx
            if len(self._running) == 0:  # ESPnet: topk on nothing (see module doc)
                if final:
                    return self._assemble(self._ended)
                break
            best = expand(self._running, step, memory, self._ctc)

            forced = i == maxlen - 1
            if forced:  # O:399-403: post_process appends eos to best in place
                best.yseq = np.concatenate(
                    (best.yseq, np.full((len(best), 1), eos, dtype=np.int64)), axis=1)
                self._running = self._post_process(i, minlen, best)
            is_eos = best.yseq[:, -1] == eos
            length = best.yseq.shape[1]
            local_ended = [(best.yseq[b].copy(), best.score[b], length)
                           for b in np.flatnonzero(is_eos)]
            # O:416-430: repetition of a non-eos hypothesis' last token in its prefix
            if not self.disable_repetition_detection and not final:
                y = best.yseq
                rep = (y[:, :-1] == y[:, -1:]).any(axis=1) & ~is_eos
                if rep.any():
                    break
            if (final and self.cfg.maxlenratio == 0.0
                    and _end_detect([(n, float(s)) for _, s, n in self._ended], i)):
                return self._assemble(self._ended)  # O:432-440
            if local_ended and not final:  # O:442-444
                break
            self._prev = self._running  # O:448-451
            if forced:
                # the second post_process on the same batch (final block only: a non-final
                # one broke above); ESPnet's copies get two eos, ours keep their tokens
                self._running = self._post_process(i, minlen, best, second=True)
            else:
                self._running = self._post_process(i, minlen, best)
            if final:  # O:453-455
                self._ended.extend(local_ended)
            if len(self._running) == 0:
                return self._assemble(self._ended)
            self._process_idx += 1

        if final:
            return self._assemble(self._ended)
        rets = self._assemble(local_ended + self._ended)  # O:465-476
        if self._process_idx > 1 and self._prev is not None and len(self._prev) > 0:
            self._running = self._prev  # rewind (O:478-481)
            self._process_idx -= 1
            self._prev = None
        return rets

    def _post_process(self, i: int, minlen: int, best: _Beam, second: bool = False) -> _Beam:
        """BatchBeamSearch.post_process (BB:365-427) after any forced eos was appended:
        ended hypotheses go to the ended list when i >= minlen; the rest run on."""
        is_eos = best.yseq[:, -1] == self.eos
        if i >= minlen:
            length = best.yseq.shape[1] + (1 if second else 0)
            for b in np.flatnonzero(is_eos):
                self._ended.append((best.yseq[b].copy(), best.score[b], length))
        if second:
            return best.take(np.zeros(0, dtype=np.int64))
        return best.take(np.flatnonzero(~is_eos))

    def _assemble(self, ended: list) -> list:
        """assemble_hyps (O:485-501): stable sort, best first."""
        if self.normalize_length:
            return sorted(ended, key=lambda e: e[1] / np.float32(e[2] - 1), reverse=True)
        return sorted(ended, key=lambda e: e[1], reverse=True)

    @staticmethod
    def _hypotheses(ended: list) -> list[Hypothesis]:
        return [Hypothesis(tokens=[int(t) for t in y[1:-1]], score=float(s))
                for y, s, _ in ended]

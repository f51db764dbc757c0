"""Joint CTC/attention beam search in pure numpy.

Reproduces ``espnet.nets.batch_beam_search.BatchBeamSearch`` as built by
``espnet2.bin.asr_inference.Speech2Text`` for one utterance (batch_size=1, no LM,
scorers: decoder with weight ``1 - ctc_weight``, ``CTCPrefixScorer`` (which uses
``CTCPrefixScoreTH`` with margin 0) with weight ``ctc_weight`` and ``LengthBonus``
with weight ``penalty``), so that an ONNX decoder gives the same n-best as ESPnet.

It must not import torch: it runs in processes that only load onnxruntime.

Arithmetic follows ESPnet's order of float32 operations so that scores agree to
the last bit or two (exp/log/sum kernels differ between torch and numpy by at most
about one ulp, far below any real score gap).

Behaviour of ESPnet that is reproduced on purpose (see the report in the test):

* ``int(1.5 * beam)`` pre-beam candidates per hypothesis are picked on the weighted
  *full* scores (decoder + length bonus) when that is smaller than the vocabulary;
  with beam 1 this is a single token. CTC is scored only on those, but the eos
  column always receives its CTC score (``r_sum`` at the last frame), so eos stays
  selectable even when the decoder did not pre-select it; every other token outside
  the pre-beam gets ``logzero - s_prev`` and is effectively masked.
* Blank's CTC score is ``logzero``.
* At the last step (``i == maxlen - 1``) eos is appended to every running
  hypothesis without adding any score for it.
* Hypotheses that end before ``minlen`` are dropped, not kept running.
* With no ended hypothesis the search is re-run with ``minlenratio - 0.1`` when
  ``minlenratio >= 0.1``, else the result is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bench.runtime.native import ctc_prefix, topk_rows

__all__ = ["BeamSearchConfig", "DecoderStep", "Hypothesis", "beam_search"]

LOGZERO = np.float32(-1e10)  # CTCPrefixScoreTH.logzero (exact in float32)
# e2e_asr_common.end_detect defaults: M=3, D_end=log(1 * exp(-10)) (a float64)
_END_M = 3
_END_D = float(np.log(1 * np.exp(-10)))


class DecoderStep(Protocol):
    def __call__(
        self, ys: np.ndarray, cache: np.ndarray | None, memory: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """ys: int64 (B, L) prefixes incl. sos; cache: float32 (n_layers, B, L-1, D)
        or a list of arrays with the beam on axis 0, or None at the first step;
        memory: float32 (B, T, D).
        Returns log-probs float32 (B, V) of the next token and the new cache, laid out
        as the one it was given."""
        ...


def _select(cache, beams: np.ndarray):
    """The cache of the hypotheses ``beams``: the beam is axis 1 of an array (the plain
    decoder's stacked layers) or axis 0 of each array in a list (one per layer)."""
    if isinstance(cache, (list, tuple)):
        return [c[beams] for c in cache]
    return np.asarray(cache)[:, beams]


@dataclass
class BeamSearchConfig:
    beam_size: int = 10
    ctc_weight: float = 0.3
    penalty: float = 0.0
    maxlenratio: float = 0.0
    minlenratio: float = 0.0
    pre_beam_ratio: float = 1.5


@dataclass
class Hypothesis:
    tokens: list[int]  # without sos/eos
    score: float


# ----------------------------------------------------------------------------
# top-k
# ----------------------------------------------------------------------------


def _topk_1d(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, descending; ties by lower index.

    torch.topk gives ties in an implementation-defined order; exact ties between
    real candidates do not happen in practice with float scores.
    """
    n = x.shape[0]
    if k >= n:
        return np.argsort(-x, kind="stable")[:k]
    # Candidates >= the k-th largest value (a superset when there are ties),
    # then a stable sort of that small set: index order breaks the ties.
    thr = np.partition(x, n - k)[n - k]
    cand = np.flatnonzero(x >= thr)
    order = np.argsort(-x[cand], kind="stable")[:k]
    return cand[order]


def _topk_among(ws: np.ndarray, ids: np.ndarray, eos: int, k: int) -> np.ndarray:
    """_topk_1d over the flattened (n, V) scores, looking only at the pre-beam ids and eos of
    each row: every other token's CTC score is logzero, so it cannot be among the best k. A
    partition of a few hundred values instead of n x V (1.5 ms a step with V = 5000). Falls
    back to the full search if a left-out value could compete after all."""
    n, V = ws.shape
    flat = ws.reshape(-1)
    rows = np.arange(n)[:, None] * V
    cand = np.unique(np.concatenate(((rows + ids).ravel(), rows[:, 0] + eos)))  # index order
    if cand.size > k:
        top = cand[_topk_1d(flat[cand], k)]
        left_out = np.ones(flat.size, dtype=bool)
        left_out[cand] = False
        if not left_out.any() or flat[left_out].max() < flat[top[-1]]:
            return top
    return _topk_1d(flat, k)


def _topk_rows_set(x: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column ids of the k largest values (order irrelevant: the
    pre-beam ids only choose which CTC columns are scored)."""
    compiled = topk_rows(x, k)
    if compiled is not None:
        return compiled
    part = np.argpartition(-x, k - 1, axis=1)[:, :k]
    # The set is ambiguous only if the k-th value ties with a value left out;
    # then use a stable sort for that row (lower index wins).
    kth = np.take_along_axis(x, part, 1).min(axis=1)
    n_ge = (x >= kth[:, None]).sum(axis=1)
    for row in np.flatnonzero(n_ge > k):
        part[row] = np.argsort(-x[row], kind="stable")[:k]
    return part


# ----------------------------------------------------------------------------
# CTC prefix scorer (CTCPrefixScoreTH, batch of one utterance, margin 0)
# ----------------------------------------------------------------------------


class _CTCPrefixScorer:
    """Vectorised over hypotheses x scored tokens; loops over frames like ESPnet.

    Per-hypothesis state, as selected by CTCPrefixScorer.select_state:
    r (T, 2, n_hyp) = forward log-probs (non-blank, blank ending) of the prefix,
    s (n_hyp,) = the prefix's own log_psi (subtracted to get incremental scores).
    The first call uses state None.
    """

    def __init__(self, logp: np.ndarray, blank: int, eos: int):
        self.x = np.asarray(logp, dtype=np.float32)  # (T, V); may be a view of a (V, T) array
        self.T, self.V = self.x.shape
        self.blank = blank
        self.eos = eos
        self.xb = np.ascontiguousarray(self.x[:, blank])  # (T,)
        self._xT = None  # (V, T), made when the compiled loop first asks for it

    @property
    def xT(self) -> np.ndarray:
        """Token-major, as the compiled loop reads it: no copy if the search was handed a
        transposed view (``token_major``), else one, made once an utterance."""
        if self._xT is None:
            self._xT = np.ascontiguousarray(self.x.T)
        return self._xT

    def initial_r(self) -> np.ndarray:
        r = np.full((self.T, 2, 1), LOGZERO, dtype=np.float32)
        # torch.cumsum on CPU accumulates float32 in double and rounds each output
        r[:, 1, 0] = np.cumsum(self.xb.astype(np.float64)).astype(np.float32)
        return r

    def extend(self, logp: np.ndarray) -> None:
        """More frames (streaming): ``logp`` (T', V) holds all frames seen so far. Like
        CTCPrefixScoreTH.extend_prob (CP:226-245) it only acts when T' > T, and the first T
        frames keep their old values."""
        if logp.shape[0] <= self.T:
            return
        new = np.asarray(logp[self.T:], dtype=np.float32)
        self.x = np.ascontiguousarray(np.concatenate((self.x, new), axis=0))
        self.T = self.x.shape[0]
        self.xb = np.ascontiguousarray(self.x[:, self.blank])
        self._xT = None

    def extend_r(self, r: np.ndarray) -> np.ndarray:
        """CTCPrefixScoreTH.extend_state (CP:247-270) for hypotheses r (T_old, 2, n) scored
        on fewer frames: r_n stays logzero past T_old (ESPnet's approximation) and r_b keeps
        accumulating blank with sequential float32 adds."""
        t_old, _, n = r.shape
        if t_old >= self.T:
            return r
        out = np.full((self.T, 2, n), LOGZERO, dtype=np.float32)
        out[:t_old] = r
        start = max(t_old, 1)
        seq = np.empty((self.T - start + 1, n), dtype=np.float32)
        seq[0] = out[start - 1, 1]
        seq[1:] = self.xb[start:, None]
        out[start:, 1] = np.add.accumulate(seq, axis=0, dtype=np.float32)[1:]
        return out

    def score(self, yseq: np.ndarray, r_prev: np.ndarray, s_prev: np.ndarray | None,
              ids: np.ndarray | None):
        """yseq (n, L); r_prev (T, 2, n); s_prev (n,) or None at the first step;
        ids (n, S) scored token ids, or None for all tokens.

        Returns (scores (n, V) = log_psi - s_prev, Z, log_psi, idmap, S), where
        Z (T, 3, n*S) holds [r_n, log_phi, r_b] per frame and scored column and
        idmap (n, V) maps a token to its column (-1: not scored; None: all).
        """
        T, V = self.T, self.V
        n, L = yseq.shape
        output_length = L - 1
        last = yseq[:, -1]
        if ids is None:
            ids = np.broadcast_to(np.arange(V), (n, V))
            idmap = None
        else:
            idmap = np.full((n, V), -1, dtype=np.int64)
            idmap[np.arange(n)[:, None], ids] = np.arange(ids.shape[1])
        S = ids.shape[1]
        N = n * S
        flat_ids = ids.reshape(-1)

        # r_sum = logsumexp over (r_n, r_b) of the previous prefix, like torch:
        # log(sum(exp(v - max))) + max, where one of the two terms is exactly 1.
        rn_p, rb_p = r_prev[:, 0], r_prev[:, 1]  # (T, n)
        m = np.maximum(rn_p, rb_p)
        r_sum = np.log(np.exp(np.minimum(rn_p, rb_p) - m) + np.float32(1)) + m

        # Z keeps [r_n, log_phi, r_b] per frame so the recursion's operands
        # (log_phi[t-1], r_b[t-1]) are one contiguous (2, N) slice.
        Z = np.empty((T, 3, N), dtype=np.float32)
        Z[:, 0] = LOGZERO
        Z[:, 2] = LOGZERO
        Z[:, 1] = np.repeat(r_sum, S, axis=1)
        # A repeated label can only follow the prefix through a blank: for the
        # column of the hypothesis' last token, log_phi = r_b of the prefix.
        if idmap is None:
            pos = last
            hit = np.ones(n, dtype=bool)
        else:
            pos = idmap[np.arange(n), last]
            hit = pos >= 0
        hrows = np.flatnonzero(hit)
        if hrows.size:
            Z[:, 1, hrows * S + pos[hrows]] = rb_p[:, hrows]

        if output_length == 0:
            Z[0, 0] = self.x[0, flat_ids]
        start = max(output_length, 1)

        # the recursion over frames and log_psi, compiled where a C compiler is at hand
        psi_ = ctc_prefix(self.xT, self.xb, np.ascontiguousarray(flat_ids, dtype=np.int64), Z, start)
        if psi_ is None:
            psi_ = _prefix_numpy(self.x, self.xb, flat_ids, Z, start)

        if idmap is None:
            log_psi = psi_.reshape(n, V)
        else:
            log_psi = np.full((n, V), LOGZERO, dtype=np.float32)
            log_psi[np.arange(n)[:, None], ids] = psi_.reshape(n, S)
        # eos: the prefix is complete, probability r_sum at the last frame
        log_psi[:, self.eos] = r_sum[T - 1]
        if self.eos != self.blank:
            log_psi[:, self.blank] = LOGZERO

        scores = log_psi if s_prev is None else log_psi - s_prev[:, None]
        return scores, Z, log_psi, idmap, S

    @staticmethod
    def select(Z, log_psi, idmap, S, prev: np.ndarray, tok: np.ndarray):
        """State of hypotheses extended by (prev, tok), as select_state does.

        A token outside the pre-beam has idmap -1, which torch indexing turns
        into the last scored column; reproduce that.
        """
        col = tok if idmap is None else idmap[prev, tok]
        col = np.where(col < 0, S + col, col)
        cols = prev * S + col
        r = Z[:, 0::2, cols]  # (T, 2, k)
        s = log_psi[prev, tok]
        return np.ascontiguousarray(r), s


def log_softmax_inplace(x: np.ndarray, rows: int = 32) -> np.ndarray:
    """x (T, V) scores -> their log-softmax over V, written over x: a block of rows at a time,
    so that exp's scratch is a block, not a second (T, V) (7 MB on the paper card's 15 s)."""
    for start in range(0, x.shape[0], rows):
        block = x[start:start + rows]
        block -= block.max(axis=1, keepdims=True)
        block -= np.log(np.exp(block).sum(axis=1, keepdims=True))
    return x


def token_major(logp: np.ndarray) -> np.ndarray:
    """(T, V) log-probabilities laid out token by token, as the prefix scorer reads them,
    returned as a (T, V) view. A caller that drops its own array after this call holds one
    T x V array through the search, not two."""
    return np.ascontiguousarray(logp.T).T


def _prefix_numpy(x, xb, flat_ids, Z, start: int) -> np.ndarray:
    """What native.ctc_prefix computes, in numpy: fills Z from frame ``start``, returns psi."""
    T, N = Z.shape[0], Z.shape[2]
    # X[t] = [x(t, token), x(t, blank)] per column: what r_n / r_b emit at t
    X = np.empty((T, 2, N), dtype=np.float32)
    X[:, 0] = x[:, flat_ids]
    X[:, 1] = xb[:, None]

    # forward recursion over frames, 8 small vectorised ops a frame:
    # r_n[t] = lse(r_n[t-1], log_phi[t-1]) + x[t, c]
    # r_b[t] = lse(r_n[t-1], r_b[t-1])     + x[t, blank]
    d = np.empty((2, N), dtype=np.float32)
    mx = np.empty((2, N), dtype=np.float32)
    one = np.float32(1)
    for t in range(start, T):
        a = Z[t - 1, 0]
        P = Z[t - 1, 1:]
        np.maximum(P, a, out=mx)
        np.minimum(P, a, out=d)
        np.subtract(d, mx, out=d)
        np.exp(d, out=d)
        np.add(d, one, out=d)
        np.log(d, out=d)
        np.add(d, mx, out=d)
        np.add(d, X[t], out=Z[t, ::2])

    # log_psi = logsumexp over t in [start, T) of (log_phi[t-1] + x[t, c])
    # and r_n[start-1] (the last term, as in torch.cat order). torch sums
    # the exps with a blocked cascade, numpy sequentially: may differ by an ulp.
    if start - 1 < T:
        tail = Z[start - 1, 0]
    else:
        # ESPnet raises IndexError here (prefix longer than the input);
        # we keep going with logzero instead.
        tail = np.full(N, LOGZERO, dtype=np.float32)
    if start >= T:
        return tail.copy()
    terms = np.concatenate((Z[start - 1:T - 1, 1] + X[start:T, 0], tail[None]), axis=0)
    mt = terms.max(axis=0)
    return np.log(np.exp(terms - mt).sum(axis=0)) + mt


# ----------------------------------------------------------------------------
# beam search
# ----------------------------------------------------------------------------


def _end_detect(ended: list[tuple[int, float]], i: int) -> bool:
    """e2e_asr_common.end_detect on (len(yseq), score) pairs."""
    if not ended:
        return False
    best = max(s for _, s in ended)
    count = 0
    for m in range(_END_M):
        same = [s for n, s in ended if n == i - m]
        if same and max(same) - best < _END_D:
            count += 1
    return count == _END_M


def beam_search(
    enc: np.ndarray,
    ctc_logp: np.ndarray,
    step: DecoderStep,
    *,
    sos: int,
    eos: int,
    cfg: BeamSearchConfig,
) -> list[Hypothesis]:
    """enc: (T, D) encoder output of one utterance; ctc_logp: (T, V) CTC
    log-softmax. Returns n-best sorted best first."""
    enc = np.ascontiguousarray(enc, dtype=np.float32)
    ctc_logp = np.asarray(ctc_logp, dtype=np.float32)
    T = enc.shape[0]
    mlr, mnr = cfg.maxlenratio, cfg.minlenratio
    if mlr == 0:
        maxlen = T
    elif mlr < 0:
        maxlen = -1 * int(mlr)
    else:
        maxlen = max(1, int(mlr * T))
    minlen = -1 * int(mnr) if mnr < 0 else int(mnr * T)

    ended = _search(enc, ctc_logp, step, sos, eos, cfg, maxlen, minlen)
    if not ended:
        # BeamSearch.forward: retry with a smaller minlenratio, or give up
        if mnr < 0.1:
            return []
        sub = BeamSearchConfig(
            beam_size=cfg.beam_size, ctc_weight=cfg.ctc_weight, penalty=cfg.penalty,
            maxlenratio=mlr, minlenratio=max(0.0, mnr - 0.1),
            pre_beam_ratio=cfg.pre_beam_ratio,
        )
        return beam_search(enc, ctc_logp, step, sos=sos, eos=eos, cfg=sub)
    # Python's sort is stable with reverse=True too, as ESPnet's sorted(...)
    ended.sort(key=lambda h: h[1], reverse=True)
    return [
        Hypothesis(tokens=[int(t) for t in y[1:-1]], score=float(s))
        for y, s in ended
    ]


class _Beam:
    """Running hypotheses, best first: yseq (n, L) int64 with sos; score (n,) float32;
    cache: the decoder cache (None before the first step or without a decoder);
    r (T, 2, n) CTC forward variables, or None for a never-scored prefix (ESPnet's state
    None: the blank cumsum over the frames at its first scoring); s (n,) the prefix's
    log_psi, or None (s_prev = 0)."""

    __slots__ = ("yseq", "score", "cache", "r", "s")

    def __init__(self, yseq, score, cache=None, r=None, s=None):
        self.yseq, self.score, self.cache, self.r, self.s = yseq, score, cache, r, s

    def __len__(self) -> int:
        return self.yseq.shape[0]

    def take(self, idx: np.ndarray) -> "_Beam":
        """The hypotheses idx (an int array), as ESPnet's _batch_select."""
        return _Beam(self.yseq[idx], self.score[idx],
                     None if self.cache is None else _select(self.cache, idx),
                     None if self.r is None else self.r[:, :, idx],
                     None if self.s is None else self.s[idx])


class _Expander:
    """One step of BatchBeamSearch.search (BB:259-363) for the scorers Speech2Text builds:
    the best ``beam_size`` extensions of a set of running hypotheses, sorted best first,
    before any post-processing."""

    def __init__(self, V: int, eos: int, cfg: BeamSearchConfig):
        self.V, self.eos, self.beam = V, eos, cfg.beam_size
        # Speech2Text drops scorers whose weight is 0
        w_dec = 1.0 - cfg.ctc_weight
        self.use_dec = w_dec != 0
        self.use_ctc = cfg.ctc_weight != 0
        self.use_len = cfg.penalty != 0
        # torch multiplies a float32 tensor by a Python scalar in float32
        self.w_dec32 = np.float32(w_dec)
        self.w_ctc32 = np.float32(cfg.ctc_weight)
        self.pen32 = np.float32(cfg.penalty) * np.float32(1.0)
        self.pre_beam = int(cfg.pre_beam_ratio * cfg.beam_size)
        # pre_beam_score_key is "full" unless ctc_weight == 1 (then None)
        self.do_pre_beam = cfg.ctc_weight != 1.0 and self.pre_beam < V and self.use_ctc

    def __call__(self, hyps: _Beam, step, memory, ctc) -> _Beam:
        """memory(n) -> (n, T, D) decoder memory; ctc: the _CTCPrefixScorer or None."""
        V, eos = self.V, self.eos
        yseq, score = hyps.yseq, hyps.score
        n = yseq.shape[0]
        ws = np.zeros((n, V), dtype=np.float32)
        if self.use_dec:
            logp, new_cache = step(yseq, hyps.cache, memory(n) if reads_memory(step) else None)
            ws += self.w_dec32 * np.asarray(logp, dtype=np.float32)
        if self.use_len:
            ws += self.pen32
        ids = None
        if self.use_ctc:
            r_state = hyps.r
            if r_state is None:
                r_state = np.repeat(ctc.initial_r(), n, axis=2)
            elif r_state.shape[0] < ctc.T:
                r_state = ctc.extend_r(r_state)
            ids = _topk_rows_set(ws, self.pre_beam) if self.do_pre_beam else None
            ctc_sc, Z, log_psi, idmap, S = ctc.score(yseq, r_state, hyps.s, ids)
            ws += self.w_ctc32 * ctc_sc
        ws += score[:, None]

        if self.do_pre_beam:
            top = _topk_among(ws, ids, eos, self.beam)
        else:
            top = _topk_1d(ws.reshape(-1), self.beam)
        prev = top // V
        tok = top % V

        out = _Beam(np.concatenate((yseq[prev], tok[:, None]), axis=1), ws[prev, tok])
        if self.use_dec:
            out.cache = _select(new_cache, prev)
        if self.use_ctc:
            out.r, out.s = ctc.select(Z, log_psi, idmap, S, prev, tok)
        return out


def beam_memory(enc: np.ndarray):
    """memory(n): the encoder output broadcast to n beams, remade when the beam count changes.
    Only the latest is kept: each is n copies of the utterance (3.9 MB at 10 beams on 15 s of
    the paper card), a copy that costs about a millisecond to remake."""
    last: dict[int, np.ndarray] = {}

    def memory(n: int) -> np.ndarray:
        if n not in last:
            last.clear()
            last[n] = np.ascontiguousarray(np.broadcast_to(enc, (n,) + enc.shape))
        return last[n]
    return memory


def reads_memory(step) -> bool:
    """Whether ``step`` reads the broadcast encoder output: the key/value-cached decoder step
    says no (``step.reads_memory = False``), it holds the encoder's cross keys and values."""
    return getattr(step, "reads_memory", True)


def _search(enc, ctc_logp, step, sos, eos, cfg, maxlen, minlen):
    V = ctc_logp.shape[1]
    expand = _Expander(V, eos, cfg)
    ctc = _CTCPrefixScorer(ctc_logp, blank=0, eos=eos) if expand.use_ctc else None

    hyps = _Beam(np.array([[sos]], dtype=np.int64), np.zeros(1, dtype=np.float32),
                 r=ctc.initial_r() if ctc is not None else None)
    memory = beam_memory(enc)
    ended: list[tuple[np.ndarray, np.float32]] = []
    ended_len: list[tuple[int, float]] = []  # for end detection

    for i in range(maxlen):
        hyps = expand(hyps, step, memory, ctc)

        # post_process
        if i == maxlen - 1:
            # force eos so that something ends (no score is added for it)
            hyps.yseq = np.concatenate(
                (hyps.yseq, np.full((len(hyps), 1), eos, dtype=np.int64)), axis=1
            )
        is_eos = hyps.yseq[:, -1] == eos
        if is_eos.any():
            if i >= minlen:
                for b in np.flatnonzero(is_eos):
                    ended.append((hyps.yseq[b].copy(), hyps.score[b]))
                    ended_len.append((hyps.yseq.shape[1], float(hyps.score[b])))
            hyps = hyps.take(np.flatnonzero(~is_eos))

        if cfg.maxlenratio == 0.0 and _end_detect(ended_len, i):
            break
        if len(hyps) == 0:
            break
    return ended

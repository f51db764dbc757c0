"""ESPnet's contextual-block streaming encoder, call by call, over the graphs of export/streaming.py.

`StreamingEncoder.feed(chunk, is_final)` takes audio exactly as Speech2TextStreaming.__call__
(espnet2/bin/asr_inference_streaming.py, or st_inference_streaming.py for an ST model) takes it and
returns the encoder frames that call produces, with their CTC log-probs. It mirrors the encoder's
forward_infer (espnet2/asr/encoder/contextual_block_transformer_encoder.py, 202511, lines 363-571;
the conformer's is the same) in numpy; line refs below are to that file (T:...).

No torch import: this runs in the deployment-like process.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from bench.runtime.onnx_asr import load_session
from bench.runtime.streaming_frontend import WaveBuffer


class EncoderState:
    """forward_infer's prev_states dict (T:379-392); `started` is `prev_states is not None`."""

    def __init__(self):
        self.started = False
        self.before: np.ndarray | None = None  # buffer_before_downsampling (n, F)
        self.after: np.ndarray | None = None  # buffer_after_downsampling (R, D)
        self.prev_addin: np.ndarray | None = None  # (1, D)
        self.past_ctx: np.ndarray | None = None  # (NL, D)
        self.n_done = 0  # n_processed_blocks


class StreamingEncoder:
    def __init__(self, graphs_dir: Path, meta: dict, threads: int = 1, providers=None):
        providers = providers or ["CPUExecutionProvider"]
        graphs_dir = Path(graphs_dir)
        s = meta["streaming"]
        self.meta = meta
        self.bs, self.hop, self.la = s["block_size"], s["hop_size"], s["look_ahead"]
        self.sub, self.d, self.n_layers = s["subsample"], s["d_model"], s["encoder_layers"]
        self.feat_dim = s["feat_dim"]
        names = ["frontend.onnx", "embed.onnx", "cb_blocks.onnx", "cb_short.onnx"]
        if meta.get("has_ctc"):
            names.append("ctc.onnx")
        self._sessions = {n: load_session(graphs_dir / n, threads, providers) for n in names}
        self.ctc = self._sessions.get("ctc.onnx")
        self.vocab_size = meta["vocab_size"]
        self.frontend = WaveBuffer(self._features, s["frontend"], s["n_fft"], s["win_length"],
                                   s["hop_length"])
        self.state = EncoderState()
        self.frontend_s = self.encoder_s = 0.0
        self.encoder_ran = False  # whether the last feed reached the encoder (ESPnet's S:315)
        self.last_blocks = 0  # blocks the last feed ran (0: buffered, or the short path)
        self.last_short = False  # whether the last feed took the short-segment path (T:477)
        self.last_feats: np.ndarray | None = None  # the features the last feed gave the encoder

    @property
    def sessions(self) -> dict:
        return dict(self._sessions)

    def reset(self) -> None:
        self.frontend.reset()
        self.state = EncoderState()

    def _features(self, segment: np.ndarray) -> np.ndarray:
        return self._sessions["frontend.onnx"].run(None, {"speech": segment[None]})[0][0]

    # ------------------------------------------------------------------

    def feed(self, wave_chunk: np.ndarray, is_final: bool):
        """-> (enc (T_new, D) float32, ctc logp (T_new, V) or None without a CTC).

        Audio in exactly as Speech2TextStreaming.__call__(speech=chunk, is_final=...) takes it.
        frontend_s: seconds in the buffering and frontend.onnx; encoder_s: in embed, the block or
        short graph and ctc.onnx. After a final call, or an error, the state starts afresh.
        """
        t0 = time.perf_counter()
        self.last_blocks, self.last_short = 0, False
        try:
            feats = self.frontend.feed(wave_chunk, is_final)
            t1 = time.perf_counter()
            self.frontend_s, self.last_feats = t1 - t0, feats
            # ASR: no features, no encoder call (S:315-331); ST always calls the encoder (ST:405-417)
            self.encoder_ran = feats is not None
            enc = self.feed_feats(feats, is_final) if feats is not None else self._empty()
            logp = None
            if self.ctc is not None:
                logp = self.ctc.run(None, {"enc": enc[None]})[0][0] if enc.shape[0] else \
                    np.zeros((0, self.vocab_size), np.float32)
        except Exception:
            self.reset()
            raise
        if is_final:
            self.reset()  # S:333-334
        self.encoder_s = time.perf_counter() - t1
        return enc, logp

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.d), np.float32)

    def feed_feats(self, feats: np.ndarray, is_final: bool) -> np.ndarray:
        """forward_infer on one call's features (Fr, F); the state lives in self.state."""
        st = self.state
        x = np.asarray(feats, dtype=np.float32)
        if st.started:  # T:396-398
            x = np.concatenate([st.before, x])
        if is_final:  # T:400-401
            st.before = None
        else:
            n = x.shape[0] // self.sub - 1  # T:403
            if n < 2:  # T:404-417: keep everything for the next call
                st.before, st.started = x, True
                return self._empty()
            n_res = x.shape[0] % self.sub + 2 * self.sub  # T:419-423
            st.before = x[x.shape[0] - n_res:]
            x = x[:n * self.sub]
        xs = self._sessions["embed.onnx"].run(None, {"feats": x[None]})[0][0]  # T:432-435
        if st.after is not None:  # T:438-439
            xs = np.concatenate([st.after, xs])
        total = xs.shape[0]
        overlap = self.bs - self.hop
        if is_final:  # T:443-449
            nb = math.ceil(float(total - (self.bs - self.hop - self.la) - self.la) / float(self.hop))
            st.after = None
        else:
            if total <= self.bs:  # T:451-464
                st.after, st.started = xs, True
                return self._empty()
            nb = max(0, total - overlap) // self.hop  # T:466-472
            res = total - self.hop * nb
            st.after = xs[total - res:]
            xs = xs[:nb * self.hop + overlap]
        st.started = True
        if st.n_done == 0 and total <= self.bs and is_final:  # T:477-485
            self.last_short = True
            return self._sessions["cb_short.onnx"].run(None, {"xs": xs[None]})[0][0]
        if nb < 1:  # ESPnet builds a (1, nb, ...) tensor and indexes block 0: it fails too
            raise RuntimeError(f"streaming encoder: final call with {total} frames gives {nb} blocks")
        # T:488-515, the frames of each block (zeros past its length), then the graph
        lens = np.minimum(self.bs, total - self.hop * np.arange(nb)).astype(np.int64)
        blocks = np.zeros((nb, self.bs, self.d), np.float32)
        for i in range(nb):
            blocks[i, :lens[i]] = xs[i * self.hop:i * self.hop + lens[i]]
        first = st.prev_addin is None
        feeds = {
            "blocks": blocks, "lens": lens, "n_done": np.array(st.n_done, np.int64),
            "prev_addin": st.prev_addin if not first else np.zeros((1, self.d), np.float32),
            "past_ctx": st.past_ctx if not first else np.zeros((self.n_layers, self.d), np.float32),
            "first": np.array(first),
        }
        ys, st.prev_addin, st.past_ctx = self._sessions["cb_blocks.onnx"].run(None, feeds)
        self.last_blocks = nb
        # T:532-555: assemble the output frames
        offset = self.bs - self.la - self.hop
        fresh = st.n_done == 0
        if is_final:
            y_len = xs.shape[0] - (0 if fresh else offset)
        else:
            y_len = nb * self.hop + (offset if fresh else 0)
        out = np.zeros((y_len, self.d), np.float32)
        if fresh:
            out[:offset] = ys[0, :offset]
        for i in range(nb):
            cur = i * self.hop + (offset if fresh else 0)
            length = min(self.bs - offset, y_len - cur) if (i == nb - 1 and is_final) else self.hop
            out[cur:cur + length] = ys[i, offset:offset + length]
        st.n_done += nb  # T:567
        return out

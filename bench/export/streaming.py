"""Export an ESPnet model with a contextual-block streaming encoder (ContextualBlockTransformerEncoder,
ContextualBlockConformerEncoder) as graphs run block by block, as espnet2.bin.asr_inference_streaming
(and st_inference_streaming) Speech2TextStreaming runs the encoder (`infer_mode=True`).

frontend.onnx  : speech (1, N) -> feats (1, Fr, F): STFT, log-mel and the model's normalize on one
                 segment, exactly as apply_frontend runs `_extract_feats` + `normalize` per segment
                 (so utterance_mvn statistics are per segment there too)
embed.onnx     : feats (1, L, F) -> xs (1, T', D): encoder.embed without positional encoding
cb_blocks.onnx : blocks (nb, bs, D) raw embed frames, zero past lens; lens (nb,) int64; n_done () int64
                 (blocks processed before this call); prev_addin (1, D); past_ctx (NL, D); first () bool
                 -> ys (nb, bs, D) (context slots dropped, after_norm applied), last_addin (1, D),
                 new_ctx (NL, D)
cb_short.onnx  : xs (1, T', D), T' <= bs -> ys (1, T', D): the short-segment path (a plain encoder)
ctc.onnx       : enc (1, T, D) -> logp (1, T, V), only when the model has a CTC over its output tokens
decoder.onnx, cross_kv.onnx, decoder_kv.onnx : as export/asr.py writes them

Every data-dependent branch of the encoder's forward_infer (buffers, number of blocks, first call,
short segment, assembly of the outputs) is in bench/runtime/streaming_encoder.py; the graphs are
tensor maths with a dynamic number of blocks and frames. The audio buffering of apply_frontend is
bench/runtime/streaming_frontend.py.
"""
from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from bench.export.asr import (EncoderGraph, ExportParityError, PARITY_ATOL, PARITY_SECONDS,
                              export_decoder_step, output_ctc)
from bench.export.kv_decoder import UnsupportedDecoder, export_kv_decoder
from bench.export.rewrites import _div_term, _interleave_sin_cos, linear_pad_masks, rewrite_for_export
from bench.runtime.streaming import DEFAULT_CHUNK, stream_chunks

EXPORTER_VERSION = "streaming-1"
OPSET = 17
STREAMING_GRAPHS = ("frontend.onnx", "embed.onnx", "cb_blocks.onnx", "cb_short.onnx")
INPUT_LAYERS = {"conv2d": 4, "conv2d6": 6, "conv2d8": 8, "linear": 1}


def _is_st(model) -> bool:
    from espnet2.st.espnet_model import ESPnetSTModel

    return isinstance(model, ESPnetSTModel)


def input_layer(encoder) -> str:
    """The encoder_conf.input_layer a built ContextualBlock encoder was made with."""
    from espnet.nets.pytorch_backend.transformer.subsampling_without_posenc import (
        Conv2dSubsamplingWOPosEnc)

    if isinstance(encoder.embed, Conv2dSubsamplingWOPosEnc):
        return {4: "conv2d", 6: "conv2d6", 8: "conv2d8"}[encoder.subsample]
    e = encoder.embed
    if isinstance(e, torch.nn.Sequential) and len(e) == 4 and isinstance(e[0], torch.nn.Linear) \
            and isinstance(e[1], torch.nn.LayerNorm) and isinstance(e[3], torch.nn.ReLU):
        return "linear"
    return type(e).__name__ if e is not None else "None"


def refuse_unsupported(model) -> None:
    """ValueError naming the config key of what the streaming graphs do not reproduce."""
    from espnet2.asr.frontend.default import DefaultFrontend

    enc = model.encoder
    name = type(enc).__name__
    if name not in ("ContextualBlockTransformerEncoder", "ContextualBlockConformerEncoder"):
        raise ValueError(f"encoder {name}: export_streaming handles the contextual block encoders")
    if not enc.init_average:
        raise ValueError("encoder_conf.init_average: false (max-pooled context init) is not handled: "
                         "ESPnet's own forward_infer crashes on it (Tensor.max returns a tuple)")
    layer = input_layer(enc)
    if layer not in INPUT_LAYERS:
        raise ValueError(f"encoder_conf.input_layer {layer!r}: the streaming export handles "
                         f"{', '.join(INPUT_LAYERS)}")
    if enc.block_size <= 0 or enc.block_size - enc.hop_size - enc.look_ahead < 0:
        raise ValueError(f"encoder_conf.block_size/hop_size/look_ahead {enc.block_size}/{enc.hop_size}/"
                         f"{enc.look_ahead}: need block_size > 0 and block_size >= hop_size + look_ahead")
    if getattr(model, "hier_encoder", None) is not None:
        raise ValueError("hier_encoder: ESPnet's streaming ST refuses a hierarchical encoder")
    if not isinstance(model.frontend, DefaultFrontend):
        raise ValueError(f"frontend {type(model.frontend).__name__}: the streaming export handles "
                         "frontend: default")
    fe = model.frontend
    stft = fe.stft
    # fe.frontend (WPE/beamformer) acts on multi-channel input only: single-channel it is the identity
    if stft is None or not stft.center or stft.normalized or not stft.onesided or stft.window != "hann":
        raise ValueError("frontend_conf (center/normalized/onesided/window): the STFT graph handles "
                         "center=True, normalized=False, onesided=True, window=hann")
    if model.normalize is not None and type(model.normalize).__name__ not in ("UtteranceMVN", "GlobalMVN"):
        raise ValueError(f"normalize {type(model.normalize).__name__}: handled are utterance_mvn, global_mvn")


# ---------------------------------------------------------------------------
# graphs
# ---------------------------------------------------------------------------


class FrontendGraph(EncoderGraph):
    """speech (1, N) -> normalized log-mel feats (1, Fr, F) of one whole segment: the offline
    encoder graph's frontend alone (its encoder and CTC are not traced)."""

    def forward(self, speech):
        return self.features(speech)[0]


class EmbedGraph(torch.nn.Module):
    """feats (1, L, F) -> (1, T', D): encoder.embed without positional encoding (T:432-435)."""

    def __init__(self, encoder):
        super().__init__()
        self.embed = encoder.embed
        self.conv = input_layer(encoder).startswith("conv2d")

    def forward(self, feats):
        return self.embed(feats, None)[0] if self.conv else self.embed(feats)


class _Sinusoid(torch.nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.register_buffer("div", _div_term(d_model), persistent=False)

    def forward(self, positions):  # StreamPositionalEncoding's table row for each position (PE:366-373)
        return _interleave_sin_cos(positions.to(torch.float32)[..., None] * self.div)


class BlockGraph(torch.nn.Module):
    """All blocks of one forward_infer call at once (T:487-556 with LT:196-248 / LC:219-310).

    Each layer runs its own forward_infer with is_short_segment=True (no in-place context copy,
    no `nblock > 1` branch frozen by the trace); the copy of LT:240-248 is redone with where/cat.
    """

    def __init__(self, encoder):
        super().__init__()
        self.enc = encoder
        self.bs, self.hop = encoder.block_size, encoder.hop_size
        self.xscale = encoder.pos_enc.xscale
        self.pe = _Sinusoid(encoder.output_size())
        m = torch.zeros(1, 1, self.bs + 2, self.bs + 2)
        m[..., 1:, :-1] = 1  # T:517-523: rows 1..bs+1 see columns 0..bs
        self.register_buffer("mask", m, persistent=False)

    def forward(self, blocks, lens, n_done, prev_addin, past_ctx, first):
        enc = self.enc
        i = torch.ones_like(lens).cumsum(0) - 1  # block index 0..nb-1, dynamic
        j = torch.ones_like(blocks[0, :, 0], dtype=torch.int64).cumsum(0) - 1  # 0..bs-1
        # T:494-501: mean over the block's real frames (zeros past lens), then its pos-enc row i+n
        addin = blocks.sum(1) / lens[:, None].to(blocks.dtype)
        if enc.ctx_pos_enc:
            addin = addin * self.xscale + self.pe(i + n_done)
        # T:508-513: frames with pos-enc at (i+n)*hop + j; slots past the block's length stay zero
        pos = (i + n_done)[:, None] * self.hop + j[None, :]
        valid = (j[None, :] < lens[:, None])[..., None]
        x = torch.where(valid, blocks * self.xscale + self.pe(pos), torch.zeros_like(blocks))
        # T:503-506: slot 0 = previous block's addin (its own on the very first block), slot bs+1 = addin
        prev = torch.where(first, addin[:1], prev_addin)
        x = torch.cat([torch.cat([prev, addin[:-1]], 0)[:, None], x, addin[:, None]], 1)[None]
        mask = torch.ones_like(lens, dtype=blocks.dtype)[None, :, None, None] * self.mask
        ctx = []
        for layer_idx, layer in enumerate(enc.encoders):
            x = layer(x, mask, True, None, None, True)[0]  # (1, nb, bs+2, D)
            last = x[0, :, -1]  # (nb, D)
            # LT:241-248: slot 0 of block 0 = past_ctx[l] (first call: its own last slot),
            # slot 0 of block k = last slot of block k-1; new_ctx[l] = last block's last slot
            head = torch.where(first, last[:1], past_ctx[layer_idx:layer_idx + 1])
            x = torch.cat([torch.cat([head, last[:-1]], 0)[None, :, None], x[:, :, 1:]], 2)
            ctx.append(last[-1])
        ys = x[0, :, 1:self.bs + 1]  # T:530
        if enc.normalize_before:
            ys = enc.after_norm(ys)  # per frame: the same as on the assembled output (T:556)
        return ys, addin[-1:], torch.stack(ctx)


class ShortGraph(torch.nn.Module):
    """T:476-485: a segment of <= block_size frames, final, first: a plain encoder, no context."""

    def __init__(self, encoder):
        super().__init__()
        self.enc = encoder
        self.xscale = encoder.pos_enc.xscale
        self.pe = _Sinusoid(encoder.output_size())

    def forward(self, xs):
        pos = torch.ones_like(xs[0, :, 0], dtype=torch.int64).cumsum(0) - 1
        x = (xs * self.xscale + self.pe(pos)[None]).unsqueeze(1)
        for layer in self.enc.encoders:
            x = layer(x, None, True, None, None, True)[0]
        x = x.squeeze(0)
        return self.enc.after_norm(x) if self.enc.normalize_before else x


class CtcGraph(torch.nn.Module):
    def __init__(self, ctc):
        super().__init__()
        self.ctc = ctc

    def forward(self, enc):
        return self.ctc.log_softmax(enc)


# ---------------------------------------------------------------------------
# ESPnet's own streaming path (the reference)
# ---------------------------------------------------------------------------


def streaming_meta(model) -> dict:
    enc, stft = model.encoder, model.frontend.stft
    win = stft.win_length or stft.n_fft
    return {
        "frontend": "st" if _is_st(model) else "asr",
        "n_fft": stft.n_fft, "win_length": win, "hop_length": stft.hop_length,
        "trim_frames": math.ceil(math.ceil(win / stft.hop_length) / 2),
        "feat_dim": model.frontend.output_size(),
        "block_size": enc.block_size, "hop_size": enc.hop_size, "look_ahead": enc.look_ahead,
        "subsample": enc.subsample, "input_layer": input_layer(enc),
        "encoder_layers": len(enc.encoders), "d_model": enc.output_size(),
        "encoder": type(enc).__name__,
    }


def reference_frontend(model):
    """A bound apply_frontend of ESPnet's Speech2TextStreaming (ASR or ST) for this model: the
    method called on a stand-in holding only what it reads (S:182-196, ST:285-299 read n_fft,
    hop_length and win_length from frontend_conf with those defaults; the model's own STFT
    defaults are the same)."""
    from types import SimpleNamespace

    stft = model.frontend.stft
    shim = SimpleNamespace(n_fft=stft.n_fft, hop_length=stft.hop_length,
                           win_length=stft.win_length or stft.n_fft, dtype="float32", device="cpu")
    if _is_st(model):
        from espnet2.bin.st_inference_streaming import Speech2TextStreaming
        shim.st_model = model
    else:
        from espnet2.bin.asr_inference_streaming import Speech2TextStreaming
        shim.asr_model = model

    def apply(speech, prev_states, is_final):
        return Speech2TextStreaming.apply_frontend(shim, speech, prev_states, is_final=is_final)
    return apply


def chunks_of(wave: np.ndarray, chunk: int) -> list[tuple[np.ndarray, bool]]:
    """The pieces of ``wave`` ESPnet's streaming inference feeds (bench.runtime.streaming)."""
    return [(wave[a:b], final) for a, b, final in stream_chunks(len(wave), chunk)]


def reference_stream(model, wave: np.ndarray, chunk: int) -> list[dict]:
    """ESPnet's streaming frontend + encoder, call by call: [{"feats": (Fr, F) | None,
    "enc": (T, D) | None}] (enc None when the call ran no encoder, as S:315 skips it)."""
    apply = reference_frontend(model)
    st = _is_st(model)
    fstate = estate = None
    out = []
    with torch.no_grad():
        for piece, final in chunks_of(np.asarray(wave, dtype=np.float32), chunk):
            feats, lens, fstate = apply(torch.from_numpy(piece.copy()), fstate, final)
            if feats is None and not st:
                out.append({"feats": None, "enc": None})
                continue
            enc, _, estate = model.encoder(feats, lens, estate, is_final=final, infer_mode=True)
            out.append({"feats": feats[0].numpy(), "enc": enc[0].numpy()})
    return out


def check_streaming_parity(model, out_dir: Path, meta: dict, atol: float = PARITY_ATOL,
                           chunk: int = DEFAULT_CHUNK) -> dict:
    """The numpy driver over the written graphs against ESPnet's streaming path on a
    PARITY_SECONDS random wave fed in `chunk`-sample calls, call by call."""
    from bench.runtime.streaming_encoder import StreamingEncoder

    gen = torch.Generator().manual_seed(1)
    wave = (torch.randn(int(16000 * PARITY_SECONDS), generator=gen) * 0.1).numpy()
    want = reference_stream(model, wave, chunk)
    if not all(np.isfinite(w["enc"]).all() for w in want if w["enc"] is not None):
        return {"seconds": PARITY_SECONDS, "chunk": chunk,
                "skipped": "the ESPnet model's own encoder output has NaN/inf"}
    runner = StreamingEncoder(out_dir, meta)
    got = [runner.feed(piece, final)[0] for piece, final in chunks_of(wave, chunk)]
    diff, n_blocks = 0.0, []
    for k, (g, w) in enumerate(zip(got, want)):
        w_enc = w["enc"] if w["enc"] is not None else np.zeros((0, g.shape[1]), np.float32)
        if g.shape != w_enc.shape:
            raise ExportParityError(f"{out_dir}: call {k} of the streamed {PARITY_SECONDS} s gives "
                                    f"{g.shape} encoder frames, ESPnet's streaming encoder {w_enc.shape}")
        if g.size:
            diff = max(diff, float(np.abs(g - w_enc).max()))
    if not diff <= atol:
        raise ExportParityError(f"{out_dir}: the streamed encoder output differs from ESPnet's by up to "
                                f"{diff:.3g} (allowed {atol}) on {PARITY_SECONDS} s in {chunk}-sample chunks")
    return {"seconds": PARITY_SECONDS, "chunk": chunk, "calls": len(got),
            "frames": int(sum(g.shape[0] for g in got)), "max_abs_diff": diff, "atol": atol}


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------


def _export(module, args, path: Path, opset: int, inputs, outputs, axes) -> None:
    torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                      input_names=inputs, output_names=outputs, dynamic_axes=axes)


def export_streaming(model, out_dir: Path, opset: int = OPSET) -> dict:
    """Write the streaming encoder graphs, the CTC graph and the decoder graphs; return (and
    write as export.json) the metadata the runtime needs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = model.eval()
    refuse_unsupported(reference)
    model = copy.deepcopy(model).eval()
    rewrites = rewrite_for_export(model)  # the decoder's positional encoding (the encoder has its own)
    enc = model.encoder
    ctc = output_ctc(model)
    has_decoder = model.decoder is not None and not getattr(model, "use_transducer_decoder", False)
    if getattr(model, "use_transducer_decoder", False):
        raise ValueError("decoder transducer: streaming export handles attention/CTC decoding")
    if not has_decoder and ctc is None:
        raise ValueError("the model has neither a decoder nor a CTC over its output tokens: "
                         "nothing to decode with")
    if has_decoder and not hasattr(model.decoder, "decoders"):
        raise ValueError(f"decoder {type(model.decoder).__name__}: the one-step decoder graph "
                         "handles ESPnet's transformer decoder")
    smeta = streaming_meta(model)
    d, bs, nl = enc.output_size(), enc.block_size, len(enc.encoders)
    gen = torch.Generator().manual_seed(0)  # same trace inputs, same graphs, every build
    graphs = list(STREAMING_GRAPHS)
    with torch.no_grad(), warnings.catch_warnings(), linear_pad_masks():
        warnings.simplefilter("ignore")  # tracer warnings
        speech = torch.randn(1, 16000, generator=gen) * 0.1
        _export(FrontendGraph(model).eval(), (speech,), out_dir / "frontend.onnx", opset,
                ["speech"], ["feats"], {"speech": {1: "samples"}, "feats": {1: "frames"}})
        feats = FrontendGraph(model).eval()(speech)
        embed = EmbedGraph(enc).eval()
        _export(embed, (feats,), out_dir / "embed.onnx", opset, ["feats"], ["xs"],
                {"feats": {1: "frames"}, "xs": {1: "subframes"}})
        nb = 3
        blocks = torch.randn(nb, bs, d, generator=gen)
        lens = torch.tensor([bs, bs, bs - 5])
        blocks[-1, bs - 5:] = 0
        args = (blocks, lens, torch.tensor(2), torch.randn(1, d, generator=gen),
                torch.randn(nl, d, generator=gen), torch.tensor(False))
        _export(BlockGraph(enc).eval(), args, out_dir / "cb_blocks.onnx", opset,
                ["blocks", "lens", "n_done", "prev_addin", "past_ctx", "first"],
                ["ys", "last_addin", "new_ctx"],
                {"blocks": {0: "blocks"}, "lens": {0: "blocks"}, "ys": {0: "blocks"}})
        xs = torch.randn(1, bs - 3, d, generator=gen)
        _export(ShortGraph(enc).eval(), (xs,), out_dir / "cb_short.onnx", opset, ["xs"], ["ys"],
                {"xs": {1: "subframes"}, "ys": {1: "subframes"}})
        enc_out = torch.randn(1, 50, d, generator=gen)
        if ctc is not None:
            _export(CtcGraph(ctc).eval(), (enc_out,), out_dir / "ctc.onnx", opset, ["enc"], ["logp"],
                    {"enc": {1: "frames"}, "logp": {1: "frames"}})
            graphs.append("ctc.onnx")
        if has_decoder:
            export_decoder_step(model.decoder, model.vocab_size, enc_out, out_dir, opset, gen)
            graphs.append("decoder.onnx")
    n_layers = len(model.decoder.decoders) if has_decoder else 0
    try:
        if not has_decoder:
            raise UnsupportedDecoder("no decoder (a CTC-only model)")
        kv = export_kv_decoder(model.decoder, enc_out, out_dir, opset, gen)
    except UnsupportedDecoder as e:  # the optimised variants then keep the plain step
        kv = {"unsupported": str(e)}
    meta = {
        "exporter": EXPORTER_VERSION, "opset": opset, "torch": torch.__version__,
        "module_rewrites": rewrites, "n_layers": n_layers, "d_model": d,
        "vocab_size": model.vocab_size, "sos": model.sos, "eos": model.eos,
        "has_ctc": ctc is not None, "has_decoder": has_decoder, "graphs": graphs,
        "kv_decoder": kv, "streaming": smeta,
    }
    meta["encoder_check"] = check_streaming_parity(reference, out_dir, meta)
    (out_dir / "export.json").write_text(json.dumps(meta, indent=2))
    return meta

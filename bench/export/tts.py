"""Export an ESPnet TTS model to ONNX: token ids in, waveform out (TorchScript exporter).

FastSpeech2 + HiFiGAN -> two graphs:
  acoustic.onnx : text (1, T_text) int64 (eos included), alpha (1,) float32
                  -> mel (1, T_feats, n_mels) float32 (denormalised, what the vocoder takes),
                     durations (1, T_text) int64
  vocoder.onnx  : mel (1, T_feats, n_mels) -> wave (1, T_feats x hop)
  Two graphs, not one: they are two ESPnet models with their own checkpoints (a card may
  swap the vocoder), the transformer fusion only concerns the acoustic model, and a
  variant check that fails names the half that broke.
VITS -> one graph (the generator is one model; the flow and decoder are inseparable in use):
  vits.onnx     : text (1, T_text) int64, durations (1, T_text) int64,
                  noise (1, C, T_feats) float32 standard normal, noise_scale (1,) float32
                  -> wave (1, T_feats x hop)
  The card bypasses the stochastic duration predictor with fixed durations (`token_frames`),
  so the durations are an input; the flow's noise is an input too, so PyTorch and every
  ONNX variant synthesise from the very same draw (T_feats is the noise's length).
JETS -> one graph (one generator: variance adaptor, Gaussian upsampling, decoder, HiFiGAN):
  jets.onnx     : text (1, T_text) int64 (no eos: JETS appends none)
                  -> wave (1, T_feats x hop) float32, durations (1, T_text) int64
  Nothing is sampled: the durations are the duration predictor's rounded output, as ESPnet's.
joint_text2wav (FastSpeech2 + HiFiGAN trained together) -> the FastSpeech2 pair of graphs:
  acoustic.onnx : text (eos included), alpha -> mel (the text2mel's own, *normalised* output:
                  what the jointly trained vocoder takes), durations
  vocoder.onnx  : mel -> wave, as above. Both halves come from the one JointText2Wav model.

Tacotron 2 (autoregressive, stop token) + HiFiGAN -> four graphs; the decode loop is numpy
(bench/runtime/onnx_tts.py: ESPnet's Decoder.inference with threshold, minlenratio,
maxlenratio and the attention constraint):
  encoder.onnx  : text (1, T_text) int64 (eos included)
                  -> enc (1, T_text, eunits), enc_proj (1, T_text, adim) (the attention's
                     mlp_enc, computed once as AttLoc does)
  decoder.onnx  : one decoder step, its state explicit: enc, enc_proj, z (dlayers, 1, dunits),
                  c (dlayers, 1, dunits) (the zoneout LSTM cells' states), prev_out (1, odim)
                  (the previous step's last frame), att_prev (1, T_text) (the initial uniform
                  weights, then the cumulative weights), att_bias (1, T_text) (0, or -inf
                  outside the attention-constraint window)
                  -> frames (1, odim, r), prob (1, r) (sigmoid of the stop logit),
                     att_w (1, T_text), z, c (new states)
  postnet.onnx  : before (1, odim, T_feats) (the steps' frames, concatenated)
                  -> mel (1, T_feats, odim), denormalised (what the vocoder takes)
  vocoder.onnx  : mel -> wave, as for FastSpeech2.
  The prenet's dropout, which ESPnet applies at inference too, must be 0 (the card sets
  tts_conf.dropout_rate 0): a graph cannot draw ESPnet's masks, and the export refuses otherwise.
Transformer-TTS + HiFiGAN -> four graphs; the decode loop is numpy (bench/runtime/onnx_tts.py:
ESPnet's Transformer.inference with threshold, minlenratio and maxlenratio; it has no
attention constraint):
  encoder.onnx  : text (1, T_text) int64 (eos included) -> enc (1, T_text, adim)
  decoder.onnx  : one Decoder.forward_one_step, its cache explicit: ys (1, L, odim) (a zero
                  frame, then every step's last frame so far: ESPnet re-embeds all of them each
                  step, prenet and positional encoding included), enc, cache (dlayers, 1, L-1,
                  adim) (each layer's outputs at the earlier positions; length 0 at the first
                  step, which gives ESPnet's cache-less first step exactly)
                  -> frames (1, odim, r) (feat_out), prob (1, r) (sigmoid of prob_out),
                     cache_out (dlayers, 1, L, adim)
  postnet.onnx  : before -> mel, as for Tacotron 2 (before + postnet, denormalised)
  vocoder.onnx  : mel -> wave, as for FastSpeech2.
  The decoder prenet is Tacotron 2's Prenet, dropout on at inference: the card sets
  tts_conf.dprenet_dropout_rate 0 and the export refuses otherwise. The encoder prenet and
  the postnet use dropout modules, off in eval mode.

Dynamic lengths: the length regulators are written with cumsum and comparisons (no
repeat_interleave, no Python ints taken from tensors), positional encodings are computed in
the graph (bench.export.rewrites), and masks come from the tensors' own shapes (ESPnet's
make_pad_mask turns the length into a Python int, which a trace would freeze).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from bench.export.rewrites import linear_pad_masks, rewrite_for_export
from bench.optimize.verify import VariantCheckError, check_session, compare_outputs

EXPORTER_VERSION = "tts-2"  # 2: padding masks linear in the length (was quadratic)
# (JETS, joint_text2wav, Tacotron 2 and Transformer-TTS were added without a bump: the
# FastSpeech2 and VITS graphs are unchanged)
# graph kinds whose text side is acoustic.onnx (text, alpha -> mel) and vocoder.onnx (mel -> wave)
MEL_KINDS = ("fastspeech2", "joint_text2wav")
# autoregressive kinds: encoder.onnx, decoder.onnx (one step), postnet.onnx, vocoder.onnx
AR_KINDS = ("tacotron2", "transformer")
OPSET = 17
CHECK_TOKENS = (5, 23, 71)


# ---------------------------------------------------------------- shared pieces



def _register_inverse_mvn(module: torch.nn.Module, normalize, dim: int) -> None:
    """mel_std and mel_mean buffers for GlobalMVN.inverse (x * std + mean, each only where the
    normaliser applies it), in float32."""
    std = normalize.std if normalize is not None and normalize.norm_vars else torch.ones(dim)
    mean = normalize.mean if normalize is not None and normalize.norm_means else torch.zeros(dim)
    module.register_buffer("mel_std", std.detach().float().clone())
    module.register_buffer("mel_mean", mean.detach().float().clone())

class InGraphScaledPositionalEncoding(torch.nn.Module):
    """ESPnet's ScaledPositionalEncoding (x + alpha * pe) with pe computed from x's length.

    rewrite_for_export matches classes exactly and so leaves this subclass alone; its table
    would otherwise be frozen at the trace length.
    """

    def __init__(self, orig):
        super().__init__()
        self.alpha = orig.alpha
        div = torch.exp(torch.arange(0, orig.d_model, 2, dtype=torch.float32)
                        * -(math.log(10000.0) / orig.d_model))
        self.register_buffer("div_term", div, persistent=False)

    def forward(self, x):
        position = torch.ones_like(x[0, :, 0]).cumsum(0) - 1.0
        angles = position[:, None] * self.div_term
        pe = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(-2)
        return x + self.alpha * pe[None]


def _rewrite(model) -> int:
    from bench.espnet_layout import nets

    ScaledPositionalEncoding = nets("pytorch_backend.transformer.embedding").ScaledPositionalEncoding

    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is ScaledPositionalEncoding:
                setattr(parent, name, InGraphScaledPositionalEncoding(child))
                count += 1
    return count + rewrite_for_export(model)


def strip_weight_norm(model: torch.nn.Module) -> int:
    """Fold weight norm into plain weights: otherwise every call recomputes g * v / |v|."""
    from torch.nn.utils.weight_norm import WeightNorm

    count = 0
    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, WeightNorm):
                torch.nn.utils.remove_weight_norm(m, hook.name)
                count += 1
        if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
            torch.nn.utils.parametrize.remove_parametrizations(m, "weight")
            count += 1
    return count


def expand_by_durations(h: torch.Tensor, dur: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """h (1, T_text, D), dur (1, T_text) int64, frames (T_feats,) int64 -> (1, T_feats, D).

    Frame t belongs to the token whose span [cum - dur, cum) holds it: a 0/1 matrix, so the
    graph keeps every length dynamic (torch.repeat_interleave would not).
    """
    cum = dur.cumsum(-1)
    start = cum - dur
    path = (frames[None, :, None] >= start[:, None, :]) & (frames[None, :, None] < cum[:, None, :])
    return torch.matmul(path.to(h.dtype), h)


def gaussian_upsample(h: torch.Tensor, dur: torch.Tensor, frames: torch.Tensor,
                      delta: float) -> torch.Tensor:
    """JETS's GaussianUpsampling for one utterance without padding: h (1, T_text, D),
    dur (1, T_text) int64, frames (T_feats,) int64 -> (1, T_feats, D); ESPnet's float32 ops."""
    t = frames.float()[None, :, None]
    c = (dur.cumsum(dim=-1) - dur / 2)[:, None, :]
    energy = -1 * delta * (t - c) ** 2
    return torch.matmul(torch.softmax(energy, dim=2), h)


def _load_tts(exp_dir: Path):
    from espnet2.bin.tts_inference import Text2Speech

    from bench.zoo.exp_dir import resolved_config

    with resolved_config(exp_dir) as cfg:
        return Text2Speech(train_config=cfg, model_file=exp_dir / "model.pth")


# ---------------------------------------------------------------- FastSpeech2 + HiFiGAN


class FastSpeech2Graph(torch.nn.Module):
    """FastSpeech2.inference (no teacher forcing) + the feature denormalisation.

    Masks are None: a single utterance has no padding (ESPnet's all-true masks give the
    same result).
    """

    def __init__(self, fs2, normalize, denormalize: bool = True):
        super().__init__()
        self.fs2 = fs2
        self.denormalize = denormalize  # False: the mel as the text2mel gives it (joint_text2wav)
        _register_inverse_mvn(self, normalize, fs2.odim)

    def forward(self, text, alpha):
        m = self.fs2
        hs, _ = m.encoder(text, None)
        p_outs = m.pitch_predictor(hs, None)
        e_outs = m.energy_predictor(hs, None)
        d = m.duration_predictor.inference(hs, None)  # (1, T_text) int64
        hs = hs + m.energy_embed(e_outs.transpose(1, 2)).transpose(1, 2) \
            + m.pitch_embed(p_outs.transpose(1, 2)).transpose(1, 2)
        # LengthRegulator: round(d * alpha) (a no-op at alpha 1), all-zero -> all ones
        d = torch.round(d.to(alpha.dtype) * alpha).long()
        d = torch.where(d.sum() == 0, torch.ones_like(d), d)
        frames = torch.arange(d.sum())  # traced with the sum as a graph value: dynamic
        hs = expand_by_durations(hs, d, frames)
        zs, _ = m.decoder(hs, None)
        before = m.feat_out(zs).view(zs.size(0), -1, m.odim)
        after = before + m.postnet(before.transpose(1, 2)).transpose(1, 2)
        if not self.denormalize:
            return after, d
        return after * self.mel_std + self.mel_mean, d


class HiFiGANGraph(torch.nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, mel):
        return self.generator(mel.transpose(1, 2)).flatten(1)  # (1, T_feats x hop)


def _export_mel_pair(tts, acoustic, generator, out_dir: Path, gen: torch.Generator) -> dict:
    """acoustic.onnx (text, alpha -> mel, durations) and vocoder.onnx (mel -> wave)."""
    folded = strip_weight_norm(generator)
    voc_graph = HiFiGANGraph(generator).eval()
    text = torch.randint(2, tts.eos, (1, 17), generator=gen)
    text = torch.cat([text, torch.full((1, 1), tts.eos)], dim=1)
    alpha = torch.ones(1)
    with torch.no_grad():
        mel, _ = acoustic(text, alpha)
        torch.onnx.export(
            acoustic, (text, alpha), str(out_dir / "acoustic.onnx"), dynamo=False,
            opset_version=OPSET, input_names=["text", "alpha"], output_names=["mel", "durations"],
            dynamic_axes={"text": {1: "tokens"}, "mel": {1: "frames"}, "durations": {1: "tokens"}})
        torch.onnx.export(
            voc_graph, (mel,), str(out_dir / "vocoder.onnx"), dynamo=False, opset_version=OPSET,
            input_names=["mel"], output_names=["wave"],
            dynamic_axes={"mel": {1: "frames"}, "wave": {1: "samples"}})
    att = tts.encoder.encoders[0].self_attn
    return {
        "graphs": ["acoustic.onnx", "vocoder.onnx"],
        "hop_length": generator.upsample_factor,
        "num_heads": att.h, "d_model": att.d_k * att.h,
        "n_mels": tts.odim, "eos": int(tts.eos), "vocab_size": int(tts.idim),
        "weight_norm_folded": folded,
        "inputs": {"acoustic.onnx": ["text", "alpha"], "vocoder.onnx": ["mel"]},
    }


def _check_single_speaker(m, what: str) -> None:
    if m.spks is not None or m.langs is not None or m.spk_embed_dim is not None \
            or getattr(m, "use_gst", False):
        raise NotImplementedError(f"multi-speaker / multi-language / GST {what} is not "
                                  "exported yet")


def _export_fastspeech2(t2s, exp_dir: Path, out_dir: Path, gen: torch.Generator) -> dict:
    from bench.zoo.build_tts import load_vocoder

    tts = t2s.model.tts.eval()  # our own freshly loaded copy: changed in place
    _check_single_speaker(tts, "FastSpeech2")
    rewrites = _rewrite(tts)
    acoustic = FastSpeech2Graph(tts, t2s.model.normalize).eval()
    vocoder = load_vocoder(exp_dir)
    meta = _export_mel_pair(tts, acoustic, vocoder.generator.eval(), out_dir, gen)
    return {"kind": "fastspeech2", "sample_rate": int(vocoder.fs or t2s.fs),
            "module_rewrites": rewrites, **meta}


def _export_joint(t2s, out_dir: Path, gen: torch.Generator) -> dict:
    """JointText2Wav: its text2mel FastSpeech2 and its HiFiGAN generator. ESPnet feeds the
    vocoder the text2mel's feat_gen as it is (normalised features, no inverse MVN)."""
    joint = t2s.model.tts.eval()  # our own freshly loaded copy: changed in place
    tts = joint.generator["text2mel"]
    if type(tts).__name__ != "FastSpeech2":
        raise NotImplementedError(f"joint_text2wav with text2mel {type(tts).__name__}: only "
                                  "fastspeech2 is exported")
    vocoder = joint.generator["vocoder"]
    if type(vocoder).__name__ != "HiFiGANGenerator" or joint.use_pqmf:
        raise NotImplementedError(f"joint_text2wav with vocoder {type(vocoder).__name__}"
                                  f"{' + PQMF' if joint.use_pqmf else ''}: only "
                                  "hifigan_generator is exported")
    _check_single_speaker(tts, "joint_text2wav")
    rewrites = _rewrite(tts)
    acoustic = FastSpeech2Graph(tts, None, denormalize=False).eval()
    meta = _export_mel_pair(tts, acoustic, vocoder.eval(), out_dir, gen)
    return {"kind": "joint_text2wav", "sample_rate": int(t2s.fs),
            "module_rewrites": rewrites, **meta}


# ---------------------------------------------------------------- JETS


class JetsGraph(torch.nn.Module):
    """JETSGenerator.inference without teacher forcing (batch 1, no padding: masks None)."""

    def __init__(self, generator):
        super().__init__()
        self.g = generator
        self.delta = float(generator.length_regulator.delta)

    def forward(self, text):
        m = self.g
        hs, _ = m.encoder(text, None)
        p_outs = m.pitch_predictor(hs, None)
        e_outs = m.energy_predictor(hs, None)
        d = m.duration_predictor.inference(hs, None)  # (1, T_text) int64
        p_embs = m.pitch_embed(p_outs.transpose(1, 2)).transpose(1, 2)
        e_embs = m.energy_embed(e_outs.transpose(1, 2)).transpose(1, 2)
        hs = hs + e_embs + p_embs
        # GaussianUpsampling: an all-zero duration row becomes all ones
        d = torch.where(d.sum() == 0, torch.ones_like(d), d)
        frames = torch.arange(d.sum())  # traced with the sum as a graph value: dynamic
        hs = gaussian_upsample(hs, d, frames, self.delta)
        zs, _ = m.decoder(hs, None)
        return m.generator(zs.transpose(1, 2)).flatten(1), d


def _export_jets(t2s, out_dir: Path, gen: torch.Generator) -> dict:
    generator = t2s.model.tts.generator.eval()  # our own freshly loaded copy: changed in place
    _check_single_speaker(generator, "JETS")
    if type(generator.length_regulator).__name__ != "GaussianUpsampling":
        raise NotImplementedError(f"JETS length regulator {type(generator.length_regulator)}")
    rewrites = _rewrite(generator)
    folded = strip_weight_norm(generator.generator)
    graph = JetsGraph(generator).eval()
    vocab = int(generator.idim)
    text = torch.randint(2, vocab - 1, (1, 17), generator=gen)
    with torch.no_grad():
        torch.onnx.export(
            graph, (text,), str(out_dir / "jets.onnx"), dynamo=False, opset_version=OPSET,
            input_names=["text"], output_names=["wave", "durations"],
            dynamic_axes={"text": {1: "tokens"}, "wave": {1: "samples"},
                          "durations": {1: "tokens"}})
    att = generator.encoder.encoders[0].self_attn
    return {
        "kind": "jets", "graphs": ["jets.onnx"], "sample_rate": int(t2s.fs),
        "hop_length": generator.upsample_factor, "num_heads": att.h,
        "d_model": att.d_k * att.h, "n_mels": int(generator.odim), "eos": None,
        "vocab_size": vocab, "module_rewrites": rewrites, "weight_norm_folded": folded,
        "inputs": {"jets.onnx": ["text"]},
    }


# ---------------------------------------------------------------- VITS


class VitsGraph(torch.nn.Module):
    """VITSGenerator.inference with given durations and given flow noise (batch 1)."""

    def __init__(self, generator):
        super().__init__()
        self.g = generator

    def forward(self, text, durations, noise, noise_scale):
        enc = self.g.text_encoder
        x = enc.emb(text) * math.sqrt(enc.attention_dim)
        x_mask = torch.ones_like(x[:, :, 0])[:, None, :]  # (1, 1, T_text), from the shape
        x, _ = enc.encoder(x, x_mask)
        stats = enc.proj(x.transpose(1, 2)) * x_mask
        m_p, logs_p = stats.split(stats.size(1) // 2, dim=1)
        frames = torch.ones_like(noise[0, 0], dtype=torch.int64).cumsum(0) - 1  # 0..T_feats-1
        m_p = expand_by_durations(m_p.transpose(1, 2), durations, frames).transpose(1, 2)
        logs_p = expand_by_durations(logs_p.transpose(1, 2), durations, frames).transpose(1, 2)
        z_p = m_p + noise * torch.exp(logs_p) * noise_scale
        y_mask = torch.ones_like(noise[:, :1])
        z = self.g.flow(z_p, y_mask, g=None, inverse=True)
        return self.g.decoder(z * y_mask, g=None).flatten(1)


def _export_vits(t2s, out_dir: Path, decode: dict, gen: torch.Generator) -> dict:
    if "token_frames" not in decode:  # the runtimes need it; say so at export, not later
        raise NotImplementedError("VITS export needs decode.token_frames: the stochastic "
                                  "duration predictor is not exported")
    vits = t2s.model.tts
    generator = vits.generator.eval()  # our own freshly loaded copy: changed in place
    if generator.spks is not None or generator.spk_embed_dim is not None \
            or generator.langs is not None:
        raise NotImplementedError("multi-speaker / multi-language VITS is not exported yet")
    rewrites = _rewrite(generator)
    folded = strip_weight_norm(generator)
    graph = VitsGraph(generator).eval()
    channels = generator.text_encoder.proj.out_channels // 2
    n = 13
    vocab = generator.text_encoder.emb.num_embeddings
    text = torch.randint(2, vocab - 1, (1, n), generator=gen)
    durations = torch.randint(1, 9, (1, n), generator=gen)
    noise = torch.randn(1, channels, int(durations.sum()), generator=gen)
    with torch.no_grad():
        torch.onnx.export(
            graph, (text, durations, noise, torch.full((1,), 0.667)), str(out_dir / "vits.onnx"),
            dynamo=False, opset_version=OPSET,
            input_names=["text", "durations", "noise", "noise_scale"], output_names=["wave"],
            dynamic_axes={"text": {1: "tokens"}, "durations": {1: "tokens"},
                          "noise": {2: "frames"}, "wave": {1: "samples"}})
    att = generator.text_encoder.encoder.encoders[0].self_attn
    return {
        "kind": "vits", "graphs": ["vits.onnx"], "sample_rate": int(t2s.fs),
        "hop_length": generator.decoder.upsample_factor, "num_heads": att.h,
        "d_model": att.d_k * att.h, "noise_channels": channels, "eos": None,
        "vocab_size": int(vocab), "module_rewrites": rewrites,
        "weight_norm_folded": folded,
        "inputs": {"vits.onnx": ["text", "durations", "noise", "noise_scale"]},
    }


# ---------------------------------------------------------------- Tacotron 2 + HiFiGAN


@torch.jit.script
def _lstm_direction(xw: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
    """One LSTM direction over time, the input projection (T, 4H) given: an ONNX Loop."""
    hsz = w_hh.size(1)
    h = torch.zeros(1, hsz, dtype=xw.dtype)
    c = torch.zeros(1, hsz, dtype=xw.dtype)
    outs: list[torch.Tensor] = []
    for t in range(xw.size(0)):
        g = xw[t:t + 1] + torch.matmul(h, w_hh.t())
        ig, fg, gg, og = g.chunk(4, 1)
        c = torch.sigmoid(fg) * c + torch.sigmoid(ig) * torch.tanh(gg)
        h = torch.sigmoid(og) * torch.tanh(c)
        outs.append(h)
    return torch.cat(outs, 0)


def blstm_as_loops(blstm: torch.nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """torch.nn.LSTM (bidirectional, batch_first, batch 1) as two ONNX Loops a layer instead of
    ONNX's LSTM op, which ORT cannot run in float16 on CPU (the onnx-fp16 variant's check
    crashed the process creating the session). Same gates, same order as torch's: (1, T, 2H)."""
    y = x[0]
    rev = torch.flip(torch.arange(y.size(0)), [0])
    for k in range(blstm.num_layers):
        outs = []
        for sfx in ("", "_reverse"):
            w_ih = getattr(blstm, f"weight_ih_l{k}{sfx}")
            w_hh = getattr(blstm, f"weight_hh_l{k}{sfx}")
            bias = getattr(blstm, f"bias_ih_l{k}{sfx}") + getattr(blstm, f"bias_hh_l{k}{sfx}") \
                if blstm.bias else 0.0
            xw = torch.matmul(y, w_ih.t()) + bias
            if sfx:
                outs.append(_lstm_direction(xw.index_select(0, rev), w_hh).index_select(0, rev))
            else:
                outs.append(_lstm_direction(xw, w_hh))
        y = torch.cat(outs, 1)
    return y[None]


class Tacotron2EncoderGraph(torch.nn.Module):
    """Encoder.inference for one utterance (no padding, so no packing) + AttLoc's mlp_enc."""

    def __init__(self, tts):
        super().__init__()
        self.enc, self.att = tts.enc, tts.dec.att

    def forward(self, text):
        e = self.enc
        xs = e.embed(text).transpose(1, 2)
        if e.convs is not None:
            for conv in e.convs:
                xs = xs + conv(xs) if e.use_residual else conv(xs)
        xs = xs.transpose(1, 2)
        if e.blstm is not None:
            xs = blstm_as_loops(e.blstm, xs)
        return xs, self.att.mlp_enc(xs)


class Tacotron2StepGraph(torch.nn.Module):
    """One step of Decoder.inference (AttLoc, zoneout LSTMs in eval mode, prenet without
    dropout), ESPnet's ops in ESPnet's order; the loop and its stop rules are the runtime's."""

    def __init__(self, dec):
        super().__init__()
        self.dec = dec

    def forward(self, enc, enc_proj, z, c, prev_out, att_prev, att_bias):
        d, att = self.dec, self.dec.att
        t = enc.size(1)
        att_conv = att.loc_conv(att_prev.view(1, 1, 1, t)).squeeze(2).transpose(1, 2)
        att_conv = att.mlp_att(att_conv)
        dec_z = att.mlp_dec(z[0]).view(1, 1, att.att_dim)
        e = att.gvec(torch.tanh(att_conv + enc_proj + dec_z)).squeeze(2)
        e = e + att_bias  # ESPnet writes -inf outside the constraint window; 0 elsewhere
        w = torch.softmax(2.0 * e, dim=1)  # AttLoc's scaling 2.0
        att_c = torch.sum(enc * w.view(1, t, 1), dim=1)
        x = prev_out
        if d.prenet is not None:
            for layer in d.prenet.prenet:  # Linear + ReLU; dropout is 0 (checked at export)
                x = layer(x)
        xs = torch.cat([att_c, x], dim=1)
        zs, cs = [], []
        inp = xs
        for i, lstm in enumerate(d.lstm):
            zi, ci = lstm(inp, (z[i], c[i]))
            zs.append(zi)
            cs.append(ci)
            inp = zi
        zcs = torch.cat([zs[-1], att_c], dim=1) if d.use_concate else zs[-1]
        frames = d.feat_out(zcs).view(1, d.odim, -1)
        prob = torch.sigmoid(d.prob_out(zcs))
        return frames, prob, w, torch.stack(zs), torch.stack(cs)


class Tacotron2PostnetGraph(torch.nn.Module):
    """before (1, odim, T_feats) -> before + postnet(before), (1, T_feats, odim), denormalised."""

    def __init__(self, dec, normalize):
        super().__init__()
        self.postnet = dec.postnet
        _register_inverse_mvn(self, normalize, dec.odim)

    def forward(self, before):
        after = before + self.postnet(before) if self.postnet is not None else before
        return after.transpose(2, 1) * self.mel_std + self.mel_mean


def _check_tacotron2(tts) -> None:
    _check_single_speaker(tts, "Tacotron 2")
    dec = tts.dec
    if type(dec.att).__name__ != "AttLoc":
        raise NotImplementedError(f"Tacotron 2 attention {type(dec.att).__name__}: only "
                                  "tts_conf.atype 'location' is exported")
    if tts.output_activation_fn is not None:
        raise NotImplementedError("Tacotron 2 with tts_conf.output_activation: not exported")
    if dec.prenet is not None and dec.prenet.dropout_rate != 0.0:
        raise NotImplementedError(
            f"Tacotron 2 prenet dropout {dec.prenet.dropout_rate}: ESPnet applies it at inference "
            "too (random masks a graph cannot reproduce); set tts_conf.dropout_rate to 0")
    blstm = tts.enc.blstm
    if blstm is not None and (not blstm.bidirectional or not blstm.batch_first
                              or blstm.proj_size or type(blstm) is not torch.nn.LSTM):
        raise NotImplementedError("Tacotron 2 encoder RNN other than ESPnet's BLSTM")
    if any(type(cell).__name__ not in ("LSTMCell", "ZoneOutCell") for cell in dec.lstm):
        raise NotImplementedError("Tacotron 2 decoder cells other than (zoneout) LSTMCell")


def _export_tacotron2(t2s, exp_dir: Path, out_dir: Path, gen: torch.Generator) -> dict:
    from bench.zoo.build_tts import load_vocoder

    tts = t2s.model.tts.eval()  # our own freshly loaded copy
    _check_tacotron2(tts)
    dec = tts.dec
    enc_graph = Tacotron2EncoderGraph(tts).eval()
    step_graph = Tacotron2StepGraph(dec).eval()
    post_graph = Tacotron2PostnetGraph(dec, t2s.model.normalize).eval()
    generator = load_vocoder(exp_dir).generator.eval()
    folded = strip_weight_norm(generator)
    voc_graph = HiFiGANGraph(generator).eval()
    n = 17
    text = torch.randint(2, tts.eos, (1, n), generator=gen)
    text = torch.cat([text, torch.full((1, 1), tts.eos)], dim=1)
    dlayers, dunits = len(dec.lstm), dec.lstm[0].hidden_size
    with torch.no_grad():
        enc, enc_proj = enc_graph(text)
        t = enc.size(1)
        z = torch.randn(dlayers, 1, dunits, generator=gen)
        c = torch.randn(dlayers, 1, dunits, generator=gen)
        prev_out = torch.randn(1, dec.odim, generator=gen)
        att_prev = torch.full((1, t), 1.0 / t)
        att_bias = torch.zeros(1, t)
        before = torch.randn(1, dec.odim, 23, generator=gen)
        mel = post_graph(before)
        torch.onnx.export(
            enc_graph, (text,), str(out_dir / "encoder.onnx"), dynamo=False,
            opset_version=OPSET, input_names=["text"], output_names=["enc", "enc_proj"],
            dynamic_axes={"text": {1: "tokens"}, "enc": {1: "tokens"}, "enc_proj": {1: "tokens"}})
        torch.onnx.export(
            step_graph, (enc, enc_proj, z, c, prev_out, att_prev, att_bias),
            str(out_dir / "decoder.onnx"), dynamo=False, opset_version=OPSET,
            input_names=["enc", "enc_proj", "z", "c", "prev_out", "att_prev", "att_bias"],
            output_names=["frames", "prob", "att_w", "z_out", "c_out"],
            dynamic_axes={"enc": {1: "tokens"}, "enc_proj": {1: "tokens"},
                          "att_prev": {1: "tokens"}, "att_bias": {1: "tokens"},
                          "att_w": {1: "tokens"}})
        _export_postnet_and_vocoder(post_graph, voc_graph, before, mel, out_dir)
    vocoder = load_vocoder(exp_dir)
    return {
        "kind": "tacotron2",
        "graphs": ["encoder.onnx", "decoder.onnx", "postnet.onnx", "vocoder.onnx"],
        "sample_rate": int(vocoder.fs or t2s.fs), "hop_length": generator.upsample_factor,
        # no multi-head attention to fuse: 0 lets the optimizer find none
        "num_heads": 0, "d_model": 0,
        "n_mels": int(dec.odim), "eos": int(tts.eos), "vocab_size": int(tts.idim),
        "dlayers": dlayers, "dunits": int(dunits), "enc_dim": int(enc.size(2)),
        "att_dim": int(dec.att.att_dim), "reduction_factor": int(dec.reduction_factor),
        "cumulate_att_w": bool(dec.cumulate_att_w), "weight_norm_folded": folded,
        "module_rewrites": 0,
        # decoder.onnx is called once a frame: what a calibration recorder samples from
        "step_graphs": ["decoder.onnx"],
        # inputs without a time axis (the decoder's carried state)
        "state_inputs": {"decoder.onnx": ["z", "c", "prev_out"]},
        "inputs": {"encoder.onnx": ["text"],
                   "decoder.onnx": ["enc", "enc_proj", "z", "c", "prev_out", "att_prev",
                                    "att_bias"],
                   "postnet.onnx": ["before"], "vocoder.onnx": ["mel"]},
    }


def _export_postnet_and_vocoder(post_graph, voc_graph, before, mel, out_dir: Path) -> None:
    """The autoregressive models' last two graphs: postnet.onnx (frames before the postnet ->
    denormalised mel) and vocoder.onnx (mel -> wave)."""
    torch.onnx.export(
        post_graph, (before,), str(out_dir / "postnet.onnx"), dynamo=False,
        opset_version=OPSET, input_names=["before"], output_names=["mel"],
        dynamic_axes={"before": {2: "frames"}, "mel": {1: "frames"}})
    torch.onnx.export(
        voc_graph, (mel,), str(out_dir / "vocoder.onnx"), dynamo=False, opset_version=OPSET,
        input_names=["mel"], output_names=["wave"],
        dynamic_axes={"mel": {1: "frames"}, "wave": {1: "samples"}})


# ---------------------------------------------------------------- Transformer-TTS + HiFiGAN


class TransformerTTSEncoderGraph(torch.nn.Module):
    """Transformer.inference's encoder call for one utterance (masks None, as ESPnet's)."""

    def __init__(self, tts):
        super().__init__()
        self.encoder = tts.encoder

    def forward(self, text):
        hs, _ = self.encoder(text, None)
        return hs


class TransformerTTSStepGraph(torch.nn.Module):
    """One step of Transformer.inference: Decoder.forward_one_step with the layers' cache
    stacked, then feat_out and prob_out. ESPnet's causal mask is all ones in the one row a
    cached step uses, and it passes no memory mask, so no masks are needed; the layers are
    ESPnet's own modules, called as forward_one_step calls them."""

    def __init__(self, tts):
        super().__init__()
        self.tts = tts

    def forward(self, ys, enc, cache):
        m, d = self.tts, self.tts.decoder
        x = self._embed(ys)  # every frame so far, re-embedded as ESPnet does each step
        new_cache = []
        for i, layer in enumerate(d.decoders):
            x, _, _, _ = layer(x, None, enc, None, cache=cache[i])
            new_cache.append(x)
        z = d.after_norm(x[:, -1]) if d.normalize_before else x[:, -1]
        frames = m.feat_out(z).view(m.reduction_factor, m.odim).transpose(0, 1)[None]
        prob = torch.sigmoid(m.prob_out(z))
        return frames, prob, torch.stack(new_cache)

    def _embed(self, ys):
        emb = self.tts.decoder.embed
        prenet = _decoder_prenet(self.tts)
        if prenet is None:  # input_layer "linear": plain eval-mode modules
            return emb(ys)
        x = ys
        for layer in prenet.prenet:  # Linear + ReLU; its F.dropout is 0 (checked at export)
            x = layer(x)
        return emb[1](emb[0][1](x))  # the projection to adim, then the positional encoding


def _decoder_prenet(tts):
    """The decoder's Tacotron 2 Prenet (dropout on at inference), or None (dprenet_layers 0)."""
    first = tts.decoder.embed[0]
    if isinstance(first, torch.nn.Sequential) and type(first[0]).__name__ == "Prenet":
        return first[0]
    return None


def _check_transformer_tts(tts) -> None:
    _check_single_speaker(tts, "Transformer-TTS")
    prenet = _decoder_prenet(tts)
    if prenet is not None and prenet.dropout_rate != 0.0:
        raise NotImplementedError(
            f"Transformer-TTS decoder prenet dropout {prenet.dropout_rate}: ESPnet applies it at "
            "inference too (random masks a graph cannot reproduce); set "
            "tts_conf.dprenet_dropout_rate to 0")
    for layer in tts.decoder.decoders:
        if type(layer.self_attn).__name__ != "MultiHeadedAttention" \
                or getattr(layer, "sequential_attn", None) is not None:
            raise NotImplementedError("Transformer-TTS decoder layers other than ESPnet's "
                                      "self-attention + source-attention layer")


def _export_transformer_tts(t2s, exp_dir: Path, out_dir: Path, gen: torch.Generator) -> dict:
    from bench.zoo.build_tts import load_vocoder

    tts = t2s.model.tts.eval()  # our own freshly loaded copy: changed in place
    _check_transformer_tts(tts)
    rewrites = _rewrite(tts)
    enc_graph = TransformerTTSEncoderGraph(tts).eval()
    step_graph = TransformerTTSStepGraph(tts).eval()
    post_graph = Tacotron2PostnetGraph(tts, t2s.model.normalize).eval()  # same postnet, same MVN
    vocoder = load_vocoder(exp_dir)
    generator = vocoder.generator.eval()
    folded = strip_weight_norm(generator)
    voc_graph = HiFiGANGraph(generator).eval()
    att = tts.decoder.decoders[0].self_attn
    adim, dlayers = att.d_k * att.h, len(tts.decoder.decoders)
    text = torch.randint(2, tts.eos, (1, 17), generator=gen)
    text = torch.cat([text, torch.full((1, 1), tts.eos)], dim=1)
    steps = 7  # trace a step with a non-empty cache: its length stays symbolic
    with torch.no_grad():
        enc = enc_graph(text)
        ys = torch.randn(1, steps, tts.odim, generator=gen)
        cache = torch.randn(dlayers, 1, steps - 1, adim, generator=gen)
        before = torch.randn(1, tts.odim, 23, generator=gen)
        mel = post_graph(before)
        torch.onnx.export(
            enc_graph, (text,), str(out_dir / "encoder.onnx"), dynamo=False,
            opset_version=OPSET, input_names=["text"], output_names=["enc"],
            dynamic_axes={"text": {1: "tokens"}, "enc": {1: "tokens"}})
        torch.onnx.export(
            step_graph, (ys, enc, cache), str(out_dir / "decoder.onnx"), dynamo=False,
            opset_version=OPSET, input_names=["ys", "enc", "cache"],
            output_names=["frames", "prob", "cache_out"],
            dynamic_axes={"ys": {1: "length"}, "enc": {1: "tokens"}, "cache": {2: "cached"},
                          "cache_out": {2: "length"}})
        _export_postnet_and_vocoder(post_graph, voc_graph, before, mel, out_dir)
    return {
        "kind": "transformer",
        "graphs": ["encoder.onnx", "decoder.onnx", "postnet.onnx", "vocoder.onnx"],
        "sample_rate": int(vocoder.fs or t2s.fs), "hop_length": generator.upsample_factor,
        "num_heads": int(att.h), "d_model": int(adim),
        "n_mels": int(tts.odim), "eos": int(tts.eos), "vocab_size": int(tts.idim),
        "dlayers": dlayers, "reduction_factor": int(tts.reduction_factor),
        "weight_norm_folded": folded, "module_rewrites": rewrites,
        # decoder.onnx is called once a frame: what a calibration recorder samples from
        "step_graphs": ["decoder.onnx"],
        # the decoder's carried state has a time axis of its own (the cache's is axis 2)
        "state_inputs": {},
        "inputs": {"encoder.onnx": ["text"], "decoder.onnx": ["ys", "enc", "cache"],
                   "postnet.onnx": ["before"], "vocoder.onnx": ["mel"]},
    }


# ---------------------------------------------------------------- entry points


def export_tts(exp_dir: Path, out_dir: Path, decode: dict) -> dict:
    """Write the card's text -> wave graph(s) and out_dir/export.json; return the metadata.

    No decode setting is baked into a graph (alpha, durations, noise and noise_scale are
    inputs), so one export serves every decode setting; `decode` is only validated.
    """
    exp_dir, out_dir = Path(exp_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t2s = _load_tts(exp_dir)
    name = type(t2s.model.tts).__name__
    gen = torch.Generator().manual_seed(0)  # same trace inputs, same graphs, every build
    with warnings.catch_warnings(), linear_pad_masks():
        warnings.simplefilter("ignore")  # tracer warnings about Python asserts on shapes
        if name == "FastSpeech2":
            meta = _export_fastspeech2(t2s, exp_dir, out_dir, gen)
        elif name == "VITS":
            meta = _export_vits(t2s, out_dir, decode, gen)
        elif name == "JETS":
            meta = _export_jets(t2s, out_dir, gen)
        elif name == "JointText2Wav":
            meta = _export_joint(t2s, out_dir, gen)
        elif name == "Tacotron2":
            meta = _export_tacotron2(t2s, exp_dir, out_dir, gen)
        elif name == "Transformer":
            meta = _export_transformer_tts(t2s, exp_dir, out_dir, gen)
        else:
            raise NotImplementedError(f"{exp_dir}: TTS model {name} has no ONNX exporter yet")
    meta = {"exporter": EXPORTER_VERSION, "opset": OPSET, "torch": torch.__version__,
            **meta}
    (out_dir / "export.json").write_text(json.dumps(meta, indent=2))
    return meta


def check_feeds(meta: dict, tokens: int, rng: np.random.Generator) -> dict[str, dict]:
    """Inputs for the text-side graph at a given text length (random valid phoneme ids)."""
    text = rng.integers(2, meta["vocab_size"] - 1, (1, tokens)).astype(np.int64)
    if meta["kind"] in MEL_KINDS:
        return {"acoustic.onnx": {"text": text, "alpha": np.ones(1, np.float32)}}
    if meta["kind"] == "jets":
        return {"jets.onnx": {"text": text}}
    if meta["kind"] in AR_KINDS:
        text[0, -1] = meta["eos"]
        return {"encoder.onnx": {"text": text}}
    durations = rng.integers(1, 9, (1, tokens)).astype(np.int64)
    noise = rng.standard_normal((1, meta["noise_channels"], int(durations.sum())),
                                dtype=np.float32)
    return {"vits.onnx": {"text": text, "durations": durations, "noise": noise,
                          "noise_scale": np.full(1, 0.667, np.float32)}}


def vocoder_feed(mel: np.ndarray, tokens: int, frames_per_token: int = 6) -> dict:
    """The plain acoustic model's mel, tiled in time to `tokens` x 6 frames: the seeded
    weights predict only a few frames for random ids, too few to exercise the vocoder."""
    frames = max(mel.shape[1], tokens * frames_per_token)
    reps = -(-frames // max(mel.shape[1], 1))
    return {"mel": np.ascontiguousarray(np.tile(mel, (1, reps, 1))[:, :frames])}


def _derived_feed(meta: dict, graph: str, plain_out: dict, tokens: int,
                  rng: np.random.Generator) -> dict:
    """A graph's check input made from the plain graphs' outputs before it: the vocoder's mel;
    a decoder step at a random state on the plain encoder's output (attention constrained
    to a window in the middle); the postnet's random frames."""
    if graph == "vocoder.onnx":
        src = "postnet.onnx" if "postnet.onnx" in plain_out else "acoustic.onnx"
        return vocoder_feed(plain_out[src][0], tokens)
    if graph == "decoder.onnx" and meta["kind"] == "transformer":
        # a step at a random point of the decode: L-1 frames done, their random cache
        enc = plain_out["encoder.onnx"][0]
        length = 1 + tokens // 2
        return {"ys": rng.standard_normal((1, length, meta["n_mels"])).astype(np.float32),
                "enc": enc,
                "cache": rng.standard_normal((meta["dlayers"], 1, length - 1, meta["d_model"]))
                .astype(np.float32)}
    if graph == "decoder.onnx":
        enc, enc_proj = plain_out["encoder.onnx"][:2]
        t = enc.shape[1]
        state = (meta["dlayers"], 1, meta["dunits"])
        att_prev = rng.random((1, t)).astype(np.float32)
        bias = np.full((1, t), -np.inf, np.float32)
        bias[:, max(t // 2 - 1, 0):t // 2 + 3] = 0.0
        return {"enc": enc, "enc_proj": enc_proj,
                "z": (0.5 * rng.standard_normal(state)).astype(np.float32),
                "c": (0.5 * rng.standard_normal(state)).astype(np.float32),
                "prev_out": rng.standard_normal((1, meta["n_mels"])).astype(np.float32),
                "att_prev": att_prev / att_prev.sum(), "att_bias": bias}
    if graph == "postnet.onnx":
        return {"before": rng.standard_normal((1, meta["n_mels"], tokens * 6))
                .astype(np.float32)}
    raise ValueError(f"no check input for {graph}")


def check_tts_variant(plain_dir: Path, variant_dir: Path, meta: dict, atol: float | None) -> dict:
    """Run each graph of a derived variant against the plain export at CHECK_TOKENS lengths.

    Each graph gets the plain pipeline's inputs (the vocoder a mel from the plain acoustic
    model), so a difference is that graph's own. Raises VariantCheckError naming the file and
    the length; returns the max abs differences (and any output length differences).
    """
    plain_dir, variant_dir = Path(plain_dir), Path(variant_dir)
    plain = {g: check_session(plain_dir / g) for g in meta["graphs"]}
    variant = {}
    for g in meta["graphs"]:
        try:
            variant[g] = check_session(variant_dir / g)
        except Exception as e:
            raise VariantCheckError(f"{variant_dir / g}: cannot load: "
                                    f"{str(e).strip().splitlines()[-1][:200]}") from e
    rng = np.random.default_rng(0)
    diffs, frames = {}, {}
    for n in CHECK_TOKENS:
        feeds = check_feeds(meta, n, rng)
        plain_out = {}
        for g in meta["graphs"]:
            if g not in feeds:  # a graph fed by the one before it
                feeds[g] = _derived_feed(meta, g, plain_out, n, rng)
            want = plain_out[g] = plain[g].run(None, feeds[g])
            try:
                got = variant[g].run(None, feeds[g])
            except Exception as e:
                raise VariantCheckError(f"{variant_dir / g}: fails on {n} tokens: "
                                        f"{str(e).strip().splitlines()[-1][:200]}") from e
            key = f"{g}_{n}tok"
            diffs[key], moved = compare_outputs(f"{variant_dir / g} ({n} tokens)", got, want, atol,
                                                length_axis=1)
            if moved:
                frames[key] = moved
    return {"max_abs_diff": {k: float(f"{v:.3g}") for k, v in diffs.items()},
            "length_diff_frames": frames, "atol": atol}

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
OPSET = 17
CHECK_TOKENS = (5, 23, 71)


# ---------------------------------------------------------------- shared pieces


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

    def __init__(self, fs2, normalize):
        super().__init__()
        self.fs2 = fs2
        # GlobalMVN.inverse: x * std (norm_vars) + mean (norm_means), in float32
        dim = fs2.odim
        std = normalize.std if normalize is not None and normalize.norm_vars else torch.ones(dim)
        mean = normalize.mean if normalize is not None and normalize.norm_means \
            else torch.zeros(dim)
        self.register_buffer("mel_std", std.detach().float().clone())
        self.register_buffer("mel_mean", mean.detach().float().clone())

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
        return after * self.mel_std + self.mel_mean, d


class HiFiGANGraph(torch.nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, mel):
        return self.generator(mel.transpose(1, 2)).flatten(1)  # (1, T_feats x hop)


def _export_fastspeech2(t2s, exp_dir: Path, out_dir: Path, gen: torch.Generator) -> dict:
    from bench.zoo.build_tts import load_vocoder

    tts = t2s.model.tts.eval()  # our own freshly loaded copy: changed in place
    if tts.spks is not None or tts.langs is not None or tts.spk_embed_dim is not None \
            or tts.use_gst:
        raise NotImplementedError("multi-speaker / GST FastSpeech2 is not exported yet")
    rewrites = _rewrite(tts)
    acoustic = FastSpeech2Graph(tts, t2s.model.normalize).eval()
    vocoder = load_vocoder(exp_dir)
    generator = vocoder.generator.eval()
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
        "kind": "fastspeech2", "graphs": ["acoustic.onnx", "vocoder.onnx"],
        "sample_rate": int(vocoder.fs or t2s.fs), "hop_length": generator.upsample_factor,
        "num_heads": att.h, "d_model": att.d_k * att.h,
        "n_mels": tts.odim, "eos": int(tts.eos), "vocab_size": int(tts.idim),
        "module_rewrites": rewrites,
        "weight_norm_folded": folded,
        "inputs": {"acoustic.onnx": ["text", "alpha"], "vocoder.onnx": ["mel"]},
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
        else:
            raise NotImplementedError(f"{exp_dir}: TTS model {name} has no ONNX exporter yet")
    meta = {"exporter": EXPORTER_VERSION, "opset": OPSET, "torch": torch.__version__,
            **meta}
    (out_dir / "export.json").write_text(json.dumps(meta, indent=2))
    return meta


def check_feeds(meta: dict, tokens: int, rng: np.random.Generator) -> dict[str, dict]:
    """Inputs for the text-side graph at a given text length (random valid phoneme ids)."""
    text = rng.integers(2, meta["vocab_size"] - 1, (1, tokens)).astype(np.int64)
    if meta["kind"] == "fastspeech2":
        return {"acoustic.onnx": {"text": text, "alpha": np.ones(1, np.float32)}}
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
            if g not in feeds:  # the vocoder
                feeds[g] = vocoder_feed(plain_out["acoustic.onnx"][0], n)
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

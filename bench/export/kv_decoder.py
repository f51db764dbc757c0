"""A decoder step that does not recompute: keys and values cached, cross-attention's once.

ESPnet's `forward_one_step` (and the plain `decoder.onnx`, which exports it faithfully) caches
each layer's *output* and, at every step, recomputes the self-attention keys and values of the
whole prefix and the cross-attention keys and values of the whole encoder output, for every
beam. On the paper-size conformer that recomputation was ~80% of the end-to-end time. Here:

cross_kv.onnx  : enc (1, T, D) -> cross_k_i (H, d_k, T), cross_v_i (H, T, d_k) for each layer i
                 run once per utterance, batch 1: the beams share the encoder output
decoder.onnx   : ys (B, L) int64 (only the last token is read), self_k_i, self_v_i (B, H, L-1, d_k)
                 the prefix's self-attention keys and values, cross_k_i, cross_v_i
                 -> logp (B, V), new_self_k_i, new_self_v_i (B, H, L, d_k)

Every layer's tensors are inputs and outputs of their own: stacked into one tensor, ORT
split and re-stacked them at every step, copying the cross keys and values each time (a
quarter of the step's time). Norms, linears, feed-forward and embedding are ESPnet's own
modules; only the attention arithmetic is written out (same operations, fewer of them).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from bench.export.rewrites import _div_term, _interleave_sin_cos

KV_GRAPHS = ("cross_kv.onnx", "decoder_kv.onnx")


class UnsupportedDecoder(ValueError):
    """A decoder whose layers this step does not reproduce (it then keeps the plain step)."""


def check_supported(decoder) -> None:
    from bench.espnet_layout import nets
    from bench.export.rewrites import InGraphPositionalEncoding, PositionalEncoding

    MultiHeadedAttention = nets("pytorch_backend.transformer.attention").MultiHeadedAttention

    name = type(decoder).__name__
    if not hasattr(decoder, "decoders") or not hasattr(decoder, "embed"):
        raise UnsupportedDecoder(f"{name}: not a transformer decoder")
    pos = decoder.embed[1] if isinstance(decoder.embed, torch.nn.Sequential) and len(decoder.embed) == 2 else None
    if not isinstance(pos, (PositionalEncoding, InGraphPositionalEncoding)) or \
            not isinstance(decoder.embed[0], torch.nn.Embedding):
        raise UnsupportedDecoder(f"{name}: embedding is not Embedding + absolute PositionalEncoding")
    for i, layer in enumerate(decoder.decoders):
        problems = [what for what, bad in (
            ("concat_after", getattr(layer, "concat_after", True)),
            ("sequential_attn", getattr(layer, "sequential_attn", None) is not None),
            ("self_attn type", type(layer.self_attn) is not MultiHeadedAttention),
            ("src_attn type", type(layer.src_attn) is not MultiHeadedAttention),
            ("qk_norm", not isinstance(layer.self_attn.q_norm, torch.nn.Identity)
             or not isinstance(layer.src_attn.q_norm, torch.nn.Identity)),
        ) if bad]
        if problems:
            raise UnsupportedDecoder(f"{name} layer {i}: {', '.join(problems)} not supported")


class CrossKV(torch.nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.attns = torch.nn.ModuleList(layer.src_attn for layer in decoder.decoders)

    def forward(self, enc):
        out = []
        for a in self.attns:
            t = enc.shape[1]
            out.append(a.linear_k(enc[0]).view(t, a.h, a.d_k).permute(1, 2, 0))  # (H, d_k, T)
            out.append(a.linear_v(enc[0]).view(t, a.h, a.d_k).transpose(0, 1))  # (H, T, d_k)
        return tuple(out)


class CachedDecoderStep(torch.nn.Module):
    def __init__(self, decoder):
        super().__init__()
        check_supported(decoder)
        self.decoder = decoder
        self.embed = decoder.embed[0]
        self.xscale = decoder.embed[1].xscale
        d_model = self.embed.embedding_dim
        self.register_buffer("div_term", _div_term(d_model), persistent=False)

    def _self_attn(self, a, x, k_cache, v_cache):
        b = x.shape[0]
        q = a.linear_q(x).view(b, a.h, 1, a.d_k)
        k = torch.cat([k_cache, a.linear_k(x).view(b, a.h, 1, a.d_k)], dim=2)  # (B, H, L, d_k)
        v = torch.cat([v_cache, a.linear_v(x).view(b, a.h, 1, a.d_k)], dim=2)
        att = torch.softmax(torch.matmul(q, k.transpose(2, 3)) / math.sqrt(a.d_k), dim=-1)
        return a.linear_out(torch.matmul(att, v).view(b, a.h * a.d_k)), k, v

    @staticmethod
    def _cross_attn(a, x, k, v):
        b = x.shape[0]
        q = a.linear_q(x).view(b, a.h, a.d_k).transpose(0, 1)  # (H, B, d_k): one GEMM a head
        att = torch.softmax(torch.matmul(q, k) / math.sqrt(a.d_k), dim=-1)  # (H, B, T)
        return a.linear_out(torch.matmul(att, v).transpose(0, 1).reshape(b, a.h * a.d_k))

    def forward(self, ys, *caches):
        """caches: self_k_0, self_v_0, ..., then cross_k_0, cross_v_0, ..."""
        d = self.decoder
        n = len(d.decoders)
        cache, cross = caches[:2 * n], caches[2 * n:]
        # position of the new token = length of the cache, read from its shape
        pos = torch.ones_like(cache[0][0, 0, :, 0]).sum()
        x = self.embed(ys[:, -1]) * self.xscale
        # expanded to x's shape: a broadcast 1-D operand is one ORT's SkipLayerNorm fusion mishandles
        x = x + _interleave_sin_cos(pos * self.div_term).expand_as(x)
        new_cache = []
        for i, layer in enumerate(d.decoders):
            residual = x
            h = layer.norm1(x) if layer.normalize_before else x
            att, k, v = self._self_attn(layer.self_attn, h, cache[2 * i], cache[2 * i + 1])
            x = residual + att
            if not layer.normalize_before:
                x = layer.norm1(x)
            residual = x
            h = layer.norm2(x) if layer.normalize_before else x
            x = residual + self._cross_attn(layer.src_attn, h, cross[2 * i], cross[2 * i + 1])
            if not layer.normalize_before:
                x = layer.norm2(x)
            residual = x
            h = layer.norm3(x) if layer.normalize_before else x
            x = residual + layer.feed_forward(h)
            if not layer.normalize_before:
                x = layer.norm3(x)
            new_cache += [k, v]
        y = d.after_norm(x) if d.normalize_before else x
        return (torch.log_softmax(d.output_layer(y), dim=-1), *new_cache)


def kv_names(n_layers: int, prefix: str) -> list[str]:
    return [f"{prefix}{kv}_{i}" for i in range(n_layers) for kv in "kv"]


def export_kv_decoder(decoder, enc: torch.Tensor, out_dir: Path, opset: int,
                      gen: torch.Generator) -> dict:
    """Write cross_kv.onnx and decoder_kv.onnx; return what the runtime needs to know."""
    step = CachedDecoderStep(decoder).eval()
    cross = CrossKV(decoder).eval()
    a = decoder.decoders[0].self_attn
    n_layers, heads, d_k = len(decoder.decoders), a.h, a.d_k
    cross_names, self_names = kv_names(n_layers, "cross_"), kv_names(n_layers, "self_")
    new_names = kv_names(n_layers, "new_self_")
    cross_axes = {name: {2 if name.startswith("cross_k") else 1: "frames"} for name in cross_names}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cross, (enc,), str(out_dir / "cross_kv.onnx"), dynamo=False,
                          opset_version=opset, input_names=["enc"], output_names=cross_names,
                          dynamic_axes={"enc": {1: "frames"}, **cross_axes})
        cross_kv = cross(enc)
        beams, length = 3, 4
        ys = torch.randint(1, step.embed.num_embeddings - 1, (beams, length), generator=gen)
        cache = [torch.randn(beams, heads, length - 1, d_k, generator=gen) for _ in self_names]
        torch.onnx.export(step, (ys, *cache, *cross_kv), str(out_dir / "decoder_kv.onnx"),
                          dynamo=False, opset_version=opset,
                          input_names=["ys", *self_names, *cross_names],
                          output_names=["logp", *new_names],
                          dynamic_axes={"ys": {0: "beams", 1: "length"}, "logp": {0: "beams"},
                                        **{c: {0: "beams", 2: "cached"} for c in self_names},
                                        **{c: {0: "beams", 2: "length"} for c in new_names},
                                        **cross_axes})
    return {"n_layers": n_layers, "heads": heads, "d_k": d_k, "graphs": list(KV_GRAPHS)}

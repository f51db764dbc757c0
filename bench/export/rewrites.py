"""Module rewrites that make ESPnet modules export without a length cap.

ESPnet's positional encodings precompute a table for `max_len` positions and grow it in
Python when an input is longer. A traced graph freezes that table, so inputs longer
than it fail or silently misbehave. The replacements compute the same sinusoids from the
input's own length inside the graph, with the same float32 arithmetic.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from bench.espnet_layout import nets

_embedding = nets("pytorch_backend.transformer.embedding")
PositionalEncoding, RelPositionalEncoding = _embedding.PositionalEncoding, _embedding.RelPositionalEncoding


def _div_term(d_model: int) -> torch.Tensor:
    return torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                     * -(math.log(10000.0) / d_model))


def _interleave_sin_cos(angles: torch.Tensor) -> torch.Tensor:
    # pe[:, 0::2] = sin, pe[:, 1::2] = cos, as ESPnet lays them out
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(-2)


class InGraphPositionalEncoding(torch.nn.Module):
    """Same output as ESPnet's PositionalEncoding (absolute, not reversed)."""

    def __init__(self, orig: PositionalEncoding):
        super().__init__()
        self.xscale = orig.xscale
        self.register_buffer("div_term", _div_term(orig.d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        position = torch.ones_like(x[0, :, 0]).cumsum(0) - 1.0  # 0..T-1, T from the input
        pe = _interleave_sin_cos(position[:, None] * self.div_term)
        return x * self.xscale + pe[None]


class InGraphRelPositionalEncoding(torch.nn.Module):
    """Same output as ESPnet's RelPositionalEncoding ('latest'): positions T-1 .. -(T-1)."""

    def __init__(self, orig: RelPositionalEncoding):
        super().__init__()
        self.xscale = orig.xscale
        self.register_buffer("div_term", _div_term(orig.d_model), persistent=False)

    def forward(self, x: torch.Tensor):
        t = torch.ones_like(x[0, :, 0]).sum()
        steps = torch.ones_like(torch.cat([x[0, :, 0], x[0, 1:, 0]])).cumsum(0)  # 1..2T-1
        rel = t - steps  # T-1 down to -(T-1)
        pe = _interleave_sin_cos(rel[:, None] * self.div_term)
        return x * self.xscale, pe[None]


NARROW = 16  # layer norms over fewer features than this are written out (TwoPassLayerNorm)


class TwoPassLayerNorm(torch.nn.Module):
    """A layer norm written out as mean, then the mean square of the deviations.

    ONNX Runtime's LayerNormalization kernel takes the variance as E[x^2] - E[x]^2. Over a few
    features that are nearly equal (the 2-wide layers of ESPnet's debug recipes) it cancels to
    below zero, and with ESPnet's epsilon of 1e-12 the square root is NaN: 54% of near-equal
    pairs in a test, where torch's two-pass arithmetic stays finite. Only narrow layers are
    rewritten: real widths never come near it, and the fused kernel is faster."""

    def __init__(self, orig: torch.nn.LayerNorm):
        super().__init__()
        self.weight, self.bias, self.eps = orig.weight, orig.bias, orig.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - x.mean(-1, keepdim=True)
        y = d * torch.rsqrt((d * d).mean(-1, keepdim=True) + self.eps)
        if self.weight is not None:
            y = y * self.weight
        return y + self.bias if self.bias is not None else y


REWRITES = {
    PositionalEncoding: InGraphPositionalEncoding,
    RelPositionalEncoding: InGraphRelPositionalEncoding,
}


def _narrow_layer_norm(child: torch.nn.Module) -> bool:
    return isinstance(child, torch.nn.LayerNorm) and getattr(child, "dim", -1) == -1 and \
        len(child.normalized_shape) == 1 and child.normalized_shape[0] < NARROW


def rewrite_for_export(module: torch.nn.Module) -> int:
    """Swap every rewritable submodule in place (exact class match; narrow layer norms);
    returns the count."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            new_cls = REWRITES.get(type(child)) or (TwoPassLayerNorm if _narrow_layer_norm(child) else None)
            if new_cls is not None:
                setattr(parent, name, new_cls(child))
                count += 1
    return count


def _linear_pad_mask(lengths, xs, length_dim, maxlen=None):
    """ESPnet's traceable make_pad_mask, in memory linear in the length.

    ESPnet's version builds a (maxlen+1) x (maxlen+1) triangle and picks rows from it: at
    feature-frame rate that is 30,001^2 int64 values (7 GB) for 5 minutes of audio, made three
    times per encoder run (logmel, normalize, encoder). A position >= length comparison gives
    the same mask for every length >= 1 (a length of 0 is never traced).
    """
    if xs is not None and len(xs.shape) == 3:
        lengths = lengths.unsqueeze(1).expand(*(xs.transpose(1, 2) if length_dim == 1 else xs).shape[:2])
    if maxlen is None:
        maxlen = xs.shape[length_dim] if xs is not None else lengths.max()
    positions = torch.arange(maxlen, device=lengths.device)
    mask = positions >= torch.clamp(lengths, max=maxlen).long().unsqueeze(-1)
    return mask.transpose(1, 2) if xs is not None and len(xs.shape) == 3 and length_dim == 1 else mask


@contextmanager
def _swapped(owner, name: str, replace):
    """``owner.name`` set to ``replace(original)`` for the with-block, then restored."""
    original = getattr(owner, name)
    setattr(owner, name, replace(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def linear_pad_masks():
    """While exporting: ESPnet's make_pad_mask calls the linear version (it looks the
    traceable helper up in its own module, so replacing that name is enough)."""
    return _swapped(nets("pytorch_backend.nets_utils"), "_make_pad_mask_traceable",
                    lambda original: _linear_pad_mask)


def unpadded_attention():
    """While exporting the encoder of one utterance: attention without its padding mask.

    The encoder graph takes a single utterance and its lengths from the input's own shape, so
    the mask is all ones and ESPnet's two masked_fill calls change nothing; traced, they are two
    Where nodes over (heads, T, T) scores a layer, 11% of the SLU paper card's int8 encoder time.
    The parity check at export runs ESPnet's model with its masks."""

    def without_mask(original):
        return lambda self, value, scores, mask: original(self, value, scores, None)

    return _swapped(nets("pytorch_backend.transformer.attention").MultiHeadedAttention,
                    "forward_attention", without_mask)


def _rel_shift_unpadded(original):
    """ESPnet's rel_shift by indexing alone. ESPnet pads a zero column onto the (heads, T, 2T-1)
    position scores, views the copy as (2T, T) and drops its first row: one more copy of the
    layer's largest tensor (4 MB a layer on 15 s at 4 heads) than needed. The same element
    lands at out[i, j] = x[i, j + T - 1 - i], which in x's flattened rows of 2T - 1 is offset
    T - 1 + i (2T - 2) + j: a slice of the flat scores viewed as rows of 2T - 2."""

    def rel_shift(self, x):
        if self.zero_triu:
            return original(self, x)
        b, h, t, p = x.shape
        # 2T - 2, or 1 for a single frame (out is then x itself). A clamp, which the symbolic
        # shape inference of ORT's offline optimizer follows (it gave up on 1 // T, and then
        # fused no layer norms).
        width = torch.clamp(torch.as_tensor(p - 1), min=1)
        rows = x.reshape(b, h, t * p)[:, :, t - 1: t - 1 + t * width].reshape(b, h, t, width)
        return rows[:, :, :, : p // 2 + 1]

    return rel_shift


def unpadded_rel_shift():
    """While exporting: relative-position attention shifts its scores without the zero pad
    (``_rel_shift_unpadded``). Same values, one copy fewer a layer."""
    return _swapped(nets("pytorch_backend.transformer.attention").RelPositionMultiHeadedAttention,
                    "rel_shift", _rel_shift_unpadded)

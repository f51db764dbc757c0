"""Module rewrites that make ESPnet modules export without a length cap.

ESPnet's positional encodings precompute a table for `max_len` positions and grow it in
Python when an input is longer. A traced graph freezes that table, so inputs longer
than it fail or silently misbehave. The replacements compute the same sinusoids from the
input's own length inside the graph, with the same float32 arithmetic.
"""
from __future__ import annotations

import math

import torch
from espnet.nets.pytorch_backend.transformer.embedding import (
    PositionalEncoding,
    RelPositionalEncoding,
)


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


REWRITES = {
    PositionalEncoding: InGraphPositionalEncoding,
    RelPositionalEncoding: InGraphRelPositionalEncoding,
}


def rewrite_for_export(module: torch.nn.Module) -> int:
    """Swap every rewritable submodule in place (exact class match); returns the count."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            new_cls = REWRITES.get(type(child))
            if new_cls is not None:
                setattr(parent, name, new_cls(child))
                count += 1
    return count

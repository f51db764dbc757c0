"""Dynamic int8 for a graph's float convolutions, with a scale per output channel.

ORT's `quantize_dynamic` gives a Conv one weight scale for the whole kernel, which flipped more
tokens than the MatMuls' per-channel int8 (docs/figures.md), so onnx-int8 kept convolutions
float. Yet the subsampling's second convolution (3x3 over 256-512 channels) and the conformer's
pointwise convolutions are where an int8 encoder still spends float arithmetic. Here each such
Conv becomes

    x -> DynamicQuantizeLinear -> ConvInteger(x_q, W_q) -> Cast -> * (x_scale * w_scale[c]) (+ bias)

with W quantized symmetrically per output channel (its own max |w| / 127). The per-channel
scale is applied after the integer convolution, so ConvInteger itself needs one zero point:
ORT's CPU kernel takes uint8 weights only, hence W_q is stored shifted by 128.

Which convolutions: float weights stored in the graph, one group, no dilation, and at least
``min_in_channels`` input channels (the first subsampling convolution sees one channel of
log-mel features, the STFT one of samples: cheap, and their inputs' range is not a uint8 one).
Depthwise convolutions (groups = channels) stay float: they are a small share of the
arithmetic (31 multiply-adds an output against 256-512 for a pointwise one).

The int8 study's `onnx-int8-convs` uses it; `onnx-int8` does not: on the real LibriSpeech clips
it made the trained tiny ASR card flip ten times the tokens (docs/figures.md).
"""
from __future__ import annotations

import numpy as np

from bench.optimize.graph_nodes import node_attributes

__all__ = ["quantize_convs", "SETTINGS"]

SETTINGS = {"op": "ConvInteger", "weights": "int8 per output channel (symmetric), stored uint8 + 128",
            "activations": "uint8 per tensor, dynamic", "min_in_channels": 16, "groups": 1}


def _eligible(node, weights: dict, excluded: tuple[str, ...], min_in_channels: int):
    """The Conv's float weight array if this rewrite handles it, else None."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or node.name.startswith(excluded):
        return None
    w = weights.get(node.input[1])
    if w is None or w.dtype != np.float32 or w.ndim < 3 or w.shape[1] < min_in_channels:
        return None
    a = node_attributes(node)
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1])):
        return None
    if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
        return None  # a bias computed in the graph: not a plain layer
    return w


def quantize_convs(model, excluded: tuple[str, ...] = (),
                   min_in_channels: int = SETTINGS["min_in_channels"]) -> list[str]:
    """Rewrite ``model`` (an onnx ModelProto, in place); the names of the rewritten Convs."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes, done = [], []
    for node in g.node:
        w = _eligible(node, weights, excluded, min_in_channels)
        if w is None:
            nodes.append(node)
            continue
        p = node.name or node.output[0]
        m = w.shape[0]
        per_channel = np.abs(w.reshape(m, -1)).max(axis=1)
        scale = np.where(per_channel > 0, per_channel / 127.0, 1.0).astype(np.float32)
        channel_shape = [1, m] + [1] * (w.ndim - 2)
        w_q = np.clip(np.round(w / scale.reshape([m] + [1] * (w.ndim - 1))), -127, 127)
        g.initializer.extend([
            numpy_helper.from_array((w_q + 128).astype(np.uint8), p + "/w_q"),
            numpy_helper.from_array(np.array(128, np.uint8), p + "/w_zero"),
            numpy_helper.from_array(scale.reshape(channel_shape), p + "/w_scale"),
        ])
        kept = {k: v for k, v in node_attributes(node).items()
                if k in ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")}
        has_bias = len(node.input) > 2 and bool(node.input[2])
        scaled = p + "/scaled" if has_bias else node.output[0]
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [node.input[0]],
                             [p + "/x_q", p + "/x_scale", p + "/x_zero"], name=p + "/quantize"),
            helper.make_node("ConvInteger", [p + "/x_q", p + "/w_q", p + "/x_zero", p + "/w_zero"],
                             [p + "/y_int"], name=p + "/conv_integer", **kept),
            helper.make_node("Cast", [p + "/y_int"], [p + "/y"], to=TensorProto.FLOAT, name=p + "/cast"),
            helper.make_node("Mul", [p + "/x_scale", p + "/w_scale"], [p + "/scale"], name=p + "/scale"),
            helper.make_node("Mul", [p + "/y", p + "/scale"], [scaled], name=p + "/rescale"),
        ]
        if has_bias:
            g.initializer.append(numpy_helper.from_array(
                weights[node.input[2]].astype(np.float32).reshape(channel_shape), p + "/bias"))
            nodes.append(helper.make_node("Add", [scaled, p + "/bias"], [node.output[0]], name=p + "/bias"))
        done.append(p)
    if done:
        del g.node[:]
        g.node.extend(nodes)
        used = _inputs(g)
        kept_inits = [t for t in g.initializer if t.name in used]
        del g.initializer[:]
        g.initializer.extend(kept_inits)
    return done


def _inputs(graph) -> set[str]:
    """Every tensor name a node reads, in subgraphs too (they may read the outer initializers)."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for a in node.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                names |= _inputs(sub)
    return names

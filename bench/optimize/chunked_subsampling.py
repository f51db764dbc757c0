"""The convolutional subsampling run over time in chunks, inside an ONNX Loop.

ESPnet's Conv2dSubsampling turns (1, 1, frames, mels) into (1, channels, frames/4, mels/4)
through two or three strided 3x3 convolutions. Its first convolution's output is the largest
tensor of the encoder: 30 MB on a 15 s utterance at 256 channels, held until the second
convolution has consumed it, and its size follows the utterance, so each longer utterance asks
the allocator for a bigger block than any it freed. In chunks of at most ``chunk_frames``
output frames, equal in size, the blocks stop growing with the utterance, and a short utterance
is one chunk of its own length (whole chunks of a fixed size made the tiny cards' int8 up to 16%
slower). The arithmetic is the same (each output frame sees the same input frames): chunks
overlap by the chain's receptive field, the input is padded at the end so the last chunk is
full, and the output is cut back to the unchunked length. On the paper ASR card's int8 variant the
memory child's whole-process peak fell by 5-8 MB in the median of alternating children, within
a run-to-run spread about as wide (docs/figures.md).

Which chains: a Conv over one input channel (the features), then Relu and Conv alternating,
every Conv with a stored 4-D weight, one group, no dilation, no padding; at least two Convs, and
each intermediate result read by the chain's next node only. Anything else is left as it was.
One utterance at a time, as the exported encoders take it: a batch of more fails in the loop.
"""
from __future__ import annotations

import numpy as np

from bench.optimize.graph_nodes import node_attributes

__all__ = ["chunk_subsampling", "SETTINGS"]

# At most 32 output frames a chunk (1.28 s of speech at a 40 ms frame rate): the first
# convolution's output per chunk is at most 2.6 MB at 256 channels and 80 mels, the second's
# unfolded input (ORT's im2col) 5.6 MB, and a 15 s utterance takes 12 iterations of 32 frames.
# 64 frames held about 4 MB more at the encoder's peak, at the same speed (docs/figures.md).
# Only the whole-utterance encoder: a streaming card's embedding graph sees one block at a time.
SETTINGS = {"chunk_frames": 32, "graphs": ["encoder.onnx"]}


def _plain_conv(node, weights: dict, in_channels: int | None = None):
    """(time kernel, time stride) if ``node`` is a Conv this rewrite can chunk, else None."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx"):
        return None
    w = weights.get(node.input[1])
    if w is None or len(w.dims) != 4 or (in_channels is not None and w.dims[1] != in_channels):
        return None
    a = node_attributes(node)
    if (a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1]))
            or any(p != 0 for p in a.get("pads", [0])) or a.get("auto_pad", b"NOTSET") != b"NOTSET"):
        return None
    return int(w.dims[2]), int(a.get("strides", [1, 1])[0])


def _find_chain(graph) -> tuple[list, list[tuple[int, int]]] | None:
    """The subsampling's nodes in order, and each Conv's (time kernel, time stride)."""
    weights = {t.name: t for t in graph.initializer}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    for first in graph.node:
        conv = _plain_conv(first, weights, in_channels=1)
        if conv is None:
            continue
        chain, convs = [first], [conv]
        while True:
            out = chain[-1].output[0]
            nxt = readers.get(out, [])
            if out in outputs or len(nxt) != 1:
                break
            step = nxt[0]
            if step.op_type == "Relu" and chain[-1].op_type == "Conv":
                chain.append(step)
            elif chain[-1].op_type == "Relu" and (conv := _plain_conv(step, weights)) is not None:
                chain.append(step)
                convs.append(conv)
            else:
                break
        if len(convs) >= 2:
            return chain, convs
    return None


def chunk_subsampling(model, chunk_frames: int = SETTINGS["chunk_frames"]) -> dict | None:
    """Rewrite ``model`` (an onnx ModelProto, in place); what was chunked, or None if the
    graph has no such chain."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    found = _find_chain(g)
    if found is None:
        return None
    chain, convs = found
    stride, field = 1, 1  # the chain's stride and receptive field, in input frames
    for kernel, s in convs:
        field += (kernel - 1) * stride
        stride *= s
    x, y = chain[0].input[0], chain[-1].output[0]
    scope = chain[0].name.rsplit("/", 2)[0] if chain[0].name.count("/") >= 2 else ""
    p = scope + "/chunked/"  # e.g. /encoder/embed/conv/chunked/, beside the nodes it replaces

    def const(name: str, values) -> str:
        g.initializer.append(numpy_helper.from_array(np.asarray(values, np.int64), p + name))
        return p + name

    def node(op: str, inputs: list[str], output: str, **attrs):
        return helper.make_node(op, inputs, [p + output], **attrs)

    outer = [node("Shape", [x], "frames", start=2, end=3)]
    length = p + "frames"
    for i, (kernel, s) in enumerate(convs):  # output frames of each Conv: (n - kernel) / s + 1
        outer += [node("Sub", [length, const(f"k{i}", [kernel])], f"sub{i}"),
                  node("Div", [p + f"sub{i}", const(f"s{i}", [s])], f"div{i}"),
                  node("Add", [p + f"div{i}", const("one", [1]) if i == 0 else p + "one"], f"len{i}")]
        length = p + f"len{i}"
    # As many chunks as chunk_frames asks, of equal size: a short utterance is one chunk of its
    # own length, and no chunk computes frames that are cut off again (at most one a chunk).
    outer += [
        node("Add", [length, const("chunk_minus_one", [chunk_frames - 1])], "chunks_ceil"),
        node("Div", [p + "chunks_ceil", const("chunk", [chunk_frames])], "n_chunks"),
        node("Sub", [p + "n_chunks", p + "one"], "n_minus_one"),
        node("Add", [length, p + "n_minus_one"], "each_ceil"),
        node("Div", [p + "each_ceil", p + "n_chunks"], "each"),  # output frames a chunk
        node("Squeeze", [p + "n_chunks", const("axis0", [0])], "trips"),
        node("Mul", [p + "each", const("stride", [stride])], "step"),  # input frames between starts
        node("Add", [p + "step", const("field_minus_stride", [field - stride])], "span"),  # read a chunk
        # padded so the last chunk is full: it ends fewer than stride x chunks frames past the input
        node("Mul", [p + "n_chunks", p + "stride"], "pad_end"),
        node("Concat", [const("pads_before", [0, 0, 0, 0, 0, 0]), p + "pad_end",
                        const("pad_freq_end", [0])], "pads", axis=0),
        node("Pad", [x, p + "pads"], "padded"),
    ]
    body_nodes = [
        node("Mul", [p + "i", p + "step"], "start"),
        node("Add", [p + "start", p + "span"], "end"),
        node("Slice", [p + "padded", p + "start", p + "end", const("time_axis", [2])], "chunk_in"),
        node("Identity", [p + "cond"], "cond_out"),
    ]
    renamed = {x: p + "chunk_in"}
    for original in chain:
        clone = helper.make_node(original.op_type, [renamed.get(n, n) for n in original.input],
                                 [p + "chunk/" + original.output[0]], name=original.name)
        clone.attribute.extend(original.attribute)
        renamed[original.output[0]] = clone.output[0]
        body_nodes.append(clone)
    # each chunk leaves the loop time-major, (its frames, C, F), so that joining the chunks
    # is a reshape, not a copy; the one transpose back is then cancelled by ORT against the
    # embedding's own transpose to time-major. The squeeze refuses a batch of more than one
    # utterance (the exported encoders take one) rather than join two utterances' frames.
    body_nodes += [node("Transpose", [renamed[y]], "chunk_time_major", perm=[0, 2, 1, 3]),
                   node("Squeeze", [p + "chunk_time_major", p + "axis0"], "chunk_out")]
    body = helper.make_graph(
        body_nodes, "subsampling_chunk",
        [helper.make_tensor_value_info(p + "i", TensorProto.INT64, []),
         helper.make_tensor_value_info(p + "cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(p + "cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info(p + "chunk_out", TensorProto.FLOAT, [None, None, None])])
    outer += [
        node("Loop", [p + "trips", ""], "chunks", body=body, name=p + "Loop"),
        # (chunks, frames a chunk, C, F) -> (1, chunks x frames a chunk, C, F), cut to length
        node("Shape", [p + "chunks"], "channels_freq", start=2, end=4),
        node("Concat", [const("one_join", [1, -1]), p + "channels_freq"], "joined_shape", axis=0),
        node("Reshape", [p + "chunks", p + "joined_shape"], "joined"),
        node("Slice", [p + "joined", const("zero", [0]), length, const("time_axis_out", [1])], "cut"),
        helper.make_node("Transpose", [p + "cut"], [y], perm=[0, 2, 1, 3]),  # the chain's own output
    ]
    first = list(g.node).index(chain[0])
    kept = [n for n in g.node if n not in chain]
    new_nodes = kept[:first] + outer + kept[first:]
    del g.node[:]
    g.node.extend(new_nodes)
    return {"nodes": [n.name for n in chain], "chunk_frames": chunk_frames,
            "stride": stride, "receptive_field": field}

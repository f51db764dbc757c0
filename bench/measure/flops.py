"""Arithmetic of one ONNX graph run, counted from the shapes its compute nodes see.

The graph is run once per distinct input shape in a copy that also returns each compute
node's first input and its output, without graph optimizations (so every node keeps its
name); a product counts 2 x (output elements) x (reduced length). What ORT does outside these
nodes (softmax, normalisation, elementwise work) is not counted: it is memory-bound, not
arithmetic, and the roofline column measures how close the products come to the machine's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# op -> precision of its arithmetic. Integer products are counted as int8 operations.
COUNTED = {"MatMul": "fp32", "Gemm": "fp32", "Conv": "fp32", "FusedMatMul": "fp32",
           "ConvTranspose": "fp32",
           "MatMulInteger": "int8", "ConvInteger": "int8", "QLinearMatMul": "int8",
           "QLinearConv": "int8", "DynamicQuantizeMatMul": "int8", "MatMulIntegerToFloat": "int8"}
# contrib ops that hide products inside them: named in the count, not counted
HIDDEN = {"Attention", "MultiHeadAttention", "GroupQueryAttention", "DecoderAttention",
          "QAttention", "LSTM", "GRU", "RNN", "Einsum",
          "Loop", "Scan", "If"}  # a subgraph's nodes cannot be graph outputs to read shapes from
_CONVS = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose"}


@dataclass
class Count:
    fp32: float = 0.0  # floating-point operations (a multiply-add is 2)
    int8: float = 0.0  # integer operations, the same way
    uncounted: list[str] = field(default_factory=list)  # ops whose products are not counted

    def __add__(self, other: "Count") -> "Count":
        return Count(self.fp32 + other.fp32, self.int8 + other.int8,
                     sorted(set(self.uncounted) | set(other.uncounted)))


def _reduced_length(node, shapes: dict, weights: dict) -> int:
    """The length each output element sums over."""
    if node.op_type in _CONVS:
        w_name = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
        w = weights.get(w_name) or shapes[w_name]
        return int(np.prod(w[1:]))  # input channels per group x kernel
    a_name = node.input[0]
    a = shapes.get(a_name) or weights[a_name]
    if node.op_type == "Gemm":
        trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
        return int(a[0] if trans_a else a[-1])
    if node.op_type == "FusedMatMul":
        trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
        return int(a[-2] if trans_a else a[-1])
    return int(a[-1])


class GraphFlops:
    """Counts the arithmetic of runs of the graph at ``path``, one count per input shape."""

    def __init__(self, path: str):
        import onnx
        import onnxruntime as ort

        from bench.runtime.onnx_asr import session_options

        model = onnx.load(str(path))
        graph = model.graph
        self.weights = {i.name: tuple(i.dims) for i in graph.initializer}
        self.nodes = [n for n in graph.node if n.op_type in COUNTED]
        # QDQ graphs: a float product whose two operands are dequantized int8 runs as an integer
        # kernel once ORT fuses the pair (QLinearConv, QLinearMatMul)
        dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        self.precision = {id(n): "int8" if COUNTED[n.op_type] == "int8" or
                          (len(n.input) > 1 and n.input[0] in dequantized and n.input[1] in dequantized)
                          else "fp32" for n in self.nodes}
        self.uncounted = sorted({n.op_type for n in graph.node if n.op_type in HIDDEN})
        have = {o.name for o in graph.output}
        self.names = [o.name for o in graph.output]
        for n in self.nodes:
            shaped = [n.output[0], n.input[0]]
            if n.op_type in _CONVS:
                shaped.append(n.input[3] if n.op_type == "QLinearConv" else n.input[1])
            for name in shaped:
                if name and name not in have and name not in self.weights:
                    graph.output.append(onnx.ValueInfoProto(name=name))
                    have.add(name)
                    self.names.append(name)
        so = session_options(1)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = ort.InferenceSession(model.SerializeToString(), so,
                                            providers=["CPUExecutionProvider"])
        self._cache: dict = {}

    def count(self, feeds: dict) -> Count:
        key = tuple(sorted((k, np.shape(v), str(np.asarray(v).dtype)) for k, v in feeds.items()))
        if key not in self._cache:
            outs = self.session.run(self.names, feeds)
            shapes = {n: tuple(np.shape(o)) for n, o in zip(self.names, outs)}
            c = Count(uncounted=list(self.uncounted))
            for node in self.nodes:
                # a transposed convolution spreads each input element over (Cout/group x kernel)
                spread = node.input[0] if node.op_type == "ConvTranspose" else node.output[0]
                ops = 2.0 * float(np.prod(shapes[spread])) * _reduced_length(node, shapes, self.weights)
                if self.precision[id(node)] == "int8":
                    c.int8 += ops
                else:
                    c.fp32 += ops
            self._cache[key] = c
        return self._cache[key]

"""onnx-int8-convs's dynamic int8 convolutions (bench/optimize/conv_integer.py): which convolutions
it takes, and that ORT runs the rewritten graph close to the float one, per output channel."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.optimize.conv_integer import quantize_convs


def _conv_model(w: np.ndarray, bias: bool = True, group: int = 1, name: str = "/enc/conv") -> onnx.ModelProto:
    rank = w.ndim - 2
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(np.linspace(-1, 1, w.shape[0]).astype(np.float32), "b"))
        inputs.append("b")
    node = helper.make_node("Conv", inputs, ["y"], name=name, group=group,
                            kernel_shape=list(w.shape[2:]), strides=[2] * rank)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, w.shape[1] * group] + [None] * rank)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]


@pytest.mark.parametrize("shape", [(32, 24, 3, 3), (48, 32, 1)])
def test_rewritten_convolution_is_float_within_its_per_channel_step(shape):
    rng = np.random.default_rng(0)
    # output channels of very different magnitudes: one scale for the whole kernel would
    # round the small ones to a few levels; a scale per channel keeps each within its own step
    w = (rng.standard_normal(shape) * np.logspace(-3, 0, shape[0]).reshape(-1, *[1] * (len(shape) - 1))
         ).astype(np.float32)
    x = np.abs(rng.standard_normal((1, shape[1], 40) + ((19,) if len(shape) == 4 else ()))).astype(np.float32)
    model = _conv_model(w)
    want = _run(model, x)
    assert quantize_convs(model) == ["/enc/conv"]
    assert {n.op_type for n in model.graph.node} >= {"DynamicQuantizeLinear", "ConvInteger"}
    assert "w" not in {t.name for t in model.graph.initializer}  # the float kernel is gone
    got = _run(model, x)
    assert got.shape == want.shape
    # error per output channel, relative to that channel's own output range
    err = np.abs(got - want)[0].reshape(shape[0], -1).max(axis=1)
    span = np.abs(want - np.linspace(-1, 1, shape[0]).reshape(1, -1, *[1] * (len(shape) - 2)))[0] \
        .reshape(shape[0], -1).max(axis=1)
    assert np.all(err <= 0.03 * span + 1e-6), (err / span).max()


def test_without_bias_the_output_keeps_its_name():
    w = np.random.default_rng(1).standard_normal((16, 16, 3, 3)).astype(np.float32)
    model = _conv_model(w, bias=False)
    assert quantize_convs(model) == ["/enc/conv"]
    assert model.graph.node[-1].output[0] == "y"
    x = np.abs(np.random.default_rng(2).standard_normal((1, 16, 9, 9))).astype(np.float32)
    assert _run(model, x).shape == (1, 16, 4, 4)


@pytest.mark.parametrize("case", ["few channels", "depthwise", "excluded"])
def test_convolutions_it_leaves_float(case):
    rng = np.random.default_rng(3)
    if case == "few channels":  # the first subsampling convolution sees one channel of features
        model = _conv_model(rng.standard_normal((8, 1, 3, 3)).astype(np.float32))
    elif case == "depthwise":
        model = _conv_model(rng.standard_normal((32, 1, 31)).astype(np.float32), group=32)
    else:
        model = _conv_model(rng.standard_normal((32, 32, 3, 3)).astype(np.float32), name="/logmel/conv")
    before = model.SerializeToString()
    assert quantize_convs(model, excluded=("/logmel/",)) == []
    assert model.SerializeToString() == before

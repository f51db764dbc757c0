"""The int8 variant's chunked subsampling (bench/optimize/chunked_subsampling.py): the same output
as the unchunked convolutions at every length, which chains it takes, and where quantize() applies it."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.optimize.chunked_subsampling import chunk_subsampling


def _subsampling(convs, channels: int = 6, mels: int = 20, pads=None, reread: bool = False) -> onnx.ModelProto:
    """feats (1, T, mels) -> Unsqueeze -> [Conv -> Relu]* -> Transpose -> (1, T', C, F'), and the
    output's Shape read beside it, as ESPnet's Conv2dSubsampling exports."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Unsqueeze", ["feats", "axis1"], ["x"], name="/embed/Unsqueeze")]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    x, c_in = "x", 1
    for i, (kernel, stride) in enumerate(convs):
        w = (rng.standard_normal((channels, c_in, kernel, 3)) / np.sqrt(c_in * kernel * 3)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"),
                  numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), f"b{i}")]
        extra = {"pads": pads} if pads and i == 0 else {}
        nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], name=f"/embed/conv/conv.{2 * i}/Conv",
                                   strides=[stride, 2], **extra),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"/embed/conv/conv.{2 * i + 1}/Relu")]
        x, c_in = f"r{i}", channels
    nodes += [helper.make_node("Transpose", [x], ["y"], perm=[0, 2, 1, 3], name="/embed/Transpose"),
              helper.make_node("Shape", [x], ["y_shape"], name="/embed/Shape")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None, channels, None]),
               helper.make_tensor_value_info("y_shape", TensorProto.INT64, [4])]
    if reread:  # the first convolution's output read by something else too
        nodes.append(helper.make_node("Identity", ["c0"], ["c0_too"]))
        outputs.append(helper.make_tensor_value_info("c0_too", TensorProto.FLOAT, [1, channels, None, None]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("feats", TensorProto.FLOAT, [1, None, mels])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto, feats: np.ndarray) -> list:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
        None, {"feats": feats})


# ESPnet's Conv2dSubsampling (4x), Conv2dSubsampling6 and Conv2dSubsampling8
@pytest.mark.parametrize("convs", [[(3, 2), (3, 2)], [(3, 2), (5, 3)], [(3, 2), (3, 2), (3, 2)]])
def test_same_output_at_every_length(convs):
    model = _subsampling(convs)
    chunked = onnx.ModelProto()
    chunked.CopyFrom(model)
    done = chunk_subsampling(chunked, chunk_frames=4)
    assert done is not None and done["nodes"][0] == "/embed/conv/conv.0/Conv"
    assert [n.op_type for n in chunked.graph.node].count("Loop") == 1
    assert "Conv" not in {n.op_type for n in chunked.graph.node}  # all in the loop's body
    onnx.checker.check_model(chunked)
    rng = np.random.default_rng(1)
    smallest = done["receptive_field"]
    # the shortest input, one to three chunks' worth, and lengths that end mid-chunk and mid-stride
    for frames in sorted({smallest, smallest + 1, *range(20, 120, 7), 4 * done["stride"] * 4 + 3}):
        feats = rng.standard_normal((1, frames, 20)).astype(np.float32)
        want, got = _run(model, feats), _run(chunked, feats)
        assert got[0].shape == want[0].shape, frames
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-5, err_msg=f"{frames} frames")
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("kwargs", [{"pads": [1, 1, 1, 1]}, {"reread": True}])
def test_chains_it_cannot_chunk_exactly_are_left_alone(kwargs):
    model = _subsampling([(3, 2), (3, 2)], **kwargs)
    before = model.SerializeToString()
    assert chunk_subsampling(model) is None
    assert model.SerializeToString() == before


def test_one_convolution_is_no_subsampling_to_chunk():
    model = _subsampling([(3, 2)])
    assert chunk_subsampling(model) is None


def test_quantize_chunks_the_encoder_only(tmp_path):
    from bench.optimize.quantize import quantize

    model = _subsampling([(3, 2), (3, 2)])
    for name in ("encoder.onnx", "embed.onnx"):
        onnx.save(model, str(tmp_path / f"src-{name}"))
        record = quantize(tmp_path / f"src-{name}", tmp_path / name)
        ops = {n.op_type for n in onnx.load(str(tmp_path / name)).graph.node}
        if name == "encoder.onnx":  # the whole-utterance encoder
            assert record["chunked_subsampling"]["chunk_frames"] == 32 and "Loop" in ops
        else:  # a streaming card's embedding, one block at a time
            assert "Loop" not in ops

"""How a static-int8 graph is stored (bench/optimize/storage.py): each step keeps what the
graph computes (to float32 rounding) and makes its file smaller."""
import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.optimize.storage import compact_names, stft_basis_from_tables, stored_alike_bytes

N_FFT, HOP = 64, 16


def _frontend_graph(basis: np.ndarray, melmat: np.ndarray):
    """speech -> STFT as a strided Conv (named as the exporter names it) -> power -> mel MatMul."""
    bins = N_FFT // 2 + 1
    nodes = [
        helper.make_node("Unsqueeze", ["speech", "axis1"], ["x"], name="/stft/Unsqueeze"),
        helper.make_node("Conv", ["x", "stft.basis"], ["spec"], name="/stft/Conv", strides=[HOP]),
        helper.make_node("Mul", ["spec", "spec"], ["sq"], name="/stft/Mul"),
        helper.make_node("Split", ["sq", "halves"], ["re2", "im2"], name="/stft/Split", axis=1),
        helper.make_node("Add", ["re2", "im2"], ["power"], name="/stft/Add"),
        helper.make_node("Transpose", ["power"], ["power_t"], name="/stft/Transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["power_t", "logmel.melmat"], ["mel"], name="/logmel/MatMul"),
    ]
    graph = helper.make_graph(
        nodes, "frontend", [helper.make_tensor_value_info("speech", TensorProto.FLOAT, [1, "t"])],
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(basis, "stft.basis"), numpy_helper.from_array(melmat, "logmel.melmat"),
         numpy_helper.from_array(np.array([1], np.int64), "axis1"),
         numpy_helper.from_array(np.array([bins, bins], np.int64), "halves")])
    graph.value_info.append(helper.make_tensor_value_info("spec", TensorProto.FLOAT, None))
    return helper.make_model(graph, ir_version=9, opset_imports=[helper.make_opsetid("", 17)])


def _dft_basis() -> np.ndarray:
    from bench.export.asr import DftStft

    return DftStft(N_FFT, N_FFT, HOP).basis.numpy()


def _melmat() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.abs(rng.standard_normal((N_FFT // 2 + 1, 128))).astype(np.float32)


def _run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"speech": x})[0]


@pytest.fixture()
def speech():
    return np.random.default_rng(1).standard_normal((1, 800)).astype(np.float32)


def test_the_stft_basis_is_rebuilt_from_its_tables_to_float32_rounding(speech):
    model = _frontend_graph(_dft_basis(), _melmat())
    want = _run(model, speech)
    rebuilt = copy.deepcopy(model)
    record = stft_basis_from_tables(rebuilt)
    assert record["rebuilt"] == "stft.basis" and record["stored_bytes"] == _dft_basis().nbytes
    assert "stft.basis" not in {i.name for i in rebuilt.graph.initializer}
    assert rebuilt.ByteSize() < model.ByteSize() - 0.8 * record["stored_bytes"]
    np.testing.assert_allclose(_run(rebuilt, speech), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_a_basis_that_is_not_the_dft_is_kept_with_the_reason(speech):
    other = _dft_basis().copy()
    other[5, 0, 3] += 0.01
    model = _frontend_graph(other, _melmat())
    record = stft_basis_from_tables(model)
    assert "differs from the rebuilt basis" in record["kept"]
    assert "stft.basis" in {i.name for i in model.graph.initializer}
    assert stft_basis_from_tables(helper.make_model(helper.make_graph([], "empty", [], []))) is None


def test_compact_names_keeps_the_computation_and_the_boundary(speech):
    model = _frontend_graph(_dft_basis(), _melmat())
    want = _run(model, speech)
    saved = compact_names(model)
    assert saved > 0 and not model.graph.value_info
    assert [i.name for i in model.graph.input] == ["speech"] and [o.name for o in model.graph.output] == ["mel"]
    assert max(len(n.name) for n in model.graph.node) <= 3
    np.testing.assert_array_equal(_run(model, speech), want)


def test_a_graph_with_a_subgraph_keeps_its_names():
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["y_then"])], "then", [],
                               [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, None)])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)], "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph)
    before = model.SerializeToString()
    assert compact_names(model) == 0 and model.SerializeToString() == before


def test_the_float_base_stored_alike_is_smaller_only_by_storage(tmp_path):
    model = _frontend_graph(_dft_basis(), _melmat())
    onnx.save(model, str(tmp_path / "g.onnx"))
    alike = stored_alike_bytes(tmp_path / "g.onnx")
    melmat_bytes = _melmat().nbytes
    # the basis and names go, the float mel filterbank stays
    assert melmat_bytes < alike < model.ByteSize() - _dft_basis().nbytes // 2

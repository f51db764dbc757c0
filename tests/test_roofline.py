"""The roofline column: arithmetic counted from a graph's shapes, set against the GEMM probe."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.measure.flops import GraphFlops
from bench.measure.peak import gemm_peaks
from bench.measure.roofline import roofline


def _save(tmp_path, nodes, inputs, outputs, inits, name="g.onnx", opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _products_graph(tmp_path):
    """x (B, T, 4) -> MatMul with W (4, 6) -> depthwise Conv over T -> Gemm (transA) on a slice,
    plus an int8 MatMulInteger beside them."""
    f = TensorProto.FLOAT
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 6), dtype=np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((6, 1, 3), dtype=np.float32), "k"),
             numpy_helper.from_array(rng.standard_normal((5, 2), dtype=np.float32), "g"),
             numpy_helper.from_array(rng.integers(-5, 5, (3, 7), dtype=np.int8), "q")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),                    # (B, T, 6)
             helper.make_node("Transpose", ["h"], ["hc"], perm=[0, 2, 1]),      # (B, 6, T)
             helper.make_node("Conv", ["hc", "k"], ["c"], group=6),             # (B, 6, T-2)
             helper.make_node("Gemm", ["a", "g"], ["y"], transA=1),             # a (5, 3) -> (3, 2)
             helper.make_node("MatMulInteger", ["u", "q"], ["z"])]              # (2, 3) x (3, 7)
    inputs = [helper.make_tensor_value_info("x", f, ["B", "T", 4]),
              helper.make_tensor_value_info("a", f, [5, 3]),
              helper.make_tensor_value_info("u", TensorProto.UINT8, [2, 3])]
    outputs = [helper.make_tensor_value_info("c", f, None), helper.make_tensor_value_info("y", f, None),
               helper.make_tensor_value_info("z", TensorProto.INT32, None)]
    return _save(tmp_path, nodes, inputs, outputs, inits)


def _feeds(b, t):
    return {"x": np.ones((b, t, 4), np.float32), "a": np.ones((5, 3), np.float32),
            "u": np.ones((2, 3), np.uint8)}


def test_products_are_counted_from_the_shapes_each_run_sees(tmp_path):
    counter = GraphFlops(str(_products_graph(tmp_path)))
    c = counter.count(_feeds(2, 10))
    matmul = 2 * (2 * 10 * 6) * 4        # output elements x reduced length 4
    conv = 2 * (2 * 6 * 8) * (1 * 3)     # depthwise: one input channel per group, kernel 3
    gemm = 2 * (3 * 2) * 5               # transA: the reduced length is a's first axis
    assert c.fp32 == matmul + conv + gemm
    assert c.int8 == 2 * (2 * 7) * 3
    assert c.uncounted == []
    # another shape is another count; the products scale with the batch and the length
    c2 = counter.count(_feeds(4, 10))
    assert c2.fp32 - gemm == 2 * (c.fp32 - gemm)
    assert counter.count(_feeds(2, 10)) is c  # counted once a shape


def test_roofline_sets_each_graphs_count_against_the_peaks(tmp_path):
    path = _products_graph(tmp_path)
    so = ort.SessionOptions()
    so.log_severity_level = 3

    class Rec:  # a recognizer with one ONNX session, run twice per input
        def __init__(self):
            self.net = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

        def __call__(self, t):
            for _ in range(2):
                self.net.run(None, _feeds(1, t))

    rec = Rec()
    peaks = {"fp32_gflops": 100.0, "int8_gops": 400.0, "n": 1024, "runs": 20, "threads": 1}
    r = roofline(rec, [10, 20], peaks)
    g = r["graphs"]["net"]
    assert g["runs"] == 4 and g["graph"] == "g.onnx"
    counter = GraphFlops(str(path))
    fp32 = 2 * (counter.count(_feeds(1, 10)).fp32 + counter.count(_feeds(1, 20)).fp32)
    int8 = 4 * counter.count(_feeds(1, 10)).int8
    assert g["gflop_fp32"] == round(fp32 / 1e9, 3) and g["gop_int8"] == round(int8 / 1e9, 3)
    ideal = fp32 / 100e9 + int8 / 400e9
    # seconds are stored to 4 decimals and the percent to 2: the percent must lie in the band
    # that the seconds' rounding leaves (a few runs of a small graph take well under 1 ms)
    s = g["seconds"]
    low, high = 100 * ideal / (s + 5e-5), 100 * ideal / max(s - 5e-5, 1e-9)
    assert low - 0.005 <= g["peak_percent"] <= high + 0.005
    # the decode's time holds its graphs' (one pass, counting time taken out)
    assert r["end_to_end"]["seconds"] >= r["in_graphs"]["seconds"] - 1e-4
    assert "run" not in vars(rec.net)  # the session's own run is back


def test_transposed_convolution_spreads_each_input_element(tmp_path):
    f = TensorProto.FLOAT
    w = numpy_helper.from_array(np.ones((4, 2, 5), np.float32), "w")  # Cin 4, Cout 2, kernel 5
    path = _save(tmp_path, [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2])],
                 [helper.make_tensor_value_info("x", f, [1, 4, 10])],
                 [helper.make_tensor_value_info("y", f, None)], [w])
    assert GraphFlops(str(path)).count({"x": np.ones((1, 4, 10), np.float32)}).fp32 == 2 * 40 * 10


def test_a_qdq_product_counts_as_int8(tmp_path):
    f = TensorProto.FLOAT
    inits = [numpy_helper.from_array(np.ones((3, 4), np.int8), "wq"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.uint8), "zu"),
             numpy_helper.from_array(np.array(0, np.int8), "zi")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zu"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "zu"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "s", "zi"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["y"]),       # both operands int8: integer
             helper.make_node("MatMul", ["x", "wd"], ["y2"])]       # float activations: fp32
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", f, [2, 3])],
                 [helper.make_tensor_value_info("y", f, None), helper.make_tensor_value_info("y2", f, None)],
                 inits)
    c = GraphFlops(str(path)).count({"x": np.ones((2, 3), np.float32)})
    assert c.int8 == 2 * 8 * 3 and c.fp32 == 2 * 8 * 3


def test_hidden_products_are_named_not_guessed(tmp_path):
    f = TensorProto.FLOAT
    path = _save(tmp_path, [helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,jk->ik")],
                 [helper.make_tensor_value_info("x", f, [3, 3])],
                 [helper.make_tensor_value_info("y", f, None)], [])
    c = GraphFlops(str(path)).count({"x": np.ones((3, 3), np.float32)})
    assert c.fp32 == 0 and c.uncounted == ["Einsum"]


def test_gemm_probe_reports_both_precisions():
    p = gemm_peaks(1)
    assert set(p) == {"fp32_gflops", "int8_gops", "n", "runs", "threads"}
    assert p["fp32_gflops"] > 0 and p["int8_gops"] > 0 and p["threads"] == 1


def test_a_failing_reported_figure_is_said_and_the_case_goes_on():
    from bench.cases import _reported
    from bench.report.table import roofline_table

    def broken():
        raise RuntimeError("graph file gone")

    case = {"card": "asr-x", "variant": "onnx", "status": "ok", "metrics": {"rtf": 0.1}, "settings": {}}
    _reported("roofline", case, broken)
    assert case["settings"]["roofline"] == {"measured": False, "why": "RuntimeError: graph file gone"}
    assert case["metrics"] == {"rtf": 0.1} and case["status"] == "ok"
    doc = {"run": {"id": "r1"}, "cases": [case]}
    assert "| asr-x | onnx | not measured: RuntimeError: graph file gone |" in roofline_table([doc])


def test_a_session_reachable_twice_is_timed_once(tmp_path):
    from bench.measure.breakdown import graph_sessions

    path = _products_graph(tmp_path)

    class Rec:  # an attribute and the sessions dict hold the same session
        def __init__(self):
            self.net = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        @property
        def sessions(self):
            return {"g.onnx": self.net}

    rec = Rec()
    assert list(graph_sessions(rec)) == ["net"]
    peaks = {"fp32_gflops": 100.0, "int8_gops": 400.0, "n": 1024, "runs": 20, "threads": 1}
    rec.__class__.__call__ = lambda self, t: self.net.run(None, _feeds(1, t))
    assert list(roofline(rec, [10], peaks)["graphs"]) == ["net"]

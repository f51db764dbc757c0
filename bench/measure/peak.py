"""This machine's arithmetic peak as ONNX Runtime reaches it: one large GEMM, fp32 and int8.

Measured in the same run as the figures it is set against (a host's clock, its other tenants
and the thread count all move it). Each is the fastest of repeated runs of one square product (a peak is what the machine can
do, not what it did on average on a shared host)
in a graph of its own: MatMul in fp32, and in int8 MatMulInteger (uint8 x int8 -> int32, the
kernel ORT's dynamically quantized products use).
"""
from __future__ import annotations

import time

import numpy as np

N = 1024  # 2.1 G operations a run: long enough to time, short enough to repeat
RUNS = 20


def _session(op: str, a_type: int, b: np.ndarray, out_type: int, threads: int):
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from bench.runtime.onnx_asr import session_options

    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])], "gemm_probe",
        [helper.make_tensor_value_info("a", a_type, [N, N])],
        [helper.make_tensor_value_info("y", out_type, [N, N])],
        [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    # the options every graph of the harness runs under, so the peak is theirs to reach
    return ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                providers=["CPUExecutionProvider"])


def _gops(session, a: np.ndarray) -> float:
    for _ in range(2):  # warm-up: first runs pack the weights
        session.run(None, {"a": a})
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        session.run(None, {"a": a})
        times.append(time.perf_counter() - t)
    return 2.0 * N ** 3 / min(times) / 1e9


def gemm_peaks(threads: int) -> dict:
    """{"fp32_gflops", "int8_gops", "n", "runs", "threads"} on the CPU execution provider."""
    from onnx import TensorProto

    rng = np.random.default_rng(0)
    fp32 = _session("MatMul", TensorProto.FLOAT, rng.standard_normal((N, N), dtype=np.float32),
                    TensorProto.FLOAT, threads)
    int8 = _session("MatMulInteger", TensorProto.UINT8,
                    rng.integers(-127, 128, (N, N), dtype=np.int8), TensorProto.INT32, threads)
    return {"fp32_gflops": round(_gops(fp32, rng.standard_normal((N, N), dtype=np.float32)), 1),
            "int8_gops": round(_gops(int8, rng.integers(0, 256, (N, N), dtype=np.uint8)), 1),
            "n": N, "runs": RUNS, "threads": threads}

"""Static int8 of one graph: weights and activations, QDQ, ranges from calibration feeds.

ORT's calibrator records only tensors whose element type the graph states, and neither ONNX's
shape inference (contrib ops: SkipLayerNormalization, fused attention) nor ORT's symbolic one
(it merged two time axes of the conformer encoder and broke its run) types every tensor of the
fused graphs. So the types are taken from a run: the graph's own first calibration feed, with
every tensor exposed, and written into the graph before it is quantized.
"""
from __future__ import annotations

import logging
from pathlib import Path

from bench.optimize.calibration import QDQ_SETTINGS

STATIC_SETTINGS = {
    "method": "static",
    **QDQ_SETTINGS,
    # the frontend stays float: with the STFT and normalisation in int8 (waveform and spectrum
    # in 8 bits) the trained tiny ASR card's test WER went from 7.2% to 52.8%
    "exclude_prefixes": ["/stft/", "/logmel/", "/normalize/"],
}
# the study variants (bench/variants.py): what each quantizes, over STATIC_SETTINGS
STATIC_VARIANTS = {
    "onnx-int8-static": {"op_types": ["MatMul", "Gemm", "Conv", "ConvTranspose", "Gather"]},
    "onnx-int8-conv": {"op_types": ["Conv", "ConvTranspose"]},
}


def quantize_static_graph(src: Path, dst: Path, feeds: list[dict], settings: dict) -> dict:
    """Quantize ``src`` into ``dst`` with ``settings`` over STATIC_SETTINGS (``op_types`` at
    least); returns the settings used, as recorded with results."""
    import onnx

    from bench.optimize.calibration import calibrated_qdq
    from bench.optimize.quantize import kept_float
    from bench.optimize.storage import store_compactly

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
    s = {**STATIC_SETTINGS, **settings}
    model = onnx.load(str(src))
    excluded = kept_float(model.graph, s["exclude_prefixes"])
    typed = dst.with_suffix(".typed.onnx")
    onnx.save(types_from_run(model, feeds[0]), str(typed))
    # MinMax keeps each tensor's min and max per feed (ReduceMin/ReduceMax added to the graph),
    # not the tensors, so memory stays small. (CalibMaxIntermediateOutputs is not used: in ORT
    # 1.23 it drops the ranges of every full chunk.)
    try:
        calibrated_qdq(typed, dst, s["op_types"], excluded, feeds, s)
    finally:
        typed.unlink(missing_ok=True)
    stored = store_compactly(dst)
    return {**s, "calibration_inputs": len(feeds), "kept_float_nodes": len(excluded), "stored": stored}


def types_from_run(model, feed: dict):
    """A copy of ``model`` whose every node output has its element type in value_info, as
    one run on ``feed`` (optimizations off, so every tensor exists) produced it."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper

    from bench.runtime.onnx_asr import session_options

    g = model.graph
    known = {v.name for v in [*g.value_info, *g.input, *g.output]} | {i.name for i in g.initializer}
    names = list(dict.fromkeys(o for n in g.node for o in n.output if o and o not in known))
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.ValueInfoProto(name=o) for o in names)
    so = session_options(1)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    outs = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"]
                                ).run(names, feed)
    typed = onnx.ModelProto()
    typed.CopyFrom(model)
    typed.graph.value_info.extend(
        helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), None)
        for o, v in zip(names, outs))
    return typed

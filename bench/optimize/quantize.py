"""int8 quantization of the exported graphs. The settings are a first-class parameter.

Stock `quantize_dynamic` (every op type, per-tensor) made an ESPnet conformer encoder
2-4x slower than float on this machine class; MatMul-only, per-channel, constant-weight
only was ~1.25x faster (DESIGN.md). The default here is the setting that pays; the
settings used are recorded with every result.
"""
from __future__ import annotations

import logging
from pathlib import Path

from bench.optimize.chunked_subsampling import SETTINGS as CHUNK_SETTINGS

DEFAULT_SETTINGS = {
    "method": "dynamic",
    "op_types": ["MatMul"],
    "per_channel": True,
    "weight_type": "QInt8",
    "reduce_range": False,
    "matmul_const_b_only": True,
    # The frontend's mel-filterbank MatMul stays float: its input is a power spectrum whose
    # dynamic range a uint8 activation cannot hold. Quantized, it turned the trained tiny ASR
    # card's CTC output to noise (21% of frames agreed with float, 99.4% with it excluded).
    "exclude_prefixes": ["/logmel/"],
    # Convolutions: static int8 (QDQ, per-channel weights, uint8 activations with ranges from
    # the card's dev data), where calibration data exists (TTS: bench/optimize/calibration.py).
    # Graphs the static quantizer cannot handle keep float convolutions; the reason is recorded.
    "static_op_types": ["Conv", "ConvTranspose"],
    # Not quantization but the int8 variant's memory: the convolutional subsampling run in time
    # chunks (bench/optimize/chunked_subsampling.py), the same arithmetic in blocks of one size.
    "chunked_subsampling": CHUNK_SETTINGS,
}


def kept_float(graph, prefixes=DEFAULT_SETTINGS["exclude_prefixes"]) -> list[str]:
    """The names of the graph's nodes that int8 leaves float (``exclude_prefixes``)."""
    return [n.name for n in graph.node if n.name.startswith(tuple(prefixes))]


def quantize(src: Path, dst: Path, settings: dict | None = None,
             calibration: list[dict] | None = None) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic warns on the root logger to run its pre-processing; we record settings instead
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
    s = {**DEFAULT_SETTINGS, **(settings or {})}
    if s["method"] != "dynamic":
        raise ValueError(f"quantization method {s['method']!r} is not supported yet (only 'dynamic')")
    import onnx

    graph = onnx.load(str(src), load_external_data=False).graph
    excluded = kept_float(graph, s["exclude_prefixes"])
    record = dict(s)
    if calibration and any(n.op_type in s["static_op_types"] for n in graph.node):
        static = dst.with_suffix(".static.onnx")
        try:
            _quantize_static(src, static, s["static_op_types"], excluded, calibration)
            src = static
            record["static"] = {"calibration_inputs": len(calibration)}
        except Exception as e:  # a quantizer limit on this graph: its convolutions stay float
            record["static"] = {"skipped": f"{type(e).__name__}: {str(e)[:300]}"}
    else:
        record["static"] = {"skipped": "no calibration data for this graph" if not calibration
                            else "no convolutions"}
    quantize_dynamic(
        str(src), str(dst), nodes_to_exclude=excluded,
        op_types_to_quantize=s["op_types"], per_channel=s["per_channel"],
        reduce_range=s["reduce_range"], weight_type=getattr(QuantType, s["weight_type"]),
        # fused graphs hold contrib ops (SkipLayerNormalization) that onnx's shape inference
        # cannot type; their outputs are float
        extra_options={"MatMulConstBOnly": s["matmul_const_b_only"],
                       "DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    dst.with_suffix(".static.onnx").unlink(missing_ok=True)
    if s.get("dynamic_convs"):  # asked for (the int8 study's onnx-int8-convs), graphs not calibrated
        record["dynamic_convs"] = _dynamic_convs(dst, s) if not calibration else \
            {"skipped": "static int8 handles this graph's convolutions"}
    chunking = s.get("chunked_subsampling")
    if chunking and dst.name in chunking["graphs"]:
        record["chunked_subsampling"] = _chunked_subsampling(dst, chunking)
    return record


def _chunked_subsampling(path: Path, settings: dict) -> dict:
    """The graph's convolutional subsampling run in time chunks, in place; what was done."""
    from bench.optimize.chunked_subsampling import chunk_subsampling
    from bench.optimize.graph_nodes import rewrite_file

    done = rewrite_file(path, lambda model: chunk_subsampling(model, settings["chunk_frames"]))
    return done or {"skipped": "no float convolutional subsampling in this graph"}


def _dynamic_convs(path: Path, s: dict) -> dict:
    """The graph's float convolutions as per-channel dynamic int8, in place; what was done."""
    from bench.optimize.conv_integer import quantize_convs
    from bench.optimize.graph_nodes import rewrite_file

    done = rewrite_file(path, lambda model: quantize_convs(
        model, tuple(s["exclude_prefixes"]), s["dynamic_convs"]["min_in_channels"]))
    return {**s["dynamic_convs"], "convolutions": len(done)}


def _quantize_static(src: Path, dst: Path, op_types: list[str], excluded: list[str],
                     feeds: list[dict]) -> None:
    from bench.optimize.calibration import QDQ_SETTINGS, calibrated_qdq

    # The calibrator records only tensors whose type ONNX's shape inference knows, and that
    # inference cannot type the fused graphs' contrib ops (SkipLayerNormalization, Attention) or
    # anything after them; ORT's symbolic shape inference can. Without it, every convolution
    # downstream of a fused block had no range ("Unable to get valid quantization scale").
    typed = dst.with_suffix(".typed.onnx")
    try:
        import onnx
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        onnx.save(SymbolicShapeInference.infer_shapes(onnx.load(str(src)), auto_merge=True), str(typed))
        src = typed
    except Exception:  # noqa: BLE001 - then the quantizer works from the graph as it is
        pass
    try:
        calibrated_qdq(src, dst, op_types, excluded, feeds, QDQ_SETTINGS)
    finally:
        typed.unlink(missing_ok=True)

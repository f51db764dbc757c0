"""int8 quantization of the exported graphs. The settings are a first-class parameter.

Stock `quantize_dynamic` (every op type, per-tensor) made an ESPnet conformer encoder
2-4x slower than float on this machine class; MatMul-only, per-channel, constant-weight
only was ~1.25x faster (DESIGN.md). The default here is the setting that pays; the
settings used are recorded with every result.
"""
from __future__ import annotations

import logging
from pathlib import Path

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
}


def quantize(src: Path, dst: Path, settings: dict | None = None) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic warns on the root logger to run its pre-processing; we record settings instead
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
    s = {**DEFAULT_SETTINGS, **(settings or {})}
    if s["method"] != "dynamic":
        raise ValueError(f"quantization method {s['method']!r} is not supported yet (only 'dynamic')")
    import onnx

    graph = onnx.load(str(src), load_external_data=False).graph
    excluded = [n.name for n in graph.node if n.name.startswith(tuple(s["exclude_prefixes"]))]
    quantize_dynamic(
        str(src), str(dst), nodes_to_exclude=excluded,
        op_types_to_quantize=s["op_types"], per_channel=s["per_channel"],
        reduce_range=s["reduce_range"], weight_type=getattr(QuantType, s["weight_type"]),
        extra_options={"MatMulConstBOnly": s["matmul_const_b_only"]},
    )
    return s

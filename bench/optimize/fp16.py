"""float16 graphs for the GPU: weights and arithmetic in half precision, float32 at the graph
boundary (keep_io_types), so the runtime feeds and reads the same arrays as for any variant.

ORT's own converter (onnxruntime.transformers.float16) does the work; ONNX's shape inference
is skipped because it cannot type the fused graphs' contrib ops. On CUDA these graphs run on
tensor cores; on CPU ORT can still run them (slowly), which is how the derive-time check
runs on machines without a GPU.
"""
from __future__ import annotations

from pathlib import Path

SETTINGS = {"tool": "onnxruntime.transformers.float16.convert_float_to_float16",
            "keep_io_types": True, "disable_shape_infer": True}


def to_fp16(src: Path, dst: Path) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=True)
    onnx.save(model, str(dst))
    return dict(SETTINGS)

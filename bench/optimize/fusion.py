"""Offline graph fusion with ONNX Runtime's transformer optimizer (stock onnxruntime).

ORT already applies its built-in fusions when a session starts, so 'onnx' gets those too.
The offline optimizer adds the transformer-specific fusions (LayerNormalization,
SkipLayerNormalization, Gelu, Attention where the pattern is known). On ESPnet's conformer
it finds LayerNorms but not the relative-position attention (DESIGN.md). We record the
node counts before and after, so the report shows what was actually fused.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import onnx

SETTINGS = {"tool": "onnxruntime.transformers.optimizer", "model_type": "bert", "opt_level": 1}


def op_counts(path: Path) -> dict[str, int]:
    return dict(Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node))


def fuse(src: Path, dst: Path, num_heads: int, hidden_size: int,
         shape_inference: bool = True) -> dict:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    # The optimizer logs each fusion attempt at INFO/WARNING; keep the run's output readable.
    for name in ("onnxruntime.transformers", "symbolic_shape_infer", "fusion_skiplayernorm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    options = FusionOptions(SETTINGS["model_type"])
    options.enable_shape_inference = shape_inference
    model = optimize_model(str(src), model_type=SETTINGS["model_type"], num_heads=num_heads,
                           hidden_size=hidden_size, opt_level=SETTINGS["opt_level"],
                           optimization_options=options)
    model.save_model_to_file(str(dst))
    before, after = op_counts(src), op_counts(dst)
    changed = {op: after.get(op, 0) - before.get(op, 0) for op in set(before) | set(after)
               if after.get(op, 0) != before.get(op, 0)}
    return {**SETTINGS, "shape_inference": shape_inference, "nodes_before": sum(before.values()), "nodes_after": sum(after.values()),
            "op_count_changes": dict(sorted(changed.items()))}

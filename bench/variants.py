"""The registry of variants: how each is derived from the plain export and how it runs.

Adding a variant is adding one entry here. `runtime` says which recognizer runs it:
'torch' is ESPnet's own Speech2Text, 'onnx' is bench.runtime (which never imports torch).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

GRAPHS = ("encoder.onnx", "decoder.onnx")  # speech-to-text exports; others name theirs in info
DERIVE_VERSION = 2  # bump when a derivation changes, so cached artifacts are rebuilt


def _graphs(info: dict) -> list[str]:
    return list(info.get("graphs", GRAPHS))


def check_variant(src: Path, dst: Path, info: dict, atol: float | None) -> dict:
    """Run the derived graphs against the plain export with the check of the exporter's family."""
    if str(info.get("exporter", "")).startswith("tts"):
        from bench.export.tts import check_tts_variant

        return check_tts_variant(src, dst, info, atol)
    from bench.optimize.verify import check_variant as check_speech2text

    return check_speech2text(src, dst, info, atol)


def _copy_plain(src: Path, dst: Path, info: dict) -> dict:
    for g in _graphs(info):
        shutil.copyfile(src / g, dst / g)
    return {"graph_optimization": "onnxruntime session default (ORT_ENABLE_ALL, online)"}


def _fuse(src: Path, dst: Path, info: dict) -> dict:
    """Fuse, then verify; if the optimizer broke the graph, retry without its shape inference."""
    from bench.optimize.fusion import fuse
    from bench.optimize.verify import VariantCheckError

    rejected = []
    for shape_inference in (True, False):
        settings = {g: fuse(src / g, dst / g, info["num_heads"], info["d_model"], shape_inference)
                    for g in _graphs(info)}
        try:
            check = check_variant(src, dst, info, atol=1e-3)
        except VariantCheckError as e:
            rejected.append(f"shape_inference={shape_inference}: {e}")
            continue
        return {**settings, "check": check, "rejected": rejected}
    raise VariantCheckError("every fusion setting gave a broken graph:\n  " + "\n  ".join(rejected))


def _quantize_int8(src: Path, dst: Path, info: dict) -> dict:
    from bench.optimize.quantize import quantize

    settings = {g: quantize(src / g, dst / g) for g in _graphs(info)}
    # int8's deviation is a measured figure (agreement), so only runnability is checked here
    return {**settings, "check": check_variant(src, dst, info, atol=None)}


@dataclass(frozen=True)
class Variant:
    name: str
    runtime: str  # "torch" | "onnx"
    description: str
    derive: Callable[[Path, Path, dict], dict] | None = None
    devices: tuple[str, ...] = field(default=("cpu", "cuda"))


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("pytorch", "torch", "ESPnet Speech2Text in PyTorch eager mode (the reference)"),
    Variant("onnx", "onnx", "plain export, ORT's default online optimisations", _copy_plain),
    Variant("onnx-fused", "onnx", "offline transformer-optimizer fusion", _fuse),
    Variant("onnx-int8", "onnx", "dynamic int8: MatMul-only, per-channel weights", _quantize_int8),
]}
REFERENCE = "pytorch"


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    return VARIANTS[name]

"""Load the recognizer that runs a variant on a device (torch imported only for 'pytorch')."""
from __future__ import annotations

from pathlib import Path

from bench.variants import get_variant

PROVIDERS = {"cpu": ["CPUExecutionProvider"],
             "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def load_recognizer(artifact: Path, decode: dict, variant: str, device: str, threads: int):
    v = get_variant(variant)
    artifact = Path(artifact)
    if v.runtime == "torch":
        from bench.runtime.torch_asr import TorchSpeech2Text

        return TorchSpeech2Text(artifact / "exp", decode, threads=threads, device=device)
    from bench.runtime.onnx_asr import OnnxSpeech2Text, load_export_meta

    return OnnxSpeech2Text(artifact / "variants" / variant, artifact / "exp",
                           load_export_meta(artifact), decode, threads=threads,
                           providers=PROVIDERS[device])


def model_size_mb(artifact: Path, variant: str) -> float:
    v = get_variant(variant)
    artifact = Path(artifact)
    files = [artifact / "exp" / "model.pth"] if v.runtime == "torch" else \
        list((artifact / "variants" / variant).glob("*.onnx"))
    return sum(f.stat().st_size for f in files) / 2**20

"""Load the runtime that runs a variant on a device (torch imported only for 'pytorch').

What to load is read from the artifact itself (artifact.json names its task family and
the ESPnet task that built it), so a child process needs only the artifact's path; the
family (bench.families) picks the runtime class.
"""
from __future__ import annotations

from pathlib import Path

from bench.artifacts import artifact_info
from bench.families import get_family
from bench.variants import get_variant

PROVIDERS = {"cpu": ["CPUExecutionProvider"],
             "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def load_recognizer(artifact: Path, decode: dict, variant: str, device: str, threads: int):
    from bench.measure.inject import maybe_slowed

    return maybe_slowed(_load(artifact, decode, variant, device, threads), variant)


def _load(artifact: Path, decode: dict, variant: str, device: str, threads: int):
    info = artifact_info(Path(artifact))
    family = get_family(info.get("family"))
    return family.load(Path(artifact), decode, get_variant(variant), device, threads,
                       info.get("espnet_task", "asr"), PROVIDERS[device])


def model_size_mb(artifact: Path, variant: str) -> float:
    v = get_variant(variant)
    artifact = Path(artifact)
    exp = artifact / "exp"
    files = [exp / "model.pth", *(exp / "vocoder").glob("*.pth")] if v.runtime == "torch" else \
        list((artifact / "variants" / variant).glob("*.onnx"))
    return sum(f.stat().st_size for f in files) / 2**20

"""Load the runtime that runs a variant on a device (torch imported only for 'pytorch').

What to load is read from the artifact itself (artifact.json names its task family and
the ESPnet task that built it), so a child process needs only the artifact's path.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from bench.artifacts import artifact_info
from bench.variants import get_variant

PROVIDERS = {"cpu": ["CPUExecutionProvider"],
             "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def _artifact_task(artifact: Path) -> tuple[str, str]:
    info = artifact_info(artifact)
    return info.get("family", "speech2text"), info.get("espnet_task", "asr")


def load_recognizer(artifact: Path, decode: dict, variant: str, device: str, threads: int):
    from bench.measure.inject import maybe_slowed

    return maybe_slowed(_load(artifact, decode, variant, device, threads), variant)


def _load(artifact: Path, decode: dict, variant: str, device: str, threads: int):
    v = get_variant(variant)
    artifact = Path(artifact)
    family, espnet_task = _artifact_task(artifact)
    if family == "text2speech":
        return _load_tts(artifact, decode, v, device, threads)
    if v.runtime == "torch":
        from bench.runtime.torch_asr import TorchSpeech2Text

        rec = TorchSpeech2Text(artifact / "exp", decode, threads=threads, device=device,
                               espnet_task=espnet_task)
    else:
        from bench.runtime.onnx_asr import OnnxSpeech2Text, load_export_meta

        rec = OnnxSpeech2Text(artifact / "variants" / variant, artifact / "exp",
                              load_export_meta(artifact), decode, threads=threads,
                              providers=PROVIDERS[device])
    if decode.get("segment_seconds"):
        from bench.runtime.long_form import LongForm

        rec = LongForm(rec, _model_rate(artifact / "exp"), decode["segment_seconds"])
    return rec


def _model_rate(exp_dir: Path) -> int:
    from bench.data.sets import SAMPLE_RATE, parse_rate

    fs = ((yaml.safe_load((exp_dir / "config.yaml").read_text()) or {}).get("frontend_conf") or {}).get("fs")
    return parse_rate(fs) if fs else SAMPLE_RATE


def _load_tts(artifact: Path, decode: dict, v, device: str, threads: int):
    if v.runtime == "torch":
        from bench.runtime.torch_tts import TorchText2Speech

        return TorchText2Speech(artifact / "exp", decode, threads=threads, device=device)
    from bench.runtime.onnx_asr import load_export_meta
    from bench.runtime.onnx_tts import OnnxText2Speech

    return OnnxText2Speech(artifact / "variants" / v.name, artifact / "exp",
                           load_export_meta(artifact), decode, threads=threads,
                           providers=PROVIDERS[device])


def model_size_mb(artifact: Path, variant: str) -> float:
    v = get_variant(variant)
    artifact = Path(artifact)
    exp = artifact / "exp"
    files = [exp / "model.pth", *(exp / "vocoder").glob("*.pth")] if v.runtime == "torch" else \
        list((artifact / "variants" / variant).glob("*.onnx"))
    return sum(f.stat().st_size for f in files) / 2**20

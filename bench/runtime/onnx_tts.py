"""TTS with ONNX Runtime: phoneme string -> token ids -> graph(s) -> waveform.

This module never imports torch: the process that measures an ONNX variant's memory
must hold only what a deployment would. The graphs are described in bench/export/tts.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bench.runtime.finite import require_finite
from bench.runtime.onnx_asr import load_session

SPECIAL = ("<blank>", "<unk>", "<sos/eos>")


@dataclass
class Synthesis:
    wave: np.ndarray  # float32, (samples,)
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.wave.shape[0] / self.sample_rate


class PhonemeTokens:
    """Phoneme string -> ids, as ESPnet's Text2Speech preprocess does with g2p and cleaner
    off (split on spaces, look up tokens.txt), but strict: ESPnet maps an unknown symbol to
    <unk> in silence, here it is an error that names the symbol. Runs of whitespace count as
    one separator (ESPnet would turn an empty piece into <unk>)."""

    def __init__(self, exp_dir: Path):
        exp_dir = Path(exp_dir)
        cfg = yaml.safe_load((exp_dir / "config.yaml").read_text())
        if cfg.get("g2p") or cfg.get("cleaner"):
            raise ValueError(f"{exp_dir}: the runtime takes phonemes; this model's config has "
                             f"g2p={cfg.get('g2p')!r}, cleaner={cfg.get('cleaner')!r}")
        lines = (exp_dir / cfg["token_list"]).read_text(encoding="utf-8").splitlines()
        tokens = [t for t in lines if t]
        self.ids = {t: i for i, t in enumerate(tokens)}

    def split(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise ValueError(f"text must be a phoneme string, got {type(text).__name__}")
        symbols = text.split()
        if not symbols:
            raise ValueError("empty text: nothing to synthesise (expected space-separated "
                             "phonemes such as 'HH AH0 L OW1')")
        for i, s in enumerate(symbols):
            if s not in self.ids or s in SPECIAL:
                raise ValueError(f"unknown phoneme {s!r} at position {i + 1} of the text "
                                 f"(not in the model's token list of {len(self.ids)} symbols)")
        return symbols

    def __call__(self, text: str) -> list[int]:
        return [self.ids[s] for s in self.split(text)]


def vits_noise(seed: int, channels: int, frames: int) -> np.ndarray:
    """The flow's standard-normal draw (1, channels, frames): the same for PyTorch and ONNX."""
    return np.random.default_rng(seed).standard_normal((1, channels, frames), dtype=np.float32)


def vits_durations(n_tokens: int, decode: dict) -> np.ndarray:
    if "token_frames" not in decode:
        raise ValueError("VITS needs decode.token_frames: the stochastic duration predictor "
                         "is not exported (fixed durations keep every variant comparable)")
    return np.full((1, n_tokens), int(decode["token_frames"]), dtype=np.int64)


class OnnxText2Speech:
    def __init__(self, graphs_dir: Path, exp_dir: Path, export_meta: dict, decode: dict,
                 threads: int = 1, providers: list[str] | None = None):
        providers = providers or ["CPUExecutionProvider"]
        self.meta, self.decode = export_meta, decode
        self.kind = export_meta["kind"]
        self.graphs_dir = Path(graphs_dir)
        self.sessions = {g: load_session(Path(graphs_dir) / g, threads, providers)
                         for g in export_meta["graphs"]}
        self.tokens = PhonemeTokens(exp_dir)
        self.sample_rate = int(export_meta["sample_rate"])
        if self.kind == "vits":
            vits_durations(1, decode)  # fail at load, not on the first utterance

    def token_ids(self, text: str) -> np.ndarray:
        ids = self.tokens(text)
        if self.meta.get("eos") is not None:  # FastSpeech2.inference appends eos itself
            ids = ids + [int(self.meta["eos"])]
        return np.asarray(ids, dtype=np.int64)[None]

    def __call__(self, text: str) -> Synthesis:
        ids = self.token_ids(text)
        if self.kind == "fastspeech2":
            alpha = np.full(1, self.decode.get("speed_control_alpha", 1.0), np.float32)
            mel, _ = self.sessions["acoustic.onnx"].run(None, {"text": ids, "alpha": alpha})
            (wave,) = self.sessions["vocoder.onnx"].run(None, {"mel": mel})
        elif self.kind == "vits":
            durations = vits_durations(ids.shape[1], self.decode)
            noise = vits_noise(int(self.decode.get("seed", 0)), self.meta["noise_channels"],
                               int(durations.sum()))
            scale = np.full(1, self.decode.get("noise_scale", 0.667), np.float32)
            (wave,) = self.sessions["vits.onnx"].run(
                None, {"text": ids, "durations": durations, "noise": noise, "noise_scale": scale})
        else:
            raise ValueError(f"unknown TTS graph kind {self.kind!r} in the export metadata")
        require_finite(wave, "synthesized waveform", self.graphs_dir)
        return Synthesis(wave=wave.reshape(-1).astype(np.float32), sample_rate=self.sample_rate)

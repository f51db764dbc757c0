"""TTS pieces of an experiment directory: normalisation statistics and a vocoder.

Statistics: a recipe's collect-stats stage measures the training audio; a card names a
folder of real clips under ../shared instead (`model.stats_audio`), measured with the
model's own feature, pitch and energy extractors, so the card alone decides the model.

Vocoder: FastSpeech2 predicts a mel spectrogram; a card may add ESPnet's HiFiGAN generator
(`model.vocoder`), built with the same seed and saved in exp_dir/vocoder/ (config.yaml and
model.pth), so text-to-wave runs without Griffin-Lim or a downloaded vocoder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from bench.data.audio import resample
from bench.zoo.cards import Card, CardError
from bench.zoo.exp_dir import load_weights
from bench.zoo.tokens import shared_file

# config field of the normaliser -> (its conf field, the extractor field, stats file name)
NORMALIZERS = {"normalize": ("normalize_conf", "feats_extract", "feats_stats.npz"),
               "pitch_normalize": ("pitch_normalize_conf", "pitch_extract", "pitch_stats.npz"),
               "energy_normalize": ("energy_normalize_conf", "energy_extract", "energy_stats.npz")}


def write_tts_stats(card: Card, exp_dir: Path, args: dict) -> dict:
    """Global-MVN statistics for every normaliser the config uses; the config fields."""
    wanted = [k for k in NORMALIZERS if args.get(k) == "global_mvn"]
    if not wanted:
        return {}
    import soundfile as sf
    import torch
    from espnet2.tasks.tts import (energy_extractor_choices, feats_extractor_choices,
                                   pitch_extractor_choices)

    folder = card.model.get("stats_audio")
    if not folder:
        raise CardError(f"{card.path}: a global_mvn normaliser needs model.stats_audio "
                        "(a folder of wav files under ../shared)")
    wavs = sorted(shared_file(card, folder).glob("*.wav"))
    if not wavs:
        raise CardError(f"{card.path}: no .wav files in ../shared/{folder}")
    choices = {"feats_extract": feats_extractor_choices, "pitch_extract": pitch_extractor_choices,
               "energy_extract": energy_extractor_choices}
    extractors = {}
    for key in wanted:
        ext = NORMALIZERS[key][1]
        conf = dict(args.get(f"{ext}_conf") or {})
        if ext != "feats_extract":
            # frame-level values: token averaging needs durations, which plain audio lacks
            conf["use_token_averaged_f0" if ext == "pitch_extract"
                 else "use_token_averaged_energy"] = False
        extractors[key] = choices[ext].get_class(args[ext])(**conf)

    fs = int((args.get("feats_extract_conf") or {}).get("fs", 22050))
    sums = {k: [0.0, 0.0, 0] for k in wanted}
    with torch.no_grad():
        for wav in wavs:
            x, sr = sf.read(wav, dtype="float32")
            if sr != fs:  # statistics at the model's rate (mini_an4's 16 kHz models on 22.05 kHz clips)
                x = resample(x, sr, fs).astype(np.float32)
            x = torch.from_numpy(x)[None]
            lens = torch.tensor([x.shape[1]])
            feats, flens = extractors["normalize"](x, lens) if "normalize" in extractors \
                else (None, None)
            for key, ext in extractors.items():
                y = feats if key == "normalize" else ext(x, lens, feats_lengths=flens)[0]
                y = y[0].double().numpy()
                sums[key][0] = sums[key][0] + y.sum(0)
                sums[key][1] = sums[key][1] + (y * y).sum(0)
                sums[key][2] += y.shape[0]
    fields = {}
    for key, (s, sq, n) in sums.items():
        conf_key, _, name = NORMALIZERS[key]
        np.savez(exp_dir / name, count=np.array(n), sum=s, sum_square=sq)
        fields[conf_key] = {"stats_file": name}
    return fields


def build_vocoder(card: Card, vocoder_dir: Path, seed: int) -> None:
    """ESPnet's HiFiGAN generator of the card's size, seeded, saved as config.yaml + model.pth."""
    import torch

    spec = card.model["vocoder"]
    if spec.get("type") != "hifigan_generator":
        raise CardError(f"{card.path}: model.vocoder.type is {spec.get('type')!r}, "
                        "expected 'hifigan_generator'")
    vocoder_dir.mkdir(parents=True, exist_ok=True)
    cfg = {"vocoder_type": spec["type"], "vocoder_params": spec.get("params", {}),
           "fs": spec.get("fs")}
    (vocoder_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    torch.manual_seed(seed)
    torch.save(_hifigan(cfg).state_dict(), vocoder_dir / "model.pth")


def _hifigan(cfg: dict):
    from espnet2.gan_tts.hifigan import HiFiGANGenerator

    return HiFiGANGenerator(**cfg["vocoder_params"])


def load_vocoder(exp_dir: Path) -> "Vocoder":
    """The experiment's vocoder, ready to turn a mel spectrogram into a wave."""
    vdir = Path(exp_dir) / "vocoder"
    if not (vdir / "config.yaml").exists():
        raise CardError(f"{vdir}: no vocoder in this experiment directory")
    cfg = yaml.safe_load((vdir / "config.yaml").read_text())
    generator = _hifigan(cfg)
    load_weights(generator, vdir / "model.pth", vdir / "config.yaml")
    return Vocoder(generator.eval(), cfg.get("fs"))


class Vocoder:
    """mel (T, n_mels) -> wave (T x hop,): the call Text2Speech makes on its `vocoder`, so an
    instance can stand in for the Griffin-Lim one it builds when given no vocoder file."""

    def __init__(self, generator, fs: int | None):
        self.generator, self.fs = generator, fs

    def __call__(self, mel):
        import torch

        with torch.no_grad():
            return self.generator.inference(mel).view(-1)

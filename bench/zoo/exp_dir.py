"""The parts every builder of an ESPnet experiment directory shares: ESPnet's ASR defaults,
normalisation statistics, weights (seeded or from a checkpoint, with clear mismatch errors),
and `resolved_config`, which makes config.yaml's relative paths absolute for ESPnet so an
artifact can move (cache, device machine) and still load. A leaf of bench.zoo: the builders
(build_asr, build_tasks, build_tts, user_model) import it, it imports none of them.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml

from bench.zoo.cards import Card, CardError, card_file
from bench.zoo.tokens import read_tokens, shared_file

PATH_FIELDS = ("token_list", "bpemodel", "src_token_list", "src_bpemodel")
# normalisers whose statistics file lives in the experiment directory (TTS has three)
STATS_FIELDS = ("normalize_conf", "pitch_normalize_conf", "energy_normalize_conf")


def asr_task():
    # ESPnet's task module pulls in much of ESPnet; import it only where a model is built.
    from espnet2.tasks.asr import ASRTask

    from bench.espnet_layout import prepare_espnet

    prepare_espnet("asr")  # a transducer model constructs its training loss; our encoders

    return ASRTask


def default_args() -> dict:
    """Every field ASRTask expects, at ESPnet's own defaults."""
    return vars(asr_task().get_parser().parse_args(["--output_dir", "unused"]))


def write_stats(card: Card, exp_dir: Path) -> None:
    """Global-MVN statistics: the shared LibriSpeech ones, or computed on built-in speech.

    'computed' always uses the built-in synthetic set, never the evaluation data, so the
    card alone decides the model (and its cache key).
    """
    spec = card.model.get("normalize_stats", "computed")
    out = exp_dir / "feats_stats.npz"
    if isinstance(spec, str) and spec.startswith("shared:"):
        src = np.load(shared_file(card, spec.split(":", 1)[1]))
        np.savez(out, count=src["count"], sum=src["sum"], sum_square=src["sum_square"])
        return
    if isinstance(spec, str) and spec.startswith("file:"):  # a trained card's training-set stats
        shutil.copyfile(card_file(card, spec.split(":", 1)[1]), out)
        return
    if spec != "computed":
        raise CardError(f"{card.path}: model.normalize_stats is {spec!r}, "
                        "expected 'computed', 'shared:PATH' or 'file:PATH'")
    import torch
    from espnet2.asr.frontend.default import DefaultFrontend

    from bench.data.espeak import builtin_eval_set

    waves = [u.load(16000) for u in builtin_eval_set(n=4)]
    frontend = DefaultFrontend(fs=16000, **card.model["espnet"].get("frontend_conf", {}))
    total, total_sq, count = 0.0, 0.0, 0
    with torch.no_grad():
        for w in waves:
            x = torch.from_numpy(np.asarray(w, dtype=np.float32))[None]
            feats, _ = frontend(x, torch.tensor([x.shape[1]]))
            f = feats[0].double().numpy()
            total = total + f.sum(0)
            total_sq = total_sq + (f * f).sum(0)
            count += f.shape[0]
    np.savez(out, count=np.array(count), sum=total, sum_square=total_sq)


def parse_weights(card: Card) -> tuple[str, str]:
    spec = str(card.model.get("weights", "random:0"))
    kind, _, arg = spec.partition(":")
    if kind == "random" and arg.isdigit():
        return "random", arg
    if kind == "file" and arg:
        return "file", arg
    raise CardError(f"{card.path}: model.weights is {spec!r}, expected 'random:SEED' or 'file:PATH'")


def load_weights(model, path: Path, config_source) -> None:
    """Load a checkpoint into the model its config builds; a mismatch names both files and
    the first differing parameters (torch's own message lists hundreds)."""
    state = load_checkpoint(path)
    if not isinstance(state, dict):
        raise CardError(f"{path}: checkpoint is a {type(state).__name__}, not a state dict")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} (config gives {tuple(own[k].shape)})"
              for k in own if k in state and hasattr(state[k], "shape")
              and tuple(state[k].shape) != tuple(own[k].shape)]
    faults = [f"{len(lst)} {what}, e.g. {', '.join(lst[:3])}"
              for what, lst in (("parameters of different shape", shapes),
                                ("parameters missing", missing),
                                ("unexpected parameters", unexpected)) if lst]
    if faults:
        raise CardError(f"{path}: checkpoint does not match the model that {config_source} "
                        f"describes: {'; '.join(faults)}")
    model.load_state_dict(state)


def load_checkpoint(path: Path) -> dict:
    import torch

    if not path.exists():
        raise CardError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file
        raise CardError(f"{path}: checkpoint is unreadable or corrupt ({type(e).__name__}: {e})") from e


def namespace(cfg_path: Path):
    import argparse

    return argparse.Namespace(**yaml.safe_load(Path(cfg_path).read_text()))


class resolved_config:
    """Context manager: a temporary copy of exp_dir/config.yaml with absolute paths.

    ESPnet opens token_list, bpemodel and the MVN stats relative to the working directory.
    """

    def __init__(self, exp_dir: Path):
        self.exp_dir = Path(exp_dir).resolve()

    def __enter__(self) -> Path:
        cfg_file = self.exp_dir / "config.yaml"
        if not cfg_file.exists():
            raise CardError(f"{cfg_file}: config.yaml missing from the experiment directory")
        cfg = yaml.safe_load(cfg_file.read_text())
        for key in PATH_FIELDS:
            if cfg.get(key):
                cfg[key] = str(self.exp_dir / cfg[key])
        for key in ("token_list", "src_token_list"):
            if cfg.get(key):
                # ESPnet accepts the list itself; reading it here gives a clear error early.
                cfg[key] = read_tokens(Path(cfg[key]))
        for key in STATS_FIELDS:
            stats = (cfg.get(key) or {}).get("stats_file")
            if stats:
                cfg[key]["stats_file"] = str(self.exp_dir / stats)
        self._tmp = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        yaml.safe_dump(cfg, self._tmp)
        self._tmp.close()
        return Path(self._tmp.name)

    def __exit__(self, *exc):
        Path(self._tmp.name).unlink(missing_ok=True)

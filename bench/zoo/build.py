"""Card -> ESPnet experiment directory: which builder makes it, and loading it back.

A user's model (weights 'user:...') is copied (bench/zoo/user_model.py), an ASR card built by
bench/zoo/build_asr.py, SLU, ST and TTS cards by their ESPnet task classes
(bench/zoo/build_tasks.py). The helpers they share are in bench/zoo/exp_dir.py.
"""
from __future__ import annotations

from pathlib import Path

from bench.zoo.cards import Card
from bench.zoo.exp_dir import load_weights, namespace, resolved_config


def build_exp_dir(card: Card, exp_dir: Path) -> Path:
    """Build the card's model with ESPnet and save it as an experiment directory."""
    if str(card.model.get("weights", "")).startswith("user:"):  # a user's model: copied, not built
        from bench.zoo.user_model import build_user_exp

        return build_user_exp(card, exp_dir)
    if card.task != "asr":
        from bench.zoo.build_tasks import build_task_exp_dir

        return build_task_exp_dir(card, exp_dir)
    from bench.zoo.build_asr import build_asr_exp_dir

    return build_asr_exp_dir(card, exp_dir)


def load_model(exp_dir: Path, espnet_task: str = "asr"):
    """The ESPnet model of an experiment directory, in eval mode (for export).
    `espnet_task`: the name of the ESPnet task that built it (bench.zoo.build_tasks.ESPNET_TASKS)."""
    from bench.zoo.build_tasks import task_class

    task = task_class(espnet_task)
    model_file = Path(exp_dir) / "model.pth"
    with resolved_config(exp_dir) as cfg:
        model = task.build_model(namespace(cfg))
    load_weights(model, model_file, Path(exp_dir) / "config.yaml")
    return model.eval()

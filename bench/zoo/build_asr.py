"""ASR card -> ESPnet experiment directory (config.yaml + model.pth), through ESPnet's ASRTask.

The directory looks like one a recipe produces, so ESPnet's own Speech2Text loads it.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from bench.zoo.build_tasks import set_parameters
from bench.zoo.cards import Card, card_file
from bench.zoo.exp_dir import (asr_task, default_args, load_weights, namespace, parse_weights,
                               resolved_config, write_stats)
from bench.zoo.tokens import write_tokens


def build_asr_exp_dir(card: Card, exp_dir: Path) -> Path:
    """Build an ASR card's model with ESPnet's ASRTask and save it as an experiment directory."""
    import torch

    exp_dir.mkdir(parents=True, exist_ok=True)
    token_fields = write_tokens(card, exp_dir)
    write_stats(card, exp_dir)

    args = default_args()
    args.update(card.model["espnet"])
    args.update(token_fields)
    args["token_list"] = "tokens.txt"
    args["normalize_conf"] = {"stats_file": "feats_stats.npz"}
    args["input_size"] = None
    args["output_dir"] = None
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(args, sort_keys=False))

    kind, arg = parse_weights(card)
    with resolved_config(exp_dir) as cfg:
        torch.manual_seed(int(arg) if kind == "random" else 0)
        model = asr_task().build_model(namespace(cfg))
    if kind == "file":
        load_weights(model, card_file(card, arg), card.path)
    else:
        set_parameters(card, model)
    torch.save(model.state_dict(), exp_dir / "model.pth")
    return exp_dir

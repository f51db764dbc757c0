"""Card -> ESPnet experiment directory for the tasks beyond plain ASR: SLU, ST and TTS.

Each is built through ESPnet's own task class, like the ASR cards (bench/zoo/build.py):
SLU through ASRTask (ESPnet's SLURP asr1 recipe is an ASR task whose transcript starts with
the intent) or, where a card says `espnet_task: slu`, SLUTask (the slu1 recipe), ST through STTask, TTS through TTSTask or, for GAN models such as VITS, GANTTSTask.
The directory holds config.yaml and model.pth with paths relative to it, so ESPnet's own
inference classes load it through `resolved_config`, like an ASR experiment.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from bench.zoo.cards import Card, CardError, card_file
from bench.zoo.exp_dir import load_weights, namespace, parse_weights, resolved_config, write_stats
from bench.zoo.tokens import write_tokens

# ESPnet's task classes by the name its recipes use (asr.sh, st.sh, tts.sh --tts_task).
ESPNET_TASKS = {"asr": "espnet2.tasks.asr:ASRTask", "slu": "espnet2.tasks.slu:SLUTask",
                "st": "espnet2.tasks.st:STTask",
                "tts": "espnet2.tasks.tts:TTSTask", "gan_tts": "espnet2.tasks.gan_tts:GANTTSTask"}
# A card's task -> the ESPnet task that builds it, unless model.espnet_task says otherwise.
DEFAULT_ESPNET_TASK = {"asr": "asr", "slu": "asr", "st": "st", "tts": "tts"}


def espnet_task_name(card: Card) -> str:
    name = card.model.get("espnet_task", DEFAULT_ESPNET_TASK.get(card.task))
    if name is None:
        raise CardError(f"{card.path}: task {card.task!r} has no builder yet")
    if name not in ESPNET_TASKS:
        raise CardError(f"{card.path}: model.espnet_task is {name!r}, "
                        f"expected one of {sorted(ESPNET_TASKS)}")
    return name


def task_class(name: str):
    """ESPnet's task class by its name in ESPNET_TASKS."""
    # the task modules pull in much of ESPnet: import only the one needed, when needed
    from bench.espnet_layout import prepare_espnet

    prepare_espnet(name)  # a transducer model constructs its training loss; our ASR encoders
    module, cls = ESPNET_TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def espnet_task(card: Card):
    return task_class(espnet_task_name(card))


def build_task_exp_dir(card: Card, exp_dir: Path) -> Path:
    """Build a SLU, ST or TTS card's model with ESPnet and save it as an experiment directory."""
    import torch

    task = espnet_task(card)
    exp_dir.mkdir(parents=True, exist_ok=True)
    args = vars(task.get_parser().parse_args(["--output_dir", "unused"]))
    args.update(card.model["espnet"])
    tok = write_tokens(card, exp_dir)
    args.update(token_list="tokens.txt", token_type=tok["token_type"], bpemodel=tok["bpemodel"])
    if "src_tokens" in card.model:  # ST: the source-language vocabulary of the ASR branch
        src = write_tokens(card, exp_dir, key="src_tokens", filename="src_tokens.txt")
        args.update(src_token_list="src_tokens.txt", src_token_type=src["token_type"],
                    src_bpemodel=src["bpemodel"])
    args.update(_write_stats(card, exp_dir, args))
    for key in ("input_size", "odim"):  # features come from the model's own frontend
        if key in args:
            args[key] = None
    args["output_dir"] = None
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(args, sort_keys=False))

    kind, arg = parse_weights(card)
    seed = int(arg) if kind == "random" else 0
    with resolved_config(exp_dir) as cfg:
        torch.manual_seed(seed)
        model = task.build_model(namespace(cfg))
    if kind == "file":
        load_weights(model, card_file(card, arg), card.path)
    set_parameters(card, model)
    torch.save(model.state_dict(), exp_dir / "model.pth")
    if card.model.get("vocoder"):
        from bench.zoo.build_tts import build_vocoder

        build_vocoder(card, exp_dir / "vocoder", seed)
    return exp_dir


def set_parameters(card: Card, model) -> None:
    """Fill named parameters with the values the card gives (model.set_parameters), after the
    seeded initialisation: e.g. a FastSpeech2 duration predictor that random weights would
    make predict a frame or two for a whole sentence. ``name[i]`` sets one element of a
    vector (a transducer's blank logit bias)."""
    import re

    import torch

    wanted = card.model.get("set_parameters") or {}
    params = dict(model.named_parameters())
    for key, value in wanted.items():
        name, index = re.fullmatch(r"(.+?)(?:\[(\d+)\])?", str(key)).groups()
        if name not in params:
            raise CardError(f"{card.path}: model.set_parameters names {name!r}, which the model "
                            f"does not have")
        with torch.no_grad():
            if index is None:
                params[name].fill_(float(value))
            elif params[name].dim() != 1 or int(index) >= params[name].shape[0]:
                raise CardError(f"{card.path}: model.set_parameters {key!r}: {name} has shape "
                                f"{tuple(params[name].shape)}, not a vector with that element")
            else:
                params[name][int(index)] = float(value)


def _write_stats(card: Card, exp_dir: Path, args: dict) -> dict:
    """Normalisation statistics the config names, written into exp_dir; the config fields."""
    if espnet_task_name(card) in ("tts", "gan_tts"):
        from bench.zoo.build_tts import write_tts_stats

        return write_tts_stats(card, exp_dir, args)
    if args.get("normalize") != "global_mvn":  # utterance_mvn or none: nothing to store
        return {}
    write_stats(card, exp_dir)
    return {"normalize_conf": {"stats_file": "feats_stats.npz"}}


"""`python -m bench recipes DIR`: every training config in a folder of ESPnet recipe configs as a
card (the recipe's sizes, seeded random weights, its decode config), run quickly, one row each.

A config becomes a card built on the built-in paper card of its task (TEMPLATES): that card's
token list, statistics and data, with the config's model sections and the matching decode
config's settings in place of its own. A family the harness does not handle is refused before
anything is built, with the reason bench/zoo/model_family.py gives. The cards run through
`bench run --fast` (two timing rounds: a quick check, not a release figure); the table joins
each config's cases: parameters, `onnx` agreement with ESPnet and the speedup of each variant.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from bench.runtime.streaming import DEFAULT_CHUNK
from bench.zoo.cards import Card, load_card
from bench.zoo.model_family import GAN_TTS, STREAMING_ENCODERS, describe, is_ctc_only, refusal

# the ESPnet recipe folder names (egs2/<corpus>/<name>/) and the harness task each one is
RECIPE_TASKS = {"asr1": "asr", "st1": "st", "slu1": "slu", "tts1": "tts", "s2t1": "s2t"}
# built-in card whose tokens, statistics, data and decode defaults a recipe card takes over
TEMPLATES = {"asr": "asr-conformer-paper", "st": "st-conformer-paper",
             "slu": "slu-conformer-slutask-paper", "tts": "tts-fastspeech2-paper",
             "gan_tts": "tts-vits-paper", "jets": "tts-jets-paper", "joint_text2wav": "tts-joint-paper",
             "tacotron2": "tts-tacotron2-paper", "transformer": "tts-transformer-paper"}
# the config sections that make the model (training settings such as optim or specaug are left
# out); normalize_conf's statistics file is the template's
MODEL_KEYS = (
    "frontend", "frontend_conf", "normalize", "model_conf", "ctc_conf", "joint_net_conf",
    "preencoder", "preencoder_conf", "encoder", "encoder_conf", "postencoder", "postencoder_conf",
    "decoder", "decoder_conf", "extra_asr_decoder", "extra_asr_decoder_conf", "extra_mt_decoder",
    "extra_mt_decoder_conf", "deliberationencoder", "deliberationencoder_conf", "postdecoder",
    "postdecoder_conf", "tts", "tts_conf", "feats_extract", "feats_extract_conf", "pitch_extract",
    "pitch_extract_conf", "pitch_normalize", "energy_extract", "energy_extract_conf",
    "energy_normalize", "g2p", "cleaner")
# ESPnet's Speech2Text defaults (espnet2/bin/asr_inference.py, st_inference.py), for what a
# decode config leaves out; recipes' shell scripts pass global_mvn for normalize
ESPNET_DECODE = {"asr": {"beam_size": 20, "ctc_weight": 0.5, "penalty": 0.0, "maxlenratio": 0.0,
                         "minlenratio": 0.0},
                 "st": {"beam_size": 20, "ctc_weight": 0.0, "penalty": 0.0, "maxlenratio": 0.0,
                        "minlenratio": 0.0}}
ESPNET_DECODE["slu"] = ESPNET_DECODE["asr"]
MAX_BEAM = 10  # a quick run: wider recipe beams (LibriSpeech's 60) are capped, and the row says so
# Random weights put blank on a par with every label: ESPnet's transducer search then expands
# labels deep into every frame (20 min for 24 s of audio on mini_an4's debug transducer). A blank
# logit bias of ln(5000) + 3, for the templates' 5000 labels, makes blank ~95% likely where the
# other logits are near 0, so the search emits mostly blanks, as a trained transducer does.
TRANSDUCER_BLANK_BIAS = {"joint_network.lin_out.bias[0]": 11.5}
N_UTTERANCES = 3
# autoregressive TTS: the tts_conf key of the prenet dropout ESPnet applies at inference too
PRENET_DROPOUT = {"tacotron2": "dropout_rate", "transformer": "dprenet_dropout_rate"}
# what a streaming decode config sets beside the search (bench.runtime.streaming)
STREAMING_DECODE = ("sim_chunk_length", "disable_repetition_detection", "decoder_text_length_limit",
                    "encoded_feat_length_limit")
_WORD = re.compile(r"[a-z]+")
_NOT_A_CUE = {"train", "decode", "conf", "yaml", "tuning"}


@dataclass
class Recipe:
    """One training config and what became of it."""

    path: Path
    task: str
    family: str
    refused: str | None = None
    decode_path: Path | None = None
    decode_notes: list[str] = field(default_factory=list)
    card: dict | None = None

    @property
    def name(self) -> str:
        return "recipe-" + re.sub(r"[^A-Za-z0-9._-]+", "-", self.path.stem).strip("-.")


def _load(path: Path) -> dict | None:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable YAML config ({e})") from None
    return doc if isinstance(doc, dict) else None


def is_training_config(doc: dict) -> bool:
    return "encoder" in doc or "tts" in doc


def recipe_task(path: Path, doc: dict) -> str:
    """The task, from the ESPnet recipe folder in the path or file name (.../asr1/conf/x.yaml,
    or the flattened 'corpus_asr1__x.yaml'), else from the config itself."""
    m = re.findall(r"(?:^|[_/])(asr1|st1|slu1|tts1|s2t1)(?=__|/)", path.as_posix())
    if m:
        return RECIPE_TASKS[m[-1]]
    if "tts" in doc:
        return "tts"
    if "extra_mt_decoder" in doc or {"mtlalpha", "asr_weight"} & set(doc.get("model_conf") or {}):
        return "st"
    return "asr"


def recipe_key(path: Path, root: Path) -> str:
    """Configs of one recipe share this: the file-name prefix before '__', else the recipe folder
    (the one above conf/ and conf/tuning/)."""
    if "__" in path.name:
        return path.name.split("__", 1)[0]
    folder = path.parent
    while folder.name in ("conf", "tuning") and folder != root:
        folder = folder.parent
    return folder.as_posix()


def decode_family(doc: dict, name: str) -> str:
    if "transducer_conf" in doc:
        return "transducer"
    if "sim_chunk_length" in doc or "streaming" in name:
        return "streaming"
    try:
        if float(doc.get("ctc_weight", 0.0)) == 1.0:
            return "ctc"
    except (TypeError, ValueError):
        pass
    return "attention"


def training_family(cfg: dict, task: str) -> str:
    from bench.zoo.model_family import STREAMING_ENCODERS

    if cfg.get("decoder") == "transducer":
        return "transducer"
    if cfg.get("encoder") in STREAMING_ENCODERS:
        return "streaming"
    if task == "asr" and is_ctc_only(cfg):
        return "ctc"
    return "attention"


def _cues(stem: str) -> set[str]:
    """The words of a config's own name (not its corpus prefix before '__')."""
    return set(_WORD.findall(stem.split("__")[-1].lower())) - _NOT_A_CUE


def match_decode(train: Path, cfg: dict, task: str, decodes: list[tuple[Path, dict]]) -> Path | None:
    """The recipe's decode config for this model: of the same family (transducer, streaming,
    CTC-only, attention; TTS: any), then sharing most words with the training config's name."""
    family = None if task == "tts" else training_family(cfg, task)
    cands = [(p, d) for p, d in decodes if family is None or decode_family(d, p.name) == family]
    scored = sorted(cands, key=lambda pd: (-len(_cues(pd[0].stem) & _cues(train.stem)), len(pd[0].name)))
    if not scored:
        return None
    best = scored[0][0]
    if task == "tts" and not _cues(best.stem) & _cues(train.stem):  # no TTS decode names this model
        return None
    return best


def discover(root: Path) -> list[Recipe]:
    """Every training config under root, with its task, family, decode config and card (or why not)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder of ESPnet recipe configs")
    docs = {}
    for p in sorted(root.rglob("*.y*ml")):
        doc = _load(p)
        if doc is not None:
            docs[p] = doc
    if not any(is_training_config(d) for d in docs.values()):
        raise ValueError(f"{root}: no ESPnet training config (a YAML file with 'encoder' or 'tts') in it")
    decodes: dict[str, list[tuple[Path, dict]]] = {}
    for p, d in docs.items():
        if not is_training_config(d) and "decode" in p.name:
            decodes.setdefault(recipe_key(p, root), []).append((p, d))
    out = []
    for p, cfg in docs.items():
        if not is_training_config(cfg):
            continue
        task = recipe_task(p, cfg)
        rec = Recipe(p, task, describe(cfg, task))
        if task == "s2t":
            rec.refused = ("ESPnet's s2t task (S2TTask: Whisper-style prompt and timestamp tokens) is "
                           "not a task the harness runs")
        else:
            if task == "tts" and cfg.get("tts") in PRENET_DROPOUT:
                cfg = _prenet_without_dropout(cfg, rec)
            rec.refused = refusal(cfg, task)
        rec.decode_path = match_decode(p, cfg, task, decodes.get(recipe_key(p, root), []))
        if rec.refused is None:
            rec.card = recipe_card(rec, cfg, docs.get(rec.decode_path) or {})
        out.append(rec)
    return out


def _prenet_without_dropout(cfg: dict, rec: "Recipe") -> dict:
    """ESPnet's Tacotron 2 prenet (also Transformer-TTS's decoder prenet) keeps its dropout on
    at inference: 0 makes the comparison deterministic (as tts-tacotron2-paper and
    tts-transformer-paper; bench/zoo/model_family.py refuses anything else)."""
    conf = cfg.get("tts_conf") or {}
    key = PRENET_DROPOUT[cfg["tts"]]
    rate = conf.get(key, 0.5)
    if float(rate) == 0.0:
        return cfg
    rec.decode_notes.append(f"tts_conf.{key} {rate} -> 0.0 (the prenet's dropout is on "
                            "at inference)")
    return {**cfg, "tts_conf": {**conf, key: 0.0}}


def recipe_card(rec: Recipe, cfg: dict, decode: dict) -> dict:
    """The card of one training config, as plain data (written out as YAML)."""
    gan = rec.task == "tts" and cfg.get("tts") in GAN_TTS
    key = cfg.get("tts") if rec.task == "tts" and cfg.get("tts") in TEMPLATES else \
        "gan_tts" if gan else rec.task
    template = load_card(TEMPLATES[key])
    model = {k: v for k, v in template.model.items() if k not in ("espnet", "set_parameters")}
    # what recipes set on the command line, not in the config: the text front end, and the
    # feature normaliser (asr.sh's global_mvn; tts.sh's as the template, none for GAN TTS)
    espnet = {k: template.model["espnet"][k]
              for k in ("g2p", "cleaner", "normalize", "feats_extract", "feats_extract_conf")
              if k in template.model["espnet"]}
    espnet.update({k: cfg[k] for k in MODEL_KEYS if k in cfg})
    if rec.task == "tts" and "feats_extract_conf" in cfg and "feats_extract_conf" in template.model["espnet"]:
        # the config's STFT settings over the template's: fs and the mel range are the data's
        espnet["feats_extract_conf"] = {**template.model["espnet"]["feats_extract_conf"],
                                        **(cfg["feats_extract_conf"] or {})}
    if rec.task != "tts":
        espnet.setdefault("normalize", "global_mvn")
        model["normalize_stats"] = "computed"  # from the config's own frontend, whatever its mel bins
    model["espnet"] = espnet
    wanted = {}
    if rec.task == "tts" and cfg.get("tts") == template.model["espnet"].get("tts"):
        # the template's duration bias: a sensible length at random weights
        wanted = template.model.get("set_parameters") or {}
    if cfg.get("decoder") == "transducer":
        wanted = TRANSDUCER_BLANK_BIAS
    if wanted:
        model["set_parameters"] = dict(wanted)
    return {
        "name": rec.name, "task": rec.task, "tier": "paper",
        "description": f"{rec.path.name} at the recipe's sizes with seeded random weights "
                       f"(bench recipes; built on {template.name})",
        "source": f"{rec.path}" + (f" with {rec.decode_path}" if rec.decode_path else ""),
        "model": model,
        "decode": _decode(rec, template, decode, cfg),
        "data": {**template.data, "n_utterances": N_UTTERANCES},
        "timing": {"subset": 1, "min_rounds": 2, "min_seconds": 0},  # speed on the middle one
    }


def _decode(rec: Recipe, template: Card, decode: dict, cfg: dict) -> dict:
    if rec.task == "tts":  # the template's settings, with those the recipe's decode config sets
        out = {**template.decode, **{k: v for k, v in decode.items() if k in template.decode}}
        keep = template.decode.get("minlenratio")
        if cfg.get("tts") in PRENET_DROPOUT and out.get("minlenratio") != keep:
            # the template's stop-token bias fires at every step: minlenratio sets the length
            rec.decode_notes.append(f"minlenratio {out['minlenratio']} -> {keep} (random weights)")
            out["minlenratio"] = keep
        return out
    out = {**template.decode, **ESPNET_DECODE[rec.task]}
    out.pop("transducer_conf", None)
    out.update({k: v for k, v in decode.items() if k in out or k == "transducer_conf"})
    if cfg.get("encoder") in STREAMING_ENCODERS:
        out.update({k: decode[k] for k in STREAMING_DECODE if k in decode})
        out.pop("segment_seconds", None)  # a stream is cut in chunks, never in segments
        if not out.get("sim_chunk_length"):  # ESPnet's default 0 feeds the whole utterance at once
            out["sim_chunk_length"] = DEFAULT_CHUNK
            rec.decode_notes.append(f"sim_chunk_length {DEFAULT_CHUNK} (none set: a stream needs chunks)")
    if decode.get("lm_weight"):
        rec.decode_notes.append(f"lm_weight {decode['lm_weight']} ignored: no language model")
    if out["beam_size"] > MAX_BEAM:
        rec.decode_notes.append(f"beam {out['beam_size']} -> {MAX_BEAM}")
        out["beam_size"] = MAX_BEAM
    if not out.get("maxlenratio") and cfg.get("decoder") != "transducer":
        # random weights seldom emit <eos>: every hypothesis would run to the encoder's length
        out["maxlenratio"] = template.decode.get("maxlenratio") or 0.15
        rec.decode_notes.append(f"maxlenratio 0 -> {out['maxlenratio']} (random weights)")
    whole = ("beam_size",) + STREAMING_DECODE
    return {k: (float(v) if isinstance(v, (int, float)) and k not in whole and not isinstance(v, bool)
                else v) for k, v in out.items()}


def write_cards(recipes: list[Recipe], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for rec in recipes:
        if rec.card is not None:
            p = folder / f"{rec.name}.yaml"
            p.write_text(yaml.safe_dump(rec.card, sort_keys=False))
            paths.append(p)
    return paths


# -- the table --------------------------------------------------------------------------------

def _agrees(case: Mapping | None) -> bool | None:
    """onnx's output against ESPnet's: token-identical text, or TTS audio within the gate's
    tolerance of mel-cepstral distortion."""
    from bench.baseline import DEFAULT_TOLERANCES

    if not case or case.get("status") != "ok":
        return None
    m = case["metrics"]
    if m.get("agreement_ter") is not None:
        return m["agreement_ter"] == 0.0
    if m.get("tts_distance") is not None:
        return m["tts_distance"] <= DEFAULT_TOLERANCES["tts_distance"]["value"]
    return None


def _agreement_cell(case: Mapping | None) -> str:
    if not case or case.get("status") != "ok":
        return "-"
    m = case["metrics"]
    if m.get("agreement_ter") is not None:
        return f"TER {m['agreement_ter']:.1f}"
    return f"MCD {m['tts_distance']:.2f} dB" if m.get("tts_distance") is not None else "-"


def _speed(case: Mapping | None) -> str:
    if not case:
        return "-"
    if case.get("status") != "ok":
        return case.get("status", "-")
    m = case["metrics"]
    if m.get("speedup") is None:
        return "-"
    noisy = (case.get("gate") or {}).get("verdict") == "invalid"  # two rounds too far apart
    return f"{m['speedup']:.2f}x" + (" (noisy)" if noisy else "")


def coverage_table(recipes: list[Recipe], doc: Mapping | list[Mapping] | None, root: Path,
                   variants: tuple[str, ...] = ("onnx", "onnx-fused", "onnx-int8")) -> str:
    """One row per training config, and the count of configs exported and agreeing. Several
    results documents (runs of parts of the folder) are joined: a config's cases come from the
    last run that has them."""
    docs = [doc] if isinstance(doc, Mapping) else list(doc or [])
    cases: dict[str, dict[str, Mapping]] = {}
    source: dict[str, str] = {}
    for d in docs:
        for card in {c["card"] for c in d.get("cases", [])}:
            cases[card] = {c["variant"]: c for c in d["cases"] if c["card"] == card}
            source[card] = d["run"]["id"]
    doc = docs[-1] if docs else None
    head = ["config", "task", "family", "decode config", "parameters", "onnx vs ESPnet"] + \
        [f"{v} speedup" for v in variants] + ["result"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    agreeing = 0
    for rec in recipes:
        own = cases.get(rec.name, {})
        ref = own.get("pytorch")
        params = ((ref or {}).get("settings") or {}).get("parameters")
        decode = rec.decode_path.name if rec.decode_path else "-"
        if rec.decode_notes:
            decode += " (" + "; ".join(rec.decode_notes) + ")"
        if rec.refused:
            result = f"refused: {rec.refused}"
        elif not own:
            result = "not run" if doc else "to run"
        else:
            failed: dict[str, list[str]] = {}  # one line per distinct error, naming its variants
            for v, c in own.items():
                if c.get("status") == "error":
                    failed.setdefault(str(c.get("error")), []).append(v)
            errors = [f"{', '.join(vs)}: {msg}" for msg, vs in failed.items()]
            ok = _agrees(own.get("onnx"))
            agreeing += bool(ok) and not errors
            result = ("error: " + "; ".join(errors)[:300]) if errors else \
                "exported, agrees" if ok else "exported, differs" if ok is False else "no agreement figure"
        cells = [rec.path.relative_to(root).as_posix(), rec.task, rec.family, decode,
                 f"{params:,}" if params else "-", _agreement_cell(own.get("onnx"))] + \
            [_speed(own.get(v)) for v in variants] + [result.replace("|", "/")]
        rows.append("| " + " | ".join(cells) + " |")
    rows.append("")
    refused = sum(r.refused is not None for r in recipes)
    if doc is None:  # --plan: nothing was built
        rows.append(f"{len(recipes) - refused} of {len(recipes)} training configs to build and run; "
                    f"{refused} refused by name.")
    else:
        rows.append(f"{agreeing} of {len(recipes)} training configs exported with `onnx` agreeing with "
                    f"ESPnet (text token-identical, TTS within the gate's distortion tolerance); "
                    f"{refused} refused by name.")
    for d in docs:
        run = d["run"]
        n = sum(1 for r in recipes if source.get(r.name) == run["id"])
        rows.append(f"Run {run['id']} ({n} configs), commit {str(run.get('git_commit'))[:10]}, machine class "
                    f"`{run['machine']['class']}`, {run.get('threads')} threads, "
                    f"{'2 timing rounds (--fast)' if run.get('fast') else 'full timing rule'}.")
    return "\n".join(rows)

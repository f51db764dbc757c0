"""`python -m bench zoo train CARD`: train a tiny card's model with ESPnet's own entry points.

The steps of ESPnet's asr.sh, minus the shell: data dirs from the generated corpus, a
SentencePiece model and token list, `asr_train --collect_stats` for shapes and global-MVN
statistics, then `asr_train` itself on CPU. A time budget (train.time_budget_min) stops a
run that would overrun; the best kept epochs are averaged as ESPnet does at its end. The
checkpoint, its tokens and statistics go to bench/zoo/checkpoints/CARD/ with training.json
(corpus hash, sizes, time, epochs) and the PyTorch figure on the held-out test split.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.paths import REPO_ROOT
from bench.zoo.cards import Card, CardError
from bench.zoo.corpus import ensure_corpus

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
ESPNET_TRAIN = {"asr": "espnet2.bin.asr_train", "slu": "espnet2.bin.asr_train", "st": "espnet2.bin.st_train"}


def _espnet_data_dir(corpus: Path, split: str, dst: Path) -> Path:
    """wav.scp with absolute paths (ESPnet opens them from its own working directory)."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in (corpus / split / "wav.scp").read_text().splitlines():
        uid, rel = line.split(maxsplit=1)
        lines.append(f"{uid} {(corpus / split / rel).resolve()}\n")
    (dst / "wav.scp").write_text("".join(lines))
    for name in ("text", "src_text"):  # src_text: the ST corpus's English transcript
        if (corpus / split / name).exists():
            shutil.copyfile(corpus / split / name, dst / name)
    return dst


def train_bpe(text_file: Path, out_dir: Path, spec: dict, user_symbols: list[str],
              prefix: str = "") -> tuple[Path, Path]:
    """SentencePiece model + ESPnet token list (<blank>, <unk>, pieces, <sos/eos>)."""
    import sentencepiece as spm

    sentences = out_dir / f"{prefix}bpe_train.txt"
    sentences.write_text("".join(line.split(maxsplit=1)[1] + "\n" for line in text_file.read_text().splitlines()))
    prefix = out_dir / f"{prefix}bpe"
    spm.SentencePieceTrainer.train(
        input=str(sentences), model_prefix=str(prefix), vocab_size=int(spec["vocab_size"]),
        model_type=spec.get("model_type", "unigram"), character_coverage=1.0,
        input_sentence_size=100_000_000, num_threads=1,  # one thread: same input, same model
        user_defined_symbols=user_symbols or None)
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
              if not (sp.is_unknown(i) or sp.is_control(i))]
    tokens = prefix.with_name(prefix.name.replace("bpe", "tokens") + ".txt")
    tokens.write_text("\n".join(["<blank>", "<unk>", *pieces, "<sos/eos>"]) + "\n")
    return Path(str(prefix) + ".model"), tokens


def _train_config(card: Card, work: Path) -> Path:
    t = card.train
    cfg = dict(card.model["espnet"])
    cfg.update({
        "max_epoch": int(t["max_epoch"]), "batch_type": "numel", "batch_bins": int(t["batch_bins"]),
        "accum_grad": int(t.get("accum_grad", 1)), "grad_clip": float(t.get("grad_clip", 5.0)),
        "optim": t["optim"], "optim_conf": t["optim_conf"],
        "scheduler": t["scheduler"], "scheduler_conf": t["scheduler_conf"],
        # the attention decoder's accuracy, unless the card names another (CTC-only: cer_ctc)
        "best_model_criterion": t.get("best_model_criterion", [["valid", "acc", "max"]]),
        "keep_nbest_models": int(t["keep_nbest_models"]),
        "seed": int(t.get("seed", 0)), "num_att_plot": 0, "log_interval": 50,
        "use_tensorboard": False, "use_matplotlib": False,  # neither is installed: the log is enough
    })
    path = work / "train.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _run(cmd: list[str], log: Path, budget_s: float | None = None) -> bool:
    """Run an ESPnet entry point; False if the time budget stopped it."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent)
        t0 = time.monotonic()
        while proc.poll() is None:
            if budget_s is not None and time.monotonic() - t0 > budget_s:
                proc.terminate()
                proc.wait(60)
                return False
            time.sleep(5)
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(f"{' '.join(cmd[:4])} failed (exit {proc.returncode}); see {log}:\n{tail}")
    return True


def average_kept_epochs(exp: Path) -> tuple[Path, list[str]]:
    """ESPnet's own average if the run finished, else the mean of the epochs it kept."""
    import torch

    done = sorted(exp.glob("valid.*.ave_*best.pth"))  # named after best_model_criterion
    if done:
        return done[0], [p.name for p in sorted(exp.glob("*epoch.pth"))]
    kept = sorted(exp.glob("*epoch.pth"), key=lambda p: int(p.name.split("epoch")[0]))
    if not kept:
        raise RuntimeError(f"{exp}: no epoch finished within the time budget")
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in kept]
    avg = {}
    for k, v in states[0].items():
        avg[k] = sum(s[k] for s in states) / len(states) if v.is_floating_point() else v
    out = exp / f"valid.acc.ave_{len(kept)}kept.pth"
    torch.save(avg, out)
    return out, [p.name for p in kept]


def train_card(card: Card, work_root: Path | None = None) -> dict:
    if not card.train:
        raise CardError(f"{card.path}: no 'train' section; only tier-accuracy cards are trained")
    if card.task not in ESPNET_TRAIN:
        raise CardError(f"{card.path}: training task {card.task!r} is not supported yet")
    t0 = time.monotonic()
    t = card.train
    corpus = ensure_corpus(t["corpus"], int(t.get("seed", 0)))
    work = Path(work_root or REPO_ROOT / ".cache" / "train") / card.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    train_dir = _espnet_data_dir(corpus, "train", work / "data" / "train")
    dev_dir = _espnet_data_dir(corpus, "dev", work / "data" / "dev")
    manifest = json.loads((corpus / "corpus.json").read_text())
    symbols = [i.upper() for i in manifest.get("intents", [])]  # SLU: each intent one token
    bpemodel, tokens = train_bpe(train_dir / "text", work, t["bpe"], symbols)
    src = {}  # ST: the source side (English) has its own BPE, for the encoder's CTC branch
    if card.task == "st":
        src["bpe"], src["tokens"] = train_bpe(train_dir / "src_text", work, t["src_bpe"], [], prefix="src_")
    config = _train_config(card, work)
    # ESPnet's trainer, through an entry that gives a transducer its loss (bench.espnet_layout)
    common = [sys.executable, "-m", "bench.zoo.espnet_entry", ESPNET_TRAIN[card.task],
              "--config", str(config), "--ngpu", "0",
              "--use_preprocessor", "true", "--token_type", "bpe", "--bpemodel", str(bpemodel),
              "--token_list", str(tokens), "--non_linguistic_symbols", "none", "--cleaner", "none",
              "--g2p", "none",
              "--train_data_path_and_name_and_type", f"{train_dir}/wav.scp,speech,sound",
              "--train_data_path_and_name_and_type", f"{train_dir}/text,text,text",
              "--valid_data_path_and_name_and_type", f"{dev_dir}/wav.scp,speech,sound",
              "--valid_data_path_and_name_and_type", f"{dev_dir}/text,text,text"]
    if src:
        common += ["--src_token_type", "bpe", "--src_bpemodel", str(src["bpe"]),
                   "--src_token_list", str(src["tokens"]),
                   "--train_data_path_and_name_and_type", f"{train_dir}/src_text,src_text,text",
                   "--valid_data_path_and_name_and_type", f"{dev_dir}/src_text,src_text,text"]
    stats = work / "stats"
    # like asr.sh: no normalisation while the statistics it needs are being collected
    _run(common + ["--collect_stats", "true", "--normalize", "none", "--num_workers", "0",
                   "--train_shape_file", f"{train_dir}/wav.scp", "--valid_shape_file", f"{dev_dir}/wav.scp",
                   "--output_dir", str(stats)], work / "collect_stats.log")
    shapes = {"text_shape": len(tokens.read_text().splitlines())}
    if src:
        shapes["src_text_shape"] = len(src["tokens"].read_text().splitlines())
    for split in ("train", "valid"):  # asr.sh appends the vocabulary size as the second dim
        for name, n_tokens in shapes.items():
            (stats / split / f"{name}.bpe").write_text(
                "".join(f"{line},{n_tokens}\n" for line in (stats / split / name).read_text().splitlines()))
    shape_args = [f"--{kind}_shape_file={stats}/{split}/{name}"
                  for kind, split in (("train", "train"), ("valid", "valid"))
                  for name in ["speech_shape", *(f"{n}.bpe" for n in shapes)]]
    t_prep = time.monotonic() - t0
    budget = float(t.get("time_budget_min", 45)) * 60 - t_prep
    exp = work / "exp"
    finished = _run(common + ["--normalize_conf", f"stats_file={stats}/train/feats_stats.npz",
                              "--num_workers", "1", *shape_args,
                              "--output_dir", str(exp)], work / "train.log", budget_s=budget)
    model, epochs = average_kept_epochs(exp)
    out = CHECKPOINTS / card.name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, out / "model.pth")
    shutil.copyfile(tokens, out / "tokens.txt")
    shutil.copyfile(bpemodel, out / "bpe.model")
    if src:
        shutil.copyfile(src["tokens"], out / "src_tokens.txt")
        shutil.copyfile(src["bpe"], out / "src_bpe.model")
    shutil.copyfile(stats / "train" / "feats_stats.npz", out / "feats_stats.npz")
    shutil.copyfile(config, out / "train.yaml")
    info = {"card": card.name, "corpus": {"kind": manifest["kind"], "seed": manifest["seed"],
                                          "sha256": manifest["sha256"], "splits": manifest["splits"]},
            "finished_all_epochs": finished, "averaged": epochs,
            "train_minutes": round((time.monotonic() - t0) / 60, 1),
            "model_mb": round((out / "model.pth").stat().st_size / 2**20, 2),
            "torch_threads": os.cpu_count()}
    (out / "training.json").write_text(json.dumps(info, indent=2))
    return info


def evaluate_card(card: Card, record: bool = True) -> dict:
    """The PyTorch figure on the card's held-out split: WER/CER, intent accuracy for SLU, BLEU
    for ST, scored as the suites score them (bench.tasks). `record` writes it into the
    checkpoint's training.json."""
    import tempfile

    from bench.data.sets import load_eval_set
    from bench.families.speech2text import torch_runtime
    from bench.tasks import get_task
    from bench.zoo.build import build_exp_dir
    from bench.zoo.build_tasks import espnet_task_name

    utts = load_eval_set(card)
    with tempfile.TemporaryDirectory() as tmp:
        exp = build_exp_dir(card, Path(tmp) / "exp")
        rec = torch_runtime(exp)(exp, card.decode, threads=os.cpu_count() or 1,
                                 espnet_task=espnet_task_name(card))
        t0 = time.monotonic()
        outs = [rec(u.wave) for u in utts]
        seconds = time.monotonic() - t0
    figure = {"split": card.data.get("split", "test"), "utterances": len(utts), "decode": card.decode,
              "decode_seconds": round(seconds, 1)}
    metrics, notes = get_task(card.task).score([u.text for u in utts], outs, outs)
    names = {"bleu": "bleu", "intent_acc": "intent_accuracy", "wer": "wer", "cer": "cer"}
    if card.task == "st":  # a translation has no WER against its reference
        names = {"bleu": "bleu"}
    figure.update({names[k]: round(v, 2) for k, v in metrics.items() if k in names and v is not None})
    figure.update({k: v for k, v in notes.items() if k == "bleu_signature"})
    if not record:
        return figure
    info_file = CHECKPOINTS / card.name / "training.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {}
    info["test"] = figure
    info_file.parent.mkdir(parents=True, exist_ok=True)
    info_file.write_text(json.dumps(info, indent=2))
    return figure

"""`bench recipes`: recipe configs -> cards (task, family, decode config, refusals) and the coverage
table. The end-to-end run (build, export, agreement) is exercised on one tiny debug config."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.paths import REPO_ROOT
from bench.recipes import MAX_BEAM, MODEL_KEYS, coverage_table, discover, write_cards
from bench.zoo.cards import load_card

RECIPES = REPO_ROOT.parent / "shared" / "espnet-recipes"
pytestmark = pytest.mark.skipif(not RECIPES.is_dir(), reason=f"{RECIPES} not present")


@pytest.fixture(scope="module")
def recipes():
    return {r.path.name: r for r in discover(RECIPES)}


def test_every_training_config_is_found_once_and_decode_configs_are_not(recipes):
    configs = [p for p in RECIPES.rglob("*.yaml")
               if "encoder" in (d := yaml.safe_load(p.read_text()) or {}) or "tts" in d]
    assert sorted(recipes) == sorted(p.name for p in configs)
    assert not [n for n in recipes if "decode" in n]


@pytest.mark.parametrize("config, task, decode", [
    ("librispeech_100_asr1__train_asr_ctc_e_branchformer_e12_mlp1024_linear1024.yaml", "asr",
     "librispeech_100_asr1__decode_ctc_bs1.yaml"),
    ("librispeech_100_asr1__train_asr_transducer_conformer_e15_linear1024.yaml", "asr",
     "librispeech_100_asr1__decode_transducer.yaml"),
    ("librispeech_asr1__transducer_train_conformer-rnn_transducer.yaml", "asr",
     "librispeech_asr1__transducer_decode.yaml"),
    ("librispeech_100_asr1__train_asr_conformer_lr2e-3_warmup15k_amp_nondeterministic.yaml", "asr",
     "librispeech_100_asr1__decode_asr.yaml"),
    ("must_c_v2_st1__train_st_ctc_conformer_asrinit_v2.yaml", "st", "must_c_v2_st1__decode_st_conformer_ctc0.3.yaml"),
    ("must_c_v2_st1__train_st_conformer.yaml", "st", "must_c_v2_st1__decode_st_conformer.yaml"),
    ("slurp_slu1__train_asr_conformer.yaml", "slu", "slurp_slu1__decode_asr.yaml"),
    ("aishell_asr1__train_asr_streaming_conformer.yaml", "asr", "aishell_asr1__decode_asr_streaming.yaml"),
    ("ljspeech_tts1__train_conformer_fastspeech2.yaml", "tts", "ljspeech_tts1__decode_fastspeech.yaml"),
    ("ljspeech_tts1__train_transformer.yaml", "tts", None),  # no decode config names it
    ("mini_an4_asr1__train_asr_transducer_debug.yaml", "asr", None),  # mini_an4 has no transducer decode
])
def test_task_and_decode_config_follow_the_recipe_and_the_family(recipes, config, task, decode):
    rec = recipes[config]
    assert rec.task == task
    assert (rec.decode_path.name if rec.decode_path else None) == decode


@pytest.mark.parametrize("config, reason", [
    ("mini_an4_asr1__train_asr_rnn_debug.yaml", "encoder 'vgg_rnn' is not supported"),
    ("mini_an4_s2t1__train_slu_transformer.yaml", "ESPnet's s2t task"),
])
def test_families_not_handled_are_refused_by_name_before_anything_is_built(recipes, config, reason):
    assert recipes[config].refused.startswith(reason)
    assert recipes[config].card is None


@pytest.mark.parametrize("config, key", [("ljspeech_tts1__train_tacotron2.yaml", "dropout_rate"),
                                         ("ljspeech_tts1__train_transformer.yaml", "dprenet_dropout_rate")])
def test_autoregressive_tts_cards_turn_the_prenet_dropout_off_and_say_so(recipes, config, key):
    rec = recipes[config]
    assert rec.refused is None
    assert rec.card["model"]["espnet"]["tts_conf"][key] == 0.0
    assert any(n.startswith(f"tts_conf.{key} 0.5 -> 0.0") for n in rec.decode_notes)


def test_cards_carry_the_configs_model_sections_and_its_decode_settings(recipes, tmp_path):
    paths = write_cards(list(recipes.values()), tmp_path)
    assert len(paths) == sum(r.card is not None for r in recipes.values()) > 20
    for p in paths:  # every card is valid as the harness reads cards
        load_card(p)
    rec = recipes["librispeech_asr1__train_asr_conformer.yaml"]
    cfg = yaml.safe_load(rec.path.read_text())
    card = load_card(tmp_path / f"{rec.name}.yaml")
    assert {k: card.model["espnet"][k] for k in MODEL_KEYS if k in cfg} == {k: cfg[k] for k in MODEL_KEYS if k in cfg}
    assert "optim" not in card.model["espnet"] and "specaug" not in card.model["espnet"]
    # LibriSpeech decodes at beam 60 with an LM: the quick run caps the beam and says both
    assert card.decode["beam_size"] == MAX_BEAM and card.decode["ctc_weight"] == 0.3
    assert "beam 60 -> 10" in rec.decode_notes and any("lm_weight" in n for n in rec.decode_notes)
    ctc = load_card(tmp_path / f"{recipes['librispeech_100_asr1__train_asr_ctc_e_branchformer_e12_mlp1024_linear1024.yaml'].name}.yaml")
    assert ctc.decode["ctc_weight"] == 1.0 and ctc.decode["beam_size"] == 1
    rnnt = load_card(tmp_path / f"{recipes['librispeech_asr1__transducer_train_conformer-rnn_transducer.yaml'].name}.yaml")
    assert rnnt.decode["transducer_conf"] == {"search_type": "default", "score_norm": True}
    assert "joint_network.lin_out.bias[0]" in rnnt.model["set_parameters"]
    vits = load_card(tmp_path / f"{recipes['ljspeech_tts1__train_vits.yaml'].name}.yaml")
    assert vits.model["espnet_task"] == "gan_tts" and vits.decode["noise_scale"] == 0.667


def _case(card, variant, status="ok", error=None, **metrics):
    return {"card": card, "variant": variant, "status": status, "error": error, "metrics": metrics,
            "settings": {"parameters": 1234567} if variant == "pytorch" else {}}


def test_the_table_counts_only_configs_whose_onnx_agrees(recipes):
    names = {r.name: r for r in recipes.values()}
    ok, differs, broken = (recipes[n].name for n in (
        "librispeech_asr1__train_asr_conformer.yaml", "librispeech_asr1__train_asr_transformer.yaml",
        "must_c_st1__train_st_conformer.yaml"))
    doc = {"run": {"id": "r1", "git_commit": "abc", "machine": {"class": "cpu-x"}, "threads": 2, "fast": True},
           "cases": [_case(ok, "pytorch"), _case(ok, "onnx", agreement_ter=0.0, speedup=1.5),
                     _case(differs, "pytorch"), _case(differs, "onnx", agreement_ter=3.2, speedup=1.4),
                     _case(broken, "pytorch"), _case(broken, "onnx", "error", "export.onnx: boom")]}
    table = coverage_table(list(names.values()), doc, RECIPES)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert rows["asr_librispeech/librispeech_asr1__train_asr_conformer.yaml"].endswith(
        "| 1,234,567 | TER 0.0 | 1.50x | - | - | exported, agrees |")
    assert "exported, differs" in rows["asr_librispeech/librispeech_asr1__train_asr_transformer.yaml"]
    assert "error: onnx: export.onnx: boom" in rows["st/must_c_st1__train_st_conformer.yaml"]
    assert "refused: encoder 'vgg_rnn'" in rows["mini_an4_debug/mini_an4_asr1__train_asr_rnn_debug.yaml"]
    assert "| not run |" in rows["tts_ljspeech/ljspeech_tts1__train_vits.yaml"]
    assert "\n1 of 41 training configs exported with `onnx` agreeing" in table


def test_a_folder_without_training_configs_is_refused(tmp_path):
    (tmp_path / "decode.yaml").write_text("beam_size: 3\n")
    with pytest.raises(ValueError, match=r"no ESPnet training config"):
        discover(tmp_path)
    with pytest.raises(ValueError, match=r"not a folder"):
        discover(tmp_path / "missing")


def test_recipes_command_runs_a_debug_config_end_to_end(tmp_path):
    """Build, export, decode with ESPnet and ONNX, table: on mini_an4's debug transformer."""
    conf = tmp_path / "conf"
    conf.mkdir()
    for name in ("mini_an4_asr1__train_asr_transformer_debug.yaml", "mini_an4_asr1__decode_asr_debug.yaml",
                 "mini_an4_asr1__train_asr_rnn_debug.yaml"):
        shutil.copy(RECIPES / "mini_an4_debug" / name, conf / name)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bench", "recipes", str(conf), "--out", str(out),
                           "--variant", "pytorch,onnx"], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "BENCH_CACHE": str(tmp_path / "cache")}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (out / "coverage.md").read_text()
    assert table in proc.stdout
    row = next(line for line in table.splitlines() if "transformer_debug" in line)
    assert "| TER 0.0 |" in row and row.endswith("exported, agrees |")
    assert "1 of 2 training configs exported" in table and "1 refused by name" in table
    doc = json.loads((out / "results.json").read_text())
    assert {c["variant"] for c in doc["cases"]} == {"pytorch", "onnx"}
    # the same table again from the results, nothing run
    again = subprocess.run([sys.executable, "-m", "bench", "recipes", str(conf), "--results",
                            str(out / "results.json")], cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0 and table in again.stdout


def test_a_bad_results_file_is_named_and_nothing_runs(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"schema": "bench-results/2", "run": {}, "cases": []}))
    proc = subprocess.run([sys.executable, "-m", "bench", "recipes", str(RECIPES), "--results",
                           str(tmp_path / "results.json"), "--out", str(tmp_path / "out")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("bench recipes: --results: ") and "results.json" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing written, nothing built

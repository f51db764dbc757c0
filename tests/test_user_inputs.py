"""Your own model and data: --model (exp dir, .pth, packed zip) and --data (Kaldi-style dir).

The user models here are made from the smoke card's own exp dir, laid out as ESPnet writes
them (recipe-relative paths, several .pth, a zip with an LM beside the ASR model), so the
user's path must give exactly the card's hypotheses.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from bench.zoo.cards import load_card

pytestmark = pytest.mark.slow

VARIANTS = ("pytorch", "onnx", "onnx-int8")
LIBRI = "real-speech/librispeech"


@pytest.fixture(scope="module")
def smoke(in_shared_cache):
    from bench.artifacts import ensure_artifact

    card = load_card("asr-conformer-smoke")
    return card, ensure_artifact(card) / "exp"


@pytest.fixture(scope="module")
def libri(tmp_path_factory):
    """../shared's LibriSpeech FLACs as a Kaldi-style dir (it has no wav.scp of its own),
    plus one of them again as uncompressed NIST SPHERE."""
    from bench.paths import shared_dir

    if shared_dir() is None or not (shared_dir() / LIBRI).is_dir():
        pytest.skip(f"../shared/{LIBRI} is not present (set BENCH_SHARED)")
    src = shared_dir() / LIBRI
    d = tmp_path_factory.mktemp("libri")
    texts = dict(line.split(maxsplit=1) for line in (src / "text").read_text().splitlines() if line.strip())
    scp = {uid: str(src / f"{uid}.flac") for uid in texts}
    last = sorted(texts)[-1]
    wave, sr = sf.read(scp[last], dtype="int16")
    sf.write(d / "copy.sph", wave, sr, format="NIST", subtype="PCM_16")
    scp[f"{last}-sph"], texts[f"{last}-sph"] = "copy.sph", texts[last]  # relative to the dir
    (d / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in scp.items()))
    (d / "text").write_text("".join(f"{k} {v}\n" for k, v in texts.items()))
    return d


def run_variants(card, data_dir, variants=VARIANTS):
    """The suite's own path (run_case per case), in one session; -> cases, {variant: [utterance]}."""
    from bench.cases import BenchSession, run_case

    session = BenchSession(threads=1, fast=True, data_dir=str(data_dir))
    cases = [run_case(session, card, v, "cpu") for v in variants]
    by_variant = {v: [u for u in session.utterances if u["variant"] == v] for v in variants}
    return cases, by_variant


def recipe_exp(root: Path, smoke_exp: Path) -> Path:
    """The smoke model as an ESPnet recipe leaves it: exp/asr_train_smoke with config.yaml whose
    stats path is relative to the recipe dir and whose token list is inline, several .pth."""
    exp = root / "recipe" / "exp" / "asr_train_smoke"
    stats = root / "recipe" / "exp" / "asr_stats" / "train" / "feats_stats.npz"
    exp.mkdir(parents=True)
    stats.parent.mkdir(parents=True)
    shutil.copyfile(smoke_exp / "feats_stats.npz", stats)
    cfg = yaml.safe_load((smoke_exp / "config.yaml").read_text())
    cfg["token_list"] = (smoke_exp / "tokens.txt").read_text().split()
    cfg["normalize_conf"]["stats_file"] = "exp/asr_stats/train/feats_stats.npz"
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    shutil.copyfile(smoke_exp / "model.pth", exp / "valid.acc.ave.pth")
    (exp / "checkpoint.pth").write_bytes(b"training state, not a model")
    (exp / "1epoch.pth").write_bytes(b"garbage: loading this would fail")
    return exp


def pack_zip(path: Path, smoke_exp: Path, drop: tuple = (), meta: bool = False) -> Path:
    """The smoke model packed as espnet_model_zoo does, with recipe-relative paths (under a
    top folder, so only their suffixes match) and an LM config + .pth beside the ASR model;
    with `meta`, a meta.yaml naming the ASR config and model, as `espnet2.bin.pack` writes."""
    cfg = yaml.safe_load((smoke_exp / "config.yaml").read_text())
    cfg["token_list"] = "data/token_list/char/tokens.txt"
    cfg["normalize_conf"]["stats_file"] = "exp/asr_stats/feats_stats.npz"
    members = {
        "pack/exp/asr_train_smoke/config.yaml": yaml.safe_dump(cfg).encode(),
        "pack/exp/asr_train_smoke/valid.acc.ave_10best.pth": (smoke_exp / "model.pth").read_bytes(),
        "pack/exp/asr_stats/feats_stats.npz": (smoke_exp / "feats_stats.npz").read_bytes(),
        "pack/data/token_list/char/tokens.txt": (smoke_exp / "tokens.txt").read_bytes(),
        "pack/exp/lm_train/config.yaml": yaml.safe_dump({"lm": "transformer"}).encode(),
        "pack/exp/lm_train/valid.loss.ave.pth": b"an LM, not the ASR model",
    }
    if meta:
        members["pack/meta.yaml"] = yaml.safe_dump({
            "files": {"asr_model_file": "exp/asr_train_smoke/valid.acc.ave_10best.pth",
                      "lm_file": "exp/lm_train/valid.loss.ave.pth"},
            "yaml_files": {"asr_train_config": "exp/asr_train_smoke/config.yaml",
                           "lm_train_config": "exp/lm_train/config.yaml"}}).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            if not any(name.endswith(d) for d in drop):
                zf.writestr(name, blob)
    return path


@pytest.fixture(scope="module")
def card_run(smoke, libri):
    card, _ = smoke
    return run_variants(card, libri)


def test_librispeech_kaldi_dir_through_the_suite_path(card_run, libri):
    cases, by_variant = card_run
    ids = [line.split()[0] for line in (libri / "wav.scp").read_text().splitlines()]
    assert len(ids) == 4
    for case in cases:
        assert case["status"] == "ok", case["error"]
        assert case["n_utterances"] == 4 and case["audio_seconds"] > 5
    for variant, utts in by_variant.items():
        assert [u["id"] for u in utts] == ids, variant  # every utterance, in wav.scp's order
        assert all(isinstance(u["hypothesis"], str) and u["tokens"] for u in utts), variant
        assert all(u["reference"] for u in utts)
        # the SPHERE copy decodes exactly as the FLAC it was made from
        assert utts[-1]["tokens"] == utts[-2]["tokens"]
    assert cases[1]["metrics"]["agreement_ter"] == 0.0  # onnx still agrees with PyTorch


def _graph_bytes(variant_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(variant_dir.glob("*.onnx"))}


def test_user_exp_dir_and_zip_give_the_cards_hypotheses(smoke, libri, card_run, tmp_path):
    from bench.artifacts import ensure_artifact
    from bench.zoo.user_model import user_card

    card, smoke_exp = smoke
    _, expected = card_run
    exp = recipe_exp(tmp_path, smoke_exp)
    zipped = pack_zip(tmp_path / "asr_smoke.zip", smoke_exp)
    for path, variants in ((exp, VARIANTS), (zipped, ("onnx",))):
        user = user_card(path, decode=card.decode)
        assert user.tier == "user" and user.name in ("user-asr_train_smoke", "user-asr_smoke")
        cases, got = run_variants(user, libri, variants)
        for case in cases:
            assert case["status"] == "ok", f"{path}: {case['error']}"
        for v in variants:
            if v == "onnx-int8":
                # ORT's int8 decoding of this random-weight model is not repeatable from one
                # process to the next (same graphs, one thread: different near-tie tokens), so
                # the user's int8 is held to the card's graph by graph, byte for byte
                assert _graph_bytes(ensure_artifact(user) / "variants" / v) == \
                       _graph_bytes(smoke_exp.parent / "variants" / v), (path, v)
                continue
            assert [(u["id"], u["tokens"], u["hypothesis"]) for u in got[v]] == \
                   [(u["id"], u["tokens"], u["hypothesis"]) for u in expected[v]], (path, v)


@pytest.mark.parametrize("card_name,expected", [("asr-ctc-ebranchformer-smoke", "CTC_ONLY_DECODE"),
                                                ("asr-transducer-smoke", "TRANSDUCER_DECODE")])
def test_user_model_of_another_family_decodes_as_its_recipe(card_name, expected, in_shared_cache,
                                                             tmp_path, torch_one_thread):
    """A recipe's CTC-only model (model_conf.ctc_weight 1.0, no decoder) or transducer loads
    through --model, decodes as its recipe does (CTC alone, beam 1; ESPnet's default transducer
    search) and gives ESPnet's own tokens."""
    from bench.artifacts import ensure_artifact
    from bench.data.sets import load_eval_set
    from bench.runtime.load import load_recognizer
    from bench.zoo import user_model

    card = load_card(card_name)
    exp = recipe_exp(tmp_path, ensure_artifact(card) / "exp")
    user = user_model.user_card(exp)
    assert user.decode == getattr(user_model, expected)
    art = ensure_artifact(user)
    decode = {**user.decode, "maxlenratio": -20}  # random weights: a fixed 20-step cap (CTC)
    ref = load_recognizer(art, decode, "pytorch", "cpu", threads=1)
    onnx = load_recognizer(art, decode, "onnx", "cpu", threads=1)
    waves = [u.wave for u in load_eval_set(card)[:2]]
    want = [ref(w).tokens for w in waves]
    assert all(want) and [onnx(w).tokens for w in waves] == want


def test_cache_key_follows_content_not_path(smoke, tmp_path):
    import torch

    from bench.zoo.user_model import locate, user_card

    card, smoke_exp = smoke
    exp = recipe_exp(tmp_path / "a", smoke_exp)
    moved = tmp_path / "b" / "elsewhere"
    shutil.copytree(exp.parent.parent, moved)  # the whole recipe dir, renamed
    zipped = pack_zip(tmp_path / "asr_smoke.zip", smoke_exp)
    with_meta = pack_zip(tmp_path / "with_meta.zip", smoke_exp, meta=True)
    cards = [user_card(p) for p in (exp, moved / "exp" / "asr_train_smoke", zipped, with_meta)]
    assert all(c.model["sha256"] for c in cards)
    keys = {c.content_hash() for c in cards}
    assert len(keys) == 1  # one model: an exp dir, a moved copy, zips with other paths
    # the file chosen among several .pth, and a .pth named directly
    assert locate(exp).checkpoint.path.name == "valid.acc.ave.pth"
    assert locate(exp / "valid.acc.ave.pth").checkpoint.path.name == "valid.acc.ave.pth"
    # one weight changed: another key
    state = torch.load(exp / "valid.acc.ave.pth", weights_only=True)
    name = next(iter(state))
    state[name] = state[name] + 1
    torch.save(state, exp / "valid.acc.ave.pth")
    assert user_card(exp).content_hash() not in keys


def test_sample_rate_follows_the_model(smoke, libri, tmp_path):
    from bench.data.sets import load_eval_set
    from bench.zoo.user_model import user_card

    _, smoke_exp = smoke
    exp = recipe_exp(tmp_path, smoke_exp)
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    at16 = load_eval_set(user_card(exp), libri)
    cfg["frontend_conf"]["fs"] = "8k"  # as ESPnet configs write it
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    card = user_card(exp)
    assert card.model["fs"] == 8000
    at8 = load_eval_set(card, libri)
    for a, b in zip(at16, at8):
        assert b.sample_rate == 8000 and abs(len(b.wave) - len(a.wave) / 2) <= 1
        assert abs(a.seconds - b.seconds) < 1e-3


def test_checkpoint_choice_errors(tmp_path):
    from bench.zoo.cards import CardError
    from bench.zoo.user_model import locate

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump({"encoder": "conformer", "decoder": "transformer",
                                                     "token_list": ["a", "b"]}))
    for name in ("valid.acc.ave_5best.pth", "valid.acc.ave_10best.pth"):
        (exp / name).write_bytes(b"x")
    with pytest.raises(CardError, match=r"several checkpoints match 'valid.acc.ave_\*.pth'.*point --model"):
        locate(exp)
    assert locate(exp / "valid.acc.ave_5best.pth").checkpoint.path.name == "valid.acc.ave_5best.pth"
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    (exp / "config.yaml").write_text(yaml.safe_dump(dict(cfg, decoder=None)))
    with pytest.raises(CardError, match=r"config.yaml: no decoder, but model_conf.ctc_weight is unset: "
                                        r"ESPnet builds a model without a decoder only when ctc_weight is 1.0"):
        locate(exp / "valid.acc.ave_5best.pth")
    (exp / "config.yaml").write_text(yaml.safe_dump(dict(cfg, decoder="rnnt_whatever")))
    with pytest.raises(CardError, match=r"config.yaml: decoder 'rnnt_whatever' is not supported"):
        locate(exp / "valid.acc.ave_5best.pth")
    (exp / "config.yaml").write_text(yaml.safe_dump(dict(cfg, decoder="transducer",
                                                         decoder_conf={"rnn_type": "gru"})))
    with pytest.raises(CardError, match=r"config.yaml: decoder_conf.rnn_type 'gru' is not supported"):
        locate(exp / "valid.acc.ave_5best.pth")
    (exp / "config.yaml").write_text(yaml.safe_dump(dict(cfg, encoder="contextual_block_conformer",
                                                         encoder_conf={"init_average": False})))
    with pytest.raises(CardError, match=r"config.yaml: encoder_conf.init_average false is not supported"):
        locate(exp / "valid.acc.ave_5best.pth")
    # a CTC-only model is taken, and decoded with CTC alone
    (exp / "config.yaml").write_text(yaml.safe_dump(dict(cfg, decoder=None, model_conf={"ctc_weight": 1.0})))
    assert locate(exp / "valid.acc.ave_5best.pth").ctc_only()


# -- bad input: a clear message naming the file (and line); the case is `error` ----------------

def _bad_data(d: Path, fault: str) -> tuple[Path, list[str]]:
    """A data dir with one fault; -> (the dir, strings its error must contain)."""
    d.mkdir()
    good = d / "good.wav"
    sf.write(good, (np.sin(np.arange(32000) * 0.05) * 0.3).astype(np.float32), 16000)
    scp = {"good": str(good)}
    texts = {"good": "HELLO"}
    must = []
    if fault == "ids":
        scp["only-in-scp"] = str(good)
        texts["only-in-text"] = "WORLD"
        must = [str(d / "wav.scp"), str(d / "text"), "'only-in-scp' (wav.scp line 2)",
                "'only-in-text' (text line 2)"]
    elif fault == "unreadable":
        (d / "bad.flac").write_bytes(np.random.default_rng(0).bytes(4000))
        scp["bad"], texts["bad"] = str(d / "bad.flac"), "X"
        must = [str(d / "bad.flac"), "cannot decode", f"{d / 'wav.scp'}:2"]
    elif fault == "empty":
        sf.write(d / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
        scp["bad"], texts["bad"] = str(d / "empty.wav"), "X"
        must = [str(d / "empty.wav"), "empty", f"{d / 'wav.scp'}:2"]
    elif fault == "pipe":
        scp["bad"], texts["bad"] = f"sox {good} -t wav - |", "X"
        must = [f"{d / 'wav.scp'}:2", "pipe command"]
    (d / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in scp.items()))
    (d / "text").write_text("".join(f"{k} {v}\n" for k, v in texts.items()))
    return d, must


@pytest.mark.parametrize("fault", ["ids", "unreadable", "empty", "pipe"])
def test_bad_data_dir_is_a_case_error(smoke, tmp_path, fault):
    card, _ = smoke
    d, must = _bad_data(tmp_path / "data", fault)
    cases, _ = run_variants(card, d, ("pytorch", "onnx"))
    for case in cases:  # every case of the run reports it; none raises
        assert case["status"] == "error"
        for s in must:
            assert s in case["error"], (s, case["error"])


def _bad_model(tmp_path: Path, smoke_exp: Path, fault: str) -> tuple[Path, list[str]]:
    if fault == "zip-without-config":
        z = pack_zip(tmp_path / "noconf.zip", smoke_exp, drop=("config.yaml",))
        return z, [str(z), "no config.yaml in the pack"]
    if fault == "zip-missing-file":
        z = pack_zip(tmp_path / "nostats.zip", smoke_exp, drop=("feats_stats.npz",))
        return z, [f"{z}:pack/exp/asr_train_smoke/config.yaml", "normalize_conf.stats_file",
                   "'exp/asr_stats/feats_stats.npz' is not in the pack"]
    if fault == "exp-without-pth":
        exp = recipe_exp(tmp_path, smoke_exp)
        for f in exp.glob("*.pth"):
            if f.name != "checkpoint.pth":
                f.unlink()
        return exp, [str(exp), "no model .pth beside config.yaml", "checkpoint.pth"]
    raise AssertionError(fault)


@pytest.mark.parametrize("fault", ["zip-without-config", "zip-missing-file", "exp-without-pth"])
def test_bad_user_model_is_a_case_error(smoke, libri, tmp_path, fault):
    from bench.zoo.user_model import user_card

    _, smoke_exp = smoke
    path, must = _bad_model(tmp_path, smoke_exp, fault)
    cases, _ = run_variants(user_card(path), libri, ("pytorch", "onnx"))
    for case in cases:
        assert case["status"] == "error"
        for s in must:
            assert s in case["error"], (s, case["error"])


def test_cli_model_and_data_in_one_suite_run(smoke, libri, in_shared_cache, tmp_path):
    """`python -m bench run --model --data`: the broken user model's case is `error` (exit 3),
    the built-in card named with --card still runs, on the --data utterances."""
    bad = pack_zip(tmp_path / "broken.zip", smoke[1], drop=("config.yaml",))
    env = dict(os.environ, BENCH_CACHE=str(in_shared_cache), BENCH_BASELINES=str(tmp_path / "baselines"))
    cmd = [sys.executable, "-m", "bench", "run", "--fast", "--threads", "1", "--variant", "onnx",
           "--model", str(bad), "--card", "asr-conformer-smoke", "--data", str(libri),
           "--out", str(tmp_path / "reports")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "reports" / "results.json").read_text())
    assert doc["run"]["data_dir"] == str(libri)
    cases = {c["card"]: c for c in doc["cases"]}
    assert set(cases) == {"user-broken", "asr-conformer-smoke"}
    assert cases["user-broken"]["status"] == "error" and str(bad) in cases["user-broken"]["error"]
    assert cases["asr-conformer-smoke"]["status"] == "ok"
    utts = [json.loads(line) for line in (tmp_path / "reports" / "utterances.jsonl").read_text().splitlines()]
    assert [u["id"] for u in utts] == [line.split()[0] for line in (libri / "wav.scp").read_text().splitlines()]

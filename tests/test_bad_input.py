"""Bad input: each broken case is an `error` naming the file; the other cases still run."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from bench.zoo.cards import CARDS_DIR, Card, load_card

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    import os

    from bench.cases import BenchSession

    os.environ["BENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield BenchSession(threads=1, fast=True)
    del os.environ["BENCH_CACHE"]


def card_variant(tmp_path: Path, name: str, **changes) -> Card:
    raw = yaml.safe_load((CARDS_DIR / "asr-conformer-smoke.yaml").read_text())
    raw["name"] = name
    raw["data"] = {"source": "builtin", "n_utterances": 3}
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_card(path)


def data_dir(tmp_path: Path, files: dict) -> Path:
    """A Kaldi-style dir: one good utterance plus `files` ({id: path})."""
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    good = d / "good.wav"
    sf.write(good, (np.sin(np.arange(32000) * 0.05) * 0.3).astype(np.float32), 16000)
    entries = {"good": good, **files}
    (d / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in entries.items()))
    (d / "text").write_text("".join(f"{k} HELLO\n" for k in entries))
    return d


def run(session, card, variant="onnx"):
    from bench.cases import run_case

    return run_case(session, card, variant, "cpu")


def test_good_card_runs(session, tmp_path):
    case = run(session, card_variant(tmp_path, "good-card"))
    assert case["status"] == "ok", case["error"]
    assert case["metrics"]["agreement_ter"] == 0.0


@pytest.mark.parametrize("fault", ["missing", "corrupt", "truncated"])
def test_bad_checkpoint(session, tmp_path, fault):
    from bench.artifacts import ensure_artifact

    ckpt = tmp_path / "model.pth"
    if fault == "corrupt":
        ckpt.write_bytes(b"\x00not a checkpoint" * 10)
    elif fault == "truncated":  # a copy cut short, as by a full disk
        good = (ensure_artifact(card_variant(tmp_path, "good-card")) / "exp" / "model.pth").read_bytes()
        ckpt.write_bytes(good[: len(good) // 2])
    case = run(session, card_variant(tmp_path, f"ckpt-{fault}", **{"model.weights": f"file:{ckpt}"}))
    assert case["status"] == "error"
    assert str(ckpt) in case["error"]
    assert ("not found" if fault == "missing" else "corrupt") in case["error"]
    # the run goes on: a good case in the same session still measures
    assert run(session, card_variant(tmp_path, "good-card"))["status"] == "ok"


AUDIO_FAULTS = {"missing": "not found", "corrupt": "cannot decode", "empty": "empty",
                "8khz": "8000 Hz", "nan": "NaN/inf samples", "truncated": "truncated",
                "directory": "is a directory"}


@pytest.mark.parametrize("fault", list(AUDIO_FAULTS))
def test_bad_audio(session, tmp_path, fault):
    bad = tmp_path / f"bad-{fault}.wav"
    noise = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    if fault == "corrupt":
        bad.write_bytes(np.random.default_rng(0).bytes(5000))
    elif fault == "empty":
        sf.write(bad, np.zeros(0, dtype=np.float32), 16000)
    elif fault == "8khz":
        sf.write(bad, noise, 8000)
    elif fault == "nan":
        sf.write(bad, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    elif fault == "truncated":  # the header promises more samples than the file holds
        sf.write(bad, noise, 16000)
        bad.write_bytes(bad.read_bytes()[:20000])
    elif fault == "directory":
        bad.mkdir()
    d = data_dir(tmp_path, {"bad": bad})
    case = run(session, card_variant(tmp_path, f"audio-{fault}", **{"data": {"dir": str(d)}}))
    assert case["status"] == "error"
    assert str(bad) in case["error"], case["error"]
    assert AUDIO_FAULTS[fault] in case["error"], case["error"]


def test_config_that_does_not_match_its_checkpoint(session, tmp_path):
    """A checkpoint trained with another config: named with the card, never loaded half-way."""
    from bench.artifacts import ensure_artifact

    ckpt = ensure_artifact(card_variant(tmp_path, "good-card")) / "exp" / "model.pth"
    raw = yaml.safe_load((CARDS_DIR / "asr-conformer-smoke.yaml").read_text())
    size = raw["model"]["espnet"]["encoder_conf"]["output_size"]
    card = card_variant(tmp_path, "mismatch", **{"model.weights": f"file:{ckpt}",
                                                 "model.espnet.encoder_conf.output_size": size * 2})
    case = run(session, card)
    assert case["status"] == "error"
    assert str(ckpt) in case["error"] and card.path in case["error"], case["error"]
    assert "does not match" in case["error"] and "parameters of different shape" in case["error"]
    assert "(config gives (" in case["error"]


def test_model_that_outputs_nan(session, tmp_path):
    """NaN weights give NaN outputs; a beam search over them still returns text, so the
    harness must say so: PyTorch and ONNX both fail the item, naming the model file."""
    import torch

    from bench.artifacts import ensure_artifact
    from bench.runtime.finite import NonFiniteOutput
    from bench.runtime.load import load_recognizer

    good = ensure_artifact(card_variant(tmp_path, "good-card")) / "exp" / "model.pth"
    state = torch.load(good, weights_only=True)
    state["encoder.after_norm.weight"] = torch.full_like(state["encoder.after_norm.weight"], float("nan"))
    ckpt = tmp_path / "nan.pth"
    torch.save(state, ckpt)
    card = card_variant(tmp_path, "nan-model", **{"model.weights": f"file:{ckpt}"})
    case = run(session, card, "pytorch")
    assert case["status"] == "error"
    assert "encoder output has" in case["error"] and "NaN/inf" in case["error"], case["error"]
    assert "model.pth" in case["error"]
    wave = np.sin(np.arange(16000) * 0.05).astype(np.float32)
    rec = load_recognizer(ensure_artifact(card), card.decode, "onnx", "cpu", threads=1)
    with pytest.raises(NonFiniteOutput, match=r"encoder\.onnx: encoder output has \d+ NaN/inf"):
        rec(wave)


def test_corrupt_onnx_file(session, tmp_path):
    from bench.artifacts import ensure_artifact

    card = card_variant(tmp_path, "onnx-corrupt")
    graph = ensure_artifact(card) / "variants" / "onnx-fused" / "encoder.onnx"
    backup = tmp_path / "encoder.onnx.bak"
    shutil.copyfile(graph, backup)
    try:
        graph.write_bytes(graph.read_bytes()[:2000])  # a half-written file from a killed job
        case = run(session, card, "onnx-fused")
        assert case["status"] == "error"
        assert str(graph) in case["error"] and "cannot load ONNX model" in case["error"]
        assert run(session, card, "onnx")["status"] == "ok"  # the other variants still run
    finally:
        shutil.copyfile(backup, graph)


def test_audio_too_short_for_subsampling(session, tmp_path):
    from bench.artifacts import ensure_artifact
    from bench.runtime.load import load_recognizer

    card = card_variant(tmp_path, "good-card")
    rec = load_recognizer(ensure_artifact(card), card.decode, "onnx", "cpu", threads=1)
    with pytest.raises(ValueError, match="too short for the encoder's subsampling"):
        rec(np.zeros(500, dtype=np.float32))
    # in a run, the message also names the utterance and its file (the case becomes an error)
    from bench.trackers import ItemError, decode_all
    from bench.data.sets import EvalUtterance

    with pytest.raises(ItemError, match=r"item u-short \(/data/short.wav\): ValueError: audio of "
                                        r"500 samples is too short"):
        decode_all(rec, [EvalUtterance("u-short", np.zeros(500, np.float32), "HI", "/data/short.wav")])


def test_interrupted_run_keeps_previous_results(tmp_path):
    from bench.cases import BenchSession
    from bench.results import make_case, new_run
    from bench.runner import SuiteRun

    out = tmp_path / "reports"
    out.mkdir()
    (out / "results.json").write_text("previous")
    run = SuiteRun(BenchSession(), out, tmp_path / "baselines", update=True)
    run.doc = new_run({"class": "cpu-test"}, {}, None)
    run.doc["cases"].append(make_case("asr", "c", "onnx", "cpu"))
    run.finish(interrupted=True)
    assert (out / "results.json").read_text() == "previous"
    assert not (tmp_path / "baselines").exists()
    partial = list((out / "runs").glob("*/results.json"))
    assert len(partial) == 1 and '"partial": true' in partial[0].read_text()


def test_real_librispeech_kaldi_dir(session, tmp_path):
    """Real FLAC speech from ../shared, as a Kaldi-style data dir, through a model."""
    from bench.paths import shared_dir

    if shared_dir() is None or not (shared_dir() / "real-speech" / "librispeech").is_dir():
        pytest.skip("../shared/real-speech/librispeech is not present (set BENCH_SHARED)")
    src = shared_dir() / "real-speech" / "librispeech"
    d = tmp_path / "libri"
    d.mkdir()
    ids = [line.split()[0] for line in (src / "text").read_text().splitlines() if line.strip()]
    (d / "wav.scp").write_text("".join(f"{i} {src / (i + '.flac')}\n" for i in ids))
    shutil.copyfile(src / "text", d / "text")
    case = run(session, card_variant(tmp_path, "libri", **{"data": {"dir": str(d)}}))
    assert case["status"] == "ok", case["error"]
    assert case["n_utterances"] == 3 and case["audio_seconds"] > 5
    assert case["metrics"]["agreement_ter"] == 0.0


def test_tts_text_that_cannot_be_spoken_names_file_and_line(tmp_path):
    """A TTS card reads a data dir's text file: an empty sentence, or characters the English
    front end cannot read, make the card's cases errors that name the file and line."""
    from bench.data.kaldi import DataDirError
    from bench.data.sets import load_eval_set

    card = load_card("tts-fastspeech2-paper")
    d = tmp_path / "sentences"
    d.mkdir()
    (d / "text").write_text("a HELLO WORLD\nb\nc MORE TEXT\n")
    with pytest.raises(DataDirError, match=r"sentences/text:2: utterance 'b' has empty text"):
        load_eval_set(card, d)
    (d / "text").write_text("a HELLO WORLD\nb 日本語 TEXT\n")
    with pytest.raises(DataDirError, match=r"sentences/text:2: utterance 'b': .*'日' \(U\+65E5\)"):
        load_eval_set(card, d)
    # in a run: the case is an error with that message (the data is read before any model is built)
    from bench.cases import BenchSession, run_case

    case = run_case(BenchSession(threads=1, fast=True, data_dir=str(d)), card, "onnx", "cpu")
    assert case["status"] == "error" and "sentences/text:2: utterance 'b'" in case["error"]
    (d / "text").write_text("a HELLO WORLD.\nb SEVEN\n")
    items = load_eval_set(card, d)
    assert [i.phonemes for i in items] == ["HH AH0 L OW1 W ER1 L D .", "S EH1 V AH0 N"]

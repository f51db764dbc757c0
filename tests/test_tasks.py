"""The task registry: every card's task is known and scored as its task says; the trained ST
and SLU cards decode identically in ONNX and PyTorch (issue 5's agreement requirement)."""
import types

import pytest

from bench.tasks import TASKS, get_task, score_slu, score_st, split_intent
from bench.zoo.cards import list_cards, load_card


def _out(text, tokens=(1, 2)):
    return types.SimpleNamespace(text=text, tokens=list(tokens))


def test_every_card_task_has_an_entry():
    assert {c.task for c in list_cards("all")} <= set(TASKS)
    with pytest.raises(KeyError, match="unknown task 'mt'"):
        get_task("mt")


def test_slu_scores_intent_and_transcript_apart():
    refs = ["ALARM_SET WAKE ME UP AT SEVEN", "PLAY_MUSIC PLAY SOME JAZZ", "GENERAL_JOKE TELL ME A JOKE"]
    outs = [_out("ALARM_SET WAKE ME UP AT SEVEN"),   # both right
            _out("PLAY_MUSIC PLAY SOME BLUES"),      # intent right, one word wrong
            _out("IOT_WEMO_ON TELL ME A JOKE")]      # intent wrong, transcript right
    m, _ = score_slu(refs, outs, outs)
    assert m["intent_acc"] == pytest.approx(200 / 3)
    assert m["wer"] == pytest.approx(100 * 1 / 12)  # 1 error over 5 + 3 + 4 transcript words
    assert m["agreement_ter"] == 0.0
    assert split_intent("") == ("", "") and split_intent("WEATHER_QUERY") == ("WEATHER_QUERY", "")


def test_st_bleu_keeps_its_signature():
    refs = ["pon una alarma para las siete", "que tiempo hace en roma hoy"]
    same, _ = score_st(refs, [_out(r) for r in refs], [_out(r) for r in refs])
    worse, notes = score_st(refs, [_out("pon una alarma para las ocho"), _out("que tiempo hace en lima hoy")],
                            [_out(r) for r in refs])
    assert same["bleu"] == pytest.approx(100.0)
    assert 0 < worse["bleu"] < 80  # one word wrong in each: 65.3
    assert notes["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


@pytest.fixture(scope="module")
def trained(in_shared_cache):
    from bench.artifacts import ensure_artifact

    return {name: ensure_artifact(load_card(name)) for name in ("st-conformer-tiny", "slu-conformer-tiny")}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["st-conformer-tiny", "slu-conformer-tiny"])
@pytest.mark.parametrize("variant", ["onnx", "onnx-fused"])
def test_trained_card_onnx_tokens_equal_pytorch(name, variant, trained, torch_one_thread):
    from bench.trackers import decode_all
    from bench.data.sets import load_eval_set
    from bench.runtime.load import load_recognizer

    card = load_card(name)
    utts = load_eval_set(card)[:40]
    ref = decode_all(load_recognizer(trained[name], card.decode, "pytorch", "cpu", 1), utts).outputs
    got = decode_all(load_recognizer(trained[name], card.decode, variant, "cpu", 1), utts).outputs
    assert [o.tokens for o in got] == [o.tokens for o in ref]
    assert [o.text for o in got] == [o.text for o in ref]
    metrics, _ = get_task(card.task).score([u.text for u in utts], got, ref)
    # a trained model, not noise: the figure is in the range of its recorded test figure
    key, floor = {"st": ("bleu", 40), "slu": ("intent_acc", 80)}[card.task]
    assert metrics[key] >= floor, metrics


def test_st_encoder_graph_has_no_ctc_output(trained):
    import onnx

    graph = onnx.load(str(trained["st-conformer-tiny"] / "onnx" / "encoder.onnx"), load_external_data=False)
    assert [o.name for o in graph.graph.output] == ["enc"]  # decoding is attention only


def test_too_short_audio_is_a_clear_error(trained):
    import numpy as np

    from bench.runtime.load import load_recognizer

    card = load_card("st-conformer-tiny")
    rec = load_recognizer(trained["st-conformer-tiny"], card.decode, "onnx", "cpu", 1)
    with pytest.raises(ValueError, match="too short for the encoder's subsampling"):
        rec(np.zeros(200, dtype=np.float32))

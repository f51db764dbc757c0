"""The committed tiny trained models: small, and as good on their test split as their record says."""
from __future__ import annotations

import json

import pytest

from bench.zoo.cards import list_cards
from bench.zoo.train import CHECKPOINTS, evaluate_card

TRAINED = [c for c in list_cards("accuracy") if c.train]
# The targets: what makes a quantized variant's quality loss a measurable number.
TARGETS = {"asr": ("wer", "<=", 10.0), "slu": ("intent_accuracy", ">=", 90.0), "st": ("bleu", ">=", 40.0)}
# Committed models that miss their target, and why: stated, and checked to still be so, so a
# retrained model that meets it fails here until this entry is removed.
KNOWN_MISSES: dict[str, str] = {
    "asr-conformer-micro": "the size study's smallest size (64-d x 2 blocks, 1.6 MB): what shrinking "
                           "costs in WER is the figure it is trained for (14.7% against tiny's 6.7%)",
    "asr-ctc-ebranchformer-tiny": "CTC alone at beam 1, as its recipe decodes, with no attention "
                                  "decoder to rescore: 10.2% against the joint CTC/attention tiny "
                                  "conformer's 6.7%; trained for int8's quality cost in this family",
}


def _record(card):
    path = CHECKPOINTS / card.name / "training.json"
    assert path.exists(), f"{card.name}: no training record; run python -m bench zoo train {card.name}"
    return json.loads(path.read_text())


@pytest.mark.parametrize("card", TRAINED, ids=lambda c: c.name)
def test_checkpoint_is_small_and_recorded(card):
    assert (CHECKPOINTS / card.name / "model.pth").stat().st_size <= 8 * 2**20
    record = _record(card)
    assert record["train_minutes"] <= 45, record["train_minutes"]
    assert "test" in record and record["test"]["utterances"] >= 200


@pytest.mark.all_cores  # ESPnet's decode of the whole split, with every core (as recorded)
@pytest.mark.parametrize("card", TRAINED, ids=lambda c: c.name)
def test_pytorch_figure_reproduces_and_meets_target(card):
    """Decode the whole test split again with ESPnet: the recorded figure is what the model does."""
    recorded = _record(card)["test"]
    figure = evaluate_card(card, record=False)
    metric, direction, target = TARGETS[card.task]
    assert figure[metric] == pytest.approx(recorded[metric], abs=0.01), (figure, recorded)
    meets = figure[metric] <= target if direction == "<=" else figure[metric] >= target
    assert meets != (card.name in KNOWN_MISSES), (figure, KNOWN_MISSES.get(card.name, "target missed"))


def test_int8_keeps_the_trained_asr_model_working():
    """int8 must not turn a trained model's output to noise: the CTC argmax of onnx-int8 agrees
    with float onnx on nearly every frame (it was 21% when the mel filterbank was quantized)."""
    import numpy as np
    import onnxruntime as ort

    from bench.artifacts import ensure_artifact, variant_dir
    from bench.data.sets import load_eval_set
    from bench.zoo.cards import load_card

    card = load_card("asr-conformer-tiny")
    artifact = ensure_artifact(card)
    sessions = [ort.InferenceSession(str(d / "encoder.onnx"), providers=["CPUExecutionProvider"])
                for d in (artifact / "onnx", variant_dir(artifact, "onnx-int8"))]
    agree = []
    for u in load_eval_set(card)[:20]:
        x = {"speech": u.wave[None].astype(np.float32)}
        ref, q = (s.run(["ctc_logits"], x)[0].argmax(-1) for s in sessions)
        agree.append(float((ref == q).mean()))
    assert np.mean(agree) >= 0.95, agree

"""A trained card's agreement with PyTorch on real recordings (data.real_speech)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from bench.data.sets import load_real_clips
from bench.paths import shared_dir
from bench.runtime.onnx_asr import Recognition
from bench.tasks import get_task
from bench.trackers import Decoded, track_real_speech
from bench.zoo.cards import load_card

CARD = load_card("asr-conformer-tiny")


def _with_folder(card, rel):
    return dataclasses.replace(card, data={**card.data, "real_speech": rel})


@pytest.mark.skipif(shared_dir() is None or not (shared_dir() / "real-speech/librispeech").is_dir(),
                    reason="../shared/real-speech/librispeech is not on this machine")
def test_the_trained_cards_read_the_shared_librispeech_clips():
    for name in ("asr-conformer-tiny", "slu-conformer-tiny", "st-conformer-tiny"):
        clips, where = load_real_clips(load_card(name))
        assert where.endswith("real-speech/librispeech")
        assert [c.id for c in clips] == ["61-70968-0000", "61-70968-0001", "61-70968-0002"]
        assert clips[2].text == "A GOLDEN FORTUNE AND A HAPPY LIFE"
        assert all(c.wave.dtype == np.float32 and 2.0 < c.seconds < 6.0 for c in clips)


def test_a_folder_of_clips_resampled_to_the_model_rate(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_SHARED", str(tmp_path))
    folder = tmp_path / "clips"
    folder.mkdir()
    sf.write(folder / "b.wav", np.full(22050, 0.1, np.float32), 22050)
    sf.write(folder / "a.flac", np.full(8000, 0.1, np.float32), 16000)
    (folder / "notes.txt").write_text("not audio")
    (folder / "text").write_text("a HELLO\n")
    clips, where = load_real_clips(_with_folder(CARD, "clips"))
    assert where == str(folder)
    assert [(c.id, c.text, c.wave.shape[0]) for c in clips] == [("a", "HELLO", 8000), ("b", None, 16000)]


def test_no_folder_is_a_reason_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_SHARED", str(tmp_path))
    assert load_real_clips(_with_folder(CARD, "nowhere")) == \
        ([], "nowhere: not found under ../shared (set BENCH_SHARED)")
    (tmp_path / "empty").mkdir()
    clips, why = load_real_clips(_with_folder(CARD, "empty"))
    assert clips == [] and why.endswith("empty: no .flac/.wav files")
    card = dataclasses.replace(CARD, data={k: v for k, v in CARD.data.items() if k != "real_speech"})
    assert load_real_clips(card) == ([], "the card names no real_speech folder")


@dataclasses.dataclass
class _Clip:
    input: np.ndarray
    id: str = "c"
    source: str = "clip.flac"
    seconds: float = 2.0
    text: str | None = None


def _outputs(*token_lists):
    return Decoded([Recognition(list(t), " ".join(map(str, t))) for t in token_lists], [0.0] * len(token_lists))


def test_agreement_on_real_clips_counts_the_flipped_tokens():
    clips = [_Clip(np.zeros(3, np.float32)), _Clip(np.ones(3, np.float32))]
    ref = _outputs([1, 2, 3, 4], [5, 6])
    # the variant flips one token of the first clip: 1 of 6 reference tokens
    rec = lambda wave: Recognition([1, 2, 9, 4] if wave[0] == 0 else [5, 6], "")  # noqa: E731
    r = track_real_speech(rec, "onnx-int8", get_task("asr"), clips, ref, "/clips")
    assert r.agreement_ter == pytest.approx(100 / 6)
    case = {"metrics": {}, "settings": {}}
    r.record(case)
    assert case["metrics"]["real_agreement_ter"] == pytest.approx(100 / 6)
    assert case["settings"]["real_speech"]["n_clips"] == 2
    assert case["settings"]["real_speech"]["outputs"] == ["", ""]
    # which clips: the gate compares the figure only with one measured on the same ones
    other = track_real_speech(rec, "onnx-int8", get_task("asr"), clips[:1], _outputs([1, 2, 3, 4]), "/clips")
    assert case["settings"]["real_speech"]["identity"] != other.notes["identity"]
    # the reference itself is not compared with itself; a card without clips says why
    assert track_real_speech(rec, "pytorch", get_task("asr"), clips, ref, "/clips").agreement_ter is None
    none = track_real_speech(rec, "onnx", get_task("asr"), [], None, "why not")
    assert none.agreement_ter is None and none.notes == {"measured": False, "why": "why not"}

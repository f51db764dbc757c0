"""bench.metrics.text: the pinned normaliser, corpus WER/CER and token agreement."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics.text import agreement_ter, edit_distance, normalize_text, wer_cer


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Hello, world!", "HELLO WORLD"),
        ("  many   spaces\there\n", "MANY SPACES HERE"),
        ("don't stop", "DON'T STOP"),
        ("'tis the dogs' bone", "TIS THE DOGS BONE"),  # apostrophes only inside words
        ("It\u2019s fine", "IT'S FINE"),  # curly apostrophe
        ("well-known fact.", "WELL KNOWN FACT"),
        ("a_b", "A B"),
        ("<sos/eos> hello <unk> world <blank>", "HELLO WORLD"),
        ("\u2581hello\u2581world", "HELLO WORLD"),  # SentencePiece word marker
        ("room 42, floor 3", "ROOM 42 FLOOR 3"),  # digits kept
        ("café", "CAFÉ"),
        ("", ""),
        ("?!...", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_is_idempotent():
    s = "He said: \"don't\" -- 'twas <unk> fine\u2581ok"
    assert normalize_text(normalize_text(s)) == normalize_text(s)


def test_wer_known_values():
    out = wer_cer(["A B C D"], ["A X C"])
    assert out["wer"] == pytest.approx(50.0)  # 1 substitution + 1 deletion over 4 words
    assert out["cer"] == pytest.approx(100 * 3 / 7)  # "A B C D" (7 chars) -> "A X C": 1 sub + 2 del
    assert wer_cer(["the cat sat"], ["The cat, sat."]) == {"wer": 0.0, "cer": 0.0}


def test_wer_is_corpus_level_not_mean_of_utterances():
    # 1 error in a 1-word ref and 0 in a 3-word ref: corpus WER 25 %, not mean 50 %.
    assert wer_cer(["A", "B C D"], ["X", "B C D"])["wer"] == pytest.approx(25.0)


def test_empty_hypothesis_and_empty_reference():
    assert wer_cer(["A B"], [""])["wer"] == pytest.approx(100.0)
    # An empty reference adds its hypothesis words as insertions, nothing to the denominator.
    assert wer_cer(["A B", ""], ["A B", "X Y"])["wer"] == pytest.approx(100.0)
    assert wer_cer([], []) == {"wer": None, "cer": None}
    assert wer_cer([""], ["A"]) == {"wer": None, "cer": None}
    with pytest.raises(ValueError, match="2 references but 1"):
        wer_cer(["A", "B"], ["A"])


def test_normalize_can_be_disabled():
    assert wer_cer(["a b"], ["A B"], normalize=False)["wer"] == pytest.approx(100.0)


def test_edit_distance():
    assert edit_distance([], []) == 0
    assert edit_distance([1, 2, 3], []) == 3
    assert edit_distance([], [1, 2]) == 2
    assert edit_distance([1, 2, 3, 4], [1, 5, 3]) == 2
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert edit_distance([1, 2, 3], [3, 2, 1]) == 2


def test_agreement_ter_known_values():
    assert agreement_ter([[1, 2, 3], [4, 5]], [[1, 2, 3], [4, 5]]) == 0.0
    assert agreement_ter([[1, 2, 3, 4]], [[1, 5, 3]]) == pytest.approx(50.0)
    # Corpus level: 2 edits over 4 + 6 reference tokens.
    assert agreement_ter([[1, 2, 3, 4], [1] * 6], [[1, 2, 3], [1] * 5 + [9]]) == pytest.approx(20.0)
    assert agreement_ter([[7, 7]], [[7, 7, 7, 7]]) == pytest.approx(100.0)  # insertions can exceed 100 % later
    # numpy arrays are accepted like lists.
    assert agreement_ter([np.array([1, 2, 3])], [np.array([1, 2, 4])]) == pytest.approx(100 / 3)


def test_agreement_ter_empty_reference():
    assert agreement_ter([[]], [[]]) == 0.0
    assert agreement_ter([], []) == 0.0
    assert agreement_ter([[]], [[1, 2]]) == pytest.approx(200.0)  # 2 insertions over max(1, 0)
    with pytest.raises(ValueError, match="1 reference sequences but 2"):
        agreement_ter([[1]], [[1], [2]])

"""The synthetic corpora: deterministic bytes, disjoint splits, the grammar's size and its translations."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.data.kaldi import read_data_dir
from bench.zoo import grammar
from bench.zoo.corpus import SPECS, draw_sentences, generate

SMALL = {"train": 12, "dev": 4, "test": 4}


@pytest.mark.parametrize("kind", ["asr", "slu", "st", "tts"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, kind):
    a = generate(kind, tmp_path / "a", seed=3, sizes=SMALL)
    b = generate(kind, tmp_path / "b", seed=3, sizes=SMALL)
    c = generate(kind, tmp_path / "c", seed=4, sizes=SMALL)
    assert a["sha256"] == b["sha256"]
    assert a["sha256"] != c["sha256"]
    for split, n in SMALL.items():  # each split is a readable Kaldi dir of the asked size
        utts = read_data_dir(tmp_path / "a" / split)
        assert len(utts) == n and all(u.text for u in utts)
        assert utts[0].load(16000).shape[0] > 8000  # at least half a second of speech


def test_full_size_splits_share_no_sentence_and_meet_the_sizes():
    for kind, spec in SPECS.items():
        splits = draw_sentences(spec, seed=0)
        english = {s: {x.english for x in splits[s]} for s in splits}
        assert {s: len(english[s]) for s in splits} == spec.sizes, kind
        assert not english["train"] & english["test"], kind
        assert not english["train"] & english["dev"], kind
        assert not english["dev"] & english["test"], kind
    assert SPECS["asr"].sizes["train"] >= 2000 and SPECS["asr"].sizes["test"] >= 200


def test_test_split_does_not_move_when_train_grows():
    spec = SPECS["asr"]
    bigger = type(spec)(**{**spec.__dict__, "sizes": {**spec.sizes, "train": spec.sizes["train"] + 100}})
    assert [s.english for s in draw_sentences(spec, 0)["test"]] == \
        [s.english for s in draw_sentences(bigger, 0)["test"]]


def test_vocabulary_and_intents():
    assert len(grammar.vocabulary()) >= 500
    splits = draw_sentences(SPECS["asr"], seed=0)
    words = {w for s in splits["train"] for w in s.english.split()}
    assert len(words) >= 500  # the training split really uses them, not just the word lists
    slu = draw_sentences(SPECS["slu"], seed=0)
    assert len({s.intent for s in slu["test"]}) >= 10
    assert all(s.intent in grammar.INTENTS for ss in slu.values() for s in ss)


@pytest.mark.parametrize("n, en, es", [
    (0, "zero", "cero"), (17, "seventeen", "diecisiete"), (21, "twenty one", "veintiuno"),
    (40, "forty", "cuarenta"), (99, "ninety nine", "noventa y nueve"), (100, "one hundred", "cien"),
    (115, "one hundred fifteen", "ciento quince"), (500, "five hundred", "quinientos"),
    (1000, "one thousand", "mil"), (2024, "two thousand twenty four", "dos mil veinticuatro"),
    (9999, "nine thousand nine hundred ninety nine", "nueve mil novecientos noventa y nueve"),
])
def test_numbers_in_both_languages(n, en, es):
    assert grammar.english_number(n) == en
    assert grammar.spanish_number(n) == es


@pytest.mark.parametrize("year, spoken", [(1998, "nineteen ninety eight"), (2005, "two thousand five"),
                                          (2021, "twenty twenty one"), (1905, "nineteen oh five"),
                                          (1900, "nineteen hundred")])
def test_years(year, spoken):
    assert grammar.english_year(year) == spoken


def test_translation_rules():
    rng = np.random.default_rng(0)
    seen = [grammar.sentence(rng) for _ in range(3000)]
    for s in seen:
        assert s.spanish and s.spanish.isascii(), s
        assert " de el " not in f" {s.spanish} " and " a el " not in f" {s.spanish} ", s
        assert (s.intent is not None) == (s.kind == "commands")
    # gender agreement: a feminine noun takes 'la' and an adjective in -a, a masculine one 'el'
    gender = {en: (es, g) for en, es, g in grammar._NOUNS}
    adjectives = dict(grammar._ADJECTIVES)
    for _ in range(500):
        en, es = grammar._noun_phrase(rng)
        _, adj, noun = en.split(" ", 2)
        noun_es, g = gender[noun]
        adj_es = adjectives[adj][:-1] + "a" if g == "f" and adjectives[adj].endswith("o") else adjectives[adj]
        assert es == f"{'la' if g == 'f' else 'el'} {noun_es} {adj_es}", (en, es)


def test_slu_and_st_texts(tmp_path):
    generate("slu", tmp_path / "slu", seed=0, sizes=SMALL)
    first = (tmp_path / "slu" / "test" / "text").read_text().splitlines()[0].split()
    assert first[1].lower() in grammar.INTENTS  # 'id INTENT words...'
    generate("st", tmp_path / "st", seed=0, sizes=SMALL)
    src = read_data_dir(tmp_path / "st" / "test")
    assert (tmp_path / "st" / "test" / "src_text").exists()
    assert json.loads((tmp_path / "st" / "corpus.json").read_text())["kind"] == "st"
    assert all(u.text.islower() for u in src)  # Spanish targets are lower case, English sources upper

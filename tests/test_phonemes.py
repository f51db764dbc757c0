"""bench.data.phonemes: English -> ARPAbet in the token set of ESPnet's LJSpeech TTS models."""
from __future__ import annotations

import pytest

from bench.data import espeak
from bench.data.phonemes import (
    ARPABET_SYMBOLS,
    _IPA,
    check_symbols,
    default_token_list,
    english_to_arpabet,
    english_to_arpabet_many,
    ipa_word_to_arpabet,
    phoneme_vocabulary,
)
from bench.zoo import grammar
from bench.zoo.corpus import SPECS, draw_sentences


@pytest.fixture(scope="module")
def tokens():
    path = default_token_list()
    if path is None or not path.is_file():
        pytest.skip("../shared/espnet-recipes/tts_ljspeech token list is not present (set BENCH_SHARED)")
    return phoneme_vocabulary(path)


# CMUdict pronunciations (first entry) that the eSpeak route reproduces exactly.
KNOWN = {
    "world": "W ER1 L D", "the": "DH AH0", "seven": "S EH1 V AH0 N", "a": "AH0",
    "water": "W AO1 T ER0", "fire": "F AY1 ER0", "hour": "AW1 ER0", "button": "B AH1 T AH0 N",
    "bottle": "B AA1 T AH0 L", "during": "D UH1 R IH0 NG", "house": "HH AW1 S", "boy": "B OY1",
    "church": "CH ER1 CH", "measure": "M EH1 ZH ER0", "thing": "TH IH1 NG", "yes": "Y EH1 S",
    "car": "K AA1 R", "four": "F AO1 R", "quiet": "K W AY1 AH0 T", "radio": "R EY1 D IY0 OW2",
    "what": "W AH1 T", "to": "T UW1", "is": "IH1 Z", "of": "AH1 V",
}


def test_well_known_words():
    got = dict(zip(KNOWN, english_to_arpabet_many(list(KNOWN))))
    assert {w: got[w] for w in KNOWN if got[w] != KNOWN[w]} == {}


def test_hello_world_with_punctuation():
    assert english_to_arpabet("hello") in ("HH AH0 L OW1", "HH EH0 L OW1")
    assert english_to_arpabet("hello world.") == "HH AH0 L OW1 W ER1 L D ."
    # capitals are not spelled out; ; and -- are dropped as g2p_en drops them; a run of marks is one token
    assert english_to_arpabet("Hello; world -- yes, no? go!!") == \
        english_to_arpabet("hello world yes, no? go!")
    assert english_to_arpabet("seven...").split()[-1] == "."
    assert english_to_arpabet("seven?!").split()[-2:] == ["?", "!"]


def test_deterministic_whatever_came_between():
    text = "the quick brown fox jumps over the lazy dog, twenty one times?"
    a = english_to_arpabet(text)
    english_to_arpabet("something else entirely: 1234 croissants in Paris!")
    espeak.synthesize("and some speech in between")
    assert english_to_arpabet(text) == a


def test_whole_grammar_vocabulary_converts(tokens):
    words = sorted(grammar.vocabulary())
    for word, phonemes in zip(words, english_to_arpabet_many(words)):
        phones = phonemes.split()
        assert phones and set(phones) <= ARPABET_SYMBOLS, word
        assert any(p[-1].isdigit() for p in phones), word  # every word has a vowel
        check_symbols(phonemes, tokens)


def test_tts_test_split_converts(tokens):
    sentences = draw_sentences(SPECS["tts"], 0)["test"]
    assert len(sentences) == SPECS["tts"].sizes["test"]
    texts = [s.english + "." for s in sentences]
    converted = english_to_arpabet_many(texts)
    for phonemes in converted:
        check_symbols(phonemes, tokens)
    # one instance for many texts gives what one call per text gives
    for text, phonemes in list(zip(texts, converted))[:3]:
        assert english_to_arpabet(text) == phonemes
    # words are converted one by one (as g2p_en looks them up): no cross-word effects
    words = sentences[0].english.split()
    assert converted[0] == " ".join(english_to_arpabet_many(words) + ["."])


def test_every_symbol_the_table_can_emit_is_in_the_token_list(tokens):
    assert ARPABET_SYMBOLS <= tokens
    for unit in _IPA:  # each table entry, under each stress mark
        for mark in ("", "ˈ", "ˌ"):
            assert set(ipa_word_to_arpabet(f"{mark}{unit}", unit)) <= ARPABET_SYMBOLS, unit


def test_stress_marks_and_promotion():
    assert ipa_word_to_arpabet("h_ə_l_ˈoʊ") == ["HH", "AH0", "L", "OW1"]
    assert ipa_word_to_arpabet("ˌaɪ_d_ˈiə") == ["AY2", "D", "IY1", "AH0"]
    assert ipa_word_to_arpabet("b_ˌʌ_t") == ["B", "AH1", "T"]  # secondary only -> promoted to primary
    assert ipa_word_to_arpabet("t_uː") == ["T", "UW1"]  # no mark: first full vowel
    assert ipa_word_to_arpabet("ð_ə") == ["DH", "AH0"]  # only reduced vowels: stays unstressed
    assert ipa_word_to_arpabet("d_ˈʊɹ_ɹ_ɪ_ŋ") == ["D", "UH1", "R", "IH0", "NG"]  # one R


def test_unknown_symbol_names_symbol_and_word(monkeypatch):
    with pytest.raises(ValueError, match=r"'ʘ'.*'kot'"):
        ipa_word_to_arpabet("k_ˈʘ_t", "kot")
    monkeypatch.setattr(espeak, "text_to_phonemes", lambda words, **kw: ["h_ˈʘ"] * len(words))
    with pytest.raises(ValueError, match=r"'ʘ'.*'hello'"):
        english_to_arpabet("hello")


@pytest.mark.parametrize("text", ["", "   \n", "?!", "-- ;"])
def test_empty_text_is_an_error(text):
    with pytest.raises(ValueError):
        english_to_arpabet(text)
    with pytest.raises(ValueError):
        english_to_arpabet_many(["hello", text])


def test_phoneme_vocabulary_and_check(tokens, tmp_path):
    assert {"<blank>", "<unk>", "<sos/eos>", "AH0", "ZH", ".", ",", "?", "!"} <= tokens
    with pytest.raises(ValueError, match="XX"):
        check_symbols("HH AH0 XX", tokens)
    small = tmp_path / "tokens.txt"
    small.write_text("<blank>\nAH0\n\nN\n")
    assert phoneme_vocabulary(small) == {"<blank>", "AH0", "N"}
    with pytest.raises(FileNotFoundError):
        phoneme_vocabulary(tmp_path / "missing.txt")


def test_espeak_text_to_phonemes():
    out = espeak.text_to_phonemes(["hello world", "", "seven, eight"])
    assert out == ["h_ə_l_ˈoʊ w_ˈɜː_l_d", "", "s_ˈɛ_v_ə_n ˈeɪ_t"]
    assert espeak.text_to_phonemes(["hello"], separator="-") == ["h-ə-l-ˈoʊ"]
    with pytest.raises(ValueError):
        espeak.text_to_phonemes(["hello"], separator=" ")
    with pytest.raises(espeak.EspeakError):
        espeak.text_to_phonemes(["hello"], voice="no-such-voice")

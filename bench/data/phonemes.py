"""English text -> ARPAbet phonemes in the token set of ESPnet's LJSpeech TTS models.

ESPnet's published LJSpeech models (token_type "phn", g2p "g2p_en_no_space") read
CMUdict-style ARPAbet with stress digits plus the punctuation marks . , ? !, with no
word-boundary token: "hello world." -> "HH AH0 L OW1 W ER1 L D .".  g2p_en itself needs
nltk's cmudict and tagger downloads, which this machine cannot fetch, so the phonemes
come from eSpeak NG (en-us, IPA output, through bench.data.espeak) and a fixed
IPA -> ARPAbet table.

How the result is made to look like g2p_en's:
  * one eSpeak call per word, as g2p_en looks words up one by one; in running text
    eSpeak would glue function words to their neighbours ("in the" -> "ɪnðə") and flap
    across word boundaries, which CMUdict never does;
  * stress digits come from eSpeak's marks (ˈ -> 1, ˌ -> 2, none -> 0), and a word
    without primary stress gets one, because CMUdict stresses nearly every word
    ("but" B AH1 T, "to" T UW1): its first secondary stress is promoted, or else its
    first full (non-reduced) vowel; words with only reduced vowels stay unstressed
    ("the" DH AH0);
  * the lone word "a" is AH0 (CMUdict's first entry): eSpeak says the letter name;
  * punctuation . , ? ! becomes a token (a run such as "..." one token); other
    punctuation is dropped, as g2p_en's text filter does.

Deterministic: the same text always gives the same string (text_to_phonemes uses a
fresh library instance per call).  An IPA symbol the table does not know raises
ValueError naming the symbol and the word, rather than guessing.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["english_to_arpabet", "english_to_arpabet_many", "ipa_word_to_arpabet", "phoneme_vocabulary",
           "check_symbols", "default_token_list", "ARPABET_SYMBOLS", "PUNCTUATION"]

_SEP = "_"  # between phonemes in eSpeak's output; words are separated by spaces
_PRIMARY, _SECONDARY = "ˈ", "ˌ"

# IPA phoneme (as eSpeak NG en-us writes it, stress marks removed) -> ARPAbet.
# A vowel is written with "*" where its stress digit goes; only the first vowel of a
# unit takes the unit's stress, the rest are unstressed ("aɪɚ" fire -> AY1 ER0).
_IPA = {
    # consonants
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G",
    "f": "F", "v": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH",
    "h": "HH", "tʃ": "CH", "dʒ": "JH", "m": "M", "n": "N", "ŋ": "NG", "l": "L",
    "ɹ": "R", "r": "R", "w": "W", "j": "Y",
    "ɾ": "T",  # en-us flap: eSpeak flaps only /t/ ("water", "thirty"); CMUdict writes T
    "ʔ": "T",  # glottal stop for /t/ before syllabic n ("button")
    "x": "K",  # "loch", "Bach": CMUdict has K
    # syllabic consonants: CMUdict writes schwa + consonant
    "n̩": "AH* N", "l̩": "AH* L", "m̩": "AH* M", "əl": "AH* L",
    # monophthongs
    "iː": "IY*", "i": "IY*", "ɪ": "IH*", "ᵻ": "IH*", "ɛ": "EH*", "e": "EH*", "æ": "AE*", "a": "AE*",
    "ɑː": "AA*", "ɑ": "AA*", "ɒ": "AA*", "ɔː": "AO*", "ɔ": "AO*",
    "ʌ": "AH*", "ə": "AH*", "ɐ": "AH*", "ʊ": "UH*", "uː": "UW*", "u": "UW*",
    "ɜː": "ER*", "ɜ": "ER*", "ɚ": "ER*", "o": "OW*", "oː": "AO*",
    # diphthongs
    "eɪ": "EY*", "aɪ": "AY*", "aʊ": "AW*", "oʊ": "OW*", "ɔɪ": "OY*",
    # r-coloured and triphthong units eSpeak emits as one phoneme
    "aɪɚ": "AY* ER", "aɪə": "AY* AH", "aʊɚ": "AW* ER",  # fire, quiet, hour
    "ɑːɹ": "AA* R", "ɔːɹ": "AO* R", "oːɹ": "AO* R", "ɔɹ": "AO* R", "oɹ": "AO* R",
    "ɛɹ": "EH* R", "eɹ": "EH* R", "ɪɹ": "IH* R", "iɹ": "IY* R", "ʊɹ": "UH* R", "ɜːɹ": "ER*",
    "iə": "IY* AH",  # idea, area; before ɹ it is plain IY (zero), see ipa_word_to_arpabet
    "ɪə": "IH* R", "eə": "EH* R", "ʊə": "UH* R",  # British voices' non-rhotic near/square/cure
}
# Vowels that stay unstressed when a word has no stress mark at all ("the" DH AH0).
_REDUCED = {"ə", "ɐ", "ɚ", "ᵻ", "n̩", "l̩", "m̩", "əl"}
_VOWEL_BASES = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
_CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S",
               "SH", "T", "TH", "V", "W", "Y", "Z", "ZH")
PUNCTUATION = (".", ",", "?", "!")
# Everything english_to_arpabet can emit (the table's vowels take any stress digit).
ARPABET_SYMBOLS = frozenset({f"{v}{s}" for v in _VOWEL_BASES for s in "012"} | set(_CONSONANTS)
                            | set(PUNCTUATION))

_WORD_OVERRIDES = {"a": "AH0"}  # eSpeak reads a lone "a" as the letter name (EY1)
# A word runs up to whitespace or one of . , ? ! (kept inside numbers: "3.50", "1,000");
# a run of marks is one punctuation token.
_TOKEN = re.compile(r"(?:[^\s.,?!]|(?<=\d)[.,](?=\d))+|[.,?!]+")
# What the English front end reads: Latin letters (accented ones too), digits, spaces and
# common punctuation. eSpeak would read anything else its own way (a CJK character as
# "Chinese letter"), so a sentence in another script would be synthesised as nonsense.
_READABLE = re.compile(r"[A-Za-z0-9\u00c0-\u024f\s.,?!;:'\"()\-$%&]")
_TOKEN_LIST = ("espnet-recipes", "tts_ljspeech", "ljspeech_vits_phn_g2p_en_no_space_tokens.txt")


def _unit_phones(unit: str, stress: str, word: str) -> list[str]:
    """ARPAbet for one eSpeak phoneme with stress digit ``stress`` (vowels only)."""
    try:
        arpa = _IPA[unit]
    except KeyError:
        raise ValueError(f"no ARPAbet for IPA symbol {unit!r} in word {word!r}") from None
    out, first = [], True
    for p in arpa.split():
        if p.endswith("*"):
            out.append(p[:-1] + (stress if first else "0"))
            first = False
        elif p in _VOWEL_BASES:  # second vowel of a unit ("aɪɚ" -> AY1 ER0)
            out.append(p + "0")
        else:
            out.append(p)
    return out


def ipa_word_to_arpabet(ipa: str, word: str = "?") -> list[str]:
    """One eSpeak IPA word ("h_ə_l_ˈoʊ") -> ARPAbet (["HH", "AH0", "L", "OW1"]).

    ``word`` only names the source in error messages.  Raises ValueError on a symbol
    the table does not know.
    """
    units = []  # (stress mark or "", phoneme)
    pending = ""
    for raw in ipa.split(_SEP):
        unit = raw
        # eSpeak puts the mark in front of the vowel, sometimes as a unit of its own
        while unit[:1] in (_PRIMARY, _SECONDARY):
            pending, unit = unit[0], unit[1:]
        unit = unit.replace("\u0303", "")  # nasalised vowels (French loans): ARPAbet has no nasality
        if not unit:
            continue
        if unit not in _IPA:
            _unit_phones(unit, "0", word)  # raises with the symbol and the word
        is_vowel = "*" in _IPA[unit]
        units.append((pending if is_vowel else "", unit))
        if is_vowel:
            pending = ""
    marks = [m for m, _ in units]
    if _PRIMARY not in marks:  # CMUdict stresses almost every word: give this one a primary
        if _SECONDARY in marks:
            i = marks.index(_SECONDARY)
        else:
            i = next((k for k, (_, u) in enumerate(units) if "*" in _IPA[u] and u not in _REDUCED), None)
        if i is not None:
            units[i] = (_PRIMARY, units[i][1])
    digit = {_PRIMARY: "1", _SECONDARY: "2", "": "0"}
    out: list[str] = []
    for k, (mark, unit) in enumerate(units):
        after = units[k + 1][1] if k + 1 < len(units) else ""
        if unit == "iə" and after == "ɹ":
            unit = "iː"  # "zero" z_ˈiə_ɹ_oʊ: CMUdict Z IY1 R OW0, no schwa
        elif unit == "ɪ" and not mark and after and "*" in _IPA.get(after, ""):
            unit = "i"  # unstressed before a vowel: CMUdict writes IY0 ("radio", "tokyo")
        for p in _unit_phones(unit, digit[mark], word):
            # eSpeak repeats the r after an r-coloured vowel ("during" d_ˈʊɹ_ɹ_ɪ_ŋ, "hurry"
            # h_ˈɜː_ɹ_i); CMUdict has one R and never writes R after ER
            if p == "R" and out and (out[-1] == "R" or out[-1].startswith("ER")):
                continue
            out.append(p)
    return out


def english_to_arpabet(text: str, *, voice: str = "en-us") -> str:
    """English text -> space-separated ARPAbet with stress digits and . , ? ! tokens.

    >>> english_to_arpabet("hello world.")
    'HH AH0 L OW1 W ER1 L D .'

    Raises ValueError for empty text, text with nothing to say, or an IPA symbol the
    table does not know (the message names the symbol and the word).
    """
    return english_to_arpabet_many([text], voice=voice)[0]


def english_to_arpabet_many(texts: list[str], *, voice: str = "en-us") -> list[str]:
    """english_to_arpabet for each text, with one eSpeak instance for all of them.

    The same as calling english_to_arpabet text by text (words are converted one by
    one either way), but much cheaper for a corpus: loading the library costs more
    than converting a few hundred words.
    """
    from bench.data.espeak import text_to_phonemes  # looked up per call, so tests can stand in for it

    token_lists = []
    for text in texts:
        if not text or not text.strip():
            raise ValueError("english_to_arpabet: text is empty")
        bad = sorted({c for c in text if not _READABLE.match(c)})
        if bad:
            raise ValueError("english_to_arpabet: " + ", ".join(f"{c!r} (U+{ord(c):04X})" for c in bad)
                             + " outside the English front end's characters (Latin letters, digits, "
                               "punctuation)")
        # lower case as g2p_en does; eSpeak would spell out words in capitals
        token_lists.append(_TOKEN.findall(text.lower()))
    words = sorted({t for tokens in token_lists for t in tokens
                    if not _is_punct(t) and t not in _WORD_OVERRIDES})
    ipa = dict(zip(words, text_to_phonemes(words, voice=voice, separator=_SEP))) if words else {}
    results = []
    for text, tokens in zip(texts, token_lists):
        out: list[str] = []
        for tok in tokens:
            if _is_punct(tok):
                # one token per run of the same mark ("..." -> ".", "?!" -> "? !")
                out.extend(m for k, m in enumerate(tok) if k == 0 or tok[k - 1] != m)
            elif tok in _WORD_OVERRIDES:
                out.extend(_WORD_OVERRIDES[tok].split())
            else:
                for ipa_word in ipa[tok].split():  # eSpeak may give several ("123" -> one hundred ...)
                    out.extend(ipa_word_to_arpabet(ipa_word, tok))
        if not any(p not in PUNCTUATION for p in out):
            raise ValueError(f"english_to_arpabet: nothing to pronounce in {text[:60]!r}")
        results.append(" ".join(out))
    return results


def _is_punct(token: str) -> bool:
    return token[0] in ".,?!"


def default_token_list() -> Path | None:
    """The LJSpeech VITS token list in ../shared (None when ../shared is absent)."""
    from bench.paths import shared_dir

    root = shared_dir()
    return root.joinpath(*_TOKEN_LIST) if root is not None else None


def phoneme_vocabulary(token_list_path: str | Path | None = None) -> set[str]:
    """The tokens of an ESPnet token list (one per line), special tokens included."""
    path = Path(token_list_path) if token_list_path is not None else default_token_list()
    if path is None or not path.is_file():
        raise FileNotFoundError(f"token list not found: {path}")
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def check_symbols(phonemes: str, vocabulary: set[str]) -> None:
    """Raise ValueError naming every symbol of ``phonemes`` that ``vocabulary`` lacks."""
    missing = sorted(set(phonemes.split()) - vocabulary)
    if missing:
        raise ValueError(f"symbols not in the token list: {' '.join(missing)} (in {phonemes[:80]!r})")

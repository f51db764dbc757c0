"""Text scoring: the one pinned normaliser, corpus WER/CER, and token agreement.

Every WER/CER the harness reports goes through :func:`normalize_text`, so a
number computed today can be compared with one from last month; changing the
normaliser changes every score and must be treated as a breaking change.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import jiwer

__all__ = ["normalize_text", "wer_cer", "agreement_ter", "edit_distance"]

# ESPnet's special tokens that can leak into decoded text.
_SPECIAL_TOKENS = ("<blank>", "<unk>", "<sos/eos>")
_SP_SPACE = "\u2581"  # SentencePiece word-boundary marker '▁'
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_NOT_WORD = re.compile(r"[^\w']|_")  # anything but letters, digits, apostrophes
_LONE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")  # not between two word characters


def normalize_text(s: str) -> str:
    """The harness's single text normaliser (pinned; LibriSpeech-style output).

    In order:
      1. Unicode NFKC; curly apostrophes become ``'``.
      2. ESPnet special tokens ``<blank>``, ``<unk>``, ``<sos/eos>`` are removed.
      3. SentencePiece ``▁`` becomes a space (this does not re-join pieces
         that are already separated by spaces; detokenise before calling).
      4. Upper-case.
      5. Punctuation (anything not a letter, digit or apostrophe; also ``_``)
         becomes a space, so "well-known" -> "WELL KNOWN".
      6. Apostrophes are kept only inside words: "don't" -> "DON'T",
         "'tis" -> "TIS", "dogs'" -> "DOGS".
      7. Whitespace is collapsed and stripped.
    Digits are kept as digits (no number verbalisation) and accents are kept.
    """
    s = unicodedata.normalize("NFKC", s).translate(_APOSTROPHES)
    for token in _SPECIAL_TOKENS:
        s = s.replace(token, " ")
    s = s.replace(_SP_SPACE, " ").upper()
    s = _NOT_WORD.sub(" ", s)
    s = _LONE_APOSTROPHE.sub(" ", s)
    return " ".join(s.split())


def wer_cer(refs: Sequence[str], hyps: Sequence[str], *, normalize: bool = True) -> dict[str, float | None]:
    """Corpus WER and CER in percent: total edits / total reference words (characters) * 100.

    Texts go through :func:`normalize_text` first (``normalize=False`` to
    skip).  CER counts characters of the space-joined words, spaces included
    (jiwer 3.1.0's convention).  An empty hypothesis is all deletions; a
    reference that is empty after normalisation contributes its hypothesis's
    words/characters as insertions and nothing to the denominator.  An empty
    reference list, or references with no words at all, give None values.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"wer_cer: {len(refs)} references but {len(hyps)} hypotheses")
    if normalize:
        refs = [normalize_text(r) for r in refs]
        hyps = [normalize_text(h) for h in hyps]
    else:
        refs = [" ".join(r.split()) for r in refs]
        hyps = [" ".join(h.split()) for h in hyps]

    # jiwer 3.1.0 refuses empty references, so those pairs are counted here.
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    extra_word_ins = sum(len(h.split()) for r, h in zip(refs, hyps) if not r)
    extra_char_ins = sum(len(h) for r, h in zip(refs, hyps) if not r)
    if not pairs:
        return {"wer": None, "cer": None}

    ref_list = [r for r, _ in pairs]
    hyp_list = [h for _, h in pairs]
    words = jiwer.process_words(ref_list, hyp_list)
    chars = jiwer.process_characters(ref_list, hyp_list)
    n_words = words.hits + words.substitutions + words.deletions
    n_chars = chars.hits + chars.substitutions + chars.deletions
    word_errors = words.substitutions + words.deletions + words.insertions + extra_word_ins
    char_errors = chars.substitutions + chars.deletions + chars.insertions + extra_char_ins
    return {"wer": 100.0 * word_errors / n_words, "cer": 100.0 * char_errors / n_chars}


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (unit-cost substitutions, deletions, insertions) between two sequences."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref  # distance is symmetric; keep the row short
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i]
        for j, h in enumerate(hyp, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def _as_list(tokens) -> list:
    # numpy arrays: .tolist() gives Python ints, whose == is a plain bool.
    return tokens.tolist() if hasattr(tokens, "tolist") else list(tokens)


def agreement_ter(ref_tokens: Sequence[Sequence], hyp_tokens: Sequence[Sequence]) -> float:
    """Token error rate (percent) of a variant's token ids against the reference (PyTorch) ones.

    Total edit distance over all utterances / total reference tokens * 100;
    0.0 when every sequence is identical.  When the references hold no
    tokens at all, the denominator is max(1, total), so N hypothesis tokens
    give N * 100 (N insertions over 1).
    """
    if len(ref_tokens) != len(hyp_tokens):
        raise ValueError(f"agreement_ter: {len(ref_tokens)} reference sequences but {len(hyp_tokens)} hypotheses")
    edits = total = 0
    for ref, hyp in zip(ref_tokens, hyp_tokens):
        ref, hyp = _as_list(ref), _as_list(hyp)
        edits += edit_distance(ref, hyp)
        total += len(ref)
    return 100.0 * edits / max(1, total)

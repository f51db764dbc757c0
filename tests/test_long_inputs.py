"""Long inputs: a 5-minute recording through every ASR variant, a 1,000-character text through
every TTS variant, each in its own process, with its peak memory (RSS above the process's idle
level after imports) at 1, 2 and 5 minutes of speech.

ASR runs two ways. 'whole': the recording in one piece; self-attention keeps a frames x frames
matrix per head, so memory grows with the square of the length (recorded, not asserted).
'windows': decode.segment_seconds, how the cards decode (bench/runtime/long_form.py); memory
must grow no worse than linearly. Figures go to reports/robustness/long_inputs.md (README).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from bench.paths import reports_dir
from bench.variants import DEFAULT_VARIANTS, VARIANTS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("in_shared_cache")]

MINUTES = (1, 2, 5)
CPU_VARIANTS = [v for v in DEFAULT_VARIANTS if "cpu" in VARIANTS[v].devices]
SLACK_MB = 64  # allocator noise between processes (arenas, page cache of the model files)
MEASURED: list[dict] = []


def _measure(art, card, variant, item):
    from bench.trackers import measure_child_memory

    r = measure_child_memory(art, card, variant, "cpu", 1, [item])
    return r.peak_rss_mb, r.payload["output_sizes"][0], r.wall_s


@pytest.fixture(scope="module", autouse=True)
def write_figures():
    yield
    if not MEASURED:
        return
    out = reports_dir() / "robustness"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| card | input | variant | mode | peak RSS MB (speech: at " + " / ".join(f"{m}" for m in MINUTES)
             + " min) | output of the longest input | wall s, longest input |", "|---|---|---|---|---|---|---|"]
    for r in MEASURED:
        lines.append(f"| {r['card']} | {r['input']} | {r['variant']} | {r['mode']} | "
                     + " / ".join(f"{mb:.0f}" for mb in r["peak_mb"]) + f" | {r['output']} | {r['wall_s']:.0f} |")
    (out / "long_inputs.md").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def asr():
    from bench.artifacts import ensure_artifact
    from bench.data.sets import load_eval_set
    from bench.zoo.cards import load_card

    card = load_card("asr-conformer-smoke")
    assert card.decode["segment_seconds"] == 30  # the card decodes long audio in windows
    # Random weights never say EOS: cap the search at int(0.003 x encoder frames) steps (22 at
    # 5 minutes), so the time goes to the long input, not to a long hypothesis.
    card = dataclasses.replace(card, decode={**card.decode, "maxlenratio": 0.003})
    speech = [u.wave for u in load_eval_set(card)]
    pause = np.zeros(3200, np.float32)
    one_pass = np.concatenate([x for w in speech for x in (w, pause)])
    sr = 16000
    waves = {m: np.resize(one_pass, m * 60 * sr) for m in MINUTES}  # the utterances, repeated
    return card, ensure_artifact(card), waves


@pytest.mark.parametrize("variant", CPU_VARIANTS)
def test_five_minute_recording_through_every_asr_variant(asr, variant):
    card, art, waves = asr
    peaks = {}
    for mode, segment in (("windows", card.decode["segment_seconds"]), ("whole", None)):
        c = dataclasses.replace(card, decode={**card.decode, "segment_seconds": segment})
        runs = [_measure(art, c, variant, waves[m]) for m in MINUTES]  # a crash raises here
        peaks[mode] = [mb for mb, _, _ in runs]
        MEASURED.append({"card": card.name, "input": "speech", "variant": variant, "mode": mode,
                         "peak_mb": peaks[mode], "output": f"{runs[-1][1]} tokens",
                         "wall_s": runs[-1][2]})
    # No worse than linear: n minutes need at most n times what one minute needed (the line
    # through the origin bounds any linear growth with a fixed part). Whole recordings fail
    # this at 5 minutes (README); allocator noise between processes gets 10% and SLACK_MB.
    for m, peak in zip(MINUTES, peaks["windows"]):
        assert peak <= m * peaks["windows"][0] * 1.1 + SLACK_MB, (m, peaks)
    assert peaks["windows"][-1] < peaks["whole"][-1], peaks  # windows keep long audio affordable


def _thousand_characters() -> str:
    from bench.data.sets import load_text_set
    from bench.zoo.cards import load_card

    sentences = [i.text for i in load_text_set(load_card("tts-fastspeech2-paper"))]
    text = ""
    for s in sentences * 20:
        if len(text) + len(s) + 2 > 1000:
            break
        text += s + ". "
    return (text + "and so on " * 100)[:1000].rsplit(" ", 1)[0].strip()


# The smoke-size TTS cards: a length cap is a property of the structure, which they share
# with the paper cards. The paper cards' memory at this length (docs/inputs.md) is printed by
# BENCH_LONG_TTS_CARDS=tts-fastspeech2-paper,tts-vits-paper ./run tests tests/test_long_inputs.py
TTS_CARDS = os.environ.get("BENCH_LONG_TTS_CARDS", "tts-fastspeech2-smoke,tts-vits-smoke").split(",")


@pytest.mark.parametrize("card_name", TTS_CARDS)
def test_thousand_character_text_through_every_tts_variant(card_name):
    from bench.artifacts import ensure_artifact
    from bench.data.phonemes import english_to_arpabet
    from bench.zoo.cards import load_card

    card = load_card(card_name)
    art = ensure_artifact(card)
    text = _thousand_characters()
    assert 990 <= len(text) <= 1000
    phonemes = english_to_arpabet(text)
    n_tokens = len(phonemes.split())
    for variant in CPU_VARIANTS:
        mb, samples, wall = _measure(art, card, variant, phonemes)
        # every token is spoken: a few frames of 256 samples each at least
        assert samples >= n_tokens * 256, (variant, samples, n_tokens)
        MEASURED.append({"card": card.name, "input": f"{len(text)} characters ({n_tokens} phonemes)",
                         "variant": variant, "mode": "whole", "peak_mb": [mb],
                         "output": f"{samples / 22050:.0f} s of audio", "wall_s": wall})

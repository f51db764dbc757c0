"""bench.data.espeak: deterministic synthetic speech and the built-in eval set."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from bench.data.espeak import (
    VOICES,
    EspeakError,
    builtin_eval_set,
    long_utterance,
    native_sample_rate,
    synthesize,
)
from bench.metrics.text import normalize_text

TEXT = "the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def eval_set():
    return builtin_eval_set()


def test_native_rate():
    assert native_sample_rate() == 22050


def test_same_call_twice_is_identical_whatever_came_between():
    a = synthesize(TEXT)
    synthesize("something else entirely, spoken in between", voice="en", rate=120, pitch=80)
    b = synthesize(TEXT)
    assert a.dtype == np.float32 and a.ndim == 1
    assert a.tobytes() == b.tobytes()


def test_parameters_change_the_audio():
    base = synthesize(TEXT)
    assert synthesize(TEXT, voice="en").tobytes() != base.tobytes()
    assert synthesize(TEXT, pitch=70).tobytes() != base.tobytes()
    assert len(synthesize(TEXT, rate=250)) < 0.85 * len(base)


def test_sample_rate_and_level():
    w16 = synthesize(TEXT, sample_rate=16000)
    w8 = synthesize(TEXT, sample_rate=8000)
    assert abs(len(w16) - 2 * len(w8)) <= 2
    assert 1.5 < len(w16) / 16000 < 5
    assert 0.1 < np.abs(w16).max() <= 1.0


def test_voices_exist():
    for voice in VOICES:
        assert len(synthesize("hello", voice=voice)) > 1600


def test_errors():
    with pytest.raises(EspeakError, match="'xx-nope' not found"):
        synthesize("hello", voice="xx-nope")
    with pytest.raises(ValueError, match="empty"):
        synthesize("   ")


def test_deterministic_across_processes_and_no_torch():
    code = (
        "import sys, hashlib, json\n"
        "import bench.data.audio, bench.data.kaldi, bench.metrics.text\n"
        "from bench.data.espeak import synthesize\n"
        f"h = hashlib.sha256(synthesize({TEXT!r}).tobytes()).hexdigest()\n"
        "print(json.dumps({'hash': h, 'heavy': sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'espnet', 'espnet2'))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["heavy"] == []  # these modules must stay importable without torch
    assert child["hash"] == hashlib.sha256(synthesize(TEXT).tobytes()).hexdigest()


def test_speed():
    text = "the old man found the green house near the station and then a young girl"
    synthesize(text)
    t0 = time.perf_counter()
    wave = synthesize(text)
    elapsed = time.perf_counter() - t0
    assert len(wave) / 16000 > 3
    assert elapsed < 0.5  # measured ~7 ms for ~3.7 s of speech


def test_eval_set_shape(eval_set):
    assert [u.id for u in eval_set] == [f"espeak-{i:03d}" for i in range(12)]
    durations = [len(u.wave) / u.sample_rate for u in eval_set]
    assert min(durations) <= 1.5 and max(durations) >= 10
    assert max(durations) <= 20
    assert np.corrcoef(durations, range(12))[0, 1] > 0.95  # spread evenly, short to long
    for u in eval_set:
        assert u.audio_path is None and u.sample_rate == 16000 and u.wave.dtype == np.float32
        assert u.text and u.text == normalize_text(u.text)  # upper case, no punctuation
    assert any(w in eval_set[1].text.split() for w in ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"))


def test_eval_set_deterministic(eval_set):
    again = builtin_eval_set()
    for a, b in zip(eval_set, again):
        assert a.text == b.text and a.wave.tobytes() == b.wave.tobytes()
    other = builtin_eval_set(n=3, seed=1)
    assert [u.text for u in other] != [u.text for u in eval_set[:3]]


def test_long_utterance():
    u = long_utterance(60)
    seconds = len(u.wave) / u.sample_rate
    assert 60 <= seconds < 75
    assert len(u.text.split()) > 100
    assert u.wave.tobytes() == long_utterance(60).wave.tobytes()

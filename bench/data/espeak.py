"""Deterministic synthetic speech from eSpeak NG, for tests and the built-in eval set.

eSpeak NG comes from the ``espeakng_loader`` wheel (it ships libespeak-ng.so and
espeak-ng-data), reached through ctypes: no network, no model download, and
the same text/voice/rate/pitch always gives the same bytes on a given
library build.  Its robotic voice is good enough for ASR models to decode
mostly correctly, which is what smoke tests and agreement checks need.

Speed (measured on the dev box, one CPU thread, espeak-ng 1.52 from
espeakng_loader 0.2.4): 3.7 s of speech takes ~7 ms including the library
reload and the resample to 16 kHz (~500x real time); the 12-utterance eval set
takes ~0.8 s (sentences are re-synthesized as they grow), a 60 s utterance ~0.1 s.

POSIX only: unloading the library per call uses dlclose (see below).
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import os
import shutil
import tempfile
import threading

import numpy as np

from bench.data.audio import resample
from bench.data.kaldi import Utterance

__all__ = ["synthesize", "text_to_phonemes", "builtin_eval_set", "long_utterance", "native_sample_rate",
           "EspeakError", "VOICES"]

# Values from espeak-ng's speak_lib.h (checked by behaviour: Initialize returns
# 22050, SetVoiceByName of an unknown voice returns EE_NOT_FOUND).
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # enum espeak_AUDIO_OUTPUT: PLAYBACK=0, RETRIEVAL=1, SYNCHRONOUS=2
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit() inside the library
_POS_CHARACTER = 1
_CHARS_AUTO = 0
_RATE = 1  # enum espeak_PARAMETER
_VOLUME = 2
_PITCH = 3
_RANGE = 4
_EE_OK = 0
_CHARS_UTF8 = 1  # espeakCHARS_UTF8, textmode of espeak_TextToPhonemes
_PHONEMES_IPA = 0x02  # espeakPHONEMES_IPA, bit 1 of phonememode; bits 8-23 hold the separator

# Voices used by the built-in eval set (all present in espeakng_loader's data dir:
# lang/gmw/en-US, en, en-GB-x-rp; note 'en-gb' is NOT a valid
# name there: British English is 'en').
VOICES = ("en-us", "en", "en-gb-x-rp")


class EspeakError(RuntimeError):
    """eSpeak NG failed (library missing, unknown voice, synthesis error)."""


# Why a fresh library instance per call: libespeak-ng keeps wavegen state in C
# statics that espeak_Initialize/Terminate never reset (e.g. the pitch-flutter
# phase in AdvanceParameters), so with one long-lived instance the same text
# comes out a few samples longer or shorter depending on what was spoken before
# (measured: "hello world" gave 12123, 12125, 12136, 12128 samples in a row).
# So each call dlopens a private copy of the .so (private so that no other
# user of libespeak-ng in the process shares or pins it), initialises it,
# synthesizes, and dlcloses it; the statics start from their initial values
# every time.  Cost ~0.5 ms per call (data files are cached by the OS).
# The copy is made once per process; a lock serialises everything because the
# collected samples and the library are process-global.
_lock = threading.Lock()
_private_copy: str | None = None
_native_rate = 0
_unload_checked = False
_chunks: list[bytes] = []

_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _on_samples(wav, numsamples, events):  # called by espeak_Synth, under _lock
    if numsamples > 0 and wav:
        _chunks.append(ctypes.string_at(wav, numsamples * 2))
    return 0  # 0 = continue synthesis


# Module-level reference: ctypes callbacks are freed with their Python object.
_callback = _CALLBACK_TYPE(_on_samples)


def _data_path() -> bytes:
    import espeakng_loader

    return espeakng_loader.get_data_path().encode()


def _remove_copy(tmp: str, owner_pid: int) -> None:
    # A forked child inherits this atexit hook; only the creating process deletes the copy.
    if os.getpid() == owner_pid:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_library() -> str:
    """Path of this process's private copy of libespeak-ng.so (caller holds _lock)."""
    global _private_copy
    if _private_copy is None or not os.path.exists(_private_copy):
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise EspeakError("espeakng_loader is not installed (pip package 'espeakng-loader')") from exc
        tmp = tempfile.mkdtemp(prefix="bench-espeak-")
        dst = os.path.join(tmp, "libespeak-ng-bench.so")
        shutil.copyfile(espeakng_loader.get_library_path(), dst)
        atexit.register(_remove_copy, tmp, os.getpid())
        _private_copy = dst
    return _private_copy


def _open() -> ctypes.CDLL:
    """A freshly loaded and initialised instance (caller holds _lock and must _close it)."""
    global _native_rate
    lib = ctypes.CDLL(_copy_library(), mode=os.RTLD_LOCAL)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK_TYPE]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, _data_path(), _INITIALIZE_DONT_EXIT)
    if rate <= 0:
        _close(lib)
        raise EspeakError(f"espeak_Initialize failed ({rate}) with data path {_data_path().decode()}")
    lib.espeak_SetSynthCallback(_callback)
    _native_rate = rate
    return lib


def _close(lib: ctypes.CDLL) -> None:
    """Terminate and unload, so the next _open starts from pristine C statics."""
    global _unload_checked
    lib.espeak_Terminate()
    handle = lib._handle
    del lib
    _ctypes.dlclose(handle)
    if not _unload_checked and os.path.exists("/proc/self/maps"):
        # Determinism rests on the library really being unmapped; check once.
        with open("/proc/self/maps") as f:
            if _private_copy in f.read():
                raise EspeakError("libespeak-ng was not unloaded by dlclose; synthesis would not be deterministic")
        _unload_checked = True


def native_sample_rate() -> int:
    """eSpeak NG's own output rate (22050 Hz for the bundled data)."""
    with _lock:
        if not _native_rate:
            _close(_open())
        return _native_rate


def synthesize(text: str, *, voice: str = "en-us", rate: int = 175, pitch: int = 50, sample_rate: int = 16000) -> np.ndarray:
    """Speak ``text`` and return float32 mono at ``sample_rate``.

    ``rate`` is words per minute (80-450), ``pitch`` 0-100.  Deterministic:
    the same arguments give byte-identical output whatever was synthesized
    before (fresh library instance per call, see above).
    """
    if not text or not text.strip():
        raise ValueError("synthesize: text is empty")
    with _lock:
        lib = _open()
        try:
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise EspeakError(f"espeak-ng voice {voice!r} not found")
            for param, value in ((_RATE, rate), (_PITCH, pitch), (_VOLUME, 100), (_RANGE, 50)):
                if lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
                    raise EspeakError(f"espeak_SetParameter({param}, {value}) failed")
            _chunks.clear()
            raw = text.encode("utf-8")
            err = lib.espeak_Synth(raw, len(raw) + 1, 0, _POS_CHARACTER, 0, _CHARS_AUTO, None, None)
            if err != _EE_OK or lib.espeak_Synchronize() != _EE_OK:
                raise EspeakError(f"espeak_Synth failed ({err}) for text {text[:60]!r}")
            pcm = b"".join(_chunks)
            _chunks.clear()
            native = _native_rate
        finally:
            _close(lib)
    wave = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if wave.size == 0:
        raise EspeakError(f"espeak-ng produced no audio for text {text[:60]!r}")
    return resample(wave, native, sample_rate)


def text_to_phonemes(texts: list[str], *, voice: str = "en-us", separator: str = "_") -> list[str]:
    """eSpeak NG's IPA phonemes for each of ``texts`` (espeak_TextToPhonemes).

    Each result has the phonemes of one text: words separated by spaces, the
    phonemes of a word by ``separator`` (a diphthong such as "aɪ" stays one
    phoneme), stress marks ˈ ˌ in front of the stressed vowel, clauses joined
    by a space; punctuation itself is not reported.  One fresh library
    instance serves the whole list (see above), so the result depends only on
    the arguments.
    """
    if len(separator) != 1 or separator.isspace() or ord(separator) > 0xFFFF:
        raise ValueError(f"text_to_phonemes: separator must be one non-space character, got {separator!r}")
    mode = _PHONEMES_IPA | (ord(separator) << 8)
    out = []
    with _lock:
        lib = _open()
        try:
            lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
            lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise EspeakError(f"espeak-ng voice {voice!r} not found")
            for text in texts:
                buf = ctypes.create_string_buffer(text.encode("utf-8"))  # NUL-terminated, kept alive here
                ptr = ctypes.c_void_p(ctypes.addressof(buf))
                clauses = []
                # The library moves ptr to the next clause and sets it to NULL after the last one.
                while ptr.value:
                    before = ptr.value
                    phonemes = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, mode)
                    if phonemes:
                        clauses.append(phonemes.decode("utf-8"))
                    if ptr.value == before:  # no progress: stop rather than loop forever
                        raise EspeakError(f"espeak_TextToPhonemes made no progress on {text[:60]!r}")
                out.append(" ".join(c.strip() for c in clauses if c.strip()))
        finally:
            _close(lib)
    return out


# ---------------------------------------------------------------------------
# Built-in evaluation set.  Fixed word lists + a seeded RNG: changing either
# changes every number reported on this set, so treat them as frozen.
_COMMANDS = [
    "turn on the lights", "open the door", "play some music", "call my sister", "close the window",
    "set an alarm", "turn the volume down", "start the timer", "what time is it", "read my messages",
]
_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_SUBJECTS = ["the old man", "a young girl", "the teacher", "my brother", "the farmer", "our neighbor",
             "the doctor", "a small dog", "the captain", "her mother"]
_VERBS = ["found", "carried", "painted", "watched", "opened", "cleaned", "brought", "moved", "wanted", "saw"]
_ADJECTIVES = ["green", "heavy", "quiet", "bright", "broken", "little", "warm", "empty", "strange", "new"]
_NOUNS = ["house", "garden", "letter", "river", "table", "window", "basket", "market", "bridge", "boat"]
_PLACES = ["near the station", "in the morning", "after dinner", "by the river", "before the storm",
           "at the market", "under the bridge", "on the hill", "last winter", "in the city"]
_CONNECTORS = ["and then", "because", "while", "but later", "so"]

_SHORTEST_S, _LONGEST_S = 1.0, 15.0  # target length range of the eval set
_COMMAND_UP_TO_S, _DIGITS_UP_TO_S = 1.6, 4.0  # targets below these are commands / digit strings


def _pick(rng: np.random.Generator, words: list[str]) -> str:
    return words[int(rng.integers(len(words)))]


def _clause(rng: np.random.Generator) -> str:
    return f"{_pick(rng, _SUBJECTS)} {_pick(rng, _VERBS)} the {_pick(rng, _ADJECTIVES)} {_pick(rng, _NOUNS)}"


def _pieces(kind: str, rng: np.random.Generator):
    """Endless text pieces of one kind; the first piece starts the utterance."""
    if kind == "digits":
        while True:
            yield _pick(rng, _DIGITS)
    yield _clause(rng)
    while True:
        yield _pick(rng, _PLACES)
        yield f"{_pick(rng, _CONNECTORS)} {_clause(rng)}"


def _speak_until(target_s: float, kind: str, rng: np.random.Generator, synth, sample_rate: int) -> tuple[str, np.ndarray]:
    """Grow a sentence piece by piece until its synthesized audio lasts target_s."""
    if kind == "command":
        text = _pick(rng, _COMMANDS)
        return text, synth(text)
    pieces = _pieces(kind, rng)
    words = [next(pieces)]
    while True:
        text = " ".join(words)
        wave = synth(text)
        if len(wave) >= target_s * sample_rate:
            return text, wave
        words.append(next(pieces))


def builtin_eval_set(n: int = 12, seed: int = 0, sample_rate: int = 16000) -> list[Utterance]:
    """A deterministic synthetic English eval set of ``n`` utterances held in memory.

    Target lengths are spread evenly from about 1 s to about 15 s: the
    shortest are spoken commands, then digit strings ("four seven one"), then
    plain sentences grown clause by clause until long enough.  Voices cycle
    through VOICES, rates are 150-190 wpm and pitches 40-60.  ``text`` is the
    sentence in UPPER CASE with no punctuation (LibriSpeech style); ids are
    ``espeak-000``, ``espeak-001``, ...
    """
    rng = np.random.default_rng(seed)
    targets = np.linspace(_SHORTEST_S, _LONGEST_S, n) if n > 1 else np.array([_SHORTEST_S])
    utts = []
    for i, target in enumerate(targets):
        kind = "command" if target < _COMMAND_UP_TO_S else "digits" if target < _DIGITS_UP_TO_S else "sentence"
        voice = VOICES[i % len(VOICES)]
        rate = int(rng.integers(150, 191))
        pitch = int(rng.integers(40, 61))

        def synth(text, voice=voice, rate=rate, pitch=pitch):
            return synthesize(text, voice=voice, rate=rate, pitch=pitch, sample_rate=sample_rate)

        text, wave = _speak_until(float(target), kind, rng, synth, sample_rate)
        utts.append(Utterance(id=f"espeak-{i:03d}", audio_path=None, text=text.upper(),
                              wave=wave, sample_rate=sample_rate))
    return utts


def long_utterance(seconds: float, seed: int = 0, sample_rate: int = 16000) -> Utterance:
    """One in-memory utterance of at least ``seconds``: synthesized sentences back to back (en-us, 175 wpm)."""
    rng = np.random.default_rng(seed)
    waves, texts, total = [], [], 0
    while total < seconds * sample_rate:
        sentence = f"{_clause(rng)} {_pick(rng, _PLACES)} {_pick(rng, _CONNECTORS)} {_clause(rng)}"
        wave = synthesize(sentence, voice="en-us", rate=175, pitch=50, sample_rate=sample_rate)
        waves.append(wave)
        texts.append(sentence.upper())
        total += len(wave)
    return Utterance(id=f"espeak-long-{seconds:g}s-{seed}", audio_path=None, text=" ".join(texts),
                     wave=np.concatenate(waves), sample_rate=sample_rate)

"""The evaluation set of a card: the built-in synthetic speech, or a Kaldi-style data dir;
for TTS, sentences of the closed grammar as phoneme strings.

Audio is resampled to the model's own rate (its frontend_conf.fs, 16 kHz by default).
Every item has `input` (what the model is given) and `size` (what a subset spreads over).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.zoo.cards import Card, CardError

SAMPLE_RATE = 16000  # ESPnet's default frontend rate, and that of every built-in card


@dataclass
class EvalUtterance:
    id: str
    wave: np.ndarray
    text: str | None
    source: str  # the file it came from, or "builtin"
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return self.wave.shape[0] / self.sample_rate

    @property
    def input(self) -> np.ndarray:
        return self.wave

    @property
    def size(self) -> float:
        return self.seconds


@dataclass
class TextItem:
    """A TTS input: the English sentence and the phoneme string the model reads."""
    id: str
    text: str
    phonemes: str
    source: str

    @property
    def input(self) -> str:
        return self.phonemes

    @property
    def size(self) -> float:
        return len(self.phonemes.split())


def load_text_set(card: Card, data_dir: str | os.PathLike | None = None) -> list[TextItem]:
    """TTS inputs as ARPAbet phonemes from eSpeak NG (bench.data.phonemes): the sentences of a
    data dir's `text` file (id, sentence), else the first n sentences of a corpus split of
    the grammar (no audio is generated). A line that cannot be spoken names its file and line."""
    from bench.data.phonemes import english_to_arpabet, english_to_arpabet_many

    if data_dir:
        from bench.data.kaldi import DataDirError, read_table

        path = Path(data_dir) / "text"
        if not path.is_file():
            raise DataDirError(f"{path}: not found (a TTS card reads the sentences of a data dir's text file)")
        items = []
        for line, uid, sentence in read_table(path):
            if not sentence:
                raise DataDirError(f"{path}:{line}: utterance {uid!r} has empty text; nothing to synthesise")
            try:
                items.append(TextItem(uid, sentence, english_to_arpabet(sentence), f"{path}:{line}"))
            except ValueError as e:
                raise DataDirError(f"{path}:{line}: utterance {uid!r}: {e}") from e
        return items
    from bench.zoo.corpus import SPECS, draw_sentences

    kind, split = card.data.get("corpus", "tts"), card.data.get("split", "test")
    if kind not in SPECS or split not in SPECS[kind].sizes:
        raise CardError(f"{card.path}: data.corpus {kind!r} / data.split {split!r} is not a corpus "
                        f"split (corpora: {', '.join(SPECS)})")
    sentences = draw_sentences(SPECS[kind], int(card.data.get("seed", 0)))[split]
    sentences = sentences[:int(card.data.get("n_utterances", len(sentences)))]
    phonemes = english_to_arpabet_many([s.english + "." for s in sentences])  # one library load
    return [TextItem(f"{kind}-{split}-{i:05d}", s.english, p, f"grammar:{kind}/{split}")
            for i, (s, p) in enumerate(zip(sentences, phonemes))]


def parse_rate(value) -> int:
    """A rate as ESPnet configs write it: 16000, '16000' or '16k' (humanfriendly's decimal k)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kK])?\s*", str(value))
    if not m:
        raise ValueError(f"not a sample rate: {value!r}")
    return int(round(float(m.group(1)) * (1000 if m.group(2) else 1)))


def model_sample_rate(card: Card) -> int:
    """The rate the card's model was trained at: model.fs (user models), else frontend_conf.fs."""
    fs = card.model.get("fs") or ((card.model.get("espnet") or {}).get("frontend_conf") or {}).get("fs")
    return parse_rate(fs) if fs else SAMPLE_RATE


def load_eval_set(card: Card, data_dir: str | os.PathLike | None = None) -> list[EvalUtterance]:
    """All utterances of the card's data, audio read and resampled to the model's rate.

    `data_dir` (the --data option), else BENCH_DATA (a Kaldi-style dir), overrides the card's
    own data. A broken audio file raises AudioError naming it: the cases of this card become
    errors, other cards run.
    """
    data_dir = data_dir or os.environ.get("BENCH_DATA") or card.data.get("dir")
    if card.data.get("source") == "grammar":  # text in (TTS): sentences to synthesise
        return load_text_set(card, data_dir)
    rate = model_sample_rate(card)
    source = card.data.get("source", "builtin")
    if not data_dir and source == "corpus":  # a split of a generated corpus (made if missing)
        from bench.zoo.corpus import ensure_corpus

        corpus = ensure_corpus(card.data["corpus"], int(card.data.get("seed", 0)))
        data_dir = corpus / card.data.get("split", "test")
    if data_dir:
        from bench.data.kaldi import read_data_dir

        from bench.data.audio import AudioError

        scp = Path(data_dir) / "wav.scp"
        out = []
        for u in read_data_dir(data_dir):
            try:
                check_sample_rate(u.audio_path, allow_upsampling=bool(card.data.get("allow_upsampling")),
                                  model_rate=rate)
                out.append(EvalUtterance(u.id, u.load(rate), u.text, str(u.audio_path), rate))
            except AudioError as e:  # the message names the audio file; add where it is listed
                raise AudioError(f"{e} (listed in {scp}:{u.line} as {u.id!r})") from e
        return out
    if source != "builtin":
        raise CardError(f"{card.path}: data.source is {source!r}, expected 'builtin', 'corpus', "
                        f"'grammar' or data.dir")
    from bench.data.espeak import builtin_eval_set

    # generated at 16 kHz whatever the model, so every model hears the same speech
    utts = builtin_eval_set(n=int(card.data.get("n_utterances", 8)), sample_rate=SAMPLE_RATE)
    return [EvalUtterance(u.id, u.load(rate), u.text, "builtin", rate) for u in utts]


AUDIO_SUFFIXES = (".flac", ".wav")


def load_real_clips(card: Card) -> tuple[list[EvalUtterance], str]:
    """The real recordings a trained card is also checked on (``data.real_speech``, a folder of
    FLAC/WAV clips with a Kaldi-style ``text``, relative to ../shared): (clips, where), or
    ([], why not) when the card names none or the folder is not on this machine."""
    from bench.paths import shared_dir

    rel = card.data.get("real_speech")
    if not rel:
        return [], "the card names no real_speech folder"
    shared = shared_dir()
    folder = shared / rel if shared else None
    if folder is None or not folder.is_dir():
        return [], f"{rel}: not found under ../shared (set BENCH_SHARED)"
    texts = {}
    if (folder / "text").is_file():
        from bench.data.kaldi import read_table

        texts = {uid: rest for _, uid, rest in read_table(folder / "text")}
    rate = model_sample_rate(card)
    from bench.data.kaldi import Utterance

    clips = [EvalUtterance(f.stem, Utterance(f.stem, str(f), None).load(rate), texts.get(f.stem),
                           str(f), rate)
             for f in sorted(folder.iterdir()) if f.suffix.lower() in AUDIO_SUFFIXES]
    if not clips:
        return [], f"{folder}: no {'/'.join(AUDIO_SUFFIXES)} files"
    return clips, str(folder)


def check_sample_rate(path: str, allow_upsampling: bool = False, model_rate: int = SAMPLE_RATE) -> None:
    """Higher rates are resampled down; a lower rate is refused unless the card allows it.

    Upsampling telephone-band (8 kHz) audio for a 16 kHz model cannot restore the missing
    band: the figures would describe a deployment nobody runs, so it is an error by default.
    """
    import soundfile

    from bench.data.audio import AudioError

    try:
        rate = soundfile.info(path).samplerate
    except Exception:
        return  # unreadable: read_audio gives the precise error for this file
    if rate < model_rate and not allow_upsampling:
        raise AudioError(f"{path}: sample rate {rate} Hz is below the model's {model_rate} Hz "
                         f"(upsampling cannot restore the missing band; resample the data or "
                         f"set data.allow_upsampling: true in the card)")


def stratified_subset(utts: list, k: int) -> list:
    """k items spread over the length range (shortest, longest, evenly between)."""
    ordered = sorted(utts, key=lambda u: u.size)
    if k >= len(ordered):
        return ordered
    idx = np.unique(np.round(np.linspace(0, len(ordered) - 1, k)).astype(int))
    return [ordered[i] for i in idx]

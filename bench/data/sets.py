"""The evaluation set of a card: the built-in synthetic speech, or a Kaldi-style data dir."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from bench.zoo.cards import Card, CardError

SAMPLE_RATE = 16000


@dataclass
class EvalUtterance:
    id: str
    wave: np.ndarray
    text: str | None
    source: str  # the file it came from, or "builtin"

    @property
    def seconds(self) -> float:
        return self.wave.shape[0] / SAMPLE_RATE


def load_eval_set(card: Card) -> list[EvalUtterance]:
    """All utterances of the card's data, audio read and resampled to 16 kHz.

    BENCH_DATA (a Kaldi-style dir) overrides the card's own data. A broken audio file
    raises AudioError naming it: the cases of this card become errors, other cards run.
    """
    data_dir = os.environ.get("BENCH_DATA") or card.data.get("dir")
    if data_dir:
        from bench.data.kaldi import read_data_dir

        utts = read_data_dir(data_dir)
        for u in utts:
            check_sample_rate(u.audio_path, allow_upsampling=bool(card.data.get("allow_upsampling")))
        return [EvalUtterance(u.id, u.load(SAMPLE_RATE), u.text, str(u.audio_path)) for u in utts]
    source = card.data.get("source", "builtin")
    if source != "builtin":
        raise CardError(f"{card.path}: data.source is {source!r}, expected 'builtin' or data.dir")
    from bench.data.espeak import builtin_eval_set

    utts = builtin_eval_set(n=int(card.data.get("n_utterances", 8)), sample_rate=SAMPLE_RATE)
    return [EvalUtterance(u.id, u.load(SAMPLE_RATE), u.text, "builtin") for u in utts]


def check_sample_rate(path: str, allow_upsampling: bool = False) -> None:
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
    if rate < SAMPLE_RATE and not allow_upsampling:
        raise AudioError(f"{path}: sample rate {rate} Hz is below the model's {SAMPLE_RATE} Hz "
                         f"(upsampling cannot restore the missing band; resample the data or "
                         f"set data.allow_upsampling: true in the card)")


def stratified_subset(utts: list[EvalUtterance], k: int) -> list[EvalUtterance]:
    """k utterances spread over the length range (shortest, longest, evenly between)."""
    ordered = sorted(utts, key=lambda u: u.seconds)
    if k >= len(ordered):
        return ordered
    idx = np.unique(np.round(np.linspace(0, len(ordered) - 1, k)).astype(int))
    return [ordered[i] for i in idx]

"""Reading one audio file into the float32 mono waveform every model gets.

All audio enters the harness here, so every fault a corpus can have (missing
file, corrupt bytes, empty or non-finite audio, a clip too short to mean
anything) becomes one :class:`AudioError` that names the file; the caller can
then fail that one utterance instead of the whole run.
"""

from __future__ import annotations

import os
import re

import numpy as np
import soundfile as sf
import soxr

__all__ = ["AudioError", "read_audio", "duration_seconds", "resample"]

# soxr 'HQ' is the quality ESPnet's own loaders get from librosa/soxr; pinned so
# waveforms (and so every downstream number) do not move between versions.
RESAMPLE_QUALITY = "HQ"


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the fault."""


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a float32 mono wave with soxr (quality 'HQ'); a no-op when the rates match."""
    if orig_sr == target_sr:
        return wave
    out = soxr.resample(np.ascontiguousarray(wave, dtype=np.float32), orig_sr, target_sr, quality=RESAMPLE_QUALITY)
    # The band-limiting filter rings, so a full-scale input can overshoot 1.0 slightly.
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


# libsndfile reads a truncated WAV silently and notes it in its log, e.g.
# "data : 84794 (should be 42375)"; we turn that into an error because scoring
# half an utterance against its full transcript would skew WER silently.
_DATA_SHOULD_BE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers (e.g. sox to a pipe) put a placeholder size in the header;
# a file shorter than that placeholder is not truncated.
_PLACEHOLDER_SIZE = 0x7FFFF000


def _truncation(extra_info: str) -> str | None:
    m = _DATA_SHOULD_BE.search(extra_info or "")
    if not m:
        return None
    declared, present = int(m.group(1)), int(m.group(2))
    if present < declared < _PLACEHOLDER_SIZE:
        return f"header declares {declared} data bytes, file holds {present}"
    return None


def read_audio(path: str | os.PathLike, target_sr: int, *, min_seconds: float = 0.1) -> np.ndarray:
    """Read an audio file as float32 mono in [-1, 1] at ``target_sr``.

    Formats are whatever libsndfile decodes: WAV, FLAC, OGG/Vorbis, and
    uncompressed NIST SPHERE (.sph).  Shorten-compressed SPHERE (most LDC
    corpora, e.g. WSJ) is not decodable by libsndfile and gives an AudioError
    saying to convert it first (``sph2pipe -f wav``).

    Multi-channel files: only the FIRST channel is used (no down-mix), so the
    result is identical to what a mono recording of that channel would give.
    Float files with samples beyond +-1 are clipped to [-1, 1].

    Raises AudioError (naming the file) when the file is missing, cannot be
    decoded, is a truncated WAV (data shorter than its header says), has no samples, has NaN/inf samples, or is shorter than
    ``min_seconds``.
    """
    if not isinstance(target_sr, (int, np.integer)) or target_sr <= 0:
        raise ValueError(f"target_sr must be a positive integer, got {target_sr!r}")
    name = os.fspath(path)
    if not os.path.exists(name):
        raise AudioError(f"{name}: audio file not found")
    if os.path.isdir(name):
        raise AudioError(f"{name}: is a directory, not an audio file")

    try:
        with sf.SoundFile(name) as f:
            sr = f.samplerate
            truncated = _truncation(f.extra_info)
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError, ValueError) as exc:
        hint = ""
        if name.lower().endswith(".sph"):
            hint = " (shorten-compressed SPHERE is not supported by libsndfile; convert it with 'sph2pipe -f wav' first)"
        raise AudioError(f"{name}: cannot decode audio: {exc}{hint}") from exc

    if truncated:
        raise AudioError(f"{name}: file is truncated ({truncated})")
    if data.shape[0] == 0:
        raise AudioError(f"{name}: audio is empty (0 samples)")
    wave = np.ascontiguousarray(data[:, 0])  # first channel only, see docstring
    if not np.isfinite(wave).all():
        bad = int((~np.isfinite(wave)).sum())
        raise AudioError(f"{name}: audio has {bad} NaN/inf samples")
    seconds = wave.shape[0] / sr
    if seconds < min_seconds:
        raise AudioError(f"{name}: audio too short ({seconds:.3f} s < {min_seconds} s minimum)")

    wave = np.clip(wave, -1.0, 1.0)
    return resample(wave, int(sr), int(target_sr))


def duration_seconds(wave: np.ndarray, sr: int) -> float:
    """Length of a 1-D wave in seconds."""
    return float(len(wave)) / float(sr)

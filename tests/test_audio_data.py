"""bench.data.audio and bench.data.kaldi on real LibriSpeech/LJSpeech clips and on broken inputs."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.data.audio import AudioError, duration_seconds, read_audio
from bench.data.kaldi import DataDirError, Utterance, read_data_dir, write_data_dir

from bench.paths import shared_dir

REAL = (shared_dir() or Path("/nonexistent")) / "real-speech"
LIBRI = REAL / "librispeech"
LJ = REAL / "ljspeech"
needs_real = pytest.mark.skipif(not LIBRI.is_dir() or not LJ.is_dir(), reason="real speech clips not present")


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _sine(seconds: float, sr: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------- real audio
@needs_real
def test_librispeech_data_dir_reads_flac(tmp_path):
    flacs = sorted(LIBRI.glob("*.flac"))
    assert len(flacs) == 3
    _write_lines(tmp_path / "wav.scp", [f"{f.stem} {f}" for f in flacs])
    shutil.copy(LIBRI / "text", tmp_path / "text")

    utts = read_data_dir(tmp_path)
    assert [u.id for u in utts] == [f.stem for f in flacs]
    assert utts[2].text == "A GOLDEN FORTUNE AND A HAPPY LIFE"
    for u, f in zip(utts, flacs):
        assert u.wave is None  # lazy: nothing read yet
        wave = u.load(16000)
        ref, sr = sf.read(f, dtype="float32")
        assert sr == 16000
        assert wave.dtype == np.float32 and wave.ndim == 1
        np.testing.assert_array_equal(wave, ref)  # same rate: no resampling at all
        assert np.abs(wave).max() <= 1.0
        assert np.sqrt(np.mean(wave**2)) > 0.01  # real speech, not silence
        assert 2.0 < duration_seconds(wave, 16000) < 6.0


@needs_real
def test_ljspeech_resampled_22k_to_16k(tmp_path):
    for f in sorted(LJ.glob("*.wav")):
        orig, sr = sf.read(f, dtype="float32")
        assert sr == 22050
        wave = read_audio(f, 16000)
        assert wave.dtype == np.float32
        assert abs(len(wave) - len(orig) * 16000 / 22050) <= 2
        assert abs(duration_seconds(wave, 16000) - len(orig) / 22050) < 1e-3
        # Resampling keeps the signal: energy within 5 %, peak within [-1, 1].
        rms_o, rms_w = np.sqrt(np.mean(orig**2)), np.sqrt(np.mean(wave**2))
        assert abs(rms_w / rms_o - 1) < 0.05
        assert np.abs(wave).max() <= 1.0


@needs_real
def test_relative_paths_resolve_against_dir_then_cwd(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    shutil.copy(LIBRI / "61-70968-0002.flac", data / "audio" / "a.flac")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    shutil.copy(LIBRI / "61-70968-0001.flac", elsewhere / "b.flac")
    _write_lines(data / "wav.scp", ["a audio/a.flac", "b b.flac", "c nowhere/c.flac"])
    monkeypatch.chdir(elsewhere)

    utts = {u.id: u for u in read_data_dir(data)}
    assert Path(utts["a"].audio_path) == data / "audio" / "a.flac"
    assert Path(utts["b"].audio_path) == elsewhere / "b.flac"
    assert all(u.text is None for u in utts.values())  # no text file
    assert len(utts["a"].load(16000)) == 47520
    # A missing file fails only its own utterance, when loaded, naming the path.
    with pytest.raises(AudioError, match=r"nowhere/c\.flac.*not found"):
        utts["c"].load(16000)


def test_multichannel_uses_first_channel(tmp_path):
    left = _sine(0.5)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    sf.write(tmp_path / "st.wav", stereo, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(tmp_path / "st.wav", 16000), left)


def test_sphere_file_reads(tmp_path):
    wave = _sine(0.5, sr=8000)
    sf.write(tmp_path / "x.sph", wave, 8000, format="NIST", subtype="PCM_16")
    out = read_audio(tmp_path / "x.sph", 16000)
    assert abs(len(out) - 2 * len(wave)) <= 1


def test_streamed_wav_with_placeholder_size_is_not_truncated(tmp_path):
    sf.write(tmp_path / "s.wav", _sine(0.5), 16000, subtype="PCM_16")
    raw = bytearray((tmp_path / "s.wav").read_bytes())
    at = raw.index(b"data") + 4
    raw[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)  # what a writer to a pipe leaves
    (tmp_path / "s.wav").write_bytes(bytes(raw))
    assert len(read_audio(tmp_path / "s.wav", 16000)) == 8000


# ---------------------------------------------------------------- audio errors
def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"missing\.wav: audio file not found"):
        read_audio(tmp_path / "missing.wav", 16000)


def test_random_bytes_is_corrupt(tmp_path):
    (tmp_path / "x.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioError, match=r"x\.wav: cannot decode audio"):
        read_audio(tmp_path / "x.wav", 16000)


@needs_real
def test_truncated_wav(tmp_path):
    raw = (LJ / "LJ050-0030.wav").read_bytes()
    (tmp_path / "half.wav").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError, match=r"half\.wav: file is truncated"):
        read_audio(tmp_path / "half.wav", 16000)
    (tmp_path / "head.wav").write_bytes(raw[:30])  # cut inside the header
    with pytest.raises(AudioError, match=r"head\.wav: cannot decode audio"):
        read_audio(tmp_path / "head.wav", 16000)


@needs_real
def test_truncated_flac(tmp_path):
    raw = (LIBRI / "61-70968-0001.flac").read_bytes()
    (tmp_path / "half.flac").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError, match=r"half\.flac: cannot decode audio"):
        read_audio(tmp_path / "half.flac", 16000)


def test_empty_wav(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav: audio is empty \(0 samples\)"):
        read_audio(tmp_path / "empty.wav", 16000)


def test_nan_wav(tmp_path):
    wave = _sine(0.5)
    wave[100:103] = np.nan
    wave[200] = np.inf
    sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio has 4 NaN/inf samples"):
        read_audio(tmp_path / "nan.wav", 16000)


def test_too_short_and_configurable(tmp_path):
    sf.write(tmp_path / "short.wav", _sine(0.05), 16000)
    with pytest.raises(AudioError, match=r"short\.wav: audio too short \(0\.050 s"):
        read_audio(tmp_path / "short.wav", 16000)
    assert len(read_audio(tmp_path / "short.wav", 16000, min_seconds=0.01)) == 800


def test_float_wav_beyond_full_scale_is_clipped(tmp_path):
    sf.write(tmp_path / "loud.wav", 3 * _sine(0.5), 16000, subtype="FLOAT")
    wave = read_audio(tmp_path / "loud.wav", 16000)
    assert wave.max() == 1.0 and wave.min() == -1.0


# ---------------------------------------------------------------- data dir errors
def test_missing_wav_scp(tmp_path):
    with pytest.raises(DataDirError, match=r"wav\.scp: missing"):
        read_data_dir(tmp_path)


def test_malformed_line(tmp_path):
    _write_lines(tmp_path / "wav.scp", ["a /x/a.wav", "", "b"])
    with pytest.raises(DataDirError, match=r"wav\.scp:3: malformed line"):
        read_data_dir(tmp_path)


def test_duplicate_ids(tmp_path):
    _write_lines(tmp_path / "wav.scp", ["a /x/a.wav", "b /x/b.wav", "a /x/c.wav"])
    with pytest.raises(DataDirError, match=r"wav\.scp:3: duplicate utterance id 'a' \(first on line 1\)"):
        read_data_dir(tmp_path)
    _write_lines(tmp_path / "wav.scp", ["a /x/a.wav", "b /x/b.wav"])
    _write_lines(tmp_path / "text", ["a HELLO", "b WORLD", "b AGAIN"])
    with pytest.raises(DataDirError, match=r"text:3: duplicate utterance id 'b'"):
        read_data_dir(tmp_path)


@pytest.mark.parametrize("entry", ["sox /x/a.flac -t wav - |", "flac -c -d -s /x/a.flac |", "sox /x/a.sph -t wav -r 16k - | cat"])
def test_pipe_is_rejected(tmp_path, entry):
    _write_lines(tmp_path / "wav.scp", ["ok /x/ok.wav", f"a {entry}"])
    with pytest.raises(DataDirError, match=r"wav\.scp:2: pipe command for 'a' is not supported.*never runs shell commands"):
        read_data_dir(tmp_path)


def test_mismatched_ids(tmp_path):
    _write_lines(tmp_path / "wav.scp", [f"w{i} /x/{i}.wav" for i in range(8)] + ["both /x/b.wav"])
    _write_lines(tmp_path / "text", ["both HI", "t1 HELLO"])
    with pytest.raises(DataDirError) as err:
        read_data_dir(tmp_path)
    msg = str(err.value)
    assert "utterance ids do not match" in msg and "wav.scp" in msg and "text" in msg
    assert "'w0' (wav.scp line 1)" in msg and "'w4' (wav.scp line 5)" in msg
    assert "'w5'" not in msg and "and 3 more" in msg  # at most 5 listed per side
    assert "only in text: 't1' (text line 2)" in msg


def test_segments_and_ark_rejected(tmp_path):
    _write_lines(tmp_path / "wav.scp", ["a /x/a.ark:1234"])
    with pytest.raises(DataDirError, match=r"wav\.scp:1: ark offsets"):
        read_data_dir(tmp_path)
    _write_lines(tmp_path / "segments", ["s1 a 0.0 1.0"])
    with pytest.raises(DataDirError, match=r"segments: segments files are not supported"):
        read_data_dir(tmp_path)


def test_text_with_empty_transcript_and_spaces_in_path(tmp_path):
    sf.write(tmp_path / "my clip.wav", _sine(0.3), 16000)
    _write_lines(tmp_path / "wav.scp", ["a my clip.wav"])
    _write_lines(tmp_path / "text", ["a"])
    (utt,) = read_data_dir(tmp_path)
    assert utt.text == "" and len(utt.load(16000)) == 4800


# ---------------------------------------------------------------- write_data_dir
def test_write_then_read_round_trip(tmp_path):
    utts = [
        Utterance("u1", None, "HELLO THERE", wave=_sine(0.4), sample_rate=16000),
        Utterance("u2", None, "GOOD  BYE", wave=_sine(0.7, freq=220), sample_rate=16000),
    ]
    write_data_dir(tmp_path / "d", utts, subtype="FLOAT")
    back = read_data_dir(tmp_path / "d")
    assert [(u.id, u.text) for u in back] == [("u1", "HELLO THERE"), ("u2", "GOOD BYE")]
    for a, b in zip(utts, back):
        np.testing.assert_array_equal(b.load(16000), a.wave)
    # 8 kHz load of a 16 kHz in-memory wave resamples it.
    assert len(utts[0].load(8000)) == 3200

    with pytest.raises(ValueError, match="some utterances have no text"):
        write_data_dir(tmp_path / "e", [utts[0], Utterance("u3", "/x.wav", None)])

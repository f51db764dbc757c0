"""Kaldi-style data directories (``wav.scp`` + optional ``text``), the format ESPnet recipes use.

Only the listing is read here; audio is read lazily (``Utterance.load``) so one
bad audio file becomes one utterance's error rather than a failed run.  Every
error about the listing names the file and the line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Utterance", "DataDirError", "read_data_dir", "write_data_dir"]

_MAX_LISTED = 5  # ids shown per side when wav.scp and text disagree
_SOX_PIPE = re.compile(r"\bsox\b.*\|")
_ARK_OFFSET = re.compile(r"\.ark:\d+$")


class DataDirError(ValueError):
    """A malformed data directory; the message names the file and line."""


@dataclass
class Utterance:
    id: str
    audio_path: str | None
    text: str | None
    wave: np.ndarray | None = None  # set for synthetic data held in memory
    sample_rate: int | None = None  # rate of ``wave`` (required when wave is set)
    line: int | None = None  # its line in wav.scp, for error messages

    def load(self, target_sr: int, *, min_seconds: float = 0.1) -> np.ndarray:
        """The float32 mono wave at ``target_sr``: the in-memory wave, else the file (may raise AudioError)."""
        from bench.data.audio import read_audio, resample

        if self.wave is not None:
            if self.sample_rate is None:
                raise ValueError(f"utterance {self.id}: in-memory wave has no sample_rate")
            return resample(np.asarray(self.wave, dtype=np.float32), int(self.sample_rate), int(target_sr))
        if self.audio_path is None:
            raise ValueError(f"utterance {self.id}: neither audio_path nor wave is set")
        return read_audio(self.audio_path, target_sr, min_seconds=min_seconds)


def read_table(path: Path) -> list[tuple[int, str, str]]:
    """(line number, id, rest) for each non-blank line; rest may be ''."""
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DataDirError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason})") from None
            if not line.strip():
                continue
            fields = line.strip().split(maxsplit=1)
            rows.append((lineno, fields[0], fields[1].strip() if len(fields) > 1 else ""))
    return rows


def _index(path: Path, rows: list[tuple[int, str, str]]) -> dict[str, int]:
    """id -> line number, rejecting duplicates."""
    seen: dict[str, int] = {}
    for lineno, uid, _ in rows:
        if uid in seen:
            raise DataDirError(f"{path}:{lineno}: duplicate utterance id {uid!r} (first on line {seen[uid]})")
        seen[uid] = lineno
    return seen


def _resolve(directory: Path, rel: str) -> str:
    """Absolute paths as is; relative ones against the data dir first, then the cwd."""
    if os.path.isabs(rel):
        return rel
    in_dir = directory / rel
    if in_dir.exists():
        return str(in_dir)
    in_cwd = Path.cwd() / rel
    if in_cwd.exists():
        return str(in_cwd)
    return str(in_dir)  # missing: reported by read_audio for this utterance only


def read_data_dir(path: str | os.PathLike) -> list[Utterance]:
    """Utterances listed in ``<path>/wav.scp`` (order kept), with transcripts from ``<path>/text`` if present.

    wav.scp lines are ``<id> <audio path>`` (the path may contain spaces);
    text lines are ``<id> <transcript>`` (an id alone means an empty
    transcript).  Raises DataDirError for a missing wav.scp, a malformed line,
    a duplicate id, a pipe command or ark offset, a ``segments`` file, or ids
    that differ between wav.scp and text.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise DataDirError(f"{directory}: data directory not found")
    scp = directory / "wav.scp"
    if not scp.is_file():
        raise DataDirError(f"{scp}: missing (a data directory needs wav.scp)")
    if (directory / "segments").exists():
        # Reading whole recordings instead of the segments would silently score the wrong audio.
        raise DataDirError(f"{directory / 'segments'}: segments files are not supported; cut the segments into files first")

    rows = read_table(scp)
    for lineno, uid, rest in rows:
        if not rest:
            raise DataDirError(f"{scp}:{lineno}: malformed line, expected '<id> <audio path>', got {uid!r}")
        if rest.endswith("|") or _SOX_PIPE.search(rest):
            raise DataDirError(
                f"{scp}:{lineno}: pipe command for {uid!r} is not supported: the harness never runs "
                f"shell commands from data files (safety, reproducibility); convert the audio to files first"
            )
        if _ARK_OFFSET.search(rest):
            raise DataDirError(f"{scp}:{lineno}: ark offsets ({rest!r}) are not supported; write one audio file per utterance")
    wav_ids = _index(scp, rows)

    texts: dict[str, str] | None = None
    text_file = directory / "text"
    if text_file.exists():
        text_rows = read_table(text_file)
        text_ids = _index(text_file, text_rows)
        only_wav = [u for u in wav_ids if u not in text_ids]
        only_text = [u for u in text_ids if u not in wav_ids]
        if only_wav or only_text:
            def listing(ids, lines, fname):
                shown = ", ".join(f"{u!r} ({fname} line {lines[u]})" for u in ids[:_MAX_LISTED])
                more = f" and {len(ids) - _MAX_LISTED} more" if len(ids) > _MAX_LISTED else ""
                return (shown + more) if ids else "none"
            raise DataDirError(
                f"{scp} and {text_file}: utterance ids do not match; "
                f"only in wav.scp: {listing(only_wav, wav_ids, 'wav.scp')}; "
                f"only in text: {listing(only_text, text_ids, 'text')}"
            )
        texts = {uid: rest for _, uid, rest in text_rows}

    return [
        Utterance(id=uid, audio_path=_resolve(directory, rest), text=None if texts is None else texts[uid],
                  line=lineno)
        for lineno, uid, rest in rows
    ]


def write_data_dir(path: str | os.PathLike, utts: list[Utterance], *, subtype: str = "PCM_16") -> None:
    """Write ``utts`` as a data directory readable by :func:`read_data_dir`.

    In-memory waves go to ``<path>/wav/<id>.wav`` (soundfile, ``subtype``;
    PCM_16 quantises, use "FLOAT" for a bit-exact round trip); utterances
    with only ``audio_path`` keep that path (made absolute).  ``text`` is
    written when every utterance has one, and an error is raised when only
    some do (read_data_dir would reject the mismatch).
    """
    import soundfile as sf

    directory = Path(path)
    has_text = [u.text is not None for u in utts]
    if any(has_text) and not all(has_text):
        missing = [u.id for u in utts if u.text is None][:_MAX_LISTED]
        raise ValueError(f"write_data_dir: some utterances have no text (e.g. {missing})")
    seen = set()
    for u in utts:
        if not u.id or any(c.isspace() for c in u.id):
            raise ValueError(f"write_data_dir: utterance id {u.id!r} is empty or contains whitespace")
        if u.id in seen:
            raise ValueError(f"write_data_dir: duplicate utterance id {u.id!r}")
        seen.add(u.id)
        if u.wave is None and u.audio_path is None:
            raise ValueError(f"write_data_dir: utterance {u.id} has neither wave nor audio_path")
        if u.wave is not None and u.sample_rate is None:
            raise ValueError(f"write_data_dir: utterance {u.id} has a wave but no sample_rate")

    directory.mkdir(parents=True, exist_ok=True)
    scp_lines, text_lines = [], []
    for u in utts:
        if u.wave is not None:
            (directory / "wav").mkdir(exist_ok=True)
            rel = f"wav/{u.id}.wav"
            sf.write(directory / rel, np.asarray(u.wave, dtype=np.float32), int(u.sample_rate), subtype=subtype)
            scp_lines.append(f"{u.id} {rel}\n")
        else:
            scp_lines.append(f"{u.id} {os.path.abspath(u.audio_path)}\n")
        if u.text is not None:
            text_lines.append(f"{u.id} {' '.join(u.text.split())}\n")
    (directory / "wav.scp").write_text("".join(scp_lines), encoding="utf-8")
    if all(has_text) and utts:
        (directory / "text").write_text("".join(text_lines), encoding="utf-8")
    elif (directory / "text").exists():
        (directory / "text").unlink()  # a stale text from an earlier write would mismatch

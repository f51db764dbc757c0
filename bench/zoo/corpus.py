"""Spoken corpora generated with eSpeak NG from the closed grammar: same seed, same bytes.

`python -m bench zoo corpus KIND` writes KIND's train/dev/test splits as Kaldi-style data
dirs (wav.scp, text, wav/*.wav at 16 kHz PCM-16) plus corpus.json (sizes, vocabulary, voices,
and a SHA-256 over every file, so two runs can be compared byte for byte).

Kinds (what `text` holds):
  asr  English transcript, UPPER CASE, many voices, rates and pitches.
  slu  "INTENT transcript": a SLURP-style intent label as the first word, then the command.
  st   the Spanish translation (the ST target); `src_text` holds the English transcript.
  tts  the English sentence, one voice at one rate and pitch (a TTS training set).
Splits share no sentence: sentences are drawn unique, then dealt out to test, dev, train.
SLU deals each intent's sentences out in proportion to the split sizes: a plain deal put
every sentence of the intents with few distinct commands into test, so train never heard them.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.atomic import build_once
from bench.paths import corpora_dir
from bench.zoo import grammar

SAMPLE_RATE = 16000
SPLITS = ("train", "dev", "test")
# Voices (with eSpeak's voice variants after '+') spread over accents and speaker types.
# No variant with a 'breath' setting (f2, f3, f5, whisper...): their noise comes from the C
# library's rand(), whose state outlives our library reloads, so the bytes would not repeat.
MANY_VOICES = ("en-us", "en-us+f1", "en", "en-gb-x-rp+m3", "en-gb-scotland", "en-us-nyc+f4", "en-029")


@dataclass(frozen=True)
class CorpusSpec:
    kind: str
    sizes: dict[str, int]  # utterances per split
    mix: dict[str, float]  # share of each grammar generator
    voices: tuple[str, ...] = MANY_VOICES
    rates: tuple[int, int] = (140, 200)  # words per minute, drawn uniformly (inclusive)
    pitches: tuple[int, int] = (30, 70)
    extra: dict = field(default_factory=dict)


SPECS = {
    "asr": CorpusSpec("asr", {"train": 2400, "dev": 200, "test": 200}, grammar.MIX),
    "slu": CorpusSpec("slu", {"train": 2000, "dev": 200, "test": 200}, {"commands": 1.0},
                      extra={"deal_by": "intent"}),
    "st": CorpusSpec("st", {"train": 3000, "dev": 200, "test": 200}, grammar.MIX),
    "tts": CorpusSpec("tts", {"train": 1000, "dev": 50, "test": 50}, grammar.MIX,
                      voices=("en-us",), rates=(165, 165), pitches=(50, 50)),
}


def target_text(kind: str, s: grammar.Sentence) -> str:
    """What a model of this kind is trained to output for sentence s."""
    if kind == "st":
        return s.spanish
    if kind == "slu":
        return f"{s.intent.upper()} {s.english.upper()}"
    return s.english.upper()


def draw_sentences(spec: CorpusSpec, seed: int) -> dict[str, list[grammar.Sentence]]:
    """Unique sentences (by their English) dealt out to the splits in a seeded order."""
    rng = np.random.default_rng(seed)
    need = sum(spec.sizes.values())
    seen: dict[str, grammar.Sentence] = {}
    attempts = 0
    while len(seen) < need:
        attempts += 1
        if attempts > 50 * need:
            raise ValueError(f"corpus {spec.kind}: the grammar gave only {len(seen)} distinct sentences "
                             f"in {attempts} draws, {need} needed")
        s = grammar.sentence(rng, spec.mix)
        seen.setdefault(s.english, s)
    order = list(seen.values())
    if spec.extra.get("deal_by"):
        return deal_by_group(order, spec.sizes, lambda s: getattr(s, spec.extra["deal_by"]))
    out, start = {}, 0
    for split in ("test", "dev", "train"):  # test first: its sentences never depend on train's size
        out[split] = order[start:start + spec.sizes[split]]
        start += spec.sizes[split]
    return out


def deal_by_group(order: list, sizes: dict[str, int], group) -> dict[str, list]:
    """Deal sentences so that each group (an intent) is spread over the splits in proportion to
    their sizes: each goes to the open split that is furthest behind its share of that group."""
    total = sum(sizes.values())
    out: dict[str, list] = {split: [] for split in ("test", "dev", "train")}
    dealt: dict = {}  # group -> {split: count}
    for s in order:
        counts = dealt.setdefault(group(s), dict.fromkeys(out, 0))
        n = sum(counts.values()) + 1
        open_splits = [k for k in out if len(out[k]) < sizes[k]]
        split = max(open_splits, key=lambda k: sizes[k] / total * n - counts[k])
        out[split].append(s)
        counts[split] += 1
    return out


def generate(kind: str, out_dir: Path, seed: int = 0, sizes: dict[str, int] | None = None) -> dict:
    """Write the corpus; return its manifest (also written as corpus.json)."""
    import soundfile as sf

    from bench.data.espeak import synthesize

    if kind not in SPECS:
        raise ValueError(f"unknown corpus kind {kind!r}; known: {', '.join(SPECS)}")
    spec = SPECS[kind]
    if sizes:
        spec = CorpusSpec(**{**asdict(spec), "sizes": {**spec.sizes, **sizes}})
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    sentences = draw_sentences(spec, seed)
    # Voice, rate and pitch come from their own stream, so they do not shift the sentences.
    prosody = np.random.default_rng([seed, 1])
    manifest = {"kind": kind, "seed": seed, "sample_rate": SAMPLE_RATE, "spec": asdict(spec), "splits": {}}
    for split in SPLITS:
        d = out_dir / split
        (d / "wav").mkdir(parents=True, exist_ok=True)
        scp, text, src, seconds = [], [], [], 0.0
        for i, s in enumerate(sentences[split]):
            uid = f"{kind}-{split}-{i:05d}"
            voice = spec.voices[int(prosody.integers(len(spec.voices)))]
            rate = int(prosody.integers(spec.rates[0], spec.rates[1] + 1))
            pitch = int(prosody.integers(spec.pitches[0], spec.pitches[1] + 1))
            wave = synthesize(s.english, voice=voice, rate=rate, pitch=pitch, sample_rate=SAMPLE_RATE)
            sf.write(d / "wav" / f"{uid}.wav", wave, SAMPLE_RATE, subtype="PCM_16")
            seconds += len(wave) / SAMPLE_RATE
            scp.append(f"{uid} wav/{uid}.wav\n")
            text.append(f"{uid} {target_text(kind, s)}\n")
            src.append(f"{uid} {s.english.upper()}\n")
        (d / "wav.scp").write_text("".join(scp))
        (d / "text").write_text("".join(text))
        if kind == "st":
            (d / "src_text").write_text("".join(src))
        words = {w for s in sentences[split] for w in s.english.split()}
        manifest["splits"][split] = {"utterances": len(sentences[split]), "hours": round(seconds / 3600, 3),
                                     "vocabulary": len(words)}
    if kind == "slu":
        manifest["intents"] = sorted({s.intent for ss in sentences.values() for s in ss})
    manifest["sha256"] = tree_hash(out_dir)
    manifest["generate_s"] = round(time.perf_counter() - t0, 1)
    (out_dir / "corpus.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def tree_hash(root: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file of the splits."""
    h = hashlib.sha256()
    for p in sorted(q for split in SPLITS for q in (root / split).rglob("*") if q.is_file()):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def corpus_dir(kind: str, seed: int) -> Path:
    """Where the corpus of this kind and seed lives in the corpora cache (cards look there)."""
    return corpora_dir() / f"{kind}-seed{seed}"


def ensure_corpus(kind: str, seed: int) -> Path:
    """The corpus folder, generated if missing (deterministic: same seed, same bytes); two
    jobs sharing a cache generate it once, and a killed run leaves nothing in its place."""
    return build_once(corpus_dir(kind, seed), lambda tmp: generate(kind, tmp, seed=seed),
                      lambda path: (path / "corpus.json").exists())

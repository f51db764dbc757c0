"""TTS with ONNX Runtime: phoneme string -> token ids -> graph(s) -> waveform.

This module never imports torch: the process that measures an ONNX variant's memory
must hold only what a deployment would. The graphs are described in bench/export/tts.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bench.runtime.finite import require_finite

SPECIAL = ("<blank>", "<unk>", "<sos/eos>")
MEL_KINDS = ("fastspeech2", "joint_text2wav")  # acoustic.onnx + vocoder.onnx (bench.export.tts)
# encoder.onnx, decoder.onnx (a step), postnet.onnx, vocoder.onnx
AR_KINDS = ("tacotron2", "transformer")
# ESPnet's Text2Speech defaults for the autoregressive decode settings (a card's decode
# section overrides them: the recipes' decode_tacotron2.yaml turns the constraint on)
AR_DECODE = {"threshold": 0.5, "minlenratio": 0.0, "maxlenratio": 10.0,
             "use_att_constraint": False, "backward_window": 1, "forward_window": 3}
NO_SPEED_CONTROL = {"jets": "JETS", "tacotron2": "Tacotron 2", "transformer": "Transformer-TTS"}


@dataclass
class Synthesis:
    wave: np.ndarray  # float32, (samples,)
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.wave.shape[0] / self.sample_rate


class PhonemeTokens:
    """Phoneme string -> ids, as ESPnet's Text2Speech preprocess does with g2p and cleaner
    off (split on spaces, look up tokens.txt), but strict: ESPnet maps an unknown symbol to
    <unk> in silence, here it is an error that names the symbol. Runs of whitespace count as
    one separator (ESPnet would turn an empty piece into <unk>)."""

    def __init__(self, exp_dir: Path):
        exp_dir = Path(exp_dir)
        cfg = yaml.safe_load((exp_dir / "config.yaml").read_text())
        if cfg.get("g2p") or cfg.get("cleaner"):
            raise ValueError(f"{exp_dir}: the runtime takes phonemes; this model's config has "
                             f"g2p={cfg.get('g2p')!r}, cleaner={cfg.get('cleaner')!r}")
        lines = (exp_dir / cfg["token_list"]).read_text(encoding="utf-8").splitlines()
        tokens = [t for t in lines if t]
        self.ids = {t: i for i, t in enumerate(tokens)}

    def split(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise ValueError(f"text must be a phoneme string, got {type(text).__name__}")
        symbols = text.split()
        if not symbols:
            raise ValueError("empty text: nothing to synthesise (expected space-separated "
                             "phonemes such as 'HH AH0 L OW1')")
        for i, s in enumerate(symbols):
            if s not in self.ids or s in SPECIAL:
                raise ValueError(f"unknown phoneme {s!r} at position {i + 1} of the text "
                                 f"(not in the model's token list of {len(self.ids)} symbols)")
        return symbols

    def __call__(self, text: str) -> list[int]:
        return [self.ids[s] for s in self.split(text)]


def vits_noise(seed: int, channels: int, frames: int) -> np.ndarray:
    """The flow's standard-normal draw (1, channels, frames): the same for PyTorch and ONNX."""
    return np.random.default_rng(seed).standard_normal((1, channels, frames), dtype=np.float32)


def require_no_speed_control(kind: str, decode: dict) -> None:
    """JETS, Tacotron 2: ESPnet's Text2Speech passes them no alpha and their inference takes
    none."""
    if kind in NO_SPEED_CONTROL and float(decode.get("speed_control_alpha", 1.0)) != 1.0:
        raise ValueError(f"decode.speed_control_alpha {decode['speed_control_alpha']}: ESPnet's "
                         f"{NO_SPEED_CONTROL[kind]} has no speed control (its inference takes "
                         "no alpha)")


def require_no_att_constraint(kind: str, decode: dict) -> None:
    """Transformer-TTS: ESPnet's Text2Speech passes the attention constraint to Tacotron 2
    only (the recipes' decode_tacotron2.yaml: "not supported in Transformer"); a card asking
    for it would get an output that ignores it, so both runtimes refuse it instead."""
    if kind == "transformer" and bool(decode.get("use_att_constraint", False)):
        raise ValueError("decode.use_att_constraint true: ESPnet's Transformer-TTS has no "
                         "attention constraint (Text2Speech applies it to Tacotron 2 only)")


def ar_decode(decode: dict) -> dict:
    """The autoregressive decode settings: the card's, else Text2Speech's defaults."""
    return {k: type(v)(decode.get(k, v)) for k, v in AR_DECODE.items()}


def tacotron2_decode(step, enc: np.ndarray, enc_proj: np.ndarray, meta: dict,
                     settings: dict) -> tuple[np.ndarray, int]:
    """ESPnet's Tacotron 2 Decoder.inference in numpy around the one-step graph.

    ``step(feed) -> (frames, prob, att_w, z, c)``; returns the frames before the postnet
    (1, odim, T_feats) and the number of steps. The stop rules are ESPnet's: a step ends the
    loop when a stop probability reaches ``threshold`` or the frames reach
    int(T_text * maxlenratio), unless they are still under int(T_text * minlenratio); the
    attention constraint (Deep Voice 3) masks the energies outside
    [last attended - backward_window, last attended + forward_window).
    """
    t = enc.shape[1]
    r = int(meta["reduction_factor"])
    maxlen = int(t * settings["maxlenratio"])
    minlen = int(t * settings["minlenratio"])
    state = (int(meta["dlayers"]), 1, int(meta["dunits"]))
    z, c = np.zeros(state, np.float32), np.zeros(state, np.float32)
    prev_out = np.zeros((1, int(meta["n_mels"])), np.float32)
    # AttLoc's first weights: uniform, 1 / T_text in float32 (not part of the cumulation)
    uniform = np.full((1, t), np.float32(1.0) / np.float32(t), np.float32)
    cum = None
    constrain = bool(settings["use_att_constraint"])
    last = 0
    bias = np.zeros((1, t), np.float32)
    outs = []
    idx = 0
    while True:
        idx += r
        if constrain:
            bias = np.zeros((1, t), np.float32)
            back = last - int(settings["backward_window"])
            fwd = last + int(settings["forward_window"])
            if back > 0:
                bias[:, :back] = -np.inf
            if fwd < t:
                bias[:, fwd:] = -np.inf
        frames, prob, att_w, z, c = step({
            "enc": enc, "enc_proj": enc_proj, "z": z, "c": c, "prev_out": prev_out,
            "att_prev": uniform if cum is None else cum, "att_bias": bias})
        outs.append(frames)
        prev_out = np.ascontiguousarray(frames[:, :, -1])
        if meta.get("cumulate_att_w", True) and cum is not None:
            cum = cum + att_w
        else:
            cum = att_w
        if constrain:
            last = int(att_w.argmax())
        if int((prob[0] >= settings["threshold"]).sum()) > 0 or idx >= maxlen:
            if idx < minlen:
                continue
            break
    return np.concatenate(outs, axis=2), len(outs)


def transformer_decode(step, enc: np.ndarray, meta: dict,
                       settings: dict) -> tuple[np.ndarray, int]:
    """ESPnet's Transformer.inference in numpy around the one-step graph.

    ``step(feed) -> (frames, prob, cache)``; returns the frames before the postnet
    (1, odim, T_feats) and the number of steps. The decoder's input starts as one zero frame
    and grows by each step's last frame; the cache by one position a step (empty at the
    first, which is ESPnet's cache-less first step). The stop rules are ESPnet's: a step ends
    the loop when a stop probability reaches ``threshold`` or the steps reach
    int(T_text * maxlenratio / r), unless they are still under int(T_text * minlenratio / r)
    (steps, not frames: each step gives r frames). No attention constraint (ESPnet has none).
    """
    t = enc.shape[1]
    r = int(meta["reduction_factor"])
    maxlen = int(t * settings["maxlenratio"] / r)
    minlen = int(t * settings["minlenratio"] / r)
    odim = int(meta["n_mels"])
    ys = np.zeros((1, 1, odim), np.float32)
    cache = np.zeros((int(meta["dlayers"]), 1, 0, int(meta["d_model"])), np.float32)
    outs = []
    idx = 0
    while True:
        idx += 1
        frames, prob, cache = step({"ys": ys, "enc": enc, "cache": cache})
        outs.append(frames)
        ys = np.concatenate([ys, frames[:, :, -1][:, None, :]], axis=1)
        if int((prob[0] >= settings["threshold"]).sum()) > 0 or idx >= maxlen:
            if idx < minlen:
                continue
            break
    return np.concatenate(outs, axis=2), len(outs)


def vits_durations(n_tokens: int, decode: dict) -> np.ndarray:
    if "token_frames" not in decode:
        raise ValueError("VITS needs decode.token_frames: the stochastic duration predictor "
                         "is not exported (fixed durations keep every variant comparable)")
    return np.full((1, n_tokens), int(decode["token_frames"]), dtype=np.int64)


class OnnxText2Speech:
    def __init__(self, graphs_dir: Path, exp_dir: Path, export_meta: dict, decode: dict,
                 threads: int = 1, providers: list[str] | None = None):
        from bench.runtime.onnx_asr import load_session  # not at import: torch_tts shares this module

        providers = providers or ["CPUExecutionProvider"]
        self.meta, self.decode = export_meta, decode
        self.kind = export_meta["kind"]
        self.graphs_dir = Path(graphs_dir)
        self.sessions = {g: load_session(Path(graphs_dir) / g, threads, providers)
                         for g in export_meta["graphs"]}
        self.tokens = PhonemeTokens(exp_dir)
        self.sample_rate = int(export_meta["sample_rate"])
        if self.kind == "vits":
            vits_durations(1, decode)  # fail at load, not on the first utterance
        require_no_speed_control(self.kind, decode)
        require_no_att_constraint(self.kind, decode)
        self.ar_settings = ar_decode(decode) if self.kind in AR_KINDS else None

    def token_ids(self, text: str) -> np.ndarray:
        ids = self.tokens(text)
        # FastSpeech2, Tacotron2 and Transformer append eos themselves (JETS none)
        if self.meta.get("eos") is not None:
            ids = ids + [int(self.meta["eos"])]
        return np.asarray(ids, dtype=np.int64)[None]

    def __call__(self, text: str) -> Synthesis:
        ids = self.token_ids(text)
        if self.kind in MEL_KINDS:
            alpha = np.full(1, self.decode.get("speed_control_alpha", 1.0), np.float32)
            mel, _ = self.sessions["acoustic.onnx"].run(None, {"text": ids, "alpha": alpha})
            (wave,) = self.sessions["vocoder.onnx"].run(None, {"mel": mel})
        elif self.kind == "jets":
            wave, _ = self.sessions["jets.onnx"].run(None, {"text": ids})
        elif self.kind == "transformer":
            (enc,) = self.sessions["encoder.onnx"].run(None, {"text": ids})
            step = self.sessions["decoder.onnx"]
            before, _ = transformer_decode(lambda feed: step.run(None, feed), enc, self.meta,
                                           self.ar_settings)
            (mel,) = self.sessions["postnet.onnx"].run(None, {"before": before})
            (wave,) = self.sessions["vocoder.onnx"].run(None, {"mel": mel})
        elif self.kind in AR_KINDS:
            enc, enc_proj = self.sessions["encoder.onnx"].run(None, {"text": ids})
            step = self.sessions["decoder.onnx"]
            before, _ = tacotron2_decode(lambda feed: step.run(None, feed), enc, enc_proj,
                                         self.meta, self.ar_settings)
            (mel,) = self.sessions["postnet.onnx"].run(None, {"before": before})
            (wave,) = self.sessions["vocoder.onnx"].run(None, {"mel": mel})
        elif self.kind == "vits":
            durations = vits_durations(ids.shape[1], self.decode)
            noise = vits_noise(int(self.decode.get("seed", 0)), self.meta["noise_channels"],
                               int(durations.sum()))
            scale = np.full(1, self.decode.get("noise_scale", 0.667), np.float32)
            (wave,) = self.sessions["vits.onnx"].run(
                None, {"text": ids, "durations": durations, "noise": noise, "noise_scale": scale})
        else:
            raise ValueError(f"unknown TTS graph kind {self.kind!r} in the export metadata")
        require_finite(wave, "synthesized waveform", self.graphs_dir)
        return Synthesis(wave=wave.reshape(-1).astype(np.float32), sample_rate=self.sample_rate)

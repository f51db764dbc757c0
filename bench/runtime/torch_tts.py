"""The PyTorch reference: ESPnet's own Text2Speech on the card's experiment directory.

FastSpeech2: Text2Speech as it is, with the experiment's HiFiGAN as its vocoder.
JETS, joint_text2wav: Text2Speech as it is (its own generator makes the wave; nothing is
sampled). For joint_text2wav, whose decode_conf Text2Speech leaves without alpha, the card's
speed_control_alpha goes through Text2Speech's decode_conf to the text2mel FastSpeech2, as the
ONNX acoustic graph's alpha input; JETS takes no alpha, and both runtimes refuse one but 1.0.
Tacotron 2: Text2Speech as it is, with the card's decode settings (threshold, minlenratio,
maxlenratio, the attention constraint; Text2Speech's defaults for any the card leaves out)
and the experiment's HiFiGAN as its vocoder, fed the denormalised mel as Text2Speech does.
Its prenet dropout, on at inference in ESPnet, must be 0 (the card's tts_conf.dropout_rate)
for the output to repeat, and the ONNX export refuses anything else.
Transformer-TTS: as Tacotron 2 (threshold, minlenratio, maxlenratio; Text2Speech gives it no
attention constraint, and both runtimes refuse a card that asks for one); its decoder
prenet's dropout (tts_conf.dprenet_dropout_rate) must be 0 for the same reason.
VITS: ESPnet's VITS.inference with the card's fixed durations (Text2Speech passes durations
only with teacher forcing) and with the flow's noise drawn by bench.runtime.onnx_tts.vits_noise:
torch.randn_like is patched for the call to hand back that draw, the same the ONNX graph
gets as an input; the patch checks the shape, so ESPnet drawing anything else fails loudly.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from bench.runtime.finite import require_finite
from bench.runtime.onnx_tts import (AR_DECODE, PhonemeTokens, Synthesis,
                                    require_no_att_constraint, require_no_speed_control,
                                    vits_durations, vits_noise)


@contextlib.contextmanager
def fixed_randn_like(noise):
    import torch

    real = torch.randn_like
    calls = []

    def randn_like(t, *args, **kwargs):
        if tuple(t.shape) != tuple(noise.shape) or calls:
            raise RuntimeError(f"unexpected torch.randn_like{tuple(t.shape)} in VITS inference "
                               f"(the given noise is {tuple(noise.shape)}, used once)")
        calls.append(1)
        return noise.to(dtype=t.dtype, device=t.device)

    torch.randn_like = randn_like
    try:
        yield calls
    finally:
        torch.randn_like = real


class TorchText2Speech:
    def __init__(self, exp_dir: Path, decode: dict, threads: int = 1, device: str = "cpu"):
        import torch
        from espnet2.bin.tts_inference import Text2Speech

        from bench.zoo.exp_dir import resolved_config

        torch.set_num_threads(threads)
        exp_dir = Path(exp_dir)
        self.decode, self.device = decode, device
        self.model_file = exp_dir / "model.pth"
        kw = {k: decode[k] for k in ("speed_control_alpha", "noise_scale", "noise_scale_dur",
                                     "use_teacher_forcing", *AR_DECODE) if k in decode}
        with resolved_config(exp_dir) as cfg:
            self.t2s = Text2Speech(train_config=cfg, model_file=exp_dir / "model.pth",
                                   device=device, **kw)
        self.kind = {"FastSpeech2": "fastspeech2", "VITS": "vits", "JETS": "jets",
                     "JointText2Wav": "joint_text2wav",
                     "Tacotron2": "tacotron2", "Transformer": "transformer"}.get(type(self.t2s.tts).__name__)
        if self.kind is None:
            raise NotImplementedError(f"{exp_dir}: no reference for {type(self.t2s.tts).__name__}")
        if self.kind in ("fastspeech2", "tacotron2", "transformer"):
            from bench.zoo.build_tts import load_vocoder

            vocoder = load_vocoder(exp_dir)  # HiFiGAN instead of Text2Speech's Griffin-Lim
            vocoder.generator.to(device)
            self.t2s.vocoder = vocoder
        elif self.kind == "vits":
            vits_durations(1, decode)
        require_no_speed_control(self.kind, decode)
        require_no_att_constraint(self.kind, decode)
        self.tokens = PhonemeTokens(exp_dir)
        self.sample_rate = int(self.t2s.fs)
        vocoder = getattr(getattr(self.t2s, "vocoder", None), "generator", None)
        self.parameters = sum(p.numel() for m in (self.t2s.model, vocoder) if m is not None
                              for p in m.parameters())

    def token_ids(self, text: str):
        """ESPnet's own preprocess on the validated, single-spaced phoneme string."""
        symbols = self.tokens.split(text)
        return self.t2s.preprocess_fn("<dummy>", {"text": " ".join(symbols)})["text"]

    def __call__(self, text: str) -> Synthesis:
        import torch

        ids = torch.as_tensor(self.token_ids(text), device=self.device)
        with torch.no_grad():
            if self.kind in ("fastspeech2", "jets", "tacotron2", "transformer"):
                wav = self.t2s(ids)["wav"]
            elif self.kind == "joint_text2wav":
                alpha = float(self.decode.get("speed_control_alpha", 1.0))
                wav = self.t2s(ids, decode_conf={"alpha": alpha})["wav"]
            else:
                d = self.decode
                durations = vits_durations(len(ids), d)[0]
                gen = self.t2s.tts.generator
                channels = gen.text_encoder.proj.out_channels // 2
                noise = torch.from_numpy(vits_noise(int(d.get("seed", 0)), channels,
                                                    int(durations.sum())))
                with fixed_randn_like(noise) as calls:
                    wav = self.t2s.tts.inference(
                        text=ids, durations=torch.from_numpy(durations).to(self.device),
                        noise_scale=d.get("noise_scale", 0.667),
                        noise_scale_dur=d.get("noise_scale_dur", 0.8),
                        alpha=d.get("speed_control_alpha", 1.0))["wav"]
                if not calls:
                    raise RuntimeError("VITS inference drew no flow noise: the patch missed it")
        if self.device == "cuda":  # the timed region ends when the GPU's work has ended
            torch.cuda.synchronize()
        wave = wav.detach().cpu().numpy().reshape(-1).astype(np.float32)
        require_finite(wave, "synthesized waveform", self.model_file)
        return Synthesis(wave=wave, sample_rate=self.sample_rate)

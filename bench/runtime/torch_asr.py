"""The PyTorch reference: ESPnet's own inference class for the ESPnet task that built the
card's model: Speech2Text (ASR; SLU as ASR), Speech2Understand (SLUTask), ST's Speech2Text."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bench.runtime.finite import require_finite
from bench.runtime.recognition import Recognition


class TorchSpeech2Text:
    def __init__(self, exp_dir: Path, decode: dict, threads: int = 1, device: str = "cpu",
                 espnet_task: str = "asr"):
        import torch

        from bench.espnet_layout import exact_search_options, nets_package, prepare_espnet
        from bench.zoo.exp_dir import resolved_config

        prepare_espnet(espnet_task)  # a transducer builds its training loss; our ASR encoders
        torch.set_num_threads(threads)
        # ESPnet warns on every utterance that hits the fixed length cap the card asked for.
        for search in ("beam_search", "batch_beam_search"):
            logging.getLogger(f"{nets_package()}.{search}").setLevel(logging.ERROR)
        exp_dir = Path(exp_dir)
        common = dict(device=device, beam_size=decode["beam_size"], ctc_weight=decode["ctc_weight"],
                      lm_weight=0.0, penalty=decode.get("penalty", 0.0),
                      maxlenratio=decode.get("maxlenratio", 0.0),
                      minlenratio=decode.get("minlenratio", 0.0), nbest=1)
        with resolved_config(exp_dir) as cfg:
            if espnet_task == "st":
                from espnet2.bin.st_inference import Speech2Text

                self.s2t = Speech2Text(st_train_config=cfg, st_model_file=exp_dir / "model.pth", **common)
            elif espnet_task == "slu":
                from espnet2.bin.slu_inference import Speech2Understand

                self.s2t = Speech2Understand(slu_train_config=cfg, slu_model_file=exp_dir / "model.pth",
                                             **common)
            else:
                from espnet2.bin.asr_inference import Speech2Text

                # the search the ONNX runtime implements, whatever this ESPnet's default
                extra = {"transducer_conf": decode["transducer_conf"]} if decode.get("transducer_conf") else {}
                self.s2t = Speech2Text(asr_train_config=cfg, asr_model_file=exp_dir / "model.pth",
                                       **common, **exact_search_options(Speech2Text), **extra)
        self.device = device
        model = getattr(self.s2t, "st_model", None) or self.s2t.asr_model
        model.encoder.register_forward_hook(self._check_encoder_output)
        self.model_file = exp_dir / "model.pth"
        self.parameters = sum(p.numel() for p in model.parameters())

    def _check_encoder_output(self, module, inputs, output):
        require_finite(output[0].detach().float().cpu().numpy(), "encoder output", self.model_file)

    def __call__(self, wave: np.ndarray) -> Recognition:
        text, _, token_int, _ = self.s2t(wave.astype(np.float32))[0]
        if self.device == "cuda":  # the timed region ends when the GPU's work has ended
            import torch

            torch.cuda.synchronize()
        return Recognition(tokens=[int(t) for t in token_int], text=text)

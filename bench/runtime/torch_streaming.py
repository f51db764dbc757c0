"""The PyTorch reference for a streaming (contextual block) model: ESPnet's own
Speech2TextStreaming (ASR and SLU as ASR; ST's for ST), fed the utterance chunk by chunk as
ESPnet's streaming inference() feeds it with ``sim_chunk_length``."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from bench.runtime.recognition import Recognition
from bench.runtime.streaming import DEFAULT_CHUNK, SAMPLE_RATE, StreamLog, stream_chunks, streaming_options


class TorchStreamingSpeech2Text:
    def __init__(self, exp_dir: Path, decode: dict, threads: int = 1, device: str = "cpu",
                 espnet_task: str = "asr"):
        import torch

        from bench.espnet_layout import nets_package
        from bench.zoo.exp_dir import resolved_config

        torch.set_num_threads(threads)
        logging.getLogger(f"{nets_package()}.batch_beam_search_online").setLevel(logging.ERROR)
        exp_dir = Path(exp_dir)
        common = dict(device=device, beam_size=decode["beam_size"], ctc_weight=decode["ctc_weight"],
                      lm_weight=0.0, penalty=decode.get("penalty", 0.0),
                      maxlenratio=decode.get("maxlenratio", 0.0),
                      minlenratio=decode.get("minlenratio", 0.0), nbest=1, **streaming_options(decode))
        with resolved_config(exp_dir) as cfg:
            if espnet_task == "st":
                from espnet2.bin.st_inference_streaming import Speech2TextStreaming

                self.s2t = Speech2TextStreaming(st_train_config=cfg, st_model_file=exp_dir / "model.pth",
                                                **common)
            else:
                from espnet2.bin.asr_inference_streaming import Speech2TextStreaming

                self.s2t = Speech2TextStreaming(asr_train_config=cfg, asr_model_file=exp_dir / "model.pth",
                                                **common)
        self.device = device
        self.chunk = int(decode.get("sim_chunk_length", DEFAULT_CHUNK))
        model = getattr(self.s2t, "st_model", None) or self.s2t.asr_model
        self.parameters = sum(p.numel() for p in model.parameters())
        self._blocks = 0
        search = self.s2t.beam_search
        one_block = search.process_one_block

        def counted(*args, **kwargs):  # decoder blocks per call, for the block latency
            self._blocks += 1
            return one_block(*args, **kwargs)
        search.process_one_block = counted
        self.log = StreamLog()

    def _running_tokens(self) -> int:
        """Tokens of the best running hypothesis (ESPnet returns none while no hypothesis ended)."""
        running = self.s2t.beam_search.running_hyps
        if running is None or len(running.yseq) == 0:
            return 0
        return int(running.length[0]) - 1  # sos

    def __call__(self, wave: np.ndarray) -> Recognition:
        wave = wave.astype(np.float32)
        self.log = StreamLog()
        results = []
        for start, end, final in stream_chunks(wave.shape[0], self.chunk):
            t0, self._blocks = time.perf_counter(), 0
            results = self.s2t(wave[start:end], is_final=final)
            if self.device == "cuda":
                import torch

                torch.cuda.synchronize()
            partial = len(results[0][2]) if results else (0 if final else self._running_tokens())
            self.log.add(end / SAMPLE_RATE, t0, self._blocks, partial, final)
        if not results:
            return Recognition(tokens=[], text="")
        text, _, token_int, _ = results[0]
        return Recognition(tokens=[int(t) for t in token_int], text=text or "")

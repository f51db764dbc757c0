"""Phonemes in, speech out (TTS): an acoustic graph and a vocoder graph (FastSpeech2 + HiFiGAN,
joint_text2wav), one graph (VITS, JETS), or encoder, decoder-step, postnet and vocoder graphs
around a numpy decode loop (Tacotron 2); bench/export/tts.py describes them."""
from __future__ import annotations

from pathlib import Path

from bench.families.base import Family


class TextToSpeech(Family):
    name = "text2speech"
    audio_is_output = True

    def exporter_version(self):
        from bench.export.tts import EXPORTER_VERSION, OPSET

        return EXPORTER_VERSION, OPSET

    def export(self, card, exp_dir, onnx_dir, espnet_task):
        from bench.export.tts import export_tts

        meta = export_tts(exp_dir, onnx_dir, card.decode)
        return meta, dict(meta)

    def calibration_feeds(self, card, artifact, meta):
        return self.dev_feeds(card, artifact, meta, Path(artifact) / "onnx")

    def dev_feeds(self, card, artifact, meta, graphs):
        """The card's own dev sentences through ``graphs`` (a corpus card only: other data has
        no dev split apart from what is measured)."""
        import dataclasses

        from bench.data.sets import load_text_set
        from bench.optimize.calibration import CALIBRATION, FEEDS_PER_GRAPH, record_feeds
        from bench.runtime.onnx_tts import OnnxText2Speech

        if card.data.get("source") != "grammar":
            return {}
        dev = dataclasses.replace(card, data={**card.data, **CALIBRATION})
        rec = OnnxText2Speech(Path(graphs), Path(artifact) / "exp", meta, card.decode)
        # a decoder step runs once a frame: a seeded sample of its calls (the other graphs run
        # once a sentence, fewer times than the limit)
        limit = FEEDS_PER_GRAPH if meta.get("step_graphs") else None
        return record_feeds(rec, [item.input for item in load_text_set(dev)], limit)

    def check_variant(self, plain, derived, info, atol):
        from bench.export.tts import check_tts_variant

        return check_tts_variant(plain, derived, info, atol)

    def load(self, artifact, decode, variant, device, threads, espnet_task, providers):
        artifact = Path(artifact)
        if variant.runtime == "torch":
            from bench.runtime.torch_tts import TorchText2Speech

            return TorchText2Speech(artifact / "exp", decode, threads=threads, device=device)
        from bench.runtime.onnx_asr import load_export_meta
        from bench.runtime.onnx_tts import OnnxText2Speech

        return OnnxText2Speech(artifact / "variants" / variant.name, artifact / "exp",
                               load_export_meta(artifact), decode, threads=threads,
                               providers=providers)

    def runtime_imports(self, runtime, espnet_task):
        if runtime == "torch":
            return ("torch", "espnet2.bin.tts_inference", "bench.runtime.torch_tts")
        return ("onnxruntime", "bench.runtime.onnx_tts")

    def outputs_agreement(self, base, head, waves):
        import numpy as np

        from bench.metrics.audio import mel_cepstral_distortion

        wb, wh = np.load(waves["base"]), np.load(waves["head"])
        d = [mel_cepstral_distortion(wb[k], wh[k], sr)
             for k, sr in zip(sorted(wb.files), base["sample_rates"])]
        return {"tts_distance": sum(d) / len(d) if d else None}

    def utterance_row(self, item, output, reference_output):
        return {"input": item.input, "output_samples": int(output.wave.shape[0]),
                "same_length_as_pytorch": output.wave.shape[0] == reference_output.wave.shape[0]}


FAMILY = TextToSpeech()

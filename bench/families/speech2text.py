"""Speech in, tokens out (ASR, SLU, ST): encoder + decoder step graphs, a beam search of ours
(joint CTC/attention or CTC alone), or a transducer's prediction and joint step graphs with
ESPnet's transducer search, or a streaming (contextual block) model's block graphs, fed chunk
by chunk with ESPnet's block-wise search, as Speech2TextStreaming runs it."""
from __future__ import annotations

from pathlib import Path

import yaml

from bench.families.base import Family

# ESPnet's inference class for each ESPnet task (what bench.runtime.torch_asr runs)
_TORCH_INFERENCE = {"asr": "espnet2.bin.asr_inference", "slu": "espnet2.bin.slu_inference",
                    "st": "espnet2.bin.st_inference"}
_TORCH_STREAMING = {"asr": "espnet2.bin.asr_inference_streaming",
                    "st": "espnet2.bin.st_inference_streaming"}


def _onnx_runtime(meta: dict):
    """The ONNX recognizer class for an export: transducer, streaming, or joint CTC/attention."""
    if "transducer" in meta:
        from bench.runtime.onnx_transducer import OnnxTransducer

        return OnnxTransducer
    if "streaming" in meta:
        from bench.runtime.onnx_streaming import OnnxStreamingSpeech2Text

        return OnnxStreamingSpeech2Text
    from bench.runtime.onnx_asr import OnnxSpeech2Text

    return OnnxSpeech2Text


class SpeechToText(Family):
    name = "speech2text"
    audio_is_output = False

    def exporter_version(self):
        from bench.export.asr import EXPORTER_VERSION, OPSET

        return EXPORTER_VERSION, OPSET

    def export(self, card, exp_dir, onnx_dir, espnet_task):
        from bench.export.asr import export_asr
        from bench.export.streaming import export_streaming
        from bench.zoo.build import load_model

        cfg = yaml.safe_load((Path(exp_dir) / "config.yaml").read_text())
        export = export_streaming if _is_streaming(cfg) else export_asr
        meta = export(load_model(exp_dir, espnet_task), onnx_dir)
        return meta, {**meta, "num_heads": cfg["encoder_conf"].get("attention_heads", 4)}

    def dev_feeds(self, card, artifact, meta, graphs):
        """The first utterances of the dev split of the card's corpus (the ASR corpus for a
        card measured on other data: random-weight and users' models), through ``graphs``;
        a decoder step keeps a sample of its calls."""
        import dataclasses

        from bench.data.sets import load_eval_set
        from bench.optimize.calibration import CALIBRATION, FEEDS_PER_GRAPH, record_feeds
        corpus = card.data.get("corpus", "asr") if card.data.get("source") == "corpus" else "asr"
        dev = dataclasses.replace(card, data={"source": "corpus", "corpus": corpus,
                                              "split": CALIBRATION["split"]})
        waves = [u.wave for u in load_eval_set(dev)[:CALIBRATION["n_utterances"]]]
        rec = _onnx_runtime(meta)(Path(graphs), Path(artifact) / "exp", meta, card.decode)
        return record_feeds(rec, waves, limit=FEEDS_PER_GRAPH)

    def check_variant(self, plain, derived, info, atol):
        from bench.optimize.verify import check_variant

        return check_variant(plain, derived, info, atol)

    def load(self, artifact, decode, variant, device, threads, espnet_task, providers):
        artifact = Path(artifact)
        streaming = _is_streaming(_config(artifact / "exp"))
        if variant.runtime == "torch":
            rec = torch_runtime(artifact / "exp")(artifact / "exp", decode, threads=threads,
                                                  device=device, espnet_task=espnet_task)
        else:
            from bench.runtime.onnx_asr import load_export_meta

            meta = load_export_meta(artifact)
            rec = _onnx_runtime(meta)(artifact / "variants" / variant.name, artifact / "exp", meta, decode,
                          threads=threads, providers=providers)
        if decode.get("segment_seconds") and not streaming:  # a stream is already cut in chunks
            from bench.runtime.long_form import LongForm

            rec = LongForm(rec, _model_rate(artifact / "exp"), decode["segment_seconds"])
        return rec

    def runtime_imports(self, runtime, espnet_task):
        if runtime == "torch":
            return ("torch", _TORCH_INFERENCE.get(espnet_task, _TORCH_INFERENCE["asr"]),
                    _TORCH_STREAMING.get(espnet_task, _TORCH_STREAMING["asr"]),
                    "bench.runtime.torch_asr", "bench.runtime.torch_streaming")
        return ("onnxruntime", "bench.runtime.onnx_asr", "bench.runtime.onnx_transducer",
                "bench.runtime.onnx_streaming")

    def outputs_agreement(self, base, head, waves):
        from bench.metrics.text import agreement_ter

        return {"agreement_ter": agreement_ter(base.pop("tokens"), head.pop("tokens"))}

    def utterance_row(self, item, output, reference_output):
        return {"hypothesis": output.text, "tokens": output.tokens,
                "agrees_with_pytorch": output.tokens == reference_output.tokens}


def torch_runtime(exp_dir: Path):
    """ESPnet's own inference for the model in ``exp_dir``: Speech2Text, or for a streaming
    model Speech2TextStreaming fed chunk by chunk."""
    from bench.runtime.torch_asr import TorchSpeech2Text
    from bench.runtime.torch_streaming import TorchStreamingSpeech2Text

    return TorchStreamingSpeech2Text if _is_streaming(_config(exp_dir)) else TorchSpeech2Text


def _config(exp_dir: Path) -> dict:
    return yaml.safe_load((Path(exp_dir) / "config.yaml").read_text()) or {}


def _is_streaming(cfg: dict) -> bool:
    from bench.zoo.model_family import STREAMING_ENCODERS

    return cfg.get("encoder") in STREAMING_ENCODERS


def _model_rate(exp_dir: Path) -> int:
    from bench.data.sets import SAMPLE_RATE, parse_rate

    fs = (_config(exp_dir).get("frontend_conf") or {}).get("fs")
    return parse_rate(fs) if fs else SAMPLE_RATE


FAMILY = SpeechToText()

"""Export an ESPnet ASR or ST model to two ONNX graphs (our own exporter, TorchScript-based).

encoder.onnx : speech (1, samples) float32 -> enc (1, T, D), ctc_logits (1, T, V)
               frontend (STFT, log-mel, global MVN), encoder and CTC in one graph,
               dynamic length, no cap. A model with no CTC over its output vocabulary
               (an ST model without st_ctc) gives enc only. The CTC's scores leave the
               graph before their log-softmax, which the runtime takes in place: in the
               graph it would hold a second (T, V) tensor at the encoder's memory peak.
decoder.onnx : one decoder step with its self-attention cache, as ESPnet's forward_one_step
               ys (B, L) int64, cache (n_layers, B, L-1, D), memory (B, T, D)
               -> logp (B, V), new_cache (n_layers, B, L, D)
cross_kv.onnx, decoder_kv.onnx : the same step with keys and values cached (export/kv_decoder.py),
               for the optimised variants; absent when the decoder is of a kind it does not handle

A CTC-only model (ESPnet sets no decoder when model_conf.ctc_weight is 1) gives encoder.onnx
alone; its search is CTC prefix scoring over the whole vocabulary, as ESPnet's. A transducer
model gives encoder.onnx with its prediction network and joint network as step graphs
(export/transducer.py).

The TorchScript exporter (dynamo=False) is used on purpose: on this stack it took ~4 s
where the dynamo exporter took ~37 s, both matching PyTorch to 3e-6 (DESIGN.md).
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch

from bench.export.kv_decoder import UnsupportedDecoder, export_kv_decoder
from bench.export.rewrites import (linear_pad_masks, rewrite_for_export, unpadded_attention,
                                   unpadded_rel_shift)
from bench.export.transducer import TRANSDUCER_GRAPHS, export_transducer_steps

EXPORTER_VERSION = "asr-8"  # 3: padding masks linear in the length; 4: key/value-cached decoder;
# 5: encoder checked against the ESPnet model at export (export.json: encoder_check); 6: narrow
# layer norms written out (rewrites.TwoPassLayerNorm), streaming models (export/streaming.py);
# 7: the encoder's attention without its all-ones padding mask (rewrites.unpadded_attention);
# 8: CTC logits, not log-probabilities (the runtime normalises them in place), and relative-
# position scores shifted without a zero pad (rewrites.unpadded_rel_shift)
OPSET = 17


class DftStft(torch.nn.Module):
    """torch.stft(center=True, reflect pad, hann window) as a strided convolution.

    ONNX has no complex tensors; a convolution with the real and imaginary DFT bases
    gives the same power spectrum and exports with any input length.
    """

    def __init__(self, n_fft: int, win_length: int, hop_length: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop_length
        window = torch.hann_window(win_length, dtype=torch.float64)
        left = (n_fft - win_length) // 2
        window = torch.nn.functional.pad(window, (left, n_fft - win_length - left))
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
        angle = 2 * torch.pi * k[:, None] * n[None, :] / n_fft
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
        self.register_buffer("basis", basis.float()[:, None, :])

    def forward(self, speech: torch.Tensor) -> torch.Tensor:
        half = self.n_fft // 2
        x = torch.nn.functional.pad(speech[:, None, :], (half, half), mode="reflect")
        spec = torch.nn.functional.conv1d(x, self.basis, stride=self.hop)
        re, im = spec.chunk(2, dim=1)
        return (re * re + im * im).transpose(1, 2)  # (B, frames, n_fft//2+1)


def output_ctc(model):
    """The CTC over the decoder's vocabulary, which joint decoding scores, or None.

    An ST model's `ctc` is the source-language (ASR) branch, a training aid that ESPnet's ST
    decoding never scores with the translation; its CTC over the target is `st_ctc`.
    """
    from espnet2.st.espnet_model import ESPnetSTModel

    if isinstance(model, ESPnetSTModel):
        return getattr(model, "st_ctc", None)  # set only when trained with st_mtlalpha > 0
    return model.ctc


class EncoderGraph(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        stft = model.frontend.stft
        self.stft = DftStft(stft.n_fft, stft.win_length or stft.n_fft, stft.hop_length)
        self.logmel = model.frontend.logmel
        self.normalize = model.normalize
        self.encoder = model.encoder
        self.ctc = output_ctc(model)

    def features(self, speech: torch.Tensor):
        """Normalised log-mel features and their lengths: the model's frontend and normalize."""
        power = self.stft(speech)
        # lengths from the tensor's own shape, so the traced graph keeps them dynamic
        lens = torch.ones_like(power[:, :, 0], dtype=torch.int64).sum(1)
        feats, _ = self.logmel(power, lens)
        if self.normalize is not None:
            feats, _ = self.normalize(feats, lens)
        return feats, lens

    def forward(self, speech: torch.Tensor):
        feats, lens = self.features(speech)
        enc, _, _ = self.encoder(feats, lens)
        if self.ctc is None:
            return enc
        return enc, self.ctc.ctc_lo(enc)  # ESPnet's CTC.log_softmax before its log-softmax

    def encoded(self, speech: torch.Tensor) -> torch.Tensor:
        """Only the encoder output, whichever outputs the graph has."""
        out = self(speech)
        return out[0] if self.ctc is not None else out


class DecoderStepGraph(torch.nn.Module):
    """ESPnet's TransformerDecoder.forward_one_step with a stacked cache.

    ESPnet passes a causal mask, but with a cache only its last row (all ones) is used,
    and it passes no memory mask for a single utterance; so no masks are needed here.
    An empty cache (length 0) gives exactly the first step's result.
    """

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, ys, cache, memory):
        d = self.decoder
        x = d.embed(ys)
        new_cache = []
        for i, layer in enumerate(d.decoders):
            x, _, _, _ = layer(x, None, memory, None, cache=cache[i])
            new_cache.append(x)
        y = d.after_norm(x[:, -1]) if d.normalize_before else x[:, -1]
        return torch.log_softmax(d.output_layer(y), dim=-1), torch.stack(new_cache)


def _refuse_unsupported(model, has_decoder: bool) -> None:
    """A built model of a family the graphs do not reproduce (bench/zoo/model_family.py refuses
    the same families by config key, before building)."""
    encoder = type(model.encoder).__name__
    if encoder.startswith("ContextualBlock"):
        raise ValueError(f"encoder {encoder}: a streaming (contextual block) encoder, which ESPnet "
                         "decodes block by block; it is exported by bench/export/streaming.py")
    if has_decoder and not hasattr(model.decoder, "decoders"):
        raise ValueError(f"decoder {type(model.decoder).__name__}: the one-step decoder graph "
                         "handles ESPnet's transformer decoder")


def export_asr(model, out_dir: Path, opset: int = OPSET) -> dict:
    """Write encoder.onnx and decoder.onnx; return the metadata the runtime needs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = model.eval()
    model = copy.deepcopy(model).eval()
    rewrites = rewrite_for_export(model)
    enc_graph = EncoderGraph(model).eval()
    transducer = getattr(model, "use_transducer_decoder", False)
    has_decoder = model.decoder is not None and not transducer
    if not has_decoder and not transducer and enc_graph.ctc is None:
        raise ValueError("the model has neither a decoder nor a CTC over its output tokens: "
                         "nothing to decode with")
    _refuse_unsupported(model, has_decoder)
    n_layers = len(model.decoder.decoders) if has_decoder else 0
    d_model = model.encoder.output_size()

    gen = torch.Generator().manual_seed(0)  # same trace inputs, same graphs, every build
    speech = torch.randn(1, 16000 * 2, generator=gen) * 0.1
    with torch.no_grad(), warnings.catch_warnings(), linear_pad_masks():
        warnings.simplefilter("ignore")  # tracer warnings about Python asserts on shapes
        has_ctc = enc_graph.ctc is not None
        enc = enc_graph.encoded(speech)
        outputs = ["enc", "ctc_logits"] if has_ctc else ["enc"]
        with unpadded_attention(), unpadded_rel_shift():
            torch.onnx.export(
                enc_graph, (speech,), str(out_dir / "encoder.onnx"), dynamo=False,
                opset_version=opset, input_names=["speech"], output_names=outputs,
                dynamic_axes={"speech": {1: "samples"}, **{o: {1: "frames"} for o in outputs}},
            )
        if has_decoder:
            export_decoder_step(model.decoder, model.vocab_size, enc, out_dir, opset, gen)
        if transducer:
            transducer_meta = export_transducer_steps(model.decoder, model.joint_network,
                                                      enc, out_dir, opset)
    encoder_check = check_encoder_parity(reference, out_dir / "encoder.onnx")
    try:
        if transducer:
            raise UnsupportedDecoder("a transducer: prediction and joint networks, no attention")
        if not has_decoder:
            raise UnsupportedDecoder("no decoder (a CTC-only model)")
        kv = export_kv_decoder(model.decoder, enc, out_dir, opset, gen)
    except UnsupportedDecoder as e:  # the optimised variants then keep the plain step
        kv = {"unsupported": str(e)}
    meta = {
        "exporter": EXPORTER_VERSION, "opset": opset, "torch": torch.__version__,
        "module_rewrites": rewrites, "n_layers": n_layers, "d_model": d_model,
        "vocab_size": model.vocab_size, "sos": model.sos, "eos": model.eos, "has_ctc": has_ctc,
        "has_decoder": has_decoder,
        "graphs": ["encoder.onnx"] + (["decoder.onnx"] if has_decoder else [])
        + (list(TRANSDUCER_GRAPHS) if transducer else []),
        "kv_decoder": kv,
        **({"transducer": transducer_meta} if transducer else {}),
        "subsampling_min_samples": min_samples(model, enc_graph),
        "encoder_check": encoder_check,
    }
    (out_dir / "export.json").write_text(json.dumps(meta, indent=2))
    return meta


def export_decoder_step(decoder, vocab_size: int, enc: torch.Tensor, out_dir: Path, opset: int,
                        gen) -> None:
    """decoder.onnx: one step with the stacked self-attention cache, dynamic in beams,
    prefix length and frames."""
    n_layers, d_model = len(decoder.decoders), enc.shape[-1]
    beams, length = 3, 4
    ys = torch.randint(1, vocab_size - 1, (beams, length), generator=gen)
    cache = torch.randn(n_layers, beams, length - 1, d_model, generator=gen)
    memory = enc.expand(beams, -1, -1).contiguous()
    torch.onnx.export(
        DecoderStepGraph(decoder).eval(), (ys, cache, memory), str(out_dir / "decoder.onnx"),
        dynamo=False, opset_version=opset, input_names=["ys", "cache", "memory"],
        output_names=["logp", "new_cache"],
        dynamic_axes={"ys": {0: "beams", 1: "length"},
                      "cache": {1: "beams", 2: "cached"},
                      "memory": {0: "beams", 1: "frames"},
                      "logp": {0: "beams"}, "new_cache": {1: "beams", 2: "length"}},
    )


class ExportParityError(RuntimeError):
    """An exported graph that runs but does not compute what the ESPnet model computes."""


PARITY_SECONDS = 3.3  # not the traced 2 s: a length frozen into the graph shows up here
PARITY_ATOL = 1e-3  # float32 through another STFT and kernel order: 1.2e-6 to 1.5e-6 seen


def check_encoder_parity(model, encoder_onnx: Path, atol: float = PARITY_ATOL) -> dict:
    """encoder.onnx against the untouched ESPnet model's own ``encode`` (its frontend, its
    encoder, whatever module layout this ESPnet has) on an input of another length than the
    trace's. Catches what an exporter change can drop without any error: a positional
    encoding (ESPnet 202611 moved it out of the subsampling's ``out``), a mask or a length
    frozen at the traced size."""
    import numpy as np

    from bench.optimize.verify import check_session

    gen = torch.Generator().manual_seed(1)
    speech = torch.randn(1, int(16000 * PARITY_SECONDS), generator=gen) * 0.1
    with torch.no_grad():
        want, _ = model.encode(speech, torch.tensor([speech.shape[1]]))
    want = want.numpy()
    if not np.isfinite(want).all():  # the model itself is broken: its runs report it, item by item
        return {"seconds": PARITY_SECONDS, "skipped": "the ESPnet model's own encoder output has NaN/inf"}
    got = check_session(encoder_onnx).run(None, {"speech": speech.numpy()})[0]
    if got.shape != want.shape:
        raise ExportParityError(f"{encoder_onnx}: output {got.shape} for {PARITY_SECONDS} s of audio, "
                                f"the ESPnet model gives {want.shape}")
    diff = float(np.abs(got - want).max())
    if not diff <= atol:
        raise ExportParityError(f"{encoder_onnx}: differs from the ESPnet model's encoder by up to {diff:.3g} "
                                f"(allowed {atol}) on {PARITY_SECONDS} s of audio: the export "
                                f"dropped or froze part of the model")
    return {"seconds": PARITY_SECONDS, "max_abs_diff": diff, "atol": atol}


def min_samples(model, enc_graph) -> int:
    """Shortest input (in samples) the encoder's subsampling accepts, found by trying."""
    hop = enc_graph.stft.hop
    with torch.no_grad():
        for frames in range(1, 64):
            try:
                if enc_graph.encoded(torch.zeros(1, (frames - 1) * hop + 1)).shape[1] > 0:
                    return (frames - 1) * hop + 1
            except Exception:  # ESPnet raises TooShortUttError, or a conv fails
                continue
    return 0

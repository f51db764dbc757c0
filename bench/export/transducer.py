"""A transducer's two step graphs, beside encoder.onnx (export/asr.py):

predictor.onnx : ESPnet's TransducerDecoder.score for one hypothesis: the last label through
                 the embedding and the LSTM layers from the hypothesis' state
                 label (1, 1) int64, h (layers, 1, H), c (layers, 1, H)
                 -> dec_out (1, H), h_next, c_next
joint.onnx     : JointNetwork on one encoder frame and one decoder output, then log-softmax
                 enc_t (1, D_enc), dec_out (1, H) -> logp (1, V)

The search that drives them (ESPnet's BeamSearchTransducer, default and greedy) is
bench/runtime/transducer_search.py.
"""
from __future__ import annotations

from pathlib import Path

import torch

TRANSDUCER_GRAPHS = ("predictor.onnx", "joint.onnx")


class UnsupportedTransducer(ValueError):
    """A transducer decoder this exporter does not reproduce; the message says what."""


class PredictorStep(torch.nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, label, h, c):
        dec_out, (h_next, c_next) = self.decoder.rnn_forward(self.decoder.embed(label), (h, c))
        return dec_out[:, 0], h_next, c_next


class JointStep(torch.nn.Module):
    def __init__(self, joint):
        super().__init__()
        self.joint = joint

    def forward(self, enc_t, dec_out):
        return torch.log_softmax(self.joint(enc_t, dec_out), dim=-1)


def export_transducer_steps(decoder, joint, enc: torch.Tensor, out_dir: Path, opset: int) -> dict:
    """Write predictor.onnx and joint.onnx; return what the runtime needs to know."""
    if decoder.dtype != "lstm":
        raise UnsupportedTransducer(f"transducer decoder rnn_type {decoder.dtype!r}: the exporter "
                                    "handles 'lstm'")
    layers, hidden = decoder.dlayers, decoder.dunits
    gen = torch.Generator().manual_seed(2)
    label = torch.tensor([[1]], dtype=torch.int64)
    h = torch.randn(layers, 1, hidden, generator=gen)
    c = torch.randn(layers, 1, hidden, generator=gen)
    torch.onnx.export(PredictorStep(decoder).eval(), (label, h, c), str(out_dir / "predictor.onnx"),
                      dynamo=False, opset_version=opset, input_names=["label", "h", "c"],
                      output_names=["dec_out", "h_next", "c_next"])
    dec_out = torch.randn(1, hidden, generator=gen)
    torch.onnx.export(JointStep(joint).eval(), (enc[0, :1], dec_out), str(out_dir / "joint.onnx"),
                      dynamo=False, opset_version=opset, input_names=["enc_t", "dec_out"],
                      output_names=["logp"])
    return {"layers": layers, "hidden": hidden, "blank": decoder.blank_id,
            "vocab_size": decoder.odim}

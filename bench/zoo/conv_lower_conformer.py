"""A conformer whose lowest blocks are convolution-only, as the Practical Conformer paper
(arXiv 2304.00171) builds its faster encoders: those blocks keep the macaron feed-forward, the
convolution module and the second feed-forward, and drop self-attention, whose cost grows with
the square of the utterance's length.

ESPnet's conformer has no setting for it, so this encoder is ours: ESPnet's ConformerEncoder with
``conv_only_blocks`` of its lowest blocks rebuilt without attention, registered with ESPnet's ASR
task as ``conformer_conv_lower`` (``register``), so that configs, training (`bench zoo train`)
and loading (Speech2Text) go through ESPnet as for any encoder. ASR only: ST and SLU keep their
own encoder registries.
"""
from __future__ import annotations

import torch

NAME = "conformer_conv_lower"


class ConvOnlyBlock(torch.nn.Module):
    """One conformer block without its self-attention: half feed-forward, convolution module,
    half feed-forward, final layer norm, each with its residual (pre-norm only, as the
    conformer recipes configure it). Takes and returns what ESPnet's EncoderLayer does."""

    def __init__(self, layer):
        super().__init__()
        if not layer.normalize_before or layer.conv_module is None or layer.feed_forward_macaron is None:
            raise ValueError("encoder_conf: conv_only_blocks needs normalize_before, macaron_style "
                             "and use_cnn_module all true")
        if layer.stochastic_depth_rate:
            raise ValueError("encoder_conf.stochastic_depth_rate must be 0 with conv_only_blocks")
        self.size, self.ff_scale = layer.size, layer.ff_scale
        self.feed_forward_macaron, self.norm_ff_macaron = layer.feed_forward_macaron, layer.norm_ff_macaron
        self.conv_module, self.norm_conv = layer.conv_module, layer.norm_conv
        self.feed_forward, self.norm_ff = layer.feed_forward, layer.norm_ff
        self.norm_final, self.dropout = layer.norm_final, layer.dropout

    def forward(self, x_input, mask, cache=None):
        if cache is not None:
            raise ValueError("a convolution-only block has no step-wise (cached) forward")
        x, pos_emb = x_input if isinstance(x_input, tuple) else (x_input, None)
        x = x + self.ff_scale * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        x = x + self.dropout(self.conv_module(self.norm_conv(x)))
        x = x + self.ff_scale * self.dropout(self.feed_forward(self.norm_ff(x)))
        x = self.norm_final(x)
        return ((x, pos_emb) if pos_emb is not None else x), mask


def conv_lower_encoder_class():
    """The encoder class (built on first use: ESPnet's conformer module is heavy to import)."""
    from espnet2.asr.encoder.conformer_encoder import ConformerEncoder

    class ConvLowerConformerEncoder(ConformerEncoder):
        """ESPnet's ConformerEncoder with its lowest ``conv_only_blocks`` blocks convolution-only."""

        def __init__(self, input_size: int, conv_only_blocks: int = 0, **kwargs):
            super().__init__(input_size, **kwargs)
            if not 0 <= conv_only_blocks <= len(self.encoders):
                raise ValueError(f"encoder_conf.conv_only_blocks {conv_only_blocks}: the encoder has "
                                 f"{len(self.encoders)} blocks")
            self.conv_only_blocks = conv_only_blocks
            for i in range(conv_only_blocks):
                self.encoders[i] = ConvOnlyBlock(self.encoders[i])

    return ConvLowerConformerEncoder


def register() -> None:
    """Make ``encoder: conformer_conv_lower`` a choice of ESPnet's ASR task (idempotent)."""
    from espnet2.tasks.asr import encoder_choices

    if NAME not in encoder_choices.classes:
        encoder_choices.classes[NAME] = conv_lower_encoder_class()

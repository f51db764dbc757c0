"""Our conformer with convolution-only lower blocks (bench/zoo/conv_lower_conformer.py): each
such block is ESPnet's conformer block without its self-attention, the encoder is registered
with ESPnet's ASR task for building, loading and training, and other tasks refuse it by name.
(Its export agreeing with ESPnet: asr-convlower-smoke in tests/test_export_asr.py.)"""
import copy
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("espnet2")

CONF = dict(output_size=32, attention_heads=2, linear_units=64, num_blocks=3, input_layer="conv2d",
            normalize_before=True, macaron_style=True, rel_pos_type="latest", pos_enc_layer_type="rel_pos",
            selfattention_layer_type="rel_selfattn", activation_type="swish", use_cnn_module=True,
            cnn_module_kernel=7)


def _encoder(conv_only_blocks: int, **changes):
    from espnet2.tasks.asr import encoder_choices

    from bench.espnet_layout import prepare_espnet

    prepare_espnet("asr")
    torch.manual_seed(0)
    cls = encoder_choices.get_class("conformer_conv_lower")
    return cls(input_size=80, conv_only_blocks=conv_only_blocks, **{**CONF, **changes}).eval()


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_a_conv_only_block_is_espnets_block_with_its_attention_removed():
    from bench.zoo.conv_lower_conformer import ConvOnlyBlock

    layer = _encoder(0).encoders[0]
    block = ConvOnlyBlock(copy.deepcopy(layer))

    class NoAttention(torch.nn.Module):
        def forward(self, query, *rest):
            return torch.zeros_like(query)

    layer.self_attn = NoAttention()  # ESPnet's block, its attention adding nothing
    x, pos = torch.randn(2, 9, 32), torch.randn(1, 17, 32)
    mask = torch.ones(2, 1, 9, dtype=torch.bool)
    with torch.no_grad():
        (want, _), _ = layer((x, pos), mask)
        (got, pos_out), mask_out = block((x, pos), mask)
    torch.testing.assert_close(got, want)
    assert pos_out is pos and mask_out is mask
    assert not hasattr(block, "self_attn") and not hasattr(block, "norm_mha")


def test_only_the_lowest_blocks_lose_their_attention():
    full, lower = _encoder(0), _encoder(2)
    assert [hasattr(b, "self_attn") for b in lower.encoders] == [False, False, True]
    attention = _count(full.encoders[0].self_attn) + _count(full.encoders[0].norm_mha)
    assert _count(full) - _count(lower) == 2 * attention
    with torch.no_grad():
        out, lens, _ = lower(torch.randn(1, 100, 80), torch.tensor([100]))
    assert out.shape[-1] == 32 and int(lens[0]) == out.shape[1]


def test_settings_it_cannot_honour_are_named():
    with pytest.raises(ValueError, match="conv_only_blocks 4: the encoder has 3 blocks"):
        _encoder(4)
    with pytest.raises(ValueError, match="macaron_style"):
        _encoder(1, macaron_style=False)


def test_other_tasks_refuse_it_by_name():
    from bench.zoo.model_family import refusal

    cfg = {"encoder": "conformer_conv_lower", "decoder": "transformer", "model_conf": {"ctc_weight": 0.3}}
    assert refusal(cfg, "asr") is None
    assert "(ours) is registered with ESPnet's ASR task only, not st" in refusal(cfg, "st")


def test_espnets_trainer_sees_the_encoder_through_the_training_entry(tmp_path):
    """`bench zoo train` runs ESPnet's trainer through bench.zoo.espnet_entry, whose argument
    parser takes the encoder choices at start: ours must be among them."""
    probe = tmp_path / "probe"  # named as ESPnet's ASR trainer is: <package>.asr_train
    probe.mkdir()
    (probe / "__init__.py").write_text("")
    (probe / "asr_train.py").write_text(
        "from espnet2.tasks.asr import encoder_choices\nprint('conformer_conv_lower' in encoder_choices.choices())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    out = subprocess.run([sys.executable, "-m", "bench.zoo.espnet_entry", "probe.asr_train"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip().splitlines()[-1] == "True"  # after what ESPnet prints on import

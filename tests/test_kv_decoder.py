"""The key/value-cached decoder step computes what ESPnet's forward_one_step computes."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _decoder(**conf):
    from espnet2.asr.decoder.transformer_decoder import TransformerDecoder

    torch.manual_seed(0)
    return TransformerDecoder(vocab_size=37, encoder_output_size=32, attention_heads=4,
                              linear_units=64, num_blocks=3, **conf).eval()


def _steps(dec, ys, memory):
    """log-probs of every step: ESPnet's way and the cached way, side by side."""
    from bench.export.kv_decoder import CachedDecoderStep, CrossKV

    step, cross = CachedDecoderStep(dec).eval(), CrossKV(dec).eval()
    beams, n = ys.shape[0], len(dec.decoders)
    a = dec.decoders[0].self_attn
    kv = [torch.zeros(beams, a.h, 0, a.d_k)] * (2 * n)
    cross_kv = cross(memory[:1])
    espnet_cache, out = None, []
    with torch.no_grad():
        for length in range(1, ys.shape[1] + 1):
            want, espnet_cache = dec.forward_one_step(ys[:, :length], None, memory, cache=espnet_cache)
            got, *kv = step(ys[:, :length], *kv, *cross_kv)
            out.append((want.numpy(), got.numpy()))
    return out


@pytest.mark.parametrize("normalize_before", [True, False])
def test_cached_step_equals_forward_one_step(normalize_before):
    dec = _decoder(normalize_before=normalize_before)
    ys = torch.randint(1, 36, (5, 7), generator=torch.Generator().manual_seed(1))
    memory = torch.randn(1, 23, 32).expand(5, -1, -1)
    for want, got in _steps(dec, ys, memory):
        np.testing.assert_allclose(got, want, atol=2e-5)
        assert (got.argmax(1) == want.argmax(1)).all()


def test_unsupported_decoders_are_named():
    from bench.export.kv_decoder import UnsupportedDecoder, check_supported

    with pytest.raises(UnsupportedDecoder, match="layer 0: concat_after"):
        check_supported(_decoder(concat_after=True))
    with pytest.raises(UnsupportedDecoder, match="not a transformer decoder"):
        check_supported(torch.nn.Linear(3, 3))

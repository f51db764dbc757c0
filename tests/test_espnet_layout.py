"""ESPnet's layout is found by looking (bench/espnet_layout.py), and an export that loses part
of the model fails at export time (bench/export/asr.py: check_encoder_parity).

ESPnet 202611 cannot be installed by CI (it declares Python >= 3.12); its subsampling layout,
the positional encoding moved from ``out[1]`` to ``pos_enc``, is rebuilt here on this ESPnet's
module, so the exporter is tested on both layouts.
"""
import pytest
import torch

from bench import espnet_layout


@pytest.fixture
def fresh_layout():
    espnet_layout.nets_package.cache_clear()
    yield
    espnet_layout.nets_package.cache_clear()


@pytest.mark.parametrize("present, expected", [
    ({"espnet.nets"}, "espnet.nets"),  # ESPnet <= 202511
    ({"espnet2.legacy.nets", "espnet.nets"}, "espnet2.legacy.nets"),
    ({"espnet2.legacy.nets"}, "espnet2.legacy.nets"),  # 202611
])
def test_nets_package_is_found_where_it_is(monkeypatch, fresh_layout, present, expected):
    monkeypatch.setattr(espnet_layout, "_exists", lambda name: name in present)
    assert espnet_layout.nets_package() == expected


def test_no_espnet_is_a_clear_import_error(monkeypatch, fresh_layout):
    monkeypatch.setattr(espnet_layout, "_exists", lambda name: False)
    with pytest.raises(ImportError, match="espnet2.legacy.nets, espnet.nets.*ESPnet installed"):
        espnet_layout.nets_package()


def test_installed_layout_gives_the_modules():
    embedding = espnet_layout.nets("pytorch_backend.transformer.embedding")
    assert embedding.__name__ == f"{espnet_layout.nets_package()}.pytorch_backend.transformer.embedding"
    assert hasattr(embedding, "PositionalEncoding")


def test_exact_search_is_asked_for_only_where_the_option_exists():
    class Windowed:  # ESPnet 202611's Speech2Text: ctc_window_margin=100 by default
        def __init__(self, beam_size=10, ctc_window_margin=100):
            pass

    class Exact:  # 202511 and older: no such option, the whole utterance always
        def __init__(self, beam_size=10):
            pass

    assert espnet_layout.exact_search_options(Windowed) == {"ctc_window_margin": 0}
    assert espnet_layout.exact_search_options(Exact) == {}


# --- the export on both subsampling layouts ------------------------------------------------

def _layout_202611(forward_uses_pos_enc: bool):
    """Conv2dSubsampling as ESPnet 202611 lays it out: ``out`` the Linear, ``pos_enc`` apart.
    With ``forward_uses_pos_enc=False``: code that calls ``out(x)`` as before and so drops it."""
    Conv2dSubsampling = espnet_layout.nets("pytorch_backend.transformer.subsampling").Conv2dSubsampling

    class Split(Conv2dSubsampling):
        def forward(self, x, x_mask):
            x = self.conv(x.unsqueeze(1))
            b, c, t, f = x.size()
            x = self.out(x.transpose(1, 2).contiguous().view(b, t, c * f))
            if forward_uses_pos_enc:
                x = self.pos_enc(x)
            return x, (None if x_mask is None else x_mask[:, :, :-2:2][:, :, :-2:2])

    return Split


def _split_subsampling(model, forward_uses_pos_enc=True):
    sub = model.encoder.embed
    if not hasattr(sub, "pos_enc"):  # 202511's layout: out = Sequential(Linear, PositionalEncoding)
        linear, pos_enc = sub.out
        del sub.out
        sub.out, sub.pos_enc = linear, pos_enc
    sub.__class__ = _layout_202611(forward_uses_pos_enc)
    return model


@pytest.fixture(scope="module")
def transformer_exp(in_shared_cache):
    """The transformer smoke card: absolute positional encoding inside its conv2d subsampling."""
    from bench.artifacts import ensure_artifact
    from bench.zoo.cards import load_card

    return ensure_artifact(load_card("asr-transformer-smoke")) / "exp"


def _model(exp):
    from bench.zoo.build import load_model

    return load_model(exp, "asr")


@pytest.mark.slow
def test_export_matches_espnet_on_either_subsampling_layout(transformer_exp, tmp_path):
    from bench.export.asr import PARITY_ATOL, export_asr

    before = export_asr(_model(transformer_exp), tmp_path / "202511")
    split = _split_subsampling(_model(transformer_exp))
    x = torch.randn(1, 300, 80)
    with torch.no_grad():  # the rebuilt layout is the same model
        torch.testing.assert_close(split.encoder(x, torch.tensor([300]))[0],
                                   _model(transformer_exp).encoder(x, torch.tensor([300]))[0])
    after = export_asr(split, tmp_path / "202611")
    assert after["module_rewrites"] == before["module_rewrites"]  # pos_enc found where it moved
    for meta in (before, after):
        assert meta["encoder_check"]["max_abs_diff"] < PARITY_ATOL / 10


@pytest.mark.slow
def test_export_that_drops_the_positional_encoding_fails(transformer_exp, tmp_path, monkeypatch):
    """The exported copy calls ``out(x)`` and never ``pos_enc``; the reference model does not."""
    import bench.export.asr as asr

    rewrite = asr.rewrite_for_export

    def rewrite_then_drop(model):
        count = rewrite(model)
        _split_subsampling(model, forward_uses_pos_enc=False)
        return count

    monkeypatch.setattr(asr, "rewrite_for_export", rewrite_then_drop)
    with pytest.raises(asr.ExportParityError, match=r"encoder.onnx: differs from the ESPnet model's "
                                                    r"encoder by up to .* dropped or froze"):
        asr.export_asr(_model(transformer_exp), tmp_path / "dropped")

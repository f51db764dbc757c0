"""The quality losses `bench selftest --real --quality` injects are what they say: each rebuilds
the int8 variant's encoder, the rest of the artifact untouched, and the result still decodes."""
import onnx
import pytest

from bench.measure.selftest_real import QUALITY_LOSSES, _degraded_artifact
from bench.zoo.cards import load_card

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_artifact(in_shared_cache):
    from bench.artifacts import ensure_artifact

    return ensure_artifact(load_card("asr-conformer-smoke"))


def _ops(path):
    return {n.name: n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}


def _matmul_weight_levels(path):
    """Distinct values of each MatMul's constant weight, by node name."""
    import numpy as np
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {i.name: i for i in graph.initializer}
    return {n.name: len(np.unique(numpy_helper.to_array(weights[n.input[1]])))
            for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights}


@pytest.mark.parametrize("loss", sorted(QUALITY_LOSSES))
def test_a_loss_rebuilds_only_the_int8_encoder_and_decodes(loss, smoke_artifact, tmp_path,
                                                           torch_one_thread):
    from bench.data.espeak import builtin_eval_set
    from bench.runtime.load import load_recognizer

    art = _degraded_artifact(smoke_artifact, tmp_path, loss, QUALITY_LOSSES[loss])
    shipped = smoke_artifact / "variants" / "onnx-int8"
    rebuilt = art / "variants" / "onnx-int8"
    for g in shipped.glob("*.onnx"):
        same = g.read_bytes() == (rebuilt / g.name).read_bytes()
        assert same == (g.name != "encoder.onnx"), g.name

    ops = _ops(rebuilt / "encoder.onnx")
    logmel = {name: op for name, op in ops.items() if name.startswith("/logmel/")}
    assert logmel, "the frontend's filterbank is in the encoder graph"
    if loss == "filterbank-int8":
        assert "MatMul" not in logmel.values(), logmel
    else:  # the float graph, its MatMul weights on 7 levels (3 bits), the filterbank's not
        assert ops == _ops(smoke_artifact / "variants" / "onnx-fused" / "encoder.onnx")
        levels = _matmul_weight_levels(rebuilt / "encoder.onnx")
        assert levels and all(n <= 7 for name, n in levels.items() if not name.startswith("/logmel/"))
        assert any(n > 7 for name, n in levels.items() if name.startswith("/logmel/")), levels

    card = load_card("asr-conformer-smoke")
    rec = load_recognizer(art, card.decode, "onnx-int8", "cpu", threads=1)
    wave = builtin_eval_set(n=1)[0].load(16000)
    assert len(rec(wave).tokens) > 0

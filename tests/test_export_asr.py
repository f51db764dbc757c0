"""The plain ONNX export decodes exactly like ESPnet's PyTorch Speech2Text, and so does the
optimised one (key/value-cached decoder step, fused graphs).

For conformer, transformer, E-Branchformer and Branchformer encoders, our conformer with
convolution-only lower blocks (bench/zoo/conv_lower_conformer.py), a CTC-only
E-Branchformer (no decoder: CTC prefix scoring over the whole vocabulary) and a conformer
transducer (ESPnet's default transducer search; greedy at beam 1), beam 1 and beam 10, on synthetic
speech from 1 s to 60 s: identical token sequences (agreement TER = 0).
"""
import os

import numpy as np
import pytest

from bench.data.espeak import builtin_eval_set, long_utterance
from bench.metrics.text import agreement_ter
from bench.zoo.cards import load_card

CTC_ONLY = "asr-ctc-ebranchformer-smoke"
TRANSDUCER = "asr-transducer-smoke"
# BENCH_ASR_EXPORT_CARDS=asr-ctc-ebranchformer-paper,... runs the agreement on other cards
CARDS = os.environ.get("BENCH_ASR_EXPORT_CARDS", "asr-conformer-smoke,asr-transformer-smoke,"
                       "asr-ebranchformer-smoke,asr-branchformer-smoke,asr-convlower-smoke,"
                       f"{CTC_ONLY},{TRANSDUCER}").split(",")


@pytest.fixture(scope="module")
def waves():
    utts = builtin_eval_set(n=12)
    shortest = min(utts, key=lambda u: u.wave.shape[0])
    middle = sorted(utts, key=lambda u: u.wave.shape[0])[6]
    out = [u.load(16000) for u in (shortest, middle)] + [long_utterance(60).load(16000)]
    secs = [w.shape[0] / 16000 for w in out]
    assert secs[0] <= 1.5 and secs[-1] >= 60, secs
    return out


@pytest.fixture(scope="module")
def artifacts(in_shared_cache, waves):
    from bench.artifacts import ensure_artifact

    # the cards under test, and the two the other tests here read
    return {name: ensure_artifact(load_card(name))
            for name in dict.fromkeys(CARDS + ["asr-conformer-smoke", CTC_ONLY, TRANSDUCER])}


@pytest.mark.slow
@pytest.mark.parametrize("card_name", CARDS)
@pytest.mark.parametrize("beam", [1, 10])
@pytest.mark.parametrize("variant", ["onnx", "onnx-fused"])
def test_onnx_hypotheses_equal_pytorch(card_name, beam, variant, artifacts, waves, torch_one_thread):
    from bench.runtime.load import load_recognizer
    from bench.runtime.onnx_asr import load_export_meta

    card = load_card(card_name)
    # a fixed 20-step cap keeps the 60 s input quick; 20 <= frames of every input here
    decode = {**card.decode, "beam_size": beam, "maxlenratio": -20}
    ref = load_recognizer(artifacts[card_name], decode, "pytorch", "cpu", threads=1)
    var = load_recognizer(artifacts[card_name], decode, variant, "cpu", threads=1)
    has_decoder = load_export_meta(artifacts[card_name]).get("has_decoder", True)
    decoding = getattr(getattr(var, "recognizer", var), "decoding", None)
    assert (decoding is not None and decoding.cached) == (variant == "onnx-fused" and has_decoder)
    ref_tokens = [ref(w).tokens for w in waves]
    var_tokens = [var(w).tokens for w in waves]
    assert all(len(t) > 0 for t in ref_tokens)
    assert var_tokens == ref_tokens
    assert agreement_ter(ref_tokens, var_tokens) == 0.0


@pytest.mark.slow
def test_end_detection_path_agrees(artifacts, waves, torch_one_thread):
    """maxlenratio 0: ESPnet decodes up to T steps with end detection; so must we."""
    from bench.runtime.load import load_recognizer

    card = load_card("asr-conformer-smoke")
    decode = {**card.decode, "maxlenratio": 0.0, "beam_size": 4}
    ref = load_recognizer(artifacts[card.name], decode, "pytorch", "cpu", threads=1)
    var = load_recognizer(artifacts[card.name], decode, "onnx", "cpu", threads=1)
    assert var(waves[0]).tokens == ref(waves[0]).tokens


@pytest.mark.slow
def test_ctc_only_model_is_its_encoder_graph(artifacts):
    """ESPnet drops the decoder of a model trained with ctc_weight 1: the export and every
    variant hold the encoder graph alone, and decoding it with a decoder's weight is refused
    by name."""
    from bench.artifacts import artifact_info
    from bench.runtime.onnx_asr import OnnxSpeech2Text, load_export_meta

    art = artifacts[CTC_ONLY]
    meta = load_export_meta(art)
    assert meta["has_decoder"] is False and meta["graphs"] == ["encoder.onnx"]
    assert "CTC-only" in meta["kv_decoder"]["unsupported"]
    for name in ("onnx", "onnx-fused", "onnx-int8"):
        assert sorted(p.name for p in (art / "variants" / name).glob("*.onnx")) == ["encoder.onnx"]
        assert "error" not in artifact_info(art)["variants"][name]
    rec = OnnxSpeech2Text(art / "variants" / "onnx", art / "exp", meta, load_card(CTC_ONLY).decode)
    assert rec.decoding is None and list(rec.sessions) == ["encoder.onnx"]
    with pytest.raises(ValueError, match=r"decode.ctc_weight is 0.3, but this model is CTC-only "
                                         r"\(no decoder\): set it to 1.0"):
        OnnxSpeech2Text(art / "variants" / "onnx", art / "exp", meta,
                        {**load_card(CTC_ONLY).decode, "ctc_weight": 0.3})


@pytest.mark.slow
def test_transducer_exports_its_step_graphs(artifacts):
    """A transducer: the encoder graph, the prediction network's step with its LSTM state and
    the joint network, in the export and in every variant; its search is refused by name when
    the decode asks for one the runtime does not reproduce."""
    from bench.artifacts import artifact_info
    from bench.runtime.onnx_asr import load_export_meta
    from bench.runtime.onnx_transducer import OnnxTransducer

    art = artifacts[TRANSDUCER]
    meta = load_export_meta(art)
    assert meta["graphs"] == ["encoder.onnx", "predictor.onnx", "joint.onnx"]
    assert meta["has_decoder"] is False and meta["transducer"]["layers"] == 1
    for name in ("onnx", "onnx-fused", "onnx-int8"):
        assert sorted(p.name for p in (art / "variants" / name).glob("*.onnx")) == \
            ["encoder.onnx", "joint.onnx", "predictor.onnx"]
        info = artifact_info(art)["variants"][name]
        assert "error" not in info, info
    checked = artifact_info(art)["variants"]["onnx-fused"]["settings"]["check"]["max_abs_diff"]
    assert any(k.startswith("transducer_") for k in checked), checked
    decode = load_card(TRANSDUCER).decode
    with pytest.raises(ValueError, match="search_type is 'maes': the ONNX runtime reproduces"):
        OnnxTransducer(art / "variants" / "onnx", art / "exp", meta,
                       {**decode, "transducer_conf": {"search_type": "maes"}})


@pytest.mark.slow
def test_encoder_graph_has_no_length_cap(artifacts):
    """A 5-minute input runs through the encoder graph (ESPnet's tables hold 5000 frames)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(artifacts["asr-conformer-smoke"] / "onnx" / "encoder.onnx"),
                                providers=["CPUExecutionProvider"])
    speech = (np.random.default_rng(0).standard_normal(16000 * 300) * 0.05).astype(np.float32)
    enc, ctc = sess.run(None, {"speech": speech[None]})
    assert enc.shape[1] == 7499 and np.isfinite(enc).all() and np.isfinite(ctc).all()


def test_encoder_attention_has_no_padding_mask(artifacts):
    """One utterance has no padding, so the encoder graph's attention carries no mask
    (bench.export.rewrites.unpadded_attention): no Where over the attention scores, while the
    test above and the agreement tests check that the output is ESPnet's."""
    import onnx

    model = onnx.load(str(artifacts["asr-conformer-smoke"] / "onnx" / "encoder.onnx"))
    attention = [n for n in model.graph.node if "/self_attn/" in n.name]
    assert attention, "no attention nodes found: were the encoder's nodes renamed?"
    assert not [n.name for n in attention if n.op_type == "Where"]


@pytest.mark.parametrize("frames", [1, 2, 3, 50])
def test_unpadded_rel_shift_is_espnets(frames, tmp_path):
    """The relative-position shift without its zero pad (bench.export.rewrites.unpadded_rel_shift)
    gives ESPnet's values exactly, eager and exported, one frame included; and the exported
    shapes stay readable to the offline optimizer's symbolic shape inference (when it could not
    read them, it fused none of the encoder's layer norms)."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    from bench.espnet_layout import nets
    from bench.export.rewrites import unpadded_rel_shift

    attention = nets("pytorch_backend.transformer.attention").RelPositionMultiHeadedAttention
    layer = attention(4, 64, 0.0).eval()

    class Scores(torch.nn.Module):  # (1, 4, T, 2T-1) scores, their length from the input's
        def forward(self, q):
            heads = q.view(1, -1, 4, 16).transpose(1, 2)
            pos = torch.cat([q, q[:, 1:]], 1).view(1, -1, 4, 16).transpose(1, 2)
            return layer.rel_shift(torch.matmul(heads, pos.transpose(-2, -1)))

    path = tmp_path / "shift.onnx"
    with unpadded_rel_shift(), torch.no_grad():
        torch.onnx.export(Scores(), (torch.randn(1, 5, 64),), str(path), dynamo=False,
                          opset_version=17, input_names=["q"], output_names=["s"],
                          dynamic_axes={"q": {1: "frames"}})
    SymbolicShapeInference.infer_shapes(onnx.load(str(path)), auto_merge=True)  # raises if lost
    assert "ConstantOfShape" not in {n.op_type for n in onnx.load(str(path)).graph.node}  # no zero pad

    q = torch.randn(1, frames, 64, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        want = Scores()(q)
        with unpadded_rel_shift():
            eager = Scores()(q)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"q": q.numpy()})[0]
    assert want.shape == (1, 4, frames, frames)
    assert torch.equal(eager, want)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-5)  # ORT's products, not torch's


def test_encoder_gives_ctc_logits_and_the_runtime_normalises_them(artifacts, waves):
    """The encoder graph ends at the CTC's linear layer ("ctc_logits"), with no LogSoftmax: a
    second (T, V) tensor at the encoder's memory peak. The runtime's in-place log-softmax gives
    ESPnet's CTC log-probabilities."""
    import onnx
    import onnxruntime as ort
    import torch

    from bench.runtime.beam_search import log_softmax_inplace

    path = artifacts["asr-conformer-smoke"] / "onnx" / "encoder.onnx"
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["enc", "ctc_logits"]
    assert "LogSoftmax" not in {n.op_type for n in model.graph.node}
    enc, logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"speech": waves[1][None].astype(np.float32)})
    want = torch.log_softmax(torch.from_numpy(logits[0]), dim=-1).numpy()
    got = log_softmax_inplace(logits[0])
    assert got is not None and np.shares_memory(got, logits)
    np.testing.assert_allclose(got, want, atol=2e-6)


@pytest.mark.slow
def test_encoder_has_no_frames_by_frames_tensor(artifacts):
    """ESPnet's traceable padding mask builds a (frames+1)^2 triangle at feature-frame rate:
    7 GB of int64 per mask for 5 minutes of audio (ORT peaked at 9.4 GB on the tiny card). The
    export replaces it (bench.export.rewrites.linear_pad_masks): no intermediate tensor of the
    encoder may have two axes as long as the feature frames. (Attention's scores are at the
    subsampled rate, a quarter or less.)"""
    import onnx
    import onnxruntime as ort

    for name, art in artifacts.items():
        model = onnx.load(str(art / "onnx" / "encoder.onnx"))
        outputs = {o.name for o in model.graph.output}
        for node in model.graph.node:
            model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(o)
                                      for o in node.output if o and o not in outputs)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        # 15 s: 1,500 frames, more than any channel axis (the STFT's 514)
        speech = (np.random.default_rng(0).standard_normal(16000 * 15) * 0.05).astype(np.float32)
        frames = 16000 * 15 // 160
        values = sess.run(None, {"speech": speech[None]})
        square = [(o.name, v.shape) for o, v in zip(sess.get_outputs(), values)
                  if sum(d >= frames for d in np.shape(v)) >= 2]
        assert not square, (name, square[:5])


def test_onnx_runtime_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, bench.runtime.onnx_asr, bench.runtime.load, bench.measure.child; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.slow
def test_variant_check_catches_a_broken_graph(artifacts, tmp_path):
    """The derive-time check rejects a graph that runs but computes something else."""
    import shutil

    import onnx

    from bench.optimize.verify import VariantCheckError, check_variant
    from bench.runtime.onnx_asr import load_export_meta

    art = artifacts["asr-conformer-smoke"]
    meta = load_export_meta(art)
    shutil.copytree(art / "onnx", tmp_path / "broken")
    check_variant(art / "onnx", tmp_path / "broken", meta, atol=1e-3)  # identical copy passes
    model = onnx.load(str(tmp_path / "broken" / "decoder.onnx"))
    for init in model.graph.initializer:
        if init.name.endswith("output_layer.bias"):
            arr = onnx.numpy_helper.to_array(init).copy()
            arr[:5] += 1.0
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(tmp_path / "broken" / "decoder.onnx"))
    with pytest.raises(VariantCheckError, match="decoder.onnx.*differs from the plain graph"):
        check_variant(art / "onnx", tmp_path / "broken", meta, atol=1e-3)


@pytest.mark.slow
def test_derived_variants_pass_their_checks(artifacts):
    from bench.artifacts import artifact_info

    for art in artifacts.values():
        variants = artifact_info(art)["variants"]
        for name in ("onnx-fused", "onnx-int8"):
            assert "error" not in variants[name], variants[name]
            assert variants[name]["settings"]["check"]["max_abs_diff"]


@pytest.mark.slow
def test_io_bound_decoding_decodes_the_same(artifacts, waves):
    """On CUDA the cross-attention keys and values stay on the GPU through IO binding. Bound to
    CPU memory, the same code path must decode exactly what plain feeding decodes."""
    from bench.runtime.load import load_recognizer

    card = load_card("asr-conformer-smoke")
    decode = {**card.decode, "maxlenratio": -20}
    rec = load_recognizer(artifacts[card.name], decode, "onnx-fused", "cpu", threads=1)
    inner = getattr(rec, "recognizer", rec)
    assert inner.decoding.cached and inner.decoding.bind_device is None
    want = [rec(w).tokens for w in waves[:2]]
    inner.decoding.bind_device = "cpu"
    assert [rec(w).tokens for w in waves[:2]] == want


@pytest.mark.slow
def test_export_does_not_depend_on_the_hash_seed(tmp_path):
    """ORT's optimizer walks Python sets, so its fusions followed the string-hash seed: under
    PYTHONHASHSEED 1 and 5 it made 328 and 314 nodes of this encoder, and two exports of one
    model decoded differently in int8. Exported under each, every graph must be the same bytes."""
    import hashlib
    import os
    import subprocess
    import sys

    from bench.paths import REPO_ROOT

    digests = []
    for seed in ("1", "5"):
        cache = tmp_path / seed
        subprocess.run([sys.executable, "-m", "bench", "export", "asr-conformer-smoke"], check=True,
                       capture_output=True, cwd=REPO_ROOT, timeout=900,
                       env=dict(os.environ, BENCH_CACHE=str(cache), PYTHONHASHSEED=seed))
        graphs = sorted(cache.glob("*/variants/*/*.onnx"))
        assert {g.parent.name for g in graphs} >= {"onnx", "onnx-fused", "onnx-int8"}
        digests.append({str(g.relative_to(cache)): hashlib.sha256(g.read_bytes()).hexdigest()
                        for g in graphs})
    assert digests[0] == digests[1]


def test_a_built_model_of_an_unhandled_family_is_refused_by_name():
    """The exporter's own guard, behind model_family's check of the config."""
    from types import SimpleNamespace

    from bench.export.asr import _refuse_unsupported

    def named(name, **attrs):
        return type(name, (), attrs)()

    streaming = SimpleNamespace(encoder=named("ContextualBlockConformerEncoder"), decoder=None)
    with pytest.raises(ValueError, match=r"encoder ContextualBlockConformerEncoder: a streaming"):
        _refuse_unsupported(streaming, has_decoder=False)
    rnn = SimpleNamespace(encoder=named("ConformerEncoder"), decoder=named("RNNDecoder"))
    with pytest.raises(ValueError, match=r"decoder RNNDecoder: the one-step decoder graph"):
        _refuse_unsupported(rnn, has_decoder=True)
    ok = SimpleNamespace(encoder=named("ConformerEncoder"), decoder=named("TransformerDecoder", decoders=[]))
    _refuse_unsupported(ok, has_decoder=True)

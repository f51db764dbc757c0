"""The int8 study: static int8 variants derived on demand from calibration feeds, and its table."""
import shutil

import numpy as np
import pytest

from bench.optimize.calibration import record_feeds
from bench.studies import int8_table
from bench.variants import DEFAULT_VARIANTS, VARIANTS


class _Session:
    def run(self, output_names, feed):
        return [feed["x"]]


class _Runtime:
    def __init__(self, calls: int):
        self.sessions = {"g.onnx": _Session()}
        self.calls = calls

    def __call__(self, _):
        for i in range(self.calls):
            self.sessions["g.onnx"].run(None, {"x": np.full(1, i)})


def test_recorded_feeds_are_a_seeded_sample_in_call_order():
    kept = [int(f["x"][0]) for f in record_feeds(_Runtime(100), [None], limit=10)["g.onnx"]]
    again = [int(f["x"][0]) for f in record_feeds(_Runtime(100), [None], limit=10)["g.onnx"]]
    assert len(kept) == 10 and kept == sorted(kept) and kept == again
    assert kept != list(range(10))  # a sample of all calls, not the first ten
    assert [int(f["x"][0]) for f in record_feeds(_Runtime(7), [None], limit=10)["g.onnx"]] == list(range(7))
    assert len(record_feeds(_Runtime(30), [None])["g.onnx"]) == 30


def _gelu_matmul_graph(path):
    """x -> com.microsoft Gelu -> MatMul(W): ONNX's shape inference cannot type the Gelu output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["h"], domain="com.microsoft", name="gelu"),
         helper.make_node("MatMul", ["h", "w"], ["y"], name="matmul")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, ir_version=9, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    onnx.save(model, str(path))


def test_static_int8_quantizes_activations_behind_an_untyped_contrib_op(tmp_path):
    import onnx
    import onnxruntime as ort

    from bench.optimize.static_int8 import quantize_static_graph

    _gelu_matmul_graph(tmp_path / "g.onnx")
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((4, 16)).astype(np.float32)} for _ in range(6)]
    settings = quantize_static_graph(tmp_path / "g.onnx", tmp_path / "q.onnx", feeds, {"op_types": ["MatMul"]})
    assert settings["calibration_inputs"] == 6 and settings["method"] == "static"
    q = onnx.load(str(tmp_path / "q.onnx"))
    quantized = {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    gelu_out = next(n.output[0] for n in q.graph.node if n.op_type == "Gelu")  # names are compacted
    assert gelu_out in quantized, "the Gelu output (the MatMul's activation) got no range"
    assert not list(tmp_path.glob("*.typed.onnx"))
    x = feeds[0]["x"]
    want = ort.InferenceSession(str(tmp_path / "g.onnx")).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, {"x": x})[0]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_study_variants_run_only_when_named():
    study = [name for name, v in VARIANTS.items() if v.study]
    assert {"onnx-int8-static", "onnx-int8-conv", "onnx-int8-convs"} <= set(study)
    assert not set(study) & set(DEFAULT_VARIANTS)


@pytest.fixture(scope="module")
def smoke(in_shared_cache):
    from bench.artifacts import ensure_artifact
    from bench.zoo.cards import load_card

    card = load_card("asr-conformer-smoke")
    return card, ensure_artifact(card)


@pytest.mark.slow
def test_static_variant_is_derived_on_demand_and_decodes(smoke, tmp_path):
    import onnx

    from bench.artifacts import ensure_variant, variant_record
    from bench.data.espeak import builtin_eval_set
    from bench.runtime.load import load_recognizer, model_size_mb

    card, shared = smoke
    assert not (shared / "variants" / "onnx-int8-static").exists()  # not built with the artifact
    artifact = tmp_path / shared.name
    shutil.copytree(shared, artifact)
    ensure_variant(card, artifact, "onnx-int8-static")
    record = variant_record(artifact, "onnx-int8-static")
    assert "error" not in record, record
    assert record["settings"]["encoder.onnx"]["calibration_inputs"] == 8
    assert 8 < record["settings"]["decoder.onnx"]["calibration_inputs"] <= 64
    enc = onnx.load(str(artifact / "variants" / "onnx-int8-static" / "encoder.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in enc.graph.node)
    # the frontend's activations stay float (the excluded nodes are named before names are compacted)
    assert record["settings"]["encoder.onnx"]["kept_float_nodes"] > 0
    stored = record["settings"]["encoder.onnx"]["stored"]
    assert stored["stft_basis"]["rebuilt"] and stored["bytes_after"] < stored["bytes_before"]
    size = model_size_mb(artifact, "onnx-int8-static")
    assert size < model_size_mb(artifact, "onnx-int8")
    assert size < record["settings"]["base_stored_alike_mb"] < model_size_mb(artifact, "onnx-fused")
    rec = load_recognizer(artifact, card.decode, "onnx-int8-static", "cpu", 1)
    assert isinstance(rec(builtin_eval_set(n=1)[0].load(16000)).tokens, list)


@pytest.mark.slow
def test_int8_convolutions_variant_quantizes_the_encoders_convolutions_and_decodes(smoke, tmp_path):
    import onnx

    from bench.artifacts import ensure_variant, variant_record
    from bench.data.espeak import builtin_eval_set
    from bench.runtime.load import load_recognizer

    card, shared = smoke
    artifact = tmp_path / shared.name
    shutil.copytree(shared, artifact)
    ensure_variant(card, artifact, "onnx-int8-convs")
    record = variant_record(artifact, "onnx-int8-convs")
    assert "error" not in record, record
    # the subsampling's second convolution and every block's two pointwise ones
    assert record["settings"]["encoder.onnx"]["dynamic_convs"]["convolutions"] > 2
    ops = [n.op_type for n in onnx.load(str(artifact / "variants" / "onnx-int8-convs" / "encoder.onnx")).graph.node]
    plain = [n.op_type for n in onnx.load(str(artifact / "variants" / "onnx-int8" / "encoder.onnx")).graph.node]
    assert "ConvInteger" in ops and "ConvInteger" not in plain
    assert ops.count("Conv") < plain.count("Conv")  # the STFT, first subsampling and depthwise stay
    rec = load_recognizer(artifact, card.decode, "onnx-int8-convs", "cpu", 1)
    assert isinstance(rec(builtin_eval_set(n=1)[0].load(16000)).tokens, list)


@pytest.mark.slow
def test_a_transducer_card_gets_the_study_variants(in_shared_cache, tmp_path):
    """A study variant's calibration feeds are recorded through the card's own recognizer:
    a transducer's (encoder, predictor, joint), not the attention decoder's, which refused it."""
    from bench.artifacts import ensure_artifact, ensure_variant, variant_record
    from bench.data.espeak import builtin_eval_set
    from bench.runtime.load import load_recognizer
    from bench.zoo.cards import load_card

    card = load_card("asr-transducer-smoke")
    shared = ensure_artifact(card)
    artifact = tmp_path / shared.name
    shutil.copytree(shared, artifact)
    ensure_variant(card, artifact, "onnx-int8-convs")
    record = variant_record(artifact, "onnx-int8-convs")
    assert "error" not in record, record
    rec = load_recognizer(artifact, card.decode, "onnx-int8-convs", "cpu", 1)
    assert isinstance(rec(builtin_eval_set(n=1)[0].load(16000)).tokens, list)


def test_a_variant_without_calibration_data_is_an_error_tried_again_next_time(smoke, tmp_path, monkeypatch):
    from bench.artifacts import ensure_variant, variant_record
    from bench.families.speech2text import SpeechToText

    card, shared = smoke
    artifact = tmp_path / shared.name
    shutil.copytree(shared, artifact, ignore=shutil.ignore_patterns("onnx-int8-*"))
    calls = []
    monkeypatch.setattr(SpeechToText, "dev_feeds", lambda *a: calls.append(1) or {})
    ensure_variant(card, artifact, "onnx-int8-conv")
    ensure_variant(card, artifact, "onnx-int8-conv")
    assert calls == [1, 1]
    error = variant_record(artifact, "onnx-int8-conv")["error"]
    assert "no calibration data for" in error and ".onnx" in error
    assert not list((artifact / "variants" / "onnx-int8-conv").glob("*.onnx"))


def _case(card, variant, speedup, model_mb, wer, status="ok", **extra):
    return {"task": "asr", "card": card, "variant": variant, "device": "cpu", "status": status,
            "metrics": {"speedup": speedup, "speedup_ci95": [speedup * 0.9, speedup * 1.1] if speedup else None,
                        "model_mb": model_mb, "wer": wer, "agreement_ter": 0.0},
            "gate": {"verdict": "new"}, **extra}


def test_int8_table_sets_each_variant_against_the_fp32_export_and_dynamic_int8():
    doc = {"run": {"id": "r1", "git_commit": "abc", "machine": {"class": "cpu-test"}},
           "cases": [_case("c", "pytorch", None, 8.0, 10.0), _case("c", "onnx", 2.0, 9.0, 10.0),
                     _case("c", "onnx-int8", 3.0, 4.5, 10.5),
                     _case("c", "onnx-int8-static", 2.4, 2.25, 11.0,
                           settings={"variant": {"base_stored_alike_mb": 7.875}}),
                     _case("c", "onnx-int8-conv", None, None, None, status="error",
                           error="ValueError: no calibration data for encoder.onnx")]}
    rows = {r.split("|")[2].strip(): [x.strip() for x in r.split("|")[1:-1]]
            for r in int8_table([doc]).splitlines() if r.startswith("| c |")}
    assert rows["onnx-int8-static"][3] == "4.00x"  # 9.0 / 2.25
    assert rows["onnx-int8-static"][4] == "3.50x"  # its base stored alike, 7.875 / 2.25
    assert rows["onnx-int8-static"][6] == "0.80x"  # 2.4 / 3.0
    assert rows["onnx-int8-static"][8] == "+1.00 pt"
    assert rows["onnx-int8"][3] == "2.00x" and rows["onnx-int8"][4] == "-" and rows["onnx-int8"][6] == "1.00x"
    assert rows["onnx-int8-conv"][-1].startswith("error: ValueError: no calibration data")
    assert "r1" in int8_table([doc])


def test_compare_workers_derive_a_study_variant_and_read_its_error(smoke, tmp_path, monkeypatch):
    """bench compare's export op derives a named study variant; its load op then reports the
    derivation's error from the variant's own record (not a failed load of missing graphs)."""
    from bench.compare_worker import Worker
    from bench.families.speech2text import SpeechToText

    card, shared = smoke
    shutil.copytree(shared, tmp_path / shared.name, ignore=shutil.ignore_patterns("onnx-int8-*"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(SpeechToText, "dev_feeds", lambda *a: {})
    artifact = Worker().op_export(card.name, variant="onnx-int8-conv")["artifact"]
    assert (tmp_path / shared.name / "variants" / "onnx-int8-conv" / "variant.json").exists()
    with pytest.raises(RuntimeError, match="onnx-int8-conv .* could not be derived: .*no calibration data"):
        Worker().op_load(card.name, "onnx-int8-conv", "cpu", 1, artifact)

"""Streaming (contextual block) encoders: the exported graphs + numpy driver against ESPnet's own
streaming path (Speech2TextStreaming.apply_frontend + encoder(..., infer_mode=True)), call by call.

Tiny random ESPnet models (ASR transformer, ASR conformer with another STFT and global MVN, an ST
model after the mini_an4 streaming debug config) are exported with bench.export.streaming; each
stream compares, per call, the frontend features and the encoder output (atol 1e-4, equal frame
counts) over chunk sizes, wave lengths and an empty final chunk.
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("espnet2")

REPO = Path(__file__).resolve().parents[1]
ST_CONFIG = REPO.parent / "shared/espnet-recipes/mini_an4_debug/mini_an4_st1__train_st_streaming_debug.yaml"
ATOL = 1e-4
TOKENS = ["<blank>", "<unk>"] + [f"t{i}" for i in range(20)] + ["<sos/eos>"]
BLOCKS = dict(block_size=40, hop_size=16, look_ahead=16)


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def _asr_args(encoder: str, frontend_conf: dict, normalize=None, normalize_conf=None, **enc):
    from espnet2.tasks.asr import ASRTask

    args = ASRTask.get_parser().parse_args(["--output_dir", "/nonexistent"])
    enc_conf = dict(output_size=16, attention_heads=2, linear_units=32, num_blocks=2,
                    input_layer="conv2d", **BLOCKS)
    if encoder == "contextual_block_conformer":
        enc_conf.update(cnn_module_kernel=5, macaron_style=True, use_cnn_module=True)
    enc_conf.update(enc)
    vars(args).update(
        token_list=TOKENS, token_type="char", input_size=None, frontend="default",
        frontend_conf=frontend_conf, specaug=None, encoder=encoder, encoder_conf=enc_conf,
        decoder="transformer", decoder_conf=dict(attention_heads=2, linear_units=32, num_blocks=1),
        model_conf=dict(ctc_weight=0.3),
        **({"normalize": normalize, "normalize_conf": normalize_conf} if normalize else {}))
    return args


def _global_mvn_stats(n_mels: int) -> str:
    rng = np.random.default_rng(3)
    count = 1000
    mean = rng.normal(-8, 2, n_mels)
    std = rng.uniform(1, 3, n_mels)
    path = Path(tempfile.mkdtemp()) / "feats_stats.npz"
    np.savez(path, count=count, sum=mean * count, sum_square=(std ** 2 + mean ** 2) * count)
    return str(path)


@functools.lru_cache(maxsize=None)
def _model(kind: str):
    from espnet2.tasks.asr import ASRTask

    torch.manual_seed(0)
    if kind == "transformer":  # default frontend (512/512/128), utterance_mvn (ASR's default)
        model = ASRTask.build_model(_asr_args("contextual_block_transformer", {}))
    elif kind == "conformer":  # 512/400/160, global_mvn
        fc = dict(n_fft=512, win_length=400, hop_length=160, n_mels=40)
        model = ASRTask.build_model(_asr_args(
            "contextual_block_conformer", fc, normalize="global_mvn",
            normalize_conf={"stats_file": _global_mvn_stats(40)}))
    elif kind.startswith("variant:"):  # variant:<input_layer>:<key>=<0|1>
        _, layer, setting = kind.split(":")
        key, value = setting.split("=")
        model = ASRTask.build_model(_asr_args("contextual_block_transformer", {"n_mels": 20},
                                              input_layer=layer, **{key: bool(int(value))}))
    elif kind in ("st", "st_400"):  # st_400: win 400 / hop 160, where ST's trims lose frames
        import yaml
        from espnet2.tasks.st import STTask

        cfg = yaml.safe_load(ST_CONFIG.read_text())
        args = STTask.get_parser().parse_args(["--output_dir", "/nonexistent"])
        enc_conf = dict(cfg["encoder_conf"], output_size=16, linear_units=32, num_blocks=2)
        dec_conf = dict(cfg["decoder_conf"], linear_units=32)
        vars(args).update(
            token_list=TOKENS, src_token_list=TOKENS, token_type="char", src_token_type="char",
            input_size=None, frontend="default", specaug=None,
            frontend_conf=dict(n_fft=512, win_length=400, hop_length=160) if kind == "st_400" else {},
            encoder=cfg["encoder"], encoder_conf=enc_conf, decoder=cfg["decoder"],
            decoder_conf=dec_conf, model_conf=cfg["model_conf"])
        model = STTask.build_model(args)
    else:
        raise KeyError(kind)
    return model.eval()


@functools.lru_cache(maxsize=None)
def _exported(kind: str):
    from bench.export.streaming import export_streaming

    out = Path(tempfile.mkdtemp(prefix=f"streaming-{kind}-"))
    return out, export_streaming(_model(kind), out)


def _wave(seconds: float, seed: int = 0, n: int | None = None) -> np.ndarray:
    n = n if n is not None else int(16000 * seconds)
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def _compare(kind: str, wave: np.ndarray, chunk: int, stats: dict) -> None:
    from bench.export.streaming import chunks_of, reference_stream

    meta = _exported(kind)[1]
    runner = _runner(kind)
    want = reference_stream(_model(kind), wave, chunk)
    calls = chunks_of(wave, chunk)
    assert len(want) == len(calls)
    for k, ((piece, final), w) in enumerate(zip(calls, want)):
        enc, logp = runner.feed(piece, final)
        where = f"{kind} chunk {chunk} wave {len(wave)} call {k}/{len(calls)}"
        # (a) the frontend's features, or none (ASR with <= win_length samples buffered)
        if w["feats"] is None:
            assert runner.last_feats is None and not runner.encoder_ran, where
            assert enc.shape == (0, meta["d_model"]), where
            stats["no_feats"] += 1
            continue
        assert runner.last_feats is not None and runner.last_feats.shape == w["feats"].shape, where
        if w["feats"].size:
            stats["feats"] = max(stats["feats"], float(np.abs(runner.last_feats - w["feats"]).max()))
        # (b) the encoder output of this call
        assert enc.shape == w["enc"].shape, where
        assert enc.dtype == np.float32
        if enc.size:
            diff = float(np.abs(enc - w["enc"]).max())
            assert diff <= ATOL, f"{where}: {diff}"
            stats["enc"] = max(stats["enc"], diff)
        if meta["has_ctc"]:
            assert logp.shape == (enc.shape[0], meta["vocab_size"]), where
            if enc.size:
                ctc = _model(kind).ctc
                with torch.no_grad():
                    ref = ctc.log_softmax(torch.from_numpy(w["enc"])[None])[0].numpy()
                assert np.abs(logp - ref).max() <= ATOL, where
        else:
            assert logp is None
        stats["blocks"].add(runner.last_blocks)
        stats["short"] += runner.last_short
        stats["frames"] += enc.shape[0]
    assert runner.state.n_done == 0 and runner.frontend.buf is None  # reset after the final call


@functools.lru_cache(maxsize=None)
def _runner(kind: str):
    from bench.runtime.streaming_encoder import StreamingEncoder

    out, meta = _exported(kind)
    return StreamingEncoder(out, meta)


CHUNKS = (512, 640, 1000, 5120, 32000, 0)  # 0: the whole wave in one final call
SMALL_CHUNK = 320  # <= win_length: ASR buffers the first call with no features (S:212-221)


def _multiple(chunk: int) -> int:
    """A wave length that is a multiple of the chunk: the last call is final and empty."""
    return chunk * max(1, 24000 // chunk) if chunk else 24000


@pytest.mark.parametrize("kind", ["transformer", "conformer", "st", "st_400"])
def test_streaming_encoder_matches_espnet_call_by_call(kind):
    stats = {"feats": 0.0, "enc": 0.0, "blocks": set(), "short": 0, "frames": 0, "no_feats": 0}
    for chunk in CHUNKS + ((SMALL_CHUNK,) if not kind.startswith("st") else ()):
        for wave in (_wave(1.0, seed=1), _wave(5.0, seed=2), _wave(0, seed=3, n=_multiple(chunk))):
            _compare(kind, wave, chunk, stats)
    print(kind, stats)
    assert stats["feats"] <= ATOL
    assert 1 in stats["blocks"] and max(stats["blocks"]) >= 3, stats["blocks"]
    assert stats["short"] > 0  # the short-segment path (T:477) ran
    if not kind.startswith("st"):
        assert stats["no_feats"] > 0  # S:212-221: a call with too few samples for one window


@pytest.mark.parametrize("kind", ["variant:conv2d6:ctx_pos_enc=0", "variant:conv2d8:concat_after=1",
                                  "variant:linear:normalize_before=0"])
def test_other_input_layers_and_options(kind):
    stats = {"feats": 0.0, "enc": 0.0, "blocks": set(), "short": 0, "frames": 0, "no_feats": 0}
    for chunk in (640, 5120, 0):
        _compare(kind, _wave(3.0, seed=4), chunk, stats)
    _compare(kind, _wave(0.25, seed=5), 640, stats)  # short enough for the short path, also for linear
    print(kind, stats)
    assert stats["short"] > 0 and max(stats["blocks"]) > 1


def test_too_small_st_chunk_fails_as_in_espnet():
    """ST keeps win-hop samples (ST:320-333): a first chunk shorter than that makes ESPnet's narrow
    fail; ours raises too, and starts afresh."""
    from bench.export.streaming import reference_stream

    with pytest.raises(RuntimeError):
        reference_stream(_model("st"), _wave(1.0), SMALL_CHUNK)
    runner = _runner("st")
    with pytest.raises(ValueError, match="fewer than"):
        runner.feed(_wave(1.0)[:SMALL_CHUNK], False)
    assert runner.frontend.buf is None and not runner.state.started


def test_export_json_is_complete():
    out, meta = _exported("transformer")
    on_disk = json.loads((out / "export.json").read_text())
    assert on_disk == json.loads(json.dumps(meta))
    for key in ("exporter", "opset", "torch", "n_layers", "d_model", "vocab_size", "sos", "eos",
                "has_ctc", "has_decoder", "graphs", "kv_decoder", "encoder_check", "streaming"):
        assert key in meta, key
    assert meta["has_ctc"] and meta["has_decoder"]
    for g in meta["graphs"] + meta["kv_decoder"]["graphs"]:
        assert (out / g).is_file(), g
    assert set(_runner("transformer").sessions) == {"frontend.onnx", "embed.onnx", "cb_blocks.onnx",
                                                     "cb_short.onnx", "ctc.onnx"}
    s = meta["streaming"]
    assert (s["block_size"], s["hop_size"], s["look_ahead"], s["subsample"]) == (40, 16, 16, 4)
    assert (s["n_fft"], s["win_length"], s["hop_length"], s["frontend"]) == (512, 512, 128, "asr")
    assert s["encoder_layers"] == 2 and s["d_model"] == 16
    check = meta["encoder_check"]
    assert check["max_abs_diff"] <= 1e-3 and check["frames"] > 0
    st_out, st_meta = _exported("st")
    assert st_meta["streaming"]["frontend"] == "st" and not st_meta["has_ctc"]
    assert "ctc.onnx" not in st_meta["graphs"] and not (st_out / "ctc.onnx").exists()
    conf = _exported("conformer")[1]["streaming"]
    assert (conf["win_length"], conf["hop_length"]) == (400, 160)


def test_unhandled_configs_are_refused_by_key():
    from espnet2.tasks.asr import ASRTask

    from bench.export.streaming import export_streaming

    torch.manual_seed(0)
    model = ASRTask.build_model(_asr_args("contextual_block_transformer", {}, init_average=False))
    with pytest.raises(ValueError, match="init_average"):
        export_streaming(model.eval(), Path(tempfile.mkdtemp()))
    model = ASRTask.build_model(_asr_args("contextual_block_transformer", {}, input_layer=None))
    with pytest.raises(ValueError, match="input_layer"):
        export_streaming(model.eval(), Path(tempfile.mkdtemp()))


def test_export_check_catches_a_wrong_graph(tmp_path):
    """A blocks graph that ignores the context from the previous call fails the check."""
    import shutil

    from bench.export.asr import ExportParityError
    from bench.export.streaming import check_streaming_parity

    out, meta = _exported("transformer")
    for g in meta["graphs"]:
        shutil.copy(out / g, tmp_path / g)
    import onnx

    m = onnx.load(str(tmp_path / "cb_blocks.onnx"))
    for node in m.graph.node:  # feed past_ctx as zeros: the past context is lost
        for i, name in enumerate(node.input):
            if name == "past_ctx":
                node.input[i] = "zero_ctx"
    m.graph.node.insert(0, onnx.helper.make_node("Mul", ["past_ctx", "zero_scalar"], ["zero_ctx"]))
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((), np.float32), "zero_scalar"))
    onnx.save(m, str(tmp_path / "cb_blocks.onnx"))
    with pytest.raises(ExportParityError):
        check_streaming_parity(_model("transformer"), tmp_path, meta)


def test_runtime_modules_import_no_torch():
    code = ("import bench.runtime.streaming_encoder, bench.runtime.streaming_frontend, sys; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)

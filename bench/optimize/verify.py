"""Check a derived variant against the plain export before anyone measures it.

ORT's transformer optimizer is not deterministic on ESPnet's conformer: in one build its
symbolic shape inference succeeded and a rewrite broke the relative-position shift, so the
fused encoder failed at every input length; a rebuild of the same graph was fine. A
variant is therefore run at several lengths that differ from the export's trace length
and compared with the plain graphs: equal within `atol` (None: only shapes and finite
values, for int8 whose error is measured as agreement instead).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.runtime.streaming import DEFAULT_CHUNK, stream_chunks

CHECK_SECONDS = (0.9, 3.3, 11.7)


class VariantCheckError(RuntimeError):
    """A derived graph that fails to run or disagrees with the plain export."""


def check_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # the failure is reported in our message, not ORT's log
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def compare_outputs(name: str, got: list, want: list, atol: float | None,
                    length_axis: int | None = None) -> tuple[float, int]:
    """A derived graph's outputs against the plain graph's: (max abs difference, largest
    length difference along ``length_axis``), raising VariantCheckError naming ``name``.

    Outputs must be finite and of the plain graph's shape, except that with atol None (int8)
    and a ``length_axis`` a different length there is accepted: a TTS duration is a rounding
    of a continuous prediction, so quantization may move a token by a frame; such outputs
    are then not compared by value.
    """
    worst, moved = 0.0, 0
    for g, w in zip(got, want):
        if g.dtype.kind == "f" and not np.isfinite(g).all():
            raise VariantCheckError(f"{name}: non-finite output")
        if g.shape != w.shape:
            other_axes_agree = length_axis is not None and g.ndim == w.ndim and all(
                a == b for i, (a, b) in enumerate(zip(g.shape, w.shape)) if i != length_axis)
            if atol is not None or not other_axes_agree:
                raise VariantCheckError(f"{name}: output shape {g.shape} != plain {w.shape}")
            moved = max(moved, abs(g.shape[length_axis] - w.shape[length_axis]))
            continue
        if g.size:
            worst = max(worst, float(np.abs(g.astype(np.float64) - w).max()))
    if atol is not None and worst > atol:
        raise VariantCheckError(f"{name}: differs from the plain graph by {worst:.2e} > {atol:g}")
    return worst, moved


def _decode_steps(graphs: Path, meta: dict, ys: np.ndarray, enc: np.ndarray) -> list:
    """log-probs of steps 1..L over the prefixes of ys, from an empty cache, with whichever
    decoder step the folder holds (the plain one, or the key/value-cached one)."""
    path = graphs / "decoder.onnx"
    dec = check_session(path)
    beams = ys.shape[0]
    names = [i.name for i in dec.get_inputs()]
    if "cross_k_0" in names:
        kv = meta["kv_decoder"]
        cross_path = graphs / "cross_kv.onnx"
        cross = check_session(cross_path)
        extra = dict(zip((o.name for o in cross.get_outputs()), _run(cross, {"enc": enc}, cross_path)))
        names = [n for n in names if n.startswith("self_")]
        cache = [np.zeros((beams, kv["heads"], 0, kv["d_k"]), np.float32)] * len(names)
    else:
        names = ["cache"]
        cache = [np.zeros((meta["n_layers"], beams, 0, meta["d_model"]), np.float32)]
        extra = {"memory": np.repeat(enc, beams, axis=0)}
    out = []
    for length in range(1, ys.shape[1] + 1):
        logp, *cache = _run(dec, {"ys": ys[:, :length], **dict(zip(names, cache)), **extra}, path)
        out.append(logp)
    return out


def _run(session, feeds: dict, path: Path) -> list:
    try:
        return session.run(None, feeds)
    except Exception as e:
        raise VariantCheckError(f"{path}: fails: {str(e).strip().splitlines()[-1][:200]}") from e


def _transducer_steps(graphs: Path, meta: dict, enc: np.ndarray, labels: list[int]) -> list:
    """A transducer's prediction network over ``labels`` from the zero state, each output
    through the joint network with the matching encoder frame."""
    info = meta["transducer"]
    pred_path, joint_path = graphs / "predictor.onnx", graphs / "joint.onnx"
    pred, joint = check_session(pred_path), check_session(joint_path)
    h = c = np.zeros((info["layers"], 1, info["hidden"]), np.float32)
    out = []
    for t, label in enumerate(labels):
        dec_out, h, c = _run(pred, {"label": np.array([[label]], np.int64), "h": h, "c": c}, pred_path)
        out += [dec_out, _run(joint, {"enc_t": enc[0, t % enc.shape[1]][None], "dec_out": dec_out},
                              joint_path)[0]]
    return out


def _transducer_steps_diff(plain: Path, variant: Path, meta: dict, enc: np.ndarray, atol) -> float:
    labels = [0] + np.random.default_rng(1).integers(1, meta["transducer"]["vocab_size"], 4).tolist()
    worst, _ = compare_outputs(f"{variant / 'predictor.onnx'} + joint.onnx",
                               _transducer_steps(variant, meta, enc, labels),
                               _transducer_steps(plain, meta, enc, labels), atol)
    return worst


def _stream(graphs: Path, meta: dict, speech: np.ndarray) -> list:
    """A streaming export's encoder frames and CTC log-probs for ``speech`` fed in chunks."""
    from bench.runtime.streaming_encoder import StreamingEncoder

    enc = StreamingEncoder(graphs, meta, threads=1)
    outs = [enc.feed(speech[a:b], final) for a, b, final in stream_chunks(speech.shape[0], DEFAULT_CHUNK)]
    return [np.concatenate([o[i] for o in outs]) for i in range(2) if outs[0][i] is not None]


def _check_streaming(plain: Path, variant: Path, meta: dict, atol: float | None) -> dict:
    rng, report = np.random.default_rng(0), {}
    for secs in CHECK_SECONDS:
        speech = (rng.standard_normal(int(16000 * secs)) * 0.1).astype(np.float32)
        want = _stream(plain, meta, speech)
        try:
            got = _stream(variant, meta, speech)
        except Exception as e:
            raise VariantCheckError(f"{variant}: the streaming encoder graphs fail on a {secs} s input "
                                    f"in {DEFAULT_CHUNK}-sample chunks: {str(e).strip().splitlines()[-1][:200]}") from e
        report[f"stream_{secs}s"], _ = compare_outputs(f"{variant} streaming encoder ({secs} s)", got, want, atol)
        if want[0].shape[0]:
            ys = rng.integers(1, meta["vocab_size"] - 1, (3, 5)).astype(np.int64)
            report[f"decoder_{secs}s"], _ = compare_outputs(
                f"{variant / 'decoder.onnx'}", _decode_steps(variant, meta, ys, want[0][None]),
                _decode_steps(plain, meta, ys, want[0][None]), atol)
    return {"max_abs_diff": {k: float(f"{v:.3g}") for k, v in report.items()}, "atol": atol}


def check_variant(plain: Path, variant: Path, meta: dict, atol: float | None) -> dict:
    """Raise VariantCheckError naming the graph and the input length; else the max errors."""
    if "streaming" in meta:
        return _check_streaming(plain, variant, meta, atol)
    rng = np.random.default_rng(0)
    enc_p, enc_v = check_session(plain / "encoder.onnx"), check_session(variant / "encoder.onnx")
    report = {}
    for secs in CHECK_SECONDS:
        speech = (rng.standard_normal((1, int(16000 * secs))) * 0.1).astype(np.float32)
        want = enc_p.run(None, {"speech": speech})
        try:
            got = enc_v.run(None, {"speech": speech})
        except Exception as e:
            raise VariantCheckError(f"{variant / 'encoder.onnx'}: fails on a {secs} s input: "
                                    f"{str(e).strip().splitlines()[-1][:200]}") from e
        report[f"encoder_{secs}s"], _ = compare_outputs(f"{variant / 'encoder.onnx'} ({secs} s)",
                                                        got, want, atol)
        if "transducer" in meta:
            report[f"transducer_{secs}s"] = _transducer_steps_diff(plain, variant, meta, want[0], atol)
            continue
        if not meta.get("has_decoder", True):  # CTC-only: the encoder graph is the model
            continue
        ys = rng.integers(1, meta["vocab_size"] - 1, (3, 5)).astype(np.int64)
        report[f"decoder_{secs}s"], _ = compare_outputs(f"{variant / 'decoder.onnx'}",
                                                        _decode_steps(variant, meta, ys, want[0]),
                                                        _decode_steps(plain, meta, ys, want[0]), atol)
    return {"max_abs_diff": {k: float(f"{v:.3g}") for k, v in report.items()}, "atol": atol}

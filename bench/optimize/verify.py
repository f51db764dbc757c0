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

CHECK_SECONDS = (0.9, 3.3, 11.7)


class VariantCheckError(RuntimeError):
    """A derived graph that fails to run or disagrees with the plain export."""


def check_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # the failure is reported in our message, not ORT's log
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _compare(name: str, got: list, want: list, atol: float | None) -> float:
    worst = 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape:
            raise VariantCheckError(f"{name}: output shape {g.shape} != plain {w.shape}")
        if not np.isfinite(g).all():
            raise VariantCheckError(f"{name}: non-finite output")
        worst = max(worst, float(np.abs(g - w).max()))
    if atol is not None and worst > atol:
        raise VariantCheckError(f"{name}: differs from the plain graph by {worst:.2e} > {atol:g}")
    return worst


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


def check_variant(plain: Path, variant: Path, meta: dict, atol: float | None) -> dict:
    """Raise VariantCheckError naming the graph and the input length; else the max errors."""
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
        report[f"encoder_{secs}s"] = _compare(f"{variant / 'encoder.onnx'} ({secs} s)", got, want, atol)
        ys = rng.integers(1, meta["vocab_size"] - 1, (3, 5)).astype(np.int64)
        report[f"decoder_{secs}s"] = _compare(f"{variant / 'decoder.onnx'}",
                                              _decode_steps(variant, meta, ys, want[0]),
                                              _decode_steps(plain, meta, ys, want[0]), atol)
    return {"max_abs_diff": {k: float(f"{v:.3g}") for k, v in report.items()}, "atol": atol}

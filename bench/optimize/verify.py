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


def check_variant(plain: Path, variant: Path, meta: dict, atol: float | None) -> dict:
    """Raise VariantCheckError naming the graph and the input length; else the max errors."""
    rng = np.random.default_rng(0)
    enc_p, enc_v = check_session(plain / "encoder.onnx"), check_session(variant / "encoder.onnx")
    dec_p, dec_v = check_session(plain / "decoder.onnx"), check_session(variant / "decoder.onnx")
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
        beams, length = 3, 5
        feeds = {"ys": rng.integers(1, meta["vocab_size"] - 1, (beams, length)).astype(np.int64),
                 "cache": rng.standard_normal((meta["n_layers"], beams, length - 1, meta["d_model"])
                                              ).astype(np.float32),
                 "memory": np.repeat(want[0], beams, axis=0)}
        want_d = dec_p.run(None, feeds)
        try:
            got_d = dec_v.run(None, feeds)
        except Exception as e:
            raise VariantCheckError(f"{variant / 'decoder.onnx'}: fails: "
                                    f"{str(e).strip().splitlines()[-1][:200]}") from e
        report[f"decoder_{secs}s"] = _compare(f"{variant / 'decoder.onnx'}", got_d, want_d, atol)
    return {"max_abs_diff": {k: float(f"{v:.3g}") for k, v in report.items()}, "atol": atol}

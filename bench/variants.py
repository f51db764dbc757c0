"""The registry of variants: how each is derived (from the plain export or from another
variant) and how it runs.

Adding a variant is adding one entry here. `runtime` says which recognizer runs it:
'torch' is ESPnet's own Speech2Text, 'onnx' is bench.runtime (which never imports torch).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.families import get_family

GRAPHS = ("encoder.onnx", "decoder.onnx")  # speech-to-text exports; others name theirs in info
DERIVE_VERSION = 5  # bump when a derivation changes, so cached artifacts are rebuilt
# 3: onnx-fused runs the key/value-cached decoder step; onnx-int8 quantizes onnx-fused; onnx-fp16
# 4: static int8 after ORT's symbolic shape inference (it failed on every fused TTS graph but one)
# 5: fusion under fixed hash seeds, the fewest-node candidate that passes its check


def _graphs(info: dict) -> dict[str, str]:
    """The plain export's graphs: {name in the variant: file in the export}."""
    return {g: g for g in info.get("graphs", GRAPHS)}


def _optimised_graphs(info: dict) -> dict[str, str]:
    """The plain graphs, with the key/value-cached decoder step where the export has one."""
    graphs = _graphs(info)
    if "graphs" in info.get("kv_decoder", {}):
        graphs.update({"decoder.onnx": "decoder_kv.onnx", "cross_kv.onnx": "cross_kv.onnx"})
    return graphs


def _graphs_in(src: Path) -> dict[str, str]:
    """Every graph of a derived variant (its folder holds only what it runs)."""
    return {p.name: p.name for p in sorted(src.glob("*.onnx"))}


def check_variant(src: Path, dst: Path, info: dict, atol: float | None) -> dict:
    """Run the derived graphs against the plain export with the check of the card's family."""
    return get_family(info.get("family")).check_variant(src, dst, info, atol)


def _copy_plain(src: Path, dst: Path, info: dict) -> dict:
    import shutil  # only to build: the memory child loads variants, never builds them

    for g in _graphs(info):
        shutil.copyfile(src / g, dst / g)
    return {"graph_optimization": "online only: the session's level (bench/runtime/onnx_asr.py OPTIMIZATION)"}


def _fuse(src: Path, dst: Path, info: dict) -> dict:
    """The cached decoder step, then fusion graph by graph, each checked against the plain
    export. The optimizer's result depends on the hash seed (bench/optimize/fusion.py), so each
    graph gets one candidate a seed; the one with fewest nodes that passes the check is kept,
    failing all of them one fused without shape inference, failing that the graph as it was."""
    import shutil

    from bench.optimize.fusion import HASH_SEEDS, fuse_candidates
    from bench.optimize.verify import VariantCheckError

    graphs = _optimised_graphs(info)
    for g, f in graphs.items():  # start from valid, unfused graphs
        shutil.copyfile(src / f, dst / g)
    heads, width = info["num_heads"], info["d_model"]
    candidates, errors = fuse_candidates({g: src / f for g, f in graphs.items()}, dst, heads, width)
    settings, check = {}, None
    rejected = [f"{g}, {e}" for g in graphs for e in errors[g]]

    def trials(g: str):
        yield from candidates[g]
        found, errs = fuse_candidates({g: src / graphs[g]}, dst, heads, width, shape_inference=False,
                                      seeds=HASH_SEEDS[:1])
        rejected.extend(f"{g}, {e}" for e in errs[g])
        yield from found[g]

    for g in graphs:
        for path, trial in trials(g):
            (dst / g).rename(dst / f"{g}.kept")
            path.rename(dst / g)
            try:
                check = check_variant(src, dst, info, atol=1e-3)
            except VariantCheckError as e:
                rejected.append(f"{g}, hash seed {trial['hash_seed']}, "
                                f"shape_inference={trial['shape_inference']}: {e}")
                (dst / f"{g}.kept").replace(dst / g)
                continue
            (dst / f"{g}.kept").unlink()
            settings[g] = trial
            break
        else:
            settings[g] = {"fused": False, "reason": "every fusion setting broke it (see rejected)"}
    for leftover in dst.glob("*.seed*"):  # candidates not needed
        leftover.unlink()
    if check is None:
        check = check_variant(src, dst, info, atol=1e-3)  # the unfused graphs must pass, at least
    if "kv_decoder" in info and "decoder.onnx" in graphs:  # speech-to-text with a decoder
        settings["decoder_step"] = ("keys and values cached, cross-attention's once an utterance"
                                    if graphs["decoder.onnx"] == "decoder_kv.onnx" else
                                    "plain: " + info["kv_decoder"].get("unsupported", ""))
    return {**settings, "check": check, "rejected": rejected}


def _quantize_int8(src: Path, dst: Path, info: dict, settings: dict | None = None) -> dict:
    from bench.optimize.quantize import quantize

    # calibrated static convolutions only in a family whose onnx-int8 has them: a study variant
    # is handed its family's dev feeds whatever the family
    calibrated = get_family(info.get("family")).int8_calibrated
    calibration = info.get("calibration_feeds", {}) if calibrated else {}
    records = {g: quantize(src / f, dst / g, settings, calibration.get(g))
               for g, f in _graphs_in(src).items()}
    # int8's deviation is a measured figure (agreement), so only runnability is checked here
    return {**records, "check": check_variant(src, dst, info, atol=None)}


def _quantize_int8_convs(src: Path, dst: Path, info: dict) -> dict:
    """onnx-int8, and the speech-input graphs' convolutions in dynamic int8 with a weight scale
    per output channel (bench/optimize/conv_integer.py)."""
    from bench.optimize.conv_integer import SETTINGS

    return _quantize_int8(src, dst, info, {"dynamic_convs": SETTINGS})


def _static_int8(name: str):
    """Static int8 (weights and activations, QDQ) as ``STATIC_VARIANTS[name]`` sets it, with
    activation ranges from the card's dev data run through the base variant
    (bench/optimize/static_int8.py). Besides its settings, the size of the float base stored
    the same way, for a like-for-like size ratio."""
    def derive(src: Path, dst: Path, info: dict) -> dict:
        from bench.optimize.static_int8 import STATIC_VARIANTS, quantize_static_graph
        from bench.optimize.storage import stored_alike_bytes

        feeds = info.get("calibration_feeds") or {}
        settings = {}
        for g in _graphs_in(src):
            if not feeds.get(g):
                raise ValueError(f"no calibration data for {g}: static int8 needs the card's dev "
                                 f"split (a corpus card) or its own dev sentences")
            settings[g] = quantize_static_graph(src / g, dst / g, feeds[g], STATIC_VARIANTS[name])
        alike = sum(stored_alike_bytes(src / g) for g in _graphs_in(src))
        return {**settings, "base_stored_alike_mb": alike / 2**20,
                "check": check_variant(src, dst, info, atol=None)}
    return derive


def _fp16(src: Path, dst: Path, info: dict) -> dict:
    from bench.optimize.fp16 import to_fp16

    settings = {g: to_fp16(src / f, dst / g) for g, f in _graphs_in(src).items()}
    # half precision moves log-probs by ~1e-2; a broken conversion moves them by far more
    return {**settings, "check": check_variant(src, dst, info, atol=FP16_ATOL)}


FP16_ATOL = 0.1


@dataclass(frozen=True)
class Variant:
    name: str
    runtime: str  # "torch" | "onnx"
    description: str
    derive: Callable[[Path, Path, dict], dict] | None = None
    devices: tuple[str, ...] = field(default=("cpu", "cuda"))
    base: str | None = None  # derived from this variant's graphs (None: the plain export)
    # a study's variant (bench/studies.py) runs only when asked for, and is derived then
    study: str | None = None


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("pytorch", "torch", "ESPnet Speech2Text in PyTorch eager mode (the reference)"),
    Variant("onnx", "onnx", "plain export (ESPnet's decoding step as it is), ORT's default "
            "online optimisations", _copy_plain),
    Variant("onnx-fused", "onnx", "decoder step with cached keys and values, offline "
            "transformer-optimizer fusion", _fuse),
    Variant("onnx-int8", "onnx", "onnx-fused with dynamic int8: MatMul-only, per-channel weights",
            _quantize_int8, base="onnx-fused"),
    Variant("onnx-fp16", "onnx", "onnx-fused in float16 (float32 at the graph boundary)", _fp16,
            devices=("cuda",), base="onnx-fused"),
    Variant("onnx-int8-static", "onnx", "onnx-fused with static int8, weights and activations: "
            "MatMul (attention products included), Gemm, Conv, ConvTranspose, Gather; QDQ; "
            "ranges from the card's dev data; stored compactly (STFT basis from its tables, short names)",
            _static_int8("onnx-int8-static"),
            devices=("cpu",), base="onnx-fused", study="int8"),
    Variant("onnx-int8-conv", "onnx", "onnx-fused with static int8 convolutions only (Conv, "
            "ConvTranspose; QDQ; ranges from the card's dev data); products stay float; stored "
            "compactly as onnx-int8-static",
            _static_int8("onnx-int8-conv"), devices=("cpu",), base="onnx-fused", study="int8"),
    Variant("onnx-int8-convs", "onnx", "onnx-int8 with the speech-input graphs' convolutions over "
            "16+ channels in dynamic int8 too (ConvInteger, a weight scale per output channel)",
            _quantize_int8_convs, devices=("cpu",), base="onnx-fused", study="int8"),
]}
DEFAULT_VARIANTS = [name for name, v in VARIANTS.items() if v.study is None]
REFERENCE = "pytorch"


def device_reason(variant: str, device: str) -> str | None:
    """None if the variant runs on the device, else why it is not measured there."""
    v = get_variant(variant)
    if device in v.devices:
        return None
    return f"{variant} is measured on {', '.join(v.devices)} only, not on {device}"


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
    return VARIANTS[name]

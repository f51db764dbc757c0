"""The artifact cache: one folder per card, keyed by a hash of everything that shapes it.

card content + exporter version + opset + library versions + variant settings. A re-run
reuses the folder; a changed input gives a new key. Built with bench.atomic.build_once, so
a killed job or two concurrent jobs never leave a half-written artifact behind.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bench.atomic import build_once
from bench.families import family_of
from bench.paths import cache_dir
from bench.variants import DEFAULT_VARIANTS, VARIANTS, get_variant

if TYPE_CHECKING:  # the memory child reads artifacts without the card registry
    from bench.zoo.cards import Card

COMPLETE = "artifact.json"


def artifact_key(card: Card) -> str:
    import hashlib
    from importlib.metadata import version

    from bench.optimize.calibration import CALIBRATION
    from bench.optimize.quantize import DEFAULT_SETTINGS
    from bench.variants import DERIVE_VERSION

    exporter, opset = family_of(card.task).exporter_version()
    parts = {"card": card.content_hash(), "exporter": exporter, "opset": opset,
             "int8": DEFAULT_SETTINGS, "calibration": CALIBRATION, "variants": sorted(DEFAULT_VARIANTS),
             "derive": DERIVE_VERSION,
             "libs": {p: version(p) for p in ("torch", "espnet", "onnx", "onnxruntime")}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def ensure_artifact(card: Card, variant: str | None = None) -> Path:
    """The card's artifact folder, built (model, export, every default variant) if not cached;
    with ``variant``, that variant too if it is a study's (derived on first use)."""
    final = cache_dir() / f"{card.name}-{artifact_key(card)}"
    artifact = build_once(final, lambda tmp: _build(card, tmp, final.name),
                          lambda path: (path / COMPLETE).exists())
    if variant is not None:
        ensure_variant(card, artifact, variant)
    return artifact


def _build(card: Card, out: Path, key: str) -> None:
    import time

    from bench.zoo.build import build_exp_dir
    from bench.zoo.build_tasks import espnet_task_name

    family, espnet_task = family_of(card.task), espnet_task_name(card)
    t0 = time.perf_counter()
    build_exp_dir(card, out / "exp")
    t1 = time.perf_counter()
    meta, info = family.export(card, out / "exp", out / "onnx", espnet_task)
    info["family"] = family.name
    # inputs for static int8, from the card's dev data (in memory only: not in artifact.json)
    info["calibration_feeds"] = family.calibration_feeds(card, out, meta)
    t2 = time.perf_counter()
    variants = {}
    for v in VARIANTS.values():
        if v.derive is None or v.study:  # a study's variant is derived when first asked for
            continue
        vdir = out / "variants" / v.name
        vdir.mkdir(parents=True)
        t = time.perf_counter()
        if v.base is not None and "error" in variants.get(v.base, {}):
            variants[v.name] = {"error": f"its base variant {v.base} could not be derived"}
            continue
        src = out / "onnx" if v.base is None else out / "variants" / v.base
        try:
            settings = v.derive(src, vdir, info)
        except Exception as e:  # one broken variant must not take the others down
            variants[v.name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        variants[v.name] = {"settings": settings, "derive_s": round(time.perf_counter() - t, 2),
                            "base": v.base or "the plain export"}
    doc = {"card": card.name, "key": key, "family": family.name, "espnet_task": espnet_task,
           "export": meta, "variants": variants,
           "build_s": round(t1 - t0, 2), "export_s": round(t2 - t1, 2),
           "built_by": {"pid": os.getpid(), "host": os.uname().nodename}}
    (out / COMPLETE).write_text(json.dumps(doc, indent=2))


def artifact_info(artifact: Path) -> dict:
    return json.loads((artifact / COMPLETE).read_text())


VARIANT_RECORD = "variant.json"  # a study variant's own record, in its folder
STUDY_DERIVE_VERSION = 3  # bump when a study variant's derivation changes in code


def _study_key() -> dict:
    """What a study variant's derivation depends on besides the artifact: a change rebuilds it."""
    from bench.optimize.calibration import CALIBRATION, FEEDS_PER_GRAPH
    from bench.optimize.conv_integer import SETTINGS as DYNAMIC_CONVS
    from bench.optimize.static_int8 import STATIC_SETTINGS, STATIC_VARIANTS

    return {"derive": STUDY_DERIVE_VERSION, "static": STATIC_SETTINGS, "static_variants": STATIC_VARIANTS,
            "dynamic_convs": DYNAMIC_CONVS, "calibration": CALIBRATION,
            "feeds_per_graph": FEEDS_PER_GRAPH}


def ensure_variant(card: Card, artifact: Path, name: str) -> None:
    """Derive a study's variant into the artifact (once; cached like the artifact). Its
    settings, or why it could not be derived, go to its folder's variant.json; a failure is
    not kept as done (the next run tries again: calibration data may be there by then)."""
    v = get_variant(name)
    if not v.study or v.derive is None:
        return

    def complete(path: Path) -> bool:
        record = path / VARIANT_RECORD
        if not record.exists():
            return False
        done = json.loads(record.read_text())
        return done.get("key") == _study_key() and "error" not in done

    def build(tmp: Path) -> None:
        import time

        from bench.runtime.onnx_asr import load_export_meta

        info = artifact_info(artifact)
        base_error = info["variants"].get(v.base, {}).get("error") if v.base else None
        t = time.perf_counter()
        src = variant_dir(artifact, v.base) if v.base else artifact / "onnx"
        if base_error:
            record = {"error": f"its base variant {v.base} could not be derived"}
        else:
            try:
                meta = load_export_meta(artifact)
                feeds = family_of(card.task).dev_feeds(card, artifact, meta, src)
                settings = v.derive(src, tmp, {**info["export"], "family": info["family"],
                                               "calibration_feeds": feeds})
                record = {"settings": settings, "base": v.base or "the plain export"}
            except Exception as e:  # recorded: the variant's cases report it, others run
                for f in tmp.glob("*.onnx"):
                    f.unlink()
                record = {"error": f"{type(e).__name__}: {e}"}
        record.update(key=_study_key(), derive_s=round(time.perf_counter() - t, 2))
        (tmp / VARIANT_RECORD).write_text(json.dumps(record, indent=2, default=str))

    build_once(variant_dir(artifact, name), build, complete)


def variant_record(artifact: Path, name: str) -> dict:
    """{settings, base} of a derived variant, or {error}; {} for the reference."""
    own = variant_dir(artifact, name) / VARIANT_RECORD
    if own.exists():
        return json.loads(own.read_text())
    return artifact_info(artifact)["variants"].get(name, {})


def variant_dir(artifact: Path, variant: str) -> Path:
    return artifact / "variants" / variant

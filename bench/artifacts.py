"""The artifact cache: one folder per card, keyed by a hash of everything that shapes it.

card content + exporter version + opset + library versions + variant settings. A re-run
reuses the folder; a changed input gives a new key. A folder is built under a temporary
name and renamed into place only when complete, under a lock, so a killed job or two
concurrent jobs never leave a half-written artifact behind.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import yaml

from bench.paths import cache_dir
from bench.tasks import get_task
from bench.variants import VARIANTS
from bench.zoo.cards import Card

COMPLETE = "artifact.json"


def exporter_version(card: Card) -> tuple[str, int]:
    """(exporter version, opset) of the exporter that handles the card's task family."""
    if get_task(card.task).family == "text2speech":
        from bench.export.tts import EXPORTER_VERSION, OPSET
    else:
        from bench.export.asr import EXPORTER_VERSION, OPSET
    return EXPORTER_VERSION, OPSET


def artifact_key(card: Card) -> str:
    from importlib.metadata import version

    from bench.optimize.calibration import CALIBRATION
    from bench.optimize.quantize import DEFAULT_SETTINGS
    from bench.variants import DERIVE_VERSION

    exporter, opset = exporter_version(card)
    parts = {"card": card.content_hash(), "exporter": exporter, "opset": opset,
             "int8": DEFAULT_SETTINGS, "calibration": CALIBRATION, "variants": sorted(VARIANTS),
             "derive": DERIVE_VERSION,
             "libs": {p: version(p) for p in ("torch", "espnet", "onnx", "onnxruntime")}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


@contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_artifact(card: Card) -> Path:
    """The card's artifact folder, built (model, export, every variant) if not cached."""
    root = cache_dir()
    final = root / f"{card.name}-{artifact_key(card)}"
    if (final / COMPLETE).exists():
        return final
    with file_lock(root / f".{final.name}.lock"):
        if (final / COMPLETE).exists():  # another process built it while we waited
            return final
        # Builders hold this lock, so any temporary folder of this key left now is from a
        # killed build (SIGKILL, power loss): nobody will finish it.
        for stale in root.glob(f".{final.name}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
        try:
            _build(card, tmp, final.name)
            if final.exists():  # a stale, incomplete folder from a killed run
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _build(card: Card, out: Path, key: str) -> None:
    import time

    from bench.zoo.build import build_exp_dir, load_model
    from bench.zoo.build_tasks import espnet_task_name

    family, espnet_task = get_task(card.task).family, espnet_task_name(card)
    t0 = time.perf_counter()
    build_exp_dir(card, out / "exp")
    t1 = time.perf_counter()
    if family == "text2speech":
        from bench.export.tts import export_tts

        meta = export_tts(out / "exp", out / "onnx", card.decode)
        info = dict(meta)
    else:
        from bench.export.asr import export_asr

        meta = export_asr(load_model(out / "exp", espnet_task), out / "onnx")
        cfg = yaml.safe_load((out / "exp" / "config.yaml").read_text())
        info = {**meta, "num_heads": cfg["encoder_conf"].get("attention_heads", 4)}
    # inputs for static int8, from the card's dev data (in memory only: not in artifact.json)
    from bench.optimize.calibration import calibration_feeds

    info["calibration_feeds"] = calibration_feeds(card, out, meta)
    t2 = time.perf_counter()
    variants = {}
    for v in VARIANTS.values():
        if v.derive is None:
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
    doc = {"card": card.name, "key": key, "family": family, "espnet_task": espnet_task,
           "export": meta, "variants": variants,
           "build_s": round(t1 - t0, 2), "export_s": round(t2 - t1, 2),
           "built_by": {"pid": os.getpid(), "host": os.uname().nodename}}
    (out / COMPLETE).write_text(json.dumps(doc, indent=2))


def artifact_info(artifact: Path) -> dict:
    return json.loads((artifact / COMPLETE).read_text())


def variant_dir(artifact: Path, variant: str) -> Path:
    return artifact / "variants" / variant

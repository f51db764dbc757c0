"""The environment's lock: every installed package and its version (requirements.lock).

pyproject.toml pins the core (torch, espnet, onnx, onnxruntime) and lets the rest float;
a float moves figures (pip's own version moved PyTorch's peak RSS by 110 MB), so `./run`
and tox install the lock, and each results document records which lock it ran under and
any package that differs from it. `./run lock` writes the file anew from a fresh install
of pyproject.toml.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import re
from pathlib import Path

from bench.paths import REPO_ROOT

LOCK_FILE = REPO_ROOT / "requirements.lock"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


class LockError(ValueError):
    """A lock file that cannot be read: names the file, the line and what is wrong."""


def normalize(name: str) -> str:
    """PEP 503's form of a distribution name, so `ml_dtypes` and `ml-dtypes` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = LOCK_FILE) -> dict[str, str]:
    """{normalized name: version} of a lock written as `name==version` lines."""
    pins: dict[str, str] = {}
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _PIN.match(line)
        if not m:
            raise LockError(f"{path}:{n}: expected 'name==version', got {raw.strip()!r}")
        name = normalize(m.group(1))
        if name in pins:
            raise LockError(f"{path}:{n}: {m.group(1)} is pinned twice")
        pins[name] = m.group(2)
    return pins


def installed_versions() -> dict[str, str]:
    return {normalize(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
            if d.metadata["Name"]}


def lock_status(path: Path = LOCK_FILE, installed: dict[str, str] | None = None) -> dict | None:
    """What a results document records: the lock's hash and every locked package whose
    installed version differs (or is missing). None without a lock file (an install that
    is not this repository's checkout)."""
    path = Path(path)
    if not path.is_file():
        return None
    pins = read_lock(path)
    have = installed_versions() if installed is None else installed
    # onnxruntime-gpu stands in for onnxruntime on GPU machines (./run, BENCH_GPU=1)
    swapped = {"onnxruntime": "onnxruntime-gpu"}
    differs = {}
    for name, version in sorted(pins.items()):
        got = have.get(name) or have.get(swapped.get(name, ""))
        if got != version:
            differs[name] = {"locked": version, "installed": got}
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "packages": len(pins), "differs": differs}

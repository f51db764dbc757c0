"""The environments of `python -m bench compare`: this one (requirements.lock), or it with a
few packages at other versions (`--head-env "onnxruntime==1.31.1 onnx==1.23.2"`).

A candidate environment is a venv of its own under ``.cache/envs/<hash>``, built once and
reused: the pinned packages installed into it (without their dependencies), and a ``.pth``
file that puts this environment's site-packages after its own, so everything not pinned is
the very same installed files (torch and its CUDA wheels are not copied, several GB). `pip
check` then refuses a candidate whose pins need other versions of the shared packages, and
each pin is read back from the built venv before it is used.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

from bench.atomic import build_once
from bench.lock import normalize
from bench.paths import REPO_ROOT

PROJECT = "espnet-onnx-bench"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")
_VERSIONS = ("import importlib.metadata as m, json, sys; "
             "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")


class EnvError(ValueError):
    """A candidate environment that cannot be named or built: says which pin and why."""


def parse_pins(text: str, option: str = "--head-env") -> dict[str, str]:
    """{normalized name: version} of ``"a==1 b==2"`` (spaces or commas); EnvError names a bad one."""
    pins: dict[str, str] = {}
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        m = _PIN.match(item)
        if not m:
            raise EnvError(f"{option}: {item!r} is not 'package==version'")
        pins[normalize(m.group(1))] = m.group(2)
    if not pins:
        raise EnvError(f"{option}: no 'package==version' given")
    return pins


def envs_dir(repo: Path = REPO_ROOT) -> Path:
    return repo / ".cache" / "envs"


def _site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def installed(python: str, names) -> dict[str, str]:
    """The versions ``python``'s environment reports for ``names``."""
    p = subprocess.run([python, "-c", _VERSIONS, *names], capture_output=True, text=True)
    if p.returncode:
        raise EnvError(f"{python}: cannot read installed versions: {p.stderr.strip()[-500:]}")
    return json.loads(p.stdout)


def _complete(path: Path, pins: dict[str, str]) -> bool:
    python = path / "bin" / "python"
    if not python.exists():
        return False
    try:
        return installed(str(python), pins) == pins
    except (EnvError, ValueError):
        return False


def candidate_python(pins: dict[str, str], repo: Path = REPO_ROOT) -> str:
    """The interpreter of this environment with ``pins`` installed over it, built if new."""
    base_sites = [p for p in site.getsitepackages() if Path(p).is_dir()]
    key = hashlib.sha256(json.dumps({"base": sys.prefix, "sites": base_sites, "pins": sorted(pins.items())})
                         .encode()).hexdigest()[:16]
    envs_dir(repo).mkdir(parents=True, exist_ok=True)

    def build(tmp: Path) -> None:
        final = envs_dir(repo) / key  # venvs hold absolute paths: build where it will live
        try:
            _build_at(final)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        tmp.rmdir()
        final.rename(tmp)  # build_once moves it back into place: a complete env or none

    def _build_at(final: Path) -> None:
        subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip",
                        str(final)], check=True, capture_output=True)
        own = _site_packages(final)
        # after the venv's own site-packages: a pinned package here shadows the shared one
        (own / "zz-bench-base-environment.pth").write_text("".join(f"{s}\n" for s in base_sites))
        pip = [str(final / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        p = subprocess.run([*pip, "install", "--quiet", "--no-deps", "--target", str(own), "--upgrade",
                            *(f"{n}=={v}" for n, v in pins.items())], capture_output=True, text=True)
        if p.returncode:
            raise EnvError(f"cannot install {' '.join(f'{n}=={v}' for n, v in pins.items())}: "
                           f"{p.stderr.strip()[-800:]}")
        p = subprocess.run([*pip, "check"], capture_output=True, text=True)
        # the project's own pins are what a candidate changes on purpose; anything else is broken
        broken = [line for line in p.stdout.splitlines()
                  if line.strip() and not line.startswith(("No broken", f"{PROJECT} "))]
        if broken:
            raise EnvError("the candidate's pins do not fit the rest of the environment (pip check): "
                           + "; ".join(broken)[-800:])
        got = installed(str(final / "bin" / "python"), pins)
        if got != pins:
            raise EnvError(f"the candidate environment reports {got}, not the pins {pins}")

    return str(build_once(envs_dir(repo) / key, build, lambda p: _complete(p, pins)) / "bin" / "python")

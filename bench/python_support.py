"""Which Pythons the lock installs on, read off the registry without installing anything.

For each `name==version` of requirements.lock, the registry's files of that release (PEP 691
JSON) are matched against a CPython X.Y on this platform: a wheel whose tags it accepts, or
else a source distribution (which must then build there; that is not tried). A release whose
Requires-Python excludes X.Y does not count. This is what `requires-python` in pyproject.toml
may claim; it says nothing about whether the code runs there (README says what was run).
"""
from __future__ import annotations

import json
import platform
import urllib.request
from dataclasses import dataclass
from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import compatible_tags, cpython_tags, platform_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

INDEX = "https://pypi.org/simple"
SDIST_EXTENSIONS = (".tar.gz", ".zip", ".tar.bz2")


@dataclass
class Availability:
    package: str
    version: str
    how: str  # "wheel", "sdist" or "none"
    detail: str  # the file that installs, or why none does


@lru_cache(maxsize=None)  # the same few Pythons for every one of the lock's packages
def _python_tags(python: tuple[int, int]) -> frozenset:
    plats = list(platform_tags())
    return frozenset(cpython_tags(python, platforms=plats)) | frozenset(compatible_tags(python, platforms=plats))


def _admits(requires_python: str | None, python: tuple[int, int]) -> bool:
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(f"{python[0]}.{python[1]}.0", prereleases=True)
    except InvalidSpecifier:
        return True  # an unreadable constraint; pip ignores those too


def release_files(version: str, files: list[dict]) -> list[dict]:
    """The files of one release among a project's (wheels by their parsed version)."""
    out = []
    for f in files:
        fn = f["filename"]
        if fn.endswith(".whl"):
            try:
                if str(parse_wheel_filename(fn)[1]) == version:
                    out.append(f)
            except InvalidWheelFilename:
                continue
        else:
            for ext in SDIST_EXTENSIONS:
                if fn.endswith(ext) and fn[: -len(ext)].rsplit("-", 1)[-1] == version:
                    out.append(f)
    return out


def availability(name: str, version: str, files: list[dict], python: tuple[int, int]) -> Availability:
    """How `name==version` installs on CPython `python` here, from the release's files."""
    tags = _python_tags(python)
    mine = [f for f in release_files(version, files) if not f.get("yanked")]
    if not mine:
        return Availability(name, version, "none", "no files of this version on the registry")
    admitted = [f for f in mine if _admits(f.get("requires-python"), python)]
    if not admitted:
        return Availability(name, version, "none", f"Requires-Python {mine[0].get('requires-python')}")
    for f in admitted:
        if f["filename"].endswith(".whl") and set(parse_wheel_filename(f["filename"])[3]) & tags:
            return Availability(name, version, "wheel", f["filename"])
    sdists = [f for f in admitted if not f["filename"].endswith(".whl")]
    if sdists:
        return Availability(name, version, "sdist", sdists[0]["filename"])
    return Availability(name, version, "none", f"no wheel for cp{python[0]}{python[1]} "
                        f"{platform.machine()} among {len(admitted)}")


def project_files(name: str, index: str = INDEX) -> list[dict]:
    req = urllib.request.Request(f"{index}/{name}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["files"]


def check(pins: dict[str, str], pythons: list[tuple[int, int]], fetch=project_files) -> dict:
    """{python: [Availability]} for every pin and every Python."""
    files = {name: fetch(name) for name in sorted(pins)}
    return {p: [availability(n, pins[n], files[n], p) for n in sorted(pins)] for p in pythons}

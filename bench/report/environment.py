"""What differs between a run's environment and the one its baselines were measured in.

A speedup that moved after a library upgrade or on a machine with other ISA flags is a
different question from a regression in the export; the report puts the differences beside
the verdict so the reader can tell which.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.baseline import BaselineError, baseline_path, load_baselines
from bench.results import run_environment

__all__ = ["BaselineEnvironment", "baseline_environment", "environment_diff"]


@dataclass
class BaselineEnvironment:
    """The baseline file of a machine class as the report sees it: where it came from, its
    environment (None when it records none) and a sentence when something is missing."""
    created_from: dict | None
    environment: dict | None
    problem: str | None


def baseline_environment(baselines_dir: str | Path, machine_class: str) -> BaselineEnvironment:
    path = baseline_path(baselines_dir, machine_class)
    if not path.exists():
        return BaselineEnvironment(None, None, f"no baseline file for this machine class ({path})")
    try:
        doc = load_baselines(path)
    except BaselineError as e:
        return BaselineEnvironment(None, None, f"baseline file unreadable: {e}")
    created = doc.get("created_from") or None
    env = (created or {}).get("environment")
    if not isinstance(env, dict):
        return BaselineEnvironment(created, None, f"{path} records no environment (written before "
                                   "baselines recorded one; the next baseline update adds it)")
    return BaselineEnvironment(created, env, None)


def environment_diff(run: dict, base_env: dict) -> list[tuple[str, Any, Any]]:
    """``(field, baseline value, this run's value)`` for each field that differs."""
    env = run_environment(run)
    out = []
    for k in sorted(set(env) | set(base_env)):
        a, b = base_env.get(k, "(absent)"), env.get(k, "(absent)")
        if a != b:
            out.append((k, a, b))
    return out

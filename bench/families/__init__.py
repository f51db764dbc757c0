"""Task families: what a model takes in and gives out, and everything that follows from it.

A family (bench/families/base.py) answers, for the cards of its tasks: how to export the
ESPnet model, which static-int8 calibration data it needs, how to check a derived graph
against the plain export, which runtime runs a variant, what the memory child imports
before its idle reading, and how two runs' outputs are compared. The rest of the harness
asks the card's family instead of testing family names. Adding a family (a transducer, a
streaming model) is a new module here and one line in FAMILIES.
"""
from __future__ import annotations

from importlib import import_module

from bench.families.base import Family
from bench.tasks import get_task

# name -> module defining FAMILY; imported when first asked for (each pulls in its exporter)
FAMILIES = {
    "speech2text": "bench.families.speech2text",  # speech in, tokens out: ASR, SLU, ST
    "text2speech": "bench.families.text2speech",  # phonemes in, speech out: TTS
}
DEFAULT = "speech2text"  # artifacts built before artifact.json named its family


def get_family(name: str | None) -> Family:
    name = name or DEFAULT
    if name not in FAMILIES:
        raise KeyError(f"unknown task family {name!r} (known: {', '.join(FAMILIES)})")
    return import_module(FAMILIES[name]).FAMILY


def family_of(task: str) -> Family:
    """The family of a task name (bench.tasks.TASKS says which)."""
    return get_family(get_task(task).family)

"""What a figure was measured on: the evaluation data, the decode settings, the variant's
definition. A baseline entry is keyed by these, so a run on other speech, with another beam,
or of a variant that now means something else is never judged by another's figures.

Not part of the identity, on purpose: the model's weights and the exporter's code. A changed
checkpoint or exporter is exactly what the gate must judge against the previous figures.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["data_identity", "decode_identity", "variant_identity", "case_identity",
           "baseline_key", "UNIDENTIFIED"]

UNIDENTIFIED = "unidentified"  # a results case written before cases carried an identity


def _short(h: "hashlib._Hash") -> str:
    return h.hexdigest()[:16]


def data_identity(items: Iterable[Any]) -> str:
    """A content hash of the evaluation set as the model sees it: each item's id, reference
    text and input (the waveform's samples after resampling, or the TTS phoneme string)."""
    h = hashlib.sha256()
    for u in items:
        h.update(str(u.id).encode() + b"\0" + str(u.text).encode() + b"\0")
        x = u.input
        if isinstance(x, str):
            h.update(b"s" + x.encode())
        else:
            a = np.ascontiguousarray(x)
            h.update(f"a{a.dtype.str}{a.shape}".encode() + a.tobytes())
        h.update(b"\1")
    return _short(h)


def decode_identity(decode: Mapping[str, Any]) -> str:
    return _short(hashlib.sha256(json.dumps(decode, sort_keys=True, default=str).encode()))


def variant_identity(variant: str) -> str:
    """The variant's definition as the registry states it (runtime, description, base), and
    the reference's, since a speedup is measured against it. Change a variant's description
    when what it is changes: its baselines then start over instead of failing."""
    from bench.variants import REFERENCE, get_variant

    def spec(name: str) -> dict:
        v = get_variant(name)
        return {"name": v.name, "runtime": v.runtime, "description": v.description, "base": v.base}

    return _short(hashlib.sha256(json.dumps([spec(variant), spec(REFERENCE)],
                                            sort_keys=True).encode()))


def case_identity(items: list, decode: Mapping[str, Any], variant: str,
                  data_dir: str | None, data: str | None = None) -> dict:
    """``data``: the items' :func:`data_identity`, when the caller already has it."""
    ident = {"data": data or data_identity(items), "n_items": len(items),
             "data_source": data_dir or "card", "decode": decode_identity(decode),
             "variant": variant_identity(variant)}
    ident["key"] = _short(hashlib.sha256(
        "/".join(ident[k] for k in ("data", "decode", "variant")).encode()))[:12]
    return ident


def baseline_key(case: Mapping[str, Any]) -> str:
    """``task/card/variant/device@identity``: a case's key in baselines and the report."""
    key = ((case.get("identity") or {}).get("key")) or UNIDENTIFIED
    return f"{case['task']}/{case['card']}/{case['variant']}/{case['device']}@{key}"

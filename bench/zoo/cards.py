"""Model cards: one YAML file says what model to build, how to decode it and on what data.

A card is plain data. Building (torch) and exporting live elsewhere, so reading a card
never imports torch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CARDS_DIR = Path(__file__).resolve().parent / "cards"
TIERS = ("smoke", "accuracy", "paper")
REQUIRED = ("name", "task", "tier", "model", "decode")


class CardError(ValueError):
    """A card that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Card:
    name: str
    task: str
    tier: str
    model: dict[str, Any]
    decode: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    description: str = ""
    path: str = ""

    def content_hash(self) -> str:
        """Hash of everything that changes the built model or its export."""
        blob = json.dumps({"task": self.task, "model": self.model, "decode": self.decode},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_card(name_or_path: str | Path) -> Card:
    """Load a built-in card by name, or any card file by path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = CARDS_DIR / f"{name_or_path}.yaml"
        if not p.exists():
            known = ", ".join(c.name for c in list_cards())
            raise CardError(f"no built-in card named {name_or_path!r} (known: {known})")
    if not p.exists():
        raise CardError(f"{p}: card file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise CardError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise CardError(f"{p}: a card must be a mapping, got {type(raw).__name__}")
    for key in REQUIRED:
        if key not in raw:
            raise CardError(f"{p}: missing field {key!r}")
    if raw["tier"] not in TIERS:
        raise CardError(f"{p}: field 'tier' is {raw['tier']!r}, expected one of {TIERS}")
    known = set(Card.__dataclass_fields__) - {"path"}
    unknown = set(raw) - known
    if unknown:
        raise CardError(f"{p}: unknown field(s) {sorted(unknown)}")
    return Card(path=str(p), **raw)


def list_cards(tiers: str | tuple[str, ...] = TIERS, task: str | None = None) -> list[Card]:
    """Built-in cards whose tier is in `tiers` ('all' means every tier)."""
    if isinstance(tiers, str):
        tiers = TIERS if tiers == "all" else tuple(t.strip() for t in tiers.split(","))
    cards = [load_card(p) for p in sorted(CARDS_DIR.glob("*.yaml"))]
    return [c for c in cards if c.tier in tiers and (task is None or c.task == task)]

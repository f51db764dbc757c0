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
    train: dict[str, Any] = field(default_factory=dict)  # how `bench zoo train` made the weights
    main_job: bool = False  # run by the main job (`--tier main`, the default), not only nightly
    source: str = ""
    description: str = ""
    path: str = ""

    @property
    def random_weights(self) -> bool:
        """Seeded random weights (model.weights 'random:SEED', the default): speed and
        agreement mean something, a score against references does not."""
        return str(self.model.get("weights", "random:0")).startswith("random:")

    def content_hash(self) -> str:
        """Hash of everything that changes the built model or its export."""
        blob = json.dumps({"task": self.task, "model": self.model, "decode": self.decode},
                          sort_keys=True)
        h = hashlib.sha256(blob.encode())
        for p in self.referenced_files():  # a retrained checkpoint keeps its path, not its bytes
            h.update(p.read_bytes())
        return h.hexdigest()[:16]

    def referenced_files(self) -> list[Path]:
        """Files of the card's own folder that shape the model: weights, stats, token files."""
        rels = [str(v).split(":", 1)[1] for v in (self.model.get("weights"), self.model.get("normalize_stats"))
                if isinstance(v, str) and v.startswith("file:")]
        for key in ("tokens", "src_tokens"):
            tokens = self.model.get(key) or {}
            if tokens.get("kind") == "files":
                rels += [tokens[k] for k in ("token_list", "bpemodel") if tokens.get(k)]
        base = Path(self.path).parent
        return [p if p.is_absolute() else base / p for p in map(Path, rels) if (base / p).exists()]


def card_file(card: Card, rel: str) -> Path:
    """A file a card names (checkpoint, token list), relative to the card's own folder."""
    p = Path(rel)
    if not p.is_absolute():
        p = Path(card.path).parent / p
    if not p.exists():
        raise CardError(f"{card.path}: {rel} not found ({p})")
    return p


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
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CardError(f"{p}: not UTF-8 text (byte {e.start}): not a card") from e
    except OSError as e:
        raise CardError(f"{p}: cannot read: {e}") from e
    except yaml.YAMLError as e:
        raise CardError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise CardError(f"{p}: a card must be a mapping, got {type(raw).__name__}")
    for key in REQUIRED:
        if key not in raw:
            raise CardError(f"{p}: missing field {key!r}")
    for key in ("model", "decode", "data", "timing"):  # "decode:" with nothing after is None
        if key in raw and not isinstance(raw[key], dict):
            raise CardError(f"{p}: field {key!r} must be a mapping, got {type(raw[key]).__name__}"
                            f" ({raw[key]!r})")
    if raw["tier"] not in TIERS:
        raise CardError(f"{p}: field 'tier' is {raw['tier']!r}, expected one of {TIERS}")
    known = set(Card.__dataclass_fields__) - {"path"}
    unknown = set(raw) - known
    if unknown:
        raise CardError(f"{p}: unknown field(s) {sorted(unknown)}")
    return Card(path=str(p), **raw)


def list_cards(tiers: str | tuple[str, ...] = TIERS, task: str | None = None) -> list[Card]:
    """Built-in cards whose tier is in `tiers` ('all': every tier; 'main': the main job's cards)."""
    cards = [load_card(p) for p in sorted(CARDS_DIR.glob("*.yaml"))]
    if tiers == "main":  # the main job: the cards marked for it, of every tier (<20 min on 2 cores)
        return [c for c in cards if c.main_job and (task is None or c.task == task)]
    if isinstance(tiers, str):
        tiers = TIERS if tiers == "all" else tuple(t.strip() for t in tiers.split(","))
    return [c for c in cards if c.tier in tiers and (task is None or c.task == task)]

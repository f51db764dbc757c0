"""Token lists of the built-in cards: characters, or a shared BPE model."""
from __future__ import annotations

import shutil
import string
from pathlib import Path

from bench.paths import shared_dir
from bench.zoo.cards import Card, CardError

CHAR_TOKENS = ["<blank>", "<unk>", "<space>", "'", *string.ascii_uppercase, "<sos/eos>"]


def shared_file(card: Card, rel: str) -> Path:
    root = shared_dir()
    if root is None or not (root / rel).exists():
        raise CardError(f"{card.path}: needs ../shared/{rel}, which is not there "
                        f"(set BENCH_SHARED to the shared folder)")
    return root / rel


def write_tokens(card: Card, exp_dir: Path) -> dict:
    """Write tokens.txt (and bpe.model) into exp_dir; return the ESPnet config fields."""
    spec = card.model.get("tokens", {"kind": "chars"})
    kind = spec.get("kind")
    if kind == "chars":
        (exp_dir / "tokens.txt").write_text("\n".join(CHAR_TOKENS) + "\n")
        return {"token_type": "char", "bpemodel": None}
    if kind == "shared":
        shutil.copyfile(shared_file(card, spec["token_list"]), exp_dir / "tokens.txt")
        shutil.copyfile(shared_file(card, spec["bpemodel"]), exp_dir / "bpe.model")
        return {"token_type": "bpe", "bpemodel": "bpe.model"}
    raise CardError(f"{card.path}: model.tokens.kind is {kind!r}, expected 'chars' or 'shared'")


def read_tokens(path: Path) -> list[str]:
    tokens = [line.rstrip("\n") for line in Path(path).read_text(encoding="utf-8").splitlines()]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise CardError(f"{path}: empty token list")
    return tokens

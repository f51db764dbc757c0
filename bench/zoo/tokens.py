"""Token lists of the built-in cards: characters, a shared BPE model, a shared plain list
(e.g. phonemes), or a generated placeholder list of a recipe's size."""
from __future__ import annotations

import shutil
import string
from pathlib import Path

from bench.paths import shared_dir
from bench.zoo.cards import Card, CardError, card_file

CHAR_TOKENS = ["<blank>", "<unk>", "<space>", "'", *string.ascii_uppercase, "<sos/eos>"]


def shared_file(card: Card, rel: str) -> Path:
    root = shared_dir()
    if root is None or not (root / rel).exists():
        raise CardError(f"{card.path}: needs ../shared/{rel}, which is not there "
                        f"(set BENCH_SHARED to the shared folder)")
    return root / rel


def write_tokens(card: Card, exp_dir: Path, key: str = "tokens",
                 filename: str = "tokens.txt") -> dict:
    """Write tokens.txt (and bpe.model) into exp_dir; return the ESPnet config fields.

    `key` names the card field (ST cards also have `src_tokens`), `filename` the file.
    """
    spec = card.model.get(key, {"kind": "chars"})
    kind = spec.get("kind")
    if kind == "generated":
        (exp_dir / filename).write_text("\n".join(generated_tokens(card, spec)) + "\n")
        # placeholders are whole tokens: ESPnet's word tokenizer joins them with spaces
        return {"token_type": "word", "bpemodel": None}
    if kind == "shared_list":
        shutil.copyfile(shared_file(card, spec["token_list"]), exp_dir / filename)
        return {"token_type": spec.get("token_type", "word"), "bpemodel": None}
    if kind == "files":  # a trained card's own tokens, committed beside its checkpoint
        shutil.copyfile(card_file(card, spec["token_list"]), exp_dir / filename)
        if spec.get("bpemodel"):
            bpe = filename.replace("tokens.txt", "bpe.model")  # ST: src_bpe.model beside bpe.model
            shutil.copyfile(card_file(card, spec["bpemodel"]), exp_dir / bpe)
            return {"token_type": "bpe", "bpemodel": bpe}
        return {"token_type": spec.get("token_type", "char"), "bpemodel": None}
    if kind == "chars":
        (exp_dir / filename).write_text("\n".join(CHAR_TOKENS) + "\n")
        return {"token_type": "char", "bpemodel": None}
    if kind == "shared":
        bpe = filename.replace("tokens.txt", "bpe.model")  # src_tokens.txt -> src_bpe.model
        shutil.copyfile(shared_file(card, spec["token_list"]), exp_dir / filename)
        shutil.copyfile(shared_file(card, spec["bpemodel"]), exp_dir / bpe)
        return {"token_type": "bpe", "bpemodel": bpe}
    raise CardError(f"{card.path}: model.{key}.kind is {kind!r}, expected 'chars', 'shared', "
                    "'shared_list', 'generated' or 'files'")


def generated_tokens(card: Card, spec: dict) -> list[str]:
    """A deterministic placeholder vocabulary of a recipe's size, for paper-size cards whose
    real token list is not in ../shared: <blank>, <unk>, `intents` intent tokens
    (intent_000, ...), word tokens (word_0000, ...), <sos/eos>; `size` in all."""
    size, intents = int(spec.get("size", 0)), int(spec.get("intents", 0))
    n_words = size - 3 - intents
    if n_words < 0:
        raise CardError(f"{card.path}: generated token list of size {size} cannot hold "
                        f"{intents} intents and the 3 special tokens")
    return (["<blank>", "<unk>"] + [f"intent_{i:03d}" for i in range(intents)]
            + [f"word_{i:04d}" for i in range(n_words)] + ["<sos/eos>"])


def read_tokens(path: Path) -> list[str]:
    tokens = [line.rstrip("\n") for line in Path(path).read_text(encoding="utf-8").splitlines()]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise CardError(f"{path}: empty token list")
    return tokens

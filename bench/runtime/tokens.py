"""Token ids -> text, as ESPnet's Speech2Text does it, without importing ESPnet or torch."""
from __future__ import annotations

from pathlib import Path

import yaml


class TokenConverter:
    def __init__(self, exp_dir: Path):
        exp_dir = Path(exp_dir)
        cfg = yaml.safe_load((exp_dir / "config.yaml").read_text())
        self.tokens = [t for t in (exp_dir / cfg["token_list"]).read_text(encoding="utf-8").splitlines() if t]
        self.token_type = cfg.get("token_type", "char")
        self._sp = None
        if self.token_type == "bpe":
            import sentencepiece

            self._sp = sentencepiece.SentencePieceProcessor()
            self._sp.load(str(exp_dir / cfg["bpemodel"]))

    def text(self, token_ids: list[int]) -> str:
        # ESPnet drops blank (id 0) before converting, then joins per tokenizer type
        pieces = [self.tokens[i] for i in token_ids if i != 0]
        if self._sp is not None:
            return self._sp.decode_pieces(pieces)
        return "".join(pieces).replace("<space>", " ")

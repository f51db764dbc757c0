"""`python -m bench.zoo.espnet_entry MODULE ARGS...`: run one of ESPnet's entry points (e.g.
espnet2.bin.asr_train) as `python -m MODULE ARGS...` would, with ``warprnnt_pytorch``
importable and our encoders registered (bench.espnet_layout.prepare_espnet), so that a
transducer card, or one with our encoder, trains with ESPnet's own trainer."""
from __future__ import annotations

import runpy
import sys

from bench.espnet_layout import prepare_espnet


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.zoo.espnet_entry MODULE [ARGS...]")
    module = sys.argv[1]
    prepare_espnet(module.rsplit(".", 1)[-1].removesuffix("_train"))  # espnet2.bin.<task>_train
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

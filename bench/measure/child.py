"""Child process for peak-memory measurement: load one variant, run the timed subset once.

Run as `python -m bench.measure.child SPEC.json`. It reports its idle RSS after the
runtime libraries are imported (those the card's family names for the variant's runtime:
bench.families) and before the model is loaded, so the peak above idle is
the model plus the work of decoding. An ONNX variant's child never imports torch, and
says so in its payload.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def main(spec_path: str) -> None:
    from importlib import import_module

    from bench.artifacts import artifact_info
    from bench.families import get_family

    spec = json.loads(open(spec_path).read())
    info = artifact_info(Path(spec["artifact"]))
    # the libraries a deployment of this runtime holds, for the card's family and ESPnet task
    for module in get_family(info.get("family")).runtime_imports(spec["runtime"],
                                                                 info.get("espnet_task", "asr")):
        import_module(module)
    from bench.measure.memory import report_idle, report_payload
    from bench.runtime.load import load_recognizer

    if spec["inputs"].endswith(".json"):  # TTS: phoneme strings
        inputs = json.loads(open(spec["inputs"]).read())
    else:  # speech: one array per utterance
        npz = np.load(spec["inputs"])
        inputs = [npz[k] for k in sorted(npz.files)]
    report_idle()
    t = time.perf_counter()
    rec = load_recognizer(spec["artifact"], spec["decode"], spec["variant"], spec["device"],
                          spec["threads"])
    load_s = time.perf_counter() - t
    # what came out (tokens, or samples of speech): so a caller can tell a run from a no-op
    output_sizes = [len(out.tokens) if hasattr(out, "tokens") else len(out.wave)
                    for out in map(rec, inputs)]
    report_payload({"load_s": load_s, "torch_imported": "torch" in sys.modules,
                    "n_utterances": len(inputs), "output_sizes": output_sizes,
                    "torch_cuda": _torch_cuda_counters(spec)})


def _torch_cuda_counters(spec: dict) -> dict | None:
    """PyTorch's own view of its GPU memory (its caching allocator), for the PyTorch variant."""
    if spec["runtime"] != "torch" or spec["device"] != "cuda":
        return None
    import torch

    mb = 2 ** 20
    return {"max_allocated_mb": torch.cuda.max_memory_allocated() / mb,
            "max_reserved_mb": torch.cuda.max_memory_reserved() / mb}


if __name__ == "__main__":
    main(sys.argv[1])

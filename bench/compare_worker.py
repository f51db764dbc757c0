"""One side of `python -m bench compare`: a process that runs its *side's* bench code.

bench/compare.py starts this file by path, with PYTHONPATH set to the side's checkout, so every
`import bench` below resolves to the revision under test, not to the tree that orchestrates.
It touches only long-standing internals of bench (cards, artifacts, evaluation sets, the
runtime loader, task scorers), so it can drive old revisions as well as new ones.

Protocol: one JSON request a line on stdin ({"op": ...}), one JSON reply a line on stdout
({"ok": true, ...} or {"ok": false, "error": ..., "traceback": ...}). Ops: export, load,
quality, real_speech, round, memory, quit. File descriptor 1 is re-pointed at stderr before any bench
module is imported, so no library (ESPnet's logging, ORT's C++ warnings) can write into the
protocol.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# Python put this file's folder (the orchestrating tree's bench/) first on sys.path; without
# it the side's checkout on PYTHONPATH is what `import bench` finds.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import json  # noqa: E402  (after the path is fixed: nothing may come from the folder above)
import time  # noqa: E402
import traceback  # noqa: E402

# These metrics compare an output with the third argument of task.score (the PyTorch outputs
# in a benchmark run). A worker has only its own outputs, so they would be self-comparisons;
# bench compare computes them against the side's own PyTorch outputs, and between the sides.
SELF_COMPARISONS = ("agreement_ter", "tts_distance")


def _status_mb(key: str):
    with open("/proc/self/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return None


def _card(card: str, model=None):
    """The built-in card or card file; with ``model``, the ad-hoc card of a user's ESPnet model
    (exp dir, .pth, packed zip), so two checkpoints can be compared as two sides."""
    if model:
        from bench.zoo.user_model import user_card

        return user_card(model)
    from bench.zoo.cards import load_card

    return load_card(card)


class Worker:
    def __init__(self):
        self.card = self.rec = self.utts = self.subset = None

    def op_export(self, card: str, model=None, variant=None) -> dict:
        """Build (or find) the card's artifact with this side's exporter, and derive ``variant``
        there if it is a study's. Run in a process of its own, before the measured one, so an
        export never lands in a measured peak RSS."""
        from bench.artifacts import ensure_artifact

        # the side's own bench package: a revision from before studies takes the card alone
        study = (variant,) if variant else ()
        return {"artifact": str(ensure_artifact(_card(card, model), *study))}

    def op_load(self, card: str, variant: str, device: str, threads: int, artifact: str,
                data=None, model=None) -> dict:
        """Load the variant from the artifact the export op gave (ensure_artifact itself imports
        the exporter, and with it torch, which would weigh on an ONNX variant's peak RSS)."""
        from pathlib import Path

        import bench
        from bench.artifacts import variant_record
        from bench.data.sets import load_eval_set, stratified_subset
        from bench.runtime.load import load_recognizer, model_size_mb
        from bench.tasks import get_task
        from bench.variants import get_variant

        rss_before = _status_mb("VmRSS")
        get_variant(variant)  # this revision's registry: an unknown name fails here, named
        self.card = _card(card, model)
        self.task = get_task(self.card.task)
        artifact = Path(artifact)
        error = variant_record(artifact, variant).get("error")
        if error:
            raise RuntimeError(f"variant {variant} of {artifact.name} could not be derived: {error}")
        self.utts = load_eval_set(self.card, data)
        self.subset = [u.input for u in stratified_subset(self.utts, int(self.card.timing.get("subset", 3)))]
        t = time.perf_counter()
        self.rec = load_recognizer(artifact, self.card.decode, variant, device, threads)
        load_s = time.perf_counter() - t
        import importlib.metadata as meta

        libraries = {}
        for name in ("onnxruntime", "onnxruntime-gpu", "onnx", "torch", "espnet", "numpy"):
            try:
                libraries[name] = meta.version(name)
            except meta.PackageNotFoundError:
                pass
        return {"bench_file": bench.__file__, "artifact": str(artifact), "n_items": len(self.utts),
                "libraries": libraries,
                "n_timed": len(self.subset), "family": self.task.family,
                "model_mb": model_size_mb(artifact, variant), "load_s": load_s,
                "rss_before_load_mb": rss_before}

    def op_quality(self, waves_path=None) -> dict:
        """Decode the whole set once: the task's metrics, and what the other side is compared on
        (token ids for speech-to-text; for text-to-speech the waves, saved to waves_path)."""
        t = time.perf_counter()
        outs = self._decode(self.utts, "item")
        seconds = time.perf_counter() - t
        refs = [u.text for u in self.utts]
        if self.card.random_weights:  # a random model's WER or BLEU is a number without meaning
            refs = [None] * len(refs)
        metrics, notes = self.task.score(refs, outs, outs)
        metrics = {k: v for k, v in metrics.items() if k not in SELF_COMPARISONS}
        reply = {"metrics": metrics, "notes": notes, "seconds": seconds,
                 "ids": [u.id for u in self.utts]}
        # the record bench.families' output_record writes, built here by family name: the
        # worker also drives revisions older than bench.families
        if self.task.family == "text2speech":
            import numpy as np

            np.savez(waves_path, **{f"u{i:04d}": o.wave for i, o in enumerate(outs)})
            reply["sample_rates"] = [int(o.sample_rate) for o in outs]
        else:
            reply["tokens"] = [[int(t) for t in o.tokens] for o in outs]
            reply["texts"] = [o.text for o in outs]
        return reply

    def op_real_speech(self) -> dict:
        """The card's real clips (``data.real_speech``) decoded by this side, as the main job
        scores ``real_agreement_ter``: token ids per clip and the clips' content hash; or
        ``tokens`` None and why (no clips here, an older revision; no why for a random-weight or
        TTS card, which has no such figure)."""
        if self.task.family != "speech2text" or self.card.random_weights:
            return {"tokens": None, "why": None}  # none to speak of: nothing to say either
        try:
            from bench.data.sets import load_real_clips
            from bench.identity import data_identity
        except ImportError:
            return {"tokens": None, "why": "this revision does not decode real clips"}
        clips, where = load_real_clips(self.card)
        if not clips:
            return {"tokens": None, "why": where}
        tokens = [[int(t) for t in o.tokens] for o in self._decode(clips, "real clip")]
        return {"tokens": tokens, "identity": data_identity(clips), "dir": where}

    def _decode(self, items: list, what: str) -> list:
        outs = []
        for u in items:
            try:
                outs.append(self.rec(u.input))
            except Exception as e:  # the error says what; add which input
                raise RuntimeError(f"{what} {u.id} ({u.source}): {type(e).__name__}: {e}") from e
        return outs

    def op_round(self) -> dict:
        """One timed pass over the card's length-stratified timing subset."""
        t = time.perf_counter()
        for x in self.subset:
            self.rec(x)
        return {"seconds": time.perf_counter() - t}

    def op_memory(self) -> dict:
        """This process's peak RSS so far (the kernel's high-water mark) and its RSS now."""
        return {"hwm_mb": _status_mb("VmHWM"), "rss_mb": _status_mb("VmRSS"),
                "torch_imported": "torch" in sys.modules}


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.pop("op")
        if op == "quit":
            proto.write(json.dumps({"ok": True}) + "\n")
            break
        try:
            reply = {"ok": True, **getattr(worker, f"op_{op}")(**req)}
        except Exception as e:  # the orchestrator reports it as this case's error
            reply = {"ok": False, "error": f"{op}: {type(e).__name__}: {e}",
                     "traceback": traceback.format_exc(limit=8)}
        proto.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()

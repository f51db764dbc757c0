"""Offline graph fusion with ONNX Runtime's transformer optimizer (stock onnxruntime).

ORT already applies its built-in fusions when a session starts, so 'onnx' gets those too.
The offline optimizer adds the transformer-specific fusions (LayerNormalization,
SkipLayerNormalization, Gelu, Attention where the pattern is known). On ESPnet's conformer
it finds LayerNorms but not the relative-position attention (DESIGN.md). We record the
node counts before and after, so the report shows what was actually fused.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import onnx

SETTINGS = {"tool": "onnxruntime.transformers.optimizer", "model_type": "bert", "opt_level": 1}
# The optimizer (and its symbolic shape inference) walks Python sets of names, so what it fuses
# depends on the process's string-hash seed: the paper encoder came out with 1358, 1298 or
# 1284 nodes under PYTHONHASHSEED 0-7, and two exports of one model could differ. So each seed
# here runs in a process of its own under a fixed PYTHONHASHSEED: same graph, same candidates.
HASH_SEEDS = (0, 1, 2, 3)
_TAG = "FUSED"  # marks our lines in the child's stdout (the optimizer prints there too)


def op_counts(path: Path) -> dict[str, int]:
    return dict(Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node))


def fuse(src: Path, dst: Path, num_heads: int, hidden_size: int,
         shape_inference: bool = True) -> dict:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    # The optimizer logs each fusion attempt at INFO/WARNING; keep the run's output readable.
    for name in ("onnxruntime.transformers", "symbolic_shape_infer", "fusion_skiplayernorm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    options = FusionOptions(SETTINGS["model_type"])
    options.enable_shape_inference = shape_inference
    model = optimize_model(str(src), model_type=SETTINGS["model_type"], num_heads=num_heads,
                           hidden_size=hidden_size, opt_level=SETTINGS["opt_level"],
                           optimization_options=options)
    model.save_model_to_file(str(dst))
    before, after = op_counts(src), op_counts(dst)
    changed = {op: after.get(op, 0) - before.get(op, 0) for op in set(before) | set(after)
               if after.get(op, 0) != before.get(op, 0)}
    return {**SETTINGS, "shape_inference": shape_inference, "nodes_before": sum(before.values()), "nodes_after": sum(after.values()),
            "op_count_changes": dict(sorted(changed.items()))}


def fuse_candidates(graphs: dict[str, Path], out: Path, num_heads: int, hidden_size: int,
                    shape_inference: bool = True, seeds=HASH_SEEDS):
    """Fuse each graph once per hash seed, the seeds' processes side by side.

    Returns ({graph: [(path, settings), ...]}, {graph: [error, ...]}): per graph its distinct
    results, fewest nodes first (on a tie, the lowest seed), each a file in ``out``."""
    names = list(graphs)
    procs = {}
    try:
        for seed in seeds:
            cmd = [sys.executable, "-m", "bench.optimize.fusion", "--num-heads", str(num_heads),
                   "--hidden-size", str(hidden_size)] + ([] if shape_inference else ["--no-shape-inference"])
            for g in names:
                cmd += [str(graphs[g]), str(out / f"{g}.seed{seed}")]
            procs[seed] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           env=dict(os.environ, PYTHONHASHSEED=str(seed)))
        outputs = {seed: p.communicate() + (p.returncode,) for seed, p in procs.items()}
    except BaseException:  # interrupted: no optimizer process outlives the export
        for p in procs.values():
            p.kill()
            p.wait()
        raise
    found = {g: [] for g in names}
    errors = {g: [] for g in names}
    for seed, (stdout, stderr, code) in outputs.items():
        lines = [json.loads(line[len(_TAG):]) for line in stdout.splitlines() if line.startswith(_TAG + " ")]
        for g, result in zip(names, lines):
            if "error" in result:
                errors[g].append(f"hash seed {seed}: {result['error']}")
            else:
                found[g].append((seed, out / f"{g}.seed{seed}", result))
        for g in names[len(lines):]:
            errors[g].append(f"hash seed {seed}: the optimizer's process exited with {code}: {stderr[-1500:]}")
    return {g: _distinct(found[g]) for g in names}, errors


def _distinct(results: list) -> list:
    seen, kept = set(), []
    for seed, path, settings in sorted(results, key=lambda r: (r[2]["nodes_after"], r[0])):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            path.unlink()
            continue
        seen.add(digest)
        kept.append((path, {**settings, "hash_seed": seed}))
    return kept


def main(argv=None) -> None:
    """The child of fuse_candidates: fuse SRC into DST for each pair, one result line each."""
    ap = argparse.ArgumentParser(prog="python -m bench.optimize.fusion")
    ap.add_argument("--num-heads", type=int, required=True)
    ap.add_argument("--hidden-size", type=int, required=True)
    ap.add_argument("--no-shape-inference", action="store_true")
    ap.add_argument("pairs", nargs="+", help="SRC DST [SRC DST ...]")
    a = ap.parse_args(argv)
    for src, dst in zip(a.pairs[::2], a.pairs[1::2]):
        try:
            result = fuse(Path(src), Path(dst), a.num_heads, a.hidden_size, not a.no_shape_inference)
        except Exception as e:  # the optimizer failed on this graph; the others still go
            result = {"error": f"{type(e).__name__}: {e}"}
        print(_TAG, json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

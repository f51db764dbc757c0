"""Where an ONNX variant's end-to-end time goes: each graph's session runs, the CTC prefix
scoring, the pre-beam top-k, and the rest (beam bookkeeping, features in Python, detokenising).

`python -m bench breakdown CARD VARIANT` prints it for the card's timed subset after a warm-up
round. A diagnosis, not a benchmark figure: one process, no interleaving, no interval.
"""
from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager


@contextmanager
def timed_attr(owner, name: str, label: str, seconds: Counter, calls: Counter, after=None):
    """Time every call of ``owner.name`` under ``label`` while the context lasts; ``after``,
    if given, is called with the same arguments once the timed call has returned."""
    original = getattr(owner, name)
    own = name in vars(owner)  # a module's or class's own attribute; else a method seen through

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            out = original(*args, **kwargs)
        finally:
            seconds[label] += time.perf_counter() - t
            calls[label] += 1
        if after is not None:
            after(*args, **kwargs)
        return out

    setattr(owner, name, timed)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)  # the instance falls back to its class's method again


def graph_sessions(rec) -> dict:
    """The ONNX Runtime sessions a recognizer runs, by name: its attributes that are sessions
    (encoder), and its ``sessions`` dict (decoder.onnx, TTS graphs) by graph file, less ".onnx"."""
    inner = getattr(rec, "recognizer", rec)  # unwrap the long-recording windows
    found = {name: s for name, s in vars(inner).items() if hasattr(s, "run") and hasattr(s, "get_inputs")}
    # each session once: wrapped twice, a graph's time would be counted twice
    seen = {id(s) for s in found.values()}
    found.update({g.removesuffix(".onnx"): s for g, s in (getattr(inner, "sessions", {}) or {}).items()
                  if id(s) not in seen})
    return found


def breakdown(card_name: str, variant: str, threads: int = 2, rounds: int = 2) -> dict:
    from contextlib import ExitStack

    from bench.artifacts import ensure_artifact
    from bench.data.sets import load_eval_set, stratified_subset
    from bench.runtime import beam_search
    from bench.runtime.load import load_recognizer
    from bench.variants import get_variant
    from bench.zoo.cards import load_card

    if get_variant(variant).runtime != "onnx":
        raise ValueError(f"{variant}: the breakdown looks inside ONNX variants only")
    card = load_card(card_name)
    artifact = ensure_artifact(card, variant)
    subset = stratified_subset(load_eval_set(card), int(card.timing.get("subset", 3)))
    rec = load_recognizer(artifact, card.decode, variant, "cpu", threads)
    for u in subset:  # warm-up: sessions' first runs and memory arenas
        rec(u.input)
    seconds, calls = Counter(), Counter()
    with ExitStack() as stack:
        for label, s in graph_sessions(rec).items():
            stack.enter_context(timed_attr(s, "run", f"graph {label}", seconds, calls))
        stack.enter_context(timed_attr(beam_search._CTCPrefixScorer, "score", "CTC prefix scoring",
                                        seconds, calls))
        stack.enter_context(timed_attr(beam_search, "_topk_rows_set", "pre-beam top-k", seconds, calls))
        t = time.perf_counter()
        for _ in range(rounds):
            for u in subset:
                rec(u.input)
        total = time.perf_counter() - t
    audio = rounds * sum(u.seconds for u in subset)
    parts = [(label, s, calls[label]) for label, s in seconds.most_common()]
    parts.append(("rest", total - sum(seconds.values()), None))
    return {"card": card.name, "variant": variant, "threads": threads, "rounds": rounds,
            "total_s": total, "rtf": total / audio if audio else None, "parts": parts}


def format_breakdown(b: dict) -> str:
    lines = [f"{b['card']} {b['variant']}: {b['total_s']:.2f} s over {b['rounds']} rounds"
             + (f", RTF {b['rtf']:.4f}" if b["rtf"] else "") + f", {b['threads']} threads"]
    for label, s, n in b["parts"]:
        each = f"  {n} calls, {1000 * s / n:.2f} ms each" if n else ""
        lines.append(f"  {label:24s} {s:7.3f} s {100 * s / b['total_s']:5.1f}%{each}")
    return "\n".join(lines)

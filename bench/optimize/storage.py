"""How a static-int8 graph is stored: its file holds what the computation needs, little else.

Static int8 in QDQ form gives every quantized tensor a QuantizeLinear/DequantizeLinear pair and
a scale and zero point, each named after the tensor it came from ("..._QuantizeLinear_Output"):
in a 2 M-parameter model those names weigh a seventh of its int8 weights. And the frontend's
constants stay float, since its activations must (waveform and spectrum in 8 bits wreck the
features): the STFT basis alone is 1 MB. Two steps, neither of which changes what a run
computes beyond float32 rounding, each recorded with the variant:

- ``stft_basis_from_tables``: the STFT basis (window times cosine and sine rows) is built in
  the graph from its window and one period of cosine and sine (6 KB), by index arithmetic that
  ORT folds into a constant when the session starts. Only where the rebuilt basis matches the
  stored one to float32 rounding; otherwise the stored basis stays.
- ``compact_names``: every tensor and node inside the graph gets a short name and the optional
  shape annotations (value_info) go; the computation is unchanged.

The float base graphs, stored the same way, give a size ratio in which only int8 differs
(``stored_alike_bytes``). The mel filterbank stays float: stored int8 (per-filter scales), it
doubled the trained tiny card's token flips on real speech (docs/studies.md).
"""
from __future__ import annotations

from pathlib import Path

STFT_PREFIX = "/stft/"


def store_compactly(path: Path) -> dict:
    """Rewrite the graph at ``path`` in place; returns what was done and the bytes before and after."""
    import onnx

    model = onnx.load(str(path))
    before = model.ByteSize()
    record = {"stft_basis": stft_basis_from_tables(model), "names_bytes_saved": compact_names(model)}
    onnx.save(model, str(path))
    return {**record, "bytes_before": before, "bytes_after": model.ByteSize()}


def stored_alike_bytes(path: Path) -> int:
    """The size of the float graph at ``path`` stored as ``store_compactly`` stores an int8 one."""
    import onnx

    model = onnx.load(str(path))
    stft_basis_from_tables(model)
    compact_names(model)
    return model.ByteSize()


def stft_basis_from_tables(model) -> dict | None:
    """Replace the STFT's basis initializer (rows: window * cos(2 pi k n / N) for k = 0..N/2,
    then window * -sin(...)) with nodes that build it from the window and one period of cosine
    and sine: index k*n mod N. None if the graph has no such basis; {"kept": why} if the
    stored one differs from the rebuilt one by more than float32 rounding."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    conv = next((n for n in g.node if n.op_type == "Conv" and n.name.startswith(STFT_PREFIX)
                 and len(n.input) > 1 and n.input[1] in inits), None)
    if conv is None:
        return None
    name = conv.input[1]
    basis = numpy_helper.to_array(inits[name])
    n_fft = basis.shape[-1]
    bins = n_fft // 2 + 1
    if basis.dtype != np.float32 or basis.shape != (2 * bins, 1, n_fft):
        return {"kept": f"{name} is {basis.dtype} {list(basis.shape)}, not the (N+2, 1, N) float32 basis"}
    window = basis[0, 0]  # row k = 0 is cos(0) * window
    cos, nsin, index = _trig_tables(n_fft)
    rebuilt = np.concatenate([cos[index], nsin[index]]) * window
    worst = float(np.abs(rebuilt - basis[:, 0]).max())
    tolerance = 4 * float(np.finfo(np.float32).eps) * float(np.abs(basis).max())
    if worst > tolerance:
        return {"kept": f"{name} differs from the rebuilt basis by {worst:.3g} (> {tolerance:.3g})"}

    def const(suffix, value):
        g.initializer.append(numpy_helper.from_array(np.asarray(value), f"{name}_{suffix}"))
        return f"{name}_{suffix}"

    t = [const("cos", cos), const("nsin", nsin), const("window", window), const("zero", np.int64(0)),
         const("one", np.int64(1)), const("n", np.int64(n_fft)), const("bins", np.int64(bins)),
         const("axis0", np.array([0], np.int64)), const("axis1", np.array([1], np.int64))]
    cos_t, nsin_t, window_t, zero, one, n_t, bins_t, axis0, axis1 = t
    o = lambda s: f"{name}_{s}"  # noqa: E731 (the nodes' outputs)
    nodes = [
        helper.make_node("Range", [zero, bins_t, one], [o("k")]),
        helper.make_node("Range", [zero, n_t, one], [o("t")]),
        helper.make_node("Unsqueeze", [o("k"), axis1], [o("k_col")]),
        helper.make_node("Unsqueeze", [o("t"), axis0], [o("t_row")]),
        helper.make_node("Mul", [o("k_col"), o("t_row")], [o("kt")]),
        helper.make_node("Mod", [o("kt"), n_t], [o("index")]),
        helper.make_node("Gather", [cos_t, o("index")], [o("cos_rows")]),
        helper.make_node("Gather", [nsin_t, o("index")], [o("sin_rows")]),
        helper.make_node("Concat", [o("cos_rows"), o("sin_rows")], [o("rows")], axis=0),
        helper.make_node("Mul", [o("rows"), window_t], [o("windowed")]),
        helper.make_node("Unsqueeze", [o("windowed"), axis1], [name]),
    ]
    for i, node in enumerate(nodes):
        node.name = f"{STFT_PREFIX}basis_{i}"
        g.node.insert(i, node)
    g.initializer.remove(inits[name])
    return {"rebuilt": name, "stored_bytes": int(basis.nbytes), "max_difference": worst}


def _trig_tables(n_fft: int):
    """cos and -sin of 2 pi j / N for j < N (float32, from float64), and the (N/2+1, N) index k*n mod N."""
    import numpy as np

    angle = 2 * np.pi * np.arange(n_fft, dtype=np.float64) / n_fft
    index = (np.arange(n_fft // 2 + 1)[:, None] * np.arange(n_fft)[None, :]) % n_fft
    return np.cos(angle).astype(np.float32), (-np.sin(angle)).astype(np.float32), index


def compact_names(model) -> int:
    """Give every tensor and node inside the graph a short name and drop value_info; the
    graph's inputs and outputs keep theirs. Returns the bytes saved. A graph with subgraphs
    (If, Loop, Scan) is left as it is: their names reach into the outer graph."""
    from onnx import AttributeProto

    g = model.graph
    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        return 0
    before = model.ByteSize()
    keep = {v.name for v in [*g.input, *g.output]} | {""}
    short: dict[str, str] = {}
    count = iter(range(1 << 62))

    def renamed(name: str) -> str:
        if name in keep:
            return name
        while name not in short:
            candidate = "t" + _base36(next(count))
            if candidate not in keep:  # a boundary name of that shape is skipped
                short[name] = candidate
        return short[name]

    for init in g.initializer:
        init.name = renamed(init.name)
    for i, n in enumerate(g.node):
        n.name, n.doc_string = "n" + _base36(i), ""
        n.input[:] = [renamed(x) for x in n.input]
        n.output[:] = [renamed(x) for x in n.output]
    del g.value_info[:]
    return before - model.ByteSize()


def _base36(i: int) -> str:
    digits, out = "0123456789abcdefghijklmnopqrstuvwxyz", ""
    while True:
        i, r = divmod(i, 36)
        out = digits[r] + out
        if i == 0:
            return out

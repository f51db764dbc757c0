"""Reading and rewriting ONNX graphs in place, for the graph rewrites of this package."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def node_attributes(node) -> dict:
    """A node's attributes as plain Python values, by name."""
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def rewrite_file(path: Path, rewrite: Callable[[Any], Any]) -> Any:
    """Load the graph at ``path``, apply ``rewrite`` (ModelProto, in place -> what it did, falsy
    for nothing) and save it back only if it did something; return what it did."""
    import onnx

    model = onnx.load(str(path))
    done = rewrite(model)
    if done:
        onnx.save(model, str(path))
    return done

"""What a figure was measured on: the identity that keys baselines and the report."""
from dataclasses import dataclass

import numpy as np

from bench import identity as I


@dataclass
class Item:
    id: str
    text: str | None
    input: object


def _items(scale=1.0, text="hello"):
    return [Item("a", text, np.arange(160, dtype=np.float32) * scale), Item("b", None, "HH AH0")]


def test_data_identity_follows_content_only():
    assert I.data_identity(_items()) == I.data_identity(_items())
    assert I.data_identity(_items(scale=1.0001)) != I.data_identity(_items())  # other samples
    assert I.data_identity(_items(text="hullo")) != I.data_identity(_items())  # other reference
    assert I.data_identity(_items()[:1]) != I.data_identity(_items())           # fewer items


def test_case_identity_and_key():
    decode = {"beam_size": 10, "ctc_weight": 0.3}
    a = I.case_identity(_items(), decode, "onnx-int8", None)
    assert a == I.case_identity(_items(), dict(reversed(list(decode.items()))), "onnx-int8", None)
    assert a["data_source"] == "card" and a["n_items"] == 2 and len(a["key"]) == 12
    for other in (I.case_identity(_items(scale=2), decode, "onnx-int8", "/d"),
                  I.case_identity(_items(), {**decode, "beam_size": 1}, "onnx-int8", None),
                  I.case_identity(_items(), decode, "onnx-fused", None)):
        assert other["key"] != a["key"]
    case = {"task": "asr", "card": "c", "variant": "onnx-int8", "device": "cpu", "identity": a}
    assert I.baseline_key(case) == f"asr/c/onnx-int8/cpu@{a['key']}"
    assert I.baseline_key({**case, "identity": None}) == "asr/c/onnx-int8/cpu@unidentified"


def test_variant_identity_follows_its_definition(monkeypatch):
    from dataclasses import replace

    from bench import variants

    before = I.variant_identity("onnx-int8")
    changed = replace(variants.VARIANTS["onnx-int8"], description="int8 of something else")
    monkeypatch.setitem(variants.VARIANTS, "onnx-int8", changed)
    assert I.variant_identity("onnx-int8") != before
    assert I.variant_identity("onnx") == I.variant_identity("onnx")

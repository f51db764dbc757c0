"""What a speech-to-text runtime returns for one utterance, PyTorch's or ONNX's.

Its own module so that the PyTorch runtimes need not import the ONNX one: the memory child of a
PyTorch case holds what a PyTorch deployment holds, and onnxruntime is not part of it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Recognition:
    tokens: list[int]
    text: str

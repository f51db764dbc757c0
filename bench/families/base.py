"""The interface every task family implements (bench/families/__init__.py lists them)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


class Family:
    name: str = ""
    # RTF is over the audio the family's models hear (speech in) or speak (speech out)
    audio_is_output: bool = False

    def exporter_version(self) -> tuple[str, int]:
        """(exporter version, opset): part of the artifact cache key."""
        raise NotImplementedError

    def export(self, card, exp_dir: Path, onnx_dir: Path, espnet_task: str) -> tuple[dict, dict]:
        """Export the experiment's model into onnx_dir: (export meta, the meta plus what the
        variants' derive steps need to know)."""
        raise NotImplementedError

    @property
    def int8_calibrated(self) -> bool:
        """Whether onnx-int8 quantizes this family's convolutions statically: it has calibration
        feeds of its own (calibration_feeds overridden)."""
        return type(self).calibration_feeds is not Family.calibration_feeds

    def calibration_feeds(self, card, artifact: Path, meta: dict) -> dict[str, list[dict]]:
        """Inputs per graph of the plain export for the default variants' static int8, made
        when the artifact is built ({}: the family's default variants need none)."""
        return {}

    def dev_feeds(self, card, artifact: Path, meta: dict, graphs: Path) -> dict[str, list[dict]]:
        """Inputs per graph of the graphs in ``graphs`` (a variant's folder) on the card's dev
        data: calibration for a study's static int8 variant."""
        raise NotImplementedError

    def check_variant(self, plain: Path, derived: Path, info: dict, atol: float | None) -> dict:
        """Run the derived graphs against the plain export; raise VariantCheckError naming the
        graph and input; return the differences found."""
        raise NotImplementedError

    def load(self, artifact: Path, decode: dict, variant, device: str, threads: int,
             espnet_task: str, providers: list[str]) -> Any:
        """The runtime that runs ``variant`` (a bench.variants.Variant): called on an input,
        it returns the family's output (Recognition or Synthesis)."""
        raise NotImplementedError

    def runtime_imports(self, runtime: str, espnet_task: str) -> tuple[str, ...]:
        """Modules a deployment of this runtime ('torch' or 'onnx') holds: the memory child
        imports them before its idle reading, so the peak above idle is model and work."""
        raise NotImplementedError

    def outputs_agreement(self, base: dict, head: dict, waves: dict) -> dict:
        """Two output records of `bench compare`'s workers compared (token error rate, or the
        distance of the speech; bench/compare_worker.py writes the records)."""
        raise NotImplementedError

    def utterance_row(self, item, output, reference_output) -> dict:
        """The family's columns of one utterance's row in utterances.jsonl."""
        raise NotImplementedError

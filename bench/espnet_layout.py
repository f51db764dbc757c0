"""Where this ESPnet keeps what the exporter and the references use, found by looking at the
installed package, never by its version string.

ESPnet 202611 moved the espnet1 modules (``espnet.nets``) to ``espnet2.legacy.nets`` and gave
ASR's ``Speech2Text`` a ``ctc_window_margin`` (default 100) that windows the CTC prefix
scores, an approximation: the ONNX runtime here scores the whole utterance, as ESPnet did
before and still does with a margin of 0. Older ESPnets have no such argument.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
from functools import lru_cache

NETS_PACKAGES = ("espnet2.legacy.nets", "espnet.nets")  # the newer place first


def _exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@lru_cache(maxsize=None)
def nets_package() -> str:
    """The package that holds ESPnet's ``nets`` modules in this environment."""
    for name in NETS_PACKAGES:
        if _exists(name):
            return name
    raise ImportError(f"none of {', '.join(NETS_PACKAGES)} can be imported: is ESPnet installed?")


def nets(module: str):
    """``nets("pytorch_backend.transformer.embedding")``: that module, wherever it lives."""
    return importlib.import_module(f"{nets_package()}.{module}")


def exact_search_options(inference_class) -> dict:
    """Keyword arguments that make ``inference_class`` decode with the search the ONNX runtime
    implements: the CTC prefix scored over the whole utterance (window margin 0)."""
    params = inspect.signature(inference_class.__init__).parameters
    return {"ctc_window_margin": 0} if "ctc_window_margin" in params else {}


class TorchaudioRNNTLoss:
    """Stands in for warprnnt_pytorch's RNNTLoss, which ESPnet's ASR model constructs for a
    transducer (a compiled extension with no wheel on PyPI): the same loss from torchaudio.
    ESPnet calls it with the joint network's logits (B, T, U+1, V); warp-transducer's CPU path
    takes their log-softmax and averages over the batch, as rnnt_loss's fused log-softmax and
    mean do. Decoding never calls it; `bench zoo train` trains transducer cards with it."""

    def __init__(self, blank: int = 0, fastemit_lambda: float = 0.0, reduction: str = "mean"):
        if fastemit_lambda:
            raise ValueError(f"fastemit_lambda={fastemit_lambda}: torchaudio's RNN-T loss has no FastEmit")
        self.blank, self.reduction = blank, reduction

    def __call__(self, logits, targets, logit_lengths, target_lengths):
        import torch
        from torchaudio.functional import rnnt_loss

        return rnnt_loss(logits.float(), targets.to(torch.int32), logit_lengths.to(torch.int32),
                         target_lengths.to(torch.int32), blank=self.blank, reduction=self.reduction)


def ensure_transducer_loss_importable() -> bool:
    """Make ``from warprnnt_pytorch import RNNTLoss`` work (ESPnet imports it to build any
    transducer model); True when the stand-in was installed."""
    import sys
    import types

    if "warprnnt_pytorch" in sys.modules or _exists("warprnnt_pytorch"):
        return False
    module = types.ModuleType("warprnnt_pytorch")
    module.__spec__ = importlib.machinery.ModuleSpec("warprnnt_pytorch", None)
    module.RNNTLoss = TorchaudioRNNTLoss
    module.__doc__ = "bench.espnet_layout's stand-in: torchaudio's RNN-T loss"
    sys.modules["warprnnt_pytorch"] = module
    return True


def prepare_espnet(task: str) -> None:
    """What building, loading or training a model of ESPnet's ``task`` needs first:
    ``warprnnt_pytorch`` importable (a transducer constructs its loss) and, for ASR, our
    encoders registered with the ASR task (bench/zoo/conv_lower_conformer.py). Other tasks do
    not import the ASR task for it: a PyTorch case's load time and memory would count it."""
    ensure_transducer_loss_importable()
    if task == "asr":
        from bench.zoo.conv_lower_conformer import register

        register()

"""A model that outputs NaN must fail loudly: a beam search over NaN scores still returns
some text, and a vocoder still returns 'audio', so the case would pass with garbage."""
from __future__ import annotations

import numpy as np


class NonFiniteOutput(RuntimeError):
    """The model's output holds NaN or inf; the message names the model file."""


def require_finite(values, what: str, source) -> None:
    values = np.asarray(values)
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise NonFiniteOutput(f"{source}: {what} has {bad} NaN/inf values of {values.size}: "
                              f"the model's weights or graph are broken")

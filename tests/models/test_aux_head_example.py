"""The auxiliary-head example runs end to end: backbone → GaussianHead → render-and-compare."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aux_head.py"


def _load():
    spec = importlib.util.spec_from_file_location("aux_head_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_aux_head_example_trains():
    mod = _load()
    losses = mod.main(steps=4, height=32, width=48, verbose=False)
    assert len(losses) == 4
    assert all(math.isfinite(x) for x in losses)
    # Four Adam steps on one toy scene lower the held-out loss.
    assert losses[-1] < losses[0]

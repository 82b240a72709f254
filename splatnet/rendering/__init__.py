"""The differentiable Gaussian renderer: :func:`render` and its :class:`RenderOutput`.

Backends: ``torch`` (pure-PyTorch reference, :mod:`.reference`), ``cpu`` / ``cuda`` (compiled
ops in ``csrc/``, wrapped by :mod:`._ops`), ``gsplat`` (:mod:`.gsplat_backend`).
"""

from splatnet.rendering.api import BACKENDS, RenderOutput, render

__all__ = ["BACKENDS", "RenderOutput", "render"]

"""splatnet: feed-forward 3D Gaussian splatting from multi-camera driving and robotics logs.

The public API, importable from the top level::

    import splatnet
    g = splatnet.Gaussians.load_ply("scene.ply")
    out = splatnet.render(g, cameras)            # differentiable, CPU (C++) or CUDA

Every public name loads on first use (torch included), so ``import splatnet`` and the
``splatnet`` command's ``--help`` stay fast; ``from splatnet import Gaussians`` works as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from splatnet._lazy import lazy_exports

# Cheap (no torch): the exception types are bound at once.
from splatnet.errors import BackendUnavailableError, FormatError, SplatnetError, ValidationError

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily by __getattr__.
_LAZY = {
    "Cameras": "splatnet.cameras",
    "Gaussians": "splatnet.gaussians",
    "render": "splatnet.rendering",  # the function; the package is splatnet.rendering
    "RenderOutput": "splatnet.rendering",
    "reconstruct": "splatnet.pipeline.feedforward",
    "reconstruct_scene": "splatnet.pipeline.scene",
    "optimize": "splatnet.optimization",
    "Clip": "splatnet.clip",
    "Scene": "splatnet.scene",
    "GaussianHead": "splatnet.models.head",
    "load_model": "splatnet.io.checkpoint",
    "losses": "splatnet.losses",
    "models": "splatnet.models",
}

__all__ = [
    "BackendUnavailableError",
    "FormatError",
    "SplatnetError",
    "ValidationError",
    "__version__",
    *_LAZY,
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from splatnet import losses, models
    from splatnet.cameras import Cameras
    from splatnet.clip import Clip
    from splatnet.gaussians import Gaussians
    from splatnet.io.checkpoint import load_model
    from splatnet.models.head import GaussianHead
    from splatnet.optimization import optimize
    from splatnet.pipeline.feedforward import reconstruct
    from splatnet.pipeline.scene import reconstruct_scene
    from splatnet.rendering import RenderOutput, render
    from splatnet.scene import Scene

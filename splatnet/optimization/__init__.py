"""Classic per-scene 3DGS optimisation on splatnet's rasterizer, and refinement of given Gaussians.

``optimize(clip)`` initialises Gaussians (LiDAR or random points), runs :func:`fit` with adaptive
density control and evaluates on held-out views; ``refine(gaussians, views, steps)`` runs a few
steps from given Gaussians (the network's output); ``refine_scene(scene, views, steps)`` does the same
for a 4D scene, each actor's Gaussians in its box frame.
"""

from splatnet.optimization.api import OptimResult, Split, optimize, optimize_clip, split_views
from splatnet.optimization.densify import DensifyConfig, DensityController
from splatnet.optimization.fit import FitResult, OptimConfig, evaluate, fit, refine, scene_extent
from splatnet.optimization.params import GaussianParams
from splatnet.optimization.scene import refine_scene

__all__ = [
    "DensifyConfig",
    "DensityController",
    "FitResult",
    "GaussianParams",
    "OptimConfig",
    "OptimResult",
    "Split",
    "evaluate",
    "fit",
    "optimize",
    "optimize_clip",
    "refine",
    "refine_scene",
    "scene_extent",
    "split_views",
]

"""The feed-forward network: :class:`SplatNet`, its parts and its config.

- :mod:`.config`: typed configs of every part (torch-free);
- :mod:`.encoder`, :mod:`.cost_volume`, :mod:`.sky`, :mod:`.head`: the network's stages
  (``GaussianHead`` is also the public head for users' own features);
- :mod:`.colour`: per-camera affine colour (exposure) compensation, predicted or fitted;
- :mod:`.lidar_fusion`: the Gaussians moved to the depth the given LiDAR measured;
- :mod:`.visibility`: Gaussians in front of what another camera of the same frame sees thinned;
- :mod:`.geometry`: camera-ray and projection helpers; :mod:`.postprocessing`: prune / merge / cap;
- :mod:`.splatnet`: the assembled network.

Names load on first use, so the torch-free configs can be read without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from splatnet._lazy import lazy_exports

_LAZY = {
    **dict.fromkeys(("ColourAffineConfig", "ColourFitConfig", "CostVolumeConfig", "EncoderConfig",
                     "HeadConfig", "LidarFusionConfig", "PostprocessConfig", "SkyConfig",
                     "SplatNetConfig", "VisibilityConfig"), "splatnet.models.config"),
    "postprocess": "splatnet.models.postprocessing",
    "SkyBackground": "splatnet.models.sky",
    "ColourAffine": "splatnet.models.colour",
    "GaussianHead": "splatnet.models.head",
    "SplatNet": "splatnet.models.splatnet",
    "SplatNetOutput": "splatnet.models.splatnet",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


if TYPE_CHECKING:  # pragma: no cover
    from splatnet.models.colour import ColourAffine
    from splatnet.models.config import (
        ColourAffineConfig,
        ColourFitConfig,
        CostVolumeConfig,
        EncoderConfig,
        HeadConfig,
        LidarFusionConfig,
        PostprocessConfig,
        SkyConfig,
        SplatNetConfig,
        VisibilityConfig,
    )
    from splatnet.models.head import GaussianHead
    from splatnet.models.postprocessing import postprocess
    from splatnet.models.sky import SkyBackground
    from splatnet.models.splatnet import SplatNet, SplatNetOutput

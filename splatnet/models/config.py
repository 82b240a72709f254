"""Typed configuration of :class:`~splatnet.models.SplatNet` (every field has a default).

YAML configs override these fields; :meth:`SplatNetConfig.from_dict` rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from splatnet.errors import ValidationError

#: Largest channel width any layer may be configured with (the defaults are 8-144; a 3×3
#: convolution of this width in and out is 600 MB of float32).
MAX_WIDTH = 4096
#: Most depth candidates of the plane sweep (MVSplat uses up to 128).
MAX_CANDIDATES = 512
#: Most source views of each kind (temporal, rig) matched per view.
MAX_SOURCES = 64
#: Most sky direction-encoding frequencies (2^16·π rad is already below float32's resolution).
MAX_FREQUENCIES = 16


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _count(key: str, v: Any, lo: int, hi: int) -> None:
    if not _is_int(v) or not lo <= v <= hi:
        raise ValidationError(f"{key}: expected an integer in {lo}-{hi}, got {v!r}")


def _finite(key: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValidationError(f"{key}: expected a finite number, got {v!r}")


def _fraction(key: str, v: Any) -> None:
    _finite(key, v)
    if not 0 <= v <= 1:
        raise ValidationError(f"{key}: must be in [0, 1], got {v}")


@dataclass
class EncoderConfig:
    """The CNN image encoder shared by all views."""

    stem_dim: int = 32
    """Channels at 1/2 resolution (also fed to the Gaussian head as fine features)."""
    mid_dim: int = 48
    """Channels at 1/4 resolution."""
    low_dim: int = 96
    """Channels at 1/8 resolution."""
    matching_dim: int = 16
    """Channels of the matching feature the cost volume correlates."""
    context_dim: int = 64
    """Channels of the context feature (monocular cues)."""
    weights: str | None = None
    """Optional local file (.safetensors or a torch state dict) with encoder weights to load."""


@dataclass
class CostVolumeConfig:
    """Plane-sweep stereo between neighbouring views and the depth network behind it."""

    num_candidates: int = 24
    """Depth candidates, uniform in inverse depth between ``near`` and ``far`` (24 rather than
    MVSplat's 32 keeps 6 cameras × 3 frames at 256×448 near 2 s on a 2-core CPU; the head's
    refinement corrects the residual)."""
    temporal_sources: int = 2
    """Source views of the same camera at other frames (the nearest in time)."""
    rig_neighbors: int = 2
    """Source views of other cameras at the same frame (smallest angle between optical axes)."""
    unet_dims: tuple[int, int, int] = (48, 64, 144)
    """Widths of the 3-level depth U-Net at 1/4, 1/8, 1/16 resolution."""
    use_lidar: bool = True
    """Feed LiDAR (when given) as a sparse inverse-depth input to the depth network."""
    lidar_dropout: float = 0.5
    """While training, drop a scene's LiDAR input with this probability."""


@dataclass
class HeadConfig:
    """The pixel-aligned Gaussian head (see :class:`splatnet.GaussianHead`)."""

    stride: int = 2
    """One Gaussian per ``stride × stride`` pixels; image sizes must be divisible by it."""
    hidden_dim: int = 32
    """Width of the head's convolutions."""
    sh_degree: int = 1
    """SH degree of the colour (0–3)."""
    predict_velocity: bool = False
    """Predict a per-Gaussian velocity (needs camera timestamps)."""
    max_velocity: float = 40.0
    """Speed bound in world units per second (tanh-bounded per axis)."""
    opacity_bias: float = -1.0
    """Initial bias of the opacity logit (sigmoid(-1) ≈ 0.27)."""
    scale_range: tuple[float, float] = (0.1, 3.0)
    """Gaussian footprint range in cells (std = stride · z / f · value)."""
    depth_correction: float = 0.1
    """Largest refinement of the normalised inverse depth the head may apply per step."""
    predict_sky: bool = True
    """Predict a sky probability that suppresses opacity."""


@dataclass
class SkyConfig:
    """The sky colour network: a small MLP of the ray direction, conditioned on the scene."""

    enabled: bool = True
    hidden_dim: int = 32
    latent_dim: int = 16
    num_frequencies: int = 3


@dataclass
class ColourAffineConfig:
    """Per-camera affine colour (exposure) compensation, as STORM does (``splatnet.models.colour``)."""

    enabled: bool = False
    """Predict a 3×4 colour matrix per context camera; training renders each supervised camera
    through its own (off: the Gaussians' colours are rendered as they are, as before)."""
    hidden_dim: int = 32
    """Width of the MLP that maps a camera's summary to its matrix."""


@dataclass
class ColourFitConfig:
    """Each context camera's exposure and white balance, fitted at inference
    (``splatnet.models.colour.fit_colour``)."""

    enabled: bool = False
    """After the network (when the model predicts no colour matrices of its own), fit a gain and
    an offset per colour channel and context camera, in closed form, that take the Gaussians'
    renders of that camera's context views to its images; renders into that camera go through
    them (off: the Gaussians' colours are rendered as they are)."""
    prior: float = 0.02
    """Weight of the identity (gain 1, offset 0) against the mean squared pixel error: a camera
    whose renders already match its images keeps about the identity. 0.02 is the smallest of the
    values tried that left every measure on the training clips level or up (docs/benchmarks.md,
    "Each camera's exposure, fitted"); 0 is plain least squares."""


def check_detail_settings(where: str, enabled: Any, tolerance: Any, min_alpha: Any) -> None:
    """A detail layer's settings (a model config's ``detail_layer``, a scene's layer): enabled
    true or false, tolerance in (0, 1], min_alpha in [0, 1)."""
    if not isinstance(enabled, bool):
        raise ValidationError(f"{where}.enabled: expected true or false, got {enabled!r}")
    _finite(f"{where}.tolerance", tolerance)
    if not 0 < tolerance <= 1:
        raise ValidationError(f"{where}.tolerance: expected a relative depth in (0, 1], got "
                              f"{tolerance}")
    _finite(f"{where}.min_alpha", min_alpha)
    if not 0 <= min_alpha < 1:
        raise ValidationError(f"{where}.min_alpha: expected an alpha in [0, 1), got {min_alpha}")


#: Largest upsample-filter sigma (network pixels) a model config or a scene may hold.
MAX_UPSAMPLE_SIGMA = 4.0


@dataclass
class UpsampleFilterConfig:
    """Rendering the network's Gaussians larger than it saw its inputs
    (``splatnet.models.postprocessing.widen_for_camera``)."""

    enabled: bool = False
    """When a camera samples the scene more finely than the network's input views (``r`` times
    their focal length, ``r > 1``), widen each Gaussian by a blur of ``sigma · sqrt(1 − 1/r²)``
    network pixels at its depth (none at the network's own size): the network placed one Gaussian
    per cell of its input grid, and at a larger size the gaps between them show as a dotted
    texture (off: the Gaussians as they are at every size)."""
    sigma: float = 0.23
    """The blur's limit for large ``r``, in network pixels; 0.23 (0.2 at twice the network's
    size) is the largest of the values tried that left every measure on the training clips
    level or up (docs/benchmarks.md, "Rendering larger than the network saw")."""


@dataclass
class DetailLayerConfig:
    """The detail of the context images that the Gaussians miss, carried over to the renders of a
    reconstruction (``splatnet.scene.layers.DetailLayer``)."""

    enabled: bool = False
    """Keep each context view's residual (its image minus the reconstruction's render of it)
    and add it, through the rendered depth, to renders of other views of the same surface
    (off: renders show the Gaussians alone). The Gaussians, PLY and the input-view figures do
    not change."""
    tolerance: float = 0.05
    """Relative depth agreement a context view needs to give a pixel its detail."""
    min_alpha: float = 0.5
    """Rendered alpha a pixel needs to take detail (the sky takes none)."""


@dataclass
class LidarFusionConfig:
    """Move the Gaussians to the depth the given LiDAR measured (``splatnet.models.lidar_fusion``)."""

    enabled: bool = False
    """When LiDAR is given: cells with a point take its depth, the rest are rescaled like their
    neighbours; each Gaussian moves along its camera ray (off: the network's depth as it is)."""
    sigmas: tuple[float, ...] = (0.025, 0.0625, 0.1875, 0.625)
    """Widths of the normalised convolutions that fill the depth ratio between LiDAR cells, as
    fractions of the Gaussian grid's height, finest first (1.6, 4, 12 and 40 cells at 64)."""
    max_ratio: float = 10.0
    """Bound on the factor a Gaussian's depth may change by."""
    confidence_power: float = 0.75
    """The log factor is weighted by ``(1 − c) ** confidence_power``, ``c`` the cost volume's
    confidence (its softmax peak): where the views agree on a depth the network's is kept more.
    0: every cell is moved all the way. 0.75 is the measured choice (0, 0.5, 0.75 and 1 in
    docs/benchmarks.md, "LiDAR depth fusion")."""


@dataclass
class VisibilityConfig:
    """Thin out Gaussians that stand in front of what another camera of the same frame sees
    (``splatnet.models.visibility``)."""

    enabled: bool = False
    """Scale the opacity of every Gaussian that lies in front of the surface another view of
    the same frame sees at that point (that view's own Gaussian depth there): a floater in its
    free space, or the nearer of two copies of one surface (off: the opacities as predicted)."""
    margin: float = 0.0
    """A Gaussian counts as in front when its depth in the other view is under ``(1 − margin)``
    times that view's depth there."""
    factor: float = 0.5
    """Opacity multiplier for those Gaussians (0: removed, 1: no change)."""


@dataclass
class PostprocessConfig:
    """Bounding the output at inference (training renders the raw set)."""

    min_opacity: float = 0.02
    """Prune Gaussians below this opacity."""
    merge: bool = True
    """Merge near-duplicates (same voxel of a scale-adaptive hash)."""
    merge_cell: float = 1.0
    """Voxel edge in units of the Gaussians' own scale level."""
    max_gaussians: int = 1_000_000
    """Keep at most this many Gaussians per scene (highest opacity first)."""


@dataclass
class SplatNetConfig:
    """Everything :class:`~splatnet.models.SplatNet` needs to build itself."""

    near: float = 1.0
    """Nearest depth (camera z, world units) the network can predict."""
    far: float = 100.0
    """Farthest depth; the sky handles what lies beyond."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    cost_volume: CostVolumeConfig = field(default_factory=CostVolumeConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    sky: SkyConfig = field(default_factory=SkyConfig)
    colour_affine: ColourAffineConfig = field(default_factory=ColourAffineConfig)
    colour_fit: ColourFitConfig = field(default_factory=ColourFitConfig)
    upsample_filter: UpsampleFilterConfig = field(default_factory=UpsampleFilterConfig)
    detail_layer: DetailLayerConfig = field(default_factory=DetailLayerConfig)
    lidar_fusion: LidarFusionConfig = field(default_factory=LidarFusionConfig)
    visibility: VisibilityConfig = field(default_factory=VisibilityConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValidationError`` naming the first field that is out of range.

        Sizes have upper limits (:data:`MAX_WIDTH` channels, :data:`MAX_CANDIDATES` depth
        candidates, :data:`MAX_SOURCES` source views, :data:`MAX_FREQUENCIES` sky frequencies)
        so that a typo in a config or checkpoint is an error, not an attempt to allocate
        terabytes.
        """
        _finite("near", self.near)
        _finite("far", self.far)
        if not (0 < self.near < self.far):
            raise ValidationError(f"near: need 0 < near < far, got near={self.near}, "
                                  f"far={self.far}")
        enc, cv, head, sky, post = (self.encoder, self.cost_volume, self.head, self.sky,
                                    self.postprocess)
        for name in ("stem_dim", "mid_dim", "low_dim", "matching_dim", "context_dim"):
            _count(f"encoder.{name}", getattr(enc, name), 1, MAX_WIDTH)
        _count("cost_volume.num_candidates", cv.num_candidates, 2, MAX_CANDIDATES)
        _count("cost_volume.temporal_sources", cv.temporal_sources, 0, MAX_SOURCES)
        _count("cost_volume.rig_neighbors", cv.rig_neighbors, 0, MAX_SOURCES)
        dims = cv.unet_dims
        if not isinstance(dims, (tuple, list)) or len(dims) != 3 or not all(
                _is_int(d) and 1 <= d <= MAX_WIDTH for d in dims):
            raise ValidationError(f"cost_volume.unet_dims: expected 3 widths in 1-{MAX_WIDTH}, "
                                  f"got {dims!r}")
        _fraction("cost_volume.lidar_dropout", cv.lidar_dropout)
        if head.stride not in (1, 2, 4, 8):
            raise ValidationError(f"head.stride: expected 1, 2, 4 or 8, got {head.stride!r}")
        _count("head.hidden_dim", head.hidden_dim, 1, MAX_WIDTH)
        _count("head.sh_degree", head.sh_degree, 0, 3)
        _finite("head.max_velocity", head.max_velocity)
        if head.max_velocity <= 0:
            raise ValidationError(f"head.max_velocity: must be > 0, got {head.max_velocity}")
        _finite("head.opacity_bias", head.opacity_bias)
        _finite("head.depth_correction", head.depth_correction)
        if head.depth_correction < 0:
            raise ValidationError(f"head.depth_correction: must be >= 0, got "
                                  f"{head.depth_correction}")
        rng = head.scale_range
        if not isinstance(rng, (tuple, list)) or len(rng) != 2 \
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in rng) \
                or not 0 < rng[0] < rng[1]:
            raise ValidationError(f"head.scale_range: need finite 0 < lo < hi, got {rng!r}")
        _count("sky.hidden_dim", sky.hidden_dim, 1, MAX_WIDTH)
        _count("sky.latent_dim", sky.latent_dim, 1, MAX_WIDTH)
        _count("sky.num_frequencies", sky.num_frequencies, 0, MAX_FREQUENCIES)
        if not isinstance(self.colour_affine.enabled, bool):
            raise ValidationError(f"colour_affine.enabled: expected true or false, got "
                                  f"{self.colour_affine.enabled!r}")
        _count("colour_affine.hidden_dim", self.colour_affine.hidden_dim, 1, MAX_WIDTH)
        if not isinstance(self.colour_fit.enabled, bool):
            raise ValidationError(f"colour_fit.enabled: expected true or false, got "
                                  f"{self.colour_fit.enabled!r}")
        _finite("colour_fit.prior", self.colour_fit.prior)
        if self.colour_fit.prior < 0:
            raise ValidationError(f"colour_fit.prior: must be >= 0, got {self.colour_fit.prior}")
        up = self.upsample_filter
        if not isinstance(up.enabled, bool):
            raise ValidationError(f"upsample_filter.enabled: expected true or false, got "
                                  f"{up.enabled!r}")
        _finite("upsample_filter.sigma", up.sigma)
        if not 0 <= up.sigma <= MAX_UPSAMPLE_SIGMA:
            raise ValidationError(f"upsample_filter.sigma: expected network pixels in "
                                  f"[0, {MAX_UPSAMPLE_SIGMA:g}], got {up.sigma}")
        check_detail_settings("detail_layer", self.detail_layer.enabled,
                              self.detail_layer.tolerance, self.detail_layer.min_alpha)
        fusion = self.lidar_fusion
        if not isinstance(fusion.enabled, bool):
            raise ValidationError(f"lidar_fusion.enabled: expected true or false, got "
                                  f"{fusion.enabled!r}")
        sig = fusion.sigmas
        if not isinstance(sig, (tuple, list)) or not 1 <= len(sig) <= 8 or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                and x > 0 for x in sig) or list(sig) != sorted(sig):
            raise ValidationError(f"lidar_fusion.sigmas: expected 1-8 increasing positive "
                                  f"fractions of the grid height, got {sig!r}")
        _finite("lidar_fusion.max_ratio", fusion.max_ratio)
        if fusion.max_ratio <= 1:
            raise ValidationError(f"lidar_fusion.max_ratio: must be > 1, got {fusion.max_ratio}")
        _finite("lidar_fusion.confidence_power", fusion.confidence_power)
        if fusion.confidence_power < 0:
            raise ValidationError(f"lidar_fusion.confidence_power: must be >= 0, got "
                                  f"{fusion.confidence_power}")
        vis = self.visibility
        if not isinstance(vis.enabled, bool):
            raise ValidationError(f"visibility.enabled: expected true or false, got {vis.enabled!r}")
        _fraction("visibility.margin", vis.margin)
        _fraction("visibility.factor", vis.factor)
        _fraction("postprocess.min_opacity", post.min_opacity)
        _finite("postprocess.merge_cell", post.merge_cell)
        if post.merge_cell <= 0:
            raise ValidationError(f"postprocess.merge_cell: must be > 0, got {post.merge_cell}")
        if not _is_int(post.max_gaussians) or post.max_gaussians < 1:
            raise ValidationError(f"postprocess.max_gaussians: expected an integer >= 1, got "
                                  f"{post.max_gaussians!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplatNetConfig:
        """Build from a (possibly partial) nested dict; unknown keys are errors."""
        return _from_dict(cls, data, "")


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ValidationError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValidationError(f"{where or 'config'}: unknown key(s) {unknown}; "
                              f"known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        default = cls.__dataclass_fields__[name].default_factory \
            if fields[name].default is dataclasses.MISSING else None
        if default is not None and dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(default, value, f"{where}{name}.")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)

"""Feed-forward reconstruction of a log clip: one network pass from posed images to Gaussians.

The library side of ``splatnet reconstruct`` and ``splatnet eval``::

    import splatnet
    model = splatnet.load_model()                      # the shipped default, or a path
    g = splatnet.reconstruct("path/to/clip", model)    # -> splatnet.Gaussians
    g.save_ply("scene.ply")
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from splatnet._limits import MAX_NETWORK_PIXELS, check_image_size
from splatnet.device import resolve_device
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians

if TYPE_CHECKING:  # pragma: no cover - imported where used (it loads the scene package)
    from splatnet.scene.layers import UpsampleFilter


@dataclass
class Reconstruction:
    """The result of one clip's reconstruction.

    Attributes:
        gaussians: the post-processed (pruned, merged, capped) Gaussians of the scene.
        sky: the network's sky model for this scene (composite it as ``(1 − alpha) · sky``) or None.
        timings: seconds spent per stage: ``load`` (decode images), ``ego_masks`` (when
            they were estimated), ``network``, ``postprocess``, and ``refine`` when refinement
            ran.
        size: ``(H, W)`` the network ran at.
        frames, cameras: the context frames and camera names used.
        colour: per-camera colour matrices (:class:`~splatnet.models.colour.ColourAffine`,
            batch of one): the network's when the model has ``colour_affine`` on, else each
            context camera's gain and offset fitted to its images when it has ``colour_fit``
            on (``colour_fitted``), else None. A render into a context camera goes through its
            matrix to look as that camera saw the scene; the Gaussians themselves are the
            rig-neutral scene (what any other camera, and any viewer, shows).
        lidar_fused: the network moved its Gaussians to the given LiDAR's depth
            (``model.lidar_fusion`` on and LiDAR given).
        ego: what the rig cameras saw of the ego itself
            (:class:`~splatnet.scene.layers.EgoLayer`: the clip's camera masks, or masks
            estimated for a clip without any) or None. Its pixels are not in ``gaussians``;
            ``ego.composite`` draws them over a render of the same rig camera.
        colour_fitted: ``colour`` was fitted to the context images (``model.colour_fit``).
        upsample_filter: :class:`UpsampleFilter` when the model has ``upsample_filter`` on
            (renders by a camera of a larger focal length than its context views' at the
            network's size widen the Gaussians), else None.
    """

    gaussians: Gaussians
    sky: object | None
    timings: dict[str, float] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    frames: list[int] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)
    colour: object | None = None
    lidar_fused: bool = False
    ego: object | None = None
    colour_fitted: bool = False
    upsample_filter: UpsampleFilter | None = None


def default_size(clip, cameras: Sequence[str], stride: int) -> tuple[int, int]:
    """The cameras' native ``(H, W)`` rounded down to a multiple of the network's stride."""
    sizes = {(clip.camera(c).height, clip.camera(c).width) for c in cameras}
    native_h = min(s[0] for s in sizes)
    native_w = min(s[1] for s in sizes)
    h, w = native_h - native_h % stride, native_w - native_w % stride
    if h <= 0 or w <= 0:
        raise ValidationError(f"images of {native_h}x{native_w} (HxW) are too small for the "
                              f"network's stride {stride}")
    return h, w


def network_size(model: nn.Module, output: tuple[int, int]) -> tuple[int, int]:
    """The size the network runs at for Gaussians meant to be seen at ``output = (H, W)``.

    Gaussians do not depend on a resolution, so the network need not run at the output size: a
    model runs best at about the size it was trained at (its ``working_size``, from its model
    file). Measured on unseen synthetic streets scored at their native 256×448, the shipped
    model gains 1.2 dB running at 128×224 instead of 256×448 (docs/benchmarks.md, "Network size
    vs output size"). The rule: the output size, or, when the output has more pixels than the
    working size, the working size's pixel count at the output's aspect ratio; rounded to the
    network's stride. A model that does not state a working size runs at the output size.
    """
    stride = int(getattr(model, "stride", 1))
    h, w = int(output[0]), int(output[1])
    work = getattr(model, "working_size", None)
    if work is not None and h * w > work[0] * work[1]:
        area = work[0] * work[1]
        h, w = (area * h / w) ** 0.5, (area * w / h) ** 0.5
        h, w = max(stride, round(h / stride) * stride), max(stride, round(w / stride) * stride)
    else:
        h, w = h - h % stride, w - w % stride
    if h <= 0 or w <= 0:
        raise ValidationError(f"size {output[0]}x{output[1]} is too small for the network's "
                              f"stride {stride}")
    return h, w


@dataclass
class ClipInputs:
    """A clip's decoded network inputs (made by :func:`prepare_inputs`, possibly in a thread)."""

    images: torch.Tensor  # [1, V, 3, H, W]
    cameras: object  # Cameras, batch [1], V cameras
    lidar: list[torch.Tensor] | None
    size: tuple[int, int]
    frames: list[int]
    camera_names: list[str]
    load_seconds: float
    #: ``[1, V, 1, H, W]`` bool pixel validity from the clip's camera masks, or from masks
    #: estimated for a clip without any (None: all valid).
    valid: torch.Tensor | None = None
    #: The rig cameras' view of the ego itself (:class:`splatnet.scene.layers.EgoLayer`) or None.
    ego: object | None = None
    #: Seconds spent estimating the ego masks (not in ``load_seconds``).
    ego_seconds: float = 0.0

    def view_cameras(self):
        """The V views' cameras without the batch dimension (names and timestamps kept)."""
        from splatnet.cameras import Cameras

        c = self.cameras
        return Cameras(c.K[0], c.cam_to_world[0], c.width, c.height,
                       timestamps=None if c.timestamps is None else c.timestamps[0],
                       names=c.names, check=False)


def prepare_inputs(
    clip,
    stride: int,
    *,
    frames: Sequence[int] | None = None,
    cameras: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
    use_lidar: bool = True,
    ego_masks: str = "auto",
) -> ClipInputs:
    """Decode the context views (and LiDAR) of ``clip`` at a size divisible by ``stride``.

    ``ego_masks``: ``"auto"`` (default) estimates where a clip without camera masks shows the
    ego's own body (:func:`splatnet.pipeline.ego.estimate_ego_masks`; it needs the LiDAR, so
    not with ``use_lidar=False``, and a moving ego); ``"off"`` does not. A clip's own masks are
    always used.
    """
    from splatnet.cameras import Cameras
    from splatnet.pipeline.ego import estimate_ego_masks
    from splatnet.scene.layers import EgoLayer, masks_for_views

    if ego_masks not in ("auto", "off"):
        raise ValidationError(f"ego_masks: expected 'auto' or 'off', got {ego_masks!r}")

    t0 = time.perf_counter()
    frame_ids = list(range(clip.num_frames)) if frames is None else [int(f) for f in frames]
    names = list(clip.rig_camera_names) if cameras is None else list(cameras)
    if size is None:
        size = default_size(clip, names, stride)
    h, w = check_image_size(size[0], size[1], "size")
    work = len(frame_ids) * len(names) * h * w
    if work > MAX_NETWORK_PIXELS:
        raise ValidationError(
            f"size {h}x{w} with {len(frame_ids)} frame(s) x {len(names)} camera(s) is {work} input "
            f"pixels, over the network's limit of {MAX_NETWORK_PIXELS} per pass; use a smaller "
            "size or fewer frames/cameras")
    if h % stride or w % stride:
        raise ValidationError(f"size {h}x{w}: height and width must be divisible by the "
                              f"network's stride {stride}")
    views = clip.views(frames=frame_ids, cameras=names, size=(h, w))
    lidar = None
    sweeps = {}
    if use_lidar and clip.has_lidar:
        sweeps = {f: clip.lidar(f) for f in frame_ids}
        pts = [p for p in sweeps.values() if p is not None]
        lidar = [torch.cat(pts)] if pts else None
    ego, ego_seconds = None, 0.0
    if views.masks is not None:
        own = {n: ~views.masks[names.index(n), ..., 0] for n in names}
        ego = EgoLayer.from_views(views, own, estimated=False)
    elif ego_masks == "auto" and lidar is not None and len(frame_ids) > 1:
        t1 = time.perf_counter()
        found = estimate_ego_masks(views, sweeps)
        if found:
            views.masks = masks_for_views(found, views.camera_names, (h, w))
            ego = EgoLayer.from_views(views, found, estimated=True)
        ego_seconds = time.perf_counter() - t1
    c = views.cameras
    cams = Cameras(c.K[None], c.cam_to_world[None], c.width, c.height,
                   timestamps=None if c.timestamps is None else c.timestamps[None],
                   names=c.names, check=False)
    images = views.images.permute(0, 3, 1, 2)[None].contiguous()
    valid = None if views.masks is None else views.masks.permute(0, 3, 1, 2)[None].contiguous()
    return ClipInputs(images, cams, lidar, (h, w), frame_ids, names,
                      time.perf_counter() - t0 - ego_seconds, valid, ego, ego_seconds)


def forward(inputs: ClipInputs, model: nn.Module, device: str | torch.device | None = None):
    """The network on prepared inputs (eval mode, no gradients, LiDAR and camera masks passed
    on): ``(SplatNetOutput, seconds)``, raw per-pixel Gaussians, nothing pruned."""
    dev = resolve_device(device)
    model = model.to(dev).eval()
    lidar = None if inputs.lidar is None else [p.to(dev) for p in inputs.lidar]
    images, cams = inputs.images.to(dev), inputs.cameras.to(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        valid = None if inputs.valid is None else inputs.valid.to(dev)
        out = model(images, cams, lidar, valid) if valid is not None else model(images, cams, lidar)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    return out, time.perf_counter() - t0


def run_network(inputs: ClipInputs, model: nn.Module,
                device: str | torch.device | None = None, *,
                colour_fit: bool = True) -> Reconstruction:
    """One forward pass of ``model`` on prepared inputs, then prune / merge / cap, and, when
    the model has ``colour_fit`` on (and ``colour_fit`` here is True: a caller that only writes
    the Gaussians to a file skips it), each context camera's colour fitted to its images."""
    from splatnet.models.postprocessing import postprocess

    out, seconds = forward(inputs, model, device)
    timings = {"load": inputs.load_seconds, **({"ego_masks": inputs.ego_seconds}
                                                if inputs.ego_seconds else {}),
               "network": seconds}
    t0 = time.perf_counter()
    post = getattr(getattr(model, "config", None), "postprocess", None)
    g = postprocess(out.gaussians, post)[0]
    timings["postprocess"] = time.perf_counter() - t0
    sky = out.sky.detach() if getattr(out, "sky", None) is not None else None
    colour = getattr(out, "colour", None)
    if colour is not None:
        colour = type(colour)(colour.names, colour.matrices.detach())
    fitted = False
    fit_cfg = enabled_option(model, "colour_fit")
    if colour is None and colour_fit and fit_cfg is not None:
        t0 = time.perf_counter()
        colour = fit_context_colour(g, sky, inputs, device, prior=fit_cfg.prior)
        fitted = True
        timings["colour_fit"] = time.perf_counter() - t0
    return Reconstruction(g, sky, timings, inputs.size, inputs.frames, inputs.camera_names,
                          colour, getattr(out, "network_depth", None) is not None, inputs.ego,
                          fitted, upsample_filter_of(model, inputs))


def enabled_option(model: nn.Module, name: str):
    """The model config's inference option ``name`` when it is on, else None: ``colour_fit``
    (the context cameras' colour fitted to their images where the network predicts no matrices
    of its own), ``upsample_filter``, ``detail_layer`` (renders take the detail of the context
    images that the Gaussians miss, :class:`~splatnet.scene.layers.DetailLayer`). A model
    without a config, or without that option, has it off."""
    cfg = getattr(getattr(model, "config", None), name, None)
    return cfg if cfg is not None and cfg.enabled else None


def upsample_filter_of(model: nn.Module, inputs: ClipInputs) -> UpsampleFilter | None:
    """The model's ``upsample_filter`` for a reconstruction from ``inputs`` (each context
    camera's focal length at the network's size), or None when it is off."""
    up = enabled_option(model, "upsample_filter")
    if up is None:
        return None
    from splatnet.scene.layers import UpsampleFilter

    fy = inputs.cameras.K[0, :, 1, 1].tolist()  # views are frame-major: the first frame's
    return UpsampleFilter({n: float(fy[k]) for k, n in enumerate(inputs.camera_names)},
                          float(up.sigma), int(inputs.size[0]))


def fit_context_colour(gaussians: Gaussians, sky, inputs: ClipInputs,
                       device: str | torch.device | None = None, *, prior: float = 0.0):
    """Each context camera's gain and offset per colour channel
    (:func:`splatnet.models.colour.fit_colour`) from ``gaussians`` rendered into the context
    views of ``inputs`` (with ``sky`` behind), on the pixels the views' masks call the scene;
    ``prior`` weighs the identity (see ``fit_colour``)."""
    from splatnet.rendering import render

    dev = resolve_device(device)
    c = inputs.cameras
    cams = inputs.view_cameras().to(dev)
    with torch.no_grad():
        out = render(gaussians.to(dev), cams)
        rgb = out.rgb
        if sky is not None:
            rgb = rgb + (1.0 - out.alpha) * sky.render(c.to(dev))[0].to(rgb)
    return colour_of_renders(rgb, inputs, prior=prior)


def colour_of_renders(rgb: torch.Tensor, inputs: ClipInputs, *, prior: float = 0.0):
    """:func:`fit_colour` of ``rgb [V, H, W, 3]``, renders of the context views of ``inputs``
    (in their frame-major order), against their images, on the pixels the views' masks call
    the scene."""
    from splatnet.models.colour import fit_colour

    images = inputs.images[0].permute(0, 2, 3, 1)
    valid = None if inputs.valid is None else inputs.valid[0, :, 0]
    names = [n for _ in inputs.frames for n in inputs.camera_names]  # views are frame-major
    return fit_colour(rgb.clamp(0, 1), images, names, valid, prior)


def reconstruct_clip(
    clip,
    model: nn.Module,
    *,
    frames: Sequence[int] | None = None,
    cameras: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
    device: str | torch.device | None = None,
    use_lidar: bool = True,
    ego_masks: str = "auto",
    colour_fit: bool = True,
) -> Reconstruction:
    """Reconstruct a loaded :class:`~splatnet.clip.Clip` with ``model`` (see :func:`reconstruct`;
    ``colour_fit=False`` skips the model's per-camera colour fit, for callers that keep only the
    Gaussians)."""
    resolve_device(device)  # fail before decoding anything
    if size is None:
        size = network_size(model, default_size(clip, cameras or clip.rig_camera_names, 1))
    inputs = prepare_inputs(clip, int(getattr(model, "stride", 1)), frames=frames, cameras=cameras,
                            size=size, use_lidar=use_lidar, ego_masks=ego_masks)
    return run_network(inputs, model, device, colour_fit=colour_fit)


def reconstruct(
    clip_or_path,
    model: nn.Module | None = None,
    frames: Sequence[int] | None = None,
    cameras: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
    device: str | torch.device | None = None,
    ego_masks: str = "auto",
) -> Gaussians:
    """Reconstruct a clip in one forward pass of the network.

    Args:
        clip_or_path: a :class:`~splatnet.clip.Clip` or the path of a clip directory.
        model: a loaded network (default: :func:`splatnet.load_model()`, the shipped checkpoint).
        frames: context frame indices (default: all).
        cameras: context camera names (default: the clip's rig cameras).
        size: ``(H, W)`` the network runs at (default: :func:`network_size` of the clip's native
            size: the model's working size when the clip's images are larger).
        device: ``"cpu"`` (default) or ``"cuda"``.
        ego_masks: ``"auto"`` (default): for a clip without camera masks, the pixels where the
            rig's cameras see the ego's own body (hood, boot) are estimated from the context
            frames and their LiDAR (:mod:`splatnet.pipeline.ego`) and left out of the Gaussians;
            ``"off"``: they are not.

    Returns:
        The scene's :class:`~splatnet.Gaussians` in the clip's world frame, ready for
        ``save_ply``.

    Example:
        >>> g = splatnet.reconstruct("examples/data/sample_clip")  # doctest: +SKIP
        >>> g.save_ply("sample.ply")  # doctest: +SKIP
    """
    from splatnet.clip import Clip

    clip = clip_or_path if isinstance(clip_or_path, Clip) else Clip.load(_clip_path(clip_or_path))
    if model is None:
        from splatnet.io.checkpoint import load_model

        model = load_model(device=device)
    return reconstruct_clip(clip, model, frames=frames, cameras=cameras, size=size,
                            device=device, ego_masks=ego_masks, colour_fit=False).gaussians


def _clip_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such clip directory")
    if p.is_file() and p.name == "clip.json":  # the manifest stands for its clip, as in Clip.load
        return p.parent
    if not p.is_dir():
        raise ValidationError(f"{p}: not a clip (expected a directory with clip.json)")
    return p

"""``splatnet.render``: the public, differentiable renderer (validation, batching, backends).

Layers: this module validates and flattens the inputs, then calls the two stages of one backend
(``torch``: :mod:`.reference`; ``cpu`` / ``cuda``: the compiled ops behind :mod:`._ops`;
``gsplat``: :mod:`.gsplat_backend`) and composites the background. Shapes follow
``docs/conventions.md``; ``...`` below is the common batch shape of the Gaussians and the cameras.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from splatnet._limits import check_image_size
from splatnet._validate import check_finite
from splatnet.cameras import Cameras
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.rendering import backends, reference

BACKENDS = backends.names()


@dataclass
class RenderOutput:
    """What :func:`render` returns. ``...`` is the batch shape, C cameras, N Gaussians.

    Attributes:
        rgb: ``[..., C, H, W, 3]`` colour, background composited.
        alpha: ``[..., C, H, W, 1]`` accumulated opacity ``Σ α_i T_i``.
        depth: ``[..., C, H, W, 1]`` expected camera depth ``Σ z_i α_i T_i / max(alpha, 1e-10)``
            (0 where nothing was drawn).
        features: ``[..., C, H, W, D]`` blended per-Gaussian features, or None when none given.
        radii: ``[..., C, N, 2]`` int32 screen-space bounding-box half sizes (0 = culled).
        means2d: ``[..., C, N, 2]`` projected means in pixels; when gradients are enabled its
            ``.grad`` is filled by ``backward()`` (densification reads it).
        visible: ``[..., C, N]`` bool, the Gaussian reached the image of that camera.
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    features: Tensor | None
    radii: Tensor
    means2d: Tensor
    visible: Tensor


def render(
    gaussians: Gaussians,
    cameras: Cameras,
    *,
    sh_degree: int | None = None,
    background: Tensor | None = None,
    features: Tensor | None = None,
    antialiased: bool = False,
    near: float = 0.01,
    far: float = 1e10,
    backend: str = "auto",
) -> RenderOutput:
    """Render Gaussians into cameras, differentiably.

    Args:
        gaussians: ``splatnet.Gaussians`` with batch shape ``...`` (N Gaussians per scene).
        cameras: ``splatnet.Cameras`` with the same batch shape ``...`` (C cameras per scene).
        sh_degree: SH degree to evaluate (default: all of the Gaussians' bands).
        background: colour behind the Gaussians, broadcastable to ``[..., C, 3]`` (default
            black); differentiable.
        features: optional per-Gaussian features ``[..., N, D]`` (D ≥ 1) blended like colours.
        antialiased: Mip-Splatting style opacity compensation (see docs/conventions.md).
        near, far: camera-depth culling planes.
        backend: ``"auto"`` (``cuda`` for CUDA tensors, ``cpu`` otherwise, ``torch`` for
            float64), ``"torch"`` (pure PyTorch reference), ``"cpu"``, ``"cuda"`` (compiled
            kernels, float32) or ``"gsplat"`` (needs gsplat with its CUDA build).

    Dynamic scenes: when the Gaussians have ``velocities`` and ``times`` and the cameras have
    ``timestamps``, each camera sees ``means + velocities · (t_cam − times)``. Cameras without
    timestamps see the means as stored.

    Example:
        >>> out = render(gaussians, cameras)  # doctest: +SKIP
        >>> out.rgb.shape  # [C, H, W, 3] for unbatched inputs  # doctest: +SKIP
    """
    _check_types(gaussians, cameras)
    check_image_size(cameras.height, cameras.width, "cameras: image size")  # before allocating
    batch = gaussians.batch_shape
    n, c = gaussians.num_gaussians, cameras.num_cameras
    width, height = cameras.width, cameras.height
    dtype, device = gaussians.dtype, gaussians.device
    if sh_degree is None:
        sh_degree = gaussians.sh_degree
    if isinstance(sh_degree, bool) or not isinstance(sh_degree, int) or not (
        0 <= sh_degree <= gaussians.sh_degree
    ):
        raise ValidationError(
            f"sh_degree: expected an int in [0, {gaussians.sh_degree}] (the Gaussians' SH degree), "
            f"got {sh_degree!r}"
        )
    if not (math.isfinite(near) and near >= 0 and far > near):
        raise ValidationError(f"near/far: need 0 <= near < far, got near={near}, far={far}")
    features = _check_features(features, gaussians)
    background = _check_background(background, gaussians, batch + (c,))
    backend = _resolve_backend(backend, device, dtype)
    # The C++ CPU ops check their inputs for NaN/inf themselves (vectorised, in the same pass
    # that reads them): here only the small inputs they never see. A non-finite value they find
    # is re-reported below as a ValidationError naming the user-facing field.
    _check_finite_inputs(gaussians, cameras, features, background, per_gaussian=backend != "cpu")
    if n == 0 and backends.get(backend).render is not None:
        backend = "torch"  # nothing to draw: the background alone, on any device

    # Flatten the batch: B scenes of N Gaussians, each seen by C cameras.
    b = math.prod(batch)
    means = gaussians.means.reshape(b, n, 3)
    quats = gaussians.quats.reshape(b, n, 4)
    scales = gaussians.scales.reshape(b, n, 3)
    opacities = gaussians.opacities.reshape(b, n)
    sh = gaussians.sh.reshape(b, n, gaussians.sh.shape[-2], 3)
    feats = None if features is None else features.reshape(b, n, features.shape[-1])
    viewmats = cameras.world_to_cam.to(dtype).reshape(b, c, 4, 4)
    Ks = cameras.K.to(dtype).reshape(b, c, 3, 3)
    scenes, cams = b, c
    if gaussians.is_dynamic and cameras.timestamps is not None:
        # Each camera is its own single-camera scene at its own time: the ops never see time.
        dt = cameras.timestamps.reshape(b, c, 1) - gaussians.times.to(torch.float64).reshape(b, 1, n)
        moved = means[:, None] + gaussians.velocities.reshape(b, 1, n, 3) * dt.to(dtype)[..., None]
        means = moved.reshape(b * c, n, 3)
        quats, scales, opacities, sh = (
            t[:, None].expand(b, c, *t.shape[1:]).reshape(b * c, *t.shape[1:])
            for t in (quats, scales, opacities, sh)
        )
        if feats is not None:
            feats = feats[:, None].expand(b, c, n, feats.shape[-1]).reshape(b * c, n, feats.shape[-1])
        viewmats = viewmats.reshape(b * c, 1, 4, 4)
        Ks = Ks.reshape(b * c, 1, 3, 3)
        scenes, cams = b * c, 1

    d = 0 if feats is None else feats.shape[-1]
    chosen = backends.get(backend)
    if chosen.render is not None:
        render_whole = chosen.render()
        # gsplat takes any leading dims: hand it the unflattened ones, so that its projected
        # means already have the output shape (static scenes) and their .grad is gsplat's own.
        lead = batch if scenes == b else batch + (c,)
        image, alpha, means2d, radii = render_whole(
            means.reshape(lead + means.shape[1:]), quats.reshape(lead + quats.shape[1:]),
            scales.reshape(lead + scales.shape[1:]), opacities.reshape(lead + opacities.shape[1:]),
            sh.reshape(lead + sh.shape[1:]), viewmats.reshape(lead + viewmats.shape[1:]),
            Ks.reshape(lead + Ks.shape[1:]), width, height, sh_degree, near, far, antialiased,
            None if feats is None else feats.reshape(lead + feats.shape[1:]),
        )
        means2d_out = _grad_carrier(means2d, batch + (c, n, 2))
    else:
        project, rasterize = chosen.stages()
        with _naming_non_finite(gaussians, cameras, features, background):
            means2d, conics, depths, radii, opac, colors = project(
                means, quats, scales, opacities, sh, viewmats, Ks, width, height, sh_degree,
                near, far, antialiased,
            )
        # The tensor handed back is the one the rasterizer consumes, so its .grad is complete.
        means2d_out = means2d.reshape(batch + (c, n, 2))
        if means2d_out.requires_grad:
            means2d_out.retain_grad()
        means2d = means2d_out.reshape(scenes, cams, n, 2)
        values = [colors, depths[..., None]]
        if feats is not None:
            values.append(feats[:, None].expand(scenes, cams, n, d))
        values = torch.cat(values, dim=-1)  # [B, C, N, 3 + 1 + D]
        if n == 0:
            image = values.new_zeros(scenes, cams, height, width, values.shape[-1])
            alpha = values.new_zeros(scenes, cams, height, width, 1)
        else:
            with _naming_non_finite(gaussians, cameras, features, background):
                image, alpha = rasterize(
                    means2d, conics, values, opac, depths, radii, width, height, reference.TILE_SIZE
                )

    image = image.reshape(batch + (c, height, width, 4 + d))
    alpha = alpha.reshape(batch + (c, height, width, 1))
    rgb = image[..., :3]
    if background is not None:
        rgb = rgb + (1.0 - alpha) * background[..., None, None, :]
    depth = image[..., 3:4] / alpha.clamp_min(reference.DEPTH_EPS)
    radii = radii.reshape(batch + (c, n, 2))
    return RenderOutput(
        rgb=rgb,
        alpha=alpha,
        depth=depth,
        features=image[..., 4:] if feats is not None else None,
        radii=radii,
        means2d=means2d_out,
        visible=(radii > 0).all(-1),
    )


def _grad_carrier(means2d: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``means2d`` in ``shape`` whose ``.grad`` backward fills (for a backend whose projected
    means we cannot reshape inside the graph)."""
    if tuple(means2d.shape) == shape:
        if means2d.requires_grad:
            means2d.retain_grad()
        return means2d
    # A reshaped view would never receive .grad: hand out a leaf copy that a hook fills.
    carrier = means2d.detach().reshape(shape).requires_grad_(means2d.requires_grad)
    if means2d.requires_grad:

        def fill(grad: Tensor) -> None:
            g = grad.reshape(shape)
            carrier.grad = g.clone() if carrier.grad is None else carrier.grad + g

        means2d.register_hook(fill)
    return carrier


# ----------------------------------------------------------------------------- validation
def _check_types(gaussians: Gaussians, cameras: Cameras) -> None:
    if not isinstance(gaussians, Gaussians):
        raise ValidationError(f"gaussians: expected splatnet.Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise ValidationError(f"cameras: expected splatnet.Cameras, got {type(cameras).__name__}")
    if gaussians.batch_shape != cameras.batch_shape:
        raise ValidationError(
            f"gaussians and cameras: leading batch dimensions differ ({list(gaussians.batch_shape)} "
            f"vs {list(cameras.batch_shape)}); they must match (B scenes × C cameras)"
        )
    if gaussians.device != cameras.device:
        raise ValidationError(
            f"gaussians are on {gaussians.device} but cameras on {cameras.device}; move both to "
            "one device (.to(device))"
        )


def _check_features(features: Tensor | None, gaussians: Gaussians) -> Tensor | None:
    if features is None:
        return None
    if not isinstance(features, Tensor) or not features.is_floating_point():
        raise ValidationError("features: expected a floating-point tensor [..., N, D]")
    want = gaussians.batch_shape + (gaussians.num_gaussians,)
    if features.dim() != len(want) + 1 or tuple(features.shape[:-1]) != want or features.shape[-1] < 1:
        raise ValidationError(
            f"features: expected shape {list(want) + ['D']} with D >= 1 (batch, N, D), "
            f"got {list(features.shape)}"
        )
    if features.device != gaussians.device:
        raise ValidationError(f"features are on {features.device}, the Gaussians on {gaussians.device}")
    return features.to(gaussians.dtype)


def _check_background(background: Tensor | None, gaussians: Gaussians,
                      target: tuple[int, ...]) -> Tensor | None:
    if background is None:
        return None
    if not isinstance(background, Tensor):
        background = torch.as_tensor(background, dtype=gaussians.dtype, device=gaussians.device)
    if not background.is_floating_point() or background.dim() == 0 or background.shape[-1] != 3:
        raise ValidationError(
            f"background: expected a float tensor broadcastable to {list(target) + [3]}, "
            f"got {list(background.shape)} ({background.dtype})"
        )
    try:
        torch.broadcast_shapes(background.shape, target + (3,))
    except RuntimeError:
        raise ValidationError(
            f"background: shape {list(background.shape)} does not broadcast to "
            f"{list(target) + [3]} ([..., C, 3])"
        ) from None
    if background.device != gaussians.device:
        raise ValidationError(f"background is on {background.device}, the Gaussians on {gaussians.device}")
    return background.to(gaussians.dtype).expand(target + (3,))


def _check_finite_inputs(gaussians: Gaussians, cameras: Cameras, features: Tensor | None,
                         background: Tensor | None, per_gaussian: bool = True) -> None:
    """NaN/inf anywhere → ValidationError naming the field (``per_gaussian=False``: only the
    cameras and background, for backends whose ops check the per-Gaussian tensors).

    One reduction pass per tensor and one device sync when all is well: a NaN or inf makes the
    sum non-finite; only then (or on an overflowing sum) is each field checked element-wise.
    """
    named = dict(gaussians.fields()) if per_gaussian else {}
    named["cameras.K"] = cameras.K
    named["cameras.cam_to_world"] = cameras.cam_to_world
    if cameras.timestamps is not None and gaussians.is_dynamic:
        named["cameras.timestamps"] = cameras.timestamps
    if features is not None and per_gaussian:
        named["features"] = features
    if background is not None:
        named["background"] = background
    named = {k: v for k, v in named.items() if v.numel()}
    if not named:
        return
    with torch.no_grad():
        sums = torch.stack([v.sum(dtype=torch.float64) for v in named.values()])
        if bool(torch.isfinite(sums).all()):
            return
        for name, value in named.items():
            check_finite(name, value)


@contextlib.contextmanager
def _naming_non_finite(gaussians: Gaussians, cameras: Cameras, features: Tensor | None,
                       background: Tensor | None) -> Iterator[None]:
    """Turn a compiled op's "non-finite" error into a ValidationError naming the user's field."""
    try:
        yield
    except RuntimeError as exc:
        if "non-finite" in str(exc):
            _check_finite_inputs(gaussians, cameras, features, background)
        raise


# ----------------------------------------------------------------------------- backends
def _resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """The name of the backend to use (``backends.select``: checked against the tensors and
    this machine)."""
    return backends.select(backend, device, dtype).name

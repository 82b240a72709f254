"""``splatnet.GaussianHead``: per-pixel features + depth → pixel-aligned 3D Gaussians.

The part of SplatNet a driving model can import on its own: give it feature maps from any
backbone, a depth map (or depth logits over candidate depths) and the cameras, and it returns
``splatnet.Gaussians`` that :func:`splatnet.render` draws differentiably. SplatNet uses the same
class internally.

Per cell (one Gaussian per ``stride × stride`` pixels, stride = image size / feature size):

- depth: expected inverse depth of the softmax over candidates (or the given depth), refined by
  a bounded correction; the centre is ``origin + R · K⁻¹ [u, v, 1] · z`` with ``z`` the camera
  depth and ``(u, v)`` the cell centre plus a sub-cell offset;
- scale: ``stride · z / f · (lo + (hi − lo) · sigmoid(x))`` (a footprint of lo–hi cells);
- rotation: a camera-frame quaternion biased to identity, rotated into the world;
- opacity: ``sigmoid(x + bias) · (1 − p_sky)``; sky cells fade out instead of sitting at
  infinity;
- colour: SH DC from the cell's mean pixel colour plus a learned residual, higher bands learned;
- velocity (optional): bounded, camera frame rotated to world, ``times`` = the view timestamp.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from splatnet.cameras import Cameras
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.models.geometry import matrix_to_quat, no_autocast
from splatnet.sh import num_sh_bases, rgb_to_sh, sh_to_rgb

#: Channels the head adds to the user's features: normalised inverse depth, confidence, unit
#: camera-frame ray (3), Plücker ray in the world (6) and the cell's mean colour (3).
GEOMETRY_CHANNELS = 14


@dataclass
class HeadOutput:
    """What :class:`GaussianHead` returns (``h × w`` is the feature grid).

    Attributes:
        gaussians: batch ``[B]``, ``N = V · h · w`` Gaussians ordered view, row, column.
        depth: ``[B, V, 1, h, w]`` refined camera depth z of the Gaussian centres (before the
            sub-cell offset moves them along the image plane).
        coarse_depth: ``[B, V, 1, h, w]`` depth before refinement.
        confidence: ``[B, V, 1, h, w]`` max candidate probability (1 for a given depth map).
        opacity: ``[B, V, 1, h, w]`` activated opacity (sky suppression included).
        sky_prob: ``[B, V, 1, h, w]`` sky probability, or None when the head predicts no sky.
    """

    gaussians: Gaussians
    depth: Tensor
    coarse_depth: Tensor
    confidence: Tensor
    opacity: Tensor
    sky_prob: Tensor | None


class GaussianHead(nn.Module):
    """Feature maps + depth + cameras → pixel-aligned Gaussians.

    Args:
        feature_dim: channels C of the feature maps the head is given.
        coarse_dim: channels of optional lower-resolution features (``coarse_features``), mixed
            at their own resolution and upsampled (0: none).
        hidden_dim: width of the head's convolutions.
        sh_degree: SH degree of the output colour (0–3).
        near, far: depth range (camera z); depths are clamped into it.
        predict_velocity: also predict per-Gaussian velocities (cameras need timestamps).
        max_velocity: bound on each velocity component (world units per second).
        opacity_bias: initial opacity logit.
        scale_range: footprint range ``(lo, hi)`` in cells.
        depth_correction: largest change of normalised inverse depth the refinement may make.
        predict_sky: predict a sky probability that suppresses opacity.

    Shape:
        - features: ``[B, V, C, h, w]``; the image size must be ``h`` and ``w`` times an integer.
        - depth: ``[B, V, 1, h', w']`` camera z, or depth_logits ``[B, V, D, h', w']`` with
          candidate_depths ``[D]`` or ``[B, V, D]`` (any ``h', w'``: resized to ``h × w``).
        - images: optional ``[B, V, 3, H, W]`` in [0, 1], the colour the DC term starts from.
        - coarse_features: ``[B, V, coarse_dim, h', w']`` when built with ``coarse_dim``.

    Example:
        >>> head = GaussianHead(64)
        >>> out = head(feats, cameras, depth=depth)  # doctest: +SKIP
        >>> splatnet.render(out.gaussians, target_cameras).rgb  # doctest: +SKIP
    """

    def __init__(self, feature_dim: int, *, coarse_dim: int = 0, hidden_dim: int = 32,
                 sh_degree: int = 1,
                 near: float = 1.0, far: float = 100.0, predict_velocity: bool = False,
                 max_velocity: float = 40.0, opacity_bias: float = -1.0,
                 scale_range: tuple[float, float] = (0.1, 3.0), depth_correction: float = 0.1,
                 predict_sky: bool = True) -> None:
        super().__init__()
        _check_args(feature_dim=feature_dim, coarse_dim=coarse_dim, hidden_dim=hidden_dim,
                    sh_degree=sh_degree, near=near, far=far, predict_velocity=predict_velocity,
                    max_velocity=max_velocity, opacity_bias=opacity_bias,
                    scale_range=scale_range, depth_correction=depth_correction,
                    predict_sky=predict_sky)
        self.feature_dim = feature_dim
        self.sh_degree = sh_degree
        self.near, self.far = float(near), float(far)
        self.predict_velocity = predict_velocity
        self.max_velocity = float(max_velocity)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.depth_correction = float(depth_correction)
        self.predict_sky = predict_sky
        k = num_sh_bases(sh_degree)
        # Output layout: depth correction 1, offset 2, scale 3, rotation 4, colour 3K, opacity 1,
        # [sky 1], [velocity 3].
        sizes = [1, 2, 3, 4, 3 * k, 1] + ([1] if predict_sky else []) \
            + ([3] if predict_velocity else [])
        self._sizes = sizes
        groups = 8 if hidden_dim % 8 == 0 else 1
        # 1×1 mixing, one 3×3 for neighbourhood context, 1×1 out: the head runs at the
        # Gaussian resolution (stride 2: a quarter of all pixels), so it is kept light.
        # The first 1×1 layer is split in two (features, geometry) to avoid concatenating them.
        self.mix_features = nn.Conv2d(feature_dim, hidden_dim, 1)
        self.coarse_dim = coarse_dim
        if coarse_dim:
            # Mixed at its own resolution, then upsampled: a 1×1 convolution commutes with
            # bilinear resizing, so this equals upsampling first and costs a fraction.
            self.mix_coarse = nn.Conv2d(coarse_dim, hidden_dim, 1, bias=False)
        self.mix_geometry = nn.Conv2d(GEOMETRY_CHANNELS, hidden_dim, 1, bias=False)
        self.net = nn.Sequential(
            nn.GroupNorm(groups, hidden_dim), nn.ReLU(inplace=True),
            # A full 3×3 (a depthwise-separable one fits a small clip ~2 dB slower in 25 steps).
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(hidden_dim, sum(sizes), 1)
        with torch.no_grad():
            # Small outputs at init: colour = pixel colour, identity rotation, no offset.
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()
            bias = self.out.bias.split(sizes)
            lo, hi = self.scale_range
            frac = min(max((0.5 - lo) / (hi - lo), 1e-3), 1 - 1e-3)
            # (on the CPU explicitly: the bias may be on the meta device while a checkpoint's
            # config is checked against its weights)
            bias[2].fill_(float(torch.logit(torch.tensor(frac, device="cpu"))))  # footprint ≈ 0.5 cell
            bias[5].fill_(opacity_bias)
            if predict_sky:
                bias[6].fill_(-2.0)

    @classmethod
    def from_config(cls, feature_dim: int, near: float, far: float, cfg,
                    coarse_dim: int = 0) -> GaussianHead:
        """Build from a :class:`splatnet.models.config.HeadConfig`."""
        return cls(feature_dim, coarse_dim=coarse_dim, hidden_dim=cfg.hidden_dim,
                   sh_degree=cfg.sh_degree, near=near, far=far,
                   predict_velocity=cfg.predict_velocity, max_velocity=cfg.max_velocity,
                   opacity_bias=cfg.opacity_bias, scale_range=tuple(cfg.scale_range),
                   depth_correction=cfg.depth_correction, predict_sky=cfg.predict_sky)

    def forward(self, features: Tensor, cameras: Cameras, *, depth: Tensor | None = None,
                depth_logits: Tensor | None = None, candidate_depths: Tensor | None = None,
                images: Tensor | None = None,
                coarse_features: Tensor | None = None) -> HeadOutput:
        b, v, _, h, w = self._check(features, cameras, depth, depth_logits, candidate_depths,
                                    images, coarse_features)
        # Geometry runs in at least float32 (bf16 cannot hold pixel coordinates or depths).
        dtype, device = torch.promote_types(features.dtype, torch.float32), features.device
        width, height = cameras.width, cameras.height
        inv_near, inv_far = 1.0 / self.near, 1.0 / self.far

        with no_autocast(device):  # geometry in float32 even under bf16 autocast
            # Coarse inverse depth and confidence on the head's grid.
            if depth_logits is not None:
                cand = candidate_depths.to(dtype)
                if cand.dim() == 1:
                    cand = cand.view(1, 1, -1)
                probs = depth_logits.to(dtype).softmax(dim=2)  # [B, V, D, h', w']
                inv = (probs * (1.0 / cand)[..., None, None]).sum(2, keepdim=True)
                conf = probs.amax(dim=2, keepdim=True)
            else:
                inv = 1.0 / depth.to(dtype).clamp(self.near, self.far)
                conf = torch.ones_like(inv)
            inv = _resize(inv, h, w)
            conf = _resize(conf, h, w)
            disp = ((inv - inv_far) / (inv_near - inv_far)).clamp(0.0, 1.0)  # [B, V, 1, h, w]

            # Geometry of the cells, channel-first: the camera-frame ray K⁻¹[u, v, 1] of cell (i, j)
            # is (x_j, y_i, 1), so everything per view is a 3×3 (or 9×3) matrix times these rays.
            K = cameras.K.to(dtype)  # [B, V, 3, 3]
            c2w = cameras.cam_to_world.to(dtype)  # [B, V, 4, 4]
            rot, centers = c2w[..., :3, :3], c2w[..., :3, 3]  # [B, V, 3, 3], [B, V, 3]
            fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]  # [B, V, 1, 1]
            cw, ch = width / w, height / h  # cell size in pixels
            uu = (torch.arange(w, device=device, dtype=dtype) + 0.5) * cw
            vv = (torch.arange(h, device=device, dtype=dtype) + 0.5) * ch
            xs = (uu - K[..., 0, 2, None]) / K[..., 0, 0, None]  # [B, V, w]
            ys = (vv - K[..., 1, 2, None]) / K[..., 1, 1, None]  # [B, V, h]
            x_grid = xs[:, :, None, :].expand(b, v, h, w)
            y_grid = ys[:, :, :, None].expand(b, v, h, w)
            dirs_cam = torch.stack([x_grid, y_grid, torch.ones_like(x_grid)], dim=2)  # [B, V, 3, h, w]
            inv_norm = torch.rsqrt(xs[:, :, None, :] ** 2 + ys[:, :, :, None] ** 2 + 1.0)
            # Unit camera-frame ray, then Plücker [d, (o − c̄) × d / 10 m] in the world: one 9×3 map.
            rel = (centers - centers.mean(1, keepdim=True)) / 10.0
            ray_mat = torch.cat([torch.eye(3, dtype=dtype, device=device).expand(b, v, 3, 3), rot,
                                 _skew(rel) @ rot], dim=2)  # [B, V, 9, 3]
            geo_rays = (ray_mat @ dirs_cam.reshape(b, v, 3, h * w)).reshape(b, v, 9, h, w)
            geo_rays = geo_rays * inv_norm[:, :, None]
            if images is not None:
                colour = F.adaptive_avg_pool2d(images.reshape(b * v, 3, height, width).to(dtype),
                                               (h, w)).reshape(b, v, 3, h, w)
            else:
                colour = features.new_zeros(b, v, 3, h, w)
            geo = torch.cat([disp, conf, geo_rays, colour], dim=2).reshape(b * v, -1, h, w)
        x = self.mix_features(features.reshape(b * v, -1, h, w))
        x = x + self.mix_geometry(geo.to(features.dtype))
        if coarse_features is not None:
            y = self.mix_coarse(coarse_features.flatten(0, 1))
            x = x + F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        x = x.contiguous(memory_format=torch.channels_last)  # faster 3×3 convolutions on CPU
        raw = self.out(self.net(x)).reshape(b, v, -1, h, w)
        with no_autocast(device):  # geometry in float32 even under bf16 autocast
            parts = list(raw.to(dtype).split(self._sizes, dim=2))
            d_corr, r_off, r_scale, r_rot, r_col, r_opa = parts[:6]
            rest = parts[6:]
            r_sky = rest.pop(0) if self.predict_sky else None
            r_vel = rest.pop(0) if self.predict_velocity else None

            # Depth: bounded refinement of the normalised inverse depth.
            disp_f = (disp + self.depth_correction * torch.tanh(d_corr)).clamp(0.0, 1.0)
            z = 1.0 / (inv_far + disp_f * (inv_near - inv_far))  # [B, V, 1, h, w]
            # Centre: origin + R · K⁻¹ [u + δu, v + δv, 1] · z (camera z, not distance along the ray).
            off = torch.sigmoid(r_off) - 0.5  # [B, V, 2, h, w] in cells
            zc = z[:, :, 0]
            p_cam = torch.stack([(x_grid + off[:, :, 0] * (cw / fx)) * zc,
                                 (y_grid + off[:, :, 1] * (ch / fy)) * zc, zc], dim=2)
            means = rot @ p_cam.reshape(b, v, 3, h * w) + centers[..., None]  # [B, V, 3, h·w]

            f = 0.5 * (K[..., 0, 0] + K[..., 1, 1])[..., None, None, None]  # [B, V, 1, 1, 1]
            lo, hi = self.scale_range
            cell_world = cw * z / f  # [B, V, 1, h, w] one cell's size at depth z
            scales = cell_world * (lo + (hi - lo) * torch.sigmoid(r_scale))  # [B, V, 3, h, w]

            # Rotation: camera-frame quaternion (biased to identity), composed with the camera's:
            # q_cam ⊗ q_local is a 4×4 matrix of q_cam times q_local.
            q_local = r_rot + torch.tensor([1.0, 0, 0, 0], dtype=dtype, device=device)[:, None, None]
            q_local = q_local / q_local.norm(dim=2, keepdim=True).clamp_min(1e-8)
            q_cam = matrix_to_quat(rot)  # [B, V, 4]
            quats = _quat_left_matrix(q_cam) @ q_local.reshape(b, v, 4, h * w)  # [B, V, 4, h·w]

            opacity = torch.sigmoid(r_opa)
            sky_prob = None
            if r_sky is not None:
                sky_prob = torch.sigmoid(r_sky)
                opacity = opacity * (1.0 - sky_prob)

            k = num_sh_bases(self.sh_degree)
            sh = r_col.reshape(b, v, k, 3, h, w)
            dc = sh[:, :, 0]
            if images is not None:
                dc = dc + rgb_to_sh(colour)  # [B, V, 3, h, w]
            # The DC colour stays within [0, 1]: what 8-bit viewers (and .splat) can show, so an
            # exported scene looks in a viewer as it does here (docs/architecture.md, "Files").
            dc = rgb_to_sh(sh_to_rgb(dc).clamp(0.0, 1.0))
            sh = torch.cat([dc[:, :, None], sh[:, :, 1:]], dim=2)

            n = v * h * w

            def flat(t: Tensor) -> Tensor:  # [B, V, ch..., h, w] → [B, N, ch...]
                lead = t.shape[2:-2]
                t = t.movedim((-2, -1), (2, 3))
                return t.reshape(b, n, *lead)

            velocities = times = None
            if r_vel is not None:
                vel_cam = self.max_velocity * torch.tanh(r_vel).reshape(b, v, 3, h * w)
                velocities = (rot @ vel_cam).transpose(-1, -2).reshape(b, n, 3)
                ts = cameras.timestamps.to(dtype).reshape(b, v, 1)
                times = ts.expand(b, v, h * w).reshape(b, n)
            gaussians = Gaussians(
                means=means.transpose(-1, -2).reshape(b, n, 3),
                quats=quats.transpose(-1, -2).reshape(b, n, 4),
                scales=flat(scales),
                opacities=flat(opacity)[..., 0],
                sh=flat(sh),
                velocities=velocities,
                times=times,
                check=False,
            )
            return HeadOutput(gaussians=gaussians, depth=z, coarse_depth=1.0 / inv.clamp_min(1e-12),
                              confidence=conf, opacity=opacity, sky_prob=sky_prob)

    def _check(self, features, cameras, depth, depth_logits, candidate_depths, images,
               coarse_features):
        if not isinstance(cameras, Cameras):
            raise ValidationError(f"cameras: expected splatnet.Cameras, got {type(cameras).__name__}")
        if features.dim() != 5:
            raise ValidationError(f"features: expected [B, V, C, h, w], got {tuple(features.shape)}")
        b, v, c, h, w = features.shape
        if c != self.feature_dim:
            raise ValidationError(f"features: the head was built for {self.feature_dim} channels, "
                                  f"got {c}")
        if cameras.batch_shape != (b,) or cameras.num_cameras != v:
            raise ValidationError(f"cameras: expected batch shape ({b},) with {v} cameras to match "
                                  f"features {tuple(features.shape)}, got batch "
                                  f"{cameras.batch_shape} with {cameras.num_cameras}")
        if cameras.width % w or cameras.height % h:
            raise ValidationError(
                f"features: the image size {cameras.width}x{cameras.height} is not an integer "
                f"multiple of the feature grid {w}x{h} (one Gaussian per stride x stride pixels)")
        if (depth is None) == (depth_logits is None):
            raise ValidationError("give exactly one of depth [B, V, 1, h, w] or depth_logits "
                                  "[B, V, D, h, w] (with candidate_depths)")
        if depth is not None and (depth.dim() != 5 or depth.shape[:3] != (b, v, 1)):
            raise ValidationError(f"depth: expected [{b}, {v}, 1, h, w], got {tuple(depth.shape)}")
        if depth_logits is not None:
            if depth_logits.dim() != 5 or depth_logits.shape[:2] != (b, v):
                raise ValidationError(f"depth_logits: expected [{b}, {v}, D, h, w], got "
                                      f"{tuple(depth_logits.shape)}")
            nd = depth_logits.shape[2]
            if candidate_depths is None or candidate_depths.shape not in ((nd,), (b, v, nd)):
                got = None if candidate_depths is None else tuple(candidate_depths.shape)
                raise ValidationError(f"candidate_depths: expected [{nd}] or [{b}, {v}, {nd}] "
                                      f"camera depths, got {got}")
        if images is not None and tuple(images.shape) != (b, v, 3, cameras.height, cameras.width):
            raise ValidationError(f"images: expected [{b}, {v}, 3, {cameras.height}, "
                                  f"{cameras.width}], got {tuple(images.shape)}")
        if self.coarse_dim and (coarse_features is None or coarse_features.dim() != 5
                                or coarse_features.shape[:3] != (b, v, self.coarse_dim)):
            got = None if coarse_features is None else tuple(coarse_features.shape)
            raise ValidationError(f"coarse_features: the head was built for [{b}, {v}, "
                                  f"{self.coarse_dim}, h', w'] features, got {got}")
        if not self.coarse_dim and coarse_features is not None:
            raise ValidationError("coarse_features: this head was built with coarse_dim=0")
        if self.predict_velocity and cameras.timestamps is None:
            raise ValidationError("predict_velocity needs Cameras.timestamps (the time of each view)")
        return b, v, c, h, w


def _check_args(*, feature_dim, coarse_dim, hidden_dim, sh_degree, near, far, predict_velocity,
                max_velocity, opacity_bias, scale_range, depth_correction, predict_sky) -> None:
    """``GaussianHead``'s constructor arguments: one ``ValidationError`` naming the first bad one."""
    def fail(name: str, want: str, got) -> None:
        raise ValidationError(f"GaussianHead: {name} must be {want}, got {got!r}")

    def is_int(v) -> bool:  # numpy integers too, not bools
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    def is_num(v) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

    for name, v, lo in (("feature_dim", feature_dim, 1), ("coarse_dim", coarse_dim, 0),
                        ("hidden_dim", hidden_dim, 1)):
        if not is_int(v) or v < lo:
            fail(name, f"an integer >= {lo}", v)
    if not is_int(sh_degree) or not 0 <= sh_degree <= 3:
        fail("sh_degree", "an integer in 0-3", sh_degree)
    if not is_num(near) or near <= 0:
        fail("near", "a finite number > 0", near)
    if not is_num(far) or far <= near:
        fail("far", f"a finite number > near ({near})", far)
    if not is_num(max_velocity) or max_velocity <= 0:
        fail("max_velocity", "a finite number > 0", max_velocity)
    if not is_num(opacity_bias):
        fail("opacity_bias", "a finite number", opacity_bias)
    if not isinstance(scale_range, (tuple, list)) or len(scale_range) != 2 \
            or not all(is_num(v) for v in scale_range) or not 0 < scale_range[0] < scale_range[1]:
        fail("scale_range", "a pair (lo, hi) of finite numbers with 0 < lo < hi", scale_range)
    if not is_num(depth_correction) or depth_correction < 0:
        fail("depth_correction", "a finite number >= 0", depth_correction)
    for name, v in (("predict_velocity", predict_velocity), ("predict_sky", predict_sky)):
        if not isinstance(v, bool):
            fail(name, "True or False", v)


def _skew(v: Tensor) -> Tensor:
    """``[..., 3]`` → ``[..., 3, 3]`` cross-product matrices: ``_skew(a) @ b = a × b``."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape, 3)


def _quat_left_matrix(q: Tensor) -> Tensor:
    """``[..., 4]`` w, x, y, z → ``[..., 4, 4]`` with ``L(q) @ p = q ⊗ p`` (Hamilton product)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([w, -x, -y, -z, x, w, -z, y, y, z, w, -x, z, -y, x, w],
                       dim=-1).reshape(*q.shape, 4)


def _resize(x: Tensor, h: int, w: int) -> Tensor:
    """Bilinear resize of ``[B, V, C, h', w']`` to ``[B, V, C, h, w]`` (no-op when equal)."""
    if x.shape[-2:] == (h, w):
        return x
    b, v = x.shape[:2]
    y = F.interpolate(x.flatten(0, 1), size=(h, w), mode="bilinear", align_corners=False)
    return y.reshape(b, v, -1, h, w)

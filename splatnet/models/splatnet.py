"""SplatNet: posed images of a multi-camera rig over a few frames → 3D Gaussians, one pass.

Pipeline (``MODEL_NOTES.md`` has the reasoning): a shared CNN encoder with Plücker rays →
plane-sweep cost volume at 1/4 resolution between neighbouring views (same camera at other
frames, left/right rig neighbours) → a depth U-Net giving logits over inverse-depth candidates →
:class:`splatnet.GaussianHead` at the configured stride (depth refinement, pixel-aligned
Gaussians) and a sky model for what lies beyond ``far``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from splatnet.cameras import Cameras, sparse_depth
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.models import head as _head
from splatnet.models.colour import CameraColour, ColourAffine
from splatnet.models.config import SplatNetConfig
from splatnet.models.cost_volume import (
    DepthNet,
    frame_ranks,
    inverse_depth_candidates,
    plane_sweep,
    select_sources,
)
from splatnet.models.encoder import Encoder
from splatnet.models.geometry import cell_centers, no_autocast, plucker, rotate, unproject_dirs
from splatnet.models.lidar_fusion import depth_log_ratio, move_along_rays
from splatnet.models.postprocessing import postprocess
from splatnet.models.sky import SkyBackground, SkyModel
from splatnet.models.visibility import in_front_of_other_views


@dataclass
class SplatNetOutput:
    """What :meth:`SplatNet.forward` returns (``h × w = H/stride × W/stride``).

    Attributes:
        gaussians: batch ``[B]``, ``N = V · h · w`` raw Gaussians (no pruning: train on these).
        depth: ``[B, V, 1, h, w]`` final camera depth z per Gaussian cell (after LiDAR depth
            fusion when ``config.lidar_fusion.enabled`` and LiDAR was given).
        coarse_depth: ``[B, V, 1, H/4, W/4]`` expected depth of the cost-volume softmax.
        depth_logits: ``[B, V, D, H/4, W/4]`` logits over ``candidate_depths``.
        candidate_depths: ``[D]`` camera depths of the plane sweep.
        confidence: ``[B, V, 1, h, w]`` max candidate probability.
        opacity: ``[B, V, 1, h, w]`` Gaussian opacity per cell.
        sky_prob: ``[B, V, 1, h, w]`` sky probability, or None.
        sky: the scenes' :class:`~splatnet.models.sky.SkyBackground` (call on world ray
            directions, or ``.render(cameras)`` for a per-pixel background), or None.
        stride: pixels per Gaussian cell along each axis.
        colour: the context cameras' :class:`~splatnet.models.colour.ColourAffine` (renders of
            a context camera go through its matrix), or None when
            ``config.colour_affine.enabled`` is off.
    """

    gaussians: Gaussians
    depth: Tensor
    coarse_depth: Tensor
    depth_logits: Tensor
    candidate_depths: Tensor
    confidence: Tensor
    opacity: Tensor
    sky_prob: Tensor | None
    sky: SkyBackground | None
    stride: int
    colour: ColourAffine | None = None
    network_depth: Tensor | None = None
    """``[B, V, 1, h, w]`` the head's depth before LiDAR depth fusion (None: no fusion ran,
    ``depth`` is the head's). The depth loss supervises this one."""


class SplatNet(nn.Module):
    """The feed-forward reconstruction network.

    Args:
        config: a :class:`SplatNetConfig` (defaults: ~2 M parameters, stride 2, SH degree 1).

    Example:
        >>> model = SplatNet(SplatNetConfig())
        >>> out = model(images, cameras)  # images [B, V, 3, H, W], cameras batch [B], V cams
        >>> splatnet.render(out.gaussians, target_cameras)  # doctest: +SKIP
    """

    def __init__(self, config: SplatNetConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else SplatNetConfig()
        cfg.validate()
        self.config = cfg
        self.encoder = Encoder(cfg.encoder)
        self.depth_net = DepthNet(cfg.cost_volume.num_candidates, cfg.encoder.context_dim,
                                  cfg.cost_volume)
        # The head sees the fine encoder features at its own resolution and the depth
        # network's context at 1/4 (mixed there, then upsampled).
        self.head = _head.GaussianHead.from_config(cfg.encoder.stem_dim, cfg.near, cfg.far,
                                                   cfg.head, coarse_dim=self.depth_net.out_dim)
        self.sky = None
        if cfg.sky.enabled:
            self.sky = SkyModel(self.depth_net.out_dim, hidden_dim=cfg.sky.hidden_dim,
                                latent_dim=cfg.sky.latent_dim,
                                num_frequencies=cfg.sky.num_frequencies)
        self.colour_affine = None
        if cfg.colour_affine.enabled:
            self.colour_affine = CameraColour(self.depth_net.out_dim, cfg.colour_affine.hidden_dim)
        cand = inverse_depth_candidates(cfg.near, cfg.far, cfg.cost_volume.num_candidates)
        self.register_buffer("candidate_depths", cand, persistent=False)
        self._register_load_state_dict_pre_hook(_upgrade_hook)

    def upgrade_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Weights of earlier SplatNet layouts in this one (see :func:`upgrade_state_dict`)."""
        return upgrade_state_dict(state)

    @property
    def stride(self) -> int:
        return self.config.head.stride

    def forward(self, images: Tensor, cameras: Cameras,
                lidar: list[Tensor | None] | None = None,
                valid: Tensor | None = None) -> SplatNetOutput:
        """Reconstruct B scenes.

        Args:
            images: ``[B, V, 3, H, W]`` float in [0, 1]; V = rig cameras × frames, flattened in
                any order. H and W must be divisible by ``config.head.stride``.
            cameras: ``splatnet.Cameras`` with batch shape ``[B]`` and V cameras of size W×H;
                ``names`` (same name = same physical camera) and ``timestamps`` choose the
                views matched in the cost volume (see ``cost_volume.select_sources``).
            lidar: optional list of B world point clouds ``[P_b, 3]`` (or None per scene), fed
                as sparse depth when ``config.cost_volume.use_lidar``, and the depth the
                Gaussians are moved to when ``config.lidar_fusion.enabled``
                (:mod:`splatnet.models.lidar_fusion`). While training, a scene's LiDAR is
                dropped for both with probability ``cost_volume.lidar_dropout``.
            valid: optional ``[B, V, 1, H, W]`` bool pixel validity (a clip's per-camera masks:
                False on the ego's own hood and other pixels that are not the scene). A Gaussian
                whose cell is less than half valid gets opacity 0, so nothing the ego carries
                along is placed in the world (post-processing then prunes it).
        Returns:
            :class:`SplatNetOutput`.
        """
        b, v, height, width = self._check(images, cameras, lidar)
        pixel_valid = valid  # (the name `valid` is reused for the cost volume's sources)
        if pixel_valid is not None:
            if not isinstance(pixel_valid, Tensor) or tuple(pixel_valid.shape) != (b, v, 1, height, width):
                got = (tuple(pixel_valid.shape) if isinstance(pixel_valid, Tensor)
                       else type(pixel_valid).__name__)
                raise ValidationError(f"valid: expected [{b}, {v}, 1, {height}, {width}] pixel "
                                      f"validity (the images' size), got {got}")
        cfg = self.config
        dtype = torch.promote_types(images.dtype, torch.float32)  # geometry: float32 at least
        device = images.device
        h2, w2 = (height + 1) // 2, (width + 1) // 2
        h4, w4 = (h2 + 1) // 2, (w2 + 1) // 2

        K = cameras.K.to(dtype)
        c2w = cameras.cam_to_world.to(dtype)
        uv4 = cell_centers(h4, w4, width, height, device=device, dtype=dtype)
        centers = c2w[..., :3, 3]
        rays = plucker(rotate(c2w, unproject_dirs(K, uv4)), centers,
                       centers.mean(1, keepdim=True), 10.0)  # [B, V, h4, w4, 6]
        rays = rays.permute(0, 1, 4, 2, 3).reshape(b * v, 6, h4, w4).to(images.dtype)

        with record_function("splatnet.encoder"):
            match, context, fine = self.encoder(images.reshape(b * v, 3, height, width), rays)
        match = match.reshape(b, v, -1, h4, w4)

        index, valid = select_sources(cameras, cfg.cost_volume.temporal_sources,
                                      cfg.cost_volume.rig_neighbors)
        cand = self.candidate_depths.to(dtype)
        with record_function("splatnet.plane_sweep"):
            cost, count = plane_sweep(match, cameras, index, valid, cand)

        lidar = self._kept_lidar(lidar, b)
        lidar_in = self._lidar_input(lidar, cameras, b, v, h4, w4, dtype)
        extra = torch.cat([count.reshape(b * v, 1, h4, w4), lidar_in, context], dim=1)
        with record_function("splatnet.depth_net"):
            logits, ctx = self.depth_net(cost.reshape(b * v, -1, h4, w4), extra)
        logits = logits.reshape(b, v, -1, h4, w4)

        s = self.stride
        hs, ws = height // s, width // s
        with record_function("splatnet.models.head"):
            out = self.head(_resize(fine, hs, ws).reshape(b, v, -1, hs, ws), cameras,
                            depth_logits=logits, candidate_depths=cand, images=images,
                            coarse_features=ctx.reshape(b, v, -1, h4, w4))

        probs = logits.softmax(dim=2)
        coarse = 1.0 / (probs * (1.0 / cand)[:, None, None]).sum(2, keepdim=True)
        sky = self.sky(ctx.reshape(b, v, -1, h4, w4)) if self.sky is not None else None
        colour = None
        if self.colour_affine is not None:
            colour = self.colour_affine(ctx.reshape(b, v, -1, h4, w4), images, cameras)
        gaussians, opacity, depth, network_depth = out.gaussians, out.opacity, out.depth, None
        if cfg.lidar_fusion.enabled and lidar is not None and any(
                p is not None and p.shape[0] > 0 for p in lidar):
            with record_function("splatnet.lidar_fusion"):
                log_ratio = self._fusion_log_ratio(lidar, cameras, depth, out.confidence)
                gaussians = move_along_rays(gaussians, c2w[..., :3, 3], log_ratio)
                network_depth, depth = depth, depth * torch.exp(log_ratio)
        keep = None
        if pixel_valid is not None:
            keep = _valid_cells(pixel_valid, b, v, hs, ws).to(opacity.dtype)  # [B, V, 1, hs, ws]
            opacity = opacity * keep
            gaussians = Gaussians(**{**gaussians.fields(),
                                     "opacities": gaussians.opacities * keep.reshape(b, -1)},
                                  check=False)
        if cfg.visibility.enabled:
            with record_function("splatnet.visibility"):
                seen = depth.detach()
                if keep is not None:  # the ego's own body hides nothing of the scene
                    seen = torch.where(keep > 0, seen, torch.full_like(seen, float("inf")))
                front = in_front_of_other_views(gaussians.means, seen, cameras,
                                                frame_ranks(cameras), cfg.visibility.margin)
                scale = torch.where(front, cfg.visibility.factor, 1.0).to(opacity.dtype)  # [B, N]
                opacity = opacity * scale.reshape(b, v, 1, hs, ws)
                gaussians = Gaussians(**{**gaussians.fields(),
                                         "opacities": gaussians.opacities * scale}, check=False)
        return SplatNetOutput(gaussians=gaussians, depth=depth, coarse_depth=coarse,
                              depth_logits=logits, candidate_depths=cand,
                              confidence=out.confidence, opacity=opacity,
                              sky_prob=out.sky_prob, sky=sky, stride=s, colour=colour,
                              network_depth=network_depth)

    @torch.no_grad()
    def reconstruct(self, images: Tensor, cameras: Cameras,
                    lidar: list[Tensor | None] | None = None,
                    valid: Tensor | None = None) -> list[Gaussians]:
        """Inference: forward in eval mode, then prune / merge / cap (``config.postprocess``).

        Returns one unbatched :class:`Gaussians` per scene.
        """
        was_training = self.training
        self.eval()
        try:
            out = self(images, cameras, lidar, valid)
        finally:
            self.train(was_training)
        return postprocess(out.gaussians, self.config.postprocess)

    def _kept_lidar(self, lidar, b: int) -> list[Tensor | None] | None:
        """The scenes' LiDAR after training's dropout (one draw per scene, as before)."""
        cfg = self.config
        if lidar is None or not self.training or not (cfg.cost_volume.use_lidar
                                                      or cfg.lidar_fusion.enabled):
            return lidar
        p = cfg.cost_volume.lidar_dropout
        kept = []
        for pts in lidar:
            if pts is not None and pts.shape[0] > 0 and torch.rand(()) < p:
                pts = None
            kept.append(pts)
        return kept

    def _fusion_log_ratio(self, lidar, cameras: Cameras, depth: Tensor, confidence: Tensor) -> Tensor:
        """``[B, V, 1, h, w]`` log factor from the head's depth towards the LiDAR's (0: no
        LiDAR), weighted by ``(1 − confidence) ** lidar_fusion.confidence_power``."""
        fusion = self.config.lidar_fusion
        b, v, _, h, w = depth.shape
        zl = torch.zeros(b, v, 1, h, w, dtype=torch.float32, device=depth.device)
        K = cameras.K.float()
        w2c = cameras.world_to_cam.float()
        with no_autocast(cameras.device):
            for i, pts in enumerate(lidar):
                if pts is not None and pts.shape[0] > 0:
                    zl[i, :, 0] = sparse_depth(pts.float(), K[i], w2c[i], (cameras.height, cameras.width),
                                               cells=(h, w), near=self.config.near)
            sigmas = tuple(max(1.0, s * h) for s in fusion.sigmas)
            r = depth_log_ratio(depth, zl, sigmas, fusion.max_ratio)
        if fusion.confidence_power > 0:
            r = r * (1.0 - confidence.detach().to(r.dtype)).clamp_min(0) ** fusion.confidence_power
        return r

    def _lidar_input(self, lidar, cameras: Cameras, b: int, v: int, h: int, w: int,
                     dtype: torch.dtype) -> Tensor:
        """``[B·V, 2, h, w]``: normalised sparse inverse depth and its mask (zeros if none)."""
        out = torch.zeros(b, v, 2, h, w, dtype=dtype, device=cameras.device)
        if lidar is None or not self.config.cost_volume.use_lidar:
            return out.reshape(b * v, 2, h, w)
        inv_near, inv_far = 1.0 / self.config.near, 1.0 / self.config.far
        K = cameras.K.to(dtype)
        w2c = cameras.world_to_cam.to(dtype)
        for i, pts in enumerate(lidar):
            if pts is None or pts.shape[0] == 0:
                continue
            with no_autocast(cameras.device):
                z = sparse_depth(pts, K[i], w2c[i], (cameras.height, cameras.width), cells=(h, w),
                                 near=1e-3).to(dtype)  # [V, h, w]
            mask = z > 0
            inv = torch.where(mask, 1.0 / z.clamp_min(1e-6), torch.zeros_like(z))
            disp = ((inv - inv_far) / (inv_near - inv_far)).clamp(0.0, 1.0) * mask
            out[i, :, 0] = disp
            out[i, :, 1] = mask.to(dtype)
        return out.reshape(b * v, 2, h, w)

    def _check(self, images: Tensor, cameras: Cameras, lidar) -> tuple[int, int, int, int]:
        if not isinstance(images, Tensor) or images.dim() != 5 or images.shape[2] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValidationError(f"images: expected [B, V, 3, H, W], got {shape}")
        if not images.is_floating_point():
            raise ValidationError(f"images: expected float values in [0, 1], got {images.dtype}")
        b, v, _, height, width = images.shape
        if not isinstance(cameras, Cameras):
            raise ValidationError(f"cameras: expected splatnet.Cameras, got {type(cameras).__name__}")
        if cameras.batch_shape != (b,) or cameras.num_cameras != v:
            raise ValidationError(f"cameras: expected batch shape ({b},) with {v} cameras (one per "
                                  f"view), got batch {cameras.batch_shape} with "
                                  f"{cameras.num_cameras}")
        if (cameras.width, cameras.height) != (width, height):
            raise ValidationError(f"cameras are {cameras.width}x{cameras.height} but the images "
                                  f"are {width}x{height}")
        s = self.stride
        if height % s or width % s:
            raise ValidationError(
                f"images: size {width}x{height} is not divisible by the Gaussian stride {s}; "
                f"crop or resize to e.g. {width - width % s}x{height - height % s}")
        if lidar is not None and len(lidar) != b:
            raise ValidationError(f"lidar: expected a list of {b} point clouds (or None), got "
                                  f"{len(lidar)}")
        if math.prod(images.shape) == 0:
            raise ValidationError(f"images: empty tensor {tuple(images.shape)}")
        return b, v, height, width


def upgrade_state_dict(state: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """Rewrite weights saved by earlier SplatNet versions into the current layout, exactly.

    - ``head_context`` (a 1×1 conv on the U-Net context, upsampled and concatenated in front of
      the fine features) folds into ``head.mix_coarse`` / ``head.mix_features``: 1×1
      convolutions commute with bilinear upsampling (which preserves constants), so
      ``W_m[:, :k] · up(W_c x + b_c) = up((W_m[:, :k] W_c) x) + W_m[:, :k] b_c``.
    - A depthwise-then-pointwise head convolution (``head.net.2`` ``[C, 1, 3, 3]`` and
      ``head.net.3`` ``[C, C, 1, 1]``, no nonlinearity between) is one full 3×3 convolution
      with weights ``pw[o, i] · dw[i]`` and bias ``pw_b + pw · dw_b``.

    Current state dicts pass through unchanged.
    """
    out = dict(state)
    key = prefix + "head_context.weight"
    if key in out:
        wc = out.pop(key)[:, :, 0, 0]  # [k, Cu]
        bc = out.pop(prefix + "head_context.bias")  # [k]
        mw = out[prefix + "head.mix_features.weight"][:, :, 0, 0]  # [hidden, k + Cs]
        mb = out[prefix + "head.mix_features.bias"]
        k = wc.shape[0]
        out[prefix + "head.mix_coarse.weight"] = (mw[:, :k] @ wc)[:, :, None, None].contiguous()
        out[prefix + "head.mix_features.weight"] = mw[:, k:, None, None].contiguous()
        out[prefix + "head.mix_features.bias"] = mb + mw[:, :k] @ bc
    dw = out.get(prefix + "head.net.2.weight")
    pw = out.get(prefix + "head.net.3.weight")
    if dw is not None and pw is not None and dw.shape[1] == 1 and tuple(pw.shape[2:]) == (1, 1):
        pw = out.pop(prefix + "head.net.3.weight")[:, :, 0, 0]  # [o, i]
        pb = out.pop(prefix + "head.net.3.bias")
        db = out[prefix + "head.net.2.bias"]
        out[prefix + "head.net.2.weight"] = (pw[:, :, None, None] * dw[:, 0][None]).contiguous()
        out[prefix + "head.net.2.bias"] = pb + pw @ db
    return out


def _upgrade_hook(state_dict, prefix, *args) -> None:
    new = upgrade_state_dict(state_dict, prefix)
    if new.keys() != state_dict.keys() or any(new[k] is not state_dict[k] for k in new):
        state_dict.clear()
        state_dict.update(new)


def _resize(x: Tensor, h: int, w: int) -> Tensor:
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def _valid_cells(valid: Tensor, b: int, v: int, h: int, w: int) -> Tensor:
    """``[B, V, 1, H, W]`` pixel validity → ``[B, V, 1, h, w]`` bool: the cell is at least half
    valid (each Gaussian covers ``H/h × W/w`` pixels)."""
    sh, sw = valid.shape[-2] // h, valid.shape[-1] // w
    frac = F.avg_pool2d(valid.reshape(b * v, 1, *valid.shape[-2:]).float(), (sh, sw))
    return (frac >= 0.5).reshape(b, v, 1, h, w)

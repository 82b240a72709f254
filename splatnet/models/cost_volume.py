"""Plane-sweep stereo: which views to match, the cost volume, and the depth U-Net behind it.

For each reference view and each depth candidate (uniform in inverse depth), the reference
cells are lifted to that camera-space z, projected into each source view and the source's
matching features sampled there; the correlation (dot product ÷ √C) is averaged over the
sources that see the point (MVSplat's recipe, with MVSplat's caution about non-overlapping
views handled by masking). A valid-count channel tells the network where it must fall back on
monocular cues.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from splatnet.cameras import Cameras
from splatnet.models.config import CostVolumeConfig
from splatnet.models.encoder import ResBlock, conv, norm
from splatnet.models.geometry import cell_centers, no_autocast, unproject_dirs


def inverse_depth_candidates(near: float, far: float, n: int, *, device=None,
                             dtype=torch.float32) -> Tensor:
    """``[n]`` camera depths, uniform in inverse depth from ``near`` to ``far``."""
    inv = torch.linspace(1.0 / near, 1.0 / far, n, device=device, dtype=torch.float64)
    return (1.0 / inv).to(dtype)


def _views_by_camera(cameras: Cameras):
    """``(names [V], timestamps [B][V] or None, {name: view indices}, frames [B][V])``; views
    without names are each their own camera; a view's frame is the rank of its timestamp among
    the views of the same camera (order of appearance when there are no timestamps)."""
    v = cameras.num_cameras
    b = math.prod(cameras.batch_shape)
    names = cameras.names if cameras.names is not None else [str(i) for i in range(v)]
    ts = None
    if cameras.timestamps is not None:
        ts = cameras.timestamps.reshape(b, v).detach().to("cpu", torch.float64).tolist()
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        groups.setdefault(n, []).append(i)
    frames = []
    for bi in range(b):
        frame = [0] * v
        for members in groups.values():
            order = members if ts is None else sorted(members, key=lambda i: ts[bi][i])
            for rank, i in enumerate(order):
                frame[i] = rank
        frames.append(frame)
    return names, ts, groups, frames


def frame_ranks(cameras: Cameras) -> list[list[int]]:
    """``[B][V]`` the frame of each view: the rank of its timestamp among the views of the same
    camera (views grouped by ``names``, each view its own camera when names are missing; order
    of appearance when there are no timestamps)."""
    return _views_by_camera(cameras)[3]


def select_sources(cameras: Cameras, temporal: int, rig: int) -> tuple[Tensor, Tensor]:
    """Pick the source views each view is matched against.

    Views are grouped into cameras by ``names`` (each view its own camera when names are
    missing) and into frames by the rank of their timestamp among the views of the same camera
    (order of appearance when there are no timestamps). Sources of a view are the same camera
    at the ``temporal`` nearest other frames plus the ``rig`` cameras of the same frame whose
    optical axes are closest to its own (the left/right neighbours of a surround rig).

    Returns:
        ``(index [B, V, S], valid [B, V, S])`` with ``S = temporal + rig``; invalid slots point at
        the view itself and must be masked.
    """
    batch = cameras.batch_shape
    v = cameras.num_cameras
    b = math.prod(batch)
    s = temporal + rig
    index = torch.zeros(b, v, max(s, 1), dtype=torch.long)
    valid = torch.zeros(b, v, max(s, 1), dtype=torch.bool)
    axes = cameras.cam_to_world[..., :3, 2].reshape(b, v, 3).detach().to("cpu", torch.float64)
    names, ts, groups, frames = _views_by_camera(cameras)
    for bi in range(b):
        frame = frames[bi]
        cos = (axes[bi] @ axes[bi].T).tolist()  # [V][V]
        for i in range(v):
            row: list[int] = []
            same = [j for j in groups[names[i]] if j != i]
            if ts is not None:
                same.sort(key=lambda j: abs(ts[bi][j] - ts[bi][i]))
            else:
                same.sort(key=lambda j: abs(frame[j] - frame[i]))
            row += same[:temporal]
            others = [j for j in range(v) if frame[j] == frame[i] and names[j] != names[i]]
            others.sort(key=lambda j: -cos[i][j])
            row += others[:rig]
            index[bi, i] = i
            for k, j in enumerate(row):
                index[bi, i, k] = j
                valid[bi, i, k] = True
    dev = cameras.device
    return index.reshape(*batch, v, -1).to(dev), valid.reshape(*batch, v, -1).to(dev)


def plane_sweep(match: Tensor, cameras: Cameras, index: Tensor, valid: Tensor,
                depths: Tensor) -> tuple[Tensor, Tensor]:
    """Correlation cost volume.

    Args:
        match: ``[B, V, C, h, w]`` matching features (cells as in ``geometry.cell_centers``).
        cameras: batch ``[B]``, V cameras, at the full image size.
        index, valid: ``[B, V, S]`` from :func:`select_sources`.
        depths: ``[D]`` candidate camera depths.
    Returns:
        ``(cost [B, V, D, h, w], count [B, V, 1, h, w])``: the mean correlation over the sources
        that see each lifted point (0 where none do) and the mean over candidates of the
        fraction of sources that see it.
    """
    with no_autocast(match.device):  # projections must not run in bf16
        return _plane_sweep(match, cameras, index, valid, depths)


def _plane_sweep(match: Tensor, cameras: Cameras, index: Tensor, valid: Tensor,
                 depths: Tensor) -> tuple[Tensor, Tensor]:
    # float32 at least; contiguous: grid_sample is slow on channels_last inputs.
    match = match.to(torch.promote_types(match.dtype, torch.float32)).contiguous()
    bsz, v, c, h, w = match.shape
    s = index.shape[-1]
    d = depths.shape[0]
    dtype, device = match.dtype, match.device
    width, height = cameras.width, cameras.height
    K = cameras.K.to(dtype)  # [B, V, 3, 3]
    c2w = cameras.cam_to_world.to(dtype)
    w2c = cameras.world_to_cam.to(dtype)
    uv = cell_centers(h, w, width, height, device=device, dtype=dtype)
    rays = unproject_dirs(K, uv)  # [B, V, h, w, 3] camera frame, z = 1
    dz6 = depths.to(dtype)[:, None, None, None]  # [D, 1, 1, 1]
    bidx = torch.arange(bsz, device=device)[:, None]
    # Pixel → grid_sample coordinates: x_n = 2u/W − 1, y_n = 2v/H − 1 (align_corners=False).
    to_grid = torch.tensor([[2.0 / width, 0, -1.0], [0, 2.0 / height, -1.0], [0, 0, 1.0]],
                           dtype=dtype, device=device)
    # A ones channel sampled with zero padding gives each sample's in-image weight: the
    # validity mask without separate bounds tests.
    ones = match.new_ones(bsz, v, 1, h, w)
    src_feats = torch.cat([match, ones], dim=2)  # [B, V, C + 1, h, w]
    ref = match * (1.0 / math.sqrt(c))  # correlation = dot product / √C
    ref_ext = torch.cat([ref, torch.zeros_like(ones)], dim=2)  # [B, V, C + 1, h, w]
    cost = match.new_zeros(bsz, v, d, h, w)
    count = match.new_zeros(bsz, v, d, h, w)
    inplace = not torch.is_grad_enabled()
    for k in range(s):
        src = index[..., k]  # [B, V]
        ok = valid[..., k].to(dtype)[..., None, None, None]  # [B, V, 1, 1, 1]
        rel = w2c[bidx, src] @ c2w  # [B, V, 4, 4] ref camera → source camera
        proj = to_grid @ K[bidx, src] @ rel[..., :3, :]  # [B, V, 3, 4]
        # Grid coordinates of the point at depth d: (A · d + b)_xy / (A · d + b)_z, built in
        # the [..., 2] layout grid_sample wants (no stacking pass).
        a = (proj[:, :, None, None, :, :3] @ rays[..., None]).squeeze(-1)  # [B, V, h, w, 3]
        bias = proj[..., 3][:, :, None, None, None, :]  # [B, V, 1, 1, 1, 3]
        q = torch.addcmul(bias, a[:, :, None], dz6)  # [B, V, D, h, w, 3]
        qz = q[..., 2:]
        grid = q[..., :2] / qz.clamp_min(1e-6)  # [B, V, D, h, w, 2]
        grid = grid.masked_fill(qz <= 1e-6, 2.0)  # behind the camera: outside the image
        feats = src_feats[bidx, src].reshape(bsz * v, c + 1, h, w)
        sampled = F.grid_sample(feats, grid.reshape(bsz * v, d * h, w, 2), mode="bilinear",
                                padding_mode="zeros", align_corners=False)
        sampled = sampled.reshape(bsz, v, c + 1, d, h, w)
        if inplace:
            corr = sampled[:, :, :c].mul_(ref[:, :, :, None]).sum(2)  # [B, V, D, h, w]
            m = sampled[:, :, c].mul_(ok)
            cost.addcmul_(corr, m)
            count.add_(m)
        else:
            # No slicing of `sampled` under autograd (each slice's backward would allocate a
            # zero tensor of its full size): the ones channel meets a zero reference channel,
            # and the validity weight needs no gradient (it is a sampled constant).
            corr = (sampled * ref_ext[:, :, :, None]).sum(2)
            m = sampled.detach()[:, :, c] * ok
            cost = cost + corr * m
            count = count + m
    cost = cost / count.clamp_min(1.0)
    frac = count.mean(dim=2, keepdim=True) / max(s, 1)
    return cost, frac


class DepthNet(nn.Module):
    """3-level U-Net (no attention: expensive on CPU) over the cost volume and the context.

    Input: cost ``[N, D]`` + valid fraction ``[1]`` + LiDAR inverse depth and mask ``[2]`` +
    context ``[Cc]`` at 1/4 resolution. Output: depth logits ``[N, D]`` (the scaled cost volume
    plus a learned residual) and refined context features ``[N, U0]``. The 1/4 level uses 1×1
    mixing and one 3×3 convolution; the residual blocks sit at 1/8 and 1/16.
    """

    def __init__(self, num_candidates: int, context_dim: int, cfg: CostVolumeConfig) -> None:
        super().__init__()
        d0, d1, d2 = cfg.unet_dims
        cin = num_candidates + 1 + 2 + context_dim
        self.inp = nn.Sequential(nn.Conv2d(cin, d0, 1), norm(d0), nn.ReLU(inplace=True))
        self.down1 = nn.Sequential(conv(d0, d1, stride=2), norm(d1),
                                   nn.ReLU(inplace=True), ResBlock(d1))
        self.down2 = nn.Sequential(conv(d1, d2, stride=2), norm(d2),
                                   nn.ReLU(inplace=True), ResBlock(d2), ResBlock(d2))
        self.up1 = nn.Sequential(conv(d2 + d1, d1), norm(d1), nn.ReLU(inplace=True))
        self.up0 = nn.Sequential(nn.Conv2d(d1 + d0, d0, 1), nn.ReLU(inplace=True), conv(d0, d0),
                                 norm(d0), nn.ReLU(inplace=True))
        self.logits = nn.Conv2d(d0, num_candidates, 1)
        self.out_dim = d0
        # Start from the raw matching cost; the residual is learned.
        with torch.no_grad():
            self.logits.weight.mul_(0.1)
            self.logits.bias.zero_()

    def forward(self, cost: Tensor, extra: Tensor) -> tuple[Tensor, Tensor]:
        x0 = self.inp(torch.cat([cost, extra], dim=1).contiguous(memory_format=torch.channels_last))
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        y1 = self.up1(torch.cat([_up(x2, x1), x1], dim=1))
        y0 = self.up0(torch.cat([_up(y1, x0), x0], dim=1))
        return cost * 4.0 + self.logits(y0), y0


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

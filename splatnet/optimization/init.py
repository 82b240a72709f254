"""Starting points for per-scene optimisation: LiDAR points, random points, (later) the network.

Every initialisation ends in :func:`gaussians_from_points`, the reference 3DGS recipe: one
isotropic Gaussian per point with scale = RMS distance to its 3 nearest neighbours, opacity 0.1,
identity rotation, SH DC from the point's colour and the higher bands zero.

Point colours are sampled from the training images the points project into (nearest pixel,
averaged over views; a view whose ground-truth depth shows the point is occluded is skipped).
Points that no training view sees are dropped: they would never receive a gradient.

LiDAR never hits the sky, and random points rarely land far enough, so a tenth of the points go
on a far sphere (twice the scene's radius) along the rays of randomly chosen "far" pixels,
coloured by those pixels. Far pixels are the views' sky masks when the clip has them; for a
LiDAR initialisation without sky masks, the pixels farther than 2% of the image size from every
projected LiDAR point (sky, and whatever lies beyond the LiDAR's range).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from splatnet.cameras import Cameras
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.sh import num_sh_bases, rgb_to_sh

INIT_OPACITY = 0.1
NEAR = 0.1  # metres: points closer to a camera than this take no colour from it
KNN = 3
SKY_FRACTION = 0.1  # of the initial points, when the views have sky masks


# ----------------------------------------------------------------------------- building blocks
def knn_scales(points: Tensor, k: int = KNN) -> Tensor:
    """``[M]`` RMS distance of each point to its ``k`` nearest other points (the 3DGS scale).

    Uses open3d's KD-tree when it is installed, else exact brute force in chunks (torch.cdist).
    Duplicate points give 0; callers clamp.
    """
    m = points.shape[0]
    if m < 2:
        return torch.ones(m, dtype=points.dtype, device=points.device)
    k = min(k, m - 1)
    pts = points.detach().to("cpu", torch.float64)
    try:
        import open3d as o3d
    except ImportError:
        o3d = None
    if o3d is not None:
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.numpy()))
        tree = o3d.geometry.KDTreeFlann(cloud)
        out = torch.empty(m, dtype=torch.float64)
        arr = pts.numpy()
        for i in range(m):
            _, _, d2 = tree.search_knn_vector_3d(arr[i], k + 1)
            # The query point itself is among the results (distance 0); drop one zero.
            d2 = sorted(d2)[1 : k + 1]
            out[i] = math.sqrt(sum(d2) / k)
        return out.to(points)
    return _knn_scales_brute(pts, k).to(points)


def _knn_scales_brute(pts: Tensor, k: int) -> Tensor:
    m = pts.shape[0]
    chunk = max(1, (1 << 24) // m)  # ~16M distances at a time
    out = torch.empty(m, dtype=pts.dtype)
    for s in range(0, m, chunk):
        d2 = torch.cdist(pts[s : s + chunk], pts).square()
        d2[torch.arange(d2.shape[0]), torch.arange(s, s + d2.shape[0])] = math.inf  # not itself
        nearest = torch.topk(d2, k, dim=1, largest=False).values
        out[s : s + chunk] = nearest.mean(1).sqrt()
    return out


def voxel_downsample(points: Tensor, voxel: float) -> Tensor:
    """One point per occupied voxel of side ``voxel`` (the mean of the points in it)."""
    if voxel <= 0 or points.shape[0] == 0:
        return points
    keys = torch.floor(points / voxel).to(torch.int64)
    _, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), 3, dtype=points.dtype, device=points.device)
    sums.index_add_(0, inverse, points)
    return sums / counts[:, None].to(points)


def sample_colors(points: Tensor, cameras: Cameras, images: Tensor, masks: Tensor | None = None,
                  depths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean colour of ``points [M, 3]`` over the views ``images [V, H, W, 3]`` that see them.

    Returns ``(colors [M, 3], seen [M] bool)``; unseen points get grey 0.5. A view is skipped for
    a point behind the camera (z < 0.1), outside the image, on an invalid pixel (``masks``), or
    occluded according to ground-truth ``depths`` (point z more than 5% + 0.2 m beyond it).
    """
    v_count = cameras.num_cameras
    w, h = cameras.width, cameras.height
    w2c = cameras.world_to_cam.to(points)  # [V, 4, 4]
    K = cameras.K.to(points)
    total = torch.zeros(points.shape[0], 3, dtype=points.dtype, device=points.device)
    count = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
    for v in range(v_count):
        p = points @ w2c[v, :3, :3].T + w2c[v, :3, 3]
        z = p[:, 2]
        front = z > NEAR
        zs = torch.where(front, z, torch.ones_like(z))
        u = K[v, 0, 0] * p[:, 0] / zs + K[v, 0, 2]
        vv = K[v, 1, 1] * p[:, 1] / zs + K[v, 1, 2]
        ok = front & (u >= 0) & (u < w) & (vv >= 0) & (vv < h)
        ui = u.clamp(0, w - 1).long()
        vi = vv.clamp(0, h - 1).long()
        if masks is not None:
            ok &= masks[v, vi, ui, 0].to(points.device)
        if depths is not None:
            d = depths[v, vi, ui, 0].to(points)
            ok &= ~((d > 0) & (z > 1.05 * d + 0.2))
        total += images[v, vi, ui].to(points) * ok[:, None]
        count += ok
    seen = count > 0
    colors = torch.where(seen[:, None], total / count.clamp_min(1)[:, None],
                         torch.full_like(total, 0.5))
    return colors, seen


def gaussians_from_points(points: Tensor, colors: Tensor, sh_degree: int = 3,
                          opacity: float = INIT_OPACITY) -> Gaussians:
    """Isotropic Gaussians at ``points [M, 3]`` with ``colors [M, 3]`` (see the module doc)."""
    if points.dim() != 2 or points.shape[-1] != 3 or points.shape[0] == 0:
        raise ValidationError(f"points: expected a non-empty [M, 3] tensor, got {list(points.shape)}")
    m = points.shape[0]
    scales = knn_scales(points)
    positive = scales[scales > 0]
    floor = float(positive.median()) * 1e-2 if len(positive) else 1e-3
    scales = scales.clamp_min(max(floor, 1e-7))
    sh = torch.zeros(m, num_sh_bases(sh_degree), 3, dtype=points.dtype, device=points.device)
    sh[:, 0] = rgb_to_sh(colors.clamp(0, 1))
    quats = torch.zeros(m, 4, dtype=points.dtype, device=points.device)
    quats[:, 0] = 1
    return Gaussians(points, quats, scales[:, None].expand(m, 3).contiguous(),
                     torch.full((m,), opacity, dtype=points.dtype, device=points.device), sh)


def uncovered_pixels(points: Tensor, cameras: Cameras, margin: int) -> Tensor:
    """``[V, H, W, 1]`` bool: pixels with no projected point within ``margin`` pixels."""
    w, h = cameras.width, cameras.height
    w2c = cameras.world_to_cam.to(points)
    K = cameras.K.to(points)
    out = torch.zeros(cameras.num_cameras, h, w, 1, dtype=torch.bool)
    for v in range(cameras.num_cameras):
        p = points @ w2c[v, :3, :3].T + w2c[v, :3, 3]
        front = p[:, 2] > NEAR
        p = p[front]
        u = torch.floor(K[v, 0, 0] * p[:, 0] / p[:, 2] + K[v, 0, 2]).long()
        vv = torch.floor(K[v, 1, 1] * p[:, 1] / p[:, 2] + K[v, 1, 2]).long()
        ok = (u >= 0) & (u < w) & (vv >= 0) & (vv < h)
        hit = torch.zeros(h * w)
        hit[(vv[ok] * w + u[ok]).cpu()] = 1.0
        near = torch.nn.functional.max_pool2d(hit.reshape(1, 1, h, w), 2 * margin + 1, stride=1,
                                              padding=margin)
        out[v, ..., 0] = near[0, 0] == 0
    return out


def sky_points(views, centre: Tensor, radius: float, n: int, generator: torch.Generator,
               masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``n`` points on the sphere (``centre``, ``radius``) along rays of random pixels of
    ``masks [V, H, W, 1]`` (default: the views' sky masks).

    Returns ``(points [n', 3], colors [n', 3])``; empty when there are no such pixels.
    """
    if masks is None:
        masks = getattr(views, "sky_masks", None)
    empty = torch.zeros(0, 3)
    if masks is None or n <= 0:
        return empty, empty
    idx = torch.nonzero(masks[..., 0])  # [P, 3] (view, y, x)
    if len(idx) == 0:
        return empty, empty
    idx = idx[torch.randperm(len(idx), generator=generator)[:n]]
    v, y, x = idx.unbind(-1)
    K = views.cameras.K[v].double()
    c2w = views.cameras.cam_to_world[v].double()
    px = x.double() + torch.rand(len(v), generator=generator, dtype=torch.float64)
    py = y.double() + torch.rand(len(v), generator=generator, dtype=torch.float64)
    d_cam = torch.stack([(px - K[:, 0, 2]) / K[:, 0, 0], (py - K[:, 1, 2]) / K[:, 1, 1],
                         torch.ones_like(px)], dim=-1)
    d = (c2w[:, :3, :3] @ d_cam[..., None]).squeeze(-1)
    d = d / d.norm(dim=-1, keepdim=True)
    o = c2w[:, :3, 3] - centre.double()
    # |o + t d| = radius, the far intersection (the cameras are inside the sphere).
    b = (o * d).sum(-1)
    t = -b + torch.sqrt((b * b - (o * o).sum(-1) + radius**2).clamp_min(0))
    points = (c2w[:, :3, 3] + t[:, None] * d).float()
    return points, views.images[v, y, x].float()


def _with_sky(points: Tensor, colors: Tensor, views, n_sky: int, generator: torch.Generator,
              masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
    centre = views.cameras.centers.reshape(-1, 3).mean(0)
    dist = (points - centre).norm(dim=-1)
    radius = 2.0 * float(torch.quantile(dist[: 1 << 20], 0.99)) if len(dist) else 100.0
    sp, sc = sky_points(views, centre, max(radius, 1.0), n_sky, generator, masks)
    return torch.cat([points, sp.to(points)]), torch.cat([colors, sc.to(colors)])


# ----------------------------------------------------------------------------- initialisations
def init_lidar(clip, frames, views, num_points: int, sh_degree: int,
               generator: torch.Generator, voxel: float | None = None) -> Gaussians:
    """Gaussians from the LiDAR points of ``frames``, coloured by the training ``views``.

    Sweeps are merged and voxel-downsampled (``voxel`` metres, default: 1/1000 of the points'
    bounding-box diagonal), then at most ``num_points`` are kept at random.
    """
    clouds = [p for p in (clip.lidar(f) for f in frames) if p is not None]
    if not clouds:
        raise ValidationError(f"{clip.path}: --init lidar needs LiDAR points, and the clip has none "
                              "in the training frames; use --init random")
    pts = torch.cat(clouds).to(torch.float32)
    pts = pts[torch.isfinite(pts).all(-1)]
    if voxel is None:
        diag = float((pts.amax(0) - pts.amin(0)).norm()) if len(pts) else 0.0
        voxel = diag / 1000.0
    pts = voxel_downsample(pts, voxel)
    colors, seen = sample_colors(pts, views.cameras, views.images, views.masks, views.depths)
    pts, colors = pts[seen], colors[seen]
    if len(pts) == 0:
        raise ValidationError(f"{clip.path}: no LiDAR point projects into a training view; check "
                              "the clip's extrinsics or use --init random")
    far = views.sky_masks
    if far is None or not bool(far.any()):
        margin = max(2, round(0.02 * max(views.cameras.width, views.cameras.height)))
        far = uncovered_pixels(pts, views.cameras, margin)
    n_sky = _num_sky(far, num_points)
    n_lidar = min(len(pts), num_points - n_sky)
    n_sky = min(n_sky, round(n_lidar * SKY_FRACTION / (1 - SKY_FRACTION)))  # a tenth of the total
    keep = _subsample_index(len(pts), n_lidar, generator)
    pts, colors = _with_sky(pts[keep], colors[keep], views, n_sky, generator, far)
    return gaussians_from_points(pts, colors, sh_degree)


def init_random(clip, frames, views, num_points: int, sh_degree: int,
                generator: torch.Generator) -> Gaussians:
    """Gaussians at uniformly random points inside the clip's bounds, seen by a training view.

    Bounds: the 1st-99th percentile box of the LiDAR points when the clip has any, else a cube
    around the training cameras with half side max(3 × their spread, 20 m). Colours are sampled
    from the images like LiDAR points (positions are what is random).
    """
    clouds = [p for p in (clip.lidar(f) for f in frames) if p is not None]
    if clouds:
        pts = torch.cat(clouds).to(torch.float32)
        some = _subsample_points(pts, 100_000, generator)
        lo, hi = torch.quantile(some, 0.01, dim=0), torch.quantile(some, 0.99, dim=0)
    else:
        centres = views.cameras.centers
        mid = centres.mean(0)
        half = max(3.0 * float((centres - mid).norm(dim=-1).max()), 20.0)
        lo, hi = mid - half, mid + half
    return random_in_box(lo, hi, views, num_points, sh_degree, generator)


def random_in_box(lo: Tensor, hi: Tensor, views, num_points: int, sh_degree: int,
                  generator: torch.Generator) -> Gaussians:
    """``num_points`` uniform points in the box ``[lo, hi]`` that a view sees (rejection)."""
    n_sky = _num_sky(getattr(views, "sky_masks", None), num_points)
    num_points -= n_sky
    kept: list[Tensor] = []
    kept_colors: list[Tensor] = []
    have = 0
    for _ in range(20):
        cand = lo + (hi - lo) * torch.rand(max(2 * (num_points - have), 1024), 3, generator=generator)
        colors, seen = sample_colors(cand, views.cameras, views.images, views.masks)
        kept.append(cand[seen])
        kept_colors.append(colors[seen])
        have += int(seen.sum())
        if have >= num_points:
            break
    pts, colors = torch.cat(kept)[:num_points], torch.cat(kept_colors)[:num_points]
    if len(pts) == 0:
        raise ValidationError("random initialisation: no random point in the clip's bounds is seen "
                              "by a training view")
    pts, colors = _with_sky(pts, colors, views, n_sky, generator)
    return gaussians_from_points(pts, colors, sh_degree)


def init_network(clip, views, sh_degree: int, model=None) -> Gaussians:
    """The feed-forward network's Gaussians for the training ``views`` (their frames and cameras).

    Uses ``model`` or the shipped default (:func:`splatnet.load_model`); the network runs at the
    views' size rounded down to its stride, and its SH is zero-padded to ``sh_degree``.
    """
    from splatnet.io.checkpoint import load_model
    from splatnet.pipeline.feedforward import reconstruct_clip

    model = load_model() if model is None else model
    stride = int(getattr(model, "stride", 1))
    h, w = views.images.shape[1:3]
    size = (h - h % stride, w - w % stride)
    frames = sorted({int(f) for f in views.frame_ids.tolist()})
    cameras = list(dict.fromkeys(views.camera_names))
    g = reconstruct_clip(clip, model, frames=frames, cameras=cameras, size=size,
                         device=views.images.device, colour_fit=False).gaussians
    k = num_sh_bases(sh_degree)
    if g.sh.shape[-2] < k:
        pad = g.sh.new_zeros(g.num_gaussians, k - g.sh.shape[-2], 3)
        g = Gaussians(g.means, g.quats, g.scales, g.opacities, torch.cat([g.sh, pad], dim=-2),
                      g.velocities, g.times, check=False)
    elif g.sh.shape[-2] > k:
        g = Gaussians(g.means, g.quats, g.scales, g.opacities, g.sh[:, :k], g.velocities, g.times,
                      check=False)
    return g


def init_network_lidar(clip, frames, views, num_points: int, sh_degree: int,
                       generator: torch.Generator, model=None) -> Gaussians:
    """The network's Gaussians plus the LiDAR initialisation (:func:`init_lidar`) of the same
    views: the network covers what LiDAR misses, LiDAR pins down geometry the network gets
    wrong. Refined from here, held-out PSNR stays above refinement from the network alone at
    every step count measured (docs/benchmarks.md). Falls back to the network alone when the
    clip has no LiDAR."""
    net = init_network(clip, views, sh_degree, model)
    if not clip.has_lidar:
        return net
    lidar = init_lidar(clip, frames, views, num_points, sh_degree, generator).to(net.dtype)
    if net.is_dynamic:  # LiDAR points are static: zero velocity, at the first frame's time
        n = lidar.num_gaussians
        t0 = net.times.min() if net.times.numel() else net.times.new_zeros(())
        lidar = Gaussians(lidar.means, lidar.quats, lidar.scales, lidar.opacities, lidar.sh,
                          lidar.means.new_zeros(n, 3), t0.expand(n).clone(), check=False)
    return Gaussians.cat([net, lidar.to(net.device)])


def _num_sky(masks: Tensor | None, num_points: int) -> int:
    if masks is None or num_points < 10 or not bool(masks.any()):
        return 0
    return int(num_points * SKY_FRACTION)


def _subsample_index(m: int, n: int, generator: torch.Generator) -> Tensor:
    if m <= n:
        return torch.arange(m)
    return torch.sort(torch.randperm(m, generator=generator)[:n]).values


def _subsample_points(pts: Tensor, n: int, generator: torch.Generator) -> Tensor:
    return pts[_subsample_index(len(pts), n, generator)]

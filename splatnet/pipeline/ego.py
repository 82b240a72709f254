"""The ego vehicle's own body in its cameras (hood, boot): found in clips that carry no camera
masks, kept out of the scene, and drawn back over renders of the rig's own cameras.

Why: a camera bolted to the car sees the car's hood at the same pixels in every frame. A
pixel-aligned network places those pixels in the world like any others (with LiDAR fusion, at
the depth of the road the LiDAR sees behind the hood), so the hood is smeared over the road in
every other view. On DGP ``scene_02`` (no masks in that data) this is what cost the held-out
frame most (docs/benchmarks.md, "The ego's own body").

How (:func:`estimate_ego_masks`): for each camera and pairs of its context frames whose camera
centres are at least :data:`MIN_BASELINE` apart, every pixel is tested against the hypothesis
that it shows the static scene at the LiDAR's depth (the nearest point per pixel, the gaps filled
by normalised convolution). That hypothesis predicts where the pixel moves in the other frame,
``f``; the change it predicts at the pixel, ``|∇I · f|`` (log intensity, ``f`` capped at
:data:`FLOW_CAP` pixels so the first-order term stays meaningful), is compared with the change
seen there, ``|I_a − I_b|`` (after removing a global exposure offset):

- ego evidence (+1): the scene would have changed the pixel clearly (predicted change above
  :data:`MIN_PREDICTED`) and it did not (seen change under :data:`STATIC_RATIO` × predicted);
- scene evidence (−1): the pixel changed (seen change above :data:`CHANGED`) as the scene
  would: where the hypothesis's motion stays inside the other image, the pixel must match the
  other image there (the residual ``|I_a(x) − I_b(x + f)|``, full flow, 5×5 mean, under
  :data:`EXPLAINED` × the seen change); a change the scene does not explain (a glossy body
  mirroring the moving world) is no evidence either way;
- scene evidence (−1) too where the LiDAR sees an object standing above the ground
  (:func:`lidar_objects`): the LiDAR never sees the ego's body, so a car keeping pace ahead,
  which the images alone cannot tell from the hood, stays scene;
- none (0): anything else: no texture, motion along an edge, no LiDAR depth, or a predicted
  motion under :data:`MIN_FLOW` of the image height.

A pair of frames adds one more kind of ego evidence (+2, both ways of the pair together,
:func:`pair_of_frames`): pixels that stayed nearly the same in place (seen change under
:data:`CHANGED` and under :data:`STILL_RATIO` × the residual) while the static scene at the
LiDAR's depth would have looked clearly different (residual above :data:`UNEXPLAINED`), in each
way of the pair whose motion stays inside the other image, and with no LiDAR object within
:data:`OBJECT_MARGIN` pixels (the road beside a car keeping pace, where its shadow moves along,
stays out). This finds the mirror-like body of a side camera that the first-order test misses:
its reflections change too little in place for scene evidence and too much for the static
scene. Requiring both ways keeps out the road just above a hood, which the forward motion
carries behind the hood in the later frame only.

A second test looks across cameras (:func:`cross_evidence`): the scene hypothesis's point, seen
by another camera where nothing nearer hides it, should look the same there; the ego's body
hides that point from its own camera, so it does not (this finds the mirror-like hoods the first
test cannot). The first test's evidence, averaged over the pairs, and the second's, averaged
over the camera's views, are added. Two passes: the second ignores the pixels of other cameras
that the first found to be their own ego's body.

The ego's body is a region along the bottom of the image, so a camera's mask is the band of rows
below a per-column edge ``e(x)`` chosen to maximise the evidence inside the band minus
:data:`PRIOR` per pixel and :data:`SMOOTH` per row of change between neighbouring columns
(dynamic programming over columns; the image's sides count as empty columns). A camera keeps its
band only when that total reaches :data:`MIN_EVIDENCE` of its pixel count, and the stretches
between the band's parts are closed (:func:`close_gaps`: the body is one region; a glossy hood
mirrors the moving scene, which the tests read as scene). Things the two frames cannot tell
apart stay scene, and parts of the ego seen at the top of an image are not looked for.
Measured on the ``real`` synthetic preset's hoods (docs/benchmarks.md, "The ego's own body" and
"Glossy bodies"): on the 48 training seeds mean IoU 0.736 against the generator's masks (0.725
without the warp tests), and 9 of 192 hood-less cameras given a mask (at most 6.5 % of it).

:class:`splatnet.scene.layers.EgoLayer` draws what each rig camera saw of the ego (its pixels in
the context frame nearest in time) over a render of that camera, so a rendered rig camera shows
the car's hood where the log did, and every other camera (a viewer's, a new sensor's) shows the
scene alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from splatnet.cameras import project_points

#: Pairs of frames whose camera centres are closer than this (metres) are not used: the scene
#: barely moves between them, so nothing tells it from the ego's body (a parked car: no masks).
MIN_BASELINE = 0.15
#: At most this many frame pairs per camera (spread over the clip): the ego's body does not move
#: in the image, so a long clip needs no more, and the cost stays bounded (about 0.1 s a view).
MAX_PAIRS = 4
#: Estimation runs at between MIN_ROWS and MAX_ROWS rows (other views are resized, the masks
#: scaled back): the thresholds below are per pixel of that size.
MIN_ROWS = 128
MAX_ROWS = 160
#: The predicted motion counts only where it is at least this fraction of the image height.
MIN_FLOW = 0.02
#: The predicted flow is capped at this many pixels (of the estimation size) for ``|∇I · f|``.
FLOW_CAP = 4.0
#: Predicted change (log intensity, 5×5 mean) that makes a pixel's staying the same evidence.
MIN_PREDICTED = 0.15
#: A pixel "stayed the same" when its seen change is under this fraction of the predicted one.
STATIC_RATIO = 0.35
#: Seen change (log intensity, 5×5 mean) above which a pixel is scene evidence.
CHANGED = 0.15
#: A change is scene evidence only where the static scene explains it: the warped residual is
#: under this fraction of the seen change (where the flow stays inside the other image).
EXPLAINED = 0.5
#: Residual (log intensity, 5×5 mean) above which the static scene does not explain a pixel,
#: and the fraction of it the seen change must stay under for "stayed in place".
UNEXPLAINED = 0.3
STILL_RATIO = 0.5
#: Pixels (of the estimation size) around the LiDAR's objects where a pixel that stays in place
#: is not taken for the ego's body (the road under a car keeping pace, its shadow).
OBJECT_MARGIN = 16
#: LiDAR points this far (metres) above the ground are objects, never the ego's body.
OBJECT_HEIGHT = 0.4
#: The ground: this percentile of the LiDAR heights within GROUND_RADIUS metres of the camera.
GROUND_PERCENTILE = 10.0
GROUND_RADIUS = 20.0
#: Cost of each pixel inside a band (the evidence of a pixel lies in [-3, 3]: the temporal test
#: summed over both ways of a pair and averaged over pairs, plus the cross-view test's mean).
PRIOR = 0.05
#: Cost per row of edge height change between neighbouring columns.
SMOOTH = 2.0
#: A camera keeps its band when the band's total reaches this fraction of the pixel count.
MIN_EVIDENCE = 0.005
#: Cross-view test (:func:`cross_evidence`): the best-matching other view differs by more than
#: this (log intensity, 5×5 mean) → ego evidence; matches within CROSS_SAME → scene evidence.
CROSS_DIFFERENT = 0.25
CROSS_SAME = 0.08


def _box(x: Tensor, r: int) -> Tensor:
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)


def _log_grey(img: Tensor) -> Tensor:
    """``[H, W, 3]`` in [0, 1] → ``[1, 1, H, W]`` log intensity, lightly smoothed."""
    return _box(torch.log(img.float().mean(-1)[None, None] + 0.03), 1)


def _gradient(g: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences of ``[1, 1, H, W]`` → two ``[H, W]``."""
    px = F.pad(g, (1, 1, 0, 0), mode="replicate")
    py = F.pad(g, (0, 0, 1, 1), mode="replicate")
    return (px[..., :, 2:] - px[..., :, :-2])[0, 0] / 2, (py[..., 2:, :] - py[..., :-2, :])[0, 0] / 2


def _sparse(points: Tensor, K: Tensor, cam_to_world: Tensor, size: tuple[int, int]) -> Tensor:
    """``[H, W]`` camera depth of the nearest of ``points [M, 3]`` per pixel (0: none)."""
    from splatnet.cameras import sparse_depth

    w2c = torch.linalg.inv(cam_to_world.double()).float()
    return sparse_depth(points.float(), K.float()[None], w2c[None], size, near=0.5)[0]


def lidar_depth(nearest: Tensor) -> Tensor:
    """``[H, W]`` depth with the gaps of ``nearest`` (the LiDAR's sparse depth, 0: none) filled
    by normalised convolution; 0 where no point is near."""
    from splatnet.models.lidar_fusion import fill_sparse

    filled, covered = fill_sparse(nearest[None, None], (nearest > 0)[None, None], (1.5, 4.0, 12.0))
    return torch.where(covered, filled, torch.zeros_like(filled))[0, 0]


def lidar_objects(points: Tensor, nearest: Tensor, down: Tensor, K: Tensor,
                  cam_to_world: Tensor) -> Tensor:
    """``[H, W]`` bool: pixels whose nearest LiDAR point (``nearest``, the sparse depth of
    ``points``) stands more than :data:`OBJECT_HEIGHT` above the ground (things the LiDAR sees
    cannot be the ego's body, which it never sees: a car keeping pace ahead is scene, not hood).

    ``down [3]`` is the world's down direction (the rig's mean camera y axis); the ground is the
    :data:`GROUND_PERCENTILE` percentile of the points' heights within :data:`GROUND_RADIUS`
    metres of the camera.
    """
    size = tuple(nearest.shape)
    pts = points.float()
    down = down.float() / down.float().norm()
    centre = cam_to_world[:3, 3].float()
    rel = pts - centre
    height = -(rel @ down)  # [M] metres above the camera's level
    across = rel - (rel @ down)[:, None] * down
    near = across.norm(dim=-1) < GROUND_RADIUS
    if int(near.sum()) < 20:
        return torch.zeros(size, dtype=torch.bool)
    ground = torch.quantile(height[near], GROUND_PERCENTILE / 100.0)
    on_objects = _sparse(pts[height > ground + OBJECT_HEIGHT], K, cam_to_world, size)
    hit = (on_objects > 0) & (on_objects <= nearest * 1.02)
    return F.max_pool2d(hit[None, None].float(), 5, stride=1, padding=2)[0, 0] > 0


def _scene_points(depth: Tensor, K: Tensor, cam_to_world: Tensor) -> tuple[Tensor, Tensor]:
    """``(pix [HW, 3], world [HW, 3])``: each pixel centre of ``depth [H, W]`` as ``(u, v, 1)``
    and its point at that depth along its ray (the scene hypothesis), in world coordinates."""
    h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5,
                          torch.arange(w, dtype=torch.float32) + 0.5, indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3)
    rays = torch.linalg.solve(K, pix.T).T * depth.reshape(-1, 1)
    return pix, rays @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


@dataclass
class PairEvidence:
    """One way ``a → b`` of a frame pair (:func:`pair_evidence`): ``evidence [H, W]`` in
    {−1, 0, +1}; ``still [H, W]`` bool, pixels the static scene does not explain that stayed
    in place; ``inside [H, W]`` bool, pixels whose scene motion stays inside ``b`` (where
    ``still`` could be tested)."""

    evidence: Tensor
    still: Tensor
    inside: Tensor


def pair_evidence(grey_a: Tensor, grey_b: Tensor, K: Tensor, cam_a: Tensor, cam_b: Tensor,
                  depth_a: Tensor, objects_a: Tensor | None = None) -> PairEvidence:
    """The temporal test for the pixels of view ``a`` against view ``b`` (module docstring).

    ``grey_a``, ``grey_b``: ``[H, W]`` log intensity (:func:`_log_grey`) of one camera at two
    times; ``K [3, 3]``,
    ``cam_a``/``cam_b [4, 4]`` camera-to-world; ``depth_a [H, W]`` the scene hypothesis's depth
    in view ``a`` (0 = unknown: no evidence); ``objects_a [H, W]`` bool, pixels the LiDAR sees
    as objects (:func:`lidar_objects`): scene evidence whatever the images say.
    """
    h, w = depth_a.shape
    K = K.float()
    pix, world = _scene_points(depth_a, K, cam_a.float())
    w2c_b = torch.linalg.inv(cam_b.double()).float()
    uv, z = project_points(world, K[None], w2c_b[None])
    flow = (uv[0] - pix[:, :2]).reshape(h, w, 2)
    known = (depth_a > 0) & (z[0].reshape(h, w) > 0.1)
    moves = flow.norm(dim=-1) >= MIN_FLOW * h
    ga, gb = grey_a[None, None], grey_b[None, None]
    gb = gb + (ga - gb).median()  # a global exposure change is not a change of the scene
    seen = _box((ga - gb).abs(), 2)[0, 0]
    # Where the scene hypothesis's pixel is in b, and how unlike it the pixel there is.
    at_b = uv[0].reshape(h, w, 2)
    grid = torch.stack([at_b[..., 0] / w * 2 - 1, at_b[..., 1] / h * 2 - 1], -1)[None]
    warped = F.grid_sample(gb, grid, align_corners=False, padding_mode="border")
    residual = _box((ga - warped).abs(), 2)[0, 0]
    capped = flow * (FLOW_CAP / flow.norm(dim=-1, keepdim=True).clamp_min(FLOW_CAP))
    gx, gy = _gradient(ga)
    predicted = _box((gx * capped[..., 0] + gy * capped[..., 1]).abs()[None, None], 2)[0, 0]
    ok = known & moves
    inside = ok & (grid[0].abs() < 1).all(-1)
    evidence = torch.zeros(h, w)
    evidence[ok & (predicted > MIN_PREDICTED) & (seen < STATIC_RATIO * predicted)] = 1.0
    changed = ok & (seen > CHANGED)
    evidence[changed] = -1.0
    evidence[changed & inside & (residual >= EXPLAINED * seen)] = 0.0  # not as the scene would
    still = inside & (residual > UNEXPLAINED) & (seen < STILL_RATIO * residual) & (seen < CHANGED)
    if objects_a is not None:
        evidence[objects_a] = -1.0
    return PairEvidence(evidence, still, inside)


def pair_of_frames(way: PairEvidence, back: PairEvidence, objects: Tensor) -> Tensor:
    """``[H, W]`` evidence of a frame pair from its two ways (:func:`pair_evidence` ``a → b``
    and ``b → a``; ``objects``: either frame's LiDAR objects): their sum, and +2 where the
    pixel stayed in place unexplained in every way that could test it (at least one) and no
    LiDAR object is within :data:`OBJECT_MARGIN` pixels."""
    near = F.max_pool2d(objects[None, None].float(), 2 * OBJECT_MARGIN + 1, stride=1,
                        padding=OBJECT_MARGIN)[0, 0] > 0
    still = ((way.still | ~way.inside) & (back.still | ~back.inside)
             & (way.inside | back.inside) & ~near)
    return torch.where(still, torch.full_like(way.evidence, 2.0), way.evidence + back.evidence)


def bottom_band(evidence: Tensor, prior: float, smooth: float) -> tuple[Tensor, float]:
    """The band along the bottom of ``evidence [H, W]`` that best fits it: ``([H, W] bool,
    score)``, rows ``y >= e(x)`` with ``e`` maximising ``Σ_x Σ_{y >= e(x)} (evidence − prior)
    − smooth · Σ_x |e(x) − e(x − 1)|`` (``e(x) = H``: an empty column; the columns beyond the
    image's sides count as empty, so a band pays for rising from them too)."""
    h, w = evidence.shape
    s = evidence.double() - prior
    suffix = torch.cat([s.flip(0).cumsum(0).flip(0), torch.zeros(1, w, dtype=s.dtype)])  # [H+1, W]
    e = torch.arange(h + 1, dtype=s.dtype)
    jump = smooth * (e[:, None] - e[None, :]).abs()  # [to, from]
    border = smooth * (h - e)  # the image's sides count as empty columns: a band rises from them
    best = suffix[:, 0] - border
    back = []
    for x in range(1, w):
        val, arg = (best[None, :] - jump).max(1)
        back.append(arg)
        best = val + suffix[:, x]
    best = best - border
    edge = [int(best.argmax())]
    for arg in reversed(back):
        edge.append(int(arg[edge[-1]]))
    edges = torch.tensor(edge[::-1])
    return torch.arange(h)[:, None] >= edges[None, :], float(best.max())


def close_gaps(band: Tensor) -> Tensor:
    """``band [H, W]`` (rows at and below a per-column edge) with each run of empty columns
    between two of its columns filled up to the straight line between those two columns' edges
    (rounded to rows; nothing beyond its outermost columns): the ego's body is one region along
    the image's bottom, so a stretch between two found parts is the body too (a glossy hood
    mirrors the moving scene, which looks like scene evidence)."""
    h, w = band.shape
    edge = torch.where(band.any(0), band.float().argmax(0), torch.full((w,), h)).double()
    cols = torch.nonzero(edge < h).squeeze(1).tolist()
    for a, b in zip(cols, cols[1:]):
        if b - a > 1:
            t = torch.arange(1, b - a, dtype=torch.float64) / (b - a)
            edge[a + 1:b] = (edge[a] + (edge[b] - edge[a]) * t).round()
    return torch.arange(h)[:, None] >= edge[None, :]


def _pairs(centres: Tensor) -> list[tuple[int, int]]:
    """Frame pairs ``(i, j)``, ``i < j``: each frame with the next one at least
    :data:`MIN_BASELINE` away (at most :data:`MAX_PAIRS`, spread over the frames)."""
    out = []
    for i in range(len(centres)):
        for j in range(i + 1, len(centres)):
            if float((centres[j] - centres[i]).norm()) >= MIN_BASELINE:
                out.append((i, j))
                break
    if len(out) > MAX_PAIRS:
        keep = torch.linspace(0, len(out) - 1, MAX_PAIRS).round().long().tolist()
        out = [out[k] for k in keep]
    return out


def estimate_ego_masks(views, lidar: Mapping[int, Tensor | None]) -> dict[str, Tensor]:
    """The ego's body in each camera of ``views`` (a :class:`~splatnet.clip.Views` of one or
    more frames), from the images, camera poses and ``lidar`` (frame index → world points
    ``[M, 3]``, or None).

    Returns ``{camera name: [H, W] bool}`` (True = the ego's body) for the cameras where one was
    found; cameras with fewer than two frames far enough apart, without LiDAR, or without enough
    evidence are left out (the module docstring says how).
    """
    images = views.images  # [V, H, W, 3]
    height, width = images.shape[1:3]
    scale = min(max(1.0, MIN_ROWS / height), MAX_ROWS / height)
    h, w = max(8, round(height * scale)), max(8, round(width * scale))
    frames = [int(f) for f in views.frame_ids.tolist()]
    usable = [i for i in range(len(frames)) if lidar.get(frames[i]) is not None]
    if not usable:
        return {}
    c2w = views.cameras.cam_to_world.float()
    K = views.cameras.K.float().clone()
    K[:, 0] *= w / width
    K[:, 1] *= h / height
    small = F.interpolate(images.permute(0, 3, 1, 2).float(), size=(h, w),
                          **({"mode": "area"} if h < height else
                             {"mode": "bilinear", "align_corners": False})).permute(0, 2, 3, 1)
    # The world's down direction at each frame: the mean y axis (OpenCV: down) of its cameras
    # (a driving rig's cameras are about level).
    down = {f: c2w[[i for i in range(len(frames)) if frames[i] == f], :3, 1].mean(0)
            for f in set(frames)}
    pairs_of: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}
    for name in dict.fromkeys(views.camera_names):
        order = sorted((i for i in usable if views.camera_names[i] == name), key=lambda i: frames[i])
        pairs = _pairs(c2w[order, :3, 3])
        if pairs:
            pairs_of[name] = (order, pairs)
    # Only the frames some pair uses are looked at (a long clip: a few of them).
    used_frames = {frames[order[k]] for order, pairs in pairs_of.values() for p in pairs for k in p}
    needed = [i for i in usable if frames[i] in used_frames]
    nearest = {i: _sparse(lidar[frames[i]], K[i], c2w[i], (h, w)) for i in needed}
    depth = {i: lidar_depth(nearest[i]) for i in needed}
    objects = {i: lidar_objects(lidar[frames[i]], nearest[i], down[frames[i]], K[i], c2w[i])
               for i in needed}
    greys = {i: _log_grey(small[i])[0, 0] for i in needed}
    temporal: dict[str, Tensor] = {}
    looks: dict[str, list[list[_Look]]] = {}
    for name, (order, pairs) in pairs_of.items():
        evidence = torch.zeros(h, w)
        for i, j in pairs:
            a, b = order[i], order[j]
            evidence += pair_of_frames(
                pair_evidence(greys[a], greys[b], K[a], c2w[a], c2w[b], depth[a], objects[a]),
                pair_evidence(greys[b], greys[a], K[b], c2w[b], c2w[a], depth[b], objects[b]),
                objects[a] | objects[b])
        temporal[name] = evidence / len(pairs)
        # Each view of a pair is looked for in the other cameras (this camera sees its own body
        # again at its other frames) at the pair's two frames: a bounded cost for long clips.
        near: dict[int, set[int]] = {}
        for i, j in pairs:
            for a in (order[i], order[j]):
                near.setdefault(a, set()).update((frames[order[i]], frames[order[j]]))
        looks[name] = [look_across(greys, K, c2w, depth, a,
                                   [o for o in needed if views.camera_names[o] != name
                                    and frames[o] in near[a]]) + [_Look(-1, objects[a])]
                       for a in sorted(near)]
    # Two passes: the second looks for each camera's scene in the other cameras only where the
    # first found no ego body of theirs (one camera's hood hides the road another one's hides).
    bands: dict[str, Tensor] = {}
    for step in range(2):
        blocked = {i: bands[views.camera_names[i]] for i in usable if views.camera_names[i] in bands}
        new_bands: dict[str, Tensor] = {}
        for name, evidence in temporal.items():
            cross = sum(cross_evidence(found, blocked if step else None) for found in looks[name])
            band, score = bottom_band(evidence + cross / len(looks[name]), PRIOR, SMOOTH)
            if score >= MIN_EVIDENCE * h * w and bool(band.any()):
                new_bands[name] = close_gaps(band)
        bands = new_bands
    out: dict[str, Tensor] = {}
    for name, band in bands.items():
        if (h, w) != (height, width):
            band = F.interpolate(band[None, None].float(), size=(height, width),
                                 mode="nearest")[0, 0] > 0.5
        out[name] = band
    return out


@dataclass
class _Look:
    """Where view ``a``'s scene hypothesis lands in another view ``view``: ``grid [1, H, W, 2]``
    (normalised sampling positions), ``visible [H, W]`` (inside, in front, nothing nearer),
    ``diff [H, W]`` (log intensity of ``a`` minus that view's there). ``view = -1`` carries
    ``a``'s LiDAR objects as ``visible``."""

    view: int
    visible: Tensor
    grid: Tensor | None = None
    diff: Tensor | None = None


def look_across(greys: Mapping[int, Tensor], K: Tensor, cam_to_world: Tensor,
                depth: Mapping[int, Tensor], a: int, others: Sequence[int]) -> list[_Look]:
    """View ``a``'s scene hypothesis (the point at ``depth[a]`` along each pixel's ray) seen
    by each view of ``others`` where it is the first surface (no nearer LiDAR depth there)
    and inside the image. ``greys``: each view's ``[H, W]`` log intensity; ``K [V, 3, 3]``,
    ``cam_to_world [V, 4, 4]`` at that size."""
    h, w = depth[a].shape
    _, world = _scene_points(depth[a], K[a], cam_to_world[a])
    out = []
    for o in others:
        if o == a:
            continue
        w2c = torch.linalg.inv(cam_to_world[o].double()).float()
        # (by hand, not cameras.project_points: that one's order of operations differs in the
        # last bits, which moves some nearest-sample picks and the masks measured with this)
        cam = world @ w2c[:3, :3].T + w2c[:3, 3]
        z = cam[:, 2]
        uv = (cam @ K[o].T)[:, :2] / z.clamp_min(1e-6)[:, None]
        grid = torch.stack([uv[:, 0] / w * 2 - 1, uv[:, 1] / h * 2 - 1], -1).reshape(1, h, w, 2)
        z = z.reshape(h, w)
        there = F.grid_sample(depth[o][None, None], grid, mode="nearest", align_corners=False)[0, 0]
        visible = ((grid[0].abs() < 1).all(-1) & (z > 0.5) & (there > 0)
                   & (z <= there * 1.05 + 0.2) & (depth[a] > 0))
        if int(visible.sum()) < 50:
            continue
        diff = greys[a] - F.grid_sample(greys[o][None, None], grid, align_corners=False)[0, 0]
        out.append(_Look(o, visible, grid, diff))
    return out


def cross_evidence(looks: Sequence[_Look], blocked: Mapping[int, Tensor] | None = None) -> Tensor:
    """``[H, W]`` evidence in {−1, 0, +1} that the pixels of a view are the ego's body, from
    the other views that see the same LiDAR surface (:func:`look_across`).

    The ego's body hides that surface from its own camera, so it looks unlike it: +1 where even
    the best-matching view differs by more than :data:`CROSS_DIFFERENT` (log intensity, 5×5
    mean, after each pair's median exposure offset), −1 where one matches within
    :data:`CROSS_SAME`, 0 where no other view sees it; −1 where the LiDAR sees an object (the
    ``view = -1`` entry). ``blocked`` (view → ``[H, W]`` bool) marks pixels of other views that
    are their own ego's body: those do not see the scene.
    """
    objects = next(lk.visible for lk in looks if lk.view == -1)
    best = torch.full(objects.shape, float("inf"))
    seen = torch.zeros(objects.shape, dtype=torch.bool)
    for lk in looks:
        if lk.view == -1:
            continue
        visible = lk.visible
        if blocked is not None and lk.view in blocked:  # that view sees the ego's body there
            visible = visible & (F.grid_sample(blocked[lk.view][None, None].float(), lk.grid,
                                               mode="nearest", align_corners=False)[0, 0] < 0.5)
            if int(visible.sum()) < 50:
                continue
        cost = _box((lk.diff - lk.diff[visible].median()).abs()[None, None], 2)[0, 0]
        best = torch.where(visible, torch.minimum(best, cost), best)
        seen |= visible
    evidence = torch.zeros(objects.shape)
    evidence[seen & (best > CROSS_DIFFERENT)] = 1.0
    evidence[seen & (best < CROSS_SAME)] = -1.0
    evidence[objects] = -1.0
    return evidence

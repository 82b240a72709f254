"""Training samples from clips: context views in, target views out.

A sample is drawn from one clip: the rig cameras of ``context_frames`` consecutive frames are
the network's input; ``target_views`` other views are rendered and compared: rig cameras at
frames outside the context window (temporal targets) and "target"-role cameras (held-out novel
views, e.g. those the synthetic generator renders beside the rig). Sample ``i`` is a pure
function of ``(data.seed, i)``, so every rank and every resumed run sees the same samples.

Depth supervision: LiDAR points of the view's frame projected into it (sparse, z-buffered),
else the clip's ground-truth depth maps when it has no LiDAR; 0 marks "no depth".
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from splatnet.cameras import Cameras, sparse_depth
from splatnet.errors import ValidationError


# ---------------------------------------------------------------------------- batches
@dataclass
class SplatBatch:
    """B samples of V context and T target views (one image size). Images in ``[0, 1]``."""

    context_images: Tensor  # [B, V, 3, H, W]
    context_cameras: Cameras  # batch [B], V cameras
    context_depths: Tensor | None  # [B, V, 1, H, W] metres, 0 = unknown
    target_images: Tensor  # [B, T, 3, H, W]
    target_cameras: Cameras  # batch [B], T cameras
    target_depths: Tensor | None  # [B, T, 1, H, W] metres, 0 = unknown
    target_sky: Tensor | None  # [B, T, 1, H, W] 1 = sky, 0 = not sky, -1 = unknown
    target_valid: Tensor | None  # [B, T, 1, H, W] bool, False = ignore the pixel
    context_lidar: list[Tensor | None] | None = None  # B world point clouds [P_b, 3] (model input)
    context_sky: Tensor | None = None  # [B, V, 1, H, W] 1 = sky, 0 = not sky, -1 = unknown
    context_valid: Tensor | None = None  # [B, V, 1, H, W] bool, False = not the scene (ego hood)

    @property
    def batch_size(self) -> int:
        return self.context_images.shape[0]

    def to(self, device: Any) -> SplatBatch:
        def mv(x: Any) -> Any:
            if isinstance(x, list):
                return [mv(v) for v in x]
            return None if x is None else x.to(device)

        return SplatBatch(**{f.name: mv(getattr(self, f.name)) for f in dataclasses.fields(self)})


def collate(items: list[SplatBatch]) -> SplatBatch:
    """Concatenate samples (each with B = 1) along the batch dimension."""
    if not items:
        raise ValidationError("collate: no samples")
    if len(items) == 1:
        return items[0]
    shapes = {(tuple(s.context_images.shape[1:]), tuple(s.target_images.shape[1:])) for s in items}
    if len(shapes) > 1:
        raise ValidationError(f"collate: samples differ in view count or size {sorted(shapes)}; "
                              "use data.micro_batch=1 for clips with different rigs")

    def cat(name: str, fill: float) -> Tensor | None:
        vals = [getattr(s, name) for s in items]
        if all(v is None for v in vals):
            return None
        ref = next(v for v in vals if v is not None)
        return torch.cat([v if v is not None else torch.full_like(ref, fill) for v in vals])

    return SplatBatch(
        torch.cat([s.context_images for s in items]), _cat_cameras([s.context_cameras
                                                                     for s in items]),
        cat("context_depths", 0.0), torch.cat([s.target_images for s in items]),
        _cat_cameras([s.target_cameras for s in items]), cat("target_depths", 0.0),
        cat("target_sky", -1.0), _cat_valid(items, "target_valid"),
        None if all(s.context_lidar is None for s in items)
        else [p for s in items for p in (s.context_lidar or [None])],
        cat("context_sky", -1.0), _cat_valid(items, "context_valid"))


def _cat_valid(items: list[SplatBatch], name: str) -> Tensor | None:
    vals = [getattr(s, name) for s in items]
    if all(v is None for v in vals):
        return None
    ref = next(v for v in vals if v is not None)
    return torch.cat([v if v is not None else torch.ones_like(ref) for v in vals])


def _cat_cameras(cams: list[Cameras]) -> Cameras:
    ts = [c.timestamps for c in cams]
    return Cameras(torch.cat([c.K for c in cams]), torch.cat([c.cam_to_world for c in cams]),
                   cams[0].width, cams[0].height,
                   None if any(t is None for t in ts) else torch.cat(ts),
                   cams[0].names, check=False)


# ---------------------------------------------------------------------------- clip source
class ClipSource:
    """Samples from clip directories (see the module docstring). Implements ``DataSource``."""

    def __init__(self, paths: list[str | os.PathLike], *, context_frames: int = 2,
                 target_views: int = 2, target_camera_prob: float = 0.5, seed: int = 0,
                 weights: list[float] | None = None) -> None:
        """``weights``: a sampling weight per clip (normalised here); None: every clip in turn."""
        from splatnet.clip import Clip

        if not paths:
            raise ValidationError("data: no clips (set data.clips or data.synthetic)")
        if context_frames < 1 or target_views < 1:
            raise ValidationError("data.context_frames and data.target_views must be >= 1")
        self.paths = [Path(p).expanduser() for p in paths]
        self.clips = [Clip.load(p) for p in self.paths]
        for p, c in zip(self.paths, self.clips):
            if c.num_frames < context_frames:
                raise ValidationError(f"{p}: {c.num_frames} frame(s), fewer than "
                                      f"data.context_frames={context_frames}")
            if not c.rig_camera_names:
                raise ValidationError(f"{p}: no rig cameras")
        self.context_frames = context_frames
        self.target_views = target_views
        self.target_camera_prob = target_camera_prob
        self.seed = seed
        self.weights = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(self.paths),) or not np.isfinite(w).all() or (w < 0).any() \
                    or w.sum() <= 0:
                raise ValidationError(f"data: expected {len(self.paths)} non-negative clip weights "
                                      "with a positive sum")
            self.weights = w / w.sum()

    def plan(self, index: int) -> tuple[int, list[int], list[tuple[int, str]]]:
        """``(clip index, context frames, [(frame, camera) targets])`` of sample ``index``."""
        rng = np.random.default_rng([self.seed, index])
        if self.weights is None:
            ci = index % len(self.clips)
        else:
            ci = int(rng.choice(len(self.clips), p=self.weights))
        clip = self.clips[ci]
        start = int(rng.integers(0, clip.num_frames - self.context_frames + 1))
        frames = list(range(start, start + self.context_frames))
        others = [f for f in range(clip.num_frames) if f not in frames]
        temporal = [(f, c) for f in others for c in clip.rig_camera_names]
        held_out = [(f, c) for f in frames for c in clip.target_camera_names]
        targets = []
        for _ in range(self.target_views):
            use_held = held_out and (not temporal or rng.random() < self.target_camera_prob)
            pool = held_out if use_held else temporal
            if not pool:  # one-window clip without target cameras: reconstruct the input
                pool = [(f, c) for f in frames for c in clip.rig_camera_names]
            targets.append(pool[int(rng.integers(0, len(pool)))])
        return ci, frames, targets

    def get(self, index: int, stage: Any) -> SplatBatch:
        size = tuple(int(v) for v in stage.size)
        ci, frames, targets = self.plan(index)
        clip = self.clips[ci]
        ctx = clip.views(frames=frames, size=size, num_workers=1)
        tgt = [clip.views(frames=[f], cameras=[c], size=size, num_workers=1) for f, c in targets]
        lidar_cache: dict[int, Tensor | None] = {}
        ctx_depth = _depth_maps(clip, ctx.cameras, ctx.frame_ids.tolist(), ctx.depths, size,
                                lidar_cache)
        tgt_cams = Cameras(torch.cat([t.cameras.K for t in tgt]),
                           torch.cat([t.cameras.cam_to_world for t in tgt]), size[1], size[0],
                           torch.cat([t.cameras.timestamps for t in tgt]),
                           [t.camera_names[0] for t in tgt], check=False)
        tgt_frames = [f for f, _ in targets]
        tgt_depth_gt = None
        if all(t.depths is not None for t in tgt):
            tgt_depth_gt = torch.cat([t.depths for t in tgt])
        tgt_depth = _depth_maps(clip, tgt_cams, tgt_frames, tgt_depth_gt, size, lidar_cache)
        sky = None
        if any(t.sky_masks is not None for t in tgt):
            sky = torch.cat([t.sky_masks.float() if t.sky_masks is not None
                             else torch.full((1, *size, 1), -1.0) for t in tgt])
        valid = None
        if any(t.masks is not None for t in tgt):
            valid = torch.cat([t.masks if t.masks is not None
                               else torch.ones(1, *size, 1, dtype=torch.bool) for t in tgt])

        def chw(x: Tensor | None) -> Tensor | None:  # [V, H, W, C] -> [1, V, C, H, W]
            return None if x is None else x.permute(0, 3, 1, 2).contiguous()[None]

        lidar = None
        if clip.has_lidar:
            pts = [p for p in (lidar_cache[f] if f in lidar_cache else clip.lidar(f)
                               for f in frames) if p is not None]
            lidar = [torch.cat(pts) if pts else None]
        ctx_sky = None if ctx.sky_masks is None else ctx.sky_masks.float()
        return SplatBatch(
            chw(ctx.images), _batch1(ctx.cameras), chw(ctx_depth),
            chw(torch.cat([t.images for t in tgt])), _batch1(tgt_cams), chw(tgt_depth),
            chw(sky), chw(valid), lidar, chw(ctx_sky), chw(ctx.masks))

    def collate(self, items: list[SplatBatch]) -> SplatBatch:
        return collate(items)


def _batch1(c: Cameras) -> Cameras:
    return Cameras(c.K[None], c.cam_to_world[None], c.width, c.height,
                   None if c.timestamps is None else c.timestamps[None], c.names, check=False)


def _depth_maps(clip: Any, cams: Cameras, frames: list[int], dense: Tensor | None,
                size: tuple[int, int], cache: dict[int, Tensor | None]) -> Tensor | None:
    """``[V, H, W, 1]`` supervision depth: LiDAR of each view's frame, else ``dense``."""
    if not clip.has_lidar:
        return dense
    out = torch.zeros(len(frames), size[0], size[1], 1)
    w2c = cams.world_to_cam
    for f in sorted(set(frames)):
        if f not in cache:
            cache[f] = clip.lidar(f)
        pts = cache[f]
        if pts is None or not len(pts):
            continue
        views = [v for v, fv in enumerate(frames) if fv == f]
        out[views, :, :, 0] = sparse_depth(pts, cams.K[views], w2c[views], size)
    return out


# ---------------------------------------------------------------------------- synthetic clips
def synthetic_clips(seeds: list[int], cameras: int, frames: int, size: tuple[int, int],
                    targets: int, cache_dir: str | os.PathLike,
                    realism: str = "none", workers: int = 1) -> list[Path]:
    """Paths of generated clips, rendering the missing ones into ``cache_dir`` (cached by key),
    in ``workers`` processes at once."""
    import importlib

    from splatnet.clip.synth import generate

    # Part of the cache key: a new generator version renders new clips instead of reusing old.
    version = getattr(importlib.import_module(generate.__module__), "GENERATOR_VERSION", 0)

    root = Path(cache_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    out, missing = [], []
    for seed in seeds:
        name = (f"synth_v{version}_seed{seed}_c{cameras}_f{frames}_"
                f"{size[0]}x{size[1]}_t{targets}" + ("" if realism == "none" else f"_{realism}"))
        path = root / name
        if not (path / "clip.json").is_file():
            missing.append((path, int(seed)))
        out.append(path)
    job = functools.partial(_generate_one, cameras=cameras, frames=frames, size=tuple(size),
                            targets=targets, realism=None if realism == "none" else realism)
    if workers > 1 and len(missing) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent may hold torch threads and a process group, which must not be forked
        with ProcessPoolExecutor(min(workers, len(missing)), mp_context=mp.get_context("spawn")) as ex:
            list(ex.map(job, missing))
    else:
        for item in missing:
            job(item)
    return out


def _generate_one(item: tuple[Path, int], **kwargs: Any) -> None:
    from splatnet.clip.synth import generate

    path, seed = item
    try:
        generate(path, seed, **kwargs)
    except (FileExistsError, ValidationError):
        if not (path / "clip.json").is_file():  # not a concurrent writer finishing
            raise


class ClipEvaluator:
    """Mean held-out PSNR / SSIM (and LiDAR depth error) over clips, via ``evaluate_clip``.

    Each clip is split as ``splatnet.clip.split.split_views`` does by default (its target cameras
    when it has them, else its last frame), as the benchmarks report.
    """

    def __init__(self, paths: list[str | os.PathLike], size: tuple[int, int] | None = None):
        from splatnet.clip import Clip

        self.clips = [Clip.load(Path(p).expanduser()) for p in paths]
        self.size = size

    @classmethod
    def from_config(cls, cfg: Any) -> ClipEvaluator:
        paths: list[Any] = list(cfg.eval.clips)
        s = cfg.data.synthetic
        if cfg.eval.synthetic_seeds:
            paths += synthetic_clips(cfg.eval.synthetic_seeds, s.cameras, s.frames, s.size,
                                     s.targets, s.cache_dir)
        return cls(paths, cfg.eval.size)

    def __call__(self, model: Any, step: int, stage: Any) -> dict[str, float]:
        from splatnet.pipeline.evaluate import evaluate_clip

        size = tuple(self.size) if self.size is not None else tuple(stage.size)
        device = next(model.parameters()).device
        reports = [evaluate_clip(c, model, size=size, device=device) for c in self.clips]
        out = {"psnr": float(np.mean([r["psnr"] for r in reports])),
               "ssim": float(np.mean([r["ssim"] for r in reports]))}
        rel = [r["depth_vs_lidar"]["abs_rel"] for r in reports if "depth_vs_lidar" in r]
        if rel:
            out["depth_abs_rel"] = float(np.mean(rel))
        return out


def build_data(cfg: Any) -> ClipSource:
    """The ``DataSource`` a ``TrainConfig`` describes (rank 0 renders synthetic clips first).

    Sources: ``data.clips``, each of ``data.sources`` and ``data.synthetic``. With weights, a
    source's share of the samples is its weight over the sum of all weights (split evenly over
    its clips); with none, every clip comes in turn.
    """
    import torch.distributed as dist

    d = cfg.data
    groups: list[tuple[str, list[Any], float | None]] = []
    if d.clips:
        groups.append(("data.clips", list(d.clips), None))
    groups += [(f"data.sources ({src.name})", list(src.clips), src.weight)
               for src in d.sources if src.clips]
    if d.synthetic is not None:
        s = d.synthetic
        rank0 = not dist.is_initialized() or dist.get_rank() == 0

        def make() -> list[Path]:
            return synthetic_clips(s.all_seeds(), s.cameras, s.frames, s.size, s.targets, s.cache_dir,
                                   s.realism, s.workers)

        syn = make() if rank0 else []
        if dist.is_initialized():
            dist.barrier()
        if not rank0:
            syn = make()
        groups.append(("data.synthetic", syn, s.weight))
    paths = [p for _, clips, _ in groups for p in clips]
    return ClipSource(paths, context_frames=d.context_frames, target_views=d.target_views,
                      target_camera_prob=d.target_camera_prob, seed=d.seed,
                      weights=source_weights(groups))


def source_weights(groups: list[tuple[str, list[Any], float | None]]) -> list[float] | None:
    """Per-clip sampling weights of ``(name, clips, weight)`` groups: each group's weight (relative
    to the others') split evenly over its clips; None when no group has a weight. Weights are all
    or nothing: a weighted group beside an unweighted one is an error naming the latter."""
    weighted = [w is not None for _, _, w in groups]
    if not any(weighted):
        return None
    if not all(weighted):
        missing = [name for name, _, w in groups if w is None]
        raise ValidationError(f"data: {', '.join(missing)} need a weight when another source has "
                              "one (data.clips cannot be weighted: list them in data.sources)")
    if sum(w for _, _, w in groups) <= 0:
        raise ValidationError("data: the source weights sum to 0")
    out: list[float] = []
    for _, clips, w in groups:
        out += [w / len(clips)] * len(clips)
    return out

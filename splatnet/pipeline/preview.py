"""Pictures of splats: render a clip's camera trajectory (optionally shifted sideways) to RGB and
colour-mapped depth, side by side. Used by ``splatnet render`` and ``make demo``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from splatnet.cameras import Cameras
from splatnet.gaussians import Gaussians

# Turbo colour map (Mikhailov 2019), 9 control points, linear in between: enough for depth.
_TURBO = np.array([
    [0.190, 0.072, 0.232], [0.275, 0.409, 0.902], [0.150, 0.700, 0.900], [0.165, 0.922, 0.576],
    [0.560, 0.990, 0.245], [0.900, 0.850, 0.180], [0.990, 0.560, 0.110], [0.860, 0.240, 0.040],
    [0.480, 0.016, 0.010]])


def colorize_depth(depth: np.ndarray, alpha: np.ndarray | None = None, near: float | None = None,
                   far: float | None = None) -> np.ndarray:
    """``depth [H, W]`` (metres) → ``uint8 [H, W, 3]``: near = warm, far = cool, inverse-depth scale.

    Pixels with no content (``alpha < 0.5`` or depth ≤ 0) are black. ``near``/``far`` default to
    the 2nd/98th percentiles of the valid depths.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = depth > 0
    if alpha is not None:
        valid &= np.asarray(alpha) >= 0.5
    out = np.zeros(depth.shape + (3,), dtype=np.uint8)
    if not valid.any():
        return out
    d = depth[valid]
    lo = near if near is not None else float(np.percentile(d, 2))
    hi = far if far is not None else float(np.percentile(d, 98))
    lo, hi = max(lo, 1e-3), max(hi, lo * 1.001 + 1e-6)
    inv = (1.0 / np.clip(d, lo, hi) - 1.0 / hi) / (1.0 / lo - 1.0 / hi)  # 1 = near, 0 = far
    x = inv * (len(_TURBO) - 1)
    i = np.clip(np.floor(x).astype(int), 0, len(_TURBO) - 2)
    t = (x - i)[:, None]
    rgb = _TURBO[i] * (1 - t) + _TURBO[i + 1] * t
    out[valid] = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


def to_uint8(rgb: torch.Tensor | np.ndarray) -> np.ndarray:
    a = rgb.detach().cpu().numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass
class PreviewFrame:
    frame: int
    camera: str
    rgb: np.ndarray  # [H, W, 3] uint8
    depth: np.ndarray  # [H, W, 3] uint8, colour-mapped

    def side_by_side(self) -> np.ndarray:
        return np.concatenate([self.rgb, self.depth], axis=1)


def shift_cameras_lateral(cameras: Cameras, ego_to_world: torch.Tensor, metres: float) -> Cameras:
    """Move each camera ``metres`` along its ego frame's +y axis (left in the x-forward, y-left,
    z-up ego convention of clips; negative = right). ``ego_to_world [C, 4, 4]`` per camera."""
    c2w = cameras.cam_to_world.clone()
    offset = ego_to_world[..., :3, 1].to(c2w) * float(metres)
    c2w[..., :3, 3] += offset
    return Cameras(cameras.K, c2w, cameras.width, cameras.height, cameras.timestamps, cameras.names,
                   check=False)


def render_clip_trajectory(
    gaussians: Gaussians,
    clip,
    *,
    frames: Sequence[int] | None = None,
    cameras: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
    shift_lateral: float = 0.0,
    background: Sequence[float] = (0.0, 0.0, 0.0),
    backend: str = "auto",
    device: str | torch.device = "cpu",
) -> Iterator[PreviewFrame]:
    """Render ``gaussians`` from every selected (frame, camera) pose of ``clip``, frame-major.

    Cameras come from the clip's calibration; only poses are used (no images are decoded).
    ``size`` ``(H, W)`` is bounded by ``splatnet._limits`` (a ``ValidationError`` before rendering).
    """
    from splatnet._limits import check_image_size
    from splatnet.rendering import render

    if size is not None:
        size = check_image_size(*size, what="size")

    frame_ids = list(range(clip.num_frames)) if frames is None else [int(f) for f in frames]
    names = list(clip.rig_camera_names) if cameras is None else list(cameras)
    ego = clip.ego_to_world
    g = gaussians.to(device)
    bg = torch.tensor(background, dtype=g.dtype, device=g.device)
    for f in frame_ids:
        ks, poses, ts = [], [], []
        for name in names:
            cam = clip.camera(name)
            h, w = size if size is not None else (cam.height, cam.width)
            k = np.diag([w / cam.width, h / cam.height, 1.0]) @ cam.K
            ks.append(k)
            poses.append(clip.cam_to_world(f, name))
            ts.append(clip.image_timestamp(f, name))
        cams = Cameras(torch.tensor(np.stack(ks), dtype=torch.float32),
                       torch.tensor(np.stack(poses), dtype=torch.float32), int(w), int(h),
                       timestamps=torch.tensor(ts, dtype=torch.float64), names=names)
        if shift_lateral:
            cams = shift_cameras_lateral(cams, ego[f].expand(len(names), 4, 4), shift_lateral)
        with torch.no_grad():
            out = render(g, cams.to(g.device), background=bg, backend=backend)
        for i, name in enumerate(names):
            alpha = out.alpha[i, ..., 0].cpu().numpy()
            depth = out.depth[i, ..., 0].cpu().numpy()
            yield PreviewFrame(f, name, to_uint8(out.rgb[i]), colorize_depth(depth, alpha))


def mosaic(frames: Sequence[PreviewFrame]) -> np.ndarray:
    """Stack one time step's cameras vertically, each as [RGB | depth]."""
    return np.concatenate([p.side_by_side() for p in frames], axis=0)

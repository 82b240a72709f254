"""``Cameras``: pinhole cameras in the OpenCV frame, the one camera type every module shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from splatnet._validate import as_tensor, check_finite, check_float, check_same_batch, check_trailing
from splatnet.errors import ValidationError

# OpenCV (+x right, +y down, +z forward) ↔ OpenGL (+x right, +y up, −z forward): flip y and z.
_CV_GL_FLIP = (1.0, -1.0, -1.0)


class Cameras:
    """C pinhole cameras of one image size, with optional leading batch dimensions.

    Args:
        K: ``[..., C, 3, 3]`` intrinsics in pixels ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
        cam_to_world: ``[..., C, 4, 4]`` rigid camera-to-world transforms, OpenCV camera frame.
        width, height: image size in pixels (pixel centres at ``x + 0.5``).
        timestamps: optional ``[..., C]`` capture times in seconds (dynamic scenes).
        names: optional list of C camera names.
        check: also check values (finite, pinhole K, rigid pose). Shapes are always checked.
    """

    __slots__ = ("K", "cam_to_world", "width", "height", "timestamps", "names")

    def __init__(
        self,
        K: Tensor,
        cam_to_world: Tensor,
        width: int,
        height: int,
        timestamps: Tensor | None = None,
        names: Sequence[str] | None = None,
        *,
        check: bool = True,
    ) -> None:
        K = as_tensor("K", K, torch.float32)
        cam_to_world = as_tensor("cam_to_world", cam_to_world, torch.float32)
        check_float("K", K)
        check_float("cam_to_world", cam_to_world)
        batch_k = check_trailing("K", K, (3, 3), "[..., C, 3, 3]")
        batch_c = check_trailing("cam_to_world", cam_to_world, (4, 4), "[..., C, 4, 4]")
        if not batch_k or not batch_c:
            raise ValidationError("K and cam_to_world need a camera dimension: [..., C, 3, 3] and "
                                  "[..., C, 4, 4] (use x[None] for a single camera)")
        check_same_batch("K, cam_to_world", batch_k, batch_c)
        for name, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValidationError(f"{name}: expected a positive int, got {v!r}")
        if K.device != cam_to_world.device:
            raise ValidationError(f"K is on {K.device}, cam_to_world on {cam_to_world.device}")
        if timestamps is not None:
            timestamps = as_tensor("timestamps", timestamps, torch.float64)
            check_float("timestamps", timestamps)
            batch_t = check_trailing("timestamps", timestamps, (batch_k[-1],),
                                     f"[..., {batch_k[-1]}]")
            check_same_batch("K, timestamps", batch_k[:-1], batch_t)
            timestamps = timestamps.to(K.device)
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != batch_k[-1]:
                raise ValidationError(f"names: expected {batch_k[-1]} names, got {len(names)}")
        self.K = K  # [..., C, 3, 3]
        self.cam_to_world = cam_to_world  # [..., C, 4, 4]
        self.width = width
        self.height = height
        self.timestamps = timestamps  # [..., C] | None
        self.names = names  # list[str] | None
        if check:
            self.validate()

    def validate(self) -> Cameras:
        """Check values: finite, K a pinhole matrix, cam_to_world rigid."""
        with torch.no_grad():
            check_finite("K", self.K)
            check_finite("cam_to_world", self.cam_to_world)
            if self.timestamps is not None:
                check_finite("timestamps", self.timestamps)
            k = self.K.to(torch.float64)
            zero = torch.stack([k[..., 0, 1], k[..., 1, 0], k[..., 2, 0], k[..., 2, 1]], -1)
            if bool((zero.abs() > 1e-6 * k[..., 0, 0].abs().unsqueeze(-1).clamp_min(1)).any()) or \
                    bool(((k[..., 2, 2] - 1).abs() > 1e-6).any()):
                raise ValidationError("K: not a pinhole matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] "
                                      "(skew and the last row must be exact)")
            if bool(((k[..., 0, 0] <= 0) | (k[..., 1, 1] <= 0)).any()):
                raise ValidationError("K: focal lengths fx, fy must be positive (pixels)")
            m = self.cam_to_world.to(torch.float64)
            r = m[..., :3, :3]
            eye = torch.eye(3, dtype=torch.float64, device=m.device)
            ortho_err = (r @ r.transpose(-1, -2) - eye).abs().amax(dim=(-1, -2))
            det = torch.linalg.det(r)
            last = m[..., 3, :] - torch.tensor([0, 0, 0, 1.0], dtype=torch.float64, device=m.device)
            if bool((ortho_err > 1e-4).any()) or bool(((det - 1).abs() > 1e-4).any()) \
                    or bool((last.abs() > 1e-6).any()):
                raise ValidationError(
                    "cam_to_world: not rigid (rotation must be orthonormal with determinant +1 and "
                    f"the last row [0, 0, 0, 1]; worst orthonormality error {float(ortho_err.max()):.2e})"
                )
        return self

    # ------------------------------------------------------------------ properties
    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.K.shape[:-3])

    @property
    def num_cameras(self) -> int:
        return self.K.shape[-3]

    def __len__(self) -> int:
        return self.num_cameras

    @property
    def device(self) -> torch.device:
        return self.K.device

    @property
    def world_to_cam(self) -> Tensor:
        """``[..., C, 4, 4]`` inverse of ``cam_to_world`` (exact for rigid transforms)."""
        r = self.cam_to_world[..., :3, :3]
        t = self.cam_to_world[..., :3, 3:]
        rt = r.transpose(-1, -2)
        top = torch.cat([rt, -rt @ t], dim=-1)
        bottom = torch.zeros_like(self.cam_to_world[..., 3:, :])
        bottom[..., 3] = 1
        return torch.cat([top, bottom], dim=-2)

    @property
    def centers(self) -> Tensor:
        """``[..., C, 3]`` camera centres in world coordinates."""
        return self.cam_to_world[..., :3, 3]

    def __repr__(self) -> str:
        return (f"Cameras(c={self.num_cameras}, batch={self.batch_shape}, "
                f"size={self.width}x{self.height}, names={self.names})")

    # ------------------------------------------------------------------ plumbing
    def _replace(self, **kw: Any) -> Cameras:
        args = dict(K=self.K, cam_to_world=self.cam_to_world, width=self.width, height=self.height,
                    timestamps=self.timestamps, names=self.names)
        args.update(kw)
        return Cameras(**args, check=False)

    def to(self, *args: Any, **kwargs: Any) -> Cameras:
        ts = None
        if self.timestamps is not None:
            # Timestamps stay float64 (seconds since an epoch need the precision); only move them.
            device = next((a for a in args if isinstance(a, (str, torch.device))), kwargs.get("device"))
            ts = self.timestamps.to(device) if device is not None else self.timestamps
        return self._replace(K=self.K.to(*args, **kwargs),
                             cam_to_world=self.cam_to_world.to(*args, **kwargs), timestamps=ts)

    def __getitem__(self, index: Any) -> Cameras:
        """Select cameras along C (index tensor, list, slice, int or boolean mask)."""
        if isinstance(index, int):
            index = [index]
        if isinstance(index, list):
            index = torch.tensor(index, dtype=torch.long)
        if isinstance(index, Tensor):
            index = index.to(self.device)
        nb = len(self.batch_shape)
        sel = (slice(None),) * nb + (index,)
        names = None
        if self.names is not None:
            ids = torch.arange(self.num_cameras)[index.cpu() if isinstance(index, Tensor) else index]
            names = [self.names[i] for i in ids.reshape(-1).tolist()]
        return self._replace(K=self.K[sel], cam_to_world=self.cam_to_world[sel],
                             timestamps=None if self.timestamps is None else self.timestamps[sel],
                             names=names)

    @staticmethod
    def cat(items: Sequence[Cameras]) -> Cameras:
        """Concatenate along C; all must share image size and optional fields."""
        items = list(items)
        if not items:
            raise ValidationError("Cameras.cat: nothing to concatenate")
        w, h = items[0].width, items[0].height
        if any((c.width, c.height) != (w, h) for c in items):
            raise ValidationError("Cameras.cat: image sizes differ: "
                                  f"{sorted({(c.width, c.height) for c in items})}")
        nb = len(items[0].batch_shape)
        has_t = {c.timestamps is not None for c in items}
        has_n = {c.names is not None for c in items}
        if len(has_t) != 1 or len(has_n) != 1:
            raise ValidationError("Cameras.cat: cannot mix cameras with and without timestamps/names")
        return Cameras(
            torch.cat([c.K for c in items], dim=nb),
            torch.cat([c.cam_to_world for c in items], dim=nb),
            w, h,
            timestamps=torch.cat([c.timestamps for c in items], dim=nb) if has_t == {True} else None,
            names=sum((c.names for c in items), []) if has_n == {True} else None,
            check=False,
        )

    def resized(self, width: int, height: int) -> Cameras:
        """Cameras for the same views at another image size (intrinsics scaled, pixel-centre exact)."""
        sx, sy = width / self.width, height / self.height
        k = self.K.clone()
        k[..., 0, :] *= sx
        k[..., 1, :] *= sy
        return self._replace(K=k, width=width, height=height)

    # ------------------------------------------------------------------ conventions
    @staticmethod
    def from_opengl(K: Tensor, cam_to_world_gl: Tensor, width: int, height: int,
                    **kwargs: Any) -> Cameras:
        """Build from OpenGL/Blender/nerfstudio camera-to-world (+y up, −z forward)."""
        return Cameras(K, opengl_to_opencv(as_tensor("cam_to_world", cam_to_world_gl)), width, height,
                       **kwargs)

    @classmethod
    def look_at(cls, eye, target, K, width: int, height: int, *, up=(0.0, 0.0, 1.0),
                timestamps: Tensor | None = None, names: Sequence[str] | None = None) -> Cameras:
        """Cameras at ``eye [..., C, 3]`` looking at ``target`` (``[..., C, 3]`` or one ``[3]``),
        with intrinsics ``K`` (``[..., C, 3, 3]`` or one ``[3, 3]``); see :func:`look_at_pose`.

        Example:
            >>> K = torch.tensor([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]])
            >>> cams = Cameras.look_at([[4.0, 0, 1], [0, 4.0, 1]], [0.0, 0, 0], K, 64, 48)
            >>> cams.num_cameras
            2
        """
        pose = look_at_pose(eye, target, up)
        K = torch.as_tensor(K, dtype=torch.float32)
        K = K.expand(*pose.shape[:-2], 3, 3).clone()
        return cls(K, pose.to(torch.float32), width, height, timestamps, names)

    def to_opengl(self) -> Tensor:
        """``[..., C, 4, 4]`` camera-to-world in the OpenGL convention."""
        return opencv_to_opengl(self.cam_to_world)


def opengl_to_opencv(cam_to_world: Tensor) -> Tensor:
    """Convert camera-to-world ``[..., 4, 4]`` between OpenGL and OpenCV camera frames.

    The conversion flips the camera's y and z axes (columns 1 and 2 of the rotation); it is its
    own inverse.
    """
    flip = torch.tensor(_CV_GL_FLIP + (1.0,), dtype=cam_to_world.dtype, device=cam_to_world.device)
    return cam_to_world * flip


opencv_to_opengl = opengl_to_opencv


def project_points(points: Tensor, K: Tensor, world_to_cam: Tensor) -> tuple[Tensor, Tensor]:
    """World points seen by pinhole cameras (skew included), in float32 at least.

    Args:
        points: ``[M, 3]`` world points.
        K, world_to_cam: ``[C, 3, 3]`` / ``[C, 4, 4]`` cameras.
    Returns:
        ``uv [C, M, 2]`` pixel coordinates (pixel ``(x, y)`` covers ``[x, x + 1) × [y, y + 1)``;
        meaningless where ``z`` is not positive) and ``z [C, M]`` camera depth.
    """
    dtype = torch.promote_types(K.dtype, torch.float32)
    K, w2c, p = K.to(dtype), world_to_cam.to(dtype), points.to(dtype)
    cam = torch.einsum("cij,mj->cmi", w2c[:, :3, :3], p) + w2c[:, None, :3, 3]  # [C, M, 3]
    z = cam[..., 2]
    zs = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    xn, yn = cam[..., 0] / zs, cam[..., 1] / zs
    u = K[:, None, 0, 0] * xn + K[:, None, 0, 1] * yn + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * yn + K[:, None, 1, 2]
    return torch.stack([u, v], dim=-1), z


def sparse_depth(points: Tensor, K: Tensor, world_to_cam: Tensor, size: tuple[int, int], *,
                 cells: tuple[int, int] | None = None, near: float = 0.5) -> Tensor:
    """Sparse depth maps of world points: the camera z of the nearest point per cell, 0 = none.

    The one place LiDAR becomes depth maps (network input, training targets, losses).

    Args:
        points: ``[M, 3]`` world points.
        K, world_to_cam: ``[..., 3, 3]`` / ``[..., 4, 4]`` cameras of ``size = (H, W)`` images.
        cells: ``(h, w)`` of the output grid (cells of ``H / h × W / w`` pixels; default: pixels).
        near: points at camera depth ``<= near`` are ignored.
    Returns:
        ``[..., h, w]`` depth in float32 (float64 for float64 cameras).
    """
    height, width = size
    h, w = cells if cells is not None else size
    lead = K.shape[:-2]
    K = K.reshape(-1, 3, 3)
    uv, z = project_points(points.to(K.device), K, world_to_cam.reshape(-1, 4, 4))
    n = K.shape[0]
    u, v = uv[..., 0], uv[..., 1]
    ok = (z > near) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    col = (u * (w / width)).floor().long().clamp(0, w - 1)
    row = (v * (h / height)).floor().long().clamp(0, h - 1)
    cam = torch.arange(n, device=K.device)[:, None].expand_as(col)
    flat = ((cam * h + row) * w + col)[ok]
    depth = torch.full((n * h * w,), float("inf"), dtype=z.dtype, device=K.device)
    depth.scatter_reduce_(0, flat, z[ok], reduce="amin")
    depth = torch.where(torch.isinf(depth), torch.zeros_like(depth), depth)
    return depth.reshape(*lead, h, w)


def look_at_pose(eye, target, up=(0.0, 0.0, 1.0)) -> Tensor:
    """OpenCV camera-to-world ``[..., 4, 4]`` (float64) looking from ``eye`` at ``target``.

    +z points from the eye to the target, +x along ``z × up`` (to the right of the view) and +y
    down (``z × x``). When ``up`` is parallel to the viewing direction, (0, 1, 0) stands in for it.
    ``eye`` and ``target`` are ``[..., 3]`` and broadcast against each other.
    """
    f64 = torch.float64
    eye, target, up = (torch.as_tensor(v, dtype=f64) for v in (eye, target, up))
    eye, target = torch.broadcast_tensors(eye, target)
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(z, up.expand_as(z), dim=-1)
    alt = torch.linalg.cross(z, torch.tensor([0.0, 1.0, 0.0], dtype=f64).expand_as(z), dim=-1)
    x = torch.where(x.norm(dim=-1, keepdim=True) < 1e-9, alt, x)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x, dim=-1)
    pose = torch.zeros(*z.shape[:-1], 4, 4, dtype=f64)
    pose[..., :3, 0], pose[..., :3, 1], pose[..., :3, 2], pose[..., :3, 3] = x, y, z, eye
    pose[..., 3, 3] = 1.0
    return pose

"""``Gaussians``: the one type for a set of 3D Gaussians (static or moving), shared by every module."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from splatnet._validate import as_tensor, check_finite, check_float, check_same_batch, check_trailing
from splatnet.errors import FormatError, ValidationError
from splatnet.sh import sh_degree_from_bases, sh_rotation_matrices

_FIELDS = ("means", "quats", "scales", "opacities", "sh", "velocities", "times")


class Gaussians:
    """A set of 3D Gaussians with optional leading batch dimensions (see docs/conventions.md).

    Args:
        means: ``[..., N, 3]`` world positions.
        quats: ``[..., N, 4]`` rotations as w, x, y, z (need not be unit length; not zero).
        scales: ``[..., N, 3]`` activated standard deviations (> 0).
        opacities: ``[..., N]`` activated opacities in ``[0, 1]``.
        sh: ``[..., N, K, 3]`` SH coefficients, ``K = (degree + 1)²``, degree 0-3.
        velocities: optional ``[..., N, 3]`` world units per second.
        times: optional ``[..., N]`` timestamp (seconds) at which ``means`` holds; required with
            ``velocities``.
        check: also check values (finite, scale > 0, opacity in [0, 1]). Shapes and dtypes are
            always checked; pass ``check=False`` on hot paths (network output) to avoid a sync.

    Example:
        >>> g = Gaussians(torch.zeros(2, 3), torch.tensor([[1.0, 0, 0, 0]] * 2),
        ...               torch.full((2, 3), 0.1), torch.full((2,), 0.5), torch.zeros(2, 1, 3))
        >>> g.num_gaussians, g.sh_degree
        (2, 0)
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        means: Tensor,
        quats: Tensor,
        scales: Tensor,
        opacities: Tensor,
        sh: Tensor,
        velocities: Tensor | None = None,
        times: Tensor | None = None,
        *,
        check: bool = True,
    ) -> None:
        means = as_tensor("means", means, torch.float32)
        quats = as_tensor("quats", quats, torch.float32)
        scales = as_tensor("scales", scales, torch.float32)
        opacities = as_tensor("opacities", opacities, torch.float32)
        sh = as_tensor("sh", sh, torch.float32)
        for name, t in (("means", means), ("quats", quats), ("scales", scales),
                        ("opacities", opacities), ("sh", sh)):
            check_float(name, t)
        batch = check_trailing("means", means, (-1, 3), "[..., N, 3]")
        n = means.shape[-2]
        shapes = [
            check_trailing("quats", quats, (n, 4), f"[..., {n}, 4]"),
            check_trailing("scales", scales, (n, 3), f"[..., {n}, 3]"),
            check_trailing("opacities", opacities, (n,), f"[..., {n}]"),
            check_trailing("sh", sh, (n, -1, 3), f"[..., {n}, K, 3]"),
        ]
        try:
            sh_degree_from_bases(sh.shape[-2])
        except ValueError as exc:
            raise ValidationError(f"sh: {exc}") from None
        if (velocities is None) != (times is None):
            raise ValidationError("velocities and times must be given together (or neither)")
        if velocities is not None:
            velocities = as_tensor("velocities", velocities, torch.float32)
            times = as_tensor("times", times, torch.float32)
            check_float("velocities", velocities)
            check_float("times", times)
            shapes.append(check_trailing("velocities", velocities, (n, 3), f"[..., {n}, 3]"))
            shapes.append(check_trailing("times", times, (n,), f"[..., {n}]"))
        check_same_batch("Gaussians fields", batch, *shapes)
        tensors = [means, quats, scales, opacities, sh] + (
            [velocities, times] if velocities is not None else []
        )
        if any(t.device != means.device for t in tensors):
            raise ValidationError(
                f"Gaussians fields are on different devices: {sorted({str(t.device) for t in tensors})}"
            )
        if any(t.dtype != means.dtype for t in tensors):
            raise ValidationError(
                f"Gaussians fields have different dtypes: {sorted({str(t.dtype) for t in tensors})}"
            )
        self.means = means  # [..., N, 3]
        self.quats = quats  # [..., N, 4]
        self.scales = scales  # [..., N, 3]
        self.opacities = opacities  # [..., N]
        self.sh = sh  # [..., N, K, 3]
        self.velocities = velocities  # [..., N, 3] | None
        self.times = times  # [..., N] | None
        if check:
            self.validate()

    # ------------------------------------------------------------------ checks and properties
    def validate(self) -> Gaussians:
        """Check values: finite everywhere, scales > 0, opacities in [0, 1], quats non-zero."""
        with torch.no_grad():
            for name in _FIELDS:
                t = getattr(self, name)
                if t is not None:
                    check_finite(name, t)
            if self.scales.numel() and bool((self.scales <= 0).any()):
                bad = int((self.scales <= 0).any(-1).sum())
                raise ValidationError(f"scales: {bad} Gaussian(s) with a scale <= 0 (scales are "
                                      "activated standard deviations and must be positive)")
            o = self.opacities
            if o.numel() and bool(((o < 0) | (o > 1)).any()):
                bad = int(((o < 0) | (o > 1)).sum())
                raise ValidationError(f"opacities: {bad} value(s) outside [0, 1] (opacities are "
                                      "activated; apply a sigmoid to logits)")
            if self.quats.numel() and bool((self.quats.norm(dim=-1) == 0).any()):
                raise ValidationError("quats: zero-length quaternion")
        return self

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.means.shape[:-2])

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[-2]

    def __len__(self) -> int:
        return self.num_gaussians

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_bases(self.sh.shape[-2])

    @property
    def is_dynamic(self) -> bool:
        return self.velocities is not None

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    def fields(self) -> dict[str, Tensor]:
        """The tensors by name (optional fields only when present)."""
        return {k: getattr(self, k) for k in _FIELDS if getattr(self, k) is not None}

    def __repr__(self) -> str:
        dyn = ", dynamic" if self.is_dynamic else ""
        return (f"Gaussians(n={self.num_gaussians}, batch={self.batch_shape}, "
                f"sh_degree={self.sh_degree}{dyn}, dtype={self.dtype}, device={self.device})")

    # ------------------------------------------------------------------ tensor plumbing
    def _map(self, fn) -> Gaussians:
        return Gaussians(**{k: fn(v) for k, v in self.fields().items()}, check=False)

    def to(self, *args: Any, **kwargs: Any) -> Gaussians:
        """Like ``Tensor.to`` on every field (device and/or floating dtype)."""
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> Gaussians:
        return self._map(Tensor.detach)

    def clone(self) -> Gaussians:
        return self._map(Tensor.clone)

    def __getitem__(self, index: Any) -> Gaussians:
        """Select Gaussians along N with an index tensor, a slice or a boolean mask.

        With batch dimensions the index applies to every batch element alike (a boolean mask
        must then be ``[N]``).
        """
        if isinstance(index, Tensor) and index.dtype == torch.bool:
            if index.shape != (self.num_gaussians,):
                raise ValidationError(f"boolean mask: expected shape [{self.num_gaussians}], "
                                      f"got {tuple(index.shape)}")
            index = index.to(self.device)
        elif isinstance(index, Tensor):
            if index.dim() > 1:
                raise ValidationError(f"index: expected a 1-D index tensor, got {tuple(index.shape)}")
            index = index.to(self.device)
        elif isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        nb = len(self.batch_shape)

        def pick(t: Tensor) -> Tensor:
            # Gaussian axis is at position nb for every field.
            return t[(slice(None),) * nb + (index,)]

        return self._map(pick)

    @staticmethod
    def cat(items: Sequence[Gaussians]) -> Gaussians:
        """Concatenate along N; SH degrees are padded with zeros to the largest one."""
        items = list(items)
        if not items:
            raise ValidationError("Gaussians.cat: nothing to concatenate")
        dyn = {g.is_dynamic for g in items}
        if len(dyn) != 1:
            raise ValidationError("Gaussians.cat: cannot mix dynamic and static Gaussians")
        k = max(g.sh.shape[-2] for g in items)

        def pad_sh(sh: Tensor) -> Tensor:
            if sh.shape[-2] == k:
                return sh
            pad = sh.new_zeros(*sh.shape[:-2], k - sh.shape[-2], 3)
            return torch.cat([sh, pad], dim=-2)

        out = {}
        for name in items[0].fields():
            parts = [pad_sh(g.sh) if name == "sh" else getattr(g, name) for g in items]
            nb = len(items[0].batch_shape)
            out[name] = torch.cat(parts, dim=nb)
        return Gaussians(**out, check=False)

    # ------------------------------------------------------------------ geometry
    def transform(self, transform: Tensor) -> Gaussians:
        """Apply a rigid transform ``[4, 4]`` to the whole set: means, quats, velocities and SH.

        SH coefficients of degree ≥ 1 are rotated band by band so that every Gaussian keeps its
        view-dependent colour relative to the scene. Scales and opacities are unchanged.
        """
        t = as_tensor("transform", transform).to(self.device, torch.float64)
        check_trailing("transform", t, (4, 4), "[4, 4]")
        if t.dim() != 2:
            raise ValidationError(f"transform: expected one [4, 4] matrix, got {tuple(t.shape)}")
        check_finite("transform", t)
        r, trans = t[:3, :3], t[:3, 3]
        eye = torch.eye(3, dtype=t.dtype, device=t.device)
        if (not torch.allclose(r @ r.T, eye, atol=1e-5) or abs(float(torch.det(r)) - 1) > 1e-5
                or not torch.allclose(t[3], torch.tensor([0, 0, 0, 1.0], dtype=t.dtype,
                                                          device=t.device))):
            raise ValidationError("transform: not a rigid transform (rotation must be orthonormal "
                                  "with determinant +1, last row [0, 0, 0, 1])")
        dt = self.dtype
        means = (self.means.to(torch.float64) @ r.T + trans).to(dt)
        q_r = rotmat_to_quat(r).to(dt)
        quats = quat_multiply(q_r.expand_as(self.quats), self.quats)
        sh = self.sh
        if self.sh_degree > 0:
            parts = [sh[..., :1, :]]
            for band, d in enumerate(sh_rotation_matrices(r, self.sh_degree), start=1):
                coeffs = sh[..., band * band : (band + 1) ** 2, :]
                parts.append(d.to(dt) @ coeffs)  # D_l · c_l for every Gaussian
            sh = torch.cat(parts, dim=-2)
        velocities = None if self.velocities is None else (self.velocities @ r.T.to(dt))
        return Gaussians(means, quats, self.scales, self.opacities, sh, velocities, self.times,
                         check=False)

    # ------------------------------------------------------------------ files
    def save_ply(self, path: str | os.PathLike, *, clamp_colors: bool = True) -> int:
        """Write a 3DGS PLY atomically (see :mod:`splatnet.io.ply`); returns how many were dropped.

        DC colours are clamped into [0, 1] unless ``clamp_colors=False`` (exact SH round trip).
        """
        from splatnet.io.ply import save_ply

        return save_ply(self, path, clamp_colors=clamp_colors)

    @staticmethod
    def load_ply(path: str | os.PathLike) -> Gaussians:
        """Read a 3DGS PLY (with or without normals, SH degree 0-3)."""
        from splatnet.io.ply import read_ply

        fields = read_ply(path)
        try:
            return Gaussians(fields["means"], fields["quats"], fields["scales"],
                             fields["opacities"], fields["sh"])
        except ValidationError as exc:
            raise FormatError(f"{path}: {exc}") from None

    def save_splat(self, path: str | os.PathLike) -> int:
        """Write the 32-byte-per-Gaussian ``.splat`` web format atomically."""
        from splatnet.io.splat import save_splat

        return save_splat(self, path)

    def save(self, path: str | os.PathLike, *, format: str | None = None,
             clamp_colors: bool = True, spz_version: int | None = None) -> int:
        """Write any splat format (docs/formats.md): ``ply``, ``compressed-ply``, ``spz``,
        ``glb`` or ``splat``, by default the one the extension names (``.compressed.ply``
        before ``.ply``). Atomic; returns how many non-finite Gaussians were dropped.
        ``clamp_colors`` and ``spz_version`` as in :func:`splatnet.io.formats.write_splats`."""
        from splatnet.io.formats import write_splats

        return write_splats(self, path, format, clamp_colors=clamp_colors, spz_version=spz_version)

    @staticmethod
    def load(path: str | os.PathLike) -> Gaussians:
        """Read a splat file of any format splatnet reads (PLY, compressed PLY, SPZ, glb),
        recognised by its content; values in splatnet's PLY axes (docs/formats.md)."""
        from splatnet.io.formats import read_splats

        fields, _ = read_splats(path)
        try:
            return Gaussians(fields["means"], fields["quats"], fields["scales"],
                             fields["opacities"], fields["sh"])
        except ValidationError as exc:
            raise FormatError(f"{path}: {exc}") from None


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product of w, x, y, z quaternions ``[..., 4]``."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_to_rotmat(q: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` from w, x, y, z quaternions ``[..., 4]`` (normalised here)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat(r: Tensor) -> Tensor:
    """w, x, y, z unit quaternion (w ≥ 0) of a rotation matrix ``[3, 3]`` (Shepperd's method)."""
    m = r.tolist()
    tr = m[0][0] + m[1][1] + m[2][2]
    if tr > 0:
        s = (tr + 1.0) ** 0.5 * 2
        q = [0.25 * s, (m[2][1] - m[1][2]) / s, (m[0][2] - m[2][0]) / s, (m[1][0] - m[0][1]) / s]
    elif m[0][0] > m[1][1] and m[0][0] > m[2][2]:
        s = (1.0 + m[0][0] - m[1][1] - m[2][2]) ** 0.5 * 2
        q = [(m[2][1] - m[1][2]) / s, 0.25 * s, (m[0][1] + m[1][0]) / s, (m[0][2] + m[2][0]) / s]
    elif m[1][1] > m[2][2]:
        s = (1.0 + m[1][1] - m[0][0] - m[2][2]) ** 0.5 * 2
        q = [(m[0][2] - m[2][0]) / s, (m[0][1] + m[1][0]) / s, 0.25 * s, (m[1][2] + m[2][1]) / s]
    else:
        s = (1.0 + m[2][2] - m[0][0] - m[1][1]) ** 0.5 * 2
        q = [(m[1][0] - m[0][1]) / s, (m[0][2] + m[2][0]) / s, (m[1][2] + m[2][1]) / s, 0.25 * s]
    out = torch.tensor(q, dtype=r.dtype, device=r.device)
    out = out / out.norm()
    return -out if float(out[0]) < 0 else out

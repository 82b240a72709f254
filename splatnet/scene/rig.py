"""The rig a scene was seen from: its cameras' names, intrinsics and mounting, as the clip has them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from splatnet.clip import _checks as C
from splatnet.errors import ValidationError
from splatnet.scene.track import read_only


@dataclass(frozen=True, eq=False)
class RigCamera:
    """One camera of the rig the scene was reconstructed from (as the clip stores it).

    Attributes:
        name: the clip's camera name.
        width, height: native image size in pixels.
        K: ``[3, 3]`` float64 pinhole intrinsics in pixels at that size.
        cam_to_ego: ``[4, 4]`` float64 rigid camera-to-ego pose, OpenCV camera frame.
    """

    name: str
    width: int
    height: int
    K: np.ndarray
    cam_to_ego: np.ndarray

    def __post_init__(self) -> None:
        w = f"rig camera {self.name!r}"
        C.check_camera_name(self.name, "rig camera")
        width, height = C.check_size(self.width, self.height, w)
        C.check_image_size(width, height, w)
        K = C.check_intrinsics(self.K, width, height, f"{w}.K")
        T = C.check_rigid(self.cam_to_ego, f"{w}.cam_to_ego")
        C.check_translation(T, f"{w}.cam_to_ego")
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "height", height)
        object.__setattr__(self, "K", read_only(K))
        object.__setattr__(self, "cam_to_ego", read_only(T))


@dataclass(frozen=True, eq=False)
class Rig:
    """The cameras of the source clip, in its order (names unique)."""

    cameras: tuple[RigCamera, ...]

    def __post_init__(self) -> None:
        cams = tuple(self.cameras)
        if not cams or not all(isinstance(c, RigCamera) for c in cams):
            raise ValidationError("rig: expected one or more splatnet.scene.RigCamera")
        names = [c.name for c in cams]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValidationError(f"rig: camera name(s) {', '.join(twice)} used twice")
        object.__setattr__(self, "cameras", cams)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def camera(self, name: str) -> RigCamera:
        for c in self.cameras:
            if c.name == name:
                return c
        raise ValidationError(f"rig: unknown camera {name!r} (cameras: {', '.join(self.names)})")

    @staticmethod
    def from_clip(clip, cameras: Sequence[str] | None = None) -> Rig:
        """The rig of a :class:`splatnet.clip.Clip` (default: its rig cameras, not the targets)."""
        names = clip.rig_camera_names if cameras is None else list(cameras)
        return Rig(tuple(RigCamera(c.name, c.width, c.height, c.K, c.cam_to_ego)
                         for c in (clip.camera(n) for n in names)))



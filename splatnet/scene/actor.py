"""``SceneActor``: one tracked object of a scene, its Gaussians in its box frame and its track."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from splatnet.clip.actors import Actor, _as_size, check_actor_fields
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.scene.track import Track, _check_times


@dataclass(frozen=True, eq=False)
class SceneActor:
    """One tracked object of a scene: its Gaussians in its box frame, carried along its track.

    Attributes:
        id: unique within the scene (the rules of :class:`splatnet.clip.Actor`: printable, no
            ``,`` or ``:``, at most 128 characters).
        label: class name (``"car"``, ``"pedestrian"``, …).
        size: ``(length, width, height)`` of the box in metres.
        track: where the box is over time (:class:`Track`).
        gaussians: unbatched, static :class:`~splatnet.Gaussians` in the **box frame** (metres).
    """

    id: str
    label: str
    size: tuple[float, float, float]
    track: Track
    gaussians: Gaussians

    def __post_init__(self) -> None:
        where = f"actor {self.id!r}" if isinstance(self.id, str) else "actor"
        # A clip's rules for ids, labels and sizes (one place: splatnet.clip.actors); the pose
        # given here is a placeholder, the track's poses are checked by Track.
        check_actor_fields(self.id, self.label, self.size, np.zeros(1, np.int64), np.eye(4)[None],
                           None, where)
        object.__setattr__(self, "size", _as_size(self.size, f"{where}.size"))
        if not isinstance(self.track, Track):
            raise ValidationError(f"{where}.track: expected a splatnet.scene.Track, got "
                                  f"{type(self.track).__name__}")
        check_group(self.gaussians, f"{where}.gaussians", static=True)

    @property
    def span(self) -> tuple[float, float]:
        """``(first, last)`` time in seconds the actor is present."""
        return self.track.span

    def pose_at(self, t: float) -> np.ndarray | None:
        """``[4, 4]`` box-to-world at ``t`` (seconds), or None when absent."""
        return self.track.pose_at(t)

    def gaussians_at(self, t: float) -> Gaussians | None:
        """The actor's Gaussians in the world at ``t`` (box pose applied: means, rotations and SH
        bands rotated, scales and opacities kept), or None when it is absent."""
        pose = self.pose_at(t)
        return None if pose is None else self.gaussians.transform(_orthonormal(pose))

    def replace(self, **changes: Any) -> SceneActor:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def from_actor(actor: Actor, frame_times: Sequence[float] | np.ndarray,
                   gaussians: Gaussians) -> SceneActor:
        """A clip's actor with its Gaussians (box frame); ``frame_times`` are the clip's
        ``timestamps`` (the track's entries are at its frames' times)."""
        return SceneActor(actor.id, actor.label, actor.size, Track.from_actor(actor, frame_times),
                          gaussians)



def check_group(g: object, where: str, *, static: bool) -> None:
    """One unbatched group of Gaussians: values checked; ``static``: without velocities/times."""
    if not isinstance(g, Gaussians):
        raise ValidationError(f"{where}: expected splatnet.Gaussians, got {type(g).__name__}")
    if g.batch_shape:
        raise ValidationError(f"{where}: expected unbatched Gaussians [N, ...], got batch shape "
                              f"{g.batch_shape}")
    if static and g.is_dynamic:
        raise ValidationError(f"{where}: an actor's Gaussians are static in its box frame (no "
                              "velocities/times); its motion is its track")
    try:
        g.validate()
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None
    if g.is_dynamic:
        _check_times(g.times.detach().to("cpu", torch.float64).numpy(), f"{where}.times",
                     ordered=False)


def _orthonormal(pose: np.ndarray) -> np.ndarray:
    """``pose`` with its rotation projected onto the nearest rotation matrix (SVD): poses are
    accepted as rigid to 1e-4 (a clip's tolerance), ``Gaussians.transform`` wants 1e-5."""
    out = pose.copy()
    u, _, vt = np.linalg.svd(pose[:3, :3])
    out[:3, :3] = u @ vt
    return out

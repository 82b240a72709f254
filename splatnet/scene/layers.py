"""What a reconstruction keeps beside its Gaussians, for rendering them into cameras: what the rig
cameras saw of the ego itself (:class:`EgoLayer`) and how to widen the Gaussians for a camera that
samples the scene more finely than the network's input views (:class:`UpsampleFilter`). Made by
:mod:`splatnet.pipeline` (``Reconstruction.ego`` / ``.upsample_filter``) and kept by
:class:`~splatnet.scene.Scene` (``ego``, ``upsample``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from splatnet.gaussians import Gaussians


@dataclass
class EgoLayer:
    """What each rig camera saw of the ego itself, drawn over renders of that camera.

    Attributes:
        masks: camera name → ``[H, W]`` bool, True on the ego's body.
        images: camera name → ``[T, H, W, 3]`` that camera's context images.
        times: camera name → ``[T]`` their timestamps (seconds), or None when unknown.
        estimated: the masks were estimated (:func:`estimate_ego_masks`), not the clip's own.
    """

    masks: dict[str, Tensor]
    images: dict[str, Tensor]
    times: dict[str, Tensor | None]
    estimated: bool

    @classmethod
    def from_views(cls, views, masks: Mapping[str, Tensor], estimated: bool) -> EgoLayer | None:
        """The layer of ``masks`` (camera → ``[H, W]`` bool at the views' size) with the
        images of ``views``; None when no camera has a mask pixel."""
        masks = {n: m.bool() for n, m in masks.items() if bool(m.any())}
        if not masks:
            return None
        images, times = {}, {}
        stamps = views.cameras.timestamps
        for n in masks:
            idx = [i for i, c in enumerate(views.camera_names) if c == n]
            images[n] = views.images[idx].float()
            times[n] = None if stamps is None else stamps[idx].double()
        return cls(masks, images, times, estimated)

    def covers(self, name: str | None) -> bool:
        return name is not None and name in self.masks

    def mask(self, name: str, size: tuple[int, int]) -> Tensor:
        """``[H, W]`` bool mask of camera ``name`` at ``size``."""
        m = self.masks[name]
        if tuple(m.shape) != tuple(size):
            m = F.interpolate(m[None, None].float(), size=tuple(size), mode="nearest")[0, 0] > 0.5
        return m

    def composite(self, rgb: Tensor, name: str, time: float | None = None) -> Tensor:
        """``rgb [H, W, 3]`` of camera ``name`` with the ego's pixels of that camera's context
        image nearest in ``time`` (the first when unknown) drawn over it."""
        imgs, stamps = self.images[name], self.times[name]
        k = 0 if time is None or stamps is None else int((stamps - float(time)).abs().argmin())
        src = imgs[k]
        if tuple(src.shape[:2]) != tuple(rgb.shape[:2]):
            src = F.interpolate(src.permute(2, 0, 1)[None], size=tuple(rgb.shape[:2]),
                                mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
        m = self.mask(name, tuple(rgb.shape[:2]))[..., None].to(rgb.device)
        return torch.where(m, src.to(rgb), rgb)

    def validity(self, camera_names: Sequence[str], size: tuple[int, int]) -> Tensor:
        """``[V, H, W, 1]`` bool validity (False on the ego's body) of views of
        ``camera_names`` at ``size``, as :attr:`splatnet.clip.Views.masks`."""
        return masks_for_views({n: self.mask(n, size) for n in self.masks}, camera_names,
                               size)

    def mask_views(self, views):
        """``views`` (a :class:`~splatnet.clip.Views` without masks) with these masks as its
        validity, so that fitting them (refinement) leaves the ego's pixels out; views that
        have masks of their own are returned as they are."""
        if views.masks is None:
            views.masks = self.validity(views.camera_names, tuple(views.images.shape[1:3]))
        return views

    def fractions(self) -> dict[str, float]:
        """Camera name → fraction of its pixels that are the ego's body."""
        return {n: float(m.float().mean()) for n, m in self.masks.items()}

    def summary(self) -> dict:
        """What reports say of it: ``{"masks": "estimated" | "clip", "cameras": {name:
        fraction}}``."""
        return {"masks": "estimated" if self.estimated else "clip",
                "cameras": {k: round(f, 4) for k, f in self.fractions().items()}}


def masks_for_views(masks: Mapping[str, Tensor], camera_names: Sequence[str],
                    size: tuple[int, int]) -> Tensor:
    """``[V, H, W, 1]`` bool validity (False on the ego's body) for views of ``camera_names``
    from per-camera ego ``masks`` (each ``[H, W]``; cameras without one: all valid)."""
    rows = [~masks[n] if n in masks else torch.ones(tuple(size), dtype=torch.bool)
            for n in camera_names]
    return torch.stack(rows)[..., None]


@dataclass(frozen=True)
class UpsampleFilter:
    """``model.upsample_filter`` for one reconstruction: each context camera's vertical focal
    length at the network's size (pixels) by name, the network's input ``height`` (pixels) and
    the blur's ``sigma`` (network pixels)."""

    focals: dict[str, float]
    sigma: float
    height: int

    def widen(self, gaussians: Gaussians, camera, name: str | None) -> Gaussians:
        """``gaussians`` for rendering with ``camera`` (one camera), see
        :func:`splatnet.models.postprocessing.widen_for_camera`. ``name`` says which context
        camera it is, whose focal length at the network's size is the reference; for a camera
        that is none of them the ratio ``r`` is that of the image heights (its own lens taken
        as the network saw it)."""
        from splatnet.models.postprocessing import widen_for_camera

        focal = self.focals.get(name) if name is not None else None
        if focal is None:
            focal = float(camera.K.reshape(-1, 3, 3)[0, 1, 1]) * self.height / camera.height
        return widen_for_camera(gaussians, camera, focal, self.sigma)

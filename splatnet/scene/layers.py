"""What a reconstruction keeps beside its Gaussians, for rendering them into cameras: what the rig
cameras saw of the ego itself (:class:`EgoLayer`), how to widen the Gaussians for a camera that
samples the scene more finely than the network's input views (:class:`UpsampleFilter`), and the
detail of the context images that the Gaussians miss (:class:`DetailLayer`). Made by
:mod:`splatnet.pipeline` (``Reconstruction.ego`` / ``.upsample_filter``, the evaluation's and
the scene's detail layer) and kept by :class:`~splatnet.scene.Scene` (``ego``, ``upsample``,
``detail``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from splatnet.errors import ValidationError
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


#: Metres an actor's box is grown by, by default: when :func:`splatnet.reconstruct_scene`
#: collects the actor's Gaussians (its ``box_margin``), and so when the detail layer finds the
#: pixels on it (:attr:`DetailLayer.box_margin`, the margin the scene was made with).
DETAIL_BOX_MARGIN = 0.25
#: Largest box margin (metres) a scene, its detail layer or reconstruct_scene takes.
MAX_BOX_MARGIN = 10.0


def check_box_margin(where: str, margin: object) -> None:
    """A box margin (metres, ``where`` names it in the error): a number in ``[0, MAX_BOX_MARGIN]``."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) \
            or not math.isfinite(margin) or not 0 <= margin <= MAX_BOX_MARGIN:
        raise ValidationError(f"{where}: expected metres in [0, {MAX_BOX_MARGIN:g}], got {margin!r}")
#: A source view's weight is ``1 / (|t − t_view| + DETAIL_TIME_EPS)`` (seconds): the context views
#: nearest in time count most, and a view at the very time rendered all but alone.
DETAIL_TIME_EPS = 1e-3


def as_half_depth(depths: Tensor) -> Tensor:
    """Depths as a :class:`DetailLayer` keeps them: float16 on the CPU, those past float16's
    largest value (65504) kept as that."""
    return depths.detach().float().cpu().clamp(max=torch.finfo(torch.float16).max).half()


@dataclass(frozen=True, eq=False)
class DetailLayer:
    """What the Gaussians miss in each context view, carried over to other views of the scene.

    For each context view ``i`` it keeps ``D_i = I_i − R_i`` (the recorded image minus the
    reconstruction's render of it, zero on the ego's own body), the render's depth and the
    view's camera. A render ``R`` of a camera (with its depth and alpha) is given that detail by
    :meth:`apply`: each pixel is lifted to 3D at its rendered depth and projected into the
    source views; a source view gives its ``D`` there (bilinear) when the point is that view's
    own rendered surface (depth within ``tolerance`` of the view's depth there: it is not
    hidden there, nor something the view never saw) and the pixel is covered (alpha above
    ``min_alpha``: the sky takes none). The source views are those of the same rig camera (for
    a camera of another name: of the rig camera whose context view looks most its way), each
    weighted by ``1 / (|Δt| + DETAIL_TIME_EPS)``; ``R + Σ w_i D_i / Σ w_i`` over the views that
    give detail at a pixel, clamped into ``[0, 1]``. A context view rendered at its own time gets
    about its recorded image back where the Gaussians cover it (its own residual weighs
    ``1 / DETAIL_TIME_EPS``, another view's ``1 / |Δt|``). A pixel on a tracked actor (its point
    inside the actor's box, grown by :attr:`box_margin`) is carried with the actor: from its
    box at the render's time to its box at each source view's time (:attr:`actors`, the poses
    when the layer was made), so a moving car, a jittering box and an actor moved by an edit
    keep their detail; a view where the actor was absent gives none there. Nothing is carried
    where an edit changed the surface (a removed actor: the depths disagree).

    Attributes:
        names: the rig camera of each view (``V``).
        residuals: ``[V, H, W, 3]`` float16 ``D_i`` (half the memory and file of float32; its
            rounding, under 2.5e-4, is a sixteenth of an 8-bit image's step).
        depths: ``[V, H, W]`` float16 the renders' depth (0 where nothing was drawn; relative
            rounding under 5e-4, a hundredth of the depth tolerance; depths past float16's
            largest, 65504, are kept as 65504).
        K, cam_to_world: ``[V, 3, 3]`` / ``[V, 4, 4]`` float64 the views' cameras at ``H × W``.
        times: ``[V]`` float64 the views' timestamps (seconds).
        tolerance: relative depth agreement a source view needs at a pixel.
        min_alpha: rendered alpha a pixel needs to take detail.
        actors: actor id → ``[V, 4, 4]`` float64 its box-to-world at each view's time when the
            layer was made (a zero matrix where it was absent then); empty for a scene without
            tracked actors (both levels use the coarse level's).
        box_margin: metres an actor's box is grown by when the layer finds the pixels on it:
            the margin with which the scene collected the actor's Gaussians
            (:func:`splatnet.reconstruct_scene`'s ``box_margin``; both levels use the coarse
            level's).
        finer: the same views at a larger size (their residuals, depths and ``K``; the same
            names, poses, times and settings), or None. A render takes the level whose focal
            length is nearest its own (in ratio): a render at the network's size the residuals
            of renders at that size, a render at the clip's size the finer ones.
    """

    names: tuple[str, ...]
    residuals: Tensor
    depths: Tensor
    K: Tensor
    cam_to_world: Tensor
    times: Tensor
    tolerance: float = 0.05
    min_alpha: float = 0.5
    finer: DetailLayer | None = None
    actors: Mapping[str, Tensor] = field(default_factory=dict)
    box_margin: float = DETAIL_BOX_MARGIN

    @classmethod
    def from_renders(cls, images: Tensor, renders: Tensor, depths: Tensor, cameras,
                     names: Sequence[str], *, ego: EgoLayer | None = None,
                     tolerance: float = 0.05, min_alpha: float = 0.5) -> DetailLayer:
        """The layer of context views: ``images``, ``renders`` ``[V, H, W, 3]`` (the recorded
        images and the reconstruction's renders of them, as shown: sky, colour, clamped),
        ``depths`` ``[V, H, W]`` or ``[V, H, W, 1]`` the renders' depth, ``cameras`` their
        unbatched :class:`~splatnet.Cameras` ``[V]`` with timestamps, ``names`` their rig
        cameras, ``ego`` the reconstruction's :class:`EgoLayer` (no detail on the ego's own
        body in the cameras it covers)."""
        if cameras.timestamps is None:
            raise ValidationError("cameras.timestamps: required; the detail layer weighs its views "
                                  "by their time")
        residuals = (images.float() - renders.float().clamp(0, 1)).detach().cpu()
        if ego is not None:
            valid = ego.validity(list(names), tuple(residuals.shape[1:3]))
            residuals = residuals * valid.float()
        return cls(tuple(names), residuals.half(), as_half_depth(depths.reshape(residuals.shape[:3])),
                   cameras.K.detach().to("cpu", torch.float64),
                   cameras.cam_to_world.detach().to("cpu", torch.float64),
                   cameras.timestamps.detach().to("cpu", torch.float64).reshape(-1),
                   float(tolerance), float(min_alpha))

    @property
    def size(self) -> tuple[int, int]:
        return int(self.residuals.shape[1]), int(self.residuals.shape[2])

    def sources(self, camera, name: str | None) -> list[int]:
        """The views that give detail to ``camera`` (one camera): those of rig camera ``name``,
        or for a camera of no name in the layer, of the rig camera whose view looks most its way
        (largest cosine between the optical axes; the first such view's camera)."""
        if name is not None and name in self.names:
            return [i for i, n in enumerate(self.names) if n == name]
        fwd = camera.cam_to_world.reshape(4, 4)[:3, 2].detach().to("cpu", torch.float64)
        best = self.names[int((self.cam_to_world[:, :3, 2] @ fwd).argmax())]
        return [i for i, n in enumerate(self.names) if n == best]

    def apply(self, rgb: Tensor, alpha: Tensor, depth: Tensor, camera, name: str | None,
              time: float | None, actors: Mapping[str, tuple] | None = None) -> Tensor:
        """``rgb [H, W, 3]`` (a render of ``camera``, one camera) clamped into ``[0, 1]``, with
        this layer's detail added and clamped again; ``alpha``, ``depth`` ``[H, W(, 1)]`` the
        render's; ``name`` its rig camera (None: another camera); ``time`` its time in seconds
        (None: every source view weighs the same); ``actors`` the scene's actors present in the
        render, id → ``(size, box_to_world)`` (``(length, width, height)`` metres, ``[4, 4]``
        at the render's time): those the layer has poses for carry their own pixels."""
        src = self.sources(camera, name)  # (the finer level's views are the same)
        level = self
        if self.finer is not None:
            fy = float(camera.K.reshape(3, 3)[1, 1])
            own, fine = (float(lv.K[src, 1, 1].mean()) for lv in (self, self.finer))
            if abs(math.log(fy / fine)) < abs(math.log(fy / own)):
                level = self.finer
        movers = [(torch.as_tensor(size, dtype=torch.float64),
                   torch.as_tensor(pose, dtype=torch.float64), self.actors[k][src])
                  for k, (size, pose) in (actors or {}).items() if k in self.actors]
        return level._carry(src, rgb, alpha, depth, camera, time, movers, self.box_margin)

    def _carry(self, src: list[int], rgb: Tensor, alpha: Tensor, depth: Tensor, camera,
               time: float | None, movers: list = (), margin: float = DETAIL_BOX_MARGIN) -> Tensor:
        """:meth:`apply` with this level's views ``src`` and ``movers``: per actor ``(size,
        box_to_world now, [S, 4, 4] its boxes at the source views' times)``, boxes grown by
        ``margin`` metres."""
        h, w = rgb.shape[:2]
        dev = rgb.device
        out = rgb.clamp(0, 1)  # (the residuals were taken against renders as shown: clamped)
        z = depth.reshape(-1).to(dev, torch.float32)
        keep = torch.nonzero((z > 0) & (alpha.reshape(-1).to(dev) > self.min_alpha)).flatten()
        if keep.numel() == 0:
            return out
        # Each covered pixel's point at its rendered depth in each source camera's frame: the
        # target's ray (K⁻¹ pixel, z = 1) times the depth, moved by the relative pose (composed
        # in float64, applied in float32: millimetres at 100 m).
        yx = torch.stack([keep // w, keep % w], -1).to(torch.float32) + 0.5
        K = camera.K.reshape(3, 3).to(dev, torch.float64)
        c2w = camera.cam_to_world.reshape(4, 4).to(dev, torch.float64)
        rel = torch.linalg.inv(self.cam_to_world[src].to(dev)) @ c2w  # target -> source camera
        Ki = torch.linalg.inv(K)
        M = (rel[:, :3, :3] @ Ki).float()  # pixel (u, v, 1) -> source camera frame, per metre
        t = rel[:, :3, 3].float()
        zk = z[keep]
        p = (yx[:, 1, None] * M[:, None, :, 0] + yx[:, 0, None] * M[:, None, :, 1]
             + M[:, None, :, 2]) * zk[:, None] + t[:, None]  # [S, P, 3]
        blocked = None
        if movers:
            p, blocked = self._move(p, src, yx, zk, K, Ki, c2w, movers, margin)
        zs = p[..., 2]
        zsafe = torch.where(zs.abs() > 1e-6, zs, torch.full_like(zs, 1e-6))
        Ks = self.K[src].to(dev, torch.float32)
        us = (Ks[:, None, 0, 0] * p[..., 0] + Ks[:, None, 0, 1] * p[..., 1]) / zsafe + Ks[:, None, 0, 2]
        vs = Ks[:, None, 1, 1] * p[..., 1] / zsafe + Ks[:, None, 1, 2]
        sh, sw = self.size
        grid = torch.stack([us * (2 / sw) - 1, vs * (2 / sh) - 1], -1)[:, None]  # [S, 1, P, 2]
        idx = torch.tensor(src, device=self.residuals.device)
        carried = F.grid_sample(self.residuals[idx].to(dev).float().permute(0, 3, 1, 2), grid,
                                align_corners=False)[:, :, 0]  # [S, 3, P]
        surface = F.grid_sample(self.depths[idx].to(dev).float()[:, None], grid, mode="nearest",
                                align_corners=False)[:, 0, 0]  # [S, P]
        take = (grid[:, 0].abs() < 1).all(-1) & (zs > 0) & (surface > 0) \
            & ((zs - surface).abs() < self.tolerance * surface)
        if blocked is not None:
            take &= ~blocked
        if time is None:
            wt = torch.ones(len(src), dtype=torch.float32, device=dev)
        else:
            wt = (1.0 / ((self.times[src].to(dev) - float(time)).abs() + DETAIL_TIME_EPS)).float()
        take = take.float() * wt[:, None]
        den = take.sum(0)  # [P]
        add = (carried * take[:, None]).sum(0) / den.clamp(min=1e-12)  # [3, P]; 0 where den = 0
        flat = out.reshape(-1, 3).clone()
        flat[keep] = flat[keep] + add.T.to(out)
        return flat.reshape(h, w, 3).clamp(0, 1)

    def _move(self, p: Tensor, src: list[int], yx: Tensor, z: Tensor, K: Tensor, Ki: Tensor,
              c2w: Tensor, movers: list, margin: float) -> tuple[Tensor, Tensor]:
        """``p [S, P, 3]`` (the pixels' points in the source cameras, static) with the points
        on an actor moved with it, and ``[S, P]`` True where the actor was absent from a source
        view. A point belongs to the actor whose grown box holds it (the nearest centre when
        several do). Only the pixels inside a box's image (the bounding rectangle of its
        projected corners; all pixels when a corner is behind the camera) are tested."""
        dev = p.device
        ray = torch.stack([yx[:, 1], yx[:, 0], torch.ones_like(z)], -1)  # [P, 3] pixel, z = 1
        now = torch.stack([m[1] for m in movers]).to(dev)  # [A, 4, 4] box -> world
        half = torch.stack([m[0] for m in movers]).to(dev) / 2 + margin  # [A, 3]
        to_box = torch.linalg.inv(now) @ c2w  # [A, 4, 4] target camera -> box frame, float64
        signs = torch.tensor([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)],
                             dtype=torch.float64, device=dev)
        from_box = torch.linalg.inv(to_box)
        corners = (from_box[:, None, :3, :3] @ (signs * half[:, None])[..., None])[..., 0] \
            + from_box[:, None, :3, 3]  # [A, 8, 3] the grown boxes' corners, target camera
        front = corners[..., 2] > 1e-3
        uv = (corners @ K.T)[..., :2] / corners[..., 2:].clamp(min=1e-3)
        lo = torch.where(front.all(1)[:, None], uv.amin(1), torch.full_like(uv[:, 0], -math.inf))
        hi = torch.where(front.all(1)[:, None], uv.amax(1), torch.full_like(uv[:, 0], math.inf))
        seen = torch.nonzero(front.any(1) & (hi[:, 0] >= 0) & (hi[:, 1] >= 0)).flatten()
        lo, hi = lo[seen].float(), hi[seen].float()
        u, v = yx[:, 1], yx[:, 0]
        cand = (u >= lo[:, :1]) & (u <= hi[:, :1]) & (v >= lo[:, 1:]) & (v <= hi[:, 1:])
        ka, pi = torch.nonzero(cand, as_tuple=True)  # [A', P]: pixels in the boxes' images
        ka = seen[ka]
        A = (to_box[:, :3, :3] @ Ki).float()  # pixel ray -> box frame, per metre of depth
        q = torch.einsum("nij,nj->ni", A[ka], ray[pi]) * z[pi, None] + to_box[ka, :3, 3].float()
        inside = (q.abs() <= half[ka].float()).all(-1)
        ka, pi, dist = ka[inside], pi[inside], q[inside].norm(dim=-1)
        best = torch.full((len(z),), math.inf, device=dev).scatter_reduce(0, pi, dist, "amin")
        win = dist == best[pi]
        owner = torch.full((len(z),), -1, dtype=torch.long, device=dev)
        owner[pi[win]] = ka[win]
        blocked = torch.zeros(p.shape[:2], dtype=torch.bool, device=dev)
        own = torch.nonzero(owner >= 0).flatten()
        if own.numel() == 0:
            return p, blocked
        then = torch.stack([m[2] for m in movers]).to(dev)  # [A, S, 4, 4] boxes at the sources
        present = then[..., 3, 3] == 1  # (a zero matrix: absent at that view's time)
        eye = torch.eye(4, dtype=then.dtype, device=dev)
        w2s = torch.linalg.inv(self.cam_to_world[src].to(dev))  # [S, 4, 4] world -> sources
        T = w2s @ torch.where(present[..., None, None], then, eye) @ to_box[:, None]  # [A, S]
        k = owner[own]
        M = (T[..., :3, :3] @ Ki).float()[k]  # [n, S, 3, 3] pixel ray -> source, via the box
        p = p.clone()
        p[:, own] = torch.einsum("nj,nsij->sni", ray[own], M) * z[own, None] \
            + T[k][..., :3, 3].float().transpose(0, 1)
        blocked[:, own] = ~present[k].T
        return p, blocked

    def summary(self) -> dict:
        """What reports say of it: views, their rig cameras, size, settings, tracked actors."""
        out = {"views": len(self.names), "cameras": sorted(set(self.names)),
               "size": list(self.size), "tolerance": self.tolerance, "min_alpha": self.min_alpha}
        if self.actors:
            out["actors"] = len(self.actors)
        if self.finer is not None:
            out["finer_size"] = list(self.finer.size)
        return out

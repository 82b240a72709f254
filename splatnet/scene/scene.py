"""``Scene``: a reconstructed 4D scene: static or moving background Gaussians, one group of Gaussians
per tracked actor (in the actor's box frame, carried along its track), the network's sky, and the
rig and ego trajectory it was seen from (docs/scenes.md).

Frames and units: the **world frame** is the source clip's (metres); the **scene clock** is the
clip's (seconds since its first frame); an actor's Gaussians live in its **box frame** (origin at
the box centre, x forward, y left, z up; :mod:`splatnet.clip.actors`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from splatnet.cameras import Cameras
from splatnet.clip import _checks as C
from splatnet.errors import FormatError, ValidationError
from splatnet.gaussians import Gaussians
from splatnet.models.config import MAX_UPSAMPLE_SIGMA, check_detail_settings
from splatnet.models.sky import SkyBackground, SkyModel
from splatnet.rendering import render
from splatnet.scene.actor import SceneActor, check_group
from splatnet.scene.io import MAX_DETAIL_ACTORS, read_scene_file, sky_config, write_scene_file
from splatnet.scene.layers import (
    DETAIL_BOX_MARGIN,
    DetailLayer,
    EgoLayer,
    UpsampleFilter,
    as_half_depth,
    check_box_margin,
)
from splatnet.scene.rig import Rig, RigCamera
from splatnet.scene.track import Track, _frame_times, read_only

#: Deepest nesting and largest JSON size of a scene's free ``metadata``.
MAX_METADATA_DEPTH = 16
MAX_METADATA_BYTES = 1 << 20


# ---------------------------------------------------------------------------------------- scene
@dataclass
class SceneImages:
    """What :meth:`Scene.render` returns for C cameras of ``H × W`` pixels.

    Attributes:
        rgb: ``[C, H, W, 3]`` colour with the sky (or the given background) composited, through
            the camera's colour matrix when the scene has one for it (:attr:`Scene.colour`).
        alpha: ``[C, H, W, 1]`` accumulated opacity of the Gaussians.
        depth: ``[C, H, W, 1]`` expected camera depth (0 where nothing was drawn).
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor


@dataclass(frozen=True, eq=False, kw_only=True)
class Scene:
    """A 4D scene (see the module docstring and docs/scenes.md). Immutable: edits return a new
    scene sharing the unchanged tensors.

    Attributes:
        background: unbatched :class:`~splatnet.Gaussians` in the world frame; may be dynamic
            (``velocities`` m/s and ``times`` s, as the network predicts them without tracks).
        actors: read-only mapping id → :class:`SceneActor`, in order (a sequence of actors is
            accepted).
        rig: the source rig (:class:`Rig`).
        frame_times: ``[T]`` float64 frame timestamps (seconds on the scene clock), increasing.
        ego_to_world: ``[T, 4, 4]`` float64 rigid ego poses in the world frame, one per frame.
        sky: the network's sky (:class:`~splatnet.models.sky.SkyBackground`, latent ``[1, L]``),
            or None.
        colour: read-only mapping rig camera name → its colour matrix ``[M | b]`` (float64
            ``[3, 4]``: ``M · rgb + b``), the exposure and white balance that camera recorded
            the scene with (fitted to its images at reconstruction, ``model.colour_fit``). A
            render into a camera of that name goes through it (:meth:`render`); every other
            camera, and the Gaussians themselves, are rig-neutral. Empty: none.
        ego: what the rig cameras saw of the ego vehicle's own body
            (:class:`~splatnet.scene.layers.EgoLayer`: per camera a mask and its context images),
            drawn over renders of those cameras (:meth:`render`), or None. Those pixels are not
            in the Gaussians (the body moves with the cameras).
        upsample: the network's ``upsample_filter``
            (:class:`~splatnet.scene.layers.UpsampleFilter`: its context cameras' focal
            lengths at the network's size and the blur's sigma) or None: a camera that samples
            the scene more finely renders it with the Gaussians widened (:meth:`render`).
        detail: the detail of the context images that the Gaussians miss
            (:class:`~splatnet.scene.layers.DetailLayer`: each context view's image minus the
            scene's render of it, with its depth and camera, and each tracked actor's box at
            the views' times), added to renders through their depth, on an actor through its
            box (:meth:`render`), or None. Made by :meth:`with_detail`.
        metadata: free JSON data (source clip, model, …).
    """

    background: Gaussians
    actors: Mapping[str, SceneActor] = field(default_factory=dict)
    rig: Rig
    frame_times: np.ndarray
    ego_to_world: np.ndarray
    sky: SkyBackground | None = None
    colour: Mapping[str, np.ndarray] = field(default_factory=dict)
    ego: Any = None
    upsample: Any = None
    detail: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_group(self.background, "background", static=False)
        actors = self.actors
        items = list(actors.items()) if isinstance(actors, Mapping) else None
        if items is None:
            if isinstance(actors, (str, bytes)) or not isinstance(actors, Iterable):
                raise ValidationError(f"actors: expected SceneActors, got {type(actors).__name__}")
            items = [(getattr(a, "id", None), a) for a in actors]
        table: dict[str, SceneActor] = {}
        for key, a in items:
            if not isinstance(a, SceneActor):
                raise ValidationError(f"actors: expected splatnet.scene.SceneActor, got "
                                      f"{type(a).__name__}")
            if key != a.id:
                raise ValidationError(f"actors: key {key!r} holds actor {a.id!r}")
            if a.id in table:
                raise ValidationError(f"actors: id {a.id!r} is used twice; ids must be unique")
            table[a.id] = a
        object.__setattr__(self, "actors", MappingProxyType(table))
        if not isinstance(self.rig, Rig):
            raise ValidationError(f"rig: expected a splatnet.scene.Rig, got {type(self.rig).__name__}")
        times = _frame_times(self.frame_times, "frame_times")
        ego = np.asarray(self.ego_to_world.detach().cpu().numpy() if isinstance(self.ego_to_world, Tensor)
                         else self.ego_to_world)
        if ego.shape != (len(times), 4, 4) or ego.dtype.kind != "f":
            raise ValidationError(f"ego_to_world: expected float [{len(times)}, 4, 4] (one pose per "
                                  f"frame), got {ego.dtype} {list(ego.shape)}")
        ego = ego.astype(np.float64)  # a copy: the scene owns its arrays (read-only)
        for i in range(len(ego)):
            C.check_rigid(ego[i], f"ego_to_world[{i}]")
            C.check_translation(ego[i], f"ego_to_world[{i}]")
        object.__setattr__(self, "frame_times", read_only(times))
        object.__setattr__(self, "ego_to_world", read_only(ego))
        _check_sky(self.sky)
        object.__setattr__(self, "colour", MappingProxyType(_check_colour(self.colour, self.rig)))
        object.__setattr__(self, "ego", _check_ego(self.ego, self.rig))
        object.__setattr__(self, "upsample", _check_upsample(self.upsample, self.rig))
        object.__setattr__(self, "detail", _check_detail(self.detail, self.rig))
        object.__setattr__(self, "metadata", MappingProxyType(_check_metadata(self.metadata)))
        groups = [self.background] + [a.gaussians for a in table.values()]
        devices = {str(g.device) for g in groups}
        if self.sky is not None:
            devices.add(str(self.sky.latent.device))
        if len(devices) > 1:
            raise ValidationError(f"scene: Gaussians and sky are on different devices: {sorted(devices)}")
        dtypes = {str(g.dtype) for g in groups}
        if len(dtypes) > 1:
            raise ValidationError(f"scene: Gaussians of different dtypes: {sorted(dtypes)}")
        # Each actor's Gaussians carried to its last pose (see _actor_at): a parked actor is
        # transformed once, not once per frame a simulator asks for.
        object.__setattr__(self, "_placed", {})

    # ------------------------------------------------------------------ properties
    @property
    def time_span(self) -> tuple[float, float]:
        """``(first, last)`` frame time in seconds on the scene clock."""
        return float(self.frame_times[0]), float(self.frame_times[-1])

    @property
    def num_frames(self) -> int:
        return int(len(self.frame_times))

    @property
    def num_gaussians(self) -> int:
        """Background Gaussians plus every actor's."""
        return self.background.num_gaussians + sum(a.gaussians.num_gaussians
                                                    for a in self.actors.values())

    @property
    def device(self) -> torch.device:
        return self.background.device

    def __repr__(self) -> str:
        dyn = ", dynamic background" if self.background.is_dynamic else ""
        return (f"Scene(background={self.background.num_gaussians}, actors={len(self.actors)}, "
                f"frames={self.num_frames}, span={self.time_span[0]:.3f}..{self.time_span[1]:.3f} s, "
                f"sky={self.sky is not None}{dyn}, device={self.device})")

    def replace(self, **changes: Any) -> Scene:
        """A new scene with some fields replaced (all fields are checked again)."""
        return dataclasses.replace(self, **changes)

    def to(self, device: str | torch.device) -> Scene:
        """The scene with its Gaussians and sky on ``device`` (poses stay float64 NumPy)."""
        sky = None
        if self.sky is not None:  # a copy: the original scene's sky stays where it is
            sky = SkyBackground(copy.deepcopy(self.sky.model).to(device), self.sky.latent.to(device))
        return self.replace(background=self.background.to(device), sky=sky,
                            actors=[a.replace(gaussians=a.gaussians.to(device))
                                    for a in self.actors.values()])

    # ------------------------------------------------------------------ time
    def gaussians_at(self, t: float) -> Gaussians:
        """The world's static Gaussians at time ``t`` (seconds on the scene clock).

        The background (advanced to ``t`` when dynamic: ``means + velocities · (t − times)``, as
        :func:`splatnet.render` moves them for a camera at ``t``) followed by every actor present
        at ``t``, in the scene's order, each carried by its box pose at ``t`` (interpolated
        between track entries; absent outside its track).
        """
        t = _time(t)
        parts = [self._background_at(t)]
        for a in self.actors.values():
            g = self._actor_at(a, t)
            if g is not None:
                parts.append(g)
        return Gaussians.cat(parts)

    def _actor_at(self, actor: SceneActor, t: float) -> Gaussians | None:
        """``actor.gaussians_at(t)``, reused while the actor's pose and Gaussians are unchanged.

        The cached copy never leaves the scene (:meth:`gaussians_at` concatenates into new
        tensors). It is keyed by the pose's bytes and the Gaussians' tensors (identity and
        in-place version counters), and bypassed when autograd has to see the transform.
        """
        pose = actor.pose_at(t)
        if pose is None:
            return None
        fields = actor.gaussians.fields()
        if torch.is_grad_enabled() and any(v.requires_grad for v in fields.values()):
            return actor.gaussians_at(t)
        key = (pose.tobytes(), tuple((id(v), v._version) for v in fields.values()))
        hit = self._placed.get(actor.id)
        if hit is not None and hit[0] is actor and hit[1] == key:
            return hit[2]
        g = actor.gaussians_at(t)
        self._placed[actor.id] = (actor, key, g)
        return g

    def to_gaussians(self, t: float) -> Gaussians:
        """The snapshot at ``t`` for viewers and PLY files: :meth:`gaussians_at` detached, on
        the CPU."""
        return self.gaussians_at(t).detach().to("cpu")

    def _background_at(self, t: float) -> Gaussians:
        g = self.background
        if not g.is_dynamic:
            return g
        # The renderer's arithmetic exactly (splatnet.rendering.api): float64 time differences,
        # cast to the Gaussians' dtype, times velocity.
        dt = (torch.tensor(t, dtype=torch.float64, device=g.device) - g.times.to(torch.float64))
        means = g.means + g.velocities * dt.to(g.dtype)[:, None]
        return Gaussians(means, g.quats, g.scales, g.opacities, g.sh, check=False)

    # ------------------------------------------------------------------ cameras and images
    def frame_cameras(self, frame: int, cameras: Sequence[str] | None = None) -> Cameras:
        """The rig's cameras at frame ``frame`` (``ego_to_world[frame] · cam_to_ego``), stamped
        with that frame's time, at their native size (float32, on the scene's device).

        All chosen cameras must share one image size (pass ``cameras`` to pick them).
        """
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) \
                or not -self.num_frames <= frame < self.num_frames:
            raise ValidationError(f"frame: expected a frame index in 0..{self.num_frames - 1}, "
                                  f"got {frame!r}")
        frame = int(frame) % self.num_frames
        cams = [self.rig.camera(n) for n in (self.rig.names if cameras is None else cameras)]
        if not cams:
            raise ValidationError("cameras: expected one or more camera names")
        sizes = sorted({(c.width, c.height) for c in cams})
        if len(sizes) > 1:
            raise ValidationError(f"cameras: the chosen cameras have different image sizes "
                                  f"{', '.join(f'{w}x{h}' for w, h in sizes)}; pass cameras= of "
                                  "one size")
        poses = np.stack([self.ego_to_world[frame] @ c.cam_to_ego for c in cams])
        K = np.stack([c.K for c in cams])
        ts = torch.full((len(cams),), float(self.frame_times[frame]), dtype=torch.float64)
        return Cameras(torch.from_numpy(K).float(), torch.from_numpy(poses).float(), sizes[0][0],
                       sizes[0][1], timestamps=ts, names=[c.name for c in cams]).to(self.device)

    def render(self, cameras: Cameras, *, backend: str = "auto", sh_degree: int | None = None,
               background: Tensor | None = None, sky_min_transmittance: float = 0.0,
               colour: bool = True, ego: bool = True, upsample: bool = True,
               detail: bool = True) -> SceneImages:
        """Render each camera at its own time: camera ``c`` sees :meth:`gaussians_at` of
        ``cameras.timestamps[c]`` (seconds on the scene clock; required). A camera named as one
        of the scene's :attr:`colour` cameras sees through that camera's colour matrix (its
        recorded exposure), applied to the composited image (``colour=False``: the Gaussians'
        own, rig-neutral colours). A camera named as one of the :attr:`ego` layer's has the ego's
        own body drawn over it last, from its context image nearest in time (``ego=False``:
        not); ``alpha`` and ``depth`` stay the Gaussians'. With the scene's :attr:`upsample`
        filter, a camera of a larger focal length than its rig camera's (a camera of another
        name: its image height over the network's) at the network's size sees the Gaussians
        widened (``upsample=False``: as they are).

        Args:
            cameras: unbatched :class:`~splatnet.Cameras` ``[C]`` with ``timestamps``.
            backend, sh_degree: as :func:`splatnet.render`.
            background: a colour ``[3]`` behind the Gaussians instead of the sky; default: the
                scene's sky (``rgb + (1 − alpha) · sky``), or black when it has none.
            sky_min_transmittance: the sky is evaluated only at pixels whose transmittance
                ``1 − alpha`` exceeds this (elsewhere the Gaussians hide it). 0 (the default) is
                exact; a value ``ε`` changes no pixel by more than ``ε`` (the sky is in [0, 1];
                times the row sum of a camera's colour gains): ``1/512`` keeps every uint8 pixel
                within one step of the exact image.
            colour: render the :attr:`colour` cameras through their colour matrices.
            ego: draw the :attr:`ego` layer over its cameras.
            upsample: apply the scene's :attr:`upsample` filter.
            detail: add the scene's :attr:`detail` layer.
        """
        if not isinstance(cameras, Cameras):
            raise ValidationError(f"cameras: expected splatnet.Cameras, got {type(cameras).__name__}")
        if cameras.batch_shape:
            raise ValidationError(f"cameras: expected unbatched cameras [C], got batch shape "
                                  f"{cameras.batch_shape}")
        ts = camera_times(cameras, "cameras")
        if isinstance(sky_min_transmittance, bool) or not isinstance(sky_min_transmittance, (int, float)) \
                or not 0.0 <= sky_min_transmittance < 1.0:
            raise ValidationError(f"sky_min_transmittance: expected a number in [0, 1), got "
                                  f"{sky_min_transmittance!r}")
        for name, flag in (("colour", colour), ("ego", ego), ("upsample", upsample),
                           ("detail", detail)):
            if not isinstance(flag, bool):
                raise ValidationError(f"{name}: expected True or False, got {flag!r}")
        cams = cameras.to(self.device)
        rgb, alpha, depth = [None] * len(cams), [None] * len(cams), [None] * len(cams)
        names = cams.names or [None] * len(cams)
        # Cameras that share a time share one set of Gaussians and one render call (each its
        # own when the upsample filter widens them for it).
        for t in torch.unique(ts).tolist():
            idx = torch.nonzero(ts == t).flatten().tolist()
            g = self.gaussians_at(t)
            shared, own = [], []
            for i in idx:
                gi = g if not upsample or self.upsample is None \
                    else self.upsample.widen(g, cams[[i]], names[i])
                if gi is g:
                    shared.append(i)
                else:
                    own.append((gi, [i]))
            for gg, group in ([(g, shared)] if shared else []) + own:
                out = render(gg, cams[group], backend=backend, sh_degree=sh_degree,
                             background=background)
                for j, i in enumerate(group):
                    rgb[i], alpha[i], depth[i] = out.rgb[j], out.alpha[j], out.depth[j]
        rgb, alpha, depth = torch.stack(rgb), torch.stack(alpha), torch.stack(depth)
        if background is None and self.sky is not None:
            batched = Cameras(cams.K[None], cams.cam_to_world[None], cams.width, cams.height,
                              check=False)
            seen = 1.0 - alpha
            # Exact (0): every pixel in one batched pass; otherwise only where the sky shows.
            where = (seen[..., 0] > sky_min_transmittance)[None] if sky_min_transmittance else None
            rgb = rgb + seen * self.sky.render(batched, where=where)[0].to(rgb)
        rows = [i for i, n in enumerate(names) if n in self.colour] if colour else []
        if rows:
            from splatnet.losses import apply_colour

            mats = torch.from_numpy(np.stack([self.colour[names[i]] for i in rows])).to(rgb)
            idx = torch.tensor(rows, device=rgb.device)
            seen_by = apply_colour(rgb[idx].movedim(-1, -3), mats).movedim(-3, -1)
            rgb = rgb.index_copy(0, idx, seen_by)
        if detail and self.detail is not None:
            rgb = torch.stack([self.detail.apply(rgb[i], alpha[i], depth[i], cams[[i]], names[i],
                                                 float(ts[i]), self._boxes_at(float(ts[i])))
                               for i in range(len(cams))])
        if ego and self.ego is not None and any(self.ego.covers(n) for n in names):
            rgb = torch.stack([self.ego.composite(rgb[i], n, float(ts[i])) if self.ego.covers(n)
                               else rgb[i] for i, n in enumerate(names)])
        return SceneImages(rgb, alpha, depth)

    def _boxes_at(self, t: float) -> dict[str, tuple]:
        """``{id: (size, box_to_world)}`` of the actors present at ``t`` that the detail layer
        carries (those it has poses for)."""
        known = self.detail.actors if self.detail is not None else {}
        return {a.id: (a.size, pose) for a in self.actors.values()
                if a.id in known and (pose := a.pose_at(t)) is not None}

    def with_detail(self, cameras: Cameras, images: Tensor, *, tolerance: float = 0.05,
                    min_alpha: float = 0.5, backend: str = "auto",
                    finer: tuple[Cameras, Tensor] | None = None,
                    box_margin: float | None = None) -> Scene:
        """The scene with a :attr:`detail` layer of these context views: each rendered by the
        scene as :meth:`render` shows it (sky, colour, upsample filter, ego layer; no detail
        layer), the layer keeps ``image − render`` (zero on the ego's body by its
        :attr:`ego` layer), the render's depth and the camera, and each of the scene's actors'
        box at the views' times (so a render carries an actor's detail with its box, wherever
        an edit puts it). A scene whose Gaussians change (refinement) needs a new one.

        Args:
            cameras: unbatched :class:`~splatnet.Cameras` ``[V]`` with ``timestamps`` and
                ``names`` (rig cameras), all of one size.
            images: ``[V, H, W, 3]`` the views' recorded images in ``[0, 1]``.
            tolerance, min_alpha: :class:`~splatnet.scene.layers.DetailLayer`'s settings.
            backend: as :func:`splatnet.render`.
            finer: the same views at a larger size, ``(cameras, images)`` (same names, poses
                and times): the layer's ``finer`` level, for renders nearer that size.
            box_margin: metres an actor's box is grown by when the layer finds the pixels on it
                (:attr:`DetailLayer.box_margin`); None: the ``box_margin`` the scene's actors
                were collected with (its metadata's, as :func:`splatnet.reconstruct_scene`
                records it), else ``DETAIL_BOX_MARGIN``.
        """
        check_detail_settings("detail", True, tolerance, min_alpha)
        if box_margin is None:
            box_margin = self.metadata.get("box_margin", DETAIL_BOX_MARGIN)
            where = "metadata.box_margin"
        else:
            where = "box_margin"
        check_box_margin(where, box_margin)
        layer = self._detail_of(cameras, images, tolerance, min_alpha, backend, "")
        if finer is not None:
            fine_cams, fine_images = finer
            if not isinstance(fine_cams, Cameras) or fine_cams.names != cameras.names \
                    or fine_cams.num_cameras != cameras.num_cameras:
                raise ValidationError("finer: expected (cameras, images) of the same views, "
                                      "named as cameras")
            layer = dataclasses.replace(layer, finer=self._detail_of(
                fine_cams, fine_images, tolerance, min_alpha, backend, "finer."))
        # each tracked actor's box at the views' times (a zero matrix where it was absent)
        times = layer.times.tolist()
        poses = {a.id: [a.pose_at(t) for t in times] for a in self.actors.values()}
        layer = dataclasses.replace(layer, box_margin=float(box_margin), actors={
            k: torch.from_numpy(np.stack([np.zeros((4, 4)) if q is None else q for q in v]))
            for k, v in poses.items() if any(q is not None for q in v)})
        return self.replace(detail=layer)

    def _detail_of(self, cameras: Cameras, images: Tensor, tolerance: float, min_alpha: float,
                   backend: str, where: str) -> DetailLayer:
        """:meth:`with_detail`'s layer of one size (``where`` prefixes the argument names in
        errors)."""
        if not isinstance(cameras, Cameras) or cameras.batch_shape:
            raise ValidationError(f"{where}cameras: expected unbatched splatnet.Cameras [V]")
        if not cameras.names:
            raise ValidationError(f"{where}cameras.names: required; the detail layer keeps each "
                                  "view's rig camera")
        want = (cameras.num_cameras, cameras.height, cameras.width, 3)
        if not isinstance(images, Tensor) or not images.is_floating_point() \
                or tuple(images.shape) != want:
            raise ValidationError(f"{where}images: expected a float tensor {list(want)} (one image "
                                  f"per camera), got {getattr(images, 'shape', type(images).__name__)}")
        if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 \
                or float(images.max()) > 1:
            raise ValidationError(f"{where}images: values must be finite and in [0, 1]")
        camera_times(cameras, f"{where}cameras")
        with torch.no_grad():
            out = self.render(cameras, backend=backend, detail=False)
        return DetailLayer.from_renders(images.cpu(), out.rgb.cpu(), out.depth.cpu(),
                                        cameras.to("cpu"), cameras.names, ego=self.ego,
                                        tolerance=tolerance, min_alpha=min_alpha)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write the scene to one ``NAME.scene`` file atomically (docs/scenes.md); an existing
        file is replaced only with ``force``. Gaussians are stored as float32. Returns the path."""
        from splatnet import __version__

        if self.background.dtype != torch.float32:
            raise ValidationError(f"save: the Gaussians are {self.background.dtype}; a .scene file "
                                  "stores float32")
        bg = self.background
        tensors: dict[str, Tensor] = {f"background.{k}": v for k, v in bg.fields().items()}
        actors = []
        for i, a in enumerate(self.actors.values()):
            tensors.update({f"actor.{i}.{k}": v for k, v in a.gaussians.fields().items()})
            tensors[f"actor.{i}.track.times"] = torch.tensor(a.track.times)
            tensors[f"actor.{i}.track.box_to_world"] = torch.tensor(a.track.box_to_world)
            if a.track.moving is not None:
                tensors[f"actor.{i}.track.moving"] = torch.tensor(a.track.moving)
            actors.append({"id": a.id, "label": a.label, "size": list(a.size),
                           "count": a.gaussians.num_gaussians, "sh_degree": a.gaussians.sh_degree,
                           "track_length": len(a.track), "moving": a.track.moving is not None})
        tensors["ego.frame_times"] = torch.tensor(self.frame_times)
        tensors["ego.ego_to_world"] = torch.tensor(self.ego_to_world)
        tensors["rig.K"] = torch.tensor(np.stack([c.K for c in self.rig.cameras]))
        tensors["rig.cam_to_ego"] = torch.tensor(np.stack([c.cam_to_ego for c in self.rig.cameras]))
        if self.sky is not None:
            tensors["sky.latent"] = self.sky.latent.float()
            tensors.update({f"sky.model.{k}": v.float() for k, v in self.sky.model.state_dict().items()})
        description = {
            "writer": f"splatnet {__version__}",
            "background": {"count": bg.num_gaussians, "sh_degree": bg.sh_degree,
                           "dynamic": bg.is_dynamic},
            "actors": actors,
            "rig": [{"name": c.name, "width": c.width, "height": c.height} for c in self.rig.cameras],
            "frames": self.num_frames,
            "sky": None if self.sky is None else sky_config(self.sky.model),
            "metadata": dict(self.metadata),
        }
        if self.colour:
            description["colour"] = list(self.colour)
            tensors["colour.matrices"] = torch.from_numpy(np.stack(list(self.colour.values())))
        if self.ego is not None:
            e = self.ego
            cams = []
            for i, n in enumerate(e.masks):
                t, h, w, _ = e.images[n].shape
                cams.append({"name": n, "height": h, "width": w, "frames": t,
                             "times": e.times[n] is not None})
                tensors[f"ego_layer.{i}.mask"] = e.masks[n]
                tensors[f"ego_layer.{i}.images"] = e.images[n]
                if e.times[n] is not None:
                    tensors[f"ego_layer.{i}.times"] = e.times[n]
            description["ego_layer"] = {"estimated": e.estimated, "cameras": cams}
        if self.upsample is not None:
            description["upsample_filter"] = {"sigma": self.upsample.sigma,
                                              "focals": dict(self.upsample.focals),
                                              "height": self.upsample.height}
        if self.detail is not None:
            d = self.detail
            h, w = d.size
            description["detail_layer"] = {"cameras": list(d.names), "height": h, "width": w,
                                           "tolerance": d.tolerance, "min_alpha": d.min_alpha,
                                           "box_margin": d.box_margin}
            tensors.update({"detail_layer.residuals": d.residuals, "detail_layer.depths": d.depths,
                            "detail_layer.K": d.K, "detail_layer.cam_to_world": d.cam_to_world,
                            "detail_layer.times": d.times})
            if d.finer is not None:
                fh, fw = d.finer.size
                description["detail_layer"]["finer"] = {"height": fh, "width": fw}
                tensors.update({"detail_layer.finer.residuals": d.finer.residuals,
                                "detail_layer.finer.depths": d.finer.depths,
                                "detail_layer.finer.K": d.finer.K})
            if d.actors:
                description["detail_layer"]["actors"] = list(d.actors)
                tensors.update({f"detail_layer.actor.{i}.box_to_world": v
                                for i, v in enumerate(d.actors.values())})
        return write_scene_file(path, description, tensors, force=force)

    @staticmethod
    def load(path: str | os.PathLike, device: str | torch.device | None = None) -> Scene:
        """Read a ``.scene`` file: every field is checked, nothing is unpickled or executed; a
        malformed, truncated or hostile file is one ``FormatError`` naming it."""
        d, t = read_scene_file(path)
        try:
            scene = _from_file(d, t)
        except ValidationError as exc:
            raise FormatError(f"{path}: {exc}") from None
        return scene if device is None else scene.to(device)

    # ------------------------------------------------------------------ edits
    # An actor's Gaussians live in its box frame, so an edit changes where an actor is (its track)
    # or whether it is there; no Gaussian is rewritten, and every other actor and the background
    # are carried over as the very same tensors (they render bit-identically).
    def remove(self, ids: str | Iterable[str]) -> Scene:
        """The scene without the actors ``ids`` (one id or several; each must be in the scene).

        What is left where an actor was: the background Gaussians the network placed there from
        the frames in which the actor did not hide them; where no camera ever saw behind it (the
        road under a parked car), there are none, and the sky or what lies further along those
        rays shows through (docs/scenes.md).
        """
        ids = [ids] if isinstance(ids, str) else list(ids)
        if not ids:
            raise ValidationError("remove: no actor id given")
        for i in ids:
            self._actor(i, "remove")
        gone = set(ids)
        return self.replace(actors=[a for a in self.actors.values() if a.id not in gone])

    def move(self, id: str, dx: float = 0.0, dy: float = 0.0, dyaw: float = 0.0) -> Scene:
        """Actor ``id``'s whole track shifted by ``dx``, ``dy`` metres along the **world** x and y
        axes (the horizontal plane of a clip whose world is its first ego pose: x forward, y
        left) and turned by ``dyaw`` radians about the **box's own z axis** (counter-clockwise
        seen from above, in place about the box centre); see :meth:`Track.moved`."""
        a = self._actor(id, "move")
        return self._with(a.replace(track=a.track.moved(dx, dy, dyaw)))

    def set_track(self, id: str, track: Track) -> Scene:
        """Actor ``id`` on a whole new ``track`` (times on this scene's clock, poses in its world)."""
        a = self._actor(id, "set_track")
        if not isinstance(track, Track):
            raise ValidationError(f"set_track: expected a splatnet.scene.Track, got "
                                  f"{type(track).__name__}")
        return self._with(a.replace(track=track))

    def insert(self, actor: SceneActor, track: Track, new_id: str | None = None) -> Scene:
        """``actor``'s Gaussians (from any scene: they are in its box frame) added on ``track``
        (this scene's clock and world) after the other actors, as ``new_id`` or its own id, which
        must not be in the scene yet."""
        if not isinstance(actor, SceneActor):
            raise ValidationError(f"insert: expected a splatnet.scene.SceneActor, got "
                                  f"{type(actor).__name__}")
        if not isinstance(track, Track):
            raise ValidationError(f"insert: track: expected a splatnet.scene.Track, got "
                                  f"{type(track).__name__}")
        aid = actor.id if new_id is None else new_id
        if aid in self.actors:
            raise ValidationError(f"insert: actor id {aid!r} is already in the scene; give another "
                                  "id (new_id=, or --new-id on the command line)")
        g = actor.gaussians
        if (g.device, g.dtype) != (self.device, self.background.dtype):
            g = g.to(self.device, self.background.dtype)
        return self.replace(actors=[*self.actors.values(),
                                    actor.replace(id=aid, track=track, gaussians=g)])

    def _actor(self, id: object, what: str) -> SceneActor:
        a = self.actors.get(id) if isinstance(id, str) else None
        if a is None:
            known = list(self.actors)
            listed = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
            raise ValidationError(f"{what}: no actor {id!r} in the scene (actors: "
                                  f"{listed or 'none'})")
        return a

    def _with(self, actor: SceneActor) -> Scene:
        """This scene with ``actor`` in place of the actor of the same id."""
        return self.replace(actors=[actor if a.id == actor.id else a for a in self.actors.values()])


def _from_file(d: dict, t: dict[str, Tensor]) -> Scene:
    """The scene a checked file describes (``read_scene_file``); field checks raise
    ``ValidationError`` naming the field."""

    def group(prefix: str, where: str) -> Gaussians:
        names = [n for n in ("means", "quats", "scales", "opacities", "sh", "velocities", "times")
                 if f"{prefix}.{n}" in t]
        try:
            return Gaussians(*(t[f"{prefix}.{n}"] for n in names))
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None

    actors = []
    for i, a in enumerate(d["actors"]):
        where = f"actor {a['id']!r}" if isinstance(a["id"], str) else f"actors[{i}]"
        moving = t.get(f"actor.{i}.track.moving")
        try:
            track = Track(t[f"actor.{i}.track.times"].numpy(),
                          t[f"actor.{i}.track.box_to_world"].numpy(),
                          None if moving is None else moving.numpy())
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None
        actors.append(SceneActor(a["id"], a["label"], a["size"], track,
                                 group(f"actor.{i}", f"{where}.gaussians")))
    K, c2e = t["rig.K"].numpy(), t["rig.cam_to_ego"].numpy()
    rig = Rig(tuple(RigCamera(c["name"], c["width"], c["height"], K[i], c2e[i])
                    for i, c in enumerate(d["rig"])))
    sky = None
    if d["sky"] is not None:
        model = SkyModel(**d["sky"])
        model.load_state_dict({k[len("sky.model."):]: v for k, v in t.items()
                               if k.startswith("sky.model.")}, strict=True)
        sky = SkyBackground(model.eval().requires_grad_(False), t["sky.latent"])
    colour = {n: m for n, m in zip(d.get("colour", []), t["colour.matrices"].numpy())} \
        if "colour" in d else {}
    ego = None
    if "ego_layer" in d:
        cams = d["ego_layer"]["cameras"]
        ego = EgoLayer({c["name"]: t[f"ego_layer.{i}.mask"] for i, c in enumerate(cams)},
                       {c["name"]: t[f"ego_layer.{i}.images"] for i, c in enumerate(cams)},
                       {c["name"]: t.get(f"ego_layer.{i}.times") for i, c in enumerate(cams)},
                       d["ego_layer"]["estimated"])
    upsample = None
    if "upsample_filter" in d:
        up = d["upsample_filter"]
        upsample = UpsampleFilter(dict(up["focals"]), up["sigma"], up["height"])
    detail = None
    if "detail_layer" in d:
        e = d["detail_layer"]
        finer = None
        if "finer" in e:
            finer = DetailLayer(tuple(e["cameras"]), t["detail_layer.finer.residuals"],
                                t["detail_layer.finer.depths"], t["detail_layer.finer.K"],
                                t["detail_layer.cam_to_world"], t["detail_layer.times"],
                                e["tolerance"], e["min_alpha"])
        detail = DetailLayer(tuple(e["cameras"]), t["detail_layer.residuals"],
                             t["detail_layer.depths"], t["detail_layer.K"],
                             t["detail_layer.cam_to_world"], t["detail_layer.times"],
                             e["tolerance"], e["min_alpha"], finer,
                             {k: t[f"detail_layer.actor.{i}.box_to_world"]
                              for i, k in enumerate(e.get("actors", []))},
                             e.get("box_margin", DETAIL_BOX_MARGIN))
    return Scene(background=group("background", "background"), actors=actors, rig=rig,
                 frame_times=t["ego.frame_times"].numpy(), ego_to_world=t["ego.ego_to_world"].numpy(),
                 sky=sky, colour=colour, ego=ego, upsample=upsample, detail=detail,
                 metadata=d["metadata"])


# ---------------------------------------------------------------------------------------- checks
def camera_times(cameras: Cameras, where: str) -> Tensor:
    """The cameras' ``timestamps`` (required: a scene is rendered at each camera's time, seconds
    on the scene clock) as float64 on the CPU; one line naming ``where`` when missing or not
    finite."""
    if cameras.timestamps is None:
        raise ValidationError(f"{where}.timestamps: required; a scene is rendered at each "
                              "camera's time (seconds on the scene clock)")
    ts = cameras.timestamps.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(ts).all()):
        raise ValidationError(f"{where}.timestamps: non-finite time (NaN or inf)")
    return ts


def _check_sky(sky: object) -> None:
    if sky is None:
        return
    if not isinstance(sky, SkyBackground) or not isinstance(sky.model, SkyModel):
        raise ValidationError(f"sky: expected a splatnet.models.sky.SkyBackground of a SkyModel, "
                              f"got {type(sky).__name__}")
    dim = sky.model.to_latent.out_features
    if not isinstance(sky.latent, Tensor) or tuple(sky.latent.shape) != (1, dim) \
            or not sky.latent.is_floating_point():
        raise ValidationError(f"sky.latent: expected a float tensor [1, {dim}] (one scene), got "
                              f"{getattr(sky.latent, 'shape', type(sky.latent).__name__)}")
    if not bool(torch.isfinite(sky.latent).all()):
        raise ValidationError("sky.latent: non-finite values (NaN or inf)")
    for name, p in sky.model.state_dict().items():
        if not bool(torch.isfinite(p).all()):
            raise ValidationError(f"sky.model.{name}: non-finite values (NaN or inf)")
        if p.device != sky.latent.device:
            raise ValidationError(f"sky: model on {p.device}, latent on {sky.latent.device}")


def _check_colour(colour: object, rig: Rig) -> dict[str, np.ndarray]:
    """``colour`` as ``{rig camera name: read-only float64 [3, 4]}`` (copies), checked."""
    if not isinstance(colour, Mapping):
        raise ValidationError(f"colour: expected a mapping of rig camera name -> [3, 4] colour "
                              f"matrix, got {type(colour).__name__}")
    out = {}
    for name, m in colour.items():
        if name not in rig.names:
            raise ValidationError(f"colour: {name!r} is not a camera of the rig "
                                  f"({', '.join(rig.names)})")
        a = m.detach().cpu().numpy() if isinstance(m, Tensor) else np.asarray(m)
        if a.shape != (3, 4) or a.dtype.kind not in "fiu":
            raise ValidationError(f"colour[{name!r}]: expected a [3, 4] matrix [M | b] of numbers, "
                                  f"got {a.dtype} {list(a.shape)}")
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValidationError(f"colour[{name!r}]: non-finite values (NaN or inf)")
        out[name] = read_only(a)
    return out


def _is_layer(value: object, cls: type, field: str) -> bool:
    """False for None, True for a ``cls`` (a :mod:`splatnet.scene.layers` class); one line
    naming ``field`` for anything else."""
    if value is None:
        return False
    if not isinstance(value, cls):
        raise ValidationError(f"{field}: expected a splatnet.scene.layers.{cls.__name__}, got "
                              f"{type(value).__name__}")
    return True


def _check_ego(ego: object, rig: Rig):
    """``ego`` (an :class:`~splatnet.scene.layers.EgoLayer` of rig cameras) as a new layer of
    the same tensors on the CPU, checked; None stays None."""
    if not _is_layer(ego, EgoLayer, "ego"):
        return None
    if not isinstance(ego.estimated, bool) or not ego.masks \
            or set(ego.images) != set(ego.masks) or set(ego.times) != set(ego.masks):
        raise ValidationError("ego: expected masks, images and times of the same cameras (at "
                              "least one) and estimated True or False")
    masks, images, times = {}, {}, {}
    for n in ego.masks:
        where = f"ego[{n!r}]"
        if n not in rig.names:
            raise ValidationError(f"{where}: not a camera of the rig ({', '.join(rig.names)})")
        m, im, ts = ego.masks[n], ego.images[n], ego.times[n]
        if not isinstance(m, Tensor) or m.dtype != torch.bool or m.dim() != 2 or m.numel() == 0:
            raise ValidationError(f"{where}.mask: expected a bool tensor [H, W]")
        h, w = m.shape
        if not isinstance(im, Tensor) or not im.is_floating_point() or im.dim() != 4 \
                or tuple(im.shape[1:]) != (h, w, 3) or im.shape[0] == 0:
            raise ValidationError(f"{where}.images: expected a float tensor [T, {h}, {w}, 3] (its "
                                  f"context images), got {getattr(im, 'shape', type(im).__name__)}")
        if not bool(torch.isfinite(im).all()) or float(im.min()) < 0 or float(im.max()) > 1:
            raise ValidationError(f"{where}.images: values must be finite and in [0, 1]")
        if ts is not None:
            if not isinstance(ts, Tensor) or tuple(ts.shape) != (im.shape[0],) \
                    or not ts.is_floating_point() or not bool(torch.isfinite(ts).all()):
                raise ValidationError(f"{where}.times: expected {im.shape[0]} finite times "
                                      "(seconds, one per image) or None")
            ts = ts.detach().to("cpu", torch.float64)
        masks[n], images[n], times[n] = m.detach().cpu(), im.detach().float().cpu(), ts
    return EgoLayer(masks, images, times, ego.estimated)


def _check_upsample(up: object, rig: Rig) -> UpsampleFilter | None:
    """``up`` checked, as a new filter with its own copy of the focal lengths (the scene's)."""
    if not _is_layer(up, UpsampleFilter, "upsample"):
        return None
    sigma = up.sigma
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) \
            or not 0 <= sigma <= MAX_UPSAMPLE_SIGMA:
        raise ValidationError(f"upsample.sigma: expected network pixels in [0, {MAX_UPSAMPLE_SIGMA:g}], "
                              f"got {sigma!r}")
    if isinstance(up.height, bool) or not isinstance(up.height, int) or not 1 <= up.height <= 8192:
        raise ValidationError(f"upsample.height: expected the network's input height in pixels, "
                              f"got {up.height!r}")
    if not isinstance(up.focals, Mapping) or not up.focals:
        raise ValidationError("upsample.focals: expected rig camera name -> focal length (px)")
    for n, f in up.focals.items():
        if n not in rig.names:
            raise ValidationError(f"upsample.focals: {n!r} is not a camera of the rig "
                                  f"({', '.join(rig.names)})")
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1e7 \
                or not math.isfinite(f):
            raise ValidationError(f"upsample.focals[{n!r}]: expected a focal length in pixels "
                                  f"(> 0), got {f!r}")
    return UpsampleFilter({n: float(f) for n, f in up.focals.items()}, float(sigma), up.height)


def _check_detail(detail: object, rig: Rig) -> DetailLayer | None:
    """``detail`` (a :class:`~splatnet.scene.layers.DetailLayer` of rig cameras) checked, as a
    new layer of CPU copies (float16 residuals and depths, float64 cameras); None stays None."""
    if not _is_layer(detail, DetailLayer, "detail"):
        return None
    names = detail.names
    if not isinstance(names, (tuple, list)) or not names \
            or not all(isinstance(n, str) for n in names):
        raise ValidationError("detail.names: expected the rig camera name of each view (at least one)")
    for n in names:
        if n not in rig.names:
            raise ValidationError(f"detail.names: {n!r} is not a camera of the rig "
                                  f"({', '.join(rig.names)})")
    v = len(names)

    def tensor(x: object, field: str, shape: str, ok) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point() or not ok(x.shape):
            raise ValidationError(f"detail.{field}: expected a float tensor {shape}, got "
                                  f"{getattr(x, 'shape', type(x).__name__)}")
        if not bool(torch.isfinite(x).all()):
            raise ValidationError(f"detail.{field}: non-finite values (NaN or inf)")
        return x.detach().cpu()

    res = tensor(detail.residuals, "residuals", f"[{v}, H, W, 3]",
                 lambda s: len(s) == 4 and s[0] == v and s[3] == 3 and s[1] > 0 and s[2] > 0)
    h, w = res.shape[1:3]
    if float(res.abs().max()) > 1:
        raise ValidationError("detail.residuals: values must lie in [-1, 1] (an image in [0, 1] "
                              "minus a render in [0, 1])")
    depths = tensor(detail.depths, "depths", f"[{v}, {h}, {w}]", lambda s: tuple(s) == (v, h, w))
    if float(depths.min()) < 0:
        raise ValidationError("detail.depths: values must be >= 0 (camera depth, 0 = nothing)")
    K = tensor(detail.K, "K", f"[{v}, 3, 3]", lambda s: tuple(s) == (v, 3, 3)).double()
    if not bool((K[:, 0, 0] > 0).all() and (K[:, 1, 1] > 0).all()):
        raise ValidationError("detail.K: focal lengths must be > 0")
    c2w = tensor(detail.cam_to_world, "cam_to_world", f"[{v}, 4, 4]",
                 lambda s: tuple(s) == (v, 4, 4)).double()
    for i in range(v):
        C.check_rigid(c2w[i].numpy(), f"detail.cam_to_world[{i}]")
    times = tensor(detail.times, "times", f"[{v}]", lambda s: tuple(s) == (v,)).double()
    check_detail_settings("detail", True, detail.tolerance, detail.min_alpha)
    check_box_margin("detail.box_margin", detail.box_margin)
    if not isinstance(detail.actors, Mapping) or len(detail.actors) > MAX_DETAIL_ACTORS:
        raise ValidationError(f"detail.actors: expected a mapping of at most {MAX_DETAIL_ACTORS} "
                              "actor ids to their boxes at the views' times")
    actors = {}
    for k, poses in detail.actors.items():
        where = f"detail.actors[{k!r}]"
        if not isinstance(k, str) or not 0 < len(k) <= 128:
            raise ValidationError(f"detail.actors: {k!r} is not an actor id (a string of 1..128 "
                                  "characters)")
        poses = tensor(poses, f"actors[{k!r}]", f"[{v}, 4, 4]",
                       lambda s: tuple(s) == (v, 4, 4)).double()
        present = poses.abs().amax((1, 2)) > 0
        if not bool(present.any()):
            raise ValidationError(f"{where}: the actor is absent from every view (all zero)")
        for i in torch.nonzero(present).flatten().tolist():
            C.check_rigid(poses[i].numpy(), f"{where}[{i}]")
        actors[k] = poses
    finer = detail.finer
    if finer is not None:
        if not isinstance(finer, DetailLayer) or finer.finer is not None \
                or tuple(finer.names) != tuple(names) or finer.tolerance != detail.tolerance \
                or finer.min_alpha != detail.min_alpha or finer.actors:
            raise ValidationError("detail.finer: expected a DetailLayer of the same views and "
                                  "settings, without a finer level or actors of its own")
        finer = _check_detail(finer, rig)
        if not (torch.equal(finer.cam_to_world, c2w) and torch.equal(finer.times, times)):
            raise ValidationError("detail.finer: its views' poses and times must be the layer's")
        if finer.size[0] <= h or finer.size[1] <= w:
            raise ValidationError(f"detail.finer: expected views larger than the layer's "
                                  f"{h}x{w}, got {finer.size[0]}x{finer.size[1]}")
    return DetailLayer(tuple(names), res.half(), as_half_depth(depths), K, c2w, times,
                       float(detail.tolerance), float(detail.min_alpha), finer, actors,
                       float(detail.box_margin))



def _check_metadata(meta: object) -> dict:
    if not isinstance(meta, Mapping) or not all(isinstance(k, str) for k in meta):
        raise ValidationError("metadata: expected a mapping with string keys")
    meta = dict(meta)
    C.check_json_depth(meta, "metadata", limit=MAX_METADATA_DEPTH)
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metadata: must be plain JSON data (strings, finite numbers, "
                              f"booleans, null, lists, mappings): {exc}") from None
    if len(text) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata: {len(text)} bytes of JSON, at most {MAX_METADATA_BYTES}")
    return json.loads(text)  # a deep copy: the scene owns it


def _time(t: object) -> float:
    if isinstance(t, Tensor):
        t = t.item() if t.numel() == 1 else t
    if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(t)):
        raise ValidationError(f"t: expected a finite time in seconds, got {t!r}")
    return float(t)

"""``Clip``: a validated, lazily decoded log clip (format v1, ``docs/clip-format.md``)."""

from __future__ import annotations

import json
import math
import operator
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from torch import Tensor

from splatnet._limits import check_image_size as check_working_size
from splatnet.cameras import Cameras
from splatnet.clip import _checks as C
from splatnet.clip._files import probe_image, probe_npy, read_mask, read_npy, read_png16, read_rgb
from splatnet.clip.actors import Actor, check_actors
from splatnet.errors import FormatError, ValidationError

_TOP_KEYS = ("format", "version", "world_frame", "depth_scale", "cameras", "frames", "metadata",
             "actors")
_CAMERA_KEYS = ("name", "role", "width", "height", "K", "cam_to_ego", "mask")
_FRAME_KEYS = (
    "timestamp",
    "ego_to_world",
    "images",
    "camera_timestamps",
    "camera_ego_to_world",
    "depths",
    "sky_masks",
    "lidar",
)
_LIDAR_KEYS = ("path", "frame", "intensity", "timestamp", "ego_to_world")


@dataclass(frozen=True)
class ClipCamera:
    """One camera of a clip, as stored (``K`` at the native image size)."""

    name: str
    role: str  # "rig" | "target"
    width: int
    height: int
    K: np.ndarray  # [3, 3] float64
    cam_to_ego: np.ndarray  # [4, 4] float64, OpenCV camera frame
    mask: Path | None  # validity mask PNG (nonzero = valid)


@dataclass(frozen=True)
class _Lidar:
    path: Path
    frame: str
    intensity: Path | None
    ego_to_world: np.ndarray | None  # in the manifest's pose frame


@dataclass(frozen=True)
class _Frame:
    timestamp: float  # absolute seconds, as stored
    ego_to_world: np.ndarray  # [4, 4], manifest pose frame
    images: dict[str, Path]
    camera_timestamps: dict[str, float]
    camera_ego_to_world: dict[str, np.ndarray]
    depths: dict[str, Path]
    sky_masks: dict[str, Path]
    lidar: _Lidar | None


@dataclass
class Views:
    """V views (frame × camera pairs), all tensors in the same order.

    Attributes:
        cameras: ``Cameras`` with ``[V]`` cameras in the clip's world frame, ``timestamps``
            (seconds since ``Clip.time_origin``) and ``names`` (camera names).
        images: ``[V, H, W, 3]`` float32 in ``[0, 1]``.
        frame_ids: ``[V]`` int64 frame index of each view.
        camera_names: camera name of each view.
        roles: camera role (``"rig"`` or ``"target"``) of each view.
        depths: ``[V, H, W, 1]`` float32 camera-z depth in metres (0 = none), or None when no
            selected view has ground-truth depth.
        sky_masks: ``[V, H, W, 1]`` bool (True = sky), or None when no selected view has one.
        masks: ``[V, H, W, 1]`` bool validity (True = valid pixel), or None when no selected
            camera has a mask.
    """

    cameras: Cameras
    images: Tensor
    frame_ids: Tensor
    camera_names: list[str]
    roles: list[str]
    depths: Tensor | None = None
    sky_masks: Tensor | None = None
    masks: Tensor | None = None

    def __len__(self) -> int:
        return len(self.camera_names)

    def to(self, device: torch.device | str) -> Views:
        """The same views with every tensor on ``device``."""

        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return Views(
            cameras=self.cameras.to(device),
            images=self.images.to(device),
            frame_ids=self.frame_ids.to(device),
            camera_names=list(self.camera_names),
            roles=list(self.roles),
            depths=mv(self.depths),
            sky_masks=mv(self.sky_masks),
            masks=mv(self.masks),
        )


class _PathResolver:
    """Resolves manifest paths, refusing anything that could leave the clip directory."""

    def __init__(self, root: Path, manifest: Path) -> None:
        self.root = root
        self.real_root = Path(os.path.realpath(root))
        self.manifest = manifest

    def __call__(self, rel: object, where: str, suffixes: Sequence[str]) -> Path:
        w = f"{self.manifest}: {where}"
        if not isinstance(rel, str) or not rel:
            raise FormatError(f"{w}: expected a relative path string, got {rel!r}")
        if "\x00" in rel or "\\" in rel:
            raise FormatError(f"{w}: path {rel!r} contains a NUL or backslash")
        p = PurePosixPath(rel)
        if p.is_absolute() or rel.startswith("~"):
            raise FormatError(f"{w}: absolute path {rel!r} not allowed; paths are relative to the clip")
        if ".." in p.parts:
            raise FormatError(f"{w}: path {rel!r} contains '..'; paths must stay inside the clip")
        full = self.root / p
        real = Path(os.path.realpath(full))
        if real == self.real_root or not real.is_relative_to(self.real_root):
            raise FormatError(
                f"{w}: path {rel!r} resolves to {real}, outside the clip directory "
                f"(a symlink leading out of the clip?)"
            )
        if p.suffix.lower() not in suffixes:
            raise FormatError(f"{w}: path {rel!r} must end with one of {list(suffixes)}")
        if not real.is_file():
            if not real.exists():
                raise FileNotFoundError(f"{full}: file not found (referenced by {where})")
            raise FormatError(f"{full}: not a regular file (referenced by {where})")
        return full


class Clip:
    """A log clip on disk: N cameras × T frames, validated at load, decoded on demand.

    Build with :meth:`Clip.load`. World frame: the first ego pose (``world_frame: first_ego``,
    the default) or the manifest's pose frame (``world_frame: poses``).
    """

    def __init__(
        self,
        path: Path,
        cameras: list[ClipCamera],
        frames: list[_Frame],
        world_from_poses: np.ndarray,
        metadata: dict[str, Any],
        depth_scale: float,
        world_frame: str = "first_ego",
    ) -> None:
        self.path = path
        self.world_frame = world_frame  # "first_ego" | "poses", as the manifest says
        self.cameras = cameras
        self._frames = frames
        self._cam = {c.name: c for c in cameras}
        self.world_from_poses = world_from_poses  # [4, 4] float64
        self.metadata = metadata
        self.depth_scale = depth_scale
        self.time_origin = frames[0].timestamp
        #: Tracked objects (:class:`~splatnet.clip.actors.Actor`, poses in this clip's world
        #: frame); empty when the manifest has none (format 1.0).
        self.actors: list[Actor] = []

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | os.PathLike, *, num_workers: int | None = None) -> Clip:
        """Load and validate the clip directory ``path`` (or its ``clip.json``).

        Every matrix, path and file header is checked now; pixels are decoded by :meth:`views`.
        Raises ``FileNotFoundError``, ``FormatError`` or ``ValidationError`` naming the file and
        the problem. Beyond the format's rules, the loader refuses (limits in ``_checks``): JSON
        nested deeper than 64 levels, focal lengths outside [1e-3, 1e3] x the image size,
        principal points over 1000 image sizes from the image, poses and camera centres over
        1e6 m from the clip's world origin, and images over 16384 px a side or 64 MP. LiDAR
        values are read with the points: :meth:`lidar` refuses non-finite points and points
        over 1e6 m from the origin.
        """
        _check_workers(num_workers, "Clip.load(num_workers)")
        root = _clip_root(path, "Clip.load(path)")
        manifest_path = root / C.MANIFEST_NAME
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: clip directory not found")
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: clip manifest not found")
        real_root = Path(os.path.realpath(root))
        if Path(os.path.realpath(manifest_path)).parent != real_root:
            raise FormatError(f"{manifest_path}: is a symlink leading out of the clip directory")
        try:
            text = manifest_path.read_text(encoding="utf-8")
            # NaN/Infinity literals parse; the field checks then name the field that holds them.
            m = json.loads(text)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, integers over 4300 digits
            raise FormatError(f"{manifest_path}: not valid JSON ({e})") from None
        except OSError as e:
            raise FormatError(f"{manifest_path}: unreadable ({e.strerror or e})") from None
        except RecursionError:
            # Python's parser recurses per nesting level; ~1000 levels exhaust the stack.
            raise FormatError(
                f"{manifest_path}: JSON nested deeper than {C.MAX_JSON_DEPTH} levels"
            ) from None
        C.check_json_depth(m, str(manifest_path), FormatError)
        return cls._from_manifest(root, manifest_path, m, num_workers)

    @classmethod
    def _from_manifest(cls, root: Path, mp: Path, m: Any, num_workers: int | None) -> Clip:
        if not isinstance(m, dict):
            raise FormatError(f"{mp}: top level must be a JSON object")
        if m.get("format") != C.FORMAT_NAME:
            raise FormatError(f"{mp}: 'format' must be {C.FORMAT_NAME!r}, got {m.get('format')!r}")
        version = m.get("version")
        if isinstance(version, bool) or version not in C.READ_VERSIONS:
            newer = isinstance(version, (int, float)) and not isinstance(version, bool) \
                and version > max(C.READ_VERSIONS)
            hint = " (written by a newer splatnet? upgrade splatnet)" if newer else ""
            raise FormatError(
                f"{mp}: unsupported clip format version {version!r}; this splatnet reads versions "
                f"{', '.join(map(str, C.READ_VERSIONS))}{hint}"
            )
        C.check_keys(m, _TOP_KEYS, ("format", "version", "cameras", "frames"), str(mp))
        world_frame = C.check_choice(m.get("world_frame", "first_ego"), C.WORLD_FRAMES, f"{mp}: world_frame")
        depth_scale = m.get("depth_scale", C.DEFAULT_DEPTH_SCALE)
        if (
            isinstance(depth_scale, bool)
            or not isinstance(depth_scale, (int, float))
            or not math.isfinite(depth_scale)
            or depth_scale <= 0
        ):
            raise ValidationError(f"{mp}: depth_scale must be a positive number, got {depth_scale!r}")
        metadata = m.get("metadata", {})
        if not isinstance(metadata, dict):
            raise FormatError(f"{mp}: metadata must be a JSON object")
        resolve = _PathResolver(root, mp)

        # ---- cameras
        cams_json = m["cameras"]
        if not isinstance(cams_json, list) or not cams_json:
            raise FormatError(f"{mp}: 'cameras' must be a non-empty list")
        cameras: list[ClipCamera] = []
        probes: list[tuple[Path, str, Any]] = []  # (file, kind, expected) checked after parsing
        for i, cj in enumerate(cams_json):
            w = f"{mp}: cameras[{i}]"
            C.check_keys(cj, _CAMERA_KEYS, ("name", "width", "height", "K", "cam_to_ego"), w)
            name = C.check_camera_name(cj["name"], w)
            if any(c.name == name for c in cameras):
                raise ValidationError(f"{w}: duplicate camera name {name!r}")
            w = f"{mp}: camera {name!r}"
            width, height = C.check_size(cj["width"], cj["height"], w)
            mask = None
            if "mask" in cj:
                mask = resolve(cj["mask"], f"camera {name!r} mask", (".png",))
                probes.append((mask, "mask", (width, height)))
            cameras.append(
                ClipCamera(
                    name=name,
                    role=C.check_choice(cj.get("role", "rig"), C.CAMERA_ROLES, f"{w}.role"),
                    width=width,
                    height=height,
                    K=C.check_intrinsics(cj["K"], width, height, f"{w}.K"),
                    cam_to_ego=C.check_rigid(cj["cam_to_ego"], f"{w}.cam_to_ego"),
                    mask=mask,
                )
            )
            C.check_translation(cameras[-1].cam_to_ego, f"{w}.cam_to_ego")
        cam_by_name = {c.name: c for c in cameras}

        # ---- frames
        frames_json = m["frames"]
        if not isinstance(frames_json, list) or not frames_json:
            raise FormatError(f"{mp}: 'frames' must be a non-empty list")
        frames: list[_Frame] = []
        for fi, fj in enumerate(frames_json):
            w = f"{mp}: frames[{fi}]"
            C.check_keys(fj, _FRAME_KEYS, ("timestamp", "ego_to_world", "images"), w)
            t = C.check_timestamp(fj["timestamp"], f"{w}.timestamp")
            E = C.check_rigid(fj["ego_to_world"], f"{w}.ego_to_world")

            def cam_table(key: str, w: str = w, fj: dict = fj) -> dict[str, Any]:
                table = fj.get(key, {})
                if not isinstance(table, dict):
                    raise FormatError(f"{w}.{key}: expected an object {{camera name: ...}}")
                for c in table:
                    if c not in cam_by_name:
                        raise ValidationError(
                            f"{w}.{key}: unknown camera {c!r} (cameras: {list(cam_by_name)})"
                        )
                return table

            images = cam_table("images")
            missing = [c for c in cam_by_name if c not in images]
            if missing:
                raise ValidationError(f"{w}.images: no image for camera(s) {missing}")
            img_paths = {}
            for c, rel in images.items():
                img_paths[c] = resolve(rel, f"frames[{fi}].images[{c!r}]", (".jpg", ".jpeg", ".png"))
                cam = cam_by_name[c]
                probes.append((img_paths[c], "image", (cam.width, cam.height)))
            cts = {
                c: C.check_timestamp(v, f"{w}.camera_timestamps[{c!r}]")
                for c, v in cam_table("camera_timestamps").items()
            }
            ces = {
                c: C.check_rigid(v, f"{w}.camera_ego_to_world[{c!r}]")
                for c, v in cam_table("camera_ego_to_world").items()
            }
            depths = {}
            for c, rel in cam_table("depths").items():
                depths[c] = resolve(rel, f"frames[{fi}].depths[{c!r}]", (".png", ".npy"))
                cam = cam_by_name[c]
                probes.append((depths[c], "depth", (cam.width, cam.height)))
            skies = {}
            for c, rel in cam_table("sky_masks").items():
                skies[c] = resolve(rel, f"frames[{fi}].sky_masks[{c!r}]", (".png",))
                cam = cam_by_name[c]
                probes.append((skies[c], "mask", (cam.width, cam.height)))
            lidar = None
            if "lidar" in fj:
                lj = C.check_keys(fj["lidar"], _LIDAR_KEYS, ("path", "frame"), f"{w}.lidar")
                lframe = C.check_choice(lj["frame"], C.LIDAR_FRAMES, f"{w}.lidar.frame")
                lpath = resolve(lj["path"], f"frames[{fi}].lidar.path", (".npy",))
                probes.append((lpath, "points", None))
                ipath = None
                if "intensity" in lj:
                    ipath = resolve(lj["intensity"], f"frames[{fi}].lidar.intensity", (".npy",))
                    probes.append((ipath, "intensity", lpath))
                if "timestamp" in lj:
                    C.check_timestamp(lj["timestamp"], f"{w}.lidar.timestamp")
                le = None
                if "ego_to_world" in lj:
                    if lframe != "ego":
                        raise ValidationError(f"{w}.lidar.ego_to_world: only allowed with frame 'ego'")
                    le = C.check_rigid(lj["ego_to_world"], f"{w}.lidar.ego_to_world")
                lidar = _Lidar(lpath, lframe, ipath, le)
            frames.append(_Frame(t, E, img_paths, cts, ces, depths, skies, lidar))
        C.check_increasing([f.timestamp for f in frames], f"{mp}: frames")

        world_from_poses = C.world_from_poses(frames[0].ego_to_world, world_frame)
        _check_distances(mp, frames, cameras, world_from_poses, world_frame)
        actors = []
        if "actors" in m:
            if version < C.ACTORS_VERSION:
                raise FormatError(f"{mp}: 'actors' needs clip format version {C.ACTORS_VERSION}, "
                                  f"the manifest says {version}")
            if not isinstance(m["actors"], list):
                raise FormatError(f"{mp}: actors: expected a list, got {type(m['actors']).__name__}")

            def to_world(T: np.ndarray) -> np.ndarray:
                return world_from_poses @ T

            actors = check_actors(
                [Actor.from_json(a, f"{mp}: actors[{i}]", len(frames), to_world)
                 for i, a in enumerate(m["actors"])], len(frames), f"{mp}: actors")
            for i, a in enumerate(actors):
                for j, T in enumerate(a.box_to_world):
                    C.check_world_distance(T, f"{mp}: actors[{i}] ({a.id!r}).track[{j}].box_to_world",
                                           world_frame)
        _probe_all(probes, num_workers)
        clip = cls(root, cameras, frames, world_from_poses, metadata, float(depth_scale), world_frame)
        clip.actors = actors
        return clip

    # ------------------------------------------------------------------ properties
    @property
    def camera_names(self) -> list[str]:
        """All camera names (rig and target), in manifest order."""
        return [c.name for c in self.cameras]

    @property
    def rig_camera_names(self) -> list[str]:
        return [c.name for c in self.cameras if c.role == "rig"]

    @property
    def target_camera_names(self) -> list[str]:
        return [c.name for c in self.cameras if c.role == "target"]

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)

    @property
    def timestamps(self) -> Tensor:
        """``[T]`` float64 frame timestamps in seconds since :attr:`time_origin`."""
        return torch.tensor([f.timestamp - self.time_origin for f in self._frames], dtype=torch.float64)

    @property
    def ego_to_world(self) -> Tensor:
        """``[T, 4, 4]`` float64 ego poses in the clip's world frame."""
        return torch.from_numpy(np.stack([self.world_from_poses @ f.ego_to_world for f in self._frames]))

    @property
    def has_lidar(self) -> bool:
        return any(f.lidar is not None for f in self._frames)

    @property
    def has_depth(self) -> bool:
        return any(f.depths for f in self._frames)

    def camera(self, name: str) -> ClipCamera:
        if not isinstance(name, str):
            raise ValidationError(f"{self.path}: camera name must be a string, got {name!r}")
        try:
            return self._cam[name]
        except KeyError:
            raise ValidationError(
                f"{self.path}: unknown camera {name!r} (cameras: {self.camera_names})"
            ) from None

    def __repr__(self) -> str:
        return (
            f"Clip({str(self.path)!r}, cameras={self.camera_names}, frames={self.num_frames}, "
            f"lidar={self.has_lidar}, depth={self.has_depth})"
        )

    # ------------------------------------------------------------------ geometry
    def _frame_index(self, frame: object, where: str | None = None) -> int:
        """``frame`` as an index in ``[0, T)`` (negative counts from the end); ints only."""
        where = where or str(self.path)
        index = _as_index(frame)
        if index is None:
            raise ValidationError(f"{where}: frame index must be an int, got {frame!r}")
        if not -self.num_frames <= index < self.num_frames:
            raise ValidationError(f"{where}: frame {index} out of range [0, {self.num_frames})")
        return index % self.num_frames

    def _frame(self, frame: int) -> _Frame:
        return self._frames[self._frame_index(frame)]

    def cam_to_world(self, frame: int, camera: str) -> np.ndarray:
        """``[4, 4]`` float64 camera-to-world (OpenCV) of one image, in the clip's world frame."""
        fr, cam = self._frame(frame), self.camera(camera)
        ego = fr.camera_ego_to_world.get(camera, fr.ego_to_world)
        return self.world_from_poses @ ego @ cam.cam_to_ego

    def image_timestamp(self, frame: int, camera: str) -> float:
        """Capture time of one image in seconds since :attr:`time_origin`."""
        fr = self._frame(frame)
        self.camera(camera)
        return fr.camera_timestamps.get(camera, fr.timestamp) - self.time_origin

    def image_path(self, frame: int, camera: str) -> Path:
        self.camera(camera)
        return self._frame(frame).images[camera]

    # ------------------------------------------------------------------ views
    def views(
        self,
        frames: Sequence[int] | None = None,
        cameras: Sequence[str] | None = None,
        size: tuple[int, int] | None = None,
        *,
        roles: Sequence[str] = ("rig",),
        num_workers: int | None = None,
    ) -> Views:
        """Decode the views of ``frames`` × ``cameras`` (frame-major order).

        Args:
            frames: frame indices (default: all frames): one int, or a list, tuple, range or
                1-D integer array/tensor of them; negative indices count from the end. Floats,
                booleans and strings are refused, not rounded.
            cameras: camera names (default: every camera whose role is in ``roles``). Naming a
                camera selects it whatever its role; a bare string is one camera.
            size: ``(H, W)`` to resize images to; intrinsics are scaled consistently
                (``fx, cx`` by ``W / width``, ``fy, cy`` by ``H / height``). Required when the
                selected cameras have different image sizes. At most 16384 px a side and 64 MP.
            roles: the roles selected when ``cameras`` is None: ``("rig",)`` by default, so
                supervision-only target cameras never reach a model by accident;
                ``("rig", "target")`` for all, ``("target",)`` (or ``"target"``) for the targets.
            num_workers: decoding threads, a positive int (default: ``min(8, CPU count)``).

        Raises ``ValidationError`` naming the argument when one is malformed.
        """
        frame_ids = self._views_frames(frames)
        _check_workers(num_workers, "views(num_workers)")
        if isinstance(roles, str):  # one role, not a sequence of letters
            roles = (roles,)
        if not isinstance(roles, (list, tuple)):
            raise ValidationError(
                f"views(roles): expected a role or a list of roles, got {type(roles).__name__}"
            )
        if not roles:
            raise ValidationError(f"views(roles): select at least one role of {list(C.CAMERA_ROLES)}")
        for r in roles:
            C.check_choice(r, C.CAMERA_ROLES, "views(roles)")
        if cameras is None:
            cams = [c for c in self.cameras if c.role in roles]
            if not cams:
                raise ValidationError(f"{self.path}: no camera has a role in {list(roles)}")
        else:
            if isinstance(cameras, str):
                cameras = [cameras]
            if not isinstance(cameras, (list, tuple)):
                raise ValidationError(
                    f"views(cameras): expected a camera name or a list of names, got {type(cameras).__name__}"
                )
            for n in cameras:
                if not isinstance(n, str):
                    raise ValidationError(f"views(cameras): camera names must be strings, got {n!r}")
            cams = [self.camera(n) for n in cameras]
        if not frame_ids or not cams:
            raise ValidationError("views: select at least one frame and one camera")
        if size is None:
            sizes = {(c.height, c.width) for c in cams}
            if len(sizes) > 1:
                raise ValidationError(
                    f"{self.path}: the selected cameras have different image sizes "
                    f"{sorted(sizes)} (H, W); pass size=(H, W) to resize them to one"
                )
            H, W = sizes.pop()
        else:
            if (
                not isinstance(size, (tuple, list))
                or len(size) != 2
                or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0 for s in size)
            ):
                raise ValidationError(f"views(size): expected (H, W) positive ints, got {size!r}")
            H, W = check_working_size(int(size[0]), int(size[1]), "views(size)")

        pairs = [(f, c) for f in frame_ids for c in cams]
        V = len(pairs)
        Ks = np.empty((V, 3, 3))
        c2w = np.empty((V, 4, 4))
        ts = np.empty(V)
        for v, (f, c) in enumerate(pairs):
            S = np.diag([W / c.width, H / c.height, 1.0])
            Ks[v] = S @ c.K
            c2w[v] = self.cam_to_world(f, c.name)
            ts[v] = self.image_timestamp(f, c.name)

        images = torch.empty((V, H, W, 3), dtype=torch.float32)
        any_depth = any(c.name in self._frames[f].depths for f, c in pairs)
        any_sky = any(c.name in self._frames[f].sky_masks for f, c in pairs)
        any_mask = any(c.mask is not None for c in cams)
        depths = torch.zeros((V, H, W, 1), dtype=torch.float32) if any_depth else None
        skies = torch.zeros((V, H, W, 1), dtype=torch.bool) if any_sky else None
        masks = torch.ones((V, H, W, 1), dtype=torch.bool) if any_mask else None

        def decode(v: int) -> None:
            f, c = pairs[v]
            fr = self._frames[f]
            images[v] = torch.from_numpy(read_rgb(fr.images[c.name], (H, W))).float() / 255.0
            if depths is not None and c.name in fr.depths:
                depths[v, ..., 0] = torch.from_numpy(_nearest(self._read_depth(fr.depths[c.name]), H, W))
            if skies is not None and c.name in fr.sky_masks:
                skies[v, ..., 0] = torch.from_numpy(_nearest(read_mask(fr.sky_masks[c.name]), H, W))
            if masks is not None and c.mask is not None:
                masks[v, ..., 0] = torch.from_numpy(_nearest(read_mask(c.mask), H, W))

        workers = num_workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(decode, range(V)))
        cam_obj = Cameras(
            torch.from_numpy(Ks).float(),
            torch.from_numpy(c2w).float(),
            W,
            H,
            timestamps=torch.from_numpy(ts),
            names=[c.name for _, c in pairs],
        )
        return Views(
            cameras=cam_obj,
            images=images,
            frame_ids=torch.tensor(frame_ids, dtype=torch.long).repeat_interleave(len(cams)),
            camera_names=[c.name for _, c in pairs],
            roles=[c.role for _, c in pairs],
            depths=depths,
            sky_masks=skies,
            masks=masks,
        )

    def _views_frames(self, frames: object) -> list[int]:
        """``views(frames=...)``: None (all), one index, or a list/array/tensor of indices."""
        if frames is None:
            return list(range(self.num_frames))
        if _as_index(frames) is not None:
            return [self._frame_index(frames, "views(frames)")]
        if isinstance(frames, (np.ndarray, Tensor)):
            if frames.ndim != 1:
                raise ValidationError(
                    f"views(frames): expected a 1-D array of indices, got shape {list(frames.shape)}"
                )
        elif not isinstance(frames, (list, tuple, range)):
            raise ValidationError(
                f"views(frames): expected a list of frame indices, got {type(frames).__name__}"
            )
        return [self._frame_index(f, "views(frames)") for f in frames]

    def _read_depth(self, path: Path) -> np.ndarray:
        if path.suffix.lower() == ".npy":
            d = read_npy(path).astype(np.float32)
            return d[..., 0] if d.ndim == 3 else d
        return (read_png16(path).astype(np.float64) * self.depth_scale).astype(np.float32)

    # ------------------------------------------------------------------ lidar
    def lidar(self, frame: int) -> Tensor | None:
        """``[M, 3]`` float32 points of ``frame`` in the clip's world frame, or None."""
        fr = self._frame(frame)
        lid = fr.lidar
        if lid is None:
            return None
        T = self.world_from_poses
        if lid.frame == "ego":
            T = T @ (lid.ego_to_world if lid.ego_to_world is not None else fr.ego_to_world)
        # Finite and within MAX_WORLD_DISTANCE of the origin, transformed in float64.
        out = C.check_points(read_npy(lid.path), T, str(lid.path), self.world_frame)
        return torch.from_numpy(out.astype(np.float32))

    def lidar_intensity(self, frame: int) -> Tensor | None:
        """``[M]`` float32 intensities of ``frame``'s points, or None."""
        lid = self._frame(frame).lidar
        if lid is None or lid.intensity is None:
            return None
        inten = read_npy(lid.intensity).astype(np.float32)
        bad = int((~np.isfinite(inten)).sum())
        if bad:
            raise ValidationError(f"{lid.intensity}: {bad} of {len(inten)} intensities are NaN or infinite")
        return torch.from_numpy(inten)


def _clip_root(path: object, where: str) -> Path:
    """The clip directory of ``path``: the directory itself, or the directory of its clip.json."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValidationError(f"{where}: expected a path, got {type(path).__name__}")
    root = Path(path)
    if root.name == C.MANIFEST_NAME and root.is_file():
        root = root.parent
    return root


def is_clip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a clip directory or a clip's ``clip.json`` (a manifest file is there).

    A quick test (the CLI uses it to tell clips from other inputs); :meth:`Clip.load` validates.
    """
    try:
        root = _clip_root(path, "is_clip")
    except ValidationError:
        return False
    return root.is_dir() and (root / C.MANIFEST_NAME).is_file()


def _as_index(value: object) -> int | None:
    """``value`` as an int index (int, NumPy or 0-d torch integer), or None; booleans are not."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_workers(num_workers: object, where: str) -> None:
    if num_workers is not None and (
        isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 1
    ):
        raise ValidationError(f"{where}: expected a positive int or None, got {num_workers!r}")


def _check_distances(
    mp: Path, frames: list[_Frame], cameras: list[ClipCamera], world: np.ndarray, world_frame: str
) -> None:
    """Every ego pose and camera centre lies within MAX_WORLD_DISTANCE of the world origin."""
    for fi, fr in enumerate(frames):
        w = f"{mp}: frames[{fi}]"
        C.check_world_distance(world @ fr.ego_to_world, f"{w}.ego_to_world", world_frame)
        for c, E in fr.camera_ego_to_world.items():
            C.check_world_distance(world @ E, f"{w}.camera_ego_to_world[{c!r}]", world_frame)
        if fr.lidar is not None and fr.lidar.ego_to_world is not None:
            C.check_world_distance(world @ fr.lidar.ego_to_world, f"{w}.lidar.ego_to_world", world_frame)
        for cam in cameras:
            ego = fr.camera_ego_to_world.get(cam.name, fr.ego_to_world)
            C.check_world_distance(
                world @ ego @ cam.cam_to_ego, w, world_frame, what=f"camera {cam.name!r}"
            )


def _nearest(a: np.ndarray, H: int, W: int) -> np.ndarray:
    """Nearest-neighbour resize with pixel centres at +0.5 (no mixing across depth edges)."""
    h, w = a.shape[:2]
    if (h, w) == (H, W):
        return a
    rows = np.minimum(((np.arange(H) + 0.5) * h / H).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(W) + 0.5) * w / W).astype(np.int64), w - 1)
    return a[rows[:, None], cols[None, :]]


def _probe_one(item: tuple[Path, str, Any]) -> tuple[int, ...] | None:
    path, kind, expected = item
    if kind in ("points", "intensity") or path.suffix.lower() == ".npy":
        shape, dtype = probe_npy(path)
        if dtype.kind != "f":
            raise FormatError(f"{path}: expected floating-point data, got dtype {dtype}")
        if kind == "points" and (len(shape) != 2 or shape[1] != 3):
            raise FormatError(f"{path}: LiDAR points must have shape [M, 3], got {list(shape)}")
        if kind == "depth":
            w, h = expected
            if shape not in ((h, w), (h, w, 1)):
                raise FormatError(f"{path}: depth has shape {list(shape)}, expected [{h}, {w}]")
        return shape
    info = probe_image(path)
    w, h = expected
    if (info.width, info.height) != (w, h):
        raise ValidationError(
            f"{path}: image is {info.width}x{info.height}, the camera expects {w}x{h} (width x height)"
        )
    if kind == "image" and info.bit_depth != 8:
        raise FormatError(f"{path}: images must have 8 bits per channel, got {info.bit_depth}")
    if kind == "depth" and (info.format != "png" or info.channels != 1 or info.bit_depth != 16):
        raise FormatError(f"{path}: depth PNGs must be 16-bit grayscale")
    if kind == "mask" and (info.format != "png" or info.channels != 1 or info.bit_depth > 8):
        raise FormatError(f"{path}: masks must be 8-bit (or 1-bit) grayscale PNGs")
    return None


def _probe_all(probes: list[tuple[Path, str, Any]], num_workers: int | None) -> None:
    """Check every referenced file's header (in parallel: it is I/O bound on cold caches)."""
    workers = num_workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        shapes = list(pool.map(_probe_one, probes))
    by_path = {str(p): s for (p, _, _), s in zip(probes, shapes)}
    for (path, kind, points_path), shape in zip(probes, shapes):
        if kind == "intensity":
            m = by_path[str(points_path)][0]
            if shape != (m,):
                raise FormatError(f"{path}: intensity has shape {list(shape)}, expected [{m}]")

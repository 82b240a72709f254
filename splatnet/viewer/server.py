"""The viewer: a viser server showing a scene's splats (drawn by the browser, SH degree 0), its rig,
ego path and actor boxes with a time slider, a clip's LiDAR, and a drive mode that steps a
:class:`~splatnet.sim.DrivingEnv` with W/S/A/D and shows its front camera (docs/viewer.md).

Frames: everything is drawn in the scene's world frame (metres, z up: splatnet's clips, DGP,
nuScenes and converted PandaSet have z up); cameras are OpenCV (viser's frustum convention).
"""

from __future__ import annotations

import html
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splatnet._optional import require
from splatnet.clip import Clip
from splatnet.clip.actors import interpolate_pose
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians, quat_to_rotmat
from splatnet.scene import Scene
from splatnet.sh import SH_C0
from splatnet.sim import DrivingEnv

#: Drive controls: key → GUI button label (the page's key handler clicks these buttons).
KEYS = {"w": "Throttle (W)", "s": "Brake (S)", "a": "Left (A)", "d": "Right (D)"}
#: A key counts as held this long after its button's last click (the page re-clicks every 0.1 s
#: while the key is down), seconds.
HOLD_SECONDS = 0.3
#: Steering while A or D is held, as a fraction of the vehicle's limit.
STEER_FRACTION = 0.5

# The page's key handler. viser exposes no keyboard events to Python; its HTML element renders
# markup as given, so an image's error handler installs (once) listeners that click the drive
# buttons while W/S/A/D are down. Keys go to the drive only while those buttons are shown
# (drive mode on); then they do not also move viser's view camera.
_KEY_SCRIPT = (
    "if(!window.__splatnetKeys){window.__splatnetKeys=1;"
    "var M=" + "{" + ",".join(f"{k}:'{v}'" for k, v in KEYS.items()) + "}" + ",T={};"
    "var F=function(l){var b=document.querySelectorAll('button');"
    "for(var i=0;i<b.length;i++){if(b[i].textContent.trim()===l){return b[i];}}return null;};"
    "window.addEventListener('keydown',function(e){var k=(e.key||'').toLowerCase();if(!(k in M)){return;}"
    "var t=e.target;if(t&&(t.tagName==='TEXTAREA'||(t.tagName==='INPUT'&&t.type!=='checkbox'))){return;}"
    "var b=F(M[k]);if(!b){return;}e.preventDefault();e.stopImmediatePropagation();"
    "if(T[k]){return;}b.click();T[k]=setInterval(function(){var c=F(M[k]);if(c){c.click();}},100);},true);"
    "window.addEventListener('keyup',function(e){var k=(e.key||'').toLowerCase();"
    "if(T[k]){clearInterval(T[k]);delete T[k];e.stopImmediatePropagation();}},true);"
    "window.addEventListener('blur',function(){for(var k in T){clearInterval(T[k]);delete T[k];}});}"
)
_KEY_HTML = ('<img src="data:image/png;base64,AA" style="display:none" '
             f'onerror="{html.escape(_KEY_SCRIPT, quote=True)}">')


def splat_arrays(g: Gaussians) -> dict[str, np.ndarray]:
    """viser's splat arrays of unbatched Gaussians: centres ``[N, 3]``, covariances ``[N, 3, 3]``
    (``R diag(s²) Rᵀ``, m²), RGB ``[N, 3]`` in [0, 1] from the SH DC term, opacities ``[N, 1]``."""
    g = g.detach().to("cpu", torch.float32)
    R = quat_to_rotmat(torch.nn.functional.normalize(g.quats, dim=-1))
    cov = R @ torch.diag_embed(g.scales.square()) @ R.transpose(-1, -2)
    rgb = (g.sh[:, 0, :] * SH_C0 + 0.5).clamp(0.0, 1.0)
    return {"centers": g.means.numpy(), "covariances": cov.numpy(), "rgbs": rgb.numpy(),
            "opacities": g.opacities[:, None].numpy()}


def _wxyz(R: np.ndarray) -> np.ndarray:
    from viser import transforms

    return transforms.SO3.from_matrix(np.asarray(R, np.float64)).wxyz


def _front_camera(scene: Scene) -> str:
    """The rig camera looking most along the ego's x axis (forward)."""
    return max(scene.rig.cameras, key=lambda c: float(np.asarray(c.cam_to_ego)[0, 2])).name


class Viewer:
    """Serve ``source`` (a ``.scene`` file or :class:`Scene`, or a splat file any
    :meth:`Gaussians.load` reads) on ``http://host:port``.

    Args:
        source: the scene or splat file.
        clip: optional source clip of the scene: its LiDAR points are shown at the slider's frame
            (a splat file has no rig or path: the clip then gives cameras and ego path too).
        host, port: where to serve (default: this machine only).
        size: ``(H, W)`` of the drive mode's front-camera picture (intrinsics scaled).
        backend: renderer backend of the drive mode (:func:`splatnet.render`).
    """

    def __init__(self, source: Scene | str | os.PathLike, *, clip: str | os.PathLike | Clip | None = None,
                 host: str = "127.0.0.1", port: int = 8080, size: tuple[int, int] = (128, 224),
                 backend: str = "auto") -> None:
        viser = require("viser", "the viewer (splatnet view)", extra="viewer")
        self.scene: Scene | None = None
        self.gaussians: Gaussians | None = None
        if isinstance(source, Scene):
            self.scene = source
        elif Path(source).suffix.lower() == ".scene":
            self.scene = Scene.load(source, device="cpu")
        else:
            self.gaussians = Gaussians.load(source)
            if len(self.gaussians.batch_shape) != 0:
                raise ValidationError(f"{source}: expected one set of Gaussians, got batch shape "
                                      f"{list(self.gaussians.batch_shape)}")
        self.clip = Clip.load(clip) if isinstance(clip, (str, os.PathLike)) else clip
        if self.clip is not None and self.scene is not None and self.clip.num_frames != self.scene.num_frames:
            raise ValidationError(f"--clip {self.clip.path}: {self.clip.num_frames} frames, the scene "
                                  f"{self.scene.num_frames}: not the scene's source clip")
        self._lock = threading.RLock()
        self._held: dict[str, float] = {}
        self._stop = threading.Event()
        self._key = threading.Event()  # a drive key arrived: wakes the parked drive loop at once
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.server.scene.set_up_direction("+z")
        self.env: DrivingEnv | None = None
        self._running = False  # the drive clock: starts at the first key after a reset
        self._trail: list[np.ndarray] = []
        self._build()
        if self.scene is not None:
            self.env = DrivingEnv(self.scene, cameras=[_front_camera(self.scene)], size=size,
                                  backend=backend)
            self._build_drive()
            self._thread = threading.Thread(target=self._drive_loop, daemon=True, name="splatnet-drive")
            self._thread.start()
        self.server.on_client_connect(self._on_connect)

    # ------------------------------------------------------------------ properties
    @property
    def port(self) -> int:
        return int(self.server.get_port())

    @property
    def frame_times(self) -> np.ndarray:
        if self.scene is not None:
            return np.asarray(self.scene.frame_times, np.float64)
        if self.clip is not None:
            return (self.clip.timestamps.double().numpy() - float(self.clip.timestamps[0]))
        return np.zeros(1)

    def _ego_poses(self) -> np.ndarray | None:
        if self.scene is not None:
            return np.asarray(self.scene.ego_to_world)
        if self.clip is not None:
            return self.clip.ego_to_world.double().numpy()
        return None

    # ------------------------------------------------------------------ scene graph
    def _build(self) -> None:
        s, gui = self.server.scene, self.server.gui
        if self.scene is not None:
            bg = self.scene.replace(actors={})
            self._dynamic_bg = bg.background.is_dynamic
            self._bg_scene = bg
            t0 = self.scene.time_span[0]
            s.add_gaussian_splats("/splats/background", **splat_arrays(bg.gaussians_at(t0)))
            self._actor_nodes = {}
            for a in self.scene.actors.values():
                node = s.add_frame(f"/actors/{a.id}", show_axes=False)
                if a.gaussians.num_gaussians:
                    s.add_gaussian_splats(f"/actors/{a.id}/splats", **splat_arrays(a.gaussians))
                s.add_box(f"/actors/{a.id}/box", color=(255, 170, 0), dimensions=tuple(a.size),
                          wireframe=True)
                self._actor_nodes[a.id] = node
            rig = [(c.name, c.width, c.height, np.asarray(c.K), np.asarray(c.cam_to_ego))
                   for c in self.scene.rig.cameras]
        else:
            s.add_gaussian_splats("/splats/background", **splat_arrays(self.gaussians))
            rig = ([(c.name, c.width, c.height, c.K, c.cam_to_ego) for c in self.clip.cameras
                    if c.role == "rig"] if self.clip is not None else [])
        poses = self._ego_poses()
        self._ego = s.add_frame("/ego", show_axes=False, visible=poses is not None)
        for name, w, h, K, cam_to_ego in rig:
            s.add_camera_frustum(f"/ego/{name}", fov=2 * math.atan(0.5 * h / K[1, 1]), aspect=w / h,
                                 scale=0.6, color=(40, 120, 255), wxyz=_wxyz(cam_to_ego[:3, :3]),
                                 position=cam_to_ego[:3, 3])
        if self.scene is not None:
            from splatnet.sim import Vehicle

            v = Vehicle()
            s.add_box("/ego/box", color=(0, 200, 255), dimensions=tuple(v.size), wireframe=True,
                      position=tuple(v.box_center))
        if poses is not None and len(poses) > 1:
            p = poses[:, :3, 3]
            s.add_line_segments("/path/log", np.stack([p[:-1], p[1:]], 1), (0, 220, 0), thickness=0.15)
        self._lidar = None
        self._lidar_frame: int | None = None  # the sweep shown: re-sent only when it changes
        times = self.frame_times
        hi = float(max(times[-1], times[0] + 1e-3))
        self.slider = gui.add_slider("Time (s)", min=float(times[0]), max=hi,
                                     step=float(np.min(np.diff(times)) / 10) if len(times) > 1 else 1e-3,
                                     initial_value=float(times[0]), disabled=len(times) < 2)
        self.slider.on_update(lambda _: self._on_slider())
        self.set_time(float(times[0]))

    def _build_drive(self) -> None:
        gui = self.server.gui
        with gui.add_folder("Drive"):
            self.drive = gui.add_checkbox("Drive mode (W/S/A/D)", initial_value=False)
            self.follow = gui.add_checkbox("Follow the ego", initial_value=True)
            self.logged_speed = gui.add_checkbox("Start at the logged speed", initial_value=False)
            self.buttons = {}
            for key, label in KEYS.items():
                b = gui.add_button(label, visible=False)
                b.on_click(lambda _, k=key: self._press(k))
                self.buttons[key] = b
            self.reset_button = gui.add_button("Reset")
            self.reset_button.on_click(lambda _: self.reset())
            self.status = gui.add_markdown("")
            self.pip = gui.add_image(np.zeros((*self.env.size, 3), np.uint8), label="Front camera",
                                     format="jpeg")
            gui.add_html(_KEY_HTML)
        self.drive.on_update(lambda _: self._on_drive_toggle())
        self.reset()

    # ------------------------------------------------------------------ time
    def _on_slider(self) -> None:
        with self._lock:
            if self.env is not None and self._running:
                return  # the drive clock owns the time while an episode runs
            self.set_time(float(self.slider.value))

    def set_time(self, t: float) -> None:
        """Place the actors, the logged ego (outside drive mode) and the LiDAR sweep at ``t`` s."""
        times = self.frame_times
        if self.scene is not None:
            if self._dynamic_bg:
                self.server.scene.add_gaussian_splats("/splats/background",
                                                      **splat_arrays(self._bg_scene.gaussians_at(t)))
            for a in self.scene.actors.values():
                pose = a.track.pose_at(t)
                node = self._actor_nodes[a.id]
                node.visible = pose is not None
                if pose is not None:
                    node.wxyz, node.position = _wxyz(pose[:3, :3]), pose[:3, 3]
        poses = self._ego_poses()
        if poses is not None and (self.env is None or not self.drive.value):
            self._set_ego(_pose_at(poses, times, t))
        if self.clip is not None and self.clip.has_lidar:
            k = int(np.argmin(np.abs(times - t)))
            pts = self.clip.lidar(k) if k != self._lidar_frame else None
            if pts is not None:
                self._lidar = self.server.scene.add_point_cloud(
                    "/lidar", pts.numpy(), _height_colours(pts.numpy()), point_size=0.05)
                self._lidar_frame = k

    def _set_ego(self, pose: np.ndarray) -> None:
        self._ego.wxyz, self._ego.position = _wxyz(pose[:3, :3]), pose[:3, 3]
        self._ego_pose = pose
        if self.env is not None and self.drive.value and self.follow.value:
            for client in self.server.get_clients().values():
                _chase(client, pose)

    def _on_connect(self, client: Any) -> None:
        pose = getattr(self, "_ego_pose", None)
        if pose is not None:
            _chase(client, pose)

    # ------------------------------------------------------------------ drive
    def _press(self, key: str) -> None:
        with self._lock:
            self._held[key] = time.monotonic() + HOLD_SECONDS
        self._key.set()

    def held(self) -> set[str]:
        now = time.monotonic()
        with self._lock:
            return {k for k, until in self._held.items() if until > now}

    def _on_drive_toggle(self) -> None:
        on = bool(self.drive.value)
        for b in self.buttons.values():
            b.visible = on
        with self._lock:
            if on:
                self._set_ego(self.env.ego_to_world)
            else:
                self._running = False
                self.set_time(float(self.slider.value))

    def reset(self) -> None:
        """A new episode at the log's first frame (parked unless "Start at the logged speed");
        the clock starts at the next key."""
        with self._lock:
            options = None if self.logged_speed.value else {"speed": 0.0}
            obs, info = self.env.reset(options=options)
            self._running = False
            self._held.clear()
            self._trail = [obs["ego_to_world"][:3, 3].copy()]
            self.server.scene.add_line_segments("/path/driven", np.zeros((0, 2, 3)), (255, 40, 40))
            self._ended = False
            self._show(obs, info, "press W (or any drive key) to start the clock")
            self.slider.disabled = False

    def _show(self, obs: dict, info: dict, note: str) -> None:
        pose = obs["ego_to_world"]
        self.pip.image = obs["rgb"][0]
        ego = obs["ego"]
        self.status.content = (
            f"`ego: t={info['t']:.3f} step={info['step']} x={pose[0, 3]:.3f} y={pose[1, 3]:.3f} "
            f"speed={ego[0]:.3f} steer={ego[2]:.3f}`  \n{note}")
        # The picture and the state line go out now, ahead of the scene-graph updates and
        # without waiting for viser's message window (1/60 s).
        self.server.flush()
        if self.drive.value:
            self._set_ego(pose)
            self.slider.value = float(info["t"])
            self.set_time(float(info["t"]))

    def _drive_loop(self) -> None:
        v = self.env.vehicle
        while not self._stop.is_set():
            keys = self.held() if self.drive.value else set()
            with self._lock:
                if self.drive.value and not self._ended and (self._running or keys):
                    self._running = True
                    self.slider.disabled = True
                    accel = (v.max_accel if "w" in keys else 0.0) - (v.max_brake if "s" in keys else 0.0)
                    steer = STEER_FRACTION * v.max_steer * (("a" in keys) - ("d" in keys))
                    began = time.monotonic()
                    obs, _, terminated, truncated, info = self.env.step(np.array([accel, steer]))
                    note = ""
                    self._ended = bool(terminated or truncated)
                    if terminated:
                        note = f"collision with {', '.join(info['collided_with'])}: press Reset"
                    elif truncated:
                        note = "end of the log's time span: press Reset"
                    self._show(obs, info, note)
                    self._trail.append(obs["ego_to_world"][:3, 3].copy())
                    tr = np.asarray(self._trail)
                    self.server.scene.add_line_segments("/path/driven", np.stack([tr[:-1], tr[1:]], 1),
                                                        (255, 40, 40), thickness=0.15)
                    wait = self.env.dt - (time.monotonic() - began)
                else:
                    wait = None
            if wait is None:
                # Parked (or drive mode off): the first key wakes the loop; the poll is a fallback.
                self._key.wait(0.25)
                self._key.clear()
            else:
                # Driving: one step per dt of wall time (keys do not hurry the clock).
                self._stop.wait(max(wait, 0.0))

    def close(self) -> None:
        self._stop.set()
        self._key.set()
        self.server.stop()


def _pose_at(poses: np.ndarray, times: np.ndarray, t: float) -> np.ndarray:
    if len(times) < 2:
        return poses[0]
    k = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    u = float(np.clip((t - times[k]) / (times[k + 1] - times[k]), 0.0, 1.0))
    return interpolate_pose(poses[k], poses[k + 1], u)


def _chase(client: Any, pose: np.ndarray) -> None:
    """Put a browser's view camera 12 m behind and 6 m above the ego, looking ahead of it."""
    eye = pose[:3, :3] @ np.array([-12.0, 0.0, 6.0]) + pose[:3, 3]
    at = pose[:3, :3] @ np.array([8.0, 0.0, 0.0]) + pose[:3, 3]
    with client.atomic():
        client.camera.up_direction = (0.0, 0.0, 1.0)
        client.camera.position = eye
        client.camera.look_at = at


def _height_colours(p: np.ndarray) -> np.ndarray:
    z = p[:, 2]
    u = (z - np.percentile(z, 2)) / max(float(np.ptp(z)), 1e-6)
    u = np.clip(u, 0.0, 1.0)[:, None]
    return (255 * np.concatenate([u, 1 - np.abs(2 * u - 1), 1 - u], 1)).astype(np.uint8)

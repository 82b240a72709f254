"""Applying a :class:`~splatnet.clip.synth.realism.Realism`'s image effects to rendered frames.

Random streams (all derived from the clip's seed, none shared with the street, rig or
texture streams): ``[seed, 3, 4]`` exposure and white balance, ``[seed, 3, 5]`` the hood,
``[seed, 3, 6, frame, camera]`` sensor noise.
"""

from __future__ import annotations

import numpy as np

from splatnet.clip.synth import camera_fx as fx
from splatnet.clip.synth.layout import Layout
from splatnet.clip.synth.motion_blur import motion_blur
from splatnet.clip.synth.realism import Realism
from splatnet.clip.synth.rig import RigCamera


class Effects:
    """Per-camera looks of one clip, drawn once, and the per-frame pipeline.

    A camera with a ``source`` (a rig camera shifted sideways, ``target_offsets``) is the same
    physical camera on a shifted ego path: it shares its source's look (gains, vignetting,
    hood) and auto-exposure gain, and draws nothing of its own.
    """

    def __init__(self, r: Realism, seed: int, cams: list[RigCamera], lay: Layout, h: int, w: int):
        self.r, self.seed, self.lay, self.h, self.w = r, seed, lay, h, w
        gain_rng = np.random.default_rng([seed, 3, 4])
        hood_rng = np.random.default_rng([seed, 3, 5])
        color = fx.HOOD_COLOURS[int(hood_rng.integers(len(fx.HOOD_COLOURS)))]
        self.looks: dict[str, fx.CameraLook] = {}
        for cam in cams:
            if cam.source is not None:
                continue
            gains = fx.draw_gains(gain_rng, r.exposure_stops, r.white_balance)
            hood = fx.draw_hood(hood_rng, r.hood_height, color)  # drawn for every camera
            self.looks[cam.name] = fx.CameraLook(
                gains if (r.exposure_stops or r.white_balance) else None,
                fx.vignette(cam.K, h, w, r.vignetting) if r.vignetting else None,
                hood if cam.role == "rig" and cam.name in r.hood_cameras else None,
            )
        for cam in cams:
            if cam.source is not None:
                self.looks[cam.name] = self.looks[cam.source]
        self.auto_gain: dict[str, float] = {}  # set on each camera's first frame, then held
        # A horizontal surface's light, as render.shade lights one (ambient + unshadowed sun).
        self.hood_light = (lay.ambient + lay.sun_color * max(float(lay.sun_dir[2]), 0.0)).astype(
            np.float32)

    def masks(self) -> dict[str, np.ndarray]:
        """Validity masks ``{camera: [H, W] bool}`` of the cameras that see the hood."""
        return {name: look.hood.coverage(self.h, self.w) == 0 for name, look in self.looks.items()
                if look.hood is not None}

    def _velocities(self, obj: np.ndarray, t: float) -> np.ndarray:
        """World velocity ``[H, W, 3]`` of the object each pixel sees (0: static or sky)."""
        table = np.zeros((len(self.lay.objects) + 1, 3))  # last row: sky (index -1)
        for i in np.unique(obj[obj >= 0]):
            table[i] = self.lay.object_velocity(int(i), t)
        return table[obj]

    def apply(self, f: int, index: int, t: float, cam: RigCamera, img: np.ndarray,
              depth: np.ndarray, sky: np.ndarray, z: np.ndarray, obj: np.ndarray):
        """``(uint8 image, depth, sky)`` of camera ``cam`` (``index`` in the clip) at frame
        ``f`` (time ``t``) from its float render, depth, sky mask, camera-z (inf: sky) and
        per-pixel object index."""
        r, look = self.r, self.looks[cam.name]
        meter = cam.source or cam.name  # shifted copies hold their source's exposure
        if r.exposure_time:
            def pose_at(tau: float) -> np.ndarray:
                return self.lay.ego_pose(t + tau) @ cam.cam_to_ego

            img = motion_blur(img, z, self._velocities(obj, t), cam.K, pose_at, r.exposure_time)
        if look.hood is not None:
            img, cov = fx.apply_hood(img, look.hood, self.hood_light)
            on = cov > 0
            depth = np.where(on, 0.0, depth).astype(np.float32)
            sky = sky & ~on
        gain = 1.0
        if r.auto_exposure:
            if meter not in self.auto_gain:  # metering on the vignetted first frame
                seen = img if look.vignette is None else img * look.vignette[..., None]
                self.auto_gain[meter] = fx.auto_exposure_gain(seen, r.auto_exposure)
            gain = self.auto_gain[meter]
        noise_rng = None
        if r.read_noise or r.shot_noise:
            noise_rng = np.random.default_rng([self.seed, 3, 6, f, index])
        out = fx.finish(img, look, noise_rng, r.read_noise, r.shot_noise, r.jpeg_quality, gain)
        return out, depth, sky

    def metadata(self, cams: list[RigCamera]) -> dict:
        per_cam = {}
        for cam in cams:
            look = self.looks[cam.name]
            R, t = cam.cam_to_ego[:3, :3], cam.cam_to_ego[:3, 3]
            d = {"height_m": round(float(t[2]), 4),
                 "pitch_down_deg": round(float(np.degrees(np.arcsin(-R[2, 2]))), 3),
                 "roll_deg": round(float(np.degrees(np.arctan2(-R[2, 0], -R[2, 1]))), 3)}
            if look.gains is not None:
                d["gains_rgb"] = [round(float(x), 5) for x in look.gains]
            if look.hood is not None:
                d["hood_height"] = round(look.hood.height, 4)
            if (cam.source or cam.name) in self.auto_gain:
                d["auto_exposure_gain"] = round(self.auto_gain[cam.source or cam.name], 5)
            per_cam[cam.name] = d
        return {"settings": self.r.to_dict(), "ego_speed_mps": round(float(self.lay.ego_speed), 4),
                "cameras": per_cam}
